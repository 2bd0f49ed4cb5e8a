/* Error records, random numbers, aligned allocation and the clock for
 * aicp-trainbench (see tb_util.h for why these are not libaicp's). */
/* pread, O_CLOEXEC, clock_gettime, open_memstream: POSIX beyond C11. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include "tb_util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int aicp_tb_err_set(struct aicp_tb_err *err, int code, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return code;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

int aicp_tb_err_exit_status(int code)
{
    switch (code) {
    case AICP_TB_OK:
        return 0;
    case AICP_TB_EUSAGE:
        return 64;
    case AICP_TB_EINVAL:
        return 65;
    default:
        return 1;
    }
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void aicp_tb_rng_seed(struct aicp_tb_rng *rng, uint64_t seed)
{
    uint64_t x = seed;

    rng->s[0] = splitmix64(&x);
    rng->s[1] = splitmix64(&x);
    if (rng->s[0] == 0 && rng->s[1] == 0)
        rng->s[1] = 1;
}

uint64_t aicp_tb_rng_next(struct aicp_tb_rng *rng)
{
    /* xoroshiro128+ */
    uint64_t s0 = rng->s[0], s1 = rng->s[1];
    uint64_t r = s0 + s1;

    s1 ^= s0;
    rng->s[0] = ((s0 << 24) | (s0 >> 40)) ^ s1 ^ (s1 << 16);
    rng->s[1] = (s1 << 37) | (s1 >> 27);
    return r;
}

float aicp_tb_rng_uniform(struct aicp_tb_rng *rng)
{
    return (float)(aicp_tb_rng_next(rng) >> 40) * (1.0f / 16777216.0f);
}

float aicp_tb_rng_normal(struct aicp_tb_rng *rng)
{
    double u1 = ((double)(aicp_tb_rng_next(rng) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(aicp_tb_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);

    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint32_t aicp_tb_rng_below(struct aicp_tb_rng *rng, uint32_t n)
{
    return (uint32_t)(((aicp_tb_rng_next(rng) >> 32) * (uint64_t)n) >> 32);
}

float *aicp_tb_falloc(size_t n)
{
    size_t bytes;
    float *p;

    if (n == 0)
        n = 1;
    if (n > (SIZE_MAX - 64) / sizeof(float))
        return NULL;
    bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    p = aligned_alloc(64, bytes);
    if (p != NULL)
        memset(p, 0, bytes);
    return p;
}

double aicp_tb_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
