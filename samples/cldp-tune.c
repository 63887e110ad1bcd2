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

/* ---- candidate parameter sets ----------------------------------------------------------- */

static const char *const direct_names[] = {"KWID", "MDIMAD", "MDIMCD", "NDIMBD", "NDIMCD",
                                           "PADA", "PADB", "VWMD", "VWND", "WGD"};
static const char *const xgemm_names[] = {"GEMMK", "KREG", "KWG", "KWI", "MDIMA", "MDIMC", "MWG", "NDIMB",
                                          "NDIMC", "NWG", "SA", "SB", "STRM", "STRN", "VWM", "VWN"};

typedef struct candidate {
    const char *label;
    const char *origin;
    size_t v[16]; /* values in the order of direct_names / xgemm_names */
} candidate;

/* XgemmDirect sets: CLBlast's generic default, then the best of a random sample that
 * clblast_tuner_xgemm_direct measured on PoCL 3.1 (x86-64 "haswell" target, one-core "basic"
 * device) at 256x256x256, and CLBlast's own default for Intel CPUs. */
static const candidate direct_candidates[] = {
    /*                                       KWID MDIMAD MDIMCD NDIMBD NDIMCD PADA PADB VWMD VWND WGD */
    {"D0", "CLBlast generic default", {2, 8, 8, 8, 8, 1, 1, 1, 1, 16}},
    {"D1", "tuner, PoCL x86-64", {16, 16, 8, 8, 16, 0, 0, 4, 2, 64}},
    {"D2", "tuner, PoCL x86-64", {16, 16, 8, 16, 16, 0, 1, 4, 1, 64}},
    {"D3", "tuner, PoCL x86-64", {2, 16, 8, 8, 16, 1, 1, 2, 1, 64}},
    {"D4", "tuner, PoCL x86-64", {2, 8, 8, 8, 16, 1, 1, 4, 2, 64}},
    {"D5", "tuner, PoCL x86-64", {16, 8, 16, 16, 8, 0, 1, 2, 1, 64}},
    {"D6", "tuner, PoCL x86-64", {16, 8, 16, 8, 8, 1, 1, 4, 4, 64}},
    {"D7", "tuner, PoCL x86-64", {16, 16, 16, 16, 8, 1, 0, 2, 1, 64}},
    {"D8", "tuner, PoCL x86-64", {2, 8, 8, 16, 16, 0, 0, 1, 2, 64}},
    {"D9", "tuner, PoCL x86-64", {16, 8, 16, 8, 16, 0, 1, 1, 2, 64}},
    {"D10", "tuner, PoCL x86-64", {16, 8, 8, 8, 16, 1, 1, 2, 2, 64}},
    {"D11", "tuner, PoCL x86-64", {2, 8, 8, 8, 8, 1, 1, 2, 2, 32}},
    {"D12", "CLBlast Intel CPU; built-in", {2, 8, 8, 8, 8, 1, 1, 4, 4, 32}},
};

/* Xgemm sets: CLBlast's generic default, the best of a random sample clblast_tuner_xgemm measured
 * on the same device at 256x256x256, neighbours of the best of them, and CLBlast's default for
 * Intel CPUs. (CLBlast's CPU entries with GEMMK=1 were tried too: on PoCL 3.1 with CLBlast 1.5.3
 * they leave C unwritten, which the check against the reference catches.) */
static const candidate xgemm_candidates[] = {
    /*                                       GEMMK KREG KWG KWI MDIMA MDIMC MWG NDIMB NDIMC NWG SA SB STRM STRN VWM VWN */
    {"X0", "CLBlast generic default", {0, 1, 32, 2, 8, 8, 32, 16, 16, 32, 1, 1, 0, 0, 4, 2}},
    {"X1", "tuner, PoCL x86-64", {0, 1, 16, 2, 16, 8, 128, 32, 16, 128, 0, 0, 1, 1, 8, 4}},
    {"X2", "tuner, PoCL x86-64", {0, 1, 16, 2, 16, 16, 64, 16, 8, 128, 0, 0, 0, 0, 4, 8}},
    {"X3", "tuner, PoCL x86-64", {0, 1, 16, 2, 32, 8, 128, 8, 16, 32, 0, 0, 0, 0, 4, 1}},
    {"X4", "tuner, PoCL x86-64", {0, 1, 32, 2, 8, 8, 64, 16, 8, 128, 0, 1, 0, 0, 8, 4}},
    {"X5", "tuner, PoCL x86-64", {0, 1, 32, 2, 8, 16, 128, 8, 8, 32, 0, 1, 0, 1, 8, 4}},
    {"X6", "tuner, PoCL x86-64", {0, 1, 32, 2, 16, 8, 128, 32, 16, 64, 1, 1, 0, 0, 8, 2}},
    {"X7", "tuner, PoCL x86-64", {0, 1, 32, 2, 16, 8, 128, 8, 32, 128, 0, 0, 1, 0, 4, 1}},
    {"X8", "tuner, PoCL x86-64", {0, 1, 32, 2, 16, 8, 64, 16, 8, 128, 0, 0, 1, 0, 4, 8}},
    {"X9", "tuner, PoCL x86-64", {0, 1, 16, 2, 32, 32, 128, 16, 8, 64, 0, 0, 1, 1, 4, 4}},
    {"X10", "tuner, PoCL x86-64", {0, 1, 32, 2, 8, 8, 64, 16, 16, 64, 1, 1, 0, 0, 4, 1}},
    {"X11", "CLBlast Intel CPU default", {0, 1, 32, 2, 16, 16, 64, 8, 8, 64, 0, 0, 0, 0, 4, 4}},
    {"X12", "X1 with MWG=64", {0, 1, 16, 2, 8, 8, 64, 32, 16, 128, 0, 0, 1, 1, 8, 4}},
    {"X13", "X1 with NWG=64", {0, 1, 16, 2, 16, 8, 128, 16, 16, 64, 0, 0, 1, 1, 8, 4}},
    {"X14", "X1 with VWM=4", {0, 1, 16, 2, 16, 8, 128, 32, 16, 128, 0, 0, 1, 1, 4, 4}},
    {"X15", "X1 with KWG=32", {0, 1, 32, 2, 16, 8, 128, 32, 16, 128, 0, 0, 1, 1, 8, 4}},
    {"X16", "X1 with SA=SB=1", {0, 1, 16, 2, 16, 8, 128, 32, 16, 128, 1, 1, 1, 1, 8, 4}},
    {"X17", "X1 with STRM=STRN=0", {0, 1, 16, 2, 16, 8, 128, 32, 16, 128, 0, 0, 0, 0, 8, 4}},
    {"X18", "X12 with STRM=STRN=0", {0, 1, 16, 2, 8, 8, 64, 32, 16, 128, 0, 0, 0, 0, 8, 4}},
    {"X19", "X17 with KWG=32", {0, 1, 32, 2, 16, 8, 128, 32, 16, 128, 0, 0, 0, 0, 8, 4}},
    {"X20", "X18, KWG=32; built-in", {0, 1, 32, 2, 8, 8, 64, 32, 16, 128, 0, 0, 0, 0, 8, 4}},
    /* PoCL 3.1, "skylake-avx512" target: the best of clblast_tuner_xgemm's sample at 256x1024x1024
     * and its neighbours, then the same with local memory, the fastest there (tuning-builtin.txt) */
    {"X21", "tuner+search, avx512", {0, 1, 32, 2, 8, 8, 64, 8, 8, 128, 0, 0, 1, 0, 8, 16}},
    {"X22", "X21, KWG=64 SA=SB=1", {0, 1, 64, 2, 8, 8, 64, 8, 8, 128, 1, 1, 1, 0, 8, 16}},
};

#define NDIRECT (sizeof direct_candidates / sizeof *direct_candidates)
#define NXGEMM (sizeof xgemm_candidates / sizeof *xgemm_candidates)

/* ---- the local search (--search) ---------------------------------------------------------- */

static double uniform(void); /* below: deterministic, in [-1, 1) */

enum { GEMMK, KREG, KWG, KWI, MDIMA, MDIMC, MWG, NDIMB, NDIMC, NWG, SA, SB, STRM, STRN, VWM, VWN };

/* Values the search may give each Xgemm parameter (GEMMK=1 is left out: see above). */
static const size_t search_values[16][6] = {
    [GEMMK] = {0}, [KREG] = {1}, [KWG] = {16, 32, 64, 128}, [KWI] = {2, 8},
    [MDIMA] = {4, 8, 16, 32}, [MDIMC] = {4, 8, 16, 32}, [MWG] = {16, 32, 64, 128, 256},
    [NDIMB] = {4, 8, 16, 32}, [NDIMC] = {4, 8, 16, 32}, [NWG] = {16, 32, 64, 128, 256},
    [SA] = {0, 1}, [SB] = {0, 1}, [STRM] = {0, 1}, [STRN] = {0, 1}, [VWM] = {1, 2, 4, 8, 16}, [VWN] = {1, 2, 4, 8, 16},
};

/* CLBlast's constraints on how the work-items of a group load the A tile (a = 1) or the B tile. */
static int xgemm_loads_ok(const size_t *v, int a)
{
    size_t wg = v[MDIMC] * v[NDIMC], dim = a ? v[MDIMA] : v[NDIMB];
    return wg % dim == 0 && v[KWG] % (wg / dim) == 0 && (a ? v[MWG] % (dim * v[VWM]) : v[NWG] % (dim * v[VWN])) == 0;
}

/* CLBlast's constraints on an Xgemm set, the device's work-group and local-memory limits, and at
 * most 256 accumulators per work-item (more only spills on the devices tried). */
static int xgemm_valid(const size_t *v, size_t max_wg, size_t local_bytes)
{
    size_t wg = v[MDIMC] * v[NDIMC];
    if (!wg || v[KWG] % v[KWI] || v[MWG] % (v[MDIMC] * v[VWM]) || v[NWG] % (v[NDIMC] * v[VWN]) ||
        !xgemm_loads_ok(v, 1) || !xgemm_loads_ok(v, 0))
        return 0;
    size_t local = 4 * (v[SA] * v[KWG] * v[MWG] + v[SB] * v[KWG] * v[NWG]);
    return wg <= max_wg && local <= local_bytes && (v[MWG] / v[MDIMC]) * (v[NWG] / v[NDIMC]) <= 256;
}

/* A new valid set: `from` with one or two parameters changed (MDIMA and NDIMB, which only shape
 * how the tiles are loaded, are then adjusted to fit where needed).
 * Returns 0 when 200 tries found nothing new. */
static int xgemm_neighbour(const size_t *from, const candidate *seen, size_t nseen, size_t max_wg, size_t local_bytes,
                           size_t *out, char *what, size_t what_size)
{
    for (int attempt = 0; attempt < 200; attempt++) {
        size_t v[16];
        memcpy(v, from, sizeof v);
        int changes = uniform() < -0.33 ? 2 : 1, n = 0; /* one in three changes two */
        what[0] = 0;
        for (int c = 0; c < changes; c++) {
            int p;
            size_t nv = 0;
            do p = (int)((uniform() + 1.0) * 8.0) % 16; /* uniform() is in [-1, 1) */
            while (search_values[p][1] == 0);
            while (nv < 6 && search_values[p][nv]) nv++;
            if (p == SA || p == SB || p == STRM || p == STRN) nv = 2; /* 0 ends the list above */
            v[p] = search_values[p][(size_t)((uniform() + 1.0) * 0.5 * (double)nv) % nv];
            if ((size_t)n < what_size) n += snprintf(what + n, what_size - (size_t)n, "%s%s=%zu", c ? " " : "", xgemm_names[p], v[p]);
        }
        for (size_t i = 0; i < 4 && !xgemm_loads_ok(v, 1); i++) v[MDIMA] = search_values[MDIMA][i];
        for (size_t i = 0; i < 4 && !xgemm_loads_ok(v, 0); i++) v[NDIMB] = search_values[NDIMB][i];
        if (!xgemm_valid(v, max_wg, local_bytes)) continue;
        int dup = 0;
        for (size_t i = 0; i < nseen && !dup; i++) dup = !memcmp(seen[i].v, v, sizeof v);
        if (dup) continue;
        memcpy(out, v, sizeof v);
        return 1;
    }
    return 0;
}

/* ---- shapes ------------------------------------------------------------------------------ */

typedef struct shape {
    size_t m, n, k;
    int ta, tb;          /* op(A), op(B) transposed; matrices are row-major as in the replica */
    const char *what;    /* which pass of the replica, or "" */
    double *ref;         /* (m, n) host reference */
    double *bound;       /* (m, n) error bound */
} shape;

static int add_shape(shape *s, size_t *n, size_t m, size_t nn, size_t k, int ta, int tb, const char *what)
{
    for (size_t i = 0; i < *n; i++)
        if (s[i].m == m && s[i].n == nn && s[i].k == k && s[i].ta == ta && s[i].tb == tb) return 0;
    if (*n == MAX_SHAPES) {
        fprintf(stderr, "cldp-tune: more than %d shapes\n", MAX_SHAPES);
        return -1;
    }
    shape sh = {m, nn, k, ta, tb, what, NULL, NULL};
    s[(*n)++] = sh;
    return 0;
}

/* The GEMMs of one forward and backward pass of a replica at `rows` rows (see runtime/replica.c). */
static int shapes_from_model(const size_t *sizes, size_t nsizes, size_t rows, shape *s, size_t *n)
{
    for (size_t l = 0; l + 1 < nsizes; l++) {
        size_t in = sizes[l], out = sizes[l + 1];
        if (add_shape(s, n, rows, out, in, 0, 1, "forward X·Wᵀ") != 0) return -1;
        if (add_shape(s, n, out, in, rows, 1, 0, "backward dW = dYᵀ·X") != 0) return -1;
        if (l > 0 && add_shape(s, n, rows, in, out, 0, 0, "backward dX = dY·W") != 0) return -1;
    }
    return 0;
}

static int parse_size(const char *s, char **end, size_t *out)
{
    errno = 0;
    unsigned long long v = strtoull(s, end, 10);
    if (errno || *end == s || v == 0 || v > MAX_DIM || *s == '-') return -1;
    *out = (size_t)v;
    return 0;
}

/* "MxNxK[:ab],..." with a, b each n or t. */
static int parse_shapes(const char *text, shape *s, size_t *n)
{
    const char *c = text;
    while (*c) {
        size_t d[3];
        char *e = (char *)c;
        for (int i = 0; i < 3; i++) {
            if (parse_size(c, &e, &d[i]) != 0) return -1;
            if (i < 2 && *e != 'x') return -1;
            c = i < 2 ? e + 1 : e;
        }
        int ta = 0, tb = 0;
        if (*c == ':') {
            if ((c[1] != 'n' && c[1] != 't') || (c[2] != 'n' && c[2] != 't')) return -1;
            ta = c[1] == 't';
            tb = c[2] == 't';
            c += 3;
        }
        if (*c && *c != ',') return -1;
        if (add_shape(s, n, d[0], d[1], d[2], ta, tb, "") != 0) return -1;
        if (*c == ',') c++;
    }
    return *n ? 0 : -1;
}

static int parse_list(const char *text, size_t *v, size_t cap, size_t *n)
{
    const char *c = text;
    *n = 0;
    while (*c) {
        char *e;
        if (*n == cap || parse_size(c, &e, &v[*n]) != 0) return -1;
        (*n)++;
        if (*e && *e != ',') return -1;
        c = *e ? e + 1 : e;
    }
    return *n >= 2 ? 0 : -1;
}

/* ---- the device and its buffers --------------------------------------------------------- */

typedef struct bench {
    cl_device_id dev;
    cl_context ctx;
    cl_command_queue queue;
    cl_mem a, b, c;
    cl_mem temp;          /* CLBlast's scratch, as the replica passes one; grown on demand */
    size_t temp_bytes;
    float *ha, *hb, *hc;  /* host copies: random inputs, read-back results */
    double budget_ms;     /* time spent measuring one shape with one parameter set */
} bench;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static uint64_t rng_state = 0x243F6A8885A308D3ull;
static double uniform(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-53 * 2.0 - 1.0;
}

/* A is m x k (k x m when transposed), B is k x n (n x k), C is m x n, all row-major. */
static void reference(const shape *s, const float *a, const float *b, double *ref, double *bound)
{
    for (size_t i = 0; i < s->m; i++)
        for (size_t j = 0; j < s->n; j++) {
            double sum = 0, mag = 0;
            for (size_t p = 0; p < s->k; p++) {
                double x = s->ta ? a[p * s->m + i] : a[i * s->k + p];
                double y = s->tb ? b[j * s->k + p] : b[p * s->n + j];
                sum += x * y;
                mag += fabs(x * y);
            }
            ref[i * s->n + j] = sum;
            /* float32 summation in any order stays within k·2⁻²⁴·Σ|a·b|; twice that, plus a little */
            bound[i * s->n + j] = 2.0 * (double)s->k * 0x1.0p-24 * mag + 1e-6;
        }
}

static CLBlastStatusCode run_gemm(bench *bb, const shape *s)
{
    size_t lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
    CLBlastTranspose ta = s->ta ? CLBlastTransposeYes : CLBlastTransposeNo, tb = s->tb ? CLBlastTransposeYes : CLBlastTransposeNo;
    /* Like the replica: a scratch buffer of the size CLBlast asks for under the parameters in
     * force, so that no call allocates its own. */
    size_t need = 0;
    CLBlastStatusCode st = CLBlastSGemmTempBufferSize(CLBlastLayoutRowMajor, ta, tb, s->m, s->n, s->k, 0, lda, 0, ldb,
                                                      0, s->n, &bb->queue, &need);
    if (st != CLBlastSuccess) return st;
    if (need > bb->temp_bytes) {
        cl_int err;
        if (bb->temp) clReleaseMemObject(bb->temp);
        bb->temp = clCreateBuffer(bb->ctx, CL_MEM_READ_WRITE, need, NULL, &err);
        bb->temp_bytes = err == CL_SUCCESS ? need : 0;
        if (err != CL_SUCCESS) {
            bb->temp = NULL;
            return CLBlastTempBufferAllocFailure;
        }
    }
    if (need == 0)
        return CLBlastSgemm(CLBlastLayoutRowMajor, ta, tb, s->m, s->n, s->k, 1.0f, bb->a, 0, lda, bb->b, 0, ldb, 0.0f,
                            bb->c, 0, s->n, &bb->queue, NULL);
    return CLBlastSgemmWithTempBuffer(CLBlastLayoutRowMajor, ta, tb, s->m, s->n, s->k, 1.0f, bb->a, 0, lda, bb->b, 0,
                                      ldb, 0.0f, bb->c, 0, s->n, &bb->queue, NULL, bb->temp);
}

/* One measurement: the first call (compiles, then checked against the reference), then batches of
 * calls until the time budget is spent; the best batch gives the time per call. Returns ms per
 * call, or a negative value when the GEMM failed (*why says how). */
static double measure(bench *bb, const shape *s, char *why, size_t why_size)
{
    size_t mn = s->m * s->n;
    for (size_t i = 0; i < mn; i++) bb->hc[i] = 1234.5f; /* poison: beta = 0 must not read it */
    cl_int err = clEnqueueWriteBuffer(bb->queue, bb->c, CL_TRUE, 0, mn * sizeof(float), bb->hc, 0, NULL, NULL);
    if (err != CL_SUCCESS) {
        snprintf(why, why_size, "clEnqueueWriteBuffer failed (%d)", (int)err);
        return -1;
    }
    CLBlastStatusCode st = run_gemm(bb, s);
    if (st == CLBlastSuccess) err = clEnqueueReadBuffer(bb->queue, bb->c, CL_TRUE, 0, mn * sizeof(float), bb->hc, 0, NULL, NULL);
    if (st != CLBlastSuccess || err != CL_SUCCESS) {
        snprintf(why, why_size, "CLBlastSgemm returned %d", (int)st);
        return -1;
    }
    size_t worst = 0;
    double worst_excess = -INFINITY;
    for (size_t i = 0; s->ref && i < mn; i++) {
        double excess = fabs((double)bb->hc[i] - s->ref[i]) - s->bound[i];
        if (isnan(bb->hc[i])) excess = INFINITY;
        if (excess > worst_excess) {
            worst_excess = excess;
            worst = i;
        }
    }
    if (worst_excess > 0) {
        snprintf(why, why_size, "wrong result: C[%zu][%zu] = %.7g, reference %.7g", worst / s->n, worst % s->n,
                 (double)bb->hc[worst], s->ref[worst]);
        return -1;
    }
    /* batch size: enough calls for about a fifth of the budget */
    double t0 = now_ms();
    if (run_gemm(bb, s) != CLBlastSuccess || clFinish(bb->queue) != CL_SUCCESS) {
        snprintf(why, why_size, "a repeated call failed");
        return -1;
    }
    double one = now_ms() - t0;
    size_t batch = one > 0 ? (size_t)(bb->budget_ms / 5.0 / one) : 1;
    if (batch < 1) batch = 1;
    if (batch > 1000) batch = 1000;
    double best = INFINITY, start = now_ms();
    for (int round = 0; round < 20 && (round < 3 || now_ms() - start < bb->budget_ms); round++) {
        double b0 = now_ms();
        for (size_t i = 0; i < batch; i++)
            if (run_gemm(bb, s) != CLBlastSuccess) {
                snprintf(why, why_size, "a repeated call failed");
                return -1;
            }
        if (clFinish(bb->queue) != CL_SUCCESS) {
            snprintf(why, why_size, "clFinish failed");
            return -1;
        }
        double per = (now_ms() - b0) / (double)batch;
        if (per < best) best = per;
    }
    return best;
}

static double gflops(const shape *s, double ms) { return ms > 0 ? 2.0 * (double)s->m * (double)s->n * (double)s->k / (ms * 1e6) : 0; }

static CLBlastStatusCode override(cl_device_id dev, const char *kernel, const char *const *names, const size_t *values, size_t n)
{
    return CLBlastOverrideParameters(dev, kernel, CLBlastPrecisionSingle, n, (const char **)names, values);
}

static CLBlastStatusCode set_threshold(cl_device_id dev, size_t t)
{
    static const char *const name[] = {"XGEMM_MIN_INDIRECT_SIZE"};
    return override(dev, "GemmRoutine", name, &t, 1);
}

/* Times every shape under the parameters in force now and keeps the smaller of that and what
 * `best` holds: the machine may be shared, and the least disturbed of several passes is closest
 * to what the kernels can do. On a failure best[0] becomes -1 and 0 is returned. */
static int measure_min(bench *bb, shape *s, size_t ns, double *best, const char *label)
{
    for (size_t i = 0; i < ns; i++) {
        char why[256] = "";
        double t = measure(bb, &s[i], why, sizeof why);
        if (t < 0) {
            fprintf(stderr, "cldp-tune: %s on %zux%zux%zu: %s; leaving it out\n", label, s[i].m, s[i].n, s[i].k, why);
            best[0] = -1;
            return 0;
        }
        if (t < best[i]) best[i] = t;
    }
    return 1;
}

static double total(const double *t, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += t[i];
    return s;
}

/* ---- choosing the threshold between the two kernels ------------------------------------- */

static unsigned long long mnk_of(const shape *s) { return (unsigned long long)s->m * s->n * s->k; }

/* floor(cbrt(v)) */
static size_t icbrt(unsigned long long v)
{
    size_t r = (size_t)cbrt((double)v);
    while ((unsigned long long)(r + 1) * (r + 1) * (r + 1) <= v) r++;
    while (r > 0 && (unsigned long long)r * r * r > v) r--;
    return r;
}

/* CLBlast runs XgemmDirect when m·n·k < T³. Picks T so that the measured shapes below it (by m·n·k)
 * are those where the direct kernel is faster in total; returns the step time it gives. */
static double choose_threshold(const shape *s, size_t ns, const double *td, const double *tx, size_t *threshold)
{
    size_t order[MAX_SHAPES];
    for (size_t i = 0; i < ns; i++) order[i] = i;
    for (size_t i = 1; i < ns; i++) /* insertion sort by m·n·k */
        for (size_t j = i; j > 0 && mnk_of(&s[order[j]]) < mnk_of(&s[order[j - 1]]); j--) {
            size_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    double best = INFINITY;
    *threshold = 0;
    for (size_t cut = 0; cut <= ns; cut++) { /* order[0, cut) direct, the rest indirect */
        size_t lo = cut == 0 ? 0 : icbrt(mnk_of(&s[order[cut - 1]])) + 1;         /* T³ > largest direct */
        size_t hi = cut == ns ? (size_t)-1 : icbrt(mnk_of(&s[order[cut]]));       /* T³ <= smallest indirect */
        if (cut == 0) lo = hi;         /* nothing measured below: keep smaller GEMMs direct */
        if (cut == ns) hi = lo;        /* nothing measured above: larger ones go indirect */
        if (lo > hi) continue;         /* two shapes too close in m·n·k to separate */
        double t = 0;
        for (size_t i = 0; i < ns; i++) t += i < cut ? td[order[i]] : tx[order[i]];
        if (t < best) {
            best = t;
            *threshold = (size_t)sqrt((double)lo * (double)hi); /* the geometric middle of the gap */
            if (*threshold < lo) *threshold = lo;
            if (*threshold > hi) *threshold = hi;
        }
    }
    return best;
}

/* ---- the cache file ----------------------------------------------------------------------- */

static int cache_dir(char *buf, size_t size)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;
    if (xdg && xdg[0] == '/') n = snprintf(buf, size, "%s/cldp/tuning", xdg);
    else if (home && home[0]) n = snprintf(buf, size, "%s/.cache/cldp/tuning", home);
    else return -1;
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

static int mkdirs(const char *path)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *c = tmp + 1; *c; c++)
        if (*c == '/') {
            *c = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
            *c = '/';
        }
    return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static void sanitize(char *dst, size_t cap, const char *src)
{
    size_t n = 0;
    for (; *src && n + 1 < cap; src++) {
        char c = *src;
        int keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+';
        if (!keep && n > 0 && dst[n - 1] == '_') continue;
        dst[n++] = keep ? c : '_';
    }
    dst[n] = 0;
}

static void trimmed(char *dst, size_t cap, const char *src)
{
    while (*src == ' ' || *src == '\t') src++;
    snprintf(dst, cap, "%s", src);
    size_t n = strlen(dst);
    while (n > 0 && (dst[n - 1] == ' ' || dst[n - 1] == '\t')) dst[--n] = 0;
}

static void write_kernel(FILE *f, const char *kernel, const char *const *names, const size_t *v, size_t n)
{
    fprintf(f, "%s/32 =", kernel);
    for (size_t i = 0; i < n; i++) fprintf(f, " %s=%zu", names[i], v[i]);
    fputc('\n', f);
}

/* Writes the chosen set to `path` through a temporary file and a rename, so a reader never sees
 * half a file. */
static int write_result(const char *path, const cldp_device_info *info, const candidate *d, const candidate *x,
                        size_t threshold, const char *shapes_note, double t_default, double t_tuned)
{
    char tmp[1200], name[256], driver[128];
    int len = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (len < 0 || (size_t)len >= sizeof tmp) {
        fprintf(stderr, "cldp-tune: output path too long: %s\n", path);
        return -1;
    }
    trimmed(name, sizeof name, info->name);
    trimmed(driver, sizeof driver, info->driver_version);
    if (!name[0] || strpbrk(name, "*?|") || strpbrk(driver, "*?|")) { /* would not read back as this device */
        fprintf(stderr, "cldp-tune: the device's name or driver cannot be written as an exact match; nothing written\n");
        return -1;
    }
    if (!driver[0]) snprintf(driver, sizeof driver, "*");
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "cldp-tune: cannot write %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    time_t now = time(NULL);
    char date[32] = "";
    strftime(date, sizeof date, "%Y-%m-%d", gmtime(&now));
    fprintf(f, "# CLBlast SGEMM parameters written by cldp-tune; read by cldp (format: runtime/tuning.h).\n");
    fprintf(f, "# Shapes: %s\n", shapes_note);
    fprintf(f, "# Step time of those GEMMs: %.3f ms with CLBlast's defaults, %.3f ms with these (%.2fx).\n",
            t_default, t_tuned, t_default / t_tuned);
    fprintf(f, "device = %s\n", name);
    fprintf(f, "driver = %s\n", driver);
    fprintf(f, "note = cldp-tune %s, %s + %s\n", date, d->label, x->label);
    write_kernel(f, "XgemmDirect", direct_names, d->v, 10);
    write_kernel(f, "Xgemm", xgemm_names, x->v, 16);
    fprintf(f, "GemmRoutine/32 = XGEMM_MIN_INDIRECT_SIZE=%zu\n", threshold);
    int bad = ferror(f) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        fprintf(stderr, "cldp-tune: cannot write %s: %s\n", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

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
