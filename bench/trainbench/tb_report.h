/* aicp-trainbench's result output: the one-line JSON record and the human
 * line "Total images/sec = N" that the validate module's throughput parser
 * reads. */
#ifndef AICP_TB_REPORT_H
#define AICP_TB_REPORT_H

#include <stdio.h>

#include "tb_cli.h"
#include "tb_run.h"

void aicp_tb_report_json(FILE *out, const struct aicp_tb_opts *opts,
                         const struct aicp_tb_result *res);
void aicp_tb_report_human(FILE *out, const struct aicp_tb_opts *opts,
                          const struct aicp_tb_result *res);

#endif
