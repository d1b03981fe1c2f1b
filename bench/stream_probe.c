/* stream_probe: this machine's read bandwidth as a function of how many
 * far-apart streams each thread reads at once — the measurement behind
 * `kvattn bench`'s eight streams per thread (src/bench/bench.c).
 *
 *   stream_probe [--mib N] [--rounds R] STREAMS...
 *
 * Reads an N MiB buffer (default 512: past this machine's caches) with each
 * stream count in turn, R rounds (default 3) alternating the counts, and
 * prints the best GB/s of each. Threads: OMP_NUM_THREADS. */
#define _POSIX_C_SOURCE 200809L
#include "bench/bench.h"
#include "internal.h"

#include "probe_util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COUNTS 16

static int parse_int(const char *what, const char *s, int lo, int hi) {
    return probe_int("stream_probe", what, s, lo, hi);
}

int main(int argc, char **argv) {
    int mib = 512, rounds = 3, counts[MAX_COUNTS], n_counts = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mib") && i + 1 < argc) mib = parse_int("--mib", argv[++i], 1, 65536);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = parse_int("--rounds", argv[++i], 1, 1000);
        else if (n_counts < MAX_COUNTS) counts[n_counts++] = parse_int("STREAMS", argv[i], 1, 256);
        else {
            fprintf(stderr, "stream_probe: at most %d stream counts\n", MAX_COUNTS);
            return 2;
        }
    }
    if (!n_counts) {
        fprintf(stderr, "usage: stream_probe [--mib N] [--rounds R] STREAMS...\n");
        return 2;
    }
    const size_t n = (size_t)mib << 20 >> 2;
    float *x = kv_read_buffer(n);
    if (!x) {
        fprintf(stderr, "stream_probe: cannot allocate %d MiB\n", mib);
        return 1;
    }
    double best[MAX_COUNTS] = {0};
    for (int r = 0; r < rounds; r++)
        for (int c = 0; c < n_counts; c++) {
            const double g = kv_read_gbps(x, n, counts[c], 1);
            if (g > best[c]) best[c] = g;
        }
    for (int c = 0; c < n_counts; c++)
        printf("%d MiB, %d stream%s per thread: %.2f GB/s\n", mib, counts[c], counts[c] > 1 ? "s" : "", best[c]);
    kv_free_aligned(x);
    return 0;
}
