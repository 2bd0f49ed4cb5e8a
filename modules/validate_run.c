/* The validate module's bare benchmark run, detached on the node. One
 * exec over the node's connection returns only when its command ends, so
 * the benchmark (bare_script's script, uploaded into the module's private
 * temp dir) is started in the background with its stdout, stderr and exit
 * status going to files there, and a short exec every 2 s reads the exit
 * status and the last lines of both outputs. Each new progress line goes
 * to stderr while the benchmark runs: aicp-trainbench's "step S/T ...
 * images/sec" lines, or for other benchmarks the latest line that mentions
 * images/sec. When it has ended, its whole stdout and stderr are read back
 * so that the caller parses and judges exactly what a plain exec would
 * have returned. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sysutil.h"
#include "util.h"
#include "validate_run.h"

#define POLL_S 2.0
/* The script's own `timeout` ends the benchmark (status 124); killing it
 * from here is only the fallback, a little after that. */
#define GRACE_S 30.0
#define TAIL_N 5

static void sleep_s(double s)
{
    struct timespec ts;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static const char *find_ips(const char *line)
{
    for (const char *p = line; *p; p++)
        if (strncasecmp(p, "images/sec", 10) == 0)
            return p;
    return NULL;
}

/* Shows one aicp-trainbench progress line ("step 40/100 (warm-up)  loss
 * 2.3026  1234.56 images/sec", tb_run.c) if it is a step not shown yet;
 * returns 0 when line is not one. */
static int show_step(struct aicp_vprogress *pg, const char *node, const char *line)
{
    int step, total;
    const char *ips = strstr(line, " images/sec"), *num;

    if (sscanf(line, "step %d/%d", &step, &total) != 2 || ips == NULL)
        return 0;
    for (num = ips; num > line && (isdigit((unsigned char)num[-1]) || num[-1] == '.'); num--)
        ;
    if (step > pg->step && num < ips) {
        fprintf(stderr, "  [%s] step %d/%d%s  %.*s images/sec\n", node, step, total,
                strstr(line, "(warm-up)") ? " (warm-up)" : "", (int)(ips - num), num);
        fflush(stderr);
        pg->step = step;
    }
    return 1;
}

/* text here: the tails of stdout and stderr, each closed by a line "@@". */
void aicp_vprogress_show(struct aicp_vprogress *pg, const char *node, const char *text)
{
    char line[512], latest[512] = "";
    int steps = 0;

    while (*text) {
        size_t n = strcspn(text, "\n");
        const char *next = text + n + (text[n] == '\n');
        if (n >= 2 && strncmp(text + n - 2, "@@", 2) == 0) {
            text = next;
            continue;
        }
        snprintf(line, sizeof(line), "%.*s", (int)n, text);
        text = next;
        while (*line && isspace((unsigned char)line[strlen(line) - 1]))
            line[strlen(line) - 1] = '\0';
        if (show_step(pg, node, line))
            steps = 1;
        else if (find_ips(line) != NULL)
            snprintf(latest, sizeof(latest), "%s", line + strspn(line, " \t"));
    }
    if (!steps && *latest && strcmp(latest, pg->line) != 0) {
        fprintf(stderr, "  [%s] %s\n", node, latest);
        fflush(stderr);
        snprintf(pg->line, sizeof(pg->line), "%s", latest);
    }
}

/* Ends the benchmark's process group (setsid made it one), else just
 * the wrapper; best effort. */
static void kill_run(struct aicp_ctx *ctx, const char *pid)
{
    struct aicp_buf b = AICP_BUF_INIT;
    struct aicp_exec_result kr;
    struct aicp_err kerr = {0};

    if (*pid == '\0')
        return;
    if (aicp_buf_printf(&b,
                        "kill -TERM -- -%s 2>/dev/null || kill -TERM %s 2>/dev/null\n"
                        "sleep 2; kill -KILL -- -%s 2>/dev/null; true\n",
                        pid, pid, pid) == 0 &&
        aicp_sys_exec(ctx, b.data, &kr, &kerr) == 0)
        aicp_exec_result_clear(&kr);
    aicp_buf_free(&b);
}

int aicp_validate_run(struct aicp_ctx *ctx, const char *node, const char *dir, const char *script,
                      long long timeout_s, struct aicp_exec_result *res, struct aicp_err *err)
{
    struct aicp_buf qd = AICP_BUF_INIT, path = AICP_BUF_INIT, b = AICP_BUF_INIT;
    struct aicp_exec_result pr;
    struct aicp_vprogress pg = AICP_VPROGRESS_INIT;
    char pid[32] = "";
    double deadline, wait = 0.25;
    int rc, code = -1;

    memset(res, 0, sizeof(*res));
    memset(&pr, 0, sizeof(pr));
    if (aicp_buf_shquote(&qd, dir) != 0 || aicp_buf_printf(&path, "%s/run.sh", dir) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = aicp_conn_put(ctx->conn, path.data, script, strlen(script), 0700, NULL, NULL,
                            ctx->become, err)) != 0) {
        aicp_err_prefix(err, "%s: writing the benchmark's script %s", node, path.data);
        goto out;
    }
    /* rc appears (renamed into place) only once the exit status is in it;
     * all of the wrapper's descriptors are redirected, or the exec would
     * wait for it. */
    if (aicp_buf_printf(&b,
                        "d=%s; export d\n"
                        "w='sh \"$d/run.sh\" >\"$d/out\" 2>\"$d/err\"; echo $? >\"$d/rc.new\"; "
                        "mv \"$d/rc.new\" \"$d/rc\"'\n"
                        "if command -v setsid >/dev/null 2>&1; then\n"
                        "  setsid sh -c \"$w\" </dev/null >/dev/null 2>&1 &\n"
                        "else nohup sh -c \"$w\" </dev/null >/dev/null 2>&1 & fi\n"
                        "echo $!\n",
                        qd.data) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = aicp_sys_exec(ctx, b.data, &pr, err)) != 0)
        goto out;
    if (pr.rc != 0) {
        rc = aicp_sys_fail(err, &pr, "%s: cannot start the benchmark", node);
        goto out;
    }
    snprintf(pid, sizeof(pid), "%.*s", (int)strspn(pr.out ? pr.out : "", "0123456789"),
             pr.out ? pr.out : "");
    aicp_exec_result_clear(&pr);
    deadline = aicp_now() + (double)timeout_s + GRACE_S;
    aicp_buf_free(&b);
    if (aicp_buf_printf(&b,
                        "d=%s\ncat \"$d/rc\" 2>/dev/null || echo -\n"
                        "tail -n %d \"$d/out\" 2>/dev/null; echo @@\n"
                        "tail -n %d \"$d/err\" 2>/dev/null; echo @@\n",
                        qd.data, TAIL_N, TAIL_N) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    while (code < 0) {
        /* soon at first, so that a benchmark that fails at once does */
        sleep_s(wait);
        wait = wait * 2 < POLL_S ? wait * 2 : POLL_S;
        if ((rc = aicp_sys_exec(ctx, b.data, &pr, err)) != 0)
            goto out;
        const char *o = pr.out ? pr.out : "";
        if (isdigit((unsigned char)*o))
            code = (int)strtol(o, NULL, 10);
        aicp_vprogress_show(&pg, node, o + strcspn(o, "\n") + (o[strcspn(o, "\n")] == '\n'));
        aicp_exec_result_clear(&pr);
        if (code < 0 && aicp_now() > deadline) {
            kill_run(ctx, pid);
            code = 124;
        }
    }
    aicp_buf_free(&b);
    if (aicp_buf_printf(&b, "d=%s\ncat \"$d/out\"; cat \"$d/err\" >&2\n", qd.data) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = aicp_sys_exec(ctx, b.data, res, err)) != 0)
        goto out;
    res->rc = code;
out:
    if (rc != 0 && code < 0)
        kill_run(ctx, pid);
    aicp_exec_result_clear(&pr);
    aicp_buf_free(&qd);
    aicp_buf_free(&path);
    aicp_buf_free(&b);
    return rc;
}
