/* A program built against an installed libkvattn: a GQA layer's cache is sized
 * by the one formula, created, written and read back. */
#include <kvattn.h>

#include <stdio.h>
#include <string.h>

int main(void) {
    kvattn_layer_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.kind = KVATTN_ATTN_GQA;
    cfg.d_model = 64, cfg.n_heads = 4, cfg.n_kv_heads = 2, cfg.head_dim = 16;
    cfg.rope.theta = 10000.0f;
    size_t bpt = kvattn_kv_bytes_per_token(&cfg, 3, KVATTN_TYPE_F16);
    kvattn_cache *c = NULL;
    if (kvattn_cache_create(&cfg, 3, 8, KVATTN_TYPE_F32, &c) != KVATTN_OK) {
        fprintf(stderr, "consumer: %s\n", kvattn_last_error());
        return 1;
    }
    float k[32], v[32], k2[32], v2[32];
    for (int i = 0; i < 32; i++) k[i] = (float)i, v[i] = -(float)i;
    int ok = kvattn_cache_write(c, 1, 0, 1, k, v) == KVATTN_OK && kvattn_cache_read(c, 1, 0, k2, v2) == KVATTN_OK &&
             !memcmp(k, k2, sizeof k) && !memcmp(v, v2, sizeof v);
    kvattn_cache_free(c);
    /* 3 layers · 2 KV heads · 2 (K, V) · 16 · 2 bytes */
    printf("kvattn %s: %zu bytes/token, round trip %s\n", KVATTN_VERSION, bpt, ok ? "ok" : "FAILED");
    return ok && bpt == 384 ? 0 : 1;
}
