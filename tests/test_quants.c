/* GGUF's block-quantized weight types (Q4_0 … Q6_K).
 *  - Decoding against llama.cpp's gguf-py: tests/golden/quants.bin holds
 *    random blocks of every type and gguf-py's float32 values for them
 *    (tests/golden/gen_quants.py). Both compute each value with the same
 *    float32 operations in the same order (scale × sub-scale, then × quant,
 *    minus min), so they must be equal bit for bit.
 *  - The fast paths (row dot, axpy, load, and kv_matmul's decode GEMV and
 *    prefill GEMM) against the scalar reference on random blocks, odd row
 *    counts and one to three blocks per row. Tolerance 1e-5 of the largest
 *    output: f32 sums of at most 768 terms in another order (≈ sqrt(768) ·
 *    2^-24 relative); a wrong nibble, scale or block offset is O(1). */
#include "test_util.h"

#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "kernels/quants.h"
#include "kernels/vec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static kvattn_type from_ggml(uint32_t id) {
    switch (id) {
    case 2: return KVATTN_TYPE_Q4_0;
    case 3: return KVATTN_TYPE_Q4_1;
    case 6: return KVATTN_TYPE_Q5_0;
    case 7: return KVATTN_TYPE_Q5_1;
    case 10: return KVATTN_TYPE_Q2_K;
    case 11: return KVATTN_TYPE_Q3_K;
    case 12: return KVATTN_TYPE_Q4_K;
    case 13: return KVATTN_TYPE_Q5_K;
    case 14: return KVATTN_TYPE_Q6_K;
    default: return KVATTN_TYPE_COUNT;
    }
}

static void test_against_gguf_py(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/quants.bin", KVATTN_GOLDEN_DIR);
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL, "cannot open %s", path);
    if (!f) return;
    char magic[8];
    uint32_t count = 0;
    CHECK(fread(magic, 1, 8, f) == 8 && !memcmp(magic, "KVQUANT1", 8) && fread(&count, 4, 1, f) == 1, "%s: header",
          path);
    int seen = 0;
    for (uint32_t c = 0; c < count && c < 32; c++) {
        uint32_t h[4];
        if (fread(h, 4, 4, f) != 4) break;
        const kvattn_type t = from_ggml(h[0]);
        const size_t raw_bytes = (size_t)h[1] * h[2], n = (size_t)h[1] * h[3];
        unsigned char *raw = malloc(raw_bytes);
        float *want = malloc(sizeof(float) * n), *got = malloc(sizeof(float) * n);
        int ok = raw && want && got && fread(raw, 1, raw_bytes, f) == raw_bytes && fread(want, 4, n, f) == n;
        CHECK(ok && t != KVATTN_TYPE_COUNT, "%s: type %u unreadable", path, h[0]);
        if (ok && t != KVATTN_TYPE_COUNT) {
            seen++;
            CHECK(kv_quant_block_bytes(t) == h[2] && (uint32_t)kv_quant_block_elems(t) == h[3] &&
                      kvattn_row_bytes(t, (int64_t)n) == raw_bytes,
                  "%s: block size %zu/%d, gguf-py %u/%u", kvattn_type_name(t), kv_quant_block_bytes(t),
                  kv_quant_block_elems(t), h[2], h[3]);
            kv_dequant_row_ref(t, raw, got, (int)n);
            size_t differ = 0;
            for (size_t i = 0; i < n; i++) differ += memcmp(&got[i], &want[i], 4) != 0;
            CHECK(differ == 0, "%s: %zu of %zu values differ from gguf-py's (first block: %g vs %g)",
                  kvattn_type_name(t), differ, n, (double)got[h[3]], (double)want[h[3]]);
            for (size_t i = 0; i < n; i += 37) /* element access decodes the right block */
                CHECK(kv_row_get_ref(t, raw, (int)i) == want[i], "%s: element %zu", kvattn_type_name(t), i);
        }
        free(raw), free(want), free(got);
    }
    fclose(f);
    CHECK(seen == 9, "the fixture covers the nine types (%d)", seen);
}

/* Random blocks of t with finite scales of either sign (as gen_quants.py). */
static void random_blocks(test_rng *r, kvattn_type t, unsigned char *p, int blocks) {
    const size_t bytes = kv_quant_block_bytes(t);
    for (size_t i = 0; i < bytes * (size_t)blocks; i++) p[i] = (unsigned char)test_randint(r, 0, 255);
    int offs[2] = {-1, -1};
    switch (t) {
    case KVATTN_TYPE_Q4_1:
    case KVATTN_TYPE_Q5_1:
    case KVATTN_TYPE_Q4_K:
    case KVATTN_TYPE_Q5_K: offs[0] = 0, offs[1] = 2; break;
    case KVATTN_TYPE_Q2_K: offs[0] = 80, offs[1] = 82; break;
    case KVATTN_TYPE_Q3_K: offs[0] = 108; break;
    case KVATTN_TYPE_Q6_K: offs[0] = 208; break;
    default: offs[0] = 0; break;
    }
    for (int b = 0; b < blocks; b++)
        for (int k = 0; k < 2; k++)
            if (offs[k] >= 0) {
                uint16_t h = kv_f32_to_f16(0.05f * test_uniform(r));
                memcpy(p + (size_t)b * bytes + offs[k], &h, 2);
            }
}

/* The decode GEMV of block-quantized rows (x rounded to Q8_K, and by default
 * its rounding's residual rounded to steps of d/256; fast: not): equal to the
 * scalar integer twin within f32 rounding (1e-5), and within the rounding of
 * x of the exact product: each x_i moves by at most half its block's step d =
 * max|x|/127 fast, by default at most d/256 (half a step, or a whole one where
 * the residual clamps), so row r's error is at most Σ_i |w_ri| times that. */
static void q8k_checks(kvattn_type t, const unsigned char *w, int rows, int k, const float *x, const float *y,
                       const float *yr, double s, int fast) {
    kv_block_q8_k *xq = malloc(sizeof *xq * (size_t)(k / KV_QK_K));
    float *wr = malloc(sizeof(float) * k);
    kv_quantize_q8_k(x, xq, k);
    int wrong = 0; /* the quantizer's fast path against its definition */
    for (int b = 0; b < k / KV_QK_K; b++) {
        float amax = 0.0f;
        for (int i = 0; i < KV_QK_K; i++) amax = fmaxf(amax, fabsf(x[KV_QK_K * b + i]));
        int sums[16] = {0};
        for (int i = 0; i < KV_QK_K; i++) {
            const int q = (int)lrintf(x[KV_QK_K * b + i] * (127.0f / amax));
            wrong += xq[b].qs[i] != q;
            sums[i / 16] += q;
        }
        for (int g = 0; g < 16; g++) wrong += xq[b].bsums[g] != sums[g];
        wrong += xq[b].d != amax / 127.0f;
    }
    CHECK(wrong == 0, "%s: Q8_K activations: %d values off their definition", kvattn_type_name(t), wrong);
    kv_block_q8_k *xr = malloc(sizeof *xr * (size_t)(k / KV_QK_K));
    kv_quantize_q8_k_ref(x, xr, k);
    CHECK(memcmp(xq, xr, sizeof *xr * (size_t)(k / KV_QK_K)) == 0, "%s: Q8_K activations: the same bytes as the twin",
          kvattn_type_name(t));
    float *res = malloc(sizeof(float) * k); /* what the rounding to Q8_K left of x */
    for (int i = 0; i < k; i++) res[i] = x[i] - xq[i / KV_QK_K].d * xq[i / KV_QK_K].qs[i % KV_QK_K];
    kv_quantize_q8_k_residual_ref(x, xq, xr, k);
    kv_block_q8_k *xl = malloc(sizeof *xl * (size_t)(k / KV_QK_K));
    kv_quantize_q8_k_residual(x, xq, xl, k);
    CHECK(memcmp(xl, xr, sizeof *xr * (size_t)(k / KV_QK_K)) == 0,
          "%s: the residual's blocks: the same bytes as the twin", kvattn_type_name(t));
    free(xl);
    wrong = 0; /* the residual's blocks against their definition: step d/256, clamped to int8 */
    for (int b = 0; b < k / KV_QK_K; b++) {
        const float step = xq[b].d / 256.0f;
        int sums[16] = {0};
        for (int i = 0; i < KV_QK_K; i++) {
            const long q = lrint((double)res[KV_QK_K * b + i] / step);
            const int want = q > 127 ? 127 : q < -128 ? -128 : (int)q;
            wrong +=
                abs(xr[b].qs[i] - want) > (fabs(fabs((double)res[KV_QK_K * b + i] / step - (double)q) - 0.5) < 1e-3);
            sums[i / 16] += xr[b].qs[i];
        }
        for (int g = 0; g < 16; g++) wrong += xr[b].bsums[g] != sums[g];
        wrong += xr[b].d != step;
    }
    CHECK(wrong == 0, "%s: residual blocks: %d values off their definition", kvattn_type_name(t), wrong);
    for (int r = 0; r < rows; r++) {
        const unsigned char *row = w + (size_t)r * kvattn_row_bytes(t, k);
        const float ref =
            kv_quant_row_dot_q8_k_ref(t, row, xq, k) + (fast ? 0.0f : kv_quant_row_dot_q8_k_ref(t, row, xr, k));
        CHECK(fabsf(y[r] - ref) <= 1e-5 * s, "%s: integer GEMV row %d: %g vs scalar %g", kvattn_type_name(t), r,
              (double)y[r], (double)ref);
        kv_dequant_row_ref(t, row, wr, k);
        double bound = 1e-5 * s;
        for (int b = 0; b < k / KV_QK_K; b++) {
            double amax = 0, wsum = 0;
            for (int i = KV_QK_K * b; i < KV_QK_K * (b + 1); i++) amax = fmax(amax, fabs(x[i])), wsum += fabs(wr[i]);
            bound += wsum * (fast ? amax / 254.0 : amax / 127.0 / 256.0);
        }
        CHECK(fabs(y[r] - yr[r]) <= bound, "%s: integer GEMV row %d off the f32 product by %.3g > %.3g",
              kvattn_type_name(t), r, fabs(y[r] - yr[r]), bound);
    }
    free(xq), free(wr), free(xr), free(res);
}

static const kvattn_type TYPES[] = {KVATTN_TYPE_Q4_0, KVATTN_TYPE_Q4_1, KVATTN_TYPE_Q5_0,
                                    KVATTN_TYPE_Q5_1, KVATTN_TYPE_Q2_K, KVATTN_TYPE_Q3_K,
                                    KVATTN_TYPE_Q4_K, KVATTN_TYPE_Q5_K, KVATTN_TYPE_Q6_K};

static void test_fast_vs_reference(void) {
    test_rng r = {99};
    for (size_t ti = 0; ti < sizeof TYPES / sizeof *TYPES; ti++) {
        const kvattn_type t = TYPES[ti];
        /* 1-3 blocks per row; 32-element types also 8 (a whole 256, the Q8_K products' unit) */
        const int counts[] = {1, 2, 3, kv_quant_block_elems(t) == KV_QK ? 8 : 0};
        for (int ci = 0; ci < 4 && counts[ci]; ci++) {
            const int nb = counts[ci], k = nb * kv_quant_block_elems(t), rows = 37;
            const size_t row_bytes = kvattn_row_bytes(t, k);
            unsigned char *w = malloc(row_bytes * rows);
            random_blocks(&r, t, w, nb * rows);
            float *x = malloc(sizeof(float) * (size_t)k * 40), *y = malloc(sizeof(float) * (size_t)rows * 40);
            float *yr = malloc(sizeof(float) * (size_t)rows * 40), *a = malloc(sizeof(float) * k),
                  *ar = malloc(sizeof(float) * k), *row = malloc(sizeof(float) * k);
            test_fill(&r, x, (size_t)k * 40, 1.0f);
            /* one row: dot, axpy, load */
            const float dot = kv_row_dot(t, w, x, k), dot_ref = kv_row_dot_ref(t, w, x, k);
            CHECK(fabsf(dot - dot_ref) <= 1e-5f * (fabsf(dot_ref) + 1e-3f) * k, "%s k=%d: row dot %g vs %g",
                  kvattn_type_name(t), k, (double)dot, (double)dot_ref);
            for (int i = 0; i < k; i++) a[i] = ar[i] = x[i];
            kv_row_axpy(t, w, 0.7f, a, k);
            kv_row_axpy_ref(t, w, 0.7f, ar, k);
            CHECK(test_max_abs_diff(a, ar, k) <= 1e-6 * test_max_abs(ar, k), "%s k=%d: axpy", kvattn_type_name(t), k);
            kv_row_load(t, w, row, k);
            kv_row_load_ref(t, w, a, k);
            CHECK(!memcmp(row, a, sizeof(float) * k), "%s k=%d: load", kvattn_type_name(t), k);
            /* the projection: decode (T = 1), a short and a long prefill */
            const int Ts[] = {1, 5, 40};
            for (int i = 0; i < 3; i++) {
                const kvattn_matrix W = {.data = w, .type = t};
                kv_matmul(y, x, W, Ts[i], rows, k);
                kv_matmul_ref(yr, x, W, Ts[i], rows, k);
                const double s = test_max_abs(yr, (size_t)rows * Ts[i]);
                if (Ts[i] == 1 && kv_quant_has_q8_k_dot(t) && k % KV_QK_K == 0) { /* decode rounds x per 256 */
                    q8k_checks(t, w, rows, k, x, y, yr, s, 0);
                    kvattn_set_fast_products(1); /* llama.cpp's numerics: x rounded once */
                    kv_matmul(y, x, W, 1, rows, k);
                    kvattn_set_fast_products(0);
                    q8k_checks(t, w, rows, k, x, y, yr, s, 1);
                    continue;
                }
                const double e = test_max_abs_diff(y, yr, (size_t)rows * Ts[i]);
                CHECK(e <= 1e-5 * s, "%s: matmul T=%d, %d rows × %d: err %.3g of %.3g", kvattn_type_name(t), Ts[i],
                      rows, k, e, s);
            }
            free(w), free(x), free(y), free(yr), free(a), free(ar), free(row);
        }
    }
}

/* The 512-bit levels' integer products of the block types against Q8_K
 * activations (and their residual) give the AVX2 level's bits, so that the
 * level may run them wherever they measure faster: the integer sums are exact
 * whatever the vector width, and both then apply the same float operations. Random rows of 1, 5 and 9 super-blocks, one or the
 * KV_Q8_K_ROWS the GEMV reads side by side at once. */
static void test_q8_k_levels_agree(void) {
    const kv_kernels *avx2 = kv_kernels_for(KV_ISA_AVX2);
    const kv_isa wide[] = {KV_ISA_AVX512, KV_ISA_AVX512_VNNI};
    test_rng r = {0x5151};
    for (size_t wi = 0; wi < sizeof wide / sizeof *wide; wi++) {
        const kv_kernels *kern = kv_kernels_for(wide[wi]);
        if (!avx2 || !kern || !kern->quant_rows_dot_q8_k_512) {
            printf("K-quant products across levels: level %d not on this CPU, skipped\n", (int)wide[wi]);
            continue;
        }
        for (size_t ti = 0; ti < sizeof TYPES / sizeof *TYPES; ti++) {
            const kvattn_type t = TYPES[ti];
            for (int nb = 1; nb <= 9; nb += 4) {
                const int k = nb * KV_QK_K, nr = test_randint(&r, 1, KV_Q8_K_ROWS);
                const size_t row_bytes = kvattn_row_bytes(t, k);
                unsigned char *w = malloc(row_bytes * (size_t)nr);
                random_blocks(&r, t, w, (int)(row_bytes * (size_t)nr / kv_quant_block_bytes(t)));
                float *x = malloc(sizeof(float) * k);
                test_fill(&r, x, (size_t)k, 1.0f);
                kv_block_q8_k *xq = malloc(sizeof *xq * (size_t)nb * 2);
                kv_quantize_q8_k_ref(x, xq, k);
                kv_quantize_q8_k_residual_ref(x, xq, xq + nb, k);
                const void *rows[KV_Q8_K_ROWS];
                for (int i = 0; i < nr; i++) rows[i] = w + (size_t)i * row_bytes;
                for (int res = 0; res < 2; res++) {
                    float want[KV_Q8_K_ROWS], got[KV_Q8_K_ROWS];
                    avx2->quant_rows_dot_q8_k(t, rows, nr, xq, res ? xq + nb : NULL, k, want);
                    kern->quant_rows_dot_q8_k_512(t, rows, nr, xq, res ? xq + nb : NULL, k, got);
                    CHECK(!memcmp(want, got, sizeof(float) * (size_t)nr),
                          "%s, %d super-blocks × %d rows%s: level %d differs from avx2's bits", kvattn_type_name(t), nb,
                          nr, res ? " with the residual" : "", (int)wide[wi]);
                }
                free(w), free(x), free(xq);
            }
        }
    }
}

/* kvattn's Q4_0 writer against gguf-py's quantizer (llama.cpp's reference
 * rule) on the same floats: the same bytes. And Q4_K, which has no gguf-py
 * quantizer: its round trip is within the format's resolution. */
static void test_writers(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/quants_write.bin", KVATTN_GOLDEN_DIR);
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL, "cannot open %s", path);
    if (!f) return;
    char magic[8];
    uint32_t n = 0;
    int ok = fread(magic, 1, 8, f) == 8 && !memcmp(magic, "KVQWRIT1", 8) && fread(&n, 4, 1, f) == 1 && n % 32 == 0 &&
             n <= (1u << 20);
    float *x = ok ? malloc(sizeof(float) * n) : NULL;
    unsigned char *want = ok ? malloc(n / 32 * 18) : NULL, *got = ok ? malloc(n / 32 * 18) : NULL;
    ok = ok && x && want && got && fread(x, 4, n, f) == n && fread(want, 1, n / 32 * 18, f) == n / 32 * 18;
    CHECK(ok, "%s: unreadable", path);
    if (ok) {
        kv_row_store(KVATTN_TYPE_Q4_0, x, got, (int)n);
        size_t differ = 0;
        for (size_t b = 0; b < n / 32; b++) differ += memcmp(got + 18 * b, want + 18 * b, 18) != 0;
        CHECK(differ == 0, "q4_0 writer: %zu of %u blocks differ from gguf-py's", differ, n / 32);
    }
    fclose(f);
    free(x), free(want), free(got);
    /* Q4_K: each element within half a step of its sub-block's grid (step = the
     * 6-bit-quantized scale) plus the min's own rounding */
    test_rng r = {5};
    const int k = 4 * KV_QK_K;
    float *v = malloc(sizeof(float) * k), *back = malloc(sizeof(float) * k);
    unsigned char *row = malloc(kvattn_row_bytes(KVATTN_TYPE_Q4_K, k));
    for (int i = 0; i < k; i++)
        v[i] = test_uniform(&r) * (i < KV_QK_K ? 0.01f : 1.0f) + (i >= 3 * KV_QK_K ? 0.5f : 0.0f);
    kv_row_store(KVATTN_TYPE_Q4_K, v, row, k);
    kv_dequant_row_ref(KVATTN_TYPE_Q4_K, row, back, k);
    for (int s = 0; s < 4; s++) {
        double err = 0, range = 0;
        for (int i = s * KV_QK_K; i < (s + 1) * KV_QK_K; i++) {
            err = fmax(err, fabs(back[i] - v[i]));
            range = fmax(range, fabs(v[i]));
        }
        /* a 4-bit grid over a range of up to 2·max|x|: half a step is max|x|/15, and the 6-bit scales add ~1/63 */
        CHECK(err <= range * (1.0 / 15 + 2.0 / 63), "q4_k round trip, super-block %d: max err %.3g of range %.3g", s,
              err, range);
    }
    free(v), free(back), free(row);
}

/* The q8_0 weights' integer products with x rounded to 16 bits per 32: the
 * rounding gives the twin's bytes exactly; the products of 1 to 4 rows of 1
 * to 37 blocks equal the scalar twin's integer sums scaled within f32
 * rounding (1e-5 of Σ|terms|), and the exact product within the rounding of
 * x: each x_i moves by at most half its block's step d_b, so by Σ_i
 * |w_i|·d_b / 2. Weights span -128..127 and x holds all-zero blocks. */
static void test_q8_0_int_products(void) {
    test_rng r = {321};
    for (int it = 0; it < 120; it++) {
        const int nb = it < 3 ? it + 1 : test_randint(&r, 1, 37), n = 32 * nb, nr = 1 + it % KV_Q8_0_INT_ROWS;
        kv_block_q8_0 *w = malloc(sizeof *w * (size_t)(nb * nr));
        float *x = malloc(sizeof(float) * n), *d = malloc(sizeof(float) * nb), *dr = malloc(sizeof(float) * nb);
        int16_t *q = malloc(sizeof(int16_t) * n), *qr = malloc(sizeof(int16_t) * n);
        for (int b = 0; b < nb * nr; b++) {
            w[b].d = kv_f32_to_f16(ldexpf(test_uniform(&r) + 1.5f, test_randint(&r, -12, 2)));
            for (int i = 0; i < 32; i++) w[b].qs[i] = (int8_t)test_randint(&r, -128, 127);
        }
        test_fill(&r, x, (size_t)n, 1.0f);
        if (it % 5 == 4) memset(x, 0, sizeof(float) * 32); /* an all-zero block: scale 0 */
        kv_quantize_q16_32(x, q, d, n);
        kv_quantize_q16_32_ref(x, qr, dr, n);
        CHECK(!memcmp(q, qr, sizeof(int16_t) * n) && !memcmp(d, dr, sizeof(float) * nb),
              "q8_0 × 16-bit x (%d blocks): the rounding gives the twin's bytes", nb);
        const void *rows[KV_Q8_0_INT_ROWS];
        float y[KV_Q8_0_INT_ROWS];
        for (int k = 0; k < nr; k++) rows[k] = w + (size_t)k * nb;
        kv_q8_0_rows_dot_q16(rows, nr, q, d, n, y);
        for (int k = 0; k < nr; k++) {
            const kv_block_q8_0 *wr = w + (size_t)k * nb;
            double terms = 0.0, exact = 0.0, rounding = 0.0;
            for (int b = 0; b < nb; b++)
                for (int i = 0; i < 32; i++) {
                    const double wi = (double)kv_f16_to_f32(wr[b].d) * wr[b].qs[i];
                    terms += fabs(wi * d[b] * q[32 * b + i]);
                    exact += wi * x[32 * b + i];
                    rounding += fabs(wi) * d[b] / 2;
                }
            const float ref = kv_q8_0_row_dot_q16_ref(wr, q, d, n);
            CHECK(fabs(y[k] - ref) <= 1e-5 * terms + 1e-30, "q8_0 × 16-bit x, %d blocks, row %d of %d: %g vs twin %g",
                  nb, k, nr, (double)y[k], (double)ref);
            CHECK(fabs(y[k] - exact) <= rounding * (1 + 1e-5) + 1e-5 * terms + 1e-30,
                  "q8_0 × 16-bit x, %d blocks: %g vs the exact %g beyond the rounding of x (%g)", nb, (double)y[k],
                  exact, rounding);
        }
        free(w), free(x), free(d), free(dr), free(q), free(qr);
    }
}

/* The batched decode GEMV (kv_matmul_decode) gives each token bit for bit
 * what kv_matmul gives it alone, for every weight type, in each of the three
 * product modes (default, --fast-products, --exact), for batches of 1 to 70
 * tokens (past KV_DECODE_BATCH_MAX) and matrices of many row chunks. */
static void test_decode_batch(const char *isa) {
    test_rng r = {0xba7c4};
    const kvattn_type types[] = {KVATTN_TYPE_F32,  KVATTN_TYPE_F16,  KVATTN_TYPE_BF16, KVATTN_TYPE_Q8_0,
                                 KVATTN_TYPE_Q4_0, KVATTN_TYPE_Q4_1, KVATTN_TYPE_Q5_0, KVATTN_TYPE_Q5_1,
                                 KVATTN_TYPE_Q2_K, KVATTN_TYPE_Q3_K, KVATTN_TYPE_Q4_K, KVATTN_TYPE_Q5_K,
                                 KVATTN_TYPE_Q6_K};
    const int batches[] = {1, 3, 17, 70};
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        const kvattn_type t = types[ti];
        /* 16-bit and f32 rows: a k past whole vectors of 16 and of 8 (the kernels' tails), an odd row count */
        const int blocks = kv_is_block_quant(t) || t == KVATTN_TYPE_Q8_0;
        const int k = blocks ? 512 : 523, rows = blocks ? 700 : 301;
        const size_t row_bytes = kvattn_row_bytes(t, k);
        unsigned char *w = malloc(row_bytes * rows);
        if (kv_is_block_quant(t)) {
            random_blocks(&r, t, w, (int)(row_bytes * rows / kv_quant_block_bytes(t)));
        } else {
            float *wf = malloc(sizeof(float) * k);
            for (int i = 0; i < rows; i++) {
                test_fill(&r, wf, (size_t)k, 1.0f);
                kv_row_store(t, wf, w + (size_t)i * row_bytes, k);
            }
            free(wf);
        }
        const kvattn_matrix W = {.data = w, .type = t};
        float *x = malloc(sizeof(float) * (size_t)k * 70), *y = malloc(sizeof(float) * (size_t)rows * 70),
              *one = malloc(sizeof(float) * (size_t)rows);
        test_fill(&r, x, (size_t)k * 70, 1.0f);
        for (int mode = 0; mode < 3; mode++) {
            kvattn_set_fast_products(mode == 1);
            kvattn_set_exact(mode == 2);
            for (size_t bi = 0; bi < sizeof batches / sizeof *batches; bi++) {
                const int B = batches[bi];
                kv_matmul_decode(y, x, W, B, rows, k);
                int same = 1;
                for (int b = 0; b < B && same; b++) {
                    kv_matmul(one, x + (size_t)b * k, W, 1, rows, k);
                    same = !memcmp(one, y + (size_t)b * rows, sizeof(float) * rows);
                }
                CHECK(same, "[%s] %s, %s products: a batch of %d decode tokens differs from each alone", isa,
                      kvattn_type_name(t),
                      mode == 0   ? "default"
                      : mode == 1 ? "fast"
                                  : "exact",
                      B);
            }
        }
        kvattn_set_fast_products(0);
        kvattn_set_exact(0);
        free(w), free(x), free(y), free(one);
    }
}

/* Q4_K rows repacked in groups of 16: the scalar twin against the row
 * products (the same integer sums, scaled in another order: within f32
 * rounding, 1e-5 of the largest), the level's kernel against the twin bit for
 * bit, padding rows 0; and through kv_matmul with the groups as W.panels (as
 * a loaded model has them, where the level packs them): within 1e-5 of the
 * rows' products, and a decode batch the bits of each token alone. Rows 1,
 * 16 (one whole group), 37 (a ragged last one); 1, 3 and 8 super-blocks. */
static void test_q4_k_groups(const char *isa) {
    test_rng r = {0x4b16};
    const kvattn_type t = KVATTN_TYPE_Q4_K;
    const int row_counts[] = {1, 16, 37}, block_counts[] = {1, 3, 8};
    for (int ri = 0; ri < 3; ri++)
        for (int bi = 0; bi < 3; bi++) {
            const int rows = row_counts[ri], nb = block_counts[bi], k = nb * KV_QK_K;
            const int groups = (rows + KV_Q4_K_X16_ROWS - 1) / KV_Q4_K_X16_ROWS;
            const size_t row_bytes = kvattn_row_bytes(t, k);
            unsigned char *w = malloc(row_bytes * rows);
            random_blocks(&r, t, w, nb * rows);
            CHECK(kv_q4_k_x16_bytes(rows, k) == (size_t)groups * nb * sizeof(kv_block_q4_k_x16),
                  "Q4_K groups: size of %d × %d", rows, k);
            kv_block_q4_k_x16 *packed = malloc(kv_q4_k_x16_bytes(rows, k));
            kv_pack_q4_k_x16(w, row_bytes, rows, k, packed);
            float *x = malloc(sizeof(float) * k * 3), *y = malloc(sizeof(float) * rows * 3),
                  *yr = malloc(sizeof(float) * rows * 3), *one = malloc(sizeof(float) * (rows > k ? rows : k));
            test_fill(&r, x, (size_t)k * 3, 1.0f);
            kv_block_q8_k *xq = malloc(sizeof *xq * nb * 2);
            int32_t *msums = malloc(sizeof(int32_t) * 8 * nb);
            kv_quantize_q8_k_ref(x, xq, k);
            kv_quantize_q8_k_residual_ref(x, xq, xq + nb, k);
            for (int res = 0; res < 2; res++) {
                const kv_block_q8_k *xl = res ? xq + nb : NULL;
                kv_q4_k_x16_msums(xq, xl, nb, msums);
                for (int g = 0; g < groups; g++) {
                    float ref[KV_Q4_K_X16_ROWS], got[KV_Q4_K_X16_ROWS];
                    kv_q4_k_x16_dot_ref(packed + (size_t)g * nb, nb, xq, xl, msums, ref);
                    for (int i = 0; i < KV_Q4_K_X16_ROWS; i++) {
                        const int row = g * KV_Q4_K_X16_ROWS + i;
                        if (row >= rows) {
                            CHECK(ref[i] == 0.0f, "Q4_K groups: padding row %d gives %g", i, (double)ref[i]);
                            continue;
                        }
                        const unsigned char *wr = w + (size_t)row * row_bytes;
                        const float want = kv_quant_row_dot_q8_k_ref(t, wr, xq, k) +
                                           (xl ? kv_quant_row_dot_q8_k_ref(t, wr, xl, k) : 0);
                        kv_dequant_row_ref(t, wr, one, k); /* the terms' magnitude: f32 rounding is relative to it */
                        double mag = 0;
                        for (int e = 0; e < k; e++) mag += fabs((double)one[e] * x[e]);
                        CHECK(fabs((double)ref[i] - want) <= 1e-5 * mag,
                              "[%s] Q4_K groups, %d rows × %d%s: row %d %g vs the rows' %g", isa, rows, k,
                              res ? " with the residual" : "", row, (double)ref[i], (double)want);
                    }
                    if (kv_kernels_active->q4_k_x16_dot) {
                        kv_kernels_active->q4_k_x16_dot(packed + (size_t)g * nb, nb, xq, xl, msums, got);
                        CHECK(!memcmp(ref, got, sizeof ref),
                              "[%s] Q4_K groups, %d rows × %d%s: group %d differs "
                              "from the twin's bits",
                              isa, rows, k, res ? " with the residual" : "", g);
                    }
                }
            }
            if (kv_panels_bytes(t, rows, k)) { /* the level repacks: kv_matmul through the groups */
                const kvattn_matrix rows_W = {.data = w, .type = t}, W = {.data = w, .type = t, .panels = packed};
                double s = 0; /* the largest row's Σ|w·x|: f32 rounding is relative to it */
                for (int row = 0; row < rows; row++) {
                    kv_dequant_row_ref(t, w + (size_t)row * row_bytes, one, k);
                    double mag = 0;
                    for (int e = 0; e < k; e++) mag += fabs((double)one[e] * x[e]);
                    s = fmax(s, mag);
                }
                for (int mode = 0; mode < 3; mode++) { /* default, fast, exact (which reads the rows) */
                    const int fast = mode == 1;
                    kvattn_set_fast_products(fast);
                    kvattn_set_exact(mode == 2);
                    kv_matmul(yr, x, rows_W, 1, rows, k);
                    kv_matmul(y, x, W, 1, rows, k);
                    CHECK(test_max_abs_diff(y, yr, rows) <= 1e-5 * s, "[%s] Q4_K groups %s: GEMV off the rows' by %.3g",
                          isa,
                          kvattn_exact() ? "exact"
                          : fast         ? "fast"
                                         : "default",
                          test_max_abs_diff(y, yr, rows));
                    kv_matmul_decode(y, x, W, 3, rows, k);
                    int same = 1;
                    for (int b = 0; b < 3; b++) {
                        kv_matmul(one, x + (size_t)b * k, W, 1, rows, k);
                        same &= !memcmp(one, y + (size_t)b * rows, sizeof(float) * rows);
                    }
                    CHECK(same, "[%s] Q4_K groups %s: a decode batch differs from each token alone", isa,
                          kvattn_exact() ? "exact"
                          : fast         ? "fast"
                                         : "default");
                }
                kvattn_set_fast_products(0);
                kvattn_set_exact(0);
            }
            free(w), free(packed), free(x), free(y), free(yr), free(one), free(xq), free(msums);
        }
}

static void test_level(const char *isa) {
    test_fast_vs_reference();
    test_q8_0_int_products();
    test_decode_batch(isa);
    test_q4_k_groups(isa);
}

int main(void) {
    test_against_gguf_py();
    CHECK(test_each_isa(test_level) >= 1, "the scalar level runs everywhere");
    test_q8_k_levels_agree();
    test_writers();
    return test_finish("test_quants");
}
