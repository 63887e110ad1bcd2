/* test_mse — mean squared error on float targets (CLDP_LOSS_MSE, nn.MSELoss's mean over all
 * n·outputs values) through the public API, on random data and random targets with several
 * outputs: the first step's parameters against the double-precision reference on 1 device and on
 * 2 ("3,1"); 1 device == 2 devices (even, "3,1", micro-batched) over several Adam steps;
 * evaluate_targets' loss against the reference; predict's raw outputs (and the server's) against
 * the reference forward; bad input (a NaN target, the label calls on an MSE model and the target
 * calls on a cross-entropy one, a checkpoint of the other loss); and a short training on a random
 * teacher network lowering the loss. Tolerances
 * |x - ref| <= atol + rtol·|ref|: first step 1e-6 + 1e-4·|ref|, across device counts 1e-5 +
 * 1e-4·|ref|, outputs 1e-5 + 1e-4·|ref|, losses 1e-5 relative. */
#define _POSIX_C_SOURCE 200809L
#undef NDEBUG
#include "memplan.h"
#include "reference.h"
#include "testutil.h"

#include <unistd.h>

#define IN 10
#define OUT 5
#define BATCH 24
#define STEPS 6
#define SPEC "dense:16,tanh,dropout:0.2,dense:12,sigmoid,dense:5"
static const size_t sizes[STEPS] = {24, 19, 24, 2, 24, 11};

static cldp_model *mse_model(const char *spec)
{
    cldp_model *m = NULL;
    CHECK_OK(cldp_model_parse(spec, IN, 1, 1, &m));
    if (m) CHECK_OK(cldp_model_set_loss(m, CLDP_LOSS_MSE));
    return m;
}

static cldp_trainer *make(const cldp_model *m, const char *devices, const char *split, cldp_optimizer opt, float lr,
                          unsigned long long cap)
{
    cldp_trainer_options o;
    test_options(&o, devices, BATCH, opt, lr, 11, split);
    return test_trainer_capped("test_mse", m, &o, cap);
}

static float *run(const cldp_model *m, const char *devices, const char *split, cldp_optimizer opt, unsigned long long cap,
                  const float *x, const float *tg, int nsteps)
{
    cldp_trainer *t = make(m, devices, split, opt, opt == CLDP_OPT_SGD ? 0.2f : 0.01f, cap);
    size_t off = 0, np = cldp_model_param_count(m);
    for (int s = 0; s < nsteps; s++) {
        cldp_step_stats st;
        CHECK_OK(cldp_trainer_step_targets(t, x + off * IN, tg + off * OUT, sizes[s], &st));
        CHECK(st.correct == 0 && st.loss > 0 && st.samples == sizes[s]);
        off += sizes[s];
    }
    float *p = malloc(np * sizeof(float));
    CHECK_OK(cldp_trainer_get_params(t, p, np));
    cldp_trainer_destroy(t);
    return p;
}

static void test_equivalence(const float *x, const float *tg)
{
    cldp_model *m = mse_model(SPEC);
    size_t np = cldp_model_param_count(m);
    const char *one = test_devices("test_mse", 1), *two = test_devices("test_mse", 2);
    /* the first SGD step is p0 - lr·g (momentum starts at 0); g with step 0's dropout masks */
    double *want = malloc(np * sizeof(double));
    double loss0 = ref_first_sgd_step(m, 11, x, NULL, tg, sizes[0], 0.2, want);
    const char *devs[2] = {one, two};
    for (int k = 0; k < 2; k++) {
        float *p1 = run(m, devs[k], k ? "3,1" : NULL, CLDP_OPT_SGD, 0, x, tg, 1);
        char what[96];
        snprintf(what, sizeof what, "MSE first step on %s vs the reference", devs[k]);
        test_close(what, p1, want, np, 1e-6, 1e-4);
        free(p1);
    }
    printf("  first step: reference loss %.6f\n", loss0);
    float *ref1 = run(m, one, NULL, CLDP_OPT_ADAM, 0, x, tg, STEPS);
    cldp_mem_need need;
    cldp_mem_estimate(m, 5, &need);
    const struct { const char *split; unsigned long long cap; const char *what; } runs[] = {
        {"even", 0, "MSE 2 devices even vs 1"}, {"3,1", 0, "MSE 2 devices 3:1 vs 1"},
        {"1,1", need.total, "MSE 2 devices, micro-batches of <= 5 rows, vs 1"}};
    for (size_t k = 0; k < sizeof runs / sizeof *runs; k++) {
        float *p = run(m, two, runs[k].split, CLDP_OPT_ADAM, runs[k].cap, x, tg, STEPS);
        test_compare(runs[k].what, p, ref1, np, 1e-5, 1e-4);
        free(p);
    }
    free(want), free(ref1);
    cldp_model_destroy(m);
}

/* evaluate_targets, predict and the server against the reference, on the trained parameters. */
static void test_infer(const float *x, const float *tg, size_t n)
{
    cldp_model *m = mse_model(SPEC);
    size_t np = cldp_model_param_count(m);
    cldp_trainer *t = make(m, test_devices("test_mse", 2), "3,1", CLDP_OPT_ADAM, 0.01f, 0);
    CHECK_OK(cldp_trainer_step_targets(t, x, tg, BATCH, NULL));
    float *p = malloc(np * sizeof(float));
    CHECK_OK(cldp_trainer_get_params(t, p, np));
    double *acts[CLDP_MAX_LAYERS];
    for (size_t l = 0; l < m->nlayers; l++) acts[l] = malloc(n * m->layers[l].out * sizeof(double));
    ref_forward(m, p, x, n, acts);
    const double *ref_out = acts[m->nlayers - 1];
    double ref_loss = ref_mse(ref_out, tg, n, OUT, 1.0, NULL, NULL) / (double)n, loss = -1;
    CHECK_OK(cldp_trainer_evaluate_targets(t, x, tg, n, &loss));
    printf("  evaluate_targets over %zu: %.8f, reference %.8f\n", n, loss, ref_loss);
    CHECK(fabs(loss - ref_loss) <= 1e-5 * ref_loss);
    float *out = malloc(n * OUT * sizeof(float));
    for (size_t i = 0; i < n * OUT; i++) out[i] = NAN; /* poisoned: an unwritten value fails */
    CHECK_OK(cldp_trainer_predict(t, x, n, out));
    test_close("predict's raw outputs", out, ref_out, n * OUT, 1e-5, 1e-4);
    /* the server serves the raw outputs too */
    cldp_server_options so;
    cldp_server_options_init(&so);
    so.devices = test_devices("test_mse", 1);
    cldp_server *srv = NULL;
    CHECK_OK(cldp_server_create_from_trainer(t, &so, &srv));
    if (srv) {
        float *sout = malloc(7 * OUT * sizeof(float));
        CHECK_OK(cldp_server_infer(srv, x, 7, sout, 0));
        test_close("the server's raw outputs", sout, ref_out, 7 * OUT, 1e-5, 1e-4);
        free(sout);
    }
    cldp_server_destroy(srv);

    /* bad input: nothing runs, the message says why and what to call */
    float *bad = malloc(BATCH * OUT * sizeof(float));
    memcpy(bad, tg, BATCH * OUT * sizeof(float));
    bad[3 * OUT + 2] = NAN;
    CHECK_STATUS(cldp_trainer_step_targets(t, x, bad, BATCH, NULL), CLDP_ERR_NONFINITE);
    CHECK(strstr(cldp_last_error(), "target row 3") && strstr(cldp_last_error(), "NaN"));
    printf("  %s\n", cldp_last_error());
    bad[3 * OUT + 2] = INFINITY;
    CHECK_STATUS(cldp_trainer_evaluate_targets(t, x, bad, BATCH, &loss), CLDP_ERR_NONFINITE);
    CHECK(strstr(cldp_last_error(), "target row 3") && strstr(cldp_last_error(), "Inf"));
    CHECK_STATUS(cldp_trainer_step_targets(t, x, NULL, BATCH, NULL), CLDP_ERR_INVALID_ARGUMENT);
    int32_t labels[BATCH] = {0};
    CHECK_STATUS(cldp_trainer_step(t, x, labels, BATCH, NULL), CLDP_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cldp_last_error(), "cldp_trainer_step_targets"));
    printf("  %s\n", cldp_last_error());
    size_t correct;
    CHECK_STATUS(cldp_trainer_evaluate(t, x, labels, BATCH, &loss, &correct), CLDP_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cldp_last_error(), "cldp_trainer_evaluate_targets"));
    float *after = malloc(np * sizeof(float));
    CHECK_OK(cldp_trainer_get_params(t, after, np));
    CHECK(!memcmp(after, p, np * sizeof(float))); /* refused calls changed nothing */
    CHECK_STATUS(cldp_model_set_loss(m, (cldp_loss)7), CLDP_ERR_INVALID_ARGUMENT);

    /* a cross-entropy model of the same layers: the target calls are refused, and so is the MSE
     * model's checkpoint (a wrong model, naming the loss) */
    char path[] = "/tmp/cldp-test-mse-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    CHECK_OK(cldp_trainer_save_checkpoint(t, path, NULL, 0));
    cldp_model *xent = NULL;
    CHECK_OK(cldp_model_parse(SPEC, IN, 1, 1, &xent));
    cldp_trainer *tx = make(xent, test_devices("test_mse", 1), NULL, CLDP_OPT_ADAM, 0.01f, 0);
    CHECK_STATUS(cldp_trainer_step_targets(tx, x, tg, BATCH, NULL), CLDP_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cldp_last_error(), "cldp_trainer_step") && strstr(cldp_last_error(), "cross-entropy"));
    printf("  %s\n", cldp_last_error());
    CHECK_STATUS(cldp_trainer_evaluate_targets(tx, x, tg, BATCH, &loss), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_trainer_load_checkpoint(tx, path, NULL, 0, NULL), CLDP_ERR_FORMAT);
    CHECK(strstr(cldp_last_error(), "wrong model") && strstr(cldp_last_error(), "loss mse"));
    printf("  %s\n", cldp_last_error());
    /* and the MSE trainer takes its own checkpoint back */
    CHECK_OK(cldp_trainer_load_checkpoint(t, path, NULL, 0, NULL));
    unlink(path);
    cldp_trainer_destroy(tx);
    cldp_model_destroy(xent);
    cldp_trainer_destroy(t);
    for (size_t l = 0; l < m->nlayers; l++) free(acts[l]);
    free(p), free(out), free(bad), free(after);
    cldp_model_destroy(m);
}

/* A student learns a random teacher network's outputs: the evaluated loss falls. */
static void test_teacher(void)
{
    enum { N = 480 };
    cldp_model *teacher = mse_model("dense:8,tanh,dense:5"), *student = mse_model("dense:32,tanh,dense:5");
    float *x = malloc(N * IN * sizeof(float)), *tg = malloc(N * OUT * sizeof(float));
    test_fill(x, N * IN, -1, 1);
    cldp_trainer *tt = make(teacher, test_devices("test_mse", 1), NULL, CLDP_OPT_ADAM, 0.01f, 0);
    size_t tp = cldp_model_param_count(teacher);
    float *w = malloc(tp * sizeof(float));
    test_fill(w, tp, -1, 1);
    CHECK_OK(cldp_trainer_set_params(tt, w, tp));
    CHECK_OK(cldp_trainer_predict(tt, x, N, tg));
    cldp_trainer_destroy(tt);
    cldp_trainer *t = make(student, test_devices("test_mse", 2), "even", CLDP_OPT_ADAM, 0.01f, 0);
    double before = 0, after = 0;
    CHECK_OK(cldp_trainer_evaluate_targets(t, x, tg, N, &before));
    for (int e = 0; e < 8; e++)
        for (size_t b = 0; b + BATCH <= N; b += BATCH) CHECK_OK(cldp_trainer_step_targets(t, x + b * IN, tg + b * OUT, BATCH, NULL));
    CHECK_OK(cldp_trainer_evaluate_targets(t, x, tg, N, &after));
    printf("  student of a random teacher, 8 epochs of %d: MSE %.5f -> %.5f (%.1f%%)\n", N, before, after, 100 * after / before);
    CHECK(after < 0.5 * before);
    cldp_trainer_destroy(t);
    free(x), free(tg), free(w);
    cldp_model_destroy(teacher);
    cldp_model_destroy(student);
}

int main(void)
{
    test_rng_state = test_seed("test_mse");
    test_devices("test_mse", 2);
    size_t total = 0;
    for (int s = 0; s < STEPS; s++) total += sizes[s];
    float *x = malloc(total * IN * sizeof(float)), *tg = malloc(total * OUT * sizeof(float));
    test_fill(x, total * IN, -1, 1);
    test_fill(tg, total * OUT, -2, 2);
    test_equivalence(x, tg);
    test_infer(x, tg, total);
    test_teacher();
    free(x), free(tg);
    return test_finish("test_mse");
}
