/* cldp-train-args.h — cldp-train's command line: its options, the help text and the parser, with
 * the limit of every value in its message. Included by cldp-train.c alone (static functions: the
 * program, and tests/fuzz/fuzz_train_args.c which compiles cldp-train.c, build from one source). */
#ifndef CLDP_TRAIN_ARGS_H
#define CLDP_TRAIN_ARGS_H

#include "cldp.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cldp-train's own limits (the library's are wider: batch and units up to 2^24), plain numbers
 * so that the messages below can spell them. */
#define MAX_HIDDEN 16      /* hidden layers */
#define MAX_UNITS 65536    /* units of one layer, and classes: 2^16 */
#define MAX_BATCH 1048576  /* global batch: 2^20 */
#define MAX_EPOCHS 100000
#define DEFAULT_CLASSES 10 /* Fashion-MNIST's */
#define ARG_STR_(x) #x
#define ARG_STR(x) ARG_STR_(x)

typedef struct args {
    const char *devices;
    const char *data;
    int epochs;
    size_t batch;
    float lr;
    float momentum;
    float weight_decay;
    cldp_optimizer optimizer;
    cldp_loss loss;            /* --loss: xent (labels) or mse (one-hot float targets) */
    size_t hidden[MAX_HIDDEN];
    size_t nhidden;
    cldp_activation act;
    size_t classes;            /* --classes: outputs of the model; every label must be below it */
    uint64_t seed;
    int json;
    int quiet;
    int embedded;
    const char *checkpoint;    /* --checkpoint: where to save (--resume's file when not given) */
    int checkpoint_is_resume;  /* 1: no --checkpoint, saving goes to the --resume file */
    int force;                 /* --force: overwrite a --checkpoint (--report) file that is not a checkpoint (report) */
    size_t checkpoint_every;   /* steps between saves; 0: at each epoch end */
    const char *resume;        /* --resume: where to continue from */
    const char *split;         /* --split: weights per device, "auto" or "even" */
    int no_balance;            /* --no-balance: keep the split as it starts */
    int drop;                  /* --on-failure drop */
    float timeout_s;           /* --timeout: the watchdog */
    int mpi;                   /* --mpi: one rank of a run under mpirun (cldp-train-mpi.h) */
    int mpi_allreduce;         /* --mpi-combine allreduce: MPI_Allreduce's order, not reproducible */
    const char *model;         /* --model: a spec, or the preset mlp or cnn; NULL: --hidden's MLP */
    size_t input[3];           /* --input CxHxW (0: the data's features as N x 1 x 1, or 1x28x28) */
    const char *export_path;   /* --export: the trained weights as safetensors */
    const char *init_from;     /* --init-from: start from these safetensors weights */
    const char *report;        /* --report: the run as an HTML page (cldp-train-report.h) */
    const char *trace;         /* --trace: the timeline's file (cldp-train-trace.h) */
} args;

/* --model cnn: two 3x3 convolutions with pooling and a hidden dense layer (the CNN of the
 * README's Fashion-MNIST figure) */
#define CNN_PRESET "conv:32:3:p1,relu,maxpool:2,conv:64:3:p1,relu,maxpool:2,flatten,dense:128,relu,dense:10"
/* its epochs unless --epochs says: the cosine schedule over 8 reached 0.9241 on Fashion-MNIST in
 * 7.5 minutes on two basic PoCL devices (README, "The CNN") */
#define CNN_EPOCHS 8
#define DEFAULT_EPOCHS 10


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
            "  --epochs N          passes over the training set, 1 to %d (default %d; %d for --model cnn)\n"
            "  --batch B           global batch, split over the devices, 1 to %d (default 128); a batch\n"
            "                      larger than the training set is cut to the set's size, with a notice\n"
            "  --lr X              learning rate (default 1e-3 for adam, 0.05 for sgd); cosine decay to 0\n"
            "  --optimizer NAME    adam or sgd (momentum 0.9) (default adam)\n"
            "  --momentum X        SGD momentum, 0 <= X < 1 (default 0.9)\n"
            "  --weight-decay X    L2 weight decay (default 0)\n"
            "  --hidden LIST       hidden layer sizes, e.g. 256,128 (default): up to %d layers of 1 to %d\n"
            "                      units; 'none' for a linear model\n"
            "  --activation NAME   relu or tanh (default relu)\n"
            "  --model SPEC        the model as comma-separated layers instead of --hidden:\n"
            "                      conv:OUT:K[:sS][:pP], maxpool:K[:sS], relu, tanh, sigmoid, flatten,\n"
            "                      dropout:P, dense:OUT; the last layer must be dense:CLASSES. Presets:\n"
            "                      mlp (the --hidden model) and cnn, two 3x3 convolutions with pooling:\n"
            "                      conv:32:3:p1,relu,maxpool:2,conv:64:3:p1,relu,maxpool:2,flatten,\n"
            "                      dense:128,relu,dense:10\n"
            "  --loss NAME         xent: softmax cross-entropy on the labels (default); mse: mean squared\n"
            "                      error against one-hot targets (accuracy from the arg-max output)\n"
            "  --input CxHxW       the shape of a sample, e.g. 1x28x28 (default for Fashion-MNIST); its\n"
            "                      product must be the data's feature count\n"
            "  --export FILE       after training, write the weights to FILE as safetensors, named and\n"
            "                      shaped as PyTorch's nn.Sequential of the same layers (0.weight, ...)\n"
            "  --init-from FILE    start from the weights of a safetensors FILE (e.g. from PyTorch)\n"
            "  --classes N         outputs of the model, 2 to %d (default %d, Fashion-MNIST's); a label\n"
            "                      of N or more is refused, naming its file and index\n"
            "  --seed S            parameter initialisation and shuffling seed (default 1)\n"
            "  --embedded          train on the embedded subset even when Fashion-MNIST is installed\n"
            "  --checkpoint FILE   save the whole run (parameters, optimizer, split, epoch, position,\n"
            "                      data order) to FILE at each epoch end, at the end, and on SIGINT or\n"
            "                      SIGTERM; written to FILE.tmp.<pid>, synced, then renamed over FILE.\n"
            "                      Checked before training: FILE must be new, empty or a cldp checkpoint\n"
            "                      (see --force), and its directory writable. FILE.lock holds a lock\n"
            "                      for the run: a second cldp-train on the same FILE is refused\n"
            "  --checkpoint-every N  save every N steps instead of at each epoch end\n"
            "  --force             let --checkpoint overwrite a file that is not a cldp checkpoint, and\n"
            "                      --report one that is not a cldp-train report\n"
            "  --resume FILE       continue the run saved in FILE (same options, same data); on the\n"
            "                      same devices with a fixed split (CLDP_SPLIT=even, or weights) the\n"
            "                      final parameters equal an uninterrupted run's bit for bit. The run\n"
            "                      goes on saving to FILE unless --checkpoint names another file\n"
            "  --split W,W,...     the share of the batch each device computes, as weights in device\n"
            "                      order (e.g. 3,1: rank 0 takes three quarters), kept as given; or\n"
            "                      'even', or 'auto' (default: $CLDP_SPLIT, else auto: start even and,\n"
            "                      when the devices differ, size the shards by each one's measured speed\n"
            "                      so that they finish together)\n"
            "                      (the result is the same for any split, to float32 rounding)\n"
            "  --no-balance        keep the starting split: no speed-aware re-sizing of the shards\n"
            "  --on-failure WHAT   stop (default): a device error ends the run (after saving the\n"
            "                      --checkpoint); drop: leave the failed device out and go on\n"
            "  --timeout S         watchdog: a device silent for S seconds in a step has failed\n"
            "                      (default 120; 0 turns it off)\n"
            "  --mpi               one rank of a run under mpirun: every rank trains its devices'\n"
            "                      shards of the global batch; rank 0 prints and saves checkpoints\n"
            "  --mpi-combine WHAT  fixed (default): the ranks' sums in a fixed order, bitwise\n"
            "                      reproducible; allreduce: MPI_Allreduce's order, which is not\n"
            "  --report FILE       write the run to FILE as one self-contained HTML page (inline SVG,\n"
            "                      nothing fetched): loss, accuracy and samples/s per epoch, each\n"
            "                      device's share, compute and idle, one step's timeline per device.\n"
            "                      Written at the end, and with what was gathered when the run stops\n"
            "                      early. Checked before training: FILE must be new, empty or a\n"
            "                      cldp-train report (see --force), and its directory writable\n"
            "  --trace FILE        record a timeline of the training steps and write it to FILE at the\n"
            "                      end, as Chrome trace-event JSON for https://ui.perfetto.dev or\n"
            "                      chrome://tracing: one lane per device and one for the host\n"
            "  --json              end with one JSON line of the results\n"
            "  --quiet             print only the summary (and --json's line, and events: a resume, a signal)\n"
            "  --help              this text\n"
            "On SIGINT or SIGTERM it finishes the step in progress, saves the checkpoint (with\n"
            "--checkpoint or --resume), says where and exits with status 130 (SIGINT) or 143 (SIGTERM);\n"
            "a second signal ends it at once, except during a checkpoint write, which is finished first.\n"
            "Exit status: 0 done, 1 a failure during the run, 2 a refused command line or checkpoint file.\n",
            MAX_EPOCHS, DEFAULT_EPOCHS, CNN_EPOCHS, MAX_BATCH, MAX_HIDDEN, MAX_UNITS, MAX_UNITS, DEFAULT_CLASSES);
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
        if (parse_size(tmp, 1, MAX_UNITS, &a->hidden[a->nhidden++])) return -1;
        p += len;
        if (*p == ',') {
            p++;
            if (!*p) return -1;
        }
    }
    return a->nhidden ? 0 : -1;
}

/* "CxHxW" into shape[3]. */
static int parse_shape(const char *s, size_t shape[3])
{
    char tmp[64];
    if (strlen(s) >= sizeof tmp) return -1;
    strcpy(tmp, s);
    char *save = NULL, *tok = strtok_r(tmp, "x", &save);
    for (int i = 0; i < 3; i++, tok = strtok_r(NULL, "x", &save))
        if (!tok || parse_size(tok, 1, MAX_UNITS, &shape[i])) return -1;
    return tok || s[strlen(s) - 1] == 'x' || strstr(s, "xx") ? -1 : 0;
}

/* The options that take a value, each with what it accepts (said when a value is refused). */
static const struct value_option {
    const char *name, *accepts;
} value_options[] = {
    {"--devices", "all, gpu, cpu, accelerator, a platform:device list such as 0:0,0:1, or a name substring"},
    {"--data", "a directory"},
    {"--epochs", "a whole number from 1 to " ARG_STR(MAX_EPOCHS)},
    {"--batch", "a whole number from 1 to " ARG_STR(MAX_BATCH)},
    {"--lr", "a number above 0"},
    {"--momentum", "a number from 0 up to (not including) 1"},
    {"--weight-decay", "a number, 0 or more"},
    {"--optimizer", "adam or sgd"},
    {"--loss", "xent or mse"},
    {"--activation", "relu or tanh"},
    {"--hidden", "up to " ARG_STR(MAX_HIDDEN) " comma-separated layer sizes, each a whole number from 1 to " ARG_STR(MAX_UNITS) ", or 'none'"},
    {"--classes", "a whole number from 2 to " ARG_STR(MAX_UNITS)},
    {"--checkpoint", "a file name"},
    {"--checkpoint-every", "a whole number of steps, 1 or more"},
    {"--on-failure", "stop or drop"},
    {"--timeout", "seconds, 0 or more (0 turns the watchdog off)"},
    {"--split", "weights per device such as 3,1, or even, or auto"},
    {"--resume", "a checkpoint file"},
    {"--seed", "a whole number, 0 or more"},
    {"--mpi-combine", "fixed or allreduce"},
    {"--model", "a layer spec such as conv:16:5:p2,relu,maxpool:2,flatten,dense:10, or mlp, or cnn"},
    {"--input", "a sample shape CxHxW such as 1x28x28, each a whole number from 1 to 65536"},
    {"--export", "a file name"},
    {"--init-from", "a safetensors file"},
    {"--report", "a file name (the HTML page to write)"},
    {"--trace", "a file name"},
};

static const char *accepts_of(const char *o)
{
    for (size_t k = 0; k < sizeof value_options / sizeof value_options[0]; k++)
        if (!strcmp(o, value_options[k].name)) return value_options[k].accepts;
    return NULL;
}

/* Returns 0 on success, 1 after --help, -1 on a bad argument (message printed). */
static int parse_args(int argc, char **argv, args *a)
{
    int lr_set = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
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
        } else if (!strcmp(o, "--force")) {
            a->force = 1;
            continue;
        } else if (!strcmp(o, "--mpi")) {
            a->mpi = 1;
            continue;
        }
        const char *accepts = accepts_of(o);
        if (!accepts) {
            fprintf(stderr, "cldp-train: unknown option '%s' (try --help)\n", o);
            return -1;
        }
        /* "--split --epochs 1": the next option is not --split's value */
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v || !strncmp(v, "--", 2)) {
            fprintf(stderr, "cldp-train: %s needs a value: %s (try --help)\n", o, accepts);
            return -1;
        }
        int bad = 0;
        size_t tmp = 0; /* read below even when parsing it failed */
        if (!strcmp(o, "--devices")) {
            a->devices = v;
        } else if (!strcmp(o, "--data")) {
            a->data = v;
        } else if (!strcmp(o, "--epochs")) {
            bad = parse_size(v, 1, MAX_EPOCHS, &tmp);
            a->epochs = (int)tmp;
        } else if (!strcmp(o, "--batch")) {
            bad = parse_size(v, 1, MAX_BATCH, &a->batch);
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
        } else if (!strcmp(o, "--loss")) {
            if (!strcmp(v, "xent")) a->loss = CLDP_LOSS_SOFTMAX_CROSS_ENTROPY;
            else if (!strcmp(v, "mse")) a->loss = CLDP_LOSS_MSE;
            else bad = 1;
        } else if (!strcmp(o, "--activation")) {
            if (!strcmp(v, "relu")) a->act = CLDP_ACT_RELU;
            else if (!strcmp(v, "tanh")) a->act = CLDP_ACT_TANH;
            else bad = 1;
        } else if (!strcmp(o, "--hidden")) {
            bad = parse_hidden(v, a);
        } else if (!strcmp(o, "--classes")) {
            bad = parse_size(v, 2, MAX_UNITS, &a->classes);
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
        } else if (!strcmp(o, "--mpi-combine")) {
            a->mpi_allreduce = !strcmp(v, "allreduce");
            bad = !a->mpi_allreduce && strcmp(v, "fixed");
        } else if (!strcmp(o, "--model")) {
            a->model = v;
            bad = !*v;
        } else if (!strcmp(o, "--export")) {
            a->export_path = v;
            bad = !*v;
        } else if (!strcmp(o, "--report")) {
            a->report = v;
            bad = !*v;
        } else if (!strcmp(o, "--init-from")) {
            a->init_from = v;
            bad = !*v;
        } else if (!strcmp(o, "--trace")) {
            a->trace = v;
            bad = !*v;
        } else if (!strcmp(o, "--input")) {
            bad = parse_shape(v, a->input);
        } else if (!strcmp(o, "--seed")) {
            bad = parse_size(v, 0, SIZE_MAX, &tmp);
            a->seed = tmp;
        }
        if (bad) {
            fprintf(stderr, "cldp-train: bad value '%s' for %s: it takes %s (try --help)\n", v, o, accepts);
            return -1;
        }
        i++;
    }
    if (!lr_set) a->lr = a->optimizer == CLDP_OPT_ADAM ? 1e-3f : 0.05f;
    if (!a->epochs) a->epochs = a->model && !strcmp(a->model, "cnn") ? CNN_EPOCHS : DEFAULT_EPOCHS;
    if (a->resume && !a->checkpoint) { /* a resumed run keeps saving where it came from */
        a->checkpoint = a->resume;
        a->checkpoint_is_resume = 1;
    }
    if (a->checkpoint_every && !a->checkpoint) {
        fprintf(stderr, "cldp-train: --checkpoint-every needs --checkpoint FILE (or --resume FILE) (try --help)\n");
        return -1;
    }
    return 0;
}

#endif
