/* cldp-train-report-timeline.h — the report's timeline of one training step: the step's events
 * from the timeline API (cldp_trace_*), one row per lane (the host, each device), coloured by
 * category; taken from the --trace recording when one is running, else recorded for that step
 * alone (in memory). Where no event was recorded, each device's phases of the step from
 * cldp_trainer_device_stats, laid end to end. Included by cldp-train-report.h alone. */
#ifndef CLDP_TRAIN_REPORT_TIMELINE_H
#define CLDP_TRAIN_REPORT_TIMELINE_H

#include "cldp.h"
#include "svg-plot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The kinds of work a timeline shows, with their colours: the trace's categories, then the
 * phases of cldp_device_stats. */
enum {
    KIND_GEMM, KIND_KERNEL, KIND_TRANSFER, KIND_BROADCAST, KIND_REDUCE, KIND_UPDATE, KIND_WAIT, KIND_SERVE, KIND_SPAN,
    KIND_COMPUTE, KIND_COUNT
};
static const gantt_kind timeline_kinds[KIND_COUNT] = {
    {"GEMM (CLBlast)", "#2563eb"},
    {"kernels", "#8b5cf6"},
    {"transfers", "#f59e0b"},
    {"parameter write", "#db2777"},
    {"reduce", "#16a34a"},
    {"update", "#0d9488"},
    {"waiting for the slowest device", "#9ca3af"},
    {"serving", "#e11d48"},
    {"step, forward, backward (spans)", "#334155"},
    {"compute (forward, backward, gradients to host)", "#3b82f6"},
};
static const char *const timeline_categories[KIND_COUNT] = {"gemm", "kernel", "transfer", "broadcast", "reduce",
                                                           "update", "wait",  "serve",    "step",      NULL};

#define TIMELINE_MAX_EVENTS 65536 /* of one step; a larger model's step shows its first ones */

typedef struct report_timeline {
    size_t step;              /* the step of the run (0-based) it shows */
    int trace_on;             /* 1: --trace records already: its events of the step are taken */
    int own;                  /* 1: recording was started for this step alone (and is stopped after it) */
    size_t first;             /* the recording's event count before the step */
    int ran;                  /* 1 once the step ran */
    int from_trace;           /* 1: the bars are the trace's events; 0: the devices' phases */
    uint64_t trace_step;      /* the trainer's step number in the trace */
    double step_ms;           /* the step's wall time */
    gantt_bar *bars;          /* (nbars) */
    size_t nbars;
    char (*lanes)[160];       /* (nlanes) each row's name */
    const char **lane_colors; /* (nlanes) a device's colour, NULL for the host */
    int nlanes;
} report_timeline;

/* Before step `step` of the run: starts a recording for it when it is the one shown. */
static void timeline_before(report_timeline *t, size_t step)
{
    if (step != t->step) return;
    t->own = !t->trace_on && cldp_trace_start(NULL) == CLDP_OK;
    t->first = cldp_trace_event_count();
}

static int timeline_lanes(report_timeline *t, int n)
{
    free(t->lanes);
    free(t->lane_colors);
    t->lanes = calloc((size_t)n + 1, sizeof *t->lanes);
    t->lane_colors = calloc((size_t)n + 1, sizeof *t->lane_colors);
    t->nlanes = t->lanes && t->lane_colors ? n : 0;
    return t->nlanes == n ? 0 : -1;
}

/* The step's trace events as bars, times from the host's "step" span; 0 bars when none. Device
 * lanes show the device's commands in the upper band, the worker thread's reduce, update and
 * waits in the lower one, the enclosing spans as a thin strip on top. pd: each device's
 * "platform:device", names and colors: the report's, to name and colour the device lanes. */
static void timeline_from_trace(report_timeline *t, size_t ndev, const char (*pd)[24], const char (*names)[160],
                                const char *(*color)(size_t))
{
    size_t total = cldp_trace_event_count(), n = total > t->first ? total - t->first : 0, got = 0;
    if (n > TIMELINE_MAX_EVENTS) n = TIMELINE_MAX_EVENTS;
    cldp_trace_event *ev = n ? malloc(n * sizeof *ev) : NULL;
    if (ev && cldp_trace_events(t->first, ev, n, &got) != CLDP_OK) got = 0;
    double t0 = -1;
    int maxlane = 0;
    for (size_t i = 0; i < got; i++) /* the host's span of the step: its number and start */
        if (ev[i].lane == 0 && !strcmp(ev[i].category, "step") && !strcmp(ev[i].name, "step"))
            t->trace_step = ev[i].step, t0 = ev[i].start_us;
    t->bars = got && t0 >= 0 ? calloc(got, sizeof *t->bars) : NULL;
    for (size_t i = 0; t->bars && i < got; i++) {
        const cldp_trace_event *e = &ev[i];
        int k = 0;
        while (k < KIND_COUNT && (!timeline_categories[k] || strcmp(timeline_categories[k], e->category))) k++;
        if (e->step != t->trace_step || k == KIND_COUNT || e->lane < 0 || e->lane > 256) continue;
        gantt_bar *b = &t->bars[t->nbars++];
        int thread = k == KIND_REDUCE || k == KIND_UPDATE || k == KIND_WAIT;
        b->lane = e->lane, b->kind = k, b->start = (e->start_us - t0) / 1000, b->dur = e->dur_us / 1000;
        b->y0 = k == KIND_SPAN && e->lane ? 0.02 : thread ? 0.6 : 0.2, b->y1 = k == KIND_SPAN && e->lane ? 0.14 : thread ? 0.95 : 0.55;
        if (e->lane == 0) b->y0 = 0.2, b->y1 = 0.8;
        if (e->layer >= 0) snprintf(b->label, sizeof b->label, "%s (layer %d): %.3f ms at %.3f ms", e->name, e->layer, b->dur, b->start);
        else snprintf(b->label, sizeof b->label, "%s: %.3f ms at %.3f ms", e->name, b->dur, b->start);
        if (e->lane > maxlane) maxlane = e->lane;
    }
    free(ev);
    if (!t->nbars || timeline_lanes(t, maxlane + 1)) {
        t->nbars = 0;
        return;
    }
    /* rows: the host, then the devices in rank order ("p:d name" names a trace lane), then any
     * other lane */
    int row[257], next = 1;
    for (int l = 0; l <= maxlane && l < 257; l++) row[l] = l ? -1 : 0;
    snprintf(t->lanes[0], sizeof t->lanes[0], "host (the step)");
    for (size_t d = 0; d < ndev; d++)
        for (int l = 1; l <= maxlane && l < 257; l++) {
            char name[160] = "";
            cldp_trace_lane_name(l, name, sizeof name);
            size_t len = strlen(pd[d]);
            if (row[l] >= 0 || strncmp(name, pd[d], len) || name[len] != ' ') continue;
            snprintf(t->lanes[next], sizeof t->lanes[next], "%s", names[d]);
            t->lane_colors[next] = color(d);
            row[l] = next++;
        }
    for (int l = 1; l <= maxlane && l < 257; l++)
        if (row[l] < 0) {
            cldp_trace_lane_name(l, t->lanes[next], sizeof t->lanes[next]);
            row[l] = next++;
        }
    for (size_t i = 0; i < t->nbars; i++) t->bars[i].lane = t->bars[i].lane < 257 ? row[t->bars[i].lane] : -1;
    t->from_trace = 1;
}

/* The devices' phases of the step (dev: each one's figures, rank at the start), end to end. */
static void timeline_from_stats(report_timeline *t, size_t ndev, const cldp_device_stats *dev, const char (*names)[160],
                                const char *(*color)(size_t))
{
    t->bars = calloc(ndev * 4 + 1, sizeof *t->bars);
    if (!t->bars || timeline_lanes(t, (int)ndev)) return;
    for (size_t d = 0; d < ndev; d++) {
        snprintf(t->lanes[d], sizeof t->lanes[d], "%s", names[d]);
        t->lane_colors[d] = color(d);
        const int kind[4] = {KIND_COMPUTE, KIND_WAIT, KIND_REDUCE, KIND_BROADCAST};
        const double ms[4] = {dev[d].compute_ms, dev[d].idle_ms, dev[d].reduce_ms, dev[d].broadcast_ms};
        double at = 0;
        for (int k = 0; k < 4; k++) {
            if (!(ms[k] > 0)) continue;
            gantt_bar *b = &t->bars[t->nbars++];
            b->lane = (int)d, b->start = at, b->dur = ms[k], b->kind = kind[k], b->y0 = 0.15, b->y1 = 0.85;
            snprintf(b->label, sizeof b->label, "%s: %.3f ms (shard %zu)", timeline_kinds[kind[k]].name, ms[k], dev[d].shard);
            at += ms[k];
        }
    }
}

/* After step `step` of the run: when it is the one shown, its bars (from the trace, else from
 * dev, the devices' figures of the step), and the recording stopped if it was started for it. */
static void timeline_after(report_timeline *t, size_t step, double step_ms, size_t ndev, const cldp_device_stats *dev,
                           const char (*pd)[24], const char (*names)[160], const char *(*color)(size_t))
{
    if (step != t->step) return;
    t->ran = 1, t->step_ms = step_ms;
    timeline_from_trace(t, ndev, pd, names, color);
    if (t->own) cldp_trace_stop(); /* memory only: nothing is written */
    t->own = 0;
    if (!t->nbars) {
        free(t->bars);
        t->bars = NULL;
        timeline_from_stats(t, ndev, dev, names, color);
    }
}

/* The chart: w wide, its height from the lanes (timeline_height). */
static int timeline_height(int nlanes) { return 140 + 62 * (nlanes > 0 ? nlanes : 1); }

static void timeline_chart(FILE *f, const report_timeline *t, int w)
{
    char title[240];
    if (!t->ran) snprintf(title, sizeof title, "One step's timeline (no step ran)");
    else if (t->from_trace)
        snprintf(title, sizeof title, "One step's timeline: step %zu of the run (%.2f ms); per device, top: its commands, "
                                      "bottom: its thread", t->step + 1, t->step_ms);
    else snprintf(title, sizeof title, "One step per device: step %zu of the run (%.2f ms), its phases end to end", t->step + 1,
                  t->step_ms);
    const char *lanes[256];
    int n = t->nlanes < 256 ? t->nlanes : 256;
    for (int l = 0; l < n; l++) lanes[l] = t->lanes[l];
    plot_gantt(f, "plot-timeline", w, timeline_height(t->nlanes), title, "milliseconds from the step's start", lanes,
               t->lane_colors, n, t->bars, t->nbars, timeline_kinds, KIND_COUNT);
}

static void timeline_free(report_timeline *t)
{
    free(t->bars);
    free(t->lanes);
    free(t->lane_colors);
}

#endif
