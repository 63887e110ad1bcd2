/* cldp-tune — measures CLBlast SGEMM on the GEMMs a cldp replica really runs, with CLBlast's
 * default parameters and with a fixed list of candidate kernel parameters (with --search also sets
 * near the fastest of them), checks every candidate against a double-precision host reference,
 * prints GFLOP/s, and stores the best set in the user's tuning cache, where the library picks it
 * up for that device (format: runtime/tuning.h).
 * Uses cldp.h for devices, OpenCL and CLBlast directly for the rest. */
#define _POSIX_C_SOURCE 200809L
#include "cldp.h"

#include <clblast_c.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_SHAPES 64
#define MAX_DIM 65536
#define FORCE_DIRECT 100000 /* XGEMM_MIN_INDIRECT_SIZE that sends every GEMM to XgemmDirect */
#define FORCE_INDIRECT 0    /* ... and one that sends every GEMM to the indirect Xgemm */

#include "cldp-tune-space.h"
#include "cldp-tune-measure.h"
#include "cldp-tune-cache.h"

/* ---- tuning one device ------------------------------------------------------------------- */

typedef struct options {
    const char *devices;
    size_t sizes[32], nsizes, rows;
    const char *shapes;
    const char *output;
    int dry_run;
    double budget_ms;
    int passes;
    int search;         /* --search: neighbours of the fastest Xgemm set to try */
} options;

static cl_device_id find_cl_device(const cldp_device_info *info)
{
    cl_platform_id plats[64];
    cl_uint np = 0, nd = 0;
    if (clGetPlatformIDs(64, plats, &np) != CL_SUCCESS || info->platform_index >= np) return NULL;
    cl_device_id ids[256];
    if (clGetDeviceIDs(plats[info->platform_index], CL_DEVICE_TYPE_ALL, 256, ids, &nd) != CL_SUCCESS || info->device_index >= nd)
        return NULL;
    char name[sizeof info->name] = "";
    clGetDeviceInfo(ids[info->device_index], CL_DEVICE_NAME, sizeof name - 1, name, NULL);
    return strncmp(name, info->name, sizeof name - 1) == 0 ? ids[info->device_index] : NULL;
}

static void print_times(const char *label, const char *origin, const shape *s, size_t ns, const double *t)
{
    printf("  %-4s %-26s", label, origin);
    if (t[0] < 0) {
        printf(" failed\n");
        return;
    }
    printf(" %9.3f ms  |", total(t, ns));
    for (size_t i = 0; i < ns; i++) printf(gflops(&s[i], t[i]) < 9.95 ? " %6.2f" : " %6.1f", gflops(&s[i], t[i]));
    printf("\n");
}

static void bench_close(bench *bb, shape *s, size_t ns)
{
    for (size_t i = 0; i < ns; i++) {
        free(s[i].ref);
        free(s[i].bound);
        s[i].ref = s[i].bound = NULL;
    }
    free(bb->ha);
    free(bb->hb);
    free(bb->hc);
    if (bb->a) clReleaseMemObject(bb->a);
    if (bb->b) clReleaseMemObject(bb->b);
    if (bb->c) clReleaseMemObject(bb->c);
    if (bb->temp) clReleaseMemObject(bb->temp);
    if (bb->queue) clReleaseCommandQueue(bb->queue);
    if (bb->ctx) clReleaseContext(bb->ctx);
    memset(bb, 0, sizeof *bb);
}

/* Context, queue, buffers with random inputs, and (with_reference) the host reference of every
 * shape. Returns 0, or -1 with a message printed (call bench_close either way). */
static int bench_open(bench *bb, const cldp_device_info *info, shape *s, size_t ns, double budget_ms, int with_reference)
{
    memset(bb, 0, sizeof *bb);
    bb->budget_ms = budget_ms;
    if (!(bb->dev = find_cl_device(info))) {
        fprintf(stderr, "cldp-tune: cannot find OpenCL device %u:%u again\n", info->platform_index, info->device_index);
        return -1;
    }
    size_t amax = 0, bmax = 0, cmax = 0;
    for (size_t i = 0; i < ns; i++) {
        amax = s[i].m * s[i].k > amax ? s[i].m * s[i].k : amax;
        bmax = s[i].k * s[i].n > bmax ? s[i].k * s[i].n : bmax;
        cmax = s[i].m * s[i].n > cmax ? s[i].m * s[i].n : cmax;
    }
    cl_int err;
    bb->ctx = clCreateContext(NULL, 1, &bb->dev, NULL, NULL, &err);
    if (err == CL_SUCCESS) bb->queue = clCreateCommandQueue(bb->ctx, bb->dev, 0, &err);
    if (err == CL_SUCCESS) bb->a = clCreateBuffer(bb->ctx, CL_MEM_READ_WRITE, amax * sizeof(float), NULL, &err);
    if (err == CL_SUCCESS) bb->b = clCreateBuffer(bb->ctx, CL_MEM_READ_WRITE, bmax * sizeof(float), NULL, &err);
    if (err == CL_SUCCESS) bb->c = clCreateBuffer(bb->ctx, CL_MEM_READ_WRITE, cmax * sizeof(float), NULL, &err);
    bb->ha = malloc(amax * sizeof(float));
    bb->hb = malloc(bmax * sizeof(float));
    bb->hc = malloc(cmax * sizeof(float));
    if (err != CL_SUCCESS || !bb->ha || !bb->hb || !bb->hc) {
        fprintf(stderr, "cldp-tune: cannot set up the device or host buffers (OpenCL error %d)\n", (int)err);
        return -1;
    }
    for (size_t i = 0; i < amax; i++) bb->ha[i] = (float)uniform();
    for (size_t i = 0; i < bmax; i++) bb->hb[i] = (float)uniform();
    err = clEnqueueWriteBuffer(bb->queue, bb->a, CL_TRUE, 0, amax * sizeof(float), bb->ha, 0, NULL, NULL);
    if (err == CL_SUCCESS) err = clEnqueueWriteBuffer(bb->queue, bb->b, CL_TRUE, 0, bmax * sizeof(float), bb->hb, 0, NULL, NULL);
    if (err != CL_SUCCESS) {
        fprintf(stderr, "cldp-tune: writing the inputs failed (OpenCL error %d)\n", (int)err);
        return -1;
    }
    for (size_t i = 0; with_reference && i < ns; i++) {
        s[i].ref = malloc(s[i].m * s[i].n * sizeof(double));
        s[i].bound = malloc(s[i].m * s[i].n * sizeof(double));
        if (!s[i].ref || !s[i].bound) {
            fprintf(stderr, "cldp-tune: out of host memory for the reference results\n");
            return -1;
        }
        reference(&s[i], bb->ha, bb->hb, s[i].ref, s[i].bound);
    }
    return 0;
}

/* ---- CLBlast's defaults, measured in a fresh process ------------------------------------- */

static const char *self_path; /* this program, to start again for the defaults */

/* Once this process has overridden a parameter it cannot measure CLBlast's defaults again, so
 * each pass starts a copy of the program that measures them (--defaults-of) and keeps the smaller
 * times; on a shared machine that spreads both over the same stretch of time. Returns 0 on
 * success; on failure the in-process measurement of the defaults stands alone. */
static int measure_defaults_child(const cldp_device_info *info, const shape *s, size_t ns, double budget_ms, double *t_def)
{
    char dev[32], budget[32], *list = malloc(ns * 64 + 1);
    if (!list || !self_path) {
        free(list);
        return -1;
    }
    size_t used = 0;
    for (size_t i = 0; i < ns; i++)
        used += (size_t)sprintf(list + used, "%s%zux%zux%zu:%c%c", i ? "," : "", s[i].m, s[i].n, s[i].k, s[i].ta ? 't' : 'n', s[i].tb ? 't' : 'n');
    snprintf(dev, sizeof dev, "%u:%u", info->platform_index, info->device_index);
    snprintf(budget, sizeof budget, "%g", budget_ms);
    int fds[2];
    if (pipe(fds) != 0) {
        free(list);
        return -1;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        char *args[] = {(char *)self_path, "--defaults-of", dev, "--shapes", list, "--budget-ms", budget, NULL};
        execv(self_path, args);
        _exit(127);
    }
    free(list);
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        return -1;
    }
    char out[4096];
    size_t got = 0;
    for (ssize_t r; got + 1 < sizeof out && (r = read(fds[0], out + got, sizeof out - 1 - got)) != 0;) {
        if (r < 0) {
            if (errno == EINTR) continue;
            break;
        }
        got += (size_t)r;
    }
    out[got] = 0;
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
    const char *c = strstr(out, "defaults:");
    if (!c) return -1;
    c += strlen("defaults:");
    double t[MAX_SHAPES];
    for (size_t i = 0; i < ns; i++) {
        char *e;
        t[i] = strtod(c, &e);
        if (e == c || !(t[i] > 0)) return -1;
        c = e;
    }
    for (size_t i = 0; i < ns; i++) t_def[i] = t[i] < t_def[i] ? t[i] : t_def[i];
    return 0;
}

/* The child's side: time the shapes with CLBlast's defaults and print the ms per call. */
static int defaults_child(const char *dev_spec, shape *s, size_t ns, double budget_ms)
{
    size_t idx[64], n = 0;
    cldp_device_info info;
    if (cldp_device_select(dev_spec, idx, 64, &n) != CLDP_OK || n != 1 || cldp_device_get_info(idx[0], &info) != CLDP_OK) {
        fprintf(stderr, "cldp-tune: --defaults-of %s: %s\n", dev_spec, cldp_last_error());
        return 1;
    }
    bench bb;
    int rc = 1;
    if (bench_open(&bb, &info, s, ns, budget_ms, 0) == 0) {
        double t[MAX_SHAPES];
        for (size_t i = 0; i < ns; i++) t[i] = INFINITY;
        if (measure_min(&bb, s, ns, t, "CLBlast defaults")) {
            printf("defaults:");
            for (size_t i = 0; i < ns; i++) printf(" %.9g", t[i]);
            printf("\n");
            rc = 0;
        }
    }
    bench_close(&bb, s, ns);
    return rc;
}

/* ---- tuning one device ------------------------------------------------------------------- */

static int tune_device(const cldp_device_info *info, shape *s, size_t ns, const options *o, const char *shapes_note)
{
    bench bb = {0};
    int rc = 1;
    printf("device %u:%u  %s  (driver %s)\n", info->platform_index, info->device_index, info->name, info->driver_version);
    /* the Xgemm sets: the fixed ones, then room for what --search adds */
    size_t nx = NXGEMM, nx_cap = NXGEMM + (size_t)o->search;
    candidate *xc = malloc(nx_cap * sizeof *xc);
    char (*xlabel)[2][40] = calloc(nx_cap, sizeof *xlabel);
    double *times = malloc((NDIRECT + nx_cap + 2) * ns * sizeof *times);
    if (!xc || !xlabel || !times || bench_open(&bb, info, s, ns, o->budget_ms, 1) != 0) goto done;
    memcpy(xc, xgemm_candidates, sizeof xgemm_candidates);

    /* CLBlast's defaults first, all passes of them: once a parameter is overridden in this
     * process there is no way back to the defaults. */
    double *t_def = times, *t_dir = times + ns, *t_x = times + (1 + NDIRECT) * ns;
    for (size_t i = 0; i < (1 + NDIRECT + nx_cap) * ns; i++) times[i] = INFINITY;
    if (!measure_min(&bb, s, ns, t_def, "CLBlast defaults")) {
        fprintf(stderr, "cldp-tune: CLBlast fails with its own defaults on this device; nothing to compare against\n");
        goto done;
    }
    int children_ok = 1;

    /* Every XgemmDirect set with all GEMMs sent to the direct kernel, then every Xgemm set with
     * all sent to the indirect one; the threshold between the two is chosen afterwards. */
    size_t best_d = 0, best_x = 0, threshold = 0;
    int any_d = 0, any_x = 0;
    CLBlastStatusCode cs = CLBlastSuccess;
    for (int pass = 0; cs == CLBlastSuccess && pass < o->passes; pass++) {
        printf("  pass %d of %d over CLBlast's defaults, %zu XgemmDirect and %zu Xgemm sets...\n", pass + 1, o->passes,
               NDIRECT, NXGEMM);
        if (children_ok && measure_defaults_child(info, s, ns, o->budget_ms, t_def) != 0) {
            fprintf(stderr, "cldp-tune: could not measure the defaults in a fresh process; using this one's first measurement\n");
            children_ok = 0;
        }
        cs = set_threshold(bb.dev, FORCE_DIRECT);
        for (size_t c = 0; cs == CLBlastSuccess && c < NDIRECT; c++) {
            double *t = t_dir + c * ns;
            if (t[0] < 0) continue; /* failed in an earlier pass */
            cs = override(bb.dev, "XgemmDirect", direct_names, direct_candidates[c].v, 10);
            if (cs == CLBlastSuccess) measure_min(&bb, s, ns, t, direct_candidates[c].label);
        }
        if (cs == CLBlastSuccess) cs = set_threshold(bb.dev, FORCE_INDIRECT);
        for (size_t c = 0; cs == CLBlastSuccess && c < NXGEMM; c++) {
            double *t = t_x + c * ns;
            if (t[0] < 0) continue;
            cs = override(bb.dev, "Xgemm", xgemm_names, xc[c].v, 16);
            if (cs == CLBlastSuccess) measure_min(&bb, s, ns, t, xc[c].label);
        }
    }
    /* --search: each step changes one or two parameters of the fastest Xgemm set so far (all
     * GEMMs still sent to the indirect kernel) and measures the result as the fixed sets were. */
    size_t max_wg = 0;
    cl_ulong local_mem = 0;
    clGetDeviceInfo(bb.dev, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof max_wg, &max_wg, NULL);
    clGetDeviceInfo(bb.dev, CL_DEVICE_LOCAL_MEM_SIZE, sizeof local_mem, &local_mem, NULL);
    if (o->search) printf("  searching %d neighbours of the fastest Xgemm set...\n", o->search);
    for (int step = 0; cs == CLBlastSuccess && step < o->search; step++) {
        size_t from = 0;
        for (size_t c = 1; c < nx; c++)
            if (t_x[c * ns] >= 0 && (t_x[from * ns] < 0 || total(t_x + c * ns, ns) < total(t_x + from * ns, ns))) from = c;
        if (t_x[from * ns] < 0) break;
        char what[64];
        if (!xgemm_neighbour(xc[from].v, xc, nx, max_wg, (size_t)local_mem, xc[nx].v, what, sizeof what)) break;
        snprintf(xlabel[nx][0], sizeof xlabel[nx][0], "S%d", step + 1);
        snprintf(xlabel[nx][1], sizeof xlabel[nx][1], "%s, %s", xc[from].label, what);
        xc[nx].label = xlabel[nx][0];
        xc[nx].origin = xlabel[nx][1];
        double *t = t_x + nx * ns;
        cs = override(bb.dev, "Xgemm", xgemm_names, xc[nx].v, 16);
        for (int pass = 0; cs == CLBlastSuccess && pass < o->passes && t[0] >= 0; pass++)
            measure_min(&bb, s, ns, t, xc[nx].label);
        if (t[0] >= 0)
            printf("  %-4s %-34s %9.3f ms (from %.3f)\n", xc[nx].label, xc[nx].origin, total(t, ns), total(t_x + from * ns, ns));
        nx++;
    }
    if (cs != CLBlastSuccess) {
        fprintf(stderr, "cldp-tune: CLBlastOverrideParameters failed with %d\n", (int)cs);
        goto done;
    }
    printf("\n  shapes:");
    for (size_t i = 0; i < ns; i++)
        printf(" #%zu %zux%zux%zu:%c%c%s", i + 1, s[i].m, s[i].n, s[i].k, s[i].ta ? 't' : 'n', s[i].tb ? 't' : 'n', i + 1 < ns ? "," : "\n");
    printf("  %-31s %12s  |", "GFLOP/s, best of the passes", "all shapes");
    for (size_t i = 0; i < ns; i++) printf("    #%-2zu", i + 1);
    printf("\n");
    print_times("def", "CLBlast defaults", s, ns, t_def);
    for (size_t c = 0; c < NDIRECT; c++) {
        print_times(direct_candidates[c].label, direct_candidates[c].origin, s, ns, t_dir + c * ns);
        any_d |= t_dir[c * ns] >= 0;
    }
    for (size_t c = 0; c < nx; c++) {
        print_times(xc[c].label, xc[c].origin, s, ns, t_x + c * ns);
        any_x |= t_x[c * ns] >= 0;
    }
    if (!any_d || !any_x) {
        fprintf(stderr, "cldp-tune: no candidate of one of the kernels works on this device; nothing written\n");
        goto done;
    }

    /* The pair of sets and the threshold between them that give the shortest step: small GEMMs
     * may want a different kernel than large ones. */
    double best_total = INFINITY, best_rest = INFINITY;
    for (size_t d = 0; d < NDIRECT; d++)
        for (size_t x = 0; x < nx; x++) {
            size_t t = 0;
            if (t_dir[d * ns] < 0 || t_x[x * ns] < 0) continue;
            double sum = choose_threshold(s, ns, t_dir + d * ns, t_x + x * ns, &t);
            /* on a tie (e.g. every shape runs one kernel), the sets better on all shapes win */
            double rest = total(t_dir + d * ns, ns) + total(t_x + x * ns, ns);
            if (sum < best_total || (sum == best_total && rest < best_rest)) {
                best_total = sum;
                best_rest = rest;
                best_d = d;
                best_x = x;
                threshold = t;
            }
        }

    /* The chosen set, applied as a whole and measured once more (checking the threshold works as
     * meant); each shape keeps the best time its kernel got with these parameters. */
    unsigned long long t3 = (unsigned long long)threshold * threshold * threshold;
    double *t_tuned = malloc(ns * sizeof *t_tuned);
    if (!t_tuned) goto done;
    for (size_t i = 0; i < ns; i++) t_tuned[i] = mnk_of(&s[i]) < t3 ? t_dir[best_d * ns + i] : t_x[best_x * ns + i];
    cs = override(bb.dev, "XgemmDirect", direct_names, direct_candidates[best_d].v, 10);
    if (cs == CLBlastSuccess) cs = override(bb.dev, "Xgemm", xgemm_names, xc[best_x].v, 16);
    if (cs == CLBlastSuccess) cs = set_threshold(bb.dev, threshold);
    if (cs != CLBlastSuccess || !measure_min(&bb, s, ns, t_tuned, "the chosen set")) {
        fprintf(stderr, "cldp-tune: the chosen set failed when measured again; nothing written\n");
        free(t_tuned);
        goto done;
    }

    double td = total(t_def, ns), tt = total(t_tuned, ns);
    printf("\n  chosen: XgemmDirect %s, Xgemm %s, XGEMM_MIN_INDIRECT_SIZE=%zu (direct when m*n*k < %llu)\n",
           direct_candidates[best_d].label, xc[best_x].label, threshold, t3);
    printf("  %-24s %-8s %12s %12s %9s\n", "shape", "kernel", "default", "tuned", "speed-up");
    for (size_t i = 0; i < ns; i++) {
        char name[64];
        snprintf(name, sizeof name, "%zux%zux%zu %s", s[i].m, s[i].n, s[i].k,
                 s[i].ta ? (s[i].tb ? "tt" : "tn") : (s[i].tb ? "nt" : "nn"));
        printf("  %-24s %-8s %7.1f GF/s %7.1f GF/s %8.2fx\n", name, mnk_of(&s[i]) < t3 ? "direct" : "indirect",
               gflops(&s[i], t_def[i]), gflops(&s[i], t_tuned[i]), t_def[i] / t_tuned[i]);
    }
    printf("  %-24s %-8s %9.3f ms %9.3f ms %8.2fx\n", "all shapes, once each", "", td, tt, td / tt);
    free(t_tuned);

    if (o->dry_run) {
        printf("  --dry-run: nothing written\n");
        rc = 0;
    } else if (tt >= td * 0.98) {
        printf("  CLBlast's defaults are as fast on these shapes: nothing written\n");
        rc = 0;
    } else {
        char path[1100], dir[800], fname[260], n1[160], n2[64], tn[256], tdrv[128];
        if (o->output) {
            snprintf(path, sizeof path, "%s", o->output);
        } else {
            if (cache_dir(dir, sizeof dir) != 0 || mkdirs(dir) != 0) {
                fprintf(stderr, "cldp-tune: cannot create the tuning cache directory (set XDG_CACHE_HOME or HOME): %s\n",
                        strerror(errno));
                goto done;
            }
            trimmed(tn, sizeof tn, info->name);
            trimmed(tdrv, sizeof tdrv, info->driver_version);
            sanitize(n1, sizeof n1, tn);
            sanitize(n2, sizeof n2, tdrv);
            snprintf(fname, sizeof fname, "%s--%s.txt", n1, n2);
            snprintf(path, sizeof path, "%s/%s", dir, fname);
        }
        if (write_result(path, info, &direct_candidates[best_d], &xc[best_x], threshold, shapes_note, td, tt) != 0)
            goto done;
        printf("  written to %s\n  cldp applies it to every \"%s\" device from now on (CLDP_TUNING=off to compare)\n",
               path, info->name);
        rc = 0;
    }
done:
    free(times);
    free(xc);
    free(xlabel);
    bench_close(&bb, s, ns);
    return rc;
}

/* ---- main -------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cldp-tune [options]\n"
            "Times CLBlast SGEMM on the GEMMs a cldp replica runs, with CLBlast's default parameters and\n"
            "with candidate XgemmDirect/Xgemm parameters (each checked against a double-precision host\n"
            "reference), picks the fastest set and the size threshold between the two kernels, and\n"
            "writes it to $XDG_CACHE_HOME/cldp/tuning/ (else ~/.cache/cldp/tuning/), where cldp applies\n"
            "it to every device of the same name and driver (format: runtime/tuning.h).\n"
            "\n"
            "  --devices SPEC   devices to tune, as for cldp-devices (default: the first device); each\n"
            "                   distinct name and driver is tuned once\n"
            "  --model LIST     layer sizes from the inputs on (default 784,256,128,10)\n"
            "  --batch N        rows one device computes per step, its shard (default 64)\n"
            "  --shapes LIST    explicit GEMMs instead of --model: MxNxK[:ab],... with a, b = n or t\n"
            "                   saying whether op(A), op(B) is transposed (row-major; default nn)\n"
            "  --budget-ms MS   time to measure one shape with one parameter set (default 100)\n"
            "  --passes N       measure everything N times and keep the best (default 2; more on a\n"
            "                   busy machine)\n"
            "  --search N       then try N sets near the fastest Xgemm set, one or two parameters\n"
            "                   changed at a time (default 0; each new set compiles, ~20 s on PoCL)\n"
            "  --output FILE    write the result here instead of the user cache\n"
            "  --dry-run        measure and print only\n"
            "  --help           this text\n"
            "\n"
            "The first run on new shapes takes minutes: PoCL compiles each candidate for each shape\n"
            "(and keeps the result in ~/.cache/pocl). The parameters are CLBlast's, so they apply\n"
            "to every program of this user that runs cldp on a device of that name and driver.\n"
            "\n"
            "Example: cldp-tune --devices basic --model 784,1024,1024,10 --batch 256\n");
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress shows as it happens, also through a pipe */
    options o = {NULL, {784, 256, 128, 10}, 4, 64, NULL, NULL, 0, 100, 2, 0};
    int model_given = 0, batch_given = 0;
    const char *defaults_of = NULL;
    self_path = access("/proc/self/exe", X_OK) == 0 ? "/proc/self/exe" : strchr(argv[0], '/') ? argv[0] : NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--dry-run")) {
            o.dry_run = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "cldp-tune: %s needs a value (try --help)\n", a);
            return 2;
        }
        char *end;
        int bad = 0;
        if (!strcmp(a, "--devices")) o.devices = v;
        else if (!strcmp(a, "--model")) { bad = parse_list(v, o.sizes, 32, &o.nsizes) != 0; model_given = 1; }
        else if (!strcmp(a, "--batch")) { bad = parse_size(v, &end, &o.rows) != 0 || *end; batch_given = 1; }
        else if (!strcmp(a, "--shapes")) o.shapes = v;
        else if (!strcmp(a, "--defaults-of")) defaults_of = v; /* internal: see measure_defaults_child */
        else if (!strcmp(a, "--output")) o.output = v;
        else if (!strcmp(a, "--budget-ms")) { o.budget_ms = strtod(v, &end); bad = *end || !(o.budget_ms >= 1 && o.budget_ms <= 60000); }
        else if (!strcmp(a, "--passes")) { size_t p; bad = parse_size(v, &end, &p) != 0 || *end || p > 100; o.passes = (int)p; }
        else if (!strcmp(a, "--search")) { size_t p; bad = parse_size(v, &end, &p) != 0 || *end || p > 1000; o.search = (int)p; }
        else {
            fprintf(stderr, "cldp-tune: unknown option '%s' (try --help)\n", a);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "cldp-tune: bad value '%s' for %s (try --help)\n", v, a);
            return 2;
        }
        i++;
    }
    shape shapes[MAX_SHAPES];
    size_t ns = 0;
    char note[512];
    if (o.shapes) {
        if (model_given || batch_given) {
            fprintf(stderr, "cldp-tune: give either --shapes or --model/--batch, not both\n");
            return 2;
        }
        if (parse_shapes(o.shapes, shapes, &ns) != 0) {
            fprintf(stderr, "cldp-tune: bad --shapes '%s': want MxNxK[:ab],... e.g. 64x256x784:nt,256x784x64:tn\n", o.shapes);
            return 2;
        }
        snprintf(note, sizeof note, "%s", o.shapes);
    } else {
        if (shapes_from_model(o.sizes, o.nsizes, o.rows, shapes, &ns) != 0) return 2;
        int n = snprintf(note, sizeof note, "model ");
        for (size_t i = 0; i < o.nsizes && n > 0 && (size_t)n < sizeof note; i++)
            n += snprintf(note + n, sizeof note - (size_t)n, "%s%zu", i ? "," : "", o.sizes[i]);
        if (n > 0 && (size_t)n < sizeof note) snprintf(note + n, sizeof note - (size_t)n, ", %zu rows per device", o.rows);
    }
    for (size_t i = 0; i < ns; i++) /* keep one matrix within what a float buffer index holds */
        if (shapes[i].m * shapes[i].k > (1u << 28) || shapes[i].k * shapes[i].n > (1u << 28) || shapes[i].m * shapes[i].n > (1u << 28)) {
            fprintf(stderr, "cldp-tune: shape %zux%zux%zu is too large to tune with\n", shapes[i].m, shapes[i].n, shapes[i].k);
            return 2;
        }

    if (defaults_of) return defaults_child(defaults_of, shapes, ns, o.budget_ms);

    size_t idx[64], nsel = 0;
    cldp_status st = cldp_device_select(o.devices ? o.devices : "all", idx, 64, &nsel);
    if (st != CLDP_OK) {
        fprintf(stderr, "cldp-tune: %s\n", cldp_last_error());
        return 1;
    }
    if (!o.devices && nsel > 1) nsel = 1;
    printf("cldp-tune: %zu shape(s) from %s\n", ns, note);
    int rc = 0;
    cldp_device_info done[64];
    size_t ndone = 0;
    for (size_t i = 0; i < nsel && i < 64; i++) {
        cldp_device_info info;
        if (cldp_device_get_info(idx[i], &info) != CLDP_OK) {
            fprintf(stderr, "cldp-tune: %s\n", cldp_last_error());
            rc = 1;
            continue;
        }
        int seen = 0;
        for (size_t j = 0; j < ndone; j++)
            seen |= !strcmp(done[j].name, info.name) && !strcmp(done[j].driver_version, info.driver_version);
        if (seen) continue;
        done[ndone++] = info;
        rc |= tune_device(&info, shapes, ns, &o, note);
    }
    return rc;
}
