/* cldp-serve — serves the demo MLP (784-256-128-10) over HTTP in the REST form of the KServe v2 /
 * Open Inference Protocol, from a cldp server on every selected device (dynamic batching, hot
 * swap on SIGHUP from the checkpoint, Prometheus metrics). libmicrohttpd and jansson; include/cldp.h
 * only. SIGINT/SIGTERM: stop accepting, drain, exit 0. */
#define _POSIX_C_SOURCE 200809L
#include "cldp.h"
#include "serve-request.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define INPUTS 784
#define CLASSES 10

typedef struct cfg {
    const char *checkpoint, *devices, *host, *model_name, *model, *trace;
    int embedded;
    long port;
    cldp_server_options o;
    size_t max_body, max_connections;
    unsigned idle_timeout_s;
    double request_timeout_ms;
} cfg;

static cfg C;
static cldp_server *S;
static struct MHD_Daemon *D;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* ---- the command line ------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cldp-serve (--checkpoint F | --embedded) [options]\n"
            "Serves a model of 784 inputs (a 1x28x28 image) and 10 classes over HTTP (KServe v2 REST: /v2/health/live, /v2/health/ready,\n"
            "/v2, /v2/models/NAME, /v2/models/NAME/ready, POST /v2/models/NAME/infer, /metrics).\n\n"
            "  --checkpoint F       parameters from a cldp-train checkpoint of that model (SIGHUP reloads it)\n"
            "  --model SPEC         the model, as cldp-train's --model: mlp (the default, cldp-train's default\n"
            "                       784-256-128-10), cnn, or a layer spec ending in dense:10\n"
            "  --embedded           train briefly on the embedded Fashion-MNIST subset first (no setup)\n"
            "  --devices SPEC       devices, as cldp-train's (default: $CLDP_DEVICES, else all GPUs, else all)\n"
            "  --host ADDR          IPv4 address to listen on (default 127.0.0.1)\n"
            "  --port N             port, 0 for any free one (default 8000); the bound port is printed\n"
            "  --model-name NAME    the model's name in URLs (default cldp)\n"
            "  --max-batch N        rows per device batch (default 64)\n"
            "  --max-delay-us N     longest wait for a fuller batch (default 0)\n"
            "  --queue-rows N       rows the queue holds before answering 503 (default 4096)\n"
            "  --timeout-ms N       each request's deadline (default 10000; 504 past it)\n"
            "  --max-body-bytes N   largest request body (default 16777216; 413 beyond)\n"
            "  --max-connections N  connections at once (default 256)\n"
            "  --idle-timeout-s N   a connection silent this long is closed (default 30)\n"
            "  --trace FILE         record a timeline of the serving (each batch's queue wait, forming and\n"
            "                       compute, the devices' work) and write it to FILE on SIGINT/SIGTERM, as\n"
            "                       Chrome trace-event JSON for https://ui.perfetto.dev or chrome://tracing\n");
}

static int number(const char *opt, const char *v, double lo, double hi, double *out)
{
    char *end;
    double d = v ? strtod(v, &end) : 0;
    if (!v || end == v || *end || !(d >= lo && d <= hi)) {
        fprintf(stderr, "cldp-serve: %s needs a number from %.0f to %.0f, got '%s'\n", opt, lo, hi, v ? v : "(nothing)");
        return 0;
    }
    *out = d;
    return 1;
}

static int parse_args(int argc, char **argv)
{
    cldp_server_options_init(&C.o);
    C.host = "127.0.0.1";
    C.model_name = "cldp";
    C.port = 8000;
    C.max_body = 16u << 20;
    C.max_connections = 256;
    C.idle_timeout_s = 30;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double d = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--embedded")) {
            C.embedded = 1;
            continue;
        }
        int ok = 1;
        if (!strcmp(a, "--checkpoint") && v) C.checkpoint = v;
        else if (!strcmp(a, "--model") && v && *v) C.model = v;
        else if (!strcmp(a, "--devices") && v) C.devices = v;
        else if (!strcmp(a, "--host") && v) C.host = v;
        else if (!strcmp(a, "--trace") && v && *v) C.trace = v;
        else if (!strcmp(a, "--model-name") && v && *v && !strchr(v, '/')) C.model_name = v;
        else if (!strcmp(a, "--port")) ok = number(a, v, 0, 65535, &d), C.port = (long)d;
        else if (!strcmp(a, "--max-batch")) ok = number(a, v, 1, 65536, &d), C.o.max_batch = (size_t)d;
        else if (!strcmp(a, "--max-delay-us")) ok = number(a, v, 0, 60e6, &d), C.o.max_queue_delay_us = d;
        else if (!strcmp(a, "--queue-rows")) ok = number(a, v, 1, 1 << 30, &d), C.o.max_queue_rows = (size_t)d;
        else if (!strcmp(a, "--timeout-ms")) ok = number(a, v, 0, 3.6e6, &d), C.o.default_timeout_ms = d;
        else if (!strcmp(a, "--max-body-bytes")) ok = number(a, v, 64, 1 << 30, &d), C.max_body = (size_t)d;
        else if (!strcmp(a, "--max-connections")) ok = number(a, v, 1, 65536, &d), C.max_connections = (size_t)d;
        else if (!strcmp(a, "--idle-timeout-s")) ok = number(a, v, 1, 86400, &d), C.idle_timeout_s = (unsigned)d;
        else {
            fprintf(stderr, "cldp-serve: unknown option or missing value: '%s' (see --help)\n", a);
            return 0;
        }
        if (!ok) return 0;
        i++;
    }
    if (!C.checkpoint == !C.embedded) {
        fprintf(stderr, "cldp-serve: give exactly one of --checkpoint F or --embedded (see --help)\n");
        return 0;
    }
    C.o.devices = C.devices;
    return 1;
}

/* ---- the model ---------------------------------------------------------------------------- */

/* cldp-train's model for --model (its default when NULL or "mlp"), on a 1x28x28 input, so that
 * its checkpoints load here. */
#define CNN_PRESET "conv:32:3:p1,relu,maxpool:2,conv:64:3:p1,relu,maxpool:2,flatten,dense:128,relu,dense:10"
static cldp_model *demo_model(void)
{
    cldp_model *m = NULL;
    const char *spec = C.model && !strcmp(C.model, "cnn") ? CNN_PRESET : C.model && strcmp(C.model, "mlp") ? C.model : NULL;
    cldp_status st = cldp_model_create_shaped(1, 28, 28, &m);
    if (st == CLDP_OK && spec) st = cldp_model_add_spec(m, spec);
    if (st == CLDP_OK && !spec)
        if ((st = cldp_model_add_flatten(m)) == CLDP_OK && (st = cldp_model_add_dense(m, 256, CLDP_ACT_RELU)) == CLDP_OK &&
            (st = cldp_model_add_dense(m, 128, CLDP_ACT_RELU)) == CLDP_OK)
            st = cldp_model_add_dense(m, CLASSES, CLDP_ACT_NONE);
    if (st != CLDP_OK || cldp_model_outputs(m) != CLASSES) {
        fprintf(stderr, "cldp-serve: bad --model: %s\n",
                st != CLDP_OK ? cldp_last_error() : "it must end with 10 outputs (dense:10), one per class");
        cldp_model_destroy(m);
        return NULL;
    }
    return m;
}

/* --embedded: two epochs on the embedded subset's raw pixels (in [0, 1]), then serve those. */
static cldp_status embedded_server(const cldp_model *m, cldp_server **out)
{
    cldp_dataset *ds;
    cldp_status st = cldp_dataset_embedded(1, &ds);
    if (st != CLDP_OK) return st;
    cldp_trainer_options to;
    cldp_trainer_options_init(&to);
    to.devices = C.devices;
    to.batch = 100;
    cldp_trainer *t = NULL;
    st = cldp_trainer_create(m, &to, &t);
    size_t n = cldp_dataset_count(ds);
    double loss = 0;
    for (int e = 0; e < 2 && st == CLDP_OK; e++)
        for (size_t at = 0; at + 100 <= n && st == CLDP_OK; at += 100) {
            cldp_step_stats ss;
            st = cldp_trainer_step(t, cldp_dataset_images(ds) + at * INPUTS, cldp_dataset_labels(ds) + at, 100, &ss);
            loss = ss.loss;
        }
    if (st == CLDP_OK) {
        printf("cldp-serve: trained 2 epochs on the embedded subset (%zu samples), last loss %.3f\n", n, loss);
        st = cldp_server_create_from_trainer(t, &C.o, out);
    }
    cldp_trainer_destroy(t);
    cldp_dataset_destroy(ds);
    return st;
}

/* ---- HTTP ----------------------------------------------------------------------------------- */

typedef struct conn {
    char *body;
    size_t len, cap;
    int too_large;
    double start_ms;
} conn;

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, char *text, const char *type)
{
    if (!text) {
        text = strdup("{\"error\":\"out of memory\"}");
        code = 500;
        if (!text) return MHD_NO;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

/* A JSON answer from a format: {"error": "..."} when `error`, else the text itself. */
static enum MHD_Result reply_fmt(struct MHD_Connection *c, unsigned code, int error, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return reply(c, code, error ? serve_error_json(buf) : strdup(buf), "application/json");
}

static unsigned http_status(cldp_status st)
{
    switch (st) {
    case CLDP_ERR_BUSY: case CLDP_ERR_STATE: case CLDP_ERR_NO_DEVICE: return 503;
    case CLDP_ERR_TIMEOUT: return 504;
    case CLDP_ERR_NONFINITE: case CLDP_ERR_INVALID_ARGUMENT: return 400;
    default: return 500;
    }
}

static enum MHD_Result infer(struct MHD_Connection *c, conn *k)
{
    serve_request rq;
    char err[512];
    if (serve_request_parse(k->body ? k->body : "", k->len, INPUTS, C.o.max_queue_rows, &rq, err, sizeof err))
        return reply_fmt(c, 400, 1, "%s", err);
    float *probs = malloc(rq.rows * CLASSES * sizeof(float));
    cldp_status st = probs ? cldp_server_infer(S, rq.data, rq.rows, probs, 0) : CLDP_ERR_HOST_MEMORY;
    enum MHD_Result ret;
    if (st == CLDP_OK) ret = reply(c, 200, serve_answer_json(C.model_name, rq.id, probs, rq.rows, CLASSES), "application/json");
    else ret = reply_fmt(c, http_status(st), 1, "%s: %s", cldp_status_string(st), cldp_last_error());
    free(probs);
    serve_request_free(&rq);
    return ret;
}

/* Appends printf-style text to a growing buffer. */
static void add(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = *buf ? vsnprintf(*buf + *len, *cap - *len, fmt, ap) : -1;
        va_end(ap);
        if (n >= 0 && *len + (size_t)n < *cap) {
            *len += (size_t)n;
            return;
        }
        size_t ncap = *cap ? *cap * 2 : 8192;
        char *nb = realloc(*buf, ncap);
        if (!nb) return;
        *buf = nb;
        *cap = ncap;
    }
}

/* The statistics in Prometheus' text format, one series per device (label device="p:d") and
 * the total (device="all"). */
static char *metrics(void)
{
    char *b = NULL;
    size_t len = 0, cap = 0;
    size_t n = cldp_server_device_count(S);
    static const char *const names[][3] = {
        {"cldp_requests_succeeded_total", "counter", "requests answered with a result"},
        {"cldp_requests_failed_total", "counter", "requests answered with an error (timeouts and cancels included)"},
        {"cldp_requests_timed_out_total", "counter", "requests past their deadline"},
        {"cldp_rows_total", "counter", "rows inferred"},
        {"cldp_batches_total", "counter", "batches run"},
        {"cldp_queue_seconds_total", "counter", "time requests waited for their first batch"},
        {"cldp_compute_seconds_total", "counter", "time devices spent running batches"},
        {"cldp_device_up", "gauge", "1 while the device serves (the total: devices serving)"},
    };
    cldp_server_stats st[65];
    char label[65][48];
    size_t m = n < 64 ? n : 64;
    for (size_t r = 0; r <= m; r++) {
        cldp_server_stats_get(S, r < m ? r : SIZE_MAX, &st[r]);
        cldp_device_info info;
        if (r < m && cldp_server_device_info(S, r, &info) == CLDP_OK)
            snprintf(label[r], sizeof label[r], "device=\"%u:%u\"", info.platform_index, info.device_index);
        else snprintf(label[r], sizeof label[r], "device=\"all\"");
    }
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        add(&b, &len, &cap, "# HELP %s %s\n# TYPE %s %s\n", names[k][0], names[k][2], names[k][0], names[k][1]);
        for (size_t r = 0; r <= m; r++) {
            const cldp_server_stats *s = &st[r];
            double v[] = {(double)s->succeeded, (double)s->failed, (double)s->timed_out, (double)s->rows, (double)s->batches,
                          s->queue_ms / 1e3, s->compute_ms / 1e3, (double)s->alive};
            add(&b, &len, &cap, "%s{%s} %.9g\n", names[k][0], label[r], v[k]);
        }
    }
    add(&b, &len, &cap, "# HELP cldp_pending_rows rows queued now\n# TYPE cldp_pending_rows gauge\ncldp_pending_rows %zu\n",
        st[m].pending_rows);
    add(&b, &len, &cap, "# HELP cldp_rejected_total requests refused with a full queue\n# TYPE cldp_rejected_total counter\n"
                        "cldp_rejected_total %llu\n", (unsigned long long)st[m].rejected);
    add(&b, &len, &cap, "# HELP cldp_batch_rows rows per batch\n# TYPE cldp_batch_rows histogram\n");
    for (size_t r = 0; r <= m; r++) {
        uint64_t cum = 0;
        for (int h = 0; h < CLDP_SERVER_HIST; h++) {
            cum += st[r].batch_hist[h];
            if (h + 1 < CLDP_SERVER_HIST) add(&b, &len, &cap, "cldp_batch_rows_bucket{%s,le=\"%u\"} %llu\n", label[r], 1u << h, (unsigned long long)cum);
        }
        add(&b, &len, &cap, "cldp_batch_rows_bucket{%s,le=\"+Inf\"} %llu\ncldp_batch_rows_sum{%s} %llu\ncldp_batch_rows_count{%s} %llu\n",
            label[r], (unsigned long long)cum, label[r], (unsigned long long)st[r].rows, label[r], (unsigned long long)st[r].batches);
    }
    add(&b, &len, &cap, "# HELP cldp_latency_seconds request latency, submit to answer (last 8192)\n# TYPE cldp_latency_seconds summary\n");
    for (size_t r = 0; r <= m; r++)
        add(&b, &len, &cap, "cldp_latency_seconds{%s,quantile=\"0.5\"} %.6f\ncldp_latency_seconds{%s,quantile=\"0.95\"} %.6f\n"
                            "cldp_latency_seconds{%s,quantile=\"0.99\"} %.6f\n", label[r], st[r].p50_ms / 1e3, label[r],
            st[r].p95_ms / 1e3, label[r], st[r].p99_ms / 1e3);
    return b;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
                              const char *upload, size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    conn *k = *con_cls;
    if (!k) { /* the headers: refuse an announced oversized body before reading it */
        if (!(k = calloc(1, sizeof *k))) return MHD_NO;
        k->start_ms = now_ms();
        *con_cls = k;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > C.max_body) k->too_large = 1;
        return MHD_YES;
    }
    if (*upload_size) { /* a piece of the body (perhaps one byte) */
        if (!k->too_large && k->len + *upload_size > C.max_body) k->too_large = 1;
        if (!k->too_large) {
            if (k->len + *upload_size > k->cap) {
                size_t ncap = (k->len + *upload_size) * 2;
                char *nb = realloc(k->body, ncap);
                if (!nb) return MHD_NO;
                k->body = nb;
                k->cap = ncap;
            }
            memcpy(k->body + k->len, upload, *upload_size);
            k->len += *upload_size;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (k->too_large) return reply_fmt(c, 413, 1, "the request body is larger than %zu bytes (--max-body-bytes)", C.max_body);
    int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    size_t nl = strlen(C.model_name);
    if (!strcmp(url, "/v2/health/live")) return get ? reply_fmt(c, 200, 0, "{\"live\":true}") : reply_fmt(c, 405, 1, "use GET");
    if (!strcmp(url, "/v2/health/ready")) {
        int ready = cldp_server_ready(S);
        return reply_fmt(c, ready ? 200 : 503, 0, "{\"ready\":%s}", ready ? "true" : "false");
    }
    if (!strcmp(url, "/v2")) return reply_fmt(c, 200, 0, "{\"name\":\"cldp-serve\",\"version\":\"%u.%u.%u\",\"extensions\":[]}",
                                               CLDP_VERSION_MAJOR, CLDP_VERSION_MINOR, CLDP_VERSION_PATCH);
    if (!strcmp(url, "/metrics")) return reply(c, 200, metrics(), "text/plain; version=0.0.4");
    if (!strncmp(url, "/v2/models/", 11)) {
        const char *name = url + 11, *rest = name + strcspn(name, "/");
        if ((size_t)(rest - name) != nl || strncmp(name, C.model_name, nl))
            return reply_fmt(c, 404, 1, "unknown model '%.*s'; this server has '%s'", (int)(rest - name), name, C.model_name);
        if (!*rest)
            return reply_fmt(c, 200, 0, "{\"name\":\"%s\",\"versions\":[\"1\"],\"platform\":\"cldp\",\"inputs\":[{\"name\":\"input\","
                              "\"datatype\":\"FP32\",\"shape\":[-1,%d]}],\"outputs\":[{\"name\":\"probabilities\",\"datatype\":"
                              "\"FP32\",\"shape\":[-1,%d]}]}", C.model_name, INPUTS, CLASSES);
        if (!strcmp(rest, "/ready")) {
            int ready = cldp_server_ready(S);
            return reply_fmt(c, ready ? 200 : 503, 0, "{\"name\":\"%s\",\"ready\":%s}", C.model_name, ready ? "true" : "false");
        }
        if (!strcmp(rest, "/infer")) return post ? infer(c, k) : reply_fmt(c, 405, 1, "use POST for /infer");
    }
    return reply_fmt(c, 404, 1, "no such path '%s' (see /v2/models/%s)", url, C.model_name);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode why)
{
    (void)cls;
    (void)c;
    (void)why;
    conn *k = *con_cls;
    if (k) free(k->body);
    free(k);
    *con_cls = NULL;
}

int main(int argc, char **argv)
{
    if (!parse_args(argc, argv)) return 2;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)C.port);
    if (inet_pton(AF_INET, C.host, &addr.sin_addr) != 1) {
        fprintf(stderr, "cldp-serve: --host '%s' is not an IPv4 address (e.g. 127.0.0.1)\n", C.host);
        return 2;
    }
    /* SIGINT/SIGTERM/SIGHUP are taken by sigwait on this thread, so block them before any thread starts */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    cldp_model *m = demo_model();
    if (!m) {
        fprintf(stderr, "cldp-serve: %s\n", cldp_last_error());
        return 1;
    }
    cldp_status st = C.embedded ? embedded_server(m, &S) : cldp_server_create_from_checkpoint(m, C.checkpoint, &C.o, &S);
    if (st != CLDP_OK) {
        fprintf(stderr, "cldp-serve: cannot start the server: %s\n", cldp_last_error());
        cldp_model_destroy(m);
        return 1;
    }
    if (C.trace && cldp_trace_start(C.trace) != CLDP_OK) { /* an unwritable FILE is refused now */
        fprintf(stderr, "cldp-serve: --trace: %s\n", cldp_last_error());
        cldp_server_destroy(S);
        cldp_model_destroy(m);
        return 2;
    }
    D = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC | MHD_USE_ERROR_LOG,
                         0, NULL, NULL, handle, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                         MHD_OPTION_CONNECTION_LIMIT, (unsigned)C.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
                         C.idle_timeout_s, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
    if (!D) {
        fprintf(stderr, "cldp-serve: cannot listen on %s:%ld (in use? give another --port, or 0 for any free one)\n", C.host, C.port);
        cldp_server_destroy(S);
        cldp_model_destroy(m);
        return 1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(D, MHD_DAEMON_INFO_BIND_PORT);
    printf("cldp-serve: model '%s' on %zu device(s), max batch %zu, listening on http://%s:%u\n", C.model_name,
           cldp_server_device_count(S), C.o.max_batch, C.host, di ? di->port : (unsigned)C.port);
    fflush(stdout);
    for (;;) {
        int sig = 0;
        sigwait(&sigs, &sig);
        if (sig != SIGHUP) break;
        uint64_t gen = 0;
        if (!C.checkpoint) fprintf(stderr, "cldp-serve: SIGHUP: no --checkpoint to reload\n");
        else if (cldp_server_swap_checkpoint(S, C.checkpoint, &gen) != CLDP_OK)
            fprintf(stderr, "cldp-serve: SIGHUP: kept the parameters: %s\n", cldp_last_error());
        else printf("cldp-serve: SIGHUP: parameters of '%s' swapped in (generation %llu)\n", C.checkpoint, (unsigned long long)gen);
        fflush(stdout);
    }
    /* drain: no new connections; the accepted requests are answered; then the connections close */
    MHD_socket ls = MHD_quiesce_daemon(D);
    if (ls != MHD_INVALID_SOCKET) close(ls);
    cldp_server_shutdown(S);
    MHD_stop_daemon(D);
    cldp_server_stats t;
    cldp_server_stats_get(S, SIZE_MAX, &t);
    printf("cldp-serve: drained and stopped: %llu requests succeeded, %llu failed, %llu refused busy\n",
           (unsigned long long)t.succeeded, (unsigned long long)t.failed, (unsigned long long)t.rejected);
    int code = 0;
    if (C.trace) { /* every batch has settled: its events are in */
        size_t n = cldp_trace_event_count();
        if (cldp_trace_stop() != CLDP_OK) fprintf(stderr, "cldp-serve: --trace: %s\n", cldp_last_error()), code = 1;
        else printf("cldp-serve: timeline of %zu events written to %s\n", n, C.trace);
    }
    cldp_server_destroy(S);
    cldp_model_destroy(m);
    return code;
}
