/* The golden fixtures' models (tests/golden/gen_golden.py) written as GGUF
 * files with kvattn's writer, for the tests that load and run them. */
#include "golden_gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const ARCH[] = {"llama", "qwen2", "qwen3"};

const char *golden_arch_name(const golden_file *g) {
    const int i = (int)num(g, "arch");
    return i >= 0 && i < 3 ? ARCH[i] : "llama";
}

/* The fixture as a GGUF of the fixture's architecture; weights of wtype, the
 * router and the vectors f32 (as llama.cpp's converter keeps them). With
 * linear > 0, RoPE scaling as the keys rope.scaling.type = linear and
 * rope.scaling.factor instead of the fixture's rope_freqs.weight. */
kvattn_status golden_write_gguf(const golden_file *g, const char *path, kvattn_type wtype, const char *extra,
                                float linear) {
    const char *arch = golden_arch_name(g);
    const int D = (int)num(g, "D"), H = (int)num(g, "H"), hd = (int)num(g, "hd");
    kvattn_gguf_writer *w;
    kvattn_status st = kvattn_gguf_writer_create(&w);
    if (st) return st;
    char key[96];
#define KEY(k) (snprintf(key, sizeof key, "%s." k, arch), key)
    kvattn_gguf_set_str(w, "general.architecture", arch);
    kvattn_gguf_set_str(w, "general.name", "tiny");
    kvattn_gguf_set_u32(w, KEY("context_length"), 64);
    kvattn_gguf_set_u32(w, KEY("embedding_length"), (uint32_t)D);
    kvattn_gguf_set_u32(w, KEY("block_count"), (uint32_t)(int)num(g, "L"));
    kvattn_gguf_set_u32(w, KEY("feed_forward_length"), (uint32_t)(int)num(g, "F"));
    kvattn_gguf_set_u32(w, KEY("attention.head_count"), (uint32_t)H);
    kvattn_gguf_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)(int)num(g, "n_kv"));
    if (H * hd != D) {
        kvattn_gguf_set_u32(w, KEY("attention.key_length"), (uint32_t)hd);
        kvattn_gguf_set_u32(w, KEY("attention.value_length"), (uint32_t)hd);
    }
    kvattn_gguf_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), num(g, "eps"));
    kvattn_gguf_set_f32(w, KEY("rope.freq_base"), num(g, "theta"));
    if (linear > 0) {
        kvattn_gguf_set_str(w, KEY("rope.scaling.type"), "linear");
        kvattn_gguf_set_f32(w, KEY("rope.scaling.factor"), linear);
    }
    if ((int)num(g, "experts")) {
        kvattn_gguf_set_u32(w, KEY("expert_count"), (uint32_t)(int)num(g, "experts"));
        kvattn_gguf_set_u32(w, KEY("expert_used_count"), (uint32_t)(int)num(g, "topk"));
    }
#undef KEY
    for (int i = 0; i < g->count && !st; i++) {
        const golden_array *a = &g->a[i];
        if (!strstr(a->name, ".weight") && !strstr(a->name, ".bias")) continue;
        if (linear > 0 && !strcmp(a->name, "rope_freqs.weight")) continue;
        int64_t ne[4];
        for (int d = 0; d < a->n_dims; d++) ne[d] = a->dims[a->n_dims - 1 - d];
        kvattn_type t = a->n_dims >= 2 && !strstr(a->name, "gate_inp") ? wtype : KVATTN_TYPE_F32;
        st = kvattn_gguf_add_tensor(w, a->name, t, ne, a->n_dims, a->data);
    }
    if (!st && extra) { /* a tensor kvattn does not apply */
        const golden_array *norm = get(g, "output_norm.weight");
        int64_t ne[1] = {D};
        st = kvattn_gguf_add_tensor(w, extra, KVATTN_TYPE_F32, ne, 1, norm->data);
    }
    if (!st) st = kvattn_gguf_write_file(w, path);
    kvattn_gguf_writer_free(w);
    return st;
}

/* Writes the fixture's model as a deepseek2 GGUF. */
kvattn_status golden_write_deepseek2_gguf(const golden_file *g, const char *path, int split, kvattn_type wtype,
                                          int vocab) {
    kvattn_gguf_writer *w;
    kvattn_status st = kvattn_gguf_writer_create(&w);
    if (st) return st;
    if (vocab) { /* <unk>, <s>, </s>, then byte tokens <0x00>…: enough to run from text */
        int V = (int)num(g, "V");
        char(*pieces)[8] = malloc(sizeof *pieces * (size_t)V);
        const char **pp = malloc(sizeof *pp * (size_t)V);
        int32_t *types = malloc(sizeof *types * (size_t)V);
        for (int i = 0; i < V; i++) {
            if (i < 3) snprintf(pieces[i], 8, "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
            else snprintf(pieces[i], 8, "<0x%02X>", (unsigned)(i - 3) & 0xffu);
            pp[i] = pieces[i];
            types[i] = i == 0 ? 2 : i < 3 ? 3 : 6;
        }
        kvattn_gguf_set_str(w, "tokenizer.ggml.model", "llama");
        kvattn_gguf_set_str_array(w, "tokenizer.ggml.tokens", pp, NULL, V);
        kvattn_gguf_set_i32_array(w, "tokenizer.ggml.token_type", types, V);
        kvattn_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
        kvattn_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
        free(pieces), free(pp), free(types);
    }
    const int D = (int)num(g, "D"), H = (int)num(g, "H"), L = (int)num(g, "L"), ql = (int)num(g, "ql");
    const int dc = (int)num(g, "dc"), dn = (int)num(g, "dn"), dr = (int)num(g, "dr"), dv = (int)num(g, "dv");
    const int E = (int)num(g, "experts"), orig = (int)num(g, "orig"), max_seq = (int)num(g, "max_seq");
    const int sig = num(g, "sigmoid") == 1.0f;
    kvattn_gguf_set_str(w, "general.architecture", "deepseek2");
    kvattn_gguf_set_str(w, "general.name", "tiny-deepseek");
    kvattn_gguf_set_u32(w, "deepseek2.context_length", (uint32_t)max_seq);
    kvattn_gguf_set_u32(w, "deepseek2.embedding_length", (uint32_t)D);
    kvattn_gguf_set_u32(w, "deepseek2.block_count", (uint32_t)L);
    kvattn_gguf_set_u32(w, "deepseek2.feed_forward_length", (uint32_t)num(g, "F"));
    kvattn_gguf_set_u32(w, "deepseek2.attention.head_count", (uint32_t)H);
    kvattn_gguf_set_u32(w, "deepseek2.attention.head_count_kv", split ? 1 : (uint32_t)H);
    if (ql) kvattn_gguf_set_u32(w, "deepseek2.attention.q_lora_rank", (uint32_t)ql);
    kvattn_gguf_set_u32(w, "deepseek2.attention.kv_lora_rank", (uint32_t)dc);
    kvattn_gguf_set_u32(w, "deepseek2.rope.dimension_count", (uint32_t)dr);
    if (split) {
        kvattn_gguf_set_u32(w, "deepseek2.attention.key_length", (uint32_t)(dc + dr));
        kvattn_gguf_set_u32(w, "deepseek2.attention.value_length", (uint32_t)dc);
        kvattn_gguf_set_u32(w, "deepseek2.attention.key_length_mla", (uint32_t)(dn + dr));
        kvattn_gguf_set_u32(w, "deepseek2.attention.value_length_mla", (uint32_t)dv);
    } else {
        kvattn_gguf_set_u32(w, "deepseek2.attention.key_length", (uint32_t)(dn + dr));
        kvattn_gguf_set_u32(w, "deepseek2.attention.value_length", (uint32_t)dv);
    }
    kvattn_gguf_set_f32(w, "deepseek2.attention.layer_norm_rms_epsilon", 1e-6f);
    kvattn_gguf_set_f32(w, "deepseek2.rope.freq_base", 10000.0f);
    if (max_seq > orig) { /* model.py turns YaRN on when max_seq_len exceeds original_seq_len */
        kvattn_gguf_set_str(w, "deepseek2.rope.scaling.type", "yarn");
        kvattn_gguf_set_f32(w, "deepseek2.rope.scaling.factor", 40.0f);
        kvattn_gguf_set_u32(w, "deepseek2.rope.scaling.original_context_length", (uint32_t)orig);
        kvattn_gguf_set_f32(w, "deepseek2.rope.scaling.yarn_log_multiplier", 0.1f * 0.707f);
    }
    if (E) {
        kvattn_gguf_set_u32(w, "deepseek2.expert_count", (uint32_t)E);
        kvattn_gguf_set_u32(w, "deepseek2.expert_used_count", (uint32_t)num(g, "topk"));
        kvattn_gguf_set_u32(w, "deepseek2.expert_shared_count", (uint32_t)num(g, "shared"));
        kvattn_gguf_set_u32(w, "deepseek2.expert_feed_forward_length", (uint32_t)num(g, "Fm"));
        kvattn_gguf_set_u32(w, "deepseek2.leading_dense_block_count", (uint32_t)num(g, "dense"));
        kvattn_gguf_set_f32(w, "deepseek2.expert_weights_scale", num(g, "route_scale"));
        kvattn_gguf_set_bool(w, "deepseek2.expert_weights_norm", sig);
        kvattn_gguf_set_u32(w, "deepseek2.expert_gating_func", sig ? 2 : 1);
        kvattn_gguf_set_u32(w, "deepseek2.expert_group_count", (uint32_t)num(g, "groups"));
        kvattn_gguf_set_u32(w, "deepseek2.expert_group_used_count", (uint32_t)num(g, "topk_groups"));
    }
    for (int i = 0; i < g->count && st == KVATTN_OK; i++) {
        const golden_array *a = &g->a[i];
        if (!strstr(a->name, ".weight") && !strstr(a->name, ".bias")) continue;
        int64_t ne[4];
        for (int d = 0; d < a->n_dims; d++) ne[d] = a->dims[a->n_dims - 1 - d];
        kvattn_type t = a->n_dims >= 2 ? wtype : KVATTN_TYPE_F32;
        if (split && strstr(a->name, "attn_kv_b")) { /* k_b: per head W_UKᵀ [dc][dn]; v_b: per head W_UV [dv][dc] */
            float *kb = malloc(sizeof(float) * H * dc * dn), *vb = malloc(sizeof(float) * H * dv * dc);
            for (int h = 0; h < H; h++) {
                for (int r = 0; r < dn; r++)
                    for (int c = 0; c < dc; c++)
                        kb[((size_t)h * dc + c) * dn + r] = a->data[((size_t)h * (dn + dv) + r) * dc + c];
                memcpy(vb + (size_t)h * dv * dc, a->data + ((size_t)h * (dn + dv) + dn) * dc, sizeof(float) * dv * dc);
            }
            char nm[64];
            int64_t kne[3] = {dn, dc, H}, vne[3] = {dc, dv, H};
            snprintf(nm, sizeof nm, "%.*sattn_k_b.weight", (int)(strstr(a->name, "attn_kv_b") - a->name), a->name);
            st = kvattn_gguf_add_tensor(w, nm, t, kne, 3, kb);
            snprintf(nm, sizeof nm, "%.*sattn_v_b.weight", (int)(strstr(a->name, "attn_kv_b") - a->name), a->name);
            if (!st) st = kvattn_gguf_add_tensor(w, nm, t, vne, 3, vb);
            free(kb), free(vb);
            continue;
        }
        st = kvattn_gguf_add_tensor(w, a->name, t, ne, a->n_dims, a->data);
    }
    if (!st) st = kvattn_gguf_write_file(w, path);
    kvattn_gguf_writer_free(w);
    return st;
}
