/* cldp-train-report.h — --report FILE: the run as one self-contained HTML page (inline CSS and
 * SVG; no script, nothing fetched): loss, accuracy and throughput per epoch, each device's shard,
 * compute and idle, one step's timeline per device. Gathered during the run, written at its end
 * (and after a signal or a failed step, with what was gathered) to FILE.tmp.<pid>, synced, then
 * renamed over FILE. The page's layout is fixed (absolute boxes) so a test can find every plot in
 * a screenshot (tests/test_report.py). Included by cldp-train.c alone, like cldp-train-args.h. */
#ifndef CLDP_TRAIN_REPORT_H
#define CLDP_TRAIN_REPORT_H

#include "cldp-train-checkpoint.h"      /* probe_beside, signals_hold */
#include "cldp-train-report-timeline.h" /* one step's timeline */
#include "svg-plot.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* One colour per device, the same in every chart (cycled past eight devices). */
static const char *device_color(size_t d)
{
    static const char *const c[] = {"#7c3aed", "#ea580c", "#0891b2", "#db2777", "#65a30d", "#ca8a04", "#4f46e5", "#0f766e"};
    return c[d % (sizeof c / sizeof c[0])];
}

/* ---- what is gathered ---------------------------------------------------------------- */

/* One epoch, or the part of it run before the run stopped. */
typedef struct report_epoch {
    int epoch;                 /* 1-based, as cldp-train prints it */
    int evaluated;             /* 1: finished and evaluated; 0: stopped during it (no test figures) */
    size_t steps;              /* its steps run in this process */
    double samples, loss_sum, correct; /* over those steps: samples, loss x samples, right answers */
    double train_loss, train_acc, test_loss, test_acc, samples_per_s, seconds;
} report_epoch;

#define REPORT_FACTS 14

typedef struct report {
    const char *path;          /* --report FILE; NULL: no report */
    size_t ndev;               /* devices when training started */
    char (*names)[160];        /* (ndev) each device: "[r] name (platform:device)" */
    size_t *rank_of;           /* (ndev) a device's rank now -> its rank at the start (a drop shifts them) */
    size_t nalive;             /* devices in use now */
    report_epoch *ep;          /* (cap) the epochs so far */
    double *dev;               /* (cap, ndev, 3): shard samples, compute ms, idle ms, summed over the epoch's steps */
    size_t nep, cap;
    struct { char key[32], value[1200]; } facts[REPORT_FACTS]; /* the header */
    int nfacts;
    char (*pd)[24];            /* (ndev) each device's "platform:device" */
    cldp_device_stats *step_dev; /* (ndev) the last step's figures per device (rank at the start) */
    report_timeline timeline;  /* one step's; the caller sets timeline.step (and timeline.trace_on) */
    cldp_loss loss;            /* what the loss plot shows */
    char status[512];          /* how the run ended */
} report;

/* In the page's head, within its first 256 bytes: how report_check knows a report it may replace. */
#define REPORT_GENERATOR "<meta name=\"generator\" content=\"cldp-train --report\">"

/* Checks, before training, that FILE can be written: new, empty, an earlier report or (force)
 * any regular file, and a file can be made beside it. Returns 0, or -1 after a message. */
static int report_check(const char *path, int force)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        fprintf(stderr, "cldp-train: --report '%s' is %s; give the name of an HTML file to write, e.g. %s%sreport.html\n", path,
                file_kind(sb.st_mode), S_ISDIR(sb.st_mode) ? path : "", S_ISDIR(sb.st_mode) ? "/" : "");
        return -1;
    }
    if (stat(path, &sb) == 0 && sb.st_size > 0 && !force) {
        char head[256] = "";
        FILE *f = fopen(path, "rb");
        size_t got = f ? fread(head, 1, sizeof head - 1, f) : 0;
        if (f) fclose(f);
        head[got] = 0;
        if (!strstr(head, REPORT_GENERATOR)) {
            fprintf(stderr, "cldp-train: '%s' exists and is not a cldp-train report; writing the report would overwrite it: give "
                            "another --report, or add --force to overwrite it\n", path);
            return -1;
        }
    }
    return probe_beside(path, "--report", "write the report", "");
}

static void report_fact(report *r, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void report_fact(report *r, const char *key, const char *fmt, ...)
{
    int i = 0;
    while (i < r->nfacts && strcmp(r->facts[i].key, key)) i++;
    if (i == REPORT_FACTS) return;
    if (i == r->nfacts) r->nfacts++;
    snprintf(r->facts[i].key, sizeof r->facts[i].key, "%s", key);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->facts[i].value, sizeof r->facts[i].value, fmt, ap);
    va_end(ap);
}

/* Starts gathering (nothing when path is NULL) for the trainer's devices; the caller then sets
 * timeline.step. Returns 0, or -1 (out of memory, said). */
static int report_begin(report *r, const char *path, cldp_trainer *tr)
{
    memset(r, 0, sizeof *r);
    if (!path) return 0;
    size_t n = cldp_trainer_device_count(tr);
    r->names = calloc(n ? n : 1, sizeof *r->names);
    r->rank_of = calloc(n ? n : 1, sizeof *r->rank_of);
    r->step_dev = calloc(n ? n : 1, sizeof *r->step_dev);
    r->pd = calloc(n ? n : 1, sizeof *r->pd);
    if (!r->names || !r->rank_of || !r->step_dev || !r->pd) {
        fprintf(stderr, "cldp-train: out of host memory for the --report\n");
        return -1;
    }
    r->path = path, r->ndev = r->nalive = n;
    for (size_t d = 0; d < n; d++) {
        cldp_device_info info;
        memset(&info, 0, sizeof info);
        cldp_trainer_device_info(tr, d, &info);
        snprintf(r->names[d], sizeof r->names[d], "[%zu] %s (%u:%u)", d, info.name, info.platform_index, info.device_index);
        snprintf(r->pd[d], sizeof r->pd[d], "%u:%u", info.platform_index, info.device_index);
        r->rank_of[d] = d;
    }
    snprintf(r->status, sizeof r->status, "stopped early");
    return 0;
}

/* The header's facts: what cldp-train says of the run at its start. */
static void report_facts(report *r, const args *a, const char *source, size_t ntr, size_t nte, size_t nf, const size_t shape[3],
                         const char *spec, size_t params)
{
    if (!r->path) return;
    report_fact(r, "Data", "%s: %zu train / %zu test samples, %zu features, %zu classes", source, ntr, nte, nf, a->classes);
    report_fact(r, "Model", "%zux%zux%zu -> %s (%zu parameters), loss %s", shape[0], shape[1], shape[2], spec, params,
                a->loss == CLDP_LOSS_MSE ? "mean squared error on one-hot targets" : "softmax cross-entropy");
    r->loss = a->loss;
    char devs[sizeof r->facts[0].value] = "";
    for (size_t d = 0, len = 0; d < r->ndev && len < sizeof devs; d++)
        len += (size_t)snprintf(devs + len, sizeof devs - len, "%s%s", d ? ", " : "", r->names[d]);
    report_fact(r, "Devices", "%zu: %s", r->ndev, devs);
    report_fact(r, "Batch", "%zu (global), split %s%s", a->batch, a->split ? a->split : "auto (default)",
                a->no_balance ? ", no re-balancing" : "");
    if (a->optimizer == CLDP_OPT_SGD)
        report_fact(r, "Optimizer", "sgd, learning rate %g with cosine decay to 0, momentum %g, weight decay %g", (double)a->lr,
                    (double)a->momentum, (double)a->weight_decay);
    else
        report_fact(r, "Optimizer", "adam, learning rate %g with cosine decay to 0, weight decay %g", (double)a->lr,
                    (double)a->weight_decay);
    report_fact(r, "Epochs", "%d%s%s, seed %llu", a->epochs, a->resume ? ", resumed from " : "", a->resume ? a->resume : "",
                (unsigned long long)a->seed);
    if (a->mpi)
        report_fact(r, "MPI", "rank 0 of the run: the devices, shares and timeline are this rank's; the batch is split over "
                              "every rank's devices");
    if (a->checkpoint) report_fact(r, "Checkpoint", "%s", a->checkpoint);
    time_t now = time(NULL);
    struct tm tm;
    char when[64] = "";
    if (gmtime_r(&now, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    report_fact(r, "Started", "%s", when);
}

/* The current epoch's slot (a new one when ep differs from the last); NULL when out of memory. */
static report_epoch *report_slot(report *r, int ep)
{
    if (r->nep && r->ep[r->nep - 1].epoch == ep) return &r->ep[r->nep - 1];
    if (r->nep == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        report_epoch *e = realloc(r->ep, cap * sizeof *e);
        if (e) r->ep = e;
        double *d = e ? realloc(r->dev, cap * r->ndev * 3 * sizeof *d) : NULL;
        if (!d) return NULL; /* the report then shows the epochs before */
        r->dev = d, r->cap = cap;
    }
    report_epoch *e = &r->ep[r->nep++];
    memset(e, 0, sizeof *e);
    e->epoch = ep;
    e->train_loss = e->train_acc = e->test_loss = e->test_acc = e->samples_per_s = NAN;
    memset(r->dev + (r->nep - 1) * r->ndev * 3, 0, r->ndev * 3 * sizeof *r->dev);
    return e;
}

/* After step `step` of the run (0-based), in epoch ep, of nb samples: its loss and accuracy and
 * each device's figures; elapsed: seconds of the epoch so far in this process. */
static void report_step(report *r, const cldp_trainer *tr, int ep, size_t step, const cldp_step_stats *ss, size_t nb,
                        double elapsed)
{
    if (!r->path) return;
    for (size_t k = 0; k < ss->dropped && k < CLDP_MAX_DROPS; k++) { /* the devices left, in rank order */
        size_t keep = 0;
        for (size_t i = 0; i < r->nalive; i++)
            if (r->rank_of[i] != ss->drops[k].rank) r->rank_of[keep++] = r->rank_of[i];
        r->nalive = keep;
    }
    report_epoch *e = report_slot(r, ep);
    if (!e) return;
    e->steps++;
    e->samples += (double)nb;
    e->loss_sum += ss->loss * (double)nb;
    e->correct += (double)ss->correct;
    e->seconds = elapsed;
    double *dev = r->dev + (r->nep - 1) * r->ndev * 3;
    memset(r->step_dev, 0, r->ndev * sizeof *r->step_dev);
    for (size_t i = 0; i < r->nalive && i < ss->devices; i++) {
        cldp_device_stats ds;
        if (cldp_trainer_device_stats(tr, i, &ds) != CLDP_OK) continue;
        size_t d = r->rank_of[i];
        dev[d * 3 + 0] += (double)ds.shard;
        dev[d * 3 + 1] += ds.compute_ms;
        dev[d * 3 + 2] += ds.idle_ms;
        r->step_dev[d] = ds;
    }
    timeline_after(&r->timeline, step, ss->step_ms, r->ndev, r->step_dev, (const char(*)[24])r->pd, (const char(*)[160])r->names,
                   device_color);
}

/* Before step `step` of the run (0-based). */
static void report_before_step(report *r, size_t step)
{
    if (r->path) timeline_before(&r->timeline, step);
}

/* At the end of epoch ep: the figures cldp-train printed for it. */
static void report_epoch_end(report *r, int ep, double train_loss, double train_acc, double test_loss, double test_acc,
                             double samples_per_s, double seconds)
{
    if (!r->path) return;
    report_epoch *e = report_slot(r, ep);
    if (!e) return;
    e->evaluated = 1;
    e->train_loss = train_loss, e->train_acc = train_acc, e->test_loss = test_loss, e->test_acc = test_acc;
    e->samples_per_s = samples_per_s, e->seconds = seconds;
}

static void report_free(report *r)
{
    free(r->names);
    free(r->rank_of);
    free(r->step_dev);
    free(r->pd);
    timeline_free(&r->timeline);
    free(r->ep);
    free(r->dev);
    memset(r, 0, sizeof *r);
}

/* ---- the page ---------------------------------------------------------------------------- */

#define REPORT_W 1200  /* the page's width, pixels */
#define REPORT_TRAIN_COLOR "#2563eb"
#define REPORT_TEST_COLOR "#dc2626"
#define REPORT_SPEED_COLOR "#059669"

static const char report_css[] =
    "body{margin:0;background:#fff;color:#111827;font-family:'DejaVu Sans',Arial,Helvetica,sans-serif}\n"
    ".page{position:relative;width:1200px}\n"
    ".box{position:absolute;margin:0;padding:0;overflow:hidden}\n"
    "header.box h1{font-size:22px;margin:0 0 4px 0}\n"
    "header.box .summary{font-size:15px;margin:0 0 10px 0;color:#1f2937}\n"
    "dl.facts{display:grid;grid-template-columns:150px 1fr;gap:3px 12px;margin:0;font-size:12.5px}\n"
    "dl.facts dt{font-weight:bold;color:#374151}dl.facts dd{margin:0;word-break:break-all}\n"
    "svg.plot{display:block}\n"
    "svg .bg{fill:#fff;stroke:#e5e7eb}svg .plot-area{fill:#fff;stroke:#9ca3af;stroke-width:1}\n"
    "svg .grid{stroke:#eceef1;stroke-width:1}svg .tick{stroke:#6b7280;stroke-width:1}\n"
    "svg text{font-family:'DejaVu Sans',Arial,Helvetica,sans-serif;fill:#374151}\n"
    "svg .title{font-size:15px;font-weight:bold;fill:#111827}svg .ticklabel{font-size:11px}\n"
    "svg .axislabel{font-size:12px}svg .legend,svg .lane,svg .note{font-size:12px}\n"
    "svg .nodata{font-size:13px;font-style:italic;fill:#6b7280}svg rect.mark{shape-rendering:crispEdges}\n"
    ".tables{padding:0 20px 30px 20px}h2{font-size:16px;margin:18px 0 6px 0}\n"
    "table{border-collapse:collapse;font-size:12.5px}th,td{border:1px solid #e5e7eb;padding:3px 10px;text-align:right}\n"
    "th{background:#f3f4f6}td:first-child,th:first-child{text-align:left}\n";

/* A figure's box at (x, y), w x h, named id. */
static void box_open(FILE *f, const char *id, int x, int y, int w, int h)
{
    fprintf(f, "<figure class=\"box\" id=\"%s\" style=\"left:%dpx;top:%dpx;width:%dpx;height:%dpx\">\n", id, x, y, w, h);
}

/* A number for a table cell, or a dash for NaN. */
static void cell(FILE *f, const char *fmt, double v)
{
    fputs("<td>", f);
    if (isfinite(v)) fprintf(f, fmt, v);
    else fputs("&#8211;", f);
    fputs("</td>", f);
}

#define REPORT_MAX_POINTS 150 /* a longer run's charts show means over groups of epochs */

/* Replaces each of the nser series of n values at v (one after another) by the means of its
 * finite values over groups of k consecutive ones; returns the new length. */
static size_t group_means(double *v, size_t nser, size_t n, size_t k)
{
    size_t m = (n + k - 1) / k;
    for (size_t sr = 0; sr < nser; sr++)
        for (size_t j = 0; j < m; j++) {
            double sum = 0, cnt = 0;
            for (size_t i = j * k; i < n && i < (j + 1) * k; i++)
                if (isfinite(v[sr * n + i])) sum += v[sr * n + i], cnt++;
            v[sr * m + j] = cnt ? sum / cnt : NAN; /* its group's values come after this slot: read already */
        }
    return m;
}

static void report_charts(FILE *f, const report *r, int top)
{
    size_t n = r->nep, nd = r->ndev;
    double *v = calloc(n * (6 + 3 * nd) + 1, sizeof *v);
    plot_series *s = calloc(2 * nd + 2, sizeof *s);
    char (*tints)[8] = calloc(nd + 1, sizeof *tints);
    if (!v || !s || !tints) {
        fputs("<p>out of host memory for the charts</p>\n", f);
        goto done;
    }
    double *x = v, *tl = x + n, *te = tl + n, *ta = te + n, *tea = ta + n, *sp = tea + n, *dv = sp + n;
    for (size_t i = 0; i < n; i++) {
        const report_epoch *e = &r->ep[i];
        x[i] = e->epoch;
        /* a stopped epoch: its training figures over the steps it ran */
        tl[i] = e->evaluated ? e->train_loss : e->samples > 0 ? e->loss_sum / e->samples : NAN;
        ta[i] = e->evaluated ? e->train_acc : e->samples > 0 ? e->correct / e->samples : NAN;
        te[i] = e->evaluated ? e->test_loss : NAN;
        tea[i] = e->evaluated ? e->test_acc : NAN;
        sp[i] = e->evaluated ? e->samples_per_s : e->seconds > 0 ? e->samples / e->seconds : NAN;
        for (size_t d = 0; d < nd; d++) {
            const double *sum = r->dev + (i * nd + d) * 3, steps = e->steps ? (double)e->steps : NAN;
            dv[(0 * nd + d) * n + i] = e->samples > 0 ? sum[0] / e->samples : NAN; /* share of the samples */
            dv[(1 * nd + d) * n + i] = sum[1] / steps;                            /* compute ms per step */
            dv[(2 * nd + d) * n + i] = sum[2] / steps;                            /* idle ms per step */
        }
    }
    char xl[64] = "epoch"; /* the x axis, which says when a point is a group's mean */
    if (n > REPORT_MAX_POINTS) {
        size_t k = (n + REPORT_MAX_POINTS - 1) / REPORT_MAX_POINTS;
        n = group_means(v, 6 + 3 * nd, n, k);
        x = v, tl = x + n, te = tl + n, ta = te + n, tea = ta + n, sp = tea + n, dv = sp + n;
        snprintf(xl, sizeof xl, "epoch (each point: the mean over %zu epochs)", k);
    }
    const int W = 570, H = 340, L = 20, R = 610, gap = 20;
    box_open(f, "fig-loss", L, top, W, H);
    plot_series ls[2] = {{"train", REPORT_TRAIN_COLOR, tl, 0, 0}, {"test", REPORT_TEST_COLOR, te, 1, 0}};
    plot_lines(f, "plot-loss", W, H, r->loss == CLDP_LOSS_MSE ? "Loss (mean squared error) per epoch" : "Loss (mean cross-entropy) per epoch", xl, "loss", x, n, ls, 2, 0, NAN);
    fputs("</figure>\n", f);
    box_open(f, "fig-accuracy", R, top, W, H);
    plot_series as[2] = {{"train", REPORT_TRAIN_COLOR, ta, 0, 0}, {"test", REPORT_TEST_COLOR, tea, 1, 0}};
    plot_lines(f, "plot-accuracy", W, H, "Accuracy per epoch", xl, "accuracy (fraction right)", x, n, as, 2, NAN, 1);
    fputs("</figure>\n", f);
    top += H + gap;
    box_open(f, "fig-throughput", L, top, W, H);
    plot_series ts[1] = {{"samples/s (all devices)", REPORT_SPEED_COLOR, sp, 0, 0}};
    plot_lines(f, "plot-throughput", W, H, "Training throughput per epoch", xl, "samples per second", x, n, ts, 1, 0, NAN);
    fputs("</figure>\n", f);
    box_open(f, "fig-share", R, top, W, H);
    for (size_t d = 0; d < nd; d++) s[d] = (plot_series){r->names[d], device_color(d), dv + d * n, 0, 0};
    plot_bars(f, "plot-share", W, H, "Share of the samples per device", xl, "share of the epoch's samples", x, n, s, nd, 1);
    fputs("</figure>\n", f);
    top += H + gap;
    box_open(f, "fig-devices", L, top, 2 * W + gap, H);
    for (size_t d = 0; d < nd; d++) {
        svg_tint(tints[d], device_color(d), 0.62);
        s[2 * d] = (plot_series){r->names[d], device_color(d), dv + (nd + d) * n, 0, (int)d};
        s[2 * d + 1] = (plot_series){NULL, tints[d], dv + (2 * nd + d) * n, 0, (int)d};
    }
    plot_bars(f, "plot-devices", 2 * W + gap, H, "Time per step by device: compute (solid) and idle (pale, stacked)", xl,
              "milliseconds per step", x, n, s, 2 * nd, NAN);
    fputs("</figure>\n", f);
    top += H + gap;
    box_open(f, "fig-timeline", L, top, 2 * W + gap, timeline_height(r->timeline.nlanes));
    timeline_chart(f, &r->timeline, 2 * W + gap);
    fputs("</figure>\n", f);
done:
    free(v);
    free(s);
    free(tints);
}

/* The header's height: the title, the summary and the facts, a long one on several lines (about
 * 140 characters of a fact fit on one, 130 of the summary). */
static int report_header_height(const report *r)
{
    int lines = 0;
    for (int i = 0; i < r->nfacts; i++) lines += 1 + (int)(strlen(r->facts[i].value) / 140);
    return 78 + 20 * (int)(strlen(r->status) / 130) + 19 * lines;
}

static int report_charts_height(const report *r)
{
    return 16 + report_header_height(r) + 16 + 3 * 360 + timeline_height(r->timeline.nlanes) + 20;
}

static void report_tables(FILE *f, const report *r)
{
    fputs("<section class=\"tables\">\n<h2>Per epoch</h2>\n<table id=\"epochs\">\n<tr><th>epoch</th><th>train loss</th><th>train "
          "accuracy</th><th>test loss</th><th>test accuracy</th><th>samples/s</th><th>seconds</th></tr>\n", f);
    size_t from_end = r->nep > 200 ? 100 : r->nep; /* a long run: its first and last 100 epochs */
    for (size_t i = 0; i < r->nep; i++) {
        if (r->nep > 200 && i >= 100 && i < r->nep - from_end) {
            if (i == 100) fprintf(f, "<tr><td colspan=\"7\">(%zu epochs left out)</td></tr>\n", r->nep - 200);
            continue;
        }
        const report_epoch *e = &r->ep[i];
        double n = e->samples > 0 ? e->samples : NAN;
        fprintf(f, "<tr class=\"%s\"><td>%d%s</td>", e->evaluated ? "epoch" : "partial", e->epoch, e->evaluated ? "" : " (stopped)");
        cell(f, "%.4f", e->evaluated ? e->train_loss : e->loss_sum / n);
        cell(f, "%.4f", e->evaluated ? e->train_acc : e->correct / n);
        cell(f, "%.4f", e->test_loss);
        cell(f, "%.4f", e->test_acc);
        cell(f, "%.0f", e->evaluated ? e->samples_per_s : e->samples / e->seconds);
        cell(f, "%.2f", e->seconds);
        fputs("</tr>\n", f);
    }
    fputs("</table>\n<h2>Per device, over the run</h2>\n<table id=\"devices\">\n<tr><th>device</th><th>samples</th><th>share</th>"
          "<th>compute ms/step</th><th>idle ms/step</th></tr>\n", f);
    double all = 0, steps = 0;
    for (size_t i = 0; i < r->nep; i++) all += r->ep[i].samples, steps += (double)r->ep[i].steps;
    for (size_t d = 0; d < r->ndev; d++) {
        double sum[3] = {0, 0, 0};
        for (size_t i = 0; i < r->nep; i++)
            for (int k = 0; k < 3; k++) sum[k] += r->dev[(i * r->ndev + d) * 3 + k];
        fprintf(f, "<tr><td><span style=\"color:%s\">&#9632;</span> ", device_color(d));
        xml_text(f, r->names[d]);
        fprintf(f, "</td><td>%.0f</td>", sum[0]);
        cell(f, "%.3f", all > 0 ? sum[0] / all : NAN);
        cell(f, "%.3f", steps > 0 ? sum[1] / steps : NAN);
        cell(f, "%.3f", steps > 0 ? sum[2] / steps : NAN);
        fputs("</tr>\n", f);
    }
    fputs("</table>\n</section>\n", f);
}

static void report_page(FILE *f, const report *r)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n" REPORT_GENERATOR "\n<title>cldp-train report</title>\n"
          "<style>\n", f);
    fputs(report_css, f);
    fprintf(f, "</style>\n</head>\n<body>\n<main class=\"page\" style=\"height:%dpx\">\n", report_charts_height(r));
    fprintf(f, "<header class=\"box\" id=\"header\" style=\"left:20px;top:16px;width:%dpx;height:%dpx\">\n", REPORT_W - 40,
            report_header_height(r));
    fputs("<h1>cldp-train report</h1>\n<p class=\"summary\">", f);
    xml_text(f, r->status);
    fputs("</p>\n<dl class=\"facts\">\n", f);
    for (int i = 0; i < r->nfacts; i++) {
        fputs("<dt>", f);
        xml_text(f, r->facts[i].key);
        fputs("</dt><dd>", f);
        xml_text(f, r->facts[i].value);
        fputs("</dd>\n", f);
    }
    fputs("</dl>\n</header>\n", f);
    report_charts(f, r, 16 + report_header_height(r) + 16);
    fputs("</main>\n", f);
    report_tables(f, r);
    fputs("</body>\n</html>\n", f);
}

/* Writes the page to FILE.tmp.<pid>, syncs it and renames it over FILE, with SIGINT and SIGTERM
 * held back meanwhile; r->status (how the run ended) heads it. Returns 0, or -1 after a
 * message (the old FILE, if any, is untouched). */
static int report_write(report *r, int quiet)
{
    if (!r->path) return 0;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", r->path, (long)getpid());
    sigset_t old;
    signals_hold(&old);
    FILE *f = fopen(tmp, "w");
    int err = f ? 0 : errno;
    if (f) {
        report_page(f, r);
        if (fflush(f) || ferror(f) || fsync(fileno(f))) err = errno ? errno : EIO;
        if (fclose(f) && !err) err = errno;
        if (!err && rename(tmp, r->path)) err = errno;
        if (err) unlink(tmp);
    }
    signals_release(&old, "the report's write");
    if (err) {
        fprintf(stderr, "cldp-train: cannot write the report '%s': %s\n", r->path, strerror(err));
        return -1;
    }
    if (!quiet) printf("cldp-train: report written to %s\n", r->path);
    return 0;
}

#endif
