/* Scratch memory kept by each calling thread from one call to the next.
 *
 * A decode step's attention needs a few hundred KiB of scratch. Taken from
 * malloc and freed every call, a block that size comes from mmap, and every
 * step then pays page faults and the kernel zeroing the pages again, a
 * visible share of a short decode step. Each thread instead keeps its buffers,
 * grown when a call needs more, and frees them when it exits. */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct {
    float *buf[KV_SCRATCH_SLOTS];
    size_t cap[KV_SCRATCH_SLOTS]; /* floats */
} thread_scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;

static void scratch_release(void *p) {
    thread_scratch *s = p;
    for (int i = 0; i < KV_SCRATCH_SLOTS; i++) kv_free_aligned(s->buf[i]);
    free(s);
}

static void scratch_make_key(void) { scratch_key_ok = pthread_key_create(&scratch_key, scratch_release) == 0; }

float *kv_thread_scratch(kv_scratch_slot slot, size_t n_floats) {
    if ((int)slot < 0 || (int)slot >= KV_SCRATCH_SLOTS || n_floats == 0 || n_floats > SIZE_MAX / sizeof(float))
        return NULL;
    pthread_once(&scratch_once, scratch_make_key);
    if (!scratch_key_ok) return NULL;
    thread_scratch *s = pthread_getspecific(scratch_key);
    if (!s) {
        if (!(s = calloc(1, sizeof *s))) return NULL;
        if (pthread_setspecific(scratch_key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    if (s->cap[slot] < n_floats) {
        kv_free_aligned(s->buf[slot]);
        s->buf[slot] = kv_alloc_aligned(n_floats * sizeof(float));
        s->cap[slot] = s->buf[slot] ? n_floats : 0;
    }
    return s->buf[slot];
}
