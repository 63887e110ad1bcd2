/* fuzz_split.c — libFuzzer target for the device split spec (--split, cldp_trainer_options.split),
 * parsed by cldp_split_parse, and for the shard sizes cldp_split_shards makes from what it accepts.
 *
 * Input framing: byte 0 gives the number of devices (1 + byte mod 64); bytes 1-2, little-endian,
 * the batch to split; the rest, up to a NUL, is the spec. Seeds: tests/fuzz/corpus/fuzz_split. */
#include "fuzz.h"
#include "balance.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) return 0;
    size_t n = 1 + data[0] % CLDP_BALANCE_MAX, total = (size_t)data[1] | (size_t)data[2] << 8;
    size_t len = size - 3;
    const uint8_t *nul = memchr(data + 3, 0, len);
    if (nul) len = (size_t)(nul - (data + 3));
    char *spec = malloc(len + 1); /* exactly the string: reading past it is caught */
    if (!spec) return 0;
    memcpy(spec, data + 3, len);
    spec[len] = 0;

    double w[CLDP_BALANCE_MAX];
    int automatic = -1;
    cldp_status st = cldp_split_parse(spec, n, w, &automatic);
    if (st == CLDP_OK) {
        EXPECT(automatic == 0 || automatic == 1);
        EXPECT(cldp_split_check(w, n, "fuzz") == CLDP_OK); /* what the parser accepts, the API accepts */
        size_t shard[CLDP_BALANCE_MAX], sum = 0;
        double wsum = 0;
        for (size_t r = 0; r < n; r++) wsum += w[r];
        cldp_split_shards(w, n, total, shard);
        for (size_t r = 0; r < n; r++) {
            sum += shard[r];
            if (w[r] == 0) EXPECT(shard[r] == 0);
            /* largest remainder: every device within one sample of its exact quota */
            double quota = (double)total * (w[r] / wsum);
            EXPECT(fabs((double)shard[r] - quota) <= 1.0 + 1e-9 * (double)total);
        }
        EXPECT(sum == total);
    } else {
        EXPECT(st == CLDP_ERR_INVALID_ARGUMENT);
        EXPECT(strstr(cldp_last_error(), "split") != NULL); /* the message names what it is about */
    }
    free(spec);
    return 0;
}
