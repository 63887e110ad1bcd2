/* fuzz_checkpoint.c — libFuzzer target for the checkpoint reader: runtime/io/checkpoint.c is compiled
 * into this file so its static validate() — header, length, sections, model, parameters,
 * optimizer state, split — runs on the input against a fixed small model, with no
 * device (what it accepts, a load commits as it is).
 *
 * Input: a checkpoint file. Its CRC-32 trailer is recomputed before validating, so mutations reach
 * the sections instead of all stopping at the checksum (the checksum check itself is tested, at
 * every byte offset, by tests/test_checkpoint.c). Seeds: real checkpoints of the model below, which
 * this program writes with the library when run as CLDP_FUZZ_WRITE_SEEDS=DIR fuzz_checkpoint (that
 * needs an OpenCL device; tests/fuzz/make-seeds.sh BUILD_DIR does it). */
#include "../../runtime/io/checkpoint.c" /* first: it sets _POSIX_C_SOURCE before any system header */
#include "fuzz.h"

#include <stdint.h>


int LLVMFuzzerInitialize(int *argc, char ***argv);
static cldp_model fake; /* the model validate checks the input against */

/* The model of every seed: 5 inputs, 4 ReLU, 3 logits (39 parameters). */
static cldp_model *make_model(void)
{
    cldp_model *m = NULL;
    if (cldp_model_create(5, &m) != CLDP_OK || cldp_model_add_dense(m, 4, CLDP_ACT_RELU) != CLDP_OK ||
        cldp_model_add_dense(m, 3, CLDP_ACT_NONE) != CLDP_OK)
        abort();
    return m;
}

/* Seeds from the library's own writer: Adam and SGD, with and without an application blob. */
static void write_seeds(const char *dir, cldp_model *m)
{
    static const struct { const char *name; cldp_optimizer opt; const char *user; } seeds[] = {
        {"adam", CLDP_OPT_ADAM, NULL}, {"sgd", CLDP_OPT_SGD, NULL}, {"adam-user", CLDP_OPT_ADAM, "epoch=3 order=..."}};
    for (size_t s = 0; s < sizeof seeds / sizeof *seeds; s++) {
        cldp_trainer_options o;
        cldp_trainer_options_init(&o);
        o.devices = "all";
        o.batch = 8;
        o.optimizer = seeds[s].opt;
        o.seed = 5 + s;
        cldp_trainer *t = NULL;
        if (cldp_trainer_create(m, &o, &t) != CLDP_OK) {
            fprintf(stderr, "fuzz_checkpoint: cannot write seeds: %s\n", cldp_last_error());
            exit(1);
        }
        float x[8 * 5];
        int32_t y[8];
        for (int i = 0; i < 8 * 5; i++) x[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
        for (int i = 0; i < 8; i++) y[i] = i % 3;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, seeds[s].name);
        if (cldp_trainer_step(t, x, y, 8, NULL) != CLDP_OK ||
            cldp_trainer_save_checkpoint(t, path, seeds[s].user, seeds[s].user ? strlen(seeds[s].user) : 0) != CLDP_OK) {
            fprintf(stderr, "fuzz_checkpoint: cannot write %s: %s\n", path, cldp_last_error());
            exit(1);
        }
        cldp_trainer_destroy(t);
        printf("fuzz_checkpoint: wrote %s\n", path);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    cldp_model *m = make_model();
    const char *dir = getenv("CLDP_FUZZ_WRITE_SEEDS");
    if (dir && *dir) {
        write_seeds(dir, m);
        exit(0);
    }
    fake = *m;
    cldp_model_destroy(m);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *buf = malloc(size ? size : 1); /* exactly the file: reading past it is caught */
    if (!buf) return 0;
    memcpy(buf, data, size);
    if (size >= CKPT_HEADER + CKPT_TRAILER) put_u32(buf + size - CKPT_TRAILER, cldp_crc32(buf, size - CKPT_TRAILER));
    parsed p;
    cldp_status st = validate(&fake, "fuzz input", buf, size, &p);
    const cldp_model *m = &fake;
    if (st == CLDP_OK) {
        /* every section lies inside the file, at the size the model gives it */
        const unsigned char *end = buf + size - CKPT_TRAILER;
        EXPECT(p.modl && p.prms && p.optm);
        /* the current version's model section is as long as the model gives it; a version-1 file's
         * is its older, shorter layout (checkpoint_model.c checked it) */
        EXPECT(p.modl >= buf + CKPT_HEADER && p.modl + p.modl_len <= end &&
               (get_u32(buf + 8) == 1 || p.modl_len == modl_len(m)));
        EXPECT(p.prms >= buf + CKPT_HEADER && p.prms + p.prms_len <= end && p.prms_len == prms_len(m));
        EXPECT(p.optm >= buf + CKPT_HEADER && p.optm + p.optm_len <= end && p.optm_len == optm_len(m));
        if (p.splt) EXPECT(p.splt + p.splt_len <= end && p.splt_len == splt_len(get_u32(p.splt)));
        if (p.user) EXPECT(p.user + p.user_len <= end);
        for (size_t i = 0; i < m->nparams; i++) EXPECT(isfinite(get_f32(p.prms + 8 + 4 * i)));
    } else {
        EXPECT(st == CLDP_ERR_FORMAT);
        EXPECT(strstr(cldp_last_error(), "fuzz input") != NULL); /* the message names the file */
    }
    free(buf);
    return 0;
}
