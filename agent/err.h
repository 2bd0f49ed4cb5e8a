/* Error codes and the error record every fallible function fills.
 * Functions return 0 or a negative AICP_E* code and describe the failure,
 * naming the thing (host, file:line:col, resource), in a caller's aicp_err. */
#ifndef AICP_ERR_H
#define AICP_ERR_H

#include <stdarg.h>

enum aicp_errcode {
    AICP_OK = 0,
    AICP_ENOMEM = -1,      /* out of memory */
    AICP_EINVAL = -2,      /* invalid input: YAML, inventory, schema, template (exit 65) */
    AICP_EUSAGE = -3,      /* command-line usage (exit 64) */
    AICP_EIO = -4,         /* local I/O */
    AICP_EUNREACHABLE = -5,/* host could not be reached or the connection died */
    AICP_EREMOTE = -6,     /* remote command or protocol failed */
    AICP_EFAILED = -7,     /* a module or task failed */
    AICP_ETIMEOUT = -8,
    AICP_EUNDEF = -9,      /* undefined template variable (also invalid input) */
    AICP_ENOTFOUND = -10,
    AICP_EHOSTKEY = -11,   /* unknown or changed SSH host key */
    AICP_EAUTH = -12,      /* authentication refused */
    AICP_ERECORDED = -13,  /* an exec recorded for a batched read, not run (conn.h) */
};

struct aicp_err {
    int code;
    char msg[1024];
};

/* Sets code and a printf-style message; returns code so callers can
 * write `return aicp_err_set(err, AICP_EINVAL, "...")`. err may be NULL. */
int aicp_err_set(struct aicp_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Puts "prefix: " in front of the current message (e.g. a file:line:col). */
void aicp_err_prefix(struct aicp_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void aicp_err_clear(struct aicp_err *err);

const char *aicp_strerror(int code);

/* Process exit status for an error code, as DESIGN.md fixes them. */
int aicp_err_exit_status(int code);

#endif
