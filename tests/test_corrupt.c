/* Every loader against a corpus of corrupted files made from the real ones:
 * truncations, random byte flips, and absurd values planted in header fields.
 * Each must either load (then run a few decode steps) or fail with a message
 * that names the file — never crash or read out of bounds (CI runs this under
 * ASan). */
#define _GNU_SOURCE /* memmem */
#include "test_util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned char *slurp(const char *name, size_t *n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", test_models_dir(), name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)len);
    if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return buf;
}

static char tmp_model[64], tmp_tok[64];
static int loaded, refused;

static void write_file(const char *path, const unsigned char *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f) {
        if (n) fwrite(data, 1, n, f);
        fclose(f);
    }
}

/* Loads the mutated model (with the real tokenizer for .bin) and uses it. */
static void try_model(const unsigned char *data, size_t n, int is_bin, const char *what) {
    write_file(tmp_model, data, n);
    kvattn_model *m = NULL;
    kvattn_status st = kvattn_model_load(tmp_model, is_bin ? tmp_tok : NULL, &m);
    if (st != KVATTN_OK) {
        refused++;
        CHECK(strstr(kvattn_last_error(), tmp_model) != NULL || strstr(kvattn_last_error(), tmp_tok) != NULL,
              "%s: the error names the file: %s", what, kvattn_last_error());
        return;
    }
    loaded++;
    const kvattn_tokenizer *tok = kvattn_model_tokenizer(m);
    kvattn_session *s = NULL;
    int V = (int)kvattn_model_describe(m)->vocab_size;
    if (kvattn_session_create(m, 8, KVATTN_TYPE_F16, KVATTN_MLA_ABSORBED, &s) == KVATTN_OK) {
        int32_t ids[16];
        int k = 0;
        if (!tok || kvattn_tokenize(tok, "Once upon", 1, ids, 16, &k) != KVATTN_OK || k < 1) ids[0] = 0, k = 1;
        float *logits = malloc(sizeof(float) * (size_t)V);
        kvattn_session_decode(s, ids, k < 8 ? k : 8, logits, 0);
        if (tok) {
            char buf[64];
            for (int i = 0; i < V && i < 600; i++) kvattn_token_to_bytes(tok, i - 1, i, buf, sizeof buf);
        }
        free(logits);
        kvattn_session_free(s);
    }
    kvattn_model_free(m);
}

static void try_tokenizer(const unsigned char *data, size_t n, const char *what) {
    write_file(tmp_tok, data, n);
    kvattn_tokenizer *t = NULL;
    if (kvattn_tokenizer_load_llama2c(tmp_tok, 512, &t) != KVATTN_OK) {
        refused++;
        CHECK(strstr(kvattn_last_error(), tmp_tok) != NULL, "%s: the error names the file: %s", what,
              kvattn_last_error());
        return;
    }
    loaded++;
    int32_t ids[256];
    int k;
    kvattn_tokenize(t, "Once upon a time, \xe6\x97\xa5 caf\xc3\xa9", 1, ids, 256, &k);
    char buf[64];
    for (int i = 0; i < 512; i++) kvattn_token_to_bytes(t, i - 1, i, buf, sizeof buf);
    kvattn_tokenizer_free(t);
}

static void put_u64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static void put_u32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }

/* Plants a value in the tensor-info entry that follows `name` in a GGUF:
 * field 0 = ne[0], field 1 = the type. Returns 0 if the name was found. */
static int plant_tensor_field(unsigned char *g, size_t n, const char *name, int field, uint64_t value) {
    size_t len = strlen(name);
    for (size_t i = 8; i + len + 40 < n; i++) {
        uint64_t l;
        memcpy(&l, g + i - 8, 8);
        if (l != len || memcmp(g + i, name, len)) continue;
        unsigned char *p = g + i + len;
        uint32_t n_dims;
        memcpy(&n_dims, p, 4);
        if (field == 0) put_u64(p + 4, value);
        else put_u32(p + 4 + 8 * n_dims, (uint32_t)value);
        return 0;
    }
    return -1;
}

/* Plants a value type in the metadata entry of `key` (the u32 after the key
 * string). Returns 0 if the key was found. */
static int plant_kv_type(unsigned char *g, size_t n, const char *key, uint32_t type) {
    size_t len = strlen(key);
    for (size_t i = 8; i + len + 4 < n; i++) {
        uint64_t l;
        memcpy(&l, g + i - 8, 8);
        if (l != len || memcmp(g + i, key, len)) continue;
        put_u32(g + i + len, type);
        return 0;
    }
    return -1;
}

static void expect_refusal(const unsigned char *data, size_t n, const char *what, const char *w1, const char *w2) {
    write_file(tmp_model, data, n);
    kvattn_model *m = NULL;
    kvattn_status st = kvattn_model_load(tmp_model, NULL, &m);
    CHECK(st != KVATTN_OK, "%s: loaded", what);
    CHECK(strstr(kvattn_last_error(), w1) && strstr(kvattn_last_error(), w2) && strstr(kvattn_last_error(), tmp_model),
          "%s: message '%s' should name %s and %s", what, kvattn_last_error(), w1, w2);
    kvattn_model_free(m);
}

int main(void) {
    snprintf(tmp_model, sizeof tmp_model, "/tmp/kvattn_corrupt_%d.model", (int)getpid());
    snprintf(tmp_tok, sizeof tmp_tok, "/tmp/kvattn_corrupt_%d.tok", (int)getpid());
    static const char *const needed[] = {"stories260K.bin", "stories260K.gguf", "tok512.bin", NULL};
    if (!test_models_found(test_models_dir(), needed)) return test_models_missing("test_corrupt", test_models_dir());
    size_t nb, ng, nt;
    unsigned char *bin = slurp("stories260K.bin", &nb), *gguf = slurp("stories260K.gguf", &ng),
                  *tok = slurp("tok512.bin", &nt);
    CHECK(bin && gguf && tok, "models not found under %s (set KVATTN_MODELS)", test_models_dir());
    if (!bin || !gguf || !tok) return test_finish("test_corrupt");
    write_file(tmp_tok, tok, nt);
    test_rng r = {2024};
    unsigned char *buf = malloc(ng > nb ? ng : nb);
    char what[128];

    /* Truncations: every length in the headers, then spread over the files. */
    for (size_t len = 0; len < 400; len += (len < 64 ? 1 : 7)) {
        snprintf(what, sizeof what, "gguf truncated to %zu", len);
        try_model(gguf, len, 0, what);
        snprintf(what, sizeof what, "bin truncated to %zu", len);
        try_model(bin, len < nb ? len : nb, 1, what);
        snprintf(what, sizeof what, "tokenizer truncated to %zu", len);
        try_tokenizer(tok, len < nt ? len : nt, what);
    }
    for (int i = 1; i < 40; i++) {
        snprintf(what, sizeof what, "gguf truncated at %d/40", i);
        try_model(gguf, ng * (size_t)i / 40, 0, what);
        snprintf(what, sizeof what, "bin truncated at %d/40", i);
        try_model(bin, nb * (size_t)i / 40, 1, what);
        snprintf(what, sizeof what, "tokenizer truncated at %d/40", i);
        try_tokenizer(tok, nt * (size_t)i / 40, what);
    }
    write_file(tmp_tok, tok, nt);

    /* Byte flips: most in the GGUF's metadata and directory (the first 14,176 bytes). */
    for (int i = 0; i < 300; i++) {
        memcpy(buf, gguf, ng);
        int flips = test_randint(&r, 1, 4);
        for (int f = 0; f < flips; f++) {
            size_t at = i % 5 == 4 ? (size_t)test_randint(&r, 0, (int)ng - 1) : (size_t)test_randint(&r, 0, 14175);
            buf[at] ^= (unsigned char)test_randint(&r, 1, 255);
        }
        snprintf(what, sizeof what, "gguf flip set %d", i);
        try_model(buf, ng, 0, what);
    }
    for (int i = 0; i < 60; i++) {
        memcpy(buf, bin, nb);
        buf[test_randint(&r, 0, i < 30 ? 27 : (int)nb - 1)] ^= (unsigned char)test_randint(&r, 1, 255);
        snprintf(what, sizeof what, "bin flip %d", i);
        try_model(buf, nb, 1, what);
    }
    for (int i = 0; i < 120; i++) {
        memcpy(buf, tok, nt);
        buf[test_randint(&r, 0, (int)nt - 1)] ^= (unsigned char)test_randint(&r, 1, 255);
        snprintf(what, sizeof what, "tokenizer flip %d", i);
        try_tokenizer(buf, nt, what);
    }
    write_file(tmp_tok, tok, nt);

    /* Absurd values planted in known fields. */
    struct {
        size_t off;
        int width;
        uint64_t value;
        const char *what;
    } plants[] = {
        {8, 8, UINT64_MAX, "gguf tensor count 2^64-1"},
        {16, 8, (uint64_t)1 << 40, "gguf metadata count 2^40"},
        {24, 8, (uint64_t)1 << 62, "gguf first key length 2^62"},
        {4, 4, 1, "gguf version 1"},
        {4, 4, 99, "gguf version 99"},
        {8, 8, 0, "gguf no tensors"},
    };
    for (size_t i = 0; i < sizeof plants / sizeof plants[0]; i++) {
        memcpy(buf, gguf, ng);
        if (plants[i].width == 8) put_u64(buf + plants[i].off, plants[i].value);
        else put_u32(buf + plants[i].off, (uint32_t)plants[i].value);
        try_model(buf, ng, 0, plants[i].what);
    }
    /* An optional tokenizer key of the wrong type is refused by name, not ignored (u32 → f32, same width). */
    const char *typed_keys[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"};
    for (size_t i = 0; i < 2; i++) {
        memcpy(buf, gguf, ng);
        CHECK(plant_kv_type(buf, ng, typed_keys[i], 6) == 0, "%s not found in stories260K.gguf", typed_keys[i]);
        snprintf(what, sizeof what, "%s as f32", typed_keys[i]);
        expect_refusal(buf, ng, what, typed_keys[i], "wrong type");
    }
    /* llama2.c headers: each field huge, zero, negative. */
    int32_t vals[] = {0, -1, 1 << 30, 3, 7, 1 << 24};
    for (int f = 0; f < 7; f++)
        for (size_t v = 0; v < sizeof vals / sizeof vals[0]; v++) {
            memcpy(buf, bin, nb);
            memcpy(buf + 4 * f, &vals[v], 4);
            snprintf(what, sizeof what, "bin header field %d = %d", f, vals[v]);
            try_model(buf, nb, 1, what);
        }
    /* Exact messages for the cases a user meets. */
    memcpy(buf, gguf, ng);
    CHECK(plant_tensor_field(buf, ng, "blk.2.attn_q.weight", 1, 12) == 0, "tensor info found");
    expect_refusal(buf, ng, "Q4_K tensor", "blk.2.attn_q.weight", "Q4_K");
    memcpy(buf, gguf, ng);
    CHECK(plant_tensor_field(buf, ng, "blk.1.ffn_up.weight", 1, 77) == 0, "tensor info found");
    expect_refusal(buf, ng, "unknown tensor type", "blk.1.ffn_up.weight", "77");
    memcpy(buf, gguf, ng);
    CHECK(plant_tensor_field(buf, ng, "blk.0.attn_k.weight", 0, 65) == 0, "tensor info found");
    expect_refusal(buf, ng, "inconsistent shape", "blk.0.attn_k.weight", "[65, 32");
    memcpy(buf, gguf, ng);
    CHECK(plant_tensor_field(buf, ng, "output_norm.weight", 0, (uint64_t)1 << 39) == 0, "tensor info found");
    expect_refusal(buf, ng, "tensor past the end", "output_norm.weight", "outside");
    memcpy(buf, gguf, ng);
    unsigned char *arch = memmem(buf, ng, "general.architecture", 20); /* key, type u32, length u64, value */
    CHECK(arch != NULL, "general.architecture found");
    if (arch) memcpy(arch + 20 + 4 + 8, "gemma", 5);
    expect_refusal(buf, ng, "unknown architecture", "architecture 'gemma'", "not supported");
    memcpy(buf, gguf, ng);
    unsigned char *key = memmem(buf, ng, "llama.block_count", 17);
    if (key) key[6] = 'X'; /* the key disappears */
    expect_refusal(buf, ng, "missing metadata", "llama.block_count", "missing");

    /* The unmodified files still load (the harness itself works). */
    int before = loaded;
    try_model(gguf, ng, 0, "pristine gguf");
    try_model(bin, nb, 1, "pristine bin");
    CHECK(loaded == before + 2, "the pristine files load");
    CHECK(refused > 200, "only %d of the corrupted files were refused", refused);
    printf("corpus: %d loaded and used, %d refused with a message\n", loaded, refused);
    unlink(tmp_model);
    unlink(tmp_tok);
    free(buf), free(bin), free(gguf), free(tok);
    return test_finish("test_corrupt");
}
