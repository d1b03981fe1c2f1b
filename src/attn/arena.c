/* Scratch buffers of one attention call, carved from one allocation. */
#include "attn_layer.h"

int kv_arena_init(kv_arena *a, const size_t *counts) {
    size_t total = 0;
    for (const size_t *c = counts; *c; c++) {
        size_t padded = (*c + 15) & ~(size_t)15; /* keep every buffer 64-byte aligned */
        if (padded < *c || total > SIZE_MAX / sizeof(float) - padded) return 0;
        total += padded;
    }
    a->base = kv_alloc_aligned(total * sizeof(float));
    a->used = 0;
    a->cap = total;
    return a->base != NULL;
}

float *kv_arena_take(kv_arena *a, size_t n) {
    float *p = a->base + a->used;
    a->used += (n + 15) & ~(size_t)15;
    return p;
}

void kv_arena_free(kv_arena *a) {
    kv_free_aligned(a->base);
    a->base = NULL;
}
