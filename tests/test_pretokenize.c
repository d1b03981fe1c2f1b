/* The BPE pre-tokenizers: each vocabulary's expressions cut text where its
 * tokenizer.json says (pieces checked by hand against the published
 * patterns), every byte lands in exactly one piece whatever the input, and
 * names map to the right expressions. And the Unicode normalisation that
 * runs before them (forms checked by hand against the Unicode tables). */
#include "test_util.h"

#include "model/normalize.h"
#include "model/pretokenize.h"

#include <stdlib.h>
#include <string.h>

/* The pieces of text under pre, joined by '|'. */
static void split(kv_pretokenizer pre, const char *text, char *out, size_t cap) {
    kv_pretok *p = NULL;
    CHECK_OK(kv_pretok_create(pre, &p));
    size_t *ends = NULL, n_cap = 0, o = 0, start = 0;
    const int n = p ? kv_pretok_split(p, text, strlen(text), &ends, &n_cap) : -1;
    out[0] = '\0';
    for (int i = 0; i < n && o + 2 < cap; i++) {
        const size_t len = ends[i] - start;
        if (i) out[o++] = '|';
        memcpy(out + o, text + start, len < cap - o - 1 ? len : cap - o - 1);
        o += len < cap - o - 1 ? len : cap - o - 1;
        start = ends[i];
    }
    out[o] = '\0';
    free(ends);
    kv_pretok_free(p);
}

static void expect_normal(kv_normalization form, const char *text, size_t len, const char *want, size_t want_len) {
    size_t n = 0;
    char *got = kv_normalize(form, text, len, &n);
    CHECK(got && n == want_len && !memcmp(got, want, n), "%s of '%.*s': %zu bytes '%.*s', want '%s'",
          kv_normalization_name(form), (int)len, text, n, got ? (int)n : 0, got ? got : "", want);
    free(got);
}
#define NORMAL(form, text, want) expect_normal(form, text, sizeof text - 1, want, sizeof want - 1)

static void test_normalize(void) {
    NORMAL(KV_NORM_NFC, "cafe\xCC\x81", "caf\xC3\xA9");      /* e + acute → é */
    NORMAL(KV_NORM_NFD, "caf\xC3\xA9", "cafe\xCC\x81");      /* and back */
    NORMAL(KV_NORM_NFC, "\xEF\xAC\x81", "\xEF\xAC\x81");     /* ﬁ stays under NFC */
    NORMAL(KV_NORM_NFKC, "\xEF\xAC\x81\xE2\x91\xA0", "fi1"); /* ﬁ ① → fi1 under NFKC */
    NORMAL(KV_NORM_NFKD, "\xC3\xA9\xEF\xAC\x81",
           "e\xCC\x81"
           "fi");                                                     /* é ﬁ → e + acute, fi */
    NORMAL(KV_NORM_NFC, "\xE1\x84\x80\xE1\x85\xA1", "\xEA\xB0\x80");  /* jamo ᄀ + ᅡ → 가 */
    NORMAL(KV_NORM_NFC, "\xE2\x84\xAB", "\xC3\x85");                  /* Å sign → Å (singleton) */
    NORMAL(KV_NORM_NFC, "e\xCC\x81\xCC\xA3", "\xE1\xBA\xB9\xCC\x81"); /* acute, dot below → ẹ + acute */
    /* bytes that are not UTF-8 pass through, and the valid runs around them are normalised */
    NORMAL(KV_NORM_NFC,
           "a\xFF"
           "e\xCC\x81\xC3",
           "a\xFF\xC3\xA9\xC3");
    NORMAL(KV_NORM_NFC, "\xED\xA0\x80x", "\xED\xA0\x80x"); /* a surrogate's encoding: three raw bytes */
    NORMAL(KV_NORM_NFC, "", "");
    CHECK(kv_normalization_by_name("NFKC") == KV_NORM_NFKC && kv_normalization_by_name("Lowercase") == -1,
          "normalizer names");
}

static void expect(kv_pretokenizer pre, const char *text, const char *want) {
    char got[512];
    split(pre, text, got, sizeof got);
    CHECK(!strcmp(got, want), "%s on '%s': got '%s', want '%s'", kv_pretokenizer_name(pre), text, got, want);
}

int main(void) {
    expect(KV_PRE_GPT2, "Hello world's 12345!!", "Hello| world|'s| 12345|!!");
    expect(KV_PRE_GPT2, "a  b", "a| | b"); /* \s+(?!\S) leaves one space for the word */
    expect(KV_PRE_LLAMA3, "Hello 12345", "Hello| |123|45");
    expect(KV_PRE_LLAMA3, "I'VE been", "I|'VE| been"); /* contractions in any case */
    expect(KV_PRE_LLAMA3, "x\n\n  y", "x|\n\n| | y");
    expect(KV_PRE_QWEN2, "v12345", "v|1|2|3|4|5");
    expect(KV_PRE_DEEPSEEK_LLM, "Hello\nworld", "Hello|\n|world");
    expect(KV_PRE_DEEPSEEK_CODER, "ab12", "ab|1|2");
    expect(KV_PRE_FALCON, "1234567", "123|456|7");
    expect(KV_PRE_STARCODER, "x 42", "x| |4|2");
    expect(KV_PRE_GPT2, "Äpfel über", "Äpfel| über"); /* \p{L} beyond ASCII */
    expect(KV_PRE_LLAMA3, "", "");

    /* Any bytes, broken UTF-8 included: the pieces tile the text, in order, none empty. */
    test_rng r = {77};
    for (int pre = 0; pre < KV_PRE_COUNT; pre++) {
        kv_pretok *p = NULL;
        CHECK_OK(kv_pretok_create((kv_pretokenizer)pre, &p));
        for (int trial = 0; p && trial < 200; trial++) {
            char text[64];
            const int len = test_randint(&r, 1, 63);
            for (int i = 0; i < len; i++) {
                const int k = test_randint(&r, 0, 5); /* letters, digits, spaces, newlines, raw bytes */
                text[i] = k == 0   ? (char)test_randint(&r, 'a', 'z')
                          : k == 1 ? (char)test_randint(&r, '0', '9')
                          : k == 2 ? ' '
                          : k == 3 ? '\n'
                                   : (char)test_randint(&r, 1, 255);
            }
            size_t *ends = NULL, cap = 0, prev = 0;
            const int n = kv_pretok_split(p, text, (size_t)len, &ends, &cap);
            int ok = n >= 1 && ends[n - 1] == (size_t)len;
            for (int i = 0; ok && i < n; prev = ends[i++]) ok = ends[i] > prev;
            CHECK(ok, "%s: %d pieces do not tile %d bytes (trial %d)", kv_pretokenizer_name((kv_pretokenizer)pre), n,
                  len, trial);
            free(ends);
        }
        kv_pretok_free(p);
    }

    /* Names: llama.cpp's, several per list; unknown is -1; none is the default. */
    CHECK(kv_pretokenizer_by_name("llama-bpe", 9) == KV_PRE_LLAMA3, "llama-bpe");
    CHECK(kv_pretokenizer_by_name("smaug-bpe", 9) == KV_PRE_LLAMA3, "smaug-bpe");
    CHECK(kv_pretokenizer_by_name("deepseek-r1-qwen", 16) == KV_PRE_QWEN2, "deepseek-r1-qwen");
    CHECK(kv_pretokenizer_by_name("command-r", 9) == KV_PRE_STARCODER, "command-r");
    CHECK(kv_pretokenizer_by_name("llama", 5) == -1, "a prefix is not a name");
    CHECK(kv_pretokenizer_by_name("", 0) == KV_PRE_DEFAULT, "no name");
    CHECK(!strcmp(kv_pretokenizer_name(KV_PRE_LLAMA3), "llama-bpe"), "%s", kv_pretokenizer_name(KV_PRE_LLAMA3));
    CHECK(kv_pretokenizer_ignores_merges("llama-bpe", 9) && !kv_pretokenizer_ignores_merges("smaug-bpe", 9) &&
              !kv_pretokenizer_ignores_merges("gpt-2", 5),
          "ignore_merges by name");
    /* tokenizer.json Split patterns (raw UTF-8) name the same lists */
    static const char ds3_words[] =
        "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}"
        "\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";
    const char *const ds3[] = {"\\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+", ds3_words};
    CHECK(kv_pretokenizer_by_regexes(ds3, 3) == KV_PRE_DEEPSEEK3, "deepseek-v3's three Splits: %d",
          kv_pretokenizer_by_regexes(ds3, 3));
    CHECK(kv_pretokenizer_by_regexes(ds3, 2) == -1, "a prefix of a list is not the list");
    static const char qwen_split[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                                     "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    const char *const qwen[] = {qwen_split};
    CHECK(kv_pretokenizer_by_regexes(qwen, 1) == KV_PRE_QWEN2, "qwen2's Split");
    /* a pattern whose last character is cut short is no match, and nothing past its end is read */
    char *cut = malloc(14);
    if (cut) {
        memcpy(cut, "\\p{N}{1,3}\xe4", 12), cut[12] = '\0';
        const char *const cut_list[] = {cut};
        CHECK(kv_pretokenizer_by_regexes(cut_list, 1) == -1, "a cut sequence matched");
        free(cut);
    }
    test_normalize();
    return test_finish("test_pretokenize");
}
