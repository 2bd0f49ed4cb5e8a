/* aicp-trainbench's ResNet on one GPU (see tb_cuda_net.h). The graph is
 * built in the same order as tb_model.c's, so that parameter draws,
 * shapes, FLOP and parameter counts match the CPU reference exactly; the
 * layers then map onto cuDNN's legacy (v7-style) API, which cuDNN 9 still
 * ships and which needs no graph compilation, plus a few kernels.
 *
 * Parameters live in one fp32 array laid out as [conv weights][fc weight]
 * [bn gamma/beta, fc bias], each padded to 64 elements so that every
 * tensor a library reads is 256-byte aligned: the decayed ones first, so
 * that the SGD kernel tells them apart by index, and the convolution
 * weights first of all, so that their low-precision gradients (cuDNN
 * writes dW in the data type) become fp32 in one cast. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include "tb_cuda_net.h"

#include <cudnn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tb_cuda_kern.h"
#include "tb_layers.h"

#define PARAM_ALIGN 64 /* elements */
#define MAX_ALLOCS 1024
#define BN_EPS 1e-5
#define BN_MOMENTUM 0.1

enum op_kind { OP_CONV, OP_BN, OP_MAXPOOL, OP_ADD_RELU, OP_GAP, OP_FC };

struct tb_tensor {
    struct aicp_tb_shape shape;
    size_t count;
    void *val;  /* activation type; fp32 for the logits */
    void *grad; /* activation type; NULL for the input */
    cudnnTensorDescriptor_t desc;
    int grad_written;
};

struct tb_algos {
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
    cudnnMathType_t math[3];
};

struct tb_op {
    enum op_kind kind;
    int in, in2, out;
    char name[96];
    /* conv */
    struct aicp_tb_conv conv;
    cudnnFilterDescriptor_t wdesc;
    cudnnConvolutionDescriptor_t cdesc[3]; /* fwd, bwd data, bwd filter */
    struct tb_algos algos;
    /* bn */
    int relu, channels;
    cudnnBatchNormMode_t bn_mode;
    cudnnTensorDescriptor_t bndesc;
    size_t stat_off; /* save mean, save invstd, running mean, running var */
    /* maxpool */
    cudnnPoolingDescriptor_t pdesc;
    /* fc */
    struct aicp_tb_cuda_gemm fwd, dgrad, wgrad;
    /* parameter offsets into the fp32 arrays */
    size_t w_off, b_off;
};

/* A trainable tensor, in the CPU path's graph order. */
struct tb_param {
    int decay;
    size_t n, local; /* offset inside its pool (decayed or not) */
    size_t off;      /* final offset */
    float std, value;
    int conv_k, conv_cin, conv_cout; /* conv weights: transposed at init */
};

struct aicp_tb_cuda_net {
    struct aicp_tb_model_cfg cfg;
    int dtype;
    cudnnDataType_t dnn_type;
    cudaDataType_t blas_type;
    size_t esize;
    cudaStream_t stream;
    cudnnHandle_t dnn;
    cublasLtHandle_t lt;

    struct tb_op *ops;
    int nops, capops;
    struct tb_tensor *tensors;
    int ntensors, captensors;
    struct tb_param *params;
    int nparams, capparams;
    size_t decay_top, plain_top, nconv; /* pool sizes; conv weights are [0, nconv) */
    size_t np, ndecay, trainable, nstats;
    double macs;

    float *w32, *g32, *v32, *stats;
    void *wlp, *glp; /* activation-type copies of the decayed weights and conv dW */
    int nslots;
    void **slot_x;
    int **slot_labels;
    float *stage; /* fp32 upload staging when the activation type is not fp32 */
    float *loss_rows, *loss_mean;
    int *flag;
    struct {
        float loss;
        int flag;
    } * host; /* pinned */
    void *ws;
    size_t wsbytes;

    void *allocs[MAX_ALLOCS];
    int nallocs;
    size_t dev_bytes;
};

int aicp_tb_cuda_check(cudaError_t e, const char *what, struct aicp_tb_err *err)
{
    if (e == cudaSuccess)
        return 0;
    return aicp_tb_err_set(err, e == cudaErrorMemoryAllocation ? AICP_TB_ENOMEM : AICP_TB_EIO,
                           "%s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

static int dnn_check(cudnnStatus_t s, const char *what, const char *call, struct aicp_tb_err *err)
{
    if (s == CUDNN_STATUS_SUCCESS)
        return 0;
    return aicp_tb_err_set(err, s == CUDNN_STATUS_ALLOC_FAILED ? AICP_TB_ENOMEM : AICP_TB_EIO,
                           "%s: %s: %s", what, call, cudnnGetErrorString(s));
}

static int lt_check(cublasStatus_t s, const char *what, const char *call, struct aicp_tb_err *err)
{
    if (s == CUBLAS_STATUS_SUCCESS)
        return 0;
    return aicp_tb_err_set(err, s == CUBLAS_STATUS_ALLOC_FAILED ? AICP_TB_ENOMEM : AICP_TB_EIO,
                           "%s: %s: %s", what, call, cublasLtGetStatusString(s));
}

static int kern_check(int e, const char *what, struct aicp_tb_err *err)
{
    return aicp_tb_cuda_check((cudaError_t)e, what, err);
}

/* ---- graph construction (mirrors tb_model.c) ---- */

static int grow(void **arr, int *cap, int need, size_t elem)
{
    void *p;
    int ncap;

    if (need <= *cap)
        return 0;
    ncap = *cap ? *cap * 2 : 32;
    while (ncap < need)
        ncap *= 2;
    p = realloc(*arr, (size_t)ncap * elem);
    if (p == NULL)
        return AICP_TB_ENOMEM;
    memset((char *)p + (size_t)*cap * elem, 0, (size_t)(ncap - *cap) * elem);
    *arr = p;
    *cap = ncap;
    return 0;
}

static int add_tensor(struct aicp_tb_cuda_net *net, struct aicp_tb_shape s, struct aicp_tb_err *err)
{
    if (s.n < 1 || s.h < 1 || s.w < 1 || s.c < 1)
        return aicp_tb_err_set(err, AICP_TB_EUSAGE,
                               "resolution %d is too small for this network: a layer's output "
                               "would have no pixels",
                               net->cfg.resolution);
    /* cuDNN's 4-d descriptors take int dimensions and strides. */
    if (aicp_tb_shape_count(s) > (size_t)INT32_MAX)
        return aicp_tb_err_set(err, AICP_TB_EUSAGE,
                               "a %dx%dx%dx%d activation is too large; reduce --batch-size or "
                               "--resolution",
                               s.n, s.h, s.w, s.c);
    if (grow((void **)&net->tensors, &net->captensors, net->ntensors + 1, sizeof(*net->tensors)) !=
        0)
        return aicp_tb_err_set(err, AICP_TB_ENOMEM, "out of memory building the model");
    net->tensors[net->ntensors].shape = s;
    net->tensors[net->ntensors].count = aicp_tb_shape_count(s);
    return net->ntensors++;
}

static int add_param(struct aicp_tb_cuda_net *net, size_t n, int decay, float std, float value,
                     int *index, struct aicp_tb_err *err)
{
    struct tb_param *p;
    size_t *top = decay ? &net->decay_top : &net->plain_top;

    if (grow((void **)&net->params, &net->capparams, net->nparams + 1, sizeof(*net->params)) != 0)
        return aicp_tb_err_set(err, AICP_TB_ENOMEM, "out of memory building the model");
    p = &net->params[net->nparams];
    p->decay = decay;
    p->n = n;
    p->local = *top;
    p->std = std;
    p->value = value;
    *top += (n + PARAM_ALIGN - 1) / PARAM_ALIGN * PARAM_ALIGN;
    net->trainable += n;
    *index = net->nparams++;
    return 0;
}

static int add_op(struct aicp_tb_cuda_net *net, struct tb_op **out, enum op_kind kind, int in,
                  int outt, struct aicp_tb_err *err)
{
    if (grow((void **)&net->ops, &net->capops, net->nops + 1, sizeof(*net->ops)) != 0)
        return aicp_tb_err_set(err, AICP_TB_ENOMEM, "out of memory building the model");
    *out = &net->ops[net->nops++];
    (*out)->kind = kind;
    (*out)->in = in;
    (*out)->in2 = -1;
    (*out)->out = outt;
    return 0;
}

/* Parameter indices are kept in w_off/b_off until offsets are final. */
static int add_conv_bn(struct aicp_tb_cuda_net *net, int in, int cout, int k, int stride, int relu,
                       struct aicp_tb_err *err)
{
    struct aicp_tb_shape is = net->tensors[in].shape, os;
    struct aicp_tb_conv cv = {
        .cin = is.c, .cout = cout, .kh = k, .kw = k, .stride = stride, .pad = k / 2};
    struct tb_op *op;
    int t, rc, pi;

    os = aicp_tb_conv_out(&cv, is);
    if ((t = add_tensor(net, os, err)) < 0)
        return t;
    if ((rc = add_op(net, &op, OP_CONV, in, t, err)) != 0)
        return rc;
    op->conv = cv;
    snprintf(op->name, sizeof(op->name), "layer %d (conv %dx%d/%d, %d->%d channels, %dx%d input)",
             net->nops, k, k, stride, is.c, cout, is.h, is.w);
    rc = add_param(net, (size_t)k * k * is.c * cout, 1, (float)sqrt(2.0 / ((double)k * k * is.c)),
                   0.0f, &pi, err);
    if (rc != 0)
        return rc;
    net->params[pi].conv_k = k;
    net->params[pi].conv_cin = is.c;
    net->params[pi].conv_cout = cout;
    op->w_off = (size_t)pi;
    net->macs += (double)os.h * os.w * k * k * is.c * cout;

    in = t;
    if ((t = add_tensor(net, os, err)) < 0)
        return t;
    if ((rc = add_op(net, &op, OP_BN, in, t, err)) != 0)
        return rc;
    snprintf(op->name, sizeof(op->name), "layer %d (batch norm, %d channels, %dx%d)", net->nops,
             cout, os.h, os.w);
    op->relu = relu;
    op->channels = cout;
    if ((rc = add_param(net, (size_t)cout, 0, 0.0f, 1.0f, &pi, err)) != 0)
        return rc;
    op->w_off = (size_t)pi;
    if ((rc = add_param(net, (size_t)cout, 0, 0.0f, 0.0f, &pi, err)) != 0)
        return rc;
    op->b_off = (size_t)pi;
    op->stat_off = net->nstats;
    net->nstats += 4 * (size_t)cout;
    return t;
}

static int add_block(struct aicp_tb_cuda_net *net, int in, int mid, int stride,
                     struct aicp_tb_err *err)
{
    int a, b, c, s, t, rc, cout = 4 * mid;
    struct tb_op *op;

    if ((a = add_conv_bn(net, in, mid, 1, 1, 1, err)) < 0)
        return a;
    if ((b = add_conv_bn(net, a, mid, 3, stride, 1, err)) < 0)
        return b;
    if ((c = add_conv_bn(net, b, cout, 1, 1, 0, err)) < 0)
        return c;
    s = in;
    if (stride != 1 || net->tensors[in].shape.c != cout)
        if ((s = add_conv_bn(net, in, cout, 1, stride, 0, err)) < 0)
            return s;
    if ((t = add_tensor(net, net->tensors[c].shape, err)) < 0)
        return t;
    if ((rc = add_op(net, &op, OP_ADD_RELU, c, t, err)) != 0)
        return rc;
    op->in2 = s;
    snprintf(op->name, sizeof(op->name), "layer %d (residual add + relu)", net->nops);
    return t;
}

static int build(struct aicp_tb_cuda_net *net, struct aicp_tb_err *err)
{
    const struct aicp_tb_model_cfg *cfg = &net->cfg;
    struct aicp_tb_pool2d pool = {.k = 3, .stride = 2, .pad = 1};
    struct tb_op *op;
    int t, in, st, b, rc, pi, feat;
    size_t i;

    if ((t = add_tensor(net,
                        (struct aicp_tb_shape){cfg->batch, cfg->resolution, cfg->resolution, 3},
                        err)) < 0)
        return t;
    if ((t = add_conv_bn(net, t, cfg->width, 7, 2, 1, err)) < 0)
        return t;
    in = t;
    if ((t = add_tensor(net, aicp_tb_maxpool_out(&pool, net->tensors[in].shape), err)) < 0)
        return t;
    if ((rc = add_op(net, &op, OP_MAXPOOL, in, t, err)) != 0)
        return rc;
    snprintf(op->name, sizeof(op->name), "layer %d (max pool 3x3/2)", net->nops);
    for (st = 0; st < cfg->nstages; st++)
        for (b = 0; b < cfg->blocks[st]; b++)
            if ((t = add_block(net, t, cfg->width << st, (st > 0 && b == 0) ? 2 : 1, err)) < 0)
                return t;
    in = t;
    feat = net->tensors[in].shape.c;
    if ((t = add_tensor(net, (struct aicp_tb_shape){cfg->batch, 1, 1, feat}, err)) < 0)
        return t;
    if ((rc = add_op(net, &op, OP_GAP, in, t, err)) != 0)
        return rc;
    snprintf(op->name, sizeof(op->name), "layer %d (global average pool)", net->nops);
    in = t;
    if ((t = add_tensor(net, (struct aicp_tb_shape){cfg->batch, 1, 1, cfg->classes}, err)) < 0)
        return t;
    if ((rc = add_op(net, &op, OP_FC, in, t, err)) != 0)
        return rc;
    snprintf(op->name, sizeof(op->name), "layer %d (classifier %d->%d)", net->nops, feat,
             cfg->classes);
    /* Every conv weight was added before this, so the decayed pool is
     * [conv weights][fc weight]. */
    net->nconv = net->decay_top;
    if ((rc = add_param(net, (size_t)feat * cfg->classes, 1, 0.01f, 0.0f, &pi, err)) != 0)
        return rc;
    op->w_off = (size_t)pi;
    if ((rc = add_param(net, (size_t)cfg->classes, 0, 0.0f, 0.0f, &pi, err)) != 0)
        return rc;
    op->b_off = (size_t)pi;
    net->macs += (double)feat * cfg->classes;

    net->ndecay = net->decay_top;
    net->np = net->decay_top + net->plain_top;
    for (i = 0; i < (size_t)net->nparams; i++) {
        struct tb_param *p = &net->params[i];

        p->off = p->local + (p->decay ? 0 : net->decay_top);
    }
    for (i = 0; i < (size_t)net->nops; i++) {
        op = &net->ops[i];
        if (op->kind == OP_CONV) {
            op->w_off = net->params[op->w_off].off;
        } else if (op->kind == OP_BN || op->kind == OP_FC) {
            op->w_off = net->params[op->w_off].off;
            op->b_off = net->params[op->b_off].off;
        }
    }
    return 0;
}

/* ---- device memory ---- */

static int dalloc(struct aicp_tb_cuda_net *net, void **p, size_t bytes, const char *what,
                  struct aicp_tb_err *err)
{
    cudaError_t e;

    *p = NULL;
    if (bytes == 0)
        bytes = 1;
    bytes = (bytes + 255) / 256 * 256;
    if (net->nallocs == MAX_ALLOCS)
        return aicp_tb_err_set(err, AICP_TB_ENOMEM, "too many device buffers (%s)", what);
    e = cudaMalloc(p, bytes);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return aicp_tb_err_set(err, AICP_TB_ENOMEM,
                               "out of GPU memory allocating %s (%zu MiB, %zu MiB already "
                               "held; batch %d, resolution %d): try a smaller --batch-size",
                               what, bytes >> 20, net->dev_bytes >> 20, net->cfg.batch,
                               net->cfg.resolution);
    }
    net->allocs[net->nallocs++] = *p;
    net->dev_bytes += bytes;
    /* Zero, so that padding gradients and never-written buffers hold no
     * NaN that an all-reduce or an algorithm search would trip on. */
    return aicp_tb_cuda_check(cudaMemset(*p, 0, bytes), what, err);
}

static int alloc_all(struct aicp_tb_cuda_net *net, struct aicp_tb_err *err)
{
    size_t in_count = net->tensors[0].count;
    int i, rc;
    char what[128];

    for (i = 0; i < net->ntensors; i++) {
        struct tb_tensor *t = &net->tensors[i];
        /* The classifier's output (the logits) is fp32: the softmax reads it. */
        size_t vsize = i == net->ntensors - 1 ? sizeof(float) : net->esize;

        snprintf(what, sizeof(what), "activation %d (%dx%dx%dx%d)", i, t->shape.n, t->shape.h,
                 t->shape.w, t->shape.c);
        if (i > 0 && (rc = dalloc(net, &t->val, t->count * vsize, what, err)) != 0)
            return rc;
        if (i > 0 && (rc = dalloc(net, &t->grad, t->count * net->esize, what, err)) != 0)
            return rc;
    }
    net->slot_x = calloc((size_t)net->nslots, sizeof(*net->slot_x));
    net->slot_labels = calloc((size_t)net->nslots, sizeof(*net->slot_labels));
    if (net->slot_x == NULL || net->slot_labels == NULL)
        return aicp_tb_err_set(err, AICP_TB_ENOMEM, "out of memory");
    for (i = 0; i < net->nslots; i++) {
        if ((rc = dalloc(net, &net->slot_x[i], in_count * net->esize, "an input batch", err)) != 0)
            return rc;
        rc = dalloc(net, (void **)&net->slot_labels[i], (size_t)net->cfg.batch * sizeof(int),
                    "labels", err);
        if (rc != 0)
            return rc;
    }
    if ((rc = dalloc(net, (void **)&net->w32, net->np * 4, "fp32 master weights", err)) != 0 ||
        (rc = dalloc(net, (void **)&net->g32, net->np * 4, "fp32 gradients", err)) != 0 ||
        (rc = dalloc(net, (void **)&net->v32, net->np * 4, "momentum", err)) != 0 ||
        (rc = dalloc(net, (void **)&net->stats, net->nstats * 4, "batch-norm statistics", err)) !=
            0 ||
        (rc = dalloc(net, (void **)&net->loss_rows, (size_t)net->cfg.batch * 4, "losses", err)) !=
            0 ||
        (rc = dalloc(net, (void **)&net->loss_mean, 4, "loss", err)) != 0 ||
        (rc = dalloc(net, (void **)&net->flag, sizeof(int), "overflow flag", err)) != 0)
        return rc;
    if (net->dtype == AICP_TB_CUDA_F32) {
        net->wlp = net->w32;
        net->glp = net->g32;
    } else if ((rc = dalloc(net, &net->wlp, net->ndecay * net->esize, "low-precision weights",
                            err)) != 0 ||
               (rc = dalloc(net, &net->glp, net->nconv * net->esize,
                            "low-precision weight gradients", err)) != 0 ||
               (rc = dalloc(net, (void **)&net->stage, in_count * 4, "input staging", err)) != 0) {
        return rc;
    }
    rc = aicp_tb_cuda_check(cudaMallocHost((void **)&net->host, sizeof(*net->host)),
                            "cudaMallocHost", err);
    return rc;
}

/* Draws every parameter in the CPU path's order and stores it in the
 * device layout; running variances start at 1. */
static int init_params(struct aicp_tb_cuda_net *net, struct aicp_tb_err *err)
{
    struct aicp_tb_rng rng;
    float *h = calloc(net->np, sizeof(float)), *st = NULL;
    int i, rc = 0;
    size_t j;

    if (h == NULL)
        return aicp_tb_err_set(err, AICP_TB_ENOMEM, "out of memory initialising weights");
    aicp_tb_rng_seed(&rng, net->cfg.seed);
    for (i = 0; i < net->nparams; i++) {
        const struct tb_param *p = &net->params[i];

        for (j = 0; j < p->n; j++) {
            float v = p->std > 0.0f ? p->std * aicp_tb_rng_normal(&rng) : p->value;
            size_t d = j;

            if (p->conv_k > 0) {
                /* CPU [ky][kx][ci][co] -> cuDNN NHWC filter [co][ky][kx][ci]. */
                size_t co = j % (size_t)p->conv_cout, rest = j / (size_t)p->conv_cout;
                size_t ci = rest % (size_t)p->conv_cin, kk = rest / (size_t)p->conv_cin;

                d = (co * (size_t)p->conv_k * p->conv_k + kk) * (size_t)p->conv_cin + ci;
            }
            h[p->off + d] = v;
        }
    }
    if ((rc = aicp_tb_cuda_check(cudaMemcpy(net->w32, h, net->np * 4, cudaMemcpyHostToDevice),
                                 "copying initial weights", err)) != 0)
        goto out;
    if (net->dtype != AICP_TB_CUDA_F32 &&
        (rc = kern_check(
             aicp_tb_cuda_k_from_f32(net->dtype, net->wlp, net->w32, net->ndecay, net->stream),
             "casting initial weights", err)) != 0)
        goto out;
    if ((st = calloc(net->nstats, sizeof(float))) == NULL) {
        rc = aicp_tb_err_set(err, AICP_TB_ENOMEM, "out of memory initialising weights");
        goto out;
    }
    for (i = 0; i < net->nops; i++) {
        const struct tb_op *op = &net->ops[i];

        if (op->kind == OP_BN)
            for (j = 0; j < (size_t)op->channels; j++)
                st[op->stat_off + 3 * (size_t)op->channels + j] = 1.0f;
    }
    rc = aicp_tb_cuda_check(cudaMemcpy(net->stats, st, net->nstats * 4, cudaMemcpyHostToDevice),
                            "copying batch-norm statistics", err);
    if (rc == 0)
        rc = aicp_tb_cuda_check(cudaStreamSynchronize(net->stream), "initialising weights", err);
out:
    free(st);
    free(h);
    return rc;
}

/* ---- cuDNN descriptors and algorithm search ---- */

static int make_descs(struct aicp_tb_cuda_net *net, struct aicp_tb_err *err)
{
    cudnnMathType_t math = net->dtype == AICP_TB_CUDA_F32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
    int i, k, rc;

    for (i = 0; i < net->ntensors; i++) {
        struct tb_tensor *t = &net->tensors[i];

        if ((rc = dnn_check(cudnnCreateTensorDescriptor(&t->desc), "tensor descriptor",
                            "cudnnCreateTensorDescriptor", err)) != 0)
            return rc;
        if ((rc = dnn_check(cudnnSetTensor4dDescriptor(t->desc, CUDNN_TENSOR_NHWC, net->dnn_type,
                                                       t->shape.n, t->shape.c, t->shape.h,
                                                       t->shape.w),
                            "tensor descriptor", "cudnnSetTensor4dDescriptor", err)) != 0)
            return rc;
    }
    for (i = 0; i < net->nops; i++) {
        struct tb_op *op = &net->ops[i];
        struct tb_tensor *in = &net->tensors[op->in], *out = &net->tensors[op->out];
        int n, c, h, w;

        if (op->kind == OP_CONV) {
            const struct aicp_tb_conv *cv = &op->conv;

            rc = dnn_check(cudnnCreateFilterDescriptor(&op->wdesc), op->name,
                           "cudnnCreateFilterDescriptor", err);
            if (rc == 0)
                rc = dnn_check(cudnnSetFilter4dDescriptor(op->wdesc, net->dnn_type,
                                                          CUDNN_TENSOR_NHWC, cv->cout, cv->cin,
                                                          cv->kh, cv->kw),
                               op->name, "cudnnSetFilter4dDescriptor", err);
            for (k = 0; k < 3 && rc == 0; k++) {
                rc = dnn_check(cudnnCreateConvolutionDescriptor(&op->cdesc[k]), op->name,
                               "cudnnCreateConvolutionDescriptor", err);
                /* Accumulate in fp32 whatever the storage type ("pseudo"
                 * half/bf16 configurations). */
                if (rc == 0)
                    rc = dnn_check(cudnnSetConvolution2dDescriptor(
                                       op->cdesc[k], cv->pad, cv->pad, cv->stride, cv->stride, 1, 1,
                                       CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
                                   op->name, "cudnnSetConvolution2dDescriptor", err);
                if (rc == 0)
                    rc = dnn_check(cudnnSetConvolutionMathType(op->cdesc[k], math), op->name,
                                   "cudnnSetConvolutionMathType", err);
            }
            if (rc == 0)
                rc = dnn_check(cudnnGetConvolution2dForwardOutputDim(op->cdesc[0], in->desc,
                                                                     op->wdesc, &n, &c, &h, &w),
                               op->name, "cudnnGetConvolution2dForwardOutputDim", err);
            if (rc != 0)
                return rc;
            if (n != out->shape.n || c != out->shape.c || h != out->shape.h || w != out->shape.w)
                return aicp_tb_err_set(err, AICP_TB_EIO,
                                       "%s: cuDNN computes a %dx%dx%dx%d output, the model "
                                       "%dx%dx%dx%d",
                                       op->name, n, h, w, c, out->shape.n, out->shape.h,
                                       out->shape.w, out->shape.c);
        } else if (op->kind == OP_BN) {
            /* The persistent kernels are the fast NHWC ones; tried for fp16
             * only, where cuDNN documents them, with a fall-back below. */
            op->bn_mode = net->dtype == AICP_TB_CUDA_F16 ? CUDNN_BATCHNORM_SPATIAL_PERSISTENT
                                                         : CUDNN_BATCHNORM_SPATIAL;
            rc = dnn_check(cudnnCreateTensorDescriptor(&op->bndesc), op->name,
                           "cudnnCreateTensorDescriptor", err);
            if (rc == 0)
                rc = dnn_check(
                    cudnnDeriveBNTensorDescriptor(op->bndesc, in->desc, CUDNN_BATCHNORM_SPATIAL),
                    op->name, "cudnnDeriveBNTensorDescriptor", err);
            if (rc != 0)
                return rc;
        } else if (op->kind == OP_MAXPOOL) {
            rc = dnn_check(cudnnCreatePoolingDescriptor(&op->pdesc), op->name,
                           "cudnnCreatePoolingDescriptor", err);
            if (rc == 0)
                rc = dnn_check(cudnnSetPooling2dDescriptor(op->pdesc, CUDNN_POOLING_MAX,
                                                           CUDNN_NOT_PROPAGATE_NAN, 3, 3, 1, 1, 2,
                                                           2),
                               op->name, "cudnnSetPooling2dDescriptor", err);
            if (rc == 0)
                rc = dnn_check(
                    cudnnGetPooling2dForwardOutputDim(op->pdesc, in->desc, &n, &c, &h, &w),
                    op->name, "cudnnGetPooling2dForwardOutputDim", err);
            if (rc != 0)
                return rc;
            if (h != out->shape.h || w != out->shape.w)
                return aicp_tb_err_set(err, AICP_TB_EIO,
                                       "%s: cuDNN pools to %dx%d, the model to %dx%d", op->name, h,
                                       w, out->shape.h, out->shape.w);
        }
    }
    return 0;
}

/* Whether two convolutions have the same shapes, so share algorithms. */
static int same_conv(const struct aicp_tb_cuda_net *net, const struct tb_op *a,
                     const struct tb_op *b)
{
    struct aicp_tb_shape sa = net->tensors[a->in].shape, sb = net->tensors[b->in].shape;

    return memcmp(&a->conv, &b->conv, sizeof(a->conv)) == 0 && sa.n == sb.n && sa.h == sb.h &&
           sa.w == sb.w && sa.c == sb.c && (a->in == 0) == (b->in == 0);
}

/* The fastest algorithm that ran and fits the workspace, as cudnnFind*Ex
 * returns them sorted by time. */
#define PICK(perf, count, wsbytes, idx)                                                            \
    do {                                                                                           \
        int i_;                                                                                    \
        (idx) = -1;                                                                                \
        for (i_ = 0; i_ < (count); i_++)                                                           \
            if ((perf)[i_].status == CUDNN_STATUS_SUCCESS && (perf)[i_].memory <= (wsbytes)) {     \
                (idx) = i_;                                                                        \
                break;                                                                             \
            }                                                                                      \
    } while (0)

static int find_algos(struct aicp_tb_cuda_net *net, struct tb_op *op, struct aicp_tb_err *err)
{
    struct tb_tensor *in = &net->tensors[op->in], *out = &net->tensors[op->out];
    const void *w = (const char *)net->wlp + op->w_off * net->esize;
    void *dw = (char *)net->glp + op->w_off * net->esize;
    cudnnConvolutionFwdAlgoPerf_t fp[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    cudnnConvolutionBwdDataAlgoPerf_t dp[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    cudnnConvolutionBwdFilterAlgoPerf_t wp[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    const void *x = op->in == 0 ? net->slot_x[0] : in->val;
    int n = 0, pick, rc;

    rc = dnn_check(cudnnFindConvolutionForwardAlgorithmEx(
                       net->dnn, in->desc, x, op->wdesc, w, op->cdesc[0], out->desc, out->val,
                       CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, fp, net->ws, net->wsbytes),
                   op->name, "cudnnFindConvolutionForwardAlgorithmEx", err);
    if (rc != 0)
        return rc;
    PICK(fp, n, net->wsbytes, pick);
    if (pick < 0)
        return aicp_tb_err_set(err, AICP_TB_EIO,
                               "%s: cuDNN has no forward algorithm for it in %zu MiB of "
                               "workspace",
                               op->name, net->wsbytes >> 20);
    op->algos.fwd = fp[pick].algo;
    op->algos.math[0] = fp[pick].mathType;

    if (op->in != 0) {
        rc = dnn_check(cudnnFindConvolutionBackwardDataAlgorithmEx(
                           net->dnn, op->wdesc, w, out->desc, out->grad, op->cdesc[1], in->desc,
                           in->grad, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, dp, net->ws,
                           net->wsbytes),
                       op->name, "cudnnFindConvolutionBackwardDataAlgorithmEx", err);
        if (rc != 0)
            return rc;
        PICK(dp, n, net->wsbytes, pick);
        if (pick < 0)
            return aicp_tb_err_set(err, AICP_TB_EIO,
                                   "%s: cuDNN has no backward-data algorithm for it in %zu MiB "
                                   "of workspace",
                                   op->name, net->wsbytes >> 20);
        op->algos.bwd_data = dp[pick].algo;
        op->algos.math[1] = dp[pick].mathType;
    }

    rc = dnn_check(cudnnFindConvolutionBackwardFilterAlgorithmEx(
                       net->dnn, in->desc, x, out->desc, out->grad, op->cdesc[2], op->wdesc, dw,
                       CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, wp, net->ws, net->wsbytes),
                   op->name, "cudnnFindConvolutionBackwardFilterAlgorithmEx", err);
    if (rc != 0)
        return rc;
    PICK(wp, n, net->wsbytes, pick);
    if (pick < 0)
        return aicp_tb_err_set(err, AICP_TB_EIO,
                               "%s: cuDNN has no backward-filter algorithm for it in %zu MiB "
                               "of workspace",
                               op->name, net->wsbytes >> 20);
    op->algos.bwd_filter = wp[pick].algo;
    op->algos.math[2] = wp[pick].mathType;
    return 0;
}

static int tune(struct aicp_tb_cuda_net *net, struct aicp_tb_err *err)
{
    size_t freeb = 0, totalb = 0;
    int i, j, k, rc;

    /* One workspace, shared by cuDNN and cuBLASLt (one stream, so never
     * in use twice): up to 1 GiB, leaving room for cuDNN's own buffers. */
    if ((rc = aicp_tb_cuda_check(cudaMemGetInfo(&freeb, &totalb), "cudaMemGetInfo", err)) != 0)
        return rc;
    net->wsbytes = (size_t)1 << 30;
    if (freeb / 4 < net->wsbytes)
        net->wsbytes = freeb / 4;
    if ((rc = dalloc(net, &net->ws, net->wsbytes, "the convolution workspace", err)) != 0)
        return rc;
    for (i = 0; i < net->nops; i++) {
        struct tb_op *op = &net->ops[i];

        if (op->kind != OP_CONV)
            continue;
        for (j = 0; j < i; j++)
            if (net->ops[j].kind == OP_CONV && same_conv(net, &net->ops[j], op))
                break;
        if (j < i)
            op->algos = net->ops[j].algos;
        else if ((rc = find_algos(net, op, err)) != 0)
            return rc;
        for (k = 0; k < 3; k++)
            if ((rc = dnn_check(cudnnSetConvolutionMathType(op->cdesc[k], op->algos.math[k]),
                                op->name, "cudnnSetConvolutionMathType", err)) != 0)
                return rc;
    }
    return 0;
}

/* ---- cuBLASLt ---- */

int aicp_tb_cuda_gemm_plan(struct aicp_tb_cuda_gemm *g, cublasLtHandle_t lt, int trans_a,
                           int trans_b, int m, int n, int k, cudaDataType_t at, int lda,
                           cudaDataType_t bt, int ldb, cudaDataType_t ct, int ldc, size_t ws,
                           const char *what, struct aicp_tb_err *err)
{
    cublasOperation_t ta = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t tb = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t res;
    int nres = 0, rc;

    memset(g, 0, sizeof(*g));
    memset(&res, 0, sizeof(res));
    rc = lt_check(cublasLtMatmulDescCreate(&g->op, CUBLAS_COMPUTE_32F, CUDA_R_32F), what,
                  "cublasLtMatmulDescCreate", err);
    if (rc == 0)
        rc = lt_check(
            cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)),
            what, "cublasLtMatmulDescSetAttribute", err);
    if (rc == 0)
        rc = lt_check(
            cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)),
            what, "cublasLtMatmulDescSetAttribute", err);
    /* Layouts describe the matrices as stored, before op(). */
    if (rc == 0)
        rc = lt_check(cublasLtMatrixLayoutCreate(&g->a, at, (uint64_t)(trans_a ? k : m),
                                                 (uint64_t)(trans_a ? m : k), lda),
                      what, "cublasLtMatrixLayoutCreate", err);
    if (rc == 0)
        rc = lt_check(cublasLtMatrixLayoutCreate(&g->b, bt, (uint64_t)(trans_b ? n : k),
                                                 (uint64_t)(trans_b ? k : n), ldb),
                      what, "cublasLtMatrixLayoutCreate", err);
    if (rc == 0)
        rc = lt_check(cublasLtMatrixLayoutCreate(&g->c, ct, (uint64_t)m, (uint64_t)n, ldc), what,
                      "cublasLtMatrixLayoutCreate", err);
    if (rc == 0)
        rc = lt_check(cublasLtMatmulPreferenceCreate(&pref), what, "cublasLtMatmulPreferenceCreate",
                      err);
    if (rc == 0)
        rc = lt_check(cublasLtMatmulPreferenceSetAttribute(
                          pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)),
                      what, "cublasLtMatmulPreferenceSetAttribute", err);
    if (rc == 0)
        rc = lt_check(
            cublasLtMatmulAlgoGetHeuristic(lt, g->op, g->a, g->b, g->c, g->c, pref, 1, &res, &nres),
            what, "cublasLtMatmulAlgoGetHeuristic", err);
    if (rc == 0 && (nres < 1 || res.state != CUBLAS_STATUS_SUCCESS))
        rc = aicp_tb_err_set(err, AICP_TB_EIO,
                             "%s: cuBLASLt has no algorithm for a %dx%dx%d product of these "
                             "types",
                             what, m, n, k);
    if (pref != NULL)
        cublasLtMatmulPreferenceDestroy(pref);
    if (rc != 0) {
        aicp_tb_cuda_gemm_free(g);
        return rc;
    }
    g->algo = res.algo;
    g->ws_needed = res.workspaceSize;
    return 0;
}

int aicp_tb_cuda_gemm_run(const struct aicp_tb_cuda_gemm *g, cublasLtHandle_t lt, float alpha,
                          const void *a, const void *b, float beta, void *d, void *ws,
                          size_t wsbytes, cudaStream_t stream, const char *what,
                          struct aicp_tb_err *err)
{
    return lt_check(cublasLtMatmul(lt, g->op, &alpha, a, g->a, b, g->b, &beta, d, g->c, d, g->c,
                                   &g->algo, ws, wsbytes, stream),
                    what, "cublasLtMatmul", err);
}

void aicp_tb_cuda_gemm_free(struct aicp_tb_cuda_gemm *g)
{
    if (g->c != NULL)
        cublasLtMatrixLayoutDestroy(g->c);
    if (g->b != NULL)
        cublasLtMatrixLayoutDestroy(g->b);
    if (g->a != NULL)
        cublasLtMatrixLayoutDestroy(g->a);
    if (g->op != NULL)
        cublasLtMatmulDescDestroy(g->op);
    memset(g, 0, sizeof(*g));
}

/* The classifier as three column-major products. Row-major x [n][f],
 * w [f][c] and logits [n][c] are, column-major, x^T (f x n), w^T (c x f)
 * and logits^T (c x n), so logits^T = w^T x^T, dx^T = (w^T)^T dlogits^T
 * and dw^T = dlogits^T (x^T)^T. */
static int plan_fc(struct aicp_tb_cuda_net *net, struct tb_op *op, struct aicp_tb_err *err)
{
    int n = net->cfg.batch, f = net->tensors[op->in].shape.c, c = net->cfg.classes, rc;
    cudaDataType_t t = net->blas_type;

    rc = aicp_tb_cuda_gemm_plan(&op->fwd, net->lt, 0, 0, c, n, f, t, c, t, f, CUDA_R_32F, c,
                                net->wsbytes, op->name, err);
    if (rc == 0)
        rc = aicp_tb_cuda_gemm_plan(&op->dgrad, net->lt, 1, 0, f, n, c, t, c, t, c, t, f,
                                    net->wsbytes, op->name, err);
    if (rc == 0)
        rc = aicp_tb_cuda_gemm_plan(&op->wgrad, net->lt, 0, 1, c, f, n, t, c, t, f, CUDA_R_32F, c,
                                    net->wsbytes, op->name, err);
    return rc;
}

/* ---- life cycle ---- */

int aicp_tb_cuda_net_new(struct aicp_tb_cuda_net **out, const struct aicp_tb_model_cfg *cfg,
                         int dtype, int nslots, cudaStream_t stream, struct aicp_tb_err *err)
{
    struct aicp_tb_cuda_net *net;
    int rc, i;

    *out = NULL;
    net = calloc(1, sizeof(*net));
    if (net == NULL)
        return aicp_tb_err_set(err, AICP_TB_ENOMEM, "out of memory building the model");
    net->cfg = *cfg;
    net->dtype = dtype;
    net->nslots = nslots < 1 ? 1 : nslots;
    net->stream = stream;
    switch (dtype) {
    case AICP_TB_CUDA_F16:
        net->dnn_type = CUDNN_DATA_HALF;
        net->blas_type = CUDA_R_16F;
        net->esize = 2;
        break;
    case AICP_TB_CUDA_BF16:
        net->dnn_type = CUDNN_DATA_BFLOAT16;
        net->blas_type = CUDA_R_16BF;
        net->esize = 2;
        break;
    default:
        net->dtype = AICP_TB_CUDA_F32;
        net->dnn_type = CUDNN_DATA_FLOAT;
        net->blas_type = CUDA_R_32F;
        net->esize = 4;
        break;
    }
    if ((rc = build(net, err)) != 0)
        goto out;
    if ((rc = dnn_check(cudnnCreate(&net->dnn), "cuDNN", "cudnnCreate", err)) != 0)
        goto out;
    if ((rc = dnn_check(cudnnSetStream(net->dnn, stream), "cuDNN", "cudnnSetStream", err)) != 0)
        goto out;
    if ((rc = lt_check(cublasLtCreate(&net->lt), "cuBLASLt", "cublasLtCreate", err)) != 0)
        goto out;
    if ((rc = alloc_all(net, err)) != 0)
        goto out;
    if ((rc = init_params(net, err)) != 0)
        goto out;
    if ((rc = make_descs(net, err)) != 0)
        goto out;
    if ((rc = tune(net, err)) != 0)
        goto out;
    for (i = 0; i < net->nops; i++)
        if (net->ops[i].kind == OP_FC && (rc = plan_fc(net, &net->ops[i], err)) != 0)
            goto out;
    rc = aicp_tb_cuda_check(cudaStreamSynchronize(stream), "setting up the model", err);
out:
    if (rc != 0) {
        aicp_tb_cuda_net_free(net);
        return rc;
    }
    *out = net;
    return 0;
}

void aicp_tb_cuda_net_free(struct aicp_tb_cuda_net *net)
{
    int i, k;

    if (net == NULL)
        return;
    for (i = 0; i < net->nops; i++) {
        struct tb_op *op = &net->ops[i];

        if (op->wdesc != NULL)
            cudnnDestroyFilterDescriptor(op->wdesc);
        for (k = 0; k < 3; k++)
            if (op->cdesc[k] != NULL)
                cudnnDestroyConvolutionDescriptor(op->cdesc[k]);
        if (op->bndesc != NULL)
            cudnnDestroyTensorDescriptor(op->bndesc);
        if (op->pdesc != NULL)
            cudnnDestroyPoolingDescriptor(op->pdesc);
        if (op->kind == OP_FC) {
            aicp_tb_cuda_gemm_free(&op->fwd);
            aicp_tb_cuda_gemm_free(&op->dgrad);
            aicp_tb_cuda_gemm_free(&op->wgrad);
        }
    }
    for (i = 0; i < net->ntensors; i++)
        if (net->tensors[i].desc != NULL)
            cudnnDestroyTensorDescriptor(net->tensors[i].desc);
    for (i = 0; i < net->nallocs; i++)
        cudaFree(net->allocs[i]);
    if (net->host != NULL)
        cudaFreeHost(net->host);
    if (net->lt != NULL)
        cublasLtDestroy(net->lt);
    if (net->dnn != NULL)
        cudnnDestroy(net->dnn);
    free(net->slot_x);
    free(net->slot_labels);
    free(net->ops);
    free(net->tensors);
    free(net->params);
    free(net);
}

size_t aicp_tb_cuda_net_params(const struct aicp_tb_cuda_net *net)
{
    return net->trainable;
}

double aicp_tb_cuda_net_fwd_macs(const struct aicp_tb_cuda_net *net)
{
    return net->macs;
}

size_t aicp_tb_cuda_net_device_bytes(const struct aicp_tb_cuda_net *net)
{
    return net->dev_bytes;
}

float *aicp_tb_cuda_net_grads(struct aicp_tb_cuda_net *net, size_t *n)
{
    *n = net->np;
    return net->g32;
}

int aicp_tb_cuda_net_upload(struct aicp_tb_cuda_net *net, int slot, const float *x,
                            const int *labels, struct aicp_tb_err *err)
{
    size_t count = net->tensors[0].count;
    float *dst = net->dtype == AICP_TB_CUDA_F32 ? (float *)net->slot_x[slot] : net->stage;
    int rc;

    rc = aicp_tb_cuda_check(cudaMemcpy(dst, x, count * 4, cudaMemcpyHostToDevice),
                            "copying an input batch", err);
    if (rc == 0 && net->dtype != AICP_TB_CUDA_F32)
        rc = kern_check(
            aicp_tb_cuda_k_from_f32(net->dtype, net->slot_x[slot], net->stage, count, net->stream),
            "casting an input batch", err);
    if (rc == 0)
        rc = aicp_tb_cuda_check(cudaMemcpy(net->slot_labels[slot], labels,
                                           (size_t)net->cfg.batch * sizeof(int),
                                           cudaMemcpyHostToDevice),
                                "copying labels", err);
    if (rc == 0)
        rc = aicp_tb_cuda_check(cudaStreamSynchronize(net->stream), "uploading a batch", err);
    return rc;
}

/* ---- the step ---- */

static const float one = 1.0f, zero = 0.0f;

static int forward(struct aicp_tb_cuda_net *net, struct tb_op *op, int slot,
                   struct aicp_tb_err *err)
{
    struct tb_tensor *in = &net->tensors[op->in], *out = &net->tensors[op->out];
    const void *x = op->in == 0 ? net->slot_x[slot] : in->val;
    float *st = net->stats + op->stat_off;
    cudnnStatus_t s;
    int c = out->shape.c;

    switch (op->kind) {
    case OP_CONV:
        return dnn_check(cudnnConvolutionForward(net->dnn, &one, in->desc, x, op->wdesc,
                                                 (const char *)net->wlp + op->w_off * net->esize,
                                                 op->cdesc[0], op->algos.fwd, net->ws, net->wsbytes,
                                                 &zero, out->desc, out->val),
                         op->name, "cudnnConvolutionForward", err);
    case OP_BN:
        for (;;) {
            s = cudnnBatchNormalizationForwardTraining(
                net->dnn, op->bn_mode, &one, &zero, in->desc, x, out->desc, out->val, op->bndesc,
                net->w32 + op->w_off, net->w32 + op->b_off, BN_MOMENTUM, st + 2 * c, st + 3 * c,
                BN_EPS, st, st + c);
            /* Not every cuDNN build has persistent kernels for every shape:
             * fall back to the plain ones for this layer, for good. */
            if (s != CUDNN_STATUS_NOT_SUPPORTED || op->bn_mode == CUDNN_BATCHNORM_SPATIAL)
                break;
            op->bn_mode = CUDNN_BATCHNORM_SPATIAL;
        }
        if (s != CUDNN_STATUS_SUCCESS)
            return dnn_check(s, op->name, "cudnnBatchNormalizationForwardTraining", err);
        if (op->relu)
            return kern_check(aicp_tb_cuda_k_relu(net->dtype, out->val, out->count, net->stream),
                              op->name, err);
        return 0;
    case OP_MAXPOOL:
        return dnn_check(
            cudnnPoolingForward(net->dnn, op->pdesc, &one, in->desc, x, &zero, out->desc, out->val),
            op->name, "cudnnPoolingForward", err);
    case OP_ADD_RELU:
        return kern_check(aicp_tb_cuda_k_add_relu(net->dtype, in->val, net->tensors[op->in2].val,
                                                  out->val, out->count, net->stream),
                          op->name, err);
    case OP_GAP:
        return kern_check(aicp_tb_cuda_k_gap(net->dtype, in->val, out->val, in->shape.n,
                                             in->shape.h * in->shape.w, in->shape.c, net->stream),
                          op->name, err);
    case OP_FC:
        return aicp_tb_cuda_gemm_run(&op->fwd, net->lt, 1.0f,
                                     (const char *)net->wlp + op->w_off * net->esize, in->val, 0.0f,
                                     out->val, net->ws, net->wsbytes, net->stream, op->name, err);
    }
    return 0;
}

static int grad_accumulate(struct aicp_tb_cuda_net *net, int t)
{
    int acc = net->tensors[t].grad_written;

    net->tensors[t].grad_written = 1;
    return acc;
}

static int backward(struct aicp_tb_cuda_net *net, struct tb_op *op, int slot,
                    struct aicp_tb_err *err)
{
    struct tb_tensor *in = &net->tensors[op->in], *out = &net->tensors[op->out];
    const void *x = op->in == 0 ? net->slot_x[slot] : in->val;
    int acc = op->in > 0 ? grad_accumulate(net, op->in) : 0, rc, c = out->shape.c;
    const float *beta = acc ? &one : &zero;
    float *st = net->stats + op->stat_off;

    switch (op->kind) {
    case OP_CONV: {
        const void *w = (const char *)net->wlp + op->w_off * net->esize;

        rc = dnn_check(cudnnConvolutionBackwardFilter(net->dnn, &one, in->desc, x, out->desc,
                                                      out->grad, op->cdesc[2], op->algos.bwd_filter,
                                                      net->ws, net->wsbytes, &zero, op->wdesc,
                                                      (char *)net->glp + op->w_off * net->esize),
                       op->name, "cudnnConvolutionBackwardFilter", err);
        if (rc != 0 || op->in == 0)
            return rc;
        return dnn_check(cudnnConvolutionBackwardData(
                             net->dnn, &one, op->wdesc, w, out->desc, out->grad, op->cdesc[1],
                             op->algos.bwd_data, net->ws, net->wsbytes, beta, in->desc, in->grad),
                         op->name, "cudnnConvolutionBackwardData", err);
    }
    case OP_BN:
        /* Every reader of out has already added its gradient, so the ReLU
         * mask can be applied to it in place. */
        if (op->relu && (rc = kern_check(aicp_tb_cuda_k_relu_bwd(net->dtype, out->grad, out->val,
                                                                 out->count, net->stream),
                                         op->name, err)) != 0)
            return rc;
        return dnn_check(cudnnBatchNormalizationBackward(
                             net->dnn, op->bn_mode, &one, beta, &one, &zero, in->desc, x, out->desc,
                             out->grad, in->desc, in->grad, op->bndesc, net->w32 + op->w_off,
                             net->g32 + op->w_off, net->g32 + op->b_off, BN_EPS, st, st + c),
                         op->name, "cudnnBatchNormalizationBackward", err);
    case OP_MAXPOOL:
        return dnn_check(cudnnPoolingBackward(net->dnn, op->pdesc, &one, out->desc, out->val,
                                              out->desc, out->grad, in->desc, x, beta, in->desc,
                                              in->grad),
                         op->name, "cudnnPoolingBackward", err);
    case OP_ADD_RELU: {
        int acc2 = grad_accumulate(net, op->in2);

        return kern_check(aicp_tb_cuda_k_add_relu_bwd(net->dtype, out->val, out->grad, in->grad,
                                                      acc, net->tensors[op->in2].grad, acc2,
                                                      out->count, net->stream),
                          op->name, err);
    }
    case OP_GAP:
        return kern_check(aicp_tb_cuda_k_gap_bwd(net->dtype, out->grad, in->grad, acc, in->shape.n,
                                                 in->shape.h * in->shape.w, in->shape.c,
                                                 net->stream),
                          op->name, err);
    case OP_FC:
        rc = kern_check(aicp_tb_cuda_k_bias_grad(net->dtype, out->grad, net->cfg.batch,
                                                 net->cfg.classes, net->g32 + op->b_off,
                                                 net->stream),
                        op->name, err);
        if (rc == 0)
            rc = aicp_tb_cuda_gemm_run(&op->wgrad, net->lt, 1.0f, out->grad, in->val, 0.0f,
                                       net->g32 + op->w_off, net->ws, net->wsbytes, net->stream,
                                       op->name, err);
        if (rc == 0)
            rc = aicp_tb_cuda_gemm_run(&op->dgrad, net->lt, 1.0f,
                                       (const char *)net->wlp + op->w_off * net->esize, out->grad,
                                       acc ? 1.0f : 0.0f, in->grad, net->ws, net->wsbytes,
                                       net->stream, op->name, err);
        return rc;
    }
    return 0;
}

int aicp_tb_cuda_net_step(struct aicp_tb_cuda_net *net, int slot, float loss_scale,
                          struct aicp_tb_err *err)
{
    struct tb_tensor *logits = &net->tensors[net->ntensors - 1];
    const struct tb_op *fc = &net->ops[net->nops - 1];
    int i, rc;

    if (slot < 0 || slot >= net->nslots)
        slot = 0;
    for (i = 0; i < net->nops; i++)
        if ((rc = forward(net, &net->ops[i], slot, err)) != 0)
            return rc;
    rc = kern_check(aicp_tb_cuda_k_softmax_xent(net->dtype, logits->val, net->w32 + fc->b_off,
                                                net->slot_labels[slot], net->cfg.batch,
                                                net->cfg.classes, loss_scale, logits->grad,
                                                net->loss_rows, net->loss_mean, net->stream),
                    "softmax cross-entropy", err);
    if (rc != 0)
        return rc;
    for (i = 0; i < net->ntensors; i++)
        net->tensors[i].grad_written = 0;
    for (i = net->nops - 1; i >= 0; i--)
        if ((rc = backward(net, &net->ops[i], slot, err)) != 0)
            return rc;
    if (net->dtype != AICP_TB_CUDA_F32)
        rc = kern_check(
            aicp_tb_cuda_k_to_f32(net->dtype, net->g32, net->glp, net->nconv, net->stream),
            "casting weight gradients", err);
    return rc;
}

int aicp_tb_cuda_net_update(struct aicp_tb_cuda_net *net, const struct aicp_tb_sgd *sgd,
                            float gscale, int check_overflow, struct aicp_tb_err *err)
{
    int rc = 0;

    if (check_overflow) {
        rc = aicp_tb_cuda_check(cudaMemsetAsync(net->flag, 0, sizeof(int), net->stream),
                                "clearing the overflow flag", err);
        if (rc == 0)
            rc = kern_check(aicp_tb_cuda_k_check_finite(net->g32, net->np, net->flag, net->stream),
                            "checking gradients", err);
    }
    if (rc == 0)
        rc =
            kern_check(aicp_tb_cuda_k_sgd(net->dtype, net->w32, net->g32, net->v32,
                                          net->dtype == AICP_TB_CUDA_F32 ? NULL : net->wlp, net->np,
                                          net->ndecay, sgd->lr, sgd->momentum, sgd->weight_decay,
                                          gscale, check_overflow ? net->flag : NULL, net->stream),
                       "SGD update", err);
    if (rc == 0)
        rc = aicp_tb_cuda_check(cudaMemcpyAsync(&net->host->loss, net->loss_mean, sizeof(float),
                                                cudaMemcpyDeviceToHost, net->stream),
                                "reading the loss", err);
    net->host->flag = 0;
    if (rc == 0 && check_overflow)
        rc = aicp_tb_cuda_check(cudaMemcpyAsync(&net->host->flag, net->flag, sizeof(int),
                                                cudaMemcpyDeviceToHost, net->stream),
                                "reading the overflow flag", err);
    return rc;
}

int aicp_tb_cuda_net_finish(struct aicp_tb_cuda_net *net, double *loss, int *overflow,
                            struct aicp_tb_err *err)
{
    int rc = aicp_tb_cuda_check(cudaStreamSynchronize(net->stream), "running a training step", err);

    if (rc != 0)
        return rc;
    *loss = net->host->loss;
    *overflow = net->host->flag != 0;
    return 0;
}
