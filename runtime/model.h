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

/* ---- the size table ------------------------------------------------------------------------
 * One entry per layer, asked by everything that sizes something: the replica (its buffers, and
 * the GEMMs it issues and sizes CLBlast's scratch for), the memory plan, the reduction's pieces
 * and the checkpoint. A layer's sizes live here and nowhere else. */

typedef enum { CLDP_GEMM_FORWARD, CLDP_GEMM_DW, CLDP_GEMM_DX, CLDP_GEMM_COUNT } cldp_gemm_kind;

/* One GEMM of a pass, row-major: C (m x n) = op(A) (m x k) · op(B) (k x n), offsets and leading
 * dimensions in floats into the buffers the replica passes for A, B and C. */
typedef struct cldp_gemm_shape {
    const char *what;              /* "forward X·Wᵀ", for messages */
    int trans_a, trans_b;          /* 1: the operand is transposed */
    size_t m, n, k;
    size_t a_off, lda, b_off, ldb, c_off, ldc;
} cldp_gemm_shape;

typedef struct cldp_layer_size {
    size_t params;                 /* floats of its parameters: W (out x in), then b (out) */
    size_t param_off;              /* where they start in the flat vector */
    size_t out_per_row;            /* floats of its output activation per row */
    /* at `rows` rows: forward Y = X·Wᵀ (A = X, B = W, C = Y); dW = dYᵀ·X (A = dY, B = X,
     * C = gradients); dX = dY·W (A = dY, B = W, C = dX) */
    cldp_gemm_shape gemm[CLDP_GEMM_COUNT];
    /* bytes of CLBlast scratch the largest of these GEMMs may need, at most: its indirect GEMM
     * pads each matrix to its work-group tiles (at most 128 on any tuning we know) and may copy
     * all three. The memory plan's estimate, made before any device exists; the replica asks
     * CLBlast for the exact figure of the same shapes (CLBlastSGemmTempBufferSize). */
    uint64_t scratch_bound;
    uint64_t scratch_forward;      /* the same for the forward GEMM alone (an inference replica) */
} cldp_layer_size;

/* Layer l's sizes at `rows` rows. */
void cldp_layer_size_of(const cldp_model *m, size_t l, size_t rows, cldp_layer_size *s);

/* Device floats a replica of `m` holding `rows` rows allocates: parameters, gradients, the input,
 * every layer's output, two ping-pong gradient buffers of the widest layer, labels, losses and
 * correct flags. */
size_t cldp_model_replica_floats(const cldp_model *m, size_t rows);

/* The widest layer (inputs included), for sizing scratch buffers. */
size_t cldp_model_max_width(const cldp_model *m);

/* A small deterministic RNG (splitmix64), used for parameter initialisation and by tests. */
typedef struct cldp_rng { uint64_t s; } cldp_rng;
uint64_t cldp_rng_next(cldp_rng *r);
double cldp_rng_uniform(cldp_rng *r); /* [0, 1) with 53 random bits */

#endif
