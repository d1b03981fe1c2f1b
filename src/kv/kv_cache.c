/* The KV cache: fixed capacity, rows converted to the cache element type on
 * write. Either one contiguous allocation or, paged, a table of blocks of a
 * pool (kv_pool.c) taken as tokens arrive.
 *
 * Layout of one layer (capacity C tokens, row bytes R):
 *   GQA family: K[n_kv_heads][C][R(head_dim)] then V[n_kv_heads][C][R(head_dim)]
 *               — a KV head's rows are contiguous, so decode streams them.
 *   MLA:        L[C][R(d_c + d_R)] — c_KV ‖ k_R, one row per token.
 * Paged, each block is that layout with C = the block's tokens. */
#include "kv_cache.h"
#include "kv_pool.h"

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
    uint8_t *data;                   /* [n_layers][layer_bytes]; NULL when paged */
    /* paged */
    kvattn_kv_pool *pool;
    int max_blocks;
    int32_t *table;        /* [max_blocks] the pool block of each block of tokens, -1: none */
    uint64_t *prefix_hash; /* [max_blocks] hash of the tokens up to the block's end...      */
    int n_hashed;          /* ...known for the first n_hashed blocks                       */
};

static int is_mla(const kvattn_cache *c) { return c->cfg.kind == KVATTN_ATTN_MLA; }

kvattn_status kv_cache_check_layout(const char *what, int n_layers, kvattn_type k_type, kvattn_type v_type,
                                    const kvattn_layer_config *cfg) {
    if (n_layers < 1 || n_layers > KV_MAX_DIM)
        return kv_fail(KVATTN_ERR_INVALID_ARG, "%s: n_layers = %d must be in [1, %d]", what, n_layers, KV_MAX_DIM);
    const kvattn_type types[2] = {k_type, v_type};
    for (int i = 0; i < 2; i++)
        if (!kvattn_type_is_cache_type(types[i]))
            return kv_fail(KVATTN_ERR_UNSUPPORTED,
                           "%s: %s element type '%s' is not a cache type (f32, f16, bf16, q8_0)", what, i ? "V" : "K",
                           kvattn_type_name(types[i]));
    if (cfg->kind == KVATTN_ATTN_MLA && k_type != v_type)
        return kv_fail(KVATTN_ERR_UNSUPPORTED,
                       "%s: MLA caches one latent row that is both K and V, so the K type (%s) and the V type "
                       "(%s) must be the same",
                       what, kvattn_type_name(k_type), kvattn_type_name(v_type));
    return KVATTN_OK;
}

kvattn_status kvattn_cache_create_kv(const kvattn_layer_config *cfg, int n_layers, int capacity, kvattn_type k_type,
                                     kvattn_type v_type, kvattn_cache **out) {
    if (!out) return kv_fail(KVATTN_ERR_INVALID_ARG, "cache: output pointer is NULL");
    *out = NULL;
    kvattn_status st = kvattn_config_validate(cfg);
    if (st != KVATTN_OK) return st;
    if ((st = kv_cache_check_layout("cache", n_layers, k_type, v_type, cfg)) != KVATTN_OK) return st;
    if (capacity < 1)
        return kv_fail(KVATTN_ERR_INVALID_ARG, "cache: capacity = %d tokens must be at least 1", capacity);

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

kvattn_status kvattn_cache_create_paged(kvattn_kv_pool *pool, int capacity, kvattn_cache **out) {
    if (!out) return kv_fail(KVATTN_ERR_INVALID_ARG, "paged cache: output pointer is NULL");
    *out = NULL;
    if (!pool) return kv_fail(KVATTN_ERR_INVALID_ARG, "paged cache: pool is NULL");
    if (capacity < 1)
        return kv_fail(KVATTN_ERR_INVALID_ARG, "paged cache: capacity = %d tokens must be at least 1", capacity);
    kvattn_cache *c = calloc(1, sizeof *c);
    if (!c) return kv_fail(KVATTN_ERR_NOMEM, "paged cache: out of memory");
    c->cfg = pool->cfg;
    c->n_layers = pool->n_layers;
    c->capacity = capacity;
    c->k_type = pool->k_type, c->v_type = pool->v_type;
    c->k_row_bytes = pool->k_row_bytes, c->v_row_bytes = pool->v_row_bytes;
    c->bytes_per_token = pool->bytes_per_token;
    c->max_blocks = (int)(((int64_t)capacity + pool->block_tokens - 1) >> pool->block_shift);
    c->length = calloc((size_t)c->n_layers, sizeof *c->length);
    c->table = malloc((size_t)c->max_blocks * sizeof *c->table);
    c->prefix_hash = calloc((size_t)c->max_blocks, sizeof *c->prefix_hash);
    if (!c->length || !c->table || !c->prefix_hash) {
        kvattn_cache_free(c);
        return kv_fail(KVATTN_ERR_NOMEM, "paged cache: out of memory for a table of %d blocks", c->max_blocks);
    }
    for (int i = 0; i < c->max_blocks; i++) c->table[i] = -1;
    c->pool = pool;
    pool->holders++;
    *out = c;
    return KVATTN_OK;
}

/* Paged: gives back the blocks from block `first` on. */
static void release_blocks(kvattn_cache *c, int first) {
    for (int i = first; i < c->max_blocks; i++)
        if (c->table[i] >= 0) {
            kv_pool_release(c->pool, c->table[i]);
            c->table[i] = -1;
        }
    if (c->n_hashed > first) c->n_hashed = first;
}

void kvattn_cache_free(kvattn_cache *c) {
    if (!c) return;
    if (c->pool && c->table) release_blocks(c, 0);
    kv_pool_drop(c->pool);
    kv_free_aligned(c->data);
    free(c->length), free(c->table), free(c->prefix_hash);
    free(c);
}

kvattn_status kvattn_cache_fork(const kvattn_cache *src, kvattn_cache **out) {
    if (!out) return kv_fail(KVATTN_ERR_INVALID_ARG, "cache fork: output pointer is NULL");
    *out = NULL;
    if (!src) return kv_fail(KVATTN_ERR_INVALID_ARG, "cache fork: source cache is NULL");
    kvattn_cache *c = NULL;
    kvattn_status st =
        src->pool ? kvattn_cache_create_paged(src->pool, src->capacity, &c)
                  : kvattn_cache_create_kv(&src->cfg, src->n_layers, src->capacity, src->k_type, src->v_type, &c);
    if (st != KVATTN_OK) return st;
    memcpy(c->length, src->length, (size_t)src->n_layers * sizeof *c->length);
    if (src->pool) {
        for (int i = 0; i < src->max_blocks; i++)
            if ((c->table[i] = src->table[i]) >= 0) kv_pool_retain(src->pool, src->table[i]);
        memcpy(c->prefix_hash, src->prefix_hash, (size_t)src->max_blocks * sizeof *c->prefix_hash);
        c->n_hashed = src->n_hashed;
    } else {
        memcpy(c->data, src->data, src->layer_bytes * (size_t)src->n_layers);
    }
    *out = c;
    return KVATTN_OK;
}

int kvattn_cache_is_paged(const kvattn_cache *c) { return c && c->pool; }

/* Paged: makes the blocks under positions [pos, pos + T) present and this
 * cache's alone — taken from the pool when missing, copied when shared (copy
 * on write), withdrawn from the published prefixes when about to change.
 * All or nothing: KVATTN_ERR_POOL_FULL, with nothing changed, when the pool
 * has too few unused blocks. */
static kvattn_status prepare_blocks(kvattn_cache *c, int pos, int T) {
    if (!c->pool || T <= 0) return KVATTN_OK;
    kvattn_kv_pool *p = c->pool;
    const int first = pos >> p->block_shift, last = (pos + T - 1) >> p->block_shift;
    int needed = 0;
    for (int i = first; i <= last; i++) needed += c->table[i] < 0 || p->refs[c->table[i]] > 1;
    if (needed > p->n_unused)
        return kv_fail(KVATTN_ERR_POOL_FULL,
                       "KV pool full: tokens %d..%d need %d more blocks of %d tokens, and %d of the pool's %d are "
                       "unused",
                       pos, pos + T - 1, needed, p->block_tokens, p->n_unused, p->n_blocks);
    for (int i = first; i <= last; i++) {
        const int32_t b = c->table[i];
        if (b < 0) {
            c->table[i] = kv_pool_take(p);
        } else if (p->refs[b] > 1) {
            const int32_t copy = kv_pool_take(p);
            for (int l = 0; l < c->n_layers; l++)
                memcpy(kv_pool_block(p, l, copy), kv_pool_block(p, l, b), p->block_bytes);
            kv_pool_release(p, b);
            c->table[i] = copy;
            p->copies++;
        } else {
            kv_pool_unpublish(p, b);
        }
    }
    if (c->n_hashed > first) c->n_hashed = first;
    return KVATTN_OK;
}

kvattn_status kvattn_cache_reserve(kvattn_cache *c, int pos, int n) {
    if (!c) return kv_fail(KVATTN_ERR_INVALID_ARG, "cache reserve: cache is NULL");
    if (pos < 0 || n < 0 || pos > kvattn_cache_length(c, -1))
        return kv_fail(KVATTN_ERR_INVALID_ARG, "cache reserve: pos = %d, n = %d, but the cache holds %d tokens", pos, n,
                       kvattn_cache_length(c, -1));
    if (n > c->capacity - pos)
        return kv_fail(KVATTN_ERR_CACHE_FULL, "cache full: %d tokens at position %d exceed the capacity of %d tokens",
                       n, pos, c->capacity);
    return prepare_blocks(c, pos, n);
}

static int cache_is_empty(const kvattn_cache *c) {
    for (int l = 0; l < c->n_layers; l++)
        if (c->length[l]) return 0;
    return 1;
}

kvattn_status kvattn_cache_reuse_prefix(kvattn_cache *c, const int32_t *tokens, int n, int *reused) {
    if (reused) *reused = 0;
    if (!c || !reused || (n > 0 && !tokens) || n < 0)
        return kv_fail(KVATTN_ERR_INVALID_ARG, "cache prefix reuse: NULL argument or n = %d", n);
    if (!c->pool) return KVATTN_OK;
    if (!cache_is_empty(c))
        return kv_fail(KVATTN_ERR_INVALID_ARG, "cache prefix reuse: the cache must be empty (it holds %d tokens)",
                       kvattn_cache_length(c, -1));
    kvattn_kv_pool *p = c->pool;
    const int B = p->block_tokens;
    int i = 0;
    for (uint64_t parent = 0; (int64_t)(i + 1) * B <= n && (int64_t)(i + 1) * B <= c->capacity; i++) {
        const int32_t *tk = tokens + (size_t)i * B;
        const uint64_t h = kv_pool_chain_hash(parent, tk, B);
        p->lookups++;
        const int32_t b = kv_pool_find(p, h, tk);
        if (b < 0) break;
        p->hits++;
        kv_pool_retain(p, b);
        c->table[i] = b;
        c->prefix_hash[i] = parent = h;
    }
    c->n_hashed = i;
    for (int l = 0; l < c->n_layers; l++) c->length[l] = i * B;
    *reused = i * B;
    return KVATTN_OK;
}

kvattn_status kvattn_cache_publish_prefix(kvattn_cache *c, const int32_t *tokens, int n) {
    if (!c || (n > 0 && !tokens) || n < 0)
        return kv_fail(KVATTN_ERR_INVALID_ARG, "cache prefix publish: NULL argument or n = %d", n);
    if (n > kvattn_cache_length(c, -1))
        return kv_fail(KVATTN_ERR_INVALID_ARG,
                       "cache prefix publish: %d tokens given, but every layer holds only the first %d", n,
                       kvattn_cache_length(c, -1));
    if (!c->pool) return KVATTN_OK;
    kvattn_kv_pool *p = c->pool;
    const int B = p->block_tokens;
    for (int i = c->n_hashed; (int64_t)(i + 1) * B <= n; i++) {
        const int32_t *tk = tokens + (size_t)i * B, b = c->table[i];
        const uint64_t h = kv_pool_chain_hash(i ? c->prefix_hash[i - 1] : 0, tk, B);
        if (p->hash[b] != h && kv_pool_find(p, h, tk) < 0) kv_pool_publish(p, b, h, tk);
        c->prefix_hash[i] = h;
        c->n_hashed = i + 1;
    }
    return KVATTN_OK;
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
size_t kvattn_cache_bytes_allocated(const kvattn_cache *c) {
    if (!c) return 0;
    if (!c->pool) return c->layer_bytes * (size_t)c->n_layers;
    size_t held = 0;
    for (int i = 0; i < c->max_blocks; i++) held += c->table[i] >= 0;
    return held * c->pool->block_bytes * (size_t)c->n_layers;
}

void kvattn_cache_clear(kvattn_cache *c) {
    if (!c) return;
    memset(c->length, 0, (size_t)c->n_layers * sizeof *c->length);
    if (c->pool) release_blocks(c, 0);
}

kvattn_status kvattn_cache_truncate(kvattn_cache *c, int n_tokens) {
    if (!c) return kv_fail(KVATTN_ERR_INVALID_ARG, "cache truncate: cache is NULL");
    for (int l = 0; l < c->n_layers; l++)
        if (n_tokens < 0 || n_tokens > c->length[l])
            return kv_fail(KVATTN_ERR_INVALID_ARG, "cache truncate: n_tokens = %d but layer %d holds %d tokens",
                           n_tokens, l, c->length[l]);
    for (int l = 0; l < c->n_layers; l++) c->length[l] = n_tokens;
    if (c->pool) release_blocks(c, (n_tokens + c->pool->block_tokens - 1) >> c->pool->block_shift);
    if (c->pool && c->n_hashed > n_tokens >> c->pool->block_shift) c->n_hashed = n_tokens >> c->pool->block_shift;
    return KVATTN_OK;
}

static uint8_t *layer_base(const kvattn_cache *c, int layer) { return c->data + (size_t)layer * c->layer_bytes; }

/* Rows of `dim` elements of `type`, a head's first at base + head·head_stride
 * (of its block, paged), one every row_bytes. */
static kv_rows rows_of(const kvattn_cache *c, kvattn_type type, const uint8_t *base, size_t head_stride,
                       size_t row_bytes, int dim) {
    kv_rows r = {.type = type, .base = base, .head_stride = head_stride, .token_stride = row_bytes, .dim = dim};
    if (c->pool) {
        r.blocks = c->table;
        r.block_bytes = c->pool->block_bytes;
        r.block_shift = c->pool->block_shift;
    }
    return r;
}

void kv_cache_rows(const kvattn_cache *c, int layer, kv_rows *k, kv_rows *v) {
    /* paged: the pool's layer, in blocks of block_tokens rows per head */
    const uint8_t *base = c->pool ? kv_pool_block(c->pool, layer, 0) : layer_base(c, layer);
    const size_t rows = c->pool ? (size_t)c->pool->block_tokens : (size_t)c->capacity;
    if (is_mla(c)) {
        *k = rows_of(c, c->k_type, base, 0, c->k_row_bytes, c->cfg.kv_lora_rank + c->cfg.qk_rope_head_dim);
        *v = rows_of(c, c->k_type, base, 0, c->k_row_bytes, c->cfg.kv_lora_rank);
        return;
    }
    const size_t k_stride = c->k_row_bytes * rows, v_stride = c->v_row_bytes * rows;
    *k = rows_of(c, c->k_type, base, k_stride, c->k_row_bytes, c->cfg.head_dim);
    *v = rows_of(c, c->v_type, base + k_stride * (size_t)c->cfg.n_kv_heads, v_stride, c->v_row_bytes, c->cfg.head_dim);
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
    if ((st = prepare_blocks(c, pos, T)) != KVATTN_OK) return st;
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
