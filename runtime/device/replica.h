/* replica.h — one device's copy of the model: its context, queues, kernels and buffers, the
 * transfers to and from it (replica.c), and what runs on it: the kernel cache, kernel launches,
 * CLBlast GEMMs, the loss, the gradient's delivery and the probabilities (replica_launch.c). The
 * model's passes, layer by layer, are the layers room's (layers/layers.h), built on these. */
#ifndef CLDP_REPLICA_H
#define CLDP_REPLICA_H

#include "devices.h"
#include "model.h"
#include "testhooks.h"
#include "trace.h"

/* Test-only faults, armed by the trainer for one step; each fires once, at its call site, and
 * takes the same path as a real error from that call. */
typedef enum cldp_fault_kind {
    CLDP_FAULT_NONE = 0,
    CLDP_FAULT_GEMM,   /* a CLBlast GEMM returns CLBlastOpenCLOutOfResources */
    CLDP_FAULT_KERNEL, /* a kernel launch returns CL_OUT_OF_RESOURCES */
    CLDP_FAULT_READ,   /* reading the gradients returns CL_OUT_OF_RESOURCES */
    CLDP_FAULT_WRITE,  /* writing the parameters returns CL_OUT_OF_RESOURCES */
    CLDP_FAULT_STALL,  /* the worker sleeps stall_ms inside a GEMM (a hung driver call) */
    CLDP_FAULT_NAN,    /* the trainer puts a NaN in this device's staged gradient */
    CLDP_FAULT_STALL_WRITE /* the worker sleeps stall_ms inside a parameter write */
} cldp_fault_kind;

/* How a replica's gradients reach the host (CLDP_STAGING picks one, for comparisons):
 *   ZERO_COPY  the device shares host memory (CL_DEVICE_HOST_UNIFIED_MEMORY): map the gradient
 *              buffer, no copy at all. The default there.
 *   PINNED     read into a CL_MEM_ALLOC_HOST_PTR buffer mapped once for the replica's life, which
 *              drivers of discrete devices can DMA into directly. The default elsewhere
 *              (CLDP_STAGING=pinned forces it on any device).
 *   HOST       read into plain malloc'd memory, which the driver stages through its own pinned
 *              bounce buffer (CLDP_STAGING=copy: the path the other two replaced).
 * Copying replicas also stream: each layer's gradient starts its copy on a second queue as soon
 * as backward has finished it (CLDP_OVERLAP=off: one copy at the end). */
typedef enum cldp_staging { CLDP_STAGING_ZERO_COPY, CLDP_STAGING_PINNED, CLDP_STAGING_HOST } cldp_staging;

typedef struct cldp_replica {
    const cldp_dev *dev;
    const cldp_model *model; /* borrowed; outlives the replica */
    char name[192];          /* "p:d device name", used in every message */
    cl_context ctx;
    cl_command_queue queue;
    cl_command_queue xfer;   /* a second queue for gradient transfers (made on first use) */
    cl_program program;      /* cl/layers.cl */
    cl_program spatial;      /* cl/spatial.cl, for models with a layer whose kernels are there; or NULL */
    cl_program dropout;      /* cl/dropout.cl, likewise */
    struct { const char *name; cl_kernel k; } kernels[32]; /* made on first use (cldp_replica_kernel) */
    size_t nkernels;
    size_t local_size;       /* work-group size of every kernel launch */
    size_t max_rows;         /* largest shard (or micro-batch) the buffers hold */
    cl_mem params;           /* (nparams) flat layout of model.h */
    cl_mem grads;            /* (nparams) */
    cl_mem x;                /* (max_rows, inputs) */
    cl_mem act[CLDP_MAX_LAYERS]; /* (max_rows, out_l) layer outputs; the last holds logits; a layer
                                    without its own output (flatten) holds its input's buffer */
    cl_mem aux[CLDP_MAX_LAYERS]; /* (max_rows, aux_per_row_l) int32 a layer keeps (arg-max), or NULL */
    cl_mem scratch[2];       /* the layers' shared scratch (conv: columns, GEMM output), or NULL */
    cl_mem delta[2];         /* (max_rows, max width) ping-pong gradients w.r.t. layer outputs */
    cl_mem labels;           /* (max_rows) int32 */
    cl_mem targets;          /* (max_rows, outputs) float targets of an MSE model; else NULL */
    cl_mem loss;             /* (max_rows) per-sample cross-entropy */
    cl_mem correct;          /* (max_rows) int32 0/1 */
    cl_mem gemm_temp;        /* CLBlast scratch, sized for the largest GEMM; NULL if none needed */
    size_t gemm_temp_bytes;
    size_t device_bytes;     /* everything above, as allocated */
    cldp_staging staging;    /* how the gradients reach the host */
    int zero_copy;           /* staging == CLDP_STAGING_ZERO_COPY */
    int overlap;             /* copying staging: each layer's gradient leaves during backward */
    int fast_kernels;        /* CLDP_FAST_KERNELS: the quad-wise bias kernels (else one element or
                                column per work-item) */
    int narrow;              /* dense layers of at most CLDP_NARROW outputs run on cldp's own
                                kernels instead of CLBlast (fast_kernels, where the device runs them) */
    cl_mem stage_buf;        /* pinned staging: a CL_MEM_ALLOC_HOST_PTR buffer, mapped for life */
    float *stage;            /* (nparams) copying staging: stage_buf's mapping, or malloc'd */
    float *grads_map;        /* (nparams) the mapped gradients while mapped, else NULL */
    int streamed;            /* the last backward started a copy per layer (layer_ev) */
    int ready;               /* every layer's gradient of the last backward is on the host */
    cl_event layer_ev[CLDP_MAX_LAYERS]; /* each layer's copy in flight, or NULL */
    float *loss_host;        /* (max_rows) read_loss's landing place, so a step allocates nothing */
    int32_t *correct_host;   /* (max_rows) */
    float *x_host;           /* (max_rows, inputs) the loaded rows, copied from the caller */
    int32_t *labels_host;    /* (max_rows) */
    float *targets_host;     /* (max_rows, outputs) of an MSE model; else NULL */
    float *out_host;         /* (max_rows, outputs) cldp_replica_probs's result */
    int forward_only;        /* an inference replica: no gradients, staging, labels or losses,
                             delta[0] holds (max_rows, outputs) probabilities only */
    int training;            /* the last forward was a training pass (cldp_replica_forward_train) */
    cldp_train_ctx train;    /* its context, which the backward pass reuses */
    struct cldp_trace_queue *trace; /* traced commands waiting for their times (trace.h): made on
                                     the first command traced, NULL while nothing was */
    int trace_layer;         /* the layer whose pass is enqueuing (-1: none), for the timeline */
    struct {                 /* test-only: what the trainer or server armed for this replica */
        cldp_fault_kind fault; /* the armed fault, or NONE */
        double stall_ms;       /* how long a STALL fault sleeps */
    } test;
} cldp_replica;

/* The most outputs of a dense layer that cldp's own kernels compute whole (forward, dW, dX) in
 * place of CLBlast, whose tiles would be mostly padding for them (NARROW in cl/layers.cl). */
#define CLDP_NARROW 16

/* Test-only: 1 (once) when fault `kind` is armed on r, at the call site it names; one predictable
 * branch while no test armed anything. */
static inline int cldp_replica_fault_fires(cldp_replica *r, cldp_fault_kind kind)
{
    if (!CLDP_TEST_ARMED() || r->test.fault != kind) return 0;
    r->test.fault = CLDP_FAULT_NONE;
    return 1;
}
/* The suffix of a failure's message: whether the fault was injected. */
static inline const char *cldp_replica_injected(int yes)
{
    return yes ? " [injected fault]" : "";
}

/* The timeline (trace.h): where a traced command's event goes (NULL when not recording), named
 * `name` in category `cat`, on the layer r->trace_layer; `gemm`: the command is a CLBlast GEMM
 * (a marker before it marks its start); `xfer`: it runs on the transfer queue. */
cl_event *cldp_replica_trace_ev(cldp_replica *r, const char *name, const char *cat, int gemm, int xfer);
#define CLDP_REPLICA_EV(r, name, cat) (CLDP_TRACING() ? cldp_replica_trace_ev((r), (name), (cat), 0, 0) : NULL)
/* The traced commands' times, read and recorded (waits for them); nothing when none are pending. */
void cldp_replica_trace_flush(cldp_replica *r);
/* Opens / closes the per-layer span ("forward", "backward") of layer l's commands. */
void cldp_replica_trace_span(cldp_replica *r, size_t l, const char *name, int end);

cldp_status cldp_replica_create(const cldp_dev *dev, const cldp_model *m, size_t max_rows,
                                cldp_replica **out);
/* An inference replica: forward and cldp_replica_probs only (no gradient, loss or backward
 * buffers); warm-up compiles the forward shapes alone. */
cldp_status cldp_replica_create_forward(const cldp_dev *dev, const cldp_model *m, size_t max_rows,
                                        cldp_replica **out);
void cldp_replica_destroy(cldp_replica *r);

/* Writes params[begin, end) to the device (blocking). */
cldp_status cldp_replica_write_params(cldp_replica *r, const float *params, size_t begin, size_t end);
/* The same; when not blocking, params[begin, end) must stay unchanged until cldp_replica_finish. */
cldp_status cldp_replica_write_params_async(cldp_replica *r, const float *params, size_t begin, size_t end, int blocking);
/* Waits for every command of the replica's queue. */
cldp_status cldp_replica_finish(cldp_replica *r);
/* Copies `rows` (<= max_rows) samples (and labels, unless NULL) to the device: they are copied
 * into the replica's own host memory at once (so the caller's may go away as soon as this
 * returns), and from there to the device without blocking, ordered before the following
 * commands on the replica's in-order queue. */
cldp_status cldp_replica_load(cldp_replica *r, const float *x, const int32_t *labels, size_t rows);
/* The same with float targets (rows x outputs) in place of labels, for a model whose loss is
 * CLDP_LOSS_MSE. */
cldp_status cldp_replica_load_targets(cldp_replica *r, const float *x, const float *targets, size_t rows);
/* Sets the gradient to zero and delivers it as cldp_replica_backward_deliver (layers.h) does (a device with
 * an empty shard still takes part in the reduction). */
cldp_status cldp_replica_deliver_zero(cldp_replica *r);
/* Blocks until layer l's gradient (its weights then its biases, model.h's layout) of the last
 * delivering pass is on the host and returns where: *grads points at the layer's first element.
 * Valid until cldp_replica_release_grads, which must come before the next pass. */
cldp_status cldp_replica_layer_grads(cldp_replica *r, size_t l, const float **grads);
/* Ends host access to the delivered gradient (unmaps it where it was mapped). */
cldp_status cldp_replica_release_grads(cldp_replica *r);
/* Loss of the last forward without backward (evaluation). */
cldp_status cldp_replica_loss(cldp_replica *r, size_t rows);
/* The same, and d(sum(loss))·scale w.r.t. the outputs into delta[0]: where backward starts. */
cldp_status cldp_replica_loss_grad(cldp_replica *r, size_t rows, float scale);
/* Starts copying layer l's finished gradient to the host staging on the transfer queue, ordered
 * after every command enqueued so far (the streaming of cldp_staging). */
cldp_status cldp_replica_stream_layer(cldp_replica *r, size_t l);
/* Reads the per-sample losses and correct flags of `rows` samples; adds their sums (blocking). */
cldp_status cldp_replica_read_loss(cldp_replica *r, size_t rows, double *loss_sum, size_t *correct);
/* Reads the whole gradient vector into `dst` (nparams floats; blocking). */
cldp_status cldp_replica_read_grads(cldp_replica *r, float *dst);
/* Maps the gradient buffer for host reading and writing (blocking) and returns its pointer:
 * on a device that shares host memory this is the gradient itself, with no copy. Stays valid
 * until cldp_replica_unmap_grads, which must come before the next pass. */
cldp_status cldp_replica_map_grads(cldp_replica *r, float **grads);
cldp_status cldp_replica_unmap_grads(cldp_replica *r);

/* Softmax of the last forward's logits (blocking), or for an MSE model its raw outputs: *probs
 * points at rows x outputs floats in the replica's own memory, valid until the next call. */
cldp_status cldp_replica_probs(cldp_replica *r, size_t rows, const float **probs);


/* ---- what the layers' passes issue (replica_launch.c) ---- */

/* A kernel of the replica's programs by name, made on first use and kept. */
cldp_status cldp_replica_kernel(cldp_replica *r, const char *name, cl_kernel *k);
/* Launches k over n work-items (1-D, the global size padded to the work-group size). */
cldp_status cldp_replica_launch(cldp_replica *r, cl_kernel k, const char *name, size_t n);
/* Launches k over n x rows work-items (2-D: get_global_id(1) is the row; the first dimension is
 * padded as above). */
cldp_status cldp_replica_launch_rows(cldp_replica *r, cl_kernel k, const char *name, size_t n, size_t rows);
/* C = op(A)·op(B) + beta·C in the shape G, through CLBlast. */
cldp_status cldp_replica_gemm(cldp_replica *r, const cldp_gemm_shape *G, cl_mem a, cl_mem b, float beta, cl_mem c);
/* Kernel arguments: ARG(k, i, value) records a failure and returns from the caller. */
#define ARG(k, i, v) CL_CHECK(r->name, clSetKernelArg((k), (i), sizeof(v), &(v)))
/* A kernel's arguments as a list, for cldp_replica_run: {CLDP_ARG(buf), CLDP_ARG(rows), ...}. */
typedef struct cldp_arg { size_t size; const void *value; } cldp_arg;
#define CLDP_ARG(v) {sizeof(v), &(v)}
/* Kernel `name` with arguments args[0, nargs), over n x rows work-items (cldp_replica_launch_rows). */
cldp_status cldp_replica_run(cldp_replica *r, const char *name, const cldp_arg *args, size_t nargs, size_t n, size_t rows);

#endif
