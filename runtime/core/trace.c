/* trace.c — the timeline recorder (trace.h) and the public cldp_trace_* calls: one recording at a
 * time, its events in chunks under one lock (bounded), the lanes, each thread's lane and step,
 * and the Chrome trace-event JSON file written atomically when the recording stops. */
#define _POSIX_C_SOURCE 200809L
#include "trace.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_EVENTS 8192
#define MAX_CHUNKS 256 /* 2^21 events at most */
#define MAX_LANES (CLDP_MAX_RANKS + 1)

typedef struct rec_event {
    cldp_trace_event e;
    double end_us;      /* e.start_us + e.dur_us as recorded: a span and its last command end on
                           the same value, so the file keeps them nested */
    int track;
} rec_event;

_Atomic int cldp_trace_active_;
static _Atomic unsigned live_session; /* T.session while recording, else 0 */
int cldp_trace_profile_queues = 1;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    unsigned session;            /* counts recordings; 0: never started */
    int recording;
    double t0_us, t_end_us;      /* host clock at start, and at stop */
    char *path;                  /* where stop writes (NULL: memory only) */
    rec_event *chunk[MAX_CHUNKS];
    size_t n, dropped;
    size_t nlanes;               /* lane 0 is the host */
    char lane_name[MAX_LANES][160];
    unsigned lane_key[MAX_LANES][2]; /* platform, device */
    double clock_window_us[MAX_LANES]; /* the widest calibration window of the lane's devices */
} T;

static _Thread_local int tl_lane;
static _Thread_local uint64_t tl_step;

double cldp_trace_clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

/* ---- recording ------------------------------------------------------------------------- */

/* Appends one event (mu held). */
static void append(const char *name, const char *cat, int lane, int track, int layer, uint64_t step, double t0,
                   double t1)
{
    if (!T.recording) return;
    if (t1 < T.t0_us) return; /* wholly before the recording */
    if (t0 < T.t0_us) t0 = T.t0_us;
    if (t1 < t0) t1 = t0;
    size_t c = T.n / CHUNK_EVENTS;
    if (c >= MAX_CHUNKS) {
        T.dropped++;
        return;
    }
    if (!T.chunk[c] && !(T.chunk[c] = malloc(CHUNK_EVENTS * sizeof(rec_event)))) {
        T.dropped++;
        return;
    }
    rec_event *r = &T.chunk[c][T.n % CHUNK_EVENTS];
    r->e = (cldp_trace_event){name, cat, lane, layer, step, t0 - T.t0_us, t1 - t0};
    r->end_us = t1 - T.t0_us;
    r->track = track;
    T.n++;
}

void cldp_trace_add(const char *name, const char *cat, int lane, int track, int layer, uint64_t step, double t0_us,
                    double t1_us)
{
    if (!CLDP_TRACING()) return;
    pthread_mutex_lock(&mu);
    append(name, cat, lane, track, layer, step, t0_us, t1_us);
    pthread_mutex_unlock(&mu);
}

void cldp_trace_set_thread(int lane, uint64_t step)
{
    tl_lane = lane;
    tl_step = step;
}

void cldp_trace_here(const char *name, const char *cat, int layer, double t0_us, double t1_us)
{
    cldp_trace_add(name, cat, tl_lane, tl_lane ? CLDP_TRACK_THREAD : CLDP_TRACK_QUEUE, layer, tl_step, t0_us, t1_us);
}

uint64_t cldp_trace_thread_step(void) { return tl_step; }

void cldp_trace_note_clock(int lane, double window_us)
{
    pthread_mutex_lock(&mu);
    if (lane > 0 && lane < MAX_LANES && window_us > T.clock_window_us[lane]) T.clock_window_us[lane] = window_us;
    pthread_mutex_unlock(&mu);
}

int cldp_trace_lane_for(const cldp_device_info *info)
{
    if (!CLDP_TRACING()) return 0;
    int lane = 0;
    pthread_mutex_lock(&mu);
    for (size_t i = 1; i < T.nlanes; i++)
        if (T.lane_key[i][0] == info->platform_index && T.lane_key[i][1] == info->device_index) lane = (int)i;
    if (!lane && T.nlanes < MAX_LANES) {
        lane = (int)T.nlanes++;
        T.lane_key[lane][0] = info->platform_index;
        T.lane_key[lane][1] = info->device_index;
        T.clock_window_us[lane] = 0;
        snprintf(T.lane_name[lane], sizeof T.lane_name[lane], "%u:%u %s", info->platform_index, info->device_index,
                 info->name);
    }
    pthread_mutex_unlock(&mu);
    return lane;
}

/* ---- the public calls ------------------------------------------------------------------ */

static void clear_events(void)
{
    for (size_t c = 0; c < MAX_CHUNKS; c++) {
        free(T.chunk[c]);
        T.chunk[c] = NULL;
    }
    T.n = T.dropped = 0;
}

/* The temporary file next to `path` that stop writes and renames. */
static void temp_name(const char *path, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s.tmp.%ld", path, (long)getpid());
}

cldp_status cldp_trace_start(const char *path)
{
    char *copy = NULL;
    if (path) {
        REQUIRE(*path, "cldp_trace_start: the path is empty; give a file name, or NULL to record in memory only");
        size_t len = strlen(path);
        REQUIRE(len < 4000, "cldp_trace_start: the path is %zu characters long; at most 4000", len);
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
            return cldp_fail(CLDP_ERR_IO, "cldp_trace_start: %s is a directory; give the trace file's name", path);
        char tmp[4096 + 32];
        temp_name(path, tmp, sizeof tmp);
        FILE *f = fopen(tmp, "w"); /* the file must be writable now, not only when the run ends */
        if (!f)
            return cldp_fail(CLDP_ERR_IO, "cldp_trace_start: cannot write the trace file %s (%s); choose a path in a "
                                          "writable directory", path, strerror(errno));
        fclose(f);
        remove(tmp);
        if (!(copy = cldp_malloc(len + 1, "trace path"))) return CLDP_ERR_HOST_MEMORY;
        memcpy(copy, path, len + 1);
    }
    pthread_mutex_lock(&mu);
    clear_events();
    free(T.path);
    T.path = copy;
    T.session++;
    T.nlanes = 1;
    snprintf(T.lane_name[0], sizeof T.lane_name[0], "host");
    T.t0_us = cldp_trace_clock_us();
    T.t_end_us = 0;
    T.recording = 1;
    atomic_store(&live_session, T.session);
    atomic_store(&cldp_trace_active_, 1);
    pthread_mutex_unlock(&mu);
    return CLDP_OK;
}

unsigned cldp_trace_session(void) { return atomic_load_explicit(&live_session, memory_order_acquire); }

static cldp_status write_json(const char *path);

cldp_status cldp_trace_stop(void)
{
    pthread_mutex_lock(&mu);
    if (!T.recording) {
        pthread_mutex_unlock(&mu);
        return cldp_fail(CLDP_ERR_STATE, "cldp_trace_stop: no recording in progress; call cldp_trace_start first");
    }
    atomic_store(&cldp_trace_active_, 0);
    atomic_store(&live_session, 0);
    T.recording = 0;
    T.t_end_us = cldp_trace_clock_us();
    cldp_status st = T.path ? write_json(T.path) : CLDP_OK;
    if (T.dropped) /* the run goes on, the timeline is cut short: say so where people look */
        fprintf(stderr, "cldp: the timeline reached its bound of %d events; %zu later event(s) were dropped "
                        "(trace fewer steps: start the recording later or stop it sooner)\n",
                MAX_CHUNKS * CHUNK_EVENTS, T.dropped);
    pthread_mutex_unlock(&mu);
    return st;
}

size_t cldp_trace_event_count(void)
{
    pthread_mutex_lock(&mu);
    size_t n = T.n;
    pthread_mutex_unlock(&mu);
    return n;
}

cldp_status cldp_trace_events(size_t first, cldp_trace_event *events, size_t capacity, size_t *count)
{
    REQUIRE(count, "cldp_trace_events: count is NULL");
    *count = 0;
    REQUIRE(events || capacity == 0, "cldp_trace_events: events is NULL with a capacity of %zu", capacity);
    pthread_mutex_lock(&mu);
    size_t k = 0;
    for (size_t i = first; i < T.n && k < capacity; i++, k++) events[k] = T.chunk[i / CHUNK_EVENTS][i % CHUNK_EVENTS].e;
    pthread_mutex_unlock(&mu);
    *count = k;
    return CLDP_OK;
}

cldp_status cldp_trace_lane_name(int lane, char *buf, size_t capacity)
{
    REQUIRE(buf && capacity > 0, "cldp_trace_lane_name: buf is NULL or capacity is 0");
    buf[0] = 0;
    pthread_mutex_lock(&mu);
    size_t nlanes = T.session ? T.nlanes : 1;
    int ok = lane >= 0 && (size_t)lane < nlanes;
    if (ok) snprintf(buf, capacity, "%s", lane == 0 ? "host" : T.lane_name[lane]);
    pthread_mutex_unlock(&mu);
    if (!ok)
        return cldp_fail(CLDP_ERR_INVALID_ARGUMENT, "cldp_trace_lane_name: lane %d does not exist (lanes 0..%zu)", lane,
                         nlanes - 1);
    return CLDP_OK;
}

/* ---- the Chrome trace-event file ------------------------------------------------------- */

static void put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

/* The JSON thread id of a lane's track: the lane itself for its queue (the host's thread on lane
 * 0), 1000 + lane for the thread that drives the device, 2000 + lane for its transfer queue. */
static int track_tid(int lane, int track)
{
    return track == CLDP_TRACK_THREAD ? 1000 + lane : track == CLDP_TRACK_XFER ? 2000 + lane : lane;
}

static void put_thread_name(FILE *f, int tid, const char *name, const char *suffix, int sort)
{
    fprintf(f, ",\n{\"ph\":\"M\",\"pid\":1,\"tid\":%d,\"name\":\"thread_name\",\"args\":{\"name\":", tid);
    char buf[256];
    snprintf(buf, sizeof buf, "%s%s", name, suffix);
    put_string(f, buf);
    fprintf(f, "}},\n{\"ph\":\"M\",\"pid\":1,\"tid\":%d,\"name\":\"thread_sort_index\",\"args\":{\"sort_index\":%d}}",
            tid, sort);
}

static const rec_event *at(size_t i) { return &T.chunk[i / CHUNK_EVENTS][i % CHUNK_EVENTS]; }

/* An event's times in whole nanoseconds, as the file writes them (rounding keeps their order). */
static long long start_ns(const rec_event *r) { return llround(r->e.start_us * 1e3); }
static long long end_ns(const rec_event *r) { return llround(r->end_us * 1e3); }

/* The file's order: by start, a longer event before a shorter one starting with it (a span before
 * its first command, as viewers that nest slices by order want), then as recorded. */
static int by_start(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    long long si = start_ns(at(i)), sj = start_ns(at(j)), ei = end_ns(at(i)), ej = end_ns(at(j));
    if (si != sj) return si < sj ? -1 : 1;
    if (ei != ej) return ei > ej ? -1 : 1;
    return i < j ? -1 : i > j;
}

static int write_events(FILE *f)
{
    fprintf(f, "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"producer\":\"cldp %u\",\"events\":%zu,\"dropped\":%zu,"
               "\"traced_us\":%.3f,\"note\":",
            cldp_version_number(), T.n, T.dropped, T.t_end_us - T.t0_us);
    put_string(f, T.dropped ? "the recording reached its bound: later events were dropped" : "complete");
    fputs(",\"clock_window_us\":{", f); /* each device clock's calibration: its error is at most half */
    for (size_t l = 1; l < T.nlanes; l++) fprintf(f, "%s\"%zu\":%.3f", l > 1 ? "," : "", l, T.clock_window_us[l]);
    fprintf(f, "}},\n\"traceEvents\":[\n{\"ph\":\"M\",\"pid\":1,\"name\":\"process_name\",\"args\":{\"name\":\"cldp\"}}");
    int used[MAX_LANES][3] = {{0}};
    for (size_t i = 0; i < T.n; i++)
        if (at(i)->track < 3) used[at(i)->e.lane][at(i)->track] = 1;
    put_thread_name(f, 0, "host", "", 0);
    for (size_t l = 1; l < T.nlanes; l++) {
        put_thread_name(f, (int)l, T.lane_name[l], "", (int)(3 * l));
        if (used[l][CLDP_TRACK_THREAD]) put_thread_name(f, 1000 + (int)l, T.lane_name[l], " (worker thread)", (int)(3 * l + 1));
        if (used[l][CLDP_TRACK_XFER]) put_thread_name(f, 2000 + (int)l, T.lane_name[l], " (transfer queue)", (int)(3 * l + 2));
    }
    size_t *order = malloc((T.n ? T.n : 1) * sizeof *order); /* without memory: as recorded */
    for (size_t i = 0; order && i < T.n; i++) order[i] = i;
    if (order) qsort(order, T.n, sizeof *order, by_start);
    for (size_t k = 0; k < T.n; k++) {
        size_t i = order ? order[k] : k;
        const rec_event *r = at(i);
        const cldp_trace_event *e = &r->e;
        long long s = start_ns(r), z = end_ns(r);
        int tid = track_tid(e->lane, r->track);
        if (r->track == CLDP_TRACK_ASYNC) { /* overlapping waits: an async slice each */
            for (int end = 0; end < 2; end++) {
                fprintf(f, ",\n{\"ph\":\"%c\",\"id\":%zu,\"name\":", end ? 'e' : 'b', i);
                put_string(f, e->name);
                fputs(",\"cat\":", f);
                put_string(f, e->category);
                long long t = end ? z : s;
                fprintf(f, ",\"ts\":%lld.%03lld,\"pid\":1,\"tid\":%d", t / 1000, t % 1000, e->lane);
                if (!end) fprintf(f, ",\"args\":{\"lane\":%d,\"layer\":%d,\"step\":%llu}", e->lane, e->layer, (unsigned long long)e->step);
                fputc('}', f);
            }
            continue;
        }
        fputs(",\n{\"ph\":\"X\",\"name\":", f);
        put_string(f, e->name);
        fputs(",\"cat\":", f);
        put_string(f, e->category);
        fprintf(f, ",\"ts\":%lld.%03lld,\"dur\":%lld.%03lld,\"pid\":1,\"tid\":%d,\"args\":{\"lane\":%d,\"layer\":%d,"
                   "\"step\":%llu}}",
                s / 1000, s % 1000, (z - s) / 1000, (z - s) % 1000, tid, e->lane, e->layer, (unsigned long long)e->step);
    }
    free(order);
    fputs("\n]}\n", f);
    return ferror(f) ? -1 : 0;
}

/* Writes the recording to a temporary file beside `path`, flushed and synced, then renames it
 * over `path` (mu held). */
static cldp_status write_json(const char *path)
{
    char tmp[4096 + 32];
    temp_name(path, tmp, sizeof tmp);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return cldp_fail(CLDP_ERR_IO, "cldp_trace_stop: cannot write the trace file %s (%s); the events stay readable "
                                      "with cldp_trace_events", path, strerror(errno));
    int bad = write_events(f);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) bad = -1;
    int err = errno;
    if (fclose(f) != 0) bad = -1;
    if (!bad && rename(tmp, path) != 0) bad = -1, err = errno;
    if (bad) {
        remove(tmp);
        return cldp_fail(CLDP_ERR_IO, "cldp_trace_stop: writing the trace file %s failed (%s); the events stay readable "
                                      "with cldp_trace_events", path, strerror(err));
    }
    return CLDP_OK;
}
