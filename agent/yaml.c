/* YAML to jansson, typed the way Ansible's PyYAML-based loader types it.
 *
 * libyaml's event parser drives a small composer with an explicit stack (so
 * deep nesting cannot overflow the C stack). Plain scalars are resolved with
 * PyYAML's YAML 1.1 implicit resolvers (bool, int incl. 0b/0x/leading-0
 * octal/sexagesimal, float, null; timestamps stay strings), quoted scalars
 * stay strings, anchors/aliases share the anchored node (as PyYAML shares
 * the Python object) with a cap on the total expanded size against
 * "billion laughs", and `<<` merge keys follow PyYAML's flatten_mapping. The
 * srcmap records where each container and string came from so that later
 * errors can point at file:line:col.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <yaml.h> /* libyaml: agent/ is an -iquote directory, so this is not ours */

#include "err.h"
#include "secret.h"
#include "util.h"
#include "vault.h"
#include "yaml.h"

/* Expanded nodes (aliases counted at their full size) per document. */
#define YAML_MAX_EXPANDED 1000000L
/* Nesting depth; PyYAML hits Python's recursion limit near here too. */
#define YAML_MAX_DEPTH 512

struct srcmap_entry {
    const json_t *node;
    struct aicp_loc loc;
    int unsafe;
};

struct aicp_srcmap {
    struct srcmap_entry *tab; /* open addressing, node == NULL is empty */
    size_t cap;
    size_t used;
    char **files;
    size_t nfiles;
    const struct aicp_vault *vault;  /* opens vaulted files and !vault values; borrowed */
    struct aicp_secrets *secrets;    /* where their plaintext is registered; borrowed */
};

void aicp_srcmap_set_vault(struct aicp_srcmap *map, const struct aicp_vault *vault,
                           struct aicp_secrets *secrets)
{
    map->vault = vault;
    map->secrets = secrets;
}

const struct aicp_vault *aicp_srcmap_vault(const struct aicp_srcmap *map)
{
    return map ? map->vault : NULL;
}

struct aicp_secrets *aicp_srcmap_secrets(const struct aicp_srcmap *map)
{
    return map ? map->secrets : NULL;
}

int aicp_srcmap_new(struct aicp_srcmap **out)
{
    struct aicp_srcmap *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return AICP_ENOMEM;
    *out = m;
    return 0;
}

void aicp_srcmap_free(struct aicp_srcmap *map)
{
    if (map == NULL)
        return;
    for (size_t i = 0; i < map->nfiles; i++)
        free(map->files[i]);
    free(map->files);
    free(map->tab);
    free(map);
}

static size_t srcmap_hash(const json_t *node, size_t cap)
{
    uintptr_t p = (uintptr_t)node;
    p ^= p >> 17;
    p *= (uintptr_t)0x9E3779B97F4A7C15ULL;
    p ^= p >> 29;
    return (size_t)p & (cap - 1);
}

static struct srcmap_entry *srcmap_find(const struct aicp_srcmap *map, const json_t *node)
{
    if (map == NULL || map->cap == 0 || node == NULL)
        return NULL;
    for (size_t i = srcmap_hash(node, map->cap);; i = (i + 1) & (map->cap - 1)) {
        if (map->tab[i].node == node)
            return &map->tab[i];
        if (map->tab[i].node == NULL)
            return NULL;
    }
}

static int srcmap_grow(struct aicp_srcmap *map)
{
    size_t ncap = map->cap ? map->cap * 2 : 256;
    struct srcmap_entry *ntab = calloc(ncap, sizeof(*ntab));
    if (ntab == NULL)
        return AICP_ENOMEM;
    for (size_t i = 0; i < map->cap; i++) {
        if (map->tab[i].node == NULL)
            continue;
        size_t j = srcmap_hash(map->tab[i].node, ncap);
        while (ntab[j].node != NULL)
            j = (j + 1) & (ncap - 1);
        ntab[j] = map->tab[i];
    }
    free(map->tab);
    map->tab = ntab;
    map->cap = ncap;
    return 0;
}

static const char *srcmap_intern(struct aicp_srcmap *map, const char *file)
{
    /* Few files per run: a linear scan from the newest is enough. */
    for (size_t i = map->nfiles; i > 0; i--)
        if (strcmp(map->files[i - 1], file) == 0)
            return map->files[i - 1];
    char **nf = realloc(map->files, (map->nfiles + 1) * sizeof(*nf));
    if (nf == NULL)
        return NULL;
    map->files = nf;
    char *copy = aicp_strdup(file);
    if (copy == NULL)
        return NULL;
    map->files[map->nfiles++] = copy;
    return copy;
}

static struct srcmap_entry *srcmap_slot(struct aicp_srcmap *map, const json_t *node)
{
    struct srcmap_entry *e = srcmap_find(map, node);
    if (e != NULL)
        return e;
    if ((map->used + 1) * 2 > map->cap && srcmap_grow(map) != 0)
        return NULL;
    size_t i = srcmap_hash(node, map->cap);
    while (map->tab[i].node != NULL)
        i = (i + 1) & (map->cap - 1);
    map->used++;
    map->tab[i].node = node;
    return &map->tab[i];
}

const struct aicp_loc *aicp_srcmap_get(const struct aicp_srcmap *map, const json_t *node)
{
    const struct srcmap_entry *e = srcmap_find(map, node);
    return e != NULL ? &e->loc : NULL;
}

int aicp_srcmap_put(struct aicp_srcmap *map, const json_t *node, const char *file, int line, int col)
{
    if (map == NULL || node == NULL)
        return 0;
    /* true/false/null are jansson singletons: a position would be shared by
     * every one of them, so it would be wrong more often than right. */
    if (json_is_true(node) || json_is_false(node) || json_is_null(node))
        return 0;
    const char *f = srcmap_intern(map, file != NULL ? file : "<string>");
    if (f == NULL)
        return AICP_ENOMEM;
    struct srcmap_entry *e = srcmap_slot(map, node);
    if (e == NULL)
        return AICP_ENOMEM;
    e->loc.file = f;
    e->loc.line = line;
    e->loc.col = col;
    return 0;
}

int aicp_srcmap_unsafe(const struct aicp_srcmap *map, const json_t *node)
{
    const struct srcmap_entry *e = srcmap_find(map, node);
    return e != NULL && e->unsafe;
}

/* ---- scalar resolution (PyYAML's YAML 1.1 implicit resolvers) ---- */

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int resolve_bool(const char *s, size_t n, int *val)
{
    static const char *const yes[] = {"yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"};
    static const char *const no[] = {"no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strlen(yes[i]) == n && memcmp(s, yes[i], n) == 0) {
            *val = 1;
            return 1;
        }
        if (strlen(no[i]) == n && memcmp(s, no[i], n) == 0) {
            *val = 0;
            return 1;
        }
    }
    return 0;
}

static int resolve_null(const char *s, size_t n)
{
    return n == 0 || (n == 1 && s[0] == '~') ||
           (n == 4 && (memcmp(s, "null", 4) == 0 || memcmp(s, "Null", 4) == 0 || memcmp(s, "NULL", 4) == 0));
}

/* Matches `(?::[0-5]?[0-9])+` at s[*i]; returns the number of groups. */
static int match_sexa_tail(const char *s, size_t n, size_t *i)
{
    int groups = 0;
    while (*i < n && s[*i] == ':') {
        size_t j = *i + 1;
        if (j + 1 < n && s[j] >= '0' && s[j] <= '5' && is_digit(s[j + 1]))
            j += 2;
        else if (j < n && is_digit(s[j]))
            j += 1;
        else
            break;
        *i = j;
        groups++;
    }
    return groups;
}

static int span(const char *s, size_t n, size_t i, const char *set)
{
    size_t j = i;
    while (j < n && s[j] != '\0' && strchr(set, s[j]) != NULL)
        j++;
    return (int)(j - i);
}

static int match_int(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        i++;
    if (i >= n)
        return 0;
    if (n - i >= 3 && s[i] == '0' && s[i + 1] == 'b')
        return (size_t)span(s, n, i + 2, "01_") == n - i - 2;
    if (n - i >= 3 && s[i] == '0' && s[i + 1] == 'x')
        return (size_t)span(s, n, i + 2, "0123456789abcdefABCDEF_") == n - i - 2;
    if (s[i] == '0') {
        if (n - i == 1)
            return 1;
        return (size_t)span(s, n, i + 1, "01234567_") == n - i - 1;
    }
    if (s[i] >= '1' && s[i] <= '9') {
        size_t j = i + 1 + (size_t)span(s, n, i + 1, "0123456789_");
        if (j == n)
            return 1;
        if (match_sexa_tail(s, n, &j) > 0 && j == n)
            return 1;
    }
    return 0;
}

static int match_exp(const char *s, size_t n, size_t *i)
{
    if (*i < n && (s[*i] == 'e' || s[*i] == 'E')) {
        size_t j = *i + 1;
        if (j < n && (s[j] == '-' || s[j] == '+')) {
            int d = span(s, n, j + 1, "0123456789");
            if (d > 0) {
                *i = j + 1 + (size_t)d;
                return 1;
            }
        }
        return 0;
    }
    return 1;
}

static int match_float(const char *s, size_t n)
{
    size_t i = 0;
    if (n >= 4 && s[0] == '.' && (memcmp(s, ".nan", 4) == 0 || memcmp(s, ".NaN", 4) == 0 || memcmp(s, ".NAN", 4) == 0))
        return n == 4;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        i++;
    if (n - i == 4 && (memcmp(s + i, ".inf", 4) == 0 || memcmp(s + i, ".Inf", 4) == 0 || memcmp(s + i, ".INF", 4) == 0))
        return 1;
    if (i < n && s[i] == '.') {
        /* \.[0-9][0-9_]* has no sign in PyYAML: "-.5" stays a string */
        if (i != 0 || i + 1 >= n || !is_digit(s[i + 1]))
            return 0;
        i += 1 + (size_t)span(s, n, i + 1, "0123456789_");
        return match_exp(s, n, &i) && i == n;
    }
    if (i >= n || !is_digit(s[i]))
        return 0;
    i += 1 + (size_t)span(s, n, i + 1, "0123456789_");
    if (i < n && s[i] == ':') {
        if (match_sexa_tail(s, n, &i) == 0 || i >= n || s[i] != '.')
            return 0;
        i += 1 + (size_t)span(s, n, i + 1, "0123456789_");
        return i == n;
    }
    if (i >= n || s[i] != '.')
        return 0;
    i += 1 + (size_t)span(s, n, i + 1, "0123456789_");
    return match_exp(s, n, &i) && i == n;
}

/* Copies s without '_' into buf (NUL-terminated); 0 when too long. */
static int strip_underscores(char *buf, size_t cap, const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_')
            continue;
        if (o + 1 >= cap)
            return 0;
        buf[o++] = s[i];
    }
    buf[o] = '\0';
    return 1;
}

/* Builds the int (or, past int64, a real as the nearest representable). */
static json_t *construct_int(const char *s, size_t n)
{
    char buf[256];
    if (!strip_underscores(buf, sizeof(buf), s, n))
        return NULL;
    const char *p = buf;
    int neg = 0;
    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    double acc = 0;
    int base = 10;
    if (strcmp(p, "0") == 0)
        return json_integer(0);
    if (p[0] == '0' && p[1] == 'b') {
        base = 2;
        p += 2;
    } else if (p[0] == '0' && p[1] == 'x') {
        base = 16;
        p += 2;
    } else if (p[0] == '0') {
        base = 8;
    } else if (strchr(p, ':') != NULL) {
        /* sexagesimal: 1:30 == 90 */
        long long v = 0;
        char *end = NULL;
        for (;;) {
            errno = 0;
            long long part = strtoll(p, &end, 10);
            if (errno != 0 || v > (LLONG_MAX - part) / 60)
                return NULL;
            v = v * 60 + part;
            if (*end != ':')
                break;
            p = end + 1;
        }
        return json_integer(neg ? -v : v);
    }
    if (*p == '\0')
        return NULL;
    errno = 0;
    char *end = NULL;
    unsigned long long u = strtoull(p, &end, base);
    if (*end != '\0')
        return NULL;
    if (errno == ERANGE || u > (unsigned long long)LLONG_MAX + (neg ? 1ULL : 0ULL)) {
        for (const char *q = p; *q; q++) {
            int d = is_digit(*q) ? *q - '0' : (*q | 0x20) - 'a' + 10;
            acc = acc * base + d;
        }
        return json_real(neg ? -acc : acc);
    }
    if (neg)
        return json_integer(u == (unsigned long long)LLONG_MAX + 1ULL ? LLONG_MIN : -(long long)u);
    return json_integer((long long)u);
}

static json_t *construct_float(const char *s, size_t n)
{
    char buf[256];
    if (!strip_underscores(buf, sizeof(buf), s, n))
        return NULL;
    const char *p = buf;
    int neg = 0;
    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    double v;
    if (p[0] == '.' && !is_digit(p[1]))
        return json_stringn(s, n); /* .inf/.nan: jansson has no such reals */
    if (strchr(p, ':') != NULL) {
        v = 0;
        char *end = NULL;
        for (;;) {
            double part = strtod(p, &end);
            v = v * 60 + part;
            if (*end != ':')
                break;
            p = end + 1;
        }
    } else {
        char *end = NULL;
        v = strtod(p, &end);
        if (*end != '\0')
            return NULL;
    }
    /* jansson has no inf/nan; keep the text (Ansible would have a float). */
    if (!isfinite(v))
        return json_stringn(s, n);
    return json_real(neg ? -v : v);
}

enum scalar_kind { SK_STR, SK_NULL, SK_BOOL, SK_INT, SK_FLOAT };

static enum scalar_kind resolve_plain(const char *s, size_t n)
{
    int b;
    if (resolve_null(s, n))
        return SK_NULL;
    if (resolve_bool(s, n, &b))
        return SK_BOOL;
    if (match_float(s, n))
        return SK_FLOAT;
    if (match_int(s, n))
        return SK_INT;
    return SK_STR;
}

/* ---- composer ---- */

struct frame {
    json_t *node;      /* object or array being filled */
    char *anchor;      /* to register when complete */
    long size;         /* expanded node count so far */
    int have_key;      /* objects: key holds the pending key */
    char *key;
    size_t keylen;
    int key_is_merge;
    json_t *merges;    /* objects: values of `<<` keys, in order */
};

struct composer {
    const char *name;
    struct aicp_srcmap *map;
    struct aicp_err *err;
    json_t *anchors;       /* name -> node */
    json_t *anchor_sizes;  /* name -> expanded size */
    long expanded;
    struct frame *stack;
    size_t depth;
    json_t *root;
    int done;
    int secret; /* the text came out of a vault: errors never quote it */
};

/* Frees a composer-owned string after wiping it: in a vaulted file even
 * keys and anchor names are plaintext that the vault was meant to hide. */
static void free_wiped(char *s, size_t len)
{
    if (s == NULL)
        return;
    OPENSSL_cleanse(s, len);
    free(s);
}

/* "file:line:col: what 'arg'" (arg optional, cut at 80 bytes). arg is
 * source text (an alias or tag name), so text from a vault never gets
 * quoted: its position and what is wrong must do. */
static int comp_error(struct composer *c, const yaml_mark_t *m, const char *what, const char *arg)
{
    if (c->secret)
        return aicp_err_set(c->err, AICP_EINVAL, "%s:%zu:%zu: %s (in vaulted content, not shown)",
                            c->name, m->line + 1, m->column + 1, what);
    if (arg != NULL)
        return aicp_err_set(c->err, AICP_EINVAL, "%s:%zu:%zu: %s '%.80s'", c->name, m->line + 1, m->column + 1,
                            what, arg);
    return aicp_err_set(c->err, AICP_EINVAL, "%s:%zu:%zu: %s", c->name, m->line + 1, m->column + 1, what);
}

/* A scalar node's JSON form as a mapping key (what json.dumps writes for
 * Python's non-string keys). */
static int key_text(struct composer *c, const json_t *v, const yaml_mark_t *m, char **out, size_t *len)
{
    struct aicp_buf b = AICP_BUF_INIT;
    int rc = 0;
    if (json_is_string(v))
        rc = aicp_buf_append(&b, json_string_value(v), json_string_length(v));
    else if (json_is_integer(v))
        rc = aicp_buf_printf(&b, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        rc = aicp_buf_printf(&b, "%.17g", json_real_value(v));
    else if (json_is_true(v))
        rc = aicp_buf_puts(&b, "true");
    else if (json_is_false(v))
        rc = aicp_buf_puts(&b, "false");
    else if (json_is_null(v))
        rc = aicp_buf_puts(&b, "null");
    else
        return comp_error(c, m, "while constructing a mapping: found unhashable key", NULL);
    if (rc != 0) {
        aicp_buf_free(&b);
        return AICP_ENOMEM;
    }
    *len = b.len;
    *out = aicp_buf_steal(&b);
    return 0;
}

static int apply_merges(struct composer *c, struct frame *f, const yaml_mark_t *m)
{
    json_t *res = json_object();
    if (res == NULL)
        return AICP_ENOMEM;
    size_t i;
    json_t *mv;
    json_array_foreach(f->merges, i, mv) {
        if (json_is_object(mv)) {
            json_object_update(res, mv);
        } else if (json_is_array(mv)) {
            /* earlier maps in the list win: apply them last */
            for (size_t k = json_array_size(mv); k > 0; k--) {
                json_t *sub = json_array_get(mv, k - 1);
                if (!json_is_object(sub)) {
                    json_decref(res);
                    return comp_error(c, m, "while constructing a mapping: expected a mapping for merging", NULL);
                }
                json_object_update(res, sub);
            }
        } else {
            json_decref(res);
            return comp_error(c, m, "while constructing a mapping: expected a mapping or list of mappings for merging", NULL);
        }
    }
    json_object_update(res, f->node);
    if (c->map != NULL) {
        const struct aicp_loc *loc = aicp_srcmap_get(c->map, f->node);
        if (loc != NULL && aicp_srcmap_put(c->map, res, loc->file, loc->line, loc->col) != 0) {
            json_decref(res);
            return AICP_ENOMEM;
        }
    }
    json_decref(f->node);
    f->node = res;
    return 0;
}

/* Hands a finished node (new reference) to the enclosing container. */
static int comp_add(struct composer *c, json_t *v, long size, const yaml_mark_t *m)
{
    int rc = 0;
    if (c->depth == 0) {
        c->root = v;
        c->done = 1;
        return 0;
    }
    struct frame *f = &c->stack[c->depth - 1];
    f->size += size;
    if (json_is_array(f->node)) {
        if (json_array_append_new(f->node, v) != 0)
            return AICP_ENOMEM;
        return 0;
    }
    if (!f->have_key) {
        if (json_is_object(v) || json_is_array(v)) {
            json_decref(v);
            return comp_error(c, m, "while constructing a mapping: found unhashable key", NULL);
        }
        rc = key_text(c, v, m, &f->key, &f->keylen);
        json_decref(v);
        if (rc != 0)
            return rc;
        f->have_key = 1;
        return 0;
    }
    if (f->key_is_merge) {
        if (f->merges == NULL && (f->merges = json_array()) == NULL)
            rc = AICP_ENOMEM;
        else if (json_array_append_new(f->merges, v) != 0)
            rc = AICP_ENOMEM;
    } else if (json_object_setn_new(f->node, f->key, f->keylen, v) != 0) {
        rc = AICP_ENOMEM;
    }
    free_wiped(f->key, f->keylen);
    f->key = NULL;
    f->have_key = 0;
    f->key_is_merge = 0;
    return rc;
}

static int register_anchor(struct composer *c, const char *anchor, json_t *v, long size)
{
    if (anchor == NULL)
        return 0;
    if (json_object_set(c->anchors, anchor, v) != 0 ||
        json_object_set_new(c->anchor_sizes, anchor, json_integer(size)) != 0)
        return AICP_ENOMEM;
    return 0;
}

/* `!vault |` values: decrypted as they are read, the plaintext kept as a
 * string (as Ansible's AnsibleVaultEncryptedUnicode) and registered as a
 * secret so that output masks it. */
static int on_vault_scalar(struct composer *c, yaml_event_t *ev)
{
    const yaml_mark_t *m = &ev->start_mark;
    struct aicp_err verr = {0};
    char *plain = NULL;
    size_t plen = 0;
    json_t *v;
    int rc;

    rc = aicp_vault_decrypt(&plain, &plen, c->map ? c->map->vault : NULL,
                            (const char *)ev->data.scalar.value, ev->data.scalar.length, &verr);
    if (rc != 0) {
        if (rc == AICP_ENOMEM)
            return rc;
        aicp_err_set(c->err, rc == AICP_EAUTH ? AICP_EAUTH : AICP_EINVAL, "%s:%d:%d: !vault value: %s",
                     c->name, (int)m->line + 1, (int)m->column + 1, verr.msg);
        return rc == AICP_EAUTH ? AICP_EAUTH : AICP_EINVAL;
    }
    v = json_stringn(plain, plen);
    if (v == NULL) {
        OPENSSL_cleanse(plain, plen);
        free(plain);
        return comp_error(c, m, "the !vault value is not valid UTF-8 text", NULL);
    }
    rc = aicp_secrets_add(c->map ? c->map->secrets : NULL, plain, plen);
    OPENSSL_cleanse(plain, plen);
    free(plain);
    if (rc == 0 && c->map != NULL)
        rc = aicp_srcmap_put(c->map, v, c->name, (int)m->line + 1, (int)m->column + 1);
    c->expanded++;
    if (rc == 0)
        rc = register_anchor(c, (const char *)ev->data.scalar.anchor, v, 1);
    if (rc == 0)
        return comp_add(c, v, 1, m);
    json_decref(v);
    return rc;
}

static int on_scalar(struct composer *c, yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    const yaml_mark_t *m = &ev->start_mark;
    int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    int unsafe = 0;
    enum scalar_kind kind = SK_STR;
    json_t *v = NULL;

    /* A plain `<<` in key position is a merge key (PyYAML's merge tag). */
    if (c->depth > 0 && json_is_object(c->stack[c->depth - 1].node) && !c->stack[c->depth - 1].have_key &&
        plain && tag == NULL && n == 2 && memcmp(s, "<<", 2) == 0) {
        struct frame *f = &c->stack[c->depth - 1];
        f->have_key = 1;
        f->key_is_merge = 1;
        f->size += 1;
        return 0;
    }
    if (tag != NULL && strcmp(tag, "!vault") == 0)
        return on_vault_scalar(c, ev);
    if (tag == NULL) {
        kind = plain ? resolve_plain(s, n) : SK_STR;
    } else if (strcmp(tag, "!") == 0 || strcmp(tag, "tag:yaml.org,2002:str") == 0 ||
               strcmp(tag, "tag:yaml.org,2002:binary") == 0 ||
               strcmp(tag, "tag:yaml.org,2002:timestamp") == 0) {
        kind = SK_STR;
    } else if (strcmp(tag, "!unsafe") == 0) {
        kind = SK_STR;
        unsafe = 1;
    } else if (strcmp(tag, "tag:yaml.org,2002:null") == 0) {
        kind = SK_NULL;
    } else if (strcmp(tag, "tag:yaml.org,2002:bool") == 0) {
        int b;
        if (!resolve_bool(s, n, &b))
            return comp_error(c, m, "invalid boolean for tag !!bool", NULL);
        kind = SK_BOOL;
    } else if (strcmp(tag, "tag:yaml.org,2002:int") == 0) {
        if (!match_int(s, n))
            return comp_error(c, m, "invalid integer for tag !!int", NULL);
        kind = SK_INT;
    } else if (strcmp(tag, "tag:yaml.org,2002:float") == 0) {
        kind = match_float(s, n) ? SK_FLOAT : match_int(s, n) ? SK_INT : SK_STR;
        if (kind == SK_STR)
            return comp_error(c, m, "invalid float for tag !!float", NULL);
    } else {
        return comp_error(c, m, "could not determine a constructor for the tag", tag);
    }

    int b = 0;
    switch (kind) {
    case SK_NULL: v = json_null(); break;
    case SK_BOOL: resolve_bool(s, n, &b); v = json_boolean(b); break;
    case SK_INT: v = construct_int(s, n); break;
    case SK_FLOAT: v = construct_float(s, n); break;
    case SK_STR: v = json_stringn(s, n); break;
    }
    if (v == NULL) {
        if (kind == SK_STR)
            return comp_error(c, m, "scalar is not valid UTF-8", NULL);
        if (kind == SK_INT || kind == SK_FLOAT)
            return comp_error(c, m, "invalid number", NULL);
        return AICP_ENOMEM;
    }
    if (c->map != NULL && json_is_string(v)) {
        int rc = aicp_srcmap_put(c->map, v, c->name, (int)m->line + 1, (int)m->column + 1);
        if (rc != 0) {
            json_decref(v);
            return rc;
        }
        if (unsafe) {
            struct srcmap_entry *e = srcmap_find(c->map, v);
            if (e != NULL)
                e->unsafe = 1;
        }
    }
    c->expanded++;
    int rc = register_anchor(c, (const char *)ev->data.scalar.anchor, v, 1);
    if (rc == 0)
        return comp_add(c, v, 1, m);
    json_decref(v);
    return rc;
}

static int on_alias(struct composer *c, yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    json_t *v = json_object_get(c->anchors, name);
    if (v == NULL)
        return comp_error(c, &ev->start_mark, "found undefined alias", name);
    long size = (long)json_integer_value(json_object_get(c->anchor_sizes, name));
    c->expanded += size;
    if (c->expanded > YAML_MAX_EXPANDED)
        return comp_error(c, &ev->start_mark, "too many alias expansions (billion laughs?) at alias", name);
    /* Mapping keys must be scalars; comp_add reports it. */
    return comp_add(c, json_incref(v), size, &ev->start_mark);
}

static int on_start(struct composer *c, yaml_event_t *ev, int is_map)
{
    if (c->depth >= YAML_MAX_DEPTH)
        return comp_error(c, &ev->start_mark, "document nested too deeply", NULL);
    struct frame *f = &c->stack[c->depth];
    memset(f, 0, sizeof(*f));
    f->node = is_map ? json_object() : json_array();
    if (f->node == NULL)
        return AICP_ENOMEM;
    const yaml_char_t *anchor = is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
    if (anchor != NULL && (f->anchor = aicp_strdup((const char *)anchor)) == NULL) {
        json_decref(f->node);
        return AICP_ENOMEM;
    }
    f->size = 1;
    c->depth++;
    c->expanded++;
    if (c->expanded > YAML_MAX_EXPANDED)
        return comp_error(c, &ev->start_mark, "document too large", NULL);
    return aicp_srcmap_put(c->map, f->node, c->name, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1);
}

static void frame_clear(struct frame *f)
{
    json_decref(f->node);
    json_decref(f->merges);
    free_wiped(f->anchor, f->anchor != NULL ? strlen(f->anchor) : 0);
    free_wiped(f->key, f->keylen);
    memset(f, 0, sizeof(*f));
}

static int on_end(struct composer *c, yaml_event_t *ev)
{
    struct frame *f = &c->stack[c->depth - 1];
    int rc = 0;
    if (f->merges != NULL && (rc = apply_merges(c, f, &ev->start_mark)) != 0)
        return rc;
    json_t *v = f->node;
    long size = f->size;
    rc = register_anchor(c, f->anchor, v, size);
    f->node = NULL;
    frame_clear(f);
    c->depth--;
    if (rc != 0) {
        json_decref(v);
        return rc;
    }
    return comp_add(c, v, size, &ev->start_mark);
}

static void wipe_cstr(yaml_char_t *s)
{
    if (s != NULL)
        OPENSSL_cleanse(s, strlen((const char *)s));
}

/* The text an event carries, wiped before yaml_event_delete frees it. */
static void event_wipe(yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        if (ev->data.scalar.value != NULL)
            OPENSSL_cleanse(ev->data.scalar.value, ev->data.scalar.length);
        wipe_cstr(ev->data.scalar.anchor);
        wipe_cstr(ev->data.scalar.tag);
        break;
    case YAML_ALIAS_EVENT: wipe_cstr(ev->data.alias.anchor); break;
    case YAML_SEQUENCE_START_EVENT:
        wipe_cstr(ev->data.sequence_start.anchor);
        wipe_cstr(ev->data.sequence_start.tag);
        break;
    case YAML_MAPPING_START_EVENT:
        wipe_cstr(ev->data.mapping_start.anchor);
        wipe_cstr(ev->data.mapping_start.tag);
        break;
    default: break;
    }
}

/* libyaml's input buffers (raw bytes and decoded characters) and the
 * tokens scanned but not yet parsed, wiped before yaml_parser_delete frees
 * them. Their layout is libyaml's public struct. What the scanner frees as
 * it goes (a scalar's buffer outgrown and reallocated, scratch strings) is
 * out of reach: docs/security.md lists it. */
static void parser_wipe(yaml_parser_t *p)
{
    if (p->raw_buffer.start != NULL)
        OPENSSL_cleanse(p->raw_buffer.start, (size_t)(p->raw_buffer.end - p->raw_buffer.start));
    if (p->buffer.start != NULL)
        OPENSSL_cleanse(p->buffer.start, (size_t)(p->buffer.end - p->buffer.start));
    for (yaml_token_t *t = p->tokens.head; t != NULL && t < p->tokens.tail; t++) {
        switch (t->type) {
        case YAML_SCALAR_TOKEN:
            if (t->data.scalar.value != NULL)
                OPENSSL_cleanse(t->data.scalar.value, t->data.scalar.length);
            break;
        case YAML_ALIAS_TOKEN: wipe_cstr(t->data.alias.value); break;
        case YAML_ANCHOR_TOKEN: wipe_cstr(t->data.anchor.value); break;
        case YAML_TAG_TOKEN:
            wipe_cstr(t->data.tag.handle);
            wipe_cstr(t->data.tag.suffix);
            break;
        default: break;
        }
    }
}

static int yaml_load(json_t **out, const char *text, size_t len, const char *name,
                     struct aicp_srcmap *map, int secret, struct aicp_err *err)
{
    yaml_parser_t parser;
    struct composer c;
    int rc = 0;
    int parser_ok = 0;

    *out = NULL;
    memset(&c, 0, sizeof(c));
    c.name = name != NULL ? name : "<string>";
    c.map = map;
    c.err = err;
    c.secret = secret;
    c.anchors = json_object();
    c.anchor_sizes = json_object();
    c.stack = calloc(YAML_MAX_DEPTH, sizeof(*c.stack));
    if (c.anchors == NULL || c.anchor_sizes == NULL || c.stack == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "%s: out of memory", c.name);
        goto out;
    }
    if (!yaml_parser_initialize(&parser)) {
        rc = aicp_err_set(err, AICP_ENOMEM, "%s: cannot initialise the YAML parser", c.name);
        goto out;
    }
    parser_ok = 1;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);

    while (!c.done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            /* libyaml's problem and context are fixed strings, never
             * source text, so they may stay even for vaulted text. */
            const char *problem = parser.problem != NULL ? parser.problem : "invalid YAML";
            if (parser.context != NULL)
                rc = aicp_err_set(err, AICP_EINVAL, "%s:%zu:%zu: %s (%s at line %zu, column %zu)", c.name,
                                  parser.problem_mark.line + 1, parser.problem_mark.column + 1, problem,
                                  parser.context, parser.context_mark.line + 1, parser.context_mark.column + 1);
            else
                rc = aicp_err_set(err, AICP_EINVAL, "%s:%zu:%zu: %s", c.name, parser.problem_mark.line + 1,
                                  parser.problem_mark.column + 1, problem);
            goto out;
        }
        int stop = 0;
        switch (ev.type) {
        case YAML_SCALAR_EVENT: rc = on_scalar(&c, &ev); break;
        case YAML_ALIAS_EVENT: rc = on_alias(&c, &ev); break;
        case YAML_SEQUENCE_START_EVENT: rc = on_start(&c, &ev, 0); break;
        case YAML_MAPPING_START_EVENT: rc = on_start(&c, &ev, 1); break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: rc = on_end(&c, &ev); break;
        case YAML_DOCUMENT_END_EVENT:
        case YAML_STREAM_END_EVENT: stop = 1; break;
        default: break;
        }
        if (secret)
            event_wipe(&ev);
        yaml_event_delete(&ev);
        if (rc != 0) {
            if (rc == AICP_ENOMEM)
                aicp_err_set(err, rc, "%s: out of memory", c.name);
            goto out;
        }
        if (stop)
            break;
    }
    *out = c.root != NULL ? c.root : json_null();
    c.root = NULL;
out:
    if (parser_ok && secret)
        parser_wipe(&parser);
    if (parser_ok)
        yaml_parser_delete(&parser);
    if (c.stack != NULL)
        for (size_t i = 0; i < c.depth; i++)
            frame_clear(&c.stack[i]);
    free(c.stack);
    json_decref(c.root);
    json_decref(c.anchors);
    json_decref(c.anchor_sizes);
    return rc;
}

int aicp_yaml_load_string(json_t **out, const char *text, size_t len, const char *name,
                          struct aicp_srcmap *map, struct aicp_err *err)
{
    return yaml_load(out, text, len, name, map, 0, err);
}

int aicp_yaml_load_secret_string(json_t **out, const char *text, size_t len, const char *name,
                                 struct aicp_srcmap *map, struct aicp_err *err)
{
    return yaml_load(out, text, len, name, map, 1, err);
}

int aicp_yaml_load_file(json_t **out, const char *path, struct aicp_srcmap *map, struct aicp_err *err)
{
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    int vaulted = 0;
    int rc = aicp_vault_read_file(&text, &len, &vaulted, map ? map->vault : NULL, path, err);
    if (rc != 0)
        return rc;
    rc = yaml_load(out, text, len, path, map, vaulted, err);
    /* Every value of a vaulted file is a secret (its keys are not). */
    if (rc == 0 && vaulted)
        rc = aicp_secrets_add_json(map ? map->secrets : NULL, *out);
    OPENSSL_cleanse(text, len);
    free(text);
    return rc;
}
