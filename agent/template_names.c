/* Static analysis of templates for validation before a run: which variables
 * does a template read without a guard? The executor uses the answer to
 * refuse a playbook that uses a variable defined nowhere before anything has
 * run, so this errs on the side of silence: a name is left out whenever some
 * construct might keep it from being evaluated undefined (`is defined`
 * anywhere in the same and/or chain, conditional or {% if %}, the input of
 * `default`, loop and set bindings, Jinja and Ansible globals). It walks the
 * tree that template_lex.c builds and evaluates nothing. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "err.h"
#include "template.h"
#include "util.h"

/* Deepest tree walked; the parser bounds brackets, but a long operator chain
 * builds a deep tree of its own (the evaluator bounds it alike). */
#define MAX_NAMES_NEST 1000

struct names {
    json_t *acc;   /* the caller's result object */
    json_t *bound; /* {% set %} and {% for %} names: name -> true */
    json_t *guard; /* names guarded by an `is defined` nearby: name -> count */
    int depth;
    struct aicp_err *err;
};

/* Names that are never variables: Jinja's and Ansible's globals, and the
 * loop object (always bound where it is meaningful). */
static int is_global(const char *name)
{
    static const char *const globals[] = {"range",  "lookup", "query",  "q",      "dict",
                                          "lipsum", "now",    "cycler", "joiner", "namespace",
                                          "undef",  "loop",   NULL};
    for (size_t i = 0; globals[i]; i++)
        if (!strcmp(name, globals[i]))
            return 1;
    return 0;
}

/* Tests whose operand may be undefined without an error. */
static int is_guard_test(const struct aicp_tmpl_node *n)
{
    return n->kind == AICP_TN_TEST && n->name != NULL &&
           (!strcmp(n->name, "defined") || !strcmp(n->name, "undefined") ||
            !strcmp(n->name, "none"));
}

/* Filters whose input may be undefined without an error. */
static int is_guard_filter(const struct aicp_tmpl_node *n)
{
    return n->kind == AICP_TN_FILTER && n->name != NULL &&
           (!strcmp(n->name, "default") || !strcmp(n->name, "d") || !strcmp(n->name, "mandatory"));
}

static int nest_fail(struct names *st)
{
    return aicp_err_set(st->err, AICP_EINVAL, "template expression nested too deeply");
}

/* Calls fn on every node of the subtree n (children before nothing: order
 * does not matter to the callers). */
static int visit(struct names *st, const struct aicp_tmpl_node *n,
                 int (*fn)(struct names *, const struct aicp_tmpl_node *, void *), void *arg)
{
    int rc = 0;
    if (n == NULL)
        return 0;
    if (++st->depth > MAX_NAMES_NEST) {
        rc = nest_fail(st);
        goto out;
    }
    if ((rc = fn(st, n, arg)) != 0)
        goto out;
    const struct aicp_tmpl_node *sub[4] = {n->a, n->b, n->c, n->d};
    for (size_t i = 0; i < 4 && rc == 0; i++)
        rc = visit(st, sub[i], fn, arg);
    for (size_t i = 0; i < n->n && rc == 0; i++)
        rc = visit(st, n->kids[i], fn, arg);
out:
    st->depth--;
    return rc;
}

/* Adds every variable name in a subtree to the object arg. */
static int add_name(struct names *st, const struct aicp_tmpl_node *n, void *arg)
{
    if (n->kind == AICP_TN_NAME && json_object_set_new(arg, n->name, json_true()) != 0)
        return aicp_err_set(st->err, AICP_ENOMEM, "out of memory");
    return 0;
}

/* For each `X is defined` (undefined, none) test in a subtree, adds the
 * names inside X to the object arg. */
static int add_guarded(struct names *st, const struct aicp_tmpl_node *n, void *arg)
{
    if (is_guard_test(n))
        return visit(st, n->a, add_name, arg);
    return 0;
}

/* Sets *found when a subtree holds an `is defined` (undefined, none) test. */
static int find_guard(struct names *st, const struct aicp_tmpl_node *n, void *arg)
{
    (void)st;
    if (is_guard_test(n))
        *(int *)arg = 1;
    return 0;
}

/* Adds (delta 1) or removes (delta -1) the names of g to the guard set. */
static int guard_adjust(struct names *st, json_t *g, int delta)
{
    const char *k;
    json_t *v;
    json_object_foreach(g, k, v)
    {
        json_int_t c = json_integer_value(json_object_get(st->guard, k)) + delta;
        int rc = c > 0 ? json_object_set_new(st->guard, k, json_integer(c))
                       : json_object_del(st->guard, k);
        if (rc != 0 && delta > 0)
            return aicp_err_set(st->err, AICP_ENOMEM, "out of memory");
    }
    return 0;
}

static int walk(struct names *st, const struct aicp_tmpl_node *n, int guarded);

static int walk_kids(struct names *st, const struct aicp_tmpl_node *n, int guarded)
{
    int rc = 0;
    for (size_t i = 0; i < n->n && rc == 0; i++)
        rc = walk(st, n->kids[i], guarded);
    return rc;
}

/* Walks the subtrees in sub[] with the names that `is defined` tests in
 * `from` guard (an and/or chain, a conditional's test, an {% if %}). */
static int walk_guarded_by(struct names *st, const struct aicp_tmpl_node *from,
                           const struct aicp_tmpl_node *const *sub, size_t nsub, int guarded)
{
    json_t *g = json_object();
    int rc;
    if (g == NULL)
        return aicp_err_set(st->err, AICP_ENOMEM, "out of memory");
    if ((rc = visit(st, from, add_guarded, g)) == 0 && (rc = guard_adjust(st, g, 1)) == 0) {
        for (size_t i = 0; i < nsub && rc == 0; i++)
            rc = walk(st, sub[i], guarded);
        guard_adjust(st, g, -1);
    }
    json_decref(g);
    return rc;
}

static int walk_for(struct names *st, const struct aicp_tmpl_node *n, int guarded)
{
    int rc;
    json_t *added = json_array();
    if (added == NULL)
        return aicp_err_set(st->err, AICP_ENOMEM, "out of memory");
    if ((rc = walk(st, n->a, guarded)) != 0)
        goto out;
    /* The targets are bound in the body only; names set inside it stay
     * bound afterwards, which can only hide an error, never invent one. */
    for (size_t i = 0; i < n->d->n; i++) {
        const char *t = n->d->names[i];
        if (json_object_get(st->bound, t) != NULL)
            continue;
        if (json_object_set_new(st->bound, t, json_true()) != 0 ||
            json_array_append_new(added, json_string(t)) != 0) {
            rc = aicp_err_set(st->err, AICP_ENOMEM, "out of memory");
            goto out;
        }
    }
    const struct aicp_tmpl_node *body[2] = {n->d->a, n->b};
    if ((rc = walk_guarded_by(st, n->d->a, body, 2, guarded)) != 0)
        goto out;
    size_t i;
    json_t *t;
    json_array_foreach(added, i, t) json_object_del(st->bound, json_string_value(t));
    json_array_clear(added);
    rc = walk(st, n->c, guarded);
out:
    json_decref(added);
    return rc;
}

static int walk_inner(struct names *st, const struct aicp_tmpl_node *n, int guarded)
{
    switch (n->kind) {
    case AICP_TN_TEXT:
    case AICP_TN_LIT:
        return 0;
    case AICP_TN_NAME:
        if (guarded || is_global(n->name) || json_object_get(st->bound, n->name) != NULL ||
            json_object_get(st->guard, n->name) != NULL)
            return 0;
        if (json_object_set_new(st->acc, n->name, json_true()) != 0)
            return aicp_err_set(st->err, AICP_ENOMEM, "out of memory");
        return 0;
    case AICP_TN_BODY:
        return walk_kids(st, n, guarded);
    case AICP_TN_IF: {
        const struct aicp_tmpl_node *sub[3] = {n->a, n->b, n->c};
        return walk_guarded_by(st, n->a, sub, 3, guarded);
    }
    case AICP_TN_FOR:
        return walk_for(st, n, guarded);
    case AICP_TN_SET: {
        int rc = walk(st, n->a ? n->a : n->b, guarded);
        if (rc == 0 && json_object_set_new(st->bound, n->name, json_true()) != 0)
            rc = aicp_err_set(st->err, AICP_ENOMEM, "out of memory");
        return rc;
    }
    case AICP_TN_TEST:
    case AICP_TN_FILTER: {
        int rc = walk(st, n->a, guarded || is_guard_test(n) || is_guard_filter(n));
        return rc != 0 ? rc : walk_kids(st, n, guarded);
    }
    case AICP_TN_AND:
    case AICP_TN_OR: {
        /* `x is defined and x > 1`: any such test in the whole chain guards
         * its names in every operand. */
        const struct aicp_tmpl_node *sub[2] = {n->a, n->b};
        return walk_guarded_by(st, n, sub, 2, guarded);
    }
    case AICP_TN_COND: {
        /* `a if x is defined else b`: which branch runs depends on what is
         * defined, so nothing in the conditional is reported. */
        int found = 0;
        int rc = visit(st, n->b, find_guard, &found);
        const struct aicp_tmpl_node *sub[3] = {n->a, n->b, n->c};
        return rc != 0 ? rc : walk_guarded_by(st, n->b, sub, 3, guarded || found);
    }
    default: {
        int rc = 0;
        const struct aicp_tmpl_node *sub[4] = {n->a, n->b, n->c, n->d};
        for (size_t i = 0; i < 4 && rc == 0; i++)
            rc = walk(st, sub[i], guarded);
        return rc != 0 ? rc : walk_kids(st, n, guarded);
    }
    }
}

static int walk(struct names *st, const struct aicp_tmpl_node *n, int guarded)
{
    int rc = 0;
    if (n == NULL)
        return 0;
    if (++st->depth > MAX_NAMES_NEST)
        rc = nest_fail(st);
    else
        rc = walk_inner(st, n, guarded);
    st->depth--;
    return rc;
}

int aicp_tmpl_names(json_t *acc, const char *src, int bare_expr, struct aicp_err *err)
{
    struct aicp_tmpl_lexer lx;
    struct aicp_tmpl_parser p;
    struct aicp_tmpl_node *root = NULL;
    struct names st = {.acc = acc, .err = err};
    int line, rc;
    int is_tmpl = aicp_tmpl_is_template(src);
    /* As aicp_tmpl_eval and aicp_tmpl_render_str read the same string. */
    int expr_only = bare_expr && !is_tmpl;
    if (!expr_only && !is_tmpl)
        return 0;
    rc = aicp_tmpl_compile(&p, &lx, src, strlen(src), expr_only, !expr_only, err, &root, &line);
    if (rc != 0) {
        if (rc == AICP_EINVAL) {
            char msg[sizeof(err->msg)];
            snprintf(msg, sizeof(msg), "%s", err ? err->msg : "");
            aicp_err_set(err, rc, "template error while templating string: %s. String: %.200s", msg,
                         src);
        }
        goto out;
    }
    if ((st.bound = json_object()) == NULL || (st.guard = json_object()) == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    rc = walk(&st, expr_only ? root->a : root, 0);
out:
    json_decref(st.bound);
    json_decref(st.guard);
    aicp_tmpl_parser_free(&p);
    aicp_tmpl_lex_free(&lx);
    return rc;
}
