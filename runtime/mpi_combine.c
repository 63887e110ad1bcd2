/* mpi_combine.c — the ranks' combine over MPI (ranks.h), built with -DCLDP_WITH_MPI=ON.
 *
 * The fixed-order combine is a reduce-scatter then an all-gather, both from non-blocking
 * point-to-point messages: the vector is cut into one chunk per rank (cldp_chunk), rank k
 * receives chunk k from every other rank, sums the R contributions in the pairwise tree
 * (cldp_tree_sum, the tree the local reduction uses, so R ranks of 1 device give the bits of 1
 * rank of R devices), then sends its summed chunk to every rank. Who arrives first never changes
 * a bit, and neither does the MPI library's choice of algorithm. MPI_Iallreduce is the other
 * option: the library's order, not reproducible from run to run.
 *
 * Every wait polls its requests against a deadline (the trainer's watchdog), sleeping between
 * polls so a waiting rank leaves its core to the devices: a rank that died or stopped answering
 * ends the call with CLDP_ERR_TIMEOUT naming it, never a wait without end. The communicator is a
 * duplicate of the application's with MPI_ERRORS_RETURN, so an MPI error comes back as a status.
 * After a timeout the requests still out may yet write into their buffers, so those buffers are
 * never freed (a bounded leak; the application is expected to abort the job).
 * All of it runs on the thread that calls the trainer: MPI_THREAD_FUNNELED is enough. */
#define _POSIX_C_SOURCE 200809L
#include "cldp_mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collective.h"
#include "common.h"
#include "ranks.h"
#include "model.h"
#include "trainer.h"

typedef struct mpi_ranks {
    cldp_ranks base;
    MPI_Comm comm;
    unsigned long calls;      /* every rank makes the same calls: the call count tags them */
    float *recv, *scratch;    /* the reduce-scatter's R chunks, and the tree's partial sums */
    size_t cap;               /* floats per chunk both hold */
    MPI_Request *req;         /* 2 per rank */
    int *peer;                /* the rank each request talks to */
    int stranded;             /* requests left out after a timeout: the buffers stay */
} mpi_ranks;

static cldp_status mpi_fail(int rc, const char *what)
{
    char s[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, s, &len);
    return cldp_fail(CLDP_ERR_IO, "%s failed: %s (MPI error %d)", what, s, rc);
}

static void nap_us(long us)
{
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

/* Waits for req[0, n) until timeout_ms (0: no limit). On a timeout names the first rank still
 * silent, cancels what can be cancelled and keeps the buffers. */
static cldp_status wait_all(mpi_ranks *mr, int n, double timeout_ms, const char *what)
{
    double t0 = cldp_now_ms();
    long nap = 5;
    for (;;) {
        int done = 0;
        int rc = MPI_Testall(n, mr->req, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, what);
        if (done) return CLDP_OK;
        if (timeout_ms > 0 && cldp_now_ms() - t0 > timeout_ms) break;
        nap_us(nap);
        if (nap < 200) nap *= 2; /* a quick answer is caught quickly, a slow one costs no core */
    }
    int silent = -1;
    for (int i = 0; i < n; i++) {
        int done = 1;
        if (mr->req[i] != MPI_REQUEST_NULL) MPI_Test(&mr->req[i], &done, MPI_STATUS_IGNORE);
        if (!done) {
            if (silent < 0) silent = mr->peer[i];
            MPI_Cancel(&mr->req[i]);
            MPI_Request_free(&mr->req[i]);
        }
    }
    mr->stranded = 1;
    char who[32] = "a rank";
    if (silent >= 0) snprintf(who, sizeof who, "rank %d", silent);
    return cldp_fail(CLDP_ERR_TIMEOUT, "%s: %s did not answer within %.0f ms (it died, stopped, or is stuck in its "
                                       "own step); end the job (MPI_Abort)", what, who, timeout_ms);
}

/* One tag per call and part, the same on every rank because every rank makes the same calls. */
static int tag_of(mpi_ranks *mr, int part) { return (int)((mr->calls % 8000) * 4 + (unsigned long)part); }

/* Every rank's `bytes` bytes from `mine`, into all[rank * bytes] (an all-gather). */
static cldp_status gather_bytes(mpi_ranks *mr, const void *mine, void *all, size_t bytes, double timeout_ms)
{
    int me = (int)mr->base.rank, size = (int)mr->base.size, k = 0;
    memcpy((char *)all + (size_t)me * bytes, mine, bytes);
    int tag = tag_of(mr, 0);
    mr->calls++;
    for (int p = 0; p < size; p++) {
        if (p == me) continue;
        int rc = MPI_Irecv((char *)all + (size_t)p * bytes, (int)bytes, MPI_BYTE, p, tag, mr->comm, &mr->req[k]);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Irecv");
        mr->peer[k++] = p;
        rc = MPI_Isend(mine, (int)bytes, MPI_BYTE, p, tag, mr->comm, &mr->req[k]);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Isend");
        mr->peer[k++] = p;
    }
    return wait_all(mr, k, timeout_ms, "exchanging with the other ranks");
}

static cldp_status sum_doubles(cldp_ranks *rk, double *v, size_t k, double timeout_ms)
{
    mpi_ranks *mr = (mpi_ranks *)rk;
    REQUIRE(!mr->stranded, "the ranks fell out of step in an earlier call");
    double all[CLDP_MAX_MPI_RANKS * 4];
    REQUIRE(k <= 4, "sum_doubles: at most 4 values");
    TRY(gather_bytes(mr, v, all, k * sizeof *v, timeout_ms));
    for (size_t i = 0; i < k; i++) {
        double s = 0;
        for (size_t p = 0; p < rk->size; p++) s += all[p * k + i]; /* rank order */
        v[i] = s;
    }
    return CLDP_OK;
}

static cldp_status grow(mpi_ranks *mr, size_t chunk)
{
    if (chunk <= mr->cap) return CLDP_OK;
    size_t R = mr->base.size;
    float *recv = cldp_calloc(R * chunk, sizeof(float), "MPI receive buffers");
    float *scratch = cldp_calloc(((R + 1) / 2) * chunk, sizeof(float), "MPI tree partial sums");
    if (!recv || !scratch) {
        free(recv);
        free(scratch);
        return CLDP_ERR_HOST_MEMORY;
    }
    free(mr->recv);
    free(mr->scratch);
    mr->recv = recv, mr->scratch = scratch, mr->cap = chunk;
    return CLDP_OK;
}

static cldp_status fixed_allreduce(mpi_ranks *mr, const float *in, float *out, size_t n, double timeout_ms)
{
    int me = (int)mr->base.rank, size = (int)mr->base.size, k = 0;
    size_t b, e, chunk = 0;
    for (int p = 0; p < size; p++) {
        cldp_chunk(n, (size_t)size, (size_t)p, &b, &e);
        if (e - b > chunk) chunk = e - b;
    }
    TRY(grow(mr, chunk));
    size_t mb, me_end;
    cldp_chunk(n, (size_t)size, (size_t)me, &mb, &me_end);
    size_t mlen = me_end - mb;

    /* reduce-scatter: chunk `me` of every rank comes here; chunk p of ours goes to rank p */
    int tag = tag_of(mr, 1);
    for (int p = 0; p < size; p++) {
        if (p == me) continue;
        cldp_chunk(n, (size_t)size, (size_t)p, &b, &e);
        int rc = MPI_Irecv(mr->recv + (size_t)p * mr->cap, (int)mlen, MPI_FLOAT, p, tag, mr->comm, &mr->req[k]);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Irecv");
        mr->peer[k++] = p;
        rc = MPI_Isend(in + b, (int)(e - b), MPI_FLOAT, p, tag, mr->comm, &mr->req[k]);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Isend");
        mr->peer[k++] = p;
    }
    TRY(wait_all(mr, k, timeout_ms, "summing the gradients over the ranks"));
    const float *src[CLDP_MAX_MPI_RANKS];
    for (int p = 0; p < size; p++) src[p] = p == me ? in + mb : mr->recv + (size_t)p * mr->cap;
    const float *sum = cldp_tree_sum(src, (size_t)size, mlen, mr->scratch);
    memcpy(out + mb, sum, mlen * sizeof *out);

    /* all-gather: our summed chunk to every rank, theirs from them */
    k = 0;
    tag = tag_of(mr, 2);
    for (int p = 0; p < size; p++) {
        if (p == me) continue;
        cldp_chunk(n, (size_t)size, (size_t)p, &b, &e);
        int rc = MPI_Irecv(out + b, (int)(e - b), MPI_FLOAT, p, tag, mr->comm, &mr->req[k]);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Irecv");
        mr->peer[k++] = p;
        rc = MPI_Isend(out + mb, (int)mlen, MPI_FLOAT, p, tag, mr->comm, &mr->req[k]);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Isend");
        mr->peer[k++] = p;
    }
    return wait_all(mr, k, timeout_ms, "gathering the summed gradients from the ranks");
}

static cldp_status allreduce(cldp_ranks *rk, const float *in, float *out, size_t n, double timeout_ms)
{
    mpi_ranks *mr = (mpi_ranks *)rk;
    REQUIRE(!mr->stranded, "the ranks fell out of step in an earlier call");
    REQUIRE(n / rk->size < (1u << 31), "%zu floats per rank exceed MPI's int count", n / rk->size);
    mr->calls++;
    if (rk->fixed_order) return fixed_allreduce(mr, in, out, n, timeout_ms);
    int rc = MPI_Iallreduce(in, out, (int)n, MPI_FLOAT, MPI_SUM, mr->comm, &mr->req[0]);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Iallreduce");
    mr->peer[0] = -1; /* a collective: no single rank to name */
    return wait_all(mr, 1, timeout_ms, "MPI_Iallreduce of the gradients");
}

static void destroy(cldp_ranks *rk)
{
    mpi_ranks *mr = (mpi_ranks *)rk;
    if (!mr) return;
    if (mr->stranded) return; /* MPI may still write into the buffers: keep them */
    MPI_Comm_free(&mr->comm);
    free(mr->recv);
    free(mr->scratch);
    free(mr->req);
    free(mr->peer);
    free(mr);
}

static const cldp_ranks_ops mpi_ops = {allreduce, sum_doubles, destroy};

/* What every rank must agree on before training together: the model's shape, the options
 * that change the arithmetic, and the initial parameters' bits. */
static unsigned long agreement(const cldp_model *m, const cldp_trainer_options *o)
{
    unsigned long h = 5381;
    const unsigned char *p;
#define MIX(v) for (p = (const unsigned char *)&(v); p < (const unsigned char *)(&(v) + 1); p++) h = h * 33 + *p
    MIX(m->nparams);
    MIX(m->nlayers);
    for (size_t l = 0; l < m->nlayers; l++) {
        cldp_layer_size s;
        cldp_layer_size_of(m, l, 1, &s);
        MIX(s.params);
        MIX(s.out_per_row);
    }
    MIX(o->batch);
    MIX(o->optimizer);
    MIX(o->learning_rate);
    MIX(o->seed);
#undef MIX
    return h;
}

cldp_status cldp_trainer_create_mpi(const cldp_model *model, const cldp_trainer_options *opts, MPI_Comm comm,
                                    cldp_mpi_combine combine, cldp_trainer **out)
{
    REQUIRE(out, "cldp_trainer_create_mpi: out is NULL");
    *out = NULL;
    REQUIRE(model && opts, "cldp_trainer_create_mpi: model or options is NULL");
    REQUIRE(combine == CLDP_MPI_FIXED_ORDER || combine == CLDP_MPI_ALLREDUCE,
            "cldp_trainer_create_mpi: combine %d is neither CLDP_MPI_FIXED_ORDER nor CLDP_MPI_ALLREDUCE", (int)combine);
    int inited = 0, level = 0;
    MPI_Initialized(&inited);
    REQUIRE(inited, "cldp_trainer_create_mpi: MPI is not initialised; call MPI_Init_thread(..., MPI_THREAD_FUNNELED, "
                    "...) first");
    MPI_Query_thread(&level);
    REQUIRE(level >= MPI_THREAD_FUNNELED, "cldp_trainer_create_mpi: MPI was initialised with MPI_THREAD_SINGLE; cldp "
                                          "needs at least MPI_THREAD_FUNNELED (MPI_Init_thread)");
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    REQUIRE(size <= CLDP_MAX_MPI_RANKS, "cldp_trainer_create_mpi: %d ranks, at most %d", size, CLDP_MAX_MPI_RANKS);

    size_t idx[CLDP_MAX_DEVICES], n = 0;
    TRY(cldp_device_select(opts->devices, idx, CLDP_MAX_DEVICES, &n));

    mpi_ranks *mr = cldp_calloc(1, sizeof *mr, "MPI ranks");
    if (!mr) return CLDP_ERR_HOST_MEMORY;
    mr->req = cldp_calloc(2 * (size_t)size, sizeof *mr->req, "MPI requests");
    mr->peer = cldp_calloc(2 * (size_t)size, sizeof *mr->peer, "MPI requests");
    int rc = MPI_Comm_dup(comm, &mr->comm);
    if (!mr->req || !mr->peer || rc != MPI_SUCCESS) {
        free(mr->req);
        free(mr->peer);
        free(mr);
        return rc != MPI_SUCCESS ? mpi_fail(rc, "MPI_Comm_dup") : CLDP_ERR_HOST_MEMORY;
    }
    MPI_Comm_set_errhandler(mr->comm, MPI_ERRORS_RETURN);
    mr->base.ops = &mpi_ops;
    mr->base.rank = (size_t)rank;
    mr->base.size = (size_t)size;
    mr->base.fixed_order = combine == CLDP_MPI_FIXED_ORDER;

    /* every rank's device count and agreement hash (with the watchdog: a rank that never
     * arrives is named instead of waited for) */
    unsigned long long mine[2] = {n, agreement(model, opts)}, all[CLDP_MAX_MPI_RANKS * 2];
    double timeout = opts->timeout_ms > 0 ? opts->timeout_ms : 0;
    cldp_status st = gather_bytes(mr, mine, all, sizeof mine, timeout);
    for (int p = 0; st == CLDP_OK && p < size; p++) {
        if (all[2 * p + 1] != mine[1])
            st = cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "rank %d: its model or options (batch, optimizer, learning rate, "
                                                      "seed) differ from rank %d's; every rank must build the same "
                                                      "model with the same options", p, rank);
        mr->base.devices[p] = (size_t)all[2 * p];
        if (p < rank) mr->base.device_base += mr->base.devices[p];
        mr->base.global_devices += mr->base.devices[p];
    }
    if (st != CLDP_OK) {
        destroy(&mr->base);
        return st;
    }
    return cldp_trainer_create_ranks(model, opts, &mr->base, out); /* owns mr from here, even on failure */
}
