/* The kernels for AVX2 + FMA + F16C (Haswell, Zen 1 and later). CMakeLists.txt
 * compiles this file with -mavx2 -mfma -mf16c. */
#define KV_KERNEL_TABLE kv_kernels_avx2
#define KV_KERNEL_ISA   KV_ISA_AVX2
#include "kernel_table_def.h"

_Static_assert(KV_HAVE_AVX2 && !KV_HAVE_AVX512, "isa_avx2.c must be compiled for AVX2 + FMA + F16C");
