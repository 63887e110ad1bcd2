/* cldp-bench-profile.h — cldp-bench's section "profile": where a step of the standard workload
 * goes, per device, on 1 and 2 devices, from the timeline (cldp_trace_*): CLBlast GEMMs (their
 * FLOP and GFLOP/s), cldp's own kernels, transfers, the host reduction and update, the broadcast,
 * waits for the slowest device, and the rest; the same with CLDP_FAST_KERNELS=off (the kernels
 * before the profile's cuts) beside it; then the throughput of both and of the PyTorch DDP peer
 * (samples/peer/torch_ddp_mlp.py, run as a child in rounds alternated with cldp's), their ratio,
 * and how the gap to PyTorch splits into GEMM rate and the rest. Included by cldp-bench.c. */
#ifndef CLDP_BENCH_PROFILE_H
#define CLDP_BENCH_PROFILE_H

#ifndef CLDP_PEER_SCRIPT /* the source tree's, set by CMake; $CLDP_PEER_SCRIPT overrides it */
#define CLDP_PEER_SCRIPT "samples/peer/torch_ddp_mlp.py"
#endif

static const char *peer_script(void)
{
    const char *env = getenv("CLDP_PEER_SCRIPT");
    return env && *env ? env : CLDP_PEER_SCRIPT;
}

enum { PC_GEMM, PC_KERNEL, PC_TRANSFER, PC_HOST, PC_BCAST, PC_WAIT, PC_N, PROF_MAXDEV = 8 };
static const char *const pc_names[PC_N] = {"GEMMs (CLBlast)", "cldp kernels", "transfers", "host reduce + update",
                                           "broadcast", "waits"};

/* The timeline category an event counts under; -1 for enclosing spans and serving. */
static int pc_of(const char *cat)
{
    static const char *const cats[] = {"gemm", "kernel", "transfer", "reduce", "update", "broadcast", "wait"};
    static const int pcs[] = {PC_GEMM, PC_KERNEL, PC_TRANSFER, PC_HOST, PC_HOST, PC_BCAST, PC_WAIT};
    for (size_t i = 0; i < sizeof cats / sizeof *cats; i++)
        if (!strcmp(cat, cats[i])) return pcs[i];
    return -1;
}

/* One traced run's figures per device, averaged over its steps. */
typedef struct prof_run {
    size_t ndev;
    char name[PROF_MAXDEV][160];
    double ms[PROF_MAXDEV][PC_N];
    double flop[PROF_MAXDEV]; /* CLBlast GEMM FLOP per step */
    double layer_ms[PROF_MAXDEV][8]; /* GEMMs and kernels of each layer (the first 8) */
    double step_ms;           /* the traced steps' wall time (the host lane's "step") */
    int steps;
    double each_ms[64];       /* each traced step's wall time, the first 64 */
} prof_run;

/* The device rank of the trainer whose "p:d" starts the lane's name; -1 if none. */
static int prof_rank_of_lane(cldp_trainer *t, int lane)
{
    char name[256];
    if (cldp_trace_lane_name(lane, name, sizeof name) != CLDP_OK) return -1;
    for (size_t r = 0; r < cldp_trainer_device_count(t); r++) {
        cldp_device_info info;
        char pd[32];
        if (cldp_trainer_device_info(t, r, &info) != CLDP_OK) continue;
        int len = snprintf(pd, sizeof pd, "%u:%u ", info.platform_index, info.device_index);
        if (!strncmp(name, pd, (size_t)len)) return (int)r;
    }
    return -1;
}

/* `steps` traced steps of t, added to *pr (zeroed by the caller before the first call); dims[0..
 * nlayers] the model's widths (every GEMM of dense layer l is 2·rows·dims[l]·dims[l+1] FLOP,
 * forward, dW and dX alike). prof_average then makes the sums per step. */
static void prof_trace(cldp_trainer *t, const data *d, size_t batch, int steps, const size_t *dims, int *counter,
                       prof_run *pr)
{
    pr->ndev = cldp_trainer_device_count(t);
    size_t shard[PROF_MAXDEV] = {0};
    if (cldp_trace_start(NULL) != CLDP_OK) die("cldp_trace_start");
    for (int s = 0; s < steps; s++) one_step(t, d, batch, counter);
    if (cldp_trace_stop() != CLDP_OK) die("cldp_trace_stop");
    for (size_t r = 0; r < pr->ndev && r < PROF_MAXDEV; r++) {
        cldp_device_stats ds;
        cldp_device_info info;
        if (cldp_trainer_device_stats(t, r, &ds) != CLDP_OK || cldp_trainer_device_info(t, r, &info) != CLDP_OK)
            die("device stats");
        shard[r] = ds.shard; /* the split is even and fixed: every traced step's */
        snprintf(pr->name[r], sizeof pr->name[r], "%u:%u %s", info.platform_index, info.device_index, info.name);
    }
    int lane_rank[64];
    for (int i = 0; i < 64; i++) lane_rank[i] = -2; /* not looked up yet */
    enum { CHUNK = 4096 };
    cldp_trace_event *ev = malloc(CHUNK * sizeof *ev);
    if (!ev) die("out of memory");
    size_t total = cldp_trace_event_count(), got = 0;
    for (size_t first = 0; first < total; first += got) {
        if (cldp_trace_events(first, ev, CHUNK, &got) != CLDP_OK || got == 0) break;
        for (size_t i = 0; i < got; i++) {
            const cldp_trace_event *e = &ev[i];
            if (e->lane == 0) {
                if (strcmp(e->category, "step")) continue;
                if (pr->steps < 64) pr->each_ms[pr->steps] = e->dur_us * 1e-3;
                pr->step_ms += e->dur_us * 1e-3, pr->steps++;
                continue;
            }
            int pc = pc_of(e->category);
            if (pc < 0 || e->lane >= 64) continue;
            if (lane_rank[e->lane] == -2) lane_rank[e->lane] = prof_rank_of_lane(t, e->lane);
            int r = lane_rank[e->lane];
            if (r < 0 || r >= PROF_MAXDEV) continue;
            pr->ms[r][pc] += e->dur_us * 1e-3;
            if ((pc == PC_GEMM || pc == PC_KERNEL) && e->layer >= 0 && e->layer < 8) pr->layer_ms[r][e->layer] += e->dur_us * 1e-3;
            if (pc == PC_GEMM && e->layer >= 0) pr->flop[r] += 2.0 * (double)shard[r] * (double)dims[e->layer] * (double)dims[e->layer + 1];
        }
    }
    free(ev);
}

static void prof_average(prof_run *pr)
{
    double n = pr->steps ? pr->steps : 1;
    pr->step_ms /= n;
    for (size_t r = 0; r < pr->ndev && r < PROF_MAXDEV; r++) {
        pr->flop[r] /= n;
        for (int c = 0; c < PC_N; c++) pr->ms[r][c] /= n;
        for (int l = 0; l < 8; l++) pr->layer_ms[r][l] /= n;
    }
}

/* The breakdown of two traced runs (before and after the cuts), device by device, side by side. */
static void prof_print(const prof_run *before, const prof_run *after, const size_t *dims, int nlayers)
{
    const prof_run *run[2] = {before, after};
    printf("   %-22s", "ms per step (share)");
    for (int k = 0; k < 2; k++)
        for (size_t r = 0; r < run[k]->ndev; r++) printf(" | %-6s dev %zu     ", k ? "after" : "before", r);
    printf("\n");
    for (int c = 0; c <= PC_N + 1; c++) {
        printf("   %-22s", c < PC_N ? pc_names[c] : c == PC_N ? "rest (unaccounted)" : "step");
        for (int k = 0; k < 2; k++)
            for (size_t r = 0; r < run[k]->ndev; r++) {
                double sum = 0;
                for (int i = 0; i < PC_N; i++) sum += run[k]->ms[r][i];
                double v = c < PC_N ? run[k]->ms[r][c] : c == PC_N ? run[k]->step_ms - sum : run[k]->step_ms;
                printf(" | %7.2f (%5.1f%%) ", v, 100.0 * v / run[k]->step_ms);
            }
        printf("\n");
    }
    printf("   %-22s", "GEMM GFLOP, GFLOP/s");
    for (int k = 0; k < 2; k++)
        for (size_t r = 0; r < run[k]->ndev; r++)
            printf(" | %5.2f, %6.1f   ", run[k]->flop[r] * 1e-9, run[k]->flop[r] / (run[k]->ms[r][PC_GEMM] * 1e6));
    printf("\n");
    printf("   each layer's GEMMs and kernels on dev 0, before -> after:");
    for (int l = 0; l < nlayers && l < 8; l++)
        printf("%s %zu->%zu %.2f -> %.2f ms", l ? "," : "", dims[l], dims[l + 1], before->layer_ms[0][l], after->layer_ms[0][l]);
    printf("\n");
    for (size_t r = 0; r < after->ndev; r++) printf("   (dev %zu: %s)\n", r, after->name[r]);
}

/* ---- the PyTorch peer -------------------------------------------------------------------- */

typedef struct peer_result {
    double samples_per_s, step_ms, gemm_ms, gemm_flop, gemm_gflops;
    char blas[512];
} peer_result;

/* A python3 that imports torch, into py; 0 when none. */
static int peer_python(char *py, size_t cap)
{
    static const char *const cands[] = {"python3", "/usr/bin/python3"};
    for (size_t i = 0; i < sizeof cands / sizeof *cands; i++) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "%s -c 'import torch' >/dev/null 2>&1", cands[i]);
        if (system(cmd) == 0) {
            snprintf(py, cap, "%s", cands[i]);
            return 1;
        }
    }
    return 0;
}

static double json_number(const char *line, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\": ", key);
    const char *p = strstr(line, k);
    return p ? strtod(p + strlen(k), NULL) : NAN;
}

/* One run of the peer on `ranks` ranks; 0 and a message on failure. */
static int peer_run(const char *py, int ranks, int steps, peer_result *out)
{
    char cmd[1024], line[4096] = "(nothing printed)\n";
    snprintf(cmd, sizeof cmd, "%s '%s' --ranks %d --steps %d --warmup 3 --json 2>&1", py, peer_script(), ranks, steps);
    fflush(stdout); /* what the section printed so far comes before anything the child says */
    FILE *p = popen(cmd, "r");
    if (!p) return 0;
    int ok = 0;
    while (fgets(line, sizeof line, p)) {
        if (line[0] != '{') continue;
        out->samples_per_s = json_number(line, "samples_per_s");
        out->step_ms = json_number(line, "step_ms");
        out->gemm_ms = json_number(line, "gemm_ms");
        out->gemm_flop = json_number(line, "gemm_flop");
        out->gemm_gflops = json_number(line, "gemm_gflops");
        const char *b = strstr(line, "\"blas\": \"");
        if (b) snprintf(out->blas, sizeof out->blas, "%.*s", (int)strcspn(b + 9, "\""), b + 9);
        ok = isfinite(out->samples_per_s) && isfinite(out->gemm_gflops);
    }
    int rc = pclose(p);
    if (!ok || rc != 0) fprintf(stderr, "cldp-bench: the peer (%s) failed: %s", cmd, line);
    return ok && rc == 0;
}

/* ---- the section ------------------------------------------------------------------------- */

static void bench_profile(const opts *o, FILE *js, const cldp_model *m, const data *d)
{
    static const char *const plain[] = {"CLDP_FAST_KERNELS", "off", NULL};
    const size_t dims[4] = {784, o->hidden, o->hidden, 10};
    const int rounds = o->quick ? 2 : 3, steps = o->quick ? 5 : 10;
    char py[64] = "";
    int have_peer = peer_python(py, sizeof py);
    FILE *script = fopen(peer_script(), "r");
    if (script) fclose(script);
    else have_peer = 0;
    size_t ndev = 0;
    cldp_device_count(&ndev);
    printf("\n9. profile: where a step's time goes, MLP 784-%zu-%zu-10, batch %zu, SGD with momentum;\n"
           "   per device, %d traced steps averaged (alternating with the untraced ones below);\n"
           "   before = CLDP_FAST_KERNELS=off (the kernels before the cuts), after = the default\n",
           o->hidden, o->hidden, o->batch, rounds * steps);
    if (!script) printf("   peer: skipped (%s not found: set CLDP_PEER_SCRIPT to samples/peer/torch_ddp_mlp.py)\n", peer_script());
    else if (!have_peer) printf("   peer: skipped (python3-torch not installed: apt-get install python3-torch libopenblas0-pthread)\n");
    fprintf(js, "\"profile\":{");
    for (size_t n = 1; n <= 2 && n <= ndev; n++) {
        const char *devs = need_devices(0, n);
        cldp_trainer *t[2] = {make_trainer_env(m, devs, o->batch, "even", plain), make_trainer(m, devs, o->batch, "even")};
        int counter[2] = {0, 0};
        for (int k = 0; k < 2; k++) one_step(t[k], d, o->batch, &counter[k]), one_step(t[k], d, o->batch, &counter[k]);
        /* rounds alternate everything: traced steps, untraced steps (the throughput), the peer */
        enum { MAXR = 4, MAXS = 10 };
        double ms[2][MAXR * MAXS], peer_sps[MAXR];
        prof_run pr[2];
        memset(pr, 0, sizeof pr);
        peer_result peer = {0};
        int np = 0;
        double peer_rate[MAXR];
        for (int round = 0; round < rounds; round++) {
            for (int s = 0; s < steps; s++) /* step by step: traced and untraced, before and after */
                for (int k = 0; k < 2; k++) {
                    prof_trace(t[k], d, o->batch, 1, dims, &counter[k], &pr[k]);
                    ms[k][round * steps + s] = one_step(t[k], d, o->batch, &counter[k]);
                }
            if (have_peer && peer_run(py, (int)n, steps, &peer)) peer_sps[np] = peer.samples_per_s, peer_rate[np++] = peer.gemm_gflops;
        }
        for (int k = 0; k < 2; k++) prof_average(&pr[k]), cldp_trainer_destroy(t[k]);
        double sps[2], step[2];
        for (int k = 0; k < 2; k++) step[k] = median(ms[k], rounds * steps), sps[k] = (double)o->batch / step[k] * 1e3;
        printf("\n   %zu device%s (%s):\n", n, n > 1 ? "s" : "", devs);
        prof_print(&pr[0], &pr[1], dims, 3);
        printf("   throughput, untraced (%d alternating rounds of %d steps, medians): before %.0f, after %.0f samples/s "
               "(after/before %.3f);\n   a traced step's median is %+.1f%% of an untraced one's\n",
               rounds, steps, sps[0], sps[1], sps[1] / sps[0],
               100.0 * (median(pr[1].each_ms, pr[1].steps < 64 ? pr[1].steps : 64) / step[1] - 1.0));
        fprintf(js, "\"devices%zu\":{\"before_sps\":%.1f,\"after_sps\":%.1f", n, sps[0], sps[1]);
        for (int k = 0; k < 2; k++) {
            fprintf(js, ",\"%s\":{\"step_ms\":%.3f", k ? "after" : "before", pr[k].step_ms);
            static const char *const keys[PC_N] = {"gemm_ms", "kernel_ms", "transfer_ms", "host_ms", "broadcast_ms", "wait_ms"};
            for (int c = 0; c < PC_N; c++) fprintf(js, ",\"%s\":%.3f", keys[c], pr[k].ms[0][c]);
            fprintf(js, ",\"gemm_gflop\":%.4f}", pr[k].flop[0] * 1e-9);
        }
        if (np) {
            double p_sps = median(peer_sps, np), p_step = (double)o->batch / p_sps * 1e3, p_rate = median(peer_rate, np);
            double p_gemm = peer.gemm_flop / (p_rate * 1e6); /* its step's matmuls at its median rate, ms */
            printf("   PyTorch %zu rank%s: %.0f samples/s (median of %d runs); its matmuls alone %.1f ms, %.1f GFLOP/s\n"
                   "     BLAS: %s\n", n, n > 1 ? "s" : "", p_sps, np, p_gemm, p_rate, peer.blas);
            printf("   cldp / PyTorch: before %.3f, after %.3f\n", sps[0] / p_sps, sps[1] / p_sps);
            for (int k = 0; k < 2; k++) {
                /* the devices' mean GEMM share of the traced step, applied to the untraced step (tracing
                 * lengthens a step a little, and the machine drifts), and their mean FLOP */
                double g = 0, f = 0;
                for (size_t r = 0; r < n; r++) g += pr[k].ms[r][PC_GEMM] / pr[k].step_ms * step[k] / (double)n, f += pr[k].flop[r] / (double)n;
                double g_at_peer = f / (p_rate * 1e6), at_peer = step[k] - g + g_at_peer;
                double gap = step[k] - p_step, gemm_part = g - g_at_peer, rest = at_peer - p_step;
                printf("   the gap, %s: cldp %.1f ms/step, PyTorch %.1f: %.1f ms\n"
                       "     GEMM rate %6.1f ms (%3.0f%%): cldp's CLBlast GEMMs %.1f ms at %.1f GFLOP/s, %.1f ms at PyTorch's rate\n"
                       "     the rest  %6.1f ms (%3.0f%%): cldp's %.1f ms outside those GEMMs, PyTorch's %.1f outside its matmuls\n"
                       "     at PyTorch's GEMM rate cldp would run %.0f samples/s, %.3f of PyTorch\n",
                       k ? "after" : "before", step[k], p_step, gap, gemm_part, 100.0 * gemm_part / gap, g, f / (g * 1e6),
                       g_at_peer, rest, 100.0 * rest / gap, step[k] - g, p_step - p_gemm, (double)o->batch / at_peer * 1e3,
                       p_step / at_peer);
                fprintf(js, ",\"gap_%s\":{\"gap_ms\":%.3f,\"gemm_rate_ms\":%.3f,\"rest_ms\":%.3f}", k ? "after" : "before", gap,
                        gemm_part, rest);
            }
            fprintf(js, ",\"peer_sps\":%.1f,\"peer_gemm_gflops\":%.2f,\"ratio_before\":%.4f,\"ratio_after\":%.4f", p_sps,
                    p_rate, sps[0] / p_sps, sps[1] / p_sps);
        } else if (have_peer) {
            printf("   peer: every run failed (above); no ratio\n");
        }
        fprintf(js, "},");
    }
    fprintf(js, "\"peer\":%s},", have_peer ? "true" : "false");
}

#endif
