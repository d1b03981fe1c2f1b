/* A trainable copy of a llama-family model (grouped-query attention of any
 * group size, or MLA in DeepSeek's training form — the naive one, keys and
 * values expanded from the latent — and a dense SwiGLU FFN): f32 master
 * weights, their gradients and
 * AdamW's moments, a forward pass that keeps what its backward needs, and
 * the backward. The layout follows llm.c's ParameterTensors: every tensor in
 * one buffer, so gradients, moments and the optimizer step are one loop. */
#ifndef KVATTN_TRAINER_H
#define KVATTN_TRAINER_H

#include "kvattn.h"

#include <stddef.h>

/* The tensors of one layer, as offsets into the parameter buffer. GQA
 * family: wq, wk, wv; MLA: wq (or wq_a, q_norm, wq_b), wkv_a, kv_norm (or
 * none: kv_norm_off), wkv_b in the fused layout; absent ones are SIZE_MAX. */
typedef struct {
    size_t attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down;
    size_t wq_a, q_norm, wq_b, wkv_a, kv_norm, wkv_b;
} kv_train_layer;

typedef enum {
    KV_TRAIN_ATTN = 0, /* only the attention projections (the converted weights) */
    KV_TRAIN_ALL       /* every tensor */
} kv_train_what;

typedef struct {
    float lr;           /* peak learning rate                                   */
    float min_lr;       /* the cosine schedule's floor                          */
    int warmup_steps;   /* linear warm-up                                       */
    int total_steps;    /* the schedule's length                                */
    float beta1, beta2; /* AdamW; 0 → 0.9, 0.999                                */
    float eps;          /* 0 → 1e-8                                             */
    float weight_decay; /* decoupled, on matrices only                          */
    float clip;         /* global gradient norm clipped to this (0: none)       */
} kv_adamw_params;

typedef struct kv_trainer kv_trainer;

/* A trainer holding an f32 copy of m's weights (any weight type), training
 * `what`, for sequences of up to max_T tokens. Refuses (KVATTN_ERR_UNSUPPORTED,
 * naming what) models it cannot train yet: MoE, biases, head norms, an
 * ungated FFN. */
kvattn_status kv_trainer_create(const kvattn_model *m, kv_train_what what, int max_T, kv_trainer **out);
void kv_trainer_free(kv_trainer *tr);

/* The forward of T tokens (positions 0..T-1) into logits [T][V] (the
 * trainer's buffer, valid until the next call), keeping the activations. */
kvattn_status kv_trainer_forward(kv_trainer *tr, const int32_t *tokens, int T, const float **logits);

/* The loss of the last forward against `targets` [T] (the next tokens; -1:
 * none) and the teacher's log-probabilities teacher_logp [T][V] (or NULL),
 * mixed by ce_weight as kv_train_loss does, averaged over the T positions and
 * scaled by `scale` (1 / micro-batches); its gradients are added into the
 * trainer's. Returns the mean loss; *kl the mean KL (0 without a teacher). */
double kv_trainer_backward(kv_trainer *tr, const int32_t *targets, const float *teacher_logp, float ce_weight,
                           float scale, double *kl);

/* Zeroes the gradients. */
void kv_trainer_zero_grad(kv_trainer *tr);

/* One AdamW step (step counts from 1) on the trainable tensors, with the
 * gradient clipped as p says; returns the gradient's norm before clipping. */
double kv_trainer_step(kv_trainer *tr, const kv_adamw_params *p, int step);

/* The learning rate at `step` of p's schedule: linear warm-up, then cosine from lr to min_lr. */
float kv_adamw_lr(const kv_adamw_params *p, int step);

/* The parameter buffer and its gradients (n floats each), with the tensors'
 * offsets: for tests, and for writing the trained weights back. The output
 * head's offset is the embedding's when they are tied. */
typedef struct {
    float *params, *grads;
    size_t n;
    const kv_train_layer *layers;
    size_t tok_embd, out_norm, output;
} kv_trainer_view;
void kv_trainer_get_view(kv_trainer *tr, kv_trainer_view *v);
/* After parameters were written through the view: the trainer's own copies of them follow. */
void kv_trainer_sync(kv_trainer *tr);

/* Whether the tensor at offset `at` trains; its size in floats (0: no tensor starts there). */
int kv_trainer_trains(const kv_trainer *tr, size_t at);
size_t kv_trainer_tensor_size(const kv_trainer *tr, size_t at);

/* AdamW's two moments, n floats each (the optimizer state a checkpoint keeps). */
void kv_trainer_moments(const kv_trainer *tr, const float **m1, const float **m2, size_t *n);

/* A model with the shapes, tokenizer and metadata of `like` (the model the
 * trainer was made from) whose weights are the trainer's f32 tensors, not
 * copied: valid while the trainer lives and is not stepped. For writing the
 * trained model (kvattn_model_save_gguf) and running it. */
kvattn_status kv_trainer_model(const kv_trainer *tr, const kvattn_model *like, kvattn_model **out);

#endif
