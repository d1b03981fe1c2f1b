#include "attn_core.h"

#include "kernels/kernels.h"
#include "kernels/tile.h"
#include "kernels/vec.h"

#include "kernels/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
static int thread_index(void) { return omp_get_thread_num(); }
#else
static int thread_index(void) { return 0; }
#endif

/* How far ahead rows read in place are prefetched, in bytes of the same
 * stream, and in rows for tiles widened into f32 (two tiles). The distance
 * matters little; that the prefetches are spread over the work does (see
 * kv_prefetch_spans). */
#define PREFETCH_BYTES 16384
#define PREFETCH_AHEAD (2 * KV_TILE)

/* KV heads one work unit walks in lockstep, a tile of each in turn: each head's
 * K and V are streams the hardware prefetchers follow, and a core reading more
 * streams at once gets more of the bandwidth (bench.c). */
#define MAX_LANES 2

/* Scratch of one thread, every part a multiple of 16 floats so that each
 * stays 64-byte aligned. */
typedef struct {
    float *s;           /* scores [group][KV_TILE] */
    float *kbuf, *vbuf; /* a K and a V tile widened into f32 [KV_TILE][dim] */
    float *qp;          /* blocks of 16 queries: each lane's queries packed [MAX_LANES][group * k->dim] */
    float *st;          /* blocks of 16 queries: one block's scores, then weights [KV_TILE][16] */
} tile_scratch;

static size_t pad16(size_t n) { return (n + 15) & ~(size_t)15; }

static size_t scratch_floats(int group, const kv_rows *k, const kv_rows *v) {
    return pad16((size_t)group * KV_TILE) + pad16((size_t)KV_TILE * k->dim) + pad16((size_t)KV_TILE * v->dim) +
           MAX_LANES * pad16((size_t)group * k->dim) + (size_t)KV_TILE * KV_Q16;
}

static tile_scratch carve_scratch(float *base, int group, const kv_rows *k, const kv_rows *v) {
    tile_scratch ts;
    ts.s = base;
    ts.kbuf = ts.s + pad16((size_t)group * KV_TILE);
    ts.vbuf = ts.kbuf + pad16((size_t)KV_TILE * k->dim);
    ts.qp = ts.vbuf + pad16((size_t)KV_TILE * v->dim);
    ts.st = ts.qp + MAX_LANES * pad16((size_t)group * k->dim);
    return ts;
}

/* Whether V rows are the leading part of the K rows (MLA's latent cache). */
static int v_in_k(const kv_rows *k, const kv_rows *v) {
    return v->base == k->base && v->token_stride == k->token_stride && v->head_stride == k->head_stride &&
           v->type == k->type && v->dim <= k->dim;
}

/* Prefetches rows [j, j + n) of head h (clipped to j_end) into L2. */
static void prefetch_rows(const kv_rows *r, int h, int j, int n, int j_end, size_t row_bytes) {
    for (int e = j + n < j_end ? j + n : j_end; j < e; j++) kv_prefetch(kv_rows_at(r, h, j), row_bytes);
}

/* Tile rows [j0, j0+nt) of head h as f32: a pointer into the cache when it
 * already is f32, else converted once into `buf`. *ld receives the row stride.
 * The rows `ahead` further on are prefetched one per row converted. */
static const float *tile_rows(const kv_rows *r, int h, int j0, int nt, int dim, float *buf, int *ld, int ahead,
                              int j_end) {
    const size_t row_bytes = kvattn_row_bytes(r->type, dim);
    if (r->type == KVATTN_TYPE_F32 && r->token_stride % sizeof(float) == 0) {
        prefetch_rows(r, h, j0 + ahead, nt, j_end, row_bytes);
        *ld = (int)(r->token_stride / sizeof(float));
        return (const float *)kv_rows_at(r, h, j0);
    }
    for (int j = 0; j < nt; j++) {
        if (j0 + ahead + j < j_end) kv_prefetch(kv_rows_at(r, h, j0 + ahead + j), row_bytes);
        kv_row_load(r->type, kv_rows_at(r, h, j0 + j), buf + (size_t)j * dim, dim);
    }
    *ld = dim;
    return buf;
}

/* The online-softmax state of `group` query heads (q rows at stride k->dim)
 * sharing KV head `kvh`: acc[g][vd] = Σ_j e^(s_j - m_g) v_j, m[g], and
 * l[g] = Σ_j e^(s_j - m_g) over the rows seen so far (unnormalized). */
typedef struct {
    const float *q;
    int kvh;
    float *acc, *m, *l;
    float *qp; /* q packed for kv_q16_scores: [group/16][k->dim][16] */
} attn_lane;

/* A query's outputs accumulated so far, times the online softmax's correction
 * e^(m_old - m_new) (skipped when the running max did not move). */
static void rescale_outputs(float *acc, int vd, float corr) {
    if (corr != 1.0f)
        for (int i = 0; i < vd; i++) acc[i] *= corr;
}

static void lane_start(attn_lane *ln, int group, int vd) {
    for (int g = 0; g < group; g++) {
        ln->m[g] = -INFINITY;
        ln->l[g] = 0.0f;
        for (int i = 0; i < vd; i++) ln->acc[(size_t)g * vd + i] = 0.0f;
    }
}

/* How a range's tiles are read, the same for all of them. In 512-bit builds,
 * queries in blocks of 16 (q16: MQA, absorbed MLA) read the rows in place, one
 * query per lane (attend_tile_q16); otherwise rows are read in place and
 * widened in registers (direct) when few queries share them, or each tile is
 * widened once into f32 and reused by all. */
typedef struct {
    int direct, q16, shared_v;
    int ahead; /* rows read in place: prefetch distance in rows */
} tile_reads;

static tile_reads tile_reads_of(int group, const kv_rows *k, const kv_rows *v) {
    tile_reads tr = {0};
    tr.q16 = k->type == v->type && kv_q16_ok(k->type, group, k->dim, v->dim);
    tr.direct = !tr.q16 && k->type != KVATTN_TYPE_F32 && group <= 4 && k->dim % 8 == 0 && v->dim % 8 == 0;
    tr.shared_v = v_in_k(k, v);
    const size_t k_bytes = kvattn_row_bytes(k->type, k->dim), v_bytes = kvattn_row_bytes(v->type, v->dim);
    const size_t row = k_bytes > v_bytes ? k_bytes : v_bytes;
    tr.ahead = row >= PREFETCH_BYTES ? 1 : (int)(PREFETCH_BYTES / row);
    if (k->blocks) { /* whole tiles ahead, so that a tile's prefetch stays in one block */
        const int tiles = (tr.ahead + KV_TILE / 2) / KV_TILE;
        tr.ahead = (tiles > 1 ? tiles : 1) * KV_TILE;
    }
    return tr;
}

/* Prefetch spans over rows [first, first + n) (clipped to j_end) of head
 * heads[i] of each stream rows[i]. A stream whose rows are not contiguous is
 * left to the hardware prefetchers (the cache's rows always are); a paged
 * stream's span ends where its block does. */
static kv_prefetch_spans spans_of(const kv_rows *const *rows, const int *heads, int n_streams, int first, int n,
                                  int j_end) {
    if (first >= j_end) return kv_prefetch_none;
    if (n > j_end - first) n = j_end - first;
    const void *start[KV_PREFETCH_STREAMS];
    size_t bytes[KV_PREFETCH_STREAMS];
    int used = 0;
    for (int i = 0; i < n_streams && used < KV_PREFETCH_STREAMS; i++) {
        const size_t row = kvattn_row_bytes(rows[i]->type, rows[i]->dim);
        if (rows[i]->token_stride != row) continue;
        start[used] = kv_rows_at(rows[i], heads[i], first);
        bytes[used++] = (size_t)kv_rows_run(rows[i], first, n) * row;
    }
    return kv_prefetch_spans_make(start, bytes, used);
}

/* While rows [j, j + n) of head h are read: the rows tr->ahead further on in
 * `a` (and in `b`, if not NULL), to prefetch alongside them. */
static kv_prefetch_spans rows_ahead(const tile_reads *tr, const kv_rows *a, const kv_rows *b, int h, int j, int n,
                                    int j_end) {
    const kv_rows *rows[2] = {a, b};
    const int heads[2] = {h, h};
    return spans_of(rows, heads, b ? 2 : 1, j + tr->ahead, n, j_end);
}

/* Rows of a tile that a q8_0 cache widens into f32 at a time for the 16-query
 * blocks: small enough for L1 (32 KiB, or 16 rows). */
#define Q16_PART_BYTES (32 * 1024)

static int q16_part_rows(const kv_rows *k, const kv_rows *v, int shared_v) {
    const size_t row = sizeof(float) * ((size_t)k->dim + (shared_v ? 0 : (size_t)v->dim));
    const int rows = (int)(Q16_PART_BYTES / row) & ~15;
    return rows < 16 ? 16 : rows > KV_TILE ? KV_TILE : rows;
}

/* n rows of K and V as a 16-query block reads them: stored as `type`, row j
 * of K at k + j·k_stride bytes (k_dim elements), of V likewise. */
typedef struct {
    kvattn_type type;
    const unsigned char *k, *v;
    size_t k_stride, v_stride;
    int k_dim, v_dim, n;
} q16_rows;

/* The blocks of 16 queries over the rows r: per block, scores, softmax and
 * accumulation. The first block's scores take pf_k, its accumulation pf_v.
 * Always inlined: out of line, GCC inlines less of the tile loop around it,
 * and the 4-query paths, which never call it, run more instructions. */
static inline __attribute__((always_inline)) void q16_blocks(const attn_lane *ln, int group, const q16_rows *r,
                                                             float scale, float *st, const kv_prefetch_spans *pf_k,
                                                             const kv_prefetch_spans *pf_v) {
    const int kd = r->k_dim, vd = r->v_dim;
    unsigned taken_k = 0, taken_v = 0; /* later blocks go on with the takes: none left */
    for (int b = 0; b < group; b += KV_Q16) {
        float corr[KV_Q16], *acc = ln->acc + (size_t)b * vd;
        kv_q16_scores(ln->qp + (size_t)b * kd, r->type, r->k, r->k_stride, r->n, kd, st, pf_k, &taken_k);
        kv_q16_softmax(st, r->n, scale, ln->m + b, ln->l + b, corr);
        for (int i = 0; i < KV_Q16; i++) rescale_outputs(acc + (size_t)i * vd, vd, corr[i]);
        kv_q16_accum(st, r->type, r->v, r->v_stride, r->n, vd, acc, vd, pf_v, &taken_v);
    }
}

/* attend_tile for queries in blocks of 16, one query per lane (kv_q16_*). f16
 * and bf16 rows are read in place, the whole tile at once: the scores prefetch
 * the next tile's K rows, the accumulation its V rows (MLA: V is in the K
 * rows). q8_0 rows are widened into f32 a part at a time (kv_q16_widen; MLA:
 * V is the copy's leading columns), and the part's products prefetch the same
 * part of the next tile. */
static void attend_tile_q16(const attn_lane *ln, int group, const kv_rows *k, const kv_rows *v, const tile_reads *tr,
                            int j0, int nt, int j_end, float scale, const tile_scratch *ts) {
    const int kd = k->dim, vd = v->dim, kvh = ln->kvh;
    const kv_rows *rows[2] = {k, v};
    const int heads[2] = {kvh, kvh};
    if (k->type != KVATTN_TYPE_Q8_0) {
        const kv_prefetch_spans pf_k = spans_of(rows, heads, 1, j0 + KV_TILE, KV_TILE, j_end);
        const kv_prefetch_spans pf_v =
            tr->shared_v ? kv_prefetch_none : spans_of(rows + 1, heads + 1, 1, j0 + KV_TILE, KV_TILE, j_end);
        const q16_rows r = {
            k->type, kv_rows_at(k, kvh, j0), kv_rows_at(v, kvh, j0), k->token_stride, v->token_stride, kd, vd, nt};
        q16_blocks(ln, group, &r, scale, ts->st, &pf_k, &pf_v);
        return;
    }
    const int part = q16_part_rows(k, v, tr->shared_v);
    const float *vbuf = tr->shared_v ? ts->kbuf : ts->vbuf;
    const size_t vstride = sizeof(float) * (size_t)(tr->shared_v ? kd : vd);
    for (int p0 = 0; p0 < nt; p0 += part) {
        const int j = j0 + p0, n = nt - p0 < part ? nt - p0 : part;
        kv_q16_widen(k->type, kv_rows_at(k, kvh, j), k->token_stride, n, kd, ts->kbuf);
        if (!tr->shared_v) kv_q16_widen(v->type, kv_rows_at(v, kvh, j), v->token_stride, n, vd, ts->vbuf);
        const kv_prefetch_spans pf = spans_of(rows, heads, tr->shared_v ? 1 : 2, j + KV_TILE, part, j_end);
        const q16_rows r = {KVATTN_TYPE_F32,
                            (const unsigned char *)ts->kbuf,
                            (const unsigned char *)vbuf,
                            sizeof(float) * (size_t)kd,
                            vstride,
                            kd,
                            vd,
                            n};
        q16_blocks(ln, group, &r, scale, ts->st, &pf, &kv_prefetch_none);
    }
}

/* One tile, rows [j0, j0+nt), into a lane's state: S = Q·Kᵀ against all the
 * group's queries, the online-softmax update, O += P·V (FlashAttention's
 * blocking, on a CPU). */
static void attend_tile(const attn_lane *ln, int group, const kv_rows *k, const kv_rows *v, const tile_reads *tr,
                        int j0, int nt, int j_end, float scale, const tile_scratch *ts,
                        const kv_prefetch_spans *unit_pf) {
    const int kd = k->dim, vd = v->dim, kvh = ln->kvh, direct = tr->direct, shared_v = tr->shared_v;
    float *s = ts->s;
    const float *kt = NULL;
    int ldk = 0, ldv = 0;
    if (tr->q16) {
        attend_tile_q16(ln, group, k, v, tr, j0, nt, j_end, scale, ts);
        return;
    }
    if (direct) {
        const kv_prefetch_spans pf = rows_ahead(tr, k, NULL, kvh, j0, nt, j_end);
        kv_tile_scores(ln->q, kd, group, k->type, kv_rows_at(k, kvh, j0), k->token_stride, nt, kd, s, KV_TILE,
                       unit_pf ? &unit_pf[0] : &pf);
    } else {
        kt = tile_rows(k, kvh, j0, nt, kd, ts->kbuf, &ldk, PREFETCH_AHEAD, j_end);
        kv_tile_scores_f32(ln->q, kd, group, kt, ldk, nt, kd, s, KV_TILE);
    }
    for (int g = 0; g < group; g++) {
        float *sg = s + (size_t)g * KV_TILE, mt = kv_scale_max(sg, scale, ln->m[g], nt);
        float corr = expf(ln->m[g] - mt); /* 0 on the first tile */
        rescale_outputs(ln->acc + (size_t)g * vd, vd, corr);
        ln->l[g] = ln->l[g] * corr + kv_exp_shift_sum(sg, mt, sg, nt);
        ln->m[g] = mt;
    }
    if (direct) {
        const kv_prefetch_spans pf = shared_v ? kv_prefetch_none : rows_ahead(tr, v, NULL, kvh, j0, nt, j_end);
        kv_tile_accum(s, KV_TILE, group, v->type, kv_rows_at(v, kvh, j0), v->token_stride, nt, vd, ln->acc, vd,
                      unit_pf ? &unit_pf[1] : &pf);
        return;
    }
    const float *vt = shared_v ? kt : tile_rows(v, kvh, j0, nt, vd, ts->vbuf, &ldv, PREFETCH_AHEAD, j_end);
    if (shared_v) ldv = ldk;
    kv_tile_accum_f32(s, KV_TILE, group, vt, ldv, nt, vd, ln->acc, vd);
}

/* A unit reading rows in place walks 2 streams per lane (its KV head's K and
 * V rows) one phase at a time: a lane's scores (phase 2i), then its
 * accumulation (2i + 1). Each phase prefetches its share of the next tile of
 * every stream, alongside its own rows, so all the unit's streams are in
 * flight a line at a time, as the fastest reads of this machine are (bench.c). */
_Static_assert(2 * MAX_LANES <= KV_PREFETCH_STREAMS, "a prefetch stream for each lane's K and V");

static kv_prefetch_spans unit_prefetch(const attn_lane *lanes, int n_lanes, const kv_rows *k, const kv_rows *v, int j0,
                                       int phase, int j_end) {
    /* a phase reads KV_TILE rows and prefetches `share` rows of each stream */
    const int share = KV_TILE / (2 * n_lanes);
    const kv_rows *rows[2 * MAX_LANES];
    int heads[2 * MAX_LANES];
    for (int l = 0; l < n_lanes; l++) {
        rows[2 * l] = k, rows[2 * l + 1] = v;
        heads[2 * l] = heads[2 * l + 1] = lanes[l].kvh;
    }
    return spans_of(rows, heads, 2 * n_lanes, j0 + KV_TILE + phase * share, share, j_end);
}

/* Context rows [j_begin, j_end) into each lane's state, a tile of each lane in turn. */
static void attend_range(attn_lane *lanes, int n_lanes, int group, const kv_rows *k, const kv_rows *v, int j_begin,
                         int j_end, float scale, float *scratch) {
    const tile_reads tr = tile_reads_of(group, k, v);
    const tile_scratch ts = carve_scratch(scratch, group, k, v);
    for (int i = 0; i < n_lanes; i++) {
        lane_start(&lanes[i], group, v->dim);
        if (tr.q16) {
            lanes[i].qp = ts.qp + (size_t)i * pad16((size_t)group * k->dim);
            for (int b = 0; b < group; b += KV_Q16)
                kv_q16_pack(lanes[i].q + (size_t)b * k->dim, k->dim, k->dim, lanes[i].qp + (size_t)b * k->dim);
        }
    }
    const int unit_pf = tr.direct && !tr.shared_v;
    for (int j0 = j_begin; j0 < j_end; j0 += KV_TILE) {
        int nt = j_end - j0 < KV_TILE ? j_end - j0 : KV_TILE;
        for (int i = 0; i < n_lanes; i++) {
            kv_prefetch_spans pf[2];
            if (unit_pf)
                for (int ph = 0; ph < 2; ph++) pf[ph] = unit_prefetch(lanes, n_lanes, k, v, j0, 2 * i + ph, j_end);
            attend_tile(&lanes[i], group, k, v, &tr, j0, nt, j_end, scale, &ts, unit_pf ? pf : NULL);
        }
    }
}

/* Splits of the context per work unit when units are fewer than a few per
 * thread (decode with few KV heads: MQA, absorbed MLA, GQA-8 on 2 threads):
 * then a few units per thread, taken dynamically, so a thread slowed by the
 * machine does not hold up the step; never a split shorter than a tile. */
#define UNITS_PER_THREAD 4

static int context_splits(int units, int nthreads, int n_ctx) {
    if (units >= UNITS_PER_THREAD * nthreads) return 1;
    int splits = (UNITS_PER_THREAD * nthreads + units - 1) / units, by_len = n_ctx / KV_TILE;
    if (splits > by_len) splits = by_len;
    return splits < 1 ? 1 : splits;
}

int kv_attend(const float *q, int T, int n_heads, int n_kv_heads, const kv_rows *k, const kv_rows *v, int pos,
              float scale, float *out) {
    const int group = n_heads / n_kv_heads, items = T * n_kv_heads, vd = v->dim, nthreads = kv_threads();
    /* KV heads per unit: paired when that still leaves every thread a unit */
    const int lanes = n_kv_heads % MAX_LANES == 0 && items / MAX_LANES >= nthreads ? MAX_LANES : 1;
    /* too few units for the threads (few KV heads: MQA, MLA, GQA-8 on 2 threads): split the context */
    const int splits = context_splits(items / lanes, nthreads, pos + 1);
    const int units = items / lanes * splits;
    const size_t state = (size_t)group * ((size_t)vd + 2); /* acc, m, l of one split */
    const size_t per_thread = scratch_floats(group, k, v);
    const size_t ml = 2 * (size_t)group * MAX_LANES; /* m, l of each lane, per thread */
    const size_t partials = splits > 1 ? state * (size_t)items * splits : ml * nthreads;
    float *scratch = kv_thread_scratch(KV_SCRATCH_ATTN, per_thread * (size_t)nthreads + partials);
    if (!scratch) return -1;
    float *partial = scratch + per_thread * (size_t)nthreads;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads) if (units > 1)
    for (int u = 0; u < units; u++) {
        float *s = scratch + per_thread * (size_t)thread_index();
        const int first = u / splits * lanes, sp = u % splits;
        /* the lanes of a unit share the token t, so the context and its split */
        const int n_ctx = pos + first / n_kv_heads + 1;
        const int chunk = (n_ctx / splits + KV_TILE - 1) / KV_TILE * KV_TILE; /* tile-aligned */
        const int jb = sp * chunk < n_ctx ? sp * chunk : n_ctx;
        const int je = sp == splits - 1 || jb + chunk > n_ctx ? n_ctx : jb + chunk;
        attn_lane ln[MAX_LANES];
        for (int i = 0; i < lanes; i++) {
            int it = first + i, t = it / n_kv_heads, kvh = it % n_kv_heads;
            size_t h0 = (size_t)t * n_heads + (size_t)kvh * group;
            if (splits == 1) { /* accumulate straight into the output; m, l in this thread's slot */
                float *m = partial + ml * thread_index() + 2 * (size_t)group * i;
                ln[i] = (attn_lane){q + h0 * k->dim, kvh, out + h0 * vd, m, m + group, NULL};
            } else { /* into this split's partial state, merged below */
                float *acc = partial + state * ((size_t)it * splits + sp), *m = acc + (size_t)group * vd;
                ln[i] = (attn_lane){q + h0 * k->dim, kvh, acc, m, m + group, NULL};
            }
        }
        attend_range(ln, lanes, group, k, v, jb, je, scale, s);
        if (splits == 1)
            for (int i = 0; i < lanes; i++)
                for (int g = 0; g < group; g++)
                    for (int c = 0; c < vd; c++) ln[i].acc[(size_t)g * vd + c] /= ln[i].l[g];
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
