/* Reader of the golden fixtures written by tests/golden/gen_golden.py. */
#ifndef KVATTN_GOLDEN_FILE_H
#define KVATTN_GOLDEN_FILE_H

#include <stdint.h>

#define MAX_ARRAYS 256

typedef struct {
    char name[64];
    int n;
    int n_dims;
    uint32_t dims[4]; /* as written: slowest first (torch order) */
    float *data;
} golden_array;

typedef struct {
    golden_array a[MAX_ARRAYS];
    int count;
} golden_file;

int golden_load(const char *path, golden_file *g);
void golden_free(golden_file *g);
const golden_array *get(const golden_file *g, const char *name);
const float *arr(const golden_file *g, const char *name);
float num(const golden_file *g, const char *name);

#endif
