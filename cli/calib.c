#include "calib.h"

#include "cli_util.h"
#include "eval_score.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* n tokens the model samples itself at temperature 1, in windows of ctx that
 * each start from BOS (a window also ends at the end token); BOS left out.
 * With save, the text too, one window per paragraph. */
static int32_t *self_generate(const kvattn_model *m, int n, int ctx, uint64_t seed, FILE *save) {
    const kvattn_tokenizer *tok = kvattn_model_tokenizer(m);
    const int V = (int)kvattn_model_describe(m)->vocab_size, bos = kvattn_tokenizer_bos(tok);
    const int eos = kvattn_tokenizer_eos(tok);
    int32_t *out = malloc(sizeof(int32_t) * (size_t)n);
    float *logits = malloc(sizeof(float) * (size_t)V);
    kvattn_session *s = NULL;
    kvattn_sampler_params sp = {.temperature = 1.0f, .top_p = 1.0f, .seed = seed};
    kvattn_sampler smp;
    kvattn_sampler_init(&smp, &sp);
    int got = 0,
        ok = out && logits && kvattn_session_create(m, ctx, KVATTN_TYPE_F32, KVATTN_MLA_ABSORBED, &s) == KVATTN_OK;
    double t0 = cli_now();
    while (ok && got < n) {
        int32_t cur = bos >= 0 ? bos : 0;
        ok = kvattn_session_rewind(s, 0) == KVATTN_OK;
        for (int pos = 0; ok && pos < ctx && got < n; pos++) {
            if (kvattn_session_decode(s, &cur, 1, logits, 0) != KVATTN_OK) ok = 0;
            else if ((cur = kvattn_sample(&smp, logits, V)) < 0) ok = 0;
            else if (cur == bos || cur == eos) break;
            else {
                char piece[256];
                const int nb =
                    save ? kvattn_token_to_bytes(tok, got && pos ? out[got - 1] : bos, cur, piece, (int)sizeof piece)
                         : 0;
                if (nb > 0) fwrite(piece, 1, (size_t)nb, save);
                out[got++] = cur;
            }
        }
        if (save) fputs("\n\n", save);
        if (cli_stderr_is_tty())
            fprintf(stderr, "\rsampling calibration text          %d/%d tokens (%.0f tok/s)   ", got, n,
                    got / (cli_now() - t0));
    }
    if (cli_stderr_is_tty()) fprintf(stderr, "\n");
    kvattn_sampler_free(&smp);
    kvattn_session_free(s);
    free(logits);
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
    *ids = self_generate(m, (int)c->n_tokens, (int)c->ctx, (uint64_t)c->seed, save);
    *n_ids = *ids ? (int)c->n_tokens : 0;
    int rc = 0;
    if (!*ids) rc = fprintf(stderr, "kvattn %s: sampling calibration text: %s\n", cmd, kvattn_last_error()) > 0;
    if (save && fclose(save) != 0 && !rc)
        rc = fprintf(stderr, "kvattn %s: --save-calib %s: write failed\n", cmd, c->save) > 0;
    if (rc) {
        free(*ids);
        *ids = NULL, *n_ids = 0;
    }
    snprintf(source, source_size, "text the model sampled itself (temperature 1, seed %lld)", (long long)c->seed);
    return rc;
}
