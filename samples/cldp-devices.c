/* cldp-devices — lists every OpenCL platform and device cldp can see, with the index that selects
 * it (--devices / CLDP_DEVICES), and which devices the default selection would train on. */
#include "cldp.h"

#include <stdio.h>
#include <string.h>

static const char *type_name(cldp_device_type t)
{
    return t == CLDP_DEVICE_GPU ? "GPU" : t == CLDP_DEVICE_CPU ? "CPU" : t == CLDP_DEVICE_ACCELERATOR ? "accelerator" : "other";
}

int main(int argc, char **argv)
{
    const char *spec = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: cldp-devices [--devices SPEC]\n"
                   "Lists every OpenCL device of every platform. SPEC (default: $CLDP_DEVICES, else all GPUs,\n"
                   "else all devices) is all, gpu, cpu, accelerator, platform:device indices such as 0:0,0:1,\n"
                   "or a name/vendor substring; the devices it selects are marked with *.\n");
            return 0;
        } else if (!strcmp(argv[i], "--devices")) {
            if (i + 1 >= argc || !strncmp(argv[i + 1], "--", 2)) {
                fprintf(stderr, "cldp-devices: --devices needs a value: all, gpu, cpu, accelerator, a platform:device list "
                                "such as 0:0,0:1, or a name substring (try --help)\n");
                return 2;
            }
            spec = argv[++i];
        } else {
            fprintf(stderr, "cldp-devices: unknown argument '%s' (try --help)\n", argv[i]);
            return 2;
        }
    }
    size_t n = 0;
    if (cldp_device_count(&n) != CLDP_OK) {
        fprintf(stderr, "cldp-devices: %s\n", cldp_last_error());
        return 1;
    }
    size_t sel[64], nsel = 0;
    cldp_status st = cldp_device_select(spec, sel, 64, &nsel);
    int last_platform = -1;
    for (size_t i = 0; i < n; i++) {
        cldp_device_info d;
        if (cldp_device_get_info(i, &d) != CLDP_OK) continue;
        if ((int)d.platform_index != last_platform) {
            printf("platform %u: %s\n", d.platform_index, d.platform_name);
            last_platform = (int)d.platform_index;
        }
        int chosen = 0;
        for (size_t k = 0; st == CLDP_OK && k < nsel; k++) chosen |= sel[k] == i;
        printf(" %c %u:%u  %s\n", chosen ? '*' : ' ', d.platform_index, d.device_index, d.name);
        printf("        type %s, vendor %s, driver %s, %s\n", type_name(d.type), d.vendor, d.driver_version, d.opencl_version);
        printf("        %u compute units, global memory %.1f MiB, max allocation %.1f MiB%s\n", d.compute_units,
               (double)d.global_mem_bytes / 1048576.0, (double)d.max_alloc_bytes / 1048576.0,
               d.host_unified_memory ? ", shares host memory" : "");
        printf("        identity %s%s%s\n", d.identity, d.duplicates[0] ? "; also listed by another platform as " : "",
               d.duplicates);
    }
    if (st != CLDP_OK) {
        fprintf(stderr, "cldp-devices: %s\n", cldp_last_error());
        return 1;
    }
    printf("%zu device(s); * marks the %zu selected by %s\n", n, nsel, spec ? spec : "the default (or $CLDP_DEVICES)");
    return 0;
}
