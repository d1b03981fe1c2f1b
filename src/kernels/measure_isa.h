/* The kernels that measure the machine (bench.c): a read of far-apart
 * streams and a chain of FMAs, each at the width of its level's kernels, so
 * that the bounds the benchmark compares with are the ones they can reach. */
#ifndef KVATTN_MEASURE_ISA_H
#define KVATTN_MEASURE_ISA_H

#include "vec.h"

/* Σ of `streams` parts of `per` floats each (a multiple of 16) from base,
 * per apart, read a cache line from each in turn; base 32-byte aligned. */
static inline float isa_sum_streams(const float *base, size_t per, int streams) {
    float total = 0.0f;
#if KV_HAVE_AVX2
    __m256 acc = _mm256_setzero_ps(), acc2 = acc;
#endif
    for (size_t i = 0; i < per; i += 16)
        for (int s = 0; s < streams; s++) {
            const float *p = base + (size_t)s * per + i;
#if KV_HAVE_AVX2
            acc = _mm256_add_ps(acc, _mm256_load_ps(p));
            acc2 = _mm256_add_ps(acc2, _mm256_load_ps(p + 8));
#else
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (int k = 0; k < 16; k += 4) s0 += p[k], s1 += p[k + 1], s2 += p[k + 2], s3 += p[k + 3];
            total += s0 + s1 + s2 + s3;
#endif
        }
#if KV_HAVE_AVX2
    total += kv_hsum_avx2(_mm256_add_ps(acc, acc2));
#endif
    return total;
}

/* 12 independent chains of `iters` FMAs each, all in registers, at the
 * level's widest vector (KV_SIMD_BITS); returns their sum so they stay. */
static inline double isa_fma_chains(long iters) {
#if KV_HAVE_AVX512
    __m512 a[12], m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int k = 0; k < 12; k++) a[k] = _mm512_set1_ps((float)k);
    for (long i = 0; i < iters; i++)
        for (int k = 0; k < 12; k++) a[k] = _mm512_fmadd_ps(a[k], m, c);
    __m512 s = a[0];
    for (int k = 1; k < 12; k++) s = _mm512_add_ps(s, a[k]);
    return _mm512_reduce_add_ps(s);
#elif KV_HAVE_AVX2
    __m256 a[12], m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int k = 0; k < 12; k++) a[k] = _mm256_set1_ps((float)k);
    for (long i = 0; i < iters; i++)
        for (int k = 0; k < 12; k++) a[k] = _mm256_fmadd_ps(a[k], m, c);
    __m256 s = a[0];
    for (int k = 1; k < 12; k++) s = _mm256_add_ps(s, a[k]);
    return kv_hsum_avx2(s);
#else
    float a[12];
    for (int k = 0; k < 12; k++) a[k] = (float)k;
    for (long i = 0; i < iters; i++)
        for (int k = 0; k < 12; k++) a[k] = fmaf(a[k], 0.999999f, 1e-7f);
    double sink = 0.0;
    for (int k = 0; k < 12; k++) sink += a[k];
    return sink;
#endif
}

#endif
