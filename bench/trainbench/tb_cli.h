/* Command-line options of aicp-trainbench and their parsing. Parsing
 * checks every value (ranges, devices this build can drive, precisions the
 * CPU path computes honestly) so that the run itself never meets bad
 * input. */
#ifndef AICP_TB_CLI_H
#define AICP_TB_CLI_H

#include <stdint.h>

#include "tb_model.h"
#include "tb_util.h"

struct aicp_tb_opts {
    const char *device;    /* "cpu" */
    const char *model;     /* preset name */
    const char *precision; /* "fp32" */
    struct aicp_tb_model_cfg cfg; /* preset with overrides applied */
    int steps;             /* timed steps */
    int warmup;            /* untimed steps before them */
    int threads;
    uint64_t seed;
    const char *data_dir;  /* NULL: synthetic data */
    float lr, momentum, weight_decay;
    int json;
    int quiet;
    int help;
};

/* Parses argv (argv[0] is the program name) into opts, which borrow from
 * argv. AICP_TB_EUSAGE for a bad option or value, AICP_TB_EUNSUPPORTED
 * for a valid request this build cannot run (--device cuda, --precision
 * bf16 on the CPU). */
int aicp_tb_cli_parse(struct aicp_tb_opts *opts, int argc, char **argv, struct aicp_tb_err *err);

/* The --help text. */
const char *aicp_tb_cli_usage(void);

#endif
