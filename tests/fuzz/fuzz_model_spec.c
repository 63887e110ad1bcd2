/* fuzz_model_spec.c — libFuzzer target for the model spec parser (cldp_model_add_spec, the
 * --model of cldp-train). Input framing: bytes 0-2 give the input shape (1 + byte mod 16 each);
 * the rest, up to a NUL, is the spec. What is accepted must describe itself as a spec that parses
 * again to the same model; what is refused must say so as CLDP_ERR_INVALID_ARGUMENT naming the
 * spec, and leave the model without layers. Seeds: tests/fuzz/corpus/fuzz_model_spec. */
#include "fuzz.h"
#include "model.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) return 0;
    size_t c = 1 + data[0] % 16, h = 1 + data[1] % 16, w = 1 + data[2] % 16, len = size - 3;
    const uint8_t *nul = memchr(data + 3, 0, len);
    if (nul) len = (size_t)(nul - (data + 3));
    char *spec = malloc(len + 1); /* exactly the string: reading past it is caught */
    if (!spec) return 0;
    memcpy(spec, data + 3, len);
    spec[len] = 0;
    cldp_model *m = NULL;
    EXPECT(cldp_model_create_shaped(c, h, w, &m) == CLDP_OK);
    cldp_status st = cldp_model_add_spec(m, spec);
    if (st == CLDP_OK) {
        char back[8192];
        EXPECT(cldp_model_layer_count(m) > 0);
        if (cldp_model_describe(m, back, sizeof back) == CLDP_OK) {
            cldp_model *again = NULL;
            EXPECT(cldp_model_parse(back, c, h, w, &again) == CLDP_OK);
            EXPECT(cldp_model_same(m, again));
            cldp_model_destroy(again);
        }
    } else {
        EXPECT(st == CLDP_ERR_INVALID_ARGUMENT || st == CLDP_ERR_HOST_MEMORY);
        EXPECT(strstr(cldp_last_error(), "spec") != NULL);
        EXPECT(cldp_model_layer_count(m) == 0);
    }
    cldp_model_destroy(m);
    free(spec);
    return 0;
}
