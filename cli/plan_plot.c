#include "plan_plot.h"

#include "cli_util.h"
#include "svg_plot.h"

#include <math.h>
#include <stdio.h>

#define W 900
#define H 560
#define L 100 /* margins */
#define R 230
#define T 50
#define B 60

static double xpos(double ctx, double x0, double x1) { return L + (log10(ctx) - x0) / (x1 - x0) * (W - L - R); }
static double ypos(double b, double y0, double y1) { return H - B - (log10(b) - y0) / (y1 - y0) * (H - T - B); }

/* Memory of a row at ctx tokens per sequence: its weights plus the KV cache of the batch. */
static double total_at(const kvattn_plan_row *r, int64_t batch, double ctx) {
    return (double)r->weights_bytes + (double)r->kv_bytes_per_token * (double)batch * ctx;
}

int plan_plot_svg(const char *path, const char *title, const kvattn_plan_row *rows, int n_rows, int64_t batch,
                  int64_t ctx, const plot_hline *hlines, int n_hlines) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    /* Axes: context 1K … 1M (widened to the planned context), bytes spanning every line and capacity. */
    double cmin = 1024, cmax = 1048576;
    if (ctx * 4.0 > cmax) cmax = ctx * 4.0;
    if (ctx / 4.0 < cmin) cmin = fmax(1, ctx / 4.0);
    double bmin = INFINITY, bmax = 0;
    for (int i = 0; i < n_rows; i++) {
        bmin = fmin(bmin, total_at(&rows[i], batch, cmin));
        bmax = fmax(bmax, total_at(&rows[i], batch, cmax));
    }
    for (int i = 0; i < n_hlines; i++)
        bmin = fmin(bmin, (double)hlines[i].bytes), bmax = fmax(bmax, (double)hlines[i].bytes);
    /* y spans whole powers of two; ticks every `step` doublings (at most ~8 ticks). */
    double e0 = floor(log2(bmin)), e1 = ceil(log2(bmax));
    if (e1 <= e0) e1 = e0 + 1;
    int step = 1;
    while ((e1 - e0) / step > 8) step *= 2;
    e0 = floor(e0 / step) * step;
    double x0 = log10(cmin), x1 = log10(cmax), y0 = e0 * log10(2.0), y1 = e1 * log10(2.0);

    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" "
            "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, H);
    fprintf(f, "<text x=\"%d\" y=\"28\" font-size=\"16\" font-weight=\"bold\">%s</text>\n", L, title);
    fprintf(f, "<text x=\"%d\" y=\"%d\" fill=\"#555\">dots: at %lld tokens</text>\n", W - R + 16, T + 14,
            (long long)ctx);
    /* Grid and tick labels: powers of two of context, powers of ten of bytes. */
    char buf[32];
    for (double c = pow(2, ceil(log2(cmin))); c <= cmax * 1.0001; c *= 4) {
        double x = xpos(c, x0, x1);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#eee\"/>\n", x, T, x, H - B);
        if (c >= 1048576) snprintf(buf, sizeof buf, "%gM", c / 1048576);
        else if (c >= 1024) snprintf(buf, sizeof buf, "%gK", c / 1024);
        else snprintf(buf, sizeof buf, "%g", c);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", x, H - B + 18, buf);
    }
    for (double e = e0; e <= e1; e += step) {
        double y = ypos(pow(2, e), y0, y1);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#eee\"/>\n", L, y, W - R, y);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", L - 6, y + 4,
                cli_bytes(pow(2, e), buf, sizeof buf));
    }
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444\"/>\n", L, T, W - L - R,
            H - T - B);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">context (tokens per sequence, batch %lld)</text>\n",
            L + (W - L - R) / 2, H - 18, (long long)batch);
    fprintf(f,
            "<text transform=\"translate(16,%d) rotate(-90)\" text-anchor=\"middle\">memory: weights + KV "
            "cache</text>\n",
            T + (H - T - B) / 2);
    /* Capacity lines: the memory wall. */
    for (int i = 0; i < n_hlines; i++) {
        double y = ypos((double)hlines[i].bytes, y0, y1);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#555\" stroke-dasharray=\"6,4\"/>\n", L,
                y, W - R, y);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" fill=\"#555\">%s</text>\n", L + 6, y - 4, hlines[i].label);
    }
    /* One curve per design (weights + KV, the quantity the table's total counts), a dot at the planned context. */
    for (int i = 0; i < n_rows; i++) {
        const char *col = svg_design_color(rows[i].design);
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2.5\" points=\"", col);
        for (int k = 0; k <= 64; k++) {
            const double c = pow(10, x0 + (x1 - x0) * k / 64);
            fprintf(f, "%.1f,%.1f ", xpos(c, x0, x1), ypos(total_at(&rows[i], batch, c), y0, y1));
        }
        fprintf(f, "\"/>\n");
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>\n", xpos((double)ctx, x0, x1),
                ypos(total_at(&rows[i], batch, (double)ctx), y0, y1), col);
        char kv[32];
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"4\" fill=\"%s\"/>\n", W - R + 16, T + 30 + 36 * i,
                col);
        fprintf(f, "<text x=\"%d\" y=\"%d\">%s%s: %s</text>\n", W - R + 36, T + 36 + 36 * i, rows[i].design,
                rows[i].native ? " (own)" : "", cli_bytes((double)rows[i].total_bytes, buf, sizeof buf));
        fprintf(f, "<text x=\"%d\" y=\"%d\" fill=\"#555\">KV %s of it</text>\n", W - R + 36, T + 52 + 36 * i,
                cli_bytes((double)rows[i].kv_bytes_total, kv, sizeof kv));
    }
    fprintf(f, "</svg>\n");
    return fclose(f) == 0 ? 0 : -1;
}
