/* workers.c — persistent worker threads, one per device, woken per run; and the supervised run
 * (workers.h): per-run state, the watchdog, abandonment, and reference counts that keep whatever
 * a late worker can reach alive until it has left. */
#define _POSIX_C_SOURCE 200809L
#include "workers.h"
#include "testhooks.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { RANK_WORKING, RANK_DONE, RANK_TIMED_OUT };

struct cldp_run {
    cldp_run_desc d;
    struct cldp_pool *pool;
    size_t n;
    _Atomic size_t refs;      /* the caller's, and one per worker inside */
    _Atomic int abandoned;
    _Atomic int failed;       /* some rank's job returned an error */
    _Atomic size_t inflight;  /* workers inside a section (cldp_run_enter) */
    /* per rank; written by the worker under the pool's mutex, read by the caller after the run */
    int state[CLDP_MAX_RANKS];
    cldp_status status[CLDP_MAX_RANKS];
    double ms[CLDP_MAX_RANKS];
    char error[CLDP_MAX_RANKS][1024];
};

typedef struct worker {
    pthread_t thread;
    struct cldp_pool *pool;
    size_t rank;
    int busy;                /* inside a run */
    int detached;            /* destroy left it inside its run; it frees the pool if last out */
} worker;

struct cldp_pool {
    size_t n;
    worker *w;
    pthread_mutex_t mu;
    pthread_cond_t wake;     /* a new run, or shutdown */
    pthread_cond_t done_cv;  /* a worker finished its part */
    unsigned long generation;
    int stop;
    size_t orphans;          /* detached workers not yet out (only after destroy) */
    cldp_run *run;           /* the run of the current generation */
    cldp_run *spare;         /* a released run kept for the next one (runs allocate nothing) */
};

/* ---- runs ------------------------------------------------------------------------------ */

/* Drops a reference; the last one releases the job's context. A run nobody gave up on is
 * released by its caller (the workers' references are dropped before they report) and goes
 * back to its pool for the next run; an abandoned one is freed. */
static void run_unref(cldp_run *r)
{
    if (atomic_fetch_sub(&r->refs, 1) != 1) return;
    int abandoned = atomic_load(&r->abandoned);
    if (r->d.release) r->d.release(r->d.ctx, abandoned);
    if (!abandoned) {
        cldp_pool *p = r->pool;
        pthread_mutex_lock(&p->mu);
        if (!p->spare) p->spare = r, r = NULL;
        pthread_mutex_unlock(&p->mu);
    }
    free(r);
}

size_t cldp_run_size(const cldp_run *r) { return r->n; }
cldp_status cldp_run_status(const cldp_run *r, size_t rank) { return r->status[rank]; }
const char *cldp_run_error(const cldp_run *r, size_t rank) { return r->status[rank] == CLDP_OK ? "" : r->error[rank]; }
double cldp_run_ms(const cldp_run *r, size_t rank) { return r->ms[rank]; }
int cldp_run_abandoned(const cldp_run *r) { return atomic_load(&r->abandoned); }
int cldp_run_cancelled(const cldp_run *r) { return atomic_load(&r->abandoned) || atomic_load(&r->failed); }

size_t cldp_run_failures(const cldp_run *r)
{
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++) k += r->status[i] != CLDP_OK;
    return k;
}

size_t cldp_run_timeouts(const cldp_run *r)
{
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++) k += r->state[i] == RANK_TIMED_OUT;
    return k;
}

void cldp_run_describe(const cldp_run *r, char *msg, size_t size)
{
    if (size) *msg = 0;
    for (size_t i = 0; i < r->n; i++)
        if (r->status[i] != CLDP_OK) {
            snprintf(msg, size, "%s", r->error[i]);
            return;
        }
}

int cldp_run_enter(cldp_run *r)
{
    atomic_fetch_add(&r->inflight, 1);
    if (!atomic_load(&r->abandoned)) return 1;
    atomic_fetch_sub(&r->inflight, 1);
    return 0;
}

void cldp_run_leave(cldp_run *r) { atomic_fetch_sub(&r->inflight, 1); }

int cldp_run_wait_flag(cldp_run *r, const _Atomic int *flag)
{
    while (!atomic_load(flag)) {
        if (cldp_run_cancelled(r)) return 0;
        sched_yield();
    }
    return 1;
}

void cldp_run_release(cldp_run *r)
{
    if (r) run_unref(r);
}

/* The watchdog fired: late workers are refused from now on; sections already inside finish
 * first (they are short), for at most the run's own timeout: a section stuck longer than that
 * is past saving, and its writes are the caller's to fence (workers.h). */
static void abandon(cldp_run *r)
{
    atomic_store(&r->abandoned, 1);
    double until = cldp_now_ms() + (r->d.timeout_ms > 0 ? r->d.timeout_ms : 1000);
    while (atomic_load(&r->inflight) && cldp_now_ms() < until) sched_yield();
}

/* ---- workers given up on ----------------------------------------------------------------
 * Counted process-wide, so an application can wait for them before it exits
 * (cldp_wait_abandoned): a process that exits while a worker is inside a driver call may crash in
 * the driver's exit handlers. */

static pthread_mutex_t g_late_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_late_cv = PTHREAD_COND_INITIALIZER;
static size_t g_late; /* workers marked timed out that have not yet come back and cleaned up */

static void late_add(size_t k)
{
    pthread_mutex_lock(&g_late_mu);
    g_late += k;
    pthread_mutex_unlock(&g_late_mu);
}

static void late_done(void)
{
    pthread_mutex_lock(&g_late_mu);
    if (--g_late == 0) pthread_cond_broadcast(&g_late_cv);
    pthread_mutex_unlock(&g_late_mu);
}

void cldp_late_worker_add(void) { late_add(1); }
void cldp_late_worker_done(void) { late_done(); }

cldp_status cldp_wait_abandoned(double timeout_ms)
{
    REQUIRE(timeout_ms >= 0, "cldp_wait_abandoned: timeout_ms must be >= 0, got %g", timeout_ms);
    struct timespec deadline = {0, 0};
    clock_gettime(CLOCK_REALTIME, &deadline);
    double s = (double)deadline.tv_nsec * 1e-9 + timeout_ms * 1e-3;
    deadline.tv_sec += (time_t)s;
    deadline.tv_nsec = (long)((s - (double)(time_t)s) * 1e9);
    pthread_mutex_lock(&g_late_mu);
    while (g_late && pthread_cond_timedwait(&g_late_cv, &g_late_mu, &deadline) != ETIMEDOUT) {}
    size_t left = g_late;
    pthread_mutex_unlock(&g_late_mu);
    if (left)
        return cldp_fail(CLDP_ERR_TIMEOUT, "%zu worker(s) given up on after a watchdog timeout are still inside a "
                                           "driver call after %.0f ms", left, timeout_ms);
    return CLDP_OK;
}

/* ---- workers --------------------------------------------------------------------------- */

static void pool_free(cldp_pool *p)
{
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done_cv);
    free(p->spare);
    free(p->w);
    free(p);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    cldp_pool *p = w->pool;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->generation == seen) pthread_cond_wait(&p->wake, &p->mu);
        if (p->stop) break;
        seen = p->generation;
        cldp_run *run = p->run;
        atomic_fetch_add(&run->refs, 1);
        w->busy = 1;
        pthread_mutex_unlock(&p->mu);

        if (CLDP_TEST_ARMED() && cldp_test_worker_delay) cldp_test_worker_delay(w->rank);
        double t0 = cldp_now_ms();
        cldp_set_last_error("");
        cldp_status st = run->d.fn(run, run->d.ctx, w->rank);
        double ms = cldp_now_ms() - t0;

        pthread_mutex_lock(&p->mu);
        if (run->state[w->rank] == RANK_WORKING) {
            /* not given up on: report. The caller still holds the run (it waits for this very
             * report), so this reference is never the last. */
            run->state[w->rank] = RANK_DONE;
            run->status[w->rank] = st;
            run->ms[w->rank] = ms;
            if (st != CLDP_OK) {
                atomic_store(&run->failed, 1);
                const char *name = run->d.names ? run->d.names[w->rank] : NULL;
                const char *e = cldp_last_error();
                if (name && !strstr(e, name))
                    snprintf(run->error[w->rank], sizeof run->error[w->rank], "%s: %s", name, e);
                else
                    snprintf(run->error[w->rank], sizeof run->error[w->rank], "%s", e);
            }
            atomic_fetch_sub(&run->refs, 1);
            w->busy = 0; /* before the caller can see the run done and start the next */
            pthread_cond_signal(&p->done_cv);
            continue; /* still holding the lock */
        }
        pthread_mutex_unlock(&p->mu);
        run_unref(run); /* late: may be the last, freeing what the job used; never under the lock */
        pthread_mutex_lock(&p->mu);
        w->busy = 0;
        if (w->detached) break; /* the pool was destroyed while this worker was stuck */
        late_done();
    }
    int detached = w->detached, last = detached && --p->orphans == 0;
    pthread_mutex_unlock(&p->mu);
    if (last) pool_free(p); /* destroy left the pool to its stuck workers: the last one out frees it */
    if (detached) late_done(); /* only a late worker is ever detached */
    return NULL;
}

cldp_status cldp_pool_create(size_t n, cldp_pool **out)
{
    REQUIRE(out && n > 0 && n <= CLDP_MAX_RANKS, "cldp_pool_create: bad arguments (%zu workers, at most %d)", n, CLDP_MAX_RANKS);
    *out = NULL;
    cldp_pool *p = cldp_calloc(1, sizeof *p, "worker pool");
    if (!p) return CLDP_ERR_HOST_MEMORY;
    p->w = cldp_calloc(n, sizeof *p->w, "workers");
    if (!p->w) {
        free(p);
        return CLDP_ERR_HOST_MEMORY;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    for (size_t r = 0; r < n; r++) {
        p->w[r].pool = p;
        p->w[r].rank = r;
        /* a thread is memory too: the tests' failure injection counts it as a host allocation */
        if (cldp_test_host_alloc_fails() || pthread_create(&p->w[r].thread, NULL, worker_main, &p->w[r]) != 0) {
            p->n = r; /* join the ones already started */
            cldp_pool_destroy(p);
            return cldp_fail(CLDP_ERR_HOST_MEMORY, "could not start worker thread %zu of %zu", r, n);
        }
        p->n = r + 1;
    }
    *out = p;
    return CLDP_OK;
}

void cldp_pool_destroy(cldp_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->wake);
    size_t orphans = 0;
    for (size_t r = 0; r < p->n; r++)
        if (p->w[r].busy) {
            pthread_detach(p->w[r].thread); /* stuck in a driver call: cannot be joined */
            p->w[r].detached = 1;
            orphans++;
        }
    p->orphans = orphans + 1; /* and this call's own hold, while it joins the others */
    pthread_mutex_unlock(&p->mu);
    for (size_t r = 0; r < p->n; r++)
        if (!p->w[r].detached) pthread_join(p->w[r].thread, NULL);
    pthread_mutex_lock(&p->mu);
    int last = --p->orphans == 0;
    pthread_mutex_unlock(&p->mu);
    if (last) pool_free(p); /* else stuck threads still use the pool: the last one out frees it */
}

static int all_done(const cldp_pool *p, const cldp_run *run)
{
    for (size_t r = 0; r < p->n; r++)
        if (run->state[r] == RANK_WORKING) return 0;
    return 1;
}

cldp_status cldp_pool_run(cldp_pool *p, const cldp_run_desc *d, cldp_run **out)
{
    *out = NULL;
    pthread_mutex_lock(&p->mu);
    for (size_t r = 0; r < p->n; r++)
        if (p->w[r].busy) {
            pthread_mutex_unlock(&p->mu);
            return cldp_fail(CLDP_ERR_STATE, "worker %zu is still inside an earlier run that timed out; "
                                             "this pool can only be destroyed", r);
        }
    cldp_run *run = p->spare;
    p->spare = NULL;
    pthread_mutex_unlock(&p->mu);
    if (!run && !(run = cldp_malloc(sizeof *run, "run"))) return CLDP_ERR_HOST_MEMORY;
    memset(run, 0, sizeof *run);
    run->d = *d;
    run->pool = p;
    run->n = p->n;
    atomic_init(&run->refs, 1);
    pthread_mutex_lock(&p->mu);
    p->run = run;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    struct timespec deadline = {0, 0};
    if (d->timeout_ms > 0) {
        clock_gettime(CLOCK_REALTIME, &deadline);
        double s = (double)deadline.tv_nsec * 1e-9 + d->timeout_ms * 1e-3;
        deadline.tv_sec += (time_t)s;
        deadline.tv_nsec = (long)((s - (double)(time_t)s) * 1e9);
    }
    int fired = 0;
    while (!all_done(p, run)) {
        if (d->poll) { /* the caller's own work between short waits */
            pthread_mutex_unlock(&p->mu);
            d->poll(d->ctx);
            pthread_mutex_lock(&p->mu);
            if (all_done(p, run)) break;
            struct timespec slice;
            clock_gettime(CLOCK_REALTIME, &slice);
            slice.tv_nsec += CLDP_POLL_US * 1000L;
            if (slice.tv_nsec >= 1000000000L) slice.tv_sec++, slice.tv_nsec -= 1000000000L;
            int past = d->timeout_ms > 0 && (slice.tv_sec > deadline.tv_sec ||
                                             (slice.tv_sec == deadline.tv_sec && slice.tv_nsec >= deadline.tv_nsec));
            if (!past) {
                pthread_cond_timedwait(&p->done_cv, &p->mu, &slice);
                continue;
            }
        }
        if (d->timeout_ms <= 0) {
            pthread_cond_wait(&p->done_cv, &p->mu);
        } else if (pthread_cond_timedwait(&p->done_cv, &p->mu, &deadline) == ETIMEDOUT && !all_done(p, run)) {
            for (size_t r = 0; r < p->n; r++)
                if (run->state[r] == RANK_WORKING) {
                    run->state[r] = RANK_TIMED_OUT;
                    run->status[r] = CLDP_ERR_TIMEOUT;
                    if (d->names)
                        snprintf(run->error[r], sizeof run->error[r],
                                 "%s: did not finish its part of %s within %.0f ms (watchdog timeout)", d->names[r],
                                 d->phase ? d->phase : "a run", d->timeout_ms);
                    else
                        snprintf(run->error[r], sizeof run->error[r],
                                 "worker %zu did not finish its part of %s within %.0f ms (watchdog timeout)", r,
                                 d->phase ? d->phase : "a run", d->timeout_ms);
                }
            fired = 1;
            late_add(cldp_run_timeouts(run));
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
    if (fired) abandon(run);
    *out = run;
    for (size_t r = 0; r < p->n; r++)
        if (run->status[r] != CLDP_OK) {
            cldp_set_last_error(run->error[r]);
            return run->status[r];
        }
    return CLDP_OK;
}
