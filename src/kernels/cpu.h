/* What the CPU and the OS let the kernels use: instruction-set levels, each
 * a superset of the one before, read once from cpuid and xgetbv. */
#ifndef KVATTN_CPU_H
#define KVATTN_CPU_H

typedef enum {
    KV_ISA_SCALAR,      /* plain C: every kernel's twin, and any CPU       */
    KV_ISA_AVX2,        /* AVX2 + FMA + F16C                               */
    KV_ISA_AVX512,      /* the above + AVX-512 F, BW, DQ, VL               */
    KV_ISA_AVX512_VNNI, /* the above + AVX512_VNNI (integer dot products) */
    KV_ISA_COUNT
} kv_isa;

/* The best level this CPU and OS support (the OS must save the wider
 * registers: XCR0, read by xgetbv). */
kv_isa kv_cpu_best_isa(void);

/* The CPU's model name (cpuid's brand string), "unknown" where none. */
const char *kv_cpu_model(void);

/* "scalar", "avx2", "avx512", "avx512vnni"; NULL past the last. */
const char *kv_isa_name(kv_isa isa);

/* The names of all levels, comma-separated, for messages. */
#define KV_ISA_NAMES "scalar, avx2, avx512, avx512vnni"

/* The level called `name`; -1 if none is. */
int kv_isa_from_name(const char *name);

#endif
