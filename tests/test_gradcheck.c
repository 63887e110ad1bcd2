/* test_gradcheck — the device's backward pass against central finite differences of the device's
 * own forward loss, on a small smooth (tanh) MLP and a small CNN (strided and padded convolutions,
 * tanh, sigmoid) with fresh random parameters and inputs.
 * Tolerance: |g - fd| <= 5e-4 + 2e-2·|fd| (h = 1e-3 in float32: the loss itself is good to ~1e-7,
 * so the difference quotient carries ~1e-4 of noise). */
#undef NDEBUG
#include "layers.h"
#include "testutil.h"

static double device_loss(cldp_replica *r, const float *p, size_t np, size_t rows)
{
    double s = 0;
    size_t c = 0;
    CHECK_OK(cldp_replica_write_params(r, p, 0, np));
    CHECK_OK(cldp_replica_forward(r, rows));
    CHECK_OK(cldp_replica_loss(r, rows));
    CHECK_OK(cldp_replica_read_loss(r, rows, &s, &c));
    return s / (double)rows;
}

/* The backward gradient of every parameter of m against central differences of the loss. */
static void check_model(const cldp_dev *dev, cldp_model *m, const char *what, size_t rows)
{
    const size_t np = cldp_model_param_count(m), in = cldp_model_inputs(m), classes = cldp_model_outputs(m);
    float *p = malloc(np * sizeof(float)), *x = malloc(rows * in * sizeof(float)), *g = malloc(np * sizeof(float));
    int32_t *y = malloc(rows * sizeof(int32_t));
    test_fill(p, np, -0.8, 0.8);
    test_fill(x, rows * in, -1, 1);
    for (size_t i = 0; i < rows; i++) y[i] = (int32_t)(test_rand() % classes);

    cldp_replica *r = NULL;
    CHECK_OK(cldp_replica_create(dev, m, rows, &r));
    if (!r) return;
    CHECK_OK(cldp_replica_load(r, x, y, rows));
    CHECK_OK(cldp_replica_write_params(r, p, 0, np));
    CHECK_OK(cldp_replica_forward(r, rows));
    CHECK_OK(cldp_replica_backward(r, rows, 1.0f / (float)rows, 0));
    CHECK_OK(cldp_replica_read_grads(r, g));

    const double h = 1e-3;
    double worst = 0;
    for (size_t i = 0; i < np; i++) {
        float keep = p[i];
        p[i] = keep + (float)h;
        double lp = device_loss(r, p, np, rows);
        p[i] = keep - (float)h;
        double lm = device_loss(r, p, np, rows);
        p[i] = keep;
        double fd = (lp - lm) / (double)((keep + (float)h) - (keep - (float)h));
        double err = fabs(g[i] - fd), tol = 5e-4 + 2e-2 * fabs(fd);
        if (err / tol > worst) worst = err / tol;
        if (err > tol) {
            fprintf(stderr, "FAIL parameter %zu of %s: backward %.6g, finite difference %.6g\n", i, what, (double)g[i], fd);
            test_failures++;
        }
    }
    printf("test_gradcheck: %zu parameters of %s checked against finite differences, worst error %.2f of its tolerance\n", np, what,
           worst);
    cldp_replica_destroy(r);
    free(p);
    free(x);
    free(g);
    free(y);
}

int main(void)
{
    test_rng_state = test_seed("test_gradcheck");
    const cldp_dev *devs;
    size_t ndev;
    if (cldp_devices(&devs, &ndev) != CLDP_OK) {
        printf("SKIP test_gradcheck: %s\n", cldp_last_error());
        return TEST_SKIP_CODE;
    }
    cldp_model *m;
    CHECK_OK(cldp_model_create(6, &m));
    CHECK_OK(cldp_model_add_dense(m, 9, CLDP_ACT_TANH));
    CHECK_OK(cldp_model_add_dense(m, 5, CLDP_ACT_TANH));
    CHECK_OK(cldp_model_add_dense(m, 4, CLDP_ACT_NONE));
    check_model(&devs[0], m, "a tanh MLP 6-9-5-4", 11);
    cldp_model_destroy(m);
    /* a small smooth CNN: strided, padded conv, tanh, conv, sigmoid (no max pooling: its kinks
     * would meet the differences) */
    const char *spec = "conv:3:3:s2:p1,tanh,conv:4:2,sigmoid,flatten,dense:3";
    CHECK_OK(cldp_model_parse(spec, 2, 7, 6, &m));
    if (m) check_model(&devs[0], m, spec, 5);
    cldp_model_destroy(m);
    return test_finish("test_gradcheck");
}
