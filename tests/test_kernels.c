/* SIMD paths against their scalar twins, on random sizes with tails, for
 * every cache element type; the attention core against its scalar twin;
 * f16/bf16 conversions against known bit patterns.
 *
 * Tolerance for a dot product of n terms in f32 with a different summation
 * order: |fast - ref| ≤ n · 2^-23 · Σ|a_i b_i| (the classic bound on
 * recursive summation, here for both orders); tests use that bound. */
#include "test_util.h"

#include "attn/attn_core.h"
#include "kernels/kernels.h"
#include "kernels/matmul_kernels.h"
#include "kernels/ops.h"
#include "kernels/tile.h"
#include "kernels/vec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

static const kvattn_type cache_types[] = {KVATTN_TYPE_F32, KVATTN_TYPE_F16, KVATTN_TYPE_BF16, KVATTN_TYPE_Q8_0};

static double abs_dot(kvattn_type t, const void *row, const float *x, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += fabs((double)kv_row_get_ref(t, row, i) * x[i]);
    return s;
}

static void test_row_ops(void) {
    test_rng r = {1};
    int sizes[] = {1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 128, 129, 576, 1000};
    float x[1024], y1[1024], y2[1024], src[1024];
    unsigned char row[4096];
    for (size_t ti = 0; ti < 4; ti++)
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            kvattn_type t = cache_types[ti];
            int n = sizes[si];
            test_fill(&r, src, (size_t)n, 3.0f);
            test_fill(&r, x, (size_t)n, 1.0f);
            memset(row, 0xAB, sizeof row);
            kv_row_store(t, src, row, n);
            double bound = (double)n * 2.4e-7 * abs_dot(t, row, x, n) + 1e-30;
            float fast = kv_row_dot(t, row, x, n), ref = kv_row_dot_ref(t, row, x, n);
            CHECK(fabs((double)fast - ref) <= bound, "%s dot n=%d: fast %.9g ref %.9g", kvattn_type_name(t), n,
                  (double)fast, (double)ref);
            test_fill(&r, y1, (size_t)n, 1.0f);
            memcpy(y2, y1, sizeof(float) * (size_t)n);
            kv_row_axpy(t, row, 0.37f, y1, n);
            kv_row_axpy_ref(t, row, 0.37f, y2, n);
            double e = test_max_abs_diff(y1, y2, (size_t)n);
            CHECK(e <= 1e-6 * (1.0 + test_max_abs(y2, (size_t)n)), "%s axpy n=%d: err %.3g", kvattn_type_name(t), n, e);
            /* Round trip error of the storage type. */
            kv_row_load_ref(t, row, y1, n);
            double worst = 0;
            for (int b = 0; b < n; b += 32) { /* per q8_0 block: error ≤ d/2 = max|block|/254 (+ f16 scale rounding) */
                int len = n - b < 32 ? n - b : 32;
                double amax = test_max_abs(src + b, (size_t)len);
                for (int i = b; i < b + len; i++) {
                    double err = fabs((double)y1[i] - src[i]), lim;
                    switch (t) {
                    case KVATTN_TYPE_F32: lim = 0; break;
                    case KVATTN_TYPE_F16: lim = fabs(src[i]) * 4.9e-4 + 6e-8; break;
                    case KVATTN_TYPE_BF16: lim = fabs(src[i]) * 3.91e-3 + 1e-38; break;
                    default: lim = amax / 254.0 * 1.01 + fabs(src[i]) * 4.9e-4; break;
                    }
                    if (err > lim) worst = fmax(worst, err - lim);
                }
            }
            CHECK(worst == 0.0, "%s store/load n=%d exceeds its rounding bound by %.3g", kvattn_type_name(t), n, worst);
        }
}

static void test_f16_bf16_bits(void) {
    struct {
        float f;
        uint16_t h;
    } known[] = {{0.0f, 0x0000},          {-0.0f, 0x8000},         {1.0f, 0x3c00},           {-2.0f, 0xc000},
                 {65504.0f, 0x7bff},      {65520.0f, 0x7c00},      {0.1f, 0x2e66},           {5.9604645e-8f, 0x0001},
                 {6.0975552e-5f, 0x03ff}, {6.1035156e-5f, 0x0400}, {2.9802322e-8f, 0x0000},  {1e-10f, 0x0000},
                 {INFINITY, 0x7c00},      {-INFINITY, 0xfc00},     {1.00048828125f, 0x3c00}, {1.0014648f, 0x3c02}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        CHECK(kv_f32_to_f16(known[i].f) == known[i].h, "f16(%.9g) = 0x%04x, want 0x%04x", (double)known[i].f,
              kv_f32_to_f16(known[i].f), known[i].h);
        if ((known[i].h & 0x7c00) != 0x7c00 && known[i].f == kv_f16_to_f32(known[i].h))
            CHECK(kv_f16_to_f32(kv_f32_to_f16(known[i].f)) == known[i].f, "f16 round trip %.9g", (double)known[i].f);
    }
    CHECK(isnan(kv_f16_to_f32(kv_f32_to_f16(NAN))), "f16 keeps NaN");
    /* Every half converts to f32 and back to itself (NaNs aside). */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++)
        if ((h & 0x7c00) != 0x7c00 || (h & 0x3ff) == 0) bad += kv_f32_to_f16(kv_f16_to_f32((uint16_t)h)) != h;
    CHECK(bad == 0, "%d halves do not round-trip", bad);
    CHECK(kv_f32_to_bf16(1.0f) == 0x3f80 && kv_f32_to_bf16(-2.0f) == 0xc000, "bf16 of 1, -2");
    CHECK(kv_f32_to_bf16(1.00390625f) == 0x3f80, "bf16 ties to even (down)");
    CHECK(kv_f32_to_bf16(1.01171875f) == 0x3f82, "bf16 ties to even (up)");
    CHECK(isnan(kv_bf16_to_f32(kv_f32_to_bf16(NAN))), "bf16 keeps NaN");
}

/* Projections with weights of every kernel type against the scalar twin. */
static void test_matmul(void) {
    test_rng r = {3};
    int shapes[][3] = {{1, 1, 1},
                       {1, 7, 9},
                       {3, 17, 33},
                       {20, 64, 100},
                       {17, 5, 129},
                       {33, 40, 8},
                       {2, 3, 64},
                       /* decode GEMV: several far-apart rows at once, ragged shares, 16/8/scalar tails */
                       {1, 300, 200},
                       {1, 1003, 72},
                       {1, 37, 2048},
                       {1, 129, 13},
                       /* prefill GEMM: token blocks of 64 and a ragged one, row blocks of 6 and a short
                       * one, column blocks of 256 and a ragged one (q8_0 rows widened from block 8 on);
                       * groups of 4 token blocks, the last group partly filled */
                       {70, 13, 600},
                       {300, 9, 70},
                       {128, 7, 300},
                       {16, 6, 256},
                       {65, 1, 33}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ti = 0; ti < 4; ti++) {
            int T = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
            kvattn_type t = cache_types[ti];
            size_t rb = kvattn_row_bytes(t, k);
            float *x = malloc(sizeof(float) * T * k), *Wf = malloc(sizeof(float) * k);
            unsigned char *W = malloc(rb * n);
            float *y1 = malloc(sizeof(float) * T * n), *y2 = malloc(sizeof(float) * T * n);
            test_fill(&r, x, (size_t)T * k, 1.0f);
            for (int i = 0; i < n; i++) {
                test_fill(&r, Wf, (size_t)k, 1.0f);
                kv_row_store(t, Wf, W + (size_t)i * rb, k);
            }
            kvattn_matrix M = {.data = W, .type = t};
            kv_matmul(y1, x, M, T, n, k);
            kv_matmul_ref(y2, x, M, T, n, k);
            /* the same k products summed in two orders differ by at most 2·k·2^-24·Σ|products|
             * (bound taken with a 2× margin), per output */
            int bad = 0;
            double worst = 0.0;
            for (int tk = 0; tk < T; tk++)
                for (int i = 0; i < n; i++) {
                    double mag = 0.0;
                    for (int c = 0; c < k; c++)
                        mag += fabs((double)kv_row_get_ref(t, W + (size_t)i * rb, c) * x[(size_t)tk * k + c]);
                    const double e = fabs((double)y1[(size_t)tk * n + i] - y2[(size_t)tk * n + i]);
                    bad += !(e <= 2.4e-7 * k * mag + 1e-30);
                    worst = fmax(worst, e / (mag + 1e-30));
                }
            CHECK(bad == 0, "matmul %s T=%d n=%d k=%d: %d outputs off, worst err %.3g of Σ|w·x|", kvattn_type_name(t),
                  T, n, k, bad, worst);
            free(x), free(Wf), free(W), free(y1), free(y2);
        }
}

/* y[t][r] = Σ_c W[r][c]·x[t][c] as one fmaf chain in column order: what the
 * panel kernels compute at every level, bit for bit. */
static void panel_chain_ref(const float *x, kvattn_type t, const unsigned char *W, int T, int n, int k, float *y) {
    const size_t rb = kvattn_row_bytes(t, k);
    for (int tk = 0; tk < T; tk++)
        for (int i = 0; i < n; i++) {
            float acc = 0.0f;
            for (int c = 0; c < k; c++)
                acc = fmaf(kv_row_get_ref(t, W + (size_t)i * rb, c), x[(size_t)tk * k + c], acc);
            y[(size_t)tk * n + i] = acc;
        }
}

/* f16/bf16 weights packed in panels: kv_matmul's outputs are the fmaf chain's
 * bits exactly (no tolerance: every level sums each output in one FMA chain),
 * for one token, a decode batch, and prompts that take the blocked GEMM
 * (more than 64 tokens: columns in blocks of 1024, tokens in blocks of 128),
 * with a last panel of fewer than 16 rows, on 1, 2 and 3 threads; and each
 * token alone gets the same bits as in any batch. */
static void test_panels(void) {
    test_rng r = {11};
    const int shapes[][3] = {{1, 1, 1},    {1, 16, 7},     {1, 17, 33},    {1, 300, 200}, {3, 40, 9},  {8, 129, 257},
                             {9, 64, 300}, {130, 33, 520}, {70, 20, 1100}, {5, 1, 1000},  {2, 200, 16}};
    const kvattn_type types[] = {KVATTN_TYPE_F16, KVATTN_TYPE_BF16};
    CHECK(kv_panels_bytes(KVATTN_TYPE_F32, 16, 16) == 0 && kv_panels_bytes(KVATTN_TYPE_Q8_0, 16, 32) == 0,
          "only f16 and bf16 rows are packed");
    CHECK(kv_panels_bytes(KVATTN_TYPE_F16, 17, 3) == 2 * 16 * 3 * 2, "a last panel is padded to 16 rows");
    CHECK(kv_panels_bytes(KVATTN_TYPE_BF16, INT32_MAX, 3) == (size_t)134217728 * 16 * 3 * 2,
          "2^31 - 1 rows: 2^27 panels");
    for (int threads = 1; threads <= 3; threads++) {
        kvattn_set_threads(threads);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int ti = 0; ti < 2; ti++) {
                const int T = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
                const kvattn_type t = types[ti];
                const size_t rb = kvattn_row_bytes(t, k);
                float *x = malloc(sizeof(float) * T * k), *Wf = malloc(sizeof(float) * k);
                unsigned char *W = malloc(rb * n), *P = malloc(kv_panels_bytes(t, n, k));
                float *y = malloc(sizeof(float) * T * n), *want = malloc(sizeof(float) * T * n),
                      *one = malloc(sizeof(float) * n);
                test_fill(&r, x, (size_t)T * k, 1.0f);
                for (int i = 0; i < n; i++) {
                    test_fill(&r, Wf, (size_t)k, 1.0f);
                    kv_row_store(t, Wf, W + (size_t)i * rb, k);
                }
                kvattn_matrix M = {.data = W, .type = t};
                kv_pack_panels(M, n, k, P);
                M.panels = P;
                CHECK(kv_matmul_is_decode(M), "a packed matrix runs every T alike");
                panel_chain_ref(x, t, W, T, n, k, want);
                kv_matmul(y, x, M, T, n, k);
                CHECK(!memcmp(y, want, sizeof(float) * T * n), "panels %s T=%d n=%d k=%d, %d threads: max diff %.3g",
                      kvattn_type_name(t), T, n, k, threads, test_max_abs_diff(y, want, (size_t)T * n));
                memset(y, 0, sizeof(float) * T * n);
                kv_matmul_decode(y, x, M, T, n, k);
                CHECK(!memcmp(y, want, sizeof(float) * T * n), "panels %s as a decode batch of %d", kvattn_type_name(t),
                      T);
                int alone_differs = 0;
                for (int tk = 0; tk < T; tk++) {
                    kv_matmul(one, x + (size_t)tk * k, M, 1, n, k);
                    alone_differs += memcmp(one, want + (size_t)tk * n, sizeof(float) * n) != 0;
                }
                CHECK(!alone_differs, "panels %s n=%d k=%d: %d of %d tokens alone differ from the batch",
                      kvattn_type_name(t), n, k, alone_differs, T);
                free(x), free(Wf), free(W), free(P), free(y), free(want), free(one);
            }
    }
    kvattn_set_threads(0);
}

/* kv_attend against its twin on a random cache: nkv heads × (pos + T) rows
 * of K (kd elements of type kt) and V (vd of type vt), or V as the leading vd
 * of each K row (MLA's latent rows; vt is then kt) when v_in_k. Returns the
 * error relative to the largest output. */
static double attend_vs_ref_kv(test_rng *r, kvattn_type kt, kvattn_type vt, int T, int H, int nkv, int kd, int vd,
                               int v_in_k, int pos) {
    const int n_ctx = pos + T;
    size_t krow = kvattn_row_bytes(kt, kd), vrow = kvattn_row_bytes(vt, vd);
    unsigned char *kb = malloc(krow * n_ctx * nkv), *vb = malloc(vrow * n_ctx * nkv);
    float *src = malloc(sizeof(float) * (kd > vd ? kd : vd));
    for (int h = 0; h < nkv; h++)
        for (int j = 0; j < n_ctx; j++) {
            test_fill(r, src, (size_t)kd, 2.0f);
            kv_row_store(kt, src, kb + ((size_t)h * n_ctx + j) * krow, kd);
            test_fill(r, src, (size_t)vd, 2.0f);
            kv_row_store(vt, src, vb + ((size_t)h * n_ctx + j) * vrow, vd);
        }
    kv_rows k = {.type = kt, .base = kb, .head_stride = krow * n_ctx, .token_stride = krow, .dim = kd};
    kv_rows v = {.type = vt, .base = vb, .head_stride = vrow * n_ctx, .token_stride = vrow, .dim = vd};
    if (v_in_k) v = (kv_rows){.type = kt, .base = kb, .head_stride = krow * n_ctx, .token_stride = krow, .dim = vd};
    float *q = malloc(sizeof(float) * T * H * kd), *o1 = malloc(sizeof(float) * T * H * vd);
    float *o2 = malloc(sizeof(float) * T * H * vd);
    test_fill(r, q, (size_t)T * H * kd, 1.0f);
    float scale = 1.0f / sqrtf((float)kd);
    double e = INFINITY;
    if (kv_attend(q, T, H, nkv, &k, &v, pos, scale, o1) == 0) {
        kv_attend_ref(q, T, H, nkv, &k, &v, pos, scale, o2);
        e = test_max_abs_diff(o1, o2, (size_t)T * H * vd) / (test_max_abs(o2, (size_t)T * H * vd) + 1e-30);
    }
    free(kb), free(vb), free(src), free(q), free(o1), free(o2);
    return e;
}

static double attend_vs_ref(test_rng *r, kvattn_type t, int T, int H, int nkv, int kd, int vd, int v_in_k, int pos) {
    return attend_vs_ref_kv(r, t, t, T, H, nkv, kd, vd, v_in_k, pos);
}

/* K and V rows of different types (llama.cpp's -ctk/-ctv): every ordered pair of
 * cache types, 1 to 16 queries per KV head (the 16-query blocks need one type and
 * fall back), widths whole and ragged, contexts across tiles and splits. */
static void test_attend_mixed_types(void) {
    test_rng r = {77};
    int cases = 0;
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) {
            if (a == b) continue;
            for (int g = 0; g < 3; g++, cases++) {
                const int group = g == 0 ? 1 : g == 1 ? 4 : 16, nkv = g == 2 ? 1 : 2, H = nkv * group;
                const int kd = cases % 2 ? 8 * test_randint(&r, 1, 12) : test_randint(&r, 1, 90);
                const int vd = cases % 2 ? 8 * test_randint(&r, 1, 12) : test_randint(&r, 1, 90);
                const int T = cases % 3 == 0 ? 2 : 1, pos = test_randint(&r, 0, 700);
                double e = attend_vs_ref_kv(&r, cache_types[a], cache_types[b], T, H, nkv, kd, vd, 0, pos);
                CHECK(e <= 1e-5, "attend K %s, V %s, H=%d nkv=%d kd=%d vd=%d pos=%d T=%d: rel err %.3g",
                      kvattn_type_name(cache_types[a]), kvattn_type_name(cache_types[b]), H, nkv, kd, vd, pos, T, e);
            }
        }
}

/* kv_attend (grouped, tiled, threaded, KV heads paired) vs kv_attend_ref on random caches. */
static void test_attend_core(void) {
    test_rng r = {5};
    /* The last 16 cases are single decode steps over one KV head: the
     * context is split across threads and merged (at 2+ threads). */
    const int split_ctx[16] = {1, 63, 64, 127, 128, 129, 191, 192, 200, 255, 256, 257, 511, 700, 1000, 1500};
    for (int it = 0; it < 84; it++) {
        kvattn_type t = cache_types[it % 4];
        /* 60..75: one KV head, split; 76..83: paired KV heads, and split too (few pairs per thread) */
        int split_case = it >= 60 && it < 76, paired_split = it >= 76;
        /* 4 and 8 KV heads: the work units pair KV heads (tiles of two heads in turn) */
        int nkv = split_case     ? 1
                  : paired_split ? 2 << (it % 3)
                  : it % 5 == 0  ? 8
                  : it % 5 == 1  ? 4
                                 : test_randint(&r, 1, 3);
        int group = test_randint(&r, 1, 5), H = nkv * group;
        int kd = test_randint(&r, 1, 70), vd = test_randint(&r, 1, 70);
        if (it % 2) kd = 8 * test_randint(&r, 1, 9), vd = 8 * test_randint(&r, 1, 9); /* in-place 16-bit/q8_0 paths */
        int T = split_case || paired_split ? 1 : test_randint(&r, 1, 4);
        int pos = split_case     ? split_ctx[it - 60] - 1
                  : paired_split ? test_randint(&r, 200, 1200)
                                 : test_randint(&r, 0, 150);
        double e = attend_vs_ref(&r, t, T, H, nkv, kd, vd, 0, pos);
        CHECK(e <= 1e-5, "attend %s H=%d nkv=%d kd=%d vd=%d pos=%d T=%d: rel err %.3g", kvattn_type_name(t), H, nkv, kd,
              vd, pos, T, e);
    }
}

/* Many queries per KV head (MQA, absorbed MLA: blocks of 16 queries over rows
 * read in place with 512-bit kernels, else tiles widened once into f32):
 * kv_attend against its twin for 16/32/48 queries, 1 or 2 KV heads, contexts
 * across tile borders and splits, separate V rows and V inside K (MLA's latent
 * rows), f32 rows of widths that are not a multiple of 16, q8_0 rows whose last
 * block is half used. */
static void test_attend_many_queries(void) {
    test_rng r = {21};
    const int ctxs[] = {1, 17, 64, 65, 130, 300, 1000};
    for (int it = 0; it < 21; it++) {
        kvattn_type t = cache_types[it % 4];
        int nkv = it % 3 == 2 ? 2 : 1, group = 16 * (1 + it % 3), H = nkv * group, shared = it % 2;
        int kd = 16 * test_randint(&r, 1, 12) - (it % 4 == 0 ? 3 : 0);              /* f32 rows of any width */
        if (t == KVATTN_TYPE_Q8_0 && it % 8 == 3) kd = 32 * test_randint(&r, 1, 6); /* whole q8_0 blocks */
        int vd = shared ? kd - test_randint(&r, 0, kd - 1) : 16 * test_randint(&r, 1, 8);
        if (t == KVATTN_TYPE_Q8_0 && it % 8 == 7) /* q8_0 rows whose last block is half used */
            kd = 16 * (2 * test_randint(&r, 1, 5) + 1), vd = shared ? 16 * test_randint(&r, 1, kd / 16) : kd;
        int T = it % 5 == 4 ? 3 : 1, pos = ctxs[it % 7] - 1;
        double e = attend_vs_ref(&r, t, T, H, nkv, kd, vd, shared, pos);
        CHECK(e <= 1e-5, "attend, many queries per KV head, %s H=%d nkv=%d kd=%d vd=%d%s pos=%d T=%d: rel err %.3g",
              kvattn_type_name(t), H, nkv, kd, vd, shared ? " (V in K)" : "", pos, T, e);
    }
}

/* Per-thread scratch kept between calls: reused while big enough, grown when
 * not, 64-byte aligned, separate per slot and per thread. */
static void test_thread_scratch(void) {
    float *a = kv_thread_scratch(KV_SCRATCH_ATTN, 1000), *b = kv_thread_scratch(KV_SCRATCH_GEMM, 1000);
    CHECK(a && b && a != b, "scratch: two slots, two buffers");
    CHECK(((uintptr_t)a & 63) == 0 && ((uintptr_t)b & 63) == 0, "scratch: 64-byte aligned");
    for (int i = 0; i < 1000; i++) a[i] = (float)i;
    CHECK(kv_thread_scratch(KV_SCRATCH_ATTN, 10) == a, "scratch: a smaller request reuses the buffer");
    float *big = kv_thread_scratch(KV_SCRATCH_ATTN, (size_t)1 << 22);
    CHECK(big != NULL, "scratch: grows to 16 MiB");
    if (big) big[((size_t)1 << 22) - 1] = 1.0f; /* all of it usable (ASan checks) */
    CHECK(kv_thread_scratch(KV_SCRATCH_SLOTS, 10) == NULL && kv_thread_scratch(KV_SCRATCH_ATTN, 0) == NULL &&
              kv_thread_scratch(KV_SCRATCH_ATTN, SIZE_MAX / 2) == NULL,
          "scratch: bad slot, zero and absurd sizes refused");
    float *mine[2] = {NULL, NULL};
#pragma omp parallel num_threads(2)
    {
#ifdef _OPENMP
        int t = omp_get_thread_num();
#else
        int t = 0;
#endif
        if (t < 2) mine[t] = kv_thread_scratch(KV_SCRATCH_ATTN, 64);
    }
    CHECK(mine[0] != NULL && (mine[1] == NULL || mine[1] != mine[0]), "scratch: each thread its own buffer");
}

/* The blocks of 16 queries (packing, scores, weights transposed, accumulation)
 * against plain per-row dot products and axpys of the same stored rows. Bounds
 * as for the in-place tile products. Every other case prefetches rows while
 * scoring (the rows themselves: a hint, which must not change any result). */
/* Prefetch spans: the takes reach every line of every range, in whole lines,
 * nothing before a range's first line or past as many lines as the longest
 * range has, and nothing past the last take. */
static void test_prefetch_spans(void) {
    test_rng r = {11};
    unsigned char *buf = kv_alloc_aligned(1 << 16);
    for (int it = 0; it < 200; it++) {
        const int n = test_randint(&r, 1, KV_PREFETCH_STREAMS);
        const void *start[KV_PREFETCH_STREAMS];
        size_t bytes[KV_PREFETCH_STREAMS], most = 0;
        for (int s = 0; s < n; s++) {
            start[s] = buf + test_randint(&r, 0, 4 * 4096 - 1) + 4096 * (size_t)(3 * s);
            bytes[s] = (size_t)test_randint(&r, 1, 4000);
            if (bytes[s] > most) most = bytes[s];
        }
        const kv_prefetch_spans pf = kv_prefetch_spans_make(start, bytes, n);
        int seen_all = 1, inside = 1;
        for (int s = 0; s < n; s++) {
            const uintptr_t a = (uintptr_t)start[s];
            for (uintptr_t line = a & ~(uintptr_t)63; line < a + bytes[s]; line += 64) {
                int seen = 0;
                for (unsigned i = 0; i < pf.takes && !seen; i++) seen = (uintptr_t)kv_prefetch_line(&pf, i) == line;
                seen_all &= seen;
            }
        }
        for (unsigned i = 0; i < pf.takes; i++) {
            const uintptr_t p = (uintptr_t)kv_prefetch_line(&pf, i);
            int in_some = 0;
            for (int s = 0; s < n; s++) {
                const uintptr_t a = (uintptr_t)start[s] & ~(uintptr_t)63;
                in_some |= p % 64 == 0 && p >= a && p < a + (63 + most + 63) / 64 * 64; /* the longest range's lines */
            }
            inside &= in_some;
        }
        CHECK(seen_all, "prefetch spans (%d ranges): every line of every range is taken", n);
        CHECK(inside, "prefetch spans (%d ranges): every take is a whole line within a span", n);
        CHECK(kv_prefetch_line(&pf, pf.takes) == NULL && pf.takes % (1u << pf.spans_log2) == 0,
              "prefetch spans (%d ranges): nothing past the last take", n);
    }
    CHECK(kv_prefetch_line(&kv_prefetch_none, 0) == NULL, "no prefetch spans: no line");
    kv_free_aligned(buf);
}

/* The 16-query kernels: packing and widening against their twins (exact), scores and the
 * accumulation against per-row dot/axpy over the rows as stored, the softmax
 * against its twin. 1 to 140 rows (whole and partial blocks of 16, more than
 * the q8_0 scales gathered up front), 16 to 576 columns, every cache type,
 * rows at strides longer than a row; the accumulation reads the leading
 * columns of wider rows as MLA does. Bounds: the rounding of a d-term
 * (scores) or N-term (accumulation) f32 sum, as in test_tile_kernels;
 * kv_exp_avx512 is within a few ulp of expf. */

static void test_q16_kernels(void) {
    test_rng r = {13};
    const int pack_dims[] = {1, 15, 16, 17, 40, 576};
    for (size_t i = 0; i < sizeof pack_dims / sizeof pack_dims[0]; i++) { /* whole blocks of 16 and tails */
        const int d = pack_dims[i], ldq = d + 3;
        float *Q = malloc(sizeof(float) * 16 * ldq), *Qt = malloc(sizeof(float) * 16 * d),
              *Qt2 = malloc(sizeof(float) * 16 * d);
        test_fill(&r, Q, (size_t)16 * ldq, 1.0f);
        kv_q16_pack(Q, ldq, d, Qt);
        kv_q16_pack_ref(Q, ldq, d, Qt2);
        CHECK(memcmp(Qt, Qt2, sizeof(float) * 16 * d) == 0, "16-query packing d=%d is exact", d);
        free(Q), free(Qt), free(Qt2);
    }
    for (int it = 0; it < 48; it++) {
        kvattn_type t = cache_types[it % 4]; /* f32: the widened copy that q8_0 tiles are read through */
        int N = it < 3 ? it + 1 : it < 6 ? 64 + 2 * (it - 3) * 19 : test_randint(&r, 1, 70);
        int d = 16 * (it < 6 ? 36 : test_randint(&r, 1, 36));
        /* q8_0: whole blocks, or (it % 8 == 7) a last block half used, as the cache stores a width
         * that is not a multiple of 32 */
        if (t == KVATTN_TYPE_Q8_0)
            d = it % 8 == 7 ? 16 * (2 * test_randint(&r, 0, 17) + 1) : 32 * (it < 6 ? 18 : test_randint(&r, 1, 18));
        const int vd = it % 2 ? d : 16 * test_randint(&r, 1, d / 16);
        /* rows at strides longer than a row (2-byte aligned for f16/bf16), or back to back */
        const size_t rb =
            kvattn_row_bytes(t, d) + (size_t)(it % 3 == 2 ? 0 : (it % 3) * 4 + (t == KVATTN_TYPE_F32 ? 0 : 2));
        float *Q = malloc(sizeof(float) * 16 * (d + 5)), *Qt = kv_alloc_aligned(sizeof(float) * 16 * d);
        float *row = malloc(sizeof(float) * d), *S1 = malloc(sizeof(float) * N * 16),
              *S2 = malloc(sizeof(float) * N * 16);
        float *O1 = malloc(sizeof(float) * 16 * vd), *O2 = malloc(sizeof(float) * 16 * vd),
              *O3 = malloc(sizeof(float) * 16 * vd);
        unsigned char *K = malloc(rb * N);
        test_fill(&r, Q, (size_t)16 * (d + 5), 1.0f);
        for (int j = 0; j < N; j++) {
            test_fill(&r, row, (size_t)d, 1.0f);
            kv_row_store(t, row, K + (size_t)j * rb, d);
        }
        float *W = malloc(sizeof(float) * N * d), *W2 = malloc(sizeof(float) * N * d);
        kv_q16_widen(t, K, rb, N, d, W);
        kv_q16_widen_ref(t, K, rb, N, d, W2);
        CHECK(memcmp(W, W2, sizeof(float) * N * d) == 0, "16-query widening (%s) N=%d d=%d is exact",
              kvattn_type_name(t), N, d);
        free(W), free(W2);
        const void *spans[4] = {K, K + rb, K, K + rb}; /* a hint over the rows: must not change results */
        const size_t span_bytes[4] = {rb * N, rb * (N - 1), rb, rb};
        kv_prefetch_spans pf = kv_prefetch_spans_make(spans, span_bytes, 1 + it % 4);
        kv_q16_pack(Q, d + 5, d, Qt); /* query rows at a stride longer than d */
        unsigned taken = 0;
        kv_q16_scores(Qt, t, K, rb, N, d, S1, it % 2 ? &pf : &kv_prefetch_none, &taken);
        kv_q16_scores_ref(Qt, t, K, rb, N, d, S2);
        double e = 0, e2 = test_max_abs_diff(S1, S2, (size_t)N * 16);
        for (int j = 0; j < N; j++)
            for (int i = 0; i < 16; i++)
                e = fmax(e, fabs(S1[j * 16 + i] - kv_row_dot_ref(t, K + (size_t)j * rb, Q + (size_t)i * (d + 5), d)));
        CHECK(e <= d * 2.4e-7 * 3 * d && e2 <= d * 2.4e-7 * 3 * d,
              "16-query scores (%s) N=%d d=%d: err %.3g, vs twin %.3g", kvattn_type_name(t), N, d, e, e2);
        /* softmax: running state from an earlier tile (m finite) or none (m = -inf) */
        float m1[16], l1[16], c1[16], m2[16], l2[16], c2[16];
        for (int i = 0; i < 16; i++) {
            m1[i] = m2[i] = it % 3 ? -INFINITY : 4.0f * test_uniform(&r) - 2.0f;
            l1[i] = l2[i] = it % 3 ? 0.0f : 1.0f + test_uniform(&r);
        }
        memcpy(S2, S1, sizeof(float) * 16 * N);
        const float scale = 1.0f / sqrtf((float)d);
        kv_q16_softmax(S1, N, scale, m1, l1, c1);
        kv_q16_softmax_ref(S2, N, scale, m2, l2, c2);
        double em = test_max_abs_diff(m1, m2, 16), ew = test_max_abs_diff(S1, S2, (size_t)N * 16);
        double el = 0, ec = test_max_abs_diff(c1, c2, 16);
        for (int i = 0; i < 16; i++) el = fmax(el, fabs(l1[i] - l2[i]) / l2[i]);
        CHECK(em == 0.0 && ew <= 4e-7 && ec <= 4e-7 && el <= 1e-6 * N,
              "16-query softmax N=%d: m %.3g, weights %.3g, corr %.3g, l (relative) %.3g", N, em, ew, ec, el);
        test_fill(&r, O1, (size_t)16 * vd, 1.0f);
        memcpy(O2, O1, sizeof(float) * 16 * vd);
        memcpy(O3, O1, sizeof(float) * 16 * vd);
        taken = 0;
        kv_q16_accum(S1, t, K, rb, N, vd, O1, vd, it % 2 ? &kv_prefetch_none : &pf, &taken);
        kv_q16_accum_ref(S1, t, K, rb, N, vd, O3, vd);
        for (int i = 0; i < 16; i++)
            for (int j = 0; j < N; j++) kv_row_axpy_ref(t, K + (size_t)j * rb, S1[j * 16 + i], O2 + (size_t)i * vd, vd);
        e = test_max_abs_diff(O1, O2, (size_t)16 * vd), e2 = test_max_abs_diff(O3, O2, (size_t)16 * vd);
        CHECK(e <= N * 2.4e-7 * 3 * (1.0 + N) && e2 == 0.0, "16-query accum (%s) N=%d d=%d of %d: err %.3g, twin %.3g",
              kvattn_type_name(t), N, vd, d, e, e2);
        free(Q), kv_free_aligned(Qt), free(row), free(S1), free(S2), free(O1), free(O2), free(O3), free(K);
    }
}

/* The transposed GEMV's kernel (kv_rows_axpy: MLA's query absorption) against
 * its twin: 1 to 8 rows, widths with and without 16- and 8-wide tails. Bound:
 * up to 8 products added to y in another order. */
static void test_rows_axpy(void) {
    test_rng r = {17};
    const int widths[] = {1, 7, 8, 16, 33, 64, 96, 512};
    for (int ti = 0; ti < 4; ti++)
        for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
            kvattn_type t = cache_types[ti];
            int n = widths[wi], nr = 1 + (int)(wi % 8);
            if (t == KVATTN_TYPE_Q8_0 && n % 32) continue; /* q8_0 rows are whole blocks */
            size_t rb = kvattn_row_bytes(t, n);
            unsigned char *buf = malloc(rb * 8);
            const unsigned char *rows[8];
            float *src = malloc(sizeof(float) * n), *y1 = malloc(sizeof(float) * n), *y2 = malloc(sizeof(float) * n),
                  a[8];
            for (int i = 0; i < nr; i++) {
                test_fill(&r, src, (size_t)n, 1.0f);
                kv_row_store(t, src, buf + (size_t)(7 - i) * rb, n); /* rows in reverse order in memory */
                rows[i] = buf + (size_t)(7 - i) * rb;
            }
            test_fill(&r, a, 8, 1.0f);
            test_fill(&r, y1, (size_t)n, 1.0f);
            memcpy(y2, y1, sizeof(float) * n);
            kv_rows_axpy(t, rows, nr, a, y1, n);
            kv_rows_axpy_ref(t, rows, nr, a, y2, n);
            double e = test_max_abs_diff(y1, y2, (size_t)n);
            CHECK(e <= 9 * 2.4e-7 * 10, "rows axpy %s nr=%d n=%d: err %.3g", kvattn_type_name(t), nr, n, e);
            free(buf), free(src), free(y1), free(y2);
        }
}

/* The prefill GEMM's micro-kernel against its twin: every token-vector count,
 * column counts with and without tails; bound as for the tile products. */
static void test_gemm_micro(void) {
    if (!kv_kernels_active->gemm_micro) return; /* the level's prefill runs on the tile products */
    test_rng r = {8};
    const int kcs[] = {1, 7, 64, 255, 256};
    for (size_t i = 0; i < sizeof kcs / sizeof kcs[0]; i++)
        for (int nv = 1; nv <= 4; nv++) {
            int kc = kcs[i];
            float *w = malloc(sizeof(float) * KV_GEMM_ROWS * 256), *xt = malloc(sizeof(float) * 256 * 64);
            float C1[KV_GEMM_ROWS * KV_GEMM_TOKENS], C2[KV_GEMM_ROWS * KV_GEMM_TOKENS];
            test_fill(&r, w, (size_t)KV_GEMM_ROWS * 256, 1.0f);
            test_fill(&r, xt, (size_t)256 * 64, 1.0f);
            test_fill(&r, C1, KV_GEMM_ROWS * KV_GEMM_TOKENS, 1.0f);
            memcpy(C2, C1, sizeof C1);
            kv_kernels_active->gemm_micro(w, 256, xt, 64, kc, nv, C1);
            kv_gemm_micro_ref(w, 256, xt, 64, kc, nv, C2);
            double e = 0;
            for (int rr = 0; rr < KV_GEMM_ROWS; rr++)
                for (int t = 0; t < 16 * nv; t++) e = fmax(e, fabs(C1[rr * 64 + t] - C2[rr * 64 + t]));
            CHECK(e <= kc * 2.4e-7 * (1.0 + kc), "gemm micro-kernel kc=%d nv=%d: err %.3g", kc, nv, e);
            free(w), free(xt);
        }
}

/* The tile kernels and softmax helpers against their scalar twins. Bounds:
 * f32 sums of up to a few hundred terms in another order (≤ n·2^-23·Σ|terms|),
 * and exp within 4 ulp. */
static void test_tile_kernels(void) {
    test_rng r = {11};
    for (int it = 0; it < 60; it++) {
        int G = test_randint(&r, 1, 9), N = test_randint(&r, 1, 70), d = test_randint(&r, 1, 80);
        if (it % 3 == 0) d = 8 * test_randint(&r, 1, 20); /* the direct 16-bit / q8_0 paths need d % 8 == 0 */
        float *Q = malloc(sizeof(float) * G * d), *K = malloc(sizeof(float) * N * d),
              *S1 = malloc(sizeof(float) * G * N);
        float *S2 = malloc(sizeof(float) * G * N), *O1 = malloc(sizeof(float) * G * d),
              *O2 = malloc(sizeof(float) * G * d);
        test_fill(&r, Q, (size_t)G * d, 1.0f);
        test_fill(&r, K, (size_t)N * d, 1.0f);
        kv_tile_scores_f32(Q, d, G, K, d, N, d, S1, N);
        kv_tile_scores_f32_ref(Q, d, G, K, d, N, d, S2, N);
        double e = test_max_abs_diff(S1, S2, (size_t)G * N);
        CHECK(e <= d * 2.4e-7 * d, "tile scores G=%d N=%d d=%d: err %.3g", G, N, d, e);
        test_fill(&r, O1, (size_t)G * d, 1.0f);
        memcpy(O2, O1, sizeof(float) * G * d);
        kv_tile_accum_f32(S2, N, G, K, d, N, d, O1, d);
        kv_tile_accum_f32_ref(S2, N, G, K, d, N, d, O2, d);
        e = test_max_abs_diff(O1, O2, (size_t)G * d);
        CHECK(e <= N * 2.4e-7 * (1.0 + N * d), "tile accum G=%d N=%d d=%d: err %.3g", G, N, d, e);
        if (d % 8 == 0) /* rows stored as f16 / bf16 / q8_0, read in place */
            for (int ti = 1; ti < 4; ti++) {
                kvattn_type t = cache_types[ti];
                size_t rb = kvattn_row_bytes(t, d);
                unsigned char *Kq = malloc(rb * N);
                for (int j = 0; j < N; j++) kv_row_store(t, K + (size_t)j * d, Kq + (size_t)j * rb, d);
                const void *span = Kq;
                const size_t span_bytes = rb * N;
                kv_prefetch_spans pf =
                    kv_prefetch_spans_make(&span, &span_bytes, 1); /* a hint: must not change results */
                kv_tile_scores(Q, d, G, t, Kq, rb, N, d, S1, N, it % 2 ? &pf : &kv_prefetch_none);
                for (int g = 0; g < G; g++)
                    for (int j = 0; j < N; j++)
                        S2[g * N + j] = kv_row_dot_ref(t, Kq + (size_t)j * rb, Q + (size_t)g * d, d);
                e = test_max_abs_diff(S1, S2, (size_t)G * N);
                CHECK(e <= d * 2.4e-7 * 3 * d, "tile scores in place (%s) G=%d N=%d d=%d: err %.3g",
                      kvattn_type_name(t), G, N, d, e);
                test_fill(&r, O1, (size_t)G * d, 1.0f);
                memcpy(O2, O1, sizeof(float) * G * d);
                kv_tile_accum(S2, N, G, t, Kq, rb, N, d, O1, d, it % 2 ? &pf : &kv_prefetch_none);
                for (int g = 0; g < G; g++)
                    for (int j = 0; j < N; j++)
                        kv_row_axpy_ref(t, Kq + (size_t)j * rb, S2[g * N + j], O2 + (size_t)g * d, d);
                e = test_max_abs_diff(O1, O2, (size_t)G * d);
                CHECK(e <= N * 2.4e-7 * 3 * (1.0 + N * d), "tile accum in place (%s) G=%d N=%d d=%d: err %.3g",
                      kvattn_type_name(t), G, N, d, e);
                float *row1 = malloc(sizeof(float) * d), *row2 = malloc(sizeof(float) * d);
                kv_row_load(t, Kq, row1, d);
                kv_row_load_ref(t, Kq, row2, d);
                CHECK(test_max_abs_diff(row1, row2, (size_t)d) == 0.0, "row load %s d=%d is exact", kvattn_type_name(t),
                      d);
                free(row1), free(row2), free(Kq);
            }
        free(Q), free(K), free(S1), free(S2), free(O1), free(O2);
    }
    /* exp: every 1/64 over the softmax's range, and the tails */
    float x[2048], y1[2048], y2[2048];
    int n = 0;
    for (float v = -100.0f; v <= 0.5f && n < 2000; v += 0.0625f) x[n++] = v;
    x[n++] = -INFINITY;
    x[n++] = 0.0f;
    float s1 = kv_exp_shift_sum(x, 0.25f, y1, n), s2 = kv_exp_shift_sum_ref(x, 0.25f, y2, n);
    double worst = 0;
    /* relative error, with an absolute floor where the vector exp flushes to 0 (below e^-87.3, subnormal) */
    for (int i = 0; i < n; i++) worst = fmax(worst, fabs((double)y1[i] - y2[i]) / (y2[i] + 1e-30));
    CHECK(worst <= 5e-7 && fabs(s1 - s2) <= 1e-6 * s2, "vector exp: worst rel err %.3g, sums %.9g %.9g", worst,
          (double)s1, (double)s2);
    CHECK(y1[n - 2] == 0.0f, "exp(-inf) = 0");
    float a[37], b[37];
    test_fill(&r, a, 37, 3.0f);
    memcpy(b, a, sizeof a);
    float m1 = kv_scale_max(a, 0.7f, -INFINITY, 37), m2 = kv_scale_max_ref(b, 0.7f, -INFINITY, 37);
    CHECK(m1 == m2 && !memcmp(a, b, sizeof a), "scale+max");
}

void test_kernels_avx2(void);   /* test_kernels_avx2.c */
void test_kernels_avx512(void); /* test_kernels_avx512.c */

/* Every kernel of the table in force against its scalar twin. */
static void test_level(const char *isa) {
    test_row_ops();
    test_matmul();
    test_panels();
    test_attend_core();
    test_attend_many_queries();
    test_attend_mixed_types();
    test_tile_kernels();
    test_q16_kernels();
    test_rows_axpy();
    test_gemm_micro();
#ifdef KVATTN_TEST_X86
    if (strcmp(isa, "scalar")) test_kernels_avx2();
    if (!strncmp(isa, "avx512", 6)) test_kernels_avx512();
#else
    (void)isa;
#endif
}

int main(void) {
    test_f16_bf16_bits();
    test_thread_scratch();
    test_prefetch_spans();
    CHECK(test_each_isa(test_level) >= 1, "the scalar level runs everywhere");
    return test_finish("test_kernels");
}
