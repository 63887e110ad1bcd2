/* bench-serve.h — cldp-bench's section "serve": the inference server under load, the demo MLP
 * (784-256-128-10), one row per request, every loop bounded in time and count, 127.0.0.1 only.
 *
 *   in process   a closed-loop sweep of 1, 2, 4 ... 64 client threads calling cldp_server_infer;
 *                2 devices vs 1, dynamic batching vs max_batch 1 at 64 clients (alternating
 *                rounds); an open-loop Poisson stream at half the saturated rate (p99 / p50);
 *                device 1 slowed 3x (CLDP_TEST_SLOWDOWN): pull vs an even round robin of batches.
 *   HTTP         cldp-serve (next to this program) on the same parameters from a checkpoint, the
 *                same sweep over keep-alive loopback connections with a hand-written HTTP/1.1
 *                client, an open-loop Poisson stream, and HTTP's throughput as a fraction of the
 *                in-process one.
 * Included by cldp-bench.c. */
#ifndef CLDP_BENCH_SERVE_H
#define CLDP_BENCH_SERVE_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#ifdef CLDP_HAVE_SERVE_REQUEST
#include "serve-request.h"
#endif

#define SRV_MAX_CLIENTS 64
#define SRV_MAX_LAT 20000 /* latencies kept per client per run */
#define SRV_MAX_OPEN 200000 /* requests of one in-process open loop */

extern char **environ;

typedef struct srv_load {
    cldp_server *s;      /* in process, or NULL for HTTP */
    int port;
    const char *http_req; /* the whole HTTP request, for HTTP */
    size_t http_len;
    const float *x;      /* (64, 784) rows to send */
    double until_ms;
    double rate;         /* > 0: open loop, requests at Poisson arrivals of this rate per second */
    uint64_t seed;
    size_t id;
    double lat[SRV_MAX_LAT];
    size_t n, errors;
} srv_load;

typedef struct srv_result {
    double rps, p50, p95, p99; /* requests/s; client-side latency in ms */
    double queue_ms, compute_ms, mean_batch; /* server: per request, per batch; rows per batch */
    size_t errors;
} srv_result;

static int srv_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0) return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One POST on a keep-alive connection: the HTTP status, or -1 (the connection is then useless). */
static int srv_http_post(int fd, const char *req, size_t len, char *buf, size_t cap)
{
    for (size_t sent = 0; sent < len;) {
        ssize_t k = write(fd, req + sent, len - sent);
        if (k <= 0) return -1;
        sent += (size_t)k;
    }
    size_t got = 0;
    char *end = NULL;
    while (!end) {
        if (got + 1 >= cap) return -1;
        ssize_t k = read(fd, buf + got, cap - 1 - got);
        if (k <= 0) return -1;
        got += (size_t)k;
        buf[got] = 0;
        end = strstr(buf, "\r\n\r\n");
    }
    const char *cl = strstr(buf, "Content-Length:");
    if (!cl) cl = strstr(buf, "content-length:");
    size_t body = cl ? strtoul(cl + 15, NULL, 10) : 0, have = got - (size_t)(end + 4 - buf);
    while (have < body) {
        ssize_t k = read(fd, buf, cap < body - have ? cap : body - have);
        if (k <= 0) return -1;
        have += (size_t)k;
    }
    return atoi(buf + 9);
}

/* An exponential interval of mean 1/rate seconds, in ms (xorshift64). */
static double srv_interval(uint64_t *s, double rate)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return -log(1.0 - (double)(*s >> 11) * 0x1.0p-53) / rate * 1e3;
}

static void srv_sleep_until(double t)
{
    double wait = t - now_ms();
    if (wait > 0) nanosleep(&(struct timespec){(time_t)(wait / 1e3), (long)(fmod(wait, 1e3) * 1e6)}, NULL);
}

static void *srv_client(void *arg)
{
    srv_load *L = arg;
    char buf[8192];
    float probs[10];
    int fd = L->s ? -1 : srv_connect(L->port);
    double next = now_ms();
    for (size_t k = 0; now_ms() < L->until_ms && L->n < SRV_MAX_LAT; k++) {
        if (L->rate > 0) srv_sleep_until(next += srv_interval(&L->seed, L->rate));
        double t0 = L->rate > 0 ? next : now_ms(); /* open loop: latency from the arrival, lateness included */
        int ok;
        if (L->s) {
            ok = cldp_server_infer(L->s, L->x + ((L->id + k) % 64) * 784, 1, probs, 0) == CLDP_OK;
        } else {
            if (fd < 0) fd = srv_connect(L->port);
            ok = fd >= 0 && srv_http_post(fd, L->http_req, L->http_len, buf, sizeof buf) == 200;
            if (!ok && fd >= 0) close(fd), fd = -1;
        }
        if (ok) L->lat[L->n++] = now_ms() - t0;
        else L->errors++;
    }
    if (fd >= 0) close(fd);
    return NULL;
}

static double srv_pct(double *v, size_t n, double q)
{
    if (!n) return 0;
    size_t i = (size_t)ceil(q * (double)n);
    return v[(i ? i : 1) - 1];
}

static void srv_server_split(cldp_server *s, const cldp_server_stats *a, srv_result *r)
{
    if (!s) return;
    cldp_server_stats b;
    cldp_server_stats_get(s, SIZE_MAX, &b);
    double req = (double)(b.succeeded + b.failed - a->succeeded - a->failed), bat = (double)(b.batches - a->batches);
    r->queue_ms = req > 0 ? (b.queue_ms - a->queue_ms) / req : 0;
    r->compute_ms = bat > 0 ? (b.compute_ms - a->compute_ms) / bat : 0;
    r->mean_batch = bat > 0 ? (double)(b.rows - a->rows) / bat : 0;
}

/* A closed loop: `clients` threads, each sending its next request when the last is answered. */
static srv_result srv_loop(cldp_server *s, int port, const char *req, size_t len, const float *x, int clients, double ms,
                           double rate)
{
    srv_load *L = malloc(SRV_MAX_CLIENTS * sizeof *L); /* re-entrant: two loops may run at once */
    pthread_t th[SRV_MAX_CLIENTS];
    srv_result r = {0};
    cldp_server_stats a = {0};
    if (s) cldp_server_stats_get(s, SIZE_MAX, &a);
    double t0 = now_ms();
    for (int c = 0; c < clients; c++) {
        L[c] = (srv_load){.s = s, .port = port, .http_req = req, .http_len = len, .x = x, .until_ms = t0 + ms,
                          .rate = rate / clients, .seed = 0x9E3779B97F4A7C15ull * (uint64_t)(c + 1), .id = (size_t)c * 7};
        pthread_create(&th[c], NULL, srv_client, &L[c]);
    }
    size_t n = 0;
    for (int c = 0; c < clients; c++) pthread_join(th[c], NULL), n += L[c].n, r.errors += L[c].errors;
    double wall = now_ms() - t0;
    double *all = malloc((n ? n : 1) * sizeof *all);
    n = 0;
    for (int c = 0; c < clients; c++) memcpy(all + n, L[c].lat, L[c].n * sizeof *all), n += L[c].n;
    qsort(all, n, sizeof *all, cmp_double);
    r.rps = (double)n / wall * 1e3;
    r.p50 = srv_pct(all, n, 0.5), r.p95 = srv_pct(all, n, 0.95), r.p99 = srv_pct(all, n, 0.99);
    free(all);
    free(L);
    srv_server_split(s, &a, &r);
    return r;
}

static srv_result srv_closed(cldp_server *s, int port, const char *req, size_t len, const float *x, int clients, double ms)
{
    return srv_loop(s, port, req, len, x, clients, ms, 0);
}

/* The machine's ceiling for two devices: two one-device servers loaded at once, 32 clients each. */
typedef struct srv_pair { cldp_server *s; const float *x; double ms; srv_result r; } srv_pair;

static void *srv_pair_main(void *arg)
{
    srv_pair *p = arg;
    p->r = srv_closed(p->s, 0, NULL, 0, p->x, 32, p->ms);
    return NULL;
}

static double srv_ceiling(cldp_server *a, cldp_server *b, const float *x, double ms)
{
    srv_pair p[2] = {{.s = a, .x = x, .ms = ms}, {.s = b, .x = x, .ms = ms}};
    pthread_t th;
    pthread_create(&th, NULL, srv_pair_main, &p[1]);
    srv_pair_main(&p[0]);
    pthread_join(th, NULL);
    return p[0].r.rps + p[1].r.rps;
}

/* ---- open loop ---- */

typedef struct srv_open {
    _Atomic size_t done;
    double t_submit[SRV_MAX_OPEN], lat[SRV_MAX_OPEN];
} srv_open;

typedef struct srv_slot { srv_open *o; size_t i; } srv_slot;

static void srv_open_done(cldp_request *req, cldp_status st, void *user)
{
    (void)req;
    srv_slot *sl = user;
    sl->o->lat[sl->i] = st == CLDP_OK ? now_ms() - sl->o->t_submit[sl->i] : -1;
    atomic_fetch_add(&sl->o->done, 1);
}

/* In process: requests at exponential intervals (a Poisson stream of `rate` per second) for `ms`,
 * submitted without waiting, answered through callbacks. (Over HTTP, srv_loop's open loop: 32
 * connections each with a Poisson stream of rate/32, whose sum is a Poisson stream of `rate`.) */
static srv_result srv_poisson(cldp_server *s, const float *x, double rate, double ms)
{
    srv_open *o = calloc(1, sizeof *o);
    srv_slot *slots = calloc(SRV_MAX_OPEN, sizeof *slots);
    srv_result r = {0};
    cldp_server_stats a;
    cldp_server_stats_get(s, SIZE_MAX, &a);
    double t0 = now_ms(), next = t0;
    uint64_t seed = 88172645463325252ull;
    size_t n = 0;
    while (next < t0 + ms && n < SRV_MAX_OPEN) {
        srv_sleep_until(next += srv_interval(&seed, rate));
        slots[n] = (srv_slot){o, n};
        o->t_submit[n] = next;
        if (cldp_server_submit(s, x + (n % 64) * 784, 1, 0, srv_open_done, &slots[n], NULL) == CLDP_OK) n++;
        else r.errors++;
    }
    while (atomic_load(&o->done) < n) nanosleep(&(struct timespec){0, 1000000}, NULL);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (o->lat[i] >= 0) o->lat[k++] = o->lat[i];
        else r.errors++;
    qsort(o->lat, k, sizeof *o->lat, cmp_double);
    r.rps = (double)k / (now_ms() - t0) * 1e3;
    r.p50 = srv_pct(o->lat, k, 0.5), r.p95 = srv_pct(o->lat, k, 0.95), r.p99 = srv_pct(o->lat, k, 0.99);
    srv_server_split(s, &a, &r);
    free(slots);
    free(o);
    return r;
}

/* ---- the section ---- */

static double best_h_rate(const srv_result *h)
{
    double b = 0;
    for (int k = 0; k < 7; k++) b = h[k].rps > b ? h[k].rps : b;
    return b;
}

static cldp_server *srv_make(const cldp_trainer *t, const char *devices, size_t max_batch, cldp_schedule sched)
{
    cldp_server_options so;
    cldp_server_options_init(&so);
    so.devices = devices;
    so.max_batch = max_batch;
    so.schedule = sched;
    so.max_queue_rows = 1 << 16;
    so.default_timeout_ms = 60000;
    cldp_server *s;
    if (cldp_server_create_from_trainer(t, &so, &s) != CLDP_OK) die("creating a server");
    float x[784] = {0}, p[10];
    for (int i = 0; i < 20; i++) cldp_server_infer(s, x, 1, p, 0); /* both devices warm */
    return s;
}

static void srv_print(const char *what, const srv_result *r)
{
    printf("   %-28s %8.0f req/s  p50 %6.2f  p95 %6.2f  p99 %6.2f ms", what, r->rps, r->p50, r->p95, r->p99);
    if (r->mean_batch > 0) printf("  | server: queue %.2f ms/req, compute %.2f ms/batch, %.1f rows/batch", r->queue_ms, r->compute_ms, r->mean_batch);
    if (r->errors) printf("  (%zu errors)", r->errors);
    printf("\n");
}

/* cldp-serve next to this program, on `ckpt`, any free port: its pid and port (0: not there). */
static pid_t srv_spawn(const char *ckpt, const char *devices, int *port)
{
    char exe[4200], self[4096];
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    *port = 0;
    if (k <= 0) return 0;
    self[k] = 0;
    char *slash = strrchr(self, '/');
    if (slash) *slash = 0;
    snprintf(exe, sizeof exe, "%s/cldp-serve", self);
    if (access(exe, X_OK) != 0) return 0;
    int fds[2];
    if (pipe(fds) != 0) return 0;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    char *argv[] = {exe, "--checkpoint", (char *)ckpt, "--port", "0", "--devices", (char *)devices, "--max-batch", "64",
                    "--queue-rows", "65536", "--timeout-ms", "60000", NULL};
    pid_t pid = 0;
    if (posix_spawn(&pid, exe, &fa, NULL, argv, environ) != 0) pid = 0;
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char line[512];
    while (pid && f && fgets(line, sizeof line, f)) {
        const char *at = strstr(line, "listening on http://127.0.0.1:");
        if (at) {
            *port = atoi(at + 30);
            break;
        }
    }
    if (f) fclose(f);
    return pid;
}

static void bench_serve(const opts *o, FILE *js)
{
    printf("serve: the demo MLP 784-256-128-10, one row per request, closed loops %s each\n", o->quick ? "0.5 s" : "1 s");
    prctl(PR_SET_TIMERSLACK, 1UL); /* the open loops' sleeps of tens of microseconds, not 50 us late */
    const double ms = o->quick ? 500 : 1000;
    cldp_model *m;
    cldp_model_create(784, &m);
    cldp_model_add_dense(m, 256, CLDP_ACT_RELU);
    cldp_model_add_dense(m, 128, CLDP_ACT_RELU);
    cldp_model_add_dense(m, 10, CLDP_ACT_NONE);
    cldp_trainer *t = make_trainer(m, "all", 64, "even");
    float *x = malloc(64 * 784 * sizeof(float));
    for (size_t i = 0; i < 64 * 784; i++) x[i] = frand() * 0.5f + 0.5f;
    size_t idx[64], nd = 0;
    cldp_device_select("all", idx, 64, &nd);
    cldp_device_info i0;
    cldp_device_get_info(idx[0], &i0);
    char one[32], other[32];
    snprintf(one, sizeof one, "%u:%u", i0.platform_index, i0.device_index);
    cldp_device_get_info(idx[nd > 1], &i0);
    snprintf(other, sizeof other, "%u:%u", i0.platform_index, i0.device_index);

    /* in process: the sweep on every device, dynamic batching */
    cldp_server *s2 = srv_make(t, "all", 64, CLDP_SCHEDULE_PULL);
    printf(" in process, %zu devices, max_batch 64:\n", nd);
    srv_result sweep[7];
    fprintf(js, "\"serve\":{\"sweep\":[");
    for (int k = 0, c = 1; c <= 64; k++, c *= 2) {
        char what[32];
        snprintf(what, sizeof what, "%d client%s", c, c > 1 ? "s" : "");
        sweep[k] = srv_closed(s2, 0, NULL, 0, x, c, ms);
        srv_print(what, &sweep[k]);
        fprintf(js, "%s{\"clients\":%d,\"rps\":%.1f,\"p50\":%.3f,\"p99\":%.3f}", k ? "," : "", c, sweep[k].rps, sweep[k].p50, sweep[k].p99);
    }
    fprintf(js, "],");

    /* ratios at 64 clients, rounds alternating so drift falls on both sides alike */
    cldp_server *s1 = srv_make(t, one, 64, CLDP_SCHEDULE_PULL), *sb = srv_make(t, "all", 1, CLDP_SCHEDULE_PULL);
    cldp_server *s1b = srv_make(t, other, 64, CLDP_SCHEDULE_PULL);
    double two = 0, single = 0, batch1 = 0, ceiling = 0;
    srv_result r;
    for (int round = 0; round < 2; round++) {
        two += srv_closed(s2, 0, NULL, 0, x, 64, ms / 2).rps;
        ceiling += srv_ceiling(s1, s1b, x, ms / 2);
        single += (r = srv_closed(s1, 0, NULL, 0, x, 64, ms / 2)).rps;
        if (round == 1) srv_print("1 device, 64 clients", &r);
        batch1 += (r = srv_closed(sb, 0, NULL, 0, x, 64, ms / 2)).rps;
        if (round == 1) srv_print("max_batch 1, 64 clients", &r);
    }
    cldp_server_destroy(s1);
    cldp_server_destroy(s1b);
    cldp_server_destroy(sb);
    printf("   2 devices / 1 device at 64 clients:      %.2fx (target >= 1.85x)\n", two / single);
    printf("   ceiling: two 1-device servers at once (32 clients each) / one: %.2fx; 2 devices / that ceiling: %.0f%%\n",
           ceiling / single, 100 * two / ceiling);
    printf("   dynamic batching / max_batch 1, 64 cl.:  %.2fx (target >= 3x)\n", two / batch1);

    /* open loop at half the saturated rate */
    double sat = two / 2, rate = sat / 2;
    srv_result po = srv_poisson(s2, x, rate, o->quick ? 1500 : 3000);
    char what[64];
    snprintf(what, sizeof what, "Poisson %.0f req/s (half sat.)", rate);
    srv_print(what, &po);
    printf("   p99 / p50 at half the saturated rate:    %.2fx (target <= 2x)\n", po.p50 > 0 ? po.p99 / po.p50 : 0);
    cldp_server_destroy(s2);

    /* one device 3x slower: pull vs an even round robin of batches */
    double pull = 0, rr = 0;
    cldp_test_control(CLDP_TEST_CONFIG, "CLDP_TEST_SLOWDOWN", "1:3");
    cldp_server *sp = srv_make(t, "all", 64, CLDP_SCHEDULE_PULL), *sr = srv_make(t, "all", 64, CLDP_SCHEDULE_ROUND_ROBIN);
    cldp_test_control(CLDP_TEST_CONFIG, "CLDP_TEST_SLOWDOWN", (const char *)NULL);
    for (int round = 0; round < 2; round++) {
        pull += (r = srv_closed(sp, 0, NULL, 0, x, 64, ms / 2)).rps;
        if (round == 1) srv_print("device 1 3x slower, pull", &r);
        rr += (r = srv_closed(sr, 0, NULL, 0, x, 64, ms / 2)).rps;
        if (round == 1) srv_print("device 1 3x slower, rr", &r);
    }
    cldp_server_destroy(sp);
    cldp_server_destroy(sr);
    printf("   pull / round robin, one device 3x slower: %.2fx (target >= 1.3x)\n", pull / rr);
    fprintf(js, "\"ceiling_ratio\":%.3f,\"devices_ratio\":%.3f,\"batching_ratio\":%.3f,\"p99_over_p50\":%.3f,\"pull_over_rr\":%.3f,", ceiling / single, two / single,
            two / batch1, po.p50 > 0 ? po.p99 / po.p50 : 0, pull / rr);

    /* HTTP: cldp-serve on the same parameters */
    char ckpt[64];
    snprintf(ckpt, sizeof ckpt, "/tmp/cldp-bench-serve-%d.ckpt", (int)getpid());
    int port = 0;
    pid_t pid = cldp_trainer_save_checkpoint(t, ckpt, NULL, 0) == CLDP_OK ? srv_spawn(ckpt, "all", &port) : 0;
    if (!pid || !port) {
        printf(" HTTP: n/a (cldp-serve is not next to cldp-bench: it needs libmicrohttpd-dev and libjansson-dev)\n");
    } else {
        size_t cap = 64 + 784 * 12, len = 0;
        char *body = malloc(cap), *req = malloc(cap + 256);
        len += (size_t)snprintf(body, cap, "{\"id\":\"b\",\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\",\"data\":[");
        for (int i = 0; i < 784; i++) len += (size_t)snprintf(body + len, cap - len, "%s%.4f", i ? "," : "", (double)x[i]);
        len += (size_t)snprintf(body + len, cap - len, "]}]}");
        size_t rl = (size_t)snprintf(req, cap + 256, "POST /v2/models/cldp/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                                     "application/json\r\nContent-Length: %zu\r\n\r\n%s", len, body);
        srv_closed(NULL, port, req, rl, x, 4, 300); /* warm */
        printf(" HTTP on loopback (cldp-serve, keep-alive connections, %zu-byte requests):\n", len);
        srv_result h[7];
        for (int k = 0, c = 1; c <= 64; k++, c *= 2) {
            snprintf(what, sizeof what, "%d client%s", c, c > 1 ? "s" : "");
            h[k] = srv_closed(NULL, port, req, rl, x, c, ms);
            srv_print(what, &h[k]);
        }
        double best_h = 0, best_i = 0;
        for (int k = 0; k < 7; k++) best_h = h[k].rps > best_h ? h[k].rps : best_h, best_i = sweep[k].rps > best_i ? sweep[k].rps : best_i;
        srv_result hp = srv_loop(NULL, port, req, rl, x, 32, o->quick ? 1500 : 3000, best_h_rate(h) / 2);
        snprintf(what, sizeof what, "Poisson %.0f req/s (half sat.)", best_h_rate(h) / 2);
        srv_print(what, &hp);
        printf("   HTTP p99 / p50 at half its saturated rate: %.2fx\n", hp.p50 > 0 ? hp.p99 / hp.p50 : 0);
        printf("   HTTP / in process, best of the sweeps:   %.2f (%.0f vs %.0f req/s)\n", best_h / best_i, best_h, best_i);
        printf("   HTTP / in process at 1 client (latency): p50 %.2f vs %.2f ms: %.2f ms per request is HTTP, JSON and "
               "a thread per connection\n", h[0].p50, sweep[0].p50, h[0].p50 - sweep[0].p50);
        fprintf(js, "\"http_over_inproc\":%.3f,\"http_rps\":%.1f,", best_h / best_i, best_h);
#ifdef CLDP_HAVE_SERVE_REQUEST
        /* the JSON of one request and its answer, timed alone: cldp-serve's own share */
        double tp = now_ms();
        float probs[10] = {0};
        for (int i = 0; i < 2000; i++) {
            serve_request q;
            char err[256];
            if (serve_request_parse(body, len, 784, 64, &q, err, sizeof err) == 0) {
                free(serve_answer_json("cldp", q.id, "probabilities", probs, 1, 10));
                serve_request_free(&q);
            }
        }
        double json_us = (now_ms() - tp) / 2000 * 1e3;
        printf("   where the time goes: parsing the request and writing the answer take %.0f us of CPU; at %.0f req/s\n"
               "   the 2 cores give %.0f us of CPU per request, shared by the client, libmicrohttpd's thread per\n"
               "   connection, the JSON and the devices' own compute\n", json_us, best_h, 2e6 / best_h);
#endif
        free(body);
        free(req);
    }
    if (pid) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
    remove(ckpt);
    fprintf(js, "\"inproc_rps_64\":%.1f},", sweep[6].rps);
    free(x);
    cldp_trainer_destroy(t);
    cldp_model_destroy(m);
}

#endif
