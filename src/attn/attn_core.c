#include "attn_core.h"

#include "kernels/tile.h"
#include "kernels/vec.h"

#include "kernels/ops.h"

#include <math.h>
#include <stdlib.h>

#ifdef _OPENMP
#include <omp.h>
static int thread_index(void) { return omp_get_thread_num(); }
#else
static int thread_index(void) { return 0; }
#endif

/* Rows of the next tile prefetched per sub-block of this one. */
#define PREFETCH_ROWS 16

/* Scratch of one thread: scores [group][KV_TILE], K and V tiles as f32. */
static size_t scratch_floats(int group, const kv_rows *k, const kv_rows *v) {
    return (size_t)group * KV_TILE + (size_t)KV_TILE * k->dim + (size_t)KV_TILE * v->dim;
}

/* Whether V rows are the leading part of the K rows (MLA's latent cache). */
static int v_in_k(const kv_rows *k, const kv_rows *v) {
    return v->base == k->base && v->token_stride == k->token_stride && v->head_stride == k->head_stride &&
           v->type == k->type && v->dim <= k->dim;
}

/* Tile rows [j0, j0+nt) of head h as f32: a pointer into the cache when it
 * already is f32, else converted once into `buf`. *ld receives the row stride. */
static const float *tile_rows(const kv_rows *r, int h, int j0, int nt, int dim, float *buf, int *ld) {
    if (r->type == KVATTN_TYPE_F32 && r->token_stride % sizeof(float) == 0) {
        *ld = (int)(r->token_stride / sizeof(float));
        return (const float *)kv_rows_at(r, h, j0);
    }
    for (int j = 0; j < nt; j++) kv_row_load_fast(r->type, kv_rows_at(r, h, j0 + j), buf + (size_t)j * dim, dim);
    *ld = dim;
    return buf;
}

/* Online-softmax attention of `group` query heads (q rows at stride k->dim)
 * sharing KV head `kvh`, over context rows [j_begin, j_end). Leaves the
 * unnormalized state: acc[g][vd] = Σ_j e^(s_j - m_g) v_j, m[g], l[g] = Σ_j e^(s_j - m_g).
 * Each tile of KV_TILE rows is converted to f32 once and multiplied against
 * all the group's queries (FlashAttention's blocking, on a CPU). */
static void attend_range(const float *q, int group, int kvh, const kv_rows *k, const kv_rows *v, int j_begin,
                         int j_end, float scale, float *acc, float *m, float *l, float *scratch) {
    const int kd = k->dim, vd = v->dim, shared_v = v_in_k(k, v);
    float *s = scratch, *kbuf = s + (size_t)group * KV_TILE, *vbuf = kbuf + (size_t)KV_TILE * kd;
    for (int g = 0; g < group; g++) {
        m[g] = -INFINITY;
        l[g] = 0.0f;
        for (int i = 0; i < vd; i++) acc[(size_t)g * vd + i] = 0.0f;
    }
    /* Rows are read in place and widened in registers when few queries share them; with
     * many (MQA, absorbed MLA) a tile is widened once into f32 and reused by all. */
    const int direct = k->type != KVATTN_TYPE_F32 && group <= 4 && kd % 8 == 0 && vd % 8 == 0;
    const size_t k_bytes = kvattn_row_bytes(k->type, kd), v_bytes = kvattn_row_bytes(v->type, vd);
    for (int j0 = j_begin; j0 < j_end; j0 += KV_TILE) {
        int nt = j_end - j0 < KV_TILE ? j_end - j0 : KV_TILE, ldk = 0, ldv = 0;
        const float *kt = NULL;
        /* The next tile's rows are prefetched a few at a time between sub-blocks of this
         * tile's work: the row walks are strided, and a burst of prefetches would stall. */
        if (direct) {
            for (int sb = 0; sb < nt; sb += PREFETCH_ROWS) {
                int n = nt - sb < PREFETCH_ROWS ? nt - sb : PREFETCH_ROWS;
                for (int j = j0 + KV_TILE + sb; j < j0 + KV_TILE + sb + PREFETCH_ROWS && j < j_end; j++)
                    kv_prefetch(kv_rows_at(k, kvh, j), k_bytes);
                kv_tile_scores_h(q, kd, group, k->type, kv_rows_at(k, kvh, j0 + sb), k->token_stride, n, kd, s + sb, KV_TILE);
            }
        } else {
            for (int j = j0 + KV_TILE; j < j0 + 2 * KV_TILE && j < j_end; j++) kv_prefetch(kv_rows_at(k, kvh, j), k_bytes);
            kt = tile_rows(k, kvh, j0, nt, kd, kbuf, &ldk);
            kv_tile_scores(q, kd, group, kt, ldk, nt, kd, s, KV_TILE);
        }
        for (int g = 0; g < group; g++) {
            float *sg = s + (size_t)g * KV_TILE, mt = kv_scale_max(sg, scale, m[g], nt);
            float corr = expf(m[g] - mt); /* 0 on the first tile */
            if (corr != 1.0f) {
                float *ag = acc + (size_t)g * vd;
                for (int i = 0; i < vd; i++) ag[i] *= corr;
            }
            l[g] = l[g] * corr + kv_exp_shift_sum(sg, mt, sg, nt);
            m[g] = mt;
        }
        if (direct) {
            for (int sb = 0; sb < nt; sb += PREFETCH_ROWS) {
                int n = nt - sb < PREFETCH_ROWS ? nt - sb : PREFETCH_ROWS;
                for (int j = j0 + KV_TILE + sb; !shared_v && j < j0 + KV_TILE + sb + PREFETCH_ROWS && j < j_end; j++)
                    kv_prefetch(kv_rows_at(v, kvh, j), v_bytes);
                kv_tile_accum_h(s + sb, KV_TILE, group, v->type, kv_rows_at(v, kvh, j0 + sb), v->token_stride, n, vd, acc, vd);
            }
            continue;
        }
        for (int j = j0 + KV_TILE; !shared_v && j < j0 + 2 * KV_TILE && j < j_end; j++)
            kv_prefetch(kv_rows_at(v, kvh, j), v_bytes);
        const float *vt = shared_v ? kt : tile_rows(v, kvh, j0, nt, vd, vbuf, &ldv);
        if (shared_v) ldv = ldk;
        kv_tile_accum(s, KV_TILE, group, vt, ldv, nt, vd, acc, vd);
    }
}

/* Splits of the context per (token, KV head) item: enough to give every
 * thread work when items are fewer than threads (decode with few KV heads,
 * absorbed MLA), never a split shorter than a tile. */
static int context_splits(int items, int nthreads, int n_ctx) {
    if (items >= nthreads) return 1;
    int splits = (nthreads + items - 1) / items, by_len = n_ctx / KV_TILE;
    if (splits > by_len) splits = by_len;
    return splits < 1 ? 1 : splits;
}

int kv_attend(const float *q, int T, int n_heads, int n_kv_heads, const kv_rows *k, const kv_rows *v, int pos,
              float scale, float *out) {
    const int group = n_heads / n_kv_heads, items = T * n_kv_heads, vd = v->dim, nthreads = kv_threads();
    const int splits = context_splits(items, nthreads, pos + 1);
    const size_t state = (size_t)group * ((size_t)vd + 2); /* acc, m, l of one split */
    const size_t per_thread = scratch_floats(group, k, v);
    const size_t partials = splits > 1 ? state * (size_t)items * splits : 2 * (size_t)group * nthreads;
    float *scratch = malloc(sizeof(float) * (per_thread * (size_t)nthreads + partials));
    if (!scratch) return -1;
    float *partial = scratch + per_thread * (size_t)nthreads;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads) if (items * splits > 1)
    for (int u = 0; u < items * splits; u++) {
        int it = u / splits, sp = u % splits, t = it / n_kv_heads, kvh = it % n_kv_heads, n_ctx = pos + t + 1;
        size_t h0 = (size_t)t * n_heads + (size_t)kvh * group;
        float *s = scratch + per_thread * (size_t)thread_index();
        if (splits == 1) { /* accumulate straight into the output */
            float *ml = partial + 2 * (size_t)group * thread_index(), *acc = out + h0 * vd;
            attend_range(q + h0 * k->dim, group, kvh, k, v, 0, n_ctx, scale, acc, ml, ml + group, s);
            for (int g = 0; g < group; g++)
                for (int i = 0; i < vd; i++) acc[(size_t)g * vd + i] /= ml[group + g];
        } else {
            int chunk = (n_ctx / splits + KV_TILE - 1) / KV_TILE * KV_TILE; /* tile-aligned */
            int jb = sp * chunk < n_ctx ? sp * chunk : n_ctx;
            int je = sp == splits - 1 || jb + chunk > n_ctx ? n_ctx : jb + chunk;
            float *acc = partial + state * (size_t)u, *m = acc + (size_t)group * vd;
            attend_range(q + h0 * k->dim, group, kvh, k, v, jb, je, scale, acc, m, m + group, s);
        }
    }
    if (splits > 1) /* merge the splits of each item by log-sum-exp */
        for (int it = 0; it < items; it++) {
            int t = it / n_kv_heads, kvh = it % n_kv_heads;
            float *o = out + ((size_t)t * n_heads + (size_t)kvh * group) * vd;
            for (int g = 0; g < group; g++) {
                float mmax = -INFINITY, lsum = 0.0f;
                for (int sp = 0; sp < splits; sp++)
                    mmax = fmaxf(mmax, partial[state * ((size_t)it * splits + sp) + (size_t)group * vd + g]);
                for (int i = 0; i < vd; i++) o[(size_t)g * vd + i] = 0.0f;
                for (int sp = 0; sp < splits; sp++) {
                    const float *acc = partial + state * ((size_t)it * splits + sp), *m = acc + (size_t)group * vd;
                    if (m[g] == -INFINITY) continue; /* an empty split */
                    float w = expf(m[g] - mmax);
                    lsum += m[group + g] * w;
                    for (int i = 0; i < vd; i++) o[(size_t)g * vd + i] += w * acc[(size_t)g * vd + i];
                }
                for (int i = 0; i < vd; i++) o[(size_t)g * vd + i] /= lsum;
            }
        }
    free(scratch);
    return 0;
}

void kv_attend_ref(const float *q, int T, int n_heads, int n_kv_heads, const kv_rows *k, const kv_rows *v, int pos,
                   float scale, float *out) {
    int group = n_heads / n_kv_heads, kd = k->dim, vd = v->dim;
    for (int t = 0; t < T; t++)
        for (int h = 0; h < n_heads; h++) {
            const float *qh = q + ((size_t)t * n_heads + h) * kd;
            float *oh = out + ((size_t)t * n_heads + h) * vd;
            float m = -INFINITY, l = 0.0f;
            for (int i = 0; i < vd; i++) oh[i] = 0.0f;
            for (int j = 0; j <= pos + t; j++) {
                float sj = kv_row_dot_ref(k->type, kv_rows_at(k, h / group, j), qh, kd) * scale;
                float mn = fmaxf(m, sj), corr = expf(m - mn), p = expf(sj - mn);
                for (int i = 0; i < vd; i++) oh[i] *= corr;
                kv_row_axpy_ref(v->type, kv_rows_at(v, h / group, j), p, oh, vd);
                l = l * corr + p;
                m = mn;
            }
            for (int i = 0; i < vd; i++) oh[i] /= l;
        }
}
