/* dropout.cl — inverted dropout from a counter-based hash: element e of global row g (row0 plus
 * the row within the pass) is kept when the upper 32 bits of mix64(key + (g·2^24 + e)·golden)
 * are at least `threshold` (mix64: splitmix64's finaliser, the same as cldp_mix64 in
 * runtime/layers.h), and a kept value is multiplied by `scale` = 1/(1 - P). No state: the mask
 * depends on (key, g, e) alone, so the backward pass recomputes it. Plain OpenCL C 1.2 with
 * 64-bit integers (ulong), no doubles. threshold 0 and scale 1 is the identity (inference). */

ulong dropout_mix64(ulong z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
    return z ^ (z >> 31);
}

float dropout_factor(const ulong key, const ulong row0, const uint per_row, const uint threshold,
                     const float scale, const size_t i)
{
    const ulong g = row0 + i / per_row, e = i % per_row;
    const uint u = (uint)(dropout_mix64(key + ((g << 24) + e) * 0x9E3779B97F4A7C15UL) >> 32);
    return u >= threshold ? scale : 0.0f;
}

/* y[i] = x[i]·factor(i) over n = rows·per_row elements. */
__kernel void dropout_forward(__global const float *x, __global float *y, const uint n, const uint per_row,
                              const ulong key, const ulong row0, const uint threshold, const float scale)
{
    const size_t i = get_global_id(0);
    if (i >= n) return;
    y[i] = x[i] * dropout_factor(key, row0, per_row, threshold, scale, i);
}

/* d[i] *= factor(i), in place (the backward pass: dL/dx from dL/dy). */
__kernel void dropout_backward(__global float *d, const uint n, const uint per_row, const ulong key, const ulong row0,
                               const uint threshold, const float scale)
{
    const size_t i = get_global_id(0);
    if (i >= n) return;
    d[i] *= dropout_factor(key, row0, per_row, threshold, scale, i);
}
