/* layer_elementwise.c — the passes of the layers that keep their input's shape: relu, tanh and
 * sigmoid (out = act(in); backward dout *= act'(out), in place) and flatten (no kernel at all:
 * its output is its input's buffer). Their kinds: model/kind_elementwise.c. */
#include "layers.h"

/* act_forward (x -> y) or act_backward (d -> d·act'(y)): the same arguments, n elements. */
static cldp_status act_kernel(cldp_replica *r, const char *name, cl_mem a, cl_mem b, size_t n, int act)
{
    cl_kernel k;
    TRY(cldp_replica_kernel(r, name, &k));
    cl_uint un = (cl_uint)n;
    cl_int code = act;
    ARG(k, 0, a);
    ARG(k, 1, b);
    ARG(k, 2, un);
    ARG(k, 3, code);
    return cldp_replica_launch(r, k, name, n);
}

cldp_status cldp_replica_act_forward(cldp_replica *r, cl_mem in, cl_mem out, size_t n, int act)
{
    return act_kernel(r, "act_forward", in, out, n, act);
}

cldp_status cldp_replica_act_backward(cldp_replica *r, cl_mem dout, cl_mem out, size_t n, int act)
{
    return act_kernel(r, "act_backward", dout, out, n, act);
}

static cldp_status act_forward(cldp_replica *r, const cldp_layer_desc *L, const cldp_pass *ps)
{
    return cldp_replica_act_forward(r, ps->in, ps->out, ps->rows * L->in, cldp_kind_act(L));
}

static cldp_status act_backward(cldp_replica *r, const cldp_layer_desc *L, const cldp_pass *ps)
{
    return cldp_replica_act_backward(r, ps->dout, ps->out, ps->rows * L->out, cldp_kind_act(L));
}

static cldp_status flatten_pass(cldp_replica *r, const cldp_layer_desc *L, const cldp_pass *ps)
{
    (void)r, (void)L, (void)ps;
    return CLDP_OK;
}

const cldp_pass_ops cldp_pass_act = {act_forward, act_backward, NULL}; /* relu, tanh and sigmoid */
const cldp_pass_ops cldp_pass_flatten = {flatten_pass, flatten_pass, NULL};
