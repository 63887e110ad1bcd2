/* safetensors.c — a model's parameters as a safetensors file (8-byte little-endian header length,
 * a JSON header, raw little-endian tensors), named as PyTorch's nn.Sequential built from the
 * model's spec names them: module i's "i.weight" (dense (OUT, IN), conv (OUT, IN, K, K)) and
 * "i.bias" (OUT). The reader validates everything before it writes a single parameter: header
 * length, the JSON, dtypes, names, shapes against the model, offsets in range and without
 * overlap, finite values. */
#define _POSIX_C_SOURCE 200809L
#include "safetensors.h"
#include "le.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER ((uint64_t)1 << 24) /* 16 MiB of JSON is far more than any model's */
#define ST_MAX_TENSORS (2 * CLDP_MAX_LAYERS)

/* ---- the model's tensors ------------------------------------------------------------------ */

typedef struct st_tensor {
    char name[32];
    size_t shape[4], rank;
    size_t off, count; /* where in the flat parameter vector, in floats */
    int seen;          /* reading: found in the header */
    uint64_t begin, end; /* reading: its bytes in the data area */
} st_tensor;

/* The model's tensors in order; their number. PyTorch's module index counts a dense layer's
 * built-in activation as a module of its own (Linear, then ReLU). */
static size_t model_tensors(const cldp_model *m, st_tensor *t)
{
    size_t n = 0, module = 0;
    for (size_t l = 0; l < m->nlayers; l++, module++) {
        const cldp_layer_desc *L = &m->layers[l];
        if (L->kind == CLDP_LAYER_DENSE || L->kind == CLDP_LAYER_CONV2D) {
            st_tensor *w = &t[n++], *b = &t[n++];
            memset(w, 0, 2 * sizeof *w);
            snprintf(w->name, sizeof w->name, "%zu.weight", module);
            snprintf(b->name, sizeof b->name, "%zu.bias", module);
            w->shape[0] = L->out_c;
            if (L->kind == CLDP_LAYER_DENSE) {
                w->shape[1] = L->in, w->rank = 2;
            } else {
                w->shape[1] = L->in_c, w->shape[2] = w->shape[3] = L->k, w->rank = 4;
            }
            w->off = L->w_off, w->count = L->b_off - L->w_off;
            b->shape[0] = L->out_c, b->rank = 1, b->off = L->b_off, b->count = L->out_c;
        }
        if (L->kind == CLDP_LAYER_DENSE && L->act != CLDP_ACT_NONE) module++;
    }
    return n;
}

static int input_text(const cldp_model *m, char *buf, size_t cap)
{
    return snprintf(buf, cap, "%zux%zux%zu", m->in_c, m->in_h, m->in_w);
}

/* ---- writing ---------------------------------------------------------------------------- */

/* The JSON header, padded with spaces to a multiple of 8 bytes; malloc'd, its length in *len. */
static char *make_header(const cldp_model *m, const st_tensor *t, size_t n, size_t *len)
{
    char *spec = cldp_malloc(8192, "model spec");
    if (!spec) return NULL;
    if (cldp_model_describe(m, spec, 8192) != CLDP_OK) {
        free(spec);
        return NULL;
    }
    size_t cap = 256 + strlen(spec) + 160 * n;
    char *h = cldp_malloc(cap + 8, "safetensors header");
    if (!h) {
        free(spec);
        return NULL;
    }
    char in[64];
    input_text(m, in, sizeof in);
    size_t u = (size_t)snprintf(h, cap, "{\"__metadata__\":{\"cldp_model\":\"%s\",\"cldp_input\":\"%s\",\"cldp_loss\":\"%s\"}", spec,
                                in, m->loss == CLDP_LOSS_MSE ? "mse" : "xent");
    free(spec);
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        u += (size_t)snprintf(h + u, cap - u, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[", t[i].name);
        for (size_t d = 0; d < t[i].rank; d++) u += (size_t)snprintf(h + u, cap - u, d ? ",%zu" : "%zu", t[i].shape[d]);
        u += (size_t)snprintf(h + u, cap - u, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)at,
                              (unsigned long long)(at + 4 * t[i].count));
        at += 4 * t[i].count;
    }
    h[u++] = '}';
    while (u % 8) h[u++] = ' ';
    *len = u;
    return h;
}

cldp_status cldp_model_save_safetensors(const cldp_model *m, const float *params, size_t count, const char *path)
{
    REQUIRE(m && params && path, "cldp_model_save_safetensors: model, params or path is NULL");
    REQUIRE(count == m->nparams, "cldp_model_save_safetensors: count is %zu but the model has %zu parameters", count, m->nparams);
    st_tensor t[ST_MAX_TENSORS];
    size_t n = model_tensors(m, t), hlen = 0;
    char *header = make_header(m, t, n, &hlen);
    if (!header) return cldp_fail(CLDP_ERR_HOST_MEMORY, "'%s' not written: out of host memory for its header", path);
    size_t plen = strlen(path);
    char *tmp = cldp_malloc(plen + 32, "file name");
    if (!tmp) {
        free(header);
        return CLDP_ERR_HOST_MEMORY;
    }
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    int err = f ? 0 : errno;
    unsigned char len8[8], buf[4096];
    put_u64(len8, (uint64_t)hlen);
    if (f && (fwrite(len8, 1, 8, f) != 8 || fwrite(header, 1, hlen, f) != hlen)) err = errno ? errno : EIO;
    for (size_t i = 0; f && !err && i < n; i++) /* tensor order: data_offsets ascending */
        for (size_t j = 0; j < t[i].count && !err;) {
            size_t k = 0;
            for (; k < sizeof buf / 4 && j < t[i].count; k++, j++) put_f32(buf + 4 * k, params[t[i].off + j]);
            if (fwrite(buf, 1, 4 * k, f) != 4 * k) err = errno ? errno : EIO;
        }
    if (f && !err && (fflush(f) != 0 || fsync(fileno(f)) != 0)) err = errno;
    if (f && fclose(f) != 0 && !err) err = errno;
    if (!err && rename(tmp, path) != 0) err = errno;
    free(header);
    cldp_status st = CLDP_OK;
    if (err) {
        unlink(tmp);
        st = cldp_fail(CLDP_ERR_IO, "writing safetensors file '%s' failed: %s; check that its directory exists and is writable", path,
                       strerror(err));
    }
    free(tmp);
    return st;
}

/* ---- reading: a small strict JSON reader for the header ---------------------------------- */

typedef struct jp {
    const char *p, *end;
    const char *what; /* the file, for messages */
} jp;

#define BAD(j, ...) return cldp_fail(CLDP_ERR_FORMAT, __VA_ARGS__)

static void ws(jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static int eat(jp *j, char c)
{
    ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return 1;
    }
    return 0;
}

/* A string into buf (cap bytes); plain characters and the simple escapes only. */
static cldp_status str(jp *j, char *buf, size_t cap)
{
    ws(j);
    if (j->p >= j->end || *j->p != '"') BAD(j, "safetensors file '%s': a JSON string was expected at header byte %zu", j->what, (size_t)0);
    j->p++;
    size_t u = 0;
    while (j->p < j->end && *j->p != '"') {
        char c = *j->p++;
        if ((unsigned char)c < 0x20) BAD(j, "safetensors file '%s': a control character inside a JSON string of its header", j->what);
        if (c == '\\') {
            if (j->p >= j->end) break;
            char e = *j->p++;
            c = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == 'b' ? '\b' : e == 'f' ? '\f' : e;
            if (!strchr("\"\\/ntrbf", e)) BAD(j, "safetensors file '%s': an escape \\%c this reader does not take in its header", j->what, e);
        }
        if (u + 1 >= cap) BAD(j, "safetensors file '%s': a string of its header is longer than %zu bytes", j->what, cap - 1);
        buf[u++] = c;
    }
    if (j->p >= j->end) BAD(j, "safetensors file '%s': its header ends inside a string", j->what);
    j->p++;
    buf[u] = 0;
    return CLDP_OK;
}

static cldp_status uint_(jp *j, uint64_t *v)
{
    ws(j);
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') BAD(j, "safetensors file '%s': a whole number was expected in its header", j->what);
    uint64_t x = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        if (x > (UINT64_MAX - 9) / 10) BAD(j, "safetensors file '%s': a number of its header is too large", j->what);
        x = x * 10 + (uint64_t)(*j->p++ - '0');
    }
    *v = x;
    return CLDP_OK;
}

/* [n, n, ...] into v (at most cap), its length in *n */
static cldp_status uints(jp *j, uint64_t *v, size_t cap, size_t *n)
{
    *n = 0;
    if (!eat(j, '[')) BAD(j, "safetensors file '%s': a JSON array was expected in its header", j->what);
    if (eat(j, ']')) return CLDP_OK;
    do {
        if (*n == cap) BAD(j, "safetensors file '%s': an array of its header has more than %zu entries", j->what, cap);
        TRY(uint_(j, &v[(*n)++]));
    } while (eat(j, ','));
    if (!eat(j, ']')) BAD(j, "safetensors file '%s': an array of its header is not closed", j->what);
    return CLDP_OK;
}

/* The __metadata__ object: string values only; cldp's two keys kept. */
static cldp_status metadata(jp *j, char *model, size_t mcap, char *input, size_t icap)
{
    if (!eat(j, '{')) BAD(j, "safetensors file '%s': __metadata__ must be a JSON object", j->what);
    if (eat(j, '}')) return CLDP_OK;
    do {
        char key[64], *val = cldp_malloc(mcap, "metadata");
        if (!val) return CLDP_ERR_HOST_MEMORY;
        cldp_status st = str(j, key, sizeof key);
        if (st == CLDP_OK && !eat(j, ':')) st = cldp_fail(CLDP_ERR_FORMAT, "safetensors file '%s': ':' expected in __metadata__", j->what);
        if (st == CLDP_OK) st = str(j, val, mcap);
        if (st == CLDP_OK && !strcmp(key, "cldp_model")) snprintf(model, mcap, "%s", val);
        if (st == CLDP_OK && !strcmp(key, "cldp_input")) snprintf(input, icap, "%s", val);
        free(val);
        TRY(st);
    } while (eat(j, ','));
    if (!eat(j, '}')) BAD(j, "safetensors file '%s': __metadata__ is not closed", j->what);
    return CLDP_OK;
}

/* One tensor's object: dtype, shape, data_offsets, checked against t. */
static cldp_status tensor(jp *j, st_tensor *t, uint64_t data_len)
{
    if (!eat(j, '{')) BAD(j, "safetensors file '%s': tensor '%s' must be a JSON object", j->what, t->name);
    char dtype[16] = "";
    uint64_t shape[8], offs[2];
    size_t rank = SIZE_MAX, noffs = 0;
    if (!eat(j, '}')) do {
            char key[32];
            TRY(str(j, key, sizeof key));
            if (!eat(j, ':')) BAD(j, "safetensors file '%s': ':' expected in tensor '%s'", j->what, t->name);
            if (!strcmp(key, "dtype")) TRY(str(j, dtype, sizeof dtype));
            else if (!strcmp(key, "shape")) TRY(uints(j, shape, 8, &rank));
            else if (!strcmp(key, "data_offsets")) TRY(uints(j, offs, 2, &noffs));
            else BAD(j, "safetensors file '%s': tensor '%s' has a field '%s' this reader does not know", j->what, t->name, key);
        } while (eat(j, ','));
    if (!eat(j, '}')) BAD(j, "safetensors file '%s': tensor '%s' is not closed", j->what, t->name);
    if (strcmp(dtype, "F32"))
        BAD(j, "safetensors file '%s': tensor '%s' has dtype '%s'; cldp reads F32 (in PyTorch: model.float() before saving)", j->what,
            t->name, dtype);
    int same = rank == t->rank;
    for (size_t d = 0; same && d < rank; d++) same = shape[d] == t->shape[d];
    if (!same) {
        char want[96], got[96];
        size_t a = 0, b = 0;
        for (size_t d = 0; d < t->rank; d++) a += (size_t)snprintf(want + a, sizeof want - a, d ? ", %zu" : "%zu", t->shape[d]);
        for (size_t d = 0; rank != SIZE_MAX && d < rank && b < sizeof got; d++)
            b += (size_t)snprintf(got + b, sizeof got - b, d ? ", %llu" : "%llu", (unsigned long long)shape[d]);
        if (rank == SIZE_MAX) snprintf(got, sizeof got, "none");
        BAD(j, "safetensors file '%s': tensor '%s' has shape (%s) but the model's is (%s)", j->what, t->name, b || rank == 0 ? got : got,
            want);
    }
    if (noffs != 2 || offs[0] > offs[1] || offs[1] > data_len || offs[1] - offs[0] != 4 * (uint64_t)t->count)
        BAD(j, "safetensors file '%s': tensor '%s' has data_offsets that do not hold its %zu floats inside the %llu bytes of data",
            j->what, t->name, t->count, (unsigned long long)data_len);
    t->begin = offs[0], t->end = offs[1];
    return CLDP_OK;
}

static int by_begin(const void *a, const void *b)
{
    const st_tensor *x = *(st_tensor *const *)a, *y = *(st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

cldp_status cldp_safetensors_parse(const cldp_model *m, const unsigned char *buf, size_t size, const char *what, float *params)
{
    if (size < 8) BAD(NULL, "safetensors file '%s' is truncated: %zu bytes, shorter than its 8-byte header length", what, size);
    uint64_t hlen = get_u64(buf);
    if (hlen < 2 || hlen > ST_MAX_HEADER || hlen > size - 8)
        BAD(NULL, "safetensors file '%s' is damaged: its header length %llu does not fit its %zu bytes", what, (unsigned long long)hlen, size);
    uint64_t data_len = size - 8 - hlen;
    const unsigned char *data = buf + 8 + hlen;
    st_tensor t[ST_MAX_TENSORS];
    size_t n = model_tensors(m, t);
    char model_spec[4096] = "", input[64] = "";
    jp j = {(const char *)buf + 8, (const char *)buf + 8 + hlen, what};
    if (!eat(&j, '{')) BAD(&j, "safetensors file '%s': its header is not a JSON object", what);
    if (!eat(&j, '}')) do {
            char name[64];
            TRY(str(&j, name, sizeof name));
            if (!eat(&j, ':')) BAD(&j, "safetensors file '%s': ':' expected after '%s' in its header", what, name);
            if (!strcmp(name, "__metadata__")) {
                TRY(metadata(&j, model_spec, sizeof model_spec, input, sizeof input));
                continue;
            }
            st_tensor *hit = NULL;
            for (size_t i = 0; i < n && !hit; i++)
                if (!strcmp(t[i].name, name)) hit = &t[i];
            if (!hit) BAD(&j, "safetensors file '%s' has a tensor '%s' the model has not (its tensors are 0.weight, 0.bias, ... by "
                              "module index of the spec)", what, name);
            if (hit->seen) BAD(&j, "safetensors file '%s' names tensor '%s' twice", what, name);
            hit->seen = 1;
            TRY(tensor(&j, hit, data_len));
        } while (eat(&j, ','));
    if (!eat(&j, '}')) BAD(&j, "safetensors file '%s': its header's JSON object is not closed", what);
    ws(&j);
    if (j.p != j.end) BAD(&j, "safetensors file '%s': bytes after its header's JSON object", what);
    for (size_t i = 0; i < n; i++)
        if (!t[i].seen) BAD(&j, "safetensors file '%s' lacks tensor '%s' of the model", what, t[i].name);
    if (model_spec[0]) { /* written by cldp: the same layers, or the shapes agree by chance */
        char mine[4096], in[64];
        TRY(cldp_model_describe(m, mine, sizeof mine));
        input_text(m, in, sizeof in);
        if (strcmp(mine, model_spec) || (input[0] && strcmp(in, input)))
            BAD(&j, "safetensors file '%s' holds the model %s on input %s, not %s on input %s", what, model_spec, input[0] ? input : "?",
                mine, in);
    }
    st_tensor *order[ST_MAX_TENSORS];
    for (size_t i = 0; i < n; i++) order[i] = &t[i];
    qsort(order, n, sizeof *order, by_begin);
    for (size_t i = 1; i < n; i++)
        if (order[i]->begin < order[i - 1]->end)
            BAD(&j, "safetensors file '%s': tensors '%s' and '%s' overlap in its data", what, order[i - 1]->name, order[i]->name);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < t[i].count; k++) {
            float f = get_f32(data + t[i].begin + 4 * k);
            if (!isfinite(f)) BAD(&j, "safetensors file '%s': element %zu of tensor '%s' is not finite", what, k, t[i].name);
        }
    /* everything checked: now the parameters */
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < t[i].count; k++) {
            params[t[i].off + k] = get_f32(data + t[i].begin + 4 * k);
        }
    return CLDP_OK;
}

cldp_status cldp_model_load_safetensors(const cldp_model *m, const char *path, float *params, size_t count)
{
    REQUIRE(m && path && params, "cldp_model_load_safetensors: model, path or params is NULL");
    REQUIRE(count == m->nparams, "cldp_model_load_safetensors: count is %zu but the model has %zu parameters", count, m->nparams);
    FILE *f = fopen(path, "rb");
    if (!f) return cldp_fail(CLDP_ERR_IO, "cannot open safetensors file '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > ((uint64_t)1 << 40)) {
        fclose(f);
        return cldp_fail(CLDP_ERR_IO, "cannot read safetensors file '%s': not a regular file of a sensible size", path);
    }
    size_t size = (size_t)sb.st_size;
    unsigned char *buf = cldp_malloc(size ? size : 1, "safetensors contents");
    if (!buf) {
        fclose(f);
        return CLDP_ERR_HOST_MEMORY;
    }
    size_t got = fread(buf, 1, size, f);
    fclose(f);
    cldp_status st = got == size ? CLDP_OK : cldp_fail(CLDP_ERR_IO, "reading safetensors file '%s' failed", path);
    float *tmp = st == CLDP_OK ? cldp_malloc((count ? count : 1) * sizeof(float), "parameters") : NULL;
    if (st == CLDP_OK && !tmp) st = CLDP_ERR_HOST_MEMORY;
    if (st == CLDP_OK) st = cldp_safetensors_parse(m, buf, size, path, tmp);
    if (st == CLDP_OK) memcpy(params, tmp, count * sizeof(float)); /* never half-loaded */
    free(tmp);
    free(buf);
    return st;
}
