#define _POSIX_C_SOURCE 200809L
/* kvattn batch — many prompts through one engine: continuous batching over a
 * shared, paged KV pool with prefix reuse (kvattn_engine). */
#include "cli_util.h"
#include "commands.h"
#include "model_cli.h"

#include "kvattn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const finish_names[] = {"waiting", "prefilling", "running",   "length",
                                           "stop",    "context",    "cancelled", "failed"};
/* kvattn_request_state's order */ /* kvattn_request_state's order */

/* The prompts of a file, one a line (empty lines skipped), in place. */
static int split_lines(char *text, char **lines, int max) {
    int n = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        size_t len = strlen(l);
        if (len && l[len - 1] == '\r') l[--len] = '\0';
        if (!len) continue;
        if (n == max) return -1;
        lines[n++] = l;
    }
    return n;
}

/* The text of a request's tokens after the prompt's last token. */
static char *tokens_text(const kvattn_tokenizer *tok, int prev, const int32_t *ids, int n, size_t *len) {
    size_t cap = 64, used = 0;
    char *s = malloc(cap);
    for (int i = 0; s && i < n; prev = ids[i++]) {
        char piece[512];
        const int b = kvattn_token_to_bytes(tok, prev, ids[i], piece, sizeof piece);
        if (b <= 0) continue;
        while (used + (size_t)b + 1 > cap) {
            char *t = realloc(s, cap *= 2);
            if (!t) {
                free(s);
                return NULL;
            }
            s = t;
        }
        memcpy(s + used, piece, (size_t)b);
        used += (size_t)b;
    }
    if (s) s[used] = '\0';
    *len = used;
    return s;
}

#define MAX_PROMPTS 4096

int cmd_batch(int argc, char **argv) {
    model_opts o;
    model_opts_defaults(&o);
    static const char *const take[] = {"-m, --model",
                                       "-z",
                                       "-f, --file",
                                       "-n, --n-predict",
                                       "-c, --ctx-size",
                                       "--temp",
                                       "--top-k",
                                       "--top-p",
                                       "--min-p",
                                       "--repeat-penalty",
                                       "--repeat-last-n",
                                       "-s, --seed",
                                       "-t, --threads",
                                       "--exact",
                                       "--fast-products",
                                       "--kv-type",
                                       "--mla",
                                       "--parallel",
                                       "--kv-mem",
                                       "--json",
                                       "--presence-penalty",
                                       "--frequency-penalty",
                                       NULL};
    int rc = model_opts_parse(argc, argv, &o, "batch", "-m MODEL -f PROMPTS [--parallel N] [--kv-mem SIZE] [options]",
                              "Generates a text for each line of PROMPTS, --parallel requests at a time stepping\n"
                              "together over one paged KV pool of --kv-mem bytes (continuous batching): prompts that\n"
                              "begin alike reuse each other's cache blocks, requests join and leave between steps,\n"
                              "and when the pool is full the newest request waits to be recomputed. Each text is\n"
                              "what kvattn run gives its prompt alone with the same options and seed. The texts\n"
                              "go to stdout in the file's order (with --json, one object), the totals to stderr.",
                              take);
    if (rc) return rc > 0 ? 0 : 2;
    if (!o.file) {
        fprintf(stderr, "kvattn batch: -f PROMPTS is required (one prompt a line)\n");
        return 2;
    }
    if (o.k_type != o.v_type) {
        fprintf(stderr, "kvattn batch: the KV pool takes one type for K and V (--kv-type)\n");
        return 2;
    }
    FILE *f = fopen(o.file, "rb");
    size_t text_len = 0;
    char *text = f ? read_file_bytes(f, &text_len) : NULL;
    if (f) fclose(f);
    if (!text) {
        fprintf(stderr, "kvattn batch: -f %s: cannot read\n", o.file);
        return 1;
    }
    char **lines = malloc(sizeof *lines * MAX_PROMPTS);
    const int n_lines = lines ? split_lines(text, lines, MAX_PROMPTS) : -1;
    if (n_lines <= 0) {
        fprintf(stderr, "kvattn batch: -f %s: %s\n", o.file,
                n_lines == 0 ? "no prompt in it" : "more than 4096 prompts, or out of memory");
        free(text), free(lines);
        return 1;
    }
    kvattn_model *m = model_load(&o, "batch", 1);
    if (!m) {
        free(text), free(lines);
        return 1;
    }
    const kvattn_model_desc *d = kvattn_model_describe(m);
    const kvattn_tokenizer *tok = kvattn_model_tokenizer(m);
    const int64_t ctx = model_context(m, o.ctx, "batch");
    const size_t per_token = kvattn_kv_bytes_per_token_kv(&d->attn, d->n_layers, o.k_type, o.v_type);
    kvattn_engine_params ep = {.n_ctx = (int)ctx,
                               .max_batch = (int)o.parallel,
                               .kv_mem = o.kv_mem ? (uint64_t)o.kv_mem
                                                  : (uint64_t)per_token * (uint64_t)ctx * (uint64_t)o.parallel,
                               .block_tokens = 64,
                               .kv_type = o.k_type,
                               .mla_mode = o.mla};
    kvattn_engine *e = NULL;
    int *ids = malloc(sizeof *ids * (size_t)n_lines);
    int *last_prompt_token = malloc(sizeof *last_prompt_token * (size_t)n_lines);
    if (!ids || !last_prompt_token || kvattn_engine_create(m, &ep, &e) != KVATTN_OK) {
        fprintf(stderr, "kvattn batch: %s\n", ids && last_prompt_token ? kvattn_last_error() : "out of memory");
        rc = 1;
    }
    const uint64_t seed = o.seed >= 0 ? (uint64_t)o.seed : (uint64_t)(cli_now() * 1e6) ^ (uint64_t)getpid();
    kvattn_request_params rp = {.max_tokens = o.n_predict > 0 ? (int)o.n_predict : (int)ctx,
                                .end_token = model_end_token(m),
                                .sampler = model_sampler_params(&o, seed)};
    for (int i = 0; rc == 0 && i < n_lines; i++) {
        int n = 0;
        const size_t max_ids = 3 * strlen(lines[i]) + 8; /* three tokens a byte at most (as kvattn run), and BOS */
        int32_t *ids_i = max_ids < (size_t)1 << 30 ? malloc(sizeof *ids_i * max_ids) : NULL;
        if (!ids_i || kvattn_tokenize(tok, lines[i], 1, ids_i, (int)max_ids, &n) != KVATTN_OK) {
            fprintf(stderr, "kvattn batch: prompt %d: %s\n", i + 1, ids_i ? kvattn_last_error() : "out of memory");
            rc = 1;
        } else if (n > ctx) {
            fprintf(stderr, "kvattn batch: prompt %d is %d tokens, longer than the context of %lld (-c)\n", i + 1, n,
                    (long long)ctx);
            rc = 1;
        } else if (kvattn_engine_submit(e, ids_i, n, &rp, &ids[i]) != KVATTN_OK) {
            fprintf(stderr, "kvattn batch: prompt %d: %s\n", i + 1, kvattn_last_error());
            rc = 1;
        } else {
            last_prompt_token[i] = ids_i[n - 1];
        }
        free(ids_i);
    }
    const double t0 = cli_now();
    int active = rc == 0 ? 1 : 0, peak_used = 0;
    while (rc == 0 && active > 0) {
        if (kvattn_engine_step(e, &active) != KVATTN_OK) {
            fprintf(stderr, "kvattn batch: %s\n", kvattn_last_error());
            rc = 1;
        }
        kvattn_engine_stats s;
        kvattn_engine_get_stats(e, &s);
        if (s.pool.used > peak_used) peak_used = s.pool.used;
        if (cli_stderr_is_tty())
            fprintf(stderr, "  %llu of %d done, %d running, %d waiting, %llu tokens...\r",
                    (unsigned long long)s.finished, n_lines, s.running, s.waiting, (unsigned long long)s.generated);
    }
    const double secs = cli_now() - t0;
    if (rc == 0) {
        kvattn_engine_stats s;
        kvattn_engine_get_stats(e, &s);
        if (o.json) printf("{\"requests\": [");
        for (int i = 0; i < n_lines; i++) {
            const int32_t *out;
            int n;
            kvattn_request_state state;
            kvattn_engine_result(e, ids[i], &out, &n, &state);
            size_t len = 0;
            char *gen = tokens_text(tok, last_prompt_token[i], out, n, &len);
            if (o.json) {
                printf("%s{\"prompt\": ", i ? ", " : "");
                cli_json_string(stdout, lines[i], strlen(lines[i]));
                printf(", \"tokens\": [");
                for (int j = 0; j < n; j++) printf("%s%d", j ? ", " : "", out[j]);
                printf("], \"text\": ");
                cli_json_string(stdout, gen ? gen : "", gen ? len : 0);
                printf(", \"finish_reason\": \"%s\"}", finish_names[state]);
            } else {
                printf("%s%s\n\n", lines[i], gen ? gen : "");
            }
            if (state == KVATTN_REQUEST_FAILED) rc = 1;
            free(gen);
        }
        char b1[32], b2[32];
        if (o.json)
            printf("], \"generated\": %llu, \"seconds\": %.3f, \"gen_tok_per_s\": %.2f, \"steps\": %llu, "
                   "\"preemptions\": %llu, \"prompt_tokens_run\": %llu, \"prompt_tokens_reused\": %llu, "
                   "\"prefix_lookups\": %llu, \"prefix_hits\": %llu, \"kv_blocks\": %d, \"kv_block_tokens\": %d, "
                   "\"kv_blocks_peak\": %d, \"kv_bytes\": %llu, \"parallel\": %d}\n",
                   (unsigned long long)s.generated, secs, s.generated / secs, (unsigned long long)s.steps,
                   (unsigned long long)s.preemptions, (unsigned long long)s.prompt_tokens,
                   (unsigned long long)s.reused_tokens, (unsigned long long)s.pool.lookups,
                   (unsigned long long)s.pool.hits, s.pool.n_blocks, s.pool.block_tokens, peak_used,
                   (unsigned long long)s.pool.bytes, ep.max_batch);
        else
            fprintf(stderr,
                    "%d requests, %d at a time: %llu tokens generated in %.2f s (%.1f tok/s) over %llu steps; "
                    "prompts: %llu tokens run, %llu reused from cached blocks; %llu preemptions; KV pool %s (%d "
                    "blocks of %d tokens, at most %d in use, %s a token)\n",
                    n_lines, ep.max_batch, (unsigned long long)s.generated, secs, s.generated / secs,
                    (unsigned long long)s.steps, (unsigned long long)s.prompt_tokens,
                    (unsigned long long)s.reused_tokens, (unsigned long long)s.preemptions,
                    cli_bytes((double)s.pool.bytes, b1, sizeof b1), s.pool.n_blocks, s.pool.block_tokens, peak_used,
                    cli_bytes((double)s.pool.bytes_per_token, b2, sizeof b2));
        if (rc) fprintf(stderr, "kvattn batch: a request did not fit the KV pool (--kv-mem)\n");
    }
    kvattn_engine_free(e);
    kvattn_model_free(m);
    free(ids), free(last_prompt_token), free(text), free(lines);
    return rc;
}
