/* Kernels of the projections (matmul.c) and of MLA's query absorption: rows
 * of a weight matrix read as several far-apart streams (decode GEMV and its
 * transpose), and the prefill GEMM's micro-kernel, each with a scalar twin. */
#ifndef KVATTN_MATMUL_KERNELS_H
#define KVATTN_MATMUL_KERNELS_H

#include "tile.h"

/* y[r] = rows[r]·x for nr ≤ KV_DOT_ROWS rows of type t (anywhere in memory), in
 * one pass over x: the decode GEMV's kernel, its rows being far-apart streams. */
#define KV_DOT_ROWS 8

/* How far ahead of a q8_0 row stream the GEMV prefetches (into L2). Its ints
 * widen in two vector µops per 16, about as many as an f16 chunk for half the
 * bytes, so the kernel runs near compute-bound and the hardware prefetchers
 * fall behind without help (bench/gemv_probe times the choice). */
#define KV_GEMV_Q8_0_AHEAD 2048

static inline void kv_rows_dot_ref(kvattn_type t, const unsigned char *const *rows, int nr, const float *x, int k,
                                   float *y) {
    for (int r = 0; r < nr; r++) y[r] = kv_row_dot_ref(t, rows[r], x, k);
}

#if KV_HAVE_AVX512
/* The whole q8_0 blocks of KV_DOT_ROWS rows against x, into z[r] (lanes to be
 * summed); returns the elements done. Per block, the ints' products with x are
 * summed first and multiplied by the block's scale once (Σ_b d_b Σ_i q_i x_i),
 * which saves the scale conversion, broadcast and multiply per 16 elements that
 * widening each chunk with its scale (kv_load16_avx512) costs. The scales of 16
 * blocks of each row are gathered at once and read by broadcast beside the FMA. */
static inline __attribute__((always_inline)) int kv_q8_0_rows_dot_avx512(const unsigned char *const *rw, const float *x,
                                                                         int k, __m512 *z) {
    const int nb = k / KV_Q8_0_BLOCK;
    float scales[KV_DOT_ROWS][16];
    for (int b0 = 0; b0 < nb; b0 += 16) {
        const int n16 = nb - b0 < 16 ? nb - b0 : 16;
        for (int r = 0; r < KV_DOT_ROWS; r++)
            kv_q8_0_scales(rw[r] + (size_t)b0 * sizeof(kv_block_q8_0), (size_t)n16 * sizeof(kv_block_q8_0), 1, n16,
                           scales[r]);
        for (int b = 0; b < n16; b++) {
            const float *xb = x + (size_t)(b0 + b) * KV_Q8_0_BLOCK;
            const __m512 x0 = _mm512_loadu_ps(xb), x1 = _mm512_loadu_ps(xb + 16);
            KV_UNROLL for (int r = 0; r < KV_DOT_ROWS; r++) {
                const int8_t *qs = ((const kv_block_q8_0 *)rw[r])[b0 + b].qs;
                if (b % 2 == 0)
                    kv_prefetch((const unsigned char *)qs + KV_GEMV_Q8_0_AHEAD, 1); /* a line per 68 bytes */
                const __m512 q0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)qs)));
                const __m512 q1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(qs + 16))));
                const __m512 sum = _mm512_fmadd_ps(q1, x1, _mm512_mul_ps(q0, x0));
                z[r] = _mm512_fmadd_ps(sum, _mm512_set1_ps(scales[r][b]), z[r]);
            }
        }
    }
    return nb * KV_Q8_0_BLOCK;
}
#endif

#if KV_HAVE_AVX2 && !KV_HAVE_AVX512
/* kv_q8_0_rows_dot_avx512's twin in 256-bit vectors, into a[r]; each block's scale
 * is converted where it is read. */
static inline __attribute__((always_inline)) int kv_q8_0_rows_dot_avx2(const unsigned char *const *rw, const float *x,
                                                                       int k, __m256 *a) {
    const int nb = k / KV_Q8_0_BLOCK;
    for (int b = 0; b < nb; b++) {
        const float *xb = x + (size_t)b * KV_Q8_0_BLOCK;
        KV_UNROLL for (int r = 0; r < KV_DOT_ROWS; r++) {
            const kv_block_q8_0 *blk = (const kv_block_q8_0 *)rw[r] + b;
            if (b % 2 == 0) /* through a byte pointer: an index past qs[32] would be out of bounds */
                kv_prefetch((const unsigned char *)blk + KV_GEMV_Q8_0_AHEAD, 1);
            __m256 sum = _mm256_setzero_ps();
            for (int i = 0; i < KV_Q8_0_BLOCK; i += 8) {
                const __m256 q =
                    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(blk->qs + i))));
                sum = _mm256_fmadd_ps(q, _mm256_loadu_ps(xb + i), sum);
            }
            a[r] = _mm256_fmadd_ps(sum, _mm256_set1_ps(_cvtsh_ss(blk->d)), a[r]);
        }
    }
    return nb * KV_Q8_0_BLOCK;
}
#endif

#if KV_HAVE_AVX2
/* Always inlined, so that a constant t leaves one branch-free loop per type. */
static inline __attribute__((always_inline)) void kv_rows_dot_avx(kvattn_type t, const unsigned char *const *rows,
                                                                  int nr, const float *x, int k, float *y) {
    __m256 a[KV_DOT_ROWS];
    const unsigned char *rw[KV_DOT_ROWS];
    for (int r = 0; r < KV_DOT_ROWS; r++) rw[r] = rows[r < nr ? r : 0]; /* spare lanes repeat row 0, unstored */
    int c = 0;
#if KV_HAVE_AVX512
    __m512 z[KV_DOT_ROWS];
    for (int r = 0; r < KV_DOT_ROWS; r++) z[r] = _mm512_setzero_ps();
    if (t == KVATTN_TYPE_Q8_0) c = kv_q8_0_rows_dot_avx512(rw, x, k, z);
    for (; c + 16 <= k; c += 16) {
        __m512 xv = _mm512_loadu_ps(x + c);
        for (int r = 0; r < KV_DOT_ROWS; r++) z[r] = _mm512_fmadd_ps(kv_load16_avx512(t, rw[r], c), xv, z[r]);
    }
    for (int r = 0; r < KV_DOT_ROWS; r++) a[r] = kv_fold_avx512(z[r]);
#else
    for (int r = 0; r < KV_DOT_ROWS; r++) a[r] = _mm256_setzero_ps();
    if (t == KVATTN_TYPE_Q8_0) c = kv_q8_0_rows_dot_avx2(rw, x, k, a);
#endif
    for (; c + 8 <= k; c += 8) {
        __m256 xv = _mm256_loadu_ps(x + c);
        for (int r = 0; r < KV_DOT_ROWS; r++) a[r] = _mm256_fmadd_ps(kv_load8_avx2(t, rw[r], c), xv, a[r]);
    }
    float s[KV_DOT_ROWS];
    _mm_storeu_ps(s, kv_hsum4(a[0], a[1], a[2], a[3]));
    _mm_storeu_ps(s + 4, kv_hsum4(a[4], a[5], a[6], a[7]));
    for (int r = 0; r < nr; r++) {
        for (int i = c; i < k; i++) s[r] += kv_row_get_ref(t, rw[r], i) * x[i];
        y[r] = s[r];
    }
}
#endif

static inline void isa_rows_dot(kvattn_type t, const unsigned char *const *rows, int nr, const float *x, int k,
                                float *y) {
    if (kv_is_block_quant(t)) { /* GGUF's 4-6-bit weights: a row at a time, a block decoded at a time */
        for (int r = 0; r < nr; r++) y[r] = isa_quant_row_dot(t, rows[r], x, k);
        return;
    }
#if KV_HAVE_AVX2
    switch (t) {
    case KVATTN_TYPE_F32: kv_rows_dot_avx(KVATTN_TYPE_F32, rows, nr, x, k, y); return;
    case KVATTN_TYPE_F16: kv_rows_dot_avx(KVATTN_TYPE_F16, rows, nr, x, k, y); return;
    case KVATTN_TYPE_BF16: kv_rows_dot_avx(KVATTN_TYPE_BF16, rows, nr, x, k, y); return;
    default: kv_rows_dot_avx(KVATTN_TYPE_Q8_0, rows, nr, x, k, y); return;
    }
#else
    kv_rows_dot_ref(t, rows, nr, x, k, y);
#endif
}

/* y[j·ldy + r] = rows[r]·xs[j·ldx] for nr ≤ KV_DOT_ROWS rows and ntok tokens,
 * each (row, token) by exactly the products and order isa_rows_dot gives it
 * (so a token's outputs have the same bits whatever the batch). At the
 * AVX-512 levels, f32/f16/bf16 rows meet 4 tokens at once, 4 rows at a time:
 * each row vector loaded (and widened) serves 4 tokens, each token vector 4
 * rows — half the loads per FMA of one token at a time. */
#if KV_HAVE_AVX512
static inline __attribute__((always_inline)) void kv_rows_dot_4x4_avx512(kvattn_type t, const unsigned char *const *rw,
                                                                         const float *const *xs, int k, float out[4][4],
                                                                         const kv_prefetch_spans *pf, unsigned *pi) {
    __m512 z[4][4];
    for (int r = 0; r < 4; r++)
        for (int j = 0; j < 4; j++) z[r][j] = _mm512_setzero_ps();
    int c = 0;
    for (; c + 16 <= k; c += 16) {
        __m512 w[4];
        for (int r = 0; r < 4; r++) w[r] = kv_load16_avx512(t, rw[r], c);
        kv_prefetch_take(pf, pi);
        for (int j = 0; j < 4; j++) {
            const __m512 xv = _mm512_loadu_ps(xs[j] + c);
            for (int r = 0; r < 4; r++) z[r][j] = _mm512_fmadd_ps(w[r], xv, z[r][j]);
        }
    }
    for (int j = 0; j < 4; j++) { /* the rest as kv_rows_dot_avx finishes a row */
        __m256 a[4];
        for (int r = 0; r < 4; r++) a[r] = kv_fold_avx512(z[r][j]);
        int cc = c;
        for (; cc + 8 <= k; cc += 8) {
            const __m256 xv = _mm256_loadu_ps(xs[j] + cc);
            for (int r = 0; r < 4; r++) a[r] = _mm256_fmadd_ps(kv_load8_avx2(t, rw[r], cc), xv, a[r]);
        }
        _mm_storeu_ps(out[j], kv_hsum4(a[0], a[1], a[2], a[3]));
        for (int r = 0; r < 4; r++)
            for (int i = cc; i < k; i++) out[j][r] += kv_row_get_ref(t, rw[r], i) * xs[j][i];
    }
}

static inline __attribute__((always_inline)) void
kv_rows_dot_tokens_avx512(kvattn_type t, const unsigned char *const *rows, int nr, const float *x, int ldx, int ntok,
                          int k, float *y, int ldy, const kv_prefetch_spans *pf, unsigned *pi) {
    int j0 = 0;
    for (; j0 + 4 <= ntok; j0 += 4) {
        const float *xs[4] = {x + (size_t)j0 * ldx, x + (size_t)(j0 + 1) * ldx, x + (size_t)(j0 + 2) * ldx,
                              x + (size_t)(j0 + 3) * ldx};
        for (int r0 = 0; r0 < nr; r0 += 4) {
            const unsigned char *rw[4];
            for (int r = 0; r < 4; r++) rw[r] = rows[r0 + r < nr ? r0 + r : r0]; /* spare lanes repeat, unstored */
            float out[4][4];
            kv_rows_dot_4x4_avx512(t, rw, xs, k, out, pf, pi);
            for (int j = 0; j < 4; j++)
                for (int r = 0; r < 4 && r0 + r < nr; r++) y[(size_t)(j0 + j) * ldy + r0 + r] = out[j][r];
        }
    }
    for (; j0 < ntok; j0++) isa_rows_dot(t, rows, nr, x + (size_t)j0 * ldx, k, y + (size_t)j0 * ldy);
}
#endif

static inline void isa_rows_dot_tokens(kvattn_type t, const unsigned char *const *rows, int nr, const float *x, int ldx,
                                       int ntok, int k, float *y, int ldy, const kv_prefetch_spans *pf, unsigned *pi) {
#if KV_HAVE_AVX512
    switch (t) {
    case KVATTN_TYPE_F32: kv_rows_dot_tokens_avx512(KVATTN_TYPE_F32, rows, nr, x, ldx, ntok, k, y, ldy, pf, pi); return;
    case KVATTN_TYPE_F16: kv_rows_dot_tokens_avx512(KVATTN_TYPE_F16, rows, nr, x, ldx, ntok, k, y, ldy, pf, pi); return;
    case KVATTN_TYPE_BF16:
        kv_rows_dot_tokens_avx512(KVATTN_TYPE_BF16, rows, nr, x, ldx, ntok, k, y, ldy, pf, pi);
        return;
    default: break;
    }
#endif
    (void)pf, (void)pi;
    for (int j = 0; j < ntok; j++) isa_rows_dot(t, rows, nr, x + (size_t)j * ldx, k, y + (size_t)j * ldy);
}

/* ---- prefill GEMM micro-kernel -------------------------------------------
 * C[r][t] += Σ_c W[r][c] · Xt[c][t] for KV_GEMM_ROWS rows of W (f32, row
 * stride ldw) and 16·nv tokens of the transposed activations Xt (row stride
 * ldx), c < kc. C is [KV_GEMM_ROWS][64]. The outer-product form: each step
 * loads nv vectors of Xt and multiplies them by a broadcast W element, so no
 * horizontal sums are needed (6 × 4 accumulators, 4 loads per 24 FMAs). */
#define KV_GEMM_ROWS   6
#define KV_GEMM_TOKENS 64

static inline void kv_gemm_micro_ref(const float *w, int ldw, const float *xt, int ldx, int kc, int nv, float *C) {
    for (int r = 0; r < KV_GEMM_ROWS; r++)
        for (int t = 0; t < 16 * nv; t++) {
            float acc = C[r * KV_GEMM_TOKENS + t];
            for (int c = 0; c < kc; c++) acc += w[(size_t)r * ldw + c] * xt[(size_t)c * ldx + t];
            C[r * KV_GEMM_TOKENS + t] = acc;
        }
}

#if KV_HAVE_AVX512
static inline __attribute__((always_inline)) void kv_gemm_micro_avx512(const float *w, int ldw, const float *xt,
                                                                       int ldx, int kc, const int NV, float *C) {
    __m512 acc[KV_GEMM_ROWS][4];
    for (int r = 0; r < KV_GEMM_ROWS; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = _mm512_loadu_ps(C + r * KV_GEMM_TOKENS + 16 * v);
    for (int c = 0; c < kc; c++) {
        __m512 x[4];
        for (int v = 0; v < NV; v++) x[v] = _mm512_loadu_ps(xt + (size_t)c * ldx + 16 * v);
        for (int r = 0; r < KV_GEMM_ROWS; r++) {
            __m512 b = _mm512_set1_ps(w[(size_t)r * ldw + c]);
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(b, x[v], acc[r][v]);
        }
    }
    for (int r = 0; r < KV_GEMM_ROWS; r++)
        for (int v = 0; v < NV; v++) _mm512_storeu_ps(C + r * KV_GEMM_TOKENS + 16 * v, acc[r][v]);
}
#endif

/* nv = 1..4 vectors of 16 tokens. */
static inline void isa_gemm_micro(const float *w, int ldw, const float *xt, int ldx, int kc, int nv, float *C) {
#if KV_HAVE_AVX512
    switch (nv) {
    case 4: kv_gemm_micro_avx512(w, ldw, xt, ldx, kc, 4, C); return;
    case 3: kv_gemm_micro_avx512(w, ldw, xt, ldx, kc, 3, C); return;
    case 2: kv_gemm_micro_avx512(w, ldw, xt, ldx, kc, 2, C); return;
    default: kv_gemm_micro_avx512(w, ldw, xt, ldx, kc, 1, C); return;
    }
#else
    kv_gemm_micro_ref(w, ldw, xt, ldx, kc, nv, C);
#endif
}

/* y[c] += Σ_r a[r]·rows[r][c] for nr ≤ KV_DOT_ROWS rows of type t: the
 * transposed GEMV (absorbing an MLA query into the latent space), reading its
 * rows as far-apart streams with y held in registers across them. */
static inline void kv_rows_axpy_ref(kvattn_type t, const unsigned char *const *rows, int nr, const float *a, float *y,
                                    int n) {
    for (int r = 0; r < nr; r++) kv_row_axpy_ref(t, rows[r], a[r], y, n);
}

#if KV_HAVE_AVX2
static inline __attribute__((always_inline)) void kv_rows_axpy_avx(kvattn_type t, const unsigned char *const *rows,
                                                                   int nr, const float *a, float *y, int n) {
    int c = 0;
#if KV_HAVE_AVX512
    for (; c + 16 <= n; c += 16) {
        __m512 acc = _mm512_loadu_ps(y + c);
        for (int r = 0; r < nr; r++) acc = _mm512_fmadd_ps(_mm512_set1_ps(a[r]), kv_load16_avx512(t, rows[r], c), acc);
        _mm512_storeu_ps(y + c, acc);
    }
#endif
    for (; c + 8 <= n; c += 8) {
        __m256 acc = _mm256_loadu_ps(y + c);
        for (int r = 0; r < nr; r++) acc = _mm256_fmadd_ps(_mm256_set1_ps(a[r]), kv_load8_avx2(t, rows[r], c), acc);
        _mm256_storeu_ps(y + c, acc);
    }
    for (; c < n; c++)
        for (int r = 0; r < nr; r++) y[c] += a[r] * kv_row_get_ref(t, rows[r], c);
}
#endif

/* n % 32 == 0 for q8_0 rows (whole blocks, as the cache and weights store them). */
static inline void isa_rows_axpy(kvattn_type t, const unsigned char *const *rows, int nr, const float *a, float *y,
                                 int n) {
    if (kv_is_block_quant(t)) {
        for (int r = 0; r < nr; r++) isa_row_axpy(t, rows[r], a[r], y, n);
        return;
    }
#if KV_HAVE_AVX2
    switch (t) {
    case KVATTN_TYPE_F32: kv_rows_axpy_avx(KVATTN_TYPE_F32, rows, nr, a, y, n); return;
    case KVATTN_TYPE_F16: kv_rows_axpy_avx(KVATTN_TYPE_F16, rows, nr, a, y, n); return;
    case KVATTN_TYPE_BF16: kv_rows_axpy_avx(KVATTN_TYPE_BF16, rows, nr, a, y, n); return;
    default: kv_rows_axpy_avx(KVATTN_TYPE_Q8_0, rows, nr, a, y, n); return;
    }
#else
    kv_rows_axpy_ref(t, rows, nr, a, y, n);
#endif
}

#endif
