/* Golden vectors from independent code (tests/golden/gen_golden.py):
 * GQA/MHA/MQA written with PyTorch's own ops, MLA as DeepSeek-V3's reference
 * inference/model.py computes it (both its naive and absorb paths, YaRN on
 * in one fixture). kvattn runs the same prefill of 7 tokens and 3 decode
 * steps through its cache and must match to 1e-5 · max|out| (f32 vs the
 * float64 reference; see test_attn.c for the argument). */
#include "golden_file.h"
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef KVATTN_GOLDEN_DIR
#error "KVATTN_GOLDEN_DIR must point at tests/golden"
#endif

/* Prefill, then one decode step per remaining token; returns rel error. */
static double run_and_compare(const kvattn_layer_config *cfg, const kvattn_layer_weights *w, const golden_file *g,
                              kvattn_mla_mode mode, const char *expected_name) {
    const golden_array *x = get(g, "x"), *want = get(g, expected_name);
    const int D = cfg->d_model, T = x ? x->n / D : 0, prefill = (int)num(g, "prefill");
    if (!x || !want || want->n != x->n || T < prefill) return INFINITY;
    float *out = malloc(sizeof(float) * x->n);
    kvattn_cache *c = NULL;
    double err = INFINITY;
    if (kvattn_cache_create(cfg, 1, T, KVATTN_TYPE_F32, &c) == KVATTN_OK &&
        kvattn_attn_forward(cfg, w, c, 0, 0, prefill, x->data, out, mode) == KVATTN_OK) {
        int ok = 1;
        for (int t = prefill; ok && t < T; t++)
            ok = kvattn_attn_forward(cfg, w, c, 0, t, 1, x->data + (size_t)t * D, out + (size_t)t * D, mode) ==
                 KVATTN_OK;
        if (ok) err = test_max_abs_diff(out, want->data, (size_t)x->n) / test_max_abs(want->data, (size_t)x->n);
    }
    if (!isfinite(err)) fprintf(stderr, "  run failed: %s\n", kvattn_last_error());
    kvattn_cache_free(c);
    free(out);
    return err;
}

static void test_gqa_fixture(const char *file) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", KVATTN_GOLDEN_DIR, file);
    golden_file g;
    int loaded = golden_load(path, &g) == 0;
    CHECK(loaded, "cannot read fixture %s", path);
    if (loaded) {
        kvattn_layer_config cfg = test_gqa_config((int)num(&g, "d_model"), (int)num(&g, "n_heads"),
                                                  (int)num(&g, "n_kv_heads"), (int)num(&g, "head_dim"));
        cfg.rope.n_rot = (int)num(&g, "n_rot");
        cfg.rope.theta = num(&g, "theta");
        cfg.rope.pairing = num(&g, "pairing") == 1.0f ? KVATTN_ROPE_HALF : KVATTN_ROPE_ADJACENT;
        kvattn_layer_weights w = {0};
        w.wq = kvattn_f32_matrix(arr(&g, "wq"));
        w.wk = kvattn_f32_matrix(arr(&g, "wk"));
        w.wv = kvattn_f32_matrix(arr(&g, "wv"));
        w.wo = kvattn_f32_matrix(arr(&g, "wo"));
        if (get(&g, "bq")) w.bq = arr(&g, "bq"), w.bk = arr(&g, "bk"), w.bv = arr(&g, "bv");
        if (get(&g, "q_norm")) {
            w.q_head_norm = arr(&g, "q_norm"), w.k_head_norm = arr(&g, "k_norm");
            cfg.rms_eps = num(&g, "rms_eps");
        }
        double e = run_and_compare(&cfg, &w, &g, KVATTN_MLA_ABSORBED, "out");
        CHECK(e <= 1e-5, "%s: kvattn vs PyTorch: rel err %.3g", file, e);
    }
    golden_free(&g);
}

static void test_mla_fixture(const char *file) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", KVATTN_GOLDEN_DIR, file);
    golden_file g;
    int loaded = golden_load(path, &g) == 0;
    CHECK(loaded, "cannot read fixture %s", path);
    if (loaded) {
        kvattn_layer_config cfg = test_mla_config(
            (int)num(&g, "d_model"), (int)num(&g, "n_heads"), (int)num(&g, "q_lora_rank"), (int)num(&g, "kv_lora_rank"),
            (int)num(&g, "qk_nope_head_dim"), (int)num(&g, "qk_rope_head_dim"), (int)num(&g, "v_head_dim"));
        cfg.rope.theta = num(&g, "theta");
        cfg.rope.pairing = KVATTN_ROPE_ADJACENT; /* DeepSeek's view_as_complex pairs */
        cfg.rope.yarn_factor = num(&g, "yarn_factor");
        cfg.rope.yarn_orig_ctx = (int)num(&g, "yarn_orig_ctx");
        cfg.rope.yarn_beta_fast = num(&g, "yarn_beta_fast");
        cfg.rope.yarn_beta_slow = num(&g, "yarn_beta_slow");
        cfg.rope.yarn_mscale = num(&g, "yarn_mscale");
        cfg.rms_eps = 1e-6f;
        kvattn_layer_weights w = {0};
        w.wq = kvattn_f32_matrix(arr(&g, "wq"));
        w.wq_a = kvattn_f32_matrix(arr(&g, "wq_a"));
        w.q_norm = arr(&g, "q_norm");
        w.wq_b = kvattn_f32_matrix(arr(&g, "wq_b"));
        w.wkv_a = kvattn_f32_matrix(arr(&g, "wkv_a"));
        w.kv_norm = arr(&g, "kv_norm");
        w.wkv_b = kvattn_f32_matrix(arr(&g, "wkv_b"));
        w.wo = kvattn_f32_matrix(arr(&g, "wo"));
        const char *refs[2] = {"out_absorb", "out_naive"};
        kvattn_mla_mode modes[2] = {KVATTN_MLA_ABSORBED, KVATTN_MLA_NAIVE};
        for (int r = 0; r < 2; r++)
            for (int m = 0; m < 2; m++) {
                double e = run_and_compare(&cfg, &w, &g, modes[m], refs[r]);
                CHECK(e <= 1e-5, "%s: kvattn %s vs DeepSeek reference %s: rel err %.3g", file, m ? "naive" : "absorbed",
                      refs[r], e);
            }
    }
    golden_free(&g);
}

int main(void) {
    if (test_isa_skip("test_golden")) return 77;
    test_gqa_fixture("gqa_adjacent.bin");
    test_gqa_fixture("mha_half_partial.bin");
    test_gqa_fixture("mqa_adjacent.bin");
    test_gqa_fixture("qwen2_bias.bin");
    test_gqa_fixture("qwen3_qk_norm.bin");
    test_mla_fixture("mla_qlora_yarn.bin");
    test_mla_fixture("mla_noqlora.bin");
    return test_finish("test_golden");
}
