/* One GPU's copy of aicp-trainbench's ResNet for the CUDA path: the same
 * layer graph as tb_model.c, run with cuDNN (convolutions with searched
 * algorithms, batch norm, max pooling), cuBLASLt (the classifier) and the
 * kernels of tb_cuda_kern.cu, NHWC, with activations and convolution
 * weights in fp16, bf16 or fp32 and fp32 master weights, gradients and
 * momentum. The caller owns the stream, which must be a blocking one
 * (cudaStreamCreate: set-up copies run on the legacy default stream), and
 * the thread; a net is used from one thread at a time with its device
 * current. Gradient exchange between
 * GPUs is the caller's (tb_cuda.c) between step and update. */
#ifndef AICP_TB_CUDA_NET_H
#define AICP_TB_CUDA_NET_H

#include <stddef.h>

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "tb_model.h"
#include "tb_util.h"

struct aicp_tb_cuda_net;

/* Builds the network for cfg on the current device (dtype: enum
 * aicp_tb_cuda_dtype), allocates everything it needs, initialises the
 * weights from cfg->seed exactly as the CPU path does (same draws, conv
 * weights transposed to cuDNN's KRSC order), makes nslots input buffers
 * and searches the convolution algorithms (cudnnFind*Ex) on the real
 * buffers. Errors: AICP_TB_ENOMEM (device memory, with the amount),
 * AICP_TB_EUSAGE (sizes that make no network), AICP_TB_EIO (a CUDA, cuDNN
 * or cuBLASLt call failed; the message names the layer and the call). */
int aicp_tb_cuda_net_new(struct aicp_tb_cuda_net **out, const struct aicp_tb_model_cfg *cfg,
                         int dtype, int nslots, cudaStream_t stream, struct aicp_tb_err *err);
void aicp_tb_cuda_net_free(struct aicp_tb_cuda_net *net);

/* Trainable parameters (as aicp_tb_model_params) and forward
 * multiply-adds per image (as aicp_tb_model_fwd_macs). */
size_t aicp_tb_cuda_net_params(const struct aicp_tb_cuda_net *net);
double aicp_tb_cuda_net_fwd_macs(const struct aicp_tb_cuda_net *net);
/* Device memory the net holds, in bytes. */
size_t aicp_tb_cuda_net_device_bytes(const struct aicp_tb_cuda_net *net);

/* Copies a host batch (x [batch][res][res][3] fp32, labels) into input
 * slot slot, converting to the activation type. Synchronous. */
int aicp_tb_cuda_net_upload(struct aicp_tb_cuda_net *net, int slot, const float *x,
                            const int *labels, struct aicp_tb_err *err);

/* Queues forward, loss and backward on slot's batch, with the loss
 * gradient multiplied by loss_scale. Afterwards the fp32 gradients of all
 * parameters (times loss_scale) are in aicp_tb_cuda_net_grads. */
int aicp_tb_cuda_net_step(struct aicp_tb_cuda_net *net, int slot, float loss_scale,
                          struct aicp_tb_err *err);

/* The device array of fp32 gradients, *n floats (including alignment
 * padding, which stays zero): what the GPUs all-reduce. Borrowed. */
float *aicp_tb_cuda_net_grads(struct aicp_tb_cuda_net *net, size_t *n);

/* Queues the SGD update with the gradients multiplied by gscale (1 /
 * (loss scale x GPUs) for an averaged, unscaled gradient). With
 * check_overflow the gradients are first checked for inf/NaN and the
 * update is skipped on all of them if one is found. Then queues the copy
 * of the loss and the overflow flag back to the host. */
int aicp_tb_cuda_net_update(struct aicp_tb_cuda_net *net, const struct aicp_tb_sgd *sgd,
                            float gscale, int check_overflow, struct aicp_tb_err *err);

/* Waits for the stream and returns the step's mean loss and whether the
 * update was skipped for an overflow. */
int aicp_tb_cuda_net_finish(struct aicp_tb_cuda_net *net, double *loss, int *overflow,
                            struct aicp_tb_err *err);

/* A planned cuBLASLt matrix product D = alpha * op(A) op(B) + beta * C
 * (column-major, C and D share a layout), also used by --gemm-check. */
struct aicp_tb_cuda_gemm {
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
    size_t ws_needed;
};

/* m x n result, inner dimension k; at/bt/ct are CUDA_R_* types; lda, ldb,
 * ldc leading dimensions of the stored matrices. fp32 computes with
 * CUBLAS_COMPUTE_32F (no TF32), as do fp16/bf16 inputs. AICP_TB_EIO with
 * what named when no algorithm fits ws bytes of workspace. */
int aicp_tb_cuda_gemm_plan(struct aicp_tb_cuda_gemm *g, cublasLtHandle_t lt, int trans_a,
                           int trans_b, int m, int n, int k, cudaDataType_t at, int lda,
                           cudaDataType_t bt, int ldb, cudaDataType_t ct, int ldc, size_t ws,
                           const char *what, struct aicp_tb_err *err);
int aicp_tb_cuda_gemm_run(const struct aicp_tb_cuda_gemm *g, cublasLtHandle_t lt, float alpha,
                          const void *a, const void *b, float beta, void *d, void *ws,
                          size_t wsbytes, cudaStream_t stream, const char *what,
                          struct aicp_tb_err *err);
void aicp_tb_cuda_gemm_free(struct aicp_tb_cuda_gemm *g);

/* Messages for CUDA runtime, cuDNN-free helpers shared with tb_cuda.c:
 * 0 when e is cudaSuccess, else fills err ("what: reason") and returns
 * AICP_TB_ENOMEM for allocation failures, AICP_TB_EIO otherwise. */
int aicp_tb_cuda_check(cudaError_t e, const char *what, struct aicp_tb_err *err);

#endif
