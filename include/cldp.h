/* cldp.h — the whole public API of cldp, a portable OpenCL data-parallel runtime.
 *
 * cldp trains a model on every OpenCL device of a machine at once (any vendor, mixed in one
 * process): one host thread drives each device, each device holds a replica and computes its shard
 * of the batch through CLBlast, a host-staged tree reduction averages the gradients, the optimizer
 * updates the host master parameters, and the new parameters are broadcast back to every device.
 * The same replicas serve inference to concurrent clients (cldp_server: dynamic batching, one
 * bounded queue pulled by every device, hot parameter swaps).
 *
 * Ten lines of use:
 *
 *     cldp_model *m;   cldp_trainer *t;   cldp_trainer_options o;   cldp_step_stats s;
 *     cldp_model_create(784, &m);
 *     cldp_model_add_dense(m, 256, CLDP_ACT_RELU);
 *     cldp_model_add_dense(m, 10, CLDP_ACT_NONE);          // logits; softmax cross-entropy loss
 *     cldp_trainer_options_init(&o);  o.batch = 128;  o.devices = "all";
 *     if (cldp_trainer_create(m, &o, &t) != CLDP_OK) puts(cldp_last_error());
 *     for (...) cldp_trainer_step(t, x, labels, 128, &s);  // x: 128x784 floats, labels: int32
 *     cldp_trainer_get_params(t, params, cldp_model_param_count(m));
 *     cldp_trainer_destroy(t);  cldp_model_destroy(m);
 *
 * Conventions: every call that can fail returns a cldp_status; results go in trailing
 * out-parameters; on failure cldp_last_error() (thread-local) says what went wrong, naming the
 * device, the OpenCL or CLBlast call and the error's name. destroy(NULL) is a no-op. Unless a
 * comment says otherwise, a handle may be used by one thread at a time; different handles may be
 * used from different threads. Public enums are append-only.
 */
#ifndef CLDP_H
#define CLDP_H

#include <stddef.h>
#include <stdint.h>

#ifndef CL_TARGET_OPENCL_VERSION
/* The OpenCL API level cldp is written against (1.2); define it before including cldp.h for
 * another. The OpenCL headers (Debian: opencl-headers) must be installed: cldp.h uses cl_mem. */
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the exported functions: libcldp.so exports these names and no others. */
#if defined(_WIN32) && defined(CLDP_BUILDING_SHARED)
#define CLDP_API __declspec(dllexport)
#elif defined(_WIN32) && defined(CLDP_SHARED)
#define CLDP_API __declspec(dllimport)
#elif defined(__GNUC__)
#define CLDP_API __attribute__((visibility("default")))
#else
#define CLDP_API
#endif

#define CLDP_VERSION_MAJOR 0 /* changes when the ABI breaks: the SONAME is libcldp.so.MAJOR */
#define CLDP_VERSION_MINOR 3 /* new API, compatible */
#define CLDP_VERSION_PATCH 0 /* fixes */
/* MAJOR*10000 + MINOR*100 + PATCH, as the header compiled against says it (compare with
 * cldp_version_number(), the library's). */
#define CLDP_VERSION_NUMBER (CLDP_VERSION_MAJOR * 10000 + CLDP_VERSION_MINOR * 100 + CLDP_VERSION_PATCH)

/* The version of the library actually linked, as CLDP_VERSION_NUMBER. */
CLDP_API unsigned cldp_version_number(void);

/* ---- status and errors ------------------------------------------------------------------- */

/* What a call did: CLDP_OK, or why it failed (cldp_last_error() has the detail). Each status's
 * causes and cures: docs/troubleshooting.md. */
typedef enum cldp_status {
    CLDP_OK = 0,                   /* success */
    CLDP_ERR_INVALID_ARGUMENT = 1, /* a NULL pointer, a zero size, mismatched sizes, a bad option */
    CLDP_ERR_NO_DEVICE = 2,        /* no OpenCL platform/device, or a selection that matches none */
    CLDP_ERR_OPENCL = 3,           /* an OpenCL call failed; the message names call and error */
    CLDP_ERR_CLBLAST = 4,          /* a CLBlast call failed */
    CLDP_ERR_HOST_MEMORY = 5,      /* malloc failed */
    CLDP_ERR_DEVICE_MEMORY = 6,    /* the model or a shard does not fit a device */
    CLDP_ERR_IO = 7,               /* a file could not be opened, read or written */
    CLDP_ERR_FORMAT = 8,           /* a file is damaged or not what it claims to be */
    CLDP_ERR_BUILD = 9,            /* an OpenCL program failed to compile (the log is kept) */
    CLDP_ERR_TIMEOUT = 10,         /* a device did not finish its part in time */
    CLDP_ERR_NONFINITE = 11,       /* NaN or Inf met where a finite value was needed */
    CLDP_ERR_STATE = 12,           /* a call out of order (e.g. on a trainer whose step failed) */
    CLDP_ERR_BUSY = 13,            /* a server's queue is full: retry later (backpressure) */
    CLDP_CANCELLED = 14            /* a request was cancelled before it ran */
} cldp_status;

/* A static English name for a status, e.g. "CLDP_ERR_OPENCL". Never NULL. */
CLDP_API const char *cldp_status_string(cldp_status status);

/* The detail of the last failure on the calling thread: what failed, where, and what to do.
 * Valid until the next cldp call on this thread. Never NULL ("" when nothing failed yet). */
CLDP_API const char *cldp_last_error(void);

/* ---- devices ------------------------------------------------------------------------------ */

/* The kind of a device, as CL_DEVICE_TYPE says it. */
typedef enum cldp_device_type {
    CLDP_DEVICE_GPU = 1,         /* CL_DEVICE_TYPE_GPU */
    CLDP_DEVICE_CPU = 2,         /* CL_DEVICE_TYPE_CPU (e.g. PoCL) */
    CLDP_DEVICE_ACCELERATOR = 4, /* CL_DEVICE_TYPE_ACCELERATOR */
    CLDP_DEVICE_OTHER = 8        /* anything else (e.g. CL_DEVICE_TYPE_CUSTOM) */
} cldp_device_type;

/* Facts about one OpenCL device (cldp_device_get_info, cldp_trainer_device_info). Strings are
 * NUL-terminated and cut to fit. */
typedef struct cldp_device_info {
    size_t index;               /* position in the list cldp_device_count() enumerates */
    unsigned platform_index;    /* platform:device, as the ICD loader orders them */
    unsigned device_index;      /* the device's index within its platform */
    cldp_device_type type;      /* GPU, CPU, accelerator or other */
    char platform_name[128];    /* CL_PLATFORM_NAME, e.g. "Portable Computing Language" */
    char name[128];             /* CL_DEVICE_NAME */
    char vendor[128];           /* CL_DEVICE_VENDOR */
    char driver_version[64];    /* CL_DRIVER_VERSION */
    char opencl_version[64];    /* CL_DEVICE_VERSION, e.g. "OpenCL 3.0 PoCL ..." */
    unsigned compute_units;     /* CL_DEVICE_MAX_COMPUTE_UNITS */
    uint64_t global_mem_bytes;  /* CL_DEVICE_GLOBAL_MEM_SIZE */
    uint64_t max_alloc_bytes;   /* CL_DEVICE_MAX_MEM_ALLOC_SIZE: the largest single buffer */
    int host_unified_memory;    /* 1 when the device shares host memory (CPUs, integrated GPUs) */
    /* The physical device, from cl_khr_device_uuid, cl_khr_pci_bus_info or the AMD/NVIDIA
     * attribute queries: "pci:0000:65:00.0 uuid:5f1c...", or "unknown" when the driver says
     * nothing. One physical device reached through two platforms (two ICDs) is listed once, on
     * the first platform; set CLDP_DEDUPE=0 to list every entry. */
    char identity[64];
    char duplicates[64];        /* platform:device of the entries dropped as this same device,
                                   e.g. "1:0"; "" when none */
} cldp_device_info;

/* Number of devices over every platform the ICD loader reports. Discovery runs once per process
 * and is thread-safe. CLDP_ERR_NO_DEVICE when there is no platform at all. */
CLDP_API cldp_status cldp_device_count(size_t *count);

/* Facts about device `index` (0 <= index < count). */
CLDP_API cldp_status cldp_device_get_info(size_t index, cldp_device_info *info);

/* Resolves a selection spec to device indices, written to `indices` (room for `capacity`),
 * their number to `*count`. Specs (case-insensitive):
 *   NULL or ""  -> the CLDP_DEVICES environment variable, else the default;
 *   "default"   -> all GPUs if there are any, else every device;
 *   "all" | "gpu" | "cpu" | "accelerator";
 *   "0:1,1:0"   -> a list of platform:device indices;
 *   any other text -> every device whose name, vendor or platform contains it.
 * A spec that matches nothing is CLDP_ERR_NO_DEVICE, and the message lists what exists. */
CLDP_API cldp_status cldp_device_select(const char *spec, size_t *indices, size_t capacity,
                                        size_t *count);

/* ---- models ------------------------------------------------------------------------------- */

/* The function a dense layer applies to its outputs (and an activation layer's, see below). */
typedef enum cldp_activation {
    CLDP_ACT_NONE = 0,   /* identity (e.g. the logits of the last layer) */
    CLDP_ACT_RELU = 1,   /* max(0, y) */
    CLDP_ACT_TANH = 2,   /* tanh(y) */
    CLDP_ACT_SIGMOID = 3 /* 1 / (1 + exp(-y)) */
} cldp_activation;

/* The loss a model trains on. */
typedef enum cldp_loss {
    CLDP_LOSS_SOFTMAX_CROSS_ENTROPY = 0, /* the last layer's outputs are logits; labels are int32 */
    /* Mean squared error on float targets, as PyTorch's nn.MSELoss (reduction 'mean'): over a batch
     * of n samples of `outputs` values, L = sum (y - t)^2 / (n·outputs), so dL/dy = 2(y - t)/(n·outputs).
     * Train and evaluate with cldp_trainer_step_targets and cldp_trainer_evaluate_targets;
     * cldp_trainer_predict and the server give the raw outputs. */
    CLDP_LOSS_MSE = 1
} cldp_loss;

/* A model description: an input size (or shape, below) and a stack of layers: dense layers
 * y = x·Wᵀ + b, and the image and activation layers below.
 * Parameters are one flat float32 vector, layer after layer: W[out][in] row-major, then b[out]
 * (PyTorch's nn.Linear layout). Initial values (Kaiming-uniform): W ~ U(-a, a) with
 * a = gain·sqrt(3/in), gain sqrt(2) for ReLU, 5/3 for tanh, 1 for none; b ~ U(-1/sqrt(in),
 * 1/sqrt(in)); drawn on the host with splitmix64 from the trainer's seed, so any number of
 * devices starts from the same bits. */
typedef struct cldp_model cldp_model;

/* A new model of `inputs` features with no layer yet, in *out (destroy with cldp_model_destroy). */
CLDP_API cldp_status cldp_model_create(size_t inputs, cldp_model **out);
/* Appends a dense layer of `units` outputs (>= 1) followed by `act`. */
CLDP_API cldp_status cldp_model_add_dense(cldp_model *model, size_t units, cldp_activation act);
/* Sets the loss: softmax cross-entropy (the default) or mean squared error (CLDP_LOSS_MSE). */
CLDP_API cldp_status cldp_model_set_loss(cldp_model *model, cldp_loss loss);
/* Frees the description (trainers made from it keep their own copy); NULL is a no-op. */
CLDP_API void cldp_model_destroy(cldp_model *model);

CLDP_API size_t cldp_model_param_count(const cldp_model *model); /* 0 for NULL */
CLDP_API size_t cldp_model_inputs(const cldp_model *model);       /* features per sample; 0 for NULL */
CLDP_API size_t cldp_model_outputs(const cldp_model *model);      /* units of the last layer */
CLDP_API size_t cldp_model_layer_count(const cldp_model *model);  /* dense layers; 0 for NULL */

/* ---- models of other layer kinds: an input shape C×H×W, image layers, a spec in text ----
 * A sample is still a flat float vector, C×H×W in NCHW order (channel, row, column). Layers see
 * the shape their predecessor gives: conv2d and maxpool2d take C×H×W, dense takes a flat input
 * (n×1×1: put flatten between them). Every layer kind:
 *   dense      y = x·Wᵀ + b, W (OUT, IN)                              PyTorch nn.Linear
 *   conv2d     OUT channels, K×K kernel, stride, zero padding, bias;
 *              W (OUT, IN, K, K), output (H + 2P − K)/S + 1 per side    nn.Conv2d
 *   maxpool2d  K×K windows at stride S, no padding (ties: the first in  nn.MaxPool2d
 *              row-major window order takes the gradient)
 *   flatten, relu, tanh, sigmoid                                       nn.Flatten, nn.ReLU, ...
 *   dropout    P: in a training step each element is zeroed with       nn.Dropout(P)
 *              probability P and the others are multiplied by 1/(1 − P); in evaluation,
 *              prediction and serving it is the identity. Its mask is a counter-based hash
 *              of (the trainer's seed, the step count, the layer, the sample's index in the
 *              step's global batch, the element): the same on any split, device count or
 *              micro-batching, and a resumed checkpoint continues it bitwise (same seed).
 * Parameters stay one flat vector, layer after layer, weight then bias, in PyTorch's layouts;
 * layers without parameters take none. Weights are Kaiming-uniform with fan_in IN (dense) or
 * IN·K·K (conv2d) and the gain of the activation that follows the layer. Each add call checks
 * the settings and the shape, and fails naming both, leaving the model unchanged. */

/* A model whose samples are channels×height×width (cldp_model_create(n) is n×1×1). */
CLDP_API cldp_status cldp_model_create_shaped(size_t channels, size_t height, size_t width,
                                              cldp_model **out);
/* Appends conv2d: out_channels, a kernel x kernel window, stride (>= 1), zero padding (< kernel). */
CLDP_API cldp_status cldp_model_add_conv2d(cldp_model *model, size_t out_channels, size_t kernel,
                                           size_t stride, size_t padding);
/* stride 0 means stride = kernel */
CLDP_API cldp_status cldp_model_add_maxpool2d(cldp_model *model, size_t kernel, size_t stride);
/* Appends dropout with probability p (0 <= p < 1) of zeroing each element in training. */
CLDP_API cldp_status cldp_model_add_dropout(cldp_model *model, float p);
/* Appends flatten: C×H×W becomes C·H·W (what a dense layer after image layers needs). */
CLDP_API cldp_status cldp_model_add_flatten(cldp_model *model);
/* relu, tanh or sigmoid as a layer of its own */
CLDP_API cldp_status cldp_model_add_activation(cldp_model *model, cldp_activation act);

/* Appends the layers of a spec: comma-separated tokens
 *   conv:OUT:K[:sS][:pP]   conv2d, stride S (default 1), padding P (default 0)
 *   maxpool:K[:sS]         maxpool2d, stride S (default K)
 *   relu | tanh | sigmoid | flatten
 *   dropout:P              dropout, 0 <= P < 1 (e.g. dropout:0.4)
 *   dense:OUT
 * e.g. "conv:32:5:p2,relu,maxpool:2,conv:64:5:p2,relu,maxpool:2,flatten,dense:1024,relu,dense:10".
 * A bad token or a shape that does not fit is CLDP_ERR_INVALID_ARGUMENT, and cldp_last_error()
 * names the token, its position and what is wrong; the model is then unchanged. */
CLDP_API cldp_status cldp_model_add_spec(cldp_model *model, const char *spec);
/* cldp_model_create_shaped then cldp_model_add_spec; *out is NULL on failure. */
CLDP_API cldp_status cldp_model_parse(const char *spec, size_t channels, size_t height,
                                      size_t width, cldp_model **out);
/* The model's layers as a spec (dense with a built-in activation reads "dense:N,relu"), into
 * buf (capacity bytes, NUL-terminated); CLDP_ERR_INVALID_ARGUMENT when it does not fit. */
CLDP_API cldp_status cldp_model_describe(const cldp_model *model, char *buf, size_t capacity);
/* The model's input shape: channels, height, width. */
CLDP_API cldp_status cldp_model_input_shape(const cldp_model *model, size_t *channels,
                                            size_t *height, size_t *width);

/* Weights to and from PyTorch: a safetensors file (an 8-byte little-endian header length, a JSON
 * header, raw little-endian float32 tensors) with the names and shapes of PyTorch's
 * nn.Sequential built from the model's spec, one module per layer in order (layers without
 * parameters, dropout included, take an index too): module i's "i.weight" (dense (OUT, IN);
 * conv2d (OUT, IN, K, K)) and "i.bias" (OUT). The header's __metadata__ holds "cldp_model" (the
 * spec), "cldp_input" ("CxHxW") and "cldp_loss" ("xent" or "mse"; for information: the weights
 * load into a model of either loss). Save writes `count` (= the parameter count)
 * floats of `params` atomically (a temporary file, synced, renamed). Load validates the whole
 * file first (header length, JSON, dtype F32, every tensor present once with the model's shape,
 * offsets inside the data and not overlapping, values finite, and cldp's metadata, where present,
 * naming this model) and only then writes `params`; CLDP_ERR_FORMAT says what is wrong. */
CLDP_API cldp_status cldp_model_save_safetensors(const cldp_model *model, const float *params,
                                                 size_t count, const char *path);
/* Reads `count` (= the parameter count) floats into `params` from a safetensors file, as above. */
CLDP_API cldp_status cldp_model_load_safetensors(const cldp_model *model, const char *path,
                                                 float *params, size_t count);

/* Writes the seeded initial parameters (the layout above) to `params`, which holds `count`. */
CLDP_API cldp_status cldp_model_init_params(const cldp_model *model, uint64_t seed, float *params,
                                            size_t count);

/* ---- trainer ------------------------------------------------------------------------------ */

/* How the averaged gradient g updates the parameters p. */
typedef enum cldp_optimizer {
    CLDP_OPT_SGD = 0,  /* v = momentum·v + g + wd·p;  p -= lr·v */
    CLDP_OPT_ADAM = 1  /* Adam with L2 weight decay added to the gradient */
} cldp_optimizer;

/* What a step does when a device fails (an OpenCL or CLBlast error, or the watchdog). */
typedef enum cldp_failure_policy {
    CLDP_ON_FAILURE_STOP = 0, /* the step fails; parameters stay those before it */
    CLDP_ON_FAILURE_DROP = 1  /* the failed devices are removed and the step is redone on the rest */
} cldp_failure_policy;

/* What a step does when the gradient, or the update it would make, is NaN or Inf. */
typedef enum cldp_nonfinite_policy {
    CLDP_ON_NONFINITE_SKIP = 0, /* the update is skipped and counted; the step returns CLDP_OK */
    CLDP_ON_NONFINITE_STOP = 1  /* the update is skipped; the step returns CLDP_ERR_NONFINITE */
} cldp_nonfinite_policy;

/* How a trainer is made; fill with cldp_trainer_options_init, then change what you need. */
typedef struct cldp_trainer_options {
    /* Set by cldp_trainer_options_init to sizeof the struct the caller was built with: a caller
     * built against an older cldp passes its smaller struct, and the fields it lacks (those
     * after on_nonfinite) take their defaults. */
    size_t struct_size;
    const char *devices;    /* selection spec, as cldp_device_select (NULL: CLDP_DEVICES/default) */
    size_t batch;           /* largest global batch a step may get (buffers are sized for it) */
    cldp_optimizer optimizer; /* SGD with momentum, or Adam */
    float learning_rate;    /* the step size (cldp_trainer_set_learning_rate changes it later) */
    float momentum;         /* SGD */
    float weight_decay;     /* L2: wd·p added to the gradient */
    float beta1;            /* Adam: decay of the first moment */
    float beta2;            /* Adam: decay of the second moment */
    float epsilon;          /* Adam: added to the second moment's root */
    uint64_t seed;          /* parameter initialisation */
    double timeout_ms;      /* watchdog: a device part of a step longer than this fails the step
                               with CLDP_ERR_TIMEOUT (0: no limit) */
    cldp_failure_policy on_failure;     /* a failed device: stop, or drop it and go on */
    cldp_nonfinite_policy on_nonfinite; /* a NaN/Inf gradient or update: skip it quietly, or fail */
    /* How the batch is divided between the devices (ranks in selection order):
     *   NULL: the CLDP_SPLIT environment variable, else "auto";
     *   "auto": start even, then size the shards by each device's measured speed (see balance);
     *   "even": equal shards, kept;
     *   "W0,W1,...": one weight >= 0 per device, not all 0, e.g. "3,1" gives rank 0 three
     *   quarters; kept (balancing is off for a split given by hand).
     * Shard sizes are the weights' shares of each step's batch, rounded (largest remainder) so
     * they sum to it exactly. Any split gives the same result, to float32 rounding, because each
     * device contributes its gradient sum divided by the whole batch. Bad specs are
     * CLDP_ERR_INVALID_ARGUMENT at creation. Only read during cldp_trainer_create. */
    const char *split;
    /* 1: with an "auto" split, re-size the shards so that the devices finish their part of a
     * step together, from a moving average of each one's compute time per sample, with
     * hysteresis (a re-split must promise a > 5% shorter step, several steps running).
     * 0: keep the split as given (even for "auto").
     * -1 (default): 1 when the selected devices differ (name or driver), else 0, so runs on
     * identical devices keep the same split and therefore bitwise-identical results. A split
     * that follows measured speed follows timing, and the bits follow the split. */
    int balance;
} cldp_trainer_options;

/* Fills the defaults: devices NULL, batch 128, Adam, lr 1e-3, momentum 0.9, weight decay 0,
 * betas 0.9/0.999, epsilon 1e-8, seed 1, watchdog 120 s, stop on device failure, skip
 * non-finite updates, split NULL (CLDP_SPLIT, else auto), balance -1 (auto).
 *
 * Before building anything, cldp_trainer_create estimates each device's memory need
 * (parameters, gradients, activations per sample of its shard, CLBlast scratch, staging) against
 * CL_DEVICE_GLOBAL_MEM_SIZE less a sixteenth and CL_DEVICE_MAX_MEM_ALLOC_SIZE; devices that share
 * host memory (CL_DEVICE_HOST_UNIFIED_MEMORY: CPUs through PoCL, integrated GPUs) are budgeted
 * together against the host's available memory (MemAvailable, and an address-space limit such as
 * `ulimit -v` less what the process has mapped), beside the trainer's own host vectors, with a
 * sixteenth and 512 MiB left to the drivers. A shard whose activations do not fit runs as
 * micro-batches; a model that does not fit at all is refused with CLDP_ERR_DEVICE_MEMORY, naming
 * the devices and the bytes and suggesting only device selections that would fit. */
CLDP_API void cldp_trainer_options_init(cldp_trainer_options *opts);

/* A model replicated on every selected device, with one worker thread per device and the host
 * master parameters and optimizer state (cldp_trainer_create / cldp_trainer_destroy). */
typedef struct cldp_trainer cldp_trainer;

/* Selects the devices, builds a replica of `model` on each (its own context, queue, kernels and
 * buffers), initialises the parameters from opts->seed and starts one worker thread per device.
 * The model description is copied; the caller may destroy it afterwards. Before building
 * anything it estimates each device's memory need (see cldp_trainer_options_init): a device the model
 * cannot fit is CLDP_ERR_DEVICE_MEMORY naming it, the bytes needed and usable, and how to leave it
 * out; a device that fits the model but not a whole shard computes it in micro-batches. */
CLDP_API cldp_status cldp_trainer_create(const cldp_model *model, const cldp_trainer_options *opts,
                                         cldp_trainer **out);
/* Stops the workers and frees everything, devices' buffers included (a worker the watchdog gave
 * up on releases its part when it comes back: see cldp_wait_abandoned). NULL is a no-op. */
CLDP_API void cldp_trainer_destroy(cldp_trainer *trainer);

/* Devices in use: those selected, less any the drop policy removed; 0 for NULL. */
CLDP_API size_t cldp_trainer_device_count(const cldp_trainer *trainer);
/* Facts of the trainer's `rank`-th device (ranks are the order of the selection). */
CLDP_API cldp_status cldp_trainer_device_info(const cldp_trainer *trainer, size_t rank,
                                              cldp_device_info *info);

/* One device's part of the last step (cldp_trainer_device_stats). */
typedef struct cldp_device_stats {
    size_t shard;           /* samples this device computed in the step */
    double compute_ms;      /* forward + backward + reading its gradients to the host */
    double reduce_ms;       /* its share of the host reduction and optimizer update */
    double broadcast_ms;    /* writing the new parameters to the device */
    double idle_ms;         /* time it waited for the slowest device */
} cldp_device_stats;

/* A device the drop policy removed: its rank at creation, and why. */
typedef struct cldp_drop {
    size_t rank;            /* the device's rank when the trainer was created */
    cldp_status status;     /* what ended it: CLDP_ERR_TIMEOUT, CLDP_ERR_OPENCL, ... */
    char reason[256];       /* the failure's message, naming the device (truncated) */
} cldp_drop;

#define CLDP_MAX_DROPS 4    /* drops one cldp_step_stats reports (`dropped` counts them all) */

/* What a step did (cldp_trainer_step's last argument). */
typedef struct cldp_step_stats {
    double loss;            /* mean cross-entropy over the batch (MSE: the mean squared error
                               over its values), before the update */
    size_t correct;         /* samples whose arg-max logit was the label, before the update
                               (0 for MSE) */
    size_t samples;         /* the batch's size, n */
    double step_ms;         /* wall time of the whole step */
    int skipped;            /* 1 when the update was skipped for a NaN/Inf gradient */
    uint64_t skipped_total; /* such steps since the trainer was created */
    size_t devices;         /* devices in use after the step (fewer after a drop) */
    size_t dropped;         /* devices the drop policy removed during this step */
    cldp_drop drops[CLDP_MAX_DROPS]; /* the first CLDP_MAX_DROPS of them */
} cldp_step_stats;

/* One training step on a host batch of n samples (1 <= n <= opts.batch): x is n x inputs floats,
 * row-major, all finite (a NaN or Inf is CLDP_ERR_NONFINITE naming the row, before anything
 * runs); labels are n classes in [0, outputs). The batch is split over the devices, the
 * gradient averaged over all n samples, the parameters updated and broadcast. Blocks until done.
 * `stats` may be NULL. After a failed step the parameters are those before the step (when only
 * the broadcast failed, the update is kept on the host and re-sent by the next call).
 * A device error (or a watchdog timeout) on any worker fails the step on every worker; with
 * CLDP_ON_FAILURE_DROP the failed devices are removed and the step is redone on the others
 * (cldp_trainer_device_count shrinks; stats->drops says which and why). After a timeout under
 * CLDP_ON_FAILURE_STOP the trainer can only be destroyed. A NaN or Inf in the gradient, or an
 * update that would make a parameter NaN or Inf, skips the update (see on_nonfinite): non-finite
 * parameters are never committed. */
CLDP_API cldp_status cldp_trainer_step(cldp_trainer *trainer, const float *x,
                                       const int32_t *labels, size_t n, cldp_step_stats *stats);

/* The same step for a model whose loss is CLDP_LOSS_MSE: `targets` are n x outputs floats,
 * row-major, all finite (a NaN or Inf is CLDP_ERR_NONFINITE naming the row, before anything
 * runs). stats->loss is the mean squared error over the n·outputs values, stats->correct 0.
 * On a cross-entropy model it is CLDP_ERR_INVALID_ARGUMENT (use cldp_trainer_step), as
 * cldp_trainer_step is on an MSE model. */
CLDP_API cldp_status cldp_trainer_step_targets(cldp_trainer *trainer, const float *x,
                                               const float *targets, size_t n,
                                               cldp_step_stats *stats);

/* Waits until every worker given up on after a watchdog timeout, in any trainer or server of the
 * process (a server's worker whose batch its watchdog answered), has come back from its driver call and released what it held, or until timeout_ms passed.
 * Call it before exiting after a CLDP_ERR_TIMEOUT (or a drop for a timeout): a process that exits
 * while a worker is still inside a driver call may crash in the driver's own exit handlers.
 * CLDP_OK when none is left; CLDP_ERR_TIMEOUT, saying how many, otherwise. Thread-safe. */
CLDP_API cldp_status cldp_wait_abandoned(double timeout_ms);

/* Changes the learning rate for the following steps (for schedules); the optimizer state stays. */
CLDP_API cldp_status cldp_trainer_set_learning_rate(cldp_trainer *trainer, float learning_rate);

/* Per-device figures of the last step (rank < cldp_trainer_device_count). */
CLDP_API cldp_status cldp_trainer_device_stats(const cldp_trainer *trainer, size_t rank,
                                               cldp_device_stats *stats);

/* The split in use, for the trainer's n = cldp_trainer_device_count devices: `weights` (room
 * for n, may be NULL) gets each rank's relative weight (shares are weight / sum; the scale is
 * arbitrary), `shards` (room for n, may be NULL) the shard sizes a full batch (opts.batch)
 * would get now. Per-step shard sizes, compute and idle times are in cldp_device_stats. */
CLDP_API cldp_status cldp_trainer_get_split(const cldp_trainer *trainer, double *weights,
                                            size_t *shards, size_t n);

/* Sets the split from n weights (one per device, >= 0, not all 0; weights from
 * cldp_trainer_get_split restore that exact split, e.g. after loading a checkpoint). It applies
 * from the next step. With balancing on, the balancer starts from it and may move away as it
 * measures; turn balancing off (cldp_trainer_set_balance) to keep it. */
CLDP_API cldp_status cldp_trainer_set_split(cldp_trainer *trainer, const double *weights, size_t n);

/* Turns speed-aware balancing on (1) or off (0) from the next step; off freezes the split in
 * use. Its speed measurements continue either way. */
CLDP_API cldp_status cldp_trainer_set_balance(cldp_trainer *trainer, int on);

/* The most samples device `rank` computes at once (its replica's rows, sized by its memory);
 * shards larger than this run as micro-batches whose gradients accumulate on the device. */
CLDP_API cldp_status cldp_trainer_device_rows(const cldp_trainer *trainer, size_t rank,
                                              size_t *rows);

/* Mean loss and number correct over n samples, computed data-parallel over the devices in
 * chunks of at most opts.batch. Parameters are not changed. Inputs must be finite (else
 * CLDP_ERR_NONFINITE naming the row). */
CLDP_API cldp_status cldp_trainer_evaluate(cldp_trainer *trainer, const float *x,
                                           const int32_t *labels, size_t n, double *loss,
                                           size_t *correct);

/* The same for a model whose loss is CLDP_LOSS_MSE: the mean squared error over the n·outputs
 * values against `targets` (n x outputs floats, finite) into *loss. Dropout is off, as in every
 * evaluation. The label call on an MSE model, and this one on a cross-entropy model, are
 * CLDP_ERR_INVALID_ARGUMENT naming the call to use. */
CLDP_API cldp_status cldp_trainer_evaluate_targets(cldp_trainer *trainer, const float *x,
                                                   const float *targets, size_t n, double *loss);

/* Class probabilities (softmax of the logits) for n samples into `probs` (n x outputs); for a
 * model whose loss is CLDP_LOSS_MSE, its raw outputs. Inputs must be finite (else
 * CLDP_ERR_NONFINITE naming the row). Dropout is off. */
CLDP_API cldp_status cldp_trainer_predict(cldp_trainer *trainer, const float *x, size_t n,
                                          float *probs);

/* The master parameters (flat layout above); `count` must equal cldp_model_param_count. */
CLDP_API cldp_status cldp_trainer_get_params(const cldp_trainer *trainer, float *params,
                                             size_t count);
/* Replaces the parameters on the host and every device, and resets the optimizer state. */
CLDP_API cldp_status cldp_trainer_set_params(cldp_trainer *trainer, const float *params,
                                             size_t count);

/* ---- checkpoints -------------------------------------------------------------------------- */

/* A checkpoint holds everything the library owns that a run needs to continue exactly: the model
 * description, the master parameters, the optimizer's kind, hyper-parameters (learning rate
 * included), state (momentum or Adam moments) and step count, the device split (weights and
 * measured speeds), and an opaque application blob for what the application owns (its epoch,
 * position in the epoch, data order, RNG state...). The file is little-endian, versioned, made of
 * tagged sections and covered by one zlib CRC-32 (format: runtime/checkpoint.c).
 * Loading on the same devices with a fixed split ("even" or weights) continues bitwise
 * identically to a run that was never stopped; on a different number of devices, or with the
 * speed-aware "auto" split (whose shards follow timings), within float32 rounding.
 *
 * Saving writes `path.tmp.<pid>` in the same directory, flushes and fsyncs it, renames it over
 * `path` and fsyncs the directory, so a crash at any moment leaves the old or the new checkpoint,
 * never a broken one (a process killed mid-write may leave its `.tmp.<pid>` file, which is never
 * read and may be deleted). The blob `user` (user_len bytes, may be NULL when user_len is 0) is
 * stored as is; the library does not interpret it. The trainer is not changed. Returns
 * CLDP_ERR_IO, naming the file, when the file cannot be written (the temporary file is removed),
 * CLDP_ERR_NONFINITE when a parameter is NaN or Inf (such a run cannot be resumed).
 * (Test hook: CLDP_TEST_CHECKPOINT_DELAY_MS, see cldp_test_control.) Blocks; the trainer must not be in use by another
 * thread. */
CLDP_API cldp_status cldp_trainer_save_checkpoint(const cldp_trainer *trainer, const char *path,
                                                  const void *user, size_t user_len);

/* Restores a checkpoint written by cldp_trainer_save_checkpoint into a trainer of the same model
 * (any devices): the master parameters (written to every device before it returns), the
 * optimizer kind, hyper-parameters, state and step count, and the split when the trainer has as
 * many devices as the file's (otherwise the trainer keeps its own). The application blob is
 * copied to `user` (room for user_capacity bytes) and its length written to *user_len (if not
 * NULL); `user` may be NULL (capacity 0) to ignore the blob.
 * Everything is validated before anything changes: a refused file leaves the trainer exactly as
 * it was. CLDP_ERR_IO: the file cannot be opened or read. CLDP_ERR_FORMAT: not a cldp checkpoint,
 * another format version, truncated, checksum mismatch, malformed sections, or a "wrong model"
 * (input size, layers, activations and loss must match the trainer's exactly); the message names
 * the file and what is wrong. CLDP_ERR_INVALID_ARGUMENT: the blob is larger than user_capacity.
 * An OpenCL status when writing the parameters to a device failed (the state is then loaded and
 * the next step retries the write); CLDP_ERR_STATE on a trainer that lost a stuck device. Blocks;
 * the trainer must not be in use by another thread. */
CLDP_API cldp_status cldp_trainer_load_checkpoint(cldp_trainer *trainer, const char *path,
                                                  void *user, size_t user_capacity,
                                                  size_t *user_len);

/* ---- collectives on application buffers --------------------------------------------------- */

/* A deterministic host-staged collective over n devices, for applications with their own kernels.
 * Each rank r has a command queue; buffers handed to the calls hold `count` floats (at `offset`
 * floats into the buffer). All-reduce sums rank buffers in a fixed pairwise tree over ranks,
 * ((b0+b1)+(b2+b3))+..., so the result has the same bits whatever order the devices finish in,
 * and writes the sum back to every buffer. One worker thread per rank reads, sums a chunk, and
 * writes. Calls block until every device has the result; wait for your own kernels first (the
 * collective enqueues on the given queues, so in-order queues need nothing more). */
typedef struct cldp_collective cldp_collective;

/* n: 1 to 64 ranks. */
CLDP_API cldp_status cldp_collective_create(const cl_command_queue *queues, size_t n, size_t count,
                                            cldp_collective **out);
/* Frees the collective (not the queues or buffers, which stay the caller's); NULL is a no-op. */
CLDP_API void cldp_collective_destroy(cldp_collective *coll);
/* Sum over ranks, in place; with `scale` != 1 the sum is multiplied by it (1/n gives the mean). */
CLDP_API cldp_status cldp_collective_allreduce(cldp_collective *coll, const cl_mem *buffers,
                                               size_t offset, float scale);
/* Copies rank `root`'s buffer to every other rank's. */
CLDP_API cldp_status cldp_collective_broadcast(cldp_collective *coll, const cl_mem *buffers,
                                               size_t offset, size_t root);

/* ---- datasets ----------------------------------------------------------------------------- */

/* A labelled dataset in memory: n samples of `features` floats in [0, 1] and int32 labels. */
typedef struct cldp_dataset cldp_dataset;

/* Reads an IDX image file and an IDX label file (gzipped or raw), e.g. Fashion-MNIST's.
 * Damaged files (wrong magic, absurd dimensions, short data, labels that do not match) are
 * CLDP_ERR_FORMAT, a missing file CLDP_ERR_IO; the message names the file. */
CLDP_API cldp_status cldp_dataset_load_idx(const char *images_path, const char *labels_path,
                                           cldp_dataset **out);
/* The same from bytes in memory (each gzipped or raw). */
CLDP_API cldp_status cldp_dataset_from_idx_memory(const void *images, size_t images_len,
                                                  const void *labels, size_t labels_len,
                                                  cldp_dataset **out);
/* Fashion-MNIST's train (train != 0) or test split from directory `dir` (its four .gz files),
 * or from Debian's /usr/share/datasets/fashion-mnist when dir is NULL. */
CLDP_API cldp_status cldp_dataset_load_fashion_mnist(const char *dir, int train, cldp_dataset **out);
/* A small real subset of Fashion-MNIST compiled into the library (train: 2000, test: 500). */
CLDP_API cldp_status cldp_dataset_embedded(int train, cldp_dataset **out);
CLDP_API void cldp_dataset_destroy(cldp_dataset *ds); /* NULL is a no-op */

CLDP_API size_t cldp_dataset_count(const cldp_dataset *ds);    /* samples */
CLDP_API size_t cldp_dataset_features(const cldp_dataset *ds); /* floats per sample (784 for 28x28) */
CLDP_API size_t cldp_dataset_classes(const cldp_dataset *ds); /* max label + 1 */
CLDP_API const float *cldp_dataset_images(const cldp_dataset *ds);   /* count x features */
CLDP_API const int32_t *cldp_dataset_labels(const cldp_dataset *ds); /* count */

/* CRC-32 (zlib's) of `len` bytes, e.g. of a parameter vector, to compare runs. */
CLDP_API uint32_t cldp_crc32(const void *data, size_t len);

/* ---- inference server --------------------------------------------------------------------
 *
 * Serves concurrent inference requests from forward-only replicas of a model, one per selected
 * device. Requests (one or more rows each) wait in one bounded queue; every idle device worker
 * pulls up to max_batch rows from its head (dynamic batching: rows of several requests run as one
 * batch), so a faster device simply pulls more often. A worker waits for a fuller batch at most
 * max_queue_delay_us counted from the oldest queued request (at 0, a lone request is never held
 * back). A request larger than max_batch is split and its results reassembled in order.
 * Inference replicas hold the parameters, the input rows and the activations of one batch:
 * no gradients, no optimizer state.
 *
 * Every accepted request is answered exactly once, with its probabilities or an error: through
 * deadlines, cancellation, device failures, parameter swaps and shutdown. Each batch runs on
 * one parameter generation, and all the rows of one request on the same one, so no request
 * ever sees a mix of old and new parameters. All server and request calls are thread-safe. */

typedef struct cldp_server cldp_server;
/* One submitted request: waited for, cancelled, then destroyed (cldp_request_destroy). */
typedef struct cldp_request cldp_request;

/* How batches go to the devices. */
typedef enum cldp_schedule {
    CLDP_SCHEDULE_PULL = 0,       /* every idle device takes the next batch (the default) */
    CLDP_SCHEDULE_ROUND_ROBIN = 1 /* batches go to the devices in turn, whatever their speed
                                     (for comparisons: a slow device holds up its turns) */
} cldp_schedule;

/* A server's settings (cldp_server_options_init fills in the defaults). */
typedef struct cldp_server_options {
    size_t struct_size;           /* sizeof(cldp_server_options), set by cldp_server_options_init */
    const char *devices;          /* selection spec, as cldp_device_select (NULL: CLDP_DEVICES/default) */
    size_t max_batch;             /* rows per device batch (1 .. 65536) */
    double max_queue_delay_us;    /* the longest a worker waits for a fuller batch (>= 0) */
    size_t max_queue_rows;        /* rows the queue holds; a submit beyond it is CLDP_ERR_BUSY */
    double default_timeout_ms;    /* each request's deadline from submit; a request may only
                                     lower it (0: no deadline) */
    double watchdog_ms;           /* a batch running longer than this fails with CLDP_ERR_TIMEOUT
                                     and its device leaves (0: no limit) */
    cldp_failure_policy on_failure; /* STOP: a failed batch's requests get the error, the device
                                     stays (unless it is stuck); DROP: the device leaves and its
                                     batch is retried once on the others */
    cldp_schedule schedule;       /* pull (the default) or round robin */
} cldp_server_options;

/* Defaults: devices NULL, max_batch 64, delay 0, queue 4096 rows, timeout 10 s, watchdog 30 s,
 * stop on failure, pull scheduling. */
CLDP_API void cldp_server_options_init(cldp_server_options *opts);

/* Creates a server for `model` (copied) with the flat parameters `params` (count ==
 * cldp_model_param_count, all finite). Builds a forward-only replica on every selected device
 * (one after another, compiling its kernels) and starts its worker. Before building anything it
 * estimates each device's need (parameters, one batch's input and activations, the forward
 * GEMMs' CLBlast scratch, staging) and refuses with CLDP_ERR_DEVICE_MEMORY, naming the device,
 * when even one row does not fit; a device that fits fewer rows than max_batch serves smaller
 * batches. Devices that share host memory (host_unified_memory) are budgeted together against
 * the host's available memory, as the trainer's are: cut to a common row count, or refused
 * naming them and how many would fit. Blocks until every replica is ready. */
CLDP_API cldp_status cldp_server_create(const cldp_model *model, const float *params, size_t count,
                                        const cldp_server_options *opts, cldp_server **out);
/* The same with the parameters of a checkpoint written by cldp_trainer_save_checkpoint for the
 * same model (else CLDP_ERR_FORMAT naming the file; CLDP_ERR_IO when it cannot be read). */
CLDP_API cldp_status cldp_server_create_from_checkpoint(const cldp_model *model, const char *path,
                                                        const cldp_server_options *opts,
                                                        cldp_server **out);
/* The same with a live trainer's master parameters (cldp_trainer_get_params) and its model. The
 * trainer must not be stepping on another thread during this call; afterwards they are
 * independent (see cldp_server_swap_from_trainer). */
CLDP_API cldp_status cldp_server_create_from_trainer(const cldp_trainer *trainer,
                                                     const cldp_server_options *opts,
                                                     cldp_server **out);

/* Stops accepting (later submits are CLDP_ERR_STATE) and drains: blocks until every accepted
 * request has been answered (they still run on the devices, or expire at their deadline), then
 * stops the workers. Idempotent. */
CLDP_API cldp_status cldp_server_shutdown(cldp_server *server);
/* Shuts down (draining) and frees the server. Requests handles the caller still holds stay
 * valid (answered) until cldp_request_destroy. A worker stuck in a driver call is left behind
 * and frees what it holds when it comes back. */
CLDP_API void cldp_server_destroy(cldp_server *server);

/* Called once per request, on the thread that answers it (a device worker, the watchdog, a
 * canceller or shutdown), with the answer: CLDP_OK (the probabilities are ready), or
 * CLDP_ERR_TIMEOUT, CLDP_CANCELLED, CLDP_ERR_OPENCL, ... It must not block for long; it may call
 * cldp_request_probs, cldp_request_destroy and cldp_server_submit; cldp_request_wait returns
 * only after it has returned. */
typedef void (*cldp_request_callback)(cldp_request *req, cldp_status status, void *user);

/* Queues `rows` rows of x (rows x inputs floats, all finite, copied at once). timeout_ms: 0 for
 * the server's default deadline, else min(timeout_ms, default). `cb` (may be NULL) is called
 * with `user` when the request is answered. *out (may be NULL: nobody waits, the server frees
 * the request after the callback) receives the handle; release it with cldp_request_destroy.
 * Never blocks. CLDP_ERR_BUSY when the queue cannot take `rows` more rows, CLDP_ERR_STATE once
 * shutdown began, CLDP_ERR_NO_DEVICE when every device has left, CLDP_ERR_NONFINITE naming the
 * row, CLDP_ERR_INVALID_ARGUMENT for bad sizes: then nothing was queued and cb is not called. */
CLDP_API cldp_status cldp_server_submit(cldp_server *server, const float *x, size_t rows,
                                        double timeout_ms, cldp_request_callback cb, void *user,
                                        cldp_request **out);
/* Waits until the request is answered or timeout_ms passed (< 0: no limit). CLDP_OK with
 * *answer set once it is answered; CLDP_ERR_TIMEOUT when it is still pending. */
CLDP_API cldp_status cldp_request_wait(cldp_request *req, double timeout_ms, cldp_status *answer);
/* Cancels a request not yet answered: rows not yet in a batch are dropped, and it is answered
 * CLDP_CANCELLED (at once, or when its rows already running finish). CLDP_ERR_STATE when it was
 * already answered. */
CLDP_API cldp_status cldp_request_cancel(cldp_request *req);
/* The answered request's probabilities (rows x outputs, row-major; for a model whose loss is
 * CLDP_LOSS_MSE its raw outputs), owned by the request; NULL
 * unless it was answered CLDP_OK. *generation (may be NULL) gets the parameter generation that
 * computed it (0: the creation's; +1 per swap). */
CLDP_API const float *cldp_request_probs(const cldp_request *req, uint64_t *generation);
/* Lets go of the handle (NULL: no-op); a pending request is still answered (callback included). */
CLDP_API void cldp_request_destroy(cldp_request *req);

/* Blocking convenience: submit, wait, copy the probabilities (rows x outputs) into `probs`. */
CLDP_API cldp_status cldp_server_infer(cldp_server *server, const float *x, size_t rows,
                                       float *probs, double timeout_ms);

/* Hot swap: new parameters (count == cldp_model_param_count, finite, copied) for every batch
 * formed from now on; batches in flight finish on the old ones, no request fails and none mixes
 * the two. Returns the new generation in *generation (may be NULL). Does not block on devices. */
CLDP_API cldp_status cldp_server_swap_params(cldp_server *server, const float *params, size_t count,
                                             uint64_t *generation);
/* The same from a checkpoint of the same model (a refused file changes nothing). */
CLDP_API cldp_status cldp_server_swap_checkpoint(cldp_server *server, const char *path,
                                                 uint64_t *generation);
/* The same from a trainer of the same model in this process (its master parameters now; the
 * trainer must not be stepping on another thread during the call). */
CLDP_API cldp_status cldp_server_swap_from_trainer(cldp_server *server, const cldp_trainer *trainer,
                                                   uint64_t *generation);

#define CLDP_SERVER_HIST 12 /* batch-size buckets: 1, 2, 3-4, 5-8, ..., 1025 and more rows */

/* A server's statistics, per device or in total (cldp_server_stats_get). */
typedef struct cldp_server_stats {
    uint64_t succeeded;           /* requests answered CLDP_OK */
    uint64_t failed;              /* requests answered with an error (timeouts and cancellations
                                     included) */
    uint64_t timed_out;           /* of failed: past their deadline */
    uint64_t cancelled;           /* of failed: cancelled */
    uint64_t rejected;            /* submits refused with CLDP_ERR_BUSY (queue full) */
    uint64_t rows;                /* rows inferred */
    uint64_t batches;             /* batches run (rows / batches: the mean batch) */
    double queue_ms;              /* cumulative: submit to first batch, per request */
    double compute_ms;            /* cumulative: batch compute */
    size_t pending_rows;          /* rows queued now (total only) */
    uint64_t batch_hist[CLDP_SERVER_HIST]; /* batches by size, CLDP_SERVER_HIST buckets */
    double p50_ms;                /* latency, submit to answer, over the last 8192 requests: median */
    double p95_ms;                /* 95th percentile */
    double p99_ms;                /* 99th percentile */
    int alive;                    /* the device still serves (1), or left after a failure (0);
                                     in the total: how many devices serve */
    uint64_t generation;          /* parameters the device holds (total: the newest) */
} cldp_server_stats;

/* Devices of the server at creation (ranks 0..n-1 in selection order; dropped ones stay). */
CLDP_API size_t cldp_server_device_count(const cldp_server *server);
/* Facts about the server's device `rank`. */
CLDP_API cldp_status cldp_server_device_info(const cldp_server *server, size_t rank,
                                             cldp_device_info *info);
/* Statistics of device `rank`, or of the whole server for rank == SIZE_MAX (requests count where
 * their last rows ran). A consistent snapshot; thread-safe. */
CLDP_API cldp_status cldp_server_stats_get(const cldp_server *server, size_t rank,
                                           cldp_server_stats *stats);
/* Model facts: inputs per row. */
CLDP_API size_t cldp_server_inputs(const cldp_server *server);
/* Model facts: outputs per row. */
CLDP_API size_t cldp_server_outputs(const cldp_server *server);
/* 1 while the server accepts requests (created, a device alive, not shutting down). */
CLDP_API int cldp_server_ready(const cldp_server *server);

/* ---- timeline ----------------------------------------------------------------------------
 *
 * A timeline of what every trainer and server of the process did, for Perfetto
 * (https://ui.perfetto.dev) or chrome://tracing: cldp_trace_start records, cldp_trace_stop writes
 * Chrome trace-event JSON. Lanes: 0 is the host (the caller's thread: each training step), and
 * one lane per device, which holds both the device's own work (timed by OpenCL profiling events,
 * mapped to host time) and the host work of the worker thread that drives it (host clock).
 * Categories, so that a per-device breakdown of a step sums without counting anything twice:
 *   "gemm"      each CLBlast GEMM (name "gemm", with its layer), device-timed
 *   "kernel"    each cldp kernel launch (name: the kernel, e.g. "bias_act"), device-timed
 *   "transfer"  "grad copy" (gradients to the host), "input upload", "loss read", device-timed
 *   "broadcast" "param write": the new parameters to the device, device-timed
 *   "reduce"    "reduce": a piece of the host reduction, on the lane of the worker that summed it
 *   "update"    "update": the optimizer's part of that piece's fused pass (a piece shows its
 *               summing time, then its update time: the two alternate block by block, and
 *               their shares are measured on every 8th block)
 *   "wait"      "wait": a device's idle time waiting for the slowest device of the step
 *   "serve"     "queue wait" (a batch's oldest request, from submit to the batch), "batch"
 *               (forming it from the queue), "compute" (running it), on the device's lane
 *   "step"      enclosing spans, to exclude from sums: "forward" and "backward" per layer on
 *               a device lane (from its first to its last command), "step" on the host lane
 * Recording costs one relaxed atomic load per site while off. While on, events are kept in memory
 * (at most 2^21; later ones are dropped and the file's metadata says how many), in the order they
 * were recorded (a device's commands once its worker has read their times), not sorted by start.
 * Steps count from 1 (the trainer's first step); 0 is work outside a step (evaluation, serving). */

/* One recorded interval of a timeline (cldp_trace_events). */
typedef struct cldp_trace_event {
    const char *name;     /* what ran, e.g. "forward", "backward", "gemm", "kernel", "grad copy",
                             "reduce", "update", "broadcast", "wait", "queue wait", "batch", "compute";
                             valid until the next cldp_trace_start */
    const char *category; /* one of "gemm", "kernel", "transfer", "reduce", "update", "broadcast",
                             "wait", "step", "serve" */
    int lane;             /* 0: the host; 1, 2, ...: one per device, numbered in the order the devices
                             were first traced (cldp_trace_lane_name names it) */
    int layer;            /* the layer's index for per-layer work, else -1 */
    uint64_t step;        /* the trainer's step count when it was recorded (0 outside training) */
    double start_us;      /* microseconds since cldp_trace_start */
    double dur_us;        /* its length in microseconds */
} cldp_trace_event;

/* Starts recording a timeline of every trainer and server in the process (replacing any previous
 * recording); `path` (may be NULL: memory only) is where cldp_trace_stop writes Chrome trace-event
 * JSON. Device work is timed with OpenCL profiling events mapped to host time where the device
 * gives them, host timestamps elsewhere. Thread-safe. */
CLDP_API cldp_status cldp_trace_start(const char *path);
/* Stops recording and writes the file given to cldp_trace_start (atomically: temporary, rename);
 * the events stay readable (cldp_trace_events) until the next start. A recording keeps at most
 * 2^21 events; later ones are counted in the file's otherData.dropped and said on stderr. */
CLDP_API cldp_status cldp_trace_stop(void);
/* Events recorded so far (0 when none). */
CLDP_API size_t cldp_trace_event_count(void);
/* Copies up to `capacity` events from index `first` into `events`; *count gets how many. */
CLDP_API cldp_status cldp_trace_events(size_t first, cldp_trace_event *events, size_t capacity,
                                       size_t *count);
/* The lane's name ("host", or the device's "p:d name"), into buf (capacity bytes). */
CLDP_API cldp_status cldp_trace_lane_name(int lane, char *buf, size_t capacity);

/* ---- test control: NOT for use by applications ------------------------------------------
 *
 * One fenced door for the test suite's hooks, in the manner of sqlite3_test_control: fault
 * injection, memory caps, slowdowns, allocation failures, worker delays. Nothing here is stable
 * API; operations may change or go away in any release. A library built with CLDP_TEST_HOOKS=OFF
 * answers every operation with CLDP_ERR_STATE, and its hot paths carry no hook at all.
 *
 *   CLDP_TEST_CONFIG (const char *name, const char *value): sets one of cldp's environment
 *     settings as if the variable held `value` (NULL: unset), validated the same way; the
 *     environment itself is read once per process. Besides the documented variables
 *     (README.md, "Environment"), the test-only ones:
 *       CLDP_FAULT "RANK:STEP:KIND[:MS],...": faults armed in trainers created afterwards. RANK is
 *         the device's rank at creation, STEP the 0-based step; KIND gemm | kernel | read | write
 *         (an error from that call) | nan (a NaN in that device's gradient) | stall (the worker
 *         sleeps MS, default 5000, inside a GEMM of the step) | stall_write (inside a parameter
 *         write) | stall_reduce (in the host reduction and update) | stall_eval | stall_predict
 *         (inside a GEMM of an evaluation or prediction made when the trainer is at STEP).
 *       CLDP_DEVICE_MEMORY_CAP bytes (K/M/G suffixes): the memory each device may use.
 *       CLDP_HOST_MEMORY_CAP bytes: the host memory taken as available to the devices that share
 *         it (in place of MemAvailable and an address-space limit, when lower).
 *       CLDP_TEST_SLOWDOWN "RANK:FACTOR,...": that rank's worker sleeps after its compute so its
 *         part of a step takes FACTOR times as long (a stand-in for a slower GPU).
 *       CLDP_TEST_CHECKPOINT_DELAY_MS: a save sleeps that long between its fsync and its rename.
 *   CLDP_TEST_FAULT (cldp_trainer *trainer, const char *spec): arms faults (CLDP_FAULT's syntax)
 *     on an existing trainer, replacing those it had.
 *   CLDP_TEST_HOST_ALLOC_FAIL (long n), CLDP_TEST_DEVICE_ALLOC_FAIL (long n): the n-th host
 *     allocation (cldp's mallocs, zlib's, worker threads) or device allocation (contexts,
 *     queues, replica buffers) from now fails as if memory ran out; -1 injects nothing.
 *   CLDP_TEST_WORKER_DELAY (void (*fn)(size_t rank)): every worker calls fn before its part of
 *     a run (NULL: none), so tests can shuffle arrival order.
 *   CLDP_TEST_SERVER_FAULT (cldp_server *server, const char *spec): arms faults on a running
 *     server, "RANK:BATCH:KIND[:MS],...": the device of rank RANK fails its BATCH-th batch
 *     (0-based, counted on that device from now) with KIND gemm | kernel (an error from that
 *     call) | stall (the worker sleeps MS, default 5000, inside a GEMM).
 *   CLDP_TEST_SLOWDOWN applies to servers created afterwards too: the slowed worker sleeps after
 *     each batch for (FACTOR - 1) times its compute.
 */
typedef enum cldp_test_op {
    CLDP_TEST_CONFIG = 1,
    CLDP_TEST_FAULT = 2,
    CLDP_TEST_HOST_ALLOC_FAIL = 3,
    CLDP_TEST_DEVICE_ALLOC_FAIL = 4,
    CLDP_TEST_WORKER_DELAY = 5,
    CLDP_TEST_SERVER_FAULT = 6
} cldp_test_op;

CLDP_API cldp_status cldp_test_control(cldp_test_op op, ...);

#ifdef __cplusplus
}
#endif
#endif /* CLDP_H */
