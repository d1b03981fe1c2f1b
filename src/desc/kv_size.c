/* KV cache sizes: the one formula both the planner and the cache use. */
#include "internal.h"

int64_t kvattn_kv_elems_per_token_layer(const kvattn_layer_config *cfg) {
    if (!cfg || kvattn_config_validate(cfg) != KVATTN_OK) return 0;
    if (cfg->kind == KVATTN_ATTN_MLA) return (int64_t)cfg->kv_lora_rank + cfg->qk_rope_head_dim;
    return 2 * (int64_t)cfg->n_kv_heads * cfg->head_dim;
}

/* Bytes per token per layer: GQA family stores one K row and one V row per
 * KV head; MLA stores one c_KV ‖ k_R row. */
static size_t layer_bytes_per_token(const kvattn_layer_config *cfg, kvattn_type t) {
    if (cfg->kind == KVATTN_ATTN_MLA) return kvattn_row_bytes(t, (int64_t)cfg->kv_lora_rank + cfg->qk_rope_head_dim);
    size_t row = kvattn_row_bytes(t, cfg->head_dim), out;
    if (!kv_mul_size(row, 2 * (size_t)cfg->n_kv_heads, &out)) return 0;
    return out;
}

size_t kvattn_kv_bytes_per_token(const kvattn_layer_config *cfg, int n_layers, kvattn_type t) {
    if (!cfg || n_layers < 1 || kvattn_config_validate(cfg) != KVATTN_OK) return 0;
    size_t per_layer = layer_bytes_per_token(cfg, t), out;
    if (!kv_mul_size(per_layer, (size_t)n_layers, &out)) return 0;
    return out;
}
