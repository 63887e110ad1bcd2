/* trainer_params.c — what an application reads and sets on a trainer between steps: the master
 * parameters, the devices' facts and figures, the learning rate, and the split of the batch. */
#define _POSIX_C_SOURCE 200809L
#include "trainer.h"

#include <math.h>
#include <string.h>

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
    if (t->broken)
        return cldp_fail(CLDP_ERR_STATE, "cldp_trainer_set_params: this trainer lost a device that stopped answering; "
                                         "destroy it and create another");
    memcpy(t->master, params, count * sizeof(float));
    memset(t->opt_m, 0, count * sizeof(float));
    memset(t->opt_v, 0, count * sizeof(float));
    t->t = 0;
    t->dirty = 1;
    return cldp_trainer_rebroadcast_if_dirty(t);
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

cldp_status cldp_trainer_device_rows(const cldp_trainer *t, size_t rank, size_t *rows)
{
    REQUIRE(t && rows, "cldp_trainer_device_rows: trainer or rows is NULL");
    REQUIRE(rank < t->n, "cldp_trainer_device_rows: rank %zu is not below the device count %zu", rank, t->n);
    *rows = t->reps[rank]->max_rows;
    return CLDP_OK;
}

/* ---- the split ------------------------------------------------------------------------- */

cldp_status cldp_trainer_get_split(const cldp_trainer *t, double *weights, size_t *shards, size_t n)
{
    REQUIRE(t, "cldp_trainer_get_split: trainer is NULL");
    REQUIRE(n == t->n, "cldp_trainer_get_split: n is %zu but the trainer has %zu device(s)", n, t->n);
    double w[CLDP_MAX_DEVICES];
    cldp_balancer_weights(t->bal, t->origin, t->n, w);
    if (weights) memcpy(weights, w, n * sizeof *w);
    if (shards) cldp_balancer_split(t->bal, t->origin, n, t->opts.batch, shards);
    return CLDP_OK;
}

cldp_status cldp_trainer_set_split(cldp_trainer *t, const double *weights, size_t n)
{
    REQUIRE(t, "cldp_trainer_set_split: trainer is NULL");
    REQUIRE(n == t->n, "cldp_trainer_set_split: %zu weight(s) given but the trainer has %zu device(s); give one per device", n, t->n);
    TRY(cldp_split_check(weights, n, "cldp_trainer_set_split"));
    cldp_balancer_set(t->bal, t->origin, n, weights);
    return CLDP_OK;
}

cldp_status cldp_trainer_set_balance(cldp_trainer *t, int on)
{
    REQUIRE(t, "cldp_trainer_set_balance: trainer is NULL");
    REQUIRE(on == 0 || on == 1, "cldp_trainer_set_balance: on must be 0 or 1, got %d", on);
    t->bal->enabled = on;
    t->bal->pending = 0;
    return CLDP_OK;
}
