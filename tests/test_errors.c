/* Invalid configurations and calls: a clear error naming the field and the
 * value, never a crash. */
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

static void expect_config_error(const kvattn_layer_config *c, const char *field, const char *value) {
    kvattn_status st = kvattn_config_validate(c);
    const char *msg = kvattn_last_error();
    CHECK(st == KVATTN_ERR_CONFIG, "%s=%s: expected a config error, got %s", field, value, kvattn_status_name(st));
    CHECK(strstr(msg, field) != NULL && strstr(msg, value) != NULL, "message '%s' should name %s and %s", msg, field,
          value);
    kvattn_cache *cache = NULL;
    CHECK(kvattn_cache_create(c, 1, 4, KVATTN_TYPE_F32, &cache) == KVATTN_ERR_CONFIG && !cache, "cache of bad config");
}

static void test_invalid_configs(void) {
    kvattn_layer_config c;
    c = test_gqa_config(64, 8, 3, 16);
    expect_config_error(&c, "n_kv_heads", "3");
    c = test_gqa_config(64, 4, 8, 16);
    expect_config_error(&c, "n_kv_heads", "8");
    c = test_gqa_config(0, 8, 2, 16);
    expect_config_error(&c, "d_model", "0");
    c = test_gqa_config(64, -4, 2, 16);
    expect_config_error(&c, "n_heads", "-4");
    c = test_gqa_config(64, 8, 0, 16);
    expect_config_error(&c, "n_kv_heads", "0");
    c = test_gqa_config(64, 8, 2, 0);
    expect_config_error(&c, "head_dim", "0");
    c = test_gqa_config(64, 8, 2, 16);
    c.rope.n_rot = 7;
    expect_config_error(&c, "rope.n_rot", "7");
    c.rope.n_rot = 18;
    expect_config_error(&c, "rope.n_rot", "18");
    c.rope.n_rot = 16;
    c.rope.theta = 0.0f;
    expect_config_error(&c, "rope.theta", "0");
    c = test_gqa_config(64, 8, 2, 16);
    c.softmax_scale = -1.0f;
    expect_config_error(&c, "softmax_scale", "-1");
    c = test_gqa_config(64, 8, 2, 16);
    c.kind = (kvattn_attn_kind)7;
    expect_config_error(&c, "kind", "7");
    c = test_mla_config(64, 4, 0, 32, 16, 7, 16);
    expect_config_error(&c, "qk_rope_head_dim", "7");
    c = test_mla_config(64, 4, 0, 0, 16, 8, 16);
    expect_config_error(&c, "kv_lora_rank", "0");
    c = test_mla_config(64, 4, -1, 32, 16, 8, 16);
    expect_config_error(&c, "q_lora_rank", "-1");
    c = test_mla_config(64, 4, 0, 32, 16, 8, 0);
    expect_config_error(&c, "v_head_dim", "0");
    c = test_mla_config(64, 4, 0, 32, 0, 8, 16);
    expect_config_error(&c, "qk_nope_head_dim", "0");
    c = test_mla_config(64, 4, 0, 32, 16, 8, 16);
    c.rope.n_rot = 4;
    expect_config_error(&c, "rope.n_rot", "4");
    c = test_mla_config(64, 4, 0, 32, 16, 8, 16);
    c.rope.yarn_factor = 40.0f;
    expect_config_error(&c, "yarn_orig_ctx", "0");
    c = test_gqa_config(1 << 25, 8, 2, 16);
    expect_config_error(&c, "d_model", "33554432");
    CHECK(kvattn_config_validate(NULL) == KVATTN_ERR_INVALID_ARG, "NULL config");
}

static void test_forward_errors(void) {
    kvattn_layer_config c = test_gqa_config(16, 4, 2, 4);
    test_layer L;
    test_layer_init(&L, &c, 1);
    float x[4 * 16] = {0}, out[4 * 16];
    kvattn_cache *cache;
    CHECK_OK(kvattn_cache_create(&c, 2, 4, KVATTN_TYPE_F16, &cache));
    CHECK(kvattn_attn_forward(&c, &L.w, cache, 0, 0, 0, x, out, 0) == KVATTN_ERR_INVALID_ARG, "T = 0");
    CHECK(kvattn_attn_forward(&c, &L.w, cache, 0, 1, 1, x, out, 0) == KVATTN_ERR_INVALID_ARG, "pos beyond length");
    CHECK(strstr(kvattn_last_error(), "pos = 1") != NULL, "message: %s", kvattn_last_error());
    CHECK(kvattn_attn_forward(&c, &L.w, cache, 2, 0, 1, x, out, 0) == KVATTN_ERR_INVALID_ARG, "layer 2 of 2");
    CHECK(kvattn_attn_forward(&c, &L.w, cache, -1, 0, 1, x, out, 0) == KVATTN_ERR_INVALID_ARG, "layer -1");
    CHECK(kvattn_attn_forward(&c, &L.w, cache, 0, 0, 1, NULL, out, 0) == KVATTN_ERR_INVALID_ARG, "x NULL");
    CHECK(kvattn_attn_forward(&c, &L.w, NULL, 0, 0, 1, x, out, 0) == KVATTN_ERR_INVALID_ARG, "cache NULL");
    /* A full cache: a clear error, and the cache is left as it was. */
    CHECK_OK(kvattn_attn_forward(&c, &L.w, cache, 0, 0, 3, x, out, 0));
    kvattn_status st = kvattn_attn_forward(&c, &L.w, cache, 0, 3, 2, x, out, 0);
    CHECK(st == KVATTN_ERR_CACHE_FULL, "2 tokens into 1 free slot: %s", kvattn_status_name(st));
    CHECK(strstr(kvattn_last_error(), "capacity of 4") != NULL, "message: %s", kvattn_last_error());
    CHECK(kvattn_cache_length(cache, 0) == 3, "length unchanged after a refused write");
    CHECK_OK(kvattn_attn_forward(&c, &L.w, cache, 0, 3, 1, x, out, 0));
    CHECK(kvattn_attn_forward(&c, &L.w, cache, 0, 4, 1, x, out, 0) == KVATTN_ERR_CACHE_FULL,
          "decode into a full cache");
    /* Missing weights. */
    kvattn_layer_weights w = L.w;
    w.wv.data = NULL;
    CHECK(kvattn_attn_forward(&c, &w, cache, 1, 0, 1, x, out, 0) == KVATTN_ERR_INVALID_ARG, "wv NULL");
    CHECK(strstr(kvattn_last_error(), "wv") != NULL, "message names wv: %s", kvattn_last_error());
    /* A cache made for another design. */
    kvattn_layer_config other = test_gqa_config(16, 4, 4, 4);
    CHECK(kvattn_attn_forward(&other, &L.w, cache, 1, 0, 1, x, out, 0) == KVATTN_ERR_CONFIG, "MHA layer, GQA cache");
    CHECK(strstr(kvattn_last_error(), "gqa:2") != NULL, "message: %s", kvattn_last_error());
    kvattn_layer_config mla = test_mla_config(16, 4, 0, 8, 4, 4, 4);
    test_layer M;
    test_layer_init(&M, &mla, 2);
    CHECK(kvattn_attn_forward(&mla, &M.w, cache, 1, 0, 1, x, out, KVATTN_MLA_ABSORBED) == KVATTN_ERR_CONFIG,
          "MLA layer, GQA cache");
    kvattn_cache *mc;
    CHECK_OK(kvattn_cache_create(&mla, 1, 4, KVATTN_TYPE_Q8_0, &mc));
    CHECK(kvattn_attn_forward(&mla, &M.w, mc, 0, 0, 1, x, out, (kvattn_mla_mode)5) == KVATTN_ERR_INVALID_ARG,
          "bad MLA mode");
    w = M.w;
    w.wkv_b.data = NULL;
    CHECK(kvattn_attn_forward(&mla, &w, mc, 0, 0, 1, x, out, KVATTN_MLA_NAIVE) == KVATTN_ERR_INVALID_ARG, "wkv_b NULL");
    CHECK(strstr(kvattn_last_error(), "wkv_b") != NULL, "message names wkv_b: %s", kvattn_last_error());
    kvattn_cache_free(mc);
    kvattn_cache_free(cache);
    test_layer_free(&M);
    test_layer_free(&L);
}

static void test_names(void) {
    kvattn_type t;
    CHECK(kvattn_type_from_name("q8_0", &t) == KVATTN_OK && t == KVATTN_TYPE_Q8_0, "q8_0");
    CHECK(kvattn_type_from_name("f8", &t) == KVATTN_ERR_INVALID_ARG, "unknown type");
    CHECK(strstr(kvattn_last_error(), "'f8'") != NULL, "message: %s", kvattn_last_error());
    char buf[32];
    kvattn_layer_config c = test_gqa_config(64, 8, 8, 8);
    CHECK(!strcmp(kvattn_config_design_name(&c, buf, sizeof buf), "mha"), "mha: %s", buf);
    c.n_kv_heads = 1;
    CHECK(!strcmp(kvattn_config_design_name(&c, buf, sizeof buf), "mqa"), "mqa: %s", buf);
    c.n_kv_heads = 2;
    CHECK(!strcmp(kvattn_config_design_name(&c, buf, sizeof buf), "gqa:2"), "gqa:2: %s", buf);
    c = test_mla_config(64, 4, 0, 512, 16, 64, 16);
    CHECK(!strcmp(kvattn_config_design_name(&c, buf, sizeof buf), "mla:512+64"), "mla: %s", buf);
    CHECK(!strcmp(kvattn_status_name(KVATTN_ERR_CACHE_FULL), "cache full"), "status name");
}

int main(void) {
    test_invalid_configs();
    test_forward_errors();
    test_names();
    return test_finish("test_errors");
}
