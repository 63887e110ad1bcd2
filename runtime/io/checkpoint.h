/* checkpoint.h — the checkpoint file format: a trainer's state (model description, master
 * parameters, optimizer state, the device split, the seed, an application blob) as a versioned,
 * CRC-32-checked file of tagged sections (layout in checkpoint.c), written atomically and read
 * back only once every byte is checked. OpenCL-free and trainer-free: the trainer's save and load
 * (train/trainer_checkpoint.c) fill and take a cldp_ckpt; the server reads the parameters alone.
 * Internal. */
#ifndef CLDP_CHECKPOINT_H
#define CLDP_CHECKPOINT_H

#include "model.h"

/* The optimizer section: the settings and the steps taken. */
typedef struct cldp_ckpt_optim {
    uint32_t optimizer; /* a cldp_optimizer */
    float learning_rate, momentum, weight_decay, beta1, beta2, epsilon;
    uint64_t steps;
} cldp_ckpt_optim;

/* What one checkpoint holds. Writing: every pointer is the caller's (params, m and v are
 * model->nparams floats). Reading: they point into memory the reader owns (cldp_ckpt_release). */
typedef struct cldp_ckpt {
    const cldp_model *model;
    const float *params, *m, *v;  /* master parameters and the optimizer's two moments */
    cldp_ckpt_optim optim;
    int has_seed;                 /* reading: the file carries the seed (older files do not) */
    uint64_t seed;                /* the trainer's seed, which keys the dropout masks */
    /* The device split as the balancer holds it, by device rank at creation; ndev 0: none */
    size_t ndev;
    uint32_t balance_steps;
    double weight[CLDP_MAX_RANKS], ms_per_sample[CLDP_MAX_RANKS];
    uint32_t samples[CLDP_MAX_RANKS];
    const void *user;             /* the application's bytes (user_len of them), or NULL */
    size_t user_len;
    void *owned;                  /* reading: the memory the pointers above point into */
} cldp_ckpt;

/* Writes *c to `path` atomically (a temporary file, fsync, rename, fsync of the directory): the
 * previous file, if any, stays whole until the new one is. Refuses a path that exists and is not
 * a regular file, and non-finite parameters (a run could not be resumed from them). */
cldp_status cldp_ckpt_write(const char *path, const cldp_ckpt *c);

/* Reads and checks the whole file against model m (CLDP_ERR_IO: cannot read it;
 * CLDP_ERR_FORMAT naming what is wrong: not a checkpoint, damaged, another model, a newer
 * version). On success *c holds its contents (c->model is m) until cldp_ckpt_release. */
cldp_status cldp_ckpt_read(const cldp_model *m, const char *path, cldp_ckpt *c);
void cldp_ckpt_release(cldp_ckpt *c);

/* The parameters (m->nparams floats) of a checkpoint of model m, validated as cldp_ckpt_read
 * validates it; nothing is written on failure but `params`. */
cldp_status cldp_checkpoint_read_params(const cldp_model *m, const char *path, float *params);

#endif
