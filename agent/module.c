/* Module arguments: validation of a task's arguments against a module's
 * table (canonical names, aliases, Ansible's type coercions, choices,
 * defaults), typed accessors for modules, chmod-style mode parsing, and the
 * port of Ansible's split_args/parse_kv that turns `k=v free words` strings
 * into argument objects. Messages follow Ansible's wording so that users can
 * search for them. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "module.h"
#include "template.h"
#include "util.h"

/* ---- small helpers ---------------------------------------------------- */

int aicp_parse_bool(const char *s)
{
    static const char *const yes[] = {"yes", "on", "1", "true", "y", "t", "1.0"};
    static const char *const no[] = {"no", "off", "0", "false", "n", "f", "0.0"};
    if (s == NULL)
        return -1;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        if (strcasecmp(s, yes[i]) == 0)
            return 1;
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        if (strcasecmp(s, no[i]) == 0)
            return 0;
    return -1;
}

/* Python's type name of a JSON value, as Ansible's messages print it. */
static const char *py_type(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING: return "str";
    case JSON_INTEGER: return "int";
    case JSON_REAL: return "float";
    case JSON_TRUE:
    case JSON_FALSE: return "bool";
    case JSON_ARRAY: return "list";
    case JSON_OBJECT: return "dict";
    default: return "NoneType";
    }
}

/* 1 when name is the item's name or one of its '|'-separated aliases. */
static int in_bar_list(const char *list, const char *name)
{
    size_t n = strlen(name);
    const char *p = list;
    while (p != NULL && *p != '\0') {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return 1;
        p = bar ? bar + 1 : NULL;
    }
    return 0;
}

static const struct aicp_arg_spec *spec_find(const struct aicp_module *mod, const char *name)
{
    if (mod == NULL || mod->args == NULL)
        return NULL;
    for (const struct aicp_arg_spec *s = mod->args; s->name != NULL; s++)
        if (strcmp(s->name, name) == 0)
            return s;
    for (const struct aicp_arg_spec *s = mod->args; s->name != NULL; s++)
        if (s->aliases != NULL && in_bar_list(s->aliases, name))
            return s;
    return NULL;
}

int aicp_arg_is_secret(const struct aicp_module *mod, const char *name)
{
    const struct aicp_arg_spec *s = spec_find(mod, name);
    return s != NULL && s->secret;
}

int aicp_arg_is_credential(const struct aicp_module *mod, const char *name)
{
    const struct aicp_arg_spec *s = spec_find(mod, name);
    return s != NULL && s->credential;
}

static int full_strtoll(const char *s, long long *out)
{
    char *end = NULL;
    while (isspace((unsigned char)*s))
        s++;
    if (*s == '\0')
        return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s)
        return -1;
    while (isspace((unsigned char)*end))
        end++;
    if (*end != '\0')
        return -1;
    *out = v;
    return 0;
}

static int full_strtod(const char *s, double *out)
{
    char *end = NULL;
    while (isspace((unsigned char)*s))
        s++;
    if (*s == '\0')
        return -1;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s)
        return -1;
    while (isspace((unsigned char)*end))
        end++;
    if (*end != '\0')
        return -1;
    *out = v;
    return 0;
}

/* Scalars as Python's str() prints them; NULL for lists and dicts. */
static json_t *scalar_to_str(const json_t *v)
{
    char tmp[64];
    switch (json_typeof(v)) {
    case JSON_STRING: return json_incref((json_t *)v);
    case JSON_TRUE: return json_string("True");
    case JSON_FALSE: return json_string("False");
    case JSON_INTEGER:
        snprintf(tmp, sizeof(tmp), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return json_string(tmp);
    case JSON_REAL: {
        double d = json_real_value(v);
        /* Python prints 1.0, not 1 */
        if (isfinite(d) && d == floor(d) && fabs(d) < 1e16)
            snprintf(tmp, sizeof(tmp), "%.1f", d);
        else
            snprintf(tmp, sizeof(tmp), "%.17g", d);
        return json_string(tmp);
    }
    default: return NULL;
    }
}

/* Ansible's check_type_dict for strings: JSON, or k=v pairs separated by
 * spaces or commas, with quotes and backslash escapes honoured. */
static json_t *str_to_dict(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    if (*s == '{') {
        json_t *j = json_loads(s, JSON_DECODE_ANY, NULL);
        if (j != NULL && !json_is_object(j)) {
            json_decref(j);
            j = NULL;
        }
        return j;
    }
    if (strchr(s, '=') == NULL)
        return NULL;
    json_t *out = json_object();
    struct aicp_buf field = AICP_BUF_INIT;
    char quote = 0;
    int ok = out != NULL;
    for (const char *p = s;; p++) {
        char c = *p;
        if (c == '\0' || (!quote && (c == ' ' || c == ','))) {
            if (field.len > 0) {
                char *eq = strchr(field.data, '=');
                if (eq == NULL) {
                    ok = 0;
                    break;
                }
                *eq = '\0';
                if (json_object_set_new(out, field.data, json_string(eq + 1)) != 0)
                    ok = 0;
                field.len = 0;
                field.data[0] = '\0';
            }
            if (c == '\0')
                break;
            continue;
        }
        if (c == '\\' && p[1] != '\0') {
            p++;
            ok = ok && aicp_buf_append(&field, p, 1) == 0;
            continue;
        }
        if (quote && c == quote) {
            quote = 0;
            continue;
        }
        if (!quote && (c == '\'' || c == '"')) {
            quote = c;
            continue;
        }
        ok = ok && aicp_buf_append(&field, &c, 1) == 0;
    }
    aicp_buf_free(&field);
    if (!ok || quote) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* Splits s on commas into a list of strings (Python's str.split(",")). */
static json_t *str_to_list(const char *s)
{
    json_t *out = json_array();
    const char *p = s;
    while (out != NULL) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (json_array_append_new(out, json_stringn(p, len)) != 0) {
            json_decref(out);
            return NULL;
        }
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return out;
}

/* ---- modes ---------------------------------------------------------------- */

static int is_octal_str(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '7')
            return 0;
    return 1;
}

/* chmod's symbolic modes as Ansible's _symbolic_mode_to_octal applies them.
 * An empty "who" applies the umask, assumed to be 022 (the remote umask is
 * not known here). Returns -2 when unparsable. */
static int symbolic_mode(const char *s, int base)
{
    int mode = base < 0 ? 0 : base & 07777;
    const char *p = s;
    if (*p == '\0')
        return -2;
    while (*p != '\0') {
        unsigned who = 0;
        int any_who = 0;
        for (; *p && strchr("ugoa", *p); p++) {
            any_who = 1;
            who |= *p == 'u' ? 1u : *p == 'g' ? 2u : *p == 'o' ? 4u : 7u;
        }
        int use_umask = !any_who;
        if (!any_who)
            who = 7u;
        if (*p != '+' && *p != '-' && *p != '=')
            return -2;
        while (*p == '+' || *p == '-' || *p == '=') {
            char op = *p++;
            int prev = mode;
            int bits = 0;
            for (; *p && strchr("rwxXstugo", *p); p++) {
                for (int i = 0; i < 3; i++) {
                    if (!(who & (1u << i)))
                        continue;
                    int shift = 6 - 3 * i; /* u=6 g=3 o=0 */
                    switch (*p) {
                    case 'r': bits |= 4 << shift; break;
                    case 'w': bits |= 2 << shift; break;
                    case 'x': bits |= 1 << shift; break;
                    case 'X':
                        if (prev & 0111)
                            bits |= 1 << shift;
                        break;
                    case 's':
                        if (i == 0)
                            bits |= 04000;
                        else if (i == 1)
                            bits |= 02000;
                        break;
                    case 't':
                        if (i == 2)
                            bits |= 01000;
                        break;
                    default: { /* copy another class's bits from the old mode */
                        int from = *p == 'u' ? 6 : *p == 'g' ? 3 : 0;
                        bits |= ((prev >> from) & 7) << shift;
                        break;
                    }
                    }
                }
            }
            if (use_umask)
                bits &= ~022;
            int mask = 0;
            if (who & 1u)
                mask |= 04700;
            if (who & 2u)
                mask |= 02070;
            if (who & 4u)
                mask |= 01007;
            if (op == '=')
                mode = (mode & ~mask) | bits;
            else if (op == '+')
                mode |= bits;
            else
                mode &= ~bits;
        }
        if (*p == ',')
            p++;
        else if (*p != '\0')
            return -2;
    }
    return mode;
}

static int mode_value(const json_t *v, int base)
{
    if (json_is_integer(v)) {
        json_int_t m = json_integer_value(v);
        return m >= 0 && m <= 07777 ? (int)m : -2;
    }
    if (!json_is_string(v))
        return -2;
    const char *s = json_string_value(v);
    if (is_octal_str(s)) {
        long m = strtol(s, NULL, 8);
        return m <= 07777 ? (int)m : -2;
    }
    return symbolic_mode(s, base);
}

int aicp_args_mode(const struct aicp_args *a, const char *name, int base)
{
    const json_t *v = aicp_args_get(a, name);
    if (v == NULL || json_is_null(v))
        return -1;
    return mode_value(v, base);
}

/* ---- coercion ----------------------------------------------------------- */

static const char *type_name(enum aicp_arg_type t)
{
    switch (t) {
    case AICP_ARG_BOOL: return "bool";
    case AICP_ARG_INT: return "int";
    case AICP_ARG_FLOAT: return "float";
    case AICP_ARG_LIST: return "list";
    case AICP_ARG_DICT: return "dict";
    case AICP_ARG_PATH: return "path";
    case AICP_ARG_MODE: return "raw";
    case AICP_ARG_RAW: return "raw";
    default: return "str";
    }
}

/* Converts v to the spec's type as Ansible's check_type_* do. *out is a new
 * reference; NULL means "cannot convert" (the caller reports it). */
static json_t *coerce(const struct aicp_arg_spec *spec, const json_t *v)
{
    switch (spec->type) {
    case AICP_ARG_STR:
    case AICP_ARG_PATH:
        if (json_is_array(v) || json_is_object(v)) {
            char *s = NULL;
            if (aicp_tmpl_to_string(&s, v) != 0)
                return NULL;
            json_t *r = json_string(s);
            free(s);
            return r;
        }
        return scalar_to_str(v);
    case AICP_ARG_BOOL:
        if (json_is_boolean(v))
            return json_incref((json_t *)v);
        if (json_is_string(v)) {
            int b = aicp_parse_bool(json_string_value(v));
            return b < 0 ? NULL : json_boolean(b);
        }
        if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1))
            return json_boolean(json_integer_value(v));
        if (json_is_real(v) && (json_real_value(v) == 0.0 || json_real_value(v) == 1.0))
            return json_boolean(json_real_value(v) == 1.0);
        return NULL;
    case AICP_ARG_INT: {
        if (json_is_integer(v))
            return json_incref((json_t *)v);
        if (json_is_boolean(v))
            return json_integer(json_is_true(v));
        if (json_is_real(v)) {
            double d = json_real_value(v);
            return d == floor(d) && fabs(d) < 9e18 ? json_integer((json_int_t)d) : NULL;
        }
        long long n;
        if (json_is_string(v) && full_strtoll(json_string_value(v), &n) == 0)
            return json_integer(n);
        return NULL;
    }
    case AICP_ARG_FLOAT: {
        if (json_is_real(v))
            return json_incref((json_t *)v);
        if (json_is_integer(v))
            return json_real((double)json_integer_value(v));
        if (json_is_boolean(v))
            return json_real(json_is_true(v) ? 1.0 : 0.0);
        double d;
        if (json_is_string(v) && full_strtod(json_string_value(v), &d) == 0)
            return json_real(d);
        return NULL;
    }
    case AICP_ARG_LIST:
        if (json_is_array(v))
            return json_incref((json_t *)v);
        if (json_is_string(v))
            return str_to_list(json_string_value(v));
        if (json_is_number(v) || json_is_boolean(v)) {
            json_t *s = scalar_to_str(v);
            json_t *l = json_array();
            if (s == NULL || l == NULL || json_array_append_new(l, s) != 0) {
                json_decref(l);
                return NULL;
            }
            return l;
        }
        return NULL;
    case AICP_ARG_DICT:
        if (json_is_object(v))
            return json_incref((json_t *)v);
        if (json_is_string(v))
            return str_to_dict(json_string_value(v));
        return NULL;
    case AICP_ARG_MODE:
        if (mode_value(v, -1) == -2)
            return NULL;
        return json_incref((json_t *)v);
    case AICP_ARG_RAW:
    default:
        return json_incref((json_t *)v);
    }
}

/* The default as written in the table, typed. NULL when none. */
static json_t *default_value(const struct aicp_arg_spec *spec)
{
    if (spec->def == NULL)
        return NULL;
    json_t *s = json_string(spec->def);
    if (s == NULL)
        return NULL;
    if (spec->type == AICP_ARG_LIST && spec->def[0] == '\0') {
        json_decref(s);
        return json_array();
    }
    if (spec->type == AICP_ARG_DICT && spec->def[0] == '\0') {
        json_decref(s);
        return json_object();
    }
    if (spec->type == AICP_ARG_RAW || spec->type == AICP_ARG_MODE)
        return s;
    json_t *v = coerce(spec, s);
    json_decref(s);
    return v;
}

static int choice_ok(const char *choices, const json_t *v)
{
    json_t *s = scalar_to_str(v);
    int ok = s != NULL && in_bar_list(choices, json_string_value(s));
    json_decref(s);
    return ok;
}

/* "a|b" -> "a, b" into buf. */
static int choices_text(struct aicp_buf *b, const char *choices)
{
    for (const char *p = choices; *p; p++)
        if (*p == '|') {
            if (aicp_buf_puts(b, ", ") != 0)
                return AICP_ENOMEM;
        } else if (aicp_buf_append(b, p, 1) != 0) {
            return AICP_ENOMEM;
        }
    return 0;
}

static int check_choices(const struct aicp_arg_spec *spec, const json_t *v, struct aicp_err *err)
{
    struct aicp_buf b = AICP_BUF_INIT;
    int rc = 0;
    if (spec->choices == NULL)
        return 0;
    if (json_is_array(v)) {
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item) {
            if (choice_ok(spec->choices, item))
                continue;
            json_t *s = scalar_to_str(item);
            if ((rc = choices_text(&b, spec->choices)) != 0)
                goto out;
            rc = aicp_err_set(err, AICP_EINVAL,
                              "value of %s must be one or more of: %s. Got no match for: %s",
                              spec->name, b.data, spec->secret ? "********"
                                                  : s ? json_string_value(s) : py_type(item));
            json_decref(s);
            goto out;
        }
        return 0;
    }
    if (choice_ok(spec->choices, v))
        return 0;
    json_t *s = scalar_to_str(v);
    if ((rc = choices_text(&b, spec->choices)) == 0)
        rc = aicp_err_set(err, AICP_EINVAL, "value of %s must be one of: %s, got: %s", spec->name,
                          b.data, spec->secret ? "********" : s ? json_string_value(s) : py_type(v));
    json_decref(s);
out:
    aicp_buf_free(&b);
    return rc;
}

static int is_template_value(const json_t *v)
{
    return json_is_string(v) && aicp_tmpl_is_template(json_string_value(v));
}

int aicp_args_is_template(const json_t *v)
{
    return is_template_value(v);
}

/* "Unsupported parameters for (file) module: a, b. Supported parameters
 * include: mode, path (dest, name)." — names sorted as Ansible sorts them. */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int unsupported_error(const struct aicp_module *mod, json_t *names, struct aicp_err *err)
{
    struct aicp_buf b = AICP_BUF_INIT;
    const char **list = NULL;
    size_t n = 0, i;
    json_t *item;
    int rc = AICP_ENOMEM;
    if (aicp_buf_printf(&b, "Unsupported parameters for (%s) module: ", mod->name) != 0)
        goto out;
    json_array_foreach(names, i, item) {
        if (aicp_buf_printf(&b, "%s%s", i ? ", " : "", json_string_value(item)) != 0)
            goto out;
    }
    for (const struct aicp_arg_spec *s = mod->args; s && s->name; s++)
        n++;
    if (n > 0) {
        list = calloc(n, sizeof(*list));
        if (list == NULL)
            goto out;
        i = 0;
        for (const struct aicp_arg_spec *s = mod->args; s && s->name; s++)
            list[i++] = s->name;
        qsort(list, n, sizeof(*list), cmp_str);
        if (aicp_buf_puts(&b, ". Supported parameters include: ") != 0)
            goto out;
        for (i = 0; i < n; i++) {
            const struct aicp_arg_spec *s = spec_find(mod, list[i]);
            if (aicp_buf_printf(&b, "%s%s", i ? ", " : "", s->name) != 0)
                goto out;
            if (s->aliases != NULL) {
                if (aicp_buf_puts(&b, " (") != 0 || choices_text(&b, s->aliases) != 0 ||
                    aicp_buf_puts(&b, ")") != 0)
                    goto out;
            }
        }
    }
    if (aicp_buf_puts(&b, ".") != 0)
        goto out;
    rc = aicp_err_set(err, AICP_EINVAL, "%s", b.data);
out:
    free(list);
    aicp_buf_free(&b);
    if (rc == AICP_ENOMEM)
        aicp_err_set(err, rc, "out of memory");
    return rc;
}

static int sort_json_strings(json_t *arr)
{
    size_t n = json_array_size(arr);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0; j--) {
            json_t *a = json_array_get(arr, j - 1), *b = json_array_get(arr, j);
            if (strcmp(json_string_value(a), json_string_value(b)) <= 0)
                break;
            json_incref(a);
            json_array_set(arr, j - 1, b);
            json_array_set_new(arr, j, a);
        }
    return 0;
}

int aicp_args_validate(struct aicp_args *out, const struct aicp_module *mod, const json_t *raw,
                       int static_only, struct aicp_err *err)
{
    json_t *v = json_object();
    json_t *unsupported = json_array();
    json_t *missing = json_array();
    json_t *written = NULL;
    struct aicp_buf b = AICP_BUF_INIT;
    const char *key;
    json_t *val;
    int rc = 0;

    out->v = NULL;
    out->mod = mod;
    if (v == NULL || unsupported == NULL || missing == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (raw != NULL && !json_is_null(raw) && !json_is_object(raw)) {
        rc = aicp_err_set(err, AICP_EINVAL, "arguments of module '%s' must be a mapping, not %s",
                          mod->name, py_type(raw));
        goto out;
    }
    /* Pass 1: names. */
    json_object_foreach((json_t *)raw, key, val) {
        if (aicp_startswith(key, "_ansible")) {
            rc = aicp_err_set(err, AICP_EINVAL, "invalid parameter specified for action '%s': '%s'",
                              mod->name, key);
            goto out;
        }
        if (strcmp(key, "_raw_params") == 0 && spec_find(mod, key) == NULL) {
            if (!(mod->flags & AICP_MOD_FREEFORM)) {
                rc = aicp_err_set(err, AICP_EINVAL, "this module requires key=value arguments");
                goto out;
            }
            json_t *s = scalar_to_str(val);
            if (s == NULL) {
                rc = aicp_err_set(err, AICP_EINVAL, "the free-form arguments of '%s' must be a string",
                                  mod->name);
                goto out;
            }
            json_object_set_new(v, key, s);
            continue;
        }
        const struct aicp_arg_spec *spec = spec_find(mod, key);
        if (spec == NULL) {
            if (mod->flags & AICP_MOD_ANY_ARGS)
                json_object_set(v, key, val);
            else
                json_array_append_new(unsupported, json_string(key));
            continue;
        }
        /* The canonical name wins over an alias given as well. */
        if (strcmp(spec->name, key) != 0 && json_object_get(raw, spec->name) != NULL)
            continue;
        if (!json_is_null(val))
            json_object_set(v, spec->name, val);
    }
    if (json_array_size(unsupported) > 0) {
        sort_json_strings(unsupported);
        rc = unsupported_error(mod, unsupported, err);
        goto out;
    }
    /* What the task wrote, before defaults fill in: Ansible's required_if
     * and mutually_exclusive look at the given arguments only. */
    if (mod->validate != NULL && (written = json_copy(v)) == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    /* Pass 2: presence, defaults, types and choices, in table order. */
    for (const struct aicp_arg_spec *spec = mod->args; spec && spec->name; spec++) {
        json_t *given = json_object_get(v, spec->name);
        if (given == NULL) {
            if (spec->required) {
                json_array_append_new(missing, json_string(spec->name));
                continue;
            }
            json_t *d = default_value(spec);
            if (d != NULL)
                json_object_set_new(v, spec->name, d);
            continue;
        }
        if (static_only && is_template_value(given))
            continue;
        json_t *c = coerce(spec, given);
        if (c == NULL) {
            if (spec->type == AICP_ARG_MODE)
                rc = aicp_err_set(err, AICP_EINVAL, "argument '%s' is not a valid mode: %s",
                                  spec->name,
                                  json_is_string(given) ? json_string_value(given) : py_type(given));
            else if (spec->type == AICP_ARG_BOOL && json_is_string(given) && !spec->secret)
                rc = aicp_err_set(err, AICP_EINVAL,
                                  "argument '%s' is of type str and we were unable to convert to "
                                  "bool: The value '%s' is not a valid boolean. Valid booleans "
                                  "include: 'yes', 'no', 'true', 'false', 'on', 'off', '1', '0'",
                                  spec->name, json_string_value(given));
            else
                rc = aicp_err_set(err, AICP_EINVAL,
                                  "argument '%s' is of type %s and we were unable to convert to %s",
                                  spec->name, py_type(given), type_name(spec->type));
            goto out;
        }
        json_object_set_new(v, spec->name, c);
        if (static_only && json_is_array(c)) {
            /* a list may hold templates still */
            size_t i;
            json_t *item;
            int templ = 0;
            json_array_foreach(c, i, item) templ |= is_template_value(item);
            if (templ)
                continue;
        }
        if ((rc = check_choices(spec, c, err)) != 0)
            goto out;
    }
    if (json_array_size(missing) > 0) {
        size_t i;
        json_array_foreach(missing, i, val) {
            if (aicp_buf_printf(&b, "%s%s", i ? ", " : "", json_string_value(val)) != 0) {
                rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
                goto out;
            }
        }
        rc = aicp_err_set(err, AICP_EINVAL, "missing required arguments: %s", b.data);
        goto out;
    }
    out->v = v;
    if (mod->validate != NULL && (rc = mod->validate(out, written, static_only, err)) != 0) {
        out->v = NULL;
        goto out;
    }
    v = NULL;
out:
    json_decref(v);
    json_decref(written);
    json_decref(unsupported);
    json_decref(missing);
    aicp_buf_free(&b);
    return rc;
}

void aicp_args_clear(struct aicp_args *a)
{
    if (a == NULL)
        return;
    json_decref(a->v);
    a->v = NULL;
}

/* ---- accessors --------------------------------------------------------------- */

const json_t *aicp_args_get(const struct aicp_args *a, const char *name)
{
    if (a == NULL || a->v == NULL)
        return NULL;
    return json_object_get(a->v, name);
}

const char *aicp_args_str(const struct aicp_args *a, const char *name)
{
    const json_t *v = aicp_args_get(a, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

int aicp_args_bool(const struct aicp_args *a, const char *name, int dflt)
{
    const json_t *v = aicp_args_get(a, name);
    if (json_is_boolean(v))
        return json_is_true(v);
    if (json_is_integer(v))
        return json_integer_value(v) != 0;
    if (json_is_string(v)) {
        int b = aicp_parse_bool(json_string_value(v));
        return b < 0 ? dflt : b;
    }
    return dflt;
}

long long aicp_args_int(const struct aicp_args *a, const char *name, long long dflt)
{
    const json_t *v = aicp_args_get(a, name);
    long long n;
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_real(v))
        return (long long)json_real_value(v);
    if (json_is_boolean(v))
        return json_is_true(v);
    if (json_is_string(v) && full_strtoll(json_string_value(v), &n) == 0)
        return n;
    return dflt;
}

/* ---- changes ------------------------------------------------------------ */

int aicp_change_new(struct aicp_change **out)
{
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : AICP_ENOMEM;
}

void aicp_change_free(struct aicp_change *c)
{
    if (c == NULL)
        return;
    json_decref(c->before);
    json_decref(c->after);
    json_decref(c->plan);
    free(c->diff_text);
    free(c);
}

/* ---- split_args / parse_kv ------------------------------------------------ */

/* The quote state after token, as Ansible's _get_quote_state. */
static char quote_state(const char *tok, size_t len, char q)
{
    for (size_t i = 0; i < len; i++) {
        char c = tok[i];
        if ((c == '"' || c == '\'') && (i == 0 || tok[i - 1] != '\\')) {
            if (q) {
                if (c == q)
                    q = 0;
            } else {
                q = c;
            }
        }
    }
    return q;
}

static size_t count_sub(const char *s, size_t len, const char *sub)
{
    size_t n = 0;
    for (size_t i = 0; i + 1 < len + 1 && i + 2 <= len;) {
        if (s[i] == sub[0] && s[i + 1] == sub[1]) {
            n++;
            i += 2;
        } else {
            i++;
        }
    }
    return n;
}

static int jinja_depth(const char *tok, size_t len, int depth, const char *open, const char *close)
{
    long o = (long)count_sub(tok, len, open), c = (long)count_sub(tok, len, close);
    if (o != c) {
        depth += (int)(o - c);
        if (depth < 0)
            depth = 0;
    }
    return depth;
}

struct params {
    struct aicp_buf *items;
    size_t n, cap;
};

static int params_push(struct params *p, const char *s, size_t len)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 8;
        struct aicp_buf *items = realloc(p->items, cap * sizeof(*items));
        if (items == NULL)
            return AICP_ENOMEM;
        p->items = items;
        p->cap = cap;
    }
    struct aicp_buf b = AICP_BUF_INIT;
    if (aicp_buf_append(&b, s, len) != 0)
        return AICP_ENOMEM;
    p->items[p->n++] = b;
    return 0;
}

static void params_free(struct params *p)
{
    for (size_t i = 0; i < p->n; i++)
        aicp_buf_free(&p->items[i]);
    free(p->items);
}

/* Ansible's split_args: splits on spaces, keeping quoted strings and jinja2
 * blocks together, preserving runs of spaces and newlines. */
static int split_args(struct params *params, const char *args, struct aicp_err *err)
{
    while (isspace((unsigned char)*args))
        args++;
    size_t alen = strlen(args);
    while (alen > 0 && isspace((unsigned char)args[alen - 1]))
        alen--;
    size_t nlines = 1;
    for (size_t i = 0; i < alen; i++)
        nlines += args[i] == '\n';
    char q = 0;
    /* Nesting of {{ }}, {% %} and {# #}, as Ansible's split_args counts it. */
    static const char *const opens[3] = {"{{", "{%", "{#"}, *const closes[3] = {"}}", "%}", "#}"};
    int depth[3] = {0, 0, 0};
    const char *line = args;
    for (size_t li = 0; li < nlines; li++) {
        const char *nl = memchr(line, '\n', (size_t)(args + alen - line));
        size_t llen = nl ? (size_t)(nl - line) : (size_t)(args + alen - line);
        size_t ntok = 1;
        for (size_t i = 0; i < llen; i++)
            ntok += line[i] == ' ';
        int cont = 0;
        const char *tok = line;
        for (size_t ti = 0; ti < ntok; ti++) {
            const char *sp = memchr(tok, ' ', (size_t)(line + llen - tok));
            size_t tlen = sp ? (size_t)(sp - tok) : (size_t)(line + llen - tok);
            const char *next = sp ? sp + 1 : line + llen;
            if (tlen == 0 && ti != 0) {
                if (params->n > 0 && aicp_buf_puts(&params->items[params->n - 1], " ") != 0)
                    return AICP_ENOMEM;
                tok = next;
                continue;
            }
            if (tlen == 1 && tok[0] == '\\' && !q) {
                cont = 1;
                tok = next;
                continue;
            }
            int was_q = q != 0;
            q = quote_state(tok, tlen, q);
            int in_q = q != 0;
            int appended = 0;
            int in_jinja = depth[0] || depth[1] || depth[2];
            if (in_q && !was_q && !in_jinja) {
                if (params_push(params, tok, tlen) != 0)
                    return AICP_ENOMEM;
                appended = 1;
            } else if ((in_jinja || in_q || was_q) && params->n > 0) {
                struct aicp_buf *last = &params->items[params->n - 1];
                int r;
                if (ti == 0 && was_q)
                    r = aicp_buf_append(last, tok, tlen);
                else if (ntok > 1)
                    r = (ti > 0 ? aicp_buf_puts(last, " ") : 0) || aicp_buf_append(last, tok, tlen);
                else
                    r = aicp_buf_puts(last, "\n") || aicp_buf_append(last, tok, tlen);
                if (r != 0)
                    return AICP_ENOMEM;
                appended = 1;
            }
            for (int k = 0; k < 3; k++) {
                int prev = depth[k];
                depth[k] = jinja_depth(tok, tlen, depth[k], opens[k], closes[k]);
                if (depth[k] != prev && !appended) {
                    if (params_push(params, tok, tlen) != 0)
                        return AICP_ENOMEM;
                    appended = 1;
                }
            }
            if (!(depth[0] || depth[1] || depth[2]) && !q && !appended && tlen > 0) {
                if (params_push(params, tok, tlen) != 0)
                    return AICP_ENOMEM;
            }
            tok = next;
        }
        if (nlines > 1 && li != nlines - 1 && !cont && params->n > 0) {
            struct aicp_buf *last = &params->items[params->n - 1];
            if ((last->len == 0 || last->data[last->len - 1] != '\n' || llen == 0) &&
                aicp_buf_puts(last, "\n") != 0)
                return AICP_ENOMEM;
        }
        line = nl ? nl + 1 : line + llen;
    }
    if (depth[0] || depth[1] || depth[2] || q)
        return aicp_err_set(err, AICP_EINVAL,
                            "failed at splitting arguments, either an unbalanced jinja2 block or "
                            "quotes: %.*s",
                            (int)alen, args);
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Ansible's _decode_escapes: only \xHH, \uHHHH, \UHHHHHHHH and the single-
 * character escapes (\\ \' \" \a \b \f \n \r \t \v) are decoded. Octal ones
 * are not: `line='c=\1'` must reach lineinfile's backrefs as \1. (\N{NAME}
 * is left as written: there is no table of Unicode names here.) */
static int decode_escapes(struct aicp_buf *b, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c != '\\' || i + 1 >= len) {
            if (aicp_buf_append(b, &c, 1) != 0)
                return AICP_ENOMEM;
            continue;
        }
        char e = s[i + 1];
        const char *simple = strchr("\\'\"abfnrtv", e);
        if (simple != NULL && e != '\0') {
            static const char map[] = "\\'\"\a\b\f\n\r\t\v";
            char r = map[simple - "\\'\"abfnrtv"];
            if (aicp_buf_append(b, &r, 1) != 0)
                return AICP_ENOMEM;
            i++;
            continue;
        }
        size_t digits = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
        if (digits && i + 1 + digits < len) {
            unsigned long cp = 0;
            size_t k;
            for (k = 0; k < digits && i + 2 + k < len; k++) {
                int h = hexval(s[i + 2 + k]);
                if (h < 0)
                    break;
                cp = cp * 16 + (unsigned long)h;
            }
            if (k == digits && cp <= 0x10FFFF) {
                if (aicp_buf_utf8(b, cp) != 0)
                    return AICP_ENOMEM;
                i += 1 + digits;
                continue;
            }
        }
        if (aicp_buf_append(b, &c, 1) != 0)
            return AICP_ENOMEM;
    }
    return 0;
}

static int is_quoted(const char *s, size_t len)
{
    return len > 1 && s[0] == s[len - 1] && (s[0] == '"' || s[0] == '\'') && s[len - 2] != '\\';
}

static int command_option(const char *k, size_t len)
{
    static const char *const opts[] = {"creates", "removes", "chdir", "executable", "warn",
                                       "stdin", "stdin_add_newline", "strip_empty_ends"};
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
        if (strlen(opts[i]) == len && strncmp(opts[i], k, len) == 0)
            return 1;
    return 0;
}

int aicp_args_parse_kv(json_t **out, const char *s, int freeform, const struct aicp_module *mod,
                       struct aicp_err *err)
{
    struct params params = {0};
    struct aicp_buf raw = AICP_BUF_INIT;
    struct aicp_buf x = AICP_BUF_INIT;
    json_t *opts = json_object();
    int rc;
    int nraw = 0;
    int check_raw = freeform && mod != NULL &&
                    (strcmp(mod->name, "command") == 0 || strcmp(mod->name, "shell") == 0);

    *out = NULL;
    if (opts == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = split_args(&params, s, err)) != 0) {
        if (rc == AICP_ENOMEM)
            aicp_err_set(err, rc, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < params.n; i++) {
        const char *orig = params.items[i].data ? params.items[i].data : "";
        size_t olen = params.items[i].len;
        int keep_raw = 1;
        x.len = 0;
        if ((rc = decode_escapes(&x, orig, olen)) != 0 || (rc = aicp_buf_puts(&x, "")) != 0)
            goto nomem;
        /* the first '=' after position 0 not preceded by a backslash */
        size_t pos = 0;
        int found = 0;
        for (size_t k = 1; k < x.len; k++)
            if (x.data[k] == '=' && x.data[k - 1] != '\\') {
                pos = k;
                found = 1;
                break;
            }
        if (found) {
            const char *k = x.data;
            size_t klen = pos;
            int want;
            if (check_raw)
                want = command_option(k, klen);
            else if (freeform && mod != NULL) {
                char *name = aicp_strndup(k, klen);
                if (name == NULL)
                    goto nomem;
                want = spec_find(mod, name) != NULL;
                free(name);
            } else {
                want = 1;
            }
            if (want) {
                while (klen > 0 && isspace((unsigned char)k[klen - 1]))
                    klen--;
                while (klen > 0 && isspace((unsigned char)*k)) {
                    k++;
                    klen--;
                }
                const char *v = x.data + pos + 1;
                size_t vlen = x.len - pos - 1;
                while (vlen > 0 && isspace((unsigned char)*v)) {
                    v++;
                    vlen--;
                }
                while (vlen > 0 && isspace((unsigned char)v[vlen - 1]))
                    vlen--;
                if (is_quoted(v, vlen)) {
                    v++;
                    vlen -= 2;
                }
                char *key = aicp_strndup(k, klen);
                json_t *jv = json_stringn(v, vlen);
                if (key == NULL) {
                    json_decref(jv);
                    goto nomem;
                }
                /* jansson refuses keys and values that are not UTF-8 */
                rc = jv == NULL ? -1 : json_object_set_new(opts, key, jv);
                free(key);
                if (rc != 0)
                    goto badtext;
                keep_raw = 0;
            }
        } else if (memchr(x.data, '=', x.len) != NULL) {
            /* only escaped equals: they become plain ones in the raw text */
            struct aicp_buf t = AICP_BUF_INIT;
            for (size_t k = 0; k < x.len; k++) {
                if (x.data[k] == '\\' && k + 1 < x.len && x.data[k + 1] == '=')
                    continue;
                if (aicp_buf_append(&t, x.data + k, 1) != 0) {
                    aicp_buf_free(&t);
                    goto nomem;
                }
            }
            rc = 0;
            if (!(raw.len == 0 || raw.data[raw.len - 1] == '\n'))
                rc = aicp_buf_puts(&raw, " ");
            if (rc == 0)
                rc = aicp_buf_append(&raw, t.data ? t.data : "", t.len);
            aicp_buf_free(&t);
            if (rc != 0)
                goto nomem;
            nraw++;
            continue;
        }
        if (keep_raw) {
            if (!(raw.len == 0 || raw.data[raw.len - 1] == '\n') && aicp_buf_puts(&raw, " ") != 0)
                goto nomem;
            if (aicp_buf_append(&raw, orig, olen) != 0)
                goto nomem;
            nraw++;
        }
    }
    if (nraw > 0 && json_object_set_new(opts, "_raw_params", json_string(raw.data ? raw.data : "")) != 0)
        goto badtext;
    *out = opts;
    opts = NULL;
    rc = 0;
    goto out;
badtext:
    rc = aicp_err_set(err, AICP_EINVAL, "argument string is not valid UTF-8 text: %s", s);
    goto out;
nomem:
    rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
out:
    json_decref(opts);
    params_free(&params);
    aicp_buf_free(&raw);
    aicp_buf_free(&x);
    return rc;
}

int aicp_module_diff_none(const json_t *current, const struct aicp_args *args,
                          struct aicp_change **change, struct aicp_err *err)
{
    (void)current;
    (void)args;
    if (aicp_change_new(change) != 0)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    return 0;
}

int aicp_module_apply_none(struct aicp_ctx *ctx, const struct aicp_change *change,
                           struct aicp_err *err)
{
    (void)ctx;
    (void)change;
    (void)err;
    return 0;
}
