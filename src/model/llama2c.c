/* llama2.c checkpoints (legacy version-0 export): a 28-byte header of seven
 * int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
 * seq_len; vocab_size < 0 means a separate classifier), then f32 arrays.
 * The format has no magic: the file size must match the header exactly. */
#define _POSIX_C_SOURCE 200809L
#include "loaders.h"

#include <sys/stat.h>

#include <stdlib.h>
#include <string.h>

typedef struct {
    const float *p, *end;
} cursor;

static const float *take(cursor *c, uint64_t n) {
    const float *r = c->p;
    c->p += n;
    return r;
}

kvattn_status kv_load_llama2c(const char *path, const char *tokenizer_path, kvattn_model *m) {
    kv_mapping map;
    kvattn_status st = kv_map_file(path, &map);
    if (st != KVATTN_OK) return st;
    m->maps[m->n_maps++] = map;
    if (map.size < 28)
        return kv_fail(KVATTN_ERR_FORMAT, "%s: %zu bytes is shorter than a llama2.c header (28 bytes)", path, map.size);
    int32_t h[7];
    memcpy(h, map.addr, sizeof h);
    if (!memcmp(map.addr, "ak42", 4))
        return kv_fail(KVATTN_ERR_UNSUPPORTED,
                       "%s: llama2.c version-1 export (magic ak42) is not supported; use the "
                       "legacy export",
                       path);
    static const char *const names[7] = {"dim",        "hidden_dim", "n_layers", "n_heads",
                                         "n_kv_heads", "vocab_size", "seq_len"};
    for (int i = 0; i < 7; i++) {
        int32_t v = i == 5 ? abs(h[i] == INT32_MIN ? 0 : h[i]) : h[i];
        if (v < 1 || v > KV_MAX_DIM)
            return kv_fail(KVATTN_ERR_FORMAT,
                           "%s: header field %s = %d is out of range [1, %d] (not a llama2.c "
                           "checkpoint?)",
                           path, names[i], h[i], KV_MAX_DIM);
    }
    int D = h[0], F = h[1], L = h[2], H = h[3], KV = h[4], V = abs(h[5]), S = h[6];
    int shared = h[5] > 0;
    if (D % H != 0 || H % KV != 0 || (D / H) % 2 != 0)
        return kv_fail(KVATTN_ERR_FORMAT,
                       "%s: header: dim = %d, n_heads = %d, n_kv_heads = %d are inconsistent "
                       "(dim/n_heads must be even, n_heads a multiple of n_kv_heads)",
                       path, D, H, KV);
    uint64_t hs = (uint64_t)D / H, kvd = hs * KV, d = (uint64_t)D, l = (uint64_t)L;
    double approx = (double)V * D * 2 + (double)L * D * ((double)D * 2 + 2.0 * kvd + 3.0 * F + 2) + (double)S * hs;
    if (approx > 1e18) /* a header this large cannot describe any real file (and would overflow below) */
        return kv_fail(KVATTN_ERR_FORMAT,
                       "%s: header shapes (dim %d, %d layers, hidden %d, vocab %d) describe more than "
                       "4e18 bytes; this is not a llama2.c checkpoint",
                       path, D, L, F, V);
    uint64_t count = (uint64_t)V * d + l * d + l * d * d + 2 * l * d * kvd + l * d * d + l * d + 3 * l * d * F + d +
                     (uint64_t)S * hs + (shared ? 0 : (uint64_t)V * d);
    if (count > (UINT64_MAX - 28) / 4 || 28 + 4 * count != map.size)
        return kv_fail(KVATTN_ERR_FORMAT,
                       "%s: size %zu bytes does not match the header's shapes (expected %llu bytes "
                       "for dim %d, hidden %d, %d layers, %d/%d heads, vocab %d, seq_len %d)",
                       path, map.size, (unsigned long long)(28 + 4 * count), D, F, L, H, KV, V, S);

    kvattn_model_desc *desc = &m->desc;
    const char *base = strrchr(path, '/');
    snprintf(desc->name, sizeof desc->name, "%s", base ? base + 1 : path);
    snprintf(desc->arch, sizeof desc->arch, "llama");
    snprintf(m->format, sizeof m->format, "llama2.c");
    desc->attn = (kvattn_layer_config){.kind = KVATTN_ATTN_GQA,
                                       .d_model = D,
                                       .n_heads = H,
                                       .n_kv_heads = KV,
                                       .head_dim = (int)hs,
                                       .rope = {.theta = 10000.0f, .n_rot = (int)hs, .pairing = KVATTN_ROPE_ADJACENT}};
    desc->n_layers = L;
    desc->vocab_size = V;
    desc->ffn_dim = F;
    desc->ffn_gated = 1;
    desc->tied_embeddings = shared;
    desc->context_length = S;
    m->norm_eps = 1e-5f;
    m->layers = calloc((size_t)L, sizeof *m->layers);
    if (!m->layers) return kv_fail(KVATTN_ERR_NOMEM, "%s: out of memory", path);

    cursor c = {(const float *)((const char *)map.addr + 28), NULL};
    m->tok_embd = kvattn_f32_matrix(take(&c, (uint64_t)V * d));
    const float *attn_norm = take(&c, l * d), *wq = take(&c, l * d * d), *wk = take(&c, l * d * kvd);
    const float *wv = take(&c, l * d * kvd), *wo = take(&c, l * d * d), *ffn_norm = take(&c, l * d);
    const float *w1 = take(&c, l * d * F), *w2 = take(&c, l * d * F), *w3 = take(&c, l * d * F);
    m->out_norm = take(&c, d);
    take(&c, (uint64_t)S * hs); /* the obsolete RoPE tables */
    m->output = shared ? m->tok_embd : kvattn_f32_matrix(take(&c, (uint64_t)V * d));
    for (int i = 0; i < L; i++) {
        kv_layer *b = &m->layers[i];
        b->attn_norm = attn_norm + (uint64_t)i * d;
        b->ffn_norm = ffn_norm + (uint64_t)i * d;
        b->attn.wq = kvattn_f32_matrix(wq + (uint64_t)i * d * d);
        b->attn.wk = kvattn_f32_matrix(wk + (uint64_t)i * d * kvd);
        b->attn.wv = kvattn_f32_matrix(wv + (uint64_t)i * d * kvd);
        b->attn.wo = kvattn_f32_matrix(wo + (uint64_t)i * d * d);
        b->ffn_gate = kvattn_f32_matrix(w1 + (uint64_t)i * d * F);
        b->ffn_down = kvattn_f32_matrix(w2 + (uint64_t)i * d * F);
        b->ffn_up = kvattn_f32_matrix(w3 + (uint64_t)i * d * F);
    }
    m->weight_bytes = map.size - 28;
    if (!tokenizer_path) { /* llama2.c's default: tokenizer.bin; try the model's folder */
        char tp[4096];
        int n = base ? (int)(base - path) + 1 : 0;
        snprintf(tp, sizeof tp, "%.*stokenizer.bin", n, path);
        struct stat sb;
        if (stat(tp, &sb) == 0) {
            if (kvattn_tokenizer_load_llama2c(tp, V, &m->tokenizer) != KVATTN_OK) { /* kept to say why */
                m->tokenizer = NULL;
                snprintf(m->tokenizer_error, sizeof m->tokenizer_error, "%s", kvattn_last_error());
            }
        }
    }
    return KVATTN_OK;
}
