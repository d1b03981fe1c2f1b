/* kvattn_attn_forward and kvattn_attn_decode_batch: argument checks, then the
 * design's forward. */
#include "attn_layer.h"

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

static kvattn_status forward(const kvattn_layer_config *cfg, const kvattn_layer_weights *w, kvattn_cache *const *caches,
                             const int *pos, int n_seqs, int layer, int T, const float *x, float *out,
                             kvattn_mla_mode mla_mode) {
    if (cfg->kind == KVATTN_ATTN_MLA) return kv_mla_forward(cfg, w, caches, pos, n_seqs, layer, T, x, out, mla_mode);
    return kv_gqa_forward(cfg, w, caches, pos, n_seqs, layer, T, x, out);
}

kvattn_status kvattn_attn_forward(const kvattn_layer_config *cfg, const kvattn_layer_weights *w, kvattn_cache *cache,
                                  int layer, int pos, int T, const float *x, float *out, kvattn_mla_mode mla_mode) {
    kv_clear_error();
    kvattn_status st = check_layer_args(cfg, w, x, out, mla_mode);
    if (st == KVATTN_OK) st = check_cache_args(cfg, cache, layer, pos, T);
    return st == KVATTN_OK ? forward(cfg, w, &cache, &pos, 1, layer, T, x, out, mla_mode) : st;
}

kvattn_status kvattn_attn_decode_batch(const kvattn_layer_config *cfg, const kvattn_layer_weights *w,
                                       kvattn_cache *const *caches, const int *pos, int n, int layer, const float *x,
                                       float *out, kvattn_mla_mode mla_mode) {
    kv_clear_error();
    kvattn_status st = check_layer_args(cfg, w, x, out, mla_mode);
    if (st != KVATTN_OK) return st;
    if (!caches || !pos || n < 1)
        return kv_fail(KVATTN_ERR_INVALID_ARG, "batched attention: %d sequences, caches or positions missing", n);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < i; j++)
            if (caches[j] == caches[i])
                return kv_fail(KVATTN_ERR_INVALID_ARG, "batched attention: sequences %d and %d share one cache", j, i);
        if ((st = check_cache_args(cfg, caches[i], layer, pos[i], 1)) != KVATTN_OK) return st;
    }
    return forward(cfg, w, caches, pos, n, layer, n, x, out, mla_mode);
}
