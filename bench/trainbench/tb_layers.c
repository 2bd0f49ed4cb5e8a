/* Forward and backward arithmetic of each ResNet layer (see tb_layers.h).
 * Convolutions are lowered to the blocked GEMM through im2col, a batch chunk
 * at a time so that the column buffer stays near COL_TARGET floats; the
 * other layers are memory-bound loops over NHWC rows, written so that the
 * per-channel inner loop vectorises. Statistics are summed in double so
 * batch norm stays accurate over hundreds of thousands of rows. */
#include "tb_layers.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define COL_TARGET ((size_t)1 << 22)

size_t aicp_tb_shape_count(struct aicp_tb_shape s)
{
    return (size_t)s.n * (size_t)s.h * (size_t)s.w * (size_t)s.c;
}

struct aicp_tb_shape aicp_tb_conv_out(const struct aicp_tb_conv *cv, struct aicp_tb_shape in)
{
    struct aicp_tb_shape o = {.n = in.n, .c = cv->cout};

    o.h = (in.h + 2 * cv->pad - cv->kh) / cv->stride + 1;
    o.w = (in.w + 2 * cv->pad - cv->kw) / cv->stride + 1;
    if (in.h + 2 * cv->pad < cv->kh)
        o.h = 0;
    if (in.w + 2 * cv->pad < cv->kw)
        o.w = 0;
    return o;
}

static int conv_is_pointwise(const struct aicp_tb_conv *cv)
{
    return cv->kh == 1 && cv->kw == 1 && cv->stride == 1 && cv->pad == 0;
}

static size_t conv_col_per_image(const struct aicp_tb_conv *cv, struct aicp_tb_shape in)
{
    struct aicp_tb_shape o = aicp_tb_conv_out(cv, in);

    return (size_t)o.h * (size_t)o.w * (size_t)cv->kh * (size_t)cv->kw * (size_t)cv->cin;
}

static int conv_chunk(const struct aicp_tb_conv *cv, struct aicp_tb_shape in)
{
    size_t per = conv_col_per_image(cv, in), chunk;

    if (per == 0)
        return in.n;
    chunk = COL_TARGET / per;
    if (chunk < 1)
        chunk = 1;
    if (chunk > (size_t)in.n)
        chunk = (size_t)in.n;
    return (int)chunk;
}

size_t aicp_tb_conv_scratch(const struct aicp_tb_conv *cv, struct aicp_tb_shape in)
{
    if (conv_is_pointwise(cv))
        return 0;
    return (size_t)conv_chunk(cv, in) * conv_col_per_image(cv, in);
}

struct col_job {
    const struct aicp_tb_conv *cv;
    struct aicp_tb_shape in, out;
    int n0;
    const float *x; /* im2col source */
    float *dx;      /* col2im destination */
    float *col;
    int accumulate;
};

/* One image's rows of the column matrix: row (oy, ox), columns (ky, kx, ci). */
static void im2col_task(void *arg, size_t task, int worker)
{
    const struct col_job *j = arg;
    const struct aicp_tb_conv *cv = j->cv;
    size_t kdim = (size_t)cv->kh * cv->kw * cv->cin, cin = (size_t)cv->cin;
    const float *x = j->x + (size_t)(j->n0 + (int)task) * j->in.h * j->in.w * cin;
    float *col = j->col + task * (size_t)j->out.h * j->out.w * kdim;
    int oy, ox, ky, kx;

    (void)worker;
    for (oy = 0; oy < j->out.h; oy++) {
        for (ox = 0; ox < j->out.w; ox++) {
            float *row = col + ((size_t)oy * j->out.w + ox) * kdim;

            for (ky = 0; ky < cv->kh; ky++) {
                int iy = oy * cv->stride - cv->pad + ky;

                for (kx = 0; kx < cv->kw; kx++) {
                    int ix = ox * cv->stride - cv->pad + kx;
                    float *d = row + ((size_t)ky * cv->kw + kx) * cin;

                    if (iy < 0 || iy >= j->in.h || ix < 0 || ix >= j->in.w)
                        memset(d, 0, cin * sizeof(float));
                    else
                        memcpy(d, x + ((size_t)iy * j->in.w + ix) * cin, cin * sizeof(float));
                }
            }
        }
    }
}

static void col2im_task(void *arg, size_t task, int worker)
{
    const struct col_job *j = arg;
    const struct aicp_tb_conv *cv = j->cv;
    size_t kdim = (size_t)cv->kh * cv->kw * cv->cin, cin = (size_t)cv->cin, c;
    float *dx = j->dx + (size_t)(j->n0 + (int)task) * j->in.h * j->in.w * cin;
    const float *col = j->col + task * (size_t)j->out.h * j->out.w * kdim;
    int oy, ox, ky, kx;

    (void)worker;
    if (!j->accumulate)
        memset(dx, 0, (size_t)j->in.h * j->in.w * cin * sizeof(float));
    for (oy = 0; oy < j->out.h; oy++) {
        for (ox = 0; ox < j->out.w; ox++) {
            const float *row = col + ((size_t)oy * j->out.w + ox) * kdim;

            for (ky = 0; ky < cv->kh; ky++) {
                int iy = oy * cv->stride - cv->pad + ky;

                if (iy < 0 || iy >= j->in.h)
                    continue;
                for (kx = 0; kx < cv->kw; kx++) {
                    int ix = ox * cv->stride - cv->pad + kx;
                    const float *s = row + ((size_t)ky * cv->kw + kx) * cin;
                    float *d;

                    if (ix < 0 || ix >= j->in.w)
                        continue;
                    d = dx + ((size_t)iy * j->in.w + ix) * cin;
                    for (c = 0; c < cin; c++)
                        d[c] += s[c];
                }
            }
        }
    }
}

void aicp_tb_conv_forward(struct aicp_tb_gemm *g, const struct aicp_tb_conv *cv,
                          struct aicp_tb_shape in, const float *x, const float *w, float *y,
                          float *scratch)
{
    struct aicp_tb_shape out = aicp_tb_conv_out(cv, in);
    size_t kdim = (size_t)cv->kh * cv->kw * cv->cin, per = (size_t)out.h * out.w;
    struct aicp_tb_mat wm = {w, cv->cout, 1};
    struct col_job job = {.cv = cv, .in = in, .out = out, .x = x, .col = scratch};
    int chunk = conv_chunk(cv, in), n0, nb;

    if (conv_is_pointwise(cv)) {
        struct aicp_tb_mat xm = {x, cv->cin, 1};

        aicp_tb_gemm_run(g, (size_t)in.n * per, (size_t)cv->cout, kdim, xm, wm, y,
                         (size_t)cv->cout, 0);
        return;
    }
    for (n0 = 0; n0 < in.n; n0 += chunk) {
        struct aicp_tb_mat cm = {scratch, (ptrdiff_t)kdim, 1};

        nb = in.n - n0 < chunk ? in.n - n0 : chunk;
        job.n0 = n0;
        aicp_tb_pool_run(aicp_tb_gemm_pool(g), (size_t)nb, im2col_task, &job);
        aicp_tb_gemm_run(g, (size_t)nb * per, (size_t)cv->cout, kdim, cm, wm,
                         y + (size_t)n0 * per * cv->cout, (size_t)cv->cout, 0);
    }
}

void aicp_tb_conv_backward(struct aicp_tb_gemm *g, const struct aicp_tb_conv *cv,
                           struct aicp_tb_shape in, const float *x, const float *w,
                           const float *dy, float *dx, int accumulate, float *dw, float *scratch)
{
    struct aicp_tb_shape out = aicp_tb_conv_out(cv, in);
    size_t kdim = (size_t)cv->kh * cv->kw * cv->cin, per = (size_t)out.h * out.w;
    size_t cout = (size_t)cv->cout;
    struct aicp_tb_mat wt = {w, 1, (ptrdiff_t)cout};
    struct col_job job = {.cv = cv, .in = in, .out = out, .x = x, .dx = dx, .col = scratch,
                          .accumulate = accumulate};
    int chunk = conv_chunk(cv, in), n0, nb;

    if (conv_is_pointwise(cv)) {
        struct aicp_tb_mat xt = {x, 1, (ptrdiff_t)kdim};
        struct aicp_tb_mat dym = {dy, (ptrdiff_t)cout, 1};
        size_t rows = (size_t)in.n * per;

        aicp_tb_gemm_run(g, kdim, cout, rows, xt, dym, dw, cout, 0);
        if (dx != NULL)
            aicp_tb_gemm_run(g, rows, kdim, cout, dym, wt, dx, kdim, accumulate);
        return;
    }
    for (n0 = 0; n0 < in.n; n0 += chunk) {
        struct aicp_tb_mat colt = {scratch, 1, (ptrdiff_t)kdim};
        struct aicp_tb_mat dym = {dy + (size_t)n0 * per * cout, (ptrdiff_t)cout, 1};

        nb = in.n - n0 < chunk ? in.n - n0 : chunk;
        job.n0 = n0;
        aicp_tb_pool_run(aicp_tb_gemm_pool(g), (size_t)nb, im2col_task, &job);
        aicp_tb_gemm_run(g, kdim, cout, (size_t)nb * per, colt, dym, dw, cout, n0 > 0);
        if (dx == NULL)
            continue;
        /* The columns are spent; reuse the buffer for their gradient. */
        aicp_tb_gemm_run(g, (size_t)nb * per, kdim, cout, dym, wt, scratch, kdim, 0);
        aicp_tb_pool_run(aicp_tb_gemm_pool(g), (size_t)nb, col2im_task, &job);
    }
}

void aicp_tb_bn_forward(const struct aicp_tb_bn *bn, const float *x, const float *gamma,
                        const float *beta, float *y, float *mean, float *invstd,
                        float *running_mean, float *running_var)
{
    size_t c = (size_t)bn->c, r, i;
    double *sum = bn->work, *sq = sum + c, *scale = sq + c, *shift = scale + c;

    memset(sum, 0, 2 * c * sizeof(double));
    for (r = 0; r < bn->rows; r++) {
        const float *xr = x + r * c;

        for (i = 0; i < c; i++)
            sum[i] += xr[i];
    }
    for (i = 0; i < c; i++)
        sum[i] /= (double)bn->rows;
    for (r = 0; r < bn->rows; r++) {
        const float *xr = x + r * c;

        for (i = 0; i < c; i++) {
            double d = xr[i] - sum[i];

            sq[i] += d * d;
        }
    }
    for (i = 0; i < c; i++) {
        double var = sq[i] / (double)bn->rows;
        double unbiased = bn->rows > 1 ? sq[i] / (double)(bn->rows - 1) : var;

        mean[i] = (float)sum[i];
        invstd[i] = (float)(1.0 / sqrt(var + bn->eps));
        scale[i] = (double)gamma[i] * invstd[i];
        shift[i] = beta[i] - mean[i] * scale[i];
        running_mean[i] = (1.0f - bn->momentum) * running_mean[i] + bn->momentum * mean[i];
        running_var[i] = (1.0f - bn->momentum) * running_var[i] + bn->momentum * (float)unbiased;
    }
    for (r = 0; r < bn->rows; r++) {
        const float *xr = x + r * c;
        float *yr = y + r * c;

        if (bn->relu) {
            for (i = 0; i < c; i++) {
                float v = (float)(xr[i] * scale[i] + shift[i]);

                yr[i] = v > 0.0f ? v : 0.0f;
            }
        } else {
            for (i = 0; i < c; i++)
                yr[i] = (float)(xr[i] * scale[i] + shift[i]);
        }
    }
}

void aicp_tb_bn_backward(const struct aicp_tb_bn *bn, const float *x, const float *y,
                         const float *gamma, const float *mean, const float *invstd,
                         const float *dy, float *dx, int accumulate, float *dgamma,
                         float *dbeta)
{
    size_t c = (size_t)bn->c, r, i;
    double *sdy = bn->work, *sdyx = sdy + c;
    float *k1 = (float *)(sdyx + c), *k2 = k1 + c, *k3 = k2 + c;
    float inv_rows = 1.0f / (float)bn->rows;

    memset(sdy, 0, 2 * c * sizeof(double));
    for (r = 0; r < bn->rows; r++) {
        const float *xr = x + r * c, *yr = y + r * c, *dr = dy + r * c;

        for (i = 0; i < c; i++) {
            float d = dr[i];

            if (bn->relu && yr[i] <= 0.0f)
                d = 0.0f;
            sdy[i] += d;
            sdyx[i] += d * (xr[i] - mean[i]) * invstd[i];
        }
    }
    for (i = 0; i < c; i++) {
        dbeta[i] = (float)sdy[i];
        dgamma[i] = (float)sdyx[i];
        /* dx = gamma*invstd * (dy - mean(dy) - xhat * mean(dy*xhat)) */
        k1[i] = gamma[i] * invstd[i];
        k2[i] = (float)sdy[i] * inv_rows;
        k3[i] = (float)sdyx[i] * inv_rows * invstd[i];
    }
    for (r = 0; r < bn->rows; r++) {
        const float *xr = x + r * c, *yr = y + r * c, *dr = dy + r * c;
        float *dxr = dx + r * c;

        for (i = 0; i < c; i++) {
            float d = dr[i];
            float v;

            if (bn->relu && yr[i] <= 0.0f)
                d = 0.0f;
            v = k1[i] * (d - k2[i] - (xr[i] - mean[i]) * k3[i]);
            dxr[i] = accumulate ? dxr[i] + v : v;
        }
    }
}

void aicp_tb_relu_forward(size_t n, const float *x, float *y)
{
    size_t i;

    for (i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void aicp_tb_relu_backward(size_t n, const float *y, const float *dy, float *dx, int accumulate)
{
    size_t i;

    for (i = 0; i < n; i++) {
        float v = y[i] > 0.0f ? dy[i] : 0.0f;

        dx[i] = accumulate ? dx[i] + v : v;
    }
}

void aicp_tb_add_relu_forward(size_t n, const float *a, const float *b, float *y)
{
    size_t i;

    for (i = 0; i < n; i++) {
        float v = a[i] + b[i];

        y[i] = v > 0.0f ? v : 0.0f;
    }
}

void aicp_tb_add_relu_backward(size_t n, const float *y, const float *dy, float *da, int acc_a,
                               float *db, int acc_b)
{
    size_t i;

    for (i = 0; i < n; i++) {
        float v = y[i] > 0.0f ? dy[i] : 0.0f;

        da[i] = acc_a ? da[i] + v : v;
        db[i] = acc_b ? db[i] + v : v;
    }
}

struct aicp_tb_shape aicp_tb_maxpool_out(const struct aicp_tb_pool2d *p, struct aicp_tb_shape in)
{
    struct aicp_tb_conv cv = {.cin = in.c, .cout = in.c, .kh = p->k, .kw = p->k,
                              .stride = p->stride, .pad = p->pad};

    return aicp_tb_conv_out(&cv, in);
}

void aicp_tb_maxpool_forward(const struct aicp_tb_pool2d *p, struct aicp_tb_shape in,
                             const float *x, float *y, int *argmax)
{
    struct aicp_tb_shape o = aicp_tb_maxpool_out(p, in);
    int n, oy, ox, ky, kx, c;

    for (n = 0; n < in.n; n++) {
        for (oy = 0; oy < o.h; oy++) {
            for (ox = 0; ox < o.w; ox++) {
                size_t oi = (((size_t)n * o.h + oy) * o.w + ox) * in.c;

                for (c = 0; c < in.c; c++) {
                    y[oi + c] = -FLT_MAX;
                    argmax[oi + c] = -1;
                }
                for (ky = 0; ky < p->k; ky++) {
                    int iy = oy * p->stride - p->pad + ky;

                    if (iy < 0 || iy >= in.h)
                        continue;
                    for (kx = 0; kx < p->k; kx++) {
                        int ix = ox * p->stride - p->pad + kx;
                        size_t ii = (((size_t)n * in.h + iy) * in.w + ix) * in.c;

                        if (ix < 0 || ix >= in.w)
                            continue;
                        for (c = 0; c < in.c; c++) {
                            if (x[ii + c] > y[oi + c]) {
                                y[oi + c] = x[ii + c];
                                argmax[oi + c] = (int)(ii + c);
                            }
                        }
                    }
                }
            }
        }
    }
}

void aicp_tb_maxpool_backward(const struct aicp_tb_pool2d *p, struct aicp_tb_shape in,
                              const int *argmax, const float *dy, float *dx, int accumulate)
{
    size_t i, nout = aicp_tb_shape_count(aicp_tb_maxpool_out(p, in));

    if (!accumulate)
        memset(dx, 0, aicp_tb_shape_count(in) * sizeof(float));
    for (i = 0; i < nout; i++)
        if (argmax[i] >= 0)
            dx[argmax[i]] += dy[i];
}

void aicp_tb_gap_forward(struct aicp_tb_shape in, const float *x, float *y)
{
    size_t hw = (size_t)in.h * in.w, c = (size_t)in.c, p, i;
    int n;

    for (n = 0; n < in.n; n++) {
        float *yn = y + (size_t)n * c;
        const float *xn = x + (size_t)n * hw * c;

        memset(yn, 0, c * sizeof(float));
        for (p = 0; p < hw; p++)
            for (i = 0; i < c; i++)
                yn[i] += xn[p * c + i];
        for (i = 0; i < c; i++)
            yn[i] /= (float)hw;
    }
}

void aicp_tb_gap_backward(struct aicp_tb_shape in, const float *dy, float *dx, int accumulate)
{
    size_t hw = (size_t)in.h * in.w, c = (size_t)in.c, p, i;
    float inv = 1.0f / (float)hw;
    int n;

    for (n = 0; n < in.n; n++) {
        const float *dyn = dy + (size_t)n * c;
        float *dxn = dx + (size_t)n * hw * c;

        for (p = 0; p < hw; p++)
            for (i = 0; i < c; i++)
                dxn[p * c + i] = (accumulate ? dxn[p * c + i] : 0.0f) + dyn[i] * inv;
    }
}

void aicp_tb_fc_forward(struct aicp_tb_gemm *g, int n, int in, int out, const float *x,
                        const float *w, const float *b, float *y)
{
    struct aicp_tb_mat xm = {x, in, 1}, wm = {w, out, 1};
    int i, j;

    for (i = 0; i < n; i++)
        for (j = 0; j < out; j++)
            y[(size_t)i * out + j] = b[j];
    aicp_tb_gemm_run(g, (size_t)n, (size_t)out, (size_t)in, xm, wm, y, (size_t)out, 1);
}

void aicp_tb_fc_backward(struct aicp_tb_gemm *g, int n, int in, int out, const float *x,
                         const float *w, const float *dy, float *dx, int accumulate, float *dw,
                         float *db)
{
    struct aicp_tb_mat xt = {x, 1, in}, dym = {dy, out, 1}, wt = {w, 1, out};
    int i, j;

    for (j = 0; j < out; j++) {
        float s = 0.0f;

        for (i = 0; i < n; i++)
            s += dy[(size_t)i * out + j];
        db[j] = s;
    }
    aicp_tb_gemm_run(g, (size_t)in, (size_t)out, (size_t)n, xt, dym, dw, (size_t)out, 0);
    if (dx != NULL)
        aicp_tb_gemm_run(g, (size_t)n, (size_t)in, (size_t)out, dym, wt, dx, (size_t)in,
                         accumulate);
}

double aicp_tb_softmax_xent(int n, int classes, const float *logits, const int *labels,
                            float *dlogits)
{
    double loss = 0.0;
    int i, j;

    for (i = 0; i < n; i++) {
        const float *l = logits + (size_t)i * classes;
        float *d = dlogits + (size_t)i * classes;
        double mx = l[0], sum = 0.0;

        for (j = 1; j < classes; j++)
            if (l[j] > mx)
                mx = l[j];
        for (j = 0; j < classes; j++)
            sum += exp((double)l[j] - mx);
        loss += log(sum) - ((double)l[labels[i]] - mx);
        for (j = 0; j < classes; j++) {
            double pj = exp((double)l[j] - mx) / sum;

            d[j] = (float)((pj - (j == labels[i] ? 1.0 : 0.0)) / n);
        }
    }
    return loss / n;
}

void aicp_tb_sgd_update(size_t n, float *w, const float *g, float *v, float lr, float momentum,
                        float decay)
{
    size_t i;

    for (i = 0; i < n; i++) {
        v[i] = momentum * v[i] + g[i] + decay * w[i];
        w[i] -= lr * v[i];
    }
}
