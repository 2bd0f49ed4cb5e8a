/* Shared plumbing for aicp-trainbench: the error record its functions fill,
 * a small deterministic random number generator, and checked allocation.
 * trainbench is deliberately independent of libaicp (it runs on GPU nodes
 * that may only get this one binary), so it mirrors agent/err.h's
 * conventions here instead of linking them. */
#ifndef AICP_TB_UTIL_H
#define AICP_TB_UTIL_H

#include <stddef.h>
#include <stdint.h>

enum aicp_tb_errcode {
    AICP_TB_OK = 0,
    AICP_TB_ENOMEM = -1,       /* out of memory (exit 1) */
    AICP_TB_EINVAL = -2,       /* bad input data, e.g. a --data record (exit 65) */
    AICP_TB_EUSAGE = -3,       /* command-line usage (exit 64) */
    AICP_TB_EIO = -4,          /* local I/O (exit 1) */
    AICP_TB_EUNSUPPORTED = -5, /* valid request this build cannot serve (exit 1) */
};

struct aicp_tb_err {
    int code;
    char msg[1024];
};

/* Sets code and message; returns code. err may be NULL. */
int aicp_tb_err_set(struct aicp_tb_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Process exit status for an error code (64 usage, 65 bad data, else 1). */
int aicp_tb_err_exit_status(int code);

/* splitmix64-seeded xoshiro128+-style generator: same seed, same stream on
 * every platform, which the determinism guarantee relies on. */
struct aicp_tb_rng {
    uint64_t s[2];
};

void aicp_tb_rng_seed(struct aicp_tb_rng *rng, uint64_t seed);
uint64_t aicp_tb_rng_next(struct aicp_tb_rng *rng);
/* Uniform in [0, 1). */
float aicp_tb_rng_uniform(struct aicp_tb_rng *rng);
/* Standard normal (Box-Muller). */
float aicp_tb_rng_normal(struct aicp_tb_rng *rng);
/* Uniform integer in [0, n). n > 0. */
uint32_t aicp_tb_rng_below(struct aicp_tb_rng *rng, uint32_t n);

/* 64-byte aligned, zeroed array of n floats; NULL when n*4 overflows or
 * memory is short. Free with free(). */
float *aicp_tb_falloc(size_t n);

/* Monotonic clock in seconds. */
double aicp_tb_now(void);

#endif
