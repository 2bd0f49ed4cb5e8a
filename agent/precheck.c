/* Validation of a whole playbook before any host is touched: every variable
 * a task reads must be defined somewhere — the inventory, group_vars and
 * host_vars, play and block and task vars, vars_files, role defaults,
 * registers, set_fact keys, loop variables, facts or extra vars. Ansible
 * finds such a typo only when the task runs, after the tasks before it have
 * changed hosts; here it is an invalid-input error naming the task's
 * file:line:col, and nothing runs. The check is flow-insensitive (a name
 * defined anywhere counts as defined everywhere), so it never refuses a
 * playbook Ansible would run; uses guarded by `is defined` or `default`
 * are left to run time. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "inventory.h"
#include "module.h"
#include "playbook.h"
#include "precheck.h"
#include "template.h"
#include "util.h"
#include "yaml.h"

/* Variables the executor or Ansible's conventions provide at run time. */
static const char *const magic_names[] = {
    "hostvars", "groups", "group_names", "inventory_hostname", "inventory_hostname_short",
    "inventory_dir", "inventory_file", "play_hosts", "playbook_dir", "omit", "item",
    "role_path", "role_name", "environment", "vars",
};

static void define_keys(json_t *defined, const json_t *obj)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        json_object_set_new(defined, k, json_true());
    }
}

static void define_list(json_t *defined, const struct aicp_task_list *l);

static void define_task(json_t *defined, const struct aicp_task *t)
{
    define_keys(defined, t->vars);
    define_keys(defined, t->role_defaults);
    if (t->register_as)
        json_object_set_new(defined, t->register_as, json_true());
    if (t->loop_var)
        json_object_set_new(defined, t->loop_var, json_true());
    if (t->index_var)
        json_object_set_new(defined, t->index_var, json_true());
    if (t->mod && strcmp(t->mod->name, "set_fact") == 0)
        define_keys(defined, t->args);
    define_list(defined, &t->block);
    define_list(defined, &t->rescue);
    define_list(defined, &t->always);
}

static void define_list(json_t *defined, const struct aicp_task_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        define_task(defined, l->items[i]);
}

/* vars_files are loaded here too; a path that is itself a template which
 * cannot be rendered yet makes the check give up (returns 1) rather than
 * guess. */
static int define_vars_files(json_t *defined, const struct aicp_play *p, const json_t *extra,
                             struct aicp_srcmap *map, struct aicp_err *err)
{
    size_t i;
    json_t *f;
    json_array_foreach(p->vars_files, i, f) {
        json_t *path = NULL, *doc = NULL, *scope = json_deep_copy(p->vars);
        if (json_is_object(extra))
            json_object_update(scope, (json_t *)extra);
        struct aicp_err scratch = {0};
        int rc = aicp_tmpl_render(&path, f, scope, &scratch);
        json_decref(scope);
        if (rc != 0 || !json_is_string(path)) {
            json_decref(path);
            return 1;
        }
        struct aicp_buf full = AICP_BUF_INIT;
        const char *ps = json_string_value(path);
        if (ps[0] == '/')
            aicp_buf_puts(&full, ps);
        else
            aicp_buf_printf(&full, "%s/%s", p->dir ? p->dir : ".", ps);
        rc = aicp_yaml_load_file(&doc, full.data, map, err);
        aicp_buf_free(&full);
        json_decref(path);
        if (rc != 0)
            return rc;
        if (json_is_object(doc))
            define_keys(defined, doc);
        json_decref(doc);
    }
    return 0;
}

struct scan {
    const json_t *defined;
    json_t *guarded;   /* names a `when` of the task or its blocks mentions */
    const struct aicp_task *task;
    const struct aicp_play *play;
    struct aicp_err *err;
};

static int report(struct scan *s, const char *name)
{
    char where[1024];
    if (s->task)
        aicp_task_where(s->task, where, sizeof(where));
    else
        snprintf(where, sizeof(where), "%s:%d:%d", s->play->loc.file ? s->play->loc.file : "?",
                 s->play->loc.line, s->play->loc.col);
    return aicp_err_set(s->err, AICP_EUNDEF,
                        "%s: '%s' is undefined: no inventory, vars, vars_files, register, "
                        "set_fact, loop or extra variable of that name exists",
                        where, name);
}

static int check_names(struct scan *s, const char *src, int bare)
{
    if (!bare && !aicp_tmpl_is_template(src))
        return 0;
    json_t *names = json_object();
    struct aicp_err scratch = {0};
    /* A template that does not parse is the run's to report, with the
     * templater's own message. */
    int rc = aicp_tmpl_names(names, src, bare, &scratch);
    const char *k;
    json_t *v;
    if (rc == 0) {
        json_object_foreach(names, k, v) {
            if (aicp_startswith(k, "ansible_") || json_object_get(s->defined, k) ||
                json_object_get(s->guarded, k))
                continue;
            rc = report(s, k);
            break;
        }
    } else {
        rc = 0;
    }
    json_decref(names);
    return rc;
}

static int check_value(struct scan *s, const json_t *v, int bare)
{
    if (json_is_string(v))
        return check_names(s, json_string_value(v), bare);
    int rc = 0;
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) {
            if ((rc = check_value(s, x, bare)) != 0)
                return rc;
        }
    } else if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) {
            if ((rc = check_value(s, x, bare)) != 0)
                return rc;
        }
    }
    return 0;
}

static int check_list(struct scan *s, const struct aicp_task_list *l);
static int check_task_body(struct scan *s, const struct aicp_task *t);

/* Every identifier a condition mentions. A task that runs only `when: x is
 * defined` (or any condition on x) may read x: such names are never
 * reported for the task and what its block holds. */
static void guard_words(json_t *guarded, const json_t *conds)
{
    size_t i;
    json_t *c;
    if (json_is_array(conds)) {
        json_array_foreach(conds, i, c) {
            guard_words(guarded, c);
        }
        return;
    }
    if (!json_is_string(conds))
        return;
    const char *p = json_string_value(conds);
    while (*p) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_') {
            const char *start = p;
            while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
                   (*p >= '0' && *p <= '9'))
                p++;
            char word[256];
            snprintf(word, sizeof(word), "%.*s", (int)(p - start), start);
            json_object_set_new(guarded, word, json_true());
        } else {
            p++;
        }
    }
}

static int check_task(struct scan *s, const struct aicp_task *t)
{
    int rc;
    json_t *outer = s->guarded;
    s->guarded = json_deep_copy(outer);
    guard_words(s->guarded, t->when);
    rc = check_task_body(s, t);
    json_decref(s->guarded);
    s->guarded = outer;
    return rc;
}

static int check_task_body(struct scan *s, const struct aicp_task *t)
{
    int rc;
    s->task = t;
    if ((rc = check_value(s, t->when, 1)) != 0 || (rc = check_value(s, t->changed_when, 1)) != 0 ||
        (rc = check_value(s, t->failed_when, 1)) != 0 || (rc = check_value(s, t->loop, 0)) != 0)
        return rc;
    if (t->name && (rc = check_names(s, t->name, 0)) != 0)
        return rc;
    if (t->kind == AICP_TASK_MODULE && json_is_object(t->args)) {
        const char *k;
        json_t *v;
        json_object_foreach(t->args, k, v) {
            /* assert's `that` and debug's `var` are bare expressions. */
            int bare = (strcmp(t->mod->name, "assert") == 0 && strcmp(k, "that") == 0) ||
                       (strcmp(t->mod->name, "debug") == 0 && strcmp(k, "var") == 0);
            if ((rc = check_value(s, v, bare)) != 0)
                return rc;
        }
    }
    if ((rc = check_list(s, &t->block)) != 0 || (rc = check_list(s, &t->rescue)) != 0 ||
        (rc = check_list(s, &t->always)) != 0)
        return rc;
    return 0;
}

static int check_list(struct scan *s, const struct aicp_task_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        int rc = check_task(s, l->items[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int aicp_precheck_playbook(const struct aicp_playbook *pb, const struct aicp_inventory *inv,
                           const json_t *extra_vars, struct aicp_err *err)
{
    json_t *defined = json_object();
    int rc = 0;
    if (defined == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    for (size_t i = 0; i < sizeof(magic_names) / sizeof(magic_names[0]); i++)
        json_object_set_new(defined, magic_names[i], json_true());
    for (size_t i = 0; i < aicp_inventory_host_count(inv); i++) {
        json_t *hv = NULL;
        if ((rc = aicp_inventory_host_vars(&hv, inv, aicp_inventory_host_name(inv, i), err)) != 0)
            goto out;
        define_keys(defined, hv);
        json_decref(hv);
    }
    if (json_is_object(extra_vars))
        define_keys(defined, extra_vars);
    for (size_t i = 0; i < pb->nplays; i++) {
        const struct aicp_play *p = pb->plays[i];
        define_keys(defined, p->vars);
        rc = define_vars_files(defined, p, extra_vars, pb->map, err);
        if (rc == 1) {
            rc = 0; /* cannot know every name: check nothing */
            goto out;
        }
        if (rc != 0)
            goto out;
        define_list(defined, &p->pre_tasks);
        define_list(defined, &p->roles);
        define_list(defined, &p->tasks);
        define_list(defined, &p->post_tasks);
        define_list(defined, &p->handlers);
    }
    for (size_t i = 0; i < pb->nplays && rc == 0; i++) {
        const struct aicp_play *p = pb->plays[i];
        struct scan s = {.defined = defined, .play = p, .err = err, .guarded = json_object()};
        if ((p->hosts == NULL || (rc = check_names(&s, p->hosts, 0)) == 0) &&
            (rc = check_list(&s, &p->pre_tasks)) == 0 && (rc = check_list(&s, &p->roles)) == 0 &&
            (rc = check_list(&s, &p->tasks)) == 0 && (rc = check_list(&s, &p->post_tasks)) == 0)
            rc = check_list(&s, &p->handlers);
        json_decref(s.guarded);
    }
out:
    json_decref(defined);
    return rc;
}
