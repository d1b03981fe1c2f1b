/* kvattn eval: a model's perplexity over a text, and with --ref how far its
 * next-token distributions are from a reference model's over the same windows
 * (the figures llama-perplexity --kl-divergence reports). */
#include "cli_util.h"
#include "commands.h"
#include "eval_score.h"
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

int cmd_eval(int argc, char **argv) {
    model_opts o;
    model_opts_defaults(&o);
    static const char *const take[] = {"-m, --model",
                                       "-z",
                                       "-f, --file",
                                       "-c, --ctx-size",
                                       "-t, --threads",
                                       "--exact",
                                       "--fast-products",
                                       "--decode",
                                       "--ref-exact",
                                       "--kv-type",
                                       "-ctk, --cache-type-k",
                                       "-ctv, --cache-type-v",
                                       "--mla",
                                       "--ref",
                                       "--ref-z",
                                       "--score-second-half",
                                       "--logits-out",
                                       "--kld-base-out",
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
    if (o.ref_exact && (!o.ref || o.exact)) {
        fprintf(stderr, "kvattn eval: --ref-exact needs --ref, and not --exact (which makes both exact)\n");
        return 2;
    }
    if (o.ref_tokenizer && !o.ref) {
        fprintf(stderr, "kvattn eval: --ref-z is the tokenizer of --ref, which is not given\n");
        return 2;
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
    int32_t *ids = NULL;
    int n_tok = 0;
    if (m && !rc)
        rc = eval_tokenize_file(o.file, kvattn_model_tokenizer(m), o.score_second_half, &ids, &n_tok, "eval", "");
    FILE *lf = NULL;
    if (m && !rc && o.logits_out && !(lf = fopen(o.logits_out, "w")))
        rc = complain("kvattn eval: --logits-out %s: cannot write\n", o.logits_out);
    FILE *kf = NULL;
    if (m && !rc && o.kld_out && !o.score_second_half)
        rc = complain("kvattn eval: --kld-base-out needs --score-second-half (llama-perplexity's windows)\n");
    if (m && !rc && o.kld_out && !(kf = fopen(o.kld_out, "wb")))
        rc = complain("kvattn eval: --kld-base-out %s: cannot write\n", o.kld_out);
    eval_stats r;
    const eval_setup e = {.ctx = m ? model_context(m, o.ctx, "eval") : 0,
                          .second_half = o.score_second_half,
                          .k_type = o.k_type,
                          .v_type = o.v_type,
                          .mla = o.mla,
                          .logits_out = lf,
                          .kld_out = kf,
                          .logits_top = (int)o.logits_top,
                          .decode = o.decode,
                          .ref_exact = o.ref_exact,
                          .cmd = "eval"};
    if (!m) rc = 1;
    else if (!rc) rc = eval_score(m, ref, ids, n_tok, &e, &r);
    if (rc == 0) {
        if (o.json) {
            printf("{\"tokens\": %lld, \"windows\": %d, \"ctx\": %lld, \"scoring\": \"%s\", \"nll\": %.6f, "
                   "\"ppl\": %.6f, \"perplexity\": %.6f, \"tok_per_s\": %.2f, \"feed\": \"%s\", \"exact\": %s",
                   (long long)r.tokens, r.windows, (long long)e.ctx, o.score_second_half ? "second-half" : "all", r.nll,
                   r.ppl, r.ppl, (double)r.tokens / r.secs, o.decode ? "decode" : "prompt",
                   kvattn_exact() ? "true" : "false");
            if (ref)
                printf(", \"ref_ppl\": %.6f, \"ln_ppl_ratio\": %.6f, \"kl_mean\": %.9g, \"kl_median\": %.9g, "
                       "\"kl_p99\": %.9g, \"kl_max\": %.9g, \"top1_agree\": %.6f",
                       r.ref_ppl, log(r.ppl / r.ref_ppl), r.kl_mean, r.kl_median, r.kl_p99, r.kl_max, r.top1);
            printf("}\n");
        } else {
            printf("perplexity %.4f over %lld tokens (%d windows of %s%lld, %s, %.1f tok/s)\n", r.ppl,
                   (long long)r.tokens, r.windows, o.score_second_half ? "" : "up to ", (long long)e.ctx,
                   o.score_second_half ? "second half of each scored" : "every token scored",
                   (double)r.tokens / r.secs);
            if (ref) {
                printf("reference  %.4f (%s); ln(ppl/ref) %+.5f\n", r.ref_ppl, o.ref, log(r.ppl / r.ref_ppl));
                printf("KL(ref || model) per token: mean %.6f, median %.6f, 99th percentile %.6f, max %.6f\n",
                       r.kl_mean, r.kl_median, r.kl_p99, r.kl_max);
                printf("top-1 agreement %.4f%%\n", 100.0 * r.top1);
            }
        }
    }
    if (lf) fclose(lf);
    if (kf && fclose(kf) != 0 && !rc) rc = complain("kvattn eval: --kld-base-out %s: write failed\n", o.kld_out);
    free(ids);
    kvattn_model_free(ref);
    kvattn_model_free(m);
    return rc;
}
