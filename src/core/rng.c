/* The generator of rng.h for callers of the public API (the CLI's synthetic weights). */
#include "rng.h"
#include "internal.h"

void kvattn_random_fill(uint64_t *state, float *x, size_t n, float scale) {
    kv_rng r = {*state};
    kv_rng_fill(&r, x, n, scale);
    *state = r.s;
}
