/* The model commands' shared options and loading (model_cli.h). */
#include "model_cli.h"

#include "cli_util.h"
#include "options.h"

#include <stdlib.h>
#include <string.h>

void model_opts_defaults(model_opts *o) {
    memset(o, 0, sizeof *o);
    o->n_predict = -1, o->seed = -1, o->top_k = 40, o->repeat_last_n = 64, o->logits_top = 10, o->parallel = 4;
    o->port = 8080, o->timeout = 60, o->max_waiting = 256, o->max_body = 1 << 20;
    o->temp = 0.8, o->top_p = 0.95, o->min_p = 0.05, o->repeat_penalty = 1.0;
    o->k_type = o->v_type = KVATTN_TYPE_F16;
    o->mla = KVATTN_MLA_ABSORBED;
}

static const char *const mla_modes[] = {"absorbed", "naive", NULL}; /* in kvattn_mla_mode's order */

int model_opts_parse(int argc, char **argv, model_opts *o, const char *cmd, const char *synopsis, const char *about,
                     const char *const *take) {
    int mla = (int)o->mla;
    kvattn_type kv = KVATTN_TYPE_COUNT, ctk = KVATTN_TYPE_COUNT, ctv = KVATTN_TYPE_COUNT;
    const int eval = !strcmp(cmd, "eval");
    const cli_option all[] = {
        CLI_OPT_STRING("-m, --model", &o->model, "MODEL",
                       "GGUF (llama, deepseek2), llama2.c checkpoint, or a Hugging Face folder"),
        CLI_OPT_STRING("-z", &o->tokenizer, "TOKENIZER",
                       "llama2.c tokenizer.bin (llama2.c checkpoints; default: tokenizer.bin beside it)"),
        CLI_OPT_STRING("-p, --prompt", &o->prompt, "PROMPT", "the prompt; - reads it from standard input"),
        CLI_OPT_STRING("-f, --file", &o->file, "FILE",
                       eval ? "the text to score, its bytes as they are"
                            : "the prompt from a file, its bytes as they are"),
        CLI_OPT_FLAG("--stdin", &o->use_stdin, "the prompt from standard input"),
        CLI_OPT_FLAG("-e, --escape", &o->escape, "process \\n, \\t, \\r, \\\\, \\', \\\" and \\xHH in the prompt"),
        CLI_OPT_INT("-n, --n-predict", &o->n_predict, -1, 1 << 30, "N",
                    "tokens to generate (default -1: until the end token or the context)"),
        CLI_OPT_COUNT("-c, --ctx-size", &o->ctx, 0, 1 << 30, "N",
                      "context of the KV cache (default 0: the model's trained context, at most 4096)"),
        CLI_OPT_NUMBER("--temp", &o->temp, 0.0, 100.0, "T", "temperature, 0 = greedy (default 0.8)"),
        CLI_OPT_COUNT("--top-k", &o->top_k, 0, 1 << 30, "K", "keep the K most likely tokens (default 40, 0 = off)"),
        CLI_OPT_NUMBER("--top-p", &o->top_p, 0.0, 1.0, "P",
                       "nucleus: the smallest set of mass P (default 0.95, 1 = off)"),
        CLI_OPT_NUMBER("--min-p", &o->min_p, 0.0, 1.0, "P",
                       "keep tokens at least P times as likely as the best (default 0.05, 0 = off)"),
        CLI_OPT_NUMBER("--repeat-penalty", &o->repeat_penalty, 0.0, 100.0, "R",
                       "divide a recent token's logit by R (default 1.0 = off)"),
        CLI_OPT_INT("--repeat-last-n", &o->repeat_last_n, -1, 1 << 30, "N",
                    "recent tokens the penalties look at (default 64, 0 = none, -1 = all)"),
        CLI_OPT_NUMBER("--presence-penalty", &o->presence_penalty, -100.0, 100.0, "P",
                       "subtract P once from a recent token's logit (default 0)"),
        CLI_OPT_NUMBER("--frequency-penalty", &o->frequency_penalty, -100.0, 100.0, "F",
                       "subtract F per occurrence in the recent tokens (default 0)"),
        CLI_OPT_INT("-s, --seed", &o->seed, -1, INT64_MAX, "S", "random seed (default -1: a new one each run)"),
        CLI_OPT_LIST("-r, --reverse-prompt, --stop", o->stops, &o->n_stops, MAX_STOPS, "TEXT",
                     "stop when the output ends with TEXT, which is not printed (repeatable)"),
        CLI_OPT_FLAG("--no-display-prompt", &o->no_display_prompt, "print only the generated text"),
        CLI_OPT_FLAG("-cnv, --conversation", &o->conversation, "chat: interactive turns (as kvattn chat)"),
        CLI_OPT_COUNT("-t, --threads", &o->threads, 1, 1 << 16, "N", "threads (default: all cores)"),
        CLI_OPT_FLAG("--exact", &o->exact,
                     "every product in f32 (as KVATTN_EXACT=1): quantized weights' decode products\n"
                     "without rounding the activations"),
        CLI_OPT_FLAG("--fast-products", &o->fast_products,
                     "the block types' decode products on activations rounded once to 8 bits, as\n"
                     "llama.cpp's (as KVATTN_FAST=1): faster, at the cost the README measures"),
        CLI_OPT_TYPE("--kv-type", &kv, 1, "TYPE", "K and V cache type: f32, f16, bf16, q8_0 (default f16)"),
        CLI_OPT_TYPE("-ctk, --cache-type-k", &ctk, 1, "TYPE", "the K rows' type (default: --kv-type)"),
        CLI_OPT_TYPE("-ctv, --cache-type-v", &ctv, 1, "TYPE", "the V rows' type (default: --kv-type; MLA: as K)"),
        CLI_OPT_CHOICE("--mla", &mla, mla_modes, "MODE",
                       "MLA models: absorbed (default: W_UK folded into the query, the latent\n"
                       "attended as MQA) or naive (per-head K/V expanded from the latent each step)"),
        CLI_OPT_STRING("--kld-base-out", &o->kld_out, "FILE",
                       "with --score-second-half: the scored positions' log-probabilities in llama-perplexity's "
                       "--kl-divergence-base format, for llama.cpp to measure its KL divergence from kvattn"),
        CLI_OPT_STRING("--logits-out", &o->logits_out, "FILE",
                       "one JSON line per scored position: next token, its log-probability, top K"),
        CLI_OPT_STRING("--ref", &o->ref, "MODEL",
                       "a reference model run over the same windows: its perplexity, KL(ref || model)\n"
                       "per token (mean, 99th percentile) and top-1 agreement"),
        CLI_OPT_STRING("--ref-z", &o->ref_tokenizer, "TOKENIZER", "llama2.c tokenizer.bin of --ref (as -z)"),
        CLI_OPT_FLAG("--decode", &o->decode,
                     "feed each window a token at a time, as generation does (the decode kernels),\n"
                     "instead of as one prompt"),
        CLI_OPT_FLAG("--ref-exact", &o->ref_exact,
                     "run --ref with every product in f32 (--exact) and the model with the default\n"
                     "products: with --ref the same file, what the faster products cost"),
        CLI_OPT_FLAG("--score-second-half", &o->score_second_half,
                     "llama-perplexity's windows: chunks of CTX tokens, the first replaced by BOS,\n"
                     "only the second half of each scored"),
        CLI_OPT_COUNT("--top", &o->logits_top, 1, 1 << 20, "K", "entries of --logits-out's top list (default 10)"),
        CLI_OPT_COUNT("--parallel", &o->parallel, 1, KVATTN_DECODE_BATCH_MAX, "N",
                      "requests generating at once (default 4)"),
        CLI_OPT_COUNT("--kv-mem", &o->kv_mem, 1, INT64_MAX, "SIZE",
                      "bytes of the shared KV pool, e.g. 64M (default: --parallel contexts)"),
        CLI_OPT_STRING("--host", &o->host, "ADDR", "address to listen on (default 127.0.0.1; 0.0.0.0: every one)"),
        CLI_OPT_INT("--port", &o->port, 0, 65535, "PORT", "port to listen on (default 8080; 0: a free one)"),
        CLI_OPT_STRING("--api-key", &o->api_key, "KEY", "every request needs \"Authorization: Bearer KEY\""),
        CLI_OPT_STRING("--alias", &o->alias, "NAME", "the model's id in the API (default: the file's name)"),
        CLI_OPT_STRING("--chat-template", &o->chat_template, "NAME",
                       "llama-2, llama-3, chatml, deepseek, deepseek-3 or plain (default: from the model)"),
        CLI_OPT_COUNT("--timeout", &o->timeout, 1, 86400, "S",
                      "seconds an idle or slow connection is kept (default 60)"),
        CLI_OPT_COUNT("--max-waiting", &o->max_waiting, 1, 1 << 20, "N",
                      "requests queued beyond --parallel before new ones get 429 (default 256)"),
        CLI_OPT_COUNT("--max-body", &o->max_body, 1024, 1 << 30, "SIZE",
                      "largest request body; a larger one gets 413 (default 1M)"),
        CLI_OPT_FLAG("--json", &o->json,
                     eval ? "one JSON object on stdout"
                          : "JSON lines on stdout: one per token as it comes, then one with the totals"),
    };
    cli_option opts[sizeof all / sizeof all[0]];
    int n = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        for (const char *const *t = take; *t; t++)
            if (!strcmp(*t, all[i].names)) opts[n++] = all[i];
    const cli_command c = {cmd, synopsis, about, opts, n};
    const int parsed = cli_parse(&c, argc, argv);
    if (parsed != CLI_PARSED) return parsed == CLI_HELP ? 1 : -1;
    o->mla = (kvattn_mla_mode)mla;
    if (kv != KVATTN_TYPE_COUNT) o->k_type = o->v_type = kv;
    if (ctk != KVATTN_TYPE_COUNT) o->k_type = ctk;
    if (ctv != KVATTN_TYPE_COUNT) o->v_type = ctv;
    if (!o->model) {
        fprintf(stderr, "kvattn %s: -m MODEL is required (kvattn %s --help lists the options)\n", cmd, cmd);
        return -1;
    }
    if (!!o->prompt + !!(o->file && !eval) + !!o->use_stdin > 1) {
        fprintf(stderr, "kvattn %s: give one of -p, -f and --stdin for the prompt\n", cmd);
        return -1;
    }
    if (o->threads) kvattn_set_threads((int)o->threads);
    if (o->exact) kvattn_set_exact(1);
    if (o->fast_products) kvattn_set_fast_products(1);
    return 0;
}

kvattn_sampler_params model_sampler_params(const model_opts *o, uint64_t seed) {
    const kvattn_sampler_params sp = {.temperature = (float)o->temp,
                                      .top_k = (int)o->top_k,
                                      .top_p = (float)o->top_p,
                                      .min_p = (float)o->min_p,
                                      .repeat_penalty = (float)o->repeat_penalty,
                                      .repeat_last_n = (int)o->repeat_last_n,
                                      .presence_penalty = (float)o->presence_penalty,
                                      .frequency_penalty = (float)o->frequency_penalty,
                                      .seed = seed};
    return sp;
}

int model_end_token(const kvattn_model *m) {
    const kvattn_tokenizer *t = kvattn_model_tokenizer(m);
    return !strcmp(kvattn_model_format(m), "llama2.c") ? kvattn_tokenizer_bos(t) : kvattn_tokenizer_eos(t);
}

kvattn_model *model_load(const model_opts *o, const char *cmd, int need_tokenizer) {
    kvattn_model *m = NULL;
    double t0 = cli_now();
    if (cli_stderr_is_tty()) fprintf(stderr, "loading %s...\r", o->model);
    if (kvattn_model_load(o->model, o->tokenizer, &m) != KVATTN_OK) {
        fprintf(stderr, "kvattn %s: %s\n", cmd, kvattn_last_error());
        return NULL;
    }
    if (need_tokenizer && !kvattn_model_tokenizer(m)) {
        const char *why = kvattn_model_tokenizer_error(m);
        if (*why) fprintf(stderr, "kvattn %s: %s: no usable tokenizer: %s\n", cmd, o->model, why);
        else
            fprintf(stderr, "kvattn %s: %s: no tokenizer found (give a llama2.c tokenizer.bin with -z)\n", cmd,
                    o->model);
        kvattn_model_free(m);
        return NULL;
    }
    int known = 1;
    const char *pre = kvattn_model_tokenizer(m) ? kvattn_tokenizer_pre(kvattn_model_tokenizer(m), &known) : "";
    if (!known) /* llama.cpp falls back the same way; the ids may differ from the model's training */
        fprintf(stderr, "kvattn %s: warning: %s: pre-tokenizer '%s' is unknown; using llama.cpp's default\n", cmd,
                o->model, pre);
    if (cli_stderr_is_tty()) fprintf(stderr, "%60s\rloaded %s in %.2f s\n", "", o->model, cli_now() - t0);
    return m;
}

int64_t model_context(const kvattn_model *m, int64_t asked, const char *cmd) {
    const kvattn_model_desc *d = kvattn_model_describe(m);
    const int64_t trained = d->context_length;
    const int64_t ctx = asked ? asked : trained > 0 && trained < 4096 ? trained : 4096;
    if (trained > 0 && ctx > trained) {
        const kvattn_rope_config *r = &d->attn.rope;
        char scaling[96] = "none";
        if (r->yarn_factor > 1.0f)
            snprintf(scaling, sizeof scaling, "YaRN, factor %g from %d positions", (double)r->yarn_factor,
                     r->yarn_orig_ctx);
        fprintf(stderr,
                "kvattn %s: warning: a context of %lld tokens is past the %lld the model was trained for "
                "(RoPE scaling: %s); expect worse output past %lld\n",
                cmd, (long long)ctx, (long long)trained, scaling, (long long)trained);
    }
    return ctx;
}

char *read_file_bytes(FILE *f, size_t *n) {
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + len, 1, cap - len - 1, f)) > 0;) {
        len += got;
        if (len + 1 == cap) {
            char *p = cap < ((size_t)1 << 31) ? realloc(buf, cap * 2) : NULL;
            if (!p) {
                free(buf);
                return NULL;
            }
            buf = p, cap *= 2;
        }
    }
    if (buf && ferror(f)) {
        free(buf);
        return NULL;
    }
    if (buf) buf[len] = '\0';
    if (n) *n = len;
    return buf;
}

static int hex_digit(char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

void unescape(char *s) {
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r != '\\' || !r[1]) {
            *w++ = *r;
            continue;
        }
        switch (*++r) {
        case 'n': *w++ = '\n'; break;
        case 'r': *w++ = '\r'; break;
        case 't': *w++ = '\t'; break;
        case '\\': *w++ = '\\'; break;
        case '\'': *w++ = '\''; break;
        case '"': *w++ = '"'; break;
        case 'x':
            if (hex_digit(r[1]) >= 0 && hex_digit(r[2]) >= 0) {
                *w++ = (char)(hex_digit(r[1]) * 16 + hex_digit(r[2]));
                r += 2;
            } else {
                *w++ = '\\', *w++ = 'x'; /* not an escape: kept as written */
            }
            break;
        default: *w++ = '\\', *w++ = *r; break;
        }
    }
    *w = '\0';
}
