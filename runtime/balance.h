/* balance.h — how the batch is divided between devices: the split spec ("3,1"), shard sizes from
 * weights, the speed-aware balancer (moving average of ms per sample, hysteresis), the per-device
 * memory estimate that sizes micro-batches, and the test-only slowdown of a device. Pure host
 * logic with no OpenCL calls, so tests drive it with synthetic timings. Internal. */
#ifndef CLDP_BALANCE_H
#define CLDP_BALANCE_H

#include "model.h"

#define CLDP_BALANCE_MAX 64 /* devices (slots) a balancer tracks */

/* ---- split spec and shards ------------------------------------------------------------- */

/* Parses a split spec for n devices into weights[n]:
 *   NULL, "" or "auto" -> *automatic = 1 and every weight 1 (even start, the balancer decides);
 *   "even"             -> every weight 1, fixed;
 *   "W0,W1,..."        -> n finite numbers >= 0, not all 0 (e.g. "3,1" or "0.75,0.25"), fixed.
 * Bad input (a negative, all zero, a count other than n, anything not a number) is
 * CLDP_ERR_INVALID_ARGUMENT with a message that names the spec and says what is expected. */
cldp_status cldp_split_parse(const char *spec, size_t n, double *weights, int *automatic);

/* Checks weights given through the API: n finite, >= 0, not all zero. `who` prefixes messages. */
cldp_status cldp_split_check(const double *weights, size_t n, const char *who);

/* Shard sizes proportional to weights[n], summing exactly to `total` (largest remainder: each
 * device gets floor(quota), the leftover samples go to the largest fractional parts, ties to the
 * lower rank). Deterministic: the same weights and total always give the same sizes. A device
 * with weight 0 gets 0; others may get 0 too when total is small. Weights must pass
 * cldp_split_check. */
void cldp_split_shards(const double *weights, size_t n, size_t total, size_t *len);

/* ---- speed-aware balancer -------------------------------------------------------------- */

/* Why these constants: per-step timings on shared machines are noisy (other processes, clock
 * boosts; +-30% from one step to the next on a loaded 2-core PoCL machine). The moving average
 * smooths them; a measurement is clamped to within CLAMP of the average so one hiccup cannot
 * swing the split; a re-split must promise a step-time gain above a threshold for PATIENCE
 * steps in a row. The threshold is THRESHOLD, or more on a noisy machine: NOISE_Z times the
 * spread that noise alone gives the predicted gain, from each device's measured variance, so
 * noise does not read as a change of speed. After the first steps a re-split moves only DAMP of
 * the way to the proposal, so a change driven by noise stays small, while a real change of speed
 * (a device becoming 3x slower) is followed within about twenty steps. Tuned on simulated
 * devices with +-10..30% noise per step (the balancer's tests in tests/test_balance.c). The first LEARN measurements of a
 * device are averaged plainly (no clamp), and during the first LEARN steps a re-split needs no
 * patience and is not damped, so the initial split converges in a few steps. */
#define CLDP_BALANCE_ALPHA 0.25     /* weight of a new measurement in the moving average */
#define CLDP_BALANCE_CLAMP 2.0      /* a measurement is limited to [avg/CLAMP, avg*CLAMP] */
#define CLDP_BALANCE_THRESHOLD 0.05 /* re-split only when predicted step time drops > 5% */
#define CLDP_BALANCE_NOISE_Z 2.0    /* ... and by more than this many noise deviations */
#define CLDP_BALANCE_PATIENCE 3     /* ... on this many consecutive steps */
#define CLDP_BALANCE_DAMP 0.7       /* fraction of the way a later re-split moves */
#define CLDP_BALANCE_LEARN 3        /* measurements averaged plainly before the moving average */
#define CLDP_BALANCE_ACQUIRE 12     /* steps the initial, undamped search may take at most */

typedef struct cldp_balancer {
    size_t slots;                      /* devices at creation; a slot is a device's first rank */
    double weight[CLDP_BALANCE_MAX];   /* the split in use, relative (any positive scale) */
    double ms_per_sample[CLDP_BALANCE_MAX]; /* moving average of compute ms / shard; 0: unknown */
    unsigned samples[CLDP_BALANCE_MAX];     /* measurements taken of each slot */
    unsigned steps;                    /* observations that measured at least one device */
    unsigned pending;                  /* consecutive steps that asked for a re-split */
    unsigned resplits;                 /* re-splits made so far */
    int enabled;                       /* 0: the split stays as set */
    double last_gain;                  /* predicted relative gain at the last observation */
    double rel_var[CLDP_BALANCE_MAX];  /* moving average of ((measured - average) / average)^2 */
    double last_threshold;             /* the gain a re-split needed at the last observation */
    int settled;                       /* the initial search found a split it keeps */
} cldp_balancer;

/* Starts with `slots` devices, the given weights (NULL: even) and balancing on or off. */
void cldp_balancer_init(cldp_balancer *b, size_t slots, const double *weights, int enabled);

/* Weights of the n devices present, whose slots are slot[0..n) (slot NULL: identity). */
void cldp_balancer_weights(const cldp_balancer *b, const size_t *slot, size_t n, double *w);

/* Replaces the weights of the devices present (validated by the caller) and forgets any re-split
 * that was pending; the speed measurements stay. */
void cldp_balancer_set(cldp_balancer *b, const size_t *slot, size_t n, const double *w);

/* Feeds one training step's timings: shard[r] samples took compute_ms[r] (forward, backward and
 * reading the gradient; not the time spent waiting for others) on the device in slot[r].
 * Updates the speed estimates and, when enabled and the hysteresis allows, sets the weights to
 * 1 / (ms per sample). Returns 1 when the weights changed. Devices with a 0 shard are not
 * measured; a device never measured is assumed as fast as the average of the others. */
int cldp_balancer_observe(cldp_balancer *b, const size_t *slot, size_t n, const size_t *shard,
                          const double *compute_ms);

/* ---- memory ---------------------------------------------------------------------------- */

typedef struct cldp_mem_need {
    uint64_t params, grads;      /* bytes of the parameter and gradient buffers */
    uint64_t activations;        /* input, activations, layer gradients, labels... for `rows` */
    uint64_t scratch;            /* CLBlast temporary buffers, estimated conservatively */
    uint64_t staging;            /* driver staging of the transfers */
    uint64_t total;
    uint64_t largest_buffer;     /* the largest single allocation */
} cldp_mem_need;

/* Device bytes a replica of `m` needs to run `rows` rows at once. */
void cldp_mem_estimate(const cldp_model *m, size_t rows, cldp_mem_need *need);

/* The same for a forward-only (inference) replica: parameters, the input, activations and
 * probabilities of `rows` rows, the forward GEMMs' scratch; no gradients. */
void cldp_mem_estimate_forward(const cldp_model *m, size_t rows, cldp_mem_need *need);

/* Memory the trainer may use on a device: its global memory less a sixteenth for the driver,
 * and no more than `cap` when cap is not 0 (the test-only limit). */
uint64_t cldp_mem_usable(uint64_t global_mem, uint64_t cap);

/* The most rows (1..batch) that fit the device's usable memory (cldp_mem_usable) with no buffer
 * above max_alloc (0: no limit), written to *rows; shards larger than that run as micro-batches.
 * When not even one row fits, CLDP_ERR_DEVICE_MEMORY with a message naming `dev_name`, the bytes
 * needed and the bytes it has, and how to leave it out (`others`: the platform:device list of
 * the other selected devices, "" when there are none). */
cldp_status cldp_mem_plan(const cldp_model *m, size_t batch, const char *dev_name, uint64_t global_mem,
                          uint64_t max_alloc, uint64_t cap, const char *others, size_t *rows);
/* The same for a forward-only replica (cldp_mem_estimate_forward): a server's batch rows. */
cldp_status cldp_mem_plan_forward(const cldp_model *m, size_t batch, const char *dev_name, uint64_t global_mem,
                                  uint64_t max_alloc, uint64_t cap, const char *others, size_t *rows);

/* Parses a byte count: digits with an optional K, M, G or T suffix (powers of 1024, an optional
 * trailing "B" or "iB"), e.g. "65536", "64K", "1.5G". `what` names the source in messages. */
cldp_status cldp_parse_bytes(const char *s, const char *what, uint64_t *out);

/* ---- test-only slowdown ---------------------------------------------------------------- */

/* Parses CLDP_TEST_SLOWDOWN, "RANK:FACTOR[,RANK:FACTOR...]" (e.g. "1:3"), into factor[n] (1: no
 * slowdown). FACTOR is in [1, 1000]; RANK below n. NULL or "" leaves every factor at 1.
 * The worker of a slowed rank sleeps after its compute for (FACTOR - 1) times the compute it
 * just measured, so its part takes FACTOR times as long. It stands in for a slower GPU: the
 * worker blocks as it would waiting in clFinish on a slow device, the sleep grows with the shard
 * like real compute, it takes no CPU from the other devices (as a separate GPU would not), and
 * the balancer sees it only through the same compute timings a real device gives. */
cldp_status cldp_slowdown_parse(const char *spec, size_t n, double *factor);

#endif
