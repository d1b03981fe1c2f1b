/* The two attention families behind kvattn_attn_forward. Arguments are
 * checked by the caller (forward.c). */
#ifndef KVATTN_ATTN_LAYER_H
#define KVATTN_ATTN_LAYER_H

#include "kernels/ops.h"
#include "kv/kv_cache.h"

/* The forward of T rows of x for n_seqs sequences, caches[i] at position
 * pos[i]: one sequence (n_seqs = 1) takes all T rows as its tokens; several
 * (a batched decode step) take one row each (T = n_seqs), projected by
 * kv_matmul_decode, so that each row's outputs are what it gets alone. */
kvattn_status kv_gqa_forward(const kvattn_layer_config *cfg, const kvattn_layer_weights *w, kvattn_cache *const *caches,
                             const int *pos, int n_seqs, int layer, int T, const float *x, float *out);

kvattn_status kv_mla_forward(const kvattn_layer_config *cfg, const kvattn_layer_weights *w, kvattn_cache *const *caches,
                             const int *pos, int n_seqs, int layer, int T, const float *x, float *out,
                             kvattn_mla_mode mode);

/* Row t's position: pos[0] + t for one sequence, else its own sequence's. */
static inline int kv_row_pos(const int *pos, int n_seqs, int t) { return n_seqs == 1 ? pos[0] + t : pos[t]; }

/* y = W·x for T rows: tokens of one sequence (kv_matmul), or one token of
 * each of T sequences (kv_matmul_decode: each row as it would be alone). */
static inline void kv_project(float *y, const float *x, kvattn_matrix W, int T, int n, int k, int decode) {
    if (decode) kv_matmul_decode(y, x, W, T, n, k);
    else kv_matmul(y, x, W, T, n, k);
}

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
