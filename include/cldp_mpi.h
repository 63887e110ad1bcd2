/* cldp_mpi.h — training over several processes (ranks) with MPI: each rank drives its own
 * devices and sums their gradients with the local tree, the ranks combine their sums, and every
 * rank applies the same optimizer update to its copy of the parameters. Built when cldp is
 * configured with -DCLDP_WITH_MPI=ON; link with cldp and MPI (CMake: cldp::cldp MPI::MPI_C).
 *
 *     MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
 *     cldp_trainer_create_mpi(m, &o, MPI_COMM_WORLD, CLDP_MPI_FIXED_ORDER, &t);
 *     cldp_trainer_step(t, x, labels, batch, &s);   // every rank passes the same global batch
 *
 * The global batch: every rank calls cldp_trainer_step with the same `batch` rows (the whole
 * global batch, e.g. each rank reads the dataset and draws the same order from the same seed);
 * the batch is split over all the ranks' devices — evenly (o.split NULL or "even"), or with
 * o.split = "auto" by every device's measured speed (each rank's balancer fits its devices' fixed
 * cost and cost per sample; the ranks exchange the fits before each step and all compute the same
 * shards) — each rank computing only its devices' rows, and the gradient is scaled by 1/batch
 * over the whole batch. Every step is a collective:
 * every rank must call it, with the same rows. Evaluation and prediction are local to a rank.
 *
 * The combine. CLDP_MPI_FIXED_ORDER (the default to use) sums the ranks' contributions in the
 * same pairwise tree as the devices of one process, whatever the arrival order or the MPI
 * library's algorithms: repeated runs give the same bits, and R ranks of 1 device give the bits
 * of 1 rank with R devices. More generally R ranks of k devices give the bits of 1 rank of R·k
 * devices when k is a power of two (the tree over all devices is then the tree over the ranks of
 * the ranks' trees); otherwise they agree to float32 rounding. CLDP_MPI_ALLREDUCE uses
 * MPI_Iallreduce: the MPI library chooses the summation order, so results are not reproducible
 * from run to run, nor equal to one process's.
 *
 * MPI threads: cldp calls MPI only from the thread that calls the trainer, so MPI must be
 * initialised with at least MPI_THREAD_FUNNELED. cldp works on a duplicate of `comm` with
 * MPI_ERRORS_RETURN.
 *
 * Failures. A rank that dies or stops answering makes the others' step fail with
 * CLDP_ERR_TIMEOUT within the options' timeout_ms, naming the rank; an MPI error fails it with
 * CLDP_ERR_IO. The ranks are then out of step: the trainer can only be destroyed, and the job
 * should end with MPI_Abort. Only the stop failure policy is available over several ranks, and
 * the split is even or "auto"; bitwise equality with one process holds for the even split (a
 * speed-aware split gives the bits of the same shards in one process).
 *
 * Checkpoints. The parameters and optimizer state are the same on every rank: save from rank 0
 * only (cldp_trainer_save_checkpoint). Any rank count or device count resumes from the file. */
#ifndef CLDP_MPI_H
#define CLDP_MPI_H

#include <mpi.h>

#include "cldp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How the ranks combine their local sums. */
typedef enum cldp_mpi_combine {
    CLDP_MPI_FIXED_ORDER = 0, /* deterministic: a fixed tree over the ranks */
    CLDP_MPI_ALLREDUCE = 1    /* MPI_Iallreduce: the library's order, not reproducible */
} cldp_mpi_combine;

/* A trainer over the ranks of `comm`: a collective call (every rank of comm calls it, with the
 * same model and options; a rank whose model, batch, optimizer, learning rate or seed differ is
 * refused by name). Each rank selects its own devices with opts->devices (or CLDP_DEVICES). */
CLDP_API cldp_status cldp_trainer_create_mpi(const cldp_model *model, const cldp_trainer_options *opts,
                                             MPI_Comm comm, cldp_mpi_combine combine, cldp_trainer **out);

#ifdef __cplusplus
}
#endif

#endif
