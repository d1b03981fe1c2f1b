#define _POSIX_C_SOURCE 200809L
/* kvattn serve — an OpenAI-compatible HTTP server over one engine
 * (kvattn_server): continuous batching of every request over one paged KV
 * pool with prefix reuse. Runs until SIGINT or SIGTERM. */
#include "cli_util.h"
#include "commands.h"
#include "model_cli.h"

#include "kvattn.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_asked;
static void on_stop(int sig) {
    (void)sig;
    stop_asked = 1;
}

/* The model's id: --alias, or the file's name. */
static const char *model_id_of(const model_opts *o) {
    if (o->alias) return o->alias;
    const char *slash = strrchr(o->model, '/');
    while (slash && slash[1] == '\0') { /* a folder given with a trailing slash */
        const char *prev = slash;
        while (prev > o->model && prev[-1] != '/') prev--;
        return prev;
    }
    return slash ? slash + 1 : o->model;
}

int cmd_serve(int argc, char **argv) {
    model_opts o;
    model_opts_defaults(&o);
    static const char *const take[] = {"-m, --model",
                                       "-z",
                                       "-n, --n-predict",
                                       "-c, --ctx-size",
                                       "--temp",
                                       "--top-k",
                                       "--top-p",
                                       "--min-p",
                                       "--repeat-penalty",
                                       "--repeat-last-n",
                                       "--presence-penalty",
                                       "--frequency-penalty",
                                       "-s, --seed",
                                       "-t, --threads",
                                       "--exact",
                                       "--fast-products",
                                       "--kv-type",
                                       "--mla",
                                       "--parallel",
                                       "--kv-mem",
                                       "--host",
                                       "--port",
                                       "--api-key",
                                       "--alias",
                                       "--chat-template",
                                       "--timeout",
                                       "--max-waiting",
                                       "--max-body",
                                       NULL};
    int rc = model_opts_parse(
        argc, argv, &o, "serve", "-m MODEL [--host ADDR] [--port PORT] [--parallel N] [--kv-mem SIZE] [options]",
        "An OpenAI-compatible HTTP server: POST /v1/completions and /v1/chat/completions (with\n"
        "\"stream\": true as server-sent events), GET /v1/models, /health and /metrics (Prometheus).\n"
        "Up to --parallel requests generate at once, stepping together over one paged KV pool of\n"
        "--kv-mem bytes (default: --parallel full contexts); prompts that begin alike share cache\n"
        "blocks; more requests wait, up to --max-waiting. A request's greedy output is what kvattn run\n"
        "--temp 0 gives its prompt, whatever else runs. The sampling options are the requests'\n"
        "defaults. Runs until Ctrl-C or SIGTERM.",
        take);
    if (rc) return rc > 0 ? 0 : 2;
    if (o.k_type != o.v_type) {
        fprintf(stderr, "kvattn serve: the KV pool takes one type for K and V (--kv-type)\n");
        return 2;
    }
    int chat_format = -1;
    if (o.chat_template && (chat_format = kvattn_chat_format_from_name(o.chat_template)) < 0) {
        fprintf(stderr,
                "kvattn serve: --chat-template '%s' is not one of plain, llama-2, llama-3, chatml, deepseek, "
                "deepseek-3\n",
                o.chat_template);
        return 2;
    }
    kvattn_model *m = model_load(&o, "serve", 1);
    if (!m) return 1;
    const kvattn_model_desc *d = kvattn_model_describe(m);
    const int64_t ctx = model_context(m, o.ctx, "serve");
    const size_t per_token = kvattn_kv_bytes_per_token_kv(&d->attn, d->n_layers, o.k_type, o.v_type);
    const uint64_t seed = o.seed >= 0 ? (uint64_t)o.seed : (uint64_t)(cli_now() * 1e6) ^ (uint64_t)getpid();
    kvattn_server_params sp = {
        .host = o.host,
        .port = (int)o.port,
        .api_key = o.api_key,
        .model_id = model_id_of(&o),
        .engine = {.n_ctx = (int)ctx,
                   .max_batch = (int)o.parallel,
                   .kv_mem = o.kv_mem ? (uint64_t)o.kv_mem : (uint64_t)per_token * (uint64_t)ctx * (uint64_t)o.parallel,
                   .block_tokens = 64,
                   .kv_type = o.k_type,
                   .mla_mode = o.mla},
        .end_token = model_end_token(m),
        .default_max_tokens = o.n_predict > 0 ? (int)o.n_predict : 0,
        .sampler = model_sampler_params(&o, seed),
        .fixed_seed = o.seed >= 0,
        .chat_format = chat_format,
        .max_waiting = (int)o.max_waiting,
        .max_body = (size_t)o.max_body,
        .timeout_s = (int)o.timeout,
        .log = stderr,
    };
    /* SIGPIPE would end the server when a client goes away mid-answer */
    signal(SIGPIPE, SIG_IGN);
    kvattn_server *s = NULL;
    if (kvattn_server_start(m, &sp, &s) != KVATTN_OK) {
        fprintf(stderr, "kvattn serve: %s\n", kvattn_last_error());
        kvattn_model_free(m);
        return 1;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    char b1[32], b2[32];
    const kvattn_chat_format fmt = kvattn_server_chat_format(s);
    fprintf(stderr, "kvattn serve: %s, context %lld, %lld at once, KV pool %s (%s a token, %s), chat format %s%s\n",
            sp.model_id, (long long)ctx, (long long)o.parallel, cli_bytes((double)sp.engine.kv_mem, b1, sizeof b1),
            cli_bytes((double)per_token, b2, sizeof b2), kvattn_type_name(o.k_type), kvattn_chat_format_name(fmt),
            fmt == KVATTN_CHAT_PLAIN ? " (the messages' contents a line each: the model names no format kvattn knows)"
                                     : "");
    fprintf(stderr, "kvattn serve: listening on http://%s:%d%s\n", o.host ? o.host : "127.0.0.1", kvattn_server_port(s),
            o.api_key ? " (API key required)" : "");
    fflush(stderr);
    while (!stop_asked) pause();
    fprintf(stderr, "kvattn serve: stopping\n");
    kvattn_server_stop(s);
    kvattn_model_free(m);
    return 0;
}
