/* cldp-train-mpi.h — cldp-train as one rank of a run under mpirun (--mpi), through cldp_mpi.h.
 * Every rank reads the dataset, draws the same order from the seed and passes the same global
 * batch to its trainer, which computes only its devices' shards. Rank 0 alone prints and saves
 * checkpoints (the others' stdout goes to /dev/null; their errors still reach stderr). The ranks agree after every step on whether to stop, so a signal that reaches
 * them at different moments still ends them after the same step. Built with MPI only when cldp
 * was configured with -DCLDP_WITH_MPI=ON; otherwise --mpi is refused with what to do. */
#ifndef CLDP_TRAIN_MPI_H
#define CLDP_TRAIN_MPI_H

#include <stdio.h>

#include "cldp.h"

static int mpi_rank = 0; /* this process's rank (0 without MPI) */

#ifdef CLDP_WITH_MPI
static int mpi_size = 1, mpi_running = 0;
#include "cldp_mpi.h"

/* Joins the job; returns nonzero (message printed) when MPI cannot give what cldp needs. */
static int mpi_begin(int *argc, char ***argv, int allreduce)
{
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "cldp-train: MPI_Init_thread failed; run under mpirun (e.g. mpirun -n 2 cldp-train --mpi)\n");
        return 1;
    }
    mpi_running = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &mpi_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &mpi_size);
    if (mpi_rank != 0 && !freopen("/dev/null", "w", stdout)) return 1;
    printf("cldp-train: rank 0 of %d MPI ranks; the ranks combine in %s\n", mpi_size,
           allreduce ? "MPI_Allreduce's order: NOT bitwise reproducible from run to run, nor equal to one process's "
                       "result (--mpi-combine fixed is)"
                     : "a fixed order: bitwise reproducible");
    return 0;
}

static cldp_status mpi_create(const cldp_model *m, const cldp_trainer_options *o, int allreduce, cldp_trainer **t)
{
    return cldp_trainer_create_mpi(m, o, MPI_COMM_WORLD, allreduce ? CLDP_MPI_ALLREDUCE : CLDP_MPI_FIXED_ORDER, t);
}

/* The signal that stops the run, agreed by every rank (the largest any rank took, 0: none): the
 * ranks stop after the same step. */
static int mpi_agree(int sig)
{
    int agreed = sig;
    if (mpi_running) MPI_Allreduce(&sig, &agreed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return agreed;
}

/* Leaves the job: a clean finalize when every rank ends well, else ends them all (a rank that
 * failed or fell silent cannot take part in MPI_Finalize). */
static int mpi_end(int code)
{
    if (!mpi_running) return code;
    fflush(NULL);
    if (code != 0 && code != 130 && code != 143) MPI_Abort(MPI_COMM_WORLD, code);
    MPI_Finalize();
    return code;
}
#else
static int mpi_begin(int *argc, char ***argv, int allreduce)
{
    (void)argc, (void)argv, (void)allreduce;
    fprintf(stderr, "cldp-train: --mpi: this cldp-train was built without MPI; configure cldp with -DCLDP_WITH_MPI=ON "
                    "(Debian: apt-get install openmpi-bin libopenmpi-dev) and run it under mpirun\n");
    return 1;
}

static cldp_status mpi_create(const cldp_model *m, const cldp_trainer_options *o, int allreduce, cldp_trainer **t)
{
    (void)allreduce;
    return cldp_trainer_create(m, o, t);
}

static int mpi_agree(int sig) { return sig; }
static int mpi_end(int code) { return code; }
#endif

#endif
