/* One aicp-trainbench run: build the model, train warm-up plus timed steps
 * on synthetic or --data batches, and measure. Only the training step
 * (forward, backward, update) is timed; preparing the batch is not, as
 * with data already resident on an accelerator. */
#ifndef AICP_TB_RUN_H
#define AICP_TB_RUN_H

#include <stdio.h>

#include "tb_cli.h"
#include "tb_util.h"

struct aicp_tb_result {
    double images_per_sec;    /* timed steps only */
    double step_ms_p50, step_ms_p90, step_ms_p99;
    double fwd_macs_per_image;
    double flops_per_image;   /* training: 3 passes x 2 flops per multiply-add */
    double achieved_tflops;
    double loss_first;        /* loss of the very first (warm-up) step */
    double final_loss;
    size_t params;
    int nlosses;              /* warmup + steps */
    double *losses;           /* owned; freed by aicp_tb_result_free */
};

/* progress (may be NULL) receives a line about once a second. */
int aicp_tb_run(struct aicp_tb_result *res, const struct aicp_tb_opts *opts, FILE *progress,
                struct aicp_tb_err *err);
void aicp_tb_result_free(struct aicp_tb_result *res);

/* Nearest-rank percentile (p in 0..100) of n values; sorts v. */
double aicp_tb_percentile(double *v, int n, double p);

#endif
