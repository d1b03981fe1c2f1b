/* Decoding llama.cpp's block-quantized weights, one block at a time, as the
 * GGUF format defines them (ggml-quants' dequantize_row_* are the reference
 * for the layouts; tests/golden/quants.bin holds gguf-py's decoding of random
 * blocks). The fast paths decode a block into registers-sized pieces and dot
 * it with x; the integer-dot kernels belong to the dispatch issue. */
#include "quants.h"

#include "convert.h"
#include "vec.h"

#include <math.h>
#include <string.h>

_Static_assert(sizeof(kv_block_q4_0) == 18, "q4_0 block");
_Static_assert(sizeof(kv_block_q4_1) == 20, "q4_1 block");
_Static_assert(sizeof(kv_block_q5_0) == 22, "q5_0 block");
_Static_assert(sizeof(kv_block_q5_1) == 24, "q5_1 block");
_Static_assert(sizeof(kv_block_q2_k) == 84, "q2_K block");
_Static_assert(sizeof(kv_block_q3_k) == 110, "q3_K block");
_Static_assert(sizeof(kv_block_q4_k) == 144, "q4_K block");
_Static_assert(sizeof(kv_block_q5_k) == 176, "q5_K block");
_Static_assert(sizeof(kv_block_q6_k) == 210, "q6_K block");

int kv_is_block_quant(kvattn_type t) { return kv_quant_block_bytes(t) != 0; }

int kv_quant_block_elems(kvattn_type t) {
    switch (t) {
    case KVATTN_TYPE_Q4_0:
    case KVATTN_TYPE_Q4_1:
    case KVATTN_TYPE_Q5_0:
    case KVATTN_TYPE_Q5_1: return KV_QK;
    case KVATTN_TYPE_Q2_K:
    case KVATTN_TYPE_Q3_K:
    case KVATTN_TYPE_Q4_K:
    case KVATTN_TYPE_Q5_K:
    case KVATTN_TYPE_Q6_K: return KV_QK_K;
    default: return 1;
    }
}

size_t kv_quant_block_bytes(kvattn_type t) {
    switch (t) {
    case KVATTN_TYPE_Q4_0: return sizeof(kv_block_q4_0);
    case KVATTN_TYPE_Q4_1: return sizeof(kv_block_q4_1);
    case KVATTN_TYPE_Q5_0: return sizeof(kv_block_q5_0);
    case KVATTN_TYPE_Q5_1: return sizeof(kv_block_q5_1);
    case KVATTN_TYPE_Q2_K: return sizeof(kv_block_q2_k);
    case KVATTN_TYPE_Q3_K: return sizeof(kv_block_q3_k);
    case KVATTN_TYPE_Q4_K: return sizeof(kv_block_q4_k);
    case KVATTN_TYPE_Q5_K: return sizeof(kv_block_q5_k);
    case KVATTN_TYPE_Q6_K: return sizeof(kv_block_q6_k);
    default: return 0;
    }
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- blocks of 32: the low nibbles are elements 0..15, the high 16..31 ---- */

static void dequant_q4_0(const kv_block_q4_0 *b, float *y) {
    const float d = kv_f16_to_f32(b->d);
    for (int j = 0; j < 16; j++) {
        y[j] = ((b->qs[j] & 0xF) - 8) * d;
        y[j + 16] = ((b->qs[j] >> 4) - 8) * d;
    }
}

static void dequant_q4_1(const kv_block_q4_1 *b, float *y) {
    const float d = kv_f16_to_f32(b->d), m = kv_f16_to_f32(b->m);
    for (int j = 0; j < 16; j++) {
        y[j] = (b->qs[j] & 0xF) * d + m;
        y[j + 16] = (b->qs[j] >> 4) * d + m;
    }
}

/* Element j's fifth bit is bit j of qh; element j + 16's is bit j + 16. */
static void dequant_q5_0(const kv_block_q5_0 *b, float *y) {
    const float d = kv_f16_to_f32(b->d);
    const uint32_t qh = le32(b->qh);
    for (int j = 0; j < 16; j++) {
        const int lo = (b->qs[j] & 0xF) | (int)((qh >> j) & 1) << 4, hi = (b->qs[j] >> 4) | (int)((qh >> (j + 16)) & 1)
                                                                                                << 4;
        y[j] = (lo - 16) * d;
        y[j + 16] = (hi - 16) * d;
    }
}

static void dequant_q5_1(const kv_block_q5_1 *b, float *y) {
    const float d = kv_f16_to_f32(b->d), m = kv_f16_to_f32(b->m);
    const uint32_t qh = le32(b->qh);
    for (int j = 0; j < 16; j++) {
        const int lo = (b->qs[j] & 0xF) | (int)((qh >> j) & 1) << 4, hi = (b->qs[j] >> 4) | (int)((qh >> (j + 16)) & 1)
                                                                                                << 4;
        y[j] = lo * d + m;
        y[j + 16] = hi * d + m;
    }
}

/* ---- super-blocks of 256 --------------------------------------------------- */

/* Q2_K: per 128 elements, 32 bytes of quants read four times (shifts 0, 2, 4,
 * 6); each 16 elements have a 4-bit scale and a 4-bit min. */
static void dequant_q2_k(const kv_block_q2_k *b, float *y) {
    const float d = kv_f16_to_f32(b->d), dmin = kv_f16_to_f32(b->dmin);
    const uint8_t *q = b->qs;
    int is = 0;
    for (int n = 0; n < KV_QK_K; n += 128, q += 32)
        for (int shift = 0; shift < 8; shift += 2)
            for (int half = 0; half < 2; half++) {
                const uint8_t sc = b->scales[is++];
                const float dl = d * (sc & 0xF), ml = dmin * (sc >> 4);
                for (int l = 0; l < 16; l++) *y++ = dl * ((q[l + 16 * half] >> shift) & 3) - ml;
            }
}

/* Q3_K's sixteen 6-bit scales: the low 4 bits in bytes 0..7 (two per byte),
 * the high 2 bits in bytes 8..11 (four per byte); stored as scale + 32. */
static void q3_k_scales(const uint8_t *s, int8_t out[16]) {
    for (int i = 0; i < 16; i++) {
        const int lo = i < 8 ? s[i] & 0xF : s[i - 8] >> 4, hi = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
        out[i] = (int8_t)((lo | hi << 4) - 32);
    }
}

/* Q3_K: as Q2_K's layout, plus a third bit from hmask (set: +0, clear: -4). */
static void dequant_q3_k(const kv_block_q3_k *b, float *y) {
    const float d = kv_f16_to_f32(b->d);
    int8_t sc[16];
    q3_k_scales(b->scales, sc);
    const uint8_t *q = b->qs;
    int is = 0;
    uint8_t m = 1;
    for (int n = 0; n < KV_QK_K; n += 128, q += 32)
        for (int shift = 0; shift < 8; shift += 2, m <<= 1)
            for (int half = 0; half < 2; half++) {
                const float dl = d * sc[is++];
                for (int l = 16 * half; l < 16 * half + 16; l++)
                    *y++ = dl * ((int)((q[l] >> shift) & 3) - ((b->hmask[l] & m) ? 0 : 4));
            }
}

/* Q4_K/Q5_K's eight 6-bit scales and mins (get_scale_min_k4). */
static void scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *mn) {
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *mn = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Q4_K: per 64 elements, 32 bytes: low nibbles the first 32, high the next. */
static void dequant_q4_k(const kv_block_q4_k *b, float *y) {
    const float d = kv_f16_to_f32(b->d), dmin = kv_f16_to_f32(b->dmin);
    const uint8_t *q = b->qs;
    for (int j = 0; j < 8; j += 2, q += 32) {
        uint8_t s0, m0, s1, m1;
        scale_min_k4(j, b->scales, &s0, &m0);
        scale_min_k4(j + 1, b->scales, &s1, &m1);
        const float d0 = d * s0, n0 = dmin * m0, d1 = d * s1, n1 = dmin * m1;
        for (int l = 0; l < 32; l++) *y++ = d0 * (q[l] & 0xF) - n0;
        for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] >> 4) - n1;
    }
}

/* Q5_K: Q4_K plus a fifth bit per element from qh (bit 2·(j/2) for the low
 * nibbles of the j-th 64, the next bit for the high). */
static void dequant_q5_k(const kv_block_q5_k *b, float *y) {
    const float d = kv_f16_to_f32(b->d), dmin = kv_f16_to_f32(b->dmin);
    const uint8_t *q = b->qs;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < 8; j += 2, q += 32, u1 <<= 2, u2 <<= 2) {
        uint8_t s0, m0, s1, m1;
        scale_min_k4(j, b->scales, &s0, &m0);
        scale_min_k4(j + 1, b->scales, &s1, &m1);
        const float d0 = d * s0, n0 = dmin * m0, d1 = d * s1, n1 = dmin * m1;
        for (int l = 0; l < 32; l++) *y++ = d0 * ((q[l] & 0xF) + (b->qh[l] & u1 ? 16 : 0)) - n0;
        for (int l = 0; l < 32; l++) *y++ = d1 * ((q[l] >> 4) + (b->qh[l] & u2 ? 16 : 0)) - n1;
    }
}

/* Q6_K: per 128 elements, 64 bytes of low nibbles and 32 of high 2-bit
 * pairs; a signed 8-bit scale per 16. */
static void dequant_q6_k(const kv_block_q6_k *b, float *y) {
    const float d = kv_f16_to_f32(b->d);
    const uint8_t *ql = b->ql, *qh = b->qh;
    const int8_t *sc = b->scales;
    for (int n = 0; n < KV_QK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8)
        for (int l = 0; l < 32; l++) {
            const int is = l / 16;
            const int q1 = ((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
            const int q2 = ((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
            const int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
            const int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
            y[l] = d * sc[is] * q1;
            y[l + 32] = d * sc[is + 2] * q2;
            y[l + 64] = d * sc[is + 4] * q3;
            y[l + 96] = d * sc[is + 6] * q4;
        }
}

/* One block of t at p into y (kv_quant_block_elems(t) floats). */
static void dequant_block(kvattn_type t, const void *p, float *y) {
    switch (t) {
    case KVATTN_TYPE_Q4_0: dequant_q4_0(p, y); break;
    case KVATTN_TYPE_Q4_1: dequant_q4_1(p, y); break;
    case KVATTN_TYPE_Q5_0: dequant_q5_0(p, y); break;
    case KVATTN_TYPE_Q5_1: dequant_q5_1(p, y); break;
    case KVATTN_TYPE_Q2_K: dequant_q2_k(p, y); break;
    case KVATTN_TYPE_Q3_K: dequant_q3_k(p, y); break;
    case KVATTN_TYPE_Q4_K: dequant_q4_k(p, y); break;
    case KVATTN_TYPE_Q5_K: dequant_q5_k(p, y); break;
    case KVATTN_TYPE_Q6_K: dequant_q6_k(p, y); break;
    default: memset(y, 0, sizeof(float) * (size_t)kv_quant_block_elems(t)); break;
    }
}

void kv_dequant_row_ref(kvattn_type t, const void *row, float *y, int n) {
    const int qk = kv_quant_block_elems(t);
    const size_t bytes = kv_quant_block_bytes(t);
    for (int i = 0; i + qk <= n; i += qk)
        dequant_block(t, (const unsigned char *)row + (size_t)(i / qk) * bytes, y + i);
}

float kv_quant_get_ref(kvattn_type t, const void *row, int i) {
    float block[KV_QK_K];
    const int qk = kv_quant_block_elems(t);
    dequant_block(t, (const unsigned char *)row + (size_t)(i / qk) * kv_quant_block_bytes(t), block);
    return block[i % qk];
}

/* ---- integer products with Q8_K activations ------------------------------------ */

void kv_quantize_q8_k(const float *x, kv_block_q8_k *y, int n) {
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
            /* packs interleave 128-bit lanes; the permute puts the 32 bytes back in order */
            const __m256i p16a = _mm256_packs_epi32(q[0], q[1]), p16b = _mm256_packs_epi32(q[2], q[3]);
            const __m256i p8 =
                _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p16a, p16b), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256((__m256i *)(y[b].qs + j), p8);
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

int kv_quant_has_q8_k_dot(kvattn_type t) {
    return t == KVATTN_TYPE_Q4_K || t == KVATTN_TYPE_Q5_K || t == KVATTN_TYPE_Q6_K || t == KVATTN_TYPE_Q4_0;
}

/* The 6-bit scales and mins of a Q4_K super-block. */
static void q4_k_scales(const uint8_t *packed, uint8_t sc[8], uint8_t mn[8]) {
    for (int j = 0; j < 8; j++) scale_min_k4(j, packed, &sc[j], &mn[j]);
}

/* Q4_K and Q5_K (qh: the fifth bits, or NULL) against one Q8_K block: per
 * 32, the scale times Σ q·a, less the min times Σ a. */
static float q45_k_dot_ref(uint16_t d, uint16_t dmin, const uint8_t *scales, const uint8_t *qs, const uint8_t *qh,
                           const kv_block_q8_k *x) {
    uint8_t sc[8], mn[8];
    q4_k_scales(scales, sc, mn);
    int32_t isum = 0, msum = 0;
    for (int j = 0; j < 8; j++) {
        const uint8_t *q = qs + 32 * (j / 2);
        int32_t s = 0;
        for (int l = 0; l < 32; l++) {
            const int v = (j % 2 ? q[l] >> 4 : q[l] & 0xF) | (qh ? ((qh[l] >> j) & 1) << 4 : 0);
            s += v * x->qs[32 * j + l];
        }
        isum += sc[j] * s;
        msum += mn[j] * (x->bsums[2 * j] + x->bsums[2 * j + 1]);
    }
    return x->d * (kv_f16_to_f32(d) * (float)isum - kv_f16_to_f32(dmin) * (float)msum);
}

/* Eight Q4_0 blocks (one super-block's worth) against one Q8_K block. */
static float q4_0_dot_ref(const kv_block_q4_0 *b, const kv_block_q8_k *x) {
    float s = 0.0f;
    for (int j = 0; j < 8; j++) {
        int32_t isum = 0;
        for (int l = 0; l < 16; l++)
            isum += ((b[j].qs[l] & 0xF) - 8) * x->qs[32 * j + l] + ((b[j].qs[l] >> 4) - 8) * x->qs[32 * j + 16 + l];
        s += kv_f16_to_f32(b[j].d) * x->d * (float)isum;
    }
    return s;
}

static float q6_k_dot_ref(const kv_block_q6_k *b, const kv_block_q8_k *x) {
    int32_t isum = 0;
    for (int n = 0; n < 2; n++) {
        const uint8_t *ql = b->ql + 64 * n, *qh = b->qh + 32 * n;
        const int8_t *sc = b->scales + 8 * n, *q8 = x->qs + 128 * n;
        for (int k = 0; k < 4; k++) {
            int32_t s[2] = {0, 0};
            for (int l = 0; l < 32; l++) {
                const int lo = k % 2 ? ql[l + 32] : ql[l], nib = k < 2 ? lo & 0xF : lo >> 4;
                const int q = (nib | ((qh[l] >> (2 * k)) & 3) << 4) - 32;
                s[l / 16] += q * q8[32 * k + l];
            }
            isum += sc[2 * k] * s[0] + sc[2 * k + 1] * s[1];
        }
    }
    return x->d * kv_f16_to_f32(b->d) * (float)isum;
}

float kv_quant_row_dot_q8_k_ref(kvattn_type t, const void *row, const kv_block_q8_k *x, int n) {
    float s = 0.0f;
    for (int b = 0; b < n / KV_QK_K; b++) {
        const kv_block_q4_k *q4 = (const kv_block_q4_k *)row + b;
        const kv_block_q5_k *q5 = (const kv_block_q5_k *)row + b;
        switch (t) {
        case KVATTN_TYPE_Q4_K: s += q45_k_dot_ref(q4->d, q4->dmin, q4->scales, q4->qs, NULL, x + b); break;
        case KVATTN_TYPE_Q5_K: s += q45_k_dot_ref(q5->d, q5->dmin, q5->scales, q5->qs, q5->qh, x + b); break;
        case KVATTN_TYPE_Q4_0: s += q4_0_dot_ref((const kv_block_q4_0 *)row + 8 * b, x + b); break;
        default: s += q6_k_dot_ref((const kv_block_q6_k *)row + b, x + b); break;
        }
    }
    return s;
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
                                                                   const kv_block_q8_k *x, __m256 *acc, __m128 *mins) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    const __m256i sm = _mm256_cvtepu8_epi16(q4_k_scales_mins(scales)); /* 8 scales, 8 mins */
    const __m256i bs = _mm256_loadu_si256((const __m256i *)x->bsums);
    const __m128i sums32 = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
    const __m128i msum = _mm_madd_epi16(_mm256_extracti128_si256(sm, 1), sums32);
    *mins = _mm_fmadd_ps(_mm_cvtepi32_ps(msum), _mm_set1_ps(x->d * _cvtsh_ss(dmin)), *mins);
    int16_t sc[16];
    _mm256_storeu_si256((__m256i *)sc, sm);
    const __m256i hb = qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
    __m256i isum = _mm256_setzero_si256();
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
    }
    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(x->d * _cvtsh_ss(d)), *acc);
}

/* One Q6_K super-block. Per 128 elements: four 32-element slices of 6-bit
 * values u = q + 32 in 0..63; Σ sc·(u - 32)·a = Σ sc·maddubs(u, a) - 32·Σ_g
 * sc_g·bsums_g, the second term once per super-block from the activations'
 * sums of 16. Each slice's first 16 take one scale, the next 16 the
 * following one. */
static inline __attribute__((always_inline)) void q6_k_block_avx2(const kv_block_q6_k *b, const kv_block_q8_k *x,
                                                                  __m256 *acc) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), three = _mm256_set1_epi8(3);
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
    __m256i isum = _mm256_slli_epi32(_mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)x->bsums)), 5);
    isum = _mm256_sub_epi32(_mm256_setzero_si256(), isum); /* -32 Σ sc_g bsums_g */
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
        }
    }
    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(x->d * _cvtsh_ss(b->d)), *acc);
}

/* Eight Q4_0 blocks against one Q8_K block: per 32, Σ (q - 8)·a =
 * maddubs(q, a) - 8 Σa, Σa from the activations' sums of 16; each block's
 * scale applied to its own integer sum. */
static inline __attribute__((always_inline)) void q4_0_blocks_avx2(const kv_block_q4_0 *b, const kv_block_q8_k *x,
                                                                   __m256 *acc, __m128 *mins) {
    const __m128i low4 = _mm_set1_epi8(0x0F);
    const __m256i ones = _mm256_set1_epi16(1);
    float off = 0.0f;
    for (int j = 0; j < 8; j++) {
        const __m128i t = _mm_loadu_si128((const __m128i *)b[j].qs);
        const __m256i q = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(t, 4), low4), _mm_and_si128(t, low4));
        const __m256i a = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * j));
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(q, a), ones);
        const float d = _cvtsh_ss(b[j].d) * x->d;
        *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d), *acc);
        off += d * 8.0f * (float)(x->bsums[2 * j] + x->bsums[2 * j + 1]);
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

static void rows_dot_q8_k_avx2(kvattn_type t, const void *const *rows, int nr, const kv_block_q8_k *x, int nb,
                               float *out) {
    __m256 acc[KV_Q8_K_ROWS];
    __m128 mins[KV_Q8_K_ROWS];
    for (int r = 0; r < KV_Q8_K_ROWS; r++) acc[r] = _mm256_setzero_ps(), mins[r] = _mm_setzero_ps();
    const void *rw[KV_Q8_K_ROWS];
    for (int r = 0; r < KV_Q8_K_ROWS; r++) rw[r] = rows[r < nr ? r : 0]; /* spare lanes repeat row 0, unstored */
    if (t == KVATTN_TYPE_Q5_K)
        for (int i = 0; i < nb; i++) KV_UNROLL for (int r = 0; r < KV_Q8_K_ROWS; r++) {
                const kv_block_q5_k *b = (const kv_block_q5_k *)rw[r] + i;
                kv_prefetch((const unsigned char *)b + Q8_K_AHEAD, sizeof *b);
                q45_k_block_avx2(b->d, b->dmin, b->scales, b->qs, b->qh, x + i, &acc[r], &mins[r]);
            }
    else if (t == KVATTN_TYPE_Q4_0)
        for (int i = 0; i < nb; i++) KV_UNROLL for (int r = 0; r < KV_Q8_K_ROWS; r++) {
                const kv_block_q4_0 *b = (const kv_block_q4_0 *)rw[r] + 8 * i;
                kv_prefetch((const unsigned char *)b + Q8_K_AHEAD, 8 * sizeof *b);
                q4_0_blocks_avx2(b, x + i, &acc[r], &mins[r]);
            }
    else if (t == KVATTN_TYPE_Q4_K)
        for (int i = 0; i < nb; i++) KV_UNROLL for (int r = 0; r < KV_Q8_K_ROWS; r++) {
                const kv_block_q4_k *b = (const kv_block_q4_k *)rw[r] + i;
                kv_prefetch((const unsigned char *)b + Q8_K_AHEAD, sizeof *b);
                q45_k_block_avx2(b->d, b->dmin, b->scales, b->qs, NULL, x + i, &acc[r], &mins[r]);
            }
    else
        for (int i = 0; i < nb; i++) KV_UNROLL for (int r = 0; r < KV_Q8_K_ROWS; r++) {
                const kv_block_q6_k *b = (const kv_block_q6_k *)rw[r] + i;
                kv_prefetch((const unsigned char *)b + Q8_K_AHEAD, sizeof *b);
                q6_k_block_avx2(b, x + i, &acc[r]);
            }
    for (int r = 0; r < nr; r++) out[r] = kv_hsum_avx2(acc[r]) - hsum128(mins[r]);
}
#endif

float kv_quant_row_dot_q8_k(kvattn_type t, const void *row, const kv_block_q8_k *x, int n) {
    float y;
    kv_quant_rows_dot_q8_k(t, &row, 1, x, n, &y);
    return y;
}

void kv_quant_rows_dot_q8_k(kvattn_type t, const void *const *rows, int nr, const kv_block_q8_k *x, int n, float *y) {
#if KV_HAVE_AVX2
    rows_dot_q8_k_avx2(t, rows, nr, x, n / KV_QK_K, y);
#else
    for (int r = 0; r < nr; r++) y[r] = kv_quant_row_dot_q8_k_ref(t, rows[r], x, n);
#endif
}

/* ---- writing ---------------------------------------------------------------- */

int kv_quant_can_write(kvattn_type t) { return t == KVATTN_TYPE_Q4_0 || t == KVATTN_TYPE_Q4_K; }

static void quantize_q4_0(const float *x, kv_block_q4_0 *b) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < KV_QK; j++)
        if (fabsf(x[j]) > amax) amax = fabsf(x[j]), max = x[j];
    const float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    b->d = kv_f32_to_f16(d);
    for (int j = 0; j < 16; j++) {
        const int q0 = (int)(x[j] * id + 8.5f), q1 = (int)(x[j + 16] * id + 8.5f);
        b->qs[j] = (uint8_t)((q0 < 15 ? q0 : 15) | (q1 < 15 ? q1 : 15) << 4);
    }
}

static int nearest(float v, int hi) {
    const int q = (int)lrintf(v);
    return q < 0 ? 0 : q > hi ? hi : q;
}

static void quantize_q4_k(const float *x, kv_block_q4_k *b) {
    float scale[8], minus_min[8], max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 8; j++) {
        float lo = x[32 * j], hi = x[32 * j];
        for (int l = 1; l < 32; l++) lo = fminf(lo, x[32 * j + l]), hi = fmaxf(hi, x[32 * j + l]);
        if (lo > 0.0f) lo = 0.0f; /* the format subtracts a non-negative min */
        scale[j] = (hi - lo) / 15.0f;
        minus_min[j] = -lo;
        max_scale = fmaxf(max_scale, scale[j]);
        max_min = fmaxf(max_min, minus_min[j]);
    }
    const float d = max_scale / 63.0f, dmin = max_min / 63.0f;
    b->d = kv_f32_to_f16(d);
    b->dmin = kv_f32_to_f16(dmin);
    const float dq = kv_f16_to_f32(b->d), mq = kv_f16_to_f32(b->dmin); /* as the reader will see them */
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        ls[j] = (uint8_t)(dq > 0.0f ? nearest(scale[j] / dq, 63) : 0);
        lm[j] = (uint8_t)(mq > 0.0f ? nearest(minus_min[j] / mq, 63) : 0);
    }
    memset(b->scales, 0, sizeof b->scales);
    for (int j = 0; j < 8; j++) { /* scale_min_k4's packing, inverted */
        if (j < 4) {
            b->scales[j] = ls[j];
            b->scales[j + 4] = lm[j];
        } else {
            b->scales[j + 4] = (uint8_t)((ls[j] & 0xF) | (lm[j] & 0xF) << 4);
            b->scales[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            b->scales[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
    for (int j = 0; j < 8; j += 2)
        for (int l = 0; l < 32; l++) {
            int q[2];
            for (int h = 0; h < 2; h++) {
                const float sc = dq * ls[j + h], mn = mq * lm[j + h];
                q[h] = sc > 0.0f ? nearest((x[32 * (j + h) + l] + mn) / sc, 15) : 0;
            }
            b->qs[16 * j + l] = (uint8_t)(q[0] | q[1] << 4);
        }
}

void kv_quantize_row(kvattn_type t, const float *x, void *row, int n) {
    const int qk = kv_quant_block_elems(t);
    for (int i = 0; i + qk <= n; i += qk) {
        if (t == KVATTN_TYPE_Q4_0) quantize_q4_0(x + i, (kv_block_q4_0 *)row + i / qk);
        else if (t == KVATTN_TYPE_Q4_K) quantize_q4_k(x + i, (kv_block_q4_k *)row + i / qk);
    }
}

float kv_quant_row_dot(kvattn_type t, const void *row, const float *x, int n) {
    float block[KV_QK_K];
    const int qk = kv_quant_block_elems(t);
    const size_t bytes = kv_quant_block_bytes(t);
    float s = 0.0f;
    for (int i = 0; i + qk <= n; i += qk) {
        dequant_block(t, (const unsigned char *)row + (size_t)(i / qk) * bytes, block);
        s += kv_dot_f32(block, x + i, qk);
    }
    return s;
}
