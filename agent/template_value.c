/* Python's view of JSON values for the template engine: str() and repr()
 * as Jinja2 prints them, ==, ordering and truthiness, the small argument
 * and result helpers every filter, test and method shares, and the
 * to_json/to_yaml serializers that follow Python's json.dumps and
 * PyYAML's output byte for byte. Kept apart from the filters so that the
 * value semantics can be read (and changed) in one place. */
#include "config.h"

#include <ctype.h>
#include <math.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "err.h"
#include "template.h"
#include "util.h"

/* ------------------------------------------------------- Python values */

int aicp_tmpl_truthy(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING: return json_string_length(v) > 0;
    case JSON_ARRAY: return json_array_size(v) > 0;
    case JSON_OBJECT: return json_object_size(v) > 0;
    case JSON_INTEGER: return json_integer_value(v) != 0;
    case JSON_REAL: return json_real_value(v) != 0;
    case JSON_TRUE: return 1;
    default: return 0;
    }
}

const char *aicp_tmpl_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING: return "str";
    case JSON_ARRAY: return "list";
    case JSON_OBJECT: return "dict";
    case JSON_INTEGER: return "int";
    case JSON_REAL: return "float";
    case JSON_TRUE:
    case JSON_FALSE: return "bool";
    default: return "NoneType";
    }
}

size_t aicp_tmpl_utf8_len(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    return n;
}

double aicp_tmpl_floor(double x)
{
    /* Beyond 2^52 every double is integral already. */
    if (!isfinite(x) || x >= 4503599627370496.0 || x <= -4503599627370496.0)
        return x;
    double t = (double)(long long)x;
    return t > x ? t - 1 : t;
}

int aicp_tmpl_pow(double *out, double base, double exp)
{
    if (aicp_tmpl_floor(exp) != exp || exp > 1e6 || exp < -1e6)
        return AICP_EINVAL;
    double acc = 1, b = base;
    long long e = (long long)(exp < 0 ? -exp : exp);
    for (; e > 0; e >>= 1) {
        if (e & 1)
            acc *= b;
        b *= b;
    }
    *out = exp < 0 ? 1 / acc : acc;
    return 0;
}

/* float.__repr__: the shortest digits that round-trip, scientific
 * notation below 1e-4 and from 1e16. */
unsigned long aicp_tmpl_utf8_decode(const char *s, size_t len, size_t *used)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = u[0] >= 0xF0 ? 4 : u[0] >= 0xE0 ? 3 : u[0] >= 0xC0 ? 2 : 1;
    if (n > len)
        n = 1;
    unsigned long cp = n == 1 ? u[0] : u[0] & (0x3F >> (n - 1));
    for (size_t i = 1; i < n; i++)
        cp = (cp << 6) | (u[i] & 0x3F);
    *used = n;
    return cp;
}

static int repr_string(struct aicp_buf *b, const char *s, size_t len)
{
    char q = memchr(s, '\'', len) && !memchr(s, '"', len) ? '"' : '\'';
    int rc = aicp_buf_append(b, &q, 1);
    for (size_t i = 0; i < len && rc == 0;) {
        size_t used;
        unsigned long cp = aicp_tmpl_utf8_decode(s + i, len - i, &used);
        if (cp == '\\' || cp == (unsigned long)q)
            rc = aicp_buf_printf(b, "\\%c", (char)cp);
        else if (cp == '\n')
            rc = aicp_buf_puts(b, "\\n");
        else if (cp == '\r')
            rc = aicp_buf_puts(b, "\\r");
        else if (cp == '\t')
            rc = aicp_buf_puts(b, "\\t");
        else if (cp < 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD)
            rc = aicp_buf_printf(b, "\\x%02lx", cp);
        else if ((cp >= 0x2028 && cp <= 0x2029) || (cp >= 0x200B && cp <= 0x200F) ||
                 cp == 0xFEFF)
            rc = aicp_buf_printf(b, "\\u%04lx", cp);
        else
            rc = aicp_buf_append(b, s + i, used);
        i += used;
    }
    if (rc == 0)
        rc = aicp_buf_append(b, &q, 1);
    return rc;
}

static int repr_depth(struct aicp_buf *b, const json_t *v, int depth)
{
    size_t i;
    const char *k;
    json_t *x;
    int rc = 0;
    if (depth > 500)
        return aicp_buf_puts(b, "...");
    switch (json_typeof(v)) {
    case JSON_STRING:
        return repr_string(b, json_string_value(v), json_string_length(v));
    case JSON_ARRAY:
        rc = aicp_buf_puts(b, "[");
        json_array_foreach(v, i, x) {
            if (i)
                rc |= aicp_buf_puts(b, ", ");
            rc |= repr_depth(b, x, depth + 1);
        }
        return rc | aicp_buf_puts(b, "]");
    case JSON_OBJECT:
        rc = aicp_buf_puts(b, "{");
        i = 0;
        json_object_foreach((json_t *)v, k, x) {
            if (i++)
                rc |= aicp_buf_puts(b, ", ");
            rc |= repr_string(b, k, strlen(k));
            rc |= aicp_buf_puts(b, ": ");
            rc |= repr_depth(b, x, depth + 1);
        }
        return rc | aicp_buf_puts(b, "}");
    default:
        return aicp_tmpl_str(b, v);
    }
}

int aicp_tmpl_repr(struct aicp_buf *b, const json_t *v)
{
    return repr_depth(b, v, 0) ? AICP_ENOMEM : 0;
}

int aicp_tmpl_str(struct aicp_buf *b, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING: return aicp_buf_append(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER: return aicp_buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    case JSON_REAL: return aicp_buf_pyfloat(b, json_real_value(v), 0);
    case JSON_TRUE: return aicp_buf_puts(b, "True");
    case JSON_FALSE: return aicp_buf_puts(b, "False");
    case JSON_NULL: return aicp_buf_puts(b, "None");
    default: return aicp_tmpl_repr(b, v);
    }
}

int aicp_tmpl_is_num(const json_t *v, double *d)
{
    if (json_is_integer(v))
        *d = (double)json_integer_value(v);
    else if (json_is_real(v))
        *d = json_real_value(v);
    else if (json_is_boolean(v))
        *d = json_is_true(v);
    else
        return 0;
    return 1;
}

int aicp_tmpl_equal(const json_t *a, const json_t *b)
{
    double da, db;
    if (aicp_tmpl_is_num(a, &da) && aicp_tmpl_is_num(b, &db)) {
        if (json_is_integer(a) && json_is_integer(b))
            return json_integer_value(a) == json_integer_value(b);
        return da == db;
    }
    if (json_typeof(a) != json_typeof(b))
        return 0;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!aicp_tmpl_equal(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    }
    if (json_is_object(a)) {
        const char *k;
        json_t *x;
        if (json_object_size(a) != json_object_size(b))
            return 0;
        json_object_foreach((json_t *)a, k, x) {
            json_t *y = json_object_get(b, k);
            if (y == NULL || !aicp_tmpl_equal(x, y))
                return 0;
        }
        return 1;
    }
    return json_equal((json_t *)a, (json_t *)b);
}

int aicp_tmpl_fold_cmp(const char *a, size_t la, const char *b, size_t lb, int fold)
{
    size_t n = la < lb ? la : lb;
    for (size_t i = 0; i < n; i++) {
        int x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (fold) {
            x = tolower(x);
            y = tolower(y);
        }
        if (x != y)
            return x < y ? -1 : 1;
    }
    return la < lb ? -1 : la > lb;
}

int aicp_tmpl_compare(int *out, const json_t *a, const json_t *b, int fold, struct aicp_err *err)
{
    double da, db;
    *out = 0;
    if (aicp_tmpl_is_num(a, &da) && aicp_tmpl_is_num(b, &db)) {
        if (json_is_integer(a) && json_is_integer(b))
            *out = (json_integer_value(a) > json_integer_value(b)) -
                   (json_integer_value(a) < json_integer_value(b));
        else
            *out = (da > db) - (da < db);
        return 0;
    }
    if (json_is_string(a) && json_is_string(b)) {
        *out = aicp_tmpl_fold_cmp(json_string_value(a), json_string_length(a), json_string_value(b),
                        json_string_length(b), fold);
        return 0;
    }
    if (json_is_array(a) && json_is_array(b)) {
        size_t na = json_array_size(a), nb = json_array_size(b);
        for (size_t i = 0; i < na && i < nb; i++) {
            if (aicp_tmpl_equal(json_array_get(a, i), json_array_get(b, i)))
                continue;
            return aicp_tmpl_compare(out, json_array_get(a, i), json_array_get(b, i), fold, err);
        }
        *out = (na > nb) - (na < nb);
        return 0;
    }
    return aicp_err_set(err, AICP_EINVAL, "'<' not supported between instances of '%s' and '%s'",
                        aicp_tmpl_type_name(a), aicp_tmpl_type_name(b));
}

/* ------------------------------------------------------------- helpers */

json_t *aicp_tmpl_arg(const struct aicp_tmpl_args *a, size_t i, const char *kw)
{
    if (i < a->npos)
        return a->pos[i];
    for (size_t k = 0; kw && k < a->nkw; k++)
        if (!strcmp(a->kwname[k], kw))
            return a->kw[k];
    return NULL;
}

int aicp_tmpl_arg_bool(const struct aicp_tmpl_args *a, size_t i, const char *kw, int dflt)
{
    json_t *v = aicp_tmpl_arg(a, i, kw);
    return v ? aicp_tmpl_truthy(v) : dflt;
}

json_t *aicp_tmpl_str_new(const struct aicp_buf *b)
{
    return json_stringn(b->data ? b->data : "", b->len);
}

/* str() of a value into a fresh buffer. */
int aicp_tmpl_to_buf(struct aicp_buf *b, const json_t *v, struct aicp_err *err)
{
    *b = (struct aicp_buf)AICP_BUF_INIT;
    if (aicp_tmpl_str(b, v) != 0)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    if (b->data == NULL && aicp_buf_puts(b, "") != 0)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    return 0;
}

int aicp_tmpl_set_out(json_t **out, json_t *v, struct aicp_err *err)
{
    *out = v;
    return v ? 0 : aicp_err_set(err, AICP_EINVAL, "result is not representable (invalid UTF-8 "
                                                  "or out of memory)");
}

int aicp_tmpl_need_str(const json_t *v, const char *what, struct aicp_err *err)
{
    if (json_is_string(v))
        return 0;
    return aicp_err_set(err, AICP_EINVAL, "%s expects a string, got %s", what,
                        aicp_tmpl_type_name(v));
}


/* ------------------------------------------------------- JSON and YAML */

/* json.dumps string escaping with ensure_ascii=True. */
static int json_quote(struct aicp_buf *b, const char *s, size_t len)
{
    int rc = aicp_buf_puts(b, "\"");
    for (size_t i = 0; i < len && rc == 0;) {
        size_t used;
        unsigned long cp = aicp_tmpl_utf8_decode(s + i, len - i, &used);
        i += used;
        if (cp == '"' || cp == '\\')
            rc = aicp_buf_printf(b, "\\%c", (char)cp);
        else if (cp == '\n')
            rc = aicp_buf_puts(b, "\\n");
        else if (cp == '\r')
            rc = aicp_buf_puts(b, "\\r");
        else if (cp == '\t')
            rc = aicp_buf_puts(b, "\\t");
        else if (cp == '\b')
            rc = aicp_buf_puts(b, "\\b");
        else if (cp == '\f')
            rc = aicp_buf_puts(b, "\\f");
        else if (cp < 0x20 || (cp >= 0x7F && cp < 0x10000))
            rc = aicp_buf_printf(b, "\\u%04lx", cp);
        else if (cp >= 0x10000)
            rc = aicp_buf_printf(b, "\\u%04lx\\u%04lx", 0xD800 + ((cp - 0x10000) >> 10),
                                 0xDC00 + ((cp - 0x10000) & 0x3FF));
        else
            rc = aicp_buf_append(b, s + i - used, used);
    }
    return rc | aicp_buf_puts(b, "\"");
}

static int key_cmp(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* The keys of an object, sorted or in insertion order; free() the array. */
static const char **obj_keys(const json_t *o, int sorted)
{
    const char **keys = malloc((json_object_size(o) + 1) * sizeof(*keys));
    const char *k;
    json_t *v;
    size_t n = 0;
    if (keys == NULL)
        return NULL;
    json_object_foreach((json_t *)o, k, v) keys[n++] = k;
    if (sorted)
        qsort(keys, n, sizeof(*keys), key_cmp);
    keys[n] = NULL;
    return keys;
}

static int json_dump(struct aicp_buf *b, const json_t *v, int indent, int sort, int level)
{
    int rc = 0;
    const char *item_sep = indent >= 0 ? "," : ", ";
    if (level > 500)
        return AICP_EINVAL;
    switch (json_typeof(v)) {
    case JSON_STRING: return json_quote(b, json_string_value(v), json_string_length(v));
    case JSON_TRUE: return aicp_buf_puts(b, "true");
    case JSON_FALSE: return aicp_buf_puts(b, "false");
    case JSON_NULL: return aicp_buf_puts(b, "null");
    case JSON_INTEGER:
    case JSON_REAL: return aicp_tmpl_str(b, v);
    case JSON_ARRAY:
    case JSON_OBJECT: break;
    }
    int arr = json_is_array(v);
    size_t n = arr ? json_array_size(v) : json_object_size(v);
    if (n == 0)
        return aicp_buf_puts(b, arr ? "[]" : "{}");
    const char **keys = arr ? NULL : obj_keys(v, sort);
    if (!arr && keys == NULL)
        return AICP_ENOMEM;
    rc = aicp_buf_puts(b, arr ? "[" : "{");
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (i)
            rc |= aicp_buf_puts(b, item_sep);
        if (indent >= 0) {
            rc |= aicp_buf_puts(b, "\n");
            for (int k = 0; k < indent * (level + 1); k++)
                rc |= aicp_buf_puts(b, " ");
        }
        if (arr) {
            rc |= json_dump(b, json_array_get(v, i), indent, sort, level + 1);
        } else {
            rc |= json_quote(b, keys[i], strlen(keys[i]));
            rc |= aicp_buf_puts(b, ": ");
            rc |= json_dump(b, json_object_get(v, keys[i]), indent, sort, level + 1);
        }
    }
    if (indent >= 0) {
        rc |= aicp_buf_puts(b, "\n");
        for (int k = 0; k < indent * level; k++)
            rc |= aicp_buf_puts(b, " ");
    }
    free(keys);
    return rc | aicp_buf_puts(b, arr ? "]" : "}");
}

int aicp_tmpl_to_json(json_t **out, json_t *in, int indent, int sort, struct aicp_err *err)
{
    struct aicp_buf b = AICP_BUF_INIT;
    int rc = json_dump(&b, in, indent, sort, 0);
    if (rc == 0)
        rc = aicp_tmpl_set_out(out, aicp_tmpl_str_new(&b), err);
    else
        rc = aicp_err_set(err, AICP_EINVAL, "to_json: value nested too deeply");
    aicp_buf_free(&b);
    return rc;
}

/* Whether PyYAML would write s as a plain scalar. */
static int yaml_plain_ok(const char *s, size_t len, int flow)
{
    static const char *const special[] = {"true", "false", "yes", "no", "on", "off", "null",
                                          "y", "n", "~", NULL};
    if (len == 0 || aicp_tmpl_isspace((unsigned char)s[0]) ||
        aicp_tmpl_isspace((unsigned char)s[len - 1]))
        return 0;
    if (strchr("-?:", s[0]) && (len == 1 || aicp_tmpl_isspace((unsigned char)s[1])))
        return 0;
    if (strchr(",[]{}#&*!|>'\"%@`", s[0]))
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F)
            return 0;
        if (c == ':' && (i + 1 == len || s[i + 1] == ' '))
            return 0;
        if (c == '#' && i > 0 && s[i - 1] == ' ')
            return 0;
        if (flow && strchr(",[]{}", c))
            return 0;
    }
    for (size_t k = 0; special[k]; k++)
        if (strlen(special[k]) == len && aicp_tmpl_fold_cmp(s, len, special[k], len, 1) == 0)
            return 0;
    /* Anything that reads as a number or date must be quoted. */
    char *end;
    strtod(s, &end);
    if (end == s + len || (isdigit((unsigned char)s[0]) && strchr(s, '-') && len == 10))
        return 0;
    if (s[0] == '.' || s[0] == '+' || s[0] == '=' || s[0] == '<')
        return strcmp(s, "..") != 0 && s[0] != '.' && s[0] != '=';
    return 1;
}

static int yaml_scalar(struct aicp_buf *b, const json_t *v, int flow)
{
    if (json_is_null(v))
        return aicp_buf_puts(b, "null");
    if (json_is_boolean(v))
        return aicp_buf_puts(b, json_is_true(v) ? "true" : "false");
    if (json_is_integer(v))
        return aicp_tmpl_str(b, v);
    if (json_is_real(v)) {
        struct aicp_buf t = AICP_BUF_INIT;
        int rc = aicp_tmpl_str(&t, v);
        char *e = t.data ? strchr(t.data, 'e') : NULL;
        if (rc == 0 && e && !memchr(t.data, '.', (size_t)(e - t.data))) {
            rc |= aicp_buf_append(b, t.data, (size_t)(e - t.data));
            rc |= aicp_buf_puts(b, ".0");
            rc |= aicp_buf_puts(b, e);
        } else if (rc == 0) {
            rc = aicp_buf_puts(b, !strcmp(t.data, "inf") ? ".inf" : !strcmp(t.data, "nan") ? ".nan"
                                                                                         : t.data);
        }
        aicp_buf_free(&t);
        return rc;
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (yaml_plain_ok(s, len, flow))
        return aicp_buf_append(b, s, len);
    int printable = 1;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7F)
            printable = 0;
    int rc = 0;
    if (printable) {
        rc = aicp_buf_puts(b, "'");
        for (size_t i = 0; i < len; i++)
            rc |= aicp_buf_append(b, s[i] == '\'' ? "''" : &s[i], s[i] == '\'' ? 2 : 1);
        return rc | aicp_buf_puts(b, "'");
    }
    rc = aicp_buf_puts(b, "\"");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            rc |= aicp_buf_printf(b, "\\%c", c);
        else if (c == '\n')
            rc |= aicp_buf_puts(b, "\\n");
        else if (c == '\t')
            rc |= aicp_buf_puts(b, "\\t");
        else if (c == '\r')
            rc |= aicp_buf_puts(b, "\\r");
        else if (c < 0x20 || c == 0x7F)
            rc |= aicp_buf_printf(b, "\\x%02X", c);
        else
            rc |= aicp_buf_append(b, &s[i], 1);
    }
    return rc | aicp_buf_puts(b, "\"");
}

static int is_leaf_collection(const json_t *v)
{
    size_t i;
    const char *k;
    json_t *x;
    if (json_is_array(v)) {
        json_array_foreach(v, i, x) if (json_is_array(x) || json_is_object(x)) return 0;
    } else {
        json_object_foreach((json_t *)v, k, x) if (json_is_array(x) || json_is_object(x)) return 0;
    }
    return 1;
}

static int yaml_flow(struct aicp_buf *b, const json_t *v)
{
    int rc, arr = json_is_array(v);
    if (!arr && !json_is_object(v))
        return yaml_scalar(b, v, 1);
    const char **keys = arr ? NULL : obj_keys(v, 1);
    size_t n = arr ? json_array_size(v) : json_object_size(v);
    rc = aicp_buf_puts(b, arr ? "[" : "{");
    for (size_t i = 0; i < n; i++) {
        if (i)
            rc |= aicp_buf_puts(b, ", ");
        if (arr) {
            rc |= yaml_flow(b, json_array_get(v, i));
        } else {
            json_t *kv = json_string(keys[i]);
            rc |= yaml_scalar(b, kv, 1);
            json_decref(kv);
            rc |= aicp_buf_puts(b, ": ");
            rc |= yaml_flow(b, json_object_get(v, keys[i]));
        }
    }
    free(keys);
    return rc | aicp_buf_puts(b, arr ? "]" : "}");
}

static int pad(struct aicp_buf *b, int n)
{
    int rc = 0;
    for (int i = 0; i < n; i++)
        rc |= aicp_buf_puts(b, " ");
    return rc;
}

/* PyYAML block style: sequences inside mappings are not indented; a
 * mapping inside a sequence starts on the dash's line. col is where this
 * node's lines start; inline says the first line is already positioned. */
static int yaml_block(struct aicp_buf *b, const json_t *v, int indent, int col, int inline_first,
                      int flow_leaves, int level)
{
    int rc = 0;
    if (level > 500)
        return AICP_EINVAL;
    int arr = json_is_array(v);
    size_t n = arr ? json_array_size(v) : json_object_size(v);
    if ((!arr && !json_is_object(v)) || n == 0 || (flow_leaves && is_leaf_collection(v))) {
        rc = yaml_flow(b, v);
        return rc | aicp_buf_puts(b, "\n");
    }
    const char **keys = arr ? NULL : obj_keys(v, 1);
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (i > 0 || !inline_first)
            rc |= pad(b, col);
        json_t *x = arr ? json_array_get(v, i) : json_object_get(v, keys[i]);
        int xcoll = (json_is_array(x) && json_array_size(x)) ||
                    (json_is_object(x) && json_object_size(x));
        if (xcoll && flow_leaves && is_leaf_collection(x))
            xcoll = 0;
        if (arr) {
            rc |= aicp_buf_puts(b, "-");
            if (xcoll) {
                rc |= pad(b, indent - 1);
                rc |= yaml_block(b, x, indent, col + indent, 1, flow_leaves, level + 1);
            } else {
                rc |= aicp_buf_puts(b, " ");
                rc |= yaml_block(b, x, indent, col + 2, 1, flow_leaves, level + 1);
            }
        } else {
            json_t *kv = json_string(keys[i]);
            rc |= yaml_scalar(b, kv, 0);
            json_decref(kv);
            rc |= aicp_buf_puts(b, ":");
            if (xcoll) {
                rc |= aicp_buf_puts(b, "\n");
                rc |= yaml_block(b, x, indent, json_is_array(x) ? col : col + indent, 0,
                                 flow_leaves, level + 1);
            } else {
                rc |= aicp_buf_puts(b, " ");
                rc |= yaml_block(b, x, indent, col + indent, 1, flow_leaves, level + 1);
            }
        }
    }
    free(keys);
    return rc;
}

int aicp_tmpl_to_yaml(json_t **out, json_t *in, int indent, int flow_leaves, struct aicp_err *err)
{
    struct aicp_buf b = AICP_BUF_INIT;
    int rc = yaml_block(&b, in, indent, 0, 1, flow_leaves, 0);
    if (rc == 0)
        rc = aicp_tmpl_set_out(out, aicp_tmpl_str_new(&b), err);
    else
        rc = aicp_err_set(err, AICP_EINVAL, "to_yaml: value nested too deeply");
    aicp_buf_free(&b);
    return rc;
}
