/* test_checkpoint — checkpoints continue a run exactly: save after k steps, load into a fresh
 * trainer on the same devices and run m steps gives bitwise the parameters of the run that never
 * stopped (Adam and SGD); on one device instead of two it gives them within the tolerance of
 * test_equivalence (Adam: |a - b| <= 2e-5 + 1e-3·|b|). The application blob round-trips. Wrong
 * model, wrong version, missing file, small buffer are refused with the right status and the
 * trainer unchanged. Every bit of every byte of a small checkpoint flipped, and every truncation,
 * is refused with CLDP_ERR_FORMAT; the same flips with the CRC recomputed (to reach the section
 * checks) are refused or load exactly what the file says; never a crash, never a half load. A
 * save over a FIFO, a directory or a link to a FIFO is refused, and the node is left alone. */
#define _POSIX_C_SOURCE 200809L
#undef NDEBUG
#include "trainer.h"
#include "testutil.h"

#include <sys/stat.h>
#include <unistd.h>

enum { IN = 31, HID = 40, OUT = 6, BATCH = 45, K = 4, M = 5 };

static char dir[256];
/* The every-byte test saves thousands of files: on tmpfs (/dev/shm) each fsync is free, on a disk
 * it costs milliseconds. The other tests write to `dir`, on the disk. */
static char fuzzdir[256];

static cldp_model *make_model(size_t in, size_t hid, cldp_activation act, size_t out)
{
    cldp_model *m = NULL;
    CHECK_OK(cldp_model_create(in, &m));
    CHECK_OK(cldp_model_add_dense(m, hid, act));
    CHECK_OK(cldp_model_add_dense(m, out, CLDP_ACT_NONE));
    return m;
}

/* A fixed split ("even", "3,1"): with the speed-aware "auto" split the shards follow timings, and
 * even two uninterrupted runs differ in the last bits. */
static cldp_trainer *make_trainer(const cldp_model *m, const char *devices, const char *split, cldp_optimizer opt, uint64_t seed,
                                  size_t batch)
{
    cldp_trainer_options o;
    cldp_trainer_options_init(&o);
    o.devices = devices;
    o.batch = batch;
    o.optimizer = opt;
    o.learning_rate = opt == CLDP_OPT_SGD ? 0.1f : 0.01f;
    o.weight_decay = 1e-3f;
    o.seed = seed;
    o.split = split;
    cldp_trainer *t = NULL;
    CHECK_OK(cldp_trainer_create(m, &o, &t));
    if (!t) {
        fprintf(stderr, "test_checkpoint: cannot create a trainer on \"%s\": %s\n", devices, cldp_last_error());
        exit(1);
    }
    return t;
}

/* Step s of the run: batch s of the data, and a learning rate that depends on the global step, as
 * a schedule would. */
static void run_steps(cldp_trainer *t, const float *x, const int32_t *y, int from, int to)
{
    for (int s = from; s < to; s++) {
        CHECK_OK(cldp_trainer_set_learning_rate(t, (t->opts.optimizer == CLDP_OPT_SGD ? 0.1f : 0.01f) / (float)(1 + s)));
        CHECK_OK(cldp_trainer_step(t, x + (size_t)s * BATCH * IN, y + (size_t)s * BATCH, BATCH - (size_t)(s % 3), NULL));
    }
}

static float *params_of(const cldp_trainer *t)
{
    size_t np = t->model.nparams;
    float *p = malloc(np * sizeof(float));
    CHECK_OK(cldp_trainer_get_params(t, p, np));
    return p;
}

/* Everything a checkpoint restores, for "unchanged" and "loaded exactly" comparisons. */
typedef struct snapshot {
    size_t np;
    float *master, *m1, *m2;
    uint64_t t;
    cldp_trainer_options opts;
    cldp_balancer bal;
} snapshot;

static snapshot snap(const cldp_trainer *t)
{
    snapshot s = {t->model.nparams, NULL, NULL, NULL, t->t, t->opts, *t->bal};
    size_t b = s.np * sizeof(float);
    s.master = malloc(b);
    s.m1 = malloc(b);
    s.m2 = malloc(b);
    memcpy(s.master, t->master, b);
    memcpy(s.m1, t->opt_m, b);
    memcpy(s.m2, t->opt_v, b);
    return s;
}
static int same_state(const cldp_trainer *t, const snapshot *s)
{
    size_t b = s->np * sizeof(float);
    const cldp_trainer_options *a = &t->opts, *o = &s->opts; /* field by field: padding is not copied */
    return !memcmp(t->master, s->master, b) && !memcmp(t->opt_m, s->m1, b) && !memcmp(t->opt_v, s->m2, b) && t->t == s->t &&
           a->optimizer == o->optimizer && a->learning_rate == o->learning_rate && a->momentum == o->momentum &&
           a->weight_decay == o->weight_decay && a->beta1 == o->beta1 && a->beta2 == o->beta2 && a->epsilon == o->epsilon &&
           a->batch == o->batch && a->seed == o->seed && !memcmp(t->bal->weight, s->bal.weight, sizeof s->bal.weight) &&
           !memcmp(t->bal->ms_per_sample, s->bal.ms_per_sample, sizeof s->bal.ms_per_sample) &&
           !memcmp(t->bal->samples, s->bal.samples, sizeof s->bal.samples) && t->bal->steps == s->bal.steps &&
           t->bal->enabled == s->bal.enabled;
}
static void restore(cldp_trainer *t, const snapshot *s)
{
    size_t b = s->np * sizeof(float);
    memcpy(t->master, s->master, b);
    memcpy(t->opt_m, s->m1, b);
    memcpy(t->opt_v, s->m2, b);
    t->t = s->t;
    t->opts = s->opts;
    *t->bal = s->bal;
    t->dirty = 1;
}
static void free_snap(snapshot *s)
{
    free(s->master);
    free(s->m1);
    free(s->m2);
}

static unsigned char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 1);
    if (fread(b, 1, *n, f) != *n) CHECK(0);
    fclose(f);
    return b;
}
static void write_all(const char *path, const unsigned char *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(b, 1, n, f) == n);
    if (f) fclose(f);
}
static void fix_crc(unsigned char *b, size_t n)
{
    uint32_t c = cldp_crc32(b, n - 4);
    for (int i = 0; i < 4; i++) b[n - 4 + i] = (unsigned char)(c >> (8 * i));
}

/* ---- exact continuation -------------------------------------------------------------------- */

static void test_resume(cldp_optimizer opt, const cldp_model *m, cldp_trainer *fresh2, cldp_trainer *fresh1, const float *x,
                        const int32_t *y)
{
    const char *name = opt == CLDP_OPT_SGD ? "sgd" : "adam";
    char path[512];
    snprintf(path, sizeof path, "%s/resume-%s.ckpt", dir, name);
    unsigned char blob[300], back[300];
    for (size_t i = 0; i < sizeof blob; i++) blob[i] = (unsigned char)test_rand();

    /* Adam's run uses an uneven split, which the checkpoint carries to fresh2 (built "even") */
    const char *split = opt == CLDP_OPT_ADAM ? "3,1" : "even";
    cldp_trainer *a = make_trainer(m, test_devices("test_checkpoint", 2), split, opt, 11, BATCH);
    run_steps(a, x, y, 0, K);
    CHECK_OK(cldp_trainer_save_checkpoint(a, path, blob, sizeof blob));
    run_steps(a, x, y, K, K + M);
    float *pa = params_of(a);

    /* fresh2 was built with another seed and Adam's defaults: the load must replace all of it */
    size_t got = 0;
    memset(back, 0, sizeof back);
    CHECK_OK(cldp_trainer_load_checkpoint(fresh2, path, back, sizeof back, &got));
    CHECK(got == sizeof blob && !memcmp(back, blob, sizeof blob));
    CHECK(fresh2->opts.optimizer == opt && fresh2->t == (uint64_t)K);
    double wa[2], wb[2];
    CHECK_OK(cldp_trainer_get_split(a, wa, NULL, 2));
    CHECK_OK(cldp_trainer_get_split(fresh2, wb, NULL, 2));
    CHECK(wa[0] == wb[0] && wa[1] == wb[1]);
    run_steps(fresh2, x, y, K, K + M);
    float *pb = params_of(fresh2);
    size_t np = m->nparams, diff = 0;
    for (size_t i = 0; i < np; i++) diff += memcmp(&pa[i], &pb[i], sizeof(float)) != 0;
    printf("  %s: resumed after %d steps on %zu devices, %d more steps: %zu of %zu parameters differ in their bits (want 0)\n", name, K,
           cldp_trainer_device_count(fresh2), M, diff, np);
    CHECK(diff == 0);

    CHECK_OK(cldp_trainer_load_checkpoint(fresh1, path, NULL, 0, &got));
    CHECK(got == sizeof blob);
    run_steps(fresh1, x, y, K, K + M);
    float *pc = params_of(fresh1);
    double *ref = malloc(np * sizeof(double)), worst = 0;
    for (size_t i = 0; i < np; i++) {
        ref[i] = pa[i];
        double e = fabs((double)pc[i] - ref[i]);
        if (e > worst) worst = e;
    }
    double atol = opt == CLDP_OPT_SGD ? 2e-6 : 2e-5, rtol = opt == CLDP_OPT_SGD ? 1e-4 : 1e-3;
    printf("  %s: resumed on 1 device instead of 2: worst |diff| %.3g (tolerance %.0e + %.0e·|ref|)\n", name, worst, atol, rtol);
    test_close("resume on 1 device vs uninterrupted on 2", pc, ref, np, atol, rtol);
    free(ref);
    free(pa);
    free(pb);
    free(pc);
    cldp_trainer_destroy(a);
}

/* ---- refusals ------------------------------------------------------------------------------ */

static void test_refusals(const cldp_model *m, cldp_trainer *t2, const float *x, const int32_t *y)
{
    char path[512], other[512], bad[512];
    snprintf(path, sizeof path, "%s/good.ckpt", dir);
    snprintf(other, sizeof other, "%s/other-model.ckpt", dir);
    snprintf(bad, sizeof bad, "%s/bad.ckpt", dir);
    unsigned char blob[64];
    for (size_t i = 0; i < sizeof blob; i++) blob[i] = (unsigned char)test_rand();
    CHECK_OK(cldp_trainer_save_checkpoint(t2, path, blob, sizeof blob));
    char tmpname[600];
    snprintf(tmpname, sizeof tmpname, "%s.tmp.%ld", path, (long)getpid());
    CHECK(access(tmpname, F_OK) != 0); /* renamed away */
    run_steps(t2, x, y, 0, 1);          /* so that the trainer differs from the file */
    snapshot before = snap(t2);

    /* a wrong model: other width, other activation */
    cldp_model *m2 = make_model(IN, HID + 1, CLDP_ACT_RELU, OUT), *m3 = make_model(IN, HID, CLDP_ACT_TANH, OUT);
    cldp_trainer *w = make_trainer(m2, test_devices("test_checkpoint", 1), "even", CLDP_OPT_ADAM, 3, 8), *w3 = make_trainer(m3, test_devices("test_checkpoint", 1), "even", CLDP_OPT_ADAM, 3, 8);
    CHECK_OK(cldp_trainer_save_checkpoint(w, other, NULL, 0));
    CHECK_STATUS(cldp_trainer_load_checkpoint(t2, other, NULL, 0, NULL), CLDP_ERR_FORMAT);
    CHECK(strstr(cldp_last_error(), "wrong model") && strstr(cldp_last_error(), other));
    printf("  wrong model: %s\n", cldp_last_error());
    CHECK(same_state(t2, &before));
    snapshot wb = snap(w3);
    CHECK_STATUS(cldp_trainer_load_checkpoint(w3, path, NULL, 0, NULL), CLDP_ERR_FORMAT);
    CHECK(strstr(cldp_last_error(), "wrong model"));
    CHECK(same_state(w3, &wb));
    free_snap(&wb);

    /* another format version, with a valid CRC so that the version check is what refuses it */
    size_t n;
    unsigned char *b = read_all(path, &n);
    b[8] = 9;
    fix_crc(b, n);
    write_all(bad, b, n);
    CHECK_STATUS(cldp_trainer_load_checkpoint(t2, bad, NULL, 0, NULL), CLDP_ERR_FORMAT);
    CHECK(strstr(cldp_last_error(), "version") && strstr(cldp_last_error(), bad));
    printf("  wrong version: %s\n", cldp_last_error());
    CHECK(same_state(t2, &before));
    free(b);

    /* missing file, a directory, a blob larger than the buffer, a save into a missing directory */
    char missing[512];
    snprintf(missing, sizeof missing, "%s/no-such.ckpt", dir);
    CHECK_STATUS(cldp_trainer_load_checkpoint(t2, missing, NULL, 0, NULL), CLDP_ERR_IO);
    CHECK(strstr(cldp_last_error(), missing));
    CHECK_STATUS(cldp_trainer_load_checkpoint(t2, dir, NULL, 0, NULL), CLDP_ERR_IO);
    unsigned char small[63];
    CHECK_STATUS(cldp_trainer_load_checkpoint(t2, path, small, sizeof small, NULL), CLDP_ERR_INVALID_ARGUMENT);
    CHECK(same_state(t2, &before));
    snprintf(missing, sizeof missing, "%s/no-such-dir/x.ckpt", dir);
    CHECK_STATUS(cldp_trainer_save_checkpoint(t2, missing, NULL, 0), CLDP_ERR_IO);
    printf("  save into a missing directory: %s\n", cldp_last_error());
    CHECK_STATUS(cldp_trainer_save_checkpoint(NULL, path, NULL, 0), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_trainer_save_checkpoint(t2, path, NULL, 5), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_trainer_load_checkpoint(t2, NULL, NULL, 0, NULL), CLDP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cldp_trainer_load_checkpoint(t2, path, NULL, 4, NULL), CLDP_ERR_INVALID_ARGUMENT);

    /* non-finite parameters are not saved: such a run cannot be resumed */
    float keep = t2->master[3];
    t2->master[3] = NAN;
    CHECK_STATUS(cldp_trainer_save_checkpoint(t2, other, NULL, 0), CLDP_ERR_NONFINITE);
    t2->master[3] = keep;

    /* the good file still loads, exactly (the blob too) */
    unsigned char back[64];
    size_t got = 0;
    CHECK_OK(cldp_trainer_load_checkpoint(t2, path, back, sizeof back, &got));
    CHECK(got == sizeof blob && !memcmp(back, blob, sizeof blob));
    free_snap(&before);
    cldp_trainer_destroy(w);
    cldp_trainer_destroy(w3);
    cldp_model_destroy(m2);
    cldp_model_destroy(m3);
    (void)m;
}

/* ---- targets that are not regular files ------------------------------------------------- */

/* Saving renames a temporary file over the path: over a device node, a FIFO or a symbolic link
 * to one, that would replace the node (cldp-train --checkpoint /dev/null as root did). Such a
 * target is refused with CLDP_ERR_IO naming the path and what it is, and is left as it was. A
 * FIFO and a directory stand in for /dev/null, which a test must not risk. */
static void test_not_regular(cldp_trainer *t2)
{
    char fifo[512], sub[512], link[512], tmpname[600];
    snprintf(fifo, sizeof fifo, "%s/fifo.ckpt", dir);
    snprintf(sub, sizeof sub, "%s/dir.ckpt", dir);
    snprintf(link, sizeof link, "%s/link-to-fifo.ckpt", dir);
    CHECK(mkfifo(fifo, 0644) == 0);
    CHECK(mkdir(sub, 0755) == 0);
    CHECK(symlink(fifo, link) == 0);
    const struct {
        const char *path, *kind;
    } cases[] = {{fifo, "FIFO"}, {sub, "directory"}, {link, "FIFO"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_STATUS(cldp_trainer_save_checkpoint(t2, cases[i].path, NULL, 0), CLDP_ERR_IO);
        const char *msg = cldp_last_error();
        if (!strstr(msg, cases[i].path) || !strstr(msg, cases[i].kind)) {
            fprintf(stderr, "FAIL saving over %s: the message should name the path and say it is a %s: \"%s\"\n", cases[i].path,
                    cases[i].kind, msg);
            test_failures++;
        }
        printf("  save over a %s: %s\n", cases[i].kind, msg);
        snprintf(tmpname, sizeof tmpname, "%s.tmp.%ld", cases[i].path, (long)getpid());
        CHECK(access(tmpname, F_OK) != 0); /* no temporary file left behind */
    }
    struct stat sb;
    CHECK(lstat(fifo, &sb) == 0 && S_ISFIFO(sb.st_mode)); /* all three still what they were */
    CHECK(lstat(sub, &sb) == 0 && S_ISDIR(sb.st_mode));
    CHECK(lstat(link, &sb) == 0 && S_ISLNK(sb.st_mode));
    unlink(link);
    unlink(fifo);
    rmdir(sub);
}

/* ---- damaged files at every byte ----------------------------------------------------------- */

static void test_every_byte(void)
{
    cldp_model *m = make_model(5, 4, CLDP_ACT_RELU, 3);
    cldp_trainer *t = make_trainer(m, test_devices("test_checkpoint", 1), NULL, CLDP_OPT_ADAM, 5, 8);
    float x[8 * 5];
    int32_t y[8];
    test_fill(x, 8 * 5, -1, 1);
    for (int i = 0; i < 8; i++) y[i] = (int32_t)(test_rand() % 3);
    CHECK_OK(cldp_trainer_step(t, x, y, 8, NULL));
    char path[512], bad[512], resaved[512];
    snprintf(path, sizeof path, "%s/tiny.ckpt", fuzzdir);
    snprintf(bad, sizeof bad, "%s/tiny-bad.ckpt", fuzzdir);
    snprintf(resaved, sizeof resaved, "%s/tiny-resaved.ckpt", fuzzdir);
    unsigned char blob[16];
    for (size_t i = 0; i < sizeof blob; i++) blob[i] = (unsigned char)test_rand();
    CHECK_OK(cldp_trainer_save_checkpoint(t, path, blob, sizeof blob));
    size_t n;
    unsigned char *good = read_all(path, &n), *b = malloc(n);
    CHECK(good != NULL);
    /* the trainer moves on, so a wrongful (partial) load would show */
    CHECK_OK(cldp_trainer_step(t, x, y, 8, NULL));
    CHECK_OK(cldp_trainer_set_learning_rate(t, 0.5f));
    snapshot before = snap(t);
    unsigned char ub[16];
    size_t ul;

    size_t flips = 0, refused = 0, loaded = 0, crc_fixed_refused = 0, crc_fixed_loaded = 0, truncations = 0;
    for (size_t off = 0; off < n; off++) {
        for (int bit = 0; bit < 8; bit++) {
            for (int fixcrc = 0; fixcrc < 2; fixcrc++) {
                /* with the CRC recomputed the flip reaches the header and section checks; the
                 * flipped CRC itself then means nothing, so skip those offsets */
                if (fixcrc && off >= n - 4) continue;
                memcpy(b, good, n);
                b[off] ^= (unsigned char)(1u << bit);
                if (fixcrc) fix_crc(b, n);
                write_all(bad, b, n);
                flips++;
                cldp_status st = cldp_trainer_load_checkpoint(t, bad, ub, sizeof ub, &ul);
                if (st == CLDP_OK) {
                    /* only a valid file may load, and then exactly: saving it again gives its bytes */
                    CHECK(fixcrc);
                    CHECK_OK(cldp_trainer_save_checkpoint(t, resaved, ub, ul));
                    size_t rn;
                    unsigned char *r = read_all(resaved, &rn);
                    if (!(r && rn == n && !memcmp(r, b, n))) {
                        fprintf(stderr, "FAIL byte %zu bit %d: loaded, but saving again does not give the same file\n", off, bit);
                        test_failures++;
                    }
                    free(r);
                    restore(t, &before);
                    fixcrc ? crc_fixed_loaded++ : loaded++;
                } else {
                    if (st != CLDP_ERR_FORMAT || !strstr(cldp_last_error(), bad)) {
                        fprintf(stderr, "FAIL byte %zu bit %d%s: %s: %s\n", off, bit, fixcrc ? " (CRC fixed)" : "", cldp_status_string(st),
                                cldp_last_error());
                        test_failures++;
                    }
                    if (!same_state(t, &before)) {
                        fprintf(stderr, "FAIL byte %zu bit %d: refused, but the trainer changed\n", off, bit);
                        test_failures++;
                        restore(t, &before);
                    }
                    fixcrc ? crc_fixed_refused++ : refused++;
                }
            }
        }
    }
    for (size_t len = 0; len < n; len++) {
        write_all(bad, good, len);
        truncations++;
        cldp_status st = cldp_trainer_load_checkpoint(t, bad, ub, sizeof ub, &ul);
        if (st != CLDP_ERR_FORMAT || !same_state(t, &before)) {
            fprintf(stderr, "FAIL truncated to %zu of %zu bytes: %s: %s\n", len, n, cldp_status_string(st), cldp_last_error());
            test_failures++;
            restore(t, &before);
        }
    }
    /* and a byte appended */
    FILE *f = fopen(bad, "wb");
    fwrite(good, 1, n, f);
    fputc(0, f);
    fclose(f);
    CHECK_STATUS(cldp_trainer_load_checkpoint(t, bad, ub, sizeof ub, &ul), CLDP_ERR_FORMAT);
    CHECK(same_state(t, &before));
    printf("  every byte of a %zu-byte checkpoint: %zu single-bit flips: %zu refused, %zu loaded (want 0); with the CRC recomputed: "
           "%zu refused, %zu loaded exactly; %zu truncations refused (in %s)\n",
           n, flips, refused, loaded, crc_fixed_refused, crc_fixed_loaded, truncations, fuzzdir);
    CHECK(loaded == 0 && refused == 8 * n);

    /* the untouched file still loads, with its blob */
    CHECK_OK(cldp_trainer_load_checkpoint(t, path, ub, sizeof ub, &ul));
    CHECK(ul == sizeof blob && !memcmp(ub, blob, sizeof blob));
    free_snap(&before);
    free(good);
    free(b);
    cldp_trainer_destroy(t);
    cldp_model_destroy(m);
}

int main(void)
{
    test_rng_state = test_seed("test_checkpoint");
    test_devices("test_checkpoint", 2);
    const char *tmpdir = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/cldp-ckpt-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(dir)) {
        perror("test_checkpoint: mkdtemp");
        return 1;
    }
    snprintf(fuzzdir, sizeof fuzzdir, "/dev/shm/cldp-ckpt-XXXXXX");
    if (!mkdtemp(fuzzdir)) snprintf(fuzzdir, sizeof fuzzdir, "%s", dir);
    const int steps = K + M;
    float *x = malloc((size_t)steps * BATCH * IN * sizeof(float));
    int32_t *y = malloc((size_t)steps * BATCH * sizeof(int32_t));
    test_fill(x, (size_t)steps * BATCH * IN, -1, 1);
    for (int i = 0; i < steps * BATCH; i++) y[i] = (int32_t)(test_rand() % OUT);

    cldp_model *m = make_model(IN, HID, CLDP_ACT_RELU, OUT);
    cldp_trainer *t2 = make_trainer(m, test_devices("test_checkpoint", 2), "even", CLDP_OPT_ADAM, 99, BATCH), *t1 = make_trainer(m, test_devices("test_checkpoint", 1), "even", CLDP_OPT_ADAM, 98, BATCH);
    test_resume(CLDP_OPT_ADAM, m, t2, t1, x, y);
    test_resume(CLDP_OPT_SGD, m, t2, t1, x, y);
    test_refusals(m, t2, x, y);
    test_not_regular(t2);
    test_every_byte();

    cldp_trainer_destroy(t1);
    cldp_trainer_destroy(t2);
    cldp_model_destroy(m);
    free(x);
    free(y);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", dir, fuzzdir);
    if (system(cmd) != 0) fprintf(stderr, "test_checkpoint: could not remove %s\n", dir);
    return test_finish("test_checkpoint");
}
