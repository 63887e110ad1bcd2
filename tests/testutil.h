/* testutil.h — what the tests share: a CHECK that counts failures, tolerance comparison against
 * a double-precision reference that reports the worst element, fresh random inputs, skips, and
 * the devices a test uses, named through the API whatever the platforms. */
#ifndef CLDP_TESTUTIL_H
#define CLDP_TESTUTIL_H

#include "cldp.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ctest treats this exit status as a skip (SKIP_RETURN_CODE), never as a pass. */
#define TEST_SKIP_CODE 77

static int test_failures;

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                    \
            test_failures++;                                                                   \
        }                                                                                      \
    } while (0)

/* Checks a cldp call; on failure prints the status and the library's message. */
#define CHECK_OK(call)                                                                         \
    do {                                                                                       \
        cldp_status st_ = (call);                                                              \
        if (st_ != CLDP_OK) {                                                                  \
            fprintf(stderr, "FAIL %s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #call,           \
                    cldp_status_string(st_), cldp_last_error());                               \
            test_failures++;                                                                   \
        }                                                                                      \
    } while (0)

/* Expects a specific failure status and a non-empty message. */
#define CHECK_STATUS(call, want)                                                               \
    do {                                                                                       \
        cldp_status st_ = (call);                                                              \
        if (st_ != (want) || !*cldp_last_error()) {                                            \
            fprintf(stderr, "FAIL %s:%d: %s -> %s (want %s), message \"%s\"\n", __FILE__,      \
                    __LINE__, #call, cldp_status_string(st_), cldp_status_string(want),        \
                    cldp_last_error());                                                        \
            test_failures++;                                                                   \
        }                                                                                      \
    } while (0)

static inline int test_finish(const char *name)
{
    if (test_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, test_failures);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}

/* Seed from the clock unless CLDP_TEST_SEED fixes it; printed so a failure can be replayed. */
static inline uint64_t test_seed(const char *name)
{
    const char *s = getenv("CLDP_TEST_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)clock() << 20);
    printf("%s: seed %llu (set CLDP_TEST_SEED to replay)\n", name, (unsigned long long)seed);
    return seed;
}

static uint64_t test_rng_state;
static inline uint64_t test_rand(void)
{
    uint64_t z = (test_rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* Uniform in [lo, hi). */
static inline double test_uniform(double lo, double hi)
{
    return lo + (hi - lo) * (double)(test_rand() >> 11) * 0x1.0p-53;
}
static inline void test_fill(float *x, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)test_uniform(lo, hi);
}

/* Fresh random data: *x (n x in floats in [-1, 1)) and *y (n labels below `classes`), malloc'd. */
static inline void test_labelled(size_t n, size_t in, size_t classes, float **x, int32_t **y)
{
    *x = malloc(n * in * sizeof(float));
    *y = malloc(n * sizeof(int32_t));
    test_fill(*x, n * in, -1, 1);
    for (size_t i = 0; i < n; i++) (*y)[i] = (int32_t)(test_rand() % classes);
}

/* |got - ref| <= atol + rtol·|ref| for every element; on failure prints the worst one. */
static inline int test_close(const char *what, const float *got, const double *ref, size_t n, double atol, double rtol)
{
    size_t worst = 0;
    double worst_excess = -1, worst_err = 0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - ref[i]);
        double excess = err - (atol + rtol * fabs(ref[i]));
        if (isnan(got[i])) excess = INFINITY;
        if (excess > worst_excess) {
            worst_excess = excess;
            worst = i;
            worst_err = err;
        }
    }
    if (worst_excess > 0) {
        fprintf(stderr, "FAIL %s: element %zu is %.9g, reference %.9g (|err| %.3g > atol %.1g + rtol %.1g·|ref|)\n",
                what, worst, (double)got[worst], ref[worst], worst_err, atol, rtol);
        test_failures++;
        return 0;
    }
    return 1;
}

/* ---- devices, whatever the platforms ------------------------------------------------------ */

#define TEST_MAX_DEVICES 8
static char test_spec_of[TEST_MAX_DEVICES + 1][TEST_MAX_DEVICES * 24]; /* [k]: the first k devices */
static char test_name_of[TEST_MAX_DEVICES][24];                         /* [i]: device i alone */
static size_t test_devices_found;
static int test_devices_listed;

static inline void test_list_devices(void)
{
    if (test_devices_listed) return;
    test_devices_listed = 1;
    size_t idx[64], n = 0;
    if (cldp_device_select("all", idx, 64, &n) != CLDP_OK) n = 0;
    test_devices_found = n;
    for (size_t i = 0; i < n && i < TEST_MAX_DEVICES; i++) {
        cldp_device_info info;
        if (cldp_device_get_info(idx[i], &info) != CLDP_OK) {
            test_devices_found = i;
            break;
        }
        snprintf(test_name_of[i], sizeof test_name_of[i], "%u:%u", info.platform_index, info.device_index);
        for (size_t k = i + 1; k <= TEST_MAX_DEVICES; k++) {
            size_t len = strlen(test_spec_of[k]);
            snprintf(test_spec_of[k] + len, sizeof test_spec_of[k] - len, "%s%s", i ? "," : "", test_name_of[i]);
        }
    }
}

/* The first k devices of every platform there is, in cldp_device_select("all") order, as a
 * selection spec ("0:0,0:1", or "0:0,1:0" with two platforms); skips (exit 77, saying why) when
 * fewer than k exist. Tests name their devices through this, never as "0:0,0:1" or "all": with a
 * second platform, the devices need not all be on platform 0, and "all" selects more. */
static inline const char *test_devices(const char *name, size_t k)
{
    test_list_devices();
    if (k == 0 || k > TEST_MAX_DEVICES || test_devices_found < k) {
        printf("SKIP %s: needs %zu OpenCL device(s), found %zu (%s)\n", name, k, test_devices_found,
               test_devices_found ? "POCL_DEVICES=\"basic basic basic\" gives three" : cldp_last_error());
        exit(TEST_SKIP_CODE);
    }
    return test_spec_of[k];
}

/* Device i of that list alone, as "p:d" (for specs and messages that name one device). */
static inline const char *test_device_name(const char *name, size_t i)
{
    test_devices(name, i + 1);
    return test_name_of[i];
}

/* Compares float parameters a with b (taken as the reference) at atol/rtol, printing the largest
 * difference; fails the test (through test_close) beyond them. */
static inline void test_compare(const char *what, const float *a, const float *b, size_t n, double atol, double rtol)
{
    double *ref = malloc(n * sizeof(double)), worst = 0;
    for (size_t i = 0; i < n; i++) {
        ref[i] = b[i];
        worst = fmax(worst, fabs((double)a[i] - ref[i]));
    }
    printf("  %s: max |diff| %.3g\n", what, worst);
    test_close(what, a, ref, n, atol, rtol);
    free(ref);
}

/* Trainer options: the defaults with these devices, batch, optimizer, learning rate, seed and
 * split (the rest as cldp_trainer_options_init leaves them). */
static inline void test_options(cldp_trainer_options *o, const char *devices, size_t batch, cldp_optimizer optimizer,
                                float learning_rate, uint64_t seed, const char *split)
{
    cldp_trainer_options_init(o);
    o->devices = devices;
    o->batch = batch;
    o->optimizer = optimizer;
    o->learning_rate = learning_rate;
    o->seed = seed;
    o->split = split;
}

/* A trainer of m with options *o, created under a device memory cap of `cap` bytes (0: none,
 * the cap lifted again afterwards), so that shards larger than the cap allows run as
 * micro-batches. The test `name` fails and exits when it cannot be made. */
static inline cldp_trainer *test_trainer_capped(const char *name, const cldp_model *m, const cldp_trainer_options *o,
                                                unsigned long long cap)
{
    char capstr[32];
    snprintf(capstr, sizeof capstr, "%llu", cap);
    if (cap) CHECK_OK(cldp_test_control(CLDP_TEST_CONFIG, "CLDP_DEVICE_MEMORY_CAP", capstr));
    cldp_trainer *t = NULL;
    CHECK_OK(cldp_trainer_create(m, o, &t));
    if (cap) cldp_test_control(CLDP_TEST_CONFIG, "CLDP_DEVICE_MEMORY_CAP", (const char *)NULL);
    if (!t) {
        fprintf(stderr, "%s: no trainer on %s: %s\n", name, o->devices ? o->devices : "the default devices", cldp_last_error());
        exit(1);
    }
    return t;
}

#endif
