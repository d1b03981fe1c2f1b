/* Scoring a model over a tokenized text in windows, alone or against a
 * reference model over the same windows: what kvattn eval reports and what
 * kvattn retention tabulates for each conversion. */
#ifndef KVATTN_EVAL_SCORE_H
#define KVATTN_EVAL_SCORE_H

#include "kvattn.h"

#include <stdint.h>
#include <stdio.h>

typedef struct {
    int64_t ctx;     /* window length, BOS included */
    int second_half; /* llama-perplexity's chunks, second half scored */
    kvattn_type k_type, v_type;
    kvattn_mla_mode mla;
    FILE *logits_out; /* one JSON line per scored position, or NULL */
    FILE *kld_out;    /* second_half: llama-perplexity's --kl-divergence-base file, or NULL */
    int logits_top;
    int decode;      /* windows fed a token at a time (the decode kernels), not as one prompt */
    int ref_exact;   /* the reference runs with every product in f32 (kvattn_set_exact) */
    const char *cmd; /* "eval", for messages */
} eval_setup;

typedef struct {
    int64_t tokens; /* scored */
    int windows;
    double nll, ppl, secs;
    /* against the reference (zero without one) */
    double ref_ppl, kl_mean, kl_median, kl_p99, kl_max, top1;
} eval_stats;

/* Reads a text file and tokenizes it (with
 * BOS first when add_bos, as llama-perplexity tokenizes); *ids is
 * malloc'd. Says what failed on stderr and returns 1; 0 on success. */
int eval_tokenize_file(const char *path, const kvattn_tokenizer *tok, int add_bos, int32_t **ids, int *n_ids,
                       const char *cmd, const char *what);

/* Scores m (and ref, if not NULL) over ids. Says what failed on stderr and
 * returns 1; 0 on success. Progress on a terminal. */
int eval_score(const kvattn_model *m, const kvattn_model *ref, const int32_t *ids, int n_tok, const eval_setup *e,
               eval_stats *out);

#endif
