/* What the probes in bench/ share: argument parsing, a clock, random inputs. */
#ifndef KVATTN_PROBE_UTIL_H
#define KVATTN_PROBE_UTIL_H

#include "kvattn.h"
#include "rng.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* s as an element type the kernels read (f32 only when allow_f32), or a
 * message naming the program, option and value, and exit 2. */
static inline kvattn_type probe_type(const char *prog, const char *s, int allow_f32) {
    kvattn_type t;
    if (kvattn_type_from_name(s, &t) != KVATTN_OK || !kvattn_type_is_cache_type(t) ||
        (!allow_f32 && t == KVATTN_TYPE_F32)) {
        fprintf(stderr, "%s: --type '%s': expected %sf16, bf16 or q8_0\n", prog, s, allow_f32 ? "f32, " : "");
        exit(2);
    }
    return t;
}

/* Seconds on the monotonic clock. */
static inline double probe_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
