/* test_control.c — test-only: the one fenced door for test hooks (cldp_test_control in cldp.h).
 * It sits above the rooms because it reaches into two of them that never know each other: the
 * trainer's faults (train/faults.c) and the server's (serve/server_dev.c). */
#include "config.h"
#include "testhooks.h"
#include "server.h"
#include "trainer.h"

#include <stdarg.h>

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
