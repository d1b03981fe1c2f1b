/* The KV cache: sizes equal the formulas of the brief exactly, for every
 * design and element type; writes read back within the type's rounding;
 * capacity, truncation and clearing behave; bad calls get clear errors. */
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static size_t elem_bytes_formula(kvattn_type t, int64_t row_len, int64_t rows) {
    switch (t) {
    case KVATTN_TYPE_F32: return (size_t)(rows * row_len * 4);
    case KVATTN_TYPE_F16:
    case KVATTN_TYPE_BF16: return (size_t)(rows * row_len * 2);
    case KVATTN_TYPE_Q8_0: return (size_t)(rows * ((row_len + 31) / 32) * 34);
    case KVATTN_TYPE_Q4_0: return (size_t)(rows * ((row_len + 31) / 32) * 18);
    case KVATTN_TYPE_FP8: return (size_t)(rows * row_len);
    case KVATTN_TYPE_Q4_1: return (size_t)(rows * ((row_len + 31) / 32) * 20);
    case KVATTN_TYPE_Q5_0: return (size_t)(rows * ((row_len + 31) / 32) * 22);
    case KVATTN_TYPE_Q5_1: return (size_t)(rows * ((row_len + 31) / 32) * 24);
    case KVATTN_TYPE_Q2_K: return (size_t)(rows * ((row_len + 255) / 256) * 84);
    case KVATTN_TYPE_Q3_K: return (size_t)(rows * ((row_len + 255) / 256) * 110);
    case KVATTN_TYPE_Q4_K: return (size_t)(rows * ((row_len + 255) / 256) * 144);
    case KVATTN_TYPE_Q5_K: return (size_t)(rows * ((row_len + 255) / 256) * 176);
    case KVATTN_TYPE_Q6_K: return (size_t)(rows * ((row_len + 255) / 256) * 210);
    default: return 0;
    }
}

/* Brief §4: bytes per token at 16 bits for real models. */
static void test_brief_table(void) {
    struct {
        const char *model;
        int layers, H, nkv, hd;
        size_t bytes;
    } gqa[] = {{"llama-2-7b", 32, 32, 32, 128, 524288}, {"llama-3-8b", 32, 32, 8, 128, 131072},
               {"llama-3-70b", 80, 64, 8, 128, 327680}, {"llama-3.1-405b", 126, 128, 8, 128, 516096},
               {"qwen2.5-7b", 28, 28, 4, 128, 57344},   {"falcon-7b", 32, 71, 1, 64, 8192}};
    for (size_t i = 0; i < sizeof gqa / sizeof gqa[0]; i++) {
        kvattn_layer_config c = test_gqa_config(4096, gqa[i].H, gqa[i].nkv, gqa[i].hd);
        size_t b = kvattn_kv_bytes_per_token(&c, gqa[i].layers, KVATTN_TYPE_F16);
        CHECK(b == gqa[i].bytes, "%s: %zu bytes/token, brief says %zu", gqa[i].model, b, gqa[i].bytes);
    }
    struct {
        const char *model;
        int layers;
        size_t bytes;
    } mla[] = {{"deepseek-v2-lite", 27, 31104}, {"deepseek-v2", 60, 69120}, {"deepseek-v3", 61, 70272}};
    for (size_t i = 0; i < 3; i++) {
        kvattn_layer_config c = test_mla_config(2048, 16, 0, 512, 128, 64, 128);
        size_t b = kvattn_kv_bytes_per_token(&c, mla[i].layers, KVATTN_TYPE_F16);
        CHECK(b == mla[i].bytes, "%s: %zu bytes/token, brief says %zu", mla[i].model, b, mla[i].bytes);
    }
    /* The circulating "7B" example: 32 layers, 32 heads, head dim 64, 80,000 tokens. */
    kvattn_layer_config mha = test_gqa_config(2048, 32, 32, 64), g8 = test_gqa_config(2048, 32, 8, 64),
                        mqa = test_gqa_config(2048, 32, 1, 64);
    CHECK(kvattn_kv_bytes_per_token(&mha, 32, KVATTN_TYPE_F16) * 80000 == 20971520000ull, "7B MHA @80k = 20.97 GB");
    /* GQA-8 keeps 8 of 32 KV heads: a quarter of MHA, 5.24 GB. (The brief's
     * 2.62 GB divides MHA by 8, the group count, instead of by 32/8 = 4.) */
    CHECK(kvattn_kv_bytes_per_token(&g8, 32, KVATTN_TYPE_F16) * 80000 == 5242880000ull, "7B GQA-8 @80k = 5.24 GB");
    CHECK(kvattn_kv_bytes_per_token(&mqa, 32, KVATTN_TYPE_F16) * 80000 == 655360000ull, "7B MQA @80k = 0.66 GB");
}

/* Every design × every type: formula, planner function and allocation agree. */
static void test_sizes_every_design_and_type(void) {
    kvattn_layer_config cfgs[] = {test_gqa_config(64, 8, 8, 16),
                                  test_gqa_config(64, 8, 2, 16),
                                  test_gqa_config(64, 8, 1, 16),
                                  test_gqa_config(30, 6, 3, 10),
                                  test_mla_config(64, 4, 0, 512, 16, 64, 16),
                                  test_mla_config(64, 4, 8, 20, 8, 6, 8)};
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++)
        for (int t = 0; t < KVATTN_TYPE_COUNT; t++) {
            const kvattn_layer_config *cfg = &cfgs[c];
            int layers = 3, capacity = 17;
            int64_t row_len = cfg->kind == KVATTN_ATTN_MLA ? cfg->kv_lora_rank + cfg->qk_rope_head_dim : cfg->head_dim;
            int64_t rows = cfg->kind == KVATTN_ATTN_MLA ? 1 : 2 * cfg->n_kv_heads;
            size_t want = (size_t)layers * elem_bytes_formula((kvattn_type)t, row_len, rows);
            size_t got = kvattn_kv_bytes_per_token(cfg, layers, (kvattn_type)t);
            char name[32];
            kvattn_config_design_name(cfg, name, sizeof name);
            CHECK(got == want, "%s %s: bytes/token %zu, formula %zu", name, kvattn_type_name((kvattn_type)t), got,
                  want);
            CHECK(kvattn_kv_elems_per_token_layer(cfg) == rows * row_len, "%s elems/token/layer", name);
            kvattn_cache *cache = NULL;
            kvattn_status st = kvattn_cache_create(cfg, layers, capacity, (kvattn_type)t, &cache);
            if (kvattn_type_is_cache_type((kvattn_type)t)) {
                CHECK(st == KVATTN_OK, "%s %s: create: %s", name, kvattn_type_name((kvattn_type)t),
                      kvattn_last_error());
                CHECK(kvattn_cache_bytes_per_token(cache) == want, "%s cache bytes/token", name);
                CHECK(kvattn_cache_bytes_allocated(cache) == want * capacity, "%s %s: allocated %zu, want %zu", name,
                      kvattn_type_name((kvattn_type)t), kvattn_cache_bytes_allocated(cache), want * capacity);
            } else {
                CHECK(st == KVATTN_ERR_UNSUPPORTED && cache == NULL, "%s is not a cache type",
                      kvattn_type_name((kvattn_type)t));
                CHECK(strstr(kvattn_last_error(), kvattn_type_name((kvattn_type)t)) != NULL, "error names the type: %s",
                      kvattn_last_error());
            }
            kvattn_cache_free(cache);
        }
    /* Fractions: 16-bit MLA 512+64 vs MHA of DeepSeek-V2's 128 heads × 128 (brief: about 93% less). */
    CHECK(kvattn_row_bytes(KVATTN_TYPE_Q8_0, 32) == 34 && kvattn_row_bytes(KVATTN_TYPE_Q8_0, 33) == 68,
          "q8_0 rows round up to whole blocks");
    CHECK(kvattn_row_bytes(KVATTN_TYPE_F16, -1) == 0, "negative row length");
}

static void test_write_read(void) {
    kvattn_layer_config cfgs[2] = {test_gqa_config(16, 4, 2, 40), test_mla_config(16, 2, 0, 40, 4, 8, 4)};
    kvattn_type types[] = {KVATTN_TYPE_F32, KVATTN_TYPE_F16, KVATTN_TYPE_BF16, KVATTN_TYPE_Q8_0};
    double rel_bound[] = {0.0, 4.9e-4, 3.91e-3, 1.0 / 254 * 1.01 + 4.9e-4};
    test_rng r = {17};
    for (int c = 0; c < 2; c++)
        for (int ti = 0; ti < 4; ti++) {
            const int T = 5, cap = 8;
            int mla = cfgs[c].kind == KVATTN_ATTN_MLA;
            int width = mla ? 48 : 80; /* per token: MLA d_c + d_R; GQA n_kv · head_dim */
            float k[5 * 80], v[5 * 80], kb[80], vb[80];
            test_fill(&r, k, sizeof k / sizeof k[0], 2.0f);
            test_fill(&r, v, sizeof v / sizeof v[0], 2.0f);
            kvattn_cache *cache;
            CHECK_OK(kvattn_cache_create(&cfgs[c], 2, cap, types[ti], &cache));
            CHECK_OK(kvattn_cache_write(cache, 1, 0, T, k, mla ? NULL : v));
            CHECK(kvattn_cache_length(cache, 1) == T && kvattn_cache_length(cache, 0) == 0 &&
                      kvattn_cache_length(cache, -1) == 0,
                  "lengths after writing layer 1 only");
            double worst = 0;
            for (int t = 0; t < T; t++) {
                CHECK_OK(kvattn_cache_read(cache, 1, t, kb, mla ? NULL : vb));
                /* bound relative to the largest magnitude (q8_0 blocks share a scale) */
                double amax = test_max_abs(k + t * width, (size_t)width);
                worst = fmax(worst, test_max_abs_diff(kb, k + t * width, (size_t)width) / amax);
                if (!mla)
                    worst = fmax(worst, test_max_abs_diff(vb, v + t * width, (size_t)width) /
                                            test_max_abs(v + t * width, (size_t)width));
            }
            CHECK(worst <= rel_bound[ti], "%s %s round trip rel err %.3g > %.3g", mla ? "MLA" : "GQA",
                  kvattn_type_name(types[ti]), worst, rel_bound[ti]);
            /* Capacity. */
            kvattn_status st = kvattn_cache_write(cache, 1, T, 4, k, mla ? NULL : v);
            CHECK(st == KVATTN_ERR_CACHE_FULL, "writing past capacity: %s", kvattn_status_name(st));
            CHECK(strstr(kvattn_last_error(), "capacity") != NULL, "message: %s", kvattn_last_error());
            CHECK(kvattn_cache_length(cache, 1) == T, "a failed write leaves the length alone");
            CHECK_OK(kvattn_cache_write(cache, 1, T, cap - T, k, mla ? NULL : v)); /* exactly full is fine */
            /* Truncate, clear. */
            CHECK(kvattn_cache_truncate(cache, 3) == KVATTN_ERR_INVALID_ARG, "layer 0 holds fewer than 3 tokens");
            CHECK_OK(kvattn_cache_write(cache, 0, 0, 4, k, mla ? NULL : v));
            CHECK_OK(kvattn_cache_truncate(cache, 3));
            CHECK(kvattn_cache_length(cache, 0) == 3 && kvattn_cache_length(cache, 1) == 3, "truncated to 3");
            CHECK(kvattn_cache_read(cache, 1, 3, kb, mla ? NULL : vb) == KVATTN_ERR_INVALID_ARG, "read past length");
            kvattn_cache_clear(cache);
            CHECK(kvattn_cache_length(cache, -1) == 0 && kvattn_cache_length(cache, 1) == 0, "cleared");
            /* Bad calls. */
            CHECK(kvattn_cache_write(cache, 2, 0, 1, k, mla ? NULL : v) == KVATTN_ERR_INVALID_ARG, "layer 2 of 2");
            CHECK(kvattn_cache_write(cache, 0, 1, 1, k, mla ? NULL : v) == KVATTN_ERR_INVALID_ARG, "gap in positions");
            CHECK(kvattn_cache_write(cache, 0, 0, 1, k, mla ? v : NULL) == KVATTN_ERR_INVALID_ARG, "wrong k/v arity");
            kvattn_cache_free(cache);
        }
}

static void test_create_errors(void) {
    kvattn_layer_config c = test_gqa_config(64, 8, 2, 16);
    kvattn_cache *cache = (kvattn_cache *)&c; /* must be reset to NULL on failure */
    CHECK(kvattn_cache_create(&c, 1, 0, KVATTN_TYPE_F16, &cache) == KVATTN_ERR_INVALID_ARG && cache == NULL,
          "capacity 0");
    CHECK(strstr(kvattn_last_error(), "capacity") != NULL, "message: %s", kvattn_last_error());
    CHECK(kvattn_cache_create(&c, 0, 8, KVATTN_TYPE_F16, &cache) == KVATTN_ERR_INVALID_ARG, "0 layers");
    CHECK(kvattn_cache_create(&c, 1, 8, (kvattn_type)99, &cache) == KVATTN_ERR_UNSUPPORTED, "type 99");
    kvattn_layer_config big = test_gqa_config(64, 1 << 20, 1 << 20, 1 << 20);
    kvattn_status st = kvattn_cache_create(&big, 1 << 20, 1 << 30, KVATTN_TYPE_F32, &cache);
    CHECK(st == KVATTN_ERR_NOMEM && cache == NULL, "absurd size: %s (%s)", kvattn_status_name(st), kvattn_last_error());
    kvattn_layer_config bad = test_gqa_config(64, 8, 3, 16);
    CHECK(kvattn_cache_create(&bad, 1, 8, KVATTN_TYPE_F16, &cache) == KVATTN_ERR_CONFIG, "8 heads, 3 KV heads");
    CHECK(kvattn_cache_create(&c, 1, 8, KVATTN_TYPE_F16, NULL) == KVATTN_ERR_INVALID_ARG, "NULL out");
    CHECK(kvattn_kv_bytes_per_token(&bad, 1, KVATTN_TYPE_F16) == 0, "bytes of an invalid config are 0");
}

/* Random filling (for timing at depth): lengths, every layer, capacity. */
static void test_fill_random(void) {
    kvattn_layer_config cfgs[2] = {test_gqa_config(16, 4, 2, 8), test_mla_config(16, 2, 0, 12, 4, 4, 4)};
    for (int c = 0; c < 2; c++) {
        kvattn_cache *cache;
        CHECK_OK(kvattn_cache_create(&cfgs[c], 3, 600, KVATTN_TYPE_F16, &cache));
        CHECK_OK(kvattn_cache_fill_random(cache, 1, 300, 7));
        CHECK(kvattn_cache_length(cache, 1) == 300 && kvattn_cache_length(cache, 0) == 0, "one layer filled");
        CHECK_OK(kvattn_cache_fill_random(cache, -1, 257, 8));
        CHECK(kvattn_cache_length(cache, 0) == 257 && kvattn_cache_length(cache, 1) == 557, "every layer appended");
        float k[32], v[32];
        CHECK_OK(kvattn_cache_read(cache, 1, 556, k, cfgs[c].kind == KVATTN_ATTN_MLA ? NULL : v));
        CHECK(fabsf(k[0]) <= 1.0f && (k[0] != 0.0f || k[1] != 0.0f), "rows hold values in [-1, 1]");
        CHECK(kvattn_cache_fill_random(cache, 1, 100, 9) == KVATTN_ERR_CACHE_FULL, "past capacity");
        CHECK(kvattn_cache_fill_random(cache, 3, 1, 9) == KVATTN_ERR_INVALID_ARG, "layer 3 of 3");
        CHECK(kvattn_cache_fill_random(NULL, -1, 1, 9) == KVATTN_ERR_INVALID_ARG, "NULL cache");
        kvattn_cache_free(cache);
    }
}

int main(void) {
    test_fill_random();
    test_brief_table();
    test_sizes_every_design_and_type();
    test_write_read();
    test_create_errors();
    return test_finish("test_kv_cache");
}
