/* test_models — models of every layer kind through the public API: the spec parser (good specs
 * round-trip through cldp_model_describe; bad tokens and shape mismatches are refused naming the
 * token and leave the model unchanged); a CNN with dropout trained on 1 device and on 3 (even, uneven and
 * micro-batched splits) gives the same parameters to float32 rounding; two runs are bitwise
 * identical; a checkpoint resumes bitwise; a version-1 checkpoint written before the layer table
 * (tests/data/ckpt-v1-dense.cldp) still loads. Tolerance between device counts (SGD, 8 steps):
 * |a - b| <= 1e-5 + 1e-4·|b|. */
#define _POSIX_C_SOURCE 200809L
#undef NDEBUG
#include "balance.h"
#include "testutil.h"

#include <string.h>
#include <unistd.h>

#define SPEC "conv:4:3:p1,relu,dropout:0.25,maxpool:2,conv:6:3:s2,tanh,flatten,dropout:0.5,dense:5"
#define C 2
#define H 9
#define W 9
#define IN (C * H * W)
#define CLASSES 5
#define STEPS 8
#define BATCH 24

static const size_t sizes[STEPS] = {24, 23, 1, 24, 7, 24, 2, 24};

static cldp_model *cnn(void)
{
    cldp_model *m = NULL;
    CHECK_OK(cldp_model_parse(SPEC, C, H, W, &m));
    return m;
}

static cldp_trainer *make(const cldp_model *m, const char *devices, const char *split, unsigned long long cap)
{
    cldp_trainer_options o;
    test_options(&o, devices, BATCH, CLDP_OPT_SGD, 0.05f, 5, split);
    o.weight_decay = 1e-3f;
    return test_trainer_capped("test_models", m, &o, cap);
}

static void steps(cldp_trainer *t, const float *x, const int32_t *y, int from, int to)
{
    size_t off = 0;
    for (int s = 0; s < to; s++) {
        if (s >= from) CHECK_OK(cldp_trainer_step(t, x + off * IN, y + off, sizes[s], NULL));
        off += sizes[s];
    }
}

static float *params_of(cldp_trainer *t, size_t np)
{
    float *p = malloc(np * sizeof(float));
    CHECK_OK(cldp_trainer_get_params(t, p, np));
    return p;
}

static void compare(const char *what, const float *a, const float *b, size_t n) { test_compare(what, a, b, n, 1e-5, 1e-4); }

static void test_spec(void)
{
    static const char *good[] = {
        "conv:32:5:p2,relu,maxpool:2,conv:64:5:p2,relu,maxpool:2,flatten,dense:1024,relu,dense:10",
        "conv:8:3:s2,sigmoid,maxpool:3:s2,flatten,dense:10", "flatten,dense:64,tanh,dense:10",
        "conv:3:1:p0:s1,flatten,dense:10", "flatten,dense:64,relu,dropout:0.40,dense:10"};
    static const char *canon[] = {
        "conv:32:5:p2,relu,maxpool:2,conv:64:5:p2,relu,maxpool:2,flatten,dense:1024,relu,dense:10",
        "conv:8:3:s2,sigmoid,maxpool:3:s2,flatten,dense:10", "flatten,dense:64,tanh,dense:10", "conv:3:1,flatten,dense:10",
        "flatten,dense:64,relu,dropout:0.4,dense:10"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        cldp_model *m = NULL;
        CHECK_OK(cldp_model_parse(good[i], 1, 28, 28, &m));
        char back[512];
        if (m) CHECK_OK(cldp_model_describe(m, back, sizeof back));
        if (m && strcmp(back, canon[i])) {
            fprintf(stderr, "FAIL spec %s reads back as %s\n", good[i], back);
            test_failures++;
        }
        printf("  spec %s: %zu parameters, %zu outputs\n", good[i], cldp_model_param_count(m), cldp_model_outputs(m));
        cldp_model_destroy(m);
    }
    /* the first: 32·25+32 + 64·32·25+64 + 3136·1024+1024 + 1024·10+10 */
    cldp_model *m = NULL;
    CHECK_OK(cldp_model_parse(good[0], 1, 28, 28, &m));
    CHECK(cldp_model_param_count(m) == 832 + 51264 + 3212288 + 10250);
    cldp_model_destroy(m);

    static const struct { const char *spec, *says[3]; } bad[] = {
        {"conv:32:5,relu,maxpol:2,flatten,dense:10", {"token 3", "maxpol", "unknown layer kind"}},
        {"conv:32:x", {"token 1", "conv:32:x", "K must be"}},
        {"conv:8:3,dense:10", {"token 2", "flatten before it", "8x26x26"}},
        {"conv:8:31", {"token 1", "larger than the padded input", "28x28"}},
        {"conv:8:3:q1", {"token 1", "\"q1\"", "stride"}},
        {"conv:8:3,,flatten", {"token 2", "empty layer", "character 10"}},
        {"relu:3", {"token 1", "relu takes no settings", "relu:3"}},
        {"dense:0", {"token 1", "dense takes one number", "1.."}},
        {"maxpool:2:s0", {"token 1", "stride", "maxpool:2:s0"}},
        {"conv:99999999999999999999999:3", {"token 1", "OUT must be", "65536"}},
        {"", {"empty", "comma-separated", "dense"}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cldp_model *b = NULL;
        CHECK_STATUS(cldp_model_parse(bad[i].spec, 1, 28, 28, &b), CLDP_ERR_INVALID_ARGUMENT);
        CHECK(b == NULL);
        const char *e = cldp_last_error();
        for (int k = 0; k < 3; k++)
            if (!strstr(e, bad[i].says[k])) {
                fprintf(stderr, "FAIL spec \"%s\": the message lacks \"%s\": %s\n", bad[i].spec, bad[i].says[k], e);
                test_failures++;
            }
        printf("  bad spec \"%s\": %s\n", bad[i].spec, e);
    }
    /* a failed add leaves the model as it was */
    CHECK_OK(cldp_model_create_shaped(1, 28, 28, &m));
    CHECK_OK(cldp_model_add_spec(m, "conv:4:5,relu"));
    size_t before = cldp_model_param_count(m), layers = cldp_model_layer_count(m);
    CHECK_STATUS(cldp_model_add_spec(m, "maxpool:2,dense:3"), CLDP_ERR_INVALID_ARGUMENT);
    CHECK(cldp_model_param_count(m) == before && cldp_model_layer_count(m) == layers);
    CHECK_STATUS(cldp_model_add_conv2d(m, 3, 0, 1, 0), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_model_add_dense(m, 3, CLDP_ACT_NONE), CLDP_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cldp_last_error(), "flatten"));
    cldp_model_destroy(m);
}

/* The version-1 fixture: a 7-5 relu-3 model after 3 Adam steps. Its parameters are in the PRMS
 * section, read here straight from the bytes of the format of version 1. */
static void test_v1_checkpoint(const char *fixture, const char *dir)
{
    cldp_model *m = NULL;
    CHECK_OK(cldp_model_create(7, &m));
    CHECK_OK(cldp_model_add_dense(m, 5, CLDP_ACT_RELU));
    CHECK_OK(cldp_model_add_dense(m, 3, CLDP_ACT_NONE));
    size_t np = cldp_model_param_count(m);
    cldp_trainer_options o;
    cldp_trainer_options_init(&o);
    o.devices = test_devices("test_models", 1);
    o.batch = 4;
    cldp_trainer *t = NULL;
    CHECK_OK(cldp_trainer_create(m, &o, &t));
    FILE *f = fopen(fixture, "rb");
    unsigned char buf[4096];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    CHECK(n > 100 && buf[8] == 1);
    /* header 24, MODL tag+len 12, MODL 24 + 16·2, PRMS tag+len 12, count 8, then the floats */
    size_t at = 24 + 12 + 24 + 32 + 12;
    CHECK(n > at + 8 + 4 * np && !memcmp(buf + at - 12, "PRMS", 4));
    CHECK_OK(cldp_trainer_load_checkpoint(t, fixture, NULL, 0, NULL));
    float *p = params_of(t, np);
    int same = 1;
    for (size_t i = 0; i < np; i++) {
        float v;
        memcpy(&v, buf + at + 8 + 4 * i, 4);
        same &= !memcmp(&v, &p[i], 4);
    }
    CHECK(same);
    printf("  version-1 checkpoint %s: loaded, %zu parameters bitwise as stored\n", fixture, np);
    /* saved again it is version 2, and loads back */
    char again[300];
    snprintf(again, sizeof again, "%s/again.cldp", dir);
    CHECK_OK(cldp_trainer_save_checkpoint(t, again, NULL, 0));
    f = fopen(again, "rb");
    CHECK(f && fread(buf, 1, 12, f) == 12 && buf[8] == 2);
    if (f) fclose(f);
    CHECK_OK(cldp_trainer_load_checkpoint(t, again, NULL, 0, NULL));
    /* into a CNN trainer: a wrong model, said as specs */
    cldp_model *c = cnn();
    cldp_trainer *tc = make(c, test_devices("test_models", 1), NULL, 0);
    CHECK_STATUS(cldp_trainer_load_checkpoint(tc, fixture, NULL, 0, NULL), CLDP_ERR_FORMAT);
    CHECK(strstr(cldp_last_error(), "wrong model") && strstr(cldp_last_error(), "conv:4:3:p1"));
    printf("  %s\n", cldp_last_error());
    cldp_trainer_destroy(tc);
    cldp_model_destroy(c);
    free(p);
    cldp_trainer_destroy(t);
    cldp_model_destroy(m);
}

int main(int argc, char **argv)
{
    test_rng_state = test_seed("test_models");
    test_spec();
    test_devices("test_models", 3);
    char dir[] = "/tmp/cldp-test-models-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    if (argc > 1) test_v1_checkpoint(argv[1], dir);

    size_t total = 0;
    for (int s = 0; s < STEPS; s++) total += sizes[s];
    float *x;
    int32_t *y;
    test_labelled(total, IN, CLASSES, &x, &y);
    cldp_model *m = cnn();
    size_t np = cldp_model_param_count(m);

    cldp_trainer *t = make(m, test_devices("test_models", 1), NULL, 0);
    steps(t, x, y, 0, STEPS);
    float *p1 = params_of(t, np);
    cldp_trainer_destroy(t);
    float *init = malloc(np * sizeof(float));
    CHECK_OK(cldp_model_init_params(m, 5, init, np));
    double moved = 0;
    for (size_t i = 0; i < np; i++) moved = fmax(moved, fabs(p1[i] - init[i]));
    printf("  %s on %dx%dx%d: %zu parameters, largest change over %d steps %.3g\n", SPEC, C, H, W, np, STEPS, moved);
    CHECK(moved > 1e-2);

    const struct { const char *devices, *split, *what; } runs[] = {
        {test_devices("test_models", 3), "even", "3 devices, even split, vs 1"},
        {test_devices("test_models", 3), "3,1,2", "3 devices, split 3:1:2, vs 1"},
    };
    float *p3 = NULL;
    for (size_t k = 0; k < sizeof runs / sizeof *runs; k++) {
        t = make(m, runs[k].devices, runs[k].split, 0);
        steps(t, x, y, 0, STEPS);
        float *p = params_of(t, np);
        compare(runs[k].what, p, p1, np);
        cldp_trainer_destroy(t);
        if (k == 0) p3 = p;
        else free(p);
    }
    /* micro-batches: a memory cap that fits 5 rows, on 1 and on 2 devices */
    {
        cldp_mem_need need;
        cldp_mem_estimate(m, 5, &need);
        const char *devs[2] = {test_devices("test_models", 1), test_devices("test_models", 2)};
        for (int k = 0; k < 2; k++) {
            t = make(m, devs[k], k ? "2,1" : NULL, need.total);
            size_t rows = 0;
            CHECK_OK(cldp_trainer_device_rows(t, 0, &rows));
            CHECK(rows == 5);
            steps(t, x, y, 0, STEPS);
            float *p = params_of(t, np);
            char what[128];
            snprintf(what, sizeof what, "micro-batches of <= %zu rows on %s vs 1 device whole", rows, devs[k]);
            compare(what, p, p1, np);
            free(p);
            cldp_trainer_destroy(t);
        }
    }
    /* determinism: the same run again, bitwise */
    t = make(m, test_devices("test_models", 3), "even", 0);
    steps(t, x, y, 0, STEPS);
    float *again = params_of(t, np);
    CHECK(!memcmp(again, p3, np * sizeof(float)));
    printf("  3 devices twice: %s\n", memcmp(again, p3, np * sizeof(float)) ? "DIFFERENT" : "bitwise identical");
    cldp_trainer_destroy(t);
    /* a checkpoint after 4 steps, loaded into a new trainer, 4 more: bitwise the run above */
    char path[300];
    snprintf(path, sizeof path, "%s/cnn.cldp", dir);
    t = make(m, test_devices("test_models", 3), "even", 0);
    steps(t, x, y, 0, 4);
    CHECK_OK(cldp_trainer_save_checkpoint(t, path, NULL, 0));
    cldp_trainer_destroy(t);
    /* created with another seed: the file's seed keys the dropout masks from here on */
    {
        cldp_trainer_options o;
        test_options(&o, test_devices("test_models", 3), BATCH, CLDP_OPT_SGD, 0.05f, 6, "even");
        o.weight_decay = 1e-3f;
        t = test_trainer_capped("test_models", m, &o, 0);
    }
    CHECK_OK(cldp_trainer_load_checkpoint(t, path, NULL, 0, NULL));
    steps(t, x, y, 4, STEPS);
    float *resumed = params_of(t, np);
    CHECK(!memcmp(resumed, p3, np * sizeof(float)));
    printf("  checkpoint after 4 steps, resumed by a trainer of seed 6: %s\n", memcmp(resumed, p3, np * sizeof(float)) ? "DIFFERENT" : "bitwise identical");
    cldp_trainer_destroy(t);
    unlink(path);
    char again_path[300];
    snprintf(again_path, sizeof again_path, "%s/again.cldp", dir);
    unlink(again_path);
    rmdir(dir);
    free(x), free(y), free(p1), free(p3), free(again), free(resumed), free(init);
    cldp_model_destroy(m);
    return test_finish("test_models");
}
