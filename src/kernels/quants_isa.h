/* The integer products of the block-quantized weights with Q8_K activations,
 * and the activations' quantization, compiled once per instruction-set level
 * (kernel_table_def.h); their scalar twins are in quants.c. */
#ifndef KVATTN_QUANTS_ISA_H
#define KVATTN_QUANTS_ISA_H

#include "vec.h"

/* The eight 32-bit integers of q packed to int8 with saturation, in order
 * (packs interleave 128-bit lanes; the permute puts the 32 bytes back). */
#if KV_HAVE_AVX2
static inline __m256i pack_i32_to_i8(const __m256i q[4]) {
    const __m256i p16a = _mm256_packs_epi32(q[0], q[1]), p16b = _mm256_packs_epi32(q[2], q[3]);
    return _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p16a, p16b), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}
#endif

static inline void isa_quantize_q8_k(const float *x, kv_block_q8_k *y, int n) {
    for (int b = 0; b < n / KV_QK_K; b++, x += KV_QK_K) {
        float amax = 0.0f;
        int j = 0;
#if KV_HAVE_AVX2
        __m256 m = _mm256_setzero_ps();
        const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
        for (; j < KV_QK_K; j += 8) m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + j), abs_mask));
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        amax = _mm_cvtss_f32(_mm_max_ss(h, _mm_shuffle_ps(h, h, 1)));
#endif
        for (; j < KV_QK_K; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        y[b].d = amax / 127.0f;
        j = 0;
#if KV_HAVE_AVX2 /* cvtps rounds to nearest even, as lrintf in the default mode */
        const __m256 vid = _mm256_set1_ps(id);
        for (; j < KV_QK_K; j += 32) {
            __m256i q[4];
            for (int v = 0; v < 4; v++) q[v] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j + 8 * v), vid));
            _mm256_storeu_si256((__m256i *)(y[b].qs + j), pack_i32_to_i8(q));
        }
#endif
        for (; j < KV_QK_K; j++) y[b].qs[j] = (int8_t)lrintf(x[j] * id);
        for (int g = 0; g < KV_QK_K / 16; g++) {
            int sum = 0;
            for (int i = 16 * g; i < 16 * g + 16; i++) sum += y[b].qs[i];
            y[b].bsums[g] = (int16_t)sum;
        }
    }
}

static inline void isa_quantize_q8_k_residual(const float *x, const kv_block_q8_k *xq, kv_block_q8_k *xl, int n) {
#if KV_HAVE_AVX2 /* as the twin: cvtps rounds to nearest even, packs clamp to [-128, 127] */
    for (int b = 0; b < n / KV_QK_K; b++, x += KV_QK_K) {
        const float d = xq[b].d, dl = ldexpf(d, -KV_Q8_K_RES_SHIFT);
        const float id = dl > 0.0f ? 1.0f / dl : 0.0f;
        xl[b].d = dl;
        const __m256 vd = _mm256_set1_ps(d), vid = _mm256_set1_ps(id);
        for (int j = 0; j < KV_QK_K; j += 32) {
            __m256i q[4];
            for (int v = 0; v < 4; v++) {
                const __m128i q8 = _mm_loadl_epi64((const __m128i *)(xq[b].qs + j + 8 * v));
                const __m256 dq = _mm256_mul_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8)));
                const __m256 r = _mm256_sub_ps(_mm256_loadu_ps(x + j + 8 * v), dq);
                q[v] = _mm256_cvtps_epi32(_mm256_mul_ps(r, vid));
            }
            _mm256_storeu_si256((__m256i *)(xl[b].qs + j), pack_i32_to_i8(q));
        }
        for (int g = 0; g < KV_QK_K / 16; g++) {
            int sum = 0;
            for (int i = 16 * g; i < 16 * g + 16; i++) sum += xl[b].qs[i];
            xl[b].bsums[g] = (int16_t)sum;
        }
    }
#else
    kv_quantize_q8_k_residual_ref(x, xq, xl, n);
#endif
}

#if KV_HAVE_AVX2
/* A Q4_K super-block's twelve scale bytes rearranged in four u32 moves so
 * that bytes 0..7 are the eight 6-bit scales and bytes 8..15 the eight mins
 * (the same values scale_min_k4 unpacks one at a time). */
static __m128i q4_k_scales_mins(const uint8_t *packed) {
    uint32_t u0, u1, u2;
    memcpy(&u0, packed, 4), memcpy(&u1, packed + 4, 4), memcpy(&u2, packed + 8, 4);
    const uint32_t m47 = ((u2 >> 4) & 0x0f0f0f0fu) | (((u1 >> 6) & 0x03030303u) << 4);
    const uint32_t s47 = (u2 & 0x0f0f0f0fu) | (((u0 >> 6) & 0x03030303u) << 4);
    /* built in registers: four u32 stores read back as one vector would miss store forwarding */
    return _mm_set_epi32((int)m47, (int)(u1 & 0x3f3f3f3fu), (int)s47, (int)(u0 & 0x3f3f3f3fu));
}

/* A Q4_K/Q5_K super-block's scales and mins as 16-bit values (8 each), its
 * mins' share against the activations (and their residual's) added to mins:
 * the part of q45_k_block_avx2 that does not depend on the vector width. The
 * residual's scale is x's over 2^KV_Q8_K_RES_SHIFT, so the two integer sums
 * add before one scaling (at most 2^8·512K + 512K per lane). */
static inline __attribute__((always_inline)) __m256i q45_k_scales_and_mins(const uint8_t *scales, uint16_t dmin,
                                                                           const kv_block_q8_k *x,
                                                                           const kv_block_q8_k *xl, __m128 *mins) {
    const __m256i sm = _mm256_cvtepu8_epi16(q4_k_scales_mins(scales));
    const __m256i bs = _mm256_loadu_si256((const __m256i *)x->bsums);
    const __m128i sums32 = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
    const __m128i msum = _mm_madd_epi16(_mm256_extracti128_si256(sm, 1), sums32);
    if (!xl) {
        *mins = _mm_fmadd_ps(_mm_cvtepi32_ps(msum), _mm_set1_ps(x->d * _cvtsh_ss(dmin)), *mins);
        return sm;
    }
    const __m256i bl = _mm256_loadu_si256((const __m256i *)xl->bsums);
    const __m128i sl = _mm_hadd_epi16(_mm256_castsi256_si128(bl), _mm256_extracti128_si256(bl, 1));
    const __m128i ml = _mm_madd_epi16(_mm256_extracti128_si256(sm, 1), sl);
    const __m128i both = _mm_add_epi32(_mm_slli_epi32(msum, KV_Q8_K_RES_SHIFT), ml);
    *mins = _mm_fmadd_ps(_mm_cvtepi32_ps(both), _mm_set1_ps(xl->d * _cvtsh_ss(dmin)), *mins);
    return sm;
}

/* A Q4_K/Q5_K super-block's eight scaled integer sums into acc, against the
 * activations a: x's alone, or with the residual 2^KV_Q8_K_RES_SHIFT·Σ(x) +
 * Σ(xl) and a = xl (exact in int32: a lane's Σ(x) is at most 8 · 2 · 2·31·127
 * · 63 ≈ 7.94M, 2^8 of it under 2^31 with Σ(xl)). */
static inline __attribute__((always_inline)) void q45_k_block_sums(uint16_t d, __m256i sums, const kv_block_q8_k *a,
                                                                   __m256 *acc) {
    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), _mm256_set1_ps(a->d * _cvtsh_ss(d)), *acc);
}

static inline __m256i with_residual(__m256i isum, __m256i isum_l) {
    return _mm256_add_epi32(_mm256_slli_epi32(isum, KV_Q8_K_RES_SHIFT), isum_l);
}

/* One Q4_K or Q5_K super-block (qh: Q5_K's fifth bits, or NULL) against its
 * Q8_K activations, into acc (the scaled integer sums) and mins (the mins'
 * share, subtracted at the end). Per 64 elements: 32 bytes of nibbles (with
 * the fifth bit of the 2p-th and (2p+1)-th 32 elements from bits 2p and
 * 2p + 1 of qh) against 64 int8 activations (maddubs: unsigned × signed pairs
 * to int16, at most 31·127·2), weighted by the two sub-blocks' scales (madd:
 * int16 pairs to int32). The mins meet the activations' sums of 32 (bsums
 * added in pairs) in one madd. */
static inline __attribute__((always_inline)) void q45_k_block_avx2(uint16_t d, uint16_t dmin, const uint8_t *scales,
                                                                   const uint8_t *qs, const uint8_t *qh,
                                                                   const kv_block_q8_k *x, const kv_block_q8_k *xl,
                                                                   __m256 *acc, __m128 *mins) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    const __m256i sm = q45_k_scales_and_mins(scales, dmin, x, xl, mins); /* 8 scales, 8 mins */
    int16_t sc[16];
    _mm256_storeu_si256((__m256i *)sc, sm);
    const __m256i hb = qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
    __m256i isum = _mm256_setzero_si256(), isum_l = _mm256_setzero_si256();
    for (int p = 0; p < 4; p++) {
        const __m256i q4 = _mm256_loadu_si256((const __m256i *)(qs + 32 * p));
        __m256i lo = _mm256_and_si256(q4, low4), hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), low4);
        if (qh) { /* a 16-bit shift keeps each byte's own bit 2p at bit 0 once masked */
            const __m256i h0 = _mm256_and_si256(_mm256_srl_epi16(hb, _mm_cvtsi32_si128(2 * p)), one);
            const __m256i h1 = _mm256_and_si256(_mm256_srl_epi16(hb, _mm_cvtsi32_si128(2 * p + 1)), one);
            lo = _mm256_or_si256(lo, _mm256_slli_epi16(h0, 4));
            hi = _mm256_or_si256(hi, _mm256_slli_epi16(h1, 4));
        }
        const __m256i a = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(x->qs + 64 * p)));
        const __m256i c = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(x->qs + 64 * p + 32)));
        isum = _mm256_add_epi32(isum, _mm256_madd_epi16(a, _mm256_set1_epi16(sc[2 * p])));
        isum = _mm256_add_epi32(isum, _mm256_madd_epi16(c, _mm256_set1_epi16(sc[2 * p + 1])));
        if (xl) { /* the residual's products reuse the unpacked weights */
            const __m256i al = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(xl->qs + 64 * p)));
            const __m256i cl = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(xl->qs + 64 * p + 32)));
            isum_l = _mm256_add_epi32(isum_l, _mm256_madd_epi16(al, _mm256_set1_epi16(sc[2 * p])));
            isum_l = _mm256_add_epi32(isum_l, _mm256_madd_epi16(cl, _mm256_set1_epi16(sc[2 * p + 1])));
        }
    }
    q45_k_block_sums(d, xl ? with_residual(isum, isum_l) : isum, xl ? xl : x, acc);
}

#if KV_HAVE_AVX512
/* q45_k_block_avx2 on 512-bit vectors, with its bits: each vector holds two of
 * its 32-byte steps p (the lower half p = 2·pp, the upper 2·pp + 1), the
 * activations and each half's scale arranged to match; the integer sums are
 * exact, so adding the halves gives the AVX2 kernel's eight sums, which then
 * meet the same float operations. */
static inline __attribute__((always_inline)) void q45_k_block_avx512(uint16_t d, uint16_t dmin, const uint8_t *scales,
                                                                     const uint8_t *qs, const uint8_t *qh,
                                                                     const kv_block_q8_k *x, const kv_block_q8_k *xl,
                                                                     __m256 *acc, __m128 *mins) {
    const __m512i low4 = _mm512_set1_epi8(0x0F), one = _mm512_set1_epi8(1);
    const __m256i sm = q45_k_scales_and_mins(scales, dmin, x, xl, mins); /* 8 scales, 8 mins */
    const __m512i sm512 = _mm512_castsi256_si512(sm);
    const __m512i hb = qh ? _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)qh)) : _mm512_setzero_si512();
    __m512i isum = _mm512_setzero_si512(), isum_l = _mm512_setzero_si512();
    for (int pp = 0; pp < 2; pp++) {
        const int p0 = 2 * pp; /* the lower half's step; the upper half's is p0 + 1 */
        const __m512i q4 = _mm512_loadu_si512((const void *)(qs + 64 * pp));
        __m512i lo = _mm512_and_si512(q4, low4), hi = _mm512_and_si512(_mm512_srli_epi16(q4, 4), low4);
        if (qh) { /* shifts under 8 keep each byte's own bit at bit 0 once masked, whatever the lane width */
            const __m512i at =
                _mm512_set_epi64(2 * p0 + 2, 2 * p0 + 2, 2 * p0 + 2, 2 * p0 + 2, 2 * p0, 2 * p0, 2 * p0, 2 * p0);
            const __m512i h0 = _mm512_and_si512(_mm512_srlv_epi64(hb, at), one);
            const __m512i h1 = _mm512_and_si512(_mm512_srlv_epi64(hb, _mm512_add_epi64(at, _mm512_set1_epi64(1))), one);
            lo = _mm512_or_si512(lo, _mm512_slli_epi16(h0, 4));
            hi = _mm512_or_si512(hi, _mm512_slli_epi16(h1, 4));
        }
        const int8_t *a0 = x->qs + 128 * pp;
        const __m512i xa = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a0)),
                                              _mm256_loadu_si256((const __m256i *)(a0 + 64)), 1);
        const __m512i xc = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(a0 + 32))),
                                              _mm256_loadu_si256((const __m256i *)(a0 + 96)), 1);
        /* the scales of sub-blocks 2p (lo) and 2p + 1 (hi), each half its own step's */
        const __m512i sa = _mm512_permutexvar_epi16(
            _mm512_inserti64x4(_mm512_set1_epi16((short)(2 * p0)), _mm256_set1_epi16((short)(2 * p0 + 2)), 1), sm512);
        const __m512i sc = _mm512_permutexvar_epi16(
            _mm512_inserti64x4(_mm512_set1_epi16((short)(2 * p0 + 1)), _mm256_set1_epi16((short)(2 * p0 + 3)), 1),
            sm512);
        if (xl) {
            const int8_t *l0 = xl->qs + 128 * pp;
            const __m512i la = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)l0)),
                                                  _mm256_loadu_si256((const __m256i *)(l0 + 64)), 1);
            const __m512i lc =
                _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(l0 + 32))),
                                   _mm256_loadu_si256((const __m256i *)(l0 + 96)), 1);
            isum_l = _mm512_add_epi32(isum_l, _mm512_madd_epi16(_mm512_maddubs_epi16(lo, la), sa));
            isum_l = _mm512_add_epi32(isum_l, _mm512_madd_epi16(_mm512_maddubs_epi16(hi, lc), sc));
        }
        isum = _mm512_add_epi32(isum, _mm512_madd_epi16(_mm512_maddubs_epi16(lo, xa), sa));
        isum = _mm512_add_epi32(isum, _mm512_madd_epi16(_mm512_maddubs_epi16(hi, xc), sc));
    }
    __m256i sums = _mm256_add_epi32(_mm512_castsi512_si256(isum), _mm512_extracti64x4_epi64(isum, 1));
    if (xl)
        sums =
            with_residual(sums, _mm256_add_epi32(_mm512_castsi512_si256(isum_l), _mm512_extracti64x4_epi64(isum_l, 1)));
    q45_k_block_sums(d, sums, xl ? xl : x, acc);
}

#if KV_HAVE_VNNI
/* q45_k_block_avx512 against x and its residual xl with vpdpbusd, with its
 * bits. A vector holds one step p's 64 elements in order (its 32 low nibbles,
 * then its 32 high ones), so x and xl are plain loads; each lane's four
 * products against x, shifted by KV_Q8_K_RES_SHIFT, then against xl in the
 * same accumulator give with_residual's sums (at most 2^8·4·31·127 + 4·31·128
 * per step, times a scale of 63: 1.02G over the four steps), scaled in 32
 * bits. The halves folded are the AVX2 kernel's eight sums. */
static inline __attribute__((always_inline)) void q45_k_block_vnni_res(uint16_t d, uint16_t dmin, const uint8_t *scales,
                                                                       const uint8_t *qs, const uint8_t *qh,
                                                                       const kv_block_q8_k *x, const kv_block_q8_k *xl,
                                                                       __m256 *acc, __m128 *mins) {
    const __m512i low4 = _mm512_set1_epi8(0x0F), one = _mm512_set1_epi8(1);
    const __m512i sc32 = _mm512_cvtepu16_epi32(q45_k_scales_and_mins(scales, dmin, x, xl, mins)); /* 8 scales, 8 mins */
    const __m512i hb = qh ? _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)qh)) : _mm512_setzero_si512();
    __m512i isum = _mm512_setzero_si512();
    for (int p = 0; p < 4; p++) {
        const __m256i q4 = _mm256_loadu_si256((const __m256i *)(qs + 32 * p));
        __m512i q = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(q4), _mm256_srli_epi16(q4, 4), 1), low4);
        if (qh) { /* the low nibbles' fifth bit is bit 2p of qh, the high ones' bit 2p + 1 */
            const __m512i at = _mm512_set_epi64(2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p, 2 * p, 2 * p, 2 * p);
            q = _mm512_or_si512(q, _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi64(hb, at), one), 4));
        }
        const __m512i s = _mm512_permutexvar_epi32(
            _mm512_inserti64x4(_mm512_set1_epi32(2 * p), _mm256_set1_epi32(2 * p + 1), 1), sc32);
        const __m512i tx = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, _mm512_loadu_si512(x->qs + 64 * p));
        const __m512i t =
            _mm512_dpbusd_epi32(_mm512_slli_epi32(tx, KV_Q8_K_RES_SHIFT), q, _mm512_loadu_si512(xl->qs + 64 * p));
        isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(t, s));
    }
    q45_k_block_sums(d, _mm256_add_epi32(_mm512_castsi512_si256(isum), _mm512_extracti64x4_epi64(isum, 1)), xl, acc);
}
#endif
#endif

/* The starting values of a Q6_K super-block's sums, from its 16 scales as
 * 16-bit values: -32 Σ_g sc_g·bsums_g against the activations (isum) and
 * against their residual (isum_l, zero without one). */
static inline __attribute__((always_inline)) void
q6_k_offsets(__m256i sc16, const kv_block_q8_k *x, const kv_block_q8_k *xl, __m256i *isum, __m256i *isum_l) {
    *isum =
        _mm256_sub_epi32(_mm256_setzero_si256(),
                         _mm256_slli_epi32(_mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)x->bsums)), 5));
    *isum_l = _mm256_setzero_si256();
    if (xl)
        *isum_l = _mm256_sub_epi32(
            *isum_l, _mm256_slli_epi32(_mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)xl->bsums)), 5));
}

/* One Q6_K super-block. Per 128 elements: four 32-element slices of 6-bit
 * values u = q + 32 in 0..63; Σ sc·(u - 32)·a = Σ sc·maddubs(u, a) - 32·Σ_g
 * sc_g·bsums_g, the second term once per super-block from the activations'
 * sums of 16. Each slice's first 16 take one scale, the next 16 the
 * following one. */
static inline __attribute__((always_inline)) void q6_k_block_avx2(const kv_block_q6_k *b, const kv_block_q8_k *x,
                                                                  const kv_block_q8_k *xl, __m256 *acc) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), three = _mm256_set1_epi8(3);
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
    __m256i isum, isum_l;
    q6_k_offsets(sc16, x, xl, &isum, &isum_l);
    for (int n = 0; n < 2; n++) {
        const uint8_t *ql = b->ql + 64 * n, *qh = b->qh + 32 * n;
        const int8_t *sc = b->scales + 8 * n, *q8 = x->qs + 128 * n;
        const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
        const __m256i h = _mm256_loadu_si256((const __m256i *)qh);
        __m256i q[4];
        q[0] = _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_slli_epi16(_mm256_and_si256(h, three), 4));
        q[1] = _mm256_or_si256(_mm256_and_si256(l1, low4),
                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), three), 4));
        q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4),
                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), three), 4));
        q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4),
                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), three), 4));
        for (int k = 0; k < 4; k++) {
            const __m256i a = _mm256_loadu_si256((const __m256i *)(q8 + 32 * k));
            const __m256i p = _mm256_maddubs_epi16(q[k], a);
            const __m256i s = _mm256_set_m128i(_mm_set1_epi16(sc[2 * k + 1]), _mm_set1_epi16(sc[2 * k]));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, s));
            if (xl) {
                const __m256i al = _mm256_loadu_si256((const __m256i *)(xl->qs + 128 * n + 32 * k));
                isum_l = _mm256_add_epi32(isum_l, _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], al), s));
            }
        }
    }
    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(x->d * _cvtsh_ss(b->d)), *acc);
    if (xl) *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum_l), _mm256_set1_ps(xl->d * _cvtsh_ss(b->d)), *acc);
}

#if KV_HAVE_AVX512
/* vpermw's indices putting scale g + j in the words of quarter j. */
static inline __m512i q6_k_quarter_scales(int g) {
    const long long w4 = 0x0001000100010001LL; /* a 16-bit index in each of four words */
    return _mm512_set_epi64((g + 3) * w4, (g + 3) * w4, (g + 2) * w4, (g + 2) * w4, (g + 1) * w4, (g + 1) * w4, g * w4,
                            g * w4);
}

/* q6_k_block_avx2 on 512-bit vectors, with its bits: slices 0 and 1 of each
 * 128 elements share a vector (their 64 bytes of low nibbles and of
 * activations are contiguous), as do slices 2 and 3; each 16-byte quarter
 * takes its own scale. The integer sums are exact, so adding the halves gives
 * the AVX2 kernel's eight sums. */
static inline __attribute__((always_inline)) void q6_k_block_avx512(const kv_block_q6_k *b, const kv_block_q8_k *x,
                                                                    const kv_block_q8_k *xl, __m256 *acc) {
    const __m512i low4 = _mm512_set1_epi8(0x0F), three = _mm512_set1_epi8(3);
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
    __m256i isum, isum_l;
    q6_k_offsets(sc16, x, xl, &isum, &isum_l);
    const __m512i sc512 = _mm512_castsi256_si512(sc16);
    __m512i wide = _mm512_setzero_si512(), wide_l = _mm512_setzero_si512();
    for (int n = 0; n < 2; n++) {
        const __m512i l = _mm512_loadu_si512((const void *)(b->ql + 64 * n));
        const __m512i h = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b->qh + 32 * n)));
        __m512i q[2];
        q[0] = _mm512_or_si512(
            _mm512_and_si512(l, low4),
            _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi64(h, _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0)), three),
                              4));
        q[1] = _mm512_or_si512(
            _mm512_and_si512(_mm512_srli_epi16(l, 4), low4),
            _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi64(h, _mm512_set_epi64(6, 6, 6, 6, 4, 4, 4, 4)), three),
                              4));
        for (int k = 0; k < 2; k++) {
            const int g = 8 * n + 4 * k; /* the scales of this vector's four quarters: g .. g + 3 */
            const __m512i s = _mm512_permutexvar_epi16(q6_k_quarter_scales(g), sc512);
            const __m512i a = _mm512_loadu_si512((const void *)(x->qs + 128 * n + 64 * k));
            wide = _mm512_add_epi32(wide, _mm512_madd_epi16(_mm512_maddubs_epi16(q[k], a), s));
            if (xl) {
                const __m512i al = _mm512_loadu_si512((const void *)(xl->qs + 128 * n + 64 * k));
                wide_l = _mm512_add_epi32(wide_l, _mm512_madd_epi16(_mm512_maddubs_epi16(q[k], al), s));
            }
        }
    }
    isum = _mm256_add_epi32(isum, _mm256_add_epi32(_mm512_castsi512_si256(wide), _mm512_extracti64x4_epi64(wide, 1)));
    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(x->d * _cvtsh_ss(b->d)), *acc);
    if (xl) {
        isum_l = _mm256_add_epi32(
            isum_l, _mm256_add_epi32(_mm512_castsi512_si256(wide_l), _mm512_extracti64x4_epi64(wide_l, 1)));
        *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum_l), _mm256_set1_ps(xl->d * _cvtsh_ss(b->d)), *acc);
    }
}
#endif

/* The block kernels of the K-quants, 512-bit where `wide` (a constant once
 * inlined) and the level has them: the same bits either way. */
static inline __attribute__((always_inline)) void q45_k_block(int wide, uint16_t d, uint16_t dmin,
                                                              const uint8_t *scales, const uint8_t *qs,
                                                              const uint8_t *qh, const kv_block_q8_k *x,
                                                              const kv_block_q8_k *xl, __m256 *acc, __m128 *mins) {
#if KV_HAVE_VNNI
    if (wide && xl) {
        q45_k_block_vnni_res(d, dmin, scales, qs, qh, x, xl, acc, mins);
        return;
    }
#endif
#if KV_HAVE_AVX512
    if (wide) {
        q45_k_block_avx512(d, dmin, scales, qs, qh, x, xl, acc, mins);
        return;
    }
#endif
    (void)wide;
    q45_k_block_avx2(d, dmin, scales, qs, qh, x, xl, acc, mins);
}

static inline __attribute__((always_inline)) void q6_k_block(int wide, const kv_block_q6_k *b, const kv_block_q8_k *x,
                                                             const kv_block_q8_k *xl, __m256 *acc) {
#if KV_HAVE_AVX512
    if (wide) {
        q6_k_block_avx512(b, x, xl, acc);
        return;
    }
#endif
    (void)wide;
    q6_k_block_avx2(b, x, xl, acc);
}

/* One Q2_K or Q3_K super-block (t, a constant once inlined). Per 128
 * elements, 32 bytes of 2-bit quants read at shifts 0, 2, 4, 6, each shift's
 * 32 elements two groups of 16 with a scale each; Q3_K adds its third bit
 * (hmask bit 4·half + shift/2: u = q + 4·bit, x = (u - 4)·scale, the -4 taken
 * once as -4 Σ_g sc_g·bsums_g); Q2_K subtracts dmin·Σ_g min_g·bsums_g. */
static inline __attribute__((always_inline)) void q23_k_block_avx2(kvattn_type t, const void *block,
                                                                   const kv_block_q8_k *x, const kv_block_q8_k *xl,
                                                                   __m256 *acc, __m128 *mins) {
    const kv_block_q2_k *b2 = block;
    const kv_block_q3_k *b3 = block;
    const __m256i three = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    int8_t sc[16];
    __m256i bias_sc; /* per group, what multiplies the activations' sums of 16 */
    if (t == KVATTN_TYPE_Q2_K) {
        const __m128i raw = _mm_loadu_si128((const __m128i *)b2->scales);
        _mm_storeu_si128((__m128i *)sc, _mm_and_si128(raw, _mm_set1_epi8(0x0F)));
        bias_sc = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(0x0F)));
    } else {
        kv_q3_k_scales(b3->scales, sc);
        bias_sc = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
    }
    const kv_block_q8_k *xs[2] = {x, xl};
    for (int v = 0; v < 2 && xs[v]; v++) {
        const kv_block_q8_k *a8 = xs[v];
        /* Σ_g bias_g·bsums_g in 8 lanes, then to one float */
        const __m256i bsum = _mm256_madd_epi16(bias_sc, _mm256_loadu_si256((const __m256i *)a8->bsums));
        __m256i isum = _mm256_setzero_si256();
        for (int n = 0; n < 2; n++) {
            const __m256i q2 =
                _mm256_loadu_si256((const __m256i *)((t == KVATTN_TYPE_Q2_K ? b2->qs : b3->qs) + 32 * n));
            const __m256i hm = t == KVATTN_TYPE_Q3_K ? _mm256_loadu_si256((const __m256i *)b3->hmask) : q2;
            for (int j = 0; j < 4; j++) {
                __m256i u = _mm256_and_si256(_mm256_srl_epi16(q2, _mm_cvtsi32_si128(2 * j)), three);
                if (t == KVATTN_TYPE_Q3_K) {
                    const __m256i h = _mm256_and_si256(_mm256_srl_epi16(hm, _mm_cvtsi32_si128(4 * n + j)), one);
                    u = _mm256_or_si256(u, _mm256_slli_epi16(h, 2));
                }
                const __m256i p =
                    _mm256_maddubs_epi16(u, _mm256_loadu_si256((const __m256i *)(a8->qs + 128 * n + 32 * j)));
                const int g = 8 * n + 2 * j;
                const __m256i s = _mm256_set_m128i(_mm_set1_epi16(sc[g + 1]), _mm_set1_epi16(sc[g]));
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, s));
            }
        }
        if (t == KVATTN_TYPE_Q3_K) {
            isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(bsum, 2));
            *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(a8->d * _cvtsh_ss(b3->d)), *acc);
        } else {
            *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(a8->d * _cvtsh_ss(b2->d)), *acc);
            const __m128i b4 = _mm_add_epi32(_mm256_castsi256_si128(bsum), _mm256_extracti128_si256(bsum, 1));
            *mins = _mm_fmadd_ps(_mm_cvtepi32_ps(b4), _mm_set1_ps(a8->d * _cvtsh_ss(b2->dmin)), *mins);
        }
    }
}

/* Eight blocks of 32 of Q4_0, Q4_1, Q5_0 or Q5_1 (t, a constant once
 * inlined) against one Q8_K block (and xl, the residual's, unless NULL): per
 * block, the unsigned 4- or 5-bit q (the fifth bits spread from qh a byte per
 * element) times a in maddubs, scaled by d; x = q·d + off, so off·Σa, from
 * the activations' sums of 16, goes to mins with its sign turned. */
static inline __attribute__((always_inline)) void block32_avx2(kvattn_type t, const unsigned char *b,
                                                               const kv_block_q8_k *x, const kv_block_q8_k *xl,
                                                               __m256 *acc, __m128 *mins) {
    const __m128i low4 = _mm_set1_epi8(0x0F);
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3,
                                            3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    const size_t bytes = kv_quant_block_bytes(t);
    float off = 0.0f;
    for (int j = 0; j < 8; j++, b += bytes) {
        const uint8_t *qs, *qh = NULL;
        float d, m = 0.0f;
        if (t == KVATTN_TYPE_Q4_0) d = _cvtsh_ss(((const kv_block_q4_0 *)b)->d), qs = ((const kv_block_q4_0 *)b)->qs;
        else if (t == KVATTN_TYPE_Q4_1) {
            const kv_block_q4_1 *p = (const kv_block_q4_1 *)b;
            d = _cvtsh_ss(p->d), m = _cvtsh_ss(p->m), qs = p->qs;
        } else if (t == KVATTN_TYPE_Q5_0) {
            const kv_block_q5_0 *p = (const kv_block_q5_0 *)b;
            d = _cvtsh_ss(p->d), qs = p->qs, qh = p->qh;
        } else {
            const kv_block_q5_1 *p = (const kv_block_q5_1 *)b;
            d = _cvtsh_ss(p->d), m = _cvtsh_ss(p->m), qs = p->qs, qh = p->qh;
        }
        const __m128i tq = _mm_loadu_si128((const __m128i *)qs);
        __m256i q = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(tq, 4), low4), _mm_and_si128(tq, low4));
        if (qh) { /* byte e of the vector gets bit e of qh, as 16 */
            uint32_t h;
            memcpy(&h, qh, 4);
            const __m256i hb = _mm256_shuffle_epi8(_mm256_set1_epi32((int)h), spread);
            const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(hb, bit), bit);
            q = _mm256_or_si256(q, _mm256_and_si256(set, _mm256_set1_epi8(16)));
        }
        const float moff = t == KVATTN_TYPE_Q4_0 ? 8.0f * d : t == KVATTN_TYPE_Q5_0 ? 16.0f * d : -m;
        const __m256i a = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * j));
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(q, a), ones);
        *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d * x->d), *acc);
        off += moff * x->d * (float)(x->bsums[2 * j] + x->bsums[2 * j + 1]);
        if (xl) {
            const __m256i al = _mm256_loadu_si256((const __m256i *)(xl->qs + 32 * j));
            const __m256i pl = _mm256_madd_epi16(_mm256_maddubs_epi16(q, al), ones);
            *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(pl), _mm256_set1_ps(d * xl->d), *acc);
            off += moff * xl->d * (float)(xl->bsums[2 * j] + xl->bsums[2 * j + 1]);
        }
    }
    *mins = _mm_add_ss(*mins, _mm_set_ss(off));
}

static float hsum128(__m128 v) {
    const __m128 h = _mm_add_ps(v, _mm_movehl_ps(v, v));
    return _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps(h, h, 1)));
}

/* nr ≤ KV_Q8_K_ROWS rows, super-block by super-block: the rows are far-apart
 * streams read side by side (one stream per core leaves bandwidth unused). */
/* How far ahead of each row stream the GEMV prefetches (into L2). */
#define Q8_K_AHEAD 1024

/* The super-block loop of rows_dot_q8_k_avx2 for a type of blocks of 32 (T),
 * spelled once per type so that each inlines block32_avx2 with T constant. */
#define BLOCK32_ROWS(T)                                                                                                \
    for (int i = 0; i < nb; i++) KV_UNROLL for (int r = 0; r < KV_Q8_K_ROWS; r++) {                                    \
            const unsigned char *b = (const unsigned char *)rw[r] + (size_t)8 * i * kv_quant_block_bytes(T);           \
            kv_prefetch(b + Q8_K_AHEAD, 8 * kv_quant_block_bytes(T));                                                  \
            block32_avx2(T, b, x + i, xl ? xl + i : NULL, &acc[r], &mins[r]);                                          \
        }

static inline __attribute__((always_inline)) void rows_dot_q8_k_body(kvattn_type t, const void *const *rows, int nr,
                                                                     const kv_block_q8_k *x, const kv_block_q8_k *xl,
                                                                     int nb, float *out, const int wide) {
    __m256 acc[KV_Q8_K_ROWS];
    __m128 mins[KV_Q8_K_ROWS];
    for (int r = 0; r < KV_Q8_K_ROWS; r++) acc[r] = _mm256_setzero_ps(), mins[r] = _mm_setzero_ps();
    const void *rw[KV_Q8_K_ROWS];
    for (int r = 0; r < KV_Q8_K_ROWS; r++) rw[r] = rows[r < nr ? r : 0]; /* spare lanes repeat row 0, unstored */
    if (t == KVATTN_TYPE_Q5_K)
        for (int i = 0; i < nb; i++) KV_UNROLL for (int r = 0; r < KV_Q8_K_ROWS; r++) {
                const kv_block_q5_k *b = (const kv_block_q5_k *)rw[r] + i;
                kv_prefetch((const unsigned char *)b + Q8_K_AHEAD, sizeof *b);
                q45_k_block(wide, b->d, b->dmin, b->scales, b->qs, b->qh, x + i, xl ? xl + i : NULL, &acc[r], &mins[r]);
            }
    else if (t == KVATTN_TYPE_Q4_0) BLOCK32_ROWS(KVATTN_TYPE_Q4_0)
    else if (t == KVATTN_TYPE_Q4_1) BLOCK32_ROWS(KVATTN_TYPE_Q4_1)
    else if (t == KVATTN_TYPE_Q5_0) BLOCK32_ROWS(KVATTN_TYPE_Q5_0)
    else if (t == KVATTN_TYPE_Q5_1) BLOCK32_ROWS(KVATTN_TYPE_Q5_1)
    else if (t == KVATTN_TYPE_Q2_K)
        for (int i = 0; i < nb; i++) KV_UNROLL for (int r = 0; r < KV_Q8_K_ROWS; r++) {
                const kv_block_q2_k *b = (const kv_block_q2_k *)rw[r] + i;
                kv_prefetch((const unsigned char *)b + Q8_K_AHEAD, sizeof *b);
                q23_k_block_avx2(KVATTN_TYPE_Q2_K, b, x + i, xl ? xl + i : NULL, &acc[r], &mins[r]);
            }
    else if (t == KVATTN_TYPE_Q3_K)
        for (int i = 0; i < nb; i++) KV_UNROLL for (int r = 0; r < KV_Q8_K_ROWS; r++) {
                const kv_block_q3_k *b = (const kv_block_q3_k *)rw[r] + i;
                kv_prefetch((const unsigned char *)b + Q8_K_AHEAD, sizeof *b);
                q23_k_block_avx2(KVATTN_TYPE_Q3_K, b, x + i, xl ? xl + i : NULL, &acc[r], &mins[r]);
            }
    else if (t == KVATTN_TYPE_Q4_K)
        for (int i = 0; i < nb; i++) KV_UNROLL for (int r = 0; r < KV_Q8_K_ROWS; r++) {
                const kv_block_q4_k *b = (const kv_block_q4_k *)rw[r] + i;
                kv_prefetch((const unsigned char *)b + Q8_K_AHEAD, sizeof *b);
                q45_k_block(wide, b->d, b->dmin, b->scales, b->qs, NULL, x + i, xl ? xl + i : NULL, &acc[r], &mins[r]);
            }
    else
        for (int i = 0; i < nb; i++) KV_UNROLL for (int r = 0; r < KV_Q8_K_ROWS; r++) {
                const kv_block_q6_k *b = (const kv_block_q6_k *)rw[r] + i;
                kv_prefetch((const unsigned char *)b + Q8_K_AHEAD, sizeof *b);
                q6_k_block(wide, b, x + i, xl ? xl + i : NULL, &acc[r]);
            }
    for (int r = 0; r < nr; r++) out[r] = kv_hsum_avx2(acc[r]) - hsum128(mins[r]);
}

static void rows_dot_q8_k_avx2(kvattn_type t, const void *const *rows, int nr, const kv_block_q8_k *x,
                               const kv_block_q8_k *xl, int nb, float *out) {
    rows_dot_q8_k_body(t, rows, nr, x, xl, nb, out, 0);
}
#endif

#if KV_HAVE_AVX512
#include <x86intrin.h> /* __rdtsc */

static void rows_dot_q8_k_avx512(kvattn_type t, const void *const *rows, int nr, const kv_block_q8_k *x,
                                 const kv_block_q8_k *xl, int nb, float *out) {
    rows_dot_q8_k_body(t, rows, nr, x, xl, nb, out, 1);
}

/* Whether the 512-bit K-quant products beat the AVX2 ones on this CPU. They
 * give the same bits, but where 512-bit integer operations run as two 256-bit
 * halves (Zen 4) their extra shuffles make them slower, so both are timed once
 * on a few Q4_K and Q6_K rows in cache (about 0.1 ms). Threads racing here may
 * each time them: whichever answer they store, the outputs are the same. */
static int kquant_wide_pays(void) {
    static int pays = -1;
    int p = __atomic_load_n(&pays, __ATOMIC_RELAXED);
    if (p >= 0) return p;
    enum { NB = 8, ROWS = KV_Q8_K_ROWS };
    kv_block_q4_k q4[ROWS][NB];
    kv_block_q6_k q6[ROWS][NB];
    kv_block_q8_k x[2 * NB];
    uint32_t lcg = 12345u;
    unsigned char *bytes[] = {(unsigned char *)q4, (unsigned char *)q6, (unsigned char *)x};
    const size_t sizes[] = {sizeof q4, sizeof q6, sizeof x};
    for (int a = 0; a < 3; a++)
        for (size_t i = 0; i < sizes[a]; i++) bytes[a][i] = (unsigned char)((lcg = lcg * 1664525u + 1013904223u) >> 24);
    for (int r = 0; r < ROWS; r++)
        for (int b = 0; b < NB; b++) q4[r][b].d = q4[r][b].dmin = q6[r][b].d = 0x3C00; /* 1.0: no NaN, no denormal */
    for (int b = 0; b < 2 * NB; b++) x[b].d = 1.0f / 127;
    const void *r4[ROWS], *r6[ROWS];
    for (int r = 0; r < ROWS; r++) r4[r] = q4[r], r6[r] = q6[r];
    unsigned long long best[2] = {~0ull, ~0ull};
    float out[ROWS];
    for (int rep = 0; rep < 10; rep++)
        for (int wide = 0; wide < 2; wide++) {
            const unsigned long long t0 = __rdtsc();
            for (int it = 0; it < 8; it++) {
                (wide ? rows_dot_q8_k_avx512 : rows_dot_q8_k_avx2)(KVATTN_TYPE_Q4_K, r4, ROWS, x, x + NB, NB, out);
                (wide ? rows_dot_q8_k_avx512 : rows_dot_q8_k_avx2)(KVATTN_TYPE_Q6_K, r6, ROWS, x, x + NB, NB, out);
            }
            const unsigned long long dt = __rdtsc() - t0;
            if (dt < best[wide]) best[wide] = dt;
        }
    p = best[1] * 10 < best[0] * 9; /* the AVX2 ones unless the 512-bit ones are clearly faster */
    __atomic_store_n(&pays, p, __ATOMIC_RELAXED);
    return p;
}

/* isa_quant_rows_dot_q8_k with the 512-bit block kernels whatever the timing
 * picks, so that tests reach them on every CPU that has them. */
static inline void isa_quant_rows_dot_q8_k_512(kvattn_type t, const void *const *rows, int nr, const kv_block_q8_k *x,
                                               const kv_block_q8_k *xl, int n, float *y) {
    rows_dot_q8_k_avx512(t, rows, nr, x, xl, n / KV_QK_K, y);
}
#endif

#if KV_HAVE_VNNI
/* kv_q4_k_x16_dot_ref with a row per 32-bit lane: each quant vector holds
 * four elements of each of the 16 rows, met by one broadcast activation word
 * in vpdpbusd. Each step's low and high sub-blocks sum in two chains apiece
 * (even and odd chunks: half the latency), shifted before xl's products. */
static inline void isa_q4_k_x16_dot(const kv_block_q4_k_x16 *g, int nb, const kv_block_q8_k *x, const kv_block_q8_k *xl,
                                    const int32_t *msums, float *y) {
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    __m512 acc = _mm512_setzero_ps(), mins = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++, g++) {
        const kv_block_q8_k *a = xl ? &xl[b] : &x[b];
        const __m512 ad = _mm512_set1_ps(a->d);
        const __m512 dd = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)g->d)), ad);
        const __m512 dm = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)g->dmin)), ad);
        __m512i msum = _mm512_setzero_si512();
        for (int j = 0; j < 8; j++)
            msum = _mm512_add_epi32(
                msum, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)g->mins[j])),
                                         _mm512_set1_epi32(msums[8 * b + j])));
        for (int p = 0; p < 4; p++) {
            __m512i lo[8], hi[8];
            __m512i l0 = _mm512_setzero_si512(), l1 = l0, h0 = l0, h1 = l0;
            const int8_t *xa = x[b].qs + 64 * p;
            int32_t w;
            for (int c = 0; c < 8; c++) {
                const __m512i v = _mm512_loadu_si512((const void *)g->qs[p][c]);
                lo[c] = _mm512_and_si512(v, low4), hi[c] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
            }
            for (int c = 0; c < 8; c += 2) {
                memcpy(&w, xa + 4 * c, 4), l0 = _mm512_dpbusd_epi32(l0, lo[c], _mm512_set1_epi32(w));
                memcpy(&w, xa + 4 * c + 4, 4), l1 = _mm512_dpbusd_epi32(l1, lo[c + 1], _mm512_set1_epi32(w));
                memcpy(&w, xa + 32 + 4 * c, 4), h0 = _mm512_dpbusd_epi32(h0, hi[c], _mm512_set1_epi32(w));
                memcpy(&w, xa + 36 + 4 * c, 4), h1 = _mm512_dpbusd_epi32(h1, hi[c + 1], _mm512_set1_epi32(w));
            }
            if (xl) {
                const int8_t *la = xl[b].qs + 64 * p;
                l0 = _mm512_slli_epi32(l0, KV_Q8_K_RES_SHIFT), l1 = _mm512_slli_epi32(l1, KV_Q8_K_RES_SHIFT);
                h0 = _mm512_slli_epi32(h0, KV_Q8_K_RES_SHIFT), h1 = _mm512_slli_epi32(h1, KV_Q8_K_RES_SHIFT);
                for (int c = 0; c < 8; c += 2) {
                    memcpy(&w, la + 4 * c, 4), l0 = _mm512_dpbusd_epi32(l0, lo[c], _mm512_set1_epi32(w));
                    memcpy(&w, la + 4 * c + 4, 4), l1 = _mm512_dpbusd_epi32(l1, lo[c + 1], _mm512_set1_epi32(w));
                    memcpy(&w, la + 32 + 4 * c, 4), h0 = _mm512_dpbusd_epi32(h0, hi[c], _mm512_set1_epi32(w));
                    memcpy(&w, la + 36 + 4 * c, 4), h1 = _mm512_dpbusd_epi32(h1, hi[c + 1], _mm512_set1_epi32(w));
                }
            }
            const __m512i s_lo = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)g->scales[2 * p]));
            const __m512i s_hi = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)g->scales[2 * p + 1]));
            const __m512i s = _mm512_add_epi32(_mm512_mullo_epi32(_mm512_add_epi32(l0, l1), s_lo),
                                               _mm512_mullo_epi32(_mm512_add_epi32(h0, h1), s_hi));
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), dd, acc);
        }
        mins = _mm512_fmadd_ps(_mm512_cvtepi32_ps(msum), dm, mins);
    }
    _mm512_storeu_ps(y, _mm512_sub_ps(acc, mins));
}
#endif

/* y[r] = rows[r]·x for x as Q8_K blocks, plus rows[r]·xl where xl (the
 * residual of x's rounding, as Q8_K blocks too) is not NULL. */
static inline void isa_quant_rows_dot_q8_k(kvattn_type t, const void *const *rows, int nr, const kv_block_q8_k *x,
                                           const kv_block_q8_k *xl, int n, float *y) {
#if KV_HAVE_AVX512
    if (kquant_wide_pays()) {
        rows_dot_q8_k_avx512(t, rows, nr, x, xl, n / KV_QK_K, y);
        return;
    }
#endif
#if KV_HAVE_AVX2
    rows_dot_q8_k_avx2(t, rows, nr, x, xl, n / KV_QK_K, y);
#else
    for (int r = 0; r < nr; r++)
        y[r] = kv_quant_row_dot_q8_k_ref(t, rows[r], x, n) + (xl ? kv_quant_row_dot_q8_k_ref(t, rows[r], xl, n) : 0.0f);
#endif
}

/* ---- q8_0 weights against activations rounded to 16 bits per 32 ------------
 * Per block b of 32, x_i = d_b · q_i with q_i in [-32767, 32767]: Σ_i w_i·q_i
 * in integers, the weights widened to 16 bits and multiplied in pairs (madd,
 * or vpdpwssd where the level has VNNI), then times the weight block's scale
 * and d_b. |w·q| ≤ 128 · 32767, so a block's sum of 32 fits an int32. Eight
 * bits per activation (llama.cpp's q8_0 × q8_0) measured no faster here and
 * cost a mean KL of 8e-4 on stories15M; sixteen cost none measurable. */

/* How far ahead of each row stream the GEMV prefetches (into L2). */
#define Q8_0_INT_AHEAD 1024

static inline void isa_q8_0_rows_dot_q16(const void *const *rows, int nr, const int16_t *q, const float *d, int n,
                                         float *y) {
#if KV_HAVE_AVX2
    const kv_block_q8_0 *rw[KV_Q8_0_INT_ROWS];
    for (int r = 0; r < KV_Q8_0_INT_ROWS; r++) rw[r] = rows[r < nr ? r : 0]; /* spare lanes repeat row 0, unstored */
    const int nb = n / KV_Q8_0_BLOCK;
    __m256 acc[KV_Q8_0_INT_ROWS];
#if KV_HAVE_AVX512
    __m512 acc16[KV_Q8_0_INT_ROWS];
    for (int r = 0; r < KV_Q8_0_INT_ROWS; r++) acc16[r] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const __m512i a = _mm512_loadu_si512((const void *)(q + KV_Q8_0_BLOCK * b));
        KV_UNROLL for (int r = 0; r < KV_Q8_0_INT_ROWS; r++) {
            const kv_block_q8_0 *w = rw[r] + b;
            kv_prefetch((const unsigned char *)w + Q8_0_INT_AHEAD, sizeof *w);
            const __m512i w16 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)w->qs));
#if KV_HAVE_VNNI
            const __m512i s = _mm512_dpwssd_epi32(_mm512_setzero_si512(), w16, a);
#else
            const __m512i s = _mm512_madd_epi16(w16, a);
#endif
            acc16[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(_cvtsh_ss(w->d) * d[b]), acc16[r]);
        }
    }
    for (int r = 0; r < KV_Q8_0_INT_ROWS; r++) acc[r] = kv_fold_avx512(acc16[r]);
#else
    for (int r = 0; r < KV_Q8_0_INT_ROWS; r++) acc[r] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const __m256i a0 = _mm256_loadu_si256((const __m256i *)(q + KV_Q8_0_BLOCK * b));
        const __m256i a1 = _mm256_loadu_si256((const __m256i *)(q + KV_Q8_0_BLOCK * b + 16));
        KV_UNROLL for (int r = 0; r < KV_Q8_0_INT_ROWS; r++) {
            const kv_block_q8_0 *w = rw[r] + b;
            kv_prefetch((const unsigned char *)w + Q8_0_INT_AHEAD, sizeof *w);
            const __m256i s = _mm256_add_epi32(
                _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w->qs)), a0),
                _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w->qs + 16))), a1));
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(_cvtsh_ss(w->d) * d[b]), acc[r]);
        }
    }
#endif
    for (int r = 0; r < nr; r++) y[r] = kv_hsum_avx2(acc[r]);
#else
    for (int r = 0; r < nr; r++) y[r] = kv_q8_0_row_dot_q16_ref(rows[r], q, d, n);
#endif
}

/* x[n] (whole blocks of 32) rounded to 16 bits per block: d[b] = max|x|/32767,
 * q = round(x / d) to nearest even, as kv_quantize_q16_32_ref. */
static inline void isa_quantize_q16_32(const float *x, int16_t *q, float *d, int n) {
#if KV_HAVE_AVX2
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int b = 0; b < n / KV_Q8_0_BLOCK; b++, x += KV_Q8_0_BLOCK, q += KV_Q8_0_BLOCK) {
        __m256 v[4], m = _mm256_setzero_ps();
        for (int j = 0; j < 4; j++) m = _mm256_max_ps(m, _mm256_and_ps(v[j] = _mm256_loadu_ps(x + 8 * j), abs_mask));
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        const float amax = _mm_cvtss_f32(_mm_max_ss(h, _mm_shuffle_ps(h, h, 1)));
        d[b] = amax / 32767.0f;
        const __m256 id = _mm256_set1_ps(amax > 0.0f ? 32767.0f / amax : 0.0f);
        for (int j = 0; j < 4; j += 2) { /* packs interleave 128-bit lanes; the permute puts them back in order */
            const __m256i p = _mm256_packs_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(v[j], id)),
                                                 _mm256_cvtps_epi32(_mm256_mul_ps(v[j + 1], id)));
            _mm256_storeu_si256((__m256i *)(q + 8 * j), _mm256_permute4x64_epi64(p, 0xD8));
        }
    }
#else
    kv_quantize_q16_32_ref(x, q, d, n);
#endif
}

#endif
