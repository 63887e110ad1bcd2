/* trainer_checkpoint.c — the trainer's save and load (cldp_trainer_save_checkpoint and
 * cldp_trainer_load_checkpoint in cldp.h) through the file format of io/checkpoint.h: the
 * trainer's state into a cldp_ckpt and back, committed only once the whole file is checked. */
#include "trainer.h"
#include "checkpoint.h"

#include <stdlib.h>
#include <string.h>

cldp_status cldp_trainer_save_checkpoint(const cldp_trainer *t, const char *path, const void *user, size_t user_len)
{
    REQUIRE(t && path, "cldp_trainer_save_checkpoint: trainer or path is NULL");
    REQUIRE(*path, "cldp_trainer_save_checkpoint: path is empty");
    REQUIRE(user || user_len == 0, "cldp_trainer_save_checkpoint: user is NULL but user_len is %zu", user_len);
    const cldp_trainer_options *o = &t->opts;
    cldp_ckpt c = {.model = &t->model, .params = t->master, .m = t->opt_m, .v = t->opt_v,
                   .optim = {(uint32_t)o->optimizer, o->learning_rate, o->momentum, o->weight_decay, o->beta1, o->beta2,
                             o->epsilon, t->t},
                   .has_seed = 1, .seed = o->seed, .ndev = t->n, .balance_steps = t->bal->steps,
                   .user = user, .user_len = user_len};
    /* The split as the balancer holds it, by the device's rank at creation (t->origin), so that
     * a resumed run shards its batches as the stopped one would have: with another split the
     * result differs in the last bits. */
    cldp_trainer_get_split(t, c.weight, NULL, t->n);
    for (size_t r = 0; r < t->n; r++) {
        c.ms_per_sample[r] = t->bal->ms_per_sample[t->origin[r]];
        c.samples[r] = t->bal->samples[t->origin[r]];
    }
    return cldp_ckpt_write(path, &c);
}

/* The file's optimizer state and split into the trainer (its parameters are already in). The
 * split is restored only into a trainer with as many devices: a split is per device. */
static void restore(cldp_trainer *t, const cldp_ckpt *c)
{
    const cldp_ckpt_optim *o = &c->optim;
    t->opts.optimizer = (cldp_optimizer)o->optimizer;
    t->opts.learning_rate = o->learning_rate;
    t->opts.momentum = o->momentum;
    t->opts.weight_decay = o->weight_decay;
    t->opts.beta1 = o->beta1;
    t->opts.beta2 = o->beta2;
    t->opts.epsilon = o->epsilon;
    t->t = o->steps;
    if (c->has_seed) t->opts.seed = c->seed; /* older files keep the trainer's own */
    memcpy(t->opt_m, c->m, t->model.nparams * sizeof(float));
    memcpy(t->opt_v, c->v, t->model.nparams * sizeof(float));
    if (c->ndev == t->n) {
        cldp_trainer_set_split(t, c->weight, t->n); /* checked by the reader: it cannot refuse */
        t->bal->steps = c->balance_steps;
        for (size_t r = 0; r < t->n; r++) {
            t->bal->ms_per_sample[t->origin[r]] = c->ms_per_sample[r];
            t->bal->samples[t->origin[r]] = c->samples[r];
        }
    }
}

cldp_status cldp_trainer_load_checkpoint(cldp_trainer *t, const char *path, void *user, size_t user_capacity, size_t *user_len)
{
    REQUIRE(t && path, "cldp_trainer_load_checkpoint: trainer or path is NULL");
    REQUIRE(user || user_capacity == 0, "cldp_trainer_load_checkpoint: user is NULL but user_capacity is %zu", user_capacity);
    if (t->broken)
        return cldp_fail(CLDP_ERR_STATE, "cannot load checkpoint '%s' into a trainer that lost a device which stopped answering; "
                                         "load it into a new trainer", path);
    cldp_ckpt c;
    TRY(cldp_ckpt_read(&t->model, path, &c));
    if (user && c.user_len > user_capacity) {
        cldp_ckpt_release(&c);
        return cldp_fail(CLDP_ERR_INVALID_ARGUMENT,
                         "checkpoint '%s' carries %zu bytes of application data but the buffer holds %zu; the trainer is unchanged",
                         path, c.user_len, user_capacity);
    }
    /* ---- everything checked: commit. set_params copies, marks the devices stale and rewrites
     * them (retried by the next step if that fails); it also zeroes the optimizer state, which
     * restore() sets just after. It cannot refuse: the count matches and every value was
     * checked finite. */
    cldp_status st = cldp_trainer_set_params(t, c.params, t->model.nparams);
    restore(t, &c);
    if (user && c.user_len) memcpy(user, c.user, c.user_len);
    if (user_len) *user_len = c.user_len;
    cldp_ckpt_release(&c);
    return st;
}
