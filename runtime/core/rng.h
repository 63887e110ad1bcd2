/* rng.h — a small deterministic RNG (splitmix64): parameter initialisation, the text windows'
 * draws, and tests. The same seed gives the same stream on every host. */
#ifndef CLDP_RNG_H
#define CLDP_RNG_H

#include <stdint.h>

typedef struct cldp_rng { uint64_t s; } cldp_rng;
uint64_t cldp_rng_next(cldp_rng *r);
double cldp_rng_uniform(cldp_rng *r); /* [0, 1) with 53 random bits */

#endif
