/* The block pool behind paged caches: blocks of block_tokens tokens in every
 * layer, reference-counted, published under the hash of the tokens up to
 * their end (prefix caching) and kept, once unused, until their memory is
 * needed (least recently used first). */
#ifndef KVATTN_KV_POOL_H
#define KVATTN_KV_POOL_H

#include "kv_cache.h"

struct kvattn_kv_pool {
    kvattn_layer_config cfg;
    int n_layers, n_blocks;
    int block_tokens, block_shift;
    kvattn_type k_type, v_type;
    size_t k_row_bytes, v_row_bytes; /* one stored row (MLA: v_row_bytes unused)    */
    size_t bytes_per_token;          /* over all layers                           */
    size_t block_bytes;              /* one block in one layer                    */
    size_t layer_bytes;              /* n_blocks · block_bytes                    */
    uint8_t *data;                   /* [n_layers][n_blocks][block_bytes]         */
    int holders;                     /* the owner (until kvattn_kv_pool_free) + caches */

    int32_t *refs;    /* [n_blocks] block tables holding the block      */
    uint64_t *hash;   /* [n_blocks] prefix hash when published, else 0  */
    int32_t *tokens;  /* [n_blocks][block_tokens] a published block's tokens */
    int32_t *bucket;  /* [n_buckets] first published block of the bucket */
    int32_t *chained; /* [n_blocks] next published block of its bucket  */
    uint32_t bucket_mask;
    /* Unused blocks (refs 0) in a list: unpublished ones first, then the
     * published ones from least to most recently released. */
    int32_t *prev, *next;
    int32_t first_unused, last_unused;
    int n_unused, n_published_unused;
    uint64_t lookups, hits, evictions, copies;
};

/* Takes an unused block (refs becomes 1), evicting the least recently used
 * published one if no other is left; -1 if every block is in use. */
int32_t kv_pool_take(kvattn_kv_pool *p);
/* A holder of block b is done with it. */
void kv_pool_release(kvattn_kv_pool *p, int32_t b);
/* One more holder of block b (taken off the unused list if it was there). */
void kv_pool_retain(kvattn_kv_pool *p, int32_t b);

/* The hash of a block of tokens following the prefix whose hash is `parent`
 * (0 for the first block); never 0. */
uint64_t kv_pool_chain_hash(uint64_t parent, const int32_t *tokens, int n);
/* The published block with this hash and these tokens, or -1. */
int32_t kv_pool_find(const kvattn_kv_pool *p, uint64_t hash, const int32_t *tokens);
/* Publishes block b under hash (its tokens copied). */
void kv_pool_publish(kvattn_kv_pool *p, int32_t b, uint64_t hash, const int32_t *tokens);
/* Withdraws block b from the published ones (it is about to be written). */
void kv_pool_unpublish(kvattn_kv_pool *p, int32_t b);

/* Block b's rows in `layer`. */
static inline uint8_t *kv_pool_block(const kvattn_kv_pool *p, int layer, int32_t b) {
    return p->data + (size_t)layer * p->layer_bytes + (size_t)b * p->block_bytes;
}

/* From now on, the unused blocks are taken in a random order (per seed). */
void kv_pool_shuffle(kvattn_kv_pool *p, uint64_t seed);

/* Drops one holder; the pool is freed with its last. */
void kv_pool_drop(kvattn_kv_pool *p);

#endif
