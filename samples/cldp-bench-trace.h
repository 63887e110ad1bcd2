/* cldp-bench-trace.h — the section "trace" of cldp-bench: what the timeline costs. The standard MLP
 * on the first two devices, step time with tracing off and on (alternating step by step, each
 * traced step a recording of its own, started before it and stopped after it, so its clock
 * calibration counts), and with command queues made without CL_QUEUE_PROFILING_ENABLE (a second
 * trainer, whose creation alone sees the switch), so that leaving profiling on in every queue is
 * shown to cost nothing; each also as the process's CPU time per step, which the other programs of
 * a shared machine move far less; then the events of one traced step, per lane and category. With
 * --trace FILE the last traced step's recording is written there.
 * Included by cldp-bench.c alone. */
#include "trace.h"

/* The events of `step` in the recording now held, per lane: the category counts. */
static void trace_step_counts(uint64_t step, FILE *js)
{
    static const char *const cats[] = {"gemm", "kernel", "transfer", "broadcast", "reduce", "update", "wait", "step", "serve"};
    enum { NCAT = sizeof cats / sizeof cats[0], MAXL = 16 };
    size_t n = cldp_trace_event_count(), counts[MAXL][NCAT] = {{0}}, total[MAXL] = {0};
    double busy[MAXL] = {0}, step_us = 0;
    cldp_trace_event *ev = malloc((n ? n : 1) * sizeof *ev);
    if (!ev || cldp_trace_events(0, ev, n, &n) != CLDP_OK) die("reading the timeline");
    int nlanes = 0;
    for (size_t i = 0; i < n; i++) {
        if (ev[i].step != step || ev[i].lane >= MAXL) continue;
        for (size_t c = 0; c < NCAT; c++)
            if (!strcmp(ev[i].category, cats[c])) counts[ev[i].lane][c]++;
        total[ev[i].lane]++;
        if (!strcmp(ev[i].category, "gemm") || !strcmp(ev[i].category, "kernel")) busy[ev[i].lane] += ev[i].dur_us;
        if (ev[i].lane + 1 > nlanes) nlanes = ev[i].lane + 1;
        if (ev[i].lane == 0 && !strcmp(ev[i].name, "step")) step_us = ev[i].dur_us;
    }
    printf("   events of step %llu (%.1f ms), per lane:\n", (unsigned long long)step, step_us / 1e3);
    fprintf(js, "\"trace_lanes\":[");
    for (int l = 0; l < nlanes; l++) {
        char name[200];
        if (cldp_trace_lane_name(l, name, sizeof name) != CLDP_OK) snprintf(name, sizeof name, "?");
        printf("     lane %d %-40.40s %3zu:", l, name, total[l]);
        fprintf(js, "%s{\"lane\":%d,\"events\":%zu", l ? "," : "", l, total[l]);
        for (size_t c = 0; c < NCAT; c++)
            if (counts[l][c]) {
                printf(" %s %zu", cats[c], counts[l][c]);
                fprintf(js, ",\"%s\":%zu", cats[c], counts[l][c]);
            }
        if (l) printf("; GEMMs and kernels %.1f ms", busy[l] / 1e3);
        printf("\n");
        fprintf(js, "}");
    }
    fprintf(js, "],");
    free(ev);
}

/* One step of a trainer: wall ms, and in *cpu the process's CPU ms (its own work: less moved by
 * other programs on the machine than the wall time, on PoCL, whose devices compute on its threads). */
static double cpu_step(cldp_trainer *t, const data *d, size_t batch, int *counter, double *cpu)
{
    struct timespec a, b;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    double ms = one_step(t, d, batch, counter);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
    *cpu = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) * 1e-6;
    return ms;
}

static void bench_trace(const opts *o, FILE *js, const cldp_model *m, const data *d, const char *path)
{
    const char *devs = need_devices(0, 2);
    cldp_trainer *t = make_trainer(m, devs, o->batch, "even");
    cldp_trace_profile_queues = 0; /* read when a replica makes its queues, during creation */
    cldp_trainer *plain = make_trainer(m, devs, o->batch, "even");
    cldp_trace_profile_queues = 1;
    /* step by step, alternating (the order reversed every other time, so that a drift of the
     * machine's speed favours none), and medians */
    enum { MAXS = 64 };
    int steps = 3 * o->steps < MAXS ? 3 * o->steps : MAXS, nt = 0, np = 0;
    double off[MAXS], on[MAXS], unprof[MAXS], cpu[3][MAXS];
    one_step(t, d, o->batch, &nt), one_step(plain, d, o->batch, &np); /* unmeasured */
    for (int k = 0; k < steps; k++) {
        for (int j = 0; j < 3; j++) {
            int which = k % 2 ? 2 - j : j; /* 0 off, 1 unprofiled, 2 on */
            if (which == 0) off[k] = cpu_step(t, d, o->batch, &nt, &cpu[0][k]);
            if (which == 1) unprof[k] = cpu_step(plain, d, o->batch, &np, &cpu[1][k]);
            if (which != 2) continue;
            if (cldp_trace_start(k + 1 == steps ? path : NULL) != CLDP_OK) die("--trace");
            on[k] = cpu_step(t, d, o->batch, &nt, &cpu[2][k]);
            if (cldp_trace_stop() != CLDP_OK) die("writing the timeline");
        }
    }
    uint64_t last_step = (uint64_t)nt - (steps % 2 == 0); /* its last traced step (an even count ends on off) */
    double moff = median(off, steps), mon = median(on, steps), mun = median(unprof, steps);
    double coff = median(cpu[0], steps), cun = median(cpu[1], steps), con = median(cpu[2], steps);
    printf("\n11. trace: the timeline's cost, MLP 784-%zu-%zu-10, batch %zu, 2 devices (%s), %d alternating steps\n"
           "   each, medians\n", o->hidden, o->hidden, o->batch, devs, steps);
    printf("   tracing off %.2f ms/step, on %.2f ms/step: on / off %.4f (target <= 1.03)\n", moff, mon, mon / moff);
    printf("   queues without profiling %.2f ms/step: profiled / not %.4f (profiling stays on in every queue)\n", mun,
           moff / mun);
    printf("   the process's CPU time per step (its own work, less moved by other load): off %.1f ms, on %.1f ms,\n"
           "   unprofiled %.1f ms: on / off %.4f, profiled / not %.4f\n", coff, con, cun, con / coff, coff / cun);
    if (path) printf("   the last traced step's timeline written to %s\n", path);
    fprintf(js, "\"trace\":{\"off_ms\":%.3f,\"on_ms\":%.3f,\"ratio\":%.4f,\"unprofiled_ms\":%.3f,\"profiled_ratio\":%.4f,"
                "\"cpu_ratio\":%.4f,\"cpu_profiled_ratio\":%.4f},",
            moff, mon, mon / moff, mun, moff / mun, con / coff, coff / cun);
    trace_step_counts(last_step, js);
    cldp_trainer_destroy(t);
    cldp_trainer_destroy(plain);
}
