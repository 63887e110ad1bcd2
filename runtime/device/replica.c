/* replica.c — a model replica on one device: its context, queue, programs and buffers (sized by
 * the kind table), and the transfers of parameters, batches, losses and gradients. What runs on
 * it: replica_launch.c; the model's passes: layers/passes.c. */
#define _POSIX_C_SOURCE 200809L
#include "replica.h"
#include "kinds.h"
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

extern const unsigned char cldp_cl_layers[], cldp_cl_spatial[], cldp_cl_dropout[];

/* Fires an armed fault of `kind` once: returns 1 when the caller must fail as if its call had. */
/* ---- creation -------------------------------------------------------------------------- */

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

/* CLBlast's scratch for the GEMMs of a pass at `rows` rows; the largest of them. */
static cldp_status size_gemm_temp(cldp_replica *r, size_t rows, size_t *bytes)
{
    const cldp_model *m = r->model;
    size_t need = 0;
    for (size_t l = 0; l < m->nlayers; l++) {
        cldp_layer_size ls;
        cldp_layer_size_of(m, l, rows, &ls);
        size_t ngemm = r->forward_only && ls.ngemm ? 1 : ls.ngemm; /* inference: forward GEMMs only */
        for (size_t g = 0; g < ngemm; g++) {
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
    cldp_trace_queue_free(&r->trace);
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
    cl_mem *mems[] = {&r->params, &r->grads, &r->x, &r->delta[0], &r->delta[1], &r->labels, &r->targets,
                      &r->loss, &r->correct, &r->gemm_temp, &r->stage_buf, &r->scratch[0], &r->scratch[1]};
    for (size_t i = 0; i < sizeof mems / sizeof *mems; i++)
        if (*mems[i]) clReleaseMemObject(*mems[i]);
    for (size_t l = 0; l < CLDP_MAX_LAYERS; l++) { /* an aliased output holds its own reference */
        if (r->act[l]) clReleaseMemObject(r->act[l]);
        if (r->aux[l]) clReleaseMemObject(r->aux[l]);
    }
    for (size_t i = 0; i < r->nkernels; i++) clReleaseKernel(r->kernels[i].k);
    if (r->program) clReleaseProgram(r->program);
    if (r->spatial) clReleaseProgram(r->spatial);
    if (r->dropout) clReleaseProgram(r->dropout);
    if (r->queue) clReleaseCommandQueue(r->queue);
    if (r->ctx) clReleaseContext(r->ctx);
    free(r->loss_host);
    free(r->correct_host);
    free(r->labels_host);
    free(r->targets_host);
    free(r->x_host);
    free(r->out_host);
    free(r);
    if (atomic_fetch_sub(&live_replicas, 1) == 1) CLBlastClearCache();
}

static cldp_status make_row_buffers(cldp_replica *r);

/* ---- the timeline ---------------------------------------------------------------------- */

cl_event *cldp_replica_trace_ev(cldp_replica *r, const char *name, const char *cat, int gemm, int xfer)
{
    cldp_trace_queue *tq = cldp_trace_queue_for(&r->trace, &r->dev->info);
    if (!tq) return NULL;
    return cldp_trace_push(tq, r->queue, name, cat, r->trace_layer, xfer ? CLDP_TRACK_XFER : CLDP_TRACK_QUEUE,
                           gemm ? r->queue : NULL);
}

void cldp_replica_trace_flush(cldp_replica *r)
{
    if (r->trace) cldp_trace_flush(r->trace, r->queue);
}

void cldp_replica_trace_span(cldp_replica *r, size_t l, const char *name, int end)
{
    r->trace_layer = end ? -1 : (int)l;
    if (!CLDP_TRACING()) return;
    cldp_trace_queue *tq = cldp_trace_queue_for(&r->trace, &r->dev->info);
    if (tq && end) cldp_trace_span_end(tq, r->queue, name, (int)l);
    else if (tq) cldp_trace_span_begin(tq, r->queue);
}

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
    else r->queue = clCreateCommandQueue(r->ctx, r->dev->id, cldp_trace_profile_queues ? CL_QUEUE_PROFILING_ENABLE : 0, &err);
    if (err != CL_SUCCESS) return cldp_fail(cldp_cl_alloc_status(err), "%s: clCreateCommandQueue failed with %s", r->name, cldp_cl_error_name(err));
    TRY(cldp_build_program(r->ctx, r->dev->id, r->name, (const char *)cldp_cl_layers, "", &r->program));
    int spatial = 0, dropout = 0;
    for (size_t l = 0; l < m->nlayers; l++) {
        spatial |= cldp_kind_of(m->layers[l].kind)->program == CLDP_PROGRAM_SPATIAL;
        dropout |= cldp_kind_of(m->layers[l].kind)->program == CLDP_PROGRAM_DROPOUT;
    }
    if (spatial) TRY(cldp_build_program(r->ctx, r->dev->id, r->name, (const char *)cldp_cl_spatial, "", &r->spatial));
    if (dropout) TRY(cldp_build_program(r->ctx, r->dev->id, r->name, (const char *)cldp_cl_dropout, "", &r->dropout));
    /* one work-group size for every kernel: 64, or less where the device allows less (a kernel
     * that allows less still is refused by name when it is made) */
    size_t local = 64, dev_max = 0;
    clGetDeviceInfo(r->dev->id, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof dev_max, &dev_max, NULL);
    if (dev_max && dev_max < local) local = dev_max;
    r->local_size = local;
    /* the kernels every model uses, made now so a missing one fails creation, not a step */
    static const char *common[] = {"bias_act", "act_backward", "softmax_xent", "softmax_rows", "bias_grad"};
    static const char *plain[] = {"bias_act_plain", "act_backward", "softmax_xent", "softmax_rows", "bias_grad_plain"};
    for (size_t i = 0; i < sizeof common / sizeof *common; i++) {
        cl_kernel k;
        TRY(cldp_replica_kernel(r, r->fast_kernels ? common[i] : plain[i], &k));
    }
    /* narrow dense layers on cldp's kernels, where the device runs them at the replica's
     * work-group size (their per-row accumulators may lower a GPU's limit); else CLBlast's */
    static const char *narrow[] = {"dense_narrow_forward", "dense_narrow_dw", "dense_narrow_dx"};
    r->narrow = r->fast_kernels;
    for (size_t i = 0; r->narrow && i < sizeof narrow / sizeof *narrow; i++) {
        cl_kernel k;
        CLDP_KEEPING_ERROR(r->narrow = cldp_replica_kernel(r, narrow[i], &k) == CLDP_OK);
    }

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
    for (size_t l = 0; l < m->nlayers; l++) {
        cldp_layer_size ls;
        cldp_layer_size_of(m, l, rows, &ls);
        if (ls.own_output) {
            TRY(make_buffer(r, rows * ls.out_per_row, "activations", &r->act[l]));
        } else {
            r->act[l] = l ? r->act[l - 1] : r->x;
            clRetainMemObject(r->act[l]);
        }
        if (ls.aux_per_row) TRY(make_buffer(r, rows * ls.aux_per_row, "arg-max indices", &r->aux[l]));
    }
    for (int i = 0; i < 2; i++) {
        size_t f = cldp_model_scratch_floats(m, rows, i);
        if (f) TRY(make_buffer(r, f, "layer scratch", &r->scratch[i]));
    }
    /* an inference replica keeps only its probabilities there, and nothing of a backward pass */
    TRY(make_buffer(r, rows * (r->forward_only ? cldp_model_outputs(m) : width), "layer gradients", &r->delta[0]));
    if (!r->forward_only) {
        TRY(make_buffer(r, rows * width, "layer gradients", &r->delta[1]));
        TRY(make_buffer(r, rows, "labels", &r->labels));
        if (m->loss == CLDP_LOSS_MSE) TRY(make_buffer(r, rows * cldp_model_outputs(m), "targets", &r->targets));
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
    REQUIRE(m->layers[m->nlayers - 1].out_h == 1 && m->layers[m->nlayers - 1].out_w == 1,
            "the model's output is %zux%zux%zu, not flat: end it with flatten and dense", m->layers[m->nlayers - 1].out_c,
            m->layers[m->nlayers - 1].out_h, m->layers[m->nlayers - 1].out_w);
    *out = NULL;
    cldp_replica *r = cldp_calloc(1, sizeof *r, "replica");
    if (!r) return CLDP_ERR_HOST_MEMORY;
    atomic_fetch_add(&live_replicas, 1); /* before CLBlast first sees its context */
    r->dev = dev;
    r->model = m;
    r->max_rows = max_rows;
    r->forward_only = forward_only;
    r->trace_layer = -1;
    snprintf(r->name, sizeof r->name, "device %u:%u (%s)", dev->info.platform_index, dev->info.device_index, dev->info.name);
    const cldp_config *cfg;
    cldp_status st = cldp_config_get(&cfg);
    if (cfg->staging == CLDP_CFG_STAGING_COPY) r->staging = CLDP_STAGING_HOST;
    else if (cfg->staging == CLDP_CFG_STAGING_PINNED) r->staging = CLDP_STAGING_PINNED;
    else r->staging = dev->info.host_unified_memory ? CLDP_STAGING_ZERO_COPY : CLDP_STAGING_PINNED;
    r->zero_copy = r->staging == CLDP_STAGING_ZERO_COPY;
    r->overlap = cfg->overlap;
    r->fast_kernels = cfg->fast_kernels;
    size_t outputs = cldp_model_outputs(m);
    r->loss_host = cldp_calloc(max_rows, sizeof *r->loss_host, "losses");
    r->correct_host = cldp_calloc(max_rows, sizeof *r->correct_host, "correct flags");
    r->labels_host = cldp_calloc(max_rows, sizeof *r->labels_host, "labels");
    r->x_host = cldp_calloc(max_rows, m->inputs * sizeof *r->x_host, "input rows");
    r->out_host = cldp_calloc(max_rows, outputs * sizeof *r->out_host, "outputs");
    if (m->loss == CLDP_LOSS_MSE && !forward_only) r->targets_host = cldp_calloc(max_rows, outputs * sizeof(float), "targets");
    if (st == CLDP_OK && (!r->loss_host || !r->correct_host || !r->labels_host || !r->x_host || !r->out_host ||
                          (m->loss == CLDP_LOSS_MSE && !forward_only && !r->targets_host)))
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

/* ---- transfers ---------------------------------------------------------------------- */

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
    if (cldp_replica_fault_fires(r, CLDP_FAULT_STALL_WRITE)) cldp_sleep_ms(r->test.stall_ms);
    int inj = cldp_replica_fault_fires(r, CLDP_FAULT_WRITE);
    cl_int err = inj ? CL_OUT_OF_RESOURCES
                     : clEnqueueWriteBuffer(r->queue, r->params, blocking ? CL_TRUE : CL_FALSE, begin * sizeof(float),
                                            (end - begin) * sizeof(float), p + begin, 0, NULL,
                                            CLDP_REPLICA_EV(r, "param write", "broadcast"));
    if (err != CL_SUCCESS)
        return cldp_fail(CLDP_ERR_OPENCL, "%s: clEnqueueWriteBuffer(parameters) failed with %s%s", r->name,
                         cldp_cl_error_name(err), cldp_replica_injected(inj));
    return CLDP_OK;
}

cldp_status cldp_replica_load(cldp_replica *r, const float *x, const int32_t *labels, size_t rows)
{
    if (rows == 0) return CLDP_OK;
    REQUIRE(rows <= r->max_rows, "%s: cldp_replica_load: %zu rows, the replica holds %zu", r->name, rows, r->max_rows);
    size_t xb = rows * r->model->inputs * sizeof(float);
    memcpy(r->x_host, x, xb); /* the caller's memory is read here, never later by the driver */
    CL_CHECK(r->name, clEnqueueWriteBuffer(r->queue, r->x, CL_FALSE, 0, xb, r->x_host, 0, NULL,
                                           CLDP_REPLICA_EV(r, "input upload", "transfer")));
    if (labels) {
        memcpy(r->labels_host, labels, rows * sizeof(int32_t));
        CL_CHECK(r->name, clEnqueueWriteBuffer(r->queue, r->labels, CL_FALSE, 0, rows * sizeof(int32_t), r->labels_host, 0, NULL,
                                               CLDP_REPLICA_EV(r, "input upload", "transfer")));
    }
    return CLDP_OK;
}

cldp_status cldp_replica_load_targets(cldp_replica *r, const float *x, const float *targets, size_t rows)
{
    TRY(cldp_replica_load(r, x, NULL, rows));
    if (rows == 0) return CLDP_OK;
    REQUIRE(r->targets, "%s: cldp_replica_load_targets: the model's loss takes no float targets", r->name);
    size_t tb = rows * cldp_model_outputs(r->model) * sizeof(float);
    memcpy(r->targets_host, targets, tb);
    CL_CHECK(r->name, clEnqueueWriteBuffer(r->queue, r->targets, CL_FALSE, 0, tb, r->targets_host, 0, NULL, NULL));
    return CLDP_OK;
}

cldp_status cldp_replica_read_loss(cldp_replica *r, size_t rows, double *loss_sum, size_t *correct)
{
    if (rows == 0) return CLDP_OK;
    REQUIRE(rows <= r->max_rows, "%s: cldp_replica_read_loss: %zu rows, the replica holds %zu", r->name, rows, r->max_rows);
    float *loss = r->loss_host;
    int32_t *ok = r->correct_host;
    cl_int err = clEnqueueReadBuffer(r->queue, r->loss, CL_FALSE, 0, rows * sizeof(float), loss, 0, NULL,
                                     CLDP_REPLICA_EV(r, "loss read", "transfer"));
    if (err == CL_SUCCESS)
        err = clEnqueueReadBuffer(r->queue, r->correct, CL_TRUE, 0, rows * sizeof(int32_t), ok, 0, NULL,
                                  CLDP_REPLICA_EV(r, "loss read", "transfer"));
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
    int inj = cldp_replica_fault_fires(r, CLDP_FAULT_READ);
    cl_int err = inj ? CL_OUT_OF_RESOURCES
                     : clEnqueueReadBuffer(r->queue, r->grads, CL_TRUE, 0, r->model->nparams * sizeof(float), dst, 0, NULL,
                                           CLDP_REPLICA_EV(r, "grad copy", "transfer"));
    if (err != CL_SUCCESS)
        return cldp_fail(CLDP_ERR_OPENCL, "%s: clEnqueueReadBuffer(gradients) failed with %s%s", r->name,
                         cldp_cl_error_name(err), cldp_replica_injected(inj));
    return CLDP_OK;
}

cldp_status cldp_replica_map_grads(cldp_replica *r, float **grads)
{
    TRY(cldp_replica_unmap_grads(r));
    int inj = cldp_replica_fault_fires(r, CLDP_FAULT_READ);
    cl_int err = CL_OUT_OF_RESOURCES;
    void *p = inj ? NULL
                  : clEnqueueMapBuffer(r->queue, r->grads, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, 0,
                                       r->model->nparams * sizeof(float), 0, NULL,
                                       CLDP_REPLICA_EV(r, "grad copy", "transfer"), &err);
    if (!p || err != CL_SUCCESS)
        return cldp_fail(CLDP_ERR_OPENCL, "%s: clEnqueueMapBuffer(gradients) failed with %s%s", r->name,
                         cldp_cl_error_name(err), cldp_replica_injected(inj));
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

