/* layer_pool.c — max pooling's passes: forward keeps each output's arg-max; backward routes the
 * gradient there (the tie rule and the window cases: model/kind_pool.c). */
#include "layers.h"

static cldp_status pool_forward(cldp_replica *r, const cldp_layer_desc *L, const cldp_pass *ps)
{
    cl_kernel k;
    TRY(cldp_replica_kernel(r, "maxpool_forward", &k));
    cl_uint v[7] = {(cl_uint)(ps->rows * L->in_c), (cl_uint)L->in_h, (cl_uint)L->in_w, (cl_uint)L->k, (cl_uint)L->stride,
                    (cl_uint)L->out_h, (cl_uint)L->out_w};
    ARG(k, 0, ps->in);
    for (cl_uint i = 0; i < 7; i++) ARG(k, i + 1, v[i]);
    ARG(k, 8, ps->out);
    ARG(k, 9, r->aux[ps->l]);
    return cldp_replica_launch(r, k, "maxpool_forward", ps->rows * L->out);
}

static cldp_status pool_backward(cldp_replica *r, const cldp_layer_desc *L, const cldp_pass *ps)
{
    if (!ps->din) return CLDP_OK;
    cl_kernel k;
    if (L->stride >= L->k) { /* disjoint windows: a zeroed dx and one write per output */
        const float zero = 0.0f;
        CL_CHECK(r->name, clEnqueueFillBuffer(r->queue, ps->din, &zero, sizeof zero, 0, ps->rows * L->in * sizeof(float), 0, NULL, NULL));
        TRY(cldp_replica_kernel(r, "maxpool_backward_disjoint", &k));
        cl_uint u[5] = {(cl_uint)(ps->rows * L->in_c), (cl_uint)L->in_h, (cl_uint)L->in_w, (cl_uint)L->out_h, (cl_uint)L->out_w};
        ARG(k, 0, ps->dout);
        ARG(k, 1, r->aux[ps->l]);
        for (cl_uint i = 0; i < 5; i++) ARG(k, i + 2, u[i]);
        ARG(k, 7, ps->din);
        return cldp_replica_launch(r, k, "maxpool_backward_disjoint", ps->rows * L->out);
    }
    TRY(cldp_replica_kernel(r, "maxpool_backward", &k));
    cl_uint v[7] = {(cl_uint)(ps->rows * L->in_c), (cl_uint)L->in_h, (cl_uint)L->in_w, (cl_uint)L->k, (cl_uint)L->stride,
                    (cl_uint)L->out_h, (cl_uint)L->out_w};
    ARG(k, 0, ps->dout);
    ARG(k, 1, r->aux[ps->l]);
    for (cl_uint i = 0; i < 7; i++) ARG(k, i + 2, v[i]);
    ARG(k, 9, ps->din);
    return cldp_replica_launch(r, k, "maxpool_backward", ps->rows * L->in);
}

const cldp_pass_ops cldp_pass_maxpool2d = {pool_forward, pool_backward, NULL};
