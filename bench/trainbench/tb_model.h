/* The ResNet that aicp-trainbench trains: a layer graph built from a size
 * description (ResNet-50 v1.5 or any narrower, shallower or smaller
 * variant), its parameters, activations and gradients, and one SGD
 * training step over a batch. */
#ifndef AICP_TB_MODEL_H
#define AICP_TB_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "tb_gemm.h"
#include "tb_util.h"

#define AICP_TB_MAX_STAGES 8

/* A bottleneck ResNet: a 7x7/2 stem convolution with width channels,
 * 3x3/2 max pool, then nstages stages of blocks[i] bottleneck blocks whose
 * inner width is width << i and output 4 * (width << i); every stage after
 * the first halves the resolution with stride 2 on its first 3x3
 * convolution (v1.5). Global average pool and a classes-way classifier. */
struct aicp_tb_model_cfg {
    int width;
    int nstages;
    int blocks[AICP_TB_MAX_STAGES];
    int resolution;
    int classes;
    int batch;
    uint64_t seed;
};

/* Fills cfg for "resnet50" or "resnet-tiny" (batch and seed untouched);
 * AICP_TB_EUSAGE for another name. */
int aicp_tb_model_preset(struct aicp_tb_model_cfg *cfg, const char *name,
                         struct aicp_tb_err *err);

struct aicp_tb_model;

/* Builds the graph for cfg. With allocate zero only shapes, parameter and
 * FLOP counts are worked out (aicp_tb_model_step must not be called).
 * g (borrowed, must outlive the model) may be NULL when allocate is zero.
 * Errors: AICP_TB_EUSAGE for sizes that do not make a network (named in
 * the message), AICP_TB_ENOMEM. */
int aicp_tb_model_new(struct aicp_tb_model **out, const struct aicp_tb_model_cfg *cfg,
                      struct aicp_tb_gemm *g, int allocate, struct aicp_tb_err *err);
void aicp_tb_model_free(struct aicp_tb_model *m);

/* Multiply-adds of one image's forward pass (convolutions and classifier). */
double aicp_tb_model_fwd_macs(const struct aicp_tb_model *m);
/* Trainable parameters (conv and fc weights, fc bias, bn gamma and beta). */
size_t aicp_tb_model_params(const struct aicp_tb_model *m);

/* The input batch, [batch][resolution][resolution][3], and its labels, for
 * the caller to fill before a step (borrowed). */
float *aicp_tb_model_input(struct aicp_tb_model *m);
int *aicp_tb_model_labels(struct aicp_tb_model *m);

struct aicp_tb_sgd {
    float lr;
    float momentum;
    float weight_decay; /* conv and fc weights only */
};

/* Forward pass, loss (returned in *loss), backward pass. With sgd non-NULL
 * the parameters are then updated. */
void aicp_tb_model_step(struct aicp_tb_model *m, const struct aicp_tb_sgd *sgd, double *loss);

/* Parameter and gradient access for gradient checks: all trainable
 * parameters form one array of aicp_tb_model_params floats, in graph
 * order; the gradient array matches it after a step. Borrowed. */
float *aicp_tb_model_param_data(struct aicp_tb_model *m);
const float *aicp_tb_model_grad_data(const struct aicp_tb_model *m);

#endif
