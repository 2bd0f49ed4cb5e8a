/* Validation of a whole playbook before any host is touched: every variable
 * a task reads must be defined somewhere — the inventory, group_vars and
 * host_vars, play and block and task vars, vars_files, role defaults,
 * registers, set_fact keys, loop variables, facts or extra vars. Ansible
 * finds such a typo only when the task runs, after the tasks before it have
 * changed hosts; here it is an invalid-input error naming the task's
 * file:line:col, and nothing runs. The check is flow-insensitive (a name
 * defined anywhere counts as defined everywhere), so it never refuses a
 * playbook Ansible would run; uses guarded by `is defined` or `default`
 * are left to run time. A variable whose every definition is a template
 * reading an undefined name counts as undefined where it is used (Ansible
 * fails there, lazily), and the template module's local src file is read
 * and checked as well, naming the place inside it. A copy or template src
 * that is a plain path must exist on the jump host. */
#include "config.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "fileutil.h"
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

/* Every name something defines (defined: name -> true), and, for the
 * definitions that are templates, their values (values: name -> array), so
 * that a use can follow what the value reads. clean: names with at least
 * one definition that reads nothing undefined by construction (a plain
 * value, a register, a set_fact whose arguments are checked as a task's). */
struct defs {
    json_t *defined;
    json_t *clean;
    json_t *values;
};

static int holds_template(const json_t *v)
{
    if (json_is_string(v))
        return aicp_tmpl_is_template(json_string_value(v));
    size_t i;
    const char *k;
    json_t *x;
    if (json_is_array(v)) {
        json_array_foreach(v, i, x) {
            if (holds_template(x))
                return 1;
        }
    } else if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, x) {
            if (holds_template(x))
                return 1;
        }
    }
    return 0;
}

static void define_name(struct defs *d, const char *k)
{
    json_object_set_new(d->defined, k, json_true());
    json_object_set_new(d->clean, k, json_true());
}

static void define_keys(struct defs *d, const json_t *obj)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        if (!holds_template(v)) {
            define_name(d, k);
            continue;
        }
        json_object_set_new(d->defined, k, json_true());
        json_t *vals = json_object_get(d->values, k);
        if (vals == NULL) {
            vals = json_array();
            json_object_set_new(d->values, k, vals);
        }
        json_array_append(vals, v);
    }
}

static void define_clean_keys(struct defs *d, const json_t *obj)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        define_name(d, k);
    }
}

static void define_list(struct defs *d, const struct aicp_task_list *l);

static void define_task(struct defs *d, const struct aicp_task *t)
{
    define_keys(d, t->vars);
    define_keys(d, t->role_defaults);
    if (t->register_as)
        define_name(d, t->register_as);
    if (t->loop_var)
        define_name(d, t->loop_var);
    if (t->index_var)
        define_name(d, t->index_var);
    if (t->mod && strcmp(t->mod->name, "set_fact") == 0)
        define_clean_keys(d, t->args);
    define_list(d, &t->block);
    define_list(d, &t->rescue);
    define_list(d, &t->always);
}

static void define_list(struct defs *d, const struct aicp_task_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        define_task(d, l->items[i]);
}

/* vars_files are loaded here too; a path that is itself a template which
 * cannot be rendered yet makes the check give up (returns 1) rather than
 * guess. */
static int define_vars_files(struct defs *d, const struct aicp_play *p, const json_t *extra,
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
            define_keys(d, doc);
        json_decref(doc);
    }
    return 0;
}

struct scan {
    const struct defs *defs;
    json_t *guarded;   /* names the `when` of the task or its blocks guards */
    json_t *visiting;  /* variables whose values are being followed */
    json_t *ok;        /* variables whose values read only defined names */
    unsigned guard_hits; /* times a guard excused a name: such answers are not cached */
    char bad[256];     /* the undefined name a variable's value reads */
    const struct aicp_task *task;
    const struct aicp_play *play;
    struct aicp_err *err;
};

static void where_of(struct scan *s, char *where, size_t len)
{
    if (s->task)
        aicp_task_where(s->task, where, len);
    else
        snprintf(where, len, "%s:%d:%d", s->play->loc.file ? s->play->loc.file : "?",
                 s->play->loc.line, s->play->loc.col);
}

/* name: what the task reads; s->bad: the undefined name, when reading name
 * (a variable whose value is a template) reaches it. */
static int report(struct scan *s, const char *name, int via)
{
    char where[1024];
    where_of(s, where, sizeof(where));
    if (via)
        return aicp_err_set(s->err, AICP_EUNDEF,
                            "%s: '%s' is undefined (the value of '%s' reads it): no inventory, "
                            "vars, vars_files, register, set_fact, loop or extra variable of that "
                            "name exists",
                            where, s->bad, name);
    return aicp_err_set(s->err, AICP_EUNDEF,
                        "%s: '%s' is undefined: no inventory, vars, vars_files, register, "
                        "set_fact, loop or extra variable of that name exists",
                        where, name);
}

static int reads_undefined(struct scan *s, const char *name, int depth);

/* 1 when a name read without a guard is undefined, or is a variable whose
 * value reads one (s->bad then names it). */
static int name_undefined(struct scan *s, const char *k, int depth, int *via)
{
    *via = 0;
    if (aicp_startswith(k, "ansible_"))
        return 0;
    if (json_object_get(s->guarded, k)) {
        s->guard_hits++;
        return 0;
    }
    if (json_object_get(s->defs->defined, k) == NULL) {
        snprintf(s->bad, sizeof(s->bad), "%s", k);
        return 1;
    }
    *via = reads_undefined(s, k, depth);
    return *via;
}

/* The names every string inside v reads without a guard. A template that
 * does not parse is the run's to report, with the templater's message:
 * -1 then. */
static int value_names(json_t *acc, const json_t *v)
{
    struct aicp_err scratch = {0};
    size_t i;
    const char *k;
    json_t *x;
    if (json_is_string(v))
        return aicp_tmpl_names(acc, json_string_value(v), 0, &scratch) == 0 ? 0 : -1;
    if (json_is_array(v)) {
        json_array_foreach(v, i, x) {
            if (value_names(acc, x) != 0)
                return -1;
        }
    } else if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, x) {
            if (value_names(acc, x) != 0)
                return -1;
        }
    }
    return 0;
}

/* 1 when every definition of the defined variable name is a template that
 * reads an undefined name (s->bad); 0 when one of them may be the one in
 * force and reads only defined names. Ansible evaluates a variable's value
 * when it is used, so that is where it fails. A variable met again while
 * following values counts as fine, as does anything too deep. */
static int reads_undefined(struct scan *s, const char *name, int depth)
{
    const json_t *vals = json_object_get(s->defs->values, name);
    if (json_object_get(s->defs->clean, name) || !json_is_array(vals) ||
        json_object_get(s->ok, name) || json_object_get(s->visiting, name) || depth > 32)
        return 0;
    unsigned hits = s->guard_hits;
    int all_bad = 1;
    size_t i;
    json_t *v;
    json_object_set_new(s->visiting, name, json_true());
    json_array_foreach(vals, i, v) {
        json_t *names = json_object();
        int bad = 0;
        if (names == NULL || value_names(names, v) != 0) {
            json_decref(names);
            all_bad = 0;
            break;
        }
        const char *k;
        json_t *x;
        json_object_foreach(names, k, x) {
            int via;
            if ((bad = name_undefined(s, k, depth + 1, &via)) != 0)
                break;
        }
        json_decref(names);
        if (!bad) {
            all_bad = 0;
            break;
        }
    }
    json_object_del(s->visiting, name);
    if (!all_bad && hits == s->guard_hits)
        json_object_set_new(s->ok, name, json_true());
    return all_bad;
}

/* The first name in names that is undefined (directly or through a
 * variable's value): 1 and *name set (borrowed from names), *via set. */
static int first_undefined(struct scan *s, json_t *names, const char **name, int *via)
{
    const char *k;
    json_t *v;
    json_object_foreach(names, k, v) {
        if (name_undefined(s, k, 0, via)) {
            *name = k;
            return 1;
        }
    }
    return 0;
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
    int via;
    if (rc == 0) {
        if (first_undefined(s, names, &k, &via))
            rc = report(s, k, via);
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

/* Every identifier in a condition's text (keywords, attributes and words
 * in strings too: an extra name here can only hide an error). */
static void words_of(json_t *acc, const char *p)
{
    while (*p) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_') {
            const char *start = p;
            while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
                   (*p >= '0' && *p <= '9'))
                p++;
            char word[256];
            snprintf(word, sizeof(word), "%.*s", (int)(p - start), start);
            json_object_set_new(acc, word, json_true());
        } else {
            p++;
        }
    }
}

/* The names a task's `when` guards for the task and what its block holds:
 * those it mentions but does not read unguarded, as `x is defined`, `x is
 * undefined`, `x | default(...)`, or x next to such a test in an and/or
 * chain. Ansible evaluates a list of conditions in order and stops at the
 * first false one, so the list is read as one `and` chain: `[x is defined,
 * x > 1]` guards x. A name the condition reads unguarded is not guarded: it
 * is checked like any other (`when: nope == 1` fails in Ansible). */
static void guard_when(json_t *guarded, const json_t *conds)
{
    json_t *words = json_object(), *read = json_object();
    struct aicp_buf chain = AICP_BUF_INIT;
    struct aicp_err scratch = {0};
    size_t i;
    json_t *c;
    int ok = words != NULL && read != NULL;
    json_t *one = json_is_string(conds) ? json_pack("[O]", conds) : json_incref((json_t *)conds);
    json_array_foreach(one, i, c) {
        if (!ok || !json_is_string(c))
            continue;
        const char *e = json_string_value(c);
        words_of(words, e);
        if (aicp_tmpl_is_template(e)) {
            /* `{{ }}` in a condition is rendered first: read on its own */
            if (aicp_tmpl_names(read, e, 1, &scratch) != 0)
                ok = 0;
        } else if (aicp_buf_printf(&chain, "%s(%s)", chain.len ? " and " : "", e) != 0) {
            ok = 0;
        }
    }
    if (ok && chain.len > 0 && aicp_tmpl_names(read, chain.data, 1, &scratch) != 0)
        ok = 0; /* a condition that does not parse: the run says so */
    if (ok) {
        const char *k;
        json_t *v;
        json_object_foreach(read, k, v) {
            json_object_del(words, k);
        }
    }
    json_object_update(guarded, words);
    json_decref(one);
    json_decref(words);
    json_decref(read);
    aicp_buf_free(&chain);
}

static int check_task(struct scan *s, const struct aicp_task *t)
{
    int rc;
    json_t *outer = s->guarded;
    s->guarded = json_deep_copy(outer);
    guard_when(s->guarded, t->when);
    rc = check_task_body(s, t);
    json_decref(s->guarded);
    s->guarded = outer;
    return rc;
}

/* Line and column (1-based) of the first place inside a `{{ }}` or `{% %}`
 * of text where name is read: an identifier not after a '.', outside
 * string literals. 0 and 0 when not found. */
static void locate_name(const char *text, const char *name, int *line, int *col)
{
    size_t nlen = strlen(name);
    int ln = 1, cl = 1, code = 0;
    char quote = 0, prev = 0;
    *line = *col = 0;
    for (const char *p = text; *p;) {
        if (!code) {
            if (p[0] == '{' && (p[1] == '{' || p[1] == '%')) {
                code = 1;
                prev = 0;
                p += 2;
                cl += 2;
                continue;
            }
            if (p[0] == '{' && p[1] == '#') {
                const char *end = strstr(p + 2, "#}");
                const char *stop = end ? end + 2 : p + strlen(p);
                for (; p < stop; p++, cl++)
                    if (*p == '\n') {
                        ln++;
                        cl = 0;
                    }
                continue;
            }
        } else if (quote) {
            if (*p == '\\' && p[1] != '\0') {
                p += 2;
                cl += 2;
                continue;
            }
            if (*p == quote)
                quote = 0;
        } else if ((p[0] == '}' && p[1] == '}') || (p[0] == '%' && p[1] == '}')) {
            code = 0;
            p += 2;
            cl += 2;
            continue;
        } else if (*p == '\'' || *p == '"') {
            quote = *p;
        } else if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_') {
            const char *start = p;
            while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
                   (*p >= '0' && *p <= '9'))
                p++;
            if ((size_t)(p - start) == nlen && strncmp(start, name, nlen) == 0 && prev != '.') {
                *line = ln;
                *col = cl;
                return;
            }
            cl += (int)(p - start);
            prev = 'a';
            continue;
        }
        if (*p == '\n') {
            ln++;
            cl = 1;
        } else {
            cl++;
        }
        if (code && *p != ' ' && *p != '\t' && *p != '\n')
            prev = *p;
        p++;
    }
}

/* Modules whose src is a file on the jump host (sub: the folder next to a
 * role's tasks where it is also looked for, as the module does), unless
 * remote_src says it is on the managed host. */
static const struct {
    const char *module, *sub, *remote_arg;
} local_src[] = {
    {"copy", "files", "remote_src"},
    {"template", "templates", NULL},
};

/* The jump host's file a copy or template task reads, when src is a plain
 * path: it must exist (as Ansible's action plugin finds it, before anything
 * runs), and a template's text must read only defined names, reported at
 * its own file:line:col. */
static int check_local_src(struct scan *s, const struct aicp_task *t)
{
    const char *sub = NULL, *remote = NULL;
    for (size_t i = 0; i < sizeof(local_src) / sizeof(local_src[0]); i++)
        if (strcmp(t->mod->name, local_src[i].module) == 0) {
            sub = local_src[i].sub;
            remote = local_src[i].remote_arg;
        }
    const json_t *src = json_object_get(t->args, "src");
    if (sub == NULL || !json_is_string(src) || aicp_tmpl_is_template(json_string_value(src)))
        return 0;
    if (remote != NULL) {
        const json_t *r = json_object_get(t->args, remote);
        if (r != NULL && !json_is_false(r) &&
            !(json_is_string(r) && aicp_parse_bool(json_string_value(r)) == 0))
            return 0; /* on the managed host, or not known before the run */
    }
    char dirbuf[PATH_MAX], where[1024];
    struct aicp_err scratch = {0};
    char *local = NULL, *text = NULL;
    json_t *names = NULL;
    struct stat st;
    int rc = 0;
    snprintf(dirbuf, sizeof(dirbuf), "%s", t->loc.file ? t->loc.file : ".");
    where_of(s, where, sizeof(where));
    rc = aicp_fu_local_path(&local, dirname(dirbuf), sub, json_string_value(src), &scratch);
    if (rc == 0 && stat(local, &st) != 0)
        rc = aicp_err_set(&scratch, AICP_ENOTFOUND, "Could not find or access '%s'", local);
    if (rc == AICP_ENOTFOUND) {
        rc = aicp_err_set(s->err, AICP_EINVAL, "%s: argument 'src' of module '%s': %s", where,
                          t->mod->name, scratch.msg);
        goto out;
    }
    if (rc != 0 || strcmp(t->mod->name, "template") != 0 || !S_ISREG(st.st_mode)) {
        rc = rc == AICP_ENOMEM ? aicp_err_set(s->err, rc, "out of memory") : 0;
        goto out;
    }
    if (aicp_read_file(&text, NULL, local, &scratch) != 0 || (names = json_object()) == NULL ||
        aicp_tmpl_names(names, text, 0, &scratch) != 0)
        goto out; /* unreadable or not a template the run can render: it says why */
    const char *k;
    int via, line, col;
    if (first_undefined(s, names, &k, &via)) {
        locate_name(text, k, &line, &col);
        if (via)
            rc = aicp_err_set(s->err, AICP_EUNDEF,
                              "%s:%d:%d: '%s' is undefined (the value of '%s' reads it), in the "
                              "template the task at %s renders",
                              local, line, col, s->bad, k, where);
        else
            rc = aicp_err_set(s->err, AICP_EUNDEF,
                              "%s:%d:%d: '%s' is undefined, in the template the task at %s "
                              "renders: no inventory, vars, vars_files, register, set_fact, loop "
                              "or extra variable of that name exists",
                              local, line, col, k, where);
    }
out:
    json_decref(names);
    free(text);
    free(local);
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
        if ((rc = check_local_src(s, t)) != 0)
            return rc;
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
    struct defs d = {.defined = json_object(), .clean = json_object(), .values = json_object()};
    json_t *ok = json_object(), *visiting = json_object();
    int rc = 0;
    if (d.defined == NULL || d.clean == NULL || d.values == NULL || ok == NULL ||
        visiting == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < sizeof(magic_names) / sizeof(magic_names[0]); i++)
        define_name(&d, magic_names[i]);
    for (size_t i = 0; i < aicp_inventory_host_count(inv); i++) {
        json_t *hv = NULL;
        if ((rc = aicp_inventory_host_vars(&hv, inv, aicp_inventory_host_name(inv, i), err)) != 0)
            goto out;
        define_keys(&d, hv);
        json_decref(hv);
    }
    /* -e wins over every other definition: its values are what is read. */
    if (json_is_object(extra_vars))
        define_clean_keys(&d, extra_vars);
    for (size_t i = 0; i < pb->nplays; i++) {
        const struct aicp_play *p = pb->plays[i];
        define_keys(&d, p->vars);
        rc = define_vars_files(&d, p, extra_vars, pb->map, err);
        if (rc == 1) {
            rc = 0; /* cannot know every name: check nothing */
            goto out;
        }
        if (rc != 0)
            goto out;
        define_list(&d, &p->pre_tasks);
        define_list(&d, &p->roles);
        define_list(&d, &p->tasks);
        define_list(&d, &p->post_tasks);
        define_list(&d, &p->handlers);
    }
    for (size_t i = 0; i < pb->nplays && rc == 0; i++) {
        const struct aicp_play *p = pb->plays[i];
        struct scan s = {.defs = &d, .play = p, .err = err, .guarded = json_object(),
                         .visiting = visiting, .ok = ok};
        if ((p->hosts == NULL || (rc = check_names(&s, p->hosts, 0)) == 0) &&
            (rc = check_list(&s, &p->pre_tasks)) == 0 && (rc = check_list(&s, &p->roles)) == 0 &&
            (rc = check_list(&s, &p->tasks)) == 0 && (rc = check_list(&s, &p->post_tasks)) == 0)
            rc = check_list(&s, &p->handlers);
        json_decref(s.guarded);
    }
out:
    json_decref(d.defined);
    json_decref(d.clean);
    json_decref(d.values);
    json_decref(ok);
    json_decref(visiting);
    return rc;
}
