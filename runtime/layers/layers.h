/* layers.h — the layer table: one entry per layer kind (cldp_layer_kind), giving its shapes and
 * parameter count from its input shape, its sizes (the size table of model.h), its seeded
 * initialisation, its forward and backward passes on a replica, its spec token and its
 * double-precision CPU reference. The model, the replica, the memory plan, the reduction's pieces
 * and the checkpoint ask this table; a new kind is a new entry, its kernels and its reference. */
#ifndef CLDP_LAYERS_H
#define CLDP_LAYERS_H

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

typedef struct cldp_layer_ops {
    const char *name;  /* the spec keyword: "dense", "conv", "maxpool", "flatten", "relu", ... */
    /* Backward leaves dL/d(input) in dout itself (element-wise kinds, flatten) instead of din. */
    int in_place_backward;
    /* Where its kernels are: 0 cl/layers.cl; 1 cl/spatial.cl, 2 cl/dropout.cl, programs a
     * replica builds only for models with such a layer (a dense model compiles and loads no more
     * than it uses). */
    int spatial_kernels;
    /* From L's input shape and settings: its output shape and nparams; fails naming `what` on a
     * bad setting or an input shape it cannot take. */
    cldp_status (*shape)(cldp_layer_desc *L, const char *what);
    /* Fills everything of *s but params and param_off (the model sets those). */
    void (*size)(const cldp_layer_desc *L, size_t rows, cldp_layer_size *s);
    /* Draws its parameters p[0, nparams) from rng; `gain` is that of the activation after it. */
    void (*init)(const cldp_layer_desc *L, double gain, cldp_rng *rng, float *p);
    cldp_status (*forward)(cldp_replica *r, const cldp_layer_desc *L, const cldp_pass *ps);
    /* backward: the parameter gradient (and din, or dout in place); backward_input, where not
     * NULL, writes din afterwards, so the parameter gradient's copy to the host starts first */
    cldp_status (*backward)(cldp_replica *r, const cldp_layer_desc *L, const cldp_pass *ps);
    cldp_status (*backward_input)(cldp_replica *r, const cldp_layer_desc *L, const cldp_pass *ps);
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
} cldp_layer_ops;

extern const cldp_layer_ops cldp_layer_dense, cldp_layer_conv2d, cldp_layer_maxpool2d, cldp_layer_flatten,
    cldp_layer_relu, cldp_layer_tanh, cldp_layer_sigmoid, cldp_layer_dropout;

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

/* The entry of a kind (NULL for a code outside the table). */
const cldp_layer_ops *cldp_layer_ops_of(cldp_layer_kind kind);

/* The gain of Kaiming initialisation for the activation `act` (CLDP_ACT_*). */
double cldp_layer_gain(int act);

/* ---- helpers the entries share (replica_pass.c) ---- */

/* A kernel of the replica's program by name, made on first use and kept. */
cldp_status cldp_replica_kernel(cldp_replica *r, const char *name, cl_kernel *k);
/* Launches k over n work-items (1-D, the global size padded to the work-group size). */
cldp_status cldp_replica_launch(cldp_replica *r, cl_kernel k, const char *name, size_t n);
/* Launches k over n x rows work-items (2-D: get_global_id(1) is the row; the first dimension is
 * padded as above). */
cldp_status cldp_replica_launch_rows(cldp_replica *r, cl_kernel k, const char *name, size_t n, size_t rows);
/* C = op(A)·op(B) + beta·C in the shape G, through CLBlast. */
cldp_status cldp_replica_gemm(cldp_replica *r, const cldp_gemm_shape *G, cl_mem a, cl_mem b, float beta, cl_mem c);
/* Kernel arguments: ARG(k, i, value) records a failure and returns from the caller. */
#define ARG(k, i, v) CL_CHECK(r->name, clSetKernelArg((k), (i), sizeof(v), &(v)))
/* A kernel's arguments as a list, for cldp_replica_run: {CLDP_ARG(buf), CLDP_ARG(rows), ...}. */
typedef struct cldp_arg { size_t size; const void *value; } cldp_arg;
#define CLDP_ARG(v) {sizeof(v), &(v)}
/* Kernel `name` with arguments args[0, nargs), over n x rows work-items (cldp_replica_launch_rows). */
cldp_status cldp_replica_run(cldp_replica *r, const char *name, const cldp_arg *args, size_t nargs, size_t n, size_t rows);

/* out = act(in) over n elements; dout *= act'(out) over n elements (act a CLDP_ACT_* code). */
cldp_status cldp_replica_act_forward(cldp_replica *r, cl_mem in, cl_mem out, size_t n, int act);
cldp_status cldp_replica_act_backward(cldp_replica *r, cl_mem dout, cl_mem out, size_t n, int act);

/* Kaiming-uniform weights U(-gain·sqrt(3/fan_in), +) then biases U(-1/sqrt(fan_in), +). */
void cldp_init_uniform(cldp_rng *rng, float *w, size_t nw, float *b, size_t nb, size_t fan_in, double gain);

/* The shape of a layer that keeps its input's (the element-wise kinds, dropout). */
cldp_status cldp_layer_same_shape(cldp_layer_desc *L, const char *what);

/* The reference's activation and its derivative from the output. */
double cldp_ref_act(int act, double v);
double cldp_ref_act_grad(int act, double out);

#endif
