#include "cpu.h"

#include <stdio.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

/* The OS-enabled register state (XCR0); only read once cpuid says OSXSAVE. */
static unsigned long long xcr0(void) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (unsigned long long)hi << 32 | lo;
}

kv_isa kv_cpu_best_isa(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return KV_ISA_SCALAR;
    const int fma = c >> 12 & 1, osxsave = c >> 27 & 1, avx = c >> 28 & 1, f16c = c >> 29 & 1;
    if (!osxsave || !avx || !fma || !f16c) return KV_ISA_SCALAR;
    const unsigned long long xcr = xcr0();
    if ((xcr & 0x6) != 0x6) return KV_ISA_SCALAR; /* XMM and YMM state */
    if (__get_cpuid_max(0, NULL) < 7) return KV_ISA_SCALAR;
    __cpuid_count(7, 0, a, b, c, d);
    if (!(b >> 5 & 1)) return KV_ISA_SCALAR;                                             /* AVX2 */
    const int avx512 = (b >> 16 & 1) && (b >> 17 & 1) && (b >> 30 & 1) && (b >> 31 & 1); /* F, DQ, BW, VL */
    if (!avx512 || (xcr & 0xe6) != 0xe6) return KV_ISA_AVX2; /* opmask, ZMM0-15 upper halves, ZMM16-31 */
    return c >> 11 & 1 ? KV_ISA_AVX512_VNNI : KV_ISA_AVX512;
}

const char *kv_cpu_model(void) {
    static char name[96];
    if (name[0]) return name;
    unsigned r[12] = {0}, a, b, c, d;
    if ((unsigned)__get_cpuid_max(0x80000000u, NULL) >= 0x80000004u)
        for (unsigned i = 0; i < 3; i++)
            __get_cpuid(0x80000002u + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
    char brand[49];
    memcpy(brand, r, 48);
    brand[48] = '\0';
    const char *s = brand;
    while (*s == ' ') s++;
    int n = (int)strlen(s);
    while (n && s[n - 1] == ' ') n--;
    /* the family and model too: virtual machines often show a brand as bare as "AMD EPYC" */
    if (!__get_cpuid(1, &a, &b, &c, &d)) a = 0;
    const unsigned base_family = a >> 8 & 0xF, family = base_family + (base_family == 0xF ? a >> 20 & 0xFF : 0);
    const unsigned model = (a >> 4 & 0xF) | (base_family == 0x6 || base_family == 0xF ? (a >> 16 & 0xF) << 4 : 0);
    snprintf(name, sizeof name, "%.*s (family %u, model %u)", n, n ? s : "unknown", family, model);
    return name;
}
#else
kv_isa kv_cpu_best_isa(void) { return KV_ISA_SCALAR; }
const char *kv_cpu_model(void) { return "unknown"; }
#endif

static const char *const isa_names[KV_ISA_COUNT] = {"scalar", "avx2", "avx512", "avx512vnni"};

const char *kv_isa_name(kv_isa isa) { return isa >= 0 && isa < KV_ISA_COUNT ? isa_names[isa] : NULL; }

int kv_isa_from_name(const char *name) {
    for (int i = 0; name && i < KV_ISA_COUNT; i++)
        if (!strcmp(name, isa_names[i])) return i;
    return -1;
}
