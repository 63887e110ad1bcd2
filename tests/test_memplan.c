/* test_memplan — the memory plan: what a replica needs at a number of rows (training and
 * forward-only), the most rows a device holds, the refusal message naming the device, the bytes
 * and what to select instead; the joint budget of devices that share host memory on made-up
 * devices, for training and for a server's forward-only replicas; the byte-count parser; and on
 * two real PoCL devices (which share host memory) a server under CLDP_HOST_MEMORY_CAP: created
 * with its batches cut to the common row count that fits (answers equal to an uncapped server's,
 * atol 1e-6), refused naming both devices when only one fits, created on that one. */
#undef NDEBUG
#include "balance.h"
#include "config.h"
#include "memplan.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>

/* ---- memory plan ----------------------------------------------------------------------- */

/* Devices that share host memory, budgeted together (cldp_mem_plan_devices) on made-up devices:
 * two 5 GiB PoCL-like devices and a discrete GPU. */
static cldp_device_info fake_device(unsigned platform, unsigned device, const char *name, uint64_t mem, int shares_host)
{
    cldp_device_info d;
    memset(&d, 0, sizeof d);
    d.platform_index = platform, d.device_index = device;
    snprintf(d.name, sizeof d.name, "%s", name);
    d.global_mem_bytes = mem, d.max_alloc_bytes = mem / 4, d.host_unified_memory = shares_host;
    return d;
}

/* The host's avail for a joint budget of `budget` bytes beside `fixed` (the trainer's vectors and
 * the drivers' reserve): avail less a sixteenth less fixed. */
static cldp_host_mem host_for(uint64_t budget, uint64_t fixed)
{
    cldp_host_mem h = {0, "made up"};
    h.avail = (budget + fixed) / 15 * 16 + 32;
    while (h.avail - h.avail / 16 - fixed > budget) h.avail--;
    while (h.avail - h.avail / 16 - fixed < budget) h.avail++;
    return h;
}

static void test_shared_memory(const cldp_model *m, const cldp_mem_need *one)
{
    cldp_device_info a = fake_device(0, 0, "cpu A", 5ull << 30, 1), b = fake_device(0, 1, "cpu B", 5ull << 30, 1),
                     gpu = fake_device(1, 0, "gpu", 8ull << 30, 0);
    const cldp_device_info *ab[2] = {&a, &b}, *agb[3] = {&a, &gpu, &b};
    size_t rows[3];
    uint64_t vectors = 6 * m->nparams * sizeof(float), fixed = vectors + CLDP_HOST_RESERVE; /* what the plan keeps aside */

    /* plenty of host memory: every device holds the whole batch */
    cldp_host_mem plenty = {64ull << 30, "made up"}, unknown = {0, ""};
    CHECK_OK(cldp_mem_plan_devices(m, 256, ab, 2, 0, &plenty, vectors, rows));
    CHECK(rows[0] == 256 && rows[1] == 256);
    CHECK_OK(cldp_mem_plan_devices(m, 256, ab, 2, 0, &unknown, vectors, rows));
    CHECK(rows[0] == 256 && rows[1] == 256);

    /* room for both at 40 rows but not 41: both are cut to 40, the GPU keeps the whole batch */
    cldp_mem_need n40, n41;
    cldp_mem_estimate(m, 40, &n40);
    cldp_mem_estimate(m, 41, &n41);
    uint64_t batch40 = 40 * (m->inputs + 1) * sizeof(float), batch41 = 41 * (m->inputs + 1) * sizeof(float);
    cldp_host_mem h = host_for(2 * n40.total + batch40 + (2 * n41.total + batch41 - 2 * n40.total - batch40) / 2, fixed);
    CHECK_OK(cldp_mem_plan_devices(m, 256, agb, 3, 0, &h, vectors, rows));
    printf("  shared host memory, room for 2 x 40 rows: rows %zu / %zu (GPU) / %zu\n", rows[0], rows[1], rows[2]);
    CHECK(rows[0] == 40 && rows[2] == 40 && rows[1] == 256);

    /* room for one of them at one row: refused naming both, suggesting one of them with the GPU */
    uint64_t batch1 = (m->inputs + 1) * sizeof(float);
    h = host_for(one->total + one->total / 2 + batch1, fixed);
    CHECK_STATUS(cldp_mem_plan_devices(m, 256, agb, 3, 0, &h, vectors, rows), CLDP_ERR_DEVICE_MEMORY);
    const char *msg = cldp_last_error();
    printf("  shared host memory, room for one: %s\n", msg);
    char needs[64];
    snprintf(needs, sizeof needs, "together they need %llu bytes", (unsigned long long)(2 * one->total));
    CHECK(strstr(msg, "2 devices share host memory") && strstr(msg, "device 0:0 (cpu A)") && strstr(msg, "device 0:1 (cpu B)") &&
          strstr(msg, needs) && strstr(msg, "at most 1 of them fit") && strstr(msg, "CLDP_DEVICES=0:0,1:0") && !strstr(msg, "0:1,"));
    const cldp_device_info *suggested[2] = {&a, &gpu};
    CHECK_OK(cldp_mem_plan_devices(m, 256, suggested, 2, 0, &h, vectors, rows)); /* the suggestion fits */

    /* room for none: says so, suggests no selection */
    h = host_for(one->total / 2 + batch1, fixed);
    CHECK_STATUS(cldp_mem_plan_devices(m, 256, ab, 2, 0, &h, vectors, rows), CLDP_ERR_DEVICE_MEMORY);
    CHECK(strstr(cldp_last_error(), "not even one of them fits") && !strstr(cldp_last_error(), "CLDP_DEVICES="));

    /* a device too small for the model: the refusal suggests only devices that fit, never an
     * identical one that fails the same way */
    cldp_device_info small_a = fake_device(0, 0, "small A", one->total, 0), small_b = fake_device(0, 1, "small B", one->total, 0);
    const cldp_device_info *two_small[2] = {&small_a, &small_b}, *small_gpu[2] = {&small_a, &gpu};
    CHECK_STATUS(cldp_mem_plan_devices(m, 256, two_small, 2, 0, &plenty, vectors, rows), CLDP_ERR_DEVICE_MEMORY);
    printf("  two identical devices too small: %s\n", cldp_last_error());
    CHECK(strstr(cldp_last_error(), "device 0:0 (small A)") && strstr(cldp_last_error(), "none of the other selected devices") &&
          !strstr(cldp_last_error(), "CLDP_DEVICES="));
    CHECK_STATUS(cldp_mem_plan_devices(m, 256, small_gpu, 2, 0, &plenty, vectors, rows), CLDP_ERR_DEVICE_MEMORY);
    CHECK(strstr(cldp_last_error(), "CLDP_DEVICES=1:0") != NULL);
    /* the test cap applies to every device: none is suggested */
    CHECK_STATUS(cldp_mem_plan_devices(m, 256, ab, 2, one->total - 1, &plenty, vectors, rows), CLDP_ERR_DEVICE_MEMORY);
    CHECK(!strstr(cldp_last_error(), "CLDP_DEVICES="));

    /* the host as the process sees it: a figure and where it comes from */
    cldp_host_mem real;
    cldp_host_memory(0, &real);
    printf("  this host: %llu bytes available (%s)\n", (unsigned long long)real.avail, real.what);
    CHECK(real.avail > 0 && real.what[0]);
    cldp_host_memory(1 << 20, &real);
    CHECK(real.avail == 1 << 20 && strstr(real.what, "CLDP_HOST_MEMORY_CAP"));
}

/* The forward-only plan on made-up devices: it counts less than training's, so the same host
 * budget holds 30 forward rows each and not one training row; cut to a common row count; refused saying "server". */
static void test_shared_memory_forward(const cldp_model *m)
{
    cldp_device_info a = fake_device(0, 0, "cpu A", 5ull << 30, 1), b = fake_device(0, 1, "cpu B", 5ull << 30, 1);
    const cldp_device_info *ab[2] = {&a, &b};
    size_t rows[2], trows[2];
    uint64_t vectors = 2 * m->nparams * sizeof(float), fixed = vectors + CLDP_HOST_RESERVE;
    cldp_mem_need f1, f30, f31, t1;
    cldp_mem_estimate_forward(m, 1, &f1);
    cldp_mem_estimate_forward(m, 30, &f30);
    cldp_mem_estimate_forward(m, 31, &f31);
    cldp_mem_estimate(m, 1, &t1);
    CHECK(f1.total < t1.total && f1.grads == 0);
    uint64_t b30 = 30 * (m->inputs + 1) * sizeof(float), b31 = 31 * (m->inputs + 1) * sizeof(float);
    cldp_host_mem h = host_for(2 * f30.total + b30 + (2 * f31.total + b31 - 2 * f30.total - b30) / 2, fixed);
    CHECK_OK(cldp_mem_plan_devices_forward(m, 256, ab, 2, 0, &h, vectors, rows));
    printf("  shared host memory, room for 2 x 30 forward rows: rows %zu / %zu\n", rows[0], rows[1]);
    CHECK(rows[0] == 30 && rows[1] == 30);
    /* the same budget does not hold one training row each (gradients, CLBlast's backward scratch) */
    CHECK(2 * t1.total > 2 * f30.total + b30);
    CHECK_STATUS(cldp_mem_plan_devices(m, 256, ab, 2, 0, &h, vectors, trows), CLDP_ERR_DEVICE_MEMORY);
    CHECK(strstr(cldp_last_error(), "the trainer") != NULL);
    uint64_t b1 = (m->inputs + 1) * sizeof(float);
    h = host_for(f1.total + f1.total / 2 + b1, fixed);
    CHECK_STATUS(cldp_mem_plan_devices_forward(m, 256, ab, 2, 0, &h, vectors, rows), CLDP_ERR_DEVICE_MEMORY);
    CHECK(strstr(cldp_last_error(), "the server") && strstr(cldp_last_error(), "at most 1 of them fit"));
}


static void test_memory(void)
{
    cldp_model *m;
    CHECK_OK(cldp_model_create(784, &m));
    CHECK_OK(cldp_model_add_dense(m, 256, CLDP_ACT_RELU));
    CHECK_OK(cldp_model_add_dense(m, 10, CLDP_ACT_NONE));
    cldp_mem_need one, many;
    cldp_mem_estimate(m, 1, &one);
    cldp_mem_estimate(m, 100, &many);
    CHECK(one.params == m->nparams * 4 && one.grads == one.params);
    CHECK(many.activations > one.activations && many.total > one.total && one.scratch > 0 && one.staging > 0);
    CHECK(one.total == one.params + one.grads + one.activations + one.scratch + one.staging);
    printf("  memory estimate, 784-256-10: %llu bytes for 1 row, %llu for 100 rows\n", (unsigned long long)one.total,
           (unsigned long long)many.total);

    /* the rows that fit: exactly k when the cap is the estimate for k rows */
    size_t rows = 0;
    for (size_t k = 1; k <= 200; k += 37) {
        cldp_mem_need nk;
        cldp_mem_estimate(m, k, &nk);
        CHECK_OK(cldp_mem_plan(m, 256, "device 9:9 (test)", 1ull << 40, 0, nk.total, "", &rows));
        CHECK(rows == k);
        CHECK_OK(cldp_mem_plan(m, 256, "device 9:9 (test)", 1ull << 40, 0, nk.total + 1, "", &rows));
        CHECK(rows == k);
    }
    CHECK_OK(cldp_mem_plan(m, 256, "d", 1ull << 40, 0, 0, "", &rows));
    CHECK(rows == 256); /* plenty: the whole batch */
    CHECK_OK(cldp_mem_plan(m, 256, "d", 0, 0, 0, "", &rows));
    CHECK(rows == 256); /* a driver that reports no memory size is not refused */
    /* the largest single buffer limits the rows too */
    cldp_mem_need n50;
    cldp_mem_estimate(m, 50, &n50);
    CHECK_OK(cldp_mem_plan(m, 256, "d", 1ull << 40, n50.largest_buffer, 0, "", &rows));
    CHECK(rows >= 50 && rows < 256);

    /* refusal: names the device, the bytes needed and usable, and how to leave it out */
    CHECK_STATUS(cldp_mem_plan(m, 256, "device 0:1 (tiny)", 1ull << 40, 0, one.total - 1, "0:0", &rows), CLDP_ERR_DEVICE_MEMORY);
    const char *msg = cldp_last_error();
    char needs[64], has[64];
    snprintf(needs, sizeof needs, "needs %llu bytes", (unsigned long long)one.total);
    snprintf(has, sizeof has, "has %llu bytes", (unsigned long long)(one.total - 1));
    printf("  refusal: %s\n", msg);
    CHECK(strstr(msg, "device 0:1 (tiny)") && strstr(msg, needs) && strstr(msg, has) && strstr(msg, "CLDP_DEVICES=0:0") &&
          strstr(msg, "--devices"));
    CHECK_STATUS(cldp_mem_plan(m, 256, "device 0:0 (x)", 1000, 0, 0, "", &rows), CLDP_ERR_DEVICE_MEMORY);
    CHECK(strstr(cldp_last_error(), "only device"));
    CHECK_STATUS(cldp_mem_plan(m, 256, "device 0:0 (x)", 1ull << 40, one.params - 1, 0, "1:0", &rows), CLDP_ERR_DEVICE_MEMORY);
    CHECK(strstr(cldp_last_error(), "CL_DEVICE_MAX_MEM_ALLOC_SIZE"));
    CHECK(cldp_mem_usable(1600, 0) == 1500 && cldp_mem_usable(1600, 100) == 100 && cldp_mem_usable(1600, 5000) == 1500);
    test_shared_memory(m, &one);
    test_shared_memory_forward(m);
    cldp_model_destroy(m);

    uint64_t v;
    CHECK_OK(cldp_parse_bytes("65536", "cap", &v)); CHECK(v == 65536);
    CHECK_OK(cldp_parse_bytes("64K", "cap", &v));   CHECK(v == 65536);
    CHECK_OK(cldp_parse_bytes("12MiB", "cap", &v)); CHECK(v == 12ull << 20);
    CHECK_OK(cldp_parse_bytes("1.5g", "cap", &v));  CHECK(v == 3ull << 29);
    CHECK_OK(cldp_parse_bytes("2 GB", "cap", &v));  CHECK(v == 2ull << 30);
    const char *bad[] = {"", "-1", "12Q", "K", "1e30T", "abc", "5 M x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_STATUS(cldp_parse_bytes(bad[i], "CLDP_DEVICE_MEMORY_CAP", &v), CLDP_ERR_INVALID_ARGUMENT);
        CHECK(strstr(cldp_last_error(), "CLDP_DEVICE_MEMORY_CAP") != NULL);
    }
}

/* A server on two real PoCL devices (sharing host memory) under CLDP_HOST_MEMORY_CAP. */
static void set_host_cap(uint64_t bytes)
{
    char v[32];
    snprintf(v, sizeof v, "%llu", (unsigned long long)bytes);
    CHECK_OK(cldp_test_control(CLDP_TEST_CONFIG, "CLDP_HOST_MEMORY_CAP", v));
}

static void test_server_budget(void)
{
    const char *devs = test_devices("test_memplan", 2);
    if (!devs) {
        printf("SKIP the server's joint budget: it needs two devices\n");
        return;
    }
    cldp_device_info d0;
    cldp_model *m;
    CHECK_OK(cldp_model_create(300, &m));
    CHECK_OK(cldp_model_add_dense(m, 200, CLDP_ACT_RELU));
    CHECK_OK(cldp_model_add_dense(m, 10, CLDP_ACT_NONE));
    size_t np = cldp_model_param_count(m), rows = 64;
    float *p = malloc(np * sizeof(float)), *x = malloc(rows * 300 * sizeof(float)), *want = malloc(rows * 10 * sizeof(float)),
          *got = malloc(rows * 10 * sizeof(float));
    CHECK(p && x && want && got);
    CHECK_OK(cldp_model_init_params(m, test_rand(), p, np));
    for (size_t i = 0; i < rows * 300; i++) x[i] = (float)test_uniform(-1, 1);
    cldp_server_options o;
    cldp_server_options_init(&o);
    o.devices = devs;
    o.max_batch = 64;
    cldp_server *s = NULL;
    CHECK_OK(cldp_server_create(m, p, np, &o, &s));
    CHECK_OK(cldp_server_device_info(s, 0, &d0));
    int shared = d0.host_unified_memory;
    CHECK_OK(cldp_server_infer(s, x, rows, want, 30000));
    cldp_server_destroy(s);
    if (!shared) {
        printf("SKIP the server's joint budget: the devices do not share host memory\n");
        goto out;
    }
    uint64_t fixed = 2 * m->nparams * sizeof(float) + CLDP_HOST_RESERVE, b8 = 8 * (m->inputs + 1) * sizeof(float),
             b1 = (m->inputs + 1) * sizeof(float);
    cldp_mem_need f1, f8, f9;
    cldp_mem_estimate_forward(m, 1, &f1);
    cldp_mem_estimate_forward(m, 8, &f8);
    cldp_mem_estimate_forward(m, 9, &f9);

    /* room for 2 x 8 rows: created, every batch at most 8 rows, the same answers */
    cldp_host_mem h = host_for(2 * f8.total + b8 + (f9.total - f8.total), fixed);
    set_host_cap(h.avail);
    CHECK_OK(cldp_server_create(m, p, np, &o, &s));
    CHECK_OK(cldp_server_infer(s, x, rows, got, 30000));
    cldp_server_stats st;
    CHECK_OK(cldp_server_stats_get(s, SIZE_MAX, &st));
    printf("  server under a host cap for 2 x 8 rows: %llu batches for %zu rows\n", (unsigned long long)st.batches, rows);
    CHECK(st.batches >= rows / 8 && st.rows == rows);
    double worst = 0;
    for (size_t i = 0; i < rows * 10; i++)
        if (fabs(got[i] - want[i]) > worst) worst = fabs(got[i] - want[i]);
    CHECK(worst <= 1e-6);
    cldp_server_destroy(s);

    /* room for one device at one row: refused naming both; the first alone is created */
    h = host_for(f1.total + f1.total / 2 + b1, fixed);
    set_host_cap(h.avail);
    s = NULL;
    CHECK_STATUS(cldp_server_create(m, p, np, &o, &s), CLDP_ERR_DEVICE_MEMORY);
    const char *msg = cldp_last_error();
    printf("  server under a host cap for one row of one device: %s\n", msg);
    CHECK(strstr(msg, "2 devices share host memory") && strstr(msg, "the server") && strstr(msg, "at most 1 of them fit"));
    char first[16];
    snprintf(first, sizeof first, "%u:%u", d0.platform_index, d0.device_index);
    o.devices = first;
    CHECK_OK(cldp_server_create(m, p, np, &o, &s));
    CHECK_OK(cldp_server_infer(s, x, 4, got, 30000));
    cldp_server_destroy(s);
out:
    CHECK_OK(cldp_test_control(CLDP_TEST_CONFIG, "CLDP_HOST_MEMORY_CAP", NULL));
    free(p), free(x), free(want), free(got);
    cldp_model_destroy(m);
}

int main(void)
{
    test_rng_state = test_seed("test_memplan");
    test_memory();
    test_server_budget();
    return test_finish("test_memplan");
}
