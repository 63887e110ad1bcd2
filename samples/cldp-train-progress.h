/* cldp-train-progress.h — what cldp-train shows during an epoch: on a terminal, one line redrawn
 * in place (step, samples/s, the epoch's and the run's ETA, loss) that the epoch's result line
 * then replaces; off when stdout is not a terminal (plain lines only) and under --quiet. */
#include <sys/ioctl.h>

typedef struct progress {
    int on;           /* stdout is a terminal and --quiet was not given */
    double last;      /* when the line was last drawn (s, monotonic) */
    double step_time; /* seconds spent in steps in this process, and their number: the ETA's rate */
    size_t steps;
} progress;

static void progress_init(progress *p, int quiet)
{
    memset(p, 0, sizeof *p);
    p->on = !quiet && isatty(STDOUT_FILENO);
}

/* The terminal's width, so the line never wraps (a wrapped line cannot be redrawn with \r). */
static size_t progress_columns(void)
{
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20) return ws.ws_col;
    return 80;
}

static void progress_eta(char *buf, size_t cap, double s)
{
    if (s < 0 || s != s) s = 0;
    if (s < 60) snprintf(buf, cap, "%.0f s", s);
    else if (s < 3600) snprintf(buf, cap, "%d:%02d", (int)(s / 60), (int)fmod(s, 60));
    else snprintf(buf, cap, "%d:%02d:%02d", (int)(s / 3600), (int)fmod(s / 60, 60), (int)fmod(s, 60));
}

/* After step s (0-based) of epoch ep: counts the step's time, and at most ten times a second
 * (and on an epoch's last step) redraws the line. left: steps still to run after this one in
 * the whole run; samples, elapsed: this epoch's so far in this process. */
static void progress_step(progress *p, double step_s, int ep, int epochs, size_t s, size_t steps_per_epoch, size_t left,
                          double loss, double samples, double elapsed, double now)
{
    p->step_time += step_s;
    p->steps++;
    if (!p->on || (now - p->last < 0.1 && s + 1 != steps_per_epoch)) return;
    p->last = now;
    double per_step = p->step_time / (double)p->steps;
    char eta_epoch[32], eta_run[32], line[512];
    progress_eta(eta_epoch, sizeof eta_epoch, per_step * (double)(steps_per_epoch - s - 1));
    progress_eta(eta_run, sizeof eta_run, per_step * (double)left);
    /* the loss last: on a narrow terminal the line is cut, and the rate and ETA are what it is for */
    int len = snprintf(line, sizeof line, "epoch %d/%d  step %zu/%zu  %.0f samples/s  ETA %s (run %s)  loss %.4f", ep, epochs,
                       s + 1, steps_per_epoch, elapsed > 0 ? samples / elapsed : 0.0, eta_epoch, eta_run, loss);
    size_t width = progress_columns() - 1;
    if (len > 0 && (size_t)len > width) line[width] = 0;
    printf("\r%s\033[K", line); /* \033[K: erase what a longer earlier line left */
    fflush(stdout);
}

/* Erases the line, before the epoch's result or any message takes its place. */
static void progress_clear(progress *p)
{
    if (!p->on) return;
    printf("\r\033[K");
    fflush(stdout);
    p->last = 0;
}
