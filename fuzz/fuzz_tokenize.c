/* libFuzzer harness: any bytes (invalid UTF-8 included) through the
 * tokenizers and back: SentencePiece from tok512.bin under $KVATTN_MODELS, and
 * byte-level BPE from the GGUF at $KVATTN_FUZZ_BPE (test_model writes one,
 * build/tests/tiny_chatml.gguf). Byte-level BPE must give back every byte,
 * every BPE pre-tokenizer's pieces must tile the text, and every Unicode
 * normalisation form must give a C string that it leaves as it is. */
#include "fuzz_util.h"

#include "model/normalize.h"
#include "model/pretokenize.h"

static kv_pretok *pretoks[KV_PRE_COUNT];

static kvattn_tokenizer *spm;
static kvattn_model *bpe_model;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *models = getenv("KVATTN_MODELS"), *bpe = getenv("KVATTN_FUZZ_BPE");
    char p[1024];
    snprintf(p, sizeof p, "%s/tok512.bin", models && *models ? models : "../shared/models");
    if (kvattn_tokenizer_load_llama2c(p, 512, &spm) != KVATTN_OK) fprintf(stderr, "fuzz_tokenize: no %s\n", p);
    if (!bpe || kvattn_model_load(bpe, NULL, &bpe_model) != KVATTN_OK)
        fprintf(stderr, "fuzz_tokenize: no byte-level BPE vocabulary (set KVATTN_FUZZ_BPE)\n");
    for (int i = 0; i < KV_PRE_COUNT; i++)
        if (kv_pretok_create((kv_pretokenizer)i, &pretoks[i]) != KVATTN_OK) abort();
    return 0;
}

static void through(const kvattn_tokenizer *t, const char *text, size_t len, int exact) {
    const int cap = (int)len + 8;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)cap);
    char *back = malloc(len * 8 + 64);
    int n = 0;
    if (ids && back && kvattn_tokenize(t, text, 0, ids, cap, &n) == KVATTN_OK) {
        size_t got = 0;
        for (int i = 0; i < n; i++) {
            const int k = kvattn_token_to_bytes(t, i ? ids[i - 1] : -1, ids[i], back + got, 64);
            if (k < 0) abort(); /* an id the tokenizer made must decode */
            got += (size_t)k;
        }
        if (exact && (got != len || memcmp(back, text, len))) abort(); /* byte-level BPE loses no byte */
    }
    free(ids), free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    const size_t len = strlen(text); /* the tokenizer reads C strings */
    if (spm) through(spm, text, len, 0);
    if (bpe_model && kvattn_model_tokenizer(bpe_model)) through(kvattn_model_tokenizer(bpe_model), text, len, 1);
    size_t *ends = NULL, cap = 0;
    for (int i = 0; i < KV_PRE_COUNT; i++) { /* pieces in order, none empty, the last ending the text */
        const int n = kv_pretok_split(pretoks[i], text, len, &ends, &cap);
        if (n < 0 || (len && (n < 1 || ends[n - 1] != len)) || (!len && n != 0)) abort();
        for (int k = 0; k < n; k++)
            if (ends[k] <= (k ? ends[k - 1] : 0)) abort();
    }
    free(ends);
    for (int f = KV_NORM_NFC; f <= KV_NORM_NFKD; f++) { /* every form: a C string, and idempotent */
        size_t n = 0, n2 = 0;
        char *once = kv_normalize((kv_normalization)f, text, len, &n), *twice = NULL;
        if (!once || strlen(once) != n) abort();
        twice = kv_normalize((kv_normalization)f, once, n, &n2);
        if (!twice || n2 != n || memcmp(once, twice, n)) abort();
        free(once), free(twice);
    }
    free(text);
    return 0;
}
