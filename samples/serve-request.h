/* serve-request.h — cldp-serve's KServe v2 / Open Inference Protocol request parser and answer
 * writer: pure functions over bytes (jansson), callable without a server, so the fuzz target
 * (tests/fuzz/fuzz_serve_request.c) drives exactly what the HTTP endpoint runs. */
#ifndef CLDP_SERVE_REQUEST_H
#define CLDP_SERVE_REQUEST_H

#include <stddef.h>

typedef struct serve_request {
    char *id;       /* the request's "id" as JSON text (e.g. "\"42\""), or NULL when absent */
    size_t rows;    /* shape[0] */
    float *data;    /* (rows, inputs), malloc'd */
} serve_request;

/* Parses an infer request body of `len` bytes (not NUL-terminated) for a model with `inputs`
 * features per row: {"id":..., "inputs":[{"name":"input","shape":[n,inputs],"datatype":"FP32",
 * "data":[...]}]}, data flat or nested as the protocol allows, every value a finite number.
 * Returns 0 and fills *out (free it with serve_request_free), or the HTTP status of the refusal
 * (400) with a message for the client in err. At most max_rows rows. */
int serve_request_parse(const char *body, size_t len, size_t inputs, size_t max_rows, serve_request *out, char *err,
                        size_t errlen);
void serve_request_free(serve_request *r);

/* The answer {"model_name":..., "id":..., "outputs":[{"name":OUTPUT,"shape":[rows,outputs],
 * "datatype":"FP32","data":[...]}]} as a malloc'd NUL-terminated string (NULL: out of memory);
 * OUTPUT is "probabilities", or "outputs" for a model's raw outputs. */
char *serve_answer_json(const char *model, const char *id, const char *output, const float *probs, size_t rows,
                        size_t outputs);

/* {"error":"msg"} with msg escaped, malloc'd (NULL: out of memory). */
char *serve_error_json(const char *msg);

#endif
