/* layers.c — the pass table itself: one entry per cldp_layer_kind, with a tripwire on the count. */
#include "layers.h"

static const cldp_pass_ops *const table[] = {
    [CLDP_LAYER_DENSE] = &cldp_pass_dense,         [CLDP_LAYER_CONV2D] = &cldp_pass_conv2d,
    [CLDP_LAYER_MAXPOOL2D] = &cldp_pass_maxpool2d, [CLDP_LAYER_FLATTEN] = &cldp_pass_flatten,
    [CLDP_LAYER_RELU] = &cldp_pass_act,            [CLDP_LAYER_TANH] = &cldp_pass_act,
    [CLDP_LAYER_SIGMOID] = &cldp_pass_act,         [CLDP_LAYER_DROPOUT] = &cldp_pass_dropout,
};
_Static_assert(sizeof table / sizeof *table == CLDP_LAYER_KIND_COUNT, "every layer kind has an entry in the pass table");

const cldp_pass_ops *cldp_pass_of(cldp_layer_kind kind)
{
    return (unsigned)kind < CLDP_LAYER_KIND_COUNT ? table[kind] : NULL;
}
