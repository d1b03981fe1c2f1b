/* Element type names and storage sizes. */
#include "internal.h"

#include <string.h>

static const char *const type_names[KVATTN_TYPE_COUNT] = {"f32",  "f16",  "bf16", "q8_0", "q4_0", "fp8",  "q4_1",
                                                          "q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k"};

const char *kvattn_type_name(kvattn_type t) {
    if ((int)t < 0 || t >= KVATTN_TYPE_COUNT) return "unknown";
    return type_names[t];
}

kvattn_status kvattn_type_from_name(const char *name, kvattn_type *out) {
    if (!name || !out) return kv_fail(KVATTN_ERR_INVALID_ARG, "type name: NULL argument");
    for (int t = 0; t < KVATTN_TYPE_COUNT; t++) {
        if (strcmp(name, type_names[t]) == 0) {
            *out = (kvattn_type)t;
            return KVATTN_OK;
        }
    }
    return kv_fail(KVATTN_ERR_INVALID_ARG,
                   "unknown element type '%s' (known: f32, f16, bf16, q8_0, q4_0, fp8, q4_1, q5_0, q5_1, q2_k, q3_k, "
                   "q4_k, q5_k, q6_k)",
                   name);
}

size_t kvattn_row_bytes(kvattn_type t, int64_t n) {
    if (n < 0 || n > (int64_t)1 << 40) return 0;
    size_t un = (size_t)n, blocks = (un + 31) / 32, super = (un + 255) / 256;
    switch (t) {
    case KVATTN_TYPE_F32: return un * 4;
    case KVATTN_TYPE_F16:
    case KVATTN_TYPE_BF16: return un * 2;
    case KVATTN_TYPE_Q8_0: return blocks * 34;
    case KVATTN_TYPE_Q4_0: return blocks * 18;
    case KVATTN_TYPE_FP8: return un;
    case KVATTN_TYPE_Q4_1: return blocks * 20;
    case KVATTN_TYPE_Q5_0: return blocks * 22;
    case KVATTN_TYPE_Q5_1: return blocks * 24;
    case KVATTN_TYPE_Q2_K: return super * 84;
    case KVATTN_TYPE_Q3_K: return super * 110;
    case KVATTN_TYPE_Q4_K: return super * 144;
    case KVATTN_TYPE_Q5_K: return super * 176;
    case KVATTN_TYPE_Q6_K: return super * 210;
    default: return 0;
    }
}

int kvattn_type_is_cache_type(kvattn_type t) {
    return t == KVATTN_TYPE_F32 || t == KVATTN_TYPE_F16 || t == KVATTN_TYPE_BF16 || t == KVATTN_TYPE_Q8_0;
}
