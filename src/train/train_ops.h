/* The training ops: each layer op of the forward pass with its backward, on
 * f32 tensors, in the manner of llm.c's train_gpt2.c (one function per op,
 * its shapes at the top). A backward adds into its gradients (+=), so that a
 * tensor used twice, or several micro-batches, accumulate; the caller zeroes
 * them. Each op has a finite-difference test (tests/test_train_ops.c). */
#ifndef KVATTN_TRAIN_OPS_H
#define KVATTN_TRAIN_OPS_H

#include "kvattn.h"

#include <stddef.h>

/* y[T][n] = x[T][k] · W[n][k]ᵀ (W row-major, out × in, as the model stores it). */
void kv_train_matmul_forward(float *y, const float *x, const float *W, int T, int n, int k);
/* dx[T][k] += dy[T][n] · W[n][k];  dW[n][k] += dy[T][n]ᵀ · x[T][k].  dx or dW may be NULL.
 * W comes transposed, Wt[k][n] (the trainer keeps one of every matrix), and `work`
 * holds kv_train_matmul_backward_work(T, n, k) floats. */
void kv_train_matmul_backward(float *dx, float *dW, const float *dy, const float *x, const float *Wt, int T, int n,
                              int k, float *work);
size_t kv_train_matmul_backward_work(int T, int n, int k);
/* out[cols][rows] = in[rows][cols]ᵀ. */
void kv_train_transpose(float *out, const float *in, int rows, int cols);

/* y[T][n] = x / sqrt(mean(x²) + eps) ⊙ w, row by row; rstd[T] keeps each row's 1/sqrt(...). */
void kv_train_rmsnorm_forward(float *y, float *rstd, const float *x, const float *w, int T, int n, float eps);
/* dx[T][n] += ∂/∂x, dw[n] += ∂/∂w (either may be NULL), from dy[T][n] and the forward's x, rstd. */
void kv_train_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd,
                               int T, int n);

/* RoPE of rows x[T][heads][hd] in place: row t at position pos0 + t, its first n_rot
 * elements rotated by kv_rope_apply. */
void kv_train_rope_forward(float *x, int T, int heads, int hd, int n_rot, const float *freqs, int pos0,
                           kvattn_rope_pairing pairing);
/* The backward, in place on dx[T][heads][hd]: each rotation is orthogonal, so its transpose
 * (the rotation by minus the angle) carries the gradient back. */
void kv_train_rope_backward(float *dx, int T, int heads, int hd, int n_rot, const float *freqs, int pos0,
                            kvattn_rope_pairing pairing);

/* Causal grouped-query attention of one sequence:
 *   q [T][H][dk], k [T][Hkv][dk], v [T][Hkv][dv]  →  out [T][H][dv]
 * query head h reads KV head h / (H / Hkv); att [H][T][T] keeps the softmax
 * probabilities (row t, columns 0..t) for the backward. */
void kv_train_attention_forward(float *out, float *att, const float *q, const float *k, const float *v, int T, int H,
                                int Hkv, int dk, int dv, float scale);
/* dq, dk, dv (same shapes as q, k, v) += the gradients from dout [T][H][dv];
 * ds [H][T][T] is scratch (the scores' gradients). */
void kv_train_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *att, const float *q,
                                 const float *k, const float *v, int T, int H, int Hkv, int dk_dim, int dv_dim,
                                 float scale, float *ds);

/* SwiGLU's gate: h[n] = silu(g) ⊙ u. */
void kv_train_swiglu_forward(float *h, const float *g, const float *u, size_t n);
/* dg, du += the gradients from dh. */
void kv_train_swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n);

/* x[T][D] = rows tokens[t] of the embedding E[V][D]; the backward adds dx's rows into dE. */
void kv_train_embed_forward(float *x, const float *E, const int32_t *tokens, int T, int D);
void kv_train_embed_backward(float *dE, const float *dx, const int32_t *tokens, int T, int D);

/* The loss of one row of logits [V] and its gradient dlogits [V] (written, not added),
 * scaled by `weight`: ce_weight · cross-entropy against `target` (if ≥ 0) plus
 * (1 - ce_weight) · KL(p_teacher ‖ p) against the teacher's log-probabilities
 * (if teacher_logp is not NULL; then scratch holds V floats). Returns the
 * unscaled loss; *kl receives the KL alone (0 without a teacher). */
double kv_train_loss(float *dlogits, const float *logits, int V, int target, const float *teacher_logp, float ce_weight,
                     float weight, double *kl, float *scratch);

/* Log-softmax of logits [V] into logp [V] (the teacher's distribution). */
void kv_train_log_softmax(float *logp, const float *logits, int V);

#endif
