/* kvattn info and kvattn eval: a model file described, and its perplexity over a text. */
#include "cli_util.h"
#include "commands.h"
#include "model_cli.h"

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

int cmd_info(int argc, char **argv) {
    model_opts o;
    model_opts_defaults(&o);
    static const char *const take[] = {"-m, --model", "-z", "--kv-type", "--json", NULL};
    int rc = model_opts_parse(argc, argv, &o, "info", "-m MODEL [-z TOKENIZER] [--kv-type TYPE] [--json]",
                              "Architecture, shapes, attention design, parameters, KV bytes per token, context length.",
                              take);
    if (rc) return rc > 0 ? 0 : 2;
    kvattn_model *m = model_load(&o, "info", 0);
    if (!m) return 1;
    const kvattn_model_desc *d = kvattn_model_describe(m);
    const kvattn_layer_config *a = &d->attn;
    const kvattn_tokenizer *tok = kvattn_model_tokenizer(m);
    char design[32], b1[32], b2[32];
    kvattn_config_design_name(a, design, sizeof design);
    int64_t params = kvattn_model_params(d);
    size_t bpt = kvattn_kv_bytes_per_token(a, d->n_layers, o.k_type);
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
               (unsigned long long)kvattn_model_weight_bytes(m), kvattn_type_name(o.k_type), bpt,
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
               kvattn_type_name(o.k_type), cli_bytes((double)bpt * (double)d->context_length, b2, sizeof b2),
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

int cmd_eval(int argc, char **argv) {
    model_opts o;
    model_opts_defaults(&o);
    static const char *const take[] = {"-m, --model",
                                       "-z",
                                       "-f, --file",
                                       "-c, --ctx-size",
                                       "-t, --threads",
                                       "--kv-type",
                                       "-ctk, --cache-type-k",
                                       "-ctv, --cache-type-v",
                                       "--mla",
                                       "--logits-out",
                                       "--top",
                                       "--json",
                                       NULL};
    int rc = model_opts_parse(argc, argv, &o, "eval", "-m MODEL -f TEXT [-z TOKENIZER] [-c CTX] [options]",
                              "Perplexity over TEXT in windows of CTX tokens (each window starts with BOS).", take);
    if (rc) return rc > 0 ? 0 : 2;
    if (!o.file) {
        fprintf(stderr, "kvattn eval: -f TEXT is required\n");
        return 2;
    }
    FILE *tf = fopen(o.file, "rb");
    size_t text_len = 0;
    char *text = tf ? read_file_bytes(tf, &text_len) : NULL;
    if (tf) fclose(tf);
    if (!text) {
        fprintf(stderr, "kvattn eval: %s: cannot read\n", o.file);
        return 1;
    }
    if (strlen(text) != text_len) { /* the tokenizer reads a C string: a NUL would end the text early */
        fprintf(stderr, "kvattn eval: %s: holds a NUL byte at offset %zu; give a text file\n", o.file, strlen(text));
        free(text);
        return 1;
    }
    kvattn_model *m = model_load(&o, "eval", 1);
    if (!m) {
        free(text);
        return 1;
    }
    const kvattn_model_desc *d = kvattn_model_describe(m);
    const kvattn_tokenizer *tok = kvattn_model_tokenizer(m);
    const int V = (int)d->vocab_size;
    int64_t ctx = model_context(m, o.ctx, "eval");
    int max_tokens = (int)(strlen(text) * 4 + 8), n_tok = 0;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)max_tokens);
    float *logits = malloc(sizeof(float) * (size_t)ctx * V);
    FILE *lf = o.logits_out ? fopen(o.logits_out, "w") : NULL;
    kvattn_session *s = NULL;
    if (!ids || !logits) rc = complain("kvattn eval: out of memory for a context of %lld\n", (long long)ctx);
    else if (kvattn_tokenize(tok, text, 0, ids, max_tokens, &n_tok) != KVATTN_OK)
        rc = complain("kvattn eval: %s\n", kvattn_last_error());
    else if (n_tok < 1) rc = complain("kvattn eval: %s: no tokens to score\n", o.file);
    else if (o.logits_out && !lf) rc = complain("kvattn eval: --logits-out %s: cannot write\n", o.logits_out);
    else if (kvattn_session_create_kv(m, (int)ctx, o.k_type, o.v_type, o.mla, &s) != KVATTN_OK)
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
