/* common.c — error recording (thread-local last error), OpenCL/CLBlast error names, version,
 * timing, sleeping, the user cache directory and checked allocation (with its failure injection
 * for tests) shared by every layer. */
#define _POSIX_C_SOURCE 200809L
#include "common.h"
#include "testhooks.h"

#include <clblast_c.h>
#include <errno.h>
#include <sys/stat.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>
#include <zlib.h>

static _Thread_local char last_error[2048];

unsigned cldp_version_number(void) { return CLDP_VERSION_NUMBER; }

const char *cldp_last_error(void) { return last_error; }

void cldp_set_last_error(const char *msg)
{
    snprintf(last_error, sizeof last_error, "%s", msg ? msg : "");
}

cldp_status cldp_fail(cldp_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

const char *cldp_status_string(cldp_status s)
{
    switch (s) {
    case CLDP_OK: return "CLDP_OK";
    case CLDP_ERR_INVALID_ARGUMENT: return "CLDP_ERR_INVALID_ARGUMENT";
    case CLDP_ERR_NO_DEVICE: return "CLDP_ERR_NO_DEVICE";
    case CLDP_ERR_OPENCL: return "CLDP_ERR_OPENCL";
    case CLDP_ERR_CLBLAST: return "CLDP_ERR_CLBLAST";
    case CLDP_ERR_HOST_MEMORY: return "CLDP_ERR_HOST_MEMORY";
    case CLDP_ERR_DEVICE_MEMORY: return "CLDP_ERR_DEVICE_MEMORY";
    case CLDP_ERR_IO: return "CLDP_ERR_IO";
    case CLDP_ERR_FORMAT: return "CLDP_ERR_FORMAT";
    case CLDP_ERR_BUILD: return "CLDP_ERR_BUILD";
    case CLDP_ERR_TIMEOUT: return "CLDP_ERR_TIMEOUT";
    case CLDP_ERR_NONFINITE: return "CLDP_ERR_NONFINITE";
    case CLDP_ERR_STATE: return "CLDP_ERR_STATE";
    case CLDP_ERR_BUSY: return "CLDP_ERR_BUSY";
    case CLDP_CANCELLED: return "CLDP_CANCELLED";
    }
    return "CLDP_ERR_UNKNOWN";
}

const char *cldp_cl_error_name(cl_int err)
{
    switch (err) {
#define N(x) case x: return #x;
    N(CL_SUCCESS) N(CL_DEVICE_NOT_FOUND) N(CL_DEVICE_NOT_AVAILABLE) N(CL_COMPILER_NOT_AVAILABLE)
    N(CL_MEM_OBJECT_ALLOCATION_FAILURE) N(CL_OUT_OF_RESOURCES) N(CL_OUT_OF_HOST_MEMORY)
    N(CL_PROFILING_INFO_NOT_AVAILABLE) N(CL_MEM_COPY_OVERLAP) N(CL_IMAGE_FORMAT_MISMATCH)
    N(CL_IMAGE_FORMAT_NOT_SUPPORTED) N(CL_BUILD_PROGRAM_FAILURE) N(CL_MAP_FAILURE)
    N(CL_MISALIGNED_SUB_BUFFER_OFFSET) N(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
    N(CL_COMPILE_PROGRAM_FAILURE) N(CL_LINKER_NOT_AVAILABLE) N(CL_LINK_PROGRAM_FAILURE)
    N(CL_DEVICE_PARTITION_FAILED) N(CL_KERNEL_ARG_INFO_NOT_AVAILABLE) N(CL_INVALID_VALUE)
    N(CL_INVALID_DEVICE_TYPE) N(CL_INVALID_PLATFORM) N(CL_INVALID_DEVICE) N(CL_INVALID_CONTEXT)
    N(CL_INVALID_QUEUE_PROPERTIES) N(CL_INVALID_COMMAND_QUEUE) N(CL_INVALID_HOST_PTR)
    N(CL_INVALID_MEM_OBJECT) N(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR) N(CL_INVALID_IMAGE_SIZE)
    N(CL_INVALID_SAMPLER) N(CL_INVALID_BINARY) N(CL_INVALID_BUILD_OPTIONS) N(CL_INVALID_PROGRAM)
    N(CL_INVALID_PROGRAM_EXECUTABLE) N(CL_INVALID_KERNEL_NAME) N(CL_INVALID_KERNEL_DEFINITION)
    N(CL_INVALID_KERNEL) N(CL_INVALID_ARG_INDEX) N(CL_INVALID_ARG_VALUE) N(CL_INVALID_ARG_SIZE)
    N(CL_INVALID_KERNEL_ARGS) N(CL_INVALID_WORK_DIMENSION) N(CL_INVALID_WORK_GROUP_SIZE)
    N(CL_INVALID_WORK_ITEM_SIZE) N(CL_INVALID_GLOBAL_OFFSET) N(CL_INVALID_EVENT_WAIT_LIST)
    N(CL_INVALID_EVENT) N(CL_INVALID_OPERATION) N(CL_INVALID_GL_OBJECT) N(CL_INVALID_BUFFER_SIZE)
    N(CL_INVALID_MIP_LEVEL) N(CL_INVALID_GLOBAL_WORK_SIZE) N(CL_INVALID_PROPERTY)
    N(CL_INVALID_IMAGE_DESCRIPTOR) N(CL_INVALID_COMPILER_OPTIONS) N(CL_INVALID_LINKER_OPTIONS)
    N(CL_INVALID_DEVICE_PARTITION_COUNT)
#undef N
    case -1001: return "CL_PLATFORM_NOT_FOUND_KHR";
    }
    return "CL_UNKNOWN_ERROR";
}

const char *cldp_clblast_error_name(int err)
{
    switch (err) {
#define N(x) case x: return #x;
    N(CLBlastSuccess) N(CLBlastOpenCLCompilerNotAvailable) N(CLBlastTempBufferAllocFailure)
    N(CLBlastOpenCLOutOfResources) N(CLBlastOpenCLOutOfHostMemory) N(CLBlastOpenCLBuildProgramFailure)
    N(CLBlastInvalidValue) N(CLBlastInvalidCommandQueue) N(CLBlastInvalidMemObject)
    N(CLBlastInvalidBinary) N(CLBlastInvalidBuildOptions) N(CLBlastInvalidProgram)
    N(CLBlastInvalidProgramExecutable) N(CLBlastInvalidKernelName) N(CLBlastInvalidKernelDefinition)
    N(CLBlastInvalidKernel) N(CLBlastInvalidArgIndex) N(CLBlastInvalidArgValue)
    N(CLBlastInvalidArgSize) N(CLBlastInvalidKernelArgs) N(CLBlastInvalidLocalNumDimensions)
    N(CLBlastInvalidLocalThreadsTotal) N(CLBlastInvalidLocalThreadsDim) N(CLBlastInvalidGlobalOffset)
    N(CLBlastInvalidEventWaitList) N(CLBlastInvalidEvent) N(CLBlastInvalidOperation)
    N(CLBlastInvalidBufferSize) N(CLBlastInvalidGlobalWorkSize) N(CLBlastNotImplemented)
    N(CLBlastInvalidMatrixA) N(CLBlastInvalidMatrixB) N(CLBlastInvalidMatrixC)
    N(CLBlastInvalidVectorX) N(CLBlastInvalidVectorY) N(CLBlastInvalidDimension)
    N(CLBlastInvalidLeadDimA) N(CLBlastInvalidLeadDimB) N(CLBlastInvalidLeadDimC)
    N(CLBlastInvalidIncrementX) N(CLBlastInvalidIncrementY) N(CLBlastInsufficientMemoryA)
    N(CLBlastInsufficientMemoryB) N(CLBlastInsufficientMemoryC) N(CLBlastInsufficientMemoryX)
    N(CLBlastInsufficientMemoryY) N(CLBlastInsufficientMemoryTemp) N(CLBlastInvalidBatchCount)
    N(CLBlastInvalidOverrideKernel) N(CLBlastMissingOverrideParameter)
    N(CLBlastInvalidLocalMemUsage) N(CLBlastNoHalfPrecision) N(CLBlastNoDoublePrecision)
    N(CLBlastInvalidVectorScalar) N(CLBlastInsufficientMemoryScalar) N(CLBlastDatabaseError)
    N(CLBlastUnknownError) N(CLBlastUnexpectedError)
#undef N
    }
    return "CLBlastUnknownStatus";
}

double cldp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

int cldp_user_cache_dir(const char *leaf, char *buf, size_t cap)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;
    if (xdg && xdg[0] == '/') n = snprintf(buf, cap, "%s/cldp/%s", xdg, leaf);
    else if (home && home[0]) n = snprintf(buf, cap, "%s/.cache/cldp/%s", home, leaf);
    else return -1;
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

int cldp_make_dirs(const char *path)
{
    char tmp[1024];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

void cldp_sleep_ms(double ms)
{
    if (!(ms > 0)) return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(fmod(ms, 1000.0) * 1e6)};
    while (nanosleep(&ts, &ts) != 0) {}
}

int cldp_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) return -1;
    *out = a * b;
    return 0;
}

/* ---- allocation ------------------------------------------------------------------------ */

_Atomic long cldp_test_alloc_fail_after = -1;
_Atomic long cldp_test_device_alloc_fail_after = -1;

/* Counts an armed counter down; 1 for the allocation that finds it at 0. The relaxed load keeps
 * the unarmed case (every allocation of a normal run) to one read. */
static int injected(_Atomic long *counter)
{
    long v = atomic_load_explicit(counter, memory_order_relaxed);
    while (v >= 0)
        if (atomic_compare_exchange_weak(counter, &v, v - 1)) return v == 0;
    return 0;
}

int cldp_test_host_alloc_fails(void) { return CLDP_TEST_ARMED() && injected(&cldp_test_alloc_fail_after); }
int cldp_test_device_alloc_fails(void) { return CLDP_TEST_ARMED() && injected(&cldp_test_device_alloc_fail_after); }

void *cldp_malloc(size_t bytes, const char *what)
{
    void *p = cldp_test_host_alloc_fails() ? NULL : malloc(bytes ? bytes : 1);
    if (!p) cldp_fail(CLDP_ERR_HOST_MEMORY, "out of host memory allocating %zu bytes for %s", bytes, what);
    return p;
}

void *cldp_calloc(size_t n, size_t size, const char *what)
{
    void *p = cldp_test_host_alloc_fails() ? NULL : calloc(n ? n : 1, size ? size : 1);
    if (!p) cldp_fail(CLDP_ERR_HOST_MEMORY, "out of host memory allocating %zu x %zu bytes for %s", n, size, what);
    return p;
}

void *cldp_realloc(void *old, size_t bytes, const char *what)
{
    void *p = cldp_test_host_alloc_fails() ? NULL : realloc(old, bytes ? bytes : 1);
    if (!p) cldp_fail(CLDP_ERR_HOST_MEMORY, "out of host memory growing %s to %zu bytes", what, bytes);
    return p;
}

cldp_status cldp_cl_alloc_status(cl_int err)
{
    if (err == CL_OUT_OF_HOST_MEMORY) return CLDP_ERR_HOST_MEMORY;
    if (err == CL_OUT_OF_RESOURCES || err == CL_MEM_OBJECT_ALLOCATION_FAILURE) return CLDP_ERR_DEVICE_MEMORY;
    return CLDP_ERR_OPENCL;
}

uint32_t cldp_crc32(const void *data, size_t len)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    const unsigned char *p = data;
    while (len > 0) { /* zlib's length argument is a uInt */
        uInt chunk = len > (1u << 30) ? (1u << 30) : (uInt)len;
        crc = crc32(crc, p, chunk);
        p += chunk;
        len -= chunk;
    }
    return (uint32_t)crc;
}
