/* kvattn_model_convert on the real models: every conversion that should keep
 * the model keeps it (same logits within f32 rounding), the approximate ones
 * stay close to their source, a converted model survives the GGUF round trip
 * with its design and provenance, and impossible targets are refused by name.
 *
 * Tolerance: logits are compared relative to the largest logit. An exact
 * conversion changes only the order and grouping of f32 sums (rotations of
 * the keys, a change of basis of the values, the softmax scale moved into
 * the queries); over stories260K's 5 layers that is a few ulps of the
 * activations, so 1e-4 of the largest logit is loose enough to be stable
 * and tight enough that any dropped component (≥1e-2 here) fails it. */
#define _POSIX_C_SOURCE 200809L
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { N_TOK = 40 };

/* A fixed text of in-vocabulary ids (calibration and evaluation differ). */
static void some_tokens(int32_t *ids, int n, int vocab, uint64_t seed) {
    test_rng r = {seed};
    for (int i = 0; i < n; i++) ids[i] = test_randint(&r, 3, vocab - 1);
}

/* Every position's logits of ids after BOS, [n+1][V] (malloc). */
static float *logits_of(const kvattn_model *m, const int32_t *ids, int n) {
    const int V = (int)kvattn_model_describe(m)->vocab_size;
    float *out = malloc(sizeof(float) * (size_t)(n + 1) * V);
    int32_t *seq = malloc(sizeof(int32_t) * (size_t)(n + 1));
    seq[0] = kvattn_tokenizer_bos(kvattn_model_tokenizer(m));
    memcpy(seq + 1, ids, sizeof(int32_t) * (size_t)n);
    kvattn_session *s;
    CHECK_OK(kvattn_session_create(m, n + 1, KVATTN_TYPE_F32, KVATTN_MLA_ABSORBED, &s));
    CHECK_OK(kvattn_session_decode(s, seq, n + 1, out, 1));
    kvattn_session_free(s);
    free(seq);
    return out;
}

/* max |a − b| / max |a| over the logits of the eval tokens. */
static double logit_gap(const kvattn_model *a, const kvattn_model *b, const int32_t *ids) {
    const size_t n = (size_t)(N_TOK + 1) * kvattn_model_describe(a)->vocab_size;
    float *la = logits_of(a, ids, N_TOK), *lb = logits_of(b, ids, N_TOK);
    const double gap = test_max_abs_diff(la, lb, n) / test_max_abs(la, n);
    free(la), free(lb);
    return gap;
}

/* Mean KL(a ‖ b) per position, nats. */
static double mean_kl(const kvattn_model *a, const kvattn_model *b, const int32_t *ids) {
    const int V = (int)kvattn_model_describe(a)->vocab_size;
    float *la = logits_of(a, ids, N_TOK), *lb = logits_of(b, ids, N_TOK);
    double kl = 0.0;
    for (int t = 0; t <= N_TOK; t++) {
        const float *x = la + (size_t)t * V, *y = lb + (size_t)t * V;
        double mx = x[0], my = y[0], zx = 0.0, zy = 0.0;
        for (int i = 1; i < V; i++) mx = fmax(mx, x[i]), my = fmax(my, y[i]);
        for (int i = 0; i < V; i++) zx += exp(x[i] - mx), zy += exp(y[i] - my);
        for (int i = 0; i < V; i++) {
            const double px = exp(x[i] - mx) / zx;
            kl += px * ((x[i] - mx - log(zx)) - (y[i] - my - log(zy)));
        }
    }
    free(la), free(lb);
    return kl / (N_TOK + 1);
}

static kvattn_model *convert(const kvattn_model *src, const char *design, kvattn_convert_method method, int norm,
                             const int32_t *calib, int n_calib) {
    kvattn_convert_params p = {.design = design,
                               .method = method,
                               .mla_kv_norm = norm,
                               .calib_tokens = calib,
                               .n_calib_tokens = n_calib,
                               .calib_ctx = 64,
                               .calib_source = "test tokens"};
    kvattn_model *m = NULL;
    CHECK_OK(kvattn_model_convert(src, &p, &m));
    return m;
}

static void expect_refused(const kvattn_model *src, const char *design, kvattn_convert_method method,
                           const int32_t *calib, int n_calib, kvattn_status want, const char *needle) {
    kvattn_convert_params p = {.design = design, .method = method, .calib_tokens = calib, .n_calib_tokens = n_calib};
    kvattn_model *m = (kvattn_model *)1;
    kvattn_status st = kvattn_model_convert(src, &p, &m);
    CHECK(st == want && m == NULL, "%s: status %s (want %s), %s", design ? design : "(null)", kvattn_status_name(st),
          kvattn_status_name(want), kvattn_last_error());
    CHECK(strstr(kvattn_last_error(), needle), "%s: error '%s' lacks '%s'", design ? design : "(null)",
          kvattn_last_error(), needle);
}

int main(void) {
    if (test_isa_skip("test_convert")) return 77;
    static const char *const needed[] = {"stories260K.bin", "tok512.bin", NULL};
    if (!test_models_found(test_models_dir(), needed)) return test_models_missing("test_convert", test_models_dir());
    kvattn_model *gqa = NULL;
    CHECK_OK(kvattn_model_load(test_model_path("stories260K.bin"), test_model_path("tok512.bin"), &gqa));
    if (!gqa) return test_finish("test_convert");
    const kvattn_model_desc *d = kvattn_model_describe(gqa);
    const int V = (int)d->vocab_size, K = d->attn.n_kv_heads, hd = d->attn.head_dim;
    CHECK(K == 4 && d->attn.n_heads == 8 && hd == 8, "stories260K's shape changed: %d KV heads", K);
    int32_t calib[600], ids[N_TOK];
    some_tokens(calib, 600, V, 1);
    some_tokens(ids, N_TOK, V, 2);

    /* Converting to the model's own design keeps it, by either method. */
    kvattn_model *same = convert(gqa, "gqa:4", KVATTN_CONVERT_AWARE, 0, calib, 600);
    if (same)
        CHECK(logit_gap(gqa, same, ids) < 1e-4, "gqa:4 aware on a GQA-4 model: gap %g", logit_gap(gqa, same, ids));
    kvattn_model_free(same);
    same = convert(gqa, "gqa:4", KVATTN_CONVERT_MEAN, 0, NULL, 0);
    if (same) CHECK(logit_gap(gqa, same, ids) < 1e-4, "gqa:4 mean: gap %g", logit_gap(gqa, same, ids));
    kvattn_model_free(same);

    /* Merging heads is not exact, but the aware method loses less than the mean. */
    kvattn_model *mean = convert(gqa, "mqa", KVATTN_CONVERT_MEAN, 0, NULL, 0);
    kvattn_model *aware = convert(gqa, "mqa", KVATTN_CONVERT_AWARE, 0, calib, 600);
    if (mean && aware) {
        const double kl_mean = mean_kl(gqa, mean, ids), kl_aware = mean_kl(gqa, aware, ids);
        CHECK(kl_mean > 1e-3 && kl_aware < kl_mean, "mqa: KL mean-pooled %g, aware %g", kl_mean, kl_aware);
        CHECK(kvattn_model_describe(aware)->attn.n_kv_heads == 1, "mqa has %d KV heads",
              kvattn_model_describe(aware)->attn.n_kv_heads);
        CHECK(strstr(kvattn_model_provenance(aware), "mqa from gqa") &&
                  strstr(kvattn_model_provenance(aware), "by aware") &&
                  strstr(kvattn_model_provenance(aware), "600 tokens of test tokens"),
              "provenance '%s'", kvattn_model_provenance(aware));
        CHECK(!strcmp(kvattn_model_provenance(gqa), ""), "a loaded llama2.c model has provenance '%s'",
              kvattn_model_provenance(gqa));
    }

    /* From an MQA model, MLA with every direction kept is exact without the
     * latent's norm: RoRoPE over one KV head is the identity and the latent
     * holds all of the values. With the norm kept it is a fit, close. */
    if (aware) {
        char full[32];
        snprintf(full, sizeof full, "mla:%d+%d", 2 * hd - hd, hd);
        kvattn_model *mla = convert(aware, full, KVATTN_CONVERT_AWARE, 0, calib, 600);
        if (mla) {
            const double gap = logit_gap(aware, mla, ids);
            CHECK(gap < 1e-4, "%s of an MQA model, latent not normed: gap %g", full, gap);
            CHECK(kvattn_model_describe(mla)->attn.kind == KVATTN_ATTN_MLA &&
                      kvattn_model_describe(mla)->attn.kv_norm_off == 1,
                  "not an MLA model without the latent norm");
            /* the GGUF round trip keeps the design, the flag, the provenance and the logits */
            char path[64];
            snprintf(path, sizeof path, "/tmp/kvattn_convert_%d.gguf", (int)getpid());
            CHECK_OK(kvattn_model_save_gguf(mla, path, KVATTN_TYPE_F32));
            kvattn_model *back = NULL;
            CHECK_OK(kvattn_model_load(path, NULL, &back));
            if (back) {
                CHECK(logit_gap(mla, back, ids) == 0.0, "GGUF round trip changed the logits: %g",
                      logit_gap(mla, back, ids));
                CHECK(kvattn_model_describe(back)->attn.kv_norm_off == 1, "kvattn.mla.kv_norm lost");
                CHECK(!strcmp(kvattn_model_provenance(back), kvattn_model_provenance(mla)), "provenance '%s' vs '%s'",
                      kvattn_model_provenance(back), kvattn_model_provenance(mla));
                CHECK(!strcmp(kvattn_model_describe(back)->arch, "deepseek2"), "arch %s",
                      kvattn_model_describe(back)->arch);
            }
            kvattn_model_free(back);
            /* the no-norm flag with another type (a uint8 of the same size) is refused by name */
            FILE *f = fopen(path, "r+b");
            static char buf[1 << 16];
            const size_t got = f ? fread(buf, 1, sizeof buf, f) : 0;
            const char *key = "kvattn.mla.kv_norm";
            char *at = NULL;
            for (size_t i = 0; i + strlen(key) + 4 < got && !at; i++)
                if (!memcmp(buf + i, key, strlen(key))) at = buf + i + strlen(key);
            CHECK(at && at[0] == 7, "kvattn.mla.kv_norm not found as a bool in the first %zu bytes", got);
            if (f && at) {
                fseek(f, (long)(at - buf), SEEK_SET);
                fputc(0, f); /* GGUF_TYPE_UINT8 */
            }
            if (f) fclose(f);
            back = NULL;
            const kvattn_status st = kvattn_model_load(path, NULL, &back);
            CHECK(st == KVATTN_ERR_FORMAT && strstr(kvattn_last_error(), "'kvattn.mla.kv_norm' is not a bool"),
                  "a uint8 kvattn.mla.kv_norm: %s, %s", kvattn_status_name(st), kvattn_last_error());
            kvattn_model_free(back);
            unlink(path);
        }
        kvattn_model *normed = convert(aware, full, KVATTN_CONVERT_AWARE, 1, calib, 600);
        if (normed) {
            const double kl = mean_kl(aware, normed, ids);
            CHECK(kl < 0.05, "%s with the latent normed: KL %g", full, kl);
            CHECK(kvattn_model_describe(normed)->attn.kv_norm_off == 0, "the norm-keeping file says no norm");
        }
        kvattn_model_free(normed);
        kvattn_model_free(mla);
    }

    /* MLA from GQA-4 at the full cache keeps most, a smaller rank less. */
    kvattn_model *big = convert(gqa, "mla:56+8", KVATTN_CONVERT_AWARE, 0, calib, 600);
    kvattn_model *small = convert(gqa, "mla:8+8", KVATTN_CONVERT_AWARE, 0, calib, 600);
    if (big && small) {
        const double kb = mean_kl(gqa, big, ids), ks = mean_kl(gqa, small, ids);
        CHECK(kb < ks, "mla:56+8 KL %g is not below mla:8+8's %g", kb, ks);
    }
    /* FreqFold: d_R = 4 folds the source's 4 rope pairs into 2 */
    kvattn_model *folded = convert(gqa, "mla:16+4", KVATTN_CONVERT_AWARE, 0, calib, 600);
    if (folded && small) {
        const kvattn_layer_config *fa = &kvattn_model_describe(folded)->attn;
        CHECK(fa->qk_rope_head_dim == 4 && fa->kv_lora_rank == 16, "mla:16+4 became %d+%d", fa->kv_lora_rank,
              fa->qk_rope_head_dim);
        const double kf = mean_kl(gqa, folded, ids);
        CHECK(kf > 0 && kf < 10, "mla:16+4 KL %g", kf);
    }
    kvattn_model_free(folded);
    /* d_R above the source's: two components of each source pair under RoPE */
    kvattn_model *spread = convert(gqa, "mla:8+16", KVATTN_CONVERT_AWARE, 0, calib, 600);
    if (spread) {
        const double ks = mean_kl(gqa, spread, ids);
        CHECK(kvattn_model_describe(spread)->attn.qk_rope_head_dim == 16 && ks > 0 && ks < 10, "mla:8+16: KL %g", ks);
    }
    kvattn_model_free(spread);
    kvattn_model_free(small);
    kvattn_model_free(big);

    /* Impossible targets, named. */
    expect_refused(gqa, "gqa:3", KVATTN_CONVERT_MEAN, NULL, 0, KVATTN_ERR_CONFIG, "do not divide");
    expect_refused(gqa, "gqa:8", KVATTN_CONVERT_MEAN, NULL, 0, KVATTN_ERR_CONFIG, "only merges heads");
    expect_refused(gqa, "gqa:0", KVATTN_CONVERT_MEAN, NULL, 0, KVATTN_ERR_CONFIG, "at least one KV head");
    expect_refused(gqa, "gqa:2x", KVATTN_CONVERT_MEAN, NULL, 0, KVATTN_ERR_CONFIG, "unknown target design");
    expect_refused(gqa, "mla:8+7", KVATTN_CONVERT_AWARE, calib, 600, KVATTN_ERR_CONFIG, "d_R even");
    expect_refused(gqa, "mla:8+6", KVATTN_CONVERT_AWARE, calib, 600, KVATTN_ERR_CONFIG, "rotary dims per head, 8");
    expect_refused(gqa, "mla:8+12", KVATTN_CONVERT_AWARE, calib, 600, KVATTN_ERR_CONFIG, "FreqFold");
    expect_refused(gqa, "mla:8+40", KVATTN_CONVERT_AWARE, calib, 600, KVATTN_ERR_CONFIG, "multiple of it up to 32");
    expect_refused(gqa, "mla:57+8", KVATTN_CONVERT_AWARE, calib, 600, KVATTN_ERR_CONFIG, "d_c must be in [1, 56]");
    expect_refused(gqa, "mqa", KVATTN_CONVERT_AWARE, NULL, 0, KVATTN_ERR_INVALID_ARG, "needs calibration text");
    expect_refused(gqa, NULL, KVATTN_CONVERT_AWARE, calib, 600, KVATTN_ERR_INVALID_ARG, "no target design");
    int32_t bad[2] = {5, 1 << 30};
    expect_refused(gqa, "mqa", KVATTN_CONVERT_AWARE, bad, 2, KVATTN_ERR_INVALID_ARG, "outside the vocabulary");
    if (aware) { /* an MLA source cannot be converted again */
        kvattn_model *mla = convert(aware, "mla:8+8", KVATTN_CONVERT_AWARE, 0, calib, 600);
        if (mla) expect_refused(mla, "mqa", KVATTN_CONVERT_MEAN, NULL, 0, KVATTN_ERR_UNSUPPORTED, "already MLA");
        kvattn_model_free(mla);
    }
    kvattn_model_free(aware);
    kvattn_model_free(mean);
    kvattn_model_free(gqa);
    return test_finish("test_convert");
}
