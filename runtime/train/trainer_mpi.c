/* trainer_mpi.c — the trainer over MPI ranks (cldp_trainer_create_mpi in cldp_mpi.h), built
 * with -DCLDP_WITH_MPI=ON: what every rank must agree on, then the ranks' transport
 * (reduce/mpi_combine.c) under a trainer over ranks (trainer_ranks.c). */
#include "cldp_mpi.h"
#include "trainer.h"

/* What every rank must agree on before training together: the model's shape, the options
 * that change the arithmetic, and the initial parameters' bits. */
static unsigned long agreement(const cldp_model *m, const cldp_trainer_options *o)
{
    unsigned long h = 5381;
    const unsigned char *p;
#define MIX(v) for (p = (const unsigned char *)&(v); p < (const unsigned char *)(&(v) + 1); p++) h = h * 33 + *p
    MIX(m->nparams);
    MIX(m->nlayers);
    for (size_t l = 0; l < m->nlayers; l++) {
        cldp_layer_size s;
        cldp_layer_size_of(m, l, 1, &s);
        MIX(s.params);
        MIX(s.out_per_row);
    }
    MIX(o->batch);
    MIX(o->optimizer);
    MIX(o->learning_rate);
    MIX(o->seed);
#undef MIX
    return h;
}

cldp_status cldp_trainer_create_mpi(const cldp_model *model, const cldp_trainer_options *opts, MPI_Comm comm,
                                    cldp_mpi_combine combine, cldp_trainer **out)
{
    REQUIRE(out, "cldp_trainer_create_mpi: out is NULL");
    *out = NULL;
    REQUIRE(model && opts, "cldp_trainer_create_mpi: model or options is NULL");
    REQUIRE(combine == CLDP_MPI_FIXED_ORDER || combine == CLDP_MPI_ALLREDUCE,
            "cldp_trainer_create_mpi: combine %d is neither CLDP_MPI_FIXED_ORDER nor CLDP_MPI_ALLREDUCE", (int)combine);
    size_t idx[CLDP_MAX_DEVICES], n = 0;
    TRY(cldp_device_select(opts->devices, idx, CLDP_MAX_DEVICES, &n));
    cldp_ranks *rk;
    TRY(cldp_ranks_create_mpi(comm, combine == CLDP_MPI_FIXED_ORDER, n, agreement(model, opts),
                              opts->timeout_ms > 0 ? opts->timeout_ms : 0, &rk));
    return cldp_trainer_create_ranks(model, opts, rk, out); /* owns rk from here, even on failure */
}
