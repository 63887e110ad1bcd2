/* cldp-bench — measures cldp's performance claims side by side in one run, as ratios (these
 * machines are shared and noisy): runtime overhead, scaling over devices, the host all-reduce
 * against the machine's memcpy bandwidth, tuned vs default CLBlast GEMM beside a CPU BLAS, start-up
 * time with cold and warm caches, speed-aware balancing against even shards, and the inference
 * server under load, in process and over HTTP (bench-serve.h).
 *
 * Unlike the other samples it includes internal headers: the overhead baseline issues the
 * replica's CLBlast calls and kernels directly, with no runtime around them. Sections that need a
 * fresh process (start-up, default GEMM parameters) re-run this program as a child. */
#define _POSIX_C_SOURCE 200809L
#include "cldp.h"
#include "collective.h"
#include "optim.h"
#include "devices.h"
#include "layers.h"
#include "tuning.h"

#include <clblast_c.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef CLDP_HAVE_CBLAS
#include <cblas.h>
#endif

/* ---- helpers ---------------------------------------------------------------------------- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void die(const char *what)
{
    fprintf(stderr, "cldp-bench: %s: %s\n", what, cldp_last_error());
    exit(1);
}

static uint64_t rng = 88172645463325252ull;
static float frand(void)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((double)(rng >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}

typedef struct data {
    float *x;
    int32_t *y;
    size_t n, in;
} data;

static data make_data(size_t n, size_t in, size_t classes)
{
    data d = {malloc(n * in * sizeof(float)), malloc(n * sizeof(int32_t)), n, in};
    if (!d.x || !d.y) die("out of memory");
    for (size_t i = 0; i < n * in; i++) d.x[i] = frand();
    for (size_t i = 0; i < n; i++) {
        frand();
        d.y[i] = (int32_t)((rng >> 20) % classes);
    }
    return d;
}

/* The standard workload: MLP 784-1024-1024-10, softmax cross-entropy, SGD with momentum. */
static cldp_model *bench_model(size_t h)
{
    cldp_model *m;
    if (cldp_model_create(784, &m) || cldp_model_add_dense(m, h, CLDP_ACT_RELU) ||
        cldp_model_add_dense(m, h, CLDP_ACT_RELU) || cldp_model_add_dense(m, 10, CLDP_ACT_NONE))
        die("model");
    return m;
}

/* The bench's trainer options: SGD at 0.01, the rest cldp's defaults. */
static cldp_trainer_options bench_options(const char *devices, size_t batch, const char *split)
{
    cldp_trainer_options o;
    cldp_trainer_options_init(&o);
    o.devices = devices;
    o.batch = batch;
    o.optimizer = CLDP_OPT_SGD;
    o.learning_rate = 0.01f;
    o.split = split;
    return o;
}

/* "p:d,p:d": `count` devices from the `first`-th of every device there is (cldp_device_select
 * "all" order, whatever the platforms); NULL when fewer exist. Eight results live at once. */
static const char *devices_from(size_t first, size_t count)
{
    static char buf[8][256];
    static int next;
    size_t idx[64], n = 0;
    if (cldp_device_select("all", idx, 64, &n) != CLDP_OK || n < first + count) return NULL;
    char *spec = buf[next++ % 8];
    size_t len = 0;
    spec[0] = 0;
    for (size_t i = 0; i < count; i++) {
        cldp_device_info info;
        if (cldp_device_get_info(idx[first + i], &info) != CLDP_OK) return NULL;
        len += (size_t)snprintf(spec + len, sizeof buf[0] - len, "%s%u:%u", i ? "," : "", info.platform_index, info.device_index);
    }
    return spec;
}

/* The same, or the end of the bench with a message saying how many devices a section needs. */
static const char *need_devices(size_t first, size_t count)
{
    const char *spec = devices_from(first, count);
    if (!spec) {
        fprintf(stderr, "cldp-bench: this section needs %zu OpenCL device(s) (e.g. POCL_DEVICES=\"basic basic\")\n", first + count);
        exit(1);
    }
    return spec;
}

static cldp_trainer *make_trainer(const cldp_model *m, const char *devices, size_t batch, const char *split)
{
    cldp_trainer_options o = bench_options(devices, batch, split);
    cldp_trainer *t;
    if (cldp_trainer_create(m, &o, &t) != CLDP_OK) die("creating a trainer");
    return t;
}

/* Median ms per step over `steps` steps (after 2 unmeasured ones). */
static double time_steps(cldp_trainer *t, const data *d, size_t batch, int steps)
{
    double *ms = malloc((size_t)steps * sizeof(double));
    for (int s = -2; s < steps; s++) {
        size_t at = ((size_t)(s + 2) * batch) % (d->n - batch + 1);
        double t0 = now_ms();
        if (cldp_trainer_step(t, d->x + at * d->in, d->y + at, batch, NULL) != CLDP_OK) die("step");
        if (s >= 0) ms[s] = now_ms() - t0;
    }
    double m = median(ms, steps);
    free(ms);
    return m;
}

typedef struct opts {
    int json, quick;
    size_t hidden, batch;
    int steps;
} opts;

/* ---- 1. overhead ------------------------------------------------------------------------ */

/* The same step with no runtime: one replica, its GEMMs and kernels, the gradient read, a host
 * SGD update and the parameter write, called in a plain loop on this thread. */
typedef struct direct {
    cldp_replica *r;
    float *p, *g, *v;
    size_t np, batch;
    const data *d;
    int step;
} direct;

static void direct_init(direct *dr, const cldp_model *m, const data *d, size_t batch)
{
    const cldp_dev *devs;
    size_t n;
    if (cldp_devices(&devs, &n) != CLDP_OK) die("devices");
    if (cldp_replica_create(&devs[0], m, batch, &dr->r) != CLDP_OK || cldp_replica_warm_up(dr->r) != CLDP_OK) die("replica");
    dr->np = cldp_model_param_count(m);
    dr->p = malloc(dr->np * sizeof(float));
    dr->g = malloc(dr->np * sizeof(float));
    dr->v = calloc(dr->np, sizeof(float));
    dr->batch = batch;
    dr->d = d;
    dr->step = 0;
    cldp_model_init_params(m, 1, dr->p, dr->np);
    cldp_replica_write_params(dr->r, dr->p, 0, dr->np);
}

static double direct_step(direct *dr)
{
    cldp_replica *r = dr->r;
    size_t batch = dr->batch, at = ((size_t)dr->step++ * batch) % (dr->d->n - batch + 1);
    double t0 = now_ms(), loss = 0;
    size_t correct = 0;
    if (cldp_replica_load(r, dr->d->x + at * dr->d->in, dr->d->y + at, batch) || cldp_replica_forward(r, batch) ||
        cldp_replica_backward(r, batch, 1.0f / (float)batch, 0) || cldp_replica_read_loss(r, batch, &loss, &correct))
        die("direct step");
    float *gp = dr->g; /* the gradient where it is cheapest to read, as the trainer does */
    if (r->zero_copy ? cldp_replica_map_grads(r, &gp) : cldp_replica_read_grads(r, dr->g)) die("direct gradients");
    for (size_t i = 0; i < dr->np; i++) {
        dr->v[i] = 0.9f * dr->v[i] + gp[i];
        dr->p[i] -= 0.01f * dr->v[i];
    }
    if (cldp_replica_unmap_grads(r) || cldp_replica_write_params(r, dr->p, 0, dr->np)) die("direct write");
    return now_ms() - t0;
}

static void direct_free(direct *dr)
{
    cldp_replica_destroy(dr->r);
    free(dr->p);
    free(dr->g);
    free(dr->v);
}

/* One step of a trainer, ms. */
static double one_step(cldp_trainer *t, const data *d, size_t batch, int *counter)
{
    size_t at = ((size_t)(*counter)++ * batch) % (d->n - batch + 1);
    double t0 = now_ms();
    if (cldp_trainer_step(t, d->x + at * d->in, d->y + at, batch, NULL) != CLDP_OK) die("step");
    return now_ms() - t0;
}

/* A trainer made with some of cldp's settings changed for its creation only (the staging and
 * reduction switches are taken when the trainer is built; the environment is read once, so the
 * settings change through the test door). */
static cldp_trainer *make_trainer_env(const cldp_model *m, const char *devices, size_t batch, const char *split,
                                      const char *const *env)
{
    for (size_t i = 0; env && env[i]; i += 2)
        if (cldp_test_control(CLDP_TEST_CONFIG, env[i], env[i + 1]) != CLDP_OK) die(env[i]);
    cldp_trainer *t = make_trainer(m, devices, batch, split);
    for (size_t i = 0; env && env[i]; i += 2) cldp_test_control(CLDP_TEST_CONFIG, env[i], (const char *)NULL);
    return t;
}

static void bench_overhead(const opts *o, FILE *js, const cldp_model *m, const data *d)
{
    /* the default (zero-copy on a device that shares host memory), then the paths a discrete
     * device takes, forced here: pinned staging streamed per layer, plain memory streamed per
     * layer (what pinned replaced), plain memory copied once at the end (what streaming replaced) */
    static const char *const pinned[] = {"CLDP_STAGING", "pinned", NULL};
    static const char *const host[] = {"CLDP_STAGING", "copy", NULL};
    static const char *const host_end[] = {"CLDP_STAGING", "copy", "CLDP_OVERLAP", "off", NULL};
    cldp_trainer *t[4] = {make_trainer(m, need_devices(0, 1), o->batch, NULL), make_trainer_env(m, need_devices(0, 1), o->batch, NULL, pinned),
                          make_trainer_env(m, need_devices(0, 1), o->batch, NULL, host),
                          make_trainer_env(m, need_devices(0, 1), o->batch, NULL, host_end)};
    direct dr;
    direct_init(&dr, m, d, o->batch);
    /* The machine's speed drifts over seconds here, so the five alternate step by step, and each
     * figure is the median of its steps. */
    enum { MAXS = 64 };
    int steps = 3 * o->steps < MAXS ? 3 * o->steps : MAXS, counter[4] = {0, 0, 0, 0};
    double ms[5][MAXS];
    for (int i = 0; i < 4; i++) one_step(t[i], d, o->batch, &counter[i]); /* unmeasured */
    direct_step(&dr);
    for (int k = 0; k < steps; k++) {
        for (int i = 0; i < 4; i++) ms[i][k] = one_step(t[i], d, o->batch, &counter[i]);
        ms[4][k] = direct_step(&dr);
    }
    double med[5];
    for (int i = 0; i < 5; i++) med[i] = median(ms[i], steps);
    for (int i = 0; i < 4; i++) cldp_trainer_destroy(t[i]);
    direct_free(&dr);
    printf("\n1. overhead: one device, cldp step vs the same calls issued directly (%d alternating steps, medians)\n", steps);
    printf("   cldp %.1f ms/step, direct %.1f ms/step, ratio %.3f (target <= 1.05)\n", med[0], med[4], med[0] / med[4]);
    printf("   staging, ms/step (ratio to the default, zero-copy):\n");
    printf("     pinned, per layer during backward   %7.1f (%.3f)\n", med[1], med[1] / med[0]);
    printf("     malloc'd, per layer during backward %7.1f (%.3f)   pinned / malloc'd %.3f\n", med[2], med[2] / med[0],
           med[1] / med[2]);
    printf("     malloc'd, once at the end            %7.1f (%.3f)   per layer / once %.3f\n", med[3], med[3] / med[0],
           med[2] / med[3]);
    fprintf(js, "\"overhead\":{\"cldp_ms\":%.2f,\"direct_ms\":%.2f,\"ratio\":%.4f,\"pinned_overlap_ms\":%.2f,"
                "\"copy_overlap_ms\":%.2f,\"copy_end_ms\":%.2f},",
            med[0], med[4], med[0] / med[4], med[1], med[2], med[3]);
}

/* Two trainers stepping at once on their own threads: each one's median ms/step. */
typedef struct { cldp_trainer *t; const data *d; size_t batch; int steps; double ms; pthread_barrier_t *go; } pair_run;
static void *pair_main(void *a)
{
    pair_run *p = a;
    pthread_barrier_wait(p->go);
    p->ms = time_steps(p->t, p->d, p->batch, p->steps);
    return NULL;
}

static void bench_scaling(const opts *o, FILE *js, const cldp_model *m, const data *d)
{
    /* the summing of a layer while lower layers still compute needs per-layer delivery, which
     * zero-copy devices do not use: compare it on the pinned, streamed path a discrete GPU takes */
    static const char *const early[] = {"CLDP_STAGING", "pinned", NULL};
    static const char *const late[] = {"CLDP_STAGING", "pinned", "CLDP_EARLY_REDUCE", "off", NULL};
    size_t half = o->batch / 2;
    cldp_trainer *t1 = make_trainer(m, need_devices(0, 1), o->batch, "even"), *t1b = make_trainer(m, need_devices(1, 1), o->batch, "even");
    cldp_trainer *t2 = make_trainer(m, need_devices(0, 2), o->batch, "even");
    cldp_trainer *t2early = make_trainer_env(m, need_devices(0, 2), o->batch, "even", early);
    cldp_trainer *t2late = make_trainer_env(m, need_devices(0, 2), o->batch, "even", late);
    /* step by step, alternating, and medians: the machine's speed drifts over seconds */
    enum { MAXS = 64 };
    int steps = 3 * o->steps < MAXS ? 3 * o->steps : MAXS, n1 = 0, n2 = 0, n3 = 0, n4 = 0;
    double a[MAXS], b[MAXS], c[MAXS], e[MAXS], f[MAXS], pair[MAXS];
    one_step(t2, d, o->batch, &n2), one_step(t2late, d, o->batch, &n3), one_step(t2early, d, o->batch, &n4);
    for (int k = 0; k < steps; k++) {
        a[k] = one_step(t1, d, o->batch, &n1);
        b[k] = one_step(t1, d, half, &n1);
        c[k] = one_step(t2, d, o->batch, &n2);
        e[k] = one_step(t2late, d, o->batch, &n3);
        f[k] = one_step(t2early, d, o->batch, &n4);
        /* the machine's own ceiling: two independent one-device trainers at once, nothing shared
         * between them in cldp (no reduction, no broadcast), each on half the batch */
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, 2);
        pair_run pr[2] = {{t1, d, half, 1, 0, &go}, {t1b, d, half, 1, 0, &go}};
        pthread_t th[2];
        for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, pair_main, &pr[i]);
        for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
        pthread_barrier_destroy(&go);
        pair[k] = (double)half / pr[0].ms * 1e3 + (double)half / pr[1].ms * 1e3; /* samples/s, both */
    }
    double one_full = median(a, steps), one_half = median(b, steps), two_full = median(c, steps),
           two_late = median(e, steps), two_early = median(f, steps);
    double thr1w = (double)half / one_half * 1e3, thr2 = (double)o->batch / two_full * 1e3,
           thr1s = (double)o->batch / one_full * 1e3, thr_pair = median(pair, steps); /* samples/s */
    printf("\n2. scaling: 1 vs 2 devices, throughput in samples/s (%d alternating steps each, medians)\n", steps);
    printf("   weak   (%zu per device): 1 device %7.0f, 2 devices %7.0f, speed-up %.2fx, efficiency %.0f%% (target >= 1.85x)\n",
           half, thr1w, thr2, thr2 / thr1w, 50.0 * thr2 / thr1w);
    printf("   strong (global %zu):     1 device %7.0f, 2 devices %7.0f, speed-up %.2fx, efficiency %.0f%% (target >= 1.7x)\n",
           o->batch, thr1s, thr2, thr2 / thr1s, 50.0 * thr2 / thr1s);
    printf("   ceiling: two independent 1-device trainers at once, %zu each: %7.0f, %.2fx one alone;\n"
           "   cldp's 2 devices reach %.0f%% of that (the rest is the reduction and broadcast)\n",
           half, thr_pair, thr_pair / thr1w, 100.0 * thr2 / thr_pair);
    printf("   pinned staging, reduction per layer during backward vs all after it: %.1f vs %.1f ms/step, ratio %.3f\n",
           two_early, two_late, two_early / two_late);
    fprintf(js, "\"scaling\":{\"weak_speedup\":%.3f,\"strong_speedup\":%.3f,\"one_device_sps\":%.1f,\"two_devices_sps\":%.1f,"
                "\"pair_ceiling_sps\":%.1f,\"ceiling_speedup\":%.3f,\"late_reduce_ms\":%.2f,\"early_reduce_ms\":%.2f},",
            thr2 / thr1w, thr2 / thr1s, thr1s, thr2, thr_pair, thr_pair / thr1w, two_late, two_early);
    cldp_trainer_destroy(t1);
    cldp_trainer_destroy(t1b);
    cldp_trainer_destroy(t2);
    cldp_trainer_destroy(t2early);
    cldp_trainer_destroy(t2late);
}

#include "cldp-bench-allreduce.h" /* 3. the section "allreduce" */
#include "cldp-bench-gemm.h"      /* 4. the section "gemm" */

/* ---- 5. start-up ------------------------------------------------------------------------ */

static void probe_start(size_t h, size_t batch)
{
    data d = make_data(batch, 784, 10);
    cldp_model *m = bench_model(h);
    double t0 = now_ms();
    cldp_trainer *t = make_trainer(m, need_devices(0, 1), batch, NULL);
    double t1 = now_ms();
    if (cldp_trainer_step(t, d.x, d.y, batch, NULL) != CLDP_OK) die("step");
    printf("%.1f %.1f\n", now_ms() - t0, t1 - t0);
}

static void bench_start(const opts *o, FILE *js)
{
    char dir[] = "/tmp/cldp-bench-XXXXXX", env[512], args[64];
    if (!mkdtemp(dir)) return;
    snprintf(env, sizeof env, "POCL_DEVICES=basic CLDP_CACHE_DIR=%s/cldp POCL_CACHE_DIR=%s/pocl", dir, dir);
    snprintf(args, sizeof args, "--probe-start %zu %zu", o->hidden, o->batch);
    double cold[2], warm[2];
    printf("\n5. start: trainer creation to the end of the first step, fresh process, one device\n");
    if (run_child(env, args, cold, 2) || run_child(env, args, warm, 2)) {
        printf("   (the start probe failed; skipped)\n");
    } else {
        printf("   cold caches (cldp kernels and PoCL's): %8.0f ms (creation and warm-up %0.f ms)\n", cold[0], cold[1]);
        printf("   warm caches:                           %8.0f ms (creation and warm-up %0.f ms)   target <= 1000 ms\n", warm[0], warm[1]);
        fprintf(js, "\"start\":{\"cold_ms\":%.1f,\"warm_ms\":%.1f},", cold[0], warm[0]);
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cldp-bench: could not remove %s\n", dir);
}

/* ---- 6. balance ------------------------------------------------------------------------- */

static void bench_balance(const opts *o, FILE *js, const data *d)
{
    if (!devices_from(0, 2)) {
        printf("\n6. balance: needs two devices; skipped\n");
        return;
    }
    printf("\n6. balance: device 1 made 3x slower (CLDP_TEST_SLOWDOWN=1:3, its worker sleeps 2x its compute),\n"
           "   even shards vs speed-aware shards, global batch %zu\n", o->batch);
    cldp_test_control(CLDP_TEST_CONFIG, "CLDP_TEST_SLOWDOWN", "1:3");
    cldp_model *m = bench_model(o->hidden);
    int steps = o->quick ? 20 : 40;
    cldp_trainer *even = make_trainer(m, need_devices(0, 2), o->batch, "even");
    double even_ms = time_steps(even, d, o->batch, steps);
    cldp_trainer_destroy(even);
    cldp_trainer *bal = make_trainer(m, need_devices(0, 2), o->batch, "auto");
    if (cldp_trainer_set_balance(bal, 1) != CLDP_OK) die("balancing"); /* the devices are alike but for the slowdown */
    size_t shard0[80];
    double idle_frac = 0, step_ms[80];
    int conv = -1, total = steps + 20;
    for (int s = 0; s < total; s++) {
        size_t at = ((size_t)s * o->batch) % (d->n - o->batch + 1);
        cldp_step_stats st;
        if (cldp_trainer_step(bal, d->x + at * d->in, d->y + at, o->batch, &st) != CLDP_OK) die("step");
        cldp_device_stats ds0, ds1;
        cldp_trainer_device_stats(bal, 0, &ds0);
        cldp_trainer_device_stats(bal, 1, &ds1);
        shard0[s] = ds0.shard;
        step_ms[s] = st.step_ms;
        /* the wait of the devices that computed: one given no samples is out, not waiting */
        int busy = (ds0.shard > 0) + (ds1.shard > 0);
        if (s >= 20 && busy)
            idle_frac += ((ds0.shard ? ds0.idle_ms : 0) + (ds1.shard ? ds1.idle_ms : 0)) / (busy * st.step_ms);
    }
    idle_frac /= (double)steps;
    /* converged: the first step from which the split stays within 5% of the batch of its end value */
    for (int s = 0; s < total && conv < 0; s++) {
        int ok = 1;
        for (int k = s; k < total; k++)
            if (fabs((double)shard0[k] - (double)shard0[total - 1]) > 0.05 * (double)o->batch) ok = 0;
        if (ok) conv = s;
    }
    size_t lo = shard0[20], hi = shard0[20];
    for (int s = 20; s < total; s++) {
        if (shard0[s] < lo) lo = shard0[s];
        if (shard0[s] > hi) hi = shard0[s];
    }
    double bal_ms = median(step_ms + 20, steps);
    printf("   even shards:    %7.1f ms/step  %7.0f samples/s\n", even_ms, (double)o->batch / even_ms * 1e3);
    printf("   balanced:       %7.1f ms/step  %7.0f samples/s   speed-up %.2fx (target >= 1.3x)\n", bal_ms,
           (double)o->batch / bal_ms * 1e3, even_ms / bal_ms);
    printf("   split converged at step %d to %zu/%zu; after step 20 it moved within %zu samples (%.1f%% of the batch);\n"
           "   idle time once balanced (of the devices with samples): %.1f%% of the step (target <= 10%%)\n",
           conv, shard0[total - 1], o->batch - shard0[total - 1], hi - lo, 100.0 * (double)(hi - lo) / (double)o->batch,
           100.0 * idle_frac);
    fprintf(js, "\"balance\":{\"even_ms\":%.2f,\"balanced_ms\":%.2f,\"speedup\":%.3f,\"converged_step\":%d,"
                "\"oscillation_frac\":%.4f,\"idle_frac\":%.4f},",
            even_ms, bal_ms, even_ms / bal_ms, conv, (double)(hi - lo) / (double)o->batch, idle_frac);
    cldp_trainer_destroy(bal);
    cldp_model_destroy(m);
    cldp_test_control(CLDP_TEST_CONFIG, "CLDP_TEST_SLOWDOWN", (const char *)NULL);
}

/* ---- main ------------------------------------------------------------------------------- */

#include "cldp-bench-mixed.h" /* the section "mixed", for two devices that differ */
#include "cldp-bench-mpi.h" /* the section "mpi", under mpiexec */
#include "bench-serve.h"    /* the section "serve": the inference server, in process and over HTTP */
#include "cldp-bench-cnn.h" /* the section "cnn": the CNN preset, conv rates, the MLP step */
#include "cldp-bench-profile.h" /* the section "profile": where a step's time goes, beside PyTorch */
#include "cldp-bench-trace.h" /* the section "trace": the timeline's cost */

/* What --only takes, in the order the sections run ("mpi" only when asked for, under mpiexec). */
static const char *const sections[] = {"overhead", "scaling", "allreduce", "gemm", "start", "balance", "cnn", "mixed", "serve", "mpi", "trace", "profile"};
#define SECTION_LIST "overhead, scaling, allreduce, gemm, start, balance, cnn, mixed, serve, mpi, trace, profile"

static int is_section(const char *s)
{
    for (size_t k = 0; k < sizeof sections / sizeof sections[0]; k++)
        if (!strcmp(s, sections[k])) return 1;
    return 0;
}

int main(int argc, char **argv)
{
    opts o = {.hidden = 1024, .batch = 512, .steps = 10};
    const char *only = NULL, *trace = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--probe-gemm") && i + 3 < argc) {
            probe_gemm(strtoul(argv[i + 1], NULL, 10), strtoul(argv[i + 2], NULL, 10), strtod(argv[i + 3], NULL));
            return 0;
        } else if (!strcmp(argv[i], "--probe-convgemm") && i + 1 < argc) {
            probe_convgemm(strtoul(argv[i + 1], NULL, 10));
        } else if (!strcmp(argv[i], "--probe-start") && i + 2 < argc) {
            probe_start(strtoul(argv[i + 1], NULL, 10), strtoul(argv[i + 2], NULL, 10));
            return 0;
        } else if (!strcmp(argv[i], "--json")) {
            o.json = 1;
        } else if (!strcmp(argv[i], "--quick")) {
            o.quick = 1;
        } else if (!strcmp(argv[i], "--trace")) {
            if (i + 1 >= argc || !argv[i + 1][0] || !strncmp(argv[i + 1], "--", 2)) {
                fprintf(stderr, "cldp-bench: --trace needs a file name (try --help)\n");
                return 2;
            }
            trace = argv[++i];
        } else if (!strcmp(argv[i], "--only")) {
            const char *v = i + 1 < argc ? argv[i + 1] : NULL;
            if (!v || !strncmp(v, "--", 2)) {
                fprintf(stderr, "cldp-bench: --only needs a section: %s (try --help)\n", SECTION_LIST);
                return 2;
            }
            if (!is_section(v)) {
                fprintf(stderr, "cldp-bench: unknown section '%s' for --only; the sections are %s\n", v, SECTION_LIST);
                return 2;
            }
            only = argv[++i];
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: cldp-bench [--quick] [--json] [--trace FILE]\n"
                   "                  [--only overhead|scaling|allreduce|gemm|start|balance|cnn|mixed|serve|mpi|trace|profile]\n"
                   "Measures cldp side by side in one run. The standard workload is an MLP 784-1024-1024-10,\n"
                   "softmax cross-entropy, SGD with momentum, global batch 512, random data. Without a GPU, set\n"
                   "POCL_DEVICES=\"basic basic basic\" (the default when unset): each basic PoCL device computes\n"
                   "on the thread that drives it, one core each. --quick uses fewer steps and sizes.\n"
                   "With --json the last line is one JSON object of every figure.\n"
                   "--only mixed compares the first two devices as they are, balanced vs each alone, e.g.\n"
                   "  POCL_DEVICES=\"basic pthread\" cldp-bench --only mixed\n"
                   "--only mpi runs under mpiexec with 2 ranks (cldp built with -DCLDP_WITH_MPI=ON):\n"
                   "  mpiexec --bind-to none -n 2 env POCL_DEVICES=\"basic basic\" cldp-bench --only mpi\n"
                   "--only trace: step time with the timeline off vs on, on the first two devices.\n"
                   "--trace FILE writes the run's timeline to FILE as Chrome trace-event JSON (with\n"
                   "--only trace: one traced step's), for https://ui.perfetto.dev or chrome://tracing.\n"
                   "--only profile breaks a step down per device on 1 and 2 devices (GEMMs, kernels, transfers,\n"
                   "  host reduction, broadcast, waits), beside PyTorch DDP (samples/peer; needs python3-torch;\n"
                   "  $CLDP_PEER_SCRIPT names another copy of the script), e.g.\n"
                   "  POCL_DEVICES=\"basic basic\" cldp-bench --only profile\n");
            return 0;
        } else {
            fprintf(stderr, "cldp-bench: unknown argument '%s' (try --help)\n", argv[i]);
            return 2;
        }
    }
    int mpi = only && !strcmp(only, "mpi");
    if (mpi && bench_mpi_begin(&argc, &argv)) die("joining the MPI job");
    if (!getenv("POCL_DEVICES")) setenv("POCL_DEVICES", "basic basic basic", 1);
    if (o.quick) o.steps = 5;
    char *jsbuf = NULL;
    size_t jslen = 0;
    FILE *js = open_memstream(&jsbuf, &jslen);
    fprintf(js, "{");
    size_t ndev = 0;
    if (cldp_device_count(&ndev) != CLDP_OK) die("devices");
    cldp_device_info d0;
    cldp_device_get_info(0, &d0);
    printf("cldp-bench: %zu device(s), device 0 is %s (%s); MLP 784-%zu-%zu-10, batch %zu\n", ndev, d0.name,
           d0.driver_version, o.hidden, o.hidden, o.batch);
    data d = make_data(4 * o.batch, 784, 10);
    cldp_model *m = bench_model(o.hidden);
    int trace_all = trace && !(only && !strcmp(only, "trace")); /* the section writes its own */
    if (trace_all && cldp_trace_start(trace) != CLDP_OK) die("--trace");

    if (!only || !strcmp(only, "overhead")) bench_overhead(&o, js, m, &d);
    if ((!only || !strcmp(only, "scaling")) && ndev >= 2) bench_scaling(&o, js, m, &d);
    if (!only || !strcmp(only, "allreduce")) bench_allreduce(&o, js);
    if (!only || !strcmp(only, "gemm")) bench_gemm(&o, js);
    if (!only || !strcmp(only, "start")) bench_start(&o, js);
    if (!only || !strcmp(only, "balance")) bench_balance(&o, js, &d);
    if ((!only || !strcmp(only, "cnn")) && ndev >= 2) bench_cnn(&o, js, m, &d);
    if (only && !strcmp(only, "mixed")) bench_mixed(&o, js, &d);
    if (!only || !strcmp(only, "serve")) bench_serve(&o, js);
    if (mpi) bench_mpi(&o, js, m, &d);
    if (only && !strcmp(only, "trace")) bench_trace(&o, js, m, &d, trace);
    if (trace_all && cldp_trace_stop() != CLDP_OK) die("writing the --trace file");
    if (trace_all) printf("cldp-bench: timeline written to %s\n", trace);
    if (!only || !strcmp(only, "profile")) bench_profile(&o, js, m, &d); /* its own recordings: after --trace's */

    fprintf(js, "\"batch\":%zu,\"hidden\":%zu}", o.batch, o.hidden);
    fclose(js);
    if (o.json) printf("%s\n", jsbuf);
    free(jsbuf);
    cldp_model_destroy(m);
    free(d.x);
    free(d.y);
    if (mpi) bench_mpi_end();
    return 0;
}
