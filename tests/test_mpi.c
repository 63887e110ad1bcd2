/* test_mpi — the trainer over MPI ranks, run under mpiexec on one machine (tests/CMakeLists.txt).
 *
 *   test_mpi equal K   R ranks of K devices each against 1 rank of R·K devices, bitwise (the
 *                      trees agree when K is 1 or a power of two: cldp_mpi.h); the first step
 *                      against the double-precision CPU reference; repeated runs with the ranks
 *                      delayed at random, bitwise; a checkpoint from R ranks resumed on 1 rank and
 *                      one from 1 rank resumed on R ranks; MPI_Allreduce's option to rounding.
 *   test_mpi speed     split "auto": the shards by every device's measured speed, the same on
 *                      every rank, and the run equal to those shards replayed on 1 rank.
 *   test_mpi stall     rank 1 stops (SIGSTOP) before a step: rank 0's step fails with
 *   test_mpi kill      CLDP_ERR_TIMEOUT naming rank 1 within the watchdog; or rank 1 is killed
 *                      (SIGKILL) in the middle of a step (run with Open MPI's recovery on, so
 *                      the job outlives it), with the same answer. Rank 0 then ends the job
 *                      with MPI_Abort and its verdict as the error code.
 *
 * Rank 0 draws the seed and broadcasts it, so every rank trains on the same fresh random data.
 * While rank 0 trains alone for a comparison the others wait in a barrier that sleeps. */
#define _POSIX_C_SOURCE 200809L
#include <cldp_mpi.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "model.h"
#include "reference.h"
#include "testutil.h"

#define IN 23
#define HID 17
#define OUT 5
#define B 24 /* the global batch */
#define STEPS 6
#define CLDP_TEST_MAX_RANKS 8

static int rank, size;
static float *X;
static int32_t *Y;

static void nap_ms(double ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(fmod(ms, 1000.0) * 1e6)};
    nanosleep(&ts, NULL);
}

/* A barrier that leaves the cores to the rank that computes meanwhile. */
static void idle_barrier(void)
{
    MPI_Request rq;
    int done = 0;
    MPI_Ibarrier(MPI_COMM_WORLD, &rq);
    while (!done) {
        MPI_Test(&rq, &done, MPI_STATUS_IGNORE);
        if (!done) nap_ms(2);
    }
}

/* "p:d,p:d": `count` devices from the `first`-th of every device there is. */
static void spec_of(size_t first, size_t count, char *spec, size_t cap)
{
    size_t idx[64], n = 0, len = 0;
    if (cldp_device_select("all", idx, 64, &n) != CLDP_OK || n < first + count) {
        if (rank == 0) printf("SKIP test_mpi: needs %zu devices per process, found %zu\n", first + count, n);
        MPI_Abort(MPI_COMM_WORLD, TEST_SKIP_CODE);
    }
    spec[0] = 0;
    for (size_t i = 0; i < count; i++) {
        cldp_device_info info;
        cldp_device_get_info(idx[first + i], &info);
        len += (size_t)snprintf(spec + len, cap - len, "%s%u:%u", i ? "," : "", info.platform_index, info.device_index);
    }
}

static cldp_model *model(void)
{
    cldp_model *m;
    cldp_model_create(IN, &m);
    cldp_model_add_dense(m, HID, CLDP_ACT_RELU);
    cldp_model_add_dense(m, OUT, CLDP_ACT_NONE);
    return m;
}

static void options(cldp_trainer_options *o, const char *spec, int sgd)
{
    cldp_trainer_options_init(o);
    o->batch = B;
    o->devices = spec;
    o->seed = 7;
    o->timeout_ms = 20000;
    if (sgd) {
        o->optimizer = CLDP_OPT_SGD;
        o->momentum = 0;
        o->weight_decay = 0;
        o->learning_rate = 0.05f;
    } else {
        o->optimizer = CLDP_OPT_ADAM;
        o->learning_rate = 0.01f;
    }
}

/* Steps [from, to) of the data; ranks nap at random before each when `jitter`. */
static void train(cldp_trainer *t, int from, int to, int jitter)
{
    for (int s = from; s < to; s++) {
        if (jitter) nap_ms((double)(test_rand() % 40));
        cldp_status st = cldp_trainer_step(t, X + (size_t)s * B * IN, Y + (size_t)s * B, B, NULL);
        if (st != CLDP_OK) {
            fprintf(stderr, "FAIL rank %d step %d: %s\n", rank, s, cldp_last_error());
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
    }
}

static float *params_of(cldp_trainer *t, size_t np)
{
    float *p = malloc(np * sizeof *p);
    CHECK_OK(cldp_trainer_get_params(t, p, np));
    return p;
}

static int same_bits(const char *what, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof *a)) {
            fprintf(stderr, "FAIL %s: parameter %zu is %.9g, expected %.9g bit for bit\n", what, i, (double)a[i],
                    (double)b[i]);
            test_failures++;
            return 0;
        }
    printf("ok   %s: %zu parameters equal bit for bit\n", what, n);
    return 1;
}

static cldp_trainer *mpi_trainer(cldp_model *m, size_t per_rank, int sgd, cldp_mpi_combine how, const char **why)
{
    static char spec[256];
    spec_of((size_t)rank * per_rank, per_rank, spec, sizeof spec);
    cldp_trainer_options o;
    options(&o, spec, sgd);
    cldp_trainer *t = NULL;
    cldp_status st = cldp_trainer_create_mpi(m, &o, MPI_COMM_WORLD, how, &t);
    if (st != CLDP_OK) {
        fprintf(stderr, "FAIL rank %d: cldp_trainer_create_mpi: %s\n", rank, cldp_last_error());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    *why = spec;
    return t;
}

static cldp_trainer *local_trainer(cldp_model *m, size_t devices, int sgd)
{
    static char spec[256];
    spec_of(0, devices, spec, sizeof spec);
    cldp_trainer_options o;
    options(&o, spec, sgd);
    cldp_trainer *t = NULL;
    CHECK_OK(cldp_trainer_create(m, &o, &t));
    return t;
}

/* Loads the checkpoint into t, trains its second half of the steps, returns the parameters and
 * destroys t. */
static float *resume(cldp_trainer *t, const char *ck, size_t np)
{
    CHECK_OK(cldp_trainer_load_checkpoint(t, ck, NULL, 0, NULL));
    train(t, STEPS / 2, STEPS, 0);
    float *p = params_of(t, np);
    cldp_trainer_destroy(t);
    return p;
}

/* A traced run of STEPS steps: on the host lane, each step holds one "ranks combine" and, at its
 * end, one "ranks wait" (the time the host waited for the other ranks). */
static void check_trace(void)
{
    size_t n = cldp_trace_event_count(), got = 0;
    cldp_trace_event *ev = malloc((n ? n : 1) * sizeof *ev);
    CHECK_OK(cldp_trace_events(0, ev, n, &got));
    int bad = 0;
    for (uint64_t s = 1; s <= STEPS; s++) {
        const cldp_trace_event *step = NULL, *comb = NULL, *wait = NULL;
        int ncomb = 0, nwait = 0;
        for (size_t i = 0; i < got; i++) {
            if (ev[i].lane != 0 || ev[i].step != s) continue;
            if (!strcmp(ev[i].name, "step")) step = &ev[i];
            if (!strcmp(ev[i].name, "ranks combine")) comb = &ev[i], ncomb++;
            if (!strcmp(ev[i].name, "ranks wait")) wait = &ev[i], nwait++;
        }
        const double e = 0.01; /* us: the file's resolution */
        int ok = step && ncomb == 1 && nwait == 1 && comb->start_us >= step->start_us - e &&
                 comb->start_us + comb->dur_us <= step->start_us + step->dur_us + e && wait->start_us >= comb->start_us - e &&
                 fabs(wait->start_us + wait->dur_us - comb->start_us - comb->dur_us) <= e;
        if (!ok) fprintf(stderr, "FAIL rank %d step %llu: step %s, %d combine, %d wait, or not nested\n", rank,
                         (unsigned long long)s, step ? "found" : "missing", ncomb, nwait);
        bad += !ok;
    }
    test_failures += bad;
    if (!bad) printf("ok   rank %d: the timeline holds each step's ranks combine and wait, nested (%zu events)\n", rank, got);
    free(ev);
}

static void equal_mode(size_t per_rank)
{
    cldp_model *m = model();
    size_t np = cldp_model_param_count(m), all = (size_t)size * per_rank;
    const char *spec;
    char what[160];

    /* the first step against the CPU reference: SGD, so the update is p - lr·g */
    cldp_trainer *t = mpi_trainer(m, per_rank, 1, CLDP_MPI_FIXED_ORDER, &spec);
    float *p0 = params_of(t, np);
    train(t, 0, 1, 0);
    float *p1 = params_of(t, np);
    double *g = malloc(np * sizeof *g), *want = malloc(np * sizeof *want);
    ref_loss_grad(m, p0, X, Y, B, 1.0 / B, g, NULL, NULL);
    for (size_t i = 0; i < np; i++) want[i] = (double)p0[i] - 0.05 * g[i];
    snprintf(what, sizeof what, "%d ranks x %zu: one SGD step vs the double reference", size, per_rank);
    if (test_close(what, p1, want, np, 1e-6, 1e-4)) printf("ok   %s (atol 1e-6, rtol 1e-4)\n", what);
    cldp_trainer_destroy(t);
    free(p0), free(p1), free(g), free(want);

    /* R ranks x K devices, twice with random delays, against 1 rank of R·K devices */
    t = mpi_trainer(m, per_rank, 0, CLDP_MPI_FIXED_ORDER, &spec);
    train(t, 0, STEPS, 0);
    float *ranked = params_of(t, np);
    double ranked_loss = 0; /* evaluation is local to a rank: every row, on this rank's devices */
    size_t ranked_correct = 0;
    CHECK_OK(cldp_trainer_evaluate(t, X, Y, (size_t)STEPS * B, &ranked_loss, &ranked_correct));
    cldp_trainer_destroy(t);
    t = mpi_trainer(m, per_rank, 0, CLDP_MPI_FIXED_ORDER, &spec);
    CHECK_OK(cldp_trace_start(NULL)); /* and traced: the timeline's combine spans */
    train(t, 0, STEPS, 1);
    CHECK_OK(cldp_trace_stop());
    check_trace();
    float *jittered = params_of(t, np);
    cldp_trainer_destroy(t);
    snprintf(what, sizeof what, "rank %d: %d ranks x %zu, ranks delayed at random, traced, vs not", rank, size, per_rank);
    same_bits(what, jittered, ranked, np);
    if (rank == 0) {
        t = local_trainer(m, all, 0);
        train(t, 0, STEPS, 0);
        float *one = params_of(t, np);
        double loss = 0;
        size_t correct = 0;
        CHECK_OK(cldp_trainer_evaluate(t, X, Y, (size_t)STEPS * B, &loss, &correct));
        CHECK(correct == ranked_correct && fabs(loss - ranked_loss) <= 1e-5 * fabs(loss));
        printf("%s evaluation on rank 0 of %d: loss %.9g, %zu correct; on 1 rank: %.9g, %zu\n",
               correct == ranked_correct && fabs(loss - ranked_loss) <= 1e-5 * fabs(loss) ? "ok  " : "FAIL", size,
               ranked_loss, ranked_correct, loss, correct);
        cldp_trainer_destroy(t);
        snprintf(what, sizeof what, "%d ranks x %zu devices vs 1 rank x %zu devices", size, per_rank, all);
        if (per_rank == 1 || (per_rank & (per_rank - 1)) == 0) same_bits(what, ranked, one, np);
        free(one);
    }
    idle_barrier();

    /* MPI_Allreduce's order: to float32 rounding only */
    t = mpi_trainer(m, per_rank, 0, CLDP_MPI_ALLREDUCE, &spec);
    train(t, 0, STEPS, 0);
    float *lib = params_of(t, np);
    cldp_trainer_destroy(t);
    double *ref = malloc(np * sizeof *ref);
    for (size_t i = 0; i < np; i++) ref[i] = ranked[i];
    snprintf(what, sizeof what, "rank %d: the MPI_Allreduce combine vs the fixed order", rank);
    if (test_close(what, lib, ref, np, 1e-5, 1e-3)) printf("ok   %s (atol 1e-5, rtol 1e-3)\n", what);
    free(lib);

    /* checkpoints: R ranks -> 1 rank, and 1 rank -> R ranks */
    char ck[256];
    snprintf(ck, sizeof ck, "/tmp/cldp-test-mpi-%ld.ckpt", (long)getpid());
    MPI_Bcast(ck, sizeof ck, MPI_CHAR, 0, MPI_COMM_WORLD);
    t = mpi_trainer(m, per_rank, 0, CLDP_MPI_FIXED_ORDER, &spec);
    train(t, 0, STEPS / 2, 0);
    if (rank == 0) CHECK_OK(cldp_trainer_save_checkpoint(t, ck, NULL, 0));
    train(t, STEPS / 2, STEPS, 0);
    float *ranks_on = params_of(t, np);
    cldp_trainer_destroy(t);
    if (rank == 0) {
        float *resumed = resume(local_trainer(m, all, 0), ck, np);
        snprintf(what, sizeof what, "a checkpoint of %d ranks resumed on 1 rank x %zu devices", size, all);
        same_bits(what, resumed, ranks_on, np);
        free(resumed);
        /* and the other way: 1 rank saves, the ranks resume */
        t = local_trainer(m, all, 0);
        train(t, 0, STEPS / 2, 0);
        CHECK_OK(cldp_trainer_save_checkpoint(t, ck, NULL, 0));
        cldp_trainer_destroy(t);
    }
    idle_barrier();
    float *from_one = resume(mpi_trainer(m, per_rank, 0, CLDP_MPI_FIXED_ORDER, &spec), ck, np);
    snprintf(what, sizeof what, "rank %d: a checkpoint of 1 rank resumed on %d ranks", rank, size);
    same_bits(what, from_one, ranks_on, np);
    if (rank == 0) remove(ck);
    free(ranked), free(jittered), free(ranks_on), free(from_one), free(ref);
    cldp_model_destroy(m);
}

static void die(int sig)
{
    (void)sig;
    kill(getpid(), SIGKILL);
}

/* Split "auto" over ranks, rank 1's device slowed 3x: the ranks agree on the shards of every
 * step (they sum to the batch), and the run is the run of those shards: replayed by hand on
 * 1 rank x 2 devices it gives the same bits. Where the split goes is timing: printed, not
 * asserted. */
static void speed_mode(void)
{
    enum { SSTEPS = 12 };
    cldp_model *m = model();
    size_t np = cldp_model_param_count(m);
    char spec[64];
    spec_of((size_t)rank, 1, spec, sizeof spec);
    cldp_trainer_options o;
    options(&o, spec, 0);
    o.split = "auto";
    o.balance = 1; /* the slowdown stands in for a slower device: balance as for differing ones */
    if (rank == 1) CHECK_OK(cldp_test_control(CLDP_TEST_CONFIG, "CLDP_TEST_SLOWDOWN", "0:3"));
    cldp_trainer *t = NULL;
    CHECK_OK(cldp_trainer_create_mpi(m, &o, MPI_COMM_WORLD, CLDP_MPI_FIXED_ORDER, &t));
    if (rank == 1) CHECK_OK(cldp_test_control(CLDP_TEST_CONFIG, "CLDP_TEST_SLOWDOWN", (const char *)NULL));
    unsigned long long mine[SSTEPS], shards[SSTEPS][CLDP_TEST_MAX_RANKS];
    for (int s = 0; s < SSTEPS; s++) {
        train(t, s % STEPS, s % STEPS + 1, 0);
        cldp_device_stats d;
        CHECK_OK(cldp_trainer_device_stats(t, 0, &d));
        mine[s] = d.shard;
    }
    float *ranked = params_of(t, np);
    cldp_trainer_destroy(t);
    MPI_Gather(mine, SSTEPS, MPI_UNSIGNED_LONG_LONG, shards, SSTEPS, MPI_UNSIGNED_LONG_LONG, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        /* shards[p][s] after the gather: rank p's shard at step s */
        unsigned long long (*by_rank)[SSTEPS] = (unsigned long long (*)[SSTEPS])shards;
        int summed = 1;
        for (int s = 0; s < SSTEPS; s++) {
            unsigned long long sum = 0;
            for (int p = 0; p < size; p++) sum += by_rank[p][s];
            summed &= sum == B;
        }
        CHECK(summed);
        printf("%s split auto over %d ranks, rank 1 slowed 3x: the shards of every step sum to %d; first step %llu/%llu, "
               "last %llu/%llu (a figure, not asserted)\n", summed ? "ok  " : "FAIL", size, B, by_rank[0][0],
               by_rank[1][0], by_rank[0][SSTEPS - 1], by_rank[1][SSTEPS - 1]);
        t = local_trainer(m, (size_t)size, 0);
        for (int s = 0; s < SSTEPS; s++) {
            double w[CLDP_TEST_MAX_RANKS];
            for (int p = 0; p < size; p++) w[p] = (double)by_rank[p][s];
            CHECK_OK(cldp_trainer_set_split(t, w, (size_t)size));
            train(t, s % STEPS, s % STEPS + 1, 0);
        }
        float *one = params_of(t, np);
        cldp_trainer_destroy(t);
        same_bits("split auto over ranks vs its shards replayed on 1 rank", ranked, one, np);
        free(one);
    }
    free(ranked);
    cldp_model_destroy(m);
}

/* Rank 1 stops before step 3, or dies in the middle of it; rank 0 must hear of it within the watchdog. */
static int failure_mode(int kill_it)
{
    cldp_model *m = model();
    const char *spec;
    cldp_trainer_options o;
    cldp_trainer *t = mpi_trainer(m, 1, 0, CLDP_MPI_FIXED_ORDER, &spec);
    cldp_trainer_destroy(t);
    char s[64];
    spec_of((size_t)rank, 1, s, sizeof s);
    options(&o, s, 0);
    o.timeout_ms = 3000;
    CHECK_OK(cldp_trainer_create_mpi(m, &o, MPI_COMM_WORLD, CLDP_MPI_FIXED_ORDER, &t));
    train(t, 0, 2, 0);
    if (rank == 1) {
        if (kill_it) { /* in the middle of the step: its update phase stalls, and SIGKILL comes */
            CHECK_OK(cldp_test_control(CLDP_TEST_FAULT, t, "0:2:stall_reduce:10000"));
            fflush(NULL);
            signal(SIGALRM, die);
            alarm(1);
            cldp_trainer_step(t, X + 2 * B * IN, Y + 2 * B, B, NULL);
            pause();
        }
        raise(SIGSTOP);
        pause();
    }
    double t0 = cldp_now_ms();
    cldp_status st = cldp_trainer_step(t, X + 2 * B * IN, Y + 2 * B, B, NULL);
    double ms = cldp_now_ms() - t0;
    CHECK_STATUS(st, CLDP_ERR_TIMEOUT);
    CHECK(strstr(cldp_last_error(), "rank 1") != NULL);
    CHECK(ms < 3000 * 2 + 5000); /* a bound on the wait, not a speed: the watchdog is 3 s */
    printf("%s rank 1 %s: rank 0's step failed after %.0f ms: %s\n", test_failures ? "FAIL" : "ok  ",
           kill_it ? "killed" : "stopped", ms, cldp_last_error());
    /* the trainer refuses further steps */
    CHECK_STATUS(cldp_trainer_step(t, X, Y, B, NULL), CLDP_ERR_STATE);
    cldp_trainer_destroy(t);
    cldp_model_destroy(m);
    fflush(NULL);
    return test_failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const char *mode = argc > 1 ? argv[1] : "equal";
    uint64_t seed = rank == 0 ? test_seed("test_mpi") : 0;
    MPI_Bcast(&seed, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    test_rng_state = seed;
    size_t rows = (size_t)STEPS * B;
    X = malloc(rows * IN * sizeof *X);
    Y = malloc(rows * sizeof *Y);
    test_fill(X, rows * IN, -1, 1);
    for (size_t i = 0; i < rows; i++) Y[i] = (int32_t)(test_rand() % OUT);
    test_rng_state = seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(rank + 1)); /* each rank's own delays */

    if (!strcmp(mode, "stall") || !strcmp(mode, "kill")) {
        if (size < 2) {
            printf("SKIP test_mpi %s: needs 2 ranks\n", mode);
            MPI_Finalize();
            return TEST_SKIP_CODE;
        }
        int verdict = failure_mode(!strcmp(mode, "kill"));
        MPI_Abort(MPI_COMM_WORLD, verdict); /* rank 1 cannot take part in a clean finalize */
    }
    if (!strcmp(mode, "speed")) speed_mode();
    else equal_mode(argc > 2 ? (size_t)atoi(argv[2]) : 1);
    int bad = test_failures, any = 0;
    MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    free(X);
    free(Y);
    MPI_Finalize();
    if (rank == 0) printf("%s test_mpi %s (%d ranks)\n", any ? "FAIL" : "PASS", mode, size);
    return any ? 1 : 0;
}
