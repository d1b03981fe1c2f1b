/* Chat formats: a conversation (role, content) turned into a model's tokens.
 *
 * The format is found from the markers a GGUF's tokenizer.chat_template
 * writes, not by running its Jinja. Special tokens are placed by id, and only
 * where the format puts them: a message that contains "<|im_start|>" gets
 * that text tokenized as text, so a user cannot forge a turn. Each stretch of
 * text between special tokens is tokenized on its own (SentencePiece adds its
 * space prefix to each, as llama.cpp does after a special token). */
#include "internal.h"
#include "kvattn.h"

#include <stdlib.h>
#include <string.h>

static const char *const format_names[] = {"plain", "llama-2", "llama-3", "chatml", "deepseek", "deepseek-3"};

const char *kvattn_chat_format_name(kvattn_chat_format f) {
    return f >= 0 && f < KVATTN_CHAT_COUNT ? format_names[f] : "unknown";
}

int kvattn_chat_format_from_name(const char *name) {
    for (int f = 0; name && f < KVATTN_CHAT_COUNT; f++)
        if (!strcmp(name, format_names[f])) return f;
    return -1;
}

kvattn_chat_format kvattn_chat_format_detect(const char *tmpl) {
    if (!tmpl) return KVATTN_CHAT_PLAIN;
    if (strstr(tmpl, "<|start_header_id|>") && strstr(tmpl, "<|end_header_id|>")) return KVATTN_CHAT_LLAMA3;
    if (strstr(tmpl, "<|im_start|>")) return KVATTN_CHAT_CHATML;
    if (strstr(tmpl, "<\xef\xbd\x9cUser\xef\xbd\x9c>") && strstr(tmpl, "<\xef\xbd\x9c"
                                                                       "Assistant\xef\xbd\x9c>"))
        return KVATTN_CHAT_DEEPSEEK3;
    if (strstr(tmpl, "[INST]")) return KVATTN_CHAT_LLAMA2;
    if (strstr(tmpl, "User: ") && strstr(tmpl, "Assistant:")) return KVATTN_CHAT_DEEPSEEK2;
    return KVATTN_CHAT_PLAIN;
}

/* Where the ids go, and the text not yet tokenized: each stretch between
 * two special tokens is tokenized whole, as the model reads it. */
typedef struct {
    const kvattn_tokenizer *tok;
    int32_t *ids;
    int max, n;
    kvattn_status st;
    char *text;
    size_t len, cap;
} token_out;

static void put_text(token_out *o, const char *text, size_t len) {
    if (o->st != KVATTN_OK || len == 0) return;
    if (o->len + len + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap < o->len + len + 1) cap *= 2;
        char *t = realloc(o->text, cap);
        if (!t) {
            o->st = kv_fail(KVATTN_ERR_NOMEM, "chat: out of memory for %zu bytes", o->len + len);
            return;
        }
        o->text = t, o->cap = cap;
    }
    memcpy(o->text + o->len, text, len);
    o->len += len;
    o->text[o->len] = '\0';
}

static void put_str(token_out *o, const char *text) { put_text(o, text, strlen(text)); }

/* Tokenizes the text gathered since the last special token. */
static void flush_text(token_out *o) {
    if (o->st != KVATTN_OK || o->len == 0) return;
    int got = 0;
    o->st = kvattn_tokenize(o->tok, o->text, 0, o->ids + o->n, o->max - o->n, &got);
    o->len = 0;
    if (o->st == KVATTN_OK) o->n += got;
    else if (o->st == KVATTN_ERR_INVALID_ARG)
        o->st = kv_fail(KVATTN_ERR_CACHE_FULL, "chat: the conversation needs more than %d tokens", o->max);
}

/* A special token by its piece; BOS and EOS by the vocabulary's ids, left out
 * where it has none. */
static void put_special(token_out *o, const char *piece) {
    flush_text(o);
    if (o->st != KVATTN_OK) return;
    const int id = !strcmp(piece, "[BOS]")   ? kvattn_tokenizer_bos(o->tok)
                   : !strcmp(piece, "[EOS]") ? kvattn_tokenizer_eos(o->tok)
                                             : kvattn_token_id(o->tok, piece);
    if (id < 0 && (!strcmp(piece, "[BOS]") || !strcmp(piece, "[EOS]"))) return;
    if (id < 0) {
        o->st = kv_fail(KVATTN_ERR_FORMAT, "chat: the vocabulary has no token '%s' that its chat format needs", piece);
        return;
    }
    if (o->n >= o->max) {
        o->st = kv_fail(KVATTN_ERR_CACHE_FULL, "chat: the conversation needs more than %d tokens", o->max);
        return;
    }
    o->ids[o->n++] = id;
}

/* The content without the white space around it (Llama 3's template trims). */
static void put_trimmed(token_out *o, const char *s) {
    size_t a = 0, b = strlen(s);
    while (a < b && strchr(" \t\r\n", s[a])) a++;
    while (b > a && strchr(" \t\r\n", s[b - 1])) b--;
    put_text(o, s + a, b - a);
}

static int is_role(const kvattn_chat_message *m, const char *role) { return !strcmp(m->role, role); }

kvattn_status kvattn_chat_tokenize(const kvattn_tokenizer *tok, kvattn_chat_format f, const kvattn_chat_message *msgs,
                                   int n_msgs, int add_cue, int32_t *ids, int max, int *n_ids) {
    if (n_ids) *n_ids = 0;
    if (!tok || (!msgs && n_msgs) || n_msgs < 0 || !ids || max < 0 || !n_ids)
        return kv_fail(KVATTN_ERR_INVALID_ARG, "chat: NULL argument");
    if (f < 0 || f >= KVATTN_CHAT_COUNT) return kv_fail(KVATTN_ERR_INVALID_ARG, "chat: no format %d", (int)f);
    for (int i = 0; i < n_msgs; i++)
        if (!msgs[i].role || !msgs[i].content)
            return kv_fail(KVATTN_ERR_INVALID_ARG, "chat: message %d has no role or no content", i);
    token_out o = {tok, ids, max, 0, KVATTN_OK, NULL, 0, 0};
    switch (f) {
    case KVATTN_CHAT_PLAIN: /* the contents one after another, a line each */
        put_special(&o, "[BOS]");
        for (int i = 0; i < n_msgs; i++) put_str(&o, msgs[i].content), put_str(&o, i + 1 < n_msgs ? "\n" : "");
        break;
    case KVATTN_CHAT_LLAMA2: { /* <s>[INST] <<SYS>>\ns\n<</SYS>>\n\nu [/INST] a</s><s>[INST] u [/INST] */
        int open = 0;          /* a turn's text has begun (after its BOS) */
        for (int i = 0; i < n_msgs; i++) {
            const kvattn_chat_message *m = &msgs[i];
            if (!open) put_special(&o, "[BOS]"), open = 1;
            if (is_role(m, "assistant")) {
                if (o.len == 0) put_str(&o, "[INST]  [/INST]");
                put_str(&o, " "), put_str(&o, m->content), put_special(&o, "[EOS]");
                open = 0;
            } else if (is_role(m, "system")) { /* shares its [INST] with the user message after it */
                put_str(&o, "[INST] <<SYS>>\n"), put_str(&o, m->content), put_str(&o, "\n<</SYS>>\n\n");
                if (i + 1 < n_msgs && is_role(&msgs[i + 1], "user")) put_str(&o, msgs[++i].content);
                put_str(&o, " [/INST]");
            } else {
                put_str(&o, "[INST] "), put_str(&o, m->content), put_str(&o, " [/INST]");
            }
        }
        break;
    }
    case KVATTN_CHAT_LLAMA3:
        put_special(&o, "[BOS]");
        for (int i = 0; i < n_msgs; i++) {
            put_special(&o, "<|start_header_id|>"), put_str(&o, msgs[i].role), put_special(&o, "<|end_header_id|>");
            put_str(&o, "\n\n"), put_trimmed(&o, msgs[i].content), put_special(&o, "<|eot_id|>");
        }
        if (add_cue)
            put_special(&o, "<|start_header_id|>"), put_str(&o, "assistant"), put_special(&o, "<|end_header_id|>"),
                put_str(&o, "\n\n");
        break;
    case KVATTN_CHAT_CHATML:
        for (int i = 0; i < n_msgs; i++) {
            put_special(&o, "<|im_start|>"), put_str(&o, msgs[i].role), put_str(&o, "\n");
            put_str(&o, msgs[i].content), put_special(&o, "<|im_end|>"), put_str(&o, "\n");
        }
        if (add_cue) put_special(&o, "<|im_start|>"), put_str(&o, "assistant\n");
        break;
    case KVATTN_CHAT_DEEPSEEK2: /* DeepSeek-V2: "User: u\n\nAssistant: a<EOS>" */
        put_special(&o, "[BOS]");
        for (int i = 0; i < n_msgs; i++) {
            const kvattn_chat_message *m = &msgs[i];
            if (is_role(m, "user")) put_str(&o, "User: "), put_str(&o, m->content), put_str(&o, "\n\n");
            else if (is_role(m, "assistant"))
                put_str(&o, "Assistant: "), put_str(&o, m->content), put_special(&o, "[EOS]");
            else put_str(&o, m->content), put_str(&o, "\n\n");
        }
        if (add_cue) put_str(&o, "Assistant:");
        break;
    case KVATTN_CHAT_DEEPSEEK3: /* DeepSeek-V3: "<｜User｜>u<｜Assistant｜>a<EOS>" */
        put_special(&o, "[BOS]");
        for (int i = 0; i < n_msgs; i++) {
            const kvattn_chat_message *m = &msgs[i];
            if (is_role(m, "user")) put_special(&o, "<\xef\xbd\x9cUser\xef\xbd\x9c>"), put_str(&o, m->content);
            else if (is_role(m, "assistant"))
                put_special(&o, "<\xef\xbd\x9c"
                                "Assistant\xef\xbd\x9c>"),
                    put_str(&o, m->content), put_special(&o, "[EOS]");
            else put_str(&o, m->content), put_str(&o, "\n\n");
        }
        if (add_cue)
            put_special(&o, "<\xef\xbd\x9c"
                            "Assistant\xef\xbd\x9c>");
        break;
    default: break;
    }
    flush_text(&o);
    free(o.text);
    if (o.st == KVATTN_OK) *n_ids = o.n;
    return o.st;
}

int kvattn_chat_end_token(const kvattn_tokenizer *tok, kvattn_chat_format f) {
    if (!tok) return -1;
    if (f == KVATTN_CHAT_LLAMA3) return kvattn_token_id(tok, "<|eot_id|>");
    if (f == KVATTN_CHAT_CHATML) return kvattn_token_id(tok, "<|im_end|>");
    return -1;
}

kvattn_status kvattn_chat_format_check(const kvattn_tokenizer *tok, kvattn_chat_format f) {
    const kvattn_chat_message probe[] = {{"system", "s"}, {"user", "u"}, {"assistant", "a"}, {"user", "u"}};
    int32_t ids[256];
    int n = 0;
    return kvattn_chat_tokenize(tok, f, probe, 4, 1, ids, 256, &n);
}
