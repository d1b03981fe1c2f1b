#include "retention_plot.h"

#include "cli_util.h"
#include "svg_plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define W 900
#define H 580
#define L 90 /* margins */
#define R 250
#define T 50
#define B 60

/* An exact conversion has Δ 0, which a log axis cannot show: it sits on the floor. */
static double shown_delta(double d, double floor_value) { return d > floor_value ? d : floor_value; }

int retention_plot_svg(const char *path, const char *title, const retention_point *p, int n, double original_bytes) {
    FILE *f = svg_open(path, W, H, title);
    if (!f) return -1;
    double xmin = original_bytes, xmax = original_bytes, ymin = INFINITY, ymax = 0;
    for (int i = 0; i < n; i++) {
        xmin = fmin(xmin, p[i].kv_bytes), xmax = fmax(xmax, p[i].kv_bytes);
        if (p[i].delta_ppl > 0) ymin = fmin(ymin, p[i].delta_ppl), ymax = fmax(ymax, p[i].delta_ppl);
    }
    if (!(ymax > 0)) ymin = 0.01, ymax = 1;
    const double floor_value = ymin / 2;
    const double x0 = log10(xmin) - 0.08, x1 = log10(xmax) + 0.08;
    double y0 = floor(log10(floor_value)), y1 = ceil(log10(ymax));
    if (y1 <= y0) y1 = y0 + 1;
#define XP(v) (L + (log10(v) - x0) / (x1 - x0) * (W - L - R))
#define YP(v) (H - B - (log10(v) - y0) / (y1 - y0) * (H - T - B))
    double ticks[16];
    char buf[32];
    /* x ticks at the cache sizes the points have, and the original's */
    for (int i = -1; i < n; i++) {
        const double v = i < 0 ? original_bytes : p[i].kv_bytes;
        int seen = 0;
        for (int j = 0; j < i; j++) seen |= p[j].kv_bytes == v;
        if (seen || (i >= 0 && v == original_bytes)) continue;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#eee\"/>\n", XP(v), T, XP(v), H - B);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", XP(v), H - B + 18,
                cli_commas((uint64_t)v, buf, sizeof buf));
    }
    const int ny = svg_ticks(pow(10, y0), pow(10, y1), 1, ticks, 10);
    for (int i = 0; i < ny; i++) {
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#eee\"/>\n", L, YP(ticks[i]), W - R,
                YP(ticks[i]));
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", L - 6, YP(ticks[i]) + 4, ticks[i]);
    }
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444\"/>\n", L, T, W - L - R,
            H - T - B);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">KV cache bytes per token (f16)</text>\n",
            L + (W - L - R) / 2, H - 18);
    fprintf(f,
            "<text transform=\"translate(18,%d) rotate(-90)\" text-anchor=\"middle\">Δ perplexity against the "
            "original (log)</text>\n",
            T + (H - T - B) / 2);
    fprintf(f,
            "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#555\" stroke-dasharray=\"6,4\"/>\n"
            "<text x=\"%.1f\" y=\"%d\" fill=\"#555\" text-anchor=\"end\">original</text>\n",
            XP(original_bytes), T, XP(original_bytes), H - B, XP(original_bytes) - 4, T + 14);
    /* The frontier: walking up in cache size, the best Δ reached so far. */
    fprintf(f, "<polyline fill=\"none\" stroke=\"#999\" stroke-width=\"1.5\" points=\"");
    double best = INFINITY, last_x = 0;
    for (int step = 0; step < n; step++) {
        int next = -1;
        for (int i = 0; i < n; i++)
            if (p[i].kv_bytes > last_x && (next < 0 || p[i].kv_bytes < p[next].kv_bytes)) next = i;
        if (next < 0) break;
        last_x = p[next].kv_bytes;
        double here = INFINITY;
        for (int i = 0; i < n; i++)
            if (p[i].kv_bytes == last_x) here = fmin(here, shown_delta(p[i].delta_ppl, floor_value));
        if (here < best) {
            if (isfinite(best)) fprintf(f, "%.1f,%.1f ", XP(last_x), YP(best));
            best = here;
            fprintf(f, "%.1f,%.1f ", XP(last_x), YP(best));
        }
    }
    if (isfinite(best)) fprintf(f, "%.1f,%.1f", XP(original_bytes), YP(best));
    fprintf(f, "\"/>\n");
    /* The points: colour by design, shape by method; one label per design
     * and height (the shape tells norm off from kept), stacked where they
     * would overlap. */
    double *ys = malloc(sizeof(double) * (size_t)(n ? n : 1)), *label_y = malloc(sizeof(double) * (size_t)(n ? n : 1));
    if (!ys || !label_y) {
        free(ys), free(label_y), fclose(f);
        return -1;
    }
    for (int i = 0; i < n; i++) ys[i] = YP(shown_delta(p[i].delta_ppl, floor_value));
    for (int i = 0; i < n; i++) {
        const double x = XP(p[i].kv_bytes), y = ys[i];
        const char *col = svg_design_color(p[i].design);
        if (p[i].method[0] == 'm') /* mean: a square */
            fprintf(f,
                    "<rect x=\"%.1f\" y=\"%.1f\" width=\"9\" height=\"9\" fill=\"white\" stroke=\"%s\" "
                    "stroke-width=\"2\"/>\n",
                    x - 4.5, y - 4.5, col);
        else if (!strncmp(p[i].method, "norm kept", 9)) /* a triangle */
            fprintf(f, "<polygon points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f\" fill=\"%s\"/>\n", x, y - 6, x - 5.5, y + 4.5,
                    x + 5.5, y + 4.5, col);
        else fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\"/>\n", x, y, col);
        label_y[i] = y + 4;
        for (int j = 0; j < i; j++) {
            if (!isfinite(label_y[j]) || p[j].kv_bytes != p[i].kv_bytes || fabs(ys[j] - y) >= 12) continue;
            if (!strcmp(p[j].design, p[i].design)) {
                label_y[i] = NAN; /* its twin's label serves */
                break;
            }
            if (fabs(label_y[j] - label_y[i]) < 12) label_y[i] = label_y[j] + 12;
        }
        if (isfinite(label_y[i]))
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#333\">%s</text>\n", x + 8, label_y[i],
                    p[i].design);
    }
    free(ys), free(label_y);
    /* Legend */
    static const char *const shapes[] = {"● aware; MLA: latent not normed", "▲ MLA: latent normed",
                                         "□ mean-pooled (GQA paper)", "— the frontier"};
    for (int i = 0; i < 4; i++)
        fprintf(f, "<text x=\"%d\" y=\"%d\" fill=\"#333\">%s</text>\n", W - R + 14, T + 16 + 20 * i, shapes[i]);
    fprintf(f, "<text x=\"%d\" y=\"%d\" fill=\"#555\">colour: the design, as in kvattn plan</text>\n", W - R + 14,
            T + 104);
    fprintf(f, "<text x=\"%d\" y=\"%d\" fill=\"#555\">Δ 0 (exact) sits on the floor</text>\n", W - R + 14, T + 124);
#undef XP
#undef YP
    return svg_close(f);
}
