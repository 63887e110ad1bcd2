/* ranks.h — the inter-rank combine as the trainer sees it: a small interface that the MPI build
 * implements (mpi_combine.c; the trainer's side is trainer_ranks.c), so the trainer never includes mpi.h and the library without MPI is
 * unchanged. One process (a rank) per machine or NUMA node; each sums its own devices with the
 * local tree, then the ranks combine their host sums here. Internal. */
#ifndef CLDP_RANKS_H
#define CLDP_RANKS_H

#include "common.h"

#define CLDP_MAX_MPI_RANKS 64         /* processes */
#define CLDP_MAX_GLOBAL_DEVICES 256   /* devices over all of them */

typedef struct cldp_ranks cldp_ranks;

typedef struct cldp_ranks_ops {
    /* A step's combine: in[0, n) summed over the ranks into out[0, n) on every rank (in and out
     * may not overlap), in `npieces` pieces that the caller offers in index order as each becomes
     * final on this rank, so the combine of the first pieces runs while the local tree still
     * sums the others. Every rank has the same pieces. The fixed-order combine sums the ranks in
     * the pairwise tree ((r0+r1)+(r2+r3))+..., whatever the arrival order or the MPI library's
     * algorithms; MPI_Allreduce is the library's order. Called from one thread only (the one
     * that calls the trainer): begin, then offer and progress (never blocking; an error is kept
     * for finish), then finish, which waits for every piece, giving up with CLDP_ERR_TIMEOUT
     * after timeout_ms (0: never), naming the rank it waits for. */
    cldp_status (*begin)(cldp_ranks *rk, const float *in, float *out, size_t n, size_t npieces);
    void (*offer)(cldp_ranks *rk, size_t p, size_t begin, size_t end);
    void (*progress)(cldp_ranks *rk);
    cldp_status (*finish)(cldp_ranks *rk, double timeout_ms);
    /* Sums v[0, k) over the ranks, in rank order, on every rank (k <= 4). */
    cldp_status (*sum_doubles)(cldp_ranks *rk, double *v, size_t k, double timeout_ms);
    /* Every rank's mine[0, k) into all[rank * k + i] on every rank (the same k everywhere). */
    cldp_status (*gather_doubles)(cldp_ranks *rk, const double *mine, size_t k, double *all, double timeout_ms);
    /* 1 when a message may still read or write the buffers given to begin (after a timeout):
     * they must then never be freed. */
    int (*stranded)(const cldp_ranks *rk);
    void (*destroy)(cldp_ranks *rk);
} cldp_ranks_ops;

struct cldp_ranks {
    const cldp_ranks_ops *ops;
    size_t rank, size;            /* this rank, and how many there are */
    size_t devices[CLDP_MAX_MPI_RANKS]; /* (size) devices each rank drives */
    size_t device_base;           /* global index of this rank's first device */
    size_t global_devices;        /* all ranks' devices */
    int fixed_order;              /* 1: the deterministic combine, 0: MPI_Allreduce */
    int by_speed;                 /* split "auto": shards by every device's measured speed */
};

#ifdef CLDP_WITH_MPI
#include <mpi.h>
/* The MPI combine over `comm` (mpi_combine.c): a collective call. Every rank says how many
 * devices it drives and a value every rank must agree on (refused by name otherwise); waits for
 * the others at most timeout_ms (0: no limit). fixed_order 0 uses MPI_Iallreduce. */
cldp_status cldp_ranks_create_mpi(MPI_Comm comm, int fixed_order, size_t devices, unsigned long long agree,
                                  double timeout_ms, cldp_ranks **out);
#endif

#endif
