/* cldp-train — the main job: trains a multi-layer perceptron on Fashion-MNIST over every selected
 * OpenCL device at once, printing per-epoch loss, accuracy, throughput and each device's share.
 * Uses include/cldp.h only. */
#define _POSIX_C_SOURCE 200809L
#include "cldp.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_HIDDEN 16

typedef struct args {
    const char *devices;
    const char *data;
    int epochs;
    size_t batch;
    float lr;
    float momentum;
    float weight_decay;
    cldp_optimizer optimizer;
    size_t hidden[MAX_HIDDEN];
    size_t nhidden;
    cldp_activation act;
    uint64_t seed;
    int json;
    int quiet;
    int embedded;
    const char *checkpoint;    /* --checkpoint: where to save */
    size_t checkpoint_every;   /* steps between saves; 0: at each epoch end */
    const char *resume;        /* --resume: where to continue from */
    const char *split;         /* --split: weights per device, "auto" or "even" */
    int no_balance;            /* --no-balance: keep the split as it starts */
    int drop;                  /* --on-failure drop */
    float timeout_s;           /* --timeout: the watchdog */
} args;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cldp-train [options]\n"
            "Trains an MLP on Fashion-MNIST, data-parallel over every selected OpenCL device.\n\n"
            "  --devices SPEC      devices: all, gpu, cpu, accelerator, platform:device list (0:0,0:1)\n"
            "                      or a name substring (default: $CLDP_DEVICES, else all GPUs, else all)\n"
            "  --data DIR          directory with the four Fashion-MNIST .gz files\n"
            "                      (default: /usr/share/datasets/fashion-mnist, from Debian's\n"
            "                      dataset-fashion-mnist; without it a 2000/500-sample embedded subset)\n"
            "  --epochs N          passes over the training set (default 10)\n"
            "  --batch B           global batch, split over the devices (default 128)\n"
            "  --lr X              learning rate (default 1e-3 for adam, 0.05 for sgd); cosine decay to 0\n"
            "  --optimizer NAME    adam or sgd (momentum 0.9) (default adam)\n"
            "  --momentum X        SGD momentum (default 0.9)\n"
            "  --weight-decay X    L2 weight decay (default 0)\n"
            "  --hidden LIST       hidden layer sizes, e.g. 256,128 (default); 'none' for a linear model\n"
            "  --activation NAME   relu or tanh (default relu)\n"
            "  --seed S            parameter initialisation and shuffling seed (default 1)\n"
            "  --embedded          train on the embedded subset even when Fashion-MNIST is installed\n"
            "  --checkpoint FILE   save the whole run (parameters, optimizer, split, epoch, position,\n"
            "                      data order) to FILE at each epoch end, at the end, and on SIGINT or\n"
            "                      SIGTERM; written to FILE.tmp.<pid>, synced, then renamed over FILE\n"
            "  --checkpoint-every N  save every N steps instead of at each epoch end\n"
            "  --resume FILE       continue the run saved in FILE (same options, same data); on the\n"
            "                      same devices with a fixed split (CLDP_SPLIT=even, or weights) the\n"
            "                      final parameters equal an uninterrupted run's bit for bit\n"
            "  --split W,W,...     the share of the batch each device computes, as weights in device\n"
            "                      order (e.g. 3,1: rank 0 takes three quarters), kept as given; or\n"
            "                      'even', or 'auto' (default: $CLDP_SPLIT, else auto: start even and,\n"
            "                      when the devices differ, size the shards by each one's measured speed\n"
            "                      so that they finish together)\n"
            "  --no-balance        keep the starting split: no speed-aware re-sizing of the shards\n"
            "  --on-failure WHAT   stop (default): a device error ends the run (after saving the\n"
            "                      --checkpoint); drop: leave the failed device out and go on\n"
            "  --timeout S         watchdog: a device silent for S seconds in a step has failed\n"
            "                      (default 120; 0 turns it off)\n"
            "                      (the result is the same for any split, to float32 rounding)\n"
            "  --json              end with one JSON line of the results\n"
            "  --quiet             no progress line during an epoch\n"
            "  --help              this text\n"
            "On SIGINT or SIGTERM it finishes the step in progress, saves the checkpoint (with\n"
            "--checkpoint), says where and exits with status 130 (SIGINT) or 143 (SIGTERM); a second\n"
            "signal ends it at once.\n");
}

static int parse_size(const char *s, size_t lo, size_t hi, size_t *out)
{
    char *end;
    errno = 0;
    if (!s || *s == '-' || !*s) return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = (size_t)v;
    return 0;
}

static int parse_float(const char *s, float *out)
{
    char *end;
    errno = 0;
    if (!s || !*s) return -1;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || fabs(v) > FLT_MAX) return -1; /* finite as a float too */
    *out = (float)v;
    return 0;
}

static int parse_hidden(const char *s, args *a)
{
    a->nhidden = 0;
    if (!strcmp(s, "none")) return 0;
    const char *p = s;
    while (*p) {
        char tmp[32];
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof tmp || a->nhidden == MAX_HIDDEN) return -1;
        memcpy(tmp, p, len);
        tmp[len] = 0;
        if (parse_size(tmp, 1, 1u << 16, &a->hidden[a->nhidden++])) return -1;
        p += len;
        if (*p == ',') {
            p++;
            if (!*p) return -1;
        }
    }
    return a->nhidden ? 0 : -1;
}

/* Returns 0 on success, 1 after --help, -1 on a bad argument (message printed). */
static int parse_args(int argc, char **argv, args *a)
{
    int lr_set = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        size_t tmp = 0; /* read below even when parsing it failed */
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage(stdout);
            return 1;
        } else if (!strcmp(o, "--json")) {
            a->json = 1;
            continue;
        } else if (!strcmp(o, "--quiet")) {
            a->quiet = 1;
            continue;
        } else if (!strcmp(o, "--embedded")) {
            a->embedded = 1;
            continue;
        } else if (!strcmp(o, "--no-balance")) {
            a->no_balance = 1;
            continue;
        } else if (!v) {
            fprintf(stderr, "cldp-train: %s needs a value (try --help)\n", o);
            return -1;
        } else if (!strcmp(o, "--devices")) {
            a->devices = v;
        } else if (!strcmp(o, "--data")) {
            a->data = v;
        } else if (!strcmp(o, "--epochs")) {
            bad = parse_size(v, 1, 100000, &tmp);
            a->epochs = (int)tmp;
        } else if (!strcmp(o, "--batch")) {
            bad = parse_size(v, 1, 1u << 20, &a->batch);
        } else if (!strcmp(o, "--lr")) {
            bad = parse_float(v, &a->lr) || a->lr <= 0;
            lr_set = 1;
        } else if (!strcmp(o, "--momentum")) {
            bad = parse_float(v, &a->momentum) || a->momentum < 0 || a->momentum >= 1;
        } else if (!strcmp(o, "--weight-decay")) {
            bad = parse_float(v, &a->weight_decay) || a->weight_decay < 0;
        } else if (!strcmp(o, "--optimizer")) {
            if (!strcmp(v, "adam")) a->optimizer = CLDP_OPT_ADAM;
            else if (!strcmp(v, "sgd")) a->optimizer = CLDP_OPT_SGD;
            else bad = 1;
        } else if (!strcmp(o, "--activation")) {
            if (!strcmp(v, "relu")) a->act = CLDP_ACT_RELU;
            else if (!strcmp(v, "tanh")) a->act = CLDP_ACT_TANH;
            else bad = 1;
        } else if (!strcmp(o, "--hidden")) {
            bad = parse_hidden(v, a);
        } else if (!strcmp(o, "--checkpoint")) {
            a->checkpoint = v;
            bad = !*v;
        } else if (!strcmp(o, "--checkpoint-every")) {
            bad = parse_size(v, 1, SIZE_MAX, &a->checkpoint_every);
        } else if (!strcmp(o, "--on-failure")) {
            if (!strcmp(v, "stop")) a->drop = 0;
            else if (!strcmp(v, "drop")) a->drop = 1;
            else bad = 1;
        } else if (!strcmp(o, "--timeout")) {
            bad = parse_float(v, &a->timeout_s) || a->timeout_s < 0;
        } else if (!strcmp(o, "--split")) {
            a->split = v;
            bad = !*v;
        } else if (!strcmp(o, "--resume")) {
            a->resume = v;
            bad = !*v;
        } else if (!strcmp(o, "--seed")) {
            bad = parse_size(v, 0, SIZE_MAX, &tmp);
            a->seed = tmp;
        } else {
            fprintf(stderr, "cldp-train: unknown option '%s' (try --help)\n", o);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "cldp-train: bad value '%s' for %s (try --help)\n", v, o);
            return -1;
        }
        i++;
    }
    if (!lr_set) a->lr = a->optimizer == CLDP_OPT_ADAM ? 1e-3f : 0.05f;
    if (a->checkpoint_every && !a->checkpoint) {
        fprintf(stderr, "cldp-train: --checkpoint-every needs --checkpoint FILE (try --help)\n");
        return -1;
    }
    return 0;
}

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

/* ---- checkpoints: the library saves its state, this program adds its own ---------------- */

/* Set by the handler, read between steps: only a sig_atomic_t store is async-signal-safe. */
static volatile sig_atomic_t stop_signal;
static void on_signal(int sig) { stop_signal = sig; }

static void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | SA_RESETHAND; /* a second signal ends the process at once */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* The application blob of a checkpoint: where the run stands. Host byte order: it is read back
 * by this program, which checks the magic and the size. Followed by ntr uint32 sample indices,
 * the data order (each epoch shuffles the previous epoch's order, so it cannot be recomputed
 * from the epoch alone without replaying every shuffle). */
#define RUN_MAGIC "CLDPRUN1"
typedef struct run_state {
    char magic[8];
    char config[512];     /* the options and data that decide the result; must match to resume */
    uint64_t epoch;       /* the epoch in progress, from 1 (epochs + 1: the run is complete) */
    uint64_t step;        /* steps of that epoch already taken */
    uint64_t shuffled;    /* 1: the order already holds this epoch's shuffle */
    uint64_t rng;         /* the shuffle's xorshift64* state */
    uint64_t ntr;         /* samples, entries of the order that follows */
    double ep_loss;       /* this epoch's loss sum and correct count so far */
    uint64_t ep_correct;
    double final_loss, test_acc; /* of the last finished epoch, for the report */
} run_state;

/* What must not change between a run and its resumption: the schedule depends on epochs and
 * batch, the data order on the seed and the data. (The model is checked by the library.) */
static void run_config(char *out, size_t cap, const args *a, const char *source, size_t ntr, size_t nf, const int32_t *ytr)
{
    snprintf(out, cap, "data %s (%zu samples, %zu features, labels CRC %08x), epochs %d, batch %zu, %s lr %.9g momentum %.9g weight decay %.9g, seed %llu",
             source, ntr, nf, (unsigned)cldp_crc32(ytr, ntr * sizeof(int32_t)), a->epochs, a->batch,
             a->optimizer == CLDP_OPT_ADAM ? "adam" : "sgd", (double)a->lr, (double)a->momentum, (double)a->weight_decay,
             (unsigned long long)a->seed);
}

/* Records a position inside epoch `ep`: `step` steps of it done, its shuffle made. */
static void set_position(run_state *rs, int ep, size_t step, uint64_t rng, double ep_loss, size_t ep_correct,
                         double final_loss, double test_acc)
{
    rs->epoch = (uint64_t)ep;
    rs->step = step;
    rs->shuffled = 1;
    rs->rng = rng;
    rs->ep_loss = ep_loss;
    rs->ep_correct = ep_correct;
    rs->final_loss = final_loss;
    rs->test_acc = test_acc;
}

static int save_run(cldp_trainer *tr, const char *path, const run_state *rs, const size_t *order, unsigned char *blob)
{
    memcpy(blob, rs, sizeof *rs);
    for (size_t i = 0; i < rs->ntr; i++) {
        uint32_t v = (uint32_t)order[i];
        memcpy(blob + sizeof *rs + 4 * i, &v, 4);
    }
    if (cldp_trainer_save_checkpoint(tr, path, blob, sizeof *rs + 4 * rs->ntr) != CLDP_OK) {
        fprintf(stderr, "cldp-train: saving the checkpoint: %s\n", cldp_last_error());
        return -1;
    }
    return 0;
}

/* Loads --resume into the trainer and the run state; 0 on success, else a message was printed. */
static int load_run(cldp_trainer *tr, const char *path, const char *config, size_t ntr, size_t steps_per_epoch, int epochs,
                    run_state *rs, size_t *order, unsigned char *blob)
{
    size_t cap = sizeof *rs + 4 * ntr, got = 0;
    if (cldp_trainer_load_checkpoint(tr, path, blob, cap, &got) != CLDP_OK) {
        fprintf(stderr, "cldp-train: cannot resume from '%s': %s\n", path, cldp_last_error());
        return -1;
    }
    memcpy(rs, blob, got < sizeof *rs ? got : sizeof *rs);
    if (got != cap || memcmp(rs->magic, RUN_MAGIC, 8) || rs->ntr != ntr) {
        fprintf(stderr, "cldp-train: cannot resume from '%s': its run state (%zu bytes) is not this program's for this data (%zu bytes)\n",
                path, got, cap);
        return -1;
    }
    rs->config[sizeof rs->config - 1] = 0;
    if (strcmp(rs->config, config)) {
        fprintf(stderr, "cldp-train: cannot resume from '%s': it was made with other options or data\n  checkpoint: %s\n  this run:   %s\n"
                        "resume with the options of the run that wrote it\n", path, rs->config, config);
        return -1;
    }
    int ok = rs->epoch >= 1 && rs->epoch <= (uint64_t)epochs + 1 && rs->step <= steps_per_epoch && rs->shuffled <= 1 &&
             (rs->step == 0 || rs->shuffled) && (rs->epoch <= (uint64_t)epochs || rs->step == 0);
    unsigned char *seen = calloc(ntr ? ntr : 1, 1);
    for (size_t i = 0; ok && seen && i < ntr; i++) {
        uint32_t v;
        memcpy(&v, blob + sizeof *rs + 4 * i, 4);
        ok = v < ntr && !seen[v];
        if (ok) seen[v] = 1;
        order[i] = v;
    }
    free(seen);
    if (!ok) {
        fprintf(stderr, "cldp-train: cannot resume from '%s': its position or data order is inconsistent\n", path);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    args a = {.epochs = 10, .batch = 128, .optimizer = CLDP_OPT_ADAM, .hidden = {256, 128}, .nhidden = 2,
              .act = CLDP_ACT_RELU, .momentum = 0.9f, .seed = 1, .timeout_s = 120};
    int pr = parse_args(argc, argv, &a);
    if (pr) return pr > 0 ? 0 : 2;
    double t_start = now_s();

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
    size_t classes = cldp_dataset_classes(train);
    if (cldp_dataset_features(test) != nf || cldp_dataset_classes(test) > classes) {
        fprintf(stderr, "cldp-train: train and test sets disagree in shape (%zu vs %zu features)\n", nf, cldp_dataset_features(test));
        return 1;
    }
    float *xtr = malloc(ntr * nf * sizeof(float)), *xte = malloc(nte * nf * sizeof(float));
    float *xb = malloc(a.batch * nf * sizeof(float));
    int32_t *yb = malloc(a.batch * sizeof(int32_t));
    size_t *order = malloc(ntr * sizeof(size_t));
    if (!xtr || !xte || !xb || !yb || !order) {
        fprintf(stderr, "cldp-train: out of host memory for the dataset\n");
        return 1;
    }
    memcpy(xtr, cldp_dataset_images(train), ntr * nf * sizeof(float));
    memcpy(xte, cldp_dataset_images(test), nte * nf * sizeof(float));
    standardise(train, xtr, xte, nte * nf);
    const int32_t *ytr = cldp_dataset_labels(train), *yte = cldp_dataset_labels(test);

    /* ---- model and trainer */
    cldp_model *model = NULL;
    if (cldp_model_create(nf, &model) != CLDP_OK) return fail("creating the model");
    for (size_t l = 0; l < a.nhidden; l++)
        if (cldp_model_add_dense(model, a.hidden[l], a.act) != CLDP_OK) return fail("adding a layer");
    if (cldp_model_add_dense(model, classes, CLDP_ACT_NONE) != CLDP_OK) return fail("adding the output layer");
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
    st = cldp_trainer_create(model, &o, &tr);
    pthread_sigmask(SIG_SETMASK, &old_sigs, NULL);
    if (st != CLDP_OK) return fail("creating the trainer");
    size_t ndev = cldp_trainer_device_count(tr);
    printf("cldp-train: %s, %zu train / %zu test samples, %zu features, %zu classes\n", source, ntr, nte, nf, classes);
    printf("cldp-train: model %zu", nf);
    for (size_t l = 0; l < a.nhidden; l++) printf("-%zu", a.hidden[l]);
    printf("-%zu (%zu parameters), %s lr %g, batch %zu, %d epochs, seed %llu\n", classes, cldp_model_param_count(model),
           a.optimizer == CLDP_OPT_ADAM ? "adam" : "sgd", (double)a.lr, a.batch, a.epochs, (unsigned long long)a.seed);
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
    fflush(stdout); /* a parent reading a pipe (test_kill_resume) learns that training starts */

    /* ---- training */
    uint64_t rng = a.seed * 0x9E3779B97F4A7C15ull + 12345;
    for (size_t i = 0; i < ntr; i++) order[i] = i;
    size_t steps_per_epoch = (ntr + a.batch - 1) / a.batch, total_steps = steps_per_epoch * (size_t)a.epochs, step = 0;
    double final_loss = 0, test_acc = 0, train_time = 0, samples_done = 0;
    double *dev_ms = calloc(ndev, sizeof(double)), *dev_idle = calloc(ndev, sizeof(double));
    double *dev_shard = calloc(ndev, sizeof(double)); /* summed over the epoch's steps: the split may change */
    int tty = isatty(STDERR_FILENO) && !a.quiet;

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
    if (a.resume) {
        if (load_run(tr, a.resume, config, ntr, steps_per_epoch, a.epochs, &rs, order, blob)) {
            exit_code = 1;
            goto release;
        }
        rng = rs.rng;
        final_loss = rs.final_loss;
        test_acc = rs.test_acc;
        step = (size_t)(rs.epoch - 1) * steps_per_epoch + (size_t)rs.step;
        printf("cldp-train: resumed from %s at epoch %llu, step %llu of %zu (step %zu of the run)\n", a.resume,
               (unsigned long long)rs.epoch, (unsigned long long)rs.step, steps_per_epoch, step);
    }
    const int first_ep = (int)rs.epoch;
    const size_t first_s = (size_t)rs.step;
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
            if (cldp_trainer_step(tr, xb, yb, nb, &ss) != CLDP_OK) {
                /* the trainer keeps the parameters from before the failed step: save those */
                fprintf(stderr, "cldp-train: step %zu failed: %s\n", step + 1, cldp_last_error());
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
                fprintf(stderr, "\ncldp-train: %s\n", cldp_last_error());
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
            if (tty && (s % 20 == 0 || s + 1 == steps_per_epoch))
                fprintf(stderr, "\r  epoch %d: step %zu/%zu, loss %.4f ", ep, s + 1, steps_per_epoch, ep_loss / (double)(b0 + nb));
            int due = a.checkpoint_every && (step + 1) % a.checkpoint_every == 0;
            if (a.checkpoint && (due || stop_signal)) {
                set_position(&rs, ep, s + 1, rng, ep_loss, ep_correct, final_loss, test_acc);
                if (save_run(tr, a.checkpoint, &rs, order, blob)) {
                    exit_code = 1;
                    goto release;
                }
            }
            if (stop_signal) {
                if (tty) fprintf(stderr, "\n");
                printf("cldp-train: %s after step %zu of %zu (epoch %d, step %zu of %zu); %s%s%s\n",
                       stop_signal == SIGINT ? "SIGINT" : "SIGTERM", step + 1, total_steps, ep, s + 1, steps_per_epoch,
                       a.checkpoint ? "checkpoint written to " : "no --checkpoint given, nothing saved",
                       a.checkpoint ? a.checkpoint : "", a.checkpoint ? "; continue with --resume and the same options" : "");
                fflush(stdout);
                exit_code = 128 + stop_signal;
                goto release;
            }
        }
        double dt = now_s() - t0;
        train_time += dt;
        samples_done += ep_samples;
        if (tty) fprintf(stderr, "\r%60s\r", "");
        size_t correct = 0;
        double tl;
        if (cldp_trainer_evaluate(tr, xte, yte, nte, &tl, &correct) != CLDP_OK) return fail("evaluation");
        final_loss = ep_loss / (double)ntr;
        test_acc = (double)correct / (double)nte;
        printf("epoch %2d  loss %.4f  train acc %.4f  test acc %.4f  test loss %.4f  %.0f samples/s  %.1f s\n", ep,
               final_loss, (double)ep_correct / (double)ntr, test_acc, tl, ep_samples / dt, dt);
        {
            /* per step, averaged over the epoch's steps: mean shard, compute, idle (waiting for
             * the slowest device), and the split the next step will use */
            double steps_run = (double)(steps_per_epoch - s0), *w = calloc(ndev, sizeof(double));
            if (w) cldp_trainer_get_split(tr, w, NULL, ndev);
            double wsum = 0;
            for (size_t r = 0; w && r < ndev; r++) wsum += w[r];
            for (size_t r = 0; r < ndev; r++) {
                double c = dev_ms[r] / steps_run, idle = dev_idle[r] / steps_run;
                printf("          [%zu] shard %.1f (mean), compute %.2f ms/step, idle %.2f ms/step (%.0f%%), split now %.3f\n", r,
                       dev_shard[r] / steps_run, c, idle, c + idle > 0 ? 100 * idle / (c + idle) : 0.0,
                       w && wsum > 0 ? w[r] / wsum : 0.0);
            }
            free(w);
        }
        /* at each epoch end (or only the last with --checkpoint-every), and when a signal came
         * during the evaluation: the next epoch's shuffle is still to come */
        if (a.checkpoint && (!a.checkpoint_every || ep == a.epochs || stop_signal)) {
            memset(&rs.epoch, 0, sizeof rs - offsetof(run_state, epoch));
            rs.epoch = (uint64_t)ep + 1;
            rs.rng = rng;
            rs.ntr = ntr;
            rs.final_loss = final_loss;
            rs.test_acc = test_acc;
            if (save_run(tr, a.checkpoint, &rs, order, blob)) {
                exit_code = 1;
                goto release;
            }
            if (!a.checkpoint_every) printf("          checkpoint written to %s\n", a.checkpoint);
        }
        fflush(stdout);
        if (stop_signal) {
            printf("cldp-train: %s after epoch %d; %s%s\n", stop_signal == SIGINT ? "SIGINT" : "SIGTERM", ep,
                   a.checkpoint ? "checkpoint written to " : "no --checkpoint given, nothing saved", a.checkpoint ? a.checkpoint : "");
            fflush(stdout);
            exit_code = 128 + stop_signal;
            goto release;
        }
    }

    size_t np = cldp_model_param_count(model);
    float *params = malloc(np * sizeof(float));
    if (!params || cldp_trainer_get_params(tr, params, np) != CLDP_OK) return fail("reading the parameters");
    uint32_t crc = cldp_crc32(params, np * sizeof(float));
    double total = now_s() - t_start;
    double throughput = train_time > 0 ? samples_done / train_time : 0; /* 0 when resumed from a finished run */
    printf("cldp-train: test accuracy %.4f after %d epochs, %.0f samples/s, %.1f s in all; parameter CRC32 %08x\n",
           test_acc, a.epochs, throughput, total, (unsigned)crc);
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
        printf("],\"param_checksum\":%u}\n", (unsigned)crc);
    }
    free(params);
release: /* also after a signal (its checkpoint written) or a checkpoint that failed */
    free(blob);
    free(dev_ms);
    free(dev_idle);
    free(dev_shard);
    free(order);
    free(xb);
    free(yb);
    free(xtr);
    free(xte);
    cldp_trainer_destroy(tr);
    cldp_model_destroy(model);
    cldp_dataset_destroy(train);
    cldp_dataset_destroy(test);
    return exit_code;
}
