/* The f16/bf16 projections of a loaded model packed into panels
 * (kv_pack_panels), which the decode GEMV and the prefill GEMM read instead
 * of the rows: one layout serves both at full speed, with every token's
 * outputs the same bits whatever the batch. Q4_K projections likewise, in
 * groups of 16 rows, where the kernels have a product for them. */
#define _DEFAULT_SOURCE /* madvise */
#include "arch_tensors.h"
#include "kernels/ops.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The mapping (not a copy) that holds [p, p + n), or NULL. */
static const kv_mapping *mapped_in(const kvattn_model *m, const void *p, size_t n) {
    for (int i = 0; i < m->n_maps; i++) {
        const kv_mapping *mp = &m->maps[i];
        const char *a = mp->addr;
        if (!mp->copied && a && (const char *)p >= a && (size_t)((const char *)p - a) <= mp->size &&
            n <= mp->size - (size_t)((const char *)p - a))
            return mp;
    }
    return NULL;
}

/* The panels of every packed matrix, in one allocation: 2 MiB-aligned and
 * advised to huge pages, so that filling it faults a page per 2 MiB and the
 * GEMV's streams miss the TLB as rarely. Sized by a first walk (base NULL),
 * filled by a second. */
typedef struct {
    unsigned char *base;
    size_t used;
} panel_arena;

#define ARENA_ALIGN ((size_t)2 << 20)

/* The next `bytes` of the arena (64-byte aligned): NULL in the counting walk,
 * and where the total would overflow (skipped alike in both walks). */
static unsigned char *reserve(panel_arena *a, size_t bytes) {
    const size_t at = a->used;
    if (!bytes || bytes > SIZE_MAX - 64 - at) return NULL;
    a->used += (bytes + 63) / 64 * 64;
    return a->base ? a->base + at : NULL;
}

/* Packs W [rows][cols] if kv_panels_bytes has a layout for it (base NULL:
 * only counts its bytes). The panels replace the rows in the products, so the file's pages
 * of them are let go (the kernel reads them again from the file if the rows
 * are ever read). */
static void pack(kvattn_model *m, panel_arena *a, kvattn_matrix *W, uint64_t rows, uint64_t cols) {
    if (!W->data || W->panels || rows > INT32_MAX || cols > INT32_MAX) return;
    unsigned char *out = reserve(a, kv_panels_bytes(W->type, (int)rows, (int)cols));
    if (!out) return;
    kv_pack_panels(*W, (int)rows, (int)cols, out);
    W->panels = out;
    const size_t row_bytes = kvattn_row_bytes(W->type, (int64_t)cols);
    if (W->data != m->tok_embd.data && mapped_in(m, W->data, row_bytes * rows)) {
        const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), lo = (uintptr_t)W->data, hi = lo + row_bytes * rows;
        const uintptr_t lo_up = (lo + page - 1) / page * page, hi_down = hi / page * page;
        if (hi_down > lo_up) madvise((void *)lo_up, hi_down - lo_up, MADV_DONTNEED);
    }
}

static int is_16_bit(kvattn_type t) { return t == KVATTN_TYPE_F16 || t == KVATTN_TYPE_BF16; }

/* H heads of a [rows][cols] matrix of 16-bit type t, head h's element (r, c)
 * at base + h·head_step + r·row_step + c·col_step, packed head after head
 * into dst->panels (base NULL in the counting walk only counts). */
static void pack_heads(panel_arena *a, kvattn_matrix *dst, kvattn_type t, const unsigned char *base, size_t head_step,
                       size_t row_step, size_t col_step, int H, int rows, int cols) {
    const size_t per_head = kv_panels_bytes(t, rows, cols);
    unsigned char *out = per_head && (size_t)H <= SIZE_MAX / per_head ? reserve(a, (size_t)H * per_head) : NULL;
    if (!out) return;
    for (int h = 0; h < H; h++)
        kv_pack_panels_strided(base + (size_t)h * head_step, row_step, col_step, rows, cols,
                               out + (size_t)h * per_head);
    dst->panels = out;
    dst->type = t;
}

/* MLA's W_UKᵀ and W_UV per head, whichever layout the file has, as panels
 * in wk_b and wv_b (the absorbed attention's products with every token's
 * query and latent). */
static void pack_absorption(panel_arena *a, kvattn_layer_weights *w, const kvattn_layer_config *c) {
    const int H = c->n_heads, dc = c->kv_lora_rank, dn = c->qk_nope_head_dim, dv = c->v_head_dim;
    if (w->wk_b.panels || H < 1 || dc < 1 || dn < 1 || dv < 1) return;
    const size_t e = sizeof(uint16_t);
    if (w->wkv_b.data && is_16_bit(w->wkv_b.type)) { /* per head dn rows of W_UK, then dv of W_UV, each dc wide */
        const unsigned char *b = w->wkv_b.data;
        const size_t row = e * (size_t)dc, head = row * (size_t)(dn + dv);
        pack_heads(a, &w->wk_b, w->wkv_b.type, b, head, e, row, H, dc, dn);
        pack_heads(a, &w->wv_b, w->wkv_b.type, b + row * (size_t)dn, head, row, e, H, dv, dc);
    } else if (!w->wkv_b.data && w->wk_b.data && w->wv_b.data && is_16_bit(w->wk_b.type) && is_16_bit(w->wv_b.type)) {
        pack_heads(a, &w->wk_b, w->wk_b.type, w->wk_b.data, e * (size_t)dc * dn, e * (size_t)dn, e, H, dc, dn);
        pack_heads(a, &w->wv_b, w->wv_b.type, w->wv_b.data, e * (size_t)dv * dc, e * (size_t)dc, e, H, dv, dc);
    }
    if (!w->wk_b.panels || !w->wv_b.panels) w->wk_b.panels = w->wv_b.panels = NULL; /* both or neither */
}

/* Every matrix the products read: the layers' (but the fused W_UK/W_UV, which
 * MLA reads per head: pack_absorption) and the output. */
static void pack_all(kvattn_model *m, panel_arena *a) {
    const kvattn_model_desc *d = &m->desc;
    int n = 0;
    const kv_tensor_spec *specs = kv_arch_layer_tensors(d->arch, &n);
    for (int l = 0; specs && m->layers && l < d->n_layers; l++) {
        for (int i = 0; i < n; i++)
            if (specs[i].form == KV_FORM_MATRIX && specs[i].offset != offsetof(kv_layer, attn.wkv_b))
                pack(m, a, kv_tensor_field(&specs[i], &m->layers[l]), kv_dim_value(specs[i].rows, d),
                     kv_dim_value(specs[i].cols, d));
        if (d->attn.kind == KVATTN_ATTN_MLA) pack_absorption(a, &m->layers[l].attn, &d->attn);
    }
    pack(m, a, &m->output, (uint64_t)d->vocab_size, (uint64_t)d->attn.d_model);
}

kvattn_status kv_model_pack_panels(kvattn_model *m) {
    const char *env = getenv("KVATTN_PANELS");
    if (env && !strcmp(env, "0")) return KVATTN_OK;
    panel_arena a = {NULL, 0};
    pack_all(m, &a);
    if (!a.used) return KVATTN_OK;
    const size_t size = (a.used + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (size < a.used || !(a.base = kv_model_own(m, aligned_alloc(ARENA_ALIGN, size))))
        return kv_fail(KVATTN_ERR_NOMEM, "model: out of memory for %zu bytes of packed weights", a.used);
    madvise(a.base, size, MADV_HUGEPAGE);
    a.used = 0;
    pack_all(m, &a);
    return KVATTN_OK;
}
