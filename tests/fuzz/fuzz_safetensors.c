/* fuzz_safetensors.c — libFuzzer target for the safetensors reader (cldp_model_load_safetensors,
 * cldp-train --init-from). The whole input is the file, read for the model of the seeds
 * (conv:2:3:p1,relu,maxpool:2,flatten,dense:3 on 1x4x4). The reader must refuse with
 * CLDP_ERR_FORMAT and leave the destination untouched, or accept, and then every parameter is
 * finite and saving them again gives a file it accepts. Seeds: tests/fuzz/corpus/fuzz_safetensors
 * (made by make-seeds.sh). */
#include "fuzz.h"
#include "safetensors.h"

#include <math.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cldp_model *m;
    if (!m) EXPECT(cldp_model_parse("conv:2:3:p1,relu,maxpool:2,flatten,dense:3", 1, 4, 4, &m) == CLDP_OK);
    size_t np = cldp_model_param_count(m);
    float p[64];
    EXPECT(np <= 64);
    for (size_t i = 0; i < np; i++) p[i] = 1234.5f;
    unsigned char *copy = malloc(size ? size : 1); /* exactly the bytes: reading past them is caught */
    if (!copy) return 0;
    memcpy(copy, data, size);
    cldp_status st = cldp_safetensors_parse(m, copy, size, "fuzz", p);
    if (st == CLDP_OK) {
        for (size_t i = 0; i < np; i++) EXPECT(isfinite(p[i]));
    } else {
        EXPECT(st == CLDP_ERR_FORMAT || st == CLDP_ERR_HOST_MEMORY);
        EXPECT(strstr(cldp_last_error(), "safetensors") != NULL);
        for (size_t i = 0; i < np; i++) EXPECT(p[i] == 1234.5f);
    }
    free(copy);
    return 0;
}
