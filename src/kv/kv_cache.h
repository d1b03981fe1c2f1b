/* Internal view of a KV cache for the attention kernels. */
#ifndef KVATTN_KV_CACHE_H
#define KVATTN_KV_CACHE_H

#include "internal.h"

/* Rows of one layer's K (or V): row (head h, token t) starts at
 * base + h·head_stride + t·token_stride; `dim` elements are read from it.
 * Paged (blocks ≠ NULL): token t lives in block blocks[t >> block_shift], at
 * base + block·block_bytes, and t counts from that block's first token. A
 * block holds a whole number of attention tiles, so a tile's rows are always
 * at one stride. */
typedef struct {
    kvattn_type type;
    const uint8_t *base;
    size_t head_stride;
    size_t token_stride;
    int dim;
    const int32_t *blocks;
    size_t block_bytes;
    int block_shift;
} kv_rows;

/* Tokens per block of a paged cache: a power of two, a whole number of
 * attention tiles (attn_core.h checks it). */
#define KV_BLOCK_MIN_TOKENS 64
#define KV_BLOCK_MAX_TOKENS 4096

static inline const void *kv_rows_at(const kv_rows *r, int head, int t) {
    const uint8_t *b = r->base;
    if (r->blocks) {
        b += (size_t)r->blocks[t >> r->block_shift] * r->block_bytes;
        t &= (1 << r->block_shift) - 1;
    }
    return b + (size_t)head * r->head_stride + (size_t)t * r->token_stride;
}

/* Rows from t to the end of t's block (paged), else `n`: the most that are
 * at one stride from row t, up to n. */
static inline int kv_rows_run(const kv_rows *r, int t, int n) {
    if (!r->blocks) return n;
    const int left = (1 << r->block_shift) - (t & ((1 << r->block_shift) - 1));
    return left < n ? left : n;
}

/* K and V rows of a layer. MLA: K is the c_KV ‖ k_R row, V its first d_c
 * elements (the same memory: the "V-less" latent cache). */
void kv_cache_rows(const kvattn_cache *c, int layer, kv_rows *k, kv_rows *v);

/* Checks a layer count and the K and V types for a cache of cfg (valid);
 * errors begin with `what`. */
kvattn_status kv_cache_check_layout(const char *what, int n_layers, kvattn_type k_type, kvattn_type v_type,
                                    const kvattn_layer_config *cfg);

/* Checks that a cache was made for this configuration (same shapes). */
kvattn_status kv_cache_check_config(const kvattn_cache *c, const kvattn_layer_config *cfg);

#endif
