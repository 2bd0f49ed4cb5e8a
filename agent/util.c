/* Implementation of the shared helpers in util.h. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
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
    /* Not realloc: it would free the old block unwiped, and any buffer may
     * hold a secret. Copying costs what realloc's own copy would; the
     * doubling keeps it O(n) amortised. */
    char *p = malloc(cap);
    if (p == NULL)
        return AICP_ENOMEM;
    if (b->data != NULL) {
        memcpy(p, b->data, b->len + 1);
        OPENSSL_cleanse(b->data, b->cap);
        free(b->data);
    }
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
    /* Any buffer may have held a secret (a rendered template, a command's
     * output): wiping it costs little next to what filled it. The whole
     * block, not only len bytes: a buffer emptied for reuse (len = 0) still
     * holds what it had. */
    if (b->data != NULL)
        OPENSSL_cleanse(b->data, b->cap);
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void aicp_buf_free_secret(struct aicp_buf *b)
{
    aicp_buf_free(b); /* which wipes every buffer now */
}

int aicp_read_file(char **out, size_t *len, const char *path, struct aicp_err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return aicp_err_set(err, AICP_EIO, "%s: %s", path, strerror(errno));
    /* Unbuffered: stdio's own buffer would be freed at fclose unwiped, and
     * the file may be a password file or a decrypted vault. The chunk is
     * large, so this costs no extra read calls. */
    setvbuf(f, NULL, _IONBF, 0);
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
    OPENSSL_cleanse(chunk, sizeof(chunk)); /* the file may be a secret */
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

int aicp_has_line(const char *text, const char *word)
{
    size_t wl = strlen(word);
    for (const char *p = text; (p = strstr(p, word)) != NULL; p += wl) {
        if ((p == text || p[-1] == '\n') && (p[wl] == '\n' || p[wl] == '\0'))
            return 1;
    }
    return 0;
}

int aicp_buf_utf8(struct aicp_buf *b, unsigned long cp)
{
    unsigned char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (unsigned char)(0xC0 | (cp >> 6));
        u[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (unsigned char)(0xE0 | (cp >> 12));
        u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (unsigned char)(0xF0 | ((cp >> 18) & 0x07));
        u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return aicp_buf_append(b, u, n);
}

int aicp_buf_pyfloat(struct aicp_buf *b, double d, int json)
{
    if (d != d)
        return aicp_buf_puts(b, json ? "NaN" : "nan");
    if (d - d != 0)
        return aicp_buf_puts(b, d > 0 ? (json ? "Infinity" : "inf") : (json ? "-Infinity" : "-inf"));
    /* The shortest digits that read back as d, as Python's repr finds them. */
    char tmp[64];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    char digits[32];
    size_t nd = 0;
    const char *p = tmp;
    int neg = *p == '-';
    if (neg)
        p++;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9' && nd < sizeof(digits) - 1)
            digits[nd++] = *p;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    int exp = *p == 'e' ? (int)strtol(p + 1, NULL, 10) : 0;
    int rc = neg ? aicp_buf_puts(b, "-") : 0;
    if (exp < -4 || exp >= 16) {
        rc |= aicp_buf_append(b, digits, 1);
        if (nd > 1) {
            rc |= aicp_buf_puts(b, ".");
            rc |= aicp_buf_puts(b, digits + 1);
        }
        rc |= aicp_buf_printf(b, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    } else if (exp >= 0) {
        for (int i = 0; i <= exp; i++)
            rc |= aicp_buf_append(b, (size_t)i < nd ? &digits[i] : "0", 1);
        rc |= aicp_buf_puts(b, ".");
        rc |= aicp_buf_puts(b, (size_t)exp + 1 < nd ? digits + exp + 1 : "0");
    } else {
        rc |= aicp_buf_puts(b, "0.");
        for (int i = 0; i < -exp - 1; i++)
            rc |= aicp_buf_puts(b, "0");
        rc |= aicp_buf_puts(b, digits);
    }
    return rc ? AICP_ENOMEM : 0;
}

void aicp_run_id(char *buf, size_t cap)
{
    unsigned char rnd[4] = {0};
    time_t now = time(NULL);
    struct tm tm;
    char ts[32] = "";

    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        memset(rnd, 0, sizeof rnd);
    if (gmtime_r(&now, &tm) != NULL)
        strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
    snprintf(buf, cap, "%s-%02x%02x%02x%02x", ts, rnd[0], rnd[1], rnd[2], rnd[3]);
}
