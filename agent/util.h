/* Small helpers shared by every area: a growable byte buffer, checked
 * allocation, whole-file reads, shell quoting and wiping secrets. */
#ifndef AICP_UTIL_H
#define AICP_UTIL_H

#include <stddef.h>
#include <stdarg.h>

struct aicp_err;

struct aicp_buf {
    char *data;   /* always NUL-terminated when non-NULL */
    size_t len;
    size_t cap;
};

#define AICP_BUF_INIT { NULL, 0, 0 }

int aicp_buf_append(struct aicp_buf *b, const void *data, size_t len);
int aicp_buf_puts(struct aicp_buf *b, const char *s);
int aicp_buf_printf(struct aicp_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int aicp_buf_vprintf(struct aicp_buf *b, const char *fmt, va_list ap);
/* Appends s quoted for POSIX sh ('...' with embedded quotes escaped). */
int aicp_buf_shquote(struct aicp_buf *b, const char *s);
/* Gives the buffer's string to the caller (never NULL: "" when empty). */
char *aicp_buf_steal(struct aicp_buf *b);
/* Appends a Unicode code point as UTF-8. */
int aicp_buf_utf8(struct aicp_buf *b, unsigned long cp);
/* Appends a double as Python's repr writes it (1.0, 0.1, 1e+16); json
 * spells the non-finite ones as Python's json module does (NaN, Infinity),
 * else as repr (nan, inf). */
int aicp_buf_pyfloat(struct aicp_buf *b, double d, int json);
void aicp_buf_free(struct aicp_buf *b);
/* Like aicp_buf_free but wipes the bytes first (buffers that held secrets). */
void aicp_buf_free_secret(struct aicp_buf *b);

/* Reads a whole file; *out is NUL-terminated and owned by the caller. */
int aicp_read_file(char **out, size_t *len, const char *path, struct aicp_err *err);

/* Frees s after wiping it. NULL is fine. */
void aicp_free_secret(char *s);

/* Returns a newly allocated copy, or NULL on allocation failure / NULL input. */
char *aicp_strdup(const char *s);
char *aicp_strndup(const char *s, size_t n);

/* A run's id: UTC time and 4 random bytes, "20261129T162800Z-3f9a01c2". */
void aicp_run_id(char *buf, size_t cap);

/* Monotonic clock in seconds. */
double aicp_now(void);

/* 1 when s begins with prefix. */
int aicp_startswith(const char *s, const char *prefix);
/* 1 when text has a line that is exactly word (a here-document delimiter
 * would end there). */
int aicp_has_line(const char *text, const char *word);

#endif
