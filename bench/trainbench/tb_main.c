/* aicp-trainbench: trains a ResNet (ResNet-50 v1.5 by default) on the CPU
 * and reports training throughput, for aicp's validate module and for
 * people checking a node by hand. Exit status: 0 done, 64 usage, 65 bad
 * --data records, 1 anything else (out of memory, a device this build
 * lacks). */
#include <stdio.h>

#include "tb_cli.h"
#include "tb_report.h"
#include "tb_run.h"
#ifdef AICP_TB_CUDA
#include <string.h>

#include "tb_cuda.h"
#endif

int main(int argc, char **argv)
{
    struct aicp_tb_opts opts;
    struct aicp_tb_result res;
    struct aicp_tb_err err = {0};
    int rc;

#ifdef AICP_TB_CUDA
    if (argc >= 2 && strcmp(argv[1], "--gemm-check") == 0)
        return aicp_tb_cuda_gemm_main(argc, argv);
#endif
    rc = aicp_tb_cli_parse(&opts, argc, argv, &err);
    if (rc != 0) {
        fprintf(stderr, "aicp-trainbench: %s\n", err.msg);
        if (rc == AICP_TB_EUSAGE)
            fputs("try 'aicp-trainbench --help'\n", stderr);
        return aicp_tb_err_exit_status(rc);
    }
    if (opts.help) {
        fputs(aicp_tb_cli_usage(), stdout);
        return 0;
    }
#ifdef AICP_TB_CUDA
    if (strcmp(opts.device, "cuda") == 0)
        return aicp_tb_cuda_main(&opts);
#endif
    rc = aicp_tb_run(&res, &opts, opts.quiet || opts.json ? NULL : stderr, &err);
    if (rc != 0) {
        fprintf(stderr, "aicp-trainbench: %s\n", err.msg);
        return aicp_tb_err_exit_status(rc);
    }
    if (!opts.json)
        aicp_tb_report_human(stdout, &opts, &res);
    aicp_tb_report_json(stdout, &opts, &res);
    aicp_tb_result_free(&res);
    return 0;
}
