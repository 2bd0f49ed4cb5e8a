/* The one table of error names and the helpers that fill struct aicp_err. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "err.h"

int aicp_err_set(struct aicp_err *err, int code, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

void aicp_err_prefix(struct aicp_err *err, const char *fmt, ...)
{
    if (err == NULL)
        return;
    char old[sizeof(err->msg)];
    memcpy(old, err->msg, sizeof(old));
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(err->msg) - 3)
        return;
    size_t used = (size_t)n;
    size_t room = sizeof(err->msg) - used - 2;
    size_t oldlen = strnlen(old, sizeof(old) - 1);
    if (oldlen > room - 1)
        oldlen = room - 1;
    memcpy(err->msg + used, ": ", 2);
    memcpy(err->msg + used + 2, old, oldlen);
    err->msg[used + 2 + oldlen] = '\0';
}

void aicp_err_clear(struct aicp_err *err)
{
    if (err == NULL)
        return;
    err->code = 0;
    err->msg[0] = '\0';
}

const char *aicp_strerror(int code)
{
    switch (code) {
    case AICP_OK: return "success";
    case AICP_ENOMEM: return "out of memory";
    case AICP_EINVAL: return "invalid input";
    case AICP_EUSAGE: return "usage error";
    case AICP_EIO: return "I/O error";
    case AICP_EUNREACHABLE: return "host unreachable";
    case AICP_EREMOTE: return "remote error";
    case AICP_EFAILED: return "failed";
    case AICP_ETIMEOUT: return "timed out";
    case AICP_EUNDEF: return "undefined variable";
    case AICP_ENOTFOUND: return "not found";
    case AICP_EHOSTKEY: return "host key verification failed";
    case AICP_EAUTH: return "authentication failed";
    case AICP_ERECORDED: return "recorded for a batched read";
    }
    return "unknown error";
}

int aicp_err_exit_status(int code)
{
    switch (code) {
    case AICP_OK: return 0;
    case AICP_EUSAGE: return 64;
    case AICP_EINVAL:
    case AICP_EUNDEF: return 65;
    }
    return 1;
}
