/* serve-request.c — KServe v2 infer requests parsed and answers written (serve-request.h). */
#include "serve-request.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int refuse(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return 400;
}

/* Copies the numbers of `j` into out[*at...]: a flat array, or arrays nested as the shape says.
 * Returns 0, or 400 with a message. */
static int flatten(const json_t *j, const size_t *shape, size_t ndim, size_t depth, float *out, size_t *at, size_t total,
                   char *err, size_t errlen)
{
    size_t n = json_array_size(j);
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(j, i);
        if (json_is_array(v)) {
            if (depth + 1 >= ndim || json_array_size(v) != shape[depth + 1])
                return refuse(err, errlen, "input 'data' is nested as no shape [%zu, %zu] allows (an array of %zu at depth %zu)",
                              shape[0], shape[1], json_array_size(v), depth + 1);
            int rc = flatten(v, shape, ndim, depth + 1, out, at, total, err, errlen);
            if (rc) return rc;
            continue;
        }
        if (!json_is_number(v)) return refuse(err, errlen, "input 'data' element %zu is not a number", *at);
        double d = json_number_value(v);
        if (!isfinite(d) || fabs(d) > 3.4e38) return refuse(err, errlen, "input 'data' element %zu is not a finite FP32 value", *at);
        if (*at >= total) return refuse(err, errlen, "input 'data' holds more than the %zu values its shape says", total);
        out[(*at)++] = (float)d;
    }
    return 0;
}

static int parse_input(const json_t *in, size_t inputs, size_t max_rows, serve_request *out, char *err, size_t errlen)
{
    if (!json_is_object(in)) return refuse(err, errlen, "each entry of 'inputs' must be an object");
    const json_t *name = json_object_get(in, "name"), *dt = json_object_get(in, "datatype"),
                 *shape = json_object_get(in, "shape"), *data = json_object_get(in, "data");
    if (!json_is_string(name) || strcmp(json_string_value(name), "input"))
        return refuse(err, errlen, "unknown input name%s%s%s: this model has one input, 'input'", json_is_string(name) ? " '" : "",
                      json_is_string(name) ? json_string_value(name) : "", json_is_string(name) ? "'" : "");
    if (!json_is_string(dt) || strcmp(json_string_value(dt), "FP32"))
        return refuse(err, errlen, "input 'input' has datatype %s%s%s; this model takes FP32", json_is_string(dt) ? "'" : "",
                      json_is_string(dt) ? json_string_value(dt) : "none", json_is_string(dt) ? "'" : "");
    if (!json_is_array(shape) || json_array_size(shape) != 2)
        return refuse(err, errlen, "input 'input' needs a shape [n, %zu]", inputs);
    size_t dims[2];
    for (size_t i = 0; i < 2; i++) {
        const json_t *d = json_array_get(shape, i);
        if (!json_is_integer(d) || json_integer_value(d) < 1 || json_integer_value(d) > (json_int_t)(1 << 30))
            return refuse(err, errlen, "input 'input' needs a shape [n, %zu] of positive integers", inputs);
        dims[i] = (size_t)json_integer_value(d);
    }
    if (dims[1] != inputs) return refuse(err, errlen, "input 'input' has shape [%zu, %zu]; this model takes [n, %zu]", dims[0], dims[1], inputs);
    if (dims[0] > max_rows) return refuse(err, errlen, "input 'input' has %zu rows; a request holds at most %zu", dims[0], max_rows);
    if (!json_is_array(data)) return refuse(err, errlen, "input 'input' needs its values in 'data', an array");
    size_t total = dims[0] * dims[1], at = 0;
    float *x = malloc(total * sizeof(float));
    if (!x) return refuse(err, errlen, "out of memory for %zu values", total);
    int rc = flatten(data, dims, 2, json_array_size(data) && json_is_array(json_array_get(data, 0)) ? 0 : 1, x, &at, total, err,
                     errlen);
    if (!rc && json_array_size(data) && json_is_array(json_array_get(data, 0)) && json_array_size(data) != dims[0])
        rc = refuse(err, errlen, "input 'data' has %zu rows, its shape says %zu", json_array_size(data), dims[0]);
    if (!rc && at != total) rc = refuse(err, errlen, "input 'data' holds %zu values; shape [%zu, %zu] needs %zu", at, dims[0], dims[1], total);
    if (rc) {
        free(x);
        return rc;
    }
    out->rows = dims[0];
    out->data = x;
    return 0;
}

int serve_request_parse(const char *body, size_t len, size_t inputs, size_t max_rows, serve_request *out, char *err,
                        size_t errlen)
{
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) return refuse(err, errlen, "malformed JSON at line %d, column %d: %s", je.line, je.column, je.text);
    int rc = 0;
    const json_t *ins = json_object_get(root, "inputs"), *id = json_object_get(root, "id");
    if (!json_is_object(root)) rc = refuse(err, errlen, "the request must be a JSON object");
    else if (!json_is_array(ins) || json_array_size(ins) != 1)
        rc = refuse(err, errlen, "the request needs 'inputs', an array with this model's one input 'input'");
    else if (id && !json_is_string(id)) rc = refuse(err, errlen, "'id' must be a string");
    else rc = parse_input(json_array_get(ins, 0), inputs, max_rows, out, err, errlen);
    if (!rc && id && !(out->id = json_dumps(id, JSON_ENCODE_ANY))) rc = refuse(err, errlen, "out of memory");
    json_decref(root);
    if (rc) serve_request_free(out);
    return rc;
}

void serve_request_free(serve_request *r)
{
    free(r->id);
    free(r->data);
    memset(r, 0, sizeof *r);
}

char *serve_error_json(const char *msg)
{
    /* a message may quote the client's bytes (jansson's "near '...'"): keep it printable ASCII,
     * so it is always a valid JSON string */
    char clean[1024];
    size_t n = 0;
    for (; msg[n] && n + 1 < sizeof clean; n++)
        clean[n] = (unsigned char)msg[n] >= 0x20 && (unsigned char)msg[n] < 0x7f ? msg[n] : '?';
    clean[n] = 0;
    json_t *o = json_pack("{s:s}", "error", clean);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

char *serve_answer_json(const char *model, const char *id, const char *output, const float *probs, size_t rows,
                        size_t outputs)
{
    json_t *name = json_string(model);
    char *mname = name ? json_dumps(name, JSON_ENCODE_ANY) : NULL;
    json_decref(name);
    if (!mname) return NULL;
    size_t cap = 256 + strlen(mname) + strlen(output) + (id ? strlen(id) : 0) + rows * outputs * 16, used = 0;
    char *s = malloc(cap);
    if (!s) {
        free(mname);
        return NULL;
    }
    used += (size_t)snprintf(s + used, cap - used, "{\"model_name\":%s,%s%s%s\"outputs\":[{\"name\":\"%s\","
                             "\"shape\":[%zu,%zu],\"datatype\":\"FP32\",\"data\":[", mname, id ? "\"id\":" : "", id ? id : "",
                             id ? "," : "", output, rows, outputs);
    for (size_t i = 0; i < rows * outputs; i++)
        used += (size_t)snprintf(s + used, cap - used, "%s%.9g", i ? "," : "", (double)probs[i]);
    snprintf(s + used, cap - used, "]}]}");
    free(mname);
    return s;
}
