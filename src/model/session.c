/* The transformer forward pass, read top to bottom like llama2.c's run.c:
 * embed → for each block: RMSNorm, attention (with the KV cache), residual,
 * RMSNorm, SwiGLU FFN, residual → final RMSNorm → logits. Tokens run in
 * chunks of up to CHUNK at once (prefill), one at a time when decoding, and
 * several sessions' tokens can share one pass (continuous batching). */
#include "model.h"
#include "moe.h"

#include "attn/attn_layer.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "kernels/vec.h"
#include "kv/kv_cache.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Tokens per prefill chunk: enough for the GEMM's 64-token blocks to fill. */
#define CHUNK KVATTN_SESSION_CHUNK

struct kvattn_session {
    const kvattn_model *m;
    kvattn_cache *cache;
    kvattn_mla_mode mla_mode;
    int pos;
    /* paged: the tokens behind the cache, so its whole blocks can be
     * published for other sequences to reuse; -1 once unknown (random fill) */
    int32_t *tokens; /* [n_ctx] */
    int n_tokens;
    /* activations, [CHUNK][...] */
    float *x;   /* residual stream   [CHUNK][d_model] */
    float *xb;  /* normed input      [CHUNK][d_model] */
    float *xb2; /* block output      [CHUNK][d_model] */
    float *hb;  /* FFN gate          [CHUNK][ffn_width] */
    float *hb2; /* FFN up            [CHUNK][ffn_width] */
    /* MoE */
    float *router;         /* [CHUNK][n_experts] logits                    */
    int *sel;              /* [CHUNK][k] chosen experts                    */
    float *sel_w;          /* [CHUNK][k] their weights                     */
    float *route_scratch;  /* [2·n_experts]                           */
    int *rows;             /* [CHUNK] tokens routed to one expert          */
    float *xg, *yg;        /* [CHUNK][d_model] gathered inputs / outputs   */
    kv_attn_input_tap tap; /* sees each layer's attention input (convert) */
    void *tap_ctx;
};

void kv_session_set_attn_tap(kvattn_session *s, kv_attn_input_tap tap, void *ctx) {
    s->tap = tap;
    s->tap_ctx = ctx;
}

kvattn_status kvattn_session_create(const kvattn_model *m, int n_ctx, kvattn_type kv_type, kvattn_mla_mode mla_mode,
                                    kvattn_session **out) {
    return kvattn_session_create_kv(m, n_ctx, kv_type, kv_type, mla_mode, out);
}

/* A session around `cache` (taken over, freed on failure). */
static kvattn_status session_new(const kvattn_model *m, kvattn_cache *cache, kvattn_mla_mode mla_mode,
                                 kvattn_session **out) {
    kvattn_session *s = calloc(1, sizeof *s);
    if (!s) {
        kvattn_cache_free(cache);
        return kv_fail(KVATTN_ERR_NOMEM, "session: out of memory");
    }
    s->m = m;
    s->mla_mode = mla_mode;
    s->cache = cache;
    kvattn_status st = KVATTN_OK;
    const kvattn_model_desc *d = &m->desc;
    size_t D = (size_t)d->attn.d_model, E = (size_t)d->n_routed_experts, K = (size_t)d->n_active_experts;
    size_t F = (size_t)d->ffn_dim, shared = (size_t)d->n_shared_experts * (size_t)d->moe_ffn_dim;
    if (shared > F) F = shared;
    if ((size_t)d->moe_ffn_dim > F) F = (size_t)d->moe_ffn_dim;
    s->x = malloc(sizeof(float) * CHUNK * D);
    s->xb = malloc(sizeof(float) * CHUNK * D);
    s->xb2 = malloc(sizeof(float) * CHUNK * D);
    s->hb = malloc(sizeof(float) * CHUNK * (F ? F : 1));
    s->hb2 = malloc(sizeof(float) * CHUNK * (F ? F : 1));
    if (!s->x || !s->xb || !s->xb2 || !s->hb || !s->hb2) st = kv_fail(KVATTN_ERR_NOMEM, "session: out of memory");
    if (st == KVATTN_OK && E > 0) {
        s->router = malloc(sizeof(float) * CHUNK * E);
        s->sel = malloc(sizeof(int) * CHUNK * K);
        s->sel_w = malloc(sizeof(float) * CHUNK * K);
        s->route_scratch = malloc(sizeof(float) * 2 * E);
        s->rows = malloc(sizeof(int) * CHUNK);
        s->xg = malloc(sizeof(float) * CHUNK * D);
        s->yg = malloc(sizeof(float) * CHUNK * D);
        if (!s->router || !s->sel || !s->sel_w || !s->route_scratch || !s->rows || !s->xg || !s->yg)
            st = kv_fail(KVATTN_ERR_NOMEM, "session: out of memory");
    }
    if (st == KVATTN_OK && kvattn_cache_is_paged(cache) &&
        !(s->tokens = malloc(sizeof *s->tokens * (size_t)kvattn_cache_capacity(cache))))
        st = kv_fail(KVATTN_ERR_NOMEM, "session: out of memory for %d token ids", kvattn_cache_capacity(cache));
    if (st != KVATTN_OK) {
        kvattn_session_free(s);
        return st;
    }
    *out = s;
    return KVATTN_OK;
}

kvattn_status kvattn_session_create_kv(const kvattn_model *m, int n_ctx, kvattn_type k_type, kvattn_type v_type,
                                       kvattn_mla_mode mla_mode, kvattn_session **out) {
    if (!m || !out) return kv_fail(KVATTN_ERR_INVALID_ARG, "session: NULL argument");
    *out = NULL;
    if (n_ctx < 1) return kv_fail(KVATTN_ERR_INVALID_ARG, "session: context %d must be at least 1", n_ctx);
    kvattn_cache *cache = NULL;
    kvattn_status st = kvattn_cache_create_kv(&m->desc.attn, m->desc.n_layers, n_ctx, k_type, v_type, &cache);
    return st == KVATTN_OK ? session_new(m, cache, mla_mode, out) : st;
}

kvattn_status kvattn_session_create_paged(const kvattn_model *m, kvattn_kv_pool *pool, int n_ctx,
                                          kvattn_mla_mode mla_mode, kvattn_session **out) {
    if (!m || !pool || !out) return kv_fail(KVATTN_ERR_INVALID_ARG, "session: NULL argument");
    *out = NULL;
    if (n_ctx < 1) return kv_fail(KVATTN_ERR_INVALID_ARG, "session: context %d must be at least 1", n_ctx);
    kvattn_cache *cache = NULL;
    kvattn_status st = kvattn_cache_create_paged(pool, n_ctx, &cache);
    if (st == KVATTN_OK && kvattn_cache_n_layers(cache) != m->desc.n_layers) {
        st = kv_fail(KVATTN_ERR_CONFIG, "session: the KV pool has %d layers, the model %d",
                     kvattn_cache_n_layers(cache), m->desc.n_layers);
        kvattn_cache_free(cache);
    } else if (st == KVATTN_OK && (st = kv_cache_check_config(cache, &m->desc.attn)) != KVATTN_OK) {
        kvattn_cache_free(cache);
    }
    return st == KVATTN_OK ? session_new(m, cache, mla_mode, out) : st;
}

kvattn_status kvattn_session_reuse_prefix(kvattn_session *s, const int32_t *tokens, int n, int *reused) {
    if (reused) *reused = 0;
    if (!s || !reused || n < 0 || (n > 0 && !tokens))
        return kv_fail(KVATTN_ERR_INVALID_ARG, "session prefix reuse: NULL argument or n = %d", n);
    if (s->pos != 0)
        return kv_fail(KVATTN_ERR_INVALID_ARG, "session prefix reuse: the session is at position %d, not 0", s->pos);
    if (!s->tokens || n < 2) return KVATTN_OK;
    /* the last token stays to be run: its logits are what the caller wants */
    kvattn_status st = kvattn_cache_reuse_prefix(s->cache, tokens, n - 1, reused);
    if (st != KVATTN_OK) return st;
    memcpy(s->tokens, tokens, sizeof *tokens * (size_t)*reused);
    s->pos = s->n_tokens = *reused;
    return KVATTN_OK;
}

void kvattn_session_free(kvattn_session *s) {
    if (!s) return;
    kvattn_cache_free(s->cache);
    free(s->tokens);
    free(s->x), free(s->xb), free(s->xb2), free(s->hb), free(s->hb2);
    free(s->router), free(s->sel), free(s->sel_w), free(s->route_scratch), free(s->rows), free(s->xg), free(s->yg);
    free(s);
}

int kvattn_session_pos(const kvattn_session *s) { return s ? s->pos : 0; }
const kvattn_cache *kvattn_session_cache(const kvattn_session *s) { return s ? s->cache : NULL; }

kvattn_status kvattn_session_rewind(kvattn_session *s, int pos) {
    if (!s || pos < 0 || pos > s->pos)
        return kv_fail(KVATTN_ERR_INVALID_ARG, "session rewind: position %d is outside [0, %d]", pos, s ? s->pos : 0);
    kvattn_status st = kvattn_cache_truncate(s->cache, pos);
    if (st == KVATTN_OK) s->pos = pos;
    if (st == KVATTN_OK && s->n_tokens > pos) s->n_tokens = pos;
    return st;
}

static float silu(float x) { return x / (1.0f + expf(-x)); }

_Static_assert(KVATTN_DECODE_BATCH_MAX <= CHUNK, "a batched decode step fits the work buffers");

/* What one forward pass runs: T rows in all, from n_seqs sessions in order,
 * sequence i's len[i] next tokens (a prompt chunk of one session; a batched
 * step of decode tokens and prompt pieces), each sequence's rows with the
 * bits they get in a pass of their own. The pass works in the first
 * session's buffers. */
typedef struct {
    kvattn_session *s;
    int n_seqs, T;
    kvattn_cache *caches[CHUNK]; /* each sequence's cache, position and rows */
    int pos[CHUNK], len[CHUNK];
} forward_rows;

static kv_seq_rows rows_of(const forward_rows *f) {
    return (kv_seq_rows){.caches = f->caches, .pos = f->pos, .len = f->len, .n_seqs = f->n_seqs};
}

/* SwiGLU: out = W_down (silu(W_gate x) ⊙ W_up x).   x [T][D] → out [T][D], width F,
 * the T rows those of r */
static void swiglu(kvattn_session *s, const kv_seq_rows *r, kvattn_matrix gate, kvattn_matrix up, kvattn_matrix down,
                   int F, const float *x, float *out, int T) {
    const int D = s->m->desc.attn.d_model;
    kv_project(s->hb, x, gate, r, F, D);
    kv_project(s->hb2, x, up, r, F, D);
    for (size_t i = 0; i < (size_t)T * F; i++) s->hb[i] = silu(s->hb[i]) * s->hb2[i];
    kv_project(out, s->hb, down, r, D, F);
}

/* Mixture of experts: each token's k routed experts, weighted, plus the shared
 * experts. Tokens routed to the same expert run through it together, as one
 * prompt chunk (decode = 0) or as one decode batch (decode = 1).
 *   x [T][D] → out [T][D] */
static void ffn_moe(kvattn_session *s, const kv_layer *b, int decode, const float *x, float *out, int T) {
    const kvattn_model_desc *d = &s->m->desc;
    const int D = d->attn.d_model, E = d->n_routed_experts, K = d->n_active_experts, F = (int)d->moe_ffn_dim;
    const kv_seq_rows all = {.len = decode ? NULL : &T, .n_seqs = decode ? T : 1};
    kv_project(s->router, x, b->router, &all, E, D);
    for (int t = 0; t < T; t++)
        kv_moe_route(d, s->router + (size_t)t * E, b->router_bias, s->sel + (size_t)t * K, s->sel_w + (size_t)t * K,
                     s->route_scratch);
    if (d->n_shared_experts > 0) swiglu(s, &all, b->sh_gate, b->sh_up, b->sh_down, d->n_shared_experts * F, x, out, T);
    else memset(out, 0, sizeof(float) * (size_t)T * D);
    for (int e = 0; e < E; e++) {
        int n = 0;
        for (int t = 0; t < T; t++)
            for (int r = 0; r < K; r++)
                if (s->sel[t * K + r] == e) s->rows[n++] = t * K + r; /* token t, its r-th choice */
        if (!n) continue;
        for (int i = 0; i < n; i++) memcpy(s->xg + (size_t)i * D, x + (size_t)(s->rows[i] / K) * D, sizeof(float) * D);
        const kv_seq_rows routed = {.len = decode ? NULL : &n, .n_seqs = decode ? n : 1};
        swiglu(s, &routed, b->exp_gate[e], b->exp_up[e], b->exp_down[e], F, s->xg, s->yg, n);
        for (int i = 0; i < n; i++) {
            float w = s->sel_w[s->rows[i]], *dst = out + (size_t)(s->rows[i] / K) * D;
            const float *src = s->yg + (size_t)i * D;
            for (int j = 0; j < D; j++) dst[j] += w * src[j];
        }
    }
}

/* The experts of a pass by groups that keep each sequence's bits: each run of
 * one-token sequences as a decode batch, each longer piece as its own chunk.
 *   xb [T][D] → xb2 [T][D] */
static void ffn_moe_rows(const forward_rows *f, const kv_layer *b) {
    kvattn_session *s = f->s;
    const int D = s->m->desc.attn.d_model;
    const kv_seq_rows r = rows_of(f);
    for (int i = 0, t = 0, rows, decode; i < f->n_seqs; t += rows) {
        i += kv_seq_group(&r, i, &rows, &decode);
        ffn_moe(s, b, decode, s->xb + (size_t)t * D, s->xb2 + (size_t)t * D, rows);
    }
}

/* The pass's T rows through every block; logits of every row (all_logits, one
 * sequence) or of each sequence's last row. */
static kvattn_status forward(const forward_rows *f, const int32_t *tokens, float *logits, int all_logits) {
    kvattn_session *s = f->s;
    const kvattn_model *m = s->m;
    const int D = m->desc.attn.d_model, V = (int)m->desc.vocab_size, T = f->T;
    const kv_seq_rows rows = rows_of(f);
    for (int t = 0; t < T; t++) /* x[t] = embedding row of the token */
        kv_row_load(m->tok_embd.type, kv_matrix_row(m->tok_embd, tokens[t], D), s->x + (size_t)t * D, D);
    for (int l = 0; l < m->desc.n_layers; l++) {
        const kv_layer *b = &m->layers[l];
        for (int t = 0; t < T; t++)
            kv_rmsnorm(s->xb + (size_t)t * D, s->x + (size_t)t * D, b->attn_norm, D, m->norm_eps);
        if (s->tap && f->n_seqs == 1) s->tap(s->tap_ctx, l, T, s->xb);
        kvattn_status st = kvattn_attn_forward_seqs(&m->desc.attn, &b->attn, f->caches, f->pos, f->len, f->n_seqs, l,
                                                    s->xb, s->xb2, s->mla_mode);
        if (st != KVATTN_OK) return st;
        for (size_t i = 0; i < (size_t)T * D; i++) s->x[i] += s->xb2[i];
        for (int t = 0; t < T; t++)
            kv_rmsnorm(s->xb + (size_t)t * D, s->x + (size_t)t * D, b->ffn_norm, D, m->norm_eps);
        if (b->router.data) ffn_moe_rows(f, b);
        else swiglu(s, &rows, b->ffn_gate, b->ffn_up, b->ffn_down, (int)m->desc.ffn_dim, s->xb, s->xb2, T);
        for (size_t i = 0; i < (size_t)T * D; i++) s->x[i] += s->xb2[i];
    }
    if (logits) {
        if (all_logits && f->n_seqs == 1) {
            for (int t = 0; t < T; t++)
                kv_rmsnorm(s->xb + (size_t)t * D, s->x + (size_t)t * D, m->out_norm, D, m->norm_eps);
            kv_project(logits, s->xb, m->output, &rows, V, D);
        } else { /* each sequence's last row, as a decode batch of them */
            for (int i = 0, t = 0; i < f->n_seqs; i++) {
                t += f->len[i];
                kv_rmsnorm(s->xb + (size_t)i * D, s->x + (size_t)(t - 1) * D, m->out_norm, D, m->norm_eps);
            }
            const kv_seq_rows last = {.len = NULL, .n_seqs = f->n_seqs};
            kv_project(logits, s->xb, m->output, &last, V, D);
        }
    }
    return KVATTN_OK;
}

/* Paged: the n tokens just run join the session's known tokens, and its
 * whole blocks are published. */
static kvattn_status record_tokens(kvattn_session *s, const int32_t *tokens, int n) {
    if (!s->tokens || s->n_tokens != s->pos - n) return KVATTN_OK;
    memcpy(s->tokens + s->n_tokens, tokens, sizeof *tokens * (size_t)n);
    s->n_tokens = s->pos;
    return kvattn_cache_publish_prefix(s->cache, s->tokens, s->n_tokens);
}

static kvattn_status check_tokens(const kvattn_session *s, const int32_t *tokens, int n, const char *what) {
    const int V = (int)s->m->desc.vocab_size;
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return kv_fail(KVATTN_ERR_INVALID_ARG, "%s: token %d = %d is outside the vocabulary [0, %d)", what, i,
                           tokens[i], V);
    return KVATTN_OK;
}

kvattn_status kvattn_session_decode(kvattn_session *s, const int32_t *tokens, int n, float *logits, int all_logits) {
    if (!s || !tokens || n < 1) return kv_fail(KVATTN_ERR_INVALID_ARG, "decode: no tokens");
    const int V = (int)s->m->desc.vocab_size;
    kvattn_status st = check_tokens(s, tokens, n, "decode");
    if (st != KVATTN_OK) return st;
    if (n > kvattn_cache_capacity(s->cache) - s->pos)
        return kv_fail(KVATTN_ERR_CACHE_FULL, "context full: %d tokens at position %d exceed the context of %d", n,
                       s->pos, kvattn_cache_capacity(s->cache));
    /* paged: every block the tokens need, now, so that a full pool fails the call before any layer changes */
    if ((st = kvattn_cache_reserve(s->cache, s->pos, n)) != KVATTN_OK) return st;
    for (int done = 0; done < n;) {
        /* chunks end at multiples of CHUNK positions, so that a prompt resumed after a reused prefix is cut
         * where it would have been cut whole */
        const int room = CHUNK - s->pos % CHUNK;
        int T = n - done < room ? n - done : room, last = done + T == n;
        float *lg = !logits ? NULL : all_logits ? logits + (size_t)done * V : last ? logits : NULL;
        const forward_rows f = {.s = s, .n_seqs = 1, .T = T, .caches = {s->cache}, .pos = {s->pos}, .len = {T}};
        if ((st = forward(&f, tokens + done, lg, all_logits)) != KVATTN_OK) return st;
        s->pos += T;
        done += T;
    }
    return record_tokens(s, tokens, n);
}

kvattn_status kvattn_session_run_batch(const kvattn_batch_piece *pieces, int n, float *logits) {
    if (!pieces || n < 1 || n > CHUNK)
        return kv_fail(KVATTN_ERR_INVALID_ARG, "batched pass: %d pieces (1 to %d)", n, CHUNK);
    forward_rows f = {.s = pieces[0].session, .n_seqs = n};
    int32_t tokens[CHUNK] = {0};
    for (int i = 0; i < n; i++) {
        kvattn_session *s = pieces[i].session;
        const int len = pieces[i].n;
        if (!s || !pieces[i].tokens || len < 1)
            return kv_fail(KVATTN_ERR_INVALID_ARG, "batched pass: piece %d has no session or no tokens", i);
        if (s->m != f.s->m || s->mla_mode != f.s->mla_mode || s->tap)
            return kv_fail(KVATTN_ERR_INVALID_ARG,
                           "batched pass: piece %d runs another model or MLA mode than piece 0, or is tapped", i);
        for (int j = 0; j < i; j++)
            if (pieces[j].session == s)
                return kv_fail(KVATTN_ERR_INVALID_ARG, "batched pass: pieces %d and %d are one session", j, i);
        if (len > CHUNK - f.T)
            return kv_fail(KVATTN_ERR_INVALID_ARG, "batched pass: more than %d tokens in all (piece %d)", CHUNK, i);
        kvattn_status st = check_tokens(s, pieces[i].tokens, len, "batched pass");
        if (st != KVATTN_OK) return st;
        if (len > kvattn_cache_capacity(s->cache) - s->pos)
            return kv_fail(KVATTN_ERR_CACHE_FULL,
                           "context full: piece %d's %d tokens at position %d exceed the context of %d", i, len, s->pos,
                           kvattn_cache_capacity(s->cache));
        if (s->pos / CHUNK != (s->pos + len - 1) / CHUNK)
            return kv_fail(
                KVATTN_ERR_INVALID_ARG,
                "batched pass: piece %d (positions %d to %d) crosses a multiple of %d, where a prompt is cut", i,
                s->pos, s->pos + len - 1, CHUNK);
        memcpy(tokens + f.T, pieces[i].tokens, sizeof *tokens * (size_t)len);
        f.caches[i] = s->cache, f.pos[i] = s->pos, f.len[i] = len;
        f.T += len;
    }
    for (int i = 0; i < n; i++) { /* paged: every block first, so that a full pool fails before any layer changes */
        kvattn_status st = kvattn_cache_reserve(pieces[i].session->cache, pieces[i].session->pos, pieces[i].n);
        if (st != KVATTN_OK) return st;
    }
    kvattn_status st = forward(&f, tokens, logits, 0);
    for (int i = 0; i < n && st == KVATTN_OK; i++) {
        pieces[i].session->pos += pieces[i].n;
        st = record_tokens(pieces[i].session, pieces[i].tokens, pieces[i].n);
    }
    return st;
}

kvattn_status kvattn_session_decode_batch(kvattn_session *const *seqs, int n, const int32_t *tokens, float *logits) {
    if (!seqs || !tokens || n < 1 || n > KVATTN_DECODE_BATCH_MAX)
        return kv_fail(KVATTN_ERR_INVALID_ARG, "batched decode: %d sequences (1 to %d, with their tokens)", n,
                       KVATTN_DECODE_BATCH_MAX);
    kvattn_batch_piece pieces[KVATTN_DECODE_BATCH_MAX];
    for (int i = 0; i < n; i++) pieces[i] = (kvattn_batch_piece){.session = seqs[i], .tokens = tokens + i, .n = 1};
    return kvattn_session_run_batch(pieces, n, logits);
}

kvattn_status kvattn_session_fill_random(kvattn_session *s, int n, uint64_t seed) {
    if (!s || n < 0) return kv_fail(KVATTN_ERR_INVALID_ARG, "fill: bad arguments");
    if (n > kvattn_cache_capacity(s->cache) - s->pos)
        return kv_fail(KVATTN_ERR_CACHE_FULL, "fill: %d tokens at position %d exceed the context of %d", n, s->pos,
                       kvattn_cache_capacity(s->cache));
    kvattn_status st = kvattn_cache_fill_random(s->cache, -1, n, seed);
    if (st == KVATTN_OK) s->pos += n;
    return st;
}
