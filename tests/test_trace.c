/* test_trace — the timeline (cldp_trace_*): a few traced steps on two devices written as Chrome
 * trace-event JSON and read back with jansson (lanes named, per-layer forward and backward per
 * device per step, gradient copies, reduce/update/broadcast/wait every step, times inside the
 * recording, one queue's commands never overlapping, GEMMs inside their layer's span, the file
 * holding what cldp_trace_events returns), tracing changing no bit of the result, nothing
 * recorded once stopped, a traced server's queue waits, batches and compute per batch, bad
 * input, and (trace.h directly) a device's pending commands overflowing their buffer inside a
 * span, whose times carry across the flushes. */
#include "cldp.h"
#include "devices.h"
#include "replica.h" /* CLDP_NARROW */
#include "testutil.h"
#include "trace.h"

#include <jansson.h>
#include <unistd.h>

#define IN 24
#define H1 20
#define H2 12
#define OUT 5
#define LAYERS 3
/* a dense layer of at most CLDP_NARROW outputs runs on cldp's kernels, not CLBlast's (the
 * layers above: 20 outputs wide, 12 and 5 narrow) */
#define WIDE(out) ((out) > CLDP_NARROW)
#define BATCH 48
#define STEPS 3

static cldp_trace_event *all_events(size_t *n)
{
    *n = cldp_trace_event_count();
    cldp_trace_event *ev = calloc(*n ? *n : 1, sizeof *ev);
    size_t got = 0;
    CHECK_OK(cldp_trace_events(0, ev, *n, &got));
    CHECK(got == *n);
    return ev;
}

static size_t count(const cldp_trace_event *ev, size_t n, int lane, uint64_t step, const char *name, const char *cat,
                    int layer)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if ((lane < 0 || ev[i].lane == lane) && ev[i].step == step && (!name || !strcmp(ev[i].name, name)) &&
            (!cat || !strcmp(ev[i].category, cat)) && (layer == -2 || ev[i].layer == layer))
            c++;
    return c;
}

/* Device-timed work on the device's one in-order queue: serial, never overlapping. */
static int on_queue(const cldp_trace_event *e)
{
    const char *c = e->category;
    return !strcmp(c, "gemm") || !strcmp(c, "kernel") || !strcmp(c, "transfer") || !strcmp(c, "broadcast");
}

static int by_start(const void *a, const void *b)
{
    const cldp_trace_event *x = a, *y = b;
    return x->start_us < y->start_us ? -1 : x->start_us > y->start_us;
}

/* The lane named "p:d name" for device `info`, or -1. */
static int lane_of(const cldp_device_info *info, int nlanes)
{
    char want[300], got[300];
    snprintf(want, sizeof want, "%u:%u %s", info->platform_index, info->device_index, info->name);
    for (int l = 1; l < nlanes; l++)
        if (cldp_trace_lane_name(l, got, sizeof got) == CLDP_OK && !strcmp(got, want)) return l;
    return -1;
}

static int lane_count(void)
{
    char buf[300];
    int l = 0;
    while (cldp_trace_lane_name(l, buf, sizeof buf) == CLDP_OK) l++;
    return l;
}

/* The complete events of each track (JSON tid), ordered as a viewer orders them (by start, the
 * longer first), nest: each one either starts after the one around it ends or ends inside it,
 * as the slice tracks of Perfetto and chrome://tracing need; and the file is in start order. */
typedef struct slice { int tid; double ts, end; } slice;

static int by_track(const void *a, const void *b)
{
    const slice *x = a, *y = b;
    if (x->tid != y->tid) return x->tid < y->tid ? -1 : 1;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return x->end > y->end ? -1 : x->end < y->end;
}

static void check_nesting(json_t *te)
{
    size_t n = 0, bad = 0, unsorted = 0;
    slice *sl = malloc((json_array_size(te) + 1) * sizeof *sl);
    double last_ts = -1;
    for (size_t i = 0; i < json_array_size(te); i++) {
        json_t *e = json_array_get(te, i);
        const char *ph = json_string_value(json_object_get(e, "ph"));
        if (!ph || strcmp(ph, "X")) continue;
        double ts = json_number_value(json_object_get(e, "ts"));
        sl[n++] = (slice){(int)json_integer_value(json_object_get(e, "tid")), ts, ts + json_number_value(json_object_get(e, "dur"))};
        unsorted += ts < last_ts;
        last_ts = ts;
    }
    qsort(sl, n, sizeof *sl, by_track);
    double stack[16];
    int depth = 0;
    for (size_t i = 0; i < n; i++) {
        if (i && sl[i].tid != sl[i - 1].tid) depth = 0;
        while (depth && stack[depth - 1] <= sl[i].ts + 1e-4) depth--;
        if (depth && sl[i].end > stack[depth - 1] + 1e-4) {
            if (!bad++)
                fprintf(stderr, "FAIL tid %d: a slice at %.3f..%.3f overlaps the end of the one around it (%.3f)\n", sl[i].tid,
                        sl[i].ts, sl[i].end, stack[depth - 1]);
            continue;
        }
        if (depth < 16) stack[depth++] = sl[i].end;
    }
    CHECK(bad == 0 && unsorted == 0);
    free(sl);
}

/* The file: valid JSON, metadata naming every lane as cldp_trace_lane_name does, and the same
 * events (complete events, plus a begin/end pair per queue wait) as the API returns. */
static double check_file(const char *path, size_t nevents, int nlanes)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        fprintf(stderr, "FAIL %s is not valid JSON: %s (line %d)\n", path, jerr.text, jerr.line);
        test_failures++;
        return 0;
    }
    json_t *te = json_object_get(root, "traceEvents");
    CHECK(json_is_array(te));
    CHECK(!strcmp(json_string_value(json_object_get(root, "displayTimeUnit")), "ms"));
    json_t *other = json_object_get(root, "otherData");
    double traced_us = json_number_value(json_object_get(other, "traced_us"));
    CHECK(traced_us > 0);
    CHECK(json_integer_value(json_object_get(other, "dropped")) == 0);
    size_t complete = 0, begins = 0, ends = 0;
    int named[70] = {0};
    for (size_t i = 0; i < json_array_size(te); i++) {
        json_t *e = json_array_get(te, i);
        const char *ph = json_string_value(json_object_get(e, "ph"));
        CHECK(ph != NULL);
        if (!ph) continue;
        int tid = (int)json_integer_value(json_object_get(e, "tid"));
        if (!strcmp(ph, "M") && !strcmp(json_string_value(json_object_get(e, "name")), "thread_name") && tid >= 0 && tid < 70) {
            char want[300];
            CHECK_OK(cldp_trace_lane_name(tid, want, sizeof want));
            CHECK(!strcmp(json_string_value(json_object_get(json_object_get(e, "args"), "name")), want));
            named[tid] = 1;
        } else if (!strcmp(ph, "X")) {
            complete++;
            double ts = json_number_value(json_object_get(e, "ts")), dur = json_number_value(json_object_get(e, "dur"));
            CHECK(ts >= 0 && dur >= 0 && ts + dur <= traced_us + 0.01);
            CHECK(json_is_string(json_object_get(e, "cat")) && json_is_object(json_object_get(e, "args")));
        } else if (!strcmp(ph, "b")) {
            begins++;
        } else if (!strcmp(ph, "e")) {
            ends++;
        }
    }
    for (int l = 0; l < nlanes; l++) {
        if (!named[l]) fprintf(stderr, "FAIL lane %d has no thread_name metadata\n", l);
        CHECK(named[l]);
    }
    CHECK(begins == ends);
    check_nesting(te);
    if (complete + begins != nevents)
        fprintf(stderr, "FAIL the file holds %zu events, cldp_trace_events %zu\n", complete + begins, nevents);
    CHECK(complete + begins == nevents);
    json_decref(root);
    return traced_us;
}

static void check_training(const char *devices, const char *path)
{
    cldp_model *m;
    CHECK_OK(cldp_model_create(IN, &m));
    CHECK_OK(cldp_model_add_dense(m, H1, CLDP_ACT_RELU));
    CHECK_OK(cldp_model_add_dense(m, H2, CLDP_ACT_TANH));
    CHECK_OK(cldp_model_add_dense(m, OUT, CLDP_ACT_NONE));
    cldp_trainer_options o;
    cldp_trainer_options_init(&o);
    o.devices = devices;
    o.batch = BATCH;
    o.optimizer = CLDP_OPT_SGD; /* no state but momentum: set_params below restarts it exactly */
    o.learning_rate = 0.05f;
    o.split = "even";
    cldp_trainer *t;
    if (cldp_trainer_create(m, &o, &t) != CLDP_OK) {
        fprintf(stderr, "FAIL cldp_trainer_create: %s\n", cldp_last_error());
        test_failures++;
        cldp_model_destroy(m);
        return;
    }
    size_t np = cldp_model_param_count(m);
    float *p0 = malloc(np * sizeof(float)), *p1 = malloc(np * sizeof(float)), *p2 = malloc(np * sizeof(float));
    float *x = malloc(STEPS * BATCH * IN * sizeof(float));
    int32_t *y = malloc(STEPS * BATCH * sizeof(int32_t));
    test_fill(x, STEPS * BATCH * IN, -1, 1);
    for (size_t i = 0; i < STEPS * BATCH; i++) y[i] = (int32_t)(test_rand() % OUT);
    CHECK_OK(cldp_trainer_get_params(t, p0, np));

    CHECK_OK(cldp_trace_start(path));
    for (int s = 0; s < STEPS; s++) CHECK_OK(cldp_trainer_step(t, x + s * BATCH * IN, y + s * BATCH, BATCH, NULL));
    CHECK_OK(cldp_trace_stop());
    CHECK_OK(cldp_trainer_get_params(t, p1, np));
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    CHECK(access(tmp, F_OK) != 0); /* renamed, nothing left behind */

    size_t n;
    cldp_trace_event *ev = all_events(&n);
    int nlanes = lane_count();
    CHECK(nlanes == 3); /* the host and two devices */
    double traced_us = check_file(path, n, nlanes);
    printf("  %zu events over %.1f ms, %d lanes\n", n, traced_us / 1e3, nlanes);
    for (size_t i = 0; i < n; i++) {
        CHECK(ev[i].dur_us >= 0 && ev[i].start_us >= 0 && ev[i].start_us + ev[i].dur_us <= traced_us + 0.01);
        CHECK(ev[i].lane >= 0 && ev[i].lane < nlanes && ev[i].step >= 1 && ev[i].step <= STEPS);
    }
    const char *staging = getenv("CLDP_STAGING"); /* copies on a second queue: outside the serial check */
    int xfer_queue = staging && strcmp(staging, "auto") != 0;
    for (uint64_t s = 1; s <= STEPS; s++) {
        CHECK(count(ev, n, 0, s, "step", "step", -1) == 1);
        CHECK(count(ev, n, -1, s, "reduce", "reduce", -2) >= 1);
        CHECK(count(ev, n, -1, s, "update", "update", -2) >= 1);
        for (int lane = 1; lane < nlanes; lane++) {
            for (int l = 0; l < LAYERS; l++) {
                CHECK(count(ev, n, lane, s, "forward", "step", l) == 1);
                CHECK(count(ev, n, lane, s, "backward", "step", l) == 1);
            }
            CHECK(count(ev, n, lane, s, "forward", NULL, -2) == LAYERS);
            CHECK(count(ev, n, lane, s, "backward", NULL, -2) == LAYERS);
            const int outs[LAYERS] = {H1, H2, OUT};
            size_t gemms = 0, wide = 0, narrow = 0, narrow_dx = 0;
            for (int l = 0; l < LAYERS; l++) {
                if (WIDE(outs[l])) gemms += l ? 3 : 2, wide++; /* forward, dW, dX (layer 0 has no dX) */
                else narrow++, narrow_dx += l > 0 ? 1 : 0;
            }
            CHECK(count(ev, n, lane, s, "gemm", "gemm", -2) == gemms);
            CHECK(count(ev, n, lane, s, "bias_act", "kernel", -2) == wide);
            CHECK(count(ev, n, lane, s, "dense_narrow_forward", "kernel", -2) == narrow);
            CHECK(count(ev, n, lane, s, "dense_narrow_dw", "kernel", -2) == narrow);
            CHECK(count(ev, n, lane, s, "dense_narrow_dx", "kernel", -2) == narrow_dx);
            CHECK(count(ev, n, lane, s, "softmax_xent", "kernel", -1) == 1);
            CHECK(count(ev, n, lane, s, "grad copy", "transfer", -2) >= 1);
            CHECK(count(ev, n, lane, s, "input upload", "transfer", -1) == 2);
            CHECK(count(ev, n, lane, s, "param write", "broadcast", -1) >= 1);
            CHECK(count(ev, n, lane, s, "wait", "wait", -1) == 1);
            /* one queue: its commands in a step never overlap (0.01 us: the file's rounding) */
            cldp_trace_event q[512];
            size_t nq = 0;
            for (size_t i = 0; i < n && nq < 512; i++)
                if (ev[i].lane == lane && ev[i].step == s && on_queue(&ev[i]) && !(xfer_queue && !strcmp(ev[i].name, "grad copy")))
                    q[nq++] = ev[i];
            qsort(q, nq, sizeof *q, by_start);
            for (size_t i = 1; i < nq; i++)
                if (q[i].start_us < q[i - 1].start_us + q[i - 1].dur_us - 0.01) {
                    fprintf(stderr, "FAIL lane %d step %llu: %s at %.3f us starts before %s ends (%.3f us)\n", lane,
                            (unsigned long long)s, q[i].name, q[i].start_us, q[i - 1].name, q[i - 1].start_us + q[i - 1].dur_us);
                    test_failures++;
                    break;
                }
            /* every GEMM inside its layer's forward or backward span */
            for (size_t i = 0; i < nq; i++) {
                if (strcmp(q[i].category, "gemm")) continue;
                int inside = 0;
                for (size_t j = 0; j < n; j++)
                    if (ev[j].lane == lane && ev[j].step == s && ev[j].layer == q[i].layer && !strcmp(ev[j].category, "step") &&
                        ev[j].start_us <= q[i].start_us + 0.01 && q[i].start_us + q[i].dur_us <= ev[j].start_us + ev[j].dur_us + 0.01)
                        inside = 1;
                if (!inside) fprintf(stderr, "FAIL lane %d step %llu: a GEMM of layer %d outside its span\n", lane, (unsigned long long)s, q[i].layer);
                CHECK(inside);
            }
        }
    }
    /* off: the same steps again from the same start record nothing, and give the same bits */
    CHECK_OK(cldp_trainer_set_params(t, p0, np));
    for (int s = 0; s < STEPS; s++) CHECK_OK(cldp_trainer_step(t, x + s * BATCH * IN, y + s * BATCH, BATCH, NULL));
    CHECK(cldp_trace_event_count() == n);
    CHECK_OK(cldp_trainer_get_params(t, p2, np));
    CHECK(memcmp(p1, p2, np * sizeof(float)) == 0);

    /* a device failing inside a traced step (a GEMM of rank 1, in its first layer's forward): the
     * step fails as it does untraced, the recording stays whole, the failed attempt records no
     * "step" span, and the same step again (set_params restarted the count: step STEPS + 1)
     * records its spans */
    char fault[64];
    snprintf(fault, sizeof fault, "1:%d:gemm", STEPS);
    CHECK_OK(cldp_test_control(CLDP_TEST_FAULT, t, fault));
    CHECK_OK(cldp_trace_start(NULL));
    CHECK_STATUS(cldp_trainer_step(t, x, y, BATCH, NULL), CLDP_ERR_CLBLAST);
    CHECK_OK(cldp_trainer_step(t, x, y, BATCH, NULL));
    CHECK_OK(cldp_trace_stop());
    free(ev);
    ev = all_events(&n);
    size_t steps_seen = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK(ev[i].dur_us >= 0 && ev[i].start_us >= 0);
        steps_seen += !strcmp(ev[i].name, "step");
    }
    CHECK(steps_seen == 1);
    CHECK(count(ev, n, 0, STEPS + 1, "step", "step", -1) == 1);
    CHECK(count(ev, n, 2, STEPS + 1, "forward", "step", -2) == LAYERS); /* rank 1's: its failed attempt has none */
    CHECK(count(ev, n, 2, STEPS + 1, "backward", "step", -2) == LAYERS);
    free(ev);
    free(p0);
    free(p1);
    free(p2);
    free(x);
    free(y);
    cldp_trainer_destroy(t);
    cldp_model_destroy(m);
}

static void check_serving(const char *devices)
{
    cldp_model *m;
    CHECK_OK(cldp_model_create(IN, &m));
    CHECK_OK(cldp_model_add_dense(m, H1, CLDP_ACT_RELU));
    CHECK_OK(cldp_model_add_dense(m, OUT, CLDP_ACT_NONE));
    size_t np = cldp_model_param_count(m);
    float *p = malloc(np * sizeof(float));
    CHECK_OK(cldp_model_init_params(m, test_rand(), p, np));
    cldp_server_options so;
    cldp_server_options_init(&so);
    so.devices = devices;
    so.max_batch = 8;
    so.max_queue_delay_us = 1000;
    so.schedule = CLDP_SCHEDULE_ROUND_ROBIN; /* batches on both devices, so both lanes are checked */
    cldp_server *s;
    if (cldp_server_create(m, p, np, &so, &s) != CLDP_OK) {
        fprintf(stderr, "FAIL cldp_server_create: %s\n", cldp_last_error());
        test_failures++;
        free(p);
        cldp_model_destroy(m);
        return;
    }
    enum { REQS = 16, ROWS = 3 };
    float x[ROWS * IN];
    cldp_request *req[REQS];
    CHECK_OK(cldp_trace_start(NULL));
    for (int i = 0; i < REQS; i++) {
        test_fill(x, ROWS * IN, -1, 1);
        CHECK_OK(cldp_server_submit(s, x, ROWS, 0, NULL, NULL, &req[i]));
    }
    for (int i = 0; i < REQS; i++) {
        cldp_status answer = CLDP_ERR_STATE;
        CHECK_OK(cldp_request_wait(req[i], 10000, &answer));
        CHECK(answer == CLDP_OK);
        cldp_request_destroy(req[i]);
    }
    CHECK_OK(cldp_server_shutdown(s)); /* every batch settled and its events recorded */
    CHECK_OK(cldp_trace_stop());
    size_t n;
    cldp_trace_event *ev = all_events(&n);
    int nlanes = lane_count();
    uint64_t batches = 0;
    for (size_t r = 0; r < cldp_server_device_count(s); r++) {
        cldp_device_info info;
        cldp_server_stats st;
        CHECK_OK(cldp_server_device_info(s, r, &info));
        CHECK_OK(cldp_server_stats_get(s, r, &st));
        int lane = lane_of(&info, nlanes);
        batches += st.batches;
        CHECK(st.batches > 0 && lane > 0);
        printf("  server device %zu (lane %d): %llu batches\n", r, lane, (unsigned long long)st.batches);
        CHECK(count(ev, n, lane, 0, "queue wait", "serve", -1) == st.batches);
        CHECK(count(ev, n, lane, 0, "batch", "serve", -1) == st.batches);
        CHECK(count(ev, n, lane, 0, "compute", "serve", -1) == st.batches);
        CHECK(count(ev, n, lane, 0, "gemm", "gemm", -2) == (WIDE(H1) + WIDE(OUT)) * st.batches); /* a wide layer's forward */
        CHECK(count(ev, n, lane, 0, "dense_narrow_forward", "kernel", -2) == (!WIDE(H1) + !WIDE(OUT)) * st.batches);
        CHECK(count(ev, n, lane, 0, "forward", "step", -2) == 2 * st.batches);
    }
    CHECK(batches >= (REQS * ROWS + 7) / 8);
    free(ev);
    free(p);
    cldp_server_destroy(s);
    cldp_model_destroy(m);
}

/* More commands than a queue keeps pending, inside one span: flushed on the way, the span still
 * from its first command's start to its last one's end, every command recorded once, in order. */
static void check_overflow(const char *devices)
{
    enum { N = 2 * CLDP_TRACE_PENDING + 300 };
    const cldp_dev *devs;
    size_t ndev, idx[8], n = 0;
    CHECK_OK(cldp_devices(&devs, &ndev));
    CHECK_OK(cldp_device_select(devices, idx, 8, &n));
    if (n < 1) return;
    const cldp_dev *d = &devs[idx[0]];
    cl_int err;
    cl_context ctx = clCreateContext(NULL, 1, &d->id, NULL, NULL, &err);
    cl_command_queue q = clCreateCommandQueue(ctx, d->id, CL_QUEUE_PROFILING_ENABLE, &err);
    cl_mem buf = clCreateBuffer(ctx, CL_MEM_READ_WRITE, 4096, NULL, &err);
    CHECK(err == CL_SUCCESS);
    CHECK_OK(cldp_trace_start(NULL));
    cldp_trace_set_thread(0, 7);
    cldp_trace_queue *tq = NULL;
    CHECK(cldp_trace_queue_for(&tq, &d->info) != NULL);
    cldp_trace_span_begin(tq, q);
    const float v = 1.0f;
    for (int i = 0; i < N; i++) {
        cl_event *ev = cldp_trace_push(tq, q, "fill", "kernel", 3, CLDP_TRACK_QUEUE, NULL);
        CHECK(ev != NULL);
        CHECK(clEnqueueFillBuffer(q, buf, &v, sizeof v, 0, 4096, 0, NULL, ev) == CL_SUCCESS);
    }
    cldp_trace_span_end(tq, q, "forward", 3);
    cldp_trace_flush(tq, q);
    CHECK_OK(cldp_trace_stop());
    cldp_trace_queue_free(&tq);
    size_t ne;
    cldp_trace_event *ev = all_events(&ne);
    CHECK(ne == N + 1);
    double first = INFINITY, last = -INFINITY, prev_end = -INFINITY;
    size_t fills = 0, spans = 0, order = 0;
    const cldp_trace_event *span = NULL;
    for (size_t i = 0; i < ne; i++) {
        CHECK(ev[i].step == 7 && ev[i].layer == 3);
        if (!strcmp(ev[i].name, "fill")) {
            fills++;
            order += ev[i].start_us < prev_end - 0.01; /* one queue: serial */
            prev_end = ev[i].start_us + ev[i].dur_us;
            first = fmin(first, ev[i].start_us);
            last = fmax(last, prev_end);
        } else if (!strcmp(ev[i].name, "forward")) {
            spans++;
            span = &ev[i];
        }
    }
    CHECK(fills == N && spans == 1 && order == 0);
    if (span) {
        printf("  %d commands in one span through %d flushes: span %.1f us, commands %.1f..%.1f us\n", N,
               N / CLDP_TRACE_PENDING, span->dur_us, first, last);
        CHECK(fabs(span->start_us - first) < 0.01 && fabs(span->start_us + span->dur_us - last) < 0.01);
    }
    free(ev);
    clReleaseMemObject(buf);
    clReleaseCommandQueue(q);
    clReleaseContext(ctx);
}

static void check_bad_input(void)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/nonexistent-cldp-%ld/trace.json", (long)getpid());
    CHECK_STATUS(cldp_trace_start(dir), CLDP_ERR_IO);
    CHECK(strstr(cldp_last_error(), dir) != NULL);
    CHECK_STATUS(cldp_trace_start(""), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_trace_start("."), CLDP_ERR_IO); /* a directory */
    CHECK(strstr(cldp_last_error(), "directory") != NULL);
    CHECK_STATUS(cldp_trace_stop(), CLDP_ERR_STATE); /* nothing recording */
    size_t c = 99;
    cldp_trace_event e[2];
    CHECK_STATUS(cldp_trace_events(0, NULL, 2, &c), CLDP_ERR_INVALID_ARGUMENT);
    CHECK(c == 0);
    CHECK_STATUS(cldp_trace_events(0, e, 2, NULL), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_OK(cldp_trace_events(1u << 30, e, 2, &c)); /* past the end: none */
    CHECK(c == 0);
    char buf[8];
    CHECK_STATUS(cldp_trace_lane_name(-1, buf, sizeof buf), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_trace_lane_name(1000, buf, sizeof buf), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_trace_lane_name(0, NULL, 8), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_OK(cldp_trace_lane_name(0, buf, sizeof buf));
    CHECK(!strcmp(buf, "host"));
}

/* A recording keeps at most 2^21 events: what comes after is counted, not kept, and the file
 * says so in its otherData (read from the file's head: the events make it ~200 MB). */
static void check_bound(const char *path)
{
    enum { BOUND = 1 << 21, EXTRA = 5 };
    CHECK_OK(cldp_trace_start(path));
    double t = cldp_trace_clock_us();
    for (uint64_t i = 0; i < BOUND + EXTRA; i++) cldp_trace_add("e", "host", 0, CLDP_TRACK_QUEUE, -1, i, t, t);
    CHECK_OK(cldp_trace_stop());
    CHECK(cldp_trace_event_count() == BOUND);
    cldp_trace_event last[2];
    size_t got = 9;
    CHECK_OK(cldp_trace_events(BOUND - 1, last, 2, &got));
    CHECK(got == 1 && last[0].step == BOUND - 1); /* the first BOUND kept, in order */
    char head[600] = {0};
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (f) {
        CHECK(fread(head, 1, sizeof head - 1, f) > 0);
        fclose(f);
    }
    char want[64];
    snprintf(want, sizeof want, "\"events\":%d,\"dropped\":%d,", BOUND, EXTRA);
    if (!strstr(head, want) || !strstr(head, "later events were dropped")) fprintf(stderr, "FAIL file head: %.300s\n", head);
    CHECK(strstr(head, want) != NULL && strstr(head, "later events were dropped") != NULL);
    printf("  %d events recorded of %d added; the file says dropped %d\n", BOUND, BOUND + EXTRA, EXTRA);
    CHECK_OK(cldp_trace_start(NULL)); /* a new recording frees the old one's events */
    CHECK_OK(cldp_trace_stop());
    CHECK(cldp_trace_event_count() == 0);
}

int main(void)
{
    test_rng_state = test_seed("test_trace");
    const char *devices = test_devices("test_trace", 2);
    check_bad_input();
    char path[256];
    snprintf(path, sizeof path, "test_trace.%ld.json", (long)getpid());
    check_training(devices, path);
    remove(path);
    check_serving(devices);
    check_overflow(devices);
    check_bound(path);
    remove(path);
    return test_finish("test_trace");
}
