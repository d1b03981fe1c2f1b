/* Multi-head, grouped-query and multi-query attention: one algorithm.
 * Query head h reads KV head h / (n_heads / n_kv_heads). */
#include "attn_core.h"
#include "attn_layer.h"
#include "kernels/ops.h"
#include "rope.h"

#include <stdlib.h>

kvattn_status kv_gqa_forward(const kvattn_layer_config *cfg, const kvattn_layer_weights *w, kvattn_cache *cache,
                             int layer, int pos, int T, const float *x, float *out) {
    const int D = cfg->d_model, H = cfg->n_heads, n_kv = cfg->n_kv_heads, hd = cfg->head_dim;
    const int n_rot = cfg->rope.n_rot ? cfg->rope.n_rot : hd;
    const size_t q_dim = (size_t)H * hd, kv_dim = (size_t)n_kv * hd;

    kv_arena a;
    size_t sizes[] = {(size_t)T * q_dim, (size_t)T * kv_dim,    (size_t)T * kv_dim,
                      (size_t)T * q_dim, (size_t)n_rot / 2 + 1, 0};
    if (!kv_arena_init(&a, sizes)) return kv_fail(KVATTN_ERR_NOMEM, "attention: out of memory for %d tokens", T);
    float *q = kv_arena_take(&a, sizes[0]);   /* [T][H][hd]     */
    float *k = kv_arena_take(&a, sizes[1]);   /* [T][n_kv][hd]  */
    float *v = kv_arena_take(&a, sizes[2]);   /* [T][n_kv][hd]  */
    float *att = kv_arena_take(&a, sizes[3]); /* [T][H][hd]     */
    float *freqs = kv_arena_take(&a, sizes[4]);

    kv_matmul(q, x, w->wq, T, (int)q_dim, D);
    kv_matmul(k, x, w->wk, T, (int)kv_dim, D);
    kv_matmul(v, x, w->wv, T, (int)kv_dim, D);

    kv_rope_freqs(&cfg->rope, n_rot, freqs);
    for (int t = 0; t < T; t++) {
        for (int h = 0; h < H; h++)
            kv_rope_apply(q + ((size_t)t * H + h) * hd, n_rot, freqs, pos + t, cfg->rope.pairing);
        for (int h = 0; h < n_kv; h++)
            kv_rope_apply(k + ((size_t)t * n_kv + h) * hd, n_rot, freqs, pos + t, cfg->rope.pairing);
    }

    kvattn_status st = kvattn_cache_write(cache, layer, pos, T, k, v);
    if (st == KVATTN_OK) {
        kv_rows kr, vr;
        kv_cache_rows(cache, layer, &kr, &vr);
        if (kv_attend(q, T, H, n_kv, &kr, &vr, pos, kvattn_config_softmax_scale(cfg), att) != 0)
            st = kv_fail(KVATTN_ERR_NOMEM, "attention: out of memory for scratch");
        else kv_matmul(out, att, w->wo, T, D, (int)q_dim);
    }
    kv_arena_free(&a);
    return st;
}
