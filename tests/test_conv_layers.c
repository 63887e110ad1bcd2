/* test_conv_layers — the image layers (conv2d, maxpool2d, flatten) and the activation layers
 * (relu, tanh, sigmoid) on a real OpenCL device against the layer table's double-precision
 * reference, on random shapes: odd sizes, stride 2, padding, 1 and many channels, micro chunks
 * of im2col. Each layer's reference runs on the device's own input of that layer (so max
 * pooling's arg-max compares the same floats on both sides), forward and backward.
 * Tolerances |x - ref| <= atol + rtol·|ref|: outputs atol 1e-5·max(1, sqrt(n)/2) for a value
 * that sums n products (float32 rounding grows with the sum), rtol 1e-4; gradients atol 1e-5,
 * rtol 1e-3. (Finite differences of a CNN: test_gradcheck.) */
#define _POSIX_C_SOURCE 200809L
#undef NDEBUG
#include "layers.h"
#include "reference.h"
#include "testutil.h"

static double *read_buf(cldp_replica *r, cl_mem b, size_t n)
{
    float *f = malloc((n ? n : 1) * sizeof(float));
    double *d = malloc((n ? n : 1) * sizeof(double));
    CHECK(clEnqueueReadBuffer(r->queue, b, CL_TRUE, 0, n * sizeof(float), f, 0, NULL, NULL) == CL_SUCCESS);
    for (size_t i = 0; i < n; i++) d[i] = f[i];
    free(f);
    return d;
}

static void close_d(const char *what, const double *got, const double *ref, size_t n, double atol, double rtol)
{
    float *g = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) g[i] = (float)got[i];
    test_close(what, g, ref, n, atol, rtol);
    free(g);
}

static void run_case(const cldp_dev *dev, const char *spec, size_t c, size_t h, size_t w, size_t rows)
{
    cldp_model *m = NULL;
    CHECK_OK(cldp_model_parse(spec, c, h, w, &m));
    if (!m) {
        fprintf(stderr, "  %s: %s\n", spec, cldp_last_error());
        return;
    }
    size_t np = m->nparams, classes = cldp_model_outputs(m);
    printf("case %zux%zux%zu rows %zu: %s (%zu parameters)\n", c, h, w, rows, spec, np);
    float *p = malloc(np * sizeof(float)), *x = malloc(rows * m->inputs * sizeof(float));
    int32_t *y = malloc(rows * sizeof(int32_t));
    test_fill(p, np, -0.5, 0.5);
    test_fill(x, rows * m->inputs, -1, 1);
    for (size_t i = 0; i < rows; i++) y[i] = (int32_t)(test_rand() % classes);
    cldp_replica *r = NULL;
    CHECK_OK(cldp_replica_create(dev, m, rows, &r));
    if (!r) goto out;
    CHECK_OK(cldp_replica_write_params(r, p, 0, np));
    CHECK_OK(cldp_replica_load(r, x, y, rows));
    CHECK_OK(cldp_replica_forward(r, rows));
    double *in[CLDP_MAX_LAYERS + 1], *out[CLDP_MAX_LAYERS];
    in[0] = read_buf(r, r->x, rows * m->inputs);
    for (size_t l = 0; l < m->nlayers; l++) {
        const cldp_layer_desc *L = &m->layers[l];
        out[l] = read_buf(r, r->act[l], rows * L->out);
        in[l + 1] = out[l];
        double *ref = malloc(rows * L->out * sizeof(double));
        cldp_kind_of(L->kind)->ref_forward(L, p + L->w_off, in[l], rows, ref);
        char what[160];
        snprintf(what, sizeof what, "forward of layer %zu (%s)", l, cldp_kind_of(L->kind)->name);
        size_t terms = L->kind == CLDP_LAYER_DENSE ? L->in : L->kind == CLDP_LAYER_CONV2D ? L->in_c * L->k * L->k : 1;
        close_d(what, out[l], ref, rows * L->out, 1e-5 * fmax(1.0, sqrt((double)terms) / 2), 1e-4);
        free(ref);
    }
    /* backward: the device's gradient against the reference chain on the device's activations */
    float *g = malloc(np * sizeof(float));
    double *gref = calloc(np ? np : 1, sizeof(double));
    CHECK_OK(cldp_replica_backward(r, rows, 1.0f / (float)rows, 0));
    CHECK_OK(cldp_replica_read_grads(r, g));
    size_t wmax = cldp_model_max_width(m);
    double *d = malloc(rows * wmax * sizeof(double)), *dn = malloc(rows * wmax * sizeof(double));
    ref_softmax_xent(out[m->nlayers - 1], y, rows, classes, 1.0 / (double)rows, d, NULL, NULL);
    for (size_t l = m->nlayers; l-- > 0;) {
        const cldp_layer_desc *L = &m->layers[l];
        cldp_kind_of(L->kind)->ref_backward(L, p + L->w_off, in[l], out[l], d, rows, gref + L->w_off, l ? dn : NULL);
        double *t = d;
        d = dn, dn = t;
    }
    test_close("parameter gradients", g, gref, np, 1e-5, 1e-3);
    /* accumulation: a second backward adds the same gradient */
    CHECK_OK(cldp_replica_backward(r, rows, 1.0f / (float)rows, 1));
    CHECK_OK(cldp_replica_read_grads(r, g));
    for (size_t i = 0; i < np; i++) gref[i] *= 2;
    test_close("accumulated parameter gradients", g, gref, np, 2e-5, 1e-3);
    for (size_t l = 0; l <= m->nlayers; l++) free(in[l]);
    free(g), free(gref), free(d), free(dn);
out:
    cldp_replica_destroy(r);
    cldp_model_destroy(m);
    free(p), free(x), free(y);
}

int main(void)
{
    test_rng_state = test_seed("test_conv_layers");
    const cldp_dev *devs;
    size_t n;
    if (cldp_devices(&devs, &n) != CLDP_OK) {
        printf("SKIP test_conv_layers: %s\n", cldp_last_error());
        return TEST_SKIP_CODE;
    }
    run_case(&devs[0], "conv:1:1,flatten,dense:2", 1, 1, 1, 1);
    run_case(&devs[0], "conv:5:3,relu,flatten,dense:4", 1, 7, 9, 3);
    run_case(&devs[0], "conv:6:3:s2:p1,tanh,maxpool:2,flatten,dense:3", 3, 11, 13, 5);
    run_case(&devs[0], "conv:8:5:p2,relu,maxpool:2,conv:7:3:s2:p1,sigmoid,maxpool:3:s2,flatten,dense:5", 2, 17, 15, 4);
    run_case(&devs[0], "maxpool:3:s2,conv:4:2:s2,flatten,dense:6,relu,dense:3", 5, 9, 9, 7);
    run_case(&devs[0], "conv:9:4:s3:p3,maxpool:1,relu,flatten,dense:2", 1, 5, 5, 2);
    /* a conv large enough to run im2col in several chunks (the 64 MiB budget: 130 rows of this) */
    run_case(&devs[0], "conv:64:5:p2,relu,flatten,dense:3", 16, 14, 14, 203);
    /* random shapes */
    for (int k = 0; k < 3; k++) {
        size_t c = 1 + test_rand() % 4, h = 4 + test_rand() % 12, w = 4 + test_rand() % 12, kk = 1 + test_rand() % 4;
        size_t s = 1 + test_rand() % 2, pad = test_rand() % kk, oc = 1 + test_rand() % 9;
        char spec[128];
        snprintf(spec, sizeof spec, "conv:%zu:%zu:s%zu:p%zu,relu,maxpool:2,flatten,dense:%zu", oc, kk, s, pad, 2 + test_rand() % 5);
        cldp_model *probe = NULL;
        if (cldp_model_parse(spec, c, h, w, &probe) != CLDP_OK) { /* too small for the pool: skip this draw */
            printf("  (draw %s on %zux%zux%zu does not fit: %s)\n", spec, c, h, w, cldp_last_error());
            continue;
        }
        cldp_model_destroy(probe);
        run_case(&devs[0], spec, c, h, w, 1 + test_rand() % 9);
    }
    return test_finish("test_conv_layers");
}
