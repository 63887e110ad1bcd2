/* layer_conv.c — the conv2d layer's passes, NCHW, by im2col + GEMM over chunks of samples (the
 * chunk and the GEMMs' shapes come from its kind, model/kind_conv.c):
 *   forward  col (IN·K·K, n·P) = im2col(x);  T (OUT, n·P) = W·col;   y = T + b, as NCHW
 *   backward T = dy in the GEMMs' layout;    dW (+)= T·colᵀ;  db (+)= row sums of T;
 *            dcol = Wᵀ·T;  dx = col2im(dcol), a gather in a fixed order. */
#include "layers.h"

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
    cldp_layer_size s;
    cldp_kind_of(L->kind)->size(L, ps->rows, &s);
    size_t chunk = s.chunk;
    for (size_t r0 = 0; r0 < ps->rows; r0 += chunk) {
        size_t n = ps->rows - r0 < chunk ? ps->rows - r0 : chunk;
        cldp_kind_of(L->kind)->size(L, n, &s); /* the GEMMs of this chunk of n <= chunk samples */
        const cldp_gemm_shape *g = s.gemm;
        TRY(columns(r, L, 0, ps->in, r0, n, r->scratch[0]));
        TRY(cldp_replica_gemm(r, &g[CLDP_GEMM_FORWARD], r->params, r->scratch[0], 0.0f, r->scratch[1]));
        TRY(move(r, L, 0, ps->out, r0, n));
    }
    return CLDP_OK;
}

static cldp_status conv_backward(cldp_replica *r, const cldp_layer_desc *L, const cldp_pass *ps)
{
    cldp_layer_size s;
    cldp_kind_of(L->kind)->size(L, ps->rows, &s);
    size_t chunk = s.chunk;
    for (size_t r0 = 0; r0 < ps->rows; r0 += chunk) {
        size_t n = ps->rows - r0 < chunk ? ps->rows - r0 : chunk;
        int acc = ps->accumulate || r0 > 0;
        cldp_kind_of(L->kind)->size(L, n, &s); /* the GEMMs of this chunk of n <= chunk samples */
        const cldp_gemm_shape *g = s.gemm;
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


const cldp_pass_ops cldp_pass_conv2d = {conv_forward, conv_backward, NULL};
