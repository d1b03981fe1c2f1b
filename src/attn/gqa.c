/* Multi-head, grouped-query and multi-query attention: one algorithm.
 * Query head h reads KV head h / (n_heads / n_kv_heads). */
#include "attn_core.h"
#include "attn_layer.h"
#include "kernels/ops.h"
#include "rope.h"

#include <stdlib.h>

/* y[T][n] += b[n] */
static void add_bias(float *y, const float *b, int T, size_t n) {
    if (!b) return;
    for (int t = 0; t < T; t++)
        for (size_t i = 0; i < n; i++) y[(size_t)t * n + i] += b[i];
}

/* RMSNorm of each of the `rows` head vectors y[rows][hd], in place. */
static void head_norm(float *y, const float *w, size_t rows, int hd, float eps) {
    if (!w) return;
    for (size_t r = 0; r < rows; r++) kv_rmsnorm(y + r * hd, y + r * hd, w, hd, eps);
}

kvattn_status kv_gqa_forward(const kvattn_layer_config *cfg, const kvattn_layer_weights *w, const kv_seq_rows *r,
                             int layer, int T, const float *x, float *out) {
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

    kv_project(q, x, w->wq, r, (int)q_dim, D);
    kv_project(k, x, w->wk, r, (int)kv_dim, D);
    kv_project(v, x, w->wv, r, (int)kv_dim, D);
    add_bias(q, w->bq, T, q_dim);
    add_bias(k, w->bk, T, kv_dim);
    add_bias(v, w->bv, T, kv_dim);
    const float eps = cfg->rms_eps > 0.0f ? cfg->rms_eps : 1e-6f;
    head_norm(q, w->q_head_norm, (size_t)T * H, hd, eps);
    head_norm(k, w->k_head_norm, (size_t)T * n_kv, hd, eps);

    kv_rope_freqs(&cfg->rope, n_rot, freqs);
    for (int i = 0, t = 0; i < r->n_seqs; i++)
        for (int j = 0; j < kv_seq_len(r, i); j++, t++) {
            const int p = r->pos[i] + j;
            for (int h = 0; h < H; h++) kv_rope_apply(q + ((size_t)t * H + h) * hd, n_rot, freqs, p, cfg->rope.pairing);
            for (int h = 0; h < n_kv; h++)
                kv_rope_apply(k + ((size_t)t * n_kv + h) * hd, n_rot, freqs, p, cfg->rope.pairing);
        }

    /* each sequence's rows into its own cache, then attending over it */
    kvattn_status st = KVATTN_OK;
    for (int i = 0, t0 = 0; i < r->n_seqs && st == KVATTN_OK; t0 += kv_seq_len(r, i), i++) {
        const int rows = kv_seq_len(r, i);
        const size_t r0 = (size_t)t0;
        st = kvattn_cache_write(r->caches[i], layer, r->pos[i], rows, k + r0 * kv_dim, v + r0 * kv_dim);
        if (st != KVATTN_OK) break;
        kv_rows kr, vr;
        kv_cache_rows(r->caches[i], layer, &kr, &vr);
        if (kv_attend(q + r0 * q_dim, rows, H, n_kv, &kr, &vr, r->pos[i], kvattn_config_softmax_scale(cfg),
                      att + r0 * q_dim) != 0)
            st = kv_fail(KVATTN_ERR_NOMEM, "attention: out of memory for scratch");
    }
    if (st == KVATTN_OK) kv_project(out, att, w->wo, r, D, (int)q_dim);
    kv_arena_free(&a);
    return st;
}
