/* NFC / NFKC / NFD / NFKD by utf8proc (Debian libutf8proc-dev), the forms
 * Hugging Face tokenizers' normalizers of those names apply. */
#include "normalize.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static const char *const NAMES[] = {"", "NFC", "NFKC", "NFD", "NFKD"};

int kv_normalization_by_name(const char *name) {
    for (int i = 1; i < 5; i++)
        if (name && !strcmp(name, NAMES[i])) return i;
    return -1;
}

const char *kv_normalization_name(kv_normalization form) {
    return form >= KV_NORM_NONE && form <= KV_NORM_NFKD ? NAMES[form] : "";
}

static utf8proc_option_t options(kv_normalization form) {
    switch (form) {
    case KV_NORM_NFC: return UTF8PROC_STABLE | UTF8PROC_COMPOSE;
    case KV_NORM_NFKC: return UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
    case KV_NORM_NFD: return UTF8PROC_STABLE | UTF8PROC_DECOMPOSE;
    case KV_NORM_NFKD: return UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
    case KV_NORM_NONE: break;
    }
    return 0;
}

typedef struct {
    char *p;
    size_t len, cap;
} buffer;

static int append(buffer *b, const void *src, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

/* Normalises the valid run text[0..n) onto b. */
static int flush_run(buffer *b, const char *run, size_t n, utf8proc_option_t opt) {
    if (!n) return 0;
    utf8proc_uint8_t *out = NULL;
    utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)run, (utf8proc_ssize_t)n, &out, opt);
    int rc = m < 0 ? append(b, run, n) : append(b, out, (size_t)m); /* m < 0: only out of memory here */
    free(out);
    return m == UTF8PROC_ERROR_NOMEM ? -1 : rc;
}

char *kv_normalize(kv_normalization form, const char *text, size_t len, size_t *out_len) {
    buffer b = {NULL, 0, 0};
    const utf8proc_option_t opt = options(form);
    size_t run = 0; /* start of the current valid run */
    int rc = append(&b, "", 0);
    for (size_t i = 0; rc == 0 && i < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)text + i, (utf8proc_ssize_t)(len - i), &cp);
        if (n > 0) {
            i += (size_t)n;
            continue;
        }
        rc = flush_run(&b, text + run, i - run, opt); /* not UTF-8: one byte through as it is */
        if (rc == 0) rc = append(&b, text + i, 1);
        run = ++i;
    }
    if (rc == 0) rc = flush_run(&b, text + run, len - run, opt);
    if (rc != 0) {
        free(b.p);
        return NULL;
    }
    *out_len = b.len;
    return b.p;
}
