/* embed.c — the smallest whole program on cldp: train an MLP on the Fashion-MNIST subset compiled
 * into the library, on every OpenCL device, and evaluate it. README.md quotes it. */
#include <cldp.h>
#include <stdio.h>
#include <stdlib.h>

static int check(cldp_status st, const char *what)
{
    if (st != CLDP_OK) fprintf(stderr, "%s: %s: %s\n", what, cldp_status_string(st), cldp_last_error());
    return st != CLDP_OK;
}

int main(void)
{
    cldp_dataset *train = NULL, *test = NULL;
    cldp_model *m = NULL;
    cldp_trainer *t = NULL;
    cldp_trainer_options o;
    cldp_step_stats s;
    int failed = check(cldp_dataset_embedded(1, &train), "train set") || check(cldp_dataset_embedded(0, &test), "test set") ||
                 check(cldp_model_create(cldp_dataset_features(train), &m), "model") ||
                 check(cldp_model_add_dense(m, 128, CLDP_ACT_RELU), "layer") ||
                 check(cldp_model_add_dense(m, 10, CLDP_ACT_NONE), "layer"); /* logits; softmax cross-entropy */
    cldp_trainer_options_init(&o);
    o.batch = 100;
    o.devices = "all";
    failed = failed || check(cldp_trainer_create(m, &o, &t), "trainer");
    size_t n = failed ? 0 : cldp_dataset_count(train), nf = failed ? 0 : cldp_dataset_features(train);
    for (int epoch = 0; !failed && epoch < 2; epoch++)
        for (size_t b = 0; !failed && b + o.batch <= n; b += o.batch) /* x: batch x features floats, labels: int32 */
            failed = check(cldp_trainer_step(t, cldp_dataset_images(train) + b * nf, cldp_dataset_labels(train) + b,
                                             o.batch, &s), "step");
    double loss = 0;
    size_t correct = 0, nt = failed ? 0 : cldp_dataset_count(test);
    failed = failed || check(cldp_trainer_evaluate(t, cldp_dataset_images(test), cldp_dataset_labels(test), nt, &loss,
                                                   &correct), "evaluate");
    if (!failed)
        printf("cldp %u on %zu device(s): test loss %.4f, accuracy %.4f\n", cldp_version_number(),
               cldp_trainer_device_count(t), loss, (double)correct / (double)nt);
    cldp_trainer_destroy(t);
    cldp_model_destroy(m);
    cldp_dataset_destroy(train);
    cldp_dataset_destroy(test);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
