/* layer_dense.c — the dense layer: y = act(x·Wᵀ + b), W (out, in) as PyTorch's nn.Linear;
 * backward dW = dYᵀ·X, db = column sums of dY, dX = dY·W, through CLBlast and cl/layers.cl (a
 * layer of at most CLDP_NARROW outputs wholly on cl/layers.cl's narrow kernels). */
#include "layers.h"

#include <stdio.h>

static cldp_status dense_shape(cldp_layer_desc *L, const char *what)
{
    REQUIRE(L->in_h == 1 && L->in_w == 1, "%s: a dense layer takes a flat input but gets %zux%zux%zu; put flatten before it", what,
            L->in_c, L->in_h, L->in_w);
    REQUIRE(L->out_c > 0 && L->out_c <= CLDP_MAX_UNITS, "%s: units must be in 1..%u, got %zu", what, CLDP_MAX_UNITS, L->out_c);
    size_t w;
    REQUIRE(cldp_mul_size(L->in, L->out_c, &w) == 0 && w <= SIZE_MAX - L->out_c, "%s: %zu x %zu is too large", what, L->in, L->out_c);
    L->out_h = L->out_w = 1;
    L->out = L->out_c;
    L->nparams = w + L->out_c;
    return CLDP_OK;
}

static void dense_size(const cldp_layer_desc *L, size_t rows, cldp_layer_size *s)
{
    size_t in = L->in, out = L->out;
    s->own_output = 1;
    s->chunk = rows;
    s->ngemm = CLDP_GEMM_COUNT;
    s->gemm[CLDP_GEMM_FORWARD] = (cldp_gemm_shape){"forward X·Wᵀ", 0, 1, rows, out, in, 0, in, L->w_off, in, 0, out};
    s->gemm[CLDP_GEMM_DW] = (cldp_gemm_shape){"backward dW = dYᵀ·X", 1, 0, out, in, rows, 0, out, 0, in, L->w_off, in};
    s->gemm[CLDP_GEMM_DX] = (cldp_gemm_shape){"backward dX = dY·W", 0, 0, rows, in, out, 0, out, L->w_off, in, 0, in};
}

static void dense_init(const cldp_layer_desc *L, double gain, cldp_rng *rng, float *p)
{
    cldp_init_uniform(rng, p, L->in * L->out, p + L->in * L->out, L->out, L->in, gain);
}

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

static int dense_describe(const cldp_layer_desc *L, char *buf, size_t cap)
{
    static const char *acts[] = {"", ",relu", ",tanh", ",sigmoid"};
    return snprintf(buf, cap, "dense:%zu%s", L->out, acts[L->act & 3]);
}

static void dense_ref_forward(const cldp_layer_desc *L, const float *p, const double *x, size_t rows, double *y)
{
    const float *W = p, *b = p + L->in * L->out;
    for (size_t r = 0; r < rows; r++)
        for (size_t o = 0; o < L->out; o++) {
            double s = b[o];
            for (size_t i = 0; i < L->in; i++) s += x[r * L->in + i] * (double)W[o * L->in + i];
            y[r * L->out + o] = cldp_ref_act((int)L->act, s);
        }
}

static void dense_ref_backward(const cldp_layer_desc *L, const float *p, const double *x, const double *y, const double *dy,
                               size_t rows, double *grad, double *dx)
{
    size_t in = L->in, out = L->out;
    double *gW = grad, *gb = grad + in * out;
    for (size_t i = 0; i < in * out + out; i++) grad[i] = 0;
    if (dx)
        for (size_t i = 0; i < rows * in; i++) dx[i] = 0;
    for (size_t r = 0; r < rows; r++)
        for (size_t o = 0; o < out; o++) {
            double d = dy[r * out + o] * cldp_ref_act_grad((int)L->act, y[r * out + o]);
            gb[o] += d;
            for (size_t i = 0; i < in; i++) {
                gW[o * in + i] += d * x[r * in + i];
                if (dx) dx[r * in + i] += d * (double)p[o * in + i];
            }
        }
}

const cldp_layer_ops cldp_layer_dense = {"dense", 0, 0, dense_shape, dense_size, dense_init, dense_forward, dense_backward, dense_backward_input,
                                         dense_describe, dense_ref_forward, dense_ref_backward, NULL};
