/* Vector helpers used by every kernel: dot products and axpy over rows
 * stored in any cache element type. Each has a plain scalar twin (suffix
 * _ref) that tests compare the SIMD path with. The isa_ functions take the
 * SIMD path of the level the including file is compiled for (KV_HAVE_*): only
 * the isa_*.c files of kernel_table_def.h call them; everything else calls
 * their kernels.h wrappers, which reach the level chosen at run time.
 *
 * Element types handled here: f32, f16, bf16, q8_0 (the cache types), and
 * through quants.h the block-quantized weight types of GGUF files. */
#ifndef KVATTN_VEC_H
#define KVATTN_VEC_H

#include "convert.h"
#include "kvattn.h"
#include "prefetch.h"
#include "quants.h"

#include <math.h>
#include <stddef.h>

#if defined(__AVX__) || defined(__F16C__)
#include <immintrin.h>
#endif
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define KV_HAVE_AVX2 1
#else
#define KV_HAVE_AVX2 0
#endif
/* 512-bit paths where the compiler targets AVX-512 (F + BW + VL + DQ); they
 * keep the AVX2 path as their fallback for shapes they do not take. */
#if KV_HAVE_AVX2 && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512DQ__)
#define KV_HAVE_AVX512 1
#else
#define KV_HAVE_AVX512 0
#endif
/* AVX512_VNNI's integer dot products (vpdpbusd) where the compiler targets them. */
#if KV_HAVE_AVX512 && defined(__AVX512VNNI__)
#define KV_HAVE_VNNI 1
#else
#define KV_HAVE_VNNI 0
#endif
/* Fully unrolls the loop that follows (a small constant trip count): register
 * blocks index their accumulators by the loop variables, and a loop the
 * compiler keeps rolled leaves them in memory, a load and a store per FMA. */
#if defined(__clang__)
#define KV_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define KV_UNROLL _Pragma("GCC unroll 16")
#else
#define KV_UNROLL
#endif
/* Keeps a register-blocked kernel a function of its own: inlined into the
 * attention loop, the compiler's allocation across the whole loop left
 * accumulators of the blocks on the stack (a store-to-load chain per FMA). */
#if defined(__GNUC__)
#define KV_NOINLINE __attribute__((noinline, unused))
#else
#define KV_NOINLINE
#endif

/* Width in bits of the widest FMA the kernels use (the bench's peak is measured at it). */
#define KV_SIMD_BITS (KV_HAVE_AVX512 ? 512 : KV_HAVE_AVX2 ? 256 : 32)

/* ---- scalar twins ------------------------------------------------------- */

/* Element i of a row of type t, as f32. */
static inline float kv_row_get_ref(kvattn_type t, const void *row, int i) {
    switch (t) {
    case KVATTN_TYPE_F32: return ((const float *)row)[i];
    case KVATTN_TYPE_F16: return kv_f16_to_f32(((const uint16_t *)row)[i]);
    case KVATTN_TYPE_BF16: return kv_bf16_to_f32(((const uint16_t *)row)[i]);
    case KVATTN_TYPE_Q8_0: {
        const kv_block_q8_0 *b = (const kv_block_q8_0 *)row + i / KV_Q8_0_BLOCK;
        return kv_f16_to_f32(b->d) * (float)b->qs[i % KV_Q8_0_BLOCK];
    }
    default: return kv_is_block_quant(t) ? kv_quant_get_ref(t, row, i) : NAN;
    }
}

static inline float kv_dot_f32_ref(const float *a, const float *b, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static inline float kv_row_dot_ref(kvattn_type t, const void *row, const float *x, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += kv_row_get_ref(t, row, i) * x[i];
    return s;
}

static inline void kv_row_axpy_ref(kvattn_type t, const void *row, float a, float *y, int n) {
    for (int i = 0; i < n; i++) y[i] += a * kv_row_get_ref(t, row, i);
}

static inline void kv_row_load_ref(kvattn_type t, const void *row, float *y, int n) {
    for (int i = 0; i < n; i++) y[i] = kv_row_get_ref(t, row, i);
}

/* Converts n floats into a row of type t (q8_0: per block d = max|x|/127,
 * q = round(x/d); the unused tail of a last partial block is zero). */
static inline void kv_row_store(kvattn_type t, const float *x, void *row, int n) {
    switch (t) {
    case KVATTN_TYPE_F32: memcpy(row, x, (size_t)n * sizeof(float)); break;
    case KVATTN_TYPE_F16: {
        int i = 0;
#if defined(__F16C__) && defined(__AVX__)
        for (; i + 8 <= n; i += 8) /* the instruction rounds to nearest even, as the scalar code */
            _mm_storeu_si128((__m128i *)((uint16_t *)row + i),
                             _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
#endif
        for (; i < n; i++) ((uint16_t *)row)[i] = kv_f32_to_f16(x[i]);
        break;
    }
    case KVATTN_TYPE_BF16:
        for (int i = 0; i < n; i++) ((uint16_t *)row)[i] = kv_f32_to_bf16(x[i]);
        break;
    case KVATTN_TYPE_Q8_0: {
        kv_block_q8_0 *blocks = (kv_block_q8_0 *)row;
        for (int b0 = 0; b0 < n; b0 += KV_Q8_0_BLOCK) {
            int len = n - b0 < KV_Q8_0_BLOCK ? n - b0 : KV_Q8_0_BLOCK;
            float amax = 0.0f;
            for (int i = 0; i < len; i++) amax = fmaxf(amax, fabsf(x[b0 + i]));
            float d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
            kv_block_q8_0 *b = &blocks[b0 / KV_Q8_0_BLOCK];
            b->d = kv_f32_to_f16(d);
            for (int i = 0; i < KV_Q8_0_BLOCK; i++) b->qs[i] = i < len ? (int8_t)lrintf(x[b0 + i] * id) : 0;
        }
        break;
    }
    default:
        if (kv_quant_can_write(t)) kv_quantize_row(t, x, row, n); /* whole blocks: the caller checks */
        break;
    }
}

/* ---- SIMD paths ---------------------------------------------------------- */

#if KV_HAVE_AVX2
static inline float kv_hsum_avx2(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
    return _mm_cvtss_f32(lo);
}

/* 8 elements of a row stored as t at element c, as f32 (q8_0: c % 8 == 0). */
static inline __m256 kv_load8_avx2(kvattn_type t, const unsigned char *row, int c) {
    if (t == KVATTN_TYPE_F32) return _mm256_loadu_ps((const float *)row + c);
    if (t == KVATTN_TYPE_Q8_0) {
        const kv_block_q8_0 *b = (const kv_block_q8_0 *)row + c / KV_Q8_0_BLOCK;
        __m256 q =
            _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(b->qs + c % KV_Q8_0_BLOCK))));
        return _mm256_mul_ps(q, _mm256_set1_ps(_cvtsh_ss(b->d)));
    }
    __m128i h = _mm_loadu_si128((const __m128i *)(row + 2 * (size_t)c));
    return t == KVATTN_TYPE_F16 ? _mm256_cvtph_ps(h)
                                : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* The 32 quants of a q8_0 block as four vectors of 8 floats. */
static inline void kv_q8_0_unpack(const kv_block_q8_0 *b, __m256 q[4]) {
    for (int j = 0; j < 4; j++) {
        __m128i b8 = _mm_loadl_epi64((const __m128i *)(b->qs + 8 * j));
        q[j] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b8));
    }
}
#endif

#if KV_HAVE_AVX512
/* 16 q8_0 quants at qs, times their block's scale, as f32. */
static inline __m512 kv_q8_0_widen16_avx512(const int8_t *qs, __m512 scale) {
    return _mm512_mul_ps(scale, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)qs))));
}

/* 16 elements of a row at element c, as f32: f32/f16/bf16 at any c, q8_0 at c % 16 == 0. */
static inline __m512 kv_load16_avx512(kvattn_type t, const unsigned char *row, int c) {
    if (t == KVATTN_TYPE_F32) return _mm512_loadu_ps((const float *)row + c);
    if (t == KVATTN_TYPE_Q8_0) {
        const kv_block_q8_0 *b = (const kv_block_q8_0 *)row + c / KV_Q8_0_BLOCK;
        return kv_q8_0_widen16_avx512(b->qs + c % KV_Q8_0_BLOCK, _mm512_set1_ps(_cvtsh_ss(b->d)));
    }
    __m256i h = _mm256_loadu_si256((const __m256i *)(row + 2 * (size_t)c));
    return t == KVATTN_TYPE_F16 ? _mm512_cvtph_ps(h)
                                : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
#endif

#if KV_HAVE_AVX2
/* e^x for 8 lanes: x = n·ln2 + r with |r| ≤ ln2/2, e^r by a degree-6
 * polynomial, 2^n by exponent bits; ≈2 ulp; 0 below -87.3, inf above 88.7. */
static inline __m256 kv_exp_avx2(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.7f), lo = _mm256_set1_ps(-87.3f);
    __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x); /* ln2 in two parts, exact product */
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187045e-06f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}
#endif

#if KV_HAVE_AVX512
/* A 512-bit vector's two 256-bit halves added. */
static inline __m256 kv_fold_avx512(__m512 v) {
    return _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

/* kv_exp_avx2 on 16 lanes: the same reduction and polynomial. */
static inline __m512 kv_exp_avx512(__m512 x) {
    const __m512 hi = _mm512_set1_ps(88.7f), lo = _mm512_set1_ps(-87.3f);
    __mmask16 keep = (__mmask16)~_mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ); /* 0 below -87.3, as kv_exp_avx2 */
    x = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_maskz_mul_ps(keep, p, _mm512_castsi512_ps(e));
}
#endif

/* x[i] *= a, returning max x[i] (starting from m); the softmax's first pass. */
static inline float kv_scale_max_ref(float *x, float a, float m, int n) {
    for (int i = 0; i < n; i++) {
        x[i] *= a;
        m = x[i] > m ? x[i] : m;
    }
    return m;
}

static inline float isa_scale_max(float *x, float a, float m, int n) {
#if KV_HAVE_AVX2
    int i = 0;
#if KV_HAVE_AVX512
    __m512 wa = _mm512_set1_ps(a), wm = _mm512_set1_ps(m);
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + i), wa);
        _mm512_storeu_ps(x + i, v);
        wm = _mm512_max_ps(wm, v);
    }
    m = _mm512_reduce_max_ps(wm);
#endif
    __m256 va = _mm256_set1_ps(a), vm = _mm256_set1_ps(m);
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), va);
        _mm256_storeu_ps(x + i, v);
        vm = _mm256_max_ps(vm, v);
    }
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(vm), _mm256_extractf128_ps(vm, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    m = _mm_cvtss_f32(h);
    for (; i < n; i++) {
        x[i] *= a;
        m = x[i] > m ? x[i] : m;
    }
    return m;
#else
    return kv_scale_max_ref(x, a, m, n);
#endif
}

/* y[i] = e^(x[i] - shift), returning Σ y; the softmax step. */
static inline float kv_exp_shift_sum_ref(const float *x, float shift, float *y, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += y[i] = expf(x[i] - shift);
    return s;
}

static inline float isa_exp_shift_sum(const float *x, float shift, float *y, int n) {
#if KV_HAVE_AVX2
    __m256 acc = _mm256_setzero_ps(), sh = _mm256_set1_ps(shift);
    int i = 0;
#if KV_HAVE_AVX512
    __m512 acc16 = _mm512_setzero_ps(), sh16 = _mm512_set1_ps(shift);
    for (; i + 16 <= n; i += 16) {
        __m512 e = kv_exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(x + i), sh16));
        _mm512_storeu_ps(y + i, e);
        acc16 = _mm512_add_ps(acc16, e);
    }
    acc = kv_fold_avx512(acc16);
#endif
    for (; i + 8 <= n; i += 8) {
        __m256 e = kv_exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i), sh));
        _mm256_storeu_ps(y + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    float s = kv_hsum_avx2(acc);
    for (; i < n; i++) s += y[i] = expf(x[i] - shift);
    return s;
#else
    return kv_exp_shift_sum_ref(x, shift, y, n);
#endif
}

static inline float isa_dot_f32(const float *a, const float *b, int n) {
#if KV_HAVE_AVX2
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = kv_hsum_avx2(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
#else
    return kv_dot_f32_ref(a, b, n);
#endif
}

/* Σ row[i]·x[i] over n elements of a block-quantized row, a block decoded at a time. */
static inline float isa_quant_row_dot(kvattn_type t, const void *row, const float *x, int n) {
    float block[KV_QK_K];
    const int qk = kv_quant_block_elems(t);
    const size_t bytes = kv_quant_block_bytes(t);
    float s = 0.0f;
    for (int i = 0; i + qk <= n; i += qk) {
        kv_dequant_row_ref(t, (const unsigned char *)row + (size_t)(i / qk) * bytes, block, qk);
        s += isa_dot_f32(block, x + i, qk);
    }
    return s;
}

/* Σ row[i]·x[i] for a stored row of type t. */
static inline float isa_row_dot(kvattn_type t, const void *row, const float *x, int n) {
    if (kv_is_block_quant(t)) return isa_quant_row_dot(t, row, x, n);
#if KV_HAVE_AVX2
    if (t == KVATTN_TYPE_Q8_0) {
        const kv_block_q8_0 *b = (const kv_block_q8_0 *)row;
        __m256 acc = _mm256_setzero_ps();
        int i = 0;
        for (; i + KV_Q8_0_BLOCK <= n; i += KV_Q8_0_BLOCK, b++) {
            __m256 q[4];
            kv_q8_0_unpack(b, q);
            __m256 s = _mm256_mul_ps(q[0], _mm256_loadu_ps(x + i));
            s = _mm256_fmadd_ps(q[1], _mm256_loadu_ps(x + i + 8), s);
            s = _mm256_fmadd_ps(q[2], _mm256_loadu_ps(x + i + 16), s);
            s = _mm256_fmadd_ps(q[3], _mm256_loadu_ps(x + i + 24), s);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(b->d)), s, acc);
        }
        float s = kv_hsum_avx2(acc);
        for (; i < n; i++) s += kv_row_get_ref(t, row, i) * x[i];
        return s;
    }
    if (t == KVATTN_TYPE_F32) return isa_dot_f32((const float *)row, x, n);
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(kv_load8_avx2(t, row, i), _mm256_loadu_ps(x + i), s0);
        s1 = _mm256_fmadd_ps(kv_load8_avx2(t, row, i + 8), _mm256_loadu_ps(x + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(kv_load8_avx2(t, row, i), _mm256_loadu_ps(x + i), s0);
    float s = kv_hsum_avx2(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += kv_row_get_ref(t, row, i) * x[i];
    return s;
#else
    return kv_row_dot_ref(t, row, x, n);
#endif
}

/* y[i] += a·row[i] for a stored row of type t. */
static inline void isa_row_axpy(kvattn_type t, const void *row, float a, float *y, int n) {
    if (kv_is_block_quant(t)) { /* a block decoded at a time */
        float block[KV_QK_K];
        const int qk = kv_quant_block_elems(t);
        for (int i = 0; i + qk <= n; i += qk) {
            kv_dequant_row_ref(t, (const unsigned char *)row + (size_t)(i / qk) * kv_quant_block_bytes(t), block, qk);
            for (int j = 0; j < qk; j++) y[i + j] += a * block[j];
        }
        return;
    }
#if KV_HAVE_AVX2
    __m256 va = _mm256_set1_ps(a);
    int i = 0;
    if (t == KVATTN_TYPE_Q8_0) {
        const kv_block_q8_0 *b = (const kv_block_q8_0 *)row;
        for (; i + KV_Q8_0_BLOCK <= n; i += KV_Q8_0_BLOCK, b++) {
            __m256 q[4];
            kv_q8_0_unpack(b, q);
            __m256 ad = _mm256_mul_ps(va, _mm256_set1_ps(_cvtsh_ss(b->d)));
            for (int j = 0; j < 4; j++)
                _mm256_storeu_ps(y + i + 8 * j, _mm256_fmadd_ps(ad, q[j], _mm256_loadu_ps(y + i + 8 * j)));
        }
    } else {
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, kv_load8_avx2(t, row, i), _mm256_loadu_ps(y + i)));
    }
    for (; i < n; i++) y[i] += a * kv_row_get_ref(t, row, i);
#else
    kv_row_axpy_ref(t, row, a, y, n);
#endif
}

/* Row of n elements of type t into f32 (SIMD where the type allows). */
static inline void isa_row_load(kvattn_type t, const void *row, float *y, int n) {
    if (kv_is_block_quant(t)) {
        kv_dequant_row_ref(t, row, y, n);
        return;
    }
#if KV_HAVE_AVX2
    int i = 0;
    if (t == KVATTN_TYPE_F32) {
        memcpy(y, row, sizeof(float) * (size_t)n);
        return;
    }
    if (t == KVATTN_TYPE_Q8_0) {
        const kv_block_q8_0 *b = (const kv_block_q8_0 *)row;
        for (; i + KV_Q8_0_BLOCK <= n; i += KV_Q8_0_BLOCK, b++) {
            __m256 q[4], d = _mm256_set1_ps(_cvtsh_ss(b->d));
            kv_q8_0_unpack(b, q);
            for (int j = 0; j < 4; j++) _mm256_storeu_ps(y + i + 8 * j, _mm256_mul_ps(d, q[j]));
        }
    } else {
#if KV_HAVE_AVX512
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, kv_load16_avx512(t, (const unsigned char *)row, i));
#endif
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, kv_load8_avx2(t, row, i));
    }
    for (; i < n; i++) y[i] = kv_row_get_ref(t, row, i);
#else
    kv_row_load_ref(t, row, y, n);
#endif
}

#endif
