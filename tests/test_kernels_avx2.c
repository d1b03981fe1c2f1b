/* The AVX2 level's primitives against their scalar twins: compiled with
 * -mavx2 -mfma -mf16c (tests/CMakeLists.txt), run by test_kernels only where
 * the CPU has them. */
#include "test_util.h"

#include "kernels/vec.h"

#include <math.h>

_Static_assert(KV_HAVE_AVX2, "test_kernels_avx2.c must be compiled for AVX2 + FMA + F16C");

void test_kernels_avx2(void) {
    /* The F16C instruction and the scalar conversion agree bit for bit. */
    test_rng r = {99};
    int mismatches = 0;
    for (int i = 0; i < 200000; i++) {
        float f = ldexpf(test_uniform(&r), test_randint(&r, -30, 17));
        uint16_t hw = (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
        mismatches += hw != kv_f32_to_f16(f);
        mismatches += _cvtsh_ss(hw) != kv_f16_to_f32(hw);
    }
    CHECK(mismatches == 0, "%d F16C vs scalar conversion mismatches", mismatches);
}
