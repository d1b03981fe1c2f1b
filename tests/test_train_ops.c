/* The training ops' backwards against finite differences of their forwards,
 * on small random shapes with the edge cases: one token, odd sizes, one KV
 * head and as many as query heads, query/key widths unlike the value width
 * (MLA's naive form), partial RoPE, both pairings and YaRN's frequencies.
 *
 * Each op's scalar loss is L = Σ c ⊙ y for fixed random c, so the backward
 * runs with dy = c. Central differences with h = 1e-2 (relative to |x| past
 * 1): the forwards are f32, so L carries about 1e-7 relative rounding, over
 * 2h that is under 1e-4 of a gradient of order one, and the truncation error
 * of smooth ops is O(h²) ≈ 1e-4. Tolerance: the difference between the two
 * gradients, as a vector, within 1e-3 of the gradient's norm, plus 1e-5 for
 * gradients that vanish (RMSNorm of one element); measured: at most 4e-5. A
 * wrong term in a backward is off by far more. */
#include "test_util.h"

#include "attn/rope.h"
#include "train/train_ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef double (*loss_fn)(void *ctx);

/* ‖fd - g‖ ≤ 1e-3 ‖g‖ over every element of in [n] (or 400 spread ones). */
static void check_grad(const char *what, loss_fn f, void *ctx, float *in, const float *g, size_t n) {
    double diff2 = 0.0, norm2 = 0.0, worst = 0.0;
    const size_t stride = n > 400 ? n / 400 : 1;
    for (size_t i = 0; i < n; i += stride) {
        const float save = in[i], h = 1e-2f * fmaxf(1.0f, fabsf(save));
        const float xp = save + h, xm = save - h;
        in[i] = xp;
        const double lp = f(ctx);
        in[i] = xm;
        const double lm = f(ctx);
        in[i] = save;
        const double fd = (lp - lm) / ((double)xp - xm);
        diff2 += (fd - g[i]) * (fd - g[i]), norm2 += (double)g[i] * g[i];
        if (fabs(fd - g[i]) > worst) worst = fabs(fd - g[i]);
    }
    CHECK(sqrt(diff2) <= 1e-3 * sqrt(norm2) + 1e-5, "%s: gradient off by %.3g of its norm %.3g (worst element %.3g)",
          what, sqrt(diff2) / (sqrt(norm2) + 1e-30), sqrt(norm2), worst);
}

static double weighted(const float *c, const float *y, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)c[i] * y[i];
    return s;
}

static float *rnd(test_rng *r, size_t n, float scale) {
    float *x = malloc(sizeof(float) * (n ? n : 1));
    test_fill(r, x, n, scale);
    return x;
}

static float *zeros(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

/* ---- matmul ---- */
typedef struct {
    float *x, *W, *c, *y;
    int T, n, k;
} mm_ctx;

static double mm_loss(void *p) {
    mm_ctx *m = p;
    kv_train_matmul_forward(m->y, m->x, m->W, m->T, m->n, m->k);
    return weighted(m->c, m->y, (size_t)m->T * m->n);
}

static void check_matmul(test_rng *r, int T, int n, int k) {
    mm_ctx m = {
        rnd(r, (size_t)T * k, 1), rnd(r, (size_t)n * k, 1), rnd(r, (size_t)T * n, 1), zeros((size_t)T * n), T, n, k};
    float *dx = zeros((size_t)T * k), *dW = zeros((size_t)n * k), *Wt = zeros((size_t)n * k);
    float *work = zeros(kv_train_matmul_backward_work(T, n, k));
    kv_train_transpose(Wt, m.W, n, k);
    for (int i = 0; i < n * k; i++) /* the transpose itself */
        if (Wt[(size_t)(i % k) * n + i / k] != m.W[i]) {
            CHECK(0, "transpose %dx%d: element %d misplaced", n, k, i);
            break;
        }
    kv_train_matmul_backward(dx, dW, m.c, m.x, Wt, T, n, k, work);
    char what[96];
    snprintf(what, sizeof what, "matmul %dx%dx%d dx", T, n, k);
    check_grad(what, mm_loss, &m, m.x, dx, (size_t)T * k);
    snprintf(what, sizeof what, "matmul %dx%dx%d dW", T, n, k);
    check_grad(what, mm_loss, &m, m.W, dW, (size_t)n * k);
    /* accumulation: a second backward doubles the gradients */
    float *dx2 = malloc(sizeof(float) * (size_t)T * k);
    memcpy(dx2, dx, sizeof(float) * (size_t)T * k);
    kv_train_matmul_backward(dx, NULL, m.c, m.x, Wt, T, n, k, work);
    double off = 0.0;
    for (size_t i = 0; i < (size_t)T * k; i++) off = fmax(off, fabs(dx[i] - 2 * dx2[i]));
    CHECK(off <= 1e-5 * (1 + test_max_abs(dx, (size_t)T * k)), "matmul %dx%dx%d: backward adds (off %.3g)", T, n, k,
          off);
    free(m.x), free(m.W), free(m.c), free(m.y), free(dx), free(dW), free(dx2), free(Wt), free(work);
}

/* ---- rmsnorm ---- */
typedef struct {
    float *x, *w, *c, *y, *rstd;
    int T, n;
} rn_ctx;

static double rn_loss(void *p) {
    rn_ctx *m = p;
    kv_train_rmsnorm_forward(m->y, m->rstd, m->x, m->w, m->T, m->n, 1e-5f);
    return weighted(m->c, m->y, (size_t)m->T * m->n);
}

static void check_rmsnorm(test_rng *r, int T, int n) {
    rn_ctx m = {rnd(r, (size_t)T * n, 2),
                rnd(r, (size_t)n, 1),
                rnd(r, (size_t)T * n, 1),
                zeros((size_t)T * n),
                zeros((size_t)T),
                T,
                n};
    float *dx = zeros((size_t)T * n), *dw = zeros((size_t)n);
    rn_loss(&m);
    kv_train_rmsnorm_backward(dx, dw, m.c, m.x, m.w, m.rstd, T, n);
    char what[64];
    snprintf(what, sizeof what, "rmsnorm %dx%d dx", T, n);
    check_grad(what, rn_loss, &m, m.x, dx, (size_t)T * n);
    snprintf(what, sizeof what, "rmsnorm %dx%d dw", T, n);
    check_grad(what, rn_loss, &m, m.w, dw, (size_t)n);
    free(m.x), free(m.w), free(m.c), free(m.y), free(m.rstd), free(dx), free(dw);
}

/* ---- rope ---- */
typedef struct {
    float *x, *c, *y, *freqs;
    int T, heads, hd, n_rot, pos0;
    kvattn_rope_pairing pairing;
} rp_ctx;

static double rp_loss(void *p) {
    rp_ctx *m = p;
    const size_t n = (size_t)m->T * m->heads * m->hd;
    memcpy(m->y, m->x, sizeof(float) * n);
    kv_train_rope_forward(m->y, m->T, m->heads, m->hd, m->n_rot, m->freqs, m->pos0, m->pairing);
    return weighted(m->c, m->y, n);
}

static void check_rope(test_rng *r, int T, int heads, int hd, int n_rot, kvattn_rope_pairing pairing, float yarn) {
    const size_t n = (size_t)T * heads * hd;
    kvattn_rope_config rc = {.theta = 10000.0f, .n_rot = n_rot, .pairing = pairing};
    if (yarn > 1.0f) rc.yarn_factor = yarn, rc.yarn_orig_ctx = 64;
    rp_ctx m = {rnd(r, n, 1), rnd(r, n, 1), zeros(n), zeros((size_t)n_rot / 2 + 1), T, heads, hd, n_rot, 37, pairing};
    kv_rope_freqs(&rc, n_rot, m.freqs);
    float *dx = malloc(sizeof(float) * n);
    memcpy(dx, m.c, sizeof(float) * n);
    kv_train_rope_backward(dx, T, heads, hd, n_rot, m.freqs, m.pos0, pairing);
    char what[96];
    snprintf(what, sizeof what, "rope %dx%dx%d rot %d %s%s", T, heads, hd, n_rot,
             pairing == KVATTN_ROPE_HALF ? "half" : "adjacent", yarn > 1 ? " yarn" : "");
    check_grad(what, rp_loss, &m, m.x, dx, n);
    free(m.x), free(m.c), free(m.y), free(m.freqs), free(dx);
}

/* ---- attention ---- */
typedef struct {
    float *q, *k, *v, *c, *out, *att;
    int T, H, Hkv, dk, dv;
    float scale;
} at_ctx;

static double at_loss(void *p) {
    at_ctx *m = p;
    kv_train_attention_forward(m->out, m->att, m->q, m->k, m->v, m->T, m->H, m->Hkv, m->dk, m->dv, m->scale);
    return weighted(m->c, m->out, (size_t)m->T * m->H * m->dv);
}

static void check_attention(test_rng *r, int T, int H, int Hkv, int dk, int dv) {
    at_ctx m = {rnd(r, (size_t)T * H * dk, 1),
                rnd(r, (size_t)T * Hkv * dk, 1),
                rnd(r, (size_t)T * Hkv * dv, 1),
                rnd(r, (size_t)T * H * dv, 1),
                zeros((size_t)T * H * dv),
                zeros((size_t)H * T * T),
                T,
                H,
                Hkv,
                dk,
                dv,
                0.7f};
    float *dq = zeros((size_t)T * H * dk), *dk_ = zeros((size_t)T * Hkv * dk), *dv_ = zeros((size_t)T * Hkv * dv);
    at_loss(&m);
    float *ds = zeros((size_t)H * T * T);
    kv_train_attention_backward(dq, dk_, dv_, m.c, m.att, m.q, m.k, m.v, T, H, Hkv, dk, dv, m.scale, ds);
    char what[96];
    snprintf(what, sizeof what, "attention T %d H %d Hkv %d dk %d dv %d: dq", T, H, Hkv, dk, dv);
    check_grad(what, at_loss, &m, m.q, dq, (size_t)T * H * dk);
    snprintf(what, sizeof what, "attention T %d H %d Hkv %d dk %d dv %d: dk", T, H, Hkv, dk, dv);
    check_grad(what, at_loss, &m, m.k, dk_, (size_t)T * Hkv * dk);
    snprintf(what, sizeof what, "attention T %d H %d Hkv %d dk %d dv %d: dv", T, H, Hkv, dk, dv);
    check_grad(what, at_loss, &m, m.v, dv_, (size_t)T * Hkv * dv);
    free(m.q), free(m.k), free(m.v), free(m.c), free(m.out), free(m.att), free(dq), free(dk_), free(dv_), free(ds);
}

/* ---- swiglu ---- */
typedef struct {
    float *g, *u, *c, *h;
    size_t n;
} sw_ctx;

static double sw_loss(void *p) {
    sw_ctx *m = p;
    kv_train_swiglu_forward(m->h, m->g, m->u, m->n);
    return weighted(m->c, m->h, m->n);
}

static void check_swiglu(test_rng *r, size_t n) {
    sw_ctx m = {rnd(r, n, 3), rnd(r, n, 1), rnd(r, n, 1), zeros(n), n};
    float *dg = zeros(n), *du = zeros(n);
    kv_train_swiglu_backward(dg, du, m.c, m.g, m.u, n);
    check_grad("swiglu dg", sw_loss, &m, m.g, dg, n);
    check_grad("swiglu du", sw_loss, &m, m.u, du, n);
    free(m.g), free(m.u), free(m.c), free(m.h), free(dg), free(du);
}

/* ---- loss ---- */
typedef struct {
    float *logits, *teacher, *d, *scratch;
    int V, target;
    float cw;
} ls_ctx;

static double ls_loss(void *p) {
    ls_ctx *m = p;
    return kv_train_loss(m->d, m->logits, m->V, m->target, m->teacher, m->cw, 1.0f, NULL, m->scratch);
}

static void check_loss(test_rng *r, int V) {
    float *tl = rnd(r, (size_t)V, 3), *tp = zeros((size_t)V), *scratch = zeros((size_t)V);
    kv_train_log_softmax(tp, tl, V);
    double psum =
        0.0; /* log-softmax: the probabilities it gives sum to 1, and log-probabilities shift with the logits */
    for (int i = 0; i < V; i++) psum += exp(tp[i]);
    CHECK(fabs(psum - 1.0) < 1e-5 && fabs((tp[0] - tp[V - 1]) - (tl[0] - tl[V - 1])) < 1e-5,
          "log-softmax V %d: probabilities sum to %.8f", V, psum);
    ls_ctx m = {rnd(r, (size_t)V, 3), tp, zeros((size_t)V), scratch, V, test_randint(r, 0, V - 1), 0.0f};
    float *g = zeros((size_t)V);
    const float cws[3] = {0.0f, 0.3f, 1.0f};
    for (int i = 0; i < 3; i++) {
        m.cw = cws[i];
        ls_loss(&m);
        memcpy(g, m.d, sizeof(float) * (size_t)V);
        char what[64];
        snprintf(what, sizeof what, "loss V %d, cross-entropy weight %.1f", V, cws[i]);
        check_grad(what, ls_loss, &m, m.logits, g, (size_t)V);
    }
    /* KL from a distribution to itself is 0, and its gradient too; the weight scales the gradient */
    double kl = -1.0;
    kv_train_loss(g, tl, V, -1, tp, 0.0f, 2.0f, &kl, scratch);
    CHECK(fabs(kl) < 1e-6 && test_max_abs(g, (size_t)V) < 1e-6, "KL of a distribution to itself: %.3g, gradient %.3g",
          kl, test_max_abs(g, (size_t)V));
    free(tl), free(tp), free(m.logits), free(m.d), free(g), free(scratch);
}

static void check_embed(test_rng *r) {
    enum { V = 7, D = 5, T = 4 };
    float *E = rnd(r, V * D, 1), x[T * D], dE[V * D] = {0}, dx[T * D];
    const int32_t tok[T] = {3, 0, 3, 6};
    kv_train_embed_forward(x, E, tok, T, D);
    test_fill(r, dx, T * D, 1);
    kv_train_embed_backward(dE, dx, tok, T, D);
    int ok = !memcmp(x + D, E, sizeof(float) * D) && !memcmp(x + 3 * D, E + 6 * D, sizeof(float) * D);
    for (int j = 0; j < D; j++) ok &= dE[3 * D + j] == dx[j] + dx[2 * D + j] && dE[1 * D + j] == 0.0f;
    CHECK(ok, "embedding: rows out, gradients summed into the rows used");
    free(E);
}

int main(void) {
    test_rng r = {0x7a1};
    const int mm[][3] = {{1, 1, 1}, {1, 7, 9}, {3, 16, 33}, {5, 9, 64}, {17, 31, 8}, {33, 45, 70}};
    for (size_t i = 0; i < sizeof mm / sizeof mm[0]; i++) check_matmul(&r, mm[i][0], mm[i][1], mm[i][2]);
    check_rmsnorm(&r, 1, 1);
    check_rmsnorm(&r, 3, 17);
    check_rmsnorm(&r, 2, 64);
    check_rope(&r, 3, 2, 8, 8, KVATTN_ROPE_ADJACENT, 0);
    check_rope(&r, 3, 2, 8, 8, KVATTN_ROPE_HALF, 0);
    check_rope(&r, 2, 3, 10, 4, KVATTN_ROPE_ADJACENT, 0);
    check_rope(&r, 2, 1, 16, 16, KVATTN_ROPE_ADJACENT, 4.0f);
    check_attention(&r, 1, 2, 2, 4, 4);
    check_attention(&r, 5, 4, 1, 6, 5);
    check_attention(&r, 6, 4, 2, 8, 8);
    check_attention(&r, 7, 3, 3, 5, 3);
    check_attention(&r, 40, 4, 1, 8, 6); /* past KV_PARALLEL_MIN_MACS: the threaded passes */
    check_attention(&r, 33, 6, 3, 12, 10);
    check_swiglu(&r, 33);
    check_loss(&r, 11);
    check_loss(&r, 1);
    check_embed(&r);
    return test_finish("test_train_ops");
}
