/* trainer.h — the trainer's state, shared by the files that implement it (trainer.c: create,
 * step, evaluate; and the features built on it). Internal; the public API is include/cldp.h. */
#ifndef CLDP_TRAINER_H
#define CLDP_TRAINER_H

#include "balance.h"
#include "devices.h"
#include "model.h"
#include "replica.h"
#include "workers.h"

#include <stdatomic.h>

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
    float *next_master, *next_m, *next_v; /* (nparams) the step's results; swapped with the three
                                     above when the step commits, so a step that fails or is
                                     skipped leaves them as they were */
    uint64_t t;                   /* optimizer steps taken */
    int dirty;                    /* devices may not hold `master` (a broadcast failed, or a step
                                     that did not commit wrote some of its results) */

    /* the step or inference call in progress (the caller's side; workers get a copy in a run) */
    const float *x;
    const int32_t *labels;
    float *probs;
    size_t *shard_off, *shard_len; /* (n) */
    size_t batch_n;               /* samples in the step */
    /* The reduction works in pieces: fixed ranges of one layer's parameters (the model's layers
     * top first, as backward delivers them, each cut every 32 Ki floats). Any worker may claim a
     * piece: it sums that range over every device in the fixed tree and updates those
     * parameters, so who does a piece never changes its bits. A piece can be done once every
     * device has delivered its layer: during the train job by a worker whose own device is still
     * computing lower layers, else in the update job, shared by all workers (trainer.c). */
    size_t npieces;
    struct piece { size_t layer, begin, end; } *pieces; /* (npieces) [begin, end) within the layer */
    struct run *spare;            /* the last finished run, reused by the next (trainer.c) */
    int early;                    /* pieces may be done during the train job (CLDP_EARLY_REDUCE=off:
                                     all in the update job, the order this replaced) */
    cldp_device_stats *stats;     /* (n) of the last step */

    /* failures */
    size_t *origin;               /* (n) each device's rank at creation (faults name those) */
    int *inject_nan;              /* (n) test fault: put a NaN in its gradient this step */
    uint64_t skipped;             /* updates skipped for non-finite gradients */
    _Atomic unsigned long epoch;  /* bumped when a run is abandoned after a watchdog timeout:
                                   * its late workers then stop (atomic: they read it while the
                                   * caller bumps it) */
    _Atomic size_t inflight;      /* workers inside a section that writes shared state */
    int broken;                   /* a worker is stuck in a driver call: only destroy is safe */
    _Atomic size_t refs;          /* the caller's, and one per abandoned worker still out */
    struct { size_t rank; uint64_t step; cldp_fault_kind kind; double ms; } faults[8];
    size_t nfaults;

    /* sharding (balance.c); indexed by a device's rank at creation (origin), so a drop needs
     * no bookkeeping here */
    cldp_balancer *bal;           /* the split's weights and each device's measured speed */
    double *slowdown;             /* (n at creation) test-only compute-time factor, 1 = none */
};

#endif
