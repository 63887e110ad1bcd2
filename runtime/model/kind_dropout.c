/* kind_dropout.c — the kind of inverted dropout (PyTorch's nn.Dropout): in a training pass each element is
 * zeroed with probability P and the others multiplied by 1/(1 - P); in an inference pass it is
 * the identity. The mask comes from a counter-based hash of (seed, step, layer, global row,
 * element) (kinds.h, cl/dropout.cl): no state, nothing kept between forward and backward, and
 * the same mask whatever the split, the device count or the micro-batches.
 * Its passes: layers/layer_dropout.c. */
#include "kinds.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

uint64_t cldp_dropout_key(const cldp_train_ctx *tc, size_t l)
{
    uint64_t k = cldp_mix64(tc->seed ^ CLDP_DROPOUT_SALT);
    k = cldp_mix64(k + ((uint64_t)l + 1) * 0x9E3779B97F4A7C15ull);
    return cldp_mix64(k + (tc->step + 1) * 0xD1B54A32D192ED03ull);
}

uint32_t cldp_dropout_threshold(float p)
{
    /* P < 1, so the product stays below 2^32 */
    return (uint32_t)floor((double)p * 4294967296.0);
}

static cldp_status dropout_shape(cldp_layer_desc *L, const char *what)
{
    REQUIRE(isfinite(L->drop) && L->drop >= 0 && L->drop < 1, "%s: the dropout probability must be in [0, 1), got %g",
            what, (double)L->drop);
    return cldp_layer_same_shape(L, what);
}

static void dropout_size(const cldp_layer_desc *L, size_t rows, cldp_layer_size *s)
{
    (void)L;
    s->own_output = 1;
    s->chunk = rows;
}

/* "dropout:P" with the shortest P that reads back as the same float. */
static int dropout_describe(const cldp_layer_desc *L, char *buf, size_t cap)
{
    char num[32];
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(num, sizeof num, "%.*g", digits, (double)L->drop);
        if ((float)strtod(num, NULL) == L->drop) break;
    }
    return snprintf(buf, cap, "dropout:%s", num);
}

static void identity_forward(const cldp_layer_desc *L, const float *p, const double *x, size_t rows, double *y)
{
    (void)p;
    for (size_t i = 0; i < rows * L->in; i++) y[i] = x[i];
}

static void identity_backward(const cldp_layer_desc *L, const float *p, const double *x, const double *y, const double *dy,
                              size_t rows, double *grad, double *dx)
{
    (void)p, (void)x, (void)y, (void)grad;
    if (dx)
        for (size_t i = 0; i < rows * L->in; i++) dx[i] = dy[i];
}

static void dropout_ref_train(const cldp_layer_desc *L, size_t l, const cldp_train_ctx *tc, const double *x, size_t rows,
                              double *y)
{
    uint64_t key = cldp_dropout_key(tc, l);
    uint32_t threshold = cldp_dropout_threshold(L->drop);
    double scale = 1.0 / (1.0 - (double)L->drop);
    for (size_t r = 0; r < rows; r++)
        for (size_t e = 0; e < L->in; e++)
            y[r * L->in + e] = cldp_dropout_keeps(key, threshold, tc->row0 + r, e) ? x[r * L->in + e] * scale : 0.0;
}

const cldp_kind_ops cldp_kind_dropout = {"dropout", 1, CLDP_PROGRAM_DROPOUT, dropout_shape, dropout_size, NULL,
                                         dropout_describe, identity_forward, identity_backward, dropout_ref_train};
