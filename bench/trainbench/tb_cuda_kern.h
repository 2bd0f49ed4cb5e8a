/* The element-wise and reduction kernels of aicp-trainbench's CUDA path
 * (tb_cuda_kern.cu), behind plain C launchers so that the host code stays
 * C compiled by the C compiler. Tensors are NHWC in the run's activation
 * type (enum aicp_tb_cuda_dtype); master weights, gradients, momentum and
 * logits are fp32. Every launcher queues work on stream and returns the
 * launch's cudaError_t as an int (0 = cudaSuccess); execution errors
 * surface at the next synchronisation, as usual with CUDA. */
#ifndef AICP_TB_CUDA_KERN_H
#define AICP_TB_CUDA_KERN_H

#include <stddef.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

enum aicp_tb_cuda_dtype {
    AICP_TB_CUDA_F32 = 0,
    AICP_TB_CUDA_F16 = 1,
    AICP_TB_CUDA_BF16 = 2,
};

/* dst[i] = (dtype)src[i]. */
int aicp_tb_cuda_k_from_f32(int dtype, void *dst, const float *src, size_t n, cudaStream_t s);
/* dst[i] = (float)src[i]. */
int aicp_tb_cuda_k_to_f32(int dtype, float *dst, const void *src, size_t n, cudaStream_t s);

/* y = max(y, 0) in place, and its backward dy *= (y > 0) in place. */
int aicp_tb_cuda_k_relu(int dtype, void *y, size_t n, cudaStream_t s);
int aicp_tb_cuda_k_relu_bwd(int dtype, void *dy, const void *y, size_t n, cudaStream_t s);

/* y = max(a + b, 0); backward writes (or with acc_* adds) dy*(y > 0) to da
 * and db. */
int aicp_tb_cuda_k_add_relu(int dtype, const void *a, const void *b, void *y, size_t n,
                            cudaStream_t s);
int aicp_tb_cuda_k_add_relu_bwd(int dtype, const void *y, const void *dy, void *da, int acc_a,
                                void *db, int acc_b, size_t n, cudaStream_t s);

/* Global average pool [n][hw][c] -> [n][c] and its backward. */
int aicp_tb_cuda_k_gap(int dtype, const void *x, void *y, int n, int hw, int c, cudaStream_t s);
int aicp_tb_cuda_k_gap_bwd(int dtype, const void *dy, void *dx, int acc, int n, int hw, int c,
                           cudaStream_t s);

/* Softmax cross-entropy of logits + bias (fp32, [n][classes]) against
 * labels: loss_sum[0] = mean loss over the n samples; dlogits (dtype) =
 * scale * d(mean loss)/d(logits). Labels outside [0, classes) count as
 * class 0 rather than reading out of bounds (the host checks them). */
int aicp_tb_cuda_k_softmax_xent(int dtype, const float *logits, const float *bias,
                                const int *labels, int n, int classes, float scale, void *dlogits,
                                float *loss_rows, float *loss_mean, cudaStream_t s);

/* db[j] = sum over rows of dy[i][j] (dy is dtype, db fp32). */
int aicp_tb_cuda_k_bias_grad(int dtype, const void *dy, int n, int classes, float *db,
                             cudaStream_t s);

/* flag[0] = 1 if any g[i] is not finite (flag must be zeroed first). */
int aicp_tb_cuda_k_check_finite(const float *g, size_t n, int *flag, cudaStream_t s);

/* dst[i] += src[i]: the reduction step of the peer-copy all-reduce. */
int aicp_tb_cuda_k_add_f32(float *dst, const float *src, size_t n, cudaStream_t s);

/* SGD with momentum on fp32 master weights, skipped entirely when skip
 * (may be NULL) holds a nonzero flag (a loss-scale overflow):
 *   g = gscale * grad[i] (+ wd * w[i] for i < ndecay)
 *   v = momentum * v + g;  w -= lr * v
 * and for i < ndecay the dtype copy wlp[i] = w[i] (wlp NULL: no copy). */
int aicp_tb_cuda_k_sgd(int dtype, float *w, const float *grad, float *v, void *wlp, size_t n,
                       size_t ndecay, float lr, float momentum, float wd, float gscale,
                       const int *skip, cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
