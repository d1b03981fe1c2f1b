/* What the libFuzzer harnesses share: an input as a file the loaders can open
 * (an in-memory file, no disk), and bounds on what is worth running. */
#ifndef KVATTN_FUZZ_UTIL_H
#define KVATTN_FUZZ_UTIL_H

#define _GNU_SOURCE
#include "kvattn.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The input as a regular in-memory file; *path receives /proc/self/fd/N.
 * Returns the descriptor to close after use, or -1. */
static inline int fuzz_file(const uint8_t *data, size_t size, char *path, size_t path_size) {
    int fd = memfd_create("kvattn-fuzz", MFD_CLOEXEC);
    if (fd < 0) return -1;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return -1;
    }
    snprintf(path, path_size, "/proc/self/fd/%d", fd);
    return fd;
}

/* Writes data to path (a file of the harness's own folder); 0 on success. */
static inline int fuzz_write(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    const int ok = fwrite(data, 1, size, f) == size;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* A loaded model small enough to run a step of in a fuzzing loop: its sizes
 * bound the work, whatever the file claims. */
static inline int fuzz_model_is_small(const kvattn_model *m) {
    const kvattn_model_desc *d = kvattn_model_describe(m);
    return d->n_layers <= 4 && d->attn.d_model <= 512 && d->vocab_size <= 70000 && d->ffn_dim <= 4096 &&
           d->attn.n_heads <= 64 && d->moe_ffn_dim <= 4096 && d->n_routed_experts <= 64 &&
           kvattn_model_weight_bytes(m) <= ((uint64_t)64 << 20);
}

/* Text through a tokenizer and every id back to bytes. */
static inline void fuzz_tokenize_text(const kvattn_tokenizer *tok, const char *text) {
    int32_t ids[256];
    int n = 0;
    if (kvattn_tokenize(tok, text, 1, ids, 256, &n) != KVATTN_OK) return;
    for (int i = 0; i < n; i++) {
        char piece[128];
        kvattn_token_to_bytes(tok, i ? ids[i - 1] : -1, ids[i], piece, sizeof piece);
    }
}

/* Two decode steps of what loaded, with every cache type, and a tokenization;
 * a failure is fine (a clean error), a fault is not. */
static inline void fuzz_run_model(const kvattn_model *m) {
    if (!fuzz_model_is_small(m)) return;
    const kvattn_model_desc *d = kvattn_model_describe(m);
    static const kvattn_type types[2] = {KVATTN_TYPE_F16, KVATTN_TYPE_Q8_0};
    float *logits = malloc(sizeof(float) * (size_t)d->vocab_size * 2);
    for (int t = 0; logits && t < 2; t++) {
        kvattn_session *s = NULL;
        if (kvattn_session_create(m, 4, types[t], KVATTN_MLA_ABSORBED, &s) != KVATTN_OK) continue;
        const int32_t ids[2] = {0, (int32_t)(d->vocab_size > 1 ? 1 : 0)};
        kvattn_session_decode(s, ids, 2, logits, 1);
        kvattn_session_decode(s, ids, 1, logits, 0);
        kvattn_session_free(s);
    }
    free(logits);
    const kvattn_tokenizer *tok = kvattn_model_tokenizer(m);
    if (tok) fuzz_tokenize_text(tok, "Once upon a time, caf\xc3\xa9 \xe6\x97\xa5!");
}

/* A model file given as bytes: loaded, and run when it loads. */
static inline void fuzz_load_and_run(const uint8_t *data, size_t size) {
    char path[64];
    int fd = fuzz_file(data, size, path, sizeof path);
    if (fd < 0) return;
    kvattn_model *m = NULL;
    if (kvattn_model_load(path, NULL, &m) == KVATTN_OK) fuzz_run_model(m);
    kvattn_model_free(m);
    close(fd);
}

#endif
