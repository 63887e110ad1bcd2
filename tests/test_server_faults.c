/* test_server_faults — device faults in the middle of serving, through the real error paths
 * (cldp_test_control(CLDP_TEST_SERVER_FAULT)): under "stop" only the failed batch's requests get
 * the error and the device goes on; under "drop" the device leaves and its batch is retried on
 * the other, so every request succeeds; a hung GEMM is cut off by the watchdog (its requests
 * answered long before the driver call returns); with every device gone the queue is answered
 * CLDP_ERR_NO_DEVICE. Every request gets exactly one answer, and nothing hangs. */
#define _DEFAULT_SOURCE
#define _POSIX_C_SOURCE 200809L
#undef NDEBUG
#include "testutil.h"
#include "reference.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#define IN 19
#define CLASSES 4
#define CLIENTS 4
#define PER_CLIENT 100

static long long clock_gettime_ms(void);
static const char *DEVS; /* the first two devices, as a selection spec (test_devices) */
static cldp_model *M;
static float *P;

/* Client threads draw from their own stream (test_rand's state is the main thread's). */
static uint64_t thread_rand(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

static void thread_fill(uint64_t *s, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)((double)(thread_rand(s) >> 11) * 0x1.0p-52 - 1.0);
}

typedef struct load {
    cldp_server *s;
    _Atomic int ok, failed, by_status[16], wrong;
    double max_ms;
    pthread_mutex_t mu;
} load;

static void *client(void *arg)
{
    load *L = arg;
    float x[2 * IN], ref_in[2 * IN];
    uint64_t seed = (uintptr_t)&x | 1;
    for (int k = 0; k < PER_CLIENT; k++) {
        size_t rows = 1 + thread_rand(&seed) % 2;
        thread_fill(&seed, x, rows * IN);
        memcpy(ref_in, x, sizeof x);
        cldp_request *r;
        double t0 = (double)clock_gettime_ms();
        if (cldp_server_submit(L->s, x, rows, 0, NULL, NULL, &r) != CLDP_OK) {
            atomic_fetch_add(&L->by_status[15], 1); /* refused: counted apart */
            continue;
        }
        cldp_status a = CLDP_ERR_STATE;
        CHECK_OK(cldp_request_wait(r, 20000, &a)); /* never near: a hang fails here */
        double ms = (double)clock_gettime_ms() - t0;
        pthread_mutex_lock(&L->mu);
        if (ms > L->max_ms) L->max_ms = ms;
        pthread_mutex_unlock(&L->mu);
        atomic_fetch_add(&L->by_status[(int)a < 15 ? (int)a : 14], 1);
        if (a == CLDP_OK) {
            atomic_fetch_add(&L->ok, 1);
            double *acts[2] = {malloc(rows * 21 * sizeof(double)), malloc(rows * CLASSES * sizeof(double))};
            ref_forward(M, P, ref_in, rows, acts);
            const float *p = cldp_request_probs(r, NULL);
            for (size_t i = 0; p && i < rows; i++) { /* arg-max agrees with the reference logits */
                size_t best = 0, got = 0;
                for (size_t c = 1; c < CLASSES; c++) {
                    if (acts[1][i * CLASSES + c] > acts[1][i * CLASSES + best]) best = c;
                    if (p[i * CLASSES + c] > p[i * CLASSES + got]) got = c;
                }
                if (best != got && fabs(acts[1][i * CLASSES + best] - acts[1][i * CLASSES + got]) > 1e-4) atomic_fetch_add(&L->wrong, 1);
            }
            free(acts[0]);
            free(acts[1]);
        } else {
            atomic_fetch_add(&L->failed, 1);
        }
        cldp_request_destroy(r);
    }
    return NULL;
}

static long long clock_gettime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static cldp_server *make(cldp_failure_policy pol, double watchdog_ms)
{
    cldp_server_options o;
    cldp_server_options_init(&o);
    o.devices = DEVS;
    o.max_batch = 4;
    o.on_failure = pol;
    o.watchdog_ms = watchdog_ms;
    cldp_server *s = NULL;
    CHECK_OK(cldp_server_create(M, P, cldp_model_param_count(M), &o, &s));
    return s;
}

static void run_load(load *L, cldp_server *s)
{
    memset(L, 0, sizeof *L);
    pthread_mutex_init(&L->mu, NULL);
    L->s = s;
    pthread_t th[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) pthread_create(&th[i], NULL, client, L);
    for (int i = 0; i < CLIENTS; i++) pthread_join(th[i], NULL);
    pthread_mutex_destroy(&L->mu);
}

static int alive(cldp_server *s, size_t rank)
{
    cldp_server_stats st;
    CHECK_OK(cldp_server_stats_get(s, rank, &st));
    return st.alive;
}

static void test_error(cldp_failure_policy pol, const char *spec, cldp_status want)
{
    const char *name = pol == CLDP_ON_FAILURE_STOP ? "stop" : "drop";
    cldp_server *s = make(pol, 30000);
    if (!s) return;
    CHECK_OK(cldp_test_control(CLDP_TEST_SERVER_FAULT, s, spec));
    load L;
    run_load(&L, s);
    CHECK(L.wrong == 0 && L.by_status[15] == 0);
    CHECK(L.ok + L.failed == CLIENTS * PER_CLIENT);
    if (pol == CLDP_ON_FAILURE_STOP) {
        /* one batch of at most 4 rows failed: at most 4 requests, each with the call's error */
        CHECK(L.failed >= 1 && L.failed <= 4 && L.by_status[want] == L.failed);
        CHECK(alive(s, 0) && alive(s, 1));
    } else {
        CHECK(L.failed == 0); /* retried on the other device */
        CHECK(alive(s, 0) + alive(s, 1) == 1);
    }
    cldp_server_stats st;
    CHECK_OK(cldp_server_stats_get(s, SIZE_MAX, &st));
    CHECK(st.succeeded == (uint64_t)L.ok && st.failed == (uint64_t)L.failed);
    printf("  %s, %s: %d succeeded, %d failed (%s), devices alive %d\n", name, spec, L.ok, L.failed,
           cldp_status_string(want), st.alive);
    cldp_server_destroy(s);
}

static void test_stall(cldp_failure_policy pol)
{
    const char *name = pol == CLDP_ON_FAILURE_STOP ? "stop" : "drop";
    cldp_server *s = make(pol, 300);
    if (!s) return;
    CHECK_OK(cldp_test_control(CLDP_TEST_SERVER_FAULT, s, "1:3:stall:2500"));
    load L;
    double started = (double)clock_gettime_ms();
    run_load(&L, s);
    /* the stalled worker, its batch answered by the watchdog, is counted by cldp_wait_abandoned
     * until its driver call returns: certain while less than the stall's 2.5 s has passed since
     * the load began (the stall began after that) */
    cldp_status late = cldp_wait_abandoned(0);
    double since = (double)clock_gettime_ms() - started;
    if (since < 2000) {
        CHECK_STATUS(late, CLDP_ERR_TIMEOUT);
        CHECK(strstr(cldp_last_error(), "1 worker(s)") != NULL);
        printf("  %s: %.0f ms into the load, cldp_wait_abandoned(0): %s\n", name, since, cldp_last_error());
    } else {
        printf("  %s: the load took %.0f ms, so the stalled worker may be back: its count not checked\n", name, since);
    }
    CHECK(L.ok + L.failed == CLIENTS * PER_CLIENT && L.wrong == 0);
    if (pol == CLDP_ON_FAILURE_STOP) CHECK(L.failed >= 1 && L.failed <= 4 && L.by_status[CLDP_ERR_TIMEOUT] == L.failed);
    else CHECK(L.failed == 0);
    CHECK(L.max_ms < 2000); /* cut off by the 300 ms watchdog, not by the 2.5 s stall's end */
    CHECK(alive(s, 0) && !alive(s, 1));
    printf("  %s, stall of 2.5 s under a 300 ms watchdog: %d succeeded, %d timed out, slowest answer %.0f ms\n", name, L.ok,
           L.failed, L.max_ms);
    double t0 = (double)clock_gettime_ms();
    cldp_server_destroy(s); /* the stuck worker is left behind; it frees what it holds when back */
    printf("  %s: destroy took %.0f ms\n", name, (double)clock_gettime_ms() - t0);
}

static void test_all_gone(void)
{
    cldp_server *s = make(CLDP_ON_FAILURE_DROP, 30000);
    if (!s) return;
    CHECK_OK(cldp_test_control(CLDP_TEST_SERVER_FAULT, s, "0:0:gemm,1:0:kernel"));
    load L;
    run_load(&L, s);
    /* the first batch of each device fails; its requests are retried once, on the other, and
     * fail there too or are answered CLDP_ERR_NO_DEVICE once nothing is left */
    CHECK(L.ok == 0 && L.failed + L.by_status[15] == CLIENTS * PER_CLIENT);
    CHECK(L.by_status[CLDP_ERR_CLBLAST] + L.by_status[CLDP_ERR_OPENCL] + L.by_status[CLDP_ERR_NO_DEVICE] == L.failed);
    CHECK(!alive(s, 0) && !alive(s, 1) && !cldp_server_ready(s));
    float x[IN] = {0};
    CHECK_STATUS(cldp_server_submit(s, x, 1, 0, NULL, NULL, NULL), CLDP_ERR_NO_DEVICE);
    printf("  every device gone: %d answered with an error, %d refused at submit: %s\n", L.failed, L.by_status[15],
           cldp_last_error());
    CHECK_STATUS(cldp_test_control(CLDP_TEST_SERVER_FAULT, s, "5:0:gemm"), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_test_control(CLDP_TEST_SERVER_FAULT, s, "0:0:bogus"), CLDP_ERR_INVALID_ARGUMENT);
    cldp_server_destroy(s);
}

int main(void)
{
    test_rng_state = test_seed("test_server_faults");
    DEVS = test_devices("test_server_faults", 2);
    cldp_model_create(IN, &M);
    cldp_model_add_dense(M, 21, CLDP_ACT_RELU);
    cldp_model_add_dense(M, CLASSES, CLDP_ACT_NONE);
    size_t np = cldp_model_param_count(M);
    P = malloc(np * sizeof(float));
    CHECK_OK(cldp_model_init_params(M, test_rand(), P, np));
    test_error(CLDP_ON_FAILURE_STOP, "0:5:gemm", CLDP_ERR_CLBLAST);
    test_error(CLDP_ON_FAILURE_STOP, "1:5:kernel", CLDP_ERR_OPENCL);
    test_error(CLDP_ON_FAILURE_DROP, "0:5:gemm", CLDP_ERR_CLBLAST);
    test_error(CLDP_ON_FAILURE_DROP, "1:5:kernel", CLDP_ERR_OPENCL);
    test_stall(CLDP_ON_FAILURE_STOP);
    test_stall(CLDP_ON_FAILURE_DROP);
    test_all_gone();
    CHECK_OK(cldp_wait_abandoned(10000));
    free(P);
    cldp_model_destroy(M);
    return test_finish("test_server_faults");
}
