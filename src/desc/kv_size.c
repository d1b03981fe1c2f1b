/* KV cache sizes: the one formula both the planner and the cache use. */
#include "internal.h"

int64_t kvattn_kv_elems_per_token_layer(const kvattn_layer_config *cfg) {
    if (!cfg || kvattn_config_validate(cfg) != KVATTN_OK) return 0;
    if (cfg->kind == KVATTN_ATTN_MLA) return (int64_t)cfg->kv_lora_rank + cfg->qk_rope_head_dim;
    return 2 * (int64_t)cfg->n_kv_heads * cfg->head_dim;
}

/* Bytes per token per layer: GQA family stores one K row and one V row per
 * KV head; MLA stores one c_KV ‖ k_R row (in the K type). */
static size_t layer_bytes_per_token(const kvattn_layer_config *cfg, kvattn_type k_type, kvattn_type v_type) {
    if (cfg->kind == KVATTN_ATTN_MLA)
        return kvattn_row_bytes(k_type, (int64_t)cfg->kv_lora_rank + cfg->qk_rope_head_dim);
    const size_t k = kvattn_row_bytes(k_type, cfg->head_dim), v = kvattn_row_bytes(v_type, cfg->head_dim);
    size_t out;
    if (k == 0 || v == 0 || !kv_mul_size(k + v, (size_t)cfg->n_kv_heads, &out)) return 0;
    return out;
}

size_t kvattn_kv_bytes_per_token_kv(const kvattn_layer_config *cfg, int n_layers, kvattn_type k_type,
                                    kvattn_type v_type) {
    if (!cfg || n_layers < 1 || kvattn_config_validate(cfg) != KVATTN_OK) return 0;
    size_t per_layer = layer_bytes_per_token(cfg, k_type, v_type), out;
    if (!kv_mul_size(per_layer, (size_t)n_layers, &out)) return 0;
    return out;
}

size_t kvattn_kv_bytes_per_token(const kvattn_layer_config *cfg, int n_layers, kvattn_type t) {
    return kvattn_kv_bytes_per_token_kv(cfg, n_layers, t, t);
}
