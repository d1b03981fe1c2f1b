/* The kernels for AVX-512 with AVX512_VNNI (Ice Lake, Sapphire Rapids, Zen 4
 * and later): the 512-bit kernels, with the integer dot products of quantized
 * weights on vpdpbusd. CMakeLists.txt compiles this file with isa_avx512.c's
 * flags and -mavx512vnni. */
#define KV_KERNEL_TABLE kv_kernels_avx512_vnni
#define KV_KERNEL_ISA   KV_ISA_AVX512_VNNI
#include "kernel_table_def.h"

_Static_assert(KV_HAVE_VNNI, "isa_avx512vnni.c must be compiled for AVX-512 with AVX512_VNNI");
