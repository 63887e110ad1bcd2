/* layer_elementwise.c — the layers that keep their input's shape: relu, tanh and sigmoid (out =
 * act(in); backward dout *= act'(out), in place) and flatten (C×H×W to C·H·W, the same memory in
 * NCHW: no kernel at all, its output is its input's buffer). */
#include "layers.h"

#include <stdio.h>
#include <string.h>

cldp_status cldp_layer_same_shape(cldp_layer_desc *L, const char *what)
{
    (void)what;
    L->out_c = L->in_c, L->out_h = L->in_h, L->out_w = L->in_w;
    L->out = L->in;
    return CLDP_OK;
}

static void own_size(const cldp_layer_desc *L, size_t rows, cldp_layer_size *s)
{
    (void)L;
    s->own_output = 1;
    s->chunk = rows;
}

static int act_of(const cldp_layer_desc *L)
{
    return L->kind == CLDP_LAYER_RELU ? CLDP_ACT_RELU : L->kind == CLDP_LAYER_TANH ? CLDP_ACT_TANH : CLDP_ACT_SIGMOID;
}

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
    return cldp_replica_act_forward(r, ps->in, ps->out, ps->rows * L->in, act_of(L));
}

static cldp_status act_backward(cldp_replica *r, const cldp_layer_desc *L, const cldp_pass *ps)
{
    return cldp_replica_act_backward(r, ps->dout, ps->out, ps->rows * L->out, act_of(L));
}

static int act_describe(const cldp_layer_desc *L, char *buf, size_t cap)
{
    return snprintf(buf, cap, "%s", cldp_layer_ops_of(L->kind)->name);
}

static void act_ref_forward(const cldp_layer_desc *L, const float *p, const double *x, size_t rows, double *y)
{
    (void)p;
    for (size_t i = 0; i < rows * L->in; i++) y[i] = cldp_ref_act(act_of(L), x[i]);
}

static void act_ref_backward(const cldp_layer_desc *L, const float *p, const double *x, const double *y, const double *dy,
                             size_t rows, double *grad, double *dx)
{
    (void)p, (void)x, (void)grad;
    if (dx)
        for (size_t i = 0; i < rows * L->in; i++) dx[i] = dy[i] * cldp_ref_act_grad(act_of(L), y[i]);
}

const cldp_layer_ops cldp_layer_relu = {"relu", 1, 0, cldp_layer_same_shape, own_size, NULL, act_forward, act_backward, NULL,
                                        act_describe, act_ref_forward, act_ref_backward, NULL};
const cldp_layer_ops cldp_layer_tanh = {"tanh", 1, 0, cldp_layer_same_shape, own_size, NULL, act_forward, act_backward, NULL,
                                        act_describe, act_ref_forward, act_ref_backward, NULL};
const cldp_layer_ops cldp_layer_sigmoid = {"sigmoid", 1, 0, cldp_layer_same_shape, own_size, NULL, act_forward, act_backward, NULL,
                                           act_describe, act_ref_forward, act_ref_backward, NULL};

/* ---- flatten ---- */

static cldp_status flatten_shape(cldp_layer_desc *L, const char *what)
{
    (void)what;
    L->out_c = L->in, L->out_h = L->out_w = 1;
    L->out = L->in;
    return CLDP_OK;
}

static void flatten_size(const cldp_layer_desc *L, size_t rows, cldp_layer_size *s)
{
    (void)L;
    s->own_output = 0; /* the replica hands it its input's buffer */
    s->chunk = rows;
}

static cldp_status flatten_pass(cldp_replica *r, const cldp_layer_desc *L, const cldp_pass *ps)
{
    (void)r, (void)L, (void)ps;
    return CLDP_OK;
}

static void flatten_ref_forward(const cldp_layer_desc *L, const float *p, const double *x, size_t rows, double *y)
{
    (void)p;
    memcpy(y, x, rows * L->in * sizeof *y);
}

static void flatten_ref_backward(const cldp_layer_desc *L, const float *p, const double *x, const double *y, const double *dy,
                                 size_t rows, double *grad, double *dx)
{
    (void)p, (void)x, (void)y, (void)grad;
    if (dx) memcpy(dx, dy, rows * L->in * sizeof *dx);
}

const cldp_layer_ops cldp_layer_flatten = {"flatten", 1, 0, flatten_shape, flatten_size, NULL, flatten_pass, flatten_pass, NULL,
                                           act_describe, flatten_ref_forward, flatten_ref_backward, NULL};
