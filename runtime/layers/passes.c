/* passes.c — the model's passes on a replica: forward layer by layer through the pass table,
 * the loss, backward layer by layer with each finished layer's gradient leaving for the host, and
 * the warm-up that compiles every shape of them once. */
#include "layers.h"

#include <stdlib.h>

static cldp_status forward(cldp_replica *r, size_t rows, const cldp_train_ctx *tc)
{
    const cldp_model *m = r->model;
    r->training = tc != NULL;
    if (tc) r->train = *tc;
    if (rows == 0) return CLDP_OK;
    for (size_t l = 0; l < m->nlayers; l++) {
        const cldp_layer_desc *L = &m->layers[l];
        cldp_pass ps = {l, rows, l == 0 ? r->x : r->act[l - 1], r->act[l], NULL, NULL, 0, tc};
        cldp_replica_trace_span(r, l, "forward", 0);
        TRY(cldp_pass_of(L->kind)->forward(r, L, &ps));
        cldp_replica_trace_span(r, l, "forward", 1);
    }
    return CLDP_OK;
}

cldp_status cldp_replica_forward(cldp_replica *r, size_t rows) { return forward(r, rows, NULL); }

cldp_status cldp_replica_forward_train(cldp_replica *r, size_t rows, const cldp_train_ctx *tc)
{
    return forward(r, rows, tc);
}

static cldp_status backward(cldp_replica *r, size_t rows, float scale, int accumulate, int stream)
{
    const cldp_model *m = r->model;
    if (rows == 0) return CLDP_OK;
    TRY(cldp_replica_loss_grad(r, rows, scale));
    int cur = 0; /* delta[cur] holds dL/d(output of layer l), (rows, out_l) */
    for (size_t l = m->nlayers; l-- > 0;) {
        const cldp_layer_desc *L = &m->layers[l];
        const cldp_pass_ops *ops = cldp_pass_of(L->kind);
        int in_place = cldp_kind_of(L->kind)->in_place_backward;
        cldp_pass ps = {l, rows, l == 0 ? r->x : r->act[l - 1], r->act[l], r->delta[cur],
                        l == 0 || in_place ? NULL : r->delta[1 - cur], accumulate,
                        r->training ? &r->train : NULL};
        cldp_replica_trace_span(r, l, "backward", 0);
        if (l > 0 || L->nparams) TRY(ops->backward(r, L, &ps));
        if (stream) TRY(cldp_replica_stream_layer(r, l));
        if (ps.din && ops->backward_input) TRY(ops->backward_input(r, L, &ps));
        cldp_replica_trace_span(r, l, "backward", 1);
        if (!in_place) cur = 1 - cur;
    }
    return CLDP_OK;
}

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

cldp_status cldp_replica_warm_up(cldp_replica *r)
{
    /* Zero inputs, label 0 and zero targets are valid data; the parameters are whatever the
     * device holds. x serves as the targets too, so it holds the larger of the two. */
    size_t rows = r->max_rows, outputs = cldp_model_outputs(r->model);
    size_t n = rows * (r->model->inputs > outputs ? r->model->inputs : outputs);
    float *x = cldp_calloc(n, sizeof(float), "warm-up batch");
    int32_t *y = x ? cldp_calloc(rows, sizeof(int32_t), "warm-up labels") : NULL;
    cldp_status st = CLDP_ERR_HOST_MEMORY;
    if (!y) goto out;
    /* the full shard and a single row: CLBlast picks different GEMM kernels for them */
    size_t sizes[2] = {rows, 1};
    const cldp_train_ctx tc = {0, 0, 0};
    for (int i = 0; i < 2; i++) {
        if (r->targets) st = cldp_replica_load_targets(r, x, x, sizes[i]); /* zero targets */
        else st = cldp_replica_load(r, x, r->forward_only ? NULL : y, sizes[i]);
        if (st != CLDP_OK) goto out;
        if ((st = forward(r, sizes[i], r->forward_only ? NULL : &tc)) != CLDP_OK) goto out;
        if (!r->forward_only && (st = cldp_replica_backward(r, sizes[i], 1.0f, 0)) != CLDP_OK) goto out;
    }
    const float *probs;
    if ((st = cldp_replica_probs(r, 1, &probs)) != CLDP_OK) goto out;
    cl_int err = clFinish(r->queue);
    cldp_replica_trace_flush(r);
    if (err != CL_SUCCESS) st = cldp_fail(CLDP_ERR_OPENCL, "%s: clFinish (warm-up) failed with %s", r->name, cldp_cl_error_name(err));
out:
    free(x);
    free(y);
    return st;
}

