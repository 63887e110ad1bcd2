/* optim.h — the optimizer's update on the host, one block of parameters at a time, for the
 * trainer's fused reduce-and-update pass (trainer.c). Internal. */
#ifndef CLDP_OPTIM_H
#define CLDP_OPTIM_H

#include <stddef.h>

typedef struct cldp_update {
    int sgd;              /* SGD with momentum, else Adam */
    float lr, wd;         /* learning rate, weight decay */
    float mu;             /* SGD momentum */
    float b1, b2, eps;    /* Adam */
    float c1, c2;         /* Adam bias corrections of this step, 1 - b^t */
} cldp_update;

/* Largest block cldp_update_block takes. */
#define CLDP_UPDATE_BLOCK 256

/* Updates len <= CLDP_UPDATE_BLOCK parameters from their summed gradient g: reads the
 * parameters p and moments m1 (and m2 for Adam), writes the new ones to np, nm1 (nm2), which
 * must not overlap the inputs. The new values are written with streaming stores where the CPU
 * has them (they are not read again soon, and so never need reading into the cache first): call
 * cldp_update_fence before another thread may read them. Returns CLDP_UPDATE_BAD_GRAD when some
 * g[i] is NaN or Inf, CLDP_UPDATE_BAD_RESULT when a new parameter or moment is (checked on the
 * values in registers, not read back), or both OR-ed; 0 when all is finite. The arithmetic is
 * element by element, so the bits do not depend on how it is blocked. */
enum { CLDP_UPDATE_BAD_GRAD = 1, CLDP_UPDATE_BAD_RESULT = 2 };
int cldp_update_block(const cldp_update *u, const float *g, const float *p, const float *m1, const float *m2,
                      float *np, float *nm1, float *nm2, size_t len);
void cldp_update_fence(void);

/* 1 when g[0, n) holds no NaN or Inf. */
int cldp_all_finite(const float *g, size_t n);

#endif
