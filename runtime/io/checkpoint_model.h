/* checkpoint_model.h — the checkpoint's model section (MODL): each layer's kind and settings and
 * the input shape (format version 2), and the dense-only layout of version 1, which still loads.
 * Internal to checkpoint.c. */
#ifndef CLDP_CHECKPOINT_MODEL_H
#define CLDP_CHECKPOINT_MODEL_H

#include "model.h"

#define CLDP_CKPT_VERSION 2u     /* what this cldp writes */
#define CLDP_CKPT_VERSION_MIN 1u /* the oldest it reads */

/* Bytes of m's section in the current version, and the section itself into buf (that long). */
uint64_t cldp_ckpt_model_len(const cldp_model *m);
void cldp_ckpt_model_put(const cldp_model *m, unsigned char *buf);

/* Compares the section (of a file of `version`) with the trainer's model `want`: CLDP_OK when
 * they are the same model, CLDP_ERR_FORMAT naming both (as specs) when not, or naming what is
 * damaged. */
cldp_status cldp_ckpt_model_check(const char *path, uint32_t version, const unsigned char *b, uint64_t len,
                                   const cldp_model *want);

#endif
