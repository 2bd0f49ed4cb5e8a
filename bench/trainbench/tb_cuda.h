/* The CUDA path of aicp-trainbench (built only with AICP_TB_CUDA): the same
 * ResNet training benchmark as the CPU path on every GPU of the node from
 * one process, a thread per GPU, with cuDNN, cuBLASLt, mixed precision
 * and gradients all-reduced through NCCL (when built with AICP_TB_NCCL) or
 * peer copies; plus --gemm-check, which measures cuBLASLt matrix-product
 * throughput against the GPU's peak. This header needs no CUDA header, so
 * tb_main.c includes it like any other. */
#ifndef AICP_TB_CUDA_H
#define AICP_TB_CUDA_H

#include <stdio.h>

#include "tb_cli.h"
#include "tb_run.h"
#include "tb_util.h"

struct aicp_tb_cuda_result {
    struct aicp_tb_result base; /* images_per_sec is the total over all GPUs */
    int gpus;
    char gpu_name[256]; /* of the first GPU; "mixed" is not attempted */
    double images_per_sec_per_gpu;
    double peak_tflops;    /* sum over the GPUs used; 0 when unknown */
    double peak_fraction;  /* achieved / peak; NaN when unknown */
    const char *allreduce; /* "nccl", "peer" or "none" (one GPU) */
    double loss_scale;     /* final dynamic loss scale (1 without fp16) */
    int skipped_steps;     /* updates skipped for fp16 overflow */
};

/* Trains per opts (opts->device "cuda"; opts->threads is the number of
 * GPUs, 0 for all visible). progress may be NULL. Errors (exit status 1
 * unless noted): AICP_TB_EUNSUPPORTED when there is no usable GPU (no
 * driver, none visible, fewer than asked, too old for this build or the
 * precision), AICP_TB_EUSAGE (64) for sizes that make no network,
 * AICP_TB_EINVAL (65) for bad --data records, AICP_TB_ENOMEM, AICP_TB_EIO
 * for a failing CUDA/cuDNN/cuBLASLt/NCCL call (the message names the GPU,
 * the layer and the call). */
int aicp_tb_cuda_train(struct aicp_tb_cuda_result *res, const struct aicp_tb_opts *opts,
                       FILE *progress, struct aicp_tb_err *err);
void aicp_tb_cuda_result_free(struct aicp_tb_cuda_result *res);

/* The CPU path's JSON line with the same keys in the same order
 * (threads = GPUs, peak_fraction filled in), then gpus, gpu_name,
 * peak_tflops, allreduce, loss_scale, skipped_steps and global_batch. */
void aicp_tb_cuda_report_json(FILE *out, const struct aicp_tb_opts *opts,
                              const struct aicp_tb_cuda_result *res);
/* Two descriptive lines, then exactly "Total images/sec = N". */
void aicp_tb_cuda_report_human(FILE *out, const struct aicp_tb_opts *opts,
                               const struct aicp_tb_cuda_result *res);

/* Train and report as tb_main.c does for the CPU; returns the exit status. */
int aicp_tb_cuda_main(const struct aicp_tb_opts *opts);

/* "aicp-trainbench --gemm-check [--size N] [--precision fp16|bf16|fp32]
 * [--gpus N] [--iters N] [--json]": argv[0] is the program and argv[1]
 * "--gemm-check". Returns the exit status. */
int aicp_tb_cuda_gemm_main(int argc, char **argv);

/* Approximate dense peak TFLOPS of a GPU: SMs x clock x multiply-adds per
 * SM per clock x 2, with the tensor-core rate for fp16/bf16 (fp32
 * accumulate) and the FMA-unit rate for fp32 ("fp16", "bf16", "fp32").
 * 0 when the architecture or the precision is not known. */
double aicp_tb_cuda_peak_tflops(int cc_major, int cc_minor, int sms, int clock_khz,
                                const char *precision);

#endif
