/* Minimal SVG line charts for the CLI's --plot options, with one look across
 * them: a design has the same colour in every plot, a cache type the same
 * dashes, ticks fall on round values in units that read. */
#ifndef KVATTN_SVG_PLOT_H
#define KVATTN_SVG_PLOT_H

#include <stdio.h>

typedef struct {
    const char *label; /* "gqa:8 f16", "mla:512+64 naive q8_0": design first, then mode and type */
    int n;
    const double *x, *y;
} svg_series;

typedef struct {
    const char *label;
    double y;
} svg_hline;

/* What the y values are: they pick the tick labels' unit. */
typedef enum { SVG_MICROSECONDS, SVG_PERCENT, SVG_BYTES } svg_unit;

/* The colour of a design ("mha", "gqa:8", "mqa", "mla:512+64", ...), the same in
 * every plot: MHA red, GQA blues, MQA green, MLA purples. */
const char *svg_design_color(const char *design);
/* The stroke pattern of a label's cache type (f16 solid, q8_0 dashed, ...), "" for solid. */
const char *svg_type_dashes(const char *label);

/* Opens path and writes the header and title; NULL if it cannot be written. */
FILE *svg_open(const char *path, int width, int height, const char *title);
/* One chart at (x0, y0) of w × h: log-scale x (context, 1K = 1024), linear or
 * log y in `unit`, a line per series with the legend at its right (leave 260
 * px), dashed horizontal lines labelled inside the frame. */
void svg_panel(FILE *f, int x0, int y0, int w, int h, const char *xlabel, const char *ylabel, int ylog, svg_unit unit,
               const svg_series *s, int ns, const svg_hline *hl, int nh);
/* Closes the document; 0 on success. */
int svg_close(FILE *f);

/* Tick values for [lo, hi] on a log axis (1, 2, 5 × 10^k, thinned to at most
 * max_ticks) or a linear one (a round step); returns the count. */
int svg_ticks(double lo, double hi, int log_axis, double *ticks, int max_ticks);
/* A tick's label in the unit: µs below 1,000, then ms, then s; percent; bytes. */
const char *svg_tick_label(double v, svg_unit unit, char *buf, size_t size);

#endif
