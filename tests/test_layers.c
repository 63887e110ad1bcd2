/* test_layers — every kernel and every layer's forward and backward on a real OpenCL device,
 * against the double-precision reference of reference.h, on random shapes including 1, 7, 33
 * and 129, and the gradient's delivery to the host in every staging mode. Tolerances:
 * |x - ref| <= atol + rtol·|ref| with the values stated at each check. */
#define _POSIX_C_SOURCE 200809L
#undef NDEBUG
#include "layers.h"
#include "reference.h"
#include "testutil.h"

typedef struct layer_case {
    size_t inputs, rows;
    size_t units[4];
    cldp_activation acts[4];
    size_t nlayers;
} layer_case;

static void poison(cldp_replica *r, cl_mem buf, size_t floats)
{
    float *nan = malloc(floats * sizeof(float));
    for (size_t i = 0; i < floats; i++) nan[i] = NAN;
    clEnqueueWriteBuffer(r->queue, buf, CL_TRUE, 0, floats * sizeof(float), nan, 0, NULL, NULL);
    free(nan);
}

/* Delivery of the gradient to the host, layer by layer, in every staging mode a device can take
 * (forced on PoCL through CLDP_STAGING / CLDP_OVERLAP): each layer's values against the double
 * reference g, and a zero delivery. */
static void check_delivery(const cldp_dev *dev, const cldp_model *m, const float *p, const float *x, const int32_t *y,
                           size_t rows, double scale, const double *g)
{
    static const struct { const char *staging, *overlap; cldp_staging want; int streams; } modes[] = {
        {"pinned", "on", CLDP_STAGING_PINNED, 1},
        {"pinned", "off", CLDP_STAGING_PINNED, 0},
        {"copy", "on", CLDP_STAGING_HOST, 1},
        {"copy", "off", CLDP_STAGING_HOST, 0},
        {"auto", "on", CLDP_STAGING_ZERO_COPY, 0},
    };
    for (size_t k = 0; k < sizeof modes / sizeof *modes; k++) {
        cldp_test_control(CLDP_TEST_CONFIG, "CLDP_STAGING", modes[k].staging);
        cldp_test_control(CLDP_TEST_CONFIG, "CLDP_OVERLAP", modes[k].overlap);
        cldp_replica *r = NULL;
        CHECK_OK(cldp_replica_create(dev, m, rows, &r));
        cldp_test_control(CLDP_TEST_CONFIG, "CLDP_STAGING", (const char *)NULL);
        cldp_test_control(CLDP_TEST_CONFIG, "CLDP_OVERLAP", (const char *)NULL);
        if (!r) return;
        cldp_staging want = modes[k].want;
        if (want == CLDP_STAGING_ZERO_COPY && !dev->info.host_unified_memory) want = CLDP_STAGING_PINNED;
        CHECK(r->staging == want);
        CHECK(want != CLDP_STAGING_PINNED || (r->stage_buf && r->stage));
        CHECK_OK(cldp_replica_write_params(r, p, 0, m->nparams));
        poison(r, r->grads, m->nparams);
        CHECK_OK(cldp_replica_load(r, x, y, rows));
        CHECK_OK(cldp_replica_forward(r, rows));
        CHECK_OK(cldp_replica_backward_deliver(r, rows, (float)scale, 0));
        CHECK(r->streamed == (modes[k].streams && want != CLDP_STAGING_ZERO_COPY));
        for (size_t l = m->nlayers; l-- > 0;) {
            const cldp_layer_desc *L = &m->layers[l];
            const float *got = NULL;
            CHECK_OK(cldp_replica_layer_grads(r, l, &got));
            if (!got) continue;
            char what[96];
            snprintf(what, sizeof what, "layer %zu gradient delivered (staging %s, overlap %s)", l, modes[k].staging,
                     modes[k].overlap);
            test_close(what, got, g + L->w_off, L->in * L->out + L->out, 2e-6, 1e-3);
        }
        CHECK_OK(cldp_replica_deliver_zero(r));
        for (size_t l = 0; l < m->nlayers; l++) {
            const float *got = NULL;
            CHECK_OK(cldp_replica_layer_grads(r, l, &got));
            for (size_t i = 0; got && i < m->layers[l].in * m->layers[l].out + m->layers[l].out; i++)
                if (got[i] != 0.0f) {
                    fprintf(stderr, "FAIL zero delivery, staging %s: layer %zu element %zu is %g\n", modes[k].staging, l, i,
                            (double)got[i]);
                    test_failures++;
                    break;
                }
        }
        CHECK_OK(cldp_replica_release_grads(r));
        cldp_replica_destroy(r);
    }
}

static void run_case(const cldp_dev *dev, const layer_case *c)
{
    char what[160];
    cldp_model *m;
    CHECK_OK(cldp_model_create(c->inputs, &m));
    for (size_t l = 0; l < c->nlayers; l++) CHECK_OK(cldp_model_add_dense(m, c->units[l], c->acts[l]));
    size_t np = m->nparams, rows = c->rows, classes = cldp_model_outputs(m);
    printf("case inputs %zu rows %zu layers", c->inputs, rows);
    for (size_t l = 0; l < c->nlayers; l++) printf(" %zu/%d", c->units[l], (int)c->acts[l]);
    printf(" (%zu parameters)\n", np);

    float *p = malloc(np * sizeof(float)), *x = malloc(rows * c->inputs * sizeof(float));
    int32_t *y = malloc(rows * sizeof(int32_t));
    test_fill(p, np, -0.5, 0.5);
    test_fill(x, rows * c->inputs, -1.0, 1.0);
    for (size_t i = 0; i < rows; i++) y[i] = (int32_t)(test_rand() % classes);

    cldp_replica *r = NULL;
    CHECK_OK(cldp_replica_create(dev, m, rows, &r));
    if (!r) return;
    CHECK(!r->narrow || r->fast_kernels);
    if (r->fast_kernels && !r->narrow) printf("  NOTE: this device cannot run the narrow kernels; CLBlast computes them\n");
    CHECK_OK(cldp_replica_write_params(r, p, 0, np));
    for (size_t l = 0; l < c->nlayers; l++) poison(r, r->act[l], rows * m->layers[l].out);
    poison(r, r->grads, np);

    /* forward: GEMM + bias_act, layer by layer */
    CHECK_OK(cldp_replica_load(r, x, y, rows));
    CHECK_OK(cldp_replica_forward(r, rows));
    double *acts[CLDP_MAX_LAYERS];
    for (size_t l = 0; l < m->nlayers; l++) acts[l] = malloc(rows * m->layers[l].out * sizeof(double));
    ref_forward(m, p, x, rows, acts);
    for (size_t l = 0; l < m->nlayers; l++) {
        size_t n = rows * m->layers[l].out;
        float *got = malloc(n * sizeof(float));
        clEnqueueReadBuffer(r->queue, r->act[l], CL_TRUE, 0, n * sizeof(float), got, 0, NULL, NULL);
        snprintf(what, sizeof what, "forward layer %zu (bias_act, act %d)", l, (int)m->layers[l].act);
        test_close(what, got, acts[l], n, 1e-5, 1e-4);
        free(got);
    }

    /* softmax_rows: probabilities */
    {
        float *probs = malloc(rows * classes * sizeof(float));
        double *ref = malloc(rows * classes * sizeof(double));
        const float *got = NULL;
        CHECK_OK(cldp_replica_probs(r, rows, &got));
        if (got) memcpy(probs, got, rows * classes * sizeof(float));
        const double *z = acts[m->nlayers - 1];
        for (size_t i = 0; i < rows; i++) {
            double mx = z[i * classes], s = 0;
            for (size_t k = 1; k < classes; k++) mx = fmax(mx, z[i * classes + k]);
            for (size_t k = 0; k < classes; k++) s += exp(z[i * classes + k] - mx);
            for (size_t k = 0; k < classes; k++) ref[i * classes + k] = exp(z[i * classes + k] - mx) / s;
        }
        test_close("softmax_rows", probs, ref, rows * classes, 1e-6, 1e-4);
        free(probs);
        free(ref);
    }

    /* softmax_xent + backward: losses, correct flags, every parameter's gradient */
    double scale = 1.0 / (double)(rows + 3); /* a shard of a larger global batch */
    double *g = malloc(np * sizeof(double)), *loss = malloc(rows * sizeof(double));
    int *correct = malloc(rows * sizeof(int));
    double ref_total = ref_loss_grad(m, p, x, y, rows, scale, g, loss, correct);
    CHECK_OK(cldp_replica_backward(r, rows, (float)scale, 0));
    float *got = malloc(np * sizeof(float));
    CHECK_OK(cldp_replica_read_grads(r, got));
    snprintf(what, sizeof what, "backward gradients (GEMMs, bias_grad, act_backward)");
    test_close(what, got, g, np, 2e-6, 1e-3);
    check_delivery(dev, m, p, x, y, rows, scale, g);
    double loss_sum = 0;
    size_t ncorrect = 0, ref_correct = 0;
    CHECK_OK(cldp_replica_read_loss(r, rows, &loss_sum, &ncorrect));
    for (size_t i = 0; i < rows; i++) ref_correct += (size_t)correct[i];
    if (fabs(loss_sum - ref_total) > 1e-4 * (1 + fabs(ref_total))) {
        fprintf(stderr, "FAIL softmax_xent loss sum %.9g, reference %.9g\n", loss_sum, ref_total);
        test_failures++;
    }
    /* a near-tie of two logits may flip an arg-max in float32; allow one such row */
    CHECK(ncorrect + 1 >= ref_correct && ncorrect <= ref_correct + 1);

    /* accumulate: a second backward adds the same gradient again */
    CHECK_OK(cldp_replica_backward(r, rows, (float)scale, 1));
    CHECK_OK(cldp_replica_read_grads(r, got));
    for (size_t i = 0; i < np; i++) g[i] *= 2;
    test_close("accumulated gradients", got, g, np, 4e-6, 1e-3);

    free(got);
    free(g);
    free(loss);
    free(correct);
    for (size_t l = 0; l < m->nlayers; l++) free(acts[l]);
    cldp_replica_destroy(r);
    cldp_model_destroy(m);
    free(p);
    free(x);
    free(y);
}

int main(void)
{
    test_rng_state = test_seed("test_layers");
    const cldp_dev *devs;
    size_t n;
    if (cldp_devices(&devs, &n) != CLDP_OK) {
        printf("SKIP test_layers: %s\n", cldp_last_error());
        return TEST_SKIP_CODE;
    }
    const layer_case cases[] = {
        {1, 1, {7, 3}, {CLDP_ACT_RELU, CLDP_ACT_NONE}, 2},
        {7, 33, {33, 129, 7}, {CLDP_ACT_TANH, CLDP_ACT_RELU, CLDP_ACT_NONE}, 3},
        {129, 7, {1, 33}, {CLDP_ACT_TANH, CLDP_ACT_NONE}, 2},
        {33, 129, {129, 10}, {CLDP_ACT_NONE, CLDP_ACT_NONE}, 2},
        {33, 129, {17}, {CLDP_ACT_RELU}, 1},
        {129, 1, {33, 1}, {CLDP_ACT_RELU, CLDP_ACT_NONE}, 2},
        {18, 67, {16, 5}, {CLDP_ACT_SIGMOID, CLDP_ACT_NONE}, 2}, /* CLDP_NARROW outputs, sigmoid on the narrow path */
    };
    /* the default kernels (dense layers of <= CLDP_NARROW outputs on cldp's own kernels), then
     * the path before them (CLBlast for every GEMM, one element per work-item) */
    static const char *const fast[] = {"on", "off"};
    for (int f = 0; f < 2; f++) {
        printf("CLDP_FAST_KERNELS=%s\n", fast[f]);
        CHECK_OK(cldp_test_control(CLDP_TEST_CONFIG, "CLDP_FAST_KERNELS", fast[f]));
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_case(&devs[0], &cases[i]);
        /* and a few fully random shapes */
        for (int k = 0; k < 3; k++) {
            layer_case c = {1 + test_rand() % 150, 1 + test_rand() % 150, {1 + test_rand() % 150, 2 + test_rand() % 20},
                            {(cldp_activation)(test_rand() % 4), CLDP_ACT_NONE}, 2};
            run_case(&devs[0], &c);
        }
    }
    CHECK_OK(cldp_test_control(CLDP_TEST_CONFIG, "CLDP_FAST_KERNELS", (const char *)NULL));
    return test_finish("test_layers");
}
