/* kvattn convert — a model's attention turned into GQA, MQA or MLA, written
 * as GGUF, with the calibration text it needs sampled from the model itself
 * or read from a file. */
#include "calib.h"
#include "cli_util.h"
#include "commands.h"
#include "model_cli.h"
#include "options.h"

#include "kvattn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void show_progress(void *ctx, const char *stage, int done, int total) {
    (void)ctx;
    if (cli_stderr_is_tty()) fprintf(stderr, "\r%-32s %d/%d   %s", stage, done, total, done == total ? "\n" : "");
}

static const char *const methods[] = {"aware", "mean", NULL}; /* kvattn_convert_method's order */
static const char *const norms[] = {"off", "keep", NULL};

int cmd_convert(int argc, char **argv) {
    const char *in = NULL, *tok = NULL, *out = NULL, *design = NULL, *calib_file = NULL, *save_calib = NULL;
    int method = KVATTN_CONVERT_AWARE, norm = 0, json = 0;
    int64_t calib_tokens_n = 8192, calib_ctx = 256, seed = 1234, threads = 0;
    kvattn_type type = KVATTN_TYPE_F32;
    const cli_option opts[] = {
        CLI_OPT_STRING("-m, --model", &in, "MODEL", "the source: GGUF, llama2.c checkpoint or Hugging Face folder"),
        CLI_OPT_STRING("-z", &tok, "TOKENIZER", "llama2.c tokenizer.bin (llama2.c checkpoints)"),
        CLI_OPT_STRING("--to", &design, "DESIGN", "gqa:G, mqa, or mla:DC+DR (DR = the source's rotary dims per head)"),
        CLI_OPT_CHOICE("--method", &method, methods, "M",
                       "GQA/MQA: aware (default: fitted on calibration activations) or mean (heads averaged)"),
        CLI_OPT_CHOICE("--latent-norm", &norm, norms, "MODE",
                       "MLA: off (default: the latent cached as projected; kvattn-only) or keep (DeepSeek's\n"
                       "RMSNorm kept, W_UK/W_UV fitted to it: a deepseek2 file llama.cpp runs as is)"),
        CLI_OPT_STRING("--calib", &calib_file, "FILE", "calibration text (default: text the model samples itself)"),
        CLI_OPT_STRING("--save-calib", &save_calib, "FILE", "write the self-sampled calibration text to FILE"),
        CLI_OPT_COUNT("--calib-tokens", &calib_tokens_n, 1, 1 << 24, "N",
                      "tokens of self-sampled calibration text (default 8192)"),
        CLI_OPT_COUNT("--calib-ctx", &calib_ctx, 2, 1 << 20, "N", "calibration windows of N tokens (default 256)"),
        CLI_OPT_INT("-s, --seed", &seed, 0, INT64_MAX, "S", "seed of the self-sampled text (default 1234)"),
        CLI_OPT_TYPE("--type", &type, 1, "TYPE", "2-D weights as f32 (default), f16, bf16 or q8_0"),
        CLI_OPT_STRING("-o", &out, "OUT.gguf", "the GGUF file to write"),
        CLI_OPT_COUNT("-t, --threads", &threads, 1, 1 << 16, "N", "threads (default: all cores)"),
        CLI_OPT_FLAG("--json", &json, "one JSON object on stdout"),
    };
    const cli_command cmd = {"convert",
                             "-m MODEL [-z TOKENIZER] --to DESIGN [--method M] [--calib FILE] -o OUT.gguf [options]",
                             "Turns the model's attention into GQA, MQA or MLA (DeepSeek's latent layout) and writes\n"
                             "it as GGUF (llama or deepseek2), the rest of the model unchanged.",
                             opts, (int)(sizeof opts / sizeof opts[0])};
    const int rc = cli_parse(&cmd, argc, argv);
    if (rc != CLI_PARSED) return rc == CLI_HELP ? 0 : 2;
    if (!in || !out || !design) {
        fprintf(stderr, "kvattn convert: -m MODEL, --to DESIGN and -o OUT.gguf are required\n");
        return 2;
    }
    if (threads) kvattn_set_threads((int)threads);
    const int is_mla = !strncmp(design, "mla:", 4), needs_calib = is_mla || method == KVATTN_CONVERT_AWARE;
    if (is_mla && method == KVATTN_CONVERT_MEAN) {
        fprintf(stderr, "kvattn convert: --method mean is for GQA/MQA targets; MLA is always fitted\n");
        return 2;
    }
    model_opts mo;
    model_opts_defaults(&mo);
    mo.model = in, mo.tokenizer = tok;
    double t0 = cli_now();
    kvattn_model *src = model_load(&mo, "convert", needs_calib), *dst = NULL;
    if (!src) return 1;
    int32_t *ids = NULL;
    int n_ids = 0, status = 0;
    char calib_source[160] = "";
    if (needs_calib) {
        const calib_opts co = {calib_file, calib_tokens_n, calib_ctx, seed, save_calib, 1, 1.0};
        status = calib_tokens(src, &co, &ids, &n_ids, calib_source, sizeof calib_source, "convert");
    }
    kvattn_convert_params p = {.design = design,
                               .method = (kvattn_convert_method)method,
                               .mla_kv_norm = norm,
                               .calib_tokens = ids,
                               .n_calib_tokens = n_ids,
                               .calib_ctx = (int)calib_ctx,
                               .calib_source = calib_source,
                               .progress = show_progress};
    if (!status &&
        (kvattn_model_convert(src, &p, &dst) != KVATTN_OK || kvattn_model_save_gguf(dst, out, type) != KVATTN_OK))
        status = fprintf(stderr, "kvattn convert: %s\n", kvattn_last_error()) > 0;
    if (!status) {
        const kvattn_model_desc *sd = kvattn_model_describe(src), *dd = kvattn_model_describe(dst);
        char from[32], to[32];
        kvattn_config_design_name(&sd->attn, from, sizeof from);
        kvattn_config_design_name(&dd->attn, to, sizeof to);
        const size_t b0 = kvattn_kv_bytes_per_token(&sd->attn, sd->n_layers, KVATTN_TYPE_F16);
        const size_t b1 = kvattn_kv_bytes_per_token(&dd->attn, dd->n_layers, KVATTN_TYPE_F16);
        const double secs = cli_now() - t0;
        if (json) {
            printf("{\"from\": \"%s\", \"to\": \"%s\", \"method\": \"%s\", \"latent_norm\": %s, "
                   "\"kv_bytes_per_token_from\": %zu, \"kv_bytes_per_token_to\": %zu, \"calib_tokens\": %d, "
                   "\"seconds\": %.3f, \"output\": ",
                   from, to, is_mla ? "rorope" : methods[method], is_mla ? (norm ? "true" : "false") : "null", b0, b1,
                   needs_calib ? n_ids : 0, secs);
            cli_json_string(stdout, out, strlen(out));
            printf(", \"provenance\": ");
            cli_json_string(stdout, kvattn_model_provenance(dst), strlen(kvattn_model_provenance(dst)));
            printf("}\n");
        } else
            printf("%s → %s: KV cache %zu → %zu bytes per token at f16 (%.2f×), %.1f s; wrote %s\n  %s\n", from, to, b0,
                   b1, (double)b0 / (double)b1, secs, out, kvattn_model_provenance(dst));
    }
    free(ids);
    kvattn_model_free(dst);
    kvattn_model_free(src);
    return status;
}
