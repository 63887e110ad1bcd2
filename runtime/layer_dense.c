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

static cldp_status dense_forward(cldp_replica *r, const cldp_layer_desc *L, const cldp_pass *ps)
{
    cl_kernel k;
    cl_uint urows = (cl_uint)ps->rows, cols = (cl_uint)L->out, boff = (cl_uint)L->b_off;
    cl_int act = (cl_int)L->act;
    if (narrow(r, L)) { /* the GEMM, bias and activation in one kernel */
        cl_uint in = (cl_uint)L->in, woff = (cl_uint)L->w_off;
        TRY(cldp_replica_kernel(r, "dense_narrow_forward", &k));
        ARG(k, 0, ps->in);
        ARG(k, 1, urows);
        ARG(k, 2, in);
        ARG(k, 3, cols);
        ARG(k, 4, r->params);
        ARG(k, 5, woff);
        ARG(k, 6, act);
        ARG(k, 7, ps->out);
        return cldp_replica_launch(r, k, "dense_narrow_forward", ps->rows);
    }
    cldp_layer_size ls;
    cldp_layer_size_of(r->model, ps->l, ps->rows, &ls);
    TRY(cldp_replica_gemm(r, &ls.gemm[CLDP_GEMM_FORWARD], ps->in, r->params, 0.0f, ps->out));
    const char *name = r->fast_kernels ? "bias_act" : "bias_act_plain";
    TRY(cldp_replica_kernel(r, name, &k));
    ARG(k, 0, ps->out);
    ARG(k, 1, urows);
    ARG(k, 2, cols);
    ARG(k, 3, r->params);
    ARG(k, 4, boff);
    ARG(k, 5, act);
    if (r->fast_kernels) return cldp_replica_launch_rows(r, k, name, (L->out + 3) / 4, ps->rows);
    return cldp_replica_launch(r, k, name, ps->rows * L->out);
}

static cldp_status dense_backward(cldp_replica *r, const cldp_layer_desc *L, const cldp_pass *ps)
{
    if (L->act != CLDP_ACT_NONE) TRY(cldp_replica_act_backward(r, ps->dout, ps->out, ps->rows * L->out, (int)L->act));
    cl_kernel k;
    cl_uint urows = (cl_uint)ps->rows, cols = (cl_uint)L->out, boff = (cl_uint)L->b_off;
    cl_int acc = ps->accumulate ? 1 : 0;
    if (narrow(r, L)) {
        cl_uint in = (cl_uint)L->in, woff = (cl_uint)L->w_off;
        TRY(cldp_replica_kernel(r, "dense_narrow_dw", &k));
        ARG(k, 0, ps->dout);
        ARG(k, 1, ps->in);
        ARG(k, 2, urows);
        ARG(k, 3, in);
        ARG(k, 4, cols);
        ARG(k, 5, r->grads);
        ARG(k, 6, woff);
        ARG(k, 7, acc);
        TRY(cldp_replica_launch(r, k, "dense_narrow_dw", (L->in + 3) / 4));
    } else {
        cldp_layer_size ls;
        cldp_layer_size_of(r->model, ps->l, ps->rows, &ls);
        TRY(cldp_replica_gemm(r, &ls.gemm[CLDP_GEMM_DW], ps->dout, ps->in, ps->accumulate ? 1.0f : 0.0f, r->grads));
    }
    const char *name = r->fast_kernels ? "bias_grad" : "bias_grad_plain";
    TRY(cldp_replica_kernel(r, name, &k));
    ARG(k, 0, ps->dout);
    ARG(k, 1, urows);
    ARG(k, 2, cols);
    ARG(k, 3, r->grads);
    ARG(k, 4, boff);
    ARG(k, 5, acc);
    return cldp_replica_launch(r, k, name, r->fast_kernels ? (L->out + 3) / 4 : L->out);
}

static cldp_status dense_backward_input(cldp_replica *r, const cldp_layer_desc *L, const cldp_pass *ps)
{
    if (narrow(r, L)) {
        cl_kernel k;
        cl_uint urows = (cl_uint)ps->rows, in = (cl_uint)L->in, cols = (cl_uint)L->out, woff = (cl_uint)L->w_off;
        TRY(cldp_replica_kernel(r, "dense_narrow_dx", &k));
        ARG(k, 0, ps->dout);
        ARG(k, 1, urows);
        ARG(k, 2, in);
        ARG(k, 3, cols);
        ARG(k, 4, r->params);
        ARG(k, 5, woff);
        ARG(k, 6, ps->din);
        return cldp_replica_launch_rows(r, k, "dense_narrow_dx", (L->in + 3) / 4, ps->rows);
    }
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
                                         dense_describe, dense_ref_forward, dense_ref_backward};
