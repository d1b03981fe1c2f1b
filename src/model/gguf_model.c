/* A transformer from a GGUF file: architecture "llama" (Llama, Mistral,
 * Mixtral and their kind as llama.cpp writes them), "qwen2", "qwen3" or
 * "deepseek2", with its tokenizer from the metadata (tokenizer.ggml.model
 * "llama" or "gpt2"). GGUF's llama Q/K rows are in the original
 * (adjacent-pair) RoPE layout; qwen2's and qwen3's keep Hugging Face's
 * half-split order (llama.cpp's NEOX RoPE). */
#include "arch_tensors.h"
#include "gguf.h"
#include "loaders.h"
#include "tokenizer.h"

#include "kernels/kernels.h"
#include "kernels/vec.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const gguf_file *g;
    kvattn_model *m;
    kvattn_status st;
} builder;

/* A required tensor with exactly this shape (ne0 fastest) and a kernel type. */
static const gguf_tensor *tensor3(builder *b, const char *name, uint64_t ne0, uint64_t ne1, uint64_t ne2,
                                  int optional) {
    if (b->st != KVATTN_OK) return NULL;
    const gguf_tensor *t = gguf_tensor_find(b->g, name);
    if (!t) {
        if (!optional) b->st = kv_fail(KVATTN_ERR_FORMAT, "%s: tensor '%s' is missing", b->g->path, name);
        return NULL;
    }
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != ne2 || t->ne[3] != 1) {
        b->st = kv_fail(KVATTN_ERR_FORMAT,
                        "%s: tensor '%s' has shape [%llu, %llu, %llu, %llu], the metadata implies "
                        "[%llu, %llu, %llu]",
                        b->g->path, name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                        (unsigned long long)t->ne[2], (unsigned long long)t->ne[3], (unsigned long long)ne0,
                        (unsigned long long)ne1, (unsigned long long)ne2);
        return NULL;
    }
    if (t->type == KVATTN_TYPE_COUNT) {
        b->st = kv_fail(KVATTN_ERR_UNSUPPORTED,
                        "%s: tensor '%s' has type %s (%u); supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, "
                        "Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K",
                        b->g->path, name, gguf_ggml_type_name(t->ggml_type), t->ggml_type);
        return NULL;
    }
    b->m->weight_bytes += t->bytes;
    return t;
}

static const gguf_tensor *tensor(builder *b, const char *name, uint64_t ne0, uint64_t ne1, int optional) {
    return tensor3(b, name, ne0, ne1, 1, optional);
}

static kvattn_matrix matrix(builder *b, const char *name, uint64_t cols, uint64_t rows) {
    const gguf_tensor *t = tensor(b, name, cols, rows, 0);
    kvattn_matrix mx = {.data = t ? t->data : NULL, .type = t ? t->type : KVATTN_TYPE_F32};
    return mx;
}

static const float *vector(builder *b, const char *name, uint64_t n) {
    const gguf_tensor *t = tensor(b, name, n, 1, 0);
    if (!t) return NULL;
    const float *v = kv_model_f32_vector(b->m, t->data, t->type, (int)n);
    if (!v) b->st = kv_fail(KVATTN_ERR_NOMEM, "%s: out of memory", b->g->path);
    return v;
}

static int64_t meta_int(builder *b, const char *key, int required, int64_t def, int64_t lo, int64_t hi) {
    int64_t v = def;
    if (b->st != KVATTN_OK) return def;
    int rc = gguf_get_int(b->g, key, &v);
    if (rc == -1 && !required) return def;
    if (rc == -1) b->st = kv_fail(KVATTN_ERR_FORMAT, "%s: metadata '%s' is missing", b->g->path, key);
    else if (rc == -2) b->st = kv_fail(KVATTN_ERR_FORMAT, "%s: metadata '%s' is not an integer", b->g->path, key);
    else if (v < lo || v > hi)
        b->st = kv_fail(KVATTN_ERR_FORMAT, "%s: metadata '%s' = %lld is outside [%lld, %lld]", b->g->path, key,
                        (long long)v, (long long)lo, (long long)hi);
    return v;
}

static double meta_float(builder *b, const char *key, double def) {
    double v = def;
    if (b->st == KVATTN_OK && gguf_get_float(b->g, key, &v) == -2)
        b->st = kv_fail(KVATTN_ERR_FORMAT, "%s: metadata '%s' is not a number", b->g->path, key);
    if (b->st == KVATTN_OK && (!isfinite(v) || v < 0))
        b->st = kv_fail(KVATTN_ERR_FORMAT, "%s: metadata '%s' = %g is not a valid value", b->g->path, key, v);
    return v;
}

/* tokenizer.ggml.*: SentencePiece-style ("llama") or byte-level BPE ("gpt2"). */
static kvattn_status gguf_tokenizer(const gguf_file *g, int n_vocab, kvattn_tokenizer **out) {
    *out = NULL;
    gguf_str model;
    if (gguf_get_str(g, "tokenizer.ggml.model", &model) != 0) return KVATTN_OK; /* none: -z may supply one */
    int spm = model.len == 5 && !memcmp(model.s, "llama", 5), bpe = model.len == 4 && !memcmp(model.s, "gpt2", 4);
    if (!spm && !bpe)
        return kv_fail(KVATTN_ERR_UNSUPPORTED, "%s: tokenizer.ggml.model = '%.*s' is not supported (llama, gpt2)",
                       g->path, (int)(model.len > 40 ? 40 : model.len), model.s);
    const gguf_kv *tokens = gguf_find(g, "tokenizer.ggml.tokens");
    if (!tokens || tokens->type != GGUF_ARRAY || tokens->elem_type != GGUF_STRING)
        return kv_fail(KVATTN_ERR_FORMAT, "%s: tokenizer.ggml.tokens is missing or not a string array", g->path);
    if (tokens->n != (uint64_t)n_vocab)
        return kv_fail(KVATTN_ERR_FORMAT, "%s: tokenizer.ggml.tokens has %llu entries, the embedding %d rows", g->path,
                       (unsigned long long)tokens->n, n_vocab);
    const gguf_kv *scores = gguf_find(g, "tokenizer.ggml.scores"), *types = gguf_find(g, "tokenizer.ggml.token_type");
    const gguf_kv *merges = gguf_find(g, "tokenizer.ggml.merges");
    if (scores && (scores->type != GGUF_ARRAY || scores->elem_type != GGUF_F32 || scores->n != tokens->n))
        return kv_fail(KVATTN_ERR_FORMAT, "%s: tokenizer.ggml.scores must be %d f32 values", g->path, n_vocab);
    if (types && (types->type != GGUF_ARRAY || types->elem_type != GGUF_I32 || types->n != tokens->n))
        return kv_fail(KVATTN_ERR_FORMAT, "%s: tokenizer.ggml.token_type must be %d i32 values", g->path, n_vocab);
    if (bpe && !merges)
        return kv_fail(KVATTN_ERR_FORMAT, "%s: tokenizer.ggml.merges is missing for a gpt2 vocabulary", g->path);
    if (merges && (merges->type != GGUF_ARRAY || merges->elem_type != GGUF_STRING)) /* whatever the vocabulary */
        return kv_fail(KVATTN_ERR_FORMAT, "%s: tokenizer.ggml.merges is not an array of strings", g->path);
    int64_t bos = -1, eos = -1;
    int add_prefix = spm;
    gguf_str pre = {"", 0};
    const char *bad = gguf_get_int(g, "tokenizer.ggml.bos_token_id", &bos) == -2               ? "bos_token_id"
                      : gguf_get_int(g, "tokenizer.ggml.eos_token_id", &eos) == -2             ? "eos_token_id"
                      : gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &add_prefix) == -2 ? "add_space_prefix"
                      : gguf_get_str(g, "tokenizer.ggml.pre", &pre) == -2                      ? "pre"
                                                                                               : NULL;
    if (bad) return kv_fail(KVATTN_ERR_FORMAT, "%s: metadata 'tokenizer.ggml.%s' has the wrong type", g->path, bad);
    const int64_t ids[2] = {bos, eos};
    for (int i = 0; i < 2; i++) /* absent is -1; present must name a token */
        if (ids[i] != -1 && (ids[i] < 0 || ids[i] >= n_vocab))
            return kv_fail(KVATTN_ERR_FORMAT,
                           "%s: metadata 'tokenizer.ggml.%s_token_id' = %lld is outside the %d tokens", g->path,
                           i ? "eos" : "bos", (long long)ids[i], n_vocab);
    const int known_pre = kv_pretokenizer_by_name(pre.s, pre.len); /* unknown: llama.cpp's default, said by info */
    const kv_pretokenizer pt = known_pre >= 0 ? (kv_pretokenizer)known_pre : KV_PRE_DEFAULT;
    uint64_t n_merges = merges ? merges->n : 0;
    gguf_str *strs = malloc(sizeof *strs * (size_t)(tokens->n + n_merges + 1));
    const char **pp = malloc(sizeof *pp * (size_t)(tokens->n + n_merges + 1));
    int *lens = malloc(sizeof *lens * (size_t)(tokens->n + n_merges + 1));
    float *sc = scores ? malloc(sizeof *sc * (size_t)n_vocab) : NULL;
    int32_t *ty = types ? malloc(sizeof *ty * (size_t)n_vocab) : NULL;
    kvattn_status st = KVATTN_OK;
    if (!strs || !pp || !lens || (scores && !sc) || (types && !ty)) {
        st = kv_fail(KVATTN_ERR_NOMEM, "%s: out of memory for the vocabulary", g->path);
    } else {
        gguf_array_strings(tokens, strs);
        if (merges) gguf_array_strings(merges, strs + tokens->n);
        for (uint64_t i = 0; i < tokens->n + n_merges; i++) {
            pp[i] = strs[i].s;
            lens[i] = strs[i].len > KV_MAX_PIECE_BYTES ? -1 : (int)strs[i].len;
        }
        if (sc) memcpy(sc, scores->value, sizeof *sc * (size_t)n_vocab);
        if (ty) memcpy(ty, types->value, sizeof *ty * (size_t)n_vocab);
        st = kv_tokenizer_build(&(kv_vocab_spec){.kind = spm ? KVATTN_VOCAB_SPM : KVATTN_VOCAB_BPE,
                                                 .n_vocab = n_vocab,
                                                 .pieces = pp,
                                                 .lens = lens,
                                                 .scores = sc,
                                                 .token_type = ty,
                                                 .merges = merges ? pp + tokens->n : NULL,
                                                 .merge_lens = merges ? lens + tokens->n : NULL,
                                                 .n_merges = (int)n_merges,
                                                 .bos = (int)bos,
                                                 .eos = (int)eos,
                                                 .spm_marker = spm,
                                                 .add_space_prefix = add_prefix,
                                                 .pre = pt,
                                                 .pre_name = pre.s,
                                                 .pre_name_len = pre.len,
                                                 .source = g->path},
                                out);
    }
    free(strs), free(pp), free(lens), free(sc), free(ty);
    return st;
}

/* Architectures "llama", "qwen2", "qwen3": GQA attention (qwen2 with Q/K/V
 * biases, qwen3 with per-head Q/K norms), SwiGLU FFN; llama with
 * expert_count is Mixtral: every layer's FFN is a mixture of experts, routed
 * by softmax over all experts, top-k, weights renormalised (llama.cpp's
 * llama graph). */
static void load_gqa(builder *b, const char *arch) {
    const gguf_file *g = b->g;
    kvattn_model *m = b->m;
    kvattn_model_desc *d = &m->desc;
    char key[96];
#define KEY(k) (snprintf(key, sizeof key, "%s." k, arch), key)
    int D = (int)meta_int(b, KEY("embedding_length"), 1, 0, 1, KV_MAX_DIM);
    int L = (int)meta_int(b, KEY("block_count"), 1, 0, 1, KV_MAX_LAYERS);
    int F = (int)meta_int(b, KEY("feed_forward_length"), 1, 0, 1, KV_MAX_DIM);
    int H = (int)meta_int(b, KEY("attention.head_count"), 1, 0, 1, KV_MAX_HEADS);
    int KV = (int)meta_int(b, KEY("attention.head_count_kv"), 0, H, 1, KV_MAX_HEADS);
    int hd = H > 0 ? (int)meta_int(b, KEY("attention.key_length"), 0, D / H, 1, KV_MAX_DIM) : 0;
    int vd = (int)meta_int(b, KEY("attention.value_length"), 0, hd, 1, KV_MAX_DIM);
    if (b->st == KVATTN_OK && vd != hd)
        b->st = kv_fail(KVATTN_ERR_UNSUPPORTED, "%s: %s.attention.value_length = %d differs from key_length = %d",
                        g->path, arch, vd, hd);
    int n_rot = (int)meta_int(b, KEY("rope.dimension_count"), 0, hd, 0, hd);
    double eps = meta_float(b, KEY("attention.layer_norm_rms_epsilon"), 1e-5);
    double theta = meta_float(b, KEY("rope.freq_base"), 10000.0);
    d->context_length = meta_int(b, KEY("context_length"), 0, 2048, 1, (int64_t)1 << 30);
    const int neox = strcmp(arch, "llama") != 0;
    d->attn = (kvattn_layer_config){
        .kind = KVATTN_ATTN_GQA,
        .d_model = D,
        .n_heads = H,
        .n_kv_heads = KV,
        .head_dim = hd,
        .rms_eps = (float)eps, /* qwen3's head norms: llama.cpp uses the model's epsilon */
        .rope = {.theta = (float)theta, .n_rot = n_rot, .pairing = neox ? KVATTN_ROPE_HALF : KVATTN_ROPE_ADJACENT}};
    d->n_layers = L;
    d->ffn_dim = F;
    d->ffn_gated = 1;
    d->qk_norm = !strcmp(arch, "qwen3");
    m->norm_eps = (float)eps;
    d->n_routed_experts = (int)meta_int(b, KEY("expert_count"), 0, 0, 0, KV_MAX_EXPERTS);
    if (d->n_routed_experts > 0) {
        if (b->st == KVATTN_OK && strcmp(arch, "llama"))
            b->st = kv_fail(KVATTN_ERR_UNSUPPORTED,
                            "%s: %s.expert_count = %d: only llama has experts here (%smoe "
                            "is another architecture)",
                            g->path, arch, d->n_routed_experts, arch);
        d->n_active_experts = (int)meta_int(b, KEY("expert_used_count"), 1, 0, 1, d->n_routed_experts);
        d->moe_ffn_dim = meta_int(b, KEY("expert_feed_forward_length"), 0, F, 1, KV_MAX_DIM);
        d->moe_layer_freq = 1;
        d->expert_weights_norm = 1;
        d->expert_weights_scale = (float)meta_float(b, KEY("expert_weights_scale"), 1.0);
        if (b->st == KVATTN_OK && gguf_find(g, KEY("expert_shared_feed_forward_length")))
            b->st = kv_fail(KVATTN_ERR_UNSUPPORTED, "%s: %s: shared experts in a llama model are not supported",
                            g->path, key);
    }
#undef KEY
}

/* RoPE scaling of the GQA family, as llama.cpp applies it: "linear" (the
 * default type) divides every frequency by rope.scaling.factor, and a llama
 * model's rope_freqs.weight (Llama 3's scaling, computed by the converter)
 * divides each pair's own. Both become the config's freq_factors. */
static void read_rope_scaling(builder *b, const char *arch) {
    kvattn_model *m = b->m;
    kvattn_rope_config *r = &m->desc.attn.rope;
    const int pairs = (r->n_rot ? r->n_rot : m->desc.attn.head_dim) / 2;
    char key[96];
    if (b->st != KVATTN_OK || pairs < 1) return;
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    gguf_str type = {"linear", 6};
    if (gguf_get_str(b->g, key, &type) == -2) {
        b->st = kv_fail(KVATTN_ERR_FORMAT, "%s: metadata '%s' is not a string", b->g->path, key);
        return;
    }
    const int linear = type.len == 6 && !memcmp(type.s, "linear", 6),
              none = type.len == 4 && !memcmp(type.s, "none", 4);
    if (!linear && !none) {
        b->st = kv_fail(KVATTN_ERR_UNSUPPORTED, "%s: %s = '%.*s' is not supported for %s (linear, none)", b->g->path,
                        key, (int)(type.len > 40 ? 40 : type.len), type.s, arch);
        return;
    }
    snprintf(key, sizeof key, "%s.rope.scaling.factor", arch);
    double factor = meta_float(b, key, 0.0);
    snprintf(key, sizeof key, "%s.rope.scale_linear", arch); /* the older key */
    if (factor == 0.0) factor = meta_float(b, key, 0.0);
    if (!linear || factor == 0.0) factor = 1.0;
    const gguf_tensor *freqs = !strcmp(arch, "llama") ? tensor(b, "rope_freqs.weight", (uint64_t)pairs, 1, 1) : NULL;
    if (b->st != KVATTN_OK || (!freqs && factor == 1.0)) return;
    float *ff = kv_model_own(m, malloc(sizeof(float) * (size_t)pairs));
    if (!ff) {
        b->st = kv_fail(KVATTN_ERR_NOMEM, "%s: out of memory", b->g->path);
        return;
    }
    for (int i = 0; i < pairs; i++) ff[i] = 1.0f;
    if (freqs) kv_row_load(freqs->type, freqs->data, ff, pairs);
    for (int i = 0; i < pairs; i++) ff[i] = (float)(ff[i] * factor);
    r->freq_factors = ff;
}

/* Tensors llama.cpp may find in these architectures that kvattn does not
 * apply: refused by name rather than silently left out. */
static void refuse_unsupported_tensors(builder *b) {
    static const char *const layer_names[] = {"blk.%d.attn_qkv.weight", "blk.%d.attn_output.bias",
                                              "blk.%d.ffn_gate.bias",   "blk.%d.ffn_up.bias",
                                              "blk.%d.ffn_down.bias",   "blk.%d.ffn_gate_shexp.weight"};
    char nm[96];
    if (gguf_tensor_find(b->g, "output.bias"))
        b->st = kv_fail(KVATTN_ERR_UNSUPPORTED, "%s: tensor 'output.bias' is not supported", b->g->path);
    for (int l = 0; l < b->m->desc.n_layers && b->st == KVATTN_OK; l++)
        for (size_t i = 0; i < sizeof layer_names / sizeof *layer_names && b->st == KVATTN_OK; i++) {
            snprintf(nm, sizeof nm, layer_names[i], l);
            if (gguf_tensor_find(b->g, nm))
                b->st = kv_fail(KVATTN_ERR_UNSUPPORTED, "%s: tensor '%s' is not supported", b->g->path, nm);
        }
}

/* Architecture "deepseek2": MLA attention (fused attn_kv_b, or attn_k_b/attn_v_b
 * when *.attention.key_length_mla is present), YaRN, dense then MoE FFNs. */
static void load_deepseek2(builder *b) {
    const gguf_file *g = b->g;
    kvattn_model *m = b->m;
    kvattn_model_desc *d = &m->desc;
    kvattn_layer_config *a = &d->attn;
    int D = (int)meta_int(b, "deepseek2.embedding_length", 1, 0, 1, KV_MAX_DIM);
    int L = (int)meta_int(b, "deepseek2.block_count", 1, 0, 1, KV_MAX_LAYERS);
    int H = (int)meta_int(b, "deepseek2.attention.head_count", 1, 0, 1, KV_MAX_HEADS);
    int ql = (int)meta_int(b, "deepseek2.attention.q_lora_rank", 0, 0, 0, KV_MAX_DIM);
    int dc = (int)meta_int(b, "deepseek2.attention.kv_lora_rank", 1, 0, 1, KV_MAX_DIM);
    int dr = (int)meta_int(b, "deepseek2.rope.dimension_count", 1, 0, 2, KV_MAX_DIM);
    int64_t kl = -1, vl = -1;
    int split = gguf_get_int(g, "deepseek2.attention.key_length_mla", &kl) == 0;
    if (split) vl = meta_int(b, "deepseek2.attention.value_length_mla", 1, 0, 1, KV_MAX_DIM);
    else {
        kl = meta_int(b, "deepseek2.attention.key_length", 1, 0, 1, KV_MAX_DIM);
        vl = meta_int(b, "deepseek2.attention.value_length", 1, 0, 1, KV_MAX_DIM);
    }
    if (b->st == KVATTN_OK && (kl <= dr || kl > KV_MAX_DIM))
        b->st = kv_fail(KVATTN_ERR_FORMAT,
                        "%s: deepseek2.attention.key_length%s = %lld must exceed rope.dimension_count "
                        "= %d (it is d_nope + d_rope)",
                        g->path, split ? "_mla" : "", (long long)kl, dr);
    d->context_length = meta_int(b, "deepseek2.context_length", 0, 4096, 1, (int64_t)1 << 30);
    double theta = meta_float(b, "deepseek2.rope.freq_base", 10000.0);
    m->norm_eps = (float)meta_float(b, "deepseek2.attention.layer_norm_rms_epsilon", 1e-6);
    *a = (kvattn_layer_config){.kind = KVATTN_ATTN_MLA,
                               .d_model = D,
                               .n_heads = H,
                               .q_lora_rank = ql,
                               .kv_lora_rank = dc,
                               .qk_nope_head_dim = (int)(kl - dr),
                               .qk_rope_head_dim = dr,
                               .v_head_dim = (int)vl,
                               .rms_eps = m->norm_eps,
                               .rope = {.theta = (float)theta, .pairing = KVATTN_ROPE_ADJACENT}};
    gguf_str stype;
    if (gguf_get_str(g, "deepseek2.rope.scaling.type", &stype) == 0 && stype.len == 4 && !memcmp(stype.s, "yarn", 4)) {
        a->rope.yarn_factor = (float)meta_float(b, "deepseek2.rope.scaling.factor", 1.0);
        a->rope.yarn_orig_ctx = (int)meta_int(b, "deepseek2.rope.scaling.original_context_length", 1, 0, 1, 1 << 30);
        a->rope.yarn_beta_fast = (float)meta_float(b, "deepseek2.rope.scaling.yarn_beta_fast", 32.0);
        a->rope.yarn_beta_slow = (float)meta_float(b, "deepseek2.rope.scaling.yarn_beta_slow", 1.0);
        /* llama.cpp's converter stores 0.1 · mscale_all_dim */
        a->rope.yarn_mscale = (float)(meta_float(b, "deepseek2.rope.scaling.yarn_log_multiplier", 0.1) / 0.1);
    }
    int kv_norm = 1; /* kvattn's converted models may cache the latent without its RMSNorm */
    if (b->st == KVATTN_OK && gguf_get_bool(g, "kvattn.mla.kv_norm", &kv_norm) == -2)
        b->st = kv_fail(KVATTN_ERR_FORMAT, "%s: metadata 'kvattn.mla.kv_norm' is not a bool", g->path);
    a->kv_norm_off = !kv_norm;
    d->n_layers = L;
    d->ffn_dim = meta_int(b, "deepseek2.feed_forward_length", 1, 0, 1, KV_MAX_DIM);
    d->ffn_gated = 1;
    d->n_routed_experts = (int)meta_int(b, "deepseek2.expert_count", 0, 0, 0, KV_MAX_EXPERTS);
    if (d->n_routed_experts > 0) {
        d->n_active_experts = (int)meta_int(b, "deepseek2.expert_used_count", 1, 0, 1, d->n_routed_experts);
        d->n_shared_experts = (int)meta_int(b, "deepseek2.expert_shared_count", 0, 0, 0, KV_MAX_EXPERTS);
        d->moe_ffn_dim = meta_int(b, "deepseek2.expert_feed_forward_length", 1, 0, 1, KV_MAX_DIM);
        d->n_dense_layers = (int)meta_int(b, "deepseek2.leading_dense_block_count", 0, 0, 0, L);
        d->moe_layer_freq = 1;
        d->expert_weights_scale = (float)meta_float(b, "deepseek2.expert_weights_scale", 1.0);
        int norm = 0;
        if (b->st == KVATTN_OK && gguf_get_bool(g, "deepseek2.expert_weights_norm", &norm) == -2)
            b->st = kv_fail(KVATTN_ERR_FORMAT, "%s: metadata 'deepseek2.expert_weights_norm' is not a bool", g->path);
        d->expert_weights_norm = norm;
        d->expert_gating = meta_int(b, "deepseek2.expert_gating_func", 0, 1, 0, 2) == 2; /* 1 softmax, 2 sigmoid */
        d->n_expert_groups = (int)meta_int(b, "deepseek2.expert_group_count", 0, 1, 1, KV_MAX_EXPERTS);
        d->n_expert_groups_used =
            (int)meta_int(b, "deepseek2.expert_group_used_count", 0, d->n_expert_groups, 1, d->n_expert_groups);
        if (b->st == KVATTN_OK && d->n_routed_experts % d->n_expert_groups)
            b->st = kv_fail(KVATTN_ERR_FORMAT, "%s: deepseek2.expert_group_count = %d does not divide %d experts",
                            g->path, d->n_expert_groups, d->n_routed_experts);
    }
}

/* The experts of one MoE layer: [n_experts] matrices inside 3-D tensors. */
static kvattn_matrix *expert_slices(builder *b, const gguf_tensor *t, int n_exp, uint64_t cols, uint64_t row_offset) {
    if (!t) return NULL;
    kvattn_matrix *e = kv_model_own(b->m, malloc(sizeof *e * (size_t)n_exp));
    if (!e) {
        b->st = kv_fail(KVATTN_ERR_NOMEM, "%s: out of memory", b->g->path);
        return NULL;
    }
    size_t row_bytes = kvattn_row_bytes(t->type, (int64_t)cols);
    for (int x = 0; x < n_exp; x++)
        e[x] = (kvattn_matrix){.data = t->data + ((uint64_t)x * t->ne[1] + row_offset) * row_bytes, .type = t->type};
    return e;
}

/* One tensor of the architecture's table into its field of layer L. */
static void read_tensor(builder *b, const kv_tensor_spec *t, const char *name, kv_layer *L) {
    const kvattn_model_desc *d = &b->m->desc;
    const uint64_t rows = kv_dim_value(t->rows, d), cols = kv_dim_value(t->cols, d);
    void *field = kv_tensor_field(t, L);
    switch (t->form) {
    case KV_FORM_MATRIX: *(kvattn_matrix *)field = matrix(b, name, cols, rows); break;
    case KV_FORM_VECTOR: {
        const gguf_tensor *v = tensor(b, name, rows, 1, t->optional);
        if (v) *(const float **)field = kv_model_f32_vector(b->m, v->data, v->type, (int)rows);
        if (v && !*(const float **)field) b->st = kv_fail(KVATTN_ERR_NOMEM, "%s: out of memory", b->g->path);
        break;
    }
    case KV_FORM_HEADS: {
        const gguf_tensor *h = tensor3(b, name, cols, rows, (uint64_t)d->attn.n_heads, t->optional);
        if (h) *(kvattn_matrix *)field = (kvattn_matrix){.data = h->data, .type = h->type};
        break;
    }
    case KV_FORM_EXPERTS:
        *(kvattn_matrix **)field = expert_slices(
            b, tensor3(b, name, cols, rows, (uint64_t)d->n_routed_experts, t->optional), d->n_routed_experts, cols, 0);
        break;
    }
}

/* Every layer's tensors, as the architecture's table names them. */
static void read_layers(builder *b) {
    kvattn_model *m = b->m;
    const kvattn_model_desc *d = &m->desc;
    const int mla = d->attn.kind == KVATTN_ATTN_MLA;
    const uint64_t D = (uint64_t)d->attn.d_model, Fm = (uint64_t)d->moe_ffn_dim, E = (uint64_t)d->n_routed_experts;
    int n;
    const kv_tensor_spec *specs = kv_arch_layer_tensors(d->arch, &n);
    for (int l = 0; l < d->n_layers && b->st == KVATTN_OK; l++) {
        kv_layer *L = &m->layers[l];
        char nm[96];
        snprintf(nm, sizeof nm, "blk.%d.attn_kv_b.weight", l);
        const kv_layer_shape shape = {d, l, mla && !gguf_tensor_find(b->g, nm)};
        /* Some converters merge the experts' gate and up rows: per expert Fm gate rows, then Fm up rows. */
        snprintf(nm, sizeof nm, "blk.%d.ffn_gate_up_exps.weight", l);
        const gguf_tensor *gate_up = kvattn_model_is_moe_layer(d, l) ? tensor3(b, nm, D, 2 * Fm, E, 1) : NULL;
        if (gate_up) {
            L->exp_gate = expert_slices(b, gate_up, (int)E, D, 0);
            L->exp_up = expert_slices(b, gate_up, (int)E, D, Fm);
        }
        for (int i = 0; i < n && b->st == KVATTN_OK; i++) {
            const kv_tensor_spec *t = &specs[i];
            if (!kv_tensor_applies(t, &shape)) continue;
            if (gate_up && (t->offset == offsetof(kv_layer, exp_gate) || t->offset == offsetof(kv_layer, exp_up)))
                continue;
            snprintf(nm, sizeof nm, t->gguf, l);
            read_tensor(b, t, nm, L);
        }
    }
}

kvattn_status kv_load_gguf(const char *path, const char *tokenizer_path, kvattn_model *m) {
    (void)tokenizer_path; /* the vocabulary is in the file; load.c applies an explicit one */
    kv_mapping map;
    kvattn_status st = kv_map_file(path, &map);
    if (st != KVATTN_OK) return st;
    m->maps[m->n_maps++] = map;
    gguf_file g;
    if ((st = gguf_parse(path, map.addr, map.size, &g)) != KVATTN_OK) return st;
    builder b = {&g, m, KVATTN_OK};
    gguf_str arch;
    if (gguf_get_str(&g, "general.architecture", &arch) != 0) {
        gguf_free(&g);
        return kv_fail(KVATTN_ERR_FORMAT, "%s: metadata 'general.architecture' is missing", path);
    }
    static const char *const archs[] = {"llama", "qwen2", "qwen3", "deepseek2"};
    const char *arch_name = NULL;
    for (size_t i = 0; i < sizeof archs / sizeof *archs; i++)
        if (arch.len == strlen(archs[i]) && !memcmp(arch.s, archs[i], arch.len)) arch_name = archs[i];
    if (!arch_name) {
        gguf_free(&g);
        return kv_fail(KVATTN_ERR_UNSUPPORTED,
                       "%s: architecture '%.*s' is not supported (llama, qwen2, qwen3, deepseek2)", path,
                       (int)(arch.len > 40 ? 40 : arch.len), arch.s);
    }
    const int is_ds2 = !strcmp(arch_name, "deepseek2");
    kvattn_model_desc *d = &m->desc;
    snprintf(m->format, sizeof m->format, "gguf");
    snprintf(d->arch, sizeof d->arch, "%s", arch_name);
    gguf_str name;
    const char *base = strrchr(path, '/');
    if (gguf_get_str(&g, "general.name", &name) == 0 && name.len > 0)
        snprintf(d->name, sizeof d->name, "%.*s", (int)(name.len > 63 ? 63 : name.len), name.s);
    else snprintf(d->name, sizeof d->name, "%s", base ? base + 1 : path);
    gguf_str prov;
    int prc = gguf_get_str(&g, "kvattn.conversion", &prov);
    if (prc == -2) b.st = kv_fail(KVATTN_ERR_FORMAT, "%s: metadata 'kvattn.conversion' is not a string", path);
    else if (prc == 0)
        snprintf(m->provenance, sizeof m->provenance, "%.*s", (int)(prov.len > 511 ? 511 : prov.len), prov.s);
    if (is_ds2) load_deepseek2(&b);
    else load_gqa(&b, arch_name), read_rope_scaling(&b, arch_name);
    if (!is_ds2 && b.st == KVATTN_OK) refuse_unsupported_tensors(&b);
    if (b.st == KVATTN_OK && kvattn_config_validate(&d->attn) != KVATTN_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", kvattn_last_error());
        b.st = kv_fail(KVATTN_ERR_FORMAT, "%s: inconsistent %s.* shapes: %s", path, d->arch, why);
    }
    const gguf_tensor *embd = b.st == KVATTN_OK ? gguf_tensor_find(&g, KV_GGUF_TOKEN_EMBD) : NULL;
    if (b.st == KVATTN_OK && !embd)
        b.st = kv_fail(KVATTN_ERR_FORMAT, "%s: tensor 'token_embd.weight' is missing", path);
    int64_t V = embd ? (int64_t)embd->ne[1] : 0;
    if (b.st == KVATTN_OK && (V < 1 || V > KV_MAX_DIM))
        b.st = kv_fail(KVATTN_ERR_FORMAT, "%s: token_embd.weight has %lld rows", path, (long long)V);
    if (b.st == KVATTN_OK) {
        d->vocab_size = V;
        if (!(m->layers = calloc((size_t)d->n_layers, sizeof *m->layers)))
            b.st = kv_fail(KVATTN_ERR_NOMEM, "out of memory");
    }
    uint64_t D = (uint64_t)d->attn.d_model;
    m->tok_embd = matrix(&b, KV_GGUF_TOKEN_EMBD, D, (uint64_t)V);
    m->out_norm = vector(&b, KV_GGUF_OUTPUT_NORM, D);
    const gguf_tensor *out = tensor(&b, KV_GGUF_OUTPUT, D, (uint64_t)V, 1);
    d->tied_embeddings = b.st == KVATTN_OK && !out;
    if (b.st == KVATTN_OK) m->output = out ? (kvattn_matrix){.data = out->data, .type = out->type} : m->tok_embd;
    if (b.st == KVATTN_OK) read_layers(&b);
    if (b.st == KVATTN_OK && d->attn.kind == KVATTN_ATTN_GQA) d->qkv_bias = m->layers[0].attn.bq != NULL;
    if (b.st == KVATTN_OK) b.st = gguf_tokenizer(&g, (int)V, &m->tokenizer);
    gguf_str tmpl;
    int rc = b.st == KVATTN_OK ? gguf_get_str(&g, "tokenizer.chat_template", &tmpl) : -1;
    if (rc == -2) b.st = kv_fail(KVATTN_ERR_FORMAT, "%s: metadata 'tokenizer.chat_template' is not a string", path);
    if (rc == 0 && !memchr(tmpl.s, 0, tmpl.len)) { /* kept as a C string, owned by the model */
        char *t = kv_model_own(m, malloc(tmpl.len + 1));
        if (!t) b.st = kv_fail(KVATTN_ERR_NOMEM, "%s: out of memory", path);
        else memcpy(t, tmpl.s, tmpl.len), t[tmpl.len] = '\0', m->chat_template = t;
    }
    gguf_free(&g);
    return b.st;
}

kvattn_status kvattn_tokenizer_load_gguf(const char *path, kvattn_tokenizer **out) {
    if (!path || !out) return kv_fail(KVATTN_ERR_INVALID_ARG, "tokenizer: NULL argument");
    *out = NULL;
    kv_mapping map;
    kvattn_status st = kv_map_file(path, &map);
    if (st != KVATTN_OK) return st;
    gguf_file g;
    if ((st = gguf_parse(path, map.addr, map.size, &g)) == KVATTN_OK) {
        const gguf_kv *tokens = gguf_find(&g, "tokenizer.ggml.tokens");
        if (!tokens || tokens->type != GGUF_ARRAY || tokens->elem_type != GGUF_STRING || tokens->n < 1 ||
            tokens->n > (uint64_t)KV_MAX_DIM)
            st = kv_fail(KVATTN_ERR_FORMAT, "%s: tokenizer.ggml.tokens is missing or not a string array", path);
        else st = gguf_tokenizer(&g, (int)tokens->n, out);
        if (st == KVATTN_OK && !*out)
            st = kv_fail(KVATTN_ERR_FORMAT, "%s: metadata 'tokenizer.ggml.model' is missing", path);
        gguf_free(&g);
    }
    kv_unmap(&map);
    return st;
}
