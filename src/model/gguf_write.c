/* GGUF v3 writer, and a loaded model written through it. */
#include "arch_tensors.h"
#include "tokenizer.h"

#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "kernels/vec.h"

#include <stdlib.h>
#include <string.h>

#define ALIGN 32

typedef struct {
    uint8_t *p;
    size_t n, cap;
} bytes;

typedef struct {
    char *name;
    uint32_t n_dims;
    uint64_t ne[4];
    uint32_t ggml_type;
    uint8_t *data;
    uint64_t size;
} w_tensor;

struct kvattn_gguf_writer {
    bytes kv;
    uint64_t n_kv;
    w_tensor *t;
    int n_t, cap_t;
    int failed;
};

static int put(bytes *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
    return 0;
}

static int put_u32(bytes *b, uint32_t v) { return put(b, &v, 4); }
static int put_u64(bytes *b, uint64_t v) { return put(b, &v, 8); }
static int put_str(bytes *b, const char *s, size_t len) { return put_u64(b, len) || put(b, s, len); }

kvattn_status kvattn_gguf_writer_create(kvattn_gguf_writer **out) {
    if (!out) return kv_fail(KVATTN_ERR_INVALID_ARG, "gguf writer: NULL");
    *out = calloc(1, sizeof **out);
    return *out ? KVATTN_OK : kv_fail(KVATTN_ERR_NOMEM, "gguf writer: out of memory");
}

void kvattn_gguf_writer_free(kvattn_gguf_writer *w) {
    if (!w) return;
    free(w->kv.p);
    for (int i = 0; i < w->n_t; i++) free(w->t[i].name), free(w->t[i].data);
    free(w->t);
    free(w);
}

/* key + type tag, then the caller's value bytes. */
static kvattn_status kv_begin(kvattn_gguf_writer *w, const char *key, uint32_t type) {
    if (!w || !key) return kv_fail(KVATTN_ERR_INVALID_ARG, "gguf writer: NULL argument");
    if (put_str(&w->kv, key, strlen(key)) || put_u32(&w->kv, type)) {
        w->failed = 1;
        return kv_fail(KVATTN_ERR_NOMEM, "gguf writer: out of memory");
    }
    w->n_kv++;
    return KVATTN_OK;
}

static kvattn_status kv_value(kvattn_gguf_writer *w, const void *v, size_t n) {
    if (put(&w->kv, v, n)) {
        w->failed = 1;
        return kv_fail(KVATTN_ERR_NOMEM, "gguf writer: out of memory");
    }
    return KVATTN_OK;
}

kvattn_status kvattn_gguf_set_u32(kvattn_gguf_writer *w, const char *key, uint32_t v) {
    kvattn_status st = kv_begin(w, key, 4);
    return st ? st : kv_value(w, &v, 4);
}
kvattn_status kvattn_gguf_set_i32(kvattn_gguf_writer *w, const char *key, int32_t v) {
    kvattn_status st = kv_begin(w, key, 5);
    return st ? st : kv_value(w, &v, 4);
}
kvattn_status kvattn_gguf_set_f32(kvattn_gguf_writer *w, const char *key, float v) {
    kvattn_status st = kv_begin(w, key, 6);
    return st ? st : kv_value(w, &v, 4);
}
kvattn_status kvattn_gguf_set_bool(kvattn_gguf_writer *w, const char *key, int v) {
    uint8_t b = v != 0;
    kvattn_status st = kv_begin(w, key, 7);
    return st ? st : kv_value(w, &b, 1);
}
kvattn_status kvattn_gguf_set_str(kvattn_gguf_writer *w, const char *key, const char *v) {
    kvattn_status st = kv_begin(w, key, 8);
    if (st) return st;
    uint64_t len = strlen(v);
    return (st = kv_value(w, &len, 8)) ? st : kv_value(w, v, len);
}

static kvattn_status array_head(kvattn_gguf_writer *w, const char *key, uint32_t elem, int n) {
    if (n < 0) return kv_fail(KVATTN_ERR_INVALID_ARG, "gguf writer: %s: negative length", key);
    kvattn_status st = kv_begin(w, key, 9);
    uint64_t n64 = (uint64_t)n;
    if (!st) st = kv_value(w, &elem, 4);
    if (!st) st = kv_value(w, &n64, 8);
    return st;
}

kvattn_status kvattn_gguf_set_str_array(kvattn_gguf_writer *w, const char *key, const char *const *v, const int *lens,
                                        int n) {
    kvattn_status st = array_head(w, key, 8, n);
    for (int i = 0; !st && i < n; i++) {
        uint64_t len = lens ? (uint64_t)lens[i] : strlen(v[i]);
        if (!(st = kv_value(w, &len, 8))) st = kv_value(w, v[i], len);
    }
    return st;
}
kvattn_status kvattn_gguf_set_f32_array(kvattn_gguf_writer *w, const char *key, const float *v, int n) {
    kvattn_status st = array_head(w, key, 6, n);
    return st ? st : kv_value(w, v, sizeof(float) * (size_t)n);
}
kvattn_status kvattn_gguf_set_i32_array(kvattn_gguf_writer *w, const char *key, const int32_t *v, int n) {
    kvattn_status st = array_head(w, key, 5, n);
    return st ? st : kv_value(w, v, sizeof(int32_t) * (size_t)n);
}

/* The types the writer stores: the cache types, and Q4_0 / Q4_K weights. */
static int writable(kvattn_type t) { return kvattn_type_is_cache_type(t) || kv_quant_can_write(t); }

static int block_of(kvattn_type t) { return t == KVATTN_TYPE_Q8_0 ? 32 : kv_quant_block_elems(t); }

/* The type a row of cols elements is stored in when asked for t: a block type
 * needs whole blocks, so Q4_K falls back to Q4_0, and a block type to f16. */
static kvattn_type fit_type(kvattn_type t, int cols) {
    if (cols % block_of(t) == 0) return t;
    return t == KVATTN_TYPE_Q4_K && cols % 32 == 0 ? KVATTN_TYPE_Q4_0 : KVATTN_TYPE_F16;
}

kvattn_status kvattn_gguf_add_tensor(kvattn_gguf_writer *w, const char *name, kvattn_type type, const int64_t *ne,
                                     int n_dims, const float *data) {
    if (!w || !name || !ne || !data || n_dims < 1 || n_dims > 4 || !writable(type))
        return kv_fail(KVATTN_ERR_INVALID_ARG, "gguf writer: tensor '%s': bad arguments", name ? name : "?");
    w_tensor t = {0};
    uint64_t rows = 1;
    for (int d = 0; d < 4; d++) {
        t.ne[d] = d < n_dims ? (uint64_t)ne[d] : 1;
        if (d < n_dims && (ne[d] < 1 || ne[d] > ((int64_t)1 << 40)))
            return kv_fail(KVATTN_ERR_INVALID_ARG, "gguf writer: tensor '%s': dimension %d = %lld", name, d,
                           (long long)ne[d]);
        if (d > 0) rows *= t.ne[d];
    }
    if (t.ne[0] % (uint64_t)block_of(type))
        return kv_fail(KVATTN_ERR_INVALID_ARG, "gguf writer: tensor '%s': %s rows of %llu are not whole blocks of %d",
                       name, kvattn_type_name(type), (unsigned long long)t.ne[0], block_of(type));
    size_t row = kvattn_row_bytes(type, (int64_t)t.ne[0]);
    t.n_dims = (uint32_t)n_dims;
    t.ggml_type = type == KVATTN_TYPE_F32    ? 0
                  : type == KVATTN_TYPE_F16  ? 1
                  : type == KVATTN_TYPE_BF16 ? 30
                  : type == KVATTN_TYPE_Q8_0 ? 8
                  : type == KVATTN_TYPE_Q4_0 ? 2
                                             : 12; /* q4_K */
    t.size = row * rows;
    if (w->n_t == w->cap_t) {
        int cap = w->cap_t ? 2 * w->cap_t : 64;
        w_tensor *p = realloc(w->t, sizeof *p * (size_t)cap);
        if (!p) {
            w->failed = 1;
            return kv_fail(KVATTN_ERR_NOMEM, "gguf writer: out of memory for tensor '%s'", name);
        }
        w->t = p, w->cap_t = cap;
    }
    t.name = malloc(strlen(name) + 1);
    t.data = malloc(t.size ? t.size : 1);
    if (!t.name || !t.data) {
        free(t.name), free(t.data);
        w->failed = 1;
        return kv_fail(KVATTN_ERR_NOMEM, "gguf writer: out of memory for tensor '%s'", name);
    }
    strcpy(t.name, name);
    for (uint64_t r = 0; r < rows; r++) kv_row_store(type, data + r * t.ne[0], t.data + r * row, (int)t.ne[0]);
    w->t[w->n_t++] = t;
    return KVATTN_OK;
}

kvattn_status kvattn_gguf_write_file(const kvattn_gguf_writer *w, const char *path) {
    if (!w || !path) return kv_fail(KVATTN_ERR_INVALID_ARG, "gguf writer: NULL argument");
    if (w->failed) return kv_fail(KVATTN_ERR_NOMEM, "gguf writer: an earlier call failed; nothing written");
    bytes h = {0};
    int err = put(&h, "GGUF", 4) || put_u32(&h, 3) || put_u64(&h, (uint64_t)w->n_t) || put_u64(&h, w->n_kv) ||
              put(&h, w->kv.p ? w->kv.p : (uint8_t *)"", w->kv.n);
    uint64_t off = 0;
    for (int i = 0; !err && i < w->n_t; i++) {
        const w_tensor *t = &w->t[i];
        err = put_str(&h, t->name, strlen(t->name)) || put_u32(&h, t->n_dims);
        for (uint32_t d = 0; !err && d < t->n_dims; d++) err = put_u64(&h, t->ne[d]);
        err = err || put_u32(&h, t->ggml_type) || put_u64(&h, off);
        off += (t->size + ALIGN - 1) / ALIGN * ALIGN;
    }
    static const uint8_t zeros[ALIGN] = {0};
    if (!err && h.n % ALIGN) err = put(&h, zeros, ALIGN - h.n % ALIGN);
    if (err) {
        free(h.p);
        return kv_fail(KVATTN_ERR_NOMEM, "gguf writer: out of memory");
    }
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(h.p);
        return kv_fail(KVATTN_ERR_IO, "%s: cannot create", path);
    }
    int ok = fwrite(h.p, 1, h.n, f) == h.n;
    for (int i = 0; ok && i < w->n_t; i++) {
        const w_tensor *t = &w->t[i];
        ok = fwrite(t->data, 1, t->size, f) == t->size;
        if (ok && t->size % ALIGN) ok = fwrite(zeros, 1, ALIGN - t->size % ALIGN, f) == ALIGN - t->size % ALIGN;
    }
    ok = (fclose(f) == 0) && ok;
    free(h.p);
    return ok ? KVATTN_OK : kv_fail(KVATTN_ERR_IO, "%s: write failed (disk full?)", path);
}

/* ---- a loaded model as GGUF ---------------------------------------------- */

/* A matrix of the model as f32 rows (for re-encoding). */
static float *matrix_f32(kvattn_matrix m, int rows, int cols) {
    float *f = malloc(sizeof(float) * (size_t)rows * (size_t)cols);
    for (int r = 0; f && r < rows; r++) kv_row_load(m.type, kv_matrix_row(m, r, cols), f + (size_t)r * cols, cols);
    return f;
}

static kvattn_status add_matrix(kvattn_gguf_writer *w, const char *name, kvattn_matrix m, int rows, int cols,
                                kvattn_type type) {
    float *f = matrix_f32(m, rows, cols);
    if (!f) return kv_fail(KVATTN_ERR_NOMEM, "gguf: out of memory for '%s'", name);
    kvattn_type t = fit_type(type, cols);
    int64_t ne[2] = {cols, rows};
    kvattn_status st = kvattn_gguf_add_tensor(w, name, t, ne, 2, f);
    free(f);
    return st;
}

static kvattn_status add_vector(kvattn_gguf_writer *w, const char *name, const float *v, int n) {
    int64_t ne[1] = {n};
    return kvattn_gguf_add_tensor(w, name, KVATTN_TYPE_F32, ne, 1, v);
}

typedef struct {
    int rank, a, b;
} merge_entry;

static int cmp_merge_rank(const void *x, const void *y) {
    const merge_entry *p = x, *q = y;
    return (p->rank > q->rank) - (p->rank < q->rank);
}

/* The tokenizer's pieces in GGUF's spelling ("▁" for spaces in SentencePiece). */
static kvattn_status add_tokenizer(kvattn_gguf_writer *w, const kvattn_tokenizer *t) {
    int n = t->n_vocab;
    char **pieces = calloc((size_t)n, sizeof *pieces);
    int *lens = calloc((size_t)n, sizeof *lens);
    int32_t *types = calloc((size_t)n, sizeof *types);
    kvattn_status st = pieces && lens && types ? KVATTN_OK : kv_fail(KVATTN_ERR_NOMEM, "gguf: out of memory");
    for (int i = 0; st == KVATTN_OK && i < n; i++) {
        const char *p = t->pieces[i];
        int len = t->piece_len[i], o = 0;
        char *q = pieces[i] = malloc((size_t)len * 3 + 8);
        if (!q) {
            st = kv_fail(KVATTN_ERR_NOMEM, "gguf: out of memory");
            break;
        }
        if (t->kind == KVATTN_VOCAB_SPM && i == t->bos) o = sprintf(q, "<s>");
        else if (t->kind == KVATTN_VOCAB_SPM && i == t->eos) o = sprintf(q, "</s>");
        else
            for (int k = 0; k < len; k++) {
                if (t->kind == KVATTN_VOCAB_SPM && !t->spm_marker && p[k] == ' ')
                    memcpy(q + o, "\xe2\x96\x81", 3), o += 3;
                else q[o++] = p[k];
            }
        lens[i] = o;
        int is_byte = t->kind == KVATTN_VOCAB_SPM && len == 6 && !memcmp(p, "<0x", 3);
        types[i] = t->is_control[i] ? 3 : is_byte ? 6 : 1;
    }
    if (st == KVATTN_OK)
        st = kvattn_gguf_set_str(w, "tokenizer.ggml.model", t->kind == KVATTN_VOCAB_SPM ? "llama" : "gpt2");
    if (st == KVATTN_OK)
        st = kvattn_gguf_set_str_array(w, "tokenizer.ggml.tokens", (const char *const *)pieces, lens, n);
    if (st == KVATTN_OK && t->kind == KVATTN_VOCAB_SPM)
        st = kvattn_gguf_set_f32_array(w, "tokenizer.ggml.scores", t->scores, n);
    if (st == KVATTN_OK) st = kvattn_gguf_set_i32_array(w, "tokenizer.ggml.token_type", types, n);
    if (st == KVATTN_OK && t->kind == KVATTN_VOCAB_BPE) { /* merges back as "a b", in rank order */
        int nm = 0;
        for (size_t s = 0; s < t->merge_cap; s++) nm += t->merge_keys[s] != 0;
        merge_entry *me = malloc(sizeof *me * ((size_t)nm + 1));
        char **ms = calloc((size_t)nm + 1, sizeof *ms);
        int k = 0, bad = !me || !ms;
        for (size_t s = 0; !bad && s < t->merge_cap; s++)
            if (t->merge_keys[s]) {
                uint64_t key = t->merge_keys[s] - 1;
                me[k++] = (merge_entry){t->merge_rank[s], (int)(key >> 32), (int)(uint32_t)key};
            }
        if (!bad) qsort(me, (size_t)nm, sizeof *me, cmp_merge_rank);
        for (int i = 0; !bad && i < nm; i++) {
            ms[i] = malloc((size_t)t->piece_len[me[i].a] + (size_t)t->piece_len[me[i].b] + 2);
            if (ms[i]) sprintf(ms[i], "%s %s", t->pieces[me[i].a], t->pieces[me[i].b]);
            else bad = 1;
        }
        st = bad ? kv_fail(KVATTN_ERR_NOMEM, "gguf: out of memory")
                 : kvattn_gguf_set_str_array(w, "tokenizer.ggml.merges", (const char *const *)ms, NULL, nm);
        if (st == KVATTN_OK) st = kvattn_gguf_set_str(w, "tokenizer.ggml.pre", kv_pretokenizer_name(t->pre));
        for (int i = 0; ms && i < nm; i++) free(ms[i]);
        free(ms), free(me);
    }
    if (st == KVATTN_OK && t->bos >= 0) st = kvattn_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)t->bos);
    if (st == KVATTN_OK && t->eos >= 0) st = kvattn_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)t->eos);
    if (st == KVATTN_OK && t->kind == KVATTN_VOCAB_SPM)
        st = kvattn_gguf_set_bool(w, "tokenizer.ggml.add_space_prefix", t->add_space_prefix);
    for (int i = 0; pieces && i < n; i++) free(pieces[i]);
    free(pieces), free(lens), free(types);
    return st;
}

/* Undoes HF's rotate_half row layout (per head: even rows, then odd rows),
 * so a GGUF llama model can use adjacent pairs as llama.cpp expects. */
static float *to_adjacent_pairs(const float *w, int n_heads, int hd, int cols) {
    float *out = malloc(sizeof(float) * (size_t)n_heads * hd * cols);
    for (int h = 0; out && h < n_heads; h++)
        for (int i = 0; i < hd / 2; i++)
            for (int j = 0; j < 2; j++)
                memcpy(out + ((size_t)h * hd + 2 * i + j) * cols, w + ((size_t)h * hd + j * (hd / 2) + i) * cols,
                       sizeof(float) * (size_t)cols);
    return out;
}

static kvattn_status add_qk(kvattn_gguf_writer *w, const char *name, kvattn_matrix m, int heads, int hd, int cols,
                            kvattn_type type, int permute) {
    if (!permute) return add_matrix(w, name, m, heads * hd, cols, type);
    float *f = matrix_f32(m, heads * hd, cols), *p = f ? to_adjacent_pairs(f, heads, hd, cols) : NULL;
    kvattn_status st = p ? add_matrix(w, name, kvattn_f32_matrix(p), heads * hd, cols, type)
                         : kv_fail(KVATTN_ERR_NOMEM, "gguf: out of memory for '%s'", name);
    free(f), free(p);
    return st;
}

/* [n] matrices of rows × cols as one 3-D tensor, ne {cols, rows, n}. */
static kvattn_status add_stack(kvattn_gguf_writer *w, const char *name, const kvattn_matrix *ms, int n, int rows,
                               int cols, kvattn_type type) {
    size_t per = (size_t)rows * cols;
    float *f = malloc(sizeof(float) * per * (size_t)n);
    if (!f) return kv_fail(KVATTN_ERR_NOMEM, "gguf: out of memory for '%s'", name);
    for (int e = 0; e < n; e++)
        for (int r = 0; r < rows; r++)
            kv_row_load(ms[e].type, kv_matrix_row(ms[e], r, cols), f + e * per + (size_t)r * cols, cols);
    kvattn_type t = fit_type(type, cols);
    int64_t ne[3] = {cols, rows, n};
    kvattn_status st = kvattn_gguf_add_tensor(w, name, t, ne, 3, f);
    free(f);
    return st;
}

/* One tensor of the architecture's table from its field of layer L. */
static kvattn_status write_tensor(kvattn_gguf_writer *w, const kvattn_model *m, const kv_tensor_spec *t,
                                  const char *name, const kv_layer *L, kvattn_type type) {
    const kvattn_model_desc *d = &m->desc;
    const int rows = (int)kv_dim_value(t->rows, d), cols = (int)kv_dim_value(t->cols, d);
    const void *field = (const char *)L + t->offset;
    switch (t->form) {
    case KV_FORM_VECTOR: {
        const float *v = *(const float *const *)field;
        if (!v && t->optional) return KVATTN_OK;
        if (!(t->rope_rows && d->attn.rope.pairing == KVATTN_ROPE_HALF)) return add_vector(w, name, v, rows);
        float *p = to_adjacent_pairs(v, rows / d->attn.head_dim, d->attn.head_dim, 1); /* a Q/K bias */
        kvattn_status st = p ? add_vector(w, name, p, rows) : kv_fail(KVATTN_ERR_NOMEM, "gguf: out of memory");
        free(p);
        return st;
    }
    case KV_FORM_MATRIX: {
        const kvattn_matrix mx = *(const kvattn_matrix *)field;
        if (t->rope_rows && d->attn.rope.pairing == KVATTN_ROPE_HALF) /* GGUF llama rotates adjacent pairs */
            return add_qk(w, name, mx, rows / d->attn.head_dim, d->attn.head_dim, cols, type, 1);
        return add_matrix(w, name, mx, rows, cols, t->keep_f32 ? KVATTN_TYPE_F32 : type);
    }
    case KV_FORM_HEADS: { /* n_heads blocks of [rows][cols], one after another */
        const kvattn_matrix mx = *(const kvattn_matrix *)field;
        const int H = d->attn.n_heads;
        kvattn_matrix *heads = malloc(sizeof *heads * (size_t)H);
        if (!heads) return kv_fail(KVATTN_ERR_NOMEM, "gguf: out of memory for '%s'", name);
        for (int h = 0; h < H; h++)
            heads[h] = (kvattn_matrix){.data = kv_matrix_row(mx, h * rows, cols), .type = mx.type};
        kvattn_status st = add_stack(w, name, heads, H, rows, cols, type);
        free(heads);
        return st;
    }
    case KV_FORM_EXPERTS:
        return add_stack(w, name, *(kvattn_matrix *const *)field, d->n_routed_experts, rows, cols, type);
    }
    return kv_fail(KVATTN_ERR_INVALID_ARG, "gguf: tensor '%s' has no form", name);
}

/* The GGUF architecture a model is written as. */
static const char *gguf_arch(const kvattn_model_desc *d) {
    if (d->attn.kind == KVATTN_ATTN_MLA) return "deepseek2";
    return !strcmp(d->arch, "qwen2") || !strcmp(d->arch, "qwen3") ? d->arch : "llama";
}

/* Every layer's tensors, as the architecture's table names them. */
static kvattn_status write_layers(kvattn_gguf_writer *w, const kvattn_model *m, kvattn_type type) {
    const kvattn_model_desc *d = &m->desc;
    const int split = d->attn.kind == KVATTN_ATTN_MLA && m->layers[0].attn.wkv_b.data == NULL;
    int n;
    const kv_tensor_spec *specs = kv_arch_layer_tensors(gguf_arch(d), &n);
    kvattn_status st = KVATTN_OK;
    for (int l = 0; !st && l < d->n_layers; l++) {
        const kv_layer_shape shape = {d, l, split};
        char nm[96];
        for (int i = 0; !st && i < n; i++) {
            if (!kv_tensor_applies(&specs[i], &shape)) continue;
            snprintf(nm, sizeof nm, specs[i].gguf, l);
            st = write_tensor(w, m, &specs[i], nm, &m->layers[l], type);
        }
    }
    return st;
}

static kvattn_status common_head(kvattn_gguf_writer *w, const kvattn_model *m, const char *arch, kvattn_type type) {
    const kvattn_model_desc *d = &m->desc;
    char key[96];
    kvattn_status st = kvattn_gguf_set_str(w, "general.architecture", arch);
    if (!st) st = kvattn_gguf_set_str(w, "general.name", d->name);
    if (!st) st = kvattn_gguf_set_u32(w, "general.alignment", ALIGN);
    if (!st)
        st = kvattn_gguf_set_u32(w, "general.file_type",
                                 type == KVATTN_TYPE_F32    ? 0
                                 : type == KVATTN_TYPE_F16  ? 1
                                 : type == KVATTN_TYPE_Q8_0 ? 7
                                                            : 32);
#define KEY(k) (snprintf(key, sizeof key, "%s." k, arch), key)
    if (!st) st = kvattn_gguf_set_u32(w, KEY("context_length"), (uint32_t)d->context_length);
    if (!st) st = kvattn_gguf_set_u32(w, KEY("embedding_length"), (uint32_t)d->attn.d_model);
    if (!st) st = kvattn_gguf_set_u32(w, KEY("block_count"), (uint32_t)d->n_layers);
    /* a Mixtral's FFN width is its experts' */
    if (!st)
        st = kvattn_gguf_set_u32(w, KEY("feed_forward_length"), (uint32_t)(d->ffn_dim ? d->ffn_dim : d->moe_ffn_dim));
    if (!st) st = kvattn_gguf_set_u32(w, KEY("attention.head_count"), (uint32_t)d->attn.n_heads);
    if (!st) st = kvattn_gguf_set_f32(w, KEY("rope.freq_base"), d->attn.rope.theta);
    if (!st) st = kvattn_gguf_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), m->norm_eps);
#undef KEY
    if (!st && m->provenance[0]) st = kvattn_gguf_set_str(w, "kvattn.conversion", m->provenance);
    if (!st && d->attn.kind == KVATTN_ATTN_MLA && d->attn.kv_norm_off)
        st = kvattn_gguf_set_bool(w, "kvattn.mla.kv_norm", 0);
    if (!st && m->tokenizer) st = add_tokenizer(w, m->tokenizer);
    if (!st) st = add_matrix(w, KV_GGUF_TOKEN_EMBD, m->tok_embd, (int)d->vocab_size, d->attn.d_model, type);
    if (!st) st = add_vector(w, KV_GGUF_OUTPUT_NORM, m->out_norm, d->attn.d_model);
    if (!st && !d->tied_embeddings)
        st = add_matrix(w, KV_GGUF_OUTPUT, m->output, (int)d->vocab_size, d->attn.d_model, type);
    return st;
}

/* llama (Mixtral with experts), qwen2 or qwen3. */
static kvattn_status write_gqa(kvattn_gguf_writer *w, const kvattn_model *m, kvattn_type type) {
    const kvattn_model_desc *d = &m->desc;
    const kvattn_layer_config *a = &d->attn;
    const char *arch = gguf_arch(d);
    const int is_llama = !strcmp(arch, "llama");
    if (is_llama && a->rope.pairing == KVATTN_ROPE_HALF && a->rope.n_rot && a->rope.n_rot != a->head_dim)
        return kv_fail(KVATTN_ERR_UNSUPPORTED,
                       "save gguf: partial rotary with half-split pairs has no llama GGUF layout");
    if (!is_llama && a->rope.pairing != KVATTN_ROPE_HALF)
        return kv_fail(KVATTN_ERR_UNSUPPORTED, "save gguf: %s rotates half-split pairs; this model's are adjacent",
                       arch);
    if (d->n_routed_experts && (!is_llama || d->n_shared_experts || d->n_dense_layers || !d->expert_weights_norm ||
                                d->expert_gating || d->n_expert_groups > 1))
        return kv_fail(KVATTN_ERR_UNSUPPORTED, "save gguf: this model's expert routing has no %s GGUF layout", arch);
    const int D = a->d_model, H = a->n_heads, KV = a->n_kv_heads, hd = a->head_dim;
    char key[96];
#define KEY(k) (snprintf(key, sizeof key, "%s." k, arch), key)
    kvattn_status st = common_head(w, m, arch, type);
    if (!st) st = kvattn_gguf_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)KV);
    if (!st && hd * H != D) st = kvattn_gguf_set_u32(w, KEY("attention.key_length"), (uint32_t)hd);
    if (!st && hd * H != D) st = kvattn_gguf_set_u32(w, KEY("attention.value_length"), (uint32_t)hd);
    if (!st) st = kvattn_gguf_set_u32(w, KEY("rope.dimension_count"), (uint32_t)(a->rope.n_rot ? a->rope.n_rot : hd));
    const int pairs = (a->rope.n_rot ? a->rope.n_rot : hd) / 2;
    if (!st && a->rope.freq_factors && is_llama) { /* llama.cpp's form of Llama 3's (and linear) scaling */
        int64_t ne[1] = {pairs};
        st = kvattn_gguf_add_tensor(w, "rope_freqs.weight", KVATTN_TYPE_F32, ne, 1, a->rope.freq_factors);
    } else if (!st && a->rope.freq_factors) { /* qwen: only a factor shared by every pair has a key */
        for (int i = 1; i < pairs; i++)
            if (a->rope.freq_factors[i] != a->rope.freq_factors[0])
                return kv_fail(KVATTN_ERR_UNSUPPORTED, "save gguf: per-pair RoPE factors have no %s GGUF layout", arch);
        st = kvattn_gguf_set_str(w, KEY("rope.scaling.type"), "linear");
        if (!st) st = kvattn_gguf_set_f32(w, KEY("rope.scaling.factor"), a->rope.freq_factors[0]);
    }
    if (!st && d->n_routed_experts) {
        st = kvattn_gguf_set_u32(w, KEY("expert_count"), (uint32_t)d->n_routed_experts);
        if (!st) st = kvattn_gguf_set_u32(w, KEY("expert_used_count"), (uint32_t)d->n_active_experts);
    }
#undef KEY
    if (!st) st = write_layers(w, m, type);
    return st;
}

/* deepseek2 as llama.cpp reads it; kv_b in the layout the model has (fused
 * attn_kv_b, or attn_k_b/attn_v_b with the *_mla key lengths). */
static kvattn_status write_deepseek2(kvattn_gguf_writer *w, const kvattn_model *m, kvattn_type type) {
    const kvattn_model_desc *d = &m->desc;
    const kvattn_layer_config *a = &d->attn;
    const int H = a->n_heads, ql = a->q_lora_rank, dc = a->kv_lora_rank, dr = a->qk_rope_head_dim;
    const int dn = a->qk_nope_head_dim, dv = a->v_head_dim, F = (int)d->ffn_dim, E = d->n_routed_experts;
    const int Fm = (int)d->moe_ffn_dim, S = d->n_shared_experts;
    const int split = m->layers[0].attn.wkv_b.data == NULL;
    kvattn_status st = common_head(w, m, "deepseek2", type);
    if (!st) st = kvattn_gguf_set_u32(w, "deepseek2.attention.head_count_kv", split ? 1 : (uint32_t)H);
    /* Written even when 0: llama.cpp otherwise assumes a q_lora_rank unless the layer count is V2-Lite's. */
    if (!st) st = kvattn_gguf_set_u32(w, "deepseek2.attention.q_lora_rank", (uint32_t)ql);
    if (!st) st = kvattn_gguf_set_u32(w, "deepseek2.attention.kv_lora_rank", (uint32_t)dc);
    if (!st) st = kvattn_gguf_set_u32(w, "deepseek2.rope.dimension_count", (uint32_t)dr);
    if (!st) st = kvattn_gguf_set_u32(w, "deepseek2.attention.key_length", (uint32_t)(split ? dc + dr : dn + dr));
    if (!st) st = kvattn_gguf_set_u32(w, "deepseek2.attention.value_length", (uint32_t)(split ? dc : dv));
    if (!st && split) st = kvattn_gguf_set_u32(w, "deepseek2.attention.key_length_mla", (uint32_t)(dn + dr));
    if (!st && split) st = kvattn_gguf_set_u32(w, "deepseek2.attention.value_length_mla", (uint32_t)dv);
    if (!st && a->rope.yarn_factor > 1.0f) {
        st = kvattn_gguf_set_str(w, "deepseek2.rope.scaling.type", "yarn");
        if (!st) st = kvattn_gguf_set_f32(w, "deepseek2.rope.scaling.factor", a->rope.yarn_factor);
        if (!st)
            st = kvattn_gguf_set_u32(w, "deepseek2.rope.scaling.original_context_length",
                                     (uint32_t)a->rope.yarn_orig_ctx);
        if (!st)
            st = kvattn_gguf_set_f32(w, "deepseek2.rope.scaling.yarn_log_multiplier",
                                     0.1f * (a->rope.yarn_mscale > 0.0f ? a->rope.yarn_mscale : 1.0f));
        if (!st && a->rope.yarn_beta_fast > 0.0f)
            st = kvattn_gguf_set_f32(w, "deepseek2.rope.scaling.yarn_beta_fast", a->rope.yarn_beta_fast);
        if (!st && a->rope.yarn_beta_slow > 0.0f)
            st = kvattn_gguf_set_f32(w, "deepseek2.rope.scaling.yarn_beta_slow", a->rope.yarn_beta_slow);
    }
    /* llama.cpp needs these even without experts, and takes layers past the dense count as MoE */
    if (!st)
        st = kvattn_gguf_set_u32(w, "deepseek2.leading_dense_block_count",
                                 (uint32_t)(E ? d->n_dense_layers : d->n_layers));
    if (!st && !E) st = kvattn_gguf_set_u32(w, "deepseek2.expert_feed_forward_length", (uint32_t)(Fm ? Fm : F));
    if (!st && !E) st = kvattn_gguf_set_u32(w, "deepseek2.expert_shared_count", 0);
    if (!st && E) {
        st = kvattn_gguf_set_u32(w, "deepseek2.expert_count", (uint32_t)E);
        if (!st) st = kvattn_gguf_set_u32(w, "deepseek2.expert_used_count", (uint32_t)d->n_active_experts);
        if (!st) st = kvattn_gguf_set_u32(w, "deepseek2.expert_shared_count", (uint32_t)S);
        if (!st) st = kvattn_gguf_set_u32(w, "deepseek2.expert_feed_forward_length", (uint32_t)Fm);
        if (!st)
            st = kvattn_gguf_set_f32(w, "deepseek2.expert_weights_scale",
                                     d->expert_weights_scale > 0.0f ? d->expert_weights_scale : 1.0f);
        if (!st) st = kvattn_gguf_set_bool(w, "deepseek2.expert_weights_norm", d->expert_weights_norm);
        if (!st) st = kvattn_gguf_set_u32(w, "deepseek2.expert_gating_func", d->expert_gating ? 2 : 1);
        if (!st && d->n_expert_groups > 1) {
            st = kvattn_gguf_set_u32(w, "deepseek2.expert_group_count", (uint32_t)d->n_expert_groups);
            if (!st)
                st = kvattn_gguf_set_u32(w, "deepseek2.expert_group_used_count", (uint32_t)d->n_expert_groups_used);
        }
    }
    if (!st) st = write_layers(w, m, type);
    return st;
}

kvattn_status kvattn_model_save_gguf(const kvattn_model *m, const char *path, kvattn_type type) {
    if (!m || !path) return kv_fail(KVATTN_ERR_INVALID_ARG, "save gguf: NULL argument");
    if (!writable(type))
        return kv_fail(KVATTN_ERR_INVALID_ARG, "save gguf: weight type %s (f32, f16, bf16, q8_0, q4_0, q4_k)",
                       kvattn_type_name(type));
    kvattn_gguf_writer *w;
    kvattn_status st = kvattn_gguf_writer_create(&w);
    if (st) return st;
    st = m->desc.attn.kind == KVATTN_ATTN_MLA ? write_deepseek2(w, m, type) : write_gqa(w, m, type);
    if (!st) st = kvattn_gguf_write_file(w, path);
    kvattn_gguf_writer_free(w);
    return st;
}
