/* cldp-bench-gemm.h — the section "gemm" of cldp-bench: CLBlast's GEMMs of one training step of
 * the bench's model with the shipped tuning against CLBlast's defaults (each in a fresh child
 * process, rounds alternating), beside a CPU BLAS where one was found at build time. Included by
 * cldp-bench.c alone, where its helpers are defined. */

/* ---- 4. GEMM ---------------------------------------------------------------------------- */

/* The GEMMs of one training step of a replica of the bench's model at `shard` rows, with the
 * transposes runtime/replica.c passes (row-major): forward X·Wᵀ (nt), backward dW = dYᵀ·X (tn) and
 * dX = dY·W (nn, not for the first layer); then a square 512 for reference. */
typedef struct shape { size_t m, n, k; int ta, tb; const char *what; } shape;

#define GEMM_MAX_SHAPES 10

static int gemm_shapes(size_t shard, size_t h, shape *sh)
{
    const size_t sizes[4] = {784, h, h, 10};
    static const char *const fwd[3] = {"forward layer 1", "forward layer 2", "forward layer 3"},
                             *const dw[3] = {"dW layer 1", "dW layer 2", "dW layer 3"},
                             *const dx[3] = {"", "dX layer 2", "dX layer 3"};
    int n = 0;
    for (int l = 0; l < 3; l++) {
        size_t in = sizes[l], out = sizes[l + 1];
        sh[n++] = (shape){shard, out, in, 0, 1, fwd[l]};
        sh[n++] = (shape){out, in, shard, 1, 0, dw[l]};
        if (l > 0) sh[n++] = (shape){shard, in, out, 0, 0, dx[l]};
    }
    sh[n++] = (shape){512, 512, 512, 0, 1, "square 512"};
    return n;
}

static double shape_flop(const shape *s) { return 2.0 * (double)s->m * (double)s->n * (double)s->k; }

/* Child process: ms per call of CLBlast SGEMM on device 0 for each shape, the best of the calls
 * made in about `budget_ms` (at least 3, after one that compiles); tuning applied unless
 * CLDP_TUNING=off. Like the replica it passes a scratch buffer of the size CLBlast asks for. */
static void probe_gemm(size_t shard, size_t h, double budget_ms)
{
    shape sh[GEMM_MAX_SHAPES];
    int nsh = gemm_shapes(shard, h, sh);
    const cldp_dev *devs;
    size_t ndev;
    if (cldp_devices(&devs, &ndev) != CLDP_OK) die("devices");
    cl_int err;
    cl_context ctx = clCreateContext(NULL, 1, &devs[0].id, NULL, NULL, &err);
    cl_command_queue q = clCreateCommandQueue(ctx, devs[0].id, 0, &err);
    if (cldp_tuning_apply(devs[0].id, devs[0].info.name, devs[0].info.driver_version, devs[0].info.name) != CLDP_OK)
        die("tuning");
    for (int i = 0; i < nsh; i++) {
        size_t m = sh[i].m, n = sh[i].n, k = sh[i].k, lda = sh[i].ta ? m : k, ldb = sh[i].tb ? k : n, need = 0;
        CLBlastTranspose ta = sh[i].ta ? CLBlastTransposeYes : CLBlastTransposeNo,
                         tb = sh[i].tb ? CLBlastTransposeYes : CLBlastTransposeNo;
        cl_mem a = clCreateBuffer(ctx, CL_MEM_READ_WRITE, m * k * 4, NULL, &err);
        cl_mem b = clCreateBuffer(ctx, CL_MEM_READ_WRITE, k * n * 4, NULL, &err);
        cl_mem c = clCreateBuffer(ctx, CL_MEM_READ_WRITE, m * n * 4, NULL, &err), temp = NULL;
        float fill = 0.25f;
        clEnqueueFillBuffer(q, a, &fill, 4, 0, m * k * 4, 0, NULL, NULL);
        clEnqueueFillBuffer(q, b, &fill, 4, 0, k * n * 4, 0, NULL, NULL);
        CLBlastSGemmTempBufferSize(CLBlastLayoutRowMajor, ta, tb, m, n, k, 0, lda, 0, ldb, 0, n, &q, &need);
        if (need) temp = clCreateBuffer(ctx, CL_MEM_READ_WRITE, need, NULL, &err);
        double best = INFINITY, start = now_ms();
        for (int r = -1; r < 3 || (r < 50 && now_ms() - start < budget_ms); r++) {
            double t0 = now_ms();
            CLBlastStatusCode st =
                temp ? CLBlastSgemmWithTempBuffer(CLBlastLayoutRowMajor, ta, tb, m, n, k, 1.0f, a, 0, lda, b, 0, ldb,
                                                  0.0f, c, 0, n, &q, NULL, temp)
                     : CLBlastSgemm(CLBlastLayoutRowMajor, ta, tb, m, n, k, 1.0f, a, 0, lda, b, 0, ldb, 0.0f, c, 0, n, &q, NULL);
            if (st != CLBlastSuccess) die("gemm");
            clFinish(q);
            if (r < 0) start = now_ms(); /* the first call compiles */
            else if (now_ms() - t0 < best) best = now_ms() - t0;
        }
        printf("%.6f\n", best);
        if (temp) clReleaseMemObject(temp);
        clReleaseMemObject(a);
        clReleaseMemObject(b);
        clReleaseMemObject(c);
    }
    clReleaseCommandQueue(q);
    clReleaseContext(ctx);
}

static int run_child(const char *env, const char *args, double *out, int nout)
{
    char cmd[1024], self[512];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) return -1;
    self[len] = 0;
    snprintf(cmd, sizeof cmd, "env %s '%s' %s", env, self, args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    int got = 0;
    while (got < nout && fscanf(p, "%lf", &out[got]) == 1) got++;
    return pclose(p) == 0 && got == nout ? 0 : -1;
}

#ifdef CLDP_HAVE_CBLAS
/* The CPU BLAS on the same shapes in this process, the best call in about `budget_ms` each. */
static void blas_ms(const shape *sh, int nsh, double budget_ms, double *out)
{
    for (int i = 0; i < nsh; i++) {
        size_t m = sh[i].m, n = sh[i].n, k = sh[i].k;
        int lda = (int)(sh[i].ta ? m : k), ldb = (int)(sh[i].tb ? k : n);
        float *a = malloc(m * k * 4), *b = malloc(k * n * 4), *c = malloc(m * n * 4);
        if (!a || !b || !c) die("out of host memory");
        for (size_t j = 0; j < m * k; j++) a[j] = frand();
        for (size_t j = 0; j < k * n; j++) b[j] = frand();
        double best = INFINITY, start = now_ms();
        for (int r = -1; r < 3 || (r < 50 && now_ms() - start < budget_ms); r++) {
            double t0 = now_ms();
            cblas_sgemm(CblasRowMajor, sh[i].ta ? CblasTrans : CblasNoTrans, sh[i].tb ? CblasTrans : CblasNoTrans,
                        (int)m, (int)n, (int)k, 1.0f, a, lda, b, ldb, 0.0f, c, (int)n);
            if (r < 0) start = now_ms();
            else if (now_ms() - t0 < best) best = now_ms() - t0;
        }
        out[i] = best;
        free(a);
        free(b);
        free(c);
    }
}
#endif

/* Tuned and default CLBlast each run in a fresh child (CLBlast keeps applied parameters for the
 * life of a process), the CPU BLAS in this one; the three alternate, in a rotating order, for
 * several rounds, so that the load of a shared machine falls on all of them alike. Each round gives
 * each of them its best call per shape; the table shows the best of those over the rounds (the
 * least disturbed, closest to what each can do) and how far the rounds spread. */
static void bench_gemm(const opts *o, FILE *js)
{
    size_t shard = o->batch / 2, h = o->hidden;
    shape sh[GEMM_MAX_SHAPES];
    int nsh = gemm_shapes(shard, h, sh);
    int rounds = o->quick ? 3 : 7;
    double budget = o->quick ? 60 : 150;
    char args[96];
    snprintf(args, sizeof args, "--probe-gemm %zu %zu %.0f", shard, h, budget);
    /* [round][shape] ms per call; [3] tuned, default, blas */
    double t[3][9][GEMM_MAX_SHAPES];
    int have_blas = 0;
#ifdef CLDP_HAVE_CBLAS
    have_blas = 1;
#endif
    printf("\n4. gemm: CLBlast SGEMM GFLOP/s on device 0, tuned vs default parameters, CPU BLAS on one core\n");
    printf("   the GEMMs of one step of a replica at %zu rows (batch %zu on 2 devices), transposes as in the replica\n",
           shard, o->batch);
    for (int r = 0; r < rounds; r++) {
        for (int j = 0; j < 3; j++) {
            int which = (r + j) % 3; /* rotate who goes first */
            int fail = 0;
            if (which == 0) fail = run_child("POCL_DEVICES=basic CLDP_TUNING=on", args, t[0][r], nsh);
            else if (which == 1) fail = run_child("POCL_DEVICES=basic CLDP_TUNING=off", args, t[1][r], nsh);
#ifdef CLDP_HAVE_CBLAS
            else blas_ms(sh, nsh, budget, t[2][r]);
#endif
            if (fail) {
                printf("   (the GEMM probe failed; skipped)\n");
                return;
            }
        }
    }
    const char *core = "";
#if defined(CLDP_HAVE_CBLAS) && defined(OPENBLAS_VERSION)
    core = openblas_get_corename();
#endif
    printf("   %d rounds; each figure the best of the rounds' bests, spread = (best - worst) / best over rounds\n", rounds);
    printf("   %-30s %-3s %7s %6s %7s %6s %7s %6s %9s %10s\n", "shape (m x n x k)", "op", "tuned", "spread", "default",
           "spread", "blas", "spread", "tuned/def", "tuned/blas");
    fprintf(js, "\"gemm\":[");
    double step[3] = {0, 0, 0}, step_r[3][9]; /* ms: sum of the shapes' best calls; the same per round */
    memset(step_r, 0, sizeof step_r);
    for (int i = 0; i < nsh; i++) {
        double best[3], spread[3], med[3], v[9];
        for (int w = 0; w < 3; w++) {
            double lo = INFINITY, hi = 0;
            for (int r = 0; r < rounds; r++) {
                v[r] = shape_flop(&sh[i]) / (t[w][r][i] * 1e6);
                lo = v[r] < lo ? v[r] : lo;
                hi = v[r] > hi ? v[r] : hi;
                if (i < nsh - 1) step_r[w][r] += t[w][r][i]; /* the square is not part of a step */
            }
            best[w] = hi;
            spread[w] = (hi - lo) / hi;
            med[w] = median(v, rounds);
            if (i < nsh - 1) step[w] += shape_flop(&sh[i]) / (hi * 1e6);
            if (w == 2 && !have_blas) best[w] = spread[w] = med[w] = 0;
        }
        double rd = best[0] / best[1], rb = have_blas ? best[0] / best[2] : 0;
        char name[48];
        snprintf(name, sizeof name, "%s %zux%zux%zu", sh[i].what, sh[i].m, sh[i].n, sh[i].k);
        const char *op = sh[i].ta ? (sh[i].tb ? "tt" : "tn") : (sh[i].tb ? "nt" : "nn");
        /* without a CPU BLAS its columns say n/a (text) and null (JSON), never a 0 that reads as a figure */
        char blas_col[32] = "    n/a       ", ratio_col[16] = "n/a", jb[16] = "null", jrb[16] = "null", jsb[16] = "null", jmb[16] = "null";
        if (have_blas) {
            snprintf(blas_col, sizeof blas_col, "%7.1f %5.0f%%", best[2], 100 * spread[2]);
            snprintf(ratio_col, sizeof ratio_col, "%.2f", rb);
            snprintf(jb, sizeof jb, "%.2f", best[2]);
            snprintf(jrb, sizeof jrb, "%.3f", rb);
            snprintf(jsb, sizeof jsb, "%.3f", spread[2]);
            snprintf(jmb, sizeof jmb, "%.2f", med[2]);
        }
        printf("   %-30s %-3s %7.1f %5.0f%% %7.1f %5.0f%% %s %9.2f %10s\n", name, op, best[0], 100 * spread[0], best[1],
               100 * spread[1], blas_col, rd, ratio_col);
        fprintf(js, "%s{\"shape\":\"%zux%zux%zu\",\"op\":\"%s\",\"what\":\"%s\",\"tuned_gflops\":%.2f,\"default_gflops\":%.2f,"
                    "\"blas_gflops\":%s,\"tuned_vs_default\":%.3f,\"tuned_vs_blas\":%s,\"spread\":[%.3f,%.3f,%s],"
                    "\"median_gflops\":[%.2f,%.2f,%s]}",
                i ? "," : "", sh[i].m, sh[i].n, sh[i].k, op, sh[i].what, best[0], best[1], jb, rd, jrb, spread[0],
                spread[1], jsb, med[0], med[1], jmb);
    }
    /* One step's GEMMs together, the figure training feels: from the best calls, and as the median
     * of each round's own ratio (pairs measured seconds apart), which should agree when the load
     * was fair to all. */
    double rd[9], rb[9];
    for (int r = 0; r < rounds; r++) {
        rd[r] = step_r[1][r] / step_r[0][r];
        rb[r] = have_blas ? step_r[2][r] / step_r[0][r] : 0;
    }
    double mrd = median(rd, rounds), mrb = median(rb, rounds);
    char sb[32] = "n/a", sr[16] = "n/a", smr[16] = "n/a", jsb[16] = "null", jsr[16] = "null", jsmr[16] = "null";
    if (have_blas) {
        snprintf(sb, sizeof sb, "%.1f ms", step[2]);
        snprintf(sr, sizeof sr, "%.2f", step[2] / step[0]);
        snprintf(smr, sizeof smr, "%.2f", mrb);
        snprintf(jsb, sizeof jsb, "%.3f", step[2]);
        snprintf(jsr, sizeof jsr, "%.3f", step[2] / step[0]);
        snprintf(jsmr, sizeof jsmr, "%.3f", mrb);
    }
    printf("   one step's GEMMs (all but the square), best calls: tuned %.1f ms, default %.1f ms, blas %s\n"
           "     tuned/def %.2f (target >= 3), tuned/blas %s (target >= 0.8); median of the rounds' own ratios %.2f and %s\n",
           step[0], step[1], sb, step[1] / step[0], sr, mrd, smr);
    fprintf(js, "],\"gemm_step\":{\"tuned_ms\":%.3f,\"default_ms\":%.3f,\"blas_ms\":%s,\"tuned_vs_default\":%.3f,"
                "\"tuned_vs_blas\":%s,\"round_median_tuned_vs_default\":%.3f,\"round_median_tuned_vs_blas\":%s,"
                "\"rounds\":%d,\"blas_core\":\"%s\"},",
            step[0], step[1], jsb, step[1] / step[0], jsr, mrd, jsmr, rounds, core);
#ifndef CLDP_HAVE_CBLAS
    printf("   (no CPU BLAS was found at build time: install libopenblas-dev for the blas column)\n");
#else
    if (core[0]) printf("   blas: OpenBLAS with its kernels for \"%s\"%s\n", core,
                        strcmp(core, "Prescott") ? "" : " (SSE3 only: this OpenBLAS does not know the CPU; "
                                                        "OPENBLAS_CORETYPE=SkylakeX or Haswell picks its wider kernels)");
#endif
}
