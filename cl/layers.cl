/* layers.cl — the element-wise and per-row kernels of a dense-layer replica: bias and activation,
 * activation derivatives, softmax cross-entropy (loss, its gradient, correct predictions) and the
 * bias gradient. GEMMs are CLBlast's. Plain OpenCL C 1.2, float32, no extension required.
 * Buffers are passed with an element offset so one flat parameter buffer serves every layer.
 * Activation codes match cldp_activation: 0 none, 1 ReLU, 2 tanh, 3 sigmoid. */

/* z[r][c] = act(z[r][c] + b[c]) over rows x cols, one work-item per element. */
__kernel void bias_act(__global float *z, const uint rows, const uint cols,
                       __global const float *params, const uint b_off, const int act)
{
    const size_t i = get_global_id(0);
    if (i >= (size_t)rows * cols) return;
    float v = z[i] + params[b_off + i % cols];
    if (act == 1) v = fmax(v, 0.0f);
    else if (act == 2) v = tanh(v);
    else if (act == 3) v = 1.0f / (1.0f + exp(-v));
    z[i] = v;
}

/* y[i] = act(x[i]) over n elements (the activation layers). */
__kernel void act_forward(__global const float *x, __global float *y, const uint n, const int act)
{
    const size_t i = get_global_id(0);
    if (i >= n) return;
    float v = x[i];
    if (act == 1) v = fmax(v, 0.0f);
    else if (act == 2) v = tanh(v);
    else if (act == 3) v = 1.0f / (1.0f + exp(-v));
    y[i] = v;
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

/* db[c] (+)= sum over rows of d[r][c], one work-item per column. Summed in row order, so the
 * result does not depend on the device's work-group size. */
__kernel void bias_grad(__global const float *d, const uint rows, const uint cols,
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
