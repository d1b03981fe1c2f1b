#include "pretokenize.h"

#include "utf8.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_EXPRS = 6 };

/* Each vocabulary's expressions, applied in order (the patterns of the
 * models' own tokenizer.json files, under the tokenizer.ggml.pre names
 * llama.cpp gives them; several names share one list). Code points beyond
 * ASCII are written \x{...}, which PCRE2 reads as the character. */
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
          "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}\\x{295}-"
          "\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-"
          "\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-"
          "\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{"
          "1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{"
          "1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-"
          "\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{"
          "1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}"
          "\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{"
          "2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}"
          "-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}"
          "\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{"
          "104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
          "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+", "\\s+$",
          "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+", "\\p{N}+"}},
    [KV_PRE_DEEPSEEK_CODER] = {"deepseek-coder",
                               {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+",
                                "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+", "\\p{N}"}},
    [KV_PRE_DEEPSEEK3] =
        {"deepseek-v3|hunyuan-dense|joyai-llm",
         {"\\p{N}{1,3}", "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
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
    [KV_PRE_PORO] = {"poro-chat|bloom|gpt3-finnish",
                     {" ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+"}},
    [KV_PRE_VIKING] = {"viking",
                       {" ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+", "\\p{N}"}},
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

/* The next code point of a table expression (\\x{...} read as its character)
 * or of a UTF-8 string, never past its NUL; advances *s. */
static uint32_t next_cp(const char **s, int table) {
    const unsigned char *p = (const unsigned char *)*s;
    if (table && p[0] == '\\' && p[1] == 'x' && p[2] == '{') {
        char *end;
        const unsigned long cp = strtoul((const char *)p + 3, &end, 16);
        if (*end == '}') {
            *s = end + 1;
            return (uint32_t)cp;
        }
    }
    size_t left = 0; /* a sequence cut by the NUL counts as one byte */
    while (left < 4 && p[left]) left++;
    int n;
    const uint32_t cp = kv_utf8_decode(*s, left, &n);
    *s += n;
    return cp;
}

static int same_expression(const char *table, const char *utf8) {
    while (*table && *utf8)
        if (next_cp(&table, 1) != next_cp(&utf8, 0)) return 0;
    return !*table && !*utf8;
}

int kv_pretokenizer_by_regexes(const char *const *regex, int n) {
    for (int i = 0; i < KV_PRE_COUNT; i++) {
        int k = 0;
        while (k < n && k < MAX_EXPRS && pretokenizers[i].exprs[k] &&
               same_expression(pretokenizers[i].exprs[k], regex[k]))
            k++;
        if (k == n && (k == MAX_EXPRS || !pretokenizers[i].exprs[k])) return i;
    }
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
                int step; /* an empty match: past one character */
                kv_utf8_decode((const char *)subject + ov[0], plen - ov[0], &step);
                at = ov[1] > ov[0] ? ov[1] : ov[0] + (size_t)step;
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
