/* Token sampling in llama.cpp's order: penalties, then top-k, top-p and min-p
 * on the distribution at temperature 1, then the temperature, then a draw. */
#include "internal.h"

#include "rng.h"

#include "kernels/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float logit;
    int id;
} candidate;

void kvattn_sampler_init(kvattn_sampler *s, const kvattn_sampler_params *p) {
    memset(s, 0, sizeof *s);
    s->p = *p;
    s->state = kv_rng_seeded(p->seed ? p->seed : 0x853c49e6748fea9bull).s;
}

void kvattn_sampler_free(kvattn_sampler *s) {
    free(s->scratch);
    free(s->history);
    s->scratch = NULL, s->history = NULL;
    s->scratch_n = s->n_history = s->cap_history = 0;
}

void kvattn_sampler_reset(kvattn_sampler *s) { s->n_history = 0; }

void kvattn_sampler_accept(kvattn_sampler *s, int token) {
    if (s->n_history == s->cap_history) {
        int cap = s->cap_history ? 2 * s->cap_history : 256;
        int32_t *h = realloc(s->history, sizeof *h * (size_t)cap);
        if (!h) return; /* the penalties then see fewer tokens; nothing else depends on it */
        s->history = h, s->cap_history = cap;
    }
    s->history[s->n_history++] = token;
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i; /* strict: the lowest id wins ties */
    return best;
}

/* Repetition, presence and frequency penalties over the window of accepted tokens. */
static void apply_penalties(const kvattn_sampler *s, float *logits, int n) {
    const kvattn_sampler_params *p = &s->p;
    const int on = (p->repeat_penalty > 0.0f && p->repeat_penalty != 1.0f) || p->presence_penalty != 0.0f ||
                   p->frequency_penalty != 0.0f;
    if (!on || p->repeat_last_n == 0 || s->n_history == 0) return;
    const int window = p->repeat_last_n < 0 || p->repeat_last_n > s->n_history ? s->n_history : p->repeat_last_n;
    const int32_t *h = s->history + s->n_history - window;
    for (int i = 0; i < window; i++) { /* each distinct token once, with its count */
        const int id = h[i];
        if (id < 0 || id >= n) continue;
        int seen_before = 0, count = 0;
        for (int j = 0; j < window; j++) {
            if (h[j] != id) continue;
            if (j < i) seen_before = 1;
            count++;
        }
        if (seen_before) continue;
        float *l = &logits[id];
        if (p->repeat_penalty > 0.0f && p->repeat_penalty != 1.0f)
            *l = *l > 0.0f ? *l / p->repeat_penalty : *l * p->repeat_penalty;
        *l -= (float)count * p->frequency_penalty + p->presence_penalty;
    }
}

static int by_logit_desc(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id - y->id;
}

/* The k largest logits, sorted, into c (k ≤ n): a min-heap of k over one pass. */
static void top_candidates(const float *logits, int n, int k, candidate *c) {
    int m = 0;
    for (int i = 0; i < n; i++) {
        const candidate x = {logits[i], i};
        if (m < k) { /* sift up */
            int j = m++;
            while (j > 0 && by_logit_desc(&c[(j - 1) / 2], &x) < 0) c[j] = c[(j - 1) / 2], j = (j - 1) / 2;
            c[j] = x;
        } else if (by_logit_desc(&x, &c[0]) < 0) { /* better than the heap's worst: sift down */
            int j = 0;
            for (;;) {
                int a = 2 * j + 1, b = a + 1, w = j;
                const candidate *worst = &x;
                if (a < k && by_logit_desc(&c[a], worst) > 0) w = a, worst = &c[a];
                if (b < k && by_logit_desc(&c[b], worst) > 0) w = b, worst = &c[b];
                if (w == j) break;
                c[j] = c[w], j = w;
            }
            c[j] = x;
        }
    }
    qsort(c, (size_t)m, sizeof *c, by_logit_desc);
}

/* A draw from the whole distribution at the sampler's temperature, walked in
 * vocabulary order as llama2.c's sample_mult walks it: nothing to sort, and
 * the exponentials in the machine's vector exp. */
static int draw_untruncated(kvattn_sampler *s, const float *logits, int n, float *e) {
    float mx = logits[0];
    for (int i = 1; i < n; i++) mx = logits[i] > mx ? logits[i] : mx;
    const float inv_t = 1.0f / s->p.temperature;
    const float *x = logits;
    if (inv_t != 1.0f) {
        for (int i = 0; i < n; i++) e[i] = logits[i] * inv_t;
        x = e;
    }
    const double total = kv_exp_shift_sum(x, mx * inv_t, e, n);
    kv_rng r = {s->state};
    const double target = (double)kv_rng_unit(&r) * total;
    s->state = r.s;
    double acc = 0.0;
    int last = 0;
    for (int i = 0; i < n; i++) {
        if (e[i] > 0.0f) last = i;
        acc += e[i];
        if (target < acc) return i;
    }
    return last; /* the walk's sum fell a rounding short of the kernel's */
}

int kvattn_sample(kvattn_sampler *s, float *logits, int n) {
    if (n < 1) return -1;
    const kvattn_sampler_params *p = &s->p;
    apply_penalties(s, logits, n);
    if (!(p->temperature > 0.0f)) return argmax(logits, n);
    const int k = p->top_k > 0 && p->top_k < n ? p->top_k : n;
    if (s->scratch_n < k) {
        void *q = realloc(s->scratch, sizeof(candidate) * (size_t)k);
        if (!q) return -1;
        s->scratch = q, s->scratch_n = k;
    }
    if (k == n && !(p->top_p > 0.0f && p->top_p < 1.0f) && !(p->min_p > 0.0f && p->min_p <= 1.0f))
        return draw_untruncated(s, logits, n, s->scratch); /* n candidates' room holds n floats */
    candidate *c = s->scratch;
    top_candidates(logits, n, k, c);
    /* top-p and min-p judge the candidates at temperature 1 */
    int keep = k;
    const float mx = c[0].logit;
    if (p->top_p > 0.0f && p->top_p < 1.0f) {
        double total = 0.0, mass = 0.0;
        for (int i = 0; i < k; i++) total += exp((double)(c[i].logit - mx));
        for (keep = 0; keep < k;) {
            mass += exp((double)(c[keep++].logit - mx)) / total;
            if (mass >= p->top_p) break;
        }
    }
    if (p->min_p > 0.0f && p->min_p <= 1.0f) {
        const float floor_logit = mx + logf(p->min_p); /* p_i ≥ min_p · p_max */
        int m = 1;
        while (m < keep && c[m].logit >= floor_logit) m++;
        keep = m;
    }
    double sum = 0.0;
    for (int i = 0; i < keep; i++) sum += exp((double)(c[i].logit - mx) / p->temperature);
    kv_rng r = {s->state};
    const double target = (double)kv_rng_unit(&r) * sum;
    s->state = r.s;
    double acc = 0.0;
    for (int i = 0; i < keep; i++) {
        acc += exp((double)(c[i].logit - mx) / p->temperature);
        if (target < acc) return c[i].id;
    }
    return c[keep - 1].id;
}
