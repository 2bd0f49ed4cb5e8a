/* `aicp inventory`: the ansible-inventory compatible command, and the
 * Python-compatible text forms it needs so that its output is byte-for-byte
 * what ansible-inventory prints: json.dumps(indent=4, sort_keys=True,
 * ensure_ascii=False), Python's str()/repr() for --graph --vars, and
 * ast.literal_eval for the values of INI inventories.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "inventory.h"
#include "secret.h"
#include "util.h"
#include "vault.h"
#include "yaml.h"

#define PYLIT_MAX_DEPTH 64

/* ---- Python literals (ast.literal_eval, as the INI plugin uses it) ---- */

struct pylit {
    const char *s;
    size_t i, n;
    int depth;
};

static void pl_ws(struct pylit *p)
{
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c == ' ' || c == '\t' || c == '\f' || c == '\n' || c == '\r') {
            p->i++;
        } else if (c == '#') {
            while (p->i < p->n && p->s[p->i] != '\n')
                p->i++;
        } else {
            break;
        }
    }
}

static int pl_ident(char c)
{
    return c == '_' || (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (unsigned char)c >= 0x80;
}

/* digits with single underscores between them; returns count consumed */
static size_t pl_digits(struct pylit *p, const char *set, struct aicp_buf *out)
{
    size_t start = p->i;
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c != '\0' && strchr(set, c) != NULL) {
            aicp_buf_append(out, &c, 1);
            p->i++;
        } else if (c == '_' && p->i > start && p->i + 1 < p->n && p->s[p->i + 1] != '\0' &&
                   strchr(set, p->s[p->i + 1]) != NULL) {
            p->i++;
        } else {
            break;
        }
    }
    return p->i - start;
}

static json_t *pl_number(struct pylit *p, int neg)
{
    struct aicp_buf b = AICP_BUF_INIT;
    json_t *v = NULL;
    int isfloat = 0, base = 10;
    const char *s = p->s;
    if (s[p->i] == '0' && p->i + 1 < p->n && strchr("xXoObB", s[p->i + 1]) != NULL && s[p->i + 1] != '\0') {
        char k = (char)(s[p->i + 1] | 0x20);
        base = k == 'x' ? 16 : k == 'o' ? 8 : 2;
        p->i += 2;
        if (p->i < p->n && s[p->i] == '_')
            p->i++;
        if (pl_digits(p, base == 16 ? "0123456789abcdefABCDEF" : base == 8 ? "01234567" : "01", &b) == 0)
            goto out;
    } else {
        pl_digits(p, "0123456789", &b);
        if (p->i < p->n && s[p->i] == '.') {
            isfloat = 1;
            aicp_buf_append(&b, ".", 1);
            p->i++;
            if (p->i < p->n && s[p->i] >= '0' && s[p->i] <= '9')
                pl_digits(p, "0123456789", &b);
        }
        if (p->i < p->n && (s[p->i] | 0x20) == 'e') {
            size_t save = p->i;
            aicp_buf_append(&b, "e", 1);
            p->i++;
            if (p->i < p->n && (s[p->i] == '+' || s[p->i] == '-'))
                aicp_buf_append(&b, &s[p->i++], 1);
            if (pl_digits(p, "0123456789", &b) == 0) {
                p->i = save;
                goto out;
            }
            isfloat = 1;
        }
        if (b.len == 0 || (b.len == 1 && b.data[0] == '.'))
            goto out;
        /* "01" is a SyntaxError in Python 3; "00" and "0.5" are fine */
        if (!isfloat && b.data[0] == '0' && strspn(b.data, "0") != b.len)
            goto out;
    }
    if (p->i < p->n && pl_ident(s[p->i]))
        goto out; /* 1abc, 1j (complex) */
    if (isfloat) {
        double d = strtod(b.data, NULL);
        if (d - d != 0)
            goto out; /* inf: JSON cannot hold it, keep the text */
        v = json_real(neg ? -d : d);
    } else {
        errno = 0;
        unsigned long long u = strtoull(b.data, NULL, base);
        if (errno == ERANGE || u > (unsigned long long)LLONG_MAX) {
            double d = 0;
            for (const char *q = b.data; *q; q++)
                d = d * base + ((*q >= '0' && *q <= '9') ? *q - '0' : (*q | 0x20) - 'a' + 10);
            v = json_real(neg ? -d : d);
        } else {
            v = json_integer(neg ? -(long long)u : (long long)u);
        }
    }
out:
    aicp_buf_free(&b);
    return v;
}

static int pl_utf8(struct aicp_buf *b, unsigned long cp)
{
    char u[4];
    size_t n;
    if (cp >= 0xD800 && cp <= 0xDFFF)
        return -1;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else if (cp <= 0x10FFFF) {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    } else {
        return -1;
    }
    return aicp_buf_append(b, u, n);
}

static int pl_hex(const char *s, size_t n, unsigned long *out)
{
    *out = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int d = (c >= '0' && c <= '9') ? c - '0' : ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') ? (c | 0x20) - 'a' + 10 : -1;
        if (d < 0)
            return -1;
        *out = *out * 16 + (unsigned long)d;
    }
    return 0;
}

/* One string literal (with r/b/u prefixes) appended to out. */
static int pl_string1(struct pylit *p, struct aicp_buf *out, int *isbytes)
{
    int raw = 0, bytes = 0;
    const char *s = p->s;
    while (p->i < p->n && strchr("rRbBuU", s[p->i]) != NULL && s[p->i] != '\0') {
        char k = (char)(s[p->i] | 0x20);
        if (k == 'r')
            raw = 1;
        else if (k == 'b')
            bytes = 1;
        p->i++;
    }
    if (p->i >= p->n || (s[p->i] != '\'' && s[p->i] != '"'))
        return -1;
    char q = s[p->i];
    int triple = p->i + 2 < p->n && s[p->i + 1] == q && s[p->i + 2] == q;
    p->i += triple ? 3 : 1;
    *isbytes = bytes;
    for (;;) {
        if (p->i >= p->n)
            return -1;
        char c = s[p->i];
        if (c == q && (!triple || (p->i + 2 < p->n && s[p->i + 1] == q && s[p->i + 2] == q))) {
            p->i += triple ? 3 : 1;
            return 0;
        }
        if ((c == '\n' || c == '\r') && !triple)
            return -1;
        if (bytes && (unsigned char)c >= 0x80)
            return -1;
        if (c != '\\') {
            aicp_buf_append(out, &c, 1);
            p->i++;
            continue;
        }
        if (p->i + 1 >= p->n)
            return -1;
        char e = s[p->i + 1];
        if (raw) {
            aicp_buf_append(out, s + p->i, 2);
            p->i += 2;
            continue;
        }
        p->i += 2;
        unsigned long cp;
        const char *simple = strchr("\\'\"abfnrtv\n", e);
        if (simple != NULL && e != '\0') {
            static const char map[] = "\\'\"\a\b\f\n\r\t\v";
            if (e != '\n')
                aicp_buf_append(out, &map[simple - "\\'\"abfnrtv\n"], 1);
        } else if (e >= '0' && e <= '7') {
            cp = (unsigned long)(e - '0');
            for (int k = 0; k < 2 && p->i < p->n && s[p->i] >= '0' && s[p->i] <= '7'; k++)
                cp = cp * 8 + (unsigned long)(s[p->i++] - '0');
            if (bytes) {
                char ch = (char)(cp & 0xFF);
                aicp_buf_append(out, &ch, 1);
            } else if (pl_utf8(out, cp) != 0) {
                return -1;
            }
        } else if (e == 'x') {
            if (p->i + 2 > p->n || pl_hex(s + p->i, 2, &cp) != 0)
                return -1;
            p->i += 2;
            if (bytes) {
                char ch = (char)cp;
                aicp_buf_append(out, &ch, 1);
            } else if (pl_utf8(out, cp) != 0) {
                return -1;
            }
        } else if (!bytes && (e == 'u' || e == 'U')) {
            size_t len = e == 'u' ? 4 : 8;
            if (p->i + len > p->n || pl_hex(s + p->i, len, &cp) != 0 || pl_utf8(out, cp) != 0)
                return -1;
            p->i += len;
        } else if (!bytes && e == 'N') {
            return -1; /* \N{NAME}: no Unicode name table here */
        } else {
            aicp_buf_append(out, s + p->i - 2, 2);
        }
    }
}

static json_t *pl_value(struct pylit *p);

static json_t *pl_strings(struct pylit *p)
{
    struct aicp_buf b = AICP_BUF_INIT;
    int first = -1, isbytes = 0;
    json_t *v = NULL;
    aicp_buf_append(&b, "", 0);
    for (;;) {
        pl_ws(p);
        size_t save = p->i;
        while (p->i < p->n && strchr("rRbBuU", p->s[p->i]) != NULL && p->s[p->i] != '\0')
            p->i++;
        int isq = p->i < p->n && (p->s[p->i] == '\'' || p->s[p->i] == '"');
        p->i = save;
        if (!isq)
            break;
        if (pl_string1(p, &b, &isbytes) != 0 || (first >= 0 && first != isbytes))
            goto out;
        first = isbytes;
    }
    if (first >= 0)
        v = json_stringn(b.data, b.len); /* NULL when bytes are not UTF-8 */
out:
    aicp_buf_free(&b);
    return v;
}

/* dict keys: json.dumps writes non-string keys in their JSON form */
static char *pl_keytext(const json_t *k)
{
    struct aicp_buf b = AICP_BUF_INIT;
    if (json_is_string(k))
        aicp_buf_append(&b, json_string_value(k), json_string_length(k));
    else if (json_is_integer(k))
        aicp_buf_printf(&b, "%lld", (long long)json_integer_value(k));
    else if (json_is_real(k))
        aicp_buf_printf(&b, "%.17g", json_real_value(k));
    else if (json_is_true(k))
        aicp_buf_puts(&b, "true");
    else if (json_is_false(k))
        aicp_buf_puts(&b, "false");
    else if (json_is_null(k))
        aicp_buf_puts(&b, "null");
    else
        return NULL;
    return aicp_buf_steal(&b);
}

static json_t *pl_container(struct pylit *p, char open)
{
    char close = open == '[' ? ']' : open == '(' ? ')' : '}';
    json_t *arr = json_array(), *obj = NULL, *v = NULL;
    int is_dict = -1, n = 0, trailing_comma = 0;
    p->i++;
    if (++p->depth > PYLIT_MAX_DEPTH)
        goto fail;
    for (;;) {
        pl_ws(p);
        if (p->i < p->n && p->s[p->i] == close) {
            p->i++;
            break;
        }
        if (n > 0 && !trailing_comma)
            goto fail;
        json_t *item = pl_value(p);
        if (item == NULL)
            goto fail;
        pl_ws(p);
        if (open == '{' && is_dict != 0 && p->i < p->n && p->s[p->i] == ':') {
            if (is_dict < 0) {
                is_dict = 1;
                obj = json_object();
            }
            p->i++;
            json_t *val = pl_value(p);
            char *key = pl_keytext(item);
            json_decref(item);
            if (val == NULL || key == NULL || obj == NULL || json_object_set_new(obj, key, val) != 0) {
                free(key);
                goto fail;
            }
            free(key);
        } else {
            if (is_dict == 1) {
                json_decref(item);
                goto fail;
            }
            if (open == '{') {
                /* a set: its members must be hashable */
                if (json_is_object(item) || json_is_array(item)) {
                    json_decref(item);
                    goto fail;
                }
                is_dict = 0;
            }
            json_array_append_new(arr, item);
        }
        n++;
        pl_ws(p);
        trailing_comma = p->i < p->n && p->s[p->i] == ',';
        if (trailing_comma)
            p->i++;
    }
    p->depth--;
    if (open == '(' && n == 1 && !trailing_comma) {
        v = json_incref(json_array_get(arr, 0)); /* (x) is just x */
    } else if (is_dict == 1 || (open == '{' && n == 0)) {
        v = obj != NULL ? json_incref(obj) : json_object();
    } else {
        v = json_incref(arr);
    }
fail:
    json_decref(arr);
    json_decref(obj);
    return v;
}

static json_t *pl_value(struct pylit *p)
{
    pl_ws(p);
    if (p->i >= p->n)
        return NULL;
    char c = p->s[p->i];
    if (c == '[' || c == '(' || c == '{')
        return pl_container(p, c);
    if (c == '-' || c == '+') {
        p->i++;
        pl_ws(p);
        if (p->i < p->n && ((p->s[p->i] >= '0' && p->s[p->i] <= '9') || p->s[p->i] == '.'))
            return pl_number(p, c == '-');
        return NULL;
    }
    if ((c >= '0' && c <= '9') || (c == '.' && p->i + 1 < p->n && p->s[p->i + 1] >= '0' && p->s[p->i + 1] <= '9'))
        return pl_number(p, 0);
    if (c == '\'' || c == '"')
        return pl_strings(p);
    size_t st = p->i;
    while (p->i < p->n && pl_ident(p->s[p->i]))
        p->i++;
    size_t len = p->i - st;
    if (p->i < p->n && (p->s[p->i] == '\'' || p->s[p->i] == '"') && len <= 2) {
        p->i = st;
        return pl_strings(p);
    }
    if (len == 4 && memcmp(p->s + st, "True", 4) == 0)
        return json_true();
    if (len == 5 && memcmp(p->s + st, "False", 5) == 0)
        return json_false();
    if (len == 4 && memcmp(p->s + st, "None", 4) == 0)
        return json_null();
    return NULL;
}

/* The INI plugin's _parse_value. */
json_t *aicp_inventory_py_literal(const char *s)
{
    struct pylit p = {s, 0, strlen(s), 0};
    while (p.i < p.n && (s[p.i] == ' ' || s[p.i] == '\t'))
        p.i++;
    json_t *v = pl_value(&p);
    if (v != NULL) {
        pl_ws(&p);
        if (p.i == p.n)
            return v;
        json_decref(v);
    }
    return json_string(s);
}

/* ---- Python text forms ---- */

/* repr(float): the shortest round-tripping digits, Python's layout. */
static int json_str(struct aicp_buf *b, const char *s, size_t n)
{
    int rc = aicp_buf_puts(b, "\"");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': rc = aicp_buf_puts(b, "\\\""); break;
        case '\\': rc = aicp_buf_puts(b, "\\\\"); break;
        case '\n': rc = aicp_buf_puts(b, "\\n"); break;
        case '\r': rc = aicp_buf_puts(b, "\\r"); break;
        case '\t': rc = aicp_buf_puts(b, "\\t"); break;
        case '\b': rc = aicp_buf_puts(b, "\\b"); break;
        case '\f': rc = aicp_buf_puts(b, "\\f"); break;
        default:
            rc = c < 0x20 ? aicp_buf_printf(b, "\\u%04x", c) : aicp_buf_append(b, &s[i], 1);
        }
    }
    return rc ? rc : aicp_buf_puts(b, "\"");
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* json.dumps(v, indent=4, sort_keys=True, ensure_ascii=False) */
static int py_json(struct aicp_buf *b, const json_t *v, int level)
{
    int rc = 0;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        size_t n = json_object_size(v), i = 0;
        if (n == 0)
            return aicp_buf_puts(b, "{}");
        const char **keys = calloc(n, sizeof(*keys));
        if (keys == NULL)
            return AICP_ENOMEM;
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) keys[i++] = k;
        qsort(keys, n, sizeof(*keys), cmp_key);
        rc = aicp_buf_puts(b, "{\n");
        for (i = 0; rc == 0 && i < n; i++) {
            rc = aicp_buf_printf(b, "%*s", (level + 1) * 4, "");
            rc = rc ? rc : json_str(b, keys[i], strlen(keys[i]));
            rc = rc ? rc : aicp_buf_puts(b, ": ");
            rc = rc ? rc : py_json(b, json_object_get(v, keys[i]), level + 1);
            rc = rc ? rc : aicp_buf_puts(b, i + 1 < n ? ",\n" : "\n");
        }
        free(keys);
        return rc ? rc : aicp_buf_printf(b, "%*s}", level * 4, "");
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        if (n == 0)
            return aicp_buf_puts(b, "[]");
        rc = aicp_buf_puts(b, "[\n");
        for (size_t i = 0; rc == 0 && i < n; i++) {
            rc = aicp_buf_printf(b, "%*s", (level + 1) * 4, "");
            rc = rc ? rc : py_json(b, json_array_get(v, i), level + 1);
            rc = rc ? rc : aicp_buf_puts(b, i + 1 < n ? ",\n" : "\n");
        }
        return rc ? rc : aicp_buf_printf(b, "%*s]", level * 4, "");
    }
    case JSON_STRING: return json_str(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER: return aicp_buf_printf(b, "%lld", (long long)json_integer_value(v));
    case JSON_REAL: return aicp_buf_pyfloat(b, json_real_value(v), 1);
    case JSON_TRUE: return aicp_buf_puts(b, "true");
    case JSON_FALSE: return aicp_buf_puts(b, "false");
    default: return aicp_buf_puts(b, "null");
    }
}

static int py_repr_str(struct aicp_buf *b, const char *s, size_t n)
{
    char q = (memchr(s, '\'', n) != NULL && memchr(s, '"', n) == NULL) ? '"' : '\'';
    int rc = aicp_buf_append(b, &q, 1);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\' || c == (unsigned char)q)
            rc = aicp_buf_printf(b, "\\%c", c);
        else if (c == '\n')
            rc = aicp_buf_puts(b, "\\n");
        else if (c == '\r')
            rc = aicp_buf_puts(b, "\\r");
        else if (c == '\t')
            rc = aicp_buf_puts(b, "\\t");
        else if (c < 0x20 || c == 0x7f)
            rc = aicp_buf_printf(b, "\\x%02x", c);
        else
            rc = aicp_buf_append(b, &s[i], 1);
    }
    return rc ? rc : aicp_buf_append(b, &q, 1);
}

/* str(v) (top) / repr(v) (nested), as Python prints the values in --graph. */
static int py_str(struct aicp_buf *b, const json_t *v, int top)
{
    int rc = 0;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *x;
        int first = 1;
        rc = aicp_buf_puts(b, "{");
        json_object_foreach((json_t *)v, k, x) {
            rc = rc ? rc : aicp_buf_puts(b, first ? "" : ", ");
            rc = rc ? rc : py_repr_str(b, k, strlen(k));
            rc = rc ? rc : aicp_buf_puts(b, ": ");
            rc = rc ? rc : py_str(b, x, 0);
            first = 0;
        }
        return rc ? rc : aicp_buf_puts(b, "}");
    }
    case JSON_ARRAY: {
        rc = aicp_buf_puts(b, "[");
        for (size_t i = 0; rc == 0 && i < json_array_size(v); i++) {
            rc = aicp_buf_puts(b, i ? ", " : "");
            rc = rc ? rc : py_str(b, json_array_get(v, i), 0);
        }
        return rc ? rc : aicp_buf_puts(b, "]");
    }
    case JSON_STRING:
        if (top)
            return aicp_buf_append(b, json_string_value(v), json_string_length(v));
        return py_repr_str(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER: return aicp_buf_printf(b, "%lld", (long long)json_integer_value(v));
    case JSON_REAL: {
        double d = json_real_value(v);
        if (d != d)
            return aicp_buf_puts(b, "nan");
        if (d - d != 0)
            return aicp_buf_puts(b, d > 0 ? "inf" : "-inf");
        return aicp_buf_pyfloat(b, d, 1);
    }
    case JSON_TRUE: return aicp_buf_puts(b, "True");
    case JSON_FALSE: return aicp_buf_puts(b, "False");
    default: return aicp_buf_puts(b, "None");
    }
}

/* ---- ansible-inventory's --list, --graph ---- */

static int list_group(json_t *res, json_t *seen, const struct aicp_inventory *inv, size_t g)
{
    const char *name = aicp_inventory_group_name(inv, g);
    json_t *entry = json_object();
    json_t *children = aicp_inventory_group_children(inv, g);
    json_t *hosts = strcmp(name, "all") != 0 ? aicp_inventory_group_hosts(inv, g) : json_array();
    int rc = entry == NULL || children == NULL || hosts == NULL ? AICP_ENOMEM : 0;
    size_t i;
    json_t *c;
    json_array_foreach(children, i, c) {
        if (rc != 0)
            break;
        const char *cn = json_string_value(c);
        if (json_object_get(seen, cn) == NULL) {
            long ci = aicp_inventory_group_find(inv, cn);
            rc = ci < 0 ? AICP_ENOMEM : list_group(res, seen, inv, (size_t)ci);
            if (rc == 0 && json_object_set_new(seen, cn, json_true()) != 0)
                rc = AICP_ENOMEM;
        }
    }
    if (rc == 0 && json_array_size(hosts) > 0 && json_object_set(entry, "hosts", hosts) != 0)
        rc = AICP_ENOMEM;
    if (rc == 0 && json_array_size(children) > 0 && json_object_set(entry, "children", children) != 0)
        rc = AICP_ENOMEM;
    if (rc == 0 && json_object_size(entry) > 0 && json_object_set(res, name, entry) != 0)
        rc = AICP_ENOMEM;
    json_decref(entry);
    json_decref(children);
    json_decref(hosts);
    return rc;
}

int aicp_inventory_list_json(json_t **out, const struct aicp_inventory *inv, struct aicp_err *err)
{
    json_t *res = json_object(), *seen = json_object(), *hostvars = json_object(), *meta = json_object();
    int rc = res == NULL || seen == NULL || hostvars == NULL || meta == NULL ? AICP_ENOMEM : 0;
    *out = NULL;
    if (rc == 0)
        rc = list_group(res, seen, inv, 0);
    if (rc == AICP_ENOMEM)
        aicp_err_set(err, rc, "out of memory");
    for (size_t h = 0; rc == 0 && h < aicp_inventory_host_count(inv); h++) {
        json_t *vars = NULL;
        const char *name = aicp_inventory_host_name(inv, h);
        rc = aicp_inventory_host_json(&vars, inv, name, err);
        if (rc == 0 && json_object_size(vars) > 0 && json_object_set(hostvars, name, vars) != 0)
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        json_decref(vars);
    }
    if (rc == 0 && (json_object_set(meta, "hostvars", hostvars) != 0 || json_object_set(res, "_meta", meta) != 0))
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
    json_decref(seen);
    json_decref(hostvars);
    json_decref(meta);
    if (rc != 0) {
        json_decref(res);
        return rc;
    }
    *out = res;
    return 0;
}

static int graph_name(struct aicp_buf *b, const char *name, int depth)
{
    int rc = 0;
    for (int i = 0; rc == 0 && i < depth; i++)
        rc = aicp_buf_puts(b, "  |");
    rc = rc ? rc : aicp_buf_puts(b, depth ? "--" : "");
    rc = rc ? rc : aicp_buf_puts(b, name);
    return rc ? rc : aicp_buf_puts(b, "\n");
}

static int graph_vars(struct aicp_buf *b, const json_t *vars, int depth)
{
    size_t n = json_object_size(vars), i = 0;
    const char **keys = calloc(n + 1, sizeof(*keys));
    const char *k;
    json_t *x;
    int rc = keys == NULL ? AICP_ENOMEM : 0;
    if (rc == 0)
        json_object_foreach((json_t *)vars, k, x) keys[i++] = k;
    if (rc == 0)
        qsort(keys, n, sizeof(*keys), cmp_key);
    for (i = 0; rc == 0 && i < n; i++) {
        struct aicp_buf line = AICP_BUF_INIT;
        rc = aicp_buf_printf(&line, "{%s = ", keys[i]);
        rc = rc ? rc : py_str(&line, json_object_get(vars, keys[i]), 1);
        rc = rc ? rc : aicp_buf_puts(&line, "}");
        rc = rc ? rc : graph_name(b, line.data, depth);
        aicp_buf_free(&line);
    }
    free(keys);
    return rc;
}

static int graph_group(struct aicp_buf *b, const struct aicp_inventory *inv, size_t g, int depth, int with_vars,
                       struct aicp_err *err)
{
    const char *name = aicp_inventory_group_name(inv, g);
    struct aicp_buf title = AICP_BUF_INIT;
    int rc = aicp_buf_printf(&title, "@%s:", name);
    rc = rc ? rc : graph_name(b, title.data, depth);
    aicp_buf_free(&title);
    if (depth > 200)
        return aicp_err_set(err, AICP_EINVAL, "groups nested too deeply");
    json_t *children = aicp_inventory_group_children(inv, g);
    size_t i;
    json_t *c;
    json_array_foreach(children, i, c) {
        if (rc != 0)
            break;
        rc = graph_group(b, inv, (size_t)aicp_inventory_group_find(inv, json_string_value(c)), depth + 1, with_vars,
                         err);
    }
    json_decref(children);
    if (rc == 0 && strcmp(name, "all") != 0) {
        json_t *hosts = aicp_inventory_group_hosts(inv, g);
        json_array_foreach(hosts, i, c) {
            if (rc != 0)
                break;
            rc = graph_name(b, json_string_value(c), depth + 1);
            if (rc == 0 && with_vars) {
                json_t *vars = NULL;
                rc = aicp_inventory_host_json(&vars, inv, json_string_value(c), err);
                rc = rc ? rc : graph_vars(b, vars, depth + 2);
                json_decref(vars);
            }
        }
        json_decref(hosts);
    }
    if (rc == 0 && with_vars) {
        json_t *vars = NULL;
        rc = aicp_inventory_group_vars(&vars, inv, name, err);
        rc = rc ? rc : graph_vars(b, vars, depth + 1);
        json_decref(vars);
    }
    return rc;
}

int aicp_inventory_graph(char **out, const struct aicp_inventory *inv, const char *group, int with_vars,
                         struct aicp_err *err)
{
    struct aicp_buf b = AICP_BUF_INIT;
    *out = NULL;
    long g = aicp_inventory_group_find(inv, group != NULL ? group : "all");
    if (g < 0)
        return aicp_err_set(err, AICP_EUSAGE, "Pattern must be valid group name when using --graph");
    int rc = graph_group(&b, inv, (size_t)g, 0, with_vars, err);
    if (rc != 0) {
        if (rc == AICP_ENOMEM)
            aicp_err_set(err, rc, "out of memory");
        aicp_buf_free(&b);
        return rc;
    }
    *out = aicp_buf_steal(&b);
    return 0;
}

/* ---- the command ---- */

static void usage(FILE *f)
{
    fputs("usage: aicp inventory [-i INVENTORY]... (--list | --host HOST | --graph [GROUP] [--vars])\n"
          "                      [--playbook-dir DIR] [--output FILE]\n"
          "                      [--vault-password-file F | --vault-id [LABEL@]F ... | -J]\n",
          f);
}

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "aicp: inventory: %s%s\n", msg, arg != NULL ? arg : "");
    usage(stderr);
    return 64;
}

/* "--opt VALUE" or "--opt=VALUE"; *i advances past what was used. */
static const char *opt_value(int argc, char **argv, int *i, const char *longopt, const char *shortopt)
{
    const char *a = argv[*i];
    size_t ll = strlen(longopt);
    if (strcmp(a, longopt) == 0 || (shortopt != NULL && strcmp(a, shortopt) == 0)) {
        if (*i + 1 >= argc)
            return NULL;
        return argv[++*i];
    }
    if (strncmp(a, longopt, ll) == 0 && a[ll] == '=')
        return a + ll + 1;
    if (shortopt != NULL && strncmp(a, shortopt, 2) == 0 && a[2] != '\0')
        return a + 2;
    return NULL;
}

static int is_opt(const char *a, const char *longopt, const char *shortopt)
{
    size_t ll = strlen(longopt);
    return strcmp(a, longopt) == 0 || (strncmp(a, longopt, ll) == 0 && a[ll] == '=') ||
           (shortopt != NULL && strncmp(a, shortopt, 2) == 0);
}

int aicp_inventory_cli(int argc, char **argv)
{
    const char *sources[64], *ids[64], *files[64];
    size_t nsources = 0, nids = 0, nfiles = 0;
    int ask = 0;
    struct aicp_vault *vault = NULL;
    struct aicp_secrets *secrets = NULL;
    struct aicp_srcmap *map = NULL;
    const char *host = NULL, *output = NULL, *pattern = NULL, *playdir = NULL;
    int list = 0, graph = 0, with_vars = 0;
    struct aicp_err err = {0};
    struct aicp_inventory *inv = NULL;
    struct aicp_buf text = AICP_BUF_INIT;
    int status = 0, rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--list") == 0) {
            list = 1;
        } else if (strcmp(a, "--graph") == 0) {
            graph = 1;
        } else if (strcmp(a, "--vars") == 0) {
            with_vars = 1;
        } else if (strcmp(a, "-y") == 0 || strcmp(a, "--yaml") == 0 || strcmp(a, "--toml") == 0) {
            return usage_error("output formats other than JSON are not supported: ", a);
        } else if (is_opt(a, "--inventory", "-i") || strcmp(a, "--inventory-file") == 0) {
            if ((v = opt_value(argc, argv, &i, strcmp(a, "--inventory-file") == 0 ? a : "--inventory", "-i")) == NULL)
                return usage_error("option needs a value: ", a);
            if (nsources == sizeof(sources) / sizeof(sources[0]))
                return usage_error("too many inventory sources", NULL);
            sources[nsources++] = v;
        } else if (is_opt(a, "--vault-id", NULL) || is_opt(a, "--vault-password-file", NULL)) {
            int is_id = is_opt(a, "--vault-id", NULL);
            if ((v = opt_value(argc, argv, &i, is_id ? "--vault-id" : "--vault-password-file",
                               NULL)) == NULL)
                return usage_error("option needs a value: ", a);
            if (nids == 64 || nfiles == 64)
                return usage_error("too many vault passwords", NULL);
            if (is_id)
                ids[nids++] = v;
            else
                files[nfiles++] = v;
        } else if (strcmp(a, "-J") == 0 || strcmp(a, "--ask-vault-pass") == 0 ||
                   strcmp(a, "--ask-vault-password") == 0) {
            ask = 1;
        } else if (is_opt(a, "--host", NULL)) {
            if ((v = opt_value(argc, argv, &i, "--host", NULL)) == NULL)
                return usage_error("option needs a value: ", a);
            host = v;
        } else if (is_opt(a, "--output", NULL)) {
            if ((v = opt_value(argc, argv, &i, "--output", NULL)) == NULL)
                return usage_error("option needs a value: ", a);
            output = v;
        } else if (is_opt(a, "--playbook-dir", NULL)) {
            if ((v = opt_value(argc, argv, &i, "--playbook-dir", NULL)) == NULL)
                return usage_error("option needs a value: ", a);
            playdir = v;
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage_error("unknown option: ", a);
        } else if (pattern == NULL) {
            pattern = a;
        } else {
            return usage_error("unexpected argument: ", a);
        }
    }
    if (list + graph + (host != NULL) == 0)
        return usage_error("No action selected, at least one of --host, --graph or --list needs to be specified.",
                           NULL);
    if (list + graph + (host != NULL) > 1)
        return usage_error("Conflicting options used, only one of --host, --graph or --list can be used at the "
                           "same time.",
                           NULL);
    if (nsources == 0) {
        struct stat sb;
        if (stat("/etc/ansible/hosts", &sb) != 0)
            return usage_error("no inventory given (-i INVENTORY)", NULL);
        sources[nsources++] = "/etc/ansible/hosts";
    }

    if ((rc = aicp_vault_new(&vault)) != 0 || (rc = aicp_secrets_new(&secrets)) != 0 ||
        (rc = aicp_srcmap_new(&map)) != 0 || (rc = aicp_inventory_new(&inv, map)) != 0) {
        aicp_err_set(&err, rc, "out of memory");
        goto fail;
    }
    if ((rc = aicp_vault_add_cli(vault, ids, nids, files, nfiles, ask, &err)) != 0)
        goto fail;
    aicp_srcmap_set_vault(map, vault, secrets);
    for (size_t i = 0; i < nsources; i++)
        if ((rc = aicp_inventory_load(inv, sources[i], &err)) != 0)
            goto fail;
    if (playdir != NULL && (rc = aicp_inventory_add_vars_dir(inv, playdir, &err)) != 0)
        goto fail;

    if (list) {
        json_t *res = NULL;
        if ((rc = aicp_inventory_list_json(&res, inv, &err)) != 0)
            goto fail;
        rc = py_json(&text, res, 0);
        json_decref(res);
    } else if (host != NULL) {
        json_t *hosts = NULL, *vars = NULL;
        if ((rc = aicp_inventory_match(&hosts, inv, host, &err)) != 0)
            goto fail;
        if (json_array_size(hosts) != 1) {
            json_decref(hosts);
            aicp_err_set(&err, AICP_EUSAGE, "You must pass a single valid host to --host parameter");
            rc = AICP_EUSAGE;
            goto fail;
        }
        rc = aicp_inventory_host_json(&vars, inv, json_string_value(json_array_get(hosts, 0)), &err);
        json_decref(hosts);
        if (rc != 0)
            goto fail;
        rc = py_json(&text, vars, 0);
        json_decref(vars);
    } else {
        char *g = NULL;
        if ((rc = aicp_inventory_graph(&g, inv, pattern != NULL ? pattern : "all", with_vars, &err)) != 0)
            goto fail;
        rc = aicp_buf_puts(&text, g);
        free(g);
        /* the graph already ends in a newline; print() adds none more */
        if (rc == 0 && text.len > 0)
            text.data[--text.len] = '\0';
    }
    if (rc != 0) {
        aicp_err_set(&err, AICP_ENOMEM, "out of memory");
        goto fail;
    }
    /* Vaulted values are shown masked, never in the clear. */
    if (aicp_buf_puts(&text, "\n") != 0 || aicp_secrets_mask_buf(secrets, &text) != 0) {
        rc = aicp_err_set(&err, AICP_ENOMEM, "out of memory");
        goto fail;
    }
    FILE *f = output != NULL ? fopen(output, "w") : stdout;
    if (f == NULL) {
        rc = aicp_err_set(&err, AICP_EIO, "Unable to write to destination file (%s): %s", output, strerror(errno));
        goto fail;
    }
    int bad = fwrite(text.data, 1, text.len, f) != text.len;
    bad |= output != NULL ? fclose(f) != 0 : fflush(f) != 0;
    if (bad) {
        rc = aicp_err_set(&err, AICP_EIO, "cannot write %s", output != NULL ? output : "standard output");
        goto fail;
    }
    goto out;
fail:
    fprintf(stderr, "aicp: %s\n", err.msg[0] ? err.msg : aicp_strerror(rc));
    status = aicp_err_exit_status(rc);
out:
    aicp_buf_free_secret(&text);
    aicp_inventory_free(inv);
    aicp_srcmap_free(map);
    aicp_secrets_free(secrets);
    aicp_vault_free(vault);
    return status;
}
