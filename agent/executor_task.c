/* Running one task on one host, and fanning a task out over the hosts:
 * the variables a task sees, its become/environment/check settings, the
 * module's check -> diff -> (apply -> verify) cycle for each loop item,
 * changed_when/failed_when, reading ahead a run of tasks' state in one
 * round trip, and the bounded pool of worker threads that runs one job per
 * host. Nothing here prints: the task tree in executor.c prints and
 * records the outcomes once the workers are joined. */
#include "config.h"

#include <libgen.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "err.h"
#include "executor.h"
#include "executor_int.h"
#include "hostconn.h"
#include "module.h"
#include "output.h"
#include "playbook.h"
#include "secret.h"
#include "taskutil.h"
#include "template.h"
#include "util.h"

/* ---- small helpers ------------------------------------------------------ */

void aicp_executor_outcome_clear(struct outcome *o)
{
    json_decref(o->result);
    free(o->diff_text);
    free(o->label);
    memset(o, 0, sizeof(*o));
}

/* Tasks inherit from their enclosing blocks, innermost first. */
int aicp_executor_inherit_int(const struct aicp_task *t, const struct scope *sc, size_t off,
                              int dflt)
{
    int v = *(const int *)((const char *)t + off);
    if (v >= 0)
        return v;
    for (; sc; sc = sc->parent) {
        if (sc->block == NULL)
            continue;
        v = *(const int *)((const char *)sc->block + off);
        if (v >= 0)
            return v;
    }
    return dflt;
}

static const char *inherit_become_user(const struct run *r, const struct aicp_task *t,
                                       const struct scope *sc)
{
    if (t->become_user)
        return t->become_user;
    for (; sc; sc = sc->parent)
        if (sc->block && sc->block->become_user)
            return sc->block->become_user;
    return r->play->become_user;
}

/* The variables a task sees on a host, lowest precedence first. */
json_t *aicp_executor_task_vars(const struct run *r, const struct host *h,
                                const struct aicp_task *t, const struct scope *sc)
{
    json_t *v = json_object();
    if (v == NULL)
        return NULL;
    const struct scope *chain[64];
    size_t n = 0;
    for (const struct scope *s = sc; s && n < 64; s = s->parent)
        chain[n++] = s;
    for (size_t i = n; i-- > 0;)
        if (chain[i]->block)
            aicp_task_update_from(v, chain[i]->block->role_defaults);
    aicp_task_update_from(v, h->inv_vars);
    json_object_set(v, "ansible_facts", h->facts);
    const char *k;
    json_t *val;
    json_object_foreach(h->facts, k, val) {
        char key[256];
        snprintf(key, sizeof(key), "ansible_%s", k);
        json_object_set(v, key, val);
    }
    aicp_task_update_from(v, r->play_vars);
    for (size_t i = n; i-- > 0;) {
        if (chain[i]->block)
            aicp_task_update_from(v, chain[i]->block->vars);
        if (chain[i]->item_var)
            json_object_set(v, chain[i]->item_var, chain[i]->item);
    }
    if (t)
        aicp_task_update_from(v, t->vars);
    aicp_task_update_from(v, h->set_vars);
    aicp_task_update_from(v, r->opts->extra_vars);
    json_object_set(v, "hostvars", r->hostvars);
    json_object_set(v, "play_hosts", r->play_hosts);
    json_object_set(v, "ansible_play_hosts", r->play_hosts);
    json_object_set(v, "ansible_play_batch", r->play_hosts);
    json_object_set_new(v, "ansible_check_mode", json_boolean(r->opts->check));
    json_object_set_new(v, "ansible_diff_mode", json_boolean(r->opts->diff));
    json_object_set_new(v, "playbook_dir", json_string(r->pb->dir));
    json_object_set_new(v, "ansible_play_name", json_string(r->play->name ? r->play->name : ""));
    json_object_set_new(v, "omit", json_string(AICP_OMIT_TOKEN));
    json_object_set_new(v, "ansible_verbosity", json_integer(r->opts->verbose));
    return v;
}

/* Template errors at run time name the task, as the ones found before the
 * run do. */
static void where_prefix(const struct aicp_task *t, struct aicp_err *err)
{
    char w[1024];
    aicp_task_where(t, w, sizeof(w));
    aicp_err_prefix(err, "%s", w);
}

/* The task's `environment` (play, then blocks outer to inner, then the
 * task), rendered, as export lines for the connection's prelude. *out is
 * NULL when there is none. */
static int env_prelude(char **out, const struct run *r, const struct aicp_task *t,
                       const struct scope *sc, const json_t *vars, struct aicp_err *err)
{
    const json_t *layers[66];
    size_t n = 0;
    *out = NULL;
    if (t->environment)
        layers[n++] = t->environment;
    for (const struct scope *s = sc; s && n < 64; s = s->parent)
        if (s->block && s->block->environment)
            layers[n++] = s->block->environment;
    if (r->play->environment)
        layers[n++] = r->play->environment;
    if (n == 0)
        return 0;
    return aicp_task_env_prelude(out, layers, n, vars, err);
}

/* The user a task becomes: ansible_become_user (from the inventory or the
 * become_user keyword), else root. */
static const char *become_user_of(const json_t *vars)
{
    const char *u = json_string_value(json_object_get(vars, "ansible_become_user"));
    return u && *u ? u : "root";
}

static int holds_secret(const struct aicp_secrets *secrets, const json_t *v)
{
    const char *k;
    json_t *x;
    size_t i;

    if (json_is_string(v))
        return aicp_secrets_found(secrets, json_string_value(v), json_string_length(v));
    json_object_foreach((json_t *)v, k, x) {
        if (holds_secret(secrets, x))
            return 1;
    }
    json_array_foreach(v, i, x) {
        if (holds_secret(secrets, x))
            return 1;
    }
    return 0;
}

/* Registers the values of the arguments the module marks secret, and says
 * whether the call handles a secret at all (a secret argument, or any
 * argument holding a value already known to be secret, e.g. from a vault):
 * then its diff may show that something changed, never what. */
static int secret_call(struct aicp_secrets *secrets, const struct aicp_args *args)
{
    const char *k;
    json_t *v;
    int found = 0;

    /* A credential (an API password) is masked like any secret, but it is
     * not what the task changes, so it does not hide the diff. */
    json_object_foreach(args->v, k, v) {
        int credential = aicp_arg_is_credential(args->mod, k);
        if (aicp_arg_is_secret(args->mod, k) || credential) {
            aicp_secrets_add_json(secrets, v);
            found |= !credential;
        } else {
            found |= holds_secret(secrets, v);
        }
    }
    return found;
}


/* Runs one module invocation (one loop item) and fills o. */
static void run_module_call(struct job *j, const json_t *vars, int check, int become, struct outcome *o)
{
    const struct aicp_task *t = j->t;
    const struct aicp_module *mod = t->mod;
    struct aicp_err err = {0};
    struct aicp_args args = {0};
    struct aicp_change *change = NULL;
    json_t *rendered = NULL, *current = NULL;
    json_t *result = json_object();
    char dirbuf[1024];
    char *prelude = NULL;
    struct aicp_conn *prelude_conn = NULL;
    int ran_and_failed = 0;
    int rc;
    double t0 = aicp_now();

    o->st = AICP_ST_OK;
    if ((rc = aicp_tmpl_render(&rendered, t->args, vars, &err)) != 0) {
        where_prefix(t, &err);
        goto fail;
    }
    aicp_task_strip_omitted(rendered);
    if ((rc = aicp_args_validate(&args, mod, rendered, 0, &err)) != 0)
        goto fail;
    aicp_task_keep_explicit_nulls(&args, rendered);
    int secret = secret_call(j->r->opts->secrets, &args);
    /* A command line is every process's to read (ps): say so when a
     * secret is on one, as the operator can pass it on stdin instead. */
    if (secret && (mod->flags & AICP_MOD_NO_VERIFY) &&
        (holds_secret(j->r->opts->secrets, aicp_args_get(&args, "_raw_params")) ||
         holds_secret(j->r->opts->secrets, aicp_args_get(&args, "argv"))))
        json_object_set_new(result, "warnings",
                            json_pack("[s]", "a secret value is on this command line, where ps on "
                                             "the host shows it; pass it with stdin: or in the "
                                             "environment instead"));
    struct aicp_ctx ctx = {
        .host = j->h->name,
        .become = become,
        .vars = vars,
        .result = result,
        .kube = j->r->kube,
        .ontap = j->r->ontap,
        .run_id = j->r->run_id,
    };
    snprintf(dirbuf, sizeof(dirbuf), "%s", t->loc.file ? t->loc.file : ".");
    ctx.search_dir = dirname(dirbuf);
    if ((mod->flags & AICP_MOD_NEEDS_SSH) && t->delegate_to) {
        /* delegate_to: localhost runs on the jump host with the task's vars. */
        if (j->h->local == NULL) {
            struct aicp_conn_opts lo = {.name = "localhost", .local = 1};
            if ((rc = aicp_conn_open(&j->h->local, &lo, &err)) != 0)
                goto fail;
        }
        ctx.conn = j->h->local;
    } else if (mod->flags & AICP_MOD_NEEDS_SSH) {
        if (j->h->conn == NULL && j->h->conn_rc != 0) {
            rc = aicp_err_set(&err, j->h->conn_rc, "%s", j->h->conn_msg);
            o->st = AICP_ST_UNREACHABLE;
            goto fail;
        }
        if (j->h->conn == NULL &&
            (rc = aicp_hostconn_open(&j->h->conn, j->h->name, vars, &j->r->hostkeys, &err)) != 0) {
            o->st = AICP_ST_UNREACHABLE;
            goto fail;
        }
        ctx.conn = j->h->conn;
    }
    if (ctx.conn != NULL && become)
        aicp_conn_set_become_user(ctx.conn, become_user_of(vars));
    if (ctx.conn != NULL && (rc = aicp_task_expand_home(&args, ctx.conn, become, &err)) != 0)
        goto fail;
    if (ctx.conn != NULL) {
        if ((rc = env_prelude(&prelude, j->r, t, j->sc, vars, &err)) != 0) {
            where_prefix(t, &err);
            goto fail;
        }
        if (prelude != NULL) {
            aicp_conn_set_prelude(ctx.conn, prelude);
            prelude_conn = ctx.conn;
        }
    }
    if (mod->ops == NULL || mod->ops->check == NULL || mod->ops->diff == NULL) {
        rc = aicp_err_set(&err, AICP_EFAILED, "module '%s' is not implemented", mod->name);
        goto fail;
    }
    if ((rc = mod->ops->check(&ctx, &args, &current, &err)) != 0)
        goto fail;
    if ((rc = mod->ops->diff(current, &args, &change, &err)) != 0)
        goto fail;
    o->diff_text = aicp_task_change_diff(change, secret);
    /* An empty before and after (a command's) says nothing: no diff key,
     * as Ansible's command module has none. */
    if ((json_object_size(change->before) || json_object_size(change->after) ||
         (change->before && !json_is_object(change->before)) ||
         (change->after && !json_is_object(change->after))) &&
        !secret)
        json_object_set_new(result, "diff", json_pack("{s:O?, s:O?}", "before", change->before,
                                                      "after", change->after));
    if (change->needed && check) {
        /* As Ansible's command module: without creates/removes a check
         * run cannot know, so it skips; with them it predicts a change. */
        if ((mod->flags & AICP_MOD_CHECK_SKIPS) && aicp_args_get(&args, "creates") == NULL &&
            aicp_args_get(&args, "removes") == NULL &&
            !json_is_true(json_object_get(change->plan, "check_mode_changed"))) {
            o->st = AICP_ST_SKIPPED;
            json_object_set_new(result, "msg", json_string("Command would have run if not in check mode"));
        } else {
            o->st = AICP_ST_CHANGED;
            aicp_task_update_from(result, json_object_get(change->plan, "result"));
            if (mod->flags & AICP_MOD_CHECK_SKIPS)
                json_object_set_new(result, "msg",
                                    json_string("Command would have run if not in check mode"));
        }
        if (mod->flags & AICP_MOD_CHECK_SKIPS)
            aicp_task_unrun_command_keys(result, change->plan, check);
    } else if (!change->needed && (mod->flags & AICP_MOD_CHECK_SKIPS)) {
        aicp_task_unrun_command_keys(result, change->plan, check);
    } else if (change->needed) {
        change->args = &args;
        int wrote = 0;
        rc = aicp_task_apply(mod, &ctx, change, result, &wrote, &err);
        /* A command that ran and failed still ran: Ansible reports it
         * changed (and counts it when the failure is ignored); so does a
         * module that wrote and then failed. */
        if (rc != 0 && ((mod->flags & AICP_MOD_NO_VERIFY) || wrote))
            ran_and_failed = 1;
        if (rc != 0)
            goto fail;
        o->st = AICP_ST_CHANGED;
        if ((rc = aicp_task_verify(mod, &ctx, &args, change, &err)) != 0)
            goto fail;
    }
    rc = 0;
fail:
    if (rc != 0) {
        /* A connection that dies under a module makes the host unreachable,
         * not the task failed. */
        if (rc == AICP_EUNREACHABLE)
            o->st = AICP_ST_UNREACHABLE;
        if (o->st != AICP_ST_UNREACHABLE)
            o->st = AICP_ST_FAILED;
        json_object_set_new(result, "msg", json_string(err.msg));
        if (o->st == AICP_ST_UNREACHABLE)
            json_object_set_new(result, "unreachable", json_true());
    }
    json_object_set_new(result, "changed", json_boolean(o->st == AICP_ST_CHANGED || ran_and_failed));
    /* Ansible's results always say whether they failed (`when: not
     * r.failed`), except an unreachable host's. */
    if (o->st != AICP_ST_UNREACHABLE)
        json_object_set_new(result, "failed", json_boolean(o->st == AICP_ST_FAILED));
    if (o->st == AICP_ST_SKIPPED)
        json_object_set_new(result, "skipped", json_true());
    if (prelude_conn != NULL)
        aicp_conn_set_prelude(prelude_conn, NULL);
    aicp_free_secret(prelude);
    o->result = result;
    o->secs = aicp_now() - t0;
    json_decref(rendered);
    json_decref(current);
    aicp_change_free(change);
    aicp_args_clear(&args);
}

/* changed_when / failed_when, with the result visible under its register
 * name as Ansible makes it. */
static void apply_conditions(struct job *j, json_t *vars, struct outcome *o)
{
    const struct aicp_task *t = j->t;
    if (o->st == AICP_ST_SKIPPED || o->st == AICP_ST_UNREACHABLE)
        return;
    if (t->changed_when == NULL && t->failed_when == NULL)
        return;
    struct aicp_err err = {0};
    if (t->register_as)
        json_object_set(vars, t->register_as, o->result);
    int b;
    if (t->changed_when) {
        if (aicp_task_conditions(&b, t->changed_when, vars, &err) != 0)
            goto fail;
        if (o->st != AICP_ST_FAILED)
            o->st = b ? AICP_ST_CHANGED : AICP_ST_OK;
        json_object_set_new(o->result, "changed", json_boolean(b));
    }
    if (t->failed_when) {
        if (aicp_task_conditions(&b, t->failed_when, vars, &err) != 0)
            goto fail;
        json_object_set_new(o->result, "failed_when_result", json_boolean(b));
        if (b) {
            o->st = AICP_ST_FAILED;
            json_object_set_new(o->result, "failed", json_true());
        } else {
            json_object_set_new(o->result, "failed", json_false());
            if (o->st == AICP_ST_FAILED)
                o->st = json_is_true(json_object_get(o->result, "changed")) ? AICP_ST_CHANGED
                                                                           : AICP_ST_OK;
        }
    }
    return;
fail:
    o->st = AICP_ST_FAILED;
    json_object_set_new(o->result, "failed", json_true());
    json_object_set_new(o->result, "msg", json_string(err.msg));
}

static char *item_label(const struct aicp_task *t, const json_t *vars, const json_t *item)
{
    json_t *label = NULL;
    char *s = NULL;
    if (t->loop_label && json_is_string(t->loop_label))
        aicp_tmpl_render_str(&label, json_string_value(t->loop_label), vars, NULL);
    if (aicp_tmpl_to_string(&s, label ? label : item) != 0)
        s = aicp_strdup("?");
    json_decref(label);
    return s;
}

/* Whether a task runs under become on a host; sets ansible_become_user in
 * vars. As in Ansible, connection variables from the inventory win over the
 * become keywords. */
static int task_become(const struct run *r, const struct aicp_task *t, const struct scope *sc,
                       json_t *vars)
{
    int become =
        aicp_executor_inherit_int(t, sc, offsetof(struct aicp_task, become), r->play->become);
    const json_t *bvar = json_object_get(vars, "ansible_become");
    if (bvar != NULL && !json_is_null(bvar)) {
        json_t *bv = NULL;
        if (json_is_string(bvar) && aicp_tmpl_is_template(json_string_value(bvar)) &&
            aicp_tmpl_render_str(&bv, json_string_value(bvar), vars, NULL) == 0)
            become = aicp_task_bool(bv);
        else
            become = aicp_task_bool(bvar);
        json_decref(bv);
    }
    const char *buser = inherit_become_user(r, t, sc);
    if (buser && json_object_get(vars, "ansible_become_user") == NULL)
        json_object_set_new(vars, "ansible_become_user", json_string(buser));
    return become;
}

/* Reads ahead: runs the check of every task in the job's window in record
 * mode, then sends all the recorded reads to the host in one round trip.
 * Each task's real check later gets its answer without touching the
 * network, unless something ran in between (see aicp_conn_record_run). A
 * task whose arguments cannot be rendered yet (a register of an earlier
 * task) is simply left out. */
static void prefetch(struct job *j)
{
    struct run *r = j->r;
    struct host *h = j->h;
    struct aicp_err err = {0};
    if (h->conn == NULL) {
        json_t *vars = aicp_executor_task_vars(r, h, j->t, j->sc);
        int rc = aicp_hostconn_open(&h->conn, h->name, vars, &r->hostkeys, &err);
        json_decref(vars);
        if (rc != 0) {
            h->conn_rc = rc;
            snprintf(h->conn_msg, sizeof(h->conn_msg), "%s", err.msg);
            return;
        }
    }
    aicp_conn_record_start(h->conn);
    for (size_t i = 0; i < j->nwindow; i++) {
        const struct aicp_task *w = j->window[i];
        if (!(w->mod->flags & AICP_MOD_NEEDS_SSH) || w->mod->ops == NULL)
            continue;
        json_t *vars = aicp_executor_task_vars(r, h, w, j->sc), *rendered = NULL, *current = NULL;
        struct aicp_args args = {0};
        int become = task_become(r, w, j->sc, vars);
        if (aicp_tmpl_render(&rendered, w->args, vars, &err) == 0) {
            aicp_task_strip_omitted(rendered);
            if (become)
                aicp_conn_set_become_user(h->conn, become_user_of(vars));
            if (aicp_args_validate(&args, w->mod, rendered, 0, &err) == 0 &&
                aicp_task_expand_home(&args, h->conn, become, &err) == 0) {
                char dirbuf[1024];
                snprintf(dirbuf, sizeof(dirbuf), "%s", w->loc.file ? w->loc.file : ".");
                struct aicp_ctx ctx = {.conn = h->conn, .host = h->name, .become = become,
                                       .vars = vars, .search_dir = dirname(dirbuf),
                                       .result = json_object()};
                char *prelude = NULL;
                if (env_prelude(&prelude, r, w, j->sc, vars, &err) == 0) {
                    aicp_conn_set_prelude(h->conn, prelude);
                    /* Recording makes the check fail; whatever it built goes. */
                    w->mod->ops->check(&ctx, &args, &current, &err);
                    json_decref(current);
                    current = NULL;
                    aicp_conn_set_prelude(h->conn, NULL);
                }
                aicp_free_secret(prelude);
                json_decref(ctx.result);
            }
            aicp_args_clear(&args);
        }
        json_decref(rendered);
        json_decref(vars);
    }
    /* A transport failure marks the connection dead; the task reports it. */
    aicp_conn_record_run(h->conn, &err);
}

void aicp_executor_run_job(struct job *j)
{
    struct run *r = j->r;
    const struct aicp_task *t = j->t;
    struct aicp_err err = {0};
    json_t *vars = aicp_executor_task_vars(r, j->h, t, j->sc);
    json_t *items = NULL, *loop_facts = NULL;
    int check = aicp_executor_inherit_int(t, j->sc, offsetof(struct aicp_task, check_mode), -1);
    if (check < 0)
        check = r->play->check_mode >= 0 ? r->play->check_mode : r->opts->check;
    int become = task_become(r, t, j->sc, vars);
    int no_log = aicp_executor_inherit_int(t, j->sc, offsetof(struct aicp_task, no_log), 0);
    json_object_set_new(vars, "ansible_check_mode", json_boolean(check));

    if (j->nwindow)
        prefetch(j);

    j->total.no_log = no_log;
    if (t->loop) {
        j->is_loop = 1;
        int lrc = json_is_string(t->loop)
                      ? aicp_tmpl_render_str(&items, json_string_value(t->loop), vars, &err)
                      : aicp_tmpl_render(&items, t->loop, vars, &err);
        if (lrc != 0) {
            where_prefix(t, &err);
            goto fail;
        }
        json_t *list = aicp_task_loop_items(items);
        if (list == NULL) {
            aicp_err_set(&err, AICP_EINVAL,
                         "Invalid data passed to 'loop', it requires a list, got this instead: %s",
                         json_is_string(items) ? json_string_value(items) : "a non-list value");
            goto fail;
        }
        json_decref(items);
        items = list;
    } else {
        items = json_pack("[n]");
    }
    size_t n = json_array_size(items);
    j->items = calloc(n ? n : 1, sizeof(*j->items));
    if (j->items == NULL)
        goto fail;
    j->nitems = n;
    const char *lv = t->loop_var ? t->loop_var : "item";
    int any_changed = 0, any_failed = 0, all_skipped = n > 0;
    json_t *results = json_array();
    for (size_t i = 0; i < n; i++) {
        struct outcome *o = &j->items[i];
        json_t *item = json_array_get(items, i);
        o->no_log = no_log;
        if (j->is_loop) {
            json_object_set(vars, lv, item);
            json_object_set_new(vars, "ansible_loop_var", json_string(lv));
            if (t->index_var)
                json_object_set_new(vars, t->index_var, json_integer((json_int_t)i));
            o->label = item_label(t, vars, item);
        }
        /* A block's `when` applies to every task in it and, as in
         * Ansible, is evaluated before the task's own: outermost block
         * first, so `w is defined` on a block guards `w == 2` inside. */
        const struct scope *outer[32];
        size_t nouter = 0;
        for (const struct scope *s = j->sc; s && nouter < 32; s = s->parent)
            if (s->block)
                outer[nouter++] = s;
        int ok = 1, rc = 0;
        while (rc == 0 && ok && nouter > 0)
            rc = aicp_task_conditions(&ok, outer[--nouter]->block->when, vars, &err);
        if (rc == 0 && ok)
            rc = aicp_task_conditions(&ok, t->when, vars, &err);
        if (rc != 0) {
            where_prefix(t, &err);
            o->st = AICP_ST_FAILED;
            o->result = json_pack("{s:b, s:b, s:s}", "failed", 1, "changed", 0, "msg", err.msg);
        } else if (!ok) {
            o->st = AICP_ST_SKIPPED;
            o->result = json_pack("{s:b, s:b, s:s, s:s}", "changed", 0, "skipped", 1,
                                  "skip_reason", "Conditional result was False", "false_condition",
                                  json_is_string(json_array_get(t->when, 0))
                                      ? json_string_value(json_array_get(t->when, 0))
                                      : "False");
        } else {
            run_module_call(j, vars, check, become, o);
            apply_conditions(j, vars, o);
            /* debug and assert results always show, as Ansible's
             * _ansible_verbose_always does (debug without "changed"). */
            if (strcmp(t->mod->name, "debug") == 0 && o->st != AICP_ST_SKIPPED) {
                if (o->st == AICP_ST_OK && json_is_true(json_object_get(o->result, "skipped")))
                    o->st = AICP_ST_SKIPPED;
                else
                    json_object_set_new(o->result, "_aicp_show", json_integer(1));
            } else if (strcmp(t->mod->name, "assert") == 0 && o->st == AICP_ST_OK) {
                json_object_set_new(o->result, "_aicp_show", json_integer(2));
            }
        }
        if (j->is_loop) {
            json_object_set(o->result, lv, item);
            json_object_set_new(o->result, "ansible_loop_var", json_string(lv));
        }
        json_array_append(results, o->result);
        /* set_fact in a loop: each item sees the facts set by the ones
         * before it, and the task sets them all (Ansible's accumulating
         * idiom `x: "{{ x | default([]) + [item] }}"`). */
        json_t *facts = json_object_get(o->result, "ansible_facts");
        if (j->is_loop && json_is_object(facts) && o->st != AICP_ST_FAILED) {
            json_object_update(vars, facts);
            if (loop_facts == NULL)
                loop_facts = json_object();
            json_object_update(loop_facts, facts);
        }
        if (o->st != AICP_ST_SKIPPED)
            all_skipped = 0;
        if (o->st == AICP_ST_CHANGED)
            any_changed = 1;
        if (o->st == AICP_ST_FAILED)
            any_failed = 1;
        if (o->st == AICP_ST_UNREACHABLE) {
            j->total.st = AICP_ST_UNREACHABLE;
            j->total.result = json_deep_copy(o->result);
            break;
        }
    }
    if (j->total.st == AICP_ST_UNREACHABLE) {
        json_decref(results);
    } else if (!j->is_loop) {
        j->total.st = j->items[0].st;
        j->total.result = json_incref(j->items[0].result);
        json_decref(results);
    } else {
        /* Ansible's loop result: "skipped" always, "failed" only when
         * an item failed; no items at all is a skip. */
        all_skipped |= n == 0;
        j->total.st = any_failed ? AICP_ST_FAILED
                      : all_skipped ? AICP_ST_SKIPPED
                      : any_changed ? AICP_ST_CHANGED
                                    : AICP_ST_OK;
        j->total.result = json_pack("{s:o, s:b, s:b}", "results", results, "changed", any_changed,
                                    "skipped", all_skipped);
        if (any_failed)
            json_object_set_new(j->total.result, "failed", json_true());
        if (n == 0)
            json_object_set_new(j->total.result, "skipped_reason",
                                json_string("No items in the list"));
        else
            json_object_set_new(j->total.result, "msg",
                                json_string(all_skipped  ? "All items skipped"
                                            : any_failed ? "One or more items failed"
                                                         : "All items completed"));
        if (loop_facts != NULL)
            json_object_set(j->total.result, "ansible_facts", loop_facts);
    }
    goto out;
fail:
    j->total.st = AICP_ST_FAILED;
    j->total.result = json_pack("{s:b, s:b, s:s}", "failed", 1, "changed", 0, "msg", err.msg);
out:
    if (j->total.st == AICP_ST_FAILED && t->ignore_errors) {
        int ig = 0;
        if (json_is_string(t->ignore_errors))
            aicp_tmpl_eval_bool(&ig, json_string_value(t->ignore_errors), vars, NULL);
        else
            ig = aicp_task_bool(t->ignore_errors);
        j->total.ignored = ig;
    }
    json_decref(loop_facts);
    json_decref(items);
    json_decref(vars);
}

/* ---- fan-out ----------------------------------------------------------- */

struct pool {
    struct job *jobs;
    size_t n;
    atomic_size_t next;
    void (*fn)(struct job *);
};

static void *pool_worker(void *arg)
{
    struct pool *p = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n)
            break;
        p->fn(&p->jobs[i]);
    }
    return NULL;
}

void aicp_executor_pool_run(struct run *r, struct job *jobs, size_t n, void (*fn)(struct job *))
{
    struct pool p = {.jobs = jobs, .n = n, .fn = fn};
    atomic_init(&p.next, 0);
    size_t nthreads = (size_t)(r->opts->forks > 0 ? r->opts->forks : 20);
    if (nthreads > n)
        nthreads = n;
    if (nthreads <= 1) {
        pool_worker(&p);
        return;
    }
    pthread_t *tids = calloc(nthreads, sizeof(*tids));
    size_t started = 0;
    for (; tids && started < nthreads; started++)
        if (pthread_create(&tids[started], NULL, pool_worker, &p) != 0)
            break;
    pool_worker(&p); /* the caller helps, and carries on alone if no thread started */
    for (size_t i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    free(tids);
}
