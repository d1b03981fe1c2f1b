/* Tile kernels of the attention core: two small matrix products between a
 * tile of KV rows and all the query heads that share it,
 *   scores:     S[g][j]  = Σ_c Q[g][c] · K[j][c]      (G × N, inner d)
 *   accumulate: O[g][c] += Σ_j P[g][j] · V[j][c]      (G × d, inner N)
 * over rows staged once as f32 or read in place (f16, bf16, q8_0 widened in
 * registers). SIMD paths are register-blocked so each load feeds several
 * FMAs — AVX2: 2 queries × 4 rows and 2 queries × 32 columns; AVX-512: 16
 * accumulators, up to 4 queries × 4 rows and 4 queries × 64 columns, or, for
 * 16 queries one per lane (kv_q16_*), 16 rows and 16 columns of all sixteen
 * queries — and the _ref twins are plain loops. The projections' kernels are
 * in matmul_kernels.h. */
#ifndef KVATTN_TILE_H
#define KVATTN_TILE_H

#include "prefetch.h"
#include "vec.h"

/* Scalar twin of kv_q8_0_scales. */
static inline void kv_q8_0_scales_ref(const unsigned char *rows, size_t stride, int N, int nb, float *out) {
    for (int j = 0; j < N; j++)
        for (int b = 0; b < nb; b++)
            out[j * nb + b] = kv_f16_to_f32(((const kv_block_q8_0 *)(rows + (size_t)j * stride))[b].d);
}

static inline void kv_tile_scores_f32_ref(const float *Q, int ldq, int G, const float *K, int ldk, int N, int d,
                                          float *S, int lds) {
    for (int g = 0; g < G; g++)
        for (int j = 0; j < N; j++) S[g * lds + j] = kv_dot_f32_ref(Q + (size_t)g * ldq, K + (size_t)j * ldk, d);
}

static inline void kv_tile_accum_f32_ref(const float *P, int ldp, int G, const float *V, int ldv, int N, int d,
                                         float *O, int ldo) {
    for (int g = 0; g < G; g++)
        for (int j = 0; j < N; j++) {
            float p = P[g * ldp + j];
            for (int c = 0; c < d; c++) O[(size_t)g * ldo + c] += p * V[(size_t)j * ldv + c];
        }
}

#if KV_HAVE_AVX2
/* Four horizontal sums at once: {Σa, Σb, Σc, Σd}. */
static inline __m128 kv_hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
    __m256 ab = _mm256_hadd_ps(a, b), cd = _mm256_hadd_ps(c, d), abcd = _mm256_hadd_ps(ab, cd);
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}
#endif

/* ---- Blocks of 16 queries, one query per lane ----------------------------
 * For many queries sharing each row (MQA, absorbed MLA), sixteen queries are
 * the sixteen lanes of a vector, so neither product needs a horizontal sum:
 *   scores     St[j][i] = Σ_c K[j][c] · Qt[c][i]  — a row element broadcast
 *              (a load, free beside the FMA) times the 16 queries' element c;
 *   accumulate O[i][c] += Σ_j St[j][i] · V[j][c]   — a weight broadcast times
 *              16 columns of a row, widened once for all sixteen outputs.
 * The rows are read in place, whatever the cache type. For the scores' broadcasts
 * each block of 16 rows is widened a chunk of 16 columns at a time into a 1 KiB
 * ring that stays in L1, and the chunk's 256 products follow at once (an f32
 * copy of a whole part of the tile would miss L1, which the queries and outputs
 * keep full). The
 * accumulation widens each row chunk in registers and keeps 16 columns of all
 * sixteen outputs there over the whole tile. The queries are packed once as
 * Qt [d][16]; the softmax runs on St [N][16] a row of sixteen queries at a time,
 * and St is then the weights the accumulation broadcasts: no transposes.
 * d % 16 == 0 (q8_0 rows may end in a half-used block). */
#define KV_Q16 16

/* Q [16][ldq] → Qt [d][16]. */
static inline void kv_q16_pack_ref(const float *Q, int ldq, int d, float *Qt) {
    for (int i = 0; i < KV_Q16; i++)
        for (int c = 0; c < d; c++) Qt[(size_t)c * KV_Q16 + i] = Q[(size_t)i * ldq + c];
}

/* St[j][i] = K[j]·Q[i] for the 16 packed queries, rows j < N of type t (`stride` bytes apart). */
static inline void kv_q16_scores_ref(const float *Qt, kvattn_type t, const unsigned char *K, size_t stride, int N,
                                     int d, float *St) {
    for (int j = 0; j < N; j++)
        for (int i = 0; i < KV_Q16; i++) {
            float acc = 0.0f;
            for (int c = 0; c < d; c++)
                acc += kv_row_get_ref(t, K + (size_t)j * stride, c) * Qt[(size_t)c * KV_Q16 + i];
            St[(size_t)j * KV_Q16 + i] = acc;
        }
}

/* The online softmax of 16 queries over a tile's scores St [N][16] (raw dot
 * products, times `scale` here): m[i], l[i] are the running max and sum,
 * updated; St becomes the weights e^(s - m_new); corr[i] = e^(m_old - m_new),
 * the factor for the outputs accumulated so far (0 on the first tile). */
static inline void kv_q16_softmax_ref(float *St, int N, float scale, float *m, float *l, float *corr) {
    for (int i = 0; i < KV_Q16; i++) {
        float mt = m[i], sum = 0.0f;
        for (int j = 0; j < N; j++) mt = fmaxf(mt, St[(size_t)j * KV_Q16 + i] * scale);
        for (int j = 0; j < N; j++) sum += St[(size_t)j * KV_Q16 + i] = expf(St[(size_t)j * KV_Q16 + i] * scale - mt);
        corr[i] = expf(m[i] - mt);
        l[i] = l[i] * corr[i] + sum;
        m[i] = mt;
    }
}

/* O[i][c] += Σ_j St[j][i] · V[j][c], c < d, j < N, over rows of type t (`stride` bytes apart). */
static inline void kv_q16_accum_ref(const float *St, kvattn_type t, const unsigned char *V, size_t stride, int N, int d,
                                    float *O, int ldo) {
    for (int i = 0; i < KV_Q16; i++)
        for (int j = 0; j < N; j++)
            kv_row_axpy_ref(t, V + (size_t)j * stride, St[(size_t)j * KV_Q16 + i], O + (size_t)i * ldo, d);
}

/* N rows of type t (`stride` bytes apart) → f32 rows W [N][d]. For q8_0 caches
 * the 16-query products read such a copy, a part of a tile at a time: a q8_0
 * chunk widens in 3 vector µops (f16: 2), and MLA reads its rows
 * twice, MQA once per block of 16 queries. */
static inline void kv_q16_widen_ref(kvattn_type t, const unsigned char *rows, size_t stride, int N, int d, float *W) {
    for (int j = 0; j < N; j++)
        for (int c = 0; c < d; c++) W[(size_t)j * d + c] = kv_row_get_ref(t, rows + (size_t)j * stride, c);
}

#if KV_HAVE_AVX512
#include "tile_avx512.h"
#endif

static inline void isa_tile_scores_f32(const float *Q, int ldq, int G, const float *K, int ldk, int N, int d, float *S,
                                       int lds) {
#if KV_HAVE_AVX512
    kv_tile_scores_avx512(Q, ldq, G, KVATTN_TYPE_F32, (const unsigned char *)K, (size_t)ldk * sizeof(float), N, d, S,
                          lds, &kv_prefetch_none);
    return;
#endif
#if KV_HAVE_AVX2
    const int d8 = d & ~7;
    int g = 0;
    for (; g + 2 <= G; g += 2) {
        const float *q0 = Q + (size_t)g * ldq, *q1 = q0 + ldq;
        int j = 0;
        for (; j + 4 <= N; j += 4) {
            const float *k0 = K + (size_t)j * ldk, *k1 = k0 + ldk, *k2 = k1 + ldk, *k3 = k2 + ldk;
            __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00,
                   a13 = a00;
            for (int c = 0; c < d8; c += 8) {
                __m256 x0 = _mm256_loadu_ps(q0 + c), x1 = _mm256_loadu_ps(q1 + c), k;
                k = _mm256_loadu_ps(k0 + c), a00 = _mm256_fmadd_ps(x0, k, a00), a10 = _mm256_fmadd_ps(x1, k, a10);
                k = _mm256_loadu_ps(k1 + c), a01 = _mm256_fmadd_ps(x0, k, a01), a11 = _mm256_fmadd_ps(x1, k, a11);
                k = _mm256_loadu_ps(k2 + c), a02 = _mm256_fmadd_ps(x0, k, a02), a12 = _mm256_fmadd_ps(x1, k, a12);
                k = _mm256_loadu_ps(k3 + c), a03 = _mm256_fmadd_ps(x0, k, a03), a13 = _mm256_fmadd_ps(x1, k, a13);
            }
            __m128 r0 = kv_hsum4(a00, a01, a02, a03), r1 = kv_hsum4(a10, a11, a12, a13);
            float t0[4], t1[4];
            _mm_storeu_ps(t0, r0);
            _mm_storeu_ps(t1, r1);
            for (int c = d8; c < d; c++)
                for (int r = 0; r < 4; r++) {
                    float kv = K[(size_t)(j + r) * ldk + c];
                    t0[r] += q0[c] * kv;
                    t1[r] += q1[c] * kv;
                }
            memcpy(S + (size_t)g * lds + j, t0, sizeof t0);
            memcpy(S + (size_t)(g + 1) * lds + j, t1, sizeof t1);
        }
        for (; j < N; j++) {
            S[(size_t)g * lds + j] = isa_dot_f32(q0, K + (size_t)j * ldk, d);
            S[(size_t)(g + 1) * lds + j] = isa_dot_f32(q1, K + (size_t)j * ldk, d);
        }
    }
    for (; g < G; g++) { /* a last single query: 4 rows at a time */
        const float *q0 = Q + (size_t)g * ldq;
        int j = 0;
        for (; j + 4 <= N; j += 4) {
            const float *k0 = K + (size_t)j * ldk, *k1 = k0 + ldk, *k2 = k1 + ldk, *k3 = k2 + ldk;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int c = 0; c < d8; c += 8) {
                __m256 x0 = _mm256_loadu_ps(q0 + c);
                a0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(k0 + c), a0);
                a1 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(k1 + c), a1);
                a2 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(k2 + c), a2);
                a3 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(k3 + c), a3);
            }
            float t0[4];
            _mm_storeu_ps(t0, kv_hsum4(a0, a1, a2, a3));
            for (int c = d8; c < d; c++)
                for (int r = 0; r < 4; r++) t0[r] += q0[c] * K[(size_t)(j + r) * ldk + c];
            memcpy(S + (size_t)g * lds + j, t0, sizeof t0);
        }
        for (; j < N; j++) S[(size_t)g * lds + j] = isa_dot_f32(q0, K + (size_t)j * ldk, d);
    }
#else
    kv_tile_scores_f32_ref(Q, ldq, G, K, ldk, N, d, S, lds);
#endif
}

static inline void isa_tile_accum_f32(const float *P, int ldp, int G, const float *V, int ldv, int N, int d, float *O,
                                      int ldo) {
#if KV_HAVE_AVX512
    kv_tile_accum_avx512(P, ldp, G, KVATTN_TYPE_F32, (const unsigned char *)V, (size_t)ldv * sizeof(float), N, d, O,
                         ldo, &kv_prefetch_none);
    return;
#endif
#if KV_HAVE_AVX2
    int g = 0;
    for (; g + 2 <= G; g += 2) {
        float *o0 = O + (size_t)g * ldo, *o1 = o0 + ldo;
        const float *p0 = P + (size_t)g * ldp, *p1 = p0 + ldp;
        int c = 0;
        for (; c + 32 <= d; c += 32) {
            __m256 a0 = _mm256_loadu_ps(o0 + c), a1 = _mm256_loadu_ps(o0 + c + 8), a2 = _mm256_loadu_ps(o0 + c + 16),
                   a3 = _mm256_loadu_ps(o0 + c + 24);
            __m256 b0 = _mm256_loadu_ps(o1 + c), b1 = _mm256_loadu_ps(o1 + c + 8), b2 = _mm256_loadu_ps(o1 + c + 16),
                   b3 = _mm256_loadu_ps(o1 + c + 24);
            for (int j = 0; j < N; j++) {
                const float *vr = V + (size_t)j * ldv + c;
                __m256 x0 = _mm256_set1_ps(p0[j]), x1 = _mm256_set1_ps(p1[j]), v;
                v = _mm256_loadu_ps(vr), a0 = _mm256_fmadd_ps(x0, v, a0), b0 = _mm256_fmadd_ps(x1, v, b0);
                v = _mm256_loadu_ps(vr + 8), a1 = _mm256_fmadd_ps(x0, v, a1), b1 = _mm256_fmadd_ps(x1, v, b1);
                v = _mm256_loadu_ps(vr + 16), a2 = _mm256_fmadd_ps(x0, v, a2), b2 = _mm256_fmadd_ps(x1, v, b2);
                v = _mm256_loadu_ps(vr + 24), a3 = _mm256_fmadd_ps(x0, v, a3), b3 = _mm256_fmadd_ps(x1, v, b3);
            }
            _mm256_storeu_ps(o0 + c, a0), _mm256_storeu_ps(o0 + c + 8, a1), _mm256_storeu_ps(o0 + c + 16, a2),
                _mm256_storeu_ps(o0 + c + 24, a3);
            _mm256_storeu_ps(o1 + c, b0), _mm256_storeu_ps(o1 + c + 8, b1), _mm256_storeu_ps(o1 + c + 16, b2),
                _mm256_storeu_ps(o1 + c + 24, b3);
        }
        for (; c + 8 <= d; c += 8) {
            __m256 a = _mm256_loadu_ps(o0 + c), b = _mm256_loadu_ps(o1 + c);
            for (int j = 0; j < N; j++) {
                __m256 v = _mm256_loadu_ps(V + (size_t)j * ldv + c);
                a = _mm256_fmadd_ps(_mm256_set1_ps(p0[j]), v, a);
                b = _mm256_fmadd_ps(_mm256_set1_ps(p1[j]), v, b);
            }
            _mm256_storeu_ps(o0 + c, a), _mm256_storeu_ps(o1 + c, b);
        }
        for (; c < d; c++)
            for (int j = 0; j < N; j++)
                o0[c] += p0[j] * V[(size_t)j * ldv + c], o1[c] += p1[j] * V[(size_t)j * ldv + c];
    }
    for (; g < G; g++) { /* a last single query: 32 columns held in registers over the tile */
        float *o0 = O + (size_t)g * ldo;
        const float *p0 = P + (size_t)g * ldp;
        int c = 0;
        for (; c + 32 <= d; c += 32) {
            __m256 a0 = _mm256_loadu_ps(o0 + c), a1 = _mm256_loadu_ps(o0 + c + 8), a2 = _mm256_loadu_ps(o0 + c + 16),
                   a3 = _mm256_loadu_ps(o0 + c + 24);
            for (int j = 0; j < N; j++) {
                const float *vr = V + (size_t)j * ldv + c;
                __m256 x0 = _mm256_set1_ps(p0[j]);
                a0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(vr), a0);
                a1 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(vr + 8), a1);
                a2 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(vr + 16), a2);
                a3 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(vr + 24), a3);
            }
            _mm256_storeu_ps(o0 + c, a0), _mm256_storeu_ps(o0 + c + 8, a1), _mm256_storeu_ps(o0 + c + 16, a2),
                _mm256_storeu_ps(o0 + c + 24, a3);
        }
        for (; c < d; c++)
            for (int j = 0; j < N; j++) o0[c] += p0[j] * V[(size_t)j * ldv + c];
    }
#else
    kv_tile_accum_f32_ref(P, ldp, G, V, ldv, N, d, O, ldo);
#endif
}

/* The same two products reading K / V rows stored as f16, bf16 or q8_0
 * directly (widened in registers, no staging). Rows at `base + j·stride`
 * bytes; d must be a multiple of 8 (a q8_0 chunk of 8 never crosses a block). */
static inline void isa_tile_scores(const float *Q, int ldq, int G, kvattn_type t, const unsigned char *K, size_t stride,
                                   int N, int d, float *S, int lds, const kv_prefetch_spans *pf) {
#if KV_HAVE_AVX512
    if (d % 16 == 0) {
        kv_tile_scores_avx512(Q, ldq, G, t, K, stride, N, d, S, lds, pf);
        return;
    }
#endif
#if KV_HAVE_AVX2
    int g = 0;
    for (; g < G; g += 2) {
        const int two = g + 1 < G;
        const float *q0 = Q + (size_t)g * ldq, *q1 = two ? q0 + ldq : q0;
        const kv_prefetch_spans *pfg = g == 0 ? pf : &kv_prefetch_none;
        unsigned pi = 0;
        int j = 0;
        for (; j + 4 <= N; j += 4) {
            const unsigned char *k0 = K + (size_t)j * stride, *k1 = k0 + stride, *k2 = k1 + stride, *k3 = k2 + stride;
            __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00,
                   a13 = a00;
            for (int c = 0; c < d; c += 8) {
                kv_prefetch_take(pfg, &pi); /* 8 elements of 4 rows: one take per 32 read */
                __m256 x0 = _mm256_loadu_ps(q0 + c), x1 = _mm256_loadu_ps(q1 + c), k;
                k = kv_load8_avx2(t, k0, c), a00 = _mm256_fmadd_ps(x0, k, a00), a10 = _mm256_fmadd_ps(x1, k, a10);
                k = kv_load8_avx2(t, k1, c), a01 = _mm256_fmadd_ps(x0, k, a01), a11 = _mm256_fmadd_ps(x1, k, a11);
                k = kv_load8_avx2(t, k2, c), a02 = _mm256_fmadd_ps(x0, k, a02), a12 = _mm256_fmadd_ps(x1, k, a12);
                k = kv_load8_avx2(t, k3, c), a03 = _mm256_fmadd_ps(x0, k, a03), a13 = _mm256_fmadd_ps(x1, k, a13);
            }
            _mm_storeu_ps(S + (size_t)g * lds + j, kv_hsum4(a00, a01, a02, a03));
            if (two) _mm_storeu_ps(S + (size_t)(g + 1) * lds + j, kv_hsum4(a10, a11, a12, a13));
        }
        for (; j < N; j++) {
            __m256 a0 = _mm256_setzero_ps(), a1 = a0;
            const unsigned char *kr = K + (size_t)j * stride;
            kv_prefetch_take_row(pfg, &pi, d);
            for (int c = 0; c < d; c += 8) {
                __m256 k = kv_load8_avx2(t, kr, c);
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q0 + c), k, a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q1 + c), k, a1);
            }
            S[(size_t)g * lds + j] = kv_hsum_avx2(a0);
            if (two) S[(size_t)(g + 1) * lds + j] = kv_hsum_avx2(a1);
        }
    }
#else
    unsigned pi = 0;
    for (int j = 0; j < N; j++) kv_prefetch_take_row(pf, &pi, d);
    for (int g = 0; g < G; g++)
        for (int j = 0; j < N; j++)
            S[(size_t)g * lds + j] = kv_row_dot_ref(t, K + (size_t)j * stride, Q + (size_t)g * ldq, d);
#endif
}

static inline void isa_tile_accum(const float *P, int ldp, int G, kvattn_type t, const unsigned char *V, size_t stride,
                                  int N, int d, float *O, int ldo, const kv_prefetch_spans *pf) {
#if KV_HAVE_AVX512
    if (d % 16 == 0) {
        kv_tile_accum_avx512(P, ldp, G, t, V, stride, N, d, O, ldo, pf);
        return;
    }
#endif
#if KV_HAVE_AVX2
    for (int g = 0; g < G; g += 2) {
        const int two = g + 1 < G;
        float *o0 = O + (size_t)g * ldo, *o1 = two ? o0 + ldo : o0;
        const float *p0 = P + (size_t)g * ldp, *p1 = two ? p0 + ldp : p0;
        const kv_prefetch_spans *pfg = g == 0 ? pf : &kv_prefetch_none;
        unsigned pi = 0;
        int c = 0;
        for (; c + 32 <= d; c += 32) {
            __m256 a0 = _mm256_loadu_ps(o0 + c), a1 = _mm256_loadu_ps(o0 + c + 8), a2 = _mm256_loadu_ps(o0 + c + 16),
                   a3 = _mm256_loadu_ps(o0 + c + 24);
            __m256 b0 = _mm256_setzero_ps(), b1 = b0, b2 = b0, b3 = b0;
            for (int j = 0; j < N; j++) {
                const unsigned char *vr = V + (size_t)j * stride;
                kv_prefetch_take(pfg, &pi);
                __m256 x0 = _mm256_set1_ps(p0[j]), x1 = _mm256_set1_ps(p1[j]), v;
                v = kv_load8_avx2(t, vr, c), a0 = _mm256_fmadd_ps(x0, v, a0), b0 = _mm256_fmadd_ps(x1, v, b0);
                v = kv_load8_avx2(t, vr, c + 8), a1 = _mm256_fmadd_ps(x0, v, a1), b1 = _mm256_fmadd_ps(x1, v, b1);
                v = kv_load8_avx2(t, vr, c + 16), a2 = _mm256_fmadd_ps(x0, v, a2), b2 = _mm256_fmadd_ps(x1, v, b2);
                v = kv_load8_avx2(t, vr, c + 24), a3 = _mm256_fmadd_ps(x0, v, a3), b3 = _mm256_fmadd_ps(x1, v, b3);
            }
            _mm256_storeu_ps(o0 + c, a0), _mm256_storeu_ps(o0 + c + 8, a1), _mm256_storeu_ps(o0 + c + 16, a2),
                _mm256_storeu_ps(o0 + c + 24, a3);
            if (two) {
                _mm256_storeu_ps(o1 + c, _mm256_add_ps(_mm256_loadu_ps(o1 + c), b0));
                _mm256_storeu_ps(o1 + c + 8, _mm256_add_ps(_mm256_loadu_ps(o1 + c + 8), b1));
                _mm256_storeu_ps(o1 + c + 16, _mm256_add_ps(_mm256_loadu_ps(o1 + c + 16), b2));
                _mm256_storeu_ps(o1 + c + 24, _mm256_add_ps(_mm256_loadu_ps(o1 + c + 24), b3));
            }
        }
        for (; c < d; c += 8) {
            __m256 a = _mm256_loadu_ps(o0 + c), b = _mm256_setzero_ps();
            for (int j = 0; j < N; j++) {
                if (c % 32 == 0) kv_prefetch_take(pfg, &pi);
                __m256 v = kv_load8_avx2(t, V + (size_t)j * stride, c);
                a = _mm256_fmadd_ps(_mm256_set1_ps(p0[j]), v, a);
                b = _mm256_fmadd_ps(_mm256_set1_ps(p1[j]), v, b);
            }
            _mm256_storeu_ps(o0 + c, a);
            if (two) _mm256_storeu_ps(o1 + c, _mm256_add_ps(_mm256_loadu_ps(o1 + c), b));
        }
    }
#else
    unsigned pi = 0;
    for (int j = 0; j < N; j++) kv_prefetch_take_row(pf, &pi, d);
    for (int g = 0; g < G; g++)
        for (int j = 0; j < N; j++)
            kv_row_axpy_ref(t, V + (size_t)j * stride, P[(size_t)g * ldp + j], O + (size_t)g * ldo, d);
#endif
}

/* Whether a group of G queries over rows of type t goes through these blocks. */
static inline int isa_q16_ok(kvattn_type t, int G, int kd, int vd) {
#if KV_HAVE_AVX512
    return t != KVATTN_TYPE_F32 && G % KV_Q16 == 0 && kd % 16 == 0 && vd % 16 == 0;
#else
    (void)t, (void)G, (void)kd, (void)vd;
    return 0;
#endif
}

static inline void isa_q16_pack(const float *Q, int ldq, int d, float *Qt) {
#if KV_HAVE_AVX512
    int c = 0;
    for (; c + 16 <= d; c += 16) {
        __m512 x[16];
        KV_UNROLL for (int i = 0; i < 16; i++) x[i] = _mm512_loadu_ps(Q + (size_t)i * ldq + c);
        kv_transpose16_avx512(x);
        KV_UNROLL for (int i = 0; i < 16; i++) _mm512_storeu_ps(Qt + (size_t)(c + i) * KV_Q16, x[i]);
    }
    for (; c < d; c++)
        for (int i = 0; i < KV_Q16; i++) Qt[(size_t)c * KV_Q16 + i] = Q[(size_t)i * ldq + c];
#else
    kv_q16_pack_ref(Q, ldq, d, Qt);
#endif
}

static inline void isa_q16_widen(kvattn_type t, const unsigned char *rows, size_t stride, int N, int d, float *W) {
#if KV_HAVE_AVX512
    kv_q16_widen_avx512(t, rows, stride, N, d, W);
#else
    kv_q16_widen_ref(t, rows, stride, N, d, W);
#endif
}

/* The three steps for 16 packed queries (Qt 64-byte aligned) over rows of type
 * t read in place (f32: rows widened by isa_q16_widen): `pf` the rows to
 * prefetch meanwhile (kv_prefetch_none if none), from its *pi-th take on. */
static inline void isa_q16_scores(const float *Qt, kvattn_type t, const unsigned char *K, size_t stride, int N, int d,
                                  float *St, const kv_prefetch_spans *pf, unsigned *pi) {
#if KV_HAVE_AVX512
    kv_q16_scores_avx512(Qt, t, K, stride, N, d, St, pf, pi);
#else
    for (int j = 0; j < N; j++) kv_prefetch_take_row(pf, pi, d);
    kv_q16_scores_ref(Qt, t, K, stride, N, d, St);
#endif
}

static inline void isa_q16_softmax(float *St, int N, float scale, float *m, float *l, float *corr) {
#if KV_HAVE_AVX512
    kv_q16_softmax_avx512(St, N, scale, m, l, corr);
#else
    kv_q16_softmax_ref(St, N, scale, m, l, corr);
#endif
}

static inline void isa_q16_accum(const float *St, kvattn_type t, const unsigned char *V, size_t stride, int N, int d,
                                 float *O, int ldo, const kv_prefetch_spans *pf, unsigned *pi) {
#if KV_HAVE_AVX512
    kv_q16_accum_avx512(St, t, V, stride, N, d, O, ldo, pf, pi);
#else
    for (int j = 0; j < N; j++) kv_prefetch_take_row(pf, pi, d);
    kv_q16_accum_ref(St, t, V, stride, N, d, O, ldo);
#endif
}

#endif
