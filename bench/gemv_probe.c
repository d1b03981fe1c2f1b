/* gemv_probe: the decode projection (kv_matmul of one token) alone, against
 * this machine's read bandwidth measured in the same run: the figure behind
 * the README's "the projections run at the bandwidth".
 *
 *   gemv_probe ROWS COLS [--mats N] [--type f32|f16|bf16|q8_0|q4_0|q4_k] [--reps R] [--mib M] [--tokens B] [--panels]
 *
 * Multiplies N distinct ROWS × COLS weight matrices (default 16), one after
 * another as a token's projections are, and prints the best of R passes
 * (default 5) in GB/s of weights read, with the bandwidth kvattn bench uses
 * (an M MiB buffer, default 512, eight streams per thread; the higher of the
 * readings before and after). One product is first checked against the
 * scalar twin, kv_matmul_ref; a mismatch exits 1. With --tokens B, the
 * product is a decode step of B sequences (kv_matmul_decode), compute-bound
 * from a few tokens on, and the figure is also given in GFLOP/s against the
 * FMA peak (kvattn_measure_machine). With --panels (f16, bf16), the matrices
 * are packed in panels first, as a loaded model's are. Threads: OMP_NUM_THREADS. */
#define _POSIX_C_SOURCE 200809L
#include "bench/bench.h"
#include "internal.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "kernels/quants.h"
#include "kernels/vec.h"

#include "probe_util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_int(const char *what, const char *s, int lo, int hi) {
    return probe_int("gemv_probe", what, s, lo, hi);
}

static double bandwidth(float *buf, size_t n) { return kv_read_gbps(buf, n, 8, 3); }

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: gemv_probe ROWS COLS [--mats N] [--type f32|f16|bf16|q8_0|q4_0|q4_k] [--reps R] [--mib "
                        "M] [--tokens B] "
                        "[--panels]\n");
        return 2;
    }
    const int rows = parse_int("ROWS", argv[1], 1, 1 << 20), cols = parse_int("COLS", argv[2], 1, 1 << 20);
    int mats = 16, reps = 5, mib = 512, tokens = 1, packed = 0;
    kvattn_type type = KVATTN_TYPE_F16;
    for (int a = 3; a < argc; a++) {
        if (!strcmp(argv[a], "--mats") && a + 1 < argc) mats = parse_int("--mats", argv[++a], 1, 4096);
        else if (!strcmp(argv[a], "--reps") && a + 1 < argc) reps = parse_int("--reps", argv[++a], 1, 100000);
        else if (!strcmp(argv[a], "--mib") && a + 1 < argc) mib = parse_int("--mib", argv[++a], 1, 65536);
        else if (!strcmp(argv[a], "--tokens") && a + 1 < argc) tokens = parse_int("--tokens", argv[++a], 1, 4096);
        else if (!strcmp(argv[a], "--type") && a + 1 < argc) {
            const char *name = argv[++a];
            if (kvattn_type_from_name(name, &type) != KVATTN_OK || !kv_quant_can_write(type))
                type = probe_type("gemv_probe", name, 1);
        } else if (!strcmp(argv[a], "--panels")) packed = 1;
        else {
            fprintf(stderr, "gemv_probe: unknown or incomplete option '%s'\n", argv[a]);
            return 2;
        }
    }
    const int block = kv_is_block_quant(type) ? kv_quant_block_elems(type) : type == KVATTN_TYPE_Q8_0 ? 32 : 1;
    if (cols % block) {
        fprintf(stderr, "gemv_probe: COLS %d: %s rows are whole blocks of %d\n", cols, kvattn_type_name(type), block);
        return 2;
    }
    if (packed && !kv_panels_bytes(type, rows, cols)) {
        fprintf(stderr, "gemv_probe: --panels: %s rows are not packed (f16 and bf16 are)\n", kvattn_type_name(type));
        return 2;
    }

    const size_t row_bytes = kvattn_row_bytes(type, cols), mat_bytes = row_bytes * (size_t)rows;
    const size_t probe_floats = (size_t)mib << 20 >> 2;
    unsigned char **w = calloc((size_t)mats, sizeof *w);
    kvattn_matrix *M = calloc((size_t)mats, sizeof *M);
    float *x = malloc(sizeof(float) * (size_t)cols * tokens), *y = malloc(sizeof(float) * (size_t)rows * tokens);
    float *want = malloc(sizeof(float) * (size_t)rows), *row = malloc(sizeof(float) * (size_t)cols);
    float *buf = kv_read_buffer(probe_floats);
    int ok = w && M && x && y && want && row && buf;
    for (int m = 0; ok && m < mats; m++) ok = (w[m] = kv_alloc_aligned(mat_bytes)) != NULL;
    if (!ok) {
        fprintf(stderr, "gemv_probe: out of memory (%d matrices of %zu bytes)\n", mats, mat_bytes);
        return 1;
    }
    kv_rng rng = {KV_RNG_DEFAULT_SEED};
    for (size_t c = 0; c < (size_t)cols * tokens; c++) x[c] = kv_rng_uniform(&rng);
    for (int m = 0; m < mats; m++)
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) row[c] = kv_rng_uniform(&rng);
            if (kv_is_block_quant(type)) kv_quantize_row(type, row, w[m] + (size_t)r * row_bytes, cols);
            else kv_row_store(type, row, w[m] + (size_t)r * row_bytes, cols);
        }
    free(row);
    for (int m = 0; m < mats; m++) {
        M[m] = (kvattn_matrix){.data = w[m], .type = type};
        void *p = packed ? kv_alloc_aligned(kv_panels_bytes(type, rows, cols)) : NULL;
        if (packed && !p) {
            fprintf(stderr, "gemv_probe: out of memory packing the matrices\n");
            return 1;
        }
        if (p) kv_pack_panels(M[m], rows, cols, p);
        M[m].panels = p;
    }

    /* one product against the scalar twin: the same terms summed in another order, each
     * |w·x| ≤ 1, so the two differ by at most cols · 2^-23 (bound taken with a 3× margin);
     * q8_0 rows meet x rounded to 16 bits per 32 (unless KVATTN_EXACT), which moves each
     * x_i by at most max|x| / 65534 ≤ 1/65534, so each |w_i| ≤ 1 term by as much */
    const kvattn_matrix W0 = M[0];
    kv_matmul(y, x, W0, 1, rows, cols);
    kv_matmul_ref(want, x, W0, 1, rows, cols);
    double err = 0.0;
    for (int r = 0; r < rows; r++) err = fmax(err, fabs((double)y[r] - want[r]));
    if (tokens > 1) { /* each token of a batch gets the bits it gets alone */
        kv_matmul_decode(y, x, W0, tokens, rows, cols);
        for (int t = 0; t < tokens; t++) {
            kv_matmul(want, x + (size_t)t * cols, W0, 1, rows, cols);
            if (memcmp(want, y + (size_t)t * rows, sizeof(float) * (size_t)rows)) {
                fprintf(stderr, "gemv_probe: token %d of a batch of %d differs from its product alone\n", t, tokens);
                return 1;
            }
        }
    }
    /* the block types meet x rounded to 8 bits per 256 (max|x|/254 each), and
     * unless --fast-products that rounding's residual too (max|x|/(254·254)) */
    const double rounding = kvattn_exact()             ? 0.0
                            : type == KVATTN_TYPE_Q8_0 ? cols / 65534.0
                            : !kv_is_block_quant(type) ? 0.0
                            : kvattn_fast_products()   ? cols / 254.0
                                                       : cols / (254.0 * 254.0);
    if (!(err <= 3.6e-7 * cols + rounding)) {
        fprintf(stderr, "gemv_probe: kv_matmul differs from kv_matmul_ref by %.3g\n", err);
        return 1;
    }

    const double gbps_before = bandwidth(buf, probe_floats);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        const double t0 = probe_now();
        for (int m = 0; m < mats; m++) kv_matmul_decode(y, x, M[m], tokens, rows, cols);
        const double t = probe_now() - t0;
        if (t < best) best = t;
    }
    const double gbps_after = bandwidth(buf, probe_floats), limit = fmax(gbps_before, gbps_after);
    const double gbps = (double)mat_bytes * mats / best / 1e9;
    printf("%d × %d × %d %s%s: %.2f GB/s, %.0f%% of the read bandwidth (%.2f GB/s; max err %.2g)\n", mats, rows, cols,
           kvattn_type_name(type), packed ? " in panels" : "", gbps, 100.0 * gbps / limit, limit, err);
    if (tokens > 1) {
        kvattn_machine_limits lim;
        if (kvattn_measure_machine(&lim) != KVATTN_OK) {
            fprintf(stderr, "gemv_probe: %s\n", kvattn_last_error());
            return 1;
        }
        const double gflops = 2.0 * rows * cols * (double)mats * tokens / best / 1e9;
        printf("%d tokens: %.1f GFLOP/s, %.0f%% of the FMA peak (%.1f GFLOP/s, %d threads, %d-bit)\n", tokens, gflops,
               100.0 * gflops / lim.fma_gflops, lim.fma_gflops, lim.threads, lim.simd_bits);
    }
    for (int m = 0; m < mats; m++) kv_free_aligned(w[m]), kv_free_aligned((void *)M[m].panels);
    kv_free_aligned(buf);
    free(w), free(M), free(x), free(y), free(want);
    return 0;
}
