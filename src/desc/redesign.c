/* A layer in another attention design, keeping its width and head count. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

kvattn_status kvattn_redesign(const kvattn_layer_config *in, const char *design, kvattn_layer_config *out) {
    if (!in || !design || !out) return kv_fail(KVATTN_ERR_INVALID_ARG, "redesign: NULL argument");
    kvattn_status st = kvattn_config_validate(in);
    if (st != KVATTN_OK) return st;
    const int H = in->n_heads, width = in->kind == KVATTN_ATTN_GQA ? in->head_dim : in->v_head_dim;
    kvattn_layer_config c = *in;
    char *end;
    if (!strcmp(design, "mha") || !strcmp(design, "mqa") || !strncmp(design, "gqa:", 4)) {
        long g = !strcmp(design, "mha") ? H : !strcmp(design, "mqa") ? 1 : strtol(design + 4, &end, 10);
        if (!strncmp(design, "gqa:", 4) && (end == design + 4 || *end || g < 1 || g > H || H % g != 0))
            return kv_fail(KVATTN_ERR_INVALID_ARG, "design '%s': G must divide n_heads = %d", design, H);
        c.kind = KVATTN_ATTN_GQA;
        c.n_kv_heads = (int)g;
        c.head_dim = width;
        c.rope.n_rot = in->kind == KVATTN_ATTN_GQA ? in->rope.n_rot : 0;
    } else if (!strncmp(design, "mla:", 4)) {
        long dc = strtol(design + 4, &end, 10), dr = -1;
        if (end != design + 4 && *end == '+') {
            const char *p = end + 1;
            dr = strtol(p, &end, 10);
            if (end == p || *end) dr = -1;
        }
        if (dc < 1 || dc > KV_MAX_DIM || dr < 2 || dr > KV_MAX_DIM || dr % 2)
            return kv_fail(KVATTN_ERR_INVALID_ARG,
                           "design '%s': expected mla:DC+DR with DC ≥ 1 and DR even ≥ 2 (e.g. mla:512+64)", design);
        if (in->kind == KVATTN_ATTN_GQA) {
            c.kind = KVATTN_ATTN_MLA;
            c.q_lora_rank = 0;
            c.qk_nope_head_dim = width;
            c.v_head_dim = width;
            c.rms_eps = 1e-6f;
        }
        c.kv_lora_rank = (int)dc;
        c.qk_rope_head_dim = (int)dr;
        c.rope.n_rot = 0;
    } else {
        return kv_fail(KVATTN_ERR_INVALID_ARG, "unknown design '%s' (expected mha, mqa, gqa:G or mla:DC+DR)", design);
    }
    if ((st = kvattn_config_validate(&c)) != KVATTN_OK) return st;
    *out = c;
    return KVATTN_OK;
}
