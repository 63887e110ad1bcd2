/* memplan.h — the memory plan: what a replica of a model needs on a device at a number of rows
 * (from the size table), the most rows each device can hold, and the joint budget of the devices
 * that share host memory (PoCL's CPU devices, integrated GPUs) against the host's available
 * memory. Host logic; tests drive it with made-up devices and budgets. Internal. */
#ifndef CLDP_MEMPLAN_H
#define CLDP_MEMPLAN_H

#include "model.h"

typedef struct cldp_mem_need {
    uint64_t params, grads;      /* bytes of the parameter and gradient buffers */
    uint64_t activations;        /* input, activations, layer gradients, labels... for `rows` */
    uint64_t scratch;            /* CLBlast temporary buffers (the size table's bound) */
    uint64_t staging;            /* driver staging of the transfers */
    uint64_t total;
    uint64_t largest_buffer;     /* the largest single allocation */
} cldp_mem_need;

/* Device bytes a replica of `m` needs to run `rows` rows at once. */
void cldp_mem_estimate(const cldp_model *m, size_t rows, cldp_mem_need *need);

/* The same for a forward-only (inference) replica: parameters, the input, activations and
 * probabilities of `rows` rows, the forward GEMMs' scratch; no gradients, no optimizer state. */
void cldp_mem_estimate_forward(const cldp_model *m, size_t rows, cldp_mem_need *need);

/* Memory the trainer may use on a device: its global memory less a sixteenth for the driver,
 * and no more than `cap` when cap is not 0 (the test-only limit). */
uint64_t cldp_mem_usable(uint64_t global_mem, uint64_t cap);

/* The most rows (1..batch) that fit the device's usable memory (cldp_mem_usable) with no buffer
 * above max_alloc (0: no limit), written to *rows; shards larger than that run as micro-batches.
 * When not even one row fits, CLDP_ERR_DEVICE_MEMORY with a message naming `dev_name`, the bytes
 * needed and the bytes it has, and how to leave it out: `others` is the platform:device list of
 * the other selected devices that would fit, "" when this is the only device selected, NULL
 * when other devices are selected but none of them would fit either. */
cldp_status cldp_mem_plan(const cldp_model *m, size_t batch, const char *dev_name, uint64_t global_mem,
                          uint64_t max_alloc, uint64_t cap, const char *others, size_t *rows);

/* ---- devices that share host memory ---------------------------------------------------- */

typedef struct cldp_host_mem {
    uint64_t avail;   /* bytes the process may still allocate on the host; 0: unknown (no limit) */
    char what[192];   /* where that comes from, for messages */
} cldp_host_mem;

/* The host's memory the process may still use: MemAvailable from /proc/meminfo, and when an
 * address-space limit is set (RLIMIT_AS, `ulimit -v`) that limit less the process's VmSize,
 * whichever is less; no more than `cap` when cap is not 0 (the test-only CLDP_HOST_MEMORY_CAP). */
void cldp_host_memory(uint64_t cap, cldp_host_mem *host);

/* Host memory left to the drivers beside what the plan counts: their compilers (LLVM for PoCL),
 * threads' stacks and heaps, transient copies. Measured with PoCL 3.1 under ulimit -v: two CPU
 * devices at 270,000 rows of a 784-256-128-10 model peaked about 1 GB above the two replicas'
 * figure, 0.85 GB of it the warm-up's host batch (counted apart, below). */
#define CLDP_HOST_RESERVE (512ull << 20)

/* Rows for each of the n selected devices (dev[r], in rank order), written to rows[n]: each
 * device's own plan (cldp_mem_plan, `cap` its test-only limit), then the devices that share host
 * memory (host_unified_memory) budgeted together: with `host_fixed` bytes the host needs for
 * itself (the trainer's parameter and optimizer vectors), the warm-up's host batch, a sixteenth
 * of the available memory and CLDP_HOST_RESERVE left free, their needs must fit `host->avail`;
 * when they do not at full rows, every one of them is cut to the same largest row count that fits (larger shards run as micro-batches). When not
 * even one row each fits, CLDP_ERR_DEVICE_MEMORY naming those devices, the bytes needed and
 * available, and the selections that would fit (fewer of them, with the devices that do not
 * share host memory), or that none would. A refusal of one device suggests only other devices
 * that would fit. */
cldp_status cldp_mem_plan_devices(const cldp_model *m, size_t batch, const cldp_device_info *const *dev, size_t n,
                                  uint64_t cap, const cldp_host_mem *host, uint64_t host_fixed, size_t *rows);
/* The same for forward-only replicas (cldp_mem_estimate_forward): a server's batch rows per
 * device, `host_fixed` the server's own host vectors. */
cldp_status cldp_mem_plan_devices_forward(const cldp_model *m, size_t batch, const cldp_device_info *const *dev,
                                          size_t n, uint64_t cap, const cldp_host_mem *host, uint64_t host_fixed,
                                          size_t *rows);

#endif
