/* test_determinism — the same run twice gives bitwise-identical parameters, even with workers
 * delayed at random before each part of a step; the public collective gives bitwise-identical
 * sums (equal to the fixed host tree, and to a double sum within 4·eps·sum|x|) whatever order
 * its workers arrive in; the trainer's out-of-place tree sum has the in-place tree's bits; and its
 * block update has the plain formulas' bits. */
#define _POSIX_C_SOURCE 200809L
#undef NDEBUG
#include "collective.h"
#include "optim.h"
#include "replica.h"
#include "workers.h"
#include "testutil.h"

#include <pthread.h>
#include <time.h>

static pthread_mutex_t delay_mu = PTHREAD_MUTEX_INITIALIZER;
static void random_delay(size_t rank)
{
    pthread_mutex_lock(&delay_mu);
    long us = (long)(test_rand() % 3000);
    pthread_mutex_unlock(&delay_mu);
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

static uint32_t train_crc(const float *x, const int32_t *y, int steps)
{
    cldp_model *m;
    CHECK_OK(cldp_model_create(31, &m));
    CHECK_OK(cldp_model_add_dense(m, 40, CLDP_ACT_RELU));
    CHECK_OK(cldp_model_add_dense(m, 6, CLDP_ACT_NONE));
    cldp_trainer_options o;
    cldp_trainer_options_init(&o);
    o.devices = test_devices("test_determinism", 3);
    o.batch = 45;
    o.seed = 7;
    o.split = "even"; /* bitwise determinism is per split; "auto" follows the timings */
    cldp_trainer *t = NULL;
    CHECK_OK(cldp_trainer_create(m, &o, &t));
    for (int s = 0; s < steps && t; s++) CHECK_OK(cldp_trainer_step(t, x + (size_t)s * 45 * 31, y + s * 45, 45, NULL));
    size_t np = cldp_model_param_count(m);
    float *p = malloc(np * sizeof(float));
    if (t) CHECK_OK(cldp_trainer_get_params(t, p, np));
    uint32_t crc = cldp_crc32(p, np * sizeof(float));
    free(p);
    cldp_trainer_destroy(t);
    cldp_model_destroy(m);
    return crc;
}

/* The trainer's out-of-place tree sum gives cldp_tree_reduce's bits for every device count and
 * block length, and leaves its sources as they were. */
static void test_tree_sum(void)
{
    enum { MAXN = 9, MAXLEN = 300 };
    static const size_t lens[] = {1, 7, 16, 256, MAXLEN};
    float *src[MAXN], *tree[MAXN], *copy[MAXN];
    float *scratch = malloc((MAXN + 1) / 2 * MAXLEN * sizeof(float));
    for (int r = 0; r < MAXN; r++) {
        src[r] = malloc(MAXLEN * sizeof(float));
        tree[r] = malloc(MAXLEN * sizeof(float));
        copy[r] = malloc(MAXLEN * sizeof(float));
    }
    int checked = 0;
    for (size_t n = 1; n <= MAXN; n++)
        for (size_t k = 0; k < sizeof lens / sizeof *lens; k++) {
            size_t len = lens[k];
            for (size_t r = 0; r < n; r++) {
                for (size_t i = 0; i < len; i++) src[r][i] = (float)(test_uniform(-1, 1) * pow(10.0, test_uniform(-4, 4)));
                memcpy(tree[r], src[r], len * sizeof(float));
                memcpy(copy[r], src[r], len * sizeof(float));
            }
            cldp_tree_reduce(tree, n, 0, len);
            const float *sum = cldp_tree_sum((const float *const *)src, n, len, scratch);
            if (memcmp(sum, tree[0], len * sizeof(float)) != 0) {
                fprintf(stderr, "FAIL tree sum of %zu sources x %zu floats differs from cldp_tree_reduce's bits\n", n, len);
                test_failures++;
            }
            for (size_t r = 0; r < n; r++)
                if (memcmp(src[r], copy[r], len * sizeof(float)) != 0) {
                    fprintf(stderr, "FAIL tree sum of %zu sources wrote to source %zu\n", n, r);
                    test_failures++;
                }
            checked++;
        }
    printf("  tree sum: %d device counts x block lengths equal to the in-place tree, bit for bit\n", checked);
    for (int r = 0; r < MAXN; r++) {
        free(src[r]);
        free(tree[r]);
        free(copy[r]);
    }
    free(scratch);
}

/* The optimizer's block update (streaming SIMD stores where the CPU has them) gives the bits of
 * the plain float formulas, SGD and Adam, at every alignment and length, and flags NaN and Inf. */
static void test_update_block(void)
{
    enum { N = CLDP_UPDATE_BLOCK + 8 };
    float g[N], p[N], m1[N], m2[N], np[N + 4], nm1[N + 4], nm2[N + 4];
    int checked = 0;
    for (int sgd = 0; sgd <= 1; sgd++) {
        const cldp_update u = {sgd, 1e-3f, 1e-4f, 0.9f, 0.9f, 0.999f, 1e-8f, 0.271f, 0.0399f};
        for (size_t off = 0; off < 4; off++)
            for (size_t len = 1; len <= CLDP_UPDATE_BLOCK; len += (len < 20 ? 1 : 37)) {
                for (size_t i = 0; i < N; i++) {
                    g[i] = (float)test_uniform(-1, 1);
                    p[i] = (float)test_uniform(-1, 1);
                    m1[i] = (float)test_uniform(-1, 1);
                    m2[i] = (float)test_uniform(0, 1);
                }
                int bad = cldp_update_block(&u, g, p, m1, m2, np + off, nm1 + off, nm2 + off, len);
                cldp_update_fence();
                CHECK(bad == 0);
                for (size_t i = 0; i < len; i++) {
                    float gi = g[i] + u.wd * p[i], a, v = 0, q;
                    if (sgd) {
                        a = u.mu * m1[i] + gi;
                        q = p[i] - u.lr * a;
                    } else {
                        a = u.b1 * m1[i] + (1.0f - u.b1) * gi;
                        v = u.b2 * m2[i] + (1.0f - u.b2) * gi * gi;
                        q = p[i] - u.lr * (a / u.c1) / (sqrtf(v / u.c2) + u.eps);
                    }
                    if (memcmp(&q, &np[off + i], 4) || memcmp(&a, &nm1[off + i], 4) || (!sgd && memcmp(&v, &nm2[off + i], 4))) {
                        fprintf(stderr, "FAIL update block (%s, offset %zu, length %zu) element %zu: %.9g vs %.9g\n",
                                sgd ? "SGD" : "Adam", off, len, i, (double)np[off + i], (double)q);
                        test_failures++;
                        break;
                    }
                }
                /* a NaN or an Inf anywhere in the gradient is reported */
                size_t at = (size_t)test_rand() % len;
                g[at] = (test_rand() & 1) ? NAN : -INFINITY;
                CHECK(cldp_update_block(&u, g, p, m1, m2, np + off, nm1 + off, nm2 + off, len) != 0);
                checked++;
            }
    }
    printf("  update block: %d alignments x lengths x optimizers equal to the plain formulas, bit for bit\n", checked);
}

static void test_collective(void)
{
    const cldp_dev *devs;
    size_t ndev;
    CHECK_OK(cldp_devices(&devs, &ndev));
    enum { N = 3, COUNT = 10007 };
    cl_context ctx[N];
    cl_command_queue q[N];
    cl_mem buf[N];
    float *host[N], *tree[N], *out = malloc(COUNT * sizeof(float)), *first = malloc(COUNT * sizeof(float));
    double *exact = calloc(COUNT, sizeof(double)), *mag = calloc(COUNT, sizeof(double));
    for (int r = 0; r < N; r++) {
        cl_int err;
        ctx[r] = clCreateContext(NULL, 1, &devs[r].id, NULL, NULL, &err);
        q[r] = clCreateCommandQueue(ctx[r], devs[r].id, 0, &err);
        buf[r] = clCreateBuffer(ctx[r], CL_MEM_READ_WRITE, (COUNT + 5) * sizeof(float), NULL, &err);
        CHECK(err == CL_SUCCESS);
        host[r] = malloc(COUNT * sizeof(float));
        tree[r] = malloc(COUNT * sizeof(float));
        /* values of mixed magnitude, so a different summation order would change the bits */
        for (int i = 0; i < COUNT; i++) host[r][i] = (float)(test_uniform(-1, 1) * pow(10.0, test_uniform(-3, 3)));
        for (int i = 0; i < COUNT; i++) {
            exact[i] += host[r][i];
            mag[i] += fabs(host[r][i]);
        }
        memcpy(tree[r], host[r], COUNT * sizeof(float));
    }
    cldp_tree_reduce(tree, N, 0, COUNT);

    cldp_collective *c = NULL;
    CHECK_OK(cldp_collective_create(q, N, COUNT, &c));
    for (int rep = 0; rep < 15 && c; rep++) {
        for (int r = 0; r < N; r++)
            clEnqueueWriteBuffer(q[r], buf[r], CL_TRUE, 5 * sizeof(float), COUNT * sizeof(float), host[r], 0, NULL, NULL);
        CHECK_OK(cldp_collective_allreduce(c, buf, 5, 1.0f));
        for (int r = 0; r < N; r++) {
            clEnqueueReadBuffer(q[r], buf[r], CL_TRUE, 5 * sizeof(float), COUNT * sizeof(float), out, 0, NULL, NULL);
            if (memcmp(out, tree[0], COUNT * sizeof(float)) != 0) {
                fprintf(stderr, "FAIL collective repetition %d: rank %d differs from the fixed tree's bits\n", rep, r);
                test_failures++;
            }
        }
        if (rep == 0) {
            /* float32 sums of mixed signs: the error is bounded by the magnitudes added, not by
             * the (possibly cancelled) result: |err| <= 4·eps·sum|x| */
            memcpy(first, out, COUNT * sizeof(float));
            for (int i = 0; i < COUNT; i++)
                if (fabs(out[i] - exact[i]) > 4 * 0x1.0p-23 * mag[i]) {
                    fprintf(stderr, "FAIL allreduce element %d: %.9g vs double sum %.9g\n", i, (double)out[i], exact[i]);
                    test_failures++;
                    break;
                }
        }
    }
    /* broadcast from rank 2 */
    for (int r = 0; r < N; r++)
        clEnqueueWriteBuffer(q[r], buf[r], CL_TRUE, 0, COUNT * sizeof(float), host[r], 0, NULL, NULL);
    if (c) CHECK_OK(cldp_collective_broadcast(c, buf, 0, 2));
    for (int r = 0; r < N; r++) {
        clEnqueueReadBuffer(q[r], buf[r], CL_TRUE, 0, COUNT * sizeof(float), out, 0, NULL, NULL);
        CHECK(memcmp(out, host[2], COUNT * sizeof(float)) == 0);
    }
    /* mean: scale 1/N */
    for (int r = 0; r < N; r++)
        clEnqueueWriteBuffer(q[r], buf[r], CL_TRUE, 0, COUNT * sizeof(float), host[r], 0, NULL, NULL);
    if (c) CHECK_OK(cldp_collective_allreduce(c, buf, 0, 1.0f / N));
    clEnqueueReadBuffer(q[1], buf[1], CL_TRUE, 0, COUNT * sizeof(float), out, 0, NULL, NULL);
    for (int i = 0; i < COUNT; i++)
        if (fabs(out[i] - exact[i] / N) > 5 * 0x1.0p-23 * mag[i] / N) {
            fprintf(stderr, "FAIL allreduce mean element %d: %.9g vs double mean %.9g\n", i, (double)out[i], exact[i] / N);
            test_failures++;
            break;
        }
    /* bad arguments */
    CHECK_STATUS(cldp_collective_allreduce(c, NULL, 0, 1.0f), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_collective_allreduce(c, buf, 6, 1.0f), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_collective_broadcast(c, buf, 0, 3), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_collective_create(q, 0, COUNT, &c), CLDP_ERR_INVALID_ARGUMENT);
    cldp_collective_destroy(c);
    for (int r = 0; r < N; r++) {
        clReleaseMemObject(buf[r]);
        clReleaseCommandQueue(q[r]);
        clReleaseContext(ctx[r]);
        free(host[r]);
        free(tree[r]);
    }
    free(out);
    free(first);
    free(exact);
    free(mag);
}

int main(void)
{
    test_rng_state = test_seed("test_determinism");
    test_devices("test_determinism", 3);
    const int steps = 8;
    float *x = malloc((size_t)steps * 45 * 31 * sizeof(float));
    int32_t *y = malloc((size_t)steps * 45 * sizeof(int32_t));
    test_fill(x, (size_t)steps * 45 * 31, -1, 1);
    for (int i = 0; i < steps * 45; i++) y[i] = (int32_t)(test_rand() % 6);

    uint32_t a = train_crc(x, y, steps);
    CHECK_OK(cldp_test_control(CLDP_TEST_WORKER_DELAY, random_delay));
    uint32_t b = train_crc(x, y, steps);
    uint32_t c = train_crc(x, y, steps);
    printf("  parameter CRC32: %08x, with random delays %08x and %08x\n", a, b, c);
    CHECK(a == b && b == c);
    test_collective();
    test_tree_sum();
    test_update_block();
    CHECK_OK(cldp_test_control(CLDP_TEST_WORKER_DELAY, (void (*)(size_t))NULL));
    free(x);
    free(y);
    return test_finish("test_determinism");
}
