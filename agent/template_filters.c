/* The Jinja2 and Ansible filters aicp supports (default, join, map,
 * regex_replace, combine...), each following the Python implementation's
 * output byte for byte where it is implemented, and the Python-regex to
 * POSIX translation they and the search/match tests use. The evaluator in
 * template.c calls in through aicp_tmpl_filter_call; value semantics live
 * in template_value.c and tests/methods/globals in template_tests.c. */
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

/* --------------------------------------------------------------- regex */

/* Translates Python regex syntax to POSIX extended (glibc handles \w \s
 * \b outside brackets itself): \d classes, classes inside brackets,
 * (?:...) groups. groupmap[i] is the POSIX group of Python group i. */
static int py_regex_compile(regex_t *re, const char *pat, int icase, int multiline,
                            int *groupmap, size_t *ngroups, struct aicp_err *err)
{
    struct aicp_buf b = AICP_BUF_INIT;
    size_t len = strlen(pat), py = 0, posix = 0;
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0; i++) {
        char ch = pat[i];
        if (ch == '\\' && i + 1 < len) {
            char e = pat[++i];
            const char *rep = e == 'd' ? "[0-9]" : e == 'D' ? "[^0-9]" : e == 'n' ? "\n"
                              : e == 't' ? "\t" : e == 'A' ? "^" : e == 'Z' ? "$" : NULL;
            if (rep)
                rc = aicp_buf_puts(&b, rep);
            else if (isdigit((unsigned char)e))
                rc = aicp_buf_printf(&b, "\\%c", e);
            else
                rc = aicp_buf_printf(&b, "\\%c", e);
        } else if (ch == '[') {
            /* Collect the set, then emit it in POSIX order: ] first, - last. */
            struct aicp_buf set = AICP_BUF_INIT;
            int neg = 0, has_close = 0, has_dash = 0;
            i++;
            if (i < len && pat[i] == '^') {
                neg = 1;
                i++;
            }
            int first = 1;
            for (; i < len && (pat[i] != ']' || first); i++, first = 0) {
                char c = pat[i];
                if (c == ']') {
                    has_close = 1;
                } else if (c == '\\' && i + 1 < len) {
                    char e = pat[++i];
                    const char *cls = e == 'd' ? "0-9" : e == 'w' ? "A-Za-z0-9_"
                                      : e == 's' ? " \t\n\r\f\v" : NULL;
                    if (e == 'D' || e == 'W' || e == 'S') {
                        aicp_buf_free(&set);
                        aicp_buf_free(&b);
                        return aicp_err_set(err, AICP_EINVAL, "unsupported regex class \\%c inside [] in '%s'", e, pat);
                    }
                    if (cls)
                        rc |= aicp_buf_puts(&set, cls);
                    else if (e == ']')
                        has_close = 1;
                    else if (e == '-')
                        has_dash = 1;
                    else if (e == 'n' || e == 't')
                        rc |= aicp_buf_puts(&set, e == 'n' ? "\n" : "\t");
                    else
                        rc |= aicp_buf_append(&set, &e, 1);
                } else {
                    rc |= aicp_buf_append(&set, &c, 1);
                }
            }
            if (i >= len) {
                aicp_buf_free(&set);
                aicp_buf_free(&b);
                return aicp_err_set(err, AICP_EINVAL, "unterminated character set in regex '%s'", pat);
            }
            rc |= aicp_buf_puts(&b, neg ? "[^" : "[");
            if (has_close)
                rc |= aicp_buf_puts(&b, "]");
            if (set.len)
                rc |= aicp_buf_append(&b, set.data, set.len);
            rc |= aicp_buf_puts(&b, has_dash ? "-]" : "]");
            aicp_buf_free(&set);
        } else if (ch == '(') {
            if (i + 2 < len && pat[i + 1] == '?' && pat[i + 2] == ':') {
                i += 2;
                posix++;
            } else if (i + 2 < len && pat[i + 1] == '?' && pat[i + 2] == 'P' && i + 3 < len &&
                       pat[i + 3] == '<') {
                const char *gt = strchr(pat + i, '>');
                if (gt == NULL)
                    break;
                i = (size_t)(gt - pat);
                posix++;
                py++;
                if (py < 10)
                    groupmap[py] = (int)posix;
            } else if (i + 1 < len && pat[i + 1] == '?') {
                aicp_buf_free(&b);
                return aicp_err_set(err, AICP_EINVAL, "unsupported regex construct '(?' in '%s'", pat);
            } else {
                posix++;
                py++;
                if (py < 10)
                    groupmap[py] = (int)posix;
            }
            rc = aicp_buf_puts(&b, "(");
        } else if ((ch == '*' || ch == '+' || ch == '?' || ch == '}') && i + 1 < len &&
                   pat[i + 1] == '?') {
            aicp_buf_free(&b);
            return aicp_err_set(err, AICP_EINVAL, "non-greedy regex quantifiers are not supported: '%s'", pat);
        } else {
            rc = aicp_buf_append(&b, &ch, 1);
        }
    }
    groupmap[0] = 0;
    *ngroups = py < 10 ? py : 9;
    if (rc != 0) {
        aicp_buf_free(&b);
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    /* glibc expands counted repetitions into copies of the automaton, so
     * a{1000}{1000} would take gigabytes: bound their product. */
    double copies = 1;
    for (const char *q = b.data ? b.data : ""; *q; q++)
        if (strchr("*+?}", *q) && q[1] && strchr("*+?{", q[1]) && (q == b.data || q[-1] != '\\'))
            copies = 1e9; /* "multiple repeat" in Python; exponential in glibc */
    for (const char *q = b.data ? b.data : ""; *q; q++)
        if (*q == '{' && isdigit((unsigned char)q[1])) {
            double m = strtod(q + 1, NULL);
            const char *comma = strchr(q, ',');
            const char *close = strchr(q, '}');
            if (comma && close && comma < close && isdigit((unsigned char)comma[1]))
                m = strtod(comma + 1, NULL);
            copies *= m > 1 ? m : 1;
        }
    if (copies > 10000 || b.len > 4096) {
        aicp_buf_free(&b);
        return aicp_err_set(err, AICP_EINVAL, "regular expression too complex (or multiple "
                            "repeat): '%.100s'", pat);
    }
    int flags = REG_EXTENDED | (icase ? REG_ICASE : 0) | (multiline ? REG_NEWLINE : 0);
    int r = regcomp(re, b.data ? b.data : "", flags);
    aicp_buf_free(&b);
    if (r != 0) {
        char msg[128];
        regerror(r, re, msg, sizeof(msg));
        return aicp_err_set(err, AICP_EINVAL, "invalid regular expression '%s': %s", pat, msg);
    }
    return 0;
}

static int regex_exec(regex_t *re, const char *s, size_t pos, int multiline, regmatch_t *m,
                      size_t nm)
{
    int flags = pos > 0 && !(multiline && s[pos - 1] == '\n') ? REG_NOTBOL : 0;
    int r = regexec(re, s + pos, nm, m, flags);
    if (r == 0)
        for (size_t i = 0; i < nm; i++)
            if (m[i].rm_so >= 0) {
                m[i].rm_so += (regoff_t)pos;
                m[i].rm_eo += (regoff_t)pos;
            }
    return r;
}

/* Appends a Python replacement string with \1, \g<1>, \\ expanded. */
static int expand_repl(struct aicp_buf *b, const char *repl, const char *s, const regmatch_t *m,
                       const int *groupmap, size_t ngroups)
{
    int rc = 0;
    for (const char *p = repl; *p && rc == 0; p++) {
        int g = -1;
        if (*p == '\\' && isdigit((unsigned char)p[1])) {
            g = p[1] - '0';
            p++;
        } else if (*p == '\\' && p[1] == 'g' && p[2] == '<' && isdigit((unsigned char)p[3]) &&
                   p[4] == '>') {
            g = p[3] - '0';
            p += 4;
        } else if (*p == '\\' && (p[1] == '\\' || p[1] == 'n' || p[1] == 't')) {
            rc = aicp_buf_puts(b, p[1] == '\\' ? "\\" : p[1] == 'n' ? "\n" : "\t");
            p++;
            continue;
        } else {
            rc = aicp_buf_append(b, p, 1);
            continue;
        }
        if ((size_t)g > ngroups)
            return AICP_EINVAL;
        const regmatch_t *gm = &m[groupmap[g]];
        if (gm->rm_so >= 0)
            rc = aicp_buf_append(b, s + gm->rm_so, (size_t)(gm->rm_eo - gm->rm_so));
    }
    return rc;
}

static int f_regex_replace(json_t **out, json_t *in, const struct aicp_tmpl_args *a,
                           struct aicp_err *err)
{
    json_t *pat = aicp_tmpl_arg(a, 0, "pattern"), *repl = aicp_tmpl_arg(a, 1, "replacement");
    int icase = aicp_tmpl_arg_bool(a, 2, "ignorecase", 0),
        ml = aicp_tmpl_arg_bool(a, 3, "multiline", 0);
    json_t *countv = aicp_tmpl_arg(a, 4, "count");
    json_int_t count = json_is_integer(countv) ? json_integer_value(countv) : 0, done = 0;
    struct aicp_buf sb, b = AICP_BUF_INIT;
    regex_t re;
    regmatch_t m[10];
    int groupmap[10] = {0};
    size_t ng;
    int rc;
    if (!json_is_string(pat))
        return aicp_err_set(err, AICP_EINVAL, "regex_replace needs a pattern string");
    if ((rc = aicp_tmpl_to_buf(&sb, in, err)) != 0)
        return rc;
    if ((rc = py_regex_compile(&re, json_string_value(pat), icase, ml, groupmap, &ng, err)) != 0) {
        aicp_buf_free(&sb);
        return rc;
    }
    const char *s = sb.data, *r = json_is_string(repl) ? json_string_value(repl) : "";
    size_t len = sb.len, pos = 0;
    while (pos <= len && (count <= 0 || done < count) && rc == 0) {
        if (regex_exec(&re, s, pos, ml, m, 10) != 0)
            break;
        size_t ms = (size_t)m[0].rm_so, me = (size_t)m[0].rm_eo;
        rc = aicp_buf_append(&b, s + pos, ms - pos);
        if (rc == 0 && (rc = expand_repl(&b, r, s, m, groupmap, ng)) == AICP_EINVAL) {
            rc = aicp_err_set(err, AICP_EINVAL, "invalid group reference in '%s'", r);
            break;
        }
        done++;
        if (me == ms) {
            size_t step = 1;
            while (ms + step < len && ((unsigned char)s[ms + step] & 0xC0) == 0x80)
                step++;
            if (ms < len)
                rc |= aicp_buf_append(&b, s + ms, step);
            pos = ms + step;
        } else {
            pos = me;
        }
        if (b.len > AICP_TMPL_MAX_OUTPUT)
            rc = aicp_err_set(err, AICP_EINVAL, "regex_replace: result too large");
    }
    if (rc == 0 && pos < len)
        rc = aicp_buf_append(&b, s + pos, len - pos);
    if (rc == 0)
        rc = aicp_tmpl_set_out(out, aicp_tmpl_str_new(&b), err);
    else if (rc == AICP_ENOMEM)
        aicp_err_set(err, rc, "out of memory");
    regfree(&re);
    aicp_buf_free(&b);
    aicp_buf_free(&sb);
    return rc;
}

/* regex_search / search / match: *found, and *out the match (or groups). */
int aicp_tmpl_regex_find(json_t **out, int *found, json_t *in, const char *pat, int icase, int ml,
                         int anchored, const struct aicp_tmpl_args *groups, size_t gfirst,
                         struct aicp_err *err)
{
    regex_t re;
    regmatch_t m[10];
    int groupmap[10] = {0};
    size_t ng;
    struct aicp_buf sb;
    int rc;
    *found = 0;
    if (out)
        *out = NULL;
    if ((rc = aicp_tmpl_to_buf(&sb, in, err)) != 0)
        return rc;
    if ((rc = py_regex_compile(&re, pat, icase, ml, groupmap, &ng, err)) != 0) {
        aicp_buf_free(&sb);
        return rc;
    }
    if (regex_exec(&re, sb.data, 0, ml, m, 10) == 0 && (!anchored || m[0].rm_so == 0))
        *found = 1;
    if (out && *found) {
        if (groups == NULL || groups->npos <= gfirst) {
            *out = json_stringn(sb.data + m[0].rm_so, (size_t)(m[0].rm_eo - m[0].rm_so));
        } else {
            *out = json_array();
            for (size_t i = gfirst; i < groups->npos && rc == 0; i++) {
                const char *g = json_is_string(groups->pos[i]) ? json_string_value(groups->pos[i]) : "";
                int gi = -1;
                if (g[0] == '\\' && isdigit((unsigned char)g[1]) && !g[2])
                    gi = g[1] - '0';
                else if (!strncmp(g, "\\g<", 3) && isdigit((unsigned char)g[3]) && g[4] == '>')
                    gi = g[3] - '0';
                if (gi < 0 || (size_t)gi > ng) {
                    rc = aicp_err_set(err, AICP_EINVAL, "Unknown argument '%s'", g);
                    break;
                }
                regmatch_t *gm = &m[groupmap[gi]];
                json_array_append_new(*out, gm->rm_so >= 0 ? json_stringn(sb.data + gm->rm_so,
                                                                          (size_t)(gm->rm_eo - gm->rm_so))
                                                          : json_null());
            }
        }
    } else if (out) {
        *out = json_null();
    }
    regfree(&re);
    aicp_buf_free(&sb);
    if (rc != 0) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

static int f_regex_search(json_t **out, json_t *in, const struct aicp_tmpl_args *a,
                          struct aicp_err *err)
{
    json_t *pat = aicp_tmpl_arg(a, 0, "regex");
    int found;
    if (!json_is_string(pat))
        return aicp_err_set(err, AICP_EINVAL, "regex_search needs a pattern string");
    int rc = aicp_tmpl_regex_find(out, &found, in, json_string_value(pat),
                                  aicp_tmpl_arg_bool(a, 99, "ignorecase", 0),
                                  aicp_tmpl_arg_bool(a, 99, "multiline", 0), 0, a, 1, err);
    if (rc == 0 && *out == NULL)
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
    return rc;
}

static int f_regex_escape(json_t **out, json_t *in, const struct aicp_tmpl_args *a,
                          struct aicp_err *err)
{
    (void)a;
    struct aicp_buf sb, b = AICP_BUF_INIT;
    int rc = aicp_tmpl_to_buf(&sb, in, err);
    for (size_t i = 0; i < sb.len && rc == 0; i++) {
        unsigned char ch = (unsigned char)sb.data[i];
        if (ch < 0x80 && !isalnum(ch) && ch != '_')
            rc = aicp_buf_append(&b, "\\", 1);
        rc |= aicp_buf_append(&b, &sb.data[i], 1);
    }
    if (rc == 0)
        rc = aicp_tmpl_set_out(out, aicp_tmpl_str_new(&b), err);
    aicp_buf_free(&sb);
    aicp_buf_free(&b);
    return rc;
}


/* ------------------------------------------------- JSON and YAML filters */

static int f_to_json(json_t **out, json_t *in, const struct aicp_tmpl_args *a, struct aicp_err *err)
{
    json_t *ind = aicp_tmpl_arg(a, 99, "indent");
    return aicp_tmpl_to_json(out, in, json_is_integer(ind) ? (int)json_integer_value(ind) : -1,
                             aicp_tmpl_arg_bool(a, 99, "sort_keys", 0), err);
}

static int f_to_nice_json(json_t **out, json_t *in, const struct aicp_tmpl_args *a,
                          struct aicp_err *err)
{
    json_t *ind = aicp_tmpl_arg(a, 99, "indent");
    return aicp_tmpl_to_json(out, in, json_is_integer(ind) ? (int)json_integer_value(ind) : 4,
                             aicp_tmpl_arg_bool(a, 99, "sort_keys", 1), err);
}

static int f_from_json(json_t **out, json_t *in, const struct aicp_tmpl_args *a,
                       struct aicp_err *err)
{
    (void)a;
    json_error_t je;
    if (aicp_tmpl_need_str(in, "from_json", err) != 0)
        return AICP_EINVAL;
    *out = json_loadb(json_string_value(in), json_string_length(in), JSON_DECODE_ANY, &je);
    if (*out == NULL)
        return aicp_err_set(err, AICP_EINVAL, "from_json: %s", je.text);
    return 0;
}

static int f_to_yaml(json_t **out, json_t *in, const struct aicp_tmpl_args *a, struct aicp_err *err)
{
    json_t *ind = aicp_tmpl_arg(a, 99, "indent");
    return aicp_tmpl_to_yaml(out, in, json_is_integer(ind) ? (int)json_integer_value(ind) : 2, 1,
                             err);
}

static int f_to_nice_yaml(json_t **out, json_t *in, const struct aicp_tmpl_args *a,
                          struct aicp_err *err)
{
    json_t *ind = aicp_tmpl_arg(a, 0, "indent");
    int n = json_is_integer(ind) ? (int)json_integer_value(ind) : 4;
    return aicp_tmpl_to_yaml(out, in, n < 2 || n > 9 ? 2 : n, 0, err);
}

/* ------------------------------------------------------------- filters */

typedef int (*filter_fn)(json_t **, json_t *, const struct aicp_tmpl_args *, struct aicp_err *);

#define FILTER(name) \
    static int name(json_t **out, json_t *in, const struct aicp_tmpl_args *a, struct aicp_err *err)

FILTER(f_bool)
{
    (void)a;
    if (json_is_boolean(in) || json_is_null(in))
        return aicp_tmpl_set_out(out, json_incref(in), err);
    if (json_is_integer(in))
        return aicp_tmpl_set_out(out, json_boolean(json_integer_value(in) == 1), err);
    if (json_is_string(in)) {
        static const char *const yes[] = {"yes", "on", "1", "true", NULL};
        int t = 0;
        for (size_t k = 0; yes[k]; k++)
            t |= aicp_tmpl_fold_cmp(json_string_value(in), json_string_length(in), yes[k],
                                    strlen(yes[k]), 1) == 0;
        return aicp_tmpl_set_out(out, json_boolean(t), err);
    }
    return aicp_tmpl_set_out(out, json_false(), err);
}

/* Python int(str, base) with its prefixes, underscores and spaces. */
static int parse_py_int(const char *s, int base, json_int_t *out)
{
    while (aicp_tmpl_isspace((unsigned char)*s))
        s++;
    int neg = 0;
    if (*s == '+' || *s == '-')
        neg = *s++ == '-';
    if (s[0] == '0' && s[1] && strchr("xXoObB", s[1])) {
        int pb = tolower((unsigned char)s[1]) == 'x' ? 16 : tolower((unsigned char)s[1]) == 'o' ? 8 : 2;
        if (base == 0)
            base = pb;
        if (base == pb)
            s += 2;
    }
    if (base == 0)
        base = 10;
    unsigned long long v = 0;
    int nd = 0;
    for (; *s && !aicp_tmpl_isspace((unsigned char)*s); s++) {
        if (*s == '_' && nd)
            continue;
        int d = isdigit((unsigned char)*s) ? *s - '0' : isalpha((unsigned char)*s) ? tolower((unsigned char)*s) - 'a' + 10 : 99;
        if (d >= base || v > (unsigned long long)INT64_MAX / (unsigned)base)
            return -1;
        v = v * (unsigned)base + (unsigned)d;
        nd++;
    }
    while (aicp_tmpl_isspace((unsigned char)*s))
        s++;
    if (*s || nd == 0 || v > (unsigned long long)INT64_MAX)
        return -1;
    *out = neg ? -(json_int_t)v : (json_int_t)v;
    return 0;
}

FILTER(f_int)
{
    json_t *dflt = aicp_tmpl_arg(a, 0, "default"), *basev = aicp_tmpl_arg(a, 1, "base");
    int base = json_is_integer(basev) ? (int)json_integer_value(basev) : 10;
    json_int_t i;
    double d;
    if (json_is_integer(in))
        return aicp_tmpl_set_out(out, json_incref(in), err);
    if (json_is_boolean(in))
        return aicp_tmpl_set_out(out, json_integer(json_is_true(in)), err);
    if (json_is_real(in) && isfinite(json_real_value(in)) && fabs(json_real_value(in)) < 9.2e18)
        return aicp_tmpl_set_out(out, json_integer((json_int_t)json_real_value(in)), err);
    if (json_is_string(in)) {
        if (parse_py_int(json_string_value(in), base, &i) == 0)
            return aicp_tmpl_set_out(out, json_integer(i), err);
        char *end;
        d = strtod(json_string_value(in), &end);
        while (aicp_tmpl_isspace((unsigned char)*end))
            end++;
        if (*end == '\0' && end != json_string_value(in) && isfinite(d) && fabs(d) < 9.2e18 &&
            !strchr(json_string_value(in), 'x') && !strchr(json_string_value(in), 'X'))
            return aicp_tmpl_set_out(out, json_integer((json_int_t)d), err);
    }
    return aicp_tmpl_set_out(out, dflt ? json_incref(dflt) : json_integer(0), err);
}

FILTER(f_float)
{
    json_t *dflt = aicp_tmpl_arg(a, 0, "default");
    double d;
    if (json_is_real(in))
        return aicp_tmpl_set_out(out, json_incref(in), err);
    if (aicp_tmpl_is_num(in, &d))
        return aicp_tmpl_set_out(out, json_real(d), err);
    if (json_is_string(in)) {
        char *end;
        const char *s = json_string_value(in);
        d = strtod(s, &end);
        while (aicp_tmpl_isspace((unsigned char)*end))
            end++;
        if (*end == '\0' && end != s && isfinite(d) && !strchr(s, 'x') && !strchr(s, 'X'))
            return aicp_tmpl_set_out(out, json_real(d), err);
    }
    return aicp_tmpl_set_out(out, dflt ? json_incref(dflt) : json_real(0.0), err);
}

FILTER(f_string)
{
    (void)a;
    struct aicp_buf b;
    int rc = aicp_tmpl_to_buf(&b, in, err);
    if (rc == 0)
        rc = aicp_tmpl_set_out(out, aicp_tmpl_str_new(&b), err);
    aicp_buf_free(&b);
    return rc;
}

/* lower, upper, capitalize, title: ASCII case mapping of str(value). */
int aicp_tmpl_case_map(json_t **out, json_t *in, int mode, struct aicp_err *err)
{
    struct aicp_buf b;
    int rc = aicp_tmpl_to_buf(&b, in, err), start = 1;
    for (size_t i = 0; rc == 0 && i < b.len; i++) {
        unsigned char c = (unsigned char)b.data[i];
        if (mode == 0 || (mode == 2 && !start) || (mode == 3 && !start))
            b.data[i] = (char)tolower(c);
        else if (mode == 1 || start)
            b.data[i] = (char)toupper(c);
        start = mode == 3 ? !isalpha(c) : 0;
    }
    if (rc == 0)
        rc = aicp_tmpl_set_out(out, aicp_tmpl_str_new(&b), err);
    aicp_buf_free(&b);
    return rc;
}

FILTER(f_lower) { (void)a; return aicp_tmpl_case_map(out, in, 0, err); }
FILTER(f_upper) { (void)a; return aicp_tmpl_case_map(out, in, 1, err); }
FILTER(f_capitalize) { (void)a; return aicp_tmpl_case_map(out, in, 2, err); }
FILTER(f_title) { (void)a; return aicp_tmpl_case_map(out, in, 3, err); }

FILTER(f_replace)
{
    json_t *o = aicp_tmpl_arg(a, 0, "old"), *n = aicp_tmpl_arg(a, 1, "new");
    if (o == NULL || n == NULL)
        return aicp_err_set(err, AICP_EINVAL, "replace needs old and new");
    struct aicp_buf b;
    int rc = aicp_tmpl_to_buf(&b, in, err);
    json_t *s = rc == 0 ? aicp_tmpl_str_new(&b) : NULL;
    aicp_buf_free(&b);
    if (rc == 0 && s == NULL)
        rc = aicp_tmpl_set_out(out, NULL, err);
    if (rc == 0)
        rc = aicp_tmpl_py_replace(out, s, o, n, aicp_tmpl_arg(a, 2, "count"), err);
    json_decref(s);
    return rc;
}

/* An item's attribute by dotted path (Jinja's attribute= arguments). */
static json_t *attr_path(json_t *v, const char *path)
{
    char part[256];
    while (v && *path) {
        size_t l = strcspn(path, ".");
        snprintf(part, sizeof(part), "%.*s", (int)(l < 255 ? l : 255), path);
        if (json_is_object(v)) {
            v = json_object_get(v, part);
        } else if (json_is_array(v)) {
            char *end;
            long idx = strtol(part, &end, 10);
            v = *end == '\0' && idx >= 0 ? json_array_get(v, (size_t)idx) : NULL;
        } else {
            v = NULL;
        }
        path += l + (path[l] == '.');
    }
    return v;
}

/* The items a filter iterates: a list, a dict's keys, a string's
 * characters. New reference. */
static int seq_items(json_t **out, json_t *in, const char *who, struct aicp_err *err)
{
    *out = NULL;
    if (json_is_array(in))
        return aicp_tmpl_set_out(out, json_incref(in), err);
    json_t *res = json_array();
    if (json_is_object(in)) {
        const char *k;
        json_t *v;
        json_object_foreach(in, k, v) json_array_append_new(res, json_string(k));
    } else if (json_is_string(in)) {
        const char *s = json_string_value(in);
        size_t len = json_string_length(in);
        for (size_t i = 0; i < len;) {
            size_t used;
            aicp_tmpl_utf8_decode(s + i, len - i, &used);
            json_array_append_new(res, json_stringn(s + i, used));
            i += used;
        }
    } else {
        json_decref(res);
        return aicp_err_set(err, AICP_EINVAL, "%s: '%s' object is not iterable", who,
                            aicp_tmpl_type_name(in));
    }
    return aicp_tmpl_set_out(out, res, err);
}

FILTER(f_join)
{
    json_t *sep = aicp_tmpl_arg(a, 0, "d"), *attr = aicp_tmpl_arg(a, 1, "attribute"), *items = NULL;
    struct aicp_buf b = AICP_BUF_INIT;
    int rc = seq_items(&items, in, "join", err);
    for (size_t i = 0; rc == 0 && i < json_array_size(items); i++) {
        json_t *x = json_array_get(items, i);
        if (json_is_string(attr))
            x = attr_path(x, json_string_value(attr));
        if (i && sep)
            rc |= aicp_tmpl_str(&b, sep);
        if (x)
            rc |= aicp_tmpl_str(&b, x);
    }
    if (rc == 0)
        rc = aicp_tmpl_set_out(out, aicp_tmpl_str_new(&b), err);
    json_decref(items);
    aicp_buf_free(&b);
    return rc;
}

FILTER(f_length)
{
    (void)a;
    if (json_is_string(in))
        return aicp_tmpl_set_out(out,
                                 json_integer((json_int_t)aicp_tmpl_utf8_len(
                                     json_string_value(in), json_string_length(in))),
                                 err);
    if (json_is_array(in))
        return aicp_tmpl_set_out(out, json_integer((json_int_t)json_array_size(in)), err);
    if (json_is_object(in))
        return aicp_tmpl_set_out(out, json_integer((json_int_t)json_object_size(in)), err);
    return aicp_err_set(err, AICP_EINVAL, "object of type '%s' has no len()", aicp_tmpl_type_name(in));
}

FILTER(f_basename)
{
    (void)a;
    struct aicp_buf b;
    int rc = aicp_tmpl_to_buf(&b, in, err);
    if (rc == 0) {
        const char *slash = strrchr(b.data, '/');
        rc = aicp_tmpl_set_out(out, json_string(slash ? slash + 1 : b.data), err);
    }
    aicp_buf_free(&b);
    return rc;
}

FILTER(f_dirname)
{
    (void)a;
    struct aicp_buf b;
    int rc = aicp_tmpl_to_buf(&b, in, err);
    if (rc == 0) {
        char *slash = strrchr(b.data, '/');
        size_t head = slash ? (size_t)(slash - b.data) + 1 : 0, all = 1;
        for (size_t i = 0; i < head; i++)
            all &= b.data[i] == '/';
        if (head && !all)
            while (head > 0 && b.data[head - 1] == '/')
                head--;
        rc = aicp_tmpl_set_out(out, json_stringn(b.data, head), err);
    }
    aicp_buf_free(&b);
    return rc;
}

FILTER(f_trim)
{
    json_t *chars = aicp_tmpl_arg(a, 0, "chars");
    struct aicp_buf b;
    int rc = aicp_tmpl_to_buf(&b, in, err);
    json_t *s = rc == 0 ? aicp_tmpl_str_new(&b) : NULL;
    aicp_buf_free(&b);
    if (rc == 0)
        rc = s ? aicp_tmpl_py_strip(out, s, chars, 1, 1, err) : aicp_tmpl_set_out(out, NULL, err);
    json_decref(s);
    return rc;
}

static int first_last(json_t **out, json_t *in, int last, struct aicp_err *err)
{
    json_t *items = NULL;
    int rc = seq_items(&items, in, last ? "last" : "first", err);
    if (rc != 0)
        return rc;
    size_t n = json_array_size(items);
    if (n == 0)
        rc = aicp_err_set(err, AICP_EUNDEF, "No %s item, sequence was empty.", last ? "last" : "first");
    else
        rc = aicp_tmpl_set_out(out, json_incref(json_array_get(items, last ? n - 1 : 0)), err);
    json_decref(items);
    return rc;
}

FILTER(f_first) { (void)a; return first_last(out, in, 0, err); }
FILTER(f_last) { (void)a; return first_last(out, in, 1, err); }

FILTER(f_list)
{
    (void)a;
    return seq_items(out, in, "list", err);
}

/* Python equality, but strings compared case-insensitively (Jinja's
 * unique/min/max/sort default). */
static int equal_fold(const json_t *x, const json_t *y, int fold)
{
    if (fold && json_is_string(x) && json_is_string(y))
        return aicp_tmpl_fold_cmp(json_string_value(x), json_string_length(x), json_string_value(y),
                                  json_string_length(y), 1) == 0;
    return aicp_tmpl_equal(x, y);
}

FILTER(f_unique)
{
    json_t *items = NULL, *res;
    int fold = !aicp_tmpl_arg_bool(a, 0, "case_sensitive", 0);
    json_t *attr = aicp_tmpl_arg(a, 1, "attribute");
    int rc = seq_items(&items, in, "unique", err);
    if (rc != 0)
        return rc;
    res = json_array();
    for (size_t i = 0; res && i < json_array_size(items); i++) {
        json_t *x = json_array_get(items, i), *kx = json_is_string(attr) ? attr_path(x, json_string_value(attr)) : x;
        int dup = 0;
        for (size_t j = 0; j < json_array_size(res) && !dup; j++) {
            json_t *y = json_array_get(res, j), *ky = json_is_string(attr) ? attr_path(y, json_string_value(attr)) : y;
            dup = kx && ky ? equal_fold(kx, ky, fold) : kx == ky;
        }
        if (!dup)
            json_array_append(res, x);
    }
    json_decref(items);
    return aicp_tmpl_set_out(out, res, err);
}

/* Stable merge sort of a json array by Python ordering. */
static int sort_items(json_t *arr, int fold, int reverse, const char *attr, struct aicp_err *err)
{
    size_t n = json_array_size(arr);
    json_t **v = malloc((n + 1) * sizeof(*v)), **tmp = malloc((n + 1) * sizeof(*tmp));
    int rc = 0;
    if (v == NULL || tmp == NULL) {
        free(v);
        free(tmp);
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(arr, i));
    for (size_t width = 1; width < n && rc == 0; width *= 2) {
        for (size_t lo = 0; lo < n && rc == 0; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                json_t *x = attr ? attr_path(v[i], attr) : v[i], *y = attr ? attr_path(v[j], attr) : v[j];
                int c = 0;
                if (x == NULL || y == NULL) {
                    rc = aicp_err_set(err, AICP_EUNDEF, "'dict object' has no attribute '%s'", attr);
                    break;
                }
                if ((rc = aicp_tmpl_compare(&c, x, y, fold, err)) != 0)
                    break;
                tmp[k++] = (reverse ? c < 0 : c > 0) ? v[j++] : v[i++];
            }
            while (i < mid)
                tmp[k++] = v[i++];
            while (j < hi)
                tmp[k++] = v[j++];
            memcpy(v + lo, tmp + lo, (hi - lo) * sizeof(*v));
        }
    }
    json_array_clear(arr);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, v[i]);
    free(v);
    free(tmp);
    return rc;
}

FILTER(f_sort)
{
    json_t *items = NULL, *attr = aicp_tmpl_arg(a, 2, "attribute");
    int rc = seq_items(&items, in, "sort", err);
    if (rc != 0)
        return rc;
    json_t *copy = json_copy(items);
    json_decref(items);
    if (copy == NULL)
        return aicp_tmpl_set_out(out, NULL, err);
    rc = sort_items(copy, !aicp_tmpl_arg_bool(a, 1, "case_sensitive", 0),
                    aicp_tmpl_arg_bool(a, 0, "reverse", 0),
                    json_is_string(attr) ? json_string_value(attr) : NULL, err);
    if (rc != 0) {
        json_decref(copy);
        return rc;
    }
    *out = copy;
    return 0;
}

static int min_max(json_t **out, json_t *in, const struct aicp_tmpl_args *a, int want_max,
                   struct aicp_err *err)
{
    json_t *items = NULL, *best = NULL, *attr = aicp_tmpl_arg(a, 99, "attribute");
    int fold = !aicp_tmpl_arg_bool(a, 99, "case_sensitive", 0);
    int rc = seq_items(&items, in, want_max ? "max" : "min", err);
    for (size_t i = 0; rc == 0 && i < json_array_size(items); i++) {
        json_t *x = json_array_get(items, i);
        json_t *kx = json_is_string(attr) ? attr_path(x, json_string_value(attr)) : x;
        json_t *kb = best && json_is_string(attr) ? attr_path(best, json_string_value(attr)) : best;
        int c = 0;
        if (kx == NULL)
            continue;
        if (best == NULL || ((rc = aicp_tmpl_compare(&c, kx, kb, fold, err)) == 0 &&
                             (want_max ? c > 0 : c < 0)))
            best = x;
    }
    if (rc == 0 && best == NULL)
        rc = aicp_err_set(err, AICP_EUNDEF, "No aggregated item, sequence was empty.");
    if (rc == 0)
        rc = aicp_tmpl_set_out(out, json_incref(best), err);
    if (items)
        json_decref(items);
    return rc;
}

FILTER(f_min) { return min_max(out, in, a, 0, err); }
FILTER(f_max) { return min_max(out, in, a, 1, err); }

FILTER(f_sum)
{
    json_t *items = NULL, *attr = aicp_tmpl_arg(a, 0, "attribute"),
           *start = aicp_tmpl_arg(a, 1, "start");
    int rc = seq_items(&items, in, "sum", err);
    if (rc != 0)
        return rc;
    json_t *acc = start ? json_incref(start) : json_integer(0);
    for (size_t i = 0; i < json_array_size(items) && rc == 0; i++) {
        json_t *x = json_array_get(items, i), *next = NULL;
        if (json_is_string(attr))
            x = attr_path(x, json_string_value(attr));
        double da, dx;
        if (x && aicp_tmpl_is_num(acc, &da) && aicp_tmpl_is_num(x, &dx)) {
            json_int_t r;
            if (!json_is_real(acc) && !json_is_real(x) &&
                !__builtin_add_overflow((json_int_t)da, (json_int_t)dx, &r))
                next = json_integer(r);
            else
                next = isfinite(da + dx) ? json_real(da + dx) : NULL;
        } else if (x && json_is_array(acc) && json_is_array(x)) {
            if ((next = json_copy(acc)) != NULL)
                json_array_extend(next, x);
        } else {
            rc = aicp_err_set(err, AICP_EINVAL, "unsupported operand type(s) for +: '%s' and '%s'",
                              aicp_tmpl_type_name(acc), x ? aicp_tmpl_type_name(x) : "Undefined");
        }
        json_decref(acc);
        acc = next;
        if (rc == 0 && acc == NULL)
            rc = aicp_err_set(err, AICP_EINVAL, "sum: overflow");
    }
    json_decref(items);
    if (rc != 0) {
        json_decref(acc);
        return rc;
    }
    *out = acc;
    return 0;
}

FILTER(f_abs)
{
    (void)a;
    if (json_is_integer(in) && json_integer_value(in) != INT64_MIN)
        return aicp_tmpl_set_out(out, json_integer(llabs(json_integer_value(in))), err);
    if (json_is_boolean(in))
        return aicp_tmpl_set_out(out, json_integer(json_is_true(in)), err);
    if (json_is_real(in))
        return aicp_tmpl_set_out(out, json_real(fabs(json_real_value(in))), err);
    return aicp_err_set(err, AICP_EINVAL, "bad operand type for abs(): '%s'", aicp_tmpl_type_name(in));
}

FILTER(f_round)
{
    json_t *precv = aicp_tmpl_arg(a, 0, "precision"), *methodv = aicp_tmpl_arg(a, 1, "method");
    int prec = json_is_integer(precv) ? (int)json_integer_value(precv) : 0;
    const char *method = json_is_string(methodv) ? json_string_value(methodv) : "common";
    double d;
    if (!aicp_tmpl_is_num(in, &d))
        return aicp_err_set(err, AICP_EINVAL, "round: a number is required");
    if (prec < -20 || prec > 20)
        prec = prec < 0 ? -20 : 20;
    double f = 1, r;
    aicp_tmpl_pow(&f, 10, prec);
    r = d * f;
    if (!strcmp(method, "ceil"))
        r = -aicp_tmpl_floor(-r);
    else if (!strcmp(method, "floor"))
        r = aicp_tmpl_floor(r);
    else {
        /* Python's round(): halves go to the even neighbour. */
        double fl = aicp_tmpl_floor(r), diff = r - fl;
        r = diff > 0.5 ? fl + 1 : diff < 0.5 ? fl : (aicp_tmpl_floor(fl / 2) * 2 == fl ? fl : fl + 1);
    }
    return aicp_tmpl_set_out(out, json_real(r / f), err);
}

FILTER(f_dict2items)
{
    json_t *kn = aicp_tmpl_arg(a, 0, "key_name"), *vn = aicp_tmpl_arg(a, 1, "value_name");
    if (!json_is_object(in))
        return aicp_err_set(err, AICP_EINVAL, "dict2items requires a dictionary, got %s instead.",
                            aicp_tmpl_type_name(in));
    json_t *res = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(in, k, v) json_array_append_new(
        res, json_pack("{sssO}", json_is_string(kn) ? json_string_value(kn) : "key", k,
                       json_is_string(vn) ? json_string_value(vn) : "value", v));
    return aicp_tmpl_set_out(out, res, err);
}

FILTER(f_items2dict)
{
    json_t *knv = aicp_tmpl_arg(a, 0, "key_name"), *vnv = aicp_tmpl_arg(a, 1, "value_name");
    const char *kn = json_is_string(knv) ? json_string_value(knv) : "key";
    const char *vn = json_is_string(vnv) ? json_string_value(vnv) : "value";
    if (!json_is_array(in))
        return aicp_err_set(err, AICP_EINVAL, "items2dict requires a list, got %s instead.",
                            aicp_tmpl_type_name(in));
    json_t *res = json_object();
    for (size_t i = 0; i < json_array_size(in); i++) {
        json_t *x = json_array_get(in, i), *k = json_object_get(x, kn), *v = json_object_get(x, vn);
        struct aicp_buf kb = AICP_BUF_INIT;
        if (k == NULL || v == NULL) {
            json_decref(res);
            return aicp_err_set(err, AICP_EINVAL, "items2dict requires each item to have '%s' and '%s' keys",
                                kn, vn);
        }
        if (aicp_tmpl_str(&kb, k) == 0)
            json_object_set(res, kb.data ? kb.data : "", v);
        aicp_buf_free(&kb);
    }
    return aicp_tmpl_set_out(out, res, err);
}

FILTER(f_ternary)
{
    json_t *t = aicp_tmpl_arg(a, 0, "true_val"), *f = aicp_tmpl_arg(a, 1, "false_val"),
           *n = aicp_tmpl_arg(a, 2, "none_val");
    json_t *r = n && json_is_null(in) ? n : aicp_tmpl_truthy(in) ? t : f;
    return aicp_tmpl_set_out(out, json_incref(r ? r : json_null()), err);
}

FILTER(f_quote)
{
    (void)a;
    struct aicp_buf sb, b = AICP_BUF_INIT;
    int rc = json_is_null(in) ? (sb = (struct aicp_buf)AICP_BUF_INIT, aicp_buf_puts(&sb, ""))
                              : aicp_tmpl_to_buf(&sb, in, err);
    if (rc != 0)
        return rc;
    int safe = sb.len > 0;
    for (size_t i = 0; i < sb.len; i++)
        if (!isalnum((unsigned char)sb.data[i]) && !strchr("@%+=:,./-_", sb.data[i]))
            safe = 0;
    if (safe) {
        rc = aicp_buf_append(&b, sb.data, sb.len);
    } else {
        rc = aicp_buf_puts(&b, "'");
        for (size_t i = 0; i < sb.len; i++)
            rc |= sb.data[i] == '\'' ? aicp_buf_puts(&b, "'\"'\"'") : aicp_buf_append(&b, &sb.data[i], 1);
        rc |= aicp_buf_puts(&b, "'");
    }
    if (rc == 0)
        rc = aicp_tmpl_set_out(out, aicp_tmpl_str_new(&b), err);
    aicp_buf_free(&sb);
    aicp_buf_free(&b);
    return rc;
}

FILTER(f_b64encode)
{
    (void)a;
    struct aicp_buf sb;
    int rc = aicp_tmpl_to_buf(&sb, in, err);
    if (rc != 0)
        return rc;
    unsigned char *enc = malloc(4 * ((sb.len + 2) / 3) + 1);
    if (enc == NULL) {
        aicp_buf_free(&sb);
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    int n = EVP_EncodeBlock(enc, (const unsigned char *)sb.data, (int)sb.len);
    rc = aicp_tmpl_set_out(out, json_stringn((const char *)enc, n > 0 ? (size_t)n : 0), err);
    free(enc);
    aicp_buf_free(&sb);
    return rc;
}

FILTER(f_b64decode)
{
    (void)a;
    struct aicp_buf sb, clean = AICP_BUF_INIT;
    int rc = aicp_tmpl_to_buf(&sb, in, err);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < sb.len; i++)
        if (!aicp_tmpl_isspace((unsigned char)sb.data[i]))
            rc |= aicp_buf_append(&clean, &sb.data[i], 1);
    size_t pad_n = 0;
    if (clean.len % 4 != 0) {
        aicp_buf_free(&sb);
        aicp_buf_free(&clean);
        return aicp_err_set(err, AICP_EINVAL, "b64decode: Incorrect padding");
    }
    for (size_t i = clean.len; i > 0 && clean.data[i - 1] == '='; i--)
        pad_n++;
    unsigned char *dec = malloc(clean.len / 4 * 3 + 1);
    int n = dec && clean.len ? EVP_DecodeBlock(dec, (const unsigned char *)clean.data, (int)clean.len) : 0;
    if (rc != 0 || dec == NULL)
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
    else if (n < 0 || pad_n > 2)
        rc = aicp_err_set(err, AICP_EINVAL, "b64decode: invalid base64 input");
    else if ((*out = json_stringn((const char *)dec, (size_t)n - (pad_n < (size_t)n ? pad_n : 0))) == NULL)
        rc = aicp_err_set(err, AICP_EINVAL, "b64decode: decoded data is not valid UTF-8");
    free(dec);
    aicp_buf_free(&sb);
    aicp_buf_free(&clean);
    return rc;
}

FILTER(f_mandatory)
{
    (void)a;
    return aicp_tmpl_set_out(out, json_incref(in), err);
}

static int merge(json_t *dst, json_t *src, int recursive, int depth)
{
    const char *k;
    json_t *v;
    if (depth > 200)
        return AICP_EINVAL;
    json_object_foreach(src, k, v) {
        json_t *cur = json_object_get(dst, k);
        if (recursive && json_is_object(cur) && json_is_object(v)) {
            json_t *c = json_copy(cur);
            if (c == NULL || merge(c, v, 1, depth + 1) != 0 || json_object_set_new(dst, k, c) != 0)
                return AICP_ENOMEM;
        } else if (json_object_set(dst, k, v) != 0) {
            return AICP_ENOMEM;
        }
    }
    return 0;
}

FILTER(f_combine)
{
    int recursive = aicp_tmpl_arg_bool(a, 99, "recursive", 0);
    if (!json_is_object(in))
        return aicp_err_set(err, AICP_EINVAL, "failed to combine variables, expected dicts but got "
                            "'%s'", aicp_tmpl_type_name(in));
    json_t *res = json_copy(in);
    for (size_t i = 0; i < a->npos && res; i++) {
        json_t *list = json_is_array(a->pos[i]) ? json_incref(a->pos[i]) : json_pack("[O]", a->pos[i]);
        for (size_t j = 0; list && j < json_array_size(list); j++) {
            json_t *d = json_array_get(list, j);
            if (!json_is_object(d)) {
                json_decref(list);
                json_decref(res);
                return aicp_err_set(err, AICP_EINVAL, "failed to combine variables, expected dicts "
                                    "but got '%s'", aicp_tmpl_type_name(d));
            }
            merge(res, d, recursive, 0);
        }
        json_decref(list);
    }
    return aicp_tmpl_set_out(out, res, err);
}

static int apply_map(json_t **out, json_t *in, const struct aicp_tmpl_args *a, struct aicp_err *err)
{
    json_t *items = NULL, *attr = aicp_tmpl_arg(a, 99, "attribute"),
           *dflt = aicp_tmpl_arg(a, 99, "default");
    int rc = seq_items(&items, in, "map", err);
    if (rc != 0)
        return rc;
    json_t *res = json_array();
    struct aicp_tmpl_args rest = {.pos = a->pos + (a->npos ? 1 : 0),
                                  .npos = a->npos ? a->npos - 1 : 0,
                                  .kwname = a->kwname, .kw = a->kw, .nkw = a->nkw};
    for (size_t i = 0; i < json_array_size(items) && rc == 0; i++) {
        json_t *x = json_array_get(items, i), *r = NULL;
        if (json_is_string(attr)) {
            r = attr_path(x, json_string_value(attr));
            r = r ? json_incref(r) : dflt ? json_incref(dflt) : NULL;
            if (r == NULL)
                rc = aicp_err_set(err, AICP_EUNDEF, "'%s' has no attribute '%s'",
                                  json_is_object(x) ? "dict object" : aicp_tmpl_type_name(x),
                                  json_string_value(attr));
        } else if (a->npos && json_is_string(a->pos[0])) {
            rc = aicp_tmpl_filter_call(&r, json_string_value(a->pos[0]), x, &rest, err);
        } else {
            rc = aicp_err_set(err, AICP_EINVAL, "map needs a filter name or attribute=");
        }
        if (rc == 0)
            json_array_append_new(res, r);
    }
    json_decref(items);
    if (rc != 0) {
        json_decref(res);
        return rc;
    }
    return aicp_tmpl_set_out(out, res, err);
}

FILTER(f_map) { return apply_map(out, in, a, err); }

/* select/reject/selectattr/rejectattr. */
static int filter_seq(json_t **out, json_t *in, const struct aicp_tmpl_args *a, int keep,
                      int by_attr, struct aicp_err *err)
{
    json_t *items = NULL;
    int rc = seq_items(&items, in, "select", err);
    if (rc != 0)
        return rc;
    size_t first = by_attr ? 1 : 0;
    const char *attr = by_attr && a->npos && json_is_string(a->pos[0]) ? json_string_value(a->pos[0]) : NULL;
    const char *test = a->npos > first && json_is_string(a->pos[first]) ? json_string_value(a->pos[first]) : NULL;
    struct aicp_tmpl_args rest = {.pos = a->pos + first + 1,
                                  .npos = a->npos > first + 1 ? a->npos - first - 1 : 0,
                                  .kwname = a->kwname, .kw = a->kw, .nkw = a->nkw};
    json_t *res = json_array();
    if (by_attr && attr == NULL)
        rc = aicp_err_set(err, AICP_EINVAL, "selectattr needs an attribute name");
    for (size_t i = 0; i < json_array_size(items) && rc == 0; i++) {
        json_t *x = json_array_get(items, i), *v = attr ? attr_path(x, attr) : x;
        int t = 0;
        if (test && (!strcmp(test, "defined") || !strcmp(test, "undefined")))
            t = (v != NULL) == (test[0] == 'd');
        else if (v == NULL)
            rc = aicp_err_set(err, AICP_EUNDEF, "'dict object' has no attribute '%s'", attr);
        else if (test)
            rc = aicp_tmpl_test_call(&t, test, v, &rest, err);
        else
            t = aicp_tmpl_truthy(v);
        if (rc == 0 && t == keep)
            json_array_append(res, x);
    }
    json_decref(items);
    if (rc != 0) {
        json_decref(res);
        return rc;
    }
    return aicp_tmpl_set_out(out, res, err);
}

FILTER(f_select) { return filter_seq(out, in, a, 1, 0, err); }
FILTER(f_reject) { return filter_seq(out, in, a, 0, 0, err); }
FILTER(f_selectattr) { return filter_seq(out, in, a, 1, 1, err); }
FILTER(f_rejectattr) { return filter_seq(out, in, a, 0, 1, err); }

FILTER(f_type_debug)
{
    (void)a;
    return aicp_tmpl_set_out(out, json_string(aicp_tmpl_type_name(in)), err);
}

FILTER(f_hash)
{
    json_t *tv = aicp_tmpl_arg(a, 0, "hashtype");
    const char *type = json_is_string(tv) ? json_string_value(tv) : "sha1";
    const EVP_MD *md = !strcmp(type, "sha1") ? EVP_sha1() : !strcmp(type, "md5") ? EVP_md5()
                       : !strcmp(type, "sha256") ? EVP_sha256() : !strcmp(type, "sha512") ? EVP_sha512()
                       : !strcmp(type, "sha224") ? EVP_sha224() : !strcmp(type, "sha384") ? EVP_sha384() : NULL;
    if (md == NULL)
        return aicp_err_set(err, AICP_EINVAL, "hash: unsupported hash type '%s'", type);
    struct aicp_buf sb;
    int rc = aicp_tmpl_to_buf(&sb, in, err);
    if (rc != 0)
        return rc;
    unsigned char dig[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    if (EVP_Digest(sb.data, sb.len, dig, &n, md, NULL) != 1)
        rc = aicp_err_set(err, AICP_EINVAL, "hash: digest failed");
    for (unsigned int i = 0; rc == 0 && i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", dig[i]);
    if (rc == 0)
        rc = aicp_tmpl_set_out(out, json_stringn(hex, 2 * n), err);
    aicp_buf_free(&sb);
    return rc;
}

FILTER(f_indent)
{
    json_t *wv = aicp_tmpl_arg(a, 0, "width");
    int first = aicp_tmpl_arg_bool(a, 1, "first", 0), blank = aicp_tmpl_arg_bool(a, 2, "blank", 0);
    struct aicp_buf ind = AICP_BUF_INIT, sb, b = AICP_BUF_INIT;
    int rc = json_is_string(wv) ? aicp_buf_puts(&ind, json_string_value(wv)) : 0;
    json_int_t w = json_is_integer(wv) ? json_integer_value(wv) : 4;
    for (json_int_t i = 0; !json_is_string(wv) && i < w && i < 1000 && rc == 0; i++)
        rc = aicp_buf_puts(&ind, " ");
    if (rc == 0 && ind.data == NULL)
        rc = aicp_buf_puts(&ind, "");
    if (rc != 0 || (rc = aicp_tmpl_to_buf(&sb, in, err)) != 0) {
        aicp_buf_free(&ind);
        return rc ? rc : AICP_ENOMEM;
    }
    /* Jinja appends "\n" and then splits into lines. */
    rc = aicp_buf_puts(&sb, "\n");
    json_t *lines = NULL;
    if (rc == 0)
        rc = aicp_tmpl_py_splitlines(&lines, sb.data, sb.len, err);
    for (size_t i = 0; rc == 0 && i < json_array_size(lines); i++) {
        json_t *l = json_array_get(lines, i);
        if (i > 0) {
            rc |= aicp_buf_puts(&b, "\n");
            if (blank || json_string_length(l) > 0)
                rc |= aicp_buf_append(&b, ind.data, ind.len);
        }
        rc |= aicp_buf_append(&b, json_string_value(l), json_string_length(l));
    }
    json_decref(lines);
    if (rc == 0 && first) {
        struct aicp_buf f = AICP_BUF_INIT;
        rc = aicp_buf_append(&f, ind.data, ind.len) | aicp_buf_append(&f, b.data ? b.data : "", b.len);
        aicp_buf_free(&b);
        b = f;
    }
    if (rc == 0)
        rc = aicp_tmpl_set_out(out, aicp_tmpl_str_new(&b), err);
    aicp_buf_free(&ind);
    aicp_buf_free(&sb);
    aicp_buf_free(&b);
    return rc;
}

FILTER(f_splitlines)
{
    (void)a;
    if (aicp_tmpl_need_str(in, "splitlines", err) != 0)
        return AICP_EINVAL;
    return aicp_tmpl_py_splitlines(out, json_string_value(in), json_string_length(in), err);
}

FILTER(f_split)
{
    json_t *maxv = aicp_tmpl_arg(a, 1, "maxsplit");
    if (aicp_tmpl_need_str(in, "split", err) != 0)
        return AICP_EINVAL;
    return aicp_tmpl_py_split(out, json_string_value(in), json_string_length(in),
                              aicp_tmpl_arg(a, 0, "sep"),
                              json_is_integer(maxv) ? json_integer_value(maxv) : -1, err);
}

FILTER(f_reverse)
{
    (void)a;
    json_t *items = NULL;
    int rc = seq_items(&items, in, "reverse", err);
    if (rc != 0)
        return rc;
    json_t *res = json_array();
    for (size_t i = json_array_size(items); res && i > 0; i--)
        json_array_append(res, json_array_get(items, i - 1));
    json_decref(items);
    if (res && json_is_string(in)) {
        struct aicp_tmpl_args none = {.npos = 0};
        json_t *s;
        rc = f_join(&s, res, &none, err);
        json_decref(res);
        res = rc == 0 ? s : NULL;
        if (rc != 0)
            return rc;
    }
    return aicp_tmpl_set_out(out, res, err);
}

static int flatten_into(json_t *res, json_t *v, json_int_t levels, int depth)
{
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *x = json_array_get(v, i);
        if (json_is_array(x) && (levels < 0 || depth < levels) && depth < 200)
            flatten_into(res, x, levels, depth + 1);
        else if (!json_is_null(x))
            json_array_append(res, x);
    }
    return 0;
}

FILTER(f_flatten)
{
    json_t *lv = aicp_tmpl_arg(a, 0, "levels");
    if (!json_is_array(in))
        return aicp_err_set(err, AICP_EINVAL, "flatten expects a list");
    json_t *res = json_array();
    if (res)
        flatten_into(res, in, json_is_integer(lv) ? json_integer_value(lv) : -1, 0);
    return aicp_tmpl_set_out(out, res, err);
}

FILTER(f_items)
{
    (void)a;
    if (!json_is_object(in))
        return aicp_err_set(err, AICP_EINVAL, "items expects a mapping");
    struct aicp_tmpl_args none = {.npos = 0};
    return aicp_tmpl_method_call(out, in, "items", &none, err);
}

static const struct {
    const char *name;
    filter_fn fn;
} filters[] = {
    {"abs", f_abs}, {"b64decode", f_b64decode}, {"b64encode", f_b64encode},
    {"basename", f_basename}, {"bool", f_bool}, {"capitalize", f_capitalize},
    {"combine", f_combine}, {"count", f_length}, {"dict2items", f_dict2items},
    {"dirname", f_dirname}, {"first", f_first}, {"flatten", f_flatten}, {"float", f_float},
    {"from_json", f_from_json}, {"hash", f_hash}, {"indent", f_indent}, {"int", f_int},
    {"items", f_items}, {"items2dict", f_items2dict}, {"join", f_join}, {"last", f_last},
    {"length", f_length}, {"list", f_list}, {"lower", f_lower}, {"mandatory", f_mandatory},
    {"map", f_map}, {"max", f_max}, {"min", f_min}, {"quote", f_quote},
    {"regex_escape", f_regex_escape}, {"regex_replace", f_regex_replace},
    {"regex_search", f_regex_search}, {"reject", f_reject}, {"rejectattr", f_rejectattr},
    {"replace", f_replace}, {"reverse", f_reverse}, {"round", f_round}, {"select", f_select},
    {"selectattr", f_selectattr}, {"sort", f_sort}, {"split", f_split},
    {"splitlines", f_splitlines}, {"string", f_string}, {"sum", f_sum}, {"ternary", f_ternary},
    {"title", f_title}, {"to_json", f_to_json}, {"to_nice_json", f_to_nice_json},
    {"to_nice_yaml", f_to_nice_yaml}, {"to_yaml", f_to_yaml}, {"trim", f_trim},
    {"type_debug", f_type_debug}, {"unique", f_unique}, {"upper", f_upper},
};

int aicp_tmpl_filter_call(json_t **out, const char *name, json_t *in,
                          const struct aicp_tmpl_args *a, struct aicp_err *err)
{
    *out = NULL;
    for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++)
        if (!strcmp(filters[i].name, name)) {
            int rc = filters[i].fn(out, in, a, err);
            if (rc != 0 && *out != NULL) {
                json_decref(*out);
                *out = NULL;
            }
            return rc;
        }
    return aicp_err_set(err, AICP_EINVAL, "template error: no filter named '%s'", name);
}
