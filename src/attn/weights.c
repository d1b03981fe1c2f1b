/* Checks that a layer's weights are all there and of a type the kernels read. */
#include "internal.h"
#include "kernels/quants.h"

static const char *check_matrix(const kvattn_matrix *m, const char *name, int *bad_type) {
    if (!m->data) return name;
    if (!kvattn_type_is_cache_type(m->type) && !kv_is_block_quant(m->type)) {
        *bad_type = 1;
        return name;
    }
    return NULL;
}

kvattn_status kvattn_weights_validate(const kvattn_layer_config *cfg, const kvattn_layer_weights *w) {
    if (!w) return kv_fail(KVATTN_ERR_INVALID_ARG, "layer weights: NULL");
    const char *bad = NULL;
    int bad_type = 0;
#define NEED(field)                                                                                                    \
    if (!bad) bad = check_matrix(&w->field, #field, &bad_type)
    if (cfg->kind == KVATTN_ATTN_GQA) {
        NEED(wq);
        NEED(wk);
        NEED(wv);
        NEED(wo);
    } else {
        if (cfg->q_lora_rank == 0) {
            NEED(wq);
        } else {
            NEED(wq_a);
            NEED(wq_b);
            if (!bad && !w->q_norm) bad = "q_norm";
        }
        NEED(wkv_a);
        if (w->wkv_b.data || (!w->wk_b.data && !w->wv_b.data)) {
            NEED(wkv_b);
        } else {
            NEED(wk_b);
            NEED(wv_b);
        }
        NEED(wo);
        if (!bad && !w->kv_norm && !cfg->kv_norm_off) bad = "kv_norm";
    }
#undef NEED
    if (bad && bad_type)
        return kv_fail(KVATTN_ERR_UNSUPPORTED,
                       "layer weights: %s has a type the kernels cannot read (f32, f16, bf16, q8_0)", bad);
    if (bad) return kv_fail(KVATTN_ERR_INVALID_ARG, "layer weights: %s is NULL but the config needs it", bad);
    return KVATTN_OK;
}
