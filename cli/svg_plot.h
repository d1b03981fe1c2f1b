/* Minimal SVG line charts for the CLI's --plot options. */
#ifndef KVATTN_SVG_PLOT_H
#define KVATTN_SVG_PLOT_H

#include <stdio.h>

typedef struct {
    const char *label;
    int n;
    const double *x, *y;
} svg_series;

typedef struct {
    const char *label;
    double y;
} svg_hline;

enum { SVG_LINEAR = 0, SVG_LOG = 1 };

/* Opens path and writes the header and title; NULL if it cannot be written. */
FILE *svg_open(const char *path, int width, int height, const char *title);
/* One chart at (x0, y0) of w × h: log-scale x, linear or log y, a line per
 * series with a legend at its right, dashed horizontal lines. */
void svg_panel(FILE *f, int x0, int y0, int w, int h, const char *xlabel, const char *ylabel, int ylog,
               const svg_series *s, int ns, const svg_hline *hl, int nh);
/* Closes the document; 0 on success. */
int svg_close(FILE *f);

#endif
