/* tuning_sources.c — where CLBlast tuning comes from (a file named by CLDP_TUNING_FILE, the user's
 * cache under ~/.cache/cldp/tuning, the built-in table), and applying the entry that matches a
 * device to CLBlast's parameter overrides. The file format and its parser are in tuning.c. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"
#include "tuning.h"

#include <clblast_c.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const unsigned char cldp_embed_tuning_builtin[];
extern const size_t cldp_embed_tuning_builtin_len;

#define BUILTIN_ORIGIN "built-in tuning (runtime/data/tuning-builtin.txt)"

/* ---- sources ----------------------------------------------------------------------------- */

cldp_status cldp_tuning_cache_dir(char *buf, size_t size)
{
    if (cldp_user_cache_dir("tuning", buf, size) == 0) return CLDP_OK;
    const char *home = getenv("HOME");
    if (!home || !home[0])
        return cldp_fail(CLDP_ERR_IO, "neither XDG_CACHE_HOME (an absolute path) nor HOME is set: no user tuning directory");
    return cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "the user tuning directory path is too long");
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The best entry over every *.txt file of the cache directory, files in name order. */
static cldp_status lookup_cache(const char *name, const char *driver, const char *version, cldp_tuning_file *file,
                                const cldp_tuning_entry **entry)
{
    char dir[1024];
    if (cldp_tuning_cache_dir(dir, sizeof dir) != CLDP_OK) return CLDP_OK; /* no home: nothing cached */
    DIR *d = opendir(dir);
    if (!d) return CLDP_OK; /* nothing tuned yet (or unreadable: then the cache is not ours to judge) */
    char **names = NULL;
    size_t count = 0, cap = 0;
    cldp_status st = CLDP_OK;
    for (struct dirent *de; st == CLDP_OK && (de = readdir(d)) != NULL;) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len < 5 || strcmp(de->d_name + len - 4, ".txt") != 0) continue;
        if (count == cap) {
            cap = cap ? 2 * cap : 8;
            char **nn = cldp_realloc(names, cap * sizeof *nn, "tuning file names");
            if (!nn) {
                st = cldp_fail(CLDP_ERR_HOST_MEMORY, "out of host memory listing %s", dir);
                break;
            }
            names = nn;
        }
        if (!(names[count] = cldp_malloc(len + 1, "tuning file name"))) {
            st = cldp_fail(CLDP_ERR_HOST_MEMORY, "out of host memory listing %s", dir);
            break;
        }
        memcpy(names[count++], de->d_name, len + 1);
    }
    closedir(d);
    if (count > 1) qsort(names, count, sizeof *names, cmp_names);
    int best_score = -1;
    for (size_t i = 0; st == CLDP_OK && i < count; i++) {
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        cldp_tuning_file f;
        int found = 0, score;
        st = cldp_tuning_load(path, &f, &found);
        if (st != CLDP_OK || !found) continue;
        const cldp_tuning_entry *e = cldp_tuning_match(&f, name, driver, version, &score);
        if (e && score > best_score) {
            cldp_tuning_file_free(file);
            *file = f;
            *entry = e;
            best_score = score;
        } else {
            cldp_tuning_file_free(&f);
        }
    }
    for (size_t i = 0; i < count; i++) free(names[i]);
    free(names);
    return st;
}

cldp_status cldp_tuning_lookup(const char *name, const char *driver, const char *version, cldp_tuning_file *file,
                               const cldp_tuning_entry **entry)
{
    REQUIRE(name && driver && version && file && entry, "cldp_tuning_lookup: bad arguments");
    memset(file, 0, sizeof *file);
    *entry = NULL;

    const cldp_config *cfg;
    TRY(cldp_config_get(&cfg));
    const char *env = cfg->tuning_file;
    if (env[0]) {
        int found = 0;
        TRY(cldp_tuning_load(env, file, &found));
        if (!found)
            return cldp_fail(CLDP_ERR_IO, "CLDP_TUNING_FILE=%s: no such file; point it at a tuning file "
                             "(see runtime/tuning.h) or unset it", env);
        if ((*entry = cldp_tuning_match(file, name, driver, version, NULL)) != NULL) return CLDP_OK;
        cldp_tuning_file_free(file);
    }

    cldp_status st = lookup_cache(name, driver, version, file, entry);
    if (st != CLDP_OK || *entry) return st;

    TRY(cldp_tuning_parse((const char *)cldp_embed_tuning_builtin, cldp_embed_tuning_builtin_len, BUILTIN_ORIGIN, file));
    if ((*entry = cldp_tuning_match(file, name, driver, version, NULL)) == NULL) cldp_tuning_file_free(file);
    return CLDP_OK;
}

/* ---- applying ---------------------------------------------------------------------------- */

cldp_status cldp_tuning_apply_entry(cl_device_id dev, const cldp_tuning_file *file, const cldp_tuning_entry *e, const char *label)
{
    REQUIRE(dev && file && e, "cldp_tuning_apply_entry: bad arguments");
    if (!label) label = "device";
    size_t max_wg = 0;
    cl_ulong local_mem = 0;
    cl_int err = clGetDeviceInfo(dev, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof max_wg, &max_wg, NULL);
    if (err == CL_SUCCESS) err = clGetDeviceInfo(dev, CL_DEVICE_LOCAL_MEM_SIZE, sizeof local_mem, &local_mem, NULL);
    if (err != CL_SUCCESS)
        return cldp_fail(CLDP_ERR_OPENCL, "%s: clGetDeviceInfo failed with %s while applying tuning", label, cldp_cl_error_name(err));

    /* Check every kernel against the device before applying any, so a set is applied whole. */
    for (size_t i = 0; i < e->nkernels; i++) {
        const cldp_tuning_kernel *k = &e->kernels[i];
        size_t wg = 1, lmem = 0;
        if (!cldp_tuning_kernel_needs(k, &wg, &lmem)) continue;
        if (wg > max_wg)
            return cldp_fail(CLDP_ERR_FORMAT, "%s:%u: %s/%d needs work-groups of %zu items but %s allows at most %zu; "
                             "fix the file or rerun cldp-tune", file->origin, k->line, k->name, k->precision, wg, label, max_wg);
        if (lmem > local_mem)
            return cldp_fail(CLDP_ERR_FORMAT, "%s:%u: %s/%d needs %zu bytes of local memory but %s has %llu; "
                             "fix the file or rerun cldp-tune", file->origin, k->line, k->name, k->precision, lmem, label,
                             (unsigned long long)local_mem);
    }
    for (size_t i = 0; i < e->nkernels; i++) {
        const cldp_tuning_kernel *k = &e->kernels[i];
        const char *names[CLDP_TUNING_MAX_PARAMS];
        for (size_t j = 0; j < k->nparams; j++) names[j] = k->param_names[j];
        CLBlastStatusCode cs = CLBlastOverrideParameters(dev, k->name, (CLBlastPrecision)k->precision, k->nparams,
                                                         names, k->param_values);
        if (cs == CLBlastSuccess) continue;
        const char *why = cs == CLBlastInvalidOverrideKernel ? "CLBlast has no kernel of that name"
                        : cs == CLBlastMissingOverrideParameter ? "a parameter CLBlast needs is missing"
                        : "CLBlast refused the parameters";
        return cldp_fail(CLDP_ERR_CLBLAST, "%s:%u: %s: CLBlastOverrideParameters(%s/%d) failed with %s (%d): %s",
                         file->origin, k->line, label, k->name, k->precision, cldp_clblast_error_name(cs), (int)cs, why);
    }
    return CLDP_OK;
}

/* The devices this process has applied an entry to, and which (origin and line): applying the
 * same entry again is skipped, because CLBlastOverrideParameters rewrites CLBlast's parameter
 * database while workers of other replicas of the device may be reading it (a race
 * ThreadSanitizer saw when a trainer was created beside a worker abandoned by an earlier one). */
static struct {
    pthread_mutex_t mu;
    size_t n;
    struct { cl_device_id dev; char origin[512]; unsigned line; } done[64];
} applied = {PTHREAD_MUTEX_INITIALIZER, 0, {{0}}};

static int already_applied(cl_device_id dev, const cldp_tuning_file *file, const cldp_tuning_entry *e, int mark)
{
    pthread_mutex_lock(&applied.mu);
    int found = 0;
    for (size_t i = 0; i < applied.n && !found; i++)
        found = applied.done[i].dev == dev && applied.done[i].line == e->line && !strcmp(applied.done[i].origin, file->origin);
    if (!found && mark && applied.n < sizeof applied.done / sizeof applied.done[0]) {
        applied.done[applied.n].dev = dev;
        applied.done[applied.n].line = e->line;
        snprintf(applied.done[applied.n].origin, sizeof applied.done[applied.n].origin, "%s", file->origin);
        applied.n++;
    }
    pthread_mutex_unlock(&applied.mu);
    return found;
}

cldp_status cldp_tuning_apply(cl_device_id dev, const char *name, const char *driver, const char *label)
{
    REQUIRE(dev && name && driver, "cldp_tuning_apply: bad arguments");
    if (!label) label = name;
    const cldp_config *cfg;
    TRY(cldp_config_get(&cfg));
    if (cfg->tuning == CLDP_CFG_TUNING_OFF) return CLDP_OK;
    int verbose = cfg->tuning == CLDP_CFG_TUNING_VERBOSE;
    char version[256] = "";
    cl_int err = clGetDeviceInfo(dev, CL_DEVICE_VERSION, sizeof version - 1, version, NULL);
    if (err != CL_SUCCESS)
        return cldp_fail(CLDP_ERR_OPENCL, "%s: clGetDeviceInfo(CL_DEVICE_VERSION) failed with %s while looking up tuning",
                         label, cldp_cl_error_name(err));
    cldp_tuning_file file;
    const cldp_tuning_entry *e;
    TRY(cldp_tuning_lookup(name, driver, version, &file, &e));
    if (!e) {
        if (verbose) fprintf(stderr, "cldp: %s: no tuned GEMM parameters; CLBlast's defaults apply\n", label);
        return CLDP_OK;
    }
    cldp_status st = already_applied(dev, &file, e, 0) ? CLDP_OK : cldp_tuning_apply_entry(dev, &file, e, label);
    if (st == CLDP_OK) already_applied(dev, &file, e, 1);
    if (st == CLDP_OK && verbose) {
        fprintf(stderr, "cldp: %s: GEMM parameters from %s:%u (device \"%s\", driver \"%s\", version \"%s\"):\n", label,
                file.origin, e->line, e->device, e->driver, e->version);
        for (size_t i = 0; i < e->nkernels; i++) {
            fprintf(stderr, "cldp:   %s/%d =", e->kernels[i].name, e->kernels[i].precision);
            for (size_t j = 0; j < e->kernels[i].nparams; j++)
                fprintf(stderr, " %s=%zu", e->kernels[i].param_names[j], e->kernels[i].param_values[j]);
            fputc('\n', stderr);
        }
    }
    cldp_tuning_file_free(&file);
    return st;
}
