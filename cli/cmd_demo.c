/* kvattn demo — the four designs side by side on real layer shapes with
 * synthetic weights: KV cache size for the whole model, the time of one
 * decode step at several context lengths, and MLA absorbed == naive. */
#include "cli_util.h"
#include "commands.h"
#include "options.h"

#include "kvattn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CTX_LIST 8

typedef struct {
    const char *model;
    int n_layers;
    kvattn_layer_config cfg;
} demo_design;

/* Llama-3-8B's attention layer with n_kv KV heads (32 = MHA, 8 = its own GQA, 1 = MQA). */
static demo_design llama3_8b(int n_kv) {
    demo_design d = {"llama-3-8b", 32, {0}};
    d.cfg.kind = KVATTN_ATTN_GQA;
    d.cfg.d_model = 4096;
    d.cfg.n_heads = 32;
    d.cfg.n_kv_heads = n_kv;
    d.cfg.head_dim = 128;
    d.cfg.rope.theta = 500000.0f;
    d.cfg.rope.pairing = KVATTN_ROPE_HALF;
    return d;
}

/* DeepSeek-V2-Lite's MLA layer (no query compression, YaRN ×40 from 4K). */
static demo_design deepseek_v2_lite(void) {
    demo_design d = {"deepseek-v2-lite", 27, {0}};
    kvattn_layer_config *c = &d.cfg;
    c->kind = KVATTN_ATTN_MLA;
    c->d_model = 2048;
    c->n_heads = 16;
    c->q_lora_rank = 0;
    c->kv_lora_rank = 512;
    c->qk_nope_head_dim = 128;
    c->qk_rope_head_dim = 64;
    c->v_head_dim = 128;
    c->rms_eps = 1e-6f;
    c->rope.theta = 10000.0f;
    c->rope.pairing = KVATTN_ROPE_ADJACENT;
    c->rope.yarn_factor = 40.0f;
    c->rope.yarn_orig_ctx = 4096;
    c->rope.yarn_beta_fast = 32.0f;
    c->rope.yarn_beta_slow = 1.0f;
    c->rope.yarn_mscale = 0.707f;
    return d;
}

/* Random weights owned by the demo. */
typedef struct {
    float *mem;
    size_t n_floats;
    kvattn_layer_weights w;
} owned_weights;

static float *take(float **p, size_t n) {
    float *r = *p;
    *p += n;
    return r;
}

static int make_weights(const kvattn_layer_config *c, owned_weights *ow, uint64_t seed) {
    size_t D = (size_t)c->d_model, H = (size_t)c->n_heads, total;
    memset(ow, 0, sizeof *ow);
    if (c->kind == KVATTN_ATTN_GQA) {
        size_t qd = H * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
        total = 2 * qd * D + 2 * kvd * D;
        if (!(ow->mem = malloc(total * sizeof(float)))) return -1;
        float *p = ow->mem;
        ow->w.wq = kvattn_f32_matrix(take(&p, qd * D));
        ow->w.wk = kvattn_f32_matrix(take(&p, kvd * D));
        ow->w.wv = kvattn_f32_matrix(take(&p, kvd * D));
        ow->w.wo = kvattn_f32_matrix(take(&p, D * qd));
    } else {
        size_t dq = (size_t)c->qk_nope_head_dim + c->qk_rope_head_dim, dc = (size_t)c->kv_lora_rank;
        size_t ql = (size_t)c->q_lora_rank, dkv = (size_t)c->qk_nope_head_dim + c->v_head_dim;
        total = (ql ? ql * D + ql + H * dq * ql : H * dq * D) + (dc + c->qk_rope_head_dim) * D + dc + H * dkv * dc +
                D * H * c->v_head_dim;
        if (!(ow->mem = malloc(total * sizeof(float)))) return -1;
        float *p = ow->mem;
        if (ql) {
            ow->w.wq_a = kvattn_f32_matrix(take(&p, ql * D));
            ow->w.q_norm = take(&p, ql);
            ow->w.wq_b = kvattn_f32_matrix(take(&p, H * dq * ql));
        } else {
            ow->w.wq = kvattn_f32_matrix(take(&p, H * dq * D));
        }
        ow->w.wkv_a = kvattn_f32_matrix(take(&p, (dc + c->qk_rope_head_dim) * D));
        ow->w.kv_norm = take(&p, dc);
        ow->w.wkv_b = kvattn_f32_matrix(take(&p, H * dkv * dc));
        ow->w.wo = kvattn_f32_matrix(take(&p, D * H * c->v_head_dim));
    }
    ow->n_floats = total;
    uint64_t rng = seed;
    kvattn_random_fill(&rng, ow->mem, total, 1.0f / sqrtf((float)D));
    /* Norm weights near 1, as trained models have them. */
    for (float *n = (float *)ow->w.kv_norm, *e = n ? n + c->kv_lora_rank : NULL; n && n < e; n++) *n = 1.0f + *n;
    for (float *n = (float *)ow->w.q_norm, *e = n ? n + c->q_lora_rank : NULL; n && n < e; n++) *n = 1.0f + *n;
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median seconds of `reps` decode steps at position ctx (cache truncated back each time). */
static double time_decode(const kvattn_layer_config *c, const kvattn_layer_weights *w, kvattn_cache *cache, int ctx,
                          kvattn_mla_mode mode, int reps, const float *x, float *out) {
    double t[16];
    if (reps > 16) reps = 16;
    for (int r = -1; r < reps; r++) { /* r = -1 warms up */
        double t0 = cli_now();
        if (kvattn_attn_forward(c, w, cache, 0, ctx, 1, x, out, mode) != KVATTN_OK) return -1.0;
        if (r >= 0) t[r] = cli_now() - t0;
        kvattn_cache_truncate(cache, ctx);
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    return t[reps / 2];
}

typedef struct {
    const char *label;
    demo_design d;
    kvattn_mla_mode mode;
} timed_row;

int cmd_demo(int argc, char **argv) {
    int64_t ctxs[MAX_CTX_LIST] = {1024, 4096, 16384};
    int n_ctx = 3, json = 0, quick = 0;
    int64_t reps = 5, naive_max = 4096, threads = 0;
    kvattn_type kv_type = KVATTN_TYPE_F16;
    const cli_option opts[] = {
        CLI_OPT_COUNTS("--ctx", ctxs, &n_ctx, MAX_CTX_LIST, 1, 1 << 24, "LIST",
                       "decode contexts to time (default 1K,4K,16K; K = 1024, k = 1000)"),
        CLI_OPT_TYPE("--kv-type", &kv_type, 1, "TYPE", "cache element type: f32, f16, bf16, q8_0 (default f16)"),
        CLI_OPT_COUNT("--reps", &reps, 1, 16, "N", "timed decode steps per point, median reported (default 5)"),
        CLI_OPT_COUNT("--naive-max-ctx", &naive_max, 1, 1 << 24, "N",
                      "longest context timed for naive MLA (default 4K; it is slow)"),
        CLI_OPT_COUNT("-t, --threads", &threads, 1, 1 << 16, "N", "threads (default: all cores)"),
        CLI_OPT_FLAG("--quick", &quick, "small contexts (128, 512), 2 reps: a smoke run"),
        CLI_OPT_FLAG("--json", &json, "one JSON object on stdout instead of tables"),
    };
    const cli_command cmd = {"demo", "[options]",
                             "Llama-3-8B's attention layer as MHA, GQA-8 and MQA, and DeepSeek-V2-Lite's MLA layer,\n"
                             "with synthetic weights: KV bytes, and one decode step timed at each context.",
                             opts, (int)(sizeof opts / sizeof opts[0])};
    const int parsed = cli_parse(&cmd, argc, argv);
    if (parsed != CLI_PARSED) return parsed == CLI_HELP ? 0 : 2;
    if (quick && !cli_given(&cmd, argc, argv, "--ctx")) ctxs[0] = 128, ctxs[1] = 512, n_ctx = 2;
    if (quick && !cli_given(&cmd, argc, argv, "--reps")) reps = 2;
    const int n_threads = kvattn_set_threads((int)threads); /* 0: the default */

    const timed_row rows[] = {
        {"MHA", llama3_8b(32), KVATTN_MLA_ABSORBED},         {"GQA-8", llama3_8b(8), KVATTN_MLA_ABSORBED},
        {"MQA", llama3_8b(1), KVATTN_MLA_ABSORBED},          {"MLA absorbed", deepseek_v2_lite(), KVATTN_MLA_ABSORBED},
        {"MLA naive", deepseek_v2_lite(), KVATTN_MLA_NAIVE},
    };
    const int n_rows = (int)(sizeof rows / sizeof rows[0]);
    char b1[32], b2[32], b3[32], b4[32], name[32];
    int tty = cli_stderr_is_tty();

    /* 1. KV cache size for the whole model. */
    if (json) printf("{\"kv_type\": \"%s\", \"memory\": [", kvattn_type_name(kv_type));
    else {
        printf("kvattn demo — KV cache of the whole model, %s elements\n\n", kvattn_type_name(kv_type));
        printf("%-14s %-18s %6s %10s %13s %12s %12s %8s\n", "design", "shape of", "layers", "elems/tok", "bytes/token",
               "KV @ 32K", "KV @ 128K", "vs MHA");
    }
    size_t mha_bpt = kvattn_kv_bytes_per_token(&rows[0].d.cfg, rows[0].d.n_layers, kv_type);
    for (int r = 0; r < n_rows - 1; r++) { /* naive MLA shares the latent cache */
        const demo_design *d = &rows[r].d;
        size_t bpt = kvattn_kv_bytes_per_token(&d->cfg, d->n_layers, kv_type);
        int64_t elems = kvattn_kv_elems_per_token_layer(&d->cfg);
        kvattn_config_design_name(&d->cfg, name, sizeof name);
        if (json)
            printf("%s{\"design\": \"%s\", \"model\": \"%s\", \"layers\": %d, \"kv_elems_per_token_layer\": %lld, "
                   "\"kv_bytes_per_token\": %zu, \"kv_bytes_32k\": %zu, \"kv_bytes_128k\": %zu}",
                   r ? ", " : "", name, d->model, d->n_layers, (long long)elems, bpt, bpt * 32768, bpt * 131072);
        else
            printf("%-14s %-18s %6d %10lld %13s %12s %12s %7.1f%%\n", r == 3 ? "MLA 512+64" : rows[r].label, d->model,
                   d->n_layers, (long long)elems, cli_commas(bpt, b1, sizeof b1),
                   cli_bytes((double)bpt * 32768, b2, sizeof b2), cli_bytes((double)bpt * 131072, b3, sizeof b3),
                   100.0 * (double)bpt / (double)mha_bpt);
    }

    /* 2. One decode step of one layer at each context. */
    if (json) printf("], \"decode\": [");
    else {
        printf("\nOne decode step of one attention layer (f32 projections + attention over the cache),\n"
               "synthetic weights, %s cache, %d threads, median of %d steps. GB/s counts the weights\n"
               "and the cache read once per step; `kvattn bench` will set it against the machine's limit.\n\n",
               kvattn_type_name(kv_type), n_threads, (int)reps);
        printf("%-14s %8s %10s %12s %12s %14s\n", "design", "context", "ms/step", "weights read", "KV read",
               "GB/s (all)");
    }
    int first = 1, rc = 0;
    float x[4096], out[4096];
    uint64_t rng = 12345;
    kvattn_random_fill(&rng, x, 4096, 1.0f);
    for (int r = 0; r < n_rows && rc == 0; r++) {
        const demo_design *d = &rows[r].d;
        owned_weights ow;
        kvattn_cache *cache = NULL;
        int64_t max_ctx = 0;
        for (int j = 0; j < n_ctx; j++) max_ctx = ctxs[j] > max_ctx ? ctxs[j] : max_ctx;
        if (make_weights(&d->cfg, &ow, 1000 + (uint64_t)r) != 0 ||
            kvattn_cache_create(&d->cfg, 1, (int)max_ctx + 1, kv_type, &cache) != KVATTN_OK) {
            fprintf(stderr, "kvattn demo: %s: %s\n", rows[r].label,
                    cache ? "out of memory for weights" : kvattn_last_error());
            free(ow.mem);
            rc = 1;
            break;
        }
        size_t layer_bpt = kvattn_cache_bytes_per_token(cache);
        for (int j = 0; j < n_ctx && rc == 0; j++) {
            int ctx = (int)ctxs[j];
            if (rows[r].mode == KVATTN_MLA_NAIVE && ctx > naive_max) {
                if (!json)
                    printf("%-14s %8d %12s   (naive MLA is slow here: --naive-max-ctx %d to time it)\n", rows[r].label,
                           ctx, "skipped", ctx);
                continue;
            }
            if (tty) fprintf(stderr, "\r  %s: filling the cache to %d tokens...", rows[r].label, ctx), fflush(stderr);
            kvattn_cache_truncate(cache, kvattn_cache_length(cache, 0) < ctx ? kvattn_cache_length(cache, 0) : ctx);
            if (kvattn_cache_fill_random(cache, 0, ctx - kvattn_cache_length(cache, 0), (uint64_t)ctx) != KVATTN_OK) {
                fprintf(stderr, "kvattn demo: filling the cache: %s\n", kvattn_last_error());
                rc = 1;
                break;
            }
            if (tty) fprintf(stderr, "\r%60s\r", ""), fflush(stderr);
            double s = time_decode(&d->cfg, &ow.w, cache, ctx, rows[r].mode, reps, x, out);
            if (s < 0) {
                fprintf(stderr, "kvattn demo: decode: %s\n", kvattn_last_error());
                rc = 1;
                break;
            }
            double kv_read = (double)layer_bpt * (ctx + 1), w_read = (double)ow.n_floats * sizeof(float);
            if (json)
                printf("%s{\"design\": \"%s\", \"label\": \"%s\", \"ctx\": %d, \"us_per_step\": %.1f, "
                       "\"weight_bytes_read\": %.0f, \"kv_bytes_read\": %.0f}",
                       first ? "" : ", ", kvattn_config_design_name(&d->cfg, name, sizeof name), rows[r].label, ctx,
                       s * 1e6, w_read, kv_read);
            else
                printf("%-14s %8d %10.3f %12s %12s %14.2f\n", rows[r].label, ctx, s * 1e3,
                       cli_bytes(w_read, b1, sizeof b1), cli_bytes(kv_read, b4, sizeof b4),
                       (w_read + kv_read) / s / 1e9);
            first = 0;
        }
        kvattn_cache_free(cache);
        free(ow.mem);
    }
    if (rc != 0) {
        if (json) printf("]}\n");
        return rc;
    }

    /* 3. MLA absorbed and naive agree (and both agree with the no-cache reference). */
    demo_design ds = deepseek_v2_lite();
    enum { PREFILL = 100, DECODE = 4, TOTAL = PREFILL + DECODE };
    owned_weights ow;
    kvattn_cache *ca = NULL, *cn = NULL;
    float *xs = malloc(sizeof(float) * TOTAL * 2048), *oa = malloc(sizeof(float) * TOTAL * 2048);
    float *on = malloc(sizeof(float) * TOTAL * 2048), *oref = malloc(sizeof(float) * TOTAL * 2048);
    int ok = xs && oa && on && oref && make_weights(&ds.cfg, &ow, 77) == 0 &&
             kvattn_cache_create(&ds.cfg, 1, TOTAL, kv_type, &ca) == KVATTN_OK &&
             kvattn_cache_create(&ds.cfg, 1, TOTAL, kv_type, &cn) == KVATTN_OK;
    if (ok) {
        kvattn_random_fill(&rng, xs, (size_t)TOTAL * 2048, 1.0f);
        ok = kvattn_attn_forward(&ds.cfg, &ow.w, ca, 0, 0, PREFILL, xs, oa, KVATTN_MLA_ABSORBED) == KVATTN_OK &&
             kvattn_attn_forward(&ds.cfg, &ow.w, cn, 0, 0, PREFILL, xs, on, KVATTN_MLA_NAIVE) == KVATTN_OK;
        for (int t = PREFILL; ok && t < TOTAL; t++)
            ok = kvattn_attn_forward(&ds.cfg, &ow.w, ca, 0, t, 1, xs + (size_t)t * 2048, oa + (size_t)t * 2048,
                                     KVATTN_MLA_ABSORBED) == KVATTN_OK &&
                 kvattn_attn_forward(&ds.cfg, &ow.w, cn, 0, t, 1, xs + (size_t)t * 2048, on + (size_t)t * 2048,
                                     KVATTN_MLA_NAIVE) == KVATTN_OK;
        ok = ok && kvattn_attn_reference(&ds.cfg, &ow.w, TOTAL, xs, oref) == KVATTN_OK;
    }
    if (!ok) {
        fprintf(stderr, "kvattn demo: MLA agreement check: %s\n", kvattn_last_error());
        rc = 1;
    } else {
        double amax = 0, d_an = 0, d_ar = 0;
        for (size_t i = 0; i < (size_t)TOTAL * 2048; i++) {
            amax = fmax(amax, fabs(oref[i]));
            d_an = fmax(d_an, fabs(oa[i] - on[i]));
            d_ar = fmax(d_ar, fabs(oa[i] - oref[i]));
        }
        if (json)
            printf("], \"mla_agreement\": {\"tokens\": %d, \"max_abs_out\": %.6g, \"absorbed_vs_naive\": %.3g, "
                   "\"absorbed_vs_reference\": %.3g}}\n",
                   TOTAL, amax, d_an / amax, d_ar / amax);
        else
            printf(
                "\nMLA absorbed vs naive, deepseek-v2-lite layer, %s cache, prefill %d + decode %d tokens:\n"
                "  max|absorbed - naive| / max|out|     = %.2e\n"
                "  max|absorbed - reference| / max|out| = %.2e   (reference: no cache, f64, DeepSeek's naive math%s)\n"
                "  absorbed caches %d elements/token/layer; DeepSeek's naive cache would hold %d (%.0fx more)\n",
                kvattn_type_name(kv_type), PREFILL, DECODE, d_an / amax, d_ar / amax,
                kv_type == KVATTN_TYPE_F32 ? "" : "; includes the cache's rounding", 512 + 64,
                16 * (128 + 64) + 16 * 128, (16.0 * (128 + 64) + 16 * 128) / 576.0);
    }
    kvattn_cache_free(ca);
    kvattn_cache_free(cn);
    free(ow.mem);
    free(xs), free(oa), free(on), free(oref);
    return rc;
}
