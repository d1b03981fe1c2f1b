/* Shared test helpers: checks that count failures, random data, random layers. */
#ifndef KVATTN_TEST_UTIL_H
#define KVATTN_TEST_UTIL_H

#include "kvattn.h"
#include "rng.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

extern int test_failures;
extern int test_checks;

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        test_checks++;                                                                                                 \
        if (!(cond)) {                                                                                                 \
            test_failures++;                                                                                           \
            fprintf(stderr, "%s:%d: FAILED: %s: ", __FILE__, __LINE__, #cond);                                         \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
        }                                                                                                              \
    } while (0)

#define CHECK_OK(expr)                                                                                                 \
    do {                                                                                                               \
        kvattn_status st_ = (expr);                                                                                    \
        CHECK(st_ == KVATTN_OK, "%s -> %s: %s", #expr, kvattn_status_name(st_), kvattn_last_error());                  \
    } while (0)

/* Prints the closing line and returns the exit code. */
int test_finish(const char *name);

/* Runs fn once per instruction-set level this CPU and build support
 * (kvattn_set_isa), lowest first, saying each; the best is left in force.
 * Returns how many levels ran. */
int test_each_isa(void (*fn)(const char *isa));

/* Where KVATTN_ISA names a level the kernels do not run at (this CPU lacks it):
 * 77, ctest's skip, after saying so; else 0. For the per-level ctest runs. */
int test_isa_skip(const char *name);

/* Where the real models are: $KVATTN_MODELS, else the folder the test was
 * built with (KVATTN_DEFAULT_MODELS: ../shared/models). */
const char *test_models_dir(void);
/* test_models_dir()/file, in one of four buffers used in turn. */
const char *test_model_path(const char *file);

/* Whether every file (NULL-terminated list) is under dir. */
int test_models_found(const char *dir, const char *const *files);
/* For a test whose real models are absent: the exit code after saying so.
 * 77 (ctest's skip) with the reason, unless KVATTN_REQUIRE_MODELS is set
 * (CI sets it: there a missing model is a failure) or a check already failed. */
int test_models_missing(const char *name, const char *dir);

/* Uniform floats in [-scale, scale), deterministic per seed. */
typedef kv_rng test_rng;
float test_uniform(test_rng *r);
void test_fill(test_rng *r, float *x, size_t n, float scale);
int test_randint(test_rng *r, int lo, int hi); /* [lo, hi] */

/* max|a - b| and max|a| over n elements. */
double test_max_abs_diff(const float *a, const float *b, size_t n);
double test_max_abs(const float *a, size_t n);

/* A layer with random weights (owned). Norm weights are 1 + small noise. */
typedef struct {
    kvattn_layer_config cfg;
    kvattn_layer_weights w;
    float *mem;
    size_t n_floats;
    float *extra; /* biases and head norms (test_layer_add_qwen) */
} test_layer;

void test_layer_init(test_layer *L, const kvattn_layer_config *cfg, uint64_t seed);
void test_layer_free(test_layer *L);
/* Adds to a GQA-family layer random Q/K/V biases (Qwen2) and/or per-head
 * Q/K RMSNorm weights (Qwen3). */
void test_layer_add_qwen(test_layer *L, int biases, int head_norms, uint64_t seed);

/* Config builders. */
kvattn_layer_config test_gqa_config(int d_model, int n_heads, int n_kv_heads, int head_dim);
kvattn_layer_config test_mla_config(int d_model, int n_heads, int q_lora, int dc, int dn, int dr, int dv);

#endif
