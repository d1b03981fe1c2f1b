/* The OpenAI API's requests and answers (openai.h). Every field a request
 * may carry is checked for its type and range before anything runs; the
 * fields kvattn does not do (logprobs, tools, n > 1, ...) are refused by
 * name rather than ignored, so a client never gets an answer to a question
 * it did not ask. */
#define _POSIX_C_SOURCE 200809L
#include "serve/openai.h"

#include "internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int serve_error_set(serve_error *err, int status, const char *type, const char *code, const char *param,
                    const char *fmt, ...) {
    err->status = status, err->type = type, err->code = code;
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return status;
}

#define BAD(param, ...) serve_error_set(err, 400, "invalid_request_error", NULL, param, __VA_ARGS__)

void serve_request_free(serve_request *r) {
    if (!r) return;
    for (int i = 0; i < r->n_stops; i++) free(r->stops[i]);
    free(r->prompt);
    memset(r, 0, sizeof *r);
}

/* ---- checking fields ------------------------------------------------------ */

static const char *json_type(const cJSON *v) {
    return cJSON_IsNull(v)     ? "null"
           : cJSON_IsBool(v)   ? "a boolean"
           : cJSON_IsNumber(v) ? "a number"
           : cJSON_IsString(v) ? "a string"
           : cJSON_IsArray(v)  ? "an array"
                               : "an object";
}

/* A number field within [lo, hi], or absent/null (1: found). */
static int get_number(const cJSON *root, const char *name, double lo, double hi, double *out, serve_error *err,
                      int *bad) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v)) return *bad = BAD(name, "'%s' must be a number, not %s", name, json_type(v)), 0;
    const double x = v->valuedouble;
    if (!isfinite(x) || x < lo || x > hi) return *bad = BAD(name, "'%s' = %g is outside [%g, %g]", name, x, lo, hi), 0;
    *out = x;
    return 1;
}

/* An integer field within [lo, hi] (a number with no fraction). */
static int get_int(const cJSON *root, const char *name, double lo, double hi, long long *out, serve_error *err,
                   int *bad) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v)) return *bad = BAD(name, "'%s' must be an integer, not %s", name, json_type(v)), 0;
    const double x = v->valuedouble;
    if (!isfinite(x) || x != floor(x)) return *bad = BAD(name, "'%s' = %g must be an integer", name, x), 0;
    if (x < lo || x > hi) return *bad = BAD(name, "'%s' = %.0f is outside [%.0f, %.0f]", name, x, lo, hi), 0;
    *out = (long long)x;
    return 1;
}

static int get_bool(const cJSON *root, const char *name, int *out, serve_error *err, int *bad) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) return *bad = BAD(name, "'%s' must be a boolean, not %s", name, json_type(v)), 0;
    *out = cJSON_IsTrue(v);
    return 1;
}

/* Fields kvattn does not do, refused when they ask for something. */
static int refuse_unsupported(const cJSON *root, serve_kind kind, serve_error *err) {
    static const char *const never[] = {"tools", "functions", "tool_choice", "function_call", "suffix", NULL};
    for (int i = 0; never[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, never[i]);
        if (v && !cJSON_IsNull(v) && !(cJSON_IsArray(v) && cJSON_GetArraySize(v) == 0))
            return BAD(never[i], "'%s' is not supported by this server", never[i]);
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "logprobs");
    if (v && !cJSON_IsNull(v) && !cJSON_IsFalse(v) &&
        !(kind == SERVE_COMPLETION && cJSON_IsNumber(v) && v->valuedouble == 0))
        return BAD("logprobs", "'logprobs' is not supported by this server");
    v = cJSON_GetObjectItemCaseSensitive(root, "echo");
    if (v && cJSON_IsTrue(v)) return BAD("echo", "'echo' is not supported by this server");
    v = cJSON_GetObjectItemCaseSensitive(root, "best_of");
    if (v && !cJSON_IsNull(v) && !(cJSON_IsNumber(v) && v->valuedouble == 1))
        return BAD("best_of", "'best_of' must be 1 on this server");
    v = cJSON_GetObjectItemCaseSensitive(root, "logit_bias");
    if (v && !cJSON_IsNull(v) && !(cJSON_IsObject(v) && !v->child))
        return BAD("logit_bias", "'logit_bias' is not supported by this server");
    v = cJSON_GetObjectItemCaseSensitive(root, "response_format");
    if (v && !cJSON_IsNull(v)) {
        const cJSON *t = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, "type") : NULL;
        if (!cJSON_IsString(t) || strcmp(t->valuestring, "text"))
            return BAD("response_format", "'response_format' other than {\"type\": \"text\"} is not supported");
    }
    return 0;
}

static int parse_stops(const cJSON *root, serve_request *r, serve_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "stop");
    if (!v || cJSON_IsNull(v)) return 0;
    const cJSON *one = cJSON_IsString(v) ? v : NULL;
    if (!one && !cJSON_IsArray(v))
        return BAD("stop", "'stop' must be a string or an array of strings, not %s", json_type(v));
    if (!one && cJSON_GetArraySize(v) > SERVE_MAX_STOPS)
        return BAD("stop", "'stop' has %d strings; at most %d", cJSON_GetArraySize(v), SERVE_MAX_STOPS);
    for (const cJSON *s = one ? one : v->child; s; s = one ? NULL : s->next) {
        if (!cJSON_IsString(s)) return BAD("stop", "'stop' must hold strings, not %s", json_type(s));
        const size_t n = strlen(s->valuestring);
        if (n == 0) return BAD("stop", "'stop' holds an empty string");
        if (n > SERVE_MAX_STOP_LEN)
            return BAD("stop", "a 'stop' string is %zu bytes; at most %d", n, SERVE_MAX_STOP_LEN);
        if (!(r->stops[r->n_stops] = strdup(s->valuestring)))
            return serve_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
        r->n_stops++;
    }
    return 0;
}

/* ---- the prompt ----------------------------------------------------------- */

static int too_long(serve_error *err, const char *param, int n_ctx) {
    return serve_error_set(err, 400, "invalid_request_error", "context_length_exceeded", param,
                           "the prompt is longer than the context of %d tokens", n_ctx);
}

/* "prompt": a string, an array of one string, an array of token ids, or an
 * array of one such array. */
static int parse_prompt(const cJSON *root, const serve_context *ctx, serve_request *r, serve_error *err) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (!p || cJSON_IsNull(p)) return BAD("prompt", "'prompt' is required");
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && (cJSON_IsString(p->child) || cJSON_IsArray(p->child)))
        p = p->child;
    else if (cJSON_IsArray(p) && cJSON_GetArraySize(p) > 1 && !cJSON_IsNumber(p->child))
        return BAD("prompt", "'prompt' holds %d prompts; this server takes one a request", cJSON_GetArraySize(p));
    const int cap = ctx->n_ctx + 1;
    if (!(r->prompt = malloc(sizeof(int32_t) * (size_t)cap)))
        return serve_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
    if (cJSON_IsString(p)) {
        kvattn_status st = kvattn_tokenize(ctx->tok, p->valuestring, 1, r->prompt, cap, &r->n_prompt);
        if (st == KVATTN_ERR_INVALID_ARG) return too_long(err, "prompt", ctx->n_ctx);
        if (st != KVATTN_OK)
            return serve_error_set(err, 500, "server_error", NULL, "prompt", "tokenizing the prompt: %s",
                                   kvattn_last_error());
    } else if (cJSON_IsArray(p)) {
        const int V = kvattn_tokenizer_vocab_size(ctx->tok);
        int i = 0;
        for (const cJSON *t = p->child; t; t = t->next, i++) {
            if (i >= cap) return too_long(err, "prompt", ctx->n_ctx);
            if (!cJSON_IsNumber(t) || t->valuedouble != floor(t->valuedouble) || t->valuedouble < 0 ||
                t->valuedouble >= V)
                return BAD("prompt", "'prompt' token %d is not a token id in [0, %d)", i, V);
            r->prompt[r->n_prompt++] = (int32_t)t->valuedouble;
        }
    } else {
        return BAD("prompt", "'prompt' must be a string or an array of token ids, not %s", json_type(p));
    }
    return 0;
}

/* "content": a string, null (an assistant's), or an array of {"type":
 * "text", "text": ...} parts, joined. *owned is malloc'd when parts were joined. */
static int message_text(const cJSON *c, int i, const char **text, char **owned, serve_error *err) {
    char param[64];
    snprintf(param, sizeof param, "messages[%d].content", i);
    *owned = NULL;
    if (!c || cJSON_IsNull(c)) return *text = "", 0;
    if (cJSON_IsString(c)) return *text = c->valuestring, 0;
    if (!cJSON_IsArray(c))
        return BAD(param, "'%s' must be a string or an array of text parts, not %s", param, json_type(c));
    size_t len = 0;
    for (const cJSON *part = c->child; part; part = part->next) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsObject(part) || !cJSON_IsString(type) || strcmp(type->valuestring, "text") || !cJSON_IsString(t))
            return BAD(param, "'%s' may hold only {\"type\": \"text\", \"text\": ...} parts", param);
        len += strlen(t->valuestring);
    }
    if (!(*owned = malloc(len + 1))) return serve_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
    len = 0;
    for (const cJSON *part = c->child; part; part = part->next) {
        const char *t = cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring;
        memcpy(*owned + len, t, strlen(t));
        len += strlen(t);
    }
    (*owned)[len] = '\0';
    *text = *owned;
    return 0;
}

static int parse_messages(const cJSON *root, const serve_context *ctx, serve_request *r, serve_error *err) {
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!ms || cJSON_IsNull(ms)) return BAD("messages", "'messages' is required");
    if (!cJSON_IsArray(ms)) return BAD("messages", "'messages' must be an array, not %s", json_type(ms));
    const int n = cJSON_GetArraySize(ms);
    if (n == 0) return BAD("messages", "'messages' is empty");
    kvattn_chat_message *msgs = calloc((size_t)n, sizeof *msgs);
    char **owned = calloc((size_t)n, sizeof *owned);
    int status = msgs && owned ? 0 : serve_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
    int i = 0;
    for (const cJSON *m = ms->child; m && !status; m = m->next, i++) {
        char param[64];
        snprintf(param, sizeof param, "messages[%d]", i);
        if (!cJSON_IsObject(m)) {
            status = BAD(param, "'%s' must be an object, not %s", param, json_type(m));
            break;
        }
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        snprintf(param, sizeof param, "messages[%d].role", i);
        if (!cJSON_IsString(role)) {
            status = BAD(param, "'%s' must be a string", param);
            break;
        }
        const char *name = role->valuestring;
        if (!strcmp(name, "developer")) name = "system"; /* the newer name of the same role */
        if (strcmp(name, "system") && strcmp(name, "user") && strcmp(name, "assistant")) {
            status = BAD(param, "'%s' = '%.32s' is not one of system, developer, user, assistant", param, name);
            break;
        }
        msgs[i].role = name;
        status = message_text(cJSON_GetObjectItemCaseSensitive(m, "content"), i, &msgs[i].content, &owned[i], err);
    }
    if (!status) {
        const int cap = ctx->n_ctx + 1;
        if (!(r->prompt = malloc(sizeof(int32_t) * (size_t)cap))) {
            status = serve_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
        } else {
            kvattn_status st =
                kvattn_chat_tokenize(ctx->tok, ctx->chat_format, msgs, n, 1, r->prompt, cap, &r->n_prompt);
            if (st == KVATTN_ERR_CACHE_FULL) status = too_long(err, "messages", ctx->n_ctx);
            else if (st != KVATTN_OK)
                status = serve_error_set(err, 500, "server_error", NULL, "messages", "the chat format: %s",
                                         kvattn_last_error());
        }
    }
    for (int k = 0; owned && k < n; k++) free(owned[k]);
    free(owned), free(msgs);
    return status;
}

/* ---- the request ---------------------------------------------------------- */

static int parse_fields(const cJSON *root, serve_kind kind, const serve_context *ctx, serve_request *r,
                        serve_error *err) {
    if (!cJSON_IsObject(root)) return BAD(NULL, "the request body must be a JSON object, not %s", json_type(root));
    int bad = 0;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (model && !cJSON_IsNull(model)) {
        if (!cJSON_IsString(model)) return BAD("model", "'model' must be a string, not %s", json_type(model));
        if (strcmp(model->valuestring, ctx->model_id))
            return serve_error_set(err, 404, "invalid_request_error", "model_not_found", "model",
                                   "the model '%.128s' does not exist; this server has '%.128s'", model->valuestring,
                                   ctx->model_id);
    }
    if ((bad = refuse_unsupported(root, kind, err))) return bad;
    long long n = 1;
    get_int(root, "n", 1, 1e9, &n, err, &bad);
    if (bad) return bad;
    if (n != 1) return BAD("n", "'n' = %lld: this server gives one choice a request", n);
    get_bool(root, "stream", &r->stream, err, &bad);
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (!bad && so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so)) return BAD("stream_options", "'stream_options' must be an object");
        get_bool(so, "include_usage", &r->include_usage, err, &bad);
    }
    /* the length: max_tokens (or the chat API's newer max_completion_tokens) */
    long long max_tokens = ctx->default_max_tokens > 0 ? ctx->default_max_tokens : ctx->n_ctx;
    if (!bad && kind == SERVE_CHAT) get_int(root, "max_completion_tokens", 1, ctx->n_ctx, &max_tokens, err, &bad);
    if (!bad) get_int(root, "max_tokens", 1, ctx->n_ctx, &max_tokens, err, &bad);
    r->max_tokens = (int)max_tokens;
    /* sampling */
    r->sampler = ctx->sampler;
    double x;
    long long k;
    if (!bad && get_number(root, "temperature", 0, 100, &x, err, &bad)) r->sampler.temperature = (float)x;
    if (!bad && get_number(root, "top_p", 0, 1, &x, err, &bad)) r->sampler.top_p = (float)x;
    if (!bad && get_int(root, "top_k", 0, 1e9, &k, err, &bad)) r->sampler.top_k = (int)k;
    if (!bad && get_number(root, "min_p", 0, 1, &x, err, &bad)) r->sampler.min_p = (float)x;
    if (!bad && get_number(root, "presence_penalty", -2, 2, &x, err, &bad)) r->sampler.presence_penalty = (float)x;
    if (!bad && get_number(root, "frequency_penalty", -2, 2, &x, err, &bad)) r->sampler.frequency_penalty = (float)x;
    if (!bad && get_number(root, "repeat_penalty", 0, 100, &x, err, &bad)) r->sampler.repeat_penalty = (float)x;
    if (!bad && get_number(root, "seed", -9223372036854775808.0, 18446744073709549568.0, &x, err, &bad)) {
        if (x != floor(x)) return BAD("seed", "'seed' = %g must be an integer", x);
        r->sampler.seed = x >= 0 ? (uint64_t)x : (uint64_t)(int64_t)x; /* a negative seed as its two's complement */
        r->seeded = 1;
    }
    if (bad) return bad;
    if ((bad = parse_stops(root, r, err))) return bad;
    return kind == SERVE_CHAT ? parse_messages(root, ctx, r, err) : parse_prompt(root, ctx, r, err);
}

int serve_parse_request(const char *body, size_t len, serve_kind kind, const serve_context *ctx, serve_request *out,
                        serve_error *err) {
    memset(out, 0, sizeof *out);
    out->kind = kind;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!root) {
        const size_t at = end && end >= body ? (size_t)(end - body) : 0;
        return BAD(NULL, "the request body is not valid JSON (at byte %zu of %zu)", at, len);
    }
    const int status = parse_fields(root, kind, ctx, out, err);
    cJSON_Delete(root);
    if (status) {
        serve_request_free(out);
        return status;
    }
    if (out->n_prompt < 1)
        return serve_request_free(out), BAD(kind == SERVE_CHAT ? "messages" : "prompt", "the prompt has no token");
    return 0;
}

/* ---- the text released ---------------------------------------------------- */

int serve_text_add(serve_text *t, const char *bytes, size_t n, char *const *stops, int n_stops) {
    if (t->stopped) return 1;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + n + 1) cap *= 2;
        char *raw = realloc(t->raw, cap);
        if (!raw) return -1;
        t->raw = raw, t->cap = cap;
    }
    memcpy(t->raw + t->len, bytes, n);
    t->len += n;
    t->raw[t->len] = '\0';
    /* the earliest stop string in what has not been released (none can begin before it) */
    size_t cut = t->len;
    for (int s = 0; s < n_stops; s++) {
        const size_t sl = strlen(stops[s]);
        for (size_t i = t->released; i + sl <= t->len && i < cut; i++)
            if (!memcmp(t->raw + i, stops[s], sl)) {
                cut = i;
                break;
            }
    }
    if (cut == t->len) return 0;
    t->len = cut;
    t->raw[cut] = '\0';
    t->stopped = 1;
    return 1;
}

size_t serve_text_ready(const serve_text *t, char *const *stops, int n_stops, int final) {
    if (final || t->stopped) return t->len;
    size_t end = t->len;
    /* hold back the longest tail that begins a stop string */
    for (int s = 0; s < n_stops; s++) {
        const size_t sl = strlen(stops[s]);
        for (size_t k = sl - 1; k > 0; k--)
            if (k <= t->len - t->released && !memcmp(t->raw + t->len - k, stops[s], k)) {
                if (t->len - k < end) end = t->len - k;
                break;
            }
    }
    /* and a UTF-8 sequence not yet complete */
    for (size_t back = 1; back <= 3 && back <= end - t->released; back++) {
        const unsigned char c = (unsigned char)t->raw[end - back];
        if ((c & 0xc0) == 0x80) continue; /* a continuation byte: look further back */
        const int need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        if ((size_t)need > back) end -= back;
        break;
    }
    return end < t->released ? t->released : end;
}

void serve_text_free(serve_text *t) {
    free(t->raw);
    memset(t, 0, sizeof *t);
}

/* ---- the answers ---------------------------------------------------------- */

/* The length of a valid UTF-8 sequence at s (≤ n bytes), or 0. */
static int utf8_valid(const unsigned char *s, size_t n) {
    const unsigned char c = s[0];
    int len;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) len = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef) len = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, cp = c & 0x07;
    else return 0;
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

char *serve_utf8_clean(const char *s, size_t len) {
    char *out = malloc(len * 3 + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        const int l = utf8_valid((const unsigned char *)s + i, len - i);
        if (l > 0 && s[i] != '\0') {
            memcpy(out + o, s + i, (size_t)l);
            o += (size_t)l, i += (size_t)l;
        } else { /* a broken byte (or NUL, which a C string cannot carry) */
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3, i += l > 0 ? (size_t)l : 1;
        }
    }
    out[o] = '\0';
    return out;
}

static cJSON *answer_head(const serve_answer *a, int chunk) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "id", a->id);
    cJSON_AddStringToObject(o, "object",
                            a->kind == SERVE_COMPLETION ? "text_completion"
                            : chunk                     ? "chat.completion.chunk"
                                                        : "chat.completion");
    cJSON_AddNumberToObject(o, "created", (double)a->created);
    cJSON_AddStringToObject(o, "model", a->model);
    cJSON_AddStringToObject(o, "system_fingerprint", "kvattn-" KVATTN_VERSION);
    return o;
}

static void add_usage(cJSON *o, int prompt_tokens, int completion_tokens) {
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    if (!u) return;
    cJSON_AddNumberToObject(u, "prompt_tokens", prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", completion_tokens);
    cJSON_AddNumberToObject(u, "total_tokens", prompt_tokens + completion_tokens);
}

/* choices[0] with the text as "text", "message" or "delta". */
static int add_choice(cJSON *o, const serve_answer *a, const char *text, size_t len, const char *finish, int chunk,
                      int role_only) {
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    cJSON *c = cJSON_CreateObject();
    char *clean = serve_utf8_clean(text ? text : "", text ? len : 0);
    if (!choices || !c || !clean) {
        cJSON_Delete(c), free(clean);
        return -1;
    }
    cJSON_AddItemToArray(choices, c);
    cJSON_AddNumberToObject(c, "index", 0);
    if (a->kind == SERVE_COMPLETION) {
        cJSON_AddStringToObject(c, "text", clean);
    } else {
        cJSON *m = cJSON_AddObjectToObject(c, chunk ? "delta" : "message");
        if (m && (!chunk || role_only)) cJSON_AddStringToObject(m, "role", "assistant");
        if (m && (!chunk || role_only || len > 0 || !finish)) cJSON_AddStringToObject(m, "content", clean);
    }
    free(clean);
    cJSON_AddNullToObject(c, "logprobs");
    if (finish) cJSON_AddStringToObject(c, "finish_reason", finish);
    else cJSON_AddNullToObject(c, "finish_reason");
    return 0;
}

static char *print_and_free(cJSON *o) {
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

char *serve_answer_json(const serve_answer *a, const char *text, size_t len, const char *finish, int prompt_tokens,
                        int completion_tokens) {
    cJSON *o = answer_head(a, 0);
    if (!o || add_choice(o, a, text, len, finish, 0, 0)) return cJSON_Delete(o), NULL;
    add_usage(o, prompt_tokens, completion_tokens);
    return print_and_free(o);
}

/* "data: JSON\n\n" */
static char *event(char *json) {
    if (!json) return NULL;
    const size_t n = strlen(json);
    char *e = malloc(n + 9);
    if (e) memcpy(e, "data: ", 6), memcpy(e + 6, json, n), memcpy(e + 6 + n, "\n\n", 3);
    free(json);
    return e;
}

char *serve_chunk_event(const serve_answer *a, const char *text, size_t len, const char *finish, int role_only) {
    cJSON *o = answer_head(a, 1);
    if (!o || add_choice(o, a, text, len, finish, 1, role_only)) return cJSON_Delete(o), NULL;
    return event(print_and_free(o));
}

char *serve_usage_event(const serve_answer *a, int prompt_tokens, int completion_tokens) {
    cJSON *o = answer_head(a, 1);
    if (!o) return NULL;
    cJSON_AddArrayToObject(o, "choices");
    add_usage(o, prompt_tokens, completion_tokens);
    return event(print_and_free(o));
}

char *serve_error_json(const serve_error *err) {
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    if (!e) return cJSON_Delete(o), NULL;
    char *clean = serve_utf8_clean(err->message, strlen(err->message));
    cJSON_AddStringToObject(e, "message", clean ? clean : "");
    free(clean);
    cJSON_AddStringToObject(e, "type", err->type);
    if (err->param[0]) cJSON_AddStringToObject(e, "param", err->param);
    else cJSON_AddNullToObject(e, "param");
    if (err->code) cJSON_AddStringToObject(e, "code", err->code);
    else cJSON_AddNullToObject(e, "code");
    return print_and_free(o);
}

char *serve_models_json(const char *model_id, long long created, int n_ctx) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(o, "data"), *m = cJSON_CreateObject();
    if (!data || !m) return cJSON_Delete(m), print_and_free(o);
    cJSON_AddItemToArray(data, m);
    cJSON_AddStringToObject(m, "id", model_id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)created);
    cJSON_AddStringToObject(m, "owned_by", "kvattn");
    cJSON_AddNumberToObject(m, "context_length", n_ctx);
    return print_and_free(o);
}
