/* A layer's description: validation, softmax scale, design names. */
#include "internal.h"

#include <math.h>

#define CHECK_DIM(field, minv)                                                                                         \
    do {                                                                                                               \
        if (cfg->field < (minv) || cfg->field > KV_MAX_DIM)                                                            \
            return kv_fail(KVATTN_ERR_CONFIG, "layer config: %s = %d is out of range [%d, %d]", #field, cfg->field,    \
                           (minv), KV_MAX_DIM);                                                                        \
    } while (0)

static kvattn_status validate_rope(const kvattn_layer_config *cfg, int rot_dims_max) {
    const kvattn_rope_config *r = &cfg->rope;
    if (r->n_rot < 0 || r->n_rot > rot_dims_max || (r->n_rot % 2) != 0)
        return kv_fail(KVATTN_ERR_CONFIG, "layer config: rope.n_rot = %d must be even and in [0, %d]", r->n_rot,
                       rot_dims_max);
    if (!(r->theta > 0.0f) || !isfinite(r->theta))
        return kv_fail(KVATTN_ERR_CONFIG, "layer config: rope.theta = %g must be a positive number", (double)r->theta);
    if (r->pairing != KVATTN_ROPE_ADJACENT && r->pairing != KVATTN_ROPE_HALF)
        return kv_fail(KVATTN_ERR_CONFIG, "layer config: rope.pairing = %d is not a pairing", (int)r->pairing);
    const int pairs = (r->n_rot ? r->n_rot : rot_dims_max) / 2;
    for (int i = 0; r->freq_factors && i < pairs; i++)
        if (!(r->freq_factors[i] > 0.0f) || !isfinite(r->freq_factors[i]))
            return kv_fail(KVATTN_ERR_CONFIG, "layer config: rope.freq_factors[%d] = %g must be a positive number", i,
                           (double)r->freq_factors[i]);
    if (r->yarn_factor > 1.0f) {
        if (!isfinite(r->yarn_factor))
            return kv_fail(KVATTN_ERR_CONFIG, "layer config: rope.yarn_factor = %g", (double)r->yarn_factor);
        if (r->yarn_orig_ctx < 1)
            return kv_fail(KVATTN_ERR_CONFIG, "layer config: rope.yarn_orig_ctx = %d must be positive when YaRN is on",
                           r->yarn_orig_ctx);
        if (r->yarn_beta_fast < 0.0f || r->yarn_beta_slow < 0.0f || r->yarn_mscale < 0.0f)
            return kv_fail(KVATTN_ERR_CONFIG, "layer config: YaRN betas and mscale must not be negative");
    }
    return KVATTN_OK;
}

kvattn_status kvattn_config_validate(const kvattn_layer_config *cfg) {
    if (!cfg) return kv_fail(KVATTN_ERR_INVALID_ARG, "layer config: NULL");
    CHECK_DIM(d_model, 1);
    CHECK_DIM(n_heads, 1);
    if (!(cfg->softmax_scale >= 0.0f) || !isfinite(cfg->softmax_scale))
        return kv_fail(KVATTN_ERR_CONFIG, "layer config: softmax_scale = %g must be >= 0 (0 = default)",
                       (double)cfg->softmax_scale);
    if (cfg->kind == KVATTN_ATTN_GQA) {
        CHECK_DIM(n_kv_heads, 1);
        CHECK_DIM(head_dim, 1);
        if (cfg->n_kv_heads > cfg->n_heads || cfg->n_heads % cfg->n_kv_heads != 0)
            return kv_fail(KVATTN_ERR_CONFIG, "layer config: n_heads = %d is not a multiple of n_kv_heads = %d",
                           cfg->n_heads, cfg->n_kv_heads);
        return validate_rope(cfg, cfg->head_dim);
    }
    if (cfg->kind == KVATTN_ATTN_MLA) {
        CHECK_DIM(q_lora_rank, 0);
        CHECK_DIM(kv_lora_rank, 1);
        CHECK_DIM(qk_nope_head_dim, 1);
        CHECK_DIM(qk_rope_head_dim, 2);
        CHECK_DIM(v_head_dim, 1);
        if (cfg->qk_rope_head_dim % 2 != 0)
            return kv_fail(KVATTN_ERR_CONFIG, "layer config: qk_rope_head_dim = %d must be even (RoPE rotates pairs)",
                           cfg->qk_rope_head_dim);
        if (cfg->rope.n_rot != 0 && cfg->rope.n_rot != cfg->qk_rope_head_dim)
            return kv_fail(KVATTN_ERR_CONFIG,
                           "layer config: rope.n_rot = %d must be 0 or qk_rope_head_dim = %d for MLA", cfg->rope.n_rot,
                           cfg->qk_rope_head_dim);
        if (!(cfg->rms_eps >= 0.0f) || !isfinite(cfg->rms_eps))
            return kv_fail(KVATTN_ERR_CONFIG, "layer config: rms_eps = %g", (double)cfg->rms_eps);
        return validate_rope(cfg, cfg->qk_rope_head_dim);
    }
    return kv_fail(KVATTN_ERR_CONFIG, "layer config: kind = %d is neither GQA nor MLA", (int)cfg->kind);
}

/* DeepSeek's YaRN attention factor: 0.1 · m · ln(factor) + 1. */
static double yarn_mscale(const kvattn_rope_config *r) {
    if (!(r->yarn_factor > 1.0f)) return 1.0;
    double m = r->yarn_mscale > 0.0f ? r->yarn_mscale : 1.0;
    return 0.1 * m * log((double)r->yarn_factor) + 1.0;
}

float kvattn_config_softmax_scale(const kvattn_layer_config *cfg) {
    if (cfg->softmax_scale > 0.0f) return cfg->softmax_scale;
    if (cfg->kind == KVATTN_ATTN_MLA) {
        double ms = yarn_mscale(&cfg->rope);
        return (float)(ms * ms / sqrt((double)(cfg->qk_nope_head_dim + cfg->qk_rope_head_dim)));
    }
    return (float)(1.0 / sqrt((double)cfg->head_dim));
}

const char *kvattn_config_design_name(const kvattn_layer_config *cfg, char *buf, size_t size) {
    if (!buf || size == 0) return buf;
    if (cfg->kind == KVATTN_ATTN_MLA) snprintf(buf, size, "mla:%d+%d", cfg->kv_lora_rank, cfg->qk_rope_head_dim);
    else if (cfg->n_kv_heads == cfg->n_heads) snprintf(buf, size, "mha");
    else if (cfg->n_kv_heads == 1) snprintf(buf, size, "mqa");
    else snprintf(buf, size, "gqa:%d", cfg->n_kv_heads);
    return buf;
}
