/* kvattn plan — how much memory a model's KV cache needs, in its own design
 * and in the others, and how many GPUs that takes. */
#include "cli_util.h"
#include "commands.h"
#include "options.h"
#include "plan_plot.h"

#include "kvattn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROWS 12

typedef struct {
    const char *name;
    uint64_t bytes;
} gpu_kind;

/* Nominal memory, read as GiB (pass --gpu-mem for a usable figure). */
static const gpu_kind gpus[] = {
    {"a100-40g", 40ull << 30},     {"a100-80g", 80ull << 30},   {"h100-80g", 80ull << 30},
    {"h200-141g", 141ull << 30},   {"b200-192g", 192ull << 30}, {"rtx4090-24g", 24ull << 30},
    {"mi300x-192g", 192ull << 30},
};
#define N_GPUS ((int)(sizeof gpus / sizeof gpus[0]))

static int list_presets(void) {
    char b[32];
    printf("%-18s %-10s %-12s %6s %14s %10s\n", "preset", "arch", "attention", "layers", "params", "context");
    for (int i = 0; i < kvattn_preset_count(); i++) {
        const kvattn_model_desc *m = kvattn_preset_at(i);
        char design[32];
        printf("%-18s %-10s %-12s %6d %14s %10lld\n", m->name, m->arch,
               kvattn_config_design_name(&m->attn, design, sizeof design), m->n_layers,
               cli_commas((uint64_t)kvattn_model_params(m), b, sizeof b), (long long)m->context_length);
    }
    return 0;
}

static const char *const gpu_names[] = {"a100-40g",  "a100-80g",    "h100-80g",    "h200-141g",
                                        "b200-192g", "rtx4090-24g", "mi300x-192g", NULL};
_Static_assert(sizeof gpu_names / sizeof gpu_names[0] == N_GPUS + 1, "a name for each GPU");

int cmd_plan(int argc, char **argv) {
    const char *preset = NULL, *config = NULL, *model_file = NULL, *plot = NULL, *gpu_name = NULL, *tokenizer = NULL;
    const char *designs[MAX_ROWS];
    int n_designs = 0, json = 0, list = 0, gpu = -1;
    int64_t ctx = 0, batch = 1, n_gpus = 0, gpu_mem_arg = 0;
    int64_t shape[4] = {0, 0, 0, 0}; /* layers, heads, kv heads, head dim */
    uint64_t gpu_mem = 0;
    kvattn_plan_options opt = {0, 1, KVATTN_TYPE_F16, KVATTN_TYPE_BF16, 0, 0};
    const cli_option opts[] = {
        CLI_OPT_STRING("--preset", &preset, "NAME", "a built-in model (--list-presets)"),
        CLI_OPT_STRING("-m", &model_file, "MODEL", "a model file: GGUF, llama2.c checkpoint, Hugging Face folder"),
        CLI_OPT_STRING("-z", &tokenizer, "TOKENIZER", "llama2.c tokenizer.bin of -m (accepted as by run and eval)"),
        CLI_OPT_STRING("--config", &config, "FILE",
                       "a Hugging Face config.json (llama, mistral, mixtral, qwen2, falcon, gpt2,\n"
                       "deepseek_v2, deepseek_v3)"),
        CLI_OPT_COUNT("--ctx", &ctx, 1, (int64_t)1 << 40, "N",
                      "tokens per sequence (default: the model's context length; 80k = 80,000,\n128K = 131,072)"),
        CLI_OPT_COUNT("--batch", &batch, 1, (int64_t)1 << 30, "B", "sequences (default 1)"),
        CLI_OPT_TYPE("--kv-type", &opt.kv_type, 0, "T",
                     "f32, f16, bf16, q8_0, q4_0, fp8 (default f16; block types include scales)"),
        CLI_OPT_TYPE("--weights-type", &opt.weights_type, 0, "T", "the same types, for the weights (default bf16)"),
        CLI_OPT_LIST("--as", designs, &n_designs, MAX_ROWS - 1, "DESIGN",
                     "only the model's own design and DESIGN (repeatable): mha, mqa, gqa:G,\n"
                     "mla:DC+DR. Default: own, mha, gqa:8, mqa, mla:512+64"),
        CLI_OPT_COUNT("--layers", &shape[0], 1, 1 << 24, "N", "change the model's layer count"),
        CLI_OPT_COUNT("--heads", &shape[1], 1, 1 << 24, "N", "change its query heads"),
        CLI_OPT_COUNT("--kv-heads", &shape[2], 1, 1 << 24, "N", "change its KV heads (MHA/GQA/MQA models)"),
        CLI_OPT_COUNT("--head-dim", &shape[3], 1, 1 << 24, "N",
                      "change its head width (e.g. --preset llama-2-7b --head-dim 64)"),
        CLI_OPT_CHOICE("--gpu", &gpu, gpu_names, "NAME",
                       "size GPUs: a100-40g a100-80g h100-80g h200-141g b200-192g rtx4090-24g\n"
                       "mi300x-192g (nominal GiB)"),
        CLI_OPT_COUNT("--gpu-mem", &gpu_mem_arg, 1 << 20, (int64_t)1 << 50, "SIZE",
                      "GPU memory instead, e.g. 48G (G = GiB, g = 10^9 bytes)"),
        CLI_OPT_COUNT("--gpus", &n_gpus, 1, 1 << 20, "N",
                      "GPUs available for the max-context column (default: as many as needed)"),
        CLI_OPT_FLAG("--json", &json, "one JSON object on stdout"),
        CLI_OPT_STRING("--plot", &plot, "FILE.svg", "KV memory against context per design, GPU capacities as lines"),
        CLI_OPT_FLAG("--list-presets", &list, "the built-in models"),
    };
    const cli_command cmd = {"plan", "(--preset NAME | --config config.json | -m MODEL) [options]",
                             "The KV cache and memory of a model in its own design and in the others.", opts,
                             (int)(sizeof opts / sizeof opts[0])};
    const int rc = cli_parse(&cmd, argc, argv);
    if (rc != CLI_PARSED) return rc == CLI_HELP ? 0 : 2;
    if (list) return list_presets();
    if (gpu >= 0 && gpu_mem_arg) {
        fprintf(stderr, "kvattn plan: give --gpu NAME or --gpu-mem SIZE, not both\n");
        return 2;
    }
    if (gpu >= 0) gpu_mem = gpus[gpu].bytes, gpu_name = gpus[gpu].name;
    for (int i = 1; gpu_mem_arg && i + 1 < argc; i++)
        if (!strcmp(argv[i], "--gpu-mem")) gpu_mem = (uint64_t)gpu_mem_arg, gpu_name = argv[i + 1];
    if (!!preset + !!config + !!model_file != 1) {
        fprintf(stderr, "kvattn plan: give exactly one of --preset NAME, --config FILE or -m MODEL (--list-presets "
                        "lists the built-in models)\n");
        return 2;
    }
    if (tokenizer && !model_file) {
        fprintf(stderr, "kvattn plan: -z %s is the tokenizer of a -m model; --preset and --config take none\n",
                tokenizer);
        return 2;
    }
    kvattn_model_desc m;
    kvattn_status st;
    if (model_file) { /* the shapes of a model file: GGUF, llama2.c or a Hugging Face folder */
        kvattn_model *mf = NULL;
        st = kvattn_model_load(model_file, tokenizer, &mf);
        if (st == KVATTN_OK) m = *kvattn_model_describe(mf);
        kvattn_model_free(mf);
    } else {
        st = preset ? kvattn_preset_find(preset, &m) : kvattn_model_from_hf_config(config, &m);
    }
    if (st != KVATTN_OK) {
        fprintf(stderr, "kvattn plan: %s\n", kvattn_last_error());
        return 1;
    }
    if (shape[0]) m.n_layers = (int)shape[0];
    if (shape[1]) m.attn.n_heads = (int)shape[1];
    if (shape[2] || shape[3]) {
        if (m.attn.kind == KVATTN_ATTN_MLA) {
            fprintf(stderr, "kvattn plan: --kv-heads/--head-dim apply to MHA/GQA/MQA models; %s is MLA\n", m.name);
            return 2;
        }
        if (shape[2]) m.attn.n_kv_heads = (int)shape[2];
        if (shape[3]) m.attn.head_dim = (int)shape[3], m.attn.rope.n_rot = 0;
    }
    if (shape[1] && !shape[2] && m.attn.kind == KVATTN_ATTN_GQA && m.attn.n_kv_heads > m.attn.n_heads)
        m.attn.n_kv_heads = m.attn.n_heads;
    if (kvattn_config_validate(&m.attn) != KVATTN_OK) {
        fprintf(stderr, "kvattn plan: %s: %s\n", m.name, kvattn_last_error());
        return 2;
    }
    opt.ctx = ctx ? ctx : (m.context_length > 0 ? m.context_length : 4096);
    opt.batch = batch;
    opt.gpu_mem_bytes = gpu_mem;
    opt.n_gpus = n_gpus;

    /* The rows: own design first, then the comparison designs (skipping repeats and impossible ones). */
    static const char *const defaults[] = {"mha", "gqa:8", "mqa", "mla:512+64"};
    const char *want[MAX_ROWS];
    int n_want = 0;
    want[n_want++] = NULL;
    if (n_designs)
        for (int i = 0; i < n_designs; i++) want[n_want++] = designs[i];
    else
        for (int i = 0; i < 4; i++) want[n_want++] = defaults[i];
    kvattn_plan_row rows[MAX_ROWS];
    const char *skipped[MAX_ROWS];
    char skip_why[MAX_ROWS][256];
    int n_rows = 0, n_skipped = 0;
    for (int i = 0; i < n_want; i++) {
        kvattn_plan_row r;
        if (kvattn_plan(&m, want[i], &opt, &r) != KVATTN_OK) {
            if (n_designs || i == 0) { /* asked for by name: an error */
                fprintf(stderr, "kvattn plan: %s\n", kvattn_last_error());
                return i == 0 ? 1 : 2;
            }
            skipped[n_skipped] = want[i];
            snprintf(skip_why[n_skipped++], sizeof skip_why[0], "%s", kvattn_last_error());
            continue;
        }
        int dup = 0;
        for (int j = 0; j < n_rows; j++) dup |= !strcmp(rows[j].design, r.design);
        if (!dup) rows[n_rows++] = r;
    }
    kvattn_plan_row mha;
    int have_mha = kvattn_plan(&m, "mha", &opt, &mha) == KVATTN_OK;

    char design[32], b1[32], b2[32], b3[32], b4[32];
    if (json) {
        printf("{\"model\": ");
        cli_json_string(stdout, m.name, strlen(m.name));
        printf(", \"arch\": ");
        cli_json_string(stdout, m.arch, strlen(m.arch));
        printf(", \"design\": \"%s\", \"layers\": %d, \"params\": %lld, \"ctx\": %lld, \"batch\": %lld, "
               "\"kv_type\": \"%s\", \"weights_type\": \"%s\", \"gpu\": ",
               kvattn_config_design_name(&m.attn, design, sizeof design), m.n_layers,
               (long long)kvattn_model_params(&m), (long long)opt.ctx, (long long)opt.batch,
               kvattn_type_name(opt.kv_type), kvattn_type_name(opt.weights_type));
        if (gpu_name) {
            printf("{\"name\": ");
            cli_json_string(stdout, gpu_name, strlen(gpu_name));
            printf(", \"mem_bytes\": %llu}", (unsigned long long)gpu_mem);
        } else {
            printf("null");
        }
        printf(", \"rows\": [");
        for (int i = 0; i < n_rows; i++) {
            const kvattn_plan_row *r = &rows[i];
            printf("%s{\"design\": \"%s\", \"native\": %s, \"kv_elems_per_token_layer\": %lld, "
                   "\"kv_bytes_per_token\": %llu, \"kv_bytes_total\": %llu, \"weights_bytes\": %llu, "
                   "\"total_bytes\": %llu, ",
                   i ? ", " : "", r->design, r->native ? "true" : "false", (long long)r->kv_elems_per_token_layer,
                   (unsigned long long)r->kv_bytes_per_token, (unsigned long long)r->kv_bytes_total,
                   (unsigned long long)r->weights_bytes, (unsigned long long)r->total_bytes);
            if (have_mha)
                printf("\"kv_reduction_vs_mha_pct\": %.2f, ",
                       100.0 * (1.0 - (double)r->kv_bytes_per_token / (double)mha.kv_bytes_per_token));
            if (gpu_mem)
                printf("\"gpus_needed\": %lld, \"max_context\": %lld}", (long long)r->gpus_needed,
                       (long long)r->max_context);
            else printf("\"gpus_needed\": null, \"max_context\": null}");
        }
        printf("]}\n");
    } else {
        printf("%s (%s, %d layers, %s params) — KV cache at %lld tokens × batch %lld, %s KV, %s weights\n\n", m.name,
               kvattn_config_design_name(&m.attn, design, sizeof design), m.n_layers,
               cli_commas((uint64_t)kvattn_model_params(&m), b1, sizeof b1), (long long)opt.ctx, (long long)opt.batch,
               kvattn_type_name(opt.kv_type), kvattn_type_name(opt.weights_type));
        printf("%-12s %5s %10s %12s %12s %12s %12s %8s", "design", "own", "elems/tl", "bytes/token", "KV total",
               "weights", "total", "KV -%");
        if (gpu_mem) printf(" %6s %12s", "GPUs", "max ctx");
        printf("\n");
        for (int i = 0; i < n_rows; i++) {
            const kvattn_plan_row *r = &rows[i];
            printf("%-12s %5s %10lld %12s %12s %12s %12s", r->design, r->native ? "yes" : "",
                   (long long)r->kv_elems_per_token_layer, cli_commas(r->kv_bytes_per_token, b1, sizeof b1),
                   cli_bytes((double)r->kv_bytes_total, b2, sizeof b2),
                   cli_bytes((double)r->weights_bytes, b3, sizeof b3),
                   cli_bytes((double)r->total_bytes, b4, sizeof b4));
            if (have_mha)
                printf(" %7.2f%%", 100.0 * (1.0 - (double)r->kv_bytes_per_token / (double)mha.kv_bytes_per_token));
            else printf(" %8s", "");
            if (gpu_mem) printf(" %6lld %12lld", (long long)r->gpus_needed, (long long)r->max_context);
            printf("\n");
        }
        if (gpu_mem)
            printf("\nGPUs: %s, %s each; max ctx = longest context per sequence at batch %lld on %s.\n", gpu_name,
                   cli_bytes((double)gpu_mem, b1, sizeof b1), (long long)opt.batch,
                   n_gpus ? "the --gpus given" : "the GPUs needed");
        printf("KV -%%: reduction of the KV cache versus MHA of the same model. Weights: parameters of each design"
               " in %s.\n",
               kvattn_type_name(opt.weights_type));
        for (int i = 0; i < n_skipped; i++) printf("(skipped %s: %s)\n", skipped[i], skip_why[i]);
        /* The widely circulated example, worked correctly. */
        if (m.attn.kind == KVATTN_ATTN_GQA && m.n_layers == 32 && m.attn.n_heads == 32 && m.attn.head_dim == 64 &&
            opt.ctx == 80000 && opt.batch == 1 && opt.kv_type == KVATTN_TYPE_F16) {
            printf("\nNote: this is the circulating \"7B, 32 layers, 32 heads, head dim 64, 80,000 tokens\" example, "
                   "usually quoted as\n640 GB (MHA) / 80 GB (GQA-8) / 20 GB (MQA): about 30x too high. With "
                   "2 · layers · n_kv_heads · head_dim ·\ntokens · 2 bytes it is:");
            for (int i = 0; i < n_rows; i++)
                printf("%s %s %.2f GB", i ? "," : "", rows[i].design, (double)rows[i].kv_bytes_total / 1e9);
            printf(" (GB = 10^9 bytes).\n");
        }
    }

    if (plot) {
        plot_hline lines[4];
        int n_lines = 0;
        uint64_t mem = gpu_mem ? gpu_mem : 80ull << 30;
        const char *gname = gpu_mem ? gpu_name : "h100-80g";
        static char labels[4][64];
        for (int k = 1; k <= 8; k *= 2, n_lines++) {
            snprintf(labels[n_lines], sizeof labels[0], "%d× %s", k, gname);
            lines[n_lines] = (plot_hline){labels[n_lines], mem * (uint64_t)k};
        }
        char title[160];
        snprintf(title, sizeof title, "%s: weights (%s) + KV cache (%s) against context — the memory wall", m.name,
                 kvattn_type_name(opt.weights_type), kvattn_type_name(opt.kv_type));
        if (plan_plot_svg(plot, title, rows, n_rows, opt.batch, opt.ctx, lines, n_lines) != 0) {
            fprintf(stderr, "kvattn plan: --plot %s: cannot write the file\n", plot);
            return 1;
        }
        if (!json) printf("\nwrote %s\n", plot);
    }
    return 0;
}
