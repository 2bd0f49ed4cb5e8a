/* Option parsing for aicp-trainbench (see tb_cli.h). A hand-written loop
 * rather than getopt_long so that every message names the option and the
 * value at fault, and both "--flag value" and "--flag=value" work. */
/* pread, O_CLOEXEC, clock_gettime, open_memstream: POSIX beyond C11. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include "tb_cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: aicp-trainbench [options]\n"
    "Trains a ResNet on synthetic (or --data) images and reports images/sec.\n"
#ifdef AICP_TB_CUDA
    "  --device cpu|cuda     where to train (default cpu)\n"
#else
    "  --device cpu|cuda     where to train (this build: cpu only)\n"
#endif
    "  --model resnet50|resnet-tiny  network preset (default resnet50)\n"
    "  --width N             stem width; stage i uses N<<i inner channels\n"
    "  --blocks A,B,...      bottleneck blocks per stage (1 to 8 stages)\n"
    "  --resolution N        input images are N x N\n"
    "  --classes N           classifier outputs\n"
    "  --batch-size N        images per step (default 32)\n"
    "  --steps N             timed steps (default 20)\n"
    "  --warmup N            untimed steps first (default 3)\n"
#ifdef AICP_TB_CUDA
    "  --precision P         fp32 (cpu: the only one), cuda: fp16 (default), bf16, fp32\n"
    "  --threads N           cpu: worker threads (default: online CPUs)\n"
    "  --gpus N              cuda: GPUs to train on, a thread each (default: all)\n"
#else
    "  --precision fp32      arithmetic (the CPU path is fp32 only)\n"
    "  --threads N           worker threads (default: online CPUs)\n"
#endif
    "  --seed N              weights and synthetic data seed (default 1)\n"
    "  --data DIR            train on the .tbr record files in DIR\n"
    "  --lr X                SGD learning rate (default 0.1 * batch / 256)\n"
    "  --momentum X          SGD momentum (default 0.9)\n"
    "  --weight-decay X      L2 on conv and fc weights (default 1e-4)\n"
    "  --json                print only the JSON result line\n"
    "  --quiet               no progress lines on stderr\n"
    "  --help                this text\n"
#ifdef AICP_TB_CUDA
    "or: aicp-trainbench --gemm-check [--size N] [--precision fp16|bf16|fp32]\n"
    "      [--gpus N] [--iters N] [--json]\n"
    "  measures cuBLASLt GEMM TFLOPS (default 8192^3 fp16) against each GPU's peak\n"
#endif
    ;

const char *aicp_tb_cli_usage(void)
{
    return usage_text;
}

static int parse_int(const char *opt, const char *s, long lo, long hi, int *out,
                     struct aicp_tb_err *err)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi)
        return aicp_tb_err_set(err, AICP_TB_EUSAGE, "%s '%s': expected an integer in %ld..%ld",
                               opt, s, lo, hi);
    *out = (int)v;
    return 0;
}

static int parse_float(const char *opt, const char *s, double lo, double hi, float *out,
                       struct aicp_tb_err *err)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || !isfinite(v) || v < lo || v > hi)
        return aicp_tb_err_set(err, AICP_TB_EUSAGE, "%s '%s': expected a number in %g..%g", opt,
                               s, lo, hi);
    *out = (float)v;
    return 0;
}

static int parse_blocks(const char *s, struct aicp_tb_model_cfg *cfg, struct aicp_tb_err *err)
{
    const char *p = s;
    int n = 0;

    for (;;) {
        char *end;
        long v;

        errno = 0;
        v = strtol(p, &end, 10);
        if (end == p || errno != 0 || v < 1 || v > 256 || (*end != ',' && *end != '\0'))
            return aicp_tb_err_set(err, AICP_TB_EUSAGE,
                                   "--blocks '%s': expected 1 to %d comma-separated counts "
                                   "in 1..256",
                                   s, AICP_TB_MAX_STAGES);
        if (n == AICP_TB_MAX_STAGES)
            return aicp_tb_err_set(err, AICP_TB_EUSAGE, "--blocks '%s': more than %d stages",
                                   s, AICP_TB_MAX_STAGES);
        cfg->blocks[n++] = (int)v;
        if (*end == '\0')
            break;
        p = end + 1;
    }
    cfg->nstages = n;
    return 0;
}

static const char *const value_opts[] = {
    "--device", "--model", "--width", "--blocks", "--resolution", "--classes",
    "--batch-size", "--steps", "--warmup", "--precision", "--threads", "--seed",
    "--data", "--lr", "--momentum", "--weight-decay",
#ifdef AICP_TB_CUDA
    "--gpus",
#endif
};

int aicp_tb_cli_parse(struct aicp_tb_opts *opts, int argc, char **argv, struct aicp_tb_err *err)
{
    struct aicp_tb_model_cfg over = {.width = -1, .nstages = -1, .resolution = -1,
                                     .classes = -1};
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int i, rc = 0, seed = 1;
    size_t k;
#ifdef AICP_TB_CUDA
    const char *precision = NULL; /* checked against the device after the loop */
    int gpus = 0, threads_given = 0;
#endif

    memset(opts, 0, sizeof(*opts));
    opts->device = "cpu";
    opts->model = "resnet50";
    opts->precision = "fp32";
    opts->cfg.batch = 32;
    opts->steps = 20;
    opts->warmup = 3;
    opts->threads = ncpu < 1 ? 1 : ncpu > 256 ? 256 : (int)ncpu;
    opts->lr = -1.0f;
    opts->momentum = 0.9f;
    opts->weight_decay = 1e-4f;

    for (i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = NULL, *eq;
        char name[32];
        size_t nlen;

        if (strncmp(arg, "--", 2) != 0)
            return aicp_tb_err_set(err, AICP_TB_EUSAGE, "unexpected argument '%s'", arg);
        eq = strchr(arg, '=');
        nlen = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
        if (nlen >= sizeof(name))
            return aicp_tb_err_set(err, AICP_TB_EUSAGE, "unknown option '%s'", arg);
        memcpy(name, arg, nlen);
        name[nlen] = '\0';
        for (k = 0; k < sizeof(value_opts) / sizeof(value_opts[0]); k++)
            if (strcmp(name, value_opts[k]) == 0)
                break;
        if (k < sizeof(value_opts) / sizeof(value_opts[0])) {
            if (eq != NULL)
                val = eq + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                return aicp_tb_err_set(err, AICP_TB_EUSAGE, "%s needs a value", name);
        } else if (eq != NULL) {
            return aicp_tb_err_set(err, AICP_TB_EUSAGE, "option '%s' takes no value", name);
        }

        if (strcmp(name, "--help") == 0) {
            opts->help = 1;
        } else if (strcmp(name, "--json") == 0) {
            opts->json = 1;
        } else if (strcmp(name, "--quiet") == 0) {
            opts->quiet = 1;
#ifdef AICP_TB_CUDA
        } else if (strcmp(name, "--device") == 0) {
            if (strcmp(val, "cpu") != 0 && strcmp(val, "cuda") != 0)
                return aicp_tb_err_set(err, AICP_TB_EUSAGE,
                                       "--device '%s': expected cpu or cuda", val);
            opts->device = strcmp(val, "cuda") == 0 ? "cuda" : "cpu";
        } else if (strcmp(name, "--precision") == 0) {
            if (strcmp(val, "fp32") != 0 && strcmp(val, "bf16") != 0 && strcmp(val, "fp16") != 0)
                return aicp_tb_err_set(err, AICP_TB_EUSAGE,
                                       "--precision '%s': expected fp32, bf16 or fp16", val);
            precision = val;
        } else if (strcmp(name, "--gpus") == 0) {
            rc = parse_int(name, val, 1, 64, &gpus, err);
#else
        } else if (strcmp(name, "--device") == 0) {
            if (strcmp(val, "cuda") == 0)
                return aicp_tb_err_set(err, AICP_TB_EUNSUPPORTED,
                                       "--device cuda: this build has no CUDA path (it was built "
                                       "CPU-only); use --device cpu");
            if (strcmp(val, "cpu") != 0)
                return aicp_tb_err_set(err, AICP_TB_EUSAGE,
                                       "--device '%s': expected cpu or cuda", val);
            opts->device = "cpu";
        } else if (strcmp(name, "--precision") == 0) {
            if (strcmp(val, "bf16") == 0 || strcmp(val, "fp16") == 0)
                return aicp_tb_err_set(err, AICP_TB_EUNSUPPORTED,
                                       "--precision %s: the CPU path computes in fp32 only", val);
            if (strcmp(val, "fp32") != 0)
                return aicp_tb_err_set(err, AICP_TB_EUSAGE,
                                       "--precision '%s': expected fp32, bf16 or fp16", val);
#endif
        } else if (strcmp(name, "--model") == 0) {
            opts->model = val;
        } else if (strcmp(name, "--width") == 0) {
            rc = parse_int(name, val, 1, 4096, &over.width, err);
        } else if (strcmp(name, "--blocks") == 0) {
            rc = parse_blocks(val, &over, err);
        } else if (strcmp(name, "--resolution") == 0) {
            rc = parse_int(name, val, 8, 8192, &over.resolution, err);
        } else if (strcmp(name, "--classes") == 0) {
            rc = parse_int(name, val, 2, 65536, &over.classes, err);
        } else if (strcmp(name, "--batch-size") == 0) {
            rc = parse_int(name, val, 1, 1000000, &opts->cfg.batch, err);
        } else if (strcmp(name, "--steps") == 0) {
            rc = parse_int(name, val, 1, 100000000, &opts->steps, err);
        } else if (strcmp(name, "--warmup") == 0) {
            rc = parse_int(name, val, 0, 100000000, &opts->warmup, err);
        } else if (strcmp(name, "--threads") == 0) {
            rc = parse_int(name, val, 1, 1024, &opts->threads, err);
#ifdef AICP_TB_CUDA
            threads_given = 1;
#endif
        } else if (strcmp(name, "--seed") == 0) {
            rc = parse_int(name, val, 0, 2147483647, &seed, err);
        } else if (strcmp(name, "--data") == 0) {
            if (val[0] == '\0')
                return aicp_tb_err_set(err, AICP_TB_EUSAGE, "--data needs a directory");
            opts->data_dir = val;
        } else if (strcmp(name, "--lr") == 0) {
            rc = parse_float(name, val, 0.0, 100.0, &opts->lr, err);
        } else if (strcmp(name, "--momentum") == 0) {
            rc = parse_float(name, val, 0.0, 0.999999, &opts->momentum, err);
        } else if (strcmp(name, "--weight-decay") == 0) {
            rc = parse_float(name, val, 0.0, 1.0, &opts->weight_decay, err);
        } else {
            return aicp_tb_err_set(err, AICP_TB_EUSAGE, "unknown option '%s'", name);
        }
        if (rc != 0)
            return rc;
    }
    if (opts->help)
        return 0;
#ifdef AICP_TB_CUDA
    /* The CUDA path keeps its GPU count in threads (a thread per GPU; 0
     * means every visible GPU) and defaults to fp16 mixed precision. */
    if (strcmp(opts->device, "cuda") == 0) {
        if (threads_given)
            return aicp_tb_err_set(err, AICP_TB_EUSAGE,
                                   "--threads: the CUDA path runs a thread per GPU; use --gpus");
        opts->threads = gpus;
        opts->precision = precision != NULL ? precision : "fp16";
    } else {
        if (gpus > 0)
            return aicp_tb_err_set(err, AICP_TB_EUSAGE, "--gpus needs --device cuda");
        if (precision != NULL && strcmp(precision, "fp32") != 0)
            return aicp_tb_err_set(err, AICP_TB_EUNSUPPORTED,
                                   "--precision %s: the CPU path computes in fp32 only",
                                   precision);
    }
#endif
    opts->cfg.seed = (uint64_t)seed;
    /* Goyal et al.'s linear scaling rule: small CPU batches at 0.1 diverge. */
    if (opts->lr < 0.0f)
        opts->lr = 0.1f * (float)opts->cfg.batch / 256.0f;
    if ((rc = aicp_tb_model_preset(&opts->cfg, opts->model, err)) != 0)
        return rc;
    if (over.width > 0)
        opts->cfg.width = over.width;
    if (over.nstages > 0) {
        opts->cfg.nstages = over.nstages;
        memcpy(opts->cfg.blocks, over.blocks, sizeof(over.blocks));
    }
    if (over.resolution > 0)
        opts->cfg.resolution = over.resolution;
    if (over.classes > 0)
        opts->cfg.classes = over.classes;
    return 0;
}
