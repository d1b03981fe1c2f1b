/* The KV-cache planner: parameters, redesigns, and memory per design. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

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

static int is_moe_layer(const kvattn_model_desc *m, int layer) {
    if (m->n_routed_experts <= 0 || layer < m->n_dense_layers) return 0;
    int freq = m->moe_layer_freq > 0 ? m->moe_layer_freq : 1;
    return layer % freq == 0;
}

int64_t kvattn_model_params(const kvattn_model_desc *m) {
    if (!m || kvattn_config_validate(&m->attn) != KVATTN_OK || m->n_layers < 1 || m->vocab_size < 0 ||
        m->ffn_dim < 0 || m->moe_ffn_dim < 0 || m->n_routed_experts < 0 || m->n_shared_experts < 0)
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
    for (int l = 0; l < m->n_layers; l++) {
        acc_add(&total, attn);
        acc_add(&total, norms);
        acc_add(&total, is_moe_layer(m, l) ? moe : dense);
    }
    acc_add(&total, mul3(m->vocab_size, D, m->tied_embeddings ? 1 : 2, &ovf)); /* embedding (+ head) */
    acc_add(&total, m->gpt2_style || m->parallel_attn ? 2 * D : D);            /* final norm */
    if (m->gpt2_style) acc_add(&total, mul3(m->context_length, D, 1, &ovf));   /* learned positions */
    return total.overflow || ovf ? -1 : total.v;
}

kvattn_status kvattn_redesign(const kvattn_layer_config *in, const char *design, kvattn_layer_config *out) {
    if (!in || !design || !out) return kv_fail(KVATTN_ERR_INVALID_ARG, "redesign: NULL argument");
    kvattn_status st = kvattn_config_validate(in);
    if (st != KVATTN_OK) return st;
    const int H = in->n_heads, width = in->kind == KVATTN_ATTN_GQA ? in->head_dim : in->v_head_dim;
    kvattn_layer_config c = *in;
    char *end;
    if (!strcmp(design, "mha") || !strcmp(design, "mqa") || !strncmp(design, "gqa:", 4)) {
        long g = !strcmp(design, "mha") ? H : !strcmp(design, "mqa") ? 1 : strtol(design + 4, &end, 10);
        if (!strncmp(design, "gqa:", 4) && (end == design + 4 || *end || g < 1 || g > H || H % g != 0))
            return kv_fail(KVATTN_ERR_INVALID_ARG, "design '%s': G must divide n_heads = %d", design, H);
        c.kind = KVATTN_ATTN_GQA;
        c.n_kv_heads = (int)g;
        c.head_dim = width;
        c.rope.n_rot = in->kind == KVATTN_ATTN_GQA ? in->rope.n_rot : 0;
    } else if (!strncmp(design, "mla:", 4)) {
        long dc = strtol(design + 4, &end, 10), dr = -1;
        if (end != design + 4 && *end == '+') {
            const char *p = end + 1;
            dr = strtol(p, &end, 10);
            if (end == p || *end) dr = -1;
        }
        if (dc < 1 || dc > KV_MAX_DIM || dr < 2 || dr > KV_MAX_DIM || dr % 2)
            return kv_fail(KVATTN_ERR_INVALID_ARG,
                           "design '%s': expected mla:DC+DR with DC ≥ 1 and DR even ≥ 2 (e.g. mla:512+64)", design);
        if (in->kind == KVATTN_ATTN_GQA) {
            c.kind = KVATTN_ATTN_MLA;
            c.q_lora_rank = 0;
            c.qk_nope_head_dim = width;
            c.v_head_dim = width;
            c.rms_eps = 1e-6f;
        }
        c.kv_lora_rank = (int)dc;
        c.qk_rope_head_dim = (int)dr;
        c.rope.n_rot = 0;
    } else {
        return kv_fail(KVATTN_ERR_INVALID_ARG, "unknown design '%s' (expected mha, mqa, gqa:G or mla:DC+DR)", design);
    }
    if ((st = kvattn_config_validate(&c)) != KVATTN_OK) return st;
    *out = c;
    return KVATTN_OK;
}

static int mul_u64(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_mul_overflow(a, b, r); }

kvattn_status kvattn_plan(const kvattn_model_desc *m, const char *design, const kvattn_plan_options *opt,
                          kvattn_plan_row *row) {
    if (!m || !opt || !row) return kv_fail(KVATTN_ERR_INVALID_ARG, "plan: NULL argument");
    if (opt->ctx < 1 || opt->batch < 1)
        return kv_fail(KVATTN_ERR_INVALID_ARG, "plan: ctx = %lld and batch = %lld must be at least 1",
                       (long long)opt->ctx, (long long)opt->batch);
    if (opt->n_gpus < 0) return kv_fail(KVATTN_ERR_INVALID_ARG, "plan: n_gpus = %lld", (long long)opt->n_gpus);
    kvattn_model_desc md = *m;
    kvattn_status st = kvattn_config_validate(&m->attn);
    if (st != KVATTN_OK) return st;
    if (design && *design && (st = kvattn_redesign(&m->attn, design, &md.attn)) != KVATTN_OK) return st;
    memset(row, 0, sizeof *row);
    char own[32];
    kvattn_config_design_name(&md.attn, row->design, sizeof row->design);
    row->native = !strcmp(row->design, kvattn_config_design_name(&m->attn, own, sizeof own)) &&
                  md.attn.kind == m->attn.kind;
    int64_t params = kvattn_model_params(&md);
    if (params < 0) return kv_fail(KVATTN_ERR_CONFIG, "plan: model '%s' has an invalid or overflowing size", m->name);
    row->kv_elems_per_token_layer = kvattn_kv_elems_per_token_layer(&md.attn);
    row->kv_bytes_per_token = kvattn_kv_bytes_per_token(&md.attn, m->n_layers, opt->kv_type);
    row->weights_bytes = kvattn_row_bytes(opt->weights_type, params);
    uint64_t per_seq;
    if (row->kv_bytes_per_token == 0 || row->weights_bytes == 0 ||
        !mul_u64(row->kv_bytes_per_token, (uint64_t)opt->ctx, &per_seq) ||
        !mul_u64(per_seq, (uint64_t)opt->batch, &row->kv_bytes_total) ||
        __builtin_add_overflow(row->kv_bytes_total, row->weights_bytes, &row->total_bytes))
        return kv_fail(KVATTN_ERR_INVALID_ARG,
                       "plan: %s at ctx %lld × batch %lld overflows 64-bit byte counts", row->design,
                       (long long)opt->ctx, (long long)opt->batch);
    row->max_context = -1;
    if (opt->gpu_mem_bytes) {
        row->gpus_needed = (int64_t)((row->total_bytes + opt->gpu_mem_bytes - 1) / opt->gpu_mem_bytes);
        int64_t g = opt->n_gpus ? opt->n_gpus : row->gpus_needed;
        uint64_t mem, per_token_all;
        if (!mul_u64(opt->gpu_mem_bytes, (uint64_t)g, &mem)) mem = UINT64_MAX;
        if (!mul_u64(row->kv_bytes_per_token, (uint64_t)opt->batch, &per_token_all)) per_token_all = UINT64_MAX;
        uint64_t fit = mem <= row->weights_bytes ? 0 : (mem - row->weights_bytes) / per_token_all;
        row->max_context = fit > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)fit;
    }
    return KVATTN_OK;
}
