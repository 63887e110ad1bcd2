/* tuning.h — per-device CLBlast tuning parameters: a small text format, where files of it are
 * looked up (CLDP_TUNING_FILE, the user's cache written by cldp-tune, the built-in results), how an
 * entry is matched to a device, and applying it with CLBlastOverrideParameters. Internal.
 *
 * The format (UTF-8 text, one statement per line; blank lines and lines starting with '#' are
 * ignored; spaces around '=' and at the ends of a line do not matter):
 *
 *     device = basic-haswell-AMD EPYC      starts an entry: the CL_DEVICE_NAME it is for, exactly,
 *                                          or a pattern where '*' matches any run of characters,
 *                                          '?' any one character, and '|' separates alternatives
 *                                          (e.g. "basic-*|cpu-minimal-*")
 *     driver = 3.1+debian                  optional: the CL_DRIVER_VERSION, exactly or a pattern
 *                                          (default '*')
 *     version = *HSTR: *x86_64*            optional: the CL_DEVICE_VERSION, exactly or a pattern
 *                                          (default '*'); PoCL names its target there, e.g.
 *                                          "OpenCL 3.0 PoCL HSTR: basic-x86_64-pc-linux-gnu-haswell"
 *     note = measured by cldp-tune, ...    optional free text, ignored
 *     Xgemm/32 = GEMMK=0 KREG=1 KWG=32 ... a CLBlast kernel, '/', its precision (16, 32, 64, 3232,
 *                                          6464), then every parameter of that kernel as NAME=VALUE
 *
 * An entry holds up to CLDP_TUNING_MAX_KERNELS kernel lines. For the kernels of CLBlast's GEMM
 * routine (Xgemm, XgemmDirect, GemmRoutine, Copy, Pad, Transpose, Padtranspose) the parser knows
 * the parameter names and the kernels' constraints, so a missing, unknown or impossible value is
 * reported with its file and line instead of failing later at the first GEMM.
 *
 * Sources, in order; the first that has an entry for the device provides the whole set (entries
 * are never mixed across sources, since a GEMM threshold is only right beside the kernels it was
 * measured with):
 *   1. the file named by the environment variable CLDP_TUNING_FILE;
 *   2. every *.txt file in $XDG_CACHE_HOME/cldp/tuning/ (else ~/.cache/cldp/tuning/), where
 *      samples/cldp-tune writes one file per device and driver;
 *   3. the results built into the library (runtime/data/tuning-builtin.txt).
 * Within a source the most specific matching entry wins: an exact device name beats a pattern,
 * then an exact driver, then an exact device version; then the earlier entry (files of the cache
 * directory are read in name order). Blanks around the device's strings are ignored. A file that
 * does not exist is skipped (except CLDP_TUNING_FILE: a typo there is an error); one that cannot be
 * parsed is an error naming the file and line, and so is a set the device cannot run (work-group
 * size, local memory). The environment variable CLDP_TUNING=off (or 0) disables all of this, e.g.
 * to compare against CLBlast's defaults (in a separate process: CLBlast keeps what was applied for
 * the life of the process); CLDP_TUNING=verbose also prints to stderr which parameters each device
 * got. Applying never changes results beyond float32 rounding: the parameters only choose how
 * CLBlast tiles the same GEMM. */
#ifndef CLDP_TUNING_H
#define CLDP_TUNING_H

#include "common.h"

#define CLDP_TUNING_MAX_KERNELS 8
#define CLDP_TUNING_MAX_PARAMS 20

typedef struct cldp_tuning_kernel {
    char name[32];          /* CLBlast kernel name, e.g. "Xgemm" */
    int precision;          /* CLBlastPrecision value: 16, 32, 64, 3232 or 6464 */
    size_t nparams;
    char param_names[CLDP_TUNING_MAX_PARAMS][32];
    size_t param_values[CLDP_TUNING_MAX_PARAMS];
    unsigned line;          /* where it was read, for messages */
} cldp_tuning_kernel;

typedef struct cldp_tuning_entry {
    char device[256];       /* exact name or pattern */
    char driver[128];       /* exact version or pattern; "*" when not given */
    char version[256];      /* CL_DEVICE_VERSION, exact or pattern; "*" when not given */
    unsigned line;          /* of the device= statement */
    size_t nkernels;
    cldp_tuning_kernel kernels[CLDP_TUNING_MAX_KERNELS];
} cldp_tuning_entry;

typedef struct cldp_tuning_file {
    char origin[512];       /* the path, or "built-in tuning" */
    size_t count;
    cldp_tuning_entry *entries; /* (count), owned */
} cldp_tuning_file;

/* Parses `len` bytes of tuning text; `origin` names it in messages. On CLDP_ERR_FORMAT the message
 * says "<origin>:<line>: <what is wrong>". *out is always left in a state cldp_tuning_file_free
 * accepts. */
cldp_status cldp_tuning_parse(const char *text, size_t len, const char *origin, cldp_tuning_file *out);

/* Reads and parses a file. A file that does not exist sets *found = 0 and returns CLDP_OK with an
 * empty result; other read failures are CLDP_ERR_IO. */
cldp_status cldp_tuning_load(const char *path, cldp_tuning_file *out, int *found);

void cldp_tuning_file_free(cldp_tuning_file *f);

/* '*' matches any run of characters (also none), '?' any one; '|' separates alternatives, any of
 * which may match; everything else matches itself. */
int cldp_tuning_pattern_match(const char *pattern, const char *text);

/* The best entry of `f` for a device (NULL if none matches); *score (may be NULL) receives how
 * specific it is, -1 for no match: 4 for an exact name + 2 for an exact driver + 1 for an exact
 * device version. */
const cldp_tuning_entry *cldp_tuning_match(const cldp_tuning_file *f, const char *device_name,
                                           const char *driver_version, const char *device_version,
                                           int *score);

/* The user's tuning directory, "$XDG_CACHE_HOME/cldp/tuning" or "$HOME/.cache/cldp/tuning";
 * CLDP_ERR_IO when neither variable is set, CLDP_ERR_INVALID_ARGUMENT when it does not fit. */
cldp_status cldp_tuning_cache_dir(char *buf, size_t size);

/* Looks the device up in the sources, in order. On a match, *file holds the source (free it with
 * cldp_tuning_file_free) and *entry points into it; otherwise *entry is NULL. Ignores CLDP_TUNING. */
cldp_status cldp_tuning_lookup(const char *device_name, const char *driver_version,
                               const char *device_version, cldp_tuning_file *file,
                               const cldp_tuning_entry **entry);

/* Applies every kernel line of `entry` to `dev` with CLBlastOverrideParameters. The parameters
 * are process-wide for that device from then on (CLBlast keys them by device, not context), and
 * take effect for every later CLBlast call on it. */
cldp_status cldp_tuning_apply_entry(cl_device_id dev, const cldp_tuning_file *file,
                                    const cldp_tuning_entry *entry, const char *dev_label);

/* Looks up tuned GEMM parameters for the device (sources above; its CL_DEVICE_VERSION is queried
 * here) and applies them; CLDP_OK when nothing matches or CLDP_TUNING=off. `dev_label` names the
 * device in messages. Thread-safe. */
cldp_status cldp_tuning_apply(cl_device_id dev, const char *device_name, const char *driver_version,
                              const char *dev_label);

/* The work-group size and local memory kernel k's parameters imply (into *wg, *local_bytes);
 * 0 when the parser does not know the kernel, so there is nothing to check. */
int cldp_tuning_kernel_needs(const cldp_tuning_kernel *k, size_t *wg, size_t *local_bytes);

#endif
