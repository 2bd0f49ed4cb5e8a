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

/* Static analysis for validation before a run: adds to the object acc (as
 * keys, value true) the root names of the variables src reads without a
 * guard: not under `is defined`/`is undefined`/`is none`, not as the input
 * of `default`/`d`/`mandatory`, not bound by {% for %}/{% set %}/loop, and
 * not a global (range, lookup, query, q, dict, true, none...). bare_expr: src
 * is an expression without braces (when:, that:). Syntax errors:
 * AICP_EINVAL. */
int aicp_tmpl_names(json_t *acc, const char *src, int bare_expr, struct aicp_err *err);

/* 1 when s contains `{{` or `{%` (i.e. needs rendering). */
int aicp_tmpl_is_template(const char *s);

/* Renders a value as Jinja2 prints it (True, None, ['a', 1]). *out malloc'ed. */
int aicp_tmpl_to_string(char **out, const json_t *v);

/* Jinja (Python) truthiness: false, none, 0, 0.0, "", [] and {} are false;
 * everything else is true. */
int aicp_tmpl_truthy(const json_t *v);

struct aicp_secrets;

/* Makes every render and evaluation register, in s, the values it derives
 * from values s already holds (`pw[0:12]`, `pw | b64encode`), so that
 * masking by value catches them too; and keeps errors about secret
 * templates or filter inputs from quoting pieces of them. Process-wide (the
 * renderers take no run context): set once a run's secrets exist, set back
 * to NULL before they are freed. s is borrowed; NULL turns it off. */
void aicp_tmpl_set_secrets(struct aicp_secrets *s);

/* ---- internal: shared by the template*.c files only ----------------------
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
/* Tokens and the parse tree (template_lex.c builds them; template.c
 * evaluates them; template_names.c walks them). */
enum aicp_tmpl_tok_type {
    AICP_TOK_EOF, AICP_TOK_DATA, AICP_TOK_VBEGIN, AICP_TOK_VEND, AICP_TOK_BBEGIN,
    AICP_TOK_BEND, AICP_TOK_NAME, AICP_TOK_INT, AICP_TOK_FLOAT, AICP_TOK_STR, AICP_TOK_OP
};

struct aicp_tmpl_tok {
    enum aicp_tmpl_tok_type type;
    int line;
    char *s; /* DATA, NAME, STR, OP text (owned, NUL-terminated) */
    size_t len;
    json_int_t i;
    double f;
};

struct aicp_tmpl_lexer {
    const char *src;
    size_t n, pos;
    int line;
    int lstrip_next;
    /* Ansible doubles backslashes in {{ }} string literals of task
     * arguments before Jinja sees them: there they are literal. */
    int literal_backslashes;
    struct aicp_tmpl_tok *toks;
    size_t ntok, cap;
    struct aicp_err *err;
    int errline;
};

enum aicp_tmpl_node_kind {
    AICP_TN_BODY, AICP_TN_TEXT, AICP_TN_OUT, AICP_TN_IF, AICP_TN_FOR, AICP_TN_SET,
    AICP_TN_LIT, AICP_TN_NAME, AICP_TN_ATTR, AICP_TN_ITEM, AICP_TN_SLICE, AICP_TN_CALL,
    AICP_TN_FILTER, AICP_TN_TEST, AICP_TN_BIN, AICP_TN_NEG, AICP_TN_POS, AICP_TN_NOT,
    AICP_TN_AND, AICP_TN_OR, AICP_TN_COND, AICP_TN_LIST, AICP_TN_DICT, AICP_TN_CMP
};

/* Children by kind: OUT a; IF a (test) b (body) c (elif IF or else BODY);
 * FOR a (iterable) b (body) c (else) d (BODY whose names are the targets
 * and whose a is the `if` filter); SET a (value) or b (captured body);
 * ATTR/FILTER/TEST/CALL a (object or callee) kids (arguments); ITEM a[b];
 * SLICE a[b:c:d]; BIN/AND/OR a op b; NEG/POS/NOT a; COND a if b else c;
 * CMP a then kids with names[] the operators; LIST kids; DICT kids k,v. */
struct aicp_tmpl_node {
    enum aicp_tmpl_node_kind kind;
    int line;
    int neg;        /* AICP_TN_TEST: `is not` */
    char *name;     /* NAME, ATTR, FILTER, TEST, SET target */
    char op[4];     /* BIN operator */
    json_t *lit;    /* LIT, TEXT */
    struct aicp_tmpl_node *a, *b, *c, *d;
    struct aicp_tmpl_node **kids; /* BODY items, call/filter args, LIST items, DICT k,v */
    char **names;   /* kwarg names parallel to kids (NULL: positional); FOR targets */
    size_t n, cap, nnames;
};

struct aicp_tmpl_parser {
    struct aicp_tmpl_tok *t;
    size_t n, i;
    int nest;
    struct aicp_tmpl_node **all; /* every node, freed in one sweep */
    size_t nall, capall;
    struct aicp_err *err;
    int errline;
};

/* Lexes and parses a whole template (or, with expr_only, one bare
 * expression) into p; lx and p keep the tokens and nodes until
 * aicp_tmpl_parser_free and aicp_tmpl_lex_free (call both, also on
 * failure). *root is a BODY (expr_only: its a is the expression); *line
 * gets the line of a failure. */
int aicp_tmpl_compile(struct aicp_tmpl_parser *p, struct aicp_tmpl_lexer *lx, const char *src,
                      size_t len, int expr_only, int literal_backslashes, struct aicp_err *err,
                      struct aicp_tmpl_node **root, int *line);
void aicp_tmpl_parser_free(struct aicp_tmpl_parser *p);
void aicp_tmpl_lex_free(struct aicp_tmpl_lexer *lx);

/* Helpers shared by the filters, tests and methods (template_value.c). */
/* Argument i, or the keyword argument kw (NULL: positional only); NULL
 * when not given. Borrowed. */
json_t *aicp_tmpl_arg(const struct aicp_tmpl_args *a, size_t i, const char *kw);
/* Truthiness of an argument, dflt when not given. */
int aicp_tmpl_arg_bool(const struct aicp_tmpl_args *a, size_t i, const char *kw, int dflt);
/* A JSON string of b's bytes; NULL when not UTF-8 or out of memory. */
json_t *aicp_tmpl_str_new(const struct aicp_buf *b);
/* str() of a value into a fresh buffer (never NULL data on success). */
int aicp_tmpl_to_buf(struct aicp_buf *b, const json_t *v, struct aicp_err *err);
/* *out = v; fails (with a message) when v is NULL. */
int aicp_tmpl_set_out(json_t **out, json_t *v, struct aicp_err *err);
/* Fails naming `what` unless v is a string. */
int aicp_tmpl_need_str(const json_t *v, const char *what, struct aicp_err *err);
/* Python's str.isspace for one byte. */
int aicp_tmpl_isspace(int ch);
/* Decodes one UTF-8 code point; *used gets its length in bytes. */
unsigned long aicp_tmpl_utf8_decode(const char *s, size_t len, size_t *used);
/* 1 when v is a number or a bool (a Python int), with its value in *d. */
int aicp_tmpl_is_num(const json_t *v, double *d);
/* memcmp-style comparison, case-insensitive (ASCII) when fold. */
int aicp_tmpl_fold_cmp(const char *a, size_t la, const char *b, size_t lb, int fold);
/* json.dumps (indent <0: compact) and yaml.dump of a value as a string. */
int aicp_tmpl_to_json(json_t **out, json_t *in, int indent, int sort, struct aicp_err *err);
int aicp_tmpl_to_yaml(json_t **out, json_t *in, int indent, int flow_leaves,
                      struct aicp_err *err);

/* Python string operations shared by methods and filters (template_tests.c). */
int aicp_tmpl_py_split(json_t **out, const char *s, size_t len, const json_t *sepv,
                       json_int_t max, struct aicp_err *err);
int aicp_tmpl_py_strip(json_t **out, const json_t *v, const json_t *chars, int left, int right,
                       struct aicp_err *err);
int aicp_tmpl_py_replace(json_t **out, const json_t *v, const json_t *oldv, const json_t *newv,
                         const json_t *countv, struct aicp_err *err);
int aicp_tmpl_py_splitlines(json_t **out, const char *s, size_t len, struct aicp_err *err);

/* Shared by the regex filters and the search/match tests, and by the case
 * filters and the lower/upper tests (template_filters.c). */
int aicp_tmpl_regex_find(json_t **out, int *found, json_t *in, const char *pat, int icase,
                         int ml, int anchored, const struct aicp_tmpl_args *groups,
                         size_t gfirst, struct aicp_err *err);
int aicp_tmpl_case_map(json_t **out, json_t *in, int mode, struct aicp_err *err);

/* Secret taint (template_taint.c). The secrets set by aicp_tmpl_set_secrets,
 * or NULL when none are set or none registered yet. */
struct aicp_secrets *aicp_tmpl_secrets(void);
/* 1 when a string inside v (object keys too) holds a registered secret. */
int aicp_tmpl_holds_secret(const json_t *v);
/* 1 when msg holds a piece (4 bytes or more) of a string of ins that holds
 * a secret: an error about the operation must not say it. */
int aicp_tmpl_quotes_secret(const char *msg, const json_t *const *ins, size_t nins);
/* An operation made res from ins[0..nins) (NULL entries skipped): when one
 * of ins holds a secret, registers the strings of res it derived (not those
 * carried over from ins, not numbers, booleans or type names). Sets
 * *short_piece when a derived string was too short to register; leaves it
 * alone otherwise. 0 or AICP_ENOMEM. */
int aicp_tmpl_taint(const json_t *res, const json_t *const *ins, size_t nins, int *short_piece);
/* Registers the strings of a whole output that holds derived pieces too
 * short to register. *short_piece: whether some string of v still was. */
int aicp_tmpl_taint_whole(const json_t *v, int *short_piece);
int aicp_tmpl_taint_text(const char *text, size_t len, int *short_piece);

/* Largest output a filter or operator may build (range, "x" * n). */
#define AICP_TMPL_MAX_OUTPUT (10u * 1024u * 1024u)

#endif
