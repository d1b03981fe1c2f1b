#include "calib.h"

#include "cli_util.h"
#include "eval_score.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One stream of self_generate: a session sampling one window at a time. */
typedef struct {
    kvattn_session *session;
    kvattn_sampler sampler;
    int32_t *window; /* the window's tokens so far [ctx] */
    int len;
} sample_stream;

/* n tokens the model samples itself at `temperature`, in windows of ctx that
 * each start from BOS (a window also ends at the end token); BOS left out.
 * `streams` windows are sampled at once, one token each per batched pass;
 * stream i samples with seed + i, and a window joins the text when it ends,
 * so one stream gives exactly the text one session sampling alone gives.
 * With save, the text too, one window per paragraph. */
static int32_t *self_generate(const kvattn_model *m, int n, int ctx, int streams, float temperature, uint64_t seed,
                              FILE *save) {
    const kvattn_tokenizer *tok = kvattn_model_tokenizer(m);
    const int V = (int)kvattn_model_describe(m)->vocab_size, bos = kvattn_tokenizer_bos(tok);
    const int eos = kvattn_tokenizer_eos(tok), start = bos >= 0 ? bos : 0;
    if (streams > KVATTN_DECODE_BATCH_MAX) streams = KVATTN_DECODE_BATCH_MAX;
    if (streams < 1) streams = 1;
    int32_t *out = malloc(sizeof(int32_t) * (size_t)n), *cur = malloc(sizeof(int32_t) * (size_t)streams);
    float *logits = malloc(sizeof(float) * (size_t)V * streams);
    sample_stream *ss = calloc((size_t)streams, sizeof *ss);
    kvattn_session **sessions = calloc((size_t)streams, sizeof *sessions);
    int ok = out && cur && logits && ss && sessions, made = 0;
    for (; ok && made < streams; made++) {
        const kvattn_sampler_params sp = {.temperature = temperature, .top_p = 1.0f, .seed = seed + (uint64_t)made};
        kvattn_sampler_init(&ss[made].sampler, &sp);
        ss[made].window = malloc(sizeof(int32_t) * (size_t)ctx);
        ok = ss[made].window &&
             kvattn_session_create(m, ctx, KVATTN_TYPE_F32, KVATTN_MLA_ABSORBED, &ss[made].session) == KVATTN_OK;
        sessions[made] = ss[made].session;
        cur[made] = start;
    }
    int got = 0;
    const double t0 = cli_now();
    double shown = t0;
    while (ok && got < n) {
        if (kvattn_session_decode_batch(sessions, streams, cur, logits) != KVATTN_OK) {
            ok = 0;
            break;
        }
        for (int i = 0; i < streams && got < n; i++) {
            sample_stream *s = &ss[i];
            const int next = kvattn_sample(&s->sampler, logits + (size_t)i * V, V);
            if (next < 0) {
                ok = 0;
                break;
            }
            const int ends = next == bos || next == eos;
            if (!ends) s->window[s->len++] = cur[i] = next;
            if (!ends && s->len < ctx) continue;
            /* the window is done: into the text, and the stream starts another */
            const int take = s->len < n - got ? s->len : n - got;
            memcpy(out + got, s->window, sizeof(int32_t) * (size_t)take);
            for (int j = 0; save && j < take; j++) {
                char piece[256];
                const int nb =
                    kvattn_token_to_bytes(tok, j ? s->window[j - 1] : bos, s->window[j], piece, (int)sizeof piece);
                /* a byte token can be NUL, which no text file holds (--data refuses it) */
                for (int b = 0; b < nb; b++)
                    if (piece[b]) fputc(piece[b], save);
            }
            if (save) fputs("\n\n", save);
            got += take;
            s->len = 0, cur[i] = start;
            if (!(ok = kvattn_session_rewind(s->session, 0) == KVATTN_OK)) break;
        }
        if (cli_stderr_is_tty() && (cli_now() - shown > 0.25 || got >= n)) {
            shown = cli_now();
            fprintf(stderr, "\rsampling text          %d/%d tokens (%.0f tok/s)   ", got, n, got / (shown - t0));
        }
    }
    if (cli_stderr_is_tty()) fprintf(stderr, "\n");
    for (int i = 0; i < made; i++) {
        kvattn_sampler_free(&ss[i].sampler);
        kvattn_session_free(ss[i].session);
        free(ss[i].window);
    }
    free(ss), free(sessions), free(cur), free(logits);
    if (!ok) {
        free(out);
        return NULL;
    }
    return out;
}

int calib_tokens(const kvattn_model *m, const calib_opts *c, int32_t **ids, int *n_ids, char *source,
                 size_t source_size, const char *cmd) {
    if (c->file) {
        snprintf(source, source_size, "%s", c->file);
        return eval_tokenize_file(c->file, kvattn_model_tokenizer(m), 0, ids, n_ids, cmd, "--calib ");
    }
    FILE *save = c->save ? fopen(c->save, "wb") : NULL;
    if (c->save && !save) {
        fprintf(stderr, "kvattn %s: --save-calib %s: cannot write\n", cmd, c->save);
        return 1;
    }
    const float temperature = c->temperature > 0 ? (float)c->temperature : 1.0f;
    *ids = self_generate(m, (int)c->n_tokens, (int)c->ctx, c->streams > 0 ? (int)c->streams : 1, temperature,
                         (uint64_t)c->seed, save);
    *n_ids = *ids ? (int)c->n_tokens : 0;
    int rc = 0;
    if (!*ids) rc = fprintf(stderr, "kvattn %s: sampling calibration text: %s\n", cmd, kvattn_last_error()) > 0;
    if (save && fclose(save) != 0 && !rc)
        rc = fprintf(stderr, "kvattn %s: --save-calib %s: write failed\n", cmd, c->save) > 0;
    if (rc) {
        free(*ids);
        *ids = NULL, *n_ids = 0;
    }
    snprintf(source, source_size, "text the model sampled itself (temperature %g, seed %lld)", (double)temperature,
             (long long)c->seed);
    return rc;
}
