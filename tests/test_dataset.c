/* test_dataset.c — the dataset loaders through the public API only: the embedded subset, the real
 * Fashion-MNIST files when installed, and every kind of damaged IDX input, raw, gzipped and on disk;
 * Fashion-MNIST's loader refuses a label outside its 10 classes, naming file, index and label. */
#define _POSIX_C_SOURCE 200809L /* mkstemp, mkdtemp, unlink, rmdir */
#undef NDEBUG                   /* assert guards the test's own scaffolding */
#include <assert.h>

#include "cldp.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

static int failures;
static int checks;

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        checks++;                                                                              \
        if (!(cond)) {                                                                         \
            failures++;                                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);           \
        }                                                                                      \
    } while (0)

/* A failing load must give `want`, a message, and no dataset; `what` says which case it was.
 * `call` passes &cf_ds_ as its out-parameter, poisoned first so that a stale value shows. */
#define CHECK_FAILS(call, want, what)                                                          \
    do {                                                                                       \
        cldp_dataset *cf_ds_ = (cldp_dataset *)&failures;                                      \
        cldp_status cf_st_ = (call);                                                           \
        checks++;                                                                              \
        if (cf_st_ != (want) || cldp_last_error()[0] == '\0' || cf_ds_ != NULL) {              \
            failures++;                                                                        \
            fprintf(stderr, "%s:%d: %s: got %s (%s), want %s\n", __FILE__, __LINE__, (what),   \
                    cldp_status_string(cf_st_), cldp_last_error(), cldp_status_string(want));  \
        }                                                                                      \
    } while (0)

/* ---- building IDX buffers ----------------------------------------------------------------- */

typedef struct buf {
    unsigned char *p;
    size_t n;
} buf;

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Magic (b0 b1 type ndims), `ndims` big-endian dimensions, then `payload`. */
static buf idx_make(unsigned char b0, unsigned char b1, unsigned char type, unsigned ndims,
                    const uint32_t *dims, const unsigned char *payload, size_t payload_len)
{
    buf b;
    b.n = 4 + 4 * (size_t)ndims + payload_len;
    b.p = malloc(b.n ? b.n : 1);
    assert(b.p);
    b.p[0] = b0;
    b.p[1] = b1;
    b.p[2] = type;
    b.p[3] = (unsigned char)ndims;
    for (unsigned i = 0; i < ndims; i++) put_be32(b.p + 4 + 4 * i, dims[i]);
    if (payload_len) memcpy(b.p + 4 + 4 * (size_t)ndims, payload, payload_len);
    return b;
}

static buf copy_prefix(buf src, size_t n)
{
    buf b;
    b.n = n;
    b.p = malloc(n ? n : 1);
    assert(b.p);
    memcpy(b.p, src.p, n);
    return b;
}

/* gzip (header and trailer, as gzip(1) writes) of `data`, followed by `zeros` zero bytes fed in
 * pieces, so a large bomb never needs its inflated size in memory here. */
static buf gz_with_zeros(const unsigned char *data, size_t len, size_t zeros, int level)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    int zr = deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    assert(zr == Z_OK);
    buf out;
    size_t cap = deflateBound(&zs, (uLong)len) + zeros / 512 + 4096;
    out.p = malloc(cap);
    assert(out.p);
    out.n = 0;
    static unsigned char zero_block[1 << 20];
    size_t zeros_left = zeros;
    int data_done = 0;
    for (;;) {
        if (zs.avail_in == 0) {
            if (!data_done) {
                zs.next_in = (unsigned char *)data;
                zs.avail_in = (uInt)len;
                data_done = 1;
            } else if (zeros_left) {
                size_t piece = zeros_left < sizeof zero_block ? zeros_left : sizeof zero_block;
                zs.next_in = zero_block;
                zs.avail_in = (uInt)piece;
                zeros_left -= piece;
            }
        }
        int flush = (data_done && zeros_left == 0) ? Z_FINISH : Z_NO_FLUSH;
        if (out.n == cap) {
            cap *= 2;
            out.p = realloc(out.p, cap);
            assert(out.p);
        }
        zs.next_out = out.p + out.n;
        zs.avail_out = (uInt)(cap - out.n);
        zr = deflate(&zs, flush);
        out.n = cap - zs.avail_out;
        if (zr == Z_STREAM_END) break;
        assert(zr == Z_OK || zr == Z_BUF_ERROR);
    }
    deflateEnd(&zs);
    return out;
}

static buf gz(buf raw) { return gz_with_zeros(raw.p, raw.n, 0, 9); }

static int contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

/* ---- the tiny valid dataset --------------------------------------------------------------- */

enum { TN = 3, TROWS = 2, TCOLS = 3, TPIX = TN * TROWS * TCOLS };
static unsigned char tiny_pixels[TPIX];
static unsigned char tiny_labels[TN];

static buf tiny_images(void)
{
    uint32_t dims[3] = {TN, TROWS, TCOLS};
    return idx_make(0, 0, 0x08, 3, dims, tiny_pixels, TPIX);
}

static buf tiny_labels_buf(void)
{
    uint32_t dims[1] = {TN};
    return idx_make(0, 0, 0x08, 1, dims, tiny_labels, TN);
}

/* Checks that `ds` holds exactly the tiny dataset's values. */
static void check_tiny(const cldp_dataset *ds, const char *what)
{
    CHECK(ds != NULL);
    if (!ds) return;
    CHECK(cldp_dataset_count(ds) == TN);
    CHECK(cldp_dataset_features(ds) == TROWS * TCOLS);
    unsigned max_label = 0;
    for (int i = 0; i < TN; i++)
        if (tiny_labels[i] > max_label) max_label = tiny_labels[i];
    CHECK(cldp_dataset_classes(ds) == max_label + 1);
    const float *x = cldp_dataset_images(ds);
    const int32_t *y = cldp_dataset_labels(ds);
    CHECK(x && y);
    if (!x || !y) return;
    int bad = -1;
    for (int i = 0; i < TPIX; i++)
        if (x[i] != (float)tiny_pixels[i] / 255.0f) bad = i;
    if (bad >= 0)
        fprintf(stderr, "%s: pixel %d is %.9g, want %.9g\n", what, bad, x[bad],
                tiny_pixels[bad] / 255.0);
    CHECK(bad < 0);
    for (int i = 0; i < TN; i++) CHECK(y[i] == tiny_labels[i]);
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_null_safety(void)
{
    cldp_dataset *ds = (cldp_dataset *)&failures;
    unsigned char b[16] = {0};
    CHECK(cldp_dataset_count(NULL) == 0);
    CHECK(cldp_dataset_features(NULL) == 0);
    CHECK(cldp_dataset_classes(NULL) == 0);
    CHECK(cldp_dataset_images(NULL) == NULL);
    CHECK(cldp_dataset_labels(NULL) == NULL);
    cldp_dataset_destroy(NULL);

    CHECK(cldp_dataset_load_idx(NULL, "x", &ds) == CLDP_ERR_INVALID_ARGUMENT && ds == NULL);
    ds = (cldp_dataset *)&failures;
    CHECK(cldp_dataset_load_idx("x", NULL, &ds) == CLDP_ERR_INVALID_ARGUMENT && ds == NULL);
    CHECK(cldp_dataset_load_idx("x", "y", NULL) == CLDP_ERR_INVALID_ARGUMENT);
    ds = (cldp_dataset *)&failures;
    CHECK(cldp_dataset_from_idx_memory(NULL, 0, b, sizeof b, &ds) == CLDP_ERR_INVALID_ARGUMENT &&
          ds == NULL);
    ds = (cldp_dataset *)&failures;
    CHECK(cldp_dataset_from_idx_memory(b, sizeof b, NULL, 0, &ds) == CLDP_ERR_INVALID_ARGUMENT &&
          ds == NULL);
    CHECK(cldp_dataset_from_idx_memory(b, sizeof b, b, sizeof b, NULL) ==
          CLDP_ERR_INVALID_ARGUMENT);
    CHECK(cldp_dataset_load_fashion_mnist(NULL, 0, NULL) == CLDP_ERR_INVALID_ARGUMENT);
    CHECK(cldp_dataset_embedded(1, NULL) == CLDP_ERR_INVALID_ARGUMENT);
    CHECK(cldp_last_error()[0] != '\0');
}

static void test_embedded(void)
{
    for (int train = 1; train >= 0; train--) {
        cldp_dataset *ds = NULL;
        cldp_status st = cldp_dataset_embedded(train, &ds);
        if (st != CLDP_OK) fprintf(stderr, "embedded(%d): %s\n", train, cldp_last_error());
        CHECK(st == CLDP_OK);
        if (st != CLDP_OK) continue;
        size_t n = cldp_dataset_count(ds);
        CHECK(n == (train ? 2000u : 500u));
        CHECK(cldp_dataset_features(ds) == 784);
        CHECK(cldp_dataset_classes(ds) == 10);
        const float *x = cldp_dataset_images(ds);
        const int32_t *y = cldp_dataset_labels(ds);
        float lo = 1, hi = 0;
        double sum = 0;
        for (size_t i = 0; i < n * 784; i++) {
            if (x[i] < lo) lo = x[i];
            if (x[i] > hi) hi = x[i];
            sum += x[i];
        }
        CHECK(lo >= 0.0f && hi <= 1.0f);
        CHECK(hi > 0.0f); /* not all zeros */
        double mean = sum / (double)(n * 784);
        CHECK(mean > 0.2 && mean < 0.4); /* Fashion-MNIST's mean pixel is about 0.29 */
        int seen[10] = {0};
        for (size_t i = 0; i < n; i++) {
            CHECK(y[i] >= 0 && y[i] < 10);
            if (y[i] >= 0 && y[i] < 10) seen[y[i]] = 1;
        }
        for (int c = 0; c < 10; c++) CHECK(seen[c]);
        printf("embedded %s: %zu samples, mean pixel %.4f\n", train ? "train" : "test", n, mean);
        cldp_dataset_destroy(ds);
    }
}

static void test_real_fashion_mnist(void)
{
    const char *dir = "/usr/share/datasets/fashion-mnist";
    FILE *probe = fopen("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz", "rb");
    if (!probe) {
        printf("SKIP: %s is absent (Debian's dataset-fashion-mnist); real test split not "
               "checked\n", dir);
        CHECK_FAILS(cldp_dataset_load_fashion_mnist(NULL, 0, &cf_ds_), CLDP_ERR_IO, "default dir");
        CHECK(contains(cldp_last_error(), "dataset-fashion-mnist"));
        CHECK(contains(cldp_last_error(), dir));
        return;
    }
    fclose(probe);
    cldp_dataset *ds = NULL, *emb = NULL;
    cldp_status st = cldp_dataset_load_fashion_mnist(NULL, 0, &ds);
    if (st != CLDP_OK) fprintf(stderr, "real test split: %s\n", cldp_last_error());
    CHECK(st == CLDP_OK);
    CHECK(cldp_dataset_count(ds) == 10000);
    CHECK(cldp_dataset_features(ds) == 784);
    CHECK(cldp_dataset_classes(ds) == 10);
    /* The embedded test subset is the real split's first 500 samples. */
    CHECK(cldp_dataset_embedded(0, &emb) == CLDP_OK);
    if (ds && emb) {
        CHECK(memcmp(cldp_dataset_images(ds), cldp_dataset_images(emb),
                     500 * 784 * sizeof(float)) == 0);
        CHECK(memcmp(cldp_dataset_labels(ds), cldp_dataset_labels(emb),
                     500 * sizeof(int32_t)) == 0);
    }
    printf("real test split: %zu samples\n", cldp_dataset_count(ds));
    cldp_dataset_destroy(ds);
    cldp_dataset_destroy(emb);
}

static void test_valid_memory(void)
{
    buf img = tiny_images(), lab = tiny_labels_buf();
    buf gimg = gz(img), glab = gz(lab);
    const buf *imgs[2] = {&img, &gimg}, *labs[2] = {&lab, &glab};
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            cldp_dataset *ds = NULL;
            cldp_status st = cldp_dataset_from_idx_memory(imgs[a]->p, imgs[a]->n, labs[b]->p,
                                                          labs[b]->n, &ds);
            if (st != CLDP_OK) fprintf(stderr, "valid tiny %d%d: %s\n", a, b, cldp_last_error());
            CHECK(st == CLDP_OK);
            check_tiny(ds, a ? "gz images" : "raw images");
            cldp_dataset_destroy(ds);
        }

    /* Two gzip members end to end, as `cat a.gz b.gz` makes, are one file. */
    size_t half = img.n / 2;
    buf m1 = gz_with_zeros(img.p, half, 0, 6), m2 = gz_with_zeros(img.p + half, img.n - half, 0, 6);
    buf multi = {malloc(m1.n + m2.n), m1.n + m2.n};
    assert(multi.p);
    memcpy(multi.p, m1.p, m1.n);
    memcpy(multi.p + m1.n, m2.p, m2.n);
    cldp_dataset *ds = NULL;
    CHECK(cldp_dataset_from_idx_memory(multi.p, multi.n, lab.p, lab.n, &ds) == CLDP_OK);
    check_tiny(ds, "multi-member gzip");
    cldp_dataset_destroy(ds);

    /* Anything else after the gzip stream is damage. */
    buf stray = {malloc(gimg.n + 3), gimg.n + 3};
    assert(stray.p);
    memcpy(stray.p, gimg.p, gimg.n);
    memset(stray.p + gimg.n, 0, 3);
    CHECK_FAILS(cldp_dataset_from_idx_memory(stray.p, stray.n, lab.p, lab.n, &cf_ds_),
                CLDP_ERR_FORMAT, "bytes after gzip stream");

    free(m1.p);
    free(m2.p);
    free(multi.p);
    free(stray.p);
    free(img.p);
    free(lab.p);
    free(gimg.p);
    free(glab.p);
}

/* A repetitive 2000-sample set compresses about 100:1, so inflating it has to grow its buffer
 * from a small start: the path real files that compress well take. */
static void test_compressible(void)
{
    enum { N = 2000, F = 28 * 28 };
    unsigned char *px = malloc((size_t)N * F), lb[N];
    assert(px);
    unsigned char period[37];
    for (size_t i = 0; i < sizeof period; i++) period[i] = (unsigned char)rand();
    for (size_t i = 0; i < (size_t)N * F; i++) px[i] = period[i % sizeof period];
    for (int i = 0; i < N; i++) lb[i] = (unsigned char)(i % 7);
    uint32_t dims[3] = {N, 28, 28}, ldims[1] = {N};
    buf img = idx_make(0, 0, 0x08, 3, dims, px, (size_t)N * F);
    buf lab = idx_make(0, 0, 0x08, 1, ldims, lb, N);
    buf gimg = gz(img), glab = gz(lab);
    printf("compressible: %zu bytes gzipped to %zu\n", img.n, gimg.n);
    cldp_dataset *ds = NULL;
    cldp_status st = cldp_dataset_from_idx_memory(gimg.p, gimg.n, glab.p, glab.n, &ds);
    if (st != CLDP_OK) fprintf(stderr, "compressible: %s\n", cldp_last_error());
    CHECK(st == CLDP_OK);
    if (ds) {
        CHECK(cldp_dataset_count(ds) == N && cldp_dataset_features(ds) == F);
        CHECK(cldp_dataset_classes(ds) == 7);
        const float *x = cldp_dataset_images(ds);
        size_t bad = 0;
        for (size_t i = 0; i < (size_t)N * F; i++) bad += x[i] != (float)px[i] / 255.0f;
        CHECK(bad == 0);
        CHECK(memcmp(cldp_dataset_labels(ds), (int32_t[]){0, 1, 2, 3, 4, 5, 6, 0},
                     8 * sizeof(int32_t)) == 0);
    }
    cldp_dataset_destroy(ds);
    /* Cut short at several points, growing or not. */
    const size_t cuts[] = {gimg.n / 8, gimg.n / 2, gimg.n - 9, gimg.n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        CHECK_FAILS(cldp_dataset_from_idx_memory(gimg.p, cuts[i], glab.p, glab.n, &cf_ds_),
                    CLDP_ERR_FORMAT, "compressible cut");
    free(px);
    free(img.p);
    free(lab.p);
    free(gimg.p);
    free(glab.p);
}

/* Expects a bad image buffer (with good labels) to fail with CLDP_ERR_FORMAT raw and gzipped. */
static void expect_bad_images(buf bad, const char *what)
{
    buf lab = tiny_labels_buf(), gbad = gz(bad);
    char ctx[160];
    snprintf(ctx, sizeof ctx, "raw images, %s", what);
    CHECK_FAILS(cldp_dataset_from_idx_memory(bad.p, bad.n, lab.p, lab.n, &cf_ds_),
                CLDP_ERR_FORMAT, ctx);
    CHECK(contains(cldp_last_error(), "images"));
    snprintf(ctx, sizeof ctx, "gz images, %s", what);
    CHECK_FAILS(cldp_dataset_from_idx_memory(gbad.p, gbad.n, lab.p, lab.n, &cf_ds_),
                CLDP_ERR_FORMAT, ctx);
    CHECK(contains(cldp_last_error(), "images"));
    free(lab.p);
    free(gbad.p);
    free(bad.p);
}

static void expect_bad_labels(buf bad, const char *what)
{
    buf img = tiny_images(), gbad = gz(bad);
    char ctx[160];
    snprintf(ctx, sizeof ctx, "raw labels, %s", what);
    CHECK_FAILS(cldp_dataset_from_idx_memory(img.p, img.n, bad.p, bad.n, &cf_ds_),
                CLDP_ERR_FORMAT, ctx);
    CHECK(contains(cldp_last_error(), "labels"));
    snprintf(ctx, sizeof ctx, "gz labels, %s", what);
    CHECK_FAILS(cldp_dataset_from_idx_memory(img.p, img.n, gbad.p, gbad.n, &cf_ds_),
                CLDP_ERR_FORMAT, ctx);
    CHECK(contains(cldp_last_error(), "labels"));
    free(img.p);
    free(gbad.p);
    free(bad.p);
}

static void test_damaged_headers(void)
{
    uint32_t d3[4] = {TN, TROWS, TCOLS, 1};
    uint32_t d1[1] = {TN};

    expect_bad_images(idx_make(1, 0, 0x08, 3, d3, tiny_pixels, TPIX), "magic byte 0");
    expect_bad_images(idx_make(0, 8, 0x08, 3, d3, tiny_pixels, TPIX), "magic byte 1");
    const unsigned char types[] = {0x00, 0x09, 0x0b, 0x0c, 0x0d, 0x0e, 0xff};
    for (size_t i = 0; i < sizeof types; i++)
        expect_bad_images(idx_make(0, 0, types[i], 3, d3, tiny_pixels, TPIX), "wrong type");
    for (unsigned nd = 0; nd <= 4; nd++)
        if (nd != 3) expect_bad_images(idx_make(0, 0, 0x08, nd, d3, tiny_pixels, TPIX), "ndims");
    /* ndims 255 with only 16 bytes behind it: must be refused without reading 1020 bytes. */
    buf nd255 = idx_make(0, 0, 0x08, 3, d3, NULL, 0);
    nd255.p[3] = 255;
    expect_bad_images(nd255, "ndims 255");

    /* Zero dimensions: one at a time. */
    for (int k = 0; k < 3; k++) {
        uint32_t dz[3] = {TN, TROWS, TCOLS};
        dz[k] = 0;
        expect_bad_images(idx_make(0, 0, 0x08, 3, dz, tiny_pixels, TPIX), "zero dimension");
    }
    /* Absurd dimensions: rows*cols that overflows 32 bits, is far too large, or a sample count
     * whose data would exceed any sane file. The data is short too, but the header must say. */
    const uint32_t absurd[][3] = {{TN, 65536, 65536},   {TN, 0xffffffffu, 0xffffffffu},
                                  {TN, 1u << 21, 1},     {TN, 2048, 1024},
                                  {1u << 21, 28, 28},    {0xffffffffu, 1, 1}};
    for (size_t i = 0; i < sizeof absurd / sizeof absurd[0]; i++)
        expect_bad_images(idx_make(0, 0, 0x08, 3, absurd[i], tiny_pixels, TPIX), "absurd dims");

    /* Labels. */
    expect_bad_labels(idx_make(0, 1, 0x08, 1, d1, tiny_labels, TN), "magic");
    expect_bad_labels(idx_make(0, 0, 0x0c, 1, d1, tiny_labels, TN), "type");
    expect_bad_labels(idx_make(0, 0, 0x08, 2, d3, tiny_labels, TN), "ndims 2");
    uint32_t dz1[1] = {0};
    expect_bad_labels(idx_make(0, 0, 0x08, 1, dz1, NULL, 0), "zero count");
    uint32_t dhuge[1] = {0xffffffffu};
    expect_bad_labels(idx_make(0, 0, 0x08, 1, dhuge, tiny_labels, TN), "absurd count");

    /* Image and label files swapped: the message should suggest it. */
    buf img = tiny_images(), lab = tiny_labels_buf();
    CHECK_FAILS(cldp_dataset_from_idx_memory(lab.p, lab.n, img.p, img.n, &cf_ds_),
                CLDP_ERR_FORMAT, "swapped");
    CHECK(contains(cldp_last_error(), "swapped"));
    free(img.p);
    free(lab.p);
}

static void test_truncation_and_counts(void)
{
    buf img = tiny_images(), lab = tiny_labels_buf();
    /* Every truncation, header and data alike, of both raw buffers. */
    for (size_t n = 0; n < img.n; n++) expect_bad_images(copy_prefix(img, n), "truncated");
    for (size_t n = 0; n < lab.n; n++) expect_bad_labels(copy_prefix(lab, n), "truncated");
    /* One byte too many. */
    buf longer = {malloc(img.n + 1), img.n + 1};
    assert(longer.p);
    memcpy(longer.p, img.p, img.n);
    longer.p[img.n] = 7;
    expect_bad_images(longer, "extra byte");
    buf llonger = {malloc(lab.n + 1), lab.n + 1};
    assert(llonger.p);
    memcpy(llonger.p, lab.p, lab.n);
    llonger.p[lab.n] = 1;
    expect_bad_labels(llonger, "extra byte");

    /* Count mismatch, each file consistent in itself. */
    uint32_t d2[1] = {TN - 1};
    expect_bad_labels(idx_make(0, 0, 0x08, 1, d2, tiny_labels, TN - 1), "count mismatch");
    CHECK(contains(cldp_last_error(), "images buffer") && contains(cldp_last_error(), "labels"));
    uint32_t d4[1] = {TN + 1};
    unsigned char more[TN + 1] = {1, 2, 3, 4};
    expect_bad_labels(idx_make(0, 0, 0x08, 1, d4, more, TN + 1), "count mismatch");

    /* A valid gzip cut at every byte: always a clean CLDP_ERR_FORMAT. */
    buf gimg = gz(img), glab = gz(lab);
    for (size_t n = 0; n < gimg.n; n++)
        CHECK_FAILS(cldp_dataset_from_idx_memory(gimg.p, n, lab.p, lab.n, &cf_ds_),
                    CLDP_ERR_FORMAT, "gz images cut");
    for (size_t n = 0; n < glab.n; n++)
        CHECK_FAILS(cldp_dataset_from_idx_memory(img.p, img.n, glab.p, n, &cf_ds_),
                    CLDP_ERR_FORMAT, "gz labels cut");
    free(gimg.p);
    free(glab.p);
    free(img.p);
    free(lab.p);
}

static void test_corrupt_gzip(void)
{
    buf img = tiny_images(), lab = tiny_labels_buf(), gimg = gz(img);
    /* Every byte after gzip's 10-byte header (whose mtime/xfl/os bytes are not checked by
     * design) inverted: the deflate data, CRC and length are all covered. */
    for (size_t i = 2; i < gimg.n; i++) {
        if (i >= 4 && i < 10) continue;
        buf c = copy_prefix(gimg, gimg.n);
        c.p[i] ^= 0xff;
        char ctx[64];
        snprintf(ctx, sizeof ctx, "gz byte %zu inverted", i);
        CHECK_FAILS(cldp_dataset_from_idx_memory(c.p, c.n, lab.p, lab.n, &cf_ds_),
                    CLDP_ERR_FORMAT, ctx);
        free(c.p);
    }
    /* Random bytes behind a gzip magic. */
    unsigned char junk[256];
    junk[0] = 0x1f;
    junk[1] = 0x8b;
    for (int trial = 0; trial < 64; trial++) {
        for (size_t i = 2; i < sizeof junk; i++) junk[i] = (unsigned char)rand();
        CHECK_FAILS(cldp_dataset_from_idx_memory(junk, sizeof junk, lab.p, lab.n, &cf_ds_),
                    CLDP_ERR_FORMAT, "gzip magic then junk");
    }
    free(img.p);
    free(lab.p);
    free(gimg.p);
}

/* `head` as one gzip member followed by `copies` copies of member `z` (gzip allows members end to
 * end), so a stream inflating past 1 GiB costs only one 16 MiB deflate to build. */
static buf concat_members(buf head, buf z, size_t copies)
{
    buf b = {malloc(head.n + z.n * copies), head.n + z.n * copies};
    assert(b.p);
    memcpy(b.p, head.p, head.n);
    for (size_t i = 0; i < copies; i++) memcpy(b.p + head.n + i * z.n, z.p, z.n);
    return b;
}

static void test_gzip_bombs(void)
{
    buf lab = tiny_labels_buf(), img = tiny_images();
    const size_t zeros = (size_t)16 << 20, copies = 65; /* 1040 MiB, past the 1 GiB cap */
    clock_t t0 = clock();
    buf zmember = gz_with_zeros(NULL, 0, zeros, 9);

    /* A valid header for the tiny set, then over 1 GiB of zeros: refused as soon as the stream
     * passes what the header describes, not after inflating it all. */
    buf ghead = gz(img);
    buf bomb = concat_members(ghead, zmember, copies);
    printf("gzip bomb: %zu bytes inflating to %zu\n", bomb.n, img.n + zeros * copies);
    clock_t t1 = clock();
    CHECK_FAILS(cldp_dataset_from_idx_memory(bomb.p, bomb.n, lab.p, lab.n, &cf_ds_),
                CLDP_ERR_FORMAT, "bomb behind valid header");
    printf("  refused in %.3f s: %s\n", (double)(clock() - t1) / CLOCKS_PER_SEC,
           cldp_last_error());
    free(bomb.p);

    /* Zeros alone: the inflated header is nonsense, found after its first bytes. */
    buf nothing = gz_with_zeros(NULL, 0, 0, 9);
    bomb = concat_members(nothing, zmember, copies);
    CHECK_FAILS(cldp_dataset_from_idx_memory(bomb.p, bomb.n, lab.p, lab.n, &cf_ds_),
                CLDP_ERR_FORMAT, "bomb of zeros");
    free(bomb.p);
    free(nothing.p);

    /* A header whose claim passes the cap (2^21 images of 28x28, 1.6 GiB), gzipped with data
     * behind it: refused from the header, before the data is inflated. */
    uint32_t dims[3] = {1u << 21, 28, 28};
    buf big = idx_make(0, 0, 0x08, 3, dims, NULL, 0), gbig = gz(big);
    bomb = concat_members(gbig, zmember, copies);
    uint32_t ldims[1] = {1u << 21};
    buf blab = idx_make(0, 0, 0x08, 1, ldims, NULL, 0);
    CHECK_FAILS(cldp_dataset_from_idx_memory(bomb.p, bomb.n, blab.p, blab.n, &cf_ds_),
                CLDP_ERR_FORMAT, "claim over the cap");
    CHECK(contains(cldp_last_error(), "limit"));
    printf("gzip bombs: %.2f s in all\n", (double)(clock() - t0) / CLOCKS_PER_SEC);
    free(bomb.p);
    free(big.p);
    free(gbig.p);
    free(blab.p);
    free(zmember.p);
    free(ghead.p);
    free(img.p);
    free(lab.p);
}

/* ---- files -------------------------------------------------------------------------------- */

static void write_file(const char *path, buf b)
{
    FILE *f = fopen(path, "wb");
    assert(f);
    if (b.n) assert(fwrite(b.p, 1, b.n, f) == b.n);
    assert(fclose(f) == 0);
}

/* A fresh temporary file holding `b`; its name goes to `path` (room for 64). */
static void temp_file(char *path, buf b)
{
    strcpy(path, "/tmp/cldp-test-dataset-XXXXXX");
    int fd = mkstemp(path);
    assert(fd >= 0);
    close(fd);
    write_file(path, b);
}

static void test_files(void)
{
    buf img = tiny_images(), lab = tiny_labels_buf(), gimg = gz(img), glab = gz(lab);
    char pi[64], pl[64], pgi[64], pgl[64], pt[64], pe[64];
    temp_file(pi, img);
    temp_file(pl, lab);
    temp_file(pgi, gimg);
    temp_file(pgl, glab);

    cldp_dataset *ds = NULL;
    CHECK(cldp_dataset_load_idx(pi, pl, &ds) == CLDP_OK);
    check_tiny(ds, "raw files");
    cldp_dataset_destroy(ds);
    ds = NULL;
    CHECK(cldp_dataset_load_idx(pgi, pgl, &ds) == CLDP_OK);
    check_tiny(ds, "gz files");
    cldp_dataset_destroy(ds);

    /* Truncated files on disk name themselves. */
    buf half = copy_prefix(gimg, gimg.n / 2);
    temp_file(pt, half);
    free(half.p);
    CHECK_FAILS(cldp_dataset_load_idx(pt, pgl, &cf_ds_), CLDP_ERR_FORMAT, "truncated gz file");
    CHECK(contains(cldp_last_error(), pt));
    unlink(pt);
    buf cut = copy_prefix(lab, lab.n - 1);
    temp_file(pt, cut);
    CHECK_FAILS(cldp_dataset_load_idx(pi, pt, &cf_ds_), CLDP_ERR_FORMAT, "truncated raw file");
    CHECK(contains(cldp_last_error(), pt));
    unlink(pt);
    free(cut.p);
    buf empty = {NULL, 0};
    temp_file(pe, empty);
    CHECK_FAILS(cldp_dataset_load_idx(pe, pl, &cf_ds_), CLDP_ERR_FORMAT, "empty file");
    CHECK(contains(cldp_last_error(), pe));
    unlink(pe);

    /* Missing files and a directory. */
    const char *missing = "/nonexistent-cldp-test/images-idx3-ubyte.gz";
    CHECK_FAILS(cldp_dataset_load_idx(missing, pl, &cf_ds_), CLDP_ERR_IO, "missing images");
    CHECK(contains(cldp_last_error(), missing));
    CHECK_FAILS(cldp_dataset_load_idx(pi, missing, &cf_ds_), CLDP_ERR_IO, "missing labels");
    CHECK(contains(cldp_last_error(), missing));
    CHECK_FAILS(cldp_dataset_load_idx("/tmp", pl, &cf_ds_), CLDP_ERR_IO, "directory");
    CHECK(contains(cldp_last_error(), "/tmp"));

    /* A Fashion-MNIST directory holding only the (tiny) test split, its labels made Fashion-MNIST's
     * (0..9) for the while: the loader refuses any other. */
    unsigned char keep_labels[TN];
    memcpy(keep_labels, tiny_labels, TN);
    for (int i = 0; i < TN; i++) tiny_labels[i] %= 10;
    buf lab10 = tiny_labels_buf(), glab10 = gz(lab10);
    char dir[64] = "/tmp/cldp-test-fmnist-XXXXXX";
    assert(mkdtemp(dir));
    char ti[128], tl[128], slash[80];
    snprintf(ti, sizeof ti, "%s/t10k-images-idx3-ubyte.gz", dir);
    snprintf(tl, sizeof tl, "%s/t10k-labels-idx1-ubyte.gz", dir);
    write_file(ti, gimg);
    write_file(tl, glab10);
    ds = NULL;
    CHECK(cldp_dataset_load_fashion_mnist(dir, 0, &ds) == CLDP_OK);
    check_tiny(ds, "fashion-mnist dir");
    cldp_dataset_destroy(ds);
    snprintf(slash, sizeof slash, "%s/", dir);
    ds = NULL;
    CHECK(cldp_dataset_load_fashion_mnist(slash, 0, &ds) == CLDP_OK);
    check_tiny(ds, "fashion-mnist dir/");
    cldp_dataset_destroy(ds);
    CHECK_FAILS(cldp_dataset_load_fashion_mnist(dir, 1, &cf_ds_), CLDP_ERR_IO, "no train split");
    CHECK(contains(cldp_last_error(), "train-images-idx3-ubyte.gz"));
    CHECK(contains(cldp_last_error(), dir));
    CHECK_FAILS(cldp_dataset_load_fashion_mnist("/nonexistent-cldp-fmnist", 0, &cf_ds_),
                CLDP_ERR_IO, "missing dir");
    CHECK(contains(cldp_last_error(), "/nonexistent-cldp-fmnist/t10k-images-idx3-ubyte.gz"));
    unlink(ti);
    unlink(tl);
    rmdir(dir);
    memcpy(tiny_labels, keep_labels, TN);
    free(lab10.p);
    free(glab10.p);

    unlink(pi);
    unlink(pl);
    unlink(pgi);
    unlink(pgl);
    free(img.p);
    free(lab.p);
    free(gimg.p);
    free(glab.p);
}

/* Fashion-MNIST has 10 classes: its loader refuses a label of 10 or more, naming the file, the
 * index and the label (a stray 255 grew cldp-train's model to 256 classes; a test label of 200
 * was reported as "train and test sets disagree in shape (784 vs 784 features)"). The generic
 * IDX reader takes any byte as a label. */
static void test_fashion_mnist_labels(void)
{
    enum { N = 40 };
    unsigned char px[N * 4], lb[N];
    for (int i = 0; i < N * 4; i++) px[i] = (unsigned char)rand();
    uint32_t idims[3] = {N, 2, 2}, ldims[1] = {N};
    buf img = idx_make(0, 0, 0x08, 3, idims, px, sizeof px), gimg = gz(img);
    char dir[64] = "/tmp/cldp-test-fmnist-labels-XXXXXX";
    assert(mkdtemp(dir));
    const struct {
        int train;
        const char *split;
        unsigned bad;
    } cases[] = {{0, "t10k", 200}, {1, "train", 255}, {1, "train", 10}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char ip[160], lp[160], want_index[64], want_label[64];
        snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte.gz", dir, cases[c].split);
        snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte.gz", dir, cases[c].split);
        for (int i = 0; i < N; i++) lb[i] = (unsigned char)(rand() % 10);
        buf good = idx_make(0, 0, 0x08, 1, ldims, lb, N), ggood = gz(good);
        write_file(ip, gimg);
        write_file(lp, ggood);
        cldp_dataset *ds = NULL;
        CHECK(cldp_dataset_load_fashion_mnist(dir, cases[c].train, &ds) == CLDP_OK);
        CHECK(cldp_dataset_count(ds) == N);
        cldp_dataset_destroy(ds);

        size_t at = (size_t)rand() % N;
        lb[at] = (unsigned char)cases[c].bad;
        buf bad = idx_make(0, 0, 0x08, 1, ldims, lb, N), gbad = gz(bad);
        write_file(lp, gbad);
        CHECK_FAILS(cldp_dataset_load_fashion_mnist(dir, cases[c].train, &cf_ds_), CLDP_ERR_FORMAT,
                    "fashion-mnist label out of range");
        snprintf(want_index, sizeof want_index, "index %zu", at);
        snprintf(want_label, sizeof want_label, "label %u", cases[c].bad);
        const char *msg = cldp_last_error();
        CHECK(contains(msg, lp) && contains(msg, want_index) && contains(msg, want_label));
        if (!contains(msg, lp) || !contains(msg, want_index) || !contains(msg, want_label))
            fprintf(stderr, "  want the file %s, \"%s\" and \"%s\" in: %s\n", lp, want_index, want_label, msg);
        if (c == 0) printf("test_dataset: a test label of %u: %s\n", cases[c].bad, msg);

        /* the generic reader: any byte is a label, and the classes follow the largest */
        ds = NULL;
        CHECK(cldp_dataset_load_idx(ip, lp, &ds) == CLDP_OK);
        CHECK(cldp_dataset_classes(ds) == (size_t)cases[c].bad + 1);
        cldp_dataset_destroy(ds);
        unlink(ip);
        unlink(lp);
        free(good.p);
        free(ggood.p);
        free(bad.p);
        free(gbad.p);
    }
    rmdir(dir);
    free(img.p);
    free(gimg.p);
}

int main(void)
{
    unsigned seed = (unsigned)time(NULL);
    srand(seed);
    printf("test_dataset: seed %u\n", seed);
    /* Fresh random pixels and labels each run, with the extremes always present. */
    for (int i = 0; i < TPIX; i++) tiny_pixels[i] = (unsigned char)rand();
    tiny_pixels[0] = 0;
    tiny_pixels[TPIX - 1] = 255;
    for (int i = 0; i < TN; i++) tiny_labels[i] = (unsigned char)rand();

    test_null_safety();
    test_embedded();
    test_real_fashion_mnist();
    test_valid_memory();
    test_compressible();
    test_damaged_headers();
    test_truncation_and_counts();
    test_corrupt_gzip();
    test_gzip_bombs();
    test_files();
    test_fashion_mnist_labels();

    printf("test_dataset: %d of %d checks failed\n", failures, checks);
    return failures ? 1 : 0;
}
