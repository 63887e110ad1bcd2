/* model.h — the model description (input shape C×H×W, a stack of layers of the kinds in
 * layers.h, a loss) and its flat parameter layout: layer after layer, the weight then the bias
 * (dense W[out][in], conv W[out][in][k][k], PyTorch's layouts), nothing for layers without. */
#ifndef CLDP_MODEL_H
#define CLDP_MODEL_H

#include "common.h"

#define CLDP_MAX_LAYERS 64
#define CLDP_MAX_UNITS (1u << 24)

/* Layer kinds; each has one entry in the layer table (layers.h). Append-only: the checkpoint
 * stores these codes. */
typedef enum cldp_layer_kind {
    CLDP_LAYER_DENSE = 0,
    CLDP_LAYER_CONV2D = 1,
    CLDP_LAYER_MAXPOOL2D = 2,
    CLDP_LAYER_FLATTEN = 3,
    CLDP_LAYER_RELU = 4,
    CLDP_LAYER_TANH = 5,
    CLDP_LAYER_SIGMOID = 6,
    CLDP_LAYER_DROPOUT = 7,
    CLDP_LAYER_KIND_COUNT
} cldp_layer_kind;

typedef struct cldp_layer_desc {
    cldp_layer_kind kind;
    size_t in_c, in_h, in_w;    /* input shape of one sample, NCHW; a flat input is (n, 1, 1) */
    size_t out_c, out_h, out_w; /* output shape of one sample */
    size_t in, out;             /* in_c·in_h·in_w and out_c·out_h·out_w floats per sample */
    cldp_activation act;        /* dense: its built-in activation (else NONE) */
    size_t k, stride, pad;      /* conv2d, maxpool2d: square kernel, stride, zero padding */
    float drop;                 /* dropout: the probability P of zeroing an element, [0, 1) */
    size_t nparams;             /* floats of its parameters, weight then bias */
    size_t w_off;               /* offset of its weight in the flat parameter vector, in floats */
    size_t b_off;               /* offset of its bias */
} cldp_layer_desc;

struct cldp_model {
    size_t inputs;              /* in_c·in_h·in_w */
    size_t in_c, in_h, in_w;    /* input shape of one sample */
    size_t nlayers;
    cldp_layer_desc layers[CLDP_MAX_LAYERS];
    cldp_loss loss;
    size_t nparams;
};

/* Appends a layer of `kind` with the settings in *L (kind-specific fields only) after the last:
 * its input shape is the model's output shape, its output shape and parameters come from the
 * layer table. A bad setting or a shape mismatch fails naming `what` (e.g. "layer 3
 * 'conv:8:5'"). */
cldp_status cldp_model_add_layer(cldp_model *m, const cldp_layer_desc *L, const char *what);

/* The model's output shape (its input shape while it has no layers). */
void cldp_model_out_shape(const cldp_model *m, size_t *c, size_t *h, size_t *w);

/* 1 when a and b describe the same model (input shape, layers and their settings, loss). */
int cldp_model_same(const cldp_model *a, const cldp_model *b);

/* What a training pass is, for the layers that behave differently in training (dropout): the
 * trainer's seed (cldp_dropout_key mixes CLDP_DROPOUT_SALT into it), its step count (optimizer
 * steps committed before this one), and the global index in the step's batch of the pass's
 * first row (its shard's offset plus its micro-batch's). A pass without one (evaluation,
 * prediction, serving) is an inference pass. */
typedef struct cldp_train_ctx {
    uint64_t seed, step, row0;
} cldp_train_ctx;

/* Mixed into the trainer's seed for the dropout masks ("dropout" in ASCII), so they do not
 * repeat the bits the same seed draws the initial parameters from. */
#define CLDP_DROPOUT_SALT 0x64726f706f7574ull

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
    size_t params;                 /* floats of its parameters: weight, then bias */
    size_t param_off;              /* where they start in the flat vector */
    size_t out_per_row;            /* floats of its output activation per row */
    size_t own_output;             /* 1: the layer has an output buffer; 0: it aliases its input */
    size_t aux_per_row;            /* int32s it keeps per row between forward and backward */
    size_t chunk;                  /* rows one pass of its GEMMs covers (conv: im2col chunks) */
    size_t scratch[2];             /* floats of the two shared scratch buffers it needs at that
                                      chunk (conv: the columns, and its GEMM's output) */
    size_t ngemm;                  /* GEMMs it issues: 0 or CLDP_GEMM_COUNT */
    /* dense at `rows` rows: forward Y = X·Wᵀ (A = X, B = W, C = Y); dW = dYᵀ·X (A = dY, B = X,
     * C = gradients); dX = dY·W (A = dY, B = W, C = dX). conv: see layer_conv.c. */
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
 * every layer's own output and kept values, two ping-pong gradient buffers of the widest layer,
 * the layers' shared scratch, labels, losses and correct flags. */
size_t cldp_model_replica_floats(const cldp_model *m, size_t rows);

/* The widest layer (inputs included), for sizing scratch buffers. */
size_t cldp_model_max_width(const cldp_model *m);

/* The largest scratch buffer i (0 or 1) any layer asks for at `rows` rows, in floats. */
size_t cldp_model_scratch_floats(const cldp_model *m, size_t rows, int i);


#endif
