/* test_kill_resume — kills cldp-train with SIGKILL at random moments (many during a checkpoint
 * write, which CLDP_TEST_CHECKPOINT_DELAY_MS widens), resumes it from its checkpoint until it
 * completes, and requires the final parameters (param_checksum) to equal an uninterrupted run's
 * exactly. Also: SIGTERM and SIGINT end it cleanly with a checkpoint (status 143 / 130), and a
 * damaged checkpoint given to --resume is refused with a message and a non-zero status.
 * Usage: test_kill_resume PATH/TO/cldp-train (CLDP_TEST_KILL_RUNS sets the number of runs, 6). */
#define _POSIX_C_SOURCE 200809L
#undef NDEBUG
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { TOTAL_STEPS = 40 }; /* 2 epochs of the 2000 embedded samples in batches of 100 */

static const char *train_exe;
static char dir[256], ckpt[320];
static char seed_arg[32];

/* A running cldp-train whose stdout we read through a pipe. */
typedef struct child {
    pid_t pid;
    int fd;          /* read end of its stdout; -1 after EOF */
    char out[65536]; /* what it printed so far */
    size_t len;
} child;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* Starts cldp-train with the run's options plus `extra` (NULL-terminated); stderr goes to
 * `err_path` when given, else to ours. */
static void start(child *c, const char *const *extra, const char *delay_ms, const char *err_path)
{
    const char *argv[32] = {train_exe, "--embedded", "--hidden", "32", "--epochs", "2", "--batch", "100", "--seed", seed_arg,
                            "--json"};
    size_t n = 11;
    for (size_t i = 0; extra && extra[i] && n < 31; i++) argv[n++] = extra[i];
    argv[n] = NULL;
    int p[2];
    if (pipe(p) != 0) {
        perror("pipe");
        exit(1);
    }
    fflush(stdout);
    fflush(stderr);
    c->pid = fork();
    if (c->pid < 0) {
        perror("fork");
        exit(1);
    }
    if (c->pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        close(p[0]);
        close(p[1]);
        if (err_path) {
            int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (e >= 0) dup2(e, STDERR_FILENO);
        }
        if (delay_ms) setenv("CLDP_TEST_CHECKPOINT_DELAY_MS", delay_ms, 1);
        else unsetenv("CLDP_TEST_CHECKPOINT_DELAY_MS");
        execv(train_exe, (char *const *)argv);
        fprintf(stderr, "test_kill_resume: cannot run %s: %s\n", train_exe, strerror(errno));
        _exit(127);
    }
    close(p[1]);
    c->fd = p[0];
    c->len = 0;
    c->out[0] = 0;
}

/* Reads what the child printed, for at most `ms` (negative: until EOF). Returns 0 at EOF. */
static int pump(child *c, double ms)
{
    double end = now_ms() + ms;
    while (c->fd >= 0) {
        double left = ms < 0 ? 60000 : end - now_ms();
        if (left <= 0) return 1;
        struct pollfd pf = {c->fd, POLLIN, 0};
        int r = poll(&pf, 1, (int)left + 1);
        if (r < 0 && errno == EINTR) continue;
        if (r == 0) {
            if (ms < 0) {
                fprintf(stderr, "FAIL cldp-train printed nothing for 60 s\n");
                test_failures++;
                kill(c->pid, SIGKILL);
            }
            continue;
        }
        char buf[4096];
        ssize_t got = read(c->fd, buf, sizeof buf);
        if (got <= 0) {
            close(c->fd);
            c->fd = -1;
            return 0;
        }
        size_t room = sizeof c->out - 1 - c->len, k = (size_t)got < room ? (size_t)got : room;
        memcpy(c->out + c->len, buf, k);
        c->len += k;
        c->out[c->len] = 0;
    }
    return 0;
}

/* Reads until `needle` appears or the output ends (or 120 s pass: a hung child is killed and
 * fails the test); returns whether it appeared. */
static int wait_for(child *c, const char *needle)
{
    double end = now_ms() + 120000;
    while (!strstr(c->out, needle) && c->fd >= 0 && now_ms() < end) pump(c, 100);
    if (!strstr(c->out, needle) && c->fd >= 0) {
        fprintf(stderr, "FAIL cldp-train did not print \"%s\" within 120 s\n", needle);
        test_failures++;
        kill(c->pid, SIGKILL);
    }
    return strstr(c->out, needle) != NULL;
}

/* Reads to EOF and reaps the child; returns its exit status (128 + signal if killed). */
static int finish(child *c)
{
    pump(c, -1);
    int status;
    while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* --json's "param_checksum":"0x%08x" (-1 when absent) */
static long long checksum_of(const child *c)
{
    const char *p = strstr(c->out, "\"param_checksum\":\"0x");
    return p ? strtoll(p + 18, NULL, 16) : -1;
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Runs to completion (resuming if a checkpoint exists) and returns the final checksum. */
static long long complete(const char *delay, int *resumed)
{
    child c;
    int have = exists(ckpt);
    const char *with[] = {"--checkpoint", ckpt, "--checkpoint-every", "1", "--resume", ckpt, NULL};
    if (!have) with[4] = NULL;
    start(&c, with, delay, NULL);
    int rc = finish(&c);
    if (rc != 0 || (have && !strstr(c.out, "resumed from"))) {
        fprintf(stderr, "FAIL cldp-train --resume exited with %d:\n%s\n", rc, c.out);
        test_failures++;
    }
    *resumed = have;
    return checksum_of(&c);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_kill_resume PATH/TO/cldp-train\n");
        return 2;
    }
    train_exe = argv[1];
    test_rng_state = test_seed("test_kill_resume");
    test_devices("test_kill_resume", 1);
    signal(SIGPIPE, SIG_IGN);
    /* a fixed split: with the speed-aware one, shards follow timings and no two runs agree bitwise */
    setenv("CLDP_SPLIT", "even", 1);
    snprintf(seed_arg, sizeof seed_arg, "%llu", (unsigned long long)(1 + test_rand() % 1000));
    const char *tmpdir = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/cldp-kill-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(dir)) {
        perror("test_kill_resume: mkdtemp");
        return 1;
    }
    snprintf(ckpt, sizeof ckpt, "%s/run.ckpt", dir);
    const char *runs_env = getenv("CLDP_TEST_KILL_RUNS");
    int runs = runs_env ? atoi(runs_env) : 6;
    const char *delay = "20"; /* ms between a checkpoint's fsync and its rename */

    /* the reference: an uninterrupted run; then one with checkpoints, which must agree and
     * tells how long training takes (the window the kills are drawn from) */
    child c;
    start(&c, NULL, NULL, NULL);
    CHECK(finish(&c) == 0);
    long long ref = checksum_of(&c);
    CHECK(ref >= 0);
    const char *every[] = {"--checkpoint", ckpt, "--checkpoint-every", "1", NULL};
    start(&c, every, delay, NULL);
    CHECK(wait_for(&c, "ready"));
    double t0 = now_ms();
    CHECK(finish(&c) == 0);
    double train_ms = now_ms() - t0;
    CHECK(checksum_of(&c) == ref);
    printf("  seed %s: uninterrupted param_checksum 0x%08llx; with a checkpoint each step (+%s ms before each rename) "
           "training takes %.0f ms\n", seed_arg, ref, delay, train_ms);

    /* kill and resume */
    int kills = 0, in_write = 0, before_first = 0, after_end = 0, resumes = 0;
    for (int run = 0; run < runs; run++) {
        unlink(ckpt);
        int nkill = 1 + (int)(test_rand() % 3);
        for (int k = 0; k < nkill; k++) {
            int have = exists(ckpt);
            const char *with[] = {"--checkpoint", ckpt, "--checkpoint-every", "1", "--resume", ckpt, NULL};
            if (!have) with[4] = NULL;
            start(&c, with, delay, NULL);
            if (!wait_for(&c, "ready")) {
                fprintf(stderr, "FAIL cldp-train ended before training:\n%s\n", c.out);
                test_failures++;
                finish(&c);
                break;
            }
            /* a moment within the training that remains: a resumed run has less ahead of it */
            double left = 1.0;
            if (have) {
                wait_for(&c, "of the run)");
                const char *r = strstr(c.out, "resumed from");
                unsigned long done = 0;
                if (r && (r = strstr(r, "(step "))) done = strtoul(r + 6, NULL, 10);
                left = done < TOTAL_STEPS ? (double)(TOTAL_STEPS - done) / TOTAL_STEPS : 0.05;
            }
            double at = test_uniform(0, 0.85 * train_ms * left); /* the tail of train_ms is evaluation and exit */
            int running = pump(&c, at);
            if (!running) { /* it finished first: the final resume below checks its checkpoint */
                after_end++;
                finish(&c);
                break;
            }
            kill(c.pid, SIGKILL);
            finish(&c);
            kills++;
            if (have && !strstr(c.out, "resumed from")) {
                fprintf(stderr, "FAIL a resumed run did not say where it resumed:\n%s\n", c.out);
                test_failures++;
            }
            char tmp[400];
            snprintf(tmp, sizeof tmp, "%s.tmp.%ld", ckpt, (long)c.pid);
            if (exists(tmp)) { /* killed between creating the temporary file and the rename */
                in_write++;
                unlink(tmp);
            }
            if (!exists(ckpt)) before_first++;
        }
        int resumed = 0;
        long long got = complete(delay, &resumed);
        resumes += resumed;
        if (got != ref) {
            fprintf(stderr, "FAIL run %d: param_checksum 0x%08llx after kills and resumes, uninterrupted 0x%08llx\n", run, got, ref);
            test_failures++;
        }
    }
    printf("  %d runs: %d SIGKILLs (%d during a checkpoint write, %d before the first checkpoint), %d runs completed before "
           "a kill; %d completed by --resume, every final param_checksum compared with the uninterrupted run's\n",
           runs, kills, in_write, before_first, after_end, resumes);

    /* SIGTERM and SIGINT: finish the step, checkpoint, exit 128 + signal; resuming completes exactly */
    const int sigs[2] = {SIGTERM, SIGINT};
    for (int i = 0; i < 2; i++) {
        unlink(ckpt);
        start(&c, every, delay, NULL);
        CHECK(wait_for(&c, "ready"));
        pump(&c, test_uniform(0, train_ms / 2));
        kill(c.pid, sigs[i]);
        int rc = finish(&c);
        if (rc == 0) {
            printf("  %s came after the run ended\n", sigs[i] == SIGTERM ? "SIGTERM" : "SIGINT");
            continue;
        }
        if (rc != 128 + sigs[i] || !strstr(c.out, "checkpoint written to") || !exists(ckpt)) {
            fprintf(stderr, "FAIL signal %d: exit %d (want %d) and output:\n%s\n", sigs[i], rc, 128 + sigs[i], c.out);
            test_failures++;
        }
        const char *line = strstr(c.out, sigs[i] == SIGTERM ? "cldp-train: SIGTERM" : "cldp-train: SIGINT");
        if (line) printf("  %.*s\n", (int)strcspn(line, "\n"), line);
        int resumed;
        CHECK(complete(NULL, &resumed) == ref && resumed);
    }

    /* a damaged checkpoint given to --resume: a message naming it and what is wrong, exit != 0 */
    {
        size_t n = 0;
        FILE *f = fopen(ckpt, "rb");
        unsigned char *b = NULL;
        if (f) {
            fseek(f, 0, SEEK_END);
            n = (size_t)ftell(f);
            fseek(f, 0, SEEK_SET);
            b = malloc(n);
            if (fread(b, 1, n, f) != n) n = 0;
            fclose(f);
        }
        CHECK(n > 100);
        char bad[400], err[400];
        snprintf(bad, sizeof bad, "%s/damaged.ckpt", dir);
        snprintf(err, sizeof err, "%s/stderr.txt", dir);
        if (n > 100) b[test_rand() % n] ^= (unsigned char)(1u << (test_rand() % 8));
        f = fopen(bad, "wb");
        if (f) {
            fwrite(b, 1, n, f);
            fclose(f);
        }
        free(b);
        const char *res[] = {"--resume", bad, NULL};
        start(&c, res, NULL, err);
        int rc = finish(&c);
        char msg[2048] = "";
        f = fopen(err, "r");
        if (f) {
            size_t k = fread(msg, 1, sizeof msg - 1, f);
            msg[k] = 0;
            fclose(f);
        }
        printf("  --resume of a damaged file: exit %d, %s", rc, msg);
        CHECK(rc != 0 && strstr(msg, bad) != NULL);
    }

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "test_kill_resume: could not remove %s\n", dir);
    return test_finish("test_kill_resume");
}
