/* The memory/accuracy frontier of kvattn retention as SVG. */
#ifndef KVATTN_RETENTION_PLOT_H
#define KVATTN_RETENTION_PLOT_H

#include <stdint.h>

typedef struct {
    const char *design; /* "gqa:3", "mla:96+48" (its colour)            */
    const char *method; /* "mean", "aware", "norm off", "norm kept", "" */
    double kv_bytes;    /* per token                                    */
    double delta_ppl;   /* perplexity − the original's                  */
} retention_point;

/* One point per conversion, log KV bytes per token against log Δ perplexity,
 * the original's cache as a vertical line and the frontier (the best Δ at
 * each cache size or less) as a step line. Returns 0, or -1 if the file
 * cannot be written. */
int retention_plot_svg(const char *path, const char *title, const retention_point *p, int n, double original_bytes);

#endif
