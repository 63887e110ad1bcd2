/* test_balance — the host logic of mixed-device training, without a device: the split spec
 * parser (good and bad input), shard sizes from weights (exact sums, proportional, deterministic),
 * the speed-aware balancer on synthetic timings (converges within 20 steps, never oscillates by
 * more than 5% of the batch, hysteresis holds against noise and outliers, follows a change of
 * speed, survives a dropped device), the fixed-cost split (the best split of modelled devices
 * against an exhaustive search; a device whose fixed cost only lengthens the step gets no
 * samples; under contention between devices the measured trial leaves it out; a look finds a
 * left-out device that got faster), the slowdown parser, de-duplication of devices seen through two platforms, and the
 * string facts of the real devices (run on "basic pthread": the pthread device's long version). */
#undef NDEBUG
#include "balance.h"
#include "testspec.h"
#include "devices.h"
#include "testutil.h"

/* ---- split spec ------------------------------------------------------------------------ */

static void test_parse(void)
{
    double w[4];
    int autom;
    CHECK_OK(cldp_split_parse("3,1", 2, w, &autom));
    CHECK(!autom && w[0] == 3 && w[1] == 1);
    CHECK_OK(cldp_split_parse(" 0.75 , 0.25 ", 2, w, &autom));
    CHECK(!autom && w[0] == 0.75 && w[1] == 0.25);
    CHECK_OK(cldp_split_parse("1,0", 2, w, &autom));
    CHECK(!autom && w[0] == 1 && w[1] == 0);
    CHECK_OK(cldp_split_parse("5", 1, w, &autom));
    CHECK(!autom && w[0] == 5);
    CHECK_OK(cldp_split_parse(NULL, 3, w, &autom));
    CHECK(autom && w[0] == 1 && w[1] == 1 && w[2] == 1);
    CHECK_OK(cldp_split_parse("", 2, w, &autom));
    CHECK(autom);
    CHECK_OK(cldp_split_parse(" AUTO ", 2, w, &autom));
    CHECK(autom);
    CHECK_OK(cldp_split_parse("even", 2, w, &autom));
    CHECK(!autom && w[0] == 1 && w[1] == 1);

    /* bad input: each refused with the spec and what is expected in the message */
    static const struct { const char *spec; const char *says; } bad[] = {
        {"-1,2", ">= 0"},          {"3,-0.5", ">= 0"},       {"0,0", "add up to 0"},
        {"1,2,3", "3 weight(s)"},  {"7", "1 weight(s)"},     {"abc", "not a number"},
        {"1,,2", "not a number"},  {"1;2", "unexpected"},    {"nan,1", "not a number"},
        {"inf,1", "not a number"}, {"1e999,1", "not a number"}, {"1,2,", "not a number"},
        {"3 1", "unexpected"},     {"0x", "unexpected"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_STATUS(cldp_split_parse(bad[i].spec, 2, w, &autom), CLDP_ERR_INVALID_ARGUMENT);
        const char *msg = cldp_last_error();
        if (!strstr(msg, bad[i].spec) || !strstr(msg, bad[i].says)) {
            fprintf(stderr, "FAIL split \"%s\": message \"%s\" should quote the spec and say \"%s\"\n", bad[i].spec, msg, bad[i].says);
            test_failures++;
        }
    }
    printf("  split parser: e.g. %s\n", (cldp_split_parse("0,0", 2, w, &autom), cldp_last_error()));
    double good[2] = {1, 0}, neg[2] = {1, -1}, zero[2] = {0, 0}, nan2[2] = {NAN, 1};
    CHECK_OK(cldp_split_check(good, 2, "t"));
    /* the spec and the API count weights the same way: the second weight is "weight 2 (rank 1)" */
    CHECK_STATUS(cldp_split_parse("1,-1", 2, w, &autom), CLDP_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cldp_last_error(), "weight 2 (rank 1)") != NULL);
    CHECK_STATUS(cldp_split_parse("1,2;", 2, w, &autom), CLDP_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cldp_last_error(), "after weight 2 (rank 1)") != NULL);
    CHECK_STATUS(cldp_split_check(neg, 2, "t"), CLDP_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cldp_last_error(), "weight 2 (rank 1)") != NULL);
    CHECK_STATUS(cldp_split_check(zero, 2, "t"), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_split_check(nan2, 2, "t"), CLDP_ERR_INVALID_ARGUMENT);
}

/* ---- shards ---------------------------------------------------------------------------- */

static void expect_shards(const double *w, size_t n, size_t total, const size_t *want)
{
    size_t got[8];
    cldp_split_shards(w, n, total, got);
    for (size_t r = 0; r < n; r++)
        if (got[r] != want[r]) {
            fprintf(stderr, "FAIL shards of %zu, rank %zu: got %zu, want %zu\n", total, r, got[r], want[r]);
            test_failures++;
        }
}

static void test_shards(void)
{
    expect_shards((double[]){3, 1}, 2, 128, (size_t[]){96, 32});
    expect_shards((double[]){5, 1}, 2, 50, (size_t[]){42, 8});       /* 41.67 + 8.33 */
    expect_shards((double[]){1, 1, 1}, 3, 2, (size_t[]){1, 1, 0});   /* ties go to the lower rank */
    expect_shards((double[]){1, 1, 1}, 3, 1, (size_t[]){1, 0, 0});
    expect_shards((double[]){1, 0}, 2, 7, (size_t[]){7, 0});
    expect_shards((double[]){0, 2}, 2, 1, (size_t[]){0, 1});
    expect_shards((double[]){1, 1e-9, 1}, 3, 3, (size_t[]){2, 0, 1});
    expect_shards((double[]){0.1, 0.2, 0.7}, 3, 10, (size_t[]){1, 2, 7}); /* inexact in binary */

    /* random weights (some zero) and totals: exact sum, within one of the quota, deterministic */
    size_t worst_total = 0;
    double worst_dev = 0;
    for (int k = 0; k < 20000; k++) {
        size_t n = 1 + test_rand() % 8, total = 1 + test_rand() % (k % 2 ? 5000 : 20);
        double w[8], sum = 0;
        for (size_t r = 0; r < n; r++) {
            w[r] = test_rand() % 5 == 0 ? 0 : test_uniform(1e-3, 10);
            sum += w[r];
        }
        if (sum == 0) w[test_rand() % n] = sum = 1;
        size_t a[8], b[8], got = 0;
        cldp_split_shards(w, n, total, a);
        cldp_split_shards(w, n, total, b);
        for (size_t r = 0; r < n; r++) {
            got += a[r];
            double dev = fabs((double)a[r] - (double)total * w[r] / sum);
            if (dev > worst_dev) worst_dev = dev, worst_total = total;
            CHECK(w[r] > 0 || a[r] == 0);
            CHECK(a[r] == b[r]);
        }
        CHECK(got == total);
    }
    printf("  shards: 20000 random splits sum exactly; worst distance from the quota %.3f samples (total %zu)\n", worst_dev, worst_total);
    CHECK(worst_dev < 1.0);
}

/* ---- balancer on synthetic timings ----------------------------------------------------- */

/* A device's compute: fixed overhead c (launches, reading the gradient) plus a per sample,
 * times uniform noise in [1 - noise, 1 + noise). */
typedef struct sim {
    size_t n;
    double c[4], a[4];
    double noise;
    double contend; /* each device is this much slower for every other device at work (shared cores) */
} sim;

static double sim_ms(const sim *s, size_t r, size_t shard, double mult)
{
    return (s->c[r] + s->a[r] * (double)shard) * mult * (1 + s->noise * test_uniform(-1, 1));
}

/* Step time without noise (the slowest device with work). */
static double true_ms(const sim *s, const size_t *shard)
{
    double t = 0;
    for (size_t r = 0; r < s->n; r++)
        if (shard[r]) t = fmax(t, s->c[r] + s->a[r] * (double)shard[r]);
    return t;
}

/* The best integer split's step time, by exhaustive search (n <= 3). */
static double optimal_ms(const sim *s, size_t total)
{
    double best = INFINITY;
    size_t sh[3] = {0, 0, 0};
    for (sh[0] = 0; sh[0] <= total; sh[0]++) {
        if (s->n == 2) {
            sh[1] = total - sh[0];
            best = fmin(best, true_ms(s, sh));
            continue;
        }
        for (sh[1] = 0; sh[0] + sh[1] <= total; sh[1]++) {
            sh[2] = total - sh[0] - sh[1];
            best = fmin(best, true_ms(s, sh));
        }
    }
    return best;
}

typedef struct run_result {
    int converged_at;       /* first step whose split is within 10% of the optimum and stays within 15% */
    double max_swing;       /* largest range of a device's share of the batch after `settle` */
    unsigned resplits;
    unsigned looks;         /* steps that gave a left-out device a few samples to measure it */
} run_result;

/* Runs `steps` steps with batch `total`; after step `change_at` (if >= 0) device `slow` computes
 * `factor` times slower. Convergence and swing are judged from `judge_from` on. */
static run_result simulate(sim *s, cldp_balancer *b, size_t total, int steps, int judge_from, int change_at, size_t slow,
                           double factor, const size_t *slot, int verbose)
{
    run_result res = {-1, 0, 0, 0};
    double lo[4], hi[4];
    for (size_t r = 0; r < s->n; r++) lo[r] = 1, hi[r] = 0;
    double opt = optimal_ms(s, total), opt_after = opt;
    int within_since = -1;
    for (int k = 0; k < steps; k++) {
        if (k == change_at) {
            s->a[slow] *= factor;
            s->c[slow] *= factor;
            opt_after = optimal_ms(s, total);
            within_since = -1;
        }
        size_t shard[4];
        double ms[4];
        int look = b->looking; /* a step that measures a device left out: not the split, not judged */
        cldp_balancer_split(b, slot, s->n, total, shard);
        double ratio = true_ms(s, shard) / (k >= change_at && change_at >= 0 ? opt_after : opt);
        res.looks += look;
        if (ratio <= 1.10 && within_since < 0 && !look) within_since = k;
        if (ratio > 1.15 && !look) within_since = -1;
        if (k >= judge_from && !look)
            for (size_t r = 0; r < s->n; r++) {
                double share = (double)shard[r] / (double)total;
                lo[r] = fmin(lo[r], share);
                hi[r] = fmax(hi[r], share);
            }
        size_t busy = 0;
        for (size_t r = 0; r < s->n; r++) busy += shard[r] > 0;
        for (size_t r = 0; r < s->n; r++) ms[r] = shard[r] ? sim_ms(s, r, shard[r], 1 + s->contend * (double)(busy - 1)) : 0.01;
        cldp_balancer_observe(b, slot, s->n, shard, ms);
        if (verbose > 1 && s->n == 2)
            printf("      step %3d: shards %zu/%zu, %.3f; model %.3f+%.4f / %.3f+%.4f, gain %.3f threshold %.3f\n", k, shard[0], shard[1],
                   ratio, b->fixed_ms[0], b->ms_per_sample[0], b->fixed_ms[1], b->ms_per_sample[1], b->last_gain, b->last_threshold);
        else if (verbose && s->n == 2 && (k < 6 || k % 40 == 0))
            printf("      step %3d: shards %zu/%zu, predicted/optimal step time %.3f\n", k, shard[0], shard[1], ratio);
    }
    res.converged_at = within_since;
    for (size_t r = 0; r < s->n; r++) res.max_swing = fmax(res.max_swing, hi[r] - lo[r]);
    res.resplits = b->resplits;
    return res;
}

static void test_balancer(void)
{
    cldp_balancer b;

    /* one device 3x slower than the other, +-10% noise, batch 256, from an even split */
    sim s1 = {2, {0.5, 0.5}, {0.01, 0.03}, 0.10, 0};
    cldp_balancer_init(&b, 2, NULL, 1);
    run_result r1 = simulate(&s1, &b, 256, 120, 20, -1, 0, 1, NULL, 1);
    double w[4];
    cldp_balancer_weights(&b, NULL, 2, w);
    printf("  balancer, 3x slower device, 10%% noise: converged at step %d, %u re-splits, largest swing after step 20 %.1f%% "
           "of the batch, final weights %.3f/%.3f\n",
           r1.converged_at, r1.resplits, 100 * r1.max_swing, w[0] / (w[0] + w[1]), w[1] / (w[0] + w[1]));
    CHECK(r1.converged_at >= 0 && r1.converged_at <= 20);
    CHECK(r1.max_swing <= 0.05);
    CHECK(w[0] > w[1]);

    /* three devices 1x / 2x / 4x, batch 240 */
    sim s2 = {3, {0.3, 0.3, 0.3}, {0.01, 0.02, 0.04}, 0.10, 0};
    cldp_balancer_init(&b, 3, NULL, 1);
    run_result r2 = simulate(&s2, &b, 240, 120, 20, -1, 0, 1, NULL, 0);
    printf("  balancer, devices 1x/2x/4x: converged at step %d, %u re-splits, largest swing after step 20 %.1f%%, trials %d%d%d\n",
           r2.converged_at, r2.resplits, 100 * r2.max_swing, b.tried[0], b.tried[1], b.tried[2]);
    CHECK(r2.converged_at >= 0 && r2.converged_at <= 20);
    CHECK(r2.max_swing <= 0.05);

    /* hysteresis: equal devices with +-4% noise never re-split */
    sim s3 = {2, {0.5, 0.5}, {0.02, 0.02}, 0.04, 0};
    cldp_balancer_init(&b, 2, NULL, 1);
    run_result r3 = simulate(&s3, &b, 256, 300, 0, -1, 0, 1, NULL, 0);
    printf("  balancer, equal devices, 4%% noise: %u re-splits in 300 steps, swing %.1f%%\n", r3.resplits, 100 * r3.max_swing);
    CHECK(r3.resplits == 0 && r3.max_swing == 0);

    /* hysteresis: one step where a device takes 2x (or 10x) is a hiccup, not a re-split */
    for (int f = 0; f < 2; f++) {
        double mult = f ? 10 : 2;
        cldp_balancer_init(&b, 2, NULL, 1);
        size_t shard[2] = {128, 128};
        for (int k = 0; k < 40; k++) {
            double ms[2] = {0.5 + 0.02 * 128, 0.5 + 0.02 * 128};
            if (k == 20) ms[0] *= mult;
            CHECK(cldp_balancer_observe(&b, NULL, 2, shard, ms) == 0);
        }
        printf("  balancer, one %gx outlier: %u re-splits\n", mult, b.resplits);
        CHECK(b.resplits == 0);
    }

    /* a device that becomes 3x slower mid-run: followed within 30 steps (the moving average, the
     * patience and the damping that keep noise out also slow this down), then holds */
    sim s4 = {2, {0.5, 0.5}, {0.02, 0.02}, 0.05, 0};
    cldp_balancer_init(&b, 2, NULL, 1);
    run_result r4 = simulate(&s4, &b, 256, 160, 80, 40, 1, 3.0, NULL, 0);
    printf("  balancer, device 1 3x slower from step 40: converged at step %d, swing after step 80 %.1f%%, trials %d%d\n",
           r4.converged_at, 100 * r4.max_swing, b.tried[0], b.tried[1]);
    CHECK(r4.converged_at >= 40 && r4.converged_at <= 70);
    CHECK(r4.max_swing <= 0.05);

    /* a device that starts with no samples (split "1,0") is measured and given work */
    sim s5 = {2, {0.5, 0.5}, {0.02, 0.02}, 0.05, 0};
    cldp_balancer_init(&b, 2, (double[]){1, 0}, 1);
    run_result r5 = simulate(&s5, &b, 256, 40, 20, -1, 0, 1, NULL, 0);
    cldp_balancer_weights(&b, NULL, 2, w);
    printf("  balancer, from split 1,0 on equal devices: weights %.3f/%.3f after 40 steps\n", w[0] / (w[0] + w[1]), w[1] / (w[0] + w[1]));
    CHECK(r5.converged_at >= 0 && r5.converged_at <= 20 && fabs(w[0] / (w[0] + w[1]) - 0.5) < 0.06);

    /* disabled: measures, never moves */
    cldp_balancer_init(&b, 2, (double[]){1, 1}, 0);
    sim s6 = {2, {0.5, 0.5}, {0.01, 0.03}, 0.05, 0};
    run_result r6 = simulate(&s6, &b, 256, 30, 0, -1, 0, 1, NULL, 0);
    CHECK(r6.resplits == 0 && r6.max_swing == 0 && b.ms_per_sample[1] > 2 * b.ms_per_sample[0]);

    /* a dropped device: slots {0, 2} of three remain; the split follows their speeds */
    sim s7 = {3, {0.5, 0.5, 0.5}, {0.01, 0.01, 0.03}, 0.05, 0};
    cldp_balancer_init(&b, 3, NULL, 1);
    simulate(&s7, &b, 256, 30, 30, -1, 0, 1, NULL, 0);
    sim s7b = {2, {0.5, 0.5}, {0.01, 0.03}, 0.05, 0};
    size_t slot[2] = {0, 2};
    run_result r7 = simulate(&s7b, &b, 256, 40, 20, -1, 0, 1, slot, 0);
    cldp_balancer_weights(&b, slot, 2, w);
    printf("  balancer, after dropping the middle device: weights %.3f/%.3f, swing %.1f%%\n", w[0] / (w[0] + w[1]),
           w[1] / (w[0] + w[1]), 100 * r7.max_swing);
    CHECK(w[0] > 2 * w[1] && r7.max_swing <= 0.05);

    /* set: replaces the weights of the devices named, keeps the measurements */
    double ms_before = b.ms_per_sample[2];
    cldp_balancer_set(&b, slot, 2, (double[]){1, 1});
    cldp_balancer_weights(&b, slot, 2, w);
    CHECK(w[0] == 1 && w[1] == 1 && b.ms_per_sample[2] == ms_before);
}

/* ---- fixed costs ----------------------------------------------------------------------- */

/* cldp_balancer_shards against an exhaustive search: the sum is exact, and the predicted step is
 * the optimum's to within one sample of the slowest device (the rounding to whole samples). */
static void test_best_split(void)
{
    size_t sh[3];
    double t = cldp_balancer_shards((double[]){0, 0}, (double[]){1, 1}, 2, 10, sh);
    CHECK(sh[0] == 5 && sh[1] == 5 && t == 5);
    /* device 1's fixed cost (4 ms) is longer than device 0 takes for the whole batch: left out */
    t = cldp_balancer_shards((double[]){0.3, 4.0}, (double[]){0.026, 0.013}, 2, 125, sh);
    CHECK(sh[0] == 125 && sh[1] == 0 && fabs(t - (0.3 + 0.026 * 125)) < 1e-12);
    /* the same device on a batch large enough to pay for its fixed cost takes most of it */
    t = cldp_balancer_shards((double[]){0.3, 4.0}, (double[]){0.026, 0.013}, 2, 4096, sh);
    CHECK(sh[1] > sh[0] && sh[0] + sh[1] == 4096);
    CHECK(cldp_balancer_shards((double[]){1, 1}, (double[]){1, 1}, 2, 0, sh) == 0 && sh[0] == 0 && sh[1] == 0);
    cldp_balancer_shards((double[]){0.5}, (double[]){0.1}, 1, 7, sh);
    CHECK(sh[0] == 7);

    double worst = 0;
    for (int k = 0; k < 3000; k++) {
        sim s = {2 + test_rand() % 2, {0}, {0}, 0, 0};
        for (size_t r = 0; r < s.n; r++) {
            s.c[r] = test_rand() % 3 ? test_uniform(0, 5) : 0;
            s.a[r] = test_uniform(0.001, 0.1);
        }
        size_t total = 1 + test_rand() % (s.n == 2 ? 400 : 120), sum = 0;
        double got = cldp_balancer_shards(s.c, s.a, s.n, total, sh), slack = 0;
        for (size_t r = 0; r < s.n; r++) sum += sh[r], slack = fmax(slack, s.a[r]);
        double opt = optimal_ms(&s, total);
        CHECK(sum == total && fabs(got - true_ms(&s, sh)) < 1e-9);
        CHECK(got <= opt + slack + 1e-9);
        worst = fmax(worst, (got - opt) / opt);
    }
    printf("  best split: 3000 random 2-3 device models, worst step %.2f%% above the exhaustive optimum\n", 100 * worst);
}

/* Devices whose fixed cost per step matters, with +-10% noise: a device that only lengthens the
 * step ends with no samples (the basic+pthread pair of PoCL: the pthread device takes ~3.5 ms
 * whatever its shard), and a device whose fixed cost the batch pays for keeps its share. */
/* Two devices that slow each other down (PoCL's devices share the machine's cores), one of them
 * mostly fixed cost: every model is fitted under the contention, so only the measured trial
 * without that device finds the step shorter alone; it is then left out for good. */
static void test_contention(void)
{
    sim s = {2, {0.3, 2.5}, {0.026, 0.02}, 0.10, 0.8};
    cldp_balancer b;
    cldp_balancer_init(&b, 2, NULL, 1);
    simulate(&s, &b, 128, 60, 60, -1, 0, 1, NULL, 0);
    size_t shard[2];
    cldp_balancer_split(&b, NULL, 2, 128, shard);
    double alone = s.c[0] + s.a[0] * 128, both = 0;
    size_t best = 0;
    for (size_t k = 1; k < 128; k++) { /* the best split that keeps both, with the contention */
        double t = fmax(s.c[0] + s.a[0] * (double)k, s.c[1] + s.a[1] * (double)(128 - k)) * (1 + s.contend);
        if (!best || t < both) both = t, best = k;
    }
    printf("  contention: device 1 left out by its trial (shards %zu/%zu, %s); alone %.2f ms vs the best split with "
           "both %zu/%zu %.2f ms\n", shard[0], shard[1], b.left_out[1] ? "left out" : "kept", alone, best, 128 - best, both);
    CHECK(shard[0] == 128 && shard[1] == 0 && b.left_out[1] && b.tried[1] && !b.trial_on);
    CHECK(alone < both);

    /* a device left out (after the initial search and its trials, 40 steps) that then becomes 10x
     * faster: a look finds it out, and within 50 steps it takes most of the batch */
    sim f = {2, {0.3, 4.0}, {0.026, 0.013}, 0.10, 0};
    cldp_balancer_init(&b, 2, NULL, 1);
    simulate(&f, &b, 125, 40, 40, -1, 0, 1, NULL, 0);
    double w[2];
    cldp_balancer_weights(&b, NULL, 2, w);
    CHECK(w[1] == 0 && !b.trial_on && !b.looking);
    f.c[1] *= 0.1, f.a[1] *= 0.1;
    run_result rf = simulate(&f, &b, 125, 60, 60, -1, 0, 1, NULL, 0);
    cldp_balancer_split(&b, NULL, 2, 125, shard);
    printf("  a left-out device 10x faster from step 40: back at step %d, shards %zu/%zu, %u look(s)\n", 40 + rf.converged_at,
           shard[0], shard[1], rf.looks);
    CHECK(rf.converged_at >= 0 && rf.converged_at <= 50 && shard[1] > shard[0] && rf.looks >= 1);

    /* without the contention the same devices share the batch (no trial: the step is mostly
     * per-sample cost for the smaller share) */
    sim t = {2, {0.3, 0.3}, {0.026, 0.02}, 0.10, 0};
    cldp_balancer_init(&b, 2, NULL, 1);
    simulate(&t, &b, 128, 60, 60, -1, 0, 1, NULL, 0);
    cldp_balancer_split(&b, NULL, 2, 128, shard);
    CHECK(shard[0] > 0 && shard[1] > 0 && !b.left_out[0] && !b.left_out[1]);
}

/* The fit: a device of 1.5 ms + 0.02 ms per sample measured at 100 and 50 samples, then once at
 * 75 samples in a step the machine stalled (10x), then at 100 again: the newest point is trusted
 * (it may be a new speed) but once another is newer the stalled one, far off the others' line,
 * is forgotten and the model is within 5% of the truth. */
static void test_fit(void)
{
    cldp_balancer b;
    cldp_balancer_init(&b, 1, NULL, 0);
    size_t sizes[10] = {100, 100, 100, 100, 50, 50, 50, 50, 75, 100};
    for (int k = 0; k < 10; k++) {
        double ms = (1.5 + 0.02 * (double)sizes[k]) * (k == 8 ? 10 : 1);
        cldp_balancer_observe(&b, NULL, 1, &sizes[k], &ms);
    }
    printf("  fit: %.3f ms + %.4f ms per sample (truth 1.5 + 0.02), after a 10x stalled step\n", b.fixed_ms[0], b.ms_per_sample[0]);
    CHECK(fabs(b.fixed_ms[0] - 1.5) < 0.075 && fabs(b.ms_per_sample[0] - 0.02) < 0.001);
}

static void test_fixed_costs(void)
{
    cldp_balancer b;
    static const struct {
        const char *what;
        sim s;
        size_t total;
        int left_out; /* the rank the optimum gives no samples, or -1 */
    } cases[] = {
        {"a 4 ms fixed cost beside a 3.5 ms device", {2, {0.3, 4.0}, {0.026, 0.013}, 0.10, 0}, 125, 1},
        {"launch latency of 6 ms beside two quick devices", {3, {0.2, 6.0, 0.2}, {0.02, 0.005, 0.02}, 0.10, 0}, 256, 1},
        {"a 2 ms fixed cost the batch pays for", {2, {0.1, 2.0}, {0.02, 0.005}, 0.10, 0}, 1024, -1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        sim s = cases[c].s;
        cldp_balancer_init(&b, s.n, NULL, 1);
        run_result res = simulate(&s, &b, cases[c].total, 80, 40, -1, 0, 1, NULL, getenv("VERBOSE") ? 2 : 0);
        size_t shard[4];
        cldp_balancer_split(&b, NULL, s.n, cases[c].total, shard);
        double ratio = true_ms(&s, shard) / optimal_ms(&s, cases[c].total);
        char shards[64];
        snprintf(shards, sizeof shards, s.n > 2 ? "%zu/%zu/%zu" : "%zu/%zu", shard[0], shard[1], shard[2]);
        printf("  fixed costs, %s: converged at step %d, final shards %s, step %.3f x the optimum, swing %.1f%%, %u look(s)\n",
               cases[c].what, res.converged_at, shards, ratio, 100 * res.max_swing, res.looks);
        CHECK(res.converged_at >= 0 && res.converged_at <= 20 && ratio <= 1.10 && res.max_swing <= 0.05 && res.looks <= 1);
        if (cases[c].left_out >= 0) {
            double w[4];
            cldp_balancer_weights(&b, NULL, s.n, w);
            CHECK(shard[cases[c].left_out] == 0 && w[cases[c].left_out] == 0);
        } else {
            CHECK(shard[1] > shard[0]);
        }
    }
}

static void test_slowdown(void)
{
    double f[3];
    CHECK_OK(cldp_slowdown_parse(NULL, 3, f));
    CHECK(f[0] == 1 && f[1] == 1 && f[2] == 1);
    CHECK_OK(cldp_slowdown_parse("1:3", 3, f));
    CHECK(f[0] == 1 && f[1] == 3 && f[2] == 1);
    CHECK_OK(cldp_slowdown_parse("0:2.5, 2:1", 3, f));
    CHECK(f[0] == 2.5 && f[1] == 1 && f[2] == 1);
    const char *bad[] = {"3:2", "1:0.5", "1", "x:2", "1:2;", "1:nan", "-1:2"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK_STATUS(cldp_slowdown_parse(bad[i], 3, f), CLDP_ERR_INVALID_ARGUMENT);
}

/* ---- de-duplication -------------------------------------------------------------------- */

static cldp_dev fake(unsigned plat, unsigned dev, const char *name, int uuid_byte, int pci_bus)
{
    cldp_dev d;
    memset(&d, 0, sizeof d);
    d.info.platform_index = plat;
    d.info.device_index = dev;
    snprintf(d.info.name, sizeof d.info.name, "%s", name);
    if (uuid_byte >= 0) {
        d.ident.has_uuid = 1;
        for (int i = 0; i < 16; i++) d.ident.uuid[i] = (unsigned char)(uuid_byte + i);
    }
    if (pci_bus >= 0) {
        d.ident.has_pci = 1;
        d.ident.pci_bus = (unsigned)pci_bus;
    }
    return d;
}

static void test_dedupe(void)
{
    /* the same GPU on two platforms (its vendor's ICD and another), by UUID: counted once */
    cldp_dev a[4] = {fake(0, 0, "GPU A", 0x10, -1), fake(0, 1, "GPU B", 0x40, -1), fake(1, 0, "GPU A via ICD 2", 0x10, -1),
                     fake(2, 0, "CPU", -1, -1)};
    size_t n = cldp_dedupe(a, 4);
    printf("  dedupe: 4 entries -> %zu; [0] %s, identity %s, duplicates \"%s\"; [2] identity %s\n", n, a[0].info.name,
           a[0].info.identity, a[0].info.duplicates, a[2].info.identity);
    CHECK(n == 3);
    CHECK(!strcmp(a[0].info.name, "GPU A") && !strcmp(a[0].info.duplicates, "1:0"));
    CHECK(!strcmp(a[0].info.identity, "uuid:10111213-1415-1617-1819-1a1b1c1d1e1f"));
    CHECK(!strcmp(a[1].info.name, "GPU B") && a[1].info.duplicates[0] == 0);
    CHECK(!strcmp(a[2].info.name, "CPU") && !strcmp(a[2].info.identity, "unknown"));
    for (size_t i = 0; i < n; i++) CHECK(a[i].info.index == i);

    /* nothing known: both kept, identity "unknown" */
    cldp_dev b[2] = {fake(0, 0, "X", -1, -1), fake(1, 0, "X", -1, -1)};
    CHECK(cldp_dedupe(b, 2) == 2);
    CHECK(!strcmp(b[0].info.identity, "unknown") && !strcmp(b[1].info.identity, "unknown"));

    /* the same UUID twice on one platform (e.g. PoCL's "basic basic"): distinct devices, kept */
    cldp_dev c[2] = {fake(0, 0, "basic", 0x22, -1), fake(0, 1, "basic", 0x22, -1)};
    CHECK(cldp_dedupe(c, 2) == 2);

    /* an all-zero UUID or PCI address means "unknown" */
    cldp_dev d[2] = {fake(0, 0, "Z", 0, -1), fake(1, 0, "Z", 0, -1)};
    d[0].ident.uuid[15] = d[1].ident.uuid[15] = 0; /* make them all zero */
    for (int i = 0; i < 16; i++) d[0].ident.uuid[i] = d[1].ident.uuid[i] = 0;
    d[0].ident.has_uuid = d[1].ident.has_uuid = 0; /* as query_identity leaves an all-zero UUID */
    CHECK(cldp_dedupe(d, 2) == 2 && !strcmp(d[0].info.identity, "unknown"));

    /* by PCI address (one platform reports UUID and PCI, another PCI only), and a chain */
    cldp_dev e[3] = {fake(0, 0, "R", 0x30, -1), fake(1, 0, "R", 0x30, 0x65), fake(2, 0, "R", -1, 0x65)};
    CHECK(cldp_dedupe(e, 3) == 1);
    printf("  dedupe by UUID then PCI: 3 entries -> 1, duplicates \"%s\"\n", e[0].info.duplicates);
    CHECK(!strcmp(e[0].info.duplicates, "1:0,2:0"));
    cldp_dev f[2] = {fake(0, 0, "P", -1, 0x65), fake(1, 3, "P", -1, 0x65)};
    f[0].ident.pci_domain = f[1].ident.pci_domain = 1;
    f[0].ident.pci_device = f[1].ident.pci_device = 2;
    f[0].ident.pci_function = f[1].ident.pci_function = 1;
    CHECK(cldp_dedupe(f, 2) == 1 && !strcmp(f[0].info.identity, "pci:0001:65:02.1") && !strcmp(f[0].info.duplicates, "1:3"));
    /* different PCI functions are different devices */
    cldp_dev g[2] = {fake(0, 0, "P", -1, 0x65), fake(1, 0, "P", -1, 0x65)};
    g[1].ident.pci_function = 1;
    CHECK(cldp_dedupe(g, 2) == 2);

    /* the real list: every entry has an identity */
    size_t count = 0;
    if (cldp_device_count(&count) == CLDP_OK)
        for (size_t i = 0; i < count; i++) {
            cldp_device_info info;
            CHECK_OK(cldp_device_get_info(i, &info));
            CHECK(info.identity[0] != 0);
            /* string facts are sized by the query and cut to fit: PoCL's pthread device has a
             * 64-character CL_DEVICE_VERSION, one more than the field holds */
            CHECK(!strncmp(info.opencl_version, "OpenCL ", 7) && strlen(info.opencl_version) < sizeof info.opencl_version);
            CHECK(strcmp(info.name, "?") && strcmp(info.driver_version, "?") && strcmp(info.vendor, "?"));
            printf("  device %u:%u OpenCL version \"%s\"\n", info.platform_index, info.device_index, info.opencl_version);
            printf("  device %u:%u %s: identity %s%s%s\n", info.platform_index, info.device_index, info.name, info.identity,
                   info.duplicates[0] ? ", also seen as " : "", info.duplicates);
        }
}

int main(void)
{
    test_rng_state = test_seed("test_balance");
    test_parse();
    test_shards();
    test_balancer();
    test_best_split();
    test_fit();
    test_fixed_costs();
    test_contention();
    test_slowdown();
    test_dedupe();
    return test_finish("test_balance");
}
