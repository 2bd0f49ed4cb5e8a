/* Kernels of aicp-trainbench's CUDA path (see tb_cuda_kern.h): the
 * element-wise layers cuDNN does not fuse for us (ReLU, the residual
 * add+ReLU), global average pooling, the softmax cross-entropy with the
 * classifier bias folded in, casts between fp32 and the activation type,
 * the overflow check of dynamic loss scaling and the SGD update on fp32
 * master weights. Arithmetic is fp32 whatever the storage type, and every
 * reduction runs in a fixed order so that a step is deterministic. */
#include "tb_cuda_kern.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#define TB_THREADS 256

namespace
{

__device__ __forceinline__ float tof(float x)
{
    return x;
}
__device__ __forceinline__ float tof(__half x)
{
    return __half2float(x);
}
__device__ __forceinline__ float tof(__nv_bfloat16 x)
{
    return __bfloat162float(x);
}

template <typename T> __device__ __forceinline__ T fromf(float x);
template <> __device__ __forceinline__ float fromf<float>(float x)
{
    return x;
}
template <> __device__ __forceinline__ __half fromf<__half>(float x)
{
    return __float2half_rn(x);
}
template <> __device__ __forceinline__ __nv_bfloat16 fromf<__nv_bfloat16>(float x)
{
    return __float2bfloat16_rn(x);
}

/* Grid size for a grid-stride loop over n elements: enough blocks to fill
 * any current GPU, never more than the work. */
unsigned blocks_for(size_t n)
{
    size_t b = (n + TB_THREADS - 1) / TB_THREADS;

    if (b < 1)
        b = 1;
    return b > 65536 ? 65536u : (unsigned)b;
}

int launched(void)
{
    return (int)cudaGetLastError();
}

#define TB_FOR(i, n)                                                                               \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                        \
         i += (size_t)blockDim.x * gridDim.x)

/* Runs the statement list with T bound to the storage type of dtype. */
#define TB_DISPATCH(dtype, ...)                                                                    \
    do {                                                                                           \
        switch (dtype) {                                                                           \
        case AICP_TB_CUDA_F16: {                                                                   \
            typedef __half T;                                                                      \
            __VA_ARGS__;                                                                           \
            break;                                                                                 \
        }                                                                                          \
        case AICP_TB_CUDA_BF16: {                                                                  \
            typedef __nv_bfloat16 T;                                                               \
            __VA_ARGS__;                                                                           \
            break;                                                                                 \
        }                                                                                          \
        default: {                                                                                 \
            typedef float T;                                                                       \
            __VA_ARGS__;                                                                           \
            break;                                                                                 \
        }                                                                                          \
        }                                                                                          \
    } while (0)

template <typename T> __global__ void k_from_f32(T *dst, const float *src, size_t n)
{
    TB_FOR(i, n) dst[i] = fromf<T>(src[i]);
}

template <typename T> __global__ void k_to_f32(float *dst, const T *src, size_t n)
{
    TB_FOR(i, n) dst[i] = tof(src[i]);
}

template <typename T> __global__ void k_relu(T *y, size_t n)
{
    TB_FOR(i, n)
    {
        float v = tof(y[i]);

        y[i] = fromf<T>(v > 0.0f ? v : 0.0f);
    }
}

template <typename T> __global__ void k_relu_bwd(T *dy, const T *y, size_t n)
{
    TB_FOR(i, n)
    {
        if (!(tof(y[i]) > 0.0f))
            dy[i] = fromf<T>(0.0f);
    }
}

template <typename T> __global__ void k_add_relu(const T *a, const T *b, T *y, size_t n)
{
    TB_FOR(i, n)
    {
        float v = tof(a[i]) + tof(b[i]);

        y[i] = fromf<T>(v > 0.0f ? v : 0.0f);
    }
}

template <typename T>
__global__ void k_add_relu_bwd(const T *y, const T *dy, T *da, int acc_a, T *db, int acc_b,
                               size_t n)
{
    TB_FOR(i, n)
    {
        float g = tof(y[i]) > 0.0f ? tof(dy[i]) : 0.0f;

        da[i] = fromf<T>(acc_a ? tof(da[i]) + g : g);
        db[i] = fromf<T>(acc_b ? tof(db[i]) + g : g);
    }
}

template <typename T> __global__ void k_gap(const T *x, T *y, int n, int hw, int c)
{
    TB_FOR(i, (size_t)n * c)
    {
        size_t img = i / (size_t)c, ch = i % (size_t)c;
        const T *p = x + img * (size_t)hw * c + ch;
        float s = 0.0f;

        for (int k = 0; k < hw; k++)
            s += tof(p[(size_t)k * c]);
        y[i] = fromf<T>(s / (float)hw);
    }
}

template <typename T> __global__ void k_gap_bwd(const T *dy, T *dx, int acc, int n, int hw, int c)
{
    TB_FOR(i, (size_t)n * hw * c)
    {
        size_t img = i / ((size_t)hw * c), ch = i % (size_t)c;
        float g = tof(dy[img * c + ch]) / (float)hw;

        dx[i] = fromf<T>(acc ? tof(dx[i]) + g : g);
    }
}

/* Block-wide reduction of v (op: 0 sum, 1 max) over TB_THREADS threads; the
 * result is returned to every thread. */
__device__ float block_reduce(float v, int op, float *sh)
{
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = TB_THREADS / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s)
            sh[threadIdx.x] = op ? fmaxf(sh[threadIdx.x], sh[threadIdx.x + s])
                                 : sh[threadIdx.x] + sh[threadIdx.x + s];
        __syncthreads();
    }
    v = sh[0];
    __syncthreads();
    return v;
}

/* One block per sample. */
template <typename T>
__global__ void k_softmax_xent(const float *logits, const float *bias, const int *labels, int n,
                               int classes, float scale, T *dlogits, float *loss_rows)
{
    __shared__ float sh[TB_THREADS];
    const float *z = logits + (size_t)blockIdx.x * classes;
    T *dz = dlogits + (size_t)blockIdx.x * classes;
    int label = labels[blockIdx.x];
    float mx = -INFINITY, sum = 0.0f;

    if (label < 0 || label >= classes)
        label = 0;
    for (int j = threadIdx.x; j < classes; j += TB_THREADS)
        mx = fmaxf(mx, z[j] + bias[j]);
    mx = block_reduce(mx, 1, sh);
    for (int j = threadIdx.x; j < classes; j += TB_THREADS)
        sum += expf(z[j] + bias[j] - mx);
    sum = block_reduce(sum, 0, sh);
    for (int j = threadIdx.x; j < classes; j += TB_THREADS) {
        float p = expf(z[j] + bias[j] - mx) / sum;

        dz[j] = fromf<T>(scale * (p - (j == label ? 1.0f : 0.0f)) / (float)n);
    }
    if (threadIdx.x == 0)
        loss_rows[blockIdx.x] = logf(sum) + mx - (z[label] + bias[label]);
}

__global__ void k_mean(const float *v, int n, float *out)
{
    __shared__ float sh[TB_THREADS];
    float s = 0.0f;

    for (int i = threadIdx.x; i < n; i += TB_THREADS)
        s += v[i];
    s = block_reduce(s, 0, sh);
    if (threadIdx.x == 0)
        out[0] = s / (float)n;
}

template <typename T> __global__ void k_bias_grad(const T *dy, int n, int classes, float *db)
{
    TB_FOR(j, (size_t)classes)
    {
        float s = 0.0f;

        for (int i = 0; i < n; i++)
            s += tof(dy[(size_t)i * classes + j]);
        db[j] = s;
    }
}

__global__ void k_check_finite(const float *g, size_t n, int *flag)
{
    TB_FOR(i, n)
    {
        if (!isfinite(g[i]))
            *flag = 1;
    }
}

__global__ void k_add_f32(float *dst, const float *src, size_t n)
{
    TB_FOR(i, n) dst[i] += src[i];
}

template <typename T>
__global__ void k_sgd(float *w, const float *grad, float *v, T *wlp, size_t n, size_t ndecay,
                      float lr, float momentum, float wd, float gscale, const int *skip)
{
    if (skip != NULL && *skip != 0)
        return;
    TB_FOR(i, n)
    {
        float wi = w[i], g = gscale * grad[i], vi;

        if (i < ndecay)
            g += wd * wi;
        vi = momentum * v[i] + g;
        v[i] = vi;
        wi -= lr * vi;
        w[i] = wi;
        if (wlp != NULL && i < ndecay)
            wlp[i] = fromf<T>(wi);
    }
}

} // namespace

extern "C" int aicp_tb_cuda_k_from_f32(int dtype, void *dst, const float *src, size_t n,
                                       cudaStream_t s)
{
    TB_DISPATCH(dtype, k_from_f32<T><<<blocks_for(n), TB_THREADS, 0, s>>>((T *)dst, src, n));
    return launched();
}

extern "C" int aicp_tb_cuda_k_to_f32(int dtype, float *dst, const void *src, size_t n,
                                     cudaStream_t s)
{
    TB_DISPATCH(dtype, k_to_f32<T><<<blocks_for(n), TB_THREADS, 0, s>>>(dst, (const T *)src, n));
    return launched();
}

extern "C" int aicp_tb_cuda_k_relu(int dtype, void *y, size_t n, cudaStream_t s)
{
    TB_DISPATCH(dtype, k_relu<T><<<blocks_for(n), TB_THREADS, 0, s>>>((T *)y, n));
    return launched();
}

extern "C" int aicp_tb_cuda_k_relu_bwd(int dtype, void *dy, const void *y, size_t n, cudaStream_t s)
{
    TB_DISPATCH(dtype,
                k_relu_bwd<T><<<blocks_for(n), TB_THREADS, 0, s>>>((T *)dy, (const T *)y, n));
    return launched();
}

extern "C" int aicp_tb_cuda_k_add_relu(int dtype, const void *a, const void *b, void *y, size_t n,
                                       cudaStream_t s)
{
    TB_DISPATCH(dtype, k_add_relu<T>
                <<<blocks_for(n), TB_THREADS, 0, s>>>((const T *)a, (const T *)b, (T *)y, n));
    return launched();
}

extern "C" int aicp_tb_cuda_k_add_relu_bwd(int dtype, const void *y, const void *dy, void *da,
                                           int acc_a, void *db, int acc_b, size_t n, cudaStream_t s)
{
    TB_DISPATCH(dtype, k_add_relu_bwd<T><<<blocks_for(n), TB_THREADS, 0, s>>>(
                           (const T *)y, (const T *)dy, (T *)da, acc_a, (T *)db, acc_b, n));
    return launched();
}

extern "C" int aicp_tb_cuda_k_gap(int dtype, const void *x, void *y, int n, int hw, int c,
                                  cudaStream_t s)
{
    TB_DISPATCH(dtype, k_gap<T>
                <<<blocks_for((size_t)n * c), TB_THREADS, 0, s>>>((const T *)x, (T *)y, n, hw, c));
    return launched();
}

extern "C" int aicp_tb_cuda_k_gap_bwd(int dtype, const void *dy, void *dx, int acc, int n, int hw,
                                      int c, cudaStream_t s)
{
    TB_DISPATCH(dtype, k_gap_bwd<T><<<blocks_for((size_t)n * hw * c), TB_THREADS, 0, s>>>(
                           (const T *)dy, (T *)dx, acc, n, hw, c));
    return launched();
}

extern "C" int aicp_tb_cuda_k_softmax_xent(int dtype, const float *logits, const float *bias,
                                           const int *labels, int n, int classes, float scale,
                                           void *dlogits, float *loss_rows, float *loss_mean,
                                           cudaStream_t s)
{
    int rc;

    TB_DISPATCH(dtype, k_softmax_xent<T><<<(unsigned)n, TB_THREADS, 0, s>>>(
                           logits, bias, labels, n, classes, scale, (T *)dlogits, loss_rows));
    if ((rc = launched()) != 0)
        return rc;
    k_mean<<<1, TB_THREADS, 0, s>>>(loss_rows, n, loss_mean);
    return launched();
}

extern "C" int aicp_tb_cuda_k_bias_grad(int dtype, const void *dy, int n, int classes, float *db,
                                        cudaStream_t s)
{
    TB_DISPATCH(dtype, k_bias_grad<T>
                <<<blocks_for((size_t)classes), TB_THREADS, 0, s>>>((const T *)dy, n, classes, db));
    return launched();
}

extern "C" int aicp_tb_cuda_k_check_finite(const float *g, size_t n, int *flag, cudaStream_t s)
{
    k_check_finite<<<blocks_for(n), TB_THREADS, 0, s>>>(g, n, flag);
    return launched();
}

extern "C" int aicp_tb_cuda_k_add_f32(float *dst, const float *src, size_t n, cudaStream_t s)
{
    k_add_f32<<<blocks_for(n), TB_THREADS, 0, s>>>(dst, src, n);
    return launched();
}

extern "C" int aicp_tb_cuda_k_sgd(int dtype, float *w, const float *grad, float *v, void *wlp,
                                  size_t n, size_t ndecay, float lr, float momentum, float wd,
                                  float gscale, const int *skip, cudaStream_t s)
{
    TB_DISPATCH(dtype, k_sgd<T><<<blocks_for(n), TB_THREADS, 0, s>>>(
                           w, grad, v, (T *)wlp, n, ndecay, lr, momentum, wd, gscale, skip));
    return launched();
}
