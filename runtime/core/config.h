/* config.h — cldp's environment, read once per process and validated, into one configuration.
 * Options given through the API override it; tests change it with cldp_config_set (or the public
 * cldp_test_control) instead of setenv. Internal. */
#ifndef CLDP_CONFIG_H
#define CLDP_CONFIG_H

#include "common.h"

typedef enum { CLDP_CFG_STAGING_AUTO, CLDP_CFG_STAGING_PINNED, CLDP_CFG_STAGING_COPY } cldp_cfg_staging;
typedef enum { CLDP_CFG_TUNING_OFF, CLDP_CFG_TUNING_ON, CLDP_CFG_TUNING_VERBOSE } cldp_cfg_tuning;

typedef struct cldp_config {
    cldp_cfg_staging staging;  /* CLDP_STAGING: auto (unset), pinned or copy */
    int overlap;               /* CLDP_OVERLAP: on (default) or off */
    int early_reduce;          /* CLDP_EARLY_REDUCE: on (default) or off */
    int kernel_cache;          /* CLDP_KERNEL_CACHE: on (default) or off */
    char cache_dir[512];       /* CLDP_CACHE_DIR: where compiled kernels go ("": XDG default) */
    int dedupe;                /* CLDP_DEDUPE: on (default) or off (0) */
    int fast_kernels;          /* CLDP_FAST_KERNELS: on (default) or off: the step's kernels before the
                                  profile's cuts (CLBlast for narrow dense layers, plain bias kernels) */
    cldp_cfg_tuning tuning;    /* CLDP_TUNING: on (default), off or verbose */
    char tuning_file[512];     /* CLDP_TUNING_FILE ("": none) */
    char devices[256];         /* CLDP_DEVICES: the default device selection ("": default) */
    char split[256];           /* CLDP_SPLIT: the default split ("": auto) */
    /* test-only (see cldp_test_control) */
    char fault[256];           /* CLDP_FAULT: faults armed in every trainer created */
    uint64_t device_memory_cap; /* CLDP_DEVICE_MEMORY_CAP: bytes per device (0: none) */
    uint64_t host_memory_cap;   /* CLDP_HOST_MEMORY_CAP: bytes of host memory the devices that share it
                                   may use together, and the trainer beside them (0: none) */
    char slowdown[256];        /* CLDP_TEST_SLOWDOWN: "RANK:FACTOR,..." */
    double checkpoint_delay_ms; /* CLDP_TEST_CHECKPOINT_DELAY_MS: sleep before a save's rename */
} cldp_config;

/* The configuration, read from the environment on first use (thread-safe). A variable with a
 * value it does not take makes this (and so every call that needs the configuration) fail with
 * CLDP_ERR_INVALID_ARGUMENT and a message naming the variable, its value and the values it
 * takes; *cfg is then still the configuration with that variable at its default. */
cldp_status cldp_config_get(const cldp_config **cfg);

/* Sets one variable as if the environment held `value` (NULL: unset, its default), validated the
 * same way; clears an earlier failure of that variable. For tests and cldp_test_control: not to
 * be called while another thread uses the library. */
cldp_status cldp_config_set(const char *name, const char *value);

/* Parses a byte count: digits with an optional K, M, G or T suffix (powers of 1024, an optional
 * trailing "B" or "iB", spaces allowed), e.g. "65536", "64K", "1.5G", "2 GB". `what` names the
 * source in messages. */
cldp_status cldp_parse_bytes(const char *s, const char *what, uint64_t *out);

#endif
