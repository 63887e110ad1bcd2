/* collective.c — the deterministic host tree reduction, and the public collective that runs it on
 * an application's own per-device cl_mem buffers (read to host staging, reduce, write back). */
#define _POSIX_C_SOURCE 200809L
#include "collective.h"
#include "workers.h"

#include <stdlib.h>
#include <stdio.h>
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

/* ---- the public collective ------------------------------------------------------------- */

#define COLL_MAX_RANKS 64 /* ranks of one collective */
#define COLL_BLOCK 256    /* floats per block of the reduction: every rank's block stays in L1 */

typedef enum { OP_READ, OP_REDUCE, OP_WRITE } coll_op;

struct cldp_collective {
    size_t n, count;
    cl_command_queue *queues; /* (n) retained */
    float **stage;            /* (n, count) host staging, one vector per rank */
    cldp_pool *pool;
    /* the call in progress */
    coll_op op;
    const cl_mem *buffers;
    size_t offset, root;
    float scale;
    int broadcast;
};

void cldp_collective_destroy(cldp_collective *c)
{
    if (!c) return;
    cldp_pool_destroy(c->pool);
    for (size_t r = 0; r < c->n; r++) {
        if (c->queues && c->queues[r]) clReleaseCommandQueue(c->queues[r]);
        if (c->stage) free(c->stage[r]);
    }
    free(c->queues);
    free(c->stage);
    free(c);
}

cldp_status cldp_collective_create(const cl_command_queue *queues, size_t n, size_t count,
                                   cldp_collective **out)
{
    REQUIRE(out, "cldp_collective_create: out is NULL");
    *out = NULL;
    REQUIRE(queues, "cldp_collective_create: queues is NULL");
    REQUIRE(n > 0 && count > 0, "cldp_collective_create: n (%zu) and count (%zu) must be > 0", n, count);
    REQUIRE(n <= COLL_MAX_RANKS, "cldp_collective_create: %zu ranks, at most %d are supported", n, COLL_MAX_RANKS);
    size_t bytes;
    REQUIRE(cldp_mul_size(count, sizeof(float), &bytes) == 0, "cldp_collective_create: count %zu overflows", count);
    for (size_t r = 0; r < n; r++) REQUIRE(queues[r], "cldp_collective_create: queue %zu is NULL", r);
    cldp_collective *c = cldp_calloc(1, sizeof *c, "collective");
    if (!c) return CLDP_ERR_HOST_MEMORY;
    c->n = n;
    c->count = count;
    c->queues = cldp_calloc(n, sizeof *c->queues, "collective queues");
    c->stage = cldp_calloc(n, sizeof *c->stage, "collective staging");
    if (!c->queues || !c->stage) goto oom;
    for (size_t r = 0; r < n; r++) {
        c->stage[r] = cldp_malloc(bytes, "collective staging");
        if (!c->stage[r]) goto oom;
        if (clRetainCommandQueue(queues[r]) != CL_SUCCESS) {
            cldp_collective_destroy(c);
            return cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "cldp_collective_create: queue %zu is not a valid command queue", r);
        }
        c->queues[r] = queues[r];
    }
    cldp_status st = cldp_pool_create(n, &c->pool);
    if (st != CLDP_OK) {
        cldp_collective_destroy(c);
        return st;
    }
    *out = c;
    return CLDP_OK;
oom:
    cldp_collective_destroy(c);
    return CLDP_ERR_HOST_MEMORY;
}

static cldp_status coll_job(void *ctx, size_t r)
{
    cldp_collective *c = ctx;
    char who[32];
    snprintf(who, sizeof who, "collective rank %zu", r);
    size_t bytes = c->count * sizeof(float), off = c->offset * sizeof(float);
    switch (c->op) {
    case OP_READ:
        if (c->broadcast && r != c->root) return CLDP_OK;
        CL_CHECK(who, clEnqueueReadBuffer(c->queues[r], c->buffers[r], CL_TRUE, off, bytes, c->stage[r], 0, NULL, NULL));
        return CLDP_OK;
    case OP_REDUCE: {
        /* block by block, out of place: each staged vector is read once, and the scaled sum is
         * written once, into rank 0's staging (the bits of cldp_tree_reduce, then the scale) */
        size_t b, e;
        cldp_chunk(c->count, c->n, r, &b, &e);
        float scratch[(COLL_MAX_RANKS + 1) / 2 * COLL_BLOCK];
        const float *src[COLL_MAX_RANKS];
        for (size_t blk = b; blk < e; blk += COLL_BLOCK) {
            size_t len = e - blk < COLL_BLOCK ? e - blk : COLL_BLOCK;
            for (size_t k = 0; k < c->n; k++) src[k] = c->stage[k] + blk;
            const float *sum = cldp_tree_sum(src, c->n, len, scratch);
            float *out = c->stage[0] + blk;
            if (c->scale != 1.0f)
                for (size_t i = 0; i < len; i++) out[i] = sum[i] * c->scale;
            else if (sum != out)
                memcpy(out, sum, len * sizeof(float));
        }
        return CLDP_OK;
    }
    case OP_WRITE: {
        const float *src = c->stage[c->broadcast ? c->root : 0];
        if (c->broadcast && r == c->root) return CLDP_OK;
        CL_CHECK(who, clEnqueueWriteBuffer(c->queues[r], c->buffers[r], CL_TRUE, off, bytes, src, 0, NULL, NULL));
        return CLDP_OK;
    }
    }
    return CLDP_OK;
}

static cldp_status check_buffers(cldp_collective *c, const cl_mem *buffers, size_t offset)
{
    REQUIRE(c && buffers, "collective: handle or buffers is NULL");
    for (size_t r = 0; r < c->n; r++) {
        REQUIRE(buffers[r], "collective: buffer of rank %zu is NULL", r);
        size_t size = 0;
        cl_int err = clGetMemObjectInfo(buffers[r], CL_MEM_SIZE, sizeof size, &size, NULL);
        REQUIRE(err == CL_SUCCESS, "collective: buffer of rank %zu is not a valid cl_mem (%s)", r, cldp_cl_error_name(err));
        REQUIRE(offset <= size / sizeof(float) && c->count <= size / sizeof(float) - offset,
                "collective: buffer of rank %zu holds %zu bytes, too small for %zu floats at offset %zu",
                r, size, c->count, offset);
    }
    return CLDP_OK;
}

cldp_status cldp_collective_allreduce(cldp_collective *c, const cl_mem *buffers, size_t offset, float scale)
{
    TRY(check_buffers(c, buffers, offset));
    c->buffers = buffers;
    c->offset = offset;
    c->scale = scale;
    c->broadcast = 0;
    c->op = OP_READ;
    TRY(cldp_pool_run(c->pool, coll_job, c));
    c->op = OP_REDUCE;
    TRY(cldp_pool_run(c->pool, coll_job, c));
    c->op = OP_WRITE;
    return cldp_pool_run(c->pool, coll_job, c);
}

cldp_status cldp_collective_broadcast(cldp_collective *c, const cl_mem *buffers, size_t offset, size_t root)
{
    TRY(check_buffers(c, buffers, offset));
    REQUIRE(root < c->n, "cldp_collective_broadcast: root %zu is not a rank (there are %zu)", root, c->n);
    c->buffers = buffers;
    c->offset = offset;
    c->root = root;
    c->broadcast = 1;
    c->op = OP_READ;
    TRY(cldp_pool_run(c->pool, coll_job, c));
    c->op = OP_WRITE;
    return cldp_pool_run(c->pool, coll_job, c);
}
