/* infer.c — evaluation and prediction on the trainer's replicas: the samples split over the
 * devices in chunks of the trainer's batch, forward only, under the same watchdog and failure
 * policy as training. */
#define _POSIX_C_SOURCE 200809L
#include "trainer.h"
#include "layers.h"
#include "testhooks.h"

#include <stdlib.h>
#include <string.h>

static cldp_status job_infer(cldp_run *run, phase *ph, size_t r)
{
    const cldp_trainer *t = ph->t;
    cldp_replica *rep = ph->reps[r];
    size_t len = ph->shard_len[r], off = ph->shard_off[r], outputs = cldp_model_outputs(&t->model);
    double loss = 0;
    size_t correct = 0;
    for (size_t done = 0; done < len;) {
        if (cldp_run_abandoned(run)) return CLDP_OK; /* given up on: stop early */
        size_t rows = len - done < rep->max_rows ? len - done : rep->max_rows, at = off + done;
        /* the caller's memory is touched only inside sections: after a timeout it may be gone */
        if (!cldp_run_enter(run)) return CLDP_OK;
        cldp_status st = cldp_trainer_load_rows(t, rep, ph, at, rows, ph->kind == PHASE_EVAL);
        cldp_run_leave(run);
        TRY(st);
        TRY(cldp_replica_forward(rep, rows));
        if (ph->kind == PHASE_PREDICT) {
            const float *p;
            TRY(cldp_replica_probs(rep, rows, &p));
            if (!cldp_run_enter(run)) return CLDP_OK;
            memcpy(ph->probs + at * outputs, p, rows * outputs * sizeof *p);
            cldp_run_leave(run);
        } else {
            TRY(cldp_replica_loss(rep, rows));
            TRY(cldp_replica_read_loss(rep, rows, &loss, &correct));
        }
        done += rows;
    }
    ph->loss_sum[r] = loss;
    ph->correct[r] = correct;
    return CLDP_OK;
}

static void shard_infer(cldp_trainer *t) { cldp_trainer_split(t, t->batch_n); }

static void prepare_infer(cldp_trainer *t, phase *ph)
{
    ph->x = t->x;
    ph->labels = t->labels;
    ph->targets = t->targets;
    ph->probs = t->probs;
    memcpy(ph->shard_off, t->shard_off, t->n * sizeof *t->shard_off);
    memcpy(ph->shard_len, t->shard_len, t->n * sizeof *t->shard_len);
}

/* Runs an inference phase over n samples in chunks of the trainer's batch. */
static cldp_status infer(cldp_trainer *t, phase_kind kind, const float *x, const int32_t *labels, const float *targets,
                         size_t n, float *probs, double *loss, size_t *correct)
{
    TRY(cldp_trainer_rebroadcast_if_dirty(t));
    if (CLDP_TEST_ARMED()) cldp_faults_arm(t, kind);
    double ls = 0;
    size_t cs = 0;
    size_t outputs = cldp_model_outputs(&t->model);
    cldp_status st = CLDP_OK;
    for (size_t done = 0; done < n && st == CLDP_OK;) {
        t->batch_n = n - done < t->opts.batch ? n - done : t->opts.batch;
        shard_infer(t);
        t->x = x + done * t->model.inputs;
        t->labels = labels ? labels + done : NULL;
        t->targets = targets ? targets + done * outputs : NULL;
        t->probs = probs ? probs + done * outputs : NULL;
        cldp_run *run;
        phase *ph;
        const phase_plan plan = {kind, job_infer, prepare_infer, shard_infer};
        st = cldp_phase_run(t, &plan, &run, &ph);
        if (st != CLDP_OK) break;
        for (size_t r = 0; r < ph->n; r++) {
            ls += ph->loss_sum[r];
            cs += ph->correct[r];
        }
        cldp_run_release(run);
        done += t->batch_n;
    }
    if (CLDP_TEST_ARMED() && !t->broken) cldp_faults_disarm(t);
    TRY(st);
    if (loss) *loss = ls / (double)n;
    if (correct) *correct = cs;
    return CLDP_OK;
}

cldp_status cldp_trainer_evaluate(cldp_trainer *t, const float *x, const int32_t *labels, size_t n, double *loss, size_t *correct)
{
    TRY(cldp_trainer_check_loss(t, 0, "cldp_trainer_evaluate", "cldp_trainer_evaluate_targets"));
    REQUIRE(labels, "cldp_trainer_evaluate: labels are NULL");
    REQUIRE(loss || correct, "cldp_trainer_evaluate: both loss and correct are NULL");
    TRY(cldp_trainer_check_inputs(t, x, labels, n, SIZE_MAX, "cldp_trainer_evaluate"));
    return infer(t, PHASE_EVAL, x, labels, NULL, n, NULL, loss, correct);
}

cldp_status cldp_trainer_evaluate_targets(cldp_trainer *t, const float *x, const float *targets, size_t n, double *loss)
{
    TRY(cldp_trainer_check_loss(t, 1, "cldp_trainer_evaluate_targets", "cldp_trainer_evaluate"));
    REQUIRE(loss, "cldp_trainer_evaluate_targets: loss is NULL");
    TRY(cldp_trainer_check_inputs(t, x, NULL, n, SIZE_MAX, "cldp_trainer_evaluate_targets"));
    TRY(cldp_trainer_check_targets(t, targets, n, "cldp_trainer_evaluate_targets"));
    return infer(t, PHASE_EVAL, x, NULL, targets, n, NULL, loss, NULL);
}

cldp_status cldp_trainer_predict(cldp_trainer *t, const float *x, size_t n, float *probs)
{
    REQUIRE(t && probs, "cldp_trainer_predict: trainer or probs is NULL");
    TRY(cldp_trainer_check_inputs(t, x, NULL, n, SIZE_MAX, "cldp_trainer_predict"));
    return infer(t, PHASE_PREDICT, x, NULL, NULL, n, probs, NULL, NULL);
}
