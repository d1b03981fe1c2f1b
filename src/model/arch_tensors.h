/* One table per architecture of the tensors a model file holds: the name in
 * GGUF (llama.cpp's) and in a Hugging Face checkpoint, the shape in terms of
 * the model's description, when a layer has it, and where it goes in a
 * kv_layer. The GGUF reader, the safetensors reader and the GGUF writer all
 * walk these tables (llama.cpp's llama-arch.cpp is the model). */
#ifndef KVATTN_ARCH_TENSORS_H
#define KVATTN_ARCH_TENSORS_H

#include "model.h"

#include <stddef.h>

/* A dimension of a tensor, from the model's description. */
typedef enum {
    KV_DIM_1,
    KV_DIM_D_MODEL,
    KV_DIM_FFN,        /* dense FFN width                          */
    KV_DIM_Q,          /* n_heads · head_dim (GQA family)           */
    KV_DIM_KV,         /* n_kv_heads · head_dim                     */
    KV_DIM_HEAD,       /* head_dim                                  */
    KV_DIM_Q_LORA,     /* q_lora_rank                               */
    KV_DIM_MLA_Q,      /* n_heads · (d_nope + d_rope)               */
    KV_DIM_MLA_KV_A,   /* d_c + d_rope                              */
    KV_DIM_KV_LORA,    /* d_c                                       */
    KV_DIM_MLA_KV_B,   /* n_heads · (d_nope + d_v)                  */
    KV_DIM_MLA_O,      /* n_heads · d_v                             */
    KV_DIM_NOPE,       /* d_nope                                    */
    KV_DIM_V,          /* d_v                                       */
    KV_DIM_EXPERTS,    /* routed experts                            */
    KV_DIM_EXPERT_FFN, /* one expert's width                        */
    KV_DIM_SHARED_FFN, /* n_shared · one expert's width             */
} kv_dim;

/* How a tensor is stored and what the kv_layer field at `offset` is. */
typedef enum {
    KV_FORM_MATRIX,  /* kvattn_matrix [rows][cols]                                   */
    KV_FORM_VECTOR,  /* const float * [rows] (copied to f32 where it is not)          */
    KV_FORM_HEADS,   /* kvattn_matrix of n_heads blocks [rows][cols]; GGUF 3-D         */
    KV_FORM_EXPERTS, /* kvattn_matrix * [n_experts] of [rows][cols]; GGUF 3-D, HF one
                        tensor per expert (the name's second %d)                     */
} kv_tensor_form;

/* Which layers have a tensor. */
typedef enum {
    KV_WHEN_ALWAYS,
    KV_WHEN_Q_LORA, /* MLA with query compression         */
    KV_WHEN_NO_Q_LORA,
    KV_WHEN_KV_B_FUSED, /* MLA: one W_UK/W_UV tensor          */
    KV_WHEN_KV_B_SPLIT, /* MLA: attn_k_b / attn_v_b (GGUF only) */
    KV_WHEN_DENSE_FFN,
    KV_WHEN_MOE_FFN,
    KV_WHEN_SHARED_EXPERTS,
} kv_tensor_when;

typedef struct {
    const char *gguf; /* "blk.%d.attn_q.weight"                                 */
    const char *hf;   /* "model.layers.%d.self_attn.q_proj.weight"; NULL: none   */
    kv_tensor_form form;
    kv_dim rows, cols;
    kv_tensor_when when;
    size_t offset; /* of the field in kv_layer                               */
    int optional;  /* a file may leave it out                                */
    int rope_rows; /* Q/K rows per head: HF's rotate_half order is permuted to
                              adjacent pairs when written as GGUF                    */
    int keep_f32;  /* written as f32 whatever the weight type (the router)   */
} kv_tensor_spec;

/* The per-layer tensors of an architecture ("llama", "mistral", "mixtral",
 * "qwen2", "qwen3" or "deepseek2"), n entries. */
const kv_tensor_spec *kv_arch_layer_tensors(const char *arch, int *n);

/* What decides the tensors of one layer. */
typedef struct {
    const kvattn_model_desc *desc;
    int layer;
    int kv_b_split; /* MLA: W_UK/W_UV as attn_k_b/attn_v_b */
} kv_layer_shape;

/* Whether the layer has the tensor. */
int kv_tensor_applies(const kv_tensor_spec *t, const kv_layer_shape *s);

/* A dimension's value for this model. */
uint64_t kv_dim_value(kv_dim d, const kvattn_model_desc *desc);

/* The field of layer L the tensor fills. */
static inline void *kv_tensor_field(const kv_tensor_spec *t, kv_layer *L) { return (char *)L + t->offset; }

/* Names of the whole-model tensors. */
#define KV_GGUF_TOKEN_EMBD  "token_embd.weight"
#define KV_GGUF_OUTPUT_NORM "output_norm.weight"
#define KV_GGUF_OUTPUT      "output.weight"
#define KV_HF_TOKEN_EMBD    "model.embed_tokens.weight"
#define KV_HF_OUTPUT_NORM   "model.norm.weight"
#define KV_HF_OUTPUT        "lm_head.weight"

#endif
