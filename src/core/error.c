/* Per-thread error messages and status names. */
#include "internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char last_error[1024];

kvattn_status kv_fail(kvattn_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return s;
}

void kv_clear_error(void) { last_error[0] = '\0'; }

const char *kvattn_last_error(void) { return last_error; }

const char *kvattn_status_name(kvattn_status s) {
    switch (s) {
    case KVATTN_OK: return "ok";
    case KVATTN_ERR_INVALID_ARG: return "invalid argument";
    case KVATTN_ERR_CONFIG: return "invalid configuration";
    case KVATTN_ERR_NOMEM: return "out of memory";
    case KVATTN_ERR_CACHE_FULL: return "cache full";
    case KVATTN_ERR_UNSUPPORTED: return "unsupported";
    case KVATTN_ERR_IO: return "i/o error";
    case KVATTN_ERR_FORMAT: return "malformed file";
    case KVATTN_ERR_POOL_FULL: return "KV pool full";
    }
    return "unknown status";
}

void *kv_alloc_aligned(size_t size) {
    if (size == 0 || size > SIZE_MAX - 63) return NULL;
    size = (size + 63) & ~(size_t)63;
    return aligned_alloc(64, size);
}

void kv_free_aligned(void *p) { free(p); }
