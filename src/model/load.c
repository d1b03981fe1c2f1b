/* kvattn_model_load: which format a path holds, then that format's loader.
 * The loaders fill a kvattn_model through model.h and call nothing here. */
#define _POSIX_C_SOURCE 200809L
#include "loaders.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static int claims_hf_folder(const char *path, int is_dir, const unsigned char *magic, size_t n) {
    (void)magic, (void)n;
    return is_dir || ends_with(path, ".safetensors") || ends_with(path, ".json");
}

static int claims_gguf(const char *path, int is_dir, const unsigned char *magic, size_t n) {
    (void)path, (void)is_dir;
    return n == 4 && !memcmp(magic, "GGUF", 4);
}

/* llama2.c checkpoints have no magic: whatever no other format claims. */
static int claims_llama2c(const char *path, int is_dir, const unsigned char *magic, size_t n) {
    (void)path, (void)magic, (void)n;
    return !is_dir;
}

/* In the order they are asked; the last claims every regular file. */
static const kv_model_loader loaders[] = {
    {"safetensors", claims_hf_folder, kv_load_safetensors},
    {"gguf", claims_gguf, kv_load_gguf},
    {"llama2.c", claims_llama2c, kv_load_llama2c},
};

kvattn_status kvattn_model_load(const char *path, const char *tokenizer_path, kvattn_model **out) {
    if (!path || !out) return kv_fail(KVATTN_ERR_INVALID_ARG, "model: NULL argument");
    *out = NULL;
    struct stat sb;
    const int is_dir = stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
    unsigned char magic[4] = {0};
    size_t got = 0;
    if (!is_dir) {
        kvattn_status st;
        FILE *f = kv_fopen_regular(path, &st);
        if (!f) return st;
        got = fread(magic, 1, sizeof magic, f);
        fclose(f);
    }
    const kv_model_loader *ld = NULL;
    for (size_t i = 0; !ld && i < sizeof loaders / sizeof loaders[0]; i++)
        if (loaders[i].claims(path, is_dir, magic, got)) ld = &loaders[i];
    if (!ld) return kv_fail(KVATTN_ERR_FORMAT, "%s: not a model file or folder kvattn reads", path);

    kvattn_model *m = calloc(1, sizeof *m);
    if (!m) return kv_fail(KVATTN_ERR_NOMEM, "model: out of memory");
    kvattn_status st = ld->load(path, tokenizer_path, m);
    if (st == KVATTN_OK && tokenizer_path) { /* an explicit tokenizer.bin wins over one in the file */
        kvattn_tokenizer_free(m->tokenizer);
        m->tokenizer = NULL;
        st = kvattn_tokenizer_load_llama2c(tokenizer_path, (int)m->desc.vocab_size, &m->tokenizer);
    }
    if (st == KVATTN_OK) st = kv_model_pack_panels(m);
    if (st != KVATTN_OK) {
        kvattn_model_free(m);
        return st;
    }
    *out = m;
    return KVATTN_OK;
}
