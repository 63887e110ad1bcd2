/* svg-plot.h — small inline-SVG charts for cldp-train's report: line charts (gaps at NaN, markers
 * where points are few), bars (stacked, side by side in groups) and a Gantt chart of lanes, each
 * with a title, a legend, axes with round-numbered ticks, and every text escaped. Writes to a
 * FILE; keeps no state. The data marks carry class "mark" and an explicit colour (no opacity),
 * and the plotting area is a rect of class "plot-area", so a test can find them in a screenshot. */
#ifndef SVG_PLOT_H
#define SVG_PLOT_H

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- text ---------------------------------------------------------------------------- */

/* Writes s with the five characters XML gives a meaning escaped, and control characters (which
 * XML 1.0 forbids) as spaces: safe in element text and in attribute values. */
static void xml_text(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '&') fputs("&amp;", f);
        else if (c == '<') fputs("&lt;", f);
        else if (c == '>') fputs("&gt;", f);
        else if (c == '"') fputs("&quot;", f);
        else if (c == '\'') fputs("&#39;", f);
        else if (c < 0x20 || c == 0x7f) fputc(' ', f);
        else fputc(c, f);
    }
}

/* A text element at (x, y); anchor: "start", "middle" or "end"; cls: its CSS class. */
static void svg_text(FILE *f, double x, double y, const char *anchor, const char *cls, const char *s)
{
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" class=\"%s\">", x, y, anchor, cls);
    xml_text(f, s);
    fputs("</text>\n", f);
}

/* The colour halfway (t = 0.5) from c (#rrggbb) to white, written into out (8 bytes). */
static void svg_tint(char out[8], const char *c, double t)
{
    unsigned r = 0, g = 0, b = 0;
    if (!c || sscanf(c, "#%2x%2x%2x", &r, &g, &b) != 3) r = g = b = 128;
    snprintf(out, 8, "#%02x%02x%02x", (unsigned)(r + (255 - r) * t + 0.5) & 255, (unsigned)(g + (255 - g) * t + 0.5) & 255,
             (unsigned)(b + (255 - b) * t + 0.5) & 255);
}

/* ---- axes ---------------------------------------------------------------------------- */

/* A chart's geometry: the SVG's size, the plotting area inside it and the data ranges. */
typedef struct plot_frame {
    int w, h;                      /* the whole SVG, pixels */
    double left, top, right, bottom; /* the plotting area, pixels from the SVG's top left */
    double x0, x1, y0, y1;         /* the data range the area shows */
} plot_frame;

static double frame_x(const plot_frame *fr, double x) { return fr->left + (x - fr->x0) / (fr->x1 - fr->x0) * (fr->right - fr->left); }
static double frame_y(const plot_frame *fr, double y) { return fr->bottom - (y - fr->y0) / (fr->y1 - fr->y0) * (fr->bottom - fr->top); }

/* A round step (1, 2 or 5 times a power of ten) that cuts `range` into about `target` parts. */
static double nice_step(double range, int target)
{
    if (!(range > 0) || !isfinite(range)) return 1;
    double raw = range / target, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

/* Widens [*lo, *hi] to round numbers (a flat or empty range first gets some height). */
static void nice_range(double *lo, double *hi, int target)
{
    if (!isfinite(*lo) || !isfinite(*hi)) *lo = 0, *hi = 1;
    if (*hi - *lo <= 1e-12 * (fabs(*lo) + fabs(*hi))) {
        double d = fabs(*lo) > 0 ? fabs(*lo) * 0.1 : 1;
        *lo -= d, *hi += d;
    }
    double s = nice_step(*hi - *lo, target);
    *lo = floor(*lo / s + 1e-9) * s;
    *hi = ceil(*hi / s - 1e-9) * s;
}

/* A tick's label: as many decimals as the step needs; on an axis reaching top (its largest
 * magnitude) 10000 or more, every label in thousands ("20k"), so that the labels agree. */
static void tick_label(char *buf, size_t cap, double v, double step, double top)
{
    if (fabs(v) < step * 1e-6) v = 0; /* no "-0" */
    int kilo = top >= 1e4;
    if (kilo) v /= 1000, step /= 1000;
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    snprintf(buf, cap, "%.*f%s", dec > 6 ? 6 : dec, v, kilo && v != 0 ? "k" : "");
}

/* Opens an SVG of w x h with its title and an empty area below the legend line: left margin for
 * the y ticks, room at the bottom for the x ticks and label. */
static void plot_begin(FILE *f, plot_frame *fr, const char *id, int w, int h, const char *title)
{
    memset(fr, 0, sizeof *fr);
    fr->w = w, fr->h = h;
    fr->left = 70, fr->top = 58, fr->right = w - 24, fr->bottom = h - 50;
    fprintf(f, "<svg id=\""); /* inline in HTML: no namespace needed, no URL in the page */
    xml_text(f, id);
    fprintf(f, "\" class=\"plot\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"", w, h, w, h);
    xml_text(f, title);
    fprintf(f, "\">\n<rect x=\"0.5\" y=\"0.5\" width=\"%d\" height=\"%d\" rx=\"6\" class=\"bg\"/>\n", w - 1, h - 1);
    svg_text(f, 16, 24, "start", "title", title);
}

/* Gridlines, ticks and tick labels on both axes, the axis labels and the area's frame. x ticks
 * are whole numbers when integer_x; xlabels (may be NULL) names the ticks instead of numbers. */
static void plot_axes(FILE *f, const plot_frame *fr, const char *xlabel, const char *ylabel, int integer_x)
{
    fprintf(f, "<rect class=\"plot-area\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>\n", fr->left, fr->top,
            fr->right - fr->left, fr->bottom - fr->top);
    char buf[64];
    double ys = nice_step(fr->y1 - fr->y0, 5);
    for (double i = ceil(fr->y0 / ys - 1e-9), v = i * ys; v <= fr->y1 + ys * 1e-9; v = ++i * ys) {
        double y = frame_y(fr, v);
        fprintf(f, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>\n", fr->left, fr->right, y, y);
        fprintf(f, "<line class=\"tick\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>\n", fr->left - 5, fr->left, y, y);
        tick_label(buf, sizeof buf, v, ys, fmax(fabs(fr->y0), fabs(fr->y1)));
        svg_text(f, fr->left - 8, y + 4, "end", "ticklabel", buf);
    }
    double xs = nice_step(fr->x1 - fr->x0, (int)((fr->right - fr->left) / 70) + 1);
    if (integer_x && xs < 1) xs = 1;
    for (double i = ceil(fr->x0 / xs - 1e-9), v = i * xs; v <= fr->x1 + xs * 1e-9; v = ++i * xs) {
        double x = frame_x(fr, v);
        fprintf(f, "<line class=\"tick\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>\n", x, x, fr->bottom, fr->bottom + 5);
        tick_label(buf, sizeof buf, v, xs, fmax(fabs(fr->x0), fabs(fr->x1)));
        svg_text(f, x, fr->bottom + 19, "middle", "ticklabel", buf);
    }
    svg_text(f, (fr->left + fr->right) / 2, fr->h - 12, "middle", "axislabel", xlabel);
    fprintf(f, "<text class=\"axislabel\" text-anchor=\"middle\" transform=\"translate(18 %.1f) rotate(-90)\">",
            (fr->top + fr->bottom) / 2);
    xml_text(f, ylabel);
    fputs("</text>\n", f);
}

/* One legend entry after another below the title, from x = 16, on as many lines as they need:
 * each line pushes the plotting area down. */
static void legend_item(FILE *f, plot_frame *fr, double *x, const char *color, int dashed, const char *name)
{
    double width = 24 + 7.0 * (double)strlen(name ? name : "") + 18; /* about 7 pixels a character */
    if (*x > 16 && *x + width > fr->w - 16) *x = 16, fr->top += 17; /* a new line */
    double y = fr->top - 17;
    if (dashed)
        fprintf(f, "<line class=\"legend-swatch\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\" "
                   "stroke-dasharray=\"5 3\"/>\n", *x, *x + 18, y, y, color);
    else fprintf(f, "<rect class=\"legend-swatch\" x=\"%.1f\" y=\"%.1f\" width=\"18\" height=\"12\" fill=\"%s\"/>\n", *x, y - 6, color);
    svg_text(f, *x + 24, y + 4, "start", "legend", name);
    *x += width;
}

/* A line across the area saying that nothing is there to draw. */
static void plot_empty(FILE *f, const plot_frame *fr, const char *why)
{
    svg_text(f, (fr->left + fr->right) / 2, (fr->top + fr->bottom) / 2, "middle", "nodata", why);
}

/* ---- charts ---------------------------------------------------------------------------- */

/* One data series: n values (a NaN or infinity is a missing point) in a colour. For bars,
 * series with the same group stack into one bar, groups stand side by side. */
typedef struct plot_series {
    const char *name;     /* the legend's text; NULL: not in the legend */
    const char *color;    /* #rrggbb */
    const double *y;      /* (n) */
    int dashed;           /* lines: drawn dashed */
    int group;            /* bars: the bar (0, 1, ...) of its x it stacks into */
} plot_series;

/* The range of the series' finite values into *lo, *hi (NaN when there is none). */
static void series_range(const plot_series *s, size_t ns, size_t n, double *lo, double *hi)
{
    *lo = NAN, *hi = NAN;
    for (size_t k = 0; k < ns; k++)
        for (size_t i = 0; i < n; i++) {
            double v = s[k].y[i];
            if (!isfinite(v)) continue;
            if (!(v >= *lo)) *lo = v;
            if (!(v <= *hi)) *hi = v;
        }
}

static void plot_legend(FILE *f, plot_frame *fr, const plot_series *s, size_t ns)
{
    double x = 16;
    for (size_t k = 0; k < ns; k++)
        if (s[k].name) legend_item(f, fr, &x, s[k].color, s[k].dashed, s[k].name);
}

/* A line chart of series over x (n points, ascending). The y range covers the data and, where
 * not NaN, ymin and ymax. Points get markers when there are few of them (and always when a point
 * stands alone between gaps), each with a tooltip. */
static void plot_lines(FILE *f, const char *id, int w, int h, const char *title, const char *xlabel, const char *ylabel,
                       const double *x, size_t n, const plot_series *s, size_t ns, double ymin, double ymax)
{
    plot_frame fr;
    plot_begin(f, &fr, id, w, h, title);
    plot_legend(f, &fr, s, ns);
    double lo, hi;
    series_range(s, ns, n, &lo, &hi);
    int empty = !isfinite(lo);
    if (isfinite(ymin) && !(lo <= ymin)) lo = ymin;
    if (isfinite(ymax) && !(hi >= ymax)) hi = ymax;
    if (!isfinite(lo)) lo = 0, hi = 1;
    double pad = (hi - lo) * 0.04; /* the curves off the frame */
    fr.y0 = isfinite(ymin) && lo >= ymin ? lo : lo - pad;
    fr.y1 = isfinite(ymax) && hi <= ymax ? hi : hi + pad;
    nice_range(&fr.y0, &fr.y1, 5);
    fr.x0 = n ? x[0] : 0, fr.x1 = n ? x[n - 1] : 1;
    if (fr.x1 - fr.x0 < 1e-9) fr.x0 -= 0.5, fr.x1 += 0.5; /* one point: in the middle */
    plot_axes(f, &fr, xlabel, ylabel, 1);
    if (empty) plot_empty(f, &fr, "no finite values to draw");
    int markers = n <= 60;
    for (size_t k = 0; k < ns; k++) {
        const double *y = s[k].y;
        fprintf(f, "<path class=\"mark line\" fill=\"none\" stroke=\"%s\" stroke-width=\"2.5\"%s d=\"", s[k].color,
                s[k].dashed ? " stroke-dasharray=\"7 4\"" : "");
        int pen = 0;
        for (size_t i = 0; i < n; i++) {
            if (!isfinite(y[i])) {
                pen = 0;
                continue;
            }
            fprintf(f, "%c%.1f %.1f ", pen ? 'L' : 'M', frame_x(&fr, x[i]), frame_y(&fr, y[i]));
            pen = 1;
        }
        fputs("\"/>\n", f);
        for (size_t i = 0; i < n; i++) {
            int alone = isfinite(y[i]) && (i == 0 || !isfinite(y[i - 1])) && (i + 1 == n || !isfinite(y[i + 1]));
            if (!isfinite(y[i]) || (!markers && !alone)) continue;
            fprintf(f, "<circle class=\"mark point\" cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"><title>", frame_x(&fr, x[i]),
                    frame_y(&fr, y[i]), s[k].color);
            xml_text(f, s[k].name);
            fprintf(f, " at %g: %.6g</title></circle>\n", x[i], y[i]);
        }
    }
    fputs("</svg>\n", f);
}

/* Bars at each of n consecutive whole x values: the series of one group stacked into one bar,
 * the groups side by side. The y range starts at 0 and covers the tallest bar and ymax (when
 * not NaN). */
static void plot_bars(FILE *f, const char *id, int w, int h, const char *title, const char *xlabel, const char *ylabel,
                      const double *x, size_t n, const plot_series *s, size_t ns, double ymax)
{
    plot_frame fr;
    plot_begin(f, &fr, id, w, h, title);
    plot_legend(f, &fr, s, ns);
    int groups = 0;
    for (size_t k = 0; k < ns; k++)
        if (s[k].group + 1 > groups) groups = s[k].group + 1;
    double top = 0;
    for (size_t i = 0; i < n; i++)
        for (int g = 0; g < groups; g++) {
            double sum = 0;
            for (size_t k = 0; k < ns; k++)
                if (s[k].group == g && isfinite(s[k].y[i]) && s[k].y[i] > 0) sum += s[k].y[i];
            if (sum > top) top = sum;
        }
    fr.y0 = 0, fr.y1 = isfinite(ymax) && ymax * (1 + 1e-9) >= top ? ymax : top > 0 ? top * 1.04 : 1;
    nice_range(&fr.y0, &fr.y1, 5);
    fr.x0 = n ? x[0] - 0.5 : 0, fr.x1 = n ? x[n - 1] + 0.5 : 1;
    plot_axes(f, &fr, xlabel, ylabel, 1);
    if (top <= 0) plot_empty(f, &fr, "nothing measured");
    double slot = (fr.right - fr.left) / (double)(n ? n : 1), gap = slot > 8 ? slot * 0.2 : 0;
    double bw = (slot - gap) / (groups ? groups : 1);
    for (size_t i = 0; i < n; i++)
        for (int g = 0; g < groups; g++) {
            double base = 0, bx = frame_x(&fr, x[i]) - (slot - gap) / 2 + g * bw;
            for (size_t k = 0; k < ns; k++) {
                double v = s[k].y[i];
                if (s[k].group != g || !isfinite(v) || v <= 0) continue;
                double y0 = frame_y(&fr, base), y1 = frame_y(&fr, base + v);
                fprintf(f, "<rect class=\"mark bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>",
                        bx, y1, bw > 1 ? bw - (bw > 6) : 1, y0 - y1, s[k].color);
                xml_text(f, s[k].name ? s[k].name : "");
                fprintf(f, " at %g: %.6g</title></rect>\n", x[i], v);
                base += v;
            }
        }
    fputs("</svg>\n", f);
}

/* One interval of a Gantt chart: lane (row), start and length (the x axis's unit), the band of
 * its row it fills (y0 to y1, fractions of the row from its top), kind (an index into the kinds,
 * which give it its colour) and its tooltip. */
typedef struct gantt_bar {
    int lane;
    double start, dur;
    double y0, y1;
    int kind;
    char label[96];
} gantt_bar;

typedef struct gantt_kind {
    const char *name, *color; /* the legend's text, #rrggbb */
} gantt_kind;

/* A Gantt chart: one row per lane (named on the left, with a swatch of lane_colors[l] when that
 * is not NULL), each bar coloured by its kind, at least 1 pixel wide so that short ones show;
 * the legend names the kinds present. The x axis starts at 0. */
static void plot_gantt(FILE *f, const char *id, int w, int h, const char *title, const char *xlabel, const char *const *lanes,
                       const char *const *lane_colors, int nlanes, const gantt_bar *bars, size_t nb, const gantt_kind *kinds, int nk)
{
    plot_frame fr;
    plot_begin(f, &fr, id, w, h, title);
    fr.left = 210; /* room for the lanes' names */
    double lx = 16;
    for (int k = 0; k < nk; k++) {
        int used = 0;
        for (size_t i = 0; i < nb && !used; i++) used = bars[i].kind == k;
        if (used) legend_item(f, &fr, &lx, kinds[k].color, 0, kinds[k].name);
    }
    double end = 0;
    for (size_t i = 0; i < nb; i++)
        if (bars[i].start + bars[i].dur > end) end = bars[i].start + bars[i].dur;
    fr.x0 = 0, fr.x1 = end > 0 ? end : 1, fr.y0 = 0, fr.y1 = nlanes > 0 ? nlanes : 1;
    double hi = fr.x1;
    nice_range(&fr.x0, &hi, (int)((fr.right - fr.left) / 70) + 1);
    fr.x1 = hi;
    fprintf(f, "<rect class=\"plot-area\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>\n", fr.left, fr.top,
            fr.right - fr.left, fr.bottom - fr.top);
    char buf[64];
    double xs = nice_step(fr.x1 - fr.x0, (int)((fr.right - fr.left) / 70) + 1);
    for (double i = 0, v = 0; v <= fr.x1 + xs * 1e-9; v = ++i * xs) {
        double x = frame_x(&fr, v);
        fprintf(f, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>\n", x, x, fr.top, fr.bottom);
        tick_label(buf, sizeof buf, v, xs, fr.x1);
        svg_text(f, x, fr.bottom + 19, "middle", "ticklabel", buf);
    }
    svg_text(f, (fr.left + fr.right) / 2, fr.h - 12, "middle", "axislabel", xlabel);
    double row = (fr.bottom - fr.top) / (nlanes > 0 ? nlanes : 1);
    for (int l = 0; l < nlanes; l++) {
        double y = fr.top + row * l;
        if (lane_colors && lane_colors[l])
            fprintf(f, "<rect class=\"lane-swatch\" x=\"16\" y=\"%.1f\" width=\"6\" height=\"%.1f\" fill=\"%s\"/>\n", y + row * 0.2,
                    row * 0.6, lane_colors[l]);
        char name[40]; /* a long device name cut (at a character's start), so that it stays left of the area */
        int cut = 27;
        if (strlen(lanes[l]) > 30) {
            while (cut > 0 && ((unsigned char)lanes[l][cut] & 0xC0) == 0x80) cut--;
            snprintf(name, sizeof name, "%.*s...", cut, lanes[l]);
        } else {
            snprintf(name, sizeof name, "%s", lanes[l]);
        }
        svg_text(f, 28, y + row / 2 + 4, "start", "lane", name);
        if (l) fprintf(f, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>\n", fr.left, fr.right, y, y);
    }
    if (!nb) plot_empty(f, &fr, "no events recorded");
    for (size_t i = 0; i < nb; i++) {
        const gantt_bar *b = &bars[i];
        if (b->lane < 0 || b->lane >= nlanes || b->kind < 0 || b->kind >= nk) continue;
        double x0 = frame_x(&fr, b->start), x1 = frame_x(&fr, b->start + b->dur), y = fr.top + row * (b->lane + b->y0);
        fprintf(f, "<rect class=\"mark bar\" data-lane=\"%d\" data-kind=\"", b->lane);
        xml_text(f, kinds[b->kind].name);
        fprintf(f, "\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>", x0, y, x1 - x0 < 1 ? 1.0 : x1 - x0,
                row * (b->y1 - b->y0), kinds[b->kind].color);
        xml_text(f, b->label);
        fputs("</title></rect>\n", f);
    }
    fputs("</svg>\n", f);
}

#endif
