/* server_life.c — the inference server's life: options and their checks, creation from
 * parameters, a checkpoint or a live trainer, hot swaps (a new parameter generation for the
 * batches formed from then on), the draining shutdown, and the core's reference count. */
#define _POSIX_C_SOURCE 200809L
#include "server.h"
#include "checkpoint.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cldp_status params_new(const cldp_server *s, const float *params, const char *who, srv_params **out)
{
    size_t np = s->model.nparams;
    for (size_t i = 0; i < np; i++)
        if (!isfinite(params[i]))
            return cldp_fail(CLDP_ERR_NONFINITE, "%s: parameter %zu is %g; the server keeps its parameters", who, i,
                             (double)params[i]);
    srv_params *pv = cldp_calloc(1, sizeof *pv, "parameter generation");
    if (!pv) return CLDP_ERR_HOST_MEMORY;
    if (!(pv->p = cldp_malloc(np * sizeof(float), "parameters"))) {
        free(pv);
        return CLDP_ERR_HOST_MEMORY;
    }
    memcpy(pv->p, params, np * sizeof(float));
    atomic_init(&pv->refs, 1);
    *out = pv;
    return CLDP_OK;
}

/* ---- swaps ------------------------------------------------------------------------------ */

cldp_status cldp_server_swap_params(cldp_server *s, const float *params, size_t count, uint64_t *generation)
{
    REQUIRE(s && params, "cldp_server_swap_params: server or params is NULL");
    REQUIRE(count == s->model.nparams, "cldp_server_swap_params: %zu parameters, the model has %zu", count, s->model.nparams);
    srv_params *pv;
    TRY(params_new(s, params, "cldp_server_swap_params", &pv));
    pthread_mutex_lock(&s->mu);
    srv_params *old = s->cur;
    pv->gen = old->gen + 1;
    s->cur = pv;
    pthread_mutex_unlock(&s->mu);
    cldp_srv_params_unref(old); /* batches and requests on it still hold it */
    if (generation) *generation = pv->gen;
    return CLDP_OK;
}

cldp_status cldp_server_swap_checkpoint(cldp_server *s, const char *path, uint64_t *generation)
{
    REQUIRE(s && path, "cldp_server_swap_checkpoint: server or path is NULL");
    float *p = cldp_malloc(s->model.nparams * sizeof(float), "checkpoint parameters");
    if (!p) return CLDP_ERR_HOST_MEMORY;
    cldp_status st = cldp_checkpoint_read_params(&s->model, path, p);
    if (st == CLDP_OK) st = cldp_server_swap_params(s, p, s->model.nparams, generation);
    free(p);
    return st;
}

/* ---- life ------------------------------------------------------------------------------- */

void cldp_server_options_init(cldp_server_options *o)
{
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->max_batch = 64;
    o->max_queue_rows = 4096;
    o->default_timeout_ms = 10000;
    o->watchdog_ms = 30000;
    o->on_failure = CLDP_ON_FAILURE_STOP;
    o->schedule = CLDP_SCHEDULE_PULL;
}

static cldp_status check_options(const cldp_server_options *in, cldp_server_options *o)
{
    cldp_server_options_init(o);
    if (in) {
        REQUIRE(in->struct_size >= offsetof(cldp_server_options, devices) + sizeof(const char *) &&
                    in->struct_size <= sizeof *o,
                "cldp_server_create: options.struct_size %zu is not a cldp_server_options size: call "
                "cldp_server_options_init first", in->struct_size);
        memcpy(o, in, in->struct_size);
        o->struct_size = sizeof *o;
    }
    REQUIRE(o->max_batch >= 1 && o->max_batch <= 65536, "cldp_server_create: max_batch %zu; give 1 to 65536", o->max_batch);
    REQUIRE(o->max_queue_rows >= 1 && o->max_queue_rows <= ((size_t)1 << 30),
            "cldp_server_create: max_queue_rows %zu; give 1 to 2^30", o->max_queue_rows);
    REQUIRE(isfinite(o->max_queue_delay_us) && o->max_queue_delay_us >= 0 && o->max_queue_delay_us <= 60e6,
            "cldp_server_create: max_queue_delay_us %g; give 0 to 60000000", o->max_queue_delay_us);
    REQUIRE(isfinite(o->default_timeout_ms) && o->default_timeout_ms >= 0, "cldp_server_create: default_timeout_ms %g; give "
            ">= 0 (0: no deadline)", o->default_timeout_ms);
    REQUIRE(isfinite(o->watchdog_ms) && o->watchdog_ms >= 0, "cldp_server_create: watchdog_ms %g; give >= 0 (0: none)",
            o->watchdog_ms);
    REQUIRE(o->on_failure == CLDP_ON_FAILURE_STOP || o->on_failure == CLDP_ON_FAILURE_DROP,
            "cldp_server_create: on_failure %d is neither CLDP_ON_FAILURE_STOP nor _DROP", (int)o->on_failure);
    REQUIRE(o->schedule == CLDP_SCHEDULE_PULL || o->schedule == CLDP_SCHEDULE_ROUND_ROBIN,
            "cldp_server_create: schedule %d is neither CLDP_SCHEDULE_PULL nor _ROUND_ROBIN", (int)o->schedule);
    return CLDP_OK;
}

void cldp_srv_unref(cldp_server *s)
{
    if (atomic_fetch_sub(&s->refs, 1) != 1) return;
    cldp_srv_free_workers(s);
    cldp_srv_params_unref(s->cur);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->work_cv);
    pthread_cond_destroy(&s->drain_cv);
    pthread_cond_destroy(&s->mon_cv);
    free(s);
}

cldp_status cldp_server_create(const cldp_model *m, const float *params, size_t count, const cldp_server_options *opts,
                               cldp_server **out)
{
    REQUIRE(out, "cldp_server_create: out is NULL");
    *out = NULL;
    REQUIRE(m && params, "cldp_server_create: model or params is NULL");
    REQUIRE(m->nlayers > 0, "cldp_server_create: the model has no layers: add at least one with cldp_model_add_dense");
    REQUIRE(count == m->nparams, "cldp_server_create: %zu parameters, the model has %zu", count, m->nparams);
    cldp_server *s = cldp_calloc(1, sizeof *s, "server");
    if (!s) return CLDP_ERR_HOST_MEMORY;
    s->model = *m;
    cldp_status st = check_options(opts, &s->o);
    if (st == CLDP_OK) st = params_new(s, params, "cldp_server_create", &s->cur);
    if (st != CLDP_OK) {
        free(s);
        return st;
    }
    atomic_init(&s->refs, 1);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work_cv, NULL);
    pthread_cond_init(&s->drain_cv, NULL);
    pthread_cond_init(&s->mon_cv, NULL);
    if ((st = cldp_srv_start(s)) != CLDP_OK) {
        CLDP_KEEPING_ERROR(cldp_server_destroy(s));
        return st;
    }
    pthread_mutex_lock(&s->mu);
    s->accepting = 1;
    pthread_mutex_unlock(&s->mu);
    *out = s;
    return CLDP_OK;
}

cldp_status cldp_server_create_from_checkpoint(const cldp_model *m, const char *path, const cldp_server_options *opts,
                                               cldp_server **out)
{
    REQUIRE(out, "cldp_server_create_from_checkpoint: out is NULL");
    *out = NULL;
    REQUIRE(m && path, "cldp_server_create_from_checkpoint: model or path is NULL");
    float *p = cldp_malloc((m->nparams ? m->nparams : 1) * sizeof(float), "checkpoint parameters");
    if (!p) return CLDP_ERR_HOST_MEMORY;
    cldp_status st = cldp_checkpoint_read_params(m, path, p);
    if (st == CLDP_OK) st = cldp_server_create(m, p, m->nparams, opts, out);
    free(p);
    return st;
}

cldp_status cldp_server_shutdown(cldp_server *s)
{
    REQUIRE(s, "cldp_server_shutdown: server is NULL");
    pthread_mutex_lock(&s->mu);
    s->accepting = 0;
    /* drain: the workers keep serving; the watchdog answers a hung batch; deadlines bound the rest */
    while (s->outstanding) {
        cldp_request *done = NULL;
        cldp_srv_sweep(s, cldp_now_ms(), &done);
        if (done) {
            pthread_mutex_unlock(&s->mu);
            cldp_srv_deliver(done);
            pthread_mutex_lock(&s->mu);
            continue;
        }
        if (s->outstanding) cldp_srv_timed_wait(&s->drain_cv, &s->mu, 50);
    }
    int first = !s->shut;
    s->shut = 1;
    pthread_mutex_unlock(&s->mu);
    if (first) cldp_srv_stop(s);
    return CLDP_OK;
}

void cldp_server_destroy(cldp_server *s)
{
    if (!s) return;
    cldp_server_shutdown(s);
    cldp_srv_unref(s);
}

