/* The model formats kvattn reads, each a loader that fills a kvattn_model
 * from a path (load.c picks one by what the path holds). */
#ifndef KVATTN_LOADERS_H
#define KVATTN_LOADERS_H

#include "model.h"

typedef struct {
    const char *format;
    /* Whether this format reads the path: a folder or not, its first n ≤ 4 bytes. */
    int (*claims)(const char *path, int is_dir, const unsigned char *magic, size_t n);
    /* Fills m (zeroed); on failure, what it filled is freed with m by the caller. */
    kvattn_status (*load)(const char *path, const char *tokenizer_path, kvattn_model *m);
} kv_model_loader;

kvattn_status kv_load_llama2c(const char *path, const char *tokenizer_path, kvattn_model *m);
kvattn_status kv_load_gguf(const char *path, const char *tokenizer_path, kvattn_model *m);
kvattn_status kv_load_safetensors(const char *path, const char *tokenizer_path, kvattn_model *m);

#endif
