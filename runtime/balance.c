/* balance.c — dividing the batch between devices: split specs, shard sizes from weights, the
 * speed-aware balancer, the memory estimate behind micro-batches, and the test-only slowdown.
 * No OpenCL here: everything is a pure function of its inputs, so the tests can drive it. */
#define _POSIX_C_SOURCE 200809L
#include "balance.h"
#include "replica.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- split spec and shards ------------------------------------------------------------- */

static int word_is(const char *s, const char *word)
{
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(word);
    for (size_t i = 0; i < n; i++, s++)
        if (tolower((unsigned char)*s) != word[i]) return 0;
    while (isspace((unsigned char)*s)) s++;
    return *s == 0;
}

cldp_status cldp_split_parse(const char *spec, size_t n, double *weights, int *automatic)
{
    REQUIRE(weights && automatic && n > 0 && n <= CLDP_BALANCE_MAX, "cldp_split_parse: bad arguments");
    for (size_t r = 0; r < n; r++) weights[r] = 1.0;
    *automatic = 0;
    if (!spec || word_is(spec, "") || word_is(spec, "auto")) {
        *automatic = 1;
        return CLDP_OK;
    }
    if (word_is(spec, "even")) return CLDP_OK;
    const char *p = spec;
    size_t count = 0;
    double sum = 0, tmp[CLDP_BALANCE_MAX];
    for (;;) {
        char *end;
        while (isspace((unsigned char)*p)) p++;
        errno = 0;
        double w = strtod(p, &end);
        if (end == p || errno == ERANGE || !isfinite(w)) {
            size_t len = strcspn(p, ",");
            return cldp_fail(CLDP_ERR_INVALID_ARGUMENT,
                             "split \"%s\": \"%.*s\" is not a number; give one weight >= 0 per device, "
                             "separated by commas (e.g. \"3,1\" for 2 devices), or \"auto\" or \"even\"",
                             spec, (int)(len > 40 ? 40 : len), p);
        }
        if (w < 0)
            return cldp_fail(CLDP_ERR_INVALID_ARGUMENT,
                             "split \"%s\": weight %zu is %g; weights must be >= 0 (a device with weight 0 gets no samples)",
                             spec, count + 1, w);
        if (count < CLDP_BALANCE_MAX) tmp[count] = w;
        count++;
        sum += w;
        p = end;
        while (isspace((unsigned char)*p)) p++;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == 0) break;
        return cldp_fail(CLDP_ERR_INVALID_ARGUMENT,
                         "split \"%s\": unexpected \"%s\" after weight %zu; give one weight >= 0 per device, "
                         "separated by commas (e.g. \"3,1\" for 2 devices)",
                         spec, p, count);
    }
    if (count != n)
        return cldp_fail(CLDP_ERR_INVALID_ARGUMENT,
                         "split \"%s\" gives %zu weight(s) but %zu device(s) are selected; give one weight per device "
                         "in the order of the selection (cldp-devices lists them)",
                         spec, count, n);
    if (!(sum > 0) || !isfinite(sum))
        return cldp_fail(CLDP_ERR_INVALID_ARGUMENT,
                         "split \"%s\": the weights add up to %g; at least one device must have a weight above 0", spec, sum);
    memcpy(weights, tmp, n * sizeof *weights);
    return CLDP_OK;
}

cldp_status cldp_split_check(const double *w, size_t n, const char *who)
{
    REQUIRE(w, "%s: weights are NULL", who);
    REQUIRE(n > 0 && n <= CLDP_BALANCE_MAX, "%s: %zu weights (1 to %d)", who, n, CLDP_BALANCE_MAX);
    double sum = 0;
    for (size_t r = 0; r < n; r++) {
        REQUIRE(isfinite(w[r]) && w[r] >= 0, "%s: weight %zu is %g; weights must be finite and >= 0", who, r, w[r]);
        sum += w[r];
    }
    REQUIRE(sum > 0 && isfinite(sum), "%s: the weights add up to %g; at least one must be above 0", who, sum);
    return CLDP_OK;
}

void cldp_split_shards(const double *w, size_t n, size_t total, size_t *len)
{
    double sum = 0, frac[CLDP_BALANCE_MAX];
    for (size_t r = 0; r < n; r++) sum += w[r];
    size_t given = 0;
    for (size_t r = 0; r < n; r++) {
        double q = (double)total * (w[r] / sum);
        double f = floor(q);
        if (f > (double)total) f = (double)total;
        len[r] = (size_t)f;
        frac[r] = q - f;
        given += len[r];
    }
    /* Rounding of the quotas may overshoot by a sample: take it back from the smallest remainder. */
    while (given > total) {
        size_t best = n;
        for (size_t r = 0; r < n; r++)
            if (len[r] > 0 && (best == n || frac[r] < frac[best])) best = r;
        len[best]--;
        frac[best] += 1.0;
        given--;
    }
    /* The leftover samples (fewer than n) go to the largest remainders; a device that took one
     * drops behind every other, and a zero weight never takes one. */
    while (given < total) {
        size_t best = n;
        for (size_t r = 0; r < n; r++)
            if (w[r] > 0 && (best == n || frac[r] > frac[best])) best = r;
        len[best]++;
        frac[best] -= 1.0;
        given++;
    }
}

/* ---- speed-aware balancer -------------------------------------------------------------- */

void cldp_balancer_init(cldp_balancer *b, size_t slots, const double *weights, int enabled)
{
    memset(b, 0, sizeof *b);
    b->slots = slots > CLDP_BALANCE_MAX ? CLDP_BALANCE_MAX : slots;
    for (size_t s = 0; s < b->slots; s++) b->weight[s] = weights ? weights[s] : 1.0;
    b->enabled = enabled;
}

static size_t slot_of(const size_t *slot, size_t r) { return slot ? slot[r] : r; }

void cldp_balancer_weights(const cldp_balancer *b, const size_t *slot, size_t n, double *w)
{
    for (size_t r = 0; r < n; r++) w[r] = b->weight[slot_of(slot, r)];
}

void cldp_balancer_set(cldp_balancer *b, const size_t *slot, size_t n, const double *w)
{
    for (size_t r = 0; r < n; r++) b->weight[slot_of(slot, r)] = w[r];
    b->pending = 0;
}

/* Predicted time of a step: the slowest device's ms per sample times its shard. */
static double predicted_ms(const double *ms_per_sample, const size_t *shard, size_t n)
{
    double t = 0;
    for (size_t r = 0; r < n; r++) t = fmax(t, ms_per_sample[r] * (double)shard[r]);
    return t;
}

int cldp_balancer_observe(cldp_balancer *b, const size_t *slot, size_t n, const size_t *shard, const double *compute_ms)
{
    int measured = 0;
    size_t total = 0;
    for (size_t r = 0; r < n; r++) {
        total += shard[r];
        size_t s = slot_of(slot, r);
        if (shard[r] == 0 || !(compute_ms[r] > 0) || !isfinite(compute_ms[r])) continue;
        double m = compute_ms[r] / (double)shard[r], *est = &b->ms_per_sample[s];
        unsigned k = b->samples[s];
        if (k > 0) { /* the noise, before the clamp; a deviation counts as at most 100% */
            double dev = (m - *est) / *est, dev2 = fmin(dev * dev, 1.0);
            b->rel_var[s] = k < CLDP_BALANCE_LEARN ? (b->rel_var[s] * (k - 1) + dev2) / k
                                                   : b->rel_var[s] + CLDP_BALANCE_ALPHA * (dev2 - b->rel_var[s]);
        }
        if (k < CLDP_BALANCE_LEARN) {
            *est = (*est * k + m) / (k + 1);
        } else {
            m = fmin(fmax(m, *est / CLDP_BALANCE_CLAMP), *est * CLDP_BALANCE_CLAMP);
            *est += CLDP_BALANCE_ALPHA * (m - *est);
        }
        b->samples[s]++;
        measured = 1;
    }
    if (!measured) return 0;
    b->steps++;
    if (!b->enabled || total == 0) return 0;

    /* The proposal: weights 1 / (ms per sample); devices never measured count as average. */
    double est[CLDP_BALANCE_MAX], w[CLDP_BALANCE_MAX], known = 0, wsum = 0, var1 = 0, var2 = 0;
    size_t nknown = 0;
    for (size_t r = 0; r < n; r++) {
        size_t s = slot_of(slot, r);
        if (b->ms_per_sample[s] > 0) {
            known += b->ms_per_sample[s];
            nknown++;
        }
        double v = b->rel_var[s]; /* the two noisiest devices set the noise of a comparison */
        if (v > var1) var2 = var1, var1 = v;
        else if (v > var2) var2 = v;
    }
    for (size_t r = 0; r < n; r++) {
        double e = b->ms_per_sample[slot_of(slot, r)];
        est[r] = e > 0 ? e : known / (double)nknown;
        w[r] = 1.0 / est[r];
        wsum += w[r];
    }
    for (size_t r = 0; r < n; r++) w[r] /= wsum;
    size_t proposed[CLDP_BALANCE_MAX];
    cldp_split_shards(w, n, total, proposed);
    double now = predicted_ms(est, shard, n), then = predicted_ms(est, proposed, n);
    b->last_gain = now > 0 ? (now - then) / now : 0;
    /* noise alone moves the ratio of two averages by about sqrt(var1 + var2) * sqrt(a / (2 - a))
     * (the moving average's share of the variance) and the predicted gain by about half that */
    double spread = sqrt((var1 + var2) * CLDP_BALANCE_ALPHA / (2.0 - CLDP_BALANCE_ALPHA)) / 2;
    /* the initial search: until a split needs no change (or ACQUIRE steps), re-split at once */
    int learning = b->steps <= CLDP_BALANCE_LEARN || (b->steps <= CLDP_BALANCE_ACQUIRE && !b->settled);
    b->last_threshold = learning ? CLDP_BALANCE_THRESHOLD : fmax(CLDP_BALANCE_THRESHOLD, CLDP_BALANCE_NOISE_Z * spread);
    if (b->last_gain <= b->last_threshold) {
        if (b->steps > CLDP_BALANCE_LEARN) b->settled = 1;
        b->pending = 0;
        return 0;
    }
    if (++b->pending < (learning ? 1u : CLDP_BALANCE_PATIENCE)) return 0;
    double old[CLDP_BALANCE_MAX], osum = 0;
    for (size_t r = 0; r < n; r++) osum += (old[r] = b->weight[slot_of(slot, r)]);
    for (size_t r = 0; r < n; r++) {
        double share = osum > 0 ? old[r] / osum : 0;
        b->weight[slot_of(slot, r)] = learning || !(osum > 0) ? w[r] : share + CLDP_BALANCE_DAMP * (w[r] - share);
    }
    b->pending = 0;
    b->resplits++;
    return 1;
}

/* ---- memory ---------------------------------------------------------------------------- */

static uint64_t round_up(uint64_t x, uint64_t to) { return (x + to - 1) / to * to; }

/* CLBlast's indirect GEMM pads each matrix to its work-group tiles (at most 128 on any tuning we
 * know) and may copy all three into its scratch; direct GEMM needs none. Assume the worst. */
static uint64_t gemm_scratch(uint64_t m, uint64_t n, uint64_t k)
{
    m = round_up(m, 128);
    n = round_up(n, 128);
    k = round_up(k, 128);
    return (m * k + k * n + m * n) * sizeof(float);
}

void cldp_mem_estimate(const cldp_model *m, size_t rows, cldp_mem_need *need)
{
    memset(need, 0, sizeof *need);
    uint64_t np = m->nparams, width = cldp_model_max_width(m);
    need->params = need->grads = np * sizeof(float);
    need->activations = (uint64_t)cldp_replica_bytes(m, rows) - need->params - need->grads;
    for (size_t l = 0; l < m->nlayers; l++) {
        uint64_t in = m->layers[l].in, out = m->layers[l].out, s[3];
        s[0] = gemm_scratch(rows, out, in); /* forward X·Wᵀ */
        s[1] = gemm_scratch(out, in, rows); /* dW = dYᵀ·X */
        s[2] = gemm_scratch(rows, in, out); /* dX = dY·W */
        for (int i = 0; i < 3; i++) need->scratch = s[i] > need->scratch ? s[i] : need->scratch;
    }
    /* drivers may stage a transfer through pinned memory: the gradient read, one batch's input */
    need->staging = (np + (uint64_t)rows * (m->inputs + 1)) * sizeof(float);
    need->total = need->params + need->grads + need->activations + need->scratch + need->staging;
    uint64_t big = need->params;
    uint64_t rowbuf = (uint64_t)rows * width * sizeof(float);
    if (rowbuf > big) big = rowbuf;
    if (need->scratch > big) big = need->scratch;
    need->largest_buffer = big;
}

void cldp_mem_estimate_forward(const cldp_model *m, size_t rows, cldp_mem_need *need)
{
    memset(need, 0, sizeof *need);
    uint64_t outs = 0, big = (uint64_t)rows * m->inputs;
    need->params = m->nparams * sizeof(float);
    for (size_t l = 0; l < m->nlayers; l++) {
        uint64_t in = m->layers[l].in, out = m->layers[l].out, s = gemm_scratch(rows, out, in);
        outs += out;
        need->scratch = s > need->scratch ? s : need->scratch;
        big = (uint64_t)rows * out > big ? (uint64_t)rows * out : big;
    }
    /* the input batch, every layer's output, the probabilities */
    need->activations = (uint64_t)rows * (m->inputs + outs + cldp_model_outputs(m)) * sizeof(float);
    need->staging = (uint64_t)rows * (m->inputs + cldp_model_outputs(m)) * sizeof(float);
    need->total = need->params + need->activations + need->scratch + need->staging;
    big *= sizeof(float);
    if (need->params > big) big = need->params;
    need->largest_buffer = need->scratch > big ? need->scratch : big;
}

uint64_t cldp_mem_usable(uint64_t global_mem, uint64_t cap)
{
    uint64_t usable = global_mem ? global_mem - global_mem / 16 : UINT64_MAX; /* 0: not reported */
    return cap && cap < usable ? cap : usable;
}

static int fits(const cldp_model *m, size_t rows, uint64_t usable, uint64_t max_alloc, int forward)
{
    cldp_mem_need need;
    if (forward) cldp_mem_estimate_forward(m, rows, &need);
    else cldp_mem_estimate(m, rows, &need);
    return need.total <= usable && (max_alloc == 0 || need.largest_buffer <= max_alloc);
}

static cldp_status mem_plan(const cldp_model *m, size_t batch, const char *dev_name, uint64_t global_mem,
                            uint64_t max_alloc, uint64_t cap, const char *others, size_t *rows, int forward)
{
    REQUIRE(m && dev_name && others && rows && batch > 0, "cldp_mem_plan: bad arguments");
    uint64_t usable = cldp_mem_usable(global_mem, cap);
    char how[160];
    if (others[0])
        snprintf(how, sizeof how, "leave this device out with --devices or CLDP_DEVICES (e.g. CLDP_DEVICES=%s), or use a smaller model", others);
    else
        snprintf(how, sizeof how, "it is the only device selected: use a smaller model, or a device with more memory");
    cldp_mem_need one;
    if (forward) cldp_mem_estimate_forward(m, 1, &one);
    else cldp_mem_estimate(m, 1, &one);
    if (max_alloc && one.params > max_alloc)
        return cldp_fail(CLDP_ERR_DEVICE_MEMORY,
                         "%s: the model's %zu parameters need %llu bytes in one buffer but the device allows at most %llu "
                         "(CL_DEVICE_MAX_MEM_ALLOC_SIZE); %s",
                         dev_name, m->nparams, (unsigned long long)one.params, (unsigned long long)max_alloc, how);
    if (!fits(m, 1, usable, max_alloc, forward)) {
        char has[160];
        if (cap && cap < cldp_mem_usable(global_mem, 0))
            snprintf(has, sizeof has, "capped by device_memory_cap / CLDP_DEVICE_MEMORY_CAP; the device reports %llu",
                     (unsigned long long)global_mem);
        else
            snprintf(has, sizeof has, "CL_DEVICE_GLOBAL_MEM_SIZE %llu less a sixteenth for the driver", (unsigned long long)global_mem);
        if (one.total <= usable) /* the memory is there but a single buffer is too large */
            return cldp_fail(CLDP_ERR_DEVICE_MEMORY,
                             "%s: one sample needs a %llu-byte buffer but the device allows at most %llu in one "
                             "(CL_DEVICE_MAX_MEM_ALLOC_SIZE); %s",
                             dev_name, (unsigned long long)one.largest_buffer, (unsigned long long)max_alloc, how);
        return cldp_fail(CLDP_ERR_DEVICE_MEMORY,
                         "%s: the model does not fit: it needs %llu bytes (parameters %llu, gradients %llu, "
                         "activations of one sample %llu, CLBlast scratch %llu, staging %llu) but the device has "
                         "%llu bytes usable (%s); %s",
                         dev_name, (unsigned long long)one.total, (unsigned long long)one.params,
                         (unsigned long long)one.grads, (unsigned long long)one.activations,
                         (unsigned long long)one.scratch, (unsigned long long)one.staging,
                         (unsigned long long)usable, has, how);
    }
    /* the need grows with the rows: the largest that fits, by bisection */
    size_t lo = 1, hi = batch;
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        if (fits(m, mid, usable, max_alloc, forward)) lo = mid;
        else hi = mid - 1;
    }
    *rows = lo;
    return CLDP_OK;
}

cldp_status cldp_mem_plan(const cldp_model *m, size_t batch, const char *dev_name, uint64_t global_mem,
                          uint64_t max_alloc, uint64_t cap, const char *others, size_t *rows)
{
    return mem_plan(m, batch, dev_name, global_mem, max_alloc, cap, others, rows, 0);
}

cldp_status cldp_mem_plan_forward(const cldp_model *m, size_t batch, const char *dev_name, uint64_t global_mem,
                                  uint64_t max_alloc, uint64_t cap, const char *others, size_t *rows)
{
    return mem_plan(m, batch, dev_name, global_mem, max_alloc, cap, others, rows, 1);
}

cldp_status cldp_parse_bytes(const char *s, const char *what, uint64_t *out)
{
    REQUIRE(s && what && out, "cldp_parse_bytes: bad arguments");
    char *end;
    errno = 0;
    while (isspace((unsigned char)*s)) s++;
    double v = *s == '-' ? -1 : strtod(s, &end);
    if (*s == '-' || end == s || errno == ERANGE || !isfinite(v) || v < 0)
        return cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "%s \"%s\" is not a byte count; give bytes, or a number with K, M or G (e.g. 64M)", what, s);
    double mul = 1;
    while (isspace((unsigned char)*end)) end++;
    switch (toupper((unsigned char)*end)) {
    case 'K': mul = 1024.0; end++; break;
    case 'M': mul = 1024.0 * 1024; end++; break;
    case 'G': mul = 1024.0 * 1024 * 1024; end++; break;
    case 'T': mul = 1024.0 * 1024 * 1024 * 1024; end++; break;
    default: break;
    }
    if (mul > 1 && (*end == 'i' || *end == 'I')) end++;
    if (*end == 'b' || *end == 'B') end++;
    while (isspace((unsigned char)*end)) end++;
    if (*end || v * mul >= 18446744073709551616.0)
        return cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "%s \"%s\" is not a byte count; give bytes, or a number with K, M or G (e.g. 64M)", what, s);
    *out = (uint64_t)(v * mul);
    return CLDP_OK;
}

/* ---- test-only slowdown ---------------------------------------------------------------- */

cldp_status cldp_slowdown_parse(const char *spec, size_t n, double *factor)
{
    REQUIRE(factor, "cldp_slowdown_parse: factor is NULL");
    for (size_t r = 0; r < n; r++) factor[r] = 1.0;
    if (!spec) return CLDP_OK;
    const char *p = spec;
    while (isspace((unsigned char)*p)) p++;
    while (*p) {
        char *end;
        errno = 0;
        unsigned long rank = isdigit((unsigned char)*p) ? strtoul(p, &end, 10) : (unsigned long)-1;
        if (rank == (unsigned long)-1 || *end != ':')
            return cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "CLDP_TEST_SLOWDOWN \"%s\": expected RANK:FACTOR[,RANK:FACTOR...], e.g. \"1:3\"", spec);
        const char *f = end + 1;
        double v = strtod(f, &end);
        if (end == f || !isfinite(v) || v < 1 || v > 1000)
            return cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "CLDP_TEST_SLOWDOWN \"%s\": the factor of rank %lu must be a number from 1 to 1000", spec, rank);
        if (rank >= n)
            return cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "CLDP_TEST_SLOWDOWN \"%s\": rank %lu, but %zu device(s) are selected", spec, rank, n);
        factor[rank] = v;
        p = end;
        while (isspace((unsigned char)*p)) p++;
        if (*p == ',') p++;
        else if (*p) return cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "CLDP_TEST_SLOWDOWN \"%s\": unexpected \"%s\"", spec, p);
        while (isspace((unsigned char)*p)) p++;
    }
    return CLDP_OK;
}
