/* test_server — the inference server through the public API on two PoCL devices: results equal
 * cldp_trainer_predict and a double-precision reference; every accepted request is answered
 * exactly once under thousands of concurrent submits racing a shutdown; a full queue is BUSY;
 * expired and cancelled requests are answered so; hot swaps under load never fail a request nor
 * mix two generations in one; bad arguments are refused by name; the memory plan counts only
 * what a forward-only replica needs. */
#define _DEFAULT_SOURCE
#define _POSIX_C_SOURCE 200809L
#undef NDEBUG
#include "testutil.h"
#include "reference.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#define IN 19
#define HID 21
#define CLASSES 4
#define ATOL 1e-5 /* float32 forward of a 19-21-4 MLP against double: a few ulps of the logits */
#define RTOL 1e-4

static const char *DEVS; /* the first two devices, as a selection spec (test_devices) */

static cldp_model *make_model(size_t in, size_t hid)
{
    cldp_model *m;
    cldp_model_create(in, &m);
    cldp_model_add_dense(m, hid, CLDP_ACT_RELU);
    cldp_model_add_dense(m, CLASSES, CLDP_ACT_NONE);
    return m;
}

/* Softmax of the reference logits, in double. */
static void ref_probs(const cldp_model *m, const float *p, const float *x, size_t rows, double *out)
{
    double *acts[CLDP_MAX_LAYERS];
    for (size_t l = 0; l < m->nlayers; l++) acts[l] = malloc(rows * m->layers[l].out * sizeof(double));
    ref_forward(m, p, x, rows, acts);
    const double *z = acts[m->nlayers - 1];
    for (size_t r = 0; r < rows; r++) {
        double mx = z[r * CLASSES], sum = 0;
        for (size_t c = 1; c < CLASSES; c++) mx = z[r * CLASSES + c] > mx ? z[r * CLASSES + c] : mx;
        for (size_t c = 0; c < CLASSES; c++) sum += exp(z[r * CLASSES + c] - mx);
        for (size_t c = 0; c < CLASSES; c++) out[r * CLASSES + c] = exp(z[r * CLASSES + c] - mx) / sum;
    }
    for (size_t l = 0; l < m->nlayers; l++) free(acts[l]);
}

static int matches(const cldp_model *m, const float *p, const float *x, size_t rows, const float *got)
{
    double ref[64 * CLASSES];
    ref_probs(m, p, x, rows, ref);
    for (size_t i = 0; i < rows * CLASSES; i++)
        if (!(fabs(got[i] - ref[i]) <= ATOL + RTOL * fabs(ref[i]))) return 0;
    return 1;
}

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

static cldp_server_options opts(size_t max_batch)
{
    cldp_server_options o;
    cldp_server_options_init(&o);
    o.devices = DEVS;
    o.max_batch = max_batch;
    return o;
}

/* ---- results equal predict ---------------------------------------------------------------- */

static void test_predict_equal(cldp_model *m)
{
    cldp_trainer_options to;
    cldp_trainer_options_init(&to);
    to.devices = DEVS;
    to.batch = 32;
    to.seed = test_rand();
    cldp_trainer *t;
    CHECK_OK(cldp_trainer_create(m, &to, &t));
    if (!t) return;
    float x[64 * IN], lx[32 * IN];
    int32_t y[32];
    test_fill(lx, 32 * IN, -1, 1);
    for (int i = 0; i < 32; i++) y[i] = (int32_t)(test_rand() % CLASSES);
    for (int s = 0; s < 3; s++) CHECK_OK(cldp_trainer_step(t, lx, y, 32, NULL));
    test_fill(x, 64 * IN, -1, 1);
    float want[64 * CLASSES], got[64 * CLASSES], params[1024];
    size_t np = cldp_model_param_count(m);
    CHECK(np <= 1024);
    CHECK_OK(cldp_trainer_get_params(t, params, np));
    CHECK_OK(cldp_trainer_predict(t, x, 64, want));

    cldp_server_options o = opts(16);
    cldp_server *s;
    CHECK_OK(cldp_server_create_from_trainer(t, &o, &s));
    if (!s) goto out;
    CHECK(cldp_server_ready(s) && cldp_server_inputs(s) == IN && cldp_server_outputs(s) == CLASSES);
    CHECK(cldp_server_device_count(s) == 2);
    /* 37 rows: split over three batches of at most 16 and reassembled in order; then row by row */
    for (size_t i = 0; i < 64 * CLASSES; i++) got[i] = NAN;
    CHECK_OK(cldp_server_infer(s, x, 37, got, 0));
    cldp_request *rq[27];
    for (int i = 0; i < 27; i++) CHECK_OK(cldp_server_submit(s, x + (37 + i) * IN, 1, 0, NULL, NULL, &rq[i]));
    for (int i = 0; i < 27; i++) {
        cldp_status a = CLDP_ERR_STATE;
        if (!rq[i]) continue;
        CHECK_OK(cldp_request_wait(rq[i], -1, &a));
        CHECK(a == CLDP_OK);
        const float *p = cldp_request_probs(rq[i], NULL);
        CHECK(p != NULL);
        if (p) memcpy(got + (37 + i) * CLASSES, p, CLASSES * sizeof(float));
        cldp_request_destroy(rq[i]);
    }
    double wd[64 * CLASSES], ref[64 * CLASSES];
    for (size_t i = 0; i < 64 * CLASSES; i++) wd[i] = want[i];
    /* the same float32 kernels on the same parameters: only the batch shapes differ */
    test_close("server vs cldp_trainer_predict", got, wd, 64 * CLASSES, 1e-6, 1e-5);
    ref_probs(m, params, x, 64, ref);
    test_close("server vs double reference", got, ref, 64 * CLASSES, ATOL, RTOL);
    cldp_server_stats st;
    CHECK_OK(cldp_server_stats_get(s, SIZE_MAX, &st));
    CHECK(st.succeeded == 28 && st.failed == 0 && st.rows == 64 && st.batches >= 4 && st.alive == 2);
    CHECK(st.p50_ms > 0 && st.p50_ms <= st.p95_ms && st.p95_ms <= st.p99_ms);
    uint64_t hist = 0;
    for (int b = 0; b < CLDP_SERVER_HIST; b++) hist += st.batch_hist[b];
    CHECK(hist == st.batches);
    printf("  predict: 64 rows equal predict and the reference; %llu batches, p50 %.2f ms\n",
           (unsigned long long)st.batches, st.p50_ms);
    cldp_server_destroy(s);
out:
    cldp_trainer_destroy(t);
}

/* ---- exactly once, racing shutdown -------------------------------------------------------- */

#define THREADS 8
#define PER_THREAD 500

typedef struct race {
    cldp_server *s;
    const cldp_model *m;
    const float *params;
    _Atomic int calls[THREADS * PER_THREAD];
    int accepted[THREADS * PER_THREAD];
    _Atomic int ok, wrong, errors, refused_busy, go, taken;
    float x[THREADS * PER_THREAD][3 * IN];
    size_t rows[THREADS * PER_THREAD];
} race;

static race R;

static void race_cb(cldp_request *req, cldp_status st, void *user)
{
    size_t id = (size_t)(uintptr_t)user;
    atomic_fetch_add(&R.calls[id], 1);
    if (st != CLDP_OK) {
        atomic_fetch_add(&R.errors, 1);
        return;
    }
    atomic_fetch_add(&R.ok, 1);
    const float *p = cldp_request_probs(req, NULL);
    if (!p || (id % 16 == 0 && !matches(R.m, R.params, R.x[id], R.rows[id], p))) atomic_fetch_add(&R.wrong, 1);
}

static void *race_thread(void *arg)
{
    size_t t = (size_t)(uintptr_t)arg;
    while (!atomic_load(&R.go)) sched_yield();
    for (size_t k = 0; k < PER_THREAD; k++) {
        size_t id = t * PER_THREAD + k;
        cldp_status st = cldp_server_submit(R.s, R.x[id], R.rows[id], 0, race_cb, (void *)(uintptr_t)id, NULL);
        R.accepted[id] = st == CLDP_OK;
        if (st == CLDP_OK) atomic_fetch_add(&R.taken, 1);
        if (st == CLDP_ERR_BUSY) atomic_fetch_add(&R.refused_busy, 1);
        else if (st != CLDP_OK && st != CLDP_ERR_STATE) atomic_fetch_add(&R.errors, 1000000);
        if (k % 4 == 0) sched_yield();
    }
    return NULL;
}

static void test_exactly_once(cldp_model *m, const float *params)
{
    cldp_server_options o = opts(32);
    o.max_queue_rows = 1 << 20;
    CHECK_OK(cldp_server_create(m, params, cldp_model_param_count(m), &o, &R.s));
    if (!R.s) return;
    R.m = m;
    R.params = params;
    for (size_t id = 0; id < THREADS * PER_THREAD; id++) {
        R.rows[id] = 1 + test_rand() % 3;
        test_fill(R.x[id], R.rows[id] * IN, -1, 1);
    }
    pthread_t th[THREADS];
    for (size_t t = 0; t < THREADS; t++) pthread_create(&th[t], NULL, race_thread, (void *)(uintptr_t)t);
    atomic_store(&R.go, 1);
    /* shut down while the submitters are still going: after 1000 to 3000 accepted requests */
    int when = 1000 + (int)(test_rand() % 2000);
    while (atomic_load(&R.taken) < when) sched_yield();
    CHECK_OK(cldp_server_shutdown(R.s));
    for (size_t t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    size_t accepted = 0, twice = 0, lost = 0, ghost = 0;
    for (size_t id = 0; id < THREADS * PER_THREAD; id++) {
        int c = atomic_load(&R.calls[id]);
        accepted += R.accepted[id];
        if (R.accepted[id] && c == 0) lost++;
        if (c > 1) twice++;
        if (!R.accepted[id] && c) ghost++;
    }
    CHECK(lost == 0 && twice == 0 && ghost == 0);
    CHECK(atomic_load(&R.errors) == 0 && atomic_load(&R.wrong) == 0 && atomic_load(&R.refused_busy) == 0);
    CHECK((size_t)atomic_load(&R.ok) == accepted);
    CHECK_STATUS(cldp_server_submit(R.s, R.x[0], 1, 0, NULL, NULL, NULL), CLDP_ERR_STATE);
    cldp_server_stats st;
    CHECK_OK(cldp_server_stats_get(R.s, SIZE_MAX, &st));
    CHECK(st.succeeded == accepted && st.pending_rows == 0);
    printf("  exactly once: %zu of %d submits accepted before the shutdown, each answered once (%llu batches, mean %.1f rows)\n",
           accepted, THREADS * PER_THREAD, (unsigned long long)st.batches, st.batches ? (double)st.rows / (double)st.batches : 0.0);
    cldp_server_destroy(R.s);
    R.s = NULL;
}

/* ---- backpressure, expiry, cancel ------------------------------------------------------- */

static void test_busy_expiry_cancel(cldp_model *m, const float *params)
{
    cldp_server_options o = opts(4);
    o.max_queue_rows = 8;
    o.devices = test_device_name("test_server", 0);
    cldp_server *s;
    CHECK_OK(cldp_server_create(m, params, cldp_model_param_count(m), &o, &s));
    if (!s) return;
    float x[8 * IN];
    test_fill(x, 8 * IN, -1, 1);
    CHECK_OK(cldp_test_control(CLDP_TEST_SERVER_FAULT, s, "0:0:stall:700"));
    cldp_request *first, *a, *b, *c;
    CHECK_OK(cldp_server_submit(s, x, 1, 0, NULL, NULL, &first));
    usleep(100000); /* the worker took it and hangs in its GEMM */
    CHECK_OK(cldp_server_submit(s, x, 4, 100, NULL, NULL, &a)); /* expires while queued */
    CHECK_OK(cldp_server_submit(s, x, 3, 0, NULL, NULL, &b));
    CHECK_OK(cldp_server_submit(s, x, 1, 0, NULL, NULL, &c));
    CHECK_STATUS(cldp_server_submit(s, x, 1, 0, NULL, NULL, NULL), CLDP_ERR_BUSY);
    printf("  busy: %s\n", cldp_last_error());
    cldp_status ans = CLDP_OK;
    CHECK_OK(cldp_request_cancel(b));
    CHECK_OK(cldp_request_wait(b, 0, &ans)); /* answered at once: none of its rows ran */
    CHECK(ans == CLDP_CANCELLED && cldp_request_probs(b, NULL) == NULL);
    CHECK_STATUS(cldp_request_cancel(b), CLDP_ERR_STATE);
    CHECK_STATUS(cldp_request_wait(first, 0, &ans), CLDP_ERR_TIMEOUT); /* still running */
    CHECK_OK(cldp_request_wait(a, 5000, &ans));
    CHECK(ans == CLDP_ERR_TIMEOUT);
    CHECK_OK(cldp_request_wait(first, 5000, &ans));
    CHECK(ans == CLDP_OK);
    CHECK_OK(cldp_request_wait(c, 5000, &ans));
    CHECK(ans == CLDP_OK && cldp_request_probs(c, NULL) && matches(m, params, x, 1, cldp_request_probs(c, NULL)));
    cldp_server_stats st;
    CHECK_OK(cldp_server_stats_get(s, SIZE_MAX, &st));
    CHECK(st.rejected == 1 && st.timed_out == 1 && st.cancelled == 1 && st.succeeded == 2 && st.failed == 2);
    CHECK_OK(cldp_server_stats_get(s, 0, &st));
    CHECK(st.succeeded == 2 && st.alive == 1);
    cldp_request_destroy(first);
    cldp_request_destroy(a);
    cldp_request_destroy(b);
    cldp_server_destroy(s);
    CHECK_STATUS(cldp_request_cancel(c), CLDP_ERR_STATE); /* a handle outlives its server */
    cldp_request_destroy(c);
}

/* ---- hot swap under load ------------------------------------------------------------------ */

#define GENS 4
typedef struct swapctx {
    cldp_server *s;
    const cldp_model *m;
    float *gen_params[GENS];
    _Atomic int stop, failed, mixed, seen[GENS];
} swapctx;

static void *swap_client(void *arg)
{
    swapctx *c = arg;
    float x[12 * IN];
    uint64_t seed = (uintptr_t)&x | 1;
    while (!atomic_load(&c->stop)) {
        size_t rows = 1 + thread_rand(&seed) % 12; /* up to 12 rows: split over batches of 8 */
        thread_fill(&seed, x, rows * IN);
        cldp_request *r;
        if (cldp_server_submit(c->s, x, rows, 0, NULL, NULL, &r) != CLDP_OK) {
            atomic_fetch_add(&c->failed, 1);
            continue;
        }
        cldp_status a = CLDP_ERR_STATE;
        cldp_request_wait(r, -1, &a);
        uint64_t g = 99;
        const float *p = cldp_request_probs(r, &g);
        if (a != CLDP_OK || !p || g >= GENS) atomic_fetch_add(&c->failed, 1);
        else if (!matches(c->m, c->gen_params[g], x, rows, p)) atomic_fetch_add(&c->mixed, 1); /* every row: one generation */
        else atomic_fetch_add(&c->seen[g], 1);
        cldp_request_destroy(r);
    }
    return NULL;
}

static void test_hot_swap(cldp_model *m, const float *params0)
{
    size_t np = cldp_model_param_count(m);
    swapctx c = {0};
    c.m = m;
    for (int g = 0; g < GENS; g++) {
        c.gen_params[g] = malloc(np * sizeof(float));
        if (g == 0) memcpy(c.gen_params[g], params0, np * sizeof(float));
        else CHECK_OK(cldp_model_init_params(m, test_rand(), c.gen_params[g], np));
    }
    /* generation 2 comes from a trainer in this process, 3 from a checkpoint file */
    cldp_trainer_options to;
    cldp_trainer_options_init(&to);
    to.devices = DEVS;
    to.batch = 8;
    cldp_trainer *t;
    CHECK_OK(cldp_trainer_create(m, &to, &t));
    if (!t) return;
    CHECK_OK(cldp_trainer_set_params(t, c.gen_params[2], np));
    char path[64];
    snprintf(path, sizeof path, "/tmp/test_server_%d.ckpt", (int)getpid());
    CHECK_OK(cldp_trainer_set_params(t, c.gen_params[3], np));
    CHECK_OK(cldp_trainer_save_checkpoint(t, path, NULL, 0));
    CHECK_OK(cldp_trainer_set_params(t, c.gen_params[2], np));

    cldp_server_options o = opts(8);
    CHECK_OK(cldp_server_create(m, c.gen_params[0], np, &o, &c.s));
    if (!c.s) goto out;
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, swap_client, &c);
    uint64_t gen = 0;
    usleep(300000);
    CHECK_OK(cldp_server_swap_params(c.s, c.gen_params[1], np, &gen));
    CHECK(gen == 1);
    usleep(300000);
    CHECK_OK(cldp_server_swap_from_trainer(c.s, t, &gen));
    CHECK(gen == 2);
    usleep(300000);
    CHECK_OK(cldp_server_swap_checkpoint(c.s, path, &gen));
    CHECK(gen == 3);
    usleep(300000);
    atomic_store(&c.stop, 1);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    CHECK(atomic_load(&c.failed) == 0 && atomic_load(&c.mixed) == 0);
    for (int g = 0; g < GENS; g++) CHECK(atomic_load(&c.seen[g]) > 0);
    /* after the last swap, every new request runs on it */
    float x[IN], p[CLASSES];
    test_fill(x, IN, -1, 1);
    CHECK_OK(cldp_server_infer(c.s, x, 1, p, 0));
    CHECK(matches(m, c.gen_params[3], x, 1, p));
    printf("  hot swap: requests per generation %d %d %d %d, none failed or mixed\n", atomic_load(&c.seen[0]),
           atomic_load(&c.seen[1]), atomic_load(&c.seen[2]), atomic_load(&c.seen[3]));
    /* a refused file changes nothing */
    FILE *f = fopen(path, "r+b");
    if (f) {
        fseek(f, 40, SEEK_SET);
        fputc(0x5a, f);
        fclose(f);
    }
    CHECK_STATUS(cldp_server_swap_checkpoint(c.s, path, &gen), CLDP_ERR_FORMAT);
    CHECK(strstr(cldp_last_error(), path) != NULL);
    CHECK_STATUS(cldp_server_swap_checkpoint(c.s, "/nonexistent/x.ckpt", &gen), CLDP_ERR_IO);
    cldp_server_stats st;
    CHECK_OK(cldp_server_stats_get(c.s, SIZE_MAX, &st));
    CHECK(st.generation == 3 && st.failed == 0);
    cldp_server_destroy(c.s);
out:
    remove(path);
    cldp_trainer_destroy(t);
    for (int g = 0; g < GENS; g++) free(c.gen_params[g]);
}

/* ---- bad input ---------------------------------------------------------------------------- */

static void test_bad_input(cldp_model *m, const float *params)
{
    size_t np = cldp_model_param_count(m);
    cldp_server *s = NULL;
    cldp_server_options o = opts(8);
    CHECK_STATUS(cldp_server_create(NULL, params, np, &o, &s), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_server_create(m, params, np - 1, &o, &s), CLDP_ERR_INVALID_ARGUMENT);
    o.max_batch = 0;
    CHECK_STATUS(cldp_server_create(m, params, np, &o, &s), CLDP_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cldp_last_error(), "max_batch") != NULL);
    o = opts(8);
    o.max_queue_delay_us = -1;
    CHECK_STATUS(cldp_server_create(m, params, np, &o, &s), CLDP_ERR_INVALID_ARGUMENT);
    o = opts(8);
    o.devices = "no-such-device-anywhere";
    CHECK_STATUS(cldp_server_create(m, params, np, &o, &s), CLDP_ERR_NO_DEVICE);
    CHECK_STATUS(cldp_server_create_from_checkpoint(m, "/nonexistent/x.ckpt", NULL, &s), CLDP_ERR_IO);
    CHECK(s == NULL);
    float *bad = malloc(np * sizeof(float));
    memcpy(bad, params, np * sizeof(float));
    bad[np / 2] = NAN;
    CHECK_STATUS(cldp_server_create(m, bad, np, NULL, &s), CLDP_ERR_NONFINITE);

    o = opts(8);
    CHECK_OK(cldp_server_create(m, params, np, &o, &s));
    if (!s) {
        free(bad);
        return;
    }
    float x[2 * IN];
    test_fill(x, 2 * IN, -1, 1);
    CHECK_STATUS(cldp_server_submit(s, NULL, 1, 0, NULL, NULL, NULL), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_server_submit(s, x, 0, 0, NULL, NULL, NULL), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_server_submit(s, x, 1, -5, NULL, NULL, NULL), CLDP_ERR_INVALID_ARGUMENT);
    x[IN + 3] = INFINITY;
    CHECK_STATUS(cldp_server_submit(s, x, 2, 0, NULL, NULL, NULL), CLDP_ERR_NONFINITE);
    CHECK(strstr(cldp_last_error(), "row 1") != NULL);
    CHECK_STATUS(cldp_server_swap_params(s, params, np + 1, NULL), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_server_swap_params(s, bad, np, NULL), CLDP_ERR_NONFINITE);
    cldp_server_stats st;
    CHECK_STATUS(cldp_server_stats_get(s, 7, &st), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_OK(cldp_server_stats_get(s, SIZE_MAX, &st));
    CHECK(st.generation == 0 && st.succeeded == 0);
    CHECK_STATUS(cldp_request_wait(NULL, 0, NULL), CLDP_ERR_INVALID_ARGUMENT);
    CHECK(cldp_request_probs(NULL, NULL) == NULL);
    cldp_request_destroy(NULL);
    cldp_server_destroy(NULL);
    CHECK_OK(cldp_server_shutdown(s));
    CHECK_OK(cldp_server_shutdown(s)); /* idempotent */
    CHECK(!cldp_server_ready(s));
    cldp_server_destroy(s);
    free(bad);
}

/* ---- the memory plan ---------------------------------------------------------------------- */

static void test_memory_plan(void)
{
    /* 600-500-4: 1.2 MB of parameters. One row of inference needs about 3.3 MB (parameters,
     * activations, the forward GEMM's worst-case scratch, staging); training needs gradients and
     * their staging besides (about 5.7 MB). A 4 MB cap fits the first and refuses the second. */
    cldp_model *m = make_model(600, 500);
    size_t np = cldp_model_param_count(m);
    float *p = malloc(np * sizeof(float));
    CHECK_OK(cldp_model_init_params(m, 5, p, np));
    CHECK_OK(cldp_test_control(CLDP_TEST_CONFIG, "CLDP_DEVICE_MEMORY_CAP", "4M"));
    cldp_server_options o = opts(64);
    cldp_server *s = NULL;
    CHECK_OK(cldp_server_create(m, p, np, &o, &s));
    cldp_trainer_options to;
    cldp_trainer_options_init(&to);
    to.devices = DEVS;
    to.batch = 64;
    cldp_trainer *t = NULL;
    CHECK_STATUS(cldp_trainer_create(m, &to, &t), CLDP_ERR_DEVICE_MEMORY);
    cldp_server_destroy(s);
    CHECK_OK(cldp_test_control(CLDP_TEST_CONFIG, "CLDP_DEVICE_MEMORY_CAP", "64K"));
    CHECK_STATUS(cldp_server_create(m, p, np, &o, &s), CLDP_ERR_DEVICE_MEMORY);
    CHECK(strstr(cldp_last_error(), "device ") && strstr(cldp_last_error(), "does not fit"));
    printf("  memory: %s\n", cldp_last_error());
    CHECK_OK(cldp_test_control(CLDP_TEST_CONFIG, "CLDP_DEVICE_MEMORY_CAP", NULL));
    free(p);
    cldp_model_destroy(m);
}

int main(void)
{
    test_rng_state = test_seed("test_server");
    DEVS = test_devices("test_server", 2);
    cldp_model *m = make_model(IN, HID);
    size_t np = cldp_model_param_count(m);
    float *params = malloc(np * sizeof(float));
    CHECK_OK(cldp_model_init_params(m, test_rand(), params, np));
    test_predict_equal(m);
    test_exactly_once(m, params);
    test_busy_expiry_cancel(m, params);
    test_hot_swap(m, params);
    test_bad_input(m, params);
    test_memory_plan();
    free(params);
    cldp_model_destroy(m);
    return test_finish("test_server");
}
