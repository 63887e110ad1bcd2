/* kinds.c — the layer kind table itself (one entry per cldp_layer_kind, with a tripwire on the
 * count) and what its entries share: initialisation, activation codes and their reference. */
#include "kinds.h"

#include <math.h>

static const cldp_kind_ops *const table[] = {
    [CLDP_LAYER_DENSE] = &cldp_kind_dense,     [CLDP_LAYER_CONV2D] = &cldp_kind_conv2d,
    [CLDP_LAYER_MAXPOOL2D] = &cldp_kind_maxpool2d, [CLDP_LAYER_FLATTEN] = &cldp_kind_flatten,
    [CLDP_LAYER_RELU] = &cldp_kind_relu,       [CLDP_LAYER_TANH] = &cldp_kind_tanh,
    [CLDP_LAYER_SIGMOID] = &cldp_kind_sigmoid, [CLDP_LAYER_DROPOUT] = &cldp_kind_dropout,
};
_Static_assert(sizeof table / sizeof *table == CLDP_LAYER_KIND_COUNT, "every layer kind has an entry in the kind table");

const cldp_kind_ops *cldp_kind_of(cldp_layer_kind kind)
{
    return (unsigned)kind < CLDP_LAYER_KIND_COUNT ? table[kind] : NULL;
}

double cldp_layer_gain(int act)
{
    return act == CLDP_ACT_RELU ? sqrt(2.0) : act == CLDP_ACT_TANH ? 5.0 / 3.0 : 1.0;
}

void cldp_init_uniform(cldp_rng *rng, float *w, size_t nw, float *b, size_t nb, size_t fan_in, double gain)
{
    /* Kaiming-uniform; biases as PyTorch's nn.Linear and nn.Conv2d */
    double wb = gain * sqrt(3.0 / (double)fan_in), bb = 1.0 / sqrt((double)fan_in);
    for (size_t i = 0; i < nw; i++) w[i] = (float)((2.0 * cldp_rng_uniform(rng) - 1.0) * wb);
    for (size_t i = 0; i < nb; i++) b[i] = (float)((2.0 * cldp_rng_uniform(rng) - 1.0) * bb);
}

double cldp_ref_act(int act, double v)
{
    return act == CLDP_ACT_RELU ? (v > 0 ? v : 0) : act == CLDP_ACT_TANH ? tanh(v) : act == CLDP_ACT_SIGMOID ? 1 / (1 + exp(-v)) : v;
}

double cldp_ref_act_grad(int act, double a)
{
    return act == CLDP_ACT_RELU ? (a > 0) : act == CLDP_ACT_TANH ? 1 - a * a : act == CLDP_ACT_SIGMOID ? a * (1 - a) : 1;
}
