/* Covariances of projected rows and the RoPE-commuting change of basis. */
#include "convert_internal.h"
#include "linalg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

float *kv_to_float(const double *x, size_t n) {
    float *y = malloc(sizeof(float) * (n ? n : 1));
    if (y)
        for (size_t i = 0; i < n; i++) y[i] = (float)x[i];
    return y;
}

void kv_row_energy(const double *S, int D, const double *W, int n, double *e) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const double *w = W + (size_t)i * D;
        double acc = 0.0;
        for (int k = 0; k < D; k++) {
            double sk = 0.0;
            const double *s = S + (size_t)k * D;
            for (int j = 0; j < D; j++) sk += s[j] * w[j];
            acc += w[k] * sk;
        }
        e[i] = acc;
    }
}

kvattn_status kv_project_cov(const double *S, int D, const double *R, int n, double *C) {
    double *T = malloc(sizeof(double) * (size_t)n * D);
    if (!T) return kv_fail(KVATTN_ERR_NOMEM, "convert: out of memory");
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) { /* T = R S */
        double *t = T + (size_t)i * D;
        for (int j = 0; j < D; j++) t[j] = 0.0;
        for (int k = 0; k < D; k++) {
            const double r = R[(size_t)i * D + k];
            if (r == 0.0) continue;
            const double *s = S + (size_t)k * D;
            for (int j = 0; j < D; j++) t[j] += r * s[j];
        }
    }
#pragma omp parallel for schedule(dynamic, 4)
    for (int i = 0; i < n; i++) /* C = T Rᵀ, symmetric */
        for (int j = i; j < n; j++) {
            double acc = 0.0;
            const double *t = T + (size_t)i * D, *r = R + (size_t)j * D;
            for (int k = 0; k < D; k++) acc += t[k] * r[k];
            C[(size_t)i * n + j] = C[(size_t)j * n + i] = acc;
        }
    free(T);
    return KVATTN_OK;
}

void kv_cmul_rows(double *out_a, double *out_b, double complex w, const double *a, const double *b, int D) {
    const double re = creal(w), im = cimag(w);
    for (int k = 0; k < D; k++) {
        out_a[k] += re * a[k] - im * b[k];
        out_b[k] += im * a[k] + re * b[k];
    }
}

kvattn_status kv_rope_pair_basis(const double *S, int D, const double *const *a, const double *const *b,
                                 const double *e, int n, double complex *W, double complex *B) {
    double *R = malloc(sizeof(double) * 2 * (size_t)n * D), *S2 = malloc(sizeof(double) * 4 * (size_t)n * n);
    double complex *C = malloc(sizeof(double complex) * (size_t)n * n);
    double *ev = malloc(sizeof(double) * (size_t)n), *sq = malloc(sizeof(double) * (size_t)n);
    kvattn_status st = R && S2 && C && ev && sq ? KVATTN_OK : kv_fail(KVATTN_ERR_NOMEM, "convert: out of memory");
    if (st == KVATTN_OK) {
        for (int t = 0; t < n; t++)
            for (int k = 0; k < D; k++) R[(size_t)t * D + k] = a[t][k], R[(size_t)(n + t) * D + k] = b[t][k];
        st = kv_project_cov(S, D, R, 2 * n, S2);
    }
    if (st == KVATTN_OK) {
        double mean = 0.0;
        for (int t = 0; t < n; t++) mean += e ? e[t] : 1.0;
        mean /= n;
        for (int t = 0; t < n; t++) { /* a head no query reads still gets a basis */
            const double w = e ? e[t] : 1.0;
            sq[t] = sqrt(w > 1e-12 * mean && w > 0.0 ? w : (mean > 0.0 ? 1e-12 * mean : 1.0));
        }
        const size_t m = 2 * (size_t)n;
        for (int s = 0; s < n; s++) /* E[z_s conj(z_t)], weighted */
            for (int t = 0; t < n; t++) {
                const double re = S2[s * m + t] + S2[(n + s) * m + n + t];
                const double im = S2[(n + s) * m + t] - S2[s * m + n + t];
                C[(size_t)s * n + t] = sq[s] * sq[t] * (re + I * im);
            }
        st = kv_eigh_complex(n, C, ev);
    }
    if (st == KVATTN_OK)
        for (int t = 0; t < n; t++)
            for (int c = 0; c < n; c++) {
                W[(size_t)t * n + c] = conj(C[(size_t)t * n + c]) * sq[t];
                B[(size_t)t * n + c] = C[(size_t)t * n + c] / sq[t];
            }
    free(R), free(S2), free(C), free(ev), free(sq);
    return st;
}

kvattn_status kv_sym_sqrt(int n, const double *M, double *half, double *inv_half) {
    double *U = malloc(sizeof(double) * (size_t)n * n), *w = malloc(sizeof(double) * (size_t)n);
    kvattn_status st = U && w ? KVATTN_OK : kv_fail(KVATTN_ERR_NOMEM, "convert: out of memory");
    if (st == KVATTN_OK) {
        memcpy(U, M, sizeof(double) * (size_t)n * n);
        st = kv_eigh(n, U, w);
    }
    if (st == KVATTN_OK) {
        const double floor_value = (w[0] > 0.0 ? w[0] : 1.0) * 1e-8; /* directions nothing reads still invert */
        for (int k = 0; k < n; k++) w[k] = sqrt(w[k] > floor_value ? w[k] : floor_value);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double a = 0.0, b = 0.0;
                for (int k = 0; k < n; k++) {
                    const double uu = U[(size_t)i * n + k] * U[(size_t)j * n + k];
                    a += uu * w[k], b += uu / w[k];
                }
                half[(size_t)i * n + j] = a, inv_half[(size_t)i * n + j] = b;
            }
    }
    free(U), free(w);
    return st;
}

kvattn_status kv_apply_blocks(double *y, int n, const double *M, int nb, int D) {
    if (n == 0 || nb == 0) return KVATTN_OK;
    double *tmp = malloc(sizeof(double) * (size_t)n * D);
    if (!tmp) return kv_fail(KVATTN_ERR_NOMEM, "convert: out of memory");
    for (int b = 0; b < nb; b++) {
        double *yb = y + (size_t)b * n * D;
        const double *m = M + (size_t)b * n * n;
        memset(tmp, 0, sizeof(double) * (size_t)n * D);
        for (int i = 0; i < n; i++)
            for (int k = 0; k < n; k++) {
                const double w = m[(size_t)i * n + k];
                for (int x = 0; x < D; x++) tmp[(size_t)i * D + x] += w * yb[(size_t)k * D + x];
            }
        memcpy(yb, tmp, sizeof(double) * (size_t)n * D);
    }
    free(tmp);
    return KVATTN_OK;
}

void kv_output_gram(const kv_src_layer *s, int t, double *M) {
    const int d = s->d, qpk = s->H / s->K;
    memset(M, 0, sizeof(double) * (size_t)d * d);
    for (int h = t * qpk; h < (t + 1) * qpk; h++)
        for (int row = 0; row < s->D; row++) {
            const double *o = s->wo + (size_t)row * s->H * d + (size_t)h * d;
            for (int i = 0; i < d; i++)
                for (int j = 0; j < d; j++) M[(size_t)i * d + j] += o[i] * o[j];
        }
}
