/* kvattn uptrain — a converted model distilled from its original
 * (kvattn_uptrain), on a text file or on text the original samples itself. */
#define _POSIX_C_SOURCE 200809L
#include "calib.h"
#include "cli_util.h"
#include "commands.h"
#include "model_cli.h"
#include "options.h"

#include "kvattn.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t stop_asked;
static volatile int stop_flag;

static void on_interrupt(int sig) {
    (void)sig;
    stop_asked = 1, stop_flag = 1;
    signal(SIGINT, SIG_DFL); /* a second Ctrl-C ends at once; the last checkpoint stays whole */
}

static int progress_line_open;

static void show_progress(void *ctx, const kvattn_uptrain_progress *p) {
    (void)ctx;
    if (!cli_stderr_is_tty()) return;
    progress_line_open = p->step != p->steps;
    const double left = p->step > 0 ? p->seconds / p->step * (p->steps - p->step) : 0.0;
    fprintf(stderr, "\rstep %d/%d  loss %.4f  KL %.4f  lr %.2e  |g| %.3f  %.0f tok/s  %dm%02ds left   ", p->step,
            p->steps, p->loss, p->kl, p->lr, p->grad_norm, p->tokens_per_s, (int)left / 60, (int)left % 60);
    if (p->step == p->steps) fputc('\n', stderr);
}

static const char *const trained[] = {"attn", "all", NULL};

int cmd_uptrain(int argc, char **argv) {
    const char *student_path = NULL, *teacher_path = NULL, *tok = NULL, *data = NULL, *out = NULL, *save_text = NULL;
    int64_t self_generate = 0, steps = -1, batch = 4, seq = 256, warmup = -1, seed = 1234, threads = 0,
            checkpoint_every = 0;
    double lr = 1e-3, min_lr = -1, weight_decay = 0.0, clip = 1.0, ce_weight = 0.0, temperature = 1.0, minutes = 0.0;
    int train = 0, resume = 0, json = 0;
    kvattn_type type = KVATTN_TYPE_F32;
    const cli_option opts[] = {
        CLI_OPT_STRING("-m, --model", &student_path, "CONVERTED.gguf", "the student: a converted llama-family model"),
        CLI_OPT_STRING("--teacher", &teacher_path, "ORIGINAL", "the model it was converted from (any kvattn reads)"),
        CLI_OPT_STRING("-z", &tok, "TOKENIZER", "llama2.c tokenizer.bin, for a llama2.c teacher"),
        CLI_OPT_STRING("--data", &data, "TEXT", "training text (a file)"),
        CLI_OPT_COUNT("--self-generate", &self_generate, 1, 1 << 26, "N",
                      "or N tokens of training text the teacher samples itself (held-out text stays out)"),
        CLI_OPT_NUMBER("--temperature", &temperature, 0.05, 10.0, "T",
                       "with --self-generate: the teacher's sampling temperature (default 1)"),
        CLI_OPT_STRING("--save-text", &save_text, "FILE", "with --self-generate: the sampled text, for --data later"),
        CLI_OPT_COUNT("--steps", &steps, 1, 1 << 24, "S", "optimizer steps (default 200; with --minutes, a cap)"),
        CLI_OPT_NUMBER("--minutes", &minutes, 0.01, 1e6, "M",
                       "train for at most M minutes, the schedule fitted to the steps they hold (not with --resume)"),
        CLI_OPT_NUMBER("--lr", &lr, 1e-9, 1.0, "LR", "peak learning rate (default 1e-3)"),
        CLI_OPT_NUMBER("--min-lr", &min_lr, 0.0, 1.0, "LR", "the cosine schedule's end (default lr / 10)"),
        CLI_OPT_INT("--warmup", &warmup, 0, 1 << 24, "N", "linear warm-up steps (default: a twentieth of the steps)"),
        CLI_OPT_COUNT("--batch", &batch, 1, 1 << 16, "B", "windows a step, gradients accumulated (default 4)"),
        CLI_OPT_COUNT("--seq", &seq, 2, 1 << 16, "T", "tokens a window (default 256)"),
        CLI_OPT_CHOICE("--train", &train, trained, "WHAT", "attn (default: the attention projections) or all"),
        CLI_OPT_NUMBER("--ce-weight", &ce_weight, 0.0, 1.0, "W",
                       "weight of cross-entropy on the text, beside the KL to the teacher (default 0)"),
        CLI_OPT_NUMBER("--weight-decay", &weight_decay, 0.0, 10.0, "WD", "AdamW's decay of matrices (default 0)"),
        CLI_OPT_NUMBER("--clip", &clip, 0.0, 1e9, "C", "gradient norm clipped to C (default 1; 0: off)"),
        CLI_OPT_INT("-s, --seed", &seed, 0, INT64_MAX, "S",
                    "seed of the windows and self-generated text (default 1234)"),
        CLI_OPT_COUNT("--checkpoint-every", &checkpoint_every, 1, 1 << 24, "K",
                      "write OUT.gguf and OUT.gguf.state every K steps (default: at the end only)"),
        CLI_OPT_FLAG("--resume", &resume, "go on from OUT.gguf and OUT.gguf.state (same options)"),
        CLI_OPT_TYPE("--type", &type, 1, "TYPE", "2-D weights of OUT.gguf as f32 (default), f16, bf16 or q8_0"),
        CLI_OPT_STRING("-o", &out, "OUT.gguf", "the uptrained model"),
        CLI_OPT_COUNT("-t, --threads", &threads, 1, 1 << 16, "N", "threads (default: all cores)"),
        CLI_OPT_FLAG("--json", &json, "one JSON object on stdout"),
    };
    const cli_command cmd = {
        "uptrain", "-m CONVERTED.gguf --teacher ORIGINAL (--data TEXT | --self-generate N) -o OUT.gguf [options]",
        "Wins back what a conversion cost: the student learns the teacher's next-token\n"
        "distributions (KL, optionally mixed with cross-entropy on the text) with AdamW, in f32.\n"
        "Ctrl-C stops after the current step and writes OUT.gguf; a second Ctrl-C ends at once,\n"
        "leaving the last checkpoint whole.",
        opts, (int)(sizeof opts / sizeof opts[0])};
    const int rc = cli_parse(&cmd, argc, argv);
    if (rc != CLI_PARSED) return rc == CLI_HELP ? 0 : 2;
    if (!student_path || !teacher_path || !out || (!data == !self_generate)) {
        fprintf(stderr, "kvattn uptrain: -m, --teacher, -o and one of --data or --self-generate are required\n");
        return 2;
    }
    if (save_text && data) {
        fprintf(stderr, "kvattn uptrain: --save-text %s goes with --self-generate, not --data\n", save_text);
        return 2;
    }
    if (minutes > 0 && resume) {
        fprintf(stderr,
                "kvattn uptrain: --minutes does not go with --resume (the schedule was fitted to the first run)\n");
        return 2;
    }
    if (steps < 0) steps = minutes > 0 ? 1 << 24 : 200;
    if (threads) kvattn_set_threads((int)threads);
    model_opts mo;
    model_opts_defaults(&mo);
    mo.model = teacher_path, mo.tokenizer = tok;
    kvattn_model *teacher = model_load(&mo, "uptrain", 1), *student = NULL;
    if (!teacher) return 1;
    mo.model = resume ? out : student_path, mo.tokenizer = NULL;
    student = model_load(&mo, "uptrain", 0);
    if (!student) {
        kvattn_model_free(teacher);
        return 1;
    }
    int32_t *ids = NULL;
    int n_ids = 0;
    char source[160] = "";
    const calib_opts co = {data, self_generate, seq, seed, save_text, 64, temperature};
    int status = calib_tokens(teacher, &co, &ids, &n_ids, source, sizeof source, "uptrain");
    kvattn_uptrain_params p = {.tokens = ids,
                               .n_tokens = n_ids,
                               .steps = (int)steps,
                               .batch = (int)batch,
                               .seq = (int)seq,
                               .lr = (float)lr,
                               .min_lr = (float)(min_lr >= 0 ? min_lr : lr / 10),
                               .weight_decay = (float)weight_decay,
                               .clip = (float)clip,
                               .ce_weight = (float)ce_weight,
                               .warmup = (int)warmup,
                               .train_all = train == 1,
                               .seed = (uint64_t)seed,
                               .time_budget_s = 60.0 * minutes,
                               .out_path = out,
                               .out_type = type,
                               .checkpoint_every = (int)checkpoint_every,
                               .resume = resume,
                               .progress = show_progress,
                               .stop = &stop_flag};
    kvattn_uptrain_result r;
    if (!status) {
        signal(SIGINT, on_interrupt);
        if (kvattn_uptrain(student, teacher, &p, &r) != KVATTN_OK)
            status = fprintf(stderr, "kvattn uptrain: %s\n", kvattn_last_error()) > 0;
        signal(SIGINT, SIG_DFL);
        if (progress_line_open) fputc('\n', stderr); /* a budget or a stop ended it before the last step */
    }
    if (!status) {
        /* forward + backward ≈ 6 × parameters × tokens (the usual count; attention-only training skips
         * most weight gradients, so it does less) against the FMA peak measured now */
        kvattn_machine_limits lim = {0};
        kvattn_measure_machine(&lim);
        const double params = (double)kvattn_model_params(kvattn_model_describe(student));
        const double tps = r.seconds > 0 ? r.tokens / r.seconds : 0.0;
        const double frac = lim.fma_gflops > 0 ? 6.0 * params * tps / (lim.fma_gflops * 1e9) : 0.0;
        if (json) {
            printf("{\"steps\": [%d, %d], \"steps_run\": %d, \"stopped\": %s, \"tokens\": %llu, \"seconds\": %.3f, "
                   "\"tokens_per_s\": %.1f, \"budget_s\": %.1f, \"params\": %.0f, \"fma_fraction\": %.4f, "
                   "\"fma_gflops\": %.1f, "
                   "\"loss\": [%.6f, %.6f], "
                   "\"kl\": [%.6f, %.6f], \"train\": \"%s\", \"data\": ",
                   r.first_step, r.last_step, r.steps_run, stop_asked ? "true" : "false", (unsigned long long)r.tokens,
                   r.seconds, tps, 60.0 * minutes, params, frac, lim.fma_gflops, r.first_loss, r.last_loss, r.first_kl,
                   r.last_kl, trained[train]);
            cli_json_string(stdout, source, strlen(source));
            printf(", \"output\": ");
            cli_json_string(stdout, out, strlen(out));
            printf("}\n");
        } else {
            printf("steps %d-%d%s: loss %.4f -> %.4f, KL %.4f -> %.4f; %llu tokens in %.1f s (%.0f tok/s, %.1f%% of "
                   "the FMA peak at 6 flops a parameter a token); wrote %s\n  data: %s\n",
                   r.first_step, r.last_step, stop_asked ? " (stopped)" : "", r.first_loss, r.last_loss, r.first_kl,
                   r.last_kl, (unsigned long long)r.tokens, r.seconds, tps, 100 * frac, out, source);
        }
    }
    free(ids);
    kvattn_model_free(student);
    kvattn_model_free(teacher);
    return status;
}
