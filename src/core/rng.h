/* kvattn's one pseudo-random generator: xorshift64 (Marsaglia 2003), for
 * synthetic weights, random caches, test data and sampling. Deterministic per
 * seed on every machine; not for anything secret. */
#ifndef KVATTN_RNG_H
#define KVATTN_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s; /* 0 stands for KV_RNG_DEFAULT_SEED: xorshift never leaves 0 */
} kv_rng;

#define KV_RNG_DEFAULT_SEED 0x9e3779b97f4a7c15ull

static inline uint64_t kv_rng_next(kv_rng *r) {
    uint64_t s = r->s ? r->s : KV_RNG_DEFAULT_SEED;
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    r->s = s;
    return s;
}

/* splitmix64's finalizer: every bit of x moves every bit of the result. */
static inline uint64_t kv_mix64(uint64_t x) {
    x ^= x >> 30, x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27, x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* A generator for a user's seed. xorshift's first outputs from a small seed
 * are small (seed 1234 first draws 2^-24 of the unit), and neighbouring seeds
 * draw the same first numbers (it is linear over XOR: the states of seeds a
 * and b differ by the state seed a ^ b would have, small at first), so the
 * seed is mixed first. */
static inline kv_rng kv_rng_seeded(uint64_t seed) {
    const uint64_t s = kv_mix64(seed);
    return (kv_rng){s ? s : KV_RNG_DEFAULT_SEED};
}

/* Uniform in [0, 1), 24 bits. */
static inline float kv_rng_unit(kv_rng *r) { return (float)(kv_rng_next(r) >> 40) * (1.0f / 16777216.0f); }

/* Uniform in [-1, 1), 24 bits. */
static inline float kv_rng_uniform(kv_rng *r) { return (float)(kv_rng_next(r) >> 40) * (2.0f / 16777216.0f) - 1.0f; }

/* x[i] uniform in [-scale, scale). */
static inline void kv_rng_fill(kv_rng *r, float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * kv_rng_uniform(r);
}

#endif
