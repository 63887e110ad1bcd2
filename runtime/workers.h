/* workers.h — a pool of persistent threads, one per device, that run a job on every rank and
 * wait for all of them. Errors of any worker reach the caller with the worker's message. */
#ifndef CLDP_WORKERS_H
#define CLDP_WORKERS_H

#include "common.h"

typedef struct cldp_pool cldp_pool;

/* A job: runs on worker `rank` with the caller's context; returns a status (and on failure has
 * recorded the message with cldp_fail, on the worker's own thread). */
typedef cldp_status (*cldp_job_fn)(void *ctx, size_t rank);

cldp_status cldp_pool_create(size_t n, cldp_pool **out);
/* Joins the threads. Must not be called while a job runs. */
void cldp_pool_destroy(cldp_pool *pool);
size_t cldp_pool_size(const cldp_pool *pool);

/* Runs fn(ctx, r) on every worker r at once and blocks until all return. Returns CLDP_OK, or
 * the status of the lowest failing rank, whose message becomes the caller's last error.
 * Not re-entrant: one job at a time per pool. */
cldp_status cldp_pool_run(cldp_pool *pool, cldp_job_fn fn, void *ctx);

/* Wall time the last job took on worker `rank`, in milliseconds. */
double cldp_pool_job_ms(const cldp_pool *pool, size_t rank);

/* Test hook: when set, every worker calls it with its rank before running its part of a job,
 * so tests can delay workers at random and show results never depend on arrival order. */
extern void (*cldp_pool_test_delay)(size_t rank);

#endif
