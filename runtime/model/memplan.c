/* memplan.c — the memory plan: a replica's need from the size table, the rows each device can
 * hold, and the joint budget of the devices that share host memory against what the host has
 * (MemAvailable, an address-space limit). */
#define _POSIX_C_SOURCE 200809L
#include "memplan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

void cldp_mem_estimate(const cldp_model *m, size_t rows, cldp_mem_need *need)
{
    memset(need, 0, sizeof *need);
    uint64_t np = m->nparams, width = cldp_model_max_width(m);
    need->params = need->grads = np * sizeof(float);
    need->activations = (uint64_t)cldp_model_replica_floats(m, rows) * sizeof(float) - need->params - need->grads;
    for (size_t l = 0; l < m->nlayers; l++) {
        cldp_layer_size s;
        cldp_layer_size_of(m, l, rows, &s);
        if (s.scratch_bound > need->scratch) need->scratch = s.scratch_bound;
    }
    /* drivers may stage a transfer through pinned memory: the gradient read, one batch's input */
    need->staging = (np + (uint64_t)rows * (m->inputs + 1)) * sizeof(float);
    need->total = need->params + need->grads + need->activations + need->scratch + need->staging;
    uint64_t big = need->params;
    uint64_t rowbuf = (uint64_t)rows * width * sizeof(float);
    if (rowbuf > big) big = rowbuf;
    if (need->scratch > big) big = need->scratch;
    need->largest_buffer = big;
}

void cldp_mem_estimate_forward(const cldp_model *m, size_t rows, cldp_mem_need *need)
{
    memset(need, 0, sizeof *need);
    uint64_t outs = 0, big = (uint64_t)rows * m->inputs;
    need->params = m->nparams * sizeof(float);
    for (size_t l = 0; l < m->nlayers; l++) {
        cldp_layer_size s;
        cldp_layer_size_of(m, l, rows, &s);
        if (s.scratch_forward > need->scratch) need->scratch = s.scratch_forward;
        outs += (uint64_t)rows * s.out_per_row;
        if ((uint64_t)rows * s.out_per_row > big) big = (uint64_t)rows * s.out_per_row;
    }
    /* the input batch, every layer's output and the probabilities; staged: the input and the answer */
    uint64_t probs = (uint64_t)rows * cldp_model_outputs(m);
    need->activations = ((uint64_t)rows * m->inputs + outs + probs) * sizeof(float);
    need->staging = ((uint64_t)rows * m->inputs + probs) * sizeof(float);
    need->total = need->params + need->activations + need->scratch + need->staging;
    big *= sizeof(float);
    if (need->params > big) big = need->params;
    need->largest_buffer = need->scratch > big ? need->scratch : big;
}

uint64_t cldp_mem_usable(uint64_t global_mem, uint64_t cap)
{
    uint64_t usable = global_mem ? global_mem - global_mem / 16 : UINT64_MAX; /* 0: not reported */
    return cap && cap < usable ? cap : usable;
}

/* A training (forward 0) or an inference (1) replica's need at `rows` rows. */
static void estimate(const cldp_model *m, size_t rows, int forward, cldp_mem_need *need)
{
    if (forward) cldp_mem_estimate_forward(m, rows, need);
    else cldp_mem_estimate(m, rows, need);
}

static int fits(const cldp_model *m, size_t rows, uint64_t usable, uint64_t max_alloc, int forward)
{
    cldp_mem_need need;
    estimate(m, rows, forward, &need);
    return need.total <= usable && (max_alloc == 0 || need.largest_buffer <= max_alloc);
}

static cldp_status mem_plan(const cldp_model *m, size_t batch, const char *dev_name, uint64_t global_mem,
                            uint64_t max_alloc, uint64_t cap, const char *others, size_t *rows, int forward)
{
    REQUIRE(m && dev_name && rows && batch > 0, "cldp_mem_plan: bad arguments");
    uint64_t usable = cldp_mem_usable(global_mem, cap);
    char how[1024];
    if (others && others[0])
        snprintf(how, sizeof how, "leave this device out with --devices or CLDP_DEVICES (e.g. CLDP_DEVICES=%s), or use a smaller model", others);
    else if (others)
        snprintf(how, sizeof how, "it is the only device selected: use a smaller model, or a device with more memory");
    else
        snprintf(how, sizeof how, "none of the other selected devices would fit it either: use a smaller model, or a device with more memory");
    cldp_mem_need one;
    estimate(m, 1, forward, &one);
    if (max_alloc && one.params > max_alloc)
        return cldp_fail(CLDP_ERR_DEVICE_MEMORY,
                         "%s: the model's %zu parameters need %llu bytes in one buffer but the device allows at most %llu "
                         "(CL_DEVICE_MAX_MEM_ALLOC_SIZE); %s",
                         dev_name, m->nparams, (unsigned long long)one.params, (unsigned long long)max_alloc, how);
    if (!fits(m, 1, usable, max_alloc, forward)) {
        char has[160];
        if (cap && cap < cldp_mem_usable(global_mem, 0))
            snprintf(has, sizeof has, "capped by device_memory_cap / CLDP_DEVICE_MEMORY_CAP; the device reports %llu",
                     (unsigned long long)global_mem);
        else
            snprintf(has, sizeof has, "CL_DEVICE_GLOBAL_MEM_SIZE %llu less a sixteenth for the driver", (unsigned long long)global_mem);
        if (one.total <= usable) /* the memory is there but a single buffer is too large */
            return cldp_fail(CLDP_ERR_DEVICE_MEMORY,
                             "%s: one sample needs a %llu-byte buffer but the device allows at most %llu in one "
                             "(CL_DEVICE_MAX_MEM_ALLOC_SIZE); %s",
                             dev_name, (unsigned long long)one.largest_buffer, (unsigned long long)max_alloc, how);
        return cldp_fail(CLDP_ERR_DEVICE_MEMORY,
                         "%s: the model does not fit: it needs %llu bytes (parameters %llu, gradients %llu, "
                         "activations of one sample %llu, CLBlast scratch %llu, staging %llu) but the device has "
                         "%llu bytes usable (%s); %s",
                         dev_name, (unsigned long long)one.total, (unsigned long long)one.params,
                         (unsigned long long)one.grads, (unsigned long long)one.activations,
                         (unsigned long long)one.scratch, (unsigned long long)one.staging,
                         (unsigned long long)usable, has, how);
    }
    /* the need grows with the rows: the largest that fits, by bisection */
    size_t lo = 1, hi = batch;
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        if (fits(m, mid, usable, max_alloc, forward)) lo = mid;
        else hi = mid - 1;
    }
    *rows = lo;
    return CLDP_OK;
}

cldp_status cldp_mem_plan(const cldp_model *m, size_t batch, const char *dev_name, uint64_t global_mem,
                          uint64_t max_alloc, uint64_t cap, const char *others, size_t *rows)
{
    return mem_plan(m, batch, dev_name, global_mem, max_alloc, cap, others, rows, 0);
}



/* ---- devices that share host memory ---------------------------------------------------- */

/* The number after `key` in a /proc file of "Key:   123 kB" lines, in bytes; 0 when absent. */
static uint64_t proc_kb(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[256];
    unsigned long long kb = 0;
    size_t len = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, len) && line[len] == ':') {
            kb = strtoull(line + len + 1, NULL, 10);
            break;
        }
    fclose(f);
    return (uint64_t)kb * 1024;
}

void cldp_host_memory(uint64_t cap, cldp_host_mem *h)
{
    memset(h, 0, sizeof *h);
    uint64_t avail = proc_kb("/proc/meminfo", "MemAvailable");
    if (avail) {
        h->avail = avail;
        snprintf(h->what, sizeof h->what, "MemAvailable in /proc/meminfo");
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        uint64_t limit = (uint64_t)rl.rlim_cur, mapped = proc_kb("/proc/self/status", "VmSize");
        uint64_t room = limit > mapped ? limit - mapped : 0;
        if (!h->avail || room < h->avail) {
            h->avail = room ? room : 1;
            snprintf(h->what, sizeof h->what, "the address-space limit (ulimit -v) of %llu KiB less the %llu KiB the process has mapped",
                     (unsigned long long)(limit / 1024), (unsigned long long)(mapped / 1024));
        }
    }
    if (cap && (!h->avail || cap < h->avail)) {
        h->avail = cap;
        snprintf(h->what, sizeof h->what, "capped by CLDP_HOST_MEMORY_CAP");
    }
}

/* "device 0:1 (name)" */
static void dev_label(const cldp_device_info *d, char *buf, size_t cap)
{
    snprintf(buf, cap, "device %u:%u (%s)", d->platform_index, d->device_index, d->name);
}

/* Appends "p:d" of d to the comma-separated list in buf[cap]. */
static void list_add(char *buf, size_t cap, const cldp_device_info *d)
{
    size_t used = strlen(buf);
    snprintf(buf + used, cap - used, "%s%u:%u", used ? "," : "", d->platform_index, d->device_index);
}

#define MAX_PLANNED 64

/* The host batch each replica's warm-up makes once (one replica after another): rows x (inputs +
 * a label). */
static uint64_t host_batch(const cldp_model *m, size_t rows)
{
    return (uint64_t)rows * (m->inputs + 1) * sizeof(float);
}

/* The refusal when the devices that share host memory (nshared of dev[0, n)) cannot hold one
 * row each within `budget` bytes: it names them, and the selections that would fit. */
static cldp_status shared_refusal(const cldp_model *m, const cldp_device_info *const *dev, size_t n,
                                  const cldp_host_mem *host, uint64_t host_fixed, uint64_t budget,
                                  const cldp_mem_need *one_row, size_t nshared, int forward)
{
    const cldp_mem_need one = *one_row;
    char shared[2048] = "", fit[1024] = "";
    uint64_t first = host_batch(m, 1);
    size_t can = budget > first ? (size_t)((budget - first) / one.total) : 0, took = 0;
    for (size_t r = 0; r < n; r++) {
        if (dev[r]->host_unified_memory) {
            char name[192];
            dev_label(dev[r], name, sizeof name);
            size_t used = strlen(shared);
            snprintf(shared + used, sizeof shared - used, "%s%s", used ? ", " : "", name);
        }
        if (!dev[r]->host_unified_memory || took < can) {
            list_add(fit, sizeof fit, dev[r]);
            took += dev[r]->host_unified_memory != 0;
        }
    }
    char how[1200];
    if (can > 0)
        snprintf(how, sizeof how, "at most %zu of them fit: select fewer with --devices or CLDP_DEVICES (e.g. "
                 "CLDP_DEVICES=%s), or use a smaller model", can, fit);
    else
        snprintf(how, sizeof how, "not even one of them fits: use a smaller model, or free host memory");
    return cldp_fail(CLDP_ERR_DEVICE_MEMORY,
                     "%zu devices share host memory (%s): together they need %llu bytes (%llu each for the model and one "
                     "sample) and the %s %llu more on the host, but the host has %llu bytes available (%s), of "
                     "which a sixteenth and %llu MiB for the drivers are left free; %s",
                     nshared, shared, (unsigned long long)(one.total * nshared), (unsigned long long)one.total,
                     forward ? "server" : "trainer",
                     (unsigned long long)(host_fixed + first), (unsigned long long)host->avail, host->what,
                     (unsigned long long)(CLDP_HOST_RESERVE >> 20), how);
}

static cldp_status plan_devices(const cldp_model *m, size_t batch, const cldp_device_info *const *dev, size_t n,
                                uint64_t cap, const cldp_host_mem *host, uint64_t host_fixed, size_t *rows, int forward)
{
    REQUIRE(m && dev && host && rows && n > 0 && batch > 0, "cldp_mem_plan_devices: bad arguments");
    cldp_mem_need one;
    estimate(m, 1, forward, &one);
    /* what the devices sharing host memory may use together (UINT64_MAX when the host says
     * nothing): the available memory less a sixteenth, the drivers' reserve and the trainer's own */
    uint64_t room = host->avail - host->avail / 16, keep = host_fixed + CLDP_HOST_RESERVE;
    uint64_t budget = host->avail ? (room > keep ? room - keep : 0) : UINT64_MAX;
    REQUIRE(n <= MAX_PLANNED, "cldp_mem_plan_devices: %zu devices (at most %d)", n, MAX_PLANNED);
    int fits_alone[MAX_PLANNED] = {0};
    size_t nshared = 0;
    for (size_t r = 0; r < n; r++) {
        uint64_t usable = cldp_mem_usable(dev[r]->global_mem_bytes, cap);
        fits_alone[r] = one.total <= usable && (!dev[r]->max_alloc_bytes || one.largest_buffer <= dev[r]->max_alloc_bytes) &&
                        (!dev[r]->host_unified_memory || one.total <= budget);
        nshared += dev[r]->host_unified_memory != 0;
    }
    /* each device on its own; a refusal suggests only the others that would fit */
    for (size_t r = 0; r < n; r++) {
        char name[192], others[1024] = "";
        dev_label(dev[r], name, sizeof name);
        for (size_t q = 0; q < n; q++)
            if (q != r && fits_alone[q]) list_add(others, sizeof others, dev[q]);
        TRY(mem_plan(m, batch, name, dev[r]->global_mem_bytes, dev[r]->max_alloc_bytes, cap,
                     n == 1 ? "" : others[0] ? others : NULL, &rows[r], forward));
    }
    if (nshared == 0 || !host->avail) return CLDP_OK;

    /* the devices that share host memory, together: the largest common row count that fits */
    size_t most = 0;
    for (size_t r = 0; r < n; r++)
        if (dev[r]->host_unified_memory && rows[r] > most) most = rows[r];
    size_t lo = 0, hi = most;
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        uint64_t sum = host_batch(m, mid);
        for (size_t r = 0; r < n; r++) {
            if (!dev[r]->host_unified_memory) continue;
            cldp_mem_need need;
            estimate(m, rows[r] < mid ? rows[r] : mid, forward, &need);
            sum += need.total;
        }
        if (sum <= budget) lo = mid;
        else hi = mid - 1;
    }
    if (lo > 0) {
        for (size_t r = 0; r < n; r++)
            if (dev[r]->host_unified_memory && rows[r] > lo) rows[r] = lo;
        return CLDP_OK;
    }
    return shared_refusal(m, dev, n, host, host_fixed, budget, &one, nshared, forward);
}

cldp_status cldp_mem_plan_devices(const cldp_model *m, size_t batch, const cldp_device_info *const *dev, size_t n,
                                  uint64_t cap, const cldp_host_mem *host, uint64_t host_fixed, size_t *rows)
{
    return plan_devices(m, batch, dev, n, cap, host, host_fixed, rows, 0);
}

cldp_status cldp_mem_plan_devices_forward(const cldp_model *m, size_t batch, const cldp_device_info *const *dev,
                                          size_t n, uint64_t cap, const cldp_host_mem *host, uint64_t host_fixed,
                                          size_t *rows)
{
    return plan_devices(m, batch, dev, n, cap, host, host_fixed, rows, 1);
}
