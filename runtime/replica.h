/* replica.h — one device's copy of the model: its context, queue, kernels and buffers, and the
 * layers' forward and backward passes through CLBlast GEMMs and the kernels of cl/layers.cl. */
#ifndef CLDP_REPLICA_H
#define CLDP_REPLICA_H

#include "devices.h"
#include "model.h"

typedef struct cldp_replica {
    const cldp_dev *dev;
    const cldp_model *model; /* borrowed; outlives the replica */
    char name[192];          /* "p:d device name", used in every message */
    cl_context ctx;
    cl_command_queue queue;
    cl_program program;
    cl_kernel k_bias_act, k_act_backward, k_softmax_xent, k_softmax_rows, k_bias_grad;
    size_t max_rows;         /* largest shard (or micro-batch) the buffers hold */
    cl_mem params;           /* (nparams) flat layout of model.h */
    cl_mem grads;            /* (nparams) */
    cl_mem x;                /* (max_rows, inputs) */
    cl_mem act[CLDP_MAX_LAYERS]; /* (max_rows, out_l) post-activation; the last holds logits */
    cl_mem delta[2];         /* (max_rows, max width) ping-pong gradients w.r.t. layer outputs */
    cl_mem labels;           /* (max_rows) int32 */
    cl_mem loss;             /* (max_rows) per-sample cross-entropy */
    cl_mem correct;          /* (max_rows) int32 0/1 */
    cl_mem gemm_temp;        /* CLBlast scratch, sized for the largest GEMM; NULL if none needed */
    size_t gemm_temp_bytes;
    size_t device_bytes;     /* everything above, as allocated */
} cldp_replica;

/* Device bytes a replica of `m` holding `max_rows` rows needs (buffers above, CLBlast scratch
 * excluded). */
size_t cldp_replica_bytes(const cldp_model *m, size_t max_rows);

cldp_status cldp_replica_create(const cldp_dev *dev, const cldp_model *m, size_t max_rows,
                                cldp_replica **out);
void cldp_replica_destroy(cldp_replica *r);

/* Writes params[begin, end) to the device (blocking). */
cldp_status cldp_replica_write_params(cldp_replica *r, const float *params, size_t begin, size_t end);
/* Copies `rows` samples (and labels, unless NULL) to the device; non-blocking, ordered before
 * the following commands on the replica's in-order queue. The host memory must stay valid until
 * the next blocking call. */
cldp_status cldp_replica_load(cldp_replica *r, const float *x, const int32_t *labels, size_t rows);
/* Forward over `rows` loaded samples: activations and logits. */
cldp_status cldp_replica_forward(cldp_replica *r, size_t rows);
/* Loss of the last forward and its backward pass: grads = (or += when accumulate) the gradient
 * of sum(loss) * scale. Needs the labels loaded. */
cldp_status cldp_replica_backward(cldp_replica *r, size_t rows, float scale, int accumulate);
/* Loss of the last forward without backward (evaluation). */
cldp_status cldp_replica_loss(cldp_replica *r, size_t rows);
/* Reads the per-sample losses and correct flags of `rows` samples; adds their sums (blocking). */
cldp_status cldp_replica_read_loss(cldp_replica *r, size_t rows, double *loss_sum, size_t *correct);
/* Reads the whole gradient vector into `dst` (nparams floats; blocking). */
cldp_status cldp_replica_read_grads(cldp_replica *r, float *dst);
/* Softmax of the last forward's logits into `probs` (rows x outputs; blocking). */
cldp_status cldp_replica_probs(cldp_replica *r, size_t rows, float *probs);

/* Builds an OpenCL program from source for one device, keeping the build log on failure. */
cldp_status cldp_build_program(cl_context ctx, cl_device_id dev, const char *dev_name,
                               const char *source, const char *options, cl_program *out);

#endif
