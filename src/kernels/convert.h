/* Scalar element conversions: f16 and bf16 (round to nearest even), and the
 * q8_0 block layout. These are the reference the SIMD paths must match. */
#ifndef KVATTN_CONVERT_H
#define KVATTN_CONVERT_H

#include <stdint.h>
#include <string.h>

#define KV_Q8_0_BLOCK 32
#define KV_Q4_0_BLOCK 32

/* One q8_0 block: x[i] ≈ d · qs[i]. 34 bytes, no padding. */
typedef struct {
    uint16_t d; /* f16 scale */
    int8_t qs[KV_Q8_0_BLOCK];
} kv_block_q8_0;

_Static_assert(sizeof(kv_block_q8_0) == 34, "q8_0 block must be 34 bytes");

static inline uint32_t kv_f32_bits(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    return x;
}

static inline float kv_bits_f32(uint32_t x) {
    float f;
    memcpy(&f, &x, 4);
    return f;
}

static inline uint16_t kv_f32_to_f16(float f) {
    uint32_t x = kv_f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t exp = (x >> 23) & 0xffu;
    uint32_t mant = x & 0x7fffffu;
    if (exp == 0xffu) /* inf or nan (keep nan quiet) */
        return (uint16_t)(sign | 0x7c00u | (mant ? 0x200u | (mant >> 13) : 0u));
    int e = (int)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) { /* half subnormal: h = M >> (14 - e), M the 24-bit significand */
        if (e < -10) return (uint16_t)sign;
        mant |= 0x800000u;
        int shift = 14 - e;
        uint32_t h = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1u), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1u))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)e << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++; /* a carry may round up to inf: correct */
    return (uint16_t)(sign | h);
}

static inline float kv_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        float v = (float)mant * 5.9604644775390625e-8f; /* 2^-24 */
        return sign ? -v : v;
    }
    if (exp == 31) return kv_bits_f32(sign | 0x7f800000u | (mant << 13));
    return kv_bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

static inline uint16_t kv_f32_to_bf16(float f) {
    uint32_t x = kv_f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet nan */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

static inline float kv_bf16_to_f32(uint16_t h) { return kv_bits_f32((uint32_t)h << 16); }

#endif
