/* The helpers in sysutil.h that the system modules share: running their
 * scripts on the host, quoting a failed program's message, and reading the
 * tagged output of check scripts. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sysutil.h"

/* Runs script on the task's host (under sudo when the task asks for
 * become). A non-zero exit status is in res->rc, not an error. */
int aicp_sys_exec(struct aicp_ctx *ctx, const char *script, struct aicp_exec_result *res,
                  struct aicp_err *err)
{
    memset(res, 0, sizeof(*res));
    if (ctx == NULL || ctx->conn == NULL)
        return aicp_err_set(err, AICP_EINVAL, "%s: this module needs a connection to the host",
                            ctx && ctx->host ? ctx->host : "?");
    return aicp_conn_exec(ctx->conn, script, NULL, 0, ctx->become, res, err);
}

/* Trims trailing whitespace off a copy-free view [s, s+*len). */
void aicp_sys_rtrim(const char *s, size_t *len)
{
    while (*len > 0 && (s[*len - 1] == '\n' || s[*len - 1] == '\r' || s[*len - 1] == ' ' ||
                        s[*len - 1] == '\t'))
        (*len)--;
}

/* AICP_EFAILED with "<what>: <stderr or stdout of the script>", the way
 * Ansible modules quote the failing program. */
int aicp_sys_fail(struct aicp_err *err, const struct aicp_exec_result *res, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    const char *msg = "";
    size_t len = 0;
    if (res && res->err && res->err_len) {
        msg = res->err;
        len = res->err_len;
        aicp_sys_rtrim(msg, &len);
    }
    if (len == 0 && res && res->out) {
        msg = res->out;
        len = res->out_len;
        aicp_sys_rtrim(msg, &len);
    }
    if (len > 700)
        len = 700;
    if (len == 0)
        return aicp_err_set(err, AICP_EFAILED, "%s (rc=%d)", what, res ? res->rc : -1);
    return aicp_err_set(err, AICP_EFAILED, "%s: %.*s", what, (int)len, msg);
}

/* Finds the line "@@AICP:<tag>=..." in out and returns the text after '='
 * up to the end of that line (length in *len); NULL when absent. */
const char *aicp_sys_field(const char *out, const char *tag, size_t *len)
{
    size_t tl = strlen(tag);
    for (const char *p = out; p && *p;) {
        if (strncmp(p, AICP_SYS_TAG, sizeof(AICP_SYS_TAG) - 1) == 0 &&
            strncmp(p + sizeof(AICP_SYS_TAG) - 1, tag, tl) == 0 &&
            p[sizeof(AICP_SYS_TAG) - 1 + tl] == '=') {
            const char *v = p + sizeof(AICP_SYS_TAG) + tl;
            const char *nl = strchr(v, '\n');
            *len = nl ? (size_t)(nl - v) : strlen(v);
            return v;
        }
        const char *nl = strchr(p, '\n');
        p = nl ? nl + 1 : NULL;
    }
    return NULL;
}

/* The integer value of a field, or dflt when it is absent or not a number. */
long long aicp_sys_field_int(const char *out, const char *tag, long long dflt)
{
    size_t len;
    const char *v = aicp_sys_field(out, tag, &len);
    if (v == NULL || len == 0 || len > 30)
        return dflt;
    char tmp[32];
    memcpy(tmp, v, len);
    tmp[len] = '\0';
    char *end;
    long long n = strtoll(tmp, &end, 10);
    return *end == '\0' || *end == ':' ? n : dflt;
}

/* The text between the line "@@AICP:<tag>=..." and the next tagged line
 * (or the end of out when last is set: a file's bytes go last so that
 * nothing in them can be mistaken for a tag). */
const char *aicp_sys_section(const char *out, const char *tag, int last, size_t *len)
{
    size_t flen;
    const char *f = aicp_sys_field(out, tag, &flen);
    if (f == NULL)
        return NULL;
    const char *start = f + flen;
    if (*start == '\n')
        start++;
    if (last) {
        *len = strlen(start);
        return start;
    }
    const char *end = strstr(start, "\n" AICP_SYS_TAG);
    if (end == NULL)
        end = start + strlen(start);
    else
        end++;
    *len = (size_t)(end - start);
    return start;
}

/* Sets a result key when the executor gave the module a result object. */
void aicp_sys_result(struct aicp_ctx *ctx, const char *key, json_t *value)
{
    if (ctx && ctx->result && value)
        json_object_set_new(ctx->result, key, value);
    else
        json_decref(value);
}

/* Walks a text line by line: returns 1 and the line (without '\n') while
 * there is one. */
int aicp_sys_next_line(const char **p, const char *end, const char **line, size_t *len)
{
    if (*p >= end)
        return 0;
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    *line = *p;
    *len = nl ? (size_t)(nl - *p) : (size_t)(end - *p);
    *p = nl ? nl + 1 : end;
    return 1;
}

/* Appends "'word'" followed by a space to b. */
int aicp_sys_word(struct aicp_buf *b, const char *word)
{
    int rc = aicp_buf_shquote(b, word);
    return rc ? rc : aicp_buf_puts(b, " ");
}
