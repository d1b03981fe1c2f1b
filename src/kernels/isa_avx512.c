/* The kernels for AVX-512 F + BW + DQ + VL (Skylake-SP, Zen 4 and later), with
 * the AVX2 paths for the shapes the 512-bit ones do not take. CMakeLists.txt
 * compiles this file with -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512dq
 * -mavx512vl. */
#define KV_KERNEL_TABLE kv_kernels_avx512
#define KV_KERNEL_ISA   KV_ISA_AVX512
#include "kernel_table_def.h"

_Static_assert(KV_HAVE_AVX512 && !KV_HAVE_VNNI, "isa_avx512.c must be compiled for AVX-512 F, BW, DQ and VL");
