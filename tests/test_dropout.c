/* test_dropout — the dropout layer on a real OpenCL device against the double-precision
 * reference, on random shapes, probabilities, steps and global rows: the mask bit for bit (a
 * device output is 0 exactly where the reference dropped the element), the kept values, the
 * gradient of a model with dropout (the mask fixed by its context) against the reference's, and
 * the reference's gradient against central finite differences; the fraction dropped within 5
 * sigma of P; a trainer's first step against the reference on one device and on two ("3,1"),
 * its second step against the reference with step 1's masks (the step count keys them),
 * 1 device == 2 devices (even, "3,1", micro-batched) over several steps, bitwise determinism,
 * evaluation and prediction unaffected by dropout; the spec, and its module index in
 * safetensors (whose metadata also records the loss). Tolerances |x - ref| <= atol + rtol·|ref|: outputs 1e-6 + 1e-6·|ref|, gradients
 * 1e-5 + 1e-3·|ref|, parameters across device counts 1e-5 + 1e-4·|ref|. */
#define _POSIX_C_SOURCE 200809L
#undef NDEBUG
#include "layers.h"
#include "memplan.h"
#include "reference.h"
#include "testutil.h"

#include <unistd.h>

static float *read_floats(cldp_replica *r, cl_mem b, size_t n)
{
    float *f = malloc((n ? n : 1) * sizeof(float));
    CHECK(clEnqueueReadBuffer(r->queue, b, CL_TRUE, 0, n * sizeof(float), f, 0, NULL, NULL) == CL_SUCCESS);
    return f;
}

/* The layer alone (first in the model, on the raw input), forward: mask and values; and the
 * fraction dropped against P. */
static void layer_case(const cldp_dev *dev, size_t c, size_t h, size_t w, size_t rows, float p, const cldp_train_ctx *tc)
{
    char spec[96];
    snprintf(spec, sizeof spec, "dropout:%.6g,flatten,dense:3", (double)p);
    cldp_model *m = NULL;
    CHECK_OK(cldp_model_parse(spec, c, h, w, &m));
    if (!m) return;
    size_t n = rows * m->inputs;
    float *x = malloc(n * sizeof(float)), *params = malloc(m->nparams * sizeof(float));
    test_fill(x, n, 0.25, 1); /* never 0, so a 0 out is a dropped element */
    for (size_t i = 0; i < n; i++)
        if (test_rand() & 1) x[i] = -x[i];
    test_fill(params, m->nparams, -0.5, 0.5);
    cldp_replica *r = NULL;
    CHECK_OK(cldp_replica_create(dev, m, rows, &r));
    if (!r) goto out;
    CHECK_OK(cldp_replica_write_params(r, params, 0, m->nparams));
    CHECK_OK(cldp_replica_load(r, x, NULL, rows));
    CHECK_OK(cldp_replica_forward_train(r, rows, tc));
    float *got = read_floats(r, r->act[0], n);
    double *ref = malloc(n * sizeof(double)), *acts[3];
    for (int l = 0; l < 3; l++) acts[l] = malloc(rows * m->layers[l].out * sizeof(double));
    ref_forward_train(m, params, x, rows, acts, tc);
    memcpy(ref, acts[0], n * sizeof(double));
    size_t bad_mask = 0, dropped = 0;
    for (size_t i = 0; i < n; i++) {
        bad_mask += (got[i] == 0.0f) != (ref[i] == 0.0);
        dropped += got[i] == 0.0f;
    }
    CHECK(bad_mask == 0);
    test_close("dropout forward", got, ref, n, 1e-6, 1e-6);
    double frac = (double)dropped / (double)n, sigma = sqrt((double)p * (1 - p) / (double)n);
    printf("  %zux%zux%zu rows %zu P %.4g step %llu row0 %llu: %zu mask mismatches, dropped %.4f (%.2f sigma)\n", c, h, w,
           rows, (double)p, (unsigned long long)tc->step, (unsigned long long)tc->row0, bad_mask, frac,
           sigma > 0 ? fabs(frac - p) / sigma : 0.0);
    CHECK(fabs(frac - p) <= 5 * sigma + 1e-12);
    /* an inference pass: the identity, bitwise */
    CHECK_OK(cldp_replica_forward(r, rows));
    float *same = read_floats(r, r->act[0], n);
    CHECK(!memcmp(same, x, n * sizeof(float)));
    free(same);
    free(got);
    free(ref);
    for (int l = 0; l < 3; l++) free(acts[l]);
out:
    cldp_replica_destroy(r);
    free(x);
    free(params);
    cldp_model_destroy(m);
}

/* A model with dropout, backward: the device's gradient against the reference's with the same
 * mask; the reference's against central differences of its own loss (the mask fixed; smooth
 * activations only, so no kink lies within a difference's step). */
static void grad_case(const cldp_dev *dev, const char *spec, size_t c, size_t h, size_t w, size_t rows,
                      const cldp_train_ctx *tc)
{
    cldp_model *m = NULL;
    CHECK_OK(cldp_model_parse(spec, c, h, w, &m));
    if (!m) return;
    size_t np = m->nparams, classes = cldp_model_outputs(m);
    float *p = malloc(np * sizeof(float)), *x = malloc(rows * m->inputs * sizeof(float));
    int32_t *y = malloc(rows * sizeof(int32_t));
    test_fill(p, np, -0.5, 0.5);
    test_fill(x, rows * m->inputs, -1, 1);
    for (size_t i = 0; i < rows; i++) y[i] = (int32_t)(test_rand() % classes);
    double scale = 1.0 / (double)rows, *g = calloc(np, sizeof(double)), *g2 = calloc(np, sizeof(double));
    ref_loss_grad_full(m, p, x, y, NULL, rows, scale, tc, g, NULL, NULL);
    cldp_replica *r = NULL;
    CHECK_OK(cldp_replica_create(dev, m, rows, &r));
    if (r) {
        CHECK_OK(cldp_replica_write_params(r, p, 0, np));
        CHECK_OK(cldp_replica_load(r, x, y, rows));
        CHECK_OK(cldp_replica_forward_train(r, rows, tc));
        CHECK_OK(cldp_replica_backward(r, rows, (float)scale, 0));
        float *got = read_floats(r, r->grads, np);
        char what[160];
        snprintf(what, sizeof what, "gradient of %s", spec);
        test_close(what, got, g, np, 1e-5, 1e-3);
        free(got);
    }
    /* central differences of the double reference at 8 random parameters */
    double worst = 0;
    float *q = malloc(np * sizeof(float));
    for (int k = 0; k < 8; k++) {
        size_t i = test_rand() % np;
        memcpy(q, p, np * sizeof(float));
        double hstep = 1e-3, lp, lm;
        q[i] = p[i] + (float)hstep;
        double hp = (double)q[i] - p[i];
        lp = ref_loss_grad_full(m, q, x, y, NULL, rows, scale, tc, g2, NULL, NULL) * scale;
        q[i] = p[i] - (float)hstep;
        double hm = p[i] - (double)q[i];
        lm = ref_loss_grad_full(m, q, x, y, NULL, rows, scale, tc, g2, NULL, NULL) * scale;
        double fd = (lp - lm) / (hp + hm), err = fabs(fd - g[i]) / (1e-4 + fabs(g[i]));
        worst = fmax(worst, err);
        if (err > 2e-2) {
            fprintf(stderr, "FAIL %s: parameter %zu: finite difference %.6g, gradient %.6g\n", spec, i, fd, g[i]);
            test_failures++;
        }
    }
    printf("  %s rows %zu: gradient vs reference checked, finite differences within %.2g (relative)\n", spec, rows, worst);
    free(q);
    cldp_replica_destroy(r);
    free(p), free(x), free(y), free(g), free(g2);
    cldp_model_destroy(m);
}

/* ---- through the public API ---- */

#define IN 12
#define CLASSES 4
#define BATCH 20
#define STEPS 5
#define MLP "dense:24,relu,dropout:0.3,dense:16,tanh,dropout:0.5,dense:4"
static const size_t sizes[STEPS] = {20, 17, 20, 3, 20};

static cldp_trainer *make(const cldp_model *m, const char *devices, const char *split, unsigned long long cap)
{
    cldp_trainer_options o;
    test_options(&o, devices, BATCH, CLDP_OPT_SGD, 0.1f, 77, split);
    o.momentum = 0.5f;
    return test_trainer_capped("test_dropout", m, &o, cap);
}

static float *run(const cldp_model *m, const char *devices, const char *split, unsigned long long cap, const float *x,
                  const int32_t *y, int nsteps)
{
    cldp_trainer *t = make(m, devices, split, cap);
    size_t off = 0, np = cldp_model_param_count(m);
    for (int s = 0; s < nsteps; s++) {
        CHECK_OK(cldp_trainer_step(t, x + off * IN, y + off, sizes[s], NULL));
        off += sizes[s];
    }
    float *p = malloc(np * sizeof(float));
    CHECK_OK(cldp_trainer_get_params(t, p, np));
    cldp_trainer_destroy(t);
    return p;
}

static void test_trainer(void)
{
    size_t total = 0;
    for (int s = 0; s < STEPS; s++) total += sizes[s];
    float *x;
    int32_t *y;
    test_labelled(total, IN, CLASSES, &x, &y);
    cldp_model *m = NULL;
    CHECK_OK(cldp_model_parse(MLP, IN, 1, 1, &m));
    size_t np = cldp_model_param_count(m);
    const char *one = test_devices("test_dropout", 1), *two = test_devices("test_dropout", 2);

    /* the first step against the reference: SGD's first update is p0 - lr·g (the momentum
     * buffer starts at 0), g the gradient with step 0's masks over the global rows 0..19 */
    double *want = malloc(np * sizeof(double));
    ref_first_sgd_step(m, 77, x, y, NULL, sizes[0], 0.1, want);
    const char *devs[2] = {one, two};
    for (int k = 0; k < 2; k++) {
        float *p1 = run(m, devs[k], k ? "3,1" : NULL, 0, x, y, 1);
        char what[96];
        snprintf(what, sizeof what, "first step on %s vs the reference", devs[k]);
        test_close(what, p1, want, np, 1e-6, 1e-4);
        free(p1);
    }
    /* the second step draws step 1's masks: from the trainer's own p1, SGD with momentum 0.5
     * gives p2 = p1 - lr·(0.5·g1 + g2), g2 the gradient at p1 over the second batch (its rows
     * again at global indices from 0) with step 1's masks; step 0's masks would give another p2 */
    {
        float *p1 = run(m, two, "3,1", 0, x, y, 1), *p2 = run(m, two, "3,1", 0, x, y, 2), *p0 = malloc(np * sizeof(float));
        double *g1 = calloc(np, sizeof(double)), *g2 = calloc(np, sizeof(double)), *want2 = malloc(np * sizeof(double));
        CHECK_OK(cldp_model_init_params(m, 77, p0, np));
        const cldp_train_ctx tc0 = {77, 0, 0}, tc1 = {77, 1, 0};
        ref_loss_grad_full(m, p0, x, y, NULL, sizes[0], 1.0 / (double)sizes[0], &tc0, g1, NULL, NULL);
        ref_loss_grad_full(m, p1, x + sizes[0] * IN, y + sizes[0], NULL, sizes[1], 1.0 / (double)sizes[1], &tc1, g2, NULL, NULL);
        for (size_t i = 0; i < np; i++) want2[i] = p1[i] - 0.1 * (0.5 * g1[i] + g2[i]);
        test_close("second step on 2 devices 3:1 vs the reference with step 1's masks", p2, want2, np, 1e-6, 1e-4);
        ref_loss_grad_full(m, p1, x + sizes[0] * IN, y + sizes[0], NULL, sizes[1], 1.0 / (double)sizes[1], &tc0, g2, NULL, NULL);
        double apart = 0;
        for (size_t i = 0; i < np; i++) apart = fmax(apart, fabs(p2[i] - (p1[i] - 0.1 * (0.5 * g1[i] + g2[i]))));
        printf("  second step: with step 0's masks instead, the parameters would differ by up to %.3g\n", apart);
        CHECK(apart > 1e-4);
        free(p0), free(p1), free(p2), free(g1), free(g2), free(want2);
    }
    float *ref1 = run(m, one, NULL, 0, x, y, STEPS);
    /* 2 devices even, "3,1", and micro-batches of <= 4 rows on 2 devices: the 1-device run */
    cldp_mem_need need;
    cldp_mem_estimate(m, 4, &need);
    const struct { const char *split; unsigned long long cap; const char *what; } runs[] = {
        {"even", 0, "2 devices even vs 1"}, {"3,1", 0, "2 devices 3:1 vs 1"},
        {"1,2", need.total, "2 devices 1:2, micro-batches of <= 4 rows, vs 1"}};
    float *even = NULL;
    for (size_t k = 0; k < sizeof runs / sizeof *runs; k++) {
        float *p = run(m, two, runs[k].split, runs[k].cap, x, y, STEPS);
        test_compare(runs[k].what, p, ref1, np, 1e-5, 1e-4);
        if (k == 0) even = p;
        else free(p);
    }
    float *again = run(m, two, "even", 0, x, y, STEPS);
    CHECK(!memcmp(again, even, np * sizeof(float)));
    printf("  2 devices twice: %s\n", memcmp(again, even, np * sizeof(float)) ? "DIFFERENT" : "bitwise identical");
    /* dropout does nothing outside training: the same parameters without the dropout layers
     * predict and evaluate the same bits */
    cldp_model *plain = NULL;
    CHECK_OK(cldp_model_parse("dense:24,relu,dense:16,tanh,dense:4", IN, 1, 1, &plain));
    CHECK(cldp_model_param_count(plain) == np);
    cldp_trainer *a = make(m, two, "even", 0), *b = make(plain, two, "even", 0);
    CHECK_OK(cldp_trainer_set_params(a, ref1, np));
    CHECK_OK(cldp_trainer_set_params(b, ref1, np));
    float *pa = malloc(total * CLASSES * sizeof(float)), *pb = malloc(total * CLASSES * sizeof(float));
    CHECK_OK(cldp_trainer_predict(a, x, total, pa));
    CHECK_OK(cldp_trainer_predict(b, x, total, pb));
    CHECK(!memcmp(pa, pb, total * CLASSES * sizeof(float)));
    double la = 0, lb = 0;
    size_t ca = 0, cb = 0;
    CHECK_OK(cldp_trainer_evaluate(a, x, y, total, &la, &ca));
    CHECK_OK(cldp_trainer_evaluate(b, x, y, total, &lb, &cb));
    CHECK(la == lb && ca == cb);
    printf("  predict and evaluate with dropout == without: %s (loss %.6f, %zu correct)\n",
           !memcmp(pa, pb, total * CLASSES * sizeof(float)) && la == lb && ca == cb ? "bitwise" : "DIFFERENT", la, ca);
    cldp_trainer_destroy(a);
    cldp_trainer_destroy(b);
    free(pa), free(pb);
    cldp_model_destroy(plain);
    free(x), free(y), free(want), free(ref1), free(even), free(again);
    cldp_model_destroy(m);
}

static void test_spec_and_names(void)
{
    static const struct { const char *spec, *says; } bad[] = {
        {"dense:8,dropout:1", "0 <= P < 1"}, {"dropout:x", "dropout:x"}, {"dropout", "dropout takes one"},
        {"dropout:-0.1", "0 <= P < 1"}, {"dropout:0.5:2", "token 1"}, {"dropout:nan", "0 <= P < 1"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cldp_model *m = NULL;
        CHECK_STATUS(cldp_model_parse(bad[i].spec, 8, 1, 1, &m), CLDP_ERR_INVALID_ARGUMENT);
        CHECK(!m && strstr(cldp_last_error(), bad[i].says));
        printf("  bad spec \"%s\": %s\n", bad[i].spec, cldp_last_error());
    }
    cldp_model *m = NULL;
    CHECK_OK(cldp_model_parse("dense:8,relu,dropout:0.4,dense:3", 5, 1, 1, &m));
    char back[128] = "";
    CHECK_OK(cldp_model_describe(m, back, sizeof back));
    CHECK(!strcmp(back, "dense:8,relu,dropout:0.4,dense:3"));
    CHECK_STATUS(cldp_model_add_dropout(m, 1.5f), CLDP_ERR_INVALID_ARGUMENT);
    /* PyTorch's nn.Sequential counts nn.Dropout as a module: the last Linear is module 3 */
    char path[] = "/tmp/cldp-test-dropout-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    size_t np = cldp_model_param_count(m);
    float *p = malloc(np * sizeof(float)), *back_p = malloc(np * sizeof(float));
    CHECK_OK(cldp_model_init_params(m, 3, p, np));
    /* and the metadata records the loss, for information: the weights load under either */
    for (int mse = 0; mse < 2; mse++) {
        CHECK_OK(cldp_model_set_loss(m, mse ? CLDP_LOSS_MSE : CLDP_LOSS_SOFTMAX_CROSS_ENTROPY));
        CHECK_OK(cldp_model_save_safetensors(m, p, np, path));
        FILE *f = fopen(path, "rb");
        char head[2048] = "";
        size_t got = f ? fread(head, 1, sizeof head - 1, f) : 0;
        head[got] = 0;
        if (f) fclose(f);
        CHECK(strstr(head + 8, "\"3.weight\"") && strstr(head + 8, "\"0.bias\"") && !strstr(head + 8, "\"2.weight\""));
        CHECK(strstr(head + 8, mse ? "\"cldp_loss\":\"mse\"" : "\"cldp_loss\":\"xent\""));
        CHECK_OK(cldp_model_set_loss(m, mse ? CLDP_LOSS_SOFTMAX_CROSS_ENTROPY : CLDP_LOSS_MSE));
        CHECK_OK(cldp_model_load_safetensors(m, path, back_p, np));
        CHECK(!memcmp(back_p, p, np * sizeof(float)));
    }
    unlink(path);
    free(p), free(back_p);
    cldp_model_destroy(m);
}

int main(void)
{
    test_rng_state = test_seed("test_dropout");
    test_spec_and_names();
    const cldp_dev *devs;
    size_t n;
    if (cldp_devices(&devs, &n) != CLDP_OK) {
        printf("SKIP test_dropout: %s\n", cldp_last_error());
        return TEST_SKIP_CODE;
    }
    for (int k = 0; k < 4; k++) {
        size_t c = 1 + test_rand() % 3, h = 1 + test_rand() % 9, w = 1 + test_rand() % 9, rows = 1 + test_rand() % 40;
        float p = (float)test_uniform(0.02, 0.9);
        cldp_train_ctx tc = {test_rand(), test_rand() % 1000000000u, test_rand() % 1000000u};
        layer_case(&devs[0], c, h, w, rows, p, &tc);
    }
    /* large enough for a tight bound on the fraction: 3·32·32 · 64 elements */
    cldp_train_ctx big = {test_rand(), 12, 4096};
    layer_case(&devs[0], 3, 32, 32, 64, 0.4f, &big);
    layer_case(&devs[0], 1, 1, 7, 3, 0.0f, &big);
    for (int k = 0; k < 2; k++) {
        cldp_train_ctx tc = {test_rand(), test_rand() % 1000, test_rand() % 5000};
        grad_case(&devs[0], "dense:9,tanh,dropout:0.35,dense:6,sigmoid,dropout:0.6,dense:3", 7, 1, 1, 1 + test_rand() % 12, &tc);
        grad_case(&devs[0], "conv:3:3:p1,dropout:0.25,tanh,flatten,dense:4", 2, 6, 6, 1 + test_rand() % 6, &tc);
    }
    test_trainer();
    return test_finish("test_dropout");
}
