/* The layer arithmetic of aicp-trainbench's ResNet, forward and backward, on
 * NHWC float tensors: convolution (any kernel, stride, padding; im2col plus
 * the blocked GEMM, or the GEMM alone for 1x1 stride-1), batch
 * normalisation in training mode, ReLU, max pooling, global average pooling,
 * the fully connected classifier, softmax cross-entropy and the SGD update.
 * Backward functions write input gradients, or add to them when asked to
 * (a tensor read by two layers, as a residual block's input is). */
#ifndef AICP_TB_LAYERS_H
#define AICP_TB_LAYERS_H

#include <stddef.h>

#include "tb_gemm.h"

struct aicp_tb_shape {
    int n, h, w, c;
};

size_t aicp_tb_shape_count(struct aicp_tb_shape s);

/* Weights are [kh][kw][cin][cout]; no bias (batch norm follows). */
struct aicp_tb_conv {
    int cin, cout, kh, kw, stride, pad;
};

/* Output shape of conv on input shape in; h or w <= 0 when it does not fit. */
struct aicp_tb_shape aicp_tb_conv_out(const struct aicp_tb_conv *cv, struct aicp_tb_shape in);

/* Floats of im2col scratch conv needs on input shape in (0 for 1x1 stride 1). */
size_t aicp_tb_conv_scratch(const struct aicp_tb_conv *cv, struct aicp_tb_shape in);

void aicp_tb_conv_forward(struct aicp_tb_gemm *g, const struct aicp_tb_conv *cv,
                          struct aicp_tb_shape in, const float *x, const float *w, float *y,
                          float *scratch);

/* dw is overwritten; dx (may be NULL: no input gradient wanted) is
 * overwritten or, with accumulate, added to. */
void aicp_tb_conv_backward(struct aicp_tb_gemm *g, const struct aicp_tb_conv *cv,
                           struct aicp_tb_shape in, const float *x, const float *w,
                           const float *dy, float *dx, int accumulate, float *dw, float *scratch);

/* Batch norm over the n*h*w rows of each channel, with batch statistics.
 * mean and invstd (c floats each) are saved for backward; running_mean and
 * running_var move by momentum towards the batch's (unbiased) values. y may
 * equal x. With relu, y = max(0, bn(x)). */
struct aicp_tb_bn {
    size_t rows;
    int c;
    float eps;
    float momentum;
    int relu;
    double *work; /* caller's scratch, at least 4 * c doubles */
};

void aicp_tb_bn_forward(const struct aicp_tb_bn *bn, const float *x, const float *gamma,
                        const float *beta, float *y, float *mean, float *invstd,
                        float *running_mean, float *running_var);

/* y is the forward output (for the ReLU mask). dgamma, dbeta overwritten. */
void aicp_tb_bn_backward(const struct aicp_tb_bn *bn, const float *x, const float *y,
                         const float *gamma, const float *mean, const float *invstd,
                         const float *dy, float *dx, int accumulate, float *dgamma,
                         float *dbeta);

void aicp_tb_relu_forward(size_t n, const float *x, float *y);
void aicp_tb_relu_backward(size_t n, const float *y, const float *dy, float *dx, int accumulate);

/* y = max(0, a + b): the end of a residual block. Both gradients are
 * written (or added to, per flag). */
void aicp_tb_add_relu_forward(size_t n, const float *a, const float *b, float *y);
void aicp_tb_add_relu_backward(size_t n, const float *y, const float *dy, float *da, int acc_a,
                               float *db, int acc_b);

struct aicp_tb_pool2d {
    int k, stride, pad;
};

struct aicp_tb_shape aicp_tb_maxpool_out(const struct aicp_tb_pool2d *p, struct aicp_tb_shape in);
/* argmax (one int per output) records the winning input index. */
void aicp_tb_maxpool_forward(const struct aicp_tb_pool2d *p, struct aicp_tb_shape in,
                             const float *x, float *y, int *argmax);
void aicp_tb_maxpool_backward(const struct aicp_tb_pool2d *p, struct aicp_tb_shape in,
                              const int *argmax, const float *dy, float *dx, int accumulate);

/* Global average pool: [n,h,w,c] -> [n,c]. */
void aicp_tb_gap_forward(struct aicp_tb_shape in, const float *x, float *y);
void aicp_tb_gap_backward(struct aicp_tb_shape in, const float *dy, float *dx, int accumulate);

/* y[n x out] = x[n x in] * w[in x out] + b. */
void aicp_tb_fc_forward(struct aicp_tb_gemm *g, int n, int in, int out, const float *x,
                        const float *w, const float *b, float *y);
void aicp_tb_fc_backward(struct aicp_tb_gemm *g, int n, int in, int out, const float *x,
                         const float *w, const float *dy, float *dx, int accumulate, float *dw,
                         float *db);

/* Mean cross-entropy of softmax(logits) against labels; dlogits gets the
 * gradient of that mean. Labels must be in [0, classes). */
double aicp_tb_softmax_xent(int n, int classes, const float *logits, const int *labels,
                            float *dlogits);

/* v = momentum * v + g + decay * w; w -= lr * v. */
void aicp_tb_sgd_update(size_t n, float *w, const float *g, float *v, float lr, float momentum,
                        float decay);

#endif
