/* balance.h — how the batch is divided between devices: the split spec ("3,1"), shard sizes from
 * weights, the speed-aware balancer (a fixed cost plus a cost per sample per device, fitted to
 * measured step times; hysteresis; balancer.c), the test-only slowdown of a device, and (memplan.h)
 * the memory plan. Pure host logic with no OpenCL calls, so tests drive it with synthetic timings.
 * Internal. */
#ifndef CLDP_BALANCE_H
#define CLDP_BALANCE_H

#include "memplan.h"

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

/* Each device is modelled as a fixed cost per step plus a cost per sample: compute_ms(shard) =
 * fixed_ms + ms_per_sample · shard. The fixed part (kernel launches, a thread pool waking up,
 * reading the gradient back) does not shrink with the shard, so a device whose fixed cost is
 * longer than the step the others take without it is best given no samples at all.
 *
 * Why these constants: per-step timings on shared machines are noisy (other processes, clock
 * boosts; +-30% from one step to the next on a loaded 2-core PoCL machine). Each device keeps a
 * moving average of the time at each shard size it has run (sizes within 1/NEAR of each other
 * share one point), and the model is a weighted least-squares line through those points, with a
 * fixed cost >= 0; while the sizes seen span less than SPREAD, the fixed cost is not refitted (it
 * starts at 0: the proportional model), and a point far off the line of the others (a stalled
 * step, a speed since gone) is forgotten. So that the fixed cost can be fitted, the initial
 * search on devices that differ runs each device whose sizes span too little at an eighth of its
 * shard for one step (a probe, smallest shard first). A device's first measured step is not used (it pays first-use
 * costs). Devices that share a machine also slow each other down (PoCL's CPU devices share its
 * cores), which no per-device model sees: so when the initial search has settled (within
 * 3 x ACQUIRE steps), if the device with the smallest shard spends two thirds of its step in
 * fixed cost, a trial leaves it out for TRIAL steps, and keeps it out when the measured step (the
 * slowest device's compute, median of TRIAL) is shorter by more than THRESHOLD than the TRIAL
 * steps before; at most TRIALS times per device, until the split is set again. A device left
 * out is not measured, so after EXPLORE steps, then after twice as many each time (up
 * to 16 x EXPLORE), it gets a few samples for one step (a look, at most its fixed cost's worth of
 * delay), so that a model fitted to a bad moment of the machine, or a device that got faster, is
 * found out: when the look takes over CHANGED times as long as the model says, or under 1 /
 * CHANGED, the device's points and a trial's verdict are forgotten, and trials may run again
 * for 3 x ACQUIRE steps. A measurement is clamped to within CLAMP of its point's average so one hiccup cannot swing the split; a
 * point not measured for STALE of the device's steps leaves the fit, and one measured again after
 * REFRESH starts afresh, so a device that changes speed is followed. A re-split must promise a step-time gain above a threshold for PATIENCE
 * steps in a row. The threshold is THRESHOLD, or more on a noisy machine: NOISE_Z times the
 * spread that noise alone gives the predicted gain, from each device's measured variance, so
 * noise does not read as a change of speed. After the first steps a re-split moves only DAMP of
 * the way to the proposal (a device the proposal leaves out gets no samples at once), so a
 * change driven by noise stays small, while a real change of speed (a device becoming 3x slower)
 * is followed within about twenty steps. Tuned on simulated devices with +-10..30% noise per
 * step (tests/test_balance.c). The first LEARN measurements of a point are averaged plainly (no
 * clamp), and during the first LEARN steps a re-split needs no patience and is not damped, so
 * the initial split converges in a few steps. */
#define CLDP_BALANCE_ALPHA 0.25     /* weight of a new measurement in the moving average */
#define CLDP_BALANCE_CLAMP 2.0      /* a measurement is limited to [avg/CLAMP, avg*CLAMP] */
#define CLDP_BALANCE_THRESHOLD 0.05 /* re-split only when predicted step time drops > 5% */
#define CLDP_BALANCE_NOISE_Z 2.0    /* ... and by more than this many noise deviations */
#define CLDP_BALANCE_PATIENCE 3     /* ... on this many consecutive steps */
#define CLDP_BALANCE_DAMP 0.7       /* fraction of the way a later re-split moves */
#define CLDP_BALANCE_LEARN 3        /* measurements averaged plainly before the moving average */
#define CLDP_BALANCE_ACQUIRE 12     /* steps the initial, undamped search may take at most */
#define CLDP_BALANCE_POINTS 6       /* shard sizes a device remembers for its fit */
#define CLDP_BALANCE_NEAR 16        /* sizes within 1/NEAR of a point's size share it */
#define CLDP_BALANCE_STALE 30       /* a point older than this many of its device's steps is dropped */
#define CLDP_BALANCE_REFRESH 12     /* ... and one measured again after this many starts afresh */
#define CLDP_BALANCE_PROBE 8        /* the probe runs a device at 1/PROBE of its shard */
#define CLDP_BALANCE_OUTLIER 0.5    /* a point this far (relative) off the fitted line is forgotten */
#define CLDP_BALANCE_TRIAL 3        /* steps a trial without a device lasts, and steps it is judged against */
#define CLDP_BALANCE_TRIALS 2       /* trials a device may have */
#define CLDP_BALANCE_EXPLORE 40     /* steps before the first look at a device the models left out */
#define CLDP_BALANCE_CHANGED 2.0    /* a look this far off its model (either way): the device changed */
#define CLDP_BALANCE_LOOK 32        /* a look gives it total / (devices x LOOK) samples (at least 1) */
#define CLDP_BALANCE_SPREAD 1.5     /* largest / smallest size the fit needs to fit a fixed cost */

typedef struct cldp_balance_point {
    double n, ms;      /* moving averages of a shard size and the compute time it took */
    unsigned count;    /* measurements averaged in (0: the slot is free) */
    unsigned at;       /* its device's measurement count when it was last updated */
} cldp_balance_point;

typedef struct cldp_balancer {
    size_t slots;                      /* devices at creation; a slot is a device's first rank */
    double weight[CLDP_BALANCE_MAX];   /* the split in use, relative (any positive scale); 0: no samples */
    double ms_per_sample[CLDP_BALANCE_MAX]; /* the model's cost per sample; 0: unknown */
    double fixed_ms[CLDP_BALANCE_MAX]; /* the model's fixed cost of a step with samples */
    unsigned samples[CLDP_BALANCE_MAX];     /* measurements taken of each slot */
    cldp_balance_point point[CLDP_BALANCE_MAX][CLDP_BALANCE_POINTS]; /* what the model is fitted to */
    unsigned steps;                    /* observations that measured at least one device */
    unsigned pending;                  /* consecutive steps that asked for a re-split */
    unsigned resplits;                 /* re-splits made so far */
    int enabled;                       /* 0: the split stays as set */
    double last_gain;                  /* predicted relative gain at the last observation */
    double rel_var[CLDP_BALANCE_MAX];  /* moving average of ((measured - its point) / its point)^2 */
    unsigned noise_samples[CLDP_BALANCE_MAX]; /* measurements that went into rel_var */
    double last_threshold;             /* the gain a re-split needed at the last observation */
    int settled;                       /* the initial search found a split it keeps */
    unsigned char probed[CLDP_BALANCE_MAX]; /* the initial search ran the device at 1/PROBE of its shard */
    /* the trial: the measured step without a device, against the step with it */
    double recent[CLDP_BALANCE_TRIAL];  /* step times (the slowest device's compute) under the split in use */
    unsigned nrecent;                   /* ... taken since it was set */
    int trial_on;                       /* a trial is running */
    size_t trial_slot;                  /* the device it leaves out */
    double trial_ref;                   /* the median step time before it */
    double trial_w[CLDP_BALANCE_MAX];   /* the weights (by slot) to restore when it loses */
    unsigned char tried[CLDP_BALANCE_MAX], left_out[CLDP_BALANCE_MAX]; /* trials made, and one won */
    int looking;                        /* this step gives a left-out device a few samples */
    unsigned looked_at;                 /* the step of the last look */
    unsigned looks;                     /* looks taken since the split was set */
    unsigned trials_until;              /* the last step a trial may start (after a look that
                                           found a device changed, again for a while) */
    double look_w[CLDP_BALANCE_MAX];    /* the weights (by slot) to restore after it */
} cldp_balancer;

/* Starts with `slots` devices, the given weights (NULL: even) and balancing on or off. */
void cldp_balancer_init(cldp_balancer *b, size_t slots, const double *weights, int enabled);

/* Weights of the n devices present, whose slots are slot[0..n) (slot NULL: identity). */
void cldp_balancer_weights(const cldp_balancer *b, const size_t *slot, size_t n, double *w);

/* Shards of `total` samples for the n devices present, from the weights in use (even when only
 * devices of weight 0 are left, after drops): what a step computes. */
void cldp_balancer_split(const cldp_balancer *b, const size_t *slot, size_t n, size_t total, size_t *len);

/* Replaces the weights of the devices present (validated by the caller) and forgets any re-split
 * or trial that was pending, and which devices trials left out; the speed measurements stay. */
void cldp_balancer_set(cldp_balancer *b, const size_t *slot, size_t n, const double *w);

/* The split of `total` samples over n devices that minimises the predicted step time, the
 * largest fixed_ms[r] + ms_per_sample[r]·shard[r] over the devices given samples (a device with
 * shard 0 costs nothing). A device is left out (shard 0) when giving it samples would lengthen
 * the step. Writes shard[n] (summing to total) and returns the predicted step time in ms.
 * Pure and deterministic: ties go to the lower rank, and to fewer devices. ms_per_sample must be
 * > 0 and fixed_ms >= 0, all finite. */
double cldp_balancer_shards(const double *fixed_ms, const double *ms_per_sample, size_t n, size_t total, size_t *shard);

/* Feeds one training step's timings: shard[r] samples took compute_ms[r] (forward, backward and
 * reading the gradient; not the time spent waiting for others) on the device in slot[r].
 * Updates each device's model and, when enabled and the hysteresis allows, sets the weights to
 * the shares cldp_balancer_shards gives this total (0 for a device it leaves out). Returns 1
 * when the weights changed. Devices with a 0 shard are not measured (a device left out keeps the
 * model that left it out); a device never measured is assumed to be the average of the others. */
int cldp_balancer_observe(cldp_balancer *b, const size_t *slot, size_t n, const size_t *shard,
                          const double *compute_ms);

#endif
