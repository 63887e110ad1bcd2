/* model_spec.c — the model spec in text: comma-separated layers
 *   conv:OUT:K[:sS][:pP]  maxpool:K[:sS]  relu  tanh  sigmoid  flatten  dropout:P  dense:OUT
 * parsed into layers of the layer table, and a model written back as its spec. Errors name the
 * token, its position, and what is wrong with it (a bad number, an unknown kind, a shape that
 * does not fit). */
#include "kinds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* a field of a token: [b, e) */
typedef struct field { const char *b, *e; } field;

static int field_is(field f, const char *s) { return (size_t)(f.e - f.b) == strlen(s) && !strncmp(f.b, s, (size_t)(f.e - f.b)); }

/* A decimal number in f, skipping `skip` leading characters, in [lo, hi]; 0 when it is not. */
static int number(field f, size_t skip, size_t lo, size_t hi, size_t *out)
{
    const char *p = f.b + skip;
    if (p >= f.e) return 0;
    size_t v = 0;
    for (; p < f.e; p++) {
        if (*p < '0' || *p > '9' || v > (hi - (size_t)(*p - '0')) / 10) return 0;
        v = v * 10 + (size_t)(*p - '0');
    }
    if (v < lo) return 0;
    *out = v;
    return 1;
}

#define SPEC_FAIL(...) return cldp_fail(CLDP_ERR_INVALID_ARGUMENT, __VA_ARGS__)

/* The settings of one token's layer, its fields f[0, n). */
static cldp_status parse_token(const field *f, size_t n, const char *what, cldp_layer_desc *L)
{
    memset(L, 0, sizeof *L);
    size_t v;
    if (field_is(f[0], "conv")) {
        L->kind = CLDP_LAYER_CONV2D;
        L->stride = 1;
        if (n < 3) SPEC_FAIL("%s: conv needs OUT and K (conv:OUT:K[:sS][:pP], e.g. conv:32:5:p2)", what);
        if (!number(f[1], 0, 1, 65536, &L->out_c)) SPEC_FAIL("%s: OUT must be a number of channels in 1..65536", what);
        if (!number(f[2], 0, 1, 64, &L->k)) SPEC_FAIL("%s: K must be a kernel size in 1..64", what);
        int seen_s = 0, seen_p = 0;
        for (size_t i = 3; i < n; i++) {
            char c = f[i].b < f[i].e ? f[i].b[0] : 0;
            if (c == 's' && !seen_s++ && number(f[i], 1, 1, 64, &v)) L->stride = v;
            else if (c == 'p' && !seen_p++ && number(f[i], 1, 0, 64, &v)) L->pad = v;
            else SPEC_FAIL("%s: field %zu \"%.*s\" is not sS (stride) or pP (padding), each at most once", what, i + 1,
                           (int)(f[i].e - f[i].b), f[i].b);
        }
    } else if (field_is(f[0], "maxpool")) {
        L->kind = CLDP_LAYER_MAXPOOL2D;
        if (n < 2 || n > 3) SPEC_FAIL("%s: maxpool takes K and an optional stride (maxpool:K[:sS], e.g. maxpool:2)", what);
        if (!number(f[1], 0, 1, 64, &L->k)) SPEC_FAIL("%s: K must be a window size in 1..64", what);
        L->stride = L->k;
        if (n == 3 && !(f[2].b < f[2].e && f[2].b[0] == 's' && number(f[2], 1, 1, 64, &L->stride)))
            SPEC_FAIL("%s: the stride must be sS with S in 1..64", what);
    } else if (field_is(f[0], "dropout")) {
        L->kind = CLDP_LAYER_DROPOUT;
        char num[32];
        size_t len = n == 2 ? (size_t)(f[1].e - f[1].b) : 0;
        char *end = NULL;
        double p = -1;
        if (len > 0 && len < sizeof num && f[1].b[0] != '+' && f[1].b[0] != '-') {
            memcpy(num, f[1].b, len);
            num[len] = 0;
            p = strtod(num, &end);
        }
        if (!end || *end || !(p >= 0 && p < 1))
            SPEC_FAIL("%s: dropout takes one probability P with 0 <= P < 1 (dropout:P, e.g. dropout:0.5)", what);
        L->drop = (float)p;
        if (!(L->drop < 1)) SPEC_FAIL("%s: P rounds to 1 as a float; it must be below 1", what);
    } else if (field_is(f[0], "dense")) {
        L->kind = CLDP_LAYER_DENSE;
        if (n != 2 || !number(f[1], 0, 1, CLDP_MAX_UNITS, &L->out_c))
            SPEC_FAIL("%s: dense takes one number of units in 1..%u (dense:OUT, e.g. dense:10)", what, CLDP_MAX_UNITS);
    } else {
        static const struct { const char *name; cldp_layer_kind kind; } plain[] = {
            {"relu", CLDP_LAYER_RELU}, {"tanh", CLDP_LAYER_TANH}, {"sigmoid", CLDP_LAYER_SIGMOID}, {"flatten", CLDP_LAYER_FLATTEN}};
        for (size_t i = 0; i < sizeof plain / sizeof *plain; i++)
            if (field_is(f[0], plain[i].name)) {
                if (n != 1) SPEC_FAIL("%s: %s takes no settings", what, plain[i].name);
                L->kind = plain[i].kind;
                return CLDP_OK;
            }
        SPEC_FAIL("%s: unknown layer kind \"%.*s\"; the kinds are conv, maxpool, relu, tanh, sigmoid, flatten, dropout and dense", what,
                  (int)(f[0].e - f[0].b), f[0].b);
    }
    return CLDP_OK;
}

cldp_status cldp_model_add_spec(cldp_model *m, const char *spec)
{
    REQUIRE(m && spec, "cldp_model_add_spec: model or spec is NULL");
    REQUIRE(*spec, "model spec is empty: give comma-separated layers, e.g. conv:32:5:p2,relu,maxpool:2,flatten,dense:10");
    cldp_model *work = cldp_malloc(sizeof *work, "model");
    if (!work) return CLDP_ERR_HOST_MEMORY;
    *work = *m; /* the caller's model changes only when every token fits */
    cldp_status st = CLDP_OK;
    size_t token = 0;
    for (const char *p = spec; st == CLDP_OK;) {
        const char *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        token++;
        field f[8];
        size_t n = 0;
        for (const char *q = p; n < 8;) {
            const char *c = memchr(q, ':', (size_t)(end - q));
            f[n++] = (field){q, c ? c : end};
            if (!c) break;
            q = c + 1;
        }
        char what[160];
        snprintf(what, sizeof what, "model spec, token %zu \"%.*s\" (at character %zu)", token, (int)(end - p), p,
                 (size_t)(p - spec) + 1);
        cldp_layer_desc L;
        if (end == p) st = cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "%s: empty layer (two commas, or a comma at an end)", what);
        else if (n == 8) st = cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "%s: too many fields", what);
        else if ((st = parse_token(f, n, what, &L)) == CLDP_OK) st = cldp_model_add_layer(work, &L, what);
        if (!*end) break;
        p = end + 1;
    }
    if (st == CLDP_OK) *m = *work;
    free(work);
    return st;
}

cldp_status cldp_model_parse(const char *spec, size_t c, size_t h, size_t w, cldp_model **out)
{
    REQUIRE(out, "cldp_model_parse: out is NULL");
    *out = NULL;
    cldp_model *m;
    TRY(cldp_model_create_shaped(c, h, w, &m));
    cldp_status st = cldp_model_add_spec(m, spec);
    if (st != CLDP_OK) {
        cldp_model_destroy(m);
        return st;
    }
    *out = m;
    return CLDP_OK;
}

cldp_status cldp_model_describe(const cldp_model *m, char *buf, size_t cap)
{
    REQUIRE(m && buf && cap > 0, "cldp_model_describe: model or buffer is NULL");
    size_t used = 0;
    buf[0] = 0;
    for (size_t l = 0; l < m->nlayers; l++) {
        if (l) used += (size_t)snprintf(buf + (used < cap ? used : cap - 1), used < cap ? cap - used : 1, ",");
        const cldp_layer_desc *L = &m->layers[l];
        int n = cldp_kind_of(L->kind)->describe(L, buf + (used < cap ? used : cap - 1), used < cap ? cap - used : 1);
        used += n > 0 ? (size_t)n : 0;
    }
    REQUIRE(used < cap, "cldp_model_describe: the spec needs %zu bytes, the buffer holds %zu", used + 1, cap);
    return CLDP_OK;
}

cldp_status cldp_model_input_shape(const cldp_model *m, size_t *c, size_t *h, size_t *w)
{
    REQUIRE(m && c && h && w, "cldp_model_input_shape: an argument is NULL");
    *c = m->in_c, *h = m->in_h, *w = m->in_w;
    return CLDP_OK;
}
