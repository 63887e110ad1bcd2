/* devices.c — every device of every platform the ICD loader reports, their facts, and the
 * selection spec (CLDP_DEVICES) that picks which of them train. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"
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

/* A string fact into buf[cap]: sized by the query first (a driver's string may be longer than
 * the field: PoCL's pthread device has a 64-character CL_DEVICE_VERSION), then cut to fit. "?"
 * when the driver does not answer. */
static void get_str(cl_device_id d, cl_device_info what, char *buf, size_t cap)
{
    size_t len = 0;
    char *full = NULL;
    snprintf(buf, cap, "?");
    if (clGetDeviceInfo(d, what, 0, NULL, &len) != CL_SUCCESS || len == 0 || !(full = calloc(len + 1, 1))) return;
    if (clGetDeviceInfo(d, what, len, full, NULL) == CL_SUCCESS) snprintf(buf, cap, "%s", full);
    free(full);
}

/* ---- identity: one physical device, counted once ------------------------------------- */

/* Extension names and queries of cl_khr_device_uuid, cl_khr_pci_bus_info and the AMD/NVIDIA
 * attribute queries, spelled out so older headers do not matter. */
#define CLDP_DEVICE_UUID_KHR 0x106A
#define CLDP_DEVICE_PCI_BUS_INFO_KHR 0x410F
#define CLDP_DEVICE_TOPOLOGY_AMD 0x4037
#define CLDP_DEVICE_PCI_BUS_ID_NV 0x4008
#define CLDP_DEVICE_PCI_SLOT_ID_NV 0x4009
#define CLDP_DEVICE_PCI_DOMAIN_ID_NV 0x400A

static int has_extension(const char *exts, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = exts; (p = strstr(p, name)) != NULL; p += n)
        if ((p == exts || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0)) return 1;
    return 0;
}

static void query_identity(cl_device_id d, cldp_dev_identity *id)
{
    memset(id, 0, sizeof *id);
    size_t len = 0;
    if (clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, 0, NULL, &len) != CL_SUCCESS || len == 0) return;
    char *exts = calloc(len + 1, 1);
    if (!exts) return; /* identity is a nicety: without memory for it, say nothing is known */
    if (clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, len, exts, NULL) != CL_SUCCESS) exts[0] = 0;
    if (has_extension(exts, "cl_khr_device_uuid") &&
        clGetDeviceInfo(d, CLDP_DEVICE_UUID_KHR, sizeof id->uuid, id->uuid, NULL) == CL_SUCCESS) {
        for (int i = 0; i < 16; i++) id->has_uuid |= id->uuid[i] != 0;
    }
    if (has_extension(exts, "cl_khr_pci_bus_info")) {
        cl_uint pci[4] = {0, 0, 0, 0}; /* domain, bus, device, function */
        if (clGetDeviceInfo(d, CLDP_DEVICE_PCI_BUS_INFO_KHR, sizeof pci, pci, NULL) == CL_SUCCESS) {
            id->has_pci = 1;
            id->pci_domain = pci[0], id->pci_bus = pci[1], id->pci_device = pci[2], id->pci_function = pci[3];
        }
    }
    if (!id->has_pci && has_extension(exts, "cl_amd_device_attribute_query")) {
        /* cl_device_topology_amd: a type word, then for PCIe (type 1) bus, device and function
         * in the last three of its 24 bytes; no domain */
        unsigned char topo[24] = {0};
        cl_uint type;
        if (clGetDeviceInfo(d, CLDP_DEVICE_TOPOLOGY_AMD, sizeof topo, topo, NULL) == CL_SUCCESS &&
            (memcpy(&type, topo, sizeof type), type == 1)) {
            id->has_pci = 1;
            id->pci_bus = topo[21], id->pci_device = topo[22], id->pci_function = topo[23];
        }
    }
    if (!id->has_pci && has_extension(exts, "cl_nv_device_attribute_query")) {
        /* the slot id is the PCI devfn: device in the upper five bits, function in the lower three */
        cl_uint bus = 0, slot = 0, domain = 0;
        if (clGetDeviceInfo(d, CLDP_DEVICE_PCI_BUS_ID_NV, sizeof bus, &bus, NULL) == CL_SUCCESS &&
            clGetDeviceInfo(d, CLDP_DEVICE_PCI_SLOT_ID_NV, sizeof slot, &slot, NULL) == CL_SUCCESS) {
            clGetDeviceInfo(d, CLDP_DEVICE_PCI_DOMAIN_ID_NV, sizeof domain, &domain, NULL); /* newer drivers only */
            id->has_pci = 1;
            id->pci_domain = domain, id->pci_bus = bus, id->pci_device = slot >> 3, id->pci_function = slot & 7;
        }
    }
    /* an all-zero address is the host bridge, never a device: a driver that does not know */
    if (id->has_pci && !(id->pci_domain | id->pci_bus | id->pci_device | id->pci_function)) id->has_pci = 0;
    free(exts);
}

static void format_identity(const cldp_dev_identity *id, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = 0;
    if (id->has_pci)
        used += (size_t)snprintf(buf, cap, "pci:%04x:%02x:%02x.%x", id->pci_domain, id->pci_bus, id->pci_device, id->pci_function);
    if (id->has_uuid && used < cap) {
        const unsigned char *u = id->uuid;
        snprintf(buf + used, cap - used,
                 "%suuid:%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", used ? " " : "",
                 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
    }
    if (!id->has_pci && !id->has_uuid) snprintf(buf, cap, "unknown");
}

static int same_device(const cldp_dev_identity *a, const cldp_dev_identity *b)
{
    if (a->has_uuid && b->has_uuid && !memcmp(a->uuid, b->uuid, sizeof a->uuid)) return 1;
    return a->has_pci && b->has_pci && a->pci_domain == b->pci_domain && a->pci_bus == b->pci_bus &&
           a->pci_device == b->pci_device && a->pci_function == b->pci_function;
}

size_t cldp_dedupe(cldp_dev *devs, size_t n)
{
    /* root[i]: the first entry of i's physical device (i itself when it is the first) */
    size_t *root = calloc(n ? n : 1, sizeof *root);
    for (size_t i = 0; i < n; i++) {
        format_identity(&devs[i].ident, devs[i].info.identity, sizeof devs[i].info.identity);
        devs[i].info.duplicates[0] = 0;
        if (!root) continue; /* out of memory: keep every entry rather than fail discovery */
        root[i] = i;
        for (size_t j = 0; j < i && root[i] == i; j++) {
            size_t r = root[j];
            if (devs[j].info.platform_index != devs[i].info.platform_index &&
                devs[r].info.platform_index != devs[i].info.platform_index && same_device(&devs[j].ident, &devs[i].ident))
                root[i] = r;
        }
        if (root[i] != i) {
            char *dup = devs[root[i]].info.duplicates;
            size_t used = strlen(dup), cap = sizeof devs[root[i]].info.duplicates;
            if (used + 1 < cap)
                snprintf(dup + used, cap - used, "%s%u:%u", used ? "," : "", devs[i].info.platform_index, devs[i].info.device_index);
        }
    }
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (root && root[i] != i) continue;
        if (kept != i) devs[kept] = devs[i];
        devs[kept].info.index = kept;
        kept++;
    }
    free(root);
    return kept;
}

/* ---- discovery ------------------------------------------------------------------------- */

/* Device d of platform p (named pname) as cldp lists it, at index g_ndev (counted here). */
static void describe_device(cldp_dev *dv, cl_platform_id platform, cl_uint p, cl_device_id id, cl_uint d, const char *pname)
{
    memset(dv, 0, sizeof *dv);
    dv->platform = platform;
    dv->id = id;
    cldp_device_info *in = &dv->info;
    in->index = g_ndev;
    in->platform_index = p;
    in->device_index = d;
    snprintf(in->platform_name, sizeof in->platform_name, "%s", pname);
    get_str(id, CL_DEVICE_NAME, in->name, sizeof in->name);
    get_str(id, CL_DEVICE_VENDOR, in->vendor, sizeof in->vendor);
    get_str(id, CL_DRIVER_VERSION, in->driver_version, sizeof in->driver_version);
    get_str(id, CL_DEVICE_VERSION, in->opencl_version, sizeof in->opencl_version);
    cl_device_type t = 0;
    clGetDeviceInfo(id, CL_DEVICE_TYPE, sizeof t, &t, NULL);
    in->type = (t & CL_DEVICE_TYPE_GPU) ? CLDP_DEVICE_GPU
             : (t & CL_DEVICE_TYPE_CPU) ? CLDP_DEVICE_CPU
             : (t & CL_DEVICE_TYPE_ACCELERATOR) ? CLDP_DEVICE_ACCELERATOR
                                                : CLDP_DEVICE_OTHER;
    cl_uint cu = 0;
    clGetDeviceInfo(id, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL);
    in->compute_units = cu;
    cl_ulong gm = 0, ma = 0;
    clGetDeviceInfo(id, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof gm, &gm, NULL);
    clGetDeviceInfo(id, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof ma, &ma, NULL);
    in->global_mem_bytes = gm;
    in->max_alloc_bytes = ma;
    cl_bool hum = CL_FALSE;
    clGetDeviceInfo(id, CL_DEVICE_HOST_UNIFIED_MEMORY, sizeof hum, &hum, NULL);
    in->host_unified_memory = hum == CL_TRUE;
    query_identity(id, &dv->ident);
    g_ndev++;
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
        for (cl_uint d = 0; d < nd; d++) describe_device(&g_devs[g_ndev], plats[p], p, ids[d], d, pname);
        free(ids);
    }
    {
        const cldp_config *cfg;
        cldp_config_get(&cfg); /* a bad value is reported by the calls that select devices */
        if (!cfg->dedupe) { /* CLDP_DEDUPE=off: list every platform's entry of a device */
            for (size_t i = 0; i < g_ndev; i++)
                format_identity(&g_devs[i].ident, g_devs[i].info.identity, sizeof g_devs[i].info.identity);
        } else {
            g_ndev = cldp_dedupe(g_devs, g_ndev);
        }
    }
    const char *pocl = getenv("POCL_DEVICES"); /* PoCL's own variable, read only to explain */
    if (g_ndev == 0 && pocl)
        st = cldp_fail(CLDP_ERR_NO_DEVICE,
                       "%u OpenCL platform(s) found but no device, and POCL_DEVICES is set to \"%.64s\": PoCL "
                       "offers only the device types it lists, so a type it does not know leaves it none; unset "
                       "POCL_DEVICES or give known types (e.g. POCL_DEVICES=\"basic basic\" or \"pthread\")", np, pocl);
    else if (g_ndev == 0)
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
    const cldp_config *cfg;
    TRY(cldp_config_get(&cfg));
    if (!spec || !*spec) spec = cfg->devices;
    return cldp_select_from(d, n, spec, indices, capacity, count);
}
