/* checkpoint_model.c — the checkpoint's model section, written in the current layout and read in
 * either (see checkpoint_model.h):
 *
 *   version 2  u64 inputs  u64 parameter count  u32 loss  u32 layer count  u32 C, H, W  u32 0
 *              per layer: u32 kind  u32 activation  u64 out channels (units)  u32 kernel
 *                         u32 stride  u32 padding  u32 0
 *              (dropout, kind 7: its probability P's float32 bits in the kernel field; files
 *              written before dropout have no kind 7 and read as before)
 *   version 1  u64 inputs  u64 parameter count  u32 loss  u32 layer count
 *              per layer: u64 units  u32 activation  u32 0          (dense layers only)
 *
 * A file's model is rebuilt layer by layer through the layer table, which checks every setting
 * and shape exactly as building the model did, then compared with the trainer's. */
#include "checkpoint_model.h"
#include "le.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define V2_FIXED 40u
#define V2_LAYER 32u
#define V1_FIXED 24u
#define V1_LAYER 16u

uint64_t cldp_ckpt_model_len(const cldp_model *m) { return V2_FIXED + V2_LAYER * (uint64_t)m->nlayers; }

void cldp_ckpt_model_put(const cldp_model *m, unsigned char *b)
{
    memset(b, 0, (size_t)cldp_ckpt_model_len(m));
    put_u64(b, m->inputs);
    put_u64(b + 8, m->nparams);
    put_u32(b + 16, (uint32_t)m->loss);
    put_u32(b + 20, (uint32_t)m->nlayers);
    put_u32(b + 24, (uint32_t)m->in_c);
    put_u32(b + 28, (uint32_t)m->in_h);
    put_u32(b + 32, (uint32_t)m->in_w);
    for (size_t l = 0; l < m->nlayers; l++) {
        const cldp_layer_desc *L = &m->layers[l];
        unsigned char *e = b + V2_FIXED + V2_LAYER * l;
        put_u32(e, (uint32_t)L->kind);
        put_u32(e + 4, (uint32_t)L->act);
        put_u64(e + 8, L->out_c);
        uint32_t p;
        memcpy(&p, &L->drop, sizeof p);
        put_u32(e + 16, L->kind == CLDP_LAYER_DROPOUT ? p : (uint32_t)L->k);
        put_u32(e + 20, (uint32_t)L->stride);
        put_u32(e + 24, (uint32_t)L->pad);
    }
}

/* The file's model into *m; CLDP_ERR_FORMAT naming what is damaged. */
static cldp_status decode(const char *path, uint32_t version, const unsigned char *b, uint64_t len, cldp_model *m,
                          uint64_t *nparams)
{
    uint64_t fixed = version == 1 ? V1_FIXED : V2_FIXED, per = version == 1 ? V1_LAYER : V2_LAYER;
    if (len < fixed) return cldp_fail(CLDP_ERR_FORMAT, "checkpoint '%s' is damaged: model section of %llu bytes", path, (unsigned long long)len);
    uint64_t inputs = get_u64(b);
    uint32_t loss = get_u32(b + 16), nlayers = get_u32(b + 20);
    *nparams = get_u64(b + 8);
    if (nlayers > CLDP_MAX_LAYERS || len != fixed + per * (uint64_t)nlayers)
        return cldp_fail(CLDP_ERR_FORMAT, "checkpoint '%s' is damaged: model section of %llu bytes for %u layers", path,
                         (unsigned long long)len, nlayers);
    uint64_t c = version == 1 ? inputs : get_u32(b + 24), h = version == 1 ? 1 : get_u32(b + 28), w = version == 1 ? 1 : get_u32(b + 32);
    if ((version > 1 && get_u32(b + 36) != 0) || c == 0 || h == 0 || w == 0 || c * h * w != inputs || inputs > CLDP_MAX_UNITS ||
        (loss != CLDP_LOSS_SOFTMAX_CROSS_ENTROPY && loss != CLDP_LOSS_MSE))
        return cldp_fail(CLDP_ERR_FORMAT, "checkpoint '%s' is damaged: input %llu (%llux%llux%llu), loss %u", path,
                         (unsigned long long)inputs, (unsigned long long)c, (unsigned long long)h, (unsigned long long)w, loss);
    memset(m, 0, sizeof *m);
    m->inputs = (size_t)inputs, m->in_c = (size_t)c, m->in_h = (size_t)h, m->in_w = (size_t)w;
    m->loss = (cldp_loss)loss;
    for (uint32_t l = 0; l < nlayers; l++) {
        const unsigned char *e = b + fixed + per * l;
        cldp_layer_desc L = {0};
        uint32_t reserved;
        if (version == 1) {
            L.kind = CLDP_LAYER_DENSE;
            L.out_c = (size_t)get_u64(e);
            L.act = (cldp_activation)get_u32(e + 8);
            reserved = get_u32(e + 12);
        } else {
            L.kind = (cldp_layer_kind)get_u32(e);
            L.act = (cldp_activation)get_u32(e + 4);
            L.out_c = (size_t)get_u64(e + 8);
            L.k = get_u32(e + 16), L.stride = get_u32(e + 20), L.pad = get_u32(e + 24);
            reserved = get_u32(e + 28);
            if (L.kind == CLDP_LAYER_DROPOUT) {
                uint32_t p = (uint32_t)L.k;
                memcpy(&L.drop, &p, sizeof p);
                L.k = 0;
            }
        }
        if (reserved != 0) /* a reader of a later layout must not guess */
            return cldp_fail(CLDP_ERR_FORMAT, "checkpoint '%s' is damaged: reserved field of layer %u is not 0", path, l);
        if (L.act > CLDP_ACT_SIGMOID || (L.kind != CLDP_LAYER_DENSE && L.act != CLDP_ACT_NONE))
            return cldp_fail(CLDP_ERR_FORMAT, "checkpoint '%s' is damaged: layer %u has activation %u", path, l, (unsigned)L.act);
        char what[300];
        snprintf(what, sizeof what, "checkpoint '%s' is damaged: its layer %u", path, l + 1);
        if (cldp_model_add_layer(m, &L, what) != CLDP_OK) return CLDP_ERR_FORMAT; /* the message says what */
    }
    return CLDP_OK;
}

/* "1x28x28 -> conv:32:5:p2,relu,... (loss xent)" for a message. */
static void describe(const cldp_model *m, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%zux%zux%zu -> ", m->in_c, m->in_h, m->in_w);
    if (n < 0 || (size_t)n + 16 >= cap || cldp_model_describe(m, buf + n, cap - (size_t)n - 16) != CLDP_OK) {
        snprintf(buf, cap, "(a model too long to show)");
        return;
    }
    size_t used = strlen(buf);
    snprintf(buf + used, cap - used, " (loss %s)", m->loss == CLDP_LOSS_MSE ? "mse" : "xent");
}

cldp_status cldp_ckpt_model_check(const char *path, uint32_t version, const unsigned char *b, uint64_t len, const cldp_model *want)
{
    cldp_model *have = cldp_malloc(sizeof *have, "checkpoint model");
    if (!have) return CLDP_ERR_HOST_MEMORY;
    uint64_t nparams = 0;
    cldp_status st = decode(path, version, b, len, have, &nparams);
    if (st == CLDP_OK && nparams != have->nparams)
        st = cldp_fail(CLDP_ERR_FORMAT, "checkpoint '%s' is damaged: it says %llu parameters, its layers have %zu", path,
                       (unsigned long long)nparams, have->nparams);
    if (st == CLDP_OK && !cldp_model_same(have, want)) {
        char a[1024], w[1024];
        describe(have, a, sizeof a);
        describe(want, w, sizeof w);
        st = cldp_fail(CLDP_ERR_FORMAT,
                       "checkpoint '%s' is for a wrong model: the file holds %s (%zu parameters), the trainer has %s (%zu parameters); "
                       "load it into a trainer built with the same model",
                       path, a, have->nparams, w, want->nparams);
    }
    free(have);
    return st;
}
