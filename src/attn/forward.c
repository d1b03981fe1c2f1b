/* kvattn_attn_forward, kvattn_attn_decode_batch and kvattn_attn_forward_seqs:
 * argument checks, then the design's forward. */
#include "attn_layer.h"

#include <limits.h>

static kvattn_status check_layer_args(const kvattn_layer_config *cfg, const kvattn_layer_weights *w, const void *x,
                                      const float *out, kvattn_mla_mode mla_mode) {
    kvattn_status st = kvattn_config_validate(cfg);
    if (st != KVATTN_OK) return st;
    if ((st = kvattn_weights_validate(cfg, w)) != KVATTN_OK) return st;
    if (!x || !out) return kv_fail(KVATTN_ERR_INVALID_ARG, "attention: x and out must not be NULL");
    if (cfg->kind == KVATTN_ATTN_MLA && mla_mode != KVATTN_MLA_ABSORBED && mla_mode != KVATTN_MLA_NAIVE)
        return kv_fail(KVATTN_ERR_INVALID_ARG, "attention: mla_mode = %d is neither absorbed nor naive", (int)mla_mode);
    return KVATTN_OK;
}

/* T tokens at pos in `layer` of the cache: it is there, made for cfg, and has room. */
static kvattn_status check_cache_args(const kvattn_layer_config *cfg, const kvattn_cache *cache, int layer, int pos,
                                      int T) {
    if (!cache) return kv_fail(KVATTN_ERR_INVALID_ARG, "attention: cache is NULL");
    kvattn_status st = kv_cache_check_config(cache, cfg);
    if (st != KVATTN_OK) return st;
    if (layer < 0 || layer >= kvattn_cache_n_layers(cache))
        return kv_fail(KVATTN_ERR_INVALID_ARG, "attention: layer = %d is outside the cache's [0, %d)", layer,
                       kvattn_cache_n_layers(cache));
    if (T < 1) return kv_fail(KVATTN_ERR_INVALID_ARG, "attention: T = %d tokens, need at least 1", T);
    if (pos < 0 || pos > kvattn_cache_length(cache, layer))
        return kv_fail(KVATTN_ERR_INVALID_ARG, "attention: pos = %d but layer %d of the cache holds %d tokens", pos,
                       layer, kvattn_cache_length(cache, layer));
    if (T > kvattn_cache_capacity(cache) - pos)
        return kv_fail(KVATTN_ERR_CACHE_FULL, "cache full: %d tokens at position %d exceed the capacity of %d tokens",
                       T, pos, kvattn_cache_capacity(cache));
    return KVATTN_OK;
}

static kvattn_status forward(const kvattn_layer_config *cfg, const kvattn_layer_weights *w, const kv_seq_rows *r,
                             int layer, int T, const float *x, float *out, kvattn_mla_mode mla_mode) {
    if (cfg->kind == KVATTN_ATTN_MLA) return kv_mla_forward(cfg, w, r, layer, T, x, out, mla_mode);
    return kv_gqa_forward(cfg, w, r, layer, T, x, out);
}

kvattn_status kvattn_attn_forward(const kvattn_layer_config *cfg, const kvattn_layer_weights *w, kvattn_cache *cache,
                                  int layer, int pos, int T, const float *x, float *out, kvattn_mla_mode mla_mode) {
    kv_clear_error();
    kvattn_status st = check_layer_args(cfg, w, x, out, mla_mode);
    if (st == KVATTN_OK) st = check_cache_args(cfg, cache, layer, pos, T);
    const kv_seq_rows r = {.caches = &cache, .pos = &pos, .len = &T, .n_seqs = 1};
    return st == KVATTN_OK ? forward(cfg, w, &r, layer, T, x, out, mla_mode) : st;
}

/* n sequences of len[i] rows each (len NULL: one each). */
static kvattn_status forward_seqs(const kvattn_layer_config *cfg, const kvattn_layer_weights *w,
                                  kvattn_cache *const *caches, const int *pos, const int *len, int n, int layer,
                                  const float *x, float *out, kvattn_mla_mode mla_mode, const char *what) {
    kv_clear_error();
    kvattn_status st = check_layer_args(cfg, w, x, out, mla_mode);
    if (st != KVATTN_OK) return st;
    if (!caches || !pos || n < 1)
        return kv_fail(KVATTN_ERR_INVALID_ARG, "%s: %d sequences, caches or positions missing", what, n);
    long T = 0;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < i; j++)
            if (caches[j] == caches[i])
                return kv_fail(KVATTN_ERR_INVALID_ARG, "%s: sequences %d and %d share one cache", what, j, i);
        const int rows = len ? len[i] : 1;
        if ((st = check_cache_args(cfg, caches[i], layer, pos[i], rows)) != KVATTN_OK) return st;
        T += rows;
    }
    if (T > INT_MAX) return kv_fail(KVATTN_ERR_INVALID_ARG, "%s: %ld rows in all", what, T);
    const kv_seq_rows r = {.caches = caches, .pos = pos, .len = len, .n_seqs = n};
    return forward(cfg, w, &r, layer, (int)T, x, out, mla_mode);
}

kvattn_status kvattn_attn_decode_batch(const kvattn_layer_config *cfg, const kvattn_layer_weights *w,
                                       kvattn_cache *const *caches, const int *pos, int n, int layer, const float *x,
                                       float *out, kvattn_mla_mode mla_mode) {
    return forward_seqs(cfg, w, caches, pos, NULL, n, layer, x, out, mla_mode, "batched attention");
}

kvattn_status kvattn_attn_forward_seqs(const kvattn_layer_config *cfg, const kvattn_layer_weights *w,
                                       kvattn_cache *const *caches, const int *pos, const int *len, int n, int layer,
                                       const float *x, float *out, kvattn_mla_mode mla_mode) {
    if (!len) return kv_fail(KVATTN_ERR_INVALID_ARG, "attention of several sequences: len is NULL");
    return forward_seqs(cfg, w, caches, pos, len, n, layer, x, out, mla_mode, "attention of several sequences");
}
