/* DeepSeek multi-head latent attention (DeepSeek-V2 §2.1, V3 inference/model.py).
 *
 *   c_KV ‖ k_pre = W_kv_a x          c_KV normed by kv_norm, k_R = RoPE(k_pre)
 *   q_h = [q_C,h | q_pre,h] = W_q x  (or W_q_b · RMSNorm(W_q_a x)), q_R,h = RoPE(q_pre,h)
 *   W_kv_b rows, per head h: W_UK,h [d_nope][d_c] then W_UV,h [d_v][d_c]
 *
 * Only c_KV ‖ k_R is cached. Two ways to attend over it:
 *   absorbed: q̃_h = W_UK,hᵀ q_C,h; score = q̃_h·c_KV + q_R,h·k_R — MQA with one
 *             (d_c + d_R)-wide key and the d_c-wide latent as value;
 *             o_h = W_UV,h · Σ_t p_h(t) c_KV(t)
 *   naive:    k_h(t) = [W_UK,h c_KV(t) | k_R(t)], v_h(t) = W_UV,h c_KV(t) for every
 *             cached token, then ordinary multi-head attention. */
#include "attn_core.h"
#include "attn_layer.h"
#include "kernels/kernels.h"
#include "kernels/matmul_kernels.h"
#include "kernels/ops.h"
#include "kernels/vec.h"
#include "rope.h"

#include <string.h>

/* Per-head products (query absorption, W_UV, the naive expansion) of fewer
 * multiply-adds than this stay on the calling thread. */
#define MLA_PARALLEL_MIN_MACS (2 * KV_PARALLEL_MIN_MACS)

typedef struct {
    int D, H, dn, dr, dv, dc, dq, q_lora;
} mla_dims;

static mla_dims dims_of(const kvattn_layer_config *cfg) {
    mla_dims d = {cfg->d_model,
                  cfg->n_heads,
                  cfg->qk_nope_head_dim,
                  cfg->qk_rope_head_dim,
                  cfg->v_head_dim,
                  cfg->kv_lora_rank,
                  cfg->qk_nope_head_dim + cfg->qk_rope_head_dim,
                  cfg->q_lora_rank};
    return d;
}

static float rms_eps(const kvattn_layer_config *cfg) { return cfg->rms_eps > 0.0f ? cfg->rms_eps : 1e-6f; }

/* W_UK and W_UV come either fused (wkv_b: per head d_nope rows of W_UK, then
 * d_v rows of W_UV, each d_c wide) or split (wk_b: per head W_UKᵀ, d_c rows of
 * d_nope; wv_b: per head W_UV, d_v rows of d_c). */
static int split_kv_b(const kvattn_layer_weights *w) { return w->wkv_b.data == NULL; }

/* Row j of W_UV,h (d_c wide). */
static const void *w_uv_row(const kvattn_layer_weights *w, const mla_dims *d, int h, int j) {
    return split_kv_b(w) ? kv_matrix_row(w->wv_b, h * d->dv + j, d->dc)
                         : kv_matrix_row(w->wkv_b, h * (d->dn + d->dv) + d->dn + j, d->dc);
}

/* q̃ = W_UK,hᵀ q_C  (d_nope → d_c) */
static void absorb_query(const kvattn_layer_weights *w, const mla_dims *d, int h, const float *q_c, float *q_abs) {
    if (split_kv_b(w)) { /* rows of W_UKᵀ: one dot product per latent dim */
        kv_gemv_rows(q_abs, q_c, w->wk_b, h * d->dc, d->dc, d->dn);
        return;
    }
    /* rows of W_UK,h scaled by q_C and summed, KV_DOT_ROWS far-apart rows at a time */
    memset(q_abs, 0, sizeof(float) * (size_t)d->dc);
    const int per = (d->dn + KV_DOT_ROWS - 1) / KV_DOT_ROWS, row0 = h * (d->dn + d->dv);
    for (int i = 0; i < per; i++) {
        const unsigned char *rows[KV_DOT_ROWS];
        float a[KV_DOT_ROWS];
        int nr = 0;
        for (int s = 0; s < KV_DOT_ROWS && s * per + i < d->dn; s++, nr++) {
            rows[nr] = kv_matrix_row(w->wkv_b, row0 + s * per + i, d->dc);
            a[nr] = q_c[s * per + i];
        }
        kv_rows_axpy(w->wkv_b.type, rows, nr, a, q_abs, d->dc);
    }
}

/* k_C = W_UK,h c  (d_c → d_nope) from the split layout. */
static void expand_key_split(const kvattn_layer_weights *w, const mla_dims *d, int h, const float *c, float *k) {
    memset(k, 0, sizeof(float) * (size_t)d->dn);
    for (int j = 0; j < d->dc; j++)
        kv_row_axpy(w->wk_b.type, kv_matrix_row(w->wk_b, h * d->dc + j, d->dn), c[j], k, d->dn);
}

/* q [T][H][dq] (rotated), latent [T][dc+dr] (c_KV normed, k_R rotated) for
 * r's T rows, projected as kv_project says. */
static void mla_project(const kvattn_layer_config *cfg, const kvattn_layer_weights *w, const mla_dims *d,
                        const kv_seq_rows *r, int T, const float *x, float *q, float *latent, float *cq, float *freqs) {
    if (d->q_lora > 0) {
        kv_project(cq, x, w->wq_a, r, d->q_lora, d->D);
        for (int t = 0; t < T; t++)
            kv_rmsnorm(cq + (size_t)t * d->q_lora, cq + (size_t)t * d->q_lora, w->q_norm, d->q_lora, rms_eps(cfg));
        kv_project(q, cq, w->wq_b, r, d->H * d->dq, d->q_lora);
    } else {
        kv_project(q, x, w->wq, r, d->H * d->dq, d->D);
    }
    kv_project(latent, x, w->wkv_a, r, d->dc + d->dr, d->D);
    kv_rope_freqs(&cfg->rope, d->dr, freqs);
    for (int i = 0, t = 0; i < r->n_seqs; i++)
        for (int j = 0; j < kv_seq_len(r, i); j++, t++) {
            const int p = r->pos[i] + j;
            float *lt = latent + (size_t)t * (d->dc + d->dr);
            if (!cfg->kv_norm_off) kv_rmsnorm(lt, lt, w->kv_norm, d->dc, rms_eps(cfg));
            kv_rope_apply(lt + d->dc, d->dr, freqs, p, cfg->rope.pairing);
            for (int h = 0; h < d->H; h++)
                kv_rope_apply(q + ((size_t)t * d->H + h) * d->dq + d->dn, d->dr, freqs, p, cfg->rope.pairing);
        }
}

/* Absorbed decode/prefill: o [T][H][dv]. */
static int mla_attend_absorbed(const mla_dims *d, const kvattn_layer_weights *w, const kvattn_cache *cache, int layer,
                               int pos, int T, const float *q, float scale, float *qa, float *lat, float *o) {
    const int dk = d->dc + d->dr;
    const int panels = w->wk_b.panels && w->wv_b.panels;
    const size_t uk_head = kv_panels_bytes(w->wk_b.type, d->dc, d->dn),
                 uv_head = kv_panels_bytes(w->wv_b.type, d->dv, d->dc);
    /* qa[t][h] = [W_UK,hᵀ q_C,h | q_R,h]  (dc + dr) */
    if (panels) { /* per head, every token at once (each token's bits as alone) */
#pragma omp parallel for schedule(static) if ((long)T * d->H * d->dn * d->dc > MLA_PARALLEL_MIN_MACS)
        for (int h = 0; h < d->H; h++) {
            const kvattn_matrix uk = {.type = w->wk_b.type,
                                      .panels = (const unsigned char *)w->wk_b.panels + h * uk_head};
            kv_panel_product(qa + (size_t)h * dk, d->H * dk, q + (size_t)h * d->dq, d->H * d->dq, uk, T, d->dc, d->dn);
            for (int t = 0; t < T; t++)
                memcpy(qa + ((size_t)t * d->H + h) * dk + d->dc, q + ((size_t)t * d->H + h) * d->dq + d->dn,
                       sizeof(float) * (size_t)d->dr);
        }
    } else {
#pragma omp parallel for schedule(static) if ((long)T * d->H * d->dn * d->dc > MLA_PARALLEL_MIN_MACS)
        for (int th = 0; th < T * d->H; th++) {
            const float *qh = q + (size_t)th * d->dq;
            float *ah = qa + (size_t)th * dk;
            absorb_query(w, d, th % d->H, qh, ah);
            memcpy(ah + d->dc, qh + d->dn, sizeof(float) * (size_t)d->dr);
        }
    }
    kv_rows kr, vr;
    kv_cache_rows(cache, layer, &kr, &vr);
    if (kv_attend(qa, T, d->H, 1, &kr, &vr, pos, scale, lat) != 0) return -1; /* lat [T][H][dc] */
    /* o[t][h] = W_UV,h · lat[t][h] */
    if (panels) {
#pragma omp parallel for schedule(static) if ((long)T * d->H * d->dv * d->dc > MLA_PARALLEL_MIN_MACS)
        for (int h = 0; h < d->H; h++) {
            const kvattn_matrix uv = {.type = w->wv_b.type,
                                      .panels = (const unsigned char *)w->wv_b.panels + h * uv_head};
            kv_panel_product(o + (size_t)h * d->dv, d->H * d->dv, lat + (size_t)h * d->dc, d->H * d->dc, uv, T, d->dv,
                             d->dc);
        }
        return 0;
    }
#pragma omp parallel for schedule(static) if ((long)T * d->H * d->dv * d->dc > MLA_PARALLEL_MIN_MACS)
    for (int th = 0; th < T * d->H; th++) {
        const int h = th % d->H;
        if (split_kv_b(w))
            kv_gemv_rows(o + (size_t)th * d->dv, lat + (size_t)th * d->dc, w->wv_b, h * d->dv, d->dv, d->dc);
        else
            kv_gemv_rows(o + (size_t)th * d->dv, lat + (size_t)th * d->dc, w->wkv_b, h * (d->dn + d->dv) + d->dn, d->dv,
                         d->dc);
    }
    return 0;
}

/* Naive: expand per-head keys and values of all n_ctx cached tokens. */
static kvattn_status mla_attend_naive(const mla_dims *d, const kvattn_layer_weights *w, const kvattn_cache *cache,
                                      int layer, int pos, int T, const float *q, float scale, float *o) {
    const int n_ctx = pos + T, dk = d->dc + d->dr, dkv = d->dn + d->dv;
    kv_arena a;
    size_t sizes[] = {(size_t)n_ctx * dk, (size_t)n_ctx * d->dc, (size_t)n_ctx * d->H * dkv,
                      (size_t)n_ctx * d->H * d->dq, 0};
    if (!kv_arena_init(&a, sizes))
        return kv_fail(KVATTN_ERR_NOMEM, "naive MLA: out of memory expanding %d tokens × %d heads", n_ctx, d->H);
    float *lat = kv_arena_take(&a, sizes[0]); /* [n_ctx][dc + dr] dequantized cache  */
    float *c = kv_arena_take(&a, sizes[1]);   /* [n_ctx][dc]                        */
    float *kvx = kv_arena_take(&a, sizes[2]); /* [n_ctx][H][dn + dv] = W_kv_b c     */
    float *kx = kv_arena_take(&a, sizes[3]);  /* [n_ctx][H][dn + dr] expanded keys   */
    for (int t = 0; t < n_ctx; t++) {
        kvattn_status st = kvattn_cache_read(cache, layer, t, lat + (size_t)t * dk, NULL);
        if (st != KVATTN_OK) {
            kv_arena_free(&a);
            return st;
        }
        memcpy(c + (size_t)t * d->dc, lat + (size_t)t * dk, sizeof(float) * (size_t)d->dc);
    }
    if (!split_kv_b(w)) {
        kv_matmul(kvx, c, w->wkv_b, n_ctx, d->H * dkv, d->dc);
    } else { /* the same [n_ctx][H][d_nope | d_v] from the split matrices */
#pragma omp parallel for schedule(static) if ((long)n_ctx * d->H * dkv * d->dc > MLA_PARALLEL_MIN_MACS)
        for (int th = 0; th < n_ctx * d->H; th++) {
            int t = th / d->H, h = th % d->H;
            float *dst = kvx + (size_t)th * dkv;
            expand_key_split(w, d, h, c + (size_t)t * d->dc, dst);
            for (int j = 0; j < d->dv; j++)
                dst[d->dn + j] = kv_row_dot(w->wv_b.type, w_uv_row(w, d, h, j), c + (size_t)t * d->dc, d->dc);
        }
    }
    for (int t = 0; t < n_ctx; t++)
        for (int h = 0; h < d->H; h++) {
            float *kth = kx + ((size_t)t * d->H + h) * d->dq;
            memcpy(kth, kvx + ((size_t)t * d->H + h) * dkv, sizeof(float) * (size_t)d->dn);
            memcpy(kth + d->dn, lat + (size_t)t * dk + d->dc, sizeof(float) * (size_t)d->dr);
        }
    kv_rows kr = {.type = KVATTN_TYPE_F32,
                  .base = (const uint8_t *)kx,
                  .head_stride = sizeof(float) * (size_t)d->dq,
                  .token_stride = sizeof(float) * (size_t)d->H * d->dq,
                  .dim = d->dq};
    kv_rows vr = {.type = KVATTN_TYPE_F32,
                  .base = (const uint8_t *)(kvx + d->dn),
                  .head_stride = sizeof(float) * (size_t)dkv,
                  .token_stride = sizeof(float) * (size_t)d->H * dkv,
                  .dim = d->dv};
    int rc = kv_attend(q, T, d->H, d->H, &kr, &vr, pos, scale, o);
    kv_arena_free(&a);
    return rc == 0 ? KVATTN_OK : kv_fail(KVATTN_ERR_NOMEM, "naive MLA: out of memory for scratch");
}

kvattn_status kv_mla_attend(const kvattn_layer_config *cfg, const kvattn_layer_weights *w, const kvattn_cache *cache,
                            int layer, int pos, int T, const float *q, float *o, kvattn_mla_mode mode) {
    const mla_dims d = dims_of(cfg);
    const float scale = kvattn_config_softmax_scale(cfg);
    if (mode == KVATTN_MLA_NAIVE) return mla_attend_naive(&d, w, cache, layer, pos, T, q, scale, o);
    kv_arena a;
    size_t sizes[] = {(size_t)T * d.H * (d.dc + d.dr), (size_t)T * d.H * d.dc, 0};
    if (!kv_arena_init(&a, sizes)) return kv_fail(KVATTN_ERR_NOMEM, "MLA: out of memory for %d tokens", T);
    float *qa = kv_arena_take(&a, sizes[0]), *lat = kv_arena_take(&a, sizes[1]);
    int rc = mla_attend_absorbed(&d, w, cache, layer, pos, T, q, scale, qa, lat, o);
    kv_arena_free(&a);
    return rc == 0 ? KVATTN_OK : kv_fail(KVATTN_ERR_NOMEM, "absorbed MLA: out of memory for scratch");
}

kvattn_status kv_mla_forward(const kvattn_layer_config *cfg, const kvattn_layer_weights *w, const kv_seq_rows *r,
                             int layer, int T, const float *x, float *out, kvattn_mla_mode mode) {
    const mla_dims d = dims_of(cfg);
    const size_t dk = (size_t)d.dc + d.dr;
    kv_arena a;
    size_t sizes[] = {(size_t)T * d.H * d.dq,                /* q      */
                      (size_t)T * dk,                        /* latent */
                      (size_t)T * (d.q_lora ? d.q_lora : 1), /* cq  */
                      (size_t)d.dr / 2 + 1,                  /* freqs  */
                      (size_t)T * d.H * dk,                  /* qa     */
                      (size_t)T * d.H * d.dc,                /* lat    */
                      (size_t)T * d.H * d.dv,                /* o      */
                      0};
    if (!kv_arena_init(&a, sizes)) return kv_fail(KVATTN_ERR_NOMEM, "MLA: out of memory for %d tokens", T);
    float *q = kv_arena_take(&a, sizes[0]), *latent = kv_arena_take(&a, sizes[1]);
    float *cq = kv_arena_take(&a, sizes[2]), *freqs = kv_arena_take(&a, sizes[3]);
    float *qa = kv_arena_take(&a, sizes[4]), *lat = kv_arena_take(&a, sizes[5]), *o = kv_arena_take(&a, sizes[6]);

    mla_project(cfg, w, &d, r, T, x, q, latent, cq, freqs);
    const float scale = kvattn_config_softmax_scale(cfg);
    /* each sequence's latent rows into its own cache, then attending over it */
    kvattn_status st = KVATTN_OK;
    for (int i = 0, t0 = 0; i < r->n_seqs && st == KVATTN_OK; t0 += kv_seq_len(r, i), i++) {
        const int rows = kv_seq_len(r, i), pos = r->pos[i];
        const size_t r0 = (size_t)t0, qh = r0 * d.H;
        kvattn_cache *cache = r->caches[i];
        st = kvattn_cache_write(cache, layer, pos, rows, latent + r0 * dk, NULL);
        if (st != KVATTN_OK) break;
        if (mode == KVATTN_MLA_NAIVE)
            st = mla_attend_naive(&d, w, cache, layer, pos, rows, q + qh * d.dq, scale, o + qh * d.dv);
        else if (mla_attend_absorbed(&d, w, cache, layer, pos, rows, q + qh * d.dq, scale, qa + qh * dk,
                                     lat + qh * d.dc, o + qh * d.dv) != 0)
            st = kv_fail(KVATTN_ERR_NOMEM, "absorbed MLA: out of memory for scratch");
    }
    if (st == KVATTN_OK) kv_project(out, o, w->wo, r, d.D, d.H * d.dv);
    kv_arena_free(&a);
    return st;
}
