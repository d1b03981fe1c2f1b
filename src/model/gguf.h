/* GGUF v2/v3 reader: metadata and tensor directory of a mapped file, every
 * size and offset checked against the file before use. */
#ifndef KVATTN_GGUF_H
#define KVATTN_GGUF_H

#include "internal.h"

typedef enum {
    GGUF_U8 = 0,
    GGUF_I8,
    GGUF_U16,
    GGUF_I16,
    GGUF_U32,
    GGUF_I32,
    GGUF_F32,
    GGUF_BOOL,
    GGUF_STRING,
    GGUF_ARRAY,
    GGUF_U64,
    GGUF_I64,
    GGUF_F64,
    GGUF_TYPE_COUNT
} gguf_type;

typedef struct {
    const char *s;
    uint64_t len;
} gguf_str;

typedef struct {
    gguf_str key;
    gguf_type type;
    const uint8_t *value; /* scalar value, or the first array element       */
    gguf_type elem_type;  /* arrays                                         */
    uint64_t n;           /* arrays: element count                          */
    const uint8_t *end;   /* one past the value                             */
} gguf_kv;

typedef struct {
    gguf_str name;
    uint32_t n_dims;
    uint64_t ne[4]; /* ne[0] fastest-varying                          */
    uint32_t ggml_type;
    uint64_t offset; /* from the data section                          */
    const uint8_t *data;
    uint64_t bytes;
    kvattn_type type; /* KVATTN_TYPE_COUNT if the kernels cannot read it */
} gguf_tensor;

typedef struct {
    const char *path;
    const uint8_t *base;
    uint64_t size;
    uint32_t version;
    gguf_kv *kv;
    uint64_t n_kv;
    gguf_tensor *tensors;
    uint64_t n_tensors;
    uint64_t alignment;
    const uint8_t *data;
} gguf_file;

/* Parses a mapped GGUF; errors name the file and the field or tensor. */
kvattn_status gguf_parse(const char *path, const void *base, uint64_t size, gguf_file *g);
void gguf_free(gguf_file *g);

const gguf_kv *gguf_find(const gguf_file *g, const char *key);
const gguf_tensor *gguf_tensor_find(const gguf_file *g, const char *name);
/* Integer metadata (any integer type) into *out; -1 missing, -2 wrong type. */
int gguf_get_int(const gguf_file *g, const char *key, int64_t *out);
int gguf_get_float(const gguf_file *g, const char *key, double *out);
int gguf_get_bool(const gguf_file *g, const char *key, int *out);
/* A string value (not NUL-terminated); -1 missing, -2 wrong type. */
int gguf_get_str(const gguf_file *g, const char *key, gguf_str *out);
/* Every element of a string array (out has kv->n entries). */
void gguf_array_strings(const gguf_kv *kv, gguf_str *out);
const char *gguf_ggml_type_name(uint32_t t);

#endif
