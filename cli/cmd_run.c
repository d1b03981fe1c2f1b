/* kvattn run and kvattn chat: generation from a prompt, and turns of a
 * conversation in the model's chat template, over one KV cache. */
#define _POSIX_C_SOURCE 200809L
#include "cli_util.h"
#include "commands.h"
#include "model_cli.h"

#include "kvattn.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Ctrl-C: the answer being generated stops; at chat's prompt, the chat ends. */
static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

typedef enum { FINISH_STOP, FINISH_LENGTH, FINISH_CONTEXT, FINISH_INTERRUPTED, FINISH_ERROR } finish_reason;
static const char *const finish_names[] = {"stop", "length", "context", "interrupted", "error"};

typedef struct {
    char *buf;
    size_t len, cap;
} text_buf;

static int append(text_buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->cap + n + 1) * 2;
        char *p = realloc(b->buf, cap);
        if (!p) return -1;
        b->buf = p, b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
    return 0;
}

/* A model, its session and sampler, and what ends an answer. */
typedef struct {
    const kvattn_model *m;
    const kvattn_tokenizer *tok;
    kvattn_session *s;
    kvattn_sampler sampler;
    float *logits;
    int V, ctx;
    int end_ids[4], n_end; /* tokens that end an answer (not fed to the model)    */
    int prev;              /* the last token fed: the left context of the next piece */
    int32_t *generated;    /* [ctx] this answer's tokens                          */
    int n_generated;
    const model_opts *o;
} generator;

static int is_end(const generator *g, int id) {
    for (int i = 0; i < g->n_end; i++)
        if (g->end_ids[i] == id) return 1;
    return 0;
}

static void add_end(generator *g, int id) {
    if (id >= 0 && !is_end(g, id) && g->n_end < 4) g->end_ids[g->n_end++] = id;
}

static int gen_open(generator *g, const kvattn_model *m, const model_opts *o, int64_t ctx) {
    memset(g, 0, sizeof *g);
    g->m = m, g->o = o, g->tok = kvattn_model_tokenizer(m);
    g->V = (int)kvattn_model_describe(m)->vocab_size, g->ctx = (int)ctx, g->prev = -1;
    g->logits = malloc(sizeof(float) * (size_t)g->V);
    g->generated = malloc(sizeof(int32_t) * (size_t)ctx);
    if (!g->logits || !g->generated) {
        fprintf(stderr, "kvattn: out of memory\n");
        return -1;
    }
    if (kvattn_session_create_kv(m, (int)ctx, o->k_type, o->v_type, o->mla, &g->s) != KVATTN_OK) {
        fprintf(stderr, "kvattn: %s\n", kvattn_last_error());
        return -1;
    }
    add_end(g, model_end_token(m));
    const uint64_t seed = o->seed >= 0 ? (uint64_t)o->seed : (uint64_t)(cli_now() * 1e6) ^ (uint64_t)getpid();
    const kvattn_sampler_params sp = model_sampler_params(o, seed);
    kvattn_sampler_init(&g->sampler, &sp);
    return 0;
}

static void gen_close(generator *g) {
    kvattn_sampler_free(&g->sampler);
    kvattn_session_free(g->s);
    free(g->logits);
    free(g->generated);
}

/* Runs tokens through the model at the current position; 0, or -1 (said why). */
static int gen_feed(generator *g, const int32_t *ids, int n) {
    if (n <= 0) return 0;
    if (n > g->ctx - kvattn_session_pos(g->s)) {
        fprintf(stderr, "kvattn: %d tokens at position %d do not fit the context of %d (-c)\n", n,
                kvattn_session_pos(g->s), g->ctx);
        return -1;
    }
    if (kvattn_session_decode(g->s, ids, n, g->logits, 0) != KVATTN_OK) {
        fprintf(stderr, "kvattn: %s\n", kvattn_last_error());
        return -1;
    }
    for (int i = 0; i < n; i++) kvattn_sampler_accept(&g->sampler, ids[i]);
    g->prev = ids[n - 1];
    return 0;
}

/* How many bytes at the end of text[0, len) could begin a stop string (held back until known). */
static size_t stop_prefix(const char *text, size_t len, const char *const *stops, int n_stops) {
    size_t hold = 0;
    for (int s = 0; s < n_stops; s++) {
        const size_t sl = strlen(stops[s]);
        for (size_t k = sl - 1 < len ? sl - 1 : len; k > hold; k--)
            if (!memcmp(text + len - k, stops[s], k)) {
                hold = k;
                break;
            }
    }
    return hold;
}

/* The stop string text[0, len) ends with, or -1. */
static int stop_match(const char *text, size_t len, const char *const *stops, int n_stops) {
    for (int s = 0; s < n_stops; s++) {
        const size_t sl = strlen(stops[s]);
        if (sl && sl <= len && !memcmp(text + len - sl, stops[s], sl)) return s;
    }
    return -1;
}

static void print_json_token(int id, const char *piece, size_t n) {
    printf("{\"token\": %d, \"piece\": ", id);
    cli_json_string(stdout, piece, n);
    printf("}\n");
    fflush(stdout);
}

/* Generates an answer from the logits of the last token fed, into text (the
 * pieces, stop strings left out), printing it as it comes. */
static finish_reason gen_answer(generator *g, int64_t n_predict, text_buf *text) {
    const model_opts *o = g->o;
    size_t printed = text->len;
    const size_t start = text->len;
    finish_reason why = FINISH_LENGTH;
    g->n_generated = 0;
    interrupted = 0;
    for (;;) {
        if (n_predict >= 0 && g->n_generated >= n_predict) break;
        const int id = kvattn_sample(&g->sampler, g->logits, g->V);
        if (id < 0) {
            fprintf(stderr, "\nkvattn: out of memory in the sampler\n");
            why = FINISH_ERROR;
            break;
        }
        if (is_end(g, id)) {
            why = FINISH_STOP;
            break;
        }
        char piece[512];
        const int n = kvattn_token_to_bytes(g->tok, g->prev, id, piece, sizeof piece);
        g->generated[g->n_generated++] = id;
        if (n > 0 && append(text, piece, (size_t)n) != 0) {
            why = FINISH_ERROR;
            break;
        }
        if (o->json) print_json_token(id, piece, n > 0 ? (size_t)n : 0);
        const int s = stop_match(text->buf + start, text->len - start, o->stops, o->n_stops);
        if (s >= 0) {
            text->len -= strlen(o->stops[s]);
            text->buf[text->len] = '\0';
            why = FINISH_STOP;
        } else if (!o->json) { /* print what cannot be the start of a stop string */
            const size_t hold = stop_prefix(text->buf + start, text->len - start, o->stops, o->n_stops);
            if (text->len - hold > printed) {
                fwrite(text->buf + printed, 1, text->len - hold - printed, stdout);
                fflush(stdout);
                printed = text->len - hold;
            }
        }
        if (kvattn_session_pos(g->s) >= g->ctx) { /* the token cannot be fed: no room for its K/V */
            if (s < 0) why = FINISH_CONTEXT;
            break;
        }
        if (gen_feed(g, (int32_t[]){id}, 1) != 0) {
            why = FINISH_ERROR;
            break;
        }
        if (s >= 0) break;
        if (interrupted) {
            why = FINISH_INTERRUPTED;
            break;
        }
    }
    if (!o->json && text->len > printed) fwrite(text->buf + printed, 1, text->len - printed, stdout);
    fflush(stdout);
    return why;
}

/* The prompt: -p (- for standard input), --stdin or -f, escapes processed with -e. */
static char *read_prompt(const model_opts *o, const char *cmd) {
    char *p = NULL;
    if (o->use_stdin || (o->prompt && !strcmp(o->prompt, "-"))) {
        p = read_file_bytes(stdin, NULL);
        if (!p) fprintf(stderr, "kvattn %s: cannot read the prompt from standard input\n", cmd);
    } else if (o->file) {
        FILE *f = fopen(o->file, "rb");
        p = f ? read_file_bytes(f, NULL) : NULL;
        if (f) fclose(f);
        if (!p) fprintf(stderr, "kvattn %s: -f %s: cannot read\n", cmd, o->file);
    } else {
        p = strdup(o->prompt ? o->prompt : "");
    }
    if (p && o->escape) unescape(p);
    return p;
}

static int run_chat(const model_opts *o, kvattn_model *m, int64_t ctx);

/* The options run and chat share: how tokens are drawn and where they are kept. */
#define GENERATION_OPTIONS                                                                                             \
    "-n, --n-predict", "-c, --ctx-size", "--temp", "--top-k", "--top-p", "--min-p", "--repeat-penalty",                \
        "--repeat-last-n", "--presence-penalty", "--frequency-penalty", "-s, --seed", "-r, --reverse-prompt, --stop",  \
        "-t, --threads", "--exact", "--fast-products", "--kv-type", "-ctk, --cache-type-k", "-ctv, --cache-type-v",    \
        "--mla"

int cmd_run(int argc, char **argv) {
    model_opts o;
    model_opts_defaults(&o);
    static const char *const take[] = {"-m, --model",
                                       "-z",
                                       "-p, --prompt",
                                       "-f, --file",
                                       "--stdin",
                                       "-e, --escape",
                                       "--no-display-prompt",
                                       "-cnv, --conversation",
                                       "--json",
                                       GENERATION_OPTIONS,
                                       NULL};
    int rc = model_opts_parse(argc, argv, &o, "run", "-m MODEL [-p PROMPT | -f FILE | --stdin] [-n N] [options]",
                              "Generates text after the prompt. The prompt and the text stream to stdout, the speeds\n"
                              "and why generation ended to stderr (or, with --json, JSON lines to stdout).",
                              take);
    if (rc) return rc > 0 ? 0 : 2;
    char *prompt = o.conversation ? NULL : read_prompt(&o, "run");
    if (!o.conversation && !prompt) return 1;
    kvattn_model *m = model_load(&o, "run", 1);
    if (!m) {
        free(prompt);
        return 1;
    }
    const int64_t ctx = model_context(m, o.ctx, "run");
    if (o.conversation) {
        rc = run_chat(&o, m, ctx);
        kvattn_model_free(m);
        return rc;
    }
    const kvattn_tokenizer *tok = kvattn_model_tokenizer(m);
    generator g = {0};
    /* at most three tokens a byte: a space is "▁", 3 bytes, which a vocabulary without that piece
     * spells as byte tokens (and SentencePiece adds one in front); and BOS */
    const size_t max_prompt = 3 * strlen(prompt) + 8;
    int32_t *ids = malloc(sizeof(int32_t) * max_prompt);
    int n_prompt = 0;
    if (!ids || gen_open(&g, m, &o, ctx) != 0) {
        rc = 1;
    } else if (max_prompt > (size_t)1 << 30 ||
               kvattn_tokenize(tok, prompt, 1, ids, (int)max_prompt, &n_prompt) != KVATTN_OK) {
        fprintf(stderr, "kvattn run: %s\n", kvattn_last_error());
        rc = 1;
    } else if (n_prompt > ctx) {
        fprintf(stderr, "kvattn run: the prompt is %d tokens, longer than the context of %lld (-c)\n", n_prompt,
                (long long)ctx);
        rc = 1;
    }
    text_buf text = {0};
    finish_reason why = FINISH_ERROR;
    double t_prompt = 0, t_gen = 0;
    if (rc == 0) {
        if (!o.json && !o.no_display_prompt) { /* the prompt as the model reads it, BOS left out */
            const int bos = kvattn_tokenizer_bos(tok);
            for (int i = n_prompt > 0 && ids[0] == bos ? 1 : 0, prev = i ? bos : -1; i < n_prompt; prev = ids[i++]) {
                char piece[512];
                const int n = kvattn_token_to_bytes(tok, prev, ids[i], piece, sizeof piece);
                if (n > 0) fwrite(piece, 1, (size_t)n, stdout);
            }
            fflush(stdout);
        }
        double t0 = cli_now();
        rc = gen_feed(&g, ids, n_prompt) == 0 ? 0 : 1;
        t_prompt = cli_now() - t0;
        if (rc == 0) {
            signal(SIGINT, on_sigint);
            t0 = cli_now();
            why = gen_answer(&g, o.n_predict, &text);
            t_gen = cli_now() - t0;
            signal(SIGINT, SIG_DFL);
            if (why == FINISH_ERROR) rc = 1;
        }
    }
    if (rc == 0) {
        const kvattn_cache *c = kvattn_session_cache(g.s);
        const size_t kv_bytes = kvattn_cache_bytes_per_token(c) * (size_t)kvattn_session_pos(g.s);
        const double ptps = t_prompt > 0 ? n_prompt / t_prompt : 0, gtps = t_gen > 0 ? g.n_generated / t_gen : 0;
        if (o.json) {
            printf("{\"finish_reason\": \"%s\", \"prompt\": ", finish_names[why]);
            cli_json_string(stdout, prompt, strlen(prompt));
            printf(", \"prompt_tokens\": [");
            for (int i = 0; i < n_prompt; i++) printf("%s%d", i ? ", " : "", ids[i]);
            printf("], \"tokens\": [");
            for (int i = 0; i < g.n_generated; i++) printf("%s%d", i ? ", " : "", g.generated[i]);
            printf("], \"text\": ");
            cli_json_string(stdout, text.buf ? text.buf : "", text.len);
            printf(", \"n_prompt\": %d, \"n_generated\": %d, \"prompt_tok_per_s\": %.2f, \"gen_tok_per_s\": %.2f, "
                   "\"kv_bytes\": %zu, \"kv_type_k\": \"%s\", \"kv_type_v\": \"%s\", \"seed\": %llu}\n",
                   n_prompt, g.n_generated, ptps, gtps, kv_bytes, kvattn_type_name(o.k_type),
                   kvattn_type_name(o.v_type), (unsigned long long)g.sampler.p.seed);
        } else {
            printf("\n");
            fflush(stdout); /* the text's last line ends before the stats, even with 2>&1 */
            char b1[32], b2[32];
            if (why == FINISH_CONTEXT)
                fprintf(stderr, "kvattn run: stopped: the context of %lld tokens is full (-c)\n", (long long)ctx);
            fprintf(stderr,
                    "prompt: %d tokens, %.1f tok/s | generated: %d tokens, %.1f tok/s | finish: %s | KV cache: %s "
                    "in use (%s allocated, K %s, V %s)\n",
                    n_prompt, ptps, g.n_generated, gtps, finish_names[why], cli_bytes((double)kv_bytes, b1, sizeof b1),
                    cli_bytes((double)kvattn_cache_bytes_allocated(c), b2, sizeof b2), kvattn_type_name(o.k_type),
                    kvattn_type_name(o.v_type));
        }
    }
    free(text.buf);
    free(ids);
    free(prompt);
    if (g.logits || g.s) gen_close(&g);
    kvattn_model_free(m);
    return rc;
}

/* ---- chat ------------------------------------------------------------------ */

/* The conversation so far, and the tokens the session holds. */
typedef struct {
    kvattn_chat_message *msgs;
    int n, cap;
} history;

static int history_add(history *h, const char *role, const char *content, size_t len) {
    if (h->n == h->cap) {
        const int cap = h->cap ? 2 * h->cap : 16;
        kvattn_chat_message *m = realloc(h->msgs, sizeof *m * (size_t)cap);
        if (!m) return -1;
        h->msgs = m, h->cap = cap;
    }
    char *c = malloc(len + 1);
    if (!c) return -1;
    memcpy(c, content, len);
    c[len] = '\0';
    h->msgs[h->n++] = (kvattn_chat_message){role, c};
    return 0;
}

static void history_clear(history *h) {
    while (h->n > 0) free((char *)h->msgs[--h->n].content);
}

/* The chat format: --chat-template, else the one the model's template names;
 * plain when the vocabulary lacks the format's special tokens. Says which. */
static kvattn_chat_format chat_format_of(const model_opts *o, const kvattn_model *m) {
    const kvattn_tokenizer *tok = kvattn_model_tokenizer(m);
    const char *tmpl = kvattn_model_chat_template(m);
    const int named = o->chat_template ? kvattn_chat_format_from_name(o->chat_template) : -1;
    kvattn_chat_format fmt = named >= 0 ? (kvattn_chat_format)named : kvattn_chat_format_detect(tmpl);
    if (fmt != KVATTN_CHAT_PLAIN && kvattn_chat_format_check(tok, fmt) != KVATTN_OK) {
        fprintf(stderr, "kvattn chat: %s; using plain turns\n", kvattn_last_error());
        return KVATTN_CHAT_PLAIN;
    }
    if (fmt == KVATTN_CHAT_PLAIN && named < 0)
        fprintf(stderr, "kvattn chat: %s; each turn is your text as it is, a line each, and the model continues it\n",
                tmpl ? "the model's chat template is not one kvattn knows (llama-2, llama-3, chatml, deepseek, "
                       "deepseek-3)"
                     : "the model has no chat template");
    else fprintf(stderr, "kvattn chat: %s template\n", kvattn_chat_format_name(fmt));
    return fmt;
}

/* Each turn renders the whole conversation in the chat format
 * (kvattn_chat_tokenize) and runs only what the session does not hold yet:
 * the tokens after the longest prefix it shares with what was run before
 * (the answers as generated; where their text tokenizes otherwise, the
 * session goes back to where the two part). */
static int run_chat(const model_opts *o, kvattn_model *m, int64_t ctx) {
    const kvattn_tokenizer *tok = kvattn_model_tokenizer(m);
    if (o->chat_template && kvattn_chat_format_from_name(o->chat_template) < 0) {
        fprintf(stderr,
                "kvattn chat: --chat-template '%s' is not one of plain, llama-2, llama-3, chatml, deepseek, "
                "deepseek-3\n",
                o->chat_template);
        return 2;
    }
    const kvattn_chat_format fmt = chat_format_of(o, m);
    const int tty = isatty(STDIN_FILENO);
    if (tty) fprintf(stderr, "Type a message; /clear starts over, /exit or Ctrl-D ends, Ctrl-C stops an answer.\n");

    generator g = {0};
    if (gen_open(&g, m, o, ctx) != 0) {
        gen_close(&g);
        return 1;
    }
    add_end(&g, kvattn_chat_end_token(tok, fmt));
    struct sigaction sa = {0};
    sa.sa_handler = on_sigint; /* no SA_RESTART: Ctrl-C at the prompt ends the read */
    sigaction(SIGINT, &sa, NULL);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)ctx), *held = malloc(sizeof(int32_t) * (size_t)ctx);
    int n_held = 0; /* held[0, n_held): the tokens in the session */
    history h = {0};
    char *line = NULL;
    size_t line_cap = 0;
    int rc = ids && held ? 0 : 1;
    text_buf answer = {0};
    while (rc == 0) {
        if (tty) fprintf(stderr, "> ");
        interrupted = 0;
        ssize_t got = getline(&line, &line_cap, stdin);
        if (got < 0) break; /* end of input, or Ctrl-C */
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = '\0';
        if (!strcmp(line, "/exit")) break;
        if (!strcmp(line, "/clear")) {
            kvattn_session_rewind(g.s, 0);
            kvattn_sampler_reset(&g.sampler);
            history_clear(&h);
            n_held = 0, g.prev = -1;
            fprintf(stderr, "(conversation cleared)\n");
            continue;
        }
        if (got == 0) continue;
        if (history_add(&h, "user", line, (size_t)got) != 0) {
            rc = 1;
            break;
        }
        int n = 0;
        const kvattn_status st = kvattn_chat_tokenize(tok, fmt, h.msgs, h.n, 1, ids, (int)ctx, &n);
        if (st != KVATTN_OK || n >= ctx) {
            if (st != KVATTN_OK && st != KVATTN_ERR_CACHE_FULL)
                fprintf(stderr, "kvattn chat: %s\n", kvattn_last_error());
            else
                fprintf(stderr, "kvattn chat: the context of %lld tokens is full; /clear to start over\n",
                        (long long)ctx);
            free((char *)h.msgs[--h.n].content);
            continue;
        }
        int same = 0;
        while (same < n_held && same < n - 1 && held[same] == ids[same]) same++;
        if (same < kvattn_session_pos(g.s)) { /* back to where they part; the penalties' window too */
            kvattn_session_rewind(g.s, same);
            kvattn_sampler_reset(&g.sampler);
            for (int i = 0; i < same; i++) kvattn_sampler_accept(&g.sampler, held[i]);
        }
        g.prev = same ? ids[same - 1] : -1;
        if (gen_feed(&g, ids + same, n - same) != 0) {
            rc = 1;
            break;
        }
        memcpy(held, ids, sizeof *ids * (size_t)n);
        n_held = n;
        answer.len = 0;
        const finish_reason why = gen_answer(&g, o->n_predict, &answer);
        const int fed = kvattn_session_pos(g.s) - n_held; /* the answer's tokens the session holds */
        memcpy(held + n_held, g.generated, sizeof *held * (size_t)(fed < g.n_generated ? fed : g.n_generated));
        n_held += fed < g.n_generated ? fed : g.n_generated;
        if (history_add(&h, "assistant", answer.buf ? answer.buf : "", answer.len) != 0) rc = 1;
        printf("\n");
        fflush(stdout);
        if (why == FINISH_ERROR) rc = 1;
        else if (why == FINISH_CONTEXT)
            fprintf(stderr, "kvattn chat: the context of %lld tokens is full; /clear to start over\n", (long long)ctx);
        else if (why == FINISH_INTERRUPTED) fprintf(stderr, "(stopped)\n");
    }
    signal(SIGINT, SIG_DFL);
    history_clear(&h);
    free(h.msgs);
    free(line);
    free(ids), free(held);
    free(answer.buf);
    gen_close(&g);
    return rc;
}

int cmd_chat(int argc, char **argv) {
    model_opts o;
    model_opts_defaults(&o);
    static const char *const take[] = {"-m, --model", "-z", GENERATION_OPTIONS, "--chat-template", NULL};
    int rc = model_opts_parse(argc, argv, &o, "chat", "-m MODEL [options]",
                              "A conversation: each line you type is a turn in the model's chat format (llama-2,\n"
                              "llama-3, ChatML, DeepSeek V2 or V3, from the GGUF's tokenizer.chat_template or\n"
                              "--chat-template; plain turns otherwise), answered in the same KV cache, which\n"
                              "keeps what the turns before left in it. Reads a pipe as well as a terminal.",
                              take);
    if (rc) return rc > 0 ? 0 : 2;
    kvattn_model *m = model_load(&o, "chat", 1);
    if (!m) return 1;
    rc = run_chat(&o, m, model_context(m, o.ctx, "chat"));
    kvattn_model_free(m);
    return rc;
}
