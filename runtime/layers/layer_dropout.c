/* layer_dropout.c — dropout's passes: the mask of each training pass from the counter-based hash
 * of model/kinds.h (cl/dropout.cl); the identity in an inference pass. */
#include "layers.h"


/* Runs dropout_forward (a = in, b = out) or dropout_backward (a = dL/dy in place, b NULL) over
 * the pass's rows with the mask of layer l in this pass: key, threshold and scale, or without a
 * training context the identity (threshold 0, scale 1). */
static cldp_status launch(cldp_replica *r, const cldp_layer_desc *L, const cldp_pass *ps, const char *name, cl_mem a, cl_mem b)
{
    const cldp_train_ctx *tc = ps->train;
    cl_kernel k;
    TRY(cldp_replica_kernel(r, name, &k));
    cl_ulong key = tc ? cldp_dropout_key(tc, ps->l) : 0, row0 = tc ? tc->row0 : 0;
    cl_uint n = (cl_uint)(ps->rows * L->in), per_row = (cl_uint)L->in, threshold = tc ? cldp_dropout_threshold(L->drop) : 0;
    float scale = tc ? (float)(1.0 / (1.0 - (double)L->drop)) : 1.0f;
    cl_uint i = 0;
    ARG(k, i++, a);
    if (b) ARG(k, i++, b);
    ARG(k, i++, n);
    ARG(k, i++, per_row);
    ARG(k, i++, key);
    ARG(k, i++, row0);
    ARG(k, i++, threshold);
    ARG(k, i++, scale);
    return cldp_replica_launch(r, k, name, n);
}

static cldp_status dropout_forward(cldp_replica *r, const cldp_layer_desc *L, const cldp_pass *ps)
{
    return launch(r, L, ps, "dropout_forward", ps->in, ps->out);
}

static cldp_status dropout_backward(cldp_replica *r, const cldp_layer_desc *L, const cldp_pass *ps)
{
    return launch(r, L, ps, "dropout_backward", ps->dout, NULL);
}

const cldp_pass_ops cldp_pass_dropout = {dropout_forward, dropout_backward, NULL};
