/* trainer_ranks.c — the trainer's step over several ranks (ranks.h; MPI in mpi_combine.c). A rank
 * sums its devices' gradients with the local tree into host memory (the local phase), the ranks
 * combine their sums, then every rank applies the same update to its master copy and writes it
 * to its devices (the global update phase): the shape of a one-process step, with the combine
 * between the two halves of the reduction. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "balance.h"
#include "optim.h"
#include "trace.h"
#include "trainer.h"

/* Split "auto" over ranks: every device's model (a fixed cost and a cost per sample, fitted by
 * its rank's balancer to its own timings) gathered from every rank, and the split of the whole
 * batch that minimises the predicted step (cldp_balancer_shards). Every rank computes it from the
 * same numbers, so they agree on it. A device not measured yet counts as the average of those
 * that are; none measured: even. Returns 0 (even) when the gather fails: the combine then names
 * the rank that is gone. */
static int speed_shards(cldp_trainer *t, size_t total, size_t *len)
{
    cldp_ranks *rk = t->ranks;
    size_t g = rk->global_devices, per = 0;
    for (size_t p = 0; p < rk->size; p++) per = rk->devices[p] > per ? rk->devices[p] : per;
    double mine[2 * CLDP_MAX_DEVICES] = {0}, all[2 * CLDP_MAX_GLOBAL_DEVICES];
    double fixed[CLDP_MAX_GLOBAL_DEVICES], cost[CLDP_MAX_GLOBAL_DEVICES];
    for (size_t r = 0; r < t->n; r++) {
        mine[2 * r] = t->bal->fixed_ms[t->origin[r]];
        mine[2 * r + 1] = t->bal->ms_per_sample[t->origin[r]];
    }
    if (2 * per * rk->size > sizeof all / sizeof *all ||
        rk->ops->gather_doubles(rk, mine, 2 * per, all, t->opts.timeout_ms) != CLDP_OK)
        return 0;
    size_t d = 0, known = 0;
    double sum_fixed = 0, sum_cost = 0;
    for (size_t p = 0; p < rk->size; p++)
        for (size_t r = 0; r < rk->devices[p]; r++, d++) {
            fixed[d] = all[p * 2 * per + 2 * r];
            cost[d] = all[p * 2 * per + 2 * r + 1];
            if (cost[d] > 0 && isfinite(cost[d]) && fixed[d] >= 0 && isfinite(fixed[d]))
                known++, sum_fixed += fixed[d], sum_cost += cost[d];
            else
                cost[d] = 0;
        }
    if (!known) return 0;
    for (d = 0; d < g; d++)
        if (cost[d] == 0) fixed[d] = sum_fixed / (double)known, cost[d] = sum_cost / (double)known;
    cldp_balancer_shards(fixed, cost, g, total, len);
    return 1;
}

void cldp_trainer_split_ranks(cldp_trainer *t, size_t total)
{
    /* the batch split over every rank's devices (evenly, or by speed), this rank taking its
     * devices' shards: the shards one rank with all the devices would give */
    const cldp_ranks *rk = t->ranks;
    size_t g = rk->global_devices, len[CLDP_MAX_GLOBAL_DEVICES], off = 0;
    if (!rk->by_speed || !speed_shards(t, total, len)) {
        double w[CLDP_MAX_GLOBAL_DEVICES];
        for (size_t d = 0; d < g; d++) w[d] = 1.0;
        cldp_split_shards(w, g, total, len);
    }
    for (size_t d = 0; d < rk->device_base; d++) off += len[d];
    for (size_t r = 0; r < t->n; r++) {
        t->shard_off[r] = off;
        t->shard_len[r] = len[rk->device_base + r];
        off += t->shard_len[r];
    }
}

int cldp_trainer_store_local(void *ctx, size_t at, const float *g, size_t len)
{
    const cldp_trainer *t = ctx;
    memcpy(t->lsum + at, g, len * sizeof *g);
    return cldp_all_finite(g, len) ? 0 : CODE_GRAD_NONFINITE;
}

cldp_status cldp_trainer_check_ranks(cldp_ranks *rk, const cldp_trainer_options *o, size_t n)
{
    REQUIRE(o->on_failure == CLDP_ON_FAILURE_STOP, "trainer options: over several ranks only the stop policy is "
            "available (a rank cannot drop a device without the others re-splitting); use CLDP_ON_FAILURE_STOP");
    REQUIRE(!o->split || !strcmp(o->split, "even") || !strcmp(o->split, "auto"), "trainer options: split \"%s\": "
            "over several ranks the batch is split evenly over every rank's devices (\"even\" or NULL) or by their "
            "measured speed (\"auto\")", o->split);
    rk->by_speed = o->split && !strcmp(o->split, "auto");
    REQUIRE(rk->global_devices <= CLDP_MAX_GLOBAL_DEVICES, "%zu devices over all ranks, at most %d",
            rk->global_devices, CLDP_MAX_GLOBAL_DEVICES);
    REQUIRE(rk->devices[rk->rank] == n, "rank %zu: %zu devices selected but the ranks agreed on %zu", rk->rank, n,
            rk->devices[rk->rank]);
    return CLDP_OK;
}

/* The update from the sum over ranks, and the write to this rank's devices. */
static void prepare_global_update(cldp_trainer *t, phase *ph)
{
    cldp_reducer_reset(t->upd, 1, cldp_trainer_update_block, cldp_update_fence, t);
    for (size_t l = 0; l < t->model.nlayers; l++) {
        cldp_layer_size ls;
        cldp_layer_size_of(&t->model, l, 1, &ls);
        cldp_reducer_deliver_host(t->upd, 0, l, t->gsum + ls.param_off);
    }
    ph->params = t->next_master;
    ph->rd = t->upd;
    ph->write_params = 1;
    ph->local_grads = 0;
}

cldp_status cldp_trainer_start_ranks(cldp_trainer *t)
{
    t->offered = 0;
    t->ranks_t0_us = CLDP_TRACING() ? cldp_trace_clock_us() : 0;
    return t->ranks->ops->begin(t->ranks, t->lsum, t->gsum, t->model.nparams, cldp_reducer_pieces(t->reducer));
}

/* Pieces go in index order, which is the order the local tree finishes them in when it has one
 * worker and near it with more; a piece done out of order waits for those before it. */
static void offer_done(cldp_trainer *t)
{
    cldp_ranks *rk = t->ranks;
    size_t np = cldp_reducer_pieces(t->reducer), b, e;
    while (t->offered < np && cldp_reducer_done(t->reducer, t->offered)) {
        cldp_reducer_piece(t->reducer, t->offered, &b, &e);
        rk->ops->offer(rk, t->offered++, b, e);
    }
}

void cldp_trainer_poll_ranks(phase *ph)
{
    cldp_trainer *t = ph->t;
    offer_done(t);
    t->ranks->ops->progress(t->ranks);
}

/* A rank that fails or falls silent fails the step here for the others within the watchdog;
 * the ranks are then out of step, so the trainer can only be destroyed. */
cldp_status cldp_trainer_combine_ranks(cldp_trainer *t, cldp_run **run, phase **ph, double *loss, size_t *correct)
{
    char bad[192] = ""; /* the device whose own gradient was not finite, named after the update */
    for (size_t r = t->n; r-- > 0;)
        if ((*ph)->nonfinite[r]) snprintf(bad, sizeof bad, "%s", t->reps[r]->name);
    cldp_run_release(*run);
    *run = NULL;
    cldp_ranks *rk = t->ranks;
    double v[2] = {*loss, (double)*correct};
    offer_done(t); /* every piece is done now */
    double t_wait = t->ranks_t0_us ? cldp_trace_clock_us() : 0;
    cldp_status st = rk->ops->finish(rk, t->opts.timeout_ms);
    if (st == CLDP_OK) st = rk->ops->sum_doubles(rk, v, 2, t->opts.timeout_ms);
    if (t_wait) { /* traced: on the host lane, inside the step, the combine over the ranks (it
                     overlaps the devices' reduction) and the end of it that the host waits for */
        double t_end = cldp_trace_clock_us();
        cldp_trace_add("ranks combine", "ranks", 0, CLDP_TRACK_QUEUE, -1, t->t + 1, t->ranks_t0_us, t_end);
        cldp_trace_add("ranks wait", "wait", 0, CLDP_TRACK_QUEUE, -1, t->t + 1, t_wait, t_end);
    }
    if (st != CLDP_OK) {
        t->broken = 1;
        char why[1024];
        snprintf(why, sizeof why, "%s", cldp_last_error());
        return cldp_fail(st, "step %llu: %s; the parameters are those before the step, and the ranks are out of "
                             "step, so the trainer can only be destroyed", (unsigned long long)t->t + 1, why);
    }
    *loss = v[0];
    *correct = (size_t)v[1];
    const phase_plan update = {PHASE_UPDATE, cldp_trainer_job_update, prepare_global_update, NULL};
    if ((st = cldp_phase_once(t, &update, run, ph)) != CLDP_OK) {
        t->broken = 1;
        return st;
    }
    for (size_t r = 0; r < t->n && *bad; r++) (*ph)->nonfinite[r] = !strcmp(bad, t->reps[r]->name);
    return CLDP_OK;
}
