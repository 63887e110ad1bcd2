/* cldp-bench-mixed.h — cldp-bench's section "mixed": the first two devices as they are, meant for
 * two that differ, e.g.
 *
 *     POCL_DEVICES="basic pthread" cldp-bench --only mixed
 *
 * (PoCL's pthread device spends about as long per step whatever its shard, so that sharing the
 * batch with it can lengthen the step). The speed-aware split against each device alone (splits
 * 1,0 and 0,1) on cldp-train's default model and batch (784-256-128-10, 128), alternating round
 * by round so the machine's drift falls on all three alike; then the split the balancer chose and
 * each device's figures in its last step. Included by cldp-bench.c. */
#ifndef CLDP_BENCH_MIXED_H
#define CLDP_BENCH_MIXED_H

static cldp_trainer *mixed_trainer(const cldp_model *m, const char *devices, const char *split, int balance)
{
    cldp_trainer_options o = bench_options(devices, 128, split);
    o.balance = balance;
    cldp_trainer *t;
    if (cldp_trainer_create(m, &o, &t) != CLDP_OK) die("creating a trainer");
    return t;
}

/* `steps` steps of t from sample `*at` on, their times appended to ms[*n]. */
static void mixed_steps(cldp_trainer *t, const data *d, int steps, size_t *at, double *ms, int *n)
{
    for (int s = 0; s < steps; s++) {
        *at = (*at + 128) % (d->n - 128 + 1);
        double t0 = now_ms();
        if (cldp_trainer_step(t, d->x + *at * d->in, d->y + *at, 128, NULL) != CLDP_OK) die("step");
        if (ms) ms[(*n)++] = now_ms() - t0;
    }
}

static void bench_mixed(const opts *o, FILE *js, const data *d)
{
    const char *two = devices_from(0, 2);
    if (!two) {
        printf("\n7. mixed: needs two devices; skipped\n");
        return;
    }
    cldp_device_info info[2];
    size_t idx[2], n = 0;
    if (cldp_device_select(two, idx, 2, &n) != CLDP_OK || cldp_device_get_info(idx[0], &info[0]) != CLDP_OK ||
        cldp_device_get_info(idx[1], &info[1]) != CLDP_OK)
        die("devices");
    printf("\n7. mixed devices: [0] %s, [1] %s; MLP 784-256-128-10, batch 128,\n"
           "   balanced (auto) vs device 0 alone (split 1,0) vs device 1 alone (split 0,1), alternating rounds\n",
           info[0].name, info[1].name);
    cldp_model *m;
    if (cldp_model_create(784, &m) || cldp_model_add_dense(m, 256, CLDP_ACT_RELU) ||
        cldp_model_add_dense(m, 128, CLDP_ACT_RELU) || cldp_model_add_dense(m, 10, CLDP_ACT_NONE))
        die("model");
    cldp_trainer *t[3] = {mixed_trainer(m, two, "auto", 1), mixed_trainer(m, two, "1,0", 0), mixed_trainer(m, two, "0,1", 0)};
    static const char *const what[3] = {"balanced", "device 0 alone (1,0)", "device 1 alone (0,1)"};
    int rounds = o->quick ? 4 : 12, per = 10, count[3] = {0, 0, 0};
    double *ms[3];
    size_t at = 0;
    mixed_steps(t[0], d, 40, &at, NULL, &count[0]); /* the balancer's initial search, unmeasured */
    for (int k = 0; k < 3; k++) {
        ms[k] = malloc((size_t)(rounds * per) * sizeof(double));
        if (!ms[k]) die("memory");
        mixed_steps(t[k], d, 3, &at, NULL, &count[k]);
    }
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < 3; k++) mixed_steps(t[k], d, per, &at, ms[k], &count[k]);
    double med[3];
    for (int k = 0; k < 3; k++) {
        med[k] = median(ms[k], count[k]);
        printf("   %-22s %6.2f ms/step  %7.0f samples/s\n", what[k], med[k], 128.0 / med[k] * 1e3);
    }
    double best = med[1] < med[2] ? med[1] : med[2];
    printf("   balanced / device 0 alone %.2fx, / device 1 alone %.2fx, / the faster alone %.2fx (throughput)\n",
           med[1] / med[0], med[2] / med[0], best / med[0]);
    size_t shards[2];
    cldp_trainer_get_split(t[0], NULL, shards, 2);
    printf("   the balancer's split: %zu/%zu; in its last step:\n", shards[0], shards[1]);
    for (size_t r = 0; r < 2; r++) {
        cldp_device_stats ds;
        cldp_trainer_device_stats(t[0], r, &ds);
        printf("     [%zu] shard %zu, compute %.2f ms, idle %.2f ms%s\n", r, ds.shard, ds.compute_ms, ds.idle_ms,
               ds.shard ? "" : " (no samples: giving it some would lengthen the step; it still receives the parameters)");
    }
    fprintf(js, "\"mixed\":{\"balanced_ms\":%.3f,\"device0_ms\":%.3f,\"device1_ms\":%.3f,\"balanced_vs_best\":%.3f,"
                "\"shard0\":%zu,\"shard1\":%zu},",
            med[0], med[1], med[2], best / med[0], shards[0], shards[1]);
    for (int k = 0; k < 3; k++) {
        cldp_trainer_destroy(t[k]);
        free(ms[k]);
    }
    cldp_model_destroy(m);
}

#endif
