#include "gguf.h"

#include "kernels/quants.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Alignments beyond a page or two are not what a writer means: the file is damaged. */
#define GGUF_MAX_ALIGNMENT 65536

typedef struct {
    const uint8_t *p, *end, *base;
    const char *path;
    kvattn_status st;
} reader;

static int need(reader *r, uint64_t n, const char *what) {
    if (r->st != KVATTN_OK) return 0;
    if ((uint64_t)(r->end - r->p) < n) {
        r->st = kv_fail(KVATTN_ERR_FORMAT, "%s: truncated: %s needs %llu bytes at offset %llu", r->path, what,
                        (unsigned long long)n, (unsigned long long)(r->p - r->base));
        return 0;
    }
    return 1;
}

static uint64_t rd_u64(reader *r, const char *what) {
    uint64_t v = 0;
    if (need(r, 8, what)) memcpy(&v, r->p, 8), r->p += 8;
    return v;
}

static uint32_t rd_u32(reader *r, const char *what) {
    uint32_t v = 0;
    if (need(r, 4, what)) memcpy(&v, r->p, 4), r->p += 4;
    return v;
}

static gguf_str rd_str(reader *r, const char *what) {
    gguf_str s = {NULL, 0};
    uint64_t len = rd_u64(r, what);
    if (r->st == KVATTN_OK && len > (1u << 30)) {
        r->st =
            kv_fail(KVATTN_ERR_FORMAT, "%s: %s: string length %llu is absurd", r->path, what, (unsigned long long)len);
        return s;
    }
    if (need(r, len, what)) s.s = (const char *)r->p, s.len = len, r->p += len;
    return s;
}

static const uint64_t scalar_size[GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

/* Skips one value of type t (strings and arrays included). */
static void skip_value(reader *r, gguf_type t, const char *what, int depth) {
    if (t >= GGUF_TYPE_COUNT) {
        r->st = kv_fail(KVATTN_ERR_FORMAT, "%s: %s: unknown value type %u", r->path, what, (unsigned)t);
    } else if (t == GGUF_STRING) {
        rd_str(r, what);
    } else if (t == GGUF_ARRAY) {
        uint32_t et = rd_u32(r, what);
        uint64_t n = rd_u64(r, what);
        if (r->st != KVATTN_OK) return;
        if (depth > 2 || et >= GGUF_TYPE_COUNT) {
            r->st = kv_fail(KVATTN_ERR_FORMAT, "%s: %s: bad array element type %u", r->path, what, et);
        } else if (et == GGUF_STRING || et == GGUF_ARRAY) {
            for (uint64_t i = 0; i < n && r->st == KVATTN_OK; i++) skip_value(r, (gguf_type)et, what, depth + 1);
        } else if (n > (uint64_t)(r->end - r->p) / scalar_size[et]) {
            r->st = kv_fail(KVATTN_ERR_FORMAT, "%s: %s: array of %llu elements runs past the end of the file", r->path,
                            what, (unsigned long long)n);
        } else {
            r->p += n * scalar_size[et];
        }
    } else if (need(r, scalar_size[t], what)) {
        r->p += scalar_size[t];
    }
}

static int str_cmp(const void *a, const void *b) {
    const gguf_str *x = *(const gguf_str *const *)a, *y = *(const gguf_str *const *)b;
    const int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* The first name found twice among n records (the gguf_str at `offset` in each
 * `size`-byte record), or NULL; *nomem is set if the check cannot allocate. */
static const gguf_str *first_duplicate(const void *records, uint64_t n, size_t size, size_t offset, int *nomem) {
    if (n < 2) return NULL;
    const gguf_str **names = malloc(sizeof *names * (size_t)n);
    if (!names) {
        *nomem = 1;
        return NULL;
    }
    for (uint64_t i = 0; i < n; i++) names[i] = (const gguf_str *)((const uint8_t *)records + i * size + offset);
    qsort(names, (size_t)n, sizeof *names, str_cmp);
    const gguf_str *dup = NULL;
    for (uint64_t i = 1; i < n && !dup; i++)
        if (!str_cmp(&names[i - 1], &names[i])) dup = names[i];
    free(names);
    return dup;
}

const char *gguf_ggml_type_name(uint32_t t) {
    switch (t) {
    case 0: return "F32";
    case 1: return "F16";
    case 2: return "Q4_0";
    case 3: return "Q4_1";
    case 6: return "Q5_0";
    case 7: return "Q5_1";
    case 8: return "Q8_0";
    case 10: return "Q2_K";
    case 11: return "Q3_K";
    case 12: return "Q4_K";
    case 13: return "Q5_K";
    case 14: return "Q6_K";
    case 30: return "BF16";
    default: return "unknown";
    }
}

static kvattn_type kernel_type(uint32_t t) {
    switch (t) {
    case 0: return KVATTN_TYPE_F32;
    case 1: return KVATTN_TYPE_F16;
    case 2: return KVATTN_TYPE_Q4_0;
    case 3: return KVATTN_TYPE_Q4_1;
    case 6: return KVATTN_TYPE_Q5_0;
    case 7: return KVATTN_TYPE_Q5_1;
    case 8: return KVATTN_TYPE_Q8_0;
    case 10: return KVATTN_TYPE_Q2_K;
    case 11: return KVATTN_TYPE_Q3_K;
    case 12: return KVATTN_TYPE_Q4_K;
    case 13: return KVATTN_TYPE_Q5_K;
    case 14: return KVATTN_TYPE_Q6_K;
    case 30: return KVATTN_TYPE_BF16;
    default: return KVATTN_TYPE_COUNT;
    }
}

kvattn_status gguf_parse(const char *path, const void *base, uint64_t size, gguf_file *g) {
    memset(g, 0, sizeof *g);
    g->path = path;
    g->base = base;
    g->size = size;
    reader r = {base, (const uint8_t *)base + size, base, path, KVATTN_OK};
    if (size < 24 || memcmp(base, "GGUF", 4))
        return kv_fail(KVATTN_ERR_FORMAT, "%s: not a GGUF file (magic or header missing)", path);
    r.p += 4;
    g->version = rd_u32(&r, "version");
    if (g->version < 2 || g->version > 3)
        return kv_fail(KVATTN_ERR_UNSUPPORTED, "%s: GGUF version %u is not supported (2 and 3 are)", path, g->version);
    g->n_tensors = rd_u64(&r, "tensor count");
    g->n_kv = rd_u64(&r, "metadata count");
    /* Each entry needs at least 8 (key) + 4 (type) bytes; tensors 8 + 4 + 4 + 8. */
    if (g->n_kv > size / 12 || g->n_tensors > size / 24)
        return kv_fail(KVATTN_ERR_FORMAT,
                       "%s: header claims %llu metadata entries and %llu tensors, more than %llu "
                       "bytes can hold",
                       path, (unsigned long long)g->n_kv, (unsigned long long)g->n_tensors, (unsigned long long)size);
    g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kv);
    g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors) {
        gguf_free(g);
        return kv_fail(KVATTN_ERR_NOMEM, "%s: out of memory for the directory", path);
    }
    for (uint64_t i = 0; i < g->n_kv && r.st == KVATTN_OK; i++) {
        gguf_kv *kv = &g->kv[i];
        kv->key = rd_str(&r, "metadata key");
        kv->type = (gguf_type)rd_u32(&r, "metadata type");
        if (r.st != KVATTN_OK) break;
        char what[160];
        snprintf(what, sizeof what, "metadata '%.*s'", (int)(kv->key.len > 100 ? 100 : kv->key.len), kv->key.s);
        if (kv->type == GGUF_ARRAY) {
            const uint8_t *start = r.p;
            kv->elem_type = (gguf_type)rd_u32(&r, what);
            kv->n = rd_u64(&r, what);
            r.p = start;
            skip_value(&r, GGUF_ARRAY, what, 0);
            kv->value = start + 12;
        } else {
            kv->value = r.p;
            skip_value(&r, kv->type, what, 0);
        }
        kv->end = r.p;
    }
    int64_t align = 32;
    if (r.st == KVATTN_OK && gguf_get_int(g, "general.alignment", &align) == -2)
        r.st = kv_fail(KVATTN_ERR_FORMAT, "%s: general.alignment is not an integer", path);
    if (r.st == KVATTN_OK && (align < 1 || align > GGUF_MAX_ALIGNMENT || (align & (align - 1))))
        r.st = kv_fail(KVATTN_ERR_FORMAT, "%s: general.alignment = %lld is not a power of two", path, (long long)align);
    g->alignment = (uint64_t)align;
    for (uint64_t i = 0; i < g->n_tensors && r.st == KVATTN_OK; i++) {
        gguf_tensor *t = &g->tensors[i];
        t->name = rd_str(&r, "tensor name");
        t->n_dims = rd_u32(&r, "tensor dims");
        if (r.st == KVATTN_OK && (t->n_dims < 1 || t->n_dims > 4))
            r.st = kv_fail(KVATTN_ERR_FORMAT, "%s: tensor '%.*s': %u dimensions", path, (int)t->name.len, t->name.s,
                           t->n_dims);
        for (uint32_t d = 0; d < 4; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims && r.st == KVATTN_OK; d++) t->ne[d] = rd_u64(&r, "tensor shape");
        t->ggml_type = rd_u32(&r, "tensor type");
        t->offset = rd_u64(&r, "tensor offset");
    }
    if (r.st != KVATTN_OK) {
        gguf_free(g);
        return r.st;
    }
    uint64_t header = (uint64_t)(r.p - (const uint8_t *)base);
    uint64_t data_off = (header + g->alignment - 1) / g->alignment * g->alignment;
    if (data_off > size && g->n_tensors == 0) data_off = size; /* a vocabulary-only file ends unpadded */
    if (data_off > size) {
        gguf_free(g);
        return kv_fail(KVATTN_ERR_FORMAT, "%s: the data section (offset %llu) starts past the end of the file", path,
                       (unsigned long long)data_off);
    }
    g->data = (const uint8_t *)base + data_off;
    uint64_t data_size = size - data_off;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        gguf_tensor *t = &g->tensors[i];
        int nl = (int)(t->name.len > 100 ? 100 : t->name.len);
        uint64_t n = 1;
        for (int d = 0; d < 4; d++) {
            if (t->ne[d] == 0 || t->ne[d] > ((uint64_t)1 << 40) || n > ((uint64_t)1 << 50) / t->ne[d]) {
                kvattn_status st = kv_fail(KVATTN_ERR_FORMAT, "%s: tensor '%.*s': dimension %d = %llu is out of range",
                                           path, nl, t->name.s, d, (unsigned long long)t->ne[d]);
                gguf_free(g); /* after the message: t lives in g */
                return st;
            }
            n *= t->ne[d];
        }
        t->type = kernel_type(t->ggml_type);
        if (t->type == KVATTN_TYPE_COUNT) continue; /* sized and rejected by whoever needs it */
        const uint64_t block = t->type == KVATTN_TYPE_Q8_0 ? 32 : (uint64_t)kv_quant_block_elems(t->type);
        if (t->ne[0] % block) {
            kvattn_status st = kv_fail(
                KVATTN_ERR_FORMAT, "%s: tensor '%.*s': %s rows of %llu elements are not whole blocks of %llu", path, nl,
                t->name.s, gguf_ggml_type_name(t->ggml_type), (unsigned long long)t->ne[0], (unsigned long long)block);
            gguf_free(g);
            return st;
        }
        t->bytes = kvattn_row_bytes(t->type, (int64_t)t->ne[0]) * (n / t->ne[0]);
        if (t->offset % g->alignment || t->offset > data_size || t->bytes > data_size - t->offset) {
            kvattn_status st = kv_fail(KVATTN_ERR_FORMAT,
                                       "%s: tensor '%.*s': offset %llu + %llu bytes lies outside the %llu-byte "
                                       "data section (or is not %llu-aligned)",
                                       path, nl, t->name.s, (unsigned long long)t->offset, (unsigned long long)t->bytes,
                                       (unsigned long long)data_size, (unsigned long long)g->alignment);
            gguf_free(g);
            return st;
        }
        t->data = g->data + t->offset;
        const size_t elem_align = t->type == KVATTN_TYPE_F32 ? 4 : 2; /* f16, bf16 and q8_0's f16 scale: 2 */
        if ((uintptr_t)t->data % elem_align) {
            kvattn_status st = kv_fail(KVATTN_ERR_FORMAT,
                                       "%s: tensor '%.*s' starts at file offset %llu, not a multiple of %zu as %s "
                                       "elements need (general.alignment = %llu)",
                                       path, nl, t->name.s, (unsigned long long)(t->data - g->base), elem_align,
                                       gguf_ggml_type_name(t->ggml_type), (unsigned long long)g->alignment);
            gguf_free(g);
            return st;
        }
    }
    /* A name twice would be read as whichever came first: refused. */
    int nomem = 0;
    const gguf_str *dup_kv = first_duplicate(g->kv, g->n_kv, sizeof *g->kv, offsetof(gguf_kv, key), &nomem);
    const gguf_str *dup_t = dup_kv || nomem ? NULL
                                            : first_duplicate(g->tensors, g->n_tensors, sizeof *g->tensors,
                                                              offsetof(gguf_tensor, name), &nomem);
    if (dup_kv || dup_t || nomem) {
        const gguf_str *d = dup_kv ? dup_kv : dup_t;
        kvattn_status st = nomem
                               ? kv_fail(KVATTN_ERR_NOMEM, "%s: out of memory checking names", path)
                               : kv_fail(KVATTN_ERR_FORMAT, "%s: %s '%.*s' appears more than once", path,
                                         dup_kv ? "metadata key" : "tensor", (int)(d->len > 100 ? 100 : d->len), d->s);
        gguf_free(g);
        return st;
    }
    return KVATTN_OK;
}

void gguf_free(gguf_file *g) {
    free(g->kv);
    free(g->tensors);
    g->kv = NULL;
    g->tensors = NULL;
}

static int str_eq(gguf_str s, const char *c) { return s.len == strlen(c) && !memcmp(s.s, c, s.len); }

const gguf_kv *gguf_find(const gguf_file *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (str_eq(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

const gguf_tensor *gguf_tensor_find(const gguf_file *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (str_eq(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

int gguf_get_int(const gguf_file *g, const char *key, int64_t *out) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv) return -1;
    const uint8_t *v = kv->value;
    switch (kv->type) {
    case GGUF_U8: *out = v[0]; return 0;
    case GGUF_I8: *out = (int8_t)v[0]; return 0;
    case GGUF_U16: {
        uint16_t x;
        memcpy(&x, v, 2);
        *out = x;
        return 0;
    }
    case GGUF_I16: {
        int16_t x;
        memcpy(&x, v, 2);
        *out = x;
        return 0;
    }
    case GGUF_U32: {
        uint32_t x;
        memcpy(&x, v, 4);
        *out = x;
        return 0;
    }
    case GGUF_I32: {
        int32_t x;
        memcpy(&x, v, 4);
        *out = x;
        return 0;
    }
    case GGUF_U64: {
        uint64_t x;
        memcpy(&x, v, 8);
        if (x > INT64_MAX) return -2;
        *out = (int64_t)x;
        return 0;
    }
    case GGUF_I64: {
        int64_t x;
        memcpy(&x, v, 8);
        *out = x;
        return 0;
    }
    default: return -2;
    }
}

int gguf_get_float(const gguf_file *g, const char *key, double *out) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv) return -1;
    if (kv->type == GGUF_F32) {
        float x;
        memcpy(&x, kv->value, 4);
        *out = x;
        return 0;
    }
    if (kv->type == GGUF_F64) {
        double x;
        memcpy(&x, kv->value, 8);
        *out = x;
        return 0;
    }
    int64_t i;
    if (gguf_get_int(g, key, &i) == 0) {
        *out = (double)i;
        return 0;
    }
    return -2;
}

int gguf_get_bool(const gguf_file *g, const char *key, int *out) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv) return -1;
    if (kv->type != GGUF_BOOL) return -2;
    *out = kv->value[0] != 0;
    return 0;
}

int gguf_get_str(const gguf_file *g, const char *key, gguf_str *out) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv) return -1;
    if (kv->type != GGUF_STRING) return -2;
    uint64_t len;
    memcpy(&len, kv->value, 8);
    out->s = (const char *)kv->value + 8;
    out->len = len;
    return 0;
}

void gguf_array_strings(const gguf_kv *kv, gguf_str *out) {
    const uint8_t *p = kv->value; /* parse has checked every length lies inside the file */
    for (uint64_t k = 0; k < kv->n; k++) {
        memcpy(&out[k].len, p, 8);
        out[k].s = (const char *)p + 8;
        p += 8 + out[k].len;
    }
}
