/* Argument parsing shared by the probes in bench/. */
#ifndef KVATTN_PROBE_ARGS_H
#define KVATTN_PROBE_ARGS_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* s as an integer in [lo, hi], or a message naming the program, argument and value, and exit 2. */
static inline int probe_int(const char *prog, const char *what, const char *s, int lo, int hi) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "%s: %s '%s': expected an integer in [%d, %d]\n", prog, what, s, lo, hi);
        exit(2);
    }
    return (int)v;
}

#endif
