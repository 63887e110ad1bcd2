/* trainer.c — data-parallel training: shard the batch over the devices, forward and backward on
 * every replica at once, reduce the gradients on the host in a fixed tree, update the master
 * parameters with the optimizer and broadcast them. Also evaluation and prediction. */
#define _POSIX_C_SOURCE 200809L
#include "collective.h"
#include "devices.h"
#include "model.h"
#include "replica.h"
#include "workers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLDP_MAX_DEVICES 64

/* A worker only ever touches its own device's queue: some drivers (PoCL's basic device among
 * them) deadlock when two host threads drive one queue at once. */
typedef enum { JOB_TRAIN, JOB_UPDATE, JOB_BROADCAST, JOB_EVAL, JOB_PREDICT } job_kind;

struct cldp_trainer {
    cldp_model model;             /* our own copy */
    cldp_trainer_options opts;
    size_t n;                     /* devices */
    const cldp_dev **devs;        /* (n) */
    cldp_replica **reps;          /* (n) */
    cldp_pool *pool;
    float *master;                /* (nparams) master parameters */
    float *opt_m, *opt_v;         /* (nparams) momentum / Adam moments */
    uint64_t t;                   /* optimizer steps taken */
    float **stage;                /* (n, nparams) host staging of each device's gradient */
    int dirty;                    /* devices may not hold `master` (a broadcast failed) */

    /* the job in progress */
    job_kind job;
    const float *x;
    const int32_t *labels;
    float *probs;
    size_t *shard_off, *shard_len; /* (n) */
    double *loss_sum;             /* (n) */
    size_t *correct;              /* (n) */
    float scale;
    double bc1, bc2;              /* Adam bias corrections of this step */
    cldp_device_stats *stats;     /* (n) of the last step */
};

/* ---- sharding -------------------------------------------------------------------------- */

/* Even split: the first n % N devices take one sample more. */
static void split_even(size_t total, size_t ndev, size_t *off, size_t *len)
{
    size_t o = 0;
    for (size_t r = 0; r < ndev; r++) {
        len[r] = total / ndev + (r < total % ndev);
        off[r] = o;
        o += len[r];
    }
}

/* ---- worker jobs ----------------------------------------------------------------------- */

static cldp_status job_train(cldp_trainer *t, size_t r)
{
    cldp_replica *rep = t->reps[r];
    size_t len = t->shard_len[r], off = t->shard_off[r], in = t->model.inputs;
    if (len == 0) {
        memset(t->stage[r], 0, t->model.nparams * sizeof(float));
        return CLDP_OK;
    }
    TRY(cldp_replica_load(rep, t->x + off * in, t->labels + off, len));
    TRY(cldp_replica_forward(rep, len));
    TRY(cldp_replica_backward(rep, len, t->scale, 0));
    TRY(cldp_replica_read_grads(rep, t->stage[r]));
    return cldp_replica_read_loss(rep, len, &t->loss_sum[r], &t->correct[r]);
}

/* Reduces this worker's chunk over all staged gradients and updates those parameters. The
 * chunks are disjoint, and each element's tree order is fixed, so the split between workers
 * never changes the bits. */
static cldp_status job_update(cldp_trainer *t, size_t r)
{
    size_t b, e;
    cldp_chunk(t->model.nparams, t->n, r, &b, &e);
    cldp_tree_reduce(t->stage, t->n, b, e);
    const float *g = t->stage[0];
    float *p = t->master, *m1 = t->opt_m, *m2 = t->opt_v;
    const float lr = t->opts.learning_rate, wd = t->opts.weight_decay;
    if (t->opts.optimizer == CLDP_OPT_SGD) {
        const float mu = t->opts.momentum;
        for (size_t i = b; i < e; i++) {
            float gi = g[i] + wd * p[i];
            m1[i] = mu * m1[i] + gi;
            p[i] -= lr * m1[i];
        }
    } else {
        const float b1 = t->opts.beta1, b2 = t->opts.beta2, eps = t->opts.epsilon;
        const float c1 = (float)t->bc1, c2 = (float)t->bc2;
        for (size_t i = b; i < e; i++) {
            float gi = g[i] + wd * p[i];
            m1[i] = b1 * m1[i] + (1.0f - b1) * gi;
            m2[i] = b2 * m2[i] + (1.0f - b2) * gi * gi;
            p[i] -= lr * (m1[i] / c1) / (sqrtf(m2[i] / c2) + eps);
        }
    }
    return CLDP_OK;
}

static cldp_status job_infer(cldp_trainer *t, size_t r)
{
    cldp_replica *rep = t->reps[r];
    size_t len = t->shard_len[r], off = t->shard_off[r];
    if (len == 0) return CLDP_OK;
    TRY(cldp_replica_load(rep, t->x + off * t->model.inputs, t->job == JOB_EVAL ? t->labels + off : NULL, len));
    TRY(cldp_replica_forward(rep, len));
    if (t->job == JOB_PREDICT) return cldp_replica_probs(rep, len, t->probs + off * cldp_model_outputs(&t->model));
    TRY(cldp_replica_loss(rep, len));
    return cldp_replica_read_loss(rep, len, &t->loss_sum[r], &t->correct[r]);
}

static cldp_status run_job(void *ctx, size_t r)
{
    cldp_trainer *t = ctx;
    switch (t->job) {
    case JOB_TRAIN: return job_train(t, r);
    case JOB_UPDATE: return job_update(t, r);
    case JOB_BROADCAST: return cldp_replica_write_params(t->reps[r], t->master, 0, t->model.nparams);
    case JOB_EVAL:
    case JOB_PREDICT: return job_infer(t, r);
    }
    return CLDP_OK;
}

/* Every worker writes the master parameters to its own device. */
static cldp_status broadcast(cldp_trainer *t)
{
    t->job = JOB_BROADCAST;
    return cldp_pool_run(t->pool, run_job, t);
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
}

static cldp_status check_options(const cldp_trainer_options *o)
{
    REQUIRE(o->struct_size == sizeof *o, "trainer options: struct_size is %zu, expected %zu; initialise them with cldp_trainer_options_init", o->struct_size, sizeof *o);
    REQUIRE(o->batch > 0, "trainer options: batch must be at least 1");
    REQUIRE(o->batch <= (1u << 24), "trainer options: batch %zu is too large (at most %u)", o->batch, 1u << 24);
    REQUIRE(o->optimizer == CLDP_OPT_SGD || o->optimizer == CLDP_OPT_ADAM, "trainer options: unknown optimizer %d", (int)o->optimizer);
    REQUIRE(isfinite(o->learning_rate) && o->learning_rate > 0, "trainer options: learning rate must be a positive number, got %g", (double)o->learning_rate);
    REQUIRE(isfinite(o->momentum) && o->momentum >= 0 && o->momentum < 1, "trainer options: momentum must be in [0, 1), got %g", (double)o->momentum);
    REQUIRE(isfinite(o->weight_decay) && o->weight_decay >= 0, "trainer options: weight decay must be >= 0, got %g", (double)o->weight_decay);
    REQUIRE(o->beta1 >= 0 && o->beta1 < 1 && o->beta2 >= 0 && o->beta2 < 1, "trainer options: Adam betas must be in [0, 1)");
    REQUIRE(isfinite(o->epsilon) && o->epsilon > 0, "trainer options: epsilon must be > 0");
    return CLDP_OK;
}

void cldp_trainer_destroy(cldp_trainer *t)
{
    if (!t) return;
    cldp_pool_destroy(t->pool);
    for (size_t r = 0; r < t->n; r++) {
        if (t->reps) cldp_replica_destroy(t->reps[r]);
        if (t->stage) free(t->stage[r]);
    }
    free(t->reps);
    free(t->stage);
    free(t->devs);
    free(t->master);
    free(t->opt_m);
    free(t->opt_v);
    free(t->shard_off);
    free(t->shard_len);
    free(t->loss_sum);
    free(t->correct);
    free(t->stats);
    free(t);
}

cldp_status cldp_trainer_create(const cldp_model *model, const cldp_trainer_options *opts, cldp_trainer **out)
{
    REQUIRE(out, "cldp_trainer_create: out is NULL");
    *out = NULL;
    REQUIRE(model && opts, "cldp_trainer_create: model or options is NULL");
    REQUIRE(model->nlayers > 0, "cldp_trainer_create: the model has no layers; add them with cldp_model_add_dense");
    TRY(check_options(opts));
    size_t rows_x_width;
    REQUIRE(cldp_mul_size(opts->batch, cldp_model_max_width(model), &rows_x_width) == 0 && rows_x_width < (1u << 31),
            "cldp_trainer_create: batch %zu x layer width %zu exceeds 2^31 elements per buffer", opts->batch, cldp_model_max_width(model));

    size_t idx[CLDP_MAX_DEVICES], n = 0;
    TRY(cldp_device_select(opts->devices, idx, CLDP_MAX_DEVICES, &n));
    const cldp_dev *all;
    size_t nall;
    TRY(cldp_devices(&all, &nall));

    cldp_trainer *t = cldp_calloc(1, sizeof *t, "trainer");
    if (!t) return CLDP_ERR_HOST_MEMORY;
    t->model = *model;
    t->opts = *opts;
    t->opts.devices = NULL; /* the caller's string need not outlive the call */
    t->n = n;
    size_t np = model->nparams;
    cldp_status st = CLDP_ERR_HOST_MEMORY;
    t->devs = cldp_calloc(n, sizeof *t->devs, "device list");
    t->reps = cldp_calloc(n, sizeof *t->reps, "replicas");
    t->stage = cldp_calloc(n, sizeof *t->stage, "staging");
    t->master = cldp_calloc(np, sizeof(float), "master parameters");
    t->opt_m = cldp_calloc(np, sizeof(float), "optimizer state");
    t->opt_v = cldp_calloc(np, sizeof(float), "optimizer state");
    t->shard_off = cldp_calloc(n, sizeof(size_t), "shards");
    t->shard_len = cldp_calloc(n, sizeof(size_t), "shards");
    t->loss_sum = cldp_calloc(n, sizeof(double), "losses");
    t->correct = cldp_calloc(n, sizeof(size_t), "counts");
    t->stats = cldp_calloc(n, sizeof *t->stats, "statistics");
    if (!t->devs || !t->reps || !t->stage || !t->master || !t->opt_m || !t->opt_v || !t->shard_off ||
        !t->shard_len || !t->loss_sum || !t->correct || !t->stats)
        goto fail;
    for (size_t r = 0; r < n; r++) {
        t->devs[r] = &all[idx[r]];
        if (!(t->stage[r] = cldp_malloc(np * sizeof(float), "gradient staging"))) goto fail;
    }
    /* Each replica needs room for the largest shard: ceil(batch / n) rows. */
    size_t max_rows = (opts->batch + n - 1) / n;
    for (size_t r = 0; r < n; r++)
        if ((st = cldp_replica_create(t->devs[r], &t->model, max_rows, &t->reps[r])) != CLDP_OK) goto fail;
    if ((st = cldp_model_init_params(&t->model, opts->seed, t->master, np)) != CLDP_OK) goto fail;
    if ((st = cldp_pool_create(n, &t->pool)) != CLDP_OK) goto fail;
    if ((st = broadcast(t)) != CLDP_OK) goto fail;
    *out = t;
    return CLDP_OK;
fail:
    {
        /* keep the failure's message: destroying replicas must not overwrite it */
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", cldp_last_error());
        cldp_trainer_destroy(t);
        cldp_set_last_error(msg);
    }
    return st;
}

/* ---- steps ----------------------------------------------------------------------------- */

static cldp_status check_batch(const cldp_trainer *t, const float *x, const int32_t *labels, size_t n, size_t limit)
{
    REQUIRE(t, "trainer is NULL");
    REQUIRE(x, "input batch x is NULL");
    REQUIRE(n > 0, "batch size is 0: a step needs at least one sample");
    REQUIRE(n <= limit, "batch of %zu samples exceeds the trainer's batch option (%zu)", n, limit);
    if (labels) {
        size_t classes = cldp_model_outputs(&t->model);
        for (size_t i = 0; i < n; i++)
            REQUIRE(labels[i] >= 0 && (size_t)labels[i] < classes, "label %d of sample %zu is outside 0..%zu", (int)labels[i], i, classes - 1);
    }
    return CLDP_OK;
}

static cldp_status rebroadcast_if_dirty(cldp_trainer *t)
{
    if (!t->dirty) return CLDP_OK;
    TRY(broadcast(t));
    t->dirty = 0;
    return CLDP_OK;
}

cldp_status cldp_trainer_step(cldp_trainer *t, const float *x, const int32_t *labels, size_t n, cldp_step_stats *stats)
{
    REQUIRE(t, "cldp_trainer_step: trainer is NULL");
    REQUIRE(labels, "cldp_trainer_step: labels are NULL");
    TRY(check_batch(t, x, labels, n, t->opts.batch));
    TRY(rebroadcast_if_dirty(t));
    double t0 = cldp_now_ms();
    split_even(n, t->n, t->shard_off, t->shard_len);
    memset(t->loss_sum, 0, t->n * sizeof(double));
    memset(t->correct, 0, t->n * sizeof(size_t));
    t->x = x;
    t->labels = labels;
    t->scale = 1.0f / (float)n;
    t->job = JOB_TRAIN;
    TRY(cldp_pool_run(t->pool, run_job, t));
    double t1 = cldp_now_ms();
    for (size_t r = 0; r < t->n; r++) {
        t->stats[r].shard = t->shard_len[r];
        t->stats[r].compute_ms = cldp_pool_job_ms(t->pool, r);
        t->stats[r].idle_ms = (t1 - t0) - t->stats[r].compute_ms;
        if (t->stats[r].idle_ms < 0) t->stats[r].idle_ms = 0;
    }

    t->t++;
    t->bc1 = 1.0 - pow((double)t->opts.beta1, (double)t->t);
    t->bc2 = 1.0 - pow((double)t->opts.beta2, (double)t->t);
    t->job = JOB_UPDATE;
    TRY(cldp_pool_run(t->pool, run_job, t));
    for (size_t r = 0; r < t->n; r++) t->stats[r].reduce_ms = cldp_pool_job_ms(t->pool, r);
    cldp_status st = broadcast(t);
    if (st != CLDP_OK) {
        t->dirty = 1; /* some devices may hold the new parameters, others not */
        return st;
    }
    for (size_t r = 0; r < t->n; r++) t->stats[r].broadcast_ms = cldp_pool_job_ms(t->pool, r);
    if (stats) {
        double loss = 0;
        size_t correct = 0;
        for (size_t r = 0; r < t->n; r++) {
            loss += t->loss_sum[r];
            correct += t->correct[r];
        }
        stats->loss = loss / (double)n;
        stats->correct = correct;
        stats->samples = n;
        stats->step_ms = cldp_now_ms() - t0;
    }
    return CLDP_OK;
}

/* Runs an inference job over n samples in chunks of the trainer's batch. */
static cldp_status infer(cldp_trainer *t, job_kind kind, const float *x, const int32_t *labels, size_t n, float *probs,
                         double *loss, size_t *correct)
{
    TRY(rebroadcast_if_dirty(t));
    double ls = 0;
    size_t cs = 0;
    size_t outputs = cldp_model_outputs(&t->model);
    for (size_t done = 0; done < n;) {
        size_t chunk = n - done < t->opts.batch ? n - done : t->opts.batch;
        split_even(chunk, t->n, t->shard_off, t->shard_len);
        memset(t->loss_sum, 0, t->n * sizeof(double));
        memset(t->correct, 0, t->n * sizeof(size_t));
        t->job = kind;
        t->x = x + done * t->model.inputs;
        t->labels = labels ? labels + done : NULL;
        t->probs = probs ? probs + done * outputs : NULL;
        TRY(cldp_pool_run(t->pool, run_job, t));
        for (size_t r = 0; r < t->n; r++) {
            ls += t->loss_sum[r];
            cs += t->correct[r];
        }
        done += chunk;
    }
    if (loss) *loss = ls / (double)n;
    if (correct) *correct = cs;
    return CLDP_OK;
}

cldp_status cldp_trainer_evaluate(cldp_trainer *t, const float *x, const int32_t *labels, size_t n, double *loss, size_t *correct)
{
    REQUIRE(t && labels, "cldp_trainer_evaluate: trainer or labels is NULL");
    REQUIRE(loss || correct, "cldp_trainer_evaluate: both loss and correct are NULL");
    TRY(check_batch(t, x, labels, n, SIZE_MAX));
    return infer(t, JOB_EVAL, x, labels, n, NULL, loss, correct);
}

cldp_status cldp_trainer_predict(cldp_trainer *t, const float *x, size_t n, float *probs)
{
    REQUIRE(t && probs, "cldp_trainer_predict: trainer or probs is NULL");
    TRY(check_batch(t, x, NULL, n, SIZE_MAX));
    return infer(t, JOB_PREDICT, x, NULL, n, probs, NULL, NULL);
}

/* ---- parameters and facts -------------------------------------------------------------- */

cldp_status cldp_trainer_get_params(const cldp_trainer *t, float *params, size_t count)
{
    REQUIRE(t && params, "cldp_trainer_get_params: trainer or params is NULL");
    REQUIRE(count == t->model.nparams, "cldp_trainer_get_params: count is %zu but the model has %zu parameters", count, t->model.nparams);
    memcpy(params, t->master, count * sizeof(float));
    return CLDP_OK;
}

cldp_status cldp_trainer_set_params(cldp_trainer *t, const float *params, size_t count)
{
    REQUIRE(t && params, "cldp_trainer_set_params: trainer or params is NULL");
    REQUIRE(count == t->model.nparams, "cldp_trainer_set_params: count is %zu but the model has %zu parameters", count, t->model.nparams);
    for (size_t i = 0; i < count; i++)
        REQUIRE(isfinite(params[i]), "cldp_trainer_set_params: parameter %zu is not finite", i);
    memcpy(t->master, params, count * sizeof(float));
    memset(t->opt_m, 0, count * sizeof(float));
    memset(t->opt_v, 0, count * sizeof(float));
    t->t = 0;
    t->dirty = 1;
    return rebroadcast_if_dirty(t);
}

size_t cldp_trainer_device_count(const cldp_trainer *t) { return t ? t->n : 0; }

cldp_status cldp_trainer_device_info(const cldp_trainer *t, size_t rank, cldp_device_info *info)
{
    REQUIRE(t && info, "cldp_trainer_device_info: trainer or info is NULL");
    REQUIRE(rank < t->n, "cldp_trainer_device_info: rank %zu is not below the device count %zu", rank, t->n);
    *info = t->devs[rank]->info;
    return CLDP_OK;
}

cldp_status cldp_trainer_device_stats(const cldp_trainer *t, size_t rank, cldp_device_stats *stats)
{
    REQUIRE(t && stats, "cldp_trainer_device_stats: trainer or stats is NULL");
    REQUIRE(rank < t->n, "cldp_trainer_device_stats: rank %zu is not below the device count %zu", rank, t->n);
    *stats = t->stats[rank];
    return CLDP_OK;
}

cldp_status cldp_trainer_set_learning_rate(cldp_trainer *t, float lr)
{
    REQUIRE(t, "cldp_trainer_set_learning_rate: trainer is NULL");
    REQUIRE(isfinite(lr) && lr > 0, "cldp_trainer_set_learning_rate: learning rate must be a positive number, got %g", (double)lr);
    t->opts.learning_rate = lr;
    return CLDP_OK;
}
