/* Helpers shared by the system modules (sysctl, apt, service, systemd,
 * modprobe, mount): running a check or apply script through the host's
 * connection under ctx->become, turning a failed script into an error that
 * quotes the program's own message, and reading the tagged output that the
 * check scripts print ("@@AICP:tag=value" lines, with a file's bytes last).
 */
#ifndef AICP_SYSUTIL_H
#define AICP_SYSUTIL_H

#include <stddef.h>

#include <jansson.h>

#include "conn.h"
#include "err.h"
#include "module.h"
#include "util.h"

#define AICP_SYS_TAG "@@AICP:"

/* Runs script on the task's host (under sudo when the task asks for
 * become). A non-zero exit status is in res->rc, not an error. */
int aicp_sys_exec(struct aicp_ctx *ctx, const char *script, struct aicp_exec_result *res,
                  struct aicp_err *err);

/* Trims trailing whitespace off a copy-free view [s, s+*len). */
void aicp_sys_rtrim(const char *s, size_t *len);

/* Returns AICP_EFAILED with "<what>: <the script's stderr, else stdout>",
 * the way Ansible modules quote the program that failed. */
int aicp_sys_fail(struct aicp_err *err, const struct aicp_exec_result *res, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Finds the line "@@AICP:<tag>=..." in out and returns the text after '='
 * up to the end of that line (length in *len); NULL when absent. */
const char *aicp_sys_field(const char *out, const char *tag, size_t *len);

/* The integer value of a field, or dflt when it is absent or not a number. */
long long aicp_sys_field_int(const char *out, const char *tag, long long dflt);

/* The text between the line "@@AICP:<tag>=..." and the next tagged line
 * (or the end of out when last is set: a file's bytes go last so that
 * nothing in them can be mistaken for a tag). */
const char *aicp_sys_section(const char *out, const char *tag, int last, size_t *len);

/* Sets a result key when the executor gave the module a result object. */
void aicp_sys_result(struct aicp_ctx *ctx, const char *key, json_t *value);

/* Walks a text line by line: returns 1 and the line (without '\n') while
 * there is one. */
int aicp_sys_next_line(const char **p, const char *end, const char **line, size_t *len);

/* Appends word shell-quoted, followed by a space, to b. */
int aicp_sys_word(struct aicp_buf *b, const char *word);

#endif
