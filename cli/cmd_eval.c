/* kvattn eval: a model's perplexity over a text, and with --ref how far its
 * next-token distributions are from a reference model's over the same windows
 * (the figures llama-perplexity --kl-divergence reports). */
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

/* Prints an error and returns the exit code 1. */
static int complain(const char *fmt, ...) KV_CLI_PRINTF(1, 2);
static int complain(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    return 1;
}

/* One window of the text: tokens[0..n) run from position 0; positions
 * first..n-2 are scored, each predicting the token after it. */
typedef struct {
    int32_t *tokens;
    int n, first;
    int64_t text_pos; /* where tokens[1] is in the text's tokens (for --logits-out) */
} eval_window;

/* Log-softmax of logits [V] into lp [V], in double. */
static void log_softmax(const float *logits, double *lp, int V) {
    float mx = logits[0];
    for (int j = 1; j < V; j++) mx = fmaxf(mx, logits[j]);
    double z = 0;
    for (int j = 0; j < V; j++) z += exp((double)logits[j] - mx);
    const double lse = mx + log(z);
    for (int j = 0; j < V; j++) lp[j] = (double)logits[j] - lse;
}

static int argmax(const double *x, int V) {
    int best = 0;
    for (int j = 1; j < V; j++)
        if (x[j] > x[best]) best = j;
    return best;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* llama-perplexity's percentile: linear between the two nearest ranks. */
static double percentile(const double *sorted, int64_t n, double fraction) {
    const double p = fraction * (double)(n - 1);
    const int64_t i = (int64_t)p;
    const int64_t j = i + 1 < n ? i + 1 : n - 1;
    return (1.0 - (p - (double)i)) * sorted[i] + (p - (double)i) * sorted[j];
}

static void write_logits_line(FILE *lf, const eval_window *w, int p, const double *lp, int V, int top) {
    fprintf(lf, "{\"pos\": %lld, \"token\": %d, \"logprob\": %.6f, \"top\": [", (long long)(w->text_pos + p),
            w->tokens[p + 1], lp[w->tokens[p + 1]]);
    const int k = top < V ? top : V;
    unsigned char *used = calloc((size_t)V, 1);
    for (int r = 0; r < k && used; r++) { /* k largest, lowest id on ties */
        int best = -1;
        for (int j = 0; j < V; j++)
            if (!used[j] && (best < 0 || lp[j] > lp[best])) best = j;
        used[best] = 1;
        fprintf(lf, "%s[%d, %.6f]", r ? ", " : "", best, lp[best]);
    }
    free(used);
    fprintf(lf, "]}\n");
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
                                       "--ref",
                                       "--ref-z",
                                       "--score-second-half",
                                       "--logits-out",
                                       "--top",
                                       "--json",
                                       NULL};
    int rc = model_opts_parse(argc, argv, &o, "eval",
                              "-m MODEL -f TEXT [-z TOKENIZER] [-c CTX] [--ref MODEL] [--score-second-half] [options]",
                              "Perplexity over TEXT in windows of CTX tokens (each window starts with BOS); with\n"
                              "--ref, the KL divergence from a reference model and how often their top tokens agree.",
                              take);
    if (rc) return rc > 0 ? 0 : 2;
    if (!o.file) {
        fprintf(stderr, "kvattn eval: -f TEXT is required\n");
        return 2;
    }
    if (o.ref_tokenizer && !o.ref) {
        fprintf(stderr, "kvattn eval: --ref-z is the tokenizer of --ref, which is not given\n");
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
    kvattn_model *m = model_load(&o, "eval", 1), *ref = NULL;
    if (m && o.ref) {
        model_opts ro = o;
        ro.model = o.ref, ro.tokenizer = o.ref_tokenizer;
        ref = model_load(&ro, "eval", 0);
        if (!ref) rc = 1;
        else if (kvattn_model_describe(ref)->vocab_size != kvattn_model_describe(m)->vocab_size)
            rc = complain("kvattn eval: --ref %s has a vocabulary of %lld tokens, -m %s one of %lld: they cannot be "
                          "compared\n",
                          o.ref, (long long)kvattn_model_describe(ref)->vocab_size, o.model,
                          (long long)kvattn_model_describe(m)->vocab_size);
    }
    if (!m || rc) {
        kvattn_model_free(ref);
        kvattn_model_free(m);
        free(text);
        return 1;
    }
    const kvattn_model_desc *d = kvattn_model_describe(m);
    const kvattn_tokenizer *tok = kvattn_model_tokenizer(m);
    const int V = (int)d->vocab_size, bos = kvattn_tokenizer_bos(tok);
    const int64_t ctx = model_context(m, o.ctx, "eval");
    int max_tokens = (int)(strlen(text) * 4 + 8), n_tok = 0;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)max_tokens);
    float *logits = malloc(sizeof(float) * (size_t)ctx * V);
    float *ref_logits = ref ? malloc(sizeof(float) * (size_t)ctx * V) : NULL;
    double *lp = malloc(sizeof(double) * (size_t)V), *ref_lp = malloc(sizeof(double) * (size_t)V);
    int32_t *win_tokens = malloc(sizeof(int32_t) * (size_t)ctx);
    FILE *lf = o.logits_out ? fopen(o.logits_out, "w") : NULL;
    kvattn_session *s = NULL, *rs = NULL;
    if (!ids || !logits || (ref && !ref_logits) || !lp || !ref_lp || !win_tokens)
        rc = complain("kvattn eval: out of memory for a context of %lld\n", (long long)ctx);
    else if (ctx < 2)
        rc = complain("kvattn eval: a context of %lld scores nothing; give -c 2 or more\n", (long long)ctx);
    else if (kvattn_tokenize(tok, text, o.score_second_half, ids, max_tokens, &n_tok) != KVATTN_OK)
        rc = complain("kvattn eval: %s\n", kvattn_last_error());
    else if (n_tok < 1) rc = complain("kvattn eval: %s: no tokens to score\n", o.file);
    else if (o.score_second_half && n_tok < 2 * ctx)
        rc = complain("kvattn eval: %s: %d tokens; --score-second-half needs at least twice the context (%lld), as "
                      "llama-perplexity does\n",
                      o.file, n_tok, (long long)(2 * ctx));
    else if (o.logits_out && !lf) rc = complain("kvattn eval: --logits-out %s: cannot write\n", o.logits_out);
    else if (kvattn_session_create_kv(m, (int)ctx, o.k_type, o.v_type, o.mla, &s) != KVATTN_OK ||
             (ref && kvattn_session_create_kv(ref, (int)ctx, o.k_type, o.v_type, o.mla, &rs) != KVATTN_OK))
        rc = complain("kvattn eval: %s\n", kvattn_last_error());
    /* Default: windows of BOS + ctx-1 text tokens, every token scored.
     * --score-second-half: chunks of ctx tokens of BOS + text, the first of
     * each replaced by BOS, scored from ctx/2 (llama-perplexity). */
    const int per_window = o.score_second_half ? (int)ctx : (int)ctx - 1;
    const int n_windows = rc ? 0 : o.score_second_half ? n_tok / (int)ctx : (n_tok + per_window - 1) / per_window;
    int64_t max_scored = (int64_t)n_windows * (int64_t)ctx, scored = 0, agree = 0;
    double *kl = ref && n_windows ? malloc(sizeof(double) * (size_t)max_scored) : NULL;
    if (ref && n_windows && !kl) rc = complain("kvattn eval: out of memory\n");
    double nll = 0.0, ref_nll = 0.0, kl_sum = 0.0, t0 = cli_now();
    for (int wi = 0; rc == 0 && wi < n_windows; wi++) {
        eval_window w = {win_tokens, 0, 0, 0};
        const int start = wi * per_window;
        if (o.score_second_half) {
            w.n = (int)ctx, w.first = (int)ctx / 2, w.text_pos = start;
            memcpy(win_tokens, ids + start, sizeof(int32_t) * (size_t)ctx);
            if (bos >= 0) win_tokens[0] = bos;
        } else {
            const int n = n_tok - start < per_window ? n_tok - start : per_window;
            w.n = n + 1, w.first = 0, w.text_pos = start;
            win_tokens[0] = bos >= 0 ? bos : ids[start];
            memcpy(win_tokens + 1, ids + start, sizeof(int32_t) * (size_t)n);
        }
        if (kvattn_session_rewind(s, 0) != KVATTN_OK ||
            kvattn_session_decode(s, w.tokens, w.n, logits, 1) != KVATTN_OK ||
            (ref && (kvattn_session_rewind(rs, 0) != KVATTN_OK ||
                     kvattn_session_decode(rs, w.tokens, w.n, ref_logits, 1) != KVATTN_OK))) {
            rc = complain("kvattn eval: %s\n", kvattn_last_error());
            break;
        }
        for (int p = w.first; p < w.n - 1; p++) {
            const int next = w.tokens[p + 1];
            log_softmax(logits + (size_t)p * V, lp, V);
            nll -= lp[next];
            if (ref) {
                log_softmax(ref_logits + (size_t)p * V, ref_lp, V);
                ref_nll -= ref_lp[next];
                double k = 0.0;
                for (int j = 0; j < V; j++) k += exp(ref_lp[j]) * (ref_lp[j] - lp[j]);
                kl[scored] = k > 0.0 ? k : 0.0; /* a sum of rounding errors when the two agree */
                kl_sum += kl[scored];
                agree += argmax(lp, V) == argmax(ref_lp, V);
            }
            if (lf) write_logits_line(lf, &w, p, lp, V, (int)o.logits_top);
            scored++;
        }
        if (cli_stderr_is_tty()) {
            fprintf(stderr, "\r[%d/%d] %lld tokens, perplexity %.4f", wi + 1, n_windows, (long long)scored,
                    exp(nll / (double)scored));
            if (ref)
                fprintf(stderr, ", ref %.4f, KL %.5f, top-1 %.2f%%", exp(ref_nll / (double)scored),
                        kl_sum / (double)scored, 100.0 * (double)agree / (double)scored);
            fprintf(stderr, ", %.1f tok/s   ", (double)scored / (cli_now() - t0));
        }
    }
    if (cli_stderr_is_tty() && n_windows) fprintf(stderr, "\n");
    if (rc == 0 && scored == 0) rc = complain("kvattn eval: %s: no tokens to score\n", o.file);
    if (rc == 0) {
        const double ppl = exp(nll / (double)scored), secs = cli_now() - t0;
        double ref_ppl = 0, kl_mean = 0, kl_p99 = 0, kl_median = 0, top1 = 0;
        if (ref) {
            qsort(kl, (size_t)scored, sizeof(double), cmp_double);
            ref_ppl = exp(ref_nll / (double)scored), kl_mean = kl_sum / (double)scored;
            kl_p99 = percentile(kl, scored, 0.99), kl_median = percentile(kl, scored, 0.5);
            top1 = (double)agree / (double)scored;
        }
        if (o.json) {
            printf("{\"tokens\": %lld, \"windows\": %d, \"ctx\": %lld, \"scoring\": \"%s\", \"nll\": %.6f, "
                   "\"ppl\": %.6f, \"perplexity\": %.6f, \"tok_per_s\": %.2f",
                   (long long)scored, n_windows, (long long)ctx, o.score_second_half ? "second-half" : "all",
                   nll / (double)scored, ppl, ppl, (double)scored / secs);
            if (ref)
                printf(", \"ref_ppl\": %.6f, \"ln_ppl_ratio\": %.6f, \"kl_mean\": %.6f, \"kl_median\": %.6f, "
                       "\"kl_p99\": %.6f, \"kl_max\": %.6f, \"top1_agree\": %.6f",
                       ref_ppl, log(ppl / ref_ppl), kl_mean, kl_median, kl_p99, kl[scored - 1], top1);
            printf("}\n");
        } else {
            printf("perplexity %.4f over %lld tokens (%d windows of %s%lld, %s, %.1f tok/s)\n", ppl, (long long)scored,
                   n_windows, o.score_second_half ? "" : "up to ", (long long)ctx,
                   o.score_second_half ? "second half of each scored" : "every token scored", (double)scored / secs);
            if (ref) {
                printf("reference  %.4f (%s); ln(ppl/ref) %+.5f\n", ref_ppl, o.ref, log(ppl / ref_ppl));
                printf("KL(ref || model) per token: mean %.6f, median %.6f, 99th percentile %.6f, max %.6f\n", kl_mean,
                       kl_median, kl_p99, kl[scored - 1]);
                printf("top-1 agreement %.4f%%\n", 100.0 * top1);
            }
        }
    }
    if (lf) fclose(lf);
    free(kl), free(win_tokens), free(ids), free(logits), free(ref_logits), free(lp), free(ref_lp), free(text);
    kvattn_session_free(s);
    kvattn_session_free(rs);
    kvattn_model_free(ref);
    kvattn_model_free(m);
    return rc;
}
