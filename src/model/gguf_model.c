/* A transformer from a GGUF file: architecture "llama" (Llama, Mistral and
 * their kind as llama.cpp writes them), with its tokenizer from the
 * metadata (tokenizer.ggml.model "llama" or "gpt2"). GGUF's llama Q/K rows
 * are in the original (adjacent-pair) RoPE layout. */
#include "gguf.h"
#include "model.h"
#include "tokenizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const gguf_file *g;
    kvattn_model *m;
    kvattn_status st;
} builder;

/* A required tensor with exactly this shape (ne0 fastest) and a kernel type. */
static const gguf_tensor *tensor(builder *b, const char *name, uint64_t ne0, uint64_t ne1, int optional) {
    if (b->st != KVATTN_OK) return NULL;
    const gguf_tensor *t = gguf_tensor_find(b->g, name);
    if (!t) {
        if (!optional) b->st = kv_fail(KVATTN_ERR_FORMAT, "%s: tensor '%s' is missing", b->g->path, name);
        return NULL;
    }
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1) {
        b->st = kv_fail(KVATTN_ERR_FORMAT, "%s: tensor '%s' has shape [%llu, %llu, %llu, %llu], the metadata implies "
                        "[%llu, %llu]", b->g->path, name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                        (unsigned long long)t->ne[2], (unsigned long long)t->ne[3], (unsigned long long)ne0,
                        (unsigned long long)ne1);
        return NULL;
    }
    if (t->type == KVATTN_TYPE_COUNT) {
        b->st = kv_fail(KVATTN_ERR_UNSUPPORTED, "%s: tensor '%s' has type %s (%u); supported: F32, F16, BF16, Q8_0",
                        b->g->path, name, gguf_ggml_type_name(t->ggml_type), t->ggml_type);
        return NULL;
    }
    b->m->weight_bytes += t->bytes;
    return t;
}

static kvattn_matrix matrix(builder *b, const char *name, uint64_t cols, uint64_t rows) {
    const gguf_tensor *t = tensor(b, name, cols, rows, 0);
    kvattn_matrix mx = {t ? t->data : NULL, t ? t->type : KVATTN_TYPE_F32};
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
    if (bpe && (!merges || merges->type != GGUF_ARRAY || merges->elem_type != GGUF_STRING))
        return kv_fail(KVATTN_ERR_FORMAT, "%s: tokenizer.ggml.merges is missing for a gpt2 vocabulary", g->path);
    int64_t bos = -1, eos = -1;
    gguf_get_int(g, "tokenizer.ggml.bos_token_id", &bos);
    gguf_get_int(g, "tokenizer.ggml.eos_token_id", &eos);
    int add_prefix = spm;
    gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &add_prefix);
    gguf_str pre = {"", 0};
    gguf_get_str(g, "tokenizer.ggml.pre", &pre);
    kv_pretokenizer pt = (pre.len >= 5 && !memcmp(pre.s, "llama", 5)) || (pre.len == 9 && !memcmp(pre.s, "smaug-bpe", 9))
                             ? KV_PRE_LLAMA3 : KV_PRE_GPT2;
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
            lens[i] = strs[i].len > 65536 ? -1 : (int)strs[i].len;
        }
        if (sc) memcpy(sc, scores->value, sizeof *sc * (size_t)n_vocab);
        if (ty) memcpy(ty, types->value, sizeof *ty * (size_t)n_vocab);
        st = kv_tokenizer_build(spm ? KVATTN_VOCAB_SPM : KVATTN_VOCAB_BPE, n_vocab, pp, lens, sc, ty,
                                merges ? pp + tokens->n : NULL, merges ? lens + tokens->n : NULL, (int)n_merges,
                                (int)bos, (int)eos, spm, add_prefix, pt, g->path, out);
    }
    free(strs), free(pp), free(lens), free(sc), free(ty);
    return st;
}

kvattn_status kv_load_gguf(const char *path, kvattn_model *m) {
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
    if (!(arch.len == 5 && !memcmp(arch.s, "llama", 5))) {
        gguf_free(&g);
        return kv_fail(KVATTN_ERR_UNSUPPORTED, "%s: architecture '%.*s' is not supported by the runner yet (llama)",
                       path, (int)(arch.len > 40 ? 40 : arch.len), arch.s);
    }
    kvattn_model_desc *d = &m->desc;
    snprintf(m->format, sizeof m->format, "gguf");
    snprintf(d->arch, sizeof d->arch, "llama");
    gguf_str name;
    const char *base = strrchr(path, '/');
    if (gguf_get_str(&g, "general.name", &name) == 0 && name.len > 0)
        snprintf(d->name, sizeof d->name, "%.*s", (int)(name.len > 63 ? 63 : name.len), name.s);
    else
        snprintf(d->name, sizeof d->name, "%s", base ? base + 1 : path);
    int D = (int)meta_int(&b, "llama.embedding_length", 1, 0, 1, KV_MAX_DIM);
    int L = (int)meta_int(&b, "llama.block_count", 1, 0, 1, 65536);
    int F = (int)meta_int(&b, "llama.feed_forward_length", 1, 0, 1, KV_MAX_DIM);
    int H = (int)meta_int(&b, "llama.attention.head_count", 1, 0, 1, 65536);
    int KV = (int)meta_int(&b, "llama.attention.head_count_kv", 0, H, 1, 65536);
    int64_t n_experts = meta_int(&b, "llama.expert_count", 0, 0, 0, 65536);
    if (b.st == KVATTN_OK && n_experts > 0)
        b.st = kv_fail(KVATTN_ERR_UNSUPPORTED, "%s: llama.expert_count = %lld: MoE llama models are not supported by "
                       "the runner yet", path, (long long)n_experts);
    int hd = H > 0 ? (int)meta_int(&b, "llama.attention.key_length", 0, D / H, 1, KV_MAX_DIM) : 0;
    int n_rot = (int)meta_int(&b, "llama.rope.dimension_count", 0, hd, 0, hd);
    double eps = meta_float(&b, "llama.attention.layer_norm_rms_epsilon", 1e-5);
    double theta = meta_float(&b, "llama.rope.freq_base", 10000.0);
    int64_t ctx = meta_int(&b, "llama.context_length", 0, 2048, 1, (int64_t)1 << 30);
    const gguf_tensor *embd = b.st == KVATTN_OK ? gguf_tensor_find(&g, "token_embd.weight") : NULL;
    if (b.st == KVATTN_OK && !embd) b.st = kv_fail(KVATTN_ERR_FORMAT, "%s: tensor 'token_embd.weight' is missing", path);
    int64_t V = embd ? (int64_t)embd->ne[1] : 0;
    if (b.st == KVATTN_OK && (V < 1 || V > KV_MAX_DIM))
        b.st = kv_fail(KVATTN_ERR_FORMAT, "%s: token_embd.weight has %lld rows", path, (long long)V);
    if (b.st == KVATTN_OK) {
        d->attn = (kvattn_layer_config){.kind = KVATTN_ATTN_GQA, .d_model = D, .n_heads = H, .n_kv_heads = KV,
                                        .head_dim = hd,
                                        .rope = {.theta = (float)theta, .n_rot = n_rot, .pairing = KVATTN_ROPE_ADJACENT}};
        if (kvattn_config_validate(&d->attn) != KVATTN_OK) {
            char why[512];
            snprintf(why, sizeof why, "%s", kvattn_last_error());
            b.st = kv_fail(KVATTN_ERR_FORMAT, "%s: inconsistent llama.* shapes: %s", path, why);
        }
    }
    if (b.st == KVATTN_OK) {
        d->n_layers = L;
        d->vocab_size = V;
        d->ffn_dim = F;
        d->ffn_gated = 1;
        d->context_length = ctx;
        m->norm_eps = (float)eps;
        if (!(m->blocks = calloc((size_t)L, sizeof *m->blocks))) b.st = kv_fail(KVATTN_ERR_NOMEM, "out of memory");
    }
    uint64_t qd = (uint64_t)H * hd, kvd = (uint64_t)KV * hd;
    m->tok_embd = matrix(&b, "token_embd.weight", (uint64_t)D, (uint64_t)V);
    m->out_norm = vector(&b, "output_norm.weight", (uint64_t)D);
    const gguf_tensor *out = tensor(&b, "output.weight", (uint64_t)D, (uint64_t)V, 1);
    d->tied_embeddings = b.st == KVATTN_OK && !out;
    if (b.st == KVATTN_OK) m->output = out ? (kvattn_matrix){out->data, out->type} : m->tok_embd;
    for (int l = 0; l < L && b.st == KVATTN_OK; l++) {
        kv_block *k = &m->blocks[l];
        char nm[96];
#define BLK(s) (snprintf(nm, sizeof nm, "blk.%d." s, l), nm)
        k->attn_norm = vector(&b, BLK("attn_norm.weight"), (uint64_t)D);
        k->attn.wq = matrix(&b, BLK("attn_q.weight"), (uint64_t)D, qd);
        k->attn.wk = matrix(&b, BLK("attn_k.weight"), (uint64_t)D, kvd);
        k->attn.wv = matrix(&b, BLK("attn_v.weight"), (uint64_t)D, kvd);
        k->attn.wo = matrix(&b, BLK("attn_output.weight"), qd, (uint64_t)D);
        k->ffn_norm = vector(&b, BLK("ffn_norm.weight"), (uint64_t)D);
        k->ffn_gate = matrix(&b, BLK("ffn_gate.weight"), (uint64_t)D, (uint64_t)F);
        k->ffn_up = matrix(&b, BLK("ffn_up.weight"), (uint64_t)D, (uint64_t)F);
        k->ffn_down = matrix(&b, BLK("ffn_down.weight"), (uint64_t)F, (uint64_t)D);
#undef BLK
    }
    if (b.st == KVATTN_OK) b.st = gguf_tokenizer(&g, (int)V, &m->tokenizer);
    gguf_free(&g);
    return b.st;
}
