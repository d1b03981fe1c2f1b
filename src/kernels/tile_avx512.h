/* The 512-bit bodies of tile.h's kernels (AVX-512 F/BW/DQ/VL): register-
 * blocked score and accumulation blocks of up to 4 queries, the 16-query
 * blocks (kv_q16_*), the 16 × 16 transpose that packs their queries, and the
 * gathered q8_0 block scales. Included by tile.h where the file being compiled
 * targets AVX-512 (isa_avx512.c, isa_avx512vnni.c); tile.h's isa_ functions
 * call them. */
#ifndef KVATTN_TILE_AVX512_H
#define KVATTN_TILE_AVX512_H

#include "prefetch.h"
#include "vec.h"

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
