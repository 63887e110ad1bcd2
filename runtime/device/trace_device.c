/* trace_device.c — device commands on the timeline (trace.h): each traced command keeps its
 * OpenCL event until the queue is flushed, then its CL_PROFILING_COMMAND_START/END, mapped to the
 * host clock by a calibration per device and recording, become events; per-layer spans cover the
 * commands enqueued between their begin and end. A queue made without profiling gets host times
 * instead: each command from its enqueue to the next one's. */
#define _POSIX_C_SOURCE 200809L
#include "trace.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void release_pending(cldp_trace_queue *tq)
{
    for (size_t i = 0; i < tq->n; i++) {
        if (tq->p[i].ev) clReleaseEvent(tq->p[i].ev);
        if (tq->p[i].before) clReleaseEvent(tq->p[i].before);
    }
    tq->n = 0;
    tq->open = 0;
}

void cldp_trace_queue_free(cldp_trace_queue **slot)
{
    if (!*slot) return;
    release_pending(*slot);
    free(*slot);
    *slot = NULL;
}

cldp_trace_queue *cldp_trace_queue_for(cldp_trace_queue **slot, const cldp_device_info *info)
{
    unsigned s = cldp_trace_session();
    if (!s) return NULL;
    cldp_trace_queue *tq = *slot;
    /* plain calloc: tracing never takes part in the allocation-failure tests, nor sets an error */
    if (!tq && !(tq = *slot = calloc(1, sizeof *tq))) return NULL;
    if (tq->session != s) { /* a new recording: what the last one left is not part of it */
        release_pending(tq);
        tq->session = s;
        tq->lane = cldp_trace_lane_for(info);
        tq->calibrated = 0;
    }
    return tq;
}

cl_event *cldp_trace_push(cldp_trace_queue *tq, cl_command_queue q, const char *name, const char *cat, int layer,
                          int track, cl_command_queue marker_q)
{
    if (tq->n == CLDP_TRACE_PENDING) cldp_trace_flush(tq, q);
    if (tq->session != cldp_trace_session()) return NULL; /* the recording stopped meanwhile */
    cldp_trace_pending *p = &tq->p[tq->n++];
    memset(p, 0, sizeof *p);
    p->name = name;
    p->cat = cat;
    p->layer = layer;
    p->track = track;
    p->step = cldp_trace_thread_step();
    p->enqueued_us = cldp_trace_clock_us();
    if (marker_q && clEnqueueMarkerWithWaitList(marker_q, 0, NULL, &p->before) != CL_SUCCESS) p->before = NULL;
    return &p->ev;
}

void cldp_trace_span_begin(cldp_trace_queue *tq, cl_command_queue q)
{
    if (tq->n + 8 > CLDP_TRACE_PENDING) cldp_trace_flush(tq, q);
    tq->open = 1;
    tq->open_from = tq->n;
    tq->open_lo = INFINITY;
    tq->open_hi = -INFINITY;
}

void cldp_trace_span_end(cldp_trace_queue *tq, cl_command_queue q, const char *name, int layer)
{
    if (!tq->open) return;
    if (tq->n == CLDP_TRACE_PENDING) cldp_trace_flush(tq, q); /* carries the span's resolved part */
    cldp_trace_pending *p = &tq->p[tq->n++];
    memset(p, 0, sizeof *p);
    p->name = name;
    p->cat = "step";
    p->layer = layer;
    p->span = 1;
    p->span_from = tq->open_from;
    p->carry_lo = tq->open_lo;
    p->carry_hi = tq->open_hi;
    p->step = cldp_trace_thread_step();
    p->enqueued_us = cldp_trace_clock_us();
    tq->open = 0;
}

/* The device clock's offset to the host's: a marker's end against host clock reads around it,
 * the tightest of three (the error is at most half that window). */
static void calibrate(cldp_trace_queue *tq, cl_command_queue q)
{
    double best = INFINITY;
    for (int k = 0; k < 3; k++) {
        cl_event m;
        double h0 = cldp_trace_clock_us();
        if (clEnqueueMarkerWithWaitList(q, 0, NULL, &m) != CL_SUCCESS) break;
        cl_int err = clWaitForEvents(1, &m);
        double h1 = cldp_trace_clock_us();
        cl_ulong d = 0;
        if (err == CL_SUCCESS &&
            clGetEventProfilingInfo(m, CL_PROFILING_COMMAND_END, sizeof d, &d, NULL) == CL_SUCCESS && d && h1 - h0 < best) {
            best = h1 - h0;
            tq->offset_us = (h0 + h1) / 2 - (double)d * 1e-3;
        }
        clReleaseEvent(m);
    }
    tq->calibrated = isfinite(best) ? 1 : -1; /* -1: no profiling info, host times instead */
    if (isfinite(best)) cldp_trace_note_clock(tq->lane, best);
}

static int profiled_time(cl_event ev, cl_profiling_info what, cl_ulong *ns)
{
    return ev && clGetEventProfilingInfo(ev, what, sizeof *ns, ns, NULL) == CL_SUCCESS && *ns;
}

void cldp_trace_flush(cldp_trace_queue *tq, cl_command_queue q)
{
    if (!tq || !tq->n) return;
    if (tq->session != cldp_trace_session()) { /* the recording ended: nothing to record them in */
        release_pending(tq);
        return;
    }
    size_t n = tq->n;
    double lo[CLDP_TRACE_PENDING], hi[CLDP_TRACE_PENDING];
    int have[CLDP_TRACE_PENDING];
    for (size_t i = 0; i < n; i++) /* every command done first: the calibration then waits for nothing */
        if (tq->p[i].ev) have[i] = clWaitForEvents(1, &tq->p[i].ev) == CL_SUCCESS;
        else have[i] = 0;
    double now = cldp_trace_clock_us(); /* every command ended before this */
    if (!tq->calibrated) calibrate(tq, q);
    for (size_t i = 0; i < n; i++) {
        const cldp_trace_pending *p = &tq->p[i];
        if (p->span || !have[i]) continue;
        cl_ulong s, e, b;
        if (tq->calibrated > 0 && profiled_time(p->ev, CL_PROFILING_COMMAND_START, &s) &&
            profiled_time(p->ev, CL_PROFILING_COMMAND_END, &e)) {
            if (profiled_time(p->before, CL_PROFILING_COMMAND_END, &b) && b < s) s = b;
            lo[i] = (double)s * 1e-3 + tq->offset_us;
            hi[i] = (double)e * 1e-3 + tq->offset_us;
            /* a command starts after it was enqueued and ended before the waits above returned:
             * this bounds the calibration's error (a preempted calibration, on a busy machine)
             * without reordering a queue's commands */
            if (hi[i] > now) hi[i] = now;
            if (lo[i] > hi[i]) lo[i] = hi[i];
            if (lo[i] < p->enqueued_us) lo[i] = p->enqueued_us;
            if (hi[i] < lo[i]) hi[i] = lo[i];
        } else { /* host times: from its enqueue to the next command's */
            lo[i] = p->enqueued_us;
            hi[i] = i + 1 < n ? tq->p[i + 1].enqueued_us : now;
        }
    }
    for (size_t i = 0; i < n; i++) {
        cldp_trace_pending *p = &tq->p[i];
        if (p->span) {
            double a = p->carry_lo, z = p->carry_hi;
            for (size_t j = p->span_from; j < i; j++)
                if (have[j] && !tq->p[j].span && tq->p[j].track == CLDP_TRACK_QUEUE) {
                    a = fmin(a, lo[j]);
                    z = fmax(z, hi[j]);
                }
            if (a > z) a = z = p->enqueued_us; /* a layer with no command of its own */
            cldp_trace_add(p->name, p->cat, tq->lane, CLDP_TRACK_QUEUE, p->layer, p->step, a, z);
        } else if (have[i]) {
            cldp_trace_add(p->name, p->cat, tq->lane, p->track, p->layer, p->step, lo[i], hi[i]);
        }
    }
    if (tq->open) { /* a span still open: what it covers so far is carried to its end */
        for (size_t j = tq->open_from; j < n; j++)
            if (have[j] && !tq->p[j].span && tq->p[j].track == CLDP_TRACK_QUEUE) {
                tq->open_lo = fmin(tq->open_lo, lo[j]);
                tq->open_hi = fmax(tq->open_hi, hi[j]);
            }
        tq->open_from = 0;
    }
    int open = tq->open;
    release_pending(tq);
    tq->open = open;
}
