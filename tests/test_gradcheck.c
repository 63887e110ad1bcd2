/* test_gradcheck — the device's backward pass against central finite differences of the device's
 * own forward loss, on a small smooth (tanh) model with fresh random parameters and inputs.
 * Tolerance: |g - fd| <= 5e-4 + 2e-2·|fd| (h = 1e-3 in float32: the loss itself is good to ~1e-7,
 * so the difference quotient carries ~1e-4 of noise). */
#undef NDEBUG
#include "replica.h"
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
    const size_t rows = 11, np = cldp_model_param_count(m);
    float *p = malloc(np * sizeof(float)), *x = malloc(rows * 6 * sizeof(float)), *g = malloc(np * sizeof(float));
    int32_t y[11];
    test_fill(p, np, -0.8, 0.8);
    test_fill(x, rows * 6, -1, 1);
    for (size_t i = 0; i < rows; i++) y[i] = (int32_t)(test_rand() % 4);

    cldp_replica *r = NULL;
    CHECK_OK(cldp_replica_create(&devs[0], m, rows, &r));
    if (!r) return test_finish("test_gradcheck");
    CHECK_OK(cldp_replica_load(r, x, y, rows));
    CHECK_OK(cldp_replica_write_params(r, p, 0, np));
    CHECK_OK(cldp_replica_forward(r, rows));
    CHECK_OK(cldp_replica_backward(r, rows, 1.0f / (float)rows, 0));
    CHECK_OK(cldp_replica_read_grads(r, g));

    const double h = 1e-3;
    size_t checked = 0;
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
        if (err - tol > worst) worst = err - tol;
        if (err > tol) {
            fprintf(stderr, "FAIL parameter %zu: backward %.6g, finite difference %.6g\n", i, (double)g[i], fd);
            test_failures++;
        }
        checked++;
    }
    printf("test_gradcheck: %zu parameters checked against finite differences\n", checked);
    cldp_replica_destroy(r);
    cldp_model_destroy(m);
    free(p);
    free(x);
    free(g);
    return test_finish("test_gradcheck");
}
