/* test_svg_plot — the report's SVG charts (samples/svg-plot.h) on made-up data: text escaped
 * (the five XML characters, control characters), tints, round ticks, a NaN cutting a line in two with
 * a lone point still marked, one point, no finite value, no data at all, bars that stack to the
 * fixed top, a Gantt chart's bands and its 1-pixel minimum; every element closed. No device. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../samples/svg-plot.h"
#include "testutil.h"

static char *buf;
static size_t len;

static FILE *open_buf(void)
{
    free(buf);
    buf = NULL;
    return open_memstream(&buf, &len);
}

static size_t count(const char *s, const char *what)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, what)); p += strlen(what)) n++;
    return n;
}

/* Every <svg> closed, and as many <text ...> as </text>: the chart is whole. */
static int whole(const char *s) { return count(s, "<svg ") == 1 && count(s, "</svg>") == 1 && count(s, "<text ") == count(s, "</text>"); }

int main(void)
{
    /* ---- escaping */
    FILE *f = open_buf();
    xml_text(f, "a<b>&\"c'\x01\x1f\x7f" "d");
    fclose(f);
    CHECK(!strcmp(buf, "a&lt;b&gt;&amp;&quot;c&#39;   d"));

    /* ---- a tint towards white */
    char tint[8];
    svg_tint(tint, "#000000", 0.5);
    CHECK(!strcmp(tint, "#808080"));
    svg_tint(tint, "#2563eb", 0);
    CHECK(!strcmp(tint, "#2563eb"));
    svg_tint(tint, "#2563eb", 1);
    CHECK(!strcmp(tint, "#ffffff"));

    /* ---- ticks: round steps and ranges */
    CHECK(fabs(nice_step(10, 5) - 2) < 1e-12);
    CHECK(fabs(nice_step(0.37, 5) - 0.1) < 1e-12);
    CHECK(fabs(nice_step(7300, 5) - 2000) < 1e-9);
    double lo = 0.583, hi = 0.811;
    nice_range(&lo, &hi, 5);
    CHECK(lo <= 0.583 && hi >= 0.811 && fabs(lo - 0.55) < 1e-9 && fabs(hi - 0.85) < 1e-9);
    lo = hi = 3; /* flat: given some height */
    nice_range(&lo, &hi, 5);
    CHECK(lo < 3 && hi > 3);
    lo = NAN, hi = NAN;
    nice_range(&lo, &hi, 5);
    CHECK(lo == 0 && hi == 1);
    char t[32];
    tick_label(t, sizeof t, -1e-17, 0.1, 1); /* no "-0" */
    CHECK(!strcmp(t, "0.0"));
    tick_label(t, sizeof t, 5000, 5000, 20000); /* thousands on the whole axis */
    CHECK(!strcmp(t, "5k"));
    tick_label(t, sizeof t, 2500, 500, 20000);
    CHECK(!strcmp(t, "2.5k"));
    tick_label(t, sizeof t, 0, 5000, 20000); /* 0 plain */
    CHECK(!strcmp(t, "0"));
    tick_label(t, sizeof t, 5000, 1000, 8000);
    CHECK(!strcmp(t, "5000"));

    /* ---- a line cut by a NaN: two pieces, the lone point after the gap still marked */
    const double x[5] = {1, 2, 3, 4, 5}, y[5] = {0.5, 0.7, NAN, 0.6, NAN};
    plot_series s[2] = {{"train <&>", "#2563eb", y, 0, 0}, {"test", "#dc2626", y, 1, 0}};
    f = open_buf();
    plot_lines(f, "p1", 400, 300, "Loss & \"more\"", "epoch", "loss", x, 5, s, 2, 0, NAN);
    fclose(f);
    CHECK(whole(buf));
    CHECK(strstr(buf, "train &lt;&amp;&gt;") && !strstr(buf, "train <&>") && strstr(buf, "Loss &amp; &quot;more&quot;"));
    const char *path = strstr(buf, "<path class=\"mark line\"");
    CHECK(path && strchr(path, '>'));
    if (path) {
        char d[512];
        const char *q = strstr(path, " d=\"") + 4;
        snprintf(d, sizeof d, "%.*s", (int)(strchr(q, '"') - q), q);
        CHECK(count(d, "M") == 2 && count(d, "L") == 1); /* 1-2, then 4 alone */
    }
    CHECK(count(buf, "<circle class=\"mark point\"") == 6); /* 3 finite points x 2 series */
    CHECK(count(buf, "stroke-dasharray=\"7 4\"") == 1);

    /* ---- one point: in the middle, marked; no finite value: said; no data: said */
    const double one = 0.25;
    plot_series s1 = {"only", "#059669", &one, 0, 0};
    f = open_buf();
    plot_lines(f, "p2", 400, 300, "One", "epoch", "v", x, 1, &s1, 1, NAN, NAN);
    fclose(f);
    CHECK(whole(buf) && count(buf, "<circle class=\"mark point\"") == 1 && strstr(buf, "cx=\"223.0\""));
    const double none[2] = {NAN, INFINITY};
    plot_series s2 = {"none", "#059669", none, 0, 0};
    f = open_buf();
    plot_lines(f, "p3", 400, 300, "None", "epoch", "v", x, 2, &s2, 1, NAN, NAN);
    fclose(f);
    CHECK(whole(buf) && strstr(buf, "no finite values") && !strstr(buf, "<circle"));
    f = open_buf();
    plot_bars(f, "p4", 400, 300, "Empty", "epoch", "v", x, 0, &s2, 1, NAN);
    fclose(f);
    CHECK(whole(buf) && strstr(buf, "nothing measured") && !strstr(buf, "mark bar"));

    /* ---- bars: two series stacked to the fixed top of 1, a NaN and a 0 left out */
    const double a[3] = {0.5, 0.25, NAN}, b[3] = {0.5, 0.75, 0};
    plot_series sb[2] = {{"[0]", "#7c3aed", a, 0, 0}, {"[1]", "#ea580c", b, 0, 0}};
    f = open_buf();
    plot_bars(f, "p5", 400, 300, "Share", "epoch", "share", x, 3, sb, 2, 1);
    fclose(f);
    CHECK(whole(buf) && count(buf, "<rect class=\"mark bar\"") == 4);
    CHECK(strstr(buf, ">1.0</text>") && !strstr(buf, ">1.2</text>")); /* the top tick is 1 */

    /* ---- Gantt: bands of a row, a 0-length bar still 1 pixel wide, kinds in the legend */
    gantt_bar g[2] = {{0, 0.0, 2.0, 0.2, 0.6, 0, "gemm <1>"}, {1, 1.0, 0.0, 0.6, 0.9, 1, "wait"}};
    const gantt_kind kinds[3] = {{"GEMM", "#2563eb"}, {"wait", "#9ca3af"}, {"unused", "#000000"}};
    const char *lanes[2] = {"host", "a device whose name is far too long for the left column"};
    f = open_buf();
    plot_gantt(f, "p6", 800, 300, "Step", "ms", lanes, NULL, 2, g, 2, kinds, 3);
    fclose(f);
    CHECK(whole(buf) && count(buf, "<rect class=\"mark bar\"") == 2 && strstr(buf, "width=\"1.0\""));
    CHECK(strstr(buf, "gemm &lt;1&gt;") && strstr(buf, ">GEMM</text>") && !strstr(buf, ">unused</text>"));
    CHECK(strstr(buf, "a device whose name is far ...") && !strstr(buf, "left column"));

    free(buf);
    printf("test_svg_plot: %s\n", test_failures ? "FAILED" : "passed");
    return test_failures ? 1 : 0;
}
