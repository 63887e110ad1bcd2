/* test_kernel_cache — the persistent program cache: a first build misses and stores an entry, a
 * second is a hit whose program computes correctly, a damaged entry (every kind: flipped byte in
 * the binary, truncated file, wrong magic, empty file) is rejected and rebuilt, and a changed
 * source misses. Runs in a private cache directory. */
#define _POSIX_C_SOURCE 200809L
#undef NDEBUG
#include "devices.h"
#include "program.h"
#include "testutil.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *SRC =
    "__kernel void axpb(__global float *y, __global const float *x, const float a, const float b, const uint n)\n"
    "{ size_t i = get_global_id(0); if (i < n) y[i] = a * x[i] + b; }\n";

static char dir[64];

/* The one entry in the cache directory (path into `out`); returns how many there are. */
static int entry(char *out, size_t cap)
{
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".bin")) {
            snprintf(out, cap, "%s/%s", dir, e->d_name);
            n++;
        }
    if (d) closedir(d);
    return n;
}

/* Builds SRC (plus `extra`) and checks the program computes y = a·x + b on random data. */
static void build_and_run(const cldp_dev *dev, const char *extra)
{
    char src[1024];
    snprintf(src, sizeof src, "%s%s", SRC, extra);
    cl_int err;
    cl_context ctx = clCreateContext(NULL, 1, &dev->id, NULL, NULL, &err);
    cl_command_queue q = clCreateCommandQueue(ctx, dev->id, 0, &err);
    cl_program p = NULL;
    CHECK_OK(cldp_build_program(ctx, dev->id, "test device", src, "-DUNUSED=1", &p));
    if (p) {
        enum { N = 333 };
        float x[N], y[N];
        double ref[N];
        test_fill(x, N, -2, 2);
        float a = (float)test_uniform(-3, 3), b = (float)test_uniform(-1, 1);
        for (int i = 0; i < N; i++) ref[i] = (double)a * x[i] + b;
        cl_kernel k = clCreateKernel(p, "axpb", &err);
        cl_mem bx = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof x, x, &err);
        cl_mem by = clCreateBuffer(ctx, CL_MEM_READ_WRITE, sizeof y, NULL, &err);
        cl_uint n = N;
        size_t global = N;
        clSetKernelArg(k, 0, sizeof by, &by);
        clSetKernelArg(k, 1, sizeof bx, &bx);
        clSetKernelArg(k, 2, sizeof a, &a);
        clSetKernelArg(k, 3, sizeof b, &b);
        clSetKernelArg(k, 4, sizeof n, &n);
        CHECK(clEnqueueNDRangeKernel(q, k, 1, NULL, &global, NULL, 0, NULL, NULL) == CL_SUCCESS);
        CHECK(clEnqueueReadBuffer(q, by, CL_TRUE, 0, sizeof y, y, 0, NULL, NULL) == CL_SUCCESS);
        test_close("cached program's result", y, ref, N, 1e-6, 1e-6);
        clReleaseMemObject(bx);
        clReleaseMemObject(by);
        clReleaseKernel(k);
        clReleaseProgram(p);
    }
    clReleaseCommandQueue(q);
    clReleaseContext(ctx);
}

static void expect(const char *what, cldp_program_cache_stats before, int hits, int misses, int rejected)
{
    cldp_program_cache_stats now = cldp_program_cache_counters();
    int h = (int)(now.hits - before.hits), m = (int)(now.misses - before.misses), r = (int)(now.rejected - before.rejected);
    printf("  %-28s hits %d, misses %d, rejected %d\n", what, h, m, r);
    if (h != hits || m != misses || r != rejected) {
        fprintf(stderr, "FAIL %s: expected hits %d, misses %d, rejected %d\n", what, hits, misses, rejected);
        test_failures++;
    }
}

static void damage(const char *path, int how)
{
    struct stat st;
    stat(path, &st);
    FILE *f = fopen(path, how == 3 ? "wb" : "r+b");
    if (how == 0) { /* flip a byte inside the binary */
        long at = 32 + (long)(test_rand() % (unsigned long)(st.st_size - 32));
        fseek(f, at, SEEK_SET);
        int c = fgetc(f);
        fseek(f, at, SEEK_SET);
        fputc(c ^ 0x5a, f);
    } else if (how == 1) { /* wrong magic */
        fputc('X', f);
    }
    fclose(f);
    if (how == 2) CHECK(truncate(path, st.st_size / 2) == 0);
}

int main(void)
{
    test_rng_state = test_seed("test_kernel_cache");
    const cldp_dev *devs;
    size_t n;
    if (cldp_devices(&devs, &n) != CLDP_OK) {
        printf("SKIP test_kernel_cache: %s\n", cldp_last_error());
        return TEST_SKIP_CODE;
    }
    snprintf(dir, sizeof dir, "/tmp/cldp-cache-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    cldp_test_control(CLDP_TEST_CONFIG, "CLDP_CACHE_DIR", dir);
    char path[512];

    cldp_program_cache_stats s = cldp_program_cache_counters();
    build_and_run(&devs[0], "");
    expect("first build", s, 0, 1, 0);
    CHECK(entry(path, sizeof path) == 1);

    s = cldp_program_cache_counters();
    build_and_run(&devs[0], "");
    expect("second build", s, 1, 0, 0);

    const char *kinds[] = {"flipped byte", "wrong magic", "truncated", "empty file"};
    for (int how = 0; how < 4; how++) {
        damage(path, how);
        s = cldp_program_cache_counters();
        build_and_run(&devs[0], "");
        char what[64];
        snprintf(what, sizeof what, "damaged entry (%s)", kinds[how]);
        expect(what, s, 0, 0, 1);
        s = cldp_program_cache_counters();
        build_and_run(&devs[0], ""); /* the rebuilt entry is good again */
        expect("after the rebuild", s, 1, 0, 0);
    }

    s = cldp_program_cache_counters();
    build_and_run(&devs[0], "// a changed source\n");
    expect("changed source", s, 0, 1, 0);
    CHECK(entry(path, sizeof path) == 2);

    cldp_test_control(CLDP_TEST_CONFIG, "CLDP_KERNEL_CACHE", "off");
    s = cldp_program_cache_counters();
    build_and_run(&devs[0], "");
    expect("cache off", s, 0, 0, 0);

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return test_finish("test_kernel_cache");
}
