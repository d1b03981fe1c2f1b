/* Parameter counts of a model description, layer by layer. */
#include "internal.h"

/* Checked 64-bit arithmetic: any overflow poisons the accumulator to -1. */
typedef struct {
    int64_t v;
    int overflow;
} acc64;

static void acc_add(acc64 *a, int64_t x) {
    if (__builtin_add_overflow(a->v, x, &a->v)) a->overflow = 1;
}

static int64_t mul3(int64_t a, int64_t b, int64_t c, int *overflow) {
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r) || __builtin_mul_overflow(r, c, &r)) {
        *overflow = 1;
        return 0;
    }
    return r;
}

static int64_t attn_params(const kvattn_model_desc *m, const kvattn_layer_config *c, int *ovf) {
    int64_t D = c->d_model, H = c->n_heads;
    acc64 a = {0, 0};
    if (c->kind == KVATTN_ATTN_GQA) {
        int64_t qd = H * c->head_dim, kvd = (int64_t)c->n_kv_heads * c->head_dim;
        acc_add(&a, mul3(D, qd + 2 * kvd, 1, ovf)); /* wq, wk, wv */
        acc_add(&a, mul3(qd, D, 1, ovf));           /* wo */
        if (m->qkv_bias || m->gpt2_style) acc_add(&a, qd + 2 * kvd);
        if (m->gpt2_style) acc_add(&a, D);
        if (m->qk_norm) acc_add(&a, 2 * (int64_t)c->head_dim);
    } else {
        int64_t ql = c->q_lora_rank, dq = (int64_t)c->qk_nope_head_dim + c->qk_rope_head_dim;
        int64_t dc = c->kv_lora_rank, dr = c->qk_rope_head_dim;
        if (ql) acc_add(&a, mul3(D, ql, 1, ovf) + ql + mul3(ql, H, dq, ovf));
        else acc_add(&a, mul3(D, H, dq, ovf));
        acc_add(&a, mul3(D, dc + dr, 1, ovf) + dc);                                  /* wkv_a, kv_norm */
        acc_add(&a, mul3(dc, H, (int64_t)c->qk_nope_head_dim + c->v_head_dim, ovf)); /* wkv_b */
        acc_add(&a, mul3(H, c->v_head_dim, D, ovf));                                 /* wo */
    }
    if (a.overflow) *ovf = 1;
    return a.v;
}

int kvattn_model_is_moe_layer(const kvattn_model_desc *m, int layer) {
    if (!m) return 0;
    if (m->n_routed_experts <= 0 || layer < m->n_dense_layers) return 0;
    int freq = m->moe_layer_freq > 0 ? m->moe_layer_freq : 1;
    return layer % freq == 0;
}

/* How many layers are MoE, counted without walking them: a hostile config may
 * claim a hundred million layers, and the planner must answer at once. */
static int64_t moe_layer_count(const kvattn_model_desc *m) {
    if (m->n_routed_experts <= 0 || m->n_dense_layers >= m->n_layers) return 0;
    const int64_t freq = m->moe_layer_freq > 0 ? m->moe_layer_freq : 1,
                  first = m->n_dense_layers > 0 ? m->n_dense_layers : 0;
    /* multiples of freq in [first, n_layers) */
    return (m->n_layers - 1) / freq - (first > 0 ? (first - 1) / freq : -1);
}

int64_t kvattn_model_params(const kvattn_model_desc *m) {
    if (!m || kvattn_config_validate(&m->attn) != KVATTN_OK || m->n_layers < 1 || m->vocab_size < 0 || m->ffn_dim < 0 ||
        m->moe_ffn_dim < 0 || m->n_routed_experts < 0 || m->n_shared_experts < 0)
        return -1;
    int ovf = 0;
    int64_t D = m->attn.d_model, ffn_mats = m->ffn_gated ? 3 : 2;
    acc64 total = {0, 0};
    int64_t attn = attn_params(m, &m->attn, &ovf);
    int64_t norms = m->gpt2_style ? 4 * D : 2 * D; /* two norms; LayerNorm has a bias (Falcon: one norm w+b) */
    int64_t dense = mul3(ffn_mats, D, m->ffn_dim, &ovf) + (m->gpt2_style ? m->ffn_dim + D : 0);
    int64_t expert = mul3(3, D, m->moe_ffn_dim, &ovf);
    int64_t moe = mul3(expert, (int64_t)m->n_routed_experts + m->n_shared_experts, 1, &ovf) +
                  mul3(D, m->n_routed_experts, 1, &ovf);
    const int64_t L = m->n_layers, n_moe = moe_layer_count(m);
    acc_add(&total, mul3(L, attn, 1, &ovf));
    acc_add(&total, mul3(L, norms, 1, &ovf));
    acc_add(&total, mul3(n_moe, moe, 1, &ovf));
    acc_add(&total, mul3(L - n_moe, dense, 1, &ovf));
    acc_add(&total, mul3(m->vocab_size, D, m->tied_embeddings ? 1 : 2, &ovf)); /* embedding (+ head) */
    acc_add(&total, m->gpt2_style || m->parallel_attn ? 2 * D : D);            /* final norm */
    if (m->gpt2_style) acc_add(&total, mul3(m->context_length, D, 1, &ovf));   /* learned positions */
    return total.overflow || ovf ? -1 : total.v;
}
