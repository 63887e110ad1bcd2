/* testhooks.h — the internal side of the one fenced door for test hooks (cldp_test_control in
 * cldp.h): a flag that is set only once a test arms a hook, so a release run pays one predictable
 * branch per hook site, and builds with CLDP_NO_TEST_HOOKS pay nothing. Internal. */
#ifndef CLDP_TESTHOOKS_H
#define CLDP_TESTHOOKS_H

#include <stdatomic.h>
#include <stddef.h>

#ifdef CLDP_NO_TEST_HOOKS
#define CLDP_TEST_ARMED() 0
#else
extern _Atomic int cldp_test_armed;
#if defined(__GNUC__)
#define CLDP_TEST_ARMED() __builtin_expect(atomic_load_explicit(&cldp_test_armed, memory_order_relaxed), 0)
#else
#define CLDP_TEST_ARMED() atomic_load_explicit(&cldp_test_armed, memory_order_relaxed)
#endif
#endif

/* Marks the hooks armed (cldp_test_control does it for every operation). */
void cldp_test_arm(void);

/* CLDP_TEST_WORKER_DELAY: every worker calls it with its rank before its part of a run, so
 * tests can delay workers at random and show that results never depend on arrival order. */
extern void (*cldp_test_worker_delay)(size_t rank);

#endif
