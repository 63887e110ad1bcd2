/* test_cli — what the sample programs say to a new user, run for real: a refused value states
 * its limit; an option whose value is missing says so (not "unknown option '1'"); cldp-bench
 * refuses an unknown --only section, listing the valid ones; no device under a POCL_DEVICES that
 * names none says so; the help text and plurals read
 * right; --json's param_checksum is the text line's hex; a batch larger than the training set is
 * cut to it with a notice; a label outside the classes (a test label of 200, a training label of
 * 255 in a --data directory, or any label at or above --classes) is refused naming the file, the
 * index and the label. With --bench-gemm instead: cldp-bench's GEMM section built without a CPU
 * BLAS prints n/a (text) and null (JSON) for the BLAS figures, never 0.00 (about 20 s). With
 * --bench-profile: cldp-bench's profile section, its peer left out, counts exactly the FLOP of the
 * GEMMs CLBlast runs (the 10-output layer's on cldp's own kernels by default, on CLBlast with
 * CLDP_FAST_KERNELS=off), every category is a time >= 0, and they add up to no more than the step.
 * Usage: test_cli cldp-train cldp-devices cldp-bench DATA_DIR (runtime/data) [--bench-gemm | --bench-profile] */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* setgroups, in proc.h */
#undef NDEBUG
#include "proc.h"

#include <zlib.h>

static const char *train_exe, *devices_exe, *bench_exe, *data_dir;
static char dir[256];

/* Runs `argv` to the end; on an unexpected exit status or a missing needle (in stdout or stderr),
 * or an `absent` string that appears, fails with what it printed. */
static void expect(const char *what, const char *const *argv, int want_code, const char *const *needles, const char *const *absent,
                   proc *p)
{
    proc_run(p, argv, NULL);
    int ok = p->exited && p->code == want_code;
    for (size_t i = 0; needles && needles[i]; i++)
        if (!strstr(p->out, needles[i]) && !strstr(p->err, needles[i])) {
            fprintf(stderr, "FAIL %s: \"%s\" not printed\n", what, needles[i]);
            ok = 0;
        }
    for (size_t i = 0; absent && absent[i]; i++)
        if (strstr(p->out, absent[i]) || strstr(p->err, absent[i])) {
            fprintf(stderr, "FAIL %s: \"%s\" printed\n", what, absent[i]);
            ok = 0;
        }
    if (!ok) {
        fprintf(stderr, "FAIL %s: want exit status %d and the messages above\n", what, want_code);
        proc_dump(p, what);
        test_failures++;
    } else if (p->err[0]) {
        printf("  %s: %.*s\n", what, (int)strcspn(p->err, "\n"), p->err);
    }
}

/* ---- messages of the command lines ------------------------------------------------------- */

static void test_limits_and_values(void)
{
    proc p;
    const char *hidden[] = {train_exe, "--hidden", "100000", NULL}, *hw[] = {"--hidden", "100000", "65536", NULL};
    expect("--hidden 100000", hidden, 2, hw, NULL, &p);
    const char *batch[] = {train_exe, "--batch", "1048577", NULL}, *bw[] = {"--batch", "1048577", "1048576", NULL};
    expect("--batch 1048577", batch, 2, bw, NULL, &p);
    const char *epochs[] = {train_exe, "--epochs", "0", NULL}, *ew[] = {"--epochs", "100000", NULL};
    expect("--epochs 0", epochs, 2, ew, NULL, &p);
    const char *classes[] = {train_exe, "--classes", "1", NULL}, *cw[] = {"--classes", "2 to 65536", NULL};
    expect("--classes 1", classes, 2, cw, NULL, &p);

    const char *split[] = {train_exe, "--split", "--epochs", "1", NULL}, *sw[] = {"--split needs a value", NULL},
               *sa[] = {"unknown option", NULL};
    expect("--split --epochs 1", split, 2, sw, sa, &p);
    const char *last[] = {train_exe, "--embedded", "--epochs", NULL}, *lw[] = {"--epochs needs a value", NULL};
    expect("--epochs at the end", last, 2, lw, NULL, &p);
    const char *bogus[] = {train_exe, "--bogus", NULL}, *bgw[] = {"unknown option '--bogus'", NULL},
               *bga[] = {"needs a value", NULL};
    expect("--bogus", bogus, 2, bgw, bga, &p);

    const char *dev[] = {devices_exe, "--devices", NULL}, *dw[] = {"--devices needs a value", NULL},
               *da[] = {"unknown argument", NULL};
    expect("cldp-devices --devices", dev, 2, dw, da, &p);
    const char *dev2[] = {devices_exe, "--devices", "--help", NULL};
    expect("cldp-devices --devices --help", dev2, 2, dw, da, &p);

    /* no device because POCL_DEVICES names none PoCL knows: the message says so */
    const char *pocl_env[] = {"POCL_DEVICES=nosuchtype", NULL}, *list[] = {devices_exe, NULL},
               *pw[] = {"POCL_DEVICES is set to \"nosuchtype\"", "unset POCL_DEVICES", NULL};
    proc_run(&p, list, pocl_env);
    if (!(p.exited && p.code != 0) || !strstr(p.err, pw[0]) || !strstr(p.err, pw[1])) {
        fprintf(stderr, "FAIL POCL_DEVICES=nosuchtype cldp-devices should fail naming POCL_DEVICES\n");
        proc_dump(&p, "POCL_DEVICES=nosuchtype cldp-devices");
        test_failures++;
    } else {
        printf("  POCL_DEVICES=nosuchtype: %.*s\n", (int)strcspn(p.err, "\n"), p.err);
    }

    const char *only[] = {bench_exe, "--only", "nope", NULL},
               *ow[] = {"'nope'", "overhead", "scaling", "allreduce", "gemm", "start", "balance", NULL};
    expect("cldp-bench --only nope", only, 2, ow, NULL, &p);
    const char *only2[] = {bench_exe, "--only", NULL}, *ow2[] = {"--only needs", NULL};
    expect("cldp-bench --only", only2, 2, ow2, NULL, &p);
}

static void test_help(void)
{
    proc p;
    const char *help[] = {train_exe, "--help", NULL};
    expect("--help", help, 0, NULL, NULL, &p);
    const char *split = strstr(p.out, "  --split "), *same = strstr(p.out, "same for any split"),
               *next = strstr(p.out, "  --no-balance"), *timeout = strstr(p.out, "  --timeout ");
    if (!(split && same && next && timeout && split < same && same < next && same < timeout)) {
        fprintf(stderr, "FAIL --help: \"(the result is the same for any split...)\" should sit under --split, before --no-balance "
                        "and --timeout\n%s\n", p.out);
        test_failures++;
    }
}

/* One epoch: "1 epoch", not "1 epochs"; the JSON checksum is the text line's, as "0x%08x". */
static void test_one_epoch(void)
{
    proc p;
    const char *argv[] = {train_exe, "--embedded", "--hidden", "32", "--batch", "100", "--epochs", "1", "--json", NULL};
    const char *want[] = {"batch 100, 1 epoch,", "after 1 epoch,", NULL}, *never[] = {"1 epochs", NULL};
    expect("--epochs 1", argv, 0, want, never, &p);
    const char *text = strstr(p.out, "parameter CRC32 0x"), *json = strstr(p.out, "\"param_checksum\":\"0x");
    if (!text || !json || strncmp(text + 16, json + 18, 10) || json[28] != '"') {
        fprintf(stderr, "FAIL --json's param_checksum should be the text line's CRC32, as \"0x%%08x\":\n%s\n", p.out);
        test_failures++;
    } else {
        printf("  checksum: text %.10s, JSON \"%.10s\"\n", text + 16, json + 18);
    }
}

/* --trace: a path that cannot be written is refused before training, naming it; a good one gets a
 * Chrome trace-event file of the run's steps, and the program says where. */
static void test_trace_flag(void)
{
    proc p;
    char bad[600], good[600];
    snprintf(bad, sizeof bad, "%s/no-such-dir/run.json", dir);
    snprintf(good, sizeof good, "%s/run.json", dir);
    const char *refused[] = {train_exe, "--embedded", "--hidden", "32", "--epochs", "1", "--trace", bad, NULL},
               *rw[] = {"--trace", bad, NULL}, *ra[] = {"epoch  1", NULL};
    expect("--trace into a missing directory", refused, 2, rw, ra, &p);
    const char *argv[] = {train_exe, "--embedded", "--hidden", "32", "--batch", "500", "--epochs", "1", "--trace", good, NULL},
               *want[] = {"timeline of", good, NULL};
    expect("--trace FILE", argv, 0, want, NULL, &p);
    FILE *f = fopen(good, "r");
    char head[64] = "";
    if (f) {
        if (!fgets(head, sizeof head, f)) head[0] = 0;
        fclose(f);
    }
    if (strncmp(head, "{\"displayTimeUnit\":\"ms\"", 23)) {
        fprintf(stderr, "FAIL --trace %s: not a Chrome trace-event file (it begins \"%s\")\n", good, head);
        test_failures++;
    }
    const char *nofile[] = {bench_exe, "--trace", NULL}, *nw[] = {"--trace needs a file name", NULL};
    expect("cldp-bench --trace", nofile, 2, nw, NULL, &p);
}

static void test_batch_clamp(void)
{
    proc p;
    const char *argv[] = {train_exe, "--embedded", "--hidden", "32", "--batch", "1048576", "--epochs", "1", NULL};
    const char *want[] = {"--batch 1048576 is larger than the 2000 training samples; using batch 2000", "batch 2000, 1 epoch", NULL};
    expect("--embedded --batch 1048576", argv, 0, want, NULL, &p);
}

/* ---- labels ------------------------------------------------------------------------------ */

static void copy_gz(const char *from, const char *to, long change_at, int label)
{
    gzFile in = gzopen(from, "rb");
    if (!in) {
        fprintf(stderr, "test_cli: cannot read %s\n", from);
        exit(1);
    }
    static unsigned char buf[1 << 24];
    int n = gzread(in, buf, sizeof buf);
    gzclose(in);
    if (n <= 8) {
        fprintf(stderr, "test_cli: %s is too short\n", from);
        exit(1);
    }
    if (change_at >= 0) buf[8 + change_at] = (unsigned char)label; /* after the label file's 8-byte header */
    gzFile out = gzopen(to, "wb");
    if (!out || gzwrite(out, buf, (unsigned)n) != n || gzclose(out) != Z_OK) {
        fprintf(stderr, "test_cli: cannot write %s\n", to);
        exit(1);
    }
}

/* A --data directory made of the embedded subset's files, with one label changed (or none). */
static void make_data_dir(long train_at, int train_label, long test_at, int test_label)
{
    static const char *const from[4] = {"train-images", "train-labels", "test-images", "test-labels"};
    static const char *const to[4] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                                      "t10k-labels-idx1-ubyte.gz"};
    for (int k = 0; k < 4; k++) {
        char src[600], dst[600];
        snprintf(src, sizeof src, "%s/fmnist-mini-%s.gz", data_dir, from[k]);
        snprintf(dst, sizeof dst, "%s/%s", dir, to[k]);
        copy_gz(src, dst, k == 1 ? train_at : k == 3 ? test_at : -1, k == 1 ? train_label : test_label);
    }
}

static void test_labels(void)
{
    proc p;
    char at[64], label[64], file[400];
    /* --classes below the data's labels: the first label at or above it is named */
    cldp_dataset *ds = NULL;
    CHECK_OK(cldp_dataset_embedded(1, &ds));
    const int32_t *y = cldp_dataset_labels(ds);
    size_t first = 0;
    while (first < cldp_dataset_count(ds) && y[first] < 5) first++;
    snprintf(at, sizeof at, "label %d at index %zu", (int)y[first], first);
    cldp_dataset_destroy(ds);
    const char *c5[] = {train_exe, "--embedded", "--classes", "5", NULL},
               *c5w[] = {"embedded fmnist-mini-train-labels.gz", at, "--classes", NULL}, *never[] = {"ready", NULL};
    expect("--embedded --classes 5", c5, 1, c5w, never, &p);

    /* a --data directory: it trains as it is */
    make_data_dir(-1, 0, -1, 0);
    const char *ok[] = {train_exe, "--data", dir, "--hidden", "32", "--batch", "100", "--epochs", "1", NULL};
    expect("--data (the embedded files)", ok, 0, NULL, NULL, &p);

    /* one test label of 200: named with its file and index, not "disagree in shape" */
    long idx = (long)(test_rand() % 500);
    make_data_dir(-1, 0, idx, 200);
    snprintf(file, sizeof file, "%s/t10k-labels-idx1-ubyte.gz", dir);
    snprintf(label, sizeof label, "label 200 at index %ld", idx);
    const char *w1[] = {file, label, NULL}, *a1[] = {"disagree in shape", "ready", NULL};
    expect("--data with a test label of 200", ok, 1, w1, a1, &p);

    /* a stray training label of 255: refused, not a model of 256 classes */
    idx = (long)(test_rand() % 2000);
    make_data_dir(idx, 255, -1, 0);
    snprintf(file, sizeof file, "%s/train-labels-idx1-ubyte.gz", dir);
    snprintf(label, sizeof label, "label 255 at index %ld", idx);
    const char *w2[] = {file, label, NULL}, *a2[] = {"256 classes", "ready", NULL};
    expect("--data with a training label of 255", ok, 1, w2, a2, &p);
}

/* ---- cldp-bench without a CPU BLAS ------------------------------------------------------- */

static int test_bench_gemm(void)
{
    proc p;
    const char *argv[] = {bench_exe, "--quick", "--only", "gemm", "--json", NULL};
    proc_run(&p, argv, NULL);
    if (!(p.exited && p.code == 0 && strstr(p.out, "4. gemm"))) {
        fprintf(stderr, "FAIL cldp-bench --only gemm did not run its section\n");
        proc_dump(&p, "cldp-bench --quick --only gemm");
        test_failures++;
        return 0;
    }
    if (!strstr(p.out, "no CPU BLAS was found")) {
        /* built with a BLAS: its figures are numbers */
        CHECK(!strstr(p.out, "tuned/blas n/a") && !strstr(p.out, "\"tuned_vs_blas\":null"));
        printf("  cldp-bench was built with a CPU BLAS: its figures are printed\n");
        return 0;
    }
    const char *want[] = {"tuned/blas n/a", "blas n/a", "\"tuned_vs_blas\":null", "\"blas_ms\":null", NULL};
    const char *never[] = {"tuned/blas 0.00", "\"tuned_vs_blas\":0.000", "\"blas_ms\":0.000", NULL};
    int ok = 1;
    for (size_t i = 0; want[i]; i++) ok = ok && strstr(p.out, want[i]);
    for (size_t i = 0; never[i]; i++) ok = ok && !strstr(p.out, never[i]);
    if (!ok) {
        fprintf(stderr, "FAIL cldp-bench without a CPU BLAS should say n/a (JSON null) for the BLAS figures, never 0.00\n");
        proc_dump(&p, "cldp-bench --quick --only gemm");
        test_failures++;
    } else {
        const char *l = strstr(p.out, "     tuned/def");
        printf("  without a CPU BLAS:%.*s\n", (int)strcspn(l, "\n"), l);
    }
    return 0;
}

/* The number after "key": in the JSON object that starts at `obj`; NAN when absent. */
static double json_at(const char *obj, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = obj ? strstr(obj, k) : NULL;
    return p ? strtod(p + strlen(k), NULL) : NAN;
}

static int test_bench_profile(void)
{
    test_devices("test_cli --bench-profile", 2); /* the section profiles 1 and 2 devices */
    proc p;
    const char *argv[] = {bench_exe, "--quick", "--only", "profile", "--json", NULL};
    const char *env[] = {"CLDP_PEER_SCRIPT=/nonexistent/torch_ddp_mlp.py", NULL};
    proc_run(&p, argv, env);
    const char *js = strstr(p.out, "{\"profile\":");
    if (!(p.exited && p.code == 0 && strstr(p.out, "9. profile") && js)) {
        fprintf(stderr, "FAIL cldp-bench --only profile did not run its section\n");
        proc_dump(&p, "cldp-bench --quick --only profile --json");
        test_failures++;
        return 0;
    }
    CHECK(strstr(p.out, "peer: skipped (/nonexistent/torch_ddp_mlp.py not found") != NULL);
    CHECK(strstr(js, "\"peer\":false") != NULL);
    /* the bench's MLP 784-1024-1024-10 at batch 512: every GEMM of layer l is 2·rows·in·out FLOP;
     * layers 0 and 1 take forward and dW (and dX for layer 1) through CLBlast, and the narrow
     * layer 2 its three too only before the cuts */
    const double in[3] = {784, 1024, 1024}, out[3] = {1024, 1024, 10}, gemms[3] = {2, 3, 3};
    static const char *const cats[] = {"gemm_ms", "kernel_ms", "transfer_ms", "host_ms", "broadcast_ms", "wait_ms"};
    for (int n = 1; n <= 2; n++) {
        char key[32];
        snprintf(key, sizeof key, "\"devices%d\":", n);
        const char *dev = strstr(js, key);
        CHECK(dev != NULL);
        for (int k = 0; dev && k < 2; k++) {
            const char *run = strstr(dev, k ? "\"after\":" : "\"before\":");
            CHECK(run != NULL);
            double want = 0;
            for (int l = 0; l < 3; l++)
                if (k == 0 || out[l] > 16) want += gemms[l] * 2.0 * (512.0 / n) * in[l] * out[l] * 1e-9;
            double got = json_at(run, "gemm_gflop"), step = json_at(run, "step_ms"), sum = 0;
            printf("  %d device(s), %s: GEMM GFLOP %.4f (expected %.4f), step %.1f ms", n, k ? "after" : "before", got, want, step);
            CHECK(fabs(got - want) < 1e-3);
            for (size_t c = 0; c < sizeof cats / sizeof *cats; c++) {
                double v = json_at(run, cats[c]);
                printf(", %s %.2f", cats[c], v);
                CHECK(v >= 0 && isfinite(v));
                sum += v;
            }
            printf("\n");
            CHECK(json_at(run, "gemm_ms") > 0 && json_at(run, "kernel_ms") > 0);
            /* one device's parts of a step happen one after another: no more than the step (the
             * device clock mapped to the host's leaves a little slack) */
            CHECK(sum <= 1.05 * step + 0.5);
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 5 || argc > 6 || (argc == 6 && strcmp(argv[5], "--bench-gemm") && strcmp(argv[5], "--bench-profile"))) {
        fprintf(stderr, "usage: test_cli cldp-train cldp-devices cldp-bench DATA_DIR [--bench-gemm | --bench-profile]\n");
        return 2;
    }
    train_exe = argv[1];
    devices_exe = argv[2];
    bench_exe = argv[3];
    data_dir = argv[4];
    test_rng_state = test_seed("test_cli");
    test_devices("test_cli", 1);
    signal(SIGPIPE, SIG_IGN);
    if (argc == 6 && !strcmp(argv[5], "--bench-profile")) {
        test_bench_profile();
        return test_finish("test_cli --bench-profile");
    }
    if (argc == 6) {
        test_bench_gemm();
        return test_finish("test_cli --bench-gemm");
    }
    const char *tmpdir = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/cldp-cli-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(dir)) {
        perror("test_cli: mkdtemp");
        return 1;
    }
    test_limits_and_values();
    test_help();
    test_one_epoch();
    test_batch_clamp();
    test_trace_flag();
    test_labels();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "test_cli: could not remove %s\n", dir);
    return test_finish("test_cli");
}
