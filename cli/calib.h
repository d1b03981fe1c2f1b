/* Calibration text for kvattn convert and kvattn retention: a file's tokens,
 * or text the model samples itself. */
#ifndef KVATTN_CALIB_H
#define KVATTN_CALIB_H

#include "kvattn.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *file; /* --calib FILE, or NULL to sample                            */
    int64_t n_tokens; /* tokens to sample                                           */
    int64_t ctx;      /* sampling windows of this many positions, each from BOS     */
    int64_t seed;
    const char *save;   /* --save-calib FILE: the sampled text, or NULL               */
    int64_t streams;    /* windows sampled at once (0: 1, the text of one session)    */
    double temperature; /* the sampler's temperature (0: 1)                        */
} calib_opts;

/* The calibration tokens (malloc'd, without BOS) and a description of where
 * they came from. Says what failed on stderr and returns 1; 0 on success. */
int calib_tokens(const kvattn_model *m, const calib_opts *c, int32_t **ids, int *n_ids, char *source,
                 size_t source_size, const char *cmd);

#endif
