/* kind_elementwise.c — the kinds of the layers that keep their input's shape: relu, tanh and sigmoid (out =
 * act(in); backward dout *= act'(out), in place) and flatten (C×H×W to C·H·W, the same memory in
 * NCHW: no kernel at all, its output is its input's buffer).
 * Their passes: layers/layer_elementwise.c. */
#include "kinds.h"

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

static int act_describe(const cldp_layer_desc *L, char *buf, size_t cap)
{
    return snprintf(buf, cap, "%s", cldp_kind_of(L->kind)->name);
}

static void act_ref_forward(const cldp_layer_desc *L, const float *p, const double *x, size_t rows, double *y)
{
    (void)p;
    for (size_t i = 0; i < rows * L->in; i++) y[i] = cldp_ref_act(cldp_kind_act(L), x[i]);
}

static void act_ref_backward(const cldp_layer_desc *L, const float *p, const double *x, const double *y, const double *dy,
                             size_t rows, double *grad, double *dx)
{
    (void)p, (void)x, (void)grad;
    if (dx)
        for (size_t i = 0; i < rows * L->in; i++) dx[i] = dy[i] * cldp_ref_act_grad(cldp_kind_act(L), y[i]);
}

const cldp_kind_ops cldp_kind_relu = {"relu", 1, CLDP_PROGRAM_LAYERS, cldp_layer_same_shape, own_size, NULL,
                                      act_describe, act_ref_forward, act_ref_backward, NULL};
const cldp_kind_ops cldp_kind_tanh = {"tanh", 1, CLDP_PROGRAM_LAYERS, cldp_layer_same_shape, own_size, NULL,
                                      act_describe, act_ref_forward, act_ref_backward, NULL};
const cldp_kind_ops cldp_kind_sigmoid = {"sigmoid", 1, CLDP_PROGRAM_LAYERS, cldp_layer_same_shape, own_size, NULL,
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

const cldp_kind_ops cldp_kind_flatten = {"flatten", 1, CLDP_PROGRAM_LAYERS, flatten_shape, flatten_size, NULL,
                                         act_describe, flatten_ref_forward, flatten_ref_backward, NULL};
