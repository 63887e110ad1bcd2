/* reference.h — a plain-C, double-precision reference of every layer and kernel of a replica:
 * dense forward with bias and activation, softmax cross-entropy with its gradient and correct
 * count, and the backward pass. The tests compare the devices against it. */
#ifndef CLDP_REFERENCE_H
#define CLDP_REFERENCE_H

#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static inline double ref_act(int act, double v)
{
    return act == CLDP_ACT_RELU ? (v > 0 ? v : 0) : act == CLDP_ACT_TANH ? tanh(v) : v;
}

/* acts[l] (rows x out_l) receives each layer's output; the last layer's are the logits. */
static inline void ref_forward(const cldp_model *m, const float *p, const float *x, size_t rows, double **acts)
{
    for (size_t l = 0; l < m->nlayers; l++) {
        const cldp_layer_desc *L = &m->layers[l];
        for (size_t r = 0; r < rows; r++)
            for (size_t o = 0; o < L->out; o++) {
                double s = p[L->b_off + o];
                for (size_t i = 0; i < L->in; i++) {
                    double xi = l == 0 ? (double)x[r * L->in + i] : acts[l - 1][r * L->in + i];
                    s += xi * (double)p[L->w_off + o * L->in + i];
                }
                acts[l][r * L->out + o] = ref_act(L->act, s);
            }
    }
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

/* Gradient of scale·sum(loss) w.r.t. every parameter into grad (nparams); returns sum(loss).
 * loss and correct (rows) may be NULL. */
static inline double ref_loss_grad(const cldp_model *m, const float *p, const float *x, const int32_t *y, size_t rows,
                                   double scale, double *grad, double *loss, int *correct)
{
    size_t w = cldp_model_max_width(m);
    double *acts[CLDP_MAX_LAYERS];
    for (size_t l = 0; l < m->nlayers; l++) acts[l] = malloc(rows * m->layers[l].out * sizeof(double));
    double *d = malloc(rows * w * sizeof(double)), *dn = malloc(rows * w * sizeof(double));
    ref_forward(m, p, x, rows, acts);
    const cldp_layer_desc *last = &m->layers[m->nlayers - 1];
    double total = ref_softmax_xent(acts[m->nlayers - 1], y, rows, last->out, scale, d, loss, correct);
    for (size_t l = m->nlayers; l-- > 0;) {
        const cldp_layer_desc *L = &m->layers[l];
        for (size_t o = 0; o < L->out; o++) {
            double sb = 0;
            for (size_t r = 0; r < rows; r++) sb += d[r * L->out + o];
            grad[L->b_off + o] = sb;
            for (size_t i = 0; i < L->in; i++) {
                double s = 0;
                for (size_t r = 0; r < rows; r++)
                    s += d[r * L->out + o] * (l == 0 ? (double)x[r * L->in + i] : acts[l - 1][r * L->in + i]);
                grad[L->w_off + o * L->in + i] = s;
            }
        }
        if (l == 0) break;
        int act = m->layers[l - 1].act;
        for (size_t r = 0; r < rows; r++)
            for (size_t i = 0; i < L->in; i++) {
                double s = 0;
                for (size_t o = 0; o < L->out; o++) s += d[r * L->out + o] * (double)p[L->w_off + o * L->in + i];
                double a = acts[l - 1][r * L->in + i];
                dn[r * L->in + i] = act == CLDP_ACT_RELU ? (a > 0 ? s : 0) : act == CLDP_ACT_TANH ? s * (1 - a * a) : s;
            }
        double *t = d; d = dn; dn = t;
    }
    for (size_t l = 0; l < m->nlayers; l++) free(acts[l]);
    free(d);
    free(dn);
    return total;
}

#endif
