/* Built-in models: the published configurations (config.json) of common
 * models, reduced to what the planner needs. */
#include "internal.h"

#include <string.h>

#define GQA(D, H, KV, HD, THETA)                                                                                       \
    {                                                                                                                  \
        .kind = KVATTN_ATTN_GQA, .d_model = (D), .n_heads = (H), .n_kv_heads = (KV), .head_dim = (HD), .rope = {       \
            .theta = (THETA),                                                                                          \
            .pairing = KVATTN_ROPE_HALF                                                                                \
        }                                                                                                              \
    }

#define MLA(D, H, QL, MSCALE)                                                                                          \
    {                                                                                                                  \
        .kind = KVATTN_ATTN_MLA, .d_model = (D), .n_heads = (H), .q_lora_rank = (QL), .kv_lora_rank = 512,             \
        .qk_nope_head_dim = 128, .qk_rope_head_dim = 64, .v_head_dim = 128, .rms_eps = 1e-6f, .rope = {                \
            .theta = 10000.0f,                                                                                         \
            .pairing = KVATTN_ROPE_ADJACENT,                                                                           \
            .yarn_factor = 40.0f,                                                                                      \
            .yarn_orig_ctx = 4096,                                                                                     \
            .yarn_beta_fast = 32.0f,                                                                                   \
            .yarn_beta_slow = 1.0f,                                                                                    \
            .yarn_mscale = (MSCALE)                                                                                    \
        }                                                                                                              \
    }

static const kvattn_model_desc presets[] = {
    {.name = "gpt-2",
     .arch = "gpt2",
     .attn = GQA(768, 12, 12, 64, 10000.0f),
     .n_layers = 12,
     .vocab_size = 50257,
     .ffn_dim = 3072,
     .ffn_gated = 0,
     .tied_embeddings = 1,
     .gpt2_style = 1,
     .context_length = 1024},
    {.name = "llama-2-7b",
     .arch = "llama",
     .attn = GQA(4096, 32, 32, 128, 10000.0f),
     .n_layers = 32,
     .vocab_size = 32000,
     .ffn_dim = 11008,
     .ffn_gated = 1,
     .context_length = 4096},
    {.name = "llama-2-13b",
     .arch = "llama",
     .attn = GQA(5120, 40, 40, 128, 10000.0f),
     .n_layers = 40,
     .vocab_size = 32000,
     .ffn_dim = 13824,
     .ffn_gated = 1,
     .context_length = 4096},
    {.name = "llama-2-70b",
     .arch = "llama",
     .attn = GQA(8192, 64, 8, 128, 10000.0f),
     .n_layers = 80,
     .vocab_size = 32000,
     .ffn_dim = 28672,
     .ffn_gated = 1,
     .context_length = 4096},
    {.name = "llama-3-8b",
     .arch = "llama",
     .attn = GQA(4096, 32, 8, 128, 500000.0f),
     .n_layers = 32,
     .vocab_size = 128256,
     .ffn_dim = 14336,
     .ffn_gated = 1,
     .context_length = 8192},
    {.name = "llama-3-70b",
     .arch = "llama",
     .attn = GQA(8192, 64, 8, 128, 500000.0f),
     .n_layers = 80,
     .vocab_size = 128256,
     .ffn_dim = 28672,
     .ffn_gated = 1,
     .context_length = 8192},
    {.name = "llama-3.1-405b",
     .arch = "llama",
     .attn = GQA(16384, 128, 8, 128, 500000.0f),
     .n_layers = 126,
     .vocab_size = 128256,
     .ffn_dim = 53248,
     .ffn_gated = 1,
     .context_length = 131072},
    {.name = "mistral-7b",
     .arch = "mistral",
     .attn = GQA(4096, 32, 8, 128, 1000000.0f),
     .n_layers = 32,
     .vocab_size = 32768,
     .ffn_dim = 14336,
     .ffn_gated = 1,
     .context_length = 32768},
    {.name = "mixtral-8x7b",
     .arch = "mixtral",
     .attn = GQA(4096, 32, 8, 128, 1000000.0f),
     .n_layers = 32,
     .vocab_size = 32000,
     .ffn_dim = 0,
     .ffn_gated = 1,
     .n_routed_experts = 8,
     .n_active_experts = 2,
     .moe_ffn_dim = 14336,
     .expert_weights_norm = 1,
     .context_length = 32768},
    {.name = "qwen2.5-0.5b",
     .arch = "qwen2",
     .attn = GQA(896, 14, 2, 64, 1000000.0f),
     .n_layers = 24,
     .vocab_size = 151936,
     .ffn_dim = 4864,
     .ffn_gated = 1,
     .tied_embeddings = 1,
     .qkv_bias = 1,
     .context_length = 32768},
    {.name = "qwen2.5-7b",
     .arch = "qwen2",
     .attn = GQA(3584, 28, 4, 128, 1000000.0f),
     .n_layers = 28,
     .vocab_size = 152064,
     .ffn_dim = 18944,
     .ffn_gated = 1,
     .qkv_bias = 1,
     .context_length = 32768},
    {.name = "qwen2.5-72b",
     .arch = "qwen2",
     .attn = GQA(8192, 64, 8, 128, 1000000.0f),
     .n_layers = 80,
     .vocab_size = 152064,
     .ffn_dim = 29568,
     .ffn_gated = 1,
     .qkv_bias = 1,
     .context_length = 32768},
    {.name = "falcon-7b",
     .arch = "falcon",
     .attn = GQA(4544, 71, 1, 64, 10000.0f),
     .n_layers = 32,
     .vocab_size = 65024,
     .ffn_dim = 18176,
     .ffn_gated = 0,
     .tied_embeddings = 1,
     .parallel_attn = 1,
     .context_length = 2048},
    {.name = "deepseek-v2-lite",
     .arch = "deepseek2",
     .attn = MLA(2048, 16, 0, 0.707f),
     .n_layers = 27,
     .vocab_size = 102400,
     .ffn_dim = 10944,
     .ffn_gated = 1,
     .n_routed_experts = 64,
     .n_shared_experts = 2,
     .n_active_experts = 6,
     .moe_ffn_dim = 1408,
     .n_dense_layers = 1,
     .moe_layer_freq = 1,
     .expert_weights_scale = 1.0f,
     .context_length = 163840},
    {.name = "deepseek-v2",
     .arch = "deepseek2",
     .attn = MLA(5120, 128, 1536, 0.707f),
     .n_layers = 60,
     .vocab_size = 102400,
     .ffn_dim = 12288,
     .ffn_gated = 1,
     .n_routed_experts = 160,
     .n_shared_experts = 2,
     .n_active_experts = 6,
     .moe_ffn_dim = 1536,
     .n_dense_layers = 1,
     .moe_layer_freq = 1,
     .n_expert_groups = 8,
     .n_expert_groups_used = 3,
     .expert_weights_scale = 16.0f,
     .context_length = 163840},
    {.name = "deepseek-v3",
     .arch = "deepseek2",
     .attn = MLA(7168, 128, 1536, 1.0f),
     .n_layers = 61,
     .vocab_size = 129280,
     .ffn_dim = 18432,
     .ffn_gated = 1,
     .n_routed_experts = 256,
     .n_shared_experts = 1,
     .n_active_experts = 8,
     .moe_ffn_dim = 2048,
     .n_dense_layers = 3,
     .moe_layer_freq = 1,
     .expert_gating = 1,
     .n_expert_groups = 8,
     .n_expert_groups_used = 4,
     .expert_weights_norm = 1,
     .expert_weights_scale = 2.5f,
     .context_length = 163840},
};

#define N_PRESETS ((int)(sizeof presets / sizeof presets[0]))

int kvattn_preset_count(void) { return N_PRESETS; }

const kvattn_model_desc *kvattn_preset_at(int i) { return i >= 0 && i < N_PRESETS ? &presets[i] : NULL; }

kvattn_status kvattn_preset_find(const char *name, kvattn_model_desc *out) {
    if (!name || !out) return kv_fail(KVATTN_ERR_INVALID_ARG, "preset: NULL argument");
    for (int i = 0; i < N_PRESETS; i++)
        if (!strcmp(name, presets[i].name)) {
            *out = presets[i];
            return KVATTN_OK;
        }
    char known[1024];
    size_t n = 0;
    known[0] = '\0';
    for (int i = 0; i < N_PRESETS && n + 40 < sizeof known; i++)
        n += (size_t)snprintf(known + n, sizeof known - n, "%s%s", i ? ", " : "", presets[i].name);
    return kv_fail(KVATTN_ERR_INVALID_ARG, "unknown preset '%s' (known: %s)", name, known);
}
