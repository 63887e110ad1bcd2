/* layers.h — the layers room: the pass table, one entry per layer kind (cldp_layer_kind), giving
 * its forward and backward passes on a replica (layer_<kind>.c), and the model's passes built on
 * it (passes.c): forward layer by layer, the loss, backward layer by layer with each layer's
 * gradient leaving for the host as soon as it is finished, and the warm-up. A kind's shapes,
 * sizes, initialisation, spec token and reference are the kind table's (model/kinds.h); a new
 * kind is an entry in both tables, its kernels in cl/ and its reference. Below: model, device,
 * core. */
#ifndef CLDP_LAYERS_H
#define CLDP_LAYERS_H

#include "kinds.h"
#include "replica.h"

/* What one layer's pass works on, at `rows` rows of the loaded batch. */
typedef struct cldp_pass {
    size_t l, rows;
    cl_mem in;        /* (rows, L->in) its input */
    cl_mem out;       /* (rows, L->out) its output */
    cl_mem dout;      /* backward: (rows, L->out) dL/d(output), which it may overwrite */
    cl_mem din;       /* backward: (rows, L->in) dL/d(input) to write; NULL for the first layer */
    int accumulate;   /* backward: add to the parameter gradient instead of setting it */
    const cldp_train_ctx *train; /* a training pass's context; NULL in an inference pass */
} cldp_pass;

typedef struct cldp_pass_ops {
    cldp_status (*forward)(cldp_replica *r, const cldp_layer_desc *L, const cldp_pass *ps);
    /* backward: the parameter gradient (and din, or dout in place when the kind's
     * in_place_backward); backward_input, where not NULL, writes din afterwards, so the parameter
     * gradient's copy to the host starts first */
    cldp_status (*backward)(cldp_replica *r, const cldp_layer_desc *L, const cldp_pass *ps);
    cldp_status (*backward_input)(cldp_replica *r, const cldp_layer_desc *L, const cldp_pass *ps);
} cldp_pass_ops;

extern const cldp_pass_ops cldp_pass_dense, cldp_pass_conv2d, cldp_pass_maxpool2d, cldp_pass_flatten, cldp_pass_act,
    cldp_pass_dropout;

/* The passes of a kind (NULL for a code outside the table). */
const cldp_pass_ops *cldp_pass_of(cldp_layer_kind kind);

/* out = act(in) over n elements; dout *= act'(out) over n elements (act a CLDP_ACT_* code):
 * the activation layers' kernels, which the dense and conv layers apply after themselves. */
cldp_status cldp_replica_act_forward(cldp_replica *r, cl_mem in, cl_mem out, size_t n, int act);
cldp_status cldp_replica_act_backward(cldp_replica *r, cl_mem dout, cl_mem out, size_t n, int act);

/* ---- the model's passes on a replica (passes.c) ---- */

/* Forward over `rows` loaded samples: activations and logits, as an inference pass (dropout is
 * the identity). */
cldp_status cldp_replica_forward(cldp_replica *r, size_t rows);
/* The same as a training pass in context *tc (model.h: the dropout seed, the step, the global
 * row of the first loaded sample); the backward pass that follows uses the same context. */
cldp_status cldp_replica_forward_train(cldp_replica *r, size_t rows, const cldp_train_ctx *tc);
/* Loss of the last forward and its backward pass: grads = (or += when accumulate) the gradient
 * of sum(loss) * scale. Needs the labels (or an MSE model's targets) loaded. */
cldp_status cldp_replica_backward(cldp_replica *r, size_t rows, float scale, int accumulate);
/* The same, and the gradient then goes to the host (replica.h's cldp_staging): on a streaming
 * replica each layer's copy starts as soon as backward has finished that layer, overlapping the
 * layers below. Collect it layer by layer with cldp_replica_layer_grads. */
cldp_status cldp_replica_backward_deliver(cldp_replica *r, size_t rows, float scale, int accumulate);
/* Runs every kernel and GEMM shape of a pass once, so compilation (ours, CLBlast's, the
 * driver's per-launch specialisation) happens now, on the calling thread, not in the first step.
 * Overwrites the gradients, activations and loaded batch; the parameters stay. */
cldp_status cldp_replica_warm_up(cldp_replica *r);

#endif
