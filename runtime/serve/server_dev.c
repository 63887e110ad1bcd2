/* server_dev.c — the inference server's device side: the memory plan of forward-only replicas,
 * building them, serving as one long supervised run in which every worker
 * pulls batches, the watchdog that answers a hung batch and retires its device, the failure
 * policy, parameter generations on the devices, and the test hooks (faults, slowdown). */
#define _POSIX_C_SOURCE 200809L
#include "server.h"
#include "layers.h"
#include "trace.h"
#include "testspec.h"
#include "memplan.h"
#include "config.h"
#include "testhooks.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- building the replicas ------------------------------------------------------------- */

/* Builds, loads and warms worker w's replica on this thread. One after another, as the trainer
 * does: PoCL 3.1 has tripped an internal assertion (pocl_release_dlhandle_cache) when two
 * threads compile kernels at once. */
static cldp_status build(cldp_server *s, srv_worker *w)
{
    TRY(cldp_replica_create_forward(w->dev, &s->model, w->max_rows, &w->rep));
    TRY(cldp_replica_write_params(w->rep, s->cur->p, 0, s->model.nparams));
    TRY(cldp_replica_warm_up(w->rep)); /* compiles now, not in the first request */
    w->dev_gen = s->cur->gen;
    return CLDP_OK;
}

/* Each device's batch rows: max_batch, or what its memory holds (forward only); the devices that
 * share host memory (PoCL's, integrated GPUs) budgeted together against the host's, as the
 * trainer's are, beside the server's own parameter vectors (the current generation and one being
 * swapped in). */
static cldp_status plan(cldp_server *s, const cldp_config *cfg)
{
    const cldp_device_info *info[CLDP_MAX_RANKS];
    size_t rows[CLDP_MAX_RANKS];
    for (size_t r = 0; r < s->n; r++) info[r] = &s->w[r].dev->info;
    cldp_host_mem host;
    cldp_host_memory(cfg->host_memory_cap, &host);
    uint64_t host_vectors = 2 * (uint64_t)s->model.nparams * sizeof(float);
    TRY(cldp_mem_plan_devices_forward(&s->model, s->o.max_batch, info, s->n, cfg->device_memory_cap, &host, host_vectors,
                                      rows));
    for (size_t r = 0; r < s->n; r++) s->w[r].max_rows = rows[r];
    return CLDP_OK;
}

/* ---- serving --------------------------------------------------------------------------- */

/* Runs the batch w formed (no lock held): its generation's parameters onto the device if they are
 * not there yet, the rows, forward, softmax. *probs points into the replica. */
static cldp_status run_batch(cldp_server *s, srv_worker *w, const srv_params *pv, size_t rows, uint64_t *dev_gen,
                             int fault, double fault_ms, const float **probs)
{
    cldp_replica *rep = w->rep;
    if (fault != CLDP_FAULT_NONE) {
        rep->test.fault = (cldp_fault_kind)fault;
        rep->test.stall_ms = fault_ms;
    }
    if (*dev_gen != pv->gen) {
        *dev_gen = UINT64_MAX; /* half-written parameters are no generation */
        TRY(cldp_replica_write_params(rep, pv->p, 0, s->model.nparams));
        *dev_gen = pv->gen;
    }
    TRY(cldp_replica_load(rep, w->x, NULL, rows));
    TRY(cldp_replica_forward(rep, rows));
    return cldp_replica_probs(rep, rows, probs);
}

/* The device leaves: it takes no more batches, and the round robin skips it. Under mu. */
static void retire(cldp_server *s, srv_worker *w)
{
    if (w->dead) return;
    w->dead = 1;
    s->alive--;
    if (s->rr_turn == w->rank) {
        for (size_t k = 1; k <= s->n; k++)
            if (!s->w[(w->rank + k) % s->n].dead) {
                s->rr_turn = (w->rank + k) % s->n;
                break;
            }
    }
    pthread_cond_broadcast(&s->work_cv);
}

static cldp_status serve_job(cldp_run *run, void *ctx, size_t rank)
{
    (void)run;
    cldp_server *s = ctx;
    srv_worker *w = &s->w[rank];
    uint64_t dev_gen;
    pthread_mutex_lock(&s->mu);
    dev_gen = w->dev_gen;
    while (cldp_srv_take(s, w)) {
        int fault = CLDP_FAULT_NONE;
        if (CLDP_TEST_ARMED() && w->fault_kind != CLDP_FAULT_NONE && w->nbatch == w->fault_at) {
            fault = w->fault_kind;
            w->fault_kind = CLDP_FAULT_NONE;
        }
        w->nbatch++;
        double fault_ms = w->fault_ms, slowdown = w->slowdown;
        /* the batch's generation (a reference of its own) and size: the watchdog may settle the
         * batch and clear w's fields while this worker still runs it */
        srv_params *pv = w->pv;
        size_t rows = w->rows;
        pthread_mutex_unlock(&s->mu);

        double t0 = cldp_now_ms();
        const float *probs = NULL;
        if (CLDP_TRACING()) cldp_trace_set_thread(cldp_trace_lane_for(&w->dev->info), 0);
        cldp_status st = run_batch(s, w, pv, rows, &dev_gen, fault, fault_ms, &probs);
        double ms = cldp_now_ms() - t0;
        if (CLDP_TRACING()) cldp_trace_here("compute", "serve", -1, t0 * 1e3, (t0 + ms) * 1e3);
        cldp_replica_trace_flush(w->rep); /* its device commands' times */
        if (CLDP_TEST_ARMED() && slowdown > 1 && st == CLDP_OK) cldp_sleep_ms((slowdown - 1) * ms);

        cldp_request *done = NULL;
        pthread_mutex_lock(&s->mu);
        if (w->claimed) { /* the watchdog answered this batch and retired the device */
            pthread_mutex_unlock(&s->mu);
            cldp_srv_params_unref(pv);
            cldp_late_worker_done();
            return cldp_fail(CLDP_ERR_TIMEOUT, "%s: a batch outlived the watchdog (%.0f ms)", w->name, s->o.watchdog_ms);
        }
        w->dev_gen = dev_gen;
        if (st == CLDP_OK) {
            cldp_srv_settle(s, w, CLDP_OK, probs, ms, &done);
        } else {
            int drop = s->o.on_failure == CLDP_ON_FAILURE_DROP;
            if (drop) retire(s, w);
            cldp_srv_fail_parts(s, w, st, drop, &done);
        }
        pthread_mutex_unlock(&s->mu);
        cldp_srv_params_unref(pv);
        cldp_srv_deliver(done);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return CLDP_OK;
}

/* The serving run: every worker serves until the server stops; ends when all have left. */
static void *supervisor_main(void *arg)
{
    cldp_server *s = arg;
    const cldp_run_desc d = {serve_job, s, NULL, "serving", s->names, 0, NULL};
    cldp_run *run = NULL;
    cldp_pool_run(s->pool, &d, &run);
    cldp_run_release(run);
    pthread_mutex_lock(&s->mu);
    s->supervisor_done = 1;
    pthread_cond_broadcast(&s->drain_cv);
    pthread_mutex_unlock(&s->mu);
    cldp_srv_unref(s);
    return NULL;
}

/* The watchdog: a batch running past watchdog_ms is answered CLDP_ERR_TIMEOUT (or retried on the
 * others under the drop policy) and its device retired, whatever the stuck driver call does;
 * expired queued rows are answered even while every worker is busy. */
static void *monitor_main(void *arg)
{
    cldp_server *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->mon_stop) {
        double now = cldp_now_ms();
        cldp_request *done = NULL;
        for (size_t r = 0; r < s->n; r++) {
            srv_worker *w = &s->w[r];
            if (!w->busy || w->claimed || s->o.watchdog_ms <= 0 || now - w->batch_start <= s->o.watchdog_ms) continue;
            w->claimed = 1;
            cldp_late_worker_add(); /* until it is back from its driver call (serve_job) */
            retire(s, w);
            cldp_srv_fail_parts(s, w, CLDP_ERR_TIMEOUT, s->o.on_failure == CLDP_ON_FAILURE_DROP, &done);
        }
        cldp_srv_sweep(s, now, &done);
        if (done) {
            pthread_mutex_unlock(&s->mu);
            cldp_srv_deliver(done);
            pthread_mutex_lock(&s->mu);
        }
        cldp_srv_timed_wait(&s->mon_cv, &s->mu, 10);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

cldp_status cldp_srv_start(cldp_server *s)
{
    const cldp_config *cfg;
    TRY(cldp_config_get(&cfg));
    const cldp_dev *devs;
    size_t ndev, idx[CLDP_MAX_RANKS], n;
    TRY(cldp_devices(&devs, &ndev));
    TRY(cldp_device_select(s->o.devices, idx, CLDP_MAX_RANKS, &n));
    double slow[CLDP_MAX_RANKS];
    TRY(cldp_slowdown_parse(cfg->slowdown, n, slow));
    if (!(s->w = cldp_calloc(n, sizeof *s->w, "server workers"))) return CLDP_ERR_HOST_MEMORY;
    s->n = n;
    for (size_t r = 0; r < n; r++) {
        srv_worker *w = &s->w[r];
        w->rank = r;
        w->dev = &devs[idx[r]];
        w->dev_gen = UINT64_MAX;
        w->slowdown = slow[r];
        snprintf(w->name, sizeof w->name, "device %u:%u (%s)", w->dev->info.platform_index, w->dev->info.device_index,
                 w->dev->info.name);
        s->names[r] = w->name;
    }
    TRY(plan(s, cfg));
    for (size_t r = 0; r < n; r++) {
        srv_worker *w = &s->w[r];
        w->x = cldp_malloc(w->max_rows * s->model.inputs * sizeof(float), "server batch");
        w->parts = w->x ? cldp_malloc(w->max_rows * sizeof *w->parts, "server batch parts") : NULL;
        if (!w->parts) return CLDP_ERR_HOST_MEMORY;
    }
    for (size_t r = 0; r < n; r++) {
        cldp_status st = build(s, &s->w[r]);
        if (st != CLDP_OK) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", cldp_last_error());
            return cldp_fail(st, "cldp_server_create: %s", msg);
        }
    }
    TRY(cldp_pool_create(n, &s->pool));
    s->alive = n;
    if (pthread_create(&s->monitor, NULL, monitor_main, s) != 0)
        return cldp_fail(CLDP_ERR_HOST_MEMORY, "cldp_server_create: could not start the watchdog thread");
    s->monitor_started = 1;
    atomic_fetch_add(&s->refs, 1); /* the supervisor's */
    if (pthread_create(&s->supervisor, NULL, supervisor_main, s) != 0) {
        atomic_fetch_sub(&s->refs, 1);
        s->alive = 0;
        return cldp_fail(CLDP_ERR_HOST_MEMORY, "cldp_server_create: could not start the serving thread");
    }
    s->supervisor_started = 1;
    return CLDP_OK;
}

void cldp_srv_stop(cldp_server *s)
{
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->work_cv);
    /* a worker stuck in a driver call (its batch already answered by the watchdog) is left
     * behind: the supervisor thread keeps the core alive until it is back */
    double until = cldp_now_ms() + (s->o.watchdog_ms > 0 ? s->o.watchdog_ms : 0) + 5000;
    while (s->supervisor_started && !s->supervisor_done && cldp_now_ms() < until)
        cldp_srv_timed_wait(&s->drain_cv, &s->mu, 50);
    int joinable = s->supervisor_done;
    s->mon_stop = 1;
    pthread_cond_broadcast(&s->mon_cv);
    pthread_mutex_unlock(&s->mu);
    if (s->supervisor_started) {
        if (joinable) pthread_join(s->supervisor, NULL);
        else pthread_detach(s->supervisor);
    }
    if (s->monitor_started) pthread_join(s->monitor, NULL);
}

void cldp_srv_free_workers(cldp_server *s)
{
    cldp_pool_destroy(s->pool); /* every worker has left its runs by now */
    for (size_t r = 0; r < s->n && s->w; r++) {
        cldp_replica_destroy(s->w[r].rep);
        free(s->w[r].x);
        free(s->w[r].parts);
    }
    free(s->w);
}

/* ---- test hooks ------------------------------------------------------------------------ */

cldp_status cldp_srv_arm_faults(cldp_server *s, const char *spec)
{
    static const char *const names[] = {"gemm", "kernel", "stall"};
    static const cldp_fault_kind kinds[] = {CLDP_FAULT_GEMM, CLDP_FAULT_KERNEL, CLDP_FAULT_STALL};
    REQUIRE(s && spec, "cldp_test_control(CLDP_TEST_SERVER_FAULT): server or spec is NULL");
    cldp_fault_item items[CLDP_MAX_RANKS];
    size_t n;
    TRY(cldp_fault_spec_parse(spec, "server fault spec", "BATCH", names, 3, s->n, items, CLDP_MAX_RANKS, &n));
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < n; i++) {
        srv_worker *w = &s->w[items[i].rank];
        w->fault_kind = kinds[items[i].kind];
        w->fault_at = w->nbatch + items[i].at;
        w->fault_ms = items[i].ms;
    }
    pthread_mutex_unlock(&s->mu);
    return CLDP_OK;
}
