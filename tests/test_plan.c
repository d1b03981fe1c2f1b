/* The planner: parameter counts of real models, KV sizes equal to the cache's
 * allocation for every design and type, redesigns, config.json parsing (and
 * its errors), GPU sizing. */
#include "test_util.h"

#include <string.h>

#ifndef KVATTN_TEST_DATA
#error "KVATTN_TEST_DATA must point at tests/data"
#endif

/* Published parameter counts (model cards / the checkpoints' tensor sums). */
static void test_params(void) {
    struct {
        const char *name;
        int64_t params;
    } known[] = {{"gpt-2", 124439808},
                 {"llama-2-7b", 6738415616},
                 {"llama-2-13b", 13015864320},
                 {"llama-2-70b", 68976648192},
                 {"llama-3-8b", 8030261248},
                 {"llama-3-70b", 70553706496},
                 {"mistral-7b", 7248023552},
                 {"mixtral-8x7b", 46702792704},
                 {"qwen2.5-0.5b", 494032768},
                 {"qwen2.5-7b", 7615616512},
                 {"qwen2.5-72b", 72706203648},
                 {"falcon-7b", 6921720704},
                 {"deepseek-v2-lite", 15706484224}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        kvattn_model_desc m;
        CHECK_OK(kvattn_preset_find(known[i].name, &m));
        CHECK(kvattn_model_params(&m) == known[i].params, "%s: %lld params, published %lld", known[i].name,
              (long long)kvattn_model_params(&m), (long long)known[i].params);
    }
    kvattn_model_desc m;
    CHECK(kvattn_preset_find("llama-4", &m) == KVATTN_ERR_INVALID_ARG, "unknown preset");
    CHECK(strstr(kvattn_last_error(), "llama-3-8b") != NULL && strstr(kvattn_last_error(), "'llama-4'") != NULL,
          "the error lists the known presets: %s", kvattn_last_error());
}

/* An allocated cache is exactly what the planner says, for every preset,
 * every design and every cache type. */
static void test_cache_equals_plan(void) {
    const char *designs[] = {NULL, "mha", "gqa:8", "mqa", "mla:512+64", "gqa:2", "mla:256+32"};
    kvattn_type types[] = {KVATTN_TYPE_F32, KVATTN_TYPE_F16, KVATTN_TYPE_BF16, KVATTN_TYPE_Q8_0};
    int checked = 0;
    for (int p = 0; p < kvattn_preset_count(); p++) {
        const kvattn_model_desc *m = kvattn_preset_at(p);
        for (size_t d = 0; d < sizeof designs / sizeof designs[0]; d++) {
            kvattn_layer_config cfg = m->attn;
            if (designs[d] && kvattn_redesign(&m->attn, designs[d], &cfg) != KVATTN_OK)
                continue; /* e.g. gqa:8 of 71 heads */
            for (int t = 0; t < 4; t++) {
                kvattn_plan_options opt = {3, 1, types[t], KVATTN_TYPE_F16, 0, 0};
                kvattn_plan_row row;
                CHECK_OK(kvattn_plan(m, designs[d], &opt, &row));
                kvattn_cache *c = NULL;
                CHECK_OK(kvattn_cache_create(&cfg, m->n_layers, 3, types[t], &c));
                CHECK(c && kvattn_cache_bytes_allocated(c) == row.kv_bytes_total, "%s as %s, %s: cache %zu, plan %llu",
                      m->name, row.design, kvattn_type_name(types[t]), kvattn_cache_bytes_allocated(c),
                      (unsigned long long)row.kv_bytes_total);
                kvattn_cache_free(c);
                checked++;
            }
        }
    }
    CHECK(checked >= 16 * 4 * 5, "only %d combinations checked", checked);
}

static void test_plan_rows(void) {
    kvattn_model_desc m;
    CHECK_OK(kvattn_preset_find("llama-2-7b", &m));
    kvattn_plan_options opt = {4096, 1, KVATTN_TYPE_F16, KVATTN_TYPE_F16, 0, 0};
    kvattn_plan_row r;
    CHECK_OK(kvattn_plan(&m, NULL, &opt, &r));
    CHECK(r.native && !strcmp(r.design, "mha"), "own design: %s", r.design);
    CHECK(r.kv_bytes_per_token == 524288 && r.kv_bytes_total == 524288ull * 4096, "llama-2-7b @4K = 2 GiB");
    CHECK(r.weights_bytes == 2ull * 6738415616ull, "weights f16: %llu", (unsigned long long)r.weights_bytes);
    CHECK(r.max_context == -1 && r.gpus_needed == 0, "no GPU sizing without a GPU");
    /* GPUs: 80 GiB each. */
    opt.ctx = 131072;
    opt.batch = 2;
    opt.gpu_mem_bytes = 80ull << 30;
    CHECK_OK(kvattn_plan(&m, NULL, &opt, &r));
    uint64_t total = 524288ull * 131072 * 2 + 2ull * 6738415616ull;
    CHECK(r.total_bytes == total, "total");
    CHECK(r.gpus_needed == (int64_t)((total + (80ull << 30) - 1) / (80ull << 30)), "gpus needed %lld",
          (long long)r.gpus_needed);
    CHECK(r.max_context ==
              (int64_t)(((uint64_t)r.gpus_needed * (80ull << 30) - 2ull * 6738415616ull) / (524288ull * 2)),
          "max context %lld", (long long)r.max_context);
    opt.n_gpus = 1;
    opt.batch = 1;
    CHECK_OK(kvattn_plan(&m, NULL, &opt, &r));
    CHECK(r.max_context == (int64_t)(((80ull << 30) - 2ull * 6738415616ull) / 524288ull), "1 GPU: %lld",
          (long long)r.max_context);
    opt.gpu_mem_bytes = 8ull << 30; /* weights alone do not fit */
    CHECK_OK(kvattn_plan(&m, NULL, &opt, &r));
    CHECK(r.max_context == 0, "weights larger than the GPU: %lld", (long long)r.max_context);
    /* Redesigns and their KV. */
    opt = (kvattn_plan_options){1000, 1, KVATTN_TYPE_F16, KVATTN_TYPE_F16, 0, 0};
    CHECK_OK(kvattn_plan(&m, "gqa:8", &opt, &r));
    CHECK(!r.native && r.kv_bytes_per_token == 131072 && r.kv_elems_per_token_layer == 2048, "llama-2-7b as gqa:8");
    CHECK_OK(kvattn_plan(&m, "mla:512+64", &opt, &r));
    CHECK(r.kv_bytes_per_token == 32ull * 576 * 2, "as mla:512+64: %llu", (unsigned long long)r.kv_bytes_per_token);
    CHECK(kvattn_plan(&m, "gqa:5", &opt, &r) == KVATTN_ERR_INVALID_ARG, "5 does not divide 32");
    CHECK(kvattn_plan(&m, "mla:512+63", &opt, &r) == KVATTN_ERR_INVALID_ARG, "odd rope dims");
    CHECK(kvattn_plan(&m, "mla:512", &opt, &r) == KVATTN_ERR_INVALID_ARG, "no rope dims");
    CHECK(kvattn_plan(&m, "sliding", &opt, &r) == KVATTN_ERR_INVALID_ARG, "unknown design");
    CHECK(strstr(kvattn_last_error(), "'sliding'") != NULL, "message: %s", kvattn_last_error());
    /* q8_0: 34 bytes per 32 elements. */
    opt.kv_type = KVATTN_TYPE_Q8_0;
    CHECK_OK(kvattn_plan(&m, NULL, &opt, &r));
    CHECK(r.kv_bytes_per_token == 32ull * 2 * 32 * (128 / 32) * 34, "q8_0 bytes/token %llu",
          (unsigned long long)r.kv_bytes_per_token);
    /* Overflow is an error, not a wrapped number. */
    opt = (kvattn_plan_options){(int64_t)1 << 40, (int64_t)1 << 30, KVATTN_TYPE_F32, KVATTN_TYPE_F16, 0, 0};
    CHECK(kvattn_plan(&m, NULL, &opt, &r) == KVATTN_ERR_INVALID_ARG, "2^70 bytes overflow");
    CHECK(strstr(kvattn_last_error(), "overflow") != NULL, "message: %s", kvattn_last_error());
    opt.ctx = 0;
    CHECK(kvattn_plan(&m, NULL, &opt, &r) == KVATTN_ERR_INVALID_ARG, "ctx 0");
    /* From MLA to the others: head width v_head_dim. */
    CHECK_OK(kvattn_preset_find("deepseek-v2", &m));
    opt = (kvattn_plan_options){1, 1, KVATTN_TYPE_F16, KVATTN_TYPE_F16, 0, 0};
    CHECK_OK(kvattn_plan(&m, "mha", &opt, &r));
    CHECK(r.kv_bytes_per_token == 60ull * 2 * 128 * 128 * 2, "deepseek-v2 as MHA");
    kvattn_plan_row own;
    CHECK_OK(kvattn_plan(&m, NULL, &opt, &own));
    double reduction = 1.0 - (double)own.kv_bytes_per_token / (double)r.kv_bytes_per_token;
    CHECK(reduction > 0.98 && reduction < 0.99, "MLA vs MHA on DeepSeek-V2: %.4f", reduction);
}

static void test_hf_configs(void) {
    const char *pairs[][2] = {{"llama-3-8b.json", "llama-3-8b"},    {"deepseek-v2-lite.json", "deepseek-v2-lite"},
                              {"deepseek-v3.json", "deepseek-v3"},  {"qwen2.5-0.5b.json", "qwen2.5-0.5b"},
                              {"falcon-7b.json", "falcon-7b"},      {"gpt2.json", "gpt-2"},
                              {"mixtral-8x7b.json", "mixtral-8x7b"}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/configs/%s", KVATTN_TEST_DATA, pairs[i][0]);
        kvattn_model_desc fromfile, preset;
        CHECK_OK(kvattn_model_from_hf_config(path, &fromfile));
        CHECK_OK(kvattn_preset_find(pairs[i][1], &preset));
        CHECK(kvattn_model_params(&fromfile) == kvattn_model_params(&preset), "%s: params %lld vs preset %lld",
              pairs[i][0], (long long)kvattn_model_params(&fromfile), (long long)kvattn_model_params(&preset));
        CHECK(kvattn_kv_bytes_per_token(&fromfile.attn, fromfile.n_layers, KVATTN_TYPE_F16) ==
                  kvattn_kv_bytes_per_token(&preset.attn, preset.n_layers, KVATTN_TYPE_F16),
              "%s: KV bytes/token", pairs[i][0]);
        CHECK(fromfile.context_length == preset.context_length, "%s: context %lld", pairs[i][0],
              (long long)fromfile.context_length);
        CHECK(kvattn_config_softmax_scale(&fromfile.attn) == kvattn_config_softmax_scale(&preset.attn),
              "%s: softmax scale (YaRN mscale) %g vs %g", pairs[i][0],
              (double)kvattn_config_softmax_scale(&fromfile.attn), (double)kvattn_config_softmax_scale(&preset.attn));
    }
    struct {
        const char *file, *words[2];
        kvattn_status st;
    } bad[] = {
        {"missing_heads.json", {"'num_attention_heads'", "missing"}, KVATTN_ERR_FORMAT},
        {"string_hidden.json", {"'hidden_size'", "\"4096\""}, KVATTN_ERR_FORMAT},
        {"heads_not_divisible.json", {"n_kv_heads = 5", "n_heads = 32"}, KVATTN_ERR_FORMAT},
        {"truncated.json", {"not a JSON object", "byte"}, KVATTN_ERR_FORMAT},
        {"unknown_type.json", {"'mamba'", "not supported"}, KVATTN_ERR_UNSUPPORTED},
        {"not_object.json", {"not a JSON object", "bad_configs"}, KVATTN_ERR_FORMAT},
        {"absurd_hidden.json", {"'hidden_size'", "1e+30"}, KVATTN_ERR_FORMAT},
        {"overflowing.json", {"overflow", "overflowing.json"}, KVATTN_ERR_FORMAT},
        {"odd_rope.json", {"qk_rope_head_dim = 63", "even"}, KVATTN_ERR_FORMAT},
        {"hidden_not_divisible.json", {"hidden_size = 4095", "head_dim"}, KVATTN_ERR_FORMAT},
        {"negative_layers.json", {"'num_hidden_layers'", "-3"}, KVATTN_ERR_FORMAT},
        {"empty.json", {"not a JSON object", "empty.json"}, KVATTN_ERR_FORMAT},
        {"no_such_file.json", {"cannot open", "no_such_file.json"}, KVATTN_ERR_IO},
        {"zero_context.json", {"'max_position_embeddings' = 0", "[1,"}, KVATTN_ERR_FORMAT},
        /* found by fuzz_config_json: the planner walked 167M layers (13 s) */
        {"huge_layers.json", {"'num_hidden_layers' = 167772216", "65536"}, KVATTN_ERR_FORMAT},
        {"negative_eps.json", {"'rms_norm_eps'", "non-negative"}, KVATTN_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/bad_configs/%s", KVATTN_TEST_DATA, bad[i].file);
        kvattn_model_desc m;
        kvattn_status st = kvattn_model_from_hf_config(path, &m);
        const char *msg = kvattn_last_error();
        CHECK(st == bad[i].st, "%s: status %s, want %s (%s)", bad[i].file, kvattn_status_name(st),
              kvattn_status_name(bad[i].st), msg);
        CHECK(strstr(msg, bad[i].words[0]) && strstr(msg, bad[i].words[1]), "%s: message '%s' should contain %s and %s",
              bad[i].file, msg, bad[i].words[0], bad[i].words[1]);
    }
}

/* Parameter counts add the MoE layers without walking every layer: the same as
 * summing kvattn_model_is_moe_layer layer by layer, for MoE layer frequencies
 * and leading dense layers of every kind. */
static void test_moe_layer_counting(void) {
    kvattn_model_desc m;
    CHECK_OK(kvattn_preset_find("deepseek-v2-lite", &m));
    for (int freq = 0; freq <= 3; freq++)
        for (int dense = 0; dense <= 5; dense++)
            for (int layers = 1; layers <= 9; layers++) {
                m.n_layers = layers, m.moe_layer_freq = freq, m.n_dense_layers = dense;
                kvattn_model_desc dense_only = m;
                dense_only.n_routed_experts = 0;
                const int64_t all = kvattn_model_params(&m), base = kvattn_model_params(&dense_only);
                kvattn_model_desc one = m; /* the difference one MoE layer makes */
                one.n_layers = 1, one.n_dense_layers = 0, one.moe_layer_freq = 1;
                kvattn_model_desc one_dense = one;
                one_dense.n_routed_experts = 0;
                const int64_t per_moe = kvattn_model_params(&one) - kvattn_model_params(&one_dense);
                int moe = 0;
                for (int l = 0; l < layers; l++) moe += kvattn_model_is_moe_layer(&m, l);
                CHECK(all == base + moe * per_moe, "%d layers, %d dense, frequency %d: %lld params, want %lld", layers,
                      dense, freq, (long long)all, (long long)(base + moe * per_moe));
            }
}

int main(void) {
    test_moe_layer_counting();
    test_params();
    test_cache_equals_plan();
    test_plan_rows();
    test_hf_configs();
    return test_finish("test_plan");
}
