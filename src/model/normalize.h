/* Unicode normalisation of text before tokenization, where a vocabulary asks
 * for it (a tokenizer.json normalizer: Qwen2/Qwen3 ask for NFC). */
#ifndef KVATTN_NORMALIZE_H
#define KVATTN_NORMALIZE_H

#include <stddef.h>

typedef enum { KV_NORM_NONE = 0, KV_NORM_NFC, KV_NORM_NFKC, KV_NORM_NFD, KV_NORM_NFKD } kv_normalization;

/* The form a normalizer type names ("NFC", "NFKC", "NFD", "NFKD"), or -1. */
int kv_normalization_by_name(const char *name);
const char *kv_normalization_name(kv_normalization form);

/* text[len] in the form, malloc'd and NUL-terminated, its length in *out_len;
 * NULL when out of memory. Valid UTF-8 runs are normalised; bytes that are
 * not UTF-8 are kept as they are between them (no normaliser can read them,
 * and the byte-level tokenizer still must see every byte). */
char *kv_normalize(kv_normalization form, const char *text, size_t len, size_t *out_len);

#endif
