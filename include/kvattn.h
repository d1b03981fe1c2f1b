/*
 * kvattn.h — the one public header of libkvattn.
 *
 * KV-cached attention in the four designs that matter for inference memory:
 * Multi-Head (MHA), Grouped-Query (GQA), Multi-Query (MQA) — one algorithm,
 * chosen by n_kv_heads — and DeepSeek's Multi-Head Latent Attention (MLA) with
 * decoupled RoPE, run either naive (per-head K/V expanded from the latent) or
 * absorbed (W_UK folded into the query, W_UV applied after attention).
 *
 * Conventions
 *  - Every matrix is row-major [out_features][in_features]: y = W x.
 *  - Hidden states are row-major [T][d_model] for T tokens.
 *  - Functions that can fail return kvattn_status; on failure a message that
 *    names the offending field and value is available from kvattn_last_error()
 *    (per thread, valid until the next failing call on that thread).
 *  - The library never keeps pointers to caller memory beyond a call, except
 *    where a function says so. Weights are owned by the caller.
 */
#ifndef KVATTN_H
#define KVATTN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KVATTN_VERSION "0.1.0"

/* ------------------------------------------------------------------------- */
/* Errors                                                                     */
/* ------------------------------------------------------------------------- */

typedef enum {
    KVATTN_OK = 0,
    KVATTN_ERR_INVALID_ARG, /* a NULL pointer, a negative count, a bad index */
    KVATTN_ERR_CONFIG,      /* a layer configuration that cannot be run      */
    KVATTN_ERR_NOMEM,       /* an allocation failed or a size overflowed     */
    KVATTN_ERR_CACHE_FULL,  /* appending would exceed the cache capacity     */
    KVATTN_ERR_UNSUPPORTED, /* valid request that this build cannot do       */
    KVATTN_ERR_IO,          /* a file could not be read or written           */
    KVATTN_ERR_FORMAT,      /* a file's content is malformed                 */
    KVATTN_ERR_POOL_FULL    /* a paged cache's pool has no unused block left */
} kvattn_status;

/* The message of the last failure on the calling thread ("" if none). */
const char *kvattn_last_error(void);

/* A short name of a status code, e.g. "cache full". */
const char *kvattn_status_name(kvattn_status s);

/* ------------------------------------------------------------------------- */
/* Element types                                                              */
/* ------------------------------------------------------------------------- */

typedef enum {
    KVATTN_TYPE_F32 = 0,
    KVATTN_TYPE_F16,
    KVATTN_TYPE_BF16,
    KVATTN_TYPE_Q8_0, /* blocks of 32: one f16 scale + 32 int8 = 34 bytes     */
    KVATTN_TYPE_Q4_0, /* blocks of 32: one f16 scale + 16 bytes = 18 bytes    */
    KVATTN_TYPE_FP8,  /* float8 e4m3, one byte, no scale (planner sizing)     */
    /* GGUF's other block-quantized weight types (llama.cpp's layouts), read
     * in place as weights, not cache types; Q4_0 above is one of them too. */
    KVATTN_TYPE_Q4_1, /* blocks of 32, 20 bytes                               */
    KVATTN_TYPE_Q5_0, /* blocks of 32, 22 bytes                               */
    KVATTN_TYPE_Q5_1, /* blocks of 32, 24 bytes                               */
    KVATTN_TYPE_Q2_K, /* super-blocks of 256, 84 bytes                        */
    KVATTN_TYPE_Q3_K, /* super-blocks of 256, 110 bytes                       */
    KVATTN_TYPE_Q4_K, /* super-blocks of 256, 144 bytes                       */
    KVATTN_TYPE_Q5_K, /* super-blocks of 256, 176 bytes                       */
    KVATTN_TYPE_Q6_K, /* super-blocks of 256, 210 bytes                       */
    KVATTN_TYPE_COUNT
} kvattn_type;

/* "f32", "f16", "bf16", "q8_0", "q4_0", "fp8". */
const char *kvattn_type_name(kvattn_type t);

/* Parses a type name; returns KVATTN_ERR_INVALID_ARG for an unknown name. */
kvattn_status kvattn_type_from_name(const char *name, kvattn_type *out);

/* Bytes needed to store one row of n elements of type t. Block-quantized
 * types round n up to whole blocks (q8_0: ceil(n/32)·34). Returns 0 on
 * overflow or n < 0. */
size_t kvattn_row_bytes(kvattn_type t, int64_t n);

/* Whether a KV cache can hold elements of this type (f32, f16, bf16, q8_0). */
int kvattn_type_is_cache_type(kvattn_type t);

/* ------------------------------------------------------------------------- */
/* Layer configuration                                                        */
/* ------------------------------------------------------------------------- */

typedef enum {
    KVATTN_ATTN_GQA = 0, /* MHA (n_kv_heads = n_heads), GQA, MQA (n_kv_heads = 1) */
    KVATTN_ATTN_MLA      /* DeepSeek multi-head latent attention                  */
} kvattn_attn_kind;

typedef enum {
    KVATTN_ROPE_ADJACENT = 0, /* rotate (2i, 2i+1): llama2.c, GGUF llama, DeepSeek */
    KVATTN_ROPE_HALF          /* rotate (i, i+n/2): Hugging Face Llama, GPT-NeoX   */
} kvattn_rope_pairing;

typedef struct {
    float theta; /* base, e.g. 10000                                  */
    int n_rot;   /* dims of each head that rotate (first n_rot);
                                    GQA: 0 means head_dim; MLA: must be 0 or
                                    qk_rope_head_dim (the whole decoupled part)     */
    kvattn_rope_pairing pairing;
    /* YaRN context extension (DeepSeek-V2/V3). Off when yarn_factor <= 1.
     * When on, frequencies are blended as in DeepSeek-V3's reference
     * precompute_freqs_cis and the softmax scale is multiplied by mscale²,
     * mscale = 0.1 · yarn_mscale · ln(yarn_factor) + 1. */
    float yarn_factor;
    int yarn_orig_ctx;    /* original_max_position_embeddings             */
    float yarn_beta_fast; /* 0 → 32                                        */
    float yarn_beta_slow; /* 0 → 1                                         */
    float yarn_mscale;    /* "mscale_all_dim" in HF configs; 0 → 1         */
    /* Per-pair frequency divisors, [n_rot/2] or NULL: pair i turns at
     * f_i / freq_factors[i] — Llama 3's rope_freqs (rope_scaling "llama3"),
     * or "linear" scaling's factor in every entry. Not copied: the array
     * must outlive the config (a loaded model owns its own). */
    const float *freq_factors;
} kvattn_rope_config;

typedef struct {
    kvattn_attn_kind kind;
    int d_model;
    int n_heads;
    /* GQA family */
    int n_kv_heads;
    int head_dim;
    /* MLA (DeepSeek config names) */
    int q_lora_rank;      /* 0 = no query compression                */
    int kv_lora_rank;     /* d_c                                     */
    int qk_nope_head_dim; /* d_nope                                  */
    int qk_rope_head_dim; /* d_R, even                               */
    int v_head_dim;       /* d_v                                     */
    float rms_eps;        /* q_norm / kv_norm epsilon (MLA), per-head
                             Q/K norm epsilon (GQA); 0 → 1e-6           */
    int kv_norm_off;      /* 1: c_KV is cached as projected, without
                             DeepSeek's RMSNorm (kv_norm unused): models
                             converted from MHA/GQA (kvattn convert)    */
    /* Softmax scale; 0 → 1/sqrt(head_dim) (GQA) or 1/sqrt(d_nope + d_R),
     * times mscale² under YaRN (MLA). A nonzero value is used as given. */
    float softmax_scale;
    kvattn_rope_config rope;
} kvattn_layer_config;

/* Checks a configuration; KVATTN_ERR_CONFIG with the field and value if it
 * cannot be run (non-positive dims, n_heads not divisible by n_kv_heads, odd
 * rotary dims, ...). */
kvattn_status kvattn_config_validate(const kvattn_layer_config *cfg);

/* The softmax scale the layer uses (see softmax_scale above). */
float kvattn_config_softmax_scale(const kvattn_layer_config *cfg);

/* "mha", "mqa", "gqa:G" or "mla:DC+DR" into buf; returns buf. */
const char *kvattn_config_design_name(const kvattn_layer_config *cfg, char *buf, size_t size);

/* Elements cached per token per layer: 2·n_kv·head_dim (GQA family) or
 * d_c + d_R (MLA, latent cache). */
int64_t kvattn_kv_elems_per_token_layer(const kvattn_layer_config *cfg);

/* Bytes of KV cache per token over n_layers layers in element type t, as a
 * kvattn cache lays them out: one row per KV head for K and for V (GQA
 * family), one c_KV ‖ k_R row (MLA). Equal to elems · bytes_per_elem for
 * unquantized types; block types round each row up to whole blocks.
 * Returns 0 for an invalid config or on overflow. The planner and the cache
 * both use this function. */
size_t kvattn_kv_bytes_per_token(const kvattn_layer_config *cfg, int n_layers, kvattn_type t);

/* The same with K rows of k_type and V rows of v_type (llama.cpp's -ctk and
 * -ctv); MLA's one latent row is counted in k_type. */
size_t kvattn_kv_bytes_per_token_kv(const kvattn_layer_config *cfg, int n_layers, kvattn_type k_type,
                                    kvattn_type v_type);

/* ------------------------------------------------------------------------- */
/* Layer weights (caller-owned, row-major [out][in])                          */
/* ------------------------------------------------------------------------- */

/* A weight matrix [rows][cols] stored row-major in one of the types the
 * kernels read directly: f32, f16, bf16, q8_0 (each row ceil(cols/32)
 * blocks) or GGUF's block types. Used in place: a memory-mapped file's tensor
 * needs no copy. `panels` is NULL (zero it) unless the library packed the
 * rows for its projection kernels: a loaded model's f16/bf16 projections
 * carry the same rows there, 16 side by side, and its products read those;
 * so do its Q4_K projections, 16 rows per group of super-blocks, on CPUs with
 * AVX512_VNNI (kvattn_version's kernels: avx512vnni). MLA's wk_b and wv_b carry W_UKᵀ and W_UV so, head after head, also when the
 * file has them fused in wkv_b (wk_b.data and wv_b.data then stay NULL). */
typedef struct {
    const void *data;
    kvattn_type type;
    const void *panels;
} kvattn_matrix;

static inline kvattn_matrix kvattn_f32_matrix(const float *data) {
    kvattn_matrix m;
    m.data = data;
    m.type = KVATTN_TYPE_F32;
    m.panels = NULL;
    return m;
}

typedef struct {
    /* GQA family */
    kvattn_matrix wq; /* [n_heads·head_dim][d_model]              (MLA: see below) */
    kvattn_matrix wk; /* [n_kv_heads·head_dim][d_model]                            */
    kvattn_matrix wv; /* [n_kv_heads·head_dim][d_model]                            */
    kvattn_matrix wo; /* [d_model][n_heads·head_dim]  (MLA: [d_model][n_heads·d_v]) */
    /* Optional, GQA family (NULL: none). Qwen2's projection biases, added to
     * q, k, v before RoPE; Qwen3's RMSNorm of each head's q and k (one weight
     * vector shared by the heads), after the bias and before RoPE. */
    const float *bq;          /* [n_heads·head_dim]    */
    const float *bk;          /* [n_kv_heads·head_dim] */
    const float *bv;          /* [n_kv_heads·head_dim] */
    const float *q_head_norm; /* [head_dim]            */
    const float *k_head_norm; /* [head_dim]            */
    /* MLA. Query: wq = [n_heads·(d_nope+d_R)][d_model] when q_lora_rank = 0,
     * otherwise wq_a, q_norm, wq_b. Per head, query rows are [d_nope | d_R]. */
    kvattn_matrix wq_a;  /* [q_lora_rank][d_model]                           */
    kvattn_matrix wq_b;  /* [n_heads·(d_nope+d_R)][q_lora_rank]              */
    kvattn_matrix wkv_a; /* [d_c + d_R][d_model]: W_DKV rows, then W_KR rows */
    kvattn_matrix wkv_b; /* [n_heads·(d_nope+d_v)][d_c]: per head W_UK then W_UV */
    /* ... or wkv_b split as newer llama.cpp GGUFs store it (wkv_b.data NULL):  */
    kvattn_matrix wk_b;   /* [n_heads·d_c][d_nope]: per head W_UKᵀ              */
    kvattn_matrix wv_b;   /* [n_heads·d_v][d_c]:    per head W_UV               */
    const float *q_norm;  /* [q_lora_rank]                                    */
    const float *kv_norm; /* [d_c]                                            */
} kvattn_layer_weights;

/* Checks that every matrix the config needs is set and of a kernel type. */
kvattn_status kvattn_weights_validate(const kvattn_layer_config *cfg, const kvattn_layer_weights *w);

/* ------------------------------------------------------------------------- */
/* KV cache                                                                   */
/* ------------------------------------------------------------------------- */

/* A KV cache for n_layers layers of one configuration, holding up to
 * `capacity` tokens per layer. GQA family: per layer, K and V rows of
 * head_dim elements for each KV head. MLA: per layer, one row of
 * c_KV ‖ k_R (d_c + d_R elements) per token — both MLA modes run from it.
 * Elements are converted (quantized) on append. */
typedef struct kvattn_cache kvattn_cache;

/* Creates a cache. The config is copied. Errors: invalid config or type,
 * capacity or n_layers < 1, size overflow, out of memory. */
kvattn_status kvattn_cache_create(const kvattn_layer_config *cfg, int n_layers, int capacity, kvattn_type type,
                                  kvattn_cache **out);
/* The same with K rows of k_type and V rows of v_type (GQA family); an MLA
 * cache needs k_type == v_type (its latent row is both). */
kvattn_status kvattn_cache_create_kv(const kvattn_layer_config *cfg, int n_layers, int capacity, kvattn_type k_type,
                                     kvattn_type v_type, kvattn_cache **out);
void kvattn_cache_free(kvattn_cache *c);

/* Tokens held by `layer`; layer = -1 gives the minimum over all layers. */
int kvattn_cache_length(const kvattn_cache *c, int layer);
int kvattn_cache_capacity(const kvattn_cache *c);
int kvattn_cache_n_layers(const kvattn_cache *c);
kvattn_type kvattn_cache_type(const kvattn_cache *c);   /* of the K rows (MLA: the latent) */
kvattn_type kvattn_cache_type_v(const kvattn_cache *c); /* of the V rows */
/* = kvattn_kv_bytes_per_token_kv(cfg, n_layers, k_type, v_type). */
size_t kvattn_cache_bytes_per_token(const kvattn_cache *c);
/* Bytes of cache storage allocated: capacity · bytes_per_token. */
size_t kvattn_cache_bytes_allocated(const kvattn_cache *c);

/* Forgets every token in every layer (storage is kept). */
void kvattn_cache_clear(kvattn_cache *c);
/* Keeps the first n_tokens of every layer (n_tokens ≤ the current length
 * of each layer). */
kvattn_status kvattn_cache_truncate(kvattn_cache *c, int n_tokens);

/* Writes T tokens at positions pos..pos+T-1 of `layer`, pos ≤ length(layer).
 * The layer's length becomes pos + T (later tokens are dropped).
 * GQA family: k and v are [T][n_kv_heads·head_dim] (k already rotated).
 * MLA: k is [T][d_c + d_R] = c_KV (normed) ‖ k_R (rotated); v must be NULL.
 * KVATTN_ERR_CACHE_FULL if pos + T > capacity. */
kvattn_status kvattn_cache_write(kvattn_cache *c, int layer, int pos, int T, const float *k, const float *v);

/* Appends n tokens of random rows (uniform in [-1, 1), deterministic per
 * seed) to `layer`, or to every layer when layer = -1 — a cache "as if" a
 * prompt had run, for timing decode at depth. KVATTN_ERR_CACHE_FULL past
 * the capacity. */
kvattn_status kvattn_cache_fill_random(kvattn_cache *c, int layer, int n, uint64_t seed);

/* Reads back token t of `layer` as f32 (dequantized). GQA family: k and v
 * receive n_kv_heads·head_dim floats each; MLA: k receives d_c + d_R floats
 * and v must be NULL. */
kvattn_status kvattn_cache_read(const kvattn_cache *c, int layer, int t, float *k, float *v);

/* ------------------------------------------------------------------------- */
/* Paged KV cache                                                             */
/* ------------------------------------------------------------------------- */

/* A pool of KV blocks that many caches (sequences) draw from, as vLLM's
 * PagedAttention does: each block holds block_tokens tokens of every layer,
 * laid out as a contiguous cache of that capacity, so attention reads a
 * sequence's blocks in place through its block table. Blocks are taken as
 * tokens arrive, shared between caches by reference count (copied when a
 * shared block is written), and published under the hash of all the tokens
 * up to their end, so that a later prompt with the same prefix reuses them.
 * A block no cache holds stays reusable until its memory is needed (least
 * recently used first). Not thread-safe: one thread drives a pool and its
 * caches. */
typedef struct kvattn_kv_pool kvattn_kv_pool;

/* Blocks of block_tokens tokens that fit in `bytes`, at
 * kvattn_kv_bytes_per_token_kv bytes a token: 0 if none does or an argument
 * is invalid. */
int kvattn_kv_pool_blocks_for_bytes(const kvattn_layer_config *cfg, int n_layers, kvattn_type k_type,
                                    kvattn_type v_type, int block_tokens, uint64_t bytes);
/* Creates a pool of n_blocks blocks. block_tokens: a power of two in
 * [64, 4096] (whole attention tiles). The config is copied. */
kvattn_status kvattn_kv_pool_create(const kvattn_layer_config *cfg, int n_layers, kvattn_type k_type,
                                    kvattn_type v_type, int block_tokens, int n_blocks, kvattn_kv_pool **out);
/* Frees the pool once the caches made from it are freed too. */
void kvattn_kv_pool_free(kvattn_kv_pool *p);
int kvattn_kv_pool_block_tokens(const kvattn_kv_pool *p);
int kvattn_kv_pool_n_blocks(const kvattn_kv_pool *p);

typedef struct {
    int n_blocks, block_tokens;
    int used;               /* held by at least one cache                        */
    int cached;             /* held by none, published: a matching prefix reuses it */
    int free;               /* held by none, not published                       */
    uint64_t bytes;         /* the pool's storage: n_blocks · block_tokens · bytes_per_token */
    size_t bytes_per_token; /* = kvattn_kv_bytes_per_token_kv of the pool's config */
    uint64_t lookups, hits; /* prefix blocks looked up and found                 */
    uint64_t evictions;     /* published blocks taken for new tokens             */
    uint64_t copies;        /* shared blocks copied before a write               */
} kvattn_kv_pool_stats;

void kvattn_kv_pool_get_stats(const kvattn_kv_pool *p, kvattn_kv_pool_stats *out);

/* A cache of up to `capacity` tokens whose rows live in the pool's blocks.
 * Every kvattn_cache_* call works on it; a write that needs a block when
 * none is unused fails with KVATTN_ERR_POOL_FULL and writes nothing. */
kvattn_status kvattn_cache_create_paged(kvattn_kv_pool *pool, int capacity, kvattn_cache **out);
int kvattn_cache_is_paged(const kvattn_cache *c);
/* A second cache with the same tokens: paged, sharing every block (each
 * copied when either cache first writes into it); contiguous, a copy. */
kvattn_status kvattn_cache_fork(const kvattn_cache *src, kvattn_cache **out);
/* Makes room for n tokens at pos (≤ the length of every layer): paged, the
 * blocks are taken (and shared ones copied) now, all or nothing —
 * KVATTN_ERR_POOL_FULL leaves the cache as it was. KVATTN_ERR_CACHE_FULL
 * past the capacity. */
kvattn_status kvattn_cache_reserve(kvattn_cache *c, int pos, int n);
/* An empty paged cache takes the published blocks that hold the longest
 * prefix of tokens[0..n) in whole blocks; *reused receives the tokens it
 * now holds (every layer), a multiple of the block size. A contiguous cache
 * reuses nothing. */
kvattn_status kvattn_cache_reuse_prefix(kvattn_cache *c, const int32_t *tokens, int n, int *reused);
/* Publishes the cache's whole blocks among its first n tokens, which are
 * `tokens` (n ≤ the length of every layer), for kvattn_cache_reuse_prefix. */
kvattn_status kvattn_cache_publish_prefix(kvattn_cache *c, const int32_t *tokens, int n);

/* ------------------------------------------------------------------------- */
/* Attention forward                                                          */
/* ------------------------------------------------------------------------- */

typedef enum {
    KVATTN_MLA_ABSORBED = 0, /* q̃ = W_UKᵀ q_C; attend over the latent; W_UV after */
    KVATTN_MLA_NAIVE         /* expand k_C, v per head from the latent, then MHA   */
} kvattn_mla_mode;

/* One attention layer over T new tokens at positions pos..pos+T-1:
 *   x   [T][d_model]  hidden states (already normed by the caller)
 *   out [T][d_model]  attention output after the output projection
 * Appends the tokens' K/V (or latent) to `layer` of the cache, then attends
 * causally over cache positions 0..pos+t for token t. Requires
 * pos ≤ length(layer) (writing at pos < length rewrites that suffix).
 * T = 1 is a decode step. `mla_mode` is ignored for the GQA family.
 * Errors: invalid arguments, cache full, config mismatch with the cache. */
kvattn_status kvattn_attn_forward(const kvattn_layer_config *cfg, const kvattn_layer_weights *w, kvattn_cache *cache,
                                  int layer, int pos, int T, const float *x, float *out, kvattn_mla_mode mla_mode);

/* One decode step of n sequences at once: row i of x [n][d_model] is the
 * next token of the sequence whose cache is caches[i] (n distinct caches),
 * at position pos[i]; out [n][d_model]. The projections read each weight
 * once for all n rows, and every row's output is bit for bit what
 * kvattn_attn_forward gives that token alone (T = 1), whatever else is in
 * the batch. */
kvattn_status kvattn_attn_decode_batch(const kvattn_layer_config *cfg, const kvattn_layer_weights *w,
                                       kvattn_cache *const *caches, const int *pos, int n, int layer, const float *x,
                                       float *out, kvattn_mla_mode mla_mode);

/* Several sequences' tokens in one pass (a batched step that also runs
 * prompts): sequence i's len[i] ≥ 1 tokens are the next rows of x, in order,
 * at positions pos[i].. of caches[i] (n distinct caches). The projections
 * read each weight once for the pass where the kernels allow it, and every
 * sequence's outputs are bit for bit what kvattn_attn_forward gives its rows
 * alone (T = len[i]), whatever else is in the pass. */
kvattn_status kvattn_attn_forward_seqs(const kvattn_layer_config *cfg, const kvattn_layer_weights *w,
                                       kvattn_cache *const *caches, const int *pos, const int *len, int n, int layer,
                                       const float *x, float *out, kvattn_mla_mode mla_mode);

/* The scalar reference: attention of tokens 0..T-1 recomputed from scratch,
 * with no cache, in double precision accumulation: out[t] attends over
 * tokens 0..t of x. MLA follows DeepSeek's naive formulation. Slow; for
 * tests and for checking the fast path. */
kvattn_status kvattn_attn_reference(const kvattn_layer_config *cfg, const kvattn_layer_weights *w, int T,
                                    const float *x, float *out);

/* ------------------------------------------------------------------------- */
/* Models and the KV-cache planner                                            */
/* ------------------------------------------------------------------------- */

/* What the planner knows of a model: its attention layer and enough of the
 * rest to count its parameters. Dense models have n_routed_experts = 0. */
typedef struct {
    char name[64];
    char arch[32];            /* "llama", "mistral", "mixtral", "qwen2", "qwen3", "falcon", "gpt2", "deepseek2" */
    kvattn_layer_config attn; /* the model's own attention design                          */
    int n_layers;
    int64_t vocab_size;
    int64_t ffn_dim;            /* dense FFN hidden size                                      */
    int ffn_gated;              /* 1: gate/up/down (SwiGLU), 0: up/down (GELU MLP)            */
    int n_routed_experts;       /* MoE: routed experts per MoE layer (0 = dense model)         */
    int n_shared_experts;       /* MoE: always-on experts                                      */
    int n_active_experts;       /* MoE: experts per token                                      */
    int64_t moe_ffn_dim;        /* MoE: hidden size of one expert                              */
    int n_dense_layers;         /* MoE: the first layers keep a dense FFN                      */
    int moe_layer_freq;         /* MoE: every moe_layer_freq-th later layer is MoE (0 → 1)     */
    int expert_gating;          /* MoE: router scores by 0 softmax, 1 sigmoid                  */
    int n_expert_groups;        /* MoE: n_group (0 or 1: no group-limited routing)             */
    int n_expert_groups_used;   /* MoE: topk_group                                             */
    int expert_weights_norm;    /* MoE: normalise the chosen experts' weights to sum 1         */
    float expert_weights_scale; /* MoE: routed_scaling_factor (0 → 1)                          */
    int tied_embeddings;        /* the output head is the token embedding                      */
    int qkv_bias;               /* Q, K, V projections have biases (Qwen2)                    */
    int qk_norm;                /* RMSNorm of each head's q and k before RoPE (Qwen3)         */
    int gpt2_style;             /* learned positions, LayerNorm and biases everywhere (GPT-2)  */
    int parallel_attn;          /* one norm per block (Falcon)                                 */
    int64_t context_length;     /* trained / configured maximum context                       */
} kvattn_model_desc;

/* Built-in model presets (real published configurations). */
int kvattn_preset_count(void);
const kvattn_model_desc *kvattn_preset_at(int i);
/* Finds a preset by name; KVATTN_ERR_INVALID_ARG naming the known presets
 * if there is none. */
kvattn_status kvattn_preset_find(const char *name, kvattn_model_desc *out);

/* Reads a Hugging Face config.json (Llama, Mistral, Mixtral, Qwen2, Qwen3, Falcon,
 * GPT-2, DeepSeek-V2/V3 keys). Errors name the file and the key. */
kvattn_status kvattn_model_from_hf_config(const char *path, kvattn_model_desc *out);

/* Total parameters: embeddings, every layer (all experts), norms, head.
 * Returns -1 for an invalid description or on overflow. */
int64_t kvattn_model_params(const kvattn_model_desc *m);

/* Whether `layer` has a mixture-of-experts FFN: after the n_dense_layers
 * leading dense layers, every moe_layer_freq-th layer of an MoE model. */
int kvattn_model_is_moe_layer(const kvattn_model_desc *m, int layer);

/* The same layer in another design, keeping d_model, n_heads and the
 * per-head width: "mha", "mqa", "gqa:G" (G divides n_heads), "mla:DC+DR"
 * (d_nope = d_v = the head width; no query compression). From an MLA layer
 * the head width is v_head_dim. */
kvattn_status kvattn_redesign(const kvattn_layer_config *in, const char *design, kvattn_layer_config *out);

/* One row of a plan: the KV cache and memory of a model in one design. */
typedef struct {
    char design[32]; /* "mha", "gqa:8", "mqa", "mla:512+64"                     */
    int native;      /* the model's own design                                  */
    int64_t kv_elems_per_token_layer;
    uint64_t kv_bytes_per_token; /* all layers                                            */
    uint64_t kv_bytes_total;     /* · ctx · batch                                         */
    uint64_t weights_bytes;      /* parameters of this design in weights_type            */
    uint64_t total_bytes;        /* weights + KV                                          */
    int64_t gpus_needed;         /* ceil(total / gpu_mem); 0 without a GPU                */
    int64_t max_context;         /* longest context (per sequence, at this batch) that
                                     fits on n_gpus (or gpus_needed) GPUs; 0 if the weights
                                     alone do not fit; -1 without a GPU                   */
} kvattn_plan_row;

typedef struct {
    int64_t ctx;   /* tokens per sequence                          */
    int64_t batch; /* sequences                                    */
    kvattn_type kv_type;
    kvattn_type weights_type;
    uint64_t gpu_mem_bytes; /* 0: no GPU sizing                              */
    int64_t n_gpus;         /* GPUs for max_context; 0: gpus_needed          */
} kvattn_plan_options;

/* Plans `design` (NULL or "" = the model's own) for model m. Sizes use
 * kvattn_kv_bytes_per_token. Errors: bad design, sizes that overflow 64 bits. */
kvattn_status kvattn_plan(const kvattn_model_desc *m, const char *design, const kvattn_plan_options *opt,
                          kvattn_plan_row *row);

/* ------------------------------------------------------------------------- */
/* Tokenizers                                                                 */
/* ------------------------------------------------------------------------- */

typedef struct kvattn_tokenizer kvattn_tokenizer;

typedef enum {
    KVATTN_VOCAB_SPM = 0, /* SentencePiece-style BPE by scores, byte fallback (llama2.c, GGUF "llama") */
    KVATTN_VOCAB_BPE      /* GPT-2 byte-level BPE by merge ranks (GGUF "gpt2", tokenizer.json)     */
} kvattn_vocab_kind;

/* The vocabulary of a GGUF file alone (tokenizer.ggml.*): a model's, or a
 * vocabulary-only file such as llama.cpp's models/ggml-vocab-*.gguf. */
kvattn_status kvattn_tokenizer_load_gguf(const char *path, kvattn_tokenizer **out);
/* A Hugging Face tokenizer.json alone (BPE models); its size is one past the
 * largest id it names. No BOS or EOS: those are in tokenizer_config.json. */
kvattn_status kvattn_tokenizer_load_json(const char *path, kvattn_tokenizer **out);

/* Reads a llama2.c tokenizer.bin for a model with vocab_size tokens. */
kvattn_status kvattn_tokenizer_load_llama2c(const char *path, int vocab_size, kvattn_tokenizer **out);
void kvattn_tokenizer_free(kvattn_tokenizer *t);

int kvattn_tokenizer_vocab_size(const kvattn_tokenizer *t);
kvattn_vocab_kind kvattn_tokenizer_kind(const kvattn_tokenizer *t);
int kvattn_tokenizer_bos(const kvattn_tokenizer *t); /* -1 if none */
int kvattn_tokenizer_eos(const kvattn_tokenizer *t); /* -1 if none */

/* The id whose piece is exactly `piece` (e.g. "<|im_end|>"), or -1. */
int kvattn_token_id(const kvattn_tokenizer *t, const char *piece);

/* Encodes UTF-8 text into at most max ids (BOS first when add_bos). *n
 * receives the count; KVATTN_ERR_INVALID_ARG if max is too small. */
kvattn_status kvattn_tokenize(const kvattn_tokenizer *t, const char *text, int add_bos, int32_t *ids, int max, int *n);

/* Token id's piece as the vocabulary stores it (NUL-terminated, *len bytes
 * when len is not NULL), or NULL for an id out of range. */
const char *kvattn_tokenizer_piece(const kvattn_tokenizer *t, int id, int *len);

/* A byte-level BPE vocabulary's pre-tokenizer, by llama.cpp's name
 * ("llama-bpe", "qwen2", ...; "" for SentencePiece). *known is 0 when the
 * vocabulary names one kvattn does not know: it then runs llama.cpp's
 * default expressions, and the name returned is the vocabulary's. */
const char *kvattn_tokenizer_pre(const kvattn_tokenizer *t, int *known);

/* The bytes token `id` stands for when it follows `prev` (-1 at the start):
 * byte tokens become their byte, "▁" a space, a leading space after BOS is
 * dropped (SentencePiece). Writes up to size bytes (not NUL-terminated) and
 * returns the byte count, or -1 for an id out of range. */
int kvattn_token_to_bytes(const kvattn_tokenizer *t, int prev, int id, char *buf, int size);

/* ------------------------------------------------------------------------- */
/* Models and sessions                                                        */
/* ------------------------------------------------------------------------- */

typedef struct kvattn_model kvattn_model;

/* Loads a model, memory-mapped, with weights used in place where their type
 * allows (f32, f16, bf16, q8_0). The format is found from the content:
 *   - GGUF v2/v3 (architecture "llama"): tokenizer from its metadata;
 *   - a llama2.c checkpoint (.bin): tokenizer from `tokenizer_path`;
 *   - a Hugging Face folder (or its .safetensors file) with config.json and
 *     tokenizer.json beside it.
 * Every size and offset in the file is checked; errors name the file and
 * the field. tokenizer_path may be NULL where the format carries one. */
kvattn_status kvattn_model_load(const char *path, const char *tokenizer_path, kvattn_model **out);
void kvattn_model_free(kvattn_model *m);

/* The model's shapes (name, arch, attention, layers, vocabulary, context). */
const kvattn_model_desc *kvattn_model_describe(const kvattn_model *m);
/* "llama2.c", "gguf" or "safetensors". */
const char *kvattn_model_format(const kvattn_model *m);
/* Bytes of weights the model reads (mapped or owned). */
uint64_t kvattn_model_weight_bytes(const kvattn_model *m);
/* The tokenizer (owned by the model); NULL if none was found. */
const kvattn_tokenizer *kvattn_model_tokenizer(const kvattn_model *m);
/* Why a tokenizer found beside the model (llama2.c's tokenizer.bin) was not
 * used, e.g. another model's vocabulary; "" if none was refused. */
const char *kvattn_model_tokenizer_error(const kvattn_model *m);
/* The chat template the file carries (GGUF tokenizer.chat_template, a Jinja
 * text), or NULL. */
const char *kvattn_model_chat_template(const kvattn_model *m);

/* How `kvattn convert` made the model, e.g. "mla:48+48 from mha (stories15M)
 * by rorope, ..." (GGUF key kvattn.conversion); "" for a model it did not make. */
const char *kvattn_model_provenance(const kvattn_model *m);

/* A sequence being generated: the KV cache and the work buffers. */
typedef struct kvattn_session kvattn_session;

kvattn_status kvattn_session_create(const kvattn_model *m, int n_ctx, kvattn_type kv_type, kvattn_mla_mode mla_mode,
                                    kvattn_session **out);
/* The same with K rows of k_type and V rows of v_type (see kvattn_cache_create_kv). */
kvattn_status kvattn_session_create_kv(const kvattn_model *m, int n_ctx, kvattn_type k_type, kvattn_type v_type,
                                       kvattn_mla_mode mla_mode, kvattn_session **out);
void kvattn_session_free(kvattn_session *s);
/* A session whose cache is paged in `pool` (made for the model's attention,
 * layer count and KV types), up to n_ctx tokens. Its whole blocks are
 * published as it decodes, for kvattn_session_reuse_prefix. A decode that
 * needs a block when the pool has none unused fails with
 * KVATTN_ERR_POOL_FULL before any layer changes. */
kvattn_status kvattn_session_create_paged(const kvattn_model *m, kvattn_kv_pool *pool, int n_ctx,
                                          kvattn_mla_mode mla_mode, kvattn_session **out);
/* At position 0, takes the longest prefix of the prompt tokens[0..n) whose
 * blocks the pool holds, short of the last token (left to decode for its
 * logits); *reused receives the tokens taken, and the session's position
 * moves past them. A contiguous session reuses nothing. */
kvattn_status kvattn_session_reuse_prefix(kvattn_session *s, const int32_t *tokens, int n, int *reused);

/* Runs n tokens at the current position (then advanced by n). logits
 * receives the last token's logits [vocab], or every token's [n][vocab]
 * when all_logits; may be NULL. KVATTN_ERR_CACHE_FULL past n_ctx; ids out of
 * the vocabulary are KVATTN_ERR_INVALID_ARG. */
kvattn_status kvattn_session_decode(kvattn_session *s, const int32_t *tokens, int n, float *logits, int all_logits);

/* One decode step of n sessions of the same model (and MLA mode) at once
 * (continuous batching): tokens[i] runs at session i's position, logits
 * [n][vocab] (may be NULL) receives each one's next-token logits, bit for
 * bit what kvattn_session_decode gives that session alone: the projections
 * read every weight once for all n, each row summed as it would be alone.
 * n ≤ KVATTN_DECODE_BATCH_MAX; KVATTN_ERR_CACHE_FULL if a session is at the
 * end of its context, KVATTN_ERR_POOL_FULL if a paged one needs a block the
 * pool lacks (no session changes then). */
#define KVATTN_DECODE_BATCH_MAX 128
/* A session runs prompt tokens in chunks that end at multiples of this many
 * positions (so a prompt resumed after a reused prefix, or run in pieces that
 * end there, gets the bits of the whole prompt run at once). */
#define KVATTN_SESSION_CHUNK    128
kvattn_status kvattn_session_decode_batch(kvattn_session *const *seqs, int n, const int32_t *tokens, float *logits);

/* One pass over pieces of several sessions at once (a continuous-batching
 * step: decode tokens and prompt chunks together): piece i runs its n ≥ 1
 * tokens at its session's position. logits [n_pieces][vocab] (may be NULL)
 * receives each piece's last token's logits, and every piece's logits and
 * cache rows are bit for bit what kvattn_session_decode gives its session
 * alone for the same tokens. Distinct sessions of one model and MLA mode;
 * at most KVATTN_SESSION_CHUNK tokens in all, and no piece may cross a
 * multiple of KVATTN_SESSION_CHUNK positions (where kvattn_session_decode
 * would cut it). Errors as kvattn_session_decode_batch's, no session
 * changed then. */
typedef struct {
    kvattn_session *session;
    const int32_t *tokens;
    int n;
} kvattn_batch_piece;
kvattn_status kvattn_session_run_batch(const kvattn_batch_piece *pieces, int n_pieces, float *logits);

int kvattn_session_pos(const kvattn_session *s);
/* Rewinds to position pos ≤ the current one. */
kvattn_status kvattn_session_rewind(kvattn_session *s, int pos);
const kvattn_cache *kvattn_session_cache(const kvattn_session *s);

/* Converting a model's attention to another design (kvattn convert). */
typedef enum {
    KVATTN_CONVERT_AWARE = 0, /* fitted on calibration activations (see the README)  */
    KVATTN_CONVERT_MEAN       /* GQA/MQA: the K and V heads of a group averaged (Ainslie et al. 2023) */
} kvattn_convert_method;

typedef struct {
    const char *design;           /* "gqa:G", "mqa", "mha" or "mla:DC+DR"                              */
    kvattn_convert_method method; /* GQA/MQA targets; MLA is always fitted on calibration text          */
    int mla_kv_norm;              /* MLA: 1 keeps DeepSeek's RMSNorm of the latent (W_UK, W_UV fitted
                                     to the normed latent; a true deepseek2 file), 0 caches the latent as
                                     projected (exact where the rank allows; kv_norm_off)               */
    const int32_t *calib_tokens;  /* calibration text as token ids, without BOS                          */
    int n_calib_tokens;
    int calib_ctx;            /* windows of this many tokens, each from BOS; 0 → 256            */
    const char *calib_source; /* what the calibration text was, for the provenance               */
    void (*progress)(void *ctx, const char *stage, int done, int total); /* or NULL */
    void *progress_ctx;
} kvattn_convert_params;

/* A new model whose attention layers are the source's in another design; the
 * rest (embeddings, FFNs, norms, tokenizer) is the source's, borrowed: free
 * the result before the source. Its provenance names the source design, the
 * method and the calibration. Errors: a target the source cannot become
 * (G not dividing the KV heads, more KV heads than the source, d_c + d_R
 * larger than the source's cache, d_R other than its rotary dims), an MLA
 * source, no calibration tokens where the method needs them. */
kvattn_status kvattn_model_convert(const kvattn_model *src, const kvattn_convert_params *p, kvattn_model **out);

/* Uptraining (kvattn uptrain): a converted model (the student) distilled
 * from its original (the teacher) on training text. Each step takes `batch`
 * windows of `seq` tokens at random places in the text (the stream seeded by
 * seed and the step), the teacher's next-token distributions (an inference
 * session, f32 cache) and the student's loss: ce_weight · cross-entropy on
 * the text's next tokens + (1 - ce_weight) · KL(teacher ‖ student), averaged.
 * AdamW (decay on matrices, gradient norm clipped to `clip`, linear warm-up
 * then cosine from lr to min_lr over `steps`) moves the student's attention
 * projections (or every tensor with train_all), in f32. The student must be a
 * llama-family model (grouped-query attention, or MLA without q_lora, trained
 * in its naive form; a dense SwiGLU FFN); the teacher any model of the same
 * vocabulary. */
typedef struct {
    int step, steps;
    double loss, kl; /* this step's, averaged over its windows */
    double lr, grad_norm, tokens_per_s, seconds;
} kvattn_uptrain_progress;

typedef struct {
    const int32_t *tokens; /* the training text, in the models' vocabulary */
    int n_tokens;
    int steps, batch, seq;
    float lr, min_lr, weight_decay, clip, ce_weight;
    int warmup;    /* linear warm-up steps; < 0: a twentieth of the steps */
    int train_all; /* 0: the attention projections only */
    uint64_t seed;
    /* time_budget_s > 0: train for at most this many seconds (the teacher's passes included).
     * `steps` is then a cap, and the schedule runs over the steps the budget is expected to hold,
     * estimated again after each step from the mean step time so far; the run ends before a step
     * that would pass the budget. Not with resume (the schedule was fitted to another run). */
    double time_budget_s;
    /* out_path receives the student as GGUF (weights as out_type) at the end, at a stop and every
     * checkpoint_every steps (0: none), and out_path + ".state" the optimizer's state; each is
     * written under a temporary name and renamed. resume: the student given is such a checkpoint,
     * and training goes on from its state's step. */
    const char *out_path;
    kvattn_type out_type;
    int checkpoint_every, resume;
    void (*progress)(void *ctx, const kvattn_uptrain_progress *p); /* after each step, or NULL */
    void *progress_ctx;
    const volatile int *stop; /* set (by a signal handler) to stop after the current step */
} kvattn_uptrain_params;

typedef struct {
    int first_step, last_step, steps_run;
    uint64_t tokens;
    double seconds;
    double first_loss, first_kl, last_loss, last_kl;
} kvattn_uptrain_result;

kvattn_status kvattn_uptrain(const kvattn_model *student, const kvattn_model *teacher, const kvattn_uptrain_params *p,
                             kvattn_uptrain_result *res);

/* Writes a loaded model as a GGUF v3 file with llama.cpp's tensor names and
 * metadata keys, the tokenizer included: architecture "qwen2" or "qwen3" for
 * those models, "llama" for the rest of the GQA family (Mixtral's experts
 * kept), "deepseek2" for MLA (MoE layers, YaRN and the kv_b layout kept).
 * 2-D weights are stored as weight_type (f32, f16, bf16, q8_0, q4_0, q4_k; a
 * row that is not whole blocks falls back: q4_k to q4_0, block types to
 * f16), norms and the router as f32. */
kvattn_status kvattn_model_save_gguf(const kvattn_model *m, const char *path, kvattn_type weight_type);

/* A GGUF v3 writer: metadata and tensors in memory, then one file. */
typedef struct kvattn_gguf_writer kvattn_gguf_writer;

kvattn_status kvattn_gguf_writer_create(kvattn_gguf_writer **out);
void kvattn_gguf_writer_free(kvattn_gguf_writer *w);
kvattn_status kvattn_gguf_set_u32(kvattn_gguf_writer *w, const char *key, uint32_t v);
kvattn_status kvattn_gguf_set_i32(kvattn_gguf_writer *w, const char *key, int32_t v);
kvattn_status kvattn_gguf_set_f32(kvattn_gguf_writer *w, const char *key, float v);
kvattn_status kvattn_gguf_set_bool(kvattn_gguf_writer *w, const char *key, int v);
kvattn_status kvattn_gguf_set_str(kvattn_gguf_writer *w, const char *key, const char *v);
/* Arrays: strings (lens[i] bytes each; lens may be NULL for NUL-terminated),
 * f32 and i32 values. */
kvattn_status kvattn_gguf_set_str_array(kvattn_gguf_writer *w, const char *key, const char *const *v, const int *lens,
                                        int n);
kvattn_status kvattn_gguf_set_f32_array(kvattn_gguf_writer *w, const char *key, const float *v, int n);
kvattn_status kvattn_gguf_set_i32_array(kvattn_gguf_writer *w, const char *key, const int32_t *v, int n);
/* A tensor of shape ne[0..n_dims) (ne[0] fastest), given as f32 values and
 * stored as `type` (f32, f16, bf16, q8_0). The data is converted now. */
kvattn_status kvattn_gguf_add_tensor(kvattn_gguf_writer *w, const char *name, kvattn_type type, const int64_t *ne,
                                     int n_dims, const float *data);
kvattn_status kvattn_gguf_write_file(const kvattn_gguf_writer *w, const char *path);

/* ------------------------------------------------------------------------- */
/* Sampling                                                                   */
/* ------------------------------------------------------------------------- */

/* What a token is drawn with, in llama.cpp's order: the penalties change the
 * logits of tokens in the recent window; then top-k, top-p and min-p keep a
 * set of candidates, judged at temperature 1; then the temperature scales what
 * is left and one is drawn. llama.cpp's defaults are temperature 0.8, top_k
 * 40, top_p 0.95, min_p 0.05, repeat_penalty 1, repeat_last_n 64. */
typedef struct {
    float temperature;       /* 0: greedy (argmax after the penalties, lowest id on ties) */
    int top_k;               /* keep the k most likely; 0: off                          */
    float top_p;             /* keep the smallest set whose mass reaches p; 1 (or 0): off */
    float min_p;             /* keep tokens with p ≥ min_p · the largest p; 0: off       */
    float repeat_penalty;    /* a window token's logit divided by it if > 0, else
                                multiplied (CTRL's penalty); 1 (or 0): off               */
    int repeat_last_n;       /* tokens the penalties look back on; 0: none; -1: all     */
    float presence_penalty;  /* subtracted once from the logit of a token in the window  */
    float frequency_penalty; /* subtracted per occurrence in the window                 */
    uint64_t seed;           /* the same seed draws the same tokens                     */
} kvattn_sampler_params;

typedef struct {
    kvattn_sampler_params p;
    uint64_t state;
    void *scratch; /* owned */
    int scratch_n;
    int32_t *history; /* owned: the tokens accepted, for the penalties */
    int n_history, cap_history;
} kvattn_sampler;

void kvattn_sampler_init(kvattn_sampler *s, const kvattn_sampler_params *p);
void kvattn_sampler_free(kvattn_sampler *s);
/* Picks a token from logits [n] (modified in place). -1 on allocation failure. */
int kvattn_sample(kvattn_sampler *s, float *logits, int n);
/* A token now in the context (prompt or generated), for the penalties. */
void kvattn_sampler_accept(kvattn_sampler *s, int token);
/* Forgets the accepted tokens (a new conversation). */
void kvattn_sampler_reset(kvattn_sampler *s);

/* ------------------------------------------------------------------------- */
/* Serving many requests (continuous batching over a paged KV pool)           */
/* ------------------------------------------------------------------------- */

/* An engine runs many generation requests of one model over one KV pool.
 * kvattn_engine_step admits waiting requests in arrival order while the
 * batch has room — each takes the longest published prefix of its prompt
 * from the pool and runs the rest — then feeds every running request its
 * last token in one batched decode step and samples the next. When the pool
 * runs out of blocks the newest running request is preempted (its blocks
 * freed, recomputed when it is admitted again); a request that cannot fit
 * even alone fails. Requests join and leave between steps. Not thread-safe:
 * one thread drives an engine. */
typedef struct kvattn_engine kvattn_engine;

typedef struct {
    int n_ctx;           /* tokens per request, prompt and generated            */
    int max_batch;       /* requests running at once, ≤ KVATTN_DECODE_BATCH_MAX */
    uint64_t kv_mem;     /* bytes of the KV pool (whole blocks of it are used)  */
    int block_tokens;    /* tokens per block; 0: 64                              */
    kvattn_type kv_type; /* the cache's element type                            */
    kvattn_mla_mode mla_mode;
    int prefill_tokens; /* prompt tokens run a step, at most; 0: 256 */
} kvattn_engine_params;

typedef struct {
    int max_tokens; /* tokens to generate at most, ≥ 1                  */
    int end_token;  /* generation stops at this token (not kept); -1: none */
    kvattn_sampler_params sampler;
} kvattn_request_params;

typedef enum {
    KVATTN_REQUEST_WAITING = 0,
    KVATTN_REQUEST_PREFILLING,   /* admitted, its prompt running */
    KVATTN_REQUEST_RUNNING,      /* generating                   */
    KVATTN_REQUEST_DONE_LENGTH,  /* max_tokens generated              */
    KVATTN_REQUEST_DONE_STOP,    /* the end token came                */
    KVATTN_REQUEST_DONE_CONTEXT, /* n_ctx reached                     */
    KVATTN_REQUEST_CANCELLED,
    KVATTN_REQUEST_FAILED /* larger than the pool, or out of memory */
} kvattn_request_state;

typedef struct {
    int waiting, running; /* running: admitted (prefilling or generating) */
    uint64_t submitted, finished, steps, preemptions;
    uint64_t prompt_tokens; /* prompt tokens run (recomputation included) */
    uint64_t reused_tokens; /* prompt tokens taken from published blocks  */
    uint64_t generated;     /* tokens generated                           */
    kvattn_kv_pool_stats pool;
} kvattn_engine_stats;

kvattn_status kvattn_engine_create(const kvattn_model *m, const kvattn_engine_params *p, kvattn_engine **out);
void kvattn_engine_free(kvattn_engine *e);
/* Queues a request (the prompt is copied); *id receives its id. */
kvattn_status kvattn_engine_submit(kvattn_engine *e, const int32_t *prompt, int n_prompt,
                                   const kvattn_request_params *rp, int *id);
/* One step; *active receives the requests waiting or running after it. */
kvattn_status kvattn_engine_step(kvattn_engine *e, int *active);
/* Ends a request now; a running one's blocks go back to the pool at once. */
kvattn_status kvattn_engine_cancel(kvattn_engine *e, int id);
/* The tokens request id has generated so far (valid until the next call on
 * the engine) and its state. */
kvattn_status kvattn_engine_result(const kvattn_engine *e, int id, const int32_t **tokens, int *n,
                                   kvattn_request_state *state);
/* Forgets request id (cancelling it first if it has not ended): its memory
 * is freed and its id may be given to a later request. */
kvattn_status kvattn_engine_release(kvattn_engine *e, int id);
void kvattn_engine_get_stats(const kvattn_engine *e, kvattn_engine_stats *out);

/* ------------------------------------------------------------------------- */
/* Chat formats                                                               */
/* ------------------------------------------------------------------------- */

/* How a conversation becomes tokens. The format is recognised from the
 * markers a GGUF's tokenizer.chat_template writes (its Jinja is not run);
 * PLAIN, for a model without a template or with one kvattn does not know,
 * is the messages' contents one after another, a line each, after BOS. */
typedef enum {
    KVATTN_CHAT_PLAIN = 0,
    KVATTN_CHAT_LLAMA2,    /* <s>[INST] <<SYS>>..<</SYS>> user [/INST] answer</s>        */
    KVATTN_CHAT_LLAMA3,    /* <|start_header_id|>role<|end_header_id|>\n\n..<|eot_id|>   */
    KVATTN_CHAT_CHATML,    /* <|im_start|>role\n..<|im_end|>\n                           */
    KVATTN_CHAT_DEEPSEEK2, /* "deepseek": User: ..\n\nAssistant: ..<EOS> (DeepSeek-V2)     */
    KVATTN_CHAT_DEEPSEEK3, /* "deepseek-3": <｜User｜>..<｜Assistant｜>..<EOS> (DeepSeek-V3) */
    KVATTN_CHAT_COUNT
} kvattn_chat_format;

typedef struct {
    const char *role; /* "system", "user" or "assistant" */
    const char *content;
} kvattn_chat_message;

kvattn_chat_format kvattn_chat_format_detect(const char *chat_template); /* NULL: PLAIN */
const char *kvattn_chat_format_name(kvattn_chat_format f);               /* "llama-3", ... */
int kvattn_chat_format_from_name(const char *name);                      /* -1 if unknown */
/* The conversation's tokens, and with add_cue the assistant's cue after it.
 * Special tokens go in by id where the format puts them; the messages' text
 * is tokenized as text, whatever it contains. KVATTN_ERR_CACHE_FULL when
 * more than max ids are needed, KVATTN_ERR_FORMAT when the vocabulary lacks
 * a special token of the format. */
kvattn_status kvattn_chat_tokenize(const kvattn_tokenizer *tok, kvattn_chat_format f, const kvattn_chat_message *msgs,
                                   int n_msgs, int add_cue, int32_t *ids, int max, int *n_ids);
/* The token that ends an answer in format f besides EOS (<|eot_id|>,
 * <|im_end|>), or -1. */
int kvattn_chat_end_token(const kvattn_tokenizer *tok, kvattn_chat_format f);
/* KVATTN_OK when the vocabulary has every special token format f uses. */
kvattn_status kvattn_chat_format_check(const kvattn_tokenizer *tok, kvattn_chat_format f);

/* ------------------------------------------------------------------------- */
/* The HTTP server (OpenAI-compatible)                                        */
/* ------------------------------------------------------------------------- */

/* An HTTP server in front of one engine: POST /v1/completions and
 * /v1/chat/completions (streamed as server-sent events on request), GET
 * /v1/models, /health and /metrics (Prometheus text). Connections get a
 * thread each; one engine thread steps every request together. */
typedef struct kvattn_server kvattn_server;

typedef struct {
    const char *host;     /* address to bind; NULL: 127.0.0.1                   */
    int port;             /* 0: a free port (kvattn_server_port tells which)    */
    const char *api_key;  /* every request needs "Authorization: Bearer KEY"; NULL: none */
    const char *model_id; /* the model's name in /v1/models and requests; NULL: "kvattn" */
    kvattn_engine_params engine;
    int end_token;                 /* the model's end of text; -1: none                */
    int default_max_tokens;        /* when a request gives none; ≤ 0: to the context's end */
    kvattn_sampler_params sampler; /* a request's defaults, each field overridable    */
    int fixed_seed;                /* 1: a request without a seed uses sampler.seed;
                                    0: each draws its own                            */
    int chat_format;               /* a kvattn_chat_format, or -1: from the model's template */
    int max_waiting;               /* requests queued beyond which 429; 0: 256          */
    size_t max_body;               /* bytes of a request body beyond which 413; 0: 1 MiB */
    int timeout_s;                 /* an idle or slow connection is closed; 0: 60       */
    int max_connections;           /* 0: 256                                             */
    FILE *log;                     /* a line per request; NULL: none                    */
} kvattn_server_params;

/* Binds and starts serving; the model must outlive the server. */
kvattn_status kvattn_server_start(const kvattn_model *m, const kvattn_server_params *p, kvattn_server **out);
int kvattn_server_port(const kvattn_server *s);
/* The chat format the server uses. */
kvattn_chat_format kvattn_server_chat_format(const kvattn_server *s);
/* Ends every request (streams get an error event), closes every connection
 * and frees the server. */
void kvattn_server_stop(kvattn_server *s);

/* ------------------------------------------------------------------------- */
/* Benchmarks                                                                 */
/* ------------------------------------------------------------------------- */

/* This machine's limits, measured now with the current thread count:
 * streaming read bandwidth (a buffer much larger than the caches, summed,
 * each thread reading several far-apart streams at once) and f32 FMA
 * throughput (independent FMA chains in registers, at the widest vector
 * width the kernels were built for: simd_bits). */
typedef struct {
    double read_gbps;
    double fma_gflops;
    int threads;
    int simd_bits;
} kvattn_machine_limits;

kvattn_status kvattn_measure_machine(kvattn_machine_limits *out);

/* One decode step of attention only — from projected queries to per-head
 * outputs, the projections excluded (absorbed MLA includes W_UKᵀ q and W_UV
 * with bf16 weights, naive MLA the expansion of every cached token) — over a cache of ctx
 * random tokens of `kv_type`. The best and the median of `reps` steps, each
 * started with the cache cold (a 512 MiB buffer is read before it), as a
 * layer's cache is in a real decode step. */
typedef struct {
    double us_per_step; /* best of reps */
    double us_median;
    double kv_bytes; /* cache bytes read per step         */
    double flops;    /* floating-point operations per step */
} kvattn_attn_timing;

kvattn_status kvattn_bench_attention(const kvattn_layer_config *cfg, int ctx, kvattn_type kv_type,
                                     kvattn_mla_mode mla_mode, int reps, kvattn_attn_timing *out);
/* The same step on a contiguous cache and on a paged one (blocks of
 * block_tokens tokens, handed out in random order, as a pool serving many
 * sequences does), the two taking turns step by step. block_tokens = 0
 * times the contiguous cache alone (paged may then be NULL). */
kvattn_status kvattn_bench_attention_paged(const kvattn_layer_config *cfg, int ctx, kvattn_type kv_type,
                                           kvattn_mla_mode mla_mode, int reps, int block_tokens,
                                           kvattn_attn_timing *contiguous, kvattn_attn_timing *paged);

/* Fills the session's cache with n random tokens in every layer (as if a
 * prompt of n tokens had run) — for timing generation at depth. */
kvattn_status kvattn_session_fill_random(kvattn_session *s, int n, uint64_t seed);

/* ------------------------------------------------------------------------- */
/* Random data                                                                */
/* ------------------------------------------------------------------------- */

/* Fills x[n] with floats uniform in [-scale, scale) from the generator whose
 * state *state holds (advanced; 0 stands for a fixed seed): deterministic
 * synthetic weights and activations, the same stream as the cache's
 * kvattn_cache_fill_random. */
void kvattn_random_fill(uint64_t *state, float *x, size_t n, float scale);

/* ------------------------------------------------------------------------- */
/* Threads                                                                    */
/* ------------------------------------------------------------------------- */

/* Threads used by kernels (OpenMP); n ≤ 0 restores the default. Returns the
 * number in effect (1 in a build without OpenMP). */
int kvattn_set_threads(int n);

/* ------------------------------------------------------------------------- */
/* Instruction sets                                                           */
/* ------------------------------------------------------------------------- */

/* The kernels are built once per instruction-set level — "scalar", "avx2"
 * (AVX2 + FMA + F16C), "avx512" (AVX-512 F/BW/DQ/VL), "avx512vnni" (and
 * AVX512_VNNI's integer dot products) — and the best one this
 * CPU and OS support runs, unless the environment variable KVATTN_ISA names a
 * lower one. kvattn_isa() is the level running. */
const char *kvattn_isa(void);

/* The CPU's model name (cpuid's brand string), or "unknown". */
const char *kvattn_cpu_name(void);

/* Runs the kernels at level `name` from now on: KVATTN_ERR_INVALID_ARG for an
 * unknown name, KVATTN_ERR_UNSUPPORTED for a level this CPU or build lacks.
 * Not while another thread runs kernels. */
kvattn_status kvattn_set_isa(const char *name);

/* Decode products with quantized weights (q8_0 and GGUF's block types) round
 * the activations once per projection and multiply in integers: q8_0 rows
 * meet them rounded to 16 bits per 32; GGUF's block types meet them
 * rounded to 8 bits per 256 (llama.cpp's Q8_K) plus that rounding's residual
 * rounded the same way, which together cost no measurable accuracy.
 * kvattn_set_fast_products(1) (KVATTN_FAST=1) drops the residual: llama.cpp's
 * numerics, faster, at a cost the README measures. kvattn_set_exact(1)
 * (KVATTN_EXACT=1) makes every product an f32 one instead (it wins over
 * fast). Not while another thread runs kernels. */
void kvattn_set_exact(int exact);
int kvattn_exact(void);
void kvattn_set_fast_products(int fast);
int kvattn_fast_products(void);

#ifdef __cplusplus
}
#endif

#endif /* KVATTN_H */
