/* cldp-train-trace.h — cldp-train's --trace FILE: the timeline of the training steps (cldp_trace_*),
 * recorded from the first step on (the trainer's creation, compilation included, is left out) and
 * written when the program ends, whichever way its run ended. Included by cldp-train.c alone. */
#ifndef CLDP_TRAIN_TRACE_H
#define CLDP_TRAIN_TRACE_H

#include "cldp.h"

#include <stdio.h>
#include <stdlib.h>

static const char *trace_file; /* being recorded, written at exit */
static int trace_quiet;

static void trace_write(void)
{
    if (!trace_file) return;
    size_t n = cldp_trace_event_count();
    if (cldp_trace_stop() != CLDP_OK) fprintf(stderr, "cldp-train: --trace: %s\n", cldp_last_error());
    else if (!trace_quiet)
        printf("cldp-train: timeline of %zu events written to %s (open it in https://ui.perfetto.dev or "
               "chrome://tracing)\n", n, trace_file);
    trace_file = NULL;
}

/* Starts the recording, before anything is loaded, so that an unwritable FILE is said at once;
 * 0, or -1 after saying why it cannot. */
static int trace_begin(const char *path, int quiet)
{
    if (cldp_trace_start(path) != CLDP_OK) {
        fprintf(stderr, "cldp-train: --trace: %s\n", cldp_last_error());
        return -1;
    }
    trace_file = path;
    trace_quiet = quiet;
    atexit(trace_write);
    return 0;
}

/* Starts the recording again, from the first step: what loading and the trainer's creation did is
 * dropped. A failure here (the path checked a moment ago) leaves the earlier recording on. */
static void trace_restart(void)
{
    if (trace_file && cldp_trace_start(trace_file) != CLDP_OK)
        fprintf(stderr, "cldp-train: --trace: %s (the timeline includes the start-up)\n", cldp_last_error());
}

#endif
