/* server.c — the inference server's request side: submit, wait, cancel, the bounded queue and its
 * dynamic batching (pull from the head, Triton's delay rule), deadlines, exactly-once answers,
 * parameter generations pinned per request, and the statistics. Creation, options, swaps and
 * shutdown are server_life.c; the devices' side is server_dev.c. */
#define _POSIX_C_SOURCE 200809L
#include "server.h"
#include "trace.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- parameter generations -------------------------------------------------------------- */

void cldp_srv_params_unref(srv_params *pv)
{
    if (pv && atomic_fetch_sub(&pv->refs, 1) == 1) {
        free(pv->p);
        free(pv);
    }
}

/* ---- the queue (all under mu) ----------------------------------------------------------- */

static void unlink_item(cldp_server *s, srv_item *it)
{
    if (it->prev) it->prev->next = it->next;
    else s->head = it->next;
    if (it->next) it->next->prev = it->prev;
    else s->tail = it->prev;
    it->prev = it->next = NULL;
    s->queued_rows -= it->count;
    it->req->queued_items--;
    if (it->owned) free(it);
}

static void push_back(cldp_server *s, srv_item *it)
{
    it->next = NULL;
    it->prev = s->tail;
    if (s->tail) s->tail->next = it;
    else s->head = it;
    s->tail = it;
    s->queued_rows += it->count;
    it->req->queued_items++;
}

static void push_front(cldp_server *s, srv_item *it)
{
    it->prev = NULL;
    it->next = s->head;
    if (s->head) s->head->prev = it;
    else s->tail = it;
    s->head = it;
    s->queued_rows += it->count;
    it->req->queued_items++;
}

/* Wakes a worker for new work: any will do when they pull; under round robin only the one whose
 * turn it is may take it, so all look. */
static void wake(cldp_server *s)
{
    if (s->o.schedule == CLDP_SCHEDULE_ROUND_ROBIN) pthread_cond_broadcast(&s->work_cv);
    else pthread_cond_signal(&s->work_cv);
}

static void record_latency(srv_stats *st, double ms) { st->lat[st->nlat++ % SRV_LAT_RING] = ms; }

/* Decides the request's answer once nothing of it is queued or running. */
static void settle_req(cldp_server *s, cldp_request *r, double now, cldp_request **done)
{
    if (r->answered || r->queued_items || r->inflight) return;
    r->answered = 1;
    s->outstanding--;
    /* a device counts the requests whose last rows it ran; one that never ran counts in the total */
    srv_stats *sets[2] = {&s->total, r->t_first ? &s->w[r->last_rank].st : NULL};
    for (int i = 0; i < 2 && sets[i]; i++) {
        srv_stats *st = sets[i];
        if (r->st == CLDP_OK) st->ok++;
        else st->failed++;
        st->timed_out += r->st == CLDP_ERR_TIMEOUT;
        st->cancelled += r->st == CLDP_CANCELLED;
        record_latency(st, now - r->t_submit);
    }
    r->next_done = *done;
    *done = r;
    pthread_cond_broadcast(&s->drain_cv);
}

static void fail_req(cldp_request *r, cldp_status st)
{
    if (r->st == CLDP_OK) r->st = st;
}

/* Removes every queued range of r. */
static void dequeue_req(cldp_server *s, cldp_request *r)
{
    for (srv_item *it = s->head, *next; it; it = next) {
        next = it->next;
        if (it->req == r) unlink_item(s, it);
    }
}

void cldp_srv_sweep(cldp_server *s, double now, cldp_request **done)
{
    for (srv_item *it = s->head, *next; it; it = next) {
        next = it->next;
        cldp_request *r = it->req;
        if (!s->alive) fail_req(r, CLDP_ERR_NO_DEVICE);
        else if (r->deadline > 0 && now >= r->deadline) fail_req(r, CLDP_ERR_TIMEOUT);
        else if (r->st == CLDP_OK) continue;
        unlink_item(s, it);
        settle_req(s, r, now, done);
    }
}

static size_t next_alive(const cldp_server *s, size_t from)
{
    for (size_t k = 1; k <= s->n; k++)
        if (!s->w[(from + k) % s->n].dead) return (from + k) % s->n;
    return from;
}

/* Whether w may form a batch now: the queue has rows, it is w's turn (round robin), and the
 * batch is full, the oldest request has waited max_queue_delay_us, or the server is stopping.
 * *wait_ms: how long until the delay rule lets it (when it is only that). */
static int may_take(const cldp_server *s, const srv_worker *w, double now, double *wait_ms)
{
    *wait_ms = -1;
    if (!s->head) return 0;
    if (s->o.schedule == CLDP_SCHEDULE_ROUND_ROBIN && s->rr_turn != w->rank) return 0;
    double age_ms = now - s->head->req->t_submit, delay_ms = s->o.max_queue_delay_us / 1000.0;
    if (s->queued_rows >= w->max_rows || age_ms >= delay_ms || s->stop) return 1;
    *wait_ms = delay_ms - age_ms;
    return 0;
}

void cldp_srv_timed_wait(pthread_cond_t *cv, pthread_mutex_t *mu, double ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double sec = (double)ts.tv_nsec * 1e-9 + ms * 1e-3;
    ts.tv_sec += (time_t)sec;
    ts.tv_nsec = (long)((sec - floor(sec)) * 1e9);
    pthread_cond_timedwait(cv, mu, &ts);
}

int cldp_srv_take(cldp_server *s, srv_worker *w)
{
    size_t in = s->model.inputs;
    for (;;) {
        if (w->dead) return 0;
        double now = cldp_now_ms(), wait_ms;
        cldp_request *done = NULL;
        cldp_srv_sweep(s, now, &done);
        if (done) { /* answers are delivered without the lock */
            pthread_mutex_unlock(&s->mu);
            cldp_srv_deliver(done);
            pthread_mutex_lock(&s->mu);
            continue;
        }
        if (may_take(s, w, now, &wait_ms)) break;
        if (s->stop && !s->head) return 0;
        if (wait_ms >= 0) cldp_srv_timed_wait(&s->work_cv, &s->mu, wait_ms);
        else pthread_cond_wait(&s->work_cv, &s->mu);
    }
    /* the batch: ranges from the head, all on one generation (a request's rows never mix two) */
    double now = cldp_now_ms(), oldest = now;
    srv_params *pv = NULL;
    w->nparts = w->rows = 0;
    while (s->head && w->rows < w->max_rows) {
        srv_item *it = s->head;
        cldp_request *r = it->req;
        if (pv && r->pv && r->pv != pv) break;
        if (!pv) pv = r->pv ? r->pv : s->cur;
        if (!r->pv) {
            r->pv = pv;
            atomic_fetch_add(&pv->refs, 1);
        }
        if (r->t_submit < oldest) oldest = r->t_submit;
        if (r->t_first == 0) {
            r->t_first = now;
            w->st.queue_ms += now - r->t_submit;
            s->total.queue_ms += now - r->t_submit;
        }
        size_t take = it->count < w->max_rows - w->rows ? it->count : w->max_rows - w->rows;
        w->parts[w->nparts++] = (srv_part){r, it->begin, take, it->retried};
        memcpy(w->x + w->rows * in, r->x + it->begin * in, take * in * sizeof(float));
        r->inflight++;
        w->rows += take;
        it->begin += take;
        it->count -= take;
        s->queued_rows -= take;
        if (it->count == 0) unlink_item(s, it);
    }
    atomic_fetch_add(&pv->refs, 1);
    w->pv = pv;
    w->busy = 1;
    w->claimed = 0;
    w->batch_start = now;
    if (s->o.schedule == CLDP_SCHEDULE_ROUND_ROBIN) s->rr_turn = next_alive(s, w->rank);
    if (s->head) wake(s); /* more for another idle worker */
    if (CLDP_TRACING()) { /* the worker's lane: its batch's oldest wait, and forming the batch */
        for (size_t r = 0; r < s->n; r++) cldp_trace_lane_for(&s->w[r].dev->info); /* lanes in rank order */
        int lane = cldp_trace_lane_for(&w->dev->info);
        cldp_trace_add("queue wait", "serve", lane, CLDP_TRACK_ASYNC, -1, 0, oldest * 1e3, now * 1e3);
        cldp_trace_add("batch", "serve", lane, CLDP_TRACK_THREAD, -1, 0, now * 1e3, cldp_now_ms() * 1e3);
    }
    return 1;
}

static void batch_stats(srv_stats *st, size_t rows, double ms)
{
    size_t b = 0;
    while (b + 1 < CLDP_SERVER_HIST && ((size_t)1 << b) < rows) b++;
    st->hist[b]++;
    st->rows += rows;
    st->batches++;
    st->compute_ms += ms;
}

/* The batch is settled. Its generation's reference stays the worker's, which may still be
 * reading it (when the watchdog settled the batch): the worker lets go of it itself. */
static void end_batch(srv_worker *w)
{
    w->pv = NULL;
    w->busy = 0;
    w->nparts = 0;
}

void cldp_srv_settle(cldp_server *s, srv_worker *w, cldp_status st, const float *probs, double compute_ms,
                     cldp_request **done)
{
    size_t outputs = cldp_model_outputs(&s->model), at = 0;
    double now = cldp_now_ms();
    batch_stats(&w->st, w->rows, compute_ms);
    batch_stats(&s->total, w->rows, compute_ms);
    for (size_t i = 0; i < w->nparts; i++) {
        srv_part *p = &w->parts[i];
        cldp_request *r = p->req;
        if (st == CLDP_OK && r->st == CLDP_OK)
            memcpy(r->probs + p->begin * outputs, probs + at * outputs, p->count * outputs * sizeof(float));
        fail_req(r, st);
        at += p->count;
        r->inflight--;
        r->last_rank = w->rank;
        settle_req(s, r, now, done);
    }
    end_batch(w);
}

void cldp_srv_fail_parts(cldp_server *s, srv_worker *w, cldp_status st, int retry, cldp_request **done)
{
    double now = cldp_now_ms();
    for (size_t i = 0; i < w->nparts; i++) {
        srv_part *p = &w->parts[i];
        cldp_request *r = p->req;
        r->inflight--;
        r->last_rank = w->rank;
        srv_item *it = retry && !p->retried && s->alive && r->st == CLDP_OK ? cldp_calloc(1, sizeof *it, "retry") : NULL;
        if (it) {
            *it = (srv_item){r, p->begin, p->count, 1, 1, NULL, NULL};
            push_front(s, it);
        } else {
            fail_req(r, st);
        }
        settle_req(s, r, now, done);
    }
    end_batch(w);
    pthread_cond_broadcast(&s->work_cv);
}

/* ---- requests --------------------------------------------------------------------------- */

static void req_unref(cldp_request *r)
{
    if (atomic_fetch_sub(&r->refs, 1) != 1) return;
    if (r->s) cldp_srv_unref(r->s); /* a request keeps the server's core (its mutex) alive */
    cldp_srv_params_unref(r->pv);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r->x);
    free(r->probs);
    free(r);
}

void cldp_srv_deliver(cldp_request *done)
{
    while (done) {
        cldp_request *r = done;
        done = r->next_done;
        pthread_mutex_lock(&r->mu);
        r->answer = r->st;
        r->ready = 1;
        pthread_mutex_unlock(&r->mu);
        if (r->cb) r->cb(r, r->answer, r->user);
        pthread_mutex_lock(&r->mu);
        r->done = 1;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        req_unref(r);
    }
}

cldp_status cldp_server_submit(cldp_server *s, const float *x, size_t rows, double timeout_ms, cldp_request_callback cb,
                               void *user, cldp_request **out)
{
    if (out) *out = NULL;
    REQUIRE(s && x, "cldp_server_submit: server or x is NULL");
    REQUIRE(rows >= 1 && rows <= s->o.max_queue_rows, "cldp_server_submit: %zu rows; a request holds 1 to %zu (the queue's "
            "bound, max_queue_rows)", rows, s->o.max_queue_rows);
    REQUIRE(timeout_ms >= 0 && isfinite(timeout_ms), "cldp_server_submit: timeout_ms must be >= 0 (0: the default), got %g",
            timeout_ms);
    size_t in = s->model.inputs, outputs = cldp_model_outputs(&s->model);
    for (size_t i = 0; i < rows * in; i++)
        if (!isfinite(x[i]))
            return cldp_fail(CLDP_ERR_NONFINITE, "cldp_server_submit: row %zu holds %g at column %zu; inputs must be finite",
                             i / in, (double)x[i], i % in);
    cldp_request *r = cldp_calloc(1, sizeof *r, "request");
    if (!r) return CLDP_ERR_HOST_MEMORY;
    r->x = cldp_malloc(rows * in * sizeof(float), "request rows");
    r->probs = r->x ? cldp_malloc(rows * outputs * sizeof(float), "request results") : NULL;
    if (!r->probs) {
        free(r->x);
        free(r);
        return CLDP_ERR_HOST_MEMORY;
    }
    memcpy(r->x, x, rows * in * sizeof(float));
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->s = s;
    r->rows = rows;
    r->cb = cb;
    r->user = user;
    r->t_submit = cldp_now_ms();
    double limit = s->o.default_timeout_ms;
    if (timeout_ms > 0 && (limit == 0 || timeout_ms < limit)) limit = timeout_ms;
    r->deadline = limit > 0 ? r->t_submit + limit : 0;
    r->item = (srv_item){r, 0, rows, 0, 0, NULL, NULL};
    atomic_init(&r->refs, out ? 2 : 1);

    cldp_status st = CLDP_OK;
    pthread_mutex_lock(&s->mu);
    if (!s->accepting) st = cldp_fail(CLDP_ERR_STATE, "cldp_server_submit: the server is shutting down; no request is taken");
    else if (!s->alive) st = cldp_fail(CLDP_ERR_NO_DEVICE, "cldp_server_submit: every device of the server has left after a "
                                                           "failure; create a new server");
    else if (s->queued_rows + rows > s->o.max_queue_rows) {
        s->rejected++;
        st = cldp_fail(CLDP_ERR_BUSY, "cldp_server_submit: the queue is full (%zu of %zu rows queued, %zu more asked); retry "
                                      "later", s->queued_rows, s->o.max_queue_rows, rows);
    } else {
        atomic_fetch_add(&s->refs, 1);
        s->outstanding++;
        push_back(s, &r->item);
        wake(s);
    }
    pthread_mutex_unlock(&s->mu);
    if (st != CLDP_OK) {
        r->s = NULL; /* it took no reference on the server */
        atomic_store(&r->refs, 1);
        req_unref(r);
        return st;
    }
    if (out) *out = r;
    return CLDP_OK;
}

cldp_status cldp_request_wait(cldp_request *r, double timeout_ms, cldp_status *answer)
{
    REQUIRE(r, "cldp_request_wait: request is NULL");
    double until = cldp_now_ms() + timeout_ms;
    pthread_mutex_lock(&r->mu);
    while (!r->done) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&r->cv, &r->mu);
        } else {
            double left = until - cldp_now_ms();
            if (left <= 0) break;
            cldp_srv_timed_wait(&r->cv, &r->mu, left);
        }
    }
    int done = r->done;
    cldp_status a = r->answer;
    pthread_mutex_unlock(&r->mu);
    if (!done) return cldp_fail(CLDP_ERR_TIMEOUT, "cldp_request_wait: the request is still pending after %.0f ms", timeout_ms);
    if (answer) *answer = a;
    return CLDP_OK;
}

cldp_status cldp_request_cancel(cldp_request *r)
{
    REQUIRE(r, "cldp_request_cancel: request is NULL");
    cldp_server *s = r->s;
    cldp_request *done = NULL;
    pthread_mutex_lock(&s->mu);
    int late = r->answered;
    if (!late) {
        fail_req(r, CLDP_CANCELLED);
        dequeue_req(s, r);
        settle_req(s, r, cldp_now_ms(), &done);
    }
    pthread_mutex_unlock(&s->mu);
    cldp_srv_deliver(done);
    if (late) return cldp_fail(CLDP_ERR_STATE, "cldp_request_cancel: the request was already answered");
    return CLDP_OK;
}

const float *cldp_request_probs(const cldp_request *cr, uint64_t *generation)
{
    if (!cr) return NULL;
    cldp_request *r = (cldp_request *)cr;
    pthread_mutex_lock(&r->mu);
    int ok = r->ready && r->answer == CLDP_OK;
    pthread_mutex_unlock(&r->mu);
    if (!ok) return NULL;
    if (generation) *generation = r->pv ? r->pv->gen : 0; /* pinned before it ran, never changed since */
    return r->probs;
}

void cldp_request_destroy(cldp_request *r)
{
    if (r) req_unref(r);
}

cldp_status cldp_server_infer(cldp_server *s, const float *x, size_t rows, float *probs, double timeout_ms)
{
    REQUIRE(probs, "cldp_server_infer: probs is NULL");
    cldp_request *r;
    TRY(cldp_server_submit(s, x, rows, timeout_ms, NULL, NULL, &r));
    cldp_status answer = CLDP_OK;
    cldp_request_wait(r, -1, &answer); /* every request has an answer: its deadline, the watchdog */
    if (answer == CLDP_OK) memcpy(probs, r->probs, rows * cldp_model_outputs(&s->model) * sizeof(float));
    cldp_request_destroy(r);
    if (answer == CLDP_OK) return CLDP_OK;
    return cldp_fail(answer, "cldp_server_infer: the request of %zu rows was answered %s%s", rows, cldp_status_string(answer),
                     answer == CLDP_ERR_TIMEOUT ? " (its deadline passed before it ran, or its batch hung)" : "");
}

/* ---- facts and statistics --------------------------------------------------------------- */

size_t cldp_server_device_count(const cldp_server *s) { return s ? s->n : 0; }
size_t cldp_server_inputs(const cldp_server *s) { return s ? s->model.inputs : 0; }
size_t cldp_server_outputs(const cldp_server *s) { return s ? cldp_model_outputs(&s->model) : 0; }

int cldp_server_ready(const cldp_server *s)
{
    if (!s) return 0;
    pthread_mutex_lock((pthread_mutex_t *)&s->mu);
    int ready = s->accepting && s->alive > 0;
    pthread_mutex_unlock((pthread_mutex_t *)&s->mu);
    return ready;
}

cldp_status cldp_server_device_info(const cldp_server *s, size_t rank, cldp_device_info *info)
{
    REQUIRE(s && info, "cldp_server_device_info: server or info is NULL");
    REQUIRE(rank < s->n, "cldp_server_device_info: rank %zu, the server has %zu devices", rank, s->n);
    *info = s->w[rank].dev->info;
    return CLDP_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *sorted, size_t n, double q)
{
    if (!n) return 0;
    size_t i = (size_t)ceil(q * (double)n);
    return sorted[(i ? i : 1) - 1];
}

cldp_status cldp_server_stats_get(const cldp_server *cs, size_t rank, cldp_server_stats *out)
{
    REQUIRE(cs && out, "cldp_server_stats_get: server or stats is NULL");
    REQUIRE(rank < cs->n || rank == SIZE_MAX, "cldp_server_stats_get: rank %zu, the server has %zu devices (SIZE_MAX: total)",
            rank, cs->n);
    cldp_server *s = (cldp_server *)cs;
    double *lat = cldp_malloc(SRV_LAT_RING * sizeof(double), "latency snapshot");
    if (!lat) return CLDP_ERR_HOST_MEMORY;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->mu);
    const srv_stats *st = rank == SIZE_MAX ? &s->total : &s->w[rank].st;
    out->succeeded = st->ok;
    out->failed = st->failed;
    out->timed_out = st->timed_out;
    out->cancelled = st->cancelled;
    out->rows = st->rows;
    out->batches = st->batches;
    out->queue_ms = st->queue_ms;
    out->compute_ms = st->compute_ms;
    memcpy(out->batch_hist, st->hist, sizeof st->hist);
    size_t nl = st->nlat < SRV_LAT_RING ? (size_t)st->nlat : SRV_LAT_RING;
    memcpy(lat, st->lat, nl * sizeof(double));
    if (rank == SIZE_MAX) {
        out->rejected = s->rejected;
        out->pending_rows = s->queued_rows;
        out->alive = (int)s->alive;
        out->generation = s->cur->gen;
    } else {
        out->alive = !s->w[rank].dead;
        out->generation = s->w[rank].dev_gen == UINT64_MAX ? 0 : s->w[rank].dev_gen;
    }
    pthread_mutex_unlock(&s->mu);
    qsort(lat, nl, sizeof *lat, cmp_double);
    out->p50_ms = pct(lat, nl, 0.50);
    out->p95_ms = pct(lat, nl, 0.95);
    out->p99_ms = pct(lat, nl, 0.99);
    free(lat);
    return CLDP_OK;
}
