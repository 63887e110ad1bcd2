/* faults.c — test-only: the one fenced door for test hooks (cldp_test_control in cldp.h), and
 * the trainer's fault injection: the spec "RANK:STEP:KIND[:MS]", and arming each fault in its
 * phase so that it fires once, at its call site, on the same path a real error takes. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"
#include "testhooks.h"
#include "server.h"
#include "trainer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { FK_REDUCE_STALL = 100 }; /* a trainer-level fault: the worker sleeps in the update phase */

static const struct {
    const char *name;
    int kind;          /* a cldp_fault_kind of the replica, or FK_REDUCE_STALL */
    phase_kind phase;  /* the phase it is armed for */
} kinds[] = {
    {"gemm", CLDP_FAULT_GEMM, PHASE_TRAIN},         {"kernel", CLDP_FAULT_KERNEL, PHASE_TRAIN},
    {"read", CLDP_FAULT_READ, PHASE_TRAIN},         {"write", CLDP_FAULT_WRITE, PHASE_UPDATE},
    {"stall", CLDP_FAULT_STALL, PHASE_TRAIN},       {"nan", CLDP_FAULT_NAN, PHASE_TRAIN},
    {"stall_write", CLDP_FAULT_STALL_WRITE, PHASE_UPDATE}, {"stall_reduce", FK_REDUCE_STALL, PHASE_UPDATE},
    {"stall_eval", CLDP_FAULT_STALL, PHASE_EVAL},   {"stall_predict", CLDP_FAULT_STALL, PHASE_PREDICT},
};
#define NKINDS (sizeof kinds / sizeof *kinds)

cldp_status cldp_faults_parse(cldp_trainer *t, const char *spec)
{
    t->nfaults = 0;
    if (!spec || !*spec) return CLDP_OK;
    const char *p = spec;
    while (*p) {
        char kind[16] = "";
        unsigned long long rank, step;
        double ms = 5000;
        int used = 0;
        int got = sscanf(p, "%llu:%llu:%15[a-z_]%n", &rank, &step, kind, &used);
        REQUIRE(got == 3 && t->nfaults < CLDP_MAX_FAULTS, "fault spec \"%s\": expected RANK:STEP:KIND[:MS] (KIND gemm, "
                "kernel, read, write, nan, stall, stall_write, stall_reduce, stall_eval or stall_predict), at most %d",
                spec, CLDP_MAX_FAULTS);
        p += used;
        if (*p == ':') {
            char *end;
            ms = strtod(p + 1, &end);
            REQUIRE(end != p + 1 && ms >= 0 && ms < 1e7, "fault spec \"%s\": bad stall time", spec);
            p = end;
        }
        size_t k = 0;
        while (k < NKINDS && strcmp(kinds[k].name, kind)) k++;
        REQUIRE(k < NKINDS, "fault spec \"%s\": unknown kind \"%s\"", spec, kind);
        REQUIRE(rank < t->n, "fault spec \"%s\": rank %llu, but there are %zu devices", spec, rank, t->n);
        t->faults[t->nfaults++] = (struct fault){(size_t)rank, step, (int)k, ms};
        if (*p == ',') p++;
        else REQUIRE(!*p, "fault spec \"%s\": unexpected \"%s\"", spec, p);
    }
    return CLDP_OK;
}

void cldp_faults_arm(cldp_trainer *t, phase_kind which)
{
    for (size_t f = 0; f < t->nfaults; f++) {
        const struct fault *ft = &t->faults[f];
        if (ft->step != t->t || kinds[ft->kind].phase != which) continue;
        t->faults[f].step = UINT64_MAX; /* spent: a retried step does not meet it again */
        for (size_t r = 0; r < t->n; r++) {
            if (t->origin[r] != ft->rank) continue;
            int kind = kinds[ft->kind].kind;
            if (kind == CLDP_FAULT_NAN) t->inject_nan[r] = 1;
            else if (kind == FK_REDUCE_STALL) t->stall_reduce_ms[r] = ft->ms;
            else {
                t->reps[r]->fault = (cldp_fault_kind)kind;
                t->reps[r]->stall_ms = ft->ms;
            }
        }
    }
}

void cldp_faults_disarm(cldp_trainer *t)
{
    for (size_t r = 0; r < t->n; r++) t->reps[r]->fault = CLDP_FAULT_NONE;
    memset(t->inject_nan, 0, sizeof t->inject_nan);
    memset(t->stall_reduce_ms, 0, sizeof t->stall_reduce_ms);
}

/* ---- the door ---------------------------------------------------------------------------- */

cldp_status cldp_test_control(cldp_test_op op, ...)
{
#ifdef CLDP_NO_TEST_HOOKS
    (void)op;
    return cldp_fail(CLDP_ERR_STATE, "cldp_test_control: this library was built without test hooks (CLDP_TEST_HOOKS=OFF)");
#else
    va_list ap;
    va_start(ap, op);
    cldp_status st = CLDP_OK;
    cldp_test_arm();
    switch (op) {
    case CLDP_TEST_CONFIG: {
        const char *name = va_arg(ap, const char *), *value = va_arg(ap, const char *);
        st = cldp_config_set(name, value);
        break;
    }
    case CLDP_TEST_FAULT: {
        cldp_trainer *t = va_arg(ap, cldp_trainer *);
        const char *spec = va_arg(ap, const char *);
        if (!t) st = cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "cldp_test_control(CLDP_TEST_FAULT): trainer is NULL");
        else st = cldp_faults_parse(t, spec);
        break;
    }
    case CLDP_TEST_HOST_ALLOC_FAIL: atomic_store(&cldp_test_alloc_fail_after, va_arg(ap, long)); break;
    case CLDP_TEST_DEVICE_ALLOC_FAIL: atomic_store(&cldp_test_device_alloc_fail_after, va_arg(ap, long)); break;
    case CLDP_TEST_WORKER_DELAY: cldp_test_worker_delay = va_arg(ap, void (*)(size_t)); break;
    case CLDP_TEST_SERVER_FAULT: {
        cldp_server *s = va_arg(ap, cldp_server *);
        const char *spec = va_arg(ap, const char *);
        st = cldp_srv_arm_faults(s, spec);
        break;
    }
    default: st = cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "cldp_test_control: unknown operation %d", (int)op); break;
    }
    va_end(ap);
    return st;
#endif
}
