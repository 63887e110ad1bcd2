/* cldp-train-loss.h — cldp-train's --loss: softmax cross-entropy on the labels, or mean squared
 * error against one-hot float targets made from them (the step and the evaluation through the
 * target calls; the test accuracy from the arg-max of the raw outputs). Public API only. */
#ifndef CLDP_TRAIN_LOSS_H
#define CLDP_TRAIN_LOSS_H

#include "cldp.h"

#include <stdlib.h>
#include <string.h>

/* t (n x classes) = the one-hot rows of labels y. */
static void one_hot(const int32_t *y, size_t n, size_t classes, float *t)
{
    memset(t, 0, n * classes * sizeof *t);
    for (size_t i = 0; i < n; i++) t[i * classes + (size_t)y[i]] = 1.0f;
}

/* One step on labels yb, as the loss wants them; tb holds n x classes floats of scratch. */
static cldp_status loss_step(cldp_trainer *tr, cldp_loss loss, const float *xb, const int32_t *yb, float *tb, size_t nb,
                             size_t classes, cldp_step_stats *ss)
{
    if (loss != CLDP_LOSS_MSE) return cldp_trainer_step(tr, xb, yb, nb, ss);
    one_hot(yb, nb, classes, tb);
    return cldp_trainer_step_targets(tr, xb, tb, nb, ss);
}

/* The mean loss and the number correct (arg-max output == label) over n samples. */
static cldp_status loss_evaluate(cldp_trainer *tr, cldp_loss loss, const float *x, const int32_t *y, size_t n, size_t classes,
                                 double *mean, size_t *correct)
{
    if (loss != CLDP_LOSS_MSE) return cldp_trainer_evaluate(tr, x, y, n, mean, correct);
    float *t = malloc(n * classes * sizeof *t), *out = malloc(n * classes * sizeof *out);
    cldp_status st = t && out ? CLDP_OK : CLDP_ERR_HOST_MEMORY;
    if (st == CLDP_OK) {
        one_hot(y, n, classes, t);
        st = cldp_trainer_evaluate_targets(tr, x, t, n, mean);
    }
    if (st == CLDP_OK) st = cldp_trainer_predict(tr, x, n, out);
    *correct = 0;
    for (size_t i = 0; st == CLDP_OK && i < n; i++) {
        size_t arg = 0;
        for (size_t c = 1; c < classes; c++)
            if (out[i * classes + c] > out[i * classes + arg]) arg = c;
        *correct += (int32_t)arg == y[i];
    }
    free(t);
    free(out);
    return st;
}

#endif
