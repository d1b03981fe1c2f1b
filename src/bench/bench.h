/* Measuring helpers shared by the library's bench and the probes in bench/. */
#ifndef KVATTN_BENCH_H
#define KVATTN_BENCH_H

#include <stddef.h>

/* Read bandwidth in GB/s: the best of `reps` reads of x[0, n) by all threads,
 * each reading `streams` far-apart parts of its share at once, a cache line
 * from each in turn (whole lines only, and only those counted; x 32-byte
 * aligned). */
double kv_read_gbps(const float *x, size_t n, int streams, int reps);

/* n floats, 64-byte aligned, each page first touched by the thread (static
 * schedule) that kv_read_gbps and the bench's cache-evicting reads have read
 * it; NULL if out of memory. Free with kv_free_aligned. */
float *kv_read_buffer(size_t n);

#endif
