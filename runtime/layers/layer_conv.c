/* layer_conv.c — the conv2d layer, NCHW: OUT channels, a square K×K kernel, stride S, zero padding
 * P, a bias; W (OUT, IN, K, K) as PyTorch's nn.Conv2d. Through CLBlast by im2col + GEMM, over
 * chunks of samples small enough for the scratch budget (P = OH·OW positions per sample):
 *   forward  col (IN·K·K, n·P) = im2col(x);  T (OUT, n·P) = W·col;   y = T + b, as NCHW
 *   backward T = dy in the GEMMs' layout;    dW (+)= T·colᵀ;  db (+)= row sums of T;
 *            dcol = Wᵀ·T;  dx = col2im(dcol), a gather in a fixed order. */
#include "layers.h"

#include <stdio.h>

/* floats the two scratch buffers may take, together, for one chunk (64 MiB) */
#define CONV_SCRATCH_BUDGET ((size_t)16 << 20)

static cldp_status conv_shape(cldp_layer_desc *L, const char *what)
{
    REQUIRE(L->out_c >= 1 && L->out_c <= 65536, "%s: out channels must be in 1..65536, got %zu", what, L->out_c);
    REQUIRE(L->k >= 1 && L->k <= 64, "%s: the kernel size must be in 1..64, got %zu", what, L->k);
    REQUIRE(L->stride >= 1 && L->stride <= 64, "%s: the stride must be in 1..64, got %zu", what, L->stride);
    REQUIRE(L->pad < L->k, "%s: the padding (%zu) must be smaller than the kernel (%zu)", what, L->pad, L->k);
    REQUIRE(L->in_h + 2 * L->pad >= L->k && L->in_w + 2 * L->pad >= L->k,
            "%s: the %zux%zu kernel is larger than the padded input %zux%zu (input %zux%zux%zu, padding %zu)", what, L->k, L->k,
            L->in_h + 2 * L->pad, L->in_w + 2 * L->pad, L->in_c, L->in_h, L->in_w, L->pad);
    L->out_h = (L->in_h + 2 * L->pad - L->k) / L->stride + 1;
    L->out_w = (L->in_w + 2 * L->pad - L->k) / L->stride + 1;
    L->out = L->out_c * L->out_h * L->out_w;
    L->nparams = L->out_c * L->in_c * L->k * L->k + L->out_c;
    return CLDP_OK;
}

/* The three GEMMs at a chunk of n samples: col in scratch 0, T in scratch 1. */
static void conv_gemms(const cldp_layer_desc *L, size_t n, cldp_gemm_shape *g)
{
    size_t ckk = L->in_c * L->k * L->k, oc = L->out_c, np = n * L->out_h * L->out_w;
    g[CLDP_GEMM_FORWARD] = (cldp_gemm_shape){"conv forward T = W·col", 0, 0, oc, np, ckk, L->w_off, ckk, 0, np, 0, np};
    g[CLDP_GEMM_DW] = (cldp_gemm_shape){"conv backward dW = T·colᵀ", 0, 1, oc, ckk, np, 0, np, 0, np, L->w_off, ckk};
    g[CLDP_GEMM_DX] = (cldp_gemm_shape){"conv backward dcol = Wᵀ·T", 1, 0, ckk, np, oc, L->w_off, ckk, 0, np, 0, np};
}

static size_t conv_chunk(const cldp_layer_desc *L, size_t rows)
{
    size_t per_row = (L->in_c * L->k * L->k + L->out_c) * L->out_h * L->out_w;
    size_t chunk = CONV_SCRATCH_BUDGET / per_row;
    if (chunk < 1) chunk = 1;
    return chunk < rows ? chunk : rows;
}

static void conv_size(const cldp_layer_desc *L, size_t rows, cldp_layer_size *s)
{
    size_t n = conv_chunk(L, rows), p = L->out_h * L->out_w;
    s->own_output = 1;
    s->chunk = n;
    s->scratch[0] = L->in_c * L->k * L->k * n * p;
    s->scratch[1] = L->out_c * n * p;
    s->ngemm = CLDP_GEMM_COUNT;
    conv_gemms(L, n, s->gemm);
}

static void conv_init(const cldp_layer_desc *L, double gain, cldp_rng *rng, float *p)
{
    size_t fan_in = L->in_c * L->k * L->k, nw = L->out_c * fan_in;
    cldp_init_uniform(rng, p, nw, p + nw, L->out_c, fan_in, gain);
}

/* im2col (or col2im, when back) of the chunk [r0, r0 + n) */
static cldp_status columns(cldp_replica *r, const cldp_layer_desc *L, int back, cl_mem src, size_t r0, size_t n, cl_mem dst)
{
    cl_kernel k;
    const char *name = back ? "col2im" : "im2col";
    TRY(cldp_replica_kernel(r, name, &k));
    cl_uint v[10] = {(cl_uint)r0, (cl_uint)L->in_c, (cl_uint)L->in_h, (cl_uint)L->in_w, (cl_uint)L->k, (cl_uint)L->stride,
                     (cl_uint)L->pad, (cl_uint)L->out_h, (cl_uint)L->out_w, (cl_uint)n};
    ARG(k, 0, src);
    for (cl_uint i = 0; i < 10; i++) ARG(k, i + 1, v[i]);
    ARG(k, 11, dst);
    size_t items = back ? n * L->in_c * L->in_h : L->in_c * L->k * L->k * n * L->out_h;
    return cldp_replica_launch(r, k, name, items);
}

/* conv_out (y from T and the bias) or conv_dy (T from dy) for the chunk [r0, r0 + n) */
static cldp_status move(cldp_replica *r, const cldp_layer_desc *L, int to_t, cl_mem y, size_t r0, size_t n)
{
    cl_kernel k;
    const char *name = to_t ? "conv_dy" : "conv_out";
    TRY(cldp_replica_kernel(r, name, &k));
    cl_uint oc = (cl_uint)L->out_c, p = (cl_uint)(L->out_h * L->out_w), un = (cl_uint)n, ur0 = (cl_uint)r0,
            boff = (cl_uint)L->b_off;
    if (to_t) {
        ARG(k, 0, y);
        ARG(k, 1, oc);
        ARG(k, 2, p);
        ARG(k, 3, un);
        ARG(k, 4, ur0);
        ARG(k, 5, r->scratch[1]);
    } else {
        ARG(k, 0, r->scratch[1]);
        ARG(k, 1, oc);
        ARG(k, 2, p);
        ARG(k, 3, un);
        ARG(k, 4, r->params);
        ARG(k, 5, boff);
        ARG(k, 6, ur0);
        ARG(k, 7, y);
    }
    return cldp_replica_launch(r, k, name, n * L->out_c);
}

static cldp_status conv_forward(cldp_replica *r, const cldp_layer_desc *L, const cldp_pass *ps)
{
    size_t chunk = conv_chunk(L, ps->rows);
    for (size_t r0 = 0; r0 < ps->rows; r0 += chunk) {
        size_t n = ps->rows - r0 < chunk ? ps->rows - r0 : chunk;
        cldp_gemm_shape g[CLDP_GEMM_COUNT];
        conv_gemms(L, n, g);
        TRY(columns(r, L, 0, ps->in, r0, n, r->scratch[0]));
        TRY(cldp_replica_gemm(r, &g[CLDP_GEMM_FORWARD], r->params, r->scratch[0], 0.0f, r->scratch[1]));
        TRY(move(r, L, 0, ps->out, r0, n));
    }
    return CLDP_OK;
}

static cldp_status conv_backward(cldp_replica *r, const cldp_layer_desc *L, const cldp_pass *ps)
{
    size_t chunk = conv_chunk(L, ps->rows);
    for (size_t r0 = 0; r0 < ps->rows; r0 += chunk) {
        size_t n = ps->rows - r0 < chunk ? ps->rows - r0 : chunk;
        int acc = ps->accumulate || r0 > 0;
        cldp_gemm_shape g[CLDP_GEMM_COUNT];
        conv_gemms(L, n, g);
        TRY(move(r, L, 1, ps->dout, r0, n));
        TRY(columns(r, L, 0, ps->in, r0, n, r->scratch[0]));
        TRY(cldp_replica_gemm(r, &g[CLDP_GEMM_DW], r->scratch[1], r->scratch[0], acc ? 1.0f : 0.0f, r->grads));
        cl_kernel k;
        TRY(cldp_replica_kernel(r, "row_sum", &k));
        cl_uint rows = (cl_uint)L->out_c, cols = (cl_uint)(n * L->out_h * L->out_w), boff = (cl_uint)L->b_off;
        cl_int a = acc;
        ARG(k, 0, r->scratch[1]);
        ARG(k, 1, rows);
        ARG(k, 2, cols);
        ARG(k, 3, r->grads);
        ARG(k, 4, boff);
        ARG(k, 5, a);
        TRY(cldp_replica_launch(r, k, "row_sum", L->out_c));
        if (!ps->din) continue;
        TRY(cldp_replica_gemm(r, &g[CLDP_GEMM_DX], r->params, r->scratch[1], 0.0f, r->scratch[0]));
        TRY(columns(r, L, 1, r->scratch[0], r0, n, ps->din));
    }
    return CLDP_OK;
}

static int conv_describe(const cldp_layer_desc *L, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "conv:%zu:%zu", L->out_c, L->k);
    size_t u = n > 0 && (size_t)n < cap ? (size_t)n : cap;
    if (L->stride != 1) n += snprintf(buf + u, cap - u, ":s%zu", L->stride);
    u = n > 0 && (size_t)n < cap ? (size_t)n : cap;
    if (L->pad) n += snprintf(buf + u, cap - u, ":p%zu", L->pad);
    return n;
}

/* The direct convolution: y[r][o][oh][ow] = b[o] + sum over c, kh, kw of W[o][c][kh][kw]·x[...]. */
static void conv_ref_forward(const cldp_layer_desc *L, const float *p, const double *x, size_t rows, double *y)
{
    size_t C = L->in_c, H = L->in_h, Wd = L->in_w, K = L->k, OH = L->out_h, OW = L->out_w, OC = L->out_c;
    const float *w = p, *b = p + OC * C * K * K;
    for (size_t r = 0; r < rows; r++)
        for (size_t o = 0; o < OC; o++)
            for (size_t oh = 0; oh < OH; oh++)
                for (size_t ow = 0; ow < OW; ow++) {
                    double s = b[o];
                    for (size_t c = 0; c < C; c++)
                        for (size_t kh = 0; kh < K; kh++)
                            for (size_t kw = 0; kw < K; kw++) {
                                long ih = (long)(oh * L->stride + kh) - (long)L->pad, iw = (long)(ow * L->stride + kw) - (long)L->pad;
                                if (ih < 0 || iw < 0 || ih >= (long)H || iw >= (long)Wd) continue;
                                s += (double)w[((o * C + c) * K + kh) * K + kw] * x[((r * C + c) * H + (size_t)ih) * Wd + (size_t)iw];
                            }
                    y[((r * OC + o) * OH + oh) * OW + ow] = s;
                }
}

static void conv_ref_backward(const cldp_layer_desc *L, const float *p, const double *x, const double *y, const double *dy,
                              size_t rows, double *grad, double *dx)
{
    (void)y;
    size_t C = L->in_c, H = L->in_h, Wd = L->in_w, K = L->k, OH = L->out_h, OW = L->out_w, OC = L->out_c;
    double *gw = grad, *gb = grad + OC * C * K * K;
    for (size_t i = 0; i < L->nparams; i++) grad[i] = 0;
    if (dx)
        for (size_t i = 0; i < rows * L->in; i++) dx[i] = 0;
    for (size_t r = 0; r < rows; r++)
        for (size_t o = 0; o < OC; o++)
            for (size_t oh = 0; oh < OH; oh++)
                for (size_t ow = 0; ow < OW; ow++) {
                    double d = dy[((r * OC + o) * OH + oh) * OW + ow];
                    gb[o] += d;
                    for (size_t c = 0; c < C; c++)
                        for (size_t kh = 0; kh < K; kh++)
                            for (size_t kw = 0; kw < K; kw++) {
                                long ih = (long)(oh * L->stride + kh) - (long)L->pad, iw = (long)(ow * L->stride + kw) - (long)L->pad;
                                if (ih < 0 || iw < 0 || ih >= (long)H || iw >= (long)Wd) continue;
                                size_t xi = ((r * C + c) * H + (size_t)ih) * Wd + (size_t)iw, wi = ((o * C + c) * K + kh) * K + kw;
                                gw[wi] += d * x[xi];
                                if (dx) dx[xi] += d * (double)p[wi];
                            }
                }
}

const cldp_layer_ops cldp_layer_conv2d = {"conv", 0, 1, conv_shape, conv_size, conv_init, conv_forward, conv_backward, NULL,
                                          conv_describe, conv_ref_forward, conv_ref_backward, NULL};
