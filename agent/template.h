/* Jinja2 templating, the subset Ansible users write.
 *
 * Expressions: variables, attribute and index access (a.b, a['b'], a[0]),
 * literals (strings, numbers, true/false/none and True/False/None, lists,
 * dicts), arithmetic (+ - * / // % and ~ for concatenation), comparisons,
 * and/or/not, in/not in, `is [not] defined/undefined/none/string/number/
 * mapping/iterable/sameas/true/false/changed/failed/success/succeeded/
 * skipped/search/match/contains`, inline if/else, filters, and method calls
 * on strings and dicts that Ansible playbooks use (.split, .strip,
 * .startswith, .endswith, .get, .keys, .values, .items, .lower, .upper,
 * .replace, .index).
 * Filters: default(d), bool, int, float, string, lower, upper, replace, join,
 * length/count, basename, dirname, to_json, to_nice_json, to_yaml,
 * regex_replace, regex_search, trim, first, last, list, unique, sort,
 * dict2items, items2dict, ternary, quote, b64encode, b64decode, mandatory,
 * combine, map(attribute=)/map(filter), select/reject, selectattr,
 * type_debug, hash, abs, min, max, sum, range, indent, splitlines, split.
 * Statements (text templates): {% if/elif/else/endif %}, {% for x in xs %}
 * (with loop.index, loop.first, loop.last, else), {% set %}, {# comments #},
 * whitespace control with -, and Jinja's trim_blocks as Ansible sets it.
 *
 * Variables are looked up lazily: a variable whose value is a string holding
 * `{{` is itself rendered when used (depth-limited), as Ansible does.
 * Rendering matches Jinja2: true renders "True", none renders "None", lists
 * and dicts render in Python repr form (['a', 1], {'k': 'v'}).
 */
#ifndef AICP_TEMPLATE_H
#define AICP_TEMPLATE_H

#include <jansson.h>

struct aicp_err;

/* Renders a string value the way Ansible renders a task argument: a string
 * that is exactly one `{{ expr }}` yields the expression's native value
 * (a list stays a list); anything else yields a string. Strings without
 * template markers come back unchanged (a new reference to an equal string).
 * vars is a JSON object of all variables visible. *out is a new reference.
 * Undefined variables: AICP_EUNDEF with "'name' is undefined". Syntax
 * errors: AICP_EINVAL naming the offending text. */
int aicp_tmpl_render_str(json_t **out, const char *src, const json_t *vars,
                         struct aicp_err *err);

/* Renders every string inside a JSON value (dicts' values and lists'
 * items, recursively; keys are rendered too). *out is a new reference. */
int aicp_tmpl_render(json_t **out, const json_t *in, const json_t *vars,
                     struct aicp_err *err);

/* Renders a whole text template (the template module's files): statements,
 * expressions, comments. *out is malloc'ed and owned by the caller. */
int aicp_tmpl_render_text(char **out, const char *src, const json_t *vars,
                          struct aicp_err *err);

/* Evaluates a bare expression (no braces), as `when:`, `changed_when:`,
 * `failed_when:` and `that:` are written. A JSON boolean is used as is.
 * *out is a new reference. */
int aicp_tmpl_eval(json_t **out, const char *expr, const json_t *vars,
                   struct aicp_err *err);

/* aicp_tmpl_eval then Jinja truthiness (empty string/list/dict, 0, none and
 * false are false). */
int aicp_tmpl_eval_bool(int *out, const char *expr, const json_t *vars,
                        struct aicp_err *err);

/* 1 when s contains `{{` or `{%` (i.e. needs rendering). */
int aicp_tmpl_is_template(const char *s);

/* Renders a value as Jinja2 prints it (True, None, ['a', 1]). *out malloc'ed. */
int aicp_tmpl_to_string(char **out, const json_t *v);

/* Jinja (Python) truthiness: false, none, 0, 0.0, "", [] and {} are false;
 * everything else is true. */
int aicp_tmpl_truthy(const json_t *v);

/* ---- internal: shared by template.c and template_filters.c only ---------
 * Nothing outside the templating code should call these. */

struct aicp_buf;

/* The arguments of a filter, test, method or global call: positional ones
 * first, then keyword ones (kwname[i] names kw[i]). All borrowed. */
struct aicp_tmpl_args {
    json_t **pos;
    size_t npos;
    const char **kwname;
    json_t **kw;
    size_t nkw;
};

/* Applies filter `name` to `in`. *out is a new reference. AICP_ENOTFOUND
 * (with a message) when there is no such filter. */
int aicp_tmpl_filter_call(json_t **out, const char *name, json_t *in,
                          const struct aicp_tmpl_args *a, struct aicp_err *err);
/* Applies test `name` (defined/undefined are the evaluator's). */
int aicp_tmpl_test_call(int *out, const char *name, json_t *in,
                        const struct aicp_tmpl_args *a, struct aicp_err *err);
/* Global functions: range, lookup, query/q, dict. */
int aicp_tmpl_global_call(json_t **out, const char *name,
                          const struct aicp_tmpl_args *a, struct aicp_err *err);
/* Python methods on values: str.split/strip/startswith/..., dict.get/
 * keys/values/items, list.index/count. */
int aicp_tmpl_method_call(json_t **out, json_t *obj, const char *name,
                          const struct aicp_tmpl_args *a, struct aicp_err *err);
/* Python repr() of a value, appended to b. */
int aicp_tmpl_repr(struct aicp_buf *b, const json_t *v);
/* Python str() of a value, appended to b. */
int aicp_tmpl_str(struct aicp_buf *b, const json_t *v);
/* Python ==. */
int aicp_tmpl_equal(const json_t *a, const json_t *b);
/* Python ordering: *out <0, 0, >0; AICP_EINVAL when the types don't order.
 * fold: compare strings case-insensitively (Jinja's sort default). */
int aicp_tmpl_compare(int *out, const json_t *a, const json_t *b, int fold,
                      struct aicp_err *err);
/* Python type name of a value (str, int, float, bool, list, dict, NoneType). */
const char *aicp_tmpl_type_name(const json_t *v);
/* Number of code points of a UTF-8 string. */
size_t aicp_tmpl_utf8_len(const char *s, size_t len);
/* floor() and x**n for integral n, without libm (the build links none). */
double aicp_tmpl_floor(double x);
/* Sets *out to base**exp; AICP_EINVAL when exp is not integral. */
int aicp_tmpl_pow(double *out, double base, double exp);
/* Largest output a filter or operator may build (range, "x" * n). */
#define AICP_TMPL_MAX_OUTPUT (10u * 1024u * 1024u)

#endif
