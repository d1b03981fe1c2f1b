/* What a loaded model holds and how it keeps it: files mapped, buffers owned. */
#define _POSIX_C_SOURCE 200809L
#include "model.h"

#include "kernels/kernels.h"
#include "kernels/vec.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

kvattn_status kv_map_file(const char *path, kv_mapping *out) {
    out->addr = NULL;
    out->size = 0;
    kvattn_status status;
    int fd = kv_open_regular(path, &status);
    if (fd < 0) return status;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return kv_fail(KVATTN_ERR_IO, "%s: cannot examine (%s)", path, strerror(errno));
    }
    if (st.st_size == 0) {
        close(fd);
        return kv_fail(KVATTN_ERR_FORMAT, "%s: empty file", path);
    }
    const size_t size = (size_t)st.st_size;
    if (size <= KV_COPY_MAX_BYTES) { /* read whole, page-aligned like a mapping */
        void *p = NULL;
        if (posix_memalign(&p, 4096, size) != 0) {
            close(fd);
            return kv_fail(KVATTN_ERR_NOMEM, "%s: out of memory for %zu bytes", path, size);
        }
        size_t got = 0;
        while (got < size) {
            const ssize_t r = read(fd, (char *)p + got, size - got);
            if (r > 0) got += (size_t)r;
            else if (r == 0 || errno != EINTR) break;
        }
        close(fd);
        if (got != size) {
            free(p);
            return kv_fail(KVATTN_ERR_IO, "%s: read %zu of %zu bytes (the file changed?)", path, got, size);
        }
        *out = (kv_mapping){p, size, 1};
        return KVATTN_OK;
    }
    void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return kv_fail(KVATTN_ERR_IO, "%s: cannot map %zu bytes (%s)", path, size, strerror(errno));
    *out = (kv_mapping){p, size, 0};
    return KVATTN_OK;
}

void kv_unmap(kv_mapping *m) {
    if (m->addr && m->copied) free(m->addr);
    else if (m->addr) munmap(m->addr, m->size);
    m->addr = NULL;
}

void *kv_model_own(kvattn_model *m, void *p) {
    if (!p) return NULL;
    if (m->n_owned == m->cap_owned) {
        int cap = m->cap_owned ? 2 * m->cap_owned : 16;
        void **o = realloc(m->owned, sizeof(void *) * (size_t)cap);
        if (!o) {
            free(p);
            return NULL;
        }
        m->owned = o;
        m->cap_owned = cap;
    }
    m->owned[m->n_owned++] = p;
    return p;
}

const float *kv_model_f32_vector(kvattn_model *m, const void *data, kvattn_type type, int n) {
    if (type == KVATTN_TYPE_F32) return data;
    float *f = kv_model_own(m, malloc(sizeof(float) * (size_t)n));
    if (f) kv_row_load(type, data, f, n);
    return f;
}

void kvattn_model_free(kvattn_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_maps; i++) kv_unmap(&m->maps[i]);
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->layers);
    if (!m->tokenizer_borrowed) kvattn_tokenizer_free(m->tokenizer);
    free(m);
}

const kvattn_model_desc *kvattn_model_describe(const kvattn_model *m) { return m ? &m->desc : NULL; }
const char *kvattn_model_format(const kvattn_model *m) { return m ? m->format : ""; }
uint64_t kvattn_model_weight_bytes(const kvattn_model *m) { return m ? m->weight_bytes : 0; }
const kvattn_tokenizer *kvattn_model_tokenizer(const kvattn_model *m) { return m ? m->tokenizer : NULL; }
const char *kvattn_model_tokenizer_error(const kvattn_model *m) { return m ? m->tokenizer_error : ""; }
const char *kvattn_model_chat_template(const kvattn_model *m) { return m ? m->chat_template : NULL; }
const char *kvattn_model_provenance(const kvattn_model *m) { return m ? m->provenance : ""; }
