/* attend_probe: one decode step of the attention kernel (kv_attend) alone, on
 * rows laid out as the cache lays them out, cold or already in cache — the
 * probe behind the README's kernel-level figures. The step's output is first
 * checked against the scalar twin (kv_attend_ref); a mismatch exits 1.
 *
 *   attend_probe HEADS KV_HEADS HEAD_DIM CONTEXT [--reps N] [--warm]
 *                [--type f16|bf16|q8_0] [--v-dim D]
 *
 * --v-dim D: V is the first D elements of the K rows (MLA's latent cache:
 * HEAD_DIM = kv_lora_rank + rope dim, D = kv_lora_rank). Threads: OMP_NUM_THREADS.
 * Prints the best step time, the KV bytes read per step over it, and the
 * attention flops over it. */
#define _POSIX_C_SOURCE 200809L
#include "attn/attn_core.h"
#include "kernels/kernels.h"
#include "kernels/vec.h"

#include "probe_util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVICT_FLOATS ((size_t)512 << 20 >> 2) /* read between steps: past L2 and this machine's 300 MiB L3 */

static int parse_int(const char *what, const char *s, int lo, int hi) {
    return probe_int("attend_probe", what, s, lo, hi);
}

static float evict(const float *buf) {
    float s = 0.0f;
#pragma omp parallel for reduction(+ : s)
    for (size_t i = 0; i < EVICT_FLOATS; i += 16) s += buf[i];
    return s;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: attend_probe HEADS KV_HEADS HEAD_DIM CONTEXT [--reps N] [--warm] "
                        "[--type f16|bf16|q8_0] [--v-dim D]\n");
        return 2;
    }
    const int H = parse_int("HEADS", argv[1], 1, 1024), KVH = parse_int("KV_HEADS", argv[2], 1, H);
    const int D = parse_int("HEAD_DIM", argv[3], 1, 4096), N = parse_int("CONTEXT", argv[4], 1, 1 << 20);
    int reps = 10, warm = 0, vdim = 0;
    kvattn_type type = KVATTN_TYPE_F16;
    for (int a = 5; a < argc; a++) {
        if (!strcmp(argv[a], "--warm")) warm = 1;
        else if (!strcmp(argv[a], "--reps") && a + 1 < argc) reps = parse_int("--reps", argv[++a], 1, 100000);
        else if (!strcmp(argv[a], "--v-dim") && a + 1 < argc) vdim = parse_int("--v-dim", argv[++a], 1, D);
        else if (!strcmp(argv[a], "--type") && a + 1 < argc) type = probe_type("attend_probe", argv[++a], 0);
        else {
            fprintf(stderr, "attend_probe: unknown or incomplete option '%s'\n", argv[a]);
            return 2;
        }
    }
    if (H % KVH) {
        fprintf(stderr, "attend_probe: HEADS %d is not a multiple of KV_HEADS %d\n", H, KVH);
        return 2;
    }
    if (type == KVATTN_TYPE_Q8_0 && D % 32) {
        fprintf(stderr, "attend_probe: HEAD_DIM %d: q8_0 rows are whole blocks of 32\n", D);
        return 2;
    }
    if (vdim && KVH != 1) {
        fprintf(stderr, "attend_probe: --v-dim (V inside K, MLA) needs KV_HEADS 1, not %d\n", KVH);
        return 2;
    }

    /* head-major rows, as in the cache: K heads, then V heads (none with --v-dim) */
    const size_t row = kvattn_row_bytes(type, D), head = row * (size_t)N, n_heads_stored = vdim ? 1 : 2 * (size_t)KVH;
    unsigned char *rows = kv_alloc_aligned(head * n_heads_stored);
    float *q = malloc(sizeof(float) * (size_t)H * D), *x = malloc(sizeof(float) * D);
    const int vd = vdim ? vdim : D;
    float *out = malloc(sizeof(float) * (size_t)H * vd), *want = malloc(sizeof(float) * (size_t)H * vd);
    float *evict_buf = warm ? NULL : kv_alloc_aligned(EVICT_FLOATS * sizeof(float));
    if (!rows || !q || !x || !out || !want || (!warm && !evict_buf)) {
        fprintf(stderr, "attend_probe: out of memory (%zu bytes of rows)\n", head * n_heads_stored);
        return 1;
    }
    kv_rng rng = {KV_RNG_DEFAULT_SEED};
    for (size_t r = 0; r < n_heads_stored * (size_t)N; r++) {
        for (int c = 0; c < D; c++) x[c] = kv_rng_uniform(&rng);
        kv_row_store(type, x, rows + r * row, D);
    }
    for (size_t i = 0; i < (size_t)H * D; i++) q[i] = kv_rng_uniform(&rng);
    if (evict_buf) memset(evict_buf, 0, EVICT_FLOATS * sizeof(float));
    const kv_rows k = {.type = type, .base = rows, .head_stride = head, .token_stride = row, .dim = D};
    const kv_rows v =
        vdim ? (kv_rows){.type = type, .base = rows, .head_stride = head, .token_stride = row, .dim = vdim}
             : (kv_rows){.type = type, .base = rows + head * KVH, .head_stride = head, .token_stride = row, .dim = D};
    const float scale = 1.0f / sqrtf((float)D);

    /* the step's output against the scalar twin: same bound as test_kernels' attention checks */
    if (kv_attend(q, 1, H, KVH, &k, &v, N - 1, scale, out) != 0) {
        fprintf(stderr, "attend_probe: kv_attend: out of memory\n");
        return 1;
    }
    kv_attend_ref(q, 1, H, KVH, &k, &v, N - 1, scale, want);
    double err = 0.0;
    for (size_t i = 0; i < (size_t)H * vd; i++) err = fmax(err, fabs((double)out[i] - want[i]));
    if (!(err <= 1e-4)) {
        fprintf(stderr, "attend_probe: kv_attend differs from kv_attend_ref by %.3g\n", err);
        return 1;
    }

    double best = 1e30;
    volatile float sink = 0.0f;
    for (int r = 0; r < reps; r++) {
        if (!warm) sink += evict(evict_buf);
        const double t0 = probe_now();
        kv_attend(q, 1, H, KVH, &k, &v, N - 1, scale, out);
        const double t = probe_now() - t0;
        if (t < best) best = t;
    }
    (void)sink;
    const double bytes = (double)head * (double)n_heads_stored, flops = 2.0 * H * (double)N * (D + vd);
    printf("heads %d/%d, dim %d (v %d), ctx %d, %s, %s: %.1f us/step, %.2f GB/s, %.1f GFLOP/s (max err %.2g)\n", H, KVH,
           D, vd, N, kvattn_type_name(type), warm ? "warm" : "cold", best * 1e6, bytes / best / 1e9, flops / best / 1e9,
           err);
    kv_free_aligned(rows), kv_free_aligned(evict_buf);
    free(q), free(x), free(out), free(want);
    return 0;
}
