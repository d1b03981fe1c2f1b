/* The paged KV cache: attention through a block table gives the same bits
 * as the contiguous cache, for every design and cache type, with the pool's
 * blocks handed out in random order; the pool holds exactly the tokens the
 * byte formula says; prefix blocks are found, shared, copied on write,
 * withdrawn when rewritten and evicted least recently used first; a full
 * pool fails a write cleanly and changes nothing.
 *
 * Tolerance: none. The kernels do the same arithmetic in the same order
 * whichever address a tile's rows come from, so paged and contiguous outputs
 * must be equal bit for bit (memcmp). */
#include "test_util.h"

#include "kv/kv_pool.h"

#include <stdlib.h>
#include <string.h>

static const kvattn_type cache_types[] = {KVATTN_TYPE_F32, KVATTN_TYPE_F16, KVATTN_TYPE_BF16, KVATTN_TYPE_Q8_0};

/* Runs T tokens through one attention layer in random chunks, into a
 * contiguous cache and a paged one side by side; 1 if every output is equal. */
static int paged_equals_contiguous(const test_layer *L, kvattn_type type, kvattn_mla_mode mode, int block_tokens, int T,
                                   test_rng *r) {
    const int D = L->cfg.d_model;
    kvattn_cache *flat = NULL, *paged = NULL;
    kvattn_kv_pool *pool = NULL;
    const int n_blocks = (T + block_tokens - 1) / block_tokens + 3;
    CHECK_OK(kvattn_cache_create(&L->cfg, 1, T, type, &flat));
    CHECK_OK(kvattn_kv_pool_create(&L->cfg, 1, type, type, block_tokens, n_blocks, &pool));
    if (!flat || !pool) {
        kvattn_cache_free(flat), kvattn_kv_pool_free(pool);
        return 0;
    }
    kv_pool_shuffle(pool, (uint64_t)test_randint(r, 1, 1 << 30));
    CHECK_OK(kvattn_cache_create_paged(pool, T, &paged));
    kvattn_kv_pool_free(pool); /* the cache keeps it */
    float *x = malloc(sizeof(float) * (size_t)T * D), *a = malloc(sizeof(float) * (size_t)T * D),
          *b = malloc(sizeof(float) * (size_t)T * D);
    test_fill(r, x, (size_t)T * D, 1.0f);
    int same = paged != NULL;
    for (int pos = 0; pos < T && same;) {
        int n = test_randint(r, 0, 3) ? 1 : test_randint(r, 1, 150); /* mostly decode steps, some prefill */
        if (n > T - pos) n = T - pos;
        kvattn_status s1 =
            kvattn_attn_forward(&L->cfg, &L->w, flat, 0, pos, n, x + (size_t)pos * D, a + (size_t)pos * D, mode);
        kvattn_status s2 =
            kvattn_attn_forward(&L->cfg, &L->w, paged, 0, pos, n, x + (size_t)pos * D, b + (size_t)pos * D, mode);
        same = s1 == KVATTN_OK && s2 == KVATTN_OK &&
               !memcmp(a + (size_t)pos * D, b + (size_t)pos * D, sizeof(float) * (size_t)n * D);
        if (!same)
            fprintf(stderr, "  first difference at tokens %d..%d (%s / %s)\n", pos, pos + n - 1, kvattn_status_name(s1),
                    kvattn_status_name(s2));
        pos += n;
    }
    free(x), free(a), free(b);
    kvattn_cache_free(flat), kvattn_cache_free(paged);
    return same;
}

static void test_attention_through_blocks(const char *isa) {
    test_rng r = {0x9a9ed};
    struct {
        const char *name;
        kvattn_layer_config cfg;
    } layers[] = {
        {"MHA 4x16", test_gqa_config(64, 4, 4, 16)},       {"GQA 8/2 x32", test_gqa_config(96, 8, 2, 32)},
        {"MQA 16/1 x64", test_gqa_config(128, 16, 1, 64)}, {"GQA 6/3 x24 (odd)", test_gqa_config(72, 6, 3, 24)},
        {"MLA", test_mla_config(64, 4, 0, 32, 16, 8, 16)}, {"MLA q_lora", test_mla_config(96, 16, 48, 64, 16, 16, 24)},
    };
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++) {
        test_layer L;
        test_layer_init(&L, &layers[i].cfg, 100 + i);
        const int mla = layers[i].cfg.kind == KVATTN_ATTN_MLA;
        for (int m = 0; m <= mla; m++)
            for (size_t t = 0; t < sizeof cache_types / sizeof cache_types[0]; t++) {
                const int block = test_randint(&r, 0, 2) ? 64 : 128, T = test_randint(&r, 1, 330);
                CHECK(paged_equals_contiguous(&L, cache_types[t], m ? KVATTN_MLA_NAIVE : KVATTN_MLA_ABSORBED, block, T,
                                              &r),
                      "[%s] %s%s, %s cache, blocks of %d, %d tokens: paged differs from contiguous", isa,
                      layers[i].name, m ? " naive" : "", kvattn_type_name(cache_types[t]), block, T);
            }
        test_layer_free(&L);
    }
    /* context 1, and exactly one block, and one past it */
    kvattn_layer_config g = test_gqa_config(64, 4, 2, 16);
    test_layer L;
    test_layer_init(&L, &g, 7);
    const int lengths[] = {1, 64, 65, 128, 129};
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++)
        CHECK(paged_equals_contiguous(&L, KVATTN_TYPE_F16, KVATTN_MLA_ABSORBED, 64, lengths[i], &r),
              "[%s] GQA, %d tokens: paged differs", isa, lengths[i]);
    test_layer_free(&L);
}

/* The pool holds exactly the tokens kvattn_kv_bytes_per_token_kv allows. */
static void test_pool_size(void) {
    kvattn_layer_config cfgs[] = {test_gqa_config(4096, 32, 8, 128), test_mla_config(2048, 16, 0, 512, 128, 64, 128),
                                  test_gqa_config(72, 6, 3, 24)};
    for (size_t c = 0; c < 3; c++)
        for (size_t t = 0; t < sizeof cache_types / sizeof cache_types[0]; t++) {
            const kvattn_type kt = cache_types[t];
            const size_t bpt = kvattn_kv_bytes_per_token_kv(&cfgs[c], 3, kt, kt);
            const uint64_t mem = 5000000 + 12345 * (uint64_t)t;
            const int n = kvattn_kv_pool_blocks_for_bytes(&cfgs[c], 3, kt, kt, 64, mem);
            CHECK(n > 0 && (uint64_t)n * 64 * bpt <= mem && (uint64_t)(n + 1) * 64 * bpt > mem,
                  "config %zu, %s: %d blocks of 64 tokens × %zu bytes for %llu bytes", c, kvattn_type_name(kt), n, bpt,
                  (unsigned long long)mem);
            kvattn_kv_pool *p = NULL;
            CHECK_OK(kvattn_kv_pool_create(&cfgs[c], 3, kt, kt, 64, n, &p));
            kvattn_kv_pool_stats s;
            kvattn_kv_pool_get_stats(p, &s);
            CHECK(s.bytes == (uint64_t)n * 64 * bpt && s.bytes_per_token == bpt && s.free == n && s.used == 0,
                  "pool of %d blocks: %llu bytes, %d free", n, (unsigned long long)s.bytes, s.free);
            kvattn_kv_pool_free(p);
        }
    kvattn_layer_config g = test_gqa_config(64, 4, 2, 16);
    CHECK(kvattn_kv_pool_blocks_for_bytes(&g, 1, KVATTN_TYPE_F16, KVATTN_TYPE_F16, 64, 100) == 0, "100 bytes: none");
}

/* kv_pool_shuffle really reorders: 32 blocks taken after it are not in order. */
static void test_shuffle(void) {
    kvattn_layer_config g = test_gqa_config(64, 4, 2, 16);
    kvattn_kv_pool *p = NULL;
    CHECK_OK(kvattn_kv_pool_create(&g, 1, KVATTN_TYPE_F16, KVATTN_TYPE_F16, 64, 32, &p));
    if (!p) return;
    kv_pool_shuffle(p, 5);
    int in_order = 1, seen[32] = {0}, all = 1;
    for (int i = 0, prev = -1; i < 32; i++) {
        const int32_t b = kv_pool_take(p);
        in_order &= b > prev;
        if (b >= 0 && b < 32) seen[b]++;
        prev = b;
    }
    for (int i = 0; i < 32; i++) all &= seen[i] == 1;
    CHECK(!in_order && all && kv_pool_take(p) == -1, "shuffled: in order %d, each block once %d", in_order, all);
    kvattn_kv_pool_free(p);
}

static void test_pool_errors(void) {
    kvattn_layer_config g = test_gqa_config(64, 4, 2, 16), mla = test_mla_config(64, 4, 0, 32, 16, 8, 16);
    kvattn_kv_pool *p = NULL;
    const int bad_blocks[] = {0, 1, 32, 48, 96, 8192};
    for (size_t i = 0; i < sizeof bad_blocks / sizeof bad_blocks[0]; i++) {
        CHECK(kvattn_kv_pool_create(&g, 1, KVATTN_TYPE_F16, KVATTN_TYPE_F16, bad_blocks[i], 4, &p) ==
                      KVATTN_ERR_INVALID_ARG &&
                  !p && strstr(kvattn_last_error(), "block_tokens"),
              "block_tokens = %d: %s", bad_blocks[i], kvattn_last_error());
    }
    CHECK(kvattn_kv_pool_create(&g, 1, KVATTN_TYPE_F16, KVATTN_TYPE_F16, 64, 0, &p) == KVATTN_ERR_INVALID_ARG && !p,
          "0 blocks");
    CHECK(kvattn_kv_pool_create(&g, 1, KVATTN_TYPE_Q4_0, KVATTN_TYPE_F16, 64, 4, &p) == KVATTN_ERR_UNSUPPORTED &&
              strstr(kvattn_last_error(), "q4_0"),
          "q4_0 K: %s", kvattn_last_error());
    CHECK(kvattn_kv_pool_create(&mla, 1, KVATTN_TYPE_F16, KVATTN_TYPE_Q8_0, 64, 4, &p) == KVATTN_ERR_UNSUPPORTED,
          "MLA with K ≠ V type");
    CHECK(kvattn_kv_pool_create(&g, 0, KVATTN_TYPE_F16, KVATTN_TYPE_F16, 64, 4, &p) == KVATTN_ERR_INVALID_ARG,
          "0 layers");
    kvattn_cache *c = NULL;
    CHECK(kvattn_cache_create_paged(NULL, 8, &c) == KVATTN_ERR_INVALID_ARG && !c, "NULL pool");
    CHECK_OK(kvattn_kv_pool_create(&g, 1, KVATTN_TYPE_F16, KVATTN_TYPE_F16, 64, 4, &p));
    CHECK(kvattn_cache_create_paged(p, 0, &c) == KVATTN_ERR_INVALID_ARG && !c, "capacity 0");
    kvattn_kv_pool_free(p);
}

/* Deterministic K/V rows for token `tok` at position `pos` of layer l: what
 * a model would write, a function of the prefix only through (tok, pos). */
static void token_rows(const kvattn_layer_config *cfg, int l, int tok, int pos, float *k, float *v) {
    const int w =
        cfg->kind == KVATTN_ATTN_MLA ? cfg->kv_lora_rank + cfg->qk_rope_head_dim : cfg->n_kv_heads * cfg->head_dim;
    test_rng r = {(uint64_t)tok * 1000003u + (uint64_t)pos * 7919u + (uint64_t)l * 31u + 1};
    test_fill(&r, k, (size_t)w, 1.0f);
    if (v) test_fill(&r, v, (size_t)w, 1.0f);
}

/* Writes tokens[from..to) into every layer of c. */
static kvattn_status write_tokens(kvattn_cache *c, const kvattn_layer_config *cfg, const int32_t *tokens, int from,
                                  int to) {
    const int mla = cfg->kind == KVATTN_ATTN_MLA, n_layers = kvattn_cache_n_layers(c);
    float k[256], v[256];
    for (int t = from; t < to; t++)
        for (int l = 0; l < n_layers; l++) {
            token_rows(cfg, l, tokens[t], t, k, mla ? NULL : v);
            kvattn_status st = kvattn_cache_write(c, l, t, 1, k, mla ? NULL : v);
            if (st != KVATTN_OK) return st;
        }
    return KVATTN_OK;
}

/* Whether c holds exactly the rows of tokens[0..n) (read back against a
 * contiguous cache written the same way). */
static int holds_tokens(const kvattn_cache *c, const kvattn_layer_config *cfg, const int32_t *tokens, int n) {
    const int mla = cfg->kind == KVATTN_ATTN_MLA, n_layers = kvattn_cache_n_layers(c);
    kvattn_cache *ref = NULL;
    if (kvattn_cache_length(c, -1) != n ||
        kvattn_cache_create_kv(cfg, n_layers, n > 0 ? n : 1, kvattn_cache_type(c), kvattn_cache_type_v(c), &ref) !=
            KVATTN_OK ||
        write_tokens(ref, cfg, tokens, 0, n) != KVATTN_OK) {
        kvattn_cache_free(ref);
        return 0;
    }
    float k1[256], v1[256], k2[256], v2[256];
    const int w = mla ? cfg->kv_lora_rank + cfg->qk_rope_head_dim : cfg->n_kv_heads * cfg->head_dim;
    int same = 1;
    for (int l = 0; l < n_layers && same; l++)
        for (int t = 0; t < n && same; t++) {
            kvattn_cache_read(c, l, t, k1, mla ? NULL : v1);
            kvattn_cache_read(ref, l, t, k2, mla ? NULL : v2);
            same = !memcmp(k1, k2, sizeof(float) * (size_t)w) && (mla || !memcmp(v1, v2, sizeof(float) * (size_t)w));
        }
    kvattn_cache_free(ref);
    return same;
}

static void test_prefix_sharing(void) {
    kvattn_layer_config cfgs[] = {test_gqa_config(64, 4, 2, 16), test_mla_config(64, 4, 0, 32, 16, 8, 16)};
    for (int ci = 0; ci < 2; ci++) {
        const kvattn_layer_config *cfg = &cfgs[ci];
        const char *name = ci ? "MLA" : "GQA";
        kvattn_kv_pool *p = NULL;
        CHECK_OK(kvattn_kv_pool_create(cfg, 2, KVATTN_TYPE_F16, KVATTN_TYPE_F16, 64, 6, &p));
        if (!p) continue;
        int32_t prompt[300], other[300];
        test_rng r = {11 + (uint64_t)ci};
        for (int i = 0; i < 300; i++) prompt[i] = other[i] = test_randint(&r, 0, 999);
        other[100] += 1; /* differs in the second block */

        /* a sequence of 150 tokens publishes its two whole blocks */
        kvattn_cache *a = NULL, *b = NULL, *c = NULL;
        CHECK_OK(kvattn_cache_create_paged(p, 300, &a));
        CHECK_OK(write_tokens(a, cfg, prompt, 0, 150));
        CHECK_OK(kvattn_cache_publish_prefix(a, prompt, 150));
        CHECK(kvattn_cache_bytes_allocated(a) == 3 * p->block_bytes * 2, "[%s] 150 tokens hold 3 blocks", name);
        kvattn_kv_pool_stats s;
        kvattn_kv_pool_get_stats(p, &s);
        CHECK(s.used == 3 && s.free == 3 && s.cached == 0, "[%s] used %d free %d cached %d", name, s.used, s.free,
              s.cached);

        /* while it runs, a second sequence with the same 200-token prompt shares the two blocks */
        int reused = -1;
        CHECK_OK(kvattn_cache_create_paged(p, 300, &b));
        CHECK_OK(kvattn_cache_reuse_prefix(b, prompt, 200, &reused));
        CHECK(reused == 128 && holds_tokens(b, cfg, prompt, 128), "[%s] reused %d tokens of 200, want 128", name,
              reused);
        kvattn_kv_pool_get_stats(p, &s);
        CHECK(s.used == 3 && s.hits == 2 && s.lookups == 3, "[%s] shared: used %d, hits %llu of %llu", name, s.used,
              (unsigned long long)s.hits, (unsigned long long)s.lookups);
        CHECK_OK(write_tokens(b, cfg, prompt, 128, 200));
        CHECK_OK(kvattn_cache_publish_prefix(b, prompt, 200)); /* its third block, tokens 128..191 */
        CHECK(holds_tokens(b, cfg, prompt, 200) && holds_tokens(a, cfg, prompt, 150), "[%s] both intact", name);

        /* a prompt that differs in its second block reuses only the first */
        CHECK_OK(kvattn_cache_create_paged(p, 300, &c));
        CHECK_OK(kvattn_cache_reuse_prefix(c, other, 300, &reused));
        CHECK(reused == 64, "[%s] differing second block: reused %d, want 64", name, reused);
        /* the pool is full now (a: 3, b: 2 shared + 2, c: 1 shared); c's next block does not fit */
        kvattn_kv_pool_get_stats(p, &s);
        CHECK(s.used == 5, "[%s] used %d, want 5", name, s.used);
        CHECK_OK(write_tokens(c, cfg, other, 64, 128)); /* the sixth block */
        kvattn_status st = write_tokens(c, cfg, other, 128, 129);
        CHECK(st == KVATTN_ERR_POOL_FULL && strstr(kvattn_last_error(), "KV pool full") &&
                  kvattn_cache_length(c, 0) == 128 && kvattn_cache_length(c, 1) == 128,
              "[%s] full pool: %s, %s, lengths %d/%d", name, kvattn_status_name(st), kvattn_last_error(),
              kvattn_cache_length(c, 0), kvattn_cache_length(c, 1));
        CHECK(kvattn_cache_reserve(c, 128, 64) == KVATTN_ERR_POOL_FULL && kvattn_cache_length(c, -1) == 128,
              "[%s] reserve on a full pool", name);
        CHECK(holds_tokens(c, cfg, other, 128) && holds_tokens(a, cfg, prompt, 150) &&
                  holds_tokens(b, cfg, prompt, 200),
              "[%s] a full pool corrupts no neighbour", name);

        /* finished sequences leave their published blocks cached (a's second, b's third); the
         * unpublished ones (a's third, b's fourth) are free and are taken first */
        kvattn_cache_free(a), a = NULL;
        kvattn_cache_free(b), b = NULL;
        kvattn_kv_pool_get_stats(p, &s);
        CHECK(s.used == 2 && s.cached == 2 && s.free == 2, "[%s] after two finish: used %d cached %d free %d", name,
              s.used, s.cached, s.free);
        CHECK_OK(write_tokens(c, cfg, other, 128, 192));
        kvattn_kv_pool_get_stats(p, &s);
        CHECK(s.evictions == 0 && s.cached == 2, "[%s] a free block went first: %llu evictions", name,
              (unsigned long long)s.evictions);
        CHECK_OK(kvattn_cache_create_paged(p, 300, &a));
        CHECK_OK(kvattn_cache_reuse_prefix(a, prompt, 300, &reused));
        CHECK(reused == 192 && holds_tokens(a, cfg, prompt, 192), "[%s] cached after its sequences ended: %d", name,
              reused);
        kvattn_cache_free(a), a = NULL;
        kvattn_cache_free(c), c = NULL;
        kvattn_kv_pool_free(p);
    }
}

static void test_lru_eviction(void) {
    kvattn_layer_config cfg = test_gqa_config(64, 4, 1, 16);
    kvattn_kv_pool *p = NULL;
    CHECK_OK(kvattn_kv_pool_create(&cfg, 1, KVATTN_TYPE_Q8_0, KVATTN_TYPE_Q8_0, 64, 4, &p));
    if (!p) return;
    int32_t t1[128], t2[128], t3[128];
    for (int i = 0; i < 128; i++) t1[i] = i, t2[i] = 1000 + i, t3[i] = 2000 + i;
    const int32_t *seqs[3] = {t1, t2, t3};
    for (int i = 0; i < 2; i++) { /* t1 then t2 finish, published: the pool is all cached */
        kvattn_cache *c = NULL;
        CHECK_OK(kvattn_cache_create_paged(p, 128, &c));
        CHECK_OK(write_tokens(c, &cfg, seqs[i], 0, 128));
        CHECK_OK(kvattn_cache_publish_prefix(c, seqs[i], 128));
        kvattn_cache_free(c);
    }
    kvattn_cache *c = NULL;
    int reused = 0;
    CHECK_OK(kvattn_cache_create_paged(p, 128, &c)); /* t3 needs two blocks: t1's, the least recent, go */
    CHECK_OK(write_tokens(c, &cfg, t3, 0, 128));
    kvattn_kv_pool_stats s;
    kvattn_kv_pool_get_stats(p, &s);
    CHECK(s.evictions == 2 && s.cached == 2, "evictions %llu, cached %d", (unsigned long long)s.evictions, s.cached);
    kvattn_cache_free(c);
    CHECK_OK(kvattn_cache_create_paged(p, 128, &c));
    CHECK_OK(kvattn_cache_reuse_prefix(c, t1, 128, &reused));
    CHECK(reused == 0, "t1 was evicted, yet %d tokens reused", reused);
    kvattn_cache_clear(c);
    CHECK_OK(kvattn_cache_reuse_prefix(c, t2, 128, &reused));
    CHECK(reused == 128 && holds_tokens(c, &cfg, t2, 128), "t2 survives: %d", reused);
    kvattn_cache_free(c);
    kvattn_kv_pool_free(p);
}

static void test_copy_on_write(void) {
    kvattn_layer_config cfgs[] = {test_gqa_config(64, 4, 2, 16), test_mla_config(64, 4, 0, 32, 16, 8, 16)};
    for (int ci = 0; ci < 2; ci++) {
        const kvattn_layer_config *cfg = &cfgs[ci];
        kvattn_kv_pool *p = NULL;
        CHECK_OK(kvattn_kv_pool_create(cfg, 3, KVATTN_TYPE_BF16, KVATTN_TYPE_BF16, 64, 8, &p));
        if (!p) continue;
        int32_t x[200], y[200];
        for (int i = 0; i < 200; i++) x[i] = y[i] = 3 * i + ci;
        for (int i = 100; i < 200; i++) y[i] = 7000 + i;
        kvattn_cache *a = NULL, *b = NULL;
        CHECK_OK(kvattn_cache_create_paged(p, 200, &a));
        CHECK_OK(write_tokens(a, cfg, x, 0, 100));
        CHECK_OK(kvattn_cache_fork(a, &b));
        kvattn_kv_pool_stats s;
        kvattn_kv_pool_get_stats(p, &s);
        CHECK(s.used == 2 && holds_tokens(b, cfg, x, 100), "fork shares: %d used", s.used);
        CHECK_OK(write_tokens(b, cfg, y, 100, 150)); /* into the shared, partly filled second block, and a third */
        kvattn_kv_pool_get_stats(p, &s);
        CHECK(s.copies == 1 && s.used == 4, "copy on write: %llu copies, %d used", (unsigned long long)s.copies,
              s.used);
        CHECK_OK(write_tokens(a, cfg, x, 100, 150)); /* a's block is its own again: written in place */
        kvattn_kv_pool_get_stats(p, &s);
        CHECK(s.copies == 1 && s.used == 5, "no second copy: %llu, %d used", (unsigned long long)s.copies, s.used);
        CHECK(holds_tokens(a, cfg, x, 150) && holds_tokens(b, cfg, y, 150), "each sequence reads its own tokens");
        /* rewinding into a shared whole block and writing copies it too */
        CHECK_OK(kvattn_cache_truncate(a, 30));
        CHECK_OK(write_tokens(a, cfg, y, 30, 40));
        int32_t mixed[40];
        memcpy(mixed, x, sizeof(int32_t) * 30);
        memcpy(mixed + 30, y + 30, sizeof(int32_t) * 10);
        kvattn_kv_pool_get_stats(p, &s);
        CHECK(s.copies == 2 && holds_tokens(a, cfg, mixed, 40) && holds_tokens(b, cfg, y, 150),
              "rewound write copies: %llu copies", (unsigned long long)s.copies);
        kvattn_cache_free(a), kvattn_cache_free(b);
        kvattn_kv_pool_get_stats(p, &s);
        CHECK(s.used == 0 && s.free == 8, "all blocks back: used %d free %d", s.used, s.free);
        kvattn_kv_pool_free(p);
    }
}

/* A published block rewritten after a rewind is withdrawn first: a later
 * prompt must never find stale rows under the old tokens. */
static void test_rewrite_unpublishes(void) {
    kvattn_layer_config cfg = test_gqa_config(64, 4, 2, 16);
    kvattn_kv_pool *p = NULL;
    CHECK_OK(kvattn_kv_pool_create(&cfg, 2, KVATTN_TYPE_F32, KVATTN_TYPE_F32, 64, 4, &p));
    if (!p) return;
    int32_t x[64], y[64];
    for (int i = 0; i < 64; i++) x[i] = y[i] = i;
    for (int i = 32; i < 64; i++) y[i] = 500 + i;
    kvattn_cache *a = NULL, *b = NULL;
    CHECK_OK(kvattn_cache_create_paged(p, 64, &a));
    CHECK_OK(write_tokens(a, &cfg, x, 0, 64));
    CHECK_OK(kvattn_cache_publish_prefix(a, x, 64));
    CHECK_OK(kvattn_cache_truncate(a, 32));
    CHECK_OK(write_tokens(a, &cfg, y, 32, 64));
    int reused = -1;
    CHECK_OK(kvattn_cache_create_paged(p, 64, &b));
    CHECK_OK(kvattn_cache_reuse_prefix(b, x, 64, &reused));
    CHECK(reused == 0, "the rewritten block is still found under its old tokens (%d reused)", reused);
    CHECK(kvattn_cache_publish_prefix(a, y, 65) == KVATTN_ERR_INVALID_ARG, "publishing past the length");
    CHECK_OK(kvattn_cache_publish_prefix(a, y, 64));
    CHECK_OK(kvattn_cache_reuse_prefix(b, y, 64, &reused));
    CHECK(reused == 64 && holds_tokens(b, &cfg, y, 64), "the new tokens are found: %d", reused);
    CHECK(kvattn_cache_reuse_prefix(b, y, 64, &reused) == KVATTN_ERR_INVALID_ARG, "reuse into a non-empty cache");
    kvattn_cache_free(a), kvattn_cache_free(b);
    kvattn_kv_pool_free(p);
}

static void test_isa(const char *isa) { test_attention_through_blocks(isa); }

int main(void) {
    test_pool_size();
    test_pool_errors();
    test_shuffle();
    test_prefix_sharing();
    test_lru_eviction();
    test_copy_on_write();
    test_rewrite_unpublishes();
    test_each_isa(test_isa);
    return test_finish("test_kv_pool");
}
