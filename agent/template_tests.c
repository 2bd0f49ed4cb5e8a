/* The Python string/dict/list methods playbooks call on values (.split,
 * .strip, .get, .items...), the Jinja2 and Ansible tests used after `is`,
 * and the global functions (range, lookup, query). The evaluator in
 * template.c reaches them through aicp_tmpl_method_call, aicp_tmpl_test_call
 * and aicp_tmpl_global_call; the string helpers here are shared with the
 * filters of the same name. */
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

#define MAX_RANGE 1000000

int aicp_tmpl_isspace(int ch)
{
    return ch == ' ' || (ch >= '\t' && ch <= '\r') || (ch >= 0x1c && ch <= 0x1f);
}

/* str.split(sep, maxsplit) */
int aicp_tmpl_py_split(json_t **out, const char *s, size_t len, const json_t *sepv, json_int_t max,
                       struct aicp_err *err)
{
    json_t *res = json_array();
    if (res == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    size_t i = 0;
    json_int_t nsplit = 0;
    if (sepv == NULL || json_is_null(sepv)) {
        while (i < len) {
            while (i < len && aicp_tmpl_isspace((unsigned char)s[i]))
                i++;
            if (i >= len)
                break;
            size_t st = i;
            if (max >= 0 && nsplit >= max) {
                size_t e = len;
                while (e > st && aicp_tmpl_isspace((unsigned char)s[e - 1]))
                    e--;
                json_array_append_new(res, json_stringn(s + st, e - st));
                break;
            }
            while (i < len && !aicp_tmpl_isspace((unsigned char)s[i]))
                i++;
            json_array_append_new(res, json_stringn(s + st, i - st));
            nsplit++;
        }
    } else {
        if (!json_is_string(sepv) || json_string_length(sepv) == 0) {
            json_decref(res);
            return aicp_err_set(err, AICP_EINVAL, "empty separator");
        }
        const char *sep = json_string_value(sepv);
        size_t sl = json_string_length(sepv), st = 0;
        for (i = 0; i + sl <= len;) {
            if ((max < 0 || nsplit < max) && memcmp(s + i, sep, sl) == 0) {
                json_array_append_new(res, json_stringn(s + st, i - st));
                nsplit++;
                i += sl;
                st = i;
            } else {
                i++;
            }
        }
        json_array_append_new(res, json_stringn(s + st, len - st));
    }
    *out = res;
    return 0;
}

int aicp_tmpl_py_strip(json_t **out, const json_t *v, const json_t *chars, int left, int right,
                       struct aicp_err *err)
{
    const char *s = json_string_value(v);
    size_t st = 0, e = json_string_length(v);
    const char *set = chars && json_is_string(chars) ? json_string_value(chars) : NULL;
#define STRIPPABLE(ch)                                                                             \
    (set ? (strchr(set, (ch)) != NULL && (ch) != '\0') : aicp_tmpl_isspace((unsigned char)(ch)))
    while (left && st < e && STRIPPABLE(s[st]))
        st++;
    while (right && e > st && STRIPPABLE(s[e - 1]))
        e--;
#undef STRIPPABLE
    return aicp_tmpl_set_out(out, json_stringn(s + st, e - st), err);
}

int aicp_tmpl_py_replace(json_t **out, const json_t *v, const json_t *oldv, const json_t *newv,
                         const json_t *countv, struct aicp_err *err)
{
    struct aicp_buf b = AICP_BUF_INIT, ob, nb;
    int rc;
    if ((rc = aicp_tmpl_to_buf(&ob, oldv, err)) != 0)
        return rc;
    if ((rc = aicp_tmpl_to_buf(&nb, newv, err)) != 0) {
        aicp_buf_free(&ob);
        return rc;
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v), i = 0;
    json_int_t count = countv && json_is_integer(countv) ? json_integer_value(countv) : -1, done = 0;
    while (i <= len && rc == 0) {
        if ((count < 0 || done < count) && i + ob.len <= len &&
            memcmp(s + i, ob.data, ob.len) == 0) {
            rc = aicp_buf_append(&b, nb.data, nb.len);
            done++;
            if (ob.len == 0) {
                if (i < len)
                    rc |= aicp_buf_append(&b, s + i, 1);
                i++;
            } else {
                i += ob.len;
            }
        } else {
            if (i < len)
                rc = aicp_buf_append(&b, s + i, 1);
            i++;
        }
        if (b.len > AICP_TMPL_MAX_OUTPUT)
            rc = aicp_err_set(err, AICP_EINVAL, "replace: result too large");
    }
    if (rc == 0)
        rc = aicp_tmpl_set_out(out, aicp_tmpl_str_new(&b), err);
    else if (rc == AICP_ENOMEM)
        aicp_err_set(err, rc, "out of memory");
    aicp_buf_free(&b);
    aicp_buf_free(&ob);
    aicp_buf_free(&nb);
    return rc;
}

/* str.splitlines() */
int aicp_tmpl_py_splitlines(json_t **out, const char *s, size_t len, struct aicp_err *err)
{
    json_t *res = json_array();
    size_t st = 0;
    for (size_t i = 0; i < len && res;) {
        size_t nl = 0;
        if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n')
            nl = 2;
        else if (s[i] == '\n' || s[i] == '\r' || s[i] == '\v' || s[i] == '\f' ||
                 (s[i] >= 0x1c && s[i] <= 0x1e))
            nl = 1;
        else if ((unsigned char)s[i] == 0xC2 && i + 1 < len && (unsigned char)s[i + 1] == 0x85)
            nl = 2;
        else if ((unsigned char)s[i] == 0xE2 && i + 2 < len && (unsigned char)s[i + 1] == 0x80 &&
                 ((unsigned char)s[i + 2] == 0xA8 || (unsigned char)s[i + 2] == 0xA9))
            nl = 3;
        if (nl) {
            json_array_append_new(res, json_stringn(s + st, i - st));
            i += nl;
            st = i;
        } else {
            i++;
        }
    }
    if (res && st < len)
        json_array_append_new(res, json_stringn(s + st, len - st));
    return aicp_tmpl_set_out(out, res, err);
}

int aicp_tmpl_method_call(json_t **out, json_t *obj, const char *name,
                          const struct aicp_tmpl_args *a, struct aicp_err *err)
{
    json_t *a0 = aicp_tmpl_arg(a, 0, NULL), *a1 = aicp_tmpl_arg(a, 1, NULL);
    *out = NULL;
    if (json_is_string(obj)) {
        const char *s = json_string_value(obj);
        size_t len = json_string_length(obj);
        if (!strcmp(name, "split") || !strcmp(name, "rsplit"))
            return aicp_tmpl_py_split(out, s, len, aicp_tmpl_arg(a, 0, "sep"),
                                      json_is_integer(aicp_tmpl_arg(a, 1, "maxsplit"))
                                          ? json_integer_value(aicp_tmpl_arg(a, 1, "maxsplit"))
                                          : -1,
                                      err);
        if (!strcmp(name, "strip") || !strcmp(name, "lstrip") || !strcmp(name, "rstrip"))
            return aicp_tmpl_py_strip(out, obj, a0, name[0] != 'r', name[0] != 'l', err);
        if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
            int end = name[0] == 'e', hit = 0;
            json_t *list = json_is_array(a0) ? json_incref(a0) : json_pack("[O]", a0 ? a0 : json_null());
            size_t i;
            json_t *x;
            json_array_foreach(list, i, x) {
                if (!json_is_string(x))
                    continue;
                size_t pl = json_string_length(x);
                if (pl <= len && memcmp(end ? s + len - pl : s, json_string_value(x), pl) == 0)
                    hit = 1;
            }
            json_decref(list);
            return aicp_tmpl_set_out(out, json_boolean(hit), err);
        }
        if (!strcmp(name, "lower") || !strcmp(name, "upper") || !strcmp(name, "capitalize") ||
            !strcmp(name, "title"))
            return aicp_tmpl_filter_call(out, name, obj, a, err);
        if (!strcmp(name, "replace") && a0 && a1)
            return aicp_tmpl_py_replace(out, obj, a0, a1, aicp_tmpl_arg(a, 2, NULL), err);
        if ((!strcmp(name, "index") || !strcmp(name, "find") || !strcmp(name, "count")) &&
            json_is_string(a0)) {
            const char *hit = strstr(s, json_string_value(a0));
            if (!strcmp(name, "count")) {
                json_int_t n = 0;
                size_t sl = json_string_length(a0);
                for (const char *p = s; sl && (p = strstr(p, json_string_value(a0))); p += sl)
                    n++;
                return aicp_tmpl_set_out(
                    out, json_integer(sl ? n : (json_int_t)aicp_tmpl_utf8_len(s, len) + 1), err);
            }
            if (hit == NULL && name[0] == 'i')
                return aicp_err_set(err, AICP_EINVAL, "substring not found");
            return aicp_tmpl_set_out(
                out, json_integer(hit ? (json_int_t)aicp_tmpl_utf8_len(s, (size_t)(hit - s)) : -1),
                err);
        }
        if (!strcmp(name, "splitlines"))
            return aicp_tmpl_py_splitlines(out, s, len, err);
        if (!strcmp(name, "join") && json_is_array(a0)) {
            struct aicp_tmpl_args ja = {.pos = &obj, .npos = 1};
            return aicp_tmpl_filter_call(out, "join", a0, &ja, err);
        }
        if (!strcmp(name, "isdigit")) {
            int ok = len > 0;
            for (size_t i = 0; i < len; i++)
                ok &= isdigit((unsigned char)s[i]) != 0;
            return aicp_tmpl_set_out(out, json_boolean(ok), err);
        }
    } else if (json_is_object(obj)) {
        if (!strcmp(name, "get")) {
            json_t *v = json_is_string(a0) ? json_object_get(obj, json_string_value(a0)) : NULL;
            return aicp_tmpl_set_out(out, json_incref(v ? v : a1 ? a1 : json_null()), err);
        }
        if (!strcmp(name, "keys") || !strcmp(name, "values") || !strcmp(name, "items")) {
            json_t *res = json_array();
            const char *k;
            json_t *v;
            json_object_foreach(obj, k, v) {
                if (name[0] == 'k')
                    json_array_append_new(res, json_string(k));
                else if (name[0] == 'v')
                    json_array_append(res, v);
                else
                    json_array_append_new(res, json_pack("[sO]", k, v));
            }
            return aicp_tmpl_set_out(out, res, err);
        }
        if (!strcmp(name, "copy"))
            return aicp_tmpl_set_out(out, json_copy(obj), err);
    } else if (json_is_array(obj)) {
        if (!strcmp(name, "index") || !strcmp(name, "count")) {
            json_int_t n = 0, first = -1;
            for (size_t i = 0; i < json_array_size(obj); i++)
                if (a0 && aicp_tmpl_equal(json_array_get(obj, i), a0)) {
                    if (first < 0)
                        first = (json_int_t)i;
                    n++;
                }
            if (name[0] == 'c')
                return aicp_tmpl_set_out(out, json_integer(n), err);
            if (first < 0)
                return aicp_err_set(err, AICP_EINVAL, "value is not in list");
            return aicp_tmpl_set_out(out, json_integer(first), err);
        }
    }
    const char *desc = json_is_object(obj) ? "dict object" : json_is_array(obj) ? "list object"
                       : json_is_string(obj) ? "str object" : aicp_tmpl_type_name(obj);
    return aicp_err_set(err, AICP_EUNDEF, "'%s' has no attribute '%s'", desc, name);
}


/* --------------------------------------------------------------- tests */

static int dict_flag(int *out, json_t *in, const char *test, const char *key, struct aicp_err *err)
{
    if (!json_is_object(in))
        return aicp_err_set(err, AICP_EINVAL, "The '%s' test expects a dictionary", test);
    *out = aicp_tmpl_truthy(json_object_get(in, key) ? json_object_get(in, key) : json_false());
    return 0;
}

int aicp_tmpl_test_call(int *out, const char *name, json_t *in, const struct aicp_tmpl_args *a,
                        struct aicp_err *err)
{
    json_t *a0 = aicp_tmpl_arg(a, 0, NULL);
    double d;
    *out = 0;
    if (!strcmp(name, "none"))
        *out = json_is_null(in);
    else if (!strcmp(name, "string"))
        *out = json_is_string(in);
    else if (!strcmp(name, "number"))
        *out = json_is_number(in) || json_is_boolean(in);
    else if (!strcmp(name, "integer"))
        *out = json_is_integer(in);
    else if (!strcmp(name, "float"))
        *out = json_is_real(in);
    else if (!strcmp(name, "boolean"))
        *out = json_is_boolean(in);
    else if (!strcmp(name, "mapping"))
        *out = json_is_object(in);
    else if (!strcmp(name, "iterable") || !strcmp(name, "sequence"))
        *out = json_is_array(in) || json_is_object(in) || json_is_string(in);
    else if (!strcmp(name, "true"))
        *out = json_is_true(in);
    else if (!strcmp(name, "false"))
        *out = json_is_false(in);
    else if (!strcmp(name, "sameas"))
        *out = a0 && (json_typeof(a0) == json_typeof(in)) &&
               (json_is_null(in) || json_is_boolean(in) || a0 == in);
    else if (!strcmp(name, "eq") || !strcmp(name, "equalto") || !strcmp(name, "=="))
        *out = a0 && aicp_tmpl_equal(in, a0);
    else if (!strcmp(name, "ne") || !strcmp(name, "!="))
        *out = a0 && !aicp_tmpl_equal(in, a0);
    else if (!strcmp(name, "lt") || !strcmp(name, "le") || !strcmp(name, "gt") ||
             !strcmp(name, "ge") || !strcmp(name, "lessthan") || !strcmp(name, "greaterthan")) {
        int c;
        if (a0 == NULL || aicp_tmpl_compare(&c, in, a0, 0, err) != 0)
            return aicp_err_set(err, AICP_EINVAL, "test '%s': values cannot be compared", name);
        *out = name[0] == 'l' ? (name[1] == 'e' ? c <= 0 : c < 0) : (name[1] == 'e' ? c >= 0 : c > 0);
    } else if (!strcmp(name, "odd") || !strcmp(name, "even") || !strcmp(name, "divisibleby")) {
        if (!json_is_integer(in))
            return aicp_err_set(err, AICP_EINVAL, "test '%s' needs an integer", name);
        json_int_t m = name[0] == 'd' ? (json_is_integer(a0) ? json_integer_value(a0) : 0) : 2;
        if (m == 0)
            return aicp_err_set(err, AICP_EINVAL, "integer division or modulo by zero");
        json_int_t r = m == -1 ? 0 : json_integer_value(in) % m;
        *out = name[0] == 'o' ? r != 0 : r == 0;
    } else if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
        json_t *t = NULL;
        if (!json_is_string(in))
            return aicp_err_set(err, AICP_EINVAL, "test '%s' needs a string", name);
        aicp_tmpl_case_map(&t, in, name[0] == 'l' ? 0 : 1, err);
        *out = t && json_equal(t, in);
        json_decref(t);
    } else if (!strcmp(name, "in") || !strcmp(name, "contains")) {
        json_t *hay = name[0] == 'i' ? a0 : in, *needle = name[0] == 'i' ? in : a0;
        if (hay == NULL || needle == NULL)
            return aicp_err_set(err, AICP_EINVAL, "test '%s' needs an argument", name);
        if (json_is_string(hay))
            *out = json_is_string(needle) && strstr(json_string_value(hay), json_string_value(needle));
        else if (json_is_object(hay))
            *out = json_is_string(needle) && json_object_get(hay, json_string_value(needle));
        else
            for (size_t i = 0; i < json_array_size(hay); i++)
                *out |= aicp_tmpl_equal(needle, json_array_get(hay, i));
    } else if (!strcmp(name, "changed"))
        return dict_flag(out, in, name, "changed", err);
    else if (!strcmp(name, "failed"))
        return dict_flag(out, in, name, "failed", err);
    else if (!strcmp(name, "skipped"))
        return dict_flag(out, in, name, "skipped", err);
    else if (!strcmp(name, "success") || !strcmp(name, "succeeded")) {
        int rc = dict_flag(out, in, name, "failed", err);
        *out = !*out;
        return rc;
    } else if (!strcmp(name, "search") || !strcmp(name, "match") || !strcmp(name, "regex")) {
        json_t *mt = aicp_tmpl_arg(a, 99, "match_type");
        int anchored = name[0] == 'm' || (json_is_string(mt) && !strcmp(json_string_value(mt), "match"));
        if (!json_is_string(a0))
            return aicp_err_set(err, AICP_EINVAL, "test '%s' needs a pattern string", name);
        return aicp_tmpl_regex_find(
            NULL, out, in, json_string_value(a0), aicp_tmpl_arg_bool(a, 1, "ignorecase", 0),
            aicp_tmpl_arg_bool(a, 2, "multiline", 0), anchored, NULL, 0, err);
    } else if (!strcmp(name, "truthy") || !strcmp(name, "falsy")) {
        *out = aicp_tmpl_truthy(in) == (name[0] == 't');
    } else if (!strcmp(name, "subset") || !strcmp(name, "superset")) {
        json_t *small = name[1] == 'u' && name[2] == 'b' ? in : a0, *big = small == in ? a0 : in;
        if (!json_is_array(small) || !json_is_array(big))
            return aicp_err_set(err, AICP_EINVAL, "test '%s' needs two lists", name);
        *out = 1;
        for (size_t i = 0; i < json_array_size(small); i++) {
            int found = 0;
            for (size_t j = 0; j < json_array_size(big) && !found; j++)
                found = aicp_tmpl_equal(json_array_get(small, i), json_array_get(big, j));
            *out &= found;
        }
    } else if (!strcmp(name, "nan")) {
        *out = aicp_tmpl_is_num(in, &d) && isnan(d);
    } else {
        return aicp_err_set(err, AICP_EINVAL, "template error: no test named '%s'", name);
    }
    return 0;
}

/* ------------------------------------------------------------- globals */

static int g_range(json_t **out, const struct aicp_tmpl_args *a, struct aicp_err *err)
{
    json_int_t v[3] = {0, 0, 1};
    if (a->npos < 1 || a->npos > 3)
        return aicp_err_set(err, AICP_EINVAL, "range expected 1 to 3 arguments, got %zu", a->npos);
    for (size_t i = 0; i < a->npos; i++) {
        if (!json_is_integer(a->pos[i]) && !json_is_boolean(a->pos[i]))
            return aicp_err_set(err, AICP_EINVAL, "'%s' object cannot be interpreted as an integer",
                                aicp_tmpl_type_name(a->pos[i]));
        v[a->npos == 1 ? 1 : i] = json_is_boolean(a->pos[i]) ? json_is_true(a->pos[i])
                                                             : json_integer_value(a->pos[i]);
    }
    if (v[2] == 0)
        return aicp_err_set(err, AICP_EINVAL, "range() arg 3 must not be zero");
    double count = ((double)v[1] - (double)v[0]) / (double)v[2];
    if (count > MAX_RANGE)
        return aicp_err_set(err, AICP_EINVAL, "range too big: more than %d items", MAX_RANGE);
    json_t *res = json_array();
    for (json_int_t i = v[0]; res && (v[2] > 0 ? i < v[1] : i > v[1]); i += v[2]) {
        json_array_append_new(res, json_integer(i));
        if (v[2] > 0 ? i > INT64_MAX - v[2] : i < INT64_MIN - v[2])
            break;
    }
    return aicp_tmpl_set_out(out, res, err);
}

static int g_lookup(json_t **out, const char *fn, const struct aicp_tmpl_args *a,
                    struct aicp_err *err)
{
    int wantlist = fn[0] == 'q' || aicp_tmpl_arg_bool(a, 99, "wantlist", 0);
    if (a->npos < 1 || !json_is_string(a->pos[0]))
        return aicp_err_set(err, AICP_EINVAL, "%s needs a plugin name", fn);
    const char *plugin = json_string_value(a->pos[0]);
    json_t *res = json_array();
    int rc = 0;
    for (size_t i = 1; i < a->npos && rc == 0 && res; i++) {
        json_t *term = a->pos[i];
        if (!strcmp(plugin, "list") || !strcmp(plugin, "items")) {
            if (json_is_array(term))
                json_array_extend(res, term);
            else
                json_array_append(res, term);
            continue;
        }
        if (!json_is_string(term)) {
            rc = aicp_err_set(err, AICP_EINVAL, "lookup('%s'): terms must be strings", plugin);
        } else if (!strcmp(plugin, "env")) {
            const char *v = getenv(json_string_value(term));
            json_t *dflt = aicp_tmpl_arg(a, 99, "default");
            json_array_append_new(res, v ? json_string(v) : dflt ? json_incref(dflt) : json_string(""));
        } else if (!strcmp(plugin, "file")) {
            char *data = NULL;
            size_t len = 0;
            if ((rc = aicp_read_file(&data, &len, json_string_value(term), err)) != 0) {
                aicp_err_prefix(err, "lookup('file')");
                break;
            }
            if (aicp_tmpl_arg_bool(a, 99, "rstrip", 1))
                while (len > 0 && aicp_tmpl_isspace((unsigned char)data[len - 1]))
                    len--;
            json_t *s = json_stringn(data, len);
            free(data);
            if (s == NULL)
                rc = aicp_err_set(err, AICP_EINVAL, "lookup('file'): %s is not UTF-8 text",
                                  json_string_value(term));
            else
                json_array_append_new(res, s);
        } else {
            rc = aicp_err_set(err, AICP_EINVAL, "lookup plugin '%s' not found", plugin);
        }
    }
    if (rc != 0 || res == NULL) {
        json_decref(res);
        return rc ? rc : aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    if (wantlist)
        return aicp_tmpl_set_out(out, res, err);
    /* lookup() joins the results with commas, unless it is just one. */
    if (json_array_size(res) == 1 || !strcmp(plugin, "list") || !strcmp(plugin, "items")) {
        json_t *one = json_array_size(res) == 1 && strcmp(plugin, "list") && strcmp(plugin, "items")
                          ? json_incref(json_array_get(res, 0)) : json_incref(res);
        json_decref(res);
        return aicp_tmpl_set_out(out, one, err);
    }
    struct aicp_buf b = AICP_BUF_INIT;
    for (size_t i = 0; i < json_array_size(res) && rc == 0; i++) {
        if (i)
            rc |= aicp_buf_puts(&b, ",");
        rc |= aicp_tmpl_str(&b, json_array_get(res, i));
    }
    json_decref(res);
    rc = rc == 0 ? aicp_tmpl_set_out(out, aicp_tmpl_str_new(&b), err)
                 : aicp_err_set(err, AICP_ENOMEM, "out of memory");
    aicp_buf_free(&b);
    return rc;
}

int aicp_tmpl_global_call(json_t **out, const char *name, const struct aicp_tmpl_args *a,
                          struct aicp_err *err)
{
    *out = NULL;
    if (!strcmp(name, "range"))
        return g_range(out, a, err);
    if (!strcmp(name, "lookup") || !strcmp(name, "query") || !strcmp(name, "q"))
        return g_lookup(out, name, a, err);
    if (!strcmp(name, "dict")) {
        json_t *res = json_object();
        for (size_t i = 0; res && i < a->nkw; i++)
            json_object_set(res, a->kwname[i], a->kw[i]);
        return aicp_tmpl_set_out(out, res, err);
    }
    return aicp_err_set(err, AICP_EUNDEF, "'%s' is undefined", name);
}
