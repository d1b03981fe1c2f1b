/* Token sampling: greedy, temperature, top-k, top-p (nucleus). */
#include "internal.h"

#include "rng.h"
#include <math.h>

#include <stdlib.h>

typedef struct {
    float p;
    int id;
} prob_index;

static float next_unit(uint64_t *state) { /* [0, 1) */
    kv_rng r = {*state};
    float u = kv_rng_unit(&r);
    *state = r.s;
    return u;
}

void kvattn_sampler_init(kvattn_sampler *s, const kvattn_sampler_params *p) {
    s->p = *p;
    s->state = p->seed ? p->seed : 0x853c49e6748fea9bull;
    s->scratch = NULL;
    s->scratch_n = 0;
}

void kvattn_sampler_free(kvattn_sampler *s) {
    free(s->scratch);
    s->scratch = NULL;
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i; /* strict: the lowest id wins ties */
    return best;
}

static int cmp_desc(const void *a, const void *b) {
    const prob_index *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return x->id - y->id;
}

int kvattn_sample(kvattn_sampler *s, float *logits, int n) {
    if (n < 1) return -1;
    if (!(s->p.temperature > 0.0f)) return argmax(logits, n);
    float mx = logits[argmax(logits, n)];
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        logits[i] = expf((logits[i] - mx) / s->p.temperature);
        sum += logits[i];
    }
    for (int i = 0; i < n; i++) logits[i] = (float)(logits[i] / sum);
    int k = s->p.top_k > 0 && s->p.top_k < n ? s->p.top_k : n;
    float top_p = s->p.top_p > 0.0f && s->p.top_p < 1.0f ? s->p.top_p : 1.0f;
    if (k == n && top_p >= 1.0f) { /* plain sampling from the distribution */
        float r = next_unit(&s->state), c = 0.0f;
        for (int i = 0; i < n; i++) {
            c += logits[i];
            if (r < c) return i;
        }
        return n - 1;
    }
    if (s->scratch_n < n) {
        void *p = realloc(s->scratch, sizeof(prob_index) * (size_t)n);
        if (!p) return -1;
        s->scratch = p;
        s->scratch_n = n;
    }
    prob_index *pi = s->scratch;
    for (int i = 0; i < n; i++) pi[i] = (prob_index){logits[i], i};
    qsort(pi, (size_t)n, sizeof *pi, cmp_desc);
    /* Keep the top k, then the smallest prefix whose mass reaches top_p. */
    float mass = 0.0f;
    int keep = 0;
    while (keep < k) {
        mass += pi[keep++].p;
        if (mass >= top_p) break;
    }
    float r = next_unit(&s->state) * mass, c = 0.0f;
    for (int i = 0; i < keep; i++) {
        c += pi[i].p;
        if (r < c) return pi[i].id;
    }
    return pi[keep - 1].id;
}
