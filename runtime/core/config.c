/* config.c — reads cldp's environment variables once, validates each against the values it takes,
 * and keeps them in one configuration (config.h). */
#define _POSIX_C_SOURCE 200809L
#include "config.h"
#include "testhooks.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static cldp_config g_cfg;
static char g_error[1024]; /* the first invalid variable's message; "" when all are valid */
static char g_bad[64];     /* that variable's name */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* ---- value parsers: each sets its field from a value (NULL: the default) or says why not ---- */

typedef int (*parse_fn)(cldp_config *c, const char *v, char *why, size_t why_len);

/* on/off switches: "on", "1", "yes", "true" / "off", "0", "no", "false" */
static int parse_switch(const char *v, int dflt, int *out)
{
    static const char *on[] = {"on", "1", "yes", "true"}, *off[] = {"off", "0", "no", "false"};
    if (!v) {
        *out = dflt;
        return 0;
    }
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(v, on[i])) return *out = 1, 0;
        if (!strcasecmp(v, off[i])) return *out = 0, 0;
    }
    return -1;
}

#define SWITCH_PARSER(fn, field)                                                               \
    static int fn(cldp_config *c, const char *v, char *why, size_t n)                          \
    {                                                                                          \
        if (parse_switch(v, 1, &c->field) == 0) return 0;                                      \
        snprintf(why, n, "use on (the default) or off");                                       \
        return -1;                                                                             \
    }
SWITCH_PARSER(p_overlap, overlap)
SWITCH_PARSER(p_early, early_reduce)
SWITCH_PARSER(p_kcache, kernel_cache)
SWITCH_PARSER(p_dedupe, dedupe)
SWITCH_PARSER(p_fast, fast_kernels)

static int p_staging(cldp_config *c, const char *v, char *why, size_t n)
{
    if (!v || !strcasecmp(v, "auto")) c->staging = CLDP_CFG_STAGING_AUTO;
    else if (!strcasecmp(v, "pinned")) c->staging = CLDP_CFG_STAGING_PINNED;
    else if (!strcasecmp(v, "copy")) c->staging = CLDP_CFG_STAGING_COPY;
    else {
        snprintf(why, n, "use auto (the default: zero-copy where the device shares host memory, else pinned), "
                         "pinned or copy");
        return -1;
    }
    return 0;
}

static int p_tuning(cldp_config *c, const char *v, char *why, size_t n)
{
    int on;
    if (v && !strcasecmp(v, "verbose")) c->tuning = CLDP_CFG_TUNING_VERBOSE;
    else if (parse_switch(v, 1, &on) == 0) c->tuning = on ? CLDP_CFG_TUNING_ON : CLDP_CFG_TUNING_OFF;
    else {
        snprintf(why, n, "use on (the default), off or verbose");
        return -1;
    }
    return 0;
}

static int copy_string(char *dst, size_t cap, const char *v, char *why, size_t n)
{
    if (!v) v = "";
    if (strlen(v) >= cap) {
        snprintf(why, n, "longer than %zu characters", cap - 1);
        return -1;
    }
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

#define STRING_PARSER(fn, field)                                                               \
    static int fn(cldp_config *c, const char *v, char *why, size_t n)                          \
    {                                                                                          \
        return copy_string(c->field, sizeof c->field, v, why, n);                              \
    }
STRING_PARSER(p_cache_dir, cache_dir)
STRING_PARSER(p_tuning_file, tuning_file)
STRING_PARSER(p_devices, devices)
STRING_PARSER(p_split, split)
STRING_PARSER(p_fault, fault)
STRING_PARSER(p_slowdown, slowdown)

/* A byte count through cldp_parse_bytes, its message into `why`. */
static int parse_bytes(uint64_t *out, const char *v, char *why, size_t n)
{
    *out = 0;
    if (!v || !*v) return 0;
    if (cldp_parse_bytes(v, "the value", out) == CLDP_OK) return 0;
    snprintf(why, n, "give bytes, or a number with K, M, G or T (e.g. 64M, \"2 GB\")");
    return -1;
}

static int p_memcap(cldp_config *c, const char *v, char *why, size_t n) { return parse_bytes(&c->device_memory_cap, v, why, n); }
static int p_hostcap(cldp_config *c, const char *v, char *why, size_t n) { return parse_bytes(&c->host_memory_cap, v, why, n); }

static int p_ckpt_delay(cldp_config *c, const char *v, char *why, size_t n)
{
    c->checkpoint_delay_ms = 0;
    if (!v || !*v) return 0;
    char *end;
    double ms = strtod(v, &end);
    if (end == v || *end || !(ms >= 0 && ms <= 600000)) {
        snprintf(why, n, "give milliseconds from 0 to 600000");
        return -1;
    }
    c->checkpoint_delay_ms = ms;
    return 0;
}

static const struct var {
    const char *name;
    parse_fn parse;
} vars[] = {
    {"CLDP_STAGING", p_staging},           {"CLDP_OVERLAP", p_overlap},
    {"CLDP_EARLY_REDUCE", p_early},        {"CLDP_KERNEL_CACHE", p_kcache},
    {"CLDP_CACHE_DIR", p_cache_dir},       {"CLDP_DEDUPE", p_dedupe},
    {"CLDP_TUNING", p_tuning},             {"CLDP_TUNING_FILE", p_tuning_file},
    {"CLDP_DEVICES", p_devices},           {"CLDP_SPLIT", p_split},
    {"CLDP_FAULT", p_fault},               {"CLDP_DEVICE_MEMORY_CAP", p_memcap},
    {"CLDP_TEST_SLOWDOWN", p_slowdown},    {"CLDP_TEST_CHECKPOINT_DELAY_MS", p_ckpt_delay},
    {"CLDP_HOST_MEMORY_CAP", p_hostcap},   {"CLDP_FAST_KERNELS", p_fast},
};
#define NVARS (sizeof vars / sizeof *vars)

/* Applies one variable; on a bad value keeps the default and records the first such failure. */
static int apply(const struct var *v, const char *value)
{
    char why[256] = "";
    if (v->parse(&g_cfg, value, why, sizeof why) == 0) {
        /* a test-only variable in use arms the test hooks (testhooks.h) */
        if (value && (!strncmp(v->name, "CLDP_TEST_", 10) || !strcmp(v->name, "CLDP_FAULT") ||
                      !strcmp(v->name, "CLDP_DEVICE_MEMORY_CAP") || !strcmp(v->name, "CLDP_HOST_MEMORY_CAP")))
            cldp_test_arm();
        return 0;
    }
    v->parse(&g_cfg, NULL, why, sizeof why); /* the default */
    if (!*g_error || !strcmp(g_bad, v->name)) {
        snprintf(g_error, sizeof g_error, "%s=%s is not a value it takes: %s", v->name, value, why);
        snprintf(g_bad, sizeof g_bad, "%s", v->name);
    }
    return -1;
}

static void read_env(void)
{
    for (size_t i = 0; i < NVARS; i++) {
        const char *value = getenv(vars[i].name);
        apply(&vars[i], value && *value ? value : NULL);
    }
}

cldp_status cldp_config_get(const cldp_config **cfg)
{
    pthread_once(&g_once, read_env);
    if (cfg) *cfg = &g_cfg;
    if (*g_error) return cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "%s", g_error);
    return CLDP_OK;
}

cldp_status cldp_config_set(const char *name, const char *value)
{
    pthread_once(&g_once, read_env);
    REQUIRE(name, "cldp_config_set: name is NULL");
    for (size_t i = 0; i < NVARS; i++) {
        if (strcmp(vars[i].name, name)) continue;
        if (!strcmp(g_bad, name)) *g_error = *g_bad = 0; /* this variable's earlier failure */
        if (apply(&vars[i], value && *value ? value : NULL) != 0) {
            cldp_status st = cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "%s", g_error);
            *g_error = *g_bad = 0; /* refused here, so it leaves no failure behind */
            return st;
        }
        return CLDP_OK;
    }
    return cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "%s is not a cldp setting (see README.md, \"Environment\")", name);
}

/* ---- the test door's internal side ----------------------------------------------------- */

#ifndef CLDP_NO_TEST_HOOKS
_Atomic int cldp_test_armed;
void cldp_test_arm(void) { atomic_store(&cldp_test_armed, 1); }
#else
void cldp_test_arm(void) {}
#endif
void (*cldp_test_worker_delay)(size_t rank);

/* ---- byte counts ----------------------------------------------------------------------- */

cldp_status cldp_parse_bytes(const char *s, const char *what, uint64_t *out)
{
    REQUIRE(s && what && out, "cldp_parse_bytes: bad arguments");
    char *end;
    errno = 0;
    while (isspace((unsigned char)*s)) s++;
    double v = *s == '-' ? -1 : strtod(s, &end);
    if (*s == '-' || end == s || errno == ERANGE || !isfinite(v) || v < 0)
        return cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "%s \"%s\" is not a byte count; give bytes, or a number with K, M or G (e.g. 64M)", what, s);
    double mul = 1;
    while (isspace((unsigned char)*end)) end++;
    switch (toupper((unsigned char)*end)) {
    case 'K': mul = 1024.0; end++; break;
    case 'M': mul = 1024.0 * 1024; end++; break;
    case 'G': mul = 1024.0 * 1024 * 1024; end++; break;
    case 'T': mul = 1024.0 * 1024 * 1024 * 1024; end++; break;
    default: break;
    }
    if (mul > 1 && (*end == 'i' || *end == 'I')) end++;
    if (*end == 'b' || *end == 'B') end++;
    while (isspace((unsigned char)*end)) end++;
    if (*end || v * mul >= 18446744073709551616.0)
        return cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "%s \"%s\" is not a byte count; give bytes, or a number with K, M or G (e.g. 64M)", what, s);
    *out = (uint64_t)(v * mul);
    return CLDP_OK;
}
