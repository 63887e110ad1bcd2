/* test_tuning.c — the CLBlast tuning files of runtime/tuning.h: parsing good and damaged text (a
 * clear message naming file and line, never a crash), pattern matching and the choice between
 * entries and sources, and that after applying the built-in parameters to a PoCL device CLBlast's
 * SGEMM still matches a double-precision host reference on odd shapes, on both of its kernels. */
#define _POSIX_C_SOURCE 200809L /* setenv, mkdtemp */
#undef NDEBUG
#include <assert.h>

#include "devices.h"
#include "testutil.h"
#include "tuning.h"

#include <clblast_c.h>
#include <sys/stat.h>
#include <unistd.h>

static const char good_text[] =
    "# a comment line\r\n"
    "\n"
    "device = basic-*\n"
    "note = any PoCL basic device\n"
    "GemmRoutine/32 = XGEMM_MIN_INDIRECT_SIZE=300\n"
    "   device=Exact Device Name   \n"
    "driver = 3.1+debian\r\n"
    "XgemmDirect/32 = KWID=2 MDIMAD=8 MDIMCD=8 NDIMBD=8 NDIMCD=8 PADA=1 PADB=1 VWMD=2 VWND=2 WGD=32\n"
    "Xgemm/32 = GEMMK=0 KREG=1 KWG=32 KWI=2 MDIMA=8 MDIMC=8 MWG=64 NDIMB=8 NDIMC=8 NWG=64 SA=1 SB=1 STRM=0 STRN=0 VWM=4 VWN=4\n"
    "Xaxpy/64 = VW=4 WGS=64 WPT=1\n"
    "device = Exact Device Name\n"
    "Copy/32 = COPY_DIMX=8 COPY_DIMY=8 COPY_VW=1 COPY_WPT=1\n"
    "device = Exact Device Name\n"
    "driver = 3.*\n"
    "Pad/32 = PAD_DIMX=8 PAD_DIMY=8 PAD_WPTX=1 PAD_WPTY=1\n"
    "device = *\n"
    "version = OpenCL 3.0 *x86_64*\n"
    "Pad/32 = PAD_DIMX=16 PAD_DIMY=8 PAD_WPTX=1 PAD_WPTY=1\n";

/* ---- parsing ------------------------------------------------------------------------------ */

static void test_parse_good(void)
{
    cldp_tuning_file f;
    CHECK_OK(cldp_tuning_parse(good_text, strlen(good_text), "good.txt", &f));
    CHECK(f.count == 5);
    if (f.count != 5) return;
    CHECK(!strcmp(f.entries[0].device, "basic-*") && !strcmp(f.entries[0].driver, "*") && f.entries[0].line == 3);
    CHECK(f.entries[0].nkernels == 1 && !strcmp(f.entries[0].kernels[0].name, "GemmRoutine"));
    CHECK(f.entries[0].kernels[0].param_values[0] == 300 && f.entries[0].kernels[0].line == 5);
    CHECK(!strcmp(f.entries[1].device, "Exact Device Name") && !strcmp(f.entries[1].driver, "3.1+debian"));
    CHECK(f.entries[1].nkernels == 3);
    const cldp_tuning_kernel *x = &f.entries[1].kernels[1];
    CHECK(!strcmp(x->name, "Xgemm") && x->precision == 32 && x->nparams == 16);
    CHECK(!strcmp(x->param_names[6], "MWG") && x->param_values[6] == 64);
    CHECK(!strcmp(f.entries[1].kernels[2].name, "Xaxpy") && f.entries[1].kernels[2].precision == 64);
    CHECK(!strcmp(f.entries[3].driver, "3.*") && f.entries[3].kernels[0].line == 15);
    CHECK(!strcmp(f.entries[3].version, "*") && !strcmp(f.entries[4].version, "OpenCL 3.0 *x86_64*"));
    cldp_tuning_file_free(&f);
    cldp_tuning_file_free(&f); /* twice is harmless */

    /* What samples/cldp-tune writes. */
    static const char tuned[] =
        "# CLBlast SGEMM parameters written by cldp-tune; read by cldp (format: runtime/tuning.h).\n"
        "# Shapes: model 784,256,128,10, 64 rows per device\n"
        "# Step time of those GEMMs: 12.489 ms with CLBlast's defaults, 2.692 ms with these (4.64x).\n"
        "device = basic-haswell-AMD EPYC\n"
        "driver = 3.1+debian\n"
        "note = cldp-tune 2024-01-01, D12 + X20\n"
        "XgemmDirect/32 = KWID=2 MDIMAD=8 MDIMCD=8 NDIMBD=8 NDIMCD=8 PADA=1 PADB=1 VWMD=4 VWND=4 WGD=32\n"
        "Xgemm/32 = GEMMK=0 KREG=1 KWG=32 KWI=2 MDIMA=8 MDIMC=8 MWG=64 NDIMB=32 NDIMC=16 NWG=128 SA=0 SB=0 STRM=0 STRN=0 VWM=8 VWN=4\n"
        "GemmRoutine/32 = XGEMM_MIN_INDIRECT_SIZE=75\n";
    CHECK_OK(cldp_tuning_parse(tuned, strlen(tuned), "cldp-tune.txt", &f));
    CHECK(f.count == 1 && f.entries[0].nkernels == 3);
    CHECK(cldp_tuning_match(&f, "basic-haswell-AMD EPYC", "3.1+debian", "OpenCL 3.0 PoCL", NULL) == &f.entries[0]);
    cldp_tuning_file_free(&f);

    CHECK_OK(cldp_tuning_parse("", 0, "empty", &f)); /* nothing to apply is fine */
    CHECK(f.count == 0);
    cldp_tuning_file_free(&f);
    CHECK_OK(cldp_tuning_parse("# only a comment\n\n  \n", 20, "comments", &f));
    CHECK(f.count == 0);
    cldp_tuning_file_free(&f);
}

typedef struct bad_case {
    const char *text;
    unsigned line;       /* the line the message must name */
    const char *says;    /* and a phrase it must contain */
} bad_case;

#define XG "Xgemm/32 = GEMMK=0 KREG=1 KWG=32 KWI=2 MDIMA=8 MDIMC=8 NDIMB=8 NDIMC=8 NWG=64 SA=1 SB=1 STRM=0 STRN=0 VWM=4 VWN=4 "

static const bad_case bad_cases[] = {
    {"Xgemm/32 = GEMMK=0\n", 1, "before the first"},
    {"device = a\nfrobnicate = 1\n", 2, "unknown key"},
    {"device = a\njust some words\n", 2, "key = value"},
    {"device = a\nversion = \n", 2, "empty device version"},
    {"device = a\ndriver = 1\ndriver = 2\n", 3, "second driver"},
    {"device = a\nversion = 1\nversion = 2\n", 3, "second version"},
    {"device = \nXgemm/32 = GEMMK=0\n", 1, "empty device"},
    {"device = a\ndriver =\n", 2, "empty driver"},
    {"device = a\n" XG "\n", 2, "lacks parameter MWG"},
    {"device = a\n" XG "MWG=64 FOO=1\n", 2, "no parameter named FOO"},
    {"device = a\n" XG "MWG=64 MWG=64\n", 2, "given twice"},
    {"device = a\n" XG "MWG=48\n", 2, "MWG must be a multiple"},
    {"device = a\n" XG "MWG=abc\n", 2, "whole number"},
    {"device = a\n" XG "MWG=-64\n", 2, "whole number"},
    {"device = a\n" XG "MWG=99999999999999999999999\n", 2, "whole number"},
    {"device = a\n" XG "MWG\n", 2, "NAME=VALUE"},
    {"device = a\nXgemm/33 = GEMMK=0\n", 2, "precision"},
    {"device = a\nXgemm/ = GEMMK=0\n", 2, "precision"},
    {"device = a\n/32 = GEMMK=0\n", 2, "kernel name"},
    {"device = a\nX gemm/32 = GEMMK=0\n", 2, "kernel name"},
    {"device = a\nXgemm/32 =\n", 2, "no parameters"},
    {"device = a\nGemmRoutine/32 = XGEMM_MIN_INDIRECT_SIZE=100001\n", 2, "at most"},
    {"device = a\nGemmRoutine/32 = XGEMM_MIN_INDIRECT_SIZE=64\nGemmRoutine/32 = XGEMM_MIN_INDIRECT_SIZE=64\n", 3, "twice"},
    {"device = a\nXgemmDirect/32 = KWID=2 MDIMAD=8 MDIMCD=8 NDIMBD=8 NDIMCD=8 PADA=2 PADB=1 VWMD=2 VWND=2 WGD=32\n", 2, "PADA"},
    {"device = a\nTranspose/32 = TRA_DIM=8 TRA_PAD=0 TRA_SHUFFLE=0 TRA_WPT=3\n", 2, "TRA_WPT"},
    {"device = a\nXaxpy/32 = A=1 B=1 C=1 D=1 E=1 F=1 G=1 H=1 I=1 J=1 K=1 L=1 M=1 N=1 O=1 P=1 Q=1 R=1 S=1 T=1 U=1\n", 2, "more than"},
    {"device = a\ndevice = b\nGemmRoutine/32 = XGEMM_MIN_INDIRECT_SIZE=64\n", 1, "no kernel lines"},
    {"device = a\nGemmRoutine/32 = XGEMM_MIN_INDIRECT_SIZE=64\n\ndevice = b\n", 4, "no kernel lines"},
};

static void test_parse_bad(void)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
        const bad_case *c = &bad_cases[i];
        cldp_tuning_file f;
        cldp_status st = cldp_tuning_parse(c->text, strlen(c->text), "bad.txt", &f);
        char where[32];
        snprintf(where, sizeof where, "bad.txt:%u:", c->line);
        if (st != CLDP_ERR_FORMAT || !strstr(cldp_last_error(), where) || !strstr(cldp_last_error(), c->says)) {
            fprintf(stderr, "FAIL bad case %zu: %s, message \"%s\" (want \"%s\" and \"%s\")\n", i,
                    cldp_status_string(st), cldp_last_error(), where, c->says);
            test_failures++;
        }
        CHECK(f.count == 0 && f.entries == NULL);
        cldp_tuning_file_free(&f);
    }
    /* A NUL byte, and an overlong device name. */
    static const char nul[] = "device = a\nGemmRoutine/32 = XGEMM_MIN_INDIRECT_SIZE=64\0\n";
    cldp_tuning_file f;
    CHECK_STATUS(cldp_tuning_parse(nul, sizeof nul - 1, "nul.txt", &f), CLDP_ERR_FORMAT);
    CHECK(strstr(cldp_last_error(), "nul.txt:2:") != NULL);
    char longname[600] = "device = ";
    memset(longname + 9, 'x', 500);
    CHECK_STATUS(cldp_tuning_parse(longname, strlen(longname), "long.txt", &f), CLDP_ERR_FORMAT);
    CHECK(strstr(cldp_last_error(), "long.txt:1:") != NULL);
}

/* Mutated and truncated versions of a good file: every outcome is OK or CLDP_ERR_FORMAT with a
 * message, never a crash (run under a sanitizer or valgrind to see more). */
static void test_parse_fuzz(void)
{
    size_t n = strlen(good_text);
    char *buf = malloc(n + 1);
    assert(buf);
    int ok = 0, bad = 0;
    for (int round = 0; round < 3000; round++) {
        memcpy(buf, good_text, n);
        size_t len = round % 5 == 0 ? test_rand() % (n + 1) : n;
        int edits = 1 + (int)(test_rand() % 4);
        for (int e = 0; e < edits && len > 0; e++) {
            static const char alphabet[] = "=/*?#\n\r \t0123456789xX-_\xff";
            buf[test_rand() % len] = alphabet[test_rand() % (sizeof alphabet - 1)];
        }
        cldp_tuning_file f;
        cldp_status st = cldp_tuning_parse(buf, len, "fuzz.txt", &f);
        if (st == CLDP_OK) {
            ok++;
            CHECK(f.count <= 16);
        } else {
            bad++;
            CHECK(st == CLDP_ERR_FORMAT && strstr(cldp_last_error(), "fuzz.txt:") != NULL);
        }
        cldp_tuning_file_free(&f);
    }
    printf("fuzz: %d parsed, %d refused with a message\n", ok, bad);
    free(buf);
}

/* ---- matching ----------------------------------------------------------------------------- */

static void test_patterns(void)
{
    CHECK(cldp_tuning_pattern_match("abc", "abc"));
    CHECK(!cldp_tuning_pattern_match("abc", "abcd"));
    CHECK(!cldp_tuning_pattern_match("abcd", "abc"));
    CHECK(cldp_tuning_pattern_match("*", ""));
    CHECK(cldp_tuning_pattern_match("*", "anything"));
    CHECK(cldp_tuning_pattern_match("basic-*", "basic-haswell-AMD EPYC"));
    CHECK(!cldp_tuning_pattern_match("basic-*", "pthread-haswell-AMD EPYC"));
    CHECK(cldp_tuning_pattern_match("*-haswell-*", "pthread-haswell-AMD EPYC"));
    CHECK(!cldp_tuning_pattern_match("*-haswell-*", "pthread-skylake-Intel"));
    CHECK(cldp_tuning_pattern_match("a*b*c", "aXbYbZc"));
    CHECK(!cldp_tuning_pattern_match("a*b*c", "aXbYbZ"));
    CHECK(cldp_tuning_pattern_match("3.?+debian", "3.1+debian"));
    CHECK(!cldp_tuning_pattern_match("3.?+debian", "3.10+debian"));
    CHECK(cldp_tuning_pattern_match("**x**", "x"));
    /* '|' separates alternatives */
    CHECK(cldp_tuning_pattern_match("a|b", "a"));
    CHECK(cldp_tuning_pattern_match("a|b", "b"));
    CHECK(!cldp_tuning_pattern_match("a|b", "ab"));
    CHECK(!cldp_tuning_pattern_match("a|b", "a|b"));
    CHECK(cldp_tuning_pattern_match("basic-*|cpu-minimal-*", "cpu-minimal-znver4-AMD"));
    CHECK(!cldp_tuning_pattern_match("basic-*|cpu-minimal-*", "pthread-znver4-AMD"));
    CHECK(cldp_tuning_pattern_match("*-skylake-avx512|*rapids", "basic-x86_64-pc-linux-gnu-sapphirerapids"));
    CHECK(!cldp_tuning_pattern_match("*-skylake-avx512|*rapids", "basic-x86_64-pc-linux-gnu-skylake"));
    CHECK(cldp_tuning_pattern_match("x|", "") && cldp_tuning_pattern_match("|x", ""));
    CHECK(!cldp_tuning_pattern_match("x|y", ""));
}

static void test_match(void)
{
    cldp_tuning_file f;
    CHECK_OK(cldp_tuning_parse(good_text, strlen(good_text), "good.txt", &f));
    const char *pocl = "OpenCL 3.0 PoCL HSTR: basic-x86_64-pc-linux-gnu-haswell";
    int score = -7;
    const cldp_tuning_entry *e = cldp_tuning_match(&f, "Exact Device Name", "3.1+debian", "OpenCL 1.2", &score);
    CHECK(e == &f.entries[1] && score == 6); /* exact name and driver */
    e = cldp_tuning_match(&f, "Exact Device Name", "3.5", "OpenCL 1.2", &score);
    CHECK(e == &f.entries[2] && score == 4); /* two driver patterns match equally: the first entry wins */
    e = cldp_tuning_match(&f, "Exact Device Name", "4.0", pocl, &score);
    CHECK(e == &f.entries[2] && score == 4); /* an exact name beats a version pattern */
    e = cldp_tuning_match(&f, "  Exact Device Name ", "3.1+debian ", "OpenCL 1.2", &score);
    CHECK(e == &f.entries[1]); /* blanks around what a driver reports do not matter */
    e = cldp_tuning_match(&f, "basic-haswell-AMD EPYC", "3.1+debian", "OpenCL 1.2", &score);
    CHECK(e == &f.entries[0] && score == 0);
    e = cldp_tuning_match(&f, "pthread-haswell-AMD EPYC", "3.1+debian", pocl, &score);
    CHECK(e == &f.entries[4] && score == 0); /* matched by the target in CL_DEVICE_VERSION */
    e = cldp_tuning_match(&f, "pthread-cortex-a72", "3.1+debian", "OpenCL 3.0 PoCL HSTR: pthread-aarch64-unknown-linux-gnu", &score);
    CHECK(e == NULL && score == -1);
    e = cldp_tuning_match(&f, "NVIDIA GeForce RTX 4090", "550.1", "OpenCL 3.0 CUDA", &score);
    CHECK(e == NULL && score == -1);
    CHECK(cldp_tuning_match(NULL, "x", "y", "z", NULL) == NULL);
    CHECK(cldp_tuning_match(&f, "Exact Device Name", "3.1+debian", NULL, NULL) == NULL);
    cldp_tuning_file_free(&f);
}

/* ---- sources ------------------------------------------------------------------------------ */

#define POCL_VERSION "OpenCL 3.0 PoCL HSTR: basic-x86_64-pc-linux-gnu-haswell"

static char tmpdir[256];

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert(fp);
    fputs(text, fp);
    fclose(fp);
}

static void test_sources(void)
{
    char dir[512], path[700], envfile[700];
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cldp-test-tuning-XXXXXX");
    assert(mkdtemp(tmpdir));
    setenv("XDG_CACHE_HOME", tmpdir, 1);
    cldp_test_control(CLDP_TEST_CONFIG, "CLDP_TUNING_FILE", (const char *)NULL);
    cldp_test_control(CLDP_TEST_CONFIG, "CLDP_TUNING", (const char *)NULL);
    CHECK_OK(cldp_tuning_cache_dir(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/cldp/tuning", tmpdir);
    CHECK(!strcmp(dir, path));

    const cldp_tuning_entry *e;
    cldp_tuning_file f;
    /* No cache directory yet: an untuned device gets nothing, and no error. */
    CHECK_OK(cldp_tuning_lookup("Some GPU", "1.0", "OpenCL 3.0 CUDA", &f, &e));
    CHECK(e == NULL && f.count == 0 && f.entries == NULL);

    /* The built-in results cover PoCL's single-threaded CPU device on x86-64, under its old and
     * new names, and nothing else. */
    CHECK_OK(cldp_tuning_lookup("basic-haswell-AMD EPYC", "3.1+debian", POCL_VERSION, &f, &e));
    CHECK(e != NULL && strstr(f.origin, "built-in") != NULL);
    if (e) {
        int has_gemm = 0;
        for (size_t i = 0; i < e->nkernels; i++) has_gemm |= !strcmp(e->kernels[i].name, "Xgemm") || !strcmp(e->kernels[i].name, "XgemmDirect");
        CHECK(has_gemm);
    }
    cldp_tuning_file_free(&f);
    CHECK_OK(cldp_tuning_lookup("cpu-minimal-znver4-AMD Ryzen 9", "6.0", "OpenCL 3.0 PoCL HSTR: cpu-minimal-x86_64-pc-linux-gnu-znver4", &f, &e));
    CHECK(e != NULL);
    cldp_tuning_file_free(&f);
    CHECK_OK(cldp_tuning_lookup("basic-skylake-Intel(R) Core(TM) i7", "1.8", "OpenCL 1.2 pocl HSTR: basic-x86_64-unknown-linux-gnu-skylake", &f, &e));
    CHECK(e != NULL);
    unsigned generic_line = e ? e->line : 0;
    cldp_tuning_file_free(&f);
    /* AVX-512 targets get their own set, ahead of the generic x86-64 one; AVX2 ones and AMD's
     * AVX-512 (znver4, not measured) keep the generic set. */
    static const char *const avx512[][2] = {
        {"basic-skylake-avx512-Intel(R) Xeon(R) Processor", "OpenCL 3.0 PoCL HSTR: basic-x86_64-pc-linux-gnu-skylake-avx512"},
        {"basic-cascadelake-Intel(R) Xeon(R) Gold", "OpenCL 3.0 PoCL HSTR: basic-x86_64-pc-linux-gnu-cascadelake"},
        {"cpu-minimal-sapphirerapids-Intel(R) Xeon(R)", "OpenCL 3.0 PoCL HSTR: cpu-minimal-x86_64-pc-linux-gnu-sapphirerapids"},
    };
    unsigned avx512_line = 0;
    for (size_t i = 0; i < sizeof avx512 / sizeof *avx512; i++) {
        CHECK_OK(cldp_tuning_lookup(avx512[i][0], "3.1+debian", avx512[i][1], &f, &e));
        CHECK(e != NULL && e->line != generic_line && (i == 0 || e->line == avx512_line));
        if (e && i == 0) avx512_line = e->line;
        cldp_tuning_file_free(&f);
    }
    CHECK_OK(cldp_tuning_lookup("basic-haswell-AMD EPYC", "3.1+debian", POCL_VERSION, &f, &e));
    CHECK(e != NULL && e->line == generic_line);
    cldp_tuning_file_free(&f);
    CHECK_OK(cldp_tuning_lookup("basic-znver4-AMD EPYC", "3.1+debian", "OpenCL 3.0 PoCL HSTR: basic-x86_64-pc-linux-gnu-znver4", &f, &e));
    CHECK(e != NULL && e->line == generic_line);
    cldp_tuning_file_free(&f);
    CHECK_OK(cldp_tuning_lookup("pthread-skylake-avx512-Intel(R) Xeon(R)", "3.1+debian",
                                "OpenCL 3.0 PoCL HSTR: pthread-x86_64-pc-linux-gnu-skylake-avx512", &f, &e));
    CHECK(e == NULL);
    cldp_tuning_file_free(&f);
    CHECK_OK(cldp_tuning_lookup("pthread-haswell-AMD EPYC", "3.1+debian", "OpenCL 3.0 PoCL HSTR: pthread-x86_64-pc-linux-gnu-haswell", &f, &e));
    CHECK(e == NULL);
    cldp_tuning_file_free(&f);
    CHECK_OK(cldp_tuning_lookup("basic-cortex-a72", "3.1+debian", "OpenCL 3.0 PoCL HSTR: basic-aarch64-unknown-linux-gnu-cortex-a72", &f, &e));
    CHECK(e == NULL);
    cldp_tuning_file_free(&f);

    /* The user's cache: every *.txt file; others (cldp-tune's temporaries) are ignored. */
    snprintf(path, sizeof path, "%s/cldp", tmpdir);
    CHECK(mkdir(path, 0755) == 0);
    snprintf(path, sizeof path, "%s/cldp/tuning", tmpdir);
    CHECK(mkdir(path, 0755) == 0);
    snprintf(path, sizeof path, "%s/cldp/tuning/b.txt", tmpdir);
    write_file(path, "device = basic-haswell-AMD EPYC\ndriver = 3.1+debian\nGemmRoutine/32 = XGEMM_MIN_INDIRECT_SIZE=111\n");
    snprintf(path, sizeof path, "%s/cldp/tuning/a.txt", tmpdir);
    write_file(path, "device = basic-*\nGemmRoutine/32 = XGEMM_MIN_INDIRECT_SIZE=222\n");
    snprintf(path, sizeof path, "%s/cldp/tuning/c.txt.tmp", tmpdir);
    write_file(path, "this is not a tuning file\n");
    CHECK_OK(cldp_tuning_lookup("basic-haswell-AMD EPYC", "3.1+debian", POCL_VERSION, &f, &e));
    CHECK(e && e->kernels[0].param_values[0] == 111 && strstr(f.origin, "/b.txt")); /* most specific over files */
    cldp_tuning_file_free(&f);
    CHECK_OK(cldp_tuning_lookup("basic-znver3-AMD Ryzen", "3.1+debian", POCL_VERSION, &f, &e));
    CHECK(e && e->kernels[0].param_values[0] == 222 && strstr(f.origin, "/a.txt"));
    cldp_tuning_file_free(&f);

    /* CLDP_TUNING_FILE comes first, when it has an entry for the device. */
    snprintf(envfile, sizeof envfile, "%s/mine.tuning", tmpdir);
    write_file(envfile, "device = basic-haswell-*\nGemmRoutine/32 = XGEMM_MIN_INDIRECT_SIZE=333\n");
    cldp_test_control(CLDP_TEST_CONFIG, "CLDP_TUNING_FILE", envfile);
    CHECK_OK(cldp_tuning_lookup("basic-haswell-AMD EPYC", "3.1+debian", POCL_VERSION, &f, &e));
    CHECK(e && e->kernels[0].param_values[0] == 333 && !strcmp(f.origin, envfile));
    cldp_tuning_file_free(&f);
    CHECK_OK(cldp_tuning_lookup("basic-znver3-AMD Ryzen", "3.1+debian", POCL_VERSION, &f, &e));
    CHECK(e && e->kernels[0].param_values[0] == 222); /* no entry there: on to the cache */
    cldp_tuning_file_free(&f);

    /* A missing CLDP_TUNING_FILE is an error (a typo must not pass silently)... */
    snprintf(path, sizeof path, "%s/absent.txt", tmpdir);
    cldp_test_control(CLDP_TEST_CONFIG, "CLDP_TUNING_FILE", path);
    CHECK_STATUS(cldp_tuning_lookup("basic-haswell-AMD EPYC", "3.1+debian", POCL_VERSION, &f, &e), CLDP_ERR_IO);
    CHECK(strstr(cldp_last_error(), "absent.txt") != NULL && e == NULL);
    cldp_tuning_file_free(&f);
    cldp_test_control(CLDP_TEST_CONFIG, "CLDP_TUNING_FILE", (const char *)NULL);

    /* ...and a damaged cache file names itself and the line. */
    snprintf(path, sizeof path, "%s/cldp/tuning/d.txt", tmpdir);
    write_file(path, "device = x\nGemmRoutine/32 = XGEMM_MIN_INDIRECT_SIZE=12q\n");
    CHECK_STATUS(cldp_tuning_lookup("basic-haswell-AMD EPYC", "3.1+debian", POCL_VERSION, &f, &e), CLDP_ERR_FORMAT);
    CHECK(strstr(cldp_last_error(), "d.txt:2:") != NULL);
    cldp_tuning_file_free(&f);
    remove(path);

    /* cldp_tuning_load directly: a missing file is fine, a directory is not a file. */
    int found = 7;
    snprintf(path, sizeof path, "%s/nothing-here.txt", tmpdir);
    CHECK_OK(cldp_tuning_load(path, &f, &found));
    CHECK(found == 0 && f.count == 0);
    cldp_tuning_file_free(&f);
    snprintf(path, sizeof path, "%s/cldp", tmpdir);
    cldp_status st = cldp_tuning_load(path, &f, &found);
    CHECK((st == CLDP_ERR_IO || st == CLDP_ERR_FORMAT) && found == 0);
    cldp_tuning_file_free(&f);

    /* CLDP_TUNING: off applies nothing, a bad value is refused. */
    CHECK_STATUS(cldp_test_control(CLDP_TEST_CONFIG, "CLDP_TUNING", "sometimes"), CLDP_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cldp_last_error(), "CLDP_TUNING=sometimes") && strstr(cldp_last_error(), "verbose"));
    cldp_test_control(CLDP_TEST_CONFIG, "CLDP_TUNING", "off");
    CHECK_OK(cldp_tuning_apply((cl_device_id)&found, "basic-haswell-AMD EPYC", "3.1+debian", "test")); /* never touches dev */
    cldp_test_control(CLDP_TEST_CONFIG, "CLDP_TUNING", (const char *)NULL);
    CHECK_STATUS(cldp_tuning_apply(NULL, "x", "y", "test"), CLDP_ERR_INVALID_ARGUMENT);

    static const char *const made[] = {"cldp/tuning/a.txt", "cldp/tuning/b.txt", "cldp/tuning/c.txt.tmp", "mine.tuning"};
    for (size_t i = 0; i < sizeof made / sizeof *made; i++) { /* leave an empty cache for the device part */
        snprintf(path, sizeof path, "%s/%s", tmpdir, made[i]);
        CHECK(remove(path) == 0);
    }
}

static void cleanup(void)
{
    static const char *const names[] = {"cldp/tuning/a.txt", "cldp/tuning/b.txt", "cldp/tuning/c.txt.tmp",
                                        "cldp/tuning/big.txt", "mine.tuning", "cldp/tuning", "cldp"};
    char path[600];
    if (!tmpdir[0]) return;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
        remove(path);
    }
    rmdir(tmpdir);
}

/* ---- on a device: the built-in parameters give correct GEMMs ------------------------------ */

/* C = alpha·op(A)·op(B) + beta·C, all row-major, in double. */
static void ref_gemm(int ta, int tb, size_t m, size_t n, size_t k, double alpha, const float *a, const float *b,
                     double beta, const float *c0, double *ref)
{
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double s = 0;
            for (size_t p = 0; p < k; p++)
                s += (double)(ta ? a[p * m + i] : a[i * k + p]) * (double)(tb ? b[j * k + p] : b[p * n + j]);
            ref[i * n + j] = alpha * s + beta * c0[i * n + j];
        }
}

static void check_gemm(cl_context ctx, cl_command_queue q, int ta, int tb, size_t m, size_t n, size_t k, float alpha, float beta)
{
    float *a = malloc(m * k * sizeof *a), *b = malloc(k * n * sizeof *b), *c = malloc(m * n * sizeof *c);
    float *c0 = malloc(m * n * sizeof *c0);
    double *ref = malloc(m * n * sizeof *ref);
    assert(a && b && c && c0 && ref);
    test_fill(a, m * k, -1, 1);
    test_fill(b, k * n, -1, 1);
    test_fill(c0, m * n, -1, 1);
    ref_gemm(ta, tb, m, n, k, alpha, a, b, beta, c0, ref);
    cl_int err;
    cl_mem da = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, m * k * sizeof *a, a, &err);
    assert(err == CL_SUCCESS);
    cl_mem db = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, k * n * sizeof *b, b, &err);
    assert(err == CL_SUCCESS);
    cl_mem dc = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, m * n * sizeof *c, c0, &err);
    assert(err == CL_SUCCESS);
    CLBlastStatusCode st = CLBlastSgemm(CLBlastLayoutRowMajor, ta ? CLBlastTransposeYes : CLBlastTransposeNo,
                                        tb ? CLBlastTransposeYes : CLBlastTransposeNo, m, n, k, alpha, da, 0, ta ? m : k,
                                        db, 0, tb ? k : n, beta, dc, 0, n, &q, NULL);
    char what[96];
    snprintf(what, sizeof what, "SGEMM %zux%zux%zu %c%c alpha %g beta %g", m, n, k, ta ? 't' : 'n', tb ? 't' : 'n', alpha, beta);
    if (st != CLBlastSuccess) {
        fprintf(stderr, "FAIL %s: CLBlastSgemm returned %d\n", what, (int)st);
        test_failures++;
    } else {
        for (size_t i = 0; i < m * n; i++) c[i] = NAN; /* host poison: a short read shows */
        err = clEnqueueReadBuffer(q, dc, CL_TRUE, 0, m * n * sizeof *c, c, 0, NULL, NULL);
        CHECK(err == CL_SUCCESS);
        /* float32 sums of k products of magnitude <= 1 */
        test_close(what, c, ref, m * n, 1e-5 * (double)k + 1e-5, 1e-5);
    }
    clReleaseMemObject(da);
    clReleaseMemObject(db);
    clReleaseMemObject(dc);
    free(a);
    free(b);
    free(c);
    free(c0);
    free(ref);
}

/* Returns 0 when there was no PoCL basic device to run on (a skip). */
static int test_device(void)
{
    const cldp_dev *devs;
    size_t ndev = 0;
    if (cldp_devices(&devs, &ndev) != CLDP_OK || ndev == 0) {
        printf("SKIP device part: no OpenCL device (%s)\n", cldp_last_error());
        return 0;
    }
    const cldp_dev *d = &devs[0];
    printf("device: %s (driver %s, %s)\n", d->info.name, d->info.driver_version, d->info.opencl_version);
    cldp_test_control(CLDP_TEST_CONFIG, "CLDP_TUNING_FILE", (const char *)NULL);
    setenv("XDG_CACHE_HOME", tmpdir, 1); /* an empty cache: the built-in results are what applies */

    const cldp_tuning_entry *e;
    cldp_tuning_file f;
    CHECK_OK(cldp_tuning_lookup(d->info.name, d->info.driver_version, d->info.opencl_version, &f, &e));
    int pocl_x86 = strstr(d->info.opencl_version, "HSTR: ") && strstr(d->info.opencl_version, "x86_64") &&
                   (!strncmp(d->info.name, "basic-", 6) || !strncmp(d->info.name, "cpu-minimal-", 12));
    if (pocl_x86) CHECK(e != NULL); /* the built-in table must cover this device */
    size_t threshold = 896; /* CLBlast's generic default */
    if (e)
        for (size_t i = 0; i < e->nkernels; i++)
            if (!strcmp(e->kernels[i].name, "GemmRoutine")) threshold = e->kernels[i].param_values[0];
    printf("built-in entry: %s (XGEMM_MIN_INDIRECT_SIZE %zu)\n", e ? e->device : "none", threshold);
    cldp_tuning_file_free(&f);

    /* Parameters a device cannot run are refused before anything is applied. */
    char path[600];
    snprintf(path, sizeof path, "%s/cldp/tuning/big.txt", tmpdir);
    write_file(path, "device = *\nCopy/32 = COPY_DIMX=4096 COPY_DIMY=4096 COPY_VW=1 COPY_WPT=1\n");
    CHECK_STATUS(cldp_tuning_apply(d->id, d->info.name, d->info.driver_version, "test device"), CLDP_ERR_FORMAT);
    CHECK(strstr(cldp_last_error(), "big.txt:2:") && strstr(cldp_last_error(), "work-group"));
    remove(path);

    cldp_test_control(CLDP_TEST_CONFIG, "CLDP_TUNING", "verbose");
    CHECK_OK(cldp_tuning_apply(d->id, d->info.name, d->info.driver_version, "test device"));
    cldp_test_control(CLDP_TEST_CONFIG, "CLDP_TUNING", (const char *)NULL);

    cl_int err;
    cl_context ctx = clCreateContext(NULL, 1, &d->id, NULL, NULL, &err);
    assert(err == CL_SUCCESS);
    cl_command_queue q = clCreateCommandQueue(ctx, d->id, 0, &err);
    assert(err == CL_SUCCESS);
    /* Odd sizes on both sides of the threshold: the small ones run XgemmDirect, the large ones
     * the indirect Xgemm with its pad/transpose kernels. */
    static const size_t dims[] = {1, 7, 33, 129, 257};
    size_t ndims = sizeof dims / sizeof *dims, indirect = 0, direct = 0;
    unsigned long long t3 = (unsigned long long)threshold * threshold * threshold;
    for (int round = 0; round < 14; round++) {
        size_t m = dims[test_rand() % ndims], n = dims[test_rand() % ndims], k = dims[test_rand() % ndims];
        if (round == 0) m = n = k = 1;
        if (round == 1) m = n = k = 257;
        if (round == 2) { m = 129; n = 257; k = 513; }
        if (round == 3) { m = 64; n = 256; k = 784; }
        int ta = (int)(test_rand() & 1), tb = (int)(test_rand() & 1);
        float beta = round % 3 == 0 ? 1.0f : 0.0f, alpha = round % 4 == 1 ? 0.5f : 1.0f;
        (unsigned long long)m * n * k < t3 ? direct++ : indirect++;
        check_gemm(ctx, q, ta, tb, m, n, k, alpha, beta);
    }
    if (indirect == 0 && threshold < 1100) { /* make sure the indirect kernel ran too */
        check_gemm(ctx, q, 0, 1, threshold + 1, threshold + 1, threshold + 1, 1.0f, 0.0f);
        indirect++;
    }
    printf("GEMMs checked: %zu direct, %zu indirect\n", direct, indirect);
    CHECK(direct > 0 && indirect > 0);
    clReleaseCommandQueue(q);
    clReleaseContext(ctx);
    return 1;
}

int main(void)
{
    test_rng_state = test_seed("test_tuning");
    test_parse_good();
    test_parse_bad();
    test_parse_fuzz();
    test_patterns();
    test_match();
    test_sources();
    int ran = test_device();
    cleanup();
    if (!ran && !test_failures) return TEST_SKIP_CODE;
    return test_finish("test_tuning");
}
