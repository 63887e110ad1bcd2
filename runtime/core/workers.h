/* workers.h — one persistent thread per device, and the supervised run: one phase of work on every
 * worker, with a watchdog, per-phase state, abandonment of a worker that is stuck, and the facts
 * a failure policy needs. Training, evaluation, the public collective and serving all use it.
 *
 * The life of a run, and why nothing a stuck worker can reach is ever freed under it:
 *   - cldp_pool_run starts a fresh run (its own per-rank state: no phase ever sees another
 *     phase's "finished") and blocks until every worker returns or the watchdog fires.
 *   - Each worker holds a reference to the run while inside it; so does the caller until
 *     cldp_run_release. The last one to let go calls the run's `release(ctx)`: whatever the
 *     job reads (its context, and through it the trainer, replicas, buffers) stays alive at
 *     least until then.
 *   - When the watchdog fires, the run is abandoned before cldp_pool_run returns: the late
 *     workers' sections (cldp_run_enter) are refused from then on, and the sections already in
 *     flight are waited for (bounded), so after the return no late worker writes state the
 *     caller shares. Late workers poll cldp_run_abandoned to stop early.
 *   - A worker still inside an abandoned run keeps its pool from taking another job
 *     (cldp_pool_run is CLDP_ERR_STATE); such a pool can only be destroyed, which detaches
 *     the stuck threads: the last of them to come back frees the pool. */
#ifndef CLDP_WORKERS_H
#define CLDP_WORKERS_H

#include "common.h"

typedef struct cldp_pool cldp_pool;
typedef struct cldp_run cldp_run;

/* A job: runs on worker `rank` inside `run`; returns a status (and on failure has recorded the
 * message with cldp_fail, on the worker's own thread). */
typedef cldp_status (*cldp_job_fn)(cldp_run *run, void *ctx, size_t rank);

typedef struct cldp_run_desc {
    cldp_job_fn fn;
    void *ctx;
    /* Called once with ctx by whoever lets go of the run last: the caller (abandoned == 0, on
     * the caller's thread) or a late worker (abandoned == 1, on that worker's thread). May be
     * NULL. */
    void (*release)(void *ctx, int abandoned);
    const char *phase;             /* what the job does, for messages: "forward and backward" */
    const char *const *names;      /* (pool size) what each rank is, for messages; may be NULL */
    double timeout_ms;             /* the watchdog for this run (0: none) */
    /* Called with ctx on the caller's thread about every CLDP_POLL_US while it waits for the
     * workers (never under the pool's lock); may be NULL. For work that belongs to the caller's
     * thread alone, such as MPI progressed from one thread. It must not block for long: the
     * watchdog is checked between calls. */
    void (*poll)(void *ctx);
} cldp_run_desc;

#define CLDP_POLL_US 100

cldp_status cldp_pool_create(size_t n, cldp_pool **out);
/* Joins the idle threads; a thread still inside an abandoned run is detached instead, and the
 * last such thread to come back frees the pool (one that never comes back keeps it: a bounded
 * leak rather than a hang). Release every run of the pool (cldp_run_release) first: a run
 * goes back to its pool when it is released. */
void cldp_pool_destroy(cldp_pool *pool);

/* A worker that a watchdog other than the pool's gave up on (the server's, which answers a hung
 * batch and retires the device) while it is inside a driver call: counted by
 * cldp_wait_abandoned, like a late worker of an abandoned run, from _add until it is back and
 * calls _done. Thread-safe. */
void cldp_late_worker_add(void);
void cldp_late_worker_done(void);

/* Runs desc->fn(run, ctx, r) on every worker r at once and blocks until all return or the
 * watchdog fires. Returns CLDP_OK, or the status of the lowest failing rank, whose message
 * becomes the caller's last error (a timed-out rank: CLDP_ERR_TIMEOUT). *out (never NULL after
 * the call, even on failure, unless the pool refused the run: then NULL) is the run, for its
 * per-rank facts; hand it back with cldp_run_release. CLDP_ERR_STATE, *out NULL, desc->release
 * not called: a worker is still stuck in an earlier run. CLDP_ERR_HOST_MEMORY, *out NULL: no
 * memory for the run (release not called either). Not re-entrant: one run at a time per pool. */
cldp_status cldp_pool_run(cldp_pool *pool, const cldp_run_desc *desc, cldp_run **out);

/* Per-rank facts of a finished (or abandoned) run, for the caller. */
cldp_status cldp_run_status(const cldp_run *run, size_t rank);
const char *cldp_run_error(const cldp_run *run, size_t rank); /* "" when it succeeded */
double cldp_run_ms(const cldp_run *run, size_t rank);          /* wall time of its part */
size_t cldp_run_failures(const cldp_run *run);                 /* ranks that did not succeed */
size_t cldp_run_timeouts(const cldp_run *run);                 /* of those, stuck past the watchdog */
/* "<name>: <its error>" of the lowest failing rank (a timeout says the phase and the limit),
 * into msg; "" when none failed. */
void cldp_run_describe(const cldp_run *run, char *msg, size_t size);
/* The caller lets go of the run (NULL: nothing). */
void cldp_run_release(cldp_run *run);

/* ---- inside a job ---- */

/* 1 once the run was abandoned (the watchdog fired): a late worker should stop, touching only
 * what its run holds. */
int cldp_run_abandoned(const cldp_run *run);
/* A section that writes state the caller shares beyond this run (the reducer's pieces, the next
 * parameters). Returns 0, entering nothing, once the run is abandoned. Sections are short and
 * never wait on a device or on another worker. */
int cldp_run_enter(cldp_run *run);
void cldp_run_leave(cldp_run *run);
/* 1 once another rank of the run has failed (its job returned an error) or the run was
 * abandoned: nothing a worker waits for in this run may come any more. */
int cldp_run_cancelled(const cldp_run *run);
/* Waits (yielding) until *flag is nonzero; returns 0 when the run was cancelled meanwhile. For
 * the short waits of one worker on another inside the same run. */
int cldp_run_wait_flag(cldp_run *run, const _Atomic int *flag);

#endif
