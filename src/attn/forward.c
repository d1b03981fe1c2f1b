/* kvattn_attn_forward: argument checks, then the design's forward. */
#include "attn_layer.h"

kvattn_status kvattn_attn_forward(const kvattn_layer_config *cfg, const kvattn_layer_weights *w, kvattn_cache *cache,
                                  int layer, int pos, int T, const float *x, float *out, kvattn_mla_mode mla_mode) {
    kv_clear_error();
    kvattn_status st = kvattn_config_validate(cfg);
    if (st != KVATTN_OK) return st;
    if ((st = kvattn_weights_validate(cfg, w)) != KVATTN_OK) return st;
    if (!cache || !x || !out) return kv_fail(KVATTN_ERR_INVALID_ARG, "attention: cache, x and out must not be NULL");
    if ((st = kv_cache_check_config(cache, cfg)) != KVATTN_OK) return st;
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
    if (cfg->kind == KVATTN_ATTN_MLA) {
        if (mla_mode != KVATTN_MLA_ABSORBED && mla_mode != KVATTN_MLA_NAIVE)
            return kv_fail(KVATTN_ERR_INVALID_ARG, "attention: mla_mode = %d is neither absorbed nor naive",
                           (int)mla_mode);
        return kv_mla_forward(cfg, w, cache, layer, pos, T, x, out, mla_mode);
    }
    return kv_gqa_forward(cfg, w, cache, layer, pos, T, x, out);
}
