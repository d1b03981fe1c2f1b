/* Real models: llama2.c's golden output on stories260K, the GGUF copy giving
 * the same tokens, tokenizers (round trips, byte fallback, leading-space
 * rules, SentencePiece vs GGUF vocabularies agreeing, byte-level BPE), and
 * the KV-cached forward pass against a batched one.
 * Models come from $KVATTN_MODELS (default ../shared/models beside the
 * repository); missing models fail the test rather than skip it. */
#define _POSIX_C_SOURCE 200809L
#include "test_util.h"

#include "model/tokenizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* llama2.c's test_all.py expected_stdout for stories260K, -t 0.0 -n 200. */
static const char GOLDEN[] =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a "
    "big, red ball. She wanted to play with it, but it was too high.\nLily's mom said, \"Lily, let's go to the park.\" "
    "Lily was sad and didn't know what to do. She said, \"I want to play with your ball, but I can't find it.\"\nLily "
    "was sad and didn't know what to do. She said, \"I'm sorry, Lily. I didn't know what to do.\"\nLily didn't want to "
    "help her mom, so she";

/* Greedy generation as llama2.c runs it: from BOS, `steps` positions. */
static int generate(const kvattn_model *m, int steps, kvattn_type kv, int32_t *out, char *text, size_t text_cap) {
    const kvattn_tokenizer *tok = kvattn_model_tokenizer(m);
    int V = (int)kvattn_model_describe(m)->vocab_size, n = 0;
    size_t tl = 0;
    float *logits = malloc(sizeof(float) * V);
    kvattn_session *s;
    if (kvattn_session_create(m, steps, kv, KVATTN_MLA_ABSORBED, &s) != KVATTN_OK) return -1;
    int32_t token = kvattn_tokenizer_bos(tok);
    kvattn_sampler_params sp = {.temperature = 0.0f, .top_p = 1.0f, .seed = 1};
    kvattn_sampler sampler;
    kvattn_sampler_init(&sampler, &sp);
    for (int pos = 0; pos < steps; pos++) {
        if (kvattn_session_decode(s, &token, 1, logits, 0) != KVATTN_OK) break;
        int next = kvattn_sample(&sampler, logits, V);
        if (next == 1) break; /* llama2.c stops at BOS */
        int b = kvattn_token_to_bytes(tok, token, next, text + tl, (int)(text_cap - tl - 1));
        tl += (size_t)(b > 0 ? b : 0);
        out[n++] = next;
        token = next;
    }
    text[tl] = '\0';
    kvattn_sampler_free(&sampler);
    kvattn_session_free(s);
    free(logits);
    return n;
}

static void test_golden_generation(void) {
    kvattn_model *bin = NULL, *gguf = NULL;
    CHECK_OK(kvattn_model_load(test_model_path("stories260K.bin"), test_model_path("tok512.bin"), &bin));
    CHECK_OK(kvattn_model_load(test_model_path("stories260K.gguf"), NULL, &gguf));
    if (!bin || !gguf) {
        CHECK(0, "models not found under %s (set KVATTN_MODELS)", test_models_dir());
        kvattn_model_free(bin);
        kvattn_model_free(gguf);
        return;
    }
    CHECK(!strcmp(kvattn_model_format(bin), "llama2.c") && !strcmp(kvattn_model_format(gguf), "gguf"), "formats");
    kvattn_type types[] = {KVATTN_TYPE_F32, KVATTN_TYPE_F16};
    for (int ti = 0; ti < 2; ti++) {
        int32_t a[256], b[256];
        char ta[8192], tb[8192];
        int na = generate(bin, 200, types[ti], a, ta, sizeof ta), nb = generate(gguf, 200, types[ti], b, tb, sizeof tb);
        CHECK(na == 200 && !strcmp(ta, GOLDEN), "llama2.c golden output (%s cache): got %d tokens:\n%s",
              kvattn_type_name(types[ti]), na, ta);
        CHECK(nb == na && !memcmp(a, b, sizeof(int32_t) * (size_t)na), "GGUF tokens equal the .bin's (%s cache)",
              kvattn_type_name(types[ti]));
    }
    /* Shapes as the README of the models states them. */
    const kvattn_model_desc *d = kvattn_model_describe(bin);
    CHECK(d->attn.d_model == 64 && d->n_layers == 5 && d->attn.n_heads == 8 && d->attn.n_kv_heads == 4 &&
              d->ffn_dim == 172 && d->vocab_size == 512 && d->context_length == 512,
          "stories260K.bin shapes");
    CHECK(kvattn_kv_bytes_per_token(&d->attn, d->n_layers, KVATTN_TYPE_F32) == 5 * 2 * 32 * 4, "KV bytes/token");
    CHECK(kvattn_model_describe(gguf)->context_length == 2048, "GGUF context_length");
    kvattn_model_free(bin);
    kvattn_model_free(gguf);
}

/* Prefill of many tokens at once == the same tokens one by one (every logit). */
static void test_batched_vs_decode(void) {
    kvattn_model *m = NULL;
    CHECK_OK(kvattn_model_load(test_model_path("stories260K.gguf"), NULL, &m));
    if (!m) return;
    const int V = 512, T = 70; /* more than one 32-token chunk and one 64-token tile */
    int32_t ids[70];
    for (int i = 0; i < T; i++) ids[i] = (int32_t)((i * 37 + 11) % V);
    float *a = malloc(sizeof(float) * T * V), *b = malloc(sizeof(float) * T * V);
    kvattn_session *s1, *s2;
    CHECK_OK(kvattn_session_create(m, T, KVATTN_TYPE_F32, KVATTN_MLA_ABSORBED, &s1));
    CHECK_OK(kvattn_session_create(m, T, KVATTN_TYPE_F32, KVATTN_MLA_ABSORBED, &s2));
    CHECK_OK(kvattn_session_decode(s1, ids, T, a, 1));
    for (int i = 0; i < T; i++) CHECK_OK(kvattn_session_decode(s2, &ids[i], 1, b + (size_t)i * V, 0));
    double e = test_max_abs_diff(a, b, (size_t)T * V) / test_max_abs(b, (size_t)T * V);
    CHECK(e <= 1e-5, "batched vs token-by-token logits: rel err %.3g", e);
    CHECK(kvattn_session_decode(s1, ids, 1, a, 0) == KVATTN_ERR_CACHE_FULL, "decode past the context");
    CHECK(strstr(kvattn_last_error(), "context") != NULL, "message: %s", kvattn_last_error());
    int32_t bad = V;
    CHECK_OK(kvattn_session_rewind(s1, 10));
    CHECK(kvattn_session_decode(s1, &bad, 1, a, 0) == KVATTN_ERR_INVALID_ARG, "token id out of range");
    CHECK(kvattn_session_pos(s1) == 10, "a refused decode leaves the position");
    kvattn_session_free(s1);
    kvattn_session_free(s2);
    free(a), free(b);
    kvattn_model_free(m);
}

static void round_trip(const kvattn_tokenizer *t, const char *text, const char *what) {
    int32_t ids[512];
    int n = 0;
    CHECK_OK(kvattn_tokenize(t, text, 1, ids, 512, &n));
    char out[2048];
    int o = 0;
    for (int i = kvattn_tokenizer_bos(t) >= 0 ? 1 : 0; i < n; i++) {
        int b = kvattn_token_to_bytes(t, i ? ids[i - 1] : -1, ids[i], out + o, (int)sizeof out - o - 1);
        CHECK(b >= 0, "%s: token %d decodes", what, ids[i]);
        o += b > 0 ? b : 0;
    }
    out[o] = '\0';
    CHECK(!strcmp(out, text), "%s round trip: '%s' came back as '%s'", what, text, out);
}

static const char *const SAMPLES[] = {"Once upon a time",
                                      "Lily and Tom went to the park.",
                                      "hello",
                                      "  two leading spaces",
                                      "tabs\tand\nnew lines\n",
                                      "caf\xc3\xa9 na\xc3\xafve",
                                      "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
                                      "emoji \xf0\x9f\x98\x80!",
                                      "a",
                                      "123 + 456 = 579"};

static void test_spm_tokenizers(void) {
    kvattn_tokenizer *tb = NULL;
    kvattn_model *m = NULL;
    CHECK_OK(kvattn_tokenizer_load_llama2c(test_model_path("tok512.bin"), 512, &tb));
    CHECK_OK(kvattn_model_load(test_model_path("stories260K.gguf"), NULL, &m));
    if (!tb || !m) {
        kvattn_tokenizer_free(tb);
        kvattn_model_free(m);
        return;
    }
    const kvattn_tokenizer *tg = kvattn_model_tokenizer(m);
    for (size_t i = 0; i < sizeof SAMPLES / sizeof SAMPLES[0]; i++) {
        round_trip(tb, SAMPLES[i], "tok512.bin");
        round_trip(tg, SAMPLES[i], "GGUF llama vocabulary");
        /* The two spellings of one vocabulary (" " vs "▁") give the same ids. */
        int32_t a[512], b[512];
        int na = 0, nb = 0;
        CHECK_OK(kvattn_tokenize(tb, SAMPLES[i], 1, a, 512, &na));
        CHECK_OK(kvattn_tokenize(tg, SAMPLES[i], 1, b, 512, &nb));
        CHECK(na == nb && !memcmp(a, b, sizeof(int32_t) * (size_t)na), "'%s': tok512.bin and GGUF ids differ",
              SAMPLES[i]);
    }
    /* Known encodings: BOS, the dummy-prefix space merged into the word, byte fallback. */
    int32_t ids[64];
    int n = 0;
    CHECK_OK(kvattn_tokenize(tb, "Once", 1, ids, 64, &n));
    CHECK(n == 2 && ids[0] == 1, "'Once' → BOS + 1 token, got %d", n);
    char piece[32];
    int len = kvattn_token_to_bytes(tb, 1, ids[1], piece, sizeof piece);
    CHECK(len == 4 && !memcmp(piece, "Once", 4), "after BOS the leading space is dropped");
    len = kvattn_token_to_bytes(tb, 100, ids[1], piece, sizeof piece);
    CHECK(len == 5 && !memcmp(piece, " Once", 5), "elsewhere the space stays");
    CHECK_OK(kvattn_tokenize(tb, "\xe6\x97\xa5", 0, ids, 64, &n)); /* 日: not a piece of tok512 → its 3 bytes */
    CHECK(n == 4 && ids[0] == 410 && ids[1] == 3 + 0xe6 && ids[2] == 3 + 0x97 && ids[3] == 3 + 0xa5,
          "byte fallback of 日: %d ids", n);
    CHECK_OK(kvattn_tokenize(tb, "", 1, ids, 64, &n));
    CHECK(n == 1 && ids[0] == 1, "empty text: BOS only");
    CHECK(kvattn_tokenize(tb, "Once upon a time", 1, ids, 2, &n) == KVATTN_ERR_INVALID_ARG, "too small an output");
    CHECK(kvattn_token_to_bytes(tb, -1, 512, piece, sizeof piece) == -1, "id out of range");
    CHECK(kvattn_token_to_bytes(tb, -1, 1, piece, sizeof piece) == 0, "BOS decodes to nothing");
    kvattn_tokenizer_free(tb);
    kvattn_model_free(m);
}

/* A tiny random llama with a given vocabulary, written as GGUF by the public
 * writer: as it should be, or with one fault a hostile file might carry. */
typedef struct {
    const char *const *pieces;
    const int *lens;
    const int32_t *types;
    int n;
    const char *const *merges;
    const int *merge_lens;
    int n_merges;
} tiny_vocab;

typedef enum {
    TINY_OK,
    TINY_LLAMA_MERGES_F32, /* a "llama" vocabulary whose merges are numbers (read as string lengths, it crashed) */
    TINY_BOS_OUT_OF_RANGE,
    TINY_DUPLICATE_KEY,
    TINY_DUPLICATE_TENSOR,
    TINY_ALIGNMENT_1, /* general.alignment = 1 over data the writer aligned to 32 (pad: a key's length) */
} tiny_fault;

#define CHATML                                                                                                         \
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"             \
    "{% endfor %}<|im_start|>assistant\n"

static kvattn_status write_tiny_gguf(const char *path, const tiny_vocab *v, tiny_fault fault, int pad) {
    kvattn_gguf_writer *w;
    kvattn_status st = kvattn_gguf_writer_create(&w);
    if (st != KVATTN_OK) return st;
    const int D = 32, F = 64, V = v->n; /* q8_0 rows: whole blocks of 32 */
    kvattn_gguf_set_str(w, "general.architecture", "llama");
    if (fault == TINY_ALIGNMENT_1) {
        char padding[8] = "xxxxxxx";
        padding[pad] = '\0';
        kvattn_gguf_set_u32(w, "general.alignment", 1);
        kvattn_gguf_set_str(w, "test.padding", padding);
    }
    kvattn_gguf_set_u32(w, "llama.embedding_length", D);
    kvattn_gguf_set_u32(w, "llama.block_count", 1);
    kvattn_gguf_set_u32(w, "llama.feed_forward_length", F);
    kvattn_gguf_set_u32(w, "llama.attention.head_count", 2);
    kvattn_gguf_set_u32(w, "llama.attention.head_count_kv", 1);
    kvattn_gguf_set_u32(w, "llama.context_length", 64);
    if (fault == TINY_DUPLICATE_KEY) kvattn_gguf_set_u32(w, "llama.context_length", 128);
    kvattn_gguf_set_str(w, "tokenizer.ggml.model", fault == TINY_LLAMA_MERGES_F32 ? "llama" : "gpt2");
    kvattn_gguf_set_str(w, "tokenizer.ggml.pre", "gpt-2");
    kvattn_gguf_set_str_array(w, "tokenizer.ggml.tokens", v->pieces, v->lens, v->n);
    kvattn_gguf_set_i32_array(w, "tokenizer.ggml.token_type", v->types, v->n);
    if (fault == TINY_LLAMA_MERGES_F32) {
        const float numbers[4] = {1e9f, 3.0f, -1.0f, 7e30f};
        kvattn_gguf_set_f32_array(w, "tokenizer.ggml.merges", numbers, 4);
    } else {
        kvattn_gguf_set_str_array(w, "tokenizer.ggml.merges", v->merges, v->merge_lens, v->n_merges);
    }
    kvattn_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)(v->n - 1));
    if (fault == TINY_BOS_OUT_OF_RANGE) kvattn_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 100000);
    kvattn_gguf_set_str(w, "tokenizer.chat_template", CHATML);
    float *data = malloc(sizeof(float) * (size_t)V * D * 4);
    test_rng r = {3};
    test_fill(&r, data, (size_t)V * D * 4, 0.2f);
    struct {
        const char *name;
        int64_t ne0, ne1;
    } tensors[] = {
        {"token_embd.weight", D, V},        {"output_norm.weight", D, 1},    {"blk.0.attn_norm.weight", D, 1},
        {"blk.0.attn_q.weight", D, D},      {"blk.0.attn_k.weight", D, 16},  {"blk.0.attn_v.weight", D, 16},
        {"blk.0.attn_output.weight", D, D}, {"blk.0.ffn_norm.weight", D, 1}, {"blk.0.ffn_gate.weight", D, F},
        {"blk.0.ffn_up.weight", D, F},      {"blk.0.ffn_down.weight", F, D}};
    const size_t n_tensors = sizeof tensors / sizeof tensors[0];
    for (size_t i = 0; st == KVATTN_OK && i < n_tensors + (fault == TINY_DUPLICATE_TENSOR); i++) {
        const size_t k = i < n_tensors ? i : 3; /* the duplicate: attn_q again */
        int64_t ne[2] = {tensors[k].ne0, tensors[k].ne1};
        /* f32 throughout for the alignment case: 4-byte elements show a misplaced data section */
        const kvattn_type t = ne[1] > 1 && fault != TINY_ALIGNMENT_1 ? KVATTN_TYPE_Q8_0 : KVATTN_TYPE_F32;
        st = kvattn_gguf_add_tensor(w, tensors[k].name, t, ne, ne[1] > 1 ? 2 : 1, data);
    }
    if (st == KVATTN_OK) st = kvattn_gguf_write_file(w, path);
    kvattn_gguf_writer_free(w);
    free(data);
    return st;
}

/* Each fault is refused with a message naming the file and what is wrong;
 * nothing crashes, and (under the sanitizers) nothing reads out of place. */
static void test_malformed_tiny_ggufs(const tiny_vocab *v) {
    char path[128];
    snprintf(path, sizeof path, "/tmp/kvattn_bad_%d.gguf", (int)getpid());
    struct {
        tiny_fault fault;
        const char *says;
    } cases[] = {
        {TINY_LLAMA_MERGES_F32, "tokenizer.ggml.merges is not an array of strings"},
        {TINY_BOS_OUT_OF_RANGE, "'tokenizer.ggml.bos_token_id' = 100000 is outside"},
        {TINY_DUPLICATE_KEY, "metadata key 'llama.context_length' appears more than once"},
        {TINY_DUPLICATE_TENSOR, "tensor 'blk.0.attn_q.weight' appears more than once"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_OK(write_tiny_gguf(path, v, cases[i].fault, 0));
        kvattn_model *m = NULL;
        kvattn_status st = kvattn_model_load(path, NULL, &m);
        CHECK(st != KVATTN_OK && strstr(kvattn_last_error(), cases[i].says) && strstr(kvattn_last_error(), path),
              "fault %d: %s (want '%s')", (int)cases[i].fault, st ? kvattn_last_error() : "loaded", cases[i].says);
        kvattn_model_free(m);
    }
    /* general.alignment = 1: the data section starts right after the header, so f32 tensors land on
     * whatever offset the header ends at; three of four paddings put them off a multiple of 4. */
    int misaligned = 0;
    for (int pad = 0; pad < 4; pad++) {
        CHECK_OK(write_tiny_gguf(path, v, TINY_ALIGNMENT_1, pad));
        kvattn_model *m = NULL;
        if (kvattn_model_load(path, NULL, &m) != KVATTN_OK)
            misaligned += strstr(kvattn_last_error(), "not a multiple of 4 as F32 elements need") != NULL;
        kvattn_model_free(m);
    }
    CHECK(misaligned == 3, "general.alignment = 1: %d of 4 paddings refused as misaligned, want 3", misaligned);
    remove(path);
}

/* A small byte-level BPE vocabulary: the 256 byte stand-ins, then merges. */
static void test_bpe_tokenizer(void) {
    enum { NB = 256 };
    const char *merge_list[] = {"h e", "l l", "he ll", "hell o", "\xc4\xa0 h", "\xc4\xa0h ell", "\xc4\xa0hell o"};
    const char *pieces[NB + 16];
    int lens[NB + 16], n = 0;
    static char bytes[NB][4];
    /* byte stand-ins as GPT-2 maps them */
    for (int b = 0; b < NB; b++) {
        int cp;
        if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) cp = b;
        else {
            int k = 0;
            for (int x = 0; x < b; x++)
                if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) k++;
            cp = 256 + k;
        }
        int l = cp < 0x80 ? (bytes[b][0] = (char)cp, 1)
                          : (bytes[b][0] = (char)(0xc0 | (cp >> 6)), bytes[b][1] = (char)(0x80 | (cp & 0x3f)), 2);
        pieces[n] = bytes[b];
        lens[n++] = l;
    }
    const char *added[] = {"he",         "ll",           "hell",          "hello",
                           "\xc4\xa0h",  "\xc4\xa0hell", "\xc4\xa0hello", "<|im_start|>",
                           "<|im_end|>", "<|end|>"};
    for (size_t i = 0; i < 10; i++) pieces[n] = added[i], lens[n++] = (int)strlen(added[i]);
    int mlens[7];
    for (int i = 0; i < 7; i++) mlens[i] = (int)strlen(merge_list[i]);
    int32_t types[NB + 16];
    for (int i = 0; i < n; i++) types[i] = i >= n - 3 ? 3 : 1; /* the three <|...|> are control tokens */
    kvattn_tokenizer *t = NULL;
    CHECK_OK(kv_tokenizer_build(&(kv_vocab_spec){.kind = KVATTN_VOCAB_BPE,
                                                 .n_vocab = n,
                                                 .pieces = pieces,
                                                 .lens = lens,
                                                 .token_type = types,
                                                 .merges = merge_list,
                                                 .merge_lens = mlens,
                                                 .n_merges = 7,
                                                 .bos = -1,
                                                 .eos = n - 1,
                                                 .pre = KV_PRE_GPT2,
                                                 .source = "test vocab"},
                                &t));
    if (!t) return;
    int32_t ids[64];
    int c = 0;
    CHECK_OK(kvattn_tokenize(t, "hello hello", 0, ids, 64, &c));
    /* "h e" outranks "Ġ h", so " hello" becomes Ġ + hello: ranks decide, not lengths. */
    CHECK(c == 3 && ids[0] == NB + 3 && ids[1] == 32 && ids[2] == NB + 3,
          "'hello hello' → [hello, Ġ, hello], got %d ids", c);
    CHECK_OK(kvattn_tokenize(t, "hell", 0, ids, 64, &c));
    CHECK(c == 1 && ids[0] == NB + 2, "'hell' → [hell]");
    CHECK_OK(kvattn_tokenize(t, "hex", 0, ids, 64, &c));
    CHECK(c == 2 && ids[0] == NB + 0 && ids[1] == 'x', "'hex' → [he, x]");
    const char *texts[] = {"hello hello", "hello, world!  ok\n", "caf\xc3\xa9", "it's 42", "tab\there"};
    for (int i = 0; i < 5; i++) round_trip(t, texts[i], "byte-level BPE");
    char buf[16];
    CHECK(kvattn_token_to_bytes(t, -1, n - 1, buf, sizeof buf) == 0, "a control token decodes to nothing");

    /* The same vocabulary as a GGUF "gpt2" tokenizer on a tiny random llama, through the public writer. */
    const tiny_vocab tv = {pieces, lens, types, n, merge_list, mlens, 7};
    char path[128];
    snprintf(path, sizeof path, "/tmp/kvattn_bpe_%d.gguf", (int)getpid());
    CHECK_OK(write_tiny_gguf(path, &tv, TINY_OK, 0));
    CHECK_OK(write_tiny_gguf(KVATTN_CHAT_FIXTURE, &tv, TINY_OK, 0)); /* test_cli's ChatML model */
    test_malformed_tiny_ggufs(&tv);
    kvattn_model *m = NULL;
    CHECK_OK(kvattn_model_load(path, NULL, &m));
    const kvattn_tokenizer *g = m ? kvattn_model_tokenizer(m) : NULL;
    CHECK(g && kvattn_tokenizer_kind(g) == KVATTN_VOCAB_BPE && kvattn_tokenizer_eos(g) == n - 1, "gpt2 GGUF tokenizer");
    CHECK(m && kvattn_model_chat_template(m) && !strcmp(kvattn_model_chat_template(m), CHATML),
          "the GGUF's chat template, as written");
    CHECK(g && kvattn_token_id(g, "<|im_start|>") == n - 3 && kvattn_token_id(g, "<|im_end|>") == n - 2 &&
              kvattn_token_id(g, "<|none|>") == -1 && kvattn_token_id(g, "hello") == NB + 3,
          "token ids by piece");
    for (int i = 0; g && i < 5; i++) {
        int32_t x[64], y[64];
        int nx = 0, ny = 0;
        kvattn_tokenize(t, texts[i], 0, x, 64, &nx);
        kvattn_tokenize(g, texts[i], 0, y, 64, &ny);
        CHECK(nx == ny && !memcmp(x, y, sizeof(int32_t) * (size_t)nx), "'%s': the GGUF gpt2 vocabulary agrees",
              texts[i]);
        round_trip(g, texts[i], "GGUF gpt2 vocabulary");
    }
    if (m) { /* and it runs (q8_0 weights) */
        kvattn_session *s;
        float logits[300];
        int32_t x[8];
        int nx = 0;
        kvattn_tokenize(g, "hello hello", 0, x, 8, &nx);
        CHECK_OK(kvattn_session_create(m, 16, KVATTN_TYPE_Q8_0, KVATTN_MLA_ABSORBED, &s));
        CHECK_OK(kvattn_session_decode(s, x, nx, logits, 0));
        kvattn_session_free(s);
    }
    if (m) { /* kvattn's own writer keeps the gpt2 vocabulary and its merges (in rank order) */
        char again[160];
        snprintf(again, sizeof again, "/tmp/kvattn_bpe2_%d.gguf", (int)getpid());
        CHECK_OK(kvattn_model_save_gguf(m, again, KVATTN_TYPE_F16));
        kvattn_model *m2 = NULL;
        CHECK_OK(kvattn_model_load(again, NULL, &m2));
        const kvattn_tokenizer *g2 = m2 ? kvattn_model_tokenizer(m2) : NULL;
        for (int i = 0; g2 && i < 5; i++) {
            int32_t x[64], y[64];
            int nx = 0, ny = 0;
            kvattn_tokenize(t, texts[i], 0, x, 64, &nx);
            kvattn_tokenize(g2, texts[i], 0, y, 64, &ny);
            CHECK(nx == ny && !memcmp(x, y, sizeof(int32_t) * (size_t)nx), "'%s' after save/reload", texts[i]);
        }
        CHECK(g2 && kvattn_tokenizer_kind(g2) == KVATTN_VOCAB_BPE, "saved vocabulary stays byte-level BPE");
        kvattn_model_free(m2);
        unlink(again);
    }
    kvattn_model_free(m);
    unlink(path);
    kvattn_tokenizer_free(t);
}

/* GGUF writing: stories260K in every weight type, read back by the loader. */
static void test_gguf_roundtrip(void) {
    kvattn_model *ref = NULL;
    CHECK_OK(kvattn_model_load(test_model_path("stories260K.bin"), test_model_path("tok512.bin"), &ref));
    if (!ref) return;
    const int V = 512, T = 48;
    int32_t ids[48];
    for (int i = 0; i < T; i++) ids[i] = (int32_t)((i * 53 + 7) % V);
    float *lr = malloc(sizeof(float) * T * V), *lt = malloc(sizeof(float) * T * V);
    kvattn_session *s;
    CHECK_OK(kvattn_session_create(ref, T, KVATTN_TYPE_F32, KVATTN_MLA_ABSORBED, &s));
    CHECK_OK(kvattn_session_decode(s, ids, T, lr, 1));
    kvattn_session_free(s);
    /* Bounds: weight rounding (f16 2^-11, bf16 2^-8, q8_0 ≈ 2^-8 of a block's max) through 5 layers. */
    struct {
        kvattn_type t;
        double tol;
        double bytes_ratio;
    } cases[] = {{KVATTN_TYPE_F32, 1e-6, 1.0},
                 {KVATTN_TYPE_F16, 5e-3, 0.5},
                 {KVATTN_TYPE_BF16, 4e-2, 0.5},
                 {KVATTN_TYPE_Q8_0, 4e-2, 0.33}};
    char path[256];
    for (int c = 0; c < 4; c++) {
        snprintf(path, sizeof path, "/tmp/kvattn_test_%d_%s.gguf", (int)getpid(), kvattn_type_name(cases[c].t));
        CHECK_OK(kvattn_model_save_gguf(ref, path, cases[c].t));
        kvattn_model *m = NULL;
        CHECK_OK(kvattn_model_load(path, NULL, &m));
        if (!m) continue;
        CHECK_OK(kvattn_session_create(m, T, KVATTN_TYPE_F32, KVATTN_MLA_ABSORBED, &s));
        CHECK_OK(kvattn_session_decode(s, ids, T, lt, 1));
        kvattn_session_free(s);
        double e = test_max_abs_diff(lr, lt, (size_t)T * V) / test_max_abs(lr, (size_t)T * V);
        CHECK(e <= cases[c].tol, "GGUF %s: logits vs the f32 .bin: rel err %.3g (bound %.3g)",
              kvattn_type_name(cases[c].t), e, cases[c].tol);
        double ratio = (double)kvattn_model_weight_bytes(m) / (double)kvattn_model_weight_bytes(ref);
        CHECK(ratio > cases[c].bytes_ratio * 0.9 && ratio < cases[c].bytes_ratio * 1.25 + 0.05,
              "GGUF %s: weights %.2f of f32's", kvattn_type_name(cases[c].t), ratio);
        if (cases[c].t == KVATTN_TYPE_F32) {
            int32_t a[256];
            char text[8192];
            int n = generate(m, 200, KVATTN_TYPE_F16, a, text, sizeof text);
            CHECK(n == 200 && !strcmp(text, GOLDEN), "an f32 GGUF written by kvattn gives the golden text");
        }
        /* Same tokenizer after the round trip. */
        const kvattn_tokenizer *t1 = kvattn_model_tokenizer(ref), *t2 = kvattn_model_tokenizer(m);
        for (size_t i = 0; t2 && i < sizeof SAMPLES / sizeof SAMPLES[0]; i++) {
            int32_t x[512], y[512];
            int nx = 0, ny = 0;
            kvattn_tokenize(t1, SAMPLES[i], 1, x, 512, &nx);
            kvattn_tokenize(t2, SAMPLES[i], 1, y, 512, &ny);
            CHECK(nx == ny && !memcmp(x, y, sizeof(int32_t) * (size_t)nx), "'%s' tokenizes the same after GGUF",
                  SAMPLES[i]);
        }
        kvattn_model_free(m);
        unlink(path);
    }
    free(lr), free(lt);
    kvattn_model_free(ref);
}

/* The whole model with quantized caches stays near the f32 path. Bounds on
 * max|Δlogit| / max|logit| over 60 positions: the cache's element rounding
 * (f16 2^-11, bf16 2^-8 of each value) through 5 layers, with margin. q8_0
 * rounds to 1/254 of each row's largest value; this model's rows are 8 wide
 * (head_dim 8) with outliers, so small elements lose more than in bf16 —
 * measured 4.8e-2 here (bf16 4.5e-3, f16 5.5e-4); a wrong row or scale would
 * move logits by O(1). */
static void test_cache_types_whole_model(void) {
    kvattn_model *m = NULL;
    CHECK_OK(kvattn_model_load(test_model_path("stories260K.gguf"), NULL, &m));
    if (!m) return;
    const int V = 512, T = 60;
    int32_t ids[60];
    for (int i = 0; i < T; i++) ids[i] = (int32_t)((i * 29 + 3) % V);
    float *ref = malloc(sizeof(float) * T * V), *got = malloc(sizeof(float) * T * V);
    struct {
        kvattn_type t;
        double tol;
    } c[] = {{KVATTN_TYPE_F32, 0.0}, {KVATTN_TYPE_F16, 4e-3}, {KVATTN_TYPE_BF16, 3e-2}, {KVATTN_TYPE_Q8_0, 8e-2}};
    for (int i = 0; i < 4; i++) {
        kvattn_session *s;
        CHECK_OK(kvattn_session_create(m, T, c[i].t, KVATTN_MLA_ABSORBED, &s));
        CHECK_OK(kvattn_session_decode(s, ids, T, i ? got : ref, 1));
        kvattn_session_free(s);
        if (!i) continue;
        double e = test_max_abs_diff(ref, got, (size_t)T * V) / test_max_abs(ref, (size_t)T * V);
        CHECK(e <= c[i].tol, "%s cache vs f32 over the whole model: %.3g (bound %.3g)", kvattn_type_name(c[i].t), e,
              c[i].tol);
    }
    free(ref), free(got);
    kvattn_model_free(m);
}

/* One draw from logits (copied: kvattn_sample changes them) with these parameters and history. */
static int draw(kvattn_sampler_params p, const float *logits, int n, const int *hist, int n_hist) {
    kvattn_sampler s;
    kvattn_sampler_init(&s, &p);
    for (int i = 0; i < n_hist; i++) kvattn_sampler_accept(&s, hist[i]);
    float l[8];
    memcpy(l, logits, sizeof(float) * (size_t)n);
    int id = kvattn_sample(&s, l, n);
    kvattn_sampler_free(&s);
    return id;
}

/* The sampler in llama.cpp's order: penalties on the logits of the recent
 * window, then top-k, top-p and min-p at temperature 1, then the temperature. */
static void test_sampler(void) {
    const kvattn_sampler_params greedy = {.temperature = 0.0f, .repeat_last_n = 64};
    const float l3[3] = {2.0f, 1.9f, 0.0f};
    const int h0[1] = {0}, h000[3] = {0, 0, 0}, h0555[4] = {0, 5, 5, 5};
    CHECK(draw(greedy, l3, 3, h0, 1) == 0, "no penalty: argmax");
    kvattn_sampler_params p = greedy;
    p.repeat_penalty = 1.2f; /* 2 / 1.2 = 1.67 < 1.9 */
    CHECK(draw(p, l3, 3, h0, 1) == 1, "repeat penalty divides a positive logit");
    const float neg[2] = {-1.0f, -1.1f};
    p.repeat_penalty = 2.0f; /* -1 · 2 = -2 < -1.1 */
    CHECK(draw(p, neg, 2, h0, 1) == 1, "repeat penalty multiplies a negative logit");
    p.repeat_last_n = 2; /* the window holds 5, 5: token 0 is out of it */
    CHECK(draw(p, l3, 3, h0555, 4) == 0, "the window is the last repeat_last_n tokens");
    p = greedy;
    const float l2[2] = {1.0f, 0.9f};
    p.frequency_penalty = 0.05f; /* 1 - 3 · 0.05 = 0.85 < 0.9 */
    CHECK(draw(p, l2, 2, h000, 3) == 1, "frequency penalty per occurrence");
    p.frequency_penalty = 0.02f; /* 1 - 0.06 = 0.94 > 0.9 */
    CHECK(draw(p, l2, 2, h000, 3) == 0, "frequency penalty, smaller");
    p.frequency_penalty = 0.0f, p.presence_penalty = 0.2f; /* once: 0.8 < 0.9 */
    CHECK(draw(p, l2, 2, h000, 3) == 1, "presence penalty once");

    /* Which tokens can be drawn: 2000 seeds each. */
    const float probs[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    struct {
        kvattn_sampler_params p;
        int allowed; /* bit i: token i may be drawn */
        const char *what;
    } cases[] = {
        {{.temperature = 1.0f, .top_k = 2}, 0x3, "top-k 2"},
        {{.temperature = 1.0f, .top_p = 0.7f}, 0x3, "top-p 0.7 keeps 0.5 + 0.3"},
        {{.temperature = 1.0f, .top_p = 0.9f}, 0x7, "top-p 0.9 keeps three"},
        {{.temperature = 1.0f, .min_p = 0.5f}, 0x3, "min-p 0.5: p ≥ 0.25"},
        {{.temperature = 50.0f, .top_k = 2}, 0x3, "the temperature acts after the truncation"},
        {{.temperature = 0.5f}, 0xf, "no truncation, temperature 0.5"},
        {{.temperature = 1.0f}, 0xf, "no truncation"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int seen = 0, count1 = 0;
        for (int seed = 1; seed <= 2000; seed++) {
            kvattn_sampler_params q = cases[c].p;
            q.seed = (uint64_t)seed * 0x9e3779b97f4a7c15ull;
            int id = draw(q, probs, 4, NULL, 0);
            seen |= 1 << id;
            count1 += id == 1;
        }
        CHECK(seen == cases[c].allowed, "%s: drew the set 0x%x, want 0x%x", cases[c].what, seen, cases[c].allowed);
        if (c == sizeof cases / sizeof cases[0] - 1) /* p(1) = 0.3: 600 ± 4.5 σ of 20 */
            CHECK(count1 > 510 && count1 < 690, "plain sampling drew token 1 %d times in 2000 (p = 0.3)", count1);
        if (c == sizeof cases / sizeof cases[0] - 2) /* p ∝ p²: p(1) = 0.09 / 0.365 = 0.247: 493 ± 4.5 σ of 19 */
            CHECK(count1 > 406 && count1 < 580, "sampling at temperature 0.5 drew token 1 %d times in 2000 (p = 0.247)",
                  count1);
    }
    /* A user's seeds are small and neighbouring (1234, 1235, …, one a stream): each must draw
     * the distribution from its first token on. p(0) = 0.5: 1000 ± 4.5 σ of 22. */
    int count0 = 0;
    for (int seed = 1; seed <= 2000; seed++) {
        const kvattn_sampler_params plain = {.temperature = 1.0f, .seed = (uint64_t)seed};
        count0 += draw(plain, probs, 4, NULL, 0) == 0;
    }
    CHECK(count0 > 900 && count0 < 1100, "seeds 1 to 2000 drew token 0 first %d times (p = 0.5)", count0);
    kvattn_sampler_params q = {.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f, .seed = 7};
    int same = 1;
    for (int i = 0; i < 50; i++) same &= draw(q, probs, 4, NULL, 0) == draw(q, probs, 4, NULL, 0);
    CHECK(same, "the same seed draws the same token");
}

/* Thread counts: greedy decoding gives the same tokens with 1, 2 and 3 threads,
 * and logits within 1e-5 of their largest (a split context merges its parts in
 * another order: f32 rounding of sums of a few hundred terms, ~1e-6); and a
 * seed samples the same text whatever the thread count. */
static void test_thread_counts(void) {
    kvattn_model *m = NULL;
    CHECK_OK(kvattn_model_load(test_model_path("stories260K.gguf"), NULL, &m));
    if (!m) return;
    const int V = 512, steps = 120;
    int32_t toks[3][120];
    float *last[3];
    for (int th = 1; th <= 3; th++) {
        kvattn_set_threads(th);
        last[th - 1] = malloc(sizeof(float) * V);
        kvattn_session *s;
        CHECK_OK(kvattn_session_create(m, steps + 1, KVATTN_TYPE_F16, KVATTN_MLA_ABSORBED, &s));
        int32_t tok = 1;
        for (int i = 0; i < steps; i++) {
            CHECK_OK(kvattn_session_decode(s, &tok, 1, last[th - 1], 0));
            int best = 0;
            for (int j = 1; j < V; j++)
                if (last[th - 1][j] > last[th - 1][best]) best = j;
            toks[th - 1][i] = tok = best;
        }
        kvattn_session_free(s);
    }
    for (int th = 2; th <= 3; th++) {
        CHECK(!memcmp(toks[0], toks[th - 1], sizeof toks[0]), "greedy tokens with %d threads differ from 1 thread", th);
        double e = test_max_abs_diff(last[0], last[th - 1], V) / test_max_abs(last[0], V);
        CHECK(e <= 1e-5, "logits with %d threads: %.3g from 1 thread's (bound 1e-5)", th, e);
    }
    /* sampling: seed 7, temperature 0.8 — the same 80 tokens at every thread count */
    int32_t sampled[3][80];
    for (int th = 1; th <= 3; th++) {
        kvattn_set_threads(th);
        kvattn_session *s;
        kvattn_sampler sm;
        const kvattn_sampler_params sp = {.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f, .seed = 7};
        kvattn_sampler_init(&sm, &sp);
        CHECK_OK(kvattn_session_create(m, 81, KVATTN_TYPE_F16, KVATTN_MLA_ABSORBED, &s));
        int32_t tok = 1;
        for (int i = 0; i < 80; i++) {
            CHECK_OK(kvattn_session_decode(s, &tok, 1, last[0], 0));
            sampled[th - 1][i] = tok = kvattn_sample(&sm, last[0], V);
        }
        kvattn_sampler_free(&sm);
        kvattn_session_free(s);
    }
    CHECK(!memcmp(sampled[0], sampled[1], sizeof sampled[0]) && !memcmp(sampled[0], sampled[2], sizeof sampled[0]),
          "seed 7 samples the same text with 1, 2 and 3 threads");
    kvattn_set_threads(0);
    for (int i = 0; i < 3; i++) free(last[i]);
    kvattn_model_free(m);
}

/* The context filled to exactly its end, then one past: the extra token is
 * refused as cache full, naming the limit, and nothing is written (the
 * position stays; decoding goes on from it after a rewind). Every cache type. */
static void test_context_end(void) {
    kvattn_model *m = NULL;
    CHECK_OK(kvattn_model_load(test_model_path("stories260K.gguf"), NULL, &m));
    if (!m) return;
    const kvattn_type types[4] = {KVATTN_TYPE_F32, KVATTN_TYPE_F16, KVATTN_TYPE_BF16, KVATTN_TYPE_Q8_0};
    float *logits = malloc(sizeof(float) * 512 * 9);
    const int32_t ids[9] = {1, 10, 20, 30, 40, 50, 60, 70, 80};
    for (int t = 0; t < 4; t++) {
        kvattn_session *s;
        CHECK_OK(kvattn_session_create(m, 8, types[t], KVATTN_MLA_ABSORBED, &s));
        if (!s) continue;
        CHECK_OK(kvattn_session_decode(s, ids, 8, logits, 0)); /* exactly full */
        kvattn_status st = kvattn_session_decode(s, ids + 8, 1, logits, 0);
        CHECK(st == KVATTN_ERR_CACHE_FULL && strstr(kvattn_last_error(), "context of 8") &&
                  kvattn_session_pos(s) == 8 && kvattn_cache_length(kvattn_session_cache(s), -1) == 8,
              "%s: one past the end: %s, pos %d", kvattn_type_name(types[t]), kvattn_last_error(),
              kvattn_session_pos(s));
        CHECK(kvattn_session_decode(s, ids, 9, logits, 0) == KVATTN_ERR_CACHE_FULL && kvattn_session_pos(s) == 8,
              "%s: a prefill past the end is refused whole", kvattn_type_name(types[t]));
        CHECK_OK(kvattn_session_rewind(s, 7));
        CHECK_OK(kvattn_session_decode(s, ids + 8, 1, logits, 0)); /* the last slot again */
        kvattn_session_free(s);
    }
    free(logits);
    kvattn_model_free(m);
}

/* A model file that shrinks while the model is in use: small files are read
 * into memory (model.h), so decoding goes on, with the logits it had. */
static void test_file_truncated_in_use(void) {
    char copy[128];
    snprintf(copy, sizeof copy, "/tmp/kvattn_trunc_%d.gguf", (int)getpid());
    FILE *in = fopen(test_model_path("stories260K.gguf"), "rb"), *out = fopen(copy, "wb");
    char buf[65536];
    for (size_t n; in && out && (n = fread(buf, 1, sizeof buf, in)) > 0;) fwrite(buf, 1, n, out);
    if (in) fclose(in);
    if (out) fclose(out);
    kvattn_model *m = NULL, *ref = NULL;
    CHECK_OK(kvattn_model_load(copy, NULL, &m));
    CHECK_OK(kvattn_model_load(test_model_path("stories260K.gguf"), NULL, &ref));
    CHECK(truncate(copy, 0) == 0, "truncate the file");
    float a[512], b[512];
    const int32_t ids[3] = {1, 40, 50};
    kvattn_session *s = NULL, *r = NULL;
    if (m && ref) {
        CHECK_OK(kvattn_session_create(m, 8, KVATTN_TYPE_F32, KVATTN_MLA_ABSORBED, &s));
        CHECK_OK(kvattn_session_create(ref, 8, KVATTN_TYPE_F32, KVATTN_MLA_ABSORBED, &r));
        CHECK_OK(kvattn_session_decode(s, ids, 3, a, 0));
        CHECK_OK(kvattn_session_decode(r, ids, 3, b, 0));
        CHECK(!memcmp(a, b, sizeof a), "a model whose file was truncated decodes as before");
    }
    kvattn_session_free(s), kvattn_session_free(r);
    kvattn_model_free(m), kvattn_model_free(ref);
    remove(copy);
}

int main(void) {
    if (test_isa_skip("test_model")) return 77;
    test_sampler();
    test_bpe_tokenizer();
    static const char *const needed[] = {"stories260K.bin", "stories260K.gguf", "tok512.bin", NULL};
    if (!test_models_found(test_models_dir(), needed)) return test_models_missing("test_model", test_models_dir());
    test_golden_generation();
    test_batched_vs_decode();
    test_spm_tokenizers();
    test_gguf_roundtrip();
    test_cache_types_whole_model();
    test_thread_counts();
    test_context_end();
    test_file_truncated_in_use();
    return test_finish("test_model");
}
