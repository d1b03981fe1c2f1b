/* The training ops' forwards and backwards (train_ops.h). The products go
 * through kv_matmul, so they run on the machine's kernels; the rest are plain
 * loops, threaded where a layer's work is large. */
#include "train_ops.h"

#include "attn/rope.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void kv_train_matmul_forward(float *y, const float *x, const float *W, int T, int n, int k) {
    kv_matmul(y, x, (kvattn_matrix){.data = W, .type = KVATTN_TYPE_F32}, T, n, k);
}

/* out[c][r] = in[r][c] for in [rows][cols], in tiles so that both sides stay in cache. */
void kv_train_transpose(float *out, const float *in, int rows, int cols) {
    enum { TILE = 32 };
    const int tiles_r = (rows + TILE - 1) / TILE, tiles_c = (cols + TILE - 1) / TILE;
#pragma omp parallel for schedule(static) if ((long)rows * cols > KV_PARALLEL_MIN_MACS)
    for (int tc = 0; tc < tiles_c; tc++)
        for (int tr = 0; tr < tiles_r; tr++) {
            const int c1 = (tc + 1) * TILE < cols ? (tc + 1) * TILE : cols;
            const int r1 = (tr + 1) * TILE < rows ? (tr + 1) * TILE : rows;
            for (int c = tc * TILE; c < c1; c++)
                for (int r = tr * TILE; r < r1; r++) out[(size_t)c * rows + r] = in[(size_t)r * cols + c];
        }
}

static void add_into(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

size_t kv_train_matmul_backward_work(int T, int n, int k) {
    const size_t for_dx = (size_t)T * k, for_dw = (size_t)n * T + (size_t)k * T + (size_t)n * k;
    return for_dx > for_dw ? for_dx : for_dw;
}

/* Both products as kv_matmul's y = x·Wᵀ on transposed operands:
 *   dx = dy · W      = dy · (Wᵀ)ᵀ          (x := dy [T][n],  W := Wᵀ [k][n])
 *   dW = dyᵀ · x     = dyᵀ · (xᵀ)ᵀ         (x := dyᵀ [n][T], W := xᵀ [k][T]) */
void kv_train_matmul_backward(float *dx, float *dW, const float *dy, const float *x, const float *Wt, int T, int n,
                              int k, float *work) {
    if (dx) {
        kv_matmul(work, dy, (kvattn_matrix){.data = Wt, .type = KVATTN_TYPE_F32}, T, k, n);
        add_into(dx, work, (size_t)T * k);
    }
    if (dW) {
        float *dyt = work, *xt = dyt + (size_t)n * T, *c = xt + (size_t)k * T;
        kv_train_transpose(dyt, dy, T, n); /* dyᵀ [n][T] */
        kv_train_transpose(xt, x, T, k);   /* xᵀ [k][T]  */
        kv_matmul(c, dyt, (kvattn_matrix){.data = xt, .type = KVATTN_TYPE_F32}, n, k, T);
        add_into(dW, c, (size_t)n * k);
    }
}

void kv_train_rmsnorm_forward(float *y, float *rstd, const float *x, const float *w, int T, int n, float eps) {
    for (int t = 0; t < T; t++) {
        const float *xt = x + (size_t)t * n;
        double ss = 0.0;
        for (int i = 0; i < n; i++) ss += (double)xt[i] * xt[i];
        const float r = (float)(1.0 / sqrt(ss / n + eps));
        rstd[t] = r;
        for (int i = 0; i < n; i++) y[(size_t)t * n + i] = xt[i] * r * w[i];
    }
}

/* y_i = x_i·r·w_i with r = (mean(x²) + eps)^(-1/2), ∂r/∂x_j = -r³·x_j / n:
 *   dx_j = r·w_j·dy_j - (r³/n)·x_j·Σ_i dy_i·w_i·x_i,   dw_i = Σ_t dy_i·x_i·r */
void kv_train_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd,
                               int T, int n) {
    for (int t = 0; t < T; t++) {
        const float *xt = x + (size_t)t * n, *dyt = dy + (size_t)t * n;
        const float r = rstd[t];
        double dot = 0.0;
        for (int i = 0; i < n; i++) dot += (double)dyt[i] * w[i] * xt[i];
        const float c = (float)(dot * r * r * r / n);
        if (dx)
            for (int i = 0; i < n; i++) dx[(size_t)t * n + i] += r * w[i] * dyt[i] - c * xt[i];
        if (dw)
            for (int i = 0; i < n; i++) dw[i] += dyt[i] * xt[i] * r;
    }
}

void kv_train_rope_forward(float *x, int T, int heads, int hd, int n_rot, const float *freqs, int pos0,
                           kvattn_rope_pairing pairing) {
    for (int t = 0; t < T; t++)
        for (int h = 0; h < heads; h++)
            kv_rope_apply(x + ((size_t)t * heads + h) * hd, n_rot, freqs, pos0 + t, pairing);
}

void kv_train_rope_backward(float *dx, int T, int heads, int hd, int n_rot, const float *freqs, int pos0,
                            kvattn_rope_pairing pairing) {
    for (int t = 0; t < T; t++)
        for (int h = 0; h < heads; h++)
            kv_rope_apply(dx + ((size_t)t * heads + h) * hd, n_rot, freqs, -(pos0 + t), pairing);
}

void kv_train_attention_forward(float *out, float *att, const float *q, const float *k, const float *v, int T, int H,
                                int Hkv, int dk, int dv, float scale) {
    const int group = H / Hkv;
#pragma omp parallel for schedule(dynamic) if ((long)T * T * H * dk > KV_PARALLEL_MIN_MACS)
    for (int ht = 0; ht < H * T; ht++) {
        const int h = ht / T, t = ht % T, g = h / group;
        const float *qt = q + ((size_t)t * H + h) * dk;
        float *p = att + ((size_t)h * T + t) * T, *o = out + ((size_t)t * H + h) * dv;
        float m = -INFINITY;
        for (int j = 0; j <= t; j++) {
            p[j] = scale * kv_dot_f32(qt, k + ((size_t)j * Hkv + g) * dk, dk);
            if (p[j] > m) m = p[j];
        }
        const float inv = 1.0f / kv_exp_shift_sum(p, m, p, t + 1);
        for (int j = 0; j <= t; j++) p[j] *= inv;
        for (int j = t + 1; j < T; j++) p[j] = 0.0f;
        memset(o, 0, sizeof(float) * (size_t)dv);
        for (int j = 0; j <= t; j++) {
            const float *vj = v + ((size_t)j * Hkv + g) * dv;
            for (int i = 0; i < dv; i++) o[i] += p[j] * vj[i];
        }
    }
}

/* Per query row t of head h, with P its probabilities over j ≤ t:
 *   dP_j = dout_t·v_j,  dS_j = P_j·(dP_j - Σ_i P_i·dP_i)
 *   dq_t += scale·Σ_j dS_j·k_j,  dk_j += scale·Σ_t dS_j·q_t,  dv_j += Σ_t P_j·dout_t
 * Two passes, so that threads never write the same row: query rows (dq, and dS kept in ds),
 * then key rows of each KV head (dk and dv, summed over the group's heads and later rows). */
void kv_train_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *att, const float *q,
                                 const float *k, const float *v, int T, int H, int Hkv, int dk_dim, int dv_dim,
                                 float scale, float *ds) {
    const int group = H / Hkv;
    const int big = (long)T * T * H * dk_dim > KV_PARALLEL_MIN_MACS;
#pragma omp parallel for schedule(dynamic, 4) if (big)
    for (int ht = 0; ht < H * T; ht++) {
        const int h = ht / T, t = ht % T, g = h / group;
        const float *p = att + ((size_t)h * T + t) * T, *dot = dout + ((size_t)t * H + h) * dv_dim;
        float *d = ds + ((size_t)h * T + t) * T, *dqt = dq + ((size_t)t * H + h) * dk_dim;
        double pd = 0.0;
        for (int j = 0; j <= t; j++) {
            d[j] = kv_dot_f32(dot, v + ((size_t)j * Hkv + g) * dv_dim, dv_dim);
            pd += (double)p[j] * d[j];
        }
        for (int j = 0; j <= t; j++) {
            d[j] = p[j] * (d[j] - (float)pd) * scale;
            const float *kj = k + ((size_t)j * Hkv + g) * dk_dim;
            for (int i = 0; i < dk_dim; i++) dqt[i] += d[j] * kj[i];
        }
    }
#pragma omp parallel for schedule(dynamic, 4) if (big)
    for (int gj = 0; gj < Hkv * T; gj++) {
        const int g = gj / T, j = gj % T;
        float *dkj = dk + ((size_t)j * Hkv + g) * dk_dim, *dvj = dv + ((size_t)j * Hkv + g) * dv_dim;
        for (int h = g * group; h < (g + 1) * group; h++)
            for (int t = j; t < T; t++) {
                const float dsj = ds[((size_t)h * T + t) * T + j], pj = att[((size_t)h * T + t) * T + j];
                const float *qt = q + ((size_t)t * H + h) * dk_dim, *dot = dout + ((size_t)t * H + h) * dv_dim;
                for (int i = 0; i < dk_dim; i++) dkj[i] += dsj * qt[i];
                for (int i = 0; i < dv_dim; i++) dvj[i] += pj * dot[i];
            }
    }
}

static float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

void kv_train_swiglu_forward(float *h, const float *g, const float *u, size_t n) {
    for (size_t i = 0; i < n; i++) h[i] = g[i] * sigmoid(g[i]) * u[i];
}

/* silu(g) = g·σ(g), silu'(g) = σ(g)·(1 + g·(1 - σ(g))) */
void kv_train_swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float s = sigmoid(g[i]);
        dg[i] += dh[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
        du[i] += dh[i] * g[i] * s;
    }
}

void kv_train_embed_forward(float *x, const float *E, const int32_t *tokens, int T, int D) {
    for (int t = 0; t < T; t++) memcpy(x + (size_t)t * D, E + (size_t)tokens[t] * D, sizeof(float) * (size_t)D);
}

void kv_train_embed_backward(float *dE, const float *dx, const int32_t *tokens, int T, int D) {
    for (int t = 0; t < T; t++) add_into(dE + (size_t)tokens[t] * D, dx + (size_t)t * D, (size_t)D);
}

void kv_train_log_softmax(float *logp, const float *logits, int V) {
    float m = -INFINITY;
    for (int i = 0; i < V; i++) m = logits[i] > m ? logits[i] : m;
    const float log_z = m + logf(kv_exp_shift_sum(logits, m, logp, V));
    for (int i = 0; i < V; i++) logp[i] = logits[i] - log_z;
}

/* With p = softmax(logits): ∂CE/∂logits = p - onehot(target), ∂KL(p_t ‖ p)/∂logits = p - p_t.
 * The exponentials go through the machine's vector exp (about 2 ulp); the sums are in double. */
double kv_train_loss(float *dlogits, const float *logits, int V, int target, const float *teacher_logp, float ce_weight,
                     float weight, double *kl, float *scratch) {
    const float cw = !teacher_logp ? 1.0f : target < 0 ? 0.0f : ce_weight;
    float m = -INFINITY;
    for (int i = 0; i < V; i++) m = logits[i] > m ? logits[i] : m;
    const float *e = dlogits; /* exp(logits - m), then overwritten by the gradient */
    const double sum = kv_exp_shift_sum(logits, m, dlogits, V);
    const float log_z = (float)(m + log(sum)), inv = (float)(1.0 / sum);
    double k = 0.0;
    if (teacher_logp) {
        kv_exp_shift_sum(teacher_logp, 0.0f, scratch, V); /* the teacher's probabilities */
        const float tw = (1.0f - cw) * weight;
        for (int i = 0; i < V; i++) {
            const float pt = scratch[i];
            if (pt > 0.0f) k += (double)pt * (teacher_logp[i] - (logits[i] - log_z));
            dlogits[i] = e[i] * inv * weight - tw * pt;
        }
    } else {
        for (int i = 0; i < V; i++) dlogits[i] = e[i] * inv * weight;
    }
    double loss = (1.0 - cw) * k;
    if (target >= 0 && cw > 0.0f) {
        dlogits[target] -= cw * weight;
        loss += cw * -(double)(logits[target] - log_z);
    }
    if (kl) *kl = k;
    return loss;
}
