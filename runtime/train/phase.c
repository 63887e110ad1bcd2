/* phase.c — the trainer's phases as supervised runs (workers.h): the phase context each run
 * carries, the failure policy (stop, or drop the failed devices and go on with the others), and
 * the broadcast of the master parameters. */
#define _POSIX_C_SOURCE 200809L
#include "trainer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const phase_names[PHASE_COUNT] = {
    [PHASE_TRAIN] = "the forward and backward pass",
    [PHASE_UPDATE] = "the host reduction, update and parameter write",
    [PHASE_BROADCAST] = "the parameter broadcast",
    [PHASE_EVAL] = "an evaluation",
    [PHASE_PREDICT] = "a prediction",
};

/* ---- phase contexts -------------------------------------------------------------------- */

/* A context for a run of `kind` on the devices now present; holds a reference to the trainer
 * until the run lets go of it (phase_release). */
static phase *phase_new(cldp_trainer *t, phase_kind kind)
{
    phase *ph = t->spare;
    t->spare = NULL;
    if (!ph && !(ph = cldp_malloc(sizeof *ph, "phase"))) return NULL;
    memset(ph, 0, sizeof *ph);
    ph->t = t;
    ph->kind = kind;
    ph->trace_step = kind == PHASE_TRAIN || kind == PHASE_UPDATE ? t->t + 1 : 0;
    ph->n = t->n;
    ph->params = kind == PHASE_UPDATE ? t->next_master : t->master;
    for (size_t r = 0; r < t->n; r++) {
        ph->reps[r] = t->reps[r];
        ph->names[r] = t->reps[r]->name;
        ph->test[r].slowdown = t->test.slowdown[t->origin[r]];
    }
    atomic_fetch_add(&t->refs, 1);
    return ph;
}

/* The run lets go of its phase: back to the trainer's spare on the caller's thread, or freed by
 * the last late worker of an abandoned run, which then drops the trainer (maybe freeing it). */
static void phase_release(void *ctx, int abandoned)
{
    phase *ph = ctx;
    cldp_trainer *t = ph->t;
    if (!abandoned && !t->spare) t->spare = ph;
    else free(ph);
    cldp_trainer_release(t);
}

/* The broadcast's job: the master parameters to this worker's device. */
static cldp_status job_broadcast(cldp_run *run, phase *ph, size_t r)
{
    (void)run;
    TRY(cldp_replica_release_grads(ph->reps[r]));
    return cldp_replica_write_params(ph->reps[r], ph->params, 0, ph->t->model.nparams);
}

static cldp_status phase_job(cldp_run *run, void *ctx, size_t r)
{
    phase *ph = ctx;
    /* the worker's own work (pieces it sums) goes on its device's lane, with the step */
    if (CLDP_TRACING()) cldp_trace_set_thread(cldp_trace_lane_for(&ph->reps[r]->dev->info), ph->trace_step);
    cldp_status st = ph->job(run, ph, r);
    cldp_replica_trace_flush(ph->reps[r]); /* the device commands' times, while they are at hand */
    return st;
}

/* ---- the failure policy ---------------------------------------------------------------- */

static void record_drop(cldp_trainer *t, size_t rank, cldp_status st, const char *reason)
{
    if (t->ndrops < CLDP_MAX_DROPS) {
        cldp_drop *d = &t->drops[t->ndrops];
        d->rank = rank;
        d->status = st;
        snprintf(d->reason, sizeof d->reason, "%s", reason);
    }
    t->ndrops++;
}

/* A worker stuck past the watchdog may still have writes queued from the parameter vectors, and
 * its driver reads them whenever it comes back: the trainer goes on with copies, and the
 * originals stay untouched until the trainer is freed. */
static cldp_status retire_vectors(cldp_trainer *t)
{
    float **v[6] = {&t->master, &t->opt_m, &t->opt_v, &t->next_master, &t->next_m, &t->next_v};
    size_t bytes = t->model.nparams * sizeof(float);
    float *copy[6];
    for (int i = 0; i < 6; i++)
        if (!(copy[i] = cldp_malloc(bytes, "parameter vectors"))) {
            while (i--) free(copy[i]);
            return CLDP_ERR_HOST_MEMORY;
        }
    for (int i = 0; i < 6; i++) {
        memcpy(copy[i], *v[i], bytes);
        t->retired[t->nretired++] = *v[i];
        *v[i] = copy[i];
    }
    return CLDP_OK;
}

/* A run failed on some workers: names the failure, then applies the policy. Takes the run and
 * releases it, before the pool it came from is replaced (a run refers to its pool until it is
 * released). Returns CLDP_PHASE_RETRY when the failed devices were dropped and the work should be
 * redone on the others; otherwise the failure's status, its message set. */
static cldp_status apply_policy(cldp_trainer *t, phase_kind kind, cldp_run *run, cldp_status st)
{
    char msg[1100];
    cldp_run_describe(run, msg, sizeof msg);
    size_t failed = cldp_run_failures(run), timeouts = cldp_run_timeouts(run);
    if (failed == 0) { /* not a worker's failure */
        cldp_run_release(run);
        return st;
    }
    for (size_t r = 0; r < t->n; r++)
        if (cldp_run_status(run, r) != CLDP_OK) {
            st = cldp_run_status(run, r);
            break;
        }
    if (t->opts.on_failure == CLDP_ON_FAILURE_STOP || failed == t->n) {
        cldp_run_release(run);
        if (timeouts) t->broken = 1; /* the stuck worker keeps its pool: only destroy is safe now */
        char what[64];
        int stepping = kind == PHASE_TRAIN || kind == PHASE_UPDATE;
        if (stepping) snprintf(what, sizeof what, "step %llu", (unsigned long long)t->t + 1); /* counted from 1, as the timeline does */
        else snprintf(what, sizeof what, "%s", kind == PHASE_EVAL ? "evaluation" : kind == PHASE_PREDICT ? "prediction" : "broadcast");
        const char *kept = stepping ? "the parameters are those before the step" : "the parameters are unchanged";
        return cldp_fail(st, "%s: %s; %s%s", what, msg,
                         failed == t->n && t->opts.on_failure == CLDP_ON_FAILURE_DROP
                             ? "every device failed, nothing left to continue on"
                             : kept,
                         timeouts ? "; a device is stuck, so the trainer can only be destroyed (save a checkpoint "
                                    "first, and call cldp_wait_abandoned before exiting)"
                                  : "");
    }

    /* Drop: keep the survivors in rank order, so the reduction tree over them is the one a run
     * on the survivors alone would use. A stuck worker may still use its replica: it goes to
     * the graveyard, freed with the trainer once every worker has left. */
    size_t keep = 0;
    for (size_t r = 0; r < t->n; r++) {
        cldp_status s = cldp_run_status(run, r);
        if (s == CLDP_OK) {
            t->devs[keep] = t->devs[r];
            t->reps[keep] = t->reps[r];
            t->origin[keep] = t->origin[r];
            keep++;
            continue;
        }
        record_drop(t, t->origin[r], s, cldp_run_error(run, r));
        if (s == CLDP_ERR_TIMEOUT) t->graveyard[t->ngrave++] = t->reps[r];
        else cldp_replica_destroy(t->reps[r]);
    }
    t->n = keep;
    cldp_run_release(run);
    cldp_pool_destroy(t->pool); /* detaches a stuck worker; it frees that pool when it is back */
    t->pool = NULL;
    cldp_status ps = timeouts ? retire_vectors(t) : CLDP_OK;
    if (ps == CLDP_OK) ps = cldp_pool_create(keep, &t->pool);
    if (ps != CLDP_OK) {
        t->broken = 1;
        return ps;
    }
    t->dirty = 1;
    return CLDP_PHASE_RETRY;
}

static void phase_poll(void *ctx)
{
    phase *ph = ctx;
    ph->poll(ph);
}

cldp_status cldp_phase_once(cldp_trainer *t, const phase_plan *plan, cldp_run **out, phase **php)
{
    phase_kind kind = plan->kind;
    *out = NULL;
    if (t->broken)
        return cldp_fail(CLDP_ERR_STATE, "this trainer lost a device that stopped answering; its parameters are "
                                         "still readable (cldp_trainer_get_params), then destroy it");
    phase *ph = phase_new(t, kind);
    if (!ph) return CLDP_ERR_HOST_MEMORY;
    ph->job = plan->job;
    if (plan->prepare) plan->prepare(t, ph);
    const cldp_run_desc d = {phase_job, ph, phase_release, phase_names[kind], ph->names, t->opts.timeout_ms,
                             ph->poll ? phase_poll : NULL};
    cldp_run *run;
    cldp_status st = cldp_pool_run(t->pool, &d, &run);
    if (!run) { /* refused before any worker saw it */
        phase_release(ph, 0);
        return st;
    }
    if (st == CLDP_OK) {
        *out = run;
        if (php) *php = ph;
        return CLDP_OK;
    }
    return apply_policy(t, kind, run, st);
}

cldp_status cldp_phase_run(cldp_trainer *t, const phase_plan *plan, cldp_run **out, phase **ph)
{
    for (;;) {
        cldp_status st = cldp_phase_once(t, plan, out, ph);
        if (st != CLDP_PHASE_RETRY) return st;
        if (plan->kind != PHASE_BROADCAST) TRY(cldp_trainer_rebroadcast_if_dirty(t)); /* a broadcast simply runs again */
        if (plan->redo) plan->redo(t);
    }
}

/* ---- broadcast ------------------------------------------------------------------------- */

cldp_status cldp_trainer_broadcast(cldp_trainer *t)
{
    cldp_run *run;
    static const phase_plan plan = {PHASE_BROADCAST, job_broadcast, NULL, NULL};
    TRY(cldp_phase_run(t, &plan, &run, NULL));
    cldp_run_release(run);
    t->dirty = 0;
    return CLDP_OK;
}

cldp_status cldp_trainer_rebroadcast_if_dirty(cldp_trainer *t)
{
    return t->dirty ? cldp_trainer_broadcast(t) : CLDP_OK;
}
