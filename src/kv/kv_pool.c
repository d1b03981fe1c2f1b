/* The block pool: storage, reference counts, the unused list and the table
 * of published prefixes.
 *
 * Layout of one layer's storage (block b, B tokens per block, row bytes R):
 *   GQA family: block b = K[n_kv_heads][B][R(head_dim)] then V[n_kv_heads][B][R(head_dim)]
 *   MLA:        block b = L[B][R(d_c + d_R)]
 * — the contiguous cache's layout with a capacity of B, so the kernels read a
 * block as they read that cache. */
#include "kv_pool.h"
#include "rng.h"

#include <stdlib.h>
#include <string.h>

static int log2_exact(int n) {
    int s = 0;
    while ((1 << s) < n) s++;
    return (1 << s) == n ? s : -1;
}

int kvattn_kv_pool_blocks_for_bytes(const kvattn_layer_config *cfg, int n_layers, kvattn_type k_type,
                                    kvattn_type v_type, int block_tokens, uint64_t bytes) {
    if (!cfg || n_layers < 1 || block_tokens < 1) return 0;
    const size_t bpt = kvattn_kv_bytes_per_token_kv(cfg, n_layers, k_type, v_type);
    if (bpt == 0 || bpt > SIZE_MAX / (size_t)block_tokens) return 0;
    const uint64_t n = bytes / ((uint64_t)bpt * (uint64_t)block_tokens);
    return n > INT32_MAX / 2 ? INT32_MAX / 2 : (int)n;
}

kvattn_status kvattn_kv_pool_create(const kvattn_layer_config *cfg, int n_layers, kvattn_type k_type,
                                    kvattn_type v_type, int block_tokens, int n_blocks, kvattn_kv_pool **out) {
    if (!out) return kv_fail(KVATTN_ERR_INVALID_ARG, "KV pool: output pointer is NULL");
    *out = NULL;
    if (!cfg) return kv_fail(KVATTN_ERR_INVALID_ARG, "KV pool: config is NULL");
    kvattn_status st = kvattn_config_validate(cfg);
    if (st != KVATTN_OK) return st;
    if ((st = kv_cache_check_layout("KV pool", n_layers, k_type, v_type, cfg)) != KVATTN_OK) return st;
    const int shift = log2_exact(block_tokens);
    if (shift < 0 || block_tokens < KV_BLOCK_MIN_TOKENS || block_tokens > KV_BLOCK_MAX_TOKENS)
        return kv_fail(KVATTN_ERR_INVALID_ARG,
                       "KV pool: block_tokens = %d must be a power of two in [%d, %d] (whole attention tiles)",
                       block_tokens, KV_BLOCK_MIN_TOKENS, KV_BLOCK_MAX_TOKENS);
    if (n_blocks < 1 || n_blocks > INT32_MAX / 2)
        return kv_fail(KVATTN_ERR_INVALID_ARG, "KV pool: n_blocks = %d must be in [1, %d]", n_blocks, INT32_MAX / 2);
    const size_t bpt = kvattn_kv_bytes_per_token_kv(cfg, n_layers, k_type, v_type);
    size_t block_bytes, layer_bytes, total, token_ids;
    if (bpt == 0 || !kv_mul_size(bpt / (size_t)n_layers, (size_t)block_tokens, &block_bytes) ||
        !kv_mul_size(block_bytes, (size_t)n_blocks, &layer_bytes) ||
        !kv_mul_size(layer_bytes, (size_t)n_layers, &total) ||
        !kv_mul_size((size_t)n_blocks, (size_t)block_tokens, &token_ids))
        return kv_fail(KVATTN_ERR_NOMEM, "KV pool: %d blocks × %d tokens × %d layers overflows the address space",
                       n_blocks, block_tokens, n_layers);

    kvattn_kv_pool *p = calloc(1, sizeof *p);
    if (!p) return kv_fail(KVATTN_ERR_NOMEM, "KV pool: out of memory");
    p->cfg = *cfg;
    p->n_layers = n_layers, p->n_blocks = n_blocks;
    p->block_tokens = block_tokens, p->block_shift = shift;
    p->k_type = k_type, p->v_type = v_type;
    const int mla = cfg->kind == KVATTN_ATTN_MLA;
    p->k_row_bytes = kvattn_row_bytes(k_type, mla ? cfg->kv_lora_rank + cfg->qk_rope_head_dim : cfg->head_dim);
    p->v_row_bytes = kvattn_row_bytes(v_type, mla ? 0 : cfg->head_dim);
    p->bytes_per_token = bpt;
    p->block_bytes = block_bytes, p->layer_bytes = layer_bytes;
    p->holders = 1;
    uint32_t n_buckets = 16;
    while (n_buckets < (uint32_t)n_blocks && n_buckets < (1u << 30)) n_buckets <<= 1;
    p->bucket_mask = n_buckets - 1;
    p->data = kv_alloc_aligned(total);
    p->refs = calloc((size_t)n_blocks, sizeof *p->refs);
    p->hash = calloc((size_t)n_blocks, sizeof *p->hash);
    p->tokens = malloc(token_ids * sizeof *p->tokens);
    p->bucket = malloc((size_t)n_buckets * sizeof *p->bucket);
    p->chained = malloc((size_t)n_blocks * sizeof *p->chained);
    p->prev = malloc((size_t)n_blocks * sizeof *p->prev);
    p->next = malloc((size_t)n_blocks * sizeof *p->next);
    if (!p->data || !p->refs || !p->hash || !p->tokens || !p->bucket || !p->chained || !p->prev || !p->next) {
        kv_pool_drop(p);
        return kv_fail(KVATTN_ERR_NOMEM, "KV pool: cannot allocate %zu bytes (%d blocks × %d tokens × %zu bytes/token)",
                       total, n_blocks, block_tokens, bpt);
    }
    for (uint32_t i = 0; i < n_buckets; i++) p->bucket[i] = -1;
    for (int b = 0; b < n_blocks; b++) {
        p->prev[b] = b - 1;
        p->next[b] = b + 1 < n_blocks ? b + 1 : -1;
        p->chained[b] = -1;
    }
    p->first_unused = 0, p->last_unused = n_blocks - 1;
    p->n_unused = n_blocks;
    *out = p;
    return KVATTN_OK;
}

void kv_pool_drop(kvattn_kv_pool *p) {
    if (!p || --p->holders > 0) return;
    kv_free_aligned(p->data);
    free(p->refs), free(p->hash), free(p->tokens), free(p->bucket), free(p->chained), free(p->prev), free(p->next);
    free(p);
}

void kvattn_kv_pool_free(kvattn_kv_pool *p) { kv_pool_drop(p); }

int kvattn_kv_pool_block_tokens(const kvattn_kv_pool *p) { return p ? p->block_tokens : 0; }
int kvattn_kv_pool_n_blocks(const kvattn_kv_pool *p) { return p ? p->n_blocks : 0; }

void kvattn_kv_pool_get_stats(const kvattn_kv_pool *p, kvattn_kv_pool_stats *out) {
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!p) return;
    out->n_blocks = p->n_blocks;
    out->block_tokens = p->block_tokens;
    out->used = p->n_blocks - p->n_unused;
    out->cached = p->n_published_unused;
    out->free = p->n_unused - p->n_published_unused;
    out->bytes = (uint64_t)p->layer_bytes * (uint64_t)p->n_layers;
    out->bytes_per_token = p->bytes_per_token;
    out->lookups = p->lookups, out->hits = p->hits;
    out->evictions = p->evictions, out->copies = p->copies;
}

/* The unused list ----------------------------------------------------------- */

static void unlink_unused(kvattn_kv_pool *p, int32_t b) {
    if (p->prev[b] >= 0) p->next[p->prev[b]] = p->next[b];
    else p->first_unused = p->next[b];
    if (p->next[b] >= 0) p->prev[p->next[b]] = p->prev[b];
    else p->last_unused = p->prev[b];
    p->n_unused--;
    if (p->hash[b]) p->n_published_unused--;
}

/* Published blocks go last (most recently released), others first: a block
 * that no prefix can find is the first to be reused. */
static void link_unused(kvattn_kv_pool *p, int32_t b) {
    if (p->hash[b]) {
        p->prev[b] = p->last_unused, p->next[b] = -1;
        if (p->last_unused >= 0) p->next[p->last_unused] = b;
        else p->first_unused = b;
        p->last_unused = b;
        p->n_published_unused++;
    } else {
        p->prev[b] = -1, p->next[b] = p->first_unused;
        if (p->first_unused >= 0) p->prev[p->first_unused] = b;
        else p->last_unused = b;
        p->first_unused = b;
    }
    p->n_unused++;
}

int32_t kv_pool_take(kvattn_kv_pool *p) {
    const int32_t b = p->first_unused;
    if (b < 0) return -1;
    unlink_unused(p, b);
    if (p->hash[b]) {
        kv_pool_unpublish(p, b);
        p->evictions++;
    }
    p->refs[b] = 1;
    return b;
}

void kv_pool_release(kvattn_kv_pool *p, int32_t b) {
    if (--p->refs[b] == 0) link_unused(p, b);
}

void kv_pool_retain(kvattn_kv_pool *p, int32_t b) {
    if (p->refs[b]++ == 0) unlink_unused(p, b);
}

void kv_pool_shuffle(kvattn_kv_pool *p, uint64_t seed) {
    const int n = p->n_unused;
    int32_t *b = malloc(sizeof *b * (size_t)(n ? n : 1));
    if (!b) return; /* the order stays as it was: only speed measurements ask for this */
    for (int i = 0; i < n; i++) b[i] = p->first_unused, unlink_unused(p, b[i]);
    kv_rng rng = {seed};
    for (int i = n - 1; i > 0; i--) {
        const int j = (int)(kv_rng_next(&rng) % (uint64_t)(i + 1));
        const int32_t t = b[i];
        b[i] = b[j], b[j] = t;
    }
    for (int i = 0; i < n; i++) link_unused(p, b[i]);
    free(b);
}

/* Published prefixes ------------------------------------------------------- */

uint64_t kv_pool_chain_hash(uint64_t parent, const int32_t *tokens, int n) {
    uint64_t h = kv_mix64(parent ^ 0x9e3779b97f4a7c15ull);
    for (int i = 0; i < n; i++) h = kv_mix64(h ^ ((uint64_t)(uint32_t)tokens[i] + ((uint64_t)i << 32)));
    return h ? h : 1;
}

static const int32_t *block_tokens_of(const kvattn_kv_pool *p, int32_t b) {
    return p->tokens + (size_t)b * p->block_tokens;
}

int32_t kv_pool_find(const kvattn_kv_pool *p, uint64_t hash, const int32_t *tokens) {
    for (int32_t b = p->bucket[hash & p->bucket_mask]; b >= 0; b = p->chained[b])
        if (p->hash[b] == hash && !memcmp(block_tokens_of(p, b), tokens, sizeof *tokens * (size_t)p->block_tokens))
            return b;
    return -1;
}

void kv_pool_publish(kvattn_kv_pool *p, int32_t b, uint64_t hash, const int32_t *tokens) {
    if (p->hash[b]) kv_pool_unpublish(p, b);
    memcpy(p->tokens + (size_t)b * p->block_tokens, tokens, sizeof *tokens * (size_t)p->block_tokens);
    p->hash[b] = hash;
    int32_t *head = &p->bucket[hash & p->bucket_mask];
    p->chained[b] = *head;
    *head = b;
}

void kv_pool_unpublish(kvattn_kv_pool *p, int32_t b) {
    if (!p->hash[b]) return;
    for (int32_t *at = &p->bucket[p->hash[b] & p->bucket_mask]; *at >= 0; at = &p->chained[*at])
        if (*at == b) {
            *at = p->chained[b];
            break;
        }
    p->chained[b] = -1;
    p->hash[b] = 0;
}
