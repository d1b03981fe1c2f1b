/* A tiny Hugging Face folder (config.json, tokenizer.json, model.safetensors)
 * for the harnesses that fuzz one of its files with the others valid. */
#ifndef KVATTN_FUZZ_HF_H
#define KVATTN_FUZZ_HF_H

#include "fuzz_util.h"

static const char fuzz_hf_config[] =
    "{\"model_type\": \"llama\", \"hidden_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, "
    "\"num_key_value_heads\": 1, \"intermediate_size\": 16, \"vocab_size\": 8, \"max_position_embeddings\": 16, "
    "\"rms_norm_eps\": 1e-5, \"bos_token_id\": 1, \"eos_token_id\": 2}";

static const char fuzz_hf_tokenizer[] =
    "{\"model\": {\"type\": \"BPE\", \"byte_fallback\": false, \"vocab\": {\"a\": 0, \"<s>\": 1, \"</s>\": 2, "
    "\"b\": 3, \"ab\": 4, \"\\u0120\": 5, \"\\u0120a\": 6, \"c\": 7}, \"merges\": [\"a b\", \"\\u0120 a\"]}, "
    "\"added_tokens\": [{\"id\": 1, \"content\": \"<s>\", \"special\": true}]}";

/* The safetensors file of that config (f32, values 0.01·i), into buf; its size. */
static inline size_t fuzz_hf_safetensors(uint8_t *buf, size_t cap) {
    static const struct {
        const char *name;
        int rows, cols;
    } t[] = {{"model.embed_tokens.weight", 8, 8},
             {"model.norm.weight", 8, 0},
             {"lm_head.weight", 8, 8},
             {"model.layers.0.input_layernorm.weight", 8, 0},
             {"model.layers.0.self_attn.q_proj.weight", 8, 8},
             {"model.layers.0.self_attn.k_proj.weight", 4, 8},
             {"model.layers.0.self_attn.v_proj.weight", 4, 8},
             {"model.layers.0.self_attn.o_proj.weight", 8, 8},
             {"model.layers.0.post_attention_layernorm.weight", 8, 0},
             {"model.layers.0.mlp.gate_proj.weight", 16, 8},
             {"model.layers.0.mlp.up_proj.weight", 16, 8},
             {"model.layers.0.mlp.down_proj.weight", 8, 16}};
    char header[4096];
    size_t h = 0, off = 0;
    h += (size_t)snprintf(header + h, sizeof header - h, "{");
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        const size_t n = (size_t)t[i].rows * (size_t)(t[i].cols ? t[i].cols : 1);
        if (t[i].cols)
            h += (size_t)snprintf(header + h, sizeof header - h,
                                  "%s\"%s\": {\"dtype\": \"F32\", \"shape\": [%d, %d], \"data_offsets\": [%zu, %zu]}",
                                  i ? ", " : "", t[i].name, t[i].rows, t[i].cols, off, off + 4 * n);
        else
            h += (size_t)snprintf(header + h, sizeof header - h,
                                  "%s\"%s\": {\"dtype\": \"F32\", \"shape\": [%d], \"data_offsets\": [%zu, %zu]}",
                                  i ? ", " : "", t[i].name, t[i].rows, off, off + 4 * n);
        off += 4 * n;
    }
    h += (size_t)snprintf(header + h, sizeof header - h, "}");
    const uint64_t hlen = h;
    if (8 + h + off > cap) return 0;
    memcpy(buf, &hlen, 8);
    memcpy(buf + 8, header, h);
    for (size_t i = 0; i < off / 4; i++) {
        const float v = 0.01f * (float)(i % 97);
        memcpy(buf + 8 + h + 4 * i, &v, 4);
    }
    return 8 + h + off;
}

/* A folder of the three files, made once per process; NULL if it cannot be. */
static inline const char *fuzz_hf_folder(void) {
    static char dir[64];
    if (dir[0]) return dir;
    snprintf(dir, sizeof dir, "/tmp/kvattn-fuzz-hf-XXXXXX");
    if (!mkdtemp(dir)) return dir[0] = '\0', NULL;
    static uint8_t st[16384];
    const size_t n = fuzz_hf_safetensors(st, sizeof st);
    char p[128];
    snprintf(p, sizeof p, "%s/config.json", dir);
    int bad = fuzz_write(p, fuzz_hf_config, strlen(fuzz_hf_config));
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    bad |= fuzz_write(p, fuzz_hf_tokenizer, strlen(fuzz_hf_tokenizer));
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    bad |= n == 0 || fuzz_write(p, st, n);
    return bad ? NULL : dir;
}

/* Writes the input as the folder's `file`, loads the folder, runs what loads,
 * and puts the valid file back. */
static inline void fuzz_hf_with(const char *file, const char *valid, size_t valid_size, const uint8_t *data,
                                size_t size) {
    const char *dir = fuzz_hf_folder();
    if (!dir) return;
    char p[128];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    if (fuzz_write(p, data, size) == 0) {
        kvattn_model *m = NULL;
        if (kvattn_model_load(dir, NULL, &m) == KVATTN_OK) fuzz_run_model(m);
        kvattn_model_free(m);
    }
    fuzz_write(p, valid, valid_size);
}

#endif
