/* The attention layer, proven against the no-cache reference and against
 * itself: cached decode == full recompute at every step, for every design;
 * GQA == MHA with replicated KV heads; MLA absorbed == naive.
 *
 * Tolerance: 1e-5 · max|out|. The fast path computes in f32 with dot
 * products of at most a few hundred terms here, whose relative rounding
 * error is about sqrt(n) · 2^-24 ≈ 1e-6; the reference accumulates in
 * double, so 1e-5 leaves a 10× margin while catching any real mistake
 * (a wrong head mapping, position or mask changes outputs by O(1)). */
#include "test_util.h"

#include "kernels/kernels.h"
#include "kernels/vec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-5

/* Runs tokens 0..T-1 through the cache in chunks (chunks[i] tokens each,
 * repeated from the last entry until T is reached). */
static kvattn_status run_cached_kv(const test_layer *L, kvattn_type k_type, kvattn_type v_type, kvattn_mla_mode mode,
                                   int T, const int *chunks, int n_chunks, const float *x, float *out) {
    kvattn_cache *c = NULL;
    kvattn_status st = kvattn_cache_create_kv(&L->cfg, 1, T, k_type, v_type, &c);
    if (st != KVATTN_OK) return st;
    const int D = L->cfg.d_model;
    for (int pos = 0, i = 0; pos < T && st == KVATTN_OK; i++) {
        int n = chunks[i < n_chunks ? i : n_chunks - 1];
        if (n > T - pos) n = T - pos;
        st = kvattn_attn_forward(&L->cfg, &L->w, c, 0, pos, n, x + (size_t)pos * D, out + (size_t)pos * D, mode);
        pos += n;
    }
    if (st == KVATTN_OK && kvattn_cache_length(c, 0) != T) st = KVATTN_ERR_INVALID_ARG;
    kvattn_cache_free(c);
    return st;
}

static kvattn_status run_cached(const test_layer *L, kvattn_type type, kvattn_mla_mode mode, int T, const int *chunks,
                                int n_chunks, const float *x, float *out) {
    return run_cached_kv(L, type, type, mode, T, chunks, n_chunks, x, out);
}

/* Cached (in the given chunking) vs reference, relative max error. */
static double cached_vs_reference(const test_layer *L, kvattn_mla_mode mode, int T, const int *chunks, int n_chunks,
                                  uint64_t seed) {
    const size_t n = (size_t)T * L->cfg.d_model;
    float *x = malloc(n * sizeof(float)), *out = malloc(n * sizeof(float)), *ref = malloc(n * sizeof(float));
    test_rng r = {seed};
    test_fill(&r, x, n, 1.0f);
    double err = INFINITY;
    kvattn_status st = run_cached(L, KVATTN_TYPE_F32, mode, T, chunks, n_chunks, x, out);
    kvattn_status sr = kvattn_attn_reference(&L->cfg, &L->w, T, x, ref);
    if (st == KVATTN_OK && sr == KVATTN_OK) err = test_max_abs_diff(out, ref, n) / test_max_abs(ref, n);
    else fprintf(stderr, "  run failed: %s\n", kvattn_last_error());
    free(x), free(out), free(ref);
    return err;
}

static const int DECODE_ONLY[] = {1};
static const int PREFILL_ONLY[] = {1 << 20};
static const int MIXED[] = {5, 1, 3, 1, 1, 17, 1};

static void check_all_schedules(const test_layer *L, kvattn_mla_mode mode, int T, const char *what, uint64_t seed) {
    double e;
    e = cached_vs_reference(L, mode, T, DECODE_ONLY, 1, seed);
    CHECK(e <= TOL, "%s: decode token by token, T=%d: rel err %.3g", what, T, e);
    e = cached_vs_reference(L, mode, T, PREFILL_ONLY, 1, seed);
    CHECK(e <= TOL, "%s: one prefill, T=%d: rel err %.3g", what, T, e);
    e = cached_vs_reference(L, mode, T, MIXED, 7, seed);
    CHECK(e <= TOL, "%s: mixed prefill/decode, T=%d: rel err %.3g", what, T, e);
}

static void test_gqa_family(void) {
    struct {
        int D, H, nkv, hd, n_rot, pairing, T;
        const char *what;
    } cases[] = {
        {32, 4, 4, 8, 8, 0, 12, "MHA"},
        {48, 8, 2, 6, 6, 0, 12, "GQA-2"},
        {48, 8, 4, 6, 6, 1, 12, "GQA-4 half-split"},
        {40, 5, 1, 8, 8, 0, 12, "MQA"},
        {27, 3, 3, 9, 8, 0, 10, "odd head dim 9"},
        {64, 4, 2, 16, 8, 1, 10, "partial rotary 8 of 16, half-split"},
        {16, 2, 1, 4, 4, 0, 1, "context 1"},
        {24, 4, 2, 6, 6, 0, 150, "prefill longer than a tile"},
        {7, 1, 1, 3, 2, 0, 9, "one head, d_model 7"},
    };
    static const char *const qwen[] = {"", "with Q/K/V biases", "with per-head Q/K norms", "with biases and norms"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kvattn_layer_config cfg = test_gqa_config(cases[i].D, cases[i].H, cases[i].nkv, cases[i].hd);
        cfg.rope.n_rot = cases[i].n_rot;
        cfg.rope.pairing = cases[i].pairing ? KVATTN_ROPE_HALF : KVATTN_ROPE_ADJACENT;
        for (int variant = 0; variant < 4; variant++) { /* plain, Qwen2-like, Qwen3-like, both */
            test_layer L;
            test_layer_init(&L, &cfg, 100 + i);
            test_layer_add_qwen(&L, variant & 1, variant & 2, 40 + i);
            char what[96];
            snprintf(what, sizeof what, "%s %s", cases[i].what, qwen[variant]);
            check_all_schedules(&L, KVATTN_MLA_ABSORBED, cases[i].T, what, 7 + i);
            test_layer_free(&L);
        }
    }
}

static void test_mla_designs(void) {
    struct {
        int D, H, ql, dc, dn, dr, dv, yarn, T;
        const char *what;
    } cases[] = {
        {48, 4, 0, 32, 16, 8, 12, 0, 12, "MLA, no q_lora"},
        {48, 4, 24, 32, 16, 8, 12, 0, 12, "MLA, q_lora 24"},
        {40, 3, 16, 20, 10, 16, 6, 1, 12, "MLA, q_lora, YaRN, d_c not a multiple of 8"},
        {33, 1, 0, 7, 5, 2, 3, 0, 1, "MLA, one head, context 1"},
        {32, 2, 8, 16, 8, 4, 8, 1, 140, "MLA, prefill longer than a tile"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kvattn_layer_config cfg =
            test_mla_config(cases[i].D, cases[i].H, cases[i].ql, cases[i].dc, cases[i].dn, cases[i].dr, cases[i].dv);
        if (cases[i].yarn) {
            cfg.rope.yarn_factor = 40.0f;
            cfg.rope.yarn_orig_ctx = 64;
            cfg.rope.yarn_mscale = 0.707f;
        }
        test_layer L;
        test_layer_init(&L, &cfg, 200 + i);
        char what[160];
        snprintf(what, sizeof what, "%s (absorbed)", cases[i].what);
        check_all_schedules(&L, KVATTN_MLA_ABSORBED, cases[i].T, what, 11 + i);
        snprintf(what, sizeof what, "%s (naive)", cases[i].what);
        check_all_schedules(&L, KVATTN_MLA_NAIVE, cases[i].T, what, 11 + i);
        test_layer_free(&L);
    }
}

/* Random shapes, random chunkings: build the general thing, not the case. */
static void test_random_shapes(void) {
    test_rng r = {4242};
    for (int it = 0; it < 40; it++) {
        kvattn_layer_config cfg;
        int mla = it % 2;
        if (!mla) {
            int nkv = test_randint(&r, 1, 4), group = test_randint(&r, 1, 4), hd = test_randint(&r, 1, 20);
            cfg = test_gqa_config(test_randint(&r, 1, 64), nkv * group, nkv, hd);
            cfg.rope.n_rot = 2 * test_randint(&r, 0, hd / 2);
            cfg.rope.pairing = test_randint(&r, 0, 1) ? KVATTN_ROPE_HALF : KVATTN_ROPE_ADJACENT;
        } else {
            cfg = test_mla_config(test_randint(&r, 1, 64), test_randint(&r, 1, 6),
                                  test_randint(&r, 0, 1) * test_randint(&r, 1, 24), test_randint(&r, 1, 40),
                                  test_randint(&r, 1, 12), 2 * test_randint(&r, 1, 6), test_randint(&r, 1, 12));
            cfg.rope.pairing = test_randint(&r, 0, 1) ? KVATTN_ROPE_HALF : KVATTN_ROPE_ADJACENT;
        }
        int T = test_randint(&r, 1, 90);
        int chunks[4] = {test_randint(&r, 1, T), test_randint(&r, 1, 3), test_randint(&r, 1, 70), 1};
        test_layer L;
        test_layer_init(&L, &cfg, 300 + (uint64_t)it);
        if (!mla) test_layer_add_qwen(&L, test_randint(&r, 0, 1), test_randint(&r, 0, 1), 600 + (uint64_t)it);
        kvattn_mla_mode mode = test_randint(&r, 0, 1) ? KVATTN_MLA_NAIVE : KVATTN_MLA_ABSORBED;
        double e = cached_vs_reference(&L, mode, T, chunks, 4, 500 + (uint64_t)it);
        char name[32];
        CHECK(e <= TOL, "random shape %d (%s, D=%d H=%d T=%d chunks %d,%d,%d): rel err %.3g", it,
              kvattn_config_design_name(&cfg, name, sizeof name), cfg.d_model, cfg.n_heads, T, chunks[0], chunks[1],
              chunks[2], e);
        test_layer_free(&L);
    }
}

/* GQA with n_kv KV heads equals MHA whose K/V heads are copies: query head h
 * of the MHA layer gets the K/V weights of KV head h / group. With n_kv = 1
 * this is MQA against MHA; with n_kv = H both sides are the same layer. */
static void test_gqa_equals_replicated_mha(void) {
    const int D = 40, H = 8, hd = 5, T = 20;
    int nkvs[] = {1, 2, 4, 8};
    for (size_t i = 0; i < 4; i++) {
        int nkv = nkvs[i], group = H / nkv;
        kvattn_layer_config gcfg = test_gqa_config(D, H, nkv, hd), mcfg = test_gqa_config(D, H, H, hd);
        test_layer G;
        test_layer_init(&G, &gcfg, 600 + i);
        float *wk = malloc(sizeof(float) * H * hd * D), *wv = malloc(sizeof(float) * H * hd * D);
        for (int h = 0; h < H; h++) {
            memcpy(wk + (size_t)h * hd * D, (const float *)G.w.wk.data + (size_t)(h / group) * hd * D,
                   sizeof(float) * hd * D);
            memcpy(wv + (size_t)h * hd * D, (const float *)G.w.wv.data + (size_t)(h / group) * hd * D,
                   sizeof(float) * hd * D);
        }
        test_layer M = G;
        M.cfg = mcfg;
        M.w.wk = kvattn_f32_matrix(wk);
        M.w.wv = kvattn_f32_matrix(wv);
        float *x = malloc(sizeof(float) * T * D), *og = malloc(sizeof(float) * T * D),
              *om = malloc(sizeof(float) * T * D);
        test_rng r = {77 + i};
        test_fill(&r, x, (size_t)T * D, 1.0f);
        CHECK_OK(run_cached(&G, KVATTN_TYPE_F32, KVATTN_MLA_ABSORBED, T, MIXED, 7, x, og));
        CHECK_OK(run_cached(&M, KVATTN_TYPE_F32, KVATTN_MLA_ABSORBED, T, MIXED, 7, x, om));
        double e = test_max_abs_diff(og, om, (size_t)T * D) / test_max_abs(om, (size_t)T * D);
        CHECK(e <= 1e-6, "GQA n_kv=%d vs replicated MHA: rel err %.3g", nkv, e);
        free(x), free(og), free(om), free(wk), free(wv);
        test_layer_free(&G);
    }
}

/* Absorbed and naive MLA over the same latent cache, every cache type. */
static void test_mla_absorbed_equals_naive(void) {
    kvattn_layer_config cfg = test_mla_config(64, 8, 32, 64, 16, 16, 16);
    cfg.rope.yarn_factor = 40.0f;
    cfg.rope.yarn_orig_ctx = 32;
    test_layer L;
    test_layer_init(&L, &cfg, 900);
    const int T = 80;
    const size_t n = (size_t)T * cfg.d_model;
    float *x = malloc(n * sizeof(float)), *oa = malloc(n * sizeof(float)), *on = malloc(n * sizeof(float));
    test_rng r = {31};
    test_fill(&r, x, n, 1.0f);
    kvattn_type types[] = {KVATTN_TYPE_F32, KVATTN_TYPE_F16, KVATTN_TYPE_BF16, KVATTN_TYPE_Q8_0};
    for (int ti = 0; ti < 4; ti++) {
        const int chunks[] = {33, 1};
        CHECK_OK(run_cached(&L, types[ti], KVATTN_MLA_ABSORBED, T, chunks, 2, x, oa));
        CHECK_OK(run_cached(&L, types[ti], KVATTN_MLA_NAIVE, T, chunks, 2, x, on));
        double e = test_max_abs_diff(oa, on, n) / test_max_abs(on, n);
        /* Both modes read the same (already rounded) cache rows, so the
         * tolerance is f32 rounding for every type. */
        CHECK(e <= TOL, "MLA absorbed vs naive, %s cache: rel err %.3g", kvattn_type_name(types[ti]), e);
    }
    free(x), free(oa), free(on);
    test_layer_free(&L);
}

/* Quantized caches stay close to the f32 cache. Bounds: the rounding of one
 * element (f16 2^-11, bf16 2^-8, q8_0 max|block|/254 ≈ 2^-8 of the block's
 * largest value) relative to outputs that average many elements, with a 4×
 * margin. */
static void test_cache_types_close_to_f32(void) {
    struct {
        kvattn_type t;
        double tol;
    } types[] = {{KVATTN_TYPE_F16, 2e-3}, {KVATTN_TYPE_BF16, 1.6e-2}, {KVATTN_TYPE_Q8_0, 1.6e-2}};
    kvattn_layer_config cfgs[2] = {test_gqa_config(64, 8, 2, 32), test_mla_config(64, 4, 0, 64, 16, 32, 16)};
    const int T = 70;
    for (int c = 0; c < 2; c++) {
        test_layer L;
        test_layer_init(&L, &cfgs[c], 1000 + c);
        const size_t n = (size_t)T * 64;
        float *x = malloc(n * sizeof(float)), *o32 = malloc(n * sizeof(float)), *oq = malloc(n * sizeof(float));
        test_rng r = {55};
        test_fill(&r, x, n, 1.0f);
        CHECK_OK(run_cached(&L, KVATTN_TYPE_F32, KVATTN_MLA_ABSORBED, T, MIXED, 7, x, o32));
        for (int ti = 0; ti < 3; ti++) {
            CHECK_OK(run_cached(&L, types[ti].t, KVATTN_MLA_ABSORBED, T, MIXED, 7, x, oq));
            double e = test_max_abs_diff(o32, oq, n) / test_max_abs(o32, n);
            CHECK(e <= types[ti].tol && e > 0.0, "%s: %s cache vs f32 cache: rel err %.3g (bound %.3g)",
                  c ? "MLA" : "GQA", kvattn_type_name(types[ti].t), e, types[ti].tol);
        }
        free(x), free(o32), free(oq);
        test_layer_free(&L);
    }
}

/* K and V rows of different types: the cache holds what the one formula says,
 * and the output stays within the coarser type's bound of the f32 cache (as
 * above); MLA, whose one latent row is K and V, refuses two types. */
static void test_mixed_kv_types(void) {
    const kvattn_layer_config cfg = test_gqa_config(64, 8, 2, 32);
    test_layer L;
    test_layer_init(&L, &cfg, 4242);
    const int T = 70;
    const size_t n = (size_t)T * 64;
    float *x = malloc(n * sizeof(float)), *o32 = malloc(n * sizeof(float)), *o = malloc(n * sizeof(float));
    test_rng r = {56};
    test_fill(&r, x, n, 1.0f);
    CHECK_OK(run_cached(&L, KVATTN_TYPE_F32, KVATTN_MLA_ABSORBED, T, MIXED, 7, x, o32));
    const kvattn_type kv[3][2] = {
        {KVATTN_TYPE_F16, KVATTN_TYPE_Q8_0}, {KVATTN_TYPE_Q8_0, KVATTN_TYPE_F16}, {KVATTN_TYPE_F32, KVATTN_TYPE_BF16}};
    for (int i = 0; i < 3; i++) {
        kvattn_cache *c = NULL;
        CHECK_OK(kvattn_cache_create_kv(&cfg, 3, 10, kv[i][0], kv[i][1], &c));
        /* per layer and token: 2 KV heads × (a K row + a V row) */
        const size_t want = 3 * 2 * (kvattn_row_bytes(kv[i][0], 32) + kvattn_row_bytes(kv[i][1], 32));
        CHECK(kvattn_cache_bytes_per_token(c) == want &&
                  kvattn_kv_bytes_per_token_kv(&cfg, 3, kv[i][0], kv[i][1]) == want &&
                  kvattn_cache_bytes_allocated(c) == 10 * want && kvattn_cache_type(c) == kv[i][0] &&
                  kvattn_cache_type_v(c) == kv[i][1],
              "K %s, V %s: %zu bytes/token, want %zu", kvattn_type_name(kv[i][0]), kvattn_type_name(kv[i][1]),
              kvattn_cache_bytes_per_token(c), want);
        kvattn_cache_free(c);
        CHECK_OK(run_cached_kv(&L, kv[i][0], kv[i][1], KVATTN_MLA_ABSORBED, T, MIXED, 7, x, o));
        double e = test_max_abs_diff(o32, o, n) / test_max_abs(o32, n);
        CHECK(e <= 1.6e-2 && e > 0.0, "K %s, V %s vs f32: rel err %.3g (bound 1.6e-2)", kvattn_type_name(kv[i][0]),
              kvattn_type_name(kv[i][1]), e);
    }
    const kvattn_layer_config mla = test_mla_config(64, 4, 0, 64, 16, 32, 16);
    kvattn_cache *c = NULL;
    CHECK(kvattn_cache_create_kv(&mla, 1, 8, KVATTN_TYPE_F16, KVATTN_TYPE_Q8_0, &c) == KVATTN_ERR_UNSUPPORTED && !c &&
              strstr(kvattn_last_error(), "MLA"),
          "MLA with two cache types: %s", kvattn_last_error());
    free(x), free(o32), free(o);
    test_layer_free(&L);
}

/* Truncating and rewriting a suffix gives the same as a fresh run. */
static void test_rewrite_suffix(void) {
    kvattn_layer_config cfgs[2] = {test_gqa_config(32, 4, 2, 8), test_mla_config(32, 4, 0, 16, 8, 4, 8)};
    for (int c = 0; c < 2; c++) {
        test_layer L;
        test_layer_init(&L, &cfgs[c], 1100 + c);
        const int T = 10, D = 32;
        float x1[10 * 32], x2[10 * 32], out[10 * 32], fresh[10 * 32];
        test_rng r = {91};
        test_fill(&r, x1, sizeof x1 / sizeof x1[0], 1.0f);
        memcpy(x2, x1, sizeof x1);
        test_fill(&r, x2 + 6 * D, 4 * D, 1.0f); /* a different continuation after token 6 */
        kvattn_cache *cache;
        CHECK_OK(kvattn_cache_create(&L.cfg, 1, T, KVATTN_TYPE_F32, &cache));
        CHECK_OK(kvattn_attn_forward(&L.cfg, &L.w, cache, 0, 0, T, x1, out, KVATTN_MLA_ABSORBED));
        CHECK_OK(kvattn_cache_truncate(cache, 6));
        CHECK(kvattn_cache_length(cache, 0) == 6, "length after truncate: %d", kvattn_cache_length(cache, 0));
        CHECK_OK(kvattn_attn_forward(&L.cfg, &L.w, cache, 0, 6, 4, x2 + 6 * D, out + 6 * D, KVATTN_MLA_ABSORBED));
        CHECK_OK(run_cached(&L, KVATTN_TYPE_F32, KVATTN_MLA_ABSORBED, T, PREFILL_ONLY, 1, x2, fresh));
        double e = test_max_abs_diff(out + 6 * D, fresh + 6 * D, 4 * D) / test_max_abs(fresh, (size_t)T * D);
        CHECK(e <= TOL, "rewritten suffix vs fresh run (%s): rel err %.3g", c ? "MLA" : "GQA", e);
        kvattn_cache_free(cache);
        test_layer_free(&L);
    }
}

/* One layer of a multi-layer cache does not disturb another. */
static void test_multi_layer_cache(void) {
    kvattn_layer_config cfg = test_gqa_config(24, 4, 2, 6);
    test_layer A, B;
    test_layer_init(&A, &cfg, 1200);
    test_layer_init(&B, &cfg, 1201);
    const int T = 9;
    float x[9 * 24], oa[9 * 24], ob[9 * 24], ra[9 * 24], rb[9 * 24];
    test_rng r = {5};
    test_fill(&r, x, sizeof x / sizeof x[0], 1.0f);
    kvattn_cache *c;
    CHECK_OK(kvattn_cache_create(&cfg, 2, T, KVATTN_TYPE_F32, &c));
    for (int t = 0; t < T; t++) { /* interleave the layers as a model would */
        CHECK_OK(kvattn_attn_forward(&cfg, &A.w, c, 0, t, 1, x + t * 24, oa + t * 24, KVATTN_MLA_ABSORBED));
        CHECK_OK(kvattn_attn_forward(&cfg, &B.w, c, 1, t, 1, x + t * 24, ob + t * 24, KVATTN_MLA_ABSORBED));
    }
    CHECK(kvattn_cache_length(c, -1) == T, "cache length %d", kvattn_cache_length(c, -1));
    CHECK_OK(kvattn_attn_reference(&cfg, &A.w, T, x, ra));
    CHECK_OK(kvattn_attn_reference(&cfg, &B.w, T, x, rb));
    CHECK(test_max_abs_diff(oa, ra, sizeof x / sizeof x[0]) <= TOL * test_max_abs(ra, sizeof x / sizeof x[0]),
          "layer 0");
    CHECK(test_max_abs_diff(ob, rb, sizeof x / sizeof x[0]) <= TOL * test_max_abs(rb, sizeof x / sizeof x[0]),
          "layer 1");
    kvattn_cache_free(c);
    test_layer_free(&A);
    test_layer_free(&B);
}

/* The same work on 1 and 2 threads gives the same numbers. */
static void test_thread_count_invariance(void) {
    kvattn_layer_config cfg = test_mla_config(64, 8, 16, 64, 16, 16, 16);
    test_layer L;
    test_layer_init(&L, &cfg, 1300);
    const int T = 40;
    const size_t n = (size_t)T * 64;
    float *x = malloc(n * sizeof(float)), *o1 = malloc(n * sizeof(float)), *o2 = malloc(n * sizeof(float));
    test_rng r = {8};
    test_fill(&r, x, n, 1.0f);
    kvattn_set_threads(1);
    CHECK_OK(run_cached(&L, KVATTN_TYPE_F16, KVATTN_MLA_ABSORBED, T, MIXED, 7, x, o1));
    kvattn_set_threads(2);
    CHECK_OK(run_cached(&L, KVATTN_TYPE_F16, KVATTN_MLA_ABSORBED, T, MIXED, 7, x, o2));
    kvattn_set_threads(0);
    double e = test_max_abs_diff(o1, o2, n) / test_max_abs(o1, n);
    CHECK(e <= 1e-6, "1 vs 2 threads: rel err %.3g", e);
    free(x), free(o1), free(o2);
    test_layer_free(&L);
}

/* Weights stored as f16, bf16 or q8_0 (as model files hold them): the fast
 * path reads them in place and must still equal the reference, which reads
 * the same stored values one by one (with every product in f32:
 * kvattn_set_exact). By default q8_0 rows meet the activations rounded to 16
 * bits per 32 in decode: each x_i moves by at most max|x| / 65534 of its
 * block, 1.5e-5 of a product's scale, compounding over the projections, so
 * the outputs are then checked within 1e-4 (and not equal: the path ran). */
static kvattn_matrix convert_matrix(kvattn_matrix m, int rows, int cols, kvattn_type t, void **owned) {
    if (!m.data) return m;
    size_t rb = kvattn_row_bytes(t, cols);
    unsigned char *dst = malloc(rb * rows);
    for (int r = 0; r < rows; r++)
        kv_row_store(t, (const float *)m.data + (size_t)r * cols, dst + (size_t)r * rb, cols);
    *owned = dst;
    return (kvattn_matrix){.data = dst, .type = t};
}

static void test_typed_weights(void) {
    kvattn_type types[] = {KVATTN_TYPE_F16, KVATTN_TYPE_BF16, KVATTN_TYPE_Q8_0};
    kvattn_layer_config cfgs[3] = {test_gqa_config(64, 8, 2, 16), test_mla_config(64, 4, 32, 64, 16, 8, 16),
                                   test_mla_config(40, 3, 0, 24, 8, 4, 8)};
    for (int c = 0; c < 3; c++)
        for (int ti = 0; ti < 3; ti++) {
            test_layer L;
            test_layer_init(&L, &cfgs[c], 1400 + c);
            const kvattn_layer_config *k = &cfgs[c];
            int D = k->d_model, H = k->n_heads, dq = k->qk_nope_head_dim + k->qk_rope_head_dim;
            void *owned[8] = {0};
            kvattn_layer_weights *w = &L.w;
            if (k->kind == KVATTN_ATTN_GQA) {
                int qd = H * k->head_dim, kvd = k->n_kv_heads * k->head_dim;
                w->wq = convert_matrix(w->wq, qd, D, types[ti], &owned[0]);
                w->wk = convert_matrix(w->wk, kvd, D, types[ti], &owned[1]);
                w->wv = convert_matrix(w->wv, kvd, D, types[ti], &owned[2]);
                w->wo = convert_matrix(w->wo, D, qd, types[ti], &owned[3]);
            } else {
                int ql = k->q_lora_rank, dc = k->kv_lora_rank;
                w->wq = convert_matrix(w->wq, H * dq, D, types[ti], &owned[0]);
                w->wq_a = convert_matrix(w->wq_a, ql, D, types[ti], &owned[1]);
                w->wq_b = convert_matrix(w->wq_b, H * dq, ql, types[ti], &owned[2]);
                w->wkv_a = convert_matrix(w->wkv_a, dc + k->qk_rope_head_dim, D, types[ti], &owned[3]);
                w->wkv_b =
                    convert_matrix(w->wkv_b, H * (k->qk_nope_head_dim + k->v_head_dim), dc, types[ti], &owned[4]);
                w->wo = convert_matrix(w->wo, D, H * k->v_head_dim, types[ti], &owned[5]);
            }
            char what[96];
            snprintf(what, sizeof what, "%s weights, %s", kvattn_type_name(types[ti]), k->kind ? "MLA" : "GQA");
            kvattn_set_exact(1);
            check_all_schedules(&L, KVATTN_MLA_ABSORBED, 20, what, 1500 + c);
            if (k->kind == KVATTN_ATTN_MLA) check_all_schedules(&L, KVATTN_MLA_NAIVE, 20, what, 1500 + c);
            kvattn_set_exact(0);
            if (types[ti] == KVATTN_TYPE_Q8_0) {
                const double e = cached_vs_reference(&L, KVATTN_MLA_ABSORBED, 20, DECODE_ONLY, 1, 1500 + c);
                CHECK(e <= 1e-4 && e > 0.0, "%s, 16-bit activations: decode token by token: rel err %.3g", what, e);
            }
            for (int i = 0; i < 8; i++) free(owned[i]);
            test_layer_free(&L);
        }
}

/* wkv_b split as newer llama.cpp GGUFs store it (wk_b = W_UKᵀ per head,
 * wv_b = W_UV per head) gives the same layer as the fused matrix. */
static void test_mla_split_kv_b(void) {
    kvattn_layer_config cfgs[2] = {test_mla_config(48, 4, 0, 32, 16, 8, 12), test_mla_config(40, 3, 16, 20, 10, 16, 6)};
    for (int c = 0; c < 2; c++) {
        const kvattn_layer_config *k = &cfgs[c];
        const int H = k->n_heads, dn = k->qk_nope_head_dim, dv = k->v_head_dim, dc = k->kv_lora_rank;
        test_layer L;
        test_layer_init(&L, k, 1600 + c);
        const float *kvb = L.w.wkv_b.data;
        float *wk_b = malloc(sizeof(float) * H * dc * dn), *wv_b = malloc(sizeof(float) * H * dv * dc);
        for (int h = 0; h < H; h++) {
            for (int i = 0; i < dn; i++)
                for (int j = 0; j < dc; j++)
                    wk_b[((size_t)h * dc + j) * dn + i] = kvb[((size_t)h * (dn + dv) + i) * dc + j];
            memcpy(wv_b + (size_t)h * dv * dc, kvb + ((size_t)h * (dn + dv) + dn) * dc, sizeof(float) * dv * dc);
        }
        const int T = 30;
        const size_t n = (size_t)T * k->d_model;
        float *x = malloc(n * sizeof(float)), *fused = malloc(n * sizeof(float)), *split = malloc(n * sizeof(float));
        test_rng r = {21};
        test_fill(&r, x, n, 1.0f);
        for (int mode = 0; mode < 2; mode++) {
            test_layer S = L;
            CHECK_OK(run_cached(&L, KVATTN_TYPE_F32, (kvattn_mla_mode)mode, T, MIXED, 7, x, fused));
            S.w.wkv_b = (kvattn_matrix){.data = NULL, .type = KVATTN_TYPE_F32};
            S.w.wk_b = kvattn_f32_matrix(wk_b);
            S.w.wv_b = kvattn_f32_matrix(wv_b);
            CHECK_OK(run_cached(&S, KVATTN_TYPE_F32, (kvattn_mla_mode)mode, T, MIXED, 7, x, split));
            double e = test_max_abs_diff(fused, split, n) / test_max_abs(fused, n);
            CHECK(e <= TOL, "split wk_b/wv_b vs fused wkv_b (%s): rel err %.3g", mode ? "naive" : "absorbed", e);
            check_all_schedules(&S, (kvattn_mla_mode)mode, 20, "split wk_b/wv_b vs reference", 31);
        }
        free(x), free(fused), free(split), free(wk_b), free(wv_b);
        test_layer_free(&L);
    }
}

int main(void) {
    if (test_isa_skip("test_attn")) return 77;
    test_gqa_family();
    test_mla_designs();
    test_random_shapes();
    test_gqa_equals_replicated_mha();
    test_mla_absorbed_equals_naive();
    test_cache_types_close_to_f32();
    test_mixed_kv_types();
    test_rewrite_suffix();
    test_multi_layer_cache();
    test_thread_count_invariance();
    test_typed_weights();
    test_mla_split_kv_b();
    return test_finish("test_attn");
}
