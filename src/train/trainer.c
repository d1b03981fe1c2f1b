/* The trainable llama-family model (trainer.h): its forward pass, read top to
 * bottom as the inference one is (src/model/session.c), keeping each layer's
 * activations; the backward walks them in reverse; AdamW updates the
 * trainable tensors. */
#include "trainer.h"

#include "internal.h"
#include "model/model.h"
#include "train_ops.h"

#include "attn/rope.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a layer's backward reads, [T] rows of each. */
typedef struct {
    float *x_in;           /* residual stream in        [T][D]       */
    float *xn1, *rstd1;    /* attention input (normed)  [T][D], [T]  */
    float *q, *k, *v;      /* rotated q, k; v           [T][H·dq], [T][Hk·dq], [T][Hk·dv] */
    float *att;            /* softmax probabilities     [H][T][T]    */
    float *ao;             /* heads' outputs            [T][H·dv]    */
    float *c, *cn, *rstdc; /* MLA: c_KV as projected, then normed (or a copy) [T][dc], [T] */
    float *kr;             /* MLA: k_R, rotated         [T][dr]      */
    float *x_mid;          /* after attention residual  [T][D]       */
    float *xn2, *rstd2;    /* FFN input (normed)        [T][D], [T]  */
    float *g, *u, *h;      /* gate, up, silu(g)·u       [T][F]       */
} layer_acts;

typedef struct {
    size_t at, n;
    int rows, cols; /* a matrix's shape; rows = 0 for a vector */
    int trains;
} tensor;

struct kv_trainer {
    int L, D, H, F, V, max_T, T;
    /* attention: query/key width dq, value width dv, Hk heads of keys and values. GQA family:
     * dq = dv = head_dim, Hk = n_kv_heads, n_rot rotated. MLA (mla = 1), trained in its naive
     * form: dq = dn + dr, Hk = H (keys and values expanded from the latent of width dc). */
    int mla, Hk, dq, dv, n_rot, dn, dr, dc, kv_norm_off;
    float eps, mla_eps, att_scale;
    kvattn_rope_pairing pairing;
    float *freqs;
    kv_train_layer *layers;
    size_t tok_embd, out_norm, output, n;
    tensor *tensors;
    int n_tensors;
    float *params, *grads, *m1, *m2;
    float *params_t;  /* every matrix transposed, at its offset: the backward's dx = dy · W    */
    float *work;      /* kv_train_matmul_backward's workspace                                */
    double *pos_loss; /* each position's loss and KL, summed in order [max_T] each           */
    float *ds;        /* the attention backward's score gradients [H][max_T][max_T]          */
    layer_acts *acts;
    float *x_final, *xnf, *rstdf, *logits, *dlogits;
    float *dx, *dxn, *dq_, *dk, *dv_, *dao, *dg, *du, *dh, *tmp;
    float *kv, *dlat, *dcl, *rot; /* MLA: [T][H·(dn+dv)], [T][dc+dr], [T][dc], [T][H·dr] */
    int32_t *tokens;
};

/* Each tensor's place in the buffer, in order; trains says whether `what` trains it. */
static size_t add_tensor(kv_trainer *tr, int rows, int cols, int trains) {
    tensor *t = &tr->tensors[tr->n_tensors++];
    *t = (tensor){tr->n, (size_t)(rows ? rows : 1) * cols, rows, cols, trains};
    tr->n += t->n;
    return t->at;
}
static size_t add_matrix(kv_trainer *tr, int rows, int cols, int trains) { return add_tensor(tr, rows, cols, trains); }
static size_t add_vector(kv_trainer *tr, int n, int trains) { return add_tensor(tr, 0, n, trains); }

/* The transposed copies of the matrices (all of them, or the trainable ones after a step). */
static void transpose_params(kv_trainer *tr, int trainable_only) {
    for (int i = 0; i < tr->n_tensors; i++) {
        const tensor *t = &tr->tensors[i];
        if (t->rows && (t->trains || !trainable_only))
            kv_train_transpose(tr->params_t + t->at, tr->params + t->at, t->rows, t->cols);
    }
}

/* The workspace the backward's products need at T rows: the dx product of every matrix, and
 * the dW product of the trainable ones (the head's, when it trains, is the largest). */
static size_t backward_work(const kv_trainer *tr, int T) {
    size_t most = 0;
    for (int i = 0; i < tr->n_tensors; i++) {
        const tensor *t = &tr->tensors[i];
        if (!t->rows) continue;
        const size_t w = t->trains ? kv_train_matmul_backward_work(T, t->rows, t->cols) : (size_t)T * t->cols;
        most = w > most ? w : most;
    }
    return most;
}

static void load_matrix(float *dst, kvattn_matrix W, int rows, int cols) {
    for (int r = 0; r < rows; r++) kv_row_load(W.type, kv_matrix_row(W, r, cols), dst + (size_t)r * cols, cols);
}

/* MLA's W_UK and W_UV in the fused layout (per head: dn rows of W_UK, then dv rows of W_UV, each
 * dc wide), from either layout the model has. */
static void load_wkv_b(float *dst, const kvattn_layer_weights *w, int H, int dn, int dv, int dc) {
    if (w->wkv_b.data) {
        load_matrix(dst, w->wkv_b, H * (dn + dv), dc);
        return;
    }
    float *row = malloc(sizeof(float) * (size_t)(dn > dc ? dn : dc));
    if (!row) return;
    for (int h = 0; h < H; h++) {
        float *uk = dst + (size_t)h * (dn + dv) * dc, *uv = uk + (size_t)dn * dc;
        for (int j = 0; j < dc; j++) { /* wk_b row h·dc + j is column j of W_UK,h */
            kv_row_load(w->wk_b.type, kv_matrix_row(w->wk_b, h * dc + j, dn), row, dn);
            for (int i = 0; i < dn; i++) uk[(size_t)i * dc + j] = row[i];
        }
        for (int i = 0; i < dv; i++)
            kv_row_load(w->wv_b.type, kv_matrix_row(w->wv_b, h * dv + i, dc), uv + (size_t)i * dc, dc);
    }
    free(row);
}

static kvattn_status refuse(const char *what) {
    return kv_fail(KVATTN_ERR_UNSUPPORTED,
                   "training: %s is not trainable yet (llama-family models: grouped-query attention without "
                   "biases or head norms, or MLA without a compressed query; a dense SwiGLU FFN)",
                   what);
}

static float *take(float **pool, size_t n) {
    float *p = *pool;
    *pool += n;
    return p;
}

kvattn_status kv_trainer_create(const kvattn_model *m, kv_train_what what, int max_T, kv_trainer **out) {
    *out = NULL;
    const kvattn_model_desc *d = &m->desc;
    const kvattn_layer_config *ac = &d->attn;
    const int mla = ac->kind == KVATTN_ATTN_MLA;
    if (mla && ac->q_lora_rank > 0) return refuse("MLA with a compressed query (q_lora_rank > 0)");
    if (d->n_routed_experts > 0) return refuse("a mixture of experts");
    if (d->qkv_bias || d->qk_norm) return refuse("attention with biases or head norms");
    if (!d->ffn_gated || d->gpt2_style || d->parallel_attn) return refuse("this FFN or block layout");
    if (max_T < 1 || max_T > 1 << 16)
        return kv_fail(KVATTN_ERR_INVALID_ARG, "training: sequence length %d is outside [1, 65536]", max_T);
    kv_trainer *tr = calloc(1, sizeof *tr);
    if (!tr) return kv_fail(KVATTN_ERR_NOMEM, "training: out of memory");
    tr->L = d->n_layers, tr->D = ac->d_model, tr->H = ac->n_heads;
    tr->F = (int)d->ffn_dim, tr->V = (int)d->vocab_size, tr->max_T = max_T, tr->mla = mla;
    if (mla) {
        tr->dn = ac->qk_nope_head_dim, tr->dr = ac->qk_rope_head_dim, tr->dc = ac->kv_lora_rank;
        tr->dq = tr->dn + tr->dr, tr->dv = ac->v_head_dim, tr->Hk = tr->H, tr->n_rot = tr->dr;
        tr->kv_norm_off = ac->kv_norm_off, tr->mla_eps = ac->rms_eps > 0.0f ? ac->rms_eps : 1e-6f;
    } else {
        tr->dq = tr->dv = ac->head_dim, tr->Hk = ac->n_kv_heads;
        tr->n_rot = ac->rope.n_rot ? ac->rope.n_rot : ac->head_dim;
    }
    tr->eps = m->norm_eps, tr->att_scale = kvattn_config_softmax_scale(ac), tr->pairing = ac->rope.pairing;
    const int L = tr->L, D = tr->D, H = tr->H, F = tr->F, V = tr->V;
    const int qd = H * tr->dq, kd = tr->Hk * tr->dq, vd = tr->Hk * tr->dv, od = H * tr->dv;
    const int kvd = H * (tr->dn + tr->dv), dl = tr->dc + tr->dr;
    const int tied = m->output.data == m->tok_embd.data, all = what == KV_TRAIN_ALL;
    tr->layers = calloc((size_t)L, sizeof *tr->layers);
    tr->tensors = calloc((size_t)L * 10 + 3, sizeof *tr->tensors);
    tr->acts = calloc((size_t)L, sizeof *tr->acts);
    tr->freqs = malloc(sizeof(float) * ((size_t)tr->n_rot / 2 + 1));
    if (!tr->layers || !tr->tensors || !tr->acts || !tr->freqs) goto nomem;
    kv_rope_freqs(&ac->rope, tr->n_rot, tr->freqs);
    tr->tok_embd = add_matrix(tr, V, D, all);
    for (int l = 0; l < L; l++) {
        kv_train_layer *y = &tr->layers[l];
        y->wq_a = y->q_norm = y->wq_b = y->wkv_a = y->kv_norm = y->wkv_b = y->wk = y->wv = SIZE_MAX;
        y->attn_norm = add_vector(tr, D, all);
        y->wq = add_matrix(tr, qd, D, 1);
        if (mla) {
            y->wkv_a = add_matrix(tr, dl, D, 1);
            if (!tr->kv_norm_off) y->kv_norm = add_vector(tr, tr->dc, 1);
            y->wkv_b = add_matrix(tr, kvd, tr->dc, 1);
        } else {
            y->wk = add_matrix(tr, kd, D, 1);
            y->wv = add_matrix(tr, kd, D, 1);
        }
        y->wo = add_matrix(tr, D, od, 1);
        y->ffn_norm = add_vector(tr, D, all);
        y->w_gate = add_matrix(tr, F, D, all);
        y->w_up = add_matrix(tr, F, D, all);
        y->w_down = add_matrix(tr, D, F, all);
    }
    tr->out_norm = add_vector(tr, D, all);
    tr->output = tied ? tr->tok_embd : add_matrix(tr, V, D, all);
    tr->params = calloc(tr->n, sizeof(float));
    tr->grads = calloc(tr->n, sizeof(float));
    tr->m1 = calloc(tr->n, sizeof(float));
    tr->m2 = calloc(tr->n, sizeof(float));
    tr->params_t = calloc(tr->n, sizeof(float));
    tr->work = malloc(sizeof(float) * backward_work(tr, max_T));
    tr->pos_loss = malloc(sizeof(double) * 2 * (size_t)max_T);
    tr->ds = malloc(sizeof(float) * (size_t)H * max_T * max_T);
    if (!tr->params || !tr->grads || !tr->m1 || !tr->m2 || !tr->params_t || !tr->work || !tr->pos_loss || !tr->ds)
        goto nomem;
    float *P = tr->params;
    load_matrix(P + tr->tok_embd, m->tok_embd, V, D);
    if (!tied) load_matrix(P + tr->output, m->output, V, D);
    memcpy(P + tr->out_norm, m->out_norm, sizeof(float) * (size_t)D);
    for (int l = 0; l < L; l++) {
        const kv_layer *b = &m->layers[l];
        const kv_train_layer *y = &tr->layers[l];
        memcpy(P + y->attn_norm, b->attn_norm, sizeof(float) * (size_t)D);
        memcpy(P + y->ffn_norm, b->ffn_norm, sizeof(float) * (size_t)D);
        load_matrix(P + y->wq, b->attn.wq, qd, D);
        if (mla) {
            load_matrix(P + y->wkv_a, b->attn.wkv_a, dl, D);
            if (!tr->kv_norm_off) memcpy(P + y->kv_norm, b->attn.kv_norm, sizeof(float) * (size_t)tr->dc);
            load_wkv_b(P + y->wkv_b, &b->attn, H, tr->dn, tr->dv, tr->dc);
        } else {
            load_matrix(P + y->wk, b->attn.wk, kd, D);
            load_matrix(P + y->wv, b->attn.wv, kd, D);
        }
        load_matrix(P + y->wo, b->attn.wo, D, od);
        load_matrix(P + y->w_gate, b->ffn_gate, F, D);
        load_matrix(P + y->w_up, b->ffn_up, F, D);
        load_matrix(P + y->w_down, b->ffn_down, D, F);
    }
    transpose_params(tr, 0);
    /* activations: per layer, then the head's, then the backward's scratch */
    const size_t T = (size_t)max_T,
                 wide = (size_t)(D > F ? D : F) > (size_t)kvd ? (size_t)(D > F ? D : F) : (size_t)kvd;
    const size_t mla_acts = mla ? T * (2 * (size_t)tr->dc + 1 + tr->dr) : 0;
    const size_t per_layer = T * (4 * (size_t)D + 2 + qd + kd + vd + od + 3 * (size_t)F) + (size_t)H * T * T + mla_acts;
    const size_t head = T * (2 * (size_t)D + 1 + 2 * (size_t)V);
    const size_t scratch = T * (2 * (size_t)D + qd + kd + vd + od + 3 * (size_t)F + wide) +
                           (mla ? T * ((size_t)kvd + dl + tr->dc + (size_t)H * tr->dr) : 0);
    float *pool = malloc(sizeof(float) * (per_layer * L + head + scratch)), *at = pool;
    tr->tokens = malloc(sizeof(int32_t) * T);
    if (!pool || !tr->tokens) {
        free(pool);
        goto nomem;
    }
    for (int l = 0; l < L; l++) {
        layer_acts *a = &tr->acts[l];
        a->x_in = take(&at, T * D), a->xn1 = take(&at, T * D), a->rstd1 = take(&at, T);
        a->q = take(&at, T * qd), a->k = take(&at, T * kd), a->v = take(&at, T * vd);
        a->att = take(&at, (size_t)H * T * T), a->ao = take(&at, T * od);
        if (mla) {
            a->c = take(&at, T * tr->dc), a->cn = take(&at, T * tr->dc), a->rstdc = take(&at, T);
            a->kr = take(&at, T * tr->dr);
        }
        a->x_mid = take(&at, T * D), a->xn2 = take(&at, T * D), a->rstd2 = take(&at, T);
        a->g = take(&at, T * F), a->u = take(&at, T * F), a->h = take(&at, T * F);
    }
    tr->x_final = take(&at, T * D), tr->xnf = take(&at, T * D), tr->rstdf = take(&at, T);
    tr->logits = take(&at, T * V), tr->dlogits = take(&at, T * V);
    tr->dx = take(&at, T * D), tr->dxn = take(&at, T * D);
    tr->dq_ = take(&at, T * qd), tr->dk = take(&at, T * kd), tr->dv_ = take(&at, T * vd), tr->dao = take(&at, T * od);
    tr->dg = take(&at, T * F), tr->du = take(&at, T * F), tr->dh = take(&at, T * F);
    tr->tmp = take(&at, T * wide);
    if (mla) {
        tr->kv = take(&at, T * kvd), tr->dlat = take(&at, T * dl), tr->dcl = take(&at, T * tr->dc);
        tr->rot = take(&at, T * H * tr->dr);
    }
    *out = tr;
    return KVATTN_OK;
nomem:
    kv_trainer_free(tr);
    return kv_fail(KVATTN_ERR_NOMEM, "training: out of memory for the weights, gradients and activations");
}

void kv_trainer_free(kv_trainer *tr) {
    if (!tr) return;
    if (tr->acts) free(tr->acts[0].x_in); /* the activations' pool starts there */
    free(tr->acts), free(tr->layers), free(tr->tensors), free(tr->freqs), free(tr->tokens);
    free(tr->params), free(tr->grads), free(tr->m1), free(tr->m2);
    free(tr->params_t), free(tr->work), free(tr->pos_loss), free(tr->ds);
    free(tr);
}

/* RoPE (or its backward) of the last dr elements of each of q's H heads [T][H][dq]. */
static void mla_rope_q(kv_trainer *tr, float *q, int T, int backward) {
    const int H = tr->H, dq = tr->dq, dn = tr->dn, dr = tr->dr;
    for (size_t th = 0; th < (size_t)T * H; th++) memcpy(tr->rot + th * dr, q + th * dq + dn, sizeof(float) * dr);
    if (backward) kv_train_rope_backward(tr->rot, T, H, dr, dr, tr->freqs, 0, tr->pairing);
    else kv_train_rope_forward(tr->rot, T, H, dr, dr, tr->freqs, 0, tr->pairing);
    for (size_t th = 0; th < (size_t)T * H; th++) memcpy(q + th * dq + dn, tr->rot + th * dr, sizeof(float) * dr);
}

/* q, k, v of a layer from its normed input a->xn1.
 *   GQA family: q = rope(W_q x), k = rope(W_k x), v = W_v x
 *   MLA (naive): q = W_q x, its last dr per head rotated; [c ‖ k_pre] = W_kv_a x, c normed (kv_norm),
 *   k_R = rope(k_pre); [k_C,h ‖ v_h] = W_kv_b,h c; k_h = [k_C,h ‖ k_R] */
static void qkv_forward(kv_trainer *tr, const kv_train_layer *y, layer_acts *a, int T) {
    const float *P = tr->params;
    const int D = tr->D, H = tr->H, qd = H * tr->dq, kd = tr->Hk * tr->dq;
    kv_train_matmul_forward(a->q, a->xn1, P + y->wq, T, qd, D);
    if (!tr->mla) {
        kv_train_matmul_forward(a->k, a->xn1, P + y->wk, T, kd, D);
        kv_train_matmul_forward(a->v, a->xn1, P + y->wv, T, kd, D);
        kv_train_rope_forward(a->q, T, H, tr->dq, tr->n_rot, tr->freqs, 0, tr->pairing);
        kv_train_rope_forward(a->k, T, tr->Hk, tr->dq, tr->n_rot, tr->freqs, 0, tr->pairing);
        return;
    }
    const int dn = tr->dn, dr = tr->dr, dv = tr->dv, dc = tr->dc, dl = dc + dr, kvw = dn + dv;
    mla_rope_q(tr, a->q, T, 0);
    kv_train_matmul_forward(tr->dlat, a->xn1, P + y->wkv_a, T, dl, D); /* the latent, [T][dc + dr] */
    for (int t = 0; t < T; t++) {
        memcpy(a->c + (size_t)t * dc, tr->dlat + (size_t)t * dl, sizeof(float) * dc);
        memcpy(a->kr + (size_t)t * dr, tr->dlat + (size_t)t * dl + dc, sizeof(float) * dr);
    }
    if (tr->kv_norm_off) memcpy(a->cn, a->c, sizeof(float) * (size_t)T * dc);
    else kv_train_rmsnorm_forward(a->cn, a->rstdc, a->c, P + y->kv_norm, T, dc, tr->mla_eps);
    kv_train_rope_forward(a->kr, T, 1, dr, dr, tr->freqs, 0, tr->pairing);
    kv_train_matmul_forward(tr->kv, a->cn, P + y->wkv_b, T, H * kvw, dc);
    for (size_t th = 0; th < (size_t)T * H; th++) {
        const size_t t = th / H;
        memcpy(a->k + th * tr->dq, tr->kv + th * kvw, sizeof(float) * dn);
        memcpy(a->k + th * tr->dq + dn, a->kr + t * dr, sizeof(float) * dr);
        memcpy(a->v + th * dv, tr->kv + th * kvw + dn, sizeof(float) * dv);
    }
}

kvattn_status kv_trainer_forward(kv_trainer *tr, const int32_t *tokens, int T, const float **logits) {
    if (T < 1 || T > tr->max_T)
        return kv_fail(KVATTN_ERR_INVALID_ARG, "training: %d tokens (1 to %d a sequence)", T, tr->max_T);
    for (int t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= tr->V)
            return kv_fail(KVATTN_ERR_INVALID_ARG, "training: token %d = %d is outside the vocabulary [0, %d)", t,
                           tokens[t], tr->V);
    const int D = tr->D, F = tr->F, V = tr->V, od = tr->H * tr->dv;
    const float *P = tr->params;
    memcpy(tr->tokens, tokens, sizeof *tokens * (size_t)T);
    tr->T = T;
    kv_train_embed_forward(tr->acts[0].x_in, P + tr->tok_embd, tokens, T, D);
    for (int l = 0; l < tr->L; l++) {
        const kv_train_layer *y = &tr->layers[l];
        layer_acts *a = &tr->acts[l];
        float *x_out = l + 1 < tr->L ? tr->acts[l + 1].x_in : tr->x_final;
        /* attention: x_mid = x_in + W_o · attend(q, k, v of rmsnorm(x_in)) */
        kv_train_rmsnorm_forward(a->xn1, a->rstd1, a->x_in, P + y->attn_norm, T, D, tr->eps);
        qkv_forward(tr, y, a, T);
        kv_train_attention_forward(a->ao, a->att, a->q, a->k, a->v, T, tr->H, tr->Hk, tr->dq, tr->dv, tr->att_scale);
        kv_train_matmul_forward(tr->tmp, a->ao, P + y->wo, T, D, od);
        for (size_t i = 0; i < (size_t)T * D; i++) a->x_mid[i] = a->x_in[i] + tr->tmp[i];
        /* FFN: x_out = x_mid + W_down (silu(W_gate xn2) ⊙ W_up xn2) */
        kv_train_rmsnorm_forward(a->xn2, a->rstd2, a->x_mid, P + y->ffn_norm, T, D, tr->eps);
        kv_train_matmul_forward(a->g, a->xn2, P + y->w_gate, T, F, D);
        kv_train_matmul_forward(a->u, a->xn2, P + y->w_up, T, F, D);
        kv_train_swiglu_forward(a->h, a->g, a->u, (size_t)T * F);
        kv_train_matmul_forward(tr->tmp, a->h, P + y->w_down, T, D, F);
        for (size_t i = 0; i < (size_t)T * D; i++) x_out[i] = a->x_mid[i] + tr->tmp[i];
    }
    kv_train_rmsnorm_forward(tr->xnf, tr->rstdf, tr->x_final, P + tr->out_norm, T, D, tr->eps);
    kv_train_matmul_forward(tr->logits, tr->xnf, P + tr->output, T, V, D);
    if (logits) *logits = tr->logits;
    return KVATTN_OK;
}

/* The gradient of a trainable tensor at `at`, or NULL for a frozen or absent one. */
static float *grad_of(kv_trainer *tr, size_t at) { return kv_trainer_trains(tr, at) ? tr->grads + at : NULL; }

static void zero(float *x, size_t n) { memset(x, 0, sizeof(float) * n); }

/* From dq_, dk, dv_ (the attention's input gradients) back to tr->dxn, the gradient of the
 * layer's normed input (written), and the projections' weights: qkv_forward in reverse. */
static void qkv_backward(kv_trainer *tr, const kv_train_layer *y, const layer_acts *a, int T) {
    const float *P = tr->params, *PT = tr->params_t;
    const int D = tr->D, H = tr->H, qd = H * tr->dq, kd = tr->Hk * tr->dq;
    zero(tr->dxn, (size_t)T * D);
    if (!tr->mla) {
        kv_train_rope_backward(tr->dq_, T, H, tr->dq, tr->n_rot, tr->freqs, 0, tr->pairing);
        kv_train_rope_backward(tr->dk, T, tr->Hk, tr->dq, tr->n_rot, tr->freqs, 0, tr->pairing);
        kv_train_matmul_backward(tr->dxn, grad_of(tr, y->wq), tr->dq_, a->xn1, PT + y->wq, T, qd, D, tr->work);
        kv_train_matmul_backward(tr->dxn, grad_of(tr, y->wk), tr->dk, a->xn1, PT + y->wk, T, kd, D, tr->work);
        kv_train_matmul_backward(tr->dxn, grad_of(tr, y->wv), tr->dv_, a->xn1, PT + y->wv, T, kd, D, tr->work);
        return;
    }
    const int dn = tr->dn, dr = tr->dr, dv = tr->dv, dc = tr->dc, dl = dc + dr, kvw = dn + dv;
    /* k_h = [k_C,h ‖ k_R]: dk's first dn per head and dv_ go to W_kv_b's outputs, the last dr
     * summed over the heads to k_R */
    float *dkv = tr->kv, *dkr = tr->rot;
    zero(dkr, (size_t)T * dr);
    for (size_t th = 0; th < (size_t)T * H; th++) {
        const size_t t = th / H;
        memcpy(dkv + th * kvw, tr->dk + th * tr->dq, sizeof(float) * dn);
        memcpy(dkv + th * kvw + dn, tr->dv_ + th * dv, sizeof(float) * dv);
        for (int i = 0; i < dr; i++) dkr[t * dr + i] += tr->dk[th * tr->dq + dn + i];
    }
    zero(tr->dcl, (size_t)T * dc);
    kv_train_matmul_backward(tr->dcl, grad_of(tr, y->wkv_b), dkv, a->cn, PT + y->wkv_b, T, H * kvw, dc, tr->work);
    kv_train_rope_backward(dkr, T, 1, dr, dr, tr->freqs, 0, tr->pairing);
    for (int t = 0; t < T; t++) memcpy(tr->dlat + (size_t)t * dl + dc, dkr + (size_t)t * dr, sizeof(float) * dr);
    if (tr->kv_norm_off) {
        for (int t = 0; t < T; t++) memcpy(tr->dlat + (size_t)t * dl, tr->dcl + (size_t)t * dc, sizeof(float) * dc);
    } else {
        float *dc_in = tr->tmp; /* [T][dc] */
        zero(dc_in, (size_t)T * dc);
        kv_train_rmsnorm_backward(dc_in, grad_of(tr, y->kv_norm), tr->dcl, a->c, P + y->kv_norm, a->rstdc, T, dc);
        for (int t = 0; t < T; t++) memcpy(tr->dlat + (size_t)t * dl, dc_in + (size_t)t * dc, sizeof(float) * dc);
    }
    kv_train_matmul_backward(tr->dxn, grad_of(tr, y->wkv_a), tr->dlat, a->xn1, PT + y->wkv_a, T, dl, D, tr->work);
    mla_rope_q(tr, tr->dq_, T, 1); /* after dkr's use: both use tr->rot */
    kv_train_matmul_backward(tr->dxn, grad_of(tr, y->wq), tr->dq_, a->xn1, PT + y->wq, T, qd, D, tr->work);
}

double kv_trainer_backward(kv_trainer *tr, const int32_t *targets, const float *teacher_logp, float ce_weight,
                           float scale, double *kl) {
    const int T = tr->T, D = tr->D, F = tr->F, V = tr->V, od = tr->H * tr->dv;
    const float *P = tr->params, *PT = tr->params_t;
    double *pos_kl = tr->pos_loss + T;
#pragma omp parallel
    {
        float *scratch = teacher_logp ? malloc(sizeof(float) * (size_t)V) : NULL;
#pragma omp for schedule(static)
        for (int t = 0; t < T; t++) {
            const int target = targets ? targets[t] : -1;
            const float *lt = teacher_logp ? teacher_logp + (size_t)t * V : NULL;
            tr->pos_loss[t] = pos_kl[t] = 0.0;
            if ((target < 0 && !lt) || (lt && !scratch)) {
                zero(tr->dlogits + (size_t)t * V, (size_t)V);
                continue;
            }
            tr->pos_loss[t] = kv_train_loss(tr->dlogits + (size_t)t * V, tr->logits + (size_t)t * V, V, target, lt,
                                            ce_weight, scale / T, &pos_kl[t], scratch);
        }
        free(scratch);
    }
    double loss = 0.0, kl_sum = 0.0;
    for (int t = 0; t < T; t++) loss += tr->pos_loss[t], kl_sum += pos_kl[t];
    /* the head: logits = W_out · rmsnorm(x_final) */
    zero(tr->dxn, (size_t)T * D);
    kv_train_matmul_backward(tr->dxn, grad_of(tr, tr->output), tr->dlogits, tr->xnf, PT + tr->output, T, V, D,
                             tr->work);
    zero(tr->dx, (size_t)T * D);
    kv_train_rmsnorm_backward(tr->dx, grad_of(tr, tr->out_norm), tr->dxn, tr->x_final, P + tr->out_norm, tr->rstdf, T,
                              D);
    for (int l = tr->L - 1; l >= 0; l--) {
        const kv_train_layer *y = &tr->layers[l];
        const layer_acts *a = &tr->acts[l];
        /* FFN; dx carries on to x_mid through the residual */
        zero(tr->dh, (size_t)T * F);
        kv_train_matmul_backward(tr->dh, grad_of(tr, y->w_down), tr->dx, a->h, PT + y->w_down, T, D, F, tr->work);
        zero(tr->dg, (size_t)T * F), zero(tr->du, (size_t)T * F);
        kv_train_swiglu_backward(tr->dg, tr->du, tr->dh, a->g, a->u, (size_t)T * F);
        zero(tr->dxn, (size_t)T * D);
        kv_train_matmul_backward(tr->dxn, grad_of(tr, y->w_gate), tr->dg, a->xn2, PT + y->w_gate, T, F, D, tr->work);
        kv_train_matmul_backward(tr->dxn, grad_of(tr, y->w_up), tr->du, a->xn2, PT + y->w_up, T, F, D, tr->work);
        kv_train_rmsnorm_backward(tr->dx, grad_of(tr, y->ffn_norm), tr->dxn, a->x_mid, P + y->ffn_norm, a->rstd2, T, D);
        /* attention; dx carries on to x_in */
        zero(tr->dao, (size_t)T * od);
        kv_train_matmul_backward(tr->dao, grad_of(tr, y->wo), tr->dx, a->ao, PT + y->wo, T, D, od, tr->work);
        zero(tr->dq_, (size_t)T * tr->H * tr->dq), zero(tr->dk, (size_t)T * tr->Hk * tr->dq);
        zero(tr->dv_, (size_t)T * tr->Hk * tr->dv);
        kv_train_attention_backward(tr->dq_, tr->dk, tr->dv_, tr->dao, a->att, a->q, a->k, a->v, T, tr->H, tr->Hk,
                                    tr->dq, tr->dv, tr->att_scale, tr->ds);
        qkv_backward(tr, y, a, T);
        kv_train_rmsnorm_backward(tr->dx, grad_of(tr, y->attn_norm), tr->dxn, a->x_in, P + y->attn_norm, a->rstd1, T,
                                  D);
    }
    float *g_embd = grad_of(tr, tr->tok_embd);
    if (g_embd) kv_train_embed_backward(g_embd, tr->dx, tr->tokens, T, D);
    if (kl) *kl = kl_sum / T;
    return loss / T;
}

void kv_trainer_zero_grad(kv_trainer *tr) { zero(tr->grads, tr->n); }

float kv_adamw_lr(const kv_adamw_params *p, int step) {
    if (p->warmup_steps > 0 && step <= p->warmup_steps) return p->lr * (float)step / (float)p->warmup_steps;
    const int span = p->total_steps - p->warmup_steps;
    if (span <= 0) return p->lr;
    double frac = (double)(step - p->warmup_steps) / span;
    if (frac > 1.0) frac = 1.0;
    return p->min_lr + (p->lr - p->min_lr) * (float)(0.5 * (1.0 + cos(3.14159265358979323846 * frac)));
}

/* AdamW (Loshchilov & Hutter): m, v the moments with bias correction, the
 * decay decoupled from the gradient and applied to matrices only. */
double kv_trainer_step(kv_trainer *tr, const kv_adamw_params *p, int step) {
    const float b1 = p->beta1 > 0 ? p->beta1 : 0.9f, b2 = p->beta2 > 0 ? p->beta2 : 0.999f;
    const float eps = p->eps > 0 ? p->eps : 1e-8f, lr = kv_adamw_lr(p, step);
    double norm2 = 0.0;
    for (int i = 0; i < tr->n_tensors; i++) {
        const tensor *t = &tr->tensors[i];
        if (!t->trains) continue;
        for (size_t j = t->at; j < t->at + t->n; j++) norm2 += (double)tr->grads[j] * tr->grads[j];
    }
    const double norm = sqrt(norm2);
    const float clip = p->clip > 0 && norm > p->clip ? (float)(p->clip / norm) : 1.0f;
    const float c1 = 1.0f - powf(b1, (float)step), c2 = 1.0f - powf(b2, (float)step);
    for (int i = 0; i < tr->n_tensors; i++) {
        const tensor *t = &tr->tensors[i];
        if (!t->trains) continue;
        const float decay = t->rows ? p->weight_decay : 0.0f;
#pragma omp parallel for schedule(static) if (t->n > 65536)
        for (size_t j = t->at; j < t->at + t->n; j++) {
            const float g = tr->grads[j] * clip;
            tr->m1[j] = b1 * tr->m1[j] + (1.0f - b1) * g;
            tr->m2[j] = b2 * tr->m2[j] + (1.0f - b2) * g * g;
            const float mh = tr->m1[j] / c1, vh = tr->m2[j] / c2;
            tr->params[j] -= lr * (mh / (sqrtf(vh) + eps) + decay * tr->params[j]);
        }
    }
    transpose_params(tr, 1);
    return norm;
}

void kv_trainer_get_view(kv_trainer *tr, kv_trainer_view *v) {
    *v = (kv_trainer_view){tr->params, tr->grads, tr->n, tr->layers, tr->tok_embd, tr->out_norm, tr->output};
}

void kv_trainer_sync(kv_trainer *tr) { transpose_params(tr, 0); }

size_t kv_trainer_tensor_size(const kv_trainer *tr, size_t at) {
    for (int i = 0; i < tr->n_tensors; i++)
        if (tr->tensors[i].at == at) return tr->tensors[i].n;
    return 0;
}

int kv_trainer_trains(const kv_trainer *tr, size_t at) {
    for (int i = 0; i < tr->n_tensors; i++)
        if (tr->tensors[i].at == at) return tr->tensors[i].trains;
    return 0;
}

void kv_trainer_moments(const kv_trainer *tr, const float **m1, const float **m2, size_t *n) {
    *m1 = tr->m1, *m2 = tr->m2, *n = tr->n;
}

kvattn_status kv_trainer_model(const kv_trainer *tr, const kvattn_model *like, kvattn_model **out) {
    *out = NULL;
    kvattn_model *m = calloc(1, sizeof *m);
    if (!m || !(m->layers = calloc((size_t)tr->L, sizeof *m->layers))) {
        free(m);
        return kv_fail(KVATTN_ERR_NOMEM, "training: out of memory");
    }
    float *P = tr->params;
    m->desc = like->desc;
    snprintf(m->format, sizeof m->format, "uptrained");
    m->norm_eps = like->norm_eps;
    m->tokenizer = like->tokenizer, m->tokenizer_borrowed = 1, m->chat_template = like->chat_template;
    snprintf(m->provenance, sizeof m->provenance, "%s", like->provenance);
    m->tok_embd = kvattn_f32_matrix(P + tr->tok_embd), m->output = kvattn_f32_matrix(P + tr->output);
    m->out_norm = P + tr->out_norm;
    for (int l = 0; l < tr->L; l++) {
        const kv_train_layer *y = &tr->layers[l];
        kv_layer *b = &m->layers[l];
        b->attn_norm = P + y->attn_norm, b->ffn_norm = P + y->ffn_norm;
        b->attn.wq = kvattn_f32_matrix(P + y->wq), b->attn.wo = kvattn_f32_matrix(P + y->wo);
        if (tr->mla) {
            b->attn.wkv_a = kvattn_f32_matrix(P + y->wkv_a), b->attn.wkv_b = kvattn_f32_matrix(P + y->wkv_b);
            b->attn.kv_norm = tr->kv_norm_off ? NULL : P + y->kv_norm;
        } else {
            b->attn.wk = kvattn_f32_matrix(P + y->wk), b->attn.wv = kvattn_f32_matrix(P + y->wv);
        }
        b->ffn_gate = kvattn_f32_matrix(P + y->w_gate), b->ffn_up = kvattn_f32_matrix(P + y->w_up);
        b->ffn_down = kvattn_f32_matrix(P + y->w_down);
    }
    m->weight_bytes = sizeof(float) * (uint64_t)tr->n;
    *out = m;
    return KVATTN_OK;
}
