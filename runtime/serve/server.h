/* server.h — the inference server's state, shared by server.c (the request queue, dynamic
 * batching, requests, answers and statistics), server_life.c (options, creation, swaps,
 * shutdown) and server_dev.c (forward-only replicas, the device workers as one supervised run,
 * the watchdog, faults and slowdowns). Internal; the public API is include/cldp.h.
 *
 * Locking: one mutex (mu) guards the queue, every request's counters, the workers' batch state
 * and the statistics. A worker holds it to form a batch (copying the rows in) and to settle one
 * (copying the results out), never while a device computes. Callbacks run with no lock held. */
#ifndef CLDP_SERVER_H
#define CLDP_SERVER_H

#include "devices.h"
#include "model.h"
#include "replica.h"
#include "workers.h"

#include <pthread.h>
#include <stdatomic.h>

#define SRV_LAT_RING 8192 /* latencies kept for the percentiles */

/* One generation of parameters: immutable once published, freed by its last holder (the server
 * while current, each request pinned to it, each batch running on it). */
typedef struct srv_params {
    _Atomic size_t refs;
    uint64_t gen;
    float *p;                 /* (nparams) */
} srv_params;

/* A queued range of one request's rows. */
typedef struct srv_item {
    struct cldp_request *req;
    size_t begin, count;      /* rows [begin, begin + count) of the request */
    int retried;              /* already failed once on a device that left (drop policy) */
    int owned;                /* malloc'd (a retry); else the request's embedded item */
    struct srv_item *prev, *next;
} srv_item;

struct cldp_request {
    struct cldp_server *s;
    _Atomic int refs;         /* the caller's handle (if any) and the server's until answered */
    float *x;                 /* (rows, inputs) copied at submit */
    float *probs;             /* (rows, outputs) */
    size_t rows;
    double t_submit, deadline; /* ms (cldp_now_ms); deadline 0: none */
    double t_first;           /* when its first rows went into a batch (0: not yet) */
    cldp_request_callback cb;
    void *user;
    /* under the server's mutex */
    srv_params *pv;           /* the generation its rows run on, pinned by its first batch */
    size_t queued_items, inflight; /* ranges in the queue; parts in running batches */
    cldp_status st;           /* the first error of a part, timeout or cancel */
    int answered;             /* its answer is decided (exactly once) */
    size_t last_rank;         /* the device of its last part, for the per-device statistics */
    struct cldp_request *next_done; /* the list of answers to deliver outside the lock */
    srv_item item;
    /* the answer, for cldp_request_wait */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ready;                /* the answer is decided and readable (before the callback) */
    int done;                 /* the callback has returned: waiters may go */
    cldp_status answer;
};

typedef struct srv_part {
    struct cldp_request *req;
    size_t begin, count;
    int retried;
} srv_part;

typedef struct srv_stats {
    uint64_t ok, failed, timed_out, cancelled, rows, batches;
    double queue_ms, compute_ms;
    uint64_t hist[CLDP_SERVER_HIST];
    double lat[SRV_LAT_RING]; /* ms, a ring */
    uint64_t nlat;
} srv_stats;

typedef struct srv_worker {
    size_t rank;
    const cldp_dev *dev;
    char name[192];
    cldp_replica *rep;
    size_t max_rows;          /* rows of its batches (max_batch, or fewer where memory is short) */
    float *x;                 /* (max_rows, inputs) the batch being run */
    srv_part *parts;          /* (max_rows) */
    size_t nparts, rows;
    srv_params *pv;           /* the batch's generation */
    uint64_t dev_gen;         /* generation on the device (UINT64_MAX: none yet) */
    /* under mu */
    int busy;                 /* a batch is running */
    double batch_start;
    int claimed;              /* the watchdog answered its batch: discard the results, leave */
    int dead;                 /* left after a failure; takes no more batches */
    srv_stats st;
    /* test hooks */
    int fault_kind;           /* cldp_fault_kind armed for batch fault_at (CLDP_FAULT_NONE: none) */
    uint64_t fault_at, nbatch; /* batches counted since the fault was armed */
    double fault_ms;
    double slowdown;          /* 1: none */
} srv_worker;

struct cldp_server {
    cldp_model model;
    cldp_server_options o;
    size_t n;                 /* devices at creation */
    srv_worker *w;            /* (n) */
    const char *names[CLDP_MAX_RANKS];
    _Atomic size_t refs;      /* the handle's and the supervisor thread's */

    pthread_mutex_t mu;
    pthread_cond_t work_cv;   /* the queue changed, or stop */
    pthread_cond_t drain_cv;  /* a request was answered, or the supervisor finished */
    pthread_cond_t mon_cv;    /* wakes the watchdog to leave */
    int mon_stop;
    srv_item *head, *tail;
    size_t queued_rows;
    size_t outstanding;       /* accepted requests not yet answered */
    srv_params *cur;          /* the newest generation */
    int accepting, stop;      /* stop: workers leave once the queue is empty */
    size_t alive;             /* workers still serving */
    size_t rr_turn;           /* round-robin: the rank whose turn it is */
    uint64_t rejected;
    srv_stats total;

    cldp_pool *pool;
    pthread_t supervisor, monitor;
    int supervisor_done, monitor_started, supervisor_started, shut;
};

/* ---- server.c ---- */
/* Forms worker w's next batch from the queue head; 0 when the worker should leave (stop with an
 * empty queue, or it died). Called and returns with mu held; may wait on work_cv. */
int cldp_srv_take(struct cldp_server *s, srv_worker *w);
/* Settles w's batch with status st (copying results on success), under mu; answered requests are
 * pushed on *done (deliver with cldp_srv_deliver after unlocking). */
void cldp_srv_settle(struct cldp_server *s, srv_worker *w, cldp_status st, const float *probs, double compute_ms,
                     cldp_request **done);
/* A worker's batch fails without a result: its parts are retried once (drop) or failed. */
void cldp_srv_fail_parts(struct cldp_server *s, srv_worker *w, cldp_status st, int retry, cldp_request **done);
/* Drops expired and cancelled queued rows; when no worker is left, fails every queued request. */
void cldp_srv_sweep(struct cldp_server *s, double now, cldp_request **done);
/* Calls the callbacks of answered requests and wakes their waiters (no lock held). */
void cldp_srv_deliver(cldp_request *done);
void cldp_srv_params_unref(srv_params *pv);
/* pthread_cond_timedwait for at most `ms` from now (a spurious or early wake-up returns too). */
void cldp_srv_timed_wait(pthread_cond_t *cv, pthread_mutex_t *mu, double ms);
/* ---- server_life.c ---- */
/* Drops a reference to the server core; the last frees it (replicas, pool included). */
void cldp_srv_unref(struct cldp_server *s);

/* ---- server_dev.c ---- */
/* Plans, builds and warms a forward-only replica on every device (one after another), then
 * starts the serving run and the watchdog. s->w, s->n and the parameters are set. */
cldp_status cldp_srv_start(struct cldp_server *s);
/* Stops the workers (the queue is empty) and waits, bounded, for the serving run to end. */
void cldp_srv_stop(struct cldp_server *s);
/* Frees the workers' replicas and buffers (no worker may be inside them). */
void cldp_srv_free_workers(struct cldp_server *s);
/* CLDP_TEST_SERVER_FAULT: arms "RANK:BATCH:KIND[:MS],..." (cldp.h) on a running server. */
cldp_status cldp_srv_arm_faults(struct cldp_server *s, const char *spec);


#endif
