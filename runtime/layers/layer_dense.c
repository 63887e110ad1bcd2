/* layer_dense.c — the dense layer's passes: forward y = act(x·Wᵀ + b), backward dW = dYᵀ·X,
 * db = column sums of dY, dX = dY·W, through the replica's GEMM and cl/layers.cl (a layer of at
 * most CLDP_NARROW outputs wholly on cl/layers.cl's narrow kernels). Its kind: model/kind_dense.c. */
#include "layers.h"

/* A layer this narrow runs on cldp's kernels (cl/layers.cl) instead of CLBlast's. */
static int narrow(const cldp_replica *r, const cldp_layer_desc *L) { return r->narrow && L->out <= CLDP_NARROW; }

/* One of the narrow kernels, which share their arguments: (src, mat, rows, in, out, dst, w_off,
 * flag), over n x rows work-items. */
static cldp_status narrow_kernel(cldp_replica *r, const char *name, const cldp_layer_desc *L, size_t rows, cl_mem src,
                                 cl_mem mat, cl_mem dst, cl_int flag, size_t n, size_t nrows)
{
    cl_uint urows = (cl_uint)rows, in = (cl_uint)L->in, out = (cl_uint)L->out, woff = (cl_uint)L->w_off;
    const cldp_arg args[] = {CLDP_ARG(src), CLDP_ARG(mat), CLDP_ARG(urows), CLDP_ARG(in),
                             CLDP_ARG(out), CLDP_ARG(dst), CLDP_ARG(woff), CLDP_ARG(flag)};
    return cldp_replica_run(r, name, args, sizeof args / sizeof *args, n, nrows);
}

/* bias_act or bias_grad (the same arguments): z, rows, cols, params or grads, b_off, flag. */
static cldp_status bias_kernel(cldp_replica *r, const char *name, const cldp_layer_desc *L, size_t rows, cl_mem z,
                               cl_mem vec, cl_int flag, size_t n, size_t nrows)
{
    cl_uint urows = (cl_uint)rows, cols = (cl_uint)L->out, boff = (cl_uint)L->b_off;
    const cldp_arg args[] = {CLDP_ARG(z), CLDP_ARG(urows), CLDP_ARG(cols), CLDP_ARG(vec), CLDP_ARG(boff), CLDP_ARG(flag)};
    return cldp_replica_run(r, name, args, sizeof args / sizeof *args, n, nrows);
}

static cldp_status dense_forward(cldp_replica *r, const cldp_layer_desc *L, const cldp_pass *ps)
{
    cl_int act = (cl_int)L->act;
    if (narrow(r, L)) /* the GEMM, bias and activation in one kernel, a work-item per row */
        return narrow_kernel(r, "dense_narrow_forward", L, ps->rows, ps->in, r->params, ps->out, act, ps->rows, 1);
    cldp_layer_size ls;
    cldp_layer_size_of(r->model, ps->l, ps->rows, &ls);
    TRY(cldp_replica_gemm(r, &ls.gemm[CLDP_GEMM_FORWARD], ps->in, r->params, 0.0f, ps->out));
    if (r->fast_kernels) return bias_kernel(r, "bias_act", L, ps->rows, ps->out, r->params, act, (L->out + 3) / 4, ps->rows);
    return bias_kernel(r, "bias_act_plain", L, ps->rows, ps->out, r->params, act, ps->rows * L->out, 1);
}

static cldp_status dense_backward(cldp_replica *r, const cldp_layer_desc *L, const cldp_pass *ps)
{
    if (L->act != CLDP_ACT_NONE) TRY(cldp_replica_act_backward(r, ps->dout, ps->out, ps->rows * L->out, (int)L->act));
    cl_int acc = ps->accumulate ? 1 : 0;
    if (narrow(r, L)) { /* a work-item per four inputs, every output */
        TRY(narrow_kernel(r, "dense_narrow_dw", L, ps->rows, ps->dout, ps->in, r->grads, acc, (L->in + 3) / 4, 1));
    } else {
        cldp_layer_size ls;
        cldp_layer_size_of(r->model, ps->l, ps->rows, &ls);
        TRY(cldp_replica_gemm(r, &ls.gemm[CLDP_GEMM_DW], ps->dout, ps->in, ps->accumulate ? 1.0f : 0.0f, r->grads));
    }
    if (r->fast_kernels) return bias_kernel(r, "bias_grad", L, ps->rows, ps->dout, r->grads, acc, (L->out + 3) / 4, 1);
    return bias_kernel(r, "bias_grad_plain", L, ps->rows, ps->dout, r->grads, acc, L->out, 1);
}

static cldp_status dense_backward_input(cldp_replica *r, const cldp_layer_desc *L, const cldp_pass *ps)
{
    if (narrow(r, L)) /* a work-item per four inputs of a row */
        return narrow_kernel(r, "dense_narrow_dx", L, ps->rows, ps->dout, r->params, ps->din, 0, (L->in + 3) / 4, ps->rows);
    cldp_layer_size ls;
    cldp_layer_size_of(r->model, ps->l, ps->rows, &ls);
    return cldp_replica_gemm(r, &ls.gemm[CLDP_GEMM_DX], ps->dout, r->params, 0.0f, ps->din);
}

const cldp_pass_ops cldp_pass_dense = {dense_forward, dense_backward, dense_backward_input};
