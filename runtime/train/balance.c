/* balance.c — dividing the batch between devices: split specs, shard sizes from weights, the
 * byte counts, and the test-only slowdown (the balancer is balancer.c, the memory plan memplan.c).
 * No OpenCL here: everything is a pure function of its inputs, so the tests can drive it. */
#define _POSIX_C_SOURCE 200809L
#include "balance.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- split spec and shards ------------------------------------------------------------- */

static int word_is(const char *s, const char *word)
{
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(word);
    for (size_t i = 0; i < n; i++, s++)
        if (tolower((unsigned char)*s) != word[i]) return 0;
    while (isspace((unsigned char)*s)) s++;
    return *s == 0;
}

cldp_status cldp_split_parse(const char *spec, size_t n, double *weights, int *automatic)
{
    REQUIRE(weights && automatic && n > 0 && n <= CLDP_BALANCE_MAX, "cldp_split_parse: bad arguments");
    for (size_t r = 0; r < n; r++) weights[r] = 1.0;
    *automatic = 0;
    if (!spec || word_is(spec, "") || word_is(spec, "auto")) {
        *automatic = 1;
        return CLDP_OK;
    }
    if (word_is(spec, "even")) return CLDP_OK;
    const char *p = spec;
    size_t count = 0;
    double sum = 0, tmp[CLDP_BALANCE_MAX];
    for (;;) {
        char *end;
        while (isspace((unsigned char)*p)) p++;
        errno = 0;
        double w = strtod(p, &end);
        if (end == p || errno == ERANGE || !isfinite(w)) {
            size_t len = strcspn(p, ",");
            return cldp_fail(CLDP_ERR_INVALID_ARGUMENT,
                             "split \"%s\": \"%.*s\" is not a number; give one weight >= 0 per device, "
                             "separated by commas (e.g. \"3,1\" for 2 devices), or \"auto\" or \"even\"",
                             spec, (int)(len > 40 ? 40 : len), p);
        }
        if (w < 0)
            return cldp_fail(CLDP_ERR_INVALID_ARGUMENT,
                             "split \"%s\": weight %zu (rank %zu) is %g; weights must be >= 0 (a device with weight 0 "
                             "gets no samples)", spec, count + 1, count, w);
        if (count < CLDP_BALANCE_MAX) tmp[count] = w;
        count++;
        sum += w;
        p = end;
        while (isspace((unsigned char)*p)) p++;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == 0) break;
        return cldp_fail(CLDP_ERR_INVALID_ARGUMENT,
                         "split \"%s\": unexpected \"%s\" after weight %zu (rank %zu); give one weight >= 0 per device, "
                         "separated by commas (e.g. \"3,1\" for 2 devices)",
                         spec, p, count, count - 1);
    }
    if (count != n)
        return cldp_fail(CLDP_ERR_INVALID_ARGUMENT,
                         "split \"%s\" gives %zu weight(s) but %zu device(s) are selected; give one weight per device "
                         "in the order of the selection (cldp-devices lists them)",
                         spec, count, n);
    if (!(sum > 0) || !isfinite(sum))
        return cldp_fail(CLDP_ERR_INVALID_ARGUMENT,
                         "split \"%s\": the weights add up to %g; at least one device must have a weight above 0", spec, sum);
    memcpy(weights, tmp, n * sizeof *weights);
    return CLDP_OK;
}

cldp_status cldp_split_check(const double *w, size_t n, const char *who)
{
    REQUIRE(w, "%s: weights are NULL", who);
    REQUIRE(n > 0 && n <= CLDP_BALANCE_MAX, "%s: %zu weights (1 to %d)", who, n, CLDP_BALANCE_MAX);
    double sum = 0;
    for (size_t r = 0; r < n; r++) {
        REQUIRE(isfinite(w[r]) && w[r] >= 0, "%s: weight %zu (rank %zu) is %g; weights must be finite and >= 0", who, r + 1, r,
                w[r]);
        sum += w[r];
    }
    REQUIRE(sum > 0 && isfinite(sum), "%s: the weights add up to %g; at least one must be above 0", who, sum);
    return CLDP_OK;
}

void cldp_split_shards(const double *w, size_t n, size_t total, size_t *len)
{
    double sum = 0, frac[CLDP_BALANCE_MAX];
    for (size_t r = 0; r < n; r++) sum += w[r];
    size_t given = 0;
    for (size_t r = 0; r < n; r++) {
        double q = (double)total * (w[r] / sum);
        double f = floor(q);
        if (f > (double)total) f = (double)total;
        len[r] = (size_t)f;
        frac[r] = q - f;
        given += len[r];
    }
    /* Rounding of the quotas may overshoot by a sample: take it back from the smallest remainder. */
    while (given > total) {
        size_t best = n;
        for (size_t r = 0; r < n; r++)
            if (len[r] > 0 && (best == n || frac[r] < frac[best])) best = r;
        len[best]--;
        frac[best] += 1.0;
        given--;
    }
    /* The leftover samples (fewer than n) go to the largest remainders; a device that took one
     * drops behind every other, and a zero weight never takes one. */
    while (given < total) {
        size_t best = n;
        for (size_t r = 0; r < n; r++)
            if (w[r] > 0 && (best == n || frac[r] > frac[best])) best = r;
        len[best]++;
        frac[best] -= 1.0;
        given++;
    }
}
