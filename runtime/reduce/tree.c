/* tree.c — the tree primitives of every reduction in cldp (tree.h). */
#include "tree.h"

#include <string.h>

void cldp_chunk(size_t count, size_t n, size_t rank, size_t *begin, size_t *end)
{
    size_t lines = (count + 15) / 16;
    size_t b = lines * rank / n * 16, e = lines * (rank + 1) / n * 16;
    *begin = b < count ? b : count;
    *end = e < count ? e : count;
}

void cldp_tree_reduce(float *const *bufs, size_t n, size_t begin, size_t end)
{
    for (size_t stride = 1; stride < n; stride *= 2)
        for (size_t r = 0; r + stride < n; r += 2 * stride) {
            float *restrict a = bufs[r];
            const float *restrict b = bufs[r + stride];
            for (size_t i = begin; i < end; i++) a[i] += b[i];
        }
}

const float *cldp_tree_sum(const float *const *src, size_t n, size_t len, float *scratch)
{
    if (n == 1) return src[0];
    /* the tree's first level, out of place: partial j = src[2j] + src[2j+1] (or src[2j] alone) */
    size_t h = (n + 1) / 2;
    for (size_t j = 0; j < h; j++) {
        float *restrict s = scratch + j * len;
        const float *restrict a = src[2 * j];
        if (2 * j + 1 < n) {
            const float *restrict b = src[2 * j + 1];
            for (size_t i = 0; i < len; i++) s[i] = a[i] + b[i];
        } else {
            memcpy(s, a, len * sizeof(float));
        }
    }
    /* the levels above, in place on the partials: stride 2k of the sources is stride k here */
    for (size_t stride = 1; stride < h; stride *= 2)
        for (size_t j = 0; j + stride < h; j += 2 * stride) {
            float *restrict a = scratch + j * len;
            const float *restrict b = scratch + (j + stride) * len;
            for (size_t i = 0; i < len; i++) a[i] += b[i];
        }
    return scratch;
}
