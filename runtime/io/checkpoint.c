/* checkpoint.c — the checkpoint file format (checkpoint.h): its layout, the atomic writer, and
 * the reader that checks every byte before anything is handed out. */
#define _POSIX_C_SOURCE 200809L
#include "checkpoint.h"
#include "checkpoint_model.h"
#include "config.h"
#include "le.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

/* ---- the format ---------------------------------------------------------------------------
 *
 * Every integer and float is little-endian, whatever the host.
 *
 *   header   "CLDPCKPT"  u32 version  u32 section count  u64 file length (all bytes, CRC included)
 *   sections tag[4]  u64 payload length  payload          (each tag at most once, any order)
 *   trailer  u32 zlib CRC-32 of every byte before it
 *
 *   MODL  the model: input shape, each layer's kind and settings (checkpoint_model.c; version 1
 *         files, dense layers only, still load)
 *   PRMS  u64 count  f32[count]                          master parameters, the flat layout
 *   OPTM  u32 optimizer  u32 0  f32 lr, momentum, weight decay, beta1, beta2, epsilon
 *         u64 steps taken (t)  u64 count  f32[count] first moment  f32[count] second moment
 *   SPLT  u32 devices n  u32 balancer steps              the device split (balance.c)
 *         per device rank: f64 weight  f64 measured ms per sample  u32 measurements  u32 0
 *   SEED  u64 seed                                       the trainer's seed, which keys the
 *                                                        dropout masks (model.h); optional
 *   USER  the application's bytes                        optional
 *
 * MODL, PRMS and OPTM are required. SEED is optional (files written before it keep the
 * trainer's own seed); a trainer that loads it takes the file's seed, so a resumed run draws the
 * masks the stopped one would have, whatever seed it was created with. SPLT is optional (a file without it leaves the trainer's
 * split alone) and is restored only into a trainer with as many devices (a split is per device;
 * on other devices the trainer's own split stands). A tag this version does not know is refused
 * rather than skipped, so a file that carries state we cannot restore (a section of a newer
 * cldp) is never half-loaded; a new section comes with a reader that restores it. A change to
 * an existing section's layout bumps the version. */

#define CKPT_MAGIC "CLDPCKPT"
#define CKPT_VERSION CLDP_CKPT_VERSION
#define CKPT_HEADER 24u  /* magic, version, section count, file length */
#define CKPT_SECTION 12u /* tag, payload length */
#define CKPT_TRAILER 4u
#define OPTM_FIXED 48u
#define SPLT_FIXED 8u
#define SPLT_DEVICE 24u
#define SEED_LEN 8u

/* ---- writing -------------------------------------------------------------------------- */

/* A buffered writer that keeps the running CRC and the first error. */
typedef struct writer {
    FILE *f;
    uLong crc;
    uint64_t bytes;
    int err; /* errno of the first failed write, 0 while all went well */
} writer;

static void w_bytes(writer *w, const void *p, size_t len)
{
    if (w->err || len == 0) return;
    const unsigned char *b = p;
    w->bytes += len;
    for (size_t done = 0; done < len;) { /* zlib takes a uInt length */
        uInt chunk = len - done > (1u << 30) ? (1u << 30) : (uInt)(len - done);
        w->crc = crc32(w->crc, b + done, chunk);
        done += chunk;
    }
    if (fwrite(p, 1, len, w->f) != len) w->err = errno ? errno : EIO;
}
static void w_u32(writer *w, uint32_t v)
{
    unsigned char b[4];
    put_u32(b, v);
    w_bytes(w, b, 4);
}
static void w_u64(writer *w, uint64_t v)
{
    unsigned char b[8];
    put_u64(b, v);
    w_bytes(w, b, 8);
}
static void w_f32(writer *w, float f)
{
    unsigned char b[4];
    put_f32(b, f);
    w_bytes(w, b, 4);
}
static void w_f32s(writer *w, const float *x, size_t n)
{
    unsigned char buf[4096];
    for (size_t i = 0; i < n;) {
        size_t k = 0;
        for (; k < sizeof buf / 4 && i < n; k++, i++) put_f32(buf + 4 * k, x[i]);
        w_bytes(w, buf, 4 * k);
    }
}
static void w_section(writer *w, const char tag[4], uint64_t len)
{
    w_bytes(w, tag, 4);
    w_u64(w, len);
}

static uint64_t modl_len(const cldp_model *m) { return cldp_ckpt_model_len(m); }
static uint64_t prms_len(const cldp_model *m) { return 8 + 4 * (uint64_t)m->nparams; }
static uint64_t optm_len(const cldp_model *m) { return OPTM_FIXED + 8 * (uint64_t)m->nparams; }
static uint64_t splt_len(size_t n) { return SPLT_FIXED + SPLT_DEVICE * (uint64_t)n; }

static void w_f64(writer *w, double d)
{
    unsigned char b[8];
    put_f64(b, d);
    w_bytes(w, b, 8);
}

static void write_all(writer *w, const cldp_ckpt *c)
{
    const cldp_model *m = c->model;
    const cldp_ckpt_optim *o = &c->optim;
    uint32_t nsec = 5 + (c->user_len > 0);
    uint64_t total = CKPT_HEADER + 5 * CKPT_SECTION + modl_len(m) + prms_len(m) + optm_len(m) + splt_len(c->ndev) + SEED_LEN + CKPT_TRAILER;
    if (c->user_len) total += CKPT_SECTION + c->user_len;

    w_bytes(w, CKPT_MAGIC, 8);
    w_u32(w, CKPT_VERSION);
    w_u32(w, nsec);
    w_u64(w, total);

    w_section(w, "MODL", modl_len(m));
    unsigned char modl[40 + 32 * CLDP_MAX_LAYERS];
    cldp_ckpt_model_put(m, modl);
    w_bytes(w, modl, (size_t)modl_len(m));

    w_section(w, "PRMS", prms_len(m));
    w_u64(w, m->nparams);
    w_f32s(w, c->params, m->nparams);

    w_section(w, "OPTM", optm_len(m));
    w_u32(w, o->optimizer);
    w_u32(w, 0);
    w_f32(w, o->learning_rate);
    w_f32(w, o->momentum);
    w_f32(w, o->weight_decay);
    w_f32(w, o->beta1);
    w_f32(w, o->beta2);
    w_f32(w, o->epsilon);
    w_u64(w, o->steps);
    w_u64(w, m->nparams);
    w_f32s(w, c->m, m->nparams);
    w_f32s(w, c->v, m->nparams);

    w_section(w, "SPLT", splt_len(c->ndev));
    w_u32(w, (uint32_t)c->ndev);
    w_u32(w, c->balance_steps);
    for (size_t r = 0; r < c->ndev; r++) {
        w_f64(w, c->weight[r]);
        w_f64(w, c->ms_per_sample[r]);
        w_u32(w, c->samples[r]);
        w_u32(w, 0);
    }

    w_section(w, "SEED", SEED_LEN);
    w_u64(w, c->seed);

    if (c->user_len) {
        w_section(w, "USER", c->user_len);
        w_bytes(w, c->user, c->user_len);
    }

    uint32_t crc = (uint32_t)w->crc;
    w_u32(w, crc);
    if (!w->err && w->bytes != total) w->err = EIO; /* a layout bug, never a disk problem */
}

/* The directory part of `path` ("." when it has none), for the fsync that makes the rename durable. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t len = slash ? (size_t)(slash - path) : 1;
    if (slash && len == 0) len = 1; /* "/file" lives in "/" */
    char *d = cldp_malloc(len + 1, "checkpoint directory name");
    if (!d) return NULL;
    memcpy(d, slash ? path : ".", len);
    d[len] = 0;
    return d;
}

/* Test hook (CLDP_TEST_CHECKPOINT_DELAY_MS): widens the window between fsync and rename. */
static void test_delay(void)
{
    const cldp_config *cfg;
    cldp_config_get(&cfg);
    cldp_sleep_ms(cfg->checkpoint_delay_ms);
}

/* What a file type is, for a message ("a FIFO", "a directory"). */
static const char *kind_of(mode_t mode)
{
    return S_ISDIR(mode)    ? "a directory"
           : S_ISCHR(mode)  ? "a character device"
           : S_ISBLK(mode)  ? "a block device"
           : S_ISFIFO(mode) ? "a FIFO (named pipe)"
           : S_ISSOCK(mode) ? "a socket"
                            : "not a regular file";
}

cldp_status cldp_ckpt_write(const char *path, const cldp_ckpt *c)
{
    REQUIRE(c->ndev <= CLDP_MAX_RANKS, "checkpoint '%s': a split of %zu devices", path, c->ndev);
    for (size_t i = 0; i < c->model->nparams; i++)
        if (!isfinite(c->params[i]))
            return cldp_fail(CLDP_ERR_NONFINITE, "checkpoint '%s' not written: parameter %zu is %g; a run cannot be resumed from it", path,
                             i, (double)c->params[i]);

    /* The rename below replaces whatever `path` names: run as root with /dev/null, it would put
     * a regular file in place of the device node. Only a regular file (or nothing) is replaced;
     * stat follows a symbolic link, so a link to a device is refused too. */
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        return cldp_fail(CLDP_ERR_IO, "checkpoint '%s' not written: that path exists and is %s, which saving would replace; "
                                      "give the path of a regular file or of a new one", path, kind_of(sb.st_mode));

    size_t plen = strlen(path);
    char *tmp = cldp_malloc(plen + 32, "checkpoint file name");
    if (!tmp) return CLDP_ERR_HOST_MEMORY;
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());

    cldp_status st = CLDP_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        st = cldp_fail(CLDP_ERR_IO, "cannot create checkpoint temporary file '%s': %s; check that the directory exists and is writable", tmp,
                       strerror(errno));
        if (fd >= 0) close(fd);
        goto out;
    }
    writer w = {f, crc32(0L, Z_NULL, 0), 0, 0};
    write_all(&w, c);
    if (!w.err && fflush(f) != 0) w.err = errno;
    if (!w.err && fsync(fileno(f)) != 0) w.err = errno;
    if (fclose(f) != 0 && !w.err) w.err = errno;
    if (w.err) {
        st = cldp_fail(CLDP_ERR_IO, "writing checkpoint '%s' failed: %s (the previous checkpoint, if any, is untouched)", tmp, strerror(w.err));
        goto out;
    }
    test_delay();
    if (rename(tmp, path) != 0) {
        st = cldp_fail(CLDP_ERR_IO, "cannot rename '%s' to '%s': %s (the previous checkpoint, if any, is untouched)", tmp, path,
                       strerror(errno));
        goto out;
    }
    /* The rename lives in the directory: without this fsync a power cut could bring the old name back. */
    char *dir = dir_of(path);
    int dfd = dir ? open(dir, O_RDONLY) : -1;
    int derr = dfd < 0 ? errno : (fsync(dfd) != 0 ? errno : 0);
    if (dfd >= 0) close(dfd);
    /* Some file systems cannot fsync a directory (EINVAL); the data itself is synced. */
    if (dir && derr && derr != EINVAL && derr != ENOTSUP)
        st = cldp_fail(CLDP_ERR_IO, "checkpoint '%s' written, but syncing its directory '%s' failed: %s", path, dir, strerror(derr));
    free(dir);
    if (!dir) st = CLDP_ERR_HOST_MEMORY;
    free(tmp);
    return st;
out:
    unlink(tmp);
    free(tmp);
    return st;
}

/* ---- reading -------------------------------------------------------------------------- */

/* Where the sections of a validated file lie in its bytes. */
typedef struct parsed {
    const unsigned char *modl, *prms, *optm, *splt, *seed, *user;
    uint64_t modl_len, prms_len, optm_len, splt_len, seed_len, user_len;
} parsed;

/* The same checks as trainer creation applies to options, on the values a file brings. */
static cldp_status check_optimizer(const char *path, const unsigned char *b)
{
    uint32_t kind = get_u32(b);
    float lr = get_f32(b + 8), mu = get_f32(b + 12), wd = get_f32(b + 16), b1 = get_f32(b + 20), b2 = get_f32(b + 24),
          eps = get_f32(b + 28);
    if (kind != CLDP_OPT_SGD && kind != CLDP_OPT_ADAM)
        return cldp_fail(CLDP_ERR_FORMAT, "checkpoint '%s' is damaged: unknown optimizer %u", path, kind);
    if (get_u32(b + 4) != 0) return cldp_fail(CLDP_ERR_FORMAT, "checkpoint '%s' is damaged: reserved optimizer field is not 0", path);
    if (!(isfinite(lr) && lr > 0) || !(mu >= 0 && mu < 1) || !(isfinite(wd) && wd >= 0) || !(b1 >= 0 && b1 < 1) || !(b2 >= 0 && b2 < 1) ||
        !(isfinite(eps) && eps > 0))
        return cldp_fail(CLDP_ERR_FORMAT,
                         "checkpoint '%s' is damaged: optimizer settings out of range (lr %g, momentum %g, weight decay %g, betas %g/%g, "
                         "epsilon %g)",
                         path, (double)lr, (double)mu, (double)wd, (double)b1, (double)b2, (double)eps);
    return CLDP_OK;
}

/* The split's weights must be usable as they are (finite, >= 0, not all 0), the speeds finite. */
static cldp_status check_split(const char *path, const parsed *p)
{
    if (p->splt_len < SPLT_FIXED) return cldp_fail(CLDP_ERR_FORMAT, "checkpoint '%s' is damaged: split section of %llu bytes", path, (unsigned long long)p->splt_len);
    uint32_t n = get_u32(p->splt);
    if (n == 0 || n > CLDP_MAX_RANKS || p->splt_len != splt_len(n))
        return cldp_fail(CLDP_ERR_FORMAT, "checkpoint '%s' is damaged: split section of %llu bytes for %u devices", path,
                         (unsigned long long)p->splt_len, n);
    double sum = 0;
    for (uint32_t r = 0; r < n; r++) {
        const unsigned char *d = p->splt + SPLT_FIXED + SPLT_DEVICE * r;
        double w = get_f64(d), ms = get_f64(d + 8);
        if (!isfinite(w) || w < 0 || !isfinite(ms) || ms < 0 || get_u32(d + 20) != 0)
            return cldp_fail(CLDP_ERR_FORMAT, "checkpoint '%s' is damaged: split of device %u is weight %g, %g ms per sample", path, r, w, ms);
        sum += w;
    }
    if (!(sum > 0) || !isfinite(sum)) return cldp_fail(CLDP_ERR_FORMAT, "checkpoint '%s' is damaged: split weights sum to %g", path, sum);
    return CLDP_OK;
}

/* Checks the whole file in memory: header, length, CRC, every section's bounds, the model and the
 * optimizer; on success `p` points into `buf`. Nothing of the trainer is touched. */
static cldp_status validate(const cldp_model *m, const char *path, const unsigned char *buf, size_t size, parsed *p)
{
    memset(p, 0, sizeof *p);
    if (size < 8 || memcmp(buf, CKPT_MAGIC, 8) != 0)
        return cldp_fail(CLDP_ERR_FORMAT, "'%s' is not a cldp checkpoint (%s)", path,
                         size < 8 ? "shorter than the 8-byte magic" : "it does not start with CLDPCKPT");
    if (size < CKPT_HEADER + CKPT_TRAILER)
        return cldp_fail(CLDP_ERR_FORMAT, "checkpoint '%s' is truncated: %zu bytes, shorter than its header", path, size);
    uint32_t version = get_u32(buf + 8), nsec = get_u32(buf + 12);
    uint64_t length = get_u64(buf + 16);
    if (version < CLDP_CKPT_VERSION_MIN || version > CKPT_VERSION)
        return cldp_fail(CLDP_ERR_FORMAT, "checkpoint '%s' has format version %u; this cldp reads versions %u to %u", path, version,
                         CLDP_CKPT_VERSION_MIN, CKPT_VERSION);
    if (length != size)
        return cldp_fail(CLDP_ERR_FORMAT, "checkpoint '%s' is %s: its header says %llu bytes, the file has %zu", path,
                         length > size ? "truncated" : "damaged", (unsigned long long)length, size);
    uint32_t stored = get_u32(buf + size - CKPT_TRAILER), computed = cldp_crc32(buf, size - CKPT_TRAILER);
    if (stored != computed)
        return cldp_fail(CLDP_ERR_FORMAT, "checkpoint '%s' is corrupted: CRC-32 %08x, computed %08x", path, (unsigned)stored,
                         (unsigned)computed);

    size_t pos = CKPT_HEADER, end = size - CKPT_TRAILER;
    for (uint32_t s = 0; s < nsec; s++) {
        if (end - pos < CKPT_SECTION)
            return cldp_fail(CLDP_ERR_FORMAT, "checkpoint '%s' is damaged: section %u of %u starts past the end", path, s + 1, nsec);
        const unsigned char *h = buf + pos;
        uint64_t len = get_u64(h + 4);
        pos += CKPT_SECTION;
        char tag[5]; /* printable, for messages */
        for (int i = 0; i < 4; i++) tag[i] = h[i] >= 0x20 && h[i] < 0x7f ? (char)h[i] : '?';
        tag[4] = 0;
        if (len > end - pos)
            return cldp_fail(CLDP_ERR_FORMAT, "checkpoint '%s' is damaged: section '%s' claims %llu bytes, %zu remain", path, tag,
                             (unsigned long long)len, end - pos);
        const unsigned char **slot = NULL;
        uint64_t *slot_len = NULL;
        if (!memcmp(h, "MODL", 4)) slot = &p->modl, slot_len = &p->modl_len;
        else if (!memcmp(h, "PRMS", 4)) slot = &p->prms, slot_len = &p->prms_len;
        else if (!memcmp(h, "OPTM", 4)) slot = &p->optm, slot_len = &p->optm_len;
        else if (!memcmp(h, "SPLT", 4)) slot = &p->splt, slot_len = &p->splt_len;
        else if (!memcmp(h, "SEED", 4)) slot = &p->seed, slot_len = &p->seed_len;
        else if (!memcmp(h, "USER", 4)) slot = &p->user, slot_len = &p->user_len;
        else
            return cldp_fail(CLDP_ERR_FORMAT, "checkpoint '%s' has a section '%s' this cldp does not know (written by a newer version?)", path,
                             tag);
        if (*slot) return cldp_fail(CLDP_ERR_FORMAT, "checkpoint '%s' is damaged: section '%s' appears twice", path, tag);
        *slot = buf + pos;
        *slot_len = len;
        pos += (size_t)len;
    }
    if (pos != end)
        return cldp_fail(CLDP_ERR_FORMAT, "checkpoint '%s' is damaged: %zu bytes after its %u sections", path, end - pos, nsec);
    if (!p->modl || !p->prms || !p->optm)
        return cldp_fail(CLDP_ERR_FORMAT, "checkpoint '%s' is damaged: the %s section is missing", path,
                         !p->modl ? "model (MODL)" : !p->prms ? "parameter (PRMS)" : "optimizer (OPTM)");
    TRY(cldp_ckpt_model_check(path, version, p->modl, p->modl_len, m));

    if (p->prms_len != prms_len(m) || get_u64(p->prms) != m->nparams)
        return cldp_fail(CLDP_ERR_FORMAT, "checkpoint '%s' is damaged: parameter section of %llu bytes, expected %llu", path,
                         (unsigned long long)p->prms_len, (unsigned long long)prms_len(m));
    for (size_t i = 0; i < m->nparams; i++)
        if (!isfinite(get_f32(p->prms + 8 + 4 * i)))
            return cldp_fail(CLDP_ERR_FORMAT, "checkpoint '%s' is damaged: parameter %zu is not finite", path, i);
    if (p->optm_len != optm_len(m) || get_u64(p->optm + 40) != m->nparams)
        return cldp_fail(CLDP_ERR_FORMAT, "checkpoint '%s' is damaged: optimizer section of %llu bytes, expected %llu", path,
                         (unsigned long long)p->optm_len, (unsigned long long)optm_len(m));
    TRY(check_optimizer(path, p->optm));
    /* Moments that are not finite (or a negative second moment) would poison every later step. */
    for (size_t i = 0; i < m->nparams; i++) {
        float m1 = get_f32(p->optm + OPTM_FIXED + 4 * i), m2 = get_f32(p->optm + OPTM_FIXED + 4 * (m->nparams + i));
        if (!isfinite(m1) || !isfinite(m2) || m2 < 0)
            return cldp_fail(CLDP_ERR_FORMAT, "checkpoint '%s' is damaged: optimizer state of parameter %zu is %g/%g", path, i, (double)m1,
                             (double)m2);
    }
    if (p->seed && p->seed_len != SEED_LEN)
        return cldp_fail(CLDP_ERR_FORMAT, "checkpoint '%s' is damaged: seed section of %llu bytes, expected %u", path,
                         (unsigned long long)p->seed_len, SEED_LEN);
    return p->splt ? check_split(path, p) : CLDP_OK;
}

/* Reads the whole file; CLDP_ERR_IO when it cannot be opened or read. */
static cldp_status read_file(const char *path, unsigned char **out, size_t *size)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return cldp_fail(CLDP_ERR_IO, "cannot open checkpoint '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return cldp_fail(CLDP_ERR_IO, "cannot read checkpoint '%s': not a regular file", path);
    }
    if ((uint64_t)sb.st_size > SIZE_MAX - 1) {
        fclose(f);
        return cldp_fail(CLDP_ERR_FORMAT, "checkpoint '%s' is too large to read (%lld bytes)", path, (long long)sb.st_size);
    }
    size_t n = (size_t)sb.st_size;
    unsigned char *buf = cldp_malloc(n, "checkpoint contents");
    if (!buf) {
        fclose(f);
        return CLDP_ERR_HOST_MEMORY;
    }
    size_t got = fread(buf, 1, n, f);
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (err || got != n) {
        free(buf);
        return cldp_fail(CLDP_ERR_IO, "reading checkpoint '%s' failed: %s", path, err ? strerror(err) : "the file shrank while being read");
    }
    *out = buf;
    *size = n;
    return CLDP_OK;
}

/* The checked file's contents into *c, decoded into one block c->owned. */
static cldp_status decode(const cldp_model *m, const parsed *p, cldp_ckpt *c)
{
    const size_t np = m->nparams;
    memset(c, 0, sizeof *c);
    c->model = m;
    float *f = cldp_malloc(3 * np * sizeof(float) + (size_t)p->user_len + 1, "checkpoint contents");
    if (!f) return CLDP_ERR_HOST_MEMORY;
    c->owned = f;
    const unsigned char *o = p->optm;
    for (size_t i = 0; i < np; i++) {
        f[i] = get_f32(p->prms + 8 + 4 * i);
        f[np + i] = get_f32(o + OPTM_FIXED + 4 * i);
        f[2 * np + i] = get_f32(o + OPTM_FIXED + 4 * (np + i));
    }
    c->params = f, c->m = f + np, c->v = f + 2 * np;
    c->optim = (cldp_ckpt_optim){get_u32(o),       get_f32(o + 8),  get_f32(o + 12), get_f32(o + 16),
                                 get_f32(o + 20),  get_f32(o + 24), get_f32(o + 28), get_u64(o + 32)};
    c->has_seed = p->seed != NULL;
    if (p->seed) c->seed = get_u64(p->seed);
    if (p->splt) {
        c->ndev = get_u32(p->splt);
        c->balance_steps = get_u32(p->splt + 4);
        for (size_t r = 0; r < c->ndev; r++) {
            const unsigned char *d = p->splt + SPLT_FIXED + SPLT_DEVICE * r;
            c->weight[r] = get_f64(d);
            c->ms_per_sample[r] = get_f64(d + 8);
            c->samples[r] = get_u32(d + 16);
        }
    }
    if (p->user_len) memcpy(f + 3 * np, p->user, (size_t)p->user_len);
    c->user = p->user_len ? (const void *)(f + 3 * np) : NULL;
    c->user_len = (size_t)p->user_len;
    return CLDP_OK;
}

cldp_status cldp_ckpt_read(const cldp_model *m, const char *path, cldp_ckpt *c)
{
    memset(c, 0, sizeof *c);
    unsigned char *buf = NULL;
    size_t size = 0;
    TRY(read_file(path, &buf, &size));
    parsed p;
    cldp_status st = validate(m, path, buf, size, &p);
    if (st == CLDP_OK) st = decode(m, &p, c);
    free(buf);
    return st;
}

void cldp_ckpt_release(cldp_ckpt *c)
{
    free(c->owned);
    c->owned = NULL;
}

cldp_status cldp_checkpoint_read_params(const cldp_model *m, const char *path, float *params)
{
    REQUIRE(m && path && params, "cldp_checkpoint_read_params: bad arguments");
    unsigned char *buf = NULL;
    size_t size = 0;
    TRY(read_file(path, &buf, &size));
    parsed p;
    cldp_status st = validate(m, path, buf, size, &p);
    if (st == CLDP_OK)
        for (size_t i = 0; i < m->nparams; i++) params[i] = get_f32(p.prms + 8 + 4 * i);
    free(buf);
    return st;
}
