/* kvattn plan — how much memory a model's KV cache needs, in its own design
 * and in the others, and how many GPUs that takes. */
#include "cli_util.h"
#include "commands.h"
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
    {"a100-40g", 40ull << 30},  {"a100-80g", 80ull << 30},   {"h100-80g", 80ull << 30},    {"h200-141g", 141ull << 30},
    {"b200-192g", 192ull << 30}, {"rtx4090-24g", 24ull << 30}, {"mi300x-192g", 192ull << 30},
};
#define N_GPUS ((int)(sizeof gpus / sizeof gpus[0]))

static void plan_usage(FILE *f) {
    fprintf(f,
            "usage: kvattn plan (--preset NAME | --config config.json | -m MODEL) [options]\n\n"
            "  --preset NAME        a built-in model (--list-presets)\n"
            "  -m MODEL             a model file: GGUF, llama2.c checkpoint, Hugging Face folder\n"
            "  --config FILE        a Hugging Face config.json (llama, mistral, mixtral, qwen2, falcon, gpt2,\n"
            "                       deepseek_v2, deepseek_v3)\n"
            "  --ctx N              tokens per sequence (default: the model's context length; 80k = 80,000,\n"
            "                       128K = 131,072)\n"
            "  --batch B            sequences (default 1)\n"
            "  --kv-type T          f32, f16, bf16, q8_0, q4_0, fp8 (default f16; block types include scales)\n"
            "  --weights-type T     the same types, for the weights (default bf16)\n"
            "  --as DESIGN          only the model's own design and DESIGN (repeatable): mha, mqa, gqa:G,\n"
            "                       mla:DC+DR. Default: own, mha, gqa:8, mqa, mla:512+64\n"
            "  --layers N, --heads N, --kv-heads N, --head-dim N\n"
            "                       change the model's shape (e.g. --preset llama-2-7b --head-dim 64)\n"
            "  --gpu NAME           size GPUs: a100-40g a100-80g h100-80g h200-141g b200-192g rtx4090-24g\n"
            "                       mi300x-192g (nominal GiB)\n"
            "  --gpu-mem SIZE       GPU memory instead, e.g. 48G (G = GiB, g = 10^9 bytes)\n"
            "  --gpus N             GPUs available for the max-context column (default: as many as needed)\n"
            "  --json               one JSON object on stdout\n"
            "  --plot FILE.svg      KV memory against context per design, GPU capacities as lines\n"
            "  --list-presets       the built-in models\n");
}

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

static int opt_count(const char *opt, const char *val, int64_t min, int64_t max, int64_t *out) {
    if (!val || cli_parse_count(val, out) != 0 || *out < min || *out > max) {
        fprintf(stderr, "kvattn plan: %s '%s': expected a count in [%lld, %lld]\n", opt, val ? val : "",
                (long long)min, (long long)max);
        return -1;
    }
    return 0;
}

static int opt_type(const char *opt, const char *val, kvattn_type *out) {
    if (!val || kvattn_type_from_name(val, out) != KVATTN_OK) {
        fprintf(stderr, "kvattn plan: %s '%s': expected f32, f16, bf16, q8_0, q4_0 or fp8\n", opt, val ? val : "");
        return -1;
    }
    return 0;
}

int cmd_plan(int argc, char **argv) {
    const char *preset = NULL, *config = NULL, *model_file = NULL, *plot = NULL, *gpu_name = NULL;
    const char *designs[MAX_ROWS];
    int n_designs = 0, json = 0;
    int64_t ctx = 0, batch = 1, n_gpus = 0, shape[4] = {0, 0, 0, 0}; /* layers, heads, kv heads, head dim */
    uint64_t gpu_mem = 0;
    kvattn_plan_options opt = {0, 1, KVATTN_TYPE_F16, KVATTN_TYPE_BF16, 0, 0};
    static const char *const shape_opts[4] = {"--layers", "--heads", "--kv-heads", "--head-dim"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        int takes_value = 1, shape_i = -1;
        for (int s = 0; s < 4; s++)
            if (!strcmp(a, shape_opts[s])) shape_i = s;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            plan_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--list-presets")) {
            return list_presets();
        } else if (!strcmp(a, "--json")) {
            json = 1, takes_value = 0;
        } else if (!val) {
            fprintf(stderr, "kvattn plan: unknown option or missing value: '%s'\n\n", a);
            plan_usage(stderr);
            return 2;
        } else if (!strcmp(a, "--preset")) {
            preset = val;
        } else if (!strcmp(a, "--config")) {
            config = val;
        } else if (!strcmp(a, "-m")) {
            model_file = val;
        } else if (!strcmp(a, "--plot")) {
            plot = val;
        } else if (!strcmp(a, "--ctx")) {
            if (opt_count(a, val, 1, (int64_t)1 << 40, &ctx)) return 2;
        } else if (!strcmp(a, "--batch")) {
            if (opt_count(a, val, 1, (int64_t)1 << 30, &batch)) return 2;
        } else if (!strcmp(a, "--gpus")) {
            if (opt_count(a, val, 1, 1 << 20, &n_gpus)) return 2;
        } else if (shape_i >= 0) {
            if (opt_count(a, val, 1, 1 << 24, &shape[shape_i])) return 2;
        } else if (!strcmp(a, "--kv-type")) {
            if (opt_type(a, val, &opt.kv_type)) return 2;
        } else if (!strcmp(a, "--weights-type")) {
            if (opt_type(a, val, &opt.weights_type)) return 2;
        } else if (!strcmp(a, "--as")) {
            if (n_designs == MAX_ROWS - 1) {
                fprintf(stderr, "kvattn plan: at most %d --as designs\n", MAX_ROWS - 1);
                return 2;
            }
            designs[n_designs++] = val;
        } else if (!strcmp(a, "--gpu")) {
            gpu_name = val;
            gpu_mem = 0;
            for (int g = 0; g < N_GPUS; g++)
                if (!strcmp(val, gpus[g].name)) gpu_mem = gpus[g].bytes;
            if (!gpu_mem) {
                fprintf(stderr, "kvattn plan: --gpu '%s': unknown GPU (known:", val);
                for (int g = 0; g < N_GPUS; g++) fprintf(stderr, " %s", gpus[g].name);
                fprintf(stderr, "; or --gpu-mem SIZE)\n");
                return 2;
            }
        } else if (!strcmp(a, "--gpu-mem")) {
            int64_t b;
            if (opt_count(a, val, 1 << 20, (int64_t)1 << 50, &b)) return 2;
            gpu_mem = (uint64_t)b;
            gpu_name = val;
        } else {
            fprintf(stderr, "kvattn plan: unknown option '%s'\n\n", a);
            plan_usage(stderr);
            return 2;
        }
        i += takes_value;
    }
    if (!!preset + !!config + !!model_file != 1) {
        fprintf(stderr, "kvattn plan: give exactly one of --preset NAME, --config FILE or -m MODEL (--list-presets "
                        "lists the built-in models)\n");
        return 2;
    }
    kvattn_model_desc m;
    kvattn_status st;
    if (model_file) { /* the shapes of a model file: GGUF, llama2.c or a Hugging Face folder */
        kvattn_model *mf = NULL;
        st = kvattn_model_load(model_file, NULL, &mf);
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
            if (gpu_mem) printf("\"gpus_needed\": %lld, \"max_context\": %lld}", (long long)r->gpus_needed,
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
            printf("%-12s %5s %10lld %12s %12s %12s %12s", r->design, r->native ? "yes" : "", (long long)r->kv_elems_per_token_layer,
                   cli_commas(r->kv_bytes_per_token, b1, sizeof b1), cli_bytes((double)r->kv_bytes_total, b2, sizeof b2),
                   cli_bytes((double)r->weights_bytes, b3, sizeof b3), cli_bytes((double)r->total_bytes, b4, sizeof b4));
            if (have_mha) printf(" %7.2f%%", 100.0 * (1.0 - (double)r->kv_bytes_per_token / (double)mha.kv_bytes_per_token));
            else printf(" %8s", "");
            if (gpu_mem) printf(" %6lld %12lld", (long long)r->gpus_needed, (long long)r->max_context);
            printf("\n");
        }
        if (gpu_mem)
            printf("\nGPUs: %s, %s each; max ctx = longest context per sequence at batch %lld on %s.\n", gpu_name,
                   cli_bytes((double)gpu_mem, b1, sizeof b1), (long long)opt.batch,
                   n_gpus ? "the --gpus given" : "the GPUs needed");
        printf("KV -%%: reduction of the KV cache versus MHA of the same model. Weights: parameters of each design"
               " in %s.\n", kvattn_type_name(opt.weights_type));
        for (int i = 0; i < n_skipped; i++) printf("(skipped %s: %s)\n", skipped[i], skip_why[i]);
        /* The widely circulated example, worked correctly. */
        if (m.attn.kind == KVATTN_ATTN_GQA && m.n_layers == 32 && m.attn.n_heads == 32 && m.attn.head_dim == 64 &&
            opt.ctx == 80000 && opt.batch == 1 && opt.kv_type == KVATTN_TYPE_F16)
        {
            printf("\nNote: this is the circulating \"7B, 32 layers, 32 heads, head dim 64, 80,000 tokens\" example, "
                   "usually quoted as\n640 GB (MHA) / 80 GB (GQA-8) / 20 GB (MQA): about 30x too high. With "
                   "2 · layers · n_kv_heads · head_dim ·\ntokens · 2 bytes it is:");
            for (int i = 0; i < n_rows; i++)
                printf("%s %s %.2f GB", i ? "," : "", rows[i].design, (double)rows[i].kv_bytes_total / 1e9);
            printf(" (GB = 10^9 bytes).\n");
        }
    }

    if (plot) {
        plot_hline lines[5];
        int n_lines = 0;
        uint64_t mem = gpu_mem ? gpu_mem : 80ull << 30;
        const char *gname = gpu_mem ? gpu_name : "h100-80g";
        static char labels[5][64];
        for (int k = 1; k <= 8; k *= 2, n_lines++) {
            snprintf(labels[n_lines], sizeof labels[0], "%d× %s", k, gname);
            lines[n_lines] = (plot_hline){labels[n_lines], mem * (uint64_t)k};
        }
        snprintf(labels[4], sizeof labels[4], "weights (%s)", kvattn_type_name(opt.weights_type));
        lines[n_lines++] = (plot_hline){labels[4], rows[0].weights_bytes};
        char title[160];
        snprintf(title, sizeof title, "%s: KV cache (%s) against context — the memory wall", m.name,
                 kvattn_type_name(opt.kv_type));
        if (plan_plot_svg(plot, title, rows, n_rows, opt.batch, opt.ctx, lines, n_lines) != 0) {
            fprintf(stderr, "kvattn plan: --plot %s: cannot write the file\n", plot);
            return 1;
        }
        if (!json) printf("\nwrote %s\n", plot);
    }
    return 0;
}
