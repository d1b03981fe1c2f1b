/* Tokenizer internals, shared by the loaders that build one. */
#ifndef KVATTN_TOKENIZER_H
#define KVATTN_TOKENIZER_H

#include "internal.h"
#include "normalize.h"
#include "pretokenize.h"

struct kvattn_tokenizer {
    kvattn_vocab_kind kind;
    int n_vocab;
    char **pieces;    /* [n_vocab] NUL-terminated (pieces never contain NUL) */
    int *piece_len;   /* [n_vocab]                                           */
    float *scores;    /* [n_vocab] SPM merge priority                        */
    int *sorted;      /* ids sorted by piece, for lookup                     */
    int byte_id[256]; /* SPM: id of <0xXX>; BPE: id of the byte's unicode stand-in; -1 if absent */
    int bos, eos;
    int spm_marker; /* SPM: spaces are "▁" (GGUF, HF) rather than " " (llama2.c)    */
    int add_space_prefix;
    kv_pretokenizer pre;
    kv_pretok *pretok;          /* BPE: pre's compiled expressions                         */
    char pre_name[64];          /* the name the vocabulary gave, "" if none                 */
    int pre_known;              /* whether kvattn knows it (else pre is llama.cpp's default) */
    int ignore_merges;          /* BPE: a piece that is a token is that token (tiktoken's rule)  */
    kv_normalization normalize; /* applied to the text first (tokenizer.json's normalizer) */
    int *user_defined;          /* BPE: user-defined tokens, longest first, matched in raw text */
    int n_user_defined;
    /* BPE merges: open-addressing hash of (left id, right id) → rank. */
    uint64_t *merge_keys;
    int *merge_rank;
    int *merge_result;
    size_t merge_cap;
    unsigned char *is_control; /* [n_vocab] tokens that decode to nothing (BOS, EOS, <unk>, ...) */
    int16_t unicode_byte[324]; /* BPE: the byte a stand-in code point (< 324) means, or -1 */
};

/* What a tokenizer is built from; every array is copied. */
typedef struct {
    kvattn_vocab_kind kind;
    int n_vocab;
    const char *const *pieces; /* [n_vocab], lens[i] bytes each                 */
    const int *lens;
    const float *scores;       /* [n_vocab] SPM merge priorities, or NULL (BPE)  */
    const int32_t *token_type; /* [n_vocab] GGUF types (3 control, 6 byte), or NULL */
    const char *const *merges; /* [n_merges] "left right" (BPE), or NULL (SPM)   */
    const int *merge_lens;
    int n_merges;
    int bos, eos;   /* -1: none                                       */
    int spm_marker; /* SPM: spaces are "▁" (GGUF, HF), not " " (llama2.c) */
    int add_space_prefix;
    kv_pretokenizer pre;
    const char *pre_name; /* the vocabulary's own name for it (GGUF tokenizer.ggml.pre), or NULL */
    size_t pre_name_len;
    int ignore_merges;          /* tokenizer.json's model.ignore_merges; GGUF: from the pre name */
    kv_normalization normalize; /* tokenizer.json's NFC/NFKC/NFD/NFKD normalizer; GGUF: none, as llama.cpp */
    const char *source;         /* the file errors name                          */
} kv_vocab_spec;

kvattn_status kv_tokenizer_build(const kv_vocab_spec *v, kvattn_tokenizer **out);

/* The id of a piece, or -1. */
int kv_tokenizer_find(const kvattn_tokenizer *t, const char *piece, int len);

#endif
