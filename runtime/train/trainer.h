/* trainer.h — the trainer's state, shared by the files that implement it: trainer.c (create, the
 * step, parameters), phase.c (a phase of work on every device under the failure policy),
 * infer.c (evaluation and prediction), trainer_inputs.c (the calls' checks) and faults.c
 * (test-only fault injection). Internal; the public API is include/cldp.h. */
#ifndef CLDP_TRAINER_H
#define CLDP_TRAINER_H

#include "balance.h"
#include "devices.h"
#include "model.h"
#include "ranks.h"
#include "reducer.h"
#include "replica.h"
#include "testspec.h"
#include "workers.h"

#include <stdatomic.h>

#define CLDP_MAX_DEVICES CLDP_MAX_RANKS
#define CLDP_MAX_FAULTS 8

/* Test-only state of a trainer (faults.c): the faults CLDP_FAULT or cldp_test_control armed, and
 * the slowdown of CLDP_TEST_SLOWDOWN. Only CLDP_TEST_ARMED() branches read it. */
typedef struct cldp_train_test {
    cldp_fault_item faults[CLDP_MAX_FAULTS];
    size_t nfaults;
    int inject_nan[CLDP_MAX_DEVICES];         /* armed for the next train phase */
    double stall_reduce_ms[CLDP_MAX_DEVICES]; /* armed for the next update phase */
    double slowdown[CLDP_MAX_DEVICES];        /* by rank at creation (origin); 1 = none */
    float *nan_grad;  /* (n x the top layer's parameters) the poisoned copies a NaN fault delivers */
} cldp_train_test;

/* The phases of the trainer's work. A worker only ever touches its own device's queue: some
 * drivers (PoCL's basic device among them) deadlock when two host threads drive one queue. */
typedef enum {
    PHASE_TRAIN,     /* forward and backward of the shard, gradients to the host, early pieces */
    PHASE_UPDATE,    /* the remaining pieces (sum, update), then the new parameters to the device */
    PHASE_BROADCAST, /* the master parameters to every device */
    PHASE_EVAL,
    PHASE_PREDICT,
    PHASE_COUNT
} phase_kind;

/* What one run of a phase reads and reports: made for each run (from a spare, so a step
 * allocates nothing), never written by the caller while the run's workers may hold it, and kept
 * alive by the run until its last worker has left (workers.h). It holds a reference to the
 * trainer, so nothing the late worker can reach through it is freed under it either. */
typedef struct phase {
    struct cldp_trainer *t;
    phase_kind kind;
    cldp_status (*job)(cldp_run *run, struct phase *ph, size_t rank); /* each worker's part */
    uint64_t trace_step;          /* the timeline's step: t + 1 for a step's phases, else 0 */
    size_t n;
    cldp_replica *reps[CLDP_MAX_DEVICES];
    const char *names[CLDP_MAX_DEVICES];
    const float *x;
    const int32_t *labels;
    const float *targets;         /* (n, outputs) an MSE model's float targets, in place of labels */
    float *probs;
    float scale;                  /* 1/batch */
    uint64_t step;                /* a train phase: the optimizer steps taken before it (dropout) */
    const float *params;          /* what a broadcast writes (the master parameters), or an update
                                     (the next ones): captured here, since after a timeout the
                                     trainer may move on to other vectors (phase.c) */
    size_t shard_off[CLDP_MAX_DEVICES], shard_len[CLDP_MAX_DEVICES];
    struct {                      /* test-only, copied from the trainer's (cldp_train_test) */
        double slowdown;          /* compute-time factor, 1 = none */
        float *nan_grad;          /* a train phase's NaN fault: where a copy of the top layer's
                                     gradient gets a NaN, delivered in place of the device's */
        double stall_reduce_ms;   /* an update phase: sleep before its pieces */
    } test[CLDP_MAX_DEVICES];
    /* an update phase: which reducer its pieces come from, whether it writes the new parameters
     * to the devices, whether it is done with the devices' gradients (over several ranks the
     * local sums and the update are two runs with the combine between them) */
    cldp_reducer *rd;
    int write_params, local_grads;
    /* called on the caller's thread while it waits for the workers (workers.h); NULL: none */
    void (*poll)(struct phase *ph);
    /* reported, one slot per worker */
    double loss_sum[CLDP_MAX_DEVICES], train_end[CLDP_MAX_DEVICES], early_ms[CLDP_MAX_DEVICES];
    double reduce_ms[CLDP_MAX_DEVICES], broadcast_ms[CLDP_MAX_DEVICES];
    size_t correct[CLDP_MAX_DEVICES];
    int nonfinite[CLDP_MAX_DEVICES]; /* the device's delivered gradient holds NaN/Inf */
} phase;

/* Codes the fused update's block callback records against a piece (reducer.h). */
enum { CODE_GRAD_NONFINITE = 1, CODE_UPDATE_NONFINITE = 2 };

struct cldp_trainer {
    cldp_model model;             /* our own copy */
    cldp_trainer_options opts;
    size_t n;                     /* devices */
    const cldp_dev **devs;        /* (n) */
    cldp_replica **reps;          /* (n) */
    cldp_pool *pool;
    float *master;                /* (nparams) master parameters */
    float *opt_m, *opt_v;         /* (nparams) momentum / Adam moments */
    float *next_master, *next_m, *next_v; /* (nparams) the step's results; swapped with the three
                                     above when the step commits, so a step that fails or is
                                     skipped leaves them as they were */
    uint64_t t;                   /* optimizer steps taken */
    int dirty;                    /* devices may not hold `master` (a broadcast failed, or a step
                                     that did not commit wrote some of its results) */
    cldp_reducer *reducer;        /* the layers' pieces, top layer first */
    /* several ranks (cldp_mpi.h); NULL in one process */
    cldp_ranks *ranks;
    float *lsum, *gsum;           /* (nparams) this rank's sum over its devices; the sum over ranks */
    size_t offered;               /* pieces of lsum handed to the combine in this step */
    double ranks_t0_us;           /* when this step's combine began (cldp_trace_clock_us; 0 untraced) */
    cldp_reducer *upd;            /* the update's pieces over gsum (one source) */
    int early;                    /* pieces may be done during the train phase */
    double bc1, bc2;              /* Adam bias corrections of the step in progress */
    cldp_device_stats *stats;     /* (n) of the last step */
    phase *spare;                 /* a phase context kept for the next run */

    /* the call in progress (the caller's side; workers get a copy in their phase) */
    const float *x;
    const int32_t *labels;
    const float *targets;         /* an MSE model's, in place of labels */
    float *probs;
    size_t *shard_off, *shard_len; /* (n) */
    size_t batch_n;

    /* failures */
    size_t *origin;               /* (n) each device's rank at creation (faults and drops name those) */
    uint64_t skipped;             /* updates skipped for non-finite values */
    int broken;                   /* a worker is stuck in a driver call: only destroy is safe */
    _Atomic size_t refs;          /* the caller's, and one per phase a run still holds */
    cldp_replica **graveyard;     /* (ngrave) replicas of dropped devices whose worker was stuck:
                                     freed with the trainer, when no worker can use them */
    size_t ngrave;
    float **retired;              /* (nretired, capacity 6n) parameter and moment vectors a stuck
                                     worker's device may still read (its writes were queued from
                                     them): replaced by copies, freed with the trainer */
    size_t nretired;
    cldp_drop drops[CLDP_MAX_DROPS]; /* devices dropped in the step (or call) in progress */
    size_t ndrops;
    cldp_train_test test;         /* test-only state (faults.c) */

    /* sharding (balance.c); indexed by a device's rank at creation (origin) */
    cldp_balancer *bal;
};

/* ---- phase.c ---- */
/* cldp_phase_once's answer when the failed devices were dropped and the work should be redone. */
#define CLDP_PHASE_RETRY ((cldp_status)-1)
/* A phase as its caller hands it over: its kind (for the policy and the timeline), the job each
 * worker runs on its device, `prepare`, which fills the phase's inputs for each attempt, and
 * `redo` (or NULL), which re-splits the work after a drop. */
typedef struct phase_plan {
    phase_kind kind;
    cldp_status (*job)(cldp_run *run, phase *ph, size_t rank);
    void (*prepare)(struct cldp_trainer *t, phase *ph);
    void (*redo)(struct cldp_trainer *t);
} phase_plan;
/* One attempt of a phase: on failure applies the policy (CLDP_PHASE_RETRY after a drop). */
cldp_status cldp_phase_once(struct cldp_trainer *t, const phase_plan *plan, cldp_run **out, phase **ph);
/* Runs a phase on every device under the failure policy: under CLDP_ON_FAILURE_DROP the failed
 * devices are removed (and recorded in t->drops), plan->redo re-splits the work, and the phase
 * runs again on the survivors. On success *out is the finished run (hand it back with
 * cldp_run_release) and *ph its phase. */
cldp_status cldp_phase_run(struct cldp_trainer *t, const phase_plan *plan, cldp_run **out, phase **ph);
/* The update phase's job (trainer.c): the rest of the reduction, then the new parameters to the
 * device; over ranks, the global update after the combine (trainer_ranks.c) runs it too. */
cldp_status cldp_trainer_job_update(cldp_run *run, phase *ph, size_t rank);
/* Checks a call's inputs: x non-NULL and finite (else CLDP_ERR_NONFINITE naming the row),
 * 1 <= n <= limit, labels (if not NULL) within the classes. `who` prefixes messages. */
cldp_status cldp_trainer_check_inputs(const struct cldp_trainer *t, const float *x, const int32_t *labels, size_t n,
                                      size_t limit, const char *who);
/* Checks that the trainer's model takes what a call gives: float targets (mse 1: its loss is
 * CLDP_LOSS_MSE) or int32 labels (mse 0: cross-entropy); else CLDP_ERR_INVALID_ARGUMENT naming
 * the call to use instead, `other_call`. */
cldp_status cldp_trainer_check_loss(const struct cldp_trainer *t, int mse, const char *who, const char *other_call);
/* Targets (n x outputs) non-NULL and finite (else CLDP_ERR_NONFINITE naming the row). */
cldp_status cldp_trainer_check_targets(const struct cldp_trainer *t, const float *targets, size_t n, const char *who);
/* Loads a shard's rows (and labels or targets, where given) at `at` of the call's batch. */
cldp_status cldp_trainer_load_rows(const struct cldp_trainer *t, cldp_replica *rep, const phase *ph, size_t at, size_t rows,
                                   int with_y);
/* Every worker writes the master parameters to its device. */
cldp_status cldp_trainer_broadcast(struct cldp_trainer *t);
cldp_status cldp_trainer_rebroadcast_if_dirty(struct cldp_trainer *t);
/* Drops a reference; the last one frees the trainer, on whichever thread that is. */
void cldp_trainer_release(struct cldp_trainer *t);

/* Creates a trainer; over several ranks when `ranks` is not NULL (it becomes the trainer's, even
 * on failure). */
cldp_status cldp_trainer_create_ranks(const cldp_model *model, const cldp_trainer_options *opts, cldp_ranks *ranks,
                                      cldp_trainer **out);

/* Shards of `total` samples for the devices present (balance.c's split). */
void cldp_trainer_split(struct cldp_trainer *t, size_t total);
/* optim.c: the fused update's block callback (cldp_block_fn): the summed gradient of parameters
 * [at, at + len) updates them and their moments into the next_* vectors. */
int cldp_trainer_update_block(void *ctx, size_t at, const float *g, size_t len);

/* ---- trainer_ranks.c: the trainer over several ranks ---- */
/* This rank's devices' shards of the global batch of `total` rows. */
void cldp_trainer_split_ranks(struct cldp_trainer *t, size_t total);
/* The local tree's block callback over several ranks: keeps this rank's sum for the combine. */
int cldp_trainer_store_local(void *ctx, size_t at, const float *g, size_t len);
/* What the trainer cannot do over ranks, refused by name; `n` devices selected here. */
cldp_status cldp_trainer_check_ranks(cldp_ranks *rk, const cldp_trainer_options *o, size_t n);
/* Before the local phase: starts the step's combine. */
cldp_status cldp_trainer_start_ranks(struct cldp_trainer *t);
/* While the local phase runs (its poll): the pieces the local tree has finished go to the
 * combine, and the combine's messages progress. */
void cldp_trainer_poll_ranks(phase *ph);
/* After the local phase (*run, *ph): the sums combined over the ranks, then the update phase
 * from them; *run and *ph become the update's. Loss and correct are summed over the ranks. */
cldp_status cldp_trainer_combine_ranks(struct cldp_trainer *t, cldp_run **run, phase **ph, double *loss,
                                       size_t *correct);

/* ---- faults.c (test only) ---- */
/* Parses a fault spec (testspec.h: "RANK:STEP:KIND[:MS],...") into the trainer's test state. */
cldp_status cldp_faults_parse(struct cldp_trainer *t, const char *spec);
/* Arms the faults of `kind`'s phase due at this step on the devices they name; each fires once. */
void cldp_faults_arm(struct cldp_trainer *t, phase_kind which);
void cldp_faults_disarm(struct cldp_trainer *t);

#endif
