/* spatial.cl — the kernels of the image layers, NCHW, one work-item per output element and
 * every sum a gather in a fixed order (no atomics, so the bits never depend on scheduling):
 * conv2d's im2col and col2im around CLBlast's GEMMs, its bias and layout moves, and max pooling
 * with its arg-max routing. Plain OpenCL C 1.2, float32. */

/* Work-items take whole output rows and loop along them: the index arithmetic (divisions) is
 * paid once per row, not once per element, which is what made these kernels as slow as the
 * GEMMs around them on CPU devices. All sizes fit 32 bits (the host chunks the batch so). */

/* col (C·K·K, n·P) from n samples of in (C, H, W) starting at sample r0: the K×K patch of each
 * output position, zero outside the image. P = OH·OW. One work-item per (c·K·K, sample, oh). */
__kernel void im2col(__global const float *in, const uint r0, const uint C, const uint H, const uint W, const uint K,
                     const uint S, const uint pad, const uint OH, const uint OW, const uint n, __global float *col)
{
    const uint i = get_global_id(0);
    if (i >= C * K * K * n * OH) return;
    const uint oh = i % OH, t = i / OH, rr = t % n, ck = t / n;
    const uint c = ck / (K * K), kh = (ck / K) % K, kw = ck % K, P = OH * OW;
    __global float *dst = col + (size_t)ck * n * P + (size_t)rr * P + oh * OW;
    const int ih = (int)(oh * S + kh) - (int)pad;
    if (ih < 0 || ih >= (int)H) {
        for (uint ow = 0; ow < OW; ow++) dst[ow] = 0.0f;
        return;
    }
    __global const float *src = in + (((size_t)r0 + rr) * C + c) * H * W + (size_t)ih * W;
    for (uint ow = 0; ow < OW; ow++) {
        const int iw = (int)(ow * S + kw) - (int)pad;
        dst[ow] = iw >= 0 && iw < (int)W ? src[iw] : 0.0f;
    }
}

/* dx for n samples from sample r0, from dcol (C·K·K, n·P): each input element gathers the
 * entries im2col copied it to, summed in (kh, kw) order. One work-item per (sample, c, ih) row. */
__kernel void col2im(__global const float *dcol, const uint r0, const uint C, const uint H, const uint W, const uint K,
                     const uint S, const uint pad, const uint OH, const uint OW, const uint n, __global float *dx)
{
    const uint i = get_global_id(0);
    if (i >= n * C * H) return;
    const uint ih = i % H, c = (i / H) % C, rr = i / (H * C), P = OH * OW;
    __global float *row = dx + (((size_t)r0 + rr) * C + c) * H * W + (size_t)ih * W;
    for (uint iw = 0; iw < W; iw++) row[iw] = 0.0f;
    for (uint kh = 0; kh < K; kh++) {
        const int th = (int)(ih + pad) - (int)kh;
        if (th < 0 || th % (int)S) continue;
        const uint oh = (uint)th / S;
        if (oh >= OH) continue;
        for (uint kw = 0; kw < K; kw++) {
            __global const float *src = dcol + ((size_t)c * K * K + kh * K + kw) * n * P + (size_t)rr * P + oh * OW;
            for (uint ow = 0; ow < OW; ow++) {
                const int iw = (int)(ow * S + kw) - (int)pad;
                if (iw >= 0 && iw < (int)W) row[iw] += src[ow];
            }
        }
    }
}

/* out[r0 + rr][oc][p] = t[oc][rr·P + p] + b[oc] over n samples: the GEMM's (OC, n·P) result into
 * NCHW with the bias. One work-item per (sample, oc). */
__kernel void conv_out(__global const float *t, const uint OC, const uint P, const uint n, __global const float *params,
                       const uint b_off, const uint r0, __global float *out)
{
    const uint i = get_global_id(0);
    if (i >= n * OC) return;
    const uint rr = i / OC, oc = i % OC;
    const float b = params[b_off + oc];
    __global const float *src = t + (size_t)oc * n * P + (size_t)rr * P;
    __global float *dst = out + (((size_t)r0 + rr) * OC + oc) * P;
    for (uint p = 0; p < P; p++) dst[p] = src[p] + b;
}

/* t[oc][rr·P + p] = dy[r0 + rr][oc][p]: the layer's output gradient in the GEMMs' layout. */
__kernel void conv_dy(__global const float *dy, const uint OC, const uint P, const uint n, const uint r0,
                      __global float *t)
{
    const uint i = get_global_id(0);
    if (i >= n * OC) return;
    const uint rr = i / OC, oc = i % OC;
    __global const float *src = dy + (((size_t)r0 + rr) * OC + oc) * P;
    __global float *dst = t + (size_t)oc * n * P + (size_t)rr * P;
    for (uint p = 0; p < P; p++) dst[p] = src[p];
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

/* dx of max pooling when the windows do not overlap (stride >= window): each input element is in
 * one window at most, so each output writes its gradient to its arg-max alone, one work-item per
 * output, into a dx the host has zeroed. No two work-items write the same element. */
__kernel void maxpool_backward_disjoint(__global const float *dy, __global const int *arg, const uint planes,
                                        const uint H, const uint W, const uint OH, const uint OW,
                                        __global float *dx)
{
    const size_t i = get_global_id(0);
    if (i >= (size_t)planes * OH * OW) return;
    const size_t pl = i / ((size_t)OH * OW);
    dx[pl * H * W + (uint)arg[i]] = dy[i];
}
