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

/* What a benchmark's progress display has shown so far. */
struct aicp_vprogress {
    int step;       /* the last trainbench step shown; -1: none */
    char line[512]; /* the last other line shown */
};
#define AICP_VPROGRESS_INIT {.step = -1, .line = ""}

/* Shows on stderr what is new in text (the latest lines of a benchmark's
 * output; a line ending in "@@" is one still being written, and skipped):
 * aicp-trainbench's steps not shown yet, else the latest line that
 * mentions images/sec if it differs from the last one shown. */
void aicp_vprogress_show(struct aicp_vprogress *pg, const char *node, const char *text);

#endif
