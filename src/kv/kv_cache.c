/* The KV cache: fixed capacity, one contiguous allocation, rows converted to
 * the cache element type on write.
 *
 * Layout of one layer (capacity C tokens, row bytes R):
 *   GQA family: K[n_kv_heads][C][R(head_dim)] then V[n_kv_heads][C][R(head_dim)]
 *               — a KV head's rows are contiguous, so decode streams them.
 *   MLA:        L[C][R(d_c + d_R)] — c_KV ‖ k_R, one row per token. */
#include "kv_cache.h"

#include "kernels/kernels.h"
#include "kernels/vec.h"
#include "rng.h"

#include <stdlib.h>
#include <string.h>

struct kvattn_cache {
    kvattn_layer_config cfg;
    int n_layers;
    int capacity;
    kvattn_type k_type, v_type;      /* equal for MLA: V is inside the latent row */
    size_t k_row_bytes, v_row_bytes; /* one stored row (MLA: v_row_bytes unused) */
    size_t bytes_per_token;          /* over all layers                          */
    size_t layer_bytes;              /* capacity · per-layer bytes per token     */
    int *length;                     /* [n_layers] tokens held                   */
    uint8_t *data;                   /* [n_layers][layer_bytes]                  */
};

static int is_mla(const kvattn_cache *c) { return c->cfg.kind == KVATTN_ATTN_MLA; }

kvattn_status kvattn_cache_create_kv(const kvattn_layer_config *cfg, int n_layers, int capacity, kvattn_type k_type,
                                     kvattn_type v_type, kvattn_cache **out) {
    if (!out) return kv_fail(KVATTN_ERR_INVALID_ARG, "cache: output pointer is NULL");
    *out = NULL;
    kvattn_status st = kvattn_config_validate(cfg);
    if (st != KVATTN_OK) return st;
    if (n_layers < 1 || n_layers > KV_MAX_DIM)
        return kv_fail(KVATTN_ERR_INVALID_ARG, "cache: n_layers = %d must be in [1, %d]", n_layers, KV_MAX_DIM);
    if (capacity < 1)
        return kv_fail(KVATTN_ERR_INVALID_ARG, "cache: capacity = %d tokens must be at least 1", capacity);
    const kvattn_type types[2] = {k_type, v_type};
    for (int i = 0; i < 2; i++)
        if (!kvattn_type_is_cache_type(types[i]))
            return kv_fail(KVATTN_ERR_UNSUPPORTED,
                           "cache: %s element type '%s' is not a cache type (f32, f16, bf16, q8_0)", i ? "V" : "K",
                           kvattn_type_name(types[i]));
    if (cfg->kind == KVATTN_ATTN_MLA && k_type != v_type)
        return kv_fail(KVATTN_ERR_UNSUPPORTED,
                       "cache: MLA caches one latent row that is both K and V, so the K type (%s) and the V type "
                       "(%s) must be the same",
                       kvattn_type_name(k_type), kvattn_type_name(v_type));

    size_t bpt = kvattn_kv_bytes_per_token_kv(cfg, n_layers, k_type, v_type), layer_bpt = bpt / (size_t)n_layers;
    size_t layer_bytes, total;
    if (bpt == 0 || !kv_mul_size(layer_bpt, (size_t)capacity, &layer_bytes) ||
        !kv_mul_size(layer_bytes, (size_t)n_layers, &total))
        return kv_fail(KVATTN_ERR_NOMEM, "cache: %d layers × %d tokens overflows the address space", n_layers,
                       capacity);

    kvattn_cache *c = calloc(1, sizeof *c);
    if (!c) return kv_fail(KVATTN_ERR_NOMEM, "cache: out of memory");
    c->cfg = *cfg;
    c->n_layers = n_layers;
    c->capacity = capacity;
    c->k_type = k_type, c->v_type = v_type;
    const int k_dim = cfg->kind == KVATTN_ATTN_MLA ? cfg->kv_lora_rank + cfg->qk_rope_head_dim : cfg->head_dim;
    c->k_row_bytes = kvattn_row_bytes(k_type, k_dim);
    c->v_row_bytes = kvattn_row_bytes(v_type, cfg->kind == KVATTN_ATTN_MLA ? 0 : cfg->head_dim);
    c->bytes_per_token = bpt;
    c->layer_bytes = layer_bytes;
    c->length = calloc((size_t)n_layers, sizeof *c->length);
    c->data = kv_alloc_aligned(total);
    if (!c->length || !c->data) {
        kvattn_cache_free(c);
        return kv_fail(KVATTN_ERR_NOMEM,
                       "cache: cannot allocate %zu bytes (%d layers × %d tokens × %zu bytes/token/layer)", total,
                       n_layers, capacity, layer_bpt);
    }
    *out = c;
    return KVATTN_OK;
}

kvattn_status kvattn_cache_create(const kvattn_layer_config *cfg, int n_layers, int capacity, kvattn_type type,
                                  kvattn_cache **out) {
    return kvattn_cache_create_kv(cfg, n_layers, capacity, type, type, out);
}

void kvattn_cache_free(kvattn_cache *c) {
    if (!c) return;
    kv_free_aligned(c->data);
    free(c->length);
    free(c);
}

int kvattn_cache_length(const kvattn_cache *c, int layer) {
    if (!c) return 0;
    if (layer >= 0) return layer < c->n_layers ? c->length[layer] : 0;
    int m = c->length[0];
    for (int l = 1; l < c->n_layers; l++)
        if (c->length[l] < m) m = c->length[l];
    return m;
}

int kvattn_cache_capacity(const kvattn_cache *c) { return c ? c->capacity : 0; }
int kvattn_cache_n_layers(const kvattn_cache *c) { return c ? c->n_layers : 0; }
kvattn_type kvattn_cache_type(const kvattn_cache *c) { return c ? c->k_type : KVATTN_TYPE_F32; }
kvattn_type kvattn_cache_type_v(const kvattn_cache *c) { return c ? c->v_type : KVATTN_TYPE_F32; }
size_t kvattn_cache_bytes_per_token(const kvattn_cache *c) { return c ? c->bytes_per_token : 0; }
size_t kvattn_cache_bytes_allocated(const kvattn_cache *c) { return c ? c->layer_bytes * (size_t)c->n_layers : 0; }

void kvattn_cache_clear(kvattn_cache *c) {
    if (c) memset(c->length, 0, (size_t)c->n_layers * sizeof *c->length);
}

kvattn_status kvattn_cache_truncate(kvattn_cache *c, int n_tokens) {
    if (!c) return kv_fail(KVATTN_ERR_INVALID_ARG, "cache truncate: cache is NULL");
    for (int l = 0; l < c->n_layers; l++)
        if (n_tokens < 0 || n_tokens > c->length[l])
            return kv_fail(KVATTN_ERR_INVALID_ARG, "cache truncate: n_tokens = %d but layer %d holds %d tokens",
                           n_tokens, l, c->length[l]);
    for (int l = 0; l < c->n_layers; l++) c->length[l] = n_tokens;
    return KVATTN_OK;
}

static uint8_t *layer_base(const kvattn_cache *c, int layer) { return c->data + (size_t)layer * c->layer_bytes; }

void kv_cache_rows(const kvattn_cache *c, int layer, kv_rows *k, kv_rows *v) {
    uint8_t *base = layer_base(c, layer);
    if (is_mla(c)) {
        *k = (kv_rows){c->k_type, base, 0, c->k_row_bytes, c->cfg.kv_lora_rank + c->cfg.qk_rope_head_dim};
        *v = (kv_rows){c->k_type, base, 0, c->k_row_bytes, c->cfg.kv_lora_rank};
        return;
    }
    const size_t k_stride = c->k_row_bytes * (size_t)c->capacity, v_stride = c->v_row_bytes * (size_t)c->capacity;
    *k = (kv_rows){c->k_type, base, k_stride, c->k_row_bytes, c->cfg.head_dim};
    *v = (kv_rows){c->v_type, base + k_stride * (size_t)c->cfg.n_kv_heads, v_stride, c->v_row_bytes, c->cfg.head_dim};
}

kvattn_status kv_cache_check_config(const kvattn_cache *c, const kvattn_layer_config *cfg) {
    const kvattn_layer_config *a = &c->cfg;
    int same = a->kind == cfg->kind;
    if (same && cfg->kind == KVATTN_ATTN_MLA)
        same = a->kv_lora_rank == cfg->kv_lora_rank && a->qk_rope_head_dim == cfg->qk_rope_head_dim;
    else if (same) same = a->n_kv_heads == cfg->n_kv_heads && a->head_dim == cfg->head_dim;
    if (!same) {
        char want[32], have[32];
        return kv_fail(KVATTN_ERR_CONFIG, "cache was created for %s (%s), the layer is %s (%s)",
                       kvattn_config_design_name(a, have, sizeof have),
                       a->kind == KVATTN_ATTN_MLA ? "latent" : "per-head K/V",
                       kvattn_config_design_name(cfg, want, sizeof want),
                       cfg->kind == KVATTN_ATTN_MLA ? "latent" : "per-head K/V");
    }
    return KVATTN_OK;
}

static kvattn_status check_layer(const kvattn_cache *c, int layer, const char *what) {
    if (!c) return kv_fail(KVATTN_ERR_INVALID_ARG, "%s: cache is NULL", what);
    if (layer < 0 || layer >= c->n_layers)
        return kv_fail(KVATTN_ERR_INVALID_ARG, "%s: layer = %d is outside [0, %d)", what, layer, c->n_layers);
    return KVATTN_OK;
}

kvattn_status kvattn_cache_write(kvattn_cache *c, int layer, int pos, int T, const float *k, const float *v) {
    kvattn_status st = check_layer(c, layer, "cache write");
    if (st != KVATTN_OK) return st;
    if (!k || (is_mla(c) ? v != NULL : v == NULL))
        return kv_fail(KVATTN_ERR_INVALID_ARG, "cache write: %s",
                       is_mla(c) ? "MLA needs k = c_KV ‖ k_R and v = NULL" : "k and v must both be given");
    if (T < 0 || pos < 0 || pos > c->length[layer])
        return kv_fail(KVATTN_ERR_INVALID_ARG, "cache write: pos = %d, T = %d, but layer %d holds %d tokens", pos, T,
                       layer, c->length[layer]);
    if (T > c->capacity - pos)
        return kv_fail(KVATTN_ERR_CACHE_FULL,
                       "cache full: writing %d tokens at position %d exceeds the capacity of %d tokens", T, pos,
                       c->capacity);
    kv_rows kr, vr;
    kv_cache_rows(c, layer, &kr, &vr);
    if (is_mla(c)) {
        for (int t = 0; t < T; t++)
            kv_row_store(c->k_type, k + (size_t)t * kr.dim, (void *)kv_rows_at(&kr, 0, pos + t), kr.dim);
    } else {
        int hd = c->cfg.head_dim, nkv = c->cfg.n_kv_heads;
        for (int t = 0; t < T; t++)
            for (int h = 0; h < nkv; h++) {
                size_t off = ((size_t)t * nkv + h) * hd;
                kv_row_store(c->k_type, k + off, (void *)kv_rows_at(&kr, h, pos + t), hd);
                kv_row_store(c->v_type, v + off, (void *)kv_rows_at(&vr, h, pos + t), hd);
            }
    }
    c->length[layer] = pos + T;
    return KVATTN_OK;
}

kvattn_status kvattn_cache_fill_random(kvattn_cache *c, int layer, int n, uint64_t seed) {
    if (layer != -1) {
        kvattn_status st = check_layer(c, layer, "cache fill");
        if (st != KVATTN_OK) return st;
    } else if (!c) {
        return kv_fail(KVATTN_ERR_INVALID_ARG, "cache fill: cache is NULL");
    }
    if (n < 0) return kv_fail(KVATTN_ERR_INVALID_ARG, "cache fill: n = %d", n);
    const int mla = is_mla(c), chunk = 256;
    const size_t width =
        mla ? (size_t)c->cfg.kv_lora_rank + c->cfg.qk_rope_head_dim : (size_t)c->cfg.n_kv_heads * c->cfg.head_dim;
    float *k = malloc(sizeof(float) * width * chunk), *v = malloc(sizeof(float) * width * chunk);
    kvattn_status st = k && v ? KVATTN_OK : kv_fail(KVATTN_ERR_NOMEM, "cache fill: out of memory");
    kv_rng rng = {seed};
    for (int p = 0; st == KVATTN_OK && p < n; p += chunk) {
        int m = n - p < chunk ? n - p : chunk;
        for (size_t i = 0; i < width * (size_t)m; i++) {
            k[i] = kv_rng_uniform(&rng);
            v[i] = kv_rng_uniform(&rng);
        }
        for (int l = layer < 0 ? 0 : layer; st == KVATTN_OK && l <= (layer < 0 ? c->n_layers - 1 : layer); l++)
            st = kvattn_cache_write(c, l, c->length[l], m, k, mla ? NULL : v);
    }
    free(k), free(v);
    return st;
}

kvattn_status kvattn_cache_read(const kvattn_cache *c, int layer, int t, float *k, float *v) {
    kvattn_status st = check_layer(c, layer, "cache read");
    if (st != KVATTN_OK) return st;
    if (t < 0 || t >= c->length[layer])
        return kv_fail(KVATTN_ERR_INVALID_ARG, "cache read: token %d is outside [0, %d) of layer %d", t,
                       c->length[layer], layer);
    if (!k || (is_mla(c) ? v != NULL : v == NULL))
        return kv_fail(KVATTN_ERR_INVALID_ARG, "cache read: %s",
                       is_mla(c) ? "MLA reads k only (v = NULL)" : "k and v must both be given");
    kv_rows kr, vr;
    kv_cache_rows(c, layer, &kr, &vr);
    if (is_mla(c)) {
        kv_row_load(c->k_type, kv_rows_at(&kr, 0, t), k, kr.dim);
        return KVATTN_OK;
    }
    int hd = c->cfg.head_dim;
    for (int h = 0; h < c->cfg.n_kv_heads; h++) {
        kv_row_load(c->k_type, kv_rows_at(&kr, h, t), k + (size_t)h * hd, hd);
        kv_row_load(c->v_type, kv_rows_at(&vr, h, t), v + (size_t)h * hd, hd);
    }
    return KVATTN_OK;
}
