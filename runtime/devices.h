/* devices.h — discovery of every device of every OpenCL platform, and selection by spec. */
#ifndef CLDP_DEVICES_H
#define CLDP_DEVICES_H

#include "common.h"

typedef struct cldp_dev {
    cl_platform_id platform;
    cl_device_id id;
    cldp_device_info info;
} cldp_dev;

/* The process-wide device list, discovered once (thread-safe). */
cldp_status cldp_devices(const cldp_dev **devs, size_t *count);

/* Parses a selection spec against an explicit device list (so tests can use synthetic lists).
 * Semantics as cldp_device_select in cldp.h, minus the environment lookup. */
cldp_status cldp_select_from(const cldp_dev *devs, size_t ndev, const char *spec, size_t *indices,
                             size_t capacity, size_t *count);

#endif
