/* cldp-train — the main job: trains a multi-layer perceptron on Fashion-MNIST over every selected
 * OpenCL device at once, printing per-epoch loss, accuracy, throughput and each device's share.
 * Uses include/cldp.h only. */
#define _POSIX_C_SOURCE 200809L
#include "cldp.h"

#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cldp-train-args.h"       /* the command line */
#include "cldp-train-checkpoint.h" /* checkpoints: the location, the run state, saving, resuming */
#include "cldp-train-loss.h"       /* --loss: cross-entropy on labels, or MSE on one-hot targets */
#include "cldp-train-mpi.h"        /* --mpi: one rank of a run under mpirun */
#include "cldp-train-progress.h"   /* the line redrawn during an epoch on a terminal */
#include "cldp-train-report.h"     /* --report: the run as an HTML page */
#include "cldp-train-trace.h"      /* --trace: the timeline */

/* Standardises pixels with the training set's mean and deviation (in place, both splits). */
static void standardise(cldp_dataset *train, float *xtr, float *xte, size_t nte)
{
    size_t n = cldp_dataset_count(train) * cldp_dataset_features(train);
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) {
        s += xtr[i];
        s2 += (double)xtr[i] * xtr[i];
    }
    double mean = s / (double)n, sd = sqrt(s2 / (double)n - mean * mean);
    if (sd < 1e-6) sd = 1;
    for (size_t i = 0; i < n; i++) xtr[i] = (float)((xtr[i] - mean) / sd);
    for (size_t i = 0; i < nte; i++) xte[i] = (float)((xte[i] - mean) / sd);
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int fail(const char *what)
{
    fprintf(stderr, "cldp-train: %s: %s\n", what, cldp_last_error());
    return 1;
}

/* The labels file a dataset came from, for messages. */
static void labels_file(char *buf, size_t cap, const char *source, int train)
{
    if (!strcmp(source, "embedded subset")) {
        snprintf(buf, cap, "embedded fmnist-mini-%s-labels.gz", train ? "train" : "test");
        return;
    }
    size_t len = strlen(source);
    snprintf(buf, cap, "%s%s%s-labels-idx1-ubyte.gz", source, len && source[len - 1] == '/' ? "" : "/", train ? "train" : "t10k");
}

/* Every label must name one of the model's --classes outputs: a larger one is refused, naming the
 * file, the index and the label, rather than growing the model or failing inside a step. */
static int check_labels(const args *a, const char *source, const cldp_dataset *ds, int train)
{
    const int32_t *y = cldp_dataset_labels(ds);
    for (size_t i = 0, n = cldp_dataset_count(ds); i < n; i++) {
        if (y[i] >= 0 && (size_t)y[i] < a->classes) continue;
        char file[4200];
        labels_file(file, sizeof file, source, train);
        fprintf(stderr, "cldp-train: %s: label %ld at index %zu is outside the %zu classes of the model (--classes %zu); give "
                        "--classes %ld or more, or mend the file\n", file, (long)y[i], i, a->classes, a->classes, (long)y[i] + 1);
        return -1;
    }
    return 0;
}

static int train(int argc, char **argv)
{
    args a = {.epochs = 0 /* the default after parsing */, .batch = 128, .optimizer = CLDP_OPT_ADAM, .hidden = {256, 128}, .nhidden = 2,
              .act = CLDP_ACT_RELU, .classes = DEFAULT_CLASSES, .momentum = 0.9f, .seed = 1, .timeout_s = 120};
    int pr = parse_args(argc, argv, &a);
    if (pr) return pr > 0 ? 0 : 2;
    if (a.mpi) {
        if (mpi_begin(&argc, &argv, a.mpi_allreduce)) return 2;
        if (mpi_rank != 0) a.checkpoint = NULL, a.checkpoint_is_resume = 0, a.report = NULL; /* rank 0 saves */
    }
    double t_start = now_s();
    /* the checkpoint's location before anything else: a bad one is found now, not after an epoch */
    if (a.checkpoint && prepare_checkpoint(&a)) return 2;
    if (a.report && report_check(a.report, a.force)) return 2;
    if (a.trace && (!a.mpi || mpi_rank == 0) && trace_begin(a.trace, a.quiet)) return 2; /* rank 0's timeline */
    if (a.checkpoint_is_resume)
        printf("cldp-train: saving the run to %s, the file it resumes from (--checkpoint FILE saves elsewhere)\n", a.checkpoint);

    /* ---- data */
    cldp_dataset *train = NULL, *test = NULL;
    const char *source = a.data ? a.data : "/usr/share/datasets/fashion-mnist";
    cldp_status st = a.embedded ? CLDP_ERR_IO : cldp_dataset_load_fashion_mnist(a.data, 1, &train);
    if (st == CLDP_OK) st = cldp_dataset_load_fashion_mnist(a.data, 0, &test);
    if (a.embedded) {
        source = "embedded subset";
        st = cldp_dataset_embedded(1, &train);
        if (st == CLDP_OK) st = cldp_dataset_embedded(0, &test);
    } else if (st == CLDP_ERR_IO && !a.data) {
        fprintf(stderr, "cldp-train: note: %s\ncldp-train: note: Fashion-MNIST not found, training on the embedded "
                        "subset (2000 train / 500 test samples); install Debian's dataset-fashion-mnist for the full set\n",
                cldp_last_error());
        cldp_dataset_destroy(train);
        train = NULL;
        source = "embedded subset";
        st = cldp_dataset_embedded(1, &train);
        if (st == CLDP_OK) st = cldp_dataset_embedded(0, &test);
    }
    if (st != CLDP_OK) {
        cldp_dataset_destroy(train);
        return fail("loading the dataset");
    }
    size_t ntr = cldp_dataset_count(train), nte = cldp_dataset_count(test), nf = cldp_dataset_features(train);
    const size_t classes = a.classes;
    int bad_data = cldp_dataset_features(test) != nf;
    if (bad_data)
        fprintf(stderr, "cldp-train: the training images of %s have %zu pixels each but its test images %zu; both splits must come "
                        "from one dataset\n", source, nf, cldp_dataset_features(test));
    if (bad_data || check_labels(&a, source, train, 1) || check_labels(&a, source, test, 0)) {
        cldp_dataset_destroy(train);
        cldp_dataset_destroy(test);
        return 1;
    }
    if (a.batch > ntr) { /* one step takes the whole set: a larger batch would only cost memory */
        fprintf(stderr, "cldp-train: note: --batch %zu is larger than the %zu training samples; using batch %zu\n", a.batch, ntr, ntr);
        a.batch = ntr;
    }
    float *xtr = malloc(ntr * nf * sizeof(float)), *xte = malloc(nte * nf * sizeof(float));
    float *xb = malloc(a.batch * nf * sizeof(float));
    int32_t *yb = malloc(a.batch * sizeof(int32_t));
    float *tb = malloc(a.batch * classes * sizeof(float)); /* --loss mse: one-hot targets */
    size_t *order = malloc(ntr * sizeof(size_t));
    if (!xtr || !xte || !xb || !yb || !tb || !order) {
        fprintf(stderr, "cldp-train: out of host memory for the dataset\n");
        return 1;
    }
    memcpy(xtr, cldp_dataset_images(train), ntr * nf * sizeof(float));
    memcpy(xte, cldp_dataset_images(test), nte * nf * sizeof(float));
    standardise(train, xtr, xte, nte * nf);
    const int32_t *ytr = cldp_dataset_labels(train), *yte = cldp_dataset_labels(test);

    /* ---- model and trainer */
    cldp_model *model = NULL;
    size_t shape[3] = {a.input[0], a.input[1], a.input[2]};
    const char *spec = a.model && !strcmp(a.model, "cnn") ? CNN_PRESET : a.model && strcmp(a.model, "mlp") ? a.model : NULL;
    if (!shape[0]) { /* Fashion-MNIST's images are 1x28x28 (cldp-serve builds its models so too);
                      * other data is a flat vector */
        int image = nf == 784;
        shape[0] = image ? 1 : nf, shape[1] = image ? 28 : 1, shape[2] = image ? 28 : 1;
    }
    if (shape[0] * shape[1] * shape[2] != nf) {
        fprintf(stderr, "cldp-train: --input %zux%zux%zu has %zu values per sample but the data has %zu features; give a shape "
                        "whose product is %zu\n", shape[0], shape[1], shape[2], shape[0] * shape[1] * shape[2], nf, nf);
        return 2;
    }
    if (cldp_model_create_shaped(shape[0], shape[1], shape[2], &model) != CLDP_OK) return fail("creating the model");
    if (spec) {
        if (cldp_model_add_spec(model, spec) != CLDP_OK) {
            fprintf(stderr, "cldp-train: bad --model: %s (input %zux%zux%zu; try --help)\n", cldp_last_error(), shape[0], shape[1],
                    shape[2]);
            return 2;
        }
        if (cldp_model_outputs(model) != classes) {
            fprintf(stderr, "cldp-train: --model ends with %zu outputs but there are %zu classes: end it with dense:%zu\n",
                    cldp_model_outputs(model), classes, classes);
            return 2;
        }
    } else {
        if ((shape[1] > 1 || shape[2] > 1) && cldp_model_add_flatten(model) != CLDP_OK) return fail("adding flatten");
        for (size_t l = 0; l < a.nhidden; l++)
            if (cldp_model_add_dense(model, a.hidden[l], a.act) != CLDP_OK) return fail("adding a layer");
        if (cldp_model_add_dense(model, classes, CLDP_ACT_NONE) != CLDP_OK) return fail("adding the output layer");
    }
    if (cldp_model_set_loss(model, a.loss) != CLDP_OK) return fail("setting the loss");
    char model_spec[2048];
    if (cldp_model_describe(model, model_spec, sizeof model_spec) != CLDP_OK) return fail("describing the model");
    cldp_trainer_options o;
    cldp_trainer_options_init(&o);
    o.devices = a.devices;
    o.batch = a.batch;
    o.optimizer = a.optimizer;
    o.learning_rate = a.lr;
    o.momentum = a.momentum;
    o.weight_decay = a.weight_decay;
    o.seed = a.seed;
    o.split = a.split;
    o.balance = a.no_balance ? 0 : -1; /* -1: balance only when the devices differ */
    o.on_failure = a.drop ? CLDP_ON_FAILURE_DROP : CLDP_ON_FAILURE_STOP;
    o.timeout_ms = a.timeout_s * 1000.0;
    cldp_trainer *tr = NULL;
    double t_create = now_s();
    /* SIGINT/SIGTERM are blocked while the trainer starts its worker threads, which inherit the
     * mask: only this thread takes them, so no driver call in a worker is interrupted. */
    sigset_t sigs, old_sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, &old_sigs);
    catch_signals();
    st = a.mpi ? mpi_create(model, &o, a.mpi_allreduce, &tr) : cldp_trainer_create(model, &o, &tr);
    pthread_sigmask(SIG_SETMASK, &old_sigs, NULL);
    if (st != CLDP_OK) return fail("creating the trainer");
    trace_restart(); /* the timeline starts with the first step, the trainer's creation left out */
    size_t ndev = cldp_trainer_device_count(tr);
    report rep;
    if (report_begin(&rep, a.report, tr)) return 1;
    rep.timeline.trace_on = trace_file != NULL; /* --trace records: the report takes its step from there */
    report_facts(&rep, &a, source, ntr, nte, nf, shape, model_spec, cldp_model_param_count(model));
    if (!a.quiet) { /* --quiet: only the summary */
        printf("cldp-train: %s, %zu train / %zu test samples, %zu features, %zu classes\n", source, ntr, nte, nf, classes);
        printf("cldp-train: model %zux%zux%zu -> %s (%zu parameters), %s lr %g, batch %zu, %d epoch%s, seed %llu\n", shape[0],
               shape[1], shape[2], model_spec, cldp_model_param_count(model), a.optimizer == CLDP_OPT_ADAM ? "adam" : "sgd",
               (double)a.lr, a.batch, a.epochs, a.epochs == 1 ? "" : "s", (unsigned long long)a.seed);
        printf("cldp-train: %zu device(s), ready in %.2f s:\n", ndev, now_s() - t_create);
        for (size_t r = 0; r < ndev; r++) {
            cldp_device_info d;
            cldp_trainer_device_info(tr, r, &d);
            size_t rows = 0;
            cldp_trainer_device_rows(tr, r, &rows);
            printf("  [%zu] %u:%u %s (%s)", r, d.platform_index, d.device_index, d.name, d.vendor);
            if (rows < a.batch) printf(", memory for %zu rows at once: larger shards run as micro-batches", rows);
            printf("\n");
        }
    }
    fflush(stdout); /* a parent reading a pipe (test_kill_resume) learns that training starts */

    /* ---- training */
    uint64_t rng = a.seed * 0x9E3779B97F4A7C15ull + 12345;
    for (size_t i = 0; i < ntr; i++) order[i] = i;
    size_t steps_per_epoch = (ntr + a.batch - 1) / a.batch, total_steps = steps_per_epoch * (size_t)a.epochs, step = 0;
    double final_loss = 0, test_acc = 0, train_time = 0, samples_done = 0;
    double *dev_ms = calloc(ndev, sizeof(double)), *dev_idle = calloc(ndev, sizeof(double));
    double *dev_shard = calloc(ndev, sizeof(double)); /* summed over the epoch's steps: the split may change */
    progress prog;
    progress_init(&prog, a.quiet);

    /* where the run starts: the beginning, or where --resume's checkpoint left it */
    run_state rs;
    memset(&rs, 0, sizeof rs);
    memcpy(rs.magic, RUN_MAGIC, 8);
    char config[sizeof rs.config];
    run_config(config, sizeof config, &a, source, ntr, nf, ytr);
    memcpy(rs.config, config, sizeof config);
    rs.epoch = 1;
    rs.ntr = ntr;
    int exit_code = 0; /* 1 after a checkpoint failed, 128 + the signal that stopped the run */
    unsigned char *blob = NULL;
    if ((a.checkpoint || a.resume) && (ntr > UINT32_MAX || !(blob = malloc(sizeof rs + 4 * ntr)))) {
        fprintf(stderr, "cldp-train: cannot hold the run state of %zu samples for a checkpoint\n", ntr);
        return 1;
    }
    if (a.init_from && !a.resume) {
        size_t n0 = cldp_model_param_count(model);
        float *w0 = malloc(n0 * sizeof(float));
        if (!w0 || cldp_model_load_safetensors(model, a.init_from, w0, n0) != CLDP_OK || cldp_trainer_set_params(tr, w0, n0) != CLDP_OK) {
            fprintf(stderr, "cldp-train: --init-from %s: %s\n", a.init_from, w0 ? cldp_last_error() : "out of host memory");
            free(w0);
            return 2;
        }
        free(w0);
        printf("cldp-train: starting from the weights in %s\n", a.init_from);
    }
    if (a.resume) {
        if (load_run(tr, a.resume, config, ntr, steps_per_epoch, a.epochs, &rs, order, blob)) {
            exit_code = 1;
            rep.path = NULL; /* nothing ran: an earlier report stays */
            goto release;
        }
        rng = rs.rng;
        final_loss = rs.final_loss;
        test_acc = rs.test_acc;
        step = (size_t)(rs.epoch - 1) * steps_per_epoch + (size_t)rs.step;
        printf("cldp-train: resumed from %s at epoch %llu, step %llu of %zu (step %zu of the run)\n", a.resume,
               (unsigned long long)rs.epoch, (unsigned long long)rs.step, steps_per_epoch, step);
        if (rs.epoch > (uint64_t)a.epochs)
            printf("cldp-train: the run in %s is already complete (%d epoch%s); nothing to train\n", a.resume, a.epochs,
                   a.epochs == 1 ? "" : "s");
    }
    const int first_ep = (int)rs.epoch;
    const size_t first_s = (size_t)rs.step;
    /* the report's timeline: a step past the warm-up (CLBlast compiles in the first), mid-epoch */
    size_t first_epoch_steps = steps_per_epoch - first_s, left = total_steps > step ? total_steps - step : 0;
    rep.timeline.step = step + (left < 2 ? 0 : first_epoch_steps / 2 < 1 ? 1 : first_epoch_steps / 2);
    for (int ep = first_ep; ep <= a.epochs; ep++) {
        const int resumed = ep == first_ep; /* this epoch continues where the checkpoint left it */
        for (size_t i = ntr; i > 1 && !(resumed && rs.shuffled); i--) { /* Fisher-Yates with xorshift64* */
            rng ^= rng >> 12; rng ^= rng << 25; rng ^= rng >> 27;
            size_t j = (size_t)((rng * 0x2545F4914F6CDD1Dull) % i), t = order[i - 1];
            order[i - 1] = order[j];
            order[j] = t;
        }
        double ep_loss = resumed ? rs.ep_loss : 0, t0 = now_s(), ep_samples = 0;
        size_t ep_correct = resumed ? (size_t)rs.ep_correct : 0, s0 = resumed ? first_s : 0;
        memset(dev_ms, 0, ndev * sizeof(double));
        memset(dev_idle, 0, ndev * sizeof(double));
        memset(dev_shard, 0, ndev * sizeof(double));
        for (size_t s = s0; s < steps_per_epoch; s++, step++) {
            size_t b0 = s * a.batch, nb = ntr - b0 < a.batch ? ntr - b0 : a.batch;
            for (size_t k = 0; k < nb; k++) {
                memcpy(xb + k * nf, xtr + order[b0 + k] * nf, nf * sizeof(float));
                yb[k] = ytr[order[b0 + k]];
            }
            /* cosine decay of the learning rate over the whole run */
            float lr = (float)(a.lr * 0.5 * (1.0 + cos(3.14159265358979323846 * (double)step / (double)total_steps)));
            cldp_trainer_set_learning_rate(tr, lr > 0 ? lr : 1e-12f);
            cldp_step_stats ss;
            report_before_step(&rep, step);
            double ts = now_s();
            if (loss_step(tr, a.loss, xb, yb, tb, nb, classes, &ss) != CLDP_OK) {
                progress_clear(&prog);
                /* the trainer keeps the parameters from before the failed step: save those */
                fprintf(stderr, "cldp-train: step %zu failed: %s\n", step + 1, cldp_last_error());
                snprintf(rep.status, sizeof rep.status, "stopped: step %zu failed: %s", step + 1, cldp_last_error());
                if (a.checkpoint) {
                    set_position(&rs, ep, s, rng, ep_loss, ep_correct, final_loss, test_acc);
                    if (save_run(tr, a.checkpoint, &rs, order, blob) == 0)
                        fprintf(stderr, "cldp-train: the run up to the failed step is saved in %s; mend or leave out "
                                        "the device (--devices), then continue with --resume %s\n", a.checkpoint, a.checkpoint);
                }
                exit_code = 1;
                goto release;
            }
            if (ss.skipped || ss.devices < ndev) { /* a skipped update or a dropped device: say so */
                progress_clear(&prog);
                fflush(stdout);
                fprintf(stderr, "cldp-train: %s\n", cldp_last_error());
                ndev = ss.devices;
            }
            ep_loss += ss.loss * (double)nb;
            ep_correct += ss.correct;
            ep_samples += (double)nb;
            for (size_t r = 0; r < ndev; r++) {
                cldp_device_stats ds;
                cldp_trainer_device_stats(tr, r, &ds);
                dev_ms[r] += ds.compute_ms;
                dev_idle[r] += ds.idle_ms;
                dev_shard[r] += (double)ds.shard;
            }
            double tn = now_s();
            report_step(&rep, tr, ep, step, &ss, nb, tn - t0);
            progress_step(&prog, tn - ts, ep, a.epochs, s, steps_per_epoch, total_steps - step - 1, ep_loss / (double)(b0 + nb),
                          ep_samples, tn - t0, tn);
            int stop = mpi_agree(stop_signal); /* over MPI ranks, all stop after the same step */
            int due = a.checkpoint_every && (step + 1) % a.checkpoint_every == 0;
            if (a.checkpoint && (due || stop)) {
                progress_clear(&prog);
                set_position(&rs, ep, s + 1, rng, ep_loss, ep_correct, final_loss, test_acc);
                if (save_run(tr, a.checkpoint, &rs, order, blob)) {
                    snprintf(rep.status, sizeof rep.status, "stopped: the checkpoint %s could not be saved", a.checkpoint);
                    exit_code = 1;
                    goto release;
                }
            }
            if (stop) {
                progress_clear(&prog);
                snprintf(rep.status, sizeof rep.status, "stopped by %s after step %zu of %zu (epoch %d)", signal_name(stop), step + 1,
                         total_steps, ep);
                printf("cldp-train: %s after step %zu of %zu (epoch %d, step %zu of %zu); %s%s%s\n",
                       stop == SIGINT ? "SIGINT" : "SIGTERM", step + 1, total_steps, ep, s + 1, steps_per_epoch,
                       a.checkpoint ? "checkpoint written to " : "no --checkpoint given, nothing saved",
                       a.checkpoint ? a.checkpoint : "", a.checkpoint ? "; continue with --resume and the same options" : "");
                fflush(stdout);
                exit_code = 128 + stop;
                goto release;
            }
        }
        double dt = now_s() - t0;
        train_time += dt;
        samples_done += ep_samples;
        progress_clear(&prog);
        size_t correct = 0;
        double tl;
        if (loss_evaluate(tr, a.loss, xte, yte, nte, classes, &tl, &correct) != CLDP_OK) {
            snprintf(rep.status, sizeof rep.status, "stopped: the evaluation after epoch %d failed: %s", ep, cldp_last_error());
            exit_code = fail("evaluation");
            goto release;
        }
        final_loss = ep_loss / (double)ntr;
        test_acc = (double)correct / (double)nte;
        report_epoch_end(&rep, ep, final_loss, (double)ep_correct / (double)ntr, tl, test_acc, ep_samples / dt, dt);
        if (!a.quiet)
            printf("epoch %2d  loss %.4f  train acc %.4f  test acc %.4f  test loss %.4f  %.0f samples/s  %.1f s\n", ep,
               final_loss, (double)ep_correct / (double)ntr, test_acc, tl, ep_samples / dt, dt);
        if (!a.quiet) {
            /* per step, averaged over the epoch's steps: mean shard, compute, idle (waiting for
             * the slowest device), and the split the next step will use */
            double steps_run = (double)(steps_per_epoch - s0), *w = calloc(ndev, sizeof(double));
            if (w) cldp_trainer_get_split(tr, w, NULL, ndev);
            double wsum = 0;
            for (size_t r = 0; w && r < ndev; r++) wsum += w[r];
            for (size_t r = 0; r < ndev; r++) {
                double c = dev_ms[r] / steps_run, idle = dev_idle[r] / steps_run;
                double share = w && wsum > 0 ? w[r] / wsum : 0.0;
                printf("          [%zu] shard %.1f (mean), compute %.2f ms/step, idle %.2f ms/step (%.0f%%), split now %.3f%s\n", r,
                       dev_shard[r] / steps_run, c, idle, c + idle > 0 ? 100 * idle / (c + idle) : 0.0, share,
                       share == 0 ? " (no samples: it idles, and receives the parameters)" : "");
            }
            free(w);
        }
        int stop_ep = mpi_agree(stop_signal);
        /* at each epoch end (or only the last with --checkpoint-every), and when a signal came
         * during the evaluation: the next epoch's shuffle is still to come */
        if (a.checkpoint && (!a.checkpoint_every || ep == a.epochs || stop_ep)) {
            memset(&rs.epoch, 0, sizeof rs - offsetof(run_state, epoch));
            rs.epoch = (uint64_t)ep + 1;
            rs.rng = rng;
            rs.ntr = ntr;
            rs.final_loss = final_loss;
            rs.test_acc = test_acc;
            if (save_run(tr, a.checkpoint, &rs, order, blob)) {
                snprintf(rep.status, sizeof rep.status, "stopped: the checkpoint %s could not be saved", a.checkpoint);
                exit_code = 1;
                goto release;
            }
            if (!a.checkpoint_every && !a.quiet) printf("          checkpoint written to %s\n", a.checkpoint);
        }
        fflush(stdout);
        if (stop_ep) {
            snprintf(rep.status, sizeof rep.status, "stopped by %s after epoch %d", signal_name(stop_ep), ep);
            printf("cldp-train: %s after epoch %d; %s%s\n", stop_ep == SIGINT ? "SIGINT" : "SIGTERM", ep,
                   a.checkpoint ? "checkpoint written to " : "no --checkpoint given, nothing saved", a.checkpoint ? a.checkpoint : "");
            fflush(stdout);
            exit_code = 128 + stop_ep;
            goto release;
        }
    }

    size_t np = cldp_model_param_count(model);
    float *params = malloc(np * sizeof(float));
    if (!params || cldp_trainer_get_params(tr, params, np) != CLDP_OK) return fail("reading the parameters");
    uint32_t crc = cldp_crc32(params, np * sizeof(float));
    if (a.export_path && (!a.mpi || mpi_rank == 0)) {
        if (cldp_model_save_safetensors(model, params, np, a.export_path) != CLDP_OK) {
            fprintf(stderr, "cldp-train: --export: %s\n", cldp_last_error());
            exit_code = 1;
        } else {
            printf("cldp-train: weights written to %s (safetensors)\n", a.export_path);
        }
    }
    double total = now_s() - t_start;
    double throughput = train_time > 0 ? samples_done / train_time : 0; /* 0 when resumed from a finished run */
    char speed[64] = "nothing trained in this process (the run was already complete)";
    if (samples_done > 0) snprintf(speed, sizeof speed, "%.0f samples/s", throughput);
    printf("cldp-train: test accuracy %.4f after %d epoch%s, %s, %.1f s in all; parameter CRC32 0x%08x\n", test_acc, a.epochs,
           a.epochs == 1 ? "" : "s", speed, total, (unsigned)crc);
    snprintf(rep.status, sizeof rep.status, "test accuracy %.4f after %d epoch%s, %s, %.1f s in all", test_acc, a.epochs,
             a.epochs == 1 ? "" : "s", speed, total);
    if (a.json) {
        printf("{\"test_accuracy\":%.6f,\"final_loss\":%.6f,\"samples_per_s\":%.1f,\"epochs\":%d,\"batch\":%zu,"
               "\"seconds\":%.2f,\"dataset\":",
               test_acc, final_loss, throughput, a.epochs, a.batch, total);
        json_string(source);
        printf(",\"devices\":[");
        for (size_t r = 0; r < ndev; r++) {
            cldp_device_info d;
            cldp_trainer_device_info(tr, r, &d);
            if (r) putchar(',');
            json_string(d.name);
        }
        printf("],\"model\":");
        json_string(model_spec);
        printf(",\"input\":[%zu,%zu,%zu],\"loss\":\"%s\"", shape[0], shape[1], shape[2], a.loss == CLDP_LOSS_MSE ? "mse" : "xent");
        printf(",\"param_checksum\":\"0x%08x\"}\n", (unsigned)crc); /* hex, as the line above writes it */
    }
    free(params);
release: /* also after a signal (its checkpoint written) or a checkpoint that failed */
    if (report_write(&rep, a.quiet) && !exit_code) exit_code = 1;
    report_free(&rep);
    free(blob);
    free(dev_ms);
    free(dev_idle);
    free(dev_shard);
    free(order);
    free(xb);
    free(yb);
    free(tb);
    free(xtr);
    free(xte);
    cldp_trainer_destroy(tr);
    cldp_model_destroy(model);
    cldp_dataset_destroy(train);
    cldp_dataset_destroy(test);
    return exit_code;
}

int main(int argc, char **argv) { return mpi_end(train(argc, argv)); }
