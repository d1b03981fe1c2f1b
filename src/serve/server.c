/* The HTTP server: libmicrohttpd in front of one engine.
 *
 * Threads. Every connection has its own thread (libmicrohttpd's thread per
 * connection): it reads the body, checks and tokenizes the request, queues a
 * job, and then waits for the job's text — for a stream, inside the
 * response's reader callback, sending each piece as an event. One engine
 * thread owns the engine: it takes queued jobs, cancels abandoned ones, runs
 * a step, turns each job's new tokens into text and hands it over. One mutex
 * guards what the two sides share (the queue, each job's output, the
 * statistics); each job has a condition its connection waits on.
 *
 * A client that goes away is noticed while its connection waits (the socket
 * reads end-of-file or hangs up), and its job is cancelled, so its KV blocks
 * go back to the pool within a step. */
#define _GNU_SOURCE /* POLLRDHUP */
#include "internal.h"
#include "kvattn.h"
#include "serve/openai.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* A request between its connection and the engine. Fields marked (engine)
 * are the engine thread's alone; the rest are guarded by server.lock. */
typedef struct job {
    struct job *next; /* in the queue, then in the engine's list (engine) */
    int refs;         /* the connection, its stream reader, the engine */
    pthread_cond_t cond;
    serve_request req;
    int end_extra; /* the chat format's end token, or -1 */
    /* (engine) */
    int engine_id, n_seen, prev_token;
    serve_text text;
    /* shared */
    char *out; /* text released, not yet sent: [sent, n_out) */
    size_t n_out, cap_out, sent;
    int done, abandoned;
    const char *finish; /* "stop", "length"; NULL with error set */
    serve_error error;
    int completion_tokens;
} job;

typedef struct {
    uint64_t http, stop, length, cancelled, failed, rejected;
} outcome_counts;

struct kvattn_server {
    const kvattn_model *m;
    kvattn_server_params p;
    char *model_id, *api_key, *bearer;
    serve_context ctx;
    kvattn_engine *engine;
    struct MHD_Daemon *daemon;
    int port;
    long long started;
    pthread_t engine_thread;
    int engine_running;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* the engine thread waits on it for work */
    job *queue, *queue_tail;
    int n_queued;
    int stopping;
    uint64_t next_id, seed_counter;
    /* statistics (under lock): the engine's after its last step, and the server's */
    kvattn_engine_stats stats;
    outcome_counts counts;
    double rate, rate_at; /* generated tokens/s over the last window, and when measured */
};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void job_unref(kvattn_server *s, job *j) {
    pthread_mutex_lock(&s->lock);
    const int left = --j->refs;
    pthread_mutex_unlock(&s->lock);
    if (left) return;
    serve_request_free(&j->req);
    serve_text_free(&j->text);
    free(j->out);
    pthread_cond_destroy(&j->cond);
    free(j);
}

/* ---- the engine thread ----------------------------------------------------- */

/* Hands text over (under lock). */
static int job_put(job *j, const char *bytes, size_t n) {
    if (j->n_out + n > j->cap_out) {
        size_t cap = j->cap_out ? j->cap_out : 256;
        while (cap < j->n_out + n) cap *= 2;
        char *out = realloc(j->out, cap);
        if (!out) return -1;
        j->out = out, j->cap_out = cap;
    }
    memcpy(j->out + j->n_out, bytes, n);
    j->n_out += n;
    return 0;
}

/* Ends a job (under lock): finish "stop"/"length", or an error. */
static void job_end(kvattn_server *s, job *j, const char *finish, int status, const char *type, const char *message) {
    if (j->done) return;
    j->done = 1;
    j->finish = finish;
    if (!finish) {
        serve_error_set(&j->error, status, type, NULL, NULL, "%s", message);
        if (status == 499) s->counts.cancelled++;
        else s->counts.failed++;
    } else if (!strcmp(finish, "stop")) {
        s->counts.stop++;
    } else {
        s->counts.length++;
    }
    pthread_cond_broadcast(&j->cond);
}

/* Takes a job's new tokens: their text, a stop string or end token, and
 * the end. Returns 1 when the job is over. */
static int job_collect(kvattn_server *s, job *j) {
    const int32_t *tokens = NULL;
    int n = 0;
    kvattn_request_state state = KVATTN_REQUEST_FAILED;
    kvattn_engine_result(s->engine, j->engine_id, &tokens, &n, &state);
    const kvattn_tokenizer *tok = s->ctx.tok;
    int stopped = j->text.stopped, oom = 0, counted = 0;
    for (; j->n_seen < n && !stopped; j->n_seen++) {
        const int t = tokens[j->n_seen];
        if (t == j->end_extra) {
            stopped = 1;
            break;
        }
        char piece[512];
        const int b = kvattn_token_to_bytes(tok, j->prev_token, t, piece, sizeof piece);
        j->prev_token = t;
        counted++;
        const int hit = b > 0 ? serve_text_add(&j->text, piece, (size_t)b, j->req.stops, j->req.n_stops) : 0;
        if (hit < 0) oom = 1;
        if (hit) stopped = 1;
    }
    const int over = stopped || oom || state >= KVATTN_REQUEST_DONE_LENGTH;
    const size_t ready = serve_text_ready(&j->text, j->req.stops, j->req.n_stops, over);
    pthread_mutex_lock(&s->lock);
    j->completion_tokens += counted;
    if (ready > j->text.released && job_put(j, j->text.raw + j->text.released, ready - j->text.released)) oom = 1;
    j->text.released = ready;
    if (oom) job_end(s, j, NULL, 500, "server_error", "out of memory");
    else if (stopped || state == KVATTN_REQUEST_DONE_STOP) job_end(s, j, "stop", 0, NULL, NULL);
    else if (state == KVATTN_REQUEST_DONE_LENGTH || state == KVATTN_REQUEST_DONE_CONTEXT)
        job_end(s, j, "length", 0, NULL, NULL);
    else if (state == KVATTN_REQUEST_FAILED)
        job_end(s, j, NULL, 503, "server_error",
                "the request does not fit in the KV pool (or memory ran out); try a shorter prompt or max_tokens");
    else if (state == KVATTN_REQUEST_CANCELLED) job_end(s, j, NULL, 499, "cancelled", "the request was cancelled");
    else if (ready > j->sent) pthread_cond_broadcast(&j->cond);
    const int ended = j->done;
    pthread_mutex_unlock(&s->lock);
    return ended;
}

static void update_stats(kvattn_server *s, double *window_start, uint64_t *window_tokens) {
    kvattn_engine_stats st;
    kvattn_engine_get_stats(s->engine, &st);
    const double t = now_s();
    pthread_mutex_lock(&s->lock);
    s->stats = st;
    if (t - *window_start >= 2.0) {
        s->rate = (double)(st.generated - *window_tokens) / (t - *window_start);
        s->rate_at = t;
        *window_start = t, *window_tokens = st.generated;
    }
    pthread_mutex_unlock(&s->lock);
}

static void *engine_main(void *arg) {
    kvattn_server *s = arg;
    job *live = NULL; /* jobs in the engine */
    double window_start = now_s();
    uint64_t window_tokens = 0;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        while (!s->stopping && !s->queue && !live) pthread_cond_wait(&s->wake, &s->lock);
        job *in = s->queue;
        s->queue = s->queue_tail = NULL;
        s->n_queued = 0;
        const int stopping = s->stopping;
        pthread_mutex_unlock(&s->lock);
        /* new jobs into the engine, in arrival order */
        job **tail = &live;
        while (*tail) tail = &(*tail)->next;
        for (job *j = in, *next; j; j = next) {
            next = j->next;
            j->next = NULL;
            const kvattn_request_params rp = {j->req.max_tokens, s->p.end_token, j->req.sampler};
            if (kvattn_engine_submit(s->engine, j->req.prompt, j->req.n_prompt, &rp, &j->engine_id) != KVATTN_OK) {
                pthread_mutex_lock(&s->lock);
                job_end(s, j, NULL, 500, "server_error", kvattn_last_error());
                pthread_mutex_unlock(&s->lock);
                job_unref(s, j);
                continue;
            }
            j->prev_token = j->req.prompt[j->req.n_prompt - 1];
            *tail = j, tail = &j->next;
        }
        /* abandoned jobs (and, when stopping, all) leave the engine now */
        for (job **pj = &live; *pj;) {
            job *j = *pj;
            pthread_mutex_lock(&s->lock);
            const int drop = j->abandoned || stopping;
            if (drop)
                job_end(s, j, NULL, j->abandoned ? 499 : 503, j->abandoned ? "cancelled" : "server_error",
                        j->abandoned ? "the client went away" : "the server is shutting down");
            pthread_mutex_unlock(&s->lock);
            if (!drop) {
                pj = &j->next;
                continue;
            }
            kvattn_engine_release(s->engine, j->engine_id);
            *pj = j->next;
            job_unref(s, j);
        }
        if (stopping) {
            update_stats(s, &window_start, &window_tokens);
            break;
        }
        if (!live) {
            update_stats(s, &window_start, &window_tokens);
            continue;
        }
        int active = 0;
        if (kvattn_engine_step(s->engine, &active) != KVATTN_OK) {
            const char *why = kvattn_last_error();
            if (s->p.log) fprintf(s->p.log, "kvattn serve: engine step failed: %s\n", why);
            for (job *j = live; j; j = j->next) {
                pthread_mutex_lock(&s->lock);
                job_end(s, j, NULL, 500, "server_error", why);
                pthread_mutex_unlock(&s->lock);
            }
        }
        for (job **pj = &live; *pj;) {
            job *j = *pj;
            if (!j->done && !job_collect(s, j)) {
                pj = &j->next;
                continue;
            }
            kvattn_engine_release(s->engine, j->engine_id);
            *pj = j->next;
            job_unref(s, j);
        }
        update_stats(s, &window_start, &window_tokens);
    }
    return NULL;
}

/* ---- HTTP ------------------------------------------------------------------ */

/* What a connection keeps between the handler's calls. */
typedef struct {
    char *body;
    size_t n_body, cap_body;
    int too_large;
    job *job; /* once queued */
    double t0;
} conn_state;

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type, char *text) {
    if (!text) return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    const enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, char *json) {
    return send_text(c, status, "application/json; charset=utf-8", json);
}

static enum MHD_Result send_error(kvattn_server *s, struct MHD_Connection *c, const serve_error *err) {
    pthread_mutex_lock(&s->lock);
    if (err->status != 499) s->counts.rejected += err->status >= 400 && err->status < 500;
    pthread_mutex_unlock(&s->lock);
    struct MHD_Response *r = NULL;
    char *json = serve_error_json(err);
    if (!json || !(r = MHD_create_response_from_buffer(strlen(json), json, MHD_RESPMEM_MUST_FREE))) {
        free(json);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json; charset=utf-8");
    if (err->status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    const enum MHD_Result ok = MHD_queue_response(c, (unsigned)err->status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result fail(kvattn_server *s, struct MHD_Connection *c, int status, const char *type, const char *code,
                            const char *message) {
    serve_error err;
    serve_error_set(&err, status, type, code, NULL, "%s", message);
    return send_error(s, c, &err);
}

/* Whether the client has closed its end (it sends nothing while it waits). */
static int client_gone(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return 1;
    struct pollfd pfd = {.fd = ci->connect_fd, .events = POLLIN | POLLRDHUP};
    if (poll(&pfd, 1, 0) <= 0) return 0;
    if (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return 1;
    char b;
    const ssize_t got = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Waits (under lock) until the job has text to send or is over; 0 when the
 * client went away first (the job is then marked abandoned). */
static int wait_job(kvattn_server *s, struct MHD_Connection *c, job *j, int for_text) {
    while (!j->done && !(for_text && j->n_out > j->sent)) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100 * 1000000L;
        if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&j->cond, &s->lock, &until);
        if (j->done || (for_text && j->n_out > j->sent)) break;
        pthread_mutex_unlock(&s->lock);
        const int gone = client_gone(c);
        pthread_mutex_lock(&s->lock);
        if (gone) {
            j->abandoned = 1;
            pthread_cond_signal(&s->wake);
            return 0;
        }
    }
    return 1;
}

/* A stream's reader: the events not yet sent, one at a time. */
typedef struct {
    kvattn_server *s;
    struct MHD_Connection *c;
    job *j;
    serve_answer a;
    char id[48]; /* a.id */
    char *event; /* being sent: [at, n) */
    size_t at, n;
    int phase; /* 0: the chat role chunk; 1: text; 2: end events queued; 3: [DONE] queued; 4: over */
} stream;

static char *end_events(stream *st) {
    job *j = st->j;
    if (!j->finish) {
        char *e = serve_error_json(&j->error);
        if (!e) return NULL;
        char *ev = malloc(strlen(e) + 9);
        if (ev) sprintf(ev, "data: %s\n\n", e);
        free(e);
        return ev;
    }
    char *fin = serve_chunk_event(&st->a, "", 0, j->finish, 0);
    if (!fin || !j->req.include_usage) return fin;
    char *usage = serve_usage_event(&st->a, j->req.n_prompt, j->completion_tokens);
    char *both = usage ? malloc(strlen(fin) + strlen(usage) + 1) : NULL;
    if (both) strcat(strcpy(both, fin), usage);
    free(fin), free(usage);
    return both;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream *st = cls;
    kvattn_server *s = st->s;
    job *j = st->j;
    while (st->at == st->n) {
        free(st->event);
        st->event = NULL, st->at = st->n = 0;
        if (st->phase == 4) return MHD_CONTENT_READER_END_OF_STREAM;
        if (st->phase == 0) {
            st->phase = 1;
            if (j->req.kind == SERVE_CHAT) st->event = serve_chunk_event(&st->a, "", 0, NULL, 1);
            else continue;
        } else if (st->phase == 3) {
            st->phase = 4;
            st->event = strdup("data: [DONE]\n\n");
        } else {
            pthread_mutex_lock(&s->lock);
            if (!wait_job(s, st->c, j, 1)) {
                pthread_mutex_unlock(&s->lock);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
            char *text = NULL;
            size_t n = j->n_out - j->sent;
            if (n && (text = malloc(n))) memcpy(text, j->out + j->sent, n), j->sent += n;
            const int over = j->done && j->sent == j->n_out;
            pthread_mutex_unlock(&s->lock);
            if (n && !text) return MHD_CONTENT_READER_END_WITH_ERROR;
            if (n) {
                st->event = serve_chunk_event(&st->a, text, n, NULL, 0);
                free(text);
            } else if (over) {
                st->event = end_events(st);
                st->phase = 3;
            } else {
                continue;
            }
        }
        if (!st->event) return MHD_CONTENT_READER_END_WITH_ERROR;
        st->n = strlen(st->event);
    }
    const size_t n = st->n - st->at < max ? st->n - st->at : max;
    memcpy(buf, st->event + st->at, n);
    st->at += n;
    return (ssize_t)n;
}

static void stream_free(void *cls) {
    stream *st = cls;
    free(st->event);
    job_unref(st->s, st->j);
    free(st);
}

/* The id of an answer: cmpl-N or chatcmpl-N. */
static void answer_of(kvattn_server *s, const job *j, char *id, size_t size, serve_answer *a) {
    pthread_mutex_lock(&s->lock);
    const unsigned long long n = ++s->next_id;
    pthread_mutex_unlock(&s->lock);
    snprintf(id, size, "%s-%llu", j->req.kind == SERVE_CHAT ? "chatcmpl" : "cmpl", n);
    a->kind = j->req.kind, a->id = id, a->model = s->model_id, a->created = (long long)time(NULL);
}

static enum MHD_Result generate(kvattn_server *s, struct MHD_Connection *c, conn_state *cs, serve_kind kind) {
    serve_error err;
    job *j = calloc(1, sizeof *j);
    if (!j) return fail(s, c, 500, "server_error", NULL, "out of memory");
    if (serve_parse_request(cs->body ? cs->body : "", cs->n_body, kind, &s->ctx, &j->req, &err)) {
        free(j);
        return send_error(s, c, &err);
    }
    if (!j->req.seeded && !s->p.fixed_seed) {
        pthread_mutex_lock(&s->lock);
        j->req.sampler.seed = s->p.sampler.seed ^ (0x9e3779b97f4a7c15ull * ++s->seed_counter);
        pthread_mutex_unlock(&s->lock);
    }
    pthread_cond_init(&j->cond, NULL);
    j->end_extra = kind == SERVE_CHAT ? kvattn_chat_end_token(s->ctx.tok, s->ctx.chat_format) : -1;
    j->refs = 2; /* the connection and the engine */
    pthread_mutex_lock(&s->lock);
    const int waiting = s->n_queued + s->stats.waiting;
    if (s->stopping || waiting >= s->p.max_waiting) {
        const int stopping = s->stopping;
        pthread_mutex_unlock(&s->lock);
        serve_request_free(&j->req);
        pthread_cond_destroy(&j->cond);
        free(j);
        if (stopping) return fail(s, c, 503, "server_error", NULL, "the server is shutting down");
        char msg[128];
        snprintf(msg, sizeof msg, "%d requests are waiting already; try again later", waiting);
        return fail(s, c, 429, "rate_limit_error", "queue_full", msg);
    }
    if (s->queue_tail) s->queue_tail->next = j;
    else s->queue = j;
    s->queue_tail = j;
    s->n_queued++;
    cs->job = j;
    pthread_cond_signal(&s->wake);
    /* wait for the end (or, streaming, the first text) while watching the client */
    const int here = wait_job(s, c, j, j->req.stream);
    const int failed_early = here && j->done && !j->finish && j->n_out == 0;
    pthread_mutex_unlock(&s->lock);
    if (!here) return MHD_NO;
    if (failed_early) return send_error(s, c, &j->error);
    char id[48];
    serve_answer a;
    answer_of(s, j, id, sizeof id, &a);
    if (!j->req.stream) {
        pthread_mutex_lock(&s->lock);
        char *json = j->finish
                         ? serve_answer_json(&a, j->out, j->n_out, j->finish, j->req.n_prompt, j->completion_tokens)
                         : NULL;
        pthread_mutex_unlock(&s->lock);
        if (!j->finish) return send_error(s, c, &j->error);
        return json ? send_json(c, 200, json) : fail(s, c, 500, "server_error", NULL, "out of memory");
    }
    stream *st = calloc(1, sizeof *st);
    if (!st) return fail(s, c, 500, "server_error", NULL, "out of memory");
    st->s = s, st->c = c, st->j = j, st->a = a;
    snprintf(st->id, sizeof st->id, "%s", id);
    st->a.id = st->id;
    pthread_mutex_lock(&s->lock);
    j->refs++;
    pthread_mutex_unlock(&s->lock);
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, st, stream_free);
    if (!r) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream; charset=utf-8");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    const enum MHD_Result ok = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ok;
}

/* ---- GET ------------------------------------------------------------------- */

static char *metrics_text(kvattn_server *s) {
    pthread_mutex_lock(&s->lock);
    const kvattn_engine_stats st = s->stats;
    const outcome_counts n = s->counts;
    const double rate = now_s() - s->rate_at < 5.0 ? s->rate : 0.0;
    const int queued = s->n_queued;
    pthread_mutex_unlock(&s->lock);
    const kvattn_kv_pool_stats *p = &st.pool;
    const double hit_rate = p->lookups ? (double)p->hits / (double)p->lookups : 0.0;
    size_t cap = 8192, len = 0;
    char *out = malloc(cap);
    if (!out) return NULL;
#define PUT(...)                 (len += (size_t)snprintf(out + len, len < cap ? cap - len : 0, __VA_ARGS__))
#define METRIC(name, type, help) PUT("# HELP kvattn_" name " " help "\n# TYPE kvattn_" name " " type "\n")
    METRIC("requests_total", "counter", "Generation requests by how they ended.");
    PUT("kvattn_requests_total{outcome=\"stop\"} %llu\n", (unsigned long long)n.stop);
    PUT("kvattn_requests_total{outcome=\"length\"} %llu\n", (unsigned long long)n.length);
    PUT("kvattn_requests_total{outcome=\"cancelled\"} %llu\n", (unsigned long long)n.cancelled);
    PUT("kvattn_requests_total{outcome=\"failed\"} %llu\n", (unsigned long long)n.failed);
    PUT("kvattn_requests_total{outcome=\"rejected\"} %llu\n", (unsigned long long)n.rejected);
    METRIC("http_requests_total", "counter", "HTTP requests received.");
    PUT("kvattn_http_requests_total %llu\n", (unsigned long long)n.http);
    METRIC("prompt_tokens_total", "counter", "Prompt tokens run (recomputation after preemption included).");
    PUT("kvattn_prompt_tokens_total %llu\n", (unsigned long long)st.prompt_tokens);
    METRIC("prompt_tokens_reused_total", "counter", "Prompt tokens taken from cached KV blocks.");
    PUT("kvattn_prompt_tokens_reused_total %llu\n", (unsigned long long)st.reused_tokens);
    METRIC("generated_tokens_total", "counter", "Tokens generated.");
    PUT("kvattn_generated_tokens_total %llu\n", (unsigned long long)st.generated);
    METRIC("tokens_per_second", "gauge", "Tokens generated per second over the last two seconds or more.");
    PUT("kvattn_tokens_per_second %.3f\n", rate);
    METRIC("requests_waiting", "gauge", "Requests queued, not yet running.");
    PUT("kvattn_requests_waiting %d\n", st.waiting + queued);
    METRIC("requests_running", "gauge", "Requests running (prompt or generation).");
    PUT("kvattn_requests_running %d\n", st.running);
    METRIC("kv_blocks", "gauge", "KV pool blocks: used by a request, cached (reusable prefix), free.");
    PUT("kvattn_kv_blocks{state=\"used\"} %d\n", p->used);
    PUT("kvattn_kv_blocks{state=\"cached\"} %d\n", p->cached);
    PUT("kvattn_kv_blocks{state=\"free\"} %d\n", p->free);
    METRIC("kv_block_tokens", "gauge", "Tokens a KV block holds.");
    PUT("kvattn_kv_block_tokens %d\n", p->block_tokens);
    METRIC("kv_pool_bytes", "gauge", "Bytes of the KV pool.");
    PUT("kvattn_kv_pool_bytes %llu\n", (unsigned long long)p->bytes);
    METRIC("prefix_cache_lookups_total", "counter", "Blocks looked up in the prefix cache.");
    PUT("kvattn_prefix_cache_lookups_total %llu\n", (unsigned long long)p->lookups);
    METRIC("prefix_cache_hits_total", "counter", "Blocks found in the prefix cache.");
    PUT("kvattn_prefix_cache_hits_total %llu\n", (unsigned long long)p->hits);
    METRIC("prefix_cache_hit_rate", "gauge", "Hits over lookups since the start.");
    PUT("kvattn_prefix_cache_hit_rate %.6f\n", hit_rate);
    METRIC("preemptions_total", "counter", "Requests preempted for want of KV blocks.");
    PUT("kvattn_preemptions_total %llu\n", (unsigned long long)st.preemptions);
    METRIC("engine_steps_total", "counter", "Batched decode steps.");
    PUT("kvattn_engine_steps_total %llu\n", (unsigned long long)st.steps);
#undef METRIC
#undef PUT
    if (len >= cap) out[cap - 1] = '\0';
    return out;
}

/* ---- routing --------------------------------------------------------------- */

static int authorized(const kvattn_server *s, struct MHD_Connection *c) {
    if (!s->bearer) return 1;
    const char *got = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!got) return 0;
    const size_t n = strlen(s->bearer);
    if (strlen(got) != n) return 0;
    unsigned char diff = 0; /* the same time whatever the key */
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)(got[i] ^ s->bearer[i]);
    return diff == 0;
}

static int path_is(const char *url, const char *path) {
    return !strcmp(url, path) || (!strncmp(url, "/v1", 3) && !strcmp(url + 3, path));
}

static enum MHD_Result route(kvattn_server *s, struct MHD_Connection *c, const char *url, const char *method,
                             conn_state *cs) {
    const int get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
    const int is_completion = path_is(url, "/completions"), is_chat = path_is(url, "/chat/completions");
    const int is_models = path_is(url, "/models"), is_health = !strcmp(url, "/health"),
              is_metrics = !strcmp(url, "/metrics");
    if (!is_completion && !is_chat && !is_models && !is_health && !is_metrics) {
        char msg[160];
        snprintf(msg, sizeof msg, "no route %.100s", url);
        return fail(s, c, 404, "invalid_request_error", "not_found", msg);
    }
    if (!authorized(s, c))
        return fail(s, c, 401, "invalid_request_error", "invalid_api_key",
                    "this server needs \"Authorization: Bearer KEY\" with its API key");
    if ((is_completion || is_chat) ? !post : !get) {
        char msg[160];
        snprintf(msg, sizeof msg, "%.100s takes %s, not %.16s", url, is_completion || is_chat ? "POST" : "GET", method);
        return fail(s, c, 405, "invalid_request_error", "method_not_allowed", msg);
    }
    if (cs->too_large) {
        char msg[128];
        snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", s->p.max_body);
        return fail(s, c, 413, "invalid_request_error", "request_too_large", msg);
    }
    if (is_health) {
        pthread_mutex_lock(&s->lock);
        const int stopping = s->stopping;
        pthread_mutex_unlock(&s->lock);
        return send_json(c, stopping ? 503 : 200,
                         strdup(stopping ? "{\"status\":\"stopping\"}" : "{\"status\":\"ok\"}"));
    }
    if (is_metrics) return send_text(c, 200, "text/plain; version=0.0.4; charset=utf-8", metrics_text(s));
    if (is_models) return send_json(c, 200, serve_models_json(s->model_id, s->started, s->p.engine.n_ctx));
    return generate(s, c, cs, is_chat ? SERVE_CHAT : SERVE_COMPLETION);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    kvattn_server *s = cls;
    conn_state *cs = *con_cls;
    if (!cs) { /* the headers are in: say no early to a body announced too large */
        if (!(cs = calloc(1, sizeof *cs))) return MHD_NO;
        cs->t0 = now_s();
        *con_cls = cs;
        pthread_mutex_lock(&s->lock);
        s->counts.http++;
        pthread_mutex_unlock(&s->lock);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->p.max_body) cs->too_large = 1;
        return MHD_YES;
    }
    if (*upload_size) { /* a piece of the body */
        if (!cs->too_large && cs->n_body + *upload_size > s->p.max_body) cs->too_large = 1;
        if (!cs->too_large) {
            if (cs->n_body + *upload_size + 1 > cs->cap_body) {
                size_t cap = cs->cap_body ? cs->cap_body : 4096;
                while (cap < cs->n_body + *upload_size + 1) cap *= 2;
                char *b = realloc(cs->body, cap);
                if (!b) return MHD_NO;
                cs->body = b, cs->cap_body = cap;
            }
            memcpy(cs->body + cs->n_body, upload, *upload_size);
            cs->n_body += *upload_size;
            cs->body[cs->n_body] = '\0';
        }
        *upload_size = 0;
        return MHD_YES;
    }
    return route(s, c, url, method, cs);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode why) {
    (void)c;
    kvattn_server *s = cls;
    conn_state *cs = *con_cls;
    if (!cs) return;
    if (cs->job) {
        pthread_mutex_lock(&s->lock);
        if (!cs->job->done) {
            cs->job->abandoned = 1;
            pthread_cond_signal(&s->wake);
        }
        const int generated = cs->job->completion_tokens;
        pthread_mutex_unlock(&s->lock);
        if (s->p.log)
            fprintf(s->p.log, "kvattn serve: %s request %d prompt tokens, %d generated, %.3f s%s\n",
                    cs->job->req.kind == SERVE_CHAT ? "chat" : "completion", cs->job->req.n_prompt, generated,
                    now_s() - cs->t0, why == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection ended early)");
        job_unref(s, cs->job);
    }
    free(cs->body);
    free(cs);
    *con_cls = NULL;
}

/* ---- start and stop -------------------------------------------------------- */

kvattn_status kvattn_server_start(const kvattn_model *m, const kvattn_server_params *p, kvattn_server **out) {
    if (!out) return kv_fail(KVATTN_ERR_INVALID_ARG, "server: output pointer is NULL");
    *out = NULL;
    if (!m || !p) return kv_fail(KVATTN_ERR_INVALID_ARG, "server: model or parameters are NULL");
    const kvattn_tokenizer *tok = kvattn_model_tokenizer(m);
    if (!tok) return kv_fail(KVATTN_ERR_INVALID_ARG, "server: the model has no tokenizer");
    if (p->port < 0 || p->port > 65535)
        return kv_fail(KVATTN_ERR_INVALID_ARG, "server: port %d is not in [0, 65535]", p->port);
    kvattn_chat_format format = p->chat_format >= 0 ? (kvattn_chat_format)p->chat_format
                                                    : kvattn_chat_format_detect(kvattn_model_chat_template(m));
    if (format >= KVATTN_CHAT_COUNT) return kv_fail(KVATTN_ERR_INVALID_ARG, "server: no chat format %d", (int)format);
    kvattn_status st = kvattn_chat_format_check(tok, format);
    if (st != KVATTN_OK) return st;
    kvattn_server *s = calloc(1, sizeof *s);
    if (!s) return kv_fail(KVATTN_ERR_NOMEM, "server: out of memory");
    s->m = m, s->p = *p;
    if (!s->p.max_waiting) s->p.max_waiting = 256;
    if (!s->p.max_body) s->p.max_body = 1 << 20;
    if (!s->p.timeout_s) s->p.timeout_s = 60;
    if (!s->p.max_connections) s->p.max_connections = 256;
    s->model_id = strdup(p->model_id ? p->model_id : "kvattn");
    if (p->api_key && (s->bearer = malloc(strlen(p->api_key) + 8))) sprintf(s->bearer, "Bearer %s", p->api_key);
    s->p.api_key = NULL, s->p.model_id = s->model_id, s->p.host = NULL;
    s->started = (long long)time(NULL);
    s->ctx = (serve_context){tok, format, s->model_id, p->engine.n_ctx, p->default_max_tokens, p->sampler};
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, NULL);
    if (!s->model_id || (p->api_key && !s->bearer)) {
        kvattn_server_stop(s);
        return kv_fail(KVATTN_ERR_NOMEM, "server: out of memory");
    }
    if ((st = kvattn_engine_create(m, &p->engine, &s->engine)) != KVATTN_OK) {
        kvattn_server_stop(s);
        return st;
    }
    /* the address */
    const char *host = p->host ? p->host : "127.0.0.1";
    char port_str[16];
    snprintf(port_str, sizeof port_str, "%d", p->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    const int gai = getaddrinfo(host, port_str, &hints, &ai);
    if (gai != 0 || !ai) {
        kvattn_server_stop(s);
        return kv_fail(KVATTN_ERR_INVALID_ARG, "server: --host %s: %s", host, gai_strerror(gai));
    }
    if (pthread_create(&s->engine_thread, NULL, engine_main, s) != 0) {
        freeaddrinfo(ai);
        kvattn_server_stop(s);
        return kv_fail(KVATTN_ERR_NOMEM, "server: cannot start the engine thread");
    }
    s->engine_running = 1;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL | MHD_USE_ITC;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(flags, (uint16_t)p->port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT,
                                 (unsigned)s->p.timeout_s, MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->p.max_connections,
                                 MHD_OPTION_END);
    const int bind_errno = errno;
    freeaddrinfo(ai);
    if (!s->daemon) {
        kvattn_server_stop(s);
        return kv_fail(KVATTN_ERR_IO, "server: cannot listen on %s port %d: %s", host, p->port,
                       bind_errno ? strerror(bind_errno) : "libmicrohttpd refused");
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : p->port;
    *out = s;
    return KVATTN_OK;
}

int kvattn_server_port(const kvattn_server *s) { return s ? s->port : -1; }

kvattn_chat_format kvattn_server_chat_format(const kvattn_server *s) {
    return s ? s->ctx.chat_format : KVATTN_CHAT_PLAIN;
}

void kvattn_server_stop(kvattn_server *s) {
    if (!s) return;
    if (s->daemon) MHD_quiesce_daemon(s->daemon); /* no new connections */
    pthread_mutex_lock(&s->lock);
    s->stopping = 1;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    if (s->engine_running) pthread_join(s->engine_thread, NULL);
    /* jobs queued after the engine's last look end here */
    for (job *j = s->queue, *next; j; j = next) {
        next = j->next;
        pthread_mutex_lock(&s->lock);
        job_end(s, j, NULL, 503, "server_error", "the server is shutting down");
        pthread_mutex_unlock(&s->lock);
        job_unref(s, j);
    }
    s->queue = NULL;
    if (s->daemon) MHD_stop_daemon(s->daemon); /* waits for every connection's thread */
    kvattn_engine_free(s->engine);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
    free(s->model_id), free(s->bearer);
    free(s);
}
