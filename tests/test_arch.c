/* The GQA-family architectures beyond llama end to end: qwen2 (Q/K/V
 * biases, tied output), qwen3 (per-head Q/K RMSNorm) and llama with experts
 * (Mixtral). Tiny models with random weights come from
 * tests/golden/gen_golden.py, with logits computed in float64 by PyTorch as
 * llama.cpp's graphs and Hugging Face's modeling code define them. Here each
 * is written as a GGUF (f32 and f16 weights) and as a Hugging Face folder
 * (config.json + model.safetensors, with HF's tensor names and Q/K row
 * order), loaded and run: a prefill, then one-token decode steps.
 * Tolerance 1e-4 · max|logit| for f32 weights: f32 arithmetic (≈1e-6
 * relative per dot product) through two blocks and the router; a wrong bias,
 * norm, rotation or route moves logits by O(1). f16 weights round each
 * weight by up to 2^-11 relative, which moves these logits by about 1e-3 of
 * their scale: 1e-2 · max|logit|, with the greedy token unchanged. */
#define _POSIX_C_SOURCE 200809L
#include "golden_file.h"
#include "golden_gguf.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOL     1e-4
#define TOL_F16 1e-2

static int n_of(const golden_file *g, const char *k) { return (int)num(g, k); }

/* ---- a Hugging Face folder of the same weights ---------------------------- */

typedef struct {
    char name[128];
    const float *data;
    float *owned; /* permuted copy, or NULL */
    int64_t shape[2];
    int n_dims;
} hf_tensor;

/* GGUF llama's Q/K rows (adjacent pairs per head) in HF's rotate_half order:
 * HF row j·hd/2 + i of a head is GGUF row 2i + j. */
static float *to_half_order(const float *w, int rows, int cols, int hd) {
    float *out = malloc(sizeof(float) * (size_t)rows * cols);
    for (int h = 0; h < rows / hd; h++)
        for (int i = 0; i < hd / 2; i++)
            for (int j = 0; j < 2; j++)
                memcpy(out + ((size_t)h * hd + (size_t)j * (hd / 2) + i) * cols,
                       w + ((size_t)h * hd + 2 * (size_t)i + j) * cols, sizeof(float) * (size_t)cols);
    return out;
}

static void hf_add(hf_tensor *t, int *n, const char *name, const float *data, int64_t rows, int64_t cols, int n_dims) {
    hf_tensor *x = &t[(*n)++];
    memset(x, 0, sizeof *x);
    snprintf(x->name, sizeof x->name, "%s", name);
    x->data = data;
    x->shape[0] = rows, x->shape[1] = cols, x->n_dims = n_dims;
}

/* The HF name of one GGUF layer tensor (Mixtral's experts are handled apart). */
static const char *hf_layer_name(const char *gguf_suffix) {
    static const char *const map[][2] = {
        {"attn_norm.weight", "input_layernorm.weight"},
        {"ffn_norm.weight", "post_attention_layernorm.weight"},
        {"attn_q.weight", "self_attn.q_proj.weight"},
        {"attn_k.weight", "self_attn.k_proj.weight"},
        {"attn_v.weight", "self_attn.v_proj.weight"},
        {"attn_output.weight", "self_attn.o_proj.weight"},
        {"attn_q.bias", "self_attn.q_proj.bias"},
        {"attn_k.bias", "self_attn.k_proj.bias"},
        {"attn_v.bias", "self_attn.v_proj.bias"},
        {"attn_q_norm.weight", "self_attn.q_norm.weight"},
        {"attn_k_norm.weight", "self_attn.k_norm.weight"},
        {"ffn_gate.weight", "mlp.gate_proj.weight"},
        {"ffn_up.weight", "mlp.up_proj.weight"},
        {"ffn_down.weight", "mlp.down_proj.weight"},
        {"ffn_gate_inp.weight", "block_sparse_moe.gate.weight"},
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (!strcmp(map[i][0], gguf_suffix)) return map[i][1];
    return NULL;
}

/* With linear > 0, rope_scaling {"rope_type": "linear"} instead of the
 * fixture's Llama 3 scaling. */
static int write_hf_folder(const golden_file *g, const char *dir, float linear) {
    const int arch = n_of(g, "arch"), hd = n_of(g, "hd"), E = n_of(g, "experts"), F = n_of(g, "F"), D = n_of(g, "D");
    const int tied = get(g, "output.weight") == NULL;
    mkdir(dir, 0755);
    char p[600];
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = fopen(p, "w");
    if (!f) return -1;
    fprintf(f,
            "{\"model_type\": \"%s\", \"hidden_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": %d,"
            " \"num_key_value_heads\": %d, \"head_dim\": %d, \"intermediate_size\": %d, \"vocab_size\": %d,"
            " \"rms_norm_eps\": %g, \"rope_theta\": %.1f, \"tie_word_embeddings\": %s,"
            " \"max_position_embeddings\": 64",
            E           ? "mixtral"
            : arch == 1 ? "qwen2"
            : arch == 2 ? "qwen3"
                        : "llama",
            D, n_of(g, "L"), n_of(g, "H"), n_of(g, "n_kv"), hd, F, n_of(g, "V"), (double)num(g, "eps"),
            (double)num(g, "theta"), tied ? "true" : "false");
    if (E) fprintf(f, ", \"num_local_experts\": %d, \"num_experts_per_tok\": %d", E, n_of(g, "topk"));
    if (linear > 0) fprintf(f, ", \"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": %g}", (double)linear);
    else if (get(g, "rope_factor"))
        fprintf(f,
                ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": %g, \"low_freq_factor\": %g,"
                " \"high_freq_factor\": %g, \"original_max_position_embeddings\": %d}",
                (double)num(g, "rope_factor"), (double)num(g, "rope_low"), (double)num(g, "rope_high"),
                n_of(g, "rope_orig"));
    fprintf(f, "}\n");
    fclose(f);

    hf_tensor *t = calloc(512, sizeof *t);
    int n = 0;
    for (int i = 0; i < g->count && n < 500; i++) {
        const golden_array *a = &g->a[i];
        int64_t rows = a->n_dims >= 2 ? a->dims[a->n_dims - 2] : a->dims[0],
                cols = a->n_dims >= 2 ? a->dims[a->n_dims - 1] : 1;
        int l;
        char suffix[96], name[128];
        if (!strcmp(a->name, "token_embd.weight")) hf_add(t, &n, "model.embed_tokens.weight", a->data, rows, cols, 2);
        else if (!strcmp(a->name, "output_norm.weight")) hf_add(t, &n, "model.norm.weight", a->data, rows, 1, 1);
        else if (!strcmp(a->name, "output.weight")) hf_add(t, &n, "lm_head.weight", a->data, rows, cols, 2);
        else if (sscanf(a->name, "blk.%d.%95s", &l, suffix) == 2) {
            if (strstr(suffix, "_exps.")) { /* one tensor per expert: w1 gate, w3 up, w2 down */
                const char *wn = strstr(suffix, "gate") ? "w1" : strstr(suffix, "up") ? "w3" : "w2";
                for (int e = 0; e < E; e++) {
                    snprintf(name, sizeof name, "model.layers.%d.block_sparse_moe.experts.%d.%s.weight", l, e, wn);
                    hf_add(t, &n, name, a->data + (size_t)e * rows * cols, rows, cols, 2);
                }
                continue;
            }
            const char *hf = hf_layer_name(suffix);
            if (!hf) continue;
            snprintf(name, sizeof name, "model.layers.%d.%s", l, hf);
            hf_add(t, &n, name, a->data, rows, cols, a->n_dims >= 2 ? 2 : 1);
            int qk = !strcmp(suffix, "attn_q.weight") || !strcmp(suffix, "attn_k.weight");
            if (qk && arch == 0) /* GGUF llama rows are adjacent pairs; HF's rotate_half */
                t[n - 1].data = t[n - 1].owned = to_half_order(a->data, (int)rows, (int)cols, hd);
        }
    }
    /* header: {"name": {"dtype": "F32", "shape": [...], "data_offsets": [b, e]}, ...} */
    size_t cap = 64 + (size_t)n * 256, len = 0, off = 0;
    char *hdr = malloc(cap);
    len += (size_t)snprintf(hdr + len, cap - len, "{");
    for (int i = 0; i < n; i++) {
        size_t bytes = sizeof(float) * (size_t)t[i].shape[0] * (size_t)(t[i].n_dims == 2 ? t[i].shape[1] : 1);
        if (t[i].n_dims == 2)
            len += (size_t)snprintf(
                hdr + len, cap - len, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],\"data_offsets\":[%zu,%zu]}",
                i ? "," : "", t[i].name, (long long)t[i].shape[0], (long long)t[i].shape[1], off, off + bytes);
        else
            len += (size_t)snprintf(hdr + len, cap - len,
                                    "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld],\"data_offsets\":[%zu,%zu]}",
                                    i ? "," : "", t[i].name, (long long)t[i].shape[0], off, off + bytes);
        off += bytes;
    }
    len += (size_t)snprintf(hdr + len, cap - len, "}");
    while (len % 8) hdr[len++] = ' ';
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    f = fopen(p, "wb");
    int rc = f ? 0 : -1;
    if (f) {
        uint64_t hl = len;
        fwrite(&hl, 8, 1, f);
        fwrite(hdr, 1, len, f);
        for (int i = 0; i < n; i++)
            fwrite(t[i].data, sizeof(float), (size_t)t[i].shape[0] * (size_t)(t[i].n_dims == 2 ? t[i].shape[1] : 1), f);
        fclose(f);
    }
    for (int i = 0; i < n; i++) free(t[i].owned);
    free(t), free(hdr);
    return rc;
}

/* ---- running ---------------------------------------------------------------- */

/* Prefill then one-token steps: logits [steps][V] against the fixture's.
 * Returns the max abs error; *argmax_same says whether every step's greedy
 * token equals the reference's. */
static double run_steps(kvattn_model *m, const golden_file *g, float *logits, int *argmax_same) {
    const golden_array *tok = get(g, "tokens"), *want = get(g, "logits");
    const int V = n_of(g, "V"), T = tok->n, P = n_of(g, "prefill");
    int32_t ids[64];
    for (int i = 0; i < T; i++) ids[i] = (int32_t)tok->data[i];
    kvattn_session *s;
    CHECK_OK(kvattn_session_create(m, 32, KVATTN_TYPE_F32, KVATTN_MLA_ABSORBED, &s));
    if (!s) return INFINITY;
    double worst = 0;
    *argmax_same = 1;
    for (int step = 0, t = 0; t < T; step++) {
        int n = step == 0 ? P : 1;
        CHECK_OK(kvattn_session_decode(s, ids + t, n, logits + (size_t)step * V, 0));
        const float *got = logits + (size_t)step * V, *ref = want->data + (size_t)step * V;
        worst = fmax(worst, test_max_abs_diff(got, ref, (size_t)V));
        int a = 0, b = 0;
        for (int v = 1; v < V; v++) a = got[v] > got[a] ? v : a, b = ref[v] > ref[b] ? v : b;
        *argmax_same &= a == b;
        t += n;
    }
    kvattn_session_free(s);
    return worst;
}

static void check_fixture(const char *fixture) {
    char path[512], gpath[160], dir[160];
    snprintf(path, sizeof path, "%s/%s", KVATTN_GOLDEN_DIR, fixture);
    golden_file g;
    int ok = golden_load(path, &g) == 0;
    CHECK(ok, "cannot read %s", path);
    if (!ok) return;
    const int V = n_of(&g, "V"), T = get(&g, "tokens")->n, P = n_of(&g, "prefill"), steps = T - P + 1;
    const char *arch = golden_arch_name(&g);
    const double scale = test_max_abs(get(&g, "logits")->data, (size_t)get(&g, "logits")->n);
    float *logits = malloc(sizeof(float) * (size_t)steps * V), *all = malloc(sizeof(float) * (size_t)T * V);
    snprintf(gpath, sizeof gpath, "/tmp/kvattn_arch_%d.gguf", (int)getpid());

    for (int f16 = 0; f16 < 2; f16++) {
        CHECK_OK(golden_write_gguf(&g, gpath, f16 ? KVATTN_TYPE_F16 : KVATTN_TYPE_F32, NULL, 0));
        kvattn_model *m = NULL;
        CHECK_OK(kvattn_model_load(gpath, NULL, &m));
        if (!m) continue;
        const kvattn_model_desc *d = kvattn_model_describe(m);
        CHECK(!strcmp(d->arch, arch) && d->n_routed_experts == n_of(&g, "experts") &&
                  d->attn.head_dim == n_of(&g, "hd") && d->qk_norm == !strcmp(arch, "qwen3"),
              "%s: the GGUF reads back as %s with %d experts", fixture, d->arch, d->n_routed_experts);
        int same;
        double e = run_steps(m, &g, logits, &same);
        CHECK(e <= (f16 ? TOL_F16 : TOL) * scale && same, "%s GGUF (%s weights) vs PyTorch: max err %.3g of %.3g%s",
              fixture, f16 ? "f16" : "f32", e, scale, same ? "" : ", greedy token differs");
        if (!f16) { /* cached steps == the sequence recomputed in one batch */
            kvattn_session *s;
            const golden_array *tok = get(&g, "tokens");
            int32_t ids[64];
            for (int i = 0; i < T; i++) ids[i] = (int32_t)tok->data[i];
            CHECK_OK(kvattn_session_create(m, 32, KVATTN_TYPE_F32, KVATTN_MLA_ABSORBED, &s));
            CHECK_OK(kvattn_session_decode(s, ids, T, all, 1));
            double r = test_max_abs_diff(all + (size_t)(P - 1) * V, logits, (size_t)steps * V);
            CHECK(r <= TOL * scale, "%s: cached decode vs batched recompute: err %.3g", fixture, r);
            kvattn_session_free(s);
            /* kvattn's writer: the model written back reads as the same architecture, same logits */
            char again[160];
            snprintf(again, sizeof again, "/tmp/kvattn_arch2_%d.gguf", (int)getpid());
            CHECK_OK(kvattn_model_save_gguf(m, again, KVATTN_TYPE_F32));
            kvattn_model *m2 = NULL;
            CHECK_OK(kvattn_model_load(again, NULL, &m2));
            if (m2) {
                CHECK(!strcmp(kvattn_model_describe(m2)->arch, arch), "%s: saved as %s", fixture,
                      kvattn_model_describe(m2)->arch);
                e = run_steps(m2, &g, all, &same);
                CHECK(e <= TOL * scale, "%s: saved and reloaded GGUF: err %.3g", fixture, e);
                kvattn_model_free(m2);
            }
            unlink(again);
            if (strcmp(arch, "llama")) { /* biases and head norms do not survive merging heads: refused */
                kvattn_convert_params cp = {0};
                cp.design = "mqa";
                kvattn_model *c = NULL;
                kvattn_status cs = kvattn_model_convert(m, &cp, &c);
                CHECK(cs == KVATTN_ERR_UNSUPPORTED && !c, "%s: convert refuses it (%s)", fixture, kvattn_last_error());
                kvattn_model_free(c);
            }
        }
        kvattn_model_free(m);
    }
    unlink(gpath);

    /* the same weights as a Hugging Face folder */
    snprintf(dir, sizeof dir, "/tmp/kvattn_arch_hf_%d", (int)getpid());
    CHECK(write_hf_folder(&g, dir, 0) == 0, "%s: cannot write the HF folder", fixture);
    kvattn_model *m = NULL;
    CHECK_OK(kvattn_model_load(dir, NULL, &m));
    if (m) {
        int same;
        double e = run_steps(m, &g, logits, &same);
        CHECK(e <= TOL * scale && same, "%s as a Hugging Face folder vs PyTorch: max err %.3g of %.3g", fixture, e,
              scale);
        /* and written as GGUF from there: HF's Q/K order becomes llama's, qwen keeps it */
        snprintf(gpath, sizeof gpath, "/tmp/kvattn_arch3_%d.gguf", (int)getpid());
        CHECK_OK(kvattn_model_save_gguf(m, gpath, KVATTN_TYPE_F32));
        kvattn_model *m2 = NULL;
        CHECK_OK(kvattn_model_load(gpath, NULL, &m2));
        if (m2) {
            e = run_steps(m2, &g, logits, &same);
            CHECK(e <= TOL * scale, "%s: HF folder exported to GGUF: err %.3g", fixture, e);
            kvattn_model_free(m2);
        }
        unlink(gpath);
        kvattn_model_free(m);
    }
    char p[600];
    snprintf(p, sizeof p, "%s/config.json", dir), unlink(p);
    snprintf(p, sizeof p, "%s/model.safetensors", dir), unlink(p);
    rmdir(dir);
    free(logits), free(all);
    golden_free(&g);
}

static int load_and_run(const char *path, const golden_file *g, float *logits) {
    kvattn_model *m = NULL;
    CHECK_OK(kvattn_model_load(path, NULL, &m));
    if (!m) return -1;
    int same;
    run_steps(m, g, logits, &same);
    kvattn_model_free(m);
    return 0;
}

/* "linear" RoPE scaling three ways — a GGUF rope_freqs.weight of 4 in every
 * pair, GGUF rope.scaling.type = linear with factor 4, a Hugging Face
 * rope_scaling of type linear — gives the same logits, and they differ from
 * the unscaled model's. */
static void check_linear_scaling(void) {
    char path[512], a[160], b[160], dir[160];
    snprintf(path, sizeof path, "%s/model_llama31.bin", KVATTN_GOLDEN_DIR);
    golden_file g;
    if (golden_load(path, &g) != 0) return;
    const golden_array *rf = get(&g, "rope_freqs.weight");
    CHECK(rf != NULL, "model_llama31 has rope_freqs.weight");
    if (!rf) return golden_free(&g);
    const int V = n_of(&g, "V"), steps = get(&g, "tokens")->n - n_of(&g, "prefill") + 1;
    float *la = malloc(sizeof(float) * (size_t)V * steps), *lb = malloc(sizeof(float) * (size_t)V * steps);
    float *lc = malloc(sizeof(float) * (size_t)V * steps), *l1 = malloc(sizeof(float) * (size_t)V * steps);
    for (int i = 0; i < rf->n; i++) rf->data[i] = 4.0f;
    snprintf(a, sizeof a, "/tmp/kvattn_lin_a_%d.gguf", (int)getpid());
    snprintf(b, sizeof b, "/tmp/kvattn_lin_b_%d.gguf", (int)getpid());
    snprintf(dir, sizeof dir, "/tmp/kvattn_lin_hf_%d", (int)getpid());
    CHECK_OK(golden_write_gguf(&g, a, KVATTN_TYPE_F32, NULL, 0));
    CHECK_OK(golden_write_gguf(&g, b, KVATTN_TYPE_F32, NULL, 4.0f));
    CHECK(write_hf_folder(&g, dir, 4.0f) == 0, "linear: HF folder written");
    int ok = load_and_run(a, &g, la) == 0 && load_and_run(b, &g, lb) == 0 && load_and_run(dir, &g, lc) == 0;
    for (int i = 0; i < rf->n; i++) rf->data[i] = 1.0f;
    ok = ok && load_and_run(a, &g, l1) == 0 && golden_write_gguf(&g, a, KVATTN_TYPE_F32, NULL, 0) == KVATTN_OK &&
         load_and_run(a, &g, l1) == 0;
    if (ok) {
        const size_t n = (size_t)V * steps;
        double scale = test_max_abs(la, n);
        CHECK(test_max_abs_diff(la, lb, n) <= 1e-6 * scale, "linear: rope_freqs 4 == rope.scaling.factor 4: %.3g",
              test_max_abs_diff(la, lb, n));
        CHECK(test_max_abs_diff(la, lc, n) <= 1e-5 * scale, "linear: GGUF == HF rope_scaling linear: %.3g",
              test_max_abs_diff(la, lc, n));
        CHECK(test_max_abs_diff(la, l1, n) > 1e-3 * scale, "linear: the factor changes the logits (%.3g)",
              test_max_abs_diff(la, l1, n));
    }
    char p[600];
    snprintf(p, sizeof p, "%s/config.json", dir), unlink(p);
    snprintf(p, sizeof p, "%s/model.safetensors", dir), unlink(p);
    rmdir(dir), unlink(a), unlink(b);
    free(la), free(lb), free(lc), free(l1);
    golden_free(&g);
}

/* Refusals: tensors llama.cpp would apply and kvattn does not are named, not
 * silently skipped. */
static void check_refusals(void) {
    static const char *const extra[] = {"blk.1.attn_output.bias", "output.bias", "blk.0.ffn_up.bias"};
    char path[512], gpath[160];
    snprintf(path, sizeof path, "%s/model_qwen2.bin", KVATTN_GOLDEN_DIR);
    golden_file g;
    if (golden_load(path, &g) != 0) return;
    snprintf(gpath, sizeof gpath, "/tmp/kvattn_arch_bad_%d.gguf", (int)getpid());
    for (size_t i = 0; i < sizeof extra / sizeof *extra; i++) {
        CHECK_OK(golden_write_gguf(&g, gpath, KVATTN_TYPE_F32, extra[i], 0));
        kvattn_model *m = NULL;
        kvattn_status st = kvattn_model_load(gpath, NULL, &m);
        CHECK(st == KVATTN_ERR_UNSUPPORTED && strstr(kvattn_last_error(), extra[i]),
              "a qwen2 GGUF with '%s' is refused by name: %s", extra[i], kvattn_last_error());
        kvattn_model_free(m);
    }
    golden_free(&g);
    unlink(gpath);
}

/* Leaves tiny_qwen2.gguf, tiny_qwen3.gguf and tiny_mixtral.gguf (no
 * vocabulary) for test_cli's info / plan / export / convert checks. */
static void write_cli_models(void) {
    static const char *const names[] = {"qwen2", "qwen3", "mixtral"};
    for (int i = 0; i < 3; i++) {
        char path[512], out[64];
        snprintf(path, sizeof path, "%s/model_%s.bin", KVATTN_GOLDEN_DIR, names[i]);
        snprintf(out, sizeof out, "tiny_%s.gguf", names[i]);
        golden_file g;
        if (golden_load(path, &g) != 0) continue;
        CHECK_OK(golden_write_gguf(&g, out, KVATTN_TYPE_F16, NULL, 0));
        golden_free(&g);
    }
}

int main(void) {
    if (test_isa_skip("test_arch")) return 77;
    check_fixture("model_qwen2.bin");
    check_fixture("model_qwen3.bin");
    check_fixture("model_mixtral.bin");
    check_fixture("model_llama31.bin");
    check_linear_scaling();
    check_refusals();
    write_cli_models();
    return test_finish("test_arch");
}
