/* layers.cl — the element-wise and per-row kernels of a dense-layer replica: bias and activation,
 * activation derivatives, softmax cross-entropy (loss, its gradient, correct predictions), the
 * bias gradient, and the whole of a narrow dense layer (16 outputs or fewer: forward, dW, dX),
 * where a GEMM library's tiles would be mostly padding. Other GEMMs are CLBlast's. Plain OpenCL C
 * 1.2, float32, no extension required. Buffers are passed with an element offset so one flat
 * parameter buffer serves every layer. Activation codes match cldp_activation: 0 none, 1 ReLU,
 * 2 tanh, 3 sigmoid. Kernels that take four columns per work-item (float4) do so because a CPU
 * device (PoCL) runs each work-item's loop as scalar code otherwise; every column is still
 * computed in the same order of terms, whatever the vector width. */

#define NARROW 16 /* the most outputs of a dense layer the narrow kernels take (runtime: CLDP_NARROW) */

static float act1(float v, const int act)
{
    if (act == 1) return fmax(v, 0.0f);
    if (act == 2) return tanh(v);
    if (act == 3) return 1.0f / (1.0f + exp(-v));
    return v;
}

static float4 act4(float4 v, const int act)
{
    if (act == 1) return fmax(v, 0.0f);
    if (act == 2) return tanh(v);
    if (act == 3) return 1.0f / (1.0f + exp(-v));
    return v;
}

/* z[r][c] = act(z[r][c] + b[c]) over rows x cols: work-item (q, r) takes columns 4q .. 4q+3 of
 * row r (the last quad of a row may be short). */
__kernel void bias_act(__global float *z, const uint rows, const uint cols,
                       __global const float *params, const uint b_off, const int act)
{
    const size_t c = 4 * get_global_id(0), r = get_global_id(1);
    if (c >= cols || r >= rows) return;
    __global float *zr = z + r * cols + c;
    __global const float *b = params + b_off + c;
    if (c + 4 <= cols) {
        vstore4(act4(vload4(0, zr) + vload4(0, b), act), 0, zr);
        return;
    }
    for (uint k = 0; c + k < cols; k++) zr[k] = act1(zr[k] + b[k], act);
}

/* The same, one work-item per element: the kernel before the quad form (CLDP_FAST_KERNELS=off). */
__kernel void bias_act_plain(__global float *z, const uint rows, const uint cols,
                             __global const float *params, const uint b_off, const int act)
{
    const size_t i = get_global_id(0);
    if (i >= (size_t)rows * cols) return;
    z[i] = act1(z[i] + params[b_off + i % cols], act);
}

/* y[i] = act(x[i]) over n elements (the activation layers). */
__kernel void act_forward(__global const float *x, __global float *y, const uint n, const int act)
{
    const size_t i = get_global_id(0);
    if (i >= n) return;
    y[i] = act1(x[i], act);
}

/* d[i] *= act'(a[i]), where a is the activation's output (ReLU: a > 0; tanh: 1 - a^2;
 * sigmoid: a(1 - a)). */
__kernel void act_backward(__global float *d, __global const float *a, const uint n, const int act)
{
    const size_t i = get_global_id(0);
    if (i >= n) return;
    if (act == 1) d[i] = a[i] > 0.0f ? d[i] : 0.0f;
    else if (act == 2) d[i] *= 1.0f - a[i] * a[i];
    else if (act == 3) d[i] *= a[i] * (1.0f - a[i]);
}

/* One work-item per row of logits (rows x classes):
 *   loss[r]    = logsumexp(z[r]) - z[r][label]
 *   correct[r] = 1 when the first arg-max of z[r] is the label
 *   dz[r][c]   = (softmax(z[r])[c] - [c == label]) * scale   (scale = 1 / global batch)
 * dz may alias z. */
__kernel void softmax_xent(__global const float *z, __global const int *labels, const uint rows,
                           const uint classes, const float scale, __global float *dz,
                           __global float *loss, __global int *correct)
{
    const size_t r = get_global_id(0);
    if (r >= rows) return;
    __global const float *zr = z + r * classes;
    float m = zr[0];
    uint arg = 0;
    for (uint c = 1; c < classes; c++)
        if (zr[c] > m) { m = zr[c]; arg = c; }
    float s = 0.0f;
    for (uint c = 0; c < classes; c++) s += exp(zr[c] - m);
    const int y = labels[r];
    const float lse = m + log(s);
    loss[r] = lse - zr[y];
    correct[r] = (int)arg == y;
    const float inv = 1.0f / s;
    __global float *dr = dz + r * classes;
    for (uint c = 0; c < classes; c++) {
        const float p = exp(zr[c] - m) * inv;
        dr[c] = (p - (c == (uint)y ? 1.0f : 0.0f)) * scale;
    }
}

/* probs[r][c] = softmax(z[r])[c], one work-item per row. */
__kernel void softmax_rows(__global const float *z, const uint rows, const uint classes,
                           __global float *probs)
{
    const size_t r = get_global_id(0);
    if (r >= rows) return;
    __global const float *zr = z + r * classes;
    float m = zr[0];
    for (uint c = 1; c < classes; c++) m = fmax(m, zr[c]);
    float s = 0.0f;
    for (uint c = 0; c < classes; c++) s += exp(zr[c] - m);
    const float inv = 1.0f / s;
    for (uint c = 0; c < classes; c++) probs[r * classes + c] = exp(zr[c] - m) * inv;
}

/* db[c] (+)= sum over rows of d[r][c], summed in row order, so the result does not depend on the
 * device's work-group size: work-item q takes columns 4q .. 4q+3 (fewer at the end). */
__kernel void bias_grad(__global const float *d, const uint rows, const uint cols,
                        __global float *grads, const uint b_off, const int accumulate)
{
    const size_t c = 4 * get_global_id(0);
    if (c >= cols) return;
    __global float *g = grads + b_off + c;
    if (c + 4 <= cols) {
        float4 s = (float4)(0.0f);
        for (uint r = 0; r < rows; r++) s += vload4(0, d + (size_t)r * cols + c);
        vstore4(accumulate ? vload4(0, g) + s : s, 0, g);
        return;
    }
    for (uint k = 0; c + k < cols; k++) {
        float s = 0.0f;
        for (uint r = 0; r < rows; r++) s += d[(size_t)r * cols + c + k];
        g[k] = accumulate ? g[k] + s : s;
    }
}

/* ---- narrow dense layers: out <= NARROW outputs, W (out, in) at params + w_off, b after it ----
 * The three take the same arguments: (source rows, a matrix, rows, in, out, destination, w_off,
 * a flag: the activation, accumulate, or none). */

/* y[r][o] = act(b[o] + sum_i x[r][i]·W[o][i]), one work-item per row: the row is read once, W
 * (out x in, small) stays in cache. Each dot product sums four interleaved partial sums over
 * i = 4j + lane, then the lanes as (0+1)+(2+3), then the tail i >= in - in%4 in order. */
__kernel void dense_narrow_forward(__global const float *x, __global const float *params, const uint rows,
                                   const uint in, const uint out, __global float *y, const uint w_off,
                                   const int act)
{
    const size_t r = get_global_id(0);
    if (r >= rows) return;
    __global const float *xr = x + r * in, *w = params + w_off;
    float4 acc[NARROW];
    for (uint o = 0; o < NARROW; o++) acc[o] = (float4)(0.0f);
    const uint in4 = in & ~3u;
    for (uint i = 0; i < in4; i += 4) {
        const float4 xv = vload4(0, xr + i);
        for (uint o = 0; o < NARROW; o++)
            if (o < out) acc[o] += xv * vload4(0, w + (size_t)o * in + i);
    }
    for (uint o = 0; o < out; o++) {
        float s = (acc[o].x + acc[o].y) + (acc[o].z + acc[o].w);
        for (uint i = in4; i < in; i++) s += xr[i] * w[(size_t)o * in + i];
        y[r * out + o] = act1(w[(size_t)out * in + o] + s, act);
    }
}

/* gW[o][i] (+)= sum over rows of d[r][o]·x[r][i], in row order: work-item q takes inputs
 * 4q .. 4q+3 (fewer at the end) for every output, so x is read once. */
__kernel void dense_narrow_dw(__global const float *d, __global const float *x, const uint rows, const uint in,
                              const uint out, __global float *grads, const uint w_off, const int accumulate)
{
    const size_t i = 4 * get_global_id(0);
    if (i >= in) return;
    __global float *g = grads + w_off;
    if (i + 4 <= in) {
        float4 acc[NARROW];
        for (uint o = 0; o < NARROW; o++) acc[o] = (float4)(0.0f);
        for (uint r = 0; r < rows; r++) {
            const float4 xv = vload4(0, x + (size_t)r * in + i);
            for (uint o = 0; o < NARROW; o++)
                if (o < out) acc[o] += d[(size_t)r * out + o] * xv;
        }
        for (uint o = 0; o < out; o++) {
            __global float *go = g + (size_t)o * in + i;
            vstore4(accumulate ? vload4(0, go) + acc[o] : acc[o], 0, go);
        }
        return;
    }
    for (uint k = 0; i + k < in; k++)
        for (uint o = 0; o < out; o++) {
            float s = 0.0f;
            for (uint r = 0; r < rows; r++) s += d[(size_t)r * out + o] * x[(size_t)r * in + i + k];
            __global float *go = g + (size_t)o * in + i + k;
            *go = accumulate ? *go + s : s;
        }
}

/* dx[r][i] = sum over o of d[r][o]·W[o][i], in order of o: work-item (q, r) takes inputs
 * 4q .. 4q+3 of row r (fewer at the end). */
__kernel void dense_narrow_dx(__global const float *d, __global const float *params, const uint rows,
                              const uint in, const uint out, __global float *dx, const uint w_off, const int unused)
{
    const size_t i = 4 * get_global_id(0), r = get_global_id(1);
    if (i >= in || r >= rows) return;
    __global const float *w = params + w_off, *dr = d + r * out;
    __global float *xr = dx + r * in + i;
    if (i + 4 <= in) {
        float4 s = (float4)(0.0f);
        for (uint o = 0; o < out; o++) s += dr[o] * vload4(0, w + (size_t)o * in + i);
        vstore4(s, 0, xr);
        return;
    }
    for (uint k = 0; i + k < in; k++) {
        float s = 0.0f;
        for (uint o = 0; o < out; o++) s += dr[o] * w[(size_t)o * in + i + k];
        xr[k] = s;
    }
}

/* bias_grad_plain, the kernel before the quad form of bias_grad (CLDP_FAST_KERNELS=off), with the
 * same bits: */
/* db[c] (+)= sum over rows of d[r][c], one work-item per column. Summed in row order, so the
 * result does not depend on the device's work-group size. */
__kernel void bias_grad_plain(__global const float *d, const uint rows, const uint cols,
                        __global float *grads, const uint b_off, const int accumulate)
{
    const size_t c = get_global_id(0);
    if (c >= cols) return;
    float s = 0.0f;
    for (uint r = 0; r < rows; r++) s += d[(size_t)r * cols + c];
    grads[b_off + c] = accumulate ? grads[b_off + c] + s : s;
}

/* Mean squared error, one work-item per row of outputs z against float targets t (rows x outputs):
 *   loss[r]    = sum_c (z[r][c] - t[r][c])^2 / outputs   (their mean over rows: nn.MSELoss's mean)
 *   dz[r][c]   = 2 (z[r][c] - t[r][c]) / outputs * scale  (scale = 1 / global batch)
 *   correct[r] = 0 */
__kernel void mse_loss(__global const float *z, __global const float *t, const uint rows, const uint outputs,
                       const float scale, __global float *dz, __global float *loss, __global int *correct)
{
    const size_t r = get_global_id(0);
    if (r >= rows) return;
    const size_t at = r * outputs;
    const float g = 2.0f / (float)outputs * scale;
    float s = 0.0f;
    for (uint c = 0; c < outputs; c++) {
        const float e = z[at + c] - t[at + c];
        s += e * e;
        dz[at + c] = e * g;
    }
    loss[r] = s / (float)outputs;
    correct[r] = 0;
}
