/* devices.h — discovery of every device of every OpenCL platform, and selection by spec. */
#ifndef CLDP_DEVICES_H
#define CLDP_DEVICES_H

#include "common.h"

/* What a driver tells about the physical device behind an entry, to count it once. */
typedef struct cldp_dev_identity {
    int has_uuid;                 /* cl_khr_device_uuid (an all-zero UUID counts as none) */
    unsigned char uuid[16];
    int has_pci;                  /* cl_khr_pci_bus_info, AMD topology or NVIDIA bus/slot */
    unsigned pci_domain, pci_bus, pci_device, pci_function;
} cldp_dev_identity;

typedef struct cldp_dev {
    cl_platform_id platform;
    cl_device_id id;
    cldp_device_info info;
    cldp_dev_identity ident;
} cldp_dev;

/* The process-wide device list, discovered once (thread-safe). */
cldp_status cldp_devices(const cldp_dev **devs, size_t *count);

/* Counts each physical device once: an entry on another platform than an earlier entry, with
 * the same UUID or the same PCI address, is dropped; the kept entry lists the dropped ones in
 * info.duplicates. Entries of one platform are never merged (a platform lists distinct devices,
 * e.g. PoCL's "basic basic"). Fills info.identity ("unknown" without UUID or PCI facts) and
 * renumbers info.index. Works in place on `devs` (real or synthetic); returns the new count. */
size_t cldp_dedupe(cldp_dev *devs, size_t n);

/* Parses a selection spec against an explicit device list (so tests can use synthetic lists).
 * Semantics as cldp_device_select in cldp.h, minus the environment lookup. */
cldp_status cldp_select_from(const cldp_dev *devs, size_t ndev, const char *spec, size_t *indices,
                             size_t capacity, size_t *count);

#endif
