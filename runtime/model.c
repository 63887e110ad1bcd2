/* model.c — building a model description and drawing its initial parameters on the host. */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

uint64_t cldp_rng_next(cldp_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double cldp_rng_uniform(cldp_rng *r) { return (double)(cldp_rng_next(r) >> 11) * 0x1.0p-53; }

cldp_status cldp_model_create(size_t inputs, cldp_model **out)
{
    REQUIRE(out, "cldp_model_create: out is NULL");
    *out = NULL;
    REQUIRE(inputs > 0 && inputs <= CLDP_MAX_UNITS, "cldp_model_create: inputs must be in 1..%u, got %zu", CLDP_MAX_UNITS, inputs);
    cldp_model *m = cldp_calloc(1, sizeof *m, "model");
    if (!m) return CLDP_ERR_HOST_MEMORY;
    m->inputs = inputs;
    m->loss = CLDP_LOSS_SOFTMAX_CROSS_ENTROPY;
    *out = m;
    return CLDP_OK;
}

cldp_status cldp_model_add_dense(cldp_model *m, size_t units, cldp_activation act)
{
    REQUIRE(m, "cldp_model_add_dense: model is NULL");
    REQUIRE(units > 0 && units <= CLDP_MAX_UNITS, "cldp_model_add_dense: units must be in 1..%u, got %zu", CLDP_MAX_UNITS, units);
    REQUIRE(act == CLDP_ACT_NONE || act == CLDP_ACT_RELU || act == CLDP_ACT_TANH, "cldp_model_add_dense: unknown activation %d", (int)act);
    REQUIRE(m->nlayers < CLDP_MAX_LAYERS, "cldp_model_add_dense: a model holds at most %d layers", CLDP_MAX_LAYERS);
    size_t in = m->nlayers ? m->layers[m->nlayers - 1].out : m->inputs;
    size_t w, total;
    REQUIRE(cldp_mul_size(in, units, &w) == 0 && w <= SIZE_MAX - units - m->nparams && (total = m->nparams + w + units) < ((size_t)1 << 40),
            "cldp_model_add_dense: %zu x %zu layer makes the model too large", in, units);
    cldp_layer_desc *L = &m->layers[m->nlayers++];
    L->in = in;
    L->out = units;
    L->act = act;
    L->w_off = m->nparams;
    L->b_off = m->nparams + w;
    m->nparams = total;
    return CLDP_OK;
}

cldp_status cldp_model_set_loss(cldp_model *m, cldp_loss loss)
{
    REQUIRE(m, "cldp_model_set_loss: model is NULL");
    REQUIRE(loss == CLDP_LOSS_SOFTMAX_CROSS_ENTROPY, "cldp_model_set_loss: unknown loss %d", (int)loss);
    m->loss = loss;
    return CLDP_OK;
}

void cldp_model_destroy(cldp_model *m) { free(m); }

size_t cldp_model_param_count(const cldp_model *m) { return m ? m->nparams : 0; }
size_t cldp_model_inputs(const cldp_model *m) { return m ? m->inputs : 0; }
size_t cldp_model_outputs(const cldp_model *m) { return m && m->nlayers ? m->layers[m->nlayers - 1].out : 0; }
size_t cldp_model_layer_count(const cldp_model *m) { return m ? m->nlayers : 0; }

size_t cldp_model_max_width(const cldp_model *m)
{
    size_t w = m->inputs;
    for (size_t l = 0; l < m->nlayers; l++)
        if (m->layers[l].out > w) w = m->layers[l].out;
    return w;
}

cldp_status cldp_model_init_params(const cldp_model *m, uint64_t seed, float *p, size_t count)
{
    REQUIRE(m && p, "cldp_model_init_params: model or params is NULL");
    REQUIRE(m->nlayers > 0, "cldp_model_init_params: the model has no layers");
    REQUIRE(count == m->nparams, "cldp_model_init_params: count is %zu but the model has %zu parameters", count, m->nparams);
    cldp_rng rng = {seed};
    for (size_t l = 0; l < m->nlayers; l++) {
        const cldp_layer_desc *L = &m->layers[l];
        /* Kaiming-uniform: U(-gain*sqrt(3/in), +gain*sqrt(3/in)), gain from the layer's activation;
         * biases U(-1/sqrt(in), 1/sqrt(in)) as PyTorch's nn.Linear. */
        double gain = L->act == CLDP_ACT_RELU ? sqrt(2.0) : L->act == CLDP_ACT_TANH ? 5.0 / 3.0 : 1.0;
        double wb = gain * sqrt(3.0 / (double)L->in), bb = 1.0 / sqrt((double)L->in);
        for (size_t i = 0; i < L->in * L->out; i++) p[L->w_off + i] = (float)((2.0 * cldp_rng_uniform(&rng) - 1.0) * wb);
        for (size_t i = 0; i < L->out; i++) p[L->b_off + i] = (float)((2.0 * cldp_rng_uniform(&rng) - 1.0) * bb);
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
    size_t in = L->in, out = L->out;
    s->params = in * out + out;
    s->param_off = L->w_off;
    s->out_per_row = out;
    s->gemm[CLDP_GEMM_FORWARD] = (cldp_gemm_shape){"forward X·Wᵀ", 0, 1, rows, out, in, 0, in, L->w_off, in, 0, out};
    s->gemm[CLDP_GEMM_DW] = (cldp_gemm_shape){"backward dW = dYᵀ·X", 1, 0, out, in, rows, 0, out, 0, in, L->w_off, in};
    s->gemm[CLDP_GEMM_DX] = (cldp_gemm_shape){"backward dX = dY·W", 0, 0, rows, in, out, 0, out, L->w_off, in, 0, in};
    s->scratch_bound = 0;
    for (int g = 0; g < CLDP_GEMM_COUNT; g++) {
        uint64_t b = gemm_scratch_bound(&s->gemm[g]);
        if (b > s->scratch_bound) s->scratch_bound = b;
    }
    s->scratch_forward = gemm_scratch_bound(&s->gemm[CLDP_GEMM_FORWARD]);
}

size_t cldp_model_replica_floats(const cldp_model *m, size_t rows)
{
    size_t f = 2 * m->nparams + rows * m->inputs + 2 * rows * cldp_model_max_width(m) + 3 * rows;
    for (size_t l = 0; l < m->nlayers; l++) {
        cldp_layer_size s;
        cldp_layer_size_of(m, l, rows, &s);
        f += rows * s.out_per_row;
    }
    return f;
}
