/* testspec.c — the parsers of the test-only injection specs (testspec.h). */
#include "testspec.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cldp_status cldp_fault_spec_parse(const char *spec, const char *what, const char *at, const char *const *kinds,
                                  size_t nkinds, size_t n_ranks, cldp_fault_item *items, size_t cap, size_t *n)
{
    char names[256] = "";
    for (size_t k = 0; k < nkinds; k++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", k ? (k + 1 < nkinds ? ", " : " or ") : "", kinds[k]);
    *n = 0;
    for (const char *p = spec ? spec : ""; *p;) {
        char kind[16] = "";
        unsigned long long rank, step;
        double ms = 5000;
        int used = 0;
        REQUIRE(sscanf(p, "%llu:%llu:%15[a-z_]%n", &rank, &step, kind, &used) == 3 && *n < cap,
                "%s \"%s\": expected RANK:%s:KIND[:MS] (KIND %s), at most %zu", what, spec, at, names, cap);
        p += used;
        if (*p == ':') {
            char *end;
            ms = strtod(p + 1, &end);
            REQUIRE(end != p + 1 && ms >= 0 && ms < 1e7, "%s \"%s\": bad stall time", what, spec);
            p = end;
        }
        size_t k = 0;
        while (k < nkinds && strcmp(kinds[k], kind)) k++;
        REQUIRE(k < nkinds, "%s \"%s\": unknown kind \"%s\" (%s)", what, spec, kind, names);
        REQUIRE(rank < n_ranks, "%s \"%s\": rank %llu, but there are %zu devices", what, spec, rank, n_ranks);
        items[(*n)++] = (cldp_fault_item){(size_t)rank, step, k, ms};
        if (*p == ',') p++;
        else REQUIRE(!*p, "%s \"%s\": unexpected \"%s\"", what, spec, p);
    }
    return CLDP_OK;
}

cldp_status cldp_slowdown_parse(const char *spec, size_t n, double *factor)
{
    REQUIRE(factor, "cldp_slowdown_parse: factor is NULL");
    for (size_t r = 0; r < n; r++) factor[r] = 1.0;
    if (!spec) return CLDP_OK;
    const char *p = spec;
    while (isspace((unsigned char)*p)) p++;
    while (*p) {
        char *end;
        errno = 0;
        unsigned long rank = isdigit((unsigned char)*p) ? strtoul(p, &end, 10) : (unsigned long)-1;
        if (rank == (unsigned long)-1 || *end != ':')
            return cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "CLDP_TEST_SLOWDOWN \"%s\": expected RANK:FACTOR[,RANK:FACTOR...], e.g. \"1:3\"", spec);
        const char *f = end + 1;
        double v = strtod(f, &end);
        if (end == f || !isfinite(v) || v < 1 || v > 1000)
            return cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "CLDP_TEST_SLOWDOWN \"%s\": the factor of rank %lu must be a number from 1 to 1000", spec, rank);
        if (rank >= n)
            return cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "CLDP_TEST_SLOWDOWN \"%s\": rank %lu, but %zu device(s) are selected", spec, rank, n);
        factor[rank] = v;
        p = end;
        while (isspace((unsigned char)*p)) p++;
        if (*p == ',') p++;
        else if (*p) return cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "CLDP_TEST_SLOWDOWN \"%s\": unexpected \"%s\"", spec, p);
        while (isspace((unsigned char)*p)) p++;
    }
    return CLDP_OK;
}
