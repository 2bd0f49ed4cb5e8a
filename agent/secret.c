/* The secret values of a run and their masking (see secret.h). Values are
 * kept longest first, so that a secret containing another is masked whole;
 * the set is small (tens of values), so a scan per value is cheap next to
 * the I/O the masked text is headed for. */
#include "config.h"

#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "err.h"
#include "secret.h"
#include "util.h"

struct secret_val {
    char *s;
    size_t len;
};

struct aicp_secrets {
    pthread_mutex_t lock;
    struct secret_val *v;
    size_t n, cap;
};

int aicp_secrets_new(struct aicp_secrets **out)
{
    struct aicp_secrets *s = calloc(1, sizeof *s);
    *out = NULL;
    if (s == NULL)
        return AICP_ENOMEM;
    pthread_mutex_init(&s->lock, NULL);
    *out = s;
    return 0;
}

void aicp_secrets_free(struct aicp_secrets *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++) {
        OPENSSL_cleanse(s->v[i].s, s->v[i].len);
        free(s->v[i].s);
    }
    free(s->v);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* Caller holds the lock. */
static int known(const struct aicp_secrets *s, const char *value, size_t len)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].len == len && memcmp(s->v[i].s, value, len) == 0)
            return 1;
    return 0;
}

int aicp_secrets_add(struct aicp_secrets *s, const char *value, size_t len)
{
    int rc = 0;

    if (s == NULL || value == NULL || len < AICP_SECRET_MIN)
        return 0;
    pthread_mutex_lock(&s->lock);
    if (known(s, value, len))
        goto out;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        struct secret_val *nv = realloc(s->v, cap * sizeof *nv);
        if (nv == NULL) {
            rc = AICP_ENOMEM;
            goto out;
        }
        s->v = nv;
        s->cap = cap;
    }
    char *copy = aicp_strndup(value, len);
    if (copy == NULL) {
        rc = AICP_ENOMEM;
        goto out;
    }
    /* Insert keeping the longest first. */
    size_t at = 0;
    while (at < s->n && s->v[at].len >= len)
        at++;
    memmove(&s->v[at + 1], &s->v[at], (s->n - at) * sizeof *s->v);
    s->v[at].s = copy;
    s->v[at].len = len;
    s->n++;
out:
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int aicp_secrets_add_json(struct aicp_secrets *s, const json_t *v)
{
    char num[64];
    int rc = 0;

    if (s == NULL || v == NULL)
        return 0;
    switch (json_typeof(v)) {
    case JSON_STRING:
        return aicp_secrets_add(s, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return aicp_secrets_add(s, num, strlen(num));
    case JSON_REAL:
        snprintf(num, sizeof num, "%.17g", json_real_value(v));
        return aicp_secrets_add(s, num, strlen(num));
    case JSON_OBJECT: {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) {
            if ((rc = aicp_secrets_add_json(s, x)) != 0)
                return rc;
        }
        return 0;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) {
            if ((rc = aicp_secrets_add_json(s, x)) != 0)
                return rc;
        }
        return 0;
    }
    default:
        return 0;
    }
}

size_t aicp_secrets_count(const struct aicp_secrets *s)
{
    size_t n;
    if (s == NULL)
        return 0;
    pthread_mutex_lock((pthread_mutex_t *)&s->lock);
    n = s->n;
    pthread_mutex_unlock((pthread_mutex_t *)&s->lock);
    return n;
}

/* First occurrence of any secret in text[0..len): its offset and index. */
static int find_first(const struct aicp_secrets *s, const char *text, size_t len, size_t *off,
                      size_t *which)
{
    int found = 0;
    for (size_t i = 0; i < s->n; i++) {
        const char *p = memmem(text, len, s->v[i].s, s->v[i].len);
        if (p != NULL && (!found || (size_t)(p - text) < *off)) {
            *off = (size_t)(p - text);
            *which = i;
            found = 1;
        }
    }
    return found;
}

int aicp_secrets_found(const struct aicp_secrets *s, const char *text, size_t len)
{
    size_t off, which;
    int found;
    if (s == NULL || text == NULL)
        return 0;
    pthread_mutex_lock((pthread_mutex_t *)&s->lock);
    found = find_first(s, text, len, &off, &which);
    pthread_mutex_unlock((pthread_mutex_t *)&s->lock);
    return found;
}

/* Appends text[0..len) to out with every secret masked. At each position
 * the longest secret wins (they are sorted longest first, and ties at one
 * offset keep the earlier, longer one). */
static int mask_into(const struct aicp_secrets *s, struct aicp_buf *out, const char *text,
                     size_t len)
{
    size_t pos = 0, off, which;
    int rc = 0;

    while (rc == 0 && pos < len && find_first(s, text + pos, len - pos, &off, &which)) {
        rc |= aicp_buf_append(out, text + pos, off);
        rc |= aicp_buf_puts(out, AICP_SECRET_MASK);
        pos += off + s->v[which].len;
    }
    if (rc == 0 && pos < len)
        rc = aicp_buf_append(out, text + pos, len - pos);
    if (rc == 0 && out->data == NULL)
        rc = aicp_buf_puts(out, "");
    return rc ? AICP_ENOMEM : 0;
}

char *aicp_secrets_mask(const struct aicp_secrets *s, const char *text)
{
    struct aicp_buf b = AICP_BUF_INIT;
    int rc;

    if (text == NULL)
        return NULL;
    if (s == NULL)
        return aicp_strdup(text);
    pthread_mutex_lock((pthread_mutex_t *)&s->lock);
    rc = mask_into(s, &b, text, strlen(text));
    pthread_mutex_unlock((pthread_mutex_t *)&s->lock);
    if (rc != 0) {
        aicp_buf_free_secret(&b);
        return NULL;
    }
    return aicp_buf_steal(&b);
}

int aicp_secrets_mask_buf(const struct aicp_secrets *s, struct aicp_buf *b)
{
    struct aicp_buf out = AICP_BUF_INIT;
    int rc;

    if (s == NULL || b->data == NULL)
        return 0;
    pthread_mutex_lock((pthread_mutex_t *)&s->lock);
    if (!find_first(s, b->data, b->len, &(size_t){0}, &(size_t){0})) {
        pthread_mutex_unlock((pthread_mutex_t *)&s->lock);
        return 0;
    }
    rc = mask_into(s, &out, b->data, b->len);
    pthread_mutex_unlock((pthread_mutex_t *)&s->lock);
    if (rc != 0) {
        aicp_buf_free_secret(&out);
        return rc;
    }
    aicp_buf_free_secret(b);
    *b = out;
    return 0;
}

static json_t *mask_str(const struct aicp_secrets *s, const char *text, size_t len)
{
    struct aicp_buf b = AICP_BUF_INIT;
    json_t *r = NULL;
    if (mask_into(s, &b, text, len) == 0)
        r = json_stringn(b.data, b.len);
    aicp_buf_free_secret(&b);
    return r;
}

/* Caller holds the lock. 1 when v is a list of strings none of which holds
 * a secret, but whose concatenation (as is, or one per line) does: a secret
 * cut into pieces too short to mask one by one (`pw | list`), or a
 * multi-line one split into lines. */
static int spans_items(const struct aicp_secrets *s, const json_t *v)
{
    struct aicp_buf flat = AICP_BUF_INIT, lines = AICP_BUF_INIT;
    size_t i, off, which;
    json_t *x;
    int found = 0, rc = 0;

    if (json_array_size(v) < 2)
        return 0;
    json_array_foreach(v, i, x) {
        if (!json_is_string(x) ||
            find_first(s, json_string_value(x), json_string_length(x), &off, &which))
            goto out;
        rc |= aicp_buf_append(&flat, json_string_value(x), json_string_length(x));
        rc |= aicp_buf_append(&lines, json_string_value(x), json_string_length(x));
        rc |= aicp_buf_puts(&lines, "\n");
    }
    /* Out of memory: mask it, the safe side. */
    found = rc != 0 || (flat.data != NULL && find_first(s, flat.data, flat.len, &off, &which)) ||
            (lines.data != NULL && find_first(s, lines.data, lines.len, &off, &which));
out:
    aicp_buf_free_secret(&flat);
    aicp_buf_free_secret(&lines);
    return found;
}

/* Caller holds the lock. */
static json_t *mask_json(const struct aicp_secrets *s, const json_t *v)
{
    json_t *r = NULL;

    switch (json_typeof(v)) {
    case JSON_STRING:
        return mask_str(s, json_string_value(v), json_string_length(v));
    case JSON_OBJECT: {
        const char *k;
        json_t *x;
        if ((r = json_object()) == NULL)
            return NULL;
        json_object_foreach((json_t *)v, k, x) {
            json_t *mk = mask_str(s, k, strlen(k));
            json_t *mx = mask_json(s, x);
            int bad = mk == NULL || mx == NULL ||
                      json_object_set_new(r, json_string_value(mk), mx) != 0;
            json_decref(mk);
            if (bad) {
                json_decref(r);
                return NULL;
            }
        }
        return r;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *x;
        if (spans_items(s, v))
            return json_string(AICP_SECRET_MASK);
        if ((r = json_array()) == NULL)
            return NULL;
        json_array_foreach(v, i, x) {
            if (json_array_append_new(r, mask_json(s, x)) != 0) {
                json_decref(r);
                return NULL;
            }
        }
        return r;
    }
    default:
        return json_deep_copy(v);
    }
}

json_t *aicp_secrets_mask_json(const struct aicp_secrets *s, const json_t *v)
{
    json_t *r;
    if (v == NULL)
        return NULL;
    if (s == NULL)
        return json_deep_copy(v);
    pthread_mutex_lock((pthread_mutex_t *)&s->lock);
    r = mask_json(s, v);
    pthread_mutex_unlock((pthread_mutex_t *)&s->lock);
    return r;
}

/* jansson's allocator with a wipe on free: every block it frees may have
 * held a password or a decrypted vault value. */
static void wiping_free(void *p)
{
    if (p == NULL)
        return;
    OPENSSL_cleanse(p, malloc_usable_size(p));
    free(p);
}

void aicp_secrets_wipe_json_memory(void)
{
    json_set_alloc_funcs(malloc, wiping_free);
}
