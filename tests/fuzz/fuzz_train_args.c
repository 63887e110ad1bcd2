/* fuzz_train_args.c — libFuzzer target for cldp-train's command line: samples/cldp-train.c is
 * compiled into this file (its main renamed) so its own static parse_args runs on the input.
 *
 * Input framing: the arguments after the program name, separated by NUL or newline bytes (at most
 * 64). Each argument is its own allocation of exactly its length, as the kernel hands argv over, so
 * reading past one is caught. What parse_args prints (usage, complaints) goes to /dev/null: the
 * sample's stdout and stderr are redirected at compile time, so the fuzzer's own reports and the
 * expectations below still reach the real stderr. */
#define _POSIX_C_SOURCE 200809L /* as the sample defines it, before any system header */
#include <stdio.h>

static FILE *sample_out; /* /dev/null, for everything the sample prints */
#undef stdout
#undef stderr
#define stdout sample_out
#define stderr sample_out
#define main cldp_train_main
#include "../../samples/cldp-train.c"
#include "fuzz.h"
#undef main
#undef stdout
#undef stderr
#define stdout stdout
#define stderr stderr

#include <stdint.h>


#define MAX_ARGS 64

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    sample_out = fopen("/dev/null", "w");
    if (!sample_out) abort();
    return 0;
}

/* 1 when p is NULL or points into one of the arguments. */
static int from_argv(const char *p, char **argv, int argc)
{
    if (!p) return 1;
    for (int i = 1; i < argc; i++)
        if (p >= argv[i] && p <= argv[i] + strlen(argv[i])) return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    static char prog[] = "cldp-train";
    argv[argc++] = prog;
    size_t start = 0;
    for (size_t i = 0; i <= size && argc <= MAX_ARGS; i++) {
        if (i < size && data[i] != 0 && data[i] != '\n') continue;
        if (i == size && i == start && (argc > 1 || size == 0)) break; /* no empty last argument */
        size_t len = i - start;
        char *a = malloc(len + 1);
        if (!a) break;
        memcpy(a, data + start, len);
        a[len] = 0;
        argv[argc++] = a;
        start = i + 1;
    }
    argv[argc] = NULL;

    args a;
    memset(&a, 0, sizeof a); /* parse_args must not depend on main's defaults to stay safe */
    int r = parse_args(argc, argv, &a);
    EXPECT(r == 0 || r == 1 || r == -1);
    if (r == 0) {
        EXPECT(from_argv(a.devices, argv, argc) && from_argv(a.data, argv, argc));
        EXPECT(a.epochs == 0 || (a.epochs >= 1 && a.epochs <= 100000));
        EXPECT(a.batch == 0 || (a.batch >= 1 && a.batch <= (1u << 20)));
        EXPECT(isfinite(a.lr) && a.lr > 0);
        EXPECT(isfinite(a.momentum) && a.momentum >= 0 && a.momentum < 1);
        EXPECT(isfinite(a.weight_decay) && a.weight_decay >= 0);
        EXPECT(a.optimizer == CLDP_OPT_ADAM || a.optimizer == CLDP_OPT_SGD);
        EXPECT(a.act == CLDP_ACT_NONE || a.act == CLDP_ACT_RELU || a.act == CLDP_ACT_TANH);
        EXPECT(a.nhidden <= MAX_HIDDEN);
        for (size_t l = 0; l < a.nhidden; l++) EXPECT(a.hidden[l] >= 1 && a.hidden[l] <= (1u << 16));
    }
    for (int i = 1; i < argc; i++) free(argv[i]);
    return 0;
}
