/* Pre-tokenization of byte-level BPE vocabularies: the text cut into pieces
 * by the regular expressions each vocabulary was trained with (the
 * tokenizer.ggml.pre names llama.cpp uses), run by PCRE2 with Unicode
 * properties. BPE merges never cross a piece's edge. */
#ifndef KVATTN_PRETOKENIZE_H
#define KVATTN_PRETOKENIZE_H

#include "internal.h"

#include <stddef.h>

typedef enum {
    KV_PRE_GPT2 = 0,
    KV_PRE_LLAMA3,
    KV_PRE_DEFAULT, /* llama.cpp's for a vocabulary that names none */
    KV_PRE_DEEPSEEK_LLM,
    KV_PRE_DEEPSEEK_CODER,
    KV_PRE_DEEPSEEK3,
    KV_PRE_FALCON,
    KV_PRE_STARCODER,
    KV_PRE_QWEN2,
    KV_PRE_QWEN35,
    KV_PRE_CHATGLM4,
    KV_PRE_PORO,
    KV_PRE_VIKING,
    KV_PRE_JAIS2,
    KV_PRE_TEKKEN,
    KV_PRE_COUNT
} kv_pretokenizer;

/* The pre-tokenizer a tokenizer.ggml.pre name means; -1 for a name kvattn
 * does not know. NULL or "" is KV_PRE_DEFAULT. */
int kv_pretokenizer_by_name(const char *name, size_t len);

/* Whether llama.cpp takes a piece that is a whole token as that token
 * without merging, for the vocabularies of this name. */
int kv_pretokenizer_ignores_merges(const char *name, size_t len);

/* Its canonical name, as written to GGUF. */
const char *kv_pretokenizer_name(kv_pretokenizer p);

/* The pre-tokenizer whose expressions are exactly regex[n] (a
 * tokenizer.json's Split patterns, in order), or -1. */
int kv_pretokenizer_by_regexes(const char *const *regex, int n);

/* The compiled expressions of one pre-tokenizer. */
typedef struct kv_pretok kv_pretok;
kvattn_status kv_pretok_create(kv_pretokenizer p, kv_pretok **out);
void kv_pretok_free(kv_pretok *p);

/* Cuts text [len] into pieces: each expression in turn splits every piece
 * into its matches and the text between them. Writes the piece boundaries
 * (ends, ascending; the last is len) to *ends (malloc'd, grown as needed)
 * and returns their count, or -1 when out of memory. */
int kv_pretok_split(const kv_pretok *p, const char *text, size_t len, size_t **ends, size_t *cap);

#endif
