/* Kernels of the projections whose f16/bf16 weights were packed at load into
 * panels (kv_pack_panels): KV_PANEL_ROWS rows side by side, column after
 * column, [column][16]. A vector then holds one column of 16 rows, and each
 * lane sums its row's products with a token in column order, one FMA after
 * another: the decode GEMV and the prefill GEMM are one kernel whose tiles
 * differ only in how many panels and tokens share a column's loads.
 *
 * Each output is that one chain whatever the tile, the number of tokens or the
 * blocking of the columns (an accumulator stored and reloaded is exact), so a
 * token's outputs have the same bits alone, in a decode batch and in a prompt
 * chunk of any length; and at every level, the scalar twin's fmaf being the
 * FMA instruction's rounding. */
#ifndef KVATTN_PANEL_KERNELS_H
#define KVATTN_PANEL_KERNELS_H

#include "vec.h"

#define KV_PANEL_ROWS 16

/* For np panels (panel p at panels + p·stride, its first column at panels)
 * and nt tokens (token j at x + j·ldx), over kc columns:
 *   y[j·ldy + 16p + l] = (accumulate ? y[…] : 0) + Σ_c panel_p[c][l] · x[j·ldx + c]
 * summed in column order by fmaf. */
static inline void kv_panel_block_ref(kvattn_type t, const unsigned char *panels, size_t stride, int np, const float *x,
                                      int ldx, int nt, int kc, float *y, int ldy, int accumulate) {
    for (int j = 0; j < nt; j++)
        for (int p = 0; p < np; p++)
            for (int l = 0; l < KV_PANEL_ROWS; l++) {
                float *out = y + (size_t)j * ldy + p * KV_PANEL_ROWS + l;
                float acc = accumulate ? *out : 0.0f;
                for (int c = 0; c < kc; c++)
                    acc = fmaf(kv_row_get_ref(t, panels + (size_t)p * stride, c * KV_PANEL_ROWS + l),
                               x[(size_t)j * ldx + c], acc);
                *out = acc;
            }
}

/* The most tokens one tile of the level takes, and the panels it takes beside
 * them: enough independent chains to hide the FMA's latency, few enough
 * accumulators to stay in registers (32 vectors at AVX-512, 16 at AVX2). */
#if KV_HAVE_AVX512
#define KV_PANEL_TILE_TOKENS 8
static inline int kv_panel_tile_panels(int tokens) { return tokens == 1 ? 8 : tokens <= 4 ? 4 : 2; }
#elif KV_HAVE_AVX2
#define KV_PANEL_TILE_TOKENS 6
static inline int kv_panel_tile_panels(int tokens) { return tokens == 1 ? 4 : tokens <= 3 ? 2 : 1; }
#endif

#if KV_HAVE_AVX2
/* One tile: pp panels × tt tokens (constants once inlined), the accumulators
 * of panel p and token j read from and written to out[p·tt + j]. */
static inline __attribute__((always_inline)) void kv_panel_tile(kvattn_type t, int pp, int tt,
                                                                const unsigned char *const *pw, const float *const *px,
                                                                float *const *out, int kc, int accumulate) {
#if KV_HAVE_AVX512
    __m512 acc[8][KV_PANEL_TILE_TOKENS];
    KV_UNROLL for (int p = 0; p < pp; p++) KV_UNROLL for (int j = 0; j < tt; j++) acc[p][j] =
        accumulate ? _mm512_loadu_ps(out[p * tt + j]) : _mm512_setzero_ps();
    for (int c = 0; c < kc; c++) {
        __m512 w[8];
        KV_UNROLL for (int p = 0; p < pp; p++) w[p] = kv_load16_avx512(t, pw[p], c * KV_PANEL_ROWS);
        KV_UNROLL for (int j = 0; j < tt; j++) {
            const __m512 xb = _mm512_set1_ps(px[j][c]);
            KV_UNROLL for (int p = 0; p < pp; p++) acc[p][j] = _mm512_fmadd_ps(w[p], xb, acc[p][j]);
        }
    }
    KV_UNROLL for (int p = 0; p < pp; p++) KV_UNROLL for (int j = 0; j < tt; j++)
        _mm512_storeu_ps(out[p * tt + j], acc[p][j]);
#else
    __m256 acc[4][KV_PANEL_TILE_TOKENS][2];
    KV_UNROLL for (int p = 0; p < pp; p++) KV_UNROLL for (int j = 0; j < tt; j++) KV_UNROLL for (int h = 0; h < 2; h++)
        acc[p][j][h] = accumulate ? _mm256_loadu_ps(out[p * tt + j] + 8 * h) : _mm256_setzero_ps();
    for (int c = 0; c < kc; c++) {
        KV_UNROLL for (int p = 0; p < pp; p++) {
            const __m256 w0 = kv_load8_avx2(t, pw[p], c * KV_PANEL_ROWS),
                         w1 = kv_load8_avx2(t, pw[p], c * KV_PANEL_ROWS + 8);
            KV_UNROLL for (int j = 0; j < tt; j++) {
                const __m256 xb = _mm256_broadcast_ss(px[j] + c);
                acc[p][j][0] = _mm256_fmadd_ps(w0, xb, acc[p][j][0]);
                acc[p][j][1] = _mm256_fmadd_ps(w1, xb, acc[p][j][1]);
            }
        }
    }
    KV_UNROLL for (int p = 0; p < pp; p++) KV_UNROLL for (int j = 0; j < tt; j++) KV_UNROLL for (int h = 0; h < 2; h++)
        _mm256_storeu_ps(out[p * tt + j] + 8 * h, acc[p][j][h]);
#endif
}

/* The tiles of one element type: tt tokens with the panels the level gives
 * them; a last group of fewer panels repeats its last one, its outputs
 * going to `spare`. */
static inline __attribute__((always_inline)) void kv_panel_block_type(kvattn_type t, const unsigned char *panels,
                                                                      size_t stride, int np, const float *x, int ldx,
                                                                      int nt, int kc, float *y, int ldy,
                                                                      int accumulate) {
    float spare[8 * KV_PANEL_TILE_TOKENS][KV_PANEL_ROWS] = {{0}};
    const unsigned char *pw[8];
    const float *px[KV_PANEL_TILE_TOKENS];
    float *out[8 * KV_PANEL_TILE_TOKENS];
    for (int j0 = 0; j0 < nt; j0 += KV_PANEL_TILE_TOKENS) {
        const int tt = nt - j0 < KV_PANEL_TILE_TOKENS ? nt - j0 : KV_PANEL_TILE_TOKENS;
        const int pp = kv_panel_tile_panels(tt);
        for (int j = 0; j < tt; j++) px[j] = x + (size_t)(j0 + j) * ldx;
        for (int p0 = 0; p0 < np; p0 += pp) {
            for (int p = 0; p < pp; p++) {
                const int real = p0 + p < np;
                pw[p] = panels + (size_t)(real ? p0 + p : np - 1) * stride;
                for (int j = 0; j < tt; j++)
                    out[p * tt + j] =
                        real ? y + (size_t)(j0 + j) * ldy + (size_t)(p0 + p) * KV_PANEL_ROWS : spare[p * tt + j];
            }
            switch (tt) {
#define KV_PANEL_CASE(TT)                                                                                              \
    case TT: kv_panel_tile(t, kv_panel_tile_panels(TT), TT, pw, px, out, kc, accumulate); break;
                KV_PANEL_CASE(1)
                KV_PANEL_CASE(2)
                KV_PANEL_CASE(3)
                KV_PANEL_CASE(4)
                KV_PANEL_CASE(5)
                KV_PANEL_CASE(6)
#if KV_PANEL_TILE_TOKENS > 6
                KV_PANEL_CASE(7)
                KV_PANEL_CASE(8)
#endif
#undef KV_PANEL_CASE
            }
        }
    }
}
#endif

/* kv_panel_block_ref's result, a tile of panels × tokens at a time: each
 * group of panels meets all nt tokens before the next group is read. */
static inline void isa_panel_block(kvattn_type t, const unsigned char *panels, size_t stride, int np, const float *x,
                                   int ldx, int nt, int kc, float *y, int ldy, int accumulate) {
#if KV_HAVE_AVX2
    if (t == KVATTN_TYPE_F16)
        kv_panel_block_type(KVATTN_TYPE_F16, panels, stride, np, x, ldx, nt, kc, y, ldy, accumulate);
    else kv_panel_block_type(KVATTN_TYPE_BF16, panels, stride, np, x, ldx, nt, kc, y, ldy, accumulate);
#else
    kv_panel_block_ref(t, panels, stride, np, x, ldx, nt, kc, y, ldy, accumulate);
#endif
}

#endif
