/* A loaded transformer: its shapes, its weights (mapped in place or owned),
 * its tokenizer; and the helpers that keep them (model.c). Shared by the
 * loaders, the writer and the forward pass; it calls none of them. */
#ifndef KVATTN_MODEL_H
#define KVATTN_MODEL_H

#include "internal.h"

/* One transformer layer (pre-norm, like llama2.c's run.c). The FFN is dense
 * (ffn_*) or a mixture of experts (router.data set): routed experts chosen
 * per token, plus always-on shared experts. */
typedef struct {
    const float *attn_norm;    /* [d_model]                 */
    kvattn_layer_weights attn; /* the attention layer       */
    const float *ffn_norm;     /* [d_model]                 */
    kvattn_matrix ffn_gate;    /* w1 [ffn_dim][d_model]     */
    kvattn_matrix ffn_up;      /* w3 [ffn_dim][d_model]     */
    kvattn_matrix ffn_down;    /* w2 [d_model][ffn_dim]     */
    /* MoE */
    kvattn_matrix router;     /* [n_experts][d_model]                     */
    const float *router_bias; /* [n_experts] score correction (V3) or NULL */
    kvattn_matrix *exp_gate;  /* [n_experts] of [moe_ffn_dim][d_model]    */
    kvattn_matrix *exp_up;    /* [n_experts] of [moe_ffn_dim][d_model]    */
    kvattn_matrix *exp_down;  /* [n_experts] of [d_model][moe_ffn_dim]    */
    kvattn_matrix sh_gate;    /* [n_shared·moe_ffn_dim][d_model] or none  */
    kvattn_matrix sh_up;
    kvattn_matrix sh_down; /* [d_model][n_shared·moe_ffn_dim]          */
} kv_layer;

/* A model file's bytes: mapped read-only, or, up to KV_COPY_MAX_BYTES, read
 * into memory. A mapped file that shrinks while in use faults (SIGBUS) when a
 * page past its new end is read, as in any program that maps a file; a copy
 * cannot, so small models and the tests are immune, and a large model costs no
 * second copy of its weights. */
#define KV_COPY_MAX_BYTES ((size_t)64 << 20)

typedef struct {
    void *addr;
    size_t size;
    int copied; /* read into memory (free) rather than mapped (munmap) */
} kv_mapping;

struct kvattn_model {
    kvattn_model_desc desc; /* shapes; desc.attn is every layer's attention */
    char format[16];        /* "llama2.c", "gguf", "safetensors"           */
    float norm_eps;         /* RMSNorm epsilon of the blocks               */
    kvattn_matrix tok_embd; /* [vocab][d_model]                            */
    kvattn_matrix output;   /* [vocab][d_model] (tok_embd when tied)       */
    const float *out_norm;  /* [d_model]                                   */
    kv_layer *layers;       /* [n_layers]                                  */
    kvattn_tokenizer *tokenizer;
    char tokenizer_error[512]; /* why a tokenizer found beside the model was not used */
    const char *chat_template; /* owned, NUL-terminated; NULL if the file has none  */
    char provenance[512];      /* how kvattn convert made it ("" if it did not)      */
    int tokenizer_borrowed;    /* a converted model's tokenizer is its source's      */
    uint64_t weight_bytes;
    kv_mapping maps[64]; /* mapped files (safetensors shards)           */
    int n_maps;
    void **owned; /* buffers the model allocated (converted norms) */
    int n_owned, cap_owned;
};

/* Called by a session with each layer's attention input (the normed hidden
 * states x [T][d_model] of T tokens) before the layer runs: what kvattn
 * convert calibrates on. */
typedef void (*kv_attn_input_tap)(void *ctx, int layer, int T, const float *x);
void kv_session_set_attn_tap(kvattn_session *s, kv_attn_input_tap tap, void *ctx);

/* Maps a whole file read-only. Errors name the file. */
kvattn_status kv_map_file(const char *path, kv_mapping *out);
void kv_unmap(kv_mapping *m);

/* Keeps p (malloc'd) until the model is freed; returns p or NULL. */
void *kv_model_own(kvattn_model *m, void *p);

/* Packs the model's f16/bf16 projections into panels (panels.c), unless
 * KVATTN_PANELS=0: kvattn_model_load's last step. */
kvattn_status kv_model_pack_panels(kvattn_model *m);

/* A tensor's f32 copy when it is not f32 (norm vectors), owned by the model. */
const float *kv_model_f32_vector(kvattn_model *m, const void *data, kvattn_type type, int n);

#endif
