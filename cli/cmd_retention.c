/* kvattn retention — what a model loses when its KV cache shrinks: every
 * conversion of its attention that makes sense (GQA/MQA by mean-pooling and
 * by the activation-aware method, MLA at ½, ¼ and ⅛ of the cache, each with
 * the source's rotary dims, half of them and twice them under RoPE, the
 * latent normed and not), each scored against the original over the same
 * held-out windows. The table, --json, and the frontier as SVG (--plot). */
#include "calib.h"
#include "cli_util.h"
#include "commands.h"
#include "eval_score.h"
#include "model_cli.h"
#include "options.h"
#include "retention_plot.h"

#include "kvattn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TARGETS 32

typedef struct {
    char design[32];
    kvattn_convert_method method;
    int kv_norm; /* MLA: 1 keeps the latent's RMSNorm */
    char label[16];
    size_t kv_bytes;
    double secs;
    eval_stats r;
    char file[1024];
} row;

/* The targets worth converting to: fewer KV heads for every divisor, by both
 * methods; MLA at ½, ¼ and ⅛ of the cache, the latent normed and not. */
static int default_targets(const kvattn_layer_config *a, char designs[][32], int max) {
    int n = 0;
    const int K = a->n_kv_heads, n_rot = a->rope.n_rot ? a->rope.n_rot : a->head_dim;
    for (int G = K - 1; G >= 1 && n < max; G--)
        if (K % G == 0) snprintf(designs[n++], 32, G == 1 ? "mqa" : "gqa:%d", G);
    for (int f = 2; f <= 8; f *= 2) /* d_R: the source's rotary dims, folded to half (FreqFold), or doubled */
        for (int k = 0; k < 3 && n < max; k++) {
            const int dr = k == 0 ? n_rot / 2 : k == 1 ? n_rot : 2 * n_rot;
            const int dc = 2 * K * a->head_dim / f - dr;
            if (dc >= 1 && dr >= 2 && dr % 2 == 0 && (dr <= n_rot ? (n_rot / 2) % (dr / 2) == 0 : 2 <= K))
                snprintf(designs[n++], 32, "mla:%d+%d", dc, dr);
        }
    return n;
}

static void print_table(const char *name, const kvattn_model_desc *sd, size_t own_bytes, double ref_ppl,
                        const row *rows, int n) {
    char own[32];
    kvattn_config_design_name(&sd->attn, own, sizeof own);
    printf("%s (%s): %s bytes of KV cache per token at f16, perplexity %.4f\n\n", name, own,
           cli_commas(own_bytes, (char[32]){0}, 32), ref_ppl);
    printf("%-12s %-10s %11s %7s %10s %9s %9s %9s %7s %9s\n", "design", "method", "KV B/token", "less", "perplexity",
           "Δ ppl", "KL mean", "KL p99", "top-1", "convert");
    for (int i = 0; i < n; i++) {
        const row *r = &rows[i];
        char b[32];
        printf("%-12s %-10s %11s %6.2f× %10.4f %+9.4f %9.5f %9.5f %6.2f%% %8.1fs\n", r->design, r->label,
               cli_commas(r->kv_bytes, b, sizeof b), (double)own_bytes / (double)r->kv_bytes, r->r.ppl,
               r->r.ppl - r->r.ref_ppl, r->r.kl_mean, r->r.kl_p99, 100.0 * r->r.top1, r->secs);
    }
}

static void show_progress(void *ctx, const char *stage, int done, int total) {
    if (cli_stderr_is_tty()) fprintf(stderr, "\r%-14s %-28s %d/%d      ", (const char *)ctx, stage, done, total);
}

int cmd_retention(int argc, char **argv) {
    const char *in = NULL, *tok = NULL, *text = NULL, *calib_file = NULL, *save_calib = NULL, *out_dir = NULL;
    const char *plot = NULL, *designs_arg[MAX_TARGETS];
    int n_designs_arg = 0, json = 0, second_half = 0;
    int64_t calib_n = 8192, calib_ctx = 256, seed = 1234, threads = 0, ctx = 256;
    const cli_option opts[] = {
        CLI_OPT_STRING("-m, --model", &in, "MODEL", "the original: GGUF, llama2.c checkpoint or Hugging Face folder"),
        CLI_OPT_STRING("-z", &tok, "TOKENIZER", "llama2.c tokenizer.bin (llama2.c checkpoints)"),
        CLI_OPT_STRING("-f, --file", &text, "TEXT", "held-out text to score on (never the calibration text)"),
        CLI_OPT_LIST("--to", designs_arg, &n_designs_arg, MAX_TARGETS, "DESIGN",
                     "a target (repeatable): gqa:G, mqa, mla:DC+DR. Default: every gqa:G with G\n"
                     "dividing the KV heads, mqa, and MLA at 1/2, 1/4 and 1/8 of the cache with\n"
                     "d_R = half, once and twice the source's rotary dims"),
        CLI_OPT_STRING("--calib", &calib_file, "FILE", "calibration text (default: text the model samples itself)"),
        CLI_OPT_STRING("--save-calib", &save_calib, "FILE", "write the self-sampled calibration text to FILE"),
        CLI_OPT_COUNT("--calib-tokens", &calib_n, 1, 1 << 24, "N", "tokens of self-sampled calibration (default 8192)"),
        CLI_OPT_COUNT("--calib-ctx", &calib_ctx, 2, 1 << 20, "N", "calibration windows of N tokens (default 256)"),
        CLI_OPT_INT("-s, --seed", &seed, 0, INT64_MAX, "S", "seed of the self-sampled text (default 1234)"),
        CLI_OPT_COUNT("-c, --ctx-size", &ctx, 2, 1 << 20, "N", "scoring windows of N tokens (default 256)"),
        CLI_OPT_FLAG("--score-second-half", &second_half, "llama-perplexity's windows (see kvattn eval)"),
        CLI_OPT_STRING("--out-dir", &out_dir, "DIR", "also write each converted model there as GGUF (f32)"),
        CLI_OPT_STRING("--plot", &plot, "FILE.svg", "KV bytes per token against Δ perplexity, one point each"),
        CLI_OPT_COUNT("-t, --threads", &threads, 1, 1 << 16, "N", "threads (default: all cores)"),
        CLI_OPT_FLAG("--json", &json, "one JSON object on stdout"),
    };
    const cli_command cmd = {
        "retention", "-m MODEL [-z TOKENIZER] -f TEXT [--to DESIGN]... [--calib FILE] [--plot FILE.svg] [options]",
        "Converts the model's attention to each target (kvattn convert), scores every conversion\n"
        "against the original over the same windows of TEXT (kvattn eval --ref), and tabulates\n"
        "KV bytes per token against the perplexity, KL and top-1 agreement it costs.",
        opts, (int)(sizeof opts / sizeof opts[0])};
    const int prc = cli_parse(&cmd, argc, argv);
    if (prc != CLI_PARSED) return prc == CLI_HELP ? 0 : 2;
    if (!in || !text) {
        fprintf(stderr, "kvattn retention: -m MODEL and -f TEXT are required\n");
        return 2;
    }
    if (threads) kvattn_set_threads((int)threads);
    model_opts mo;
    model_opts_defaults(&mo);
    mo.model = in, mo.tokenizer = tok;
    kvattn_model *src = model_load(&mo, "retention", 1);
    if (!src) return 1;
    const kvattn_model_desc *sd = kvattn_model_describe(src);
    if (sd->attn.kind != KVATTN_ATTN_GQA) {
        fprintf(stderr, "kvattn retention: %s is already MLA; kvattn converts MHA, GQA and MQA models\n", in);
        kvattn_model_free(src);
        return 1;
    }
    char designs[MAX_TARGETS][32];
    int n_designs = 0;
    for (int i = 0; i < n_designs_arg; i++) {
        if (strlen(designs_arg[i]) >= sizeof designs[0]) {
            fprintf(stderr, "kvattn retention: --to '%s' is not a design (gqa:G, mqa, mla:DC+DR)\n", designs_arg[i]);
            kvattn_model_free(src);
            return 2;
        }
        snprintf(designs[n_designs++], sizeof designs[0], "%s", designs_arg[i]);
    }
    if (!n_designs_arg) n_designs = default_targets(&sd->attn, designs, MAX_TARGETS);
    row *rows = calloc(2 * (size_t)(n_designs ? n_designs : 1), sizeof *rows);
    int n_rows = 0;
    for (int i = 0; rows && i < n_designs; i++)
        for (int v = 0; v < 2; v++) {
            row *r = &rows[n_rows++];
            snprintf(r->design, sizeof r->design, "%.31s", designs[i]);
            if (!strncmp(designs[i], "mla:", 4))
                r->method = KVATTN_CONVERT_AWARE, r->kv_norm = v,
                snprintf(r->label, sizeof r->label, v ? "norm kept" : "norm off");
            else
                r->method = v ? KVATTN_CONVERT_AWARE : KVATTN_CONVERT_MEAN,
                snprintf(r->label, sizeof r->label, v ? "aware" : "mean");
        }
    int32_t *eval_ids = NULL, *calib = NULL;
    int n_eval = 0, n_calib = 0, rc = rows ? 0 : fprintf(stderr, "kvattn retention: out of memory\n") > 0;
    char calib_source[160] = "";
    double calib_secs = 0.0;
    if (!rc)
        rc = eval_tokenize_file(text, kvattn_model_tokenizer(src), second_half, &eval_ids, &n_eval, "retention", "");
    if (!rc) {
        const calib_opts co = {calib_file, calib_n, calib_ctx, seed, save_calib, 1, 1.0};
        const double t0 = cli_now();
        rc = calib_tokens(src, &co, &calib, &n_calib, calib_source, sizeof calib_source, "retention");
        calib_secs = cli_now() - t0;
    }
    const eval_setup es = {.ctx = ctx,
                           .second_half = second_half,
                           .k_type = KVATTN_TYPE_F32,
                           .v_type = KVATTN_TYPE_F32,
                           .mla = KVATTN_MLA_ABSORBED,
                           .cmd = "retention"};
    const char *base = strrchr(in, '/');
    base = base ? base + 1 : in;
    for (int i = 0; !rc && i < n_rows; i++) {
        row *r = &rows[i];
        char stage[64];
        snprintf(stage, sizeof stage, "[%d/%d] %s", i + 1, n_rows, r->design);
        kvattn_convert_params p = {.design = r->design,
                                   .method = r->method,
                                   .mla_kv_norm = r->kv_norm,
                                   .calib_tokens = calib,
                                   .n_calib_tokens = n_calib,
                                   .calib_ctx = (int)calib_ctx,
                                   .calib_source = calib_source,
                                   .progress = show_progress,
                                   .progress_ctx = stage};
        kvattn_model *dst = NULL;
        const double t0 = cli_now();
        if (kvattn_model_convert(src, &p, &dst) != KVATTN_OK) {
            rc = fprintf(stderr, "\nkvattn retention: %s: %s\n", r->design, kvattn_last_error()) > 0;
            break;
        }
        r->secs = cli_now() - t0;
        const kvattn_model_desc *dd = kvattn_model_describe(dst);
        r->kv_bytes = kvattn_kv_bytes_per_token(&dd->attn, dd->n_layers, KVATTN_TYPE_F16);
        if (out_dir) {
            snprintf(r->file, sizeof r->file, "%s/%.*s-%s-%s.gguf", out_dir, (int)strcspn(base, "."), base, r->design,
                     r->method == KVATTN_CONVERT_MEAN ? "mean"
                     : r->kv_norm                     ? "normed"
                                                      : "aware");
            if (kvattn_model_save_gguf(dst, r->file, KVATTN_TYPE_F32) != KVATTN_OK)
                rc = fprintf(stderr, "\nkvattn retention: %s\n", kvattn_last_error()) > 0;
        }
        if (!rc) rc = eval_score(dst, src, eval_ids, n_eval, &es, &r->r);
        kvattn_model_free(dst);
    }
    if (!rc) {
        const size_t own = kvattn_kv_bytes_per_token(&sd->attn, sd->n_layers, KVATTN_TYPE_F16);
        const double ref_ppl = n_rows ? rows[0].r.ref_ppl : 0.0;
        if (json) {
            char own_design[32];
            kvattn_config_design_name(&sd->attn, own_design, sizeof own_design);
            printf("{\"model\": ");
            cli_json_string(stdout, in, strlen(in));
            printf(", \"design\": \"%s\", \"kv_bytes_per_token\": %zu, \"text\": ", own_design, own);
            cli_json_string(stdout, text, strlen(text));
            printf(", \"ctx\": %lld, \"scoring\": \"%s\", \"tokens\": %lld, \"ref_ppl\": %.6f, \"calibration\": ",
                   (long long)ctx, second_half ? "second-half" : "all", (long long)(n_rows ? rows[0].r.tokens : 0),
                   ref_ppl);
            cli_json_string(stdout, calib_source, strlen(calib_source));
            printf(", \"calib_tokens\": %d, \"calib_seconds\": %.3f, \"rows\": [", n_calib, calib_secs);
            for (int i = 0; i < n_rows; i++) {
                const row *r = &rows[i];
                printf("%s\n  {\"design\": \"%s\", \"method\": \"%s\", \"kv_bytes_per_token\": %zu, \"reduction\": "
                       "%.4f, \"ppl\": %.6f, \"delta_ppl\": %.6f, \"kl_mean\": %.6f, \"kl_p99\": %.6f, "
                       "\"top1_agree\": %.6f, \"convert_seconds\": %.3f, \"file\": ",
                       i ? "," : "", r->design, r->label, r->kv_bytes, (double)own / (double)r->kv_bytes, r->r.ppl,
                       r->r.ppl - r->r.ref_ppl, r->r.kl_mean, r->r.kl_p99, r->r.top1, r->secs);
                if (r->file[0]) cli_json_string(stdout, r->file, strlen(r->file));
                else printf("null");
                printf("}");
            }
            printf("]}\n");
        } else {
            if (cli_stderr_is_tty()) fprintf(stderr, "\n");
            print_table(base, sd, own, ref_ppl, rows, n_rows);
            printf("\nscored on %lld tokens of %s (-c %lld, %s); calibration: %d tokens of %s, %.1f s to get, "
                   "shared by every row (convert: the rest of each conversion's time)\n",
                   (long long)(n_rows ? rows[0].r.tokens : 0), text, (long long)ctx,
                   second_half ? "second half of each window" : "every token", n_calib, calib_source, calib_secs);
        }
        if (plot) {
            retention_point *pts = malloc(sizeof *pts * (size_t)(n_rows ? n_rows : 1));
            char title[160];
            snprintf(title, sizeof title, "%s: KV cache against perplexity lost, per conversion", base);
            for (char *c = title; *c; c++)
                if (*c == '<' || *c == '>' || *c == '&') *c = '_'; /* a file name is not markup */
            for (int i = 0; pts && i < n_rows; i++)
                pts[i] = (retention_point){rows[i].design, rows[i].label, (double)rows[i].kv_bytes,
                                           rows[i].r.ppl - rows[i].r.ref_ppl};
            if (!pts || retention_plot_svg(plot, title, pts, n_rows, (double)own) != 0)
                rc = fprintf(stderr, "kvattn retention: --plot %s: cannot write\n", plot) > 0;
            free(pts);
        }
    }
    free(rows), free(eval_ids), free(calib);
    kvattn_model_free(src);
    return rc;
}
