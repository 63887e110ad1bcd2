/* workers.c — persistent worker threads: one per device, woken per job by a generation counter,
 * so a training step costs two wake-ups rather than thread creation. */
#define _POSIX_C_SOURCE 200809L
#include "workers.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct worker {
    pthread_t thread;
    struct cldp_pool *pool;
    size_t rank;
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
    size_t done;
    int stop;
    cldp_job_fn fn;
    void *ctx;
};

void (*cldp_pool_test_delay)(size_t rank);

static void *worker_main(void *arg)
{
    worker *w = arg;
    cldp_pool *p = w->pool;
    unsigned long seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->stop && p->generation == seen) pthread_cond_wait(&p->wake, &p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = p->generation;
        cldp_job_fn fn = p->fn;
        void *ctx = p->ctx;
        pthread_mutex_unlock(&p->mu);

        if (cldp_pool_test_delay) cldp_pool_test_delay(w->rank);
        double t0 = cldp_now_ms();
        cldp_set_last_error("");
        cldp_status st = fn(ctx, w->rank);
        w->job_ms = cldp_now_ms() - t0;
        w->status = st;
        if (st != CLDP_OK) {
            strncpy(w->error, cldp_last_error(), sizeof w->error - 1);
            w->error[sizeof w->error - 1] = 0;
        }

        pthread_mutex_lock(&p->mu);
        if (++p->done == p->n) pthread_cond_signal(&p->done_cv);
        pthread_mutex_unlock(&p->mu);
    }
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
        if (pthread_create(&p->w[r].thread, NULL, worker_main, &p->w[r]) != 0) {
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
    pthread_mutex_unlock(&p->mu);
    for (size_t r = 0; r < p->n; r++) pthread_join(p->w[r].thread, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done_cv);
    free(p->w);
    free(p);
}

size_t cldp_pool_size(const cldp_pool *p) { return p ? p->n : 0; }

double cldp_pool_job_ms(const cldp_pool *p, size_t rank) { return p->w[rank].job_ms; }

cldp_status cldp_pool_run(cldp_pool *p, cldp_job_fn fn, void *ctx)
{
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->done = 0;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    while (p->done < p->n) pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    for (size_t r = 0; r < p->n; r++)
        if (p->w[r].status != CLDP_OK) {
            cldp_set_last_error(p->w[r].error);
            return p->w[r].status;
        }
    return CLDP_OK;
}
