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
#include "golden_gguf.h"
#include "test_util.h"

#include "model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#define TOL 1e-4

static kvattn_status write_gguf(const golden_file *g, const char *path, int split, kvattn_type wtype) {
    return golden_write_deepseek2_gguf(g, path, split, wtype, 0);
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
    CHECK(!strcmp(d->arch, "deepseek2") && d->attn.kind == KVATTN_ATTN_MLA && steps == T - P + 1, "%s: shapes",
          fixture);
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
            worst = fmax(worst, test_max_abs_diff(logits + (size_t)(t - P + 1) * V,
                                                  want->data + (size_t)(t - P + 1) * V, (size_t)V));
        }
        CHECK(worst <= TOL * scale, "%s (%s kv_b, %s MLA) vs DeepSeek's reference: max err %.3g of %.3g", fixture,
              split ? "split" : "fused", mode ? "naive" : "absorbed", worst, scale);
        kvattn_session_free(s);
        /* cached decode == the whole sequence recomputed in one batch */
        CHECK_OK(kvattn_session_create(m, 32, KVATTN_TYPE_F32, (kvattn_mla_mode)mode, &s));
        CHECK_OK(kvattn_session_decode(s, ids, T, all, 1));
        double e = test_max_abs_diff(all + (size_t)(P - 1) * V, logits, (size_t)(T - P + 1) * V);
        CHECK(e <= TOL * scale, "%s: cached decode vs batched recompute (%s): err %.3g", fixture,
              mode ? "naive" : "absorbed", e);
        kvattn_session_free(s);
    }
    /* kvattn's own deepseek2 writer: the loaded model written back gives the same logits. */
    char again[160];
    snprintf(again, sizeof again, "/tmp/kvattn_ds2_%d.gguf", (int)getpid());
    CHECK_OK(kvattn_model_save_gguf(m, again, KVATTN_TYPE_F32));
    kvattn_model *m2 = NULL;
    CHECK_OK(kvattn_model_load(again, NULL, &m2));
    if (m2) {
        kvattn_session *s;
        CHECK_OK(kvattn_session_create(m2, 32, KVATTN_TYPE_F32, KVATTN_MLA_ABSORBED, &s));
        CHECK_OK(kvattn_session_decode(s, ids, T, all, 1));
        double e = test_max_abs_diff(all + (size_t)(P - 1) * V, logits, (size_t)(T - P + 1) * V);
        CHECK(e <= TOL * scale, "%s: saved and reloaded deepseek2 GGUF: err %.3g", fixture, e);
        kvattn_session_free(s);
        kvattn_model_free(m2);
    }
    CHECK_OK(kvattn_model_save_gguf(m, again, KVATTN_TYPE_Q8_0));
    CHECK_OK(kvattn_model_load(again, NULL, &m2));
    if (m2) { /* q8_0 weights load and run (not compared: routing may flip) */
        kvattn_session *s;
        CHECK_OK(kvattn_session_create(m2, 32, KVATTN_TYPE_Q8_0, KVATTN_MLA_ABSORBED, &s));
        CHECK_OK(kvattn_session_decode(s, ids, T, all, 0));
        CHECK(isfinite(all[0]) && isfinite(all[V - 1]), "q8_0 deepseek2 logits are finite");
        kvattn_session_free(s);
        kvattn_model_free(m2);
    }
    unlink(again);
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

/* ---- the same fixture as a Hugging Face folder (config.json + model.safetensors) ---- */

typedef struct {
    char name[96];
    int n_dims;
    int64_t shape[3];
    const float *data;
} hf_tensor;

/* The fixture's GGUF-style name → Hugging Face names (experts: one per expert). */
static int hf_names(const golden_array *a, hf_tensor *out, int max) {
    static const char *const map[][2] = {{"attn_norm.weight", "input_layernorm.weight"},
                                         {"ffn_norm.weight", "post_attention_layernorm.weight"},
                                         {"attn_q.weight", "self_attn.q_proj.weight"},
                                         {"attn_q_a.weight", "self_attn.q_a_proj.weight"},
                                         {"attn_q_a_norm.weight", "self_attn.q_a_layernorm.weight"},
                                         {"attn_q_b.weight", "self_attn.q_b_proj.weight"},
                                         {"attn_kv_a_mqa.weight", "self_attn.kv_a_proj_with_mqa.weight"},
                                         {"attn_kv_a_norm.weight", "self_attn.kv_a_layernorm.weight"},
                                         {"attn_kv_b.weight", "self_attn.kv_b_proj.weight"},
                                         {"attn_output.weight", "self_attn.o_proj.weight"},
                                         {"ffn_gate.weight", "mlp.gate_proj.weight"},
                                         {"ffn_up.weight", "mlp.up_proj.weight"},
                                         {"ffn_down.weight", "mlp.down_proj.weight"},
                                         {"ffn_gate_inp.weight", "mlp.gate.weight"},
                                         {"exp_probs_b.bias", "mlp.gate.e_score_correction_bias"},
                                         {"ffn_gate_shexp.weight", "mlp.shared_experts.gate_proj.weight"},
                                         {"ffn_up_shexp.weight", "mlp.shared_experts.up_proj.weight"},
                                         {"ffn_down_shexp.weight", "mlp.shared_experts.down_proj.weight"}};
    hf_tensor t = {{0}, a->n_dims, {a->dims[0], a->dims[1], a->dims[2]}, a->data};
    if (!strcmp(a->name, "token_embd.weight")) snprintf(t.name, sizeof t.name, "model.embed_tokens.weight");
    else if (!strcmp(a->name, "output_norm.weight")) snprintf(t.name, sizeof t.name, "model.norm.weight");
    else if (!strcmp(a->name, "output.weight")) snprintf(t.name, sizeof t.name, "lm_head.weight");
    else {
        int l;
        char rest[64];
        if (sscanf(a->name, "blk.%d.%63s", &l, rest) != 2) return 0;
        const char *proj = strstr(rest, "gate_exps")   ? "gate_proj"
                           : strstr(rest, "up_exps")   ? "up_proj"
                           : strstr(rest, "down_exps") ? "down_proj"
                                                       : NULL;
        if (proj) { /* [E][rows][cols] → one matrix per expert */
            int n = 0;
            for (uint32_t e = 0; e < a->dims[0] && n < max; e++, n++) {
                snprintf(out[n].name, sizeof out[n].name, "model.layers.%d.mlp.experts.%u.%s.weight", l, e, proj);
                out[n].n_dims = 2;
                out[n].shape[0] = a->dims[1], out[n].shape[1] = a->dims[2];
                out[n].data = a->data + (size_t)e * a->dims[1] * a->dims[2];
            }
            return n;
        }
        for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
            if (!strcmp(rest, map[i][0])) snprintf(t.name, sizeof t.name, "model.layers.%d.%s", l, map[i][1]);
        if (!t.name[0]) return 0;
    }
    if (max < 1) return 0;
    out[0] = t;
    return 1;
}

static int write_hf_folder(const golden_file *g, const char *dir) {
    hf_tensor *ts = malloc(sizeof *ts * 1024);
    int n = 0;
    for (int i = 0; i < g->count; i++) n += hf_names(&g->a[i], ts + n, 1024 - n);
    cJSON *hdr = cJSON_CreateObject();
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        uint64_t numel = 1;
        double shape[3];
        for (int d = 0; d < ts[i].n_dims; d++) numel *= (uint64_t)ts[i].shape[d], shape[d] = (double)ts[i].shape[d];
        double offs[2] = {(double)off, (double)(off + 4 * numel)};
        cJSON *e = cJSON_AddObjectToObject(hdr, ts[i].name);
        cJSON_AddStringToObject(e, "dtype", "F32");
        cJSON_AddItemToObject(e, "shape", cJSON_CreateDoubleArray(shape, ts[i].n_dims));
        cJSON_AddItemToObject(e, "data_offsets", cJSON_CreateDoubleArray(offs, 2));
        off += 4 * numel;
    }
    char *h = cJSON_PrintUnformatted(hdr);
    size_t hl = strlen(h);
    char path[256];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "wb");
    int rc = f ? 0 : -1;
    if (f) {
        uint64_t padded = (hl + 7) / 8 * 8;
        fwrite(&padded, 8, 1, f);
        fwrite(h, 1, hl, f);
        for (size_t k = hl; k < padded; k++) fputc(' ', f);
        for (int i = 0; i < n; i++) {
            uint64_t numel = 1;
            for (int d = 0; d < ts[i].n_dims; d++) numel *= (uint64_t)ts[i].shape[d];
            fwrite(ts[i].data, 4, numel, f);
        }
        fclose(f);
    }
    cJSON_free(h);
    cJSON_Delete(hdr);
    free(ts);
    const int E = (int)num(g, "experts"), sig = num(g, "sigmoid") == 1.0f, ql = (int)num(g, "ql");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "model_type", sig ? "deepseek_v3" : "deepseek_v2");
    const char *ints[] = {
        "hidden_size",           "D",  "num_hidden_layers", "L",  "num_attention_heads",     "H",
        "num_key_value_heads",   "H",  "kv_lora_rank",      "dc", "qk_nope_head_dim",        "dn",
        "qk_rope_head_dim",      "dr", "v_head_dim",        "dv", "intermediate_size",       "F",
        "moe_intermediate_size", "Fm", "vocab_size",        "V",  "max_position_embeddings", "max_seq"};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i += 2)
        cJSON_AddNumberToObject(c, ints[i], num(g, ints[i + 1]));
    if (ql) cJSON_AddNumberToObject(c, "q_lora_rank", ql);
    else cJSON_AddNullToObject(c, "q_lora_rank");
    if (E) {
        cJSON_AddNumberToObject(c, "n_routed_experts", E);
        cJSON_AddNumberToObject(c, "n_shared_experts", num(g, "shared"));
        cJSON_AddNumberToObject(c, "num_experts_per_tok", num(g, "topk"));
        cJSON_AddNumberToObject(c, "first_k_dense_replace", num(g, "dense"));
        cJSON_AddNumberToObject(c, "moe_layer_freq", 1);
        cJSON_AddNumberToObject(c, "n_group", num(g, "groups"));
        cJSON_AddNumberToObject(c, "topk_group", num(g, "topk_groups"));
        cJSON_AddBoolToObject(c, "norm_topk_prob", sig);
        cJSON_AddNumberToObject(c, "routed_scaling_factor", num(g, "route_scale"));
        cJSON_AddStringToObject(c, "scoring_func", sig ? "sigmoid" : "softmax");
    } else {
        cJSON_AddNullToObject(c, "n_routed_experts");
    }
    cJSON_AddNumberToObject(c, "rms_norm_eps", 1e-6);
    cJSON_AddNumberToObject(c, "rope_theta", 10000);
    if (num(g, "max_seq") > num(g, "orig")) {
        cJSON *y = cJSON_AddObjectToObject(c, "rope_scaling");
        cJSON_AddStringToObject(y, "type", "yarn");
        cJSON_AddNumberToObject(y, "factor", 40);
        cJSON_AddNumberToObject(y, "original_max_position_embeddings", num(g, "orig"));
        cJSON_AddNumberToObject(y, "beta_fast", 32);
        cJSON_AddNumberToObject(y, "beta_slow", 1);
        cJSON_AddNumberToObject(y, "mscale", 0.707);
        cJSON_AddNumberToObject(y, "mscale_all_dim", 0.707);
    }
    cJSON_AddBoolToObject(c, "tie_word_embeddings", 0);
    char *txt = cJSON_Print(c);
    snprintf(path, sizeof path, "%s/config.json", dir);
    f = fopen(path, "w");
    if (f) fputs(txt, f), fclose(f);
    else rc = -1;
    cJSON_free(txt);
    cJSON_Delete(c);
    return rc;
}

/* The Hugging Face layout of the same models gives the reference logits. */
static void check_hf(const char *fixture) {
    char path[512], dir[128];
    snprintf(path, sizeof path, "%s/%s", KVATTN_GOLDEN_DIR, fixture);
    golden_file g;
    if (golden_load(path, &g) != 0) return;
    snprintf(dir, sizeof dir, "/tmp/kvattn_hfds_%d", (int)getpid());
    mkdir(dir, 0755);
    CHECK(write_hf_folder(&g, dir) == 0, "HF folder written");
    kvattn_model *m = NULL;
    CHECK_OK(kvattn_model_load(dir, NULL, &m));
    const golden_array *tok = get(&g, "tokens"), *want = get(&g, "logits");
    if (m && tok && want) {
        const int V = (int)kvattn_model_describe(m)->vocab_size, T = tok->n, P = (int)num(&g, "prefill");
        int32_t ids[64];
        for (int i = 0; i < T; i++) ids[i] = (int32_t)tok->data[i];
        float *all = malloc(sizeof(float) * (size_t)T * V);
        kvattn_session *s;
        CHECK_OK(kvattn_session_create(m, 32, KVATTN_TYPE_F32, KVATTN_MLA_ABSORBED, &s));
        CHECK_OK(kvattn_session_decode(s, ids, T, all, 1));
        double scale = test_max_abs(want->data, (size_t)want->n);
        double e = test_max_abs_diff(all + (size_t)(P - 1) * V, want->data, (size_t)want->n);
        CHECK(e <= TOL * scale, "%s as a Hugging Face folder: err %.3g of %.3g", fixture, e, scale);
        kvattn_session_free(s);
        free(all);
    }
    kvattn_model_free(m);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    rmdir(dir);
    golden_free(&g);
}

/* A model with DeepSeek-V2-Lite's attention shapes (27 layers, latent 512 + 64;
 * narrow elsewhere to stay small): kvattn reports 31,104 bytes per token at 16
 * bits and a session allocates exactly that per token of context. */
static void test_v2_lite_shaped_model(void) {
    const int L = 27, D = 64, H = 2, dc = 512, dr = 64, dn = 16, dv = 16, F = 32, V = 32;
    kvattn_gguf_writer *w;
    CHECK_OK(kvattn_gguf_writer_create(&w));
    kvattn_gguf_set_str(w, "general.architecture", "deepseek2");
    kvattn_gguf_set_u32(w, "deepseek2.embedding_length", D);
    kvattn_gguf_set_u32(w, "deepseek2.block_count", L);
    kvattn_gguf_set_u32(w, "deepseek2.feed_forward_length", F);
    kvattn_gguf_set_u32(w, "deepseek2.attention.head_count", H);
    kvattn_gguf_set_u32(w, "deepseek2.attention.kv_lora_rank", dc);
    kvattn_gguf_set_u32(w, "deepseek2.rope.dimension_count", dr);
    kvattn_gguf_set_u32(w, "deepseek2.attention.key_length", dn + dr);
    kvattn_gguf_set_u32(w, "deepseek2.attention.value_length", dv);
    kvattn_gguf_set_u32(w, "deepseek2.context_length", 163840);
    float *data = malloc(sizeof(float) * 2 * 256 * 512);
    test_rng r = {5};
    test_fill(&r, data, 2 * 256 * 512, 0.05f);
    struct {
        const char *name;
        int64_t ne0, ne1;
    } t[] = {{"attn_norm.weight", D, 1},
             {"attn_q.weight", D, H * (dn + dr)},
             {"attn_kv_a_mqa.weight", D, dc + dr},
             {"attn_kv_a_norm.weight", dc, 1},
             {"attn_kv_b.weight", dc, H * (dn + dv)},
             {"attn_output.weight", H * dv, D},
             {"ffn_norm.weight", D, 1},
             {"ffn_gate.weight", D, F},
             {"ffn_up.weight", D, F},
             {"ffn_down.weight", F, D}};
    int64_t ne[2] = {D, V};
    kvattn_gguf_add_tensor(w, "token_embd.weight", KVATTN_TYPE_F16, ne, 2, data);
    kvattn_gguf_add_tensor(w, "output_norm.weight", KVATTN_TYPE_F32, ne, 1, data);
    for (int l = 0; l < L; l++)
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
            char nm[64];
            snprintf(nm, sizeof nm, "blk.%d.%s", l, t[i].name);
            int64_t e2[2] = {t[i].ne0, t[i].ne1};
            kvattn_gguf_add_tensor(w, nm, t[i].ne1 > 1 ? KVATTN_TYPE_F16 : KVATTN_TYPE_F32, e2, t[i].ne1 > 1 ? 2 : 1,
                                   data);
        }
    char path[128];
    snprintf(path, sizeof path, "/tmp/kvattn_v2lite_shape_%d.gguf", (int)getpid());
    CHECK_OK(kvattn_gguf_write_file(w, path));
    kvattn_gguf_writer_free(w);
    free(data);
    kvattn_model *m = NULL;
    CHECK_OK(kvattn_model_load(path, NULL, &m));
    if (m) {
        const kvattn_model_desc *d = kvattn_model_describe(m);
        CHECK(kvattn_kv_bytes_per_token(&d->attn, d->n_layers, KVATTN_TYPE_F16) == 31104,
              "V2-Lite-shaped: 31,104 B/token");
        kvattn_session *s;
        CHECK_OK(kvattn_session_create(m, 4096, KVATTN_TYPE_F16, KVATTN_MLA_ABSORBED, &s));
        CHECK(kvattn_cache_bytes_allocated(kvattn_session_cache(s)) == 31104ull * 4096, "session cache: %zu bytes",
              kvattn_cache_bytes_allocated(kvattn_session_cache(s)));
        int32_t ids[3] = {1, 2, 3};
        float logits[32];
        CHECK_OK(kvattn_session_decode(s, ids, 3, logits, 0));
        kvattn_session_free(s);
    }
    kvattn_model_free(m);
    unlink(path);
}

/* f16 and bf16 weights are packed in panels at load (KVATTN_PANELS=0: not):
 * the two give the same logits to f32 summation-order error (TOL), and only
 * the packed one carries panels, the output matrix's and MLA's per-head
 * W_UKᵀ and W_UV (from the fused attn_kv_b and the split attn_k_b/attn_v_b)
 * included. */
static void test_packed_weights(void) {
    char path[512], gpath[128];
    snprintf(path, sizeof path, "%s/ds_v2lite_like.bin", KVATTN_GOLDEN_DIR);
    golden_file g;
    CHECK(golden_load(path, &g) == 0, "cannot read %s", path);
    const golden_array *tok = get(&g, "tokens");
    snprintf(gpath, sizeof gpath, "/tmp/kvattn_dsp_%d.gguf", (int)getpid());
    const kvattn_type types[] = {KVATTN_TYPE_F16, KVATTN_TYPE_BF16, KVATTN_TYPE_F16};
    for (int ti = 0; ti < 3 && tok; ti++) {
        const int split = ti < 2;
        CHECK_OK(write_gguf(&g, gpath, split, types[ti]));
        kvattn_model *m[2] = {NULL, NULL};
        setenv("KVATTN_PANELS", "0", 1);
        CHECK_OK(kvattn_model_load(gpath, NULL, &m[0]));
        unsetenv("KVATTN_PANELS");
        CHECK_OK(kvattn_model_load(gpath, NULL, &m[1]));
        if (!m[0] || !m[1]) {
            kvattn_model_free(m[0]), kvattn_model_free(m[1]);
            continue;
        }
        const kv_layer *L0 = &m[0]->layers[0], *L1 = &m[1]->layers[0];
        CHECK(!L0->attn.wkv_a.panels && !m[0]->output.panels, "KVATTN_PANELS=0 packs nothing");
        CHECK(L1->attn.wkv_a.panels && L1->attn.wo.panels && m[1]->output.panels && !m[1]->tok_embd.panels,
              "%s projections are packed", kvattn_type_name(types[ti]));
        CHECK(L1->attn.wk_b.panels && L1->attn.wv_b.panels && !L0->attn.wk_b.panels,
              "%s W_UK/W_UV (%s) are packed per head", kvattn_type_name(types[ti]), split ? "split" : "fused");
        const int V = (int)m[0]->desc.vocab_size, T = tok->n;
        int32_t ids[64];
        for (int i = 0; i < T; i++) ids[i] = (int32_t)tok->data[i];
        float *lg[2] = {malloc(sizeof(float) * (size_t)T * V), malloc(sizeof(float) * (size_t)T * V)};
        for (int i = 0; i < 2; i++) {
            kvattn_session *s = NULL;
            CHECK_OK(kvattn_session_create(m[i], 32, KVATTN_TYPE_F32, KVATTN_MLA_ABSORBED, &s));
            CHECK_OK(kvattn_session_decode(s, ids, T, lg[i], 1));
            kvattn_session_free(s);
        }
        const double scale = test_max_abs(lg[0], (size_t)T * V), e = test_max_abs_diff(lg[0], lg[1], (size_t)T * V);
        CHECK(scale > 0 && e <= TOL * scale, "%s weights (%s kv_b), packed vs rows: max err %.3g of %.3g",
              kvattn_type_name(types[ti]), split ? "split" : "fused", e, scale);
        free(lg[0]), free(lg[1]);
        kvattn_model_free(m[0]), kvattn_model_free(m[1]);
    }
    unlink(gpath);
    golden_free(&g);
}

/* Leaves a tiny deepseek2 GGUF with a byte vocabulary for test_cli's checks. */
static void write_cli_model(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/ds_v2lite_like.bin", KVATTN_GOLDEN_DIR);
    golden_file g;
    if (golden_load(path, &g) != 0) return;
    CHECK_OK(golden_write_deepseek2_gguf(&g, "tiny_deepseek2.gguf", 1, KVATTN_TYPE_F16, 1));
    golden_free(&g);
}

int main(void) {
    if (test_isa_skip("test_deepseek")) return 77;
    const char *fixtures[] = {"ds_v2lite_like.bin", "ds_v3_like.bin", "ds_dense.bin"};
    write_cli_model();
    for (int f = 0; f < 3; f++)
        for (int split = 0; split < 2; split++) check_model(fixtures[f], split);
    for (int f = 0; f < 3; f++) check_hf(fixtures[f]);
    test_v2_lite_cache();
    test_packed_weights();
    test_v2_lite_shaped_model();
    test_bad_deepseek();
    return test_finish("test_deepseek");
}
