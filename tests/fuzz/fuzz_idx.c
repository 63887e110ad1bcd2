/* fuzz_idx.c — libFuzzer target for the dataset parser behind every IDX loader
 * (cldp_dataset_from_idx_memory: IDX headers, gzip streams, their limits and cross-checks).
 *
 * Input framing: 4 bytes, little-endian, the length L of the image file; then L bytes of the image
 * file (raw IDX or gzip); the rest is the label file. An L beyond the input takes all of it. Each
 * part is copied to a buffer of exactly its size, so reading past one is caught by ASan rather
 * than landing in the other. tests/fuzz/make-seeds.sh writes the seed corpus in this framing. */
#include "fuzz.h"
#include "cldp.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A broken promise of the API: stop with a message, so libFuzzer saves the input. */

static int is_gzip(const uint8_t *p, size_t n) { return n >= 2 && p[0] == 0x1f && p[1] == 0x8b; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4) return 0;
    size_t claimed = (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 | (size_t)data[3] << 24;
    size_t rest = size - 4;
    size_t img_len = claimed < rest ? claimed : rest, lab_len = rest - img_len;
    uint8_t *img = malloc(img_len ? img_len : 1), *lab = malloc(lab_len ? lab_len : 1);
    if (!img || !lab) {
        free(img);
        free(lab);
        return 0;
    }
    memcpy(img, data + 4, img_len);
    memcpy(lab, data + 4 + img_len, lab_len);

    cldp_dataset *ds = (cldp_dataset *)&ds; /* poisoned: a failure must set it to NULL */
    cldp_status st = cldp_dataset_from_idx_memory(img, img_len, lab, lab_len, &ds);
    if (st == CLDP_OK) {
        size_t n = cldp_dataset_count(ds), f = cldp_dataset_features(ds), classes = cldp_dataset_classes(ds);
        EXPECT(ds != NULL && n > 0 && f > 0 && classes >= 1 && classes <= 256);
        /* a raw file holds exactly its header and data; a gzip one inflates to that */
        if (!is_gzip(img, img_len)) EXPECT(img_len == 16 + n * f);
        if (!is_gzip(lab, lab_len)) EXPECT(lab_len == 8 + n);
        const float *x = cldp_dataset_images(ds);
        const int32_t *y = cldp_dataset_labels(ds);
        int32_t top = 0;
        for (size_t i = 0; i < n * f; i++) EXPECT(x[i] >= 0.0f && x[i] <= 1.0f);
        for (size_t i = 0; i < n; i++) {
            EXPECT(y[i] >= 0 && (size_t)y[i] < classes);
            if (y[i] > top) top = y[i];
        }
        EXPECT((size_t)top + 1 == classes);
        cldp_dataset_destroy(ds);
    } else {
        EXPECT(ds == NULL);
        EXPECT(st == CLDP_ERR_FORMAT || st == CLDP_ERR_HOST_MEMORY);
        const char *msg = cldp_last_error();
        EXPECT(msg && *msg);
        /* a message about damage names the buffer it is about */
        if (st == CLDP_ERR_FORMAT) EXPECT(strstr(msg, "images buffer") || strstr(msg, "labels buffer"));
    }
    free(img);
    free(lab);
    return 0;
}
