/* reducer.c — the piecewise reducer (reducer.h): pieces of a segmented vector, claimed by any
 * worker, summed over the ranks in the fixed tree, block by block, with a callback per block. */
#define _POSIX_C_SOURCE 200809L
#include "reducer.h"
#include "tree.h"
#include "trace.h"

#include <stdlib.h>
#include <string.h>

struct piece {
    size_t seg;          /* the segment it belongs to */
    size_t begin, end;   /* its range of the whole vector */
};

struct cldp_reducer {
    size_t nseg, max_ranks, npieces;
    size_t *seg_off;          /* (nseg) where each segment starts in the vector */
    struct piece *pieces;     /* (npieces) last segment first */
    /* the reduction in progress */
    size_t n;                 /* ranks */
    cldp_block_fn fn;
    void (*fence)(void);
    void *ctx;
    const float **src;        /* (max_ranks, nseg) where rank r's segment s is on the host */
    _Atomic int *delivered;   /* (max_ranks, nseg) */
    _Atomic int *claimed, *done; /* (npieces) */
    int *code;                /* (npieces) the OR of its blocks' codes, valid once done */
    const char *block_name;   /* the timeline's name for the callback's part, or NULL */
    int traced, per_layer;    /* on the timeline (cldp_reducer_trace_as; the collective is not) */
};

void cldp_reducer_trace_as(cldp_reducer *rd, const char *block_name, int per_layer)
{
    rd->block_name = block_name;
    rd->traced = 1;
    rd->per_layer = per_layer;
}

void cldp_reducer_destroy(cldp_reducer *rd)
{
    if (!rd) return;
    free(rd->seg_off);
    free(rd->pieces);
    free(rd->src);
    free((void *)rd->delivered);
    free((void *)rd->claimed);
    free((void *)rd->done);
    free(rd->code);
    free(rd);
}

cldp_status cldp_reducer_create(const size_t *seg_len, size_t nseg, size_t max_ranks, cldp_reducer **out)
{
    REQUIRE(out && seg_len && nseg > 0 && max_ranks > 0 && max_ranks <= CLDP_MAX_RANKS,
            "cldp_reducer_create: bad arguments");
    *out = NULL;
    size_t count = 0, cells;
    for (size_t s = 0; s < nseg; s++) count += (seg_len[s] + CLDP_PIECE_FLOATS - 1) / CLDP_PIECE_FLOATS;
    REQUIRE(cldp_mul_size(max_ranks, nseg, &cells) == 0, "cldp_reducer_create: too many segments");
    cldp_reducer *rd = cldp_calloc(1, sizeof *rd, "reducer");
    if (!rd) return CLDP_ERR_HOST_MEMORY;
    rd->nseg = nseg;
    rd->max_ranks = max_ranks;
    rd->seg_off = cldp_calloc(nseg, sizeof *rd->seg_off, "reducer");
    rd->pieces = cldp_calloc(count ? count : 1, sizeof *rd->pieces, "reduction pieces");
    rd->src = cldp_calloc(cells, sizeof *rd->src, "reducer");
    rd->delivered = cldp_calloc(cells, sizeof *rd->delivered, "reducer");
    rd->claimed = cldp_calloc(count ? count : 1, sizeof *rd->claimed, "reducer");
    rd->done = cldp_calloc(count ? count : 1, sizeof *rd->done, "reducer");
    rd->code = cldp_calloc(count ? count : 1, sizeof *rd->code, "reducer");
    if (!rd->seg_off || !rd->pieces || !rd->src || !rd->delivered || !rd->claimed || !rd->done || !rd->code) {
        cldp_reducer_destroy(rd);
        return CLDP_ERR_HOST_MEMORY;
    }
    for (size_t s = 1; s < nseg; s++) rd->seg_off[s] = rd->seg_off[s - 1] + seg_len[s - 1];
    for (size_t s = nseg; s-- > 0;)
        for (size_t b = 0; b < seg_len[s]; b += CLDP_PIECE_FLOATS) {
            size_t e = seg_len[s] - b < CLDP_PIECE_FLOATS ? seg_len[s] : b + CLDP_PIECE_FLOATS;
            rd->pieces[rd->npieces++] = (struct piece){s, rd->seg_off[s] + b, rd->seg_off[s] + e};
        }
    *out = rd;
    return CLDP_OK;
}

void cldp_reducer_reset(cldp_reducer *rd, size_t n, cldp_block_fn fn, void (*fence)(void), void *ctx)
{
    rd->n = n;
    rd->fn = fn;
    rd->fence = fence;
    rd->ctx = ctx;
    size_t cells = rd->max_ranks * rd->nseg;
    memset(rd->src, 0, cells * sizeof *rd->src);
    for (size_t i = 0; i < cells; i++) atomic_store_explicit(&rd->delivered[i], 0, memory_order_relaxed);
    for (size_t p = 0; p < rd->npieces; p++) {
        atomic_store_explicit(&rd->claimed[p], 0, memory_order_relaxed);
        atomic_store_explicit(&rd->done[p], 0, memory_order_relaxed);
        rd->code[p] = 0;
    }
    atomic_thread_fence(memory_order_release); /* published to the workers by the run's start */
}

size_t cldp_reducer_pieces(const cldp_reducer *rd) { return rd->npieces; }

void cldp_reducer_piece(const cldp_reducer *rd, size_t p, size_t *begin, size_t *end)
{
    *begin = rd->pieces[p].begin;
    *end = rd->pieces[p].end;
}

int cldp_reducer_codes(const cldp_reducer *rd)
{
    int c = 0;
    for (size_t p = 0; p < rd->npieces; p++) c |= rd->code[p];
    return c;
}

int cldp_reducer_deliver(cldp_reducer *rd, cldp_run *run, size_t r, size_t seg, const float *src)
{
    if (!cldp_run_enter(run)) return 0;
    rd->src[r * rd->nseg + seg] = src;
    atomic_store(&rd->delivered[r * rd->nseg + seg], 1);
    cldp_run_leave(run);
    return 1;
}

void cldp_reducer_deliver_host(cldp_reducer *rd, size_t r, size_t seg, const float *src)
{
    rd->src[r * rd->nseg + seg] = src;
    atomic_store(&rd->delivered[r * rd->nseg + seg], 1);
}

/* Piece p: its range summed over the ranks in the fixed tree, block by block, each sum handed to
 * the callback. Each source byte is read once. */
static int do_piece(cldp_reducer *rd, const struct piece *pc)
{
    float scratch[(CLDP_MAX_RANKS + 1) / 2 * CLDP_SUM_BLOCK];
    const float *src[CLDP_MAX_RANKS];
    size_t base = rd->seg_off[pc->seg];
    int code = 0, split = CLDP_TRACING() && rd->traced && rd->block_name;
    double t0 = CLDP_TRACING() && rd->traced ? cldp_trace_clock_us() : 0, summing = 0, sampled = 0;
    size_t k = 0;
    for (size_t blk = pc->begin; blk < pc->end; blk += CLDP_SUM_BLOCK, k++) {
        size_t len = pc->end - blk < CLDP_SUM_BLOCK ? pc->end - blk : CLDP_SUM_BLOCK;
        for (size_t d = 0; d < rd->n; d++) src[d] = rd->src[d * rd->nseg + pc->seg] + (blk - base);
        if (split && k % 8 == 0) { /* every 8th block's sum and callback timed apart: the split of
                                     the piece between the two events below (a clock read costs
                                     40 ns on some machines: reading it at every block cost 1%) */
            double a = cldp_trace_clock_us();
            const float *sum = cldp_tree_sum(src, rd->n, len, scratch);
            double b = cldp_trace_clock_us();
            code |= rd->fn(rd->ctx, blk, sum, len);
            summing += b - a;
            sampled += cldp_trace_clock_us() - a;
        } else {
            code |= rd->fn(rd->ctx, blk, cldp_tree_sum(src, rd->n, len, scratch), len);
        }
    }
    if (rd->fence) rd->fence();
    if (t0 > 0) {
        double t1 = cldp_trace_clock_us(), t_sum = split && sampled > 0 ? t0 + (t1 - t0) * summing / sampled : t1;
        int layer = rd->per_layer ? (int)pc->seg : -1;
        cldp_trace_here("reduce", "reduce", layer, t0, t_sum);
        if (split) cldp_trace_here(rd->block_name, rd->block_name, layer, t_sum, t1);
    }
    return code;
}

static int segment_ready(cldp_reducer *rd, size_t seg)
{
    for (size_t d = 0; d < rd->n; d++)
        if (!atomic_load(&rd->delivered[d * rd->nseg + seg])) return 0;
    return 1;
}

int cldp_reducer_work(cldp_reducer *rd, cldp_run *run, int all)
{
    for (size_t p = 0; p < rd->npieces; p++) {
        if (atomic_load(&rd->claimed[p])) continue;
        size_t seg = rd->pieces[p].seg;
        if (!all && !segment_ready(rd, seg)) continue;
        for (size_t d = 0; all && d < rd->n; d++)
            if (!cldp_run_wait_flag(run, &rd->delivered[d * rd->nseg + seg])) return 0;
        /* claimed, done and announced inside one section: an abandoned worker does nothing, and
         * no piece is left claimed but never done */
        if (!cldp_run_enter(run)) return 0;
        int free_piece = 0;
        if (atomic_compare_exchange_strong(&rd->claimed[p], &free_piece, 1)) {
            rd->code[p] = do_piece(rd, &rd->pieces[p]);
            atomic_store(&rd->done[p], 1);
        }
        cldp_run_leave(run);
    }
    return 1;
}

int cldp_reducer_done(const cldp_reducer *rd, size_t p) { return atomic_load(&rd->done[p]); }

int cldp_reducer_wait(cldp_reducer *rd, cldp_run *run, size_t p) { return cldp_run_wait_flag(run, &rd->done[p]); }

int cldp_reducer_wait_delivered(cldp_reducer *rd, cldp_run *run, size_t r, size_t seg)
{
    return cldp_run_wait_flag(run, &rd->delivered[r * rd->nseg + seg]);
}
