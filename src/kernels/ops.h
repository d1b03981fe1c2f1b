/* Dense layer ops on f32 activations. Each has a scalar twin (_ref). */
#ifndef KVATTN_OPS_H
#define KVATTN_OPS_H

#include "kvattn.h"

/* Row r of a matrix with `cols` columns. */
static inline const void *kv_matrix_row(kvattn_matrix W, int r, int cols) {
    return (const unsigned char *)W.data + (size_t)r * kvattn_row_bytes(W.type, cols);
}

/* y[t][i] = Σ_j W[i][j] · x[t][j]
 *   x [T][k], W [n][k] (row-major, out × in, any kernel type), y [T][n]
 * Threads split the rows of W; tokens are taken in blocks so a block of x
 * stays in cache while W streams past. */
void kv_matmul(float *y, const float *x, kvattn_matrix W, int T, int n, int k);
void kv_matmul_ref(float *y, const float *x, kvattn_matrix W, int T, int n, int k);

/* y[b] = W·x[b] for B tokens that belong to B sequences (a batched decode
 * step), each row of y bit for bit what kv_matmul gives that token alone
 * (T = 1), whatever B; W is read once for all of them.
 *   x [B][k], W [n][k], y [B][n] */
void kv_matmul_decode(float *y, const float *x, kvattn_matrix W, int B, int n, int k);
#define KV_DECODE_BATCH_MAX 64

/* Whether kv_matmul of W runs any T tokens as kv_matmul_decode does (on this
 * machine's kernels, or W packed in panels): each token's row then has the
 * same bits whatever the call, so tokens of a prompt and of decode steps can
 * share one. */
int kv_matmul_is_decode(kvattn_matrix W);

/* Bytes of a [rows][cols] matrix of type t packed in panels of 16 rows (the
 * last one zero-padded): f16 and bf16, and Q4_K (whole super-blocks) where
 * the active kernels have its grouped product; else, or where the size
 * overflows, 0. */
size_t kv_panels_bytes(kvattn_type t, int rows, int cols);

/* Packs W's rows into out (kv_panels_bytes of them): panel p holds rows 16p
 * to 16p + 15 as [cols][16] (Q4_K: kv_block_q4_k_x16 per super-block),
 * which kv_matmul reads once W.panels = out. */
void kv_pack_panels(kvattn_matrix W, int rows, int cols, void *out);

/* The same for a matrix of 16-bit elements anywhere: element (r, c) at
 * base + r·row_step + c·col_step bytes (a transposed view too). */
void kv_pack_panels_strided(const void *base, size_t row_step, size_t col_step, int rows, int cols, void *out);

/* y[t·ldy + i] = W[i]·x[t·ldx …] for T tokens and n rows through W's panels,
 * on the calling thread, with the bits kv_matmul gives. */
void kv_panel_product(float *y, int ldy, const float *x, int ldx, kvattn_matrix W, int T, int n, int k);

/* y[r] = W[row0 + r]·x for r < n, on the calling thread: the decode GEMV's
 * body, reading KV_DOT_ROWS far-apart rows at once so that the hardware
 * prefetchers follow each as a stream. */
void kv_gemv_rows(float *y, const float *x, kvattn_matrix W, int row0, int n, int k);

/* y = x / sqrt(mean(x²) + eps) · w, n elements; y may alias x. */
void kv_rmsnorm(float *y, const float *x, const float *w, int n, float eps);

/* Products of fewer multiply-adds than this run on the calling thread: waking
 * the OpenMP team costs more than it saves. */
#define KV_PARALLEL_MIN_MACS 32768

/* Number of threads kernels use. */
int kv_threads(void);

#endif
