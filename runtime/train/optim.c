/* optim.c — SGD with momentum and Adam on one block of parameters (optim.h), the finiteness
 * check of gradients and inputs, and the trainer's update block that applies them. On x86 the new
 * values go out with non-temporal stores: the outputs are fresh buffers, and ordinary stores
 * would first read every line of them into the cache. SSE's arithmetic is IEEE single precision
 * like the scalar code's, so both paths give the same bits. */
#include "optim.h"
#include "trainer.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__) && !defined(CLDP_NO_STREAM)
#include <emmintrin.h>
#define CLDP_HAVE_STREAM 1
#endif

void cldp_update_fence(void)
{
#ifdef CLDP_HAVE_STREAM
    _mm_sfence(); /* streaming stores are weakly ordered: make them visible before what follows */
#endif
}

/* x - x is 0 for a finite x and NaN otherwise */
static int scalar_update(const cldp_update *u, const float *g, const float *p, const float *m1, const float *m2,
                         float *np, float *nm1, float *nm2, size_t b, size_t e)
{
    int bad = 0, out = 0;
    const float lr = u->lr, wd = u->wd;
    for (size_t i = b; i < e; i++) {
        float gi = g[i] + wd * p[i];
        bad |= g[i] - g[i] != 0.0f;
        if (u->sgd) {
            float m = u->mu * m1[i] + gi, q = p[i] - lr * m;
            nm1[i] = m;
            np[i] = q;
            out |= (m - m != 0.0f) | (q - q != 0.0f);
        } else {
            float m = u->b1 * m1[i] + (1.0f - u->b1) * gi, v = u->b2 * m2[i] + (1.0f - u->b2) * gi * gi;
            float q = p[i] - lr * (m / u->c1) / (sqrtf(v / u->c2) + u->eps);
            nm1[i] = m;
            nm2[i] = v;
            np[i] = q;
            out |= (m - m != 0.0f) | (v - v != 0.0f) | (q - q != 0.0f);
        }
    }
    return (bad ? CLDP_UPDATE_BAD_GRAD : 0) | (out ? CLDP_UPDATE_BAD_RESULT : 0);
}

int cldp_update_block(const cldp_update *u, const float *g, const float *p, const float *m1, const float *m2,
                      float *np, float *nm1, float *nm2, size_t len)
{
#ifdef CLDP_HAVE_STREAM
    /* a scalar head up to np's 16-byte boundary; the body four at a time where the other
     * outputs are aligned there too (they are, for buffers from the same allocator) */
    size_t head = 0;
    while (head < len && ((uintptr_t)(np + head) & 15)) head++;
    int aligned = !((uintptr_t)(nm1 + head) & 15) && (u->sgd || !((uintptr_t)(nm2 + head) & 15));
    if (aligned) {
        int bad = scalar_update(u, g, p, m1, m2, np, nm1, nm2, 0, head);
        size_t i = head;
        const __m128 lr = _mm_set1_ps(u->lr), wd = _mm_set1_ps(u->wd), zero = _mm_setzero_ps();
        __m128 nan = zero, out = zero; /* lanes where a gradient, or a result, was not finite */
        if (u->sgd) {
            const __m128 mu = _mm_set1_ps(u->mu);
            for (; i + 4 <= len; i += 4) {
                __m128 gv = _mm_loadu_ps(g + i), pv = _mm_loadu_ps(p + i);
                __m128 gi = _mm_add_ps(gv, _mm_mul_ps(wd, pv));
                nan = _mm_or_ps(nan, _mm_cmpneq_ps(_mm_sub_ps(gv, gv), zero));
                __m128 m = _mm_add_ps(_mm_mul_ps(mu, _mm_loadu_ps(m1 + i)), gi);
                __m128 q = _mm_sub_ps(pv, _mm_mul_ps(lr, m));
                out = _mm_or_ps(out, _mm_cmpneq_ps(_mm_add_ps(_mm_sub_ps(m, m), _mm_sub_ps(q, q)), zero));
                _mm_stream_ps(nm1 + i, m);
                _mm_stream_ps(np + i, q);
            }
        } else {
            const __m128 b1 = _mm_set1_ps(u->b1), b2 = _mm_set1_ps(u->b2), eps = _mm_set1_ps(u->eps);
            const __m128 one_b1 = _mm_set1_ps(1.0f - u->b1), one_b2 = _mm_set1_ps(1.0f - u->b2);
            const __m128 c1 = _mm_set1_ps(u->c1), c2 = _mm_set1_ps(u->c2);
            for (; i + 4 <= len; i += 4) {
                __m128 gv = _mm_loadu_ps(g + i), pv = _mm_loadu_ps(p + i);
                __m128 gi = _mm_add_ps(gv, _mm_mul_ps(wd, pv));
                nan = _mm_or_ps(nan, _mm_cmpneq_ps(_mm_sub_ps(gv, gv), zero));
                __m128 a = _mm_add_ps(_mm_mul_ps(b1, _mm_loadu_ps(m1 + i)), _mm_mul_ps(one_b1, gi));
                __m128 v = _mm_add_ps(_mm_mul_ps(b2, _mm_loadu_ps(m2 + i)), _mm_mul_ps(_mm_mul_ps(one_b2, gi), gi));
                __m128 step = _mm_div_ps(_mm_mul_ps(lr, _mm_div_ps(a, c1)), _mm_add_ps(_mm_sqrt_ps(_mm_div_ps(v, c2)), eps));
                __m128 q = _mm_sub_ps(pv, step);
                out = _mm_or_ps(out, _mm_cmpneq_ps(
                                         _mm_add_ps(_mm_add_ps(_mm_sub_ps(a, a), _mm_sub_ps(v, v)), _mm_sub_ps(q, q)), zero));
                _mm_stream_ps(nm1 + i, a);
                _mm_stream_ps(nm2 + i, v);
                _mm_stream_ps(np + i, q);
            }
        }
        bad |= (_mm_movemask_ps(nan) ? CLDP_UPDATE_BAD_GRAD : 0) | (_mm_movemask_ps(out) ? CLDP_UPDATE_BAD_RESULT : 0);
        return bad | scalar_update(u, g, p, m1, m2, np, nm1, nm2, i, len);
    }
#endif
    return scalar_update(u, g, p, m1, m2, np, nm1, nm2, 0, len);
}

int cldp_all_finite(const float *g, size_t n)
{
    uint32_t bad = 0; /* exponent bits all set: Inf or NaN; an OR of integers, which vectorises */
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, g + i, sizeof u);
        bad |= (u & 0x7f800000u) == 0x7f800000u;
    }
    return !bad;
}

/* The fused pass's block: the summed gradient of parameters [at, at + len) updates them and
 * their moments into the next_* vectors. A non-finite gradient, or an update that made a value
 * non-finite, is recorded against the piece, and such a step never commits. */
int cldp_trainer_update_block(void *ctx, size_t at, const float *g, size_t len)
{
    const cldp_trainer *t = ctx;
    const cldp_update u = {t->opts.optimizer == CLDP_OPT_SGD, t->opts.learning_rate, t->opts.weight_decay,
                           t->opts.momentum, t->opts.beta1, t->opts.beta2, t->opts.epsilon,
                           (float)t->bc1, (float)t->bc2};
    int bad = cldp_update_block(&u, g, t->master + at, t->opt_m + at, t->opt_v + at, t->next_master + at,
                                t->next_m + at, t->next_v + at, len);
    return bad & CLDP_UPDATE_BAD_GRAD ? CODE_GRAD_NONFINITE : bad ? CODE_UPDATE_NONFINITE : 0;
}
