/* kvattn_model_convert: calibrate on the source model, convert each attention
 * layer (to_gqa.c, to_mla.c), and assemble a model that borrows the rest. */
#include "convert_internal.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "kernels/vec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int kind; /* 0 GQA family, 1 MLA */
    int G;    /* KV heads (GQA family) */
    int dc, dr;
} target;

static kvattn_status parse_design(const kvattn_layer_config *a, const char *design, target *t) {
    char tail;
    const int H = a->n_heads, K = a->n_kv_heads;
    memset(t, 0, sizeof *t);
    if (!design) return kv_fail(KVATTN_ERR_INVALID_ARG, "convert: no target design (gqa:G, mqa, mha, mla:DC+DR)");
    if (!strcmp(design, "mha")) t->G = H;
    else if (!strcmp(design, "mqa")) t->G = 1;
    else if (sscanf(design, "gqa:%d%c", &t->G, &tail) == 1) {
        if (t->G < 1) return kv_fail(KVATTN_ERR_CONFIG, "convert: gqa:%d needs at least one KV head", t->G);
    } else if (sscanf(design, "mla:%d+%d%c", &t->dc, &t->dr, &tail) == 2) {
        if (t->dc < 1 || t->dr < 2 || t->dr % 2)
            return kv_fail(KVATTN_ERR_CONFIG, "convert: %s: d_c must be at least 1 and d_R even and at least 2",
                           design);
        t->kind = 1;
        return KVATTN_OK;
    } else
        return kv_fail(KVATTN_ERR_CONFIG, "convert: unknown target design '%s' (gqa:G, mqa, mha, mla:DC+DR)", design);
    if (t->G > K)
        return kv_fail(KVATTN_ERR_CONFIG,
                       "convert: %s has %d KV heads; the source has %d: conversion only merges heads", design, t->G, K);
    if (K % t->G)
        return kv_fail(KVATTN_ERR_CONFIG, "convert: %s: %d KV heads do not divide the source's %d into equal groups",
                       design, t->G, K);
    return KVATTN_OK;
}

/* The calibration statistics, filled by the session's tap. */
typedef struct {
    int D, L;
    double *xx; /* [L][D][D]: Σ x xᵀ (upper triangle while accumulating) */
    int64_t n;  /* tokens seen by layer 0 */
    /* second pass (norm-keeping MLA): the new latents */
    const kvattn_layer_config *mla;
    float **w_dkv;  /* [L] → [d_c][D] */
    double *A, *Bm; /* [L][d_c][d_c]: Σ ĉ ĉᵀ, Σ c ĉᵀ */
    float *c;       /* [d_c] scratch */
} calib;

static void tap_moments(void *ctx, int layer, int T, const float *x) {
    calib *c = ctx;
    const int D = c->D;
    double *xx = c->xx + (size_t)layer * D * D;
#pragma omp parallel for schedule(dynamic, 8)
    for (int i = 0; i < D; i++) {
        double *row = xx + (size_t)i * D;
        for (int t = 0; t < T; t++) {
            const float *xt = x + (size_t)t * D;
            const double xi = xt[i];
            for (int j = i; j < D; j++) row[j] += xi * xt[j];
        }
    }
    if (layer == 0) c->n += T;
}

static void tap_latents(void *ctx, int layer, int T, const float *x) {
    calib *c = ctx;
    const int D = c->D, dc = c->mla->kv_lora_rank;
    const float eps = c->mla->rms_eps > 0.0f ? c->mla->rms_eps : 1e-6f;
    double *A = c->A + (size_t)layer * dc * dc, *Bm = c->Bm + (size_t)layer * dc * dc;
    for (int t = 0; t < T; t++) {
        double ss = 0.0;
        for (int r = 0; r < dc; r++) {
            c->c[r] = kv_dot_f32(c->w_dkv[layer] + (size_t)r * D, x + (size_t)t * D, D);
            ss += (double)c->c[r] * c->c[r];
        }
        const double inv = 1.0 / sqrt(ss / dc + eps); /* the RMSNorm the model will apply, weight 1 */
#pragma omp parallel for schedule(static)
        for (int i = 0; i < dc; i++)
            for (int j = 0; j < dc; j++) {
                A[(size_t)i * dc + j] += c->c[i] * inv * c->c[j] * inv;
                Bm[(size_t)i * dc + j] += c->c[i] * c->c[j] * inv;
            }
    }
}

/* Runs the source model over the calibration windows with a tap. */
static kvattn_status run_calibration(const kvattn_model *src, const kvattn_convert_params *p, kv_attn_input_tap tap,
                                     void *ctx, const char *stage) {
    const int W = p->calib_ctx > 1 ? p->calib_ctx : 256, per = W - 1;
    const int bos = src->tokenizer ? kvattn_tokenizer_bos(src->tokenizer) : -1;
    const int n_windows = (p->n_calib_tokens + per - 1) / per;
    kvattn_session *s;
    kvattn_status st = kvattn_session_create(src, W, KVATTN_TYPE_F32, KVATTN_MLA_ABSORBED, &s);
    if (st != KVATTN_OK) return st;
    int32_t *win = malloc(sizeof(int32_t) * (size_t)W);
    if (!win) st = kv_fail(KVATTN_ERR_NOMEM, "convert: out of memory");
    kv_session_set_attn_tap(s, tap, ctx);
    for (int w = 0; st == KVATTN_OK && w < n_windows; w++) {
        const int start = w * per, n = p->n_calib_tokens - start < per ? p->n_calib_tokens - start : per;
        int len = 0;
        if (bos >= 0) win[len++] = bos;
        memcpy(win + len, p->calib_tokens + start, sizeof(int32_t) * (size_t)n);
        len += n;
        st = kvattn_session_rewind(s, 0);
        if (st == KVATTN_OK) st = kvattn_session_decode(s, win, len, NULL, 0);
        if (p->progress) p->progress(p->progress_ctx, stage, w + 1, n_windows);
    }
    free(win);
    kvattn_session_free(s);
    return st;
}

/* A matrix of the source as doubles. */
static double *to_double(kvattn_matrix m, int rows, int cols) {
    double *y = malloc(sizeof(double) * (size_t)rows * cols);
    float *row = malloc(sizeof(float) * (size_t)cols);
    if (y && row)
        for (int r = 0; r < rows; r++) {
            kv_row_load(m.type, kv_matrix_row(m, r, cols), row, cols);
            for (int c = 0; c < cols; c++) y[(size_t)r * cols + c] = row[c];
        }
    free(row);
    if (!row) {
        free(y);
        return NULL;
    }
    return y;
}

static uint64_t matrix_bytes(kvattn_type t, int rows, int cols) { return (uint64_t)rows * kvattn_row_bytes(t, cols); }

kvattn_status kvattn_model_convert(const kvattn_model *src, const kvattn_convert_params *p, kvattn_model **out) {
    if (!src || !p || !out) return kv_fail(KVATTN_ERR_INVALID_ARG, "convert: NULL argument");
    *out = NULL;
    const kvattn_model_desc *sd = &src->desc;
    const kvattn_layer_config *a = &sd->attn;
    if (a->kind != KVATTN_ATTN_GQA)
        return kv_fail(KVATTN_ERR_UNSUPPORTED, "convert: %s is already MLA; kvattn converts MHA, GQA and MQA models",
                       sd->name);
    int biases = sd->qkv_bias, head_norms = sd->qk_norm;
    for (int l = 0; l < sd->n_layers; l++) {
        const kvattn_layer_weights *w = &src->layers[l].attn;
        biases |= w->bq || w->bk || w->bv;
        head_norms |= w->q_head_norm || w->k_head_norm;
    }
    if (biases || sd->gpt2_style || sd->parallel_attn)
        return kv_fail(KVATTN_ERR_UNSUPPORTED, "convert: %s: only Llama-style attention (no biases) converts",
                       sd->name);
    if (head_norms) /* a norm per head does not commute with merging or rotating heads */
        return kv_fail(KVATTN_ERR_UNSUPPORTED, "convert: %s: per-head Q/K norms (qwen3) do not convert", sd->name);
    target t;
    kvattn_status st = parse_design(a, p->design, &t);
    if (st != KVATTN_OK) return st;
    const int D = a->d_model, H = a->n_heads, K = a->n_kv_heads, d = a->head_dim, L = sd->n_layers;
    const int n_rot = a->rope.n_rot ? a->rope.n_rot : d;
    kvattn_layer_config cfg = *a;
    if (t.kind == 1) {
        if ((st = kv_mla_target(a, t.dc, t.dr, &cfg)) != KVATTN_OK) return st;
        cfg.kv_norm_off = !p->mla_kv_norm;
        cfg.rms_eps = src->norm_eps;
    } else cfg.n_kv_heads = t.G;
    const int aware = t.kind == 1 || p->method == KVATTN_CONVERT_AWARE;
    if (aware && (!p->calib_tokens || p->n_calib_tokens < 1))
        return kv_fail(KVATTN_ERR_INVALID_ARG, "convert: %s by the %s method needs calibration text (none given)",
                       p->design, t.kind == 1 ? "MLA" : "activation-aware");
    for (int i = 0; aware && i < p->n_calib_tokens; i++)
        if (p->calib_tokens[i] < 0 || p->calib_tokens[i] >= sd->vocab_size)
            return kv_fail(KVATTN_ERR_INVALID_ARG, "convert: calibration token %d = %d is outside the vocabulary", i,
                           p->calib_tokens[i]);

    calib cal = {.D = D, .L = L};
    if (aware) {
        cal.xx = calloc((size_t)L * D * D, sizeof(double));
        if (!cal.xx) return kv_fail(KVATTN_ERR_NOMEM, "convert: out of memory for %d layers' %d×%d moments", L, D, D);
        st = run_calibration(src, p, tap_moments, &cal, "calibrating");
        for (int l = 0; st == KVATTN_OK && l < L; l++) { /* symmetric, and a mean */
            double *xx = cal.xx + (size_t)l * D * D;
            for (int i = 0; i < D; i++)
                for (int j = i; j < D; j++) xx[(size_t)j * D + i] = xx[(size_t)i * D + j] /= (double)cal.n;
        }
    }
    kvattn_model *m = st == KVATTN_OK ? calloc(1, sizeof *m) : NULL;
    if (st == KVATTN_OK && (!m || !(m->layers = calloc((size_t)L, sizeof *m->layers)))) {
        st = kv_fail(KVATTN_ERR_NOMEM, "convert: out of memory");
    }
    if (m) {
        m->desc = *sd;
        m->desc.attn = cfg;
        snprintf(m->desc.arch, sizeof m->desc.arch, "%s", t.kind == 1 ? "deepseek2" : "llama");
        snprintf(m->format, sizeof m->format, "converted");
        m->norm_eps = src->norm_eps, m->tok_embd = src->tok_embd, m->output = src->output, m->out_norm = src->out_norm;
        m->tokenizer = src->tokenizer, m->tokenizer_borrowed = 1, m->chat_template = src->chat_template;
        m->weight_bytes = src->weight_bytes;
    }
    kv_new_layer *nl = st == KVATTN_OK ? calloc((size_t)L, sizeof *nl) : NULL;
    if (st == KVATTN_OK && !nl) st = kv_fail(KVATTN_ERR_NOMEM, "convert: out of memory");
    for (int l = 0; st == KVATTN_OK && l < L; l++) {
        const kv_layer *b = &src->layers[l];
        kv_src_layer s = {a, D, H, K, d, n_rot, NULL, NULL, NULL, NULL, aware ? cal.xx + (size_t)l * D * D : NULL};
        s.wq = to_double(b->attn.wq, H * d, D), s.wk = to_double(b->attn.wk, K * d, D);
        s.wv = to_double(b->attn.wv, K * d, D), s.wo = to_double(b->attn.wo, D, H * d);
        if (!s.wq || !s.wk || !s.wv || !s.wo) st = kv_fail(KVATTN_ERR_NOMEM, "convert: out of memory");
        else if (t.kind == 1) st = kv_convert_to_mla(&s, &cfg, &nl[l]);
        else st = kv_convert_to_gqa(&s, t.G, aware, &nl[l]);
        free(s.wq), free(s.wk), free(s.wv), free(s.wo);
        m->weight_bytes -= matrix_bytes(b->attn.wq.type, H * d, D) + matrix_bytes(b->attn.wk.type, K * d, D) +
                           matrix_bytes(b->attn.wv.type, K * d, D) + matrix_bytes(b->attn.wo.type, D, H * d);
        if (p->progress) p->progress(p->progress_ctx, "converting", l + 1, L);
    }
    if (st == KVATTN_OK && t.kind == 1 && p->mla_kv_norm) { /* fit W_UK, W_UV to the normed latent */
        const int dc = cfg.kv_lora_rank;
        cal.mla = &cfg;
        cal.w_dkv = malloc(sizeof(float *) * (size_t)L);
        cal.A = calloc((size_t)L * dc * dc, sizeof(double)), cal.Bm = calloc((size_t)L * dc * dc, sizeof(double));
        cal.c = malloc(sizeof(float) * (size_t)dc);
        if (!cal.w_dkv || !cal.A || !cal.Bm || !cal.c) st = kv_fail(KVATTN_ERR_NOMEM, "convert: out of memory");
        for (int l = 0; st == KVATTN_OK && l < L; l++) cal.w_dkv[l] = nl[l].wkv_a;
        if (st == KVATTN_OK) st = run_calibration(src, p, tap_latents, &cal, "fitting to the normed latent");
        for (int l = 0; st == KVATTN_OK && l < L; l++)
            st = kv_mla_refit_norm(&cfg, cal.A + (size_t)l * dc * dc, cal.Bm + (size_t)l * dc * dc, &nl[l]);
        free(cal.w_dkv), free(cal.A), free(cal.Bm), free(cal.c);
    }
    for (int l = 0; nl && l < L; l++) { /* the model owns them from here, on success or not */
        float *bufs[] = {nl[l].wq, nl[l].wk, nl[l].wv, nl[l].wo, nl[l].wkv_a, nl[l].wkv_b, nl[l].kv_norm};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
            if (bufs[i] && m && !kv_model_own(m, bufs[i]) && st == KVATTN_OK)
                st = kv_fail(KVATTN_ERR_NOMEM, "convert: out of memory");
            else if (bufs[i] && !m) free(bufs[i]);
    }
    for (int l = 0; st == KVATTN_OK && l < L; l++) {
        kv_layer *ml = &m->layers[l];
        *ml = src->layers[l];
        memset(&ml->attn, 0, sizeof ml->attn);
        ml->attn.wq = kvattn_f32_matrix(nl[l].wq), ml->attn.wo = kvattn_f32_matrix(nl[l].wo);
        uint64_t rows = (uint64_t)kvattn_row_bytes(KVATTN_TYPE_F32, D);
        if (t.kind == 1) {
            ml->attn.wkv_a = kvattn_f32_matrix(nl[l].wkv_a), ml->attn.wkv_b = kvattn_f32_matrix(nl[l].wkv_b);
            ml->attn.kv_norm = nl[l].kv_norm;
            m->weight_bytes += rows * (uint64_t)(H * (cfg.qk_nope_head_dim + cfg.qk_rope_head_dim) + cfg.kv_lora_rank +
                                                 cfg.qk_rope_head_dim) +
                               sizeof(float) * ((uint64_t)H * (cfg.qk_nope_head_dim + d) * cfg.kv_lora_rank +
                                                (uint64_t)D * H * d + (uint64_t)cfg.kv_lora_rank);
        } else {
            ml->attn.wk = kvattn_f32_matrix(nl[l].wk), ml->attn.wv = kvattn_f32_matrix(nl[l].wv);
            m->weight_bytes += rows * (uint64_t)(H * d + 2 * t.G * d) + sizeof(float) * (uint64_t)D * H * d;
        }
        st = kvattn_weights_validate(&cfg, &ml->attn);
    }
    free(nl);
    free(cal.xx);
    if (st == KVATTN_OK) {
        char from[32], to[32], calib[160] = "none";
        kvattn_config_design_name(a, from, sizeof from);
        kvattn_config_design_name(&cfg, to, sizeof to);
        if (aware)
            snprintf(calib, sizeof calib, "%d tokens of %s, windows of %d", p->n_calib_tokens,
                     p->calib_source && *p->calib_source ? p->calib_source : "text",
                     p->calib_ctx > 1 ? p->calib_ctx : 256);
        snprintf(m->provenance, sizeof m->provenance, "%s from %s (%.63s) by %s%s; calibration: %.159s", to, from,
                 sd->name,
                 t.kind == 1 ? "rorope + joint activation pca"
                 : aware     ? "aware"
                             : "mean",
                 t.kind == 1 ? (p->mla_kv_norm ? ", latent normed" : ", latent not normed") : "", calib);
        *out = m;
        return KVATTN_OK;
    }
    if (m) m->tokenizer = NULL;
    kvattn_model_free(m);
    return st;
}
