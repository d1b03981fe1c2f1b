#include "kernels.h"

#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef KVATTN_X86_KERNELS
static const kv_kernels *const tables[KV_ISA_COUNT] = {&kv_kernels_scalar, &kv_kernels_avx2, &kv_kernels_avx512,
                                                       &kv_kernels_avx512_vnni};
#else
static const kv_kernels *const tables[KV_ISA_COUNT] = {&kv_kernels_scalar, NULL, NULL, NULL};
#endif

const kv_kernels *kv_kernels_active = &kv_kernels_scalar;
int kv_exact_products = 0;
int kv_fast_products = 0;

const kv_kernels *kv_kernels_for(kv_isa isa) {
    if (isa < 0 || isa >= KV_ISA_COUNT || isa > kv_cpu_best_isa()) return NULL;
    return tables[isa];
}

/* The best level, or the lower one KVATTN_ISA names; before main, so that
 * every kernel call sees one table. A name that is unknown or beyond this CPU
 * is said on stderr and the best level runs. */
__attribute__((constructor)) static void kernels_select(void) {
    (void)kv_cpu_model(); /* its buffer filled once, before any thread */
    kv_isa best = kv_cpu_best_isa();
    while (best > KV_ISA_SCALAR && !tables[best]) best--;
    kv_kernels_active = tables[best];
    const char *exact = getenv("KVATTN_EXACT");
    kv_exact_products = exact && *exact && strcmp(exact, "0");
    const char *fast = getenv("KVATTN_FAST");
    kv_fast_products = fast && *fast && strcmp(fast, "0");
    const char *want = getenv("KVATTN_ISA");
    if (!want || !*want) return;
    const int isa = kv_isa_from_name(want);
    if (isa < 0)
        fprintf(stderr, "kvattn: KVATTN_ISA=%s is not a level (" KV_ISA_NAMES "); running %s\n", want,
                kv_isa_name(best));
    else if (!kv_kernels_for((kv_isa)isa))
        fprintf(stderr, "kvattn: KVATTN_ISA=%s: this CPU (%s) does not support it; running %s\n", want, kv_cpu_model(),
                kv_isa_name(best));
    else kv_kernels_active = tables[isa];
}

const char *kvattn_isa(void) { return kv_isa_name(kv_kernels_active->isa); }

const char *kvattn_cpu_name(void) { return kv_cpu_model(); }

kvattn_status kvattn_set_isa(const char *name) {
    const int isa = kv_isa_from_name(name);
    if (isa < 0)
        return kv_fail(KVATTN_ERR_INVALID_ARG, "instruction-set level '%s' is not one of " KV_ISA_NAMES,
                       name ? name : "(null)");
    const kv_kernels *k = kv_kernels_for((kv_isa)isa);
    if (!k)
        return kv_fail(KVATTN_ERR_UNSUPPORTED, "instruction-set level '%s': not supported by this CPU (%s) or build",
                       name, kv_cpu_model());
    kv_kernels_active = k;
    return KVATTN_OK;
}

void kvattn_set_exact(int exact) { kv_exact_products = exact != 0; }

int kvattn_exact(void) { return kv_exact_products; }

void kvattn_set_fast_products(int fast) { kv_fast_products = fast != 0; }

int kvattn_fast_products(void) { return kv_fast_products; }
