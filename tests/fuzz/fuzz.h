/* fuzz.h — what the libFuzzer targets share: an EXPECT that aborts (so libFuzzer records the input
 * as a crash) when a property of the code under test does not hold. */
#ifndef CLDP_FUZZ_H
#define CLDP_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define EXPECT(cond)                                                                           \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "fuzz: expectation failed: %s (%s:%d)\n", #cond, __FILE__,         \
                    __LINE__);                                                                 \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
