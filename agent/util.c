/* Implementation of the shared helpers in util.h. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "err.h"
#include "util.h"

static int buf_reserve(struct aicp_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) {
        if (cap > ((size_t)-1) / 2)
            return AICP_ENOMEM;
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return AICP_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int aicp_buf_append(struct aicp_buf *b, const void *data, size_t len)
{
    if (buf_reserve(b, len) != 0)
        return AICP_ENOMEM;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int aicp_buf_puts(struct aicp_buf *b, const char *s)
{
    return aicp_buf_append(b, s, strlen(s));
}

int aicp_buf_vprintf(struct aicp_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return AICP_EINVAL;
    if (buf_reserve(b, (size_t)n) != 0)
        return AICP_ENOMEM;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int aicp_buf_printf(struct aicp_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = aicp_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

int aicp_buf_shquote(struct aicp_buf *b, const char *s)
{
    int rc = aicp_buf_puts(b, "'");
    for (const char *p = s; rc == 0 && *p; p++) {
        if (*p == '\'')
            rc = aicp_buf_puts(b, "'\\''");
        else
            rc = aicp_buf_append(b, p, 1);
    }
    if (rc == 0)
        rc = aicp_buf_puts(b, "'");
    return rc;
}

char *aicp_buf_steal(struct aicp_buf *b)
{
    char *p = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    if (p == NULL)
        p = calloc(1, 1);
    return p;
}

void aicp_buf_free(struct aicp_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void aicp_buf_free_secret(struct aicp_buf *b)
{
    if (b->data)
        OPENSSL_cleanse(b->data, b->cap);
    aicp_buf_free(b);
}

int aicp_read_file(char **out, size_t *len, const char *path, struct aicp_err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return aicp_err_set(err, AICP_EIO, "%s: %s", path, strerror(errno));
    struct aicp_buf b = AICP_BUF_INIT;
    char chunk[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (aicp_buf_append(&b, chunk, n) != 0) {
            rc = aicp_err_set(err, AICP_ENOMEM, "%s: out of memory", path);
            break;
        }
    }
    if (rc == 0 && ferror(f))
        rc = aicp_err_set(err, AICP_EIO, "%s: read error", path);
    fclose(f);
    if (rc != 0) {
        aicp_buf_free(&b);
        return rc;
    }
    if (len)
        *len = b.len;
    *out = aicp_buf_steal(&b);
    return *out ? 0 : aicp_err_set(err, AICP_ENOMEM, "out of memory");
}

void aicp_free_secret(char *s)
{
    if (s == NULL)
        return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

char *aicp_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

char *aicp_strndup(const char *s, size_t n)
{
    return s ? strndup(s, n) : NULL;
}

double aicp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int aicp_startswith(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}
