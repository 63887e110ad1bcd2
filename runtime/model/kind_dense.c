/* kind_dense.c — the dense layer's kind: y = act(x·Wᵀ + b), W (out, in) as PyTorch's nn.Linear;
 * its shape, sizes (the three GEMMs: forward X·Wᵀ, dW = dYᵀ·X, dX = dY·W), initialisation, spec
 * token and double-precision reference. Its passes: layers/layer_dense.c. */
#include "kinds.h"

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

const cldp_kind_ops cldp_kind_dense = {"dense", 0, CLDP_PROGRAM_LAYERS, dense_shape, dense_size, dense_init,
                                       dense_describe, dense_ref_forward, dense_ref_backward, NULL};
