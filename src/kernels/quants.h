/* The block-quantized weight types of GGUF files (llama.cpp's ggml-quants
 * layouts): Q4_0, Q4_1, Q5_0, Q5_1 in blocks of 32 elements, and the
 * K-quants Q2_K, Q3_K, Q4_K, Q5_K, Q6_K in super-blocks of 256. Weights only:
 * the KV cache keeps its own types (vec.h). Rows are read in place; each
 * function works on whole blocks (GGUF rows are whole blocks). */
#ifndef KVATTN_QUANTS_H
#define KVATTN_QUANTS_H

#include "kvattn.h"

#include <stddef.h>
#include <stdint.h>

#define KV_QK   32  /* elements per block of Q4_0 … Q5_1           */
#define KV_QK_K 256 /* elements per super-block of the K-quants    */

typedef struct {
    uint16_t d;     /* f16 scale                      */
    uint8_t qs[16]; /* 4-bit quants, x = (q - 8)·d    */
} kv_block_q4_0;

typedef struct {
    uint16_t d, m;  /* f16 scale and minimum          */
    uint8_t qs[16]; /* x = q·d + m                    */
} kv_block_q4_1;

typedef struct {
    uint16_t d;
    uint8_t qh[4];  /* the fifth bits, little-endian u32 */
    uint8_t qs[16]; /* x = (q - 16)·d                   */
} kv_block_q5_0;

typedef struct {
    uint16_t d, m;
    uint8_t qh[4];
    uint8_t qs[16]; /* x = q·d + m                      */
} kv_block_q5_1;

typedef struct {
    uint8_t scales[16]; /* per 16: low nibble scale, high nibble min */
    uint8_t qs[64];     /* 2-bit quants                              */
    uint16_t d, dmin;
} kv_block_q2_k;

typedef struct {
    uint8_t hmask[32];  /* the third bits                          */
    uint8_t qs[64];     /* low 2 bits                              */
    uint8_t scales[12]; /* sixteen 6-bit scales, packed            */
    uint16_t d;
} kv_block_q3_k;

typedef struct {
    uint16_t d, dmin;
    uint8_t scales[12]; /* eight 6-bit scales and eight 6-bit mins */
    uint8_t qs[128];
} kv_block_q4_k;

typedef struct {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qh[32]; /* the fifth bits */
    uint8_t qs[128];
} kv_block_q5_k;

typedef struct {
    uint8_t ql[128];   /* low 4 bits                 */
    uint8_t qh[64];    /* high 2 bits                */
    int8_t scales[16]; /* one per 16 elements        */
    uint16_t d;
} kv_block_q6_k;

/* Activations for the integer products: 256 values as d · q, q in
 * [-127, 127], with the sums of each 16 (the K-quants' mins need them). */
typedef struct {
    float d;
    int8_t qs[KV_QK_K];
    int16_t bsums[KV_QK_K / 16];
} kv_block_q8_k;

/* Whether t is one of these types. */
int kv_is_block_quant(kvattn_type t);

/* Elements per block of t (32 or 256); 1 for the other types. */
int kv_quant_block_elems(kvattn_type t);

/* Bytes per block of t; 0 for the other types. */
size_t kv_quant_block_bytes(kvattn_type t);

/* The n elements (a multiple of the block) of a row as f32: the scalar
 * reference, written from the format's definition. */
void kv_dequant_row_ref(kvattn_type t, const void *row, float *y, int n);

/* Element i of a row (its block decoded): for the reference paths. */
float kv_quant_get_ref(kvattn_type t, const void *row, int i);

/* Whether kv_quantize_row writes t (Q4_0 and Q4_K). */
int kv_quant_can_write(kvattn_type t);

/* x[n] (a multiple of the block) as a row of t. Q4_0 exactly as llama.cpp's
 * reference quantizer (and gguf-py's): d = the signed value of largest
 * magnitude / -8, q = min(15, trunc(x/d + 8.5)). Q4_K: per 32 elements a
 * scale (max - min)/15 and a min ≤ 0, both quantized to 6 bits against the
 * super-block's largest, then q = round((x + min) / scale) in 0..15 — a
 * direct fit, not llama.cpp's iterative search, so its error is somewhat
 * larger than llama-quantize's on the same weights. */
void kv_quantize_row(kvattn_type t, const float *x, void *row, int n);

/* x[n] (a multiple of 256) as Q8_K blocks: d = max|x|/127, q = round(x/d);
 * the scalar twin of kv_quantize_q8_k (kernels.h), which gives the same bytes. */
void kv_quantize_q8_k_ref(const float *x, kv_block_q8_k *y, int n);

/* What rounding x[n] to xq left, x[i] - d·q[i] (at most d/2), as Q8_K blocks
 * xl of scale exactly d / 2^KV_Q8_K_RES_SHIFT (q rounded to nearest even and
 * kept in [-128, 127]: within d/512 of the residual, d/256 where it clamps).
 * The fixed ratio lets the Q4_K/Q5_K products add both integer sums,
 * 2^KV_Q8_K_RES_SHIFT·Σ(x) + Σ(xl), before scaling once by xl's d. The
 * scalar twin of kv_quantize_q8_k_residual (kernels.h): the same bytes. */
#define KV_Q8_K_RES_SHIFT 8
void kv_quantize_q8_k_residual_ref(const float *x, const kv_block_q8_k *xq, kv_block_q8_k *xl, int n);

/* A block of 32 of Q4_0, Q4_1, Q5_0 or Q5_1 as its elements' unsigned
 * integers q (4 or 5 bits) with x = q·d + off. */
void kv_block32_ints(kvattn_type t, const void *block, uint8_t q[KV_QK], float *d, float *off);

/* Q3_K's sixteen 6-bit scales, unpacked and less their bias of 32. */
void kv_q3_k_scales(const uint8_t *packed, int8_t out[16]);

/* Whether rows of t have an integer product with Q8_K activations (Q4_K,
 * Q5_K, Q6_K: the bulk of Q4_K_M, Q5_K_M and Q6_K files; Q2_K, Q3_K; Q4_0,
 * Q4_1, Q5_0, Q5_1): all the block types. */
int kv_quant_has_q8_k_dot(kvattn_type t);

/* Σ row[i]·x[i] with x as Q8_K blocks (n a multiple of 256): integer sums
 * per super-block, scaled once. The scalar twin of kv_quant_rows_dot_q8_k
 * (kernels.h, which also reads KV_Q8_K_ROWS rows side by side). */
float kv_quant_row_dot_q8_k_ref(kvattn_type t, const void *row, const kv_block_q8_k *x, int n);
#define KV_Q8_K_ROWS 2

/* Q4_K rows repacked 16 at a time for the decode GEMV (llama.cpp's CPU
 * "repack" buffers do the like): per super-block column, the 16 rows' scales
 * and mins unpacked to bytes [sub-block][row], and their quant bytes as
 * [step p][chunk c][row][4] — byte j of chunk c holds elements 64p + 4c + j
 * (low nibble) and 64p + 32 + 4c + j (high) — so that one vector holds four
 * elements of each of the 16 rows and one activation word meets them all.
 * 2368 bytes for 16 × 144: 3% more than the rows. */
#define KV_Q4_K_X16_ROWS 16
typedef struct {
    uint16_t d[KV_Q4_K_X16_ROWS], dmin[KV_Q4_K_X16_ROWS];
    uint8_t scales[8][KV_Q4_K_X16_ROWS], mins[8][KV_Q4_K_X16_ROWS];
    uint8_t qs[4][8][KV_Q4_K_X16_ROWS * 4];
} kv_block_q4_k_x16;

/* Bytes of rows × cols of Q4_K as groups of 16 rows (a last one padded with
 * zero rows), or 0 where cols is not whole super-blocks or the size overflows. */
size_t kv_q4_k_x16_bytes(int rows, int cols);

/* Packs rows × cols of Q4_K rows (row_bytes apart) into out. */
void kv_pack_q4_k_x16(const void *rows_base, size_t row_bytes, int rows, int cols, kv_block_q4_k_x16 *out);

/* A group's 16 rows (nb super-blocks) against x as Q8_K blocks and, unless
 * xl is NULL, its residual (kv_quantize_q8_k_residual's, of scale x's over
 * 2^KV_Q8_K_RES_SHIFT); msums[8b + j] is the activations' sum over sub-block j
 * of super-block b (2^KV_Q8_K_RES_SHIFT·x's + xl's with a residual): per row,
 * per step p, the two sub-blocks' integer sums scaled by their 6-bit scales
 * and added (exact in int32), then acc = fmaf(sum, d·a.d, acc), a = xl or x;
 * the mins alike per super-block; y[r] = acc - mins. The scalar twin of the
 * kernel table's q4_k_x16_dot, which gives the same bits. */
void kv_q4_k_x16_dot_ref(const kv_block_q4_k_x16 *g, int nb, const kv_block_q8_k *x, const kv_block_q8_k *xl,
                         const int32_t *msums, float y[KV_Q4_K_X16_ROWS]);

/* msums for kv_q4_k_x16_dot_ref from x's (and xl's) bsums, nb super-blocks. */
void kv_q4_k_x16_msums(const kv_block_q8_k *x, const kv_block_q8_k *xl, int nb, int32_t *msums);

#define KV_Q8_0_INT_ROWS 4

/* Activations for the q8_0 weights' integer products: x[n] (whole blocks of
 * 32) as q[n] in [-32767, 32767] and a scale d[b] = max|x|/32767 per block, q
 * = round(x / d) to nearest even; and Σ_b f16(w_b.d) · d[b] · Σ_i w_b.qs[i] ·
 * q[32b + i] over a q8_0 row of n elements (whole blocks). The scalar twins of
 * kv_quantize_q16_32 and kv_q8_0_rows_dot_q16 (kernels.h, which reads
 * KV_Q8_0_INT_ROWS rows side by side). */
void kv_quantize_q16_32_ref(const float *x, int16_t *q, float *d, int n);
float kv_q8_0_row_dot_q16_ref(const void *row, const int16_t *q, const float *d, int n);

#endif
