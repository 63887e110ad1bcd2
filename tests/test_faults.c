/* test_faults — every injected fault under each policy ends as specified: under "stop" the step
 * fails with a message naming the device and the call, and the parameters stay those before the
 * step; under "drop" the failed device is removed, the step redone, and the parameters are
 * bitwise those of a run on the survivors; a stalled device ends in a watchdog timeout, never a
 * hang; a NaN gradient skips the update. Faults run through the real error paths. */
#define _POSIX_C_SOURCE 200809L
#undef NDEBUG
#include "testutil.h"

#define IN 19
#define CLASSES 4
#define B 24

static float X[40 * B * IN];
static int32_t Y[40 * B];

/* The devices, whatever the platforms: DEV(r) is rank r's ("0:1"), ALL the three ranks, FIRST2
 * the first two. */
#define DEV(r) test_device_name("test_faults", r)
#define ALL test_devices("test_faults", 3)
#define FIRST2 test_devices("test_faults", 2)

static cldp_model *make_model(void)
{
    cldp_model *m;
    cldp_model_create(IN, &m);
    cldp_model_add_dense(m, 21, CLDP_ACT_RELU);
    cldp_model_add_dense(m, CLASSES, CLDP_ACT_NONE);
    return m;
}

static cldp_trainer *make(cldp_model *m, const char *devices, const char *fault, cldp_failure_policy pol, double timeout)
{
    cldp_trainer_options o;
    cldp_trainer_options_init(&o);
    o.devices = devices;
    o.batch = B;
    o.optimizer = CLDP_OPT_SGD;
    o.momentum = 0; /* no optimizer state, so a survivors' run can be rebuilt from parameters */
    o.learning_rate = 0.05f;
    o.seed = 3;
    o.split = "even"; /* bit-for-bit comparisons need a fixed split; "auto" follows the timings */
    o.on_failure = pol;
    o.timeout_ms = timeout;
    cldp_trainer *t = NULL;
    CHECK_OK(cldp_trainer_create(m, &o, &t));
    if (t && fault) CHECK_OK(cldp_test_control(CLDP_TEST_FAULT, t, fault));
    return t;
}

static void step_ok(cldp_trainer *t, int s)
{
    CHECK_OK(cldp_trainer_step(t, X + (size_t)s * B * IN, Y + s * B, B, NULL));
}

/* Under "stop": step 2 on rank 1 fails with `want`, naming the device; parameters unchanged. */
static void stop_case(cldp_model *m, const char *fault, cldp_status want)
{
    size_t np = cldp_model_param_count(m);
    cldp_trainer *t = make(m, ALL, fault, CLDP_ON_FAILURE_STOP, 0);
    if (!t) return;
    step_ok(t, 0);
    step_ok(t, 1);
    float *before = malloc(np * sizeof(float)), *after = malloc(np * sizeof(float));
    cldp_trainer_get_params(t, before, np);
    cldp_status st = cldp_trainer_step(t, X + 2 * B * IN, Y + 2 * B, B, NULL);
    printf("  %-12s -> %s: %s\n", fault, cldp_status_string(st), cldp_last_error());
    CHECK(st == want);
    CHECK(strstr(cldp_last_error(), DEV(1)) != NULL && strstr(cldp_last_error(), "injected") != NULL);
    cldp_trainer_get_params(t, after, np);
    if (!strstr(fault, "write")) CHECK(memcmp(before, after, np * sizeof(float)) == 0);
    step_ok(t, 3); /* the fault fired once; the trainer goes on */
    CHECK(cldp_trainer_device_count(t) == 3);
    free(before);
    free(after);
    cldp_trainer_destroy(t);
}

/* Under "drop": a fault on rank 2 at step 3; the run must equal 3 devices for steps 0-2 then
 * devices 0 and 1 alone from the same parameters, bit for bit, for at least 8 steps and
 * min_ms milliseconds (so a stalled worker can wake up in the middle of later steps). */
static void drop_case(cldp_model *m, const char *fault, double timeout, double min_ms)
{
    size_t np = cldp_model_param_count(m);
    cldp_trainer *t = make(m, ALL, fault, CLDP_ON_FAILURE_DROP, timeout);
    cldp_trainer *a = make(m, ALL, NULL, CLDP_ON_FAILURE_STOP, 0);
    if (!t || !a) return;
    for (int s = 0; s < 3; s++) {
        step_ok(t, s);
        step_ok(a, s);
    }
    float *p = malloc(np * sizeof(float)), *q = malloc(np * sizeof(float));
    cldp_trainer_get_params(a, p, np);
    cldp_trainer *b = make(m, FIRST2, NULL, CLDP_ON_FAILURE_STOP, 0);
    CHECK_OK(cldp_trainer_set_params(b, p, np));
    cldp_step_stats st;
    CHECK_OK(cldp_trainer_step(t, X + 3 * B * IN, Y + 3 * B, B, &st));
    printf("  %-12s -> drop: %s\n", fault, cldp_last_error());
    CHECK(st.devices == 2 && cldp_trainer_device_count(t) == 2);
    step_ok(b, 3);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int s = 4;; s++) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (s >= 8 && (double)(now.tv_sec - t0.tv_sec) * 1e3 + (double)(now.tv_nsec - t0.tv_nsec) * 1e-6 >= min_ms) break;
        step_ok(t, s % 40);
        step_ok(b, s % 40);
    }
    cldp_trainer_get_params(t, p, np);
    cldp_trainer_get_params(b, q, np);
    CHECK(memcmp(p, q, np * sizeof(float)) == 0);
    double loss;
    size_t correct;
    CHECK_OK(cldp_trainer_evaluate(t, X, Y, 5 * B, &loss, &correct)); /* inference on the survivors */
    free(p);
    free(q);
    cldp_trainer_destroy(t);
    cldp_trainer_destroy(a);
    cldp_trainer_destroy(b);
}

int main(void)
{
    test_rng_state = test_seed("test_faults");
    test_devices("test_faults", 3);
    test_fill(X, sizeof X / sizeof *X, -1, 1);
    for (size_t i = 0; i < sizeof Y / sizeof *Y; i++) Y[i] = (int32_t)(test_rand() % CLASSES);
    cldp_model *m = make_model();
    size_t np = cldp_model_param_count(m);

    stop_case(m, "1:2:gemm", CLDP_ERR_CLBLAST);
    stop_case(m, "1:2:kernel", CLDP_ERR_OPENCL);
    stop_case(m, "1:2:read", CLDP_ERR_OPENCL);
    stop_case(m, "1:2:write", CLDP_ERR_OPENCL);
    drop_case(m, "2:3:gemm", 0, 0);
    drop_case(m, "2:3:read", 0, 0);
    /* Stalls leave a worker abandoned inside its job: one that never ends within the test, and
     * one that ends while the survivors go on (the woken worker must touch nothing they use;
     * ThreadSanitizer checks that in CI). CLDP_TEST_SKIP_STALLS=1 leaves them out. */
    int stalls = !getenv("CLDP_TEST_SKIP_STALLS");
    if (!stalls) printf("  SKIP the stall cases (CLDP_TEST_SKIP_STALLS is set)\n");
    if (stalls) drop_case(m, "2:3:stall:60000", 300, 0);
    if (stalls) drop_case(m, "2:3:stall:700", 300, 1500);

    /* a stall under "stop": a timeout, not a hang; afterwards only reading and destroying */
    if (stalls) {
        cldp_trainer *t = make(m, ALL, "0:1:stall:60000", CLDP_ON_FAILURE_STOP, 300);
        if (t) {
            step_ok(t, 0);
            float *before = malloc(np * sizeof(float)), *after = malloc(np * sizeof(float));
            cldp_trainer_get_params(t, before, np);
            CHECK_STATUS(cldp_trainer_step(t, X, Y, B, NULL), CLDP_ERR_TIMEOUT);
            printf("  stall, stop  -> %s\n", cldp_last_error());
            CHECK(strstr(cldp_last_error(), "watchdog") != NULL && strstr(cldp_last_error(), DEV(0)) != NULL);
            CHECK_STATUS(cldp_trainer_step(t, X, Y, B, NULL), CLDP_ERR_STATE);
            CHECK_OK(cldp_trainer_get_params(t, after, np));
            CHECK(memcmp(before, after, np * sizeof(float)) == 0);
            cldp_trainer_destroy(t); /* must return although worker 0 still sleeps */
            free(before);
            free(after);
        }
    }
    /* NaN in one device's gradient: skipped and counted, or stops with CLDP_ERR_NONFINITE */
    for (int stop = 0; stop < 2; stop++) {
        cldp_trainer_options o;
        cldp_trainer_options_init(&o);
        o.devices = ALL;
        o.batch = B;
        o.on_nonfinite = stop ? CLDP_ON_NONFINITE_STOP : CLDP_ON_NONFINITE_SKIP;
        cldp_trainer *t = NULL;
        CHECK_OK(cldp_trainer_create(m, &o, &t));
        if (!t) continue;
        CHECK_OK(cldp_test_control(CLDP_TEST_FAULT, t, "2:1:nan"));
        step_ok(t, 0);
        float *before = malloc(np * sizeof(float)), *after = malloc(np * sizeof(float));
        cldp_trainer_get_params(t, before, np);
        cldp_step_stats s;
        cldp_status st = cldp_trainer_step(t, X + B * IN, Y + B, B, &s);
        printf("  nan, %s   -> %s: %s\n", stop ? "stop" : "skip", cldp_status_string(st), cldp_last_error());
        CHECK(st == (stop ? CLDP_ERR_NONFINITE : CLDP_OK));
        CHECK(s.skipped == 1 && s.skipped_total == 1);
        CHECK(strstr(cldp_last_error(), "step 2") != NULL); /* the second step, counted from 1 */
        cldp_trainer_get_params(t, after, np);
        CHECK(memcmp(before, after, np * sizeof(float)) == 0);
        CHECK_OK(cldp_trainer_step(t, X + 2 * B * IN, Y + 2 * B, B, &s));
        CHECK(s.skipped == 0 && s.skipped_total == 1);
        free(before);
        free(after);
        cldp_trainer_destroy(t);
    }
    /* an update that overflows (finite gradient, huge learning rate) is never committed; with
     * Adam, a moment that overflows is not either */
    for (int adam = 0; adam < 2; adam++) {
        cldp_trainer_options o;
        cldp_trainer_options_init(&o);
        o.devices = ALL;
        o.batch = B;
        o.optimizer = adam ? CLDP_OPT_ADAM : CLDP_OPT_SGD;
        o.learning_rate = adam ? 1e-3f : 1e13f;
        o.on_nonfinite = CLDP_ON_NONFINITE_STOP;
        cldp_trainer *t = NULL;
        CHECK_OK(cldp_trainer_create(m, &o, &t));
        if (!t) continue;
        static float big[B * IN];
        memcpy(big, X, sizeof big);
        /* every input 1e30 times its sign: activations ~1e31, so the softmax saturates and every
         * wrongly classified row gives dW ~ 1e29, finite, while lr·dW or dW² is not */
        for (size_t k = 0; k < B * IN; k++) big[k] = big[k] < 0 ? -1e30f : 1e30f;
        float *before = malloc(np * sizeof(float)), *after = malloc(np * sizeof(float));
        cldp_trainer_get_params(t, before, np);
        cldp_step_stats s;
        CHECK_STATUS(cldp_trainer_step(t, big, Y, B, &s), CLDP_ERR_NONFINITE);
        printf("  overflowing update (%s) -> %s\n", adam ? "Adam" : "SGD", cldp_last_error());
        CHECK(strstr(cldp_last_error(), "update") != NULL && s.skipped == 1);
        cldp_trainer_get_params(t, after, np);
        CHECK(memcmp(before, after, np * sizeof(float)) == 0);
        CHECK_OK(cldp_trainer_set_learning_rate(t, 1e-3f));
        CHECK_OK(cldp_trainer_step(t, X, Y, B, &s)); /* the state is still clean */
        cldp_trainer_get_params(t, after, np);
        for (size_t i = 0; i < np; i++)
            if (!isfinite(after[i])) {
                CHECK(isfinite(after[i]));
                break;
            }
        CHECK(s.skipped == 0 && memcmp(before, after, np * sizeof(float)) != 0);
        free(before);
        free(after);
        cldp_trainer_destroy(t);
    }
    /* every device failing under "drop" is an error, not an empty trainer */
    {
        cldp_trainer *t = make(m, ALL, "0:0:gemm,1:0:gemm,2:0:gemm", CLDP_ON_FAILURE_DROP, 0);
        if (t) CHECK_STATUS(cldp_trainer_step(t, X, Y, B, NULL), CLDP_ERR_CLBLAST);
        cldp_trainer_destroy(t);
    }
    /* bad fault specs */
    cldp_trainer_options o;
    cldp_trainer_options_init(&o);
    o.devices = ALL;
    cldp_trainer *t = NULL;
    CHECK_OK(cldp_trainer_create(m, &o, &t));
    const char *bad[] = {"1:2", "x:1:gemm", "1:2:melt", "9:1:gemm", "1:2:gemm;", "1:2:stall:-4"};
    for (size_t i = 0; t && i < sizeof bad / sizeof *bad; i++)
        CHECK_STATUS(cldp_test_control(CLDP_TEST_FAULT, t, bad[i]), CLDP_ERR_INVALID_ARGUMENT);
    cldp_trainer_destroy(t);
    /* the environment's spec is read once and applies to trainers created afterwards */
    CHECK_OK(cldp_test_control(CLDP_TEST_CONFIG, "CLDP_FAULT", "9:1:gemm"));
    CHECK_STATUS(cldp_trainer_create(m, &o, &t), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_OK(cldp_test_control(CLDP_TEST_CONFIG, "CLDP_FAULT", NULL));
    cldp_model_destroy(m);
    return test_finish("test_faults");
}
