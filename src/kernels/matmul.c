#include "ops.h"

#include "internal.h"
#include "kernels.h"
#include "kvattn.h"
#include "matmul_kernels.h"
#include "panel_kernels.h"
#include "vec.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define TOKEN_BLOCK 16

/* Rows of W per task when several tokens share them (a register-blocked product). */
#define ROW_BLOCK 64

void kv_gemv_rows(float *y, const float *x, kvattn_matrix W, int row0, int n, int k) {
    const int per = (n + KV_DOT_ROWS - 1) / KV_DOT_ROWS;
    for (int i = 0; i < per; i++) {
        const unsigned char *rows[KV_DOT_ROWS];
        float out[KV_DOT_ROWS];
        int nr = 0;
        for (int s = 0; s < KV_DOT_ROWS && s * per + i < n; s++) rows[nr++] = kv_matrix_row(W, row0 + s * per + i, k);
        kv_rows_dot(W.type, rows, nr, x, k, out);
        for (int s = 0; s < nr; s++) y[s * per + i] = out[s];
    }
}

/* kv_gemv_rows for ntok tokens at once (x, y of row strides ldx, ldy): the
 * same rows side by side, each token's outputs with the bits it gets alone.
 * Meanwhile the next `ahead` bytes after the rows are prefetched, so that the
 * next call's first tokens do not wait for memory. */
static void gemv_rows_tokens(float *y, int ldy, const float *x, int ldx, int ntok, kvattn_matrix W, int row0, int n,
                             int k, size_t ahead) {
    const int per = (n + KV_DOT_ROWS - 1) / KV_DOT_ROWS;
    float out[KV_DECODE_BATCH_MAX * KV_DOT_ROWS];
    const void *next = kv_matrix_row(W, row0 + n, k);
    const kv_prefetch_spans pf = kv_prefetch_spans_make(&next, &ahead, ahead ? 1 : 0);
    unsigned take = 0;
    for (int i = 0; i < per; i++) {
        const unsigned char *rows[KV_DOT_ROWS];
        int nr = 0;
        for (int s = 0; s < KV_DOT_ROWS && s * per + i < n; s++) rows[nr++] = kv_matrix_row(W, row0 + s * per + i, k);
        kv_rows_dot_tokens(W.type, rows, nr, x, ldx, ntok, k, out, KV_DOT_ROWS, &pf, &take);
        for (int j = 0; j < ntok; j++)
            for (int s = 0; s < nr; s++) y[(size_t)j * ldy + s * per + i] = out[j * KV_DOT_ROWS + s];
    }
}

/* This thread's equal share [*r0, *r1) of n rows. */
static void thread_rows(int n, int *r0, int *r1) {
#ifdef _OPENMP
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
    const int t = 0, nt = 1;
#endif
    *r0 = (int)((long)n * t / nt), *r1 = (int)((long)n * (t + 1) / nt);
}

/* x rounded once for the integer products with quantized rows: Q8_K blocks
 * (every GGUF block type, per 256) and, unless kv_fast_products, the
 * rounding's residual as Q8_K blocks too (q8_k_res: x ≈ the two summed, to
 * 2^-16 of each block's largest, 2^-15 at most); or 16-bit values with a scale per 32
 * (q8_0). */
typedef enum { X_F32, X_Q8_K, X_Q16_32 } x_rounding;
typedef struct {
    x_rounding kind;
    kv_block_q8_k *q8_k, *q8_k_res;
    int16_t *q16;
    float *d;
} rounded_x;

/* y[r] = rows[r]·x for nr rows (at most the kind's streams). */
static void rounded_rows_dot(const rounded_x *x, kvattn_type t, const void *const *rows, int nr, int k, float *y) {
    switch (x->kind) {
    case X_Q8_K: kv_quant_rows_dot_q8_k(t, rows, nr, x->q8_k, x->q8_k_res, k, y); break;
    default: kv_q8_0_rows_dot_q16(rows, nr, x->q16, x->d, k, y); break;
    }
}

/* Rows r0..r1 of W against the rounded x, as far-apart streams read side by
 * side (kv_gemv_rows' layout for the integer products). */
static void gemv_rounded_rows(float *y, const rounded_x *x, kvattn_matrix W, int r0, int r1, int k) {
    enum { MAX_STREAMS = KV_Q8_K_ROWS > KV_Q8_0_INT_ROWS ? KV_Q8_K_ROWS : KV_Q8_0_INT_ROWS };
    const int streams = x->kind == X_Q8_K ? KV_Q8_K_ROWS : KV_Q8_0_INT_ROWS;
    const int per = (r1 - r0 + streams - 1) / streams;
    for (int i = 0; i < per; i++) {
        const void *rows[MAX_STREAMS];
        float out[MAX_STREAMS];
        int idx[MAX_STREAMS], nr = 0;
        for (int s = 0; s < streams && r0 + s * per + i < r1; s++)
            idx[nr] = r0 + s * per + i, rows[nr] = kv_matrix_row(W, idx[nr], k), nr++;
        rounded_rows_dot(x, W.type, rows, nr, k, out);
        for (int s = 0; s < nr; s++) y[idx[s]] = out[s];
    }
}

/* The rounding of x that rows of type t meet (X_F32: none), and x rounded so
 * into one allocation (*mem, to be freed). */
static rounded_x round_x(const float *x, kvattn_type t, int k, void **mem) {
    rounded_x r = {X_F32, NULL, NULL, NULL, NULL};
    *mem = NULL;
    if (kv_exact_products) return r;
    if (kv_quant_has_q8_k_dot(t) && k % KV_QK_K == 0) {
        const int nb = k / KV_QK_K;
        if (!(*mem = r.q8_k = malloc(sizeof *r.q8_k * (size_t)nb * 2))) return r;
        kv_quantize_q8_k(x, r.q8_k, k);
        if (!kv_fast_products) kv_quantize_q8_k_residual(x, r.q8_k, r.q8_k_res = r.q8_k + nb, k);
        r.kind = X_Q8_K;
    } else if (t == KVATTN_TYPE_Q8_0 && k % KV_Q8_0_BLOCK == 0) {
        if (!(*mem = r.d = malloc(sizeof(float) * (size_t)(k / KV_Q8_0_BLOCK) + sizeof(int16_t) * (size_t)k))) return r;
        r.q16 = (int16_t *)(r.d + k / KV_Q8_0_BLOCK);
        kv_quantize_q16_32(x, r.q16, r.d, k);
        r.kind = X_Q16_32;
    }
    return r;
}

/* Whether W's products read f16/bf16 panels, and whether its Q4_K rows are
 * read as groups of 16 (both in W.panels, packed at load); a level without
 * the grouped kernel (KVATTN_ISA lower than the load's) reads the rows. */
static int in_panels(kvattn_matrix W) { return W.panels && (W.type == KVATTN_TYPE_F16 || W.type == KVATTN_TYPE_BF16); }
static int q4_k_grouped(kvattn_matrix W) {
    return W.panels && W.type == KVATTN_TYPE_Q4_K && kv_kernels_active->q4_k_x16_dot;
}
static int in_q4_k_groups(kvattn_matrix W, const rounded_x *x) { return q4_k_grouped(W) && x->kind == X_Q8_K; }

/* Groups [g0, g1) of W's Q4_K groups of 16 rows against the rounded x
 * (msums: kv_q4_k_x16_msums of it); a last group's padding rows unstored. */
static void q4_k_groups(float *y, const rounded_x *x, const int32_t *msums, kvattn_matrix W, int g0, int g1, int n,
                        int k) {
    const int nb = k / KV_QK_K;
    for (int g = g0; g < g1; g++) {
        const kv_block_q4_k_x16 *blocks = (const kv_block_q4_k_x16 *)W.panels + (size_t)g * nb;
        const int r0 = g * KV_Q4_K_X16_ROWS;
        if (n - r0 >= KV_Q4_K_X16_ROWS) {
            kv_kernels_active->q4_k_x16_dot(blocks, nb, x->q8_k, x->q8_k_res, msums, y + r0);
            continue;
        }
        float out[KV_Q4_K_X16_ROWS];
        kv_kernels_active->q4_k_x16_dot(blocks, nb, x->q8_k, x->q8_k_res, msums, out);
        memcpy(y + r0, out, sizeof(float) * (size_t)(n - r0));
    }
}

/* Rows of W a thread takes through every token of a decode batch before
 * moving on: about this many bytes, so they are read from memory once and
 * from L2 for the other tokens. */
#define DECODE_CHUNK_BYTES (128 * 1024)

/* y[b] = W·x[b] for B tokens rounded to Q8_K, through W's Q4_K groups: each
 * thread an equal share of the groups, a chunk of them through every token
 * before the next (each group's outputs the same whatever B); -1 out of
 * memory (nothing written). */
static int grouped_products(float *y, const rounded_x *xr, kvattn_matrix W, int B, int n, int k) {
    const size_t per_token = (size_t)(k / KV_QK_K) * 8;
    int32_t *msums = malloc(sizeof(int32_t) * per_token * B);
    if (!msums) return -1;
    for (int b = 0; b < B; b++) kv_q4_k_x16_msums(xr[b].q8_k, xr[b].q8_k_res, k / KV_QK_K, msums + b * per_token);
    const int groups = (n + KV_Q4_K_X16_ROWS - 1) / KV_Q4_K_X16_ROWS;
    const size_t group_bytes = sizeof(kv_block_q4_k_x16) * (size_t)(k / KV_QK_K);
    const int per_chunk = DECODE_CHUNK_BYTES / group_bytes > 1 ? (int)(DECODE_CHUNK_BYTES / group_bytes) : 1;
#pragma omp parallel if ((long)n * k * B > KV_PARALLEL_MIN_MACS)
    {
        int g0, g1;
        thread_rows(groups, &g0, &g1);
        for (int c0 = g0; c0 < g1; c0 += per_chunk)
            for (int b = 0; b < B; b++)
                q4_k_groups(y + (size_t)b * n, &xr[b], msums + b * per_token, W, c0,
                            g1 - c0 < per_chunk ? g1 : c0 + per_chunk, n, k);
    }
    free(msums);
    return 0;
}

/* y[i] = W[i]·x for one token (decode). Each thread takes an equal share of the
 * rows and reads KV_DOT_ROWS far-apart parts of it at once (kv_gemv_rows): a
 * single stream per core leaves part of this machine's bandwidth unused
 * (bench/stream_probe.c). Unless every product is to be f32 (kvattn_set_exact),
 * quantized rows meet x rounded once (round_x) in integer products: for the
 * block types to 8 bits per 256 (as llama.cpp does) plus the residual's
 * own 8 bits (kv_fast_products drops it), for q8_0 to 16 bits per 32. */
static void gemv(float *y, const float *x, kvattn_matrix W, int n, int k) {
    void *mem;
    const rounded_x xr = round_x(x, W.type, k, &mem); /* out of memory: the f32 path, which needs none */
    if (in_q4_k_groups(W, &xr) && grouped_products(y, &xr, W, 1, n, k) == 0) {
        free(mem);
        return;
    }
#pragma omp parallel if ((long)n * k > KV_PARALLEL_MIN_MACS)
    {
        int r0, r1;
        thread_rows(n, &r0, &r1);
        if (xr.kind != X_F32) gemv_rounded_rows(y, &xr, W, r0, r1, k);
        else kv_gemv_rows(y + r0, x, W, r0, r1 - r0, k);
    }
    free(mem);
}

/* The decode GEMV for B tokens of B sequences at once: y[b] = W·x[b], each
 * with exactly the numerics gemv gives it alone (x[b] rounded alike, every row
 * by the same products in the same order), so a sequence's outputs do not
 * depend on the batch; W is read from memory once for all of them. */
static void gemv_batch(float *y, const float *x, kvattn_matrix W, int B, int n, int k) {
    rounded_x xr[KV_DECODE_BATCH_MAX];
    void *mem[KV_DECODE_BATCH_MAX];
    int all_f32 = 1;
    for (int b = 0; b < B; b++) {
        xr[b] = round_x(x + (size_t)b * k, W.type, k, &mem[b]);
        all_f32 &= xr[b].kind == X_F32;
    }
    const size_t row_bytes = kvattn_row_bytes(W.type, k);
    int grouped = 1;
    for (int b = 0; b < B; b++) grouped &= in_q4_k_groups(W, &xr[b]);
    if (grouped && grouped_products(y, xr, W, B, n, k) == 0) {
        for (int b = 0; b < B; b++) free(mem[b]);
        return;
    }
    int chunk = (int)(DECODE_CHUNK_BYTES / (row_bytes ? row_bytes : 1));
    if (chunk < 16) chunk = 16;
#pragma omp parallel if ((long)n * k * B > KV_PARALLEL_MIN_MACS)
    {
        int r0, r1;
        thread_rows(n, &r0, &r1);
        for (int c0 = r0; c0 < r1; c0 += chunk) {
            const int c1 = r1 - c0 < chunk ? r1 : c0 + chunk;
            if (all_f32) { /* every token at once: each row read serves several */
                gemv_rows_tokens(y + c0, n, x, k, B, W, c0, c1 - c0, k,
                                 row_bytes * (size_t)(r1 - c1 < chunk ? r1 - c1 : chunk));
                continue;
            }
            for (int b = 0; b < B; b++) {
                if (xr[b].kind != X_F32) gemv_rounded_rows(y + (size_t)b * n, &xr[b], W, c0, c1, k);
                else kv_gemv_rows(y + (size_t)b * n + c0, x + (size_t)b * k, W, c0, c1 - c0, k);
            }
        }
    }
    for (int b = 0; b < B; b++) free(mem[b]);
}

/* Columns a panel tile sums before its accumulators go back to y, and tokens
 * a thread takes through all its panels before the next ones: a tile's
 * columns (2 panels × 1024 × 2 bytes) stay in L2 while the tokens pass under
 * them. Up to PANEL_WHOLE_K tokens (decode steps, small batches) each tile
 * sums all k columns at once, so that each panel is one stream through
 * memory. */
#define PANEL_KC      1024
#define PANEL_TOKENS  128
#define PANEL_WHOLE_K 64

/* Panels a thread takes as a unit: the decode GEMV's widest tile. */
#define PANEL_UNIT 8

size_t kv_panels_bytes(kvattn_type t, int rows, int cols) {
    if (t == KVATTN_TYPE_Q4_K) return kv_kernels_active->q4_k_x16_dot ? kv_q4_k_x16_bytes(rows, cols) : 0;
    if ((t != KVATTN_TYPE_F16 && t != KVATTN_TYPE_BF16) || rows < 1 || cols < 1) return 0;
    const size_t panels = ((size_t)rows + KV_PANEL_ROWS - 1) / KV_PANEL_ROWS;
    if (panels > SIZE_MAX / KV_PANEL_ROWS / 2 / (size_t)cols) return 0;
    return panels * KV_PANEL_ROWS * 2 * (size_t)cols;
}

void kv_pack_panels_strided(const void *base, size_t row_step, size_t col_step, int rows, int cols, void *out) {
    const int np = (rows + KV_PANEL_ROWS - 1) / KV_PANEL_ROWS;
#pragma omp parallel for schedule(static) if ((long)rows * cols > KV_PARALLEL_MIN_MACS)
    for (int p = 0; p < np; p++) {
        uint16_t *panel = (uint16_t *)out + (size_t)p * cols * KV_PANEL_ROWS;
        const unsigned char *row[KV_PANEL_ROWS];
        int nr = 0;
        for (; nr < KV_PANEL_ROWS && p * KV_PANEL_ROWS + nr < rows; nr++)
            row[nr] = (const unsigned char *)base + (size_t)(p * KV_PANEL_ROWS + nr) * row_step;
        for (int c = 0; c < cols; c++, panel += KV_PANEL_ROWS) { /* written in order, the 16 rows read as streams */
            int l = 0;
            for (; l < nr; l++) memcpy(&panel[l], row[l] + (size_t)c * col_step, sizeof(uint16_t));
            for (; l < KV_PANEL_ROWS; l++) panel[l] = 0;
        }
    }
}

void kv_pack_panels(kvattn_matrix W, int rows, int cols, void *out) {
    if (W.type == KVATTN_TYPE_Q4_K) {
        kv_pack_q4_k_x16(W.data, kvattn_row_bytes(W.type, cols), rows, cols, out);
        return;
    }
    kv_pack_panels_strided(W.data, kvattn_row_bytes(W.type, cols), sizeof(uint16_t), rows, cols, out);
}

/* Panels [p0, p1) of W against nt ≤ PANEL_TOKENS tokens (x, y of row
 * strides ldx, ldy), columns in blocks of kc_max. A last panel of fewer than
 * 16 rows sums into a buffer whose rows are copied out. */
static void panel_part(float *y, int ldy, const float *x, int ldx, kvattn_matrix W, int nt, int n, int k, int p0,
                       int p1, int kc_max) {
    const int np = (n + KV_PANEL_ROWS - 1) / KV_PANEL_ROWS, full = n / KV_PANEL_ROWS;
    const int has_tail = p1 == np && full < np, q1 = has_tail ? full : p1;
    const size_t stride = (size_t)k * KV_PANEL_ROWS * 2;
    const unsigned char *panels = W.panels;
    float tail[PANEL_TOKENS * KV_PANEL_ROWS];
    for (int c0 = 0; c0 < k; c0 += kc_max) {
        const int kc = k - c0 < kc_max ? k - c0 : kc_max;
        const size_t col = (size_t)c0 * KV_PANEL_ROWS * 2;
        if (q1 > p0)
            kv_panel_block(W.type, panels + (size_t)p0 * stride + col, stride, q1 - p0, x + c0, ldx, nt, kc,
                           y + (size_t)p0 * KV_PANEL_ROWS, ldy, c0 > 0);
        if (has_tail)
            kv_panel_block(W.type, panels + (size_t)full * stride + col, stride, 1, x + c0, ldx, nt, kc, tail,
                           KV_PANEL_ROWS, c0 > 0);
    }
    if (has_tail)
        for (int j = 0; j < nt; j++)
            memcpy(y + (size_t)j * ldy + (size_t)full * KV_PANEL_ROWS, tail + j * KV_PANEL_ROWS,
                   sizeof(float) * (size_t)(n - full * KV_PANEL_ROWS));
}

/* Panels [p0, p1) against T tokens, PANEL_TOKENS at a time. */
static void panel_rows(float *y, int ldy, const float *x, int ldx, kvattn_matrix W, int T, int n, int k, int p0,
                       int p1) {
    const int kc_max = T <= PANEL_WHOLE_K ? k : PANEL_KC;
    for (int t0 = 0; t0 < T; t0 += PANEL_TOKENS)
        panel_part(y + (size_t)t0 * ldy, ldy, x + (size_t)t0 * ldx, ldx, W,
                   T - t0 < PANEL_TOKENS ? T - t0 : PANEL_TOKENS, n, k, p0, p1, kc_max);
}

void kv_panel_product(float *y, int ldy, const float *x, int ldx, kvattn_matrix W, int T, int n, int k) {
    panel_rows(y, ldy, x, ldx, W, T, n, k, 0, (n + KV_PANEL_ROWS - 1) / KV_PANEL_ROWS);
}

/* y = W·x for T tokens through W's panels, each thread an equal share of
 * the panels in units of PANEL_UNIT. Every output is kv_panel_block_ref's
 * chain, so the bits depend on neither T, the threads nor the blocking. */
static void panel_matmul(float *y, const float *x, kvattn_matrix W, int T, int n, int k) {
    const int np = (n + KV_PANEL_ROWS - 1) / KV_PANEL_ROWS, units = (np + PANEL_UNIT - 1) / PANEL_UNIT;
#pragma omp parallel if ((long)n * k * T > KV_PARALLEL_MIN_MACS)
    {
        int u0, u1;
        thread_rows(units, &u0, &u1);
        const int p0 = u0 * PANEL_UNIT, p1 = u1 * PANEL_UNIT < np ? u1 * PANEL_UNIT : np;
        if (p0 < p1) panel_rows(y, n, x, k, W, T, n, k, p0, p1);
    }
}

void kv_matmul_decode(float *y, const float *x, kvattn_matrix W, int B, int n, int k) {
    if (in_panels(W)) {
        panel_matmul(y, x, W, B, n, k);
        return;
    }
    for (int b0 = 0; b0 < B; b0 += KV_DECODE_BATCH_MAX) {
        const int nb = B - b0 < KV_DECODE_BATCH_MAX ? B - b0 : KV_DECODE_BATCH_MAX;
        gemv_batch(y + (size_t)b0 * n, x + (size_t)b0 * k, W, nb, n, k);
    }
}

/* Prefill GEMM from GEMM_MIN_TOKENS tokens on, at levels with a micro-kernel:
 * x is transposed once into blocks of 64 tokens, xt [T64 / 64][k][64] (zero
 * padded), so the micro-kernel reads it sequentially. For each block of 64 tokens, each task takes
 * KV_GEMM_ROWS rows of W, widens GEMM_KC of their columns at a time to f32
 * (paid once per 64 tokens) and runs the micro-kernel over them. */
#define GEMM_MIN_TOKENS 16
#define GEMM_KC         256
#define GEMM_GROUP      4

static int packed_gemm(float *y, const float *x, kvattn_matrix W, int T, int n, int k, size_t row_bytes) {
    const kv_kernels *kern = kv_kernels_active;
    const int T16 = (T + 15) / 16 * 16, T64 = (T + 63) / 64 * 64, blocks = (n + KV_GEMM_ROWS - 1) / KV_GEMM_ROWS;
    float *xt = kv_thread_scratch(KV_SCRATCH_GEMM, (size_t)k * T64);
    if (!xt) return -1;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < k; c++)
        for (int t = 0; t < T64; t++)
            xt[((size_t)(t / 64) * k + c) * 64 + t % 64] = t < T ? x[(size_t)t * k + c] : 0.0f;
    /* groups of GEMM_GROUP token blocks outermost: each chunk of W is widened once per group
     * and multiplied into the group's blocks in turn, their xt (k × 64 floats each) read from
     * L2 or L3 while W streams past */
    for (int g0 = 0; g0 < T16; g0 += GEMM_GROUP * KV_GEMM_TOKENS) {
        const int group_tokens = T16 - g0 < GEMM_GROUP * KV_GEMM_TOKENS ? T16 - g0 : GEMM_GROUP * KV_GEMM_TOKENS;
        const int n_blocks = (group_tokens + KV_GEMM_TOKENS - 1) / KV_GEMM_TOKENS;
#pragma omp parallel
        {
            float w[KV_GEMM_ROWS * GEMM_KC], C[GEMM_GROUP][KV_GEMM_ROWS * KV_GEMM_TOKENS];
#pragma omp for schedule(static)
            for (int b = 0; b < blocks; b++) {
                const int r0 = b * KV_GEMM_ROWS, nr = n - r0 < KV_GEMM_ROWS ? n - r0 : KV_GEMM_ROWS;
                memset(C, 0, sizeof C);
                for (int c0 = 0; c0 < k; c0 += GEMM_KC) {
                    const int kc = k - c0 < GEMM_KC ? k - c0 : GEMM_KC;
                    for (int r = 0; r < KV_GEMM_ROWS; r++) {
                        if (r < nr)
                            kern->row_load(W.type,
                                           (const unsigned char *)W.data + (size_t)(r0 + r) * row_bytes +
                                               kvattn_row_bytes(W.type, c0),
                                           w + r * GEMM_KC, kc);
                        else memset(w + r * GEMM_KC, 0, sizeof(float) * (size_t)kc);
                    }
                    for (int j = 0; j < n_blocks; j++) {
                        const int t0 = g0 + j * KV_GEMM_TOKENS;
                        const int nt = T16 - t0 < KV_GEMM_TOKENS ? T16 - t0 : KV_GEMM_TOKENS;
                        const float *xb = xt + (size_t)(t0 / 64) * k * 64;
                        kern->gemm_micro(w, GEMM_KC, xb + (size_t)c0 * 64, 64, kc, nt / 16, C[j]);
                    }
                }
                for (int j = 0; j < n_blocks; j++)
                    for (int r = 0; r < nr; r++)
                        for (int t = g0 + j * KV_GEMM_TOKENS; t < g0 + (j + 1) * KV_GEMM_TOKENS && t < T; t++)
                            y[(size_t)t * n + r0 + r] = C[j][r * KV_GEMM_TOKENS + t - g0 - j * KV_GEMM_TOKENS];
            }
        }
    }
    return 0;
}

/* Weights in panels take every T through the same chains (panel_matmul),
 * and Q4_K groups every T through the decode products (x rounded per token
 * as in decode, the groups read once per 64 tokens): faster than decoding
 * the rows for the f32 GEMM, and the rows stay unread (but for f32 products,
 * kvattn_set_exact, which the GEMM does far faster). Otherwise, where a row load serves several tokens (rows_dot_tokens), a
 * prompt runs as a decode batch: faster than the packed GEMM here at every
 * length measured, and every token's outputs get the bits a decode step
 * gives it, whatever the chunk it runs in. */
int kv_matmul_is_decode(kvattn_matrix W) {
    const kvattn_type t = W.type;
    return in_panels(W) || (q4_k_grouped(W) && !kv_exact_products) ||
           (kv_kernels_active->rows_dot_tokens_block > 1 &&
            (t == KVATTN_TYPE_F32 || t == KVATTN_TYPE_F16 || t == KVATTN_TYPE_BF16));
}

void kv_matmul(float *y, const float *x, kvattn_matrix W, int T, int n, int k) {
    const size_t row_bytes = kvattn_row_bytes(W.type, k);
    if (in_panels(W)) {
        panel_matmul(y, x, W, T, n, k);
        return;
    }
    if (T == 1) {
        gemv(y, x, W, n, k);
        return;
    }
    if (kv_matmul_is_decode(W)) {
        kv_matmul_decode(y, x, W, T, n, k);
        return;
    }
    /* q8_0 rows are widened from whole blocks: GEMM_KC is a multiple of 32 */
    if (kv_kernels_active->gemm_micro && T >= GEMM_MIN_TOKENS && packed_gemm(y, x, W, T, n, k, row_bytes) == 0) return;
    if (T >= 2 && kv_is_block_quant(W.type)) { /* GGUF's 4-6-bit weights: rows decoded once, then f32 tiles */
        const int blocks = (n + ROW_BLOCK - 1) / ROW_BLOCK;
        int failed = 0;
#pragma omp parallel for schedule(static) if ((long)n * k * T > KV_PARALLEL_MIN_MACS) reduction(| : failed)
        for (int b = 0; b < blocks; b++) {
            const int r0 = b * ROW_BLOCK, nr = n - r0 < ROW_BLOCK ? n - r0 : ROW_BLOCK;
            float *w = malloc(sizeof(float) * (size_t)nr * k);
            if (!w) {
                failed = 1;
                continue;
            }
            for (int r = 0; r < nr; r++) kv_row_load(W.type, kv_matrix_row(W, r0 + r, k), w + (size_t)r * k, k);
            for (int t0 = 0; t0 < T; t0 += TOKEN_BLOCK) {
                const int tb = T - t0 < TOKEN_BLOCK ? T - t0 : TOKEN_BLOCK;
                kv_tile_scores_f32(x + (size_t)t0 * k, k, tb, w, k, nr, k, y + (size_t)t0 * n + r0, n);
            }
            free(w);
        }
        if (!failed) return; /* out of memory: the row-by-row products below need none */
    }
    if (T >= 2 && k % 8 == 0 &&
        !kv_is_block_quant(W.type)) { /* prefill: y[t][i] = x[t]·W[i] is the attention's score product */
        const int blocks = (n + ROW_BLOCK - 1) / ROW_BLOCK;
#pragma omp parallel for schedule(static) if ((long)n * k * T > KV_PARALLEL_MIN_MACS)
        for (int b = 0; b < blocks; b++) {
            int r0 = b * ROW_BLOCK, nr = n - r0 < ROW_BLOCK ? n - r0 : ROW_BLOCK;
            const unsigned char *w = (const unsigned char *)W.data + (size_t)r0 * row_bytes;
            for (int t0 = 0; t0 < T; t0 += TOKEN_BLOCK) {
                int tb = T - t0 < TOKEN_BLOCK ? T - t0 : TOKEN_BLOCK;
                if (W.type == KVATTN_TYPE_F32)
                    kv_tile_scores_f32(x + (size_t)t0 * k, k, tb, (const float *)w, k, nr, k, y + (size_t)t0 * n + r0,
                                       n);
                else
                    kv_tile_scores(x + (size_t)t0 * k, k, tb, W.type, w, row_bytes, nr, k, y + (size_t)t0 * n + r0, n,
                                   &kv_prefetch_none);
            }
        }
        return;
    }
    for (int t0 = 0; t0 < T; t0 += TOKEN_BLOCK) {
        int t1 = t0 + TOKEN_BLOCK < T ? t0 + TOKEN_BLOCK : T;
#pragma omp parallel for schedule(static) if ((long)n * k * (t1 - t0) > KV_PARALLEL_MIN_MACS)
        for (int i = 0; i < n; i++) {
            const void *w = (const unsigned char *)W.data + (size_t)i * row_bytes;
            for (int t = t0; t < t1; t++) y[(size_t)t * n + i] = kv_row_dot(W.type, w, x + (size_t)t * k, k);
        }
    }
}

void kv_matmul_ref(float *y, const float *x, kvattn_matrix W, int T, int n, int k) {
    for (int t = 0; t < T; t++)
        for (int i = 0; i < n; i++)
            y[(size_t)t * n + i] = kv_row_dot_ref(W.type, kv_matrix_row(W, i, k), x + (size_t)t * k, k);
}

void kv_rmsnorm(float *y, const float *x, const float *w, int n, float eps) {
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float inv = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++) y[i] = x[i] * inv * w[i];
}

static int thread_override = 0;

int kv_threads(void) {
#ifdef _OPENMP
    return thread_override > 0 ? thread_override : omp_get_max_threads();
#else
    return 1;
#endif
}

int kvattn_set_threads(int n) {
#ifdef _OPENMP
    static int default_threads = 0;
    if (default_threads == 0) default_threads = omp_get_max_threads();
    thread_override = n > 0 ? n : 0;
    omp_set_num_threads(n > 0 ? n : default_threads);
    return kv_threads();
#else
    (void)n;
    (void)thread_override;
    return 1;
#endif
}
