/* devices.c — every device of every platform the ICD loader reports, their facts, and the
 * selection spec (CLDP_DEVICES) that picks which of them train. */
#define _POSIX_C_SOURCE 200809L
#include "devices.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cldp_dev *g_devs;
static size_t g_ndev;
static cldp_status g_status = CLDP_OK;
static char g_error[1024];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void get_str(cl_device_id d, cl_device_info what, char *buf, size_t cap)
{
    buf[0] = 0;
    if (clGetDeviceInfo(d, what, cap, buf, NULL) != CL_SUCCESS) snprintf(buf, cap, "?");
    buf[cap - 1] = 0;
}

static cldp_status discover(void)
{
    cl_uint np = 0;
    cl_int err = clGetPlatformIDs(0, NULL, &np);
    if (err == -1001 /* CL_PLATFORM_NOT_FOUND_KHR */ || np == 0)
        return cldp_fail(CLDP_ERR_NO_DEVICE,
                         "no OpenCL platform found: install an ICD (e.g. Debian pocl-opencl-icd "
                         "for CPUs, or your GPU vendor's driver) or check /etc/OpenCL/vendors");
    CL_CHECK("host", err);
    cl_platform_id *plats = cldp_calloc(np, sizeof *plats, "platform list");
    if (!plats) return CLDP_ERR_HOST_MEMORY;
    cldp_status st = CLDP_OK;
    err = clGetPlatformIDs(np, plats, NULL);
    if (err != CL_SUCCESS) {
        st = cldp_fail(CLDP_ERR_OPENCL, "clGetPlatformIDs failed with %s", cldp_cl_error_name(err));
        goto out;
    }
    for (cl_uint p = 0; p < np; p++) {
        cl_uint nd = 0;
        /* A platform without devices is not an error; it simply adds none. */
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd) != CL_SUCCESS || nd == 0) continue;
        cl_device_id *ids = cldp_calloc(nd, sizeof *ids, "device list");
        cldp_dev *grown = ids ? realloc(g_devs, (g_ndev + nd) * sizeof *g_devs) : NULL;
        if (!grown) {
            free(ids);
            st = cldp_fail(CLDP_ERR_HOST_MEMORY, "out of host memory listing devices");
            goto out;
        }
        g_devs = grown;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, nd, ids, NULL) != CL_SUCCESS) nd = 0;
        char pname[128];
        if (clGetPlatformInfo(plats[p], CL_PLATFORM_NAME, sizeof pname, pname, NULL) != CL_SUCCESS)
            snprintf(pname, sizeof pname, "?");
        pname[sizeof pname - 1] = 0;
        for (cl_uint d = 0; d < nd; d++) {
            cldp_dev *dv = &g_devs[g_ndev];
            memset(dv, 0, sizeof *dv);
            dv->platform = plats[p];
            dv->id = ids[d];
            cldp_device_info *in = &dv->info;
            in->index = g_ndev;
            in->platform_index = p;
            in->device_index = d;
            snprintf(in->platform_name, sizeof in->platform_name, "%s", pname);
            get_str(ids[d], CL_DEVICE_NAME, in->name, sizeof in->name);
            get_str(ids[d], CL_DEVICE_VENDOR, in->vendor, sizeof in->vendor);
            get_str(ids[d], CL_DRIVER_VERSION, in->driver_version, sizeof in->driver_version);
            get_str(ids[d], CL_DEVICE_VERSION, in->opencl_version, sizeof in->opencl_version);
            cl_device_type t = 0;
            clGetDeviceInfo(ids[d], CL_DEVICE_TYPE, sizeof t, &t, NULL);
            in->type = (t & CL_DEVICE_TYPE_GPU) ? CLDP_DEVICE_GPU
                     : (t & CL_DEVICE_TYPE_CPU) ? CLDP_DEVICE_CPU
                     : (t & CL_DEVICE_TYPE_ACCELERATOR) ? CLDP_DEVICE_ACCELERATOR
                                                        : CLDP_DEVICE_OTHER;
            cl_uint cu = 0;
            clGetDeviceInfo(ids[d], CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL);
            in->compute_units = cu;
            cl_ulong gm = 0, ma = 0;
            clGetDeviceInfo(ids[d], CL_DEVICE_GLOBAL_MEM_SIZE, sizeof gm, &gm, NULL);
            clGetDeviceInfo(ids[d], CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof ma, &ma, NULL);
            in->global_mem_bytes = gm;
            in->max_alloc_bytes = ma;
            cl_bool hum = CL_FALSE;
            clGetDeviceInfo(ids[d], CL_DEVICE_HOST_UNIFIED_MEMORY, sizeof hum, &hum, NULL);
            in->host_unified_memory = hum == CL_TRUE;
            g_ndev++;
        }
        free(ids);
    }
    if (g_ndev == 0)
        st = cldp_fail(CLDP_ERR_NO_DEVICE,
                       "%u OpenCL platform(s) found but no device: check the driver installation "
                       "(clinfo lists what the ICD loader sees)", np);
out:
    free(plats);
    return st;
}

static void discover_once(void)
{
    g_status = discover();
    if (g_status != CLDP_OK) snprintf(g_error, sizeof g_error, "%s", cldp_last_error());
}

cldp_status cldp_devices(const cldp_dev **devs, size_t *count)
{
    pthread_once(&g_once, discover_once);
    if (g_status != CLDP_OK) {
        cldp_set_last_error(g_error);
        return g_status;
    }
    *devs = g_devs;
    *count = g_ndev;
    return CLDP_OK;
}

cldp_status cldp_device_count(size_t *count)
{
    REQUIRE(count, "cldp_device_count: count is NULL");
    const cldp_dev *d;
    return cldp_devices(&d, count);
}

cldp_status cldp_device_get_info(size_t index, cldp_device_info *info)
{
    REQUIRE(info, "cldp_device_get_info: info is NULL");
    const cldp_dev *d = NULL;
    size_t n = 0;
    TRY(cldp_devices(&d, &n));
    REQUIRE(index < n, "cldp_device_get_info: device %zu does not exist (there are %zu)", index, n);
    *info = d[index].info;
    return CLDP_OK;
}

/* ---- selection ------------------------------------------------------------------------- */

static int strcasecmp_portable(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        int d = tolower((unsigned char)*a) - tolower((unsigned char)*b);
        if (d) return d;
    }
    return (unsigned char)*a - (unsigned char)*b;
}

static int contains_ci(const char *hay, const char *needle)
{
    size_t nl = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < nl && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i])) i++;
        if (i == nl) return 1;
    }
    return nl == 0;
}

static const char *type_name(cldp_device_type t)
{
    return t == CLDP_DEVICE_GPU ? "gpu" : t == CLDP_DEVICE_CPU ? "cpu"
         : t == CLDP_DEVICE_ACCELERATOR ? "accelerator" : "other";
}

static cldp_status no_match(const cldp_dev *devs, size_t ndev, const char *spec, const char *why)
{
    char list[1536];
    size_t used = 0;
    list[0] = 0;
    for (size_t i = 0; i < ndev && used < sizeof list; i++) {
        int w = snprintf(list + used, sizeof list - used, "\n  %u:%u %s (%s, %s)",
                         devs[i].info.platform_index, devs[i].info.device_index, devs[i].info.name,
                         devs[i].info.vendor, type_name(devs[i].info.type));
        if (w < 0) break;
        used += (size_t)w;
    }
    return cldp_fail(CLDP_ERR_NO_DEVICE,
                     "device spec \"%s\" %s; use all, gpu, cpu, accelerator, a list of "
                     "platform:device indices or a name substring. Devices found:%s",
                     spec, why, list);
}

/* Parses "p:d,p:d,..." strictly; returns the number of pairs or -1 when spec is not such a list. */
static int parse_index_list(const char *spec, unsigned (*pairs)[2], size_t cap)
{
    const char *s = spec;
    size_t n = 0;
    while (*s) {
        char *end;
        if (!isdigit((unsigned char)*s)) return -1;
        unsigned long p = strtoul(s, &end, 10);
        if (*end != ':' || !isdigit((unsigned char)end[1])) return -1;
        unsigned long d = strtoul(end + 1, &end, 10);
        if (p > 1000000 || d > 1000000) return -1;
        if (n < cap) {
            pairs[n][0] = (unsigned)p;
            pairs[n][1] = (unsigned)d;
        }
        n++;
        if (*end == ',') end++;
        else if (*end) return -1;
        s = end;
    }
    return n > 0 ? (int)n : -1;
}

cldp_status cldp_select_from(const cldp_dev *devs, size_t ndev, const char *spec, size_t *indices,
                             size_t capacity, size_t *count)
{
    REQUIRE(indices && count, "cldp_device_select: indices or count is NULL");
    REQUIRE(capacity > 0, "cldp_device_select: capacity is 0");
    char buf[256];
    if (!spec) spec = "";
    /* trim surrounding blanks */
    while (isspace((unsigned char)*spec)) spec++;
    size_t len = strlen(spec);
    while (len > 0 && isspace((unsigned char)spec[len - 1])) len--;
    REQUIRE(len < sizeof buf, "device spec is too long (%zu characters)", len);
    memcpy(buf, spec, len);
    buf[len] = 0;

    size_t n = 0;
    int want_type = 0; /* 0: not a type spec */
    if (len == 0 || !strcasecmp_portable(buf, "default")) {
        for (size_t i = 0; i < ndev; i++) if (devs[i].info.type == CLDP_DEVICE_GPU) want_type = CLDP_DEVICE_GPU;
        if (!want_type) want_type = -1;
    } else if (!strcasecmp_portable(buf, "all")) want_type = -1;
    else if (!strcasecmp_portable(buf, "gpu")) want_type = CLDP_DEVICE_GPU;
    else if (!strcasecmp_portable(buf, "cpu")) want_type = CLDP_DEVICE_CPU;
    else if (!strcasecmp_portable(buf, "accelerator")) want_type = CLDP_DEVICE_ACCELERATOR;

    if (want_type) {
        for (size_t i = 0; i < ndev; i++) {
            if (want_type != -1 && (int)devs[i].info.type != want_type) continue;
            if (n == capacity) return cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "device spec \"%s\" selects more than %zu devices", buf, capacity);
            indices[n++] = i;
        }
        if (n == 0) return no_match(devs, ndev, buf, "matches no device");
        *count = n;
        return CLDP_OK;
    }

    unsigned pairs[64][2];
    int np = parse_index_list(buf, pairs, 64);
    if (np > 64) return cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "device spec \"%s\" lists more than 64 devices", buf);
    if (np > 0) {
        for (int k = 0; k < np; k++) {
            size_t found = ndev;
            for (size_t i = 0; i < ndev; i++)
                if (devs[i].info.platform_index == pairs[k][0] && devs[i].info.device_index == pairs[k][1]) found = i;
            if (found == ndev) {
                char why[64];
                snprintf(why, sizeof why, "names %u:%u, which does not exist", pairs[k][0], pairs[k][1]);
                return no_match(devs, ndev, buf, why);
            }
            for (size_t j = 0; j < n; j++)
                if (indices[j] == found)
                    return cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "device spec \"%s\" names %u:%u twice; each device may hold one replica", buf, pairs[k][0], pairs[k][1]);
            if (n == capacity) return cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "device spec \"%s\" selects more than %zu devices", buf, capacity);
            indices[n++] = found;
        }
        *count = n;
        return CLDP_OK;
    }

    for (size_t i = 0; i < ndev; i++) {
        const cldp_device_info *in = &devs[i].info;
        if (!contains_ci(in->name, buf) && !contains_ci(in->vendor, buf) && !contains_ci(in->platform_name, buf)) continue;
        if (n == capacity) return cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "device spec \"%s\" selects more than %zu devices", buf, capacity);
        indices[n++] = i;
    }
    if (n == 0) return no_match(devs, ndev, buf, "matches no device name, vendor or platform");
    *count = n;
    return CLDP_OK;
}

cldp_status cldp_device_select(const char *spec, size_t *indices, size_t capacity, size_t *count)
{
    REQUIRE(indices && count, "cldp_device_select: indices or count is NULL");
    const cldp_dev *d = NULL;
    size_t n = 0;
    TRY(cldp_devices(&d, &n));
    if (!spec || !*spec) spec = getenv("CLDP_DEVICES");
    return cldp_select_from(d, n, spec, indices, capacity, count);
}
