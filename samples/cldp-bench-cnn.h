/* cldp-bench-cnn.h — the section "cnn" of cldp-bench: the CNN preset of cldp-train on 1 vs 2
 * devices (weak scaling); the second convolution's forward and backward GFLOP/s by im2col + GEMM
 * beside its GEMMs alone (the plain GEMM rate of the same shapes on the same device) and beside
 * CLBlastSconvgemm, probed in a child process because it aborts on some CPU devices (CLBlast
 * issue #563); and the MLP step with dense layers' built-in activations (the kernel sequence of
 * the code before the layer table) beside the same MLP with activation layers. Included by
 * cldp-bench.c alone. */
#include "layers.h"

#define CNN_SPEC "conv:32:3:p1,relu,maxpool:2,conv:64:3:p1,relu,maxpool:2,flatten,dense:128,relu,dense:10"
#define CONV_SPEC "conv:64:3:p1,flatten,dense:2" /* the preset's second convolution, on 32x14x14 */

static cldp_model *parse_or_die(const char *spec, size_t c, size_t h, size_t w)
{
    cldp_model *m = NULL;
    if (cldp_model_parse(spec, c, h, w, &m) != CLDP_OK) die(spec);
    return m;
}

/* The conv layer 0 of CONV_SPEC on a replica of `rows` rows: median ms of forward, its GEMM
 * alone, backward (dW, db, dX) and its two GEMMs alone. */
static void conv_ms(size_t rows, int reps, double out[4])
{
    const cldp_dev *devs;
    size_t n;
    if (cldp_devices(&devs, &n) != CLDP_OK) die("devices");
    cldp_model *m = parse_or_die(CONV_SPEC, 32, 14, 14);
    cldp_replica *r;
    if (cldp_replica_create(&devs[0], m, rows, &r) != CLDP_OK) die("replica");
    float *p = malloc(m->nparams * sizeof(float)), *x = malloc(rows * m->inputs * sizeof(float));
    for (size_t i = 0; i < m->nparams; i++) p[i] = frand() * 0.1f;
    for (size_t i = 0; i < rows * m->inputs; i++) x[i] = frand();
    if (cldp_replica_write_params(r, p, 0, m->nparams) || cldp_replica_load(r, x, NULL, rows)) die("conv load");
    const cldp_layer_desc *L = &m->layers[0];
    const cldp_pass_ops *ops = cldp_pass_of(L->kind);
    cldp_pass ps = {0, rows, r->x, r->act[0], r->delta[0], r->delta[1], 0, NULL};
    cldp_layer_size ls;
    cldp_layer_size_of(m, 0, rows, &ls);
    double t[4][16];
    for (int k = -1; k < reps; k++) {
        double t0 = now_ms();
        if (ops->forward(r, L, &ps) || cldp_replica_finish(r)) die("conv forward");
        double t1 = now_ms();
        if (cldp_replica_gemm(r, &ls.gemm[CLDP_GEMM_FORWARD], r->params, r->scratch[0], 0.0f, r->scratch[1]) || cldp_replica_finish(r))
            die("conv gemm");
        double t2 = now_ms();
        if (ops->backward(r, L, &ps) || cldp_replica_finish(r)) die("conv backward");
        double t3 = now_ms();
        if (cldp_replica_gemm(r, &ls.gemm[CLDP_GEMM_DW], r->scratch[1], r->scratch[0], 0.0f, r->grads) ||
            cldp_replica_gemm(r, &ls.gemm[CLDP_GEMM_DX], r->params, r->scratch[1], 0.0f, r->scratch[0]) || cldp_replica_finish(r))
            die("conv gemms");
        double t4 = now_ms();
        if (k < 0) continue; /* compiles and specialises */
        t[0][k] = t1 - t0, t[1][k] = t2 - t1, t[2][k] = t3 - t2, t[3][k] = t4 - t3;
    }
    for (int i = 0; i < 4; i++) out[i] = median(t[i], reps);
    free(p), free(x);
    cldp_replica_destroy(r);
    cldp_model_destroy(m);
}

/* --probe-convgemm ROWS: CLBlastSconvgemm on the same convolution; prints its median ms and the
 * largest difference from the im2col + GEMM forward (bias excluded), or dies with CLBlast. */
static void probe_convgemm(size_t rows)
{
    const cldp_dev *devs;
    size_t n;
    if (cldp_devices(&devs, &n) != CLDP_OK) exit(1);
    cldp_model *m = parse_or_die(CONV_SPEC, 32, 14, 14);
    cldp_replica *r;
    if (cldp_replica_create(&devs[0], m, rows, &r) != CLDP_OK) exit(1);
    const cldp_layer_desc *L = &m->layers[0];
    float *p = malloc(m->nparams * sizeof(float)), *x = malloc(rows * m->inputs * sizeof(float));
    for (size_t i = 0; i < m->nparams; i++) p[i] = frand() * 0.1f;
    for (size_t i = L->b_off; i < L->b_off + L->out_c; i++) p[i] = 0; /* convgemm has no bias */
    for (size_t i = 0; i < rows * m->inputs; i++) x[i] = frand();
    if (cldp_replica_write_params(r, p, 0, m->nparams) || cldp_replica_load(r, x, NULL, rows) || cldp_replica_forward(r, rows)) exit(1);
    size_t outn = rows * L->out;
    float *a = malloc(outn * sizeof(float)), *b = malloc(outn * sizeof(float));
    clEnqueueReadBuffer(r->queue, r->act[0], CL_TRUE, 0, outn * sizeof(float), a, 0, NULL, NULL);
    const float nan = NAN; /* what convgemm leaves unwritten shows */
    clEnqueueFillBuffer(r->queue, r->act[0], &nan, sizeof nan, 0, outn * sizeof(float), 0, NULL, NULL);
    double ms[8];
    for (int k = -1; k < 5; k++) {
        double t0 = now_ms();
        CLBlastStatusCode st = CLBlastSconvgemm(CLBlastKernelModeCrossCorrelation, L->in_c, L->in_h, L->in_w, L->k, L->k, L->pad,
                                                L->pad, L->stride, L->stride, 1, 1, L->out_c, rows, r->x, 0, r->params, L->w_off,
                                                r->act[0], 0, &r->queue, NULL);
        if (st != CLBlastSuccess || clFinish(r->queue) != CL_SUCCESS) exit(1);
        if (k >= 0) ms[k] = now_ms() - t0;
    }
    clEnqueueReadBuffer(r->queue, r->act[0], CL_TRUE, 0, outn * sizeof(float), b, 0, NULL, NULL);
    double err = 0;
    for (size_t i = 0; i < outn; i++) {
        double e = fabs((double)a[i] - b[i]);
        err = e > err || e != e ? (e != e ? INFINITY : e) : err;
    }
    printf("%.4f %.3g\n", median(ms, 5), err);
    exit(0);
}

/* ms per step, alternating between two trainers step by step */
static void alternate(cldp_trainer *a, size_t ba, const data *da, cldp_trainer *b, size_t bb, const data *db, int steps, double *ma,
                      double *mb)
{
    enum { MAXS = 64 };
    double x[MAXS], y[MAXS];
    int na = 0, nb = 0;
    if (steps > MAXS) steps = MAXS;
    one_step(a, da, ba, &na), one_step(b, db, bb, &nb);
    for (int k = 0; k < steps; k++) {
        x[k] = one_step(a, da, ba, &na);
        y[k] = one_step(b, db, bb, &nb);
    }
    *ma = median(x, steps), *mb = median(y, steps);
}

static void bench_cnn(const opts *o, FILE *js, const cldp_model *mlp, const data *dm)
{
    printf("\n8. CNN: %s on 1x28x28\n", CNN_SPEC);
    cldp_model *cnn = parse_or_die(CNN_SPEC, 1, 28, 28);
    size_t per = 64;
    data d = make_data(8 * per, 784, 10);
    cldp_trainer *t1 = make_trainer(cnn, need_devices(0, 1), per, "even"), *t2 = make_trainer(cnn, need_devices(0, 2), 2 * per, "even");
    double ms1, ms2;
    alternate(t1, per, &d, t2, 2 * per, &d, 2 * o->steps, &ms1, &ms2);
    double s1 = (double)per / ms1 * 1e3, s2 = (double)(2 * per) / ms2 * 1e3;
    printf("   weak scaling (%zu per device): 1 device %.0f samples/s, 2 devices %.0f, speed-up %.2fx (target >= 1.8x)\n", per, s1, s2,
           s2 / s1);
    cldp_trainer_destroy(t1);
    cldp_trainer_destroy(t2);

    size_t rows = 64;
    double c[4];
    conv_ms(rows, o->quick ? 3 : 7, c);
    cldp_model *cm = parse_or_die(CONV_SPEC, 32, 14, 14);
    const cldp_layer_desc *L = &cm->layers[0];
    double flop = 2.0 * (double)rows * (double)(L->out_c * L->in_c * L->k * L->k) * (double)(L->out_h * L->out_w);
    printf("   conv 32->64 3x3 p1 on 14x14, %zu rows (medians): forward im2col+GEMM %.1f ms = %.1f GFLOP/s, its GEMM alone %.1f ms = "
           "%.1f GFLOP/s\n", rows, c[0], flop / c[0] / 1e6, c[1], flop / c[1] / 1e6);
    printf("   backward (dW, db, dX) %.1f ms = %.1f GFLOP/s, its two GEMMs alone %.1f ms = %.1f GFLOP/s\n", c[2], 2 * flop / c[2] / 1e6, c[3],
           2 * flop / c[3] / 1e6);
    double cg[2] = {0, 0};
    char args[64];
    snprintf(args, sizeof args, "--probe-convgemm %zu", rows);
    int cg_ok = run_child("CLDP_QUIET=1", args, cg, 2) == 0;
    if (cg_ok)
        printf("   CLBlastSconvgemm forward %.1f ms = %.1f GFLOP/s, largest difference from im2col+GEMM %.2g%s\n", cg[0], flop / cg[0] / 1e6,
               cg[1], cg[1] > 1e-3 ? " (WRONG on this device: im2col + GEMM stays)" : "");
    else
        printf("   CLBlastSconvgemm: failed or aborted on this device (CLBlast issue #563); cldp uses im2col + GEMM\n");
    cldp_model_destroy(cm);

    /* the MLP: dense layers' built-in activations (the code before the layer table ran exactly
     * these GEMMs and kernels) vs separate activation layers, one device, alternating steps */
    cldp_model *sep = parse_or_die("dense:1024,relu,dense:1024,relu,dense:10", 784, 1, 1);
    if (o->hidden != 1024) die("the MLP comparison assumes hidden 1024");
    cldp_trainer *ta = make_trainer(mlp, need_devices(0, 1), o->batch, "even"), *tb = make_trainer(sep, need_devices(0, 1), o->batch, "even");
    double ma, mb;
    alternate(ta, o->batch, dm, tb, o->batch, dm, 2 * o->steps, &ma, &mb);
    printf("   MLP 784-1024-1024-10, batch %zu, 1 device: built-in activations %.1f ms/step, activation layers %.1f ms/step, "
           "ratio %.3f\n", o->batch, ma, mb, ma / mb);
    cldp_trainer_destroy(ta);
    cldp_trainer_destroy(tb);
    cldp_model_destroy(sep);
    fprintf(js, "\"cnn\":{\"weak_speedup\":%.3f,\"one_device_sps\":%.1f,\"two_devices_sps\":%.1f,\"conv_fwd_gflops\":%.2f,"
                "\"conv_fwd_gemm_gflops\":%.2f,\"conv_bwd_gflops\":%.2f,\"conv_bwd_gemm_gflops\":%.2f,\"convgemm_gflops\":%.2f,"
                "\"mlp_builtin_ms\":%.2f,\"mlp_layers_ms\":%.2f},",
            s2 / s1, s1, s2, flop / c[0] / 1e6, flop / c[1] / 1e6, 2 * flop / c[2] / 1e6, 2 * flop / c[3] / 1e6,
            cg_ok ? flop / cg[0] / 1e6 : 0.0, ma, mb);
    free(d.x), free(d.y);
    cldp_model_destroy(cnn);
}
