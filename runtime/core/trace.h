/* trace.h — the timeline recorder behind cldp_trace_* (cldp.h): events in memory with their lane
 * and step, the device lanes, each thread's lane and step, and OpenCL profiling events resolved to
 * host time. It sits beside common (it includes nothing else of the runtime), so the replica, the
 * reducer, the trainer and the server all record into it. Internal.
 *
 * Off, every site costs one relaxed atomic load (CLDP_TRACING()) and allocates nothing. */
#ifndef CLDP_TRACE_H
#define CLDP_TRACE_H

#include "common.h"

#include <stdatomic.h>

extern _Atomic int cldp_trace_active_;
/* 1 while a recording is in progress (a relaxed load: a site may miss the first or last event) */
#define CLDP_TRACING() atomic_load_explicit(&cldp_trace_active_, memory_order_relaxed)

/* The tracks of a lane in the JSON file (a lane's events on one track never partly overlap):
 * the device's compute queue (or the host's thread, on lane 0), the thread that drives the
 * device, the device's transfer queue, and queue waits (drawn as async slices: they overlap). */
enum { CLDP_TRACK_QUEUE = 0, CLDP_TRACK_THREAD = 1, CLDP_TRACK_XFER = 2, CLDP_TRACK_ASYNC = 3 };

/* The host clock in microseconds: CLOCK_MONOTONIC, cldp_now_ms's clock times 1000. */
double cldp_trace_clock_us(void);

/* Records [t0_us, t1_us] of the host clock (cldp_trace_clock_us) on `lane`. `name` and `cat` must
 * be static strings. Times before the recording began are cut off; nothing is recorded when off. */
void cldp_trace_add(const char *name, const char *cat, int lane, int track, int layer, uint64_t step, double t0_us,
                    double t1_us);

/* The calling thread's lane and step: a worker sets them at the start of its part of a run, and
 * what it records with cldp_trace_here goes there (a fresh thread: lane 0, the host; step 0). */
void cldp_trace_set_thread(int lane, uint64_t step);
/* The calling thread's step (what device commands it enqueues are recorded with). */
uint64_t cldp_trace_thread_step(void);
/* Records [t0_us, t1_us] on the thread's lane (its thread track; the host lane for lane 0). */
void cldp_trace_here(const char *name, const char *cat, int layer, double t0_us, double t1_us);

/* The recording in progress (1, 2, ... per cldp_trace_start), or 0 when none. */
unsigned cldp_trace_session(void);
/* The lane of a device in the recording in progress, made on first use ("p:d name"); 0 when off. */
int cldp_trace_lane_for(const cldp_device_info *info);

/* A device clock's calibration on `lane`: the host window (us) its offset was read in, at most
 * twice its error; the file's otherData.clock_window_us keeps the widest per lane. */
void cldp_trace_note_clock(int lane, double window_us);

/* ---- device events: OpenCL commands timed by their profiling info ---- */

#define CLDP_TRACE_PENDING 1024 /* commands a queue keeps before their times are read */

typedef struct cldp_trace_pending {
    cl_event ev;          /* the command, or NULL (a span, or an enqueue that failed) */
    cl_event before;      /* a marker enqueued just before it, whose end is its start; or NULL */
    const char *name, *cat;
    int layer, track;
    int span;             /* a span over the queue's entries [span_from, this one) */
    size_t span_from;
    double carry_lo, carry_hi; /* a span: the times of its entries already resolved */
    uint64_t step;
    double enqueued_us;   /* host clock at the enqueue: the fallback without profiling */
} cldp_trace_pending;

/* One device's commands waiting for their times (a replica owns one; made on first use). */
typedef struct cldp_trace_queue {
    unsigned session;     /* the recording its entries belong to */
    int lane;
    int calibrated;
    double offset_us;     /* host us = device ns / 1000 + offset_us */
    int open;             /* a span is open from entry open_from */
    size_t open_from;
    double open_lo, open_hi;
    size_t n;
    cldp_trace_pending p[CLDP_TRACE_PENDING];
} cldp_trace_queue;

/* Whether queues are made with CL_QUEUE_PROFILING_ENABLE (1, the default; cldp-bench compares). */
extern int cldp_trace_profile_queues;

/* The queue *slot of device `info` for the recording in progress (made, or emptied for a new
 * recording, as needed; NULL when off or out of memory). The calls below take the device's
 * in-order queue `q`, which calibrates its clock and is waited on when the entries are full. */
cldp_trace_queue *cldp_trace_queue_for(cldp_trace_queue **slot, const cldp_device_info *info);
/* A new entry; returns where the enqueue call puts its event (NULL when dropped). With
 * `marker_q`, a marker is enqueued on it first and marks the command's start (CLBlast's event is
 * its last kernel's). */
cl_event *cldp_trace_push(cldp_trace_queue *tq, cl_command_queue q, const char *name, const char *cat, int layer,
                          int track, cl_command_queue marker_q);
/* Opens / closes a span over the commands pushed in between (track 0 only). */
void cldp_trace_span_begin(cldp_trace_queue *tq, cl_command_queue q);
void cldp_trace_span_end(cldp_trace_queue *tq, cl_command_queue q, const char *name, int layer);
/* Waits for the pending commands, records them with their host times, and empties the queue. */
void cldp_trace_flush(cldp_trace_queue *tq, cl_command_queue q);
/* Releases the pending events and frees *slot. */
void cldp_trace_queue_free(cldp_trace_queue **slot);

#endif
