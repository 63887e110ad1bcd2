/* dataset.c — labelled datasets from IDX files (Fashion-MNIST's format), gzipped or raw, from disk,
 * from memory, or compiled into the library. Every input is treated as hostile: damage is a status. */
#define ZLIB_CONST /* lets next_in point at the caller's const bytes without a cast */
#include "common.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

struct cldp_dataset {
    size_t count;
    size_t features;
    size_t classes;  /* max label + 1 */
    float *images;   /* (count, features), values in [0, 1] */
    int32_t *labels; /* (count) */
};

/* ---- limits ------------------------------------------------------------------------------- */

/* No IDX file cldp reads may decompress to more than this; a bigger claim or stream is damage
 * (or a zip bomb), not a reason to exhaust memory. Fashion-MNIST's largest file is 47 MB. */
#define IDX_MAX_BYTES ((uint64_t)1 << 30)
/* One sample's pixels; far above any image dataset a dense model trains on. */
#define IDX_MAX_FEATURES ((uint64_t)1 << 20)
#define IDX_TYPE_UBYTE 0x08
#define IDX_IMAGE_HEADER 16 /* magic + n, rows, cols */
#define IDX_LABEL_HEADER 8  /* magic + n */

static const char FMNIST_DEFAULT_DIR[] = "/usr/share/datasets/fashion-mnist";
/* Fashion-MNIST's labels are 0..9; a larger one is damage, and a model sized by it would grow. */
#define FMNIST_CLASSES 10u

/* ---- gzip --------------------------------------------------------------------------------- */

static int is_gzip(const unsigned char *p, size_t len)
{
    return len >= 2 && p[0] == 0x1f && p[1] == 0x8b;
}

static cldp_status zlib_fail(int zr, const z_stream *zs, const char *name)
{
    if (zr == Z_MEM_ERROR)
        return cldp_fail(CLDP_ERR_HOST_MEMORY, "%s: out of host memory while inflating", name);
    return cldp_fail(CLDP_ERR_FORMAT, "%s: damaged gzip data (zlib: %s)", name,
                     zs->msg ? zs->msg : "error");
}

/* zlib allocates through these, so its allocations fail (and can be made to fail in tests) like
 * every other. */
static voidpf zlib_alloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    size_t bytes;
    if (cldp_mul_size(items, size, &bytes) != 0) return Z_NULL;
    return cldp_malloc(bytes, "zlib's inflate state");
}

static void zlib_free(voidpf opaque, voidpf p)
{
    (void)opaque;
    free(p);
}

/* Inflates the gzip stream(s) in src. With peek, stops quietly after `limit` bytes (to read a
 * header before committing to the whole file); without, more than `limit` bytes of output is an
 * error, found by leaving room for one byte more than that instead of inflating everything.
 * The output buffer grows as data actually arrives, so a header's claim costs no memory until the
 * stream backs it. *out is malloc'd (NULL on failure). */
/* Doubles the inflated buffer *buf (of *cap bytes), up to `hard` bytes. */
static cldp_status grow(unsigned char **buf, size_t *cap, size_t hard, const char *name)
{
    size_t grown = *cap > hard / 2 ? hard : *cap * 2;
    unsigned char *nb = cldp_realloc(*buf, grown, "inflated IDX data");
    if (!nb) return cldp_fail(CLDP_ERR_HOST_MEMORY, "%s: out of host memory inflating %zu bytes", name, grown);
    *buf = nb;
    *cap = grown;
    return CLDP_OK;
}

/* At the end of a gzip member with `left` input bytes after it (from zs->next_in on): 1 when
 * inflating is done (*st says how), 0 when another member follows and zs was reset for it. gzip
 * allows members end to end (what `cat a.gz b.gz` makes); anything else after the stream is
 * damage. */
static int member_end(z_stream *zs, size_t left, const char *name, cldp_status *st)
{
    if (left == 0) return 1;
    if (!is_gzip(zs->next_in, left)) {
        *st = cldp_fail(CLDP_ERR_FORMAT, "%s: %zu stray bytes after the end of the gzip stream", name, left);
        return 1;
    }
    int zr = inflateReset(zs);
    if (zr == Z_OK) return 0;
    *st = zlib_fail(zr, zs, name);
    return 1;
}

static cldp_status gunzip(const unsigned char *src, size_t src_len, const char *name, size_t limit,
                          int peek, unsigned char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    size_t hard = peek ? limit : limit + 1;
    size_t cap = src_len > hard / 4 ? hard : src_len * 4;
    if (cap < 65536) cap = hard < 65536 ? hard : 65536;
    if (cap == 0) cap = 1;
    unsigned char *buf = cldp_malloc(cap, "inflated IDX data");
    if (!buf) return CLDP_ERR_HOST_MEMORY;

    z_stream zs;
    memset(&zs, 0, sizeof zs);
    zs.zalloc = zlib_alloc;
    zs.zfree = zlib_free;
    int zr = inflateInit2(&zs, 15 + 32);
    if (zr != Z_OK) {
        free(buf);
        return zlib_fail(zr, &zs, name);
    }

    cldp_status st = CLDP_OK;
    size_t in_pos = 0, produced = 0;
    for (;;) {
        /* avail_in and avail_out are 32-bit: feed big buffers in pieces. */
        if (zs.avail_in == 0 && in_pos < src_len) {
            size_t piece = src_len - in_pos < UINT_MAX ? src_len - in_pos : UINT_MAX;
            zs.next_in = src + in_pos;
            zs.avail_in = (uInt)piece;
            in_pos += piece;
        }
        if (produced == cap) {
            if (cap == hard) break;
            if ((st = grow(&buf, &cap, hard, name)) != CLDP_OK) break;
        }
        size_t room = cap - produced < UINT_MAX ? cap - produced : UINT_MAX;
        zs.next_out = buf + produced;
        zs.avail_out = (uInt)room;
        zr = inflate(&zs, Z_NO_FLUSH);
        produced += room - zs.avail_out;

        if (zr == Z_STREAM_END) {
            if (member_end(&zs, zs.avail_in + (src_len - in_pos), name, &st)) break;
            continue;
        }
        if (zr == Z_OK) continue;
        if (zr == Z_BUF_ERROR) {
            if (zs.avail_out == 0) continue; /* output full: grow or stop at the top */
            if (zs.avail_in == 0 && in_pos == src_len) {
                st = cldp_fail(CLDP_ERR_FORMAT,
                               "%s: gzip stream is truncated (ends after %zu inflated bytes)", name,
                               produced);
                break;
            }
            continue;
        }
        st = zlib_fail(zr, &zs, name);
        break;
    }
    inflateEnd(&zs);

    if (st == CLDP_OK && !peek && produced > limit)
        st = cldp_fail(CLDP_ERR_FORMAT,
                       "%s: gzip data inflates to more than the %zu bytes its IDX header describes "
                       "(a damaged file or a zip bomb)",
                       name, limit);
    if (st != CLDP_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    *out_len = produced;
    return CLDP_OK;
}

/* ---- IDX headers -------------------------------------------------------------------------- */

typedef struct idx_header {
    uint32_t count;    /* samples (the first dimension) */
    size_t features;   /* product of the other dimensions; 1 for labels */
    size_t total;      /* header + data bytes the file must hold */
} idx_header;

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Checks the header at the start of `p` (only its first bytes need be present) for a file of
 * `want_dims` dimensions: 3 for images (n, rows, cols), 1 for labels (n). */
static cldp_status parse_header(const unsigned char *p, size_t len, unsigned want_dims,
                                const char *name, idx_header *h)
{
    const char *kind = want_dims == 3 ? "an image file" : "a label file";
    const char *shape = want_dims == 3 ? "(n, rows, cols)" : "(n)";
    size_t header_len = 4 + 4 * (size_t)want_dims;

    if (len < 4)
        return cldp_fail(CLDP_ERR_FORMAT,
                         "%s: truncated IDX header (%zu bytes; %s's header has %zu)", name, len,
                         kind, header_len);
    if (p[0] != 0 || p[1] != 0)
        return cldp_fail(CLDP_ERR_FORMAT,
                         "%s: not an IDX file (starts %02x %02x %02x %02x; IDX starts 00 00)", name,
                         p[0], p[1], p[2], p[3]);
    if (p[2] != IDX_TYPE_UBYTE)
        return cldp_fail(CLDP_ERR_FORMAT,
                         "%s: IDX element type 0x%02x is not unsigned byte (0x08), the only type "
                         "cldp reads",
                         name, p[2]);
    if (p[3] != want_dims)
        return cldp_fail(CLDP_ERR_FORMAT,
                         "%s: IDX data has %u dimensions but %s has %u %s%s", name, p[3], kind,
                         want_dims, shape,
                         (p[3] == 1 || p[3] == 3) ? "; are the image and label files swapped?" : "");
    if (len < header_len)
        return cldp_fail(CLDP_ERR_FORMAT,
                         "%s: truncated IDX header (%zu bytes; %s's header has %zu)", name, len,
                         kind, header_len);

    uint32_t dims[3] = {0, 1, 1};
    for (unsigned i = 0; i < want_dims; i++) {
        dims[i] = be32(p + 4 + 4 * i);
        if (dims[i] == 0)
            return cldp_fail(CLDP_ERR_FORMAT, "%s: IDX dimension %u of %s %s is 0", name, i,
                             kind, shape);
    }
    /* Dimensions are below 2^32 each, so these 64-bit products cannot overflow before the
     * limits reject them. */
    uint64_t features = (uint64_t)dims[1] * dims[2];
    if (features > IDX_MAX_FEATURES)
        return cldp_fail(CLDP_ERR_FORMAT,
                         "%s: images of %" PRIu32 " x %" PRIu32 " pixels are beyond the limit of "
                         "%" PRIu64 " pixels a sample; the header is damaged",
                         name, dims[1], dims[2], (uint64_t)IDX_MAX_FEATURES);
    uint64_t total = (uint64_t)dims[0] * features + header_len;
    if (total > IDX_MAX_BYTES)
        return cldp_fail(CLDP_ERR_FORMAT,
                         "%s: IDX header describes %" PRIu32 " samples, %" PRIu64 " bytes, more "
                         "than the %" PRIu64 "-byte limit",
                         name, dims[0], total, (uint64_t)IDX_MAX_BYTES);
    h->count = dims[0];
    h->features = (size_t)features;
    h->total = (size_t)total;
    return CLDP_OK;
}

/* ---- one IDX input ------------------------------------------------------------------------ */

/* An input's bytes after inflating (`data` points into the caller's buffer when it was raw). */
typedef struct idx_input {
    const unsigned char *src;
    size_t src_len;
    const char *name;
    unsigned dims;
    int gz;
    idx_header h;
    const unsigned char *data; /* (h.total) bytes */
    unsigned char *owned;      /* inflated copy, freed by the caller */
} idx_input;

static cldp_status read_header(idx_input *in)
{
    in->gz = is_gzip(in->src, in->src_len);
    if (!in->gz) return parse_header(in->src, in->src_len, in->dims, in->name, &in->h);
    /* Only the header is inflated here, so a bad header or a count mismatch is reported before
     * the whole file is inflated. */
    unsigned char *head;
    size_t head_len;
    size_t want = in->dims == 3 ? IDX_IMAGE_HEADER : IDX_LABEL_HEADER;
    TRY(gunzip(in->src, in->src_len, in->name, want, 1, &head, &head_len));
    cldp_status st = parse_header(head, head_len, in->dims, in->name, &in->h);
    free(head);
    return st;
}

static cldp_status read_data(idx_input *in)
{
    size_t have;
    if (in->gz) {
        TRY(gunzip(in->src, in->src_len, in->name, in->h.total, 0, &in->owned, &have));
        in->data = in->owned;
    } else {
        in->data = in->src;
        have = in->src_len;
    }
    if (have < in->h.total)
        return cldp_fail(CLDP_ERR_FORMAT,
                         "%s: data is shorter than its IDX header says (%zu of %zu bytes%s); the "
                         "file is truncated",
                         in->name, have, in->h.total, in->gz ? " after inflating" : "");
    if (have > in->h.total)
        return cldp_fail(CLDP_ERR_FORMAT,
                         "%s: %zu bytes more than its IDX header describes (%zu)", in->name,
                         have - in->h.total, in->h.total);
    return CLDP_OK;
}

/* ---- datasets from memory ----------------------------------------------------------------- */

/* The one parser behind every loader; names say which file or buffer a message is about.
 * `known_classes` is the label count of a known dataset (Fashion-MNIST's 10): a label at or
 * above it is refused, naming the file, the index and the label. 0: any byte is a label. */
static cldp_status from_memory_named(const unsigned char *images, size_t images_len,
                                     const char *images_name, const unsigned char *labels,
                                     size_t labels_len, const char *labels_name,
                                     unsigned known_classes, cldp_dataset **out)
{
    idx_input img = {images, images_len, images_name, 3, 0, {0, 0, 0}, NULL, NULL};
    idx_input lab = {labels, labels_len, labels_name, 1, 0, {0, 0, 0}, NULL, NULL};
    cldp_dataset *ds = NULL;
    cldp_status st;

    if ((st = read_header(&img)) != CLDP_OK || (st = read_header(&lab)) != CLDP_OK) goto done;
    if (img.h.count != lab.h.count) {
        st = cldp_fail(CLDP_ERR_FORMAT,
                       "%s holds %" PRIu32 " images but %s holds %" PRIu32 " labels; they must "
                       "come from the same split",
                       images_name, img.h.count, labels_name, lab.h.count);
        goto done;
    }
    if ((st = read_data(&img)) != CLDP_OK || (st = read_data(&lab)) != CLDP_OK) goto done;

    size_t n = img.h.count, features = img.h.features, pixels, bytes;
    if (cldp_mul_size(n, features, &pixels) != 0 ||
        cldp_mul_size(pixels, sizeof(float), &bytes) != 0) {
        st = cldp_fail(CLDP_ERR_HOST_MEMORY, "%s: %zu x %zu floats do not fit the address space",
                       images_name, n, features);
        goto done;
    }
    ds = cldp_calloc(1, sizeof *ds, "dataset");
    if (!ds) {
        st = CLDP_ERR_HOST_MEMORY;
        goto done;
    }
    ds->images = cldp_malloc(bytes, "dataset images");
    ds->labels = ds->images ? cldp_malloc(n * sizeof(int32_t), "dataset labels") : NULL;
    if (!ds->labels) {
        st = CLDP_ERR_HOST_MEMORY;
        goto done;
    }

    /* A table gives each byte exactly the float v / 255.0f, cheaper than dividing per pixel. */
    float scale[256];
    for (int v = 0; v < 256; v++) scale[v] = (float)v / 255.0f;
    const unsigned char *px = img.data + IDX_IMAGE_HEADER;
    for (size_t i = 0; i < pixels; i++) ds->images[i] = scale[px[i]];

    const unsigned char *lb = lab.data + IDX_LABEL_HEADER;
    unsigned max_label = 0;
    for (size_t i = 0; i < n; i++) {
        if (known_classes && lb[i] >= known_classes) {
            st = cldp_fail(CLDP_ERR_FORMAT,
                           "%s: label %u at index %zu is outside Fashion-MNIST's %u classes (0 to "
                           "%u); the file is damaged or holds another dataset (cldp_dataset_load_idx "
                           "reads any labels)",
                           labels_name, lb[i], i, known_classes, known_classes - 1);
            goto done;
        }
        ds->labels[i] = lb[i];
        if (lb[i] > max_label) max_label = lb[i];
    }
    ds->count = n;
    ds->features = features;
    ds->classes = (size_t)max_label + 1;
    st = CLDP_OK;

done:
    free(img.owned);
    free(lab.owned);
    if (st != CLDP_OK) {
        cldp_dataset_destroy(ds);
        ds = NULL;
    }
    *out = ds;
    return st;
}

cldp_status cldp_dataset_from_idx_memory(const void *images, size_t images_len, const void *labels,
                                         size_t labels_len, cldp_dataset **out)
{
    REQUIRE(out, "cldp_dataset_from_idx_memory: out is NULL");
    *out = NULL;
    REQUIRE(images, "cldp_dataset_from_idx_memory: images is NULL");
    REQUIRE(labels, "cldp_dataset_from_idx_memory: labels is NULL");
    return from_memory_named(images, images_len, "images buffer", labels, labels_len,
                             "labels buffer", 0, out);
}

/* ---- datasets from files ------------------------------------------------------------------ */

/* Reads a whole file; `hint` is appended to the message when it cannot be opened. Anything longer
 * than an IDX file may be is refused while reading, so /dev/zero cannot exhaust memory. */
static cldp_status read_file(const char *path, const char *hint, unsigned char **out,
                             size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return cldp_fail(CLDP_ERR_IO, "cannot open %s: %s%s", path, strerror(errno), hint);

    /* A raw IDX file is at most the limit, and gzip's worst case (stored blocks) adds far less
     * than 1/256 to it. One byte of room beyond that shows a file is too long. */
    const size_t max_len = (size_t)IDX_MAX_BYTES + (size_t)(IDX_MAX_BYTES >> 8);
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = cldp_malloc(cap, "file contents");
    cldp_status st = buf ? CLDP_OK : CLDP_ERR_HOST_MEMORY;
    while (st == CLDP_OK) {
        if (len == cap) {
            if (cap > max_len) {
                st = cldp_fail(CLDP_ERR_FORMAT,
                               "%s: larger than %zu bytes, more than any IDX file cldp reads",
                               path, max_len);
                break;
            }
            size_t grown = cap > max_len / 2 ? max_len + 1 : cap * 2;
            unsigned char *nb = cldp_realloc(buf, grown, "file contents");
            if (!nb) {
                st = cldp_fail(CLDP_ERR_HOST_MEMORY, "%s: out of host memory reading %zu bytes",
                               path, grown);
                break;
            }
            buf = nb;
            cap = grown;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f))
                st = cldp_fail(CLDP_ERR_IO, "cannot read %s: %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (st != CLDP_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    *out_len = len;
    return CLDP_OK;
}

static cldp_status load_files(const char *images_path, const char *labels_path, const char *hint,
                              unsigned known_classes, cldp_dataset **out)
{
    unsigned char *img = NULL, *lab = NULL;
    size_t img_len = 0, lab_len = 0;
    cldp_status st = read_file(images_path, hint, &img, &img_len);
    if (st == CLDP_OK) st = read_file(labels_path, hint, &lab, &lab_len);
    if (st == CLDP_OK)
        st = from_memory_named(img, img_len, images_path, lab, lab_len, labels_path,
                               known_classes, out);
    free(img);
    free(lab);
    return st;
}

cldp_status cldp_dataset_load_idx(const char *images_path, const char *labels_path,
                                  cldp_dataset **out)
{
    REQUIRE(out, "cldp_dataset_load_idx: out is NULL");
    *out = NULL;
    REQUIRE(images_path, "cldp_dataset_load_idx: images_path is NULL");
    REQUIRE(labels_path, "cldp_dataset_load_idx: labels_path is NULL");
    return load_files(images_path, labels_path, "; check the path", 0, out);
}

cldp_status cldp_dataset_load_fashion_mnist(const char *dir, int train, cldp_dataset **out)
{
    REQUIRE(out, "cldp_dataset_load_fashion_mnist: out is NULL");
    *out = NULL;
    const char *d = dir ? dir : FMNIST_DEFAULT_DIR;
    const char *split = train ? "train" : "t10k";
    size_t dlen = strlen(d);
    const char *sep = dlen > 0 && d[dlen - 1] == '/' ? "" : "/";
    /* Long enough for "<dir>/train-images-idx3-ubyte.gz" and the labels' name. */
    size_t cap = dlen + 64;
    char *images_path = cldp_malloc(cap, "path");
    char *labels_path = images_path ? cldp_malloc(cap, "path") : NULL;
    if (!labels_path) {
        free(images_path);
        return CLDP_ERR_HOST_MEMORY;
    }
    snprintf(images_path, cap, "%s%s%s-images-idx3-ubyte.gz", d, sep, split);
    snprintf(labels_path, cap, "%s%s%s-labels-idx1-ubyte.gz", d, sep, split);
    const char *hint = dir ? "; pass the directory that holds Fashion-MNIST's four .gz files"
                           : "; install Debian's dataset-fashion-mnist or pass --data DIR";
    cldp_status st = load_files(images_path, labels_path, hint, FMNIST_CLASSES, out);
    free(images_path);
    free(labels_path);
    return st;
}

/* ---- the embedded subset ------------------------------------------------------------------ */

/* Generated from runtime/data/fmnist-mini-*.gz by cmake/embed.cmake. */
extern const unsigned char cldp_embed_fmnist_train_images[];
extern const size_t cldp_embed_fmnist_train_images_len;
extern const unsigned char cldp_embed_fmnist_train_labels[];
extern const size_t cldp_embed_fmnist_train_labels_len;
extern const unsigned char cldp_embed_fmnist_test_images[];
extern const size_t cldp_embed_fmnist_test_images_len;
extern const unsigned char cldp_embed_fmnist_test_labels[];
extern const size_t cldp_embed_fmnist_test_labels_len;

cldp_status cldp_dataset_embedded(int train, cldp_dataset **out)
{
    REQUIRE(out, "cldp_dataset_embedded: out is NULL");
    *out = NULL;
    if (train)
        return from_memory_named(cldp_embed_fmnist_train_images,
                                 cldp_embed_fmnist_train_images_len,
                                 "embedded fmnist-mini-train-images.gz",
                                 cldp_embed_fmnist_train_labels,
                                 cldp_embed_fmnist_train_labels_len,
                                 "embedded fmnist-mini-train-labels.gz", FMNIST_CLASSES, out);
    return from_memory_named(cldp_embed_fmnist_test_images, cldp_embed_fmnist_test_images_len,
                             "embedded fmnist-mini-test-images.gz", cldp_embed_fmnist_test_labels,
                             cldp_embed_fmnist_test_labels_len,
                             "embedded fmnist-mini-test-labels.gz", FMNIST_CLASSES, out);
}

/* ---- handle ------------------------------------------------------------------------------- */

void cldp_dataset_destroy(cldp_dataset *ds)
{
    if (!ds) return;
    free(ds->images);
    free(ds->labels);
    free(ds);
}

size_t cldp_dataset_count(const cldp_dataset *ds) { return ds ? ds->count : 0; }
size_t cldp_dataset_features(const cldp_dataset *ds) { return ds ? ds->features : 0; }
size_t cldp_dataset_classes(const cldp_dataset *ds) { return ds ? ds->classes : 0; }
const float *cldp_dataset_images(const cldp_dataset *ds) { return ds ? ds->images : NULL; }
const int32_t *cldp_dataset_labels(const cldp_dataset *ds) { return ds ? ds->labels : NULL; }
