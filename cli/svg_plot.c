#include "svg_plot.h"

#include <math.h>

static const char *const colors[] = {"#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e",
                                     "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};

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

static double tx(double v, int lg) { return lg ? log10(v) : v; }

void svg_panel(FILE *f, int x0, int y0, int w, int h, const char *xlabel, const char *ylabel, int ylog,
               const svg_series *s, int ns, const svg_hline *hl, int nh) {
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int i = 0; i < ns; i++)
        for (int k = 0; k < s[i].n; k++) {
            if (s[i].x[k] <= 0 || (ylog && s[i].y[k] <= 0)) continue;
            xmin = fmin(xmin, s[i].x[k]), xmax = fmax(xmax, s[i].x[k]);
            ymin = fmin(ymin, s[i].y[k]), ymax = fmax(ymax, s[i].y[k]);
        }
    for (int i = 0; i < nh; i++) ymin = fmin(ymin, hl[i].y), ymax = fmax(ymax, hl[i].y);
    if (!(xmax > xmin)) xmax = xmin * 2 + 1, xmin = xmin > 0 ? xmin : 1;
    if (ylog) ymin = pow(10, floor(log10(ymin))), ymax = pow(10, ceil(log10(ymax)));
    else ymin = 0, ymax = ymax * 1.1 + 1e-9;
    double lx0 = log10(xmin), lx1 = log10(xmax), ly0 = tx(ymin, ylog), ly1 = tx(ymax, ylog);
#define PX(v) (x0 + (log10(v) - lx0) / (lx1 - lx0) * w)
#define PY(v) (y0 + h - (tx(v, ylog) - ly0) / (ly1 - ly0) * h)
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444\"/>\n", x0, y0, w, h);
    for (double v = pow(2, ceil(log2(xmin))); v <= xmax * 1.0001; v *= 2) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#eee\"/>\n", PX(v), y0, PX(v), y0 + h);
        if (v >= 1024)
            fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%gK</text>\n", PX(v), y0 + h + 16, v / 1024);
        else fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", PX(v), y0 + h + 16, v);
    }
    for (int i = 0; i <= 5; i++) {
        double v = ylog ? pow(10, ly0 + (ly1 - ly0) * i / 5) : ymin + (ymax - ymin) * i / 5;
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#eee\"/>\n", x0, PY(v), x0 + w, PY(v));
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n", x0 - 6, PY(v) + 4, v);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", x0 + w / 2, y0 + h + 36, xlabel);
    fprintf(f, "<text transform=\"translate(%d,%d) rotate(-90)\" text-anchor=\"middle\">%s</text>\n", x0 - 60,
            y0 + h / 2, ylabel);
    for (int i = 0; i < nh; i++) {
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#555\" stroke-dasharray=\"6,4\"/>\n", x0,
                PY(hl[i].y), x0 + w, PY(hl[i].y));
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" fill=\"#555\">%s</text>\n", x0 + w + 6, PY(hl[i].y) + 4, hl[i].label);
    }
    for (int i = 0; i < ns; i++) {
        const char *c = colors[i % 10];
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", c);
        for (int k = 0; k < s[i].n; k++)
            if (s[i].x[k] > 0 && (!ylog || s[i].y[k] > 0)) fprintf(f, "%.1f,%.1f ", PX(s[i].x[k]), PY(s[i].y[k]));
        fprintf(f, "\"/>\n");
        for (int k = 0; k < s[i].n; k++)
            if (s[i].x[k] > 0 && (!ylog || s[i].y[k] > 0))
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", PX(s[i].x[k]), PY(s[i].y[k]), c);
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"4\" fill=\"%s\"/>\n", x0 + w + 16, y0 + 20 + 18 * i,
                c);
        fprintf(f, "<text x=\"%d\" y=\"%d\">%s</text>\n", x0 + w + 36, y0 + 26 + 18 * i, s[i].label);
    }
#undef PX
#undef PY
}
