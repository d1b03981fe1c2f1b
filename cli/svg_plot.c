/* SVG line charts with one look across the CLI's plots (svg_plot.h). */
#include "svg_plot.h"

#include "cli_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *svg_design_color(const char *d) {
    static const char *const gqa[] = {"#1f77b4", "#17becf", "#4a6fe3", "#0b3d91", "#6baed6"};
    static const char *const mla[] = {"#9467bd", "#e377c2", "#6a3d9a", "#c51b8a"};
    if (!strncmp(d, "mha", 3)) return "#d62728";
    if (!strncmp(d, "mqa", 3)) return "#2ca02c";
    if (!strncmp(d, "gqa:", 4)) return gqa[(unsigned)atoi(d + 4) % 5];
    if (!strncmp(d, "mla:", 4)) { /* by rank, so mla:512+64 is one colour wherever it appears */
        unsigned h = 0;
        for (const char *p = d + 4; *p && *p != ' '; p++) h = h * 31 + (unsigned char)*p;
        return mla[h % 4];
    }
    return "#7f7f7f";
}

const char *svg_type_dashes(const char *label) {
    if (strstr(label, "q8_0")) return "7,4";
    if (strstr(label, "bf16")) return "2,3";
    if (strstr(label, "f32")) return "10,3,2,3";
    return "";
}

FILE *svg_open(const char *path, int width, int height, const char *title) {
    FILE *f = fopen(path, "w");
    if (!f) return NULL;
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" "
            "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"20\" y=\"28\" font-size=\"15\" font-weight=\"bold\">%s</text>\n",
            width, height, title);
    return f;
}

int svg_close(FILE *f) {
    fprintf(f, "</svg>\n");
    return fclose(f) == 0 ? 0 : -1;
}

int svg_ticks(double lo, double hi, int log_axis, double *ticks, int max_ticks) {
    int n = 0;
    if (log_axis) {
        static const double mant[3] = {1, 2, 5};
        for (int thin = 1; thin <= 3; thin++) { /* 1-2-5, then 1-5, then decades, then every other decade */
            n = 0;
            for (int e = (int)floor(log10(lo)) - 1; e <= (int)ceil(log10(hi)) + 1 && n <= max_ticks; e++)
                for (int k = 0; k < 3; k++) {
                    if ((thin == 2 && k == 1) || (thin == 3 && k > 0)) continue;
                    const double v = mant[k] * pow(10, e);
                    if (v >= lo * 0.999 && v <= hi * 1.001 && n <= max_ticks) ticks[n++] = v;
                }
            if (n <= max_ticks) return n;
        }
        n = 0;
        for (int e = (int)ceil(log10(lo)); e <= (int)floor(log10(hi)) && n < max_ticks; e += 2) ticks[n++] = pow(10, e);
        return n;
    }
    const double raw = (hi - lo) / (max_ticks > 1 ? max_ticks - 1 : 1), p = pow(10, floor(log10(raw)));
    const double step = raw <= p ? p : raw <= 2 * p ? 2 * p : raw <= 5 * p ? 5 * p : 10 * p;
    for (double v = ceil(lo / step) * step; v <= hi * 1.0001 && n < max_ticks; v += step) ticks[n++] = v;
    return n;
}

const char *svg_tick_label(double v, svg_unit unit, char *buf, size_t size) {
    switch (unit) {
    case SVG_MICROSECONDS:
        if (v >= 1e6) snprintf(buf, size, "%g s", v / 1e6);
        else if (v >= 1e3) snprintf(buf, size, "%g ms", v / 1e3);
        else snprintf(buf, size, "%g µs", v);
        break;
    case SVG_PERCENT: snprintf(buf, size, "%g%%", v); break;
    case SVG_BYTES: cli_bytes(v, buf, size); break;
    }
    return buf;
}

static double tx(double v, int lg) { return lg ? log10(v) : v; }

void svg_panel(FILE *f, int x0, int y0, int w, int h, const char *xlabel, const char *ylabel, int ylog, svg_unit unit,
               const svg_series *s, int ns, const svg_hline *hl, int nh) {
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int i = 0; i < ns; i++)
        for (int k = 0; k < s[i].n; k++) {
            if (s[i].x[k] <= 0 || (ylog && s[i].y[k] <= 0)) continue;
            xmin = fmin(xmin, s[i].x[k]), xmax = fmax(xmax, s[i].x[k]);
            ymin = fmin(ymin, s[i].y[k]), ymax = fmax(ymax, s[i].y[k]);
        }
    for (int i = 0; i < nh; i++) ymin = fmin(ymin, hl[i].y), ymax = fmax(ymax, hl[i].y);
    if (!(xmax > xmin)) xmax = (xmin > 0 ? xmin : 1) * 2, xmin = xmax / 4;
    if (!(ymax > ymin)) ymax = (ymin > 0 ? ymin : 1) * 2, ymin = ylog ? ymax / 4 : 0;
    double yt[16];
    if (ylog) { /* whole 1-2-5 steps around the data */
        ymin = pow(10, floor(log10(ymin) * 3) / 3), ymax = pow(10, ceil(log10(ymax) * 3) / 3);
    } else {
        ymin = 0;
        const int n = svg_ticks(0, ymax * 1.05, 0, yt, 7); /* the top at a round tick above the data */
        if (n >= 2) ymax = yt[n - 1] >= ymax ? yt[n - 1] : yt[n - 1] + (yt[1] - yt[0]);
    }
    const double lx0 = log10(xmin), lx1 = log10(xmax), ly0 = tx(ymin, ylog), ly1 = tx(ymax, ylog);
#define PX(v) (x0 + (log10(v) - lx0) / (lx1 - lx0) * w)
#define PY(v) (y0 + h - (tx(v, ylog) - ly0) / (ly1 - ly0) * h)
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444\"/>\n", x0, y0, w, h);
    /* x: powers of two of context, every other one when they would crowd */
    int xstep = 1;
    while (log2(xmax / xmin) / xstep > 8) xstep *= 2;
    for (double v = pow(2, ceil(log2(xmin))); v <= xmax * 1.0001; v *= pow(2, xstep)) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#eee\"/>\n", PX(v), y0, PX(v), y0 + h);
        if (v >= 1048576)
            fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%gM</text>\n", PX(v), y0 + h + 16,
                    v / 1048576);
        else if (v >= 1024)
            fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%gK</text>\n", PX(v), y0 + h + 16, v / 1024);
        else fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", PX(v), y0 + h + 16, v);
    }
    const int nyt = svg_ticks(ymin, ymax, ylog, yt, 9);
    char buf[32];
    for (int i = 0; i < nyt; i++) {
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#eee\"/>\n", x0, PY(yt[i]), x0 + w,
                PY(yt[i]));
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", x0 - 6, PY(yt[i]) + 4,
                svg_tick_label(yt[i], unit, buf, sizeof buf));
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", x0 + w / 2, y0 + h + 36, xlabel);
    fprintf(f, "<text transform=\"translate(%d,%d) rotate(-90)\" text-anchor=\"middle\">%s</text>\n", x0 - 72,
            y0 + h / 2, ylabel);
    for (int i = 0; i < nh; i++) { /* labelled inside the frame, left, just above the line */
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#555\" stroke-dasharray=\"6,4\"/>\n", x0,
                PY(hl[i].y), x0 + w, PY(hl[i].y));
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" fill=\"#555\">%s</text>\n", x0 + 6, PY(hl[i].y) - 4, hl[i].label);
    }
    for (int i = 0; i < ns; i++) {
        const char *c = svg_design_color(s[i].label), *dash = svg_type_dashes(s[i].label);
        const char *fade = strstr(s[i].label, "naive") ? " stroke-opacity=\"0.5\"" : "";
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\"%s stroke-width=\"2\" stroke-dasharray=\"%s\" points=\"", c,
                fade, dash);
        for (int k = 0; k < s[i].n; k++)
            if (s[i].x[k] > 0 && (!ylog || s[i].y[k] > 0)) fprintf(f, "%.1f,%.1f ", PX(s[i].x[k]), PY(s[i].y[k]));
        fprintf(f, "\"/>\n");
        for (int k = 0; k < s[i].n; k++)
            if (s[i].x[k] > 0 && (!ylog || s[i].y[k] > 0))
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", PX(s[i].x[k]), PY(s[i].y[k]), c);
        fprintf(f,
                "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\"%s stroke-width=\"3\" "
                "stroke-dasharray=\"%s\"/>\n",
                x0 + w + 16, y0 + 22 + 18 * i, x0 + w + 40, y0 + 22 + 18 * i, c, fade, dash);
        fprintf(f, "<text x=\"%d\" y=\"%d\">%s</text>\n", x0 + w + 46, y0 + 26 + 18 * i, s[i].label);
    }
#undef PX
#undef PY
}
