/* model.h — the model description (input size, dense layers, loss) and its flat parameter layout:
 * per layer W[out][in] row-major then b[out], PyTorch's nn.Linear layout. */
#ifndef CLDP_MODEL_H
#define CLDP_MODEL_H

#include "common.h"

#define CLDP_MAX_LAYERS 64
#define CLDP_MAX_UNITS (1u << 24)

typedef struct cldp_layer_desc {
    size_t in, out;
    cldp_activation act;
    size_t w_off; /* offset of W (out, in) in the flat parameter vector, in floats */
    size_t b_off; /* offset of b (out) */
} cldp_layer_desc;

struct cldp_model {
    size_t inputs;
    size_t nlayers;
    cldp_layer_desc layers[CLDP_MAX_LAYERS];
    cldp_loss loss;
    size_t nparams;
};

/* The widest layer (inputs included), for sizing scratch buffers. */
size_t cldp_model_max_width(const cldp_model *m);

/* A small deterministic RNG (splitmix64), used for parameter initialisation and by tests. */
typedef struct cldp_rng { uint64_t s; } cldp_rng;
uint64_t cldp_rng_next(cldp_rng *r);
double cldp_rng_uniform(cldp_rng *r); /* [0, 1) with 53 random bits */

#endif
