/* Tokenizer internals, shared by the loaders that build one. */
#ifndef KVATTN_TOKENIZER_H
#define KVATTN_TOKENIZER_H

#include "internal.h"

typedef enum { KV_PRE_GPT2 = 0, KV_PRE_LLAMA3 } kv_pretokenizer;

struct kvattn_tokenizer {
    kvattn_vocab_kind kind;
    int n_vocab;
    char **pieces;     /* [n_vocab] NUL-terminated (pieces never contain NUL) */
    int *piece_len;    /* [n_vocab]                                           */
    float *scores;     /* [n_vocab] SPM merge priority                        */
    int *sorted;       /* ids sorted by piece, for lookup                     */
    int byte_id[256];  /* SPM: id of <0xXX>; BPE: id of the byte's unicode stand-in; -1 if absent */
    int bos, eos;
    int spm_marker;    /* SPM: spaces are "▁" (GGUF, HF) rather than " " (llama2.c)    */
    int add_space_prefix;
    kv_pretokenizer pre;
    /* BPE merges: open-addressing hash of (left id, right id) → rank. */
    uint64_t *merge_keys;
    int *merge_rank;
    int *merge_result;
    size_t merge_cap;
    unsigned char *is_control; /* [n_vocab] tokens that decode to nothing (BOS, EOS, <unk>, ...) */
    int16_t unicode_byte[324]; /* BPE: the byte a stand-in code point (< 324) means, or -1 */
};

/* Builds a tokenizer from pieces (copied). scores may be NULL for BPE.
 * merges: n_merges "left right" strings (BPE), may be NULL for SPM.
 * token_type: GGUF token types per id (may be NULL): 3 = control, 6 = byte. */
kvattn_status kv_tokenizer_build(kvattn_vocab_kind kind, int n_vocab, const char *const *pieces, const int *lens,
                                 const float *scores, const int32_t *token_type, const char *const *merges,
                                 const int *merge_lens, int n_merges, int bos, int eos, int spm_marker,
                                 int add_space_prefix, kv_pretokenizer pre, const char *source,
                                 kvattn_tokenizer **out);

/* The id of a piece, or -1. */
int kv_tokenizer_find(const kvattn_tokenizer *t, const char *piece, int len);

#endif
