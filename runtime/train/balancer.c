/* balancer.c — the speed-aware balancer: a fixed cost plus a cost per sample for each device,
 * fitted to the compute times measured at the shard sizes it ran, the split that minimises the
 * predicted step time (leaving out a device that would lengthen it), a measured trial without a
 * device, and the hysteresis that keeps noise from moving the split. No OpenCL: tests drive it with simulated timings. */
#include "balance.h"

#include <math.h>
#include <string.h>

void cldp_balancer_init(cldp_balancer *b, size_t slots, const double *weights, int enabled)
{
    memset(b, 0, sizeof *b);
    b->slots = slots > CLDP_BALANCE_MAX ? CLDP_BALANCE_MAX : slots;
    for (size_t s = 0; s < b->slots; s++) b->weight[s] = weights ? weights[s] : 1.0;
    b->enabled = enabled;
    b->trials_until = 3 * CLDP_BALANCE_ACQUIRE;
}

static size_t slot_of(const size_t *slot, size_t r) { return slot ? slot[r] : r; }

void cldp_balancer_weights(const cldp_balancer *b, const size_t *slot, size_t n, double *w)
{
    for (size_t r = 0; r < n; r++) w[r] = b->weight[slot_of(slot, r)];
}

void cldp_balancer_split(const cldp_balancer *b, const size_t *slot, size_t n, size_t total, size_t *len)
{
    double w[CLDP_BALANCE_MAX], sum = 0;
    cldp_balancer_weights(b, slot, n, w);
    for (size_t r = 0; r < n; r++) sum += w[r];
    if (!(sum > 0)) /* only zero-weight devices are left (the others were dropped): even */
        for (size_t r = 0; r < n; r++) w[r] = 1.0;
    cldp_split_shards(w, n, total, len);
}

void cldp_balancer_set(cldp_balancer *b, const size_t *slot, size_t n, const double *w)
{
    for (size_t r = 0; r < n; r++) b->weight[slot_of(slot, r)] = w[r];
    b->pending = 0;
    b->nrecent = 0;
    b->trial_on = 0;
    b->looking = 0;
    b->looks = 0;
    memset(b->tried, 0, sizeof b->tried);
    memset(b->left_out, 0, sizeof b->left_out);
}

/* ---- the split that minimises the predicted step time ---------------------------------- */

/* The step time of a split: the slowest device given samples. */
static double step_ms(const double *fixed, const double *per, const size_t *shard, size_t n)
{
    double t = 0;
    for (size_t r = 0; r < n; r++)
        if (shard[r]) t = fmax(t, fixed[r] + per[r] * (double)shard[r]);
    return t;
}

double cldp_balancer_shards(const double *fixed, const double *per, size_t n, size_t total, size_t *shard)
{
    /* Over a set S of devices the continuous optimum finishes them together at
     * T = (total + sum a/b) / sum 1/b, each r taking (T - a_r) / b_r; a device belongs in S only
     * when its fixed cost a_r is below T, so S is a prefix of the devices ordered by fixed cost.
     * Each prefix is rounded to whole samples (floors, then each leftover sample to the device
     * it delays least) and the best prefix kept. */
    size_t order[CLDP_BALANCE_MAX], cand[CLDP_BALANCE_MAX];
    for (size_t r = 0; r < n; r++) {
        size_t i = r; /* insertion by fixed cost, then cost per sample, then rank: stable, deterministic */
        while (i > 0 && (fixed[order[i - 1]] > fixed[r] ||
                         (fixed[order[i - 1]] == fixed[r] && per[order[i - 1]] > per[r]))) {
            order[i] = order[i - 1];
            i--;
        }
        order[i] = r;
    }
    memset(shard, 0, n * sizeof *shard);
    if (total == 0 || n == 0) return 0;
    double best = INFINITY, inv = 0, sum_ab = 0;
    for (size_t k = 1; k <= n; k++) {
        size_t q = order[k - 1];
        inv += 1.0 / per[q];
        sum_ab += fixed[q] / per[q];
        double T = ((double)total + sum_ab) / inv;
        if (k > 1 && !(T > fixed[q])) break; /* this device, and every later one, only lengthens it */
        memset(cand, 0, n * sizeof *cand);
        size_t given = 0;
        for (size_t i = 0; i < k; i++) {
            size_t r = order[i];
            double share = floor((T - fixed[r]) / per[r]);
            cand[r] = share > 0 ? (size_t)fmin(share, (double)(total - given)) : 0;
            given += cand[r];
        }
        for (; given < total; given++) { /* fewer than k left: to whoever finishes earliest with one more */
            size_t pick = order[0];
            double pick_t = INFINITY;
            for (size_t i = 0; i < k; i++) {
                size_t r = order[i];
                double t = fixed[r] + per[r] * (double)(cand[r] + 1);
                if (t < pick_t || (t == pick_t && r < pick)) pick = r, pick_t = t;
            }
            cand[pick]++;
        }
        double t = step_ms(fixed, per, cand, n);
        if (t < best) {
            best = t;
            memcpy(shard, cand, n * sizeof *shard);
        }
    }
    return best;
}

/* ---- the model of a device ------------------------------------------------------------- */

/* Adds one measurement to the point of its shard size (or a new point, replacing the oldest).
 * Returns its relative deviation from that point's average before it (the noise: the same
 * size measured again), or NAN for a new point. */
static double add_point(cldp_balancer *b, size_t s, double n, double ms)
{
    cldp_balance_point *pts = b->point[s], *p = NULL;
    double dev = NAN;
    for (size_t i = 0; i < CLDP_BALANCE_POINTS; i++)
        if (pts[i].count && fabs(n - pts[i].n) <= fmax(0.5, pts[i].n / CLDP_BALANCE_NEAR)) p = &pts[i];
    if (p && b->samples[s] - p->at > CLDP_BALANCE_REFRESH) p->count = 0; /* measured long ago: start it afresh */
    if (p && p->count) dev = (ms - p->ms) / p->ms;
    if (p && p->count < CLDP_BALANCE_LEARN) {
        p->n = (p->n * p->count + n) / (p->count + 1);
        p->ms = (p->ms * p->count + ms) / (p->count + 1);
    } else if (p) {
        ms = fmin(fmax(ms, p->ms / CLDP_BALANCE_CLAMP), p->ms * CLDP_BALANCE_CLAMP);
        p->n += CLDP_BALANCE_ALPHA * (n - p->n);
        p->ms += CLDP_BALANCE_ALPHA * (ms - p->ms);
    } else {
        p = &pts[0];
        for (size_t i = 0; i < CLDP_BALANCE_POINTS && p->count; i++)
            if (!pts[i].count || pts[i].at < p->at) p = &pts[i];
        *p = (cldp_balance_point){n, ms, 0, 0};
    }
    p->count++;
    p->at = b->samples[s];
    return dev;
}

/* Whether the device's recent points span enough sizes to fit its fixed cost. */
static int spans(const cldp_balancer *b, size_t s)
{
    double lo = INFINITY, hi = 0;
    for (size_t i = 0; i < CLDP_BALANCE_POINTS; i++) {
        const cldp_balance_point *p = &b->point[s][i];
        if (!p->count || b->samples[s] - p->at > CLDP_BALANCE_STALE) continue;
        lo = fmin(lo, p->n), hi = fmax(hi, p->n);
    }
    return hi >= CLDP_BALANCE_SPREAD * lo;
}

/* The line through the device's recent points, weighted by how often each was measured (at most
 * 8 each), with a fixed cost >= 0 and a cost per sample of at least a thousandth of the average.
 * While the sizes span less than SPREAD the fixed cost is kept (at most 0.99 of the average
 * time) and only the cost per sample refitted. A point more than OUTLIER off the line of three or
 * more is forgotten and the line fitted again (a step the machine stalled, a speed since gone). */
static void fit(cldp_balancer *b, size_t s)
{
    for (int pass = 0; pass < 2; pass++) {
        double sw = 0, sn = 0, st = 0, snn = 0, snt = 0;
        size_t used = 0;
        for (size_t i = 0; i < CLDP_BALANCE_POINTS; i++) {
            const cldp_balance_point *p = &b->point[s][i];
            if (!p->count || b->samples[s] - p->at > CLDP_BALANCE_STALE) continue;
            double w = p->count < 8 ? p->count : 8;
            sw += w, sn += w * p->n, st += w * p->ms, snn += w * p->n * p->n, snt += w * p->n * p->ms;
            used++;
        }
        if (!(sw > 0)) return;
        double mn = sn / sw, mt = st / sw, slope, a;
        if (spans(b, s)) {
            double var = snn / sw - mn * mn, cov = snt / sw - mn * mt;
            slope = fmax(var > 0 ? cov / var : 0, 1e-3 * mt / mn);
            a = mt - slope * mn;
            if (a < 0) a = 0, slope = snt / snn; /* through the origin */
        } else {
            a = fmin(b->fixed_ms[s], 0.99 * mt);
            slope = (mt - a) / mn;
        }
        b->fixed_ms[s] = a;
        b->ms_per_sample[s] = slope;
        /* the worst point, unless that is the newest: then it may be a new speed, or a stall, and
         * the next steps will tell */
        cldp_balance_point *worst = NULL;
        double worst_dev = CLDP_BALANCE_OUTLIER;
        for (size_t i = 0; used >= 3 && i < CLDP_BALANCE_POINTS; i++) {
            cldp_balance_point *p = &b->point[s][i];
            if (!p->count || b->samples[s] - p->at > CLDP_BALANCE_STALE) continue;
            double pred = a + slope * p->n, dev = fabs(p->ms - pred) / pred;
            if (dev > worst_dev) worst = p, worst_dev = dev;
        }
        if (!worst || worst->at == b->samples[s]) return;
        worst->count = 0;
    }
}

/* ---- observing a step ------------------------------------------------------------------ */

/* The initial search on devices that differ (it has re-split once) probes a device whose sizes
 * do not yet span enough to fit its fixed cost: the one with the smallest shard, the candidate
 * to leave out, computes an eighth of its shard for a step (its time then is nearly all fixed
 * cost), the others share the rest. Once per device. Returns 1 when it set such a split. */
static int probe(cldp_balancer *b, const size_t *slot, size_t n, const size_t *shard, size_t total)
{
    size_t pick = n;
    for (size_t r = 0; r < n; r++) {
        size_t s = slot_of(slot, r);
        if (shard[r] >= 2 && !b->probed[s] && !spans(b, s) && (pick == n || shard[r] < shard[pick])) pick = r;
    }
    if (pick == n) return 0;
    double w[CLDP_BALANCE_MAX];
    size_t rest[CLDP_BALANCE_MAX], small = shard[pick] / CLDP_BALANCE_PROBE ? shard[pick] / CLDP_BALANCE_PROBE : 1;
    for (size_t r = 0; r < n; r++) w[r] = r == pick ? 0 : (double)shard[r];
    cldp_split_shards(w, n, total - small, rest);
    for (size_t r = 0; r < n; r++) b->weight[slot_of(slot, r)] = (double)(r == pick ? small : rest[r]) / (double)total;
    b->probed[slot_of(slot, pick)] = 1;
    return 1;
}

static double median3(const double *v)
{
    double a = v[0], b = v[1], c = v[2];
    return fmax(fmin(a, b), fmin(fmax(a, b), c));
}

/* During a trial: counts its step; after TRIAL steps keeps the device out when the step got
 * shorter, else restores the weights. Returns 1 when the weights changed. */
static int trial_step(cldp_balancer *b, const size_t *slot, size_t n, double step)
{
    b->recent[b->nrecent++] = step;
    if (b->nrecent < CLDP_BALANCE_TRIAL) return 0;
    b->trial_on = 0;
    b->nrecent = 0;
    if (median3(b->recent) < b->trial_ref * (1 - CLDP_BALANCE_THRESHOLD)) {
        b->left_out[b->trial_slot] = 1;
        return 0;
    }
    memcpy(b->weight, b->trial_w, sizeof b->weight);
    return 1;
}

/* Starts a trial without the device of smallest shard, when its model says at least two thirds
 * of its step are fixed cost (the case where leaving it out can pay), it had fewer than TRIALS
 * (a trial the machine's noise lost may be won on the next), at least two devices have samples
 * and TRIAL steps of the split in use were measured. Returns 1 when it did. */
static int trial_start(cldp_balancer *b, const size_t *slot, size_t n, const size_t *shard, const double *fixed,
                       const double *per)
{
    size_t pick = n, busy = 0;
    for (size_t r = 0; r < n; r++) {
        if (!shard[r]) continue;
        busy++;
        if (pick == n || shard[r] < shard[pick]) pick = r;
    }
    if (pick == n || busy < 2 || b->nrecent < CLDP_BALANCE_TRIAL || b->tried[slot_of(slot, pick)] >= CLDP_BALANCE_TRIALS ||
        !(fixed[pick] >= 2 * per[pick] * (double)shard[pick]))
        return 0;
    b->trial_ref = median3(b->recent);
    memcpy(b->trial_w, b->weight, sizeof b->weight);
    b->weight[slot_of(slot, pick)] = 0;
    b->tried[slot_of(slot, pick)]++;
    b->trial_slot = slot_of(slot, pick);
    b->trial_on = 1;
    b->nrecent = 0;
    return 1;
}

/* A look at a device left out (shard 0, weight 0: by the models or by a trial): after
 * EXPLORE steps, then twice as many after each look (at most 16 times), it gets a few samples for
 * one step, the others the rest in their shares. Returns 1 when it set such a split. */
static int look_start(cldp_balancer *b, const size_t *slot, size_t n, const size_t *shard, size_t total)
{
    size_t pick = n;
    for (size_t r = 0; r < n && pick == n; r++) {
        size_t s = slot_of(slot, r);
        if (!shard[r] && b->weight[s] == 0) pick = r;
    }
    unsigned every = CLDP_BALANCE_EXPLORE << (b->looks < 4 ? b->looks : 4); /* 40, 80, ... 640 steps */
    if (pick == n || b->steps - b->looked_at < every) return 0;
    size_t few = total / (n * CLDP_BALANCE_LOOK) ? total / (n * CLDP_BALANCE_LOOK) : 1, rest[CLDP_BALANCE_MAX];
    double w[CLDP_BALANCE_MAX];
    for (size_t r = 0; r < n; r++) w[r] = r == pick ? 0 : (double)shard[r];
    if (few >= total) return 0;
    cldp_split_shards(w, n, total - few, rest);
    memcpy(b->look_w, b->weight, sizeof b->weight);
    for (size_t r = 0; r < n; r++) b->weight[slot_of(slot, r)] = (double)(r == pick ? few : rest[r]) / (double)total;
    b->looking = 1;
    b->looks++;
    b->looked_at = b->steps;
    b->nrecent = 0;
    return 1;
}

/* Each device's compute time of the step into its points and models (a device's first step
 * pays first-use costs and is left out); *total is the step's rows. 1 when some device measured. */
static int measure(cldp_balancer *b, const size_t *slot, size_t n, const size_t *shard, const double *compute_ms, size_t *totalp)
{
    int measured = 0;
    size_t total = 0;
    for (size_t r = 0; r < n; r++) {
        total += shard[r];
        size_t s = slot_of(slot, r);
        if (shard[r] == 0 || !(compute_ms[r] > 0) || !isfinite(compute_ms[r])) continue;
        if (++b->samples[s] == 1) continue; /* a device's first step pays first-use costs: not its speed */
        if (b->looking && b->look_w[s] == 0 && b->ms_per_sample[s] > 0) { /* the device looked at */
            double pred = b->fixed_ms[s] + b->ms_per_sample[s] * (double)shard[r];
            if (compute_ms[r] > CLDP_BALANCE_CHANGED * pred || compute_ms[r] * CLDP_BALANCE_CHANGED < pred) { /* it changed */
                for (size_t i = 0; i < CLDP_BALANCE_POINTS; i++) b->point[s][i].count = 0;
                b->left_out[s] = b->tried[s] = 0;
                b->trials_until = b->steps + 1 + 3 * CLDP_BALANCE_ACQUIRE; /* and it may be tried again */
            }
        }
        double dev = add_point(b, s, (double)shard[r], compute_ms[r]);
        if (!isnan(dev)) { /* the noise, before the clamp; a deviation counts as at most 100% */
            unsigned k = ++b->noise_samples[s];
            double dev2 = fmin(dev * dev, 1.0);
            b->rel_var[s] = k <= CLDP_BALANCE_LEARN ? (b->rel_var[s] * (k - 1) + dev2) / k
                                                    : b->rel_var[s] + CLDP_BALANCE_ALPHA * (dev2 - b->rel_var[s]);
        }
        fit(b, s);
        measured = 1;
    }
    *totalp = total;
    return measured;
}

/* Each device's model for the proposal (fixed ms and ms per sample; a device never measured
 * counts as the average of the others, one a trial left out as infinitely slow) and the two
 * largest relative variances, which set the noise of a comparison. */
static void models(const cldp_balancer *b, const size_t *slot, size_t n, size_t present, double *fixed, double *per,
                   double *var1p, double *var2p)
{
    double known_a = 0, known_b = 0, var1 = 0, var2 = 0;
    size_t nknown = 0;
    for (size_t r = 0; r < n; r++) {
        size_t s = slot_of(slot, r);
        if (b->ms_per_sample[s] > 0) {
            known_a += b->fixed_ms[s];
            known_b += b->ms_per_sample[s];
            nknown++;
        }
        double v = b->rel_var[s]; /* the two noisiest devices set the noise of a comparison */
        if (v > var1) var2 = var1, var1 = v;
        else if (v > var2) var2 = v;
    }
    for (size_t r = 0; r < n; r++) {
        size_t s = slot_of(slot, r);
        int known = b->ms_per_sample[s] > 0;
        fixed[r] = known ? b->fixed_ms[s] : known_a / (double)nknown;
        per[r] = known ? b->ms_per_sample[s] : known_b / (double)nknown;
        if (b->left_out[s] && present > 0) fixed[r] = INFINITY; /* a trial found the step shorter without it */
    }
    *var1p = var1, *var2p = var2;
}

int cldp_balancer_observe(cldp_balancer *b, const size_t *slot, size_t n, const size_t *shard, const double *compute_ms)
{
    size_t total = 0;
    if (!measure(b, slot, n, shard, compute_ms, &total)) return 0;
    b->steps++;
    if (!b->enabled && (b->trial_on || b->looking)) { /* balancing turned off mid-way: the split before it */
        memcpy(b->weight, b->trial_on ? b->trial_w : b->look_w, sizeof b->weight);
        b->trial_on = b->looking = 0;
        return 1;
    }
    if (!b->enabled || total == 0) return 0;
    double step = 0; /* the step as measured: the slowest device with samples */
    size_t present = 0;
    for (size_t r = 0; r < n; r++) {
        if (shard[r] && isfinite(compute_ms[r])) step = fmax(step, compute_ms[r]);
        present += !b->left_out[slot_of(slot, r)];
    }
    if (b->trial_on) return trial_step(b, slot, n, step);
    if (b->looking) { /* the look measured the device: back to the split before it; the models decide */
        memcpy(b->weight, b->look_w, sizeof b->weight);
        b->looking = 0;
        b->nrecent = 0;
        return 1;
    }
    b->recent[b->nrecent++ % CLDP_BALANCE_TRIAL] = step;

    /* The proposal: the best split for this total under the models. */
    double fixed[CLDP_BALANCE_MAX], per[CLDP_BALANCE_MAX], var1 = 0, var2 = 0;
    models(b, slot, n, present, fixed, per, &var1, &var2);
    size_t proposed[CLDP_BALANCE_MAX];
    double then = cldp_balancer_shards(fixed, per, n, total, proposed), now = step_ms(fixed, per, shard, n);
    b->last_gain = now > 0 ? (now - then) / now : 0;
    /* noise alone moves the ratio of two averages by about sqrt(var1 + var2) * sqrt(a / (2 - a))
     * (the moving average's share of the variance) and the predicted gain by about half that */
    double spread = sqrt((var1 + var2) * CLDP_BALANCE_ALPHA / (2.0 - CLDP_BALANCE_ALPHA)) / 2;
    /* the initial search: until a split needs no change (or ACQUIRE steps), re-split at once */
    int learning = b->steps <= CLDP_BALANCE_LEARN || (b->steps <= CLDP_BALANCE_ACQUIRE && !b->settled);
    b->last_threshold = learning ? CLDP_BALANCE_THRESHOLD : fmax(CLDP_BALANCE_THRESHOLD, CLDP_BALANCE_NOISE_Z * spread);
    if (learning && b->resplits > 0 && probe(b, slot, n, shard, total)) {
        b->pending = 0;
        b->nrecent = 0;
        b->resplits++;
        return 1;
    }
    if (b->last_gain <= b->last_threshold) {
        if (b->steps > CLDP_BALANCE_LEARN) b->settled = 1;
        b->pending = 0;
        if (!learning && look_start(b, slot, n, shard, total)) return 1;
        /* the trial belongs to the initial search: later, after a change of speed, the models
         * are off for a while and would call for trials that only cost steps */
        return !learning && b->resplits > 0 && b->steps <= b->trials_until && trial_start(b, slot, n, shard, fixed, per);
    }
    if (++b->pending < (learning ? 1u : CLDP_BALANCE_PATIENCE)) return 0;
    double old[CLDP_BALANCE_MAX], osum = 0;
    for (size_t r = 0; r < n; r++) osum += (old[r] = b->weight[slot_of(slot, r)]);
    for (size_t r = 0; r < n; r++) {
        double share = osum > 0 ? old[r] / osum : 0, w = (double)proposed[r] / (double)total;
        /* a device the proposal leaves out is left out at once: a sliver would cost its whole fixed cost */
        b->weight[slot_of(slot, r)] = learning || !(osum > 0) || w == 0 ? w : share + CLDP_BALANCE_DAMP * (w - share);
    }
    b->pending = 0;
    b->nrecent = 0;
    b->resplits++;
    return 1;
}
