/* The two attention families behind kvattn_attn_forward. Arguments are
 * checked by the caller (forward.c). */
#ifndef KVATTN_ATTN_LAYER_H
#define KVATTN_ATTN_LAYER_H

#include "kv/kv_cache.h"

kvattn_status kv_gqa_forward(const kvattn_layer_config *cfg, const kvattn_layer_weights *w, kvattn_cache *cache,
                             int layer, int pos, int T, const float *x, float *out);

kvattn_status kv_mla_forward(const kvattn_layer_config *cfg, const kvattn_layer_weights *w, kvattn_cache *cache,
                             int layer, int pos, int T, const float *x, float *out, kvattn_mla_mode mode);

/* MLA attention of T projected queries q [T][H][d_nope + d_R] (already
 * rotated) over layer `layer` of the cache → per-head outputs o [T][H][d_v]. */
kvattn_status kv_mla_attend(const kvattn_layer_config *cfg, const kvattn_layer_weights *w, const kvattn_cache *cache,
                            int layer, int pos, int T, const float *q, float *o, kvattn_mla_mode mode);

/* Float buffers carved from one allocation. */
typedef struct {
    float *base;
    size_t used, cap;
} kv_arena;

/* Reserves room for the given element counts (0-terminated list);
 * returns 0 on overflow or allocation failure. */
int kv_arena_init(kv_arena *a, const size_t *counts);
float *kv_arena_take(kv_arena *a, size_t n);
void kv_arena_free(kv_arena *a);

#endif
