/* kvattn run / info / eval — real models through the library. */
#include "cli_util.h"
#include "commands.h"
#include "options.h"

#include "kvattn.h"

#if defined(__GNUC__)
#define KV_CLI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define KV_CLI_PRINTF(f, a)
#endif

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Options common to the model commands. */
typedef struct {
    const char *model, *tokenizer, *prompt, *text_file, *logits_out;
    int64_t steps, ctx, top_k, threads, logits_top, seed_arg;
    double temp, top_p;
    uint64_t seed;
    kvattn_type kv_type;
    kvattn_mla_mode mla;
    int json;
} model_opts;

static const char *const mla_modes[] = {"absorbed", "naive", NULL}; /* in kvattn_mla_mode's order */

/* Parses a model command's options: those of the shared set whose names are in `take`.
 * Returns 0 to go on, 1 after --help, -1 on a bad command line. */
static int parse_model_opts(int argc, char **argv, model_opts *o, const char *cmd, const char *synopsis,
                            const char *about, const char *const *take) {
    int mla = (int)o->mla;
    const cli_option all[] = {
        CLI_OPT_STRING("-m", &o->model, "MODEL",
                       "GGUF (llama, deepseek2), llama2.c checkpoint, or a Hugging Face folder (safetensors)"),
        CLI_OPT_STRING("-z", &o->tokenizer, "TOKENIZER",
                       "llama2.c tokenizer.bin (llama2.c checkpoints; default: tokenizer.bin beside it)"),
        CLI_OPT_STRING("-p", &o->prompt, "PROMPT", "prompt text (default: empty, generation starts from BOS)"),
        CLI_OPT_STRING("-f", &o->text_file, "TEXT", "the text file to score"),
        CLI_OPT_COUNT("-n", &o->steps, 0, 1 << 30, "STEPS",
                      "positions to run, prompt included, as llama2.c's -n (default 0: the context)"),
        CLI_OPT_NUMBER("--temp", &o->temp, 0.0, 100.0, "T", "temperature, 0 = greedy (default 1.0)"),
        CLI_OPT_COUNT("--top-k", &o->top_k, 0, 1 << 30, "K", "keep the K most likely tokens (default 0 = off)"),
        CLI_OPT_NUMBER("--top-p", &o->top_p, 0.0, 1.0, "P", "nucleus sampling (default 0.9; 1 = off)"),
        CLI_OPT_COUNT("--seed", &o->seed_arg, 0, (int64_t)1 << 62, "S", "random seed (default 0: from the clock)"),
        CLI_OPT_COUNT("-c", &o->ctx, 1, 1 << 30, "CTX",
                      "context length of the KV cache (default: the model's, at most 4096)"),
        CLI_OPT_COUNT("-t, --threads", &o->threads, 1, 1 << 16, "THREADS", "threads (default: all cores)"),
        CLI_OPT_TYPE("--kv-type", &o->kv_type, 1, "TYPE", "cache element type f32, f16, bf16, q8_0 (default f16)"),
        CLI_OPT_CHOICE("--mla", &mla, mla_modes, "MODE",
                       "MLA models: absorbed (default: W_UK folded into the query, the latent\n"
                       "attended as MQA) or naive (per-head K/V expanded from the latent each step)"),
        CLI_OPT_STRING("--logits-out", &o->logits_out, "FILE",
                       "one JSON line per scored position: next token, its log-probability, top K"),
        CLI_OPT_COUNT("--top", &o->logits_top, 1, 1 << 20, "K", "entries of --logits-out's top list (default 10)"),
        CLI_OPT_FLAG("--json", &o->json, "one JSON object on stdout"),
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
    o->seed = (uint64_t)o->seed_arg;
    if (!o->model) {
        fprintf(stderr, "kvattn %s: -m MODEL is required (kvattn %s --help lists the options)\n", cmd, cmd);
        return -1;
    }
    if (o->threads) kvattn_set_threads((int)o->threads);
    return 0;
}

static kvattn_model *load_model(const model_opts *o, const char *cmd, int need_tokenizer) {
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
    if (cli_stderr_is_tty()) fprintf(stderr, "%60s\rloaded %s in %.2f s\n", "", o->model, cli_now() - t0);
    return m;
}

static int64_t default_ctx(const kvattn_model *m, int64_t asked) {
    int64_t c = kvattn_model_describe(m)->context_length;
    if (asked) return asked;
    return c > 0 && c < 4096 ? c : 4096;
}

/* Streams a token's bytes (stdout or a buffer). */
typedef struct {
    char *buf;
    size_t len, cap;
} text_buf;

static void append(text_buf *b, const char *s, int n) {
    if (n <= 0) return;
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *p = realloc(b->buf, cap);
        if (!p) return;
        b->buf = p, b->cap = cap;
    }
    memcpy(b->buf + b->len, s, (size_t)n);
    b->len += (size_t)n;
}

static void emit(const kvattn_tokenizer *tok, int prev, int id, int json, text_buf *text) {
    char piece[256];
    int n = kvattn_token_to_bytes(tok, prev, id, piece, sizeof piece);
    append(text, piece, n);
    if (!json && n > 0) {
        fwrite(piece, 1, (size_t)n, stdout);
        fflush(stdout);
    }
}

int cmd_run(int argc, char **argv) {
    model_opts o = {0};
    o.temp = 1.0, o.top_p = 0.9, o.kv_type = KVATTN_TYPE_F16;
    static const char *const take[] = {"-m",        "-z",      "-p",     "-n", "--temp",
                                       "--top-k",   "--top-p", "--seed", "-c", "-t, --threads",
                                       "--kv-type", "--mla",   "--json", NULL};
    int rc = parse_model_opts(argc, argv, &o, "run", "-m MODEL [-z TOKENIZER] [-p PROMPT] [-n STEPS] [options]",
                              "Generates text: the prompt and what follows stream to stdout, speeds to stderr.", take);
    if (rc) return rc > 0 ? 0 : 2;
    kvattn_model *m = load_model(&o, "run", 1);
    if (!m) return 1;
    const kvattn_model_desc *d = kvattn_model_describe(m);
    const kvattn_tokenizer *tok = kvattn_model_tokenizer(m);
    int64_t ctx = default_ctx(m, o.ctx);
    int64_t steps = o.steps > 0 && o.steps < ctx ? o.steps : ctx;
    const char *prompt = o.prompt ? o.prompt : "";
    int max_prompt = (int)(strlen(prompt) * 4 + 8);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(max_prompt + steps + 2));
    float *logits = malloc(sizeof(float) * (size_t)d->vocab_size);
    int n_prompt = 0;
    kvattn_session *s = NULL;
    if (!ids || !logits) {
        fprintf(stderr, "kvattn run: out of memory\n");
        rc = 1;
    } else if (kvattn_tokenize(tok, prompt, 1, ids, max_prompt, &n_prompt) != KVATTN_OK) {
        fprintf(stderr, "kvattn run: %s\n", kvattn_last_error());
        rc = 1;
    } else if (n_prompt > ctx) {
        fprintf(stderr, "kvattn run: the prompt is %d tokens, longer than the context of %lld (-c)\n", n_prompt,
                (long long)ctx);
        rc = 1;
    } else if (kvattn_session_create(m, (int)ctx, o.kv_type, o.mla, &s) != KVATTN_OK) {
        fprintf(stderr, "kvattn run: %s\n", kvattn_last_error());
        rc = 1;
    }
    /* llama2.c checkpoints end a story with BOS; other formats with their EOS. */
    int stop = !strcmp(kvattn_model_format(m), "llama2.c") ? kvattn_tokenizer_bos(tok) : kvattn_tokenizer_eos(tok);
    text_buf text = {0};
    int n_gen = 0;
    double t_prompt = 0, t_gen = 0;
    if (rc == 0) {
        for (int i = 1; i < n_prompt; i++) emit(tok, ids[i - 1], ids[i], o.json, &text);
        double t0 = cli_now();
        if (kvattn_session_decode(s, ids, n_prompt, logits, 0) != KVATTN_OK) {
            fprintf(stderr, "\nkvattn run: %s\n", kvattn_last_error());
            rc = 1;
        }
        t_prompt = cli_now() - t0;
        kvattn_sampler_params sp = {.temperature = (float)o.temp,
                                    .top_k = (int)o.top_k,
                                    .top_p = (float)o.top_p,
                                    .seed = o.seed ? o.seed : (uint64_t)(cli_now() * 1e6)};
        kvattn_sampler sampler;
        kvattn_sampler_init(&sampler, &sp);
        t0 = cli_now();
        /* As llama2.c: every position run yields one sampled token, so -n STEPS gives STEPS - prompt + 1. */
        for (int pos = n_prompt - 1; rc == 0 && pos < steps; pos++) {
            int next = kvattn_sample(&sampler, logits, (int)d->vocab_size);
            if (next < 0) {
                fprintf(stderr, "\nkvattn run: out of memory in the sampler\n");
                rc = 1;
                break;
            }
            if (next == stop) break;
            ids[n_prompt + n_gen++] = next;
            emit(tok, ids[n_prompt + n_gen - 2 >= 0 ? n_prompt + n_gen - 2 : 0], next, o.json, &text);
            if (pos + 1 < steps && pos + 1 < ctx &&
                kvattn_session_decode(s, &ids[n_prompt + n_gen - 1], 1, logits, 0) != KVATTN_OK) {
                fprintf(stderr, "\nkvattn run: %s\n", kvattn_last_error());
                rc = 1;
            }
        }
        t_gen = cli_now() - t0;
        kvattn_sampler_free(&sampler);
    }
    if (rc == 0) {
        size_t kv_bytes = kvattn_cache_bytes_per_token(kvattn_session_cache(s)) * (size_t)kvattn_session_pos(s);
        double ptps = t_prompt > 0 ? n_prompt / t_prompt : 0, gtps = t_gen > 0 ? n_gen / t_gen : 0;
        char b1[32], b2[32];
        if (o.json) {
            printf("{\"prompt_tokens\": [");
            for (int i = 0; i < n_prompt; i++) printf("%s%d", i ? ", " : "", ids[i]);
            printf("], \"tokens\": [");
            for (int i = 0; i < n_gen; i++) printf("%s%d", i ? ", " : "", ids[n_prompt + i]);
            printf("], \"text\": ");
            cli_json_string(stdout, text.buf ? text.buf : "", text.len);
            printf(", \"prompt_tok_per_s\": %.2f, \"gen_tok_per_s\": %.2f, \"kv_bytes\": %zu, \"kv_type\": \"%s\"}\n",
                   ptps, gtps, kv_bytes, kvattn_type_name(o.kv_type));
        } else {
            printf("\n");
            fprintf(stderr,
                    "prompt: %d tokens, %.1f tok/s | generated: %d tokens, %.1f tok/s | KV cache: %s in use "
                    "(%s allocated, %s)\n",
                    n_prompt, ptps, n_gen, gtps, cli_bytes((double)kv_bytes, b1, sizeof b1),
                    cli_bytes((double)kvattn_cache_bytes_allocated(kvattn_session_cache(s)), b2, sizeof b2),
                    kvattn_type_name(o.kv_type));
        }
    }
    free(text.buf);
    free(ids);
    free(logits);
    kvattn_session_free(s);
    kvattn_model_free(m);
    return rc;
}

int cmd_info(int argc, char **argv) {
    model_opts o = {0};
    o.kv_type = KVATTN_TYPE_F16;
    static const char *const take[] = {"-m", "-z", "--kv-type", "--json", NULL};
    int rc = parse_model_opts(argc, argv, &o, "info", "-m MODEL [-z TOKENIZER] [--kv-type TYPE] [--json]",
                              "Architecture, shapes, attention design, parameters, KV bytes per token, context length.",
                              take);
    if (rc) return rc > 0 ? 0 : 2;
    kvattn_model *m = load_model(&o, "info", 0);
    if (!m) return 1;
    const kvattn_model_desc *d = kvattn_model_describe(m);
    const kvattn_layer_config *a = &d->attn;
    const kvattn_tokenizer *tok = kvattn_model_tokenizer(m);
    char design[32], b1[32], b2[32];
    kvattn_config_design_name(a, design, sizeof design);
    int64_t params = kvattn_model_params(d);
    size_t bpt = kvattn_kv_bytes_per_token(a, d->n_layers, o.kv_type);
    if (o.json) {
        printf("{\"model\": ");
        cli_json_string(stdout, d->name, strlen(d->name));
        printf(", \"format\": \"%s\", \"arch\": \"%s\", \"design\": \"%s\", \"layers\": %d, \"d_model\": %d, "
               "\"n_heads\": %d, \"n_kv_heads\": %d, \"head_dim\": %d, \"ffn_dim\": %lld, \"vocab_size\": %lld, "
               "\"context_length\": %lld, \"params\": %lld, \"weight_bytes\": %llu, \"kv_type\": \"%s\", "
               "\"kv_bytes_per_token\": %zu, \"tokenizer\": %s}\n",
               kvattn_model_format(m), d->arch, design, d->n_layers, a->d_model, a->n_heads,
               a->kind == KVATTN_ATTN_GQA ? a->n_kv_heads : 1, a->kind == KVATTN_ATTN_GQA ? a->head_dim : 0,
               (long long)d->ffn_dim, (long long)d->vocab_size, (long long)d->context_length, (long long)params,
               (unsigned long long)kvattn_model_weight_bytes(m), kvattn_type_name(o.kv_type), bpt,
               !tok                                             ? "null"
               : kvattn_tokenizer_kind(tok) == KVATTN_VOCAB_SPM ? "\"spm\""
                                                                : "\"bpe\"");
    } else {
        printf("model:        %s (%s, %s)\n", d->name, kvattn_model_format(m), d->arch);
        printf("attention:    %s — %d heads", design, a->n_heads);
        if (a->kind == KVATTN_ATTN_GQA) printf(", %d KV heads × %d dims", a->n_kv_heads, a->head_dim);
        else printf(", latent %d + rope %d", a->kv_lora_rank, a->qk_rope_head_dim);
        printf("\nshape:        %d layers, d_model %d, ffn %lld, vocab %lld\n", d->n_layers, a->d_model,
               (long long)d->ffn_dim, (long long)d->vocab_size);
        printf("parameters:   %s (%s of weights)\n", cli_commas((uint64_t)params, b1, sizeof b1),
               cli_bytes((double)kvattn_model_weight_bytes(m), b2, sizeof b2));
        printf("KV cache:     %s bytes per token (%s), %s at the context of %lld\n", cli_commas(bpt, b1, sizeof b1),
               kvattn_type_name(o.kv_type), cli_bytes((double)bpt * (double)d->context_length, b2, sizeof b2),
               (long long)d->context_length);
        if (tok)
            printf("tokenizer:    %s, %d tokens, BOS %d, EOS %d\n",
                   kvattn_tokenizer_kind(tok) == KVATTN_VOCAB_SPM ? "SentencePiece-style BPE" : "byte-level BPE",
                   kvattn_tokenizer_vocab_size(tok), kvattn_tokenizer_bos(tok), kvattn_tokenizer_eos(tok));
        else
            printf("tokenizer:    none (give -z)%s%s\n", *kvattn_model_tokenizer_error(m) ? ": " : "",
                   kvattn_model_tokenizer_error(m));
    }
    kvattn_model_free(m);
    return 0;
}

/* Prints an error and returns the exit code 1. */
static int complain(const char *fmt, ...) KV_CLI_PRINTF(1, 2);
static int complain(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    return 1;
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
        n += got;
        if (n + 1 == cap) {
            char *p = cap < ((size_t)1 << 30) ? realloc(buf, cap * 2) : NULL;
            if (!p) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p, cap *= 2;
        }
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    return buf;
}

int cmd_eval(int argc, char **argv) {
    model_opts o = {0};
    o.kv_type = KVATTN_TYPE_F16;
    o.logits_top = 10;
    static const char *const take[] = {"-m",           "-z",    "-f",     "-c", "-t, --threads", "--kv-type", "--mla",
                                       "--logits-out", "--top", "--json", NULL};
    int rc = parse_model_opts(argc, argv, &o, "eval", "-m MODEL -f TEXT [-z TOKENIZER] [-c CTX] [options]",
                              "Perplexity over TEXT in windows of CTX tokens (each window starts with BOS).", take);
    if (rc) return rc > 0 ? 0 : 2;
    if (!o.text_file) {
        fprintf(stderr, "kvattn eval: -f TEXT is required\n");
        return 2;
    }
    char *text = read_text(o.text_file);
    if (!text) {
        fprintf(stderr, "kvattn eval: %s: cannot read\n", o.text_file);
        return 1;
    }
    kvattn_model *m = load_model(&o, "eval", 1);
    if (!m) {
        free(text);
        return 1;
    }
    const kvattn_model_desc *d = kvattn_model_describe(m);
    const kvattn_tokenizer *tok = kvattn_model_tokenizer(m);
    const int V = (int)d->vocab_size;
    int64_t ctx = default_ctx(m, o.ctx);
    int max_tokens = (int)(strlen(text) * 4 + 8), n_tok = 0;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)max_tokens);
    float *logits = malloc(sizeof(float) * (size_t)ctx * V);
    FILE *lf = o.logits_out ? fopen(o.logits_out, "w") : NULL;
    kvattn_session *s = NULL;
    if (!ids || !logits) rc = complain("kvattn eval: out of memory for a context of %lld\n", (long long)ctx);
    else if (kvattn_tokenize(tok, text, 0, ids, max_tokens, &n_tok) != KVATTN_OK)
        rc = complain("kvattn eval: %s\n", kvattn_last_error());
    else if (n_tok < 1) rc = complain("kvattn eval: %s: no tokens to score\n", o.text_file);
    else if (o.logits_out && !lf) rc = complain("kvattn eval: --logits-out %s: cannot write\n", o.logits_out);
    else if (kvattn_session_create(m, (int)ctx, o.kv_type, o.mla, &s) != KVATTN_OK)
        rc = complain("kvattn eval: %s\n", kvattn_last_error());
    double nll = 0.0, t0 = cli_now();
    int64_t scored = 0;
    int per_window = (int)ctx - 1, n_windows = (n_tok + per_window - 1) / per_window;
    int bos = kvattn_tokenizer_bos(tok);
    int32_t *win = malloc(sizeof(int32_t) * (size_t)ctx);
    for (int w = 0; rc == 0 && w < n_windows; w++) {
        /* window: BOS + up to ctx-1 text tokens; position i predicts token i+1 */
        int start = w * per_window, n = n_tok - start < per_window ? n_tok - start : per_window;
        win[0] = bos >= 0 ? bos : ids[start];
        memcpy(win + 1, ids + start, sizeof(int32_t) * (size_t)n);
        kvattn_session_rewind(s, 0);
        if (kvattn_session_decode(s, win, n + 1, logits, 1) != KVATTN_OK) {
            rc = complain("kvattn eval: %s\n", kvattn_last_error());
            break;
        }
        for (int i = 0; i < n; i++) {
            float *lg = logits + (size_t)i * V, mx = lg[0];
            for (int j = 1; j < V; j++) mx = fmaxf(mx, lg[j]);
            double z = 0;
            for (int j = 0; j < V; j++) z += exp((double)lg[j] - mx);
            double lse = mx + log(z), lp = lg[win[i + 1]] - lse;
            nll -= lp;
            scored++;
            if (lf) {
                fprintf(lf, "{\"pos\": %lld, \"token\": %d, \"logprob\": %.6f, \"top\": [", (long long)(start + i),
                        win[i + 1], lp);
                int k = o.logits_top < V ? (int)o.logits_top : V;
                unsigned char *used = calloc((size_t)V, 1);
                for (int r = 0; r < k && used; r++) { /* k largest, lowest id on ties */
                    int best = -1;
                    for (int j = 0; j < V; j++)
                        if (!used[j] && (best < 0 || lg[j] > lg[best])) best = j;
                    used[best] = 1;
                    fprintf(lf, "%s[%d, %.6f]", r ? ", " : "", best, lg[best] - lse);
                }
                free(used);
                fprintf(lf, "]}\n");
            }
        }
        if (cli_stderr_is_tty())
            fprintf(stderr, "\r[%d/%d] %lld tokens, perplexity %.4f, %.1f tok/s   ", w + 1, n_windows,
                    (long long)scored, exp(nll / (double)scored), (double)scored / (cli_now() - t0));
    }
    if (cli_stderr_is_tty()) fprintf(stderr, "\n");
    if (rc == 0) {
        double ppl = exp(nll / (double)scored), secs = cli_now() - t0;
        if (o.json)
            printf("{\"tokens\": %lld, \"windows\": %d, \"ctx\": %lld, \"nll\": %.6f, \"perplexity\": %.6f, "
                   "\"tok_per_s\": %.2f}\n",
                   (long long)scored, n_windows, (long long)ctx, nll / (double)scored, ppl, (double)scored / secs);
        else
            printf("perplexity %.4f over %lld tokens (%d windows of up to %lld, %.1f tok/s)\n", ppl, (long long)scored,
                   n_windows, (long long)ctx, (double)scored / secs);
    }
    if (lf) fclose(lf);
    free(win), free(ids), free(logits), free(text);
    kvattn_session_free(s);
    kvattn_model_free(m);
    return rc;
}
