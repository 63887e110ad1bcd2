/* reducer.h — the piecewise reducer: one deterministic pipeline for summing a float vector over
 * device ranks on the host. The vector is a list of segments (the trainer's layers; one segment
 * for the public collective), cut into fixed pieces, the last segment first (backward delivers
 * the top layer first). A piece can be done once every rank has delivered its segment; any
 * worker may claim it, sums its range over the ranks in the fixed pairwise tree (cldp_tree_sum),
 * block by block, and hands each block's sum to a callback (the fused optimizer update and
 * finiteness check, or the collective's scale-and-store). Who does a piece never changes its bits.
 *
 * Every write to the reducer's state happens inside a section of the caller's run
 * (cldp_run_enter): a worker abandoned after a watchdog timeout can never touch a later
 * reduction, and a piece is claimed, done and announced within one section, so no piece is ever
 * left claimed but never done. Internal. */
#ifndef CLDP_REDUCER_H
#define CLDP_REDUCER_H

#include "workers.h"

#include <stdatomic.h>

#define CLDP_PIECE_FLOATS 32768 /* a piece: 128 KiB of floats, small enough to share out */
#define CLDP_SUM_BLOCK 256      /* floats per block: every rank's block stays in L1 */

/* The sum of one block: sum[0, len) is the tree sum of elements [at, at + len) of the whole
 * vector. Returns a nonzero code to record against the piece (e.g. "not finite"); the codes of
 * all pieces are OR-ed (cldp_reducer_codes). */
typedef int (*cldp_block_fn)(void *ctx, size_t at, const float *sum, size_t len);

typedef struct cldp_reducer cldp_reducer;

/* A reducer for vectors made of nseg segments of seg_len[s] floats each, laid out one after the
 * other, over at most max_ranks ranks. */
cldp_status cldp_reducer_create(const size_t *seg_len, size_t nseg, size_t max_ranks, cldp_reducer **out);
void cldp_reducer_destroy(cldp_reducer *rd);

/* Starts a reduction over n ranks with the block callback fn(ctx, ...): forgets every delivery
 * and piece. `fence` (may be NULL) runs after a piece's last block, before the piece is announced
 * done: a callback that writes with streaming stores orders them there. Only while no worker of
 * a live run uses the reducer. Allocates nothing. */
void cldp_reducer_reset(cldp_reducer *rd, size_t n, cldp_block_fn fn, void (*fence)(void), void *ctx);

/* Rank r's segment `seg` is on the host at src (seg_len[seg] floats, valid and unchanged until
 * every piece is done). Returns 0, recording nothing, when the run was abandoned. */
int cldp_reducer_deliver(cldp_reducer *rd, cldp_run *run, size_t r, size_t seg, const float *src);

/* The same from the caller's thread, while no run uses the reducer (after cldp_reducer_reset,
 * before the run that does the pieces). */
void cldp_reducer_deliver_host(cldp_reducer *rd, size_t r, size_t seg, const float *src);

/* Claims and does pieces nobody has claimed, in order: with all == 0 only those whose segment
 * every rank has delivered, never waiting (a worker never blocks on another device there); with
 * all == 1 every one, after waiting for the deliveries. Returns 0 when the run was abandoned. */
int cldp_reducer_work(cldp_reducer *rd, cldp_run *run, int all);

/* Waits until rank r has delivered segment seg; 0 when the run was cancelled meanwhile. */
int cldp_reducer_wait_delivered(cldp_reducer *rd, cldp_run *run, size_t r, size_t seg);

/* 1 when piece p is done (its block callbacks' writes visible to the caller); never waits. */
int cldp_reducer_done(const cldp_reducer *rd, size_t p);

/* Waits until piece p is done; 0 when the run was abandoned meanwhile. */
int cldp_reducer_wait(cldp_reducer *rd, cldp_run *run, size_t p);

/* Puts the reducer's pieces on the timeline (trace.h; a reducer is not, until this is called): a
 * piece's summing is "reduce"; the block callback's part is `block_name` (e.g. "update", which is
 * then also its category), or NULL: part of "reduce". per_layer: the segments are layers (the
 * events carry the segment as their layer). */
void cldp_reducer_trace_as(cldp_reducer *rd, const char *block_name, int per_layer);

size_t cldp_reducer_pieces(const cldp_reducer *rd);
/* Piece p's range of the whole vector: [*begin, *end). */
void cldp_reducer_piece(const cldp_reducer *rd, size_t p, size_t *begin, size_t *end);
/* The OR of the codes every block callback returned (valid once every piece is done). */
int cldp_reducer_codes(const cldp_reducer *rd);

#endif
