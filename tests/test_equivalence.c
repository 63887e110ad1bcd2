/* test_equivalence — 1, 2 and 3 devices with the same global batch give the same parameters after
 * 20 steps, within float32 rounding, for batches that do and do not divide by the device count
 * (and one smaller than it); and one device matches a double-precision CPU reference trainer.
 * Tolerances (|a - b| <= atol + rtol·|b|), stated and printed with the measured worst case:
 *   between device counts, SGD:  atol 2e-6, rtol 1e-4
 *   between device counts, Adam: atol 2e-5, rtol 1e-3 (Adam divides by sqrt(v), which magnifies
 *                                rounding in tiny gradients)
 *   one device vs CPU double reference (SGD): atol 2e-5, rtol 1e-3 */
#undef NDEBUG
#include "reference.h"
#include "testutil.h"

#define STEPS 20
#define IN 23
#define CLASSES 5

static const size_t batches[STEPS] = {50, 50, 13, 2, 50, 49, 1, 50, 37, 50, 50, 3, 50, 50, 47, 50, 50, 50, 7, 50};

static float *train(const char *devices, cldp_optimizer opt, const float *x, const int32_t *y, size_t *np_out)
{
    cldp_model *m;
    CHECK_OK(cldp_model_create(IN, &m));
    CHECK_OK(cldp_model_add_dense(m, 33, CLDP_ACT_RELU));
    CHECK_OK(cldp_model_add_dense(m, 17, CLDP_ACT_TANH));
    CHECK_OK(cldp_model_add_dense(m, CLASSES, CLDP_ACT_NONE));
    cldp_trainer_options o;
    cldp_trainer_options_init(&o);
    o.devices = devices;
    o.batch = 50;
    o.optimizer = opt;
    o.learning_rate = opt == CLDP_OPT_SGD ? 0.1f : 0.01f;
    o.weight_decay = 1e-3f;
    o.seed = 42;
    cldp_trainer *t = NULL;
    CHECK_OK(cldp_trainer_create(m, &o, &t));
    size_t np = cldp_model_param_count(m);
    float *p = malloc(np * sizeof(float));
    size_t off = 0;
    for (int s = 0; s < STEPS && t; s++) {
        CHECK_OK(cldp_trainer_step(t, x + off * IN, y + off, batches[s], NULL));
        off += batches[s];
    }
    if (t) CHECK_OK(cldp_trainer_get_params(t, p, np));
    printf("  trained on %zu device(s) (\"%s\"), %s\n", cldp_trainer_device_count(t), devices, opt == CLDP_OPT_SGD ? "sgd" : "adam");
    cldp_trainer_destroy(t);
    cldp_model_destroy(m);
    *np_out = np;
    return p;
}

/* The same training in double precision on the CPU: SGD with momentum 0.9 and weight decay. */
static double *train_reference(const float *x, const int32_t *y)
{
    cldp_model *m;
    cldp_model_create(IN, &m);
    cldp_model_add_dense(m, 33, CLDP_ACT_RELU);
    cldp_model_add_dense(m, 17, CLDP_ACT_TANH);
    cldp_model_add_dense(m, CLASSES, CLDP_ACT_NONE);
    size_t np = cldp_model_param_count(m);
    float *pf = malloc(np * sizeof(float));
    double *p = malloc(np * sizeof(double)), *v = calloc(np, sizeof(double)), *g = malloc(np * sizeof(double));
    cldp_model_init_params(m, 42, pf, np);
    for (size_t i = 0; i < np; i++) p[i] = pf[i];
    size_t off = 0;
    for (int s = 0; s < STEPS; s++) {
        for (size_t i = 0; i < np; i++) pf[i] = (float)p[i]; /* the reference's forward reads float params */
        ref_loss_grad(m, pf, x + off * IN, y + off, batches[s], 1.0 / (double)batches[s], g, NULL, NULL);
        for (size_t i = 0; i < np; i++) {
            double gi = g[i] + 1e-3 * p[i];
            v[i] = 0.9 * v[i] + gi;
            p[i] -= 0.1 * v[i];
        }
        off += batches[s];
    }
    free(pf);
    free(v);
    free(g);
    cldp_model_destroy(m);
    return p;
}


int main(void)
{
    test_rng_state = test_seed("test_equivalence");
    test_devices("test_equivalence", 3);
    size_t total = 0;
    for (int s = 0; s < STEPS; s++) total += batches[s];
    float *x = malloc(total * IN * sizeof(float));
    int32_t *y = malloc(total * sizeof(int32_t));
    test_fill(x, total * IN, -1, 1);
    for (size_t i = 0; i < total; i++) y[i] = (int32_t)(test_rand() % CLASSES);

    size_t np;
    float *p1 = train(test_devices("test_equivalence", 1), CLDP_OPT_SGD, x, y, &np);
    float *p2 = train(test_devices("test_equivalence", 2), CLDP_OPT_SGD, x, y, &np);
    float *p3 = train(test_devices("test_equivalence", 3), CLDP_OPT_SGD, x, y, &np);
    test_compare("sgd, 2 devices vs 1", p2, p1, np, 2e-6, 1e-4);
    test_compare("sgd, 3 devices vs 1", p3, p1, np, 2e-6, 1e-4);
    double *ref = train_reference(x, y);
    double worst = 0;
    for (size_t i = 0; i < np; i++) worst = fmax(worst, fabs(p1[i] - ref[i]));
    printf("  sgd, 1 device vs CPU double reference: max |diff| %.3g\n", worst);
    test_close("sgd, 1 device vs CPU double reference", p1, ref, np, 2e-5, 1e-3);

    float *a1 = train(test_devices("test_equivalence", 1), CLDP_OPT_ADAM, x, y, &np);
    float *a3 = train(test_devices("test_equivalence", 3), CLDP_OPT_ADAM, x, y, &np);
    test_compare("adam, 3 devices vs 1", a3, a1, np, 2e-5, 1e-3);
    /* the parameters moved: equivalence of untrained models would prove nothing */
    float *init = malloc(np * sizeof(float));
    cldp_model *m;
    cldp_model_create(IN, &m);
    cldp_model_add_dense(m, 33, CLDP_ACT_RELU);
    cldp_model_add_dense(m, 17, CLDP_ACT_TANH);
    cldp_model_add_dense(m, CLASSES, CLDP_ACT_NONE);
    cldp_model_init_params(m, 42, init, np);
    double moved = 0;
    for (size_t i = 0; i < np; i++) moved = fmax(moved, fabs(p1[i] - init[i]));
    printf("  largest parameter change over %d steps: %.3g\n", STEPS, moved);
    CHECK(moved > 1e-2);
    cldp_model_destroy(m);
    free(init);
    free(p1); free(p2); free(p3); free(a1); free(a3); free(ref); free(x); free(y);
    return test_finish("test_equivalence");
}
