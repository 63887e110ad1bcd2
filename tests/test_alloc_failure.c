/* test_alloc_failure — every create path survives running out of memory at any allocation: for
 * N = 0, 1, 2, ... until creation succeeds, the N-th host allocation (cldp_malloc/calloc/realloc,
 * zlib's state, a worker thread) and then the N-th device allocation (clCreateContext,
 * clCreateCommandQueue, clCreateBuffer) fails during trainer, dataset, collective, pool and model
 * creation, and while a checkpoint loads. Each attempt must return CLDP_ERR_HOST_MEMORY or
 * CLDP_ERR_DEVICE_MEMORY with a message, leave *out NULL (a checkpoint load: the trainer as it
 * was), and leave nothing behind: OpenCL objects are counted here (the test interposes the
 * create/retain/release calls), host memory is checked by LeakSanitizer in the sanitizer build
 * (.ci/sanitizers) and by valgrind by hand. Creation succeeding while a failure was injected would
 * mean an out-of-memory error was swallowed, which is a failure too. */
#define _GNU_SOURCE /* RTLD_NEXT, dladdr */
#undef NDEBUG
#include "devices.h"
#include "workers.h"
#include "testutil.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- counting the OpenCL objects cldp (and this test) create ------------------------------
 * The library is linked statically into this executable, so its OpenCL calls resolve to the
 * definitions below, which forward to the ICD loader (RTLD_NEXT). Objects are tracked with their
 * reference count, apart by creator: this executable (cldp, the test) or another library (CLBlast,
 * whose programs, kernels and scratch buffers live in its own caches; while any trainer lives they
 * are its business, but once the last is destroyed none may remain, or they would keep the
 * destroyed replicas' contexts alive). */

enum { MAX_TRACKED = 8192 };
static struct { void *h; long refs; int ours; } tracked[MAX_TRACKED];
static size_t ntracked;
static int tracking_broken; /* table full, or an unknown handle released below zero */
static pthread_mutex_t track_mu = PTHREAD_MUTEX_INITIALIZER;
static void *exe_base;      /* load address of this executable, to recognise our callers */

static int from_this_exe(void *ret)
{
    Dl_info di;
    return exe_base && dladdr(ret, &di) && di.dli_fbase == exe_base;
}

static void track_new(void *h, void *ret)
{
    if (!h) return;
    int ours = from_this_exe(ret);
    pthread_mutex_lock(&track_mu);
    if (ntracked == MAX_TRACKED) tracking_broken = 1;
    else {
        tracked[ntracked].h = h;
        tracked[ntracked].ours = ours;
        tracked[ntracked++].refs = 1;
    }
    pthread_mutex_unlock(&track_mu);
}

static void track_ref(void *h, long delta)
{
    pthread_mutex_lock(&track_mu);
    for (size_t i = 0; i < ntracked; i++)
        if (tracked[i].h == h) {
            if ((tracked[i].refs += delta) == 0) tracked[i] = tracked[--ntracked];
            break;
        }
    pthread_mutex_unlock(&track_mu);
}

/* Live objects created by this executable (ours = 1) or by other libraries (ours = 0). */
static size_t live_by(int ours)
{
    size_t n = 0;
    pthread_mutex_lock(&track_mu);
    for (size_t i = 0; i < ntracked; i++) n += tracked[i].ours == ours;
    pthread_mutex_unlock(&track_mu);
    return n;
}
static size_t live_objects(void) { return live_by(1); }

#define REAL(name) static __typeof__(name) *real_##name; if (!real_##name) real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

CL_API_ENTRY cl_context CL_API_CALL clCreateContext(const cl_context_properties *props, cl_uint n, const cl_device_id *devs,
                                                    void(CL_CALLBACK *notify)(const char *, const void *, size_t, void *),
                                                    void *user, cl_int *err)
{
    REAL(clCreateContext);
    cl_context c = real_clCreateContext(props, n, devs, notify, user, err);
    track_new(c, __builtin_return_address(0));
    return c;
}
CL_API_ENTRY cl_int CL_API_CALL clRetainContext(cl_context c)
{
    REAL(clRetainContext);
    cl_int e = real_clRetainContext(c);
    if (e == CL_SUCCESS) track_ref(c, 1);
    return e;
}
CL_API_ENTRY cl_int CL_API_CALL clReleaseContext(cl_context c)
{
    REAL(clReleaseContext);
    cl_int e = real_clReleaseContext(c);
    if (e == CL_SUCCESS) track_ref(c, -1);
    return e;
}
CL_API_ENTRY cl_command_queue CL_API_CALL clCreateCommandQueue(cl_context c, cl_device_id d, cl_command_queue_properties p, cl_int *err)
{
    REAL(clCreateCommandQueue);
    cl_command_queue q = real_clCreateCommandQueue(c, d, p, err);
    track_new(q, __builtin_return_address(0));
    return q;
}
CL_API_ENTRY cl_int CL_API_CALL clRetainCommandQueue(cl_command_queue q)
{
    REAL(clRetainCommandQueue);
    cl_int e = real_clRetainCommandQueue(q);
    if (e == CL_SUCCESS) track_ref(q, 1);
    return e;
}
CL_API_ENTRY cl_int CL_API_CALL clReleaseCommandQueue(cl_command_queue q)
{
    REAL(clReleaseCommandQueue);
    cl_int e = real_clReleaseCommandQueue(q);
    if (e == CL_SUCCESS) track_ref(q, -1);
    return e;
}
CL_API_ENTRY cl_mem CL_API_CALL clCreateBuffer(cl_context c, cl_mem_flags f, size_t size, void *host, cl_int *err)
{
    REAL(clCreateBuffer);
    cl_mem m = real_clCreateBuffer(c, f, size, host, err);
    track_new(m, __builtin_return_address(0));
    return m;
}
CL_API_ENTRY cl_int CL_API_CALL clRetainMemObject(cl_mem m)
{
    REAL(clRetainMemObject);
    cl_int e = real_clRetainMemObject(m);
    if (e == CL_SUCCESS) track_ref(m, 1);
    return e;
}
CL_API_ENTRY cl_int CL_API_CALL clReleaseMemObject(cl_mem m)
{
    REAL(clReleaseMemObject);
    cl_int e = real_clReleaseMemObject(m);
    if (e == CL_SUCCESS) track_ref(m, -1);
    return e;
}
CL_API_ENTRY cl_program CL_API_CALL clCreateProgramWithSource(cl_context c, cl_uint n, const char **src, const size_t *len, cl_int *err)
{
    REAL(clCreateProgramWithSource);
    cl_program p = real_clCreateProgramWithSource(c, n, src, len, err);
    track_new(p, __builtin_return_address(0));
    return p;
}
CL_API_ENTRY cl_program CL_API_CALL clCreateProgramWithBinary(cl_context c, cl_uint n, const cl_device_id *d, const size_t *len,
                                                              const unsigned char **bin, cl_int *status, cl_int *err)
{
    REAL(clCreateProgramWithBinary);
    cl_program p = real_clCreateProgramWithBinary(c, n, d, len, bin, status, err);
    track_new(p, __builtin_return_address(0));
    return p;
}
CL_API_ENTRY cl_int CL_API_CALL clRetainProgram(cl_program p)
{
    REAL(clRetainProgram);
    cl_int e = real_clRetainProgram(p);
    if (e == CL_SUCCESS) track_ref(p, 1);
    return e;
}
CL_API_ENTRY cl_int CL_API_CALL clReleaseProgram(cl_program p)
{
    REAL(clReleaseProgram);
    cl_int e = real_clReleaseProgram(p);
    if (e == CL_SUCCESS) track_ref(p, -1);
    return e;
}
CL_API_ENTRY cl_kernel CL_API_CALL clCreateKernel(cl_program p, const char *name, cl_int *err)
{
    REAL(clCreateKernel);
    cl_kernel k = real_clCreateKernel(p, name, err);
    track_new(k, __builtin_return_address(0));
    return k;
}
CL_API_ENTRY cl_int CL_API_CALL clRetainKernel(cl_kernel k)
{
    REAL(clRetainKernel);
    cl_int e = real_clRetainKernel(k);
    if (e == CL_SUCCESS) track_ref(k, 1);
    return e;
}
CL_API_ENTRY cl_int CL_API_CALL clReleaseKernel(cl_kernel k)
{
    REAL(clReleaseKernel);
    cl_int e = real_clReleaseKernel(k);
    if (e == CL_SUCCESS) track_ref(k, -1);
    return e;
}

/* ---- the sweep ----------------------------------------------------------------------------- */

typedef cldp_status (*create_fn)(void *arg, void **out);
typedef void (*destroy_fn)(void *obj);

/* Runs create with the N-th allocation of `kind` failing, N = 0, 1, ... until it succeeds, checks
 * every failure, and returns how many allocations of that kind the path makes. */
static long sweep(const char *what, const char *kind, _Atomic long *counter, create_fn create, destroy_fn destroy,
                  void *arg, long limit)
{
    size_t baseline = live_objects();
    for (long n = 0; n < limit; n++) {
        void *obj = &obj; /* poisoned: a failure must set it to NULL */
        cldp_set_last_error("");
        atomic_store(counter, n);
        cldp_status st = create(arg, &obj);
        long left = atomic_exchange(counter, -1);
        if (st == CLDP_OK) {
            if (left < 0) {
                fprintf(stderr, "FAIL %s: %s allocation %ld failed but creation succeeded: an out-of-memory error was "
                        "swallowed (last message: \"%s\")\n", what, kind, n, cldp_last_error());
                test_failures++;
            }
            CHECK(obj != NULL && obj != (void *)&obj);
            if (obj != (void *)&obj) destroy(obj);
            CHECK(live_objects() == baseline);
            printf("%s: %ld %s allocations, each failed once: clean status, message, nothing left\n", what, n, kind);
            return n;
        }
        int clean = left < 0 && (st == CLDP_ERR_HOST_MEMORY || st == CLDP_ERR_DEVICE_MEMORY) && obj == NULL &&
                    *cldp_last_error() && live_objects() == baseline;
        if (!clean) {
            fprintf(stderr, "FAIL %s: %s allocation %ld -> %s (injection %s), out %s, %zu OpenCL objects left (%zu before): \"%s\"\n",
                    what, kind, n, cldp_status_string(st), left < 0 ? "consumed" : "not reached", obj ? "not NULL" : "NULL",
                    live_objects(), baseline, cldp_last_error());
            test_failures++;
            if (st == CLDP_OK) destroy(obj);
            return n;
        }
        if (getenv("CLDP_TEST_VERBOSE")) printf("  %s %s #%ld: %s: %s\n", what, kind, n, cldp_status_string(st), cldp_last_error());
    }
    fprintf(stderr, "FAIL %s: still failing after %ld injected %s allocation failures\n", what, limit, kind);
    test_failures++;
    return limit;
}

/* ---- what is created ---------------------------------------------------------------------- */

static cldp_status make_trainer(void *arg, void **out)
{
    const cldp_model *m = arg;
    cldp_trainer_options o;
    cldp_trainer_options_init(&o);
    o.devices = test_devices("test_alloc_failure", 2);
    o.batch = 12;
    return cldp_trainer_create(m, &o, (cldp_trainer **)out);
}
static void free_trainer(void *t) { cldp_trainer_destroy(t); }

static cldp_status make_embedded(void *arg, void **out) { return cldp_dataset_embedded(0, (cldp_dataset **)out); }
static void free_dataset(void *d) { cldp_dataset_destroy(d); }

static cldp_status make_from_files(void *arg, void **out)
{
    const char **paths = arg;
    return cldp_dataset_load_idx(paths[0], paths[1], (cldp_dataset **)out);
}

static cldp_status make_fashion_mnist(void *arg, void **out) { return cldp_dataset_load_fashion_mnist(arg, 0, (cldp_dataset **)out); }

typedef struct coll_arg {
    cl_command_queue q[2];
    size_t n;
} coll_arg;
static cldp_status make_collective(void *arg, void **out)
{
    coll_arg *c = arg;
    return cldp_collective_create(c->q, c->n, 1000, (cldp_collective **)out);
}
static void free_collective(void *c) { cldp_collective_destroy(c); }

static cldp_status make_pool(void *arg, void **out) { return cldp_pool_create(3, (cldp_pool **)out); }
static void free_pool(void *p) { cldp_pool_destroy(p); }

static cldp_status make_model(void *arg, void **out) { return cldp_model_create(5, (cldp_model **)out); }
static void free_model(void *m) { cldp_model_destroy(m); }

/* Loading a checkpoint with the N-th host allocation failing: a clean status, and a trainer left
 * exactly as it was (the API promises a refused file changes nothing); returns the allocations. */
static long sweep_checkpoint_load(cldp_trainer *t, const char *path, size_t np)
{
    float *before = malloc(np * sizeof(float)), *now = malloc(np * sizeof(float));
    CHECK_OK(cldp_trainer_get_params(t, before, np));
    long n = 0;
    for (; n < 1000; n++) {
        cldp_set_last_error("");
        atomic_store(&cldp_test_alloc_fail_after, n);
        cldp_status st = cldp_trainer_load_checkpoint(t, path, NULL, 0, NULL);
        long left = atomic_exchange(&cldp_test_alloc_fail_after, -1);
        if (st == CLDP_OK) {
            if (left < 0) {
                fprintf(stderr, "FAIL checkpoint load: host allocation %ld failed but the load succeeded (\"%s\")\n", n, cldp_last_error());
                test_failures++;
            }
            break;
        }
        CHECK_OK(cldp_trainer_get_params(t, now, np));
        if (left >= 0 || st != CLDP_ERR_HOST_MEMORY || !*cldp_last_error() || memcmp(before, now, np * sizeof(float)) != 0) {
            fprintf(stderr, "FAIL checkpoint load: host allocation %ld -> %s (injection %s), parameters %s: \"%s\"\n", n,
                    cldp_status_string(st), left < 0 ? "consumed" : "not reached",
                    memcmp(before, now, np * sizeof(float)) ? "changed" : "unchanged", cldp_last_error());
            test_failures++;
            break;
        }
    }
    CHECK(live_objects() > 0); /* the trainer is alive: sanity of the count */
    printf("checkpoint load: %ld host allocations, each failed once: clean status, message, trainer unchanged\n", n);
    free(before);
    free(now);
    return n;
}

/* Writes the embedded test split's first `n` samples as raw IDX files (so the file reader, not
 * only the gzip path, is swept). */
static int write_idx_files(const char *img_path, const char *lab_path, size_t n)
{
    cldp_dataset *ds = NULL;
    if (cldp_dataset_embedded(0, &ds) != CLDP_OK) return -1;
    size_t f = cldp_dataset_features(ds);
    FILE *fi = fopen(img_path, "wb"), *fl = fopen(lab_path, "wb");
    int ok = fi && fl;
    if (ok) {
        unsigned char h[16] = {0, 0, 8, 3, (unsigned char)(n >> 24), (unsigned char)(n >> 16), (unsigned char)(n >> 8), (unsigned char)n,
                               0, 0, 0, 28, 0, 0, 0, 28};
        unsigned char hl[8] = {0, 0, 8, 1, h[4], h[5], h[6], h[7]};
        fwrite(h, 1, 16, fi);
        fwrite(hl, 1, 8, fl);
        for (size_t i = 0; i < n * f; i++) fputc((int)lrintf(cldp_dataset_images(ds)[i] * 255.0f), fi);
        for (size_t i = 0; i < n; i++) fputc(cldp_dataset_labels(ds)[i], fl);
    }
    if (fi) ok &= fclose(fi) == 0;
    if (fl) ok &= fclose(fl) == 0;
    cldp_dataset_destroy(ds);
    return ok ? 0 : -1;
}

int main(void)
{
    uint64_t seed = test_seed("test_alloc_failure");
    CHECK_OK(cldp_test_control(CLDP_TEST_HOST_ALLOC_FAIL, -1L)); /* arms the hooks: the sweeps set the counters */
    test_rng_state = seed;
    size_t ndev = 2;
    test_devices("test_alloc_failure", ndev); /* also runs discovery and names the devices, once, unarmed */
    Dl_info self;
    if (dladdr((void *)main, &self)) exe_base = self.dli_fbase;
    if (!exe_base || !dlsym(RTLD_NEXT, "clCreateBuffer")) {
        printf("SKIP test_alloc_failure: cannot interpose OpenCL calls to count objects (no dladdr/RTLD_NEXT)\n");
        return TEST_SKIP_CODE;
    }
    printf("test_alloc_failure: %zu devices\n", ndev);
    long host_total = 0, dev_total = 0;

    /* models and pools: the small pieces */
    host_total += sweep("model create", "host", &cldp_test_alloc_fail_after, make_model, free_model, NULL, 100);
    host_total += sweep("pool create (3 workers)", "host", &cldp_test_alloc_fail_after, make_pool, free_pool, NULL, 100);

    /* datasets: the embedded gzip split (inflate, zlib's state, growth) and raw files from disk */
    host_total += sweep("embedded dataset load", "host", &cldp_test_alloc_fail_after, make_embedded, free_dataset, NULL, 1000);
    char img_path[64], lab_path[64];
    snprintf(img_path, sizeof img_path, "/tmp/cldp-allocfail-%ld-img", (long)getpid());
    snprintf(lab_path, sizeof lab_path, "/tmp/cldp-allocfail-%ld-lab", (long)getpid());
    /* 100 samples: 78 KB, so reading the file grows its buffer past the first 64 KB */
    if (write_idx_files(img_path, lab_path, 100) == 0) {
        const char *paths[2] = {img_path, lab_path};
        host_total += sweep("IDX file load", "host", &cldp_test_alloc_fail_after, make_from_files, free_dataset, paths, 1000);
    } else {
        fprintf(stderr, "FAIL: could not write %s and %s\n", img_path, lab_path);
        test_failures++;
    }
    remove(img_path);
    remove(lab_path);
    /* Fashion-MNIST's layout in a directory (raw content under the .gz names: the loader looks at
     * the bytes, not the name) */
    char dir[64], t10k_img[128], t10k_lab[128];
    snprintf(dir, sizeof dir, "/tmp/cldp-allocfail-%ld", (long)getpid());
    snprintf(t10k_img, sizeof t10k_img, "%s/t10k-images-idx3-ubyte.gz", dir);
    snprintf(t10k_lab, sizeof t10k_lab, "%s/t10k-labels-idx1-ubyte.gz", dir);
    if (mkdir(dir, 0700) == 0 && write_idx_files(t10k_img, t10k_lab, 20) == 0) {
        host_total += sweep("Fashion-MNIST directory load", "host", &cldp_test_alloc_fail_after, make_fashion_mnist, free_dataset, dir, 1000);
    } else {
        fprintf(stderr, "FAIL: could not write %s\n", t10k_img);
        test_failures++;
    }
    remove(t10k_img);
    remove(t10k_lab);
    rmdir(dir);

    /* the collective on the test's own context and queues (created before arming) */
    const cldp_dev *devs;
    size_t nall;
    CHECK_OK(cldp_devices(&devs, &nall));
    coll_arg ca = {{NULL, NULL}, 2};
    cl_int err;
    cl_device_id ids[2] = {devs[0].id, devs[1].id};
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)devs[0].platform, 0};
    cl_context ctx = devs[0].platform == devs[1].platform ? clCreateContext(props, 2, ids, NULL, NULL, &err) : NULL;
    if (ctx) {
        for (int r = 0; r < 2; r++) ca.q[r] = clCreateCommandQueue(ctx, ids[r], 0, &err);
        if (ca.q[0] && ca.q[1])
            host_total += sweep("collective create", "host", &cldp_test_alloc_fail_after, make_collective, free_collective, &ca, 100);
        for (int r = 0; r < 2; r++)
            if (ca.q[r]) clReleaseCommandQueue(ca.q[r]);
        clReleaseContext(ctx);
    } else {
        printf("note: devices 0 and 1 are on different platforms; the collective sweep is left out\n");
    }

    /* the trainer: every replica's context, queue, program, kernels and buffers, the staging,
     * the optimizer state, the worker pool */
    cldp_model *m = NULL;
    CHECK_OK(cldp_model_create(7, &m));
    CHECK_OK(cldp_model_add_dense(m, 9, CLDP_ACT_RELU));
    CHECK_OK(cldp_model_add_dense(m, 4, CLDP_ACT_NONE));
    host_total += sweep("trainer create", "host", &cldp_test_alloc_fail_after, make_trainer, free_trainer, m, 1000);
    dev_total += sweep("trainer create", "device", &cldp_test_device_alloc_fail_after, make_trainer, free_trainer, m, 1000);

    /* after all that, a trainer still trains; and loading a checkpoint into it survives running
     * out of memory at any of its allocations */
    cldp_trainer *t = NULL;
    CHECK_OK(make_trainer(m, (void **)&t));
    if (t) {
        CHECK(live_objects() >= 2 * 8); /* the counting works: contexts, queues, programs, kernels, buffers */
        float x[12 * 7];
        int32_t y[12];
        test_fill(x, 12 * 7, -1, 1);
        for (int i = 0; i < 12; i++) y[i] = (int32_t)(test_rand() % 4);
        cldp_step_stats s;
        CHECK_OK(cldp_trainer_step(t, x, y, 12, &s));
        CHECK(isfinite(s.loss) && s.samples == 12);
        char ckpt[64];
        snprintf(ckpt, sizeof ckpt, "/tmp/cldp-allocfail-%ld.ckpt", (long)getpid());
        CHECK_OK(cldp_trainer_save_checkpoint(t, ckpt, NULL, 0));
        CHECK_OK(cldp_trainer_step(t, x, y, 12, &s)); /* now the trainer differs from the file */
        host_total += sweep_checkpoint_load(t, ckpt, cldp_model_param_count(m));
        remove(ckpt);
        cldp_trainer_destroy(t);
    }
    cldp_model_destroy(m);
    CHECK(live_objects() == 0);
    /* CLBlast's programs of the destroyed contexts are gone too (cldp empties its cache when the
     * last replica goes), so no context outlives its trainer */
    if (live_by(0) != 0) {
        fprintf(stderr, "FAIL: %zu OpenCL objects made by CLBlast are still alive after the last trainer was destroyed\n", live_by(0));
        test_failures++;
    }
    CHECK(!tracking_broken);
    printf("test_alloc_failure: %ld host and %ld device allocation failures injected, each ended cleanly\n", host_total, dev_total);
    return test_finish("test_alloc_failure");
}
