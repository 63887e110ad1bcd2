/* fuzz_serve_request.c — libFuzzer target for cldp-serve's KServe v2 infer request parser
 * (samples/serve-request.c), the pure function the HTTP endpoint runs on every body, and for the
 * answer and error JSON it writes from what it accepts or refuses.
 *
 * Input framing: byte 0 gives the model's inputs per row (1 + byte mod 8, so that valid shapes are
 * within reach), byte 1 the most rows a request may hold (1 + byte mod 16); the rest is the body.
 * Seeds: tests/fuzz/corpus/fuzz_serve_request. */
#include "fuzz.h"
#include "serve-request.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    size_t inputs = 1 + data[0] % 8, max_rows = 1 + data[1] % 16;
    char *body = malloc(size - 2 + 1); /* exactly the bytes: the parser must not read past them */
    if (!body) return 0;
    memcpy(body, data + 2, size - 2);
    serve_request r;
    char err[512];
    int rc = serve_request_parse(body, size - 2, inputs, max_rows, &r, err, sizeof err);
    char *out;
    if (rc == 0) {
        EXPECT(r.rows >= 1 && r.rows <= max_rows && r.data);
        for (size_t i = 0; i < r.rows * inputs; i++) EXPECT(isfinite(r.data[i]));
        /* what is accepted is answered with valid JSON carrying the id back */
        out = serve_answer_json("m\"odel", r.id, "probabilities", r.data, r.rows, inputs);
        EXPECT(out);
        json_t *j = json_loads(out, 0, NULL);
        EXPECT(j && json_array_size(json_object_get(json_array_get(json_object_get(j, "outputs"), 0), "data")) == r.rows * inputs);
        EXPECT(!r.id || json_is_string(json_object_get(j, "id")));
        json_decref(j);
        serve_request_free(&r);
    } else {
        EXPECT(rc == 400 && err[0] && !r.data && !r.id);
        out = serve_error_json(err);
        EXPECT(out);
        json_t *j = json_loads(out, 0, NULL);
        EXPECT(j && json_is_string(json_object_get(j, "error")));
        json_decref(j);
    }
    free(out);
    free(body);
    return 0;
}
