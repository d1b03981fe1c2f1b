/* Measuring: the machine's limits, and attention kernels against them. */
#define _POSIX_C_SOURCE 200809L
#include "bench/bench.h"
#include "attn/attn_core.h"
#include "attn/attn_layer.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "kernels/vec.h"
#include "kv/kv_pool.h"
#include "rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Streams read at once by each thread. A core's hardware prefetchers keep each
 * sequential stream only so far ahead; one stream per core leaves part of this
 * machine's bandwidth unused (`build/stream_probe 1 8`, bench/stream_probe.c),
 * so the bound is measured the way the fastest reader (several far-apart
 * streams) gets it. */
#define READ_STREAMS 8

/* Sum of a buffer, read once, in parallel, each thread reading `streams`
 * far-apart parts of its share a cache line from each in turn; the result is
 * used so the loads stay. *n_read: the floats read (whole lines). */
static float stream_sum(const float *x, size_t n, int streams, size_t *n_read) {
    float total = 0.0f;
    size_t read = 0;
#pragma omp parallel reduction(+ : total, read)
    {
#ifdef _OPENMP
        const size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
#else
        const size_t t = 0, nt = 1;
#endif
        const size_t per = n / nt / (size_t)streams / 16 * 16; /* floats per stream, whole cache lines */
        const float *base = x + t * per * (size_t)streams;
        total += kv_kernels_active->sum_streams(base, per, streams);
        read += per * (size_t)streams;
    }
    *n_read = read;
    return total;
}

float *kv_read_buffer(size_t n) {
    float *x = kv_alloc_aligned(n * sizeof(float));
    if (!x) return NULL;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) x[i] = (float)(i & 7);
    return x;
}

double kv_read_gbps(const float *x, size_t n, int streams, int reps) {
    double best = 1e30;
    volatile float keep = 0.0f;
    size_t n_read = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        keep += stream_sum(x, n, streams, &n_read);
        double t = now() - t0;
        if (t < best) best = t;
    }
    (void)keep;
    return (double)n_read * sizeof(float) / best / 1e9;
}

/* FMA throughput: 12 independent chains per thread, all in registers, at the kernels' width. */
static double fma_run(long iters) {
    double sink = 0.0;
#pragma omp parallel reduction(+ : sink)
    { sink += kv_kernels_active->fma_chains(iters); }
    return sink;
}

kvattn_status kvattn_measure_machine(kvattn_machine_limits *out) {
    if (!out) return kv_fail(KVATTN_ERR_INVALID_ARG, "measure machine: NULL");
    const size_t n = (size_t)512 << 20 >> 2; /* 512 MiB: far past any cache */
    float *x = kv_read_buffer(n);
    if (!x) return kv_fail(KVATTN_ERR_NOMEM, "measure machine: cannot allocate 512 MiB");
    out->read_gbps = kv_read_gbps(x, n, READ_STREAMS, 5);
    kv_free_aligned(x);
    const long iters = 20000000;
    volatile double sink = 0.0;
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = now();
        sink += fma_run(iters);
        double t = now() - t0;
        if (t < best) best = t;
    }
    (void)sink;
    out->threads = kv_threads();
    out->simd_bits = kv_kernels_active->simd_bits;
    const double lanes = out->simd_bits / 32.0;
    out->fma_gflops = (double)out->threads * iters * 12 * lanes * 2 / best / 1e9;
    return KVATTN_OK;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Floats read between timed steps to push the cache out of L2 and L3 (this machine: 300 MiB L3). */
#define EVICT_FLOATS ((size_t)512 << 20 >> 2)

/* The bytes and flops of one step of attention over ctx tokens. */
static void step_work(const kvattn_layer_config *cfg, int ctx, size_t bytes_per_token, kvattn_mla_mode mode,
                      kvattn_attn_timing *out) {
    const int H = cfg->n_heads;
    out->kv_bytes = (double)bytes_per_token * ctx;
    const double n = ctx;
    if (cfg->kind != KVATTN_ATTN_MLA) {
        out->flops = 4.0 * H * cfg->head_dim * n;
        return;
    }
    const double dc = cfg->kv_lora_rank, dr = cfg->qk_rope_head_dim, dn = cfg->qk_nope_head_dim, dv = cfg->v_head_dim;
    if (mode == KVATTN_MLA_ABSORBED) out->flops = 2.0 * H * (dc + dr + dc) * n + 2.0 * H * (dn + dv) * dc;
    else out->flops = 2.0 * n * dc * H * (dn + dv) + 2.0 * H * n * (dn + dr + dv);
}

/* The best and the median of reps step times. */
static void summarize(double *t, int reps, kvattn_attn_timing *out) {
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    out->us_per_step = t[0] * 1e6; /* the best: interference only ever slows a step down */
    out->us_median = t[reps / 2] * 1e6;
}

kvattn_status kvattn_bench_attention(const kvattn_layer_config *cfg, int ctx, kvattn_type kv_type, kvattn_mla_mode mode,
                                     int reps, kvattn_attn_timing *out) {
    return kvattn_bench_attention_paged(cfg, ctx, kv_type, mode, reps, 0, out, NULL);
}

kvattn_status kvattn_bench_attention_paged(const kvattn_layer_config *cfg, int ctx, kvattn_type kv_type,
                                           kvattn_mla_mode mode, int reps, int block_tokens,
                                           kvattn_attn_timing *contiguous, kvattn_attn_timing *paged) {
    kvattn_status st = kvattn_config_validate(cfg);
    if (st != KVATTN_OK) return st;
    if (!contiguous || ctx < 1 || reps < 1 || (block_tokens > 0 && !paged))
        return kv_fail(KVATTN_ERR_INVALID_ARG, "bench: ctx = %d, reps = %d, block_tokens = %d", ctx, reps,
                       block_tokens);
    const int mla = cfg->kind == KVATTN_ATTN_MLA, H = cfg->n_heads;
    const int dq = mla ? cfg->qk_nope_head_dim + cfg->qk_rope_head_dim : cfg->head_dim;
    const int dv = mla ? cfg->v_head_dim : cfg->head_dim;
    const int n_caches = block_tokens > 0 ? 2 : 1;
    kvattn_cache *caches[2] = {NULL, NULL};
    kvattn_kv_pool *pool = NULL;
    if ((st = kvattn_cache_create(cfg, 1, ctx, kv_type, &caches[0])) != KVATTN_OK) return st;
    if (n_caches == 2) { /* the blocks in random order, as a pool serving many sequences hands them out */
        st = kvattn_kv_pool_create(cfg, 1, kv_type, kv_type, block_tokens, (ctx + block_tokens - 1) / block_tokens,
                                   &pool);
        if (st == KVATTN_OK) {
            kv_pool_shuffle(pool, KV_RNG_DEFAULT_SEED);
            st = kvattn_cache_create_paged(pool, ctx, &caches[1]);
        }
        kvattn_kv_pool_free(pool); /* the cache holds it */
        if (st != KVATTN_OK) {
            kvattn_cache_free(caches[0]);
            return st;
        }
    }
    kv_rng rng = {KV_RNG_DEFAULT_SEED};
    size_t wkv_b_n = mla ? (size_t)H * (cfg->qk_nope_head_dim + dv) * cfg->kv_lora_rank : 1;
    float *q = malloc(sizeof(float) * (size_t)H * dq), *o = malloc(sizeof(float) * (size_t)H * dv);
    float *wkv_b = malloc(sizeof(float) * wkv_b_n);
    uint16_t *wkv_b16 = malloc(sizeof(uint16_t) * wkv_b_n);
    double *t = malloc(sizeof(double) * (size_t)reps * 2);
    float *evict = kv_read_buffer(EVICT_FLOATS);
    volatile float evict_sink = 0.0f;
    if (!q || !o || !wkv_b || !wkv_b16 || !t || !evict) st = kv_fail(KVATTN_ERR_NOMEM, "bench: out of memory");
    for (int c = 0; c < n_caches && st == KVATTN_OK; c++) st = kvattn_cache_fill_random(caches[c], 0, ctx, rng.s);
    if (st == KVATTN_OK) {
        kv_rng_fill(&rng, q, (size_t)H * dq, 1.0f);
        kv_rng_fill(&rng, wkv_b, wkv_b_n, 1.0f / sqrtf((float)cfg->kv_lora_rank + 1.0f));
        kv_row_store(KVATTN_TYPE_BF16, wkv_b, wkv_b16, (int)wkv_b_n); /* as DeepSeek ships it */
        kvattn_layer_weights w = {0};
        w.wkv_b = (kvattn_matrix){.data = wkv_b16, .type = KVATTN_TYPE_BF16};
        const float scale = kvattn_config_softmax_scale(cfg);
        /* r = -1 warms up; the caches take turns, so that the machine's drift falls on both alike */
        for (int r = -1; r < reps && st == KVATTN_OK; r++)
            for (int c = 0; c < n_caches && st == KVATTN_OK; c++) {
                kv_rows kr, vr;
                kv_cache_rows(caches[c], 0, &kr, &vr);
                /* A decode step finds its layer's cache cold (every other layer and all the weights
                 * were read since), so each step here starts after reading a buffer past the caches. */
                size_t n_read = 0;
                evict_sink += stream_sum(evict, EVICT_FLOATS, READ_STREAMS, &n_read);
                double t0 = now();
                if (mla) st = kv_mla_attend(cfg, &w, caches[c], 0, ctx - 1, 1, q, o, mode);
                else if (kv_attend(q, 1, H, cfg->n_kv_heads, &kr, &vr, ctx - 1, scale, o) != 0)
                    st = kv_fail(KVATTN_ERR_NOMEM, "bench: out of memory");
                if (r >= 0) t[(size_t)c * reps + r] = now() - t0;
            }
    }
    if (st == KVATTN_OK)
        for (int c = 0; c < n_caches; c++) {
            kvattn_attn_timing *out = c ? paged : contiguous;
            summarize(t + (size_t)c * reps, reps, out);
            step_work(cfg, ctx, kvattn_cache_bytes_per_token(caches[c]), mode, out);
        }
    kvattn_cache_free(caches[0]), kvattn_cache_free(caches[1]);
    kv_free_aligned(evict);
    free(q), free(o), free(wkv_b), free(wkv_b16), free(t);
    (void)evict_sink;
    return st;
}
