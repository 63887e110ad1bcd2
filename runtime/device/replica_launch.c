/* replica_launch.c — what a replica runs and how its results come back: the kernel cache, the
 * kernel launches and CLBlast GEMMs the layers issue, the loss, the gradient's delivery to the host
 * layer by layer, and the probabilities. The model's passes that use them: layers/passes.c. */
#define _POSIX_C_SOURCE 200809L
#include "replica.h"
#include "testhooks.h"

#include <clblast_c.h>
#include <stdlib.h>
#include <string.h>

#define fault_fires cldp_replica_fault_fires
#define injected cldp_replica_injected

static CLBlastTranspose trans(int t) { return t ? CLBlastTransposeYes : CLBlastTransposeNo; }

cldp_status cldp_replica_kernel(cldp_replica *r, const char *name, cl_kernel *k)
{
    for (size_t i = 0; i < r->nkernels; i++)
        if (r->kernels[i].name == name || !strcmp(r->kernels[i].name, name)) {
            *k = r->kernels[i].k;
            return CLDP_OK;
        }
    REQUIRE(r->nkernels < sizeof r->kernels / sizeof *r->kernels, "%s: too many kernels (making %s)", r->name, name);
    cl_int err;
    cl_kernel made = clCreateKernel(r->program, name, &err);
    if (err == CL_INVALID_KERNEL_NAME && r->spatial) made = clCreateKernel(r->spatial, name, &err);
    if (err == CL_INVALID_KERNEL_NAME && r->dropout) made = clCreateKernel(r->dropout, name, &err);
    if (err != CL_SUCCESS)
        return cldp_fail(CLDP_ERR_OPENCL, "%s: clCreateKernel(%s) failed with %s", r->name, name, cldp_cl_error_name(err));
    size_t kmax = 0;
    if (clGetKernelWorkGroupInfo(made, r->dev->id, CL_KERNEL_WORK_GROUP_SIZE, sizeof kmax, &kmax, NULL) == CL_SUCCESS && kmax &&
        kmax < r->local_size) {
        clReleaseKernel(made);
        return cldp_fail(CLDP_ERR_OPENCL, "%s: kernel %s runs at most %zu work-items per group, fewer than the %zu every "
                         "launch uses; this device cannot run this layer kind", r->name, name, kmax, r->local_size);
    }
    r->kernels[r->nkernels].name = name;
    r->kernels[r->nkernels++].k = made;
    *k = made;
    return CLDP_OK;
}

/* Launches a kernel over n x rows items (1-D when rows is 1) with the replica's fixed work-group
 * size in the first dimension (the global size padded up to it; the kernels check bounds) and 1
 * in the second. A fixed size means each kernel is specialised once by drivers that compile per
 * work-group size (PoCL), not once per batch shape. */
cldp_status cldp_replica_launch_rows(cldp_replica *r, cl_kernel k, const char *name, size_t n, size_t rows)
{
    if (n == 0 || rows == 0) return CLDP_OK;
    size_t local[2] = {r->local_size, 1}, global[2] = {(n + local[0] - 1) / local[0] * local[0], rows};
    int inj = fault_fires(r, CLDP_FAULT_KERNEL);
    cl_int err = inj ? CL_OUT_OF_RESOURCES
                     : clEnqueueNDRangeKernel(r->queue, k, rows > 1 ? 2 : 1, NULL, global, local, 0, NULL,
                                              CLDP_REPLICA_EV(r, name, "kernel"));
    if (err != CL_SUCCESS)
        return cldp_fail(CLDP_ERR_OPENCL, "%s: clEnqueueNDRangeKernel(%s, %zu items) failed with %s%s", r->name, name,
                         n * rows, cldp_cl_error_name(err), injected(inj));
    return CLDP_OK;
}

cldp_status cldp_replica_run(cldp_replica *r, const char *name, const cldp_arg *args, size_t nargs, size_t n, size_t rows)
{
    cl_kernel k;
    TRY(cldp_replica_kernel(r, name, &k));
    for (size_t i = 0; i < nargs; i++) CL_CHECK(r->name, clSetKernelArg(k, (cl_uint)i, args[i].size, args[i].value));
    return cldp_replica_launch_rows(r, k, name, n, rows);
}

cldp_status cldp_replica_launch(cldp_replica *r, cl_kernel k, const char *name, size_t n)
{
    return cldp_replica_launch_rows(r, k, name, n, 1);
}

/* C = op(A)·op(B) (+ beta·C) in the shape the size table gives, through CLBlast with the
 * replica's scratch (sized for the same shapes). */
cldp_status cldp_replica_gemm(cldp_replica *r, const cldp_gemm_shape *G, cl_mem a, cl_mem b, float beta, cl_mem c)
{
    if (fault_fires(r, CLDP_FAULT_STALL)) cldp_sleep_ms(r->test.stall_ms);
    CLBlastStatusCode st;
    int inj = fault_fires(r, CLDP_FAULT_GEMM);
    cl_event *ev = CLDP_TRACING() ? cldp_replica_trace_ev(r, "gemm", "gemm", 1, 0) : NULL;
    if (inj)
        st = CLBlastOpenCLOutOfResources;
    else if (r->gemm_temp)
        st = CLBlastSgemmWithTempBuffer(CLBlastLayoutRowMajor, trans(G->trans_a), trans(G->trans_b), G->m, G->n, G->k,
                                        1.0f, a, G->a_off, G->lda, b, G->b_off, G->ldb, beta, c, G->c_off, G->ldc,
                                        &r->queue, ev, r->gemm_temp);
    else
        st = CLBlastSgemm(CLBlastLayoutRowMajor, trans(G->trans_a), trans(G->trans_b), G->m, G->n, G->k, 1.0f, a,
                          G->a_off, G->lda, b, G->b_off, G->ldb, beta, c, G->c_off, G->ldc, &r->queue, ev);
    if (st != CLBlastSuccess)
        return cldp_fail(CLDP_ERR_CLBLAST, "%s: CLBlastSgemm (%s, %zux%zux%zu) failed with %s (%d)%s", r->name, G->what,
                         G->m, G->n, G->k, cldp_clblast_error_name(st), (int)st, injected(inj));
    return CLDP_OK;
}

/* Runs the loss's kernel on the outputs (softmax_xent on logits and labels, or mse_loss on
 * outputs and targets): losses and flags, and d(outputs)*scale into delta[0]. */
cldp_status cldp_replica_loss_grad(cldp_replica *r, size_t rows, float scale)
{
    const cldp_layer_desc *last = &r->model->layers[r->model->nlayers - 1];
    cl_uint urows = (cl_uint)rows, classes = (cl_uint)last->out;
    int mse = r->model->loss == CLDP_LOSS_MSE;
    const char *name = mse ? "mse_loss" : "softmax_xent";
    cl_kernel k;
    TRY(cldp_replica_kernel(r, name, &k));
    ARG(k, 0, r->act[r->model->nlayers - 1]);
    cl_mem y = mse ? r->targets : r->labels;
    ARG(k, 1, y);
    ARG(k, 2, urows);
    ARG(k, 3, classes);
    ARG(k, 4, scale);
    ARG(k, 5, r->delta[0]);
    ARG(k, 6, r->loss);
    ARG(k, 7, r->correct);
    return cldp_replica_launch(r, k, name, rows);
}

cldp_status cldp_replica_loss(cldp_replica *r, size_t rows)
{
    return rows ? cldp_replica_loss_grad(r, rows, 1.0f) : CLDP_OK;
}

/* Starts copying layer l's finished gradient (W then b, contiguous) to the staging on the
 * transfer queue, after a marker on the compute queue: the copy overlaps the backward of the
 * layers below it wherever the device can copy and compute at once. */
cldp_status cldp_replica_stream_layer(cldp_replica *r, size_t l)
{
    const cldp_layer_desc *L = &r->model->layers[l];
    if (L->nparams == 0) return CLDP_OK; /* nothing to copy: the reducer's segment is empty */
    if (!r->xfer) {
        cl_int err;
        r->xfer = clCreateCommandQueue(r->ctx, r->dev->id, cldp_trace_profile_queues ? CL_QUEUE_PROFILING_ENABLE : 0, &err);
        if (err != CL_SUCCESS)
            return cldp_fail(CLDP_ERR_OPENCL, "%s: clCreateCommandQueue (transfers) failed with %s", r->name, cldp_cl_error_name(err));
    }
    cl_event done;
    CL_CHECK(r->name, clEnqueueMarkerWithWaitList(r->queue, 0, NULL, &done));
    clFlush(r->queue);
    size_t first = L->w_off, count = L->nparams;
    int inj = fault_fires(r, CLDP_FAULT_READ);
    cl_int err = inj ? CL_OUT_OF_RESOURCES
                     : clEnqueueReadBuffer(r->xfer, r->grads, CL_FALSE, first * sizeof(float), count * sizeof(float),
                                           r->stage + first, 1, &done, &r->layer_ev[l]);
    clReleaseEvent(done);
    cl_event *ev = err == CL_SUCCESS && CLDP_TRACING() ? cldp_replica_trace_ev(r, "grad copy", "transfer", 0, 1) : NULL;
    if (ev && clRetainEvent(r->layer_ev[l]) == CL_SUCCESS) *ev = r->layer_ev[l];
    if (err != CL_SUCCESS)
        return cldp_fail(CLDP_ERR_OPENCL, "%s: clEnqueueReadBuffer(gradients of a layer) failed with %s%s", r->name,
                         cldp_cl_error_name(err), injected(inj));
    clFlush(r->xfer);
    return CLDP_OK;
}

cldp_status cldp_replica_deliver_zero(cldp_replica *r)
{
    TRY(cldp_replica_release_grads(r));
    const float zero = 0.0f;
    CL_CHECK(r->name, clEnqueueFillBuffer(r->queue, r->grads, &zero, sizeof zero, 0, r->model->nparams * sizeof(float), 0, NULL, NULL));
    return CLDP_OK;
}

cldp_status cldp_replica_layer_grads(cldp_replica *r, size_t l, const float **grads)
{
    const cldp_layer_desc *L = &r->model->layers[l];
    if (r->streamed) {
        if (r->layer_ev[l]) {
            cl_int err = clWaitForEvents(1, &r->layer_ev[l]);
            clReleaseEvent(r->layer_ev[l]);
            r->layer_ev[l] = NULL;
            if (err != CL_SUCCESS)
                return cldp_fail(CLDP_ERR_OPENCL, "%s: copying the gradients of layer %zu failed with %s", r->name, l + 1,
                                 cldp_cl_error_name(err));
        }
        *grads = r->stage + L->w_off;
        return CLDP_OK;
    }
    /* not streamed: the whole vector arrives at once, on the first request */
    if (!r->ready) {
        float *mapped;
        if (r->zero_copy) TRY(cldp_replica_map_grads(r, &mapped));
        else TRY(cldp_replica_read_grads(r, r->stage));
        r->ready = 1;
    }
    *grads = (r->zero_copy ? r->grads_map : r->stage) + L->w_off;
    return CLDP_OK;
}

cldp_status cldp_replica_release_grads(cldp_replica *r)
{
    cl_int err = CL_SUCCESS;
    for (size_t l = 0; l < CLDP_MAX_LAYERS; l++)
        if (r->layer_ev[l]) { /* a pass that failed half-way: let its copies land first */
            cl_int e = clWaitForEvents(1, &r->layer_ev[l]);
            if (err == CL_SUCCESS) err = e;
            clReleaseEvent(r->layer_ev[l]);
            r->layer_ev[l] = NULL;
        }
    r->streamed = r->ready = 0;
    TRY(cldp_replica_unmap_grads(r));
    if (err != CL_SUCCESS)
        return cldp_fail(CLDP_ERR_OPENCL, "%s: an earlier gradient copy failed with %s", r->name, cldp_cl_error_name(err));
    return CLDP_OK;
}

cldp_status cldp_replica_probs(cldp_replica *r, size_t rows, const float **probs)
{
    *probs = r->out_host;
    if (rows == 0) return CLDP_OK;
    const cldp_model *m = r->model;
    cl_uint urows = (cl_uint)rows, classes = (cl_uint)m->layers[m->nlayers - 1].out;
    if (m->loss == CLDP_LOSS_MSE) { /* raw outputs */
        CL_CHECK(r->name, clEnqueueReadBuffer(r->queue, r->act[m->nlayers - 1], CL_TRUE, 0, rows * classes * sizeof(float),
                                              r->out_host, 0, NULL, NULL));
        return CLDP_OK;
    }
    cl_kernel k;
    TRY(cldp_replica_kernel(r, "softmax_rows", &k));
    ARG(k, 0, r->act[m->nlayers - 1]);
    ARG(k, 1, urows);
    ARG(k, 2, classes);
    ARG(k, 3, r->delta[0]);
    TRY(cldp_replica_launch(r, k, "softmax_rows", rows));
    CL_CHECK(r->name, clEnqueueReadBuffer(r->queue, r->delta[0], CL_TRUE, 0, rows * classes * sizeof(float), r->out_host, 0, NULL,
                                          CLDP_REPLICA_EV(r, "output read", "transfer")));
    return CLDP_OK;
}
