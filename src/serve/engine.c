/* The serving engine: many requests over one KV pool, stepped together.
 *
 * Each step first admits waiting requests in arrival order while the batch
 * has room: a paged session takes the longest published prefix of the
 * request's context (its prompt, and what it generated before a preemption),
 * runs the rest as a prompt, and samples the first token. Then one pass
 * (kvattn_session_run_batch) feeds every running request its last token and
 * runs the prompts' next pieces beside them (chunked prefill), so that the
 * projections read the weights once for all; a prompt piece too long for the
 * pass's room runs in a pass of its own first. When the pool runs out
 * of blocks, the newest running request is preempted: its session gives its
 * blocks back (its whole blocks stay published, so re-admission mostly reuses
 * them) and it waits at the head of the queue to be recomputed. A request
 * that cannot fit even alone fails. Sessions outlive their requests: a
 * finished or preempted request's session is rewound to position 0, which
 * returns its blocks to the pool, and kept for the next admission, so that
 * its activation buffers — several megabytes for a large model — are not
 * allocated anew for every request. */
#include "internal.h"
#include "kvattn.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int id;
    kvattn_request_state state;
    int32_t *context; /* [n_ctx + 1] the prompt, then the tokens generated */
    int n_prompt, n_gen, max_tokens, end_token;
    int n_run; /* admitted: the context's tokens in its session's cache */
    kvattn_sampler sampler;
    kvattn_session *session; /* while running */
    uint64_t admitted;       /* admission order: the newest is preempted first */
    int released;            /* its slot is free for a later request */
} request;

struct kvattn_engine {
    const kvattn_model *m;
    kvattn_engine_params p;
    kvattn_kv_pool *pool;
    int V;
    float *logits; /* [max_batch][V] */
    request *req;  /* [cap] by id; the state says which are in use */
    int n_req, cap;
    int *queue; /* ids waiting, in order of admission to come */
    int n_queue;
    uint64_t admissions;
    kvattn_session **spare; /* [max_batch] rewound sessions, holding no blocks, for the next admissions */
    int n_spare;
    kvattn_engine_stats stats;
};

static int is_done(kvattn_request_state s) { return s >= KVATTN_REQUEST_DONE_LENGTH; }

kvattn_status kvattn_engine_create(const kvattn_model *m, const kvattn_engine_params *p, kvattn_engine **out) {
    if (!out) return kv_fail(KVATTN_ERR_INVALID_ARG, "engine: output pointer is NULL");
    *out = NULL;
    if (!m || !p) return kv_fail(KVATTN_ERR_INVALID_ARG, "engine: model or parameters are NULL");
    if (p->n_ctx < 1) return kv_fail(KVATTN_ERR_INVALID_ARG, "engine: n_ctx = %d must be at least 1", p->n_ctx);
    if (p->max_batch < 1 || p->max_batch > KVATTN_DECODE_BATCH_MAX)
        return kv_fail(KVATTN_ERR_INVALID_ARG, "engine: max_batch = %d must be in [1, %d]", p->max_batch,
                       KVATTN_DECODE_BATCH_MAX);
    const kvattn_model_desc *d = kvattn_model_describe(m);
    const int block = p->block_tokens ? p->block_tokens : 64;
    const int n_blocks =
        kvattn_kv_pool_blocks_for_bytes(&d->attn, d->n_layers, p->kv_type, p->kv_type, block, p->kv_mem);
    if (n_blocks < 1)
        return kv_fail(
            KVATTN_ERR_INVALID_ARG, "engine: kv_mem = %llu bytes holds no block of %d tokens (%zu bytes a token in %s)",
            (unsigned long long)p->kv_mem, block,
            kvattn_kv_bytes_per_token_kv(&d->attn, d->n_layers, p->kv_type, p->kv_type), kvattn_type_name(p->kv_type));
    kvattn_engine *e = calloc(1, sizeof *e);
    if (!e) return kv_fail(KVATTN_ERR_NOMEM, "engine: out of memory");
    e->m = m, e->p = *p, e->V = (int)d->vocab_size;
    e->p.block_tokens = block;
    kvattn_status st = kvattn_kv_pool_create(&d->attn, d->n_layers, p->kv_type, p->kv_type, block, n_blocks, &e->pool);
    if (st == KVATTN_OK && (!(e->logits = malloc(sizeof(float) * (size_t)e->V * (size_t)p->max_batch)) ||
                            !(e->spare = malloc(sizeof *e->spare * (size_t)p->max_batch))))
        st = kv_fail(KVATTN_ERR_NOMEM, "engine: out of memory for logits");
    if (st != KVATTN_OK) {
        kvattn_engine_free(e);
        return st;
    }
    *out = e;
    return KVATTN_OK;
}

static void request_drop_session(kvattn_engine *e, request *r) {
    if (!r->session) return;
    if (e->n_spare < e->p.max_batch && kvattn_session_rewind(r->session, 0) == KVATTN_OK)
        e->spare[e->n_spare++] = r->session;
    else kvattn_session_free(r->session);
    r->session = NULL;
    e->stats.running--;
}

void kvattn_engine_free(kvattn_engine *e) {
    if (!e) return;
    for (int i = 0; i < e->n_req; i++) {
        request_drop_session(e, &e->req[i]);
        kvattn_sampler_free(&e->req[i].sampler);
        free(e->req[i].context);
    }
    for (int i = 0; i < e->n_spare; i++) kvattn_session_free(e->spare[i]);
    kvattn_kv_pool_free(e->pool);
    free(e->req), free(e->queue), free(e->logits), free(e->spare);
    free(e);
}

kvattn_status kvattn_engine_submit(kvattn_engine *e, const int32_t *prompt, int n_prompt,
                                   const kvattn_request_params *rp, int *id) {
    if (id) *id = -1;
    if (!e || !prompt || !rp || !id || n_prompt < 1)
        return kv_fail(KVATTN_ERR_INVALID_ARG, "engine submit: NULL argument or an empty prompt");
    if (n_prompt > e->p.n_ctx)
        return kv_fail(KVATTN_ERR_CACHE_FULL, "engine submit: the prompt is %d tokens, the context %d", n_prompt,
                       e->p.n_ctx);
    if (rp->max_tokens < 1)
        return kv_fail(KVATTN_ERR_INVALID_ARG, "engine submit: max_tokens = %d must be at least 1", rp->max_tokens);
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= e->V)
            return kv_fail(KVATTN_ERR_INVALID_ARG,
                           "engine submit: prompt token %d = %d is outside the vocabulary [0, %d)", i, prompt[i], e->V);
    int slot = 0;
    while (slot < e->n_req && !e->req[slot].released) slot++;
    if (slot == e->n_req && e->n_req == e->cap) {
        const int cap = e->cap ? 2 * e->cap : 16;
        request *req = realloc(e->req, sizeof *req * (size_t)cap);
        if (!req) return kv_fail(KVATTN_ERR_NOMEM, "engine submit: out of memory");
        e->req = req;
        int *queue = realloc(e->queue, sizeof *queue * (size_t)cap);
        if (!queue) return kv_fail(KVATTN_ERR_NOMEM, "engine submit: out of memory");
        e->queue = queue;
        e->cap = cap;
    }
    /* one past the context: a prompt that fills it still gets its one token */
    int32_t *context = malloc(sizeof *context * ((size_t)e->p.n_ctx + 1));
    if (!context) return kv_fail(KVATTN_ERR_NOMEM, "engine submit: out of memory for %d tokens", e->p.n_ctx);
    request *r = &e->req[slot];
    memset(r, 0, sizeof *r);
    r->context = context;
    memcpy(r->context, prompt, sizeof *prompt * (size_t)n_prompt);
    r->id = slot, r->n_prompt = n_prompt, r->max_tokens = rp->max_tokens, r->end_token = rp->end_token;
    r->state = KVATTN_REQUEST_WAITING;
    kvattn_sampler_init(&r->sampler, &rp->sampler);
    for (int i = 0; i < n_prompt; i++) kvattn_sampler_accept(&r->sampler, prompt[i]);
    e->queue[e->n_queue++] = r->id;
    e->stats.waiting++, e->stats.submitted++;
    if (slot == e->n_req) e->n_req++;
    *id = slot;
    return KVATTN_OK;
}

/* Ends a request in `state` (one of the done ones): its blocks go back now. */
static void finish(kvattn_engine *e, request *r, kvattn_request_state state) {
    request_drop_session(e, r);
    r->state = state;
    e->stats.finished++;
}

/* Takes the sampled token `t` of a running request: the end token, the
 * length limit or a full context finishes it. */
static void take_token(kvattn_engine *e, request *r, int t) {
    if (t < 0) {
        finish(e, r, KVATTN_REQUEST_FAILED);
    } else if (t == r->end_token) {
        finish(e, r, KVATTN_REQUEST_DONE_STOP);
    } else {
        r->context[r->n_prompt + r->n_gen++] = t;
        kvattn_sampler_accept(&r->sampler, t);
        e->stats.generated++;
        if (r->n_gen >= r->max_tokens) finish(e, r, KVATTN_REQUEST_DONE_LENGTH);
        else if (r->n_prompt + r->n_gen >= e->p.n_ctx) finish(e, r, KVATTN_REQUEST_DONE_CONTEXT);
    }
}

/* The tokens a request runs before it samples: its prompt; after a
 * preemption, all but its last generated token, which the batched step then
 * feeds as it would have. */
static int tokens_to_run(const request *r) { return r->n_prompt + (r->n_gen > 0 ? r->n_gen - 1 : 0); }

/* Whether the pool's unused blocks cover what request r still has to run. */
static int blocks_suffice(const kvattn_engine *e, const request *r) {
    kvattn_kv_pool_stats ps;
    kvattn_kv_pool_get_stats(e->pool, &ps);
    const int B = ps.block_tokens, held = (r->n_run + B - 1) / B, needed = (tokens_to_run(r) + B) / B - held;
    return needed <= ps.free + ps.cached;
}

/* Starts a waiting request: a session holding the published prefix of its
 * context. Its prompt runs in later steps (prefill). */
static kvattn_status admit(kvattn_engine *e, request *r) {
    kvattn_status st = KVATTN_OK;
    if (e->n_spare > 0) r->session = e->spare[--e->n_spare];
    else st = kvattn_session_create_paged(e->m, e->pool, e->p.n_ctx, e->p.mla_mode, &r->session);
    int reused = 0;
    if (st == KVATTN_OK) st = kvattn_session_reuse_prefix(r->session, r->context, tokens_to_run(r), &reused);
    if (st != KVATTN_OK) {
        kvattn_session_free(r->session);
        r->session = NULL;
        return st;
    }
    e->stats.reused_tokens += (uint64_t)reused;
    r->n_run = reused;
    r->state = KVATTN_REQUEST_PREFILLING;
    r->admitted = ++e->admissions;
    e->stats.running++;
    return KVATTN_OK;
}

/* The admitted request admitted last goes back to the head of the queue. */
static void preempt_newest(kvattn_engine *e) {
    request *newest = NULL;
    for (int i = 0; i < e->n_req; i++)
        if ((e->req[i].state == KVATTN_REQUEST_RUNNING || e->req[i].state == KVATTN_REQUEST_PREFILLING) &&
            (!newest || e->req[i].admitted > newest->admitted))
            newest = &e->req[i];
    if (!newest) return;
    request_drop_session(e, newest);
    newest->state = KVATTN_REQUEST_WAITING;
    newest->n_run = 0;
    memmove(e->queue + 1, e->queue, sizeof *e->queue * (size_t)e->n_queue);
    e->queue[0] = newest->id;
    e->n_queue++;
    e->stats.waiting++, e->stats.preemptions++;
}

/* Where request r's next prompt piece ends: the end of what it has to run,
 * or the next multiple of KVATTN_SESSION_CHUNK positions before it (where a
 * whole run cuts its prompt, so the piece gets a whole run's bits). */
static int piece_end(const request *r) {
    const int todo = tokens_to_run(r), boundary = (r->n_run / KVATTN_SESSION_CHUNK + 1) * KVATTN_SESSION_CHUNK;
    return todo < boundary ? todo : boundary;
}

/* Request r ran `ran` more prompt tokens, its logits at `logits` after them:
 * when its prompt is done, it runs, and samples its first token. */
static void prefilled(kvattn_engine *e, request *r, int ran, float *logits) {
    e->stats.prompt_tokens += (uint64_t)ran;
    r->n_run += ran;
    if (r->n_run == tokens_to_run(r)) {
        r->state = KVATTN_REQUEST_RUNNING;
        if (r->n_gen == 0) take_token(e, r, kvattn_sample(&r->sampler, logits, e->V));
    }
}

/* The oldest admitted request still running its prompt, or NULL. */
static request *oldest_prefilling(kvattn_engine *e, const request *after) {
    request *oldest = NULL;
    for (int i = 0; i < e->n_req; i++) {
        request *r = &e->req[i];
        if (r->state == KVATTN_REQUEST_PREFILLING && (!after || r->admitted > after->admitted) &&
            (!oldest || r->admitted < oldest->admitted))
            oldest = r;
    }
    return oldest;
}

/* A full pool: the newest admitted request makes room, or, alone, fails. */
static void pool_full(kvattn_engine *e, request *alone) {
    if (e->stats.running > 1) preempt_newest(e);
    else finish(e, alone, KVATTN_REQUEST_FAILED);
}

kvattn_status kvattn_engine_step(kvattn_engine *e, int *active) {
    if (!e) return kv_fail(KVATTN_ERR_INVALID_ARG, "engine step: engine is NULL");
    kvattn_status st = KVATTN_OK;
    /* admission, in arrival order, while the batch has room and the pool the blocks (the first
     * request is taken whatever the pool says: if it cannot fit alone, it fails in its prefill) */
    while (e->n_queue > 0 && e->stats.running < e->p.max_batch) {
        request *r = &e->req[e->queue[0]];
        if (e->stats.running > 0 && !blocks_suffice(e, r)) break;
        st = admit(e, r);
        memmove(e->queue, e->queue + 1, sizeof *e->queue * (size_t)--e->n_queue);
        e->stats.waiting--;
        if (st != KVATTN_OK) {
            finish(e, r, KVATTN_REQUEST_FAILED);
            st = KVATTN_OK;
        }
    }
    const int budget = e->p.prefill_tokens > 0 ? e->p.prefill_tokens : 256;
    int running = 0;
    for (int i = 0; i < e->n_req; i++) running += e->req[i].state == KVATTN_REQUEST_RUNNING;
    /* the oldest prompt's piece, when the pass cannot hold it beside the decode tokens: a pass of its own */
    request *first = oldest_prefilling(e, NULL);
    int prefill_run = 0;
    if (first && piece_end(first) - first->n_run > KVATTN_SESSION_CHUNK - running) {
        const int n = piece_end(first) - first->n_run;
        st = kvattn_session_decode(first->session, first->context + first->n_run, n, e->logits, 0);
        if (st == KVATTN_ERR_POOL_FULL) pool_full(e, first);
        else if (st != KVATTN_OK) finish(e, first, KVATTN_REQUEST_FAILED);
        else prefill_run = n, prefilled(e, first, n, e->logits);
        st = KVATTN_OK;
    }
    /* one pass: every running request's last token, then prompt pieces, oldest admission first,
     * while the pass has room and the step's prompt budget lasts (the first piece in any case) */
    for (;;) {
        kvattn_batch_piece pieces[KVATTN_DECODE_BATCH_MAX];
        request *who[KVATTN_DECODE_BATCH_MAX];
        int n = 0, rows = 0, prompt_rows = prefill_run;
        for (int i = 0; i < e->n_req && n < e->p.max_batch; i++)
            if (e->req[i].state == KVATTN_REQUEST_RUNNING) {
                request *r = &e->req[i];
                who[n] = r, rows++;
                pieces[n++] = (kvattn_batch_piece){r->session, &r->context[r->n_prompt + r->n_gen - 1], 1};
            }
        const int n_decode = n;
        for (request *r = oldest_prefilling(e, NULL); r && n < KVATTN_DECODE_BATCH_MAX; r = oldest_prefilling(e, r)) {
            const int len = piece_end(r) - r->n_run;
            if (len > KVATTN_SESSION_CHUNK - rows || (prompt_rows > 0 && prompt_rows + len > budget)) break;
            who[n] = r, rows += len, prompt_rows += len;
            pieces[n++] = (kvattn_batch_piece){r->session, r->context + r->n_run, len};
        }
        if (n == 0) break;
        st = kvattn_session_run_batch(pieces, n, e->logits);
        if (st == KVATTN_ERR_POOL_FULL) { /* with room made, the pass again; alone, its context outgrows the pool */
            st = KVATTN_OK;
            const int others = e->stats.running > 1;
            pool_full(e, who[0]);
            if (others) continue;
            break;
        }
        if (st != KVATTN_OK) break;
        e->stats.steps++;
        for (int i = 0; i < n; i++) {
            float *lg = e->logits + (size_t)i * e->V;
            if (i < n_decode) take_token(e, who[i], kvattn_sample(&who[i]->sampler, lg, e->V));
            else prefilled(e, who[i], pieces[i].n, lg);
        }
        break;
    }
    if (active) *active = e->stats.waiting + e->stats.running;
    return st;
}

static int known(const kvattn_engine *e, int id) { return e && id >= 0 && id < e->n_req && !e->req[id].released; }

kvattn_status kvattn_engine_cancel(kvattn_engine *e, int id) {
    if (!known(e, id)) return kv_fail(KVATTN_ERR_INVALID_ARG, "engine cancel: no request %d", id);
    request *r = &e->req[id];
    if (is_done(r->state)) return KVATTN_OK;
    if (r->state == KVATTN_REQUEST_WAITING) {
        for (int i = 0; i < e->n_queue; i++)
            if (e->queue[i] == id) {
                memmove(e->queue + i, e->queue + i + 1, sizeof *e->queue * (size_t)(e->n_queue - i - 1));
                e->n_queue--;
                e->stats.waiting--;
                break;
            }
    }
    finish(e, r, KVATTN_REQUEST_CANCELLED);
    return KVATTN_OK;
}

kvattn_status kvattn_engine_result(const kvattn_engine *e, int id, const int32_t **tokens, int *n,
                                   kvattn_request_state *state) {
    if (!known(e, id)) return kv_fail(KVATTN_ERR_INVALID_ARG, "engine result: no request %d", id);
    const request *r = &e->req[id];
    if (tokens) *tokens = r->context + r->n_prompt;
    if (n) *n = r->n_gen;
    if (state) *state = r->state;
    return KVATTN_OK;
}

kvattn_status kvattn_engine_release(kvattn_engine *e, int id) {
    if (!known(e, id)) return kv_fail(KVATTN_ERR_INVALID_ARG, "engine release: no request %d", id);
    kvattn_status st = kvattn_engine_cancel(e, id);
    request *r = &e->req[id];
    kvattn_sampler_free(&r->sampler);
    free(r->context);
    r->context = NULL;
    r->released = 1;
    return st;
}

void kvattn_engine_get_stats(const kvattn_engine *e, kvattn_engine_stats *out) {
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!e) return;
    *out = e->stats;
    kvattn_kv_pool_get_stats(e->pool, &out->pool);
}
