/* testspec.h — the one parser of the test-only injection specs: the fault specs of the trainer
 * (CLDP_FAULT, cldp_test_control's CLDP_TEST_FAULT: "RANK:STEP:KIND[:MS],...") and of the server
 * (CLDP_TEST_SERVER_FAULT: "RANK:BATCH:KIND[:MS],..."), and the slowdown of CLDP_TEST_SLOWDOWN.
 * Each caller checks the ranks against its devices and arms what it parsed. Internal. */
#ifndef CLDP_TESTSPEC_H
#define CLDP_TESTSPEC_H

#include "common.h"

/* One item of a fault spec: on device `rank`, at step (or batch) `at`, fault kinds[kind]; `ms`
 * is the stall time (5000 when not given). */
typedef struct cldp_fault_item {
    size_t rank;
    uint64_t at;
    size_t kind;
    double ms;
} cldp_fault_item;

/* Parses `spec` ("" or NULL: no item) into items[0, *n) of at most cap, KIND one of
 * kinds[0, nkinds); `what` names the spec and `at` its second field ("STEP", "BATCH") in messages.
 * Ranks are checked against n_ranks. */
cldp_status cldp_fault_spec_parse(const char *spec, const char *what, const char *at, const char *const *kinds,
                                  size_t nkinds, size_t n_ranks, cldp_fault_item *items, size_t cap, size_t *n);

/* Parses CLDP_TEST_SLOWDOWN, "RANK:FACTOR[,RANK:FACTOR...]" (e.g. "1:3"), into factor[n] (1: no
 * slowdown). FACTOR is in [1, 1000]; RANK below n. NULL or "" leaves every factor at 1.
 * The worker of a slowed rank sleeps after its compute for (FACTOR - 1) times the compute it
 * just measured, so its part takes FACTOR times as long. It stands in for a slower GPU: the
 * worker blocks as it would waiting in clFinish on a slow device, the sleep grows with the shard
 * like real compute, it takes no CPU from the other devices (as a separate GPU would not), and
 * the balancer sees it only through the same compute timings a real device gives. */
cldp_status cldp_slowdown_parse(const char *spec, size_t n, double *factor);

#endif
