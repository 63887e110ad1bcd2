/* rng.c — the deterministic RNG (rng.h). */
#include "rng.h"

uint64_t cldp_rng_next(cldp_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double cldp_rng_uniform(cldp_rng *r) { return (double)(cldp_rng_next(r) >> 11) * 0x1.0p-53; }
