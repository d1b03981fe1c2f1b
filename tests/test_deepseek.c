/* DeepSeek models end to end. Tiny models with random weights come from
 * tests/golden/gen_golden.py, with logits computed by DeepSeek-V3's
 * reference math (model.py: MLA naive and absorbed, YaRN, Gate, MoE) in
 * float64. Here they are written as deepseek2 GGUFs with kvattn's writer —
 * the fused attn_kv_b layout and the split attn_k_b/attn_v_b one — loaded
 * back, and run: logits must match the reference in both MLA modes, and the
 * cached decode must equal a batched recompute.
 * Tolerance 1e-4 · max|logit|: f32 arithmetic (≈1e-6 relative per dot product)
 * through three blocks, the router and a 97-way output; any wrong route,
 * rotation or scale moves logits by O(1). */
#define _POSIX_C_SOURCE 200809L
#include "golden_file.h"
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOL 1e-4

/* Writes the fixture's model as a deepseek2 GGUF. */
static kvattn_status write_gguf(const golden_file *g, const char *path, int split, kvattn_type wtype) {
    kvattn_gguf_writer *w;
    kvattn_status st = kvattn_gguf_writer_create(&w);
    if (st) return st;
    const int D = (int)num(g, "D"), H = (int)num(g, "H"), L = (int)num(g, "L"), ql = (int)num(g, "ql");
    const int dc = (int)num(g, "dc"), dn = (int)num(g, "dn"), dr = (int)num(g, "dr"), dv = (int)num(g, "dv");
    const int E = (int)num(g, "experts"), orig = (int)num(g, "orig"), max_seq = (int)num(g, "max_seq");
    const int sig = num(g, "sigmoid") == 1.0f;
    kvattn_gguf_set_str(w, "general.architecture", "deepseek2");
    kvattn_gguf_set_str(w, "general.name", "tiny-deepseek");
    kvattn_gguf_set_u32(w, "deepseek2.context_length", (uint32_t)max_seq);
    kvattn_gguf_set_u32(w, "deepseek2.embedding_length", (uint32_t)D);
    kvattn_gguf_set_u32(w, "deepseek2.block_count", (uint32_t)L);
    kvattn_gguf_set_u32(w, "deepseek2.feed_forward_length", (uint32_t)num(g, "F"));
    kvattn_gguf_set_u32(w, "deepseek2.attention.head_count", (uint32_t)H);
    kvattn_gguf_set_u32(w, "deepseek2.attention.head_count_kv", split ? 1 : (uint32_t)H);
    if (ql) kvattn_gguf_set_u32(w, "deepseek2.attention.q_lora_rank", (uint32_t)ql);
    kvattn_gguf_set_u32(w, "deepseek2.attention.kv_lora_rank", (uint32_t)dc);
    kvattn_gguf_set_u32(w, "deepseek2.rope.dimension_count", (uint32_t)dr);
    if (split) {
        kvattn_gguf_set_u32(w, "deepseek2.attention.key_length", (uint32_t)(dc + dr));
        kvattn_gguf_set_u32(w, "deepseek2.attention.value_length", (uint32_t)dc);
        kvattn_gguf_set_u32(w, "deepseek2.attention.key_length_mla", (uint32_t)(dn + dr));
        kvattn_gguf_set_u32(w, "deepseek2.attention.value_length_mla", (uint32_t)dv);
    } else {
        kvattn_gguf_set_u32(w, "deepseek2.attention.key_length", (uint32_t)(dn + dr));
        kvattn_gguf_set_u32(w, "deepseek2.attention.value_length", (uint32_t)dv);
    }
    kvattn_gguf_set_f32(w, "deepseek2.attention.layer_norm_rms_epsilon", 1e-6f);
    kvattn_gguf_set_f32(w, "deepseek2.rope.freq_base", 10000.0f);
    if (max_seq > orig) { /* model.py turns YaRN on when max_seq_len exceeds original_seq_len */
        kvattn_gguf_set_str(w, "deepseek2.rope.scaling.type", "yarn");
        kvattn_gguf_set_f32(w, "deepseek2.rope.scaling.factor", 40.0f);
        kvattn_gguf_set_u32(w, "deepseek2.rope.scaling.original_context_length", (uint32_t)orig);
        kvattn_gguf_set_f32(w, "deepseek2.rope.scaling.yarn_log_multiplier", 0.1f * 0.707f);
    }
    if (E) {
        kvattn_gguf_set_u32(w, "deepseek2.expert_count", (uint32_t)E);
        kvattn_gguf_set_u32(w, "deepseek2.expert_used_count", (uint32_t)num(g, "topk"));
        kvattn_gguf_set_u32(w, "deepseek2.expert_shared_count", (uint32_t)num(g, "shared"));
        kvattn_gguf_set_u32(w, "deepseek2.expert_feed_forward_length", (uint32_t)num(g, "Fm"));
        kvattn_gguf_set_u32(w, "deepseek2.leading_dense_block_count", (uint32_t)num(g, "dense"));
        kvattn_gguf_set_f32(w, "deepseek2.expert_weights_scale", num(g, "route_scale"));
        kvattn_gguf_set_bool(w, "deepseek2.expert_weights_norm", sig);
        kvattn_gguf_set_u32(w, "deepseek2.expert_gating_func", sig ? 2 : 1);
        kvattn_gguf_set_u32(w, "deepseek2.expert_group_count", (uint32_t)num(g, "groups"));
        kvattn_gguf_set_u32(w, "deepseek2.expert_group_used_count", (uint32_t)num(g, "topk_groups"));
    }
    for (int i = 0; i < g->count && st == KVATTN_OK; i++) {
        const golden_array *a = &g->a[i];
        if (!strstr(a->name, ".weight") && !strstr(a->name, ".bias")) continue;
        int64_t ne[4];
        for (int d = 0; d < a->n_dims; d++) ne[d] = a->dims[a->n_dims - 1 - d];
        kvattn_type t = a->n_dims >= 2 ? wtype : KVATTN_TYPE_F32;
        if (split && strstr(a->name, "attn_kv_b")) { /* k_b: per head W_UKᵀ [dc][dn]; v_b: per head W_UV [dv][dc] */
            float *kb = malloc(sizeof(float) * H * dc * dn), *vb = malloc(sizeof(float) * H * dv * dc);
            for (int h = 0; h < H; h++) {
                for (int r = 0; r < dn; r++)
                    for (int c = 0; c < dc; c++) kb[((size_t)h * dc + c) * dn + r] = a->data[((size_t)h * (dn + dv) + r) * dc + c];
                memcpy(vb + (size_t)h * dv * dc, a->data + ((size_t)h * (dn + dv) + dn) * dc, sizeof(float) * dv * dc);
            }
            char nm[64];
            int64_t kne[3] = {dn, dc, H}, vne[3] = {dc, dv, H};
            snprintf(nm, sizeof nm, "%.*sattn_k_b.weight", (int)(strstr(a->name, "attn_kv_b") - a->name), a->name);
            st = kvattn_gguf_add_tensor(w, nm, t, kne, 3, kb);
            snprintf(nm, sizeof nm, "%.*sattn_v_b.weight", (int)(strstr(a->name, "attn_kv_b") - a->name), a->name);
            if (!st) st = kvattn_gguf_add_tensor(w, nm, t, vne, 3, vb);
            free(kb), free(vb);
            continue;
        }
        st = kvattn_gguf_add_tensor(w, a->name, t, ne, a->n_dims, a->data);
    }
    if (!st) st = kvattn_gguf_write_file(w, path);
    kvattn_gguf_writer_free(w);
    return st;
}

static void check_model(const char *fixture, int split) {
    char path[512], gpath[128];
    snprintf(path, sizeof path, "%s/%s", KVATTN_GOLDEN_DIR, fixture);
    golden_file g;
    CHECK(golden_load(path, &g) == 0, "cannot read %s", path);
    snprintf(gpath, sizeof gpath, "/tmp/kvattn_ds_%d.gguf", (int)getpid());
    CHECK_OK(write_gguf(&g, gpath, split, KVATTN_TYPE_F32));
    kvattn_model *m = NULL;
    CHECK_OK(kvattn_model_load(gpath, NULL, &m));
    const golden_array *tok = get(&g, "tokens"), *want = get(&g, "logits");
    if (!m || !tok || !want) {
        golden_free(&g);
        kvattn_model_free(m);
        return;
    }
    const kvattn_model_desc *d = kvattn_model_describe(m);
    const int V = (int)d->vocab_size, T = tok->n, P = (int)num(&g, "prefill"), steps = want->n / V;
    CHECK(!strcmp(d->arch, "deepseek2") && d->attn.kind == KVATTN_ATTN_MLA && steps == T - P + 1, "%s: shapes", fixture);
    int32_t ids[64];
    for (int i = 0; i < T; i++) ids[i] = (int32_t)tok->data[i];
    double scale = test_max_abs(want->data, (size_t)want->n);
    float *logits = malloc(sizeof(float) * (size_t)T * V), *all = malloc(sizeof(float) * (size_t)T * V);
    for (int mode = 0; mode < 2; mode++) {
        kvattn_session *s;
        CHECK_OK(kvattn_session_create(m, 32, KVATTN_TYPE_F32, (kvattn_mla_mode)mode, &s));
        double worst = 0;
        CHECK_OK(kvattn_session_decode(s, ids, P, logits, 0));
        worst = fmax(worst, test_max_abs_diff(logits, want->data, (size_t)V));
        for (int t = P; t < T; t++) {
            CHECK_OK(kvattn_session_decode(s, &ids[t], 1, logits + (size_t)(t - P + 1) * V, 0));
            worst = fmax(worst, test_max_abs_diff(logits + (size_t)(t - P + 1) * V, want->data + (size_t)(t - P + 1) * V, (size_t)V));
        }
        CHECK(worst <= TOL * scale, "%s (%s kv_b, %s MLA) vs DeepSeek's reference: max err %.3g of %.3g", fixture,
              split ? "split" : "fused", mode ? "naive" : "absorbed", worst, scale);
        kvattn_session_free(s);
        /* cached decode == the whole sequence recomputed in one batch */
        CHECK_OK(kvattn_session_create(m, 32, KVATTN_TYPE_F32, (kvattn_mla_mode)mode, &s));
        CHECK_OK(kvattn_session_decode(s, ids, T, all, 1));
        double e = test_max_abs_diff(all + (size_t)(P - 1) * V, logits, (size_t)(T - P + 1) * V);
        CHECK(e <= TOL * scale, "%s: cached decode vs batched recompute (%s): err %.3g", fixture, mode ? "naive" : "absorbed", e);
        kvattn_session_free(s);
    }
    /* The latent cache: (d_c + d_R) elements per token per layer. */
    CHECK(kvattn_kv_bytes_per_token(&d->attn, d->n_layers, KVATTN_TYPE_F16) ==
              (size_t)d->n_layers * (d->attn.kv_lora_rank + d->attn.qk_rope_head_dim) * 2,
          "%s: latent cache size", fixture);
    free(logits), free(all);
    kvattn_model_free(m);
    unlink(gpath);
    golden_free(&g);
}

/* DeepSeek-V2-Lite's shapes (from its config.json): the cache is 31,104 bytes
 * per token at 16 bits, and a session allocates exactly that per token. */
static void test_v2_lite_cache(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/configs/deepseek-v2-lite.json", KVATTN_TEST_DATA);
    kvattn_model_desc d;
    CHECK_OK(kvattn_model_from_hf_config(path, &d));
    CHECK(kvattn_kv_bytes_per_token(&d.attn, d.n_layers, KVATTN_TYPE_F16) == 31104, "V2-Lite: 31,104 bytes/token");
    kvattn_cache *c;
    CHECK_OK(kvattn_cache_create(&d.attn, d.n_layers, 1000, KVATTN_TYPE_BF16, &c));
    CHECK(kvattn_cache_bytes_allocated(c) == 31104ull * 1000, "V2-Lite cache of 1000 tokens: %zu",
          kvattn_cache_bytes_allocated(c));
    kvattn_cache_free(c);
}

/* Missing or inconsistent tensors: errors that name them. */
static void test_bad_deepseek(void) {
    char path[512], gpath[128];
    snprintf(path, sizeof path, "%s/ds_v3_like.bin", KVATTN_GOLDEN_DIR);
    golden_file g;
    if (golden_load(path, &g) != 0) return;
    snprintf(gpath, sizeof gpath, "/tmp/kvattn_dsbad_%d.gguf", (int)getpid());
    golden_array *ex = NULL, *kvb = NULL;
    for (int i = 0; i < g.count; i++) {
        if (!strcmp(g.a[i].name, "blk.2.ffn_up_exps.weight")) ex = &g.a[i];
        if (!strcmp(g.a[i].name, "blk.1.attn_kv_b.weight")) kvb = &g.a[i];
    }
    CHECK(ex && kvb, "fixture tensors found");
    if (ex && kvb) {
        char saved[64];
        strcpy(saved, ex->name);
        strcpy(ex->name, "blk.2.ffn_up_exps.bogus"); /* not written: the expert tensor goes missing */
        CHECK_OK(write_gguf(&g, gpath, 0, KVATTN_TYPE_F32));
        kvattn_model *m = NULL;
        CHECK(kvattn_model_load(gpath, NULL, &m) == KVATTN_ERR_FORMAT && !m, "missing expert tensor refused");
        CHECK(strstr(kvattn_last_error(), "blk.2.ffn_up_exps.weight") && strstr(kvattn_last_error(), "missing"),
              "message: %s", kvattn_last_error());
        strcpy(ex->name, saved);
        kvb->dims[0] -= 1; /* one head's rows short: inconsistent with head_count */
        kvb->n -= kvb->dims[1];
        CHECK_OK(write_gguf(&g, gpath, 0, KVATTN_TYPE_F32));
        CHECK(kvattn_model_load(gpath, NULL, &m) == KVATTN_ERR_FORMAT, "short attn_kv_b refused");
        CHECK(strstr(kvattn_last_error(), "blk.1.attn_kv_b.weight") != NULL, "message: %s", kvattn_last_error());
        unlink(gpath);
    }
    golden_free(&g);
}

int main(void) {
    const char *fixtures[] = {"ds_v2lite_like.bin", "ds_v3_like.bin", "ds_dense.bin"};
    for (int f = 0; f < 3; f++)
        for (int split = 0; split < 2; split++) check_model(fixtures[f], split);
    test_v2_lite_cache();
    test_bad_deepseek();
    return test_finish("test_deepseek");
}
