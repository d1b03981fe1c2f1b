/* Internal view of a KV cache for the attention kernels. */
#ifndef KVATTN_KV_CACHE_H
#define KVATTN_KV_CACHE_H

#include "internal.h"

/* Rows of one layer's K (or V): row (head h, token t) starts at
 * base + h·head_stride + t·token_stride; `dim` elements are read from it. */
typedef struct {
    kvattn_type type;
    const uint8_t *base;
    size_t head_stride;
    size_t token_stride;
    int dim;
} kv_rows;

static inline const void *kv_rows_at(const kv_rows *r, int head, int t) {
    return r->base + (size_t)head * r->head_stride + (size_t)t * r->token_stride;
}

/* K and V rows of a layer. MLA: K is the c_KV ‖ k_R row, V its first d_c
 * elements (the same memory: the "V-less" latent cache). */
void kv_cache_rows(const kvattn_cache *c, int layer, kv_rows *k, kv_rows *v);

/* Checks that a cache was made for this configuration (same shapes). */
kvattn_status kv_cache_check_config(const kvattn_cache *c, const kvattn_layer_config *cfg);

#endif
