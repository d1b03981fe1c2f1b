/* Measuring helpers shared by the library's bench and the probes in bench/. */
#ifndef KVATTN_BENCH_H
#define KVATTN_BENCH_H

#include <stddef.h>

/* Read bandwidth in GB/s: the best of `reps` reads of x[0, n) by all threads,
 * each reading `streams` far-apart parts of its share at once, a cache line
 * from each in turn (whole lines only, and only those counted; x 32-byte
 * aligned). */
double kv_read_gbps(const float *x, size_t n, int streams, int reps);

#endif
