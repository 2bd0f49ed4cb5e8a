/* Task files and roles for the playbook loader: finds the file an
 * import_tasks/include_tasks names, loads a task file into a task list, and
 * turns a role (roles/NAME/{tasks,vars,defaults,handlers,meta}) into a BLOCK
 * task whose vars and handlers follow Ansible's precedence and dedup rules.
 * Kept apart from playbook.c because it is the part that walks the file
 * system; the task and play parsing it calls back into stays there. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "playbook.h"
#include "playbook_int.h"
#include "template.h"
#include "util.h"
#include "yaml.h"

/* Loads a task file (import_tasks, include_tasks, a role's tasks/main.yml)
 * into list. */
int aicp_playbook_load_task_file(struct loader *L, const char *path, int handlers,
                                 struct aicp_task_list *out)
{
    json_t *tree = NULL;
    char *dir = NULL;
    int rc;
    if (L->depth >= MAX_DEPTH)
        return aicp_err_set(L->err, AICP_EINVAL,
                            "%s: imports nest deeper than %d (does a file import itself?)", path,
                            MAX_DEPTH);
    if ((rc = aicp_playbook_load_doc(L, path, &tree)) != 0)
        return rc;
    if ((dir = aicp_playbook_dir_of(path)) == NULL)
        return oom(L);
    struct aicp_loc top = {.file = path, .line = 1, .col = 1};
    top = aicp_playbook_loc_of(L, tree, &top);
    if (!json_is_null(tree) && !json_is_array(tree)) {
        rc = aicp_playbook_fail_at(L, &top, "a task file must contain a list of tasks, got %s",
                                   aicp_playbook_type_word(tree));
        goto out;
    }
    L->depth++;
    rc = aicp_playbook_parse_task_list(L, tree, dir, handlers, &top, out);
    L->depth--;
out:
    free(dir);
    return rc;
}

/* Finds a task file: relative to the including file's directory, then the
 * play's. The path must be static. */
int aicp_playbook_find_task_file(struct loader *L, const json_t *v, const char *key,
                                 const char *dir, const struct aicp_loc *loc, char **out)
{
    const json_t *file = v;
    *out = NULL;
    if (json_is_object(v))
        file = json_object_get(v, "file");
    if (!json_is_string(file))
        return aicp_playbook_fail_at(L, loc, "'%s' needs a file name", key);
    const char *name = json_string_value(file);
    if (aicp_tmpl_is_template(name))
        return aicp_playbook_fail_at(
            L, loc, "'%s' needs a static path; aicp does not template '%s'", key, name);
    char *p = aicp_playbook_path_join(dir, name);
    if (p != NULL && !file_exists(p) && L->play != NULL && L->play->dir != NULL) {
        char *q = aicp_playbook_path_join(L->play->dir, name);
        if (q != NULL && file_exists(q)) {
            free(p);
            p = q;
        } else {
            free(q);
        }
    }
    if (p == NULL)
        return oom(L);
    if (!file_exists(p)) {
        int rc =
            aicp_playbook_fail_at(L, loc, "Could not find or access '%s' (from %s)", name, key);
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

/* Reads roles/NAME/<sub>/<file>.yml (or .yaml) if there is one. */
static int role_file(struct loader *L, const char *role_dir, const char *sub, const char *file,
                     char **out)
{
    struct aicp_buf b = AICP_BUF_INIT;
    static const char *const exts[] = {"", ".yml", ".yaml"};
    *out = NULL;
    for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
        b.len = 0;
        if (aicp_buf_printf(&b, "%s/%s/%s%s", role_dir, sub, file, exts[i]) != 0) {
            aicp_buf_free(&b);
            return oom(L);
        }
        if (file_exists(b.data)) {
            *out = aicp_buf_steal(&b);
            return 0;
        }
    }
    aicp_buf_free(&b);
    return 0;
}

static int role_vars_file(struct loader *L, const char *role_dir, const char *sub,
                          const char *file, json_t **out)
{
    char *path = NULL;
    json_t *tree = NULL;
    int rc = role_file(L, role_dir, sub, file, &path);
    if (rc != 0 || path == NULL)
        return rc;
    if ((rc = aicp_playbook_load_doc(L, path, &tree)) == 0) {
        struct aicp_loc top = {.file = path, .line = 1, .col = 1};
        top = aicp_playbook_loc_of(L, tree, &top);
        if (json_is_object(tree) || json_is_null(tree))
            rc = aicp_playbook_get_vars(L, tree, sub, &top, out);
        else
            rc = aicp_playbook_fail_at(L, &top, "%s/%s must be a mapping of variables", sub, file);
    }
    free(path);
    return rc;
}

/* A role becomes a BLOCK: tasks/main.yml as its body, vars/main.yml and the
 * role's parameters as its vars, defaults/main.yml as role_defaults; its
 * handlers/main.yml are appended to the play's handlers. */
int aicp_playbook_load_role(struct loader *L, const char *name, const json_t *opts,
                            const struct aicp_loc *loc, struct aicp_task *t)
{
    char *role_dir = NULL, *path = NULL;
    json_t *rvars = NULL;
    const char *tasks_from = "main", *vars_from = "main", *defaults_from = "main",
               *handlers_from = "main";
    int rc = 0;

    if (aicp_tmpl_is_template(name))
        return aicp_playbook_fail_at(
            L, loc, "role names must be static; aicp does not template '%s'", name);
    if (json_is_object(opts)) {
        const json_t *v;
        if (json_is_string(v = json_object_get(opts, "tasks_from")))
            tasks_from = json_string_value(v);
        if (json_is_string(v = json_object_get(opts, "vars_from")))
            vars_from = json_string_value(v);
        if (json_is_string(v = json_object_get(opts, "defaults_from")))
            defaults_from = json_string_value(v);
        if (json_is_string(v = json_object_get(opts, "handlers_from")))
            handlers_from = json_string_value(v);
    }
    const char *bases[] = {L->play ? L->play->dir : NULL, L->pb->dir};
    for (size_t i = 0; i < 2 && role_dir == NULL; i++) {
        if (bases[i] == NULL)
            continue;
        struct aicp_buf b = AICP_BUF_INIT;
        if (aicp_buf_printf(&b, "%s/roles/%s", bases[i], name) != 0) {
            aicp_buf_free(&b);
            return oom(L);
        }
        if (dir_exists(b.data))
            role_dir = aicp_buf_steal(&b);
        else
            aicp_buf_free(&b);
    }
    if (role_dir == NULL)
        return aicp_playbook_fail_at(L, loc, "the role '%s' was not found in %s/roles", name,
                                     L->play && L->play->dir ? L->play->dir : L->pb->dir);
    t->kind = AICP_TASK_BLOCK;
    t->role_path = role_dir;
    free(t->action);
    if ((t->action = aicp_strdup(name)) == NULL)
        return oom(L);
    if ((rc = role_file(L, role_dir, "meta", "main", &path)) != 0)
        goto out;
    if (path != NULL) {
        json_t *meta = NULL;
        if ((rc = aicp_playbook_load_doc(L, path, &meta)) != 0)
            goto out;
        const json_t *deps = json_object_get(meta, "dependencies");
        if (json_array_size(deps) > 0) {
            struct aicp_loc ml = {.file = path, .line = 1, .col = 1};
            ml = aicp_playbook_loc_of(L, deps, &ml);
            rc = aicp_playbook_fail_at(
                L, &ml, "role dependencies are not supported by aicp (role '%s')", name);
            goto out;
        }
        free(path);
        path = NULL;
    }
    if ((rc = role_vars_file(L, role_dir, "defaults", defaults_from, &t->role_defaults)) != 0)
        goto out;
    if ((rc = role_vars_file(L, role_dir, "vars", vars_from, &rvars)) != 0)
        goto out;
    if (rvars != NULL) {
        /* the role's vars/main.yml is below its parameters in precedence */
        if (t->vars != NULL)
            json_object_update(rvars, t->vars);
        json_decref(t->vars);
        t->vars = rvars;
        rvars = NULL;
    }
    if ((rc = role_file(L, role_dir, "tasks", tasks_from, &path)) != 0)
        goto out;
    if (path != NULL) {
        if ((rc = aicp_playbook_load_task_file(L, path, 0, &t->block)) != 0)
            goto out;
    } else if (strcmp(tasks_from, "main") != 0) {
        rc = aicp_playbook_fail_at(L, loc, "Could not find specified file in role: tasks/%s",
                                   tasks_from);
        goto out;
    }
    free(path);
    path = NULL;
    if ((rc = role_file(L, role_dir, "handlers", handlers_from, &path)) != 0)
        goto out;
    /* a role used twice in a play brings its handlers once */
    int seen = 0;
    if (path != NULL && L->handler_files != NULL) {
        size_t i;
        json_t *f;
        json_array_foreach(L->handler_files, i, f) seen |= strcmp(json_string_value(f), path) == 0;
        if (!seen && json_array_append_new(L->handler_files, json_string(path)) != 0) {
            rc = oom(L);
            goto out;
        }
    }
    if (path != NULL && L->play != NULL && !seen) {
        struct aicp_task_list hl = {0};
        if ((rc = aicp_playbook_load_task_file(L, path, 1, &hl)) != 0) {
            aicp_playbook_task_list_free(&hl);
            goto out;
        }
        for (size_t i = 0; i < hl.n; i++) {
            /* The handler shows as "ROLE : name", as Ansible prints it. */
            if (hl.items[i]->role_path == NULL)
                hl.items[i]->role_path = aicp_strdup(role_dir);
            if (aicp_playbook_task_list_push(&L->play->handlers, hl.items[i]) != 0) {
                for (size_t j = i; j < hl.n; j++)
                    aicp_playbook_task_free(hl.items[j]);
                free(hl.items);
                rc = oom(L);
                goto out;
            }
        }
        free(hl.items);
    }
out:
    free(path);
    json_decref(rvars);
    return rc;
}
