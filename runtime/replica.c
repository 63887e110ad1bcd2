/* replica.c — a model replica on one device: buffers, kernels, and the dense layers' forward and
 * backward passes (y = x·Wᵀ + b; dW = dYᵀ·X; dX = dY·W) through CLBlast and cl/layers.cl. */
#define _POSIX_C_SOURCE 200809L
#include "replica.h"
#include "config.h"
#include "program.h"
#include "testhooks.h"
#include "tuning.h"

#include <clblast_c.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

extern const unsigned char cldp_cl_layers[];

/* Fires an armed fault of `kind` once: returns 1 when the caller must fail as if its call had. */
static int fault_fires(cldp_replica *r, cldp_fault_kind kind)
{
    if (!CLDP_TEST_ARMED() || r->fault != kind) return 0;
    r->fault = CLDP_FAULT_NONE;
    return 1;
}

static const char *injected(int yes) { return yes ? " [injected fault]" : ""; }

/* An injected stall: the worker sleeps as it would inside a driver call that hangs. */
static void stall(const cldp_replica *r)
{
    struct timespec ts = {(time_t)(r->stall_ms / 1000), (long)(fmod(r->stall_ms, 1000.0) * 1e6)};
    while (nanosleep(&ts, &ts) != 0) {}
}

/* ---- creation -------------------------------------------------------------------------- */

size_t cldp_replica_bytes(const cldp_model *m, size_t rows) { return cldp_model_replica_floats(m, rows) * sizeof(float); }

static CLBlastTranspose trans(int t) { return t ? CLBlastTransposeYes : CLBlastTransposeNo; }

static cldp_status make_buffer(cldp_replica *r, size_t floats, const char *what, cl_mem *out)
{
    cl_int err;
    size_t bytes = (floats ? floats : 1) * sizeof(float);
    if (bytes > r->dev->info.max_alloc_bytes)
        return cldp_fail(CLDP_ERR_DEVICE_MEMORY,
                         "%s: %s needs %zu bytes in one buffer but the device allows at most %llu "
                         "(CL_DEVICE_MAX_MEM_ALLOC_SIZE); use a smaller batch or model, or leave "
                         "this device out with --devices/CLDP_DEVICES",
                         r->name, what, bytes, (unsigned long long)r->dev->info.max_alloc_bytes);
    *out = NULL;
    if (cldp_test_device_alloc_fails()) err = CL_MEM_OBJECT_ALLOCATION_FAILURE; /* tests only */
    else *out = clCreateBuffer(r->ctx, CL_MEM_READ_WRITE, bytes, NULL, &err);
    if (err != CL_SUCCESS)
        return cldp_fail(cldp_cl_alloc_status(err),
                         "%s: clCreateBuffer(%s, %zu bytes) failed with %s", r->name, what, bytes, cldp_cl_error_name(err));
    r->device_bytes += bytes;
    return CLDP_OK;
}

static cldp_status make_kernel(cldp_replica *r, const char *name, cl_kernel *out)
{
    cl_int err;
    *out = clCreateKernel(r->program, name, &err);
    if (err != CL_SUCCESS)
        return cldp_fail(CLDP_ERR_OPENCL, "%s: clCreateKernel(%s) failed with %s", r->name, name, cldp_cl_error_name(err));
    return CLDP_OK;
}

/* CLBlast's scratch for the GEMMs of a pass at `rows` rows; the largest of them. */
static cldp_status size_gemm_temp(cldp_replica *r, size_t rows, size_t *bytes)
{
    const cldp_model *m = r->model;
    size_t need = 0;
    for (size_t l = 0; l < m->nlayers; l++) {
        cldp_layer_size ls;
        cldp_layer_size_of(m, l, rows, &ls);
        for (int g = 0; g < (r->forward_only ? 1 : CLDP_GEMM_COUNT); g++) {
            const cldp_gemm_shape *G = &ls.gemm[g];
            size_t s = 0;
            CLBlastSGemmTempBufferSize(CLBlastLayoutRowMajor, trans(G->trans_a), trans(G->trans_b), G->m, G->n, G->k,
                                       G->a_off, G->lda, G->b_off, G->ldb, G->c_off, G->ldc, &r->queue, &s);
            need = s > need ? s : need;
        }
    }
    *bytes = need;
    return CLDP_OK;
}

/* Replicas alive in the process. CLBlast caches a program per (context, device, routine) and
 * never lets go of it, which keeps every destroyed replica's context alive until exit: 3.5 MB of
 * host memory per replica on PoCL, a whole driver context on a GPU, for each trainer created and
 * destroyed. So the cache is emptied when the last replica goes; not at every replica, which would
 * make the live ones recompile. */
static _Atomic size_t live_replicas;

void cldp_replica_destroy(cldp_replica *r)
{
    if (!r) return;
    cldp_replica_release_grads(r);
    if (r->queue) clFinish(r->queue);
    if (r->xfer) {
        clFinish(r->xfer);
        clReleaseCommandQueue(r->xfer);
    }
    if (r->stage_buf) {
        if (r->stage) clEnqueueUnmapMemObject(r->queue, r->stage_buf, r->stage, 0, NULL, NULL);
        clFinish(r->queue);
    } else {
        free(r->stage);
    }
    cl_mem *mems[] = {&r->params, &r->grads, &r->x, &r->delta[0], &r->delta[1], &r->labels,
                      &r->loss, &r->correct, &r->gemm_temp, &r->stage_buf};
    for (size_t i = 0; i < sizeof mems / sizeof *mems; i++)
        if (*mems[i]) clReleaseMemObject(*mems[i]);
    for (size_t l = 0; l < CLDP_MAX_LAYERS; l++)
        if (r->act[l]) clReleaseMemObject(r->act[l]);
    cl_kernel ks[] = {r->k_bias_act, r->k_act_backward, r->k_softmax_xent, r->k_softmax_rows, r->k_bias_grad};
    for (size_t i = 0; i < sizeof ks / sizeof *ks; i++)
        if (ks[i]) clReleaseKernel(ks[i]);
    if (r->program) clReleaseProgram(r->program);
    if (r->queue) clReleaseCommandQueue(r->queue);
    if (r->ctx) clReleaseContext(r->ctx);
    free(r->loss_host);
    free(r->correct_host);
    free(r->labels_host);
    free(r->x_host);
    free(r->out_host);
    free(r);
    if (atomic_fetch_sub(&live_replicas, 1) == 1) CLBlastClearCache();
}

static cldp_status make_row_buffers(cldp_replica *r);

/* Host memory the gradients are copied into, where they are copied at all: pinned (mapped for the
 * replica's life) unless CLDP_STAGING=copy asks for plain memory. A driver that cannot pin that
 * much gets plain memory instead: slower transfers, same results. */
static cldp_status make_staging(cldp_replica *r)
{
    size_t bytes = (r->model->nparams ? r->model->nparams : 1) * sizeof(float);
    if (r->staging == CLDP_STAGING_PINNED) {
        cl_int err = CL_OUT_OF_RESOURCES;
        if (!cldp_test_device_alloc_fails())
            r->stage_buf = clCreateBuffer(r->ctx, CL_MEM_READ_WRITE | CL_MEM_ALLOC_HOST_PTR, bytes, NULL, &err);
        if (err == CL_SUCCESS)
            r->stage = clEnqueueMapBuffer(r->queue, r->stage_buf, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, 0, bytes, 0, NULL,
                                          NULL, &err);
        if (err == CL_SUCCESS && r->stage) return CLDP_OK;
        r->stage = NULL;
        if (r->stage_buf) clReleaseMemObject(r->stage_buf);
        r->stage_buf = NULL;
        r->staging = CLDP_STAGING_HOST;
    }
    if (r->staging == CLDP_STAGING_HOST && !(r->stage = cldp_malloc(bytes, "gradient staging")))
        return CLDP_ERR_HOST_MEMORY;
    return CLDP_OK;
}

static cldp_status replica_init(cldp_replica *r)
{
    const cldp_model *m = r->model;
    cl_int err;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)r->dev->platform, 0};
    /* the test hook fails these as a driver out of memory would */
    if (cldp_test_device_alloc_fails()) err = CL_OUT_OF_HOST_MEMORY;
    else r->ctx = clCreateContext(props, 1, &r->dev->id, NULL, NULL, &err);
    if (err != CL_SUCCESS) return cldp_fail(cldp_cl_alloc_status(err), "%s: clCreateContext failed with %s", r->name, cldp_cl_error_name(err));
    TRY(cldp_tuning_apply(r->dev->id, r->dev->info.name, r->dev->info.driver_version, r->name));
    if (cldp_test_device_alloc_fails()) err = CL_OUT_OF_RESOURCES;
    else r->queue = clCreateCommandQueue(r->ctx, r->dev->id, 0, &err);
    if (err != CL_SUCCESS) return cldp_fail(cldp_cl_alloc_status(err), "%s: clCreateCommandQueue failed with %s", r->name, cldp_cl_error_name(err));
    TRY(cldp_build_program(r->ctx, r->dev->id, r->name, (const char *)cldp_cl_layers, "", &r->program));
    TRY(make_kernel(r, "bias_act", &r->k_bias_act));
    TRY(make_kernel(r, "act_backward", &r->k_act_backward));
    TRY(make_kernel(r, "softmax_xent", &r->k_softmax_xent));
    TRY(make_kernel(r, "softmax_rows", &r->k_softmax_rows));
    TRY(make_kernel(r, "bias_grad", &r->k_bias_grad));
    /* one work-group size for every kernel: 64, or less where the device or a kernel allows less */
    size_t local = 64, dev_max = 0;
    clGetDeviceInfo(r->dev->id, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof dev_max, &dev_max, NULL);
    if (dev_max && dev_max < local) local = dev_max;
    cl_kernel ks[] = {r->k_bias_act, r->k_act_backward, r->k_softmax_xent, r->k_softmax_rows, r->k_bias_grad};
    for (size_t i = 0; i < sizeof ks / sizeof *ks; i++) {
        size_t kmax = 0;
        if (clGetKernelWorkGroupInfo(ks[i], r->dev->id, CL_KERNEL_WORK_GROUP_SIZE, sizeof kmax, &kmax, NULL) == CL_SUCCESS &&
            kmax && kmax < local)
            local = kmax;
    }
    r->local_size = local;

    TRY(make_buffer(r, m->nparams, "parameters", &r->params));
    /* zeros until the first write, so the warm-up never computes on uninitialised memory
     * (valgrind saw softmax_xent and act_backward branch on it) */
    const float zero = 0.0f;
    CL_CHECK(r->name, clEnqueueFillBuffer(r->queue, r->params, &zero, sizeof zero, 0, m->nparams * sizeof(float), 0, NULL, NULL));
    if (!r->forward_only) {
        TRY(make_buffer(r, m->nparams, "gradients", &r->grads));
        TRY(make_staging(r));
    }
    return make_row_buffers(r);
}

static cldp_status make_row_buffers(cldp_replica *r)
{
    const cldp_model *m = r->model;
    size_t rows = r->max_rows, width = cldp_model_max_width(m);
    TRY(make_buffer(r, rows * m->inputs, "input batch", &r->x));
    for (size_t l = 0; l < m->nlayers; l++) TRY(make_buffer(r, rows * m->layers[l].out, "activations", &r->act[l]));
    /* an inference replica keeps only its probabilities there, and nothing of a backward pass */
    TRY(make_buffer(r, rows * (r->forward_only ? cldp_model_outputs(m) : width), "layer gradients", &r->delta[0]));
    if (!r->forward_only) {
        TRY(make_buffer(r, rows * width, "layer gradients", &r->delta[1]));
        TRY(make_buffer(r, rows, "labels", &r->labels));
        TRY(make_buffer(r, rows, "losses", &r->loss));
        TRY(make_buffer(r, rows, "correct flags", &r->correct));
    }
    TRY(size_gemm_temp(r, rows, &r->gemm_temp_bytes));
    if (r->gemm_temp_bytes) TRY(make_buffer(r, (r->gemm_temp_bytes + 3) / 4, "CLBlast scratch", &r->gemm_temp));
    return CLDP_OK;
}

static cldp_status replica_create(const cldp_dev *dev, const cldp_model *m, size_t max_rows, int forward_only, cldp_replica **out)
{
    REQUIRE(dev && m && out && max_rows > 0, "cldp_replica_create: bad arguments");
    REQUIRE(m->nlayers > 0, "the model has no layers: add at least one with cldp_model_add_dense");
    *out = NULL;
    cldp_replica *r = cldp_calloc(1, sizeof *r, "replica");
    if (!r) return CLDP_ERR_HOST_MEMORY;
    atomic_fetch_add(&live_replicas, 1); /* before CLBlast first sees its context */
    r->dev = dev;
    r->model = m;
    r->max_rows = max_rows;
    r->forward_only = forward_only;
    snprintf(r->name, sizeof r->name, "device %u:%u (%s)", dev->info.platform_index, dev->info.device_index, dev->info.name);
    const cldp_config *cfg;
    cldp_status st = cldp_config_get(&cfg);
    if (cfg->staging == CLDP_CFG_STAGING_COPY) r->staging = CLDP_STAGING_HOST;
    else if (cfg->staging == CLDP_CFG_STAGING_PINNED) r->staging = CLDP_STAGING_PINNED;
    else r->staging = dev->info.host_unified_memory ? CLDP_STAGING_ZERO_COPY : CLDP_STAGING_PINNED;
    r->zero_copy = r->staging == CLDP_STAGING_ZERO_COPY;
    r->overlap = cfg->overlap;
    size_t outputs = cldp_model_outputs(m);
    r->loss_host = cldp_calloc(max_rows, sizeof *r->loss_host, "losses");
    r->correct_host = cldp_calloc(max_rows, sizeof *r->correct_host, "correct flags");
    r->labels_host = cldp_calloc(max_rows, sizeof *r->labels_host, "labels");
    r->x_host = cldp_calloc(max_rows, m->inputs * sizeof *r->x_host, "input rows");
    r->out_host = cldp_calloc(max_rows, outputs * sizeof *r->out_host, "outputs");
    if (st == CLDP_OK && (!r->loss_host || !r->correct_host || !r->labels_host || !r->x_host || !r->out_host))
        st = CLDP_ERR_HOST_MEMORY;
    if (st == CLDP_OK) st = replica_init(r);
    r->zero_copy = r->staging == CLDP_STAGING_ZERO_COPY; /* pinned may have fallen back to host */
    if (st != CLDP_OK) {
        cldp_replica_destroy(r);
        return st;
    }
    *out = r;
    return CLDP_OK;
}

cldp_status cldp_replica_create(const cldp_dev *dev, const cldp_model *m, size_t max_rows, cldp_replica **out)
{
    return replica_create(dev, m, max_rows, 0, out);
}

cldp_status cldp_replica_create_forward(const cldp_dev *dev, const cldp_model *m, size_t max_rows, cldp_replica **out)
{
    return replica_create(dev, m, max_rows, 1, out);
}

/* ---- passes ---------------------------------------------------------------------------- */

/* Launches a 1-D kernel over n items with the replica's fixed work-group size (the global size
 * padded up to it; the kernels check bounds). A fixed size means each kernel is specialised
 * once by drivers that compile per work-group size (PoCL), not once per batch shape. */
static cldp_status launch(cldp_replica *r, cl_kernel k, const char *name, size_t n)
{
    if (n == 0) return CLDP_OK;
    size_t local = r->local_size, global = (n + local - 1) / local * local;
    int inj = fault_fires(r, CLDP_FAULT_KERNEL);
    cl_int err = inj ? CL_OUT_OF_RESOURCES : clEnqueueNDRangeKernel(r->queue, k, 1, NULL, &global, &local, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return cldp_fail(CLDP_ERR_OPENCL, "%s: clEnqueueNDRangeKernel(%s, %zu items) failed with %s%s", r->name, name, n,
                         cldp_cl_error_name(err), injected(inj));
    return CLDP_OK;
}

#define ARG(k, i, v) CL_CHECK(r->name, clSetKernelArg((k), (i), sizeof(v), &(v)))

/* C = op(A)·op(B) (+ beta·C) in the shape the size table gives, through CLBlast with the
 * replica's scratch (sized for the same shapes). */
static cldp_status gemm(cldp_replica *r, const cldp_gemm_shape *G, cl_mem a, cl_mem b, float beta, cl_mem c)
{
    if (fault_fires(r, CLDP_FAULT_STALL)) stall(r);
    CLBlastStatusCode st;
    int inj = fault_fires(r, CLDP_FAULT_GEMM);
    if (inj)
        st = CLBlastOpenCLOutOfResources;
    else if (r->gemm_temp)
        st = CLBlastSgemmWithTempBuffer(CLBlastLayoutRowMajor, trans(G->trans_a), trans(G->trans_b), G->m, G->n, G->k,
                                        1.0f, a, G->a_off, G->lda, b, G->b_off, G->ldb, beta, c, G->c_off, G->ldc,
                                        &r->queue, NULL, r->gemm_temp);
    else
        st = CLBlastSgemm(CLBlastLayoutRowMajor, trans(G->trans_a), trans(G->trans_b), G->m, G->n, G->k, 1.0f, a,
                          G->a_off, G->lda, b, G->b_off, G->ldb, beta, c, G->c_off, G->ldc, &r->queue, NULL);
    if (st != CLBlastSuccess)
        return cldp_fail(CLDP_ERR_CLBLAST, "%s: CLBlastSgemm (%s, %zux%zux%zu) failed with %s (%d)%s", r->name, G->what,
                         G->m, G->n, G->k, cldp_clblast_error_name(st), (int)st, injected(inj));
    return CLDP_OK;
}

cldp_status cldp_replica_write_params(cldp_replica *r, const float *p, size_t begin, size_t end)
{
    return cldp_replica_write_params_async(r, p, begin, end, CL_TRUE);
}

cldp_status cldp_replica_finish(cldp_replica *r)
{
    CL_CHECK(r->name, clFinish(r->queue));
    return CLDP_OK;
}

cldp_status cldp_replica_write_params_async(cldp_replica *r, const float *p, size_t begin, size_t end, int blocking)
{
    if (end <= begin) return CLDP_OK;
    if (fault_fires(r, CLDP_FAULT_STALL_WRITE)) stall(r);
    int inj = fault_fires(r, CLDP_FAULT_WRITE);
    cl_int err = inj ? CL_OUT_OF_RESOURCES
                     : clEnqueueWriteBuffer(r->queue, r->params, blocking ? CL_TRUE : CL_FALSE, begin * sizeof(float),
                                            (end - begin) * sizeof(float), p + begin, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return cldp_fail(CLDP_ERR_OPENCL, "%s: clEnqueueWriteBuffer(parameters) failed with %s%s", r->name,
                         cldp_cl_error_name(err), injected(inj));
    return CLDP_OK;
}

cldp_status cldp_replica_load(cldp_replica *r, const float *x, const int32_t *labels, size_t rows)
{
    if (rows == 0) return CLDP_OK;
    REQUIRE(rows <= r->max_rows, "%s: cldp_replica_load: %zu rows, the replica holds %zu", r->name, rows, r->max_rows);
    size_t xb = rows * r->model->inputs * sizeof(float);
    memcpy(r->x_host, x, xb); /* the caller's memory is read here, never later by the driver */
    CL_CHECK(r->name, clEnqueueWriteBuffer(r->queue, r->x, CL_FALSE, 0, xb, r->x_host, 0, NULL, NULL));
    if (labels) {
        memcpy(r->labels_host, labels, rows * sizeof(int32_t));
        CL_CHECK(r->name, clEnqueueWriteBuffer(r->queue, r->labels, CL_FALSE, 0, rows * sizeof(int32_t), r->labels_host, 0, NULL, NULL));
    }
    return CLDP_OK;
}

cldp_status cldp_replica_forward(cldp_replica *r, size_t rows)
{
    const cldp_model *m = r->model;
    if (rows == 0) return CLDP_OK;
    cl_uint urows = (cl_uint)rows;
    for (size_t l = 0; l < m->nlayers; l++) {
        const cldp_layer_desc *L = &m->layers[l];
        cl_mem in = l == 0 ? r->x : r->act[l - 1];
        cldp_layer_size ls;
        cldp_layer_size_of(m, l, rows, &ls);
        TRY(gemm(r, &ls.gemm[CLDP_GEMM_FORWARD], in, r->params, 0.0f, r->act[l]));
        cl_uint cols = (cl_uint)L->out, boff = (cl_uint)L->b_off;
        cl_int act = (cl_int)L->act;
        ARG(r->k_bias_act, 0, r->act[l]);
        ARG(r->k_bias_act, 1, urows);
        ARG(r->k_bias_act, 2, cols);
        ARG(r->k_bias_act, 3, r->params);
        ARG(r->k_bias_act, 4, boff);
        ARG(r->k_bias_act, 5, act);
        TRY(launch(r, r->k_bias_act, "bias_act", rows * L->out));
    }
    return CLDP_OK;
}

/* Runs softmax_xent on the logits: losses and flags, and dlogits*scale into delta[0]. */
static cldp_status loss_kernel(cldp_replica *r, size_t rows, float scale)
{
    const cldp_layer_desc *last = &r->model->layers[r->model->nlayers - 1];
    cl_uint urows = (cl_uint)rows, classes = (cl_uint)last->out;
    ARG(r->k_softmax_xent, 0, r->act[r->model->nlayers - 1]);
    ARG(r->k_softmax_xent, 1, r->labels);
    ARG(r->k_softmax_xent, 2, urows);
    ARG(r->k_softmax_xent, 3, classes);
    ARG(r->k_softmax_xent, 4, scale);
    ARG(r->k_softmax_xent, 5, r->delta[0]);
    ARG(r->k_softmax_xent, 6, r->loss);
    ARG(r->k_softmax_xent, 7, r->correct);
    return launch(r, r->k_softmax_xent, "softmax_xent", rows);
}

cldp_status cldp_replica_loss(cldp_replica *r, size_t rows)
{
    return rows ? loss_kernel(r, rows, 1.0f) : CLDP_OK;
}

/* Starts copying layer l's finished gradient (W then b, contiguous) to the staging on the
 * transfer queue, after a marker on the compute queue: the copy overlaps the backward of the
 * layers below it wherever the device can copy and compute at once. */
static cldp_status stream_layer(cldp_replica *r, size_t l)
{
    const cldp_layer_desc *L = &r->model->layers[l];
    if (!r->xfer) {
        cl_int err;
        r->xfer = clCreateCommandQueue(r->ctx, r->dev->id, 0, &err);
        if (err != CL_SUCCESS)
            return cldp_fail(CLDP_ERR_OPENCL, "%s: clCreateCommandQueue (transfers) failed with %s", r->name, cldp_cl_error_name(err));
    }
    cl_event done;
    CL_CHECK(r->name, clEnqueueMarkerWithWaitList(r->queue, 0, NULL, &done));
    clFlush(r->queue);
    size_t first = L->w_off, count = L->in * L->out + L->out;
    int inj = fault_fires(r, CLDP_FAULT_READ);
    cl_int err = inj ? CL_OUT_OF_RESOURCES
                     : clEnqueueReadBuffer(r->xfer, r->grads, CL_FALSE, first * sizeof(float), count * sizeof(float),
                                           r->stage + first, 1, &done, &r->layer_ev[l]);
    clReleaseEvent(done);
    if (err != CL_SUCCESS)
        return cldp_fail(CLDP_ERR_OPENCL, "%s: clEnqueueReadBuffer(gradients of a layer) failed with %s%s", r->name,
                         cldp_cl_error_name(err), injected(inj));
    clFlush(r->xfer);
    return CLDP_OK;
}

static cldp_status backward(cldp_replica *r, size_t rows, float scale, int accumulate, int stream);

cldp_status cldp_replica_backward(cldp_replica *r, size_t rows, float scale, int accumulate)
{
    return backward(r, rows, scale, accumulate, 0);
}

cldp_status cldp_replica_backward_deliver(cldp_replica *r, size_t rows, float scale, int accumulate)
{
    TRY(cldp_replica_release_grads(r));
    r->streamed = !r->zero_copy && r->overlap && rows > 0;
    return backward(r, rows, scale, accumulate, r->streamed);
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

static cldp_status backward(cldp_replica *r, size_t rows, float scale, int accumulate, int stream)
{
    const cldp_model *m = r->model;
    if (rows == 0) return CLDP_OK;
    TRY(loss_kernel(r, rows, scale));
    cl_uint urows = (cl_uint)rows;
    cl_int acc = accumulate ? 1 : 0;
    float beta = accumulate ? 1.0f : 0.0f;
    int cur = 0; /* delta[cur] holds dL/d(output of layer l), (rows, out_l) */
    for (size_t l = m->nlayers; l-- > 0;) {
        const cldp_layer_desc *L = &m->layers[l];
        cl_mem in = l == 0 ? r->x : r->act[l - 1];
        cldp_layer_size ls;
        cldp_layer_size_of(m, l, rows, &ls);
        TRY(gemm(r, &ls.gemm[CLDP_GEMM_DW], r->delta[cur], in, beta, r->grads));
        cl_uint cols = (cl_uint)L->out, boff = (cl_uint)L->b_off;
        ARG(r->k_bias_grad, 0, r->delta[cur]);
        ARG(r->k_bias_grad, 1, urows);
        ARG(r->k_bias_grad, 2, cols);
        ARG(r->k_bias_grad, 3, r->grads);
        ARG(r->k_bias_grad, 4, boff);
        ARG(r->k_bias_grad, 5, acc);
        TRY(launch(r, r->k_bias_grad, "bias_grad", L->out));
        if (stream) TRY(stream_layer(r, l));
        if (l == 0) break;
        TRY(gemm(r, &ls.gemm[CLDP_GEMM_DX], r->delta[cur], r->params, 0.0f, r->delta[1 - cur]));
        cl_uint n = (cl_uint)(rows * L->in);
        cl_int act = (cl_int)m->layers[l - 1].act;
        if (act != CLDP_ACT_NONE) {
            ARG(r->k_act_backward, 0, r->delta[1 - cur]);
            ARG(r->k_act_backward, 1, r->act[l - 1]);
            ARG(r->k_act_backward, 2, n);
            ARG(r->k_act_backward, 3, act);
            TRY(launch(r, r->k_act_backward, "act_backward", n));
        }
        cur = 1 - cur;
    }
    return CLDP_OK;
}

cldp_status cldp_replica_read_loss(cldp_replica *r, size_t rows, double *loss_sum, size_t *correct)
{
    if (rows == 0) return CLDP_OK;
    REQUIRE(rows <= r->max_rows, "%s: cldp_replica_read_loss: %zu rows, the replica holds %zu", r->name, rows, r->max_rows);
    float *loss = r->loss_host;
    int32_t *ok = r->correct_host;
    cl_int err = clEnqueueReadBuffer(r->queue, r->loss, CL_FALSE, 0, rows * sizeof(float), loss, 0, NULL, NULL);
    if (err == CL_SUCCESS) err = clEnqueueReadBuffer(r->queue, r->correct, CL_TRUE, 0, rows * sizeof(int32_t), ok, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return cldp_fail(CLDP_ERR_OPENCL, "%s: clEnqueueReadBuffer(losses) failed with %s", r->name, cldp_cl_error_name(err));
    double sum = 0;
    size_t c = 0;
    for (size_t i = 0; i < rows; i++) {
        sum += loss[i];
        c += ok[i] != 0;
    }
    *loss_sum += sum;
    *correct += c;
    return CLDP_OK;
}

cldp_status cldp_replica_read_grads(cldp_replica *r, float *dst)
{
    int inj = fault_fires(r, CLDP_FAULT_READ);
    cl_int err = inj ? CL_OUT_OF_RESOURCES
                     : clEnqueueReadBuffer(r->queue, r->grads, CL_TRUE, 0, r->model->nparams * sizeof(float), dst, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return cldp_fail(CLDP_ERR_OPENCL, "%s: clEnqueueReadBuffer(gradients) failed with %s%s", r->name,
                         cldp_cl_error_name(err), injected(inj));
    return CLDP_OK;
}

cldp_status cldp_replica_map_grads(cldp_replica *r, float **grads)
{
    TRY(cldp_replica_unmap_grads(r));
    int inj = fault_fires(r, CLDP_FAULT_READ);
    cl_int err = CL_OUT_OF_RESOURCES;
    void *p = inj ? NULL
                  : clEnqueueMapBuffer(r->queue, r->grads, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, 0,
                                       r->model->nparams * sizeof(float), 0, NULL, NULL, &err);
    if (!p || err != CL_SUCCESS)
        return cldp_fail(CLDP_ERR_OPENCL, "%s: clEnqueueMapBuffer(gradients) failed with %s%s", r->name,
                         cldp_cl_error_name(err), injected(inj));
    r->grads_map = p;
    *grads = p;
    return CLDP_OK;
}

cldp_status cldp_replica_unmap_grads(cldp_replica *r)
{
    if (!r->grads_map) return CLDP_OK;
    void *p = r->grads_map;
    r->grads_map = NULL;
    CL_CHECK(r->name, clEnqueueUnmapMemObject(r->queue, r->grads, p, 0, NULL, NULL));
    return CLDP_OK;
}

cldp_status cldp_replica_probs(cldp_replica *r, size_t rows, const float **probs)
{
    *probs = r->out_host;
    if (rows == 0) return CLDP_OK;
    const cldp_model *m = r->model;
    cl_uint urows = (cl_uint)rows, classes = (cl_uint)m->layers[m->nlayers - 1].out;
    ARG(r->k_softmax_rows, 0, r->act[m->nlayers - 1]);
    ARG(r->k_softmax_rows, 1, urows);
    ARG(r->k_softmax_rows, 2, classes);
    ARG(r->k_softmax_rows, 3, r->delta[0]);
    TRY(launch(r, r->k_softmax_rows, "softmax_rows", rows));
    CL_CHECK(r->name, clEnqueueReadBuffer(r->queue, r->delta[0], CL_TRUE, 0, rows * classes * sizeof(float), r->out_host, 0, NULL, NULL));
    return CLDP_OK;
}

cldp_status cldp_replica_warm_up(cldp_replica *r)
{
    /* Zero inputs and label 0 are valid data; the parameters are whatever the device holds. */
    size_t rows = r->max_rows, n = rows * r->model->inputs;
    float *x = cldp_calloc(n, sizeof(float), "warm-up batch");
    int32_t *y = x ? cldp_calloc(rows, sizeof(int32_t), "warm-up labels") : NULL;
    cldp_status st = CLDP_ERR_HOST_MEMORY;
    if (!y) goto out;
    /* the full shard and a single row: CLBlast picks different GEMM kernels for them */
    size_t sizes[2] = {rows, 1};
    for (int i = 0; i < 2; i++) {
        if ((st = cldp_replica_load(r, x, r->forward_only ? NULL : y, sizes[i])) != CLDP_OK) goto out;
        if ((st = cldp_replica_forward(r, sizes[i])) != CLDP_OK) goto out;
        if (!r->forward_only && (st = cldp_replica_backward(r, sizes[i], 1.0f, 0)) != CLDP_OK) goto out;
    }
    const float *probs;
    if ((st = cldp_replica_probs(r, 1, &probs)) != CLDP_OK) goto out;
    cl_int err = clFinish(r->queue);
    if (err != CL_SUCCESS) st = cldp_fail(CLDP_ERR_OPENCL, "%s: clFinish (warm-up) failed with %s", r->name, cldp_cl_error_name(err));
out:
    free(x);
    free(y);
    return st;
}
