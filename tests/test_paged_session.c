/* Sessions on a paged cache, on real models (stories260K: GQA, stories15M:
 * MHA) and the tiny DeepSeek-V2 GGUF test_deepseek writes (MLA, both modes):
 *   - a paged session's logits equal a contiguous session's bit for bit,
 *     prompt and greedy decode, with the pool's blocks in random order;
 *   - a prompt whose prefix another sequence computed reuses its blocks and
 *     gets the same logits as computing it all;
 *   - a full pool fails a decode before anything changes, and the other
 *     sequences go on unharmed;
 *   - batched decode steps, and passes that mix them with prompt pieces,
 *     give each session its own bits; the engine drains; the context's end
 *     is refused cleanly in every case.
 * Tolerance: none. A prompt resumed after a reused prefix is cut into
 * chunks at the same positions as when it runs whole (chunks end at
 * multiples of 128), and a row's products do not depend on how many rows
 * share its chunk (at the AVX-512 levels, while both chunks have 16 rows or
 * more: shorter ones take another kernel), so its logits are the same bits
 * here. Naive MLA alone (its
 * expansion of the cached latents) can differ in the last bits at the
 * AVX-512 levels (1.7e-7 of the largest logit seen): 1e-3 there, as a
 * 16-bit cache can round an element that differs in its last f32 bits to
 * the neighbouring f16 (2^-11 ≈ 4.9e-4 relative). */
#include "test_util.h"

#include "kv/kv_pool.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef KVATTN_DEEPSEEK_FIXTURE
#define KVATTN_DEEPSEEK_FIXTURE "tiny_deepseek2.gguf"
#endif

/* The prompt's logits (every token), then `gen` greedy steps' logits, into
 * logits [n + gen][V]. */
static kvattn_status run(kvattn_session *s, const int32_t *prompt, int n, int gen, int V, float *logits) {
    kvattn_status st = kvattn_session_decode(s, prompt, n, logits, 1);
    for (int g = 0; g < gen && st == KVATTN_OK; g++) {
        const float *last = logits + (size_t)(n + g - 1) * V;
        int32_t next = 0;
        for (int i = 1; i < V; i++)
            if (last[i] > last[next]) next = i;
        st = kvattn_session_decode(s, &next, 1, logits + (size_t)(n + g) * V, 0);
    }
    return st;
}

static double rel_diff(const float *a, const float *b, size_t n) {
    return test_max_abs_diff(a, b, n) / (test_max_abs(b, n) + 1e-30);
}

static void check_model(const char *name, const kvattn_model *m, kvattn_type kv, kvattn_mla_mode mode) {
    const kvattn_model_desc *d = kvattn_model_describe(m);
    const int V = (int)d->vocab_size, N = 200, GEN = 24, CTX = 320;
    int32_t prompt[200], prompt2[200];
    test_rng r = {0x5eed + (uint64_t)V};
    for (int i = 0; i < N; i++) prompt[i] = prompt2[i] = test_randint(&r, 3, V - 1);
    float *want = malloc(sizeof(float) * (size_t)(N + GEN) * V), *got = malloc(sizeof(float) * (size_t)(N + GEN) * V);
    kvattn_session *flat = NULL, *a = NULL, *b = NULL;
    kvattn_kv_pool *pool = NULL;
    CHECK_OK(kvattn_session_create(m, CTX, kv, mode, &flat));
    CHECK_OK(kvattn_kv_pool_create(&d->attn, d->n_layers, kv, kv, 64, 16, &pool));
    if (!flat || !pool || !want || !got) goto done;
    kv_pool_shuffle(pool, 77);

    /* paged == contiguous, prompt and generation */
    CHECK_OK(run(flat, prompt, N, GEN, V, want));
    CHECK_OK(kvattn_session_create_paged(m, pool, CTX, mode, &a));
    if (!a) goto done;
    CHECK_OK(run(a, prompt, N, GEN, V, got));
    CHECK(!memcmp(want, got, sizeof(float) * (size_t)(N + GEN) * V),
          "%s: paged logits differ from contiguous (max rel %.3g)", name, rel_diff(got, want, (size_t)(N + GEN) * V));

    /* a prompt sharing a's first 150 tokens reuses 2 blocks (128 tokens), then runs the
     * other 72 as one chunk, as the contiguous session cuts 200 tokens: 128 + 72 */
    for (int i = 150; i < N; i++) prompt2[i] = 3 + (prompt2[i] + 17) % (V - 3);
    CHECK_OK(kvattn_session_rewind(flat, 0));
    CHECK_OK(kvattn_session_decode(flat, prompt2, N, want, 0));
    CHECK_OK(kvattn_session_create_paged(m, pool, CTX, mode, &b));
    if (!b) goto done;
    int reused = -1;
    CHECK(kvattn_session_reuse_prefix(b, prompt2, 0, &reused) == KVATTN_OK && reused == 0 &&
              kvattn_session_reuse_prefix(b, prompt2, 1, &reused) == KVATTN_OK && reused == 0,
          "%s: prompts of 0 and 1 tokens reuse nothing", name);
    CHECK_OK(kvattn_session_reuse_prefix(b, prompt2, N, &reused));
    CHECK(reused == 128 && kvattn_session_pos(b) == 128, "%s: reused %d tokens, want 128", name, reused);
    CHECK_OK(kvattn_session_decode(b, prompt2 + reused, N - reused, got, 0));
    CHECK(!memcmp(want, got, sizeof(float) * V), "%s: logits after a reused prefix differ (max rel %.3g)", name,
          rel_diff(got, want, (size_t)V));
    kvattn_kv_pool_stats s;
    kvattn_kv_pool_get_stats(pool, &s);
    CHECK(s.hits == 2, "%s: %llu prefix hits", name, (unsigned long long)s.hits);

    /* reused 64 tokens (the second block differs): the rest runs as 128 + 8, the contiguous as 128 + 72 */
    prompt2[100] = 3 + (prompt2[100] + 1) % (V - 3);
    kvattn_session_free(b), b = NULL;
    CHECK_OK(kvattn_session_rewind(flat, 0));
    CHECK_OK(kvattn_session_decode(flat, prompt2, N, want, 0));
    CHECK_OK(kvattn_session_create_paged(m, pool, CTX, mode, &b));
    if (!b) goto done;
    CHECK_OK(kvattn_session_reuse_prefix(b, prompt2, N, &reused));
    CHECK_OK(kvattn_session_decode(b, prompt2 + reused, N - reused, got, 0));
    const double e = rel_diff(got, want, (size_t)V);
    const int same = !memcmp(want, got, sizeof(float) * V);
    CHECK(reused == 64 && e <= 1e-3 && (same || mode == KVATTN_MLA_NAIVE),
          "%s: reused %d (want 64), max rel diff %.3g (bit-identical expected but for naive MLA)", name, reused, e);
    printf("  [%s] %s: after a 64-token reused prefix, logits %s (max rel %.2g)\n", kvattn_isa(), name,
           same ? "bit-identical" : "within tolerance", e);

    /* the whole prompt reused but its last token: the same logits as the first time */
    kvattn_session_free(b), b = NULL;
    CHECK_OK(kvattn_session_create_paged(m, pool, CTX, mode, &b));
    if (!b) goto done;
    CHECK_OK(kvattn_session_reuse_prefix(b, prompt, 129, &reused));
    CHECK(reused == 128, "%s: a 129-token prompt reuses %d", name, reused);
    CHECK_OK(kvattn_session_rewind(flat, 0));
    CHECK_OK(kvattn_session_decode(flat, prompt, 129, want, 0));
    CHECK_OK(kvattn_session_decode(b, prompt + 128, 1, got, 0));
    const double e1 = rel_diff(got, want, (size_t)V);
    CHECK(e1 <= 1e-3, "%s: one token after 128 reused: max rel diff %.3g", name, e1);

done:
    kvattn_session_free(flat), kvattn_session_free(a), kvattn_session_free(b);
    kvattn_kv_pool_free(pool);
    free(want), free(got);
}

/* A pool of 3 blocks: the second sequence's prompt does not fit; it fails
 * whole and the first is unharmed. */
static void check_pool_full(const kvattn_model *m) {
    const kvattn_model_desc *d = kvattn_model_describe(m);
    const int V = (int)d->vocab_size;
    int32_t p1[150], p2[100];
    test_rng r = {3};
    for (int i = 0; i < 150; i++) p1[i] = test_randint(&r, 3, V - 1);
    for (int i = 0; i < 100; i++) p2[i] = test_randint(&r, 3, V - 1);
    kvattn_kv_pool *pool = NULL;
    kvattn_session *a = NULL, *b = NULL, *flat = NULL;
    float *la = malloc(sizeof(float) * V), *lf = malloc(sizeof(float) * V);
    CHECK_OK(kvattn_kv_pool_create(&d->attn, d->n_layers, KVATTN_TYPE_F16, KVATTN_TYPE_F16, 64, 3, &pool));
    CHECK_OK(kvattn_session_create(m, 256, KVATTN_TYPE_F16, KVATTN_MLA_ABSORBED, &flat));
    if (pool && flat) {
        CHECK_OK(kvattn_session_create_paged(m, pool, 256, KVATTN_MLA_ABSORBED, &a));
        CHECK_OK(kvattn_session_create_paged(m, pool, 256, KVATTN_MLA_ABSORBED, &b));
    }
    if (a && b) {
        CHECK_OK(kvattn_session_decode(a, p1, 150, NULL, 0));
        kvattn_status st = kvattn_session_decode(b, p2, 100, NULL, 0);
        CHECK(st == KVATTN_ERR_POOL_FULL && kvattn_session_pos(b) == 0 && strstr(kvattn_last_error(), "KV pool full"),
              "full pool: %s (%s), position %d", kvattn_status_name(st), kvattn_last_error(), kvattn_session_pos(b));
        int32_t t = 5;
        CHECK_OK(kvattn_session_decode(a, &t, 1, la, 0));
        CHECK_OK(kvattn_session_decode(flat, p1, 150, NULL, 0));
        CHECK_OK(kvattn_session_decode(flat, &t, 1, lf, 0));
        CHECK(!memcmp(la, lf, sizeof(float) * V), "the first sequence is unharmed");
        kvattn_session_free(a), a = NULL;
        CHECK_OK(kvattn_session_decode(b, p2, 100, NULL, 0));
    }
    kvattn_session_free(a), kvattn_session_free(b), kvattn_session_free(flat);
    kvattn_kv_pool_free(pool);
    free(la), free(lf);
}

/* A batched decode step gives each session the logits it gets alone, bit for
 * bit: five sessions (contiguous and paged) at different depths, 12 greedy
 * steps in batches whose membership changes every step. */
static void check_batch(const char *name, const kvattn_model *m, kvattn_type kv, kvattn_mla_mode mode) {
    enum { N = 5, STEPS = 12 };
    const kvattn_model_desc *d = kvattn_model_describe(m);
    const int V = (int)d->vocab_size;
    kvattn_kv_pool *pool = NULL;
    kvattn_session *seq[N] = {0}, *alone[N] = {0};
    float *lb = malloc(sizeof(float) * (size_t)N * V), *la = malloc(sizeof(float) * V);
    int32_t next[N], prompt[160];
    test_rng r = {0xba7 + (uint64_t)V};
    CHECK_OK(kvattn_kv_pool_create(&d->attn, d->n_layers, kv, kv, 64, 16, &pool));
    if (!pool) goto done;
    kv_pool_shuffle(pool, 9);
    for (int i = 0; i < N; i++) {
        const int n = 1 + 37 * i;
        for (int t = 0; t < n; t++) prompt[t] = test_randint(&r, 3, V - 1);
        CHECK_OK(i % 2 ? kvattn_session_create_paged(m, pool, 200, mode, &seq[i])
                       : kvattn_session_create(m, 200, kv, mode, &seq[i]));
        CHECK_OK(kvattn_session_create(m, 200, kv, mode, &alone[i]));
        if (!seq[i] || !alone[i]) goto done;
        CHECK_OK(kvattn_session_decode(seq[i], prompt, n, la, 0));
        CHECK_OK(kvattn_session_decode(alone[i], prompt, n, NULL, 0));
        next[i] = 0;
        for (int v = 1; v < V; v++)
            if (la[v] > la[next[i]]) next[i] = v;
    }
    int same = 1, steps = 0;
    for (int g = 0; g < STEPS && same; g++) {
        kvattn_session *batch[N];
        int32_t tok[N], who[N], b = 0;
        for (int i = 0; i < N; i++)
            if ((g + i) % 3 != 0 || g == 0) batch[b] = seq[i], tok[b] = next[i], who[b++] = i;
        kvattn_status st = kvattn_session_decode_batch(batch, b, tok, lb);
        CHECK(st == KVATTN_OK, "%s: batched step %d: %s", name, g, kvattn_last_error());
        if (st != KVATTN_OK) break;
        for (int j = 0; j < b && same; j++) {
            const int i = who[j];
            CHECK_OK(kvattn_session_decode(alone[i], &tok[j], 1, la, 0));
            same = !memcmp(la, lb + (size_t)j * V, sizeof(float) * V);
            CHECK(same, "%s: step %d, sequence %d of a batch of %d: logits differ from its own decode (max rel %.3g)",
                  name, g, i, b, rel_diff(lb + (size_t)j * V, la, (size_t)V));
            next[i] = 0;
            for (int v = 1; v < V; v++)
                if (la[v] > la[next[i]]) next[i] = v;
        }
        steps++;
    }
    CHECK(steps == STEPS, "%s: %d of %d batched steps ran", name, steps, STEPS);
    /* bad batches: a session twice, a token outside the vocabulary; nothing moves */
    const int p0 = kvattn_session_pos(seq[0]);
    kvattn_session *twice[2] = {seq[0], seq[0]};
    int32_t two[2] = {5, 5}, bad = V;
    CHECK(kvattn_session_decode_batch(twice, 2, two, lb) == KVATTN_ERR_INVALID_ARG &&
              kvattn_session_decode_batch(seq, 1, &bad, lb) == KVATTN_ERR_INVALID_ARG &&
              kvattn_session_pos(seq[0]) == p0,
          "%s: bad batches refused", name);
done:
    for (int i = 0; i < N; i++) kvattn_session_free(seq[i]), kvattn_session_free(alone[i]);
    kvattn_kv_pool_free(pool);
    free(lb), free(la);
}

/* A batched pass that mixes prompt pieces with decode tokens gives each piece
 * the logits its session gets alone for the same tokens, bit for bit: five
 * sessions (contiguous and paged) fed pieces of 1 to 24 tokens, 10 passes
 * whose membership and piece sizes change each time; pieces stop at
 * multiples of KVATTN_SESSION_CHUNK positions, where a prompt is cut, and a
 * piece that crosses one is refused. */
static void check_pass(const char *name, const kvattn_model *m, kvattn_type kv, kvattn_mla_mode mode) {
    enum { N = 5, PASSES = 10, MAX_PIECE = 24 };
    const kvattn_model_desc *d = kvattn_model_describe(m);
    const int V = (int)d->vocab_size;
    kvattn_kv_pool *pool = NULL;
    kvattn_session *seq[N] = {0}, *alone[N] = {0};
    float *lb = malloc(sizeof(float) * (size_t)N * V), *la = malloc(sizeof(float) * V);
    int32_t tok[N][MAX_PIECE], prompt[128];
    test_rng r = {0x9a55 + (uint64_t)V};
    CHECK_OK(kvattn_kv_pool_create(&d->attn, d->n_layers, kv, kv, 64, 16, &pool));
    if (!pool || !lb || !la) goto done;
    kv_pool_shuffle(pool, 5);
    for (int i = 0; i < N; i++) {
        const int n = 1 + 25 * i; /* the last two pass position 128 within the passes */
        for (int t = 0; t < n; t++) prompt[t] = test_randint(&r, 3, V - 1);
        CHECK_OK(i % 2 ? kvattn_session_create_paged(m, pool, 400, mode, &seq[i])
                       : kvattn_session_create(m, 400, kv, mode, &seq[i]));
        CHECK_OK(kvattn_session_create(m, 400, kv, mode, &alone[i]));
        if (!seq[i] || !alone[i]) goto done;
        CHECK_OK(kvattn_session_decode(seq[i], prompt, n, NULL, 0));
        CHECK_OK(kvattn_session_decode(alone[i], prompt, n, NULL, 0));
    }
    int same = 1, passes = 0, pieces_long = 0;
    for (int g = 0; g < PASSES && same; g++) {
        kvattn_batch_piece pc[N];
        int who[N], b = 0;
        for (int i = 0; i < N; i++) {
            if ((g + i) % 4 == 3) continue;
            const int pos = kvattn_session_pos(seq[i]), room = KVATTN_SESSION_CHUNK - pos % KVATTN_SESSION_CHUNK;
            int n = (g + 2 * i) % 3 == 0 ? 1 : test_randint(&r, 2, MAX_PIECE);
            if (n > room) n = room;
            for (int t = 0; t < n; t++) tok[i][t] = test_randint(&r, 3, V - 1);
            pieces_long += n > 1;
            pc[b] = (kvattn_batch_piece){seq[i], tok[i], n};
            who[b++] = i;
        }
        kvattn_status st = kvattn_session_run_batch(pc, b, lb);
        CHECK(st == KVATTN_OK, "%s: pass %d: %s", name, g, kvattn_last_error());
        if (st != KVATTN_OK) break;
        for (int j = 0; j < b && same; j++) {
            const int i = who[j];
            CHECK_OK(kvattn_session_decode(alone[i], pc[j].tokens, pc[j].n, la, 0));
            same = !memcmp(la, lb + (size_t)j * V, sizeof(float) * V) &&
                   kvattn_session_pos(alone[i]) == kvattn_session_pos(seq[i]);
            CHECK(same, "%s: pass %d, piece %d (%d tokens at %d) of %d: logits differ from its own run (max rel %.3g)",
                  name, g, i, pc[j].n, kvattn_session_pos(alone[i]) - pc[j].n, b,
                  rel_diff(lb + (size_t)j * V, la, (size_t)V));
        }
        passes++;
    }
    CHECK(passes == PASSES && pieces_long >= PASSES, "%s: %d of %d mixed passes ran, %d pieces of several tokens", name,
          passes, PASSES, pieces_long);
    /* a piece across a multiple of the chunk, one session twice, too many tokens: refused, nothing moves */
    int p0 = kvattn_session_pos(seq[0]);
    CHECK_OK(kvattn_session_rewind(seq[0], KVATTN_SESSION_CHUNK - 2 < p0 ? KVATTN_SESSION_CHUNK - 2 : p0));
    p0 = kvattn_session_pos(seq[0]);
    int32_t many[KVATTN_SESSION_CHUNK + 1];
    for (int t = 0; t <= KVATTN_SESSION_CHUNK; t++) many[t] = 5;
    const kvattn_batch_piece across = {seq[0], many, KVATTN_SESSION_CHUNK - p0 % KVATTN_SESSION_CHUNK + 1};
    const kvattn_batch_piece twice[2] = {{seq[0], many, 1}, {seq[0], many, 1}};
    const kvattn_batch_piece big[2] = {{seq[1], many, 100}, {seq[2], many, 29}};
    const int p1 = kvattn_session_pos(seq[1]);
    CHECK(kvattn_session_run_batch(&across, 1, lb) == KVATTN_ERR_INVALID_ARG &&
              kvattn_session_run_batch(twice, 2, lb) == KVATTN_ERR_INVALID_ARG &&
              kvattn_session_run_batch(big, 2, lb) == KVATTN_ERR_INVALID_ARG && kvattn_session_pos(seq[0]) == p0 &&
              kvattn_session_pos(seq[1]) == p1,
          "%s: bad passes refused", name);
done:
    for (int i = 0; i < N; i++) kvattn_session_free(seq[i]), kvattn_session_free(alone[i]);
    kvattn_kv_pool_free(pool);
    free(lb), free(la);
}

/* The engine: requests run to their ends, a running and a waiting one are
 * cancelled, a pool of 6 blocks forces waits and preemptions, and at the end
 * every block is back (none used; published ones cached). */
static void check_engine(const kvattn_model *m) {
    const kvattn_model_desc *d = kvattn_model_describe(m);
    const int V = (int)d->vocab_size;
    const size_t bpt = kvattn_kv_bytes_per_token_kv(&d->attn, d->n_layers, KVATTN_TYPE_F16, KVATTN_TYPE_F16);
    kvattn_engine_params ep = {.n_ctx = 256, .max_batch = 4, .kv_mem = bpt * 64 * 6, .kv_type = KVATTN_TYPE_F16};
    kvattn_engine *e = NULL;
    CHECK_OK(kvattn_engine_create(m, &ep, &e));
    if (!e) return;
    kvattn_request_params rp = {.max_tokens = 60, .end_token = -1, .sampler = {.temperature = 0.0f, .seed = 1}};
    int32_t prompt[100];
    int ids[6];
    test_rng r = {17};
    for (int i = 0; i < 6; i++) {
        const int n = 30 + 12 * i;
        for (int t = 0; t < n; t++) prompt[t] = test_randint(&r, 3, V - 1);
        CHECK_OK(kvattn_engine_submit(e, prompt, n, &rp, &ids[i]));
    }
    int active = 0, steps = 0;
    CHECK_OK(kvattn_engine_step(e, &active));
    CHECK_OK(kvattn_engine_cancel(e, ids[1])); /* running */
    CHECK_OK(kvattn_engine_cancel(e, ids[5])); /* waiting */
    kvattn_engine_stats s;
    kvattn_engine_get_stats(e, &s);
    CHECK(s.running == 3 && s.waiting == 1, "after two cancels: %d running, %d waiting", s.running, s.waiting);
    while (active > 0 && steps++ < 1000) CHECK_OK(kvattn_engine_step(e, &active));
    kvattn_engine_get_stats(e, &s);
    CHECK(active == 0 && s.finished == 6 && s.running == 0 && s.waiting == 0 && s.pool.used == 0 &&
              s.pool.used + s.pool.cached + s.pool.free == s.pool.n_blocks && s.preemptions >= 1,
          "engine drained: %llu finished, %d blocks used, %llu preemptions", (unsigned long long)s.finished,
          s.pool.used, (unsigned long long)s.preemptions);
    for (int i = 0; i < 6; i++) {
        kvattn_request_state st;
        int n = 0;
        CHECK_OK(kvattn_engine_result(e, ids[i], NULL, &n, &st));
        const int cancelled = i == 1 || i == 5;
        CHECK(cancelled ? st == KVATTN_REQUEST_CANCELLED : st == KVATTN_REQUEST_DONE_LENGTH && n == 60,
              "request %d: state %d, %d tokens", i, (int)st, n);
    }
    /* release: ids are forgotten, then reused; a running request released mid-way gives its blocks back */
    const int32_t *first_tokens = NULL;
    int first_n = 0;
    CHECK_OK(kvattn_engine_result(e, ids[0], &first_tokens, &first_n, NULL));
    int32_t first_out[60];
    memcpy(first_out, first_tokens, sizeof(int32_t) * (size_t)first_n);
    for (int i = 0; i < 6; i++) CHECK_OK(kvattn_engine_release(e, ids[i]));
    CHECK(kvattn_engine_result(e, ids[2], NULL, NULL, NULL) == KVATTN_ERR_INVALID_ARG, "result of a released id");
    CHECK(kvattn_engine_release(e, ids[2]) == KVATTN_ERR_INVALID_ARG, "a second release");
    r = (test_rng){17};
    for (int t = 0; t < 30; t++) prompt[t] = test_randint(&r, 3, V - 1); /* request 0's prompt again */
    int again = -1, busy = -1;
    CHECK_OK(kvattn_engine_submit(e, prompt, 30, &rp, &again));
    CHECK_OK(kvattn_engine_submit(e, prompt, 30, &rp, &busy));
    CHECK(again == ids[0] && busy == ids[1], "released slots reused: ids %d and %d", again, busy);
    for (steps = 0, active = 1; active > 0 && steps++ < 1000;) {
        CHECK_OK(kvattn_engine_step(e, &active));
        if (steps == 3) CHECK_OK(kvattn_engine_release(e, busy));
    }
    int n_again = 0;
    const int32_t *out_again = NULL;
    CHECK_OK(kvattn_engine_result(e, again, &out_again, &n_again, NULL));
    CHECK(n_again == first_n && !memcmp(out_again, first_out, sizeof(int32_t) * (size_t)first_n),
          "a request in a reused slot generates what its first run did");
    CHECK_OK(kvattn_engine_release(e, again));
    kvattn_engine_get_stats(e, &s);
    CHECK(s.running == 0 && s.waiting == 0 && s.pool.used == 0, "after releases: %d running, %d blocks used", s.running,
          s.pool.used);
    /* a prompt that fills the context: its one token, then the context's end */
    int32_t full[256];
    for (int t = 0; t < 256; t++) full[t] = test_randint(&r, 3, V - 1);
    int whole = -1;
    CHECK_OK(kvattn_engine_submit(e, full, 256, &rp, &whole));
    for (steps = 0, active = 1; active > 0 && steps++ < 100;) CHECK_OK(kvattn_engine_step(e, &active));
    kvattn_request_state full_state;
    int full_n = 0;
    CHECK_OK(kvattn_engine_result(e, whole, NULL, &full_n, &full_state));
    CHECK(full_state == KVATTN_REQUEST_DONE_CONTEXT && full_n == 1, "a prompt of n_ctx tokens: state %d, %d tokens",
          (int)full_state, full_n);
    CHECK_OK(kvattn_engine_release(e, whole));
    CHECK(kvattn_engine_cancel(e, 99) == KVATTN_ERR_INVALID_ARG, "cancel of an unknown id");
    CHECK(kvattn_engine_submit(e, prompt, 0, &rp, &ids[0]) == KVATTN_ERR_INVALID_ARG, "an empty prompt");
    prompt[0] = V;
    CHECK(kvattn_engine_submit(e, prompt, 1, &rp, &ids[0]) == KVATTN_ERR_INVALID_ARG, "a token out of the vocabulary");
    kvattn_engine_free(e);
}

/* The context filled to exactly its end, then one past, contiguous and paged,
 * every cache type, both MLA modes: the extra token is refused naming the
 * limit, and nothing moves (the same logits come after a rewind). */
static void check_context_end(const char *name, const kvattn_model *m) {
    const kvattn_model_desc *d = kvattn_model_describe(m);
    const int V = (int)d->vocab_size;
    const kvattn_type types[4] = {KVATTN_TYPE_F32, KVATTN_TYPE_F16, KVATTN_TYPE_BF16, KVATTN_TYPE_Q8_0};
    const int32_t ids[9] = {1, 10, 20, 30, 40, 50, 60, 70, 80};
    float *a = malloc(sizeof(float) * V), *b = malloc(sizeof(float) * V);
    for (int t = 0; t < 4; t++)
        for (int mode = 0; mode < 2; mode++)
            for (int paged = 0; paged < 2; paged++) {
                kvattn_kv_pool *pool = NULL;
                kvattn_session *s = NULL;
                if (paged) CHECK_OK(kvattn_kv_pool_create(&d->attn, d->n_layers, types[t], types[t], 64, 1, &pool));
                CHECK_OK(paged ? kvattn_session_create_paged(m, pool, 8, (kvattn_mla_mode)mode, &s)
                               : kvattn_session_create(m, 8, types[t], (kvattn_mla_mode)mode, &s));
                if (s) {
                    CHECK_OK(kvattn_session_decode(s, ids, 7, NULL, 0));
                    CHECK_OK(kvattn_session_decode(s, ids + 7, 1, a, 0)); /* the last place */
                    const kvattn_status st = kvattn_session_decode(s, ids + 8, 1, b, 0);
                    CHECK(st == KVATTN_ERR_CACHE_FULL && strstr(kvattn_last_error(), "context of 8") &&
                              kvattn_session_pos(s) == 8,
                          "%s, %s, %s, %s: one past the end: %s (%s), position %d", name, kvattn_type_name(types[t]),
                          mode ? "naive" : "absorbed", paged ? "paged" : "contiguous", kvattn_status_name(st),
                          kvattn_last_error(), kvattn_session_pos(s));
                    CHECK_OK(kvattn_session_rewind(s, 7));
                    CHECK_OK(kvattn_session_decode(s, ids + 7, 1, b, 0));
                    CHECK(!memcmp(a, b, sizeof(float) * V), "%s, %s: the refused token changed nothing", name,
                          kvattn_type_name(types[t]));
                }
                kvattn_session_free(s);
                kvattn_kv_pool_free(pool);
            }
    free(a), free(b);
}

static const kvattn_model *batch_model;
static kvattn_type batch_kv;
static kvattn_mla_mode batch_mode;
static const char *batch_name;

static void check_batch_level(const char *isa) {
    char name[128];
    snprintf(name, sizeof name, "[%s] %s", isa, batch_name);
    check_batch(name, batch_model, batch_kv, batch_mode);
    check_pass(name, batch_model, batch_kv, batch_mode);
}

/* check_batch and check_pass at every kernel level. */
static void check_batch_levels(const char *name, const kvattn_model *m, kvattn_type kv, kvattn_mla_mode mode) {
    batch_model = m, batch_kv = kv, batch_mode = mode, batch_name = name;
    test_each_isa(check_batch_level);
}

int main(void) {
    const char *needed[] = {"stories260K.bin", "tok512.bin", "stories15M.bin", "tokenizer.bin", NULL};
    kvattn_model *ds = NULL;
    if (kvattn_model_load(KVATTN_DEEPSEEK_FIXTURE, NULL, &ds) == KVATTN_OK) {
        check_model("tiny deepseek2 absorbed", ds, KVATTN_TYPE_BF16, KVATTN_MLA_ABSORBED);
        check_model("tiny deepseek2 naive", ds, KVATTN_TYPE_F32, KVATTN_MLA_NAIVE);
        check_pool_full(ds);
        check_batch_levels("tiny deepseek2 (MLA, MoE) absorbed", ds, KVATTN_TYPE_BF16, KVATTN_MLA_ABSORBED);
        check_batch_levels("tiny deepseek2 naive", ds, KVATTN_TYPE_Q8_0, KVATTN_MLA_NAIVE);
        check_engine(ds);
        check_context_end("tiny deepseek2 (MLA)", ds);
        kvattn_model_free(ds);
    } else {
        CHECK(0, "%s: %s (test_deepseek writes it)", KVATTN_DEEPSEEK_FIXTURE, kvattn_last_error());
    }
    if (!test_models_found(test_models_dir(), needed))
        return test_models_missing("test_paged_session", test_models_dir());
    kvattn_model *g = NULL, *mha = NULL;
    CHECK_OK(kvattn_model_load(test_model_path("stories260K.bin"), test_model_path("tok512.bin"), &g));
    CHECK_OK(kvattn_model_load(test_model_path("stories15M.bin"), test_model_path("tokenizer.bin"), &mha));
    if (g) {
        check_model("stories260K (GQA) f16", g, KVATTN_TYPE_F16, KVATTN_MLA_ABSORBED);
        check_model("stories260K (GQA) q8_0", g, KVATTN_TYPE_Q8_0, KVATTN_MLA_ABSORBED);
        check_pool_full(g);
        check_batch_levels("stories260K (GQA) q8_0", g, KVATTN_TYPE_Q8_0, KVATTN_MLA_ABSORBED);
        check_engine(g);
        check_context_end("stories260K (GQA)", g);
    }
    if (mha) {
        check_model("stories15M (MHA) f16", mha, KVATTN_TYPE_F16, KVATTN_MLA_ABSORBED);
        check_batch_levels("stories15M (MHA) f16", mha, KVATTN_TYPE_F16, KVATTN_MLA_ABSORBED);
    }
    kvattn_model_free(g), kvattn_model_free(mha);
    return test_finish("test_paged_session");
}
