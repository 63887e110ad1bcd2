/* model.c — building a model description from layers of the layer table, its size table, and
 * drawing its initial parameters on the host. */
#include "kinds.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cldp_status cldp_model_create_shaped(size_t c, size_t h, size_t w, cldp_model **out)
{
    REQUIRE(out, "cldp_model_create: out is NULL");
    *out = NULL;
    size_t n;
    REQUIRE(c > 0 && h > 0 && w > 0 && cldp_mul_size(c, h, &n) == 0 && cldp_mul_size(n, w, &n) == 0 && n <= CLDP_MAX_UNITS,
            "cldp_model_create: the input shape %zux%zux%zu must have 1..%u elements", c, h, w, CLDP_MAX_UNITS);
    cldp_model *m = cldp_calloc(1, sizeof *m, "model");
    if (!m) return CLDP_ERR_HOST_MEMORY;
    m->inputs = n;
    m->in_c = c;
    m->in_h = h;
    m->in_w = w;
    m->loss = CLDP_LOSS_SOFTMAX_CROSS_ENTROPY;
    *out = m;
    return CLDP_OK;
}

cldp_status cldp_model_create(size_t inputs, cldp_model **out)
{
    REQUIRE(out, "cldp_model_create: out is NULL");
    *out = NULL;
    REQUIRE(inputs > 0 && inputs <= CLDP_MAX_UNITS, "cldp_model_create: inputs must be in 1..%u, got %zu", CLDP_MAX_UNITS, inputs);
    return cldp_model_create_shaped(inputs, 1, 1, out);
}

void cldp_model_out_shape(const cldp_model *m, size_t *c, size_t *h, size_t *w)
{
    if (m->nlayers == 0) {
        *c = m->in_c, *h = m->in_h, *w = m->in_w;
        return;
    }
    const cldp_layer_desc *L = &m->layers[m->nlayers - 1];
    *c = L->out_c, *h = L->out_h, *w = L->out_w;
}

cldp_status cldp_model_add_layer(cldp_model *m, const cldp_layer_desc *settings, const char *what)
{
    REQUIRE(m && settings, "%s: model is NULL", what);
    const cldp_kind_ops *ops = cldp_kind_of(settings->kind);
    REQUIRE(ops, "%s: unknown layer kind %d", what, (int)settings->kind);
    REQUIRE(m->nlayers < CLDP_MAX_LAYERS, "%s: a model holds at most %d layers", what, CLDP_MAX_LAYERS);
    cldp_layer_desc L = *settings;
    cldp_model_out_shape(m, &L.in_c, &L.in_h, &L.in_w);
    L.in = L.in_c * L.in_h * L.in_w;
    L.nparams = 0;
    TRY(ops->shape(&L, what));
    REQUIRE(L.out > 0 && L.out <= CLDP_MAX_UNITS, "%s: its output of %zu values per sample is outside 1..%u", what, L.out,
            CLDP_MAX_UNITS);
    REQUIRE(L.nparams <= SIZE_MAX - m->nparams && m->nparams + L.nparams < ((size_t)1 << 40), "%s makes the model too large", what);
    L.w_off = m->nparams;
    L.b_off = m->nparams + L.nparams - (L.kind == CLDP_LAYER_DENSE || L.kind == CLDP_LAYER_CONV2D ? L.out_c : 0);
    m->nparams += L.nparams;
    m->layers[m->nlayers++] = L;
    return CLDP_OK;
}

cldp_status cldp_model_add_dense(cldp_model *m, size_t units, cldp_activation act)
{
    REQUIRE(m, "cldp_model_add_dense: model is NULL");
    REQUIRE(units > 0 && units <= CLDP_MAX_UNITS, "cldp_model_add_dense: units must be in 1..%u, got %zu", CLDP_MAX_UNITS, units);
    REQUIRE(act == CLDP_ACT_NONE || act == CLDP_ACT_RELU || act == CLDP_ACT_TANH || act == CLDP_ACT_SIGMOID,
            "cldp_model_add_dense: unknown activation %d", (int)act);
    cldp_layer_desc L = {.kind = CLDP_LAYER_DENSE, .out_c = units, .act = act};
    return cldp_model_add_layer(m, &L, "cldp_model_add_dense");
}

cldp_status cldp_model_add_conv2d(cldp_model *m, size_t out_channels, size_t kernel, size_t stride, size_t padding)
{
    cldp_layer_desc L = {.kind = CLDP_LAYER_CONV2D, .out_c = out_channels, .k = kernel, .stride = stride, .pad = padding};
    return cldp_model_add_layer(m, &L, "cldp_model_add_conv2d");
}

cldp_status cldp_model_add_maxpool2d(cldp_model *m, size_t kernel, size_t stride)
{
    cldp_layer_desc L = {.kind = CLDP_LAYER_MAXPOOL2D, .k = kernel, .stride = stride ? stride : kernel};
    return cldp_model_add_layer(m, &L, "cldp_model_add_maxpool2d");
}

cldp_status cldp_model_add_dropout(cldp_model *m, float p)
{
    cldp_layer_desc L = {.kind = CLDP_LAYER_DROPOUT, .drop = p};
    return cldp_model_add_layer(m, &L, "cldp_model_add_dropout");
}

cldp_status cldp_model_add_flatten(cldp_model *m)
{
    cldp_layer_desc L = {.kind = CLDP_LAYER_FLATTEN};
    return cldp_model_add_layer(m, &L, "cldp_model_add_flatten");
}

cldp_status cldp_model_add_activation(cldp_model *m, cldp_activation act)
{
    REQUIRE(act == CLDP_ACT_RELU || act == CLDP_ACT_TANH || act == CLDP_ACT_SIGMOID,
            "cldp_model_add_activation: activation %d is not relu, tanh or sigmoid", (int)act);
    cldp_layer_desc L = {.kind = act == CLDP_ACT_RELU ? CLDP_LAYER_RELU : act == CLDP_ACT_TANH ? CLDP_LAYER_TANH : CLDP_LAYER_SIGMOID};
    return cldp_model_add_layer(m, &L, "cldp_model_add_activation");
}

cldp_status cldp_model_set_loss(cldp_model *m, cldp_loss loss)
{
    REQUIRE(m, "cldp_model_set_loss: model is NULL");
    REQUIRE(loss == CLDP_LOSS_SOFTMAX_CROSS_ENTROPY || loss == CLDP_LOSS_MSE,
            "cldp_model_set_loss: unknown loss %d (CLDP_LOSS_SOFTMAX_CROSS_ENTROPY or CLDP_LOSS_MSE)", (int)loss);
    m->loss = loss;
    return CLDP_OK;
}

void cldp_model_destroy(cldp_model *m) { free(m); }

size_t cldp_model_param_count(const cldp_model *m) { return m ? m->nparams : 0; }
size_t cldp_model_inputs(const cldp_model *m) { return m ? m->inputs : 0; }
size_t cldp_model_outputs(const cldp_model *m) { return m && m->nlayers ? m->layers[m->nlayers - 1].out : 0; }
size_t cldp_model_layer_count(const cldp_model *m) { return m ? m->nlayers : 0; }

int cldp_model_same(const cldp_model *a, const cldp_model *b)
{
    if (a->in_c != b->in_c || a->in_h != b->in_h || a->in_w != b->in_w || a->nlayers != b->nlayers || a->loss != b->loss ||
        a->nparams != b->nparams)
        return 0;
    for (size_t l = 0; l < a->nlayers; l++) {
        const cldp_layer_desc *x = &a->layers[l], *y = &b->layers[l];
        if (x->kind != y->kind || x->out_c != y->out_c || x->act != y->act || x->k != y->k || x->stride != y->stride ||
            x->pad != y->pad || x->drop != y->drop)
            return 0;
    }
    return 1;
}

size_t cldp_model_max_width(const cldp_model *m)
{
    size_t w = m->inputs;
    for (size_t l = 0; l < m->nlayers; l++)
        if (m->layers[l].out > w) w = m->layers[l].out;
    return w;
}

/* The activation that follows layer l, as a CLDP_ACT_* code, for its initialisation gain. */
static int act_after(const cldp_model *m, size_t l)
{
    if (m->layers[l].act != CLDP_ACT_NONE) return (int)m->layers[l].act;
    for (size_t j = l + 1; j < m->nlayers; j++) {
        cldp_layer_kind k = m->layers[j].kind;
        if (k == CLDP_LAYER_RELU) return CLDP_ACT_RELU;
        if (k == CLDP_LAYER_TANH) return CLDP_ACT_TANH;
        if (k == CLDP_LAYER_SIGMOID) return CLDP_ACT_SIGMOID;
        if (k != CLDP_LAYER_FLATTEN && k != CLDP_LAYER_MAXPOOL2D && k != CLDP_LAYER_DROPOUT)
            break; /* only shape layers (and dropout) between */
    }
    return CLDP_ACT_NONE;
}

cldp_status cldp_model_init_params(const cldp_model *m, uint64_t seed, float *p, size_t count)
{
    REQUIRE(m && p, "cldp_model_init_params: model or params is NULL");
    REQUIRE(m->nlayers > 0, "cldp_model_init_params: the model has no layers");
    REQUIRE(count == m->nparams, "cldp_model_init_params: count is %zu but the model has %zu parameters", count, m->nparams);
    cldp_rng rng = {seed};
    for (size_t l = 0; l < m->nlayers; l++) {
        const cldp_layer_desc *L = &m->layers[l];
        if (L->nparams) cldp_kind_of(L->kind)->init(L, cldp_layer_gain(act_after(m, l)), &rng, p + L->w_off);
    }
    return CLDP_OK;
}

/* ---- the size table ---------------------------------------------------------------------- */

static uint64_t round_up(uint64_t x, uint64_t to) { return (x + to - 1) / to * to; }

static uint64_t gemm_scratch_bound(const cldp_gemm_shape *g)
{
    uint64_t m = round_up(g->m, 128), n = round_up(g->n, 128), k = round_up(g->k, 128);
    return (m * k + k * n + m * n) * sizeof(float);
}

void cldp_layer_size_of(const cldp_model *m, size_t l, size_t rows, cldp_layer_size *s)
{
    const cldp_layer_desc *L = &m->layers[l];
    memset(s, 0, sizeof *s);
    cldp_kind_of(L->kind)->size(L, rows, s);
    s->params = L->nparams;
    s->param_off = L->w_off;
    s->out_per_row = L->out;
    s->scratch_bound = 0;
    for (size_t g = 0; g < s->ngemm; g++) {
        uint64_t b = gemm_scratch_bound(&s->gemm[g]);
        if (b > s->scratch_bound) s->scratch_bound = b;
    }
    s->scratch_forward = gemm_scratch_bound(&s->gemm[CLDP_GEMM_FORWARD]);
}

size_t cldp_model_scratch_floats(const cldp_model *m, size_t rows, int i)
{
    size_t need = 0;
    for (size_t l = 0; l < m->nlayers; l++) {
        cldp_layer_size s;
        cldp_layer_size_of(m, l, rows, &s);
        if (s.scratch[i] > need) need = s.scratch[i];
    }
    return need;
}

size_t cldp_model_replica_floats(const cldp_model *m, size_t rows)
{
    size_t f = 2 * m->nparams + rows * m->inputs + 2 * rows * cldp_model_max_width(m) + 3 * rows +
               (m->loss == CLDP_LOSS_MSE ? rows * cldp_model_outputs(m) : 0) +
               cldp_model_scratch_floats(m, rows, 0) + cldp_model_scratch_floats(m, rows, 1);
    for (size_t l = 0; l < m->nlayers; l++) {
        cldp_layer_size s;
        cldp_layer_size_of(m, l, rows, &s);
        f += rows * (s.own_output * s.out_per_row + s.aux_per_row);
    }
    return f;
}
