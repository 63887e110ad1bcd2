/* reference.h — a plain-C, double-precision reference of every layer and kernel of a replica:
 * every layer's forward and backward through the layer table's double-precision reference (in
 * an inference pass, or a training pass of a context: dropout), softmax cross-entropy with its
 * gradient and correct count, and mean squared error. The tests compare the devices against it. */
#ifndef CLDP_REFERENCE_H
#define CLDP_REFERENCE_H

#include "kinds.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static inline double ref_act(int act, double v) { return cldp_ref_act(act, v); }

/* acts[l] (rows x out_l) receives each layer's output, through the layer table's reference, in
 * a training pass of context tc (NULL: an inference pass); the last layer's are the outputs. */
static inline void ref_forward_train(const cldp_model *m, const float *p, const float *x, size_t rows, double **acts,
                                     const cldp_train_ctx *tc)
{
    double *x64 = malloc(rows * m->inputs * sizeof(double));
    for (size_t i = 0; i < rows * m->inputs; i++) x64[i] = x[i];
    for (size_t l = 0; l < m->nlayers; l++) {
        const cldp_layer_desc *L = &m->layers[l];
        const cldp_kind_ops *ops = cldp_kind_of(L->kind);
        if (tc && ops->ref_train) ops->ref_train(L, l, tc, l == 0 ? x64 : acts[l - 1], rows, acts[l]);
        else ops->ref_forward(L, p + L->w_off, l == 0 ? x64 : acts[l - 1], rows, acts[l]);
    }
    free(x64);
}

/* The same in an inference pass. */
static inline void ref_forward(const cldp_model *m, const float *p, const float *x, size_t rows, double **acts)
{
    ref_forward_train(m, p, x, rows, acts, NULL);
}

/* Mean squared error of outputs z against targets t (rows x outputs): per-row loss
 * sum_c (z - t)^2 / outputs (so their mean over rows is the mean over all elements, PyTorch's
 * nn.MSELoss), and dz = 2(z - t)/outputs · scale. Returns the summed loss. */
static inline double ref_mse(const double *z, const float *t, size_t rows, size_t outputs, double scale, double *dz,
                             double *loss)
{
    double total = 0;
    for (size_t r = 0; r < rows; r++) {
        double l = 0;
        for (size_t c = 0; c < outputs; c++) {
            double e = z[r * outputs + c] - (double)t[r * outputs + c];
            l += e * e;
            if (dz) dz[r * outputs + c] = 2.0 * e / (double)outputs * scale;
        }
        l /= (double)outputs;
        if (loss) loss[r] = l;
        total += l;
    }
    return total;
}

/* Softmax cross-entropy of logits z (rows x classes): per-row loss and correct flag, and
 * dz = (softmax - onehot)·scale. Returns the summed loss. */
static inline double ref_softmax_xent(const double *z, const int32_t *y, size_t rows, size_t classes, double scale,
                                      double *dz, double *loss, int *correct)
{
    double total = 0;
    for (size_t r = 0; r < rows; r++) {
        const double *zr = z + r * classes;
        double mx = zr[0];
        size_t arg = 0;
        for (size_t c = 1; c < classes; c++)
            if (zr[c] > mx) { mx = zr[c]; arg = c; }
        double s = 0;
        for (size_t c = 0; c < classes; c++) s += exp(zr[c] - mx);
        double l = mx + log(s) - zr[y[r]];
        if (loss) loss[r] = l;
        if (correct) correct[r] = (int)arg == y[r];
        total += l;
        for (size_t c = 0; c < classes && dz; c++)
            dz[r * classes + c] = (exp(zr[c] - mx) / s - (c == (size_t)y[r] ? 1.0 : 0.0)) * scale;
    }
    return total;
}

/* Gradient of scale·sum(loss) w.r.t. every parameter into grad (nparams) in a training pass of
 * context tc (NULL: as an inference pass), for int32 labels y (cross-entropy) or float targets
 * (MSE, y NULL); returns sum(loss). loss and correct (rows) may be NULL. */
static inline double ref_loss_grad_full(const cldp_model *m, const float *p, const float *x, const int32_t *y,
                                        const float *targets, size_t rows, double scale, const cldp_train_ctx *tc,
                                        double *grad, double *loss, int *correct)
{
    size_t w = cldp_model_max_width(m);
    double *acts[CLDP_MAX_LAYERS];
    for (size_t l = 0; l < m->nlayers; l++) acts[l] = malloc(rows * m->layers[l].out * sizeof(double));
    double *d = malloc(rows * w * sizeof(double)), *dn = malloc(rows * w * sizeof(double));
    double *x64 = malloc(rows * m->inputs * sizeof(double));
    for (size_t i = 0; i < rows * m->inputs; i++) x64[i] = x[i];
    ref_forward_train(m, p, x, rows, acts, tc);
    const cldp_layer_desc *last = &m->layers[m->nlayers - 1];
    double total;
    if (targets) {
        total = ref_mse(acts[m->nlayers - 1], targets, rows, last->out, scale, d, loss);
        if (correct) memset(correct, 0, rows * sizeof *correct);
    } else {
        total = ref_softmax_xent(acts[m->nlayers - 1], y, rows, last->out, scale, d, loss, correct);
    }
    for (size_t l = m->nlayers; l-- > 0;) {
        const cldp_layer_desc *L = &m->layers[l];
        const cldp_kind_ops *ops = cldp_kind_of(L->kind);
        if (tc && ops->ref_train) {
            if (l > 0) ops->ref_train(L, l, tc, d, rows, dn); /* linear and element-wise: its own backward */
        } else {
            ops->ref_backward(L, p + L->w_off, l == 0 ? x64 : acts[l - 1], acts[l], d, rows, grad + L->w_off,
                              l == 0 ? NULL : dn);
        }
        double *t = d; d = dn; dn = t;
    }
    for (size_t l = 0; l < m->nlayers; l++) free(acts[l]);
    free(d);
    free(dn);
    free(x64);
    return total;
}

/* The parameters a trainer's first SGD step gives (its momentum starts at 0; no weight decay):
 * want (nparams) = p0 - lr·g, p0 the model's initial parameters from `seed`, g the gradient of
 * the mean loss over the n rows of the step (labels y, or MSE targets) with step 0's dropout
 * masks, the rows at global indices 0..n-1. Returns the mean loss. */
static inline double ref_first_sgd_step(const cldp_model *m, uint64_t seed, const float *x, const int32_t *y,
                                        const float *targets, size_t n, double lr, double *want)
{
    float *p0 = malloc(m->nparams * sizeof(float));
    double *g = calloc(m->nparams, sizeof(double));
    cldp_model_init_params(m, seed, p0, m->nparams);
    const cldp_train_ctx tc0 = {seed, 0, 0};
    double loss = ref_loss_grad_full(m, p0, x, y, targets, n, 1.0 / (double)n, &tc0, g, NULL, NULL) / (double)n;
    for (size_t i = 0; i < m->nparams; i++) want[i] = p0[i] - lr * g[i];
    free(p0);
    free(g);
    return loss;
}

/* Cross-entropy on labels y, as an inference pass (no dropout). */
static inline double ref_loss_grad(const cldp_model *m, const float *p, const float *x, const int32_t *y, size_t rows,
                                   double scale, double *grad, double *loss, int *correct)
{
    return ref_loss_grad_full(m, p, x, y, NULL, rows, scale, NULL, grad, loss, correct);
}

#endif
