/* One level's table of kernels, defined by the file that includes this one:
 * isa_scalar.c, isa_avx2.c and isa_avx512.c each name the table
 * (KV_KERNEL_TABLE) and its level (KV_KERNEL_ISA), and CMakeLists.txt compiles
 * each for its level, so that the SIMD paths of vec.h, tile.h,
 * matmul_kernels.h, panel_kernels.h and quants_isa.h chosen by the compiler's target macros
 * are that level's. */
#include "kernels.h"
#include "matmul_kernels.h"
#include "measure_isa.h"
#include "panel_kernels.h"
#include "quants_isa.h"

const kv_kernels KV_KERNEL_TABLE = {
    .isa = KV_KERNEL_ISA,
    .simd_bits = KV_SIMD_BITS,
    .dot_f32 = isa_dot_f32,
    .row_dot = isa_row_dot,
    .row_axpy = isa_row_axpy,
    .row_load = isa_row_load,
    .scale_max = isa_scale_max,
    .exp_shift_sum = isa_exp_shift_sum,
    .tile_scores = isa_tile_scores,
    .tile_accum = isa_tile_accum,
    .tile_scores_f32 = isa_tile_scores_f32,
    .tile_accum_f32 = isa_tile_accum_f32,
    .q16_ok = isa_q16_ok,
    .q16_pack = isa_q16_pack,
    .q16_widen = isa_q16_widen,
    .q16_scores = isa_q16_scores,
    .q16_softmax = isa_q16_softmax,
    .q16_accum = isa_q16_accum,
    .rows_dot = isa_rows_dot,
    .rows_dot_tokens = isa_rows_dot_tokens,
    .rows_dot_tokens_block = KV_HAVE_AVX512 ? 4 : 1,
    .rows_axpy = isa_rows_axpy,
    .gemm_micro = KV_HAVE_AVX512 ? isa_gemm_micro : NULL,
    .panel_block = isa_panel_block,
    .quantize_q8_k = isa_quantize_q8_k,
    .quantize_q8_k_residual = isa_quantize_q8_k_residual,
#if KV_HAVE_VNNI
    .q4_k_x16_dot = isa_q4_k_x16_dot,
#endif
    .quant_rows_dot_q8_k = isa_quant_rows_dot_q8_k,
#if KV_HAVE_AVX512
    .quant_rows_dot_q8_k_512 = isa_quant_rows_dot_q8_k_512,
#endif
    .quantize_q16_32 = isa_quantize_q16_32,
    .q8_0_rows_dot_q16 = isa_q8_0_rows_dot_q16,
    .sum_streams = isa_sum_streams,
    .fma_chains = isa_fma_chains,
};
