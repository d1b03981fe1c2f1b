/* Allocation failures injected: the library's Nth allocation fails, for every N
 * over loading a model (GGUF and llama2.c), making a session and decoding two
 * steps. Each failure must come back as a status with a message, never a crash,
 * and free what it took (the sanitizer runs check leaks). The library's calls
 * to malloc, calloc, realloc, aligned_alloc and posix_memalign reach the wrappers below through
 * the linker's --wrap (the static library is linked into this test). */
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
int __real_posix_memalign(void **p, size_t align, size_t n);

static long calls, fail_at = -1; /* fail the call numbered fail_at (from 0); -1: none */

static int fail_now(void) { return calls++ == fail_at; }
void *__wrap_malloc(size_t n) { return fail_now() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t size) { return fail_now() ? NULL : __real_calloc(n, size); }
void *__wrap_realloc(void *p, size_t n) { return fail_now() ? NULL : __real_realloc(p, n); }
void *__wrap_aligned_alloc(size_t align, size_t n) { return fail_now() ? NULL : __real_aligned_alloc(align, n); }
int __wrap_posix_memalign(void **p, size_t align, size_t n) {
    return fail_now() ? 12 : __real_posix_memalign(p, align, n);
}

/* Load, session, two decode steps; 0 when all succeeded. */
static int run_once(const char *model, const char *tok) {
    kvattn_model *m = NULL;
    kvattn_session *s = NULL;
    float logits[512];
    const int32_t ids[2] = {1, 20};
    kvattn_status st = kvattn_model_load(model, tok, &m);
    if (st == KVATTN_OK) st = kvattn_session_create(m, 8, KVATTN_TYPE_Q8_0, KVATTN_MLA_ABSORBED, &s);
    if (st == KVATTN_OK) st = kvattn_session_decode(s, ids, 2, logits, 0);
    if (st == KVATTN_OK) st = kvattn_session_decode(s, ids, 1, logits, 0);
    if (st != KVATTN_OK)
        CHECK(*kvattn_last_error() != '\0', "allocation %ld failed: status %s without a message", fail_at,
              kvattn_status_name(st));
    kvattn_session_free(s);
    kvattn_model_free(m);
    return st != KVATTN_OK;
}

int main(void) {
    char gguf[1024], bin[1024], tok[1024];
    snprintf(gguf, sizeof gguf, "%s/stories260K.gguf", test_models_dir());
    snprintf(bin, sizeof bin, "%s/stories260K.bin", test_models_dir());
    snprintf(tok, sizeof tok, "%s/tok512.bin", test_models_dir());
    static const char *const needed[] = {"stories260K.gguf", "stories260K.bin", "tok512.bin", NULL};
    if (!test_models_found(test_models_dir(), needed)) return test_models_missing("test_alloc_fail", test_models_dir());
    kvattn_set_threads(1); /* one thread: the allocations come in one order */
    const char *models[2][2] = {{gguf, NULL}, {bin, tok}};
    for (int k = 0; k < 2; k++) {
        fail_at = -1; /* twice: the first run also makes the per-thread scratch, which stays */
        CHECK(run_once(models[k][0], models[k][1]) == 0, "%s runs with no failure injected", models[k][0]);
        calls = 0;
        CHECK(run_once(models[k][0], models[k][1]) == 0, "%s runs again", models[k][0]);
        const long total = calls;
        int failed = 0;
        for (fail_at = 0; fail_at < total; fail_at++) {
            calls = 0;
            failed += run_once(models[k][0], models[k][1]);
        }
        printf("%s: %ld allocations, each failed in turn: %d runs ended with an error\n", models[k][0], total, failed);
        CHECK(failed == total, "%s: %ld of %ld failed allocations went unnoticed", models[k][0], total - failed, total);
    }
    return test_finish("test_alloc_fail");
}
