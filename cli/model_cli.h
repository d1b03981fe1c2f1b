/* What the model commands (run, chat, info, eval) share: their options, in
 * llama.cpp's spellings where the two overlap, the model loading with its
 * messages, the context, and reading a prompt or a text file. */
#ifndef KVATTN_MODEL_CLI_H
#define KVATTN_MODEL_CLI_H

#include "kvattn.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MAX_STOPS 16

typedef struct {
    const char *model, *tokenizer, *prompt, *file, *logits_out, *kld_out, *ref, *ref_tokenizer;
    const char *host, *api_key, *chat_template, *alias; /* kvattn serve */
    const char *stops[MAX_STOPS];
    int n_stops;
    int64_t n_predict, ctx, top_k, threads, logits_top, seed, repeat_last_n, parallel, kv_mem;
    int64_t port, timeout, max_waiting, max_body; /* kvattn serve */
    double temp, top_p, min_p, repeat_penalty, presence_penalty, frequency_penalty;
    kvattn_type k_type, v_type;
    kvattn_mla_mode mla;
    int json, use_stdin, escape, no_display_prompt, conversation, score_second_half, exact, fast_products, decode,
        ref_exact;
} model_opts;

/* llama.cpp's defaults: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, no
 * penalties over a window of 64, a random seed, generation until the end. */
void model_opts_defaults(model_opts *o);

/* Parses the options of the shared set whose names are in `take` (NULL-
 * terminated). Returns 0 to go on, 1 after --help, -1 on a bad command line. */
int model_opts_parse(int argc, char **argv, model_opts *o, const char *cmd, const char *synopsis, const char *about,
                     const char *const *take);

/* The sampler's parameters the options give, with this seed. */
kvattn_sampler_params model_sampler_params(const model_opts *o, uint64_t seed);

/* The token a model ends a text with: llama2.c checkpoints end a story with
 * BOS, other formats with their EOS; -1 if none. */
int model_end_token(const kvattn_model *m);

/* Loads -m (and -z), saying what failed; NULL on failure. */
kvattn_model *model_load(const model_opts *o, const char *cmd, int need_tokenizer);

/* -c, or the model's trained context capped at 4096. Warns on stderr when the
 * context asked for is past what the model was trained for. */
int64_t model_context(const kvattn_model *m, int64_t asked, const char *cmd);

/* A whole file's bytes, NUL-terminated (*n excludes it); NULL if it cannot be read. */
char *read_file_bytes(FILE *f, size_t *n);

/* Processes llama.cpp's escapes in place: \n \r \t \\ \' \" \xHH. */
void unescape(char *s);

#endif
