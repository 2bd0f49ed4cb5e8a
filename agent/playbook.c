/* Playbook loading: turns a playbook's YAML (and the files it imports:
 * import_playbook, import_tasks/include_tasks, roles) into plays and task
 * trees, and validates everything that can be checked before a host is
 * touched: keywords, module names, argument names and static argument
 * types. Every error names the file, line and column of the play or task it
 * is about, worded as Ansible words it so that users can search for it.
 * Imports and roles become BLOCK tasks so that their when/tags/vars/become
 * are inherited by the executor exactly as a block's are. Finding and
 * loading task files and roles is in playbook_roles.c, the loop keywords
 * in playbook_loop.c. */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "module.h"
#include "playbook.h"
#include "playbook_int.h"
#include "registry.h"
#include "template.h"
#include "util.h"
#include "yaml.h"

/* ---- small helpers --------------------------------------------------------- */

int aicp_playbook_fail_at(struct loader *L, const struct aicp_loc *loc, const char *fmt, ...)
{
    char msg[sizeof(L->err->msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return aicp_err_set(L->err, AICP_EINVAL, "%s:%d:%d: %s", loc->file ? loc->file : "?",
                        loc->line, loc->col, msg);
}

/* Where a node came from; booleans and null are shared singletons and
 * numbers are not recorded, so those fall back to the enclosing node. */
struct aicp_loc aicp_playbook_loc_of(struct loader *L, const json_t *node,
                                     const struct aicp_loc *fallback)
{
    if (node != NULL && (json_is_object(node) || json_is_array(node) || json_is_string(node))) {
        const struct aicp_loc *l = aicp_srcmap_get(L->pb->map, node);
        if (l != NULL)
            return *l;
    }
    return *fallback;
}

char *aicp_playbook_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return aicp_strdup(".");
    if (slash == path)
        return aicp_strdup("/");
    return aicp_strndup(path, (size_t)(slash - path));
}

char *aicp_playbook_path_join(const char *dir, const char *name)
{
    struct aicp_buf b = AICP_BUF_INIT;
    if (name[0] == '/' || dir == NULL)
        return aicp_strdup(name);
    if (aicp_buf_printf(&b, "%s/%s", dir, name) != 0) {
        aicp_buf_free(&b);
        return NULL;
    }
    return aicp_buf_steal(&b);
}

/* Loads a YAML file into the playbook's map and keeps its tree alive. */
int aicp_playbook_load_doc(struct loader *L, const char *path, json_t **tree)
{
    json_t *t = NULL;
    int rc = aicp_yaml_load_file(&t, path, L->pb->map, L->err);
    if (rc != 0)
        return rc;
    if (json_array_append_new(L->pb->docs, t) != 0)
        return oom(L);
    *tree = t;
    return 0;
}

const char *aicp_playbook_type_word(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "a mapping";
    case JSON_ARRAY: return "a list";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* A scalar as a new C string (numbers as written by Python). */
static char *scalar_str(const json_t *v)
{
    char tmp[64];
    if (json_is_string(v))
        return aicp_strdup(json_string_value(v));
    if (json_is_integer(v)) {
        snprintf(tmp, sizeof(tmp), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return aicp_strdup(tmp);
    }
    if (json_is_real(v)) {
        snprintf(tmp, sizeof(tmp), "%g", json_real_value(v));
        return aicp_strdup(tmp);
    }
    if (json_is_boolean(v))
        return aicp_strdup(json_is_true(v) ? "True" : "False");
    return NULL;
}

/* A keyword whose value must be a scalar string. */
int aicp_playbook_get_str(struct loader *L, const json_t *v, const char *key,
                          const struct aicp_loc *loc, char **out)
{
    free(*out);
    *out = NULL;
    if (json_is_null(v))
        return 0;
    if (json_is_array(v) || json_is_object(v))
        return aicp_playbook_fail_at(L, loc, "'%s' must be a string, got %s", key,
                                     aicp_playbook_type_word(v));
    *out = scalar_str(v);
    return *out ? 0 : oom(L);
}

/* A boolean keyword: true/false, yes/no strings, 0/1. Templates cannot be
 * kept in an int, so they are refused with a clear message. */
static int get_bool(struct loader *L, const json_t *v, const char *key, const struct aicp_loc *loc,
                    int *out)
{
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1)) {
        *out = (int)json_integer_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        int b = aicp_parse_bool(json_string_value(v));
        if (b >= 0) {
            *out = b;
            return 0;
        }
        if (aicp_tmpl_is_template(json_string_value(v)))
            return aicp_playbook_fail_at(L, loc,
                                         "'%s' must be a boolean; aicp does not template it: %s",
                                         key, json_string_value(v));
        return aicp_playbook_fail_at(L, loc, "'%s' must be a boolean, got '%s'", key,
                                     json_string_value(v));
    }
    return aicp_playbook_fail_at(L, loc, "'%s' must be a boolean, got %s", key,
                                 aicp_playbook_type_word(v));
}

/* when/changed_when/failed_when: a condition or a list of them. */
static int get_conds(struct loader *L, const json_t *v, const char *key, const struct aicp_loc *loc,
                     json_t **out)
{
    json_decref(*out);
    *out = NULL;
    if (json_is_null(v))
        return 0;
    if (json_is_object(v))
        return aicp_playbook_fail_at(L, loc,
                                     "'%s' must be a condition or a list of conditions, got %s",
                                     key, aicp_playbook_type_word(v));
    if (json_is_array(v)) {
        size_t i;
        json_t *c;
        json_array_foreach(v, i, c) {
            if (json_is_object(c) || json_is_array(c) || json_is_null(c))
                return aicp_playbook_fail_at(L, loc,
                                             "'%s' conditions must be strings or booleans, got %s",
                                             key, aicp_playbook_type_word(c));
        }
        *out = json_copy((json_t *)v);
    } else {
        *out = json_pack("[O]", v);
    }
    return *out ? 0 : oom(L);
}

/* tags: "a,b" or a list (of strings or numbers) -> array of strings. */
static int get_tags(struct loader *L, const json_t *v, const struct aicp_loc *loc, json_t *out)
{
    json_array_clear(out);
    if (v == NULL || json_is_null(v)) /* absent or `tags:` with no value */
        return 0;
    if (json_is_array(v)) {
        size_t i;
        json_t *t;
        json_array_foreach(v, i, t) {
            char *s = json_is_array(t) || json_is_object(t) ? NULL : scalar_str(t);
            if (s == NULL)
                return aicp_playbook_fail_at(L, loc, "tags must be strings, got %s",
                                             aicp_playbook_type_word(t));
            int r = json_array_append_new(out, json_string(s));
            free(s);
            if (r != 0)
                return oom(L);
        }
        return 0;
    }
    char *s = json_is_object(v) ? NULL : scalar_str(v);
    if (s == NULL)
        return aicp_playbook_fail_at(L, loc, "tags must be a string or a list, got %s",
                                     aicp_playbook_type_word(v));
    /* a comma-separated string, as Ansible splits it */
    for (char *p = s; p != NULL;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        while (isspace((unsigned char)*p))
            p++;
        size_t n = strlen(p);
        while (n > 0 && isspace((unsigned char)p[n - 1]))
            p[--n] = '\0';
        if (n > 0 && json_array_append_new(out, json_string(p)) != 0) {
            free(s);
            return oom(L);
        }
        p = comma ? comma + 1 : NULL;
    }
    free(s);
    return 0;
}

/* vars: a mapping (or a list of mappings, merged), copied so that the
 * executor may add to it without touching the loaded tree. */
int aicp_playbook_get_vars(struct loader *L, const json_t *v, const char *key,
                           const struct aicp_loc *loc, json_t **out)
{
    json_t *o = json_object();
    if (o == NULL)
        return oom(L);
    if (json_is_object(v)) {
        json_object_update(o, (json_t *)v);
    } else if (json_is_array(v)) {
        size_t i;
        json_t *d;
        json_array_foreach(v, i, d) {
            if (!json_is_object(d)) {
                json_decref(o);
                return aicp_playbook_fail_at(L, loc, "'%s' must be a mapping or a list of mappings",
                                             key);
            }
            json_object_update(o, d);
        }
    } else if (!json_is_null(v)) {
        json_decref(o);
        return aicp_playbook_fail_at(L, loc, "'%s' must be a mapping, got %s", key,
                                     aicp_playbook_type_word(v));
    }
    json_decref(*out);
    *out = o;
    return 0;
}

/* A string list keyword (notify, listen, vars_files): string or list. */
static int get_str_list(struct loader *L, const json_t *v, const char *key,
                        const struct aicp_loc *loc, json_t **out)
{
    json_decref(*out);
    *out = NULL;
    if (json_is_null(v))
        return 0;
    json_t *a = json_array();
    if (a == NULL)
        return oom(L);
    if (json_is_array(v)) {
        size_t i;
        json_t *s;
        json_array_foreach(v, i, s) {
            char *str = json_is_array(s) || json_is_object(s) ? NULL : scalar_str(s);
            if (str == NULL) {
                json_decref(a);
                return aicp_playbook_fail_at(L, loc, "'%s' must be a string or a list of strings",
                                             key);
            }
            json_array_append_new(a, json_string(str));
            free(str);
        }
    } else {
        char *str = json_is_object(v) ? NULL : scalar_str(v);
        if (str == NULL) {
            json_decref(a);
            return aicp_playbook_fail_at(L, loc, "'%s' must be a string or a list of strings", key);
        }
        json_array_append_new(a, json_string(str));
        free(str);
    }
    *out = a;
    return 0;
}

/* environment: a mapping or a template string. */
static int get_env(struct loader *L, const json_t *v, const struct aicp_loc *loc, json_t **out)
{
    json_decref(*out);
    *out = NULL;
    if (json_is_null(v))
        return 0;
    if (!json_is_object(v) && !(json_is_string(v) && aicp_tmpl_is_template(json_string_value(v))))
        return aicp_playbook_fail_at(L, loc, "'environment' must be a mapping, got %s",
                                     aicp_playbook_type_word(v));
    *out = json_is_object(v) ? json_copy((json_t *)v) : json_incref((json_t *)v);
    return *out ? 0 : oom(L);
}

static int become_method_ok(struct loader *L, const json_t *v, const struct aicp_loc *loc)
{
    if (json_is_string(v) && strcmp(json_string_value(v), "sudo") == 0)
        return 0;
    return aicp_playbook_fail_at(
        L, loc, "become_method '%s' is not supported (aicp only supports sudo)",
        json_is_string(v) ? json_string_value(v) : aicp_playbook_type_word(v));
}

/* Names as written may carry the builtin collection's prefix. */
static const char *short_name(const char *name)
{
    if (aicp_startswith(name, "ansible.builtin."))
        return name + strlen("ansible.builtin.");
    if (aicp_startswith(name, "ansible.legacy."))
        return name + strlen("ansible.legacy.");
    return name;
}

/* ---- tasks ----------------------------------------------------------------- */

static struct aicp_task *task_new(const struct aicp_loc *loc)
{
    struct aicp_task *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->loc = *loc;
    t->no_log = -1;
    t->become = -1;
    t->check_mode = -1;
    t->diff = -1;
    t->any_errors_fatal = -1;
    t->tags = json_array();
    if (t->tags == NULL) {
        free(t);
        return NULL;
    }
    return t;
}

void aicp_playbook_task_free(struct aicp_task *t)
{
    if (t == NULL)
        return;
    free(t->name);
    free(t->action);
    json_decref(t->args);
    json_decref(t->when);
    json_decref(t->loop);
    free(t->loop_var);
    free(t->index_var);
    json_decref(t->loop_label);
    free(t->register_as);
    json_decref(t->notify);
    json_decref(t->listen);
    json_decref(t->tags);
    json_decref(t->changed_when);
    json_decref(t->failed_when);
    json_decref(t->ignore_errors);
    free(t->become_user);
    json_decref(t->vars);
    json_decref(t->environment);
    aicp_playbook_task_list_free(&t->block);
    aicp_playbook_task_list_free(&t->rescue);
    aicp_playbook_task_list_free(&t->always);
    json_decref(t->role_defaults);
    free(t->role_path);
    free(t->delegate_to);
    free(t);
}

void aicp_playbook_task_list_free(struct aicp_task_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        aicp_playbook_task_free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

int aicp_playbook_task_list_push(struct aicp_task_list *l, struct aicp_task *t)
{
    struct aicp_task **items = realloc(l->items, (l->n + 1) * sizeof(*items));
    if (items == NULL)
        return AICP_ENOMEM;
    l->items = items;
    l->items[l->n++] = t;
    return 0;
}

/* The keywords a task, handler or block may carry (besides its action). */
enum kw_scope { KW_TASK = 1, KW_BLOCK = 2, KW_HANDLER = 4 };

static const struct {
    const char *name;
    unsigned scope;
} keywords[] = {
    {"name", 7}, {"when", 7}, {"tags", 7}, {"become", 7}, {"become_user", 7},
    {"become_method", 7}, {"vars", 7}, {"environment", 7}, {"ignore_errors", 7},
    {"no_log", 7}, {"check_mode", 7}, {"diff", 7}, {"run_once", 7}, {"any_errors_fatal", 7},
    {"delegate_to", 7}, {"args", 5}, {"loop", 5}, {"with_items", 5}, {"with_list", 5},
    {"with_dict", 5}, {"with_sequence", 5}, {"with_together", 5}, {"with_nested", 5},
    {"loop_control", 5}, {"register", 5},
    {"notify", 5}, {"changed_when", 5}, {"failed_when", 5}, {"listen", 4},
    {"block", 2}, {"rescue", 2}, {"always", 2}, {"action", 5}, {"local_action", 5},
};

/* Task keywords Ansible has and aicp does not implement: refused rather
 * than silently ignored, since ignoring them would change what a run does. */
static const char *const unsupported_keywords[] = {
    "until", "retries", "delay", "async", "poll", "throttle", "timeout", "ignore_unreachable",
    "delegate_facts", "connection", "remote_user", "port", "debugger", "module_defaults",
    "become_flags", "become_exe", "collections", "with_fileglob", "with_subelements", "with_first_found", "with_lines", "with_file",
    "with_indexed_items", "with_flattened", "with_random_choice", "with_inventory_hostnames",
};

static int keyword_scope(const char *k)
{
    for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
        if (strcmp(keywords[i].name, k) == 0)
            return (int)keywords[i].scope;
    return 0;
}

static int is_unsupported_keyword(const char *k)
{
    for (size_t i = 0; i < sizeof(unsupported_keywords) / sizeof(unsupported_keywords[0]); i++)
        if (strcmp(unsupported_keywords[i], k) == 0)
            return 1;
    return 0;
}

/* Actions that are not modules but task forms. */
static int is_special_action(const char *k)
{
    static const char *const specials[] = {"meta", "import_tasks", "include_tasks", "import_role",
                                           "include_role", "include"};
    k = short_name(k);
    for (size_t i = 0; i < sizeof(specials) / sizeof(specials[0]); i++)
        if (strcmp(specials[i], k) == 0)
            return 1;
    return 0;
}

/* Module arguments: a mapping, a `k=v` string (free form kept in
 * _raw_params) or null; `args:` is merged under them. */
static int build_args(struct loader *L, struct aicp_task *t, const json_t *v, const json_t *extra,
                      const struct aicp_loc *loc)
{
    json_t *args = NULL;
    int rc = 0;
    if (json_is_null(v) || v == NULL) {
        args = json_object();
    } else if (json_is_object(v)) {
        args = json_copy((json_t *)v);
    } else if (json_is_string(v) || json_is_number(v) || json_is_boolean(v)) {
        char *s = scalar_str(v);
        if (s == NULL)
            return oom(L);
        rc = aicp_args_parse_kv(&args, s, (t->mod->flags & AICP_MOD_FREEFORM) != 0, t->mod, L->err);
        free(s);
        if (rc != 0) {
            aicp_err_prefix(L->err, "%s:%d:%d", loc->file, loc->line, loc->col);
            return rc;
        }
    } else {
        return aicp_playbook_fail_at(
            L, loc, "the arguments of '%s' must be a mapping or a k=v string, got %s", t->action,
            aicp_playbook_type_word(v));
    }
    if (args == NULL)
        return oom(L);
    if (extra != NULL && !json_is_null(extra)) {
        if (!json_is_object(extra)) {
            json_decref(args);
            return aicp_playbook_fail_at(L, loc, "'args' must be a mapping, got %s",
                                         aicp_playbook_type_word(extra));
        }
        json_t *merged = json_copy((json_t *)extra);
        if (merged == NULL) {
            json_decref(args);
            return oom(L);
        }
        json_object_update(merged, args);
        json_decref(args);
        args = merged;
    }
    t->args = args;
    struct aicp_args checked = {0};
    if ((rc = aicp_args_validate(&checked, t->mod, args, 1, L->err)) != 0) {
        aicp_err_prefix(L->err, "%s:%d:%d", loc->file, loc->line, loc->col);
        return rc;
    }
    aicp_args_clear(&checked);
    return 0;
}

/* `action: copy src=a dest=b` or `action: {module: copy, src: a}`. */
static int split_action(struct loader *L, const json_t *v, const struct aicp_loc *loc, char **name,
                        json_t **args)
{
    *name = NULL;
    *args = NULL;
    if (json_is_object(v)) {
        const json_t *m = json_object_get(v, "module");
        if (!json_is_string(m))
            return aicp_playbook_fail_at(L, loc, "no module/action detected in task.");
        *name = aicp_strdup(json_string_value(m));
        *args = json_copy((json_t *)v);
        if (*name == NULL || *args == NULL)
            return oom(L);
        json_object_del(*args, "module");
        return 0;
    }
    if (!json_is_string(v))
        return aicp_playbook_fail_at(L, loc, "no module/action detected in task.");
    const char *s = json_string_value(v);
    while (isspace((unsigned char)*s))
        s++;
    size_t n = 0;
    while (s[n] && !isspace((unsigned char)s[n]))
        n++;
    if (n == 0)
        return aicp_playbook_fail_at(L, loc, "no module/action detected in task.");
    *name = aicp_strndup(s, n);
    while (isspace((unsigned char)s[n]))
        n++;
    *args = json_string(s + n);
    return *name && *args ? 0 : oom(L);
}

static int parse_keyword(struct loader *L, struct aicp_task *t, const char *k, const json_t *v,
                         const struct aicp_loc *loc, int handlers)
{
    if (strcmp(k, "name") == 0)
        return aicp_playbook_get_str(L, v, k, loc, &t->name);
    if (strcmp(k, "when") == 0)
        return get_conds(L, v, k, loc, &t->when);
    if (strcmp(k, "changed_when") == 0)
        return get_conds(L, v, k, loc, &t->changed_when);
    if (strcmp(k, "failed_when") == 0)
        return get_conds(L, v, k, loc, &t->failed_when);
    if (strcmp(k, "tags") == 0)
        return get_tags(L, v, loc, t->tags);
    if (strcmp(k, "become") == 0)
        return get_bool(L, v, k, loc, &t->become);
    if (strcmp(k, "become_user") == 0)
        return aicp_playbook_get_str(L, v, k, loc, &t->become_user);
    if (strcmp(k, "become_method") == 0)
        return become_method_ok(L, v, loc);
    if (strcmp(k, "vars") == 0)
        return aicp_playbook_get_vars(L, v, k, loc, &t->vars);
    if (strcmp(k, "environment") == 0)
        return get_env(L, v, loc, &t->environment);
    if (strcmp(k, "no_log") == 0)
        return get_bool(L, v, k, loc, &t->no_log);
    if (strcmp(k, "check_mode") == 0)
        return get_bool(L, v, k, loc, &t->check_mode);
    if (strcmp(k, "diff") == 0)
        return get_bool(L, v, k, loc, &t->diff);
    if (strcmp(k, "run_once") == 0)
        return get_bool(L, v, k, loc, &t->run_once);
    if (strcmp(k, "any_errors_fatal") == 0)
        return get_bool(L, v, k, loc, &t->any_errors_fatal);
    if (strcmp(k, "register") == 0)
        return aicp_playbook_get_str(L, v, k, loc, &t->register_as);
    if (strcmp(k, "notify") == 0)
        return get_str_list(L, v, k, loc, &t->notify);
    if (strcmp(k, "listen") == 0 && handlers)
        return get_str_list(L, v, k, loc, &t->listen);
    if (strcmp(k, "loop_control") == 0)
        return aicp_playbook_parse_loop_control(L, t, v, loc);
    if (strcmp(k, "loop") == 0 || aicp_startswith(k, "with_"))
        return aicp_playbook_parse_loop(L, t, k, v, loc);
    if (strcmp(k, "ignore_errors") == 0) {
        json_decref(t->ignore_errors);
        t->ignore_errors = NULL;
        if (json_is_string(v) && aicp_tmpl_is_template(json_string_value(v))) {
            t->ignore_errors = json_incref((json_t *)v);
            return 0;
        }
        int b = 0, rc = get_bool(L, v, k, loc, &b);
        if (rc == 0)
            t->ignore_errors = json_boolean(b);
        return rc;
    }
    if (strcmp(k, "delegate_to") == 0) {
        int rc = aicp_playbook_get_str(L, v, k, loc, &t->delegate_to);
        if (rc != 0 || t->delegate_to == NULL)
            return rc;
        if (strcmp(t->delegate_to, "localhost") != 0 && strcmp(t->delegate_to, "127.0.0.1") != 0)
            return aicp_playbook_fail_at(
                L, loc, "delegate_to '%s' is not supported: aicp only delegates to localhost",
                t->delegate_to);
        return 0;
    }
    return aicp_playbook_fail_at(L, loc, "'%s' is not a valid attribute for a %s", k,
                                 handlers ? "Handler" : "Task");
}

static int parse_block(struct loader *L, const json_t *obj, const char *dir,
                       const struct aicp_loc *loc, int handlers, struct aicp_task *t)
{
    const char *k;
    json_t *v;
    int rc;
    t->kind = AICP_TASK_BLOCK;
    json_object_foreach((json_t *)obj, k, v) {
        struct aicp_task_list *list = strcmp(k, "block") == 0    ? &t->block
                                      : strcmp(k, "rescue") == 0 ? &t->rescue
                                      : strcmp(k, "always") == 0 ? &t->always
                                                                 : NULL;
        if (list != NULL) {
            struct aicp_loc l = aicp_playbook_loc_of(L, v, loc);
            if (!json_is_null(v) && !json_is_array(v))
                return aicp_playbook_fail_at(L, &l, "'%s' must be a list of tasks, got %s", k,
                                             aicp_playbook_type_word(v));
            if ((rc = aicp_playbook_parse_task_list(L, v, dir, handlers, &l, list)) != 0)
                return rc;
            continue;
        }
        if (!(keyword_scope(k) & KW_BLOCK))
            return aicp_playbook_fail_at(L, loc, "'%s' is not a valid attribute for a Block", k);
        if ((rc = parse_keyword(L, t, k, v, loc, handlers)) != 0)
            return rc;
    }
    return 0;
}

/* The body of an import/include: tasks or a role. */
static int parse_special(struct loader *L, struct aicp_task *t, const char *action,
                         const json_t *v, const char *dir, const struct aicp_loc *loc)
{
    const char *a = short_name(action);
    int rc;
    if (strcmp(a, "meta") == 0) {
        static const char *const verbs[] = {"flush_handlers", "noop", "end_play", "end_host",
                                            "clear_host_errors", "refresh_inventory"};
        t->kind = AICP_TASK_META;
        const json_t *verb = json_is_object(v) ? json_object_get(v, "_raw_params") : v;
        if (!json_is_string(verb))
            return aicp_playbook_fail_at(L, loc, "meta needs an action such as flush_handlers");
        for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
            if (strcmp(verbs[i], json_string_value(verb)) == 0) {
                free(t->action);
                t->action = aicp_strdup(verbs[i]);
                t->args = json_object();
                return t->action && t->args ? 0 : oom(L);
            }
        return aicp_playbook_fail_at(L, loc, "invalid meta action requested: %s",
                                     json_string_value(verb));
    }
    if (strcmp(a, "include") == 0)
        return aicp_playbook_fail_at(
            L, loc, "'include' was removed from Ansible; use import_tasks or include_tasks");
    if (strcmp(a, "import_tasks") == 0 || strcmp(a, "include_tasks") == 0) {
        char *path = NULL;
        if (strcmp(a, "import_tasks") == 0 && t->loop != NULL)
            return aicp_playbook_fail_at(
                L, loc,
                "You cannot use loops on 'import_tasks' statements. You should use "
                "'include_tasks' instead.");
        if ((rc = aicp_playbook_find_task_file(L, v, a, dir, loc, &path)) != 0)
            return rc;
        t->kind = t->loop != NULL ? AICP_TASK_INCLUDE : AICP_TASK_BLOCK;
        t->args = json_pack("{s:s}", "file", path);
        rc = t->args ? aicp_playbook_load_task_file(L, path, 0, &t->block) : oom(L);
        free(path);
        return rc;
    }
    /* import_role / include_role */
    if (t->loop != NULL)
        return aicp_playbook_fail_at(L, loc, "loops on '%s' are not supported by aicp", a);
    const json_t *name = json_is_object(v) ? json_object_get(v, "name") : v;
    if (!json_is_string(name))
        return aicp_playbook_fail_at(L, loc, "'%s' needs a role name", a);
    if (json_is_object(v)) {
        const char *k;
        json_t *val;
        json_object_foreach((json_t *)v, k, val) {
            if (strcmp(k, "name") != 0 && strcmp(k, "tasks_from") != 0 &&
                strcmp(k, "vars_from") != 0 && strcmp(k, "defaults_from") != 0 &&
                strcmp(k, "handlers_from") != 0 && strcmp(k, "public") != 0 &&
                strcmp(k, "allow_duplicates") != 0)
                return aicp_playbook_fail_at(L, loc, "Invalid options for %s: %s", a, k);
        }
    }
    char *nm = aicp_strdup(json_string_value(name));
    if (nm == NULL)
        return oom(L);
    rc = aicp_playbook_load_role(L, nm, v, loc, t);
    free(nm);
    return rc;
}

static int parse_task(struct loader *L, const json_t *obj, const char *dir, int handlers,
                      struct aicp_task **out)
{
    struct aicp_loc loc = aicp_playbook_loc_of(L, obj, &(struct aicp_loc){.file = "?"});
    struct aicp_task *t = task_new(&loc);
    const char *k;
    json_t *v;
    const char *mod_key = NULL, *unknown = NULL;
    const json_t *mod_val = NULL;
    char *act_name = NULL;
    json_t *act_args = NULL;
    int rc = 0;

    *out = NULL;
    if (t == NULL)
        return oom(L);
    if (json_object_get(obj, "block") != NULL) {
        if ((rc = parse_block(L, obj, dir, &loc, handlers, t)) != 0)
            goto out;
        goto done;
    }
    /* Find the action as Ansible's ModuleArgsParser does: keys that are not
     * keywords and resolve to a module; an unresolvable key is reported
     * only when no action was found. */
    json_object_foreach((json_t *)obj, k, v) {
        if (strcmp(k, "action") == 0 || strcmp(k, "local_action") == 0 ||
            (!keyword_scope(k) && !is_unsupported_keyword(k) &&
             (is_special_action(k) || aicp_module_find(k) != NULL))) {
            if (mod_key != NULL) {
                rc = aicp_playbook_fail_at(L, &loc, "conflicting action statements: %s, %s",
                                           mod_key, k);
                goto out;
            }
            mod_key = k;
            mod_val = v;
        } else if (!keyword_scope(k) && !is_unsupported_keyword(k) && unknown == NULL) {
            unknown = k;
        }
    }
    if (mod_key == NULL) {
        if (unknown != NULL)
            rc = aicp_playbook_fail_at(
                L, &loc,
                "couldn't resolve module/action '%s'. This often indicates a misspelling, "
                "missing collection, or incorrect module path.",
                unknown);
        else
            rc = aicp_playbook_fail_at(L, &loc, "no module/action detected in task.");
        goto out;
    }
    if (unknown != NULL) {
        rc = aicp_playbook_fail_at(L, &loc, "'%s' is not a valid attribute for a %s", unknown,
                                   handlers ? "Handler" : "Task");
        goto out;
    }
    /* Keywords first: loops decide what an include becomes. */
    json_object_foreach((json_t *)obj, k, v) {
        if (k == mod_key || strcmp(k, "args") == 0)
            continue;
        if (is_unsupported_keyword(k)) {
            rc = aicp_playbook_fail_at(L, &loc, "'%s' is not supported by aicp", k);
            goto out;
        }
        if (!(keyword_scope(k) & (handlers ? KW_HANDLER : KW_TASK))) {
            rc = aicp_playbook_fail_at(L, &loc, "'%s' is not a valid attribute for a %s", k,
                                       handlers ? "Handler" : "Task");
            goto out;
        }
        if ((rc = parse_keyword(L, t, k, v, &loc, handlers)) != 0)
            goto out;
    }
    if (strcmp(mod_key, "action") == 0 || strcmp(mod_key, "local_action") == 0) {
        if ((rc = split_action(L, mod_val, &loc, &act_name, &act_args)) != 0)
            goto out;
        if (strcmp(mod_key, "local_action") == 0) {
            free(t->delegate_to);
            if ((t->delegate_to = aicp_strdup("localhost")) == NULL) {
                rc = oom(L);
                goto out;
            }
        }
        mod_val = act_args;
        if (!is_special_action(act_name) && aicp_module_find(act_name) == NULL) {
            rc = aicp_playbook_fail_at(
                L, &loc,
                "couldn't resolve module/action '%s'. This often indicates a misspelling, "
                "missing collection, or incorrect module path.",
                act_name);
            goto out;
        }
    }
    const char *action = act_name ? act_name : mod_key;
    if ((t->action = aicp_strdup(action)) == NULL) {
        rc = oom(L);
        goto out;
    }
    if (is_special_action(action)) {
        if (json_object_get(obj, "args") != NULL && !json_is_object(mod_val)) {
            rc = aicp_playbook_fail_at(L, &loc, "'args' cannot be used with %s", action);
            goto out;
        }
        if ((rc = parse_special(L, t, action, mod_val, dir, &loc)) != 0)
            goto out;
        goto done;
    }
    t->kind = AICP_TASK_MODULE;
    t->mod = aicp_module_find(action);
    if ((rc = build_args(L, t, mod_val, json_object_get(obj, "args"), &loc)) != 0)
        goto out;
done:
    if (t->loop != NULL && t->loop_var == NULL && (t->loop_var = aicp_strdup("item")) == NULL) {
        rc = oom(L);
        goto out;
    }
    *out = t;
    t = NULL;
out:
    free(act_name);
    json_decref(act_args);
    aicp_playbook_task_free(t);
    return rc;
}

int aicp_playbook_parse_task_list(struct loader *L, const json_t *node, const char *dir,
                                  int handlers, const struct aicp_loc *parent,
                                  struct aicp_task_list *out)
{
    size_t i;
    json_t *item;
    int rc;
    if (json_is_null(node) || node == NULL)
        return 0;
    if (!json_is_array(node))
        return aicp_playbook_fail_at(L, parent, "a list of tasks was expected, got %s",
                                     aicp_playbook_type_word(node));
    json_array_foreach(node, i, item) {
        struct aicp_task *t = NULL;
        if (!json_is_object(item)) {
            struct aicp_loc l = aicp_playbook_loc_of(L, item, parent);
            return aicp_playbook_fail_at(L, &l, "a task must be a mapping, got %s",
                                         aicp_playbook_type_word(item));
        }
        if ((rc = parse_task(L, item, dir, handlers, &t)) != 0)
            return rc;
        if (aicp_playbook_task_list_push(out, t) != 0) {
            aicp_playbook_task_free(t);
            return oom(L);
        }
    }
    return 0;
}

/* ---- plays ----------------------------------------------------------------- */

static void play_free(struct aicp_play *p)
{
    if (p == NULL)
        return;
    free(p->name);
    free(p->hosts);
    json_decref(p->vars);
    json_decref(p->vars_files);
    free(p->become_user);
    json_decref(p->serial);
    json_decref(p->tags);
    json_decref(p->environment);
    aicp_playbook_task_list_free(&p->pre_tasks);
    aicp_playbook_task_list_free(&p->roles);
    aicp_playbook_task_list_free(&p->tasks);
    aicp_playbook_task_list_free(&p->post_tasks);
    aicp_playbook_task_list_free(&p->handlers);
    free(p->dir);
    free(p);
}

/* Play keywords Ansible has that aicp does not implement. */
static const char *const unsupported_play_keys[] = {
    "vars_prompt", "order", "throttle", "timeout", "debugger", "module_defaults", "become_flags",
    "become_exe", "ignore_unreachable", "run_once", "no_log", "diff", "ignore_errors",
    "fact_path", "gather_timeout", "collections", "gather_subset",
};

static int parse_hosts(struct loader *L, struct aicp_play *p, const json_t *v,
                       const struct aicp_loc *loc)
{
    struct aicp_buf b = AICP_BUF_INIT;
    if (json_is_array(v)) {
        size_t i;
        json_t *h;
        json_array_foreach(v, i, h) {
            char *s = json_is_array(h) || json_is_object(h) ? NULL : scalar_str(h);
            if (s == NULL) {
                aicp_buf_free(&b);
                return aicp_playbook_fail_at(L, loc, "hosts must be a string or a list of strings");
            }
            int r = aicp_buf_printf(&b, "%s%s", i ? "," : "", s);
            free(s);
            if (r != 0) {
                aicp_buf_free(&b);
                return oom(L);
            }
        }
        free(p->hosts);
        p->hosts = aicp_buf_steal(&b);
    } else {
        int rc = aicp_playbook_get_str(L, v, "hosts", loc, &p->hosts);
        if (rc != 0)
            return rc;
    }
    if (p->hosts == NULL || p->hosts[0] == '\0')
        return aicp_playbook_fail_at(L, loc,
                                     "Hosts list cannot be empty. Please check your playbook");
    return 0;
}

static int parse_play(struct loader *L, const json_t *obj, const char *dir)
{
    struct aicp_loc loc = aicp_playbook_loc_of(L, obj, &(struct aicp_loc){.file = "?"});
    struct aicp_play *p = calloc(1, sizeof(*p));
    struct aicp_play **plays;
    const char *k;
    json_t *v;
    int rc = 0;

    if (p == NULL)
        return oom(L);
    p->loc = loc;
    p->gather_facts = 1;
    p->max_fail_percentage = -1;
    p->check_mode = -1;
    p->vars = json_object();
    p->vars_files = json_array();
    p->tags = json_array();
    p->dir = aicp_strdup(dir);
    if (p->vars == NULL || p->vars_files == NULL || p->tags == NULL || p->dir == NULL) {
        rc = oom(L);
        goto out;
    }
    L->play = p;
    json_decref(L->handler_files);
    if ((L->handler_files = json_array()) == NULL) {
        rc = oom(L);
        goto out;
    }
    /* Scalars first, then roles before tasks, as Ansible orders them. */
    json_object_foreach((json_t *)obj, k, v) {
        if (strcmp(k, "name") == 0)
            rc = aicp_playbook_get_str(L, v, k, &loc, &p->name);
        else if (strcmp(k, "hosts") == 0)
            rc = parse_hosts(L, p, v, &loc);
        else if (strcmp(k, "vars") == 0)
            rc = aicp_playbook_get_vars(L, v, k, &loc, &p->vars);
        else if (strcmp(k, "vars_files") == 0) {
            rc = get_str_list(L, v, k, &loc, &p->vars_files);
            if (rc == 0 && p->vars_files == NULL)
                p->vars_files = json_array();
        } else if (strcmp(k, "become") == 0)
            rc = get_bool(L, v, k, &loc, &p->become);
        else if (strcmp(k, "become_user") == 0)
            rc = aicp_playbook_get_str(L, v, k, &loc, &p->become_user);
        else if (strcmp(k, "become_method") == 0)
            rc = become_method_ok(L, v, &loc);
        else if (strcmp(k, "gather_facts") == 0)
            rc = get_bool(L, v, k, &loc, &p->gather_facts);
        else if (strcmp(k, "serial") == 0) {
            if (!json_is_null(v) && (json_is_object(v) || json_is_boolean(v)))
                rc = aicp_playbook_fail_at(
                    L, &loc, "'serial' must be a number, a percentage or a list of them");
            json_decref(p->serial);
            p->serial = json_is_null(v) ? NULL : json_incref(v);
        } else if (strcmp(k, "max_fail_percentage") == 0) {
            if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 100)
                p->max_fail_percentage = (int)json_integer_value(v);
            else if (json_is_real(v) && json_real_value(v) >= 0 && json_real_value(v) <= 100)
                p->max_fail_percentage = (int)json_real_value(v);
            else
                rc = aicp_playbook_fail_at(L, &loc,
                                           "'max_fail_percentage' must be a number from 0 to 100");
        } else if (strcmp(k, "any_errors_fatal") == 0)
            rc = get_bool(L, v, k, &loc, &p->any_errors_fatal);
        else if (strcmp(k, "force_handlers") == 0)
            rc = get_bool(L, v, k, &loc, &p->force_handlers);
        else if (strcmp(k, "check_mode") == 0)
            rc = get_bool(L, v, k, &loc, &p->check_mode);
        else if (strcmp(k, "tags") == 0)
            rc = get_tags(L, v, &loc, p->tags);
        else if (strcmp(k, "environment") == 0)
            rc = get_env(L, v, &loc, &p->environment);
        else if (strcmp(k, "strategy") == 0) {
            /* linear is the one strategy; a templated choice (commonly
             * "{{ x | default('linear') }}") runs linear too. */
            if (!json_is_string(v) || (strcmp(json_string_value(v), "linear") != 0 &&
                                       !aicp_tmpl_is_template(json_string_value(v))))
                rc = aicp_playbook_fail_at(L, &loc, "strategy %s is not supported",
                                           json_is_string(v) ? json_string_value(v)
                                                             : aicp_playbook_type_word(v));
        } else if (strcmp(k, "remote_user") == 0 || strcmp(k, "connection") == 0 ||
                   strcmp(k, "port") == 0) {
            /* kept as the connection variables they stand for (below) */
            if (json_is_object(v) || json_is_array(v))
                rc = aicp_playbook_fail_at(L, &loc, "'%s' must be a scalar", k);
            continue; /* applied after vars, below */
        } else if (strcmp(k, "pre_tasks") == 0 || strcmp(k, "tasks") == 0 ||
                   strcmp(k, "post_tasks") == 0 || strcmp(k, "handlers") == 0 ||
                   strcmp(k, "roles") == 0)
            continue;
        else {
            int unsupported = 0;
            for (size_t i = 0; i < sizeof(unsupported_play_keys) / sizeof(unsupported_play_keys[0]);
                 i++)
                unsupported |= strcmp(unsupported_play_keys[i], k) == 0;
            if (unsupported)
                rc = aicp_playbook_fail_at(L, &loc, "'%s' is not supported in a play by aicp", k);
            else
                rc = aicp_playbook_fail_at(L, &loc, "'%s' is not a valid attribute for a Play", k);
        }
        if (rc != 0)
            goto out;
    }
    if (p->hosts == NULL) {
        rc = aicp_playbook_fail_at(L, &loc, "the field 'hosts' is required but was not set");
        goto out;
    }
    static const char *const conn_keys[][2] = {
        {"remote_user", "ansible_user"}, {"connection", "ansible_connection"}, {"port", "ansible_port"}};
    for (size_t i = 0; i < 3; i++) {
        const json_t *cv = json_object_get(obj, conn_keys[i][0]);
        if (cv != NULL && !json_is_null(cv) && json_object_get(p->vars, conn_keys[i][1]) == NULL)
            json_object_set(p->vars, conn_keys[i][1], (json_t *)cv);
    }
    const json_t *roles = json_object_get(obj, "roles");
    if (roles != NULL && !json_is_null(roles)) {
        struct aicp_loc rl = aicp_playbook_loc_of(L, roles, &loc);
        size_t i;
        json_t *r;
        if (!json_is_array(roles)) {
            rc = aicp_playbook_fail_at(L, &rl, "'roles' must be a list, got %s",
                                       aicp_playbook_type_word(roles));
            goto out;
        }
        json_array_foreach(roles, i, r) {
            struct aicp_loc el = aicp_playbook_loc_of(L, r, &rl);
            struct aicp_task *t = task_new(&el);
            if (t == NULL) {
                rc = oom(L);
                goto out;
            }
            if ((rc = aicp_playbook_task_list_push(&p->roles, t)) != 0) {
                aicp_playbook_task_free(t);
                rc = oom(L);
                goto out;
            }
            t->kind = AICP_TASK_BLOCK;
            const json_t *name = r;
            if (json_is_object(r)) {
                name = json_object_get(r, "role");
                if (name == NULL)
                    name = json_object_get(r, "name");
                json_t *params = json_object();
                if (params == NULL) {
                    rc = oom(L);
                    goto out;
                }
                t->vars = params;
                json_object_foreach(r, k, v) {
                    if (strcmp(k, "role") == 0 || strcmp(k, "name") == 0)
                        continue;
                    if (strcmp(k, "vars") == 0) {
                        if (!json_is_object(v) && !json_is_null(v)) {
                            rc = aicp_playbook_fail_at(L, &el, "role 'vars' must be a mapping");
                            goto out;
                        }
                        json_object_update(params, v);
                    } else if (keyword_scope(k) & KW_BLOCK) {
                        if ((rc = parse_keyword(L, t, k, v, &el, 0)) != 0)
                            goto out;
                    } else {
                        json_object_set(params, k, v); /* a role parameter */
                    }
                }
            }
            if (!json_is_string(name)) {
                rc = aicp_playbook_fail_at(L, &el, "role definitions must contain a role name");
                goto out;
            }
            char *nm = aicp_strdup(json_string_value(name));
            if (nm == NULL) {
                rc = oom(L);
                goto out;
            }
            rc = aicp_playbook_load_role(L, nm, r, &el, t);
            free(nm);
            if (rc != 0)
                goto out;
        }
    }
    static const char *const lists[] = {"pre_tasks", "tasks", "post_tasks", "handlers"};
    struct aicp_task_list *targets[] = {&p->pre_tasks, &p->tasks, &p->post_tasks, &p->handlers};
    for (size_t i = 0; i < 4; i++) {
        const json_t *tl = json_object_get(obj, lists[i]);
        struct aicp_loc tloc = aicp_playbook_loc_of(L, tl, &loc);
        if (tl != NULL && !json_is_null(tl) && !json_is_array(tl)) {
            rc = aicp_playbook_fail_at(L, &tloc, "'%s' must be a list of tasks, got %s", lists[i],
                                       aicp_playbook_type_word(tl));
            goto out;
        }
        /* role handlers were appended first; the play's own come after */
        if ((rc = aicp_playbook_parse_task_list(L, tl, dir, i == 3, &tloc, targets[i])) != 0)
            goto out;
    }
    plays = realloc(L->pb->plays, (L->pb->nplays + 1) * sizeof(*plays));
    if (plays == NULL) {
        rc = oom(L);
        goto out;
    }
    L->pb->plays = plays;
    plays[L->pb->nplays++] = p;
    p = NULL;
out:
    L->play = NULL;
    json_decref(L->handler_files);
    L->handler_files = NULL;
    play_free(p);
    return rc;
}

static int load_playbook_file(struct loader *L, const char *path);

static int import_playbook(struct loader *L, const json_t *entry, const char *dir,
                           const struct aicp_loc *loc)
{
    const json_t *file = NULL;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)entry, k, v) {
        if (strcmp(k, "import_playbook") == 0 || strcmp(k, "ansible.builtin.import_playbook") == 0)
            file = v;
        else if (strcmp(k, "name") != 0 && strcmp(k, "vars") != 0 && strcmp(k, "tags") != 0)
            return aicp_playbook_fail_at(L, loc,
                                         "'%s' is not a valid attribute for a PlaybookInclude", k);
    }
    if (!json_is_string(file) || aicp_tmpl_is_template(json_string_value(file)))
        return aicp_playbook_fail_at(L, loc, "import_playbook needs a static file name");
    char *path = aicp_playbook_path_join(dir, json_string_value(file));
    if (path == NULL)
        return oom(L);
    if (!file_exists(path)) {
        int rc = aicp_playbook_fail_at(L, loc, "Could not find or access '%s'", path);
        free(path);
        return rc;
    }
    size_t first = L->pb->nplays;
    int rc = load_playbook_file(L, path);
    free(path);
    if (rc != 0)
        return rc;
    /* the import's vars and tags apply to each play it brought in */
    json_t *tags = json_array();
    if (tags == NULL)
        return oom(L);
    if ((rc = get_tags(L, json_object_get(entry, "tags"), loc, tags)) == 0) {
        const json_t *vars = json_object_get(entry, "vars");
        if (vars != NULL && !json_is_object(vars) && !json_is_null(vars))
            rc = aicp_playbook_fail_at(L, loc, "'vars' must be a mapping");
        for (size_t i = first; rc == 0 && i < L->pb->nplays; i++) {
            json_array_extend(L->pb->plays[i]->tags, tags);
            if (json_is_object(vars))
                json_object_update(L->pb->plays[i]->vars, (json_t *)vars);
        }
    }
    json_decref(tags);
    return rc;
}

static int load_playbook_file(struct loader *L, const char *path)
{
    json_t *tree = NULL;
    char *dir = NULL;
    size_t i;
    json_t *entry;
    int rc;
    if (L->depth >= MAX_DEPTH)
        return aicp_err_set(L->err, AICP_EINVAL,
                            "%s: imports nest deeper than %d (does a playbook import itself?)",
                            path, MAX_DEPTH);
    if ((rc = aicp_playbook_load_doc(L, path, &tree)) != 0)
        return rc;
    if ((dir = aicp_playbook_dir_of(path)) == NULL)
        return oom(L);
    struct aicp_loc top = {.file = path, .line = 1, .col = 1};
    top = aicp_playbook_loc_of(L, tree, &top);
    if (json_is_null(tree)) {
        rc = aicp_playbook_fail_at(L, &top, "Empty playbook, nothing to do");
        goto out;
    }
    if (!json_is_array(tree)) {
        rc = aicp_playbook_fail_at(L, &top, "A playbook must be a list of plays, got %s instead",
                                   aicp_playbook_type_word(tree));
        goto out;
    }
    L->depth++;
    json_array_foreach(tree, i, entry) {
        struct aicp_loc el = aicp_playbook_loc_of(L, entry, &top);
        if (!json_is_object(entry)) {
            rc = aicp_playbook_fail_at(L, &el, "A play must be a mapping, got %s",
                                       aicp_playbook_type_word(entry));
            break;
        }
        if (json_object_get(entry, "import_playbook") != NULL ||
            json_object_get(entry, "ansible.builtin.import_playbook") != NULL)
            rc = import_playbook(L, entry, dir, &el);
        else
            rc = parse_play(L, entry, dir);
        if (rc != 0)
            break;
    }
    L->depth--;
out:
    free(dir);
    return rc;
}

int aicp_playbook_load(struct aicp_playbook **out, const char *path, struct aicp_err *err)
{
    return aicp_playbook_load_vaulted(out, path, NULL, NULL, err);
}

int aicp_playbook_load_vaulted(struct aicp_playbook **out, const char *path,
                               const struct aicp_vault *vault, struct aicp_secrets *secrets,
                               struct aicp_err *err)
{
    struct aicp_playbook *pb = calloc(1, sizeof(*pb));
    struct loader L = {.pb = pb, .err = err};
    int rc;

    *out = NULL;
    if (pb == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    pb->path = aicp_strdup(path);
    pb->dir = aicp_playbook_dir_of(path);
    pb->docs = json_array();
    if (pb->path == NULL || pb->dir == NULL || pb->docs == NULL ||
        aicp_srcmap_new(&pb->map) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    aicp_srcmap_set_vault(pb->map, vault, secrets);
    if ((rc = load_playbook_file(&L, path)) != 0)
        goto out;
    *out = pb;
    pb = NULL;
out:
    aicp_playbook_free(pb);
    return rc;
}

void aicp_playbook_free(struct aicp_playbook *pb)
{
    if (pb == NULL)
        return;
    for (size_t i = 0; i < pb->nplays; i++)
        play_free(pb->plays[i]);
    free(pb->plays);
    free(pb->path);
    free(pb->dir);
    json_decref(pb->docs);
    aicp_srcmap_free(pb->map);
    free(pb);
}

void aicp_task_where(const struct aicp_task *t, char *buf, size_t len)
{
    if (buf == NULL || len == 0)
        return;
    snprintf(buf, len, "%s:%d:%d", t && t->loc.file ? t->loc.file : "?", t ? t->loc.line : 0,
             t ? t->loc.col : 0);
}
