/* The validate module's bare benchmark run, detached on the node so that
 * its progress can be shown while it runs (modules/validate_run.c). */
#ifndef AICP_VALIDATE_RUN_H
#define AICP_VALIDATE_RUN_H

#include "conn.h"
#include "err.h"
#include "module.h"

/* Runs script on the task's host detached, its stdout and stderr into
 * files in dir (a private temp dir on the node, which the caller removes
 * afterwards), and polls it every 2 s, printing each new progress line to
 * stderr as "  [node] step 40/100  1234.56 images/sec". Fills res as
 * aicp_sys_exec(ctx, script, ...) would have: the script's stdout, stderr
 * and exit status; 124 when it ran well past timeout_s and was killed. */
int aicp_validate_run(struct aicp_ctx *ctx, const char *node, const char *dir, const char *script,
                      long long timeout_s, struct aicp_exec_result *res, struct aicp_err *err);

#endif
