/* test_bad_input — every public entry point answers bad input with a clear status and message,
 * never a crash: unknown device specs, batch 0, NULL pointers, mismatched sizes, bad options,
 * out-of-range labels, a missing dataset, and damaged IDX files through the public loader. */
#define _POSIX_C_SOURCE 200809L
#undef NDEBUG
#include "testutil.h"

#include <unistd.h>

int main(void)
{
    test_rng_state = test_seed("test_bad_input");
    test_devices("test_bad_input", 1);
    size_t idx[8], n;

    /* ---- device specs */
    CHECK_STATUS(cldp_device_select("no-such-device-xyz", idx, 8, &n), CLDP_ERR_NO_DEVICE);
    CHECK(strstr(cldp_last_error(), "Devices found") != NULL); /* the message lists what exists */
    CHECK_STATUS(cldp_device_select("7:3", idx, 8, &n), CLDP_ERR_NO_DEVICE);
    CHECK_STATUS(cldp_device_select("0:0,0:0", idx, 8, &n), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_device_select("accelerator", idx, 8, &n), CLDP_ERR_NO_DEVICE);
    CHECK_STATUS(cldp_device_select("all", NULL, 8, &n), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_device_select("all", idx, 0, &n), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_OK(cldp_device_select("  ALL ", idx, 8, &n));
    CHECK_OK(cldp_device_select("basic", idx, 8, &n)); /* a name substring, any case */
    CHECK_STATUS(cldp_device_get_info(9999, NULL), CLDP_ERR_INVALID_ARGUMENT);
    cldp_device_info info;
    CHECK_STATUS(cldp_device_get_info(9999, &info), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_device_count(NULL), CLDP_ERR_INVALID_ARGUMENT);

    /* ---- models */
    cldp_model *m = NULL;
    CHECK_STATUS(cldp_model_create(0, &m), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_model_create(4, NULL), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_OK(cldp_model_create(4, &m));
    CHECK_STATUS(cldp_model_add_dense(m, 0, CLDP_ACT_RELU), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_model_add_dense(m, 3, (cldp_activation)99), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_model_add_dense(NULL, 3, CLDP_ACT_RELU), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_model_set_loss(m, (cldp_loss)5), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_model_add_dropout(NULL, 0.5f), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_model_add_dropout(m, -0.1f), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_model_add_dropout(m, 1.0f), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_model_add_dropout(m, NAN), CLDP_ERR_INVALID_ARGUMENT);
    cldp_trainer_options o;
    cldp_trainer_options_init(&o);
    o.devices = test_devices("test_bad_input", 1);
    o.batch = 8;
    cldp_trainer *t = NULL;
    CHECK_STATUS(cldp_trainer_create(m, &o, &t), CLDP_ERR_INVALID_ARGUMENT); /* no layers yet */
    CHECK_OK(cldp_model_add_dense(m, 3, CLDP_ACT_NONE));
    size_t np = cldp_model_param_count(m);
    CHECK(np == 4 * 3 + 3);
    float p[15];
    CHECK_STATUS(cldp_model_init_params(m, 1, p, 14), CLDP_ERR_INVALID_ARGUMENT);

    /* ---- trainer options */
    o.batch = 0;
    CHECK_STATUS(cldp_trainer_create(m, &o, &t), CLDP_ERR_INVALID_ARGUMENT);
    o.batch = 8;
    o.learning_rate = -1;
    CHECK_STATUS(cldp_trainer_create(m, &o, &t), CLDP_ERR_INVALID_ARGUMENT);
    o.learning_rate = NAN;
    CHECK_STATUS(cldp_trainer_create(m, &o, &t), CLDP_ERR_INVALID_ARGUMENT);
    o.learning_rate = 0.01f;
    o.momentum = 1.5f;
    CHECK_STATUS(cldp_trainer_create(m, &o, &t), CLDP_ERR_INVALID_ARGUMENT);
    o.momentum = 0.9f;
    o.optimizer = (cldp_optimizer)9;
    CHECK_STATUS(cldp_trainer_create(m, &o, &t), CLDP_ERR_INVALID_ARGUMENT);
    o.optimizer = CLDP_OPT_SGD;
    o.devices = "no-such-device-xyz";
    CHECK_STATUS(cldp_trainer_create(m, &o, &t), CLDP_ERR_NO_DEVICE);
    CHECK(t == NULL);
    cldp_trainer_options raw;
    memset(&raw, 0, sizeof raw); /* forgot cldp_trainer_options_init */
    CHECK_STATUS(cldp_trainer_create(m, &raw, &t), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_trainer_create(NULL, &o, &t), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_trainer_create(m, NULL, &t), CLDP_ERR_INVALID_ARGUMENT);
    /* an application built against an older, smaller struct: the fields it lacks (split,
     * balance) take their defaults; a struct larger than this library's is refused */
    {
        cldp_trainer_options old;
        cldp_trainer_options_init(&old);
        old.devices = test_devices("test_bad_input", 1);
        old.batch = 8;
        old.struct_size = offsetof(cldp_trainer_options, split);
        old.split = "bogus"; /* beyond its struct_size: never read */
        old.balance = 7;
        cldp_trainer *ot = NULL;
        CHECK_OK(cldp_trainer_create(m, &old, &ot));
        cldp_trainer_destroy(ot);
        old.struct_size = sizeof old + 8;
        CHECK_STATUS(cldp_trainer_create(m, &old, &ot), CLDP_ERR_INVALID_ARGUMENT);
        CHECK(strstr(cldp_last_error(), "struct_size") != NULL);
        old.struct_size = 8;
        CHECK_STATUS(cldp_trainer_create(m, &old, &ot), CLDP_ERR_INVALID_ARGUMENT);
    }
    o.devices = test_devices("test_bad_input", 1);
    CHECK_OK(cldp_trainer_create(m, &o, &t));
    if (!t) return test_finish("test_bad_input");

    /* ---- steps */
    float x[8 * 4];
    int32_t y[8] = {0, 1, 2, 0, 1, 2, 0, 1};
    test_fill(x, 8 * 4, -1, 1);
    cldp_step_stats s;
    CHECK_STATUS(cldp_trainer_step(t, x, y, 0, &s), CLDP_ERR_INVALID_ARGUMENT); /* batch 0 */
    CHECK_STATUS(cldp_trainer_step(t, x, y, 9, &s), CLDP_ERR_INVALID_ARGUMENT); /* over the batch option */
    CHECK_STATUS(cldp_trainer_step(t, NULL, y, 8, &s), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_trainer_step(t, x, NULL, 8, &s), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_trainer_step(NULL, x, y, 8, &s), CLDP_ERR_INVALID_ARGUMENT);
    y[3] = 3; /* the model has 3 classes */
    CHECK_STATUS(cldp_trainer_step(t, x, y, 8, &s), CLDP_ERR_INVALID_ARGUMENT);
    y[3] = -1;
    CHECK_STATUS(cldp_trainer_step(t, x, y, 8, &s), CLDP_ERR_INVALID_ARGUMENT);
    y[3] = 0;
    /* non-finite inputs: refused before anything runs, naming the row (a ReLU would hide them) */
    x[5 * 4 + 2] = NAN;
    CHECK_STATUS(cldp_trainer_step(t, x, y, 8, &s), CLDP_ERR_NONFINITE);
    CHECK(strstr(cldp_last_error(), "row 5") && strstr(cldp_last_error(), "NaN"));
    x[5 * 4 + 2] = INFINITY;
    CHECK_STATUS(cldp_trainer_step(t, x, y, 8, &s), CLDP_ERR_NONFINITE);
    CHECK(strstr(cldp_last_error(), "row 5") && strstr(cldp_last_error(), "Inf"));
    {
        double l;
        size_t c;
        float pr[8 * 3];
        CHECK_STATUS(cldp_trainer_evaluate(t, x, y, 8, &l, &c), CLDP_ERR_NONFINITE);
        CHECK(strstr(cldp_last_error(), "row 5") != NULL);
        CHECK_STATUS(cldp_trainer_predict(t, x, 8, pr), CLDP_ERR_NONFINITE);
        CHECK(strstr(cldp_last_error(), "row 5") != NULL);
    }
    x[5 * 4 + 2] = 0.25f;
    float before[15], after[15];
    CHECK_OK(cldp_trainer_get_params(t, before, 15));
    CHECK_OK(cldp_trainer_step(t, x, y, 8, &s)); /* still usable after the refusals */
    CHECK_OK(cldp_trainer_step(t, x, y, 1, NULL));
    CHECK_OK(cldp_trainer_get_params(t, after, 15));
    CHECK(memcmp(before, after, sizeof before) != 0);

    /* ---- parameters, evaluation, prediction */
    CHECK_STATUS(cldp_trainer_get_params(t, after, 14), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_trainer_set_params(t, after, 16), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_trainer_get_params(t, NULL, 15), CLDP_ERR_INVALID_ARGUMENT);
    after[4] = NAN;
    CHECK_STATUS(cldp_trainer_set_params(t, after, 15), CLDP_ERR_INVALID_ARGUMENT);
    double loss;
    size_t correct;
    CHECK_STATUS(cldp_trainer_evaluate(t, x, y, 0, &loss, &correct), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_trainer_evaluate(t, x, NULL, 8, &loss, &correct), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_trainer_predict(t, x, 8, NULL), CLDP_ERR_INVALID_ARGUMENT);
    /* the target calls: NULL handles, and on this cross-entropy model, the wrong call */
    CHECK_STATUS(cldp_trainer_step_targets(NULL, x, x, 8, NULL), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_trainer_step_targets(t, x, x, 8, NULL), CLDP_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cldp_last_error(), "cldp_trainer_step") != NULL);
    CHECK_STATUS(cldp_trainer_evaluate_targets(NULL, x, x, 8, &loss), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_trainer_evaluate_targets(t, x, x, 8, &loss), CLDP_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cldp_last_error(), "cldp_trainer_evaluate") != NULL);
    CHECK_STATUS(cldp_trainer_set_learning_rate(t, 0), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_trainer_device_stats(t, 99, NULL), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_trainer_device_info(t, 99, &info), CLDP_ERR_INVALID_ARGUMENT);
    float probs[8 * 3];
    CHECK_OK(cldp_trainer_predict(t, x, 8, probs));
    for (int i = 0; i < 8; i++) CHECK(fabsf(probs[i * 3] + probs[i * 3 + 1] + probs[i * 3 + 2] - 1.0f) < 1e-5f);

    /* ---- datasets through the public loader */
    cldp_dataset *ds = NULL;
    CHECK_STATUS(cldp_dataset_load_fashion_mnist("/nonexistent/dir", 1, &ds), CLDP_ERR_IO);
    CHECK(strstr(cldp_last_error(), "/nonexistent/dir") != NULL);
    CHECK_STATUS(cldp_dataset_load_idx(NULL, "x", &ds), CLDP_ERR_INVALID_ARGUMENT);
    char dir[] = "/tmp/cldp-bad-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char img[64], lab[64];
    snprintf(img, sizeof img, "%s/img", dir);
    snprintf(lab, sizeof lab, "%s/lab", dir);
    const unsigned char good_lab[] = {0, 0, 8, 1, 0, 0, 0, 2, 3, 4};
    const unsigned char headers[][16] = {
        {0, 0, 8, 1, 0, 0, 0, 2, 0, 0, 0, 2},           /* labels' magic for images: wrong ndims */
        {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2},      /* a gzip header and garbage */
        {0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0, 0, 0xff, 0xff, 0, 0, 0xff, 0xff}, /* absurd dims */
        {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2}, /* short data */
        {7, 7, 7, 7},                                    /* wrong magic */
    };
    for (size_t k = 0; k < sizeof headers / sizeof *headers; k++) {
        FILE *f = fopen(img, "wb");
        fwrite(headers[k], 1, 16, f);
        fclose(f);
        f = fopen(lab, "wb");
        fwrite(good_lab, 1, sizeof good_lab, f);
        fclose(f);
        ds = NULL;
        CHECK_STATUS(cldp_dataset_load_idx(img, lab, &ds), CLDP_ERR_FORMAT);
        CHECK(ds == NULL);
        CHECK(strstr(cldp_last_error(), img) != NULL);
    }
    unlink(img);
    unlink(lab);
    rmdir(dir);

    /* ---- names and no-op destroys */
    CHECK(strcmp(cldp_status_string(CLDP_ERR_OPENCL), "CLDP_ERR_OPENCL") == 0);
    CHECK(cldp_status_string((cldp_status)1234) != NULL);
    CHECK(cldp_version_number() == CLDP_VERSION_NUMBER);
    cldp_trainer_destroy(NULL);
    cldp_model_destroy(NULL);
    cldp_dataset_destroy(NULL);
    cldp_collective_destroy(NULL);
    CHECK(cldp_model_param_count(NULL) == 0);
    cldp_trainer_destroy(t);
    cldp_model_destroy(m);
    return test_finish("test_bad_input");
}
