/* workers.c — persistent worker threads: one per device, woken per job by a generation counter,
 * so a training step costs a few wake-ups rather than thread creation. Completion is tracked per
 * worker (the generation it last finished), so a worker that comes back late from an abandoned
 * job can never be mistaken for one finishing the current job. */
#define _POSIX_C_SOURCE 200809L
#include "workers.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct worker {
    pthread_t thread;
    struct cldp_pool *pool;
    size_t rank;
    int busy;                /* inside a job */
    int detached;            /* destroy left it inside its job; it frees the pool if last out */
    unsigned long done_gen;  /* last generation it finished */
    cldp_status status;
    double job_ms;
    char error[2048];
} worker;

struct cldp_pool {
    size_t n;
    worker *w;
    pthread_mutex_t mu;
    pthread_cond_t wake;    /* a new generation (job) or shutdown */
    pthread_cond_t done_cv; /* a worker finished its part */
    unsigned long generation;
    int stop;
    size_t orphans;         /* detached workers not yet out (only after destroy) */
    double timeout_ms;
    cldp_job_fn fn;
    void *ctx;
};

void (*cldp_pool_test_delay)(size_t rank);

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
        cldp_job_fn fn = p->fn;
        void *ctx = p->ctx;
        w->busy = 1;
        pthread_mutex_unlock(&p->mu);

        if (cldp_pool_test_delay) cldp_pool_test_delay(w->rank);
        double t0 = cldp_now_ms();
        cldp_set_last_error("");
        cldp_status st = fn(ctx, w->rank);
        double ms = cldp_now_ms() - t0;

        pthread_mutex_lock(&p->mu);
        w->busy = 0;
        if (w->detached) break; /* the pool was destroyed while this worker was stuck */
        if (seen == p->generation && w->status != CLDP_ERR_TIMEOUT) { /* not a late return */
            w->job_ms = ms;
            w->status = st;
            if (st != CLDP_OK) snprintf(w->error, sizeof w->error, "%s", cldp_last_error());
            w->done_gen = seen;
            pthread_cond_signal(&p->done_cv);
        }
    }
    int last = w->detached && --p->orphans == 0;
    pthread_mutex_unlock(&p->mu);
    if (last) { /* destroy left the pool to its stuck workers: the last one out frees it */
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->wake);
        pthread_cond_destroy(&p->done_cv);
        free(p->w);
        free(p);
    }
    return NULL;
}

cldp_status cldp_pool_create(size_t n, cldp_pool **out)
{
    REQUIRE(out && n > 0, "cldp_pool_create: bad arguments");
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
    if (!last) return; /* stuck threads still use the pool: the last one out frees it */
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done_cv);
    free(p->w);
    free(p);
}

size_t cldp_pool_size(const cldp_pool *p) { return p ? p->n : 0; }
double cldp_pool_job_ms(const cldp_pool *p, size_t rank) { return p->w[rank].job_ms; }
cldp_status cldp_pool_status(const cldp_pool *p, size_t rank) { return p->w[rank].status; }
const char *cldp_pool_error(const cldp_pool *p, size_t rank) { return p->w[rank].status == CLDP_OK ? "" : p->w[rank].error; }
void cldp_pool_set_timeout(cldp_pool *p, double ms) { p->timeout_ms = ms > 0 ? ms : 0; }

static int all_done(const cldp_pool *p)
{
    for (size_t r = 0; r < p->n; r++)
        if (p->w[r].done_gen != p->generation) return 0;
    return 1;
}

cldp_status cldp_pool_run(cldp_pool *p, cldp_job_fn fn, void *ctx)
{
    pthread_mutex_lock(&p->mu);
    for (size_t r = 0; r < p->n; r++)
        if (p->w[r].busy) {
            pthread_mutex_unlock(&p->mu);
            return cldp_fail(CLDP_ERR_STATE, "worker %zu is still inside an earlier job that timed out; "
                                             "this pool can only be destroyed", r);
        }
    p->fn = fn;
    p->ctx = ctx;
    p->generation++;
    for (size_t r = 0; r < p->n; r++) p->w[r].status = CLDP_OK;
    pthread_cond_broadcast(&p->wake);
    struct timespec deadline;
    if (p->timeout_ms > 0) {
        clock_gettime(CLOCK_REALTIME, &deadline);
        double s = (double)deadline.tv_nsec * 1e-9 + p->timeout_ms * 1e-3;
        deadline.tv_sec += (time_t)s;
        deadline.tv_nsec = (long)((s - (double)(time_t)s) * 1e9);
    }
    while (!all_done(p)) {
        if (p->timeout_ms <= 0) {
            pthread_cond_wait(&p->done_cv, &p->mu);
        } else if (pthread_cond_timedwait(&p->done_cv, &p->mu, &deadline) == ETIMEDOUT && !all_done(p)) {
            for (size_t r = 0; r < p->n; r++)
                if (p->w[r].done_gen != p->generation) {
                    p->w[r].status = CLDP_ERR_TIMEOUT;
                    snprintf(p->w[r].error, sizeof p->w[r].error,
                             "worker %zu did not finish its part within the %.0f ms watchdog timeout", r, p->timeout_ms);
                }
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
    for (size_t r = 0; r < p->n; r++)
        if (p->w[r].status != CLDP_OK) {
            cldp_set_last_error(p->w[r].error);
            return p->w[r].status;
        }
    return CLDP_OK;
}
