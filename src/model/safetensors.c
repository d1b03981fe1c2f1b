/* Hugging Face checkpoints: config.json + model.safetensors (or shards named
 * by model.safetensors.index.json) + tokenizer.json: Llama, Mistral, Mixtral,
 * Qwen2, Qwen3 and DeepSeek-V2/V3 layouts. HF stores
 * Q/K rows for rotate_half RoPE, so the pairing is half-split. Tensors are
 * used in place when their dtype and alignment allow, else converted once. */
#define _POSIX_C_SOURCE 200809L
#include "arch_tensors.h"
#include "loaders.h"
#include "tokenizer.h"

#include "kernels/kernels.h"
#include "kernels/vec.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_HEADER (100u << 20)

typedef struct {
    char name[160];
    kvattn_type type;
    uint64_t shape[4];
    int n_dims;
    const uint8_t *data;
    uint64_t bytes;
} st_tensor;

typedef struct {
    st_tensor *t;
    int n, cap;
    kvattn_model *m;
    const char *dir;
    kvattn_status st;
} st_index;

/* Adds every tensor of one .safetensors file to the index. */
static void index_file(st_index *ix, const char *path) {
    if (ix->st != KVATTN_OK) return;
    if (ix->m->n_maps == (int)(sizeof ix->m->maps / sizeof ix->m->maps[0])) {
        ix->st = kv_fail(KVATTN_ERR_UNSUPPORTED, "%s: more than 64 shards", path);
        return;
    }
    kv_mapping map;
    if ((ix->st = kv_map_file(path, &map)) != KVATTN_OK) return;
    ix->m->maps[ix->m->n_maps++] = map;
    uint64_t hlen;
    if (map.size < 8 || (memcpy(&hlen, map.addr, 8), hlen > MAX_HEADER) || hlen > map.size - 8) {
        ix->st = kv_fail(KVATTN_ERR_FORMAT, "%s: the header length is missing or runs past the end of the file", path);
        return;
    }
    const uint8_t *base = (const uint8_t *)map.addr + 8 + hlen;
    uint64_t data_size = map.size - 8 - hlen;
    cJSON *h = cJSON_ParseWithLength((const char *)map.addr + 8, (size_t)hlen);
    if (!h || !cJSON_IsObject(h)) {
        cJSON_Delete(h);
        ix->st = kv_fail(KVATTN_ERR_FORMAT, "%s: the header is not a JSON object", path);
        return;
    }
    for (cJSON *e = h->child; e && ix->st == KVATTN_OK; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) continue;
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype"),
                    *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
            cJSON_GetArraySize(sh) > 4 || strlen(e->string) >= sizeof ix->t[0].name) {
            ix->st = kv_fail(KVATTN_ERR_FORMAT, "%s: tensor '%.100s': dtype, shape or data_offsets malformed", path,
                             e->string);
            break;
        }
        st_tensor t = {{0}, KVATTN_TYPE_COUNT, {1, 1, 1, 1}, cJSON_GetArraySize(sh), NULL, 0};
        snprintf(t.name, sizeof t.name, "%s", e->string);
        if (!strcmp(dt->valuestring, "F32")) t.type = KVATTN_TYPE_F32;
        else if (!strcmp(dt->valuestring, "F16")) t.type = KVATTN_TYPE_F16;
        else if (!strcmp(dt->valuestring, "BF16")) t.type = KVATTN_TYPE_BF16;
        uint64_t numel = 1;
        for (int d = 0; d < t.n_dims; d++) {
            const cJSON *v = cJSON_GetArrayItem(sh, d);
            double x = cJSON_IsNumber(v) ? v->valuedouble : -1;
            if (!(x >= 1 && x <= (double)((uint64_t)1 << 40)) || numel > ((uint64_t)1 << 50) / (uint64_t)x) {
                ix->st = kv_fail(KVATTN_ERR_FORMAT, "%s: tensor '%s': shape entry %d is invalid", path, t.name, d);
                break;
            }
            t.shape[d] = (uint64_t)x;
            numel *= t.shape[d];
        }
        double b = cJSON_GetArrayItem(off, 0)->valuedouble, en = cJSON_GetArrayItem(off, 1)->valuedouble;
        if (ix->st == KVATTN_OK && (!(b >= 0) || !(en >= b) || en > (double)data_size)) {
            ix->st = kv_fail(KVATTN_ERR_FORMAT,
                             "%s: tensor '%s': data_offsets [%.0f, %.0f] lie outside the %llu-byte "
                             "data section",
                             path, t.name, b, en, (unsigned long long)data_size);
        }
        if (ix->st != KVATTN_OK) break;
        t.bytes = (uint64_t)en - (uint64_t)b;
        if (t.type != KVATTN_TYPE_COUNT && t.bytes != numel * (t.type == KVATTN_TYPE_F32 ? 4 : 2)) {
            ix->st = kv_fail(KVATTN_ERR_FORMAT, "%s: tensor '%s': %llu bytes for %llu %s elements", path, t.name,
                             (unsigned long long)t.bytes, (unsigned long long)numel, dt->valuestring);
            break;
        }
        t.data = base + (uint64_t)b;
        if (ix->n == ix->cap) {
            int cap = ix->cap ? 2 * ix->cap : 64;
            st_tensor *p = realloc(ix->t, sizeof *p * (size_t)cap);
            if (!p) {
                ix->st = kv_fail(KVATTN_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            ix->t = p, ix->cap = cap;
        }
        ix->t[ix->n++] = t;
    }
    cJSON_Delete(h);
}

static const st_tensor *find(st_index *ix, const char *name, uint64_t rows, uint64_t cols, int optional) {
    if (ix->st != KVATTN_OK) return NULL;
    for (int i = 0; i < ix->n; i++) {
        const st_tensor *t = &ix->t[i];
        if (strcmp(t->name, name)) continue;
        int ok =
            cols ? t->n_dims == 2 && t->shape[0] == rows && t->shape[1] == cols : t->n_dims == 1 && t->shape[0] == rows;
        if (!ok) {
            ix->st =
                kv_fail(KVATTN_ERR_FORMAT, "%s: tensor '%s' has shape [%llu, %llu], config.json implies [%llu, %llu]",
                        ix->dir, name, (unsigned long long)t->shape[0], (unsigned long long)t->shape[1],
                        (unsigned long long)rows, (unsigned long long)cols);
            return NULL;
        }
        if (t->type == KVATTN_TYPE_COUNT) {
            ix->st =
                kv_fail(KVATTN_ERR_UNSUPPORTED, "%s: tensor '%s' has a dtype other than F32, F16, BF16", ix->dir, name);
            return NULL;
        }
        ix->m->weight_bytes += t->bytes;
        return t;
    }
    if (!optional) ix->st = kv_fail(KVATTN_ERR_FORMAT, "%s: tensor '%s' is missing", ix->dir, name);
    return NULL;
}

/* In place if aligned for its element type, else an owned aligned copy. */
static kvattn_matrix st_matrix(st_index *ix, const char *name, uint64_t rows, uint64_t cols) {
    const st_tensor *t = find(ix, name, rows, cols, 0);
    kvattn_matrix mx = {.data = NULL, .type = KVATTN_TYPE_F32};
    if (!t) return mx;
    mx.type = t->type;
    size_t align = t->type == KVATTN_TYPE_F32 ? 4 : 2;
    if ((uintptr_t)t->data % align == 0) {
        mx.data = t->data;
    } else {
        void *copy = kv_model_own(ix->m, malloc((size_t)t->bytes));
        if (!copy) ix->st = kv_fail(KVATTN_ERR_NOMEM, "%s: out of memory", ix->dir);
        else memcpy(copy, t->data, (size_t)t->bytes);
        mx.data = copy;
    }
    return mx;
}

static const float *st_vector(st_index *ix, const char *name, uint64_t n) {
    const st_tensor *t = find(ix, name, n, 0, 0);
    if (!t) return NULL;
    float *v = kv_model_own(ix->m, malloc(sizeof(float) * (size_t)n));
    if (!v) {
        ix->st = kv_fail(KVATTN_ERR_NOMEM, "%s: out of memory", ix->dir);
        return NULL;
    }
    for (uint64_t i = 0; i < n; i++) { /* element by element: the data may be unaligned */
        if (t->type == KVATTN_TYPE_F32) {
            memcpy(&v[i], t->data + 4 * i, 4);
        } else {
            uint16_t h;
            memcpy(&h, t->data + 2 * i, 2);
            v[i] = t->type == KVATTN_TYPE_F16 ? kv_f16_to_f32(h) : kv_bf16_to_f32(h);
        }
    }
    return v;
}

/* A JSON number that is a whole number in [0, n), as an int; -1 otherwise
 * (checked as a double first: converting 1e12 to int is undefined). */
static int json_index(const cJSON *v, int n) {
    if (!cJSON_IsNumber(v)) return -1;
    const double x = v->valuedouble;
    return x >= 0 && x < (double)n && x == (double)(int)x ? (int)x : -1;
}

/* tokenizer.json's normalizer: none, a Unicode form (NFC, NFKC, NFD, NFKD),
 * SentencePiece's Prepend/Replace of "▁" (which the byte_fallback path does
 * itself), or a Sequence of those. Returns NULL, or what it cannot apply
 * (a constant, or the type quoted into bad[80]) for the caller to refuse by name. */
static const char *json_normalizer(const cJSON *n, kv_normalization *form, char *bad) {
    if (!n || cJSON_IsNull(n)) return NULL;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(n, "type");
    if (!cJSON_IsObject(n) || !cJSON_IsString(type)) return "(not an object with a type)";
    const char *t = type->valuestring;
    if (!strcmp(t, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        if (!cJSON_IsArray(list)) return "Sequence (without a normalizers array)";
        for (const cJSON *e = list->child; e; e = e->next) {
            const char *why = json_normalizer(e, form, bad);
            if (why) return why;
        }
        return NULL;
    }
    const int f = kv_normalization_by_name(t);
    if (f > 0) *form = (kv_normalization)f;
    else if (strcmp(t, "Prepend") && strcmp(t, "Replace")) return snprintf(bad, 80, "\"%.40s\"", t), bad;
    return NULL;
}

/* tokenizer.json: BPE with byte_fallback and "▁" (Llama-2 style SentencePiece
 * conversion) becomes our SentencePiece tokenizer with scores from merge
 * ranks; byte-level BPE (GPT-2, Llama-3) becomes our BPE tokenizer. */
/* The Split expressions of a tokenizer.json pre_tokenizer ("pattern":
 * {"Regex": ...}), in order: up to max into out; returns how many there are. */
static int split_regexes(const cJSON *node, const char **out, int n, int max) {
    if (!node) return n;
    const cJSON *pattern = cJSON_IsObject(node) ? cJSON_GetObjectItemCaseSensitive(node, "pattern") : NULL;
    const cJSON *regex = pattern ? cJSON_GetObjectItemCaseSensitive(pattern, "Regex") : NULL;
    if (cJSON_IsString(regex)) {
        if (n < max) out[n] = regex->valuestring;
        return n + 1;
    }
    for (const cJSON *c = node->child; c; c = c->next) n = split_regexes(c, out, n, max);
    return n;
}

/* n_vocab: the model's embedding rows, or 0 for one past the largest id the file names. */
static kvattn_status load_tokenizer_json(const char *path, int n_vocab, int bos, int eos, kvattn_tokenizer **out) {
    kvattn_status st = KVATTN_OK;
    char *text = kv_read_file(path, 256u << 20, &st);
    if (!text) return st;
    cJSON *j = cJSON_Parse(text);
    const char *at = j ? NULL : cJSON_GetErrorPtr();
    const size_t len = strlen(text), off = at && at >= text && at <= text + len ? (size_t)(at - text) : 0;
    free(text);
    if (!j || !cJSON_IsObject(j)) { /* say what is wrong before asking for a BPE model */
        cJSON_Delete(j);
        return len == 0 ? kv_fail(KVATTN_ERR_FORMAT, "%s: empty file", path)
                        : kv_fail(KVATTN_ERR_FORMAT, "%s: not a JSON object (parse error near byte %zu)", path, off);
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    const cJSON *type = model ? cJSON_GetObjectItemCaseSensitive(model, "type") : NULL;
    const cJSON *vocab = model ? cJSON_GetObjectItemCaseSensitive(model, "vocab") : NULL;
    const cJSON *merges = model ? cJSON_GetObjectItemCaseSensitive(model, "merges") : NULL;
    const char *why = !cJSON_IsObject(model)             ? "has no \"model\" object"
                      : !cJSON_IsString(type)            ? "has no model.type"
                      : strcmp(type->valuestring, "BPE") ? NULL
                      : !cJSON_IsObject(vocab)           ? "has no model.vocab object"
                      : !cJSON_IsArray(merges)           ? "has no model.merges array"
                                                         : "";
    if (!why) {
        kvattn_status s =
            kv_fail(KVATTN_ERR_UNSUPPORTED, "%s: model.type \"%.40s\" is not supported (BPE tokenizers are)", path,
                    type->valuestring);
        cJSON_Delete(j);
        return s;
    }
    if (*why) {
        cJSON_Delete(j);
        return kv_fail(KVATTN_ERR_FORMAT, "%s: %s", path, why);
    }
    kv_normalization normalize = KV_NORM_NONE;
    char bad_normalizer[80];
    if ((why = json_normalizer(cJSON_GetObjectItemCaseSensitive(j, "normalizer"), &normalize, bad_normalizer))) {
        kvattn_status s = kv_fail(KVATTN_ERR_UNSUPPORTED, "%s: normalizer %s is not supported", path, why);
        cJSON_Delete(j);
        return s;
    }
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(j, "added_tokens");
    if (n_vocab == 0) { /* a tokenizer.json alone: one past the largest id it names */
        for (const cJSON *e = vocab->child; e; e = e->next) {
            const int id = json_index(e, KV_MAX_DIM);
            if (id + 1 > n_vocab) n_vocab = id + 1;
        }
        for (const cJSON *a = cJSON_IsArray(added) ? added->child : NULL; a; a = a->next) {
            const int id = json_index(cJSON_GetObjectItemCaseSensitive(a, "id"), KV_MAX_DIM);
            if (id + 1 > n_vocab) n_vocab = id + 1;
        }
        if (n_vocab == 0) n_vocab = 1; /* no token at all: tokenizing then says a byte token is missing */
    }
    int byte_fallback = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "byte_fallback"));
    const char **pieces = calloc((size_t)n_vocab, sizeof *pieces);
    int *lens = calloc((size_t)n_vocab, sizeof *lens);
    int32_t *types = calloc((size_t)n_vocab, sizeof *types);
    int n_merges = cJSON_GetArraySize(merges);
    const char **mp = calloc((size_t)n_merges + 1, sizeof *mp);
    int *ml = calloc((size_t)n_merges + 1, sizeof *ml);
    char **owned = calloc((size_t)n_merges + 1, sizeof *owned);
    float *scores = calloc((size_t)n_vocab, sizeof *scores);
    if (!pieces || !lens || !types || !mp || !ml || !owned || !scores)
        st = kv_fail(KVATTN_ERR_NOMEM, "%s: out of memory", path);
    for (const cJSON *e = vocab->child; st == KVATTN_OK && e; e = e->next) {
        int id = json_index(e, n_vocab);
        if (id < 0)
            st = kv_fail(KVATTN_ERR_FORMAT, "%s: vocab entry '%.60s' has an id that is not a whole number in [0, %d)",
                         path, e->string, n_vocab);
        else pieces[id] = e->string, lens[id] = (int)strlen(e->string), types[id] = 1;
    }
    for (const cJSON *a = cJSON_IsArray(added) ? added->child : NULL; st == KVATTN_OK && a; a = a->next) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id"),
                    *c = cJSON_GetObjectItemCaseSensitive(a, "content");
        const int i = json_index(id, n_vocab);
        if (!cJSON_IsString(c) || json_index(id, INT32_MAX) < 0) {
            st = kv_fail(KVATTN_ERR_FORMAT,
                         "%s: added_tokens entry '%.60s' needs a content string and an id that is a whole number "
                         "from 0",
                         path, cJSON_IsString(c) ? c->valuestring : "?");
        } else if (i >= 0) { /* ids past the model's embedding rows name no token it has: left out */
            pieces[i] = c->valuestring, lens[i] = (int)strlen(c->valuestring);
            types[i] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "special")) ? 3 : 4; /* 4: user-defined */
        }
    }
    for (int i = 0; st == KVATTN_OK && i < n_vocab; i++)
        if (!pieces[i]) pieces[i] = "", lens[i] = 0, types[i] = 3; /* ids the file leaves unused */
    int i = 0;
    for (const cJSON *e = merges->child; st == KVATTN_OK && e; e = e->next, i++) {
        if (cJSON_IsString(e)) {
            mp[i] = e->valuestring;
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(e->child) &&
                   cJSON_IsString(e->child->next)) { /* newer files: ["a", "b"] */
            size_t la = strlen(e->child->valuestring), lb = strlen(e->child->next->valuestring);
            owned[i] = malloc(la + lb + 2);
            if (owned[i]) {
                memcpy(owned[i], e->child->valuestring, la);
                owned[i][la] = ' ';
                memcpy(owned[i] + la + 1, e->child->next->valuestring, lb + 1);
            }
            mp[i] = owned[i] ? owned[i] : "";
        } else {
            st = kv_fail(KVATTN_ERR_FORMAT, "%s: merge %d is neither \"a b\" nor [\"a\", \"b\"]", path, i);
        }
        if (st == KVATTN_OK) ml[i] = (int)strlen(mp[i]);
    }
    if (st == KVATTN_OK && byte_fallback) {
        /* SentencePiece conversion: a piece's priority is the rank of the first merge that makes it. */
        for (int v = 0; v < n_vocab; v++) scores[v] = -1e30f;
        kvattn_tokenizer *tmp = NULL;
        kv_vocab_spec spec = {.kind = KVATTN_VOCAB_SPM,
                              .n_vocab = n_vocab,
                              .pieces = pieces,
                              .lens = lens,
                              .token_type = types,
                              .bos = bos,
                              .eos = eos,
                              .spm_marker = 1,
                              .add_space_prefix = 1,
                              .pre = KV_PRE_GPT2,
                              .normalize = normalize,
                              .source = path};
        st = kv_tokenizer_build(&spec, &tmp);
        for (int r = 0; st == KVATTN_OK && r < n_merges; r++) {
            const char *sp = strchr(mp[r], ' ');
            if (!sp) continue;
            char joined[512];
            int la = (int)(sp - mp[r]), lb = ml[r] - la - 1;
            if (la + lb >= (int)sizeof joined) continue;
            memcpy(joined, mp[r], (size_t)la);
            memcpy(joined + la, sp + 1, (size_t)lb);
            int id = kv_tokenizer_find(tmp, joined, la + lb);
            if (id >= 0 && scores[id] < -(float)r) scores[id] = -(float)r;
        }
        kvattn_tokenizer_free(tmp);
        if (st == KVATTN_OK) {
            spec.scores = scores;
            st = kv_tokenizer_build(&spec, out);
        }
    } else if (st == KVATTN_OK) {
        const cJSON *pre = cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer");
        const char *regexes[8];
        const int n_regex = split_regexes(pre, regexes, 0, 8);
        const int by_regex = n_regex > 0 && n_regex <= 8 ? kv_pretokenizer_by_regexes(regexes, n_regex) : -1;
        char *pre_txt = pre && by_regex < 0 ? cJSON_PrintUnformatted(pre) : NULL;
        kv_pretokenizer pt = by_regex >= 0                         ? (kv_pretokenizer)by_regex
                             : pre_txt && strstr(pre_txt, "{1,3}") ? KV_PRE_LLAMA3
                                                                   : KV_PRE_GPT2;
        free(pre_txt);
        st = kv_tokenizer_build(
            &(kv_vocab_spec){.kind = KVATTN_VOCAB_BPE,
                             .n_vocab = n_vocab,
                             .pieces = pieces,
                             .lens = lens,
                             .token_type = types,
                             .merges = mp,
                             .merge_lens = ml,
                             .n_merges = n_merges,
                             .bos = bos,
                             .eos = eos,
                             .pre = pt,
                             .ignore_merges = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "ignore_merges")),
                             .normalize = normalize,
                             .source = path},
            out);
    }
    for (int k = 0; owned && k < n_merges; k++) free(owned[k]);
    free(owned), free(mp), free(ml), free(pieces), free(lens), free(types), free(scores);
    cJSON_Delete(j);
    return st;
}

/* config.json's rope_scaling for the GQA family, as the config's
 * freq_factors (owned by the model): "linear" divides every frequency by
 * factor; "llama3" (transformers' _compute_llama3_parameters) keeps pairs
 * whose wavelength is under original_max_position_embeddings /
 * high_freq_factor, divides those over original / low_freq_factor by
 * factor, and blends in between. Other types are refused by name. */
static kvattn_status hf_rope_scaling(const cJSON *cfg, const char *path, kvattn_model *m) {
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(cfg, "rope_scaling");
    if (!rs || cJSON_IsNull(rs)) return KVATTN_OK;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!type) type = cJSON_GetObjectItemCaseSensitive(rs, "type");
    const char *t = cJSON_IsString(type) ? type->valuestring : NULL;
    if (!cJSON_IsObject(rs) || !t) return kv_fail(KVATTN_ERR_FORMAT, "%s: rope_scaling has no rope_type", path);
    if (!strcmp(t, "default")) return KVATTN_OK;
    const int llama3 = !strcmp(t, "llama3");
    if (!llama3 && strcmp(t, "linear"))
        return kv_fail(KVATTN_ERR_UNSUPPORTED, "%s: rope_scaling type '%.40s' is not supported (linear, llama3)", path,
                       t);
    const char *const keys[] = {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"};
    const double defaults[] = {-1, 1.0, 4.0, -1};
    double v[4];
    for (int k = 0; k < (llama3 ? 4 : 1); k++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(rs, keys[k]);
        v[k] = cJSON_IsNumber(it) ? it->valuedouble : defaults[k];
        if (!(v[k] > 0) || !isfinite(v[k]))
            return kv_fail(KVATTN_ERR_FORMAT, "%s: rope_scaling.%s must be a positive number", path, keys[k]);
    }
    if (llama3 && !(v[2] > v[1]))
        return kv_fail(KVATTN_ERR_FORMAT, "%s: rope_scaling.high_freq_factor must exceed low_freq_factor", path);
    kvattn_rope_config *r = &m->desc.attn.rope;
    const int n_rot = r->n_rot ? r->n_rot : m->desc.attn.head_dim, pairs = n_rot / 2;
    float *ff = kv_model_own(m, malloc(sizeof(float) * (size_t)(pairs > 0 ? pairs : 1)));
    if (!ff) return kv_fail(KVATTN_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < pairs; i++) {
        ff[i] = (float)v[0];
        if (!llama3) continue;
        const double inv_freq = 1.0 / pow(r->theta, 2.0 * i / n_rot), wavelen = 6.283185307179586 / inv_freq;
        if (wavelen < v[3] / v[2]) ff[i] = 1.0f;
        else if (wavelen <= v[3] / v[1]) { /* between: the blend of the two, as a divisor */
            const double smooth = (v[3] / wavelen - v[1]) / (v[2] - v[1]);
            ff[i] = (float)(1.0 / ((1.0 - smooth) / v[0] + smooth));
        }
    }
    r->freq_factors = ff;
    return KVATTN_OK;
}

static int has_tensor(const st_index *ix, const char *name) {
    for (int i = 0; i < ix->n; i++)
        if (!strcmp(ix->t[i].name, name)) return 1;
    return 0;
}

/* One tensor of the architecture's table into its field of layer L. */
static void read_tensor(st_index *ix, const kv_tensor_spec *t, int l, kv_layer *L) {
    const kvattn_model_desc *d = &ix->m->desc;
    const uint64_t rows = kv_dim_value(t->rows, d), cols = kv_dim_value(t->cols, d);
    void *field = kv_tensor_field(t, L);
    char nm[160];
    snprintf(nm, sizeof nm, t->hf, l);
    if (t->optional && !has_tensor(ix, nm)) return;
    switch (t->form) {
    case KV_FORM_MATRIX: *(kvattn_matrix *)field = st_matrix(ix, nm, rows, cols); break;
    case KV_FORM_VECTOR: *(const float **)field = st_vector(ix, nm, rows); break;
    case KV_FORM_HEADS: break; /* Hugging Face checkpoints keep kv_b fused */
    case KV_FORM_EXPERTS: {
        const int E = d->n_routed_experts;
        kvattn_matrix *e = kv_model_own(ix->m, malloc(sizeof *e * (size_t)E));
        if (!e) {
            ix->st = kv_fail(KVATTN_ERR_NOMEM, "%s: out of memory", ix->dir);
            return;
        }
        for (int x = 0; x < E && ix->st == KVATTN_OK; x++) {
            snprintf(nm, sizeof nm, t->hf, l, x);
            e[x] = st_matrix(ix, nm, rows, cols);
        }
        *(kvattn_matrix **)field = e;
        break;
    }
    }
}

/* Every layer's tensors, as the architecture's table names them. */
static void read_layers(st_index *ix) {
    const kvattn_model_desc *d = &ix->m->desc;
    int n;
    const kv_tensor_spec *specs = kv_arch_layer_tensors(d->arch, &n);
    for (int l = 0; l < d->n_layers && ix->st == KVATTN_OK; l++) {
        const kv_layer_shape shape = {d, l, 0};
        for (int i = 0; i < n && ix->st == KVATTN_OK; i++)
            if (specs[i].hf && kv_tensor_applies(&specs[i], &shape)) read_tensor(ix, &specs[i], l, &ix->m->layers[l]);
    }
}

/* Whether something is at p (whatever it is: reading it refuses all but a regular file). */
static int file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

kvattn_status kv_load_safetensors(const char *path, const char *tokenizer_path, kvattn_model *m) {
    (void)tokenizer_path; /* tokenizer.json is beside the weights; load.c applies an explicit one */
    /* The folder: path itself, or the folder of a file in it (.safetensors, config.json, the index). */
    char dir[2048], p[2300];
    snprintf(dir, sizeof dir, "%s", path);
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
        char *slash = strrchr(dir, '/');
        if (slash) *slash = '\0';
        else snprintf(dir, sizeof dir, ".");
    }
    snprintf(p, sizeof p, "%s/config.json", dir);
    kvattn_status st = kvattn_model_from_hf_config(p, &m->desc);
    if (st != KVATTN_OK) return st;
    kvattn_model_desc *d = &m->desc;
    static const char *const runnable[] = {"llama", "mistral", "mixtral", "qwen2", "qwen3", "deepseek2"};
    int known = 0;
    for (size_t i = 0; i < sizeof runnable / sizeof *runnable; i++) known |= !strcmp(d->arch, runnable[i]);
    if (!known)
        return kv_fail(KVATTN_ERR_UNSUPPORTED,
                       "%s: model_type '%s' is not supported by the runner yet (llama, mistral, mixtral, qwen2, "
                       "qwen3, deepseek_v2, deepseek_v3)",
                       p, d->arch);
    snprintf(m->format, sizeof m->format, "safetensors");
    if (!strcmp(d->name, "config.json")) { /* no _name_or_path: the folder's name */
        const char *slash = strrchr(dir, '/');
        snprintf(d->name, sizeof d->name, "%.63s", slash && slash[1] ? slash + 1 : dir);
    }
    /* Settings config.json carries beyond the shapes. */
    char *cfg_text = kv_read_file(p, 16u << 20, &st);
    cJSON *cfg = cfg_text ? cJSON_Parse(cfg_text) : NULL;
    free(cfg_text);
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(cfg, "rms_norm_eps");
    const cJSON *bos = cJSON_GetObjectItemCaseSensitive(cfg, "bos_token_id");
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(cfg, "eos_token_id");
    const int V_ids = (int)d->vocab_size;
    const cJSON *eos0 = cJSON_IsArray(eos) ? eos->child : eos;
    const char *bad =
        eps && !cJSON_IsNull(eps) && !(cJSON_IsNumber(eps) && eps->valuedouble > 0 && isfinite(eps->valuedouble))
            ? "rms_norm_eps must be a positive number"
        : bos && !cJSON_IsNull(bos) && json_index(bos, V_ids) < 0 ? "bos_token_id must name a token of the vocabulary"
        : eos0 && !cJSON_IsNull(eos0) && json_index(eos0, V_ids) < 0
            ? "eos_token_id must name a token of the vocabulary"
            : NULL;
    if (bad) {
        cJSON_Delete(cfg);
        return kv_fail(KVATTN_ERR_FORMAT, "%s: %s", p, bad);
    }
    st = d->attn.kind == KVATTN_ATTN_GQA ? hf_rope_scaling(cfg, p, m) : KVATTN_OK;
    if (st != KVATTN_OK) {
        cJSON_Delete(cfg);
        return st;
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "use_sliding_window"))) {
        cJSON_Delete(cfg);
        return kv_fail(KVATTN_ERR_UNSUPPORTED,
                       "%s: use_sliding_window = true: sliding-window attention is not supported", p);
    }
    m->norm_eps = cJSON_IsNumber(eps) ? (float)eps->valuedouble : 1e-6f;
    int bos_id = json_index(bos, V_ids), eos_id = json_index(eos0, V_ids);
    cJSON_Delete(cfg);

    st_index ix = {NULL, 0, 0, m, dir, KVATTN_OK};
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    if (file_exists(p)) { /* shards: every file the weight_map names, once */
        char *txt = kv_read_file(p, 64u << 20, &ix.st);
        cJSON *idx = txt ? cJSON_Parse(txt) : NULL;
        free(txt);
        const cJSON *wm = cJSON_GetObjectItemCaseSensitive(idx, "weight_map");
        if (ix.st == KVATTN_OK && !cJSON_IsObject(wm)) ix.st = kv_fail(KVATTN_ERR_FORMAT, "%s: no weight_map", p);
        char seen[64][256];
        int n_seen = 0;
        for (const cJSON *e = ix.st == KVATTN_OK ? wm->child : NULL; e && ix.st == KVATTN_OK; e = e->next) {
            if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || strlen(e->valuestring) >= 256) {
                ix.st = kv_fail(KVATTN_ERR_FORMAT, "%s: weight_map entry '%.80s' is not a file name", p, e->string);
                break;
            }
            int dup = 0;
            for (int s = 0; s < n_seen; s++) dup |= !strcmp(seen[s], e->valuestring);
            if (dup) continue;
            if (n_seen == 64) {
                ix.st = kv_fail(KVATTN_ERR_UNSUPPORTED, "%s: more than 64 shards", p);
                break;
            }
            snprintf(seen[n_seen++], 256, "%s", e->valuestring);
            char shard[2400];
            snprintf(shard, sizeof shard, "%s/%s", dir, e->valuestring);
            index_file(&ix, shard);
        }
        cJSON_Delete(idx);
    } else {
        snprintf(p, sizeof p, "%s/model.safetensors", dir);
        index_file(&ix, p);
    }
    const uint64_t D = (uint64_t)d->attn.d_model, V = (uint64_t)d->vocab_size;
    if (ix.st == KVATTN_OK && !(m->layers = calloc((size_t)d->n_layers, sizeof *m->layers)))
        ix.st = kv_fail(KVATTN_ERR_NOMEM, "out of memory");
    m->tok_embd = st_matrix(&ix, KV_HF_TOKEN_EMBD, V, D);
    m->out_norm = st_vector(&ix, KV_HF_OUTPUT_NORM, D);
    m->output = d->tied_embeddings ? m->tok_embd : st_matrix(&ix, KV_HF_OUTPUT, V, D);
    read_layers(&ix);
    for (int l = 0; d->qkv_bias && ix.st == KVATTN_OK && l < d->n_layers; l++)
        if (!m->layers[l].attn.bq || !m->layers[l].attn.bk || !m->layers[l].attn.bv)
            ix.st = kv_fail(KVATTN_ERR_FORMAT, "%s: config.json asks for Q/K/V biases; layer %d's are missing", dir, l);
    free(ix.t);
    if (ix.st != KVATTN_OK) return ix.st;
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    if (file_exists(p)) return load_tokenizer_json(p, (int)V, bos_id, eos_id, &m->tokenizer);
    return KVATTN_OK;
}

kvattn_status kvattn_tokenizer_load_json(const char *path, kvattn_tokenizer **out) {
    if (!path || !out) return kv_fail(KVATTN_ERR_INVALID_ARG, "tokenizer: NULL argument");
    *out = NULL;
    return load_tokenizer_json(path, 0, -1, -1, out);
}
