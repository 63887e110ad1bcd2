/* tree.h — the fixed pairwise tree every reduction in cldp sums in (the trainer's reducer, the
 * public collective, the ranks' combine), and the chunks workers split a vector into. The tree
 * order is fixed per element, so any split of the vector into chunks gives the same bits. */
#ifndef CLDP_TREE_H
#define CLDP_TREE_H

#include "common.h"

/* Sums bufs[0..n)[begin, end) into bufs[0][begin, end) in the pairwise tree
 * ((b0+b1)+(b2+b3))+...; the other buffers' elements in that range are overwritten with partial
 * sums. */
void cldp_tree_reduce(float *const *bufs, size_t n, size_t begin, size_t end);

/* The same sums, bit for bit, without writing the sources: src[0..n)[0, len) summed in
 * cldp_tree_reduce's tree. Returns the sum: src[0] itself when n == 1, else inside `scratch`,
 * which must hold (n + 1) / 2 * len floats. Meant for blocks small enough to stay in cache, so
 * each source is read from memory once and nothing is written back to it. */
const float *cldp_tree_sum(const float *const *src, size_t n, size_t len, float *scratch);

/* The chunk of a `count`-element vector that worker `rank` of `n` owns: [*begin, *end). Chunk
 * edges are multiples of 16 floats (a 64-byte cache line) so workers never share a line. */
void cldp_chunk(size_t count, size_t n, size_t rank, size_t *begin, size_t *end);

#endif
