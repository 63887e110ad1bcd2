/* program.h — building OpenCL programs from our cl/ sources, through a persistent on-disk cache
 * of device binaries keyed by everything that could change them. */
#ifndef CLDP_PROGRAM_H
#define CLDP_PROGRAM_H

#include "common.h"

/* Builds `source` for one device with `options`, keeping the build log on failure
 * (CLDP_ERR_BUILD). The binary is cached under $CLDP_CACHE_DIR, else $XDG_CACHE_HOME/cldp/kernels,
 * else ~/.cache/cldp/kernels; the key hashes the source, options, device name, driver version,
 * platform name and the cldp version. A damaged or unusable cache entry is rebuilt, never trusted.
 * CLDP_KERNEL_CACHE=off disables the cache. */
cldp_status cldp_build_program(cl_context ctx, cl_device_id dev, const char *dev_name,
                               const char *source, const char *options, cl_program *out);

/* Process-wide cache counters, for tests and benchmarks. */
typedef struct cldp_program_cache_stats {
    unsigned long hits;     /* programs created from a cached binary */
    unsigned long misses;   /* no entry: built from source and stored */
    unsigned long rejected; /* an entry existed but was damaged or refused by the driver */
} cldp_program_cache_stats;
cldp_program_cache_stats cldp_program_cache_counters(void);

#endif
