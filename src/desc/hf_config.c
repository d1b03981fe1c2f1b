/* Hugging Face config.json → kvattn_model_desc, for the architectures whose
 * attention kvattn implements. Parsed with cJSON; every missing or malformed
 * key is reported with the file and the key. */
#include "internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CONFIG_BYTES (16u << 20)

typedef struct {
    const char *path;
    const cJSON *root;
    kvattn_status st; /* first error */
} cfg_reader;

static int failed(cfg_reader *r) { return r->st != KVATTN_OK; }

/* The first of the given keys (aliases) present, or NULL. */
static const cJSON *find_key(const cJSON *obj, const char *const *keys, const char **found) {
    for (; *keys; keys++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, *keys);
        if (it && !cJSON_IsNull(it)) {
            *found = *keys;
            return it;
        }
    }
    return NULL;
}

/* An integer in [lo, hi]; `def` when absent and not required. */
static int64_t get_int_in(cfg_reader *r, const cJSON *obj, const char *const *keys, int required, int64_t def,
                          int64_t lo, int64_t hi) {
    if (failed(r)) return def;
    const char *key = keys[0];
    const cJSON *it = find_key(obj, keys, &key);
    if (!it) {
        if (required) r->st = kv_fail(KVATTN_ERR_FORMAT, "%s: missing key '%s'", r->path, keys[0]);
        return def;
    }
    double v = cJSON_IsNumber(it) ? it->valuedouble : NAN;
    if (!cJSON_IsNumber(it) || v != floor(v) || v < (double)lo || v > (double)hi) {
        char *txt = cJSON_PrintUnformatted(it);
        r->st = kv_fail(KVATTN_ERR_FORMAT, "%s: key '%s' = %s must be an integer in [%lld, %lld]", r->path, key,
                        txt ? txt : "?", (long long)lo, (long long)hi);
        free(txt);
        return def;
    }
    return (int64_t)v;
}

static int64_t get_int(cfg_reader *r, const cJSON *obj, const char *key, int required, int64_t def, int64_t lo) {
    const char *keys[] = {key, NULL};
    return get_int_in(r, obj, keys, required, def, lo, KV_MAX_DIM * (int64_t)64);
}

static double get_num(cfg_reader *r, const cJSON *obj, const char *key, double def) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (failed(r) || !it || cJSON_IsNull(it)) return def;
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || it->valuedouble < 0) {
        r->st = kv_fail(KVATTN_ERR_FORMAT, "%s: key '%s' must be a non-negative number", r->path, key);
        return def;
    }
    return it->valuedouble;
}

static int get_bool(cfg_reader *r, const cJSON *obj, const char *key, int def) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (failed(r) || !it || cJSON_IsNull(it)) return def;
    if (!cJSON_IsBool(it)) {
        r->st = kv_fail(KVATTN_ERR_FORMAT, "%s: key '%s' must be true or false", r->path, key);
        return def;
    }
    return cJSON_IsTrue(it);
}

/* Llama, Mistral, Mixtral, Qwen2, Qwen3: one family of keys. */
static void read_llama_like(cfg_reader *r, const cJSON *o, kvattn_model_desc *m, const char *type) {
    kvattn_layer_config *a = &m->attn;
    a->kind = KVATTN_ATTN_GQA;
    a->d_model = (int)get_int(r, o, "hidden_size", 1, 0, 1);
    m->n_layers = (int)get_int_in(r, o, (const char *const[]){"num_hidden_layers", NULL}, 1, 0, 1, KV_MAX_LAYERS);
    a->n_heads = (int)get_int(r, o, "num_attention_heads", 1, 0, 1);
    a->n_kv_heads = (int)get_int(r, o, "num_key_value_heads", 0, a->n_heads, 1);
    if (!failed(r) && !cJSON_GetObjectItemCaseSensitive(o, "head_dim") && a->d_model % a->n_heads != 0)
        r->st = kv_fail(KVATTN_ERR_FORMAT,
                        "%s: hidden_size = %d is not a multiple of num_attention_heads = %d "
                        "and there is no head_dim",
                        r->path, a->d_model, a->n_heads);
    a->head_dim = (int)get_int(r, o, "head_dim", 0, a->n_heads ? a->d_model / a->n_heads : 0, 1);
    a->rope.theta = (float)get_num(r, o, "rope_theta", 10000.0);
    a->rope.pairing = KVATTN_ROPE_HALF;
    m->vocab_size = get_int(r, o, "vocab_size", 1, 0, 1);
    m->ffn_gated = 1;
    m->tied_embeddings = get_bool(r, o, "tie_word_embeddings", 0);
    m->context_length = get_int(r, o, "max_position_embeddings", 0, 0, 1);
    m->qkv_bias = !strcmp(type, "qwen2") || get_bool(r, o, "attention_bias", 0);
    m->qk_norm = !strcmp(type, "qwen3");
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(o, "rms_norm_eps");
    if (!failed(r) && eps && !cJSON_IsNull(eps) && !(cJSON_IsNumber(eps) && eps->valuedouble > 0))
        r->st = kv_fail(KVATTN_ERR_FORMAT, "%s: rms_norm_eps must be a positive number", r->path);
    a->rms_eps = (float)get_num(r, o, "rms_norm_eps", 1e-6); /* Qwen3's head norms use the model's epsilon */
    if (!strcmp(type, "mixtral")) {
        m->expert_weights_norm = 1; /* softmax over all, top-k renormalised */
        m->n_routed_experts = (int)get_int(r, o, "num_local_experts", 1, 0, 1);
        m->n_active_experts = (int)get_int(r, o, "num_experts_per_tok", 1, 0, 1);
        m->moe_ffn_dim = get_int(r, o, "intermediate_size", 1, 0, 1);
    } else {
        m->ffn_dim = get_int(r, o, "intermediate_size", 1, 0, 1);
    }
}

static void read_falcon(cfg_reader *r, const cJSON *o, kvattn_model_desc *m) {
    static const char *const hidden[] = {"hidden_size", "n_embd", NULL},
                             *const layers[] = {"num_hidden_layers", "n_layer", NULL},
                             *const heads[] = {"num_attention_heads", "n_head", NULL},
                             *const kv[] = {"num_kv_heads", "n_head_kv", NULL};
    kvattn_layer_config *a = &m->attn;
    a->kind = KVATTN_ATTN_GQA;
    a->d_model = (int)get_int_in(r, o, hidden, 1, 0, 1, KV_MAX_DIM);
    m->n_layers = (int)get_int_in(r, o, layers, 1, 0, 1, KV_MAX_LAYERS);
    a->n_heads = (int)get_int_in(r, o, heads, 1, 0, 1, KV_MAX_DIM);
    if (!failed(r) && a->d_model % a->n_heads != 0)
        r->st = kv_fail(KVATTN_ERR_FORMAT, "%s: hidden_size = %d is not a multiple of num_attention_heads = %d",
                        r->path, a->d_model, a->n_heads);
    a->head_dim = a->n_heads ? a->d_model / a->n_heads : 0;
    if (get_bool(r, o, "new_decoder_architecture", 0)) a->n_kv_heads = (int)get_int_in(r, o, kv, 1, 0, 1, KV_MAX_DIM);
    else a->n_kv_heads = get_bool(r, o, "multi_query", 1) ? 1 : a->n_heads;
    a->rope.theta = (float)get_num(r, o, "rope_theta", 10000.0);
    a->rope.pairing = KVATTN_ROPE_HALF;
    m->vocab_size = get_int(r, o, "vocab_size", 1, 0, 1);
    m->ffn_dim = get_int(r, o, "ffn_hidden_size", 0, 4 * (int64_t)a->d_model, 1);
    m->ffn_gated = 0;
    m->parallel_attn = get_bool(r, o, "parallel_attn", 1);
    m->tied_embeddings = get_bool(r, o, "tie_word_embeddings", 1);
    m->context_length = get_int(r, o, "max_position_embeddings", 0, 2048, 1);
}

static void read_gpt2(cfg_reader *r, const cJSON *o, kvattn_model_desc *m) {
    static const char *const pos[] = {"n_positions", "n_ctx", NULL};
    kvattn_layer_config *a = &m->attn;
    a->kind = KVATTN_ATTN_GQA;
    a->d_model = (int)get_int(r, o, "n_embd", 1, 0, 1);
    m->n_layers = (int)get_int_in(r, o, (const char *const[]){"n_layer", NULL}, 1, 0, 1, KV_MAX_LAYERS);
    a->n_heads = a->n_kv_heads = (int)get_int(r, o, "n_head", 1, 0, 1);
    if (!failed(r) && a->d_model % a->n_heads != 0)
        r->st = kv_fail(KVATTN_ERR_FORMAT, "%s: n_embd = %d is not a multiple of n_head = %d", r->path, a->d_model,
                        a->n_heads);
    a->head_dim = a->n_heads ? a->d_model / a->n_heads : 0;
    a->rope.theta = 10000.0f; /* GPT-2 has learned positions; RoPE settings are unused for sizing */
    m->vocab_size = get_int(r, o, "vocab_size", 1, 0, 1);
    m->ffn_dim = get_int(r, o, "n_inner", 0, 4 * (int64_t)a->d_model, 1);
    m->ffn_gated = 0;
    m->gpt2_style = 1;
    m->tied_embeddings = 1;
    m->context_length = get_int_in(r, o, pos, 0, 1024, 1, KV_MAX_DIM);
}

static void read_deepseek(cfg_reader *r, const cJSON *o, kvattn_model_desc *m) {
    kvattn_layer_config *a = &m->attn;
    a->kind = KVATTN_ATTN_MLA;
    a->d_model = (int)get_int(r, o, "hidden_size", 1, 0, 1);
    m->n_layers = (int)get_int_in(r, o, (const char *const[]){"num_hidden_layers", NULL}, 1, 0, 1, KV_MAX_LAYERS);
    a->n_heads = (int)get_int(r, o, "num_attention_heads", 1, 0, 1);
    a->q_lora_rank = (int)get_int(r, o, "q_lora_rank", 0, 0, 0);
    a->kv_lora_rank = (int)get_int(r, o, "kv_lora_rank", 1, 0, 1);
    a->qk_nope_head_dim = (int)get_int(r, o, "qk_nope_head_dim", 1, 0, 1);
    a->qk_rope_head_dim = (int)get_int(r, o, "qk_rope_head_dim", 1, 0, 1);
    a->v_head_dim = (int)get_int(r, o, "v_head_dim", 1, 0, 1);
    a->rms_eps = (float)get_num(r, o, "rms_norm_eps", 1e-6);
    a->rope.theta = (float)get_num(r, o, "rope_theta", 10000.0);
    a->rope.pairing = KVATTN_ROPE_ADJACENT;
    const cJSON *ys = cJSON_GetObjectItemCaseSensitive(o, "rope_scaling");
    if (ys && cJSON_IsObject(ys)) {
        a->rope.yarn_factor = (float)get_num(r, ys, "factor", 1.0);
        a->rope.yarn_orig_ctx = (int)get_int(r, ys, "original_max_position_embeddings", a->rope.yarn_factor > 1, 0, 1);
        a->rope.yarn_beta_fast = (float)get_num(r, ys, "beta_fast", 32.0);
        a->rope.yarn_beta_slow = (float)get_num(r, ys, "beta_slow", 1.0);
        a->rope.yarn_mscale = (float)get_num(r, ys, "mscale_all_dim", 0.0);
    }
    m->vocab_size = get_int(r, o, "vocab_size", 1, 0, 1);
    m->ffn_dim = get_int(r, o, "intermediate_size", 1, 0, 1);
    m->ffn_gated = 1;
    m->n_routed_experts = (int)get_int(r, o, "n_routed_experts", 0, 0, 0);
    if (m->n_routed_experts > 0) {
        m->n_shared_experts = (int)get_int(r, o, "n_shared_experts", 0, 0, 0);
        m->n_active_experts = (int)get_int(r, o, "num_experts_per_tok", 1, 0, 1);
        m->moe_ffn_dim = get_int(r, o, "moe_intermediate_size", 1, 0, 1);
        m->n_dense_layers = (int)get_int(r, o, "first_k_dense_replace", 0, 0, 0);
        m->moe_layer_freq = (int)get_int(r, o, "moe_layer_freq", 0, 1, 1);
        m->n_expert_groups = (int)get_int(r, o, "n_group", 0, 1, 1);
        m->n_expert_groups_used = (int)get_int(r, o, "topk_group", 0, 1, 1);
        m->expert_weights_norm = get_bool(r, o, "norm_topk_prob", 0);
        m->expert_weights_scale = (float)get_num(r, o, "routed_scaling_factor", 1.0);
        const cJSON *sf = cJSON_GetObjectItemCaseSensitive(o, "scoring_func");
        if (cJSON_IsString(sf) && !strcmp(sf->valuestring, "sigmoid")) m->expert_gating = 1;
        else if (cJSON_IsString(sf) && strcmp(sf->valuestring, "softmax") && !failed(r))
            r->st = kv_fail(KVATTN_ERR_FORMAT, "%s: scoring_func '%s' is neither softmax nor sigmoid", r->path,
                            sf->valuestring);
        if (!failed(r) && (m->n_routed_experts % m->n_expert_groups || m->n_expert_groups_used > m->n_expert_groups))
            r->st = kv_fail(KVATTN_ERR_FORMAT, "%s: n_group = %d, topk_group = %d do not divide %d experts", r->path,
                            m->n_expert_groups, m->n_expert_groups_used, m->n_routed_experts);
    }
    m->tied_embeddings = get_bool(r, o, "tie_word_embeddings", 0);
    m->context_length = get_int(r, o, "max_position_embeddings", 0, 0, 1);
}

kvattn_status kvattn_model_from_hf_config(const char *path, kvattn_model_desc *out) {
    if (!path || !out) return kv_fail(KVATTN_ERR_INVALID_ARG, "config: NULL argument");
    kvattn_status st = KVATTN_OK;
    char *text = kv_read_file(path, MAX_CONFIG_BYTES, &st);
    if (!text) return st;
    cJSON *root = cJSON_Parse(text);
    if (!root || !cJSON_IsObject(root)) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= text && at <= text + strlen(text) ? (size_t)(at - text) : 0;
        cJSON_Delete(root);
        free(text);
        return kv_fail(KVATTN_ERR_FORMAT, "%s: not a JSON object (parse error near byte %zu)", path, off);
    }
    cfg_reader r = {path, root, KVATTN_OK};
    kvattn_model_desc m;
    memset(&m, 0, sizeof m);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const char *type = cJSON_IsString(mt) ? mt->valuestring : NULL;
    if (!type) { /* older files: the architecture's class name */
        const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
        const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
        const char *cls = cJSON_IsString(a0) ? a0->valuestring : "";
        type = strstr(cls, "DeepseekV3")                    ? "deepseek_v3"
               : strstr(cls, "DeepseekV2")                  ? "deepseek_v2"
               : strstr(cls, "Falcon") || strstr(cls, "RW") ? "falcon"
               : strstr(cls, "GPT2")                        ? "gpt2"
               : strstr(cls, "Mixtral")                     ? "mixtral"
               : strstr(cls, "Mistral")                     ? "mistral"
               : strstr(cls, "Qwen2")                       ? "qwen2"
               : strstr(cls, "Qwen3")                       ? "qwen3"
               : strstr(cls, "Llama")                       ? "llama"
                                                            : NULL;
    }
    if (!type) {
        st = kv_fail(KVATTN_ERR_FORMAT, "%s: missing key 'model_type' (and no known 'architectures' entry)", path);
    } else if (!strcmp(type, "llama") || !strcmp(type, "mistral") || !strcmp(type, "mixtral") ||
               !strcmp(type, "qwen2") || !strcmp(type, "qwen3")) {
        read_llama_like(&r, root, &m, type);
    } else if (!strcmp(type, "falcon") || !strcmp(type, "RefinedWeb") || !strcmp(type, "RefinedWebModel")) {
        read_falcon(&r, root, &m);
        type = "falcon";
    } else if (!strcmp(type, "gpt2")) {
        read_gpt2(&r, root, &m);
    } else if (!strcmp(type, "deepseek_v2") || !strcmp(type, "deepseek_v3")) {
        read_deepseek(&r, root, &m);
        type = "deepseek2";
    } else {
        st = kv_fail(KVATTN_ERR_UNSUPPORTED,
                     "%s: model_type '%s' is not supported (llama, mistral, mixtral, qwen2, qwen3, falcon, gpt2, "
                     "deepseek_v2, deepseek_v3)",
                     path, type);
    }
    if (st == KVATTN_OK) st = r.st;
    if (st == KVATTN_OK) {
        snprintf(m.arch, sizeof m.arch, "%s", type);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "_name_or_path");
        const char *base = strrchr(path, '/');
        snprintf(m.name, sizeof m.name, "%s",
                 cJSON_IsString(name) && *name->valuestring ? name->valuestring
                 : base                                     ? base + 1
                                                            : path);
        if (kvattn_config_validate(&m.attn) != KVATTN_OK) {
            char why[512]; /* copied: kv_fail rewrites the buffer it would read */
            snprintf(why, sizeof why, "%s", kvattn_last_error());
            st = kv_fail(KVATTN_ERR_FORMAT, "%s: inconsistent attention shape: %s", path, why);
        } else if (kvattn_model_params(&m) < 0) {
            st = kv_fail(KVATTN_ERR_FORMAT, "%s: the model's sizes overflow 64-bit parameter counts", path);
        }
    }
    cJSON_Delete(root);
    free(text);
    if (st == KVATTN_OK) *out = m;
    return st;
}
