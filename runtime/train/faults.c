/* faults.c — test-only: the trainer's fault injection. A spec "RANK:STEP:KIND[:MS],..."
 * (testspec.h) names faults; each is armed in its phase so that it fires once, at its call site,
 * on the same path a real error takes. */
#include "trainer.h"

#include <stdlib.h>
#include <string.h>

enum { FK_REDUCE_STALL = 100 }; /* a trainer-level fault: the worker sleeps in the update phase */

static const char *const names[] = {"gemm",        "kernel",       "read",       "write",         "stall",
                                    "nan",         "stall_write",  "stall_reduce", "stall_eval",  "stall_predict"};
static const struct {
    int kind;          /* a cldp_fault_kind of the replica, or FK_REDUCE_STALL */
    phase_kind phase;  /* the phase it is armed for */
} kinds[] = {
    {CLDP_FAULT_GEMM, PHASE_TRAIN},         {CLDP_FAULT_KERNEL, PHASE_TRAIN},   {CLDP_FAULT_READ, PHASE_TRAIN},
    {CLDP_FAULT_WRITE, PHASE_UPDATE},       {CLDP_FAULT_STALL, PHASE_TRAIN},    {CLDP_FAULT_NAN, PHASE_TRAIN},
    {CLDP_FAULT_STALL_WRITE, PHASE_UPDATE}, {FK_REDUCE_STALL, PHASE_UPDATE},    {CLDP_FAULT_STALL, PHASE_EVAL},
    {CLDP_FAULT_STALL, PHASE_PREDICT},
};
_Static_assert(sizeof names / sizeof *names == sizeof kinds / sizeof *kinds, "a name for every fault kind");
#define NKINDS (sizeof kinds / sizeof *kinds)

cldp_status cldp_faults_parse(cldp_trainer *t, const char *spec)
{
    cldp_train_test *ts = &t->test;
    TRY(cldp_fault_spec_parse(spec, "fault spec", "STEP", names, NKINDS, t->n, ts->faults, CLDP_MAX_FAULTS, &ts->nfaults));
    int nan = 0;
    for (size_t f = 0; f < ts->nfaults; f++) nan |= kinds[ts->faults[f].kind].kind == CLDP_FAULT_NAN;
    if (nan && !ts->nan_grad) { /* each device's poisoned copy of the top layer's gradient */
        size_t top = t->model.layers[t->model.nlayers - 1].nparams;
        if (!(ts->nan_grad = cldp_calloc(t->n * (top ? top : 1), sizeof(float), "fault gradients")))
            return CLDP_ERR_HOST_MEMORY;
    }
    return CLDP_OK;
}

void cldp_faults_arm(cldp_trainer *t, phase_kind which)
{
    cldp_train_test *ts = &t->test;
    for (size_t f = 0; f < ts->nfaults; f++) {
        cldp_fault_item *ft = &ts->faults[f];
        if (ft->at != t->t || kinds[ft->kind].phase != which) continue;
        ft->at = UINT64_MAX; /* spent: a retried step does not meet it again */
        for (size_t r = 0; r < t->n; r++) {
            if (t->origin[r] != ft->rank) continue;
            int kind = kinds[ft->kind].kind;
            if (kind == CLDP_FAULT_NAN) ts->inject_nan[r] = 1;
            else if (kind == FK_REDUCE_STALL) ts->stall_reduce_ms[r] = ft->ms;
            else {
                t->reps[r]->test.fault = (cldp_fault_kind)kind;
                t->reps[r]->test.stall_ms = ft->ms;
            }
        }
    }
}

void cldp_faults_disarm(cldp_trainer *t)
{
    for (size_t r = 0; r < t->n; r++) t->reps[r]->test.fault = CLDP_FAULT_NONE;
    memset(t->test.inject_nan, 0, sizeof t->test.inject_nan);
    memset(t->test.stall_reduce_ms, 0, sizeof t->test.stall_reduce_ms);
}
