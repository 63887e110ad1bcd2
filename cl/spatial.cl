/* spatial.cl — the kernels of the image layers, NCHW, one work-item per output element and
 * every sum a gather in a fixed order (no atomics, so the bits never depend on scheduling):
 * conv2d's im2col and col2im around CLBlast's GEMMs, its bias and layout moves, and max pooling
 * with its arg-max routing. Plain OpenCL C 1.2, float32. */

/* col (C·K·K, n·P) from n samples of in (C, H, W) starting at sample r0: the K×K patch of each
 * output position, zero outside the image. P = OH·OW. */
__kernel void im2col(__global const float *in, const uint r0, const uint C, const uint H, const uint W, const uint K,
                     const uint S, const uint pad, const uint OH, const uint OW, const uint n, __global float *col)
{
    const size_t P = (size_t)OH * OW, nP = P * n, i = get_global_id(0);
    if (i >= (size_t)C * K * K * nP) return;
    const size_t ck = i / nP, j = i % nP, rr = j / P, p = j % P;
    const uint c = ck / (K * K), kh = (ck / K) % K, kw = ck % K, oh = p / OW, ow = p % OW;
    const int ih = (int)(oh * S + kh) - (int)pad, iw = (int)(ow * S + kw) - (int)pad;
    float v = 0.0f;
    if (ih >= 0 && ih < (int)H && iw >= 0 && iw < (int)W)
        v = in[(((size_t)r0 + rr) * C + c) * H * W + (size_t)ih * W + iw];
    col[i] = v;
}

/* dx for n samples from sample r0: each input element gathers, in (kh, kw) order, the entries of
 * dcol (C·K·K, n·P) it was copied to by im2col. */
__kernel void col2im(__global const float *dcol, const uint r0, const uint C, const uint H, const uint W, const uint K,
                     const uint S, const uint pad, const uint OH, const uint OW, const uint n, __global float *dx)
{
    const size_t P = (size_t)OH * OW, nP = P * n, i = get_global_id(0);
    if (i >= (size_t)n * C * H * W) return;
    const size_t rr = i / ((size_t)C * H * W);
    const uint c = (i / ((size_t)H * W)) % C, ih = (i / W) % H, iw = i % W;
    float s = 0.0f;
    for (uint kh = 0; kh < K; kh++) {
        const int th = (int)(ih + pad) - (int)kh;
        if (th < 0 || th % (int)S) continue;
        const uint oh = (uint)th / S;
        if (oh >= OH) continue;
        for (uint kw = 0; kw < K; kw++) {
            const int tw = (int)(iw + pad) - (int)kw;
            if (tw < 0 || tw % (int)S) continue;
            const uint ow = (uint)tw / S;
            if (ow >= OW) continue;
            s += dcol[((size_t)c * K * K + kh * K + kw) * nP + rr * P + (size_t)oh * OW + ow];
        }
    }
    dx[(size_t)r0 * C * H * W + i] = s;
}

/* out[r0 + rr][oc][p] = t[oc][rr·P + p] + b[oc] over n samples: the GEMM's (OC, n·P) result into
 * NCHW with the bias. */
__kernel void conv_out(__global const float *t, const uint OC, const uint P, const uint n, __global const float *params,
                       const uint b_off, const uint r0, __global float *out)
{
    const size_t i = get_global_id(0), nP = (size_t)n * P;
    if (i >= (size_t)n * OC * P) return;
    const size_t rr = i / ((size_t)OC * P), oc = (i / P) % OC, p = i % P;
    out[(size_t)r0 * OC * P + i] = t[oc * nP + rr * P + p] + params[b_off + oc];
}

/* t[oc][rr·P + p] = dy[r0 + rr][oc][p]: the layer's output gradient in the GEMMs' layout. */
__kernel void conv_dy(__global const float *dy, const uint OC, const uint P, const uint n, const uint r0,
                      __global float *t)
{
    const size_t i = get_global_id(0), nP = (size_t)n * P;
    if (i >= (size_t)n * OC * P) return;
    const size_t rr = i / ((size_t)OC * P), oc = (i / P) % OC, p = i % P;
    t[oc * nP + rr * P + p] = dy[(size_t)r0 * OC * P + i];
}

/* grads[b_off + r] (+)= sum of row r of t (rows, cols), in column order: conv2d's bias gradient. */
__kernel void row_sum(__global const float *t, const uint rows, const uint cols, __global float *grads,
                      const uint b_off, const int accumulate)
{
    const size_t r = get_global_id(0);
    if (r >= rows) return;
    float s = 0.0f;
    for (size_t c = 0; c < cols; c++) s += t[r * cols + c];
    grads[b_off + r] = accumulate ? grads[b_off + r] + s : s;
}

/* Max pooling over K×K windows at stride S of planes (H, W), one work-item per output element of
 * `planes` planes: out = the maximum, arg = its index in the plane (ih·W + iw); of equal values
 * the first in row-major window order wins. */
__kernel void maxpool_forward(__global const float *in, const uint planes, const uint H, const uint W, const uint K,
                              const uint S, const uint OH, const uint OW, __global float *out, __global int *arg)
{
    const size_t i = get_global_id(0);
    if (i >= (size_t)planes * OH * OW) return;
    const size_t pl = i / ((size_t)OH * OW);
    const uint oh = (i / OW) % OH, ow = i % OW;
    __global const float *x = in + pl * H * W;
    uint best = oh * S * W + ow * S;
    float m = x[best];
    for (uint kh = 0; kh < K; kh++)
        for (uint kw = 0; kw < K; kw++) {
            const uint q = (oh * S + kh) * W + ow * S + kw;
            if (x[q] > m) { m = x[q]; best = q; }
        }
    out[i] = m;
    arg[i] = (int)best;
}

/* dx of max pooling, one work-item per input element: the sum, in window order, of the output
 * gradients of the windows whose arg-max it is. */
__kernel void maxpool_backward(__global const float *dy, __global const int *arg, const uint planes, const uint H,
                               const uint W, const uint K, const uint S, const uint OH, const uint OW,
                               __global float *dx)
{
    const size_t i = get_global_id(0);
    if (i >= (size_t)planes * H * W) return;
    const size_t pl = i / ((size_t)H * W);
    const uint q = i % ((size_t)H * W), ih = q / W, iw = q % W;
    const uint oh0 = ih + 1 > K ? (ih + 1 - K + S - 1) / S : 0, ow0 = iw + 1 > K ? (iw + 1 - K + S - 1) / S : 0;
    const uint oh1 = min(ih / S, OH - 1), ow1 = min(iw / S, OW - 1);
    float s = 0.0f;
    for (uint oh = oh0; oh <= oh1; oh++)
        for (uint ow = ow0; ow <= ow1; ow++) {
            const size_t o = pl * OH * OW + (size_t)oh * OW + ow;
            if (arg[o] == (int)q) s += dy[o];
        }
    dx[i] = s;
}
