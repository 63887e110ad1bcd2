/* trainer_inputs.c — what the trainer's calls check before anything runs (the batch's size,
 * finite inputs and targets, labels within the classes, the call that fits the model's loss),
 * and how a worker loads its rows with their labels or targets. */
#include "trainer.h"
#include "optim.h"

#include <math.h>

/* n rows of `width` values all finite, else CLDP_ERR_NONFINITE naming the first bad row and
 * column ("input row 3 holds NaN at feature 7"). */
static cldp_status check_finite(const float *v, size_t n, size_t width, const char *who, const char *what, const char *column)
{
    for (size_t i = 0; i < n; i++) {
        const float *row = v + i * width;
        if (cldp_all_finite(row, width)) continue;
        size_t k = 0;
        while (k < width && isfinite(row[k])) k++;
        return cldp_fail(CLDP_ERR_NONFINITE, "%s: %s row %zu holds %s at %s %zu; %ss must be finite (nothing was computed)",
                         who, what, i, isnan(row[k]) ? "NaN" : "Inf", column, k, what);
    }
    return CLDP_OK;
}

cldp_status cldp_trainer_check_inputs(const cldp_trainer *t, const float *x, const int32_t *labels, size_t n,
                                      size_t limit, const char *who)
{
    REQUIRE(t, "%s: trainer is NULL", who);
    REQUIRE(x, "%s: input batch x is NULL", who);
    REQUIRE(n > 0, "%s: batch size is 0: a call needs at least one sample", who);
    REQUIRE(n <= limit, "%s: batch of %zu samples exceeds the trainer's batch option (%zu)", who, n, limit);
    TRY(check_finite(x, n, t->model.inputs, who, "input", "feature"));
    if (labels) {
        size_t classes = cldp_model_outputs(&t->model);
        for (size_t i = 0; i < n; i++)
            REQUIRE(labels[i] >= 0 && (size_t)labels[i] < classes, "%s: label %d of sample %zu is outside 0..%zu",
                    who, (int)labels[i], i, classes - 1);
    }
    return CLDP_OK;
}

cldp_status cldp_trainer_check_loss(const cldp_trainer *t, int mse, const char *who, const char *other_call)
{
    REQUIRE(t, "%s: trainer is NULL", who);
    if (mse) REQUIRE(t->model.loss == CLDP_LOSS_MSE, "%s: this model's loss is softmax cross-entropy, which takes int32 "
                     "labels: call %s (or build the model with CLDP_LOSS_MSE)", who, other_call);
    else REQUIRE(t->model.loss != CLDP_LOSS_MSE, "%s: this model's loss is mean squared error, which takes float targets: "
                 "call %s", who, other_call);
    return CLDP_OK;
}

cldp_status cldp_trainer_check_targets(const cldp_trainer *t, const float *targets, size_t n, const char *who)
{
    REQUIRE(targets, "%s: targets are NULL", who);
    return check_finite(targets, n, cldp_model_outputs(&t->model), who, "target", "output");
}

cldp_status cldp_trainer_load_rows(const cldp_trainer *t, cldp_replica *rep, const phase *ph, size_t at, size_t rows,
                                   int with_y)
{
    const float *x = ph->x + at * t->model.inputs;
    if (with_y && ph->targets) return cldp_replica_load_targets(rep, x, ph->targets + at * cldp_model_outputs(&t->model), rows);
    return cldp_replica_load(rep, x, with_y ? ph->labels + at : NULL, rows);
}
