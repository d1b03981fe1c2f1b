/* Software prefetch: a hint for a byte range, and the spans of rows the
 * attention's tile kernels prefetch a line at a time while they work. Plain C
 * (the builtin is an SSE instruction every x86-64 has). */
#ifndef KVATTN_PREFETCH_H
#define KVATTN_PREFETCH_H

#include <stddef.h>
#include <stdint.h>

/* Hints the cache to fetch bytes [p, p + n). */
static inline void kv_prefetch(const void *p, size_t n) {
#if defined(__GNUC__)
    for (size_t o = 0; o < n; o += 64)
        __builtin_prefetch((const char *)p + o, 0, 1); /* into L2: L1 fill buffers stall */
#else
    (void)p, (void)n;
#endif
}

/* Later rows prefetched while a tile product reads rows in place: up to four
 * spans of the cache (a stream's next rows, contiguous), prefetched a line at
 * a time, round robin over the spans, one line per 32 elements the kernel
 * reads. The prefetches then go out evenly with the work: issued in bursts
 * they wait on the fill buffers, and the FMAs behind them wait too. Taking a
 * line runs in the innermost loops, so it costs a few instructions and no
 * lookups. */
#define KV_PREFETCH_STREAMS 4
typedef struct {
    const unsigned char *span[KV_PREFETCH_STREAMS];
    unsigned spans_log2; /* spans in use: 1 << spans_log2 */
    unsigned takes;      /* takes that prefetch: lines per span << spans_log2 (0: none) */
} kv_prefetch_spans;

static const kv_prefetch_spans kv_prefetch_none = {{NULL, NULL, NULL, NULL}, 0, 0};

/* Spans over the byte ranges [start[s], start[s] + bytes[s]), s < n (at most
 * KV_PREFETCH_STREAMS): whole lines, each span as long as the longest. */
static inline kv_prefetch_spans kv_prefetch_spans_make(const void *const *start, const size_t *bytes, int n) {
    kv_prefetch_spans pf = kv_prefetch_none;
    size_t lines = 0;
    int used = 0;
    for (; used < n && used < KV_PREFETCH_STREAMS; used++) {
        const uintptr_t at = (uintptr_t)start[used];
        pf.span[used] = (const unsigned char *)(at & ~(uintptr_t)63);
        const size_t span_lines = (at % 64 + bytes[used] + 63) / 64;
        if (span_lines > lines) lines = span_lines;
    }
    if (!used || !lines) return kv_prefetch_none;
    for (; used & (used - 1); used++) pf.span[used] = pf.span[0]; /* 3 spans: the round robin takes 4 */
    pf.spans_log2 = used == 4 ? 2u : used == 2 ? 1u : 0u;
    pf.takes = (unsigned)(lines << pf.spans_log2);
    return pf;
}

/* The line the i-th take prefetches (line i >> spans_log2 of span i % spans), or NULL past the last. */
static inline const void *kv_prefetch_line(const kv_prefetch_spans *pf, unsigned i) {
    if (i >= pf->takes) return NULL;
    return pf->span[i & ((1u << pf->spans_log2) - 1u)] + (size_t)(i >> pf->spans_log2) * 64;
}

/* The i-th take, then i + 1. */
static inline void kv_prefetch_take(const kv_prefetch_spans *pf, unsigned *i) {
    if (*i < pf->takes) kv_prefetch(kv_prefetch_line(pf, *i), 1);
    ++*i;
}

/* Takes for rows of d elements: one per 32 elements (the kernels' rate). */
static inline void kv_prefetch_take_row(const kv_prefetch_spans *pf, unsigned *i, int d) {
    for (int c = 0; c < d; c += 32) kv_prefetch_take(pf, i);
}

#endif
