/* test_safetensors — weights to and from PyTorch's format: a model of every parameterised kind
 * (conv2d, dense with and without a built-in activation) saved and loaded back is bitwise the
 * same; the file, read by python3 with json and struct alone (tests/check_safetensors.py), has
 * PyTorch nn.Sequential's names and shapes and the parameters' bytes; damaged files (truncated,
 * a header length past the end, bad JSON, another dtype, a wrong shape, a missing, extra or
 * repeated tensor, overlapping offsets, a NaN, another model's metadata) are refused with
 * CLDP_ERR_FORMAT and a message naming the fault, the destination untouched. Host only. */
#define _POSIX_C_SOURCE 200809L
#undef NDEBUG
#include "safetensors.h"
#include "testutil.h"

#include <string.h>
#include <unistd.h>

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 64);
    if (fread(b, 1, *n, f) != *n) *n = 0;
    fclose(f);
    return b;
}

/* buf with its header text replaced: `from` -> `to` (same length keeps the offsets) */
static int patch(unsigned char *buf, size_t n, const char *from, const char *to)
{
    size_t lf = strlen(from), lt = strlen(to);
    if (lf != lt) return 0;
    for (size_t i = 8; i + lf <= n; i++)
        if (!memcmp(buf + i, from, lf)) {
            memcpy(buf + i, to, lt);
            return 1;
        }
    return 0;
}

static void refused(const cldp_model *m, const unsigned char *buf, size_t n, const char *why, const char *says)
{
    size_t np = cldp_model_param_count(m);
    float *dst = malloc(np * sizeof(float));
    for (size_t i = 0; i < np; i++) dst[i] = 7.0f;
    CHECK_STATUS(cldp_safetensors_parse(m, buf, n, "f.safetensors", dst), CLDP_ERR_FORMAT);
    if (!strstr(cldp_last_error(), says)) {
        fprintf(stderr, "FAIL %s: message lacks \"%s\": %s\n", why, says, cldp_last_error());
        test_failures++;
    }
    int untouched = 1;
    for (size_t i = 0; i < np; i++) untouched &= dst[i] == 7.0f;
    CHECK(untouched);
    printf("  %s: %s\n", why, cldp_last_error());
    free(dst);
}

int main(void)
{
    test_rng_state = test_seed("test_safetensors");
    char dir[] = "/tmp/cldp-test-st-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[300], raw[300];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    snprintf(raw, sizeof raw, "%s/m.f32", dir);
    cldp_model *m = NULL;
    CHECK_OK(cldp_model_parse("conv:4:3:p1,relu,maxpool:2,conv:5:3:s2,flatten", 3, 10, 10, &m));
    CHECK_OK(cldp_model_add_dense(m, 7, CLDP_ACT_TANH)); /* module 5 (Linear), module 6 (Tanh) */
    CHECK_OK(cldp_model_add_dense(m, 3, CLDP_ACT_NONE)); /* module 7 */
    size_t np = cldp_model_param_count(m);
    float *p = malloc(np * sizeof(float)), *q = malloc(np * sizeof(float));
    test_fill(p, np, -2, 2);
    CHECK_OK(cldp_model_save_safetensors(m, p, np, path));
    for (size_t i = 0; i < np; i++) q[i] = NAN;
    CHECK_OK(cldp_model_load_safetensors(m, path, q, np));
    CHECK(!memcmp(p, q, np * sizeof(float)));
    printf("  %zu parameters saved and loaded back: %s\n", np, memcmp(p, q, np * sizeof(float)) ? "DIFFERENT" : "bitwise identical");

    /* python3 reads it with json and struct */
    FILE *f = fopen(raw, "wb");
    CHECK(f && fwrite(p, sizeof(float), np, f) == np);
    if (f) fclose(f);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "python3 %s/check_safetensors.py %s %s 0.weight=4,3,3,3 0.bias=4 3.weight=5,4,3,3 3.bias=5 5.weight=7,20 5.bias=7 "
             "7.weight=3,7 7.bias=3",
             CLDP_TEST_DIR, path, raw);
    if (system("python3 -c 'import json, struct' 2>/dev/null") != 0) {
        printf("  SKIP of the python3 read-back: no python3 on this machine\n");
    } else {
        int rc = system(cmd);
        CHECK(rc == 0);
    }

    size_t n = 0;
    unsigned char *good = slurp(path, &n), *b = malloc(n + 64);
    refused(m, good, 5, "truncated to 5 bytes", "truncated");
    memcpy(b, good, n);
    b[5] = 1;
    refused(m, b, n, "header length past the end", "header length");
    static const struct { const char *from, *to, *why, *says; } patches[] = {
        {"\"dtype\"", "\"dtyp\"\"", "broken JSON", "safetensors file 'f.safetensors'"},
        {"\"F32\"", "\"F16\"", "dtype F16", "dtype 'F16'"},
        {"[4,3,3,3]", "[4,3,3,2]", "wrong shape", "shape (4, 3, 3, 2) but the model's is (4, 3, 3, 3)"},
        {"\"3.bias\"", "\"4.bias\"", "a tensor the model has not", "'4.bias' the model has not"},
        {"\"3.bias\"", "\"0.bias\"", "a tensor named twice", "twice"},
        {"\"data_offsets\":[0,432]", "\"data_offsets\":[1,433]", "overlapping offsets", "overlap"},
        {"conv:4:3:p1", "conv:4:3:p0", "another model's metadata", "holds the model conv:4:3:p0"},
    };
    for (size_t k = 0; k < sizeof patches / sizeof *patches; k++) {
        memcpy(b, good, n);
        CHECK(patch(b, n, patches[k].from, patches[k].to));
        refused(m, b, n, patches[k].why, patches[k].says);
    }
    memcpy(b, good, n);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | b[i];
    float nan = NAN;
    memcpy(b + 8 + hlen + 8, &nan, 4);
    refused(m, b, n, "a NaN", "not finite");
    /* a file of the model without a layer: its tensors are missing */
    cldp_model *bigger = NULL;
    CHECK_OK(cldp_model_parse("conv:4:3:p1,relu,maxpool:2,conv:5:3:s2,flatten,dense:7,tanh,dense:3,relu,dense:2", 3, 10, 10, &bigger));
    refused(bigger, good, n, "a tensor missing", "lacks tensor '9.weight'");
    /* random bytes: refused, never a crash */
    for (int k = 0; k < 200; k++) {
        memcpy(b, good, n);
        for (int e = 0; e < 4; e++) b[test_rand() % n] = (unsigned char)test_rand();
        float *dst = malloc(np * sizeof(float));
        cldp_status st = cldp_safetensors_parse(m, b, n, "f", dst);
        CHECK(st == CLDP_OK || st == CLDP_ERR_FORMAT);
        free(dst);
    }
    CHECK_STATUS(cldp_model_load_safetensors(m, "/nonexistent/x.safetensors", q, np), CLDP_ERR_IO);
    CHECK_STATUS(cldp_model_load_safetensors(m, path, q, np - 1), CLDP_ERR_INVALID_ARGUMENT);
    cldp_model_destroy(bigger);
    cldp_model_destroy(m);
    unlink(path);
    unlink(raw);
    rmdir(dir);
    free(good), free(b), free(p), free(q);
    return test_finish("test_safetensors");
}
