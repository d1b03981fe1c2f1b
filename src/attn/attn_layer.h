/* The two attention families behind kvattn_attn_forward. Arguments are
 * checked by the caller (forward.c). */
#ifndef KVATTN_ATTN_LAYER_H
#define KVATTN_ATTN_LAYER_H

#include "kernels/ops.h"
#include "kv/kv_cache.h"

/* The rows of one forward pass: n_seqs sequences in order, sequence i's
 * len[i] rows (its next tokens; len NULL: one each) run into caches[i] from
 * position pos[i]. One sequence of T rows is a prompt chunk; several of one
 * row each, a batched decode step; a mix, a step that also runs prompts. */
typedef struct {
    kvattn_cache *const *caches;
    const int *pos;
    const int *len;
    int n_seqs;
} kv_seq_rows;

static inline int kv_seq_len(const kv_seq_rows *r, int i) { return r->len ? r->len[i] : 1; }

/* The forward of the T rows of x (all of r's rows, in order). Each
 * sequence's rows get the bits they get in a pass of their own (kv_project). */
kvattn_status kv_gqa_forward(const kvattn_layer_config *cfg, const kvattn_layer_weights *w, const kv_seq_rows *r,
                             int layer, int T, const float *x, float *out);

kvattn_status kv_mla_forward(const kvattn_layer_config *cfg, const kvattn_layer_weights *w, const kv_seq_rows *r,
                             int layer, int T, const float *x, float *out, kvattn_mla_mode mode);

/* The sequences from i on that one product takes so that each keeps the bits
 * of a pass of its own: a run of one-row sequences (a decode batch: *decode
 * set), or one sequence of several rows (a prompt chunk). Returns how many
 * sequences; *rows their rows. */
static inline int kv_seq_group(const kv_seq_rows *r, int i, int *rows, int *decode) {
    int ones = 0;
    while (i + ones < r->n_seqs && kv_seq_len(r, i + ones) == 1) ones++;
    *decode = ones > 0;
    *rows = ones ? ones : kv_seq_len(r, i);
    return ones ? ones : 1;
}

/* y = W·x for r's rows, each sequence's rows with the bits they get alone: a
 * sequence of several rows is a prompt chunk (kv_matmul of its rows), a run of
 * one-row sequences a decode batch (kv_matmul_decode, each row as kv_matmul
 * gives it alone). Where kv_matmul runs every T as a decode batch, all rows
 * go in one call; otherwise in one call per chunk and per run. */
static inline void kv_project(float *y, const float *x, kvattn_matrix W, const kv_seq_rows *r, int n, int k) {
    int T = 0;
    for (int i = 0; i < r->n_seqs; i++) T += kv_seq_len(r, i);
    if (r->n_seqs == 1) {
        kv_matmul(y, x, W, T, n, k);
        return;
    }
    if (kv_matmul_is_decode(W)) {
        kv_matmul_decode(y, x, W, T, n, k);
        return;
    }
    for (int i = 0, t = 0, rows, decode; i < r->n_seqs; t += rows) {
        i += kv_seq_group(r, i, &rows, &decode);
        if (decode) kv_matmul_decode(y + (size_t)t * n, x + (size_t)t * k, W, rows, n, k);
        else kv_matmul(y + (size_t)t * n, x + (size_t)t * k, W, rows, n, k);
    }
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
