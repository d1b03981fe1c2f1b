/* The KV-cache planner: a model's memory in one design. */
#include "internal.h"

#include <string.h>

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
    row->native =
        !strcmp(row->design, kvattn_config_design_name(&m->attn, own, sizeof own)) && md.attn.kind == m->attn.kind;
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
        return kv_fail(KVATTN_ERR_INVALID_ARG, "plan: %s at ctx %lld × batch %lld overflows 64-bit byte counts",
                       row->design, (long long)opt->ctx, (long long)opt->batch);
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
