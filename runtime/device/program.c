/* program.c — OpenCL program builds with a persistent binary cache. An entry is
 *   "CLDPKBIN" | u32 format | u64 key | u64 length | u32 crc32(binary) | binary
 * written to a temporary file and renamed, so readers see a whole entry or none; anything that
 * does not check out (size, key, checksum, or the driver refusing the binary) is rebuilt. */
#define _POSIX_C_SOURCE 200809L
#include "program.h"
#include "le.h"
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CACHE_MAGIC "CLDPKBIN"
#define CACHE_FORMAT 1u
#define CACHE_HEADER 32 /* magic 8, format 4, key 8, length 8, crc 4 */
#define CACHE_MAX_BINARY (256u << 20)

static pthread_mutex_t counters_mu = PTHREAD_MUTEX_INITIALIZER;
static cldp_program_cache_stats counters;

static void count(unsigned long *what)
{
    pthread_mutex_lock(&counters_mu);
    (*what)++;
    pthread_mutex_unlock(&counters_mu);
}

cldp_program_cache_stats cldp_program_cache_counters(void)
{
    pthread_mutex_lock(&counters_mu);
    cldp_program_cache_stats s = counters;
    pthread_mutex_unlock(&counters_mu);
    return s;
}

/* ---- key and location ------------------------------------------------------------------ */

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001B3ull;
    return (h ^ 0xff) * 0x100000001B3ull; /* a separator, so "ab"+"c" differs from "a"+"bc" */
}

static uint64_t cache_key(cl_device_id dev, const char *source, const char *options)
{
    char name[256] = "", driver[128] = "", platform[256] = "", version[32];
    cl_platform_id plat = NULL;
    clGetDeviceInfo(dev, CL_DEVICE_NAME, sizeof name - 1, name, NULL);
    clGetDeviceInfo(dev, CL_DRIVER_VERSION, sizeof driver - 1, driver, NULL);
    if (clGetDeviceInfo(dev, CL_DEVICE_PLATFORM, sizeof plat, &plat, NULL) == CL_SUCCESS)
        clGetPlatformInfo(plat, CL_PLATFORM_NAME, sizeof platform - 1, platform, NULL);
    snprintf(version, sizeof version, "cldp %u format %u", cldp_version_number(), CACHE_FORMAT);
    uint64_t h = 0xCBF29CE484222325ull;
    const char *parts[] = {source, options ? options : "", name, driver, platform, version};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) h = fnv1a(h, parts[i]);
    return h;
}

/* CLDP_CACHE_DIR that cannot hold the cache (a file, a read-only directory): said once per
 * process, on stderr, since the run itself goes on (uncached) and there is no call to fail. */
static void warn_cache_dir(const char *dir)
{
    static _Atomic int warned;
    struct stat st;
    int bad = stat(dir, &st) == 0 ? !S_ISDIR(st.st_mode) || access(dir, W_OK | X_OK) != 0 : 0;
    if (bad && !atomic_exchange(&warned, 1))
        fprintf(stderr, "cldp: CLDP_CACHE_DIR=%s is %s: compiled kernels are not cached; point it at a writable "
                        "directory, or set CLDP_KERNEL_CACHE=off\n",
                dir, S_ISDIR(st.st_mode) ? "not writable" : "not a directory");
}

static int cache_dir(char *buf, size_t cap)
{
    const cldp_config *cfg;
    cldp_config_get(&cfg); /* a bad variable fails the caller's create, not the cache */
    if (!cfg->kernel_cache) return -1;
    const char *dir = cfg->cache_dir;
    if (!*dir) return cldp_user_cache_dir("kernels", buf, cap);
    warn_cache_dir(dir);
    int n = snprintf(buf, cap, "%s", dir);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* ---- entries --------------------------------------------------------------------------- */


/* Reads a valid entry for `key`; returns its binary (malloc'd) or NULL when missing or damaged
 * (*damaged set in the latter case). */
static unsigned char *read_entry(const char *path, uint64_t key, size_t *len, int *damaged)
{
    *damaged = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char h[CACHE_HEADER];
    unsigned char *bin = NULL;
    *damaged = 1;
    if (fread(h, 1, sizeof h, f) != sizeof h || memcmp(h, CACHE_MAGIC, 8) || get_u32(h + 8) != CACHE_FORMAT ||
        get_u64(h + 12) != key)
        goto out;
    uint64_t n = get_u64(h + 20);
    if (n == 0 || n > CACHE_MAX_BINARY || !(bin = malloc((size_t)n))) goto out;
    if (fread(bin, 1, (size_t)n, f) != n || fgetc(f) != EOF || cldp_crc32(bin, (size_t)n) != get_u32(h + 28)) {
        free(bin);
        bin = NULL;
        goto out;
    }
    *len = (size_t)n;
    *damaged = 0;
out:
    fclose(f);
    return bin;
}

static void write_entry(const char *dir, const char *path, uint64_t key, const unsigned char *bin, size_t len)
{
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    cldp_make_dirs(dir); /* a failure surfaces as a failed write, which only costs the cache */
    FILE *f = fopen(tmp, "wb");
    if (!f) return;
    unsigned char h[CACHE_HEADER];
    memcpy(h, CACHE_MAGIC, 8);
    put_u32(h + 8, CACHE_FORMAT);
    put_u64(h + 12, key);
    put_u64(h + 20, len);
    put_u32(h + 28, cldp_crc32(bin, len));
    int ok = fwrite(h, 1, sizeof h, f) == sizeof h && fwrite(bin, 1, len, f) == len;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) unlink(tmp);
}

/* The binary of a built program for its one device (malloc'd), or NULL. */
static unsigned char *program_binary(cl_program p, size_t *len)
{
    size_t size = 0;
    if (clGetProgramInfo(p, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL) != CL_SUCCESS || size == 0 ||
        size > CACHE_MAX_BINARY)
        return NULL;
    unsigned char *bin = malloc(size);
    if (!bin) return NULL;
    if (clGetProgramInfo(p, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL) != CL_SUCCESS) {
        free(bin);
        return NULL;
    }
    *len = size;
    return bin;
}

/* ---- building -------------------------------------------------------------------------- */

static cldp_status build_from_source(cl_context ctx, cl_device_id dev, const char *dev_name, const char *source,
                                     const char *options, cl_program *out)
{
    cl_int err;
    cl_program p = clCreateProgramWithSource(ctx, 1, &source, NULL, &err);
    if (err != CL_SUCCESS)
        return cldp_fail(CLDP_ERR_OPENCL, "%s: clCreateProgramWithSource failed with %s", dev_name, cldp_cl_error_name(err));
    err = clBuildProgram(p, 1, &dev, options, NULL, NULL);
    if (err != CL_SUCCESS) {
        char log[1400] = "";
        clGetProgramBuildInfo(p, dev, CL_PROGRAM_BUILD_LOG, sizeof log - 1, log, NULL);
        log[sizeof log - 1] = 0;
        clReleaseProgram(p);
        return cldp_fail(CLDP_ERR_BUILD, "%s: clBuildProgram failed with %s; build log:\n%s", dev_name,
                         cldp_cl_error_name(err), log);
    }
    *out = p;
    return CLDP_OK;
}

static cl_program from_binary(cl_context ctx, cl_device_id dev, const char *options, const unsigned char *bin, size_t len)
{
    cl_int err, status;
    cl_program p = clCreateProgramWithBinary(ctx, 1, &dev, &len, &bin, &status, &err);
    if (err != CL_SUCCESS || status != CL_SUCCESS) {
        if (p) clReleaseProgram(p);
        return NULL;
    }
    if (clBuildProgram(p, 1, &dev, options, NULL, NULL) != CL_SUCCESS) {
        clReleaseProgram(p);
        return NULL;
    }
    return p;
}

cldp_status cldp_build_program(cl_context ctx, cl_device_id dev, const char *dev_name, const char *source,
                               const char *options, cl_program *out)
{
    char dir[1024], path[1100];
    if (cache_dir(dir, sizeof dir) != 0) return build_from_source(ctx, dev, dev_name, source, options, out);
    uint64_t key = cache_key(dev, source, options);
    snprintf(path, sizeof path, "%s/%016llx.bin", dir, (unsigned long long)key);

    size_t len = 0;
    int damaged;
    unsigned char *bin = read_entry(path, key, &len, &damaged);
    if (bin) {
        cl_program p = from_binary(ctx, dev, options, bin, len);
        free(bin);
        if (p) {
            count(&counters.hits);
            *out = p;
            return CLDP_OK;
        }
        damaged = 1; /* the driver refused it (e.g. updated in place): rebuild */
    }
    count(damaged ? &counters.rejected : &counters.misses);
    TRY(build_from_source(ctx, dev, dev_name, source, options, out));
    if ((bin = program_binary(*out, &len))) {
        write_entry(dir, path, key, bin, len);
        free(bin);
    }
    return CLDP_OK;
}
