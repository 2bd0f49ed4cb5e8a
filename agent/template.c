/* The Jinja2 engine behind every `{{ }}` in playbooks, site files and
 * templates: a lexer that splits a template into text and tag tokens (with
 * Jinja's whitespace control and Ansible's trim_blocks), a recursive-descent
 * parser that follows Jinja2's grammar and precedence, and an evaluator over
 * jansson values. Undefined values propagate the way Ansible's
 * AnsibleUndefined does (attribute access on them stays undefined) and only
 * fail when used; variables whose values are templates are rendered lazily
 * when looked up. The lexer and parser live in template_lex.c, filters in
 * template_filters.c, tests, methods and globals in template_tests.c. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h> /* classification macros only: no libm */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "secret.h"
#include "template.h"
#include "util.h"

/* Depth of the expression tree walked at once (also across lazy renders);
 * long operator chains build deep trees, and each level costs stack. */
#define MAX_EVAL_NEST 1000
/* Lazy renders of variables inside variables, as Ansible bounds them. */
#define MAX_LAZY_DEPTH 50

struct ctx {
    const json_t *vars;
    json_t **scopes; /* innermost last; each a JSON object */
    size_t nscopes, capscopes;
    int lazy_depth;
    int *nest;       /* shared with lazy sub-renders */
    struct aicp_err *err;
    int line;
    /* A value derived from a secret was too short to register: the output
     * that holds it gets registered whole (template_taint.c). */
    int derived;
    char undef_msg[512];
    char undef_name[256];
};
static int eval(struct ctx *c, struct aicp_tmpl_node *n, json_t **out);
static int render_value(struct ctx *c, json_t **out, const json_t *in);

/* -------------------------------------------------------------- evaluator */

static int fail(struct ctx *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct ctx *c, int code, const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return aicp_err_set(c->err, code, "%s", msg);
}

/* Produces an undefined value: NULL with the message kept for whoever
 * finally uses it. */
static int undef(struct ctx *c, json_t **out, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int undef(struct ctx *c, json_t **out, const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->undef_msg, sizeof(c->undef_msg), fmt, ap);
    va_end(ap);
    snprintf(c->undef_name, sizeof(c->undef_name), "%s", name ? name : "");
    *out = NULL;
    return 0;
}

static int need(struct ctx *c, const json_t *v)
{
    if (v != NULL)
        return 0;
    return aicp_err_set(c->err, AICP_EUNDEF, "%s", c->undef_msg);
}

static int oom(struct ctx *c)
{
    return aicp_err_set(c->err, AICP_ENOMEM, "out of memory");
}

/* Registers what an operation derived from secret inputs. */
static int taint(struct ctx *c, const json_t *res, const json_t *const *ins, size_t n)
{
    return aicp_tmpl_taint(res, ins, n, &c->derived) != 0 ? oom(c) : 0;
}

/* A filter, test or method failed on a secret, and its message quotes a
 * piece of it (a JSON parser's "invalid token near '...'"): it only says
 * what failed. */
static int hide_error(struct ctx *c, int rc, const char *kind, const char *name,
                      const json_t *const *ins, size_t n)
{
    if (rc == 0 || rc == AICP_ENOMEM || c->err == NULL ||
        !aicp_tmpl_quotes_secret(c->err->msg, ins, n))
        return rc;
    return aicp_err_set(c->err, rc, "%s '%s' failed on a secret value (details not shown)", kind,
                        name);
}

/* src is (or holds) a secret: an error about it would quote pieces of it
 * (the token a syntax error stopped at, a name it read as undefined). */
static int hide_src_error(struct aicp_err *err, int rc, const char *src, size_t len)
{
    if (rc == 0 || rc == AICP_ENOMEM || !aicp_secrets_found(aicp_tmpl_secrets(), src, len))
        return rc;
    return aicp_err_set(err, rc, "template error while templating a secret value (details not "
                                 "shown)");
}

/* How Jinja names an object's type in undefined messages. */
static const char *obj_desc(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "dict object";
    case JSON_ARRAY: return "list object";
    case JSON_STRING: return "str object";
    case JSON_INTEGER: return "int object";
    case JSON_REAL: return "float object";
    case JSON_TRUE:
    case JSON_FALSE: return "bool object";
    default: return "None";
    }
}

static int has_template(const json_t *v)
{
    size_t i;
    const char *k;
    json_t *x;
    switch (json_typeof(v)) {
    case JSON_STRING: return aicp_tmpl_is_template(json_string_value(v));
    case JSON_ARRAY:
        json_array_foreach(v, i, x) if (has_template(x)) return 1;
        return 0;
    case JSON_OBJECT:
        json_object_foreach((json_t *)v, k, x) if (has_template(x)) return 1;
        return 0;
    default: return 0;
    }
}

static int scope_push(struct ctx *c)
{
    if (c->nscopes == c->capscopes) {
        size_t cap = c->capscopes ? c->capscopes * 2 : 8;
        json_t **s = realloc(c->scopes, cap * sizeof(*s));
        if (s == NULL)
            return oom(c);
        c->scopes = s;
        c->capscopes = cap;
    }
    if ((c->scopes[c->nscopes] = json_object()) == NULL)
        return oom(c);
    c->nscopes++;
    return 0;
}

static void scope_pop(struct ctx *c)
{
    json_decref(c->scopes[--c->nscopes]);
}

static int lookup(struct ctx *c, const char *name, json_t **out)
{
    json_t *v = NULL;
    for (size_t i = c->nscopes; i-- > 0 && v == NULL;)
        v = json_object_get(c->scopes[i], name);
    if (v == NULL && c->vars != NULL)
        v = json_object_get(c->vars, name);
    if (v == NULL)
        return undef(c, out, name, "'%s' is undefined", name);
    if (has_template(v))
        return render_value(c, out, v);
    *out = json_incref(v);
    return 0;
}

/* Indexes code points of a UTF-8 string: off[i] is the byte offset of the
 * i-th one, off[n] the length. */
static int utf8_offsets(const char *s, size_t len, size_t **off, size_t *n)
{
    size_t cnt = aicp_tmpl_utf8_len(s, len), k = 0;
    *off = malloc((cnt + 1) * sizeof(**off));
    if (*off == NULL)
        return AICP_ENOMEM;
    for (size_t i = 0; i < len && k < cnt; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            (*off)[k++] = i;
    (*off)[cnt] = len;
    *n = cnt;
    return 0;
}

static int getitem(struct ctx *c, json_t *obj, json_t *key, json_t **out)
{
    if (json_is_object(obj)) {
        json_t *v = NULL;
        char num[32];
        if (json_is_string(key)) {
            v = json_object_get(obj, json_string_value(key));
            if (v == NULL)
                return undef(c, out, json_string_value(key), "'dict object' has no attribute '%s'",
                             json_string_value(key));
        } else if (json_is_integer(key)) {
            snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(key));
            if ((v = json_object_get(obj, num)) == NULL)
                return undef(c, out, num, "dict object has no element %s", num);
        } else {
            return undef(c, out, NULL, "dict object has no element of type %s",
                         aicp_tmpl_type_name(key));
        }
        *out = json_incref(v);
        return 0;
    }
    if (json_is_array(obj) || json_is_string(obj)) {
        if (!json_is_integer(key) && !json_is_boolean(key)) {
            if (json_is_string(key))
                return undef(c, out, json_string_value(key), "'%s' has no attribute '%s'",
                             obj_desc(obj), json_string_value(key));
            return fail(c, AICP_EINVAL, "%s indices must be integers, not %s",
                        json_is_array(obj) ? "list" : "string", aicp_tmpl_type_name(key));
        }
        json_int_t i = json_is_boolean(key) ? json_is_true(key) : json_integer_value(key);
        if (json_is_array(obj)) {
            json_int_t n = (json_int_t)json_array_size(obj);
            json_int_t j = i < 0 ? i + n : i;
            if (j < 0 || j >= n)
                return undef(c, out, NULL, "list object has no element %" JSON_INTEGER_FORMAT, i);
            *out = json_incref(json_array_get(obj, (size_t)j));
            return 0;
        }
        size_t *off, n;
        const char *s = json_string_value(obj);
        if (utf8_offsets(s, json_string_length(obj), &off, &n) != 0)
            return oom(c);
        json_int_t j = i < 0 ? i + (json_int_t)n : i;
        if (j < 0 || j >= (json_int_t)n) {
            free(off);
            return undef(c, out, NULL, "str object has no element %" JSON_INTEGER_FORMAT, i);
        }
        *out = json_stringn(s + off[j], off[j + 1] - off[j]);
        free(off);
        return *out ? 0 : oom(c);
    }
    if (json_is_string(key))
        return undef(c, out, json_string_value(key), "'%s' has no attribute '%s'", obj_desc(obj),
                     json_string_value(key));
    return undef(c, out, NULL, "%s has no element", obj_desc(obj));
}

static int slice_bound(struct ctx *c, struct aicp_tmpl_node *n, json_int_t *out, int *given)
{
    *given = 0;
    if (n == NULL)
        return 0;
    json_t *v;
    int rc = eval(c, n, &v);
    if (rc == 0 && (rc = need(c, v)) == 0) {
        if (json_is_integer(v)) {
            *out = json_integer_value(v);
            *given = 1;
        } else if (!json_is_null(v)) {
            rc = fail(c, AICP_EINVAL, "slice indices must be integers or None");
        }
    }
    json_decref(v);
    return rc;
}

/* Python's obj[start:stop:step] for lists and strings. */
static int eval_slice(struct ctx *c, struct aicp_tmpl_node *n, json_t **out)
{
    json_t *obj = NULL, *res = NULL;
    size_t *off = NULL, len = 0;
    json_int_t lo = 0, hi = 0, step = 1;
    int glo, ghi, gstep, rc;
    if ((rc = eval(c, n->a, &obj)) != 0 || (rc = need(c, obj)) != 0 ||
        (rc = slice_bound(c, n->b, &lo, &glo)) != 0 ||
        (rc = slice_bound(c, n->c, &hi, &ghi)) != 0 ||
        (rc = slice_bound(c, n->d, &step, &gstep)) != 0)
        goto out;
    if (step == 0) {
        rc = fail(c, AICP_EINVAL, "slice step cannot be zero");
        goto out;
    }
    if (json_is_array(obj)) {
        len = json_array_size(obj);
    } else if (json_is_string(obj)) {
        if (utf8_offsets(json_string_value(obj), json_string_length(obj), &off, &len) != 0) {
            rc = oom(c);
            goto out;
        }
    } else {
        rc = fail(c, AICP_EINVAL, "'%s' object is not subscriptable", aicp_tmpl_type_name(obj));
        goto out;
    }
    json_int_t L = (json_int_t)len;
    if (!glo)
        lo = step > 0 ? 0 : L - 1;
    else if (lo < 0)
        lo = lo + L < 0 ? (step > 0 ? 0 : -1) : lo + L;
    else if (lo >= L)
        lo = step > 0 ? L : L - 1;
    if (!ghi)
        hi = step > 0 ? L : -1;
    else if (hi < 0)
        hi = hi + L < 0 ? (step > 0 ? 0 : -1) : hi + L;
    else if (hi >= L)
        hi = step > 0 ? L : L - 1;
    struct aicp_buf b = AICP_BUF_INIT;
    res = json_is_array(obj) ? json_array() : NULL;
    for (json_int_t i = lo; step > 0 ? i < hi : i > hi; i += step) {
        if (res != NULL)
            rc = json_array_append(res, json_array_get(obj, (size_t)i));
        else
            rc = aicp_buf_append(&b, json_string_value(obj) + off[i], off[i + 1] - off[i]);
        if (rc != 0 || (step > 0 ? i > INT64_MAX - step : i < INT64_MIN - step))
            break;
    }
    if (res == NULL && json_is_string(obj))
        res = json_stringn(b.data ? b.data : "", b.len);
    aicp_buf_free(&b);
    if (res == NULL)
        rc = oom(c);
    else if (rc == 0)
        rc = taint(c, res, (const json_t *[]){obj}, 1);
out:
    free(off);
    json_decref(obj);
    *out = rc == 0 ? res : NULL;
    if (rc != 0)
        json_decref(res);
    return rc;
}

static int num_value(const json_t *v, double *d, json_int_t *i)
{
    if (json_is_integer(v)) {
        *i = json_integer_value(v);
        *d = (double)*i;
        return 1;
    }
    if (json_is_boolean(v)) {
        *i = json_is_true(v);
        *d = (double)*i;
        return 1;
    }
    if (json_is_real(v)) {
        *d = json_real_value(v);
        return 2;
    }
    return 0;
}

static json_t *make_real(double d)
{
    return isfinite(d) ? json_real(d) : NULL;
}

static int repeat(struct ctx *c, json_t *seq, json_int_t times, json_t **out)
{
    if (times < 0)
        times = 0;
    size_t unit = json_is_string(seq) ? json_string_length(seq) : json_array_size(seq);
    if (unit > 0 && (size_t)times > AICP_TMPL_MAX_OUTPUT / unit)
        return fail(c, AICP_EINVAL, "result of repetition exceeds %u bytes", AICP_TMPL_MAX_OUTPUT);
    if (json_is_string(seq)) {
        struct aicp_buf b = AICP_BUF_INIT;
        for (json_int_t k = 0; k < times; k++)
            if (aicp_buf_append(&b, json_string_value(seq), unit) != 0) {
                aicp_buf_free(&b);
                return oom(c);
            }
        *out = json_stringn(b.data ? b.data : "", b.len);
        aicp_buf_free(&b);
    } else {
        *out = json_array();
        for (json_int_t k = 0; k < times && *out; k++)
            json_array_extend(*out, seq);
    }
    return *out ? 0 : oom(c);
}

/* Python's `fmt % args` for the conversions playbooks use. The printf
 * spec is built at run time from validated flag, width and precision
 * characters and a known conversion, hence the local pragma. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static int percent_format(struct ctx *c, json_t *fmtv, json_t *args, json_t **out)
{
    const char *f = json_string_value(fmtv);
    size_t flen = json_string_length(fmtv), argi = 0;
    size_t nspec = 0;
    for (size_t i = 0; i + 1 < flen; i++)
        if (f[i] == '%') {
            nspec += f[i + 1] != '%';
            i++;
        }
    /* A tuple literal is a list here; a list that doesn't match the
     * conversions is one argument, as a Python list would be. */
    int tuple = json_is_array(args) && json_array_size(args) == nspec;
    size_t nargs = tuple ? json_array_size(args) : 1;
    struct aicp_buf b = AICP_BUF_INIT;
    int rc = 0;
    for (size_t i = 0; i < flen && rc == 0; i++) {
        if (f[i] != '%') {
            rc = aicp_buf_append(&b, &f[i], 1);
            continue;
        }
        char spec[32];
        size_t k = 0;
        spec[k++] = '%';
        i++;
        while (i < flen && strchr("-+ #0123456789.", f[i]) && k < sizeof(spec) - 4)
            spec[k++] = f[i++];
        if (i >= flen) {
            rc = fail(c, AICP_EINVAL, "incomplete format");
            break;
        }
        char conv = f[i];
        if (conv == '%') {
            rc = aicp_buf_append(&b, "%", 1);
            continue;
        }
        if (argi >= nargs) {
            rc = fail(c, AICP_EINVAL, "not enough arguments for format string");
            break;
        }
        json_t *a = tuple ? json_array_get(args, argi) : args;
        argi++;
        double d;
        json_int_t iv = 0;
        int num = num_value(a, &d, &iv);
        if (conv == 's' || conv == 'r') {
            struct aicp_buf t = AICP_BUF_INIT;
            rc = conv == 's' ? aicp_tmpl_str(&t, a) : aicp_tmpl_repr(&t, a);
            spec[k++] = 's';
            spec[k] = '\0';
            if (rc == 0)
                rc = aicp_buf_printf(&b, spec, t.data ? t.data : "");
            aicp_buf_free(&t);
        } else if (strchr("dixXo", conv) && num) {
            if (num == 2)
                iv = (json_int_t)d;
            spec[k++] = 'l';
            spec[k++] = 'l';
            spec[k++] = conv == 'i' ? 'd' : conv;
            spec[k] = '\0';
            rc = aicp_buf_printf(&b, spec, (long long)iv);
        } else if (strchr("feEgG", conv) && num) {
            spec[k++] = conv;
            spec[k] = '\0';
            rc = aicp_buf_printf(&b, spec, d);
        } else {
            rc = fail(c, AICP_EINVAL, "%%%c format: a number is required, not %s", conv,
                      aicp_tmpl_type_name(a));
        }
    }
    if (rc == 0 && argi < nargs && tuple)
        rc = fail(c, AICP_EINVAL, "not all arguments converted during string formatting");
    if (rc == 0 && (*out = json_stringn(b.data ? b.data : "", b.len)) == NULL)
        rc = oom(c);
    aicp_buf_free(&b);
    return rc;
}

#pragma GCC diagnostic pop

static int binop(struct ctx *c, const char *op, json_t *l, json_t *r, json_t **out)
{
    double dl, dr;
    json_int_t il = 0, ir = 0, res;
    int nl = num_value(l, &dl, &il), nr = num_value(r, &dr, &ir);
    int both_int = nl == 1 && nr == 1;
    *out = NULL;
    if (!strcmp(op, "~")) {
        struct aicp_buf b = AICP_BUF_INIT;
        int rc = aicp_tmpl_str(&b, l);
        if (rc == 0)
            rc = aicp_tmpl_str(&b, r);
        if (rc == 0)
            *out = json_stringn(b.data ? b.data : "", b.len);
        aicp_buf_free(&b);
        return *out ? 0 : oom(c);
    }
    if (!strcmp(op, "+")) {
        if (both_int)
            *out = __builtin_add_overflow(il, ir, &res) ? NULL : json_integer(res);
        else if (nl && nr)
            *out = make_real(dl + dr);
        else if (json_is_string(l) && json_is_string(r)) {
            struct aicp_buf b = AICP_BUF_INIT;
            if (aicp_buf_append(&b, json_string_value(l), json_string_length(l)) == 0 &&
                aicp_buf_append(&b, json_string_value(r), json_string_length(r)) == 0)
                *out = json_stringn(b.data ? b.data : "", b.len);
            aicp_buf_free(&b);
        } else if (json_is_array(l) && json_is_array(r)) {
            if ((*out = json_copy(l)) != NULL)
                json_array_extend(*out, r);
        } else if (json_is_string(l) || json_is_array(l)) {
            return fail(c, AICP_EINVAL, "can only concatenate %s (not \"%s\") to %s",
                        aicp_tmpl_type_name(l), aicp_tmpl_type_name(r), aicp_tmpl_type_name(l));
        } else {
            goto unsupported;
        }
        return *out ? 0 : fail(c, AICP_EINVAL, "numeric overflow in +");
    }
    if (!strcmp(op, "*")) {
        if (both_int)
            *out = __builtin_mul_overflow(il, ir, &res) ? NULL : json_integer(res);
        else if (nl && nr)
            *out = make_real(dl * dr);
        else if ((json_is_string(l) || json_is_array(l)) && nr == 1)
            return repeat(c, l, ir, out);
        else if ((json_is_string(r) || json_is_array(r)) && nl == 1)
            return repeat(c, r, il, out);
        else
            goto unsupported;
        return *out ? 0 : fail(c, AICP_EINVAL, "numeric overflow in *");
    }
    if (!strcmp(op, "%") && json_is_string(l))
        return percent_format(c, l, r, out);
    if (!nl || !nr)
        goto unsupported;
    if (!strcmp(op, "-")) {
        if (both_int)
            *out = __builtin_sub_overflow(il, ir, &res) ? NULL : json_integer(res);
        else
            *out = make_real(dl - dr);
    } else if (!strcmp(op, "/")) {
        if (dr == 0)
            return fail(c, AICP_EINVAL, "division by zero");
        *out = make_real(dl / dr);
    } else if (!strcmp(op, "//") || !strcmp(op, "%")) {
        int is_div = op[0] == '/';
        if (dr == 0)
            return fail(c, AICP_EINVAL, both_int ? "integer division or modulo by zero"
                                                 : "float divmod()");
        if (both_int) {
            if (il == INT64_MIN && ir == -1)
                return fail(c, AICP_EINVAL, "numeric overflow in %s", op);
            json_int_t q = il / ir, m = il % ir;
            if (m != 0 && ((m < 0) != (ir < 0))) {
                q--;
                m += ir;
            }
            *out = json_integer(is_div ? q : m);
        } else {
            double q = aicp_tmpl_floor(dl / dr), m = dl - q * dr;
            *out = make_real(is_div ? q : m);
        }
    } else if (!strcmp(op, "**")) {
        if (both_int && ir >= 0) {
            json_int_t acc = 1, base = il;
            for (json_int_t e = ir; e > 0; e >>= 1) {
                if ((e & 1) && __builtin_mul_overflow(acc, base, &acc))
                    return fail(c, AICP_EINVAL, "numeric overflow in **");
                if (e > 1 && __builtin_mul_overflow(base, base, &base))
                    return fail(c, AICP_EINVAL, "numeric overflow in **");
            }
            *out = json_integer(acc);
        } else {
            if (dl == 0 && dr < 0)
                return fail(c, AICP_EINVAL, "0.0 cannot be raised to a negative power");
            double pr;
            if (aicp_tmpl_pow(&pr, dl, dr) != 0)
                return fail(c, AICP_EINVAL, "** with a non-integral exponent is not supported");
            *out = make_real(pr);
        }
    }
    return *out ? 0 : fail(c, AICP_EINVAL, "numeric overflow in %s", op);
unsupported:
    return fail(c, AICP_EINVAL, "unsupported operand type(s) for %s: '%s' and '%s'", op,
                aicp_tmpl_type_name(l), aicp_tmpl_type_name(r));
}

static int contains(struct ctx *c, json_t *needle, json_t *hay, int *out)
{
    size_t i;
    json_t *x;
    if (json_is_string(hay)) {
        if (!json_is_string(needle))
            return fail(c, AICP_EINVAL, "'in <string>' requires string as left operand, not %s",
                        aicp_tmpl_type_name(needle));
        *out = strstr(json_string_value(hay), json_string_value(needle)) != NULL;
        return 0;
    }
    if (json_is_array(hay)) {
        *out = 0;
        json_array_foreach(hay, i, x) if (aicp_tmpl_equal(needle, x)) *out = 1;
        return 0;
    }
    if (json_is_object(hay)) {
        *out = json_is_string(needle) && json_object_get(hay, json_string_value(needle));
        return 0;
    }
    return fail(c, AICP_EINVAL, "argument of type '%s' is not iterable", aicp_tmpl_type_name(hay));
}

static int compare_op(struct ctx *c, const char *op, json_t *l, json_t *r, int *out)
{
    if (!strcmp(op, "==") || !strcmp(op, "!=")) {
        *out = aicp_tmpl_equal(l, r) == (op[0] == '=');
        return 0;
    }
    if (!strcmp(op, "in") || !strcmp(op, "nin")) {
        int rc = contains(c, l, r, out);
        if (op[0] == 'n')
            *out = !*out;
        return rc;
    }
    int cmp;
    if (aicp_tmpl_compare(&cmp, l, r, 0, NULL) != 0)
        return fail(c, AICP_EINVAL, "'%s' not supported between instances of '%s' and '%s'", op,
                    aicp_tmpl_type_name(l), aicp_tmpl_type_name(r));
    *out = op[0] == '<' ? (op[1] ? cmp <= 0 : cmp < 0) : (op[1] ? cmp >= 0 : cmp > 0);
    return 0;
}

/* Evaluates call arguments into a (with storage owned by the vectors). */
struct argvec {
    json_t *vals[16];
    const char *names[16];
    json_t *pos[16];
    json_t *kw[16];
    const char *kwname[16];
    size_t n;
};

static void args_free(struct argvec *v)
{
    for (size_t i = 0; i < v->n; i++)
        json_decref(v->vals[i]);
    v->n = 0;
}

static int eval_args(struct ctx *c, struct aicp_tmpl_node *call, struct argvec *v,
                     struct aicp_tmpl_args *a)
{
    memset(a, 0, sizeof(*a));
    v->n = 0;
    if (call->n > 16)
        return fail(c, AICP_EINVAL, "too many arguments");
    for (size_t i = 0; i < call->n; i++) {
        json_t *x;
        int rc = eval(c, call->kids[i], &x);
        if (rc == 0)
            rc = need(c, x);
        if (rc != 0)
            return rc;
        v->vals[v->n] = x;
        v->names[v->n++] = call->names[i];
        if (call->names[i]) {
            v->kw[a->nkw] = x;
            v->kwname[a->nkw++] = call->names[i];
        } else {
            v->pos[a->npos++] = x;
        }
    }
    a->pos = v->pos;
    a->kw = v->kw;
    a->kwname = v->kwname;
    return 0;
}

static json_t *arg_get(const struct aicp_tmpl_args *a, size_t i, const char *kw)
{
    if (i < a->npos)
        return a->pos[i];
    for (size_t k = 0; k < a->nkw; k++)
        if (!strcmp(a->kwname[k], kw))
            return a->kw[k];
    return NULL;
}

static int eval_filter(struct ctx *c, struct aicp_tmpl_node *n, json_t **out)
{
    struct argvec v = {.n = 0};
    struct aicp_tmpl_args a;
    json_t *in = NULL;
    int rc;
    if ((rc = eval(c, n->a, &in)) != 0)
        return rc;
    if (!strcmp(n->name, "default") || !strcmp(n->name, "d")) {
        if ((rc = eval_args(c, n, &v, &a)) != 0)
            goto out;
        json_t *dflt = arg_get(&a, 0, "default_value");
        json_t *boolean = arg_get(&a, 1, "boolean");
        if (in == NULL || (boolean && aicp_tmpl_truthy(boolean) && !aicp_tmpl_truthy(in))) {
            json_decref(in);
            in = dflt ? json_incref(dflt) : json_string("");
        }
        *out = in;
        in = NULL;
        goto out;
    }
    if (!strcmp(n->name, "mandatory") && in == NULL) {
        if ((rc = eval_args(c, n, &v, &a)) != 0)
            goto out;
        json_t *msg = arg_get(&a, 0, "msg");
        if (msg && json_is_string(msg))
            rc = fail(c, AICP_EUNDEF, "%s", json_string_value(msg));
        else if (c->undef_name[0])
            rc = fail(c, AICP_EUNDEF, "Mandatory variable '%s'  not defined.", c->undef_name);
        else
            rc = fail(c, AICP_EUNDEF, "Mandatory variable  not defined.");
        goto out;
    }
    if ((rc = need(c, in)) != 0 || (rc = eval_args(c, n, &v, &a)) != 0)
        goto out;
    const json_t *ins[1 + 16] = {in};
    for (size_t i = 0; i < v.n; i++)
        ins[i + 1] = v.vals[i];
    rc = aicp_tmpl_filter_call(out, n->name, in, &a, c->err);
    if ((rc = hide_error(c, rc, "filter", n->name, ins, v.n + 1)) == 0 &&
        (rc = taint(c, *out, ins, v.n + 1)) != 0) {
        json_decref(*out);
        *out = NULL;
    }
out:
    args_free(&v);
    json_decref(in);
    return rc;
}

static int eval_test(struct ctx *c, struct aicp_tmpl_node *n, json_t **out)
{
    struct argvec v = {.n = 0};
    struct aicp_tmpl_args a;
    json_t *in = NULL;
    int rc, res = 0;
    if ((rc = eval(c, n->a, &in)) != 0)
        return rc;
    if (!strcmp(n->name, "defined") || !strcmp(n->name, "undefined")) {
        res = (in != NULL) == (n->name[0] == 'd');
    } else {
        if ((rc = need(c, in)) != 0 || (rc = eval_args(c, n, &v, &a)) != 0)
            goto out;
        if ((rc = aicp_tmpl_test_call(&res, n->name, in, &a, c->err)) != 0) {
            const json_t *ins[1 + 16] = {in};
            for (size_t i = 0; i < v.n; i++)
                ins[i + 1] = v.vals[i];
            rc = hide_error(c, rc, "test", n->name, ins, v.n + 1);
            goto out;
        }
    }
    *out = json_boolean(n->neg ? !res : res);
out:
    args_free(&v);
    json_decref(in);
    return rc;
}

static int eval_call(struct ctx *c, struct aicp_tmpl_node *n, json_t **out)
{
    struct argvec v = {.n = 0};
    struct aicp_tmpl_args a;
    json_t *obj = NULL;
    int rc;
    if (n->a->kind == AICP_TN_NAME) {
        static const char *const globals[] = {"range", "lookup", "query", "q", "dict", NULL};
        int known = 0;
        for (size_t k = 0; globals[k]; k++)
            known |= !strcmp(globals[k], n->a->name);
        if (!known)
            return fail(c, AICP_EUNDEF, "'%s' is undefined", n->a->name);
        if ((rc = eval_args(c, n, &v, &a)) != 0)
            goto out;
        rc = aicp_tmpl_global_call(out, n->a->name, &a, c->err);
    } else if (n->a->kind == AICP_TN_ATTR) {
        if ((rc = eval(c, n->a->a, &obj)) != 0 || (rc = need(c, obj)) != 0 ||
            (rc = eval_args(c, n, &v, &a)) != 0)
            goto out;
        rc = aicp_tmpl_method_call(out, obj, n->a->name, &a, c->err);
    } else {
        return fail(c, AICP_EINVAL, "object is not callable");
    }
    /* The object (NULL for a global), then the arguments. */
    const json_t *ins[1 + 16] = {obj};
    for (size_t i = 0; i < v.n; i++)
        ins[i + 1] = v.vals[i];
    if ((rc = hide_error(c, rc, obj ? "method" : "function", n->a->name, ins, v.n + 1)) == 0 &&
        (rc = taint(c, *out, ins, v.n + 1)) != 0) {
        json_decref(*out);
        *out = NULL;
    }
out:
    args_free(&v);
    json_decref(obj);
    return rc;
}

static int eval_inner(struct ctx *c, struct aicp_tmpl_node *n, json_t **out)
{
    json_t *l = NULL, *r = NULL;
    int rc = 0, b;
    *out = NULL;
    switch (n->kind) {
    case AICP_TN_LIT:
        *out = json_incref(n->lit);
        return 0;
    case AICP_TN_NAME:
        return lookup(c, n->name, out);
    case AICP_TN_ATTR:
        if ((rc = eval(c, n->a, &l)) != 0 || l == NULL)
            return rc; /* undefined stays undefined, as in Ansible */
        if (json_is_object(l)) {
            json_t *x = json_object_get(l, n->name);
            if (x != NULL)
                *out = json_incref(x);
            else
                rc = undef(c, out, n->name, "'dict object' has no attribute '%s'", n->name);
        } else {
            rc = undef(c, out, n->name, "'%s' has no attribute '%s'", obj_desc(l), n->name);
        }
        break;
    case AICP_TN_ITEM:
        if ((rc = eval(c, n->a, &l)) != 0 || l == NULL)
            return rc;
        if ((rc = eval(c, n->b, &r)) == 0 && (rc = need(c, r)) == 0)
            rc = getitem(c, l, r, out);
        if (rc == 0 && json_is_string(l))
            rc = taint(c, *out, (const json_t *[]){l}, 1);
        break;
    case AICP_TN_SLICE:
        return eval_slice(c, n, out);
    case AICP_TN_CALL:
        return eval_call(c, n, out);
    case AICP_TN_FILTER:
        return eval_filter(c, n, out);
    case AICP_TN_TEST:
        return eval_test(c, n, out);
    case AICP_TN_BIN:
        if ((rc = eval(c, n->a, &l)) == 0 && (rc = need(c, l)) == 0 &&
            (rc = eval(c, n->b, &r)) == 0 && (rc = need(c, r)) == 0 &&
            (rc = binop(c, n->op, l, r, out)) == 0)
            rc = taint(c, *out, (const json_t *[]){l, r}, 2);
        break;
    case AICP_TN_NEG:
    case AICP_TN_POS: {
        double d;
        json_int_t i;
        if ((rc = eval(c, n->a, &l)) != 0 || (rc = need(c, l)) != 0)
            break;
        int num = num_value(l, &d, &i);
        if (!num)
            rc = fail(c, AICP_EINVAL, "bad operand type for unary %s: '%s'",
                      n->kind == AICP_TN_NEG ? "-" : "+", aicp_tmpl_type_name(l));
        else if (n->kind == AICP_TN_POS)
            *out = num == 1 ? json_integer(i) : json_real(d);
        else if (num == 1 && i == INT64_MIN)
            rc = fail(c, AICP_EINVAL, "numeric overflow in unary -");
        else
            *out = num == 1 ? json_integer(-i) : json_real(-d);
        break;
    }
    case AICP_TN_NOT:
        if ((rc = eval(c, n->a, &l)) == 0 && (rc = need(c, l)) == 0)
            *out = json_boolean(!aicp_tmpl_truthy(l));
        break;
    case AICP_TN_AND:
    case AICP_TN_OR:
        if ((rc = eval(c, n->a, &l)) != 0 || (rc = need(c, l)) != 0)
            break;
        b = aicp_tmpl_truthy(l);
        if ((n->kind == AICP_TN_AND) != b) {
            *out = l;
            return 0;
        }
        if ((rc = eval(c, n->b, &r)) == 0 && (rc = need(c, r)) == 0) {
            *out = r;
            r = NULL;
        }
        break;
    case AICP_TN_COND:
        if ((rc = eval(c, n->b, &l)) != 0 || (rc = need(c, l)) != 0)
            break;
        if (aicp_tmpl_truthy(l))
            rc = eval(c, n->a, out);
        else if (n->c != NULL)
            rc = eval(c, n->c, out);
        else if ((*out = json_string("")) == NULL)
            rc = oom(c); /* what Ansible prints for a false if without else */
        break;
    case AICP_TN_LIST:
        if ((*out = json_array()) == NULL)
            return oom(c);
        for (size_t i = 0; i < n->n && rc == 0; i++) {
            if ((rc = eval(c, n->kids[i], &l)) == 0 && (rc = need(c, l)) == 0)
                rc = json_array_append_new(*out, l) ? oom(c) : 0;
            else
                json_decref(l);
            l = NULL;
        }
        break;
    case AICP_TN_DICT:
        if ((*out = json_object()) == NULL)
            return oom(c);
        for (size_t i = 0; i + 1 < n->n && rc == 0; i += 2) {
            if ((rc = eval(c, n->kids[i], &l)) != 0 || (rc = need(c, l)) != 0 ||
                (rc = eval(c, n->kids[i + 1], &r)) != 0 || (rc = need(c, r)) != 0)
                break;
            struct aicp_buf k = AICP_BUF_INIT;
            if ((rc = aicp_tmpl_str(&k, l)) == 0)
                rc = json_object_set(*out, k.data ? k.data : "", r) ? oom(c) : 0;
            aicp_buf_free(&k);
            json_decref(l);
            json_decref(r);
            l = r = NULL;
        }
        break;
    case AICP_TN_CMP:
        if ((rc = eval(c, n->a, &l)) != 0 || (rc = need(c, l)) != 0)
            break;
        b = 1;
        for (size_t i = 0; i < n->n && b && rc == 0; i++) {
            if ((rc = eval(c, n->kids[i], &r)) != 0 || (rc = need(c, r)) != 0)
                break;
            rc = compare_op(c, n->names[i], l, r, &b);
            json_decref(l);
            l = r;
            r = NULL;
        }
        if (rc == 0)
            *out = json_boolean(b);
        break;
    default:
        rc = fail(c, AICP_EINVAL, "statement used as an expression");
    }
    json_decref(l);
    json_decref(r);
    if (rc != 0) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

static int eval(struct ctx *c, struct aicp_tmpl_node *n, json_t **out)
{
    *out = NULL;
    if (++*c->nest > MAX_EVAL_NEST) {
        --*c->nest;
        return fail(c, AICP_EINVAL, "expression nested too deeply");
    }
    int rc = eval_inner(c, n, out);
    --*c->nest;
    return rc;
}

/* ------------------------------------------------------------ statements */

static int exec_body(struct ctx *c, struct aicp_tmpl_node *body, struct aicp_buf *out);

static int set_var(struct ctx *c, const char *name, json_t *v)
{
    return json_object_set(c->scopes[c->nscopes - 1], name, v) ? oom(c) : 0;
}

static int loop_item(struct ctx *c, struct aicp_tmpl_node *n, json_t *items, size_t i, json_t *prev,
                     struct aicp_buf *out)
{
    struct aicp_tmpl_node *targets = n->d;
    size_t len = json_array_size(items);
    json_t *item = json_array_get(items, i);
    int rc;
    if ((rc = scope_push(c)) != 0)
        return rc;
    json_t *loop = json_pack("{s:I,s:I,s:I,s:I,s:b,s:b,s:I,s:i,s:i}", "index", (json_int_t)i + 1,
                             "index0", (json_int_t)i, "revindex", (json_int_t)(len - i),
                             "revindex0", (json_int_t)(len - i - 1), "first", i == 0,
                             "last", i + 1 == len, "length", (json_int_t)len, "depth", 1,
                             "depth0", 0);
    if (loop == NULL) {
        rc = oom(c);
        goto out;
    }
    if (prev)
        json_object_set(loop, "previtem", prev);
    if (i + 1 < len)
        json_object_set(loop, "nextitem", json_array_get(items, i + 1));
    rc = json_object_set_new(c->scopes[c->nscopes - 1], "loop", loop) ? oom(c) : 0;
    if (rc == 0 && targets->n == 1) {
        rc = set_var(c, targets->names[0], item);
    } else if (rc == 0) {
        size_t got = json_is_array(item) ? json_array_size(item)
                     : json_is_string(item) ? aicp_tmpl_utf8_len(json_string_value(item),
                                                                 json_string_length(item)) : 0;
        if (!json_is_array(item) || got != targets->n) {
            rc = fail(c, AICP_EINVAL, got > targets->n ? "too many values to unpack (expected %zu)"
                                                       : "not enough values to unpack (expected %zu)",
                      targets->n);
            goto out;
        }
        for (size_t k = 0; k < targets->n && rc == 0; k++)
            rc = set_var(c, targets->names[k], json_array_get(item, k));
    }
    if (rc == 0)
        rc = exec_body(c, n->b, out);
out:
    scope_pop(c);
    return rc;
}

/* What a for loop walks: a list's items, a dict's keys, a string's
 * characters. */
static int iter_items(struct ctx *c, json_t *v, json_t **out)
{
    const char *k;
    json_t *x;
    if (json_is_array(v)) {
        *out = json_incref(v);
        return 0;
    }
    if ((*out = json_array()) == NULL)
        return oom(c);
    if (json_is_object(v)) {
        json_object_foreach(v, k, x) json_array_append_new(*out, json_string(k));
        return 0;
    }
    if (json_is_string(v)) {
        size_t *off, n;
        if (utf8_offsets(json_string_value(v), json_string_length(v), &off, &n) != 0)
            return oom(c);
        for (size_t i = 0; i < n; i++)
            json_array_append_new(*out, json_stringn(json_string_value(v) + off[i],
                                                     off[i + 1] - off[i]));
        free(off);
        return 0;
    }
    json_decref(*out);
    *out = NULL;
    return fail(c, AICP_EINVAL, "'%s' object is not iterable", aicp_tmpl_type_name(v));
}

static int exec_for(struct ctx *c, struct aicp_tmpl_node *n, struct aicp_buf *out)
{
    json_t *v = NULL, *items = NULL, *kept = NULL;
    int rc;
    if ((rc = eval(c, n->a, &v)) != 0 || (rc = need(c, v)) != 0 ||
        (rc = iter_items(c, v, &items)) != 0)
        goto out;
    /* A string's characters. */
    if (json_is_string(v) && (rc = taint(c, items, (const json_t *[]){v}, 1)) != 0)
        goto out;
    if (n->d->a != NULL) {
        /* `for x in xs if cond`: filter first, so loop.length counts kept. */
        if ((kept = json_array()) == NULL) {
            rc = oom(c);
            goto out;
        }
        for (size_t i = 0; i < json_array_size(items) && rc == 0; i++) {
            json_t *t = NULL, *item = json_array_get(items, i);
            if ((rc = scope_push(c)) != 0)
                break;
            if (n->d->n == 1)
                rc = set_var(c, n->d->names[0], item);
            else
                for (size_t k = 0; k < n->d->n && rc == 0; k++)
                    rc = set_var(c, n->d->names[k], json_is_array(item) ? json_array_get(item, k)
                                                                        : json_null());
            if (rc == 0 && (rc = eval(c, n->d->a, &t)) == 0 && (rc = need(c, t)) == 0 &&
                aicp_tmpl_truthy(t))
                json_array_append(kept, item);
            json_decref(t);
            scope_pop(c);
        }
        json_decref(items);
        items = kept;
        kept = NULL;
        if (rc != 0)
            goto out;
    }
    for (size_t i = 0; i < json_array_size(items) && rc == 0; i++)
        rc = loop_item(c, n, items, i, i ? json_array_get(items, i - 1) : NULL, out);
    if (rc == 0 && json_array_size(items) == 0 && n->c != NULL)
        rc = exec_body(c, n->c, out);
out:
    json_decref(v);
    json_decref(items);
    json_decref(kept);
    return rc;
}

static int exec_node(struct ctx *c, struct aicp_tmpl_node *n, struct aicp_buf *out)
{
    json_t *v = NULL;
    int rc = 0;
    c->line = n->line;
    switch (n->kind) {
    case AICP_TN_TEXT:
        return aicp_buf_append(out, json_string_value(n->lit), json_string_length(n->lit))
                   ? oom(c) : 0;
    case AICP_TN_OUT:
        /* Ansible's finalize prints none as nothing. */
        if ((rc = eval(c, n->a, &v)) == 0 && (rc = need(c, v)) == 0 && !json_is_null(v))
            rc = aicp_tmpl_str(out, v) ? oom(c) : 0;
        if (rc == 0 && out->len > AICP_TMPL_MAX_OUTPUT)
            rc = fail(c, AICP_EINVAL, "template output exceeds %u bytes", AICP_TMPL_MAX_OUTPUT);
        break;
    case AICP_TN_IF:
        for (; n != NULL && n->kind == AICP_TN_IF; n = n->c) {
            c->line = n->line;
            if ((rc = eval(c, n->a, &v)) != 0 || (rc = need(c, v)) != 0)
                break;
            int t = aicp_tmpl_truthy(v);
            json_decref(v);
            v = NULL;
            if (t)
                return exec_body(c, n->b, out);
        }
        if (rc == 0 && n != NULL)
            rc = exec_body(c, n, out);
        break;
    case AICP_TN_FOR:
        return exec_for(c, n, out);
    case AICP_TN_SET:
        if (n->a != NULL) {
            if ((rc = eval(c, n->a, &v)) == 0 && (rc = need(c, v)) == 0)
                rc = set_var(c, n->name, v);
        } else {
            struct aicp_buf b = AICP_BUF_INIT;
            if ((rc = exec_body(c, n->b, &b)) == 0)
                rc = (v = json_stringn(b.data ? b.data : "", b.len)) ? set_var(c, n->name, v)
                                                                     : oom(c);
            aicp_buf_free(&b);
        }
        break;
    default:
        rc = fail(c, AICP_EINVAL, "unexpected node");
    }
    json_decref(v);
    return rc;
}

static int exec_body(struct ctx *c, struct aicp_tmpl_node *body, struct aicp_buf *out)
{
    int rc = 0;
    if (++*c->nest > MAX_EVAL_NEST) {
        --*c->nest;
        return fail(c, AICP_EINVAL, "statements nested too deeply");
    }
    for (size_t i = 0; i < body->n && rc == 0; i++)
        rc = exec_node(c, body->kids[i], out);
    --*c->nest;
    return rc;
}

/* ------------------------------------------------------------ entry points */

static int ctx_init(struct ctx *c, const json_t *vars, int *nest, struct aicp_err *err)
{
    memset(c, 0, sizeof(*c));
    c->vars = vars;
    c->nest = nest;
    c->err = err;
    return scope_push(c);
}

static void ctx_free(struct ctx *c)
{
    while (c->nscopes > 0)
        scope_pop(c);
    free(c->scopes);
}

/* A sub-context for rendering a variable's value: same variables and
 * locals (shared, borrowed), one level deeper. */
static int ctx_child(struct ctx *child, struct ctx *parent)
{
    memset(child, 0, sizeof(*child));
    child->vars = parent->vars;
    child->nest = parent->nest;
    child->err = parent->err;
    child->lazy_depth = parent->lazy_depth + 1;
    child->scopes = malloc((parent->nscopes + 1) * sizeof(json_t *));
    if (child->scopes == NULL)
        return oom(parent);
    for (size_t i = 0; i < parent->nscopes; i++)
        child->scopes[i] = json_incref(parent->scopes[i]);
    child->nscopes = child->capscopes = parent->nscopes;
    return scope_push(child);
}

/* Renders src in context c: native value for a lone {{ expr }}, else a
 * string. text_mode: errors carry the template line. */
static int render_src(struct ctx *c, const char *src, size_t len, int text_mode,
                      json_t **out, char **text)
{
    struct aicp_tmpl_lexer lx;
    struct aicp_tmpl_parser p;
    struct aicp_tmpl_node *root = NULL;
    struct aicp_buf b = AICP_BUF_INIT;
    int line = 0, rc;
    if ((rc = aicp_tmpl_compile(&p, &lx, src, len, 0, !text_mode, c->err, &root, &line)) != 0) {
        if (text_mode)
            aicp_err_prefix(c->err, "template line %d", line);
        else if (rc == AICP_EINVAL) {
            char msg[sizeof(c->err->msg)];
            snprintf(msg, sizeof(msg), "%s", c->err ? c->err->msg : "");
            aicp_err_set(c->err, rc, "template error while templating string: %s. String: %.200s",
                         msg, src);
        }
        goto out;
    }
    if (!text_mode && out != NULL && root->n == 1 && root->kids[0]->kind == AICP_TN_OUT) {
        json_t *v;
        c->line = root->kids[0]->line;
        if ((rc = eval(c, root->kids[0]->a, &v)) == 0 && (rc = need(c, v)) == 0 &&
            c->derived && (rc = aicp_tmpl_taint_whole(v, &c->derived)) != 0)
            rc = oom(c);
        if (rc == 0)
            *out = v;
        else
            json_decref(v);
        goto out;
    }
    if ((rc = exec_body(c, root, &b)) != 0) {
        if (text_mode)
            aicp_err_prefix(c->err, "template line %d", c->line);
        goto out;
    }
    /* Ansible keeps the source's trailing newlines (trim_blocks may have
     * eaten one after a final block tag). */
    size_t want = 0, have = 0;
    while (want < len && src[len - 1 - want] == '\n')
        want++;
    while (have < b.len && b.data[b.len - 1 - have] == '\n')
        have++;
    for (; have < want && rc == 0; have++)
        rc = aicp_buf_puts(&b, "\n") ? oom(c) : 0;
    /* Pieces of a secret too short to register are in the text: the text
     * is what masking can find. */
    if (rc == 0 && c->derived && b.data != NULL &&
        aicp_tmpl_taint_text(b.data, b.len, &c->derived) != 0)
        rc = oom(c);
    if (rc != 0)
        goto out;
    if (text != NULL) {
        *text = aicp_buf_steal(&b);
        rc = *text ? 0 : oom(c);
    } else if ((*out = json_stringn(b.data ? b.data : "", b.len)) == NULL) {
        rc = fail(c, AICP_EINVAL, "template output is not valid UTF-8");
    }
out:
    rc = hide_src_error(c->err, rc, src, len);
    aicp_buf_free_secret(&b);
    aicp_tmpl_parser_free(&p);
    aicp_tmpl_lex_free(&lx);
    return rc;
}

static int render_value(struct ctx *c, json_t **out, const json_t *in)
{
    int rc = 0;
    *out = NULL;
    if (json_is_string(in)) {
        const char *s = json_string_value(in);
        if (!aicp_tmpl_is_template(s)) {
            *out = json_incref((json_t *)in);
            return 0;
        }
        if (c->lazy_depth >= MAX_LAZY_DEPTH)
            return hide_src_error(c->err,
                                  fail(c, AICP_EINVAL,
                                       "recursive loop detected in template string: %.300s", s),
                                  s, json_string_length(in));
        struct ctx child;
        if ((rc = ctx_child(&child, c)) == 0)
            rc = render_src(&child, s, json_string_length(in), 0, out, NULL);
        c->derived |= child.derived;
        ctx_free(&child);
        return rc;
    }
    if (json_is_array(in)) {
        size_t i;
        json_t *x, *r;
        if ((*out = json_array()) == NULL)
            return oom(c);
        json_array_foreach(in, i, x) {
            if ((rc = render_value(c, &r, x)) != 0)
                break;
            if (json_array_append_new(*out, r) != 0) {
                rc = oom(c);
                break;
            }
        }
    } else if (json_is_object(in)) {
        const char *k;
        json_t *x, *r, *kr;
        if ((*out = json_object()) == NULL)
            return oom(c);
        json_object_foreach((json_t *)in, k, x) {
            json_t *kin = json_string(k);
            if (kin == NULL) {
                rc = oom(c);
                break;
            }
            rc = render_value(c, &kr, kin);
            json_decref(kin);
            if (rc != 0)
                break;
            if ((rc = render_value(c, &r, x)) != 0) {
                json_decref(kr);
                break;
            }
            struct aicp_buf kb = AICP_BUF_INIT;
            if ((rc = aicp_tmpl_str(&kb, kr)) == 0 &&
                json_object_set_new(*out, kb.data ? kb.data : "", r) != 0)
                rc = oom(c);
            else if (rc != 0)
                json_decref(r);
            aicp_buf_free(&kb);
            json_decref(kr);
            if (rc != 0)
                break;
        }
    } else {
        *out = json_incref((json_t *)in);
    }
    if (rc != 0) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

int aicp_tmpl_is_template(const char *s)
{
    return s != NULL && (strstr(s, "{{") != NULL || strstr(s, "{%") != NULL);
}

int aicp_tmpl_render(json_t **out, const json_t *in, const json_t *vars, struct aicp_err *err)
{
    struct ctx c;
    int nest = 0;
    int rc = ctx_init(&c, vars, &nest, err);
    /* Depth 0 here renders `in` itself; only variables are lazy. */
    c.lazy_depth = -1;
    if (rc == 0)
        rc = render_value(&c, out, in);
    ctx_free(&c);
    return rc;
}

int aicp_tmpl_render_str(json_t **out, const char *src, const json_t *vars,
                         struct aicp_err *err)
{
    json_t *s = json_string(src);
    if (s == NULL)
        return aicp_err_set(err, AICP_EINVAL, "template is not valid UTF-8");
    int rc = aicp_tmpl_render(out, s, vars, err);
    json_decref(s);
    return rc;
}

int aicp_tmpl_render_text(char **out, const char *src, const json_t *vars,
                          struct aicp_err *err)
{
    struct ctx c;
    int nest = 0;
    *out = NULL;
    int rc = ctx_init(&c, vars, &nest, err);
    if (rc == 0)
        rc = render_src(&c, src, strlen(src), 1, NULL, out);
    ctx_free(&c);
    return rc;
}

int aicp_tmpl_eval(json_t **out, const char *expr, const json_t *vars, struct aicp_err *err)
{
    struct aicp_tmpl_lexer lx;
    struct aicp_tmpl_parser p;
    struct aicp_tmpl_node *root = NULL;
    struct ctx c;
    int nest = 0, line, rc;
    *out = NULL;
    if (aicp_tmpl_is_template(expr))
        return aicp_tmpl_render_str(out, expr, vars, err);
    if ((rc = ctx_init(&c, vars, &nest, err)) != 0)
        return rc;
    if ((rc = aicp_tmpl_compile(&p, &lx, expr, strlen(expr), 1, 0, err, &root, &line)) != 0) {
        if (rc == AICP_EINVAL) {
            char msg[sizeof(err->msg)];
            snprintf(msg, sizeof(msg), "%s", err ? err->msg : "");
            aicp_err_set(err, rc, "template error while templating string: %s. String: %.200s",
                         msg, expr);
        }
    } else if ((rc = eval(&c, root->a, out)) != 0 || (rc = need(&c, *out)) != 0 ||
               (c.derived && aicp_tmpl_taint_whole(*out, &c.derived) != 0 &&
                (rc = oom(&c)) != 0)) {
        json_decref(*out);
        *out = NULL;
    }
    rc = hide_src_error(err, rc, expr, strlen(expr));
    aicp_tmpl_parser_free(&p);
    aicp_tmpl_lex_free(&lx);
    ctx_free(&c);
    return rc;
}

int aicp_tmpl_eval_bool(int *out, const char *expr, const json_t *vars, struct aicp_err *err)
{
    json_t *v = NULL;
    *out = 0;
    int rc = aicp_tmpl_eval(&v, expr, vars, err);
    if (rc == 0)
        *out = aicp_tmpl_truthy(v);
    json_decref(v);
    return rc;
}

int aicp_tmpl_to_string(char **out, const json_t *v)
{
    struct aicp_buf b = AICP_BUF_INIT;
    int rc = aicp_tmpl_str(&b, v);
    *out = rc == 0 ? aicp_buf_steal(&b) : NULL;
    aicp_buf_free(&b);
    return rc != 0 ? rc : *out ? 0 : AICP_ENOMEM;
}
