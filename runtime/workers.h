/* workers.h — a pool of persistent threads, one per device, that run a job on every rank
 * and wait for all of them, with a watchdog: a worker that does not finish in time ends the job
 * with CLDP_ERR_TIMEOUT instead of a hang. */
#ifndef CLDP_WORKERS_H
#define CLDP_WORKERS_H

#include "common.h"

typedef struct cldp_pool cldp_pool;

/* A job: runs on worker `rank` with the caller's context; returns a status (and on failure has
 * recorded the message with cldp_fail, on the worker's own thread). */
typedef cldp_status (*cldp_job_fn)(void *ctx, size_t rank);

cldp_status cldp_pool_create(size_t n, cldp_pool **out);
/* Joins the threads. A worker still stuck in a job (after a timeout) cannot be joined: it is
 * detached, and the last such worker to come back frees the pool (one that never comes back
 * keeps it: a bounded leak rather than a hang). */
void cldp_pool_destroy(cldp_pool *pool);
size_t cldp_pool_size(const cldp_pool *pool);

/* Watchdog: a job part that runs longer than `ms` (0: no limit) ends the job with
 * CLDP_ERR_TIMEOUT for that rank. */
void cldp_pool_set_timeout(cldp_pool *pool, double ms);

/* Runs fn(ctx, r) on every worker r at once and blocks until all return or the watchdog
 * fires. Returns CLDP_OK, or the status of the lowest failing rank, whose message becomes the
 * caller's last error; cldp_pool_status tells each rank's. A rank still busy with an earlier
 * job (after a timeout) makes the call fail with CLDP_ERR_STATE: such a pool is only fit to be
 * destroyed.
 * Not re-entrant: one job at a time per pool. */
cldp_status cldp_pool_run(cldp_pool *pool, cldp_job_fn fn, void *ctx);

/* Status of `rank` in the last job. */
cldp_status cldp_pool_status(const cldp_pool *pool, size_t rank);
/* The error message of `rank` in the last job ("" when it succeeded). */
const char *cldp_pool_error(const cldp_pool *pool, size_t rank);

/* Wall time the last job took on worker `rank`, in milliseconds. */
double cldp_pool_job_ms(const cldp_pool *pool, size_t rank);

/* Test hook: when set, every worker calls it with its rank before running its part of a job,
 * so tests can delay workers at random and show results never depend on arrival order. */
extern void (*cldp_pool_test_delay)(size_t rank);

#endif
