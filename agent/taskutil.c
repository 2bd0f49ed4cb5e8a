/* The executor's pure helpers for one task: keyword booleans, omit,
 * conditions, the --diff text of a before/after pair, the item lists of the
 * loop keywords (with_items, with_dict, with_together, with_nested), and the
 * result keys that Ansible's modules and callbacks give. */
#include "config.h"

#include <stdio.h>

#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "err.h"
#include "fileutil.h"
#include "module.h"
#include "taskutil.h"
#include "template.h"
#include "util.h"

int aicp_task_bool(const json_t *v)
{
    if (v == NULL || json_is_null(v) || json_is_false(v))
        return 0;
    if (json_is_string(v)) {
        int b = aicp_parse_bool(json_string_value(v));
        return b < 0 ? json_string_length(v) > 0 : b;
    }
    if (json_is_integer(v))
        return json_integer_value(v) != 0;
    if (json_is_real(v))
        return json_real_value(v) != 0.0;
    if (json_is_array(v))
        return json_array_size(v) > 0;
    if (json_is_object(v))
        return json_object_size(v) > 0;
    return 1;
}

void aicp_task_strip_omitted(json_t *v)
{
    if (json_is_object(v)) {
        const char *k;
        json_t *val;
        void *tmp;
        json_object_foreach_safe(v, tmp, k, val) {
            if (json_is_string(val) && strcmp(json_string_value(val), AICP_OMIT_TOKEN) == 0)
                json_object_del(v, k);
            else
                aicp_task_strip_omitted(val);
        }
    } else if (json_is_array(v)) {
        for (size_t i = json_array_size(v); i-- > 0;) {
            json_t *x = json_array_get(v, i);
            if (json_is_string(x) && strcmp(json_string_value(x), AICP_OMIT_TOKEN) == 0)
                json_array_remove(v, i);
            else
                aicp_task_strip_omitted(x);
        }
    }
}

/* Evaluates a list of conditions (all must hold). */
int aicp_task_conditions(int *out, const json_t *conds, const json_t *vars, struct aicp_err *err)
{
    *out = 1;
    if (conds == NULL)
        return 0;
    if (!json_is_array(conds)) {
        if (json_is_boolean(conds)) {
            *out = json_is_true(conds);
            return 0;
        }
        if (!json_is_string(conds))
            return aicp_err_set(err, AICP_EINVAL, "a condition must be a string or a boolean");
        return aicp_tmpl_eval_bool(out, json_string_value(conds), vars, err);
    }
    size_t i;
    json_t *c;
    json_array_foreach(conds, i, c) {
        int b = 1, rc = aicp_task_conditions(&b, c, vars, err);
        if (rc != 0)
            return rc;
        if (!b) {
            *out = 0;
            return 0;
        }
    }
    return 0;
}

/* ---- running one module call ------------------------------------------- */

/* A before/after pair as Ansible's --diff shows it: a unified diff of
 * their JSON renderings. */
char *aicp_task_diff_text(const json_t *before, const json_t *after)
{
    if (before == NULL && after == NULL)
        return NULL;
    char *a = before ? json_dumps(before, JSON_INDENT(4) | JSON_SORT_KEYS) : aicp_strdup("");
    char *b = after ? json_dumps(after, JSON_INDENT(4) | JSON_SORT_KEYS) : aicp_strdup("");
    char *out = NULL;
    if (a && b && strcmp(a, b) != 0) {
        struct aicp_buf ta = AICP_BUF_INIT, tb = AICP_BUF_INIT;
        aicp_buf_printf(&ta, "%s\n", a);
        aicp_buf_printf(&tb, "%s\n", b);
        if (ta.data && tb.data && aicp_fu_unified_diff(&out, ta.data, tb.data, "before", "after") != 0)
            out = NULL;
        aicp_buf_free(&ta);
        aicp_buf_free(&tb);
    }
    free(a);
    free(b);
    return out;
}

#define SECRET_DIFF "(diff hidden: the change involves a secret value)\n"

char *aicp_task_change_diff(const struct aicp_change *change, int secret)
{
    if (secret)
        return change->needed ? aicp_strdup(SECRET_DIFF) : NULL;
    if (change->diff_text)
        return aicp_strdup(change->diff_text);
    return aicp_task_diff_text(change->before, change->after);
}

void aicp_task_update_from(json_t *dst, const json_t *src)
{
    if (json_is_object(src))
        json_object_update(dst, (json_t *)src);
}

int aicp_task_apply(const struct aicp_module *mod, struct aicp_ctx *ctx,
                    struct aicp_change *change, json_t *result, int *wrote, struct aicp_err *err)
{
    *wrote = 0;
    if (mod->ops->apply == NULL)
        return aicp_err_set(err, AICP_EFAILED, "module '%s' cannot make changes", mod->name);
    int rc = mod->ops->apply(ctx, change, err);
    aicp_task_update_from(result, json_object_get(change->plan, "result"));
    if (rc != 0 && json_is_true(json_object_get(change->plan, "wrote")))
        *wrote = 1;
    return rc;
}

int aicp_task_verify(const struct aicp_module *mod, struct aicp_ctx *ctx,
                     const struct aicp_args *args, const struct aicp_change *change,
                     struct aicp_err *err)
{
    if ((mod->flags & AICP_MOD_NO_VERIFY) ||
        json_is_true(json_object_get(change->plan, "no_verify")))
        return 0;
    /* The state just made must now read as converged. The re-check also
     * refreshes the result's keys (stat, mode...). */
    json_t *current = NULL;
    struct aicp_change *again = NULL;
    int rc = mod->ops->check(ctx, args, &current, err);
    if (rc == 0)
        rc = mod->ops->diff(current, args, &again, err);
    if (rc == 0 && again->needed)
        rc = aicp_err_set(err, AICP_EFAILED,
                          "not idempotent: module '%s' still reports a difference after applying "
                          "its change",
                          mod->name);
    aicp_change_free(again);
    json_decref(current);
    return rc;
}

/* with_together zips lists (the shorter ones padded with none, as
 * Ansible); with_nested crosses them. A list that is not a list of lists
 * yields NULL (reported as invalid loop data). */
json_t *aicp_task_combine_lists(const json_t *spec)
{
    const json_t *lists = json_object_get(spec, "__with_together");
    int together = lists != NULL;
    if (!together)
        lists = json_object_get(spec, "__with_nested");
    if (!json_is_array(lists))
        return NULL;
    size_t n = json_array_size(lists), longest = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *l = json_array_get(lists, i);
        if (!json_is_array(l))
            return NULL;
        if (json_array_size(l) > longest)
            longest = json_array_size(l);
    }
    json_t *out = json_array();
    if (together) {
        for (size_t k = 0; k < longest; k++) {
            json_t *row = json_array();
            for (size_t i = 0; i < n; i++) {
                json_t *x = json_array_get(json_array_get(lists, i), k);
                json_array_append(row, x ? x : json_null());
            }
            json_array_append_new(out, row);
        }
        return out;
    }
    json_array_append_new(out, json_array());
    for (size_t i = 0; i < n; i++) {
        json_t *next = json_array(), *row, *x;
        size_t a, b;
        json_array_foreach(out, a, row) {
            json_array_foreach(json_array_get(lists, i), b, x) {
                json_t *r2 = json_copy(row);
                json_array_append(r2, x);
                json_array_append_new(next, r2);
            }
        }
        json_decref(out);
        out = next;
    }
    return n ? out : (json_decref(out), json_array());
}

/* Ansible's items lookup: each term that is a list gives its elements, any
 * other term itself (one level only; `loop` never flattens). */
static json_t *flatten_items(const json_t *terms)
{
    json_t *out = json_array();
    size_t i;
    json_t *x;
    if (out == NULL)
        return NULL;
    if (!json_is_array(terms)) {
        json_array_append(out, (json_t *)terms);
        return out;
    }
    json_array_foreach(terms, i, x) {
        if (json_is_array(x))
            json_array_extend(out, x);
        else
            json_array_append(out, x);
    }
    return out;
}

json_t *aicp_task_loop_items(const json_t *rendered)
{
    const json_t *v;
    if (!json_is_object(rendered))
        return json_is_array(rendered) ? json_incref((json_t *)rendered) : NULL;
    if ((v = json_object_get(rendered, "__with_items")) != NULL)
        return flatten_items(v);
    if (json_object_get(rendered, "__with_together") || json_object_get(rendered, "__with_nested"))
        return aicp_task_combine_lists(rendered);
    if ((v = json_object_get(rendered, "__with_dict")) != NULL) {
        json_t *list = json_array();
        const char *k;
        json_t *val;
        if (!json_is_object(v) || list == NULL) {
            json_decref(list);
            return NULL;
        }
        json_object_foreach((json_t *)v, k, val) {
            json_array_append_new(list, json_pack("{s:s, s:O}", "key", k, "value", val));
        }
        return list;
    }
    return NULL;
}

/* ---- result keys, as Ansible's ----------------------------------------- */

/* Ansible's action plugins (debug, fail) read their raw arguments: an
 * explicit `msg: null` (or a template that gives none) is shown as null,
 * where a module's null argument means its default. */
void aicp_task_keep_explicit_nulls(struct aicp_args *args, const json_t *rendered)
{
    if (!(args->mod->flags & AICP_MOD_ACTION))
        return;
    for (const struct aicp_arg_spec *a = args->mod->args; a && a->name; a++)
        if (a->type == AICP_ARG_RAW && a->def != NULL &&
            json_is_null(json_object_get(rendered, a->name)))
            json_object_set_new(args->v, a->name, json_null());
}

static void set_absent(json_t *obj, const char *key, json_t *v)
{
    if (json_object_get(obj, key) == NULL)
        json_object_set(obj, key, v);
    json_decref(v);
}

/* The keys Ansible's command module returns when the command does not run
 * (check mode: skipped, or a predicted change with creates or removes; or
 * creates/removes said no), so that `r.rc` and `r.stdout_lines` read as
 * after a real run. Keys the module set already stay, worded for check
 * mode as Ansible does. */
void aicp_task_unrun_command_keys(json_t *result, const json_t *plan, int check)
{
    const json_t *cmd = json_object_get(plan, "cmd");
    const char *msg = json_string_value(json_object_get(result, "msg"));
    if (check && msg != NULL && strncmp(msg, "Did not run command", 19) == 0) {
        struct aicp_buf b = AICP_BUF_INIT;
        if (aicp_buf_printf(&b, "Would%s", msg + 3) == 0)
            json_object_set_new(result, "msg", json_string(b.data));
        aicp_buf_free(&b);
    }
    set_absent(result, "cmd", cmd ? json_incref((json_t *)cmd) : json_null());
    set_absent(result, "rc", json_integer(0));
    set_absent(result, "stdout", json_string(""));
    set_absent(result, "stderr", json_string(""));
    set_absent(result, "stdout_lines", json_array());
    set_absent(result, "stderr_lines", json_array());
    set_absent(result, "start", json_null());
    set_absent(result, "end", json_null());
    set_absent(result, "delta", json_null());
    set_absent(result, "msg", json_string(""));
}

/* A result as Ansible's callbacks get it (TaskResult.clean_copy): the
 * status is in the line, so "failed" and "skipped" are left out. */
json_t *aicp_task_shown_result(const json_t *result)
{
    json_t *c = json_copy((json_t *)result);
    json_object_del(c, "failed");
    json_object_del(c, "skipped");
    return c;
}

/* A leading ~ in a path argument means the remote user's home, as Ansible
 * expands it on the host (the become user's under become). */
int aicp_task_expand_home(struct aicp_args *args, struct aicp_conn *conn, int become,
                       struct aicp_err *err)
{
    for (const struct aicp_arg_spec *a = args->mod->args; a && a->name; a++) {
        if (a->type != AICP_ARG_PATH || a->local)
            continue;
        const char *v = json_string_value(json_object_get(args->v, a->name));
        if (v == NULL || v[0] != '~' || (v[1] != '/' && v[1] != '\0'))
            continue;
        const char *home = aicp_conn_home(conn, become, err);
        if (home == NULL || *home == '\0')
            return aicp_err_set(err, AICP_EFAILED, "cannot expand '%s': the home directory on %s "
                                "is not known", v, "the host");
        struct aicp_buf b = AICP_BUF_INIT;
        if (aicp_buf_printf(&b, "%s%s", home, v + 1) != 0)
            return aicp_err_set(err, AICP_ENOMEM, "out of memory");
        json_object_set_new(args->v, a->name, json_string(b.data));
        aicp_buf_free(&b);
    }
    return 0;
}

/* Renders environment layers (layers[0] is the task's and wins; the last
 * is the play's) into export lines. *out is NULL when there is nothing. */
int aicp_task_env_prelude(char **out, const json_t *const *layers, size_t n, const json_t *vars,
                          struct aicp_err *err)
{
    *out = NULL;
    if (n == 0)
        return 0;
    json_t *env = json_object();
    int rc = 0;
    for (size_t i = n; i-- > 0 && rc == 0;) {
        json_t *v = NULL;
        if ((rc = aicp_tmpl_render(&v, layers[i], vars, err)) != 0)
            break;
        if (!json_is_object(v))
            rc = aicp_err_set(err, AICP_EINVAL, "environment must be a mapping");
        else
            json_object_update(env, v);
        json_decref(v);
    }
    struct aicp_buf b = AICP_BUF_INIT;
    const char *k;
    json_t *v;
    json_object_foreach(env, k, v) {
        if (rc != 0)
            break;
        int ok = *k != '\0' && !(*k >= '0' && *k <= '9');
        for (const char *p = k; *p && ok; p++)
            ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                 (*p >= '0' && *p <= '9') || *p == '_';
        if (!ok) {
            rc = aicp_err_set(err, AICP_EINVAL, "environment: '%s' is not a variable name", k);
            break;
        }
        char *str = NULL;
        if (json_is_string(v))
            str = aicp_strdup(json_string_value(v));
        else if (aicp_tmpl_to_string(&str, v) != 0)
            str = NULL;
        rc = str ? aicp_buf_printf(&b, "export %s=", k) : AICP_ENOMEM;
        rc = rc ? rc : aicp_buf_shquote(&b, str);
        rc = rc ? rc : aicp_buf_puts(&b, "\n");
        aicp_free_secret(str);
    }
    json_decref(env);
    if (rc == 0)
        *out = b.data;
    else
        aicp_buf_free_secret(&b);
    return rc;
}
