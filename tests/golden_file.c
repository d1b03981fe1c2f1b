#include "golden_file.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int read_u32(FILE *f, uint32_t *v) { return fread(v, 4, 1, f) == 1 ? 0 : -1; }

int golden_load(const char *path, golden_file *g) {
    memset(g, 0, sizeof *g);
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char magic[8];
    uint32_t count;
    int rc = -1;
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, "KVGOLD01", 8) || read_u32(f, &count) || count > MAX_ARRAYS)
        goto out;
    for (uint32_t i = 0; i < count; i++) {
        golden_array *a = &g->a[i];
        uint32_t len, ndim, n = 1;
        if (read_u32(f, &len) || len >= sizeof a->name || fread(a->name, 1, len, f) != len) goto out;
        if (read_u32(f, &ndim) || ndim > 4) goto out;
        a->n_dims = (int)ndim;
        for (uint32_t j = 0; j < ndim; j++) {
            if (read_u32(f, &a->dims[j]) || a->dims[j] > (1u << 20)) goto out;
            n *= a->dims[j];
        }
        if (n > (1u << 22)) goto out;
        a->n = (int)n;
        a->data = malloc(sizeof(float) * (n ? n : 1));
        g->count = (int)i + 1;
        if (!a->data || fread(a->data, sizeof(float), n, f) != n) goto out;
    }
    rc = 0;
out:
    fclose(f);
    return rc;
}

void golden_free(golden_file *g) {
    for (int i = 0; i < g->count; i++) free(g->a[i].data);
    g->count = 0;
}

const golden_array *get(const golden_file *g, const char *name) {
    for (int i = 0; i < g->count; i++)
        if (!strcmp(g->a[i].name, name)) return &g->a[i];
    return NULL;
}

const float *arr(const golden_file *g, const char *name) {
    const golden_array *a = get(g, name);
    return a ? a->data : NULL;
}

float num(const golden_file *g, const char *name) {
    const golden_array *a = get(g, name);
    return a && a->n == 1 ? a->data[0] : NAN;
}
