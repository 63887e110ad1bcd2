/* cldp-bench-allreduce.h — the section "allreduce" of cldp-bench: the host all-reduce (the
 * collective and the trainer's fused sum-and-update pass) against the machine's memcpy bandwidth,
 * with one and with several copies at once. Included by cldp-bench.c alone, where its helpers
 * (now_ms, median, die, the options) are defined. */

/* ---- 3. all-reduce ---------------------------------------------------------------------- */

/* memcpy bandwidth (bytes copied per second) with `threads` copies running at once. */
typedef struct { float *src, *dst; size_t n; } copy_job;
static void *copy_main(void *a)
{
    copy_job *j = a;
    memcpy(j->dst, j->src, j->n * sizeof(float));
    return NULL;
}

static double memcpy_bw(size_t floats, int threads)
{
    copy_job j[8];
    for (int i = 0; i < threads; i++) {
        j[i].src = malloc(floats * sizeof(float));
        j[i].dst = malloc(floats * sizeof(float));
        memset(j[i].src, 1, floats * sizeof(float));
        memset(j[i].dst, 0, floats * sizeof(float));
        j[i].n = floats;
    }
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        pthread_t th[8];
        double t0 = now_ms();
        for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, copy_main, &j[i]);
        for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
        double ms = now_ms() - t0;
        if (ms < best) best = ms;
    }
    for (int i = 0; i < threads; i++) {
        free(j[i].src);
        free(j[i].dst);
    }
    return (double)threads * (double)floats * sizeof(float) / (best * 1e-3);
}

/* The host pass of a training step on one thread, two ways, ms: the in-place tree then a
 * separate SGD pass (the order cldp had before), and the fused pass the trainer runs now
 * (cldp_tree_sum block by block, the library's cldp_update_block on the same block, as
 * runtime/trainer.c does). */
static void host_pass_ms(size_t n, size_t count, double *unfused, double *fused)
{
    enum { BLOCK = CLDP_UPDATE_BLOCK };
    float *g[3], *p = malloc(count * sizeof(float)), *m = calloc(count, sizeof(float));
    float *np = malloc(count * sizeof(float)), *nm = malloc(count * sizeof(float));
    for (size_t r = 0; r < n; r++) {
        g[r] = malloc(count * sizeof(float));
        for (size_t i = 0; i < count; i++) g[r][i] = frand();
    }
    for (size_t i = 0; i < count; i++) p[i] = frand();
    float scratch[2 * BLOCK];
    const cldp_update u = {.sgd = 1, .lr = 0.01f, .mu = 0.9f};
    double a[5], b[5];
    for (int k = 0; k < 5; k++) {
        double t0 = now_ms();
        cldp_tree_reduce(g, n, 0, count);
        for (size_t i = 0; i < count; i++) {
            m[i] = 0.9f * m[i] + g[0][i];
            p[i] -= 0.01f * m[i];
        }
        double t1 = now_ms();
        for (size_t blk = 0; blk < count; blk += BLOCK) {
            size_t len = count - blk < BLOCK ? count - blk : BLOCK;
            const float *src[3];
            for (size_t r = 0; r < n; r++) src[r] = g[r] + blk;
            const float *sum = cldp_tree_sum(src, n, len, scratch);
            cldp_update_block(&u, sum, p + blk, m + blk, NULL, np + blk, nm + blk, NULL, len);
        }
        cldp_update_fence();
        double t2 = now_ms();
        a[k] = t1 - t0;
        b[k] = t2 - t1;
    }
    *unfused = median(a, 5);
    *fused = median(b, 5);
    for (size_t r = 0; r < n; r++) free(g[r]);
    free(p), free(m), free(np), free(nm);
}

static void bench_allreduce(const opts *o, FILE *js)
{
    const cldp_dev *devs;
    size_t ndev;
    if (cldp_devices(&devs, &ndev) != CLDP_OK) die("devices");
    size_t sizes_mib[] = {1, 4, 16, 64, 256};
    int nsizes = o->quick ? 3 : 5;
    printf("\n3. all-reduce: host tree all-reduce + broadcast on cldp_collective (per-device vector)\n");
    printf("   bound: per byte, n device->host copies, an n-way sum and n host->device copies move\n"
           "   (5n+1) bytes of memory traffic; memcpy moves 2 per byte copied, so algbw <= 2·memcpy/(5n+1)\n");
    printf("   %-4s %-8s %10s %10s %10s %12s %8s\n", "devs", "size", "time ms", "algbw GB/s", "busbw GB/s", "bound GB/s", "ratio");
    fprintf(js, "\"allreduce\":[");
    int first = 1;
    for (size_t n = 2; n <= 3 && n <= ndev; n++) {
        double mbw = memcpy_bw((64u << 20) / sizeof(float), (int)n);
        double bound = 2.0 * mbw / (double)(5 * n + 1);
        printf("   memcpy with %zu threads: %.2f GB/s copied\n", n, mbw * 1e-9);
        cl_context ctx[3];
        cl_command_queue q[3];
        for (size_t r = 0; r < n; r++) {
            cl_int err;
            ctx[r] = clCreateContext(NULL, 1, &devs[r].id, NULL, NULL, &err);
            q[r] = clCreateCommandQueue(ctx[r], devs[r].id, 0, &err);
        }
        for (int si = 0; si < nsizes; si++) {
            size_t count = (sizes_mib[si] << 20) / sizeof(float);
            cl_mem buf[3];
            float *init = malloc(count * sizeof(float));
            for (size_t i = 0; i < count; i++) init[i] = (float)(i % 1000) * 1e-3f;
            for (size_t r = 0; r < n; r++) {
                cl_int err;
                buf[r] = clCreateBuffer(ctx[r], CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, count * sizeof(float), init, &err);
                if (err != CL_SUCCESS) die("buffer");
            }
            cldp_collective *c;
            if (cldp_collective_create(q, n, count, &c) != CLDP_OK) die("collective");
            int reps = sizes_mib[si] >= 64 ? 3 : 8;
            double ms[8];
            for (int k = -1; k < reps; k++) {
                double t0 = now_ms();
                if (cldp_collective_allreduce(c, buf, 0, 1.0f / (float)n) != CLDP_OK) die("allreduce");
                if (k >= 0) ms[k] = now_ms() - t0;
            }
            double med = median(ms, reps), bytes = (double)count * sizeof(float);
            double alg = bytes / (med * 1e-3), bus = alg * 2.0 * (double)(n - 1) / (double)n;
            printf("   %-4zu %4zu MiB %10.2f %10.2f %10.2f %12.2f %8.2f\n", n, sizes_mib[si], med, alg * 1e-9, bus * 1e-9,
                   bound * 1e-9, alg / bound);
            fprintf(js, "%s{\"devices\":%zu,\"mib\":%zu,\"ms\":%.3f,\"algbw_gbs\":%.3f,\"busbw_gbs\":%.3f,\"bound_gbs\":%.3f,\"ratio\":%.3f}",
                    first ? "" : ",", n, sizes_mib[si], med, alg * 1e-9, bus * 1e-9, bound * 1e-9, alg / bound);
            first = 0;
            cldp_collective_destroy(c);
            for (size_t r = 0; r < n; r++) clReleaseMemObject(buf[r]);
            free(init);
        }
        for (size_t r = 0; r < n; r++) {
            clReleaseCommandQueue(q[r]);
            clReleaseContext(ctx[r]);
        }
    }
    fprintf(js, "],\"host_pass\":[");
    printf("   host pass of a step on one thread: sum over devices + SGD update, in-place tree then update\n"
           "   (before) vs the fused block pass the trainer runs (each gradient byte read once)\n");
    for (size_t n = 2; n <= 3; n++)
        for (size_t mib = 16; mib <= 64; mib *= 4) {
            double before, fused;
            host_pass_ms(n, (mib << 20) / sizeof(float), &before, &fused);
            printf("   %zu devices %3zu MiB: %7.2f ms vs %7.2f ms, ratio %.2f\n", n, mib, before, fused, before / fused);
            fprintf(js, "%s{\"devices\":%zu,\"mib\":%zu,\"unfused_ms\":%.3f,\"fused_ms\":%.3f}", n == 2 && mib == 16 ? "" : ",",
                    n, mib, before, fused);
        }
    fprintf(js, "],");
}
