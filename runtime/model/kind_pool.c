/* kind_pool.c — the kind of max pooling over K×K windows at stride S (no padding; PyTorch's nn.MaxPool2d
 * with its default floor rounding). Forward keeps each output's arg-max; backward routes the
 * gradient there, each input gathering from the windows it won. Ties: the first element of the
 * window in row-major order wins, on the device and in the reference alike. Where windows do not
 * overlap (stride >= window) each input has one window at most and the output writes it
 * directly; otherwise each input sums, in window order, the outputs it won.
 * Its passes: layers/layer_pool.c. */
#include "kinds.h"

#include <stdio.h>

static cldp_status pool_shape(cldp_layer_desc *L, const char *what)
{
    REQUIRE(L->k >= 1 && L->k <= 64, "%s: the window size must be in 1..64, got %zu", what, L->k);
    REQUIRE(L->stride >= 1 && L->stride <= 64, "%s: the stride must be in 1..64, got %zu", what, L->stride);
    REQUIRE(L->in_h >= L->k && L->in_w >= L->k, "%s: the %zux%zu window is larger than the input %zux%zux%zu", what, L->k, L->k,
            L->in_c, L->in_h, L->in_w);
    L->out_c = L->in_c;
    L->out_h = (L->in_h - L->k) / L->stride + 1;
    L->out_w = (L->in_w - L->k) / L->stride + 1;
    L->out = L->out_c * L->out_h * L->out_w;
    return CLDP_OK;
}

static void pool_size(const cldp_layer_desc *L, size_t rows, cldp_layer_size *s)
{
    s->own_output = 1;
    s->aux_per_row = L->out; /* the arg-max of every output */
    s->chunk = rows;
}

static int pool_describe(const cldp_layer_desc *L, char *buf, size_t cap)
{
    if (L->stride == L->k) return snprintf(buf, cap, "maxpool:%zu", L->k);
    return snprintf(buf, cap, "maxpool:%zu:s%zu", L->k, L->stride);
}

/* The arg-max of output (plane, oh, ow) as an index into the plane, by the tie rule above. */
static size_t ref_arg(const cldp_layer_desc *L, const double *plane, size_t oh, size_t ow)
{
    size_t best = oh * L->stride * L->in_w + ow * L->stride;
    for (size_t kh = 0; kh < L->k; kh++)
        for (size_t kw = 0; kw < L->k; kw++) {
            size_t q = (oh * L->stride + kh) * L->in_w + ow * L->stride + kw;
            if (plane[q] > plane[best]) best = q;
        }
    return best;
}

static void pool_ref_forward(const cldp_layer_desc *L, const float *p, const double *x, size_t rows, double *y)
{
    (void)p;
    size_t hw = L->in_h * L->in_w, ohw = L->out_h * L->out_w;
    for (size_t pl = 0; pl < rows * L->in_c; pl++)
        for (size_t oh = 0; oh < L->out_h; oh++)
            for (size_t ow = 0; ow < L->out_w; ow++)
                y[pl * ohw + oh * L->out_w + ow] = x[pl * hw + ref_arg(L, x + pl * hw, oh, ow)];
}

static void pool_ref_backward(const cldp_layer_desc *L, const float *p, const double *x, const double *y, const double *dy,
                              size_t rows, double *grad, double *dx)
{
    (void)p, (void)y, (void)grad;
    if (!dx) return;
    size_t hw = L->in_h * L->in_w, ohw = L->out_h * L->out_w;
    for (size_t i = 0; i < rows * L->in; i++) dx[i] = 0;
    for (size_t pl = 0; pl < rows * L->in_c; pl++)
        for (size_t oh = 0; oh < L->out_h; oh++)
            for (size_t ow = 0; ow < L->out_w; ow++)
                dx[pl * hw + ref_arg(L, x + pl * hw, oh, ow)] += dy[pl * ohw + oh * L->out_w + ow];
}

const cldp_kind_ops cldp_kind_maxpool2d = {"maxpool", 0, CLDP_PROGRAM_SPATIAL, pool_shape, pool_size, NULL,
                                           pool_describe, pool_ref_forward, pool_ref_backward, NULL};
