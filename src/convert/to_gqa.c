/* MHA or GQA → GQA-G / MQA: each group of r = K/G source KV heads becomes one.
 *
 * mean (Ainslie et al. 2023, the GQA paper): the group's K and V heads
 * averaged; queries and output untouched.
 *
 * aware: fitted on calibration activations. Keys: per RoPE pair, the group's
 * r complex keys are rotated into the basis of kv_rope_pair_basis (a complex
 * combination commutes with RoPE) weighted by the energy of the queries that
 * read each head, and the first component kept; each query pair takes the
 * conjugate of its head's coefficient, so q·k is kept where the keys agree.
 * Values: the top d principal directions of the group's stacked values; each
 * head's output projection takes its block of them. With r = 1 both are
 * orthogonal changes of basis and the layer is unchanged. */
#include "convert_internal.h"
#include "linalg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

kvattn_status kv_convert_to_gqa(const kv_src_layer *s, int G, int aware, kv_new_layer *out) {
    const int D = s->D, H = s->H, K = s->K, d = s->d, r = K / G, qpk = H / K, half = s->n_rot / 2;
    const size_t Dz = (size_t)D;
    memset(out, 0, sizeof *out);
    double *wq = malloc(sizeof(double) * (size_t)H * d * Dz), *wk = calloc((size_t)G * d * Dz, sizeof(double));
    double *wv = calloc((size_t)G * d * Dz, sizeof(double)), *wo = malloc(sizeof(double) * (size_t)H * d * Dz);
    double *qe = malloc(sizeof(double) * (size_t)H * d), *e = malloc(sizeof(double) * (size_t)r);
    double complex *W = malloc(sizeof(double complex) * (size_t)r * r),
                   *B = malloc(sizeof(double complex) * (size_t)r * r);
    const double **a = malloc(sizeof(double *) * (size_t)r), **b = malloc(sizeof(double *) * (size_t)r);
    double *P = malloc(sizeof(double) * (size_t)r * d * r * d), *ev = malloc(sizeof(double) * (size_t)r * d);
    double *Vg = malloc(sizeof(double) * (size_t)r * d * Dz), *Cr = malloc(sizeof(double) * (size_t)r * r);
    double *Mv = malloc(sizeof(double) * (size_t)d * d), *Mv_half = malloc(sizeof(double) * (size_t)r * d * d);
    double *Mv_inv = malloc(sizeof(double) * (size_t)r * d * d);
    kvattn_status st =
        wq && wk && wv && wo && qe && e && W && B && a && b && P && ev && Vg && Cr && Mv && Mv_half && Mv_inv
            ? KVATTN_OK
            : kv_fail(KVATTN_ERR_NOMEM, "convert: out of memory");
    if (st == KVATTN_OK) {
        memcpy(wq, s->wq, sizeof(double) * (size_t)H * d * Dz);
        memcpy(wo, s->wo, sizeof(double) * (size_t)H * d * Dz);
        if (aware) kv_row_energy(s->xx, D, s->wq, H * d, qe);
    }
    for (int j = 0; st == KVATTN_OK && j < G; j++) {
        const int t0 = j * r; /* the group's first source KV head */
        if (!aware) {
            for (int t = 0; t < r; t++)
                for (size_t k = 0; k < (size_t)d * Dz; k++) {
                    wk[(size_t)j * d * Dz + k] += s->wk[(size_t)(t0 + t) * d * Dz + k] / r;
                    wv[(size_t)j * d * Dz + k] += s->wv[(size_t)(t0 + t) * d * Dz + k] / r;
                }
            continue;
        }
        /* keys under RoPE: one complex component per pair */
        for (int i = 0; st == KVATTN_OK && i < half; i++) {
            int ia, ib;
            kv_pair_dims(s->cfg->rope.pairing, s->n_rot, i, &ia, &ib);
            for (int t = 0; t < r; t++) {
                a[t] = s->wk + ((size_t)(t0 + t) * d + ia) * Dz, b[t] = s->wk + ((size_t)(t0 + t) * d + ib) * Dz;
                e[t] = 0.0;
                for (int h = (t0 + t) * qpk; h < (t0 + t + 1) * qpk; h++)
                    e[t] += qe[(size_t)h * d + ia] + qe[(size_t)h * d + ib];
            }
            st = kv_rope_pair_basis(s->xx, D, a, b, e, r, W, B);
            if (st != KVATTN_OK) break;
            double *ka = wk + ((size_t)j * d + ia) * Dz, *kb = wk + ((size_t)j * d + ib) * Dz;
            for (int t = 0; t < r; t++) kv_cmul_rows(ka, kb, W[(size_t)t * r], a[t], b[t], D);
            for (int h = t0 * qpk; h < (t0 + r) * qpk; h++) {
                const int t = h / qpk - t0;
                double *qa = wq + ((size_t)h * d + ia) * Dz, *qb = wq + ((size_t)h * d + ib) * Dz;
                memset(qa, 0, sizeof(double) * Dz), memset(qb, 0, sizeof(double) * Dz);
                kv_cmul_rows(qa, qb, conj(B[(size_t)t * r]), s->wq + ((size_t)h * d + ia) * Dz,
                             s->wq + ((size_t)h * d + ib) * Dz, D);
            }
        }
        /* keys without RoPE (partial rotary): a real basis per dim, weighted the same way */
        for (int dim = s->n_rot; st == KVATTN_OK && dim < d; dim++) {
            double *R = Vg; /* scratch: r rows */
            for (int t = 0; t < r; t++) {
                memcpy(R + (size_t)t * Dz, s->wk + ((size_t)(t0 + t) * d + dim) * Dz, sizeof(double) * Dz);
                e[t] = 0.0;
                for (int h = (t0 + t) * qpk; h < (t0 + t + 1) * qpk; h++) e[t] += qe[(size_t)h * d + dim];
                e[t] = sqrt(e[t] > 1e-30 ? e[t] : 1e-30);
            }
            st = kv_project_cov(s->xx, D, R, r, Cr);
            for (int x = 0; x < r; x++)
                for (int y = 0; y < r; y++) Cr[(size_t)x * r + y] *= e[x] * e[y];
            if (st == KVATTN_OK) st = kv_eigh(r, Cr, ev);
            if (st != KVATTN_OK) break;
            double *kr = wk + ((size_t)j * d + dim) * Dz;
            for (int t = 0; t < r; t++)
                for (size_t k = 0; k < Dz; k++) kr[k] += Cr[(size_t)t * r] * e[t] * R[(size_t)t * Dz + k];
            for (int h = t0 * qpk; h < (t0 + r) * qpk; h++) {
                const int t = h / qpk - t0;
                double *q = wq + ((size_t)h * d + dim) * Dz;
                for (size_t k = 0; k < Dz; k++) q[k] = s->wq[((size_t)h * d + dim) * Dz + k] * Cr[(size_t)t * r] / e[t];
            }
        }
        /* values: the group's top d principal directions, each head's
         * weighted by its output projection (kv_output_gram) */
        for (int t = 0; st == KVATTN_OK && t < r; t++) {
            kv_output_gram(s, t0 + t, Mv);
            st = kv_sym_sqrt(d, Mv, Mv_half + (size_t)t * d * d, Mv_inv + (size_t)t * d * d);
        }
        if (st == KVATTN_OK) {
            const int n = r * d;
            memcpy(Vg, s->wv + (size_t)t0 * d * Dz, sizeof(double) * (size_t)n * Dz);
            st = kv_apply_blocks(Vg, d, Mv_half, r, D);
            if (st == KVATTN_OK) st = kv_project_cov(s->xx, D, Vg, n, P);
            if (st == KVATTN_OK) st = kv_eigh(n, P, ev);
        }
        if (st == KVATTN_OK) {
            const int n = r * d;
            for (int c = 0; c < d; c++) { /* wv_j row c = Σ_k P[k][c] Vg[k] */
                double *row = wv + ((size_t)j * d + c) * Dz;
                for (int k = 0; k < n; k++) {
                    const double p = P[(size_t)k * n + c];
                    for (size_t x = 0; x < Dz; x++) row[x] += p * Vg[(size_t)k * Dz + x];
                }
            }
            for (int h = t0 * qpk; h < (t0 + r) * qpk; h++) { /* wo_h ← wo_h · Mv_t^(-1/2) · P_t */
                const int t = h / qpk - t0;
                const double *inv = Mv_inv + (size_t)t * d * d;
                for (int k = 0; k < d; k++)
                    for (int c = 0; c < d; c++) {
                        double acc = 0.0;
                        for (int m = 0; m < d; m++) acc += inv[(size_t)k * d + m] * P[((size_t)t * d + m) * n + c];
                        Mv[(size_t)k * d + c] = acc; /* scratch: the block's map back */
                    }
                for (int row = 0; row < D; row++) {
                    const double *src = s->wo + (size_t)row * H * d + (size_t)h * d;
                    double *dst = wo + (size_t)row * H * d + (size_t)h * d;
                    for (int c = 0; c < d; c++) {
                        double acc = 0.0;
                        for (int k = 0; k < d; k++) acc += src[k] * Mv[(size_t)k * d + c];
                        dst[c] = acc;
                    }
                }
            }
        }
    }
    if (st == KVATTN_OK) {
        out->wq = kv_to_float(wq, (size_t)H * d * Dz), out->wk = kv_to_float(wk, (size_t)G * d * Dz);
        out->wv = kv_to_float(wv, (size_t)G * d * Dz), out->wo = kv_to_float(wo, (size_t)H * d * Dz);
        if (!out->wq || !out->wk || !out->wv || !out->wo) {
            free(out->wq), free(out->wk), free(out->wv), free(out->wo);
            memset(out, 0, sizeof *out);
            st = kv_fail(KVATTN_ERR_NOMEM, "convert: out of memory");
        }
    }
    free(wq), free(wk), free(wv), free(wo), free(qe), free(e), free(W), free(B), free((void *)a), free((void *)b);
    free(P), free(ev), free(Vg), free(Cr), free(Mv), free(Mv_half), free(Mv_inv);
    return st;
}
