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

#if KV_HAVE_AVX512
/* The f32 scales of nb q8_0 blocks of each of N rows (`stride` bytes apart): out[j·nb + b].
 * Rows back to back (the cache's): 16 scales per gather, 34 bytes apart. */
static inline void kv_q8_0_scales(const unsigned char *rows, size_t stride, int N, int nb, float *out) {
    const int n = N * nb;
    int k = 0;
    if (stride == (size_t)nb * sizeof(kv_block_q8_0)) {
        const __m512i step = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                                _mm512_set1_epi32((int)sizeof(kv_block_q8_0)));
        for (; k + 16 <= n; k += 16) { /* each 32-bit gather holds a scale and the block's first two quants */
            const __m512i at = _mm512_add_epi32(step, _mm512_set1_epi32(k * (int)sizeof(kv_block_q8_0)));
            const __m512i d32 = _mm512_i32gather_epi32(at, (const void *)rows, 1);
            _mm512_storeu_ps(out + k, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(d32)));
        }
    }
    for (; k < n; k++) out[k] = _cvtsh_ss(((const kv_block_q8_0 *)(rows + (size_t)(k / nb) * stride))[k % nb].d);
}

/* Block scales of a q8_0 tile gathered once up front: 64 rows of 1024 elements. */
#define KV_Q8_0_TILE_SCALES 2048

/* The block scales of N q8_0 rows of d elements gathered into `scales`
 * (kv_q8_0_scales), to be read by broadcast beside the multiply instead of
 * widened per chunk; NULL when t is not q8_0, when d is not whole blocks (a
 * row's blocks are then not d / 32: each chunk widens its own block's scale)
 * or when the tile has more than KV_Q8_0_TILE_SCALES blocks. */
static inline const float *kv_q8_0_tile_scales(kvattn_type t, const unsigned char *rows, size_t stride, int N, int d,
                                               float *scales) {
    if (t != KVATTN_TYPE_Q8_0 || d % KV_Q8_0_BLOCK || (size_t)N * (size_t)(d / KV_Q8_0_BLOCK) > KV_Q8_0_TILE_SCALES)
        return NULL;
    kv_q8_0_scales(rows, stride, N, d / KV_Q8_0_BLOCK, scales);
    return scales;
}

#endif

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

#if KV_HAVE_AVX512
/* ---- 512-bit twins of the tile products ---------------------------------
 * Blocks of 16 accumulators: NG queries (1, 2 or 4) × 16/NG rows for the
 * scores, reduced together by one butterfly; NG queries × 64 columns for the
 * accumulation. Each row chunk is widened once for all NG queries. */

/* Sixteen horizontal sums at once: lane i of the result is Σ u[i]. A butterfly
 * halves the vector count per level (45 shuffles and adds in all); reading the
 * inputs in the self-inverse order `perm` leaves the sums in lane order. */
static inline __m512 kv_hsum16_avx512(const __m512 *u) {
    static const int perm[16] = {0, 2, 1, 3, 8, 10, 9, 11, 4, 6, 5, 7, 12, 14, 13, 15};
    __m512 w[8], x[4], y[2];
    for (int k = 0; k < 8; k++) {
        __m512 a = u[perm[k]], b = u[perm[k + 8]];
        w[k] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
    }
    for (int k = 0; k < 4; k++)
        x[k] = _mm512_add_ps(_mm512_shuffle_f32x4(w[k], w[k + 4], 0x88), _mm512_shuffle_f32x4(w[k], w[k + 4], 0xDD));
    for (int k = 0; k < 2; k++)
        y[k] = _mm512_add_ps(_mm512_shuffle_ps(x[k], x[k + 2], 0x44), _mm512_shuffle_ps(x[k], x[k + 2], 0xEE));
    return _mm512_add_ps(_mm512_shuffle_ps(y[0], y[1], 0x88), _mm512_shuffle_ps(y[0], y[1], 0xDD));
}

/* S[g][j] = Q[g]·K[j] for NG queries of Q (rows q[0..NG)), rows of type t at `stride` bytes.
 * d16 = d rounded down to 16; a tail of d - d16 < 16 elements is taken with masked
 * loads, which only f32 rows may have. */
static inline __attribute__((always_inline)) void kv_scores_avx512_block(const float *const *q, const int NG,
                                                                         kvattn_type t, const unsigned char *K,
                                                                         size_t stride, int N, int d, float *S, int lds,
                                                                         const kv_prefetch_spans *pf, const float *sc) {
    const int R = 16 / NG, d16 = d & ~15;
    const __mmask16 tail = (__mmask16)((1u << (d - d16)) - 1u);
    unsigned pi = 0;
    int j = 0;
    for (; j + R <= N; j += R) {
        __m512 acc[16];
        for (int a = 0; a < 16; a++) acc[a] = _mm512_setzero_ps();
        if (t == KVATTN_TYPE_Q8_0 && d16 % KV_Q8_0_BLOCK == 0) /* a block at a time: its scale widened once */
            for (int c = 0; c < d16; c += KV_Q8_0_BLOCK) KV_UNROLL for (int r = 0; r < R; r++) {
                    kv_prefetch_take(pf, &pi);
                    const kv_block_q8_0 *b = (const kv_block_q8_0 *)(K + (size_t)(j + r) * stride) + c / KV_Q8_0_BLOCK;
                    const __m512 scale = _mm512_set1_ps(
                        sc ? sc[(size_t)(j + r) * (size_t)(d / KV_Q8_0_BLOCK) + (size_t)(c / KV_Q8_0_BLOCK)]
                           : _cvtsh_ss(b->d));
                    const __m512 kv0 = kv_q8_0_widen16_avx512(b->qs, scale),
                                 kv1 = kv_q8_0_widen16_avx512(b->qs + 16, scale);
                    KV_UNROLL for (int i = 0; i < NG; i++) {
                        acc[i * R + r] = _mm512_fmadd_ps(_mm512_loadu_ps(q[i] + c), kv0, acc[i * R + r]);
                        acc[i * R + r] = _mm512_fmadd_ps(_mm512_loadu_ps(q[i] + c + 16), kv1, acc[i * R + r]);
                    }
                }
        else
            for (int c = 0; c < d16; c += 16) KV_UNROLL for (int r = 0; r < R; r++) {
                    if (!(c & 16)) kv_prefetch_take(pf, &pi);
                    __m512 kv = kv_load16_avx512(t, K + (size_t)(j + r) * stride, c);
                    KV_UNROLL for (int i = 0; i < NG; i++) acc[i * R + r] =
                        _mm512_fmadd_ps(_mm512_loadu_ps(q[i] + c), kv, acc[i * R + r]);
                }
        if (tail)
            for (int r = 0; r < R; r++) {
                __m512 kv = _mm512_maskz_loadu_ps(tail, (const float *)(K + (size_t)(j + r) * stride) + d16);
                for (int i = 0; i < NG; i++)
                    acc[i * R + r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, q[i] + d16), kv, acc[i * R + r]);
            }
        float sums[16];
        _mm512_storeu_ps(sums, kv_hsum16_avx512(acc));
        for (int i = 0; i < NG; i++) memcpy(S + (size_t)i * lds + j, sums + i * R, sizeof(float) * (size_t)R);
    }
    for (; j < N; j++) {
        const unsigned char *kr = K + (size_t)j * stride;
        kv_prefetch_take_row(pf, &pi, d);
        __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        for (int c = 0; c < d16; c += 16) {
            __m512 kv = kv_load16_avx512(t, kr, c);
            for (int i = 0; i < NG; i++) acc[i] = _mm512_fmadd_ps(_mm512_loadu_ps(q[i] + c), kv, acc[i]);
        }
        if (tail) {
            __m512 kv = _mm512_maskz_loadu_ps(tail, (const float *)kr + d16);
            for (int i = 0; i < NG; i++) acc[i] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, q[i] + d16), kv, acc[i]);
        }
        for (int i = 0; i < NG; i++) S[(size_t)i * lds + j] = _mm512_reduce_add_ps(acc[i]);
    }
}

/* O[g][c] += Σ_j P[g][j]·V[j][c] for NG queries (p[i], o[i]); columns in blocks of 64
 * held in registers over all N rows; a tail of d - d16 (f32 only) is masked. */
static inline __attribute__((always_inline)) void
kv_accum_avx512_block(const float *const *p, float *const *o, const int NG, kvattn_type t, const unsigned char *V,
                      size_t stride, int N, int d, const kv_prefetch_spans *pf, const float *sc) {
    const int d16 = d & ~15;
    unsigned pi = 0;
    int c = 0;
    for (; c + 64 <= d16; c += 64) {
        __m512 acc[4][4];
        for (int i = 0; i < NG; i++)
            for (int m = 0; m < 4; m++) acc[i][m] = _mm512_loadu_ps(o[i] + c + 16 * m);
        for (int j = 0; j < N; j++) {
            const unsigned char *vr = V + (size_t)j * stride;
            kv_prefetch_take(pf, &pi), kv_prefetch_take(pf, &pi);
            __m512 v0, v1, v2, v3;
            if (t == KVATTN_TYPE_Q8_0) { /* two blocks, each block's scale widened once (or read from sc) */
                const kv_block_q8_0 *b = (const kv_block_q8_0 *)vr + c / KV_Q8_0_BLOCK;
                const float *sr =
                    sc ? sc + (size_t)j * (size_t)(d / KV_Q8_0_BLOCK) + (size_t)(c / KV_Q8_0_BLOCK) : NULL;
                const __m512 s0 = _mm512_set1_ps(sr ? sr[0] : _cvtsh_ss(b[0].d)),
                             s1 = _mm512_set1_ps(sr ? sr[1] : _cvtsh_ss(b[1].d));
                v0 = kv_q8_0_widen16_avx512(b[0].qs, s0), v1 = kv_q8_0_widen16_avx512(b[0].qs + 16, s0);
                v2 = kv_q8_0_widen16_avx512(b[1].qs, s1), v3 = kv_q8_0_widen16_avx512(b[1].qs + 16, s1);
            } else {
                v0 = kv_load16_avx512(t, vr, c), v1 = kv_load16_avx512(t, vr, c + 16),
                v2 = kv_load16_avx512(t, vr, c + 32);
                v3 = kv_load16_avx512(t, vr, c + 48);
            }
            KV_UNROLL for (int i = 0; i < NG; i++) {
                __m512 pb = _mm512_set1_ps(p[i][j]);
                acc[i][0] = _mm512_fmadd_ps(pb, v0, acc[i][0]);
                acc[i][1] = _mm512_fmadd_ps(pb, v1, acc[i][1]);
                acc[i][2] = _mm512_fmadd_ps(pb, v2, acc[i][2]);
                acc[i][3] = _mm512_fmadd_ps(pb, v3, acc[i][3]);
            }
        }
        for (int i = 0; i < NG; i++)
            for (int m = 0; m < 4; m++) _mm512_storeu_ps(o[i] + c + 16 * m, acc[i][m]);
    }
    for (; c < d; c += 16) { /* 16 columns at a time, the last one masked */
        const __mmask16 mk = c + 16 <= d ? (__mmask16)0xFFFF : (__mmask16)((1u << (d - c)) - 1u);
        __m512 acc[4];
        for (int i = 0; i < NG; i++) acc[i] = _mm512_maskz_loadu_ps(mk, o[i] + c);
        for (int j = 0; j < N; j++) {
            const unsigned char *vr = V + (size_t)j * stride;
            if (!(c & 16)) kv_prefetch_take(pf, &pi);
            __m512 v = c + 16 <= d ? kv_load16_avx512(t, vr, c) : _mm512_maskz_loadu_ps(mk, (const float *)vr + c);
            for (int i = 0; i < NG; i++) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(p[i][j]), v, acc[i]);
        }
        for (int i = 0; i < NG; i++) _mm512_mask_storeu_ps(o[i] + c, mk, acc[i]);
    }
}

/* Both products take the G queries in blocks of 4, a last block of 2 or 1
 * (3 = 2 + 1); the first block carries the prefetches. q8_0 tiles widen their
 * block scales once up front, then read them by broadcast (a load beside the
 * multiply) instead of 3 µops of widening per block, row and query block. */
static inline __attribute__((always_inline)) void kv_tile_scores_avx512_body(const float *Q, int ldq, int G,
                                                                             kvattn_type t, const unsigned char *K,
                                                                             size_t stride, int N, int d, float *S,
                                                                             int lds, const kv_prefetch_spans *pf) {
    float scales[KV_Q8_0_TILE_SCALES];
    const float *sc = kv_q8_0_tile_scales(t, K, stride, N, d, scales);
    for (int g = 0; g < G;) {
        const int ng = G - g >= 4 ? 4 : G - g >= 2 ? 2 : 1;
        const float *q[4];
        for (int i = 0; i < ng; i++) q[i] = Q + (size_t)(g + i) * ldq;
        const kv_prefetch_spans *pfg = g == 0 ? pf : &kv_prefetch_none;
        float *sg = S + (size_t)g * lds;
        if (ng == 4) kv_scores_avx512_block(q, 4, t, K, stride, N, d, sg, lds, pfg, sc);
        else if (ng == 2) kv_scores_avx512_block(q, 2, t, K, stride, N, d, sg, lds, pfg, sc);
        else kv_scores_avx512_block(q, 1, t, K, stride, N, d, sg, lds, pfg, sc);
        g += ng;
    }
}

static inline __attribute__((always_inline)) void kv_tile_accum_avx512_body(const float *P, int ldp, int G,
                                                                            kvattn_type t, const unsigned char *V,
                                                                            size_t stride, int N, int d, float *O,
                                                                            int ldo, const kv_prefetch_spans *pf) {
    float scales[KV_Q8_0_TILE_SCALES];
    const float *sc = kv_q8_0_tile_scales(t, V, stride, N, d, scales);
    for (int g = 0; g < G;) {
        const int ng = G - g >= 4 ? 4 : G - g >= 2 ? 2 : 1;
        const float *p[4];
        float *o[4];
        for (int i = 0; i < ng; i++) p[i] = P + (size_t)(g + i) * ldp, o[i] = O + (size_t)(g + i) * ldo;
        const kv_prefetch_spans *pfg = g == 0 ? pf : &kv_prefetch_none;
        if (ng == 4) kv_accum_avx512_block(p, o, 4, t, V, stride, N, d, pfg, sc);
        else if (ng == 2) kv_accum_avx512_block(p, o, 2, t, V, stride, N, d, pfg, sc);
        else kv_accum_avx512_block(p, o, 1, t, V, stride, N, d, pfg, sc);
        g += ng;
    }
}

/* One instance of each body per element type, so each inner loop is free of type branches. */
static inline void kv_tile_scores_avx512(const float *Q, int ldq, int G, kvattn_type t, const unsigned char *K,
                                         size_t stride, int N, int d, float *S, int lds, const kv_prefetch_spans *pf) {
    switch (t) {
    case KVATTN_TYPE_F32: kv_tile_scores_avx512_body(Q, ldq, G, KVATTN_TYPE_F32, K, stride, N, d, S, lds, pf); break;
    case KVATTN_TYPE_F16: kv_tile_scores_avx512_body(Q, ldq, G, KVATTN_TYPE_F16, K, stride, N, d, S, lds, pf); break;
    case KVATTN_TYPE_BF16: kv_tile_scores_avx512_body(Q, ldq, G, KVATTN_TYPE_BF16, K, stride, N, d, S, lds, pf); break;
    default: kv_tile_scores_avx512_body(Q, ldq, G, KVATTN_TYPE_Q8_0, K, stride, N, d, S, lds, pf); break;
    }
}

static inline void kv_tile_accum_avx512(const float *P, int ldp, int G, kvattn_type t, const unsigned char *V,
                                        size_t stride, int N, int d, float *O, int ldo, const kv_prefetch_spans *pf) {
    switch (t) {
    case KVATTN_TYPE_F32: kv_tile_accum_avx512_body(P, ldp, G, KVATTN_TYPE_F32, V, stride, N, d, O, ldo, pf); break;
    case KVATTN_TYPE_F16: kv_tile_accum_avx512_body(P, ldp, G, KVATTN_TYPE_F16, V, stride, N, d, O, ldo, pf); break;
    case KVATTN_TYPE_BF16: kv_tile_accum_avx512_body(P, ldp, G, KVATTN_TYPE_BF16, V, stride, N, d, O, ldo, pf); break;
    default: kv_tile_accum_avx512_body(P, ldp, G, KVATTN_TYPE_Q8_0, V, stride, N, d, O, ldo, pf); break;
    }
}
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

/* Whether a group of G queries over rows of type t goes through these blocks. */
static inline int isa_q16_ok(kvattn_type t, int G, int kd, int vd) {
#if KV_HAVE_AVX512
    return t != KVATTN_TYPE_F32 && G % KV_Q16 == 0 && kd % 16 == 0 && vd % 16 == 0;
#else
    (void)t, (void)G, (void)kd, (void)vd;
    return 0;
#endif
}

/* Q [16][ldq] → Qt [d][16]. */
static inline void kv_q16_pack_ref(const float *Q, int ldq, int d, float *Qt) {
    for (int i = 0; i < KV_Q16; i++)
        for (int c = 0; c < d; c++) Qt[(size_t)c * KV_Q16 + i] = Q[(size_t)i * ldq + c];
}

#if KV_HAVE_AVX512
/* A 16 × 16 block transposed in registers: four rounds, each swapping the
 * off-diagonal sub-blocks of size b (8, 4, 2, 1) between rows r and r + b —
 * element c of the new row r is row (r | b)'s element c - b where c has bit b,
 * and the new row r | b takes row r's element c + b where c has not. Element
 * by element, each float would be a store to a line of its own. */
static inline __attribute__((always_inline)) void kv_transpose16_round_avx512(__m512 *x, const int b) {
    int lo[16], hi[16];
    for (int c = 0; c < 16; c++) {
        lo[c] = c & b ? 16 + (c ^ b) : c;
        hi[c] = c & b ? 16 + c : c ^ b;
    }
    const __m512i ilo = _mm512_loadu_si512(lo), ihi = _mm512_loadu_si512(hi);
    KV_UNROLL for (int r = 0; r < 16; r++) {
        if (r & b) continue;
        const __m512 top = x[r], bottom = x[r | b];
        x[r] = _mm512_permutex2var_ps(top, ilo, bottom);
        x[r | b] = _mm512_permutex2var_ps(top, ihi, bottom);
    }
}

static inline __attribute__((always_inline)) void kv_transpose16_avx512(__m512 *x) {
    kv_transpose16_round_avx512(x, 8), kv_transpose16_round_avx512(x, 4), kv_transpose16_round_avx512(x, 2),
        kv_transpose16_round_avx512(x, 1);
}
#endif

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

#if KV_HAVE_AVX512
/* 16 elements of a row at c (c % 16 == 0), as f32; q8_0 with its scale from sc (the row's block scales) when given. */
static inline __attribute__((always_inline)) __m512 kv_q16_load(kvattn_type t, const unsigned char *row, int c,
                                                                const float *sc) {
    if (t == KVATTN_TYPE_Q8_0 && sc)
        return kv_q8_0_widen16_avx512(((const kv_block_q8_0 *)row)[c / KV_Q8_0_BLOCK].qs + c % KV_Q8_0_BLOCK,
                                      _mm512_set1_ps(sc[c / KV_Q8_0_BLOCK]));
    return kv_load16_avx512(t, row, c);
}

/* Blocks of 16 rows, an accumulator per row (16 queries). Per chunk of 16
 * columns: the block's rows widened into the ring (two slots, so a chunk's
 * stores need not wait for the previous chunk's broadcasts), then per element
 * the queries' vector once and a broadcast of each row's element. A take of
 * `pf` (the *pi-th, on from call to call) per two elements: one per 32 columns
 * of a row read, spread over the products. A last block of n < 16 rows widens
 * zeros for the missing rows and stores only its n. */
static inline __attribute__((always_inline)) void kv_q16_scores_avx512_body(const float *Qt, kvattn_type t,
                                                                            const unsigned char *K, size_t stride,
                                                                            int N, int d, float *St, const float *sc,
                                                                            const kv_prefetch_spans *pf, unsigned *pi) {
    float ring[2][256] __attribute__((aligned(64)));
    const int nb = d / KV_Q8_0_BLOCK;
    for (int j = 0; j < N; j += 16) {
        const int n = N - j < 16 ? N - j : 16;
        const unsigned char *blk = K + (size_t)j * stride;
        const float *bsc = sc ? sc + (size_t)j * nb : NULL;
        __m512 acc[16];
        KV_UNROLL for (int r = 0; r < 16; r++) acc[r] = _mm512_setzero_ps();
        const float *q = Qt;
        for (int c = 0; c < d; c += 16) {
            float *w = ring[(c >> 4) & 1];
            if (n == 16) {
                KV_UNROLL for (int r = 0; r < 16; r++)
                    _mm512_store_ps(w + r * 16, kv_q16_load(t, blk + (size_t)r * stride, c, bsc ? bsc + r * nb : NULL));
            } else {
                for (int r = 0; r < 16; r++)
                    _mm512_store_ps(w + r * 16,
                                    r < n ? kv_q16_load(t, blk + (size_t)r * stride, c, bsc ? bsc + r * nb : NULL)
                                          : _mm512_setzero_ps());
            }
            for (int e = 0; e < 16; e++, q += KV_Q16) {
                if (e & 1) kv_prefetch_take(pf, pi);
                const __m512 qv = _mm512_load_ps(q);
                KV_UNROLL for (int r = 0; r < 16; r++) acc[r] =
                    _mm512_fmadd_ps(qv, _mm512_set1_ps(w[r * 16 + e]), acc[r]);
            }
        }
        for (int r = 0; r < n; r++) _mm512_storeu_ps(St + (size_t)(j + r) * KV_Q16, acc[r]);
    }
}

static inline void kv_q16_softmax_avx512(float *St, int N, float scale, float *m, float *l, float *corr) {
    const __m512 sc = _mm512_set1_ps(scale), m_old = _mm512_loadu_ps(m);
    __m512 mt = m_old, sum = _mm512_setzero_ps();
    for (int j = 0; j < N; j++) mt = _mm512_max_ps(mt, _mm512_mul_ps(_mm512_loadu_ps(St + (size_t)j * KV_Q16), sc));
    for (int j = 0; j < N; j++) {
        __m512 e = kv_exp_avx512(_mm512_fmsub_ps(_mm512_loadu_ps(St + (size_t)j * KV_Q16), sc, mt));
        _mm512_storeu_ps(St + (size_t)j * KV_Q16, e);
        sum = _mm512_add_ps(sum, e);
    }
    const __m512 cr = kv_exp_avx512(_mm512_sub_ps(m_old, mt));
    _mm512_storeu_ps(corr, cr);
    _mm512_storeu_ps(l, _mm512_fmadd_ps(_mm512_loadu_ps(l), cr, sum));
    _mm512_storeu_ps(m, mt);
}

/* 16 columns of all sixteen outputs in registers over all N rows; a take of
 * `pf` per row in every other chunk (one per 32 columns read). */
static inline __attribute__((always_inline)) void kv_q16_accum_avx512_body(const float *St, kvattn_type t,
                                                                           const unsigned char *V, size_t stride, int N,
                                                                           int d, float *O, int ldo, const float *sc,
                                                                           const kv_prefetch_spans *pf, unsigned *pi) {
    const int nb = d / KV_Q8_0_BLOCK;
    for (int c = 0; c < d; c += 16) {
        __m512 acc[KV_Q16];
        KV_UNROLL for (int i = 0; i < KV_Q16; i++) acc[i] = _mm512_loadu_ps(O + (size_t)i * ldo + c);
        const float *w = St;
        for (int j = 0; j < N; j++, w += KV_Q16) {
            if (!(c & 16)) kv_prefetch_take(pf, pi);
            const __m512 v = kv_q16_load(t, V + (size_t)j * stride, c, sc ? sc + (size_t)j * nb : NULL);
            KV_UNROLL for (int i = 0; i < KV_Q16; i++) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(w[i]), v, acc[i]);
        }
        KV_UNROLL for (int i = 0; i < KV_Q16; i++) _mm512_storeu_ps(O + (size_t)i * ldo + c, acc[i]);
    }
}

/* One instance per element type, so each inner loop is free of type branches;
 * out of line: inlined into the attention loop, the compiler's register
 * allocation across it left an accumulator on the stack. */
static KV_NOINLINE void kv_q16_scores_avx512(const float *Qt, kvattn_type t, const unsigned char *K, size_t stride,
                                             int N, int d, float *St, const kv_prefetch_spans *pf, unsigned *pi) {
    float scales[KV_Q8_0_TILE_SCALES];
    const float *sc = kv_q8_0_tile_scales(t, K, stride, N, d, scales);
    switch (t) {
    case KVATTN_TYPE_F32: kv_q16_scores_avx512_body(Qt, KVATTN_TYPE_F32, K, stride, N, d, St, NULL, pf, pi); return;
    case KVATTN_TYPE_F16: kv_q16_scores_avx512_body(Qt, KVATTN_TYPE_F16, K, stride, N, d, St, NULL, pf, pi); return;
    case KVATTN_TYPE_BF16: kv_q16_scores_avx512_body(Qt, KVATTN_TYPE_BF16, K, stride, N, d, St, NULL, pf, pi); return;
    default: kv_q16_scores_avx512_body(Qt, KVATTN_TYPE_Q8_0, K, stride, N, d, St, sc, pf, pi); return;
    }
}

static KV_NOINLINE void kv_q16_accum_avx512(const float *St, kvattn_type t, const unsigned char *V, size_t stride,
                                            int N, int d, float *O, int ldo, const kv_prefetch_spans *pf,
                                            unsigned *pi) {
    float scales[KV_Q8_0_TILE_SCALES];
    const float *sc = kv_q8_0_tile_scales(t, V, stride, N, d, scales);
    switch (t) {
    case KVATTN_TYPE_F32: kv_q16_accum_avx512_body(St, KVATTN_TYPE_F32, V, stride, N, d, O, ldo, NULL, pf, pi); return;
    case KVATTN_TYPE_F16: kv_q16_accum_avx512_body(St, KVATTN_TYPE_F16, V, stride, N, d, O, ldo, NULL, pf, pi); return;
    case KVATTN_TYPE_BF16:
        kv_q16_accum_avx512_body(St, KVATTN_TYPE_BF16, V, stride, N, d, O, ldo, NULL, pf, pi);
        return;
    default: kv_q16_accum_avx512_body(St, KVATTN_TYPE_Q8_0, V, stride, N, d, O, ldo, sc, pf, pi); return;
    }
}
#endif

/* N rows of type t (`stride` bytes apart) → f32 rows W [N][d]. For q8_0 caches
 * the 16-query products read such a copy, a part of a tile at a time: a q8_0
 * chunk widens in 3 vector µops (f16: 2), and MLA reads its rows
 * twice, MQA once per block of 16 queries. */
static inline void kv_q16_widen_ref(kvattn_type t, const unsigned char *rows, size_t stride, int N, int d, float *W) {
    for (int j = 0; j < N; j++)
        for (int c = 0; c < d; c++) W[(size_t)j * d + c] = kv_row_get_ref(t, rows + (size_t)j * stride, c);
}

#if KV_HAVE_AVX512
static KV_NOINLINE void kv_q16_widen_avx512(kvattn_type t, const unsigned char *rows, size_t stride, int N, int d,
                                            float *W) {
    float scales[KV_Q8_0_TILE_SCALES];
    const float *sc = kv_q8_0_tile_scales(t, rows, stride, N, d, scales);
    const int nb = d / KV_Q8_0_BLOCK;
    for (int j = 0; j < N; j++)
        for (int c = 0; c < d; c += 16)
            _mm512_storeu_ps(W + (size_t)j * d + c,
                             kv_q16_load(t, rows + (size_t)j * stride, c, sc ? sc + (size_t)j * nb : NULL));
}
#endif

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
