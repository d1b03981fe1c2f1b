#include "eval_score.h"

#include "cli_util.h"
#include "model_cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* llama-perplexity's --kl-divergence-base record of one position: two floats
 * (scale, the lowest log-probability kept), then each token's log-probability
 * as a 16-bit step above it, over a range of at most 16 nats; padded to
 * 2·ceil(V/2) + 4 u16. */
static void write_kld_record(FILE *f, const float *logits, int V, uint16_t *rec) {
    float mx = logits[0], mn = logits[0];
    for (int j = 1; j < V; j++) mx = fmaxf(mx, logits[j]), mn = fminf(mn, logits[j]);
    mn = fmaxf(mn, mx - 16.0f);
    double z = 0.0;
    for (int j = 0; j < V; j++) z += expf(logits[j] - mx);
    const float lse = (float)log(z), min_lp = mn - mx - lse, scale = (mx - mn) / 65535.0f;
    const int nv = 2 * ((V + 1) / 2) + 4;
    memset(rec, 0, sizeof(uint16_t) * (size_t)nv);
    memcpy(rec, &scale, 4);
    memcpy(rec + 2, &min_lp, 4);
    for (int j = 0; scale > 0.0f && j < V; j++)
        rec[4 + j] = logits[j] > mn ? (uint16_t)lrintf((logits[j] - mn) / scale) : 0;
    fwrite(rec, sizeof(uint16_t), (size_t)nv, f);
}

int eval_tokenize_file(const char *path, const kvattn_tokenizer *tok, int add_bos, int32_t **ids, int *n_ids,
                       const char *cmd, const char *what) {
    *ids = NULL, *n_ids = 0;
    FILE *f = fopen(path, "rb");
    size_t len = 0;
    char *text = f ? read_file_bytes(f, &len) : NULL;
    if (f) fclose(f);
    int rc = 0;
    if (!text) rc = fprintf(stderr, "kvattn %s: %s%s: cannot read\n", cmd, what, path) > 0;
    else if (strlen(text) != len) /* the tokenizer reads a C string: a NUL would end the text early */
        rc = fprintf(stderr, "kvattn %s: %s%s: holds a NUL byte at offset %zu; give a text file\n", cmd, what, path,
                     strlen(text)) > 0;
    else if (len > (size_t)(INT32_MAX / 4 - 8))
        rc = fprintf(stderr, "kvattn %s: %s%s: %zu bytes is more text than one run takes\n", cmd, what, path, len) > 0;
    else {
        const int max = (int)(len * 4 + 8);
        *ids = malloc(sizeof(int32_t) * (size_t)max);
        if (!*ids) rc = fprintf(stderr, "kvattn %s: out of memory for %s%s\n", cmd, what, path) > 0;
        else if (kvattn_tokenize(tok, text, add_bos, *ids, max, n_ids) != KVATTN_OK)
            rc = fprintf(stderr, "kvattn %s: %s%s: %s\n", cmd, what, path, kvattn_last_error()) > 0;
        else if (*n_ids < 1) rc = fprintf(stderr, "kvattn %s: %s%s: no tokens\n", cmd, what, path) > 0;
    }
    free(text);
    if (rc) {
        free(*ids);
        *ids = NULL, *n_ids = 0;
    }
    return rc;
}

/* A window through a session from its start: as one prompt, or (decode) a
 * token at a time; logits [w->n][V]. */
static kvattn_status feed(kvattn_session *s, const eval_window *w, int decode, size_t V, float *logits) {
    kvattn_status st = kvattn_session_rewind(s, 0);
    if (st != KVATTN_OK || !decode) return st != KVATTN_OK ? st : kvattn_session_decode(s, w->tokens, w->n, logits, 1);
    for (int p = 0; p < w->n && st == KVATTN_OK; p++)
        st = kvattn_session_decode(s, w->tokens + p, 1, logits + (size_t)p * V, 1);
    return st;
}

static kvattn_status feed_ref(kvattn_session *rs, const eval_window *w, const eval_setup *e, size_t V, float *logits) {
    const int was = kvattn_exact();
    if (e->ref_exact) kvattn_set_exact(1);
    const kvattn_status st = feed(rs, w, e->decode, V, logits);
    kvattn_set_exact(was);
    return st;
}

int eval_score(const kvattn_model *m, const kvattn_model *ref, const int32_t *ids, int n_tok, const eval_setup *e,
               eval_stats *out) {
    memset(out, 0, sizeof *out);
    const int V = (int)kvattn_model_describe(m)->vocab_size, bos = kvattn_tokenizer_bos(kvattn_model_tokenizer(m));
    const int64_t ctx = e->ctx;
    int rc = 0;
    if (ref && kvattn_model_describe(ref)->vocab_size != V) {
        fprintf(stderr,
                "kvattn %s: the reference has a vocabulary of %lld tokens, the model one of %d: they cannot be "
                "compared\n",
                e->cmd, (long long)kvattn_model_describe(ref)->vocab_size, V);
        return 1;
    }
    if (ctx < 2) {
        fprintf(stderr, "kvattn %s: a context of %lld scores nothing; give -c 2 or more\n", e->cmd, (long long)ctx);
        return 1;
    }
    if (e->second_half && n_tok < 2 * ctx) {
        fprintf(stderr,
                "kvattn %s: %d tokens; --score-second-half needs at least twice the context (%lld), as "
                "llama-perplexity does\n",
                e->cmd, n_tok, (long long)(2 * ctx));
        return 1;
    }
    float *logits = malloc(sizeof(float) * (size_t)ctx * V);
    float *ref_logits = ref ? malloc(sizeof(float) * (size_t)ctx * V) : NULL;
    double *lp = malloc(sizeof(double) * (size_t)V), *ref_lp = malloc(sizeof(double) * (size_t)V);
    int32_t *win_tokens = malloc(sizeof(int32_t) * (size_t)ctx);
    kvattn_session *s = NULL, *rs = NULL;
    /* Default: windows of BOS + ctx-1 text tokens, every token scored.
     * --score-second-half: chunks of ctx tokens of BOS + text, the first of
     * each replaced by BOS, scored from ctx/2 (llama-perplexity). */
    const int per_window = e->second_half ? (int)ctx : (int)ctx - 1;
    const int n_windows = e->second_half ? n_tok / (int)ctx : (n_tok + per_window - 1) / per_window;
    const int64_t max_scored = (int64_t)n_windows * (int64_t)ctx;
    double *kl = ref ? malloc(sizeof(double) * (size_t)(max_scored ? max_scored : 1)) : NULL;
    if (!logits || (ref && (!ref_logits || !kl)) || !lp || !ref_lp || !win_tokens)
        rc = fprintf(stderr, "kvattn %s: out of memory for a context of %lld\n", e->cmd, (long long)ctx) > 0;
    else if (kvattn_session_create_kv(m, (int)ctx, e->k_type, e->v_type, e->mla, &s) != KVATTN_OK ||
             (ref && kvattn_session_create_kv(ref, (int)ctx, e->k_type, e->v_type, e->mla, &rs) != KVATTN_OK))
        rc = fprintf(stderr, "kvattn %s: %s\n", e->cmd, kvattn_last_error()) > 0;
    uint16_t *kld_rec = e->kld_out ? malloc(sizeof(uint16_t) * (size_t)(2 * ((V + 1) / 2) + 4)) : NULL;
    if (rc == 0 && e->kld_out) { /* header: "_logits_", n_ctx, n_vocab, n_chunk, the chunks' tokens */
        const int32_t head[3] = {(int32_t)ctx, V, n_windows};
        if (!kld_rec) rc = fprintf(stderr, "kvattn %s: out of memory\n", e->cmd) > 0;
        else {
            fwrite("_logits_", 1, 8, e->kld_out);
            fwrite(head, sizeof(int32_t), 3, e->kld_out);
            fwrite(ids, sizeof(int32_t), (size_t)n_windows * (size_t)ctx, e->kld_out);
        }
    }
    int64_t scored = 0, agree = 0;
    double nll = 0.0, ref_nll = 0.0, kl_sum = 0.0, t0 = cli_now();
    for (int wi = 0; rc == 0 && wi < n_windows; wi++) {
        eval_window w = {win_tokens, 0, 0, 0};
        const int start = wi * per_window;
        if (e->second_half) {
            w.n = (int)ctx, w.first = (int)ctx / 2, w.text_pos = start;
            memcpy(win_tokens, ids + start, sizeof(int32_t) * (size_t)ctx);
            if (bos >= 0) win_tokens[0] = bos;
        } else {
            const int n = n_tok - start < per_window ? n_tok - start : per_window;
            w.n = n + 1, w.first = 0, w.text_pos = start;
            win_tokens[0] = bos >= 0 ? bos : ids[start];
            memcpy(win_tokens + 1, ids + start, sizeof(int32_t) * (size_t)n);
        }
        if (feed(s, &w, e->decode, (size_t)V, logits) != KVATTN_OK ||
            (ref && feed_ref(rs, &w, e, (size_t)V, ref_logits) != KVATTN_OK)) {
            rc = fprintf(stderr, "kvattn %s: %s\n", e->cmd, kvattn_last_error()) > 0;
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
            if (e->logits_out) write_logits_line(e->logits_out, &w, p, lp, V, e->logits_top);
            if (e->kld_out) write_kld_record(e->kld_out, logits + (size_t)p * V, V, kld_rec);
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
    if (rc == 0 && scored == 0) rc = fprintf(stderr, "kvattn %s: no tokens to score\n", e->cmd) > 0;
    if (rc == 0) {
        out->tokens = scored, out->windows = n_windows, out->secs = cli_now() - t0;
        out->nll = nll / (double)scored, out->ppl = exp(out->nll);
        if (ref) {
            qsort(kl, (size_t)scored, sizeof(double), cmp_double);
            out->ref_ppl = exp(ref_nll / (double)scored), out->kl_mean = kl_sum / (double)scored;
            out->kl_p99 = percentile(kl, scored, 0.99), out->kl_median = percentile(kl, scored, 0.5);
            out->kl_max = kl[scored - 1], out->top1 = (double)agree / (double)scored;
        }
    }
    free(kld_rec), free(kl), free(win_tokens), free(logits), free(ref_logits), free(lp), free(ref_lp);
    kvattn_session_free(s);
    kvattn_session_free(rs);
    return rc;
}
