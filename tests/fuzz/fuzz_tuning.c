/* fuzz_tuning.c — libFuzzer target for the CLBlast tuning file parser (runtime/tuning.c: files
 * named by CLDP_TUNING_FILE or written to the user's cache by cldp-tune), and for matching its
 * entries against device names. The input is the file's text, as is. */
#include "fuzz.h"
#include "tuning.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1); /* exactly the input, not NUL-terminated, as read */
    if (!text) return 0;
    memcpy(text, data, size);
    cldp_tuning_file f;
    memset(&f, 0xa5, sizeof f); /* the parser must initialise everything it hands back */
    /* the API takes NULL text for an empty input */
    cldp_status st = cldp_tuning_parse(size ? text : NULL, size, "fuzz input", &f);
    if (st == CLDP_OK) {
        EXPECT(f.count == 0 || f.entries != NULL);
        for (size_t i = 0; i < f.count; i++) {
            const cldp_tuning_entry *e = &f.entries[i];
            EXPECT(e->nkernels >= 1 && e->nkernels <= CLDP_TUNING_MAX_KERNELS);
            EXPECT(memchr(e->device, 0, sizeof e->device) && memchr(e->driver, 0, sizeof e->driver));
            for (size_t k = 0; k < e->nkernels; k++) EXPECT(e->kernels[k].nparams >= 1 && e->kernels[k].nparams <= CLDP_TUNING_MAX_PARAMS);
        }
        /* matching runs every entry's patterns over real device names */
        static const char *names[] = {"cpu-haswell-AMD EPYC 7B13", "NVIDIA GeForce RTX 3090", "gfx1030", ""};
        for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
            int score = -2;
            const cldp_tuning_entry *e = cldp_tuning_match(&f, names[i], "3.1+debian", "OpenCL 3.0 PoCL 3.1", &score);
            EXPECT(e ? (score >= 0 && score <= 7 && e >= f.entries && e < f.entries + f.count) : score == -1);
        }
    } else {
        EXPECT(st == CLDP_ERR_FORMAT || st == CLDP_ERR_HOST_MEMORY);
        EXPECT(strncmp(cldp_last_error(), "fuzz input", 10) == 0 || st == CLDP_ERR_HOST_MEMORY);
    }
    cldp_tuning_file_free(&f);
    free(text);
    return 0;
}
