/* The CUDA path of aicp-trainbench (see tb_cuda.h): finds the GPUs, runs a
 * thread per GPU each training its own replica (tb_cuda_net.c) on its own
 * batches, averages gradients across GPUs every step, times the steps,
 * and reports; and the --gemm-check mode.
 *
 * The threads meet at barriers around each phase of a step (batch ready,
 * gradients ready, all-reduced, updated), so that a step's time is
 * measured from the moment every GPU may start to the moment every GPU has
 * updated, and so that a failure on one GPU stops all of them at the next
 * meeting instead of leaving the others waiting inside a collective. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include "tb_cuda.h"

#include <cuda_runtime_api.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#ifdef AICP_TB_NCCL
#include <nccl.h>
#endif

#include "tb_cuda_kern.h"
#include "tb_cuda_net.h"
#include "tb_data.h"
#include "tb_model.h"

/* Oldest GPU the kernels are built for (the lead's -gencode list starts at
 * sm_75; nvcc 13 dropped sm_70). */
#define MIN_CC 75
#define MAX_GPUS 64
#define MAX_SLOTS 4
#define SCALE_INIT 65536.0f
#define SCALE_MAX 16777216.0f
#define SCALE_GROWTH_STEPS 2000

struct worker {
    struct ctx *ctx;
    int index;
    pthread_t tid;
    cudaStream_t stream;
    struct aicp_tb_cuda_net *net;
    float *stage;  /* peer all-reduce staging, one slice */
    float *host_x; /* --data batch */
    int *host_labels;
    double loss;
    int overflow;
    int rc;
    struct aicp_tb_err err;
};

struct ctx {
    const struct aicp_tb_opts *opts;
    int ngpus, dtype, nslots, use_nccl;
    struct worker *w;
    pthread_barrier_t bar;
    pthread_mutex_t mu;
    pthread_cond_t gate; /* workers start when go is set */
    int go;
    int failed;
    struct aicp_tb_records *rec;
#ifdef AICP_TB_NCCL
    ncclComm_t comms[MAX_GPUS];
#endif
    FILE *progress;
    double *step_s, timed;
    struct aicp_tb_cuda_result *res;
};

static int dtype_of(const char *precision)
{
    if (strcmp(precision, "fp16") == 0)
        return AICP_TB_CUDA_F16;
    if (strcmp(precision, "bf16") == 0)
        return AICP_TB_CUDA_BF16;
    return AICP_TB_CUDA_F32;
}

double aicp_tb_cuda_peak_tflops(int cc_major, int cc_minor, int sms, int clock_khz,
                                const char *precision)
{
    int cc = cc_major * 10 + cc_minor, tensor = strcmp(precision, "fp32") != 0, fma = 0;

    if (tensor) {
        /* Dense fp16/bf16 multiply-adds per SM per clock with fp32
         * accumulation, data-centre parts (GeForce parts of 8.6/8.9/12.x
         * accumulate fp32 at half this rate). Volta/Turing have no bf16. */
        if (cc >= 70 && cc < 80)
            fma = strcmp(precision, "bf16") == 0 ? 0 : 512;
        else if (cc == 80)
            fma = 1024;
        else if (cc > 80 && cc < 90)
            fma = 512;
        else if (cc == 90)
            fma = 2048;
        else if (cc >= 100 && cc < 110)
            fma = 4096;
        else if (cc >= 120 && cc < 130)
            fma = 512;
    } else {
        if (cc >= 70 && cc <= 80)
            fma = 64;
        else if ((cc > 80 && cc < 110) || (cc >= 120 && cc < 130))
            fma = 128;
    }
    if (fma == 0 || sms <= 0 || clock_khz <= 0)
        return 0.0;
    return (double)sms * clock_khz * 1e3 * fma * 2.0 / 1e12;
}

/* ---- devices ---- */

struct gpu_info {
    char name[256];
    int cc, sms, clock_khz;
};

static int gpu_query(int dev, struct gpu_info *gi, struct aicp_tb_err *err)
{
    struct cudaDeviceProp prop;
    int rc;

    memset(&prop, 0, sizeof(prop));
    if ((rc = aicp_tb_cuda_check(cudaGetDeviceProperties(&prop, dev), "cudaGetDeviceProperties",
                                 err)) != 0)
        return rc;
    snprintf(gi->name, sizeof(gi->name), "%s", prop.name);
    gi->cc = prop.major * 10 + prop.minor;
    gi->sms = prop.multiProcessorCount;
    /* cudaDeviceProp lost clockRate in CUDA 13; the attribute remains. */
    if (cudaDeviceGetAttribute(&gi->clock_khz, cudaDevAttrClockRate, dev) != cudaSuccess) {
        (void)cudaGetLastError();
        gi->clock_khz = 0;
    }
    return 0;
}

/* Checks that want GPUs (0: all) can run this precision; *n gets the count. */
static int find_gpus(const char *what, int want, const char *precision, int *n, struct gpu_info *gi,
                     struct aicp_tb_err *err)
{
    const char *vis = getenv("CUDA_VISIBLE_DEVICES");
    int count = 0, drv = 0, rt = 0, i, rc;
    cudaError_t e = cudaGetDeviceCount(&count);

    if (e != cudaSuccess) {
        char why[160];

        (void)cudaGetLastError();
        (void)cudaDriverGetVersion(&drv);
        (void)cudaRuntimeGetVersion(&rt);
        if (drv == 0)
            snprintf(why, sizeof(why), "no NVIDIA driver is loaded (libcuda.so.1 not found)");
        else
            snprintf(why, sizeof(why), "the driver supports CUDA %d.%d, this build needs %d.%d",
                     drv / 1000, drv % 1000 / 10, rt / 1000, rt % 1000 / 10);
        return aicp_tb_err_set(err, AICP_TB_EUNSUPPORTED,
                               "%s: no usable CUDA GPU: cudaGetDeviceCount: %s (%s); "
                               "%s%s%s",
                               what, cudaGetErrorString(e), cudaGetErrorName(e), why,
                               vis != NULL ? "; CUDA_VISIBLE_DEVICES=" : "",
                               vis != NULL ? vis : "");
    }
    if (count == 0)
        return aicp_tb_err_set(err, AICP_TB_EUNSUPPORTED, "%s: no CUDA GPU is visible%s%s%s", what,
                               vis != NULL ? " (CUDA_VISIBLE_DEVICES=" : "", vis != NULL ? vis : "",
                               vis != NULL ? ")" : "");
    if (want > count)
        return aicp_tb_err_set(
            err, AICP_TB_EUNSUPPORTED, "--gpus %d: only %d CUDA GPU%s visible%s%s%s", want, count,
            count == 1 ? " is" : "s are", vis != NULL ? " (CUDA_VISIBLE_DEVICES=" : "",
            vis != NULL ? vis : "", vis != NULL ? ")" : "");
    *n = want > 0 ? want : count;
    if (*n > MAX_GPUS)
        *n = MAX_GPUS;
    for (i = 0; i < *n; i++) {
        if ((rc = gpu_query(i, &gi[i], err)) != 0)
            return rc;
        if (gi[i].cc < MIN_CC)
            return aicp_tb_err_set(err, AICP_TB_EUNSUPPORTED,
                                   "GPU %d (%s) has compute capability %d.%d; this build "
                                   "needs %d.%d or later",
                                   i, gi[i].name, gi[i].cc / 10, gi[i].cc % 10, MIN_CC / 10,
                                   MIN_CC % 10);
        if (strcmp(precision, "bf16") == 0 && gi[i].cc < 80)
            return aicp_tb_err_set(err, AICP_TB_EUNSUPPORTED,
                                   "--precision bf16: GPU %d (%s, compute capability %d.%d) has "
                                   "no bf16 arithmetic (8.0 or later); use --precision fp16",
                                   i, gi[i].name, gi[i].cc / 10, gi[i].cc % 10);
    }
    return 0;
}

/* ---- the worker threads ---- */

static void fail(struct worker *w, int rc)
{
    w->rc = rc;
    pthread_mutex_lock(&w->ctx->mu);
    w->ctx->failed = 1;
    pthread_mutex_unlock(&w->ctx->mu);
}

/* All workers meet; returns nonzero, the same on every worker, when one
 * has failed. Two barriers: the flag is read between them, and set only
 * outside them, so every worker reads the same value. */
static int meet(struct ctx *c)
{
    int failed;

    pthread_barrier_wait(&c->bar);
    pthread_mutex_lock(&c->mu);
    failed = c->failed;
    pthread_mutex_unlock(&c->mu);
    pthread_barrier_wait(&c->bar);
    return failed;
}

static int worker_setup(struct worker *w)
{
    struct ctx *c = w->ctx;
    const struct aicp_tb_opts *o = c->opts;
    size_t in_count = (size_t)o->cfg.batch * o->cfg.resolution * o->cfg.resolution * 3;
    int i, j, rc, can;

    if ((rc = aicp_tb_cuda_check(cudaSetDevice(w->index), "cudaSetDevice", &w->err)) != 0)
        return rc;
    /* A blocking stream: set-up copies and memsets run on the legacy
     * default stream, and this orders the step's work after them. */
    rc = aicp_tb_cuda_check(cudaStreamCreate(&w->stream), "cudaStreamCreate", &w->err);
    if (rc != 0)
        return rc;
    if ((rc = aicp_tb_cuda_net_new(&w->net, &o->cfg, c->dtype, c->nslots, w->stream, &w->err)) != 0)
        return rc;
    /* The graph is built twice (tb_model.c, tb_cuda_net.c); they must agree. */
    if (aicp_tb_cuda_net_params(w->net) != c->res->base.params ||
        aicp_tb_cuda_net_fwd_macs(w->net) != c->res->base.fwd_macs_per_image)
        return aicp_tb_err_set(&w->err, AICP_TB_EIO,
                               "internal error: the CUDA network has %zu parameters and %.6g "
                               "multiply-adds per image, the CPU model %zu and %.6g",
                               aicp_tb_cuda_net_params(w->net), aicp_tb_cuda_net_fwd_macs(w->net),
                               c->res->base.params, c->res->base.fwd_macs_per_image);
    w->host_x = malloc(in_count * sizeof(float));
    w->host_labels = malloc((size_t)o->cfg.batch * sizeof(int));
    if (w->host_x == NULL || w->host_labels == NULL)
        return aicp_tb_err_set(&w->err, AICP_TB_ENOMEM, "out of memory for an input batch");
    if (c->rec == NULL) {
        /* Synthetic batches are made once and cycled; each GPU gets its
         * own images (step numbers slot * gpus + index). */
        for (i = 0; i < c->nslots; i++) {
            aicp_tb_data_synthetic(w->host_x, w->host_labels, o->cfg.batch, o->cfg.resolution,
                                   o->cfg.classes, o->cfg.seed, (long)i * c->ngpus + w->index);
            if ((rc = aicp_tb_cuda_net_upload(w->net, i, w->host_x, w->host_labels, &w->err)) != 0)
                return rc;
        }
    }
    if (c->ngpus > 1 && !c->use_nccl) {
        size_t n, chunk;

        (void)aicp_tb_cuda_net_grads(w->net, &n);
        chunk = (n + (size_t)c->ngpus - 1) / (size_t)c->ngpus;
        if ((rc = aicp_tb_cuda_check(cudaMalloc((void **)&w->stage, chunk * sizeof(float) + 256),
                                     "allocating the all-reduce staging buffer", &w->err)) != 0)
            return rc;
        for (j = 0; j < c->ngpus; j++) {
            if (j == w->index || cudaDeviceCanAccessPeer(&can, w->index, j) != cudaSuccess || !can)
                continue;
            if (cudaDeviceEnablePeerAccess(j, 0) != cudaSuccess)
                (void)cudaGetLastError(); /* already enabled, or copies go via the host */
        }
    }
    return 0;
}

/* Sums slice [lo, hi) of everyone's gradients into this worker's copy,
 * then (after all have) copies the sums into everyone else's. */
static int peer_allreduce(struct worker *w, int phase)
{
    struct ctx *c = w->ctx;
    size_t n, chunk, lo, hi;
    float *mine = aicp_tb_cuda_net_grads(w->net, &n);
    int j, rc = 0;

    chunk = (n + (size_t)c->ngpus - 1) / (size_t)c->ngpus;
    lo = chunk * (size_t)w->index;
    hi = lo + chunk > n ? n : lo + chunk;
    if (lo >= hi)
        return 0;
    for (j = 0; j < c->ngpus && rc == 0; j++) {
        float *theirs;
        size_t nn;

        if (j == w->index)
            continue;
        theirs = aicp_tb_cuda_net_grads(c->w[j].net, &nn);
        if (phase == 0) {
            rc = aicp_tb_cuda_check(cudaMemcpyPeerAsync(w->stage, w->index, theirs + lo, j,
                                                        (hi - lo) * sizeof(float), w->stream),
                                    "all-reduce: cudaMemcpyPeerAsync", &w->err);
            if (rc == 0)
                rc = aicp_tb_cuda_check(
                    (cudaError_t)aicp_tb_cuda_k_add_f32(mine + lo, w->stage, hi - lo, w->stream),
                    "all-reduce: adding gradients", &w->err);
        } else {
            rc = aicp_tb_cuda_check(cudaMemcpyPeerAsync(theirs + lo, j, mine + lo, w->index,
                                                        (hi - lo) * sizeof(float), w->stream),
                                    "all-reduce: cudaMemcpyPeerAsync", &w->err);
        }
    }
    if (rc == 0)
        rc = aicp_tb_cuda_check(cudaStreamSynchronize(w->stream), "all-reduce", &w->err);
    return rc;
}

/* One step's work up to the meeting before the exchange of gradients. */
static int step_compute(struct worker *w, int slot, float scale)
{
    int rc = aicp_tb_cuda_net_step(w->net, slot, scale, &w->err);

    if (rc == 0)
        rc = aicp_tb_cuda_check(cudaStreamSynchronize(w->stream), "running a training step",
                                &w->err);
    return rc;
}

static int step_exchange(struct worker *w)
{
    struct ctx *c = w->ctx;
    int rc = 0;

    if (c->ngpus == 1)
        return 0;
#ifdef AICP_TB_NCCL
    if (c->use_nccl) {
        size_t n;
        float *g = aicp_tb_cuda_net_grads(w->net, &n);
        ncclResult_t r = ncclAllReduce(g, g, n, ncclFloat, ncclSum, c->comms[w->index], w->stream);

        if (r != ncclSuccess)
            return aicp_tb_err_set(&w->err, AICP_TB_EIO, "ncclAllReduce: %s",
                                   ncclGetErrorString(r));
        return 0;
    }
#endif
    if ((rc = peer_allreduce(w, 0)) != 0)
        return rc;
    return 0;
}

static void report_step(struct ctx *c, int s, double t0, double dt, double *last_print)
{
    const struct aicp_tb_opts *o = c->opts;
    double loss = 0.0, batch = (double)o->cfg.batch * c->ngpus;
    int i, warm = s < o->warmup, total = o->warmup + o->steps;

    for (i = 0; i < c->ngpus; i++)
        loss += c->w[i].loss;
    loss /= c->ngpus;
    c->res->base.losses[s] = loss;
    if (!warm) {
        c->step_s[s - o->warmup] = dt;
        c->timed += dt;
    }
    if (c->w[0].overflow)
        c->res->skipped_steps++;
    if (c->progress != NULL && (s == total - 1 || s == 0 || t0 + dt - *last_print >= 1.0)) {
        double ips =
            warm ? batch / dt : batch * (s - o->warmup + 1) / (c->timed > 0 ? c->timed : 1);

        fprintf(c->progress, "step %d/%d%s  loss %.4f  %.2f images/sec\n", s + 1, total,
                warm ? " (warm-up)" : "", loss, ips);
        fflush(c->progress);
        *last_print = t0 + dt;
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct ctx *c = w->ctx;
    const struct aicp_tb_opts *o = c->opts;
    struct aicp_tb_sgd sgd = {o->lr, o->momentum, o->weight_decay};
    int fp16 = c->dtype == AICP_TB_CUDA_F16, total = o->warmup + o->steps, s, rc, good = 0;
    float scale = fp16 ? SCALE_INIT : 1.0f;
    double t0 = 0.0, last_print = aicp_tb_now();

    /* Wait until every thread exists: the barrier counts them all. */
    pthread_mutex_lock(&c->mu);
    while (!c->go)
        pthread_cond_wait(&c->gate, &c->mu);
    rc = c->failed;
    pthread_mutex_unlock(&c->mu);
    if (rc != 0)
        return NULL;
    if ((rc = worker_setup(w)) != 0)
        fail(w, rc);
    if (meet(c))
        goto out;
    for (s = 0; s < total; s++) {
        int slot = c->rec != NULL ? 0 : s % c->nslots;

        if (c->rec != NULL) {
            size_t first = ((size_t)s * c->ngpus + (size_t)w->index) * (size_t)o->cfg.batch;

            pthread_mutex_lock(&c->mu);
            rc = aicp_tb_records_fill(c->rec, first, o->cfg.batch, o->cfg.resolution, w->host_x,
                                      w->host_labels, &w->err);
            pthread_mutex_unlock(&c->mu);
            if (rc == 0)
                rc = aicp_tb_cuda_net_upload(w->net, 0, w->host_x, w->host_labels, &w->err);
            if (rc != 0)
                fail(w, rc);
        }
        if (meet(c))
            break;
        if (w->index == 0)
            t0 = aicp_tb_now();
        if ((rc = step_compute(w, slot, scale)) != 0)
            fail(w, rc);
        if (meet(c))
            break;
        if ((rc = step_exchange(w)) != 0)
            fail(w, rc);
        if (c->ngpus > 1 && !c->use_nccl) {
            /* The peer path's second half: everyone's sums are ready. */
            if (meet(c))
                break;
            if ((rc = peer_allreduce(w, 1)) != 0)
                fail(w, rc);
            if (meet(c))
                break;
        }
        rc = aicp_tb_cuda_net_update(w->net, &sgd, 1.0f / (scale * (float)c->ngpus), fp16, &w->err);
        if (rc == 0)
            rc = aicp_tb_cuda_net_finish(w->net, &w->loss, &w->overflow, &w->err);
        if (rc != 0)
            fail(w, rc);
        if (meet(c))
            break;
        if (w->index == 0)
            report_step(c, s, t0, aicp_tb_now() - t0, &last_print);
        /* Dynamic loss scaling; every GPU sees the same all-reduced
         * gradients, so takes the same decision. */
        if (fp16 && w->overflow) {
            scale = scale > 1.0f ? scale / 2.0f : 1.0f;
            good = 0;
        } else if (fp16 && ++good >= SCALE_GROWTH_STEPS) {
            scale = scale < SCALE_MAX ? scale * 2.0f : SCALE_MAX;
            good = 0;
        }
    }
    if (w->index == 0)
        c->res->loss_scale = scale;
out:
    aicp_tb_cuda_net_free(w->net);
    w->net = NULL;
    if (w->stage != NULL)
        cudaFree(w->stage);
    if (w->stream != NULL)
        cudaStreamDestroy(w->stream);
    free(w->host_x);
    free(w->host_labels);
    return NULL;
}

/* ---- the run ---- */

void aicp_tb_cuda_result_free(struct aicp_tb_cuda_result *res)
{
    if (res != NULL)
        aicp_tb_result_free(&res->base);
}

static int start_comms(struct ctx *c, struct aicp_tb_err *err)
{
    c->use_nccl = 0;
    if (c->ngpus == 1)
        return 0;
#ifdef AICP_TB_NCCL
    {
        const char *force = getenv("AICP_TB_ALLREDUCE");
        int devs[MAX_GPUS], i;
        ncclResult_t r;

        /* AICP_TB_ALLREDUCE=peer exercises the fall-back on NCCL builds. */
        if (force != NULL && strcmp(force, "peer") == 0)
            return 0;
        for (i = 0; i < c->ngpus; i++)
            devs[i] = i;
        r = ncclCommInitAll(c->comms, c->ngpus, devs);
        if (r != ncclSuccess)
            return aicp_tb_err_set(err, AICP_TB_EIO, "ncclCommInitAll over %d GPUs: %s", c->ngpus,
                                   ncclGetErrorString(r));
        c->use_nccl = 1;
    }
#else
    (void)err;
#endif
    return 0;
}

static void stop_comms(struct ctx *c)
{
#ifdef AICP_TB_NCCL
    int i;

    if (!c->use_nccl)
        return;
    for (i = 0; i < c->ngpus; i++)
        ncclCommDestroy(c->comms[i]);
#else
    (void)c;
#endif
}

int aicp_tb_cuda_train(struct aicp_tb_cuda_result *res, const struct aicp_tb_opts *opts,
                       FILE *progress, struct aicp_tb_err *err)
{
    struct ctx c;
    struct gpu_info gi[MAX_GPUS];
    struct aicp_tb_model *shape = NULL;
    int total = opts->warmup + opts->steps, i, rc, sync_ok = 0, started = 0, spawn_err = 0;
    double achieved;

    memset(res, 0, sizeof(*res));
    memset(&c, 0, sizeof(c));
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.gate, NULL);
    c.opts = opts;
    c.res = res;
    c.progress = progress;
    c.dtype = dtype_of(opts->precision);
    /* The CPU model, built without buffers, checks the sizes (usage errors
     * before any GPU is touched) and gives the reference counts. */
    if ((rc = aicp_tb_model_new(&shape, &opts->cfg, NULL, 0, err)) != 0)
        goto out;
    res->base.fwd_macs_per_image = aicp_tb_model_fwd_macs(shape);
    res->base.params = aicp_tb_model_params(shape);
    aicp_tb_model_free(shape);
    if ((rc = find_gpus("--device cuda", opts->threads, opts->precision, &c.ngpus, gi, err)) != 0)
        goto out;
    if (opts->data_dir != NULL &&
        (rc = aicp_tb_records_open(&c.rec, opts->data_dir, opts->cfg.classes, err)) != 0)
        goto out;
    c.nslots = total < MAX_SLOTS ? total : MAX_SLOTS;
    res->gpus = c.ngpus;
    snprintf(res->gpu_name, sizeof(res->gpu_name), "%s", gi[0].name);
    for (i = 0; i < c.ngpus; i++)
        res->peak_tflops += aicp_tb_cuda_peak_tflops(gi[i].cc / 10, gi[i].cc % 10, gi[i].sms,
                                                     gi[i].clock_khz, opts->precision);
    res->base.losses = calloc((size_t)total, sizeof(double));
    c.step_s = calloc((size_t)opts->steps, sizeof(double));
    c.w = calloc((size_t)c.ngpus, sizeof(*c.w));
    if (res->base.losses == NULL || c.step_s == NULL || c.w == NULL) {
        rc = aicp_tb_err_set(err, AICP_TB_ENOMEM, "out of memory for %d step records", total);
        goto out;
    }
    res->base.nlosses = total;
    if ((rc = start_comms(&c, err)) != 0)
        goto out;
    res->allreduce = c.ngpus == 1 ? "none" : c.use_nccl ? "nccl" : "peer";
    if (pthread_barrier_init(&c.bar, NULL, (unsigned)c.ngpus) != 0) {
        rc = aicp_tb_err_set(err, AICP_TB_ENOMEM, "cannot create a thread barrier: %s",
                             strerror(errno));
        goto out;
    }
    sync_ok = 1;
    for (i = 0; i < c.ngpus; i++) {
        c.w[i].ctx = &c;
        c.w[i].index = i;
    }
    for (started = 0; started < c.ngpus; started++)
        if ((spawn_err = pthread_create(&c.w[started].tid, NULL, worker_main, &c.w[started])) != 0)
            break;
    pthread_mutex_lock(&c.mu);
    c.go = 1;
    c.failed = spawn_err != 0;
    pthread_cond_broadcast(&c.gate);
    pthread_mutex_unlock(&c.mu);
    for (i = 0; i < started; i++)
        pthread_join(c.w[i].tid, NULL);
    if (spawn_err != 0) {
        rc = aicp_tb_err_set(err, AICP_TB_ENOMEM, "cannot start a thread for GPU %d: %s", started,
                             strerror(spawn_err));
        goto out;
    }
    for (i = 0; i < c.ngpus; i++) {
        if (c.w[i].rc != 0) {
            rc = aicp_tb_err_set(err, c.w[i].rc, "GPU %d (%s): %s", i, gi[i].name, c.w[i].err.msg);
            goto out;
        }
    }
    res->base.loss_first = res->base.losses[0];
    res->base.final_loss = res->base.losses[total - 1];
    res->base.images_per_sec =
        c.timed > 0 ? (double)opts->cfg.batch * c.ngpus * opts->steps / c.timed : 0.0;
    res->images_per_sec_per_gpu = res->base.images_per_sec / c.ngpus;
    for (i = 0; i < opts->steps; i++)
        c.step_s[i] *= 1000.0;
    res->base.step_ms_p50 = aicp_tb_percentile(c.step_s, opts->steps, 50);
    res->base.step_ms_p90 = aicp_tb_percentile(c.step_s, opts->steps, 90);
    res->base.step_ms_p99 = aicp_tb_percentile(c.step_s, opts->steps, 99);
    res->base.flops_per_image = 6.0 * res->base.fwd_macs_per_image;
    achieved = res->base.images_per_sec * res->base.flops_per_image / 1e12;
    res->base.achieved_tflops = achieved;
    res->peak_fraction = res->peak_tflops > 0 ? achieved / res->peak_tflops : NAN;
    if (c.dtype != AICP_TB_CUDA_F16)
        res->loss_scale = 1.0;
    rc = 0;
out:
    if (sync_ok)
        pthread_barrier_destroy(&c.bar);
    pthread_mutex_destroy(&c.mu);
    pthread_cond_destroy(&c.gate);
    stop_comms(&c);
    if (rc != 0)
        aicp_tb_cuda_result_free(res);
    free(c.w);
    free(c.step_s);
    aicp_tb_records_free(c.rec);
    return rc;
}

/* ---- output ---- */

static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(out, "\\u%04x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

static void json_number(FILE *out, double v)
{
    if (isfinite(v))
        fprintf(out, "%.6g", v);
    else
        fputs("null", out);
}

void aicp_tb_cuda_report_json(FILE *out, const struct aicp_tb_opts *opts,
                              const struct aicp_tb_cuda_result *res)
{
    const struct aicp_tb_result *b = &res->base;
    int i;

    fputs("{\"model\":", out);
    json_string(out, opts->model);
    fputs(",\"device\":\"cuda\",\"precision\":", out);
    json_string(out, opts->precision);
    fprintf(out, ",\"batch_size\":%d,\"steps\":%d,\"warmup\":%d,\"threads\":%d", opts->cfg.batch,
            opts->steps, opts->warmup, res->gpus);
    fputs(",\"lr\":", out);
    json_number(out, opts->lr);
    fputs(",\"images_per_sec\":", out);
    json_number(out, b->images_per_sec);
    fputs(",\"images_per_sec_per_gpu\":", out);
    json_number(out, res->images_per_sec_per_gpu);
    fputs(",\"step_ms\":{\"p50\":", out);
    json_number(out, b->step_ms_p50);
    fputs(",\"p90\":", out);
    json_number(out, b->step_ms_p90);
    fputs(",\"p99\":", out);
    json_number(out, b->step_ms_p99);
    fputs("},\"flops_per_image\":", out);
    json_number(out, b->flops_per_image);
    fputs(",\"fwd_macs_per_image\":", out);
    json_number(out, b->fwd_macs_per_image);
    fputs(",\"achieved_tflops\":", out);
    json_number(out, b->achieved_tflops);
    fputs(",\"peak_fraction\":", out);
    json_number(out, res->peak_fraction);
    fputs(",\"final_loss\":", out);
    json_number(out, b->final_loss);
    fputs(",\"loss_first\":", out);
    json_number(out, b->loss_first);
    fprintf(out, ",\"params\":%zu,\"config\":{\"width\":%d,\"blocks\":[", b->params,
            opts->cfg.width);
    for (i = 0; i < opts->cfg.nstages; i++)
        fprintf(out, "%s%d", i ? "," : "", opts->cfg.blocks[i]);
    fprintf(out, "],\"resolution\":%d,\"classes\":%d},\"data\":", opts->cfg.resolution,
            opts->cfg.classes);
    json_string(out, opts->data_dir != NULL ? opts->data_dir : "synthetic");
    fprintf(out, ",\"gpus\":%d,\"gpu_name\":", res->gpus);
    json_string(out, res->gpu_name);
    fputs(",\"peak_tflops\":", out);
    json_number(out, res->peak_tflops > 0 ? res->peak_tflops : NAN);
    fputs(",\"allreduce\":", out);
    json_string(out, res->allreduce != NULL ? res->allreduce : "none");
    fputs(",\"loss_scale\":", out);
    json_number(out, res->loss_scale);
    fprintf(out, ",\"skipped_steps\":%d,\"global_batch\":%ld}\n", res->skipped_steps,
            (long)opts->cfg.batch * res->gpus);
}

void aicp_tb_cuda_report_human(FILE *out, const struct aicp_tb_opts *opts,
                               const struct aicp_tb_cuda_result *res)
{
    const struct aicp_tb_result *b = &res->base;

    fprintf(out,
            "%s on cuda (%s), batch %d per GPU x %d GPU%s (%s, all-reduce %s), %d timed steps "
            "after %d warm-up\n",
            opts->model, opts->precision, opts->cfg.batch, res->gpus, res->gpus == 1 ? "" : "s",
            res->gpu_name, res->allreduce != NULL ? res->allreduce : "none", opts->steps,
            opts->warmup);
    fprintf(out,
            "step time ms: p50 %.2f  p90 %.2f  p99 %.2f; loss %.4f -> %.4f; %.2f images/sec per "
            "GPU; %.3f TFLOPS",
            b->step_ms_p50, b->step_ms_p90, b->step_ms_p99, b->loss_first, b->final_loss,
            res->images_per_sec_per_gpu, b->achieved_tflops);
    if (isfinite(res->peak_fraction))
        fprintf(out, " (%.1f%% of %.1f peak)", 100.0 * res->peak_fraction, res->peak_tflops);
    fputc('\n', out);
    fprintf(out, "Total images/sec = %.2f\n", b->images_per_sec);
}

int aicp_tb_cuda_main(const struct aicp_tb_opts *opts)
{
    struct aicp_tb_cuda_result res;
    struct aicp_tb_err err = {0};
    int rc = aicp_tb_cuda_train(&res, opts, opts->quiet || opts->json ? NULL : stderr, &err);

    if (rc != 0) {
        fprintf(stderr, "aicp-trainbench: %s\n", err.msg);
        return aicp_tb_err_exit_status(rc);
    }
    if (!opts->json)
        aicp_tb_cuda_report_human(stdout, opts, &res);
    aicp_tb_cuda_report_json(stdout, opts, &res);
    aicp_tb_cuda_result_free(&res);
    return 0;
}

/* ---- --gemm-check ---- */

struct gemm_opts {
    int size, iters, gpus, json;
    const char *precision;
};

static int gemm_parse(struct gemm_opts *g, int argc, char **argv, struct aicp_tb_err *err)
{
    int i;

    g->size = 8192;
    g->iters = 20;
    g->gpus = 0;
    g->json = 0;
    g->precision = "fp16";
    for (i = 2; i < argc; i++) {
        const char *a = argv[i];
        int *dst = NULL;
        long lo = 1, hi = 1;

        if (strcmp(a, "--json") == 0) {
            g->json = 1;
            continue;
        }
        if (strcmp(a, "--precision") == 0 && i + 1 < argc) {
            g->precision = argv[++i];
            if (strcmp(g->precision, "fp16") != 0 && strcmp(g->precision, "bf16") != 0 &&
                strcmp(g->precision, "fp32") != 0)
                return aicp_tb_err_set(err, AICP_TB_EUSAGE,
                                       "--precision '%s': expected fp16, bf16 or fp32",
                                       g->precision);
            continue;
        }
        if (strcmp(a, "--size") == 0) {
            dst = &g->size;
            lo = 256;
            hi = 32768;
        } else if (strcmp(a, "--iters") == 0) {
            dst = &g->iters;
            hi = 100000;
        } else if (strcmp(a, "--gpus") == 0) {
            dst = &g->gpus;
            hi = MAX_GPUS;
        }
        if (dst == NULL || i + 1 >= argc)
            return aicp_tb_err_set(err, AICP_TB_EUSAGE,
                                   "--gemm-check: unexpected '%s' (options: --size N, "
                                   "--precision fp16|bf16|fp32, --gpus N, --iters N, --json)",
                                   a);
        {
            char *end;
            long v;

            errno = 0;
            v = strtol(argv[++i], &end, 10);
            if (argv[i][0] == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi)
                return aicp_tb_err_set(err, AICP_TB_EUSAGE,
                                       "%s '%s': expected an integer in %ld..%ld", a, argv[i], lo,
                                       hi);
            *dst = (int)v;
        }
    }
    return 0;
}

/* One GPU: D = A B, all size x size, timed with events over iters runs. */
static int gemm_one(const struct gemm_opts *g, int dev, double *tflops, struct aicp_tb_err *err)
{
    int dtype = dtype_of(g->precision);
    size_t n = (size_t)g->size * g->size, esize = dtype == AICP_TB_CUDA_F32 ? 4 : 2;
    size_t wsbytes = (size_t)256 << 20;
    cudaDataType_t t = dtype == AICP_TB_CUDA_F16    ? CUDA_R_16F
                       : dtype == AICP_TB_CUDA_BF16 ? CUDA_R_16BF
                                                    : CUDA_R_32F;
    struct aicp_tb_cuda_gemm plan;
    cublasLtHandle_t lt = NULL;
    cudaStream_t s = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    void *a = NULL, *b = NULL, *d = NULL, *ws = NULL;
    float *host = NULL, *f32 = NULL, ms = 0.0f;
    struct aicp_tb_rng rng;
    int i, rc, planned = 0;
    size_t j;

    memset(&plan, 0, sizeof(plan));
    if ((rc = aicp_tb_cuda_check(cudaSetDevice(dev), "cudaSetDevice", err)) != 0)
        return rc;
    if ((rc = aicp_tb_cuda_check(cudaStreamCreate(&s), "cudaStreamCreate", err)) != 0 ||
        (rc = aicp_tb_cuda_check(cudaMalloc(&a, n * esize), "allocating A", err)) != 0 ||
        (rc = aicp_tb_cuda_check(cudaMalloc(&b, n * esize), "allocating B", err)) != 0 ||
        (rc = aicp_tb_cuda_check(cudaMalloc(&d, n * esize), "allocating D", err)) != 0 ||
        (rc = aicp_tb_cuda_check(cudaMalloc(&ws, wsbytes), "allocating the workspace", err)) != 0 ||
        (rc = aicp_tb_cuda_check(cudaMalloc((void **)&f32, n * 4), "allocating staging", err)) != 0)
        goto out;
    /* Random operands: zeros would let the tensor cores idle at low power
     * and flatter the figure. */
    if ((host = malloc(n * sizeof(float))) == NULL) {
        rc = aicp_tb_err_set(err, AICP_TB_ENOMEM, "out of memory for a %dx%d matrix", g->size,
                             g->size);
        goto out;
    }
    aicp_tb_rng_seed(&rng, 1);
    for (j = 0; j < n; j++)
        host[j] = 2.0f * aicp_tb_rng_uniform(&rng) - 1.0f;
    if ((rc = aicp_tb_cuda_check(cudaMemcpy(f32, host, n * 4, cudaMemcpyHostToDevice),
                                 "copying operands", err)) != 0)
        goto out;
    if (dtype == AICP_TB_CUDA_F32) {
        rc = aicp_tb_cuda_check(cudaMemcpy(a, f32, n * 4, cudaMemcpyDeviceToDevice), "A", err);
        if (rc == 0)
            rc = aicp_tb_cuda_check(cudaMemcpy(b, f32, n * 4, cudaMemcpyDeviceToDevice), "B", err);
    } else {
        rc =
            aicp_tb_cuda_check((cudaError_t)aicp_tb_cuda_k_from_f32(dtype, a, f32, n, s), "A", err);
        if (rc == 0)
            rc = aicp_tb_cuda_check((cudaError_t)aicp_tb_cuda_k_from_f32(dtype, b, f32, n, s), "B",
                                    err);
    }
    if (rc != 0)
        goto out;
    if ((rc = aicp_tb_cuda_check(cudaStreamSynchronize(s), "preparing operands", err)) != 0)
        goto out;
    {
        cublasStatus_t st = cublasLtCreate(&lt);

        if (st != CUBLAS_STATUS_SUCCESS) {
            lt = NULL;
            rc = aicp_tb_err_set(err, AICP_TB_EIO, "cublasLtCreate: %s",
                                 cublasLtGetStatusString(st));
            goto out;
        }
    }
    rc = aicp_tb_cuda_gemm_plan(&plan, lt, 0, 0, g->size, g->size, g->size, t, g->size, t, g->size,
                                t, g->size, wsbytes, "GEMM check", err);
    if (rc != 0)
        goto out;
    planned = 1;
    if ((rc = aicp_tb_cuda_check(cudaEventCreate(&e0), "cudaEventCreate", err)) != 0 ||
        (rc = aicp_tb_cuda_check(cudaEventCreate(&e1), "cudaEventCreate", err)) != 0)
        goto out;
    for (i = 0; i < 3 + g->iters; i++) {
        if (i == 3 &&
            (rc = aicp_tb_cuda_check(cudaEventRecord(e0, s), "cudaEventRecord", err)) != 0)
            goto out;
        if ((rc = aicp_tb_cuda_gemm_run(&plan, lt, 1.0f, a, b, 0.0f, d, ws, wsbytes, s,
                                        "GEMM check", err)) != 0)
            goto out;
    }
    if ((rc = aicp_tb_cuda_check(cudaEventRecord(e1, s), "cudaEventRecord", err)) != 0 ||
        (rc = aicp_tb_cuda_check(cudaEventSynchronize(e1), "running the GEMMs", err)) != 0 ||
        (rc = aicp_tb_cuda_check(cudaEventElapsedTime(&ms, e0, e1), "cudaEventElapsedTime", err)) !=
            0)
        goto out;
    *tflops =
        ms > 0.0f ? 2.0 * g->size * (double)g->size * g->size * g->iters / (ms * 1e-3) / 1e12 : 0.0;
out:
    if (planned)
        aicp_tb_cuda_gemm_free(&plan);
    if (e0 != NULL)
        cudaEventDestroy(e0);
    if (e1 != NULL)
        cudaEventDestroy(e1);
    if (lt != NULL)
        cublasLtDestroy(lt);
    cudaFree(a);
    cudaFree(b);
    cudaFree(d);
    cudaFree(ws);
    cudaFree(f32);
    if (s != NULL)
        cudaStreamDestroy(s);
    free(host);
    return rc;
}

int aicp_tb_cuda_gemm_main(int argc, char **argv)
{
    struct gemm_opts g;
    struct aicp_tb_err err = {0};
    struct gpu_info gi[MAX_GPUS];
    double tf[MAX_GPUS], peak[MAX_GPUS], worst = 0.0;
    int n = 0, i, rc;

    if ((rc = gemm_parse(&g, argc, argv, &err)) != 0 ||
        (rc = find_gpus("--gemm-check", g.gpus, g.precision, &n, gi, &err)) != 0)
        goto fail;
    for (i = 0; i < n; i++) {
        if ((rc = gemm_one(&g, i, &tf[i], &err)) != 0) {
            char msg[sizeof(err.msg)];

            snprintf(msg, sizeof(msg), "%s", err.msg);
            aicp_tb_err_set(&err, rc, "GPU %d (%s): %s", i, gi[i].name, msg);
            goto fail;
        }
        peak[i] = aicp_tb_cuda_peak_tflops(gi[i].cc / 10, gi[i].cc % 10, gi[i].sms, gi[i].clock_khz,
                                           g.precision);
        if (i == 0 || tf[i] < worst)
            worst = tf[i];
        if (!g.json) {
            printf("GPU %d (%s, %d SMs, %d MHz): %s %dx%dx%d GEMM %.1f TFLOPS", i, gi[i].name,
                   gi[i].sms, gi[i].clock_khz / 1000, g.precision, g.size, g.size, g.size, tf[i]);
            if (peak[i] > 0)
                printf(", %.1f%% of %.1f peak", 100.0 * tf[i] / peak[i], peak[i]);
            putchar('\n');
        }
    }
    if (!g.json)
        printf("GEMM TFLOPS = %.1f\n", worst);
    printf("{\"mode\":\"gemm-check\",\"precision\":\"%s\",\"m\":%d,\"n\":%d,\"k\":%d,"
           "\"iters\":%d,\"gpus\":[",
           g.precision, g.size, g.size, g.size, g.iters);
    for (i = 0; i < n; i++) {
        printf("%s{\"index\":%d,\"name\":", i ? "," : "", i);
        json_string(stdout, gi[i].name);
        printf(",\"sms\":%d,\"clock_mhz\":%d,\"tflops\":", gi[i].sms, gi[i].clock_khz / 1000);
        json_number(stdout, tf[i]);
        fputs(",\"peak_tflops\":", stdout);
        json_number(stdout, peak[i] > 0 ? peak[i] : NAN);
        fputs(",\"efficiency\":", stdout);
        json_number(stdout, peak[i] > 0 ? tf[i] / peak[i] : NAN);
        putchar('}');
    }
    fputs("],\"tflops_min\":", stdout);
    json_number(stdout, worst);
    fputs("}\n", stdout);
    return 0;
fail:
    fprintf(stderr, "aicp-trainbench: %s\n", err.msg);
    if (rc == AICP_TB_EUSAGE)
        fputs("try 'aicp-trainbench --help'\n", stderr);
    return aicp_tb_err_exit_status(rc);
}
