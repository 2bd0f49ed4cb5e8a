/* Single-precision matrix multiply for aicp-trainbench's convolutions and
 * classifier: C (+)= A * B with arbitrary row/column strides on A and B, so
 * transposed operands cost nothing extra. Blocked and packed in the BLIS
 * manner, parallel over tiles of C; an AVX2/FMA version is chosen at run
 * time where the CPU has it. The result does not depend on the number of
 * threads. */
#ifndef AICP_TB_GEMM_H
#define AICP_TB_GEMM_H

#include <stddef.h>

#include "tb_pool.h"
#include "tb_util.h"

struct aicp_tb_gemm;

/* Per-worker packing buffers for pool's threads; pool may be NULL. The
 * context borrows pool, which must outlive it. */
int aicp_tb_gemm_new(struct aicp_tb_gemm **out, struct aicp_tb_pool *pool,
                     struct aicp_tb_err *err);
void aicp_tb_gemm_free(struct aicp_tb_gemm *g);
/* The pool the context was made with (borrowed; may be NULL). */
struct aicp_tb_pool *aicp_tb_gemm_pool(struct aicp_tb_gemm *g);

/* A matrix operand: element (i, j) is at p[i * rs + j * cs]. */
struct aicp_tb_mat {
    const float *p;
    ptrdiff_t rs;
    ptrdiff_t cs;
};

/* C[M x N] (row-major, leading dimension ldc) = A[M x K] * B[K x N], or
 * += when accumulate is nonzero. */
void aicp_tb_gemm_run(struct aicp_tb_gemm *g, size_t m, size_t n, size_t k, struct aicp_tb_mat a,
                      struct aicp_tb_mat b, float *c, size_t ldc, int accumulate);

#endif
