/* trainer.c — data-parallel training: create the replicas, then each step shards the batch over
 * the devices, computes forward and backward on every replica at once, reduces the gradients on
 * the host in a fixed tree fused with the optimizer's update, broadcasts the new parameters, and
 * commits them only when every value is finite. */
#define _POSIX_C_SOURCE 200809L
#include "trainer.h"
#include "layers.h"
#include "config.h"
#include "optim.h"
#include "testhooks.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- sharding -------------------------------------------------------------------------- */

void cldp_trainer_split(cldp_trainer *t, size_t total)
{
    cldp_balancer_split(t->bal, t->origin, t->n, total, t->shard_len);
    size_t o = 0;
    for (size_t r = 0; r < t->n; r++) {
        t->shard_off[r] = o;
        o += t->shard_len[r];
    }
}

/* The split, the test slowdown and each device's replica rows (rows[r], sized by its memory),
 * before anything is built: a device the model cannot fit is refused here, never half-way
 * through a step. */
static cldp_status plan_sharding(cldp_trainer *t, const cldp_trainer_options *opts, const cldp_config *cfg,
                                 size_t *rows)
{
    double w[CLDP_MAX_DEVICES];
    int automatic = 1;
    TRY(cldp_split_parse(opts->split ? opts->split : cfg->split, t->n, w, &automatic));
    int balance = opts->balance;
    if (balance < 0) { /* auto: only where the devices differ; identical ones stay deterministic */
        balance = 0;
        for (size_t r = 1; r < t->n; r++)
            if (strcmp(t->devs[r]->info.name, t->devs[0]->info.name) ||
                strcmp(t->devs[r]->info.driver_version, t->devs[0]->info.driver_version))
                balance = 1;
    }
    cldp_balancer_init(t->bal, t->n, w, automatic && balance);
    TRY(cldp_slowdown_parse(cfg->slowdown, t->n, t->test.slowdown));
    const cldp_device_info *info[CLDP_MAX_DEVICES];
    for (size_t r = 0; r < t->n; r++) info[r] = &t->devs[r]->info;
    cldp_host_mem host; /* devices that share host memory are budgeted together against it */
    cldp_host_memory(cfg->host_memory_cap, &host);
    /* master, moments, the next ones; over ranks also the local and the global sums */
    uint64_t host_vectors = (t->ranks ? 8 : 6) * (uint64_t)t->model.nparams * sizeof(float);
    return cldp_mem_plan_devices(&t->model, opts->batch, info, t->n, cfg->device_memory_cap, &host, host_vectors, rows);
}

/* Micro-batch k of `parts` over a shard of len rows: sizes differ by at most one. */
static void micro_batch(size_t len, size_t parts, size_t k, size_t *begin, size_t *rows)
{
    *begin = k * (len / parts) + (k < len % parts ? k : len % parts);
    *rows = len / parts + (k < len % parts);
}

/* ---- the step's work on each device ---------------------------------------------------- */

/* Forward and backward of the shard (as micro-batches when it is larger than the replica's
 * buffers: near-equal parts whose gradients accumulate on the device, each scaled by 1/batch
 * like the whole shard, so the sum is the undivided shard's to rounding). The layers' gradients
 * are delivered to the reducer as they land, top first; while the device still computes lower
 * layers, the worker sums the pieces every device has delivered. */
static cldp_status job_train(cldp_run *run, phase *ph, size_t r)
{
    cldp_trainer *t = ph->t;
    const size_t nl = t->model.nlayers;
    cldp_replica *rep = ph->reps[r];
    size_t len = ph->shard_len[r], off = ph->shard_off[r];
    double loss = 0, t0 = cldp_now_ms();
    size_t correct = 0, last_rows = 0;
    TRY(cldp_replica_release_grads(rep)); /* left mapped by a step that failed half-way */
    if (len == 0) {
        TRY(cldp_replica_deliver_zero(rep));
    } else {
        size_t parts = (len + rep->max_rows - 1) / rep->max_rows;
        for (size_t k = 0; k < parts; k++) {
            size_t b, rows;
            micro_batch(len, parts, k, &b, &rows);
            if (cldp_run_abandoned(run)) return CLDP_OK; /* given up on: stop early */
            /* the caller's batch is read only inside a section: after a timeout it may be gone */
            if (!cldp_run_enter(run)) return CLDP_OK;
            cldp_status st = cldp_trainer_load_rows(t, rep, ph, off + b, rows, 1);
            cldp_run_leave(run);
            TRY(st);
            /* dropout's masks: the step count and the rows' places in the global batch */
            const cldp_train_ctx tc = {t->opts.seed, ph->step, off + b};
            TRY(cldp_replica_forward_train(rep, rows, &tc));
            if (k + 1 < parts) {
                TRY(cldp_replica_backward(rep, rows, ph->scale, k > 0));
                TRY(cldp_replica_read_loss(rep, rows, &loss, &correct));
            } else {
                TRY(cldp_replica_backward_deliver(rep, rows, ph->scale, k > 0));
                last_rows = rows;
            }
        }
    }
    for (size_t l = nl; l-- > 0;) {
        const float *g;
        TRY(cldp_replica_layer_grads(rep, l, &g));
        if (CLDP_TEST_ARMED() && ph->test[r].nan_grad && l + 1 == nl && t->model.layers[l].nparams) {
            memcpy(ph->test[r].nan_grad, g, t->model.layers[l].nparams * sizeof *g); /* the device's stays as it is */
            ph->test[r].nan_grad[0] = NAN;
            g = ph->test[r].nan_grad;
        }
        if (!cldp_reducer_deliver(t->reducer, run, r, l, g)) return CLDP_OK; /* abandoned */
        if (t->early && rep->streamed && l > 0) {
            double s0 = cldp_now_ms();
            if (!cldp_reducer_work(t->reducer, run, 0)) return CLDP_OK;
            ph->early_ms[r] += cldp_now_ms() - s0;
        }
    }
    if (last_rows) TRY(cldp_replica_read_loss(rep, last_rows, &loss, &correct));
    if (CLDP_TEST_ARMED() && len && ph->test[r].slowdown > 1.0) cldp_sleep_ms((ph->test[r].slowdown - 1.0) * (cldp_now_ms() - t0));
    ph->loss_sum[r] = loss;
    ph->correct[r] = correct;
    ph->train_end[r] = cldp_now_ms();
    return CLDP_OK;
}

/* The rest of the reduction, then the new parameters to this device: the workers share the
 * pieces not done yet (every device has delivered now); each writes every piece to its own
 * device as soon as the piece is done, overlapped with the others' last pieces. */
cldp_status cldp_trainer_job_update(cldp_run *run, phase *ph, size_t r)
{
    cldp_trainer *t = ph->t;
    cldp_replica *rep = ph->reps[r];
    cldp_reducer *rd = ph->rd;
    double t0 = cldp_now_ms();
    if (CLDP_TEST_ARMED()) cldp_sleep_ms(ph->test[r].stall_reduce_ms);
    if (!cldp_reducer_work(rd, run, 1)) return CLDP_OK; /* cancelled */
    double t1 = cldp_now_ms();
    ph->reduce_ms[r] = ph->early_ms[r] + (t1 - t0);
    for (size_t p = 0; p < cldp_reducer_pieces(rd); p++) {
        size_t b, e;
        if (!cldp_reducer_wait(rd, run, p)) return CLDP_OK;
        cldp_reducer_piece(rd, p, &b, &e);
        if (ph->write_params) TRY(cldp_replica_write_params_async(rep, ph->params, b, e, 0));
    }
    if (ph->local_grads) {
        /* Every piece is done, so no worker reads this device's gradient any more. Where a sum
         * was not finite, say whether this device's gradient is why, before letting it go. */
        if (!cldp_run_enter(run)) return CLDP_OK; /* abandoned: the reducer may be another run's now */
        int codes = cldp_reducer_codes(rd);
        cldp_run_leave(run);
        if (codes & CODE_GRAD_NONFINITE) {
            for (size_t l = 0; l < t->model.nlayers && !ph->nonfinite[r]; l++) {
                const float *g;
                TRY(cldp_replica_layer_grads(rep, l, &g));
                cldp_layer_size ls;
                cldp_layer_size_of(&t->model, l, 1, &ls);
                ph->nonfinite[r] = !cldp_all_finite(g, ls.params);
            }
        }
        TRY(cldp_replica_release_grads(rep));
    }
    if (ph->write_params) TRY(cldp_replica_finish(rep));
    ph->broadcast_ms[r] = cldp_now_ms() - t1;
    return CLDP_OK;
}

/* ---- creation -------------------------------------------------------------------------- */

void cldp_trainer_options_init(cldp_trainer_options *o)
{
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->batch = 128;
    o->optimizer = CLDP_OPT_ADAM;
    o->learning_rate = 1e-3f;
    o->momentum = 0.9f;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->epsilon = 1e-8f;
    o->seed = 1;
    o->timeout_ms = 120000;
    o->on_failure = CLDP_ON_FAILURE_STOP;
    o->on_nonfinite = CLDP_ON_NONFINITE_SKIP;
    o->split = NULL;
    o->balance = -1;
}

/* The oldest options struct accepted: the fields up to on_nonfinite. Newer fields take their
 * defaults when the caller's struct_size stops before them. */
#define OPTIONS_MIN_SIZE (offsetof(cldp_trainer_options, on_nonfinite) + sizeof(cldp_nonfinite_policy))

/* The caller's options, as large as they are, completed with defaults into *o. */
static cldp_status take_options(const cldp_trainer_options *in, cldp_trainer_options *o)
{
    REQUIRE(in->struct_size >= OPTIONS_MIN_SIZE && in->struct_size <= sizeof *o,
            "trainer options: struct_size is %zu, expected %zu to %zu; initialise them with cldp_trainer_options_init",
            in->struct_size, (size_t)OPTIONS_MIN_SIZE, sizeof *o);
    cldp_trainer_options_init(o);
    memcpy(o, in, in->struct_size);
    o->struct_size = sizeof *o;
    REQUIRE(o->batch > 0, "trainer options: batch must be at least 1");
    REQUIRE(o->batch <= (1u << 24), "trainer options: batch %zu is too large (at most %u)", o->batch, 1u << 24);
    REQUIRE(o->optimizer == CLDP_OPT_SGD || o->optimizer == CLDP_OPT_ADAM, "trainer options: unknown optimizer %d", (int)o->optimizer);
    REQUIRE(isfinite(o->learning_rate) && o->learning_rate > 0, "trainer options: learning rate must be a positive number, got %g", (double)o->learning_rate);
    REQUIRE(isfinite(o->momentum) && o->momentum >= 0 && o->momentum < 1, "trainer options: momentum must be in [0, 1), got %g", (double)o->momentum);
    REQUIRE(isfinite(o->weight_decay) && o->weight_decay >= 0, "trainer options: weight decay must be >= 0, got %g", (double)o->weight_decay);
    REQUIRE(o->beta1 >= 0 && o->beta1 < 1 && o->beta2 >= 0 && o->beta2 < 1, "trainer options: Adam betas must be in [0, 1)");
    REQUIRE(isfinite(o->epsilon) && o->epsilon > 0, "trainer options: epsilon must be > 0");
    REQUIRE(isfinite(o->timeout_ms) && o->timeout_ms >= 0, "trainer options: timeout_ms must be >= 0 (0: no watchdog)");
    REQUIRE(o->on_failure == CLDP_ON_FAILURE_STOP || o->on_failure == CLDP_ON_FAILURE_DROP, "trainer options: unknown on_failure policy %d", (int)o->on_failure);
    REQUIRE(o->on_nonfinite == CLDP_ON_NONFINITE_SKIP || o->on_nonfinite == CLDP_ON_NONFINITE_STOP, "trainer options: unknown on_nonfinite policy %d", (int)o->on_nonfinite);
    REQUIRE(o->balance >= -1 && o->balance <= 1, "trainer options: balance must be -1 (auto), 0 (keep the split) or 1 (size shards by speed), got %d", o->balance);
    return CLDP_OK;
}

void cldp_trainer_release(cldp_trainer *t)
{
    if (atomic_fetch_sub(&t->refs, 1) != 1) return;
    for (size_t r = 0; r < t->n; r++)
        if (t->reps) cldp_replica_destroy(t->reps[r]);
    for (size_t r = 0; r < t->ngrave; r++) cldp_replica_destroy(t->graveyard[r]);
    cldp_pool_destroy(t->pool);
    cldp_reducer_destroy(t->reducer);
    cldp_reducer_destroy(t->upd);
    if (!t->ranks || !t->ranks->ops->stranded(t->ranks)) { /* else MPI may still use them */
        free(t->lsum);
        free(t->gsum);
    }
    if (t->ranks) t->ranks->ops->destroy(t->ranks);
    free(t->graveyard);
    for (size_t i = 0; i < t->nretired; i++) free(t->retired[i]);
    free(t->retired);
    free(t->reps);
    free(t->devs);
    free(t->master);
    free(t->opt_m);
    free(t->opt_v);
    free(t->next_master);
    free(t->next_m);
    free(t->next_v);
    free(t->spare);
    free(t->shard_off);
    free(t->shard_len);
    free(t->stats);
    free(t->origin);
    free(t->bal);
    free(t->test.nan_grad);
    free(t);
}

void cldp_trainer_destroy(cldp_trainer *t)
{
    if (!t) return;
    /* a worker still stuck in a driver call is detached here; its run holds the trainer, which
     * the last such worker frees when it comes back */
    cldp_pool_destroy(t->pool);
    t->pool = NULL;
    cldp_trainer_release(t);
}

cldp_status cldp_trainer_create(const cldp_model *model, const cldp_trainer_options *opts, cldp_trainer **out)
{
    return cldp_trainer_create_ranks(model, opts, NULL, out);
}

/* The trainer's vectors and per-device arrays for n devices; CLDP_ERR_HOST_MEMORY when one fails. */
static cldp_status allocate(cldp_trainer *t, size_t n)
{
    size_t np = t->model.nparams;
    t->devs = cldp_calloc(n, sizeof *t->devs, "device list");
    t->reps = cldp_calloc(n, sizeof *t->reps, "replicas");
    t->graveyard = cldp_calloc(n, sizeof *t->graveyard, "replicas");
    t->retired = cldp_calloc(6 * n, sizeof *t->retired, "vectors");
    t->master = cldp_calloc(np, sizeof(float), "master parameters");
    t->opt_m = cldp_calloc(np, sizeof(float), "optimizer state");
    t->opt_v = cldp_calloc(np, sizeof(float), "optimizer state");
    t->next_master = cldp_calloc(np, sizeof(float), "master parameters");
    t->next_m = cldp_calloc(np, sizeof(float), "optimizer state");
    t->next_v = cldp_calloc(np, sizeof(float), "optimizer state");
    t->shard_off = cldp_calloc(n, sizeof(size_t), "shards");
    t->shard_len = cldp_calloc(n, sizeof(size_t), "shards");
    t->stats = cldp_calloc(n, sizeof *t->stats, "statistics");
    t->origin = cldp_calloc(n, sizeof *t->origin, "ranks");
    t->bal = cldp_calloc(1, sizeof *t->bal, "balancer");
    if (!t->devs || !t->reps || !t->graveyard || !t->retired || !t->master || !t->opt_m || !t->opt_v || !t->next_master ||
        !t->next_m || !t->next_v || !t->shard_off || !t->shard_len || !t->stats || !t->origin || !t->bal)
        return CLDP_ERR_HOST_MEMORY;
    for (size_t r = 0; r < n; r++) t->origin[r] = r;
    return CLDP_OK;
}

/* The reducer of the devices' gradients, one segment per layer; over ranks also the local and
 * global sums and the update's own reducer over them. */
static cldp_status create_reducers(cldp_trainer *t)
{
    const cldp_model *model = &t->model;
    size_t seg[CLDP_MAX_LAYERS];
    for (size_t l = 0; l < model->nlayers; l++) {
        cldp_layer_size ls;
        cldp_layer_size_of(model, l, 1, &ls);
        seg[l] = ls.params;
    }
    TRY(cldp_reducer_create(seg, model->nlayers, t->n, &t->reducer));
    cldp_reducer_trace_as(t->reducer, t->ranks ? NULL : "update", 1); /* over ranks it only sums */
    if (!t->ranks) return CLDP_OK;
    t->lsum = cldp_calloc(model->nparams, sizeof(float), "local gradient sum");
    t->gsum = cldp_calloc(model->nparams, sizeof(float), "gradient sum over ranks");
    if (!t->lsum || !t->gsum) return CLDP_ERR_HOST_MEMORY;
    TRY(cldp_reducer_create(seg, model->nlayers, 1, &t->upd));
    cldp_reducer_trace_as(t->upd, "update", 1);
    return CLDP_OK;
}

cldp_status cldp_trainer_create_ranks(const cldp_model *model, const cldp_trainer_options *opts_in, cldp_ranks *ranks,
                                      cldp_trainer **out)
{
    cldp_status st0 = CLDP_OK;
    if (!out) st0 = cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "cldp_trainer_create: out is NULL");
    else if ((*out = NULL, !model || !opts_in)) st0 = cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "cldp_trainer_create: model or options is NULL");
    else if (model->nlayers == 0) st0 = cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "cldp_trainer_create: the model has no layers; add them with cldp_model_add_dense");
    cldp_trainer_options opts;
    if (st0 == CLDP_OK) st0 = take_options(opts_in, &opts);
    if (st0 != CLDP_OK) {
        if (ranks) ranks->ops->destroy(ranks);
        return st0;
    }
    cldp_trainer *t = cldp_calloc(1, sizeof *t, "trainer");
    if (!t) {
        if (ranks) ranks->ops->destroy(ranks);
        return CLDP_ERR_HOST_MEMORY;
    }
    atomic_init(&t->refs, 1);
    t->ranks = ranks; /* the trainer's from here: freed with it */
    t->model = *model;
    t->opts = opts;
    t->opts.devices = NULL; /* the caller's strings need not outlive the call */
    t->opts.split = NULL;
    const cldp_config *cfg;
    size_t rows_x_width, idx[CLDP_MAX_DEVICES], n = 0, nall;
    const cldp_dev *all;
    cldp_status st = cldp_config_get(&cfg);
    if (st == CLDP_OK && (cldp_mul_size(opts.batch, cldp_model_max_width(model), &rows_x_width) || rows_x_width >= (1u << 31)))
        st = cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "cldp_trainer_create: batch %zu x layer width %zu exceeds 2^31 elements "
                       "per buffer", opts.batch, cldp_model_max_width(model));
    if (st == CLDP_OK) st = cldp_device_select(opts.devices, idx, CLDP_MAX_DEVICES, &n);
    if (st == CLDP_OK) st = cldp_devices(&all, &nall);
    if (st == CLDP_OK && ranks) st = cldp_trainer_check_ranks(ranks, &opts, n);
    if (st != CLDP_OK) goto fail;
    t->n = n;
    t->early = cfg->early_reduce;
    size_t np = model->nparams;
    if ((st = allocate(t, n)) != CLDP_OK || (st = create_reducers(t)) != CLDP_OK) goto fail;
    if (CLDP_TEST_ARMED() || cfg->fault[0])
        if ((st = cldp_faults_parse(t, cfg->fault)) != CLDP_OK) goto fail;
    for (size_t r = 0; r < n; r++) t->devs[r] = &all[idx[r]];
    /* Each replica holds as many rows as a shard may have (the whole batch, with balancing)
     * or as its memory allows; larger shards run as micro-batches. */
    size_t max_rows[CLDP_MAX_DEVICES];
    if ((st = plan_sharding(t, &opts, cfg, max_rows)) != CLDP_OK) goto fail;
    /* Replicas are built and warmed up one after another on this thread: compiling on several
     * threads at once buys little, and PoCL 3.1 has been seen to trip an internal assertion
     * (pocl_release_dlhandle_cache) when two threads compile kernels concurrently. */
    for (size_t r = 0; r < n; r++) {
        if ((st = cldp_replica_create(t->devs[r], &t->model, max_rows[r], &t->reps[r])) != CLDP_OK) goto fail;
        if ((st = cldp_replica_warm_up(t->reps[r])) != CLDP_OK) goto fail;
    }
    if ((st = cldp_model_init_params(&t->model, opts.seed, t->master, np)) != CLDP_OK) goto fail;
    if ((st = cldp_pool_create(n, &t->pool)) != CLDP_OK) goto fail;
    if ((st = cldp_trainer_broadcast(t)) != CLDP_OK) goto fail;
    *out = t;
    return CLDP_OK;
fail:
    CLDP_KEEPING_ERROR(cldp_trainer_destroy(t)); /* destroying replicas must not overwrite the message */
    return st;
}

/* ---- steps ----------------------------------------------------------------------------- */

/* Over several ranks the batch is global: this rank's devices take their part of it. */
static void shard_step(cldp_trainer *t)
{
    if (t->ranks) cldp_trainer_split_ranks(t, t->batch_n);
    else cldp_trainer_split(t, t->batch_n);
}

/* The step's inputs, into a train phase (made again for every attempt). */
static void prepare_train(cldp_trainer *t, phase *ph)
{
    ph->x = t->x;
    ph->labels = t->labels;
    ph->targets = t->targets;
    ph->scale = 1.0f / (float)t->batch_n;
    ph->step = t->t;
    memcpy(ph->shard_off, t->shard_off, t->n * sizeof *t->shard_off);
    memcpy(ph->shard_len, t->shard_len, t->n * sizeof *t->shard_len);
    if (CLDP_TEST_ARMED()) {
        const cldp_layer_desc *top = &t->model.layers[t->model.nlayers - 1];
        for (size_t r = 0; r < t->n; r++) ph->test[r].nan_grad = t->test.inject_nan[r] ? t->test.nan_grad + r * top->nparams : NULL;
        memset(t->test.inject_nan, 0, sizeof t->test.inject_nan); /* a test fault fires once */
    }
    if (t->ranks) cldp_reducer_reset(t->reducer, t->n, cldp_trainer_store_local, NULL, t);
    else cldp_reducer_reset(t->reducer, t->n, cldp_trainer_update_block, cldp_update_fence, t);
}

/* The rest of the reduction and the update on this rank's devices (one process), or over
 * several ranks the local sums only. */
static void prepare_update(cldp_trainer *t, phase *ph)
{
    for (size_t r = 0; r < t->n; r++) ph->test[r].stall_reduce_ms = t->test.stall_reduce_ms[r];
    memset(t->test.stall_reduce_ms, 0, sizeof t->test.stall_reduce_ms);
    ph->rd = t->reducer;
    ph->write_params = !t->ranks;
    ph->local_grads = 1;
    ph->poll = t->ranks ? cldp_trainer_poll_ranks : NULL; /* the combine starts meanwhile */
}

/* The per-device figures of the train phase; feeds the balancer. */
static void train_stats(cldp_trainer *t, cldp_run *run, const phase *ph, double *loss, size_t *correct)
{
    double last_end = 0, ms[CLDP_MAX_DEVICES];
    for (size_t r = 0; r < t->n; r++) last_end = fmax(last_end, ph->train_end[r]);
    for (size_t r = 0; r < t->n; r++) {
        t->stats[r].shard = t->shard_len[r];
        /* the device's part alone: the pieces summed while waiting for it are not its speed */
        t->stats[r].compute_ms = ms[r] = cldp_run_ms(run, r) - ph->early_ms[r];
        t->stats[r].idle_ms = last_end - ph->train_end[r]; /* waiting for the slowest device */
        t->stats[r].reduce_ms = t->stats[r].broadcast_ms = 0;
        *loss += ph->loss_sum[r];
        *correct += ph->correct[r];
        if (CLDP_TRACING()) /* the device's idle time on its lane, as its worker saw it */
            cldp_trace_add("wait", "wait", cldp_trace_lane_for(&t->devs[r]->info), CLDP_TRACK_THREAD, -1, ph->trace_step,
                           ph->train_end[r] * 1e3, last_end * 1e3);
    }
    cldp_balancer_observe(t->bal, t->origin, t->n, t->shard_len, ms); /* sizes the next step's shards */
}

/* The update was not committed because of a non-finite value: says why, counts it. */
static cldp_status skip_update(cldp_trainer *t, int codes, const char *bad_name)
{
    t->skipped++;
    unsigned long long step = (unsigned long long)t->t + 1, skipped = (unsigned long long)t->skipped;
    if (bad_name)
        return cldp_fail(CLDP_ERR_NONFINITE, "step %llu: the gradient from %s holds NaN or Inf; the update was skipped "
                                             "(%llu skipped so far)", step, bad_name, skipped);
    if (codes & CODE_GRAD_NONFINITE)
        return cldp_fail(CLDP_ERR_NONFINITE, "step %llu: the sum of the devices' gradients overflowed to Inf; the update "
                                             "was skipped (%llu skipped so far); lower the learning rate", step, skipped);
    return cldp_fail(CLDP_ERR_NONFINITE, "step %llu: the update would have made parameters NaN or Inf; it was skipped "
                                         "(%llu skipped so far) and the parameters are those before it; lower the "
                                         "learning rate", step, skipped);
}

/* The step's phases until one attempt gets through: train on every device, then reduce, update
 * and broadcast (over ranks the combine between them); after a drop the whole step again on the
 * survivors. On success *run and *ph are the update's, and *loss and *correct the step's sums. */
static cldp_status attempts(cldp_trainer *t, cldp_run **runp, phase **php, double *lossp, size_t *correctp)
{
    cldp_run *run = NULL;
    phase *ph = NULL;
    double loss = 0;
    size_t correct = 0;
    for (;;) {
        /* compute: forward and backward on every device, the first pieces meanwhile */
        shard_step(t);
        const phase_plan train = {PHASE_TRAIN, job_train, prepare_train, shard_step};
        TRY(cldp_phase_run(t, &train, &run, &ph));
        loss = 0, correct = 0;
        train_stats(t, run, ph, &loss, &correct);
        cldp_run_release(run);
        /* reduce and update, broadcast: devices receive the new parameters before the step is
         * known to commit, so until it does they may not hold `master` */
        t->dirty = 1;
        if (CLDP_TEST_ARMED()) cldp_faults_arm(t, PHASE_UPDATE);
        cldp_status st = t->ranks ? cldp_trainer_start_ranks(t) : CLDP_OK;
        const phase_plan update = {PHASE_UPDATE, cldp_trainer_job_update, prepare_update, NULL};
        if (st == CLDP_OK) st = cldp_phase_once(t, &update, &run, &ph);
        if (st == CLDP_PHASE_RETRY) { /* dropped: the whole step again on the survivors */
            TRY(cldp_trainer_rebroadcast_if_dirty(t));
            continue;
        }
        if (st != CLDP_OK && t->ranks) t->broken = 1; /* the other ranks are waiting in the combine */
        TRY(st);
        if (t->ranks) TRY(cldp_trainer_combine_ranks(t, &run, &ph, &loss, &correct));
        *runp = run, *php = ph, *lossp = loss, *correctp = correct;
        return CLDP_OK;
    }
}

static cldp_status step(cldp_trainer *t, const float *x, const int32_t *labels, const float *targets, size_t n,
                        cldp_step_stats *stats)
{
    const char *who = targets ? "cldp_trainer_step_targets" : "cldp_trainer_step";
    REQUIRE(labels || targets, "%s: labels are NULL", who);
    TRY(cldp_trainer_check_inputs(t, x, labels, n, t->opts.batch, who));
    if (targets) TRY(cldp_trainer_check_targets(t, targets, n, who));
    TRY(cldp_trainer_rebroadcast_if_dirty(t));
    double t0 = cldp_now_ms();
    uint64_t step_no = t->t + 1; /* the timeline's */
    if (CLDP_TRACING()) /* the devices' lanes in rank order, whichever worker gets there first */
        for (size_t r = 0; r < t->n; r++) cldp_trace_lane_for(&t->devs[r]->info);
    t->x = x;
    t->labels = labels;
    t->targets = targets;
    t->batch_n = n;
    t->bc1 = 1.0 - pow((double)t->opts.beta1, (double)(t->t + 1));
    t->bc2 = 1.0 - pow((double)t->opts.beta2, (double)(t->t + 1));
    if (CLDP_TEST_ARMED()) cldp_faults_arm(t, PHASE_TRAIN);
    double loss = 0;
    size_t correct = 0;
    phase *ph = NULL;
    cldp_run *run = NULL;
    TRY(attempts(t, &run, &ph, &loss, &correct));
    for (size_t r = 0; r < t->n; r++) {
        t->stats[r].reduce_ms = ph->reduce_ms[r];
        t->stats[r].broadcast_ms = ph->broadcast_ms[r];
    }
    int codes = cldp_reducer_codes(t->ranks ? t->upd : t->reducer);
    const char *bad_name = NULL;
    for (size_t r = t->n; r-- > 0;)
        if (ph->nonfinite[r]) bad_name = t->reps[r]->name;
    char bad[192] = "";
    if (bad_name) snprintf(bad, sizeof bad, "%s", bad_name);
    cldp_run_release(run);
    if (stats) {
        stats->loss = loss / (double)n;
        stats->correct = correct;
        stats->samples = n;
    }
    cldp_status st = CLDP_OK;
    if (codes) { /* NaN or Inf: the next step, or any other use of the devices, first writes the
                  * unchanged parameters back to them */
        st = skip_update(t, codes, *bad ? bad : NULL);
        if (stats) stats->skipped = 1;
        if (t->opts.on_nonfinite == CLDP_ON_NONFINITE_SKIP) st = CLDP_OK;
    } else { /* commit */
        float *swap;
        swap = t->master, t->master = t->next_master, t->next_master = swap;
        swap = t->opt_m, t->opt_m = t->next_m, t->next_m = swap;
        swap = t->opt_v, t->opt_v = t->next_v, t->next_v = swap;
        t->t++;
        t->dirty = 0;
    }
    if (stats) {
        stats->skipped_total = t->skipped;
        stats->devices = t->n;
        stats->step_ms = cldp_now_ms() - t0;
    }
    if (CLDP_TRACING()) cldp_trace_add("step", "step", 0, CLDP_TRACK_QUEUE, -1, step_no, t0 * 1e3, cldp_now_ms() * 1e3);
    return st;
}

static cldp_status step_call(cldp_trainer *t, const float *x, const int32_t *labels, const float *targets, size_t n,
                             cldp_step_stats *stats)
{
    if (stats) memset(stats, 0, sizeof *stats);
    t->ndrops = 0;
    cldp_status st = step(t, x, labels, targets, n, stats);
    if (stats) {
        stats->dropped = t->ndrops;
        memcpy(stats->drops, t->drops, (t->ndrops < CLDP_MAX_DROPS ? t->ndrops : CLDP_MAX_DROPS) * sizeof *t->drops);
        stats->devices = t->n;
    }
    if (CLDP_TEST_ARMED() && !t->broken) cldp_faults_disarm(t); /* a stuck worker may still be inside its replica */
    return st;
}

cldp_status cldp_trainer_step(cldp_trainer *t, const float *x, const int32_t *labels, size_t n, cldp_step_stats *stats)
{
    TRY(cldp_trainer_check_loss(t, 0, "cldp_trainer_step", "cldp_trainer_step_targets"));
    return step_call(t, x, labels, NULL, n, stats);
}

cldp_status cldp_trainer_step_targets(cldp_trainer *t, const float *x, const float *targets, size_t n, cldp_step_stats *stats)
{
    TRY(cldp_trainer_check_loss(t, 1, "cldp_trainer_step_targets", "cldp_trainer_step"));
    REQUIRE(targets, "cldp_trainer_step_targets: targets are NULL");
    return step_call(t, x, NULL, targets, n, stats);
}
