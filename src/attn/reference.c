/* The scalar reference: attention recomputed from scratch for every token,
 * no cache, double accumulation. Written for clarity, not speed; the
 * cached fast path is tested against it. RoPE uses the library's rotation
 * (its convention is checked separately against PyTorch golden vectors). */
#include "internal.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "kernels/vec.h"
#include "rope.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* y[n] = W[n][k] · x[k] in double (W's elements read one by one). */
static void matvec_d(double *y, kvattn_matrix W, const double *x, int n, int k) {
    for (int i = 0; i < n; i++) {
        const void *row = kv_matrix_row(W, i, k);
        double s = 0.0;
        for (int j = 0; j < k; j++) s += (double)kv_row_get_ref(W.type, row, j) * x[j];
        y[i] = s;
    }
}

static void rmsnorm_d(double *x, const float *w, int n, double eps) {
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    double inv = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++) x[i] = x[i] * inv * w[i];
}

/* y[n] += b[n], when there is a bias */
static void add_bias_d(double *y, const float *b, size_t n) {
    if (b)
        for (size_t i = 0; i < n; i++) y[i] += b[i];
}

/* RMSNorm of each of `heads` vectors of hd, when there is a weight */
static void head_norm_d(double *y, const float *w, int heads, int hd, double eps) {
    if (w)
        for (int h = 0; h < heads; h++) rmsnorm_d(y + (size_t)h * hd, w, hd, eps);
}

static void rope_d(double *x, int n_rot, const float *freqs, int pos, kvattn_rope_pairing p) {
    float tmp[512];
    for (int i = 0; i < n_rot; i++) tmp[i] = (float)x[i];
    kv_rope_apply(tmp, n_rot, freqs, pos, p);
    for (int i = 0; i < n_rot; i++) x[i] = tmp[i];
}

/* Softmax attention of one query over keys K[0..n) (stride ks) and values
 * V (stride vs): o[vd]. */
static void attend_d(const double *q, const double *K, size_t ks, const double *V, size_t vs, int n, int kd, int vd,
                     double scale, double *o, double *scores) {
    double m = -INFINITY, l = 0.0;
    for (int j = 0; j < n; j++) {
        double s = 0.0;
        for (int i = 0; i < kd; i++) s += q[i] * K[(size_t)j * ks + i];
        scores[j] = s * scale;
        if (scores[j] > m) m = scores[j];
    }
    for (int i = 0; i < vd; i++) o[i] = 0.0;
    for (int j = 0; j < n; j++) {
        double p = exp(scores[j] - m);
        l += p;
        for (int i = 0; i < vd; i++) o[i] += p * V[(size_t)j * vs + i];
    }
    for (int i = 0; i < vd; i++) o[i] /= l;
}

static void to_double(double *y, const float *x, int n) {
    for (int i = 0; i < n; i++) y[i] = x[i];
}

static void out_proj(float *out, kvattn_matrix wo, const double *o, int D, int k, double *tmp) {
    matvec_d(tmp, wo, o, D, k);
    for (int i = 0; i < D; i++) out[i] = (float)tmp[i];
}

static kvattn_status reference_gqa(const kvattn_layer_config *cfg, const kvattn_layer_weights *w, int T, const float *x,
                                   float *out) {
    const int D = cfg->d_model, H = cfg->n_heads, nkv = cfg->n_kv_heads, hd = cfg->head_dim, g = H / nkv;
    const int n_rot = cfg->rope.n_rot ? cfg->rope.n_rot : hd;
    const size_t qd = (size_t)H * hd, kvd = (size_t)nkv * hd;
    const double eps = cfg->rms_eps > 0.0f ? cfg->rms_eps : 1e-6;
    if (hd > 512) return kv_fail(KVATTN_ERR_UNSUPPORTED, "reference: head_dim = %d > 512", hd);
    double *xd = malloc(sizeof(double) * D), *q = malloc(sizeof(double) * qd);
    double *K = malloc(sizeof(double) * T * kvd), *V = malloc(sizeof(double) * T * kvd);
    double *o = malloc(sizeof(double) * qd), *sc = malloc(sizeof(double) * T), *tmp = malloc(sizeof(double) * D);
    float *freqs = malloc(sizeof(float) * (size_t)(n_rot / 2 + 1));
    if (!xd || !q || !K || !V || !o || !sc || !tmp || !freqs) {
        free(xd), free(q), free(K), free(V), free(o), free(sc), free(tmp), free(freqs);
        return kv_fail(KVATTN_ERR_NOMEM, "reference: out of memory");
    }
    kv_rope_freqs(&cfg->rope, n_rot, freqs);
    for (int t = 0; t < T; t++) { /* keys and values of every token, computed once */
        to_double(xd, x + (size_t)t * D, D);
        matvec_d(K + t * kvd, w->wk, xd, (int)kvd, D);
        matvec_d(V + t * kvd, w->wv, xd, (int)kvd, D);
        add_bias_d(K + t * kvd, w->bk, kvd);
        add_bias_d(V + t * kvd, w->bv, kvd);
        head_norm_d(K + t * kvd, w->k_head_norm, nkv, hd, eps);
        for (int h = 0; h < nkv; h++) rope_d(K + t * kvd + (size_t)h * hd, n_rot, freqs, t, cfg->rope.pairing);
    }
    double scale = kvattn_config_softmax_scale(cfg);
    for (int t = 0; t < T; t++) {
        to_double(xd, x + (size_t)t * D, D);
        matvec_d(q, w->wq, xd, (int)qd, D);
        add_bias_d(q, w->bq, qd);
        head_norm_d(q, w->q_head_norm, H, hd, eps);
        for (int h = 0; h < H; h++) {
            rope_d(q + (size_t)h * hd, n_rot, freqs, t, cfg->rope.pairing);
            attend_d(q + (size_t)h * hd, K + (size_t)(h / g) * hd, kvd, V + (size_t)(h / g) * hd, kvd, t + 1, hd, hd,
                     scale, o + (size_t)h * hd, sc);
        }
        out_proj(out + (size_t)t * D, w->wo, o, D, (int)qd, tmp);
    }
    free(xd), free(q), free(K), free(V), free(o), free(sc), free(tmp), free(freqs);
    return KVATTN_OK;
}

static kvattn_status reference_mla(const kvattn_layer_config *cfg, const kvattn_layer_weights *w, int T, const float *x,
                                   float *out) {
    const int D = cfg->d_model, H = cfg->n_heads, dn = cfg->qk_nope_head_dim, dr = cfg->qk_rope_head_dim;
    const int dv = cfg->v_head_dim, dc = cfg->kv_lora_rank, dq = dn + dr, ql = cfg->q_lora_rank;
    const double eps = cfg->rms_eps > 0.0f ? cfg->rms_eps : 1e-6;
    if (dr > 512) return kv_fail(KVATTN_ERR_UNSUPPORTED, "reference: qk_rope_head_dim > 512");
    size_t n_kvb = (size_t)H * (dn + dv);
    double *xd = malloc(sizeof(double) * D), *cq = malloc(sizeof(double) * (ql ? ql : 1));
    double *q = malloc(sizeof(double) * H * dq), *lat = malloc(sizeof(double) * (dc + dr));
    double *K = malloc(sizeof(double) * T * H * dq), *V = malloc(sizeof(double) * T * H * dv);
    double *kvb = malloc(sizeof(double) * n_kvb), *o = malloc(sizeof(double) * H * dv);
    double *sc = malloc(sizeof(double) * T), *tmp = malloc(sizeof(double) * D);
    float *freqs = malloc(sizeof(float) * (size_t)(dr / 2 + 1));
    if (!xd || !cq || !q || !lat || !K || !V || !kvb || !o || !sc || !tmp || !freqs) {
        free(xd), free(cq), free(q), free(lat), free(K), free(V), free(kvb), free(o), free(sc), free(tmp), free(freqs);
        return kv_fail(KVATTN_ERR_NOMEM, "reference: out of memory");
    }
    kv_rope_freqs(&cfg->rope, dr, freqs);
    for (int t = 0; t < T; t++) { /* expanded per-head keys and values, as DeepSeek's naive path caches them */
        to_double(xd, x + (size_t)t * D, D);
        matvec_d(lat, w->wkv_a, xd, dc + dr, D);
        if (!cfg->kv_norm_off) rmsnorm_d(lat, w->kv_norm, dc, eps);
        rope_d(lat + dc, dr, freqs, t, cfg->rope.pairing);
        if (w->wkv_b.data) {
            matvec_d(kvb, w->wkv_b, lat, (int)n_kvb, dc);
        } else { /* split layout: W_UK,h = (wk_b's d_c × d_nope block of head h)ᵀ, W_UV,h = wv_b's block */
            for (int h = 0; h < H; h++) {
                for (int i = 0; i < dn; i++) {
                    double s = 0.0;
                    for (int c = 0; c < dc; c++)
                        s += (double)kv_row_get_ref(w->wk_b.type, kv_matrix_row(w->wk_b, h * dc + c, dn), i) * lat[c];
                    kvb[(size_t)h * (dn + dv) + i] = s;
                }
                for (int j = 0; j < dv; j++) {
                    const void *row = kv_matrix_row(w->wv_b, h * dv + j, dc);
                    double s = 0.0;
                    for (int c = 0; c < dc; c++) s += (double)kv_row_get_ref(w->wv_b.type, row, c) * lat[c];
                    kvb[(size_t)h * (dn + dv) + dn + j] = s;
                }
            }
        }
        for (int h = 0; h < H; h++) {
            double *k = K + ((size_t)t * H + h) * dq;
            memcpy(k, kvb + (size_t)h * (dn + dv), sizeof(double) * dn);
            memcpy(k + dn, lat + dc, sizeof(double) * dr);
            memcpy(V + ((size_t)t * H + h) * dv, kvb + (size_t)h * (dn + dv) + dn, sizeof(double) * dv);
        }
    }
    double scale = kvattn_config_softmax_scale(cfg);
    for (int t = 0; t < T; t++) {
        to_double(xd, x + (size_t)t * D, D);
        if (ql > 0) {
            matvec_d(cq, w->wq_a, xd, ql, D);
            rmsnorm_d(cq, w->q_norm, ql, eps);
            matvec_d(q, w->wq_b, cq, H * dq, ql);
        } else {
            matvec_d(q, w->wq, xd, H * dq, D);
        }
        for (int h = 0; h < H; h++) {
            rope_d(q + (size_t)h * dq + dn, dr, freqs, t, cfg->rope.pairing);
            attend_d(q + (size_t)h * dq, K + (size_t)h * dq, (size_t)H * dq, V + (size_t)h * dv, (size_t)H * dv, t + 1,
                     dq, dv, scale, o + (size_t)h * dv, sc);
        }
        out_proj(out + (size_t)t * D, w->wo, o, D, H * dv, tmp);
    }
    free(xd), free(cq), free(q), free(lat), free(K), free(V), free(kvb), free(o), free(sc), free(tmp), free(freqs);
    return KVATTN_OK;
}

kvattn_status kvattn_attn_reference(const kvattn_layer_config *cfg, const kvattn_layer_weights *w, int T,
                                    const float *x, float *out) {
    kvattn_status st = kvattn_config_validate(cfg);
    if (st != KVATTN_OK) return st;
    if ((st = kvattn_weights_validate(cfg, w)) != KVATTN_OK) return st;
    if (T < 1 || !x || !out) return kv_fail(KVATTN_ERR_INVALID_ARG, "reference: T = %d, x and out must be set", T);
    return cfg->kind == KVATTN_ATTN_MLA ? reference_mla(cfg, w, T, x, out) : reference_gqa(cfg, w, T, x, out);
}
