/* Blocked, packed SGEMM for aicp-trainbench (see tb_gemm.h). Each task owns
 * one MC x NC tile of C and walks K in KC slices, packing its slice of A
 * into MR-row panels and of B into NR-column panels so that the 6x16
 * micro-kernel streams both from cache. Tasks never share C, and K is always
 * summed in the same order, so any thread count gives identical bits. */
#include "tb_gemm.h"

#include <stdlib.h>
#include <string.h>

#define GEMM_MR 6
#define GEMM_NR 16
#define GEMM_MC 96
#define GEMM_KC 256
#define GEMM_NC 512
#define GEMM_MT 384 /* rows per task: B is packed once per GEMM_MT / GEMM_MC blocks */

typedef float gemm_v8 __attribute__((vector_size(32)));

struct aicp_tb_gemm {
    struct aicp_tb_pool *pool;
    int nworkers;
    float **apack;
    float **bpack;
    void (*macro)(const float *ap, const float *bp, size_t mc, size_t nc, size_t kc, float *c,
                  size_t ldc, int overwrite);
};

struct gemm_job {
    struct aicp_tb_gemm *g;
    size_t m, n, k;
    struct aicp_tb_mat a, b;
    float *c;
    size_t ldc;
    int accumulate;
    size_t mtiles;
};

/* A[i0.., k0..] as MR-row panels, k-major inside a panel; short panels are
 * zero-padded so the micro-kernel never branches. The loop order follows
 * whichever of A's strides is unit, so a transposed A packs as fast as a
 * plain one. */
static void pack_a(float *dst, struct aicp_tb_mat a, size_t i0, size_t mc, size_t k0, size_t kc)
{
    size_t ir, r, kk;

    for (ir = 0; ir < mc; ir += GEMM_MR) {
        size_t mr = mc - ir < GEMM_MR ? mc - ir : GEMM_MR;
        const float *base = a.p + (ptrdiff_t)(i0 + ir) * a.rs + (ptrdiff_t)k0 * a.cs;

        if (a.rs == 1) {
            for (kk = 0; kk < kc; kk++) {
                const float *src = base + (ptrdiff_t)kk * a.cs;
                float *d = dst + kk * GEMM_MR;

                for (r = 0; r < mr; r++)
                    d[r] = src[r];
                for (; r < GEMM_MR; r++)
                    d[r] = 0.0f;
            }
        } else {
            for (r = 0; r < mr; r++) {
                const float *src = base + (ptrdiff_t)r * a.rs;

                for (kk = 0; kk < kc; kk++)
                    dst[kk * GEMM_MR + r] = src[(ptrdiff_t)kk * a.cs];
            }
            for (; r < GEMM_MR; r++)
                for (kk = 0; kk < kc; kk++)
                    dst[kk * GEMM_MR + r] = 0.0f;
        }
        dst += kc * GEMM_MR;
    }
}

static void pack_b(float *dst, struct aicp_tb_mat b, size_t k0, size_t kc, size_t j0, size_t nc)
{
    size_t jr, kk, j;

    for (jr = 0; jr < nc; jr += GEMM_NR) {
        size_t nr = nc - jr < GEMM_NR ? nc - jr : GEMM_NR;
        const float *base = b.p + (ptrdiff_t)k0 * b.rs + (ptrdiff_t)(j0 + jr) * b.cs;

        if (b.rs == 1 && b.cs != 1) {
            for (j = 0; j < nr; j++) {
                const float *src = base + (ptrdiff_t)j * b.cs;

                for (kk = 0; kk < kc; kk++)
                    dst[kk * GEMM_NR + j] = src[kk];
            }
            for (; j < GEMM_NR; j++)
                for (kk = 0; kk < kc; kk++)
                    dst[kk * GEMM_NR + j] = 0.0f;
        } else {
            for (kk = 0; kk < kc; kk++) {
                const float *src = base + (ptrdiff_t)kk * b.rs;
                float *d = dst + kk * GEMM_NR;

                if (b.cs == 1 && nr == GEMM_NR) {
                    memcpy(d, src, GEMM_NR * sizeof(float));
                    continue;
                }
                for (j = 0; j < nr; j++)
                    d[j] = src[(ptrdiff_t)j * b.cs];
                for (; j < GEMM_NR; j++)
                    d[j] = 0.0f;
            }
        }
        dst += kc * GEMM_NR;
    }
}

/* The 6x16 micro-kernel and the loops around it, compiled twice below: for
 * the baseline ISA and for AVX2+FMA, chosen once per context. */
__attribute__((always_inline))
static inline void gemm_macro_body(const float *ap, const float *bp, size_t mc, size_t nc, size_t kc,
                       float *c, size_t ldc, int overwrite)
{
    size_t ir, jr, kk, r, j;

    for (jr = 0; jr < nc; jr += GEMM_NR) {
        size_t nr = nc - jr < GEMM_NR ? nc - jr : GEMM_NR;
        const float *bpan = bp + (jr / GEMM_NR) * kc * GEMM_NR;

        for (ir = 0; ir < mc; ir += GEMM_MR) {
            size_t mr = mc - ir < GEMM_MR ? mc - ir : GEMM_MR;
            const float *apan = ap + (ir / GEMM_MR) * kc * GEMM_MR;
            gemm_v8 c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0};
            gemm_v8 c30 = {0}, c31 = {0}, c40 = {0}, c41 = {0}, c50 = {0}, c51 = {0};
            float tile[GEMM_MR][GEMM_NR];

            /* Twelve named accumulators rather than an array: at -O2 GCC
             * would otherwise keep them in memory. */
            for (kk = 0; kk < kc; kk++) {
                const float *av = apan + kk * GEMM_MR;
                gemm_v8 b0, b1;

                memcpy(&b0, bpan + kk * GEMM_NR, sizeof(b0));
                memcpy(&b1, bpan + kk * GEMM_NR + 8, sizeof(b1));
                c00 += av[0] * b0;
                c01 += av[0] * b1;
                c10 += av[1] * b0;
                c11 += av[1] * b1;
                c20 += av[2] * b0;
                c21 += av[2] * b1;
                c30 += av[3] * b0;
                c31 += av[3] * b1;
                c40 += av[4] * b0;
                c41 += av[4] * b1;
                c50 += av[5] * b0;
                c51 += av[5] * b1;
            }
            memcpy(&tile[0][0], &c00, sizeof(c00));
            memcpy(&tile[0][8], &c01, sizeof(c01));
            memcpy(&tile[1][0], &c10, sizeof(c10));
            memcpy(&tile[1][8], &c11, sizeof(c11));
            memcpy(&tile[2][0], &c20, sizeof(c20));
            memcpy(&tile[2][8], &c21, sizeof(c21));
            memcpy(&tile[3][0], &c30, sizeof(c30));
            memcpy(&tile[3][8], &c31, sizeof(c31));
            memcpy(&tile[4][0], &c40, sizeof(c40));
            memcpy(&tile[4][8], &c41, sizeof(c41));
            memcpy(&tile[5][0], &c50, sizeof(c50));
            memcpy(&tile[5][8], &c51, sizeof(c51));
            for (r = 0; r < mr; r++) {
                float *crow = c + (ir + r) * ldc + jr;

                if (overwrite)
                    for (j = 0; j < nr; j++)
                        crow[j] = tile[r][j];
                else
                    for (j = 0; j < nr; j++)
                        crow[j] += tile[r][j];
            }
        }
    }
}

static void gemm_macro_base(const float *ap, const float *bp, size_t mc, size_t nc, size_t kc,
                            float *c, size_t ldc, int overwrite)
{
    gemm_macro_body(ap, bp, mc, nc, kc, c, ldc, overwrite);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define GEMM_HAVE_AVX2 1
__attribute__((target("avx2,fma"), optimize("fp-contract=fast")))
static void gemm_macro_avx2(const float *ap, const float *bp, size_t mc, size_t nc, size_t kc,
                            float *c, size_t ldc, int overwrite)
{
    gemm_macro_body(ap, bp, mc, nc, kc, c, ldc, overwrite);
}
#endif

static void gemm_task(void *arg, size_t task, int worker)
{
    struct gemm_job *job = arg;
    size_t it = task % job->mtiles, jt = task / job->mtiles;
    size_t i0 = it * GEMM_MT, j0 = jt * GEMM_NC;
    size_t mt = job->m - i0 < GEMM_MT ? job->m - i0 : GEMM_MT;
    size_t nc = job->n - j0 < GEMM_NC ? job->n - j0 : GEMM_NC;
    float *ap = job->g->apack[worker], *bp = job->g->bpack[worker];
    size_t k0, r, ib;

    if (job->k == 0) {
        if (!job->accumulate)
            for (r = 0; r < mt; r++)
                memset(job->c + (i0 + r) * job->ldc + j0, 0, nc * sizeof(float));
        return;
    }
    for (k0 = 0; k0 < job->k; k0 += GEMM_KC) {
        size_t kc = job->k - k0 < GEMM_KC ? job->k - k0 : GEMM_KC;

        pack_b(bp, job->b, k0, kc, j0, nc);
        for (ib = 0; ib < mt; ib += GEMM_MC) {
            size_t mc = mt - ib < GEMM_MC ? mt - ib : GEMM_MC;

            pack_a(ap, job->a, i0 + ib, mc, k0, kc);
            job->g->macro(ap, bp, mc, nc, kc, job->c + (i0 + ib) * job->ldc + j0, job->ldc,
                          k0 == 0 && !job->accumulate);
        }
    }
}

int aicp_tb_gemm_new(struct aicp_tb_gemm **out, struct aicp_tb_pool *pool,
                     struct aicp_tb_err *err)
{
    struct aicp_tb_gemm *g;
    int i, rc = 0;

    *out = NULL;
    g = calloc(1, sizeof(*g));
    if (g == NULL)
        return aicp_tb_err_set(err, AICP_TB_ENOMEM, "out of memory for GEMM buffers");
    g->pool = pool;
    g->nworkers = aicp_tb_pool_threads(pool);
    g->macro = gemm_macro_base;
#ifdef GEMM_HAVE_AVX2
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        g->macro = gemm_macro_avx2;
#endif
    g->apack = calloc((size_t)g->nworkers, sizeof(float *));
    g->bpack = calloc((size_t)g->nworkers, sizeof(float *));
    if (g->apack == NULL || g->bpack == NULL) {
        rc = aicp_tb_err_set(err, AICP_TB_ENOMEM, "out of memory for GEMM buffers");
        goto out;
    }
    for (i = 0; i < g->nworkers; i++) {
        g->apack[i] = aicp_tb_falloc((size_t)GEMM_MC * GEMM_KC);
        g->bpack[i] = aicp_tb_falloc((size_t)GEMM_KC * GEMM_NC);
        if (g->apack[i] == NULL || g->bpack[i] == NULL) {
            rc = aicp_tb_err_set(err, AICP_TB_ENOMEM, "out of memory for GEMM buffers");
            goto out;
        }
    }
out:
    if (rc != 0) {
        aicp_tb_gemm_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

void aicp_tb_gemm_free(struct aicp_tb_gemm *g)
{
    int i;

    if (g == NULL)
        return;
    for (i = 0; i < g->nworkers; i++) {
        if (g->apack != NULL)
            free(g->apack[i]);
        if (g->bpack != NULL)
            free(g->bpack[i]);
    }
    free(g->apack);
    free(g->bpack);
    free(g);
}

struct aicp_tb_pool *aicp_tb_gemm_pool(struct aicp_tb_gemm *g)
{
    return g->pool;
}

void aicp_tb_gemm_run(struct aicp_tb_gemm *g, size_t m, size_t n, size_t k, struct aicp_tb_mat a,
                      struct aicp_tb_mat b, float *c, size_t ldc, int accumulate)
{
    struct gemm_job job = {
        .g = g, .m = m, .n = n, .k = k, .a = a, .b = b, .c = c, .ldc = ldc,
        .accumulate = accumulate,
    };
    size_t ntiles;

    if (m == 0 || n == 0)
        return;
    job.mtiles = (m + GEMM_MT - 1) / GEMM_MT;
    ntiles = job.mtiles * ((n + GEMM_NC - 1) / GEMM_NC);
    aicp_tb_pool_run(g->pool, ntiles, gemm_task, &job);
}
