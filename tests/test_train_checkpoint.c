/* test_train_checkpoint — cldp-train's handling of its checkpoint file, on the real program: a
 * --checkpoint that is not a checkpoint (notes.txt) or not a regular file (a FIFO) is refused
 * before training, --force overwrites the first; a missing, non-directory or read-only location is
 * refused before training; a second SIGINT during the checkpoint write that the first one started
 * does not cut the write short (the file exists and resumes); --resume without --checkpoint keeps
 * saving to the resumed file, and says so; a second cldp-train on a checkpoint in use is refused,
 * naming the first one's pid, while a lock left by a killed run does not block.
 * Usage: test_train_checkpoint PATH/TO/cldp-train */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* setgroups, in proc.h */
#undef NDEBUG
#include "proc.h"

#include <dirent.h>

static const char *train_exe;
static char dir[256];

/* cldp-train on the embedded subset, small and quick, with `extra` options (NULL-terminated). */
static void train(proc *p, const char *epochs, const char *const *extra, const char *const *env, int wait)
{
    const char *argv[40] = {train_exe, "--embedded", "--hidden", "32", "--batch", "10", "--epochs", epochs, "--seed", "7"};
    size_t n = 10;
    for (size_t i = 0; extra && extra[i] && n < 39; i++) argv[n++] = extra[i];
    argv[n] = NULL;
    proc_start(p, argv, env);
    if (wait) proc_finish(p);
}

static void path_in(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", dir, name); }

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "test_train_checkpoint: cannot write %s\n", path);
        exit(1);
    }
}

static size_t read_head(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    return n;
}

/* Expects a refusal before training: status 2, every needle in stderr, no training started. */
static void expect_refused(const proc *p, const char *what, const char *const *needles)
{
    int ok = p->exited && p->code == 2 && !strstr(p->out, "ready");
    for (size_t i = 0; needles[i]; i++) ok = ok && strstr(p->err, needles[i]);
    if (!ok) {
        fprintf(stderr, "FAIL %s: want exit status 2 before training, with", what);
        for (size_t i = 0; needles[i]; i++) fprintf(stderr, " \"%s\"", needles[i]);
        fprintf(stderr, " in the message\n");
        proc_dump(p, what);
        test_failures++;
    } else {
        printf("  %s: %s", what, p->err);
    }
}

/* Only the files a case made may be left in the directory: no probe or temporary file. */
static void expect_no_stray_files(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strstr(e->d_name, ".tmp.") || strstr(e->d_name, ".lock")) {
            fprintf(stderr, "FAIL a file was left behind in %s: %s\n", dir, e->d_name);
            test_failures++;
        }
    }
    if (d) closedir(d);
}

/* ---- the file and its location, checked before training ---------------------------------- */

static void test_not_a_checkpoint(void)
{
    proc p;
    char notes[320], fifo[320], empty[320], head[64];
    path_in(notes, sizeof notes, "notes.txt");
    path_in(fifo, sizeof fifo, "fifo.ckpt");
    path_in(empty, sizeof empty, "empty.ckpt");
    const char *text = "my notes: do not lose these\n";
    write_text(notes, text);
    const char *with_notes[] = {"--checkpoint", notes, NULL};
    train(&p, "1", with_notes, NULL, 1);
    const char *want[] = {notes, "not a cldp checkpoint", "--force", NULL};
    expect_refused(&p, "--checkpoint notes.txt", want);
    read_head(notes, head, sizeof head);
    CHECK(!strcmp(head, text)); /* untouched */

    const char *forced[] = {"--checkpoint", notes, "--force", NULL};
    train(&p, "1", forced, NULL, 1);
    CHECK(p.exited && p.code == 0);
    CHECK(read_head(notes, head, sizeof head) >= 8 && !memcmp(head, "CLDPCKPT", 8));
    /* now that it is a checkpoint, a new run may overwrite it without --force */
    train(&p, "1", with_notes, NULL, 1);
    if (!(p.exited && p.code == 0)) {
        fprintf(stderr, "FAIL a run refused to overwrite a cldp checkpoint\n");
        proc_dump(&p, "--checkpoint over a checkpoint");
        test_failures++;
    }
    /* an empty file holds nothing to lose (mktemp makes one) */
    write_text(empty, "");
    const char *with_empty[] = {"--checkpoint", empty, NULL};
    train(&p, "1", with_empty, NULL, 1);
    CHECK(p.exited && p.code == 0);
    CHECK(read_head(empty, head, sizeof head) >= 8 && !memcmp(head, "CLDPCKPT", 8));

    /* not a regular file: the save's rename would replace the node (/dev/null, as root) */
    CHECK(mkfifo(fifo, 0644) == 0);
    const char *with_fifo[] = {"--checkpoint", fifo, "--force", NULL};
    train(&p, "1", with_fifo, NULL, 1);
    const char *want_fifo[] = {fifo, "FIFO", NULL};
    expect_refused(&p, "--checkpoint a FIFO", want_fifo);
    struct stat sb;
    CHECK(lstat(fifo, &sb) == 0 && S_ISFIFO(sb.st_mode));
    unlink(fifo);
    unlink(notes);
    unlink(empty);
    expect_no_stray_files();
}

static void test_location(void)
{
    proc p;
    char missing[320], missing_dir[320], file[320], under_file[320], ro[320], in_ro[320];
    path_in(missing_dir, sizeof missing_dir, "nodir");
    path_in(missing, sizeof missing, "nodir/x.ckpt");
    path_in(file, sizeof file, "plain.txt");
    path_in(under_file, sizeof under_file, "plain.txt/x.ckpt");
    write_text(file, "x\n");

    const char *a1[] = {"--checkpoint", missing, NULL};
    train(&p, "1", a1, NULL, 1);
    const char *w1[] = {missing, missing_dir, "does not exist", NULL};
    expect_refused(&p, "--checkpoint nodir/x.ckpt", w1);
    CHECK(!file_exists(missing_dir));

    const char *a2[] = {"--checkpoint", under_file, NULL};
    train(&p, "1", a2, NULL, 1);
    const char *w2[] = {under_file, "not a directory", NULL};
    expect_refused(&p, "--checkpoint plain.txt/x.ckpt", w2);

    path_in(ro, sizeof ro, "read-only");
    path_in(in_ro, sizeof in_ro, "read-only/x.ckpt");
    CHECK(mkdir(ro, 0555) == 0);
    /* root writes anywhere: as root, the case runs as nobody (65534), in a directory it may enter */
    if (geteuid() == 0) {
        proc_as_uid = 65534;
        CHECK(chmod(dir, 0755) == 0);
    }
    const char *a3[] = {"--checkpoint", in_ro, NULL};
    train(&p, "1", a3, NULL, 1);
    const char *w3[] = {in_ro, "not writable", NULL};
    expect_refused(&p, "--checkpoint in a read-only directory", w3);
    proc_as_uid = -1;
    chmod(dir, 0700);
    rmdir(ro);
    unlink(file);
    expect_no_stray_files();
}

/* ---- signals during the save --------------------------------------------------------------- */

/* The report: a second Ctrl-C 2 ms after the first, while the checkpoint the first one asked for
 * was being written, left only the .tmp.<pid> file. The save is slowed (between its fsync and its
 * rename) so that the second SIGINT surely lands inside it: it is sent once the temporary file
 * exists, 2 ms later. */
static void test_second_sigint(void)
{
    proc p;
    char ckpt[320], tmp[400];
    path_in(ckpt, sizeof ckpt, "sig.ckpt");
    const char *with[] = {"--checkpoint", ckpt, NULL};
    const char *slow[] = {"CLDP_TEST_CHECKPOINT_DELAY_MS=400", NULL};
    train(&p, "4", with, slow, 0);
    if (!proc_wait_for(&p, "ready")) {
        proc_finish(&p);
        proc_dump(&p, "double SIGINT: the run never started");
        test_failures++;
        return;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", ckpt, (long)p.pid);
    kill(p.pid, SIGINT);
    int running = 1;
    while (!file_exists(tmp) && (running = proc_pump(&p, 0.1))) {
    }
    if (!running) {
        proc_finish(&p);
        fprintf(stderr, "FAIL double SIGINT: cldp-train ended without starting a checkpoint write after the first SIGINT\n");
        proc_dump(&p, "double SIGINT");
        test_failures++;
        return;
    }
    struct timespec ms2 = {0, 2000000};
    nanosleep(&ms2, NULL);
    kill(p.pid, SIGINT);
    proc_finish(&p);
    int ok = p.exited && p.code == 130 && strstr(p.out, "checkpoint written to") && file_exists(ckpt) && !file_exists(tmp) &&
             strstr(p.err, "during the checkpoint write");
    if (!ok) {
        fprintf(stderr, "FAIL a second SIGINT 2 ms after the first, during the write: want exit status 130 (not death by the "
                        "signal), the checkpoint %s written and no %s left\n", ckpt, tmp);
        proc_dump(&p, "double SIGINT");
        test_failures++;
    } else {
        printf("  second SIGINT during the write: %s", p.err);
    }
    unlink(tmp);
    /* the checkpoint loads, and the run completes from it */
    const char *res[] = {"--resume", ckpt, NULL};
    train(&p, "4", res, NULL, 1);
    if (!(p.exited && p.code == 0 && strstr(p.out, "resumed from"))) {
        fprintf(stderr, "FAIL the checkpoint written through a second SIGINT does not resume\n");
        proc_dump(&p, "--resume after the double SIGINT");
        test_failures++;
    }
    unlink(ckpt);
    expect_no_stray_files();
}

/* ---- --resume without --checkpoint ------------------------------------------------------- */

static const char *checksum(const proc *p)
{
    const char *c = strstr(p->out, "\"param_checksum\":\"0x");
    return c ? c + 18 : "none";
}

static void test_resume_keeps_saving(void)
{
    proc p;
    char ckpt[320];
    path_in(ckpt, sizeof ckpt, "res.ckpt");
    const char *with[] = {"--checkpoint", ckpt, NULL};
    train(&p, "4", with, NULL, 0);
    CHECK(proc_wait_for(&p, "ready"));
    kill(p.pid, SIGTERM);
    proc_finish(&p);
    if (!(p.exited && p.code == 143 && file_exists(ckpt))) {
        fprintf(stderr, "FAIL SIGTERM did not leave a checkpoint to resume\n");
        proc_dump(&p, "SIGTERM");
        test_failures++;
        return;
    }
    /* resumed without --checkpoint: it says where it saves, and completes the run into the file */
    const char *res[] = {"--resume", ckpt, "--json", NULL};
    train(&p, "4", res, NULL, 1);
    char want[400];
    snprintf(want, sizeof want, "saving the run to %s", ckpt);
    if (!(p.exited && p.code == 0 && strstr(p.out, want))) {
        fprintf(stderr, "FAIL --resume without --checkpoint: want exit 0 and \"%s\"\n", want);
        proc_dump(&p, "--resume without --checkpoint");
        test_failures++;
    }
    char sum[16];
    snprintf(sum, sizeof sum, "%.10s", checksum(&p));
    /* so the file now holds the complete run: resuming it trains nothing and says so */
    train(&p, "4", res, NULL, 1);
    const char *last = strstr(p.out, "cldp-train: test accuracy");
    if (!(p.exited && p.code == 0 && strstr(p.out, "already complete") && last && !strstr(last, "samples/s") &&
          !strncmp(checksum(&p), sum, 10))) {
        fprintf(stderr, "FAIL --resume of the completed run (saved by a --resume without --checkpoint): want \"already "
                        "complete\", no samples/s figure, and the same param_checksum %s\n", sum);
        proc_dump(&p, "--resume of a complete run");
        test_failures++;
    } else {
        printf("  %.*s\n", (int)strcspn(strstr(p.out, "cldp-train: the run"), "\n"), strstr(p.out, "cldp-train: the run"));
    }
    unlink(ckpt);
    expect_no_stray_files();
}

/* ---- two processes on one checkpoint --------------------------------------------------------- */

static void test_lock(void)
{
    proc a, b;
    char ckpt[320], lock[400], pid[32];
    path_in(ckpt, sizeof ckpt, "shared.ckpt");
    snprintf(lock, sizeof lock, "%s.lock", ckpt);
    const char *with[] = {"--checkpoint", ckpt, NULL};
    train(&a, "50", with, NULL, 0);
    CHECK(proc_wait_for(&a, "ready"));
    kill(a.pid, SIGSTOP); /* it holds the lock while it is stopped, for as long as this takes */
    snprintf(pid, sizeof pid, "pid %ld", (long)a.pid);
    train(&b, "1", with, NULL, 1);
    const char *want[] = {ckpt, "in use", pid, NULL};
    expect_refused(&b, "a second cldp-train on one checkpoint", want);
    kill(a.pid, SIGKILL);
    proc_finish(&a);
    /* the killed run's lock file is left, but no process holds its lock: it does not block */
    train(&b, "1", with, NULL, 1);
    if (!(b.exited && b.code == 0)) {
        fprintf(stderr, "FAIL the lock of a killed cldp-train still blocks the checkpoint\n");
        proc_dump(&b, "after a killed run");
        test_failures++;
    }
    CHECK(!file_exists(lock)); /* removed at the end of a run */
    unlink(ckpt);
    expect_no_stray_files();
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_train_checkpoint PATH/TO/cldp-train\n");
        return 2;
    }
    train_exe = argv[1];
    test_devices("test_train_checkpoint", 1);
    signal(SIGPIPE, SIG_IGN);
    const char *tmpdir = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/cldp-train-ckpt-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(dir)) {
        perror("test_train_checkpoint: mkdtemp");
        return 1;
    }
    test_not_a_checkpoint();
    test_location();
    test_second_sigint();
    test_resume_keeps_saving();
    test_lock();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "test_train_checkpoint: could not remove %s\n", dir);
    return test_finish("test_train_checkpoint");
}
