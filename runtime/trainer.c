/* trainer.c — data-parallel training: shard the batch over the devices, forward and backward on
 * every replica at once, reduce the gradients on the host in a fixed tree, update the master
 * parameters with the optimizer and broadcast them. Also evaluation and prediction. */
#define _POSIX_C_SOURCE 200809L
#include "trainer.h"
#include "collective.h"
#include "optim.h"

#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- sharding -------------------------------------------------------------------------- */

/* Shards of `total` samples for the devices present, in rank order, sized by the split's
 * weights (balance.c: largest remainder, so they sum to total exactly). */
static void split_batch(cldp_trainer *t, size_t total)
{
    double w[CLDP_MAX_DEVICES], sum = 0;
    cldp_balancer_weights(t->bal, t->origin, t->n, w);
    for (size_t r = 0; r < t->n; r++) sum += w[r];
    if (!(sum > 0)) /* only zero-weight devices are left (the others were dropped): even */
        for (size_t r = 0; r < t->n; r++) w[r] = 1.0;
    cldp_split_shards(w, t->n, total, t->shard_len);
    size_t o = 0;
    for (size_t r = 0; r < t->n; r++) {
        t->shard_off[r] = o;
        o += t->shard_len[r];
    }
}

/* Parses the split, the memory cap and the test slowdown, and sizes each device's replica
 * (rows[r]) by its memory, before anything is built: a device the model cannot fit is refused
 * here, never half-way through a step. */
static cldp_status plan_sharding(cldp_trainer *t, const cldp_trainer_options *opts, size_t *rows)
{
    double w[CLDP_MAX_DEVICES];
    int automatic = 1;
    TRY(cldp_split_parse(opts->split ? opts->split : getenv("CLDP_SPLIT"), t->n, w, &automatic));
    int balance = opts->balance;
    if (balance < 0) { /* auto: only where the devices differ; identical ones stay deterministic */
        balance = 0;
        for (size_t r = 1; r < t->n; r++)
            if (strcmp(t->devs[r]->info.name, t->devs[0]->info.name) ||
                strcmp(t->devs[r]->info.driver_version, t->devs[0]->info.driver_version))
                balance = 1;
        if (getenv("CLDP_TEST_SLOWDOWN")) balance = 1; /* the stand-in for a slower device */
    }
    cldp_balancer_init(t->bal, t->n, w, automatic && balance);
    TRY(cldp_slowdown_parse(getenv("CLDP_TEST_SLOWDOWN"), t->n, t->slowdown));
    uint64_t cap = opts->device_memory_cap;
    const char *env = getenv("CLDP_DEVICE_MEMORY_CAP");
    if (!cap && env && *env) TRY(cldp_parse_bytes(env, "CLDP_DEVICE_MEMORY_CAP", &cap));
    for (size_t r = 0; r < t->n; r++) {
        const cldp_device_info *in = &t->devs[r]->info;
        char name[192], others[256] = "";
        snprintf(name, sizeof name, "device %u:%u (%s)", in->platform_index, in->device_index, in->name);
        for (size_t q = 0, used = 0; q < t->n; q++) {
            if (q == r) continue;
            int len = snprintf(others + used, sizeof others - used, "%s%u:%u", used ? "," : "",
                               t->devs[q]->info.platform_index, t->devs[q]->info.device_index);
            if (len < 0 || used + (size_t)len >= sizeof others) break;
            used += (size_t)len;
        }
        TRY(cldp_mem_plan(&t->model, opts->batch, name, in->global_mem_bytes, in->max_alloc_bytes, cap, others, &rows[r]));
    }
    return CLDP_OK;
}

/* Micro-batch k of `parts` over a shard of len rows: sizes differ by at most one. */
static void micro_batch(size_t len, size_t parts, size_t k, size_t *begin, size_t *rows)
{
    *begin = k * (len / parts) + (k < len % parts ? k : len % parts);
    *rows = len / parts + (k < len % parts);
}

/* Test-only (CLDP_TEST_SLOWDOWN): the worker sleeps (factor - 1) times the compute it just
 * measured, so its part takes `factor` times as long, as on a slower GPU (see balance.h). */
static void test_slowdown(double factor, double since_ms)
{
    if (factor <= 1.0) return;
    double ms = (factor - 1.0) * (cldp_now_ms() - since_ms);
    struct timespec ts = {(time_t)(ms / 1000), (long)(fmod(ms, 1000.0) * 1e6)};
    while (nanosleep(&ts, &ts) != 0) {}
}

/* ---- runs ------------------------------------------------------------------------------ */

/* One run of a job on the pool: what its workers read, copied when the run is made and never
 * written by the caller while a worker may still hold it, and what each worker reports. A worker
 * abandoned after a watchdog timeout keeps its run (hand_over), so when it comes back it reads
 * and writes that run only; the trainer's shared state (the next parameters) it reaches only
 * between enter() and leave(), which let it in only while the run is current. */
typedef struct run {
    cldp_trainer *t;
    job_kind job;
    unsigned long epoch;          /* the trainer's epoch when the run was made */
    const float *x;
    const int32_t *labels;
    float *probs;
    float scale;                  /* 1/batch */
    double bc1, bc2;              /* Adam bias corrections of this step */
    const float *params;          /* JOB_BROADCAST: what to write */
    size_t n;
    cldp_replica *reps[CLDP_MAX_DEVICES];
    size_t shard_off[CLDP_MAX_DEVICES], shard_len[CLDP_MAX_DEVICES];
    double slowdown[CLDP_MAX_DEVICES];
    int inject_nan[CLDP_MAX_DEVICES];
    /* reported, one slot per worker */
    double loss_sum[CLDP_MAX_DEVICES], train_end[CLDP_MAX_DEVICES], early_ms[CLDP_MAX_DEVICES];
    double reduce_ms[CLDP_MAX_DEVICES], broadcast_ms[CLDP_MAX_DEVICES];
    size_t correct[CLDP_MAX_DEVICES];
    int nonfinite[CLDP_MAX_DEVICES]; /* the device's delivered gradient holds NaN/Inf */
    /* the reduction: where device r's layer-l gradient is on the host, [r * nlayers + l] */
    const float **lgrad;
    _Atomic int *delivered;
    _Atomic int *claimed, *done;  /* (npieces) */
    int *bad;                     /* (npieces) the piece's sum held NaN or Inf (valid once done) */
    size_t cells;                 /* lgrad and delivered hold this many */
    /* Hand-over of a worker the caller gave up on after a watchdog timeout (see hand_over):
     * whichever of the two marks state[r] second does the clean-up. */
    _Atomic int state[CLDP_MAX_DEVICES]; /* RUN_WORKING, RUN_FINISHED or RUN_ABANDONED */
    int owns_replica[CLDP_MAX_DEVICES]; /* the device was dropped: its replica is the worker's */
    _Atomic size_t holders;       /* abandoned workers still using this run */
} run;

enum { RUN_WORKING, RUN_FINISHED, RUN_ABANDONED };

static void trainer_release(cldp_trainer *t);

static void run_destroy(run *j)
{
    if (!j) return;
    free(j->lgrad);
    free((void *)j->delivered);
    free((void *)j->claimed);
    free((void *)j->done);
    free(j->bad);
    free(j);
}

/* A run for the devices now present: the trainer's spare one (kept from the last run, so steps
 * allocate nothing), or a new one. */
static run *run_new(cldp_trainer *t, job_kind kind)
{
    size_t cells = t->n * t->model.nlayers, np = t->npieces;
    run *j = t->spare;
    t->spare = NULL;
    if (j && j->cells >= cells) {
        const float **lgrad = j->lgrad;
        _Atomic int *delivered = j->delivered, *claimed = j->claimed, *done = j->done;
        int *bad = j->bad;
        size_t have = j->cells;
        memset(j, 0, sizeof *j);
        j->lgrad = lgrad, j->delivered = delivered, j->claimed = claimed, j->done = done, j->bad = bad;
        j->cells = have;
        memset(j->lgrad, 0, have * sizeof *j->lgrad);
        memset((void *)j->delivered, 0, have * sizeof *j->delivered);
        memset((void *)j->claimed, 0, np * sizeof *j->claimed);
        memset((void *)j->done, 0, np * sizeof *j->done);
        memset(j->bad, 0, np * sizeof *j->bad);
    } else {
        run_destroy(j);
        j = cldp_calloc(1, sizeof *j, "job");
        if (!j) return NULL;
        j->cells = cells;
        j->lgrad = cldp_calloc(cells, sizeof *j->lgrad, "job");
        j->delivered = cldp_calloc(cells, sizeof *j->delivered, "job");
        j->claimed = cldp_calloc(np, sizeof *j->claimed, "job");
        j->done = cldp_calloc(np, sizeof *j->done, "job");
        j->bad = cldp_calloc(np, sizeof *j->bad, "job");
        if (!j->lgrad || !j->delivered || !j->claimed || !j->done || !j->bad) {
            run_destroy(j);
            return NULL;
        }
    }
    j->t = t;
    j->job = kind;
    j->epoch = atomic_load(&t->epoch);
    j->n = t->n;
    for (size_t r = 0; r < t->n; r++) {
        j->reps[r] = t->reps[r];
        j->slowdown[r] = t->slowdown[t->origin[r]];
        j->inject_nan[r] = t->inject_nan[r];
        t->inject_nan[r] = 0; /* a test fault fires once */
    }
    j->params = t->master;
    return j;
}

/* Done with a run: it becomes the trainer's spare (a run a worker was abandoned in goes through
 * hand_over instead). */
static void run_free(run *j)
{
    if (!j) return;
    cldp_trainer *t = j->t;
    if (!t->spare) t->spare = j;
    else run_destroy(j);
}

/* A section that writes the trainer's shared state. Returns 0, entering nothing, when the run
 * was abandoned. Whoever abandons a run bumps the epoch and then waits for the sections in
 * flight to end (quiesce), so an abandoned worker that wakes up later writes nothing the trainer
 * still uses. Sections are short and never wait on a device. */
static int enter(const run *j)
{
    atomic_fetch_add(&j->t->inflight, 1);
    if (atomic_load(&j->t->epoch) == j->epoch) return 1;
    atomic_fetch_sub(&j->t->inflight, 1);
    return 0;
}
static void leave(const run *j) { atomic_fetch_sub(&j->t->inflight, 1); }

static void abandon_runs(cldp_trainer *t)
{
    atomic_fetch_add(&t->epoch, 1);
    while (atomic_load(&t->inflight)) sched_yield();
}

/* ---- worker jobs ----------------------------------------------------------------------- */

static int all_finite(const float *g, size_t n)
{
    float acc = 0.0f; /* NaN/Inf survive multiplication by 0, finite values give 0 */
    for (size_t i = 0; i < n; i++) acc += g[i] * 0.0f;
    return acc == 0.0f;
}

static size_t layer_floats(const cldp_layer_desc *L) { return L->in * L->out + L->out; }

#define SUM_BLOCK CLDP_UPDATE_BLOCK /* floats per block of the fused pass: every source's block stays in L1 */
#define CLDP_PIECE_FLOATS 32768 /* a piece: 128 KiB of parameters, small enough to share out */

/* Cuts the model into pieces, layers top first (see trainer.h). */
static cldp_status make_pieces(cldp_trainer *t)
{
    size_t count = 0;
    for (size_t l = 0; l < t->model.nlayers; l++)
        count += (layer_floats(&t->model.layers[l]) + CLDP_PIECE_FLOATS - 1) / CLDP_PIECE_FLOATS;
    t->pieces = cldp_calloc(count, sizeof *t->pieces, "reduction pieces");
    if (!t->pieces) return CLDP_ERR_HOST_MEMORY;
    for (size_t l = t->model.nlayers; l-- > 0;) {
        size_t len = layer_floats(&t->model.layers[l]);
        for (size_t b = 0; b < len; b += CLDP_PIECE_FLOATS)
            t->pieces[t->npieces++] = (struct piece){l, b, len - b < CLDP_PIECE_FLOATS ? len : b + CLDP_PIECE_FLOATS};
    }
    return CLDP_OK;
}

/* Piece p: sums its range over every device's delivered gradient in the fixed tree
 * (cldp_tree_sum: the bits of cldp_tree_reduce, the sources only read) and applies the
 * optimizer to it, reading the parameters and moments and writing the next ones. Each byte is
 * read once. Returns 0 when a sum is NaN or Inf. */
static int do_piece(const run *j, const struct piece *pc)
{
    const cldp_trainer *t = j->t;
    const cldp_layer_desc *L = &t->model.layers[pc->layer];
    float scratch[(CLDP_MAX_DEVICES + 1) / 2 * SUM_BLOCK];
    const float *src[CLDP_MAX_DEVICES];
    const cldp_update u = {t->opts.optimizer == CLDP_OPT_SGD, t->opts.learning_rate, t->opts.weight_decay,
                           t->opts.momentum, t->opts.beta1, t->opts.beta2, t->opts.epsilon,
                           (float)j->bc1, (float)j->bc2};
    int bad = 0;
    for (size_t blk = pc->begin; blk < pc->end; blk += SUM_BLOCK) {
        size_t len = pc->end - blk < SUM_BLOCK ? pc->end - blk : SUM_BLOCK, at = L->w_off + blk;
        for (size_t d = 0; d < j->n; d++) src[d] = j->lgrad[d * t->model.nlayers + pc->layer] + blk;
        const float *g = cldp_tree_sum(src, j->n, len, scratch);
        bad |= cldp_update_block(&u, g, t->master + at, t->opt_m + at, t->opt_v + at, t->next_master + at,
                                 t->next_m + at, t->next_v + at, len);
    }
    cldp_update_fence(); /* before the piece is announced done */
    return !bad;
}

/* Claims and does the run's pieces nobody has claimed yet, in order. With `all` false (inside
 * the train job) only pieces of layers every device has delivered, and it never waits: a worker
 * never blocks on another device there, so a failed or stuck device holds no one else (the
 * watchdog then names only the one that is stuck). */
static void do_pieces(run *j, int all)
{
    const cldp_trainer *t = j->t;
    for (size_t p = 0; p < t->npieces; p++) {
        if (atomic_load(&j->claimed[p])) continue;
        size_t l = t->pieces[p].layer;
        int ready = 1;
        for (size_t d = 0; d < j->n && ready && !all; d++) ready = atomic_load(&j->delivered[d * t->model.nlayers + l]);
        if (!ready) continue;
        int free_piece = 0;
        if (!atomic_compare_exchange_strong(&j->claimed[p], &free_piece, 1)) continue; /* another worker's */
        if (!enter(j)) return; /* abandoned: touch nothing more */
        j->bad[p] = !do_piece(j, &t->pieces[p]);
        leave(j);
        atomic_store(&j->done[p], 1);
    }
}

static cldp_status job_train(run *j, size_t r)
{
    const cldp_trainer *t = j->t;
    const size_t nl = t->model.nlayers;
    cldp_replica *rep = j->reps[r];
    size_t len = j->shard_len[r], off = j->shard_off[r], in = t->model.inputs;
    double loss = 0, t0 = cldp_now_ms();
    size_t correct = 0, last_rows = 0;
    TRY(cldp_replica_release_grads(rep)); /* left mapped by a step that failed half-way */
    if (len == 0) {
        TRY(cldp_replica_deliver_zero(rep));
    } else {
        /* A shard larger than the replica's buffers (sized by the device's memory) runs as
         * near-equal micro-batches whose gradients accumulate on the device; each is scaled by
         * 1/batch like the whole shard, so the sum is the undivided shard's to rounding. The
         * last one delivers the gradient to the host, layer by layer where the replica streams. */
        size_t parts = (len + rep->max_rows - 1) / rep->max_rows;
        for (size_t k = 0; k < parts; k++) {
            size_t b, rows;
            micro_batch(len, parts, k, &b, &rows);
            if (j->epoch != atomic_load(&t->epoch)) return CLDP_OK; /* abandoned: stop early */
            TRY(cldp_replica_load(rep, j->x + (off + b) * in, j->labels + off + b, rows));
            TRY(cldp_replica_forward(rep, rows));
            if (k + 1 < parts) {
                TRY(cldp_replica_backward(rep, rows, j->scale, k > 0));
                TRY(cldp_replica_read_loss(rep, rows, &loss, &correct));
            } else {
                TRY(cldp_replica_backward_deliver(rep, rows, j->scale, k > 0));
                last_rows = rows;
            }
        }
    }
    /* Collect the layers as they land, top first (backward's order). While this device still
     * computes lower layers, this worker sums the pieces every device has delivered already; once
     * its device is done it leaves the rest to the update job, where all workers share it. */
    for (size_t l = nl; l-- > 0;) {
        const float *g;
        TRY(cldp_replica_layer_grads(rep, l, &g));
        if (j->inject_nan[r] && l + 1 == nl) ((float *)g)[0] = NAN; /* host memory handed out for writing */
        j->lgrad[r * nl + l] = g;
        atomic_store(&j->delivered[r * nl + l], 1);
        if (t->early && rep->streamed && l > 0) {
            double s0 = cldp_now_ms();
            do_pieces(j, 0);
            j->early_ms[r] += cldp_now_ms() - s0;
        }
    }
    if (last_rows) TRY(cldp_replica_read_loss(rep, last_rows, &loss, &correct));
    if (len) test_slowdown(j->slowdown[r], t0);
    j->loss_sum[r] = loss;
    j->correct[r] = correct;
    j->train_end[r] = cldp_now_ms();
    return CLDP_OK;
}

/* The rest of the reduction, then the broadcast: the workers share the pieces not done during
 * the train job (every device has delivered now); then each writes every piece to its own device
 * as soon as the piece is done, overlapped with the others' last pieces. The waits are short:
 * every worker is inside this same job, and a piece cannot fail. */
static cldp_status job_update(run *j, size_t r)
{
    const cldp_trainer *t = j->t;
    cldp_replica *rep = j->reps[r];
    double t0 = cldp_now_ms();
    do_pieces(j, 1);
    double t1 = cldp_now_ms();
    j->reduce_ms[r] = j->early_ms[r] + (t1 - t0);
    int nonfinite = 0;
    for (size_t p = 0; p < t->npieces; p++) {
        const struct piece *pc = &t->pieces[p];
        size_t w = t->model.layers[pc->layer].w_off;
        while (!atomic_load(&j->done[p])) sched_yield();
        nonfinite |= j->bad[p];
        TRY(cldp_replica_write_params_async(rep, t->next_master, w + pc->begin, w + pc->end, 0));
    }
    /* Every piece is done, so no worker reads this device's gradient any more. Where some sum
     * was not finite, say whether this device's gradient is why, before letting it go. */
    for (size_t l = 0; nonfinite && l < t->model.nlayers && !j->nonfinite[r]; l++)
        j->nonfinite[r] = !all_finite(j->lgrad[r * t->model.nlayers + l], layer_floats(&t->model.layers[l]));
    TRY(cldp_replica_release_grads(rep));
    TRY(cldp_replica_finish(rep));
    j->broadcast_ms[r] = cldp_now_ms() - t1;
    return CLDP_OK;
}

static cldp_status job_infer(run *j, size_t r)
{
    const cldp_trainer *t = j->t;
    cldp_replica *rep = j->reps[r];
    size_t len = j->shard_len[r], off = j->shard_off[r], in = t->model.inputs, outputs = cldp_model_outputs(&t->model);
    double loss = 0;
    size_t correct = 0;
    for (size_t done = 0; done < len;) {
        size_t rows = len - done < rep->max_rows ? len - done : rep->max_rows, at = off + done;
        TRY(cldp_replica_load(rep, j->x + at * in, j->job == JOB_EVAL ? j->labels + at : NULL, rows));
        TRY(cldp_replica_forward(rep, rows));
        if (j->job == JOB_PREDICT) {
            TRY(cldp_replica_probs(rep, rows, j->probs + at * outputs));
        } else {
            TRY(cldp_replica_loss(rep, rows));
            TRY(cldp_replica_read_loss(rep, rows, &loss, &correct));
        }
        done += rows;
    }
    j->loss_sum[r] = loss;
    j->correct[r] = correct;
    return CLDP_OK;
}

static cldp_status dispatch(run *j, size_t r)
{
    switch (j->job) {
    case JOB_TRAIN: return job_train(j, r);
    case JOB_UPDATE: return job_update(j, r);
    case JOB_BROADCAST:
        TRY(cldp_replica_release_grads(j->reps[r]));
        return cldp_replica_write_params(j->reps[r], j->params, 0, j->t->model.nparams);
    case JOB_EVAL:
    case JOB_PREDICT: return job_infer(j, r);
    }
    return CLDP_OK;
}

/* A worker's part of a run. A worker the caller has given up on (it came back after the
 * watchdog fired) cleans up what was left to it: its replica if the device was dropped, the run
 * when it is the last one using it, the trainer when that was destroyed meanwhile. */
static cldp_status run_job(void *ctx, size_t r)
{
    run *j = ctx;
    cldp_status st = dispatch(j, r);
    if (atomic_exchange(&j->state[r], RUN_FINISHED) == RUN_ABANDONED) {
        cldp_trainer *t = j->t;
        if (j->owns_replica[r]) cldp_replica_destroy(j->reps[r]);
        if (atomic_fetch_sub(&j->holders, 1) == 1) run_destroy(j);
        trainer_release(t);
    }
    return st;
}

/* After a run in which the ranks marked in `timed_out` (k of them) missed the watchdog: each of
 * those workers either finished meanwhile (then the caller cleans up after it) or is given the
 * run, a reference to the trainer, and its replica if its device was dropped, to clean up when
 * it comes back (run_job). The caller keeps a hold on the run until every rank is settled, so the
 * run is freed exactly once, by whoever lets go last. */
static void hand_over(cldp_trainer *t, run *j, const int *timed_out, size_t k)
{
    atomic_fetch_add(&j->holders, k + 1);
    atomic_fetch_add(&t->refs, k);
    size_t undo = 1;
    for (size_t r = 0; r < j->n; r++) {
        if (!timed_out[r]) continue;
        if (atomic_exchange(&j->state[r], RUN_ABANDONED) != RUN_FINISHED) continue; /* the worker's now */
        undo++;
        atomic_fetch_sub(&t->refs, 1);
        if (j->owns_replica[r]) cldp_replica_destroy(j->reps[r]);
    }
    if (atomic_fetch_sub(&j->holders, undo) == undo) run_free(j);
}

static cldp_status rebroadcast_if_dirty(cldp_trainer *t);

/* ---- failures -------------------------------------------------------------------------- */

/* Parses the test-only fault spec "RANK:STEP:KIND[:MS],..." (see cldp.h). */
static cldp_status parse_faults(cldp_trainer *t, const char *spec)
{
    static const struct { const char *name; cldp_fault_kind kind; } kinds[] = {
        {"gemm", CLDP_FAULT_GEMM}, {"kernel", CLDP_FAULT_KERNEL}, {"read", CLDP_FAULT_READ},
        {"write", CLDP_FAULT_WRITE}, {"stall", CLDP_FAULT_STALL}, {"nan", CLDP_FAULT_NAN}};
    if (!spec || !*spec) return CLDP_OK;
    const char *p = spec;
    while (*p) {
        char kind[16] = "";
        unsigned long long rank, step;
        double ms = 5000;
        int used = 0;
        int got = sscanf(p, "%llu:%llu:%15[a-z]%n", &rank, &step, kind, &used);
        REQUIRE(got == 3 && t->nfaults < 8, "fault spec \"%s\": expected RANK:STEP:KIND[:MS] (KIND gemm, kernel, read, write, stall or nan), at most 8", spec);
        p += used;
        if (*p == ':') {
            char *end;
            ms = strtod(p + 1, &end);
            REQUIRE(end != p + 1 && ms >= 0 && ms < 1e7, "fault spec \"%s\": bad stall time", spec);
            p = end;
        }
        size_t k = 0;
        while (k < sizeof kinds / sizeof *kinds && strcmp(kinds[k].name, kind)) k++;
        REQUIRE(k < sizeof kinds / sizeof *kinds, "fault spec \"%s\": unknown kind \"%s\"", spec, kind);
        REQUIRE(rank < t->n, "fault spec \"%s\": rank %llu, but there are %zu devices", spec, rank, t->n);
        t->faults[t->nfaults].rank = (size_t)rank;
        t->faults[t->nfaults].step = step;
        t->faults[t->nfaults].kind = kinds[k].kind;
        t->faults[t->nfaults].ms = ms;
        t->nfaults++;
        if (*p == ',') p++;
        else REQUIRE(!*p, "fault spec \"%s\": unexpected \"%s\"", spec, p);
    }
    return CLDP_OK;
}

/* Arms the faults due at this step on the devices they name (if still present). Each fault
 * is spent once armed: a retried step does not meet it again. */
static void arm_faults(cldp_trainer *t)
{
    for (size_t f = 0; f < t->nfaults; f++) {
        if (t->faults[f].step != t->t) continue;
        t->faults[f].step = UINT64_MAX;
        for (size_t r = 0; r < t->n; r++) {
            if (t->origin[r] != t->faults[f].rank) continue;
            if (t->faults[f].kind == CLDP_FAULT_NAN) t->inject_nan[r] = 1;
            else {
                t->reps[r]->fault = t->faults[f].kind;
                t->reps[r]->stall_ms = t->faults[f].ms;
            }
        }
    }
}

static void disarm_faults(cldp_trainer *t)
{
    for (size_t r = 0; r < t->n; r++) {
        t->reps[r]->fault = CLDP_FAULT_NONE;
        t->inject_nan[r] = 0;
    }
}

/* After a job failed on some workers: names the failure, then applies the policy. Returns
 * CLDP_OK when the failed devices were dropped and the caller should redo its work on the
 * others; otherwise the failure's status (its message set). */
static cldp_status handle_failure(cldp_trainer *t, cldp_status st, run *j)
{
    char msg[2048];
    size_t failed = 0, first = t->n;
    int timed_out = 0;
    for (size_t r = 0; r < t->n; r++) {
        cldp_status s = cldp_pool_status(t->pool, r);
        if (s == CLDP_OK) continue;
        failed++;
        if (first == t->n) first = r;
        timed_out |= s == CLDP_ERR_TIMEOUT;
    }
    if (first == t->n) return st; /* not a worker failure */
    if (cldp_pool_status(t->pool, first) == CLDP_ERR_TIMEOUT)
        snprintf(msg, sizeof msg, "%s: did not finish its part of step %llu within %.0f ms (watchdog timeout)",
                 t->reps[first]->name, (unsigned long long)t->t, t->opts.timeout_ms);
    else
        snprintf(msg, sizeof msg, "step %llu: %s", (unsigned long long)t->t, cldp_pool_error(t->pool, first));
    st = cldp_pool_status(t->pool, first);

    if (t->opts.on_failure == CLDP_ON_FAILURE_STOP || failed == t->n) {
        if (timed_out) {
            t->broken = 1;
            abandon_runs(t); /* the stuck worker stops at its next check */
        }
        return cldp_fail(st, "%s; %s", msg,
                         failed == t->n && t->opts.on_failure == CLDP_ON_FAILURE_DROP
                             ? "every device failed, nothing left to continue on"
                         : timed_out ? "the parameters are those before the step; a device is stuck, so the trainer "
                                       "can only be destroyed (save a checkpoint first)"
                                     : "the parameters are those before the step");
    }

    /* Drop: keep the survivors in rank order, so the reduction tree over them is the one a run
     * on the survivors alone would use. A stuck worker may still use its replica: it is left to
     * that worker (hand_over). */
    cldp_pool *old = t->pool;
    size_t keep = 0;
    for (size_t r = 0; r < t->n; r++) {
        cldp_status s = cldp_pool_status(old, r);
        if (s == CLDP_OK) {
            t->devs[keep] = t->devs[r];
            t->reps[keep] = t->reps[r];
            t->origin[keep] = t->origin[r];
            keep++;
        } else if (s != CLDP_ERR_TIMEOUT) {
            cldp_replica_destroy(t->reps[r]);
        } else {
            j->owns_replica[r] = 1; /* still in use by its stuck worker: see hand_over */
        }
    }
    abandon_runs(t);
    t->n = keep;
    t->pool = NULL;
    cldp_pool_destroy(old);
    cldp_status ps = cldp_pool_create(keep, &t->pool);
    if (ps != CLDP_OK) {
        t->broken = 1;
        return ps;
    }
    cldp_pool_set_timeout(t->pool, t->opts.timeout_ms);
    t->dirty = 1;
    cldp_fail(CLDP_OK, "dropped %zu device(s) after: %s; continuing on %zu", failed, msg, keep);
    return CLDP_OK;
}

/* A run failed: applies the policy (handle_failure), then settles the run with the workers that
 * missed the watchdog, if any. */
static cldp_status settle_failure(cldp_trainer *t, cldp_status st, run *j)
{
    int timed_out[CLDP_MAX_DEVICES];
    size_t k = 0;
    for (size_t r = 0; r < j->n; r++) k += (size_t)(timed_out[r] = cldp_pool_status(t->pool, r) == CLDP_ERR_TIMEOUT);
    st = handle_failure(t, st, j);
    if (k) hand_over(t, j, timed_out, k);
    else run_free(j);
    return st;
}

/* Runs a job on every worker; under the drop policy, failed devices are removed and `redo`
 * is called (to re-split the work) before running again on the survivors. `prepare` fills the
 * run's inputs from the trainer. On success *out is the finished run (the caller frees it). */
static cldp_status run_with_policy(cldp_trainer *t, job_kind kind, void (*redo)(cldp_trainer *t),
                                   void (*prepare)(cldp_trainer *t, run *j), run **out)
{
    for (;;) {
        run *j = run_new(t, kind);
        if (!j) return CLDP_ERR_HOST_MEMORY;
        if (prepare) prepare(t, j);
        cldp_status st = cldp_pool_run(t->pool, run_job, j);
        if (st == CLDP_OK) {
            if (out) *out = j;
            else run_free(j);
            return CLDP_OK;
        }
        if (t->broken || st == CLDP_ERR_STATE) { /* the pool refused: no worker saw this run */
            run_free(j);
            return st;
        }
        st = settle_failure(t, st, j);
        TRY(st);
        if (kind != JOB_BROADCAST) TRY(rebroadcast_if_dirty(t)); /* a broadcast simply runs again */
        if (redo) redo(t);
    }
}

/* Every worker writes the master parameters to its own device. */
static cldp_status broadcast(cldp_trainer *t) { return run_with_policy(t, JOB_BROADCAST, NULL, NULL, NULL); }

/* ---- creation -------------------------------------------------------------------------- */

void cldp_trainer_options_init(cldp_trainer_options *o)
{
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->batch = 128;
    o->optimizer = CLDP_OPT_ADAM;
    o->learning_rate = 1e-3f;
    o->momentum = 0.9f;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->epsilon = 1e-8f;
    o->seed = 1;
    o->timeout_ms = 120000;
    o->on_failure = CLDP_ON_FAILURE_STOP;
    o->on_nonfinite = CLDP_ON_NONFINITE_SKIP;
    o->split = NULL;
    o->balance = -1;
    o->device_memory_cap = 0;
}

static cldp_status check_options(const cldp_trainer_options *o)
{
    REQUIRE(o->struct_size == sizeof *o, "trainer options: struct_size is %zu, expected %zu; initialise them with cldp_trainer_options_init", o->struct_size, sizeof *o);
    REQUIRE(o->batch > 0, "trainer options: batch must be at least 1");
    REQUIRE(o->batch <= (1u << 24), "trainer options: batch %zu is too large (at most %u)", o->batch, 1u << 24);
    REQUIRE(o->optimizer == CLDP_OPT_SGD || o->optimizer == CLDP_OPT_ADAM, "trainer options: unknown optimizer %d", (int)o->optimizer);
    REQUIRE(isfinite(o->learning_rate) && o->learning_rate > 0, "trainer options: learning rate must be a positive number, got %g", (double)o->learning_rate);
    REQUIRE(isfinite(o->momentum) && o->momentum >= 0 && o->momentum < 1, "trainer options: momentum must be in [0, 1), got %g", (double)o->momentum);
    REQUIRE(isfinite(o->weight_decay) && o->weight_decay >= 0, "trainer options: weight decay must be >= 0, got %g", (double)o->weight_decay);
    REQUIRE(o->beta1 >= 0 && o->beta1 < 1 && o->beta2 >= 0 && o->beta2 < 1, "trainer options: Adam betas must be in [0, 1)");
    REQUIRE(isfinite(o->epsilon) && o->epsilon > 0, "trainer options: epsilon must be > 0");
    REQUIRE(isfinite(o->timeout_ms) && o->timeout_ms >= 0, "trainer options: timeout_ms must be >= 0 (0: no watchdog)");
    REQUIRE(o->on_failure == CLDP_ON_FAILURE_STOP || o->on_failure == CLDP_ON_FAILURE_DROP, "trainer options: unknown on_failure policy %d", (int)o->on_failure);
    REQUIRE(o->on_nonfinite == CLDP_ON_NONFINITE_SKIP || o->on_nonfinite == CLDP_ON_NONFINITE_STOP, "trainer options: unknown on_nonfinite policy %d", (int)o->on_nonfinite);
    REQUIRE(o->balance >= -1 && o->balance <= 1, "trainer options: balance must be -1 (auto), 0 (keep the split) or 1 (size shards by speed), got %d", o->balance);
    return CLDP_OK;
}

/* Drops a reference to the trainer: the caller's (destroy) or an abandoned worker's. The last
 * one frees it, on whichever thread that is. */
static void trainer_release(cldp_trainer *t)
{
    if (atomic_fetch_sub(&t->refs, 1) != 1) return;
    for (size_t r = 0; r < t->n; r++)
        if (t->reps) cldp_replica_destroy(t->reps[r]);
    free(t->reps);
    free(t->devs);
    free(t->master);
    free(t->opt_m);
    free(t->opt_v);
    free(t->next_master);
    free(t->next_m);
    free(t->next_v);
    run_destroy(t->spare);
    free(t->pieces);
    free(t->shard_off);
    free(t->shard_len);
    free(t->stats);
    free(t->origin);
    free(t->inject_nan);
    free(t->bal);
    free(t->slowdown);
    free(t);
}

void cldp_trainer_destroy(cldp_trainer *t)
{
    if (!t) return;
    /* a worker still stuck in a driver call is detached here; it frees the trainer when it comes
     * back, if it is the last to let go (run_job) */
    cldp_pool_destroy(t->pool);
    t->pool = NULL;
    trainer_release(t);
}

cldp_status cldp_trainer_create(const cldp_model *model, const cldp_trainer_options *opts, cldp_trainer **out)
{
    REQUIRE(out, "cldp_trainer_create: out is NULL");
    *out = NULL;
    REQUIRE(model && opts, "cldp_trainer_create: model or options is NULL");
    REQUIRE(model->nlayers > 0, "cldp_trainer_create: the model has no layers; add them with cldp_model_add_dense");
    TRY(check_options(opts));
    size_t rows_x_width;
    REQUIRE(cldp_mul_size(opts->batch, cldp_model_max_width(model), &rows_x_width) == 0 && rows_x_width < (1u << 31),
            "cldp_trainer_create: batch %zu x layer width %zu exceeds 2^31 elements per buffer", opts->batch, cldp_model_max_width(model));

    size_t idx[CLDP_MAX_DEVICES], n = 0;
    TRY(cldp_device_select(opts->devices, idx, CLDP_MAX_DEVICES, &n));
    const cldp_dev *all;
    size_t nall;
    TRY(cldp_devices(&all, &nall));

    cldp_trainer *t = cldp_calloc(1, sizeof *t, "trainer");
    if (!t) return CLDP_ERR_HOST_MEMORY;
    atomic_init(&t->refs, 1);
    t->model = *model;
    t->opts = *opts;
    t->opts.devices = NULL; /* the caller's string need not outlive the call */
    t->opts.split = NULL;
    t->n = n;
    size_t np = model->nparams;
    cldp_status st = CLDP_ERR_HOST_MEMORY;
    t->devs = cldp_calloc(n, sizeof *t->devs, "device list");
    t->reps = cldp_calloc(n, sizeof *t->reps, "replicas");
    t->master = cldp_calloc(np, sizeof(float), "master parameters");
    t->opt_m = cldp_calloc(np, sizeof(float), "optimizer state");
    t->opt_v = cldp_calloc(np, sizeof(float), "optimizer state");
    const char *early = getenv("CLDP_EARLY_REDUCE");
    t->early = !(early && (!strcmp(early, "off") || !strcmp(early, "0")));
    t->next_master = cldp_calloc(np, sizeof(float), "master parameters");
    t->next_m = cldp_calloc(np, sizeof(float), "optimizer state");
    t->next_v = cldp_calloc(np, sizeof(float), "optimizer state");
    t->shard_off = cldp_calloc(n, sizeof(size_t), "shards");
    t->shard_len = cldp_calloc(n, sizeof(size_t), "shards");
    t->stats = cldp_calloc(n, sizeof *t->stats, "statistics");
    t->origin = cldp_calloc(n, sizeof *t->origin, "ranks");
    t->inject_nan = cldp_calloc(n, sizeof *t->inject_nan, "flags");
    if (!t->devs || !t->reps || !t->master || !t->opt_m || !t->opt_v || !t->next_master || !t->next_m ||
        !t->next_v || !t->shard_off || !t->shard_len || !t->stats || !t->origin || !t->inject_nan)
        goto fail;
    for (size_t r = 0; r < n; r++) t->origin[r] = r;
    if ((st = make_pieces(t)) != CLDP_OK) goto fail;
    if ((st = parse_faults(t, opts->fault ? opts->fault : getenv("CLDP_FAULT"))) != CLDP_OK) goto fail;
    for (size_t r = 0; r < n; r++) t->devs[r] = &all[idx[r]];
    /* Each replica holds as many rows as a shard may have (the whole batch, with balancing)
     * or as its memory allows; larger shards run as micro-batches. */
    size_t max_rows[CLDP_MAX_DEVICES];
    t->bal = cldp_calloc(1, sizeof *t->bal, "balancer");
    t->slowdown = cldp_calloc(n, sizeof *t->slowdown, "slowdown factors");
    if (!t->bal || !t->slowdown) {
        st = CLDP_ERR_HOST_MEMORY;
        goto fail;
    }
    if ((st = plan_sharding(t, opts, max_rows)) != CLDP_OK) goto fail;
    /* Replicas are built and warmed up one after another on this thread: compiling on several
     * threads at once buys little, and PoCL 3.1 has been seen to trip an internal assertion
     * (pocl_release_dlhandle_cache) when two threads compile kernels concurrently. */
    for (size_t r = 0; r < n; r++) {
        if ((st = cldp_replica_create(t->devs[r], &t->model, max_rows[r], &t->reps[r])) != CLDP_OK) goto fail;
        if ((st = cldp_replica_warm_up(t->reps[r])) != CLDP_OK) goto fail;
    }
    if ((st = cldp_model_init_params(&t->model, opts->seed, t->master, np)) != CLDP_OK) goto fail;
    if ((st = cldp_pool_create(n, &t->pool)) != CLDP_OK) goto fail;
    cldp_pool_set_timeout(t->pool, opts->timeout_ms);
    if ((st = broadcast(t)) != CLDP_OK) goto fail;
    *out = t;
    return CLDP_OK;
fail:
    {
        /* keep the failure's message: destroying replicas must not overwrite it */
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", cldp_last_error());
        cldp_trainer_destroy(t);
        cldp_set_last_error(msg);
    }
    return st;
}

/* ---- steps ----------------------------------------------------------------------------- */

static cldp_status check_batch(const cldp_trainer *t, const float *x, const int32_t *labels, size_t n, size_t limit)
{
    REQUIRE(t, "trainer is NULL");
    REQUIRE(x, "input batch x is NULL");
    REQUIRE(n > 0, "batch size is 0: a step needs at least one sample");
    REQUIRE(n <= limit, "batch of %zu samples exceeds the trainer's batch option (%zu)", n, limit);
    if (labels) {
        size_t classes = cldp_model_outputs(&t->model);
        for (size_t i = 0; i < n; i++)
            REQUIRE(labels[i] >= 0 && (size_t)labels[i] < classes, "label %d of sample %zu is outside 0..%zu", (int)labels[i], i, classes - 1);
    }
    return CLDP_OK;
}

static cldp_status rebroadcast_if_dirty(cldp_trainer *t)
{
    if (!t->dirty) return CLDP_OK;
    TRY(broadcast(t));
    t->dirty = 0;
    return CLDP_OK;
}

/* Splits the step's batch over the devices now present. */
static void shard_step(cldp_trainer *t) { split_batch(t, t->batch_n); }

/* The step's inputs, into a run (made again for every attempt). */
static void prepare_step(cldp_trainer *t, run *j)
{
    j->x = t->x;
    j->labels = t->labels;
    j->scale = 1.0f / (float)t->batch_n;
    j->bc1 = 1.0 - pow((double)t->opts.beta1, (double)(t->t + 1));
    j->bc2 = 1.0 - pow((double)t->opts.beta2, (double)(t->t + 1));
    memcpy(j->shard_off, t->shard_off, t->n * sizeof *t->shard_off);
    memcpy(j->shard_len, t->shard_len, t->n * sizeof *t->shard_len);
}

static cldp_status step(cldp_trainer *t, const float *x, const int32_t *labels, size_t n, cldp_step_stats *stats);

cldp_status cldp_trainer_step(cldp_trainer *t, const float *x, const int32_t *labels, size_t n, cldp_step_stats *stats)
{
    REQUIRE(t, "cldp_trainer_step: trainer is NULL");
    cldp_status st = step(t, x, labels, n, stats);
    if (!t->broken) disarm_faults(t); /* a stuck worker may still be inside its replica */
    return st;
}

static cldp_status step(cldp_trainer *t, const float *x, const int32_t *labels, size_t n, cldp_step_stats *stats)
{
    REQUIRE(labels, "cldp_trainer_step: labels are NULL");
    TRY(check_batch(t, x, labels, n, t->opts.batch));
    if (t->broken)
        return cldp_fail(CLDP_ERR_STATE, "this trainer lost a device that stopped answering; its parameters are "
                                         "still readable (cldp_trainer_get_params), then destroy it");
    TRY(rebroadcast_if_dirty(t));
    arm_faults(t);
    double t0 = cldp_now_ms();
    t->x = x;
    t->labels = labels;
    t->batch_n = n;
    shard_step(t);
    run *j = NULL;
    TRY(run_with_policy(t, JOB_TRAIN, shard_step, prepare_step, &j));
    double loss = 0, last_end = 0;
    size_t correct = 0;
    for (size_t r = 0; r < t->n; r++) last_end = fmax(last_end, j->train_end[r]);
    for (size_t r = 0; r < t->n; r++) {
        t->stats[r].shard = t->shard_len[r];
        /* the device's part alone: the pieces summed while waiting for it are not its speed */
        t->stats[r].compute_ms = cldp_pool_job_ms(t->pool, r) - j->early_ms[r];
        t->stats[r].idle_ms = last_end - j->train_end[r]; /* waiting for the slowest device */
        t->stats[r].reduce_ms = t->stats[r].broadcast_ms = 0;
        loss += j->loss_sum[r];
        correct += j->correct[r];
    }
    {
        double ms[CLDP_MAX_DEVICES];
        for (size_t r = 0; r < t->n; r++) ms[r] = t->stats[r].compute_ms;
        cldp_balancer_observe(t->bal, t->origin, t->n, t->shard_len, ms); /* sizes the next step's shards */
    }
    if (stats) {
        memset(stats, 0, sizeof *stats);
        stats->loss = loss / (double)n;
        stats->correct = correct;
        stats->samples = n;
        stats->devices = t->n;
    }

    /* The rest of the reduction and the broadcast, on the same run. Devices receive the new
     * parameters before the step is known to commit, so until it does they may not hold
     * `master`. */
    j->job = JOB_UPDATE;
    t->dirty = 1;
    cldp_status st = cldp_pool_run(t->pool, run_job, j);
    int nonfinite = 0;
    size_t bad = j->n;
    for (size_t p = 0; p < t->npieces; p++) nonfinite |= j->bad[p];
    for (size_t r = j->n; r-- > 0;)
        if (j->nonfinite[r]) bad = r;
    char bad_name[192] = "";
    if (bad < j->n) snprintf(bad_name, sizeof bad_name, "%s", j->reps[bad]->name);
    if (st != CLDP_OK) {
        /* Only a write can fail here, after every piece is done: under the stop policy the step
         * does not commit; under drop the survivors get the new parameters below. */
        TRY(settle_failure(t, st, j));
    } else {
        for (size_t r = 0; r < t->n; r++) {
            t->stats[r].reduce_ms = j->reduce_ms[r];
            t->stats[r].broadcast_ms = j->broadcast_ms[r];
        }
        run_free(j);
    }
    if (nonfinite) {
        /* NaN or Inf in the summed gradient: skip the update entirely (the next step, or any
         * other use of the devices, first writes the unchanged parameters back to them). */
        t->skipped++;
        if (stats) {
            stats->skipped = 1;
            stats->skipped_total = t->skipped;
            stats->step_ms = cldp_now_ms() - t0;
        }
        cldp_status ns =
            *bad_name
                ? cldp_fail(CLDP_ERR_NONFINITE, "step %llu: the gradient from %s holds NaN or Inf; the update was "
                                                "skipped (%llu skipped so far)",
                            (unsigned long long)t->t, bad_name, (unsigned long long)t->skipped)
                : cldp_fail(CLDP_ERR_NONFINITE, "step %llu: the sum of the devices' gradients overflowed to Inf; the "
                                                "update was skipped (%llu skipped so far); lower the learning rate",
                            (unsigned long long)t->t, (unsigned long long)t->skipped);
        return t->opts.on_nonfinite == CLDP_ON_NONFINITE_STOP ? ns : CLDP_OK;
    }
    /* commit */
    float *swap;
    swap = t->master, t->master = t->next_master, t->next_master = swap;
    swap = t->opt_m, t->opt_m = t->next_m, t->next_m = swap;
    swap = t->opt_v, t->opt_v = t->next_v, t->next_v = swap;
    t->t++;
    if (st == CLDP_OK) t->dirty = 0;
    else TRY(rebroadcast_if_dirty(t));
    if (stats) {
        stats->skipped_total = t->skipped;
        stats->devices = t->n;
        stats->step_ms = cldp_now_ms() - t0;
    }
    return CLDP_OK;
}

static void shard_infer(cldp_trainer *t) { split_batch(t, t->batch_n); }

static void prepare_infer(cldp_trainer *t, run *j)
{
    j->x = t->x;
    j->labels = t->labels;
    j->probs = t->probs;
    memcpy(j->shard_off, t->shard_off, t->n * sizeof *t->shard_off);
    memcpy(j->shard_len, t->shard_len, t->n * sizeof *t->shard_len);
}

/* Runs an inference job over n samples in chunks of the trainer's batch. */
static cldp_status infer(cldp_trainer *t, job_kind kind, const float *x, const int32_t *labels, size_t n, float *probs,
                         double *loss, size_t *correct)
{
    if (t->broken)
        return cldp_fail(CLDP_ERR_STATE, "this trainer lost a device that stopped answering; destroy it");
    TRY(rebroadcast_if_dirty(t));
    double ls = 0;
    size_t cs = 0;
    size_t outputs = cldp_model_outputs(&t->model);
    for (size_t done = 0; done < n;) {
        t->batch_n = n - done < t->opts.batch ? n - done : t->opts.batch;
        shard_infer(t);
        t->x = x + done * t->model.inputs;
        t->labels = labels ? labels + done : NULL;
        t->probs = probs ? probs + done * outputs : NULL;
        run *j = NULL;
        TRY(run_with_policy(t, kind, shard_infer, prepare_infer, &j));
        for (size_t r = 0; r < j->n; r++) {
            ls += j->loss_sum[r];
            cs += j->correct[r];
        }
        run_free(j);
        done += t->batch_n;
    }
    if (loss) *loss = ls / (double)n;
    if (correct) *correct = cs;
    return CLDP_OK;
}

cldp_status cldp_trainer_evaluate(cldp_trainer *t, const float *x, const int32_t *labels, size_t n, double *loss, size_t *correct)
{
    REQUIRE(t && labels, "cldp_trainer_evaluate: trainer or labels is NULL");
    REQUIRE(loss || correct, "cldp_trainer_evaluate: both loss and correct are NULL");
    TRY(check_batch(t, x, labels, n, SIZE_MAX));
    return infer(t, JOB_EVAL, x, labels, n, NULL, loss, correct);
}

cldp_status cldp_trainer_predict(cldp_trainer *t, const float *x, size_t n, float *probs)
{
    REQUIRE(t && probs, "cldp_trainer_predict: trainer or probs is NULL");
    TRY(check_batch(t, x, NULL, n, SIZE_MAX));
    return infer(t, JOB_PREDICT, x, NULL, n, probs, NULL, NULL);
}

/* ---- parameters and facts -------------------------------------------------------------- */

cldp_status cldp_trainer_get_params(const cldp_trainer *t, float *params, size_t count)
{
    REQUIRE(t && params, "cldp_trainer_get_params: trainer or params is NULL");
    REQUIRE(count == t->model.nparams, "cldp_trainer_get_params: count is %zu but the model has %zu parameters", count, t->model.nparams);
    memcpy(params, t->master, count * sizeof(float));
    return CLDP_OK;
}

cldp_status cldp_trainer_set_params(cldp_trainer *t, const float *params, size_t count)
{
    REQUIRE(t && params, "cldp_trainer_set_params: trainer or params is NULL");
    REQUIRE(count == t->model.nparams, "cldp_trainer_set_params: count is %zu but the model has %zu parameters", count, t->model.nparams);
    for (size_t i = 0; i < count; i++)
        REQUIRE(isfinite(params[i]), "cldp_trainer_set_params: parameter %zu is not finite", i);
    memcpy(t->master, params, count * sizeof(float));
    memset(t->opt_m, 0, count * sizeof(float));
    memset(t->opt_v, 0, count * sizeof(float));
    t->t = 0;
    t->dirty = 1;
    return rebroadcast_if_dirty(t);
}

size_t cldp_trainer_device_count(const cldp_trainer *t) { return t ? t->n : 0; }

cldp_status cldp_trainer_device_info(const cldp_trainer *t, size_t rank, cldp_device_info *info)
{
    REQUIRE(t && info, "cldp_trainer_device_info: trainer or info is NULL");
    REQUIRE(rank < t->n, "cldp_trainer_device_info: rank %zu is not below the device count %zu", rank, t->n);
    *info = t->devs[rank]->info;
    return CLDP_OK;
}

cldp_status cldp_trainer_device_stats(const cldp_trainer *t, size_t rank, cldp_device_stats *stats)
{
    REQUIRE(t && stats, "cldp_trainer_device_stats: trainer or stats is NULL");
    REQUIRE(rank < t->n, "cldp_trainer_device_stats: rank %zu is not below the device count %zu", rank, t->n);
    *stats = t->stats[rank];
    return CLDP_OK;
}

cldp_status cldp_trainer_set_learning_rate(cldp_trainer *t, float lr)
{
    REQUIRE(t, "cldp_trainer_set_learning_rate: trainer is NULL");
    REQUIRE(isfinite(lr) && lr > 0, "cldp_trainer_set_learning_rate: learning rate must be a positive number, got %g", (double)lr);
    t->opts.learning_rate = lr;
    return CLDP_OK;
}

/* ---- the split ------------------------------------------------------------------------- */

cldp_status cldp_trainer_get_split(const cldp_trainer *t, double *weights, size_t *shards, size_t n)
{
    REQUIRE(t, "cldp_trainer_get_split: trainer is NULL");
    REQUIRE(n == t->n, "cldp_trainer_get_split: n is %zu but the trainer has %zu device(s)", n, t->n);
    double w[CLDP_MAX_DEVICES];
    cldp_balancer_weights(t->bal, t->origin, t->n, w);
    if (weights) memcpy(weights, w, n * sizeof *w);
    if (shards) {
        double sum = 0;
        for (size_t r = 0; r < n; r++) sum += w[r];
        if (!(sum > 0))
            for (size_t r = 0; r < n; r++) w[r] = 1.0;
        cldp_split_shards(w, n, t->opts.batch, shards);
    }
    return CLDP_OK;
}

cldp_status cldp_trainer_set_split(cldp_trainer *t, const double *weights, size_t n)
{
    REQUIRE(t, "cldp_trainer_set_split: trainer is NULL");
    REQUIRE(n == t->n, "cldp_trainer_set_split: %zu weight(s) given but the trainer has %zu device(s); give one per device", n, t->n);
    TRY(cldp_split_check(weights, n, "cldp_trainer_set_split"));
    cldp_balancer_set(t->bal, t->origin, n, weights);
    return CLDP_OK;
}

cldp_status cldp_trainer_set_balance(cldp_trainer *t, int on)
{
    REQUIRE(t, "cldp_trainer_set_balance: trainer is NULL");
    REQUIRE(on == 0 || on == 1, "cldp_trainer_set_balance: on must be 0 or 1, got %d", on);
    t->bal->enabled = on;
    t->bal->pending = 0;
    return CLDP_OK;
}

cldp_status cldp_trainer_device_rows(const cldp_trainer *t, size_t rank, size_t *rows)
{
    REQUIRE(t && rows, "cldp_trainer_device_rows: trainer or rows is NULL");
    REQUIRE(rank < t->n, "cldp_trainer_device_rows: rank %zu is not below the device count %zu", rank, t->n);
    *rows = t->reps[rank]->max_rows;
    return CLDP_OK;
}
