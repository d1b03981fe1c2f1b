/* SVG plot of KV memory against context for the planner. */
#ifndef KVATTN_PLAN_PLOT_H
#define KVATTN_PLAN_PLOT_H

#include "kvattn.h"

typedef struct {
    const char *label;
    uint64_t bytes;
} plot_hline;

/* Writes an SVG: one line per row (KV bytes = bytes/token · context · batch,
 * log–log), horizontal lines at `hlines`, a marker at the planned context.
 * Returns 0, or -1 with errno set if the file cannot be written. */
int plan_plot_svg(const char *path, const char *title, const kvattn_plan_row *rows, int n_rows, int64_t batch,
                  int64_t ctx, const plot_hline *hlines, int n_hlines);

#endif
