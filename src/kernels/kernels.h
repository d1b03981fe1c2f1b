/* The kernels, chosen at run time: one table of them per instruction-set
 * level (isa_scalar.c, isa_avx2.c, isa_avx512.c, isa_avx512vnni.c, each
 * compiled for its level),
 * and the table in use picked at start-up as the best level this CPU and OS
 * support, or the lower one KVATTN_ISA names (dispatch.c). Code outside
 * src/kernels calls the kernels through the wrappers below; their scalar
 * twins (_ref) are in vec.h, tile.h, matmul_kernels.h, panel_kernels.h and
 * quants.h, and what each kernel computes is documented beside its isa_ body
 * there. */
#ifndef KVATTN_KERNELS_H
#define KVATTN_KERNELS_H

#include "cpu.h"
#include "kvattn.h"
#include "prefetch.h"
#include "quants.h"

#include <stddef.h>

typedef struct {
    kv_isa isa;
    int simd_bits; /* the widest FMA the kernels use */
    /* rows of any stored type against f32 vectors (vec.h) */
    float (*dot_f32)(const float *a, const float *b, int n);
    float (*row_dot)(kvattn_type t, const void *row, const float *x, int n);
    void (*row_axpy)(kvattn_type t, const void *row, float a, float *y, int n);
    void (*row_load)(kvattn_type t, const void *row, float *y, int n);
    float (*scale_max)(float *x, float a, float m, int n);
    float (*exp_shift_sum)(const float *x, float shift, float *y, int n);
    /* the attention's tiles (tile.h) */
    void (*tile_scores)(const float *Q, int ldq, int G, kvattn_type t, const unsigned char *K, size_t stride, int N,
                        int d, float *S, int lds, const kv_prefetch_spans *pf);
    void (*tile_accum)(const float *P, int ldp, int G, kvattn_type t, const unsigned char *V, size_t stride, int N,
                       int d, float *O, int ldo, const kv_prefetch_spans *pf);
    void (*tile_scores_f32)(const float *Q, int ldq, int G, const float *K, int ldk, int N, int d, float *S, int lds);
    void (*tile_accum_f32)(const float *P, int ldp, int G, const float *V, int ldv, int N, int d, float *O, int ldo);
    int (*q16_ok)(kvattn_type t, int G, int kd, int vd);
    void (*q16_pack)(const float *Q, int ldq, int d, float *Qt);
    void (*q16_widen)(kvattn_type t, const unsigned char *rows, size_t stride, int N, int d, float *W);
    void (*q16_scores)(const float *Qt, kvattn_type t, const unsigned char *K, size_t stride, int N, int d, float *St,
                       const kv_prefetch_spans *pf, unsigned *pi);
    void (*q16_softmax)(float *St, int N, float scale, float *m, float *l, float *corr);
    void (*q16_accum)(const float *St, kvattn_type t, const unsigned char *V, size_t stride, int N, int d, float *O,
                      int ldo, const kv_prefetch_spans *pf, unsigned *pi);
    /* the projections (matmul_kernels.h, quants_isa.h) */
    void (*rows_dot)(kvattn_type t, const unsigned char *const *rows, int nr, const float *x, int k, float *y);
    /* rows_dot for ntok tokens (x and y of row strides ldx, ldy), each with rows_dot's bits,
     * prefetching pf's lines from take *pi on as it goes */
    void (*rows_dot_tokens)(kvattn_type t, const unsigned char *const *rows, int nr, const float *x, int ldx, int ntok,
                            int k, float *y, int ldy, const kv_prefetch_spans *pf, unsigned *pi);
    int rows_dot_tokens_block; /* tokens an f32/f16/bf16 row load serves there (1: one at a time) */
    void (*rows_axpy)(kvattn_type t, const unsigned char *const *rows, int nr, const float *a, float *y, int n);
    /* NULL where the level has no register-blocked GEMM (the prefill's tiles then do better) */
    void (*gemm_micro)(const float *w, int ldw, const float *xt, int ldx, int kc, int nv, float *C);
    /* f16/bf16 weights packed in panels against nt tokens (panel_kernels.h) */
    void (*panel_block)(kvattn_type t, const unsigned char *panels, size_t stride, int np, const float *x, int ldx,
                        int nt, int kc, float *y, int ldy, int accumulate);
    void (*quantize_q8_k)(const float *x, kv_block_q8_k *y, int n);
    void (*quantize_q8_k_residual)(const float *x, const kv_block_q8_k *xq, kv_block_q8_k *xl, int n);
    /* Q4_K rows in groups of 16 (kv_q4_k_x16_dot_ref); NULL where the level has no such kernel,
     * and then the rows are not repacked */
    void (*q4_k_x16_dot)(const kv_block_q4_k_x16 *g, int nb, const kv_block_q8_k *x, const kv_block_q8_k *xl,
                         const int32_t *msums, float *y);
    void (*quant_rows_dot_q8_k)(kvattn_type t, const void *const *rows, int nr, const kv_block_q8_k *x,
                                const kv_block_q8_k *xl, int n, float *y);
    /* quant_rows_dot_q8_k with its 512-bit block kernels, which it runs where they measure faster
     * (the same bits); NULL below AVX-512 */
    void (*quant_rows_dot_q8_k_512)(kvattn_type t, const void *const *rows, int nr, const kv_block_q8_k *x,
                                    const kv_block_q8_k *xl, int n, float *y);
    void (*quantize_q16_32)(const float *x, int16_t *q, float *d, int n);
    void (*q8_0_rows_dot_q16)(const void *const *rows, int nr, const int16_t *q, const float *d, int n, float *y);
    /* the machine's limits, measured at this level (measure_isa.h) */
    float (*sum_streams)(const float *base, size_t per, int streams);
    double (*fma_chains)(long iters);
} kv_kernels;

extern const kv_kernels kv_kernels_scalar, kv_kernels_avx2, kv_kernels_avx512, kv_kernels_avx512_vnni;

/* The table in use (set before main by dispatch.c). */
extern const kv_kernels *kv_kernels_active;

/* Whether every product is to be an f32 one (kvattn_set_exact, KVATTN_EXACT=1):
 * no 8-bit rounding of the activations for quantized weights. */
extern int kv_exact_products;

/* Whether the other block types' products (not q8_0) take x rounded once to 8 bits
 * (llama.cpp's numerics: kvattn_set_fast_products, KVATTN_FAST=1) instead of
 * also its rounding's residual. */
extern int kv_fast_products;

/* The table of a level; NULL where this build or this CPU lacks it. */
const kv_kernels *kv_kernels_for(kv_isa isa);

static inline float kv_dot_f32(const float *a, const float *b, int n) { return kv_kernels_active->dot_f32(a, b, n); }
static inline float kv_row_dot(kvattn_type t, const void *row, const float *x, int n) {
    return kv_kernels_active->row_dot(t, row, x, n);
}
static inline void kv_row_axpy(kvattn_type t, const void *row, float a, float *y, int n) {
    kv_kernels_active->row_axpy(t, row, a, y, n);
}
static inline void kv_row_load(kvattn_type t, const void *row, float *y, int n) {
    kv_kernels_active->row_load(t, row, y, n);
}
static inline float kv_scale_max(float *x, float a, float m, int n) { return kv_kernels_active->scale_max(x, a, m, n); }
static inline float kv_exp_shift_sum(const float *x, float shift, float *y, int n) {
    return kv_kernels_active->exp_shift_sum(x, shift, y, n);
}
static inline void kv_tile_scores(const float *Q, int ldq, int G, kvattn_type t, const unsigned char *K, size_t stride,
                                  int N, int d, float *S, int lds, const kv_prefetch_spans *pf) {
    kv_kernels_active->tile_scores(Q, ldq, G, t, K, stride, N, d, S, lds, pf);
}
static inline void kv_tile_accum(const float *P, int ldp, int G, kvattn_type t, const unsigned char *V, size_t stride,
                                 int N, int d, float *O, int ldo, const kv_prefetch_spans *pf) {
    kv_kernels_active->tile_accum(P, ldp, G, t, V, stride, N, d, O, ldo, pf);
}
static inline void kv_tile_scores_f32(const float *Q, int ldq, int G, const float *K, int ldk, int N, int d, float *S,
                                      int lds) {
    kv_kernels_active->tile_scores_f32(Q, ldq, G, K, ldk, N, d, S, lds);
}
static inline void kv_tile_accum_f32(const float *P, int ldp, int G, const float *V, int ldv, int N, int d, float *O,
                                     int ldo) {
    kv_kernels_active->tile_accum_f32(P, ldp, G, V, ldv, N, d, O, ldo);
}
static inline int kv_q16_ok(kvattn_type t, int G, int kd, int vd) { return kv_kernels_active->q16_ok(t, G, kd, vd); }
static inline void kv_q16_pack(const float *Q, int ldq, int d, float *Qt) {
    kv_kernels_active->q16_pack(Q, ldq, d, Qt);
}
static inline void kv_q16_widen(kvattn_type t, const unsigned char *rows, size_t stride, int N, int d, float *W) {
    kv_kernels_active->q16_widen(t, rows, stride, N, d, W);
}
static inline void kv_q16_scores(const float *Qt, kvattn_type t, const unsigned char *K, size_t stride, int N, int d,
                                 float *St, const kv_prefetch_spans *pf, unsigned *pi) {
    kv_kernels_active->q16_scores(Qt, t, K, stride, N, d, St, pf, pi);
}
static inline void kv_q16_softmax(float *St, int N, float scale, float *m, float *l, float *corr) {
    kv_kernels_active->q16_softmax(St, N, scale, m, l, corr);
}
static inline void kv_q16_accum(const float *St, kvattn_type t, const unsigned char *V, size_t stride, int N, int d,
                                float *O, int ldo, const kv_prefetch_spans *pf, unsigned *pi) {
    kv_kernels_active->q16_accum(St, t, V, stride, N, d, O, ldo, pf, pi);
}
static inline void kv_rows_dot(kvattn_type t, const unsigned char *const *rows, int nr, const float *x, int k,
                               float *y) {
    kv_kernels_active->rows_dot(t, rows, nr, x, k, y);
}
static inline void kv_rows_axpy(kvattn_type t, const unsigned char *const *rows, int nr, const float *a, float *y,
                                int n) {
    kv_kernels_active->rows_axpy(t, rows, nr, a, y, n);
}
static inline void kv_quantize_q8_k(const float *x, kv_block_q8_k *y, int n) {
    kv_kernels_active->quantize_q8_k(x, y, n);
}
static inline void kv_quantize_q8_k_residual(const float *x, const kv_block_q8_k *xq, kv_block_q8_k *xl, int n) {
    kv_kernels_active->quantize_q8_k_residual(x, xq, xl, n);
}
static inline void kv_rows_dot_tokens(kvattn_type t, const unsigned char *const *rows, int nr, const float *x, int ldx,
                                      int ntok, int k, float *y, int ldy, const kv_prefetch_spans *pf, unsigned *pi) {
    kv_kernels_active->rows_dot_tokens(t, rows, nr, x, ldx, ntok, k, y, ldy, pf, pi);
}
static inline void kv_panel_block(kvattn_type t, const unsigned char *panels, size_t stride, int np, const float *x,
                                  int ldx, int nt, int kc, float *y, int ldy, int accumulate) {
    kv_kernels_active->panel_block(t, panels, stride, np, x, ldx, nt, kc, y, ldy, accumulate);
}

static inline void kv_quant_rows_dot_q8_k(kvattn_type t, const void *const *rows, int nr, const kv_block_q8_k *x,
                                          const kv_block_q8_k *xl, int n, float *y) {
    kv_kernels_active->quant_rows_dot_q8_k(t, rows, nr, x, xl, n, y);
}
static inline void kv_quantize_q16_32(const float *x, int16_t *q, float *d, int n) {
    kv_kernels_active->quantize_q16_32(x, q, d, n);
}
static inline void kv_q8_0_rows_dot_q16(const void *const *rows, int nr, const int16_t *q, const float *d, int n,
                                        float *y) {
    kv_kernels_active->q8_0_rows_dot_q16(rows, nr, q, d, n, y);
}

#endif
