/* test_training — sanity of real training: on the embedded Fashion-MNIST subset, two devices,
 * the loss falls and the test accuracy rises well above chance within a few epochs. */
#undef NDEBUG
#include "testutil.h"

int main(void)
{
    test_rng_state = test_seed("test_training");
    test_devices("test_training", 2);
    cldp_dataset *train = NULL, *test = NULL;
    CHECK_OK(cldp_dataset_embedded(1, &train));
    CHECK_OK(cldp_dataset_embedded(0, &test));
    if (!train || !test) return test_finish("test_training");
    size_t n = cldp_dataset_count(train), nf = cldp_dataset_features(train), nt = cldp_dataset_count(test);
    const float *x = cldp_dataset_images(train);
    const int32_t *y = cldp_dataset_labels(train);

    cldp_model *m;
    CHECK_OK(cldp_model_create(nf, &m));
    CHECK_OK(cldp_model_add_dense(m, 64, CLDP_ACT_RELU));
    CHECK_OK(cldp_model_add_dense(m, 10, CLDP_ACT_NONE));
    cldp_trainer_options o;
    cldp_trainer_options_init(&o);
    o.devices = test_devices("test_training", 2);
    o.batch = 100;
    o.seed = test_rand();
    cldp_trainer *t = NULL;
    CHECK_OK(cldp_trainer_create(m, &o, &t));
    if (!t) return test_finish("test_training");

    double loss0, loss_end;
    size_t correct0, correct_end;
    CHECK_OK(cldp_trainer_evaluate(t, cldp_dataset_images(test), cldp_dataset_labels(test), nt, &loss0, &correct0));
    double first_epoch = 0, last_epoch = 0;
    const int epochs = 8;
    for (int ep = 0; ep < epochs; ep++) {
        double sum = 0;
        for (size_t b = 0; b < n; b += 100) {
            cldp_step_stats s;
            CHECK_OK(cldp_trainer_step(t, x + b * nf, y + b, 100, &s));
            CHECK(isfinite(s.loss) && s.samples == 100 && s.correct <= 100);
            sum += s.loss;
        }
        if (ep == 0) first_epoch = sum / (double)(n / 100);
        last_epoch = sum / (double)(n / 100);
    }
    CHECK_OK(cldp_trainer_evaluate(t, cldp_dataset_images(test), cldp_dataset_labels(test), nt, &loss_end, &correct_end));
    double acc0 = (double)correct0 / (double)nt, acc = (double)correct_end / (double)nt;
    printf("  train loss: epoch 1 %.4f -> epoch %d %.4f; test loss %.4f -> %.4f; test accuracy %.3f -> %.3f\n",
           first_epoch, epochs, last_epoch, loss0, loss_end, acc0, acc);
    CHECK(last_epoch < 0.7 * first_epoch);
    CHECK(loss_end < 0.6 * loss0);
    CHECK(acc > 0.72 && acc > acc0 + 0.4);
    cldp_trainer_destroy(t);
    cldp_model_destroy(m);
    cldp_dataset_destroy(train);
    cldp_dataset_destroy(test);
    return test_finish("test_training");
}
