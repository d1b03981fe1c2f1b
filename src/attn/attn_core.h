/* The attention kernel every design runs on: causal softmax attention of
 * query heads over KV rows in the cache, grouped by KV head. */
#ifndef KVATTN_ATTN_CORE_H
#define KVATTN_ATTN_CORE_H

#include "kv/kv_cache.h"

/* Context tokens scored at once; the score buffer is [group][KV_TILE]. */
#define KV_TILE 64
_Static_assert(KV_BLOCK_MIN_TOKENS % KV_TILE == 0, "a paged cache's block holds whole tiles");

/* q   [T][n_heads][k->dim]   queries (already rotated)
 * out [T][n_heads][v->dim]
 * Query head h reads KV head h / (n_heads / n_kv_heads). Token t attends
 * over cache rows 0..pos+t with an online softmax in tiles of KV_TILE: no
 * T × T score matrix exists. The n_heads/n_kv_heads query heads that share
 * a KV head are processed together in one pass over its rows.
 * Returns 0, or -1 if scratch memory could not be allocated. */
int kv_attend(const float *q, int T, int n_heads, int n_kv_heads, const kv_rows *k, const kv_rows *v, int pos,
              float scale, float *out);

/* Scalar twin: the same online softmax, one head at a time, with the
 * scalar row helpers. */
void kv_attend_ref(const float *q, int T, int n_heads, int n_kv_heads, const kv_rows *k, const kv_rows *v, int pos,
                   float scale, float *out);

#endif
