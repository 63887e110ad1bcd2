/* test_config — cldp's environment is read once and every variable is validated: a value a
 * variable does not take is refused with a message naming the variable, the value and what it
 * takes, whether it comes from the environment (`test_config env NAME`, run by ctest with
 * NAME set) or through cldp_test_control; an unusable CLDP_CACHE_DIR is said once. */
#define _POSIX_C_SOURCE 200809L
#undef NDEBUG
#include "testutil.h"
#include "config.h"

#include <fcntl.h>
#include <unistd.h>

static cldp_model *tiny(void)
{
    cldp_model *m = NULL;
    CHECK_OK(cldp_model_create(5, &m));
    CHECK_OK(cldp_model_add_dense(m, 3, CLDP_ACT_NONE));
    return m;
}

static cldp_status create(cldp_model *m, const char *devices)
{
    cldp_trainer_options o;
    cldp_trainer_options_init(&o);
    o.devices = devices;
    o.batch = 4;
    cldp_trainer *t = NULL;
    cldp_status st = cldp_trainer_create(m, &o, &t);
    cldp_trainer_destroy(t);
    return st;
}

/* ctest ran us with NAME set to a bad value: creation fails and says why. */
static int env_case(const char *name)
{
    const char *value = getenv(name);
    if (!value) {
        printf("FAIL test_config env %s: the variable is not set\n", name);
        return 1;
    }
    cldp_model *m = tiny();
    CHECK_STATUS(create(m, NULL), CLDP_ERR_INVALID_ARGUMENT); /* refused before any device is selected */
    char want[128];
    snprintf(want, sizeof want, "%s=%s", name, value);
    printf("  %s -> %s\n", want, cldp_last_error());
    CHECK(strstr(cldp_last_error(), want) != NULL && strstr(cldp_last_error(), "use ") != NULL);
    /* so does every call that needs the configuration, device selection included */
    size_t idx[4], n;
    CHECK_STATUS(cldp_device_select("all", idx, 4, &n), CLDP_ERR_INVALID_ARGUMENT);
    /* fixed through the door, the same process goes on */
    CHECK_OK(cldp_test_control(CLDP_TEST_CONFIG, name, (const char *)NULL));
    test_devices("test_config", 1);
    CHECK_OK(create(m, test_devices("test_config", 1)));
    cldp_model_destroy(m);
    return test_finish("test_config (environment)");
}

/* CLDP_CACHE_DIR names a regular file: a build warns once on stderr and goes on uncached. */
static void cache_dir_case(cldp_model *m)
{
    char path[] = "/tmp/cldp-config-XXXXXX", log[] = "/tmp/cldp-config-log-XXXXXX";
    int fd = mkstemp(path), lfd = mkstemp(log);
    CHECK(fd >= 0 && lfd >= 0);
    close(fd);
    CHECK_OK(cldp_test_control(CLDP_TEST_CONFIG, "CLDP_CACHE_DIR", path));
    fflush(stderr);
    int saved = dup(2);
    dup2(lfd, 2);
    CHECK_OK(create(m, test_devices("test_config", 1)));
    CHECK_OK(create(m, test_devices("test_config", 1)));
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char buf[4096] = "";
    ssize_t got = pread(lfd, buf, sizeof buf - 1, 0);
    buf[got > 0 ? got : 0] = 0;
    close(lfd);
    printf("  CLDP_CACHE_DIR=<a file> -> %s", buf);
    char *first = strstr(buf, "CLDP_CACHE_DIR=");
    CHECK(first && strstr(first, "not a directory") && !strstr(first + 1, "CLDP_CACHE_DIR="));
    CHECK_OK(cldp_test_control(CLDP_TEST_CONFIG, "CLDP_CACHE_DIR", (const char *)NULL));
    remove(path);
    remove(log);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_rng_state = test_seed("test_config");
    if (argc == 3 && !strcmp(argv[1], "env")) return env_case(argv[2]);
    test_devices("test_config", 1);

    static const struct { const char *name, *bad, *good; } vars[] = {
        {"CLDP_STAGING", "bogus", "pinned"},     {"CLDP_OVERLAP", "maybe", "off"},
        {"CLDP_EARLY_REDUCE", "perhaps", "on"},  {"CLDP_KERNEL_CACHE", "nah", "off"},
        {"CLDP_DEDUPE", "banana", "0"},          {"CLDP_TUNING", "sometimes", "verbose"},
        {"CLDP_DEVICE_MEMORY_CAP", "lots", "64M"}, {"CLDP_TEST_CHECKPOINT_DELAY_MS", "-3", "10"},
        {"CLDP_HOST_MEMORY_CAP", "heaps", "1G"}, {"CLDP_FAST_KERNELS", "quickly", "off"},
    };
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        CHECK_STATUS(cldp_test_control(CLDP_TEST_CONFIG, vars[i].name, vars[i].bad), CLDP_ERR_INVALID_ARGUMENT);
        char want[96];
        snprintf(want, sizeof want, "%s=%s", vars[i].name, vars[i].bad);
        CHECK(strstr(cldp_last_error(), want) != NULL);
        if (!strstr(cldp_last_error(), want)) printf("  message: %s\n", cldp_last_error());
        CHECK_OK(cldp_config_get(NULL)); /* a refused set leaves no failure behind */
        CHECK_OK(cldp_test_control(CLDP_TEST_CONFIG, vars[i].name, vars[i].good));
        CHECK_OK(cldp_test_control(CLDP_TEST_CONFIG, vars[i].name, (const char *)NULL));
    }
    const cldp_config *cfg;
    CHECK_OK(cldp_test_control(CLDP_TEST_CONFIG, "CLDP_DEVICE_MEMORY_CAP", "1.5G"));
    CHECK_OK(cldp_config_get(&cfg));
    CHECK(cfg->device_memory_cap == 3ull << 29);
    CHECK_OK(cldp_test_control(CLDP_TEST_CONFIG, "CLDP_DEVICE_MEMORY_CAP", (const char *)NULL));
    CHECK(cfg->device_memory_cap == 0);
    CHECK_OK(cldp_test_control(CLDP_TEST_CONFIG, "CLDP_OVERLAP", "OFF"));
    CHECK(cfg->overlap == 0);
    CHECK_OK(cldp_test_control(CLDP_TEST_CONFIG, "CLDP_OVERLAP", (const char *)NULL));
    CHECK(cfg->overlap == 1);
    CHECK_STATUS(cldp_test_control(CLDP_TEST_CONFIG, "CLDP_NO_SUCH_THING", "1"), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_test_control((cldp_test_op)99), CLDP_ERR_INVALID_ARGUMENT);

    cldp_model *m = tiny();
    CHECK_OK(create(m, test_devices("test_config", 1)));
    cache_dir_case(m);
    cldp_model_destroy(m);
    return test_finish("test_config");
}
