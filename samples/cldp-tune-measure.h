/* cldp-tune-measure.h — measuring one GEMM shape on one device: the buffers, random inputs and
 * the double-precision reference, CLBlast parameter overrides, timings, and the choice of the
 * threshold between the direct and the indirect kernel. Included by cldp-tune.c alone. */

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
