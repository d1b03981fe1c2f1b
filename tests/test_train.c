/* The trainable model on stories260K (GQA: 8 query heads on 4 KV heads):
 *   - its forward gives the inference session's logits (f32 cache), within
 *     1e-4 of the largest logit (measured 4e-7): the same products, the
 *     attention summed in another order;
 *   - its backward gives every tensor's gradient, checked against central
 *     differences of the loss (cross-entropy on the next tokens mixed with
 *     the KL from a teacher) on the 12 elements of each tensor with the
 *     largest gradients: within 1e-2 of their norm. The differences are
 *     central ones at h = 4e-3 and 2e-3, combined by Richardson's rule so
 *     that the h² term cancels (MLA's W_q bends enough that one step of 3e-3
 *     was 2% off); the loss is summed in double from f32 logits, about 1e-6
 *     absolute. Measured: at most 2.7e-3 (a norm's weights, where rounding
 *     dominates); leaving out RoPE's backward for q puts 8 tensors 1.4e-2
 *     to 0.27 off;
 *   - the same for MLA in its training form (keys and values expanded from
 *     the latent), on stories260K converted to mla:16+8, the latent as
 *     projected and normed: the forward against both inference modes, the
 *     gradients of W_q, W_kv_a, the latent norm and W_kv_b included;
 *   - a student whose attention weights were disturbed, distilled from the
 *     model for 40 AdamW steps on TinyStories text, gets closer to it: the
 *     KL on held-out text falls by more than half (deterministic: fixed
 *     seeds, and the products split their rows the same way each run);
 *   - kvattn_uptrain with a time budget (2 s, the step cap far away, one
 *     thread) ends near the budget, having warmed up to the peak learning rate and
 *     annealed to within 10% of the way down to min_lr at its last step (a
 *     step or two short of the end where the pace changes); with resume it
 *     is refused;
 *   - against PyTorch's autograd (tests/golden/gen_train_grads.py): a tiny
 *     llama (GQA) and a tiny dense deepseek2 (MLA in its training form,
 *     YaRN on), their logits, loss and every tensor's gradient for one
 *     window, computed in float64 there. Tolerance 1e-4 of each tensor's
 *     gradient norm (and of the largest logit, and of the loss): f32
 *     products of a few dozen terms through two blocks round at about 1e-6;
 *     a missing term, a wrong index or a wrong scale is O(1). */
#define _POSIX_C_SOURCE 200809L
#include "golden_file.h"
#include "golden_gguf.h"
#include "test_util.h"

#include "train/train_ops.h"
#include "train/trainer.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef KVATTN_TEST_TEXT
#define KVATTN_TEST_TEXT "../shared/data/tinystories-excerpt.txt"
#endif

enum { T_GRAD = 12, T_TRAIN = 64 };

static int32_t *text_tokens(const kvattn_model *m, int *n) {
    FILE *f = fopen(KVATTN_TEST_TEXT, "rb");
    *n = 0;
    if (!f) return NULL;
    static char buf[1 << 16];
    const size_t got = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[got] = 0;
    int32_t *ids = malloc(sizeof(int32_t) * (got + 2));
    if (ids && kvattn_tokenize(kvattn_model_tokenizer(m), buf, 1, ids, (int)got + 2, n) != KVATTN_OK) *n = 0;
    return ids;
}

static void check_forward(const char *name, const kvattn_model *m, kv_trainer *tr, const int32_t *tok,
                          kvattn_mla_mode mode) {
    const int V = (int)kvattn_model_describe(m)->vocab_size, T = 40;
    const float *lt = NULL;
    CHECK_OK(kv_trainer_forward(tr, tok, T, &lt));
    kvattn_session *s = NULL;
    float *ls = malloc(sizeof(float) * (size_t)T * V);
    CHECK_OK(kvattn_session_create(m, 64, KVATTN_TYPE_F32, mode, &s));
    if (s && ls && lt) {
        CHECK_OK(kvattn_session_decode(s, tok, T, ls, 1));
        const double diff = test_max_abs_diff(lt, ls, (size_t)T * V), big = test_max_abs(ls, (size_t)T * V);
        CHECK(diff <= 1e-4 * big, "%s: training forward vs inference: logits differ by %.3g (largest %.3g)", name, diff,
              big);
        printf("%s: forward's logits within %.3g of inference (largest %.3g)\n", name, diff, big);
    }
    kvattn_session_free(s);
    free(ls);
}

/* the loss of the trainer's forward on tok, with targets and teacher probabilities */
static double loss_of(kv_trainer *tr, const int32_t *tok, const int32_t *targets, const float *teacher) {
    kv_trainer_forward(tr, tok, T_GRAD, NULL);
    kv_trainer_zero_grad(tr);
    return kv_trainer_backward(tr, targets, teacher, 0.5f, 1.0f, NULL);
}

static void check_tensor_grad(kv_trainer *tr, const char *name, size_t at, size_t n, const int32_t *tok,
                              const int32_t *targets, const float *teacher, const float *grads) {
    kv_trainer_view v;
    kv_trainer_get_view(tr, &v);
    enum { K = 12 };
    size_t pick[K];
    int np = 0;
    for (size_t i = 0; i < n; i++) { /* the K largest |gradient| */
        const float g = fabsf(grads[at + i]);
        int j;
        if (np < K) j = np++;
        else if (g <= fabsf(grads[at + pick[K - 1]])) continue;
        else j = K - 1;
        for (; j > 0 && fabsf(grads[at + pick[j - 1]]) < g; j--) pick[j] = pick[j - 1];
        pick[j] = i;
    }
    double diff2 = 0.0, norm2 = 0.0;
    for (int i = 0; i < np; i++) {
        float *w = &v.params[at + pick[i]];
        const float save = *w;
        double d[2];
        for (int k = 0; k < 2; k++) { /* central differences at h and h/2 */
            const float h = k ? 2e-3f : 4e-3f;
            *w = save + h;
            const double lp = loss_of(tr, tok, targets, teacher);
            *w = save - h;
            const double lm = loss_of(tr, tok, targets, teacher);
            d[k] = (lp - lm) / (2.0 * h);
        }
        *w = save;
        const double fd = (4.0 * d[1] - d[0]) / 3.0, g = grads[at + pick[i]]; /* Richardson: the h² term cancels */
        diff2 += (fd - g) * (fd - g), norm2 += g * g;
    }
    CHECK(norm2 > 0 && sqrt(diff2) <= 1e-2 * sqrt(norm2), "%s: gradient off by %.3g of its norm %.3g", name,
          sqrt(diff2) / (sqrt(norm2) + 1e-30), sqrt(norm2));
}

static void check_backward(const char *name, const kvattn_model *m, const int32_t *tok) {
    const kvattn_model_desc *d = kvattn_model_describe(m);
    const int V = (int)d->vocab_size;
    kv_trainer *tr = NULL;
    CHECK_OK(kv_trainer_create(m, KV_TRAIN_ALL, T_GRAD, &tr));
    if (!tr) return;
    int32_t targets[T_GRAD];
    for (int t = 0; t < T_GRAD; t++) targets[t] = t % 4 == 3 ? -1 : tok[t + 1];
    float *teacher = malloc(sizeof(float) * (size_t)T_GRAD * V), *logits = malloc(sizeof(float) * V);
    test_rng r = {0x7eac};
    for (int t = 0; t < T_GRAD; t++) {
        test_fill(&r, logits, (size_t)V, 4.0f);
        kv_train_log_softmax(teacher + (size_t)t * V, logits, V);
    }
    kv_trainer_view v;
    kv_trainer_get_view(tr, &v);
    loss_of(tr, tok, targets, teacher);
    float *grads = malloc(sizeof(float) * v.n);
    memcpy(grads, v.grads, sizeof(float) * v.n);
    const kv_train_layer *first = &v.layers[0], *last = &v.layers[d->n_layers - 1];
    const struct {
        const char *name;
        size_t at;
    } t[] = {
        {"tok_embd", v.tok_embd},
        {"out_norm", v.out_norm},
        {"layer 0 attn_norm", first->attn_norm},
        {"layer 0 wq", first->wq},
        {"layer 0 wk", first->wk},
        {"layer 0 wv", first->wv},
        {"layer 0 wkv_a", first->wkv_a},
        {"layer 0 kv_norm", first->kv_norm},
        {"layer 0 wkv_b", first->wkv_b},
        {"layer 1 wo", v.layers[1].wo},
        {"layer 2 ffn_norm", v.layers[2].ffn_norm},
        {"layer 2 w_gate", v.layers[2].w_gate},
        {"layer 3 w_up", v.layers[3].w_up},
        {"last layer w_down", last->w_down},
        {"last layer wk", last->wk},
        {"last layer wkv_b", last->wkv_b},
    };
    int checked = 0;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        const size_t n = kv_trainer_tensor_size(tr, t[i].at);
        if (!n) continue; /* the other design's tensor */
        char what[128];
        snprintf(what, sizeof what, "%s: %s", name, t[i].name);
        check_tensor_grad(tr, what, t[i].at, n, tok, targets, teacher, grads);
        checked++;
    }
    CHECK(checked >= 12, "%s: %d tensors' gradients checked", name, checked);
    free(grads), free(teacher), free(logits);
    kv_trainer_free(tr);
}

/* mean KL from the teacher to the student over `n` tokens of text, in windows of T_TRAIN */
static double mean_kl(kv_trainer *teacher, kv_trainer *student, const int32_t *tok, int n, float *tp, int V) {
    double sum = 0.0;
    int windows = 0;
    for (int at = 0; at + T_TRAIN <= n; at += T_TRAIN, windows++) {
        const float *lt = NULL;
        kv_trainer_forward(teacher, tok + at, T_TRAIN, &lt);
        for (int t = 0; t < T_TRAIN; t++) kv_train_log_softmax(tp + (size_t)t * V, lt + (size_t)t * V, V);
        kv_trainer_forward(student, tok + at, T_TRAIN, NULL);
        double kl = 0.0;
        kv_trainer_zero_grad(student);
        kv_trainer_backward(student, NULL, tp, 0.0f, 1.0f, &kl);
        sum += kl;
    }
    return windows ? sum / windows : NAN;
}

static void check_distill(const char *name, const kvattn_model *m, const int32_t *tok, int n) {
    const int V = (int)kvattn_model_describe(m)->vocab_size;
    kv_trainer *teacher = NULL, *student = NULL;
    CHECK_OK(kv_trainer_create(m, KV_TRAIN_ALL, T_TRAIN, &teacher));
    CHECK_OK(kv_trainer_create(m, KV_TRAIN_ATTN, T_TRAIN, &student));
    float *tp = malloc(sizeof(float) * (size_t)T_TRAIN * V);
    if (!teacher || !student || !tp || n < 12 * T_TRAIN) {
        CHECK(0, "distillation: set-up failed (%d tokens of text)", n);
        goto done;
    }
    kv_trainer_view v;
    kv_trainer_get_view(student, &v);
    test_rng r = {0xd15};
    const kvattn_model_desc *d = kvattn_model_describe(m);
    for (int l = 0; l < d->n_layers; l++) { /* each projection's weights disturbed by 30% of their size */
        const kv_train_layer *y = &v.layers[l];
        const size_t at[6] = {y->wq, y->wk, y->wv, y->wo, y->wkv_a, y->wkv_b};
        for (int i = 0; i < 6; i++) {
            const size_t len = kv_trainer_tensor_size(student, at[i]);
            if (!len) continue;
            double ss = 0.0;
            for (size_t j = 0; j < len; j++) ss += (double)v.params[at[i] + j] * v.params[at[i] + j];
            const float rms = (float)sqrt(ss / len);
            for (size_t j = 0; j < len; j++) v.params[at[i] + j] += 0.3f * rms * 1.732f * test_uniform(&r);
        }
    }
    kv_trainer_sync(student);
    /* the last 4 windows are held out */
    const int held = n - 4 * T_TRAIN, train_windows = held / T_TRAIN;
    const double before = mean_kl(teacher, student, tok + held, 4 * T_TRAIN, tp, V);
    const kv_adamw_params p = {.lr = 3e-3f, .min_lr = 3e-4f, .warmup_steps = 4, .total_steps = 40, .clip = 1.0f};
    for (int step = 1; step <= 40; step++) {
        kv_trainer_zero_grad(student);
        for (int micro = 0; micro < 2; micro++) {
            const int w = ((step - 1) * 2 + micro) % train_windows;
            const float *lt = NULL;
            kv_trainer_forward(teacher, tok + w * T_TRAIN, T_TRAIN, &lt);
            for (int t = 0; t < T_TRAIN; t++) kv_train_log_softmax(tp + (size_t)t * V, lt + (size_t)t * V, V);
            kv_trainer_forward(student, tok + w * T_TRAIN, T_TRAIN, NULL);
            kv_trainer_backward(student, NULL, tp, 0.0f, 0.5f, NULL);
        }
        kv_trainer_step(student, &p, step);
    }
    const double after = mean_kl(teacher, student, tok + held, 4 * T_TRAIN, tp, V);
    CHECK(after < 0.5 * before, "%s: distillation: held-out KL %.4g before, %.4g after 40 steps", name, before, after);
    printf("%s: distillation: held-out KL %.4g -> %.4g\n", name, before, after);
    /* the frozen tensors did not move */
    kv_trainer_view tv;
    kv_trainer_get_view(teacher, &tv);
    CHECK(!memcmp(v.params + v.layers[0].w_gate, tv.params + tv.layers[0].w_gate, sizeof(float) * d->ffn_dim),
          "%s: distillation: a frozen tensor moved", name);
done:
    free(tp);
    kv_trainer_free(teacher), kv_trainer_free(student);
}

/* The trainer's offset of the tensor a GGUF name names, or SIZE_MAX. */
static size_t tensor_at(const kv_trainer_view *v, const char *name) {
    static const struct {
        const char *suffix;
        size_t offset; /* into kv_train_layer */
    } per_layer[] = {
        {"attn_norm.weight", offsetof(kv_train_layer, attn_norm)},
        {"attn_q.weight", offsetof(kv_train_layer, wq)},
        {"attn_k.weight", offsetof(kv_train_layer, wk)},
        {"attn_v.weight", offsetof(kv_train_layer, wv)},
        {"attn_output.weight", offsetof(kv_train_layer, wo)},
        {"attn_kv_a_mqa.weight", offsetof(kv_train_layer, wkv_a)},
        {"attn_kv_a_norm.weight", offsetof(kv_train_layer, kv_norm)},
        {"attn_kv_b.weight", offsetof(kv_train_layer, wkv_b)},
        {"ffn_norm.weight", offsetof(kv_train_layer, ffn_norm)},
        {"ffn_gate.weight", offsetof(kv_train_layer, w_gate)},
        {"ffn_up.weight", offsetof(kv_train_layer, w_up)},
        {"ffn_down.weight", offsetof(kv_train_layer, w_down)},
    };
    if (!strcmp(name, "token_embd.weight")) return v->tok_embd;
    if (!strcmp(name, "output_norm.weight")) return v->out_norm;
    if (!strcmp(name, "output.weight")) return v->output;
    int l, used = 0;
    if (sscanf(name, "blk.%d.%n", &l, &used) != 1 || used == 0) return SIZE_MAX;
    for (size_t i = 0; i < sizeof per_layer / sizeof per_layer[0]; i++)
        if (!strcmp(name + used, per_layer[i].suffix))
            return *(const size_t *)((const char *)&v->layers[l] + per_layer[i].offset);
    return SIZE_MAX;
}

static void check_against_torch(const char *fixture, int deepseek) {
    char path[600], gguf[160];
    snprintf(path, sizeof path, "%s/%s.bin", KVATTN_GOLDEN_DIR, fixture);
    golden_file g;
    if (golden_load(path, &g) != 0) {
        CHECK(0, "%s: cannot read the fixture", path);
        return;
    }
    snprintf(gguf, sizeof gguf, "/tmp/kvattn_%s_%d.gguf", fixture, (int)getpid());
    CHECK_OK(deepseek ? golden_write_deepseek2_gguf(&g, gguf, 0, KVATTN_TYPE_F32, 0)
                      : golden_write_gguf(&g, gguf, KVATTN_TYPE_F32, NULL, 0));
    kvattn_model *m = NULL;
    CHECK_OK(kvattn_model_load(gguf, NULL, &m));
    unlink(gguf);
    const golden_array *tokens = get(&g, "tokens"), *targets = get(&g, "targets");
    const golden_array *teacher = get(&g, "teacher_logp"), *logits_ref = get(&g, "logits");
    const int T = tokens ? tokens->n : 0, V = (int)num(&g, "V");
    kv_trainer *tr = NULL;
    if (m && T > 0 && targets && teacher && logits_ref) CHECK_OK(kv_trainer_create(m, KV_TRAIN_ALL, T, &tr));
    if (!tr) {
        kvattn_model_free(m);
        golden_free(&g);
        return;
    }
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)T * 2), *tgt = tok + T;
    for (int t = 0; t < T; t++) tok[t] = (int32_t)tokens->data[t], tgt[t] = (int32_t)targets->data[t];
    const float *logits = NULL;
    CHECK_OK(kv_trainer_forward(tr, tok, T, &logits));
    const double ldiff = test_max_abs_diff(logits, logits_ref->data, (size_t)T * V);
    const double lbig = test_max_abs(logits_ref->data, (size_t)T * V);
    CHECK(ldiff <= 1e-4 * lbig, "%s: logits %.3g from PyTorch's (largest %.3g)", fixture, ldiff, lbig);
    kv_trainer_zero_grad(tr);
    const double loss = kv_trainer_backward(tr, tgt, teacher->data, num(&g, "ce_weight"), 1.0f, NULL);
    const double loss_ref = num(&g, "loss");
    CHECK(fabs(loss - loss_ref) <= 1e-4 * fabs(loss_ref), "%s: loss %.7g, PyTorch's %.7g", fixture, loss, loss_ref);
    kv_trainer_view v;
    kv_trainer_get_view(tr, &v);
    int compared = 0;
    double worst = 0.0;
    for (int i = 0; i < g.count; i++) {
        if (strncmp(g.a[i].name, "grad.", 5)) continue;
        const char *name = g.a[i].name + 5;
        const size_t at = tensor_at(&v, name);
        const size_t n = at == SIZE_MAX ? 0 : kv_trainer_tensor_size(tr, at);
        CHECK(n == (size_t)g.a[i].n, "%s: %s: %zu trainer elements, %d in the fixture", fixture, name, n, g.a[i].n);
        if (n != (size_t)g.a[i].n) continue;
        double d2 = 0.0, n2 = 0.0;
        for (size_t j = 0; j < n; j++) {
            const double d = (double)v.grads[at + j] - g.a[i].data[j];
            d2 += d * d, n2 += (double)g.a[i].data[j] * g.a[i].data[j];
        }
        const double rel = sqrt(d2) / (sqrt(n2) + 1e-30);
        CHECK(n2 > 0 && rel <= 1e-4, "%s: %s: gradient %.3g of its norm %.3g from PyTorch's", fixture, name, rel,
              sqrt(n2));
        worst = rel > worst ? rel : worst, compared++;
    }
    CHECK(compared >= 10, "%s: %d gradients compared", fixture, compared);
    printf("%s: logits within %.3g, loss %.7g (PyTorch %.7g), %d gradients within %.3g of their norms\n", fixture,
           ldiff / lbig, loss, loss_ref, compared, worst);
    free(tok);
    kv_trainer_free(tr);
    kvattn_model_free(m);
    golden_free(&g);
}

typedef struct {
    int calls, last_step, last_steps;
    double max_lr, last_lr;
} lr_trace;

static void trace_lr(void *ctx, const kvattn_uptrain_progress *p) {
    lr_trace *t = ctx;
    t->calls++, t->last_step = p->step, t->last_steps = p->steps, t->last_lr = p->lr;
    if (p->lr > t->max_lr) t->max_lr = p->lr;
}

static void check_time_budget(const kvattn_model *m, const int32_t *tok, int n) {
    char out[160];
    snprintf(out, sizeof out, "/tmp/kvattn_budget_%d.gguf", (int)getpid());
    lr_trace trace = {0};
    kvattn_uptrain_params p = {.tokens = tok,
                               .n_tokens = n,
                               .steps = 1 << 20,
                               .batch = 1,
                               .seq = 32,
                               .lr = 1e-3f,
                               .min_lr = 1e-5f,
                               .clip = 1.0f,
                               .warmup = -1,
                               .seed = 5,
                               .time_budget_s = 2.0,
                               .out_path = out,
                               .out_type = KVATTN_TYPE_F32,
                               .progress = trace_lr,
                               .progress_ctx = &trace};
    kvattn_uptrain_result r;
    kvattn_set_threads(1); /* one thread: two suites side by side (ctest -j) slow a team of threads far more */
    CHECK_OK(kvattn_uptrain(m, m, &p, &r));
    kvattn_set_threads(0);
    /* a busy machine (another test beside this one) can make the last step run long: 1.5 s of slack */
    CHECK(r.steps_run >= 1 && r.steps_run < p.steps && r.seconds <= 3.5,
          "time budget 2 s: %d steps in %.2f s (want ≤ 3.5 s)", r.steps_run, r.seconds);
    CHECK(trace.calls == r.steps_run, "%d progress calls for %d steps", trace.calls, r.steps_run);
    if (r.steps_run >= 8) { /* a machine busy enough to allow fewer has no schedule to judge */
        CHECK(trace.last_steps - trace.last_step <= 3, "the schedule's last step (%d) fits the run's (%d)",
              trace.last_steps, trace.last_step);
        CHECK(trace.max_lr >= 0.9 * p.lr && trace.last_lr <= p.min_lr + 0.1 * (p.lr - p.min_lr),
              "the budget's schedule: peak %.3g (lr %.3g), last %.3g (min %.3g)", trace.max_lr, p.lr, trace.last_lr,
              p.min_lr);
    }
    printf("time budget 2 s: %d steps in %.2f s, lr peak %.3g, last %.3g\n", r.steps_run, r.seconds, trace.max_lr,
           trace.last_lr);
    p.resume = 1;
    CHECK(kvattn_uptrain(m, m, &p, &r) == KVATTN_ERR_INVALID_ARG, "a time budget with resume is refused");
    char state[200];
    snprintf(state, sizeof state, "%s.state", out);
    unlink(out), unlink(state);
}

int main(void) {
    check_against_torch("train_llama", 0);
    check_against_torch("train_mla", 1);
    const char *needed[] = {"stories260K.bin", "tok512.bin", NULL};
    if (!test_models_found(test_models_dir(), needed))
        return test_failures ? test_finish("test_train") : test_models_missing("test_train", test_models_dir());
    kvattn_model *m = NULL;
    CHECK_OK(kvattn_model_load(test_model_path("stories260K.bin"), test_model_path("tok512.bin"), &m));
    int n = 0;
    int32_t *tok = m ? text_tokens(m, &n) : NULL;
    CHECK(tok && n > 1000, "%s: %d tokens", KVATTN_TEST_TEXT, n);
    if (m && tok && n > 1000) {
        kv_trainer *tr = NULL;
        CHECK_OK(kv_trainer_create(m, KV_TRAIN_ALL, 64, &tr));
        if (tr) check_forward("stories260K", m, tr, tok, KVATTN_MLA_ABSORBED);
        kv_trainer_free(tr);
        check_backward("stories260K", m, tok);
        check_distill("stories260K", m, tok, n < 40 * T_TRAIN ? n : 40 * T_TRAIN);
        check_time_budget(m, tok, n);
        /* MLA in its training form: stories260K converted, the latent as projected and normed */
        for (int norm = 0; norm < 2; norm++) {
            kvattn_model *mla = NULL;
            const kvattn_convert_params cp = {.design = "mla:16+8",
                                              .mla_kv_norm = norm,
                                              .calib_tokens = tok,
                                              .n_calib_tokens = 2048,
                                              .calib_ctx = 128};
            CHECK_OK(kvattn_model_convert(m, &cp, &mla));
            if (!mla) continue;
            const char *name = norm ? "stories260K mla:16+8 (latent normed)" : "stories260K mla:16+8";
            CHECK_OK(kv_trainer_create(mla, KV_TRAIN_ALL, 64, &tr));
            if (tr) {
                check_forward(name, mla, tr, tok, KVATTN_MLA_NAIVE);
                check_forward(name, mla, tr, tok, KVATTN_MLA_ABSORBED);
            }
            kv_trainer_free(tr);
            check_backward(name, mla, tok);
            if (norm) check_distill(name, mla, tok, n < 40 * T_TRAIN ? n : 40 * T_TRAIN);
            kvattn_model_free(mla);
        }
    }
    free(tok);
    kvattn_model_free(m);
    return test_finish("test_train");
}
