/* cldp-bench-mpi.h — cldp-bench's section "mpi", run under mpiexec with 2 ranks on one machine:
 *
 *     mpiexec --bind-to none -n 2 env POCL_DEVICES="basic basic" cldp-bench --only mpi
 *
 * The same training step three ways, alternating round by round so the machine's drift falls on
 * all of them alike: 2 ranks x 1 device (rank r on device r) combining in the fixed order, the
 * same with MPI_Allreduce, and 1 rank x 2 devices (rank 0 alone, the other rank asleep in a
 * barrier). Ratios of throughput, and the bytes each rank sends per step. --bind-to none: Open
 * MPI binds each of 2 ranks to one core by default, which would leave the 1-rank run one core
 * for its two devices. Included by
 * cldp-bench.c; without -DCLDP_WITH_MPI=ON the section says how to get it. */
#ifndef CLDP_BENCH_MPI_H
#define CLDP_BENCH_MPI_H

#ifdef CLDP_WITH_MPI
#include "cldp_mpi.h"
#include "ranks.h"
#include "reducer.h"

/* A barrier that sleeps, so the rank that computes meanwhile has the cores. */
static void bench_mpi_idle_barrier(void)
{
    MPI_Request rq;
    int done = 0;
    MPI_Ibarrier(MPI_COMM_WORLD, &rq);
    while (!done) {
        MPI_Test(&rq, &done, MPI_STATUS_IGNORE);
        if (!done) nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
}

static cldp_trainer *bench_mpi_trainer(const cldp_model *m, const char *devices, size_t batch, cldp_mpi_combine how)
{
    cldp_trainer_options o = bench_options(devices, batch, NULL);
    cldp_trainer *t;
    if (cldp_trainer_create_mpi(m, &o, MPI_COMM_WORLD, how, &t) != CLDP_OK) die("creating an MPI trainer");
    return t;
}

/* One combine of `count` floats over the ranks as the trainer runs it (pieces offered in order,
 * then finished), ms. */
static double bench_mpi_combine_once(cldp_ranks *rk, const float *in, float *out, size_t count)
{
    size_t np = (count + CLDP_PIECE_FLOATS - 1) / CLDP_PIECE_FLOATS;
    double t0 = now_ms();
    if (rk->ops->begin(rk, in, out, count, np) != CLDP_OK) die("combine");
    for (size_t p = 0; p < np; p++) {
        size_t b = p * CLDP_PIECE_FLOATS, e = b + CLDP_PIECE_FLOATS < count ? b + CLDP_PIECE_FLOATS : count;
        rk->ops->offer(rk, p, b, e);
        rk->ops->progress(rk);
    }
    if (rk->ops->finish(rk, 60000) != CLDP_OK) die("combine");
    return now_ms() - t0;
}

/* The host collective over 2 devices in one process (rank 0's devices 0 and 1), ms. */
static double bench_mpi_local_once(cldp_collective *c, cl_mem *buf)
{
    double t0 = now_ms();
    if (cldp_collective_allreduce(c, buf, 0, 0.5f) != CLDP_OK) die("allreduce");
    return now_ms() - t0;
}

/* algbw and busbw of the inter-rank combine (both orders) beside the intra-rank collective. */
static void bench_mpi_bandwidth(FILE *js, int rank, size_t count)
{
    cldp_ranks *rk[2];
    for (int f = 0; f < 2; f++)
        if (cldp_ranks_create_mpi(MPI_COMM_WORLD, f == 0, 1, 0, 60000, &rk[f]) != CLDP_OK) die("MPI ranks");
    float *in = malloc(count * sizeof(float)), *out = malloc(count * sizeof(float));
    for (size_t i = 0; i < count; i++) in[i] = (float)(i % 1000) * 1e-3f;
    cldp_collective *c = NULL;
    cl_context ctx[2];
    cl_command_queue q[2];
    cl_mem buf[2];
    if (rank == 0) {
        const cldp_dev *devs;
        size_t ndev;
        if (cldp_devices(&devs, &ndev) != CLDP_OK) die("devices");
        for (int r = 0; r < 2; r++) {
            cl_int err;
            ctx[r] = clCreateContext(NULL, 1, &devs[r].id, NULL, NULL, &err);
            q[r] = clCreateCommandQueue(ctx[r], devs[r].id, 0, &err);
            buf[r] = clCreateBuffer(ctx[r], CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, count * sizeof(float), in, &err);
            if (err != CL_SUCCESS) die("buffer");
        }
        if (cldp_collective_create(q, 2, count, &c) != CLDP_OK) die("collective");
    }
    enum { REPS = 7 };
    double ms[3][REPS];
    for (int k = -1; k < REPS; k++) { /* alternating; the first round unmeasured */
        double a = bench_mpi_combine_once(rk[0], in, out, count), b = bench_mpi_combine_once(rk[1], in, out, count);
        double l = rank == 0 ? bench_mpi_local_once(c, buf) : 0;
        bench_mpi_idle_barrier();
        if (k >= 0) ms[0][k] = a, ms[1][k] = b, ms[2][k] = l;
    }
    double bytes = (double)count * sizeof(float);
    static const char *what[3] = {"2 ranks, fixed order", "2 ranks, MPI_Allreduce", "1 rank, 2 devices (cldp_collective)"};
    static const char *key[3] = {"fixed", "allreduce", "intra"};
    printf("   combine of %.1f MB (%zu floats), medians of %d: algbw = bytes / time, busbw = algbw x 2(n-1)/n\n",
           bytes / 1e6, count, REPS);
    fprintf(js, "\"mpi_bw_%zu\":{", count);
    for (int i = 0; i < 3; i++) {
        double med = rank == 0 ? median(ms[i], REPS) : 1, alg = bytes / (med * 1e-3), bus = alg; /* 2(n-1)/n = 1 at n=2 */
        printf("     %-38s %8.2f ms  algbw %6.2f GB/s  busbw %6.2f GB/s\n", what[i], med, alg * 1e-9, bus * 1e-9);
        fprintf(js, "%s\"%s_ms\":%.3f,\"%s_algbw_gbs\":%.3f", i ? "," : "", key[i], med, key[i], alg * 1e-9);
    }
    fprintf(js, "},");
    if (c) {
        cldp_collective_destroy(c);
        for (int r = 0; r < 2; r++) {
            clReleaseMemObject(buf[r]);
            clReleaseCommandQueue(q[r]);
            clReleaseContext(ctx[r]);
        }
    }
    for (int f = 0; f < 2; f++) rk[f]->ops->destroy(rk[f]);
    free(in);
    free(out);
}

static void bench_mpi(const opts *o, FILE *js, const cldp_model *m, const data *d)
{
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size != 2) {
        printf("\nmpi: needs exactly 2 ranks (mpiexec -n 2 cldp-bench --only mpi); %d given, skipped\n", size);
        return;
    }
    size_t ndev = 0;
    cldp_device_count(&ndev);
    if (ndev < 2) die("the mpi section needs 2 devices per rank (POCL_DEVICES=\"basic basic\")");
    /* each rank on its own device */
    cldp_trainer *fixed = bench_mpi_trainer(m, rank ? "0:1" : "0:0", o->batch, CLDP_MPI_FIXED_ORDER);
    cldp_trainer *lib = bench_mpi_trainer(m, rank ? "0:1" : "0:0", o->batch, CLDP_MPI_ALLREDUCE);
    cldp_trainer *one = rank == 0 ? make_trainer(m, "0:0,0:1", o->batch, "even") : NULL;
    enum { ROUNDS = 4 };
    int steps = o->steps;
    double ms[3][ROUNDS];
    for (int k = 0; k < ROUNDS; k++) {
        ms[0][k] = time_steps(fixed, d, o->batch, steps);
        ms[1][k] = time_steps(lib, d, o->batch, steps);
        if (rank == 0) ms[2][k] = time_steps(one, d, o->batch, steps);
        bench_mpi_idle_barrier();
    }
    double med[3];
    for (int i = 0; i < 3; i++) med[i] = rank == 0 ? median(ms[i], ROUNDS) : 0;
    double bytes = 2.0 * (double)(size - 1) / size * (double)cldp_model_param_count(m) * sizeof(float);
    printf("\nmpi: 2 ranks x 1 device vs 1 rank x 2 devices (%d rounds of %d steps, medians)\n", ROUNDS, steps);
    printf("   2 ranks x 1, fixed order    %7.1f ms/step  %7.0f samples/s\n", med[0], o->batch / med[0] * 1e3);
    printf("   2 ranks x 1, MPI_Allreduce  %7.1f ms/step  %7.0f samples/s\n", med[1], o->batch / med[1] * 1e3);
    printf("   1 rank  x 2 devices         %7.1f ms/step  %7.0f samples/s\n", med[2], o->batch / med[2] * 1e3);
    printf("   ratio 2x1 / 1x2 throughput  %.3f (target >= 0.9); fixed order / MPI_Allreduce %.3f\n", med[2] / med[0],
           med[1] / med[0]);
    printf("   each rank sends and receives %.1f MB per step (reduce-scatter + all-gather of %zu floats)\n",
           bytes / 1e6, cldp_model_param_count(m));
    printf("   the inter-rank step alone, beside the intra-rank collective (host memory over MPI vs\n"
           "   device -> host -> device in one process):\n");
    bench_mpi_bandwidth(js, rank, cldp_model_param_count(m));
    bench_mpi_bandwidth(js, rank, (64u << 20) / sizeof(float));
    fprintf(js, "\"mpi\":{\"ranks2x1_fixed_ms\":%.2f,\"ranks2x1_allreduce_ms\":%.2f,\"rank1x2_ms\":%.2f,"
                "\"ratio\":%.4f,\"bytes_per_step\":%.0f},",
            med[0], med[1], med[2], med[2] / med[0], bytes);
    cldp_trainer_destroy(fixed);
    cldp_trainer_destroy(lib);
    cldp_trainer_destroy(one);
}

static int bench_mpi_begin(int *argc, char ***argv)
{
    int provided;
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank != 0 && !freopen("/dev/null", "w", stdout)) return 1; /* rank 0 reports */
    return 0;
}

static void bench_mpi_end(void) { MPI_Finalize(); }
#else
static void bench_mpi(const opts *o, FILE *js, const cldp_model *m, const data *d)
{
    (void)o, (void)js, (void)m, (void)d;
    printf("\nmpi: this cldp-bench was built without MPI; configure with -DCLDP_WITH_MPI=ON and run\n"
           "     mpiexec --bind-to none -n 2 env POCL_DEVICES=\"basic basic\" cldp-bench --only mpi\n");
}
static int bench_mpi_begin(int *argc, char ***argv) { (void)argc, (void)argv; return 0; }
static void bench_mpi_end(void) {}
#endif

#endif
