/* kvattn_uptrain: a converted model distilled from its original. Each step
 * takes `batch` windows of the training text, the teacher's next-token
 * distributions from an inference session (f32 cache: any design the
 * teacher has), and the student's gradients from the trainer; AdamW then
 * moves the student. Checkpoints (the student as GGUF, the optimizer's state
 * beside it) are written whole under a temporary name and renamed, so an
 * interruption leaves the last one usable. */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"
#include "model/model.h"
#include "train_ops.h"
#include "trainer.h"

#include "core/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The optimizer's state beside a checkpoint: a header, then m1 and m2. */
typedef struct {
    char magic[8]; /* "KVATRAIN" */
    uint32_t version;
    uint32_t step;
    uint32_t train_all;
    uint32_t unused;
    uint64_t n;    /* floats in each moment */
    uint64_t seed; /* the window order's seed */
} state_header;

static kvattn_status write_state(const char *path, const kv_trainer *tr, int step, int train_all, uint64_t seed) {
    const float *m1, *m2;
    size_t n;
    kv_trainer_moments(tr, &m1, &m2, &n);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return kv_fail(KVATTN_ERR_IO, "uptrain: cannot write %s", tmp);
    const state_header h = {
        {'K', 'V', 'A', 'T', 'R', 'A', 'I', 'N'}, 1, (uint32_t)step, (uint32_t)train_all, 0, n, seed};
    int ok =
        fwrite(&h, sizeof h, 1, f) == 1 && fwrite(m1, sizeof(float), n, f) == n && fwrite(m2, sizeof(float), n, f) == n;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return kv_fail(KVATTN_ERR_IO, "uptrain: cannot write %s", path);
    }
    return KVATTN_OK;
}

static kvattn_status read_state(const char *path, kv_trainer *tr, int train_all, int *step, uint64_t *seed) {
    float *m1, *m2;
    size_t n;
    kv_trainer_moments(tr, (const float **)&m1, (const float **)&m2, &n);
    FILE *f = fopen(path, "rb");
    if (!f) return kv_fail(KVATTN_ERR_IO, "uptrain: --resume: cannot open %s", path);
    state_header h;
    int ok = fread(&h, sizeof h, 1, f) == 1;
    if (ok && (memcmp(h.magic, "KVATRAIN", 8) || h.version != 1 || h.n != n || h.train_all != (uint32_t) !!train_all)) {
        fclose(f);
        return kv_fail(KVATTN_ERR_FORMAT,
                       "uptrain: %s: not the optimizer state of this model and --train choice (%llu floats of %s, "
                       "want %zu of %s)",
                       path, (unsigned long long)h.n, h.train_all ? "all" : "attn", n, train_all ? "all" : "attn");
    }
    ok = ok && fread(m1, sizeof(float), n, f) == n && fread(m2, sizeof(float), n, f) == n;
    fclose(f);
    if (!ok) return kv_fail(KVATTN_ERR_FORMAT, "uptrain: %s is truncated", path);
    *step = (int)h.step, *seed = h.seed;
    return KVATTN_OK;
}

/* The student as it stands, written to path (through a temporary file). */
static kvattn_status write_model(kv_trainer *tr, const kvattn_model *student, const char *path, kvattn_type type) {
    kvattn_model *m = NULL;
    kvattn_status st = kv_trainer_model(tr, student, &m);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (st == KVATTN_OK) st = kvattn_model_save_gguf(m, tmp, type);
    kvattn_model_free(m);
    if (st == KVATTN_OK && rename(tmp, path) != 0) st = kv_fail(KVATTN_ERR_IO, "uptrain: cannot rename %s", tmp);
    if (st != KVATTN_OK) remove(tmp);
    return st;
}

static char *state_path(const char *out) {
    char *p = malloc(strlen(out) + 8);
    if (p) sprintf(p, "%s.state", out);
    return p;
}

kvattn_status kvattn_uptrain(const kvattn_model *student, const kvattn_model *teacher, const kvattn_uptrain_params *p,
                             kvattn_uptrain_result *res) {
    if (!student || !teacher || !p || !res || !p->tokens || !p->out_path)
        return kv_fail(KVATTN_ERR_INVALID_ARG,
                       "uptrain: student, teacher, parameters, result, tokens and an output path are required");
    const kvattn_model_desc *sd = &student->desc, *td = &teacher->desc;
    if (sd->vocab_size != td->vocab_size)
        return kv_fail(KVATTN_ERR_INVALID_ARG, "uptrain: the student's vocabulary (%lld) is not the teacher's (%lld)",
                       (long long)sd->vocab_size, (long long)td->vocab_size);
    const int T = p->seq, B = p->batch, V = (int)sd->vocab_size;
    if (T < 2 || B < 1 || p->steps < 1 || !(p->lr > 0.0f))
        return kv_fail(KVATTN_ERR_INVALID_ARG, "uptrain: seq %d (≥ 2), batch %d (≥ 1), steps %d (≥ 1), lr %g (> 0)", T,
                       B, p->steps, p->lr);
    if (p->time_budget_s > 0 && p->resume)
        return kv_fail(KVATTN_ERR_INVALID_ARG,
                       "uptrain: a time budget cannot resume a run (its schedule was fitted to the first run's pace)");
    if (p->n_tokens < T + 1)
        return kv_fail(KVATTN_ERR_INVALID_ARG, "uptrain: %d tokens of training text, fewer than a window of %d",
                       p->n_tokens, T + 1);
    for (int i = 0; i < p->n_tokens; i++)
        if (p->tokens[i] < 0 || p->tokens[i] >= V)
            return kv_fail(KVATTN_ERR_INVALID_ARG, "uptrain: token %d = %d is outside the vocabulary", i, p->tokens[i]);
    kv_trainer *tr = NULL;
    kvattn_session *ts = NULL;
    kvattn_status st = kv_trainer_create(student, p->train_all ? KV_TRAIN_ALL : KV_TRAIN_ATTN, T, &tr);
    if (st == KVATTN_OK) st = kvattn_session_create(teacher, T, KVATTN_TYPE_F32, KVATTN_MLA_ABSORBED, &ts);
    float *tl = malloc(sizeof(float) * (size_t)T * V), *tp = malloc(sizeof(float) * (size_t)T * V);
    int32_t *targets = malloc(sizeof(int32_t) * (size_t)T);
    char *spath = state_path(p->out_path);
    if (st == KVATTN_OK && (!tl || !tp || !targets || !spath)) st = kv_fail(KVATTN_ERR_NOMEM, "uptrain: out of memory");
    int first = 1;
    uint64_t seed = p->seed;
    if (st == KVATTN_OK && p->resume) {
        int done = 0;
        st = read_state(spath, tr, p->train_all, &done, &seed);
        first = done + 1;
    }
    kv_adamw_params ap = {.lr = p->lr,
                          .min_lr = p->min_lr,
                          .warmup_steps = p->warmup >= 0 ? p->warmup : p->steps / 20,
                          .total_steps = p->steps,
                          .weight_decay = p->weight_decay,
                          .clip = p->clip};
    memset(res, 0, sizeof *res);
    res->first_step = first;
    const double t0 = now_s();
    int step = first;
    for (; st == KVATTN_OK && step <= p->steps && !(p->stop && *p->stop); step++) {
        if (p->time_budget_s > 0 && res->steps_run > 0) {
            const double per_step = res->seconds / res->steps_run;
            if (res->seconds + per_step > p->time_budget_s) break;
            /* the steps still to come at the pace so far: a machine that slows down shortens the schedule */
            const double fit = step - 1 + (p->time_budget_s - res->seconds) / per_step;
            ap.total_steps = fit < step ? step : fit > p->steps ? p->steps : (int)fit;
            if (p->warmup < 0) ap.warmup_steps = ap.total_steps / 20;
        }
        /* windows drawn from a stream seeded by (seed, step): a resumed run draws the same ones */
        kv_rng rng = {seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)step)};
        kv_trainer_zero_grad(tr);
        double loss = 0.0, kl = 0.0;
        for (int b = 0; b < B && st == KVATTN_OK; b++) {
            const int at = (int)(kv_rng_next(&rng) % (uint64_t)(p->n_tokens - T));
            const int32_t *w = p->tokens + at;
            if ((st = kvattn_session_rewind(ts, 0)) != KVATTN_OK) break;
            if ((st = kvattn_session_decode(ts, w, T, tl, 1)) != KVATTN_OK) break;
#pragma omp parallel for schedule(static)
            for (int t = 0; t < T; t++) kv_train_log_softmax(tp + (size_t)t * V, tl + (size_t)t * V, V);
            for (int t = 0; t < T; t++) targets[t] = w[t + 1];
            if ((st = kv_trainer_forward(tr, w, T, NULL)) != KVATTN_OK) break;
            double k = 0.0;
            loss += kv_trainer_backward(tr, targets, tp, p->ce_weight, 1.0f / B, &k) / B;
            kl += k / B;
        }
        if (st != KVATTN_OK) break;
        const double gnorm = kv_trainer_step(tr, &ap, step);
        if (step == first) res->first_loss = loss, res->first_kl = kl;
        res->last_loss = loss, res->last_kl = kl, res->steps_run++;
        res->tokens += (uint64_t)B * T;
        res->seconds = now_s() - t0;
        if (p->progress) {
            const kvattn_uptrain_progress pr = {step,
                                                ap.total_steps,
                                                loss,
                                                kl,
                                                kv_adamw_lr(&ap, step),
                                                gnorm,
                                                (double)res->tokens / res->seconds,
                                                res->seconds};
            p->progress(p->progress_ctx, &pr);
        }
        if (p->checkpoint_every > 0 && step % p->checkpoint_every == 0 && step < p->steps) {
            st = write_model(tr, student, p->out_path, p->out_type);
            if (st == KVATTN_OK) st = write_state(spath, tr, step, p->train_all, seed);
        }
    }
    res->last_step = step - 1;
    if (st == KVATTN_OK && res->steps_run > 0) { /* the end, or a stop: the student as it is now */
        st = write_model(tr, student, p->out_path, p->out_type);
        if (st == KVATTN_OK) st = write_state(spath, tr, step - 1, p->train_all, seed);
    }
    kv_trainer_free(tr);
    kvattn_session_free(ts);
    free(tl), free(tp), free(targets), free(spath);
    return st;
}
