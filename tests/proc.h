/* proc.h — what the tests of the sample programs share: run a program as a child with a few
 * environment changes, read its stdout and stderr as it goes, wait for a line, and reap it with
 * its exit status or signal. A child silent for 120 s is killed and counted as a failure (a hang
 * guard, not a timing assertion). Uses testutil.h's test_failures. Define _DEFAULT_SOURCE before
 * any header (setgroups). */
#ifndef CLDP_TEST_PROC_H
#define CLDP_TEST_PROC_H

#ifndef _DEFAULT_SOURCE
#error "define _DEFAULT_SOURCE before any header: proc.h uses setgroups"
#endif
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { PROC_OUT = 1 << 16, PROC_HANG_MS = 120000 };

/* >= 0: the next children run as this user and group (a test running as root uses it to meet
 * permission checks that root would pass). */
static long proc_as_uid = -1;

typedef struct proc {
    pid_t pid;
    int fd[2];            /* read ends of its stdout, stderr; -1 after EOF */
    char out[PROC_OUT];   /* what it printed so far on stdout */
    char err[PROC_OUT];   /* and on stderr */
    size_t len[2];
    int exited, code;     /* after proc_finish: exited normally with `code`, */
    int signaled, sig;    /* or was killed by `sig` */
} proc;

static inline double proc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* Starts argv[0] with argv (NULL-terminated). `env` is NULL or a NULL-terminated list of
 * "NAME=value" to set and "NAME" to unset, in the child only. */
static inline void proc_start(proc *p, const char *const *argv, const char *const *env)
{
    int po[2], pe[2];
    if (pipe(po) != 0 || pipe(pe) != 0) {
        perror("pipe");
        exit(1);
    }
    fflush(stdout);
    fflush(stderr);
    p->pid = fork();
    if (p->pid < 0) {
        perror("fork");
        exit(1);
    }
    if (p->pid == 0) {
        dup2(po[1], STDOUT_FILENO);
        dup2(pe[1], STDERR_FILENO);
        close(po[0]);
        close(po[1]);
        close(pe[0]);
        close(pe[1]);
        for (size_t i = 0; env && env[i]; i++) {
            const char *eq = strchr(env[i], '=');
            if (!eq) {
                unsetenv(env[i]);
                continue;
            }
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)(eq - env[i]), env[i]);
            setenv(name, eq + 1, 1);
        }
        if (proc_as_uid >= 0 && (setgroups(0, NULL) != 0 || setgid((gid_t)proc_as_uid) != 0 || setuid((uid_t)proc_as_uid) != 0)) {
            fprintf(stderr, "cannot become uid %ld: %s\n", proc_as_uid, strerror(errno));
            _exit(127);
        }
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    p->fd[0] = po[0];
    p->fd[1] = pe[0];
    p->len[0] = p->len[1] = 0;
    p->out[0] = p->err[0] = 0;
    p->exited = p->signaled = 0;
    p->code = p->sig = -1;
}

/* Reads what the child printed for at most `ms` (negative: until both streams end). Returns 0
 * once both have ended, 1 while it is still running. */
static inline int proc_pump(proc *p, double ms)
{
    double end = proc_now_ms() + (ms < 0 ? PROC_HANG_MS : ms);
    while (p->fd[0] >= 0 || p->fd[1] >= 0) {
        double left = end - proc_now_ms();
        if (left <= 0) {
            if (ms < 0) {
                fprintf(stderr, "FAIL %s printed nothing for %d s: killed\n", "the child", PROC_HANG_MS / 1000);
                test_failures++;
                kill(p->pid, SIGKILL);
                end = proc_now_ms() + PROC_HANG_MS;
                continue;
            }
            return 1;
        }
        struct pollfd pf[2] = {{p->fd[0], POLLIN, 0}, {p->fd[1], POLLIN, 0}};
        int r = poll(pf, 2, (int)left + 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) continue;
        if (ms < 0) end = proc_now_ms() + PROC_HANG_MS; /* output: not hung */
        for (int k = 0; k < 2; k++) {
            if (p->fd[k] < 0 || !(pf[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            char buf[4096];
            ssize_t got = read(p->fd[k], buf, sizeof buf);
            if (got <= 0) {
                close(p->fd[k]);
                p->fd[k] = -1;
                continue;
            }
            char *dst = k ? p->err : p->out;
            size_t room = PROC_OUT - 1 - p->len[k], n = (size_t)got < room ? (size_t)got : room;
            memcpy(dst + p->len[k], buf, n);
            p->len[k] += n;
            dst[p->len[k]] = 0;
        }
    }
    return 0;
}

/* Reads until `needle` appears on stdout or the output ends; returns whether it appeared. A
 * child that stays silent for 120 s meanwhile is killed, and fails the test. */
static inline int proc_wait_for(proc *p, const char *needle)
{
    double quiet_since = proc_now_ms();
    size_t seen = p->len[0] + p->len[1];
    while (!strstr(p->out, needle) && (p->fd[0] >= 0 || p->fd[1] >= 0)) {
        proc_pump(p, 50);
        if (p->len[0] + p->len[1] != seen) {
            seen = p->len[0] + p->len[1];
            quiet_since = proc_now_ms();
        } else if (proc_now_ms() - quiet_since > PROC_HANG_MS) {
            fprintf(stderr, "FAIL the child printed nothing for %d s while we waited for \"%s\": killed\n", PROC_HANG_MS / 1000, needle);
            test_failures++;
            kill(p->pid, SIGKILL);
            break;
        }
    }
    return strstr(p->out, needle) != NULL;
}

/* Reads to the end, reaps the child and returns its exit status (128 + the signal if killed). */
static inline int proc_finish(proc *p)
{
    proc_pump(p, -1);
    int status = 0;
    while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR) {
    }
    p->exited = WIFEXITED(status);
    p->signaled = WIFSIGNALED(status);
    p->code = p->exited ? WEXITSTATUS(status) : -1;
    p->sig = p->signaled ? WTERMSIG(status) : 0;
    return p->exited ? p->code : 128 + p->sig;
}

/* Runs to the end; returns the exit status as proc_finish does. */
static inline int proc_run(proc *p, const char *const *argv, const char *const *env)
{
    proc_start(p, argv, env);
    return proc_finish(p);
}

/* Prints what a failed case ran and what it printed. */
static inline void proc_dump(const proc *p, const char *what)
{
    fprintf(stderr, "  (%s) exit %s %d\n  stdout:\n%s\n  stderr:\n%s\n", what, p->signaled ? "by signal" : "status",
            p->signaled ? p->sig : p->code, p->out, p->err);
}

static inline int file_exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

#endif
