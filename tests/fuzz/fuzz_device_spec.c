/* fuzz_device_spec.c — libFuzzer target for the device selection spec (--devices, CLDP_DEVICES),
 * parsed by cldp_select_from against a synthetic device list, so no OpenCL device is needed.
 *
 * Input framing: byte 0 picks the device list (mod 4: none; one CPU; six devices of three
 * platforms with a repeated name; 64 PoCL devices, the most a trainer takes); byte 1 the capacity
 * of the result array (1 + byte mod 80, so both sides of the 64-device limit); the rest, up to a
 * NUL, is the spec. Seeds (tests/fuzz/corpus/fuzz_device_spec) are real specs behind two bytes. */
#include "fuzz.h"
#include "devices.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define MAX_DEVS 64

static cldp_dev lists[4][MAX_DEVS];
static size_t list_len[4];

static void add(int list, cldp_device_type type, unsigned plat, unsigned dev, const char *platform,
                const char *name, const char *vendor)
{
    cldp_dev *d = &lists[list][list_len[list]];
    memset(d, 0, sizeof *d);
    d->info.index = list_len[list]++;
    d->info.type = type;
    d->info.platform_index = plat;
    d->info.device_index = dev;
    snprintf(d->info.platform_name, sizeof d->info.platform_name, "%s", platform);
    snprintf(d->info.name, sizeof d->info.name, "%s", name);
    snprintf(d->info.vendor, sizeof d->info.vendor, "%s", vendor);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    add(1, CLDP_DEVICE_CPU, 0, 0, "Portable Computing Language", "cpu-haswell-AMD EPYC 7B13", "AuthenticAMD");
    add(2, CLDP_DEVICE_GPU, 0, 0, "NVIDIA CUDA", "NVIDIA GeForce RTX 3090", "NVIDIA Corporation");
    add(2, CLDP_DEVICE_GPU, 0, 1, "NVIDIA CUDA", "NVIDIA GeForce RTX 3090", "NVIDIA Corporation");
    add(2, CLDP_DEVICE_GPU, 1, 0, "Intel(R) OpenCL Graphics", "Intel(R) UHD Graphics 630", "Intel(R) Corporation");
    add(2, CLDP_DEVICE_ACCELERATOR, 1, 1, "Intel(R) FPGA Emulation Platform", "Intel(R) FPGA Emulation Device", "Intel(R) Corporation");
    add(2, CLDP_DEVICE_CPU, 2, 0, "Portable Computing Language", "cpu-haswell-AMD EPYC 7B13", "AuthenticAMD");
    add(2, CLDP_DEVICE_OTHER, 2, 1, "Portable Computing Language", "", "");
    for (unsigned i = 0; i < MAX_DEVS; i++)
        add(3, CLDP_DEVICE_CPU, 0, i, "Portable Computing Language", "pthread-haswell-AMD EPYC 7B13", "AuthenticAMD");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    int list = data[0] % 4;
    size_t capacity = 1 + data[1] % 80;
    size_t len = size - 2;
    const uint8_t *nul = memchr(data + 2, 0, len);
    if (nul) len = (size_t)(nul - (data + 2));
    char *spec = malloc(len + 1); /* exactly the string: reading past it is caught */
    size_t *indices = malloc(capacity * sizeof *indices);
    if (!spec || !indices) {
        free(spec);
        free(indices);
        return 0;
    }
    memcpy(spec, data + 2, len);
    spec[len] = 0;

    const cldp_dev *devs = lists[list];
    size_t ndev = list_len[list], count = (size_t)-1;
    /* an empty spec with the top bit of byte 0 set is passed as NULL, which means the same */
    const char *arg = len == 0 && (data[0] & 0x80) ? NULL : spec;
    cldp_status st = cldp_select_from(devs, ndev, arg, indices, capacity, &count);
    if (st == CLDP_OK) {
        EXPECT(count >= 1 && count <= capacity && count <= ndev);
        for (size_t i = 0; i < count; i++) {
            EXPECT(indices[i] < ndev);
            for (size_t j = 0; j < i; j++) EXPECT(indices[j] != indices[i]); /* one replica each */
        }
    } else {
        EXPECT(st == CLDP_ERR_NO_DEVICE || st == CLDP_ERR_INVALID_ARGUMENT);
        EXPECT(*cldp_last_error());
    }
    free(spec);
    free(indices);
    return 0;
}
