/* cldp-train-checkpoint.h — cldp-train's checkpoint handling: the location checked and locked
 * before training, the run state it adds to the library's checkpoint, saves that no signal cuts
 * short, and resuming. Included by cldp-train.c alone (static functions, like cldp-train-args.h). */
#ifndef CLDP_TRAIN_CHECKPOINT_H
#define CLDP_TRAIN_CHECKPOINT_H

#include "cldp-train-args.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- signals: the first one stops the run after its step, a second one ends it at once -- */

/* Set by the handler, read between steps: only a sig_atomic_t store is async-signal-safe. */
static volatile sig_atomic_t stop_signal;
static void on_signal(int sig) { stop_signal = sig; }

static void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | SA_RESETHAND; /* a second signal ends the process at once */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static const char *signal_name(int sig) { return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal"; }

/* Holds SIGINT and SIGTERM back during a file write (a checkpoint, the report), so that a second
 * Ctrl-C cannot end the process between the temporary file and its rename. */
static void signals_hold(sigset_t *old)
{
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, old);
}

/* Takes the signals that came during the write: the first one of the run stops it after the
 * write (as the handler would have), a second one is said and the run, already stopping, ends. */
static void signals_release(const sigset_t *old, const char *what)
{
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    const struct timespec now = {0, 0};
    int sig;
    while ((sig = sigtimedwait(&sigs, NULL, &now)) > 0) {
        if (!stop_signal) {
            stop_signal = sig;
            signal(sig, SIG_DFL); /* what SA_RESETHAND does when the handler runs */
        } else {
            fprintf(stderr, "cldp-train: %s during %s: the write was finished first\n", signal_name(sig), what);
        }
    }
    pthread_sigmask(SIG_SETMASK, old, NULL);
}

/* ---- the location: checked and locked before training ---------------------------------- */

/* The library's checkpoint files start with these 8 bytes (the format: runtime/checkpoint.c). */
#define CKPT_FILE_MAGIC "CLDPCKPT"

static const char *file_kind(mode_t mode)
{
    return S_ISDIR(mode)    ? "a directory"
           : S_ISCHR(mode)  ? "a character device"
           : S_ISBLK(mode)  ? "a block device"
           : S_ISFIFO(mode) ? "a FIFO (named pipe)"
           : S_ISSOCK(mode) ? "a socket"
                            : "not a regular file";
}

/* The lock of this run's checkpoint path, released (and its file removed) at exit. */
static struct {
    int fd;
    char path[4096];
} ckpt_lock = {-1, ""};

static void release_lock(void)
{
    if (ckpt_lock.fd < 0) return;
    unlink(ckpt_lock.path); /* while still holding the lock: see take_lock */
    close(ckpt_lock.fd);
    ckpt_lock.fd = -1;
}

/* Why a probe file could not be made in the directory of the file an option names (--checkpoint,
 * --report), for the message. */
static void explain_probe(char *buf, size_t cap, const char *path, int err, const char *option)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    if (err == ENOENT) snprintf(buf, cap, "its directory '%s' does not exist; create it, or give another %s", dir, option);
    else if (err == ENOTDIR) snprintf(buf, cap, "'%s' is not a directory; give another %s", dir, option);
    else if (err == EACCES || err == EPERM || err == EROFS)
        snprintf(buf, cap, "its directory '%s' is not writable (%s); give a %s in a writable directory", dir, strerror(err), option);
    else snprintf(buf, cap, "cannot create a file beside it (%s); give another %s", strerror(err), option);
}

/* Makes and removes PATH.tmp.<pid>, the temporary file a save writes first: can a file be made
 * beside PATH? 0, or -1 after "cldp-train: cannot <what> '<path>': <why><also>". */
static int probe_beside(const char *path, const char *option, const char *what, const char *also)
{
    char probe[4200], why[4400];
    if (snprintf(probe, sizeof probe, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof probe) {
        fprintf(stderr, "cldp-train: %s path too long: %s\n", option, path);
        return -1;
    }
    int fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        explain_probe(why, sizeof why, path, errno, option);
        fprintf(stderr, "cldp-train: cannot %s '%s': %s%s\n", what, path, why, also);
        return -1;
    }
    close(fd);
    unlink(probe);
    return 0;
}

/* Takes an advisory write lock (fcntl, so the kernel drops it when the process dies) on
 * PATH.lock and writes our pid into it. Another process on the same path is refused, named by
 * its pid. The file is removed at exit while locked; a process that opened it before then finds,
 * once it has the lock, that the name now leads elsewhere (or nowhere) and tries again. */
static int take_lock(const char *path, const char *also)
{
    if (snprintf(ckpt_lock.path, sizeof ckpt_lock.path, "%s.lock", path) >= (int)sizeof ckpt_lock.path) {
        fprintf(stderr, "cldp-train: --checkpoint path too long: %s\n", path);
        return -1;
    }
    for (int attempt = 0; attempt < 100; attempt++) {
        int fd = open(ckpt_lock.path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            fprintf(stderr, "cldp-train: cannot create the lock file '%s' of checkpoint '%s': %s%s\n", ckpt_lock.path, path,
                    strerror(errno), also);
            return -1;
        }
        struct flock fl;
        memset(&fl, 0, sizeof fl);
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        if (fcntl(fd, F_SETLK, &fl) != 0) {
            int err = errno;
            if (err != EAGAIN && err != EACCES) { /* no locks on this file system (ENOLCK): go on without */
                fprintf(stderr, "cldp-train: note: cannot lock '%s' (%s): nothing stops another cldp-train from saving to '%s' too\n",
                        ckpt_lock.path, strerror(err), path);
                close(fd);
                return 0;
            }
            memset(&fl, 0, sizeof fl);
            fl.l_type = F_WRLCK;
            fl.l_whence = SEEK_SET;
            long pid = fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK ? (long)fl.l_pid : 0;
            char text[32] = "";
            ssize_t got = pread(fd, text, sizeof text - 1, 0);
            text[got > 0 ? got : 0] = 0;
            if (!pid) pid = strtol(text, NULL, 10);
            close(fd);
            if (pid)
                fprintf(stderr, "cldp-train: checkpoint '%s' is in use by another cldp-train, pid %ld (it holds '%s'); wait for it "
                                "to end, or give another --checkpoint\n", path, pid, ckpt_lock.path);
            else
                fprintf(stderr, "cldp-train: checkpoint '%s' is in use by another process (it holds '%s'); wait for it to end, or "
                                "give another --checkpoint\n", path, ckpt_lock.path);
            return -1;
        }
        struct stat have, named;
        if (fstat(fd, &have) == 0 && stat(ckpt_lock.path, &named) == 0 && have.st_dev == named.st_dev && have.st_ino == named.st_ino) {
            char text[32];
            int len = snprintf(text, sizeof text, "%ld\n", (long)getpid());
            if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)len, 0) != len) { /* the pid is for people; the lock works without */
            }
            ckpt_lock.fd = fd;
            atexit(release_lock);
            return 0;
        }
        close(fd); /* removed by the process that held it just before: try the new file */
    }
    fprintf(stderr, "cldp-train: cannot lock '%s': it keeps being replaced\n", ckpt_lock.path);
    return -1;
}

/* Before training: the checkpoint path must be new, empty or a cldp checkpoint (unless --force),
 * never anything but a regular file; its directory must take a new file (the temporary file of
 * a save, made and removed here under the very name a save uses); and no other cldp-train may be
 * saving to it. Returns 0, or -1 after a message. */
static int prepare_checkpoint(const args *a)
{
    const char *path = a->checkpoint;
    const char *also = a->checkpoint_is_resume ? " (without --checkpoint the run saves to its --resume file; give --checkpoint FILE "
                                                 "to save elsewhere)"
                                               : "";
    struct stat sb;
    if (stat(path, &sb) == 0) {
        if (!S_ISREG(sb.st_mode)) {
            fprintf(stderr, "cldp-train: --checkpoint '%s' is %s, which saving would replace; give the path of a regular file or "
                            "of a new one\n", path, file_kind(sb.st_mode));
            return -1;
        }
        if (sb.st_size > 0 && !a->force) {
            char head[8];
            FILE *f = fopen(path, "rb");
            size_t got = f ? fread(head, 1, sizeof head, f) : 0;
            int err = f ? 0 : errno;
            if (f) fclose(f);
            if (!f) {
                fprintf(stderr, "cldp-train: cannot read --checkpoint '%s' to check that it is a cldp checkpoint (%s); --force "
                                "overwrites it unchecked\n", path, strerror(err));
                return -1;
            }
            if (got < sizeof head || memcmp(head, CKPT_FILE_MAGIC, sizeof head)) {
                fprintf(stderr, "cldp-train: '%s' exists and is not a cldp checkpoint (it does not start with %s); saving would "
                                "overwrite it: give another --checkpoint, or add --force to overwrite it\n", path, CKPT_FILE_MAGIC);
                return -1;
            }
        }
    }
    if (probe_beside(path, "--checkpoint", "save checkpoints to", also)) return -1;
    return take_lock(path, also);
}

/* ---- the run state: what this program adds to the library's checkpoint ------------------- */

/* The application blob of a checkpoint: where the run stands. Host byte order: it is read back
 * by this program, which checks the magic and the size. Followed by ntr uint32 sample indices,
 * the data order (each epoch shuffles the previous epoch's order, so it cannot be recomputed
 * from the epoch alone without replaying every shuffle). */
#define RUN_MAGIC "CLDPRUN1"
typedef struct run_state {
    char magic[8];
    char config[512];     /* the options and data that decide the result; must match to resume */
    uint64_t epoch;       /* the epoch in progress, from 1 (epochs + 1: the run is complete) */
    uint64_t step;        /* steps of that epoch already taken */
    uint64_t shuffled;    /* 1: the order already holds this epoch's shuffle */
    uint64_t rng;         /* the shuffle's xorshift64* state */
    uint64_t ntr;         /* samples, entries of the order that follows */
    double ep_loss;       /* this epoch's loss sum and correct count so far */
    uint64_t ep_correct;
    double final_loss, test_acc; /* of the last finished epoch, for the report */
} run_state;

/* What must not change between a run and its resumption: the schedule depends on epochs and
 * batch, the data order on the seed and the data. (The model is checked by the library.) */
static void run_config(char *out, size_t cap, const args *a, const char *source, size_t ntr, size_t nf, const int32_t *ytr)
{
    snprintf(out, cap, "data %s (%zu samples, %zu features, labels CRC %08x), epochs %d, batch %zu, %s lr %.9g momentum %.9g weight decay %.9g, seed %llu",
             source, ntr, nf, (unsigned)cldp_crc32(ytr, ntr * sizeof(int32_t)), a->epochs, a->batch,
             a->optimizer == CLDP_OPT_ADAM ? "adam" : "sgd", (double)a->lr, (double)a->momentum, (double)a->weight_decay,
             (unsigned long long)a->seed);
}

/* Records a position inside epoch `ep`: `step` steps of it done, its shuffle made. */
static void set_position(run_state *rs, int ep, size_t step, uint64_t rng, double ep_loss, size_t ep_correct,
                         double final_loss, double test_acc)
{
    rs->epoch = (uint64_t)ep;
    rs->step = step;
    rs->shuffled = 1;
    rs->rng = rng;
    rs->ep_loss = ep_loss;
    rs->ep_correct = ep_correct;
    rs->final_loss = final_loss;
    rs->test_acc = test_acc;
}

/* Saves with SIGINT and SIGTERM blocked, so that a signal (a second Ctrl-C just after the first)
 * cannot end the process between the temporary file and its rename. A signal that came during
 * the save is taken afterwards: the first one of the run stops it after this save (as the
 * handler would have), a second one is said and the run, already stopping, ends. */
static int save_run(cldp_trainer *tr, const char *path, const run_state *rs, const size_t *order, unsigned char *blob)
{
    memcpy(blob, rs, sizeof *rs);
    for (size_t i = 0; i < rs->ntr; i++) {
        uint32_t v = (uint32_t)order[i];
        memcpy(blob + sizeof *rs + 4 * i, &v, 4);
    }
    sigset_t old;
    signals_hold(&old);
    cldp_status st = cldp_trainer_save_checkpoint(tr, path, blob, sizeof *rs + 4 * rs->ntr);
    if (st != CLDP_OK) fprintf(stderr, "cldp-train: saving the checkpoint: %s\n", cldp_last_error());
    signals_release(&old, "the checkpoint write");
    return st == CLDP_OK ? 0 : -1;
}

/* Loads --resume into the trainer and the run state; 0 on success, else a message was printed. */
static int load_run(cldp_trainer *tr, const char *path, const char *config, size_t ntr, size_t steps_per_epoch, int epochs,
                    run_state *rs, size_t *order, unsigned char *blob)
{
    size_t cap = sizeof *rs + 4 * ntr, got = 0;
    if (cldp_trainer_load_checkpoint(tr, path, blob, cap, &got) != CLDP_OK) {
        fprintf(stderr, "cldp-train: cannot resume from '%s': %s\n", path, cldp_last_error());
        return -1;
    }
    memcpy(rs, blob, got < sizeof *rs ? got : sizeof *rs);
    if (got != cap || memcmp(rs->magic, RUN_MAGIC, 8) || rs->ntr != ntr) {
        fprintf(stderr, "cldp-train: cannot resume from '%s': its run state (%zu bytes) is not this program's for this data (%zu bytes)\n",
                path, got, cap);
        return -1;
    }
    rs->config[sizeof rs->config - 1] = 0;
    if (strcmp(rs->config, config)) {
        fprintf(stderr, "cldp-train: cannot resume from '%s': it was made with other options or data\n  checkpoint: %s\n  this run:   %s\n"
                        "resume with the options of the run that wrote it\n", path, rs->config, config);
        return -1;
    }
    int ok = rs->epoch >= 1 && rs->epoch <= (uint64_t)epochs + 1 && rs->step <= steps_per_epoch && rs->shuffled <= 1 &&
             (rs->step == 0 || rs->shuffled) && (rs->epoch <= (uint64_t)epochs || rs->step == 0);
    unsigned char *seen = calloc(ntr ? ntr : 1, 1);
    for (size_t i = 0; ok && seen && i < ntr; i++) {
        uint32_t v;
        memcpy(&v, blob + sizeof *rs + 4 * i, 4);
        ok = v < ntr && !seen[v];
        if (ok) seen[v] = 1;
        order[i] = v;
    }
    free(seen);
    if (!ok) {
        fprintf(stderr, "cldp-train: cannot resume from '%s': its position or data order is inconsistent\n", path);
        return -1;
    }
    return 0;
}

#endif
