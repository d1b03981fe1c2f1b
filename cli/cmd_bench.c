#define _POSIX_C_SOURCE 200809L
/* kvattn bench — attention kernels and whole models against this machine's
 * own limits, measured in the same run. */
#include "cli_util.h"
#include "commands.h"
#include "options.h"
#include "svg_plot.h"

#include "kvattn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LIST 8
#define MAX_ROWS 256

typedef struct {
    char design[32];
    const char *mode; /* "", "absorbed", "naive" */
    int ctx;
    kvattn_type kv_type;
    kvattn_attn_timing t;
    kvattn_attn_timing paged; /* with --paged */
    double gbps, gflops, fraction;
    const char *bound;
} bench_row;

static void fill_row_rates(bench_row *r, const kvattn_machine_limits *lim) {
    double s = r->t.us_per_step * 1e-6;
    r->gbps = r->t.kv_bytes / s / 1e9;
    r->gflops = r->t.flops / s / 1e9;
    double t_mem = r->t.kv_bytes / (lim->read_gbps * 1e9), t_cmp = r->t.flops / (lim->fma_gflops * 1e9);
    r->bound = t_cmp > t_mem ? "compute" : "memory";
    r->fraction = (t_cmp > t_mem ? t_cmp : t_mem) / s;
}

/* `{"machine": {...}, ` : the limits measured, the CPU and the kernels' level. */
static void print_machine_json(const kvattn_machine_limits *lim) {
    printf("{\"machine\": {\"cpu\": ");
    cli_json_string(stdout, kvattn_cpu_name(), strlen(kvattn_cpu_name()));
    printf(", \"isa\": \"%s\", \"read_gbps\": %.3f, \"fma_gflops\": %.2f, \"simd_bits\": %d, \"threads\": %d}, ",
           kvattn_isa(), lim->read_gbps, lim->fma_gflops, lim->simd_bits, lim->threads);
}

/* Seconds for `gen` batched steps of seqs[0..B) from `depth` (the sessions
 * rewound there first; one step of warm-up). */
static double time_batch(kvattn_session **seqs, int B, const int32_t *tok, float *logits, int depth, int gen) {
    for (int i = 0; i < B; i++) kvattn_session_rewind(seqs[i], depth);
    if (kvattn_session_decode_batch(seqs, B, tok, logits) != KVATTN_OK) return -1.0;
    const double t0 = cli_now();
    for (int g = 0; g < gen; g++)
        if (kvattn_session_decode_batch(seqs, B, tok, logits) != KVATTN_OK) return -1.0;
    return cli_now() - t0;
}

/* Batched generation: for each batch size B, B sessions at `depth` step
 * together `gen` times (kvattn_session_decode_batch), against one session
 * alone; the two take turns three times and the best of each counts.
 * Rows go to stdout as a table or as JSON array elements. */
static int bench_batches(const kvattn_model *m, const int64_t *batches, int n_batches, int depth, int gen,
                         kvattn_type kv_type, kvattn_mla_mode mla, int json) {
    const int V = (int)kvattn_model_describe(m)->vocab_size;
    int max_b = 1, rc = 0;
    for (int i = 0; i < n_batches; i++)
        if (batches[i] > max_b) max_b = (int)batches[i];
    kvattn_session **seqs = calloc((size_t)max_b, sizeof *seqs);
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)max_b);
    float *logits = malloc(sizeof(float) * (size_t)V * (size_t)max_b);
    if (!seqs || !tok || !logits) rc = 1;
    for (int i = 0; rc == 0 && i < max_b; i++) {
        tok[i] = (int32_t)((i * 131 + 7) % V);
        rc = kvattn_session_create(m, depth + gen + 2, kv_type, mla, &seqs[i]) != KVATTN_OK ||
             kvattn_session_fill_random(seqs[i], depth, 42 + (uint64_t)i) != KVATTN_OK;
    }
    for (int k = 0; rc == 0 && k < n_batches; k++) {
        const int B = (int)batches[k];
        double alone = 1e30, batch = 1e30;
        for (int round = 0; rc == 0 && round < 3; round++) {
            const double ta = time_batch(seqs, 1, tok, logits, depth, gen);
            const double tb = time_batch(seqs, B, tok, logits, depth, gen);
            rc = ta < 0 || tb < 0;
            alone = ta < alone ? ta : alone, batch = tb < batch ? tb : batch;
        }
        if (rc) break;
        const double tps = B * gen / batch, tps1 = gen / alone;
        if (json)
            printf("%s{\"depth\": %d, \"batch\": %d, \"gen_tok_per_s\": %.3f, \"alone_tok_per_s\": %.3f, "
                   "\"over_alone\": %.3f}",
                   k ? ", " : "", depth, B, tps, tps1, tps / tps1);
        else printf("%8d %6d %14.2f %14.2f %14.2f %9.2fx\n", depth, B, tps, tps / B, tps1, tps / tps1);
        fflush(stdout);
    }
    if (rc) fprintf(stderr, "kvattn bench: %s\n", kvattn_last_error());
    for (int i = 0; seqs && i < max_b; i++) kvattn_session_free(seqs[i]);
    free(seqs), free(tok), free(logits);
    return rc;
}

static int bench_model(const char *path, const char *tok, const int64_t *depths, int n_depths, int prompt, int gen,
                       const int64_t *batches, int n_batches, kvattn_type kv_type, kvattn_mla_mode mla, int json,
                       kvattn_machine_limits *lim) {
    kvattn_model *m = NULL;
    if (kvattn_model_load(path, tok, &m) != KVATTN_OK) {
        fprintf(stderr, "kvattn bench: %s\n", kvattn_last_error());
        return 1;
    }
    const kvattn_model_desc *d = kvattn_model_describe(m);
    const kvattn_layer_config *a = &d->attn;
    const int V = (int)d->vocab_size;
    char design[32], b1[32], b2[32];
    kvattn_config_design_name(a, design, sizeof design);
    /* Bytes one generated token reads: every weight, except the experts no token routes to. */
    double wbytes = (double)kvattn_model_weight_bytes(m);
    if (d->n_routed_experts > 0) { /* less the share of expert weights no token of this step routes to */
        int moe_layers = 0;
        for (int l = 0; l < d->n_layers; l++) moe_layers += kvattn_model_is_moe_layer(d, l);
        double share = (double)(d->n_routed_experts - d->n_active_experts) / d->n_routed_experts;
        double params_all = (double)kvattn_model_params(d);
        double params_exp = 3.0 * a->d_model * (double)d->moe_ffn_dim * d->n_routed_experts * moe_layers;
        wbytes *= 1.0 - share * params_exp / params_all;
    }
    if (json) {
        print_machine_json(lim);
        printf("\"model\": \"%s\", \"design\": \"%s\", \"kv_type\": \"%s\", \"rows\": [", d->name, design,
               kvattn_type_name(kv_type));
    } else {
        printf("%s: %s, %d layers, %s of weights (%s read per token); KV %s\n", d->name, design, d->n_layers,
               cli_bytes((double)kvattn_model_weight_bytes(m), b1, sizeof b1), cli_bytes(wbytes, b2, sizeof b2),
               kvattn_type_name(kv_type));
        printf("%8s %12s %12s %12s %14s %10s\n", "depth", "prompt t/s", "gen t/s", "bound t/s", "gen/bound", "KV");
    }
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(prompt > gen ? prompt : gen));
    float *logits = malloc(sizeof(float) * (size_t)V);
    int rc = ids && logits ? 0 : 1;
    for (int i = 0; ids && i < (prompt > gen ? prompt : gen); i++) ids[i] = (int32_t)((i * 131 + 7) % V);
    for (int k = 0; rc == 0 && k < n_depths; k++) {
        int depth = (int)depths[k];
        kvattn_session *s = NULL;
        double tp = 0, tg = 0;
        if (kvattn_session_create(m, depth + prompt + gen + 1, kv_type, mla, &s) != KVATTN_OK ||
            kvattn_session_fill_random(s, depth, 42) != KVATTN_OK) {
            fprintf(stderr, "kvattn bench: %s\n", kvattn_last_error());
            rc = 1;
        }
        if (rc == 0 && prompt > 0) {
            double t0 = cli_now();
            rc = kvattn_session_decode(s, ids, prompt, logits, 0) != KVATTN_OK;
            tp = cli_now() - t0;
            kvattn_session_rewind(s, depth);
        }
        if (rc == 0) {
            kvattn_session_decode(s, ids, 1, logits, 0); /* warm-up */
            double t0 = cli_now();
            for (int i = 1; rc == 0 && i <= gen; i++)
                rc = kvattn_session_decode(s, &ids[i % gen], 1, logits, 0) != KVATTN_OK;
            tg = cli_now() - t0;
        }
        if (rc) {
            fprintf(stderr, "kvattn bench: %s\n", kvattn_last_error());
            kvattn_session_free(s);
            break;
        }
        double kv_bytes = (double)kvattn_cache_bytes_per_token(kvattn_session_cache(s)) * (depth + prompt / 2.0);
        double attn_flops;
        if (a->kind == KVATTN_ATTN_MLA && mla == KVATTN_MLA_ABSORBED)
            attn_flops = 2.0 * a->n_heads * (2.0 * a->kv_lora_rank + a->qk_rope_head_dim) * depth * d->n_layers;
        else if (a->kind == KVATTN_ATTN_MLA)
            attn_flops = (2.0 * a->kv_lora_rank * a->n_heads * (a->qk_nope_head_dim + a->v_head_dim) +
                          2.0 * a->n_heads * (a->qk_nope_head_dim + a->qk_rope_head_dim + a->v_head_dim)) *
                         depth * d->n_layers;
        else attn_flops = 4.0 * a->n_heads * a->head_dim * depth * d->n_layers;
        /* The limits again right after, keeping the higher: a noisy measurement only comes out low. */
        kvattn_machine_limits again;
        if (kvattn_measure_machine(&again) == KVATTN_OK) {
            if (again.read_gbps > lim->read_gbps) lim->read_gbps = again.read_gbps;
            if (again.fma_gflops > lim->fma_gflops) lim->fma_gflops = again.fma_gflops;
        }
        double bound_s = (wbytes + kv_bytes) / (lim->read_gbps * 1e9) + attn_flops / (lim->fma_gflops * 1e9);
        double gtps = gen / tg, ptps = prompt > 0 ? prompt / tp : 0, btps = 1.0 / bound_s;
        if (json)
            printf("%s{\"depth\": %d, \"prompt_tok_per_s\": %.3f, \"gen_tok_per_s\": %.3f, \"bound_tok_per_s\": %.3f, "
                   "\"fraction_of_bound\": %.3f, \"kv_bytes\": %.0f}",
                   k ? ", " : "", depth, ptps, gtps, btps, gtps / btps, kv_bytes);
        else
            printf("%8d %12.2f %12.2f %12.2f %13.0f%% %10s\n", depth, ptps, gtps, btps, 100.0 * gtps / btps,
                   cli_bytes(kv_bytes, b1, sizeof b1));
        fflush(stdout);
        kvattn_session_free(s);
    }
    if (json) printf("]");
    else
        printf("(bounds use the higher of the limits measured before and after each depth: %.1f GB/s, %.0f GFLOP/s)\n",
               lim->read_gbps, lim->fma_gflops);
    if (rc == 0 && n_batches > 0) {
        if (json) printf(", \"batch_rows\": [");
        else
            printf("\nbatched generation (kvattn_session_decode_batch), %d steps, against one session alone (best "
                   "of 3 each):\n%8s %6s %14s %14s %14s %10s\n",
                   gen, "depth", "batch", "gen t/s (all)", "per sequence", "alone t/s", "over alone");
        for (int k = 0; rc == 0 && k < n_depths; k++) {
            if (json && k) printf(", ");
            rc = bench_batches(m, batches, n_batches, (int)depths[k], gen, kv_type, mla, json);
        }
        if (json) printf("]");
    }
    if (json)
        printf(", \"machine_final\": {\"read_gbps\": %.2f, \"fma_gflops\": %.1f}}\n", lim->read_gbps, lim->fma_gflops);
    free(ids), free(logits);
    kvattn_model_free(m);
    return rc;
}

/* Time per step and fraction of bound against context, one line per design / mode / type. */
static int write_plot(const char *path, const char *model, const bench_row *rows, int n,
                      const kvattn_machine_limits *lim) {
    svg_series series[64];
    double xs[64][MAX_LIST], ts[64][MAX_LIST], fs[64][MAX_LIST];
    static char labels[64][64];
    int ns = 0;
    for (int i = 0; i < n && ns < 64; i++) {
        int j;
        char label[64];
        snprintf(label, sizeof label, "%s%s%s %s", rows[i].design, rows[i].mode[0] ? " " : "", rows[i].mode,
                 kvattn_type_name(rows[i].kv_type));
        for (j = 0; j < ns && strcmp(labels[j], label); j++) {}
        if (j == ns) {
            snprintf(labels[ns], sizeof labels[ns], "%s", label);
            series[ns] = (svg_series){labels[ns], 0, xs[ns], ts[ns]};
            ns++;
        }
        if (series[j].n < MAX_LIST) {
            xs[j][series[j].n] = rows[i].ctx;
            ts[j][series[j].n] = rows[i].t.us_per_step;
            fs[j][series[j].n] = 100.0 * rows[i].fraction;
            series[j].n++;
        }
    }
    svg_series fr[64];
    for (int j = 0; j < ns; j++) fr[j] = (svg_series){labels[j], series[j].n, xs[j], fs[j]};
    char title[256];
    snprintf(title, sizeof title, "%s: attention decode step (%.1f GB/s read, %.0f GFLOP/s FMA, %d threads)", model,
             lim->read_gbps, lim->fma_gflops, lim->threads);
    FILE *f = svg_open(path, 1000, 900, title);
    if (!f) return -1;
    svg_panel(f, 100, 60, 620, 340, "context (tokens)", "time per step", 1, SVG_MICROSECONDS, series, ns, NULL, 0);
    svg_hline hl[1] = {{"the bound (100%)", 100.0}};
    svg_panel(f, 100, 500, 620, 340, "context (tokens)", "fraction of the bound", 0, SVG_PERCENT, fr, ns, hl, 1);
    return svg_close(f);
}

static const char *const mla_modes[] = {"absorbed", "naive", NULL}; /* in kvattn_mla_mode's order */

int cmd_bench(int argc, char **argv) {
    const char *preset = "llama-3-8b", *config = NULL, *model = NULL, *tok = NULL, *plot = NULL;
    const char *designs[MAX_LIST];
    int n_designs = 0, json = 0, csv = 0, mla_mode = KVATTN_MLA_ABSORBED;
    int64_t ctxs[MAX_LIST] = {1024, 4096, 16384, 65536}, depths[MAX_LIST] = {4096, 16384}, naive_max = 16384;
    int64_t reps = 5, prompt = 64, gen = 16, threads = 0, paged = 0, batches[MAX_LIST];
    int n_ctx = 4, n_depths = 2, n_batches = 0;
    kvattn_type types[MAX_LIST] = {KVATTN_TYPE_F16};
    int n_types = 1;
    const cli_option opts[] = {
        CLI_OPT_STRING("--preset", &preset, "NAME", "the model whose attention is timed (default llama-3-8b)"),
        CLI_OPT_STRING("--config", &config, "FILE", "a Hugging Face config.json instead"),
        CLI_OPT_LIST("--as", designs, &n_designs, MAX_LIST, "DESIGN",
                     "time DESIGN beside the model's own (repeatable): mha, mqa, gqa:G, mla:DC+DR"),
        CLI_OPT_COUNTS("--ctx", ctxs, &n_ctx, MAX_LIST, 1, 1 << 24, "LIST",
                       "contexts of the attention-only steps (default 1K,4K,16K,64K)"),
        CLI_OPT_TYPES("--kv-type", types, &n_types, MAX_LIST, 1, "LIST",
                      "cache types, comma-separated: f32, f16, bf16, q8_0 (default f16; with -m one)"),
        CLI_OPT_COUNT("--reps", &reps, 1, 1 << 24, "N", "timed steps per point, best reported (default 5)"),
        CLI_OPT_COUNT("--naive-max-ctx", &naive_max, 1, 1 << 24, "N",
                      "longest context timed for naive MLA (default 16K: it is slow)"),
        CLI_OPT_COUNT("--paged", &paged, 64, 4096, "N",
                      "also time each step on a paged cache of N-token blocks (64 or 128, ...) in random order,\n"
                      "taking turns with the contiguous cache; prints paged / contiguous"),
        CLI_OPT_FLAG("--json", &json, "one JSON object on stdout"),
        CLI_OPT_FLAG("--csv", &csv, "CSV rows on stdout (attention-only)"),
        CLI_OPT_STRING("--plot", &plot, "FILE.svg", "step time and fraction of the bound against context"),
        CLI_OPT_STRING("-m", &model, "MODEL", "end to end: a model file instead of attention alone"),
        CLI_OPT_STRING("-z", &tok, "TOKENIZER", "llama2.c tokenizer.bin, with -m"),
        CLI_OPT_COUNTS("--depth", depths, &n_depths, MAX_LIST, 0, 1 << 24, "LIST",
                       "with -m: cache depths to generate at (default 4K,16K)"),
        CLI_OPT_COUNT("--prompt", &prompt, 0, 1 << 24, "N", "with -m: prompt tokens timed at each depth (default 64)"),
        CLI_OPT_COUNT("--gen", &gen, 2, 1 << 24, "N", "with -m: tokens generated at each depth (default 16)"),
        CLI_OPT_COUNTS("--batch", batches, &n_batches, MAX_LIST, 1, KVATTN_DECODE_BATCH_MAX, "LIST",
                       "with -m: also generate with that many sequences stepping together (e.g. 1,4,16)"),
        CLI_OPT_CHOICE("--mla", &mla_mode, mla_modes, "MODE", "MLA models run absorbed (default) or naive"),
        CLI_OPT_COUNT("-t, --threads", &threads, 1, 1 << 16, "N", "threads (default: all cores)"),
    };
    const cli_command cmd = {
        "bench",
        "[--preset NAME | --config FILE] [--as DESIGN]... [--ctx LIST] [--kv-type LIST] [options]\n"
        "       kvattn bench -m MODEL [--depth LIST] [--prompt N] [--gen N] [--kv-type T] [--mla MODE]",
        "Attention-only decode: for a model's shapes in its own design and in MHA, GQA-8, MQA and MLA\n"
        "512+64 (or the --as designs), one decode step over a cache of each context and KV type: time,\n"
        "bytes read, GB/s, GFLOP/s and the fraction of its bound — memory (bytes / the streaming read\n"
        "bandwidth) or compute (flops / the FMA peak), both measured in the same run. Each step starts\n"
        "with the cache cold, as in a real model. MLA runs absorbed and naive.\n\n"
        "With -m: end-to-end prompt and generation tokens/s at each depth (the cache is filled with\n"
        "random rows to that depth), and generation as a fraction of the model's bound:\n"
        "(weights read + KV read) / bandwidth + attention flops / FMA peak.",
        opts, (int)(sizeof opts / sizeof opts[0])};
    const int parsed = cli_parse(&cmd, argc, argv);
    if (parsed != CLI_PARSED) return parsed == CLI_HELP ? 0 : 2;
    static const char *const attention_only[] = {"--preset",        "--config", "--as",   "--ctx",  "--reps",
                                                 "--naive-max-ctx", "--csv",    "--plot", "--paged"};
    static const char *const model_only[] = {"-z", "--depth", "--prompt", "--gen", "--mla", "--batch"};
    for (size_t i = 0; i < sizeof attention_only / sizeof attention_only[0]; i++)
        if (model && cli_given(&cmd, argc, argv, attention_only[i])) {
            fprintf(stderr, "kvattn bench: %s is for attention-only runs; with -m it would be ignored\n",
                    attention_only[i]);
            return 2;
        }
    for (size_t i = 0; i < sizeof model_only / sizeof model_only[0]; i++)
        if (!model && cli_given(&cmd, argc, argv, model_only[i])) {
            fprintf(stderr, "kvattn bench: %s needs -m MODEL\n", model_only[i]);
            return 2;
        }
    if (model && n_types > 1) {
        fprintf(stderr, "kvattn bench: with -m, --kv-type takes one type\n");
        return 2;
    }
    if (json && csv) {
        fprintf(stderr, "kvattn bench: give --json or --csv, not both\n");
        return 2;
    }
    if (threads) kvattn_set_threads((int)threads);
    const kvattn_mla_mode mla = (kvattn_mla_mode)mla_mode;
    kvattn_machine_limits lim;
    if (cli_stderr_is_tty()) fprintf(stderr, "measuring the machine (read bandwidth, FMA peak)...\r");
    if (kvattn_measure_machine(&lim) != KVATTN_OK) {
        fprintf(stderr, "kvattn bench: %s\n", kvattn_last_error());
        return 1;
    }
    if (cli_stderr_is_tty()) fprintf(stderr, "%60s\r", "");
    if (model) {
        return bench_model(model, tok, depths, n_depths, (int)prompt, (int)gen, batches, n_batches, types[0], mla, json,
                           &lim);
    }

    kvattn_model_desc m;
    kvattn_status st = config ? kvattn_model_from_hf_config(config, &m) : kvattn_preset_find(preset, &m);
    if (st != KVATTN_OK) {
        fprintf(stderr, "kvattn bench: %s\n", kvattn_last_error());
        return 1;
    }
    static const char *const defaults[] = {"mha", "gqa:8", "mqa", "mla:512+64"};
    const char *want[MAX_LIST + 1];
    int n_want = 0;
    want[n_want++] = NULL;
    for (int i = 0; i < (n_designs ? n_designs : 4); i++) want[n_want++] = n_designs ? designs[i] : defaults[i];
    kvattn_layer_config cfgs[MAX_LIST + 1];
    int n_cfgs = 0;
    for (int i = 0; i < n_want; i++) {
        kvattn_layer_config c = m.attn;
        if (want[i] && kvattn_redesign(&m.attn, want[i], &c) != KVATTN_OK) {
            if (n_designs) {
                fprintf(stderr, "kvattn bench: %s\n", kvattn_last_error());
                return 2;
            }
            continue; /* e.g. gqa:8 of a model with 71 heads */
        }
        char a1[32], a2[32];
        int dup = 0;
        for (int j = 0; j < n_cfgs; j++)
            dup |= !strcmp(kvattn_config_design_name(&cfgs[j], a1, sizeof a1),
                           kvattn_config_design_name(&c, a2, sizeof a2));
        if (!dup) cfgs[n_cfgs++] = c;
    }
    bench_row *rows = calloc(MAX_ROWS, sizeof *rows);
    int n_rows = 0, rc = 0;
    if (!json && !csv) {
        printf("machine: %s, kernels %s; %.1f GB/s streaming read, %.0f GFLOP/s f32 FMA (%d-bit), %d threads "
               "(measured now)\n",
               kvattn_cpu_name(), kvattn_isa(), lim.read_gbps, lim.fma_gflops, lim.simd_bits, lim.threads);
        printf("%s: one decode step of attention only, per layer (best of %d)\n\n", m.name, (int)reps);
        printf("%-12s %-9s %7s %5s %10s %10s %9s %9s %8s %9s", "design", "mla", "ctx", "kv", "us/step", "KV read",
               "GB/s", "GFLOP/s", "bound", "of bound");
        if (paged) printf(" %10s %7s", "paged us", "paged/c");
        printf("\n");
    } else if (csv) {
        printf("design,mla,ctx,kv_type,us_per_step,kv_bytes,gbps,gflops,bound,fraction_of_bound%s\n",
               paged ? ",paged_block_tokens,paged_us_per_step,paged_over_contiguous" : "");
    }
    for (int c = 0; c < n_cfgs && rc == 0; c++)
        for (int mode = 0; mode < (cfgs[c].kind == KVATTN_ATTN_MLA ? 2 : 1) && rc == 0; mode++)
            for (int ti = 0; ti < n_types && rc == 0; ti++)
                for (int k = 0; k < n_ctx && rc == 0 && n_rows < MAX_ROWS; k++) {
                    if (mode == KVATTN_MLA_NAIVE && ctxs[k] > naive_max) continue;
                    bench_row *r = &rows[n_rows];
                    kvattn_config_design_name(&cfgs[c], r->design, sizeof r->design);
                    r->mode = cfgs[c].kind == KVATTN_ATTN_MLA ? (mode ? "naive" : "absorbed") : "";
                    r->ctx = (int)ctxs[k];
                    r->kv_type = types[ti];
                    if (cli_stderr_is_tty())
                        fprintf(stderr, "  %s %s ctx %d %s...\r", r->design, r->mode, r->ctx,
                                kvattn_type_name(r->kv_type));
                    if (kvattn_bench_attention_paged(&cfgs[c], r->ctx, r->kv_type, (kvattn_mla_mode)mode, (int)reps,
                                                     (int)paged, &r->t, &r->paged) != KVATTN_OK) {
                        fprintf(stderr, "kvattn bench: %s\n", kvattn_last_error());
                        rc = 1;
                        break;
                    }
                    fill_row_rates(r, &lim);
                    char b1[32];
                    const double ratio = r->paged.us_per_step / r->t.us_per_step;
                    if (!json && !csv) {
                        printf("%-12s %-9s %7d %5s %10.1f %10s %9.2f %9.1f %8s %8.0f%%", r->design, r->mode, r->ctx,
                               kvattn_type_name(r->kv_type), r->t.us_per_step, cli_bytes(r->t.kv_bytes, b1, sizeof b1),
                               r->gbps, r->gflops, r->bound, 100.0 * r->fraction);
                        if (paged) printf(" %10.1f %7.3f", r->paged.us_per_step, ratio);
                        printf("\n");
                    } else if (csv) {
                        printf("%s,%s,%d,%s,%.2f,%.0f,%.3f,%.3f,%s,%.4f", r->design, r->mode, r->ctx,
                               kvattn_type_name(r->kv_type), r->t.us_per_step, r->t.kv_bytes, r->gbps, r->gflops,
                               r->bound, r->fraction);
                        if (paged) printf(",%d,%.2f,%.4f", (int)paged, r->paged.us_per_step, ratio);
                        printf("\n");
                    }
                    fflush(stdout);
                    n_rows++;
                }
    /* The limits again after the kernels; the higher of each pair is the machine's (a noisy
     * measurement can only come out low), and every fraction is recomputed against it. */
    kvattn_machine_limits again;
    if (rc == 0 && n_rows > 0 && kvattn_measure_machine(&again) == KVATTN_OK) {
        int changed = again.read_gbps > lim.read_gbps || again.fma_gflops > lim.fma_gflops;
        if (again.read_gbps > lim.read_gbps) lim.read_gbps = again.read_gbps;
        if (again.fma_gflops > lim.fma_gflops) lim.fma_gflops = again.fma_gflops;
        for (int i = 0; i < n_rows; i++) fill_row_rates(&rows[i], &lim);
        if (changed && !json && !csv) {
            printf("\nre-measured after the kernels: %.1f GB/s, %.0f GFLOP/s; fractions against the higher limits:\n",
                   lim.read_gbps, lim.fma_gflops);
            for (int i = 0; i < n_rows; i++)
                printf("  %-12s %-9s %7d %5s %8.0f%% of %s bound\n", rows[i].design, rows[i].mode, rows[i].ctx,
                       kvattn_type_name(rows[i].kv_type), 100.0 * rows[i].fraction, rows[i].bound);
        }
    }
    if (json) {
        print_machine_json(&lim);
        printf("\"model\": \"%s\", \"rows\": [", m.name);
        for (int i = 0; i < n_rows; i++) {
            bench_row *r = &rows[i];
            printf("%s{\"design\": \"%s\", \"mla\": \"%s\", \"ctx\": %d, \"kv_type\": \"%s\", \"us_per_step\": %.3f, "
                   "\"us_median\": %.3f, \"kv_bytes\": %.0f, \"gbps\": %.4f, \"gflops\": %.4f, \"bound\": \"%s\", "
                   "\"fraction_of_bound\": %.4f",
                   i ? ", " : "", r->design, r->mode, r->ctx, kvattn_type_name(r->kv_type), r->t.us_per_step,
                   r->t.us_median, r->t.kv_bytes, r->gbps, r->gflops, r->bound, r->fraction);
            if (paged)
                printf(", \"paged_block_tokens\": %d, \"paged_us_per_step\": %.3f, \"paged_us_median\": %.3f, "
                       "\"paged_over_contiguous\": %.4f",
                       (int)paged, r->paged.us_per_step, r->paged.us_median, r->paged.us_per_step / r->t.us_per_step);
            printf("}");
        }
        printf("]}\n");
    }
    if (rc == 0 && plot && write_plot(plot, m.name, rows, n_rows, &lim) != 0) {
        fprintf(stderr, "kvattn bench: --plot %s: cannot write the file\n", plot);
        rc = 1;
    }
    free(rows);
    return rc;
}
