/* collective.c — the deterministic host tree reduction, and the public collective that runs it on
 * an application's own per-device cl_mem buffers (read to host staging, reduce, write back). */
#define _POSIX_C_SOURCE 200809L
#include "collective.h"
#include "reducer.h"
#include "tree.h"

#include <math.h>

#include <stdlib.h>
#include <stdio.h>
#include <string.h>


/* ---- the public collective ------------------------------------------------------------- */

/* Each call is one supervised run: every worker reads its rank's buffer into host staging and
 * delivers it to the piecewise reducer (reducer.h), the workers share the pieces, and each
 * writes the result back to its own buffer as soon as every piece is done. The sum is written in
 * place into rank 0's staging, piece by piece (a piece reads only its own range). */

struct cldp_collective {
    size_t n, count;
    cl_command_queue *queues; /* (n) retained */
    float **stage;            /* (n, count) host staging, one vector per rank */
    cldp_pool *pool;
    cldp_reducer *reducer;    /* one segment: the whole vector */
    char names[CLDP_MAX_RANKS][32];
    const char *name_ptr[CLDP_MAX_RANKS];
    /* the call in progress */
    const cl_mem *buffers;
    size_t offset, root;
    float scale;
    int broadcast;
};

void cldp_collective_destroy(cldp_collective *c)
{
    if (!c) return;
    cldp_pool_destroy(c->pool);
    cldp_reducer_destroy(c->reducer);
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
    REQUIRE(n <= CLDP_MAX_RANKS, "cldp_collective_create: %zu ranks, at most %d are supported", n, CLDP_MAX_RANKS);
    size_t bytes;
    REQUIRE(cldp_mul_size(count, sizeof(float), &bytes) == 0, "cldp_collective_create: count %zu overflows", count);
    for (size_t r = 0; r < n; r++) REQUIRE(queues[r], "cldp_collective_create: queue %zu is NULL", r);
    cldp_collective *c = cldp_calloc(1, sizeof *c, "collective");
    if (!c) return CLDP_ERR_HOST_MEMORY;
    c->n = n;
    c->count = count;
    c->queues = cldp_calloc(n, sizeof *c->queues, "collective queues");
    c->stage = cldp_calloc(n, sizeof *c->stage, "collective staging");
    cldp_status st = CLDP_ERR_HOST_MEMORY;
    if (!c->queues || !c->stage) goto fail;
    for (size_t r = 0; r < n; r++) {
        snprintf(c->names[r], sizeof c->names[r], "collective rank %zu", r);
        c->name_ptr[r] = c->names[r];
        c->stage[r] = cldp_malloc(bytes, "collective staging");
        if (!c->stage[r]) goto fail;
        if (clRetainCommandQueue(queues[r]) != CL_SUCCESS) {
            st = cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "cldp_collective_create: queue %zu is not a valid command queue", r);
            goto fail;
        }
        c->queues[r] = queues[r];
    }
    if ((st = cldp_reducer_create(&count, 1, n, &c->reducer)) != CLDP_OK) goto fail;
    if ((st = cldp_pool_create(n, &c->pool)) != CLDP_OK) goto fail;
    *out = c;
    return CLDP_OK;
fail:
    CLDP_KEEPING_ERROR(cldp_collective_destroy(c));
    return st;
}

/* The scaled sum of a block, into rank 0's staging (its range is read by this piece only). */
static int store_block(void *ctx, size_t at, const float *sum, size_t len)
{
    cldp_collective *c = ctx;
    float *out = c->stage[0] + at;
    if (c->scale != 1.0f)
        for (size_t i = 0; i < len; i++) out[i] = sum[i] * c->scale;
    else if (sum != out)
        memcpy(out, sum, len * sizeof(float));
    return 0;
}

static cldp_status coll_job(cldp_run *run, void *ctx, size_t r)
{
    cldp_collective *c = ctx;
    size_t bytes = c->count * sizeof(float), off = c->offset * sizeof(float);
    if (c->broadcast) {
        /* the root's buffer reaches the host first; the others wait for it, then write it */
        if (r == c->root) {
            CL_CHECK(c->names[r], clEnqueueReadBuffer(c->queues[r], c->buffers[r], CL_TRUE, off, bytes, c->stage[r], 0, NULL, NULL));
            cldp_reducer_deliver(c->reducer, run, r, 0, c->stage[r]);
            return CLDP_OK;
        }
        if (!cldp_reducer_wait_delivered(c->reducer, run, c->root, 0)) return CLDP_OK; /* cancelled */
        CL_CHECK(c->names[r], clEnqueueWriteBuffer(c->queues[r], c->buffers[r], CL_TRUE, off, bytes, c->stage[c->root], 0, NULL, NULL));
        return CLDP_OK;
    }
    CL_CHECK(c->names[r], clEnqueueReadBuffer(c->queues[r], c->buffers[r], CL_TRUE, off, bytes, c->stage[r], 0, NULL, NULL));
    if (!cldp_reducer_deliver(c->reducer, run, r, 0, c->stage[r]) || !cldp_reducer_work(c->reducer, run, 1))
        return CLDP_OK; /* cancelled */
    for (size_t p = 0; p < cldp_reducer_pieces(c->reducer); p++)
        if (!cldp_reducer_wait(c->reducer, run, p)) return CLDP_OK;
    CL_CHECK(c->names[r], clEnqueueWriteBuffer(c->queues[r], c->buffers[r], CL_TRUE, off, bytes, c->stage[0], 0, NULL, NULL));
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

static cldp_status coll_run(cldp_collective *c, const char *phase)
{
    cldp_reducer_reset(c->reducer, c->n, store_block, NULL, c);
    const cldp_run_desc d = {coll_job, c, NULL, phase, c->name_ptr, 0, NULL};
    cldp_run *run;
    cldp_status st = cldp_pool_run(c->pool, &d, &run);
    cldp_run_release(run);
    return st;
}

cldp_status cldp_collective_allreduce(cldp_collective *c, const cl_mem *buffers, size_t offset, float scale)
{
    TRY(check_buffers(c, buffers, offset));
    REQUIRE(isfinite(scale), "cldp_collective_allreduce: scale %g is not finite", (double)scale);
    c->buffers = buffers;
    c->offset = offset;
    c->scale = scale;
    c->broadcast = 0;
    return coll_run(c, "an all-reduce");
}

cldp_status cldp_collective_broadcast(cldp_collective *c, const cl_mem *buffers, size_t offset, size_t root)
{
    TRY(check_buffers(c, buffers, offset));
    REQUIRE(root < c->n, "cldp_collective_broadcast: root %zu is not a rank (there are %zu)", root, c->n);
    c->buffers = buffers;
    c->offset = offset;
    c->root = root;
    c->broadcast = 1;
    return coll_run(c, "a broadcast");
}
