/* mpi_combine.c — the ranks' combine over MPI (ranks.h), built with -DCLDP_WITH_MPI=ON.
 *
 * The fixed-order combine works piece by piece (the local reducer's pieces, offered as the local
 * tree finishes each, so the first pieces cross while the rest are summed): a reduce-scatter
 * then an all-gather, both from non-blocking point-to-point messages. A piece is cut into one
 * chunk per rank (cldp_chunk); rank k receives chunk k from every other rank, sums the R
 * contributions in the pairwise tree (cldp_tree_sum, the tree the local reduction uses, so R
 * ranks of 1 device give the bits of 1 rank of R devices), then sends its summed chunk to every
 * rank. Who arrives first never changes a bit, and neither does the MPI library's choice of
 * algorithm. Pieces are offered, and move from one half to the other, in index order on every
 * rank, so messages match in posting order (MPI's non-overtaking rule) and one tag per half
 * suffices. MPI_Iallreduce per piece is the other option: the library's order, not
 * reproducible from run to run.
 *
 * Every wait polls its requests against a deadline (the trainer's watchdog), spinning briefly and
 * then sleeping between polls so a waiting rank leaves its core to the devices: a rank that died or stopped answering
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

#include "tree.h"
#include "common.h"
#include "ranks.h"
#include "reducer.h"

enum { TAG_GATHER = 1, TAG_SCATTER = 2, TAG_ALLGATHER = 3 };
enum { STAGE_NONE, STAGE_SCATTER, STAGE_GATHER, STAGE_DONE };

typedef struct piece_x {
    size_t begin, end;        /* its range of the vector */
    int stage;
} piece_x;

typedef struct mpi_ranks {
    cldp_ranks base;
    MPI_Comm comm;
    /* the step's combine */
    const float *in;
    float *out;
    size_t n, npieces, offered, moved, done; /* pieces offered; past the scatter; finished */
    piece_x *pc;              /* (npieces) */
    size_t cap_pieces;
    float *recv, *scratch;    /* (npieces, size, chunk) scattered chunks; the tree's partial sums */
    size_t chunk, cap_recv;   /* floats per rank per piece, and how many recv holds */
    MPI_Request *req;         /* (npieces, 2 (size - 1)) each piece's requests of its current half */
    int *peer;                /* the rank each request talks to */
    size_t cap_req;
    cldp_status err;          /* the first error of offer or progress, for finish */
    char errmsg[512];
    int stranded;             /* requests left out after a timeout: the buffers stay */
    MPI_Request greq[2 * CLDP_MAX_MPI_RANKS]; /* gather_bytes' */
    int gpeer[2 * CLDP_MAX_MPI_RANKS];
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

/* Between polls of a wait that began at t0: none for the first CLDP_SPIN_MS (shared-memory
 * transports move large messages in fragments, and only while both sides are inside MPI calls,
 * so a rank that sleeps slows its peer's transfer too), then naps growing to 200 us, so a slow
 * peer costs no core. */
#define CLDP_SPIN_MS 1.0
static void pause_poll(double t0, long *nap)
{
    if (cldp_now_ms() - t0 < CLDP_SPIN_MS) return;
    nap_us(*nap);
    if (*nap < 200) *nap *= 2;
}

/* Gives up on the requests still out: names the first silent rank, cancels what can be
 * cancelled and keeps the buffers. */
static cldp_status give_up(mpi_ranks *mr, MPI_Request *req, const int *peer, size_t n, double timeout_ms,
                           const char *what)
{
    int silent = -1;
    for (size_t i = 0; i < n; i++) {
        int done = 1;
        if (req[i] != MPI_REQUEST_NULL) MPI_Test(&req[i], &done, MPI_STATUS_IGNORE);
        if (!done) {
            if (silent < 0) silent = peer[i];
            MPI_Cancel(&req[i]);
            MPI_Request_free(&req[i]);
        }
    }
    mr->stranded = 1;
    char who[32] = "a rank";
    if (silent >= 0) snprintf(who, sizeof who, "rank %d", silent);
    return cldp_fail(CLDP_ERR_TIMEOUT, "%s: %s did not answer within %.0f ms (it died, stopped, or is stuck in its "
                                       "own step); end the job (MPI_Abort)", what, who, timeout_ms);
}

/* Waits for req[0, n) until timeout_ms (0: no limit), sleeping between polls: a quick answer
 * is caught quickly, a slow one costs no core. */
static cldp_status wait_all(mpi_ranks *mr, MPI_Request *req, const int *peer, size_t n, double timeout_ms,
                            const char *what)
{
    double t0 = cldp_now_ms();
    long nap = 5;
    for (;;) {
        int done = 0;
        int rc = MPI_Testall((int)n, req, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, what);
        if (done) return CLDP_OK;
        if (timeout_ms > 0 && cldp_now_ms() - t0 > timeout_ms) return give_up(mr, req, peer, n, timeout_ms, what);
        pause_poll(t0, &nap);
    }
}

/* Every rank's `bytes` bytes from `mine`, into all[rank * bytes] (an all-gather). */
static cldp_status gather_bytes(mpi_ranks *mr, const void *mine, void *all, size_t bytes, double timeout_ms)
{
    int me = (int)mr->base.rank, size = (int)mr->base.size;
    size_t k = 0;
    memcpy((char *)all + (size_t)me * bytes, mine, bytes);
    for (int p = 0; p < size; p++) {
        if (p == me) continue;
        int rc = MPI_Irecv((char *)all + (size_t)p * bytes, (int)bytes, MPI_BYTE, p, TAG_GATHER, mr->comm, &mr->greq[k]);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Irecv");
        mr->gpeer[k++] = p;
        rc = MPI_Isend(mine, (int)bytes, MPI_BYTE, p, TAG_GATHER, mr->comm, &mr->greq[k]);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Isend");
        mr->gpeer[k++] = p;
    }
    return wait_all(mr, mr->greq, mr->gpeer, k, timeout_ms, "exchanging with the other ranks");
}

static cldp_status gather_doubles(cldp_ranks *rk, const double *mine, size_t k, double *all, double timeout_ms)
{
    mpi_ranks *mr = (mpi_ranks *)rk;
    REQUIRE(!mr->stranded, "the ranks fell out of step in an earlier call");
    return gather_bytes(mr, mine, all, k * sizeof *mine, timeout_ms);
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

/* Room for a step of npieces pieces of at most `chunk` floats per rank. */
static cldp_status grow(mpi_ranks *mr, size_t npieces, size_t chunk)
{
    size_t R = mr->base.size, per = R > 1 ? 2 * (R - 1) : 1, need = npieces * R * chunk;
    if (npieces > mr->cap_pieces || npieces * per > mr->cap_req) {
        piece_x *pc = cldp_calloc(npieces, sizeof *pc, "MPI pieces");
        MPI_Request *req = cldp_calloc(npieces * per, sizeof *req, "MPI requests");
        int *peer = cldp_calloc(npieces * per, sizeof *peer, "MPI requests");
        if (!pc || !req || !peer) {
            free(pc), free(req), free(peer);
            return CLDP_ERR_HOST_MEMORY;
        }
        free(mr->pc), free(mr->req), free(mr->peer);
        mr->pc = pc, mr->req = req, mr->peer = peer;
        mr->cap_pieces = npieces, mr->cap_req = npieces * per;
    }
    if (need > mr->cap_recv || chunk > mr->chunk) {
        float *recv = cldp_calloc(need, sizeof(float), "MPI receive buffers");
        float *scratch = cldp_calloc((R + 1) / 2 * chunk, sizeof(float), "MPI tree partial sums");
        if (!recv || !scratch) {
            free(recv), free(scratch);
            return CLDP_ERR_HOST_MEMORY;
        }
        free(mr->recv), free(mr->scratch);
        mr->recv = recv, mr->scratch = scratch, mr->cap_recv = need;
    }
    mr->chunk = chunk;
    return CLDP_OK;
}

static cldp_status begin(cldp_ranks *rk, const float *in, float *out, size_t n, size_t npieces)
{
    mpi_ranks *mr = (mpi_ranks *)rk;
    REQUIRE(!mr->stranded, "the ranks fell out of step in an earlier call");
    size_t R = rk->size, chunk = ((CLDP_PIECE_FLOATS + 15) / 16 / R + 1) * 16; /* cldp_chunk's largest */
    REQUIRE(chunk < (1u << 31), "a piece's chunk exceeds MPI's int count");
    TRY(grow(mr, npieces, chunk));
    mr->in = in, mr->out = out, mr->n = n, mr->npieces = npieces;
    mr->offered = mr->moved = mr->done = 0;
    mr->err = CLDP_OK;
    return CLDP_OK;
}

static MPI_Request *reqs_of(mpi_ranks *mr, size_t p, size_t *per)
{
    *per = mr->base.size > 1 ? 2 * (mr->base.size - 1) : 1;
    return mr->req + p * *per;
}

static void keep_error(mpi_ranks *mr, cldp_status st)
{
    if (mr->err != CLDP_OK) return;
    mr->err = st;
    snprintf(mr->errmsg, sizeof mr->errmsg, "%s", cldp_last_error());
}

/* Posts one half of piece p's exchange: the scatter (my chunk of every rank's piece comes
 * here, their chunks of mine go to them) or the all-gather (my summed chunk to every rank,
 * theirs here). */
static void post(mpi_ranks *mr, size_t p, int half)
{
    piece_x *pc = &mr->pc[p];
    size_t len = pc->end - pc->begin, per, k = 0, b, e, mb, me_end;
    int me = (int)mr->base.rank, size = (int)mr->base.size;
    MPI_Request *req = reqs_of(mr, p, &per);
    int *peer = mr->peer + p * per;
    cldp_chunk(len, (size_t)size, (size_t)me, &mb, &me_end);
    float *recv = mr->recv + p * (size_t)size * mr->chunk;
    for (int q = 0; q < size; q++) {
        if (q == me) continue;
        cldp_chunk(len, (size_t)size, (size_t)q, &b, &e);
        int rc;
        if (half == TAG_SCATTER) {
            rc = MPI_Irecv(recv + (size_t)q * mr->chunk, (int)(me_end - mb), MPI_FLOAT, q, TAG_SCATTER, mr->comm, &req[k]);
            if (rc == MPI_SUCCESS) peer[k++] = q, rc = MPI_Isend(mr->in + pc->begin + b, (int)(e - b), MPI_FLOAT, q,
                                                                 TAG_SCATTER, mr->comm, &req[k]);
        } else {
            rc = MPI_Irecv(mr->out + pc->begin + b, (int)(e - b), MPI_FLOAT, q, TAG_ALLGATHER, mr->comm, &req[k]);
            if (rc == MPI_SUCCESS) peer[k++] = q, rc = MPI_Isend(mr->out + pc->begin + mb, (int)(me_end - mb), MPI_FLOAT,
                                                                 q, TAG_ALLGATHER, mr->comm, &req[k]);
        }
        if (rc != MPI_SUCCESS) {
            keep_error(mr, mpi_fail(rc, "posting a piece's messages"));
            for (; k < per; k++) req[k] = MPI_REQUEST_NULL;
            return;
        }
        peer[k++] = q;
    }
    for (; k < per; k++) req[k] = MPI_REQUEST_NULL;
}

/* Piece p's scatter is in: my chunk summed over the ranks in the fixed tree, into out. */
static void sum_chunk(mpi_ranks *mr, size_t p)
{
    piece_x *pc = &mr->pc[p];
    size_t len = pc->end - pc->begin, mb, me_end, size = mr->base.size, me = mr->base.rank;
    cldp_chunk(len, size, me, &mb, &me_end);
    const float *src[CLDP_MAX_MPI_RANKS];
    const float *recv = mr->recv + p * size * mr->chunk;
    for (size_t q = 0; q < size; q++) src[q] = q == me ? mr->in + pc->begin + mb : recv + q * mr->chunk;
    const float *sum = cldp_tree_sum(src, size, me_end - mb, mr->scratch);
    memcpy(mr->out + pc->begin + mb, sum, (me_end - mb) * sizeof(float));
}

static void offer(cldp_ranks *rk, size_t p, size_t b, size_t e)
{
    mpi_ranks *mr = (mpi_ranks *)rk;
    if (mr->err != CLDP_OK || p != mr->offered || p >= mr->npieces) return; /* in order, once */
    mr->pc[p] = (piece_x){b, e, STAGE_SCATTER};
    mr->offered++;
    if (!rk->fixed_order) { /* one non-blocking collective per piece, posted in order on every rank */
        size_t per;
        MPI_Request *req = reqs_of(mr, p, &per);
        for (size_t k = 0; k < per; k++) req[k] = MPI_REQUEST_NULL;
        mr->peer[p * per] = -1; /* a collective: no single rank to name */
        int rc = MPI_Iallreduce(mr->in + b, mr->out + b, (int)(e - b), MPI_FLOAT, MPI_SUM, mr->comm, &req[0]);
        if (rc != MPI_SUCCESS) keep_error(mr, mpi_fail(rc, "MPI_Iallreduce"));
        mr->pc[p].stage = STAGE_GATHER;
        mr->moved++;
        return;
    }
    post(mr, p, TAG_SCATTER);
}

static int test_piece(mpi_ranks *mr, size_t p)
{
    size_t per;
    MPI_Request *req = reqs_of(mr, p, &per);
    int done = 0;
    int rc = MPI_Testall((int)per, req, &done, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) keep_error(mr, mpi_fail(rc, "testing a piece's messages"));
    return done && rc == MPI_SUCCESS;
}

static void progress(cldp_ranks *rk)
{
    mpi_ranks *mr = (mpi_ranks *)rk;
    if (mr->err != CLDP_OK) return;
    /* scatter -> all-gather, in index order (so the all-gathers are posted in the same order
     * everywhere) */
    while (mr->moved < mr->offered && test_piece(mr, mr->moved)) {
        sum_chunk(mr, mr->moved);
        mr->pc[mr->moved].stage = STAGE_GATHER;
        post(mr, mr->moved, TAG_ALLGATHER);
        mr->moved++;
    }
    for (size_t p = mr->done; p < mr->moved; p++)
        if (mr->pc[p].stage == STAGE_GATHER && test_piece(mr, p)) mr->pc[p].stage = STAGE_DONE;
    while (mr->done < mr->moved && mr->pc[mr->done].stage == STAGE_DONE) mr->done++;
}

static cldp_status finish(cldp_ranks *rk, double timeout_ms)
{
    mpi_ranks *mr = (mpi_ranks *)rk;
    REQUIRE(mr->offered == mr->npieces, "the combine finished with %zu of %zu pieces offered", mr->offered,
            mr->npieces);
    double t0 = cldp_now_ms();
    long nap = 5;
    for (;;) {
        progress(rk);
        if (mr->err != CLDP_OK) return cldp_fail(mr->err, "%s", mr->errmsg);
        if (mr->done == mr->npieces) return CLDP_OK;
        if (timeout_ms > 0 && cldp_now_ms() - t0 > timeout_ms) break;
        pause_poll(t0, &nap);
    }
    size_t per;
    reqs_of(mr, 0, &per);
    const char *what = mr->moved < mr->npieces ? "summing the gradients over the ranks"
                                               : "gathering the summed gradients from the ranks";
    return give_up(mr, mr->req, mr->peer, mr->npieces * per, timeout_ms, what);
}

static int stranded(const cldp_ranks *rk) { return ((const mpi_ranks *)rk)->stranded; }

static void destroy(cldp_ranks *rk)
{
    mpi_ranks *mr = (mpi_ranks *)rk;
    if (!mr) return;
    if (mr->stranded) return; /* MPI may still write into the buffers: keep them */
    MPI_Comm_free(&mr->comm);
    free(mr->pc);
    free(mr->recv);
    free(mr->scratch);
    free(mr->req);
    free(mr->peer);
    free(mr);
}

static const cldp_ranks_ops mpi_ops = {begin, offer, progress, finish, sum_doubles, gather_doubles, stranded, destroy};

cldp_status cldp_ranks_create_mpi(MPI_Comm comm, int fixed_order, size_t devices, unsigned long long agree,
                                  double timeout_ms, cldp_ranks **out)
{
    *out = NULL;
    int inited = 0, level = 0;
    MPI_Initialized(&inited);
    REQUIRE(inited, "MPI is not initialised; call MPI_Init_thread(..., MPI_THREAD_FUNNELED, ...) first");
    MPI_Query_thread(&level);
    REQUIRE(level >= MPI_THREAD_FUNNELED, "MPI was initialised with MPI_THREAD_SINGLE; cldp needs at least "
                                          "MPI_THREAD_FUNNELED (MPI_Init_thread)");
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    REQUIRE(size <= CLDP_MAX_MPI_RANKS, "%d ranks, at most %d", size, CLDP_MAX_MPI_RANKS);
    mpi_ranks *mr = cldp_calloc(1, sizeof *mr, "MPI ranks");
    if (!mr) return CLDP_ERR_HOST_MEMORY;
    int rc = MPI_Comm_dup(comm, &mr->comm);
    if (rc != MPI_SUCCESS) {
        free(mr);
        return mpi_fail(rc, "MPI_Comm_dup");
    }
    MPI_Comm_set_errhandler(mr->comm, MPI_ERRORS_RETURN);
    mr->base.ops = &mpi_ops;
    mr->base.rank = (size_t)rank;
    mr->base.size = (size_t)size;
    mr->base.fixed_order = fixed_order;

    /* every rank's device count and agreement value (with the watchdog: a rank that never
     * arrives is named instead of waited for) */
    unsigned long long mine[2] = {devices, agree}, all[CLDP_MAX_MPI_RANKS * 2];
    cldp_status st = gather_bytes(mr, mine, all, sizeof mine, timeout_ms);
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
    *out = &mr->base;
    return CLDP_OK;
}
