/* Internal helpers shared by every part of libkvattn (not installed). */
#ifndef KVATTN_INTERNAL_H
#define KVATTN_INTERNAL_H

#include "kvattn.h"

#include <stdint.h>
#include <stdio.h>

#if defined(__GNUC__)
#define KV_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define KV_PRINTF(f, a)
#endif

/* Records a formatted message for kvattn_last_error() and returns `s`. */
kvattn_status kv_fail(kvattn_status s, const char *fmt, ...) KV_PRINTF(2, 3);

/* Clears the per-thread error message. */
void kv_clear_error(void);

/* Opens a regular file for reading: a FIFO, a directory or a device is
 * refused with a message naming the path (a FIFO would block the open). The
 * descriptor, or -1 with *st set. */
int kv_open_regular(const char *path, kvattn_status *st);
/* The same as a stdio stream ("rb"), or NULL with *st set. */
FILE *kv_fopen_regular(const char *path, kvattn_status *st);
/* A whole regular file of at most max bytes, NUL-terminated; NULL with *st set
 * (not regular, unreadable, larger than max, out of memory). */
char *kv_read_file(const char *path, size_t max, kvattn_status *st);

/* 64-byte aligned allocation (size rounded up); NULL on failure or size 0.
 * Free with kv_free_aligned. */
void *kv_alloc_aligned(size_t size);
void kv_free_aligned(void *p);

/* Per-thread scratch kept between calls (scratch.c): the buffer of `slot`
 * for the calling thread, at least n_floats long and 64-byte aligned; NULL if
 * it cannot be allocated. Valid until this thread asks for the same slot
 * again; contents are not kept. One slot per user, so a user may call another
 * while holding its buffer. */
typedef enum { KV_SCRATCH_ATTN, KV_SCRATCH_GEMM, KV_SCRATCH_SLOTS } kv_scratch_slot;
float *kv_thread_scratch(kv_scratch_slot slot, size_t n_floats);

/* a·b into *out; 0 on overflow. */
static inline int kv_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

/* Upper bound on any single dimension we accept: keeps every derived size
 * far from overflow on 64-bit machines and rejects absurd inputs early. */
#define KV_MAX_DIM (1 << 24)

/* Bounds on counts a model file states, far above any real model's: layers,
 * heads, experts and expert groups; and the bytes of one vocabulary piece. */
#define KV_MAX_LAYERS      65536
#define KV_MAX_HEADS       65536
#define KV_MAX_EXPERTS     65536
#define KV_MAX_PIECE_BYTES 65536

#endif
