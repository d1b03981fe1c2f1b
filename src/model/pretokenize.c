#include "pretokenize.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_EXPRS = 6 };

/* Each vocabulary's expressions, applied in order (the patterns of the
 * models' own tokenizer.json files, under the tokenizer.ggml.pre names
 * llama.cpp gives them; several names share one list). */
static const struct {
    const char *names; /* '|'-separated; the first is written to GGUF */
    const char *exprs[MAX_EXPRS];
} pretokenizers[KV_PRE_COUNT] = {
    [KV_PRE_GPT2] = {"gpt-2|mpt|olmo|jais|trillion|granite-docling|phi-2|jina-es|jina-de|gigachat|jina-v2-es|jina-v2-"
                     "de|a.x-4.0|mellum|modern-bert|jina-v1-en|jina-v2-code|roberta-bpe",
                     {"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"}},
    [KV_PRE_LLAMA3] = {"llama-bpe|llama3|llama-v3|falcon3|falcon-h1|pixtral|midm-2.0|lfm2|jina-v5-nano|dbrx|smaug-bpe",
                       {"(?i:\'s|\'t|\'re|\'ve|\'m|\'ll|\'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                        "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    [KV_PRE_DEFAULT] = {"default",
                        {"[\\p{P}\\$\\+<=>\\^~\\|]+",
                         "\'s|\'t|\'re|\'ve|\'m|\'ll|\'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
                         "\\p{N}+", "[0-9][0-9][0-9]"}},
    [KV_PRE_DEEPSEEK_LLM] =
        {"deepseek-llm",
         {"[\r\n]",
          "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-"
          "ἕἘ-"
          "Ἕἠ-"
          "ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-"
          "ꞎꭰ-"
          "ꮿﬀ-"
          "ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
          "\\s?[!-/:-~！-／：-～‘-‟　-。]+", "\\s+$", "[一-龥ࠀ-一가-퟿]+", "\\p{N}+"}},
    [KV_PRE_DEEPSEEK_CODER] = {"deepseek-coder",
                               {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}"}},
    [KV_PRE_DEEPSEEK3] =
        {"deepseek-v3|hunyuan-dense|joyai-llm",
         {"\\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+",
          "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
          "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"}},
    [KV_PRE_FALCON] = {"falcon",
                       {"[\\p{P}\\$\\+<=>\\^~\\|`]+",
                        "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
                        "[0-9][0-9][0-9]"}},
    [KV_PRE_STARCODER] = {"starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b|mellum2",
                          {"\\p{N}", "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"}},
    [KV_PRE_QWEN2] = {"qwen2|deepseek-r1-qwen|kormo|f2llmv2|stablelm2|hunyuan|solar-open",
                      {"(?i:\'s|\'t|\'re|\'ve|\'m|\'ll|\'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                       "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    [KV_PRE_QWEN35] = {"qwen35",
                       {"(?i:\'s|\'t|\'re|\'ve|\'m|\'ll|\'d)|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| "
                        "?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    [KV_PRE_CHATGLM4] = {"glm4|chatglm-bpe",
                         {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{"
                          "N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    [KV_PRE_PORO] = {"poro-chat|bloom|gpt3-finnish", {" ?[^(\\s|.,!?…。，、।۔،)]+"}},
    [KV_PRE_VIKING] = {"viking", {" ?[^(\\s|.,!?…。，、।۔،)]+", "\\p{N}"}},
    [KV_PRE_JAIS2] =
        {"jais-2",
         {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
          "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s{512}(?!\\S)|\\s{256}(?!\\S)|\\s{128}(?!\\S)|\\s{64}(?!\\S)|"
          "\\s{32}(?!\\S)|\\s{16}(?!\\S)|\\s{8}(?!\\S)|\\s{4}(?!\\S)|\\s{1,2}(?!\\S)|\\s{1}"}},
    [KV_PRE_TEKKEN] = {"tekken",
                       {"[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|[^"
                        "\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}"
                        "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
};

struct kv_pretok {
    pcre2_code *code[MAX_EXPRS];
    int n;
};

static int name_in(const char *names, const char *name, size_t len) {
    for (const char *p = names; *p;) {
        const char *bar = strchr(p, '|');
        const size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && !memcmp(p, name, len)) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

int kv_pretokenizer_by_name(const char *name, size_t len) {
    if (!name || !len) return KV_PRE_DEFAULT;
    for (int i = 0; i < KV_PRE_COUNT; i++)
        if (name_in(pretokenizers[i].names, name, len)) return i;
    return -1;
}

int kv_pretokenizer_ignores_merges(const char *name, size_t len) {
    return name && name_in("llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2|jina-v5-nano|jais|tekken",
                           name, len);
}

const char *kv_pretokenizer_name(kv_pretokenizer p) {
    static char names[KV_PRE_COUNT][32];
    if ((unsigned)p >= KV_PRE_COUNT) return "default";
    if (!names[p][0]) {
        const char *n = pretokenizers[p].names;
        const size_t len = strcspn(n, "|");
        memcpy(names[p], n, len < 31 ? len : 31);
    }
    return names[p];
}

int kv_pretokenizer_by_regex(const char *regex, size_t len) {
    for (int i = 0; i < KV_PRE_COUNT; i++)
        if (!pretokenizers[i].exprs[1] && strlen(pretokenizers[i].exprs[0]) == len &&
            !memcmp(pretokenizers[i].exprs[0], regex, len))
            return i;
    return -1;
}

void kv_pretok_free(kv_pretok *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) pcre2_code_free(p->code[i]);
    free(p);
}

kvattn_status kv_pretok_create(kv_pretokenizer which, kv_pretok **out) {
    *out = NULL;
    if ((unsigned)which >= KV_PRE_COUNT)
        return kv_fail(KVATTN_ERR_INVALID_ARG, "pre-tokenizer %d does not exist", (int)which);
    kv_pretok *p = calloc(1, sizeof *p);
    if (!p) return kv_fail(KVATTN_ERR_NOMEM, "out of memory for a pre-tokenizer");
    for (int i = 0; i < MAX_EXPRS && pretokenizers[which].exprs[i]; i++) {
        int err;
        PCRE2_SIZE at;
        /* UCP: \s, \w, \d by Unicode properties; $ only at the very end, as in ECMAScript; text that is
         * not UTF-8 matches nothing where it is broken (its bytes stay pieces of their own) */
        p->code[i] =
            pcre2_compile((PCRE2_SPTR)pretokenizers[which].exprs[i], PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY | PCRE2_MATCH_INVALID_UTF, &err, &at, NULL);
        if (!p->code[i]) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(err, msg, sizeof msg);
            kv_pretok_free(p);
            return kv_fail(KVATTN_ERR_UNSUPPORTED, "pre-tokenizer %s: expression %d does not compile at %zu: %s",
                           kv_pretokenizer_name(which), i, (size_t)at, (const char *)msg);
        }
        p->n = i + 1;
    }
    *out = p;
    return KVATTN_OK;
}

static int push(size_t **ends, size_t *cap, int n, size_t end) {
    if ((size_t)n == *cap) {
        const size_t c = *cap ? 2 * *cap : 64;
        size_t *e = realloc(*ends, sizeof *e * c);
        if (!e) return -1;
        *ends = e, *cap = c;
    }
    (*ends)[n] = end;
    return n + 1;
}

/* The length of the UTF-8 sequence at p (1 for a stray byte). */
static size_t utf8_step(const unsigned char *p, size_t left) {
    const size_t n = *p < 0x80 ? 1 : *p >> 5 == 6 ? 2 : *p >> 4 == 14 ? 3 : *p >> 3 == 30 ? 4 : 1;
    return n <= left ? n : left;
}

int kv_pretok_split(const kv_pretok *p, const char *text, size_t len, size_t **ends, size_t *cap) {
    int n = 0;
    if (len == 0) return 0;
    if ((n = push(ends, cap, 0, len)) < 0) return -1;
    size_t *scratch = NULL, scap = 0;
    for (int e = 0; e < p->n; e++) {
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(p->code[e], NULL);
        if (!md) {
            free(scratch);
            return -1;
        }
        int m = 0;
        size_t start = 0;
        for (int k = 0; k < n && m >= 0; k++) { /* every piece, on its own */
            const size_t end = (*ends)[k], plen = end - start;
            const PCRE2_SPTR subject = (PCRE2_SPTR)(text + start);
            size_t at = 0, done = 0;
            while (at < plen && m >= 0) {
                const int rc = pcre2_match(p->code[e], subject, plen, at, 0, md, NULL);
                if (rc < 0) break;
                const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                if (ov[0] > done) m = push(&scratch, &scap, m, start + ov[0]); /* the text before the match */
                if (m >= 0 && ov[1] > ov[0]) m = push(&scratch, &scap, m, start + ov[1]);
                done = ov[1] > done ? ov[1] : done;
                at = ov[1] > ov[0] ? ov[1] : ov[0] + utf8_step(subject + ov[0], plen - ov[0]);
            }
            if (m >= 0 && done < plen) m = push(&scratch, &scap, m, end);
            start = end;
        }
        pcre2_match_data_free(md);
        if (m < 0) {
            free(scratch);
            return -1;
        }
        size_t *t = *ends; /* the new pieces become the current ones */
        *ends = scratch, scratch = t;
        const size_t c = *cap;
        *cap = scap, scap = c;
        n = m;
    }
    free(scratch);
    return n;
}
