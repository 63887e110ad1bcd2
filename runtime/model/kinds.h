/* kinds.h — the layer kind table: one entry per layer kind (cldp_layer_kind), OpenCL-free: its
 * shapes and parameter count from its input shape, its sizes (the size table of model.h), its
 * seeded initialisation, its spec token and its double-precision CPU reference. The model, the
 * memory plan, the replica's sizing, the reduction's pieces and the checkpoint ask it. A kind's
 * passes on a replica are the pass table's (layers/layers.h); a new kind is an entry in both,
 * its kernels and its reference. */
#ifndef CLDP_KINDS_H
#define CLDP_KINDS_H

#include "model.h"
#include "rng.h"

/* Which of the replica's programs holds a kind's kernels: a replica builds cl/spatial.cl and
 * cl/dropout.cl only for models with such a layer (a dense model compiles no more than it uses). */
typedef enum { CLDP_PROGRAM_LAYERS, CLDP_PROGRAM_SPATIAL, CLDP_PROGRAM_DROPOUT } cldp_program_id;

typedef struct cldp_kind_ops {
    const char *name;  /* the spec keyword: "dense", "conv", "maxpool", "flatten", "relu", ... */
    /* Backward leaves dL/d(input) in dout itself (element-wise kinds, flatten) instead of din. */
    int in_place_backward;
    cldp_program_id program;
    /* From L's input shape and settings: its output shape and nparams; fails naming `what` on a
     * bad setting or an input shape it cannot take. */
    cldp_status (*shape)(cldp_layer_desc *L, const char *what);
    /* Fills everything of *s but params and param_off (the model sets those). */
    void (*size)(const cldp_layer_desc *L, size_t rows, cldp_layer_size *s);
    /* Draws its parameters p[0, nparams) from rng; `gain` is that of the activation after it. */
    void (*init)(const cldp_layer_desc *L, double gain, cldp_rng *rng, float *p);
    /* Its spec token, e.g. "conv:32:5:p2"; returns what snprintf returns. */
    int (*describe)(const cldp_layer_desc *L, char *buf, size_t cap);
    /* The reference: out (rows, L->out) from in (rows, L->in) and its parameters p (its own,
     * from index 0). */
    void (*ref_forward)(const cldp_layer_desc *L, const float *p, const double *in, size_t rows, double *out);
    /* grad (its nparams) = the gradient of sum(dout·out) w.r.t. its parameters; din (rows, L->in)
     * = the same w.r.t. its input, when din is not NULL. */
    void (*ref_backward)(const cldp_layer_desc *L, const float *p, const double *in, const double *out,
                         const double *dout, size_t rows, double *grad, double *din);
    /* Where not NULL, the layer acts differently in a training pass (dropout): the reference of
     * such a pass, out (rows, L->out) = its map of in (rows, L->in), layer l of the model. The map
     * is linear and element-wise, so the same call applied to dL/d(output) is the backward. In an
     * inference pass ref_forward and ref_backward apply. */
    void (*ref_train)(const cldp_layer_desc *L, size_t l, const cldp_train_ctx *tc, const double *in, size_t rows,
                      double *out);
} cldp_kind_ops;

extern const cldp_kind_ops cldp_kind_dense, cldp_kind_conv2d, cldp_kind_maxpool2d, cldp_kind_flatten, cldp_kind_relu,
    cldp_kind_tanh, cldp_kind_sigmoid, cldp_kind_dropout;

/* The entry of a kind (NULL for a code outside the table). */
const cldp_kind_ops *cldp_kind_of(cldp_layer_kind kind);

/* ---- dropout's mask: a counter-based hash, the same in cl/dropout.cl ----
 * Element e of global row g of a training pass of layer l is dropped when the upper 32 bits of
 * mix64(key + (g·2^24 + e)·0x9E3779B97F4A7C15) are below cldp_dropout_threshold(P), with
 * key = cldp_dropout_key(seed, step, l) (splitmix64's finaliser as the mix): nothing but
 * (seed, step, layer, global row, element) decides it, whatever the split or device count. */
static inline uint64_t cldp_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
uint64_t cldp_dropout_key(const cldp_train_ctx *tc, size_t l);
uint32_t cldp_dropout_threshold(float p);
/* 1 when element e of global row g is kept. */
static inline int cldp_dropout_keeps(uint64_t key, uint32_t threshold, uint64_t g, uint64_t e)
{
    return (uint32_t)(cldp_mix64(key + ((g << 24) + e) * 0x9E3779B97F4A7C15ull) >> 32) >= threshold;
}

/* ---- what the entries share (kinds.c) ---- */

/* The gain of Kaiming initialisation for the activation `act` (CLDP_ACT_*). */
double cldp_layer_gain(int act);

/* Kaiming-uniform weights U(-gain·sqrt(3/fan_in), +) then biases U(-1/sqrt(fan_in), +). */
void cldp_init_uniform(cldp_rng *rng, float *w, size_t nw, float *b, size_t nb, size_t fan_in, double gain);

/* The shape of a layer that keeps its input's (the element-wise kinds, dropout). */
cldp_status cldp_layer_same_shape(cldp_layer_desc *L, const char *what);

/* The activation code (CLDP_ACT_*) of an activation layer (relu, tanh, sigmoid), from its kind. */
static inline int cldp_kind_act(const cldp_layer_desc *L)
{
    return L->kind == CLDP_LAYER_RELU ? CLDP_ACT_RELU : L->kind == CLDP_LAYER_TANH ? CLDP_ACT_TANH : CLDP_ACT_SIGMOID;
}

/* The reference's activation and its derivative from the output. */
double cldp_ref_act(int act, double v);
double cldp_ref_act_grad(int act, double out);

#endif
