/* The tensors of each architecture kvattn runs, as llama.cpp's GGUF
 * converters and Hugging Face checkpoints name them. */
#include "arch_tensors.h"

#include <string.h>

#define AT(field) offsetof(kv_layer, field)
#define HF_LAYER  "model.layers.%d."

/* The rows the GQA-family architectures share. ROPE is 1 where GGUF stores
 * Q/K rows in adjacent-pair order (llama) and 0 where it keeps Hugging Face's
 * half-split order (qwen2, qwen3: llama.cpp's NEOX RoPE). The biases are
 * optional, as llama.cpp reads them for all three. */
/* clang-format off */
#define GQA_ATTENTION(ROPE)                                                                                            \
    {"blk.%d.attn_norm.weight", HF_LAYER "input_layernorm.weight", KV_FORM_VECTOR, KV_DIM_D_MODEL, KV_DIM_1,           \
     KV_WHEN_ALWAYS, AT(attn_norm), 0, 0, 0},                                                                          \
    {"blk.%d.attn_q.weight", HF_LAYER "self_attn.q_proj.weight", KV_FORM_MATRIX, KV_DIM_Q, KV_DIM_D_MODEL,             \
     KV_WHEN_ALWAYS, AT(attn.wq), 0, ROPE, 0},                                                                         \
    {"blk.%d.attn_k.weight", HF_LAYER "self_attn.k_proj.weight", KV_FORM_MATRIX, KV_DIM_KV, KV_DIM_D_MODEL,            \
     KV_WHEN_ALWAYS, AT(attn.wk), 0, ROPE, 0},                                                                         \
    {"blk.%d.attn_v.weight", HF_LAYER "self_attn.v_proj.weight", KV_FORM_MATRIX, KV_DIM_KV, KV_DIM_D_MODEL,            \
     KV_WHEN_ALWAYS, AT(attn.wv), 0, 0, 0},                                                                            \
    {"blk.%d.attn_q.bias", HF_LAYER "self_attn.q_proj.bias", KV_FORM_VECTOR, KV_DIM_Q, KV_DIM_1, KV_WHEN_ALWAYS,       \
     AT(attn.bq), 1, ROPE, 0},                                                                                         \
    {"blk.%d.attn_k.bias", HF_LAYER "self_attn.k_proj.bias", KV_FORM_VECTOR, KV_DIM_KV, KV_DIM_1, KV_WHEN_ALWAYS,      \
     AT(attn.bk), 1, ROPE, 0},                                                                                         \
    {"blk.%d.attn_v.bias", HF_LAYER "self_attn.v_proj.bias", KV_FORM_VECTOR, KV_DIM_KV, KV_DIM_1, KV_WHEN_ALWAYS,      \
     AT(attn.bv), 1, 0, 0},                                                                                            \
    {"blk.%d.attn_output.weight", HF_LAYER "self_attn.o_proj.weight", KV_FORM_MATRIX, KV_DIM_D_MODEL, KV_DIM_Q,        \
     KV_WHEN_ALWAYS, AT(attn.wo), 0, 0, 0}

/* The FFN's norm, and in dense layers its matrices. */
#define DENSE_FFN                                                                                                      \
    {"blk.%d.ffn_norm.weight", HF_LAYER "post_attention_layernorm.weight", KV_FORM_VECTOR, KV_DIM_D_MODEL, KV_DIM_1,   \
     KV_WHEN_ALWAYS, AT(ffn_norm), 0, 0, 0},                                                                           \
    {"blk.%d.ffn_gate.weight", HF_LAYER "mlp.gate_proj.weight", KV_FORM_MATRIX, KV_DIM_FFN, KV_DIM_D_MODEL,            \
     KV_WHEN_DENSE_FFN, AT(ffn_gate), 0, 0, 0},                                                                        \
    {"blk.%d.ffn_up.weight", HF_LAYER "mlp.up_proj.weight", KV_FORM_MATRIX, KV_DIM_FFN, KV_DIM_D_MODEL,                \
     KV_WHEN_DENSE_FFN, AT(ffn_up), 0, 0, 0},                                                                          \
    {"blk.%d.ffn_down.weight", HF_LAYER "mlp.down_proj.weight", KV_FORM_MATRIX, KV_DIM_D_MODEL, KV_DIM_FFN,            \
     KV_WHEN_DENSE_FFN, AT(ffn_down), 0, 0, 0}
/* clang-format on */

/* Llama and Mistral; with experts, Mixtral (GGUF "llama" with expert_count,
 * Hugging Face MixtralForCausalLM's block_sparse_moe: w1 gate, w3 up, w2 down). */
static const kv_tensor_spec llama_tensors[] = {
    GQA_ATTENTION(1),
    DENSE_FFN,
    {"blk.%d.ffn_gate_inp.weight", HF_LAYER "block_sparse_moe.gate.weight", KV_FORM_MATRIX, KV_DIM_EXPERTS,
     KV_DIM_D_MODEL, KV_WHEN_MOE_FFN, AT(router), 0, 0, 1},
    {"blk.%d.ffn_gate_exps.weight", HF_LAYER "block_sparse_moe.experts.%d.w1.weight", KV_FORM_EXPERTS,
     KV_DIM_EXPERT_FFN, KV_DIM_D_MODEL, KV_WHEN_MOE_FFN, AT(exp_gate), 0, 0, 0},
    {"blk.%d.ffn_up_exps.weight", HF_LAYER "block_sparse_moe.experts.%d.w3.weight", KV_FORM_EXPERTS, KV_DIM_EXPERT_FFN,
     KV_DIM_D_MODEL, KV_WHEN_MOE_FFN, AT(exp_up), 0, 0, 0},
    {"blk.%d.ffn_down_exps.weight", HF_LAYER "block_sparse_moe.experts.%d.w2.weight", KV_FORM_EXPERTS, KV_DIM_D_MODEL,
     KV_DIM_EXPERT_FFN, KV_WHEN_MOE_FFN, AT(exp_down), 0, 0, 0},
};

/* Qwen2: Q/K/V biases (in the shared rows). */
static const kv_tensor_spec qwen2_tensors[] = {
    GQA_ATTENTION(0),
    DENSE_FFN,
};

/* Qwen3: an RMSNorm over each head's q and k, one weight vector per layer. */
static const kv_tensor_spec qwen3_tensors[] = {
    GQA_ATTENTION(0),
    {"blk.%d.attn_q_norm.weight", HF_LAYER "self_attn.q_norm.weight", KV_FORM_VECTOR, KV_DIM_HEAD, KV_DIM_1,
     KV_WHEN_ALWAYS, AT(attn.q_head_norm), 0, 0, 0},
    {"blk.%d.attn_k_norm.weight", HF_LAYER "self_attn.k_norm.weight", KV_FORM_VECTOR, KV_DIM_HEAD, KV_DIM_1,
     KV_WHEN_ALWAYS, AT(attn.k_head_norm), 0, 0, 0},
    DENSE_FFN,
};

/* DeepSeek-V2/V3. In GGUF the split k_b holds W_UKᵀ per head ([d_c][d_nope]),
 * v_b W_UV per head ([d_v][d_c]); Hugging Face checkpoints keep kv_b fused. */
static const kv_tensor_spec deepseek2_tensors[] = {
    {"blk.%d.attn_norm.weight", HF_LAYER "input_layernorm.weight", KV_FORM_VECTOR, KV_DIM_D_MODEL, KV_DIM_1,
     KV_WHEN_ALWAYS, AT(attn_norm), 0, 0, 0},
    {"blk.%d.attn_q_a.weight", HF_LAYER "self_attn.q_a_proj.weight", KV_FORM_MATRIX, KV_DIM_Q_LORA, KV_DIM_D_MODEL,
     KV_WHEN_Q_LORA, AT(attn.wq_a), 0, 0, 0},
    {"blk.%d.attn_q_a_norm.weight", HF_LAYER "self_attn.q_a_layernorm.weight", KV_FORM_VECTOR, KV_DIM_Q_LORA, KV_DIM_1,
     KV_WHEN_Q_LORA, AT(attn.q_norm), 0, 0, 0},
    {"blk.%d.attn_q_b.weight", HF_LAYER "self_attn.q_b_proj.weight", KV_FORM_MATRIX, KV_DIM_MLA_Q, KV_DIM_Q_LORA,
     KV_WHEN_Q_LORA, AT(attn.wq_b), 0, 0, 0},
    {"blk.%d.attn_q.weight", HF_LAYER "self_attn.q_proj.weight", KV_FORM_MATRIX, KV_DIM_MLA_Q, KV_DIM_D_MODEL,
     KV_WHEN_NO_Q_LORA, AT(attn.wq), 0, 0, 0},
    {"blk.%d.attn_kv_a_mqa.weight", HF_LAYER "self_attn.kv_a_proj_with_mqa.weight", KV_FORM_MATRIX, KV_DIM_MLA_KV_A,
     KV_DIM_D_MODEL, KV_WHEN_ALWAYS, AT(attn.wkv_a), 0, 0, 0},
    {"blk.%d.attn_kv_a_norm.weight", HF_LAYER "self_attn.kv_a_layernorm.weight", KV_FORM_VECTOR, KV_DIM_KV_LORA,
     KV_DIM_1, KV_WHEN_ALWAYS, AT(attn.kv_norm), 0, 0, 0},
    {"blk.%d.attn_kv_b.weight", HF_LAYER "self_attn.kv_b_proj.weight", KV_FORM_MATRIX, KV_DIM_MLA_KV_B, KV_DIM_KV_LORA,
     KV_WHEN_KV_B_FUSED, AT(attn.wkv_b), 0, 0, 0},
    {"blk.%d.attn_k_b.weight", NULL, KV_FORM_HEADS, KV_DIM_KV_LORA, KV_DIM_NOPE, KV_WHEN_KV_B_SPLIT, AT(attn.wk_b), 0,
     0, 0},
    {"blk.%d.attn_v_b.weight", NULL, KV_FORM_HEADS, KV_DIM_V, KV_DIM_KV_LORA, KV_WHEN_KV_B_SPLIT, AT(attn.wv_b), 0, 0,
     0},
    {"blk.%d.attn_output.weight", HF_LAYER "self_attn.o_proj.weight", KV_FORM_MATRIX, KV_DIM_D_MODEL, KV_DIM_MLA_O,
     KV_WHEN_ALWAYS, AT(attn.wo), 0, 0, 0},
    DENSE_FFN,
    {"blk.%d.ffn_gate_inp.weight", HF_LAYER "mlp.gate.weight", KV_FORM_MATRIX, KV_DIM_EXPERTS, KV_DIM_D_MODEL,
     KV_WHEN_MOE_FFN, AT(router), 0, 0, 1},
    {"blk.%d.exp_probs_b.bias", HF_LAYER "mlp.gate.e_score_correction_bias", KV_FORM_VECTOR, KV_DIM_EXPERTS, KV_DIM_1,
     KV_WHEN_MOE_FFN, AT(router_bias), 1, 0, 0},
    {"blk.%d.ffn_gate_exps.weight", HF_LAYER "mlp.experts.%d.gate_proj.weight", KV_FORM_EXPERTS, KV_DIM_EXPERT_FFN,
     KV_DIM_D_MODEL, KV_WHEN_MOE_FFN, AT(exp_gate), 0, 0, 0},
    {"blk.%d.ffn_up_exps.weight", HF_LAYER "mlp.experts.%d.up_proj.weight", KV_FORM_EXPERTS, KV_DIM_EXPERT_FFN,
     KV_DIM_D_MODEL, KV_WHEN_MOE_FFN, AT(exp_up), 0, 0, 0},
    {"blk.%d.ffn_down_exps.weight", HF_LAYER "mlp.experts.%d.down_proj.weight", KV_FORM_EXPERTS, KV_DIM_D_MODEL,
     KV_DIM_EXPERT_FFN, KV_WHEN_MOE_FFN, AT(exp_down), 0, 0, 0},
    {"blk.%d.ffn_gate_shexp.weight", HF_LAYER "mlp.shared_experts.gate_proj.weight", KV_FORM_MATRIX, KV_DIM_SHARED_FFN,
     KV_DIM_D_MODEL, KV_WHEN_SHARED_EXPERTS, AT(sh_gate), 0, 0, 0},
    {"blk.%d.ffn_up_shexp.weight", HF_LAYER "mlp.shared_experts.up_proj.weight", KV_FORM_MATRIX, KV_DIM_SHARED_FFN,
     KV_DIM_D_MODEL, KV_WHEN_SHARED_EXPERTS, AT(sh_up), 0, 0, 0},
    {"blk.%d.ffn_down_shexp.weight", HF_LAYER "mlp.shared_experts.down_proj.weight", KV_FORM_MATRIX, KV_DIM_D_MODEL,
     KV_DIM_SHARED_FFN, KV_WHEN_SHARED_EXPERTS, AT(sh_down), 0, 0, 0},
};

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

const kv_tensor_spec *kv_arch_layer_tensors(const char *arch, int *n) {
    if (!strcmp(arch, "deepseek2")) {
        *n = COUNT(deepseek2_tensors);
        return deepseek2_tensors;
    }
    if (!strcmp(arch, "qwen2")) {
        *n = COUNT(qwen2_tensors);
        return qwen2_tensors;
    }
    if (!strcmp(arch, "qwen3")) {
        *n = COUNT(qwen3_tensors);
        return qwen3_tensors;
    }
    *n = COUNT(llama_tensors); /* llama and the architectures that share its layout (mistral, mixtral) */
    return llama_tensors;
}

int kv_tensor_applies(const kv_tensor_spec *t, const kv_layer_shape *s) {
    const kvattn_model_desc *d = s->desc;
    const int moe = kvattn_model_is_moe_layer(d, s->layer);
    switch (t->when) {
    case KV_WHEN_ALWAYS: return 1;
    case KV_WHEN_Q_LORA: return d->attn.q_lora_rank > 0;
    case KV_WHEN_NO_Q_LORA: return d->attn.q_lora_rank == 0;
    case KV_WHEN_KV_B_FUSED: return !s->kv_b_split;
    case KV_WHEN_KV_B_SPLIT: return s->kv_b_split;
    case KV_WHEN_DENSE_FFN: return !moe;
    case KV_WHEN_MOE_FFN: return moe;
    case KV_WHEN_SHARED_EXPERTS: return moe && d->n_shared_experts > 0;
    }
    return 0;
}

uint64_t kv_dim_value(kv_dim dim, const kvattn_model_desc *d) {
    const kvattn_layer_config *a = &d->attn;
    const uint64_t H = (uint64_t)a->n_heads;
    switch (dim) {
    case KV_DIM_1: return 1;
    case KV_DIM_D_MODEL: return (uint64_t)a->d_model;
    case KV_DIM_FFN: return (uint64_t)d->ffn_dim;
    case KV_DIM_Q: return H * (uint64_t)a->head_dim;
    case KV_DIM_HEAD: return (uint64_t)a->head_dim;
    case KV_DIM_KV: return (uint64_t)a->n_kv_heads * (uint64_t)a->head_dim;
    case KV_DIM_Q_LORA: return (uint64_t)a->q_lora_rank;
    case KV_DIM_MLA_Q: return H * (uint64_t)(a->qk_nope_head_dim + a->qk_rope_head_dim);
    case KV_DIM_MLA_KV_A: return (uint64_t)a->kv_lora_rank + (uint64_t)a->qk_rope_head_dim;
    case KV_DIM_KV_LORA: return (uint64_t)a->kv_lora_rank;
    case KV_DIM_MLA_KV_B: return H * (uint64_t)(a->qk_nope_head_dim + a->v_head_dim);
    case KV_DIM_MLA_O: return H * (uint64_t)a->v_head_dim;
    case KV_DIM_NOPE: return (uint64_t)a->qk_nope_head_dim;
    case KV_DIM_V: return (uint64_t)a->v_head_dim;
    case KV_DIM_EXPERTS: return (uint64_t)d->n_routed_experts;
    case KV_DIM_EXPERT_FFN: return (uint64_t)d->moe_ffn_dim;
    case KV_DIM_SHARED_FFN: return (uint64_t)d->n_shared_experts * (uint64_t)d->moe_ffn_dim;
    }
    return 0;
}
