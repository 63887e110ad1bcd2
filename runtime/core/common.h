/* common.h — what every layer of the runtime shares: error recording, checked OpenCL calls,
 * small helpers. Internal; the public API is include/cldp.h. */
#ifndef CLDP_COMMON_H
#define CLDP_COMMON_H

#include "cldp.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* The most ranks (devices, workers) one trainer, collective or server drives. */
#define CLDP_MAX_RANKS 64

/* Records a formatted message as the calling thread's last error and returns `status`.
 * The message should say what failed and what to do about it. */
cldp_status cldp_fail(cldp_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The OpenCL error name of a code, e.g. "CL_OUT_OF_RESOURCES"; never NULL. */
const char *cldp_cl_error_name(cl_int err);
/* The CLBlast status name of a code, e.g. "CLBlastInvalidLocalMemUsage"; never NULL. */
const char *cldp_clblast_error_name(int err);

/* Replaces the calling thread's last error (used to carry a worker's message to the caller). */
void cldp_set_last_error(const char *msg);

/* Runs `cleanup` (e.g. destroying what a failed create built) without losing the failure's
 * message, which the cleanup's own calls could overwrite. */
#define CLDP_KEEPING_ERROR(cleanup)                                                            \
    do {                                                                                       \
        char keep_msg_[2048];                                                                  \
        snprintf(keep_msg_, sizeof keep_msg_, "%s", cldp_last_error());                        \
        cleanup;                                                                               \
        cldp_set_last_error(keep_msg_);                                                        \
    } while (0)

/* Checks an OpenCL call made on behalf of device `dev_name`; on failure records
 * "<device>: <call> failed with <CL_NAME> (<file>:<line>)" and returns CLDP_ERR_OPENCL from the
 * enclosing function. */
#define CL_CHECK(dev_name, call)                                                               \
    do {                                                                                       \
        cl_int cl_check_err_ = (call);                                                         \
        if (cl_check_err_ != CL_SUCCESS)                                                       \
            return cldp_fail(CLDP_ERR_OPENCL, "%s: %s failed with %s (%s:%d)", (dev_name),     \
                             #call, cldp_cl_error_name(cl_check_err_), __FILE__, __LINE__);    \
    } while (0)

/* Propagates a non-OK cldp_status from the enclosing function. */
#define TRY(expr)                                                                              \
    do {                                                                                       \
        cldp_status try_st_ = (expr);                                                          \
        if (try_st_ != CLDP_OK) return try_st_;                                                \
    } while (0)

/* Argument checks of public functions. */
#define REQUIRE(cond, ...)                                                                     \
    do {                                                                                       \
        if (!(cond)) return cldp_fail(CLDP_ERR_INVALID_ARGUMENT, __VA_ARGS__);                 \
    } while (0)

/* Monotonic time in milliseconds. */
double cldp_now_ms(void);

/* cldp's user cache directory for `leaf` ("kernels", "tuning"): $XDG_CACHE_HOME/cldp/leaf where
 * XDG_CACHE_HOME is an absolute path (the XDG spec ignores relative ones), else
 * $HOME/.cache/cldp/leaf. 0, or -1 when neither is set or the path does not fit. */
int cldp_user_cache_dir(const char *leaf, char *buf, size_t cap);
/* mkdir -p (mode 0755): 0, or -1 with errno set. */
int cldp_make_dirs(const char *path);

/* Sleeps ms milliseconds (fractions too; nothing for ms <= 0), whatever signals arrive. */
void cldp_sleep_ms(double ms);

/* Overflow-checked size arithmetic: returns 0 and sets *out on success, -1 on overflow. */
int cldp_mul_size(size_t a, size_t b, size_t *out);

/* malloc/calloc/realloc that record CLDP_ERR_HOST_MEMORY on failure (the caller returns it).
 * Every host allocation on a create path goes through them, so tests can make any one fail.
 * cldp_realloc leaves `p` allocated when it fails. */
void *cldp_malloc(size_t bytes, const char *what);
void *cldp_calloc(size_t n, size_t size, const char *what);
void *cldp_realloc(void *p, size_t bytes, const char *what);

/* The status an OpenCL allocation failure stands for: CL_OUT_OF_HOST_MEMORY is
 * CLDP_ERR_HOST_MEMORY, CL_OUT_OF_RESOURCES and CL_MEM_OBJECT_ALLOCATION_FAILURE are
 * CLDP_ERR_DEVICE_MEMORY, anything else CLDP_ERR_OPENCL. */
cldp_status cldp_cl_alloc_status(cl_int err);

/* ---- allocation-failure injection (tests only) ----
 * When a counter is >= 0, each allocation of its kind counts it down, and the one that finds it
 * at 0 fails as if memory ran out (the counter is then -1: later allocations succeed, so the
 * clean-up paths run normally). -1, the default, injects nothing. Host: cldp_malloc/calloc/realloc,
 * zlib's allocations while inflating a dataset, worker thread creation. Device: clCreateContext,
 * clCreateCommandQueue and clCreateBuffer of a replica. Atomic, so worker threads may allocate
 * while a test arms a counter. */
extern _Atomic long cldp_test_alloc_fail_after;
extern _Atomic long cldp_test_device_alloc_fail_after;
/* 1 when the injection says this host (device) allocation fails; counts the counter down. */
int cldp_test_host_alloc_fails(void);
int cldp_test_device_alloc_fails(void);

#endif
