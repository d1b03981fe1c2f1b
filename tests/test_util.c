#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int test_failures = 0;
int test_checks = 0;

int test_finish(const char *name) {
    printf("%s: %d checks\n%d passed, %d failed\n", name, test_checks, test_checks - test_failures, test_failures);
    return test_failures ? 1 : 0;
}

int test_each_isa(void (*fn)(const char *isa)) {
    static const char *const levels[] = {"scalar", "avx2", "avx512", "avx512vnni"};
    const char *best = kvattn_isa();
    int ran = 0;
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        if (kvattn_set_isa(levels[i]) != KVATTN_OK) {
            printf("level %s: not on this CPU (%s), skipped\n", levels[i], kvattn_cpu_name());
            continue;
        }
        const int before = test_checks, failed = test_failures;
        fn(levels[i]);
        printf("level %s: %d checks, %d failed\n", levels[i], test_checks - before, test_failures - failed);
        ran++;
    }
    if (kvattn_set_isa(best) != KVATTN_OK) test_failures++;
    return ran;
}

int test_isa_skip(const char *name) {
    const char *want = getenv("KVATTN_ISA");
    if (!want || !*want || !strcmp(want, kvattn_isa())) return 0;
    printf("%s: skipped: KVATTN_ISA=%s, but this CPU (%s) runs %s\n", name, want, kvattn_cpu_name(), kvattn_isa());
    return 77;
}

#ifndef KVATTN_DEFAULT_MODELS
#define KVATTN_DEFAULT_MODELS "../shared/models"
#endif

const char *test_models_dir(void) {
    const char *e = getenv("KVATTN_MODELS");
    return e && *e ? e : KVATTN_DEFAULT_MODELS;
}

const char *test_model_path(const char *file) {
    static char buf[4][1024];
    static int k = 0;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", test_models_dir(), file);
    return buf[k];
}

int test_models_found(const char *dir, const char *const *files) {
    for (; *files; files++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, *files);
        FILE *f = fopen(path, "rb");
        if (!f) return 0;
        fclose(f);
    }
    return 1;
}

int test_models_missing(const char *name, const char *dir) {
    const char *req = getenv("KVATTN_REQUIRE_MODELS");
    if (test_failures || (req && *req && strcmp(req, "0"))) {
        fprintf(stderr, "%s: FAILED: the real models are not under %s (set KVATTN_MODELS)\n", name, dir);
        test_failures++;
        return test_finish(name);
    }
    printf("%s: %d checks passed; the rest skipped: the real models are not under %s (set KVATTN_MODELS; see "
           "../shared/models/README.md)\n",
           name, test_checks, dir);
    return 77;
}

float test_uniform(test_rng *r) { return kv_rng_uniform(r); }

void test_fill(test_rng *r, float *x, size_t n, float scale) { kv_rng_fill(r, x, n, scale); }

int test_randint(test_rng *r, int lo, int hi) {
    float u = 0.5f * (test_uniform(r) + 1.0f); /* [0, 1) */
    int v = lo + (int)(u * (float)(hi - lo + 1));
    return v > hi ? hi : v;
}

double test_max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || isnan(d)) m = isnan(d) ? INFINITY : d;
    }
    return m;
}

double test_max_abs(const float *a, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i]));
    return m;
}

static float *carve(float **p, size_t n) {
    float *r = *p;
    *p += n;
    return r;
}

void test_layer_init(test_layer *L, const kvattn_layer_config *cfg, uint64_t seed) {
    memset(L, 0, sizeof *L);
    L->cfg = *cfg;
    size_t D = (size_t)cfg->d_model, H = (size_t)cfg->n_heads;
    test_rng r = {seed * 0x9e3779b97f4a7c15ull + 1};
    if (cfg->kind == KVATTN_ATTN_GQA) {
        size_t qd = H * cfg->head_dim, kvd = (size_t)cfg->n_kv_heads * cfg->head_dim;
        L->n_floats = 2 * qd * D + 2 * kvd * D;
        float *p = L->mem = malloc(L->n_floats * sizeof(float));
        L->w.wq = kvattn_f32_matrix(carve(&p, qd * D));
        L->w.wk = kvattn_f32_matrix(carve(&p, kvd * D));
        L->w.wv = kvattn_f32_matrix(carve(&p, kvd * D));
        L->w.wo = kvattn_f32_matrix(carve(&p, D * qd));
        test_fill(&r, L->mem, L->n_floats, 1.0f / sqrtf((float)D));
        return;
    }
    size_t ql = (size_t)cfg->q_lora_rank, dc = (size_t)cfg->kv_lora_rank, dr = (size_t)cfg->qk_rope_head_dim;
    size_t dq = (size_t)cfg->qk_nope_head_dim + dr, dkv = (size_t)cfg->qk_nope_head_dim + cfg->v_head_dim;
    L->n_floats =
        (ql ? ql * D + ql + H * dq * ql : H * dq * D) + (dc + dr) * D + dc + H * dkv * dc + D * H * cfg->v_head_dim;
    float *p = L->mem = malloc(L->n_floats * sizeof(float));
    test_fill(&r, L->mem, L->n_floats, 1.0f / sqrtf((float)D));
    if (ql) {
        L->w.wq_a = kvattn_f32_matrix(carve(&p, ql * D));
        float *qn = carve(&p, ql);
        for (size_t i = 0; i < ql; i++) qn[i] = 1.0f + 0.1f * test_uniform(&r);
        L->w.q_norm = qn;
        L->w.wq_b = kvattn_f32_matrix(carve(&p, H * dq * ql));
    } else {
        L->w.wq = kvattn_f32_matrix(carve(&p, H * dq * D));
    }
    L->w.wkv_a = kvattn_f32_matrix(carve(&p, (dc + dr) * D));
    float *kn = carve(&p, dc);
    for (size_t i = 0; i < dc; i++) kn[i] = 1.0f + 0.1f * test_uniform(&r);
    L->w.kv_norm = kn;
    L->w.wkv_b = kvattn_f32_matrix(carve(&p, H * dkv * dc));
    L->w.wo = kvattn_f32_matrix(carve(&p, D * H * cfg->v_head_dim));
}

void test_layer_add_qwen(test_layer *L, int biases, int head_norms, uint64_t seed) {
    const kvattn_layer_config *c = &L->cfg;
    size_t hd = (size_t)c->head_dim, qd = (size_t)c->n_heads * hd, kvd = (size_t)c->n_kv_heads * hd;
    test_rng r = {seed * 0x9e3779b97f4a7c15ull + 3};
    float *p = L->extra = malloc(sizeof(float) * (qd + 2 * kvd + 2 * hd));
    test_fill(&r, p, qd + 2 * kvd, 0.5f);
    float *bq = carve(&p, qd), *bk = carve(&p, kvd), *bv = carve(&p, kvd), *qn = carve(&p, hd), *kn = carve(&p, hd);
    for (size_t i = 0; i < 2 * hd; i++) qn[i] = 1.0f + 0.3f * test_uniform(&r); /* qn and kn */
    if (biases) L->w.bq = bq, L->w.bk = bk, L->w.bv = bv;
    if (head_norms) L->w.q_head_norm = qn, L->w.k_head_norm = kn;
}

void test_layer_free(test_layer *L) {
    free(L->extra);
    free(L->mem);
    L->mem = NULL;
}

kvattn_layer_config test_gqa_config(int d_model, int n_heads, int n_kv_heads, int head_dim) {
    kvattn_layer_config c;
    memset(&c, 0, sizeof c);
    c.kind = KVATTN_ATTN_GQA;
    c.d_model = d_model;
    c.n_heads = n_heads;
    c.n_kv_heads = n_kv_heads;
    c.head_dim = head_dim;
    c.rope.theta = 10000.0f;
    c.rope.n_rot = head_dim - head_dim % 2;
    return c;
}

kvattn_layer_config test_mla_config(int d_model, int n_heads, int q_lora, int dc, int dn, int dr, int dv) {
    kvattn_layer_config c;
    memset(&c, 0, sizeof c);
    c.kind = KVATTN_ATTN_MLA;
    c.d_model = d_model;
    c.n_heads = n_heads;
    c.q_lora_rank = q_lora;
    c.kv_lora_rank = dc;
    c.qk_nope_head_dim = dn;
    c.qk_rope_head_dim = dr;
    c.v_head_dim = dv;
    c.rope.theta = 10000.0f;
    return c;
}
