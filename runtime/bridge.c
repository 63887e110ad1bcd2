/* bridge.c — a server from a live trainer (cldp_server_create_from_trainer and
 * cldp_server_swap_from_trainer in cldp.h). It sits above the rooms because serve/ and train/
 * never know each other: it takes the trainer's model and parameters and hands them to the
 * server's own calls, as an application would. */
#include "server.h"
#include "trainer.h"

#include <stdlib.h>

cldp_status cldp_server_swap_from_trainer(cldp_server *s, const cldp_trainer *t, uint64_t *generation)
{
    REQUIRE(s && t, "cldp_server_swap_from_trainer: server or trainer is NULL");
    float *p = cldp_malloc(s->model.nparams * sizeof(float), "trainer parameters");
    if (!p) return CLDP_ERR_HOST_MEMORY;
    cldp_status st = cldp_model_param_count(&t->model) == s->model.nparams
                         ? cldp_trainer_get_params(t, p, s->model.nparams)
                         : cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "cldp_server_swap_from_trainer: the trainer's model has %zu "
                                     "parameters, the server's %zu", cldp_model_param_count(&t->model), s->model.nparams);
    if (st == CLDP_OK) st = cldp_server_swap_params(s, p, s->model.nparams, generation);
    free(p);
    return st;
}

cldp_status cldp_server_create_from_trainer(const cldp_trainer *t, const cldp_server_options *opts, cldp_server **out)
{
    REQUIRE(out, "cldp_server_create_from_trainer: out is NULL");
    *out = NULL;
    REQUIRE(t, "cldp_server_create_from_trainer: trainer is NULL");
    float *p = cldp_malloc(t->model.nparams * sizeof(float), "trainer parameters");
    if (!p) return CLDP_ERR_HOST_MEMORY;
    cldp_status st = cldp_trainer_get_params(t, p, t->model.nparams);
    if (st == CLDP_OK) st = cldp_server_create(&t->model, p, t->model.nparams, opts, out);
    free(p);
    return st;
}
