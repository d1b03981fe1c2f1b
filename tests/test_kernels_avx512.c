/* The 512-bit primitives under the kernels' tables, against their twins:
 * compiled for AVX-512 (tests/CMakeLists.txt), run by test_kernels only where
 * the CPU has it. */
#include "test_util.h"

#include "kernels/tile.h"

#include <stdlib.h>
#include <string.h>

_Static_assert(KV_HAVE_AVX512, "test_kernels_avx512.c must be compiled for AVX-512");

/* The 16-way horizontal sum behind the 512-bit score blocks: lane i = Σ u[i]. */
static void test_hsum16(void) {
    test_rng r = {5};
    __m512 u[16];
    float in[16][16], want[16], got[16];
    for (int i = 0; i < 16; i++) {
        want[i] = 0.0f;
        for (int l = 0; l < 16; l++) want[i] += in[i][l] = (float)test_randint(&r, -1000, 1000); /* exact sums */
        u[i] = _mm512_loadu_ps(in[i]);
    }
    _mm512_storeu_ps(got, kv_hsum16_avx512(u));
    int bad = 0;
    for (int i = 0; i < 16; i++) bad += got[i] != want[i];
    CHECK(bad == 0, "kv_hsum16_avx512: %d of 16 lanes wrong", bad);
}

/* q8_0 block scales of a tile: the gather (rows back to back) and the
 * per-block loop (rows further apart) against the twin, exactly; 1 to 70 rows,
 * 1 to 40 blocks, counts with and without a tail of fewer than 16 scales. */
static void test_q8_0_scales(void) {
    test_rng r = {17};
    for (int it = 0; it < 60; it++) {
        const int N = test_randint(&r, 1, 70), nb = test_randint(&r, 1, 40), d = nb * 32;
        const size_t rb = kvattn_row_bytes(KVATTN_TYPE_Q8_0, d) + (it % 2 ? 0 : 2 * (size_t)test_randint(&r, 1, 20));
        unsigned char *rows = malloc(rb * N);
        float *row = malloc(sizeof(float) * d), *s1 = malloc(sizeof(float) * N * nb),
              *s2 = malloc(sizeof(float) * N * nb);
        for (int j = 0; j < N; j++) {
            test_fill(&r, row, (size_t)d, 4.0f * test_uniform(&r) + 0.01f);
            kv_row_store(KVATTN_TYPE_Q8_0, row, rows + (size_t)j * rb, d);
        }
        kv_q8_0_scales(rows, rb, N, nb, s1);
        kv_q8_0_scales_ref(rows, rb, N, nb, s2);
        CHECK(memcmp(s1, s2, sizeof(float) * N * nb) == 0, "q8_0 scales N=%d blocks=%d stride=%zu: exact", N, nb, rb);
        free(rows), free(row), free(s1), free(s2);
    }
}

void test_kernels_avx512(void) {
    test_hsum16();
    test_q8_0_scales();
}
