/* test_watchdog — a device (its worker) stalled beyond the watchdog in every phase, under each
 * failure policy, ends as cldp.h says: under "stop" the call fails with CLDP_ERR_TIMEOUT naming
 * the device and the phase, the parameters stay readable and unchanged, and only destroy is left;
 * under "drop" the call succeeds on the others and the drop is reported. In every case destroy
 * returns at once, and the process burns no CPU afterwards while the stalled worker sleeps or
 * comes back (measured over a second). CLDP_TEST_WATCHDOG_LOOPS=N repeats every case N times. */
#define _POSIX_C_SOURCE 200809L
#undef NDEBUG
#include "testutil.h"

#include <time.h>

#define IN 23
#define CLASSES 5
#define B 30
#define TIMEOUT_MS 300

static float X[4 * B * IN];
static int32_t Y[4 * B];

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {}
}

typedef enum { CALL_STEP, CALL_EVAL, CALL_PREDICT } call_kind;

static const struct stall_case {
    const char *name;   /* the fault kind */
    const char *phase;  /* what the timeout message must name */
    call_kind call;
} cases[] = {
    {"stall", "forward and backward", CALL_STEP},
    {"stall_write", "parameter write", CALL_STEP},
    {"stall_reduce", "host reduction", CALL_STEP},
    {"stall_eval", "evaluation", CALL_EVAL},
    {"stall_predict", "prediction", CALL_PREDICT},
};

static cldp_status call(cldp_trainer *t, call_kind c, cldp_step_stats *s, float *probs)
{
    double loss;
    size_t correct;
    switch (c) {
    case CALL_STEP: return cldp_trainer_step(t, X + B * IN, Y + B, B, s);
    case CALL_EVAL: return cldp_trainer_evaluate(t, X, Y, 3 * B, &loss, &correct);
    case CALL_PREDICT: return cldp_trainer_predict(t, X, 3 * B, probs);
    }
    return CLDP_OK;
}

/* One case: rank 1 stalls for stall_ms in the case's phase at step 1 (after one good step). */
static void run_case(const cldp_model *m, const struct stall_case *c, cldp_failure_policy pol, double stall_ms)
{
    size_t np = cldp_model_param_count(m);
    cldp_trainer_options o;
    cldp_trainer_options_init(&o);
    o.devices = test_devices("test_watchdog", 3);
    o.batch = B;
    o.split = "even";
    o.timeout_ms = TIMEOUT_MS;
    o.on_failure = pol;
    cldp_trainer *t = NULL;
    CHECK_OK(cldp_trainer_create(m, &o, &t));
    if (!t) return;
    CHECK_OK(cldp_trainer_step(t, X, Y, B, NULL));
    float *before = malloc(np * sizeof(float)), *after = malloc(np * sizeof(float));
    float *probs = malloc(3 * B * CLASSES * sizeof(float)), *ref = malloc(3 * B * CLASSES * sizeof(float));
    CHECK_OK(cldp_trainer_get_params(t, before, np));
    CHECK_OK(cldp_trainer_predict(t, X, 3 * B, ref));
    for (size_t i = 0; i < 3 * B * CLASSES; i++) probs[i] = -1.0f; /* poison */
    char spec[64];
    snprintf(spec, sizeof spec, "1:1:%s:%.0f", c->name, stall_ms);
    CHECK_OK(cldp_test_control(CLDP_TEST_FAULT, t, spec));

    cldp_step_stats s;
    double w0 = wall_s();
    cldp_status st = call(t, c->call, &s, probs);
    double took = wall_s() - w0;
    const char *msg = cldp_last_error();
    if (pol == CLDP_ON_FAILURE_STOP) {
        CHECK(st == CLDP_ERR_TIMEOUT);
        CHECK(strstr(msg, "watchdog") && strstr(msg, c->phase));
        if (!strstr(msg, "watchdog") || !strstr(msg, c->phase)) printf("  message: %s\n", msg);
        CHECK_STATUS(cldp_trainer_step(t, X, Y, B, NULL), CLDP_ERR_STATE); /* only destroy is left */
        CHECK_OK(cldp_trainer_get_params(t, after, np));
        CHECK(memcmp(before, after, np * sizeof(float)) == 0);
    } else {
        CHECK_OK(st);
        CHECK(cldp_trainer_device_count(t) == 2);
        if (c->call == CALL_STEP) {
            CHECK(s.dropped == 1 && s.drops[0].rank == 1 && s.drops[0].status == CLDP_ERR_TIMEOUT);
            CHECK(strstr(s.drops[0].reason, "watchdog") != NULL && s.devices == 2);
        }
        if (c->call == CALL_PREDICT) /* the same parameters on the survivors: the same outputs */
            for (size_t i = 0; i < 3 * B * CLASSES; i++)
                if (!(fabsf(probs[i] - ref[i]) <= 1e-6f)) {
                    printf("FAIL prediction %zu: %g after the drop, %g before\n", i, probs[i], ref[i]);
                    test_failures++;
                    break;
                }
        CHECK_OK(cldp_trainer_step(t, X + 2 * B * IN, Y + 2 * B, B, &s)); /* and goes on */
        CHECK_OK(cldp_trainer_get_params(t, after, np));
        for (size_t i = 0; i < np; i++)
            if (!isfinite(after[i])) {
                CHECK(isfinite(after[i]));
                break;
            }
    }
    /* destroy returns at once, and nothing spins afterwards */
    double d0 = wall_s();
    cldp_trainer_destroy(t);
    double destroy_s = wall_s() - d0;
    double c0 = cpu_s();
    sleep_s(1.0);
    double burnt = cpu_s() - c0;
    printf("  %-13s %-4s -> %-24s in %4.0f ms; destroy %5.1f ms; CPU after it %4.0f ms/s\n", c->name,
           pol == CLDP_ON_FAILURE_STOP ? "stop" : "drop", cldp_status_string(st), took * 1e3, destroy_s * 1e3,
           burnt * 1e3);
    CHECK(took * 1e3 < TIMEOUT_MS + stall_ms); /* the watchdog ended it, not the stall */
    CHECK(destroy_s < 0.5);
    CHECK(burnt < 0.15); /* a worker spinning after destroy burns a whole core: ~1 s */
    free(before);
    free(after);
    free(probs);
    free(ref);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_rng_state = test_seed("test_watchdog");
    test_devices("test_watchdog", 3);
    test_fill(X, sizeof X / sizeof *X, -1, 1);
    for (size_t i = 0; i < sizeof Y / sizeof *Y; i++) Y[i] = (int32_t)(test_rand() % CLASSES);
    cldp_model *m;
    CHECK_OK(cldp_model_create(IN, &m));
    CHECK_OK(cldp_model_add_dense(m, 17, CLDP_ACT_RELU));
    CHECK_OK(cldp_model_add_dense(m, CLASSES, CLDP_ACT_NONE));
    const char *loops_env = getenv("CLDP_TEST_WATCHDOG_LOOPS");
    int loops = loops_env ? atoi(loops_env) : 1;
    if (loops < 1) loops = 1;
    for (int k = 0; k < loops; k++) {
        if (loops > 1) printf("loop %d of %d\n", k + 1, loops);
        for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
            for (int pol = 0; pol < 2; pol++) {
                /* a stall that outlasts the measurement, and one that ends during it: the late
                 * worker comes back into a destroyed trainer and cleans up */
                cldp_failure_policy p = pol ? CLDP_ON_FAILURE_DROP : CLDP_ON_FAILURE_STOP;
                if (loops == 1 || k % 2 == 0) run_case(m, &cases[c], p, 3000);
                if (loops == 1 || k % 2 == 1) run_case(m, &cases[c], p, 900);
            }
        if (test_failures) break;
    }
    cldp_model_destroy(m);
    /* the stalled workers come back and free what they held before the process exits */
    CHECK_OK(cldp_wait_abandoned(10000));
    return test_finish("test_watchdog");
}
