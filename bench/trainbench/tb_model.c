/* The ResNet layer graph of aicp-trainbench (see tb_model.h): a flat list
 * of operations over numbered tensors, run forwards for the loss and
 * backwards for the gradients. All trainable parameters live in one array
 * (with matching gradient and momentum arrays) so that the SGD update is a
 * single loop and gradient checks can address any parameter by index. */
#include "tb_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tb_layers.h"

enum op_kind { OP_CONV, OP_BN, OP_MAXPOOL, OP_ADD_RELU, OP_GAP, OP_FC };

struct tb_tensor {
    struct aicp_tb_shape shape;
    float *val;
    float *grad;
    int grad_written;
};

struct tb_op {
    enum op_kind kind;
    int in, in2, out;
    struct aicp_tb_conv conv;
    struct aicp_tb_bn bn;
    struct aicp_tb_pool2d pool;
    size_t w_off;    /* conv/fc weight, bn gamma */
    size_t b_off;    /* fc bias, bn beta */
    size_t stat_off; /* bn: mean, invstd, running mean, running var (4 * c) */
    int *argmax;
};

struct tb_param {
    size_t off, n;
    int decay;
    float init_std; /* 0: constant init_value */
    float init_value;
};

struct aicp_tb_model {
    struct aicp_tb_model_cfg cfg;
    struct aicp_tb_gemm *g;
    int allocated;
    struct tb_op *ops;
    int nops, capops;
    struct tb_tensor *tensors;
    int ntensors, captensors;
    struct tb_param *params;
    int nparams, capparams;
    size_t nweights, nstats, scratch_floats;
    int maxc;
    double macs;
    float *w, *gw, *vw, *stats, *scratch;
    double *bn_work;
    int *labels;
};

static const struct {
    const char *name;
    struct aicp_tb_model_cfg cfg;
} presets[] = {
    {"resnet50", {.width = 64, .nstages = 4, .blocks = {3, 4, 6, 3}, .resolution = 224,
                  .classes = 1000}},
    {"resnet-tiny", {.width = 8, .nstages = 3, .blocks = {1, 1, 1}, .resolution = 32,
                     .classes = 10}},
};

int aicp_tb_model_preset(struct aicp_tb_model_cfg *cfg, const char *name,
                         struct aicp_tb_err *err)
{
    size_t i;

    for (i = 0; i < sizeof(presets) / sizeof(presets[0]); i++) {
        if (strcmp(presets[i].name, name) == 0) {
            int batch = cfg->batch;
            uint64_t seed = cfg->seed;

            *cfg = presets[i].cfg;
            cfg->batch = batch;
            cfg->seed = seed;
            return 0;
        }
    }
    return aicp_tb_err_set(err, AICP_TB_EUSAGE,
                           "unknown model '%s' (expected resnet50 or resnet-tiny)", name);
}

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

static int add_tensor(struct aicp_tb_model *m, struct aicp_tb_shape s, struct aicp_tb_err *err)
{
    if (s.n < 1 || s.h < 1 || s.w < 1 || s.c < 1)
        return aicp_tb_err_set(err, AICP_TB_EUSAGE,
                               "resolution %d is too small for this network: a layer's output "
                               "would have no pixels",
                               m->cfg.resolution);
    /* Layer loops index with int in places (max pool argmax). */
    if (aicp_tb_shape_count(s) > (size_t)INT32_MAX)
        return aicp_tb_err_set(err, AICP_TB_EUSAGE,
                               "a %dx%dx%dx%d activation is too large; reduce --batch-size or "
                               "--resolution",
                               s.n, s.h, s.w, s.c);
    if (grow((void **)&m->tensors, &m->captensors, m->ntensors + 1, sizeof(*m->tensors)) != 0)
        return aicp_tb_err_set(err, AICP_TB_ENOMEM, "out of memory building the model");
    m->tensors[m->ntensors].shape = s;
    if (s.c > m->maxc)
        m->maxc = s.c;
    return m->ntensors++;
}

static int add_param(struct aicp_tb_model *m, size_t n, int decay, float std, float value,
                     size_t *off, struct aicp_tb_err *err)
{
    struct tb_param *p;

    if (grow((void **)&m->params, &m->capparams, m->nparams + 1, sizeof(*m->params)) != 0)
        return aicp_tb_err_set(err, AICP_TB_ENOMEM, "out of memory building the model");
    p = &m->params[m->nparams++];
    p->off = m->nweights;
    p->n = n;
    p->decay = decay;
    p->init_std = std;
    p->init_value = value;
    *off = m->nweights;
    m->nweights += n;
    return 0;
}

static int add_op(struct aicp_tb_model *m, struct tb_op **out, struct aicp_tb_err *err)
{
    if (grow((void **)&m->ops, &m->capops, m->nops + 1, sizeof(*m->ops)) != 0)
        return aicp_tb_err_set(err, AICP_TB_ENOMEM, "out of memory building the model");
    *out = &m->ops[m->nops++];
    (*out)->in2 = -1;
    return 0;
}

/* Appends conv + bn(+relu); returns the output tensor or a negative code. */
static int add_conv_bn(struct aicp_tb_model *m, int in, int cout, int k, int stride, int relu,
                       struct aicp_tb_err *err)
{
    struct aicp_tb_shape is = m->tensors[in].shape, os;
    struct aicp_tb_conv cv = {.cin = is.c, .cout = cout, .kh = k, .kw = k, .stride = stride,
                              .pad = k / 2};
    struct tb_op *op;
    int t, rc;
    size_t scratch;

    os = aicp_tb_conv_out(&cv, is);
    if ((t = add_tensor(m, os, err)) < 0)
        return t;
    if ((rc = add_op(m, &op, err)) != 0)
        return rc;
    op->kind = OP_CONV;
    op->in = in;
    op->out = t;
    op->conv = cv;
    rc = add_param(m, (size_t)k * k * is.c * cout, 1,
                   (float)sqrt(2.0 / ((double)k * k * is.c)), 0.0f, &op->w_off, err);
    if (rc != 0)
        return rc;
    m->macs += (double)os.h * os.w * k * k * is.c * cout;
    scratch = aicp_tb_conv_scratch(&cv, is);
    if (scratch > m->scratch_floats)
        m->scratch_floats = scratch;

    in = t;
    if ((t = add_tensor(m, os, err)) < 0)
        return t;
    if ((rc = add_op(m, &op, err)) != 0)
        return rc;
    op->kind = OP_BN;
    op->in = in;
    op->out = t;
    op->bn = (struct aicp_tb_bn){.rows = (size_t)os.n * os.h * os.w, .c = cout, .eps = 1e-5f,
                                 .momentum = 0.1f, .relu = relu};
    if ((rc = add_param(m, (size_t)cout, 0, 0.0f, 1.0f, &op->w_off, err)) != 0)
        return rc;
    if ((rc = add_param(m, (size_t)cout, 0, 0.0f, 0.0f, &op->b_off, err)) != 0)
        return rc;
    op->stat_off = m->nstats;
    m->nstats += 4 * (size_t)cout;
    return t;
}

static int add_block(struct aicp_tb_model *m, int in, int mid, int stride,
                     struct aicp_tb_err *err)
{
    int a, b, c, s, t, rc;
    struct tb_op *op;
    int cout = 4 * mid;

    if ((a = add_conv_bn(m, in, mid, 1, 1, 1, err)) < 0)
        return a;
    if ((b = add_conv_bn(m, a, mid, 3, stride, 1, err)) < 0)
        return b;
    if ((c = add_conv_bn(m, b, cout, 1, 1, 0, err)) < 0)
        return c;
    s = in;
    if (stride != 1 || m->tensors[in].shape.c != cout)
        if ((s = add_conv_bn(m, in, cout, 1, stride, 0, err)) < 0)
            return s;
    if ((t = add_tensor(m, m->tensors[c].shape, err)) < 0)
        return t;
    if ((rc = add_op(m, &op, err)) != 0)
        return rc;
    op->kind = OP_ADD_RELU;
    op->in = c;
    op->in2 = s;
    op->out = t;
    return t;
}

static int check_cfg(const struct aicp_tb_model_cfg *cfg, struct aicp_tb_err *err)
{
    int i;

    if (cfg->width < 1 || cfg->width > 4096)
        return aicp_tb_err_set(err, AICP_TB_EUSAGE, "width %d is out of range 1..4096",
                               cfg->width);
    if (cfg->nstages < 1 || cfg->nstages > AICP_TB_MAX_STAGES)
        return aicp_tb_err_set(err, AICP_TB_EUSAGE, "%d stages is out of range 1..%d",
                               cfg->nstages, AICP_TB_MAX_STAGES);
    for (i = 0; i < cfg->nstages; i++)
        if (cfg->blocks[i] < 1 || cfg->blocks[i] > 256)
            return aicp_tb_err_set(err, AICP_TB_EUSAGE,
                                   "stage %d has %d blocks (range 1..256)", i + 1,
                                   cfg->blocks[i]);
    if ((long)cfg->width << (cfg->nstages - 1) > 65536)
        return aicp_tb_err_set(err, AICP_TB_EUSAGE, "width %d with %d stages is too wide",
                               cfg->width, cfg->nstages);
    if (cfg->resolution < 1 || cfg->resolution > 8192)
        return aicp_tb_err_set(err, AICP_TB_EUSAGE, "resolution %d is out of range 1..8192",
                               cfg->resolution);
    if (cfg->classes < 2 || cfg->classes > 1000000)
        return aicp_tb_err_set(err, AICP_TB_EUSAGE, "%d classes is out of range 2..1000000",
                               cfg->classes);
    if (cfg->batch < 1 || cfg->batch > 1000000)
        return aicp_tb_err_set(err, AICP_TB_EUSAGE, "batch size %d is out of range 1..1000000",
                               cfg->batch);
    return 0;
}

static int model_build(struct aicp_tb_model *m, struct aicp_tb_err *err)
{
    const struct aicp_tb_model_cfg *cfg = &m->cfg;
    struct aicp_tb_shape s = {cfg->batch, cfg->resolution, cfg->resolution, 3};
    struct tb_op *op;
    int t, st, b, rc;

    if ((t = add_tensor(m, s, err)) < 0)
        return t;
    if ((t = add_conv_bn(m, t, cfg->width, 7, 2, 1, err)) < 0)
        return t;
    {
        struct aicp_tb_pool2d pool = {.k = 3, .stride = 2, .pad = 1};
        int in = t;

        if ((t = add_tensor(m, aicp_tb_maxpool_out(&pool, m->tensors[in].shape), err)) < 0)
            return t;
        if ((rc = add_op(m, &op, err)) != 0)
            return rc;
        op->kind = OP_MAXPOOL;
        op->in = in;
        op->out = t;
        op->pool = pool;
    }
    for (st = 0; st < cfg->nstages; st++)
        for (b = 0; b < cfg->blocks[st]; b++)
            if ((t = add_block(m, t, cfg->width << st, (st > 0 && b == 0) ? 2 : 1, err)) < 0)
                return t;
    {
        int in = t, feat = m->tensors[in].shape.c;

        if ((t = add_tensor(m, (struct aicp_tb_shape){cfg->batch, 1, 1, feat}, err)) < 0)
            return t;
        if ((rc = add_op(m, &op, err)) != 0)
            return rc;
        op->kind = OP_GAP;
        op->in = in;
        op->out = t;
        in = t;
        if ((t = add_tensor(m, (struct aicp_tb_shape){cfg->batch, 1, 1, cfg->classes}, err)) < 0)
            return t;
        if ((rc = add_op(m, &op, err)) != 0)
            return rc;
        op->kind = OP_FC;
        op->in = in;
        op->out = t;
        rc = add_param(m, (size_t)feat * cfg->classes, 1, 0.01f, 0.0f, &op->w_off, err);
        if (rc != 0)
            return rc;
        if ((rc = add_param(m, (size_t)cfg->classes, 0, 0.0f, 0.0f, &op->b_off, err)) != 0)
            return rc;
        m->macs += (double)feat * cfg->classes;
    }
    return 0;
}

static int model_alloc(struct aicp_tb_model *m, struct aicp_tb_err *err)
{
    struct aicp_tb_rng rng;
    int i;
    size_t j;

    m->w = aicp_tb_falloc(m->nweights);
    m->gw = aicp_tb_falloc(m->nweights);
    m->vw = aicp_tb_falloc(m->nweights);
    m->stats = aicp_tb_falloc(m->nstats);
    m->scratch = aicp_tb_falloc(m->scratch_floats);
    m->bn_work = calloc(4 * (size_t)m->maxc, sizeof(double));
    m->labels = calloc((size_t)m->cfg.batch, sizeof(int));
    if (m->w == NULL || m->gw == NULL || m->vw == NULL || m->stats == NULL ||
        m->scratch == NULL || m->bn_work == NULL || m->labels == NULL)
        goto oom;
    for (i = 0; i < m->ntensors; i++) {
        size_t n = aicp_tb_shape_count(m->tensors[i].shape);

        if ((m->tensors[i].val = aicp_tb_falloc(n)) == NULL)
            goto oom;
        /* The input image needs no gradient. */
        if (i > 0 && (m->tensors[i].grad = aicp_tb_falloc(n)) == NULL)
            goto oom;
    }
    for (i = 0; i < m->nops; i++) {
        struct tb_op *op = &m->ops[i];

        if (op->kind == OP_MAXPOOL) {
            op->argmax = calloc(aicp_tb_shape_count(m->tensors[op->out].shape), sizeof(int));
            if (op->argmax == NULL)
                goto oom;
        }
        if (op->kind == OP_BN) {
            op->bn.work = m->bn_work;
            for (j = 0; j < (size_t)op->bn.c; j++)
                m->stats[op->stat_off + 3 * (size_t)op->bn.c + j] = 1.0f; /* running var */
        }
    }
    aicp_tb_rng_seed(&rng, m->cfg.seed);
    for (i = 0; i < m->nparams; i++) {
        const struct tb_param *p = &m->params[i];

        for (j = 0; j < p->n; j++)
            m->w[p->off + j] = p->init_std > 0.0f ? p->init_std * aicp_tb_rng_normal(&rng)
                                                  : p->init_value;
    }
    return 0;
oom:
    return aicp_tb_err_set(err, AICP_TB_ENOMEM,
                           "out of memory allocating the model (batch %d, resolution %d); "
                           "try a smaller --batch-size",
                           m->cfg.batch, m->cfg.resolution);
}

int aicp_tb_model_new(struct aicp_tb_model **out, const struct aicp_tb_model_cfg *cfg,
                      struct aicp_tb_gemm *g, int allocate, struct aicp_tb_err *err)
{
    struct aicp_tb_model *m;
    int rc;

    *out = NULL;
    if ((rc = check_cfg(cfg, err)) != 0)
        return rc;
    m = calloc(1, sizeof(*m));
    if (m == NULL)
        return aicp_tb_err_set(err, AICP_TB_ENOMEM, "out of memory building the model");
    m->cfg = *cfg;
    m->g = g;
    if ((rc = model_build(m, err)) != 0)
        goto out;
    if (allocate) {
        if ((rc = model_alloc(m, err)) != 0)
            goto out;
        m->allocated = 1;
    }
out:
    if (rc != 0) {
        aicp_tb_model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void aicp_tb_model_free(struct aicp_tb_model *m)
{
    int i;

    if (m == NULL)
        return;
    for (i = 0; i < m->ntensors; i++) {
        free(m->tensors[i].val);
        free(m->tensors[i].grad);
    }
    for (i = 0; i < m->nops; i++)
        free(m->ops[i].argmax);
    free(m->tensors);
    free(m->ops);
    free(m->params);
    free(m->w);
    free(m->gw);
    free(m->vw);
    free(m->stats);
    free(m->scratch);
    free(m->bn_work);
    free(m->labels);
    free(m);
}

double aicp_tb_model_fwd_macs(const struct aicp_tb_model *m)
{
    return m->macs;
}

size_t aicp_tb_model_params(const struct aicp_tb_model *m)
{
    return m->nweights;
}

float *aicp_tb_model_input(struct aicp_tb_model *m)
{
    return m->tensors[0].val;
}

int *aicp_tb_model_labels(struct aicp_tb_model *m)
{
    return m->labels;
}

float *aicp_tb_model_param_data(struct aicp_tb_model *m)
{
    return m->w;
}

const float *aicp_tb_model_grad_data(const struct aicp_tb_model *m)
{
    return m->gw;
}

static void op_forward(struct aicp_tb_model *m, struct tb_op *op)
{
    struct tb_tensor *in = &m->tensors[op->in], *out = &m->tensors[op->out];
    float *st = m->stats + op->stat_off;

    switch (op->kind) {
    case OP_CONV:
        aicp_tb_conv_forward(m->g, &op->conv, in->shape, in->val, m->w + op->w_off, out->val,
                             m->scratch);
        break;
    case OP_BN:
        aicp_tb_bn_forward(&op->bn, in->val, m->w + op->w_off, m->w + op->b_off, out->val, st,
                           st + op->bn.c, st + 2 * op->bn.c, st + 3 * op->bn.c);
        break;
    case OP_MAXPOOL:
        aicp_tb_maxpool_forward(&op->pool, in->shape, in->val, out->val, op->argmax);
        break;
    case OP_ADD_RELU:
        aicp_tb_add_relu_forward(aicp_tb_shape_count(out->shape), in->val,
                                 m->tensors[op->in2].val, out->val);
        break;
    case OP_GAP:
        aicp_tb_gap_forward(in->shape, in->val, out->val);
        break;
    case OP_FC:
        aicp_tb_fc_forward(m->g, in->shape.n, in->shape.c, out->shape.c, in->val,
                           m->w + op->w_off, m->w + op->b_off, out->val);
        break;
    }
}

/* Whether the gradient of tensor t is to be added to (a second reader's
 * contribution) or written; marks it written. */
static int grad_accumulate(struct aicp_tb_model *m, int t)
{
    int acc = m->tensors[t].grad_written;

    m->tensors[t].grad_written = 1;
    return acc;
}

static void op_backward(struct aicp_tb_model *m, struct tb_op *op)
{
    struct tb_tensor *in = &m->tensors[op->in], *out = &m->tensors[op->out];
    float *st = m->stats + op->stat_off;
    int acc = op->in > 0 ? grad_accumulate(m, op->in) : 0;

    switch (op->kind) {
    case OP_CONV:
        aicp_tb_conv_backward(m->g, &op->conv, in->shape, in->val, m->w + op->w_off, out->grad,
                              in->grad, acc, m->gw + op->w_off, m->scratch);
        break;
    case OP_BN:
        aicp_tb_bn_backward(&op->bn, in->val, out->val, m->w + op->w_off, st, st + op->bn.c,
                            out->grad, in->grad, acc, m->gw + op->w_off, m->gw + op->b_off);
        break;
    case OP_MAXPOOL:
        aicp_tb_maxpool_backward(&op->pool, in->shape, op->argmax, out->grad, in->grad, acc);
        break;
    case OP_ADD_RELU: {
        int acc2 = grad_accumulate(m, op->in2);

        aicp_tb_add_relu_backward(aicp_tb_shape_count(out->shape), out->val, out->grad,
                                  in->grad, acc, m->tensors[op->in2].grad, acc2);
        break;
    }
    case OP_GAP:
        aicp_tb_gap_backward(in->shape, out->grad, in->grad, acc);
        break;
    case OP_FC:
        aicp_tb_fc_backward(m->g, in->shape.n, in->shape.c, out->shape.c, in->val,
                            m->w + op->w_off, out->grad, in->grad, acc, m->gw + op->w_off,
                            m->gw + op->b_off);
        break;
    }
}

void aicp_tb_model_step(struct aicp_tb_model *m, const struct aicp_tb_sgd *sgd, double *loss)
{
    struct tb_tensor *logits = &m->tensors[m->ntensors - 1];
    int i;

    for (i = 0; i < m->nops; i++)
        op_forward(m, &m->ops[i]);
    *loss = aicp_tb_softmax_xent(m->cfg.batch, m->cfg.classes, logits->val, m->labels,
                                 logits->grad);
    for (i = 0; i < m->ntensors; i++)
        m->tensors[i].grad_written = 0;
    for (i = m->nops - 1; i >= 0; i--)
        op_backward(m, &m->ops[i]);
    if (sgd == NULL)
        return;
    for (i = 0; i < m->nparams; i++) {
        const struct tb_param *p = &m->params[i];

        aicp_tb_sgd_update(p->n, m->w + p->off, m->gw + p->off, m->vw + p->off, sgd->lr,
                           sgd->momentum, p->decay ? sgd->weight_decay : 0.0f);
    }
}
