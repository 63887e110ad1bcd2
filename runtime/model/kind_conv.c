/* kind_conv.c — the conv2d layer's kind, NCHW: OUT channels, a square K×K kernel, stride S, zero padding
 * P, a bias; W (OUT, IN, K, K) as PyTorch's nn.Conv2d. Through CLBlast by im2col + GEMM, over
 * chunks of samples small enough for the scratch budget (P = OH·OW positions per sample):
 *   forward  col (IN·K·K, n·P) = im2col(x);  T (OUT, n·P) = W·col;   y = T + b, as NCHW
 *   backward T = dy in the GEMMs' layout;    dW (+)= T·colᵀ;  db (+)= row sums of T;
 *            dcol = Wᵀ·T;  dx = col2im(dcol), a gather in a fixed order.
 * Its shape, sizes, initialisation, spec token and reference here; its passes: layers/layer_conv.c. */
#include "kinds.h"

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


const cldp_kind_ops cldp_kind_conv2d = {"conv", 0, CLDP_PROGRAM_SPATIAL, conv_shape, conv_size, conv_init,
                                        conv_describe, conv_ref_forward, conv_ref_backward, NULL};
