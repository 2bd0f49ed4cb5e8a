/* Unit tests of aicp-trainbench's CPU path: the GEMM against a naive
 * product, every layer's backward pass against finite differences, a
 * whole tiny ResNet's gradient, learning on a learnable synthetic task,
 * ResNet-50's size (parameters and multiply-adds), determinism across
 * runs and thread counts, the .tbr record reader and its errors, option
 * parsing and the output lines. */
/* pread, O_CLOEXEC, clock_gettime, open_memstream: POSIX beyond C11. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tb_cli.h"
#include "tb_data.h"
#include "tb_gemm.h"
#include "tb_layers.h"
#include "tb_model.h"
#include "tb_pool.h"
#include "tb_report.h"
#include "tb_run.h"

struct fixture {
    struct aicp_tb_pool *pool;
    struct aicp_tb_gemm *g;
    struct aicp_tb_rng rng;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct aicp_tb_err err;

    assert_non_null(f);
    assert_int_equal(aicp_tb_pool_new(&f->pool, 2, &err), 0);
    assert_int_equal(aicp_tb_gemm_new(&f->g, f->pool, &err), 0);
    aicp_tb_rng_seed(&f->rng, 42);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    aicp_tb_gemm_free(f->g);
    aicp_tb_pool_free(f->pool);
    free(f);
    return 0;
}

static float *rand_array(struct aicp_tb_rng *rng, size_t n, float scale)
{
    float *p = aicp_tb_falloc(n);
    size_t i;

    assert_non_null(p);
    for (i = 0; i < n; i++)
        p[i] = scale * aicp_tb_rng_normal(rng);
    return p;
}

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    size_t i;

    for (i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* |fd - an| within atol + rtol * |an|, with the index in the failure. */
static void assert_close(double fd, double an, double atol, double rtol, const char *what,
                         size_t i)
{
    if (fabs(fd - an) > atol + rtol * fabs(an))
        fail_msg("%s[%zu]: finite difference %.6g, analytic %.6g", what, i, fd, an);
}

static void test_gemm_matches_naive(void **state)
{
    struct fixture *f = *state;
    /* Sizes straddle the 6x16 micro-tile and 96/256/512 blocks. */
    static const size_t dims[][3] = {{1, 1, 1}, {7, 17, 5}, {97, 33, 300}, {130, 530, 70}};
    size_t d, i, j, k;
    int ta, tb, acc;

    for (d = 0; d < sizeof(dims) / sizeof(dims[0]); d++) {
        size_t m = dims[d][0], n = dims[d][1], kk = dims[d][2];
        float *a = rand_array(&f->rng, m * kk, 1.0f), *b = rand_array(&f->rng, kk * n, 1.0f);
        float *c = rand_array(&f->rng, m * n, 1.0f), *c0 = aicp_tb_falloc(m * n);

        memcpy(c0, c, m * n * sizeof(float));
        for (ta = 0; ta < 2; ta++) {
            for (tb = 0; tb < 2; tb++) {
                for (acc = 0; acc < 2; acc++) {
                    /* Transposed operands: the same memory read column-wise. */
                    struct aicp_tb_mat am = ta ? (struct aicp_tb_mat){a, 1, (ptrdiff_t)m}
                                               : (struct aicp_tb_mat){a, (ptrdiff_t)kk, 1};
                    struct aicp_tb_mat bm = tb ? (struct aicp_tb_mat){b, 1, (ptrdiff_t)kk}
                                               : (struct aicp_tb_mat){b, (ptrdiff_t)n, 1};

                    memcpy(c, c0, m * n * sizeof(float));
                    aicp_tb_gemm_run(f->g, m, n, kk, am, bm, c, n, acc);
                    for (i = 0; i < m; i++) {
                        for (j = 0; j < n; j++) {
                            double s = acc ? c0[i * n + j] : 0.0;

                            for (k = 0; k < kk; k++)
                                s += (double)am.p[i * am.rs + k * am.cs] *
                                     bm.p[k * bm.rs + j * bm.cs];
                            assert_close(c[i * n + j], s, 1e-3, 1e-4, "gemm", i * n + j);
                        }
                    }
                }
            }
        }
        free(a);
        free(b);
        free(c);
        free(c0);
    }
}

static double conv_loss(struct fixture *f, const struct aicp_tb_conv *cv,
                        struct aicp_tb_shape in, const float *x, const float *w, const float *r,
                        float *y, float *scratch)
{
    struct aicp_tb_shape o = aicp_tb_conv_out(cv, in);

    aicp_tb_conv_forward(f->g, cv, in, x, w, y, scratch);
    return dot(y, r, aicp_tb_shape_count(o));
}

static void check_conv(struct fixture *f, struct aicp_tb_conv cv, struct aicp_tb_shape in)
{
    struct aicp_tb_shape o = aicp_tb_conv_out(&cv, in);
    size_t nx = aicp_tb_shape_count(in), ny = aicp_tb_shape_count(o);
    size_t nw = (size_t)cv.kh * cv.kw * cv.cin * cv.cout, i;
    float *x = rand_array(&f->rng, nx, 1.0f), *w = rand_array(&f->rng, nw, 0.5f);
    float *r = rand_array(&f->rng, ny, 1.0f), *y = aicp_tb_falloc(ny);
    float *dx = rand_array(&f->rng, nx, 1.0f), *dx0 = aicp_tb_falloc(nx);
    float *dw = aicp_tb_falloc(nw), *scratch = aicp_tb_falloc(aicp_tb_conv_scratch(&cv, in));
    const float eps = 0.05f;

    /* The layer is linear, so central differences are exact up to rounding. */
    memcpy(dx0, dx, nx * sizeof(float));
    aicp_tb_conv_backward(f->g, &cv, in, x, w, r, dx, 1, dw, scratch);
    for (i = 0; i < nx; i++) {
        float keep = x[i];
        double lp, lm;

        x[i] = keep + eps;
        lp = conv_loss(f, &cv, in, x, w, r, y, scratch);
        x[i] = keep - eps;
        lm = conv_loss(f, &cv, in, x, w, r, y, scratch);
        x[i] = keep;
        /* accumulate=1: the gradient was added to what dx held. */
        assert_close((lp - lm) / (2 * eps), dx[i] - dx0[i], 2e-3, 1e-3, "conv dx", i);
    }
    for (i = 0; i < nw; i++) {
        float keep = w[i];
        double lp, lm;

        w[i] = keep + eps;
        lp = conv_loss(f, &cv, in, x, w, r, y, scratch);
        w[i] = keep - eps;
        lm = conv_loss(f, &cv, in, x, w, r, y, scratch);
        w[i] = keep;
        assert_close((lp - lm) / (2 * eps), dw[i], 2e-3, 1e-3, "conv dw", i);
    }
    /* And overwrite mode writes the same gradient. */
    aicp_tb_conv_backward(f->g, &cv, in, x, w, r, dx0, 0, dw, scratch);
    for (i = 0; i < nx; i++)
        assert_close(dx0[i], dx[i] - (dx[i] - dx0[i]), 1e-6, 0, "conv dx overwrite", i);
    free(x);
    free(w);
    free(r);
    free(y);
    free(dx);
    free(dx0);
    free(dw);
    free(scratch);
}

static void test_conv_gradients(void **state)
{
    struct fixture *f = *state;

    check_conv(f, (struct aicp_tb_conv){.cin = 3, .cout = 4, .kh = 3, .kw = 3, .stride = 2,
                                        .pad = 1},
               (struct aicp_tb_shape){2, 5, 6, 3});
    check_conv(f, (struct aicp_tb_conv){.cin = 5, .cout = 3, .kh = 1, .kw = 1, .stride = 1,
                                        .pad = 0},
               (struct aicp_tb_shape){2, 3, 4, 5});
    check_conv(f, (struct aicp_tb_conv){.cin = 2, .cout = 3, .kh = 7, .kw = 7, .stride = 2,
                                        .pad = 3},
               (struct aicp_tb_shape){1, 9, 8, 2});
    check_conv(f, (struct aicp_tb_conv){.cin = 4, .cout = 6, .kh = 1, .kw = 1, .stride = 2,
                                        .pad = 0},
               (struct aicp_tb_shape){2, 5, 5, 4});
}

static void test_conv_forward_known_values(void **state)
{
    struct fixture *f = *state;
    /* 1 image 3x3x1, 3x3 kernel of ones, pad 1: each output sums its
     * neighbourhood. */
    struct aicp_tb_conv cv = {.cin = 1, .cout = 1, .kh = 3, .kw = 3, .stride = 1, .pad = 1};
    struct aicp_tb_shape in = {1, 3, 3, 1};
    float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[9], y[9];
    float *scratch = aicp_tb_falloc(aicp_tb_conv_scratch(&cv, in));
    const float want[9] = {12, 21, 16, 27, 45, 33, 24, 39, 28};
    int i;

    for (i = 0; i < 9; i++)
        w[i] = 1.0f;
    aicp_tb_conv_forward(f->g, &cv, in, x, w, y, scratch);
    for (i = 0; i < 9; i++)
        assert_float_equal(y[i], want[i], 1e-5);
    free(scratch);
}

static double bn_loss(const struct aicp_tb_bn *bn, const float *x, const float *gamma,
                      const float *beta, const float *r, float *y, float *st)
{
    aicp_tb_bn_forward(bn, x, gamma, beta, y, st, st + bn->c, st + 2 * bn->c, st + 3 * bn->c);
    return dot(y, r, bn->rows * (size_t)bn->c);
}

static void check_bn(struct fixture *f, int relu)
{
    double work[4 * 4];
    struct aicp_tb_bn bn = {.rows = 18, .c = 4, .eps = 1e-5f, .momentum = 0.1f, .relu = relu,
                            .work = work};
    size_t n = bn.rows * bn.c, i;
    float *x = rand_array(&f->rng, n, 2.0f), *r = rand_array(&f->rng, n, 1.0f);
    float *y = aicp_tb_falloc(n), *dx = aicp_tb_falloc(n);
    float gamma[4] = {1.5f, 0.7f, 1.0f, 2.0f}, beta[4] = {0.1f, -0.2f, 0.3f, 0.0f};
    float dgamma[4], dbeta[4], st[16] = {0}, st2[16];
    const float eps = 1e-2f;
    int c;

    for (i = 0; i < n; i++)
        x[i] += (float)(i % 4); /* per-channel offsets */
    bn_loss(&bn, x, gamma, beta, r, y, st);
    /* Without ReLU each channel comes out with mean beta and variance
     * gamma^2 (up to eps); the running mean moved 10% towards the batch. */
    for (c = 0; c < 4 && !relu; c++) {
        double m = 0, v = 0;

        for (i = 0; i < bn.rows; i++)
            m += y[i * 4 + c];
        m /= bn.rows;
        for (i = 0; i < bn.rows; i++)
            v += (y[i * 4 + c] - m) * (y[i * 4 + c] - m);
        v /= bn.rows;
        assert_float_equal(m, beta[c], 1e-4);
        assert_float_equal(v, gamma[c] * gamma[c], 1e-3);
        assert_float_equal(st[8 + c], 0.1f * st[c], 1e-6);
    }
    aicp_tb_bn_backward(&bn, x, y, gamma, st, st + 4, r, dx, 0, dgamma, dbeta);
    for (i = 0; i < n; i++) {
        float keep = x[i];
        double lp, lm;

        x[i] = keep + eps;
        lp = bn_loss(&bn, x, gamma, beta, r, y, st2);
        x[i] = keep - eps;
        lm = bn_loss(&bn, x, gamma, beta, r, y, st2);
        x[i] = keep;
        assert_close((lp - lm) / (2 * eps), dx[i], 5e-3, 2e-2, relu ? "bnrelu dx" : "bn dx", i);
    }
    for (c = 0; c < 4; c++) {
        float keep = gamma[c];
        double lp, lm;

        gamma[c] = keep + eps;
        lp = bn_loss(&bn, x, gamma, beta, r, y, st2);
        gamma[c] = keep - eps;
        lm = bn_loss(&bn, x, gamma, beta, r, y, st2);
        gamma[c] = keep;
        assert_close((lp - lm) / (2 * eps), dgamma[c], 5e-3, 2e-2, "bn dgamma", (size_t)c);
        keep = beta[c];
        beta[c] = keep + eps;
        lp = bn_loss(&bn, x, gamma, beta, r, y, st2);
        beta[c] = keep - eps;
        lm = bn_loss(&bn, x, gamma, beta, r, y, st2);
        beta[c] = keep;
        assert_close((lp - lm) / (2 * eps), dbeta[c], 5e-3, 2e-2, "bn dbeta", (size_t)c);
    }
    free(x);
    free(r);
    free(y);
    free(dx);
}

static void test_bn_gradients(void **state)
{
    check_bn(*state, 0);
    check_bn(*state, 1);
}

/* Inputs kept away from 0 so that no finite difference straddles the kink. */
static void test_relu_and_add_gradients(void **state)
{
    struct fixture *f = *state;
    float x[8] = {-1.5f, 2.0f, -0.3f, 0.7f, 1.1f, -2.2f, 0.4f, -0.9f};
    float b[8] = {0.5f, -3.0f, 1.0f, 0.2f, -0.5f, 3.0f, 0.1f, 0.5f};
    float y[8], dy[8], da[8], db[8];
    int i;

    (void)f;
    for (i = 0; i < 8; i++)
        dy[i] = (float)(i + 1);
    aicp_tb_relu_forward(8, x, y);
    aicp_tb_relu_backward(8, y, dy, da, 0);
    for (i = 0; i < 8; i++) {
        assert_float_equal(y[i], x[i] > 0 ? x[i] : 0, 0);
        assert_float_equal(da[i], x[i] > 0 ? dy[i] : 0, 0);
    }
    aicp_tb_add_relu_forward(8, x, b, y);
    for (i = 0; i < 8; i++)
        db[i] = 1.0f;
    aicp_tb_add_relu_backward(8, y, dy, da, 0, db, 1);
    for (i = 0; i < 8; i++) {
        float s = x[i] + b[i];

        assert_float_equal(y[i], s > 0 ? s : 0, 1e-6);
        assert_float_equal(da[i], s > 0 ? dy[i] : 0, 0);
        assert_float_equal(db[i], 1.0f + (s > 0 ? dy[i] : 0), 0);
    }
}

static void test_maxpool_gradients(void **state)
{
    struct fixture *f = *state;
    struct aicp_tb_pool2d p = {.k = 3, .stride = 2, .pad = 1};
    struct aicp_tb_shape in = {2, 5, 6, 3}, o = aicp_tb_maxpool_out(&p, in);
    size_t nx = aicp_tb_shape_count(in), ny = aicp_tb_shape_count(o), i;
    float *x = aicp_tb_falloc(nx), *y = aicp_tb_falloc(ny), *r = rand_array(&f->rng, ny, 1.0f);
    float *dx = aicp_tb_falloc(nx);
    int *am = calloc(ny, sizeof(int));
    const float eps = 1e-3f;

    assert_int_equal(o.h, 3);
    assert_int_equal(o.w, 3);
    /* Distinct values, spaced well beyond eps: no ties for the maximum. */
    for (i = 0; i < nx; i++)
        x[i] = (float)((i * 37) % nx) * 0.01f;
    aicp_tb_maxpool_forward(&p, in, x, y, am);
    aicp_tb_maxpool_backward(&p, in, am, r, dx, 0);
    for (i = 0; i < nx; i++) {
        float keep = x[i];
        double lp, lm;

        x[i] = keep + eps;
        aicp_tb_maxpool_forward(&p, in, x, y, am);
        lp = dot(y, r, ny);
        x[i] = keep - eps;
        aicp_tb_maxpool_forward(&p, in, x, y, am);
        lm = dot(y, r, ny);
        x[i] = keep;
        assert_close((lp - lm) / (2 * eps), dx[i], 2e-3, 1e-2, "maxpool dx", i);
    }
    free(x);
    free(y);
    free(r);
    free(dx);
    free(am);
}

static void test_gap_gradients(void **state)
{
    struct fixture *f = *state;
    struct aicp_tb_shape in = {2, 3, 2, 4};
    size_t nx = aicp_tb_shape_count(in), i;
    float *x = rand_array(&f->rng, nx, 1.0f), y[8], r[8], *dx = aicp_tb_falloc(nx);
    int c;

    for (c = 0; c < 8; c++)
        r[c] = (float)c - 3.0f;
    aicp_tb_gap_forward(in, x, y);
    for (c = 0; c < 4; c++) {
        double s = 0;

        for (i = 0; i < 6; i++)
            s += x[i * 4 + c];
        assert_float_equal(y[c], s / 6, 1e-5);
    }
    aicp_tb_gap_backward(in, r, dx, 0);
    /* Linear: d(sum y*r)/dx = r / (h*w). */
    for (i = 0; i < nx; i++)
        assert_float_equal(dx[i], r[(i / 24) * 4 + i % 4] / 6.0f, 1e-6);
    free(x);
    free(dx);
}

static double fc_xent_loss(struct fixture *f, int n, int in, int out, const float *x,
                           const float *w, const float *b, const int *labels, float *logits,
                           float *dl)
{
    aicp_tb_fc_forward(f->g, n, in, out, x, w, b, logits);
    return aicp_tb_softmax_xent(n, out, logits, labels, dl);
}

static void test_fc_softmax_xent_gradients(void **state)
{
    struct fixture *f = *state;
    enum { N = 3, IN = 5, OUT = 4 };
    float *x = rand_array(&f->rng, N * IN, 1.0f), *w = rand_array(&f->rng, IN * OUT, 0.5f);
    float *b = rand_array(&f->rng, OUT, 0.1f);
    float logits[N * OUT], dl[N * OUT], dx[N * IN], dw[IN * OUT], db[OUT], tmp[N * OUT];
    int labels[N] = {0, 3, 2};
    float *params[3] = {x, w, b};
    const float *grads[3] = {dx, dw, db};
    const size_t sizes[3] = {N * IN, IN * OUT, OUT};
    const char *names[3] = {"fc dx", "fc dw", "fc db"};
    const float eps = 1e-2f;
    double loss, uniform;
    float zero[OUT * IN] = {0};
    size_t p, i;

    loss = fc_xent_loss(f, N, IN, OUT, x, w, b, labels, logits, dl);
    aicp_tb_fc_backward(f->g, N, IN, OUT, x, w, dl, dx, 0, dw, db);
    assert_true(loss > 0);
    for (p = 0; p < 3; p++) {
        for (i = 0; i < sizes[p]; i++) {
            float keep = params[p][i];
            double lp, lm;

            params[p][i] = keep + eps;
            lp = fc_xent_loss(f, N, IN, OUT, x, w, b, labels, logits, tmp);
            params[p][i] = keep - eps;
            lm = fc_xent_loss(f, N, IN, OUT, x, w, b, labels, logits, tmp);
            params[p][i] = keep;
            assert_close((lp - lm) / (2 * eps), grads[p][i], 2e-4, 1e-2, names[p], i);
        }
    }
    /* All-zero weights and bias: uniform softmax, loss log(classes). */
    memset(b, 0, OUT * sizeof(float));
    uniform = fc_xent_loss(f, N, IN, OUT, x, zero, b, labels, logits, dl);
    assert_float_equal(uniform, log(OUT), 1e-9);
    free(x);
    free(w);
    free(b);
}

static struct aicp_tb_model_cfg tiny_cfg(int batch)
{
    struct aicp_tb_model_cfg cfg = {.width = 2, .nstages = 2, .blocks = {1, 1},
                                    .resolution = 16, .classes = 3, .batch = batch, .seed = 7};

    return cfg;
}

static void test_network_gradient(void **state)
{
    struct fixture *f = *state;
    struct aicp_tb_model_cfg cfg = tiny_cfg(4);
    struct aicp_tb_model *m;
    struct aicp_tb_err err;
    struct aicp_tb_rng rng;
    enum { SAMPLES = 80 };
    double fd[SAMPLES], an[SAMPLES], num = 0, den = 0, loss;
    size_t np, idx[SAMPLES];
    float *w;
    int i, good = 0;
    const float eps = 1e-2f;

    assert_int_equal(aicp_tb_model_new(&m, &cfg, f->g, 1, &err), 0);
    np = aicp_tb_model_params(m);
    w = aicp_tb_model_param_data(m);
    aicp_tb_data_synthetic(aicp_tb_model_input(m), aicp_tb_model_labels(m), 4, 16, 3, 3, 0);
    aicp_tb_model_step(m, NULL, &loss);
    aicp_tb_rng_seed(&rng, 99);
    for (i = 0; i < SAMPLES; i++) {
        /* The first and last few parameters (stem conv, classifier bias)
         * always, the rest spread at random over every layer. */
        idx[i] = i < 4 ? (size_t)i : i < 8 ? np - 1 - (size_t)(i - 4)
                                           : (size_t)aicp_tb_rng_below(&rng, (uint32_t)np);
        an[i] = aicp_tb_model_grad_data(m)[idx[i]];
    }
    for (i = 0; i < SAMPLES; i++) {
        float keep = w[idx[i]];
        double lp, lm;

        w[idx[i]] = keep + eps;
        aicp_tb_model_step(m, NULL, &lp);
        w[idx[i]] = keep - eps;
        aicp_tb_model_step(m, NULL, &lm);
        w[idx[i]] = keep;
        fd[i] = (lp - lm) / (2 * eps);
        num += (fd[i] - an[i]) * (fd[i] - an[i]);
        den += an[i] * an[i];
        if (fabs(fd[i] - an[i]) <= 1e-3 + 0.05 * fabs(an[i]))
            good++;
    }
    /* ReLU and max-pool kinks may spoil the odd difference; the gradient
     * as a whole must agree. */
    if (sqrt(num / den) > 0.05 || good < SAMPLES * 9 / 10)
        fail_msg("network gradient: relative error %.4f, %d of %d within tolerance",
                 sqrt(num / den), good, SAMPLES);
    assert_true(den > 0);
    aicp_tb_model_free(m);
}

static int parse(struct aicp_tb_opts *o, struct aicp_tb_err *err, ...)
{
    char *argv[64];
    int argc = 0;
    va_list ap;
    char *s;

    argv[argc++] = (char *)"aicp-trainbench";
    va_start(ap, err);
    while ((s = va_arg(ap, char *)) != NULL && argc < 63)
        argv[argc++] = s;
    va_end(ap);
    argv[argc] = NULL;
    return aicp_tb_cli_parse(o, argc, argv, err);
}

#define TINY_ARGS "--model", "resnet-tiny", "--width", "4", "--blocks", "1,1", \
    "--resolution", "16", "--classes", "4", "--quiet"

static void test_loss_decreases(void **state)
{
    struct aicp_tb_opts o;
    struct aicp_tb_result res;
    struct aicp_tb_err err;
    double early, late;
    int i;

    (void)state;
    assert_int_equal(parse(&o, &err, TINY_ARGS, "--batch-size", "16", "--steps", "30",
                           "--warmup", "0", "--lr", "0.05", "--threads", "2", (char *)NULL),
                     0);
    assert_int_equal(aicp_tb_run(&res, &o, NULL, &err), 0);
    assert_int_equal(res.nlosses, 30);
    early = (res.losses[0] + res.losses[1] + res.losses[2]) / 3;
    late = (res.losses[27] + res.losses[28] + res.losses[29]) / 3;
    /* Chance is log(4) = 1.386; a learnt task ends far below it. */
    assert_true(fabs(early - log(4)) < 0.5);
    if (!(late < 0.5 * early))
        fail_msg("loss did not fall: first steps %.4f, last steps %.4f", early, late);
    for (i = 0; i < 30; i++)
        assert_true(isfinite(res.losses[i]));
    assert_true(res.images_per_sec > 0);
    assert_true(res.step_ms_p50 <= res.step_ms_p90 && res.step_ms_p90 <= res.step_ms_p99);
    aicp_tb_result_free(&res);
}

static void test_resnet50_size(void **state)
{
    struct aicp_tb_model_cfg cfg = {.batch = 1};
    struct aicp_tb_model *m;
    struct aicp_tb_err err;

    (void)state;
    assert_int_equal(aicp_tb_model_preset(&cfg, "resnet50", &err), 0);
    assert_int_equal(aicp_tb_model_new(&m, &cfg, NULL, 0, &err), 0);
    /* torchvision's resnet50 has 25,557,032 parameters; v1.5 and v1 differ
     * only in where the stride sits, which moves the multiply-adds from
     * about 3.86e9 (v1) to 4.09e9 (v1.5). */
    assert_int_equal(aicp_tb_model_params(m), 25557032);
    if (fabs(aicp_tb_model_fwd_macs(m) - 4.089e9) > 0.01e9)
        fail_msg("resnet50 forward multiply-adds %.4g, expected about 4.09e9",
                 aicp_tb_model_fwd_macs(m));
    aicp_tb_model_free(m);

    assert_int_equal(aicp_tb_model_preset(&cfg, "resnet-tiny", &err), 0);
    assert_int_equal(aicp_tb_model_preset(&cfg, "resnet18", &err), AICP_TB_EUSAGE);
    assert_non_null(strstr(err.msg, "resnet18"));
    /* An activation too large to index is refused, not crashed. */
    cfg = tiny_cfg(100000);
    cfg.resolution = 4096;
    assert_int_equal(aicp_tb_model_new(&m, &cfg, NULL, 0, &err), AICP_TB_EUSAGE);
    assert_non_null(strstr(err.msg, "too large"));
    assert_null(m);
    /* Padding keeps even a tiny picture at one pixel or more. */
    cfg = tiny_cfg(2);
    cfg.resolution = 8;
    cfg.nstages = 4;
    cfg.blocks[2] = cfg.blocks[3] = 1;
    assert_int_equal(aicp_tb_model_new(&m, &cfg, NULL, 0, &err), 0);
    aicp_tb_model_free(m);
}

static void run_tiny(struct aicp_tb_result *res, const char *threads, const char *seed)
{
    struct aicp_tb_opts o;
    struct aicp_tb_err err;

    assert_int_equal(parse(&o, &err, TINY_ARGS, "--batch-size", "4", "--steps", "4",
                           "--warmup", "1", "--threads", threads, "--seed", seed, (char *)NULL),
                     0);
    assert_int_equal(aicp_tb_run(res, &o, NULL, &err), 0);
}

static void test_deterministic(void **state)
{
    struct aicp_tb_result a, b, c, d;
    int i;

    (void)state;
    run_tiny(&a, "2", "5");
    run_tiny(&b, "2", "5");
    run_tiny(&c, "1", "5");
    run_tiny(&d, "2", "6");
    assert_int_equal(a.nlosses, 5);
    for (i = 0; i < a.nlosses; i++) {
        /* Bit for bit, across runs and thread counts. */
        assert_memory_equal(&a.losses[i], &b.losses[i], sizeof(double));
        assert_memory_equal(&a.losses[i], &c.losses[i], sizeof(double));
    }
    assert_true(a.losses[0] != d.losses[0]);
    aicp_tb_result_free(&a);
    aicp_tb_result_free(&b);
    aicp_tb_result_free(&c);
    aicp_tb_result_free(&d);
}

/* Writes a .tbr file: header for w x h, then n records with labels[i] and
 * pixel value fill[i] everywhere; trailing extra bytes if asked. */
static void write_tbr(const char *path, const char *magic, int w, int h, int n,
                      const int *labels, const int *fill, size_t extra)
{
    FILE *fp = fopen(path, "wb");
    unsigned char hdr[16] = {0};
    int i;
    size_t j, px = (size_t)w * h * 3;

    assert_non_null(fp);
    memcpy(hdr, magic, 8);
    hdr[8] = (unsigned char)(h & 0xff);
    hdr[9] = (unsigned char)(h >> 8);
    hdr[10] = (unsigned char)(w & 0xff);
    hdr[11] = (unsigned char)(w >> 8);
    fwrite(hdr, 1, 16, fp);
    for (i = 0; i < n; i++) {
        fputc(labels[i] & 0xff, fp);
        fputc(labels[i] >> 8, fp);
        for (j = 0; j < px; j++)
            fputc(fill[i], fp);
    }
    for (j = 0; j < extra; j++)
        fputc(0, fp);
    fclose(fp);
}

static void test_records(void **state)
{
    char dir[] = "/tmp/tbrec.XXXXXX", path[256], other[256];
    struct aicp_tb_records *r;
    struct aicp_tb_err err;
    int labels[3] = {2, 0, 300}, fill[3] = {255, 0, 128}, lab[4];
    float x[4 * 8 * 8 * 3];
    size_t i;

    (void)state;
    assert_non_null(mkdtemp(dir));
    /* An empty directory, a missing one. */
    assert_int_equal(aicp_tb_records_open(&r, dir, 10, &err), AICP_TB_EINVAL);
    assert_non_null(strstr(err.msg, "no .tbr record files"));
    snprintf(path, sizeof(path), "%s/missing", dir);
    assert_int_equal(aicp_tb_records_open(&r, path, 10, &err), AICP_TB_EIO);
    assert_non_null(strstr(err.msg, "missing"));

    /* A good pair of files: 2 records of 12x10, 1 record of 6x6. */
    snprintf(path, sizeof(path), "%s/a.tbr", dir);
    write_tbr(path, AICP_TB_RECORD_MAGIC, 12, 10, 2, labels, fill, 0);
    snprintf(other, sizeof(other), "%s/b.tbr", dir);
    write_tbr(other, AICP_TB_RECORD_MAGIC, 6, 6, 1, labels + 1, fill + 1, 0);
    assert_int_equal(aicp_tb_records_open(&r, dir, 10, &err), 0);
    assert_int_equal(aicp_tb_records_count(r), 3);
    /* Records 2, 0, 1, 2: the batch wraps round. */
    assert_int_equal(aicp_tb_records_fill(r, 2, 4, 8, x, lab, &err), 0);
    assert_int_equal(lab[0], 0);
    assert_int_equal(lab[1], 2);
    assert_int_equal(lab[2], 0);
    assert_int_equal(lab[3], 0);
    for (i = 0; i < 8 * 8 * 3; i++) {
        static const float mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};

        /* Uniform images stay uniform through crop and resize. */
        assert_float_equal(x[i], (0.0f - mean[i % 3]) / sd[i % 3], 1e-4);
        assert_float_equal(x[192 + i], (1.0f - mean[i % 3]) / sd[i % 3], 1e-4);
        assert_float_equal(x[384 + i], (0.0f - mean[i % 3]) / sd[i % 3], 1e-4);
    }
    aicp_tb_records_free(r);

    /* A label beyond --classes names file and record. */
    write_tbr(path, AICP_TB_RECORD_MAGIC, 12, 10, 3, labels, fill, 0);
    assert_int_equal(aicp_tb_records_open(&r, dir, 10, &err), AICP_TB_EINVAL);
    assert_non_null(strstr(err.msg, "a.tbr: record 2: label 300 is out of range"));
    assert_null(r);
    /* A truncated last record. */
    write_tbr(path, AICP_TB_RECORD_MAGIC, 12, 10, 2, labels, fill, 100);
    assert_int_equal(aicp_tb_records_open(&r, dir, 10, &err), AICP_TB_EINVAL);
    assert_non_null(strstr(err.msg, "a.tbr: record 2 is truncated: 100 of 362 bytes"));
    /* Bad magic. */
    write_tbr(path, "JPEGJPEG", 12, 10, 2, labels, fill, 0);
    assert_int_equal(aicp_tb_records_open(&r, dir, 10, &err), AICP_TB_EINVAL);
    assert_non_null(strstr(err.msg, "a.tbr: not a trainbench record file"));
    /* Shorter than a header. */
    {
        FILE *fp = fopen(path, "wb");

        assert_non_null(fp);
        fputs("AICP", fp);
        fclose(fp);
    }
    assert_int_equal(aicp_tb_records_open(&r, dir, 10, &err), AICP_TB_EINVAL);
    assert_non_null(strstr(err.msg, "too short for the 16-byte header"));
    /* A header with no records. */
    write_tbr(path, AICP_TB_RECORD_MAGIC, 12, 10, 0, labels, fill, 0);
    assert_int_equal(aicp_tb_records_open(&r, dir, 10, &err), AICP_TB_EINVAL);
    assert_non_null(strstr(err.msg, "holds no records"));
    /* Through the whole run: exit status 65 for bad data. */
    {
        struct aicp_tb_opts o;
        struct aicp_tb_result res;
        int rc;

        assert_int_equal(parse(&o, &err, TINY_ARGS, "--data", dir, "--steps", "1",
                               (char *)NULL),
                         0);
        rc = aicp_tb_run(&res, &o, NULL, &err);
        assert_int_equal(rc, AICP_TB_EINVAL);
        assert_int_equal(aicp_tb_err_exit_status(rc), 65);
    }
    unlink(path);
    unlink(other);
    rmdir(dir);
}

static void test_cli(void **state)
{
    struct aicp_tb_opts o;
    struct aicp_tb_err err;

    (void)state;
    assert_int_equal(parse(&o, &err, (char *)NULL), 0);
    assert_string_equal(o.device, "cpu");
    assert_string_equal(o.model, "resnet50");
    assert_int_equal(o.cfg.resolution, 224);
    assert_int_equal(o.cfg.classes, 1000);
    /* Overrides apply whatever their order relative to --model. */
    assert_int_equal(parse(&o, &err, "--width", "8", "--model=resnet-tiny", "--blocks", "1,2",
                           "--resolution=40", "--classes", "7", "--batch-size", "3",
                           (char *)NULL),
                     0);
    assert_int_equal(o.cfg.width, 8);
    assert_int_equal(o.cfg.nstages, 2);
    assert_int_equal(o.cfg.blocks[1], 2);
    assert_int_equal(o.cfg.resolution, 40);
    assert_int_equal(o.cfg.classes, 7);
    assert_int_equal(o.cfg.batch, 3);

    assert_int_equal(parse(&o, &err, "--device", "cuda", (char *)NULL), AICP_TB_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "this build has no CUDA path"));
    assert_int_equal(aicp_tb_err_exit_status(AICP_TB_EUNSUPPORTED), 1);
    assert_int_equal(parse(&o, &err, "--precision", "bf16", (char *)NULL),
                     AICP_TB_EUNSUPPORTED);
    assert_int_equal(parse(&o, &err, "--precision", "fp8", (char *)NULL), AICP_TB_EUSAGE);
    assert_int_equal(parse(&o, &err, "--device", "tpu", (char *)NULL), AICP_TB_EUSAGE);
    assert_int_equal(parse(&o, &err, "--batch-size", "0", (char *)NULL), AICP_TB_EUSAGE);
    assert_non_null(strstr(err.msg, "--batch-size '0'"));
    assert_int_equal(parse(&o, &err, "--steps", "12x", (char *)NULL), AICP_TB_EUSAGE);
    assert_int_equal(parse(&o, &err, "--blocks", "1,,2", (char *)NULL), AICP_TB_EUSAGE);
    assert_int_equal(parse(&o, &err, "--blocks", "1,1,1,1,1,1,1,1,1", (char *)NULL),
                     AICP_TB_EUSAGE);
    assert_int_equal(parse(&o, &err, "--lr", "nan", (char *)NULL), AICP_TB_EUSAGE);
    assert_int_equal(parse(&o, &err, "--model", "vgg", (char *)NULL), AICP_TB_EUSAGE);
    assert_int_equal(parse(&o, &err, "--bogus", (char *)NULL), AICP_TB_EUSAGE);
    assert_non_null(strstr(err.msg, "--bogus"));
    assert_int_equal(parse(&o, &err, "--steps", (char *)NULL), AICP_TB_EUSAGE);
    assert_non_null(strstr(err.msg, "needs a value"));
    assert_int_equal(parse(&o, &err, "--json=1", (char *)NULL), AICP_TB_EUSAGE);
    assert_int_equal(parse(&o, &err, "stray", (char *)NULL), AICP_TB_EUSAGE);
    assert_int_equal(aicp_tb_err_exit_status(AICP_TB_EUSAGE), 64);
}

static void test_report(void **state)
{
    struct aicp_tb_opts o;
    struct aicp_tb_err err;
    struct aicp_tb_result res = {.images_per_sec = 1234.5678, .step_ms_p50 = 10,
                                 .step_ms_p90 = 11, .step_ms_p99 = 12, .final_loss = NAN,
                                 .loss_first = 2.5, .flops_per_image = 6e6};
    char *buf = NULL;
    size_t len = 0;
    FILE *fp;
    regex_t re;
    regmatch_t mt[2];

    (void)state;
    assert_int_equal(parse(&o, &err, "--model", "resnet-tiny", (char *)NULL), 0);
    fp = open_memstream(&buf, &len);
    assert_non_null(fp);
    aicp_tb_report_human(fp, &o, &res);
    aicp_tb_report_json(fp, &o, &res);
    fclose(fp);
    /* The validate module's parser. */
    assert_int_equal(regcomp(&re, "Total images/sec = ([0-9.]+)", REG_EXTENDED), 0);
    assert_int_equal(regexec(&re, buf, 2, mt, 0), 0);
    assert_int_equal(mt[1].rm_eo - mt[1].rm_so, 7);
    assert_memory_equal(buf + mt[1].rm_so, "1234.57", 7);
    regfree(&re);
    assert_non_null(strstr(buf, "\n{\"model\":\"resnet-tiny\",\"device\":\"cpu\","
                                "\"precision\":\"fp32\",\"batch_size\":32,\"steps\":20,\"warmup\":3,"));
    assert_non_null(strstr(buf, "\"images_per_sec\":1234.57,\"images_per_sec_per_gpu\":1234.57,"
                                "\"step_ms\":{\"p50\":10,\"p90\":11,\"p99\":12},"
                                "\"flops_per_image\":6e+06,"));
    /* A diverged loss is null, never "nan". */
    assert_non_null(strstr(buf, "\"peak_fraction\":null,\"final_loss\":null,"
                                "\"loss_first\":2.5,"));
    assert_true(buf[len - 1] == '\n' && buf[len - 2] == '}');
    free(buf);
}

static void test_percentile(void **state)
{
    double v[10] = {9, 1, 8, 2, 7, 3, 6, 4, 5, 10};

    (void)state;
    assert_float_equal(aicp_tb_percentile(v, 10, 50), 5, 0);
    assert_float_equal(aicp_tb_percentile(v, 10, 90), 9, 0);
    assert_float_equal(aicp_tb_percentile(v, 10, 99), 10, 0);
    assert_float_equal(aicp_tb_percentile(v, 1, 99), 1, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_matches_naive),
        cmocka_unit_test(test_conv_forward_known_values),
        cmocka_unit_test(test_conv_gradients),
        cmocka_unit_test(test_bn_gradients),
        cmocka_unit_test(test_relu_and_add_gradients),
        cmocka_unit_test(test_maxpool_gradients),
        cmocka_unit_test(test_gap_gradients),
        cmocka_unit_test(test_fc_softmax_xent_gradients),
        cmocka_unit_test(test_network_gradient),
        cmocka_unit_test(test_loss_decreases),
        cmocka_unit_test(test_resnet50_size),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_records),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_report),
        cmocka_unit_test(test_percentile),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
