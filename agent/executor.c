/* The executor. A playbook run walks each play's task tree once for all of
 * the play's hosts (Ansible's linear strategy): for every task it fans the
 * hosts out over a bounded pool of worker threads, each worker running
 * check -> diff -> (apply -> verify) for one host on that host's own
 * connection, then joins them and prints the results in inventory order.
 * Blocks narrow the set of hosts as they fail; rescue and always take them
 * back. Variables are layered per task in Ansible's precedence order. */
#include "config.h"

#include <errno.h>
#include <libgen.h>
#include <pthread.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "err.h"
#include "executor.h"
#include "facts.h"
#include "hostconn.h"
#include "http.h"
#include "kube.h"
#include "ontap.h"
#include "fileutil.h"
#include "inventory.h"
#include "module.h"
#include "output.h"
#include "playbook.h"
#include "precheck.h"
#include "secret.h"
#include "tags.h"
#include "taskutil.h"
#include "template.h"
#include "util.h"
#include "yaml.h"


struct host {
    char *name;
    json_t *inv_vars;      /* inventory vars incl. magic vars */
    json_t *facts;         /* ansible_facts (no prefix) */
    json_t *set_vars;      /* registered results and set_fact values */
    json_t *view;          /* hostvars[name]: inv_vars + facts + set_vars */
    struct aicp_conn *conn;
    struct aicp_conn *local;  /* the jump host, for tasks delegated to localhost */
    int conn_rc;           /* connecting failed (when conn is NULL): the code and why */
    char conn_msg[sizeof(((struct aicp_err *)0)->msg)];
    int unreachable;       /* for the rest of the run */
    int failed;            /* for the rest of the run */
    int ended;             /* end_host / end_play / any_errors_fatal: this play only */
    int in_play;           /* selected by the current play */
    int in_batch;          /* in the current serial batch (even when down since an earlier play) */
    int down_before;       /* failed or unreachable before this batch began */
    int batch_failed;      /* failed for good in this batch: max_fail_percentage counts it */
    int seen;              /* appears in the recap */
    struct aicp_stats st;
    json_t *notified;      /* handler name -> true */
    char unreach_msg[768];
};

struct scope {
    const struct scope *parent;
    const struct aicp_task *block;  /* NULL at play level */
    int rescuable;                  /* inside the block part of a block with rescue */
    int always_next;                /* a failure here still runs an always section */
    const char *item_var;           /* include_tasks loop binding */
    json_t *item;
};

struct run {
    const struct aicp_run_opts *opts;
    struct aicp_inventory *inv;
    struct aicp_srcmap *invmap;
    struct aicp_playbook *pb;
    struct aicp_output *out;
    struct host *hosts;
    size_t nhosts;
    json_t *hostvars;       /* name -> host view */
    const struct aicp_play *play;
    json_t *play_vars;      /* play vars + vars_files */
    json_t *play_hosts;     /* names in the current batch */
    int play_ended;
    int stopped;            /* any_errors_fatal or max_fail_percentage fired, or a whole
                             * batch failed: no later batch or play runs (Ansible's
                             * break_play) */
    int any_changed;
    unsigned clear_epoch;   /* bumped by meta: clear_host_errors */
    struct aicp_hostkey_policy hostkeys;
    struct aicp_http *http;        /* the API clients' HTTPS client */
    struct aicp_kube_pool *kube;   /* Kubernetes clients, made when a module asks */
    struct aicp_ontap_pool *ontap; /* ONTAP clients, likewise */
    char run_id[64];               /* provenance of what this run creates */
};

/* One host's outcome for one task (items: per loop item). */
struct outcome {
    enum aicp_status st;
    json_t *result;
    char *diff_text;
    char *label;
    int ignored;
    int no_log;
    double secs;
};

struct job {
    struct run *r;
    const struct aicp_task *t;
    const struct scope *sc;
    struct host *h;
    struct outcome *items;  /* one per loop item, or one */
    size_t nitems;
    struct outcome total;   /* what the task as a whole did */
    int is_loop;
    const struct aicp_task *const *window; /* tasks whose reads go out with this one's */
    size_t nwindow;
};

/* ---- small helpers ------------------------------------------------------ */

static void outcome_clear(struct outcome *o)
{
    json_decref(o->result);
    free(o->diff_text);
    free(o->label);
    memset(o, 0, sizeof(*o));
}

static void update_from(json_t *dst, const json_t *src)
{
    if (json_is_object(src))
        json_object_update(dst, (json_t *)src);
}

/* Tasks inherit from their enclosing blocks, innermost first. */
static int inherit_int(const struct aicp_task *t, const struct scope *sc, size_t off, int dflt)
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

static void collect_tags(json_t *acc, const struct run *r, const struct aicp_task *t,
                         const struct scope *sc)
{
    json_array_extend(acc, t->tags);
    for (; sc; sc = sc->parent)
        if (sc->block)
            json_array_extend(acc, sc->block->tags);
    json_array_extend(acc, r->play->tags);
}

static const char *task_display_name(const struct aicp_task *t)
{
    if (t->name)
        return t->name;
    if (t->action)
        return t->action;
    return t->kind == AICP_TASK_BLOCK ? "block" : "task";
}

static void host_refresh_view(struct run *r, struct host *h)
{
    json_t *v = json_object();
    if (v == NULL)
        return;
    update_from(v, h->inv_vars);
    if (json_object_size(h->facts)) {
        const char *k;
        json_t *val;
        json_object_foreach(h->facts, k, val) {
            char key[256];
            snprintf(key, sizeof(key), "ansible_%s", k);
            json_object_set(v, key, val);
        }
        json_object_set(v, "ansible_facts", h->facts);
    }
    update_from(v, h->set_vars);
    json_decref(h->view);
    h->view = v;
    json_object_set(r->hostvars, h->name, v);
}

/* The variables a task sees on a host, lowest precedence first. */
static json_t *task_vars(const struct run *r, const struct host *h, const struct aicp_task *t,
                         const struct scope *sc)
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
            update_from(v, chain[i]->block->role_defaults);
    update_from(v, h->inv_vars);
    json_object_set(v, "ansible_facts", h->facts);
    const char *k;
    json_t *val;
    json_object_foreach(h->facts, k, val) {
        char key[256];
        snprintf(key, sizeof(key), "ansible_%s", k);
        json_object_set(v, key, val);
    }
    update_from(v, r->play_vars);
    for (size_t i = n; i-- > 0;) {
        if (chain[i]->block)
            update_from(v, chain[i]->block->vars);
        if (chain[i]->item_var)
            json_object_set(v, chain[i]->item_var, chain[i]->item);
    }
    if (t)
        update_from(v, t->vars);
    update_from(v, h->set_vars);
    update_from(v, r->opts->extra_vars);
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

#define SECRET_DIFF "(diff hidden: the change involves a secret value)\n"

/* Runs one module invocation (one loop item) and fills o. */
static void run_module_call(struct job *j, const json_t *vars, int check, int become, struct outcome *o)
{
    const struct aicp_task *t = j->t;
    const struct aicp_module *mod = t->mod;
    struct aicp_err err = {0};
    struct aicp_args args = {0};
    struct aicp_change *change = NULL, *again = NULL;
    json_t *rendered = NULL, *current = NULL, *current2 = NULL;
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
    if (secret)
        o->diff_text = change->needed ? aicp_strdup(SECRET_DIFF) : NULL;
    else if (change->diff_text)
        o->diff_text = aicp_strdup(change->diff_text);
    else
        o->diff_text = aicp_task_diff_text(change->before, change->after);
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
            update_from(result, json_object_get(change->plan, "result"));
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
        if (mod->ops->apply == NULL) {
            rc = aicp_err_set(&err, AICP_EFAILED, "module '%s' cannot make changes", mod->name);
            goto fail;
        }
        rc = mod->ops->apply(&ctx, change, &err);
        update_from(result, json_object_get(change->plan, "result"));
        /* A command that ran and failed still ran: Ansible reports it
         * changed (and counts it when the failure is ignored). */
        if (rc != 0 && (mod->flags & AICP_MOD_NO_VERIFY))
            ran_and_failed = 1;
        if (rc != 0)
            goto fail;
        o->st = AICP_ST_CHANGED;
        int no_verify = (mod->flags & AICP_MOD_NO_VERIFY) ||
                        json_is_true(json_object_get(change->plan, "no_verify"));
        if (!no_verify) {
            /* Verify: the state we just made must now read as converged.
             * The re-check refreshes the result keys (stat, mode...) too. */
            rc = mod->ops->check(&ctx, &args, &current2, &err);
            if (rc == 0)
                rc = mod->ops->diff(current2, &args, &again, &err);
            if (rc != 0)
                goto fail;
            if (again->needed) {
                rc = aicp_err_set(&err, AICP_EFAILED,
                                  "not idempotent: module '%s' still reports a difference after "
                                  "applying its change",
                                  mod->name);
                goto fail;
            }
        }
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
    json_decref(current2);
    aicp_change_free(change);
    aicp_change_free(again);
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
    int become = inherit_int(t, sc, offsetof(struct aicp_task, become), r->play->become);
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
        json_t *vars = task_vars(r, h, j->t, j->sc);
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
        json_t *vars = task_vars(r, h, w, j->sc), *rendered = NULL, *current = NULL;
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

static void run_job(struct job *j)
{
    struct run *r = j->r;
    const struct aicp_task *t = j->t;
    struct aicp_err err = {0};
    json_t *vars = task_vars(r, j->h, t, j->sc);
    json_t *items = NULL, *loop_facts = NULL;
    int check = inherit_int(t, j->sc, offsetof(struct aicp_task, check_mode), -1);
    if (check < 0)
        check = r->play->check_mode >= 0 ? r->play->check_mode : r->opts->check;
    int become = task_become(r, t, j->sc, vars);
    int no_log = inherit_int(t, j->sc, offsetof(struct aicp_task, no_log), 0);
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

static void pool_run(struct run *r, struct job *jobs, size_t n, void (*fn)(struct job *))
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

/* ---- the task tree ----------------------------------------------------- */

static int host_active(const struct host *h)
{
    return h->in_play && !h->unreachable && !h->failed && !h->ended;
}

/* A failure that a rescue or always section of an enclosing block still
 * handles: for Ansible the host is not failed yet, so any_errors_fatal and
 * max_fail_percentage do not see it. */
static int failure_handled(const struct scope *sc)
{
    for (; sc; sc = sc->parent)
        if (sc->rescuable || sc->always_next)
            return 1;
    return 0;
}

static void record(struct run *r, struct job *j)
{
    const struct aicp_task *t = j->t;
    struct host *h = j->h;
    if (j->is_loop && j->total.st != AICP_ST_UNREACHABLE && j->nitems > 0) {
        for (size_t i = 0; i < j->nitems; i++) {
            struct outcome *o = &j->items[i];
            aicp_output_result(r->out, h->name, o->st, o->result, o->label ? o->label : "",
                               o->diff_text, o->no_log, 0, o->secs);
        }
        /* As Ansible: a failed loop shows its items, then "...ignoring"
         * when ignored, and no fatal line of its own -- except debug, whose
         * cleaned result loses its items (Ansible's callback quirk). */
        if (j->total.st == AICP_ST_FAILED && strcmp(t->mod->name, "debug") == 0) {
            json_t *m = json_pack("{s:s}", "msg", "One or more items failed");
            aicp_output_result(r->out, h->name, AICP_ST_FAILED, m, NULL, NULL, j->total.no_log,
                               j->total.ignored, 0);
            json_decref(m);
        } else if (j->total.st == AICP_ST_FAILED && j->total.ignored) {
            aicp_output_ignoring(r->out);
        }
    } else {
        struct outcome *o = j->nitems ? &j->items[0] : &j->total;
        aicp_output_result(r->out, h->name, j->total.st, j->total.result, NULL, o->diff_text,
                           j->total.no_log, j->total.ignored, o->secs);
    }
    switch (j->total.st) {
    case AICP_ST_OK: h->st.ok++; break;
    case AICP_ST_CHANGED:
        h->st.ok++;
        h->st.changed++;
        r->any_changed = 1;
        break;
    case AICP_ST_SKIPPED: h->st.skipped++; break;
    case AICP_ST_UNREACHABLE:
        h->st.unreachable++;
        h->unreachable = 1;
        break;
    case AICP_ST_FAILED:
        if (j->total.ignored) {
            h->st.ok++;
            h->st.ignored++;
            if (json_is_true(json_object_get(j->total.result, "changed"))) {
                h->st.changed++;
                r->any_changed = 1;
            }
        } else {
            h->failed = 1;
            int rescuable = 0;
            for (const struct scope *s = j->sc; s; s = s->parent)
                rescuable |= s->rescuable;
            if (!rescuable)
                h->st.failed++;
            if (!failure_handled(j->sc))
                h->batch_failed = 1;
            /* What a rescue section sees of the failure, as in Ansible. */
            json_object_set(h->set_vars, "ansible_failed_result", j->total.result);
            json_object_set_new(h->set_vars, "ansible_failed_task",
                                json_pack("{s:s, s:s}", "name", t->name ? t->name : "",
                                          "action", t->action ? t->action : ""));
        }
        break;
    }
    json_object_del(j->total.result, "_aicp_show");
    size_t k;
    json_t *each;
    json_array_foreach(json_object_get(j->total.result, "results"), k, each) {
        json_object_del(each, "_aicp_show");
    }
    if (t->register_as && j->total.result)
        json_object_set(h->set_vars, t->register_as, j->total.result);
    /* set_fact results and gathered facts come back as ansible_facts. */
    json_t *facts = json_object_get(j->total.result, "ansible_facts");
    if (j->total.st != AICP_ST_FAILED && json_is_object(facts) && t->mod &&
        strcmp(t->mod->name, "set_fact") == 0)
        json_object_update(h->set_vars, facts);
    else if (j->total.st != AICP_ST_FAILED && json_is_object(facts) && t->mod)
        update_from(h->facts, facts); /* a facts module (gpu_facts): ansible_facts.<name> */
    if ((j->total.st == AICP_ST_CHANGED) && t->notify) {
        size_t i;
        json_t *n;
        json_array_foreach(t->notify, i, n) {
            if (json_is_string(n))
                json_object_set_new(h->notified, json_string_value(n), json_true());
        }
    }
    host_refresh_view(r, h);
}

static int run_list(struct run *r, const struct aicp_task_list *l, const struct scope *sc,
                    const char *kind);
static void flush_handlers(struct run *r);

/* "TASK [ROLE : name]" as Ansible prints it; a templated name is rendered
 * with the first host's variables (loop variables of includes too). */
static void print_task_banner(struct run *r, const struct aicp_task *t, const struct scope *sc,
                              const char *kind)
{
    const char *name = task_display_name(t);
    const char *role = NULL;
    json_t *rendered = NULL;
    if (t->role_path)
        role = t->role_path;
    for (const struct scope *s = sc; s && role == NULL; s = s->parent)
        if (s->block && s->block->role_path)
            role = s->block->role_path;
    if (aicp_tmpl_is_template(name)) {
        struct host *first = NULL;
        for (size_t i = 0; i < r->nhosts && first == NULL; i++)
            if (host_active(&r->hosts[i]))
                first = &r->hosts[i];
        json_t *vars = first ? task_vars(r, first, t, sc) : json_incref(r->play_vars);
        if (aicp_tmpl_render_str(&rendered, name, vars, NULL) == 0 && json_is_string(rendered))
            name = json_string_value(rendered);
        json_decref(vars);
    }
    struct aicp_buf b = AICP_BUF_INIT;
    if (role) {
        const char *slash = strrchr(role, '/');
        aicp_buf_printf(&b, "%s : ", slash ? slash + 1 : role);
    }
    aicp_buf_puts(&b, name);
    aicp_output_task(r->out, kind, b.data, 0);
    aicp_buf_free(&b);
    json_decref(rendered);
}

static int any_fatal(const struct run *r, const struct aicp_task *t, const struct scope *sc)
{
    return inherit_int(t, sc, offsetof(struct aicp_task, any_errors_fatal), r->play->any_errors_fatal);
}

/* What Ansible's linear strategy checks after each task. any_errors_fatal:
 * a failure (one no rescue or always handles) or an unreachable host ends
 * the play for every host of the batch and, after the play, the playbook.
 * max_fail_percentage: more of the batch failed than allowed ends both at
 * once. Either way the hosts that did not fail are not counted failed.
 * fatal is the task's any_errors_fatal; hard and unreachable count its
 * hosts that failed (unhandled) and were unreachable. */
static void after_task(struct run *r, int fatal, const struct scope *sc, size_t hard,
                       size_t unreachable)
{
    if (fatal && (hard || unreachable)) {
        int handled = failure_handled(sc), pending = 0;
        for (size_t i = 0; i < r->nhosts; i++) {
            struct host *h = &r->hosts[i];
            if (!h->in_batch || h->unreachable)
                continue;
            if (!h->failed)
                h->ended = 1;
            else if (handled && !h->down_before && !h->batch_failed)
                pending = 1; /* still goes through its rescue or always */
        }
        r->stopped = 1;
        if (!pending)
            aicp_output_no_more_hosts(r->out);
    }
    int pct = r->play->max_fail_percentage;
    if (pct >= 0 && !r->play_ended) {
        size_t nfailed = 0, size = 0;
        for (size_t i = 0; i < r->nhosts; i++) {
            size += r->hosts[i].in_batch != 0;
            nfailed += r->hosts[i].in_batch && r->hosts[i].batch_failed;
        }
        if (size && nfailed * 100 > (size_t)pct * size) {
            for (size_t i = 0; i < r->nhosts; i++)
                if (r->hosts[i].in_batch)
                    r->hosts[i].ended = 1;
            r->play_ended = 1;
            r->stopped = 1;
            /* Twice, as ansible-playbook prints it: once for the
             * percentage, once because no host is left. */
            aicp_output_no_more_hosts(r->out);
            aicp_output_no_more_hosts(r->out);
        }
    }
}

static void run_module_task(struct run *r, const struct aicp_task *t, const struct scope *sc,
                            const char *kind, const struct aicp_task *const *window,
                            size_t nwindow)
{
    size_t n = 0;
    int run_once = t->run_once > 0;
    for (const struct scope *s = sc; s && !run_once; s = s->parent)
        run_once = s->block && s->block->run_once > 0;
    struct job *jobs = calloc(r->nhosts ? r->nhosts : 1, sizeof(*jobs));
    if (jobs == NULL)
        return;
    for (size_t i = 0; i < r->nhosts; i++) {
        if (!host_active(&r->hosts[i]))
            continue;
        jobs[n++] = (struct job){.r = r, .t = t, .sc = sc, .h = &r->hosts[i], .window = window,
                                 .nwindow = nwindow};
        if (run_once)
            break;
    }
    if (n == 0) {
        free(jobs);
        return;
    }
    print_task_banner(r, t, sc, kind); /* no [CHECK MODE]: Ansible marks it only on request */
    pool_run(r, jobs, n, run_job);
    size_t hard = 0, unreachable = 0;
    int handled = failure_handled(sc);
    for (size_t i = 0; i < n; i++) {
        record(r, &jobs[i]);
        if (jobs[i].total.st == AICP_ST_FAILED && !jobs[i].total.ignored && !handled)
            hard++;
        if (jobs[i].total.st == AICP_ST_UNREACHABLE)
            unreachable++;
        for (size_t k = 0; k < jobs[i].nitems; k++)
            outcome_clear(&jobs[i].items[k]);
        free(jobs[i].items);
        outcome_clear(&jobs[i].total);
    }
    after_task(r, any_fatal(r, t, sc), sc, hard, unreachable);
    free(jobs);
}

static int any_active(const struct run *r)
{
    for (size_t i = 0; i < r->nhosts; i++)
        if (host_active(&r->hosts[i]))
            return 1;
    return 0;
}

static void run_meta(struct run *r, const struct aicp_task *t)
{
    const char *verb = t->action ? t->action : "noop";
    if (any_active(r))
        aicp_output_task(r->out, "TASK", t->name ? t->name : "meta", 0);
    if (strcmp(verb, "flush_handlers") == 0) {
        flush_handlers(r);
    } else if (strcmp(verb, "end_play") == 0) {
        for (size_t i = 0; i < r->nhosts; i++)
            if (host_active(&r->hosts[i]))
                r->hosts[i].ended = 1;
        r->play_ended = 1;
    } else if (strcmp(verb, "end_host") == 0) {
        for (size_t i = 0; i < r->nhosts; i++)
            if (host_active(&r->hosts[i]))
                r->hosts[i].ended = 1;
    } else if (strcmp(verb, "clear_host_errors") == 0) {
        r->clear_epoch++;
        for (size_t i = 0; i < r->nhosts; i++)
            if (r->hosts[i].in_play && !r->hosts[i].unreachable) {
                r->hosts[i].failed = 0;
                r->hosts[i].batch_failed = 0;
            }
    }
}


/* Block conditions and tags apply to every task inside; a block whose
 * `when` is false for a host skips the block for that host only. */
static void run_block(struct run *r, const struct aicp_task *b, const struct scope *sc, const char *kind)
{
    char *in = calloc(r->nhosts ? r->nhosts : 1, 1);
    char *failed_in_block = calloc(r->nhosts ? r->nhosts : 1, 1);
    if (in == NULL || failed_in_block == NULL)
        goto out;
    struct scope inner = {.parent = sc, .block = b, .rescuable = b->rescue.n > 0,
                          .always_next = b->always.n > 0};
    for (size_t i = 0; i < r->nhosts; i++)
        in[i] = (char)host_active(&r->hosts[i]);
    run_list(r, &b->block, &inner, kind);
    for (size_t i = 0; i < r->nhosts; i++)
        failed_in_block[i] = in[i] && r->hosts[i].failed && !r->hosts[i].unreachable;
    if (b->rescue.n) {
        int any = 0;
        for (size_t i = 0; i < r->nhosts; i++) {
            r->hosts[i].in_play = failed_in_block[i] ? 1 : 0;
            if (failed_in_block[i]) {
                r->hosts[i].failed = 0;
                any = 1;
            }
        }
        /* Only hosts that failed run the rescue section. */
        char *save_play = calloc(r->nhosts ? r->nhosts : 1, 1);
        if (save_play && any) {
            struct scope rs = {.parent = sc, .block = b, .always_next = b->always.n > 0};
            run_list(r, &b->rescue, &rs, kind);
            for (size_t i = 0; i < r->nhosts; i++)
                if (failed_in_block[i] && !r->hosts[i].failed && !r->hosts[i].unreachable)
                    r->hosts[i].st.rescued++;
        }
        free(save_play);
        for (size_t i = 0; i < r->nhosts; i++)
            r->hosts[i].in_play = in[i] || (r->hosts[i].in_play && !failed_in_block[i]) ? 1 : 0;
        for (size_t i = 0; i < r->nhosts; i++)
            if (in[i])
                r->hosts[i].in_play = 1;
    }
    if (b->always.n) {
        /* always runs for hosts that entered the block, failed or not. */
        char *was_failed = calloc(r->nhosts ? r->nhosts : 1, 1);
        if (was_failed) {
            for (size_t i = 0; i < r->nhosts; i++) {
                was_failed[i] = (char)r->hosts[i].failed;
                if (in[i] && !r->hosts[i].unreachable)
                    r->hosts[i].failed = 0;
            }
            struct scope as = {.parent = sc, .block = b};
            unsigned epoch = r->clear_epoch;
            run_list(r, &b->always, &as, kind);
            /* Hosts that failed before stay failed, unless always cleared
             * the errors. */
            for (size_t i = 0; i < r->nhosts && epoch == r->clear_epoch; i++)
                if (was_failed[i])
                    r->hosts[i].failed = 1;
            free(was_failed);
        }
    }
out:
    free(in);
    free(failed_in_block);
}

/* A task whose state can be read ahead with the tasks around it: a module
 * call on the host, once (a loop reads per item, and delegation reads
 * elsewhere). */
static int readable_ahead(const struct aicp_task *t)
{
    return t->kind == AICP_TASK_MODULE && t->loop == NULL && t->delegate_to == NULL;
}

#define READ_AHEAD_MAX 32

static int run_list(struct run *r, const struct aicp_task_list *l, const struct scope *sc, const char *kind)
{
    size_t window_end = 0;
    for (size_t i = 0; i < l->n && !r->play_ended && any_active(r); i++) {
        const struct aicp_task *t = l->items[i];
        json_t *tags = json_array();
        collect_tags(tags, r, t, sc);
        int selected = t->kind == AICP_TASK_BLOCK || t->kind == AICP_TASK_INCLUDE || aicp_tags_selected(tags, r->opts->tags, r->opts->skip_tags);
        json_decref(tags);
        if (!selected)
            continue;
        switch (t->kind) {
        case AICP_TASK_MODULE: {
            /* The first task of a run of such tasks reads the state of all of
             * them in one round trip per host. */
            const struct aicp_task *const *window = NULL;
            size_t nwindow = 0;
            if (i >= window_end && readable_ahead(t)) {
                size_t k = i;
                while (k < l->n && k - i < READ_AHEAD_MAX && readable_ahead(l->items[k]))
                    k++;
                window_end = k;
                if (k - i >= 2) {
                    window = (const struct aicp_task *const *)&l->items[i];
                    nwindow = k - i;
                }
            }
            run_module_task(r, t, sc, kind, window, nwindow);
            break;
        }
        case AICP_TASK_BLOCK:
            run_block(r, t, sc, kind);
            break;
        case AICP_TASK_INCLUDE: {
            json_t *items = NULL, *vars = NULL;
            struct host *first = NULL;
            for (size_t h = 0; h < r->nhosts && first == NULL; h++)
                if (host_active(&r->hosts[h]))
                    first = &r->hosts[h];
            if (first == NULL)
                break;
            vars = task_vars(r, first, t, sc);
            if (t->loop && json_is_string(t->loop))
                aicp_tmpl_render_str(&items, json_string_value(t->loop), vars, NULL);
            else if (t->loop)
                aicp_tmpl_render(&items, t->loop, vars, NULL);
            json_decref(vars);
            json_t *list = t->loop ? aicp_task_loop_items(items) : NULL;
            json_decref(items);
            items = list ? list : json_pack("[n]");
            /* As Ansible: the include's banner, an "included:" line per
             * item (counted ok for each host), then the tasks per item. */
            print_task_banner(r, t, sc, kind);
            struct aicp_buf hosts = AICP_BUF_INIT;
            for (size_t h = 0; h < r->nhosts; h++)
                if (host_active(&r->hosts[h]))
                    aicp_buf_printf(&hosts, "%s%s", hosts.len ? ", " : "", r->hosts[h].name);
            size_t k;
            json_t *item;
            json_array_foreach(items, k, item) {
                char *label = NULL;
                if (t->loop == NULL || aicp_tmpl_to_string(&label, item) != 0)
                    label = NULL;
                aicp_output_included(r->out, json_string_value(json_object_get(t->args, "file")),
                                     hosts.data ? hosts.data : "", label);
                free(label);
                for (size_t h = 0; h < r->nhosts; h++)
                    if (host_active(&r->hosts[h]))
                        r->hosts[h].st.ok++;
            }
            aicp_buf_free(&hosts);
            json_array_foreach(items, k, item) {
                struct scope is = {.parent = sc, .block = t,
                                   .item_var = t->loop ? (t->loop_var ? t->loop_var : "item") : NULL,
                                   .item = item};
                run_list(r, &t->block, &is, kind);
            }
            json_decref(items);
            break;
        }
        case AICP_TASK_META:
            run_meta(r, t);
            break;
        }
    }
    return 0;
}

static int handler_notified(const struct host *h, const struct aicp_task *t)
{
    if (t->name && json_object_get(h->notified, t->name))
        return 1;
    size_t i;
    json_t *topic;
    json_array_foreach(t->listen, i, topic) {
        if (json_is_string(topic) && json_object_get(h->notified, json_string_value(topic)))
            return 1;
    }
    return 0;
}

static const struct aicp_task *find_role_in(const struct aicp_task_list *l, const char *role_path)
{
    for (size_t i = 0; i < l->n; i++) {
        const struct aicp_task *t = l->items[i], *found;
        if (t->kind == AICP_TASK_BLOCK && t->role_path && strcmp(t->role_path, role_path) == 0)
            return t;
        if ((found = find_role_in(&t->block, role_path)) != NULL ||
            (found = find_role_in(&t->rescue, role_path)) != NULL ||
            (found = find_role_in(&t->always, role_path)) != NULL)
            return found;
    }
    return NULL;
}

/* The block a role became in this play (its vars and defaults). */
static const struct aicp_task *find_role_block(const struct aicp_play *p, const char *role_path)
{
    const struct aicp_task *t = find_role_in(&p->roles, role_path);
    if (t == NULL)
        t = find_role_in(&p->pre_tasks, role_path);
    if (t == NULL)
        t = find_role_in(&p->tasks, role_path);
    if (t == NULL)
        t = find_role_in(&p->post_tasks, role_path);
    return t;
}

static void flush_handlers(struct run *r)
{
    const struct aicp_task_list *hl = &r->play->handlers;
    for (size_t k = 0; k < hl->n; k++) {
        const struct aicp_task *t = hl->items[k];
        char *save = calloc(r->nhosts ? r->nhosts : 1, 1);
        if (save == NULL)
            return;
        int any = 0;
        for (size_t i = 0; i < r->nhosts; i++) {
            save[i] = (char)r->hosts[i].in_play;
            if (!handler_notified(&r->hosts[i], t))
                r->hosts[i].in_play = 0;
            else if (host_active(&r->hosts[i]))
                any = 1;
        }
        if (any) {
            struct aicp_task_list one = {.items = (struct aicp_task **)&hl->items[k], .n = 1};
            /* A role's handler sees the role's variables, as in Ansible. */
            const struct aicp_task *role = t->role_path ? find_role_block(r->play, t->role_path) : NULL;
            struct scope rs = {.block = role};
            run_list(r, &one, role ? &rs : NULL, "RUNNING HANDLER");
        }
        for (size_t i = 0; i < r->nhosts; i++)
            r->hosts[i].in_play = save[i];
        free(save);
    }
    for (size_t i = 0; i < r->nhosts; i++)
        json_object_clear(r->hosts[i].notified);
}

static void gather_job(struct job *j)
{
    struct aicp_err err = {0};
    json_t *vars = task_vars(j->r, j->h, NULL, NULL);
    json_t *facts = NULL;
    double t0 = aicp_now();
    int rc = aicp_hostconn_open(&j->h->conn, j->h->name, vars, &j->r->hostkeys, &err);
    if (rc != 0) {
        j->total.st = AICP_ST_UNREACHABLE;
    } else {
        rc = aicp_facts_gather(&facts, j->h->conn, 0, &err);
        j->total.st = rc == 0 ? AICP_ST_OK : rc == AICP_EUNREACHABLE ? AICP_ST_UNREACHABLE : AICP_ST_FAILED;
    }
    if (rc == 0) {
        /* Merged into the host by the main thread: other workers may be
         * reading this host's facts through hostvars. */
        j->total.result = json_pack("{s:b, s:O}", "changed", 0, "ansible_facts", facts);
    } else {
        j->total.result = json_pack("{s:b, s:s}", "changed", 0, "msg", err.msg);
        if (j->total.st == AICP_ST_UNREACHABLE)
            json_object_set_new(j->total.result, "unreachable", json_true());
    }
    j->total.secs = aicp_now() - t0;
    json_decref(facts);
    json_decref(vars);
}

static void gather_facts(struct run *r)
{
    struct job *jobs = calloc(r->nhosts ? r->nhosts : 1, sizeof(*jobs));
    size_t n = 0;
    if (jobs == NULL)
        return;
    for (size_t i = 0; i < r->nhosts; i++)
        if (host_active(&r->hosts[i]))
            jobs[n++] = (struct job){.r = r, .h = &r->hosts[i]};
    if (n) {
        aicp_output_task(r->out, "TASK", "Gathering Facts", 0);
        pool_run(r, jobs, n, gather_job);
    }
    size_t failed = 0, unreachable = 0;
    for (size_t i = 0; i < n; i++) {
        struct host *h = jobs[i].h;
        json_t *shown = json_deep_copy(jobs[i].total.result);
        json_object_del(shown, "ansible_facts");
        aicp_output_result(r->out, h->name, jobs[i].total.st, shown, NULL, NULL, 0, 0,
                           jobs[i].total.secs);
        json_decref(shown);
        if (jobs[i].total.st == AICP_ST_OK) {
            h->st.ok++;
            update_from(h->facts, json_object_get(jobs[i].total.result, "ansible_facts"));
        }
        else if (jobs[i].total.st == AICP_ST_UNREACHABLE) {
            h->st.unreachable++;
            h->unreachable = 1;
            unreachable++;
        } else {
            h->st.failed++;
            h->failed = 1;
            h->batch_failed = 1;
            failed++;
        }
        host_refresh_view(r, h);
        outcome_clear(&jobs[i].total);
    }
    if (n)
        after_task(r, r->play->any_errors_fatal, NULL, failed, unreachable);
    free(jobs);
}

/* ---- plays ------------------------------------------------------------- */

static struct host *find_host(struct run *r, const char *name)
{
    for (size_t i = 0; i < r->nhosts; i++)
        if (strcmp(r->hosts[i].name, name) == 0)
            return &r->hosts[i];
    return NULL;
}

static int load_vars_files(struct run *r, const struct aicp_play *p, struct aicp_err *err)
{
    size_t i;
    json_t *f;
    json_array_foreach(p->vars_files, i, f) {
        json_t *path = NULL, *doc = NULL;
        int rc = aicp_tmpl_render(&path, f, r->play_vars, err);
        if (rc != 0)
            return rc;
        struct aicp_buf full = AICP_BUF_INIT;
        const char *ps = json_string_value(path);
        if (ps == NULL) {
            json_decref(path);
            return aicp_err_set(err, AICP_EINVAL, "vars_files entries must be paths");
        }
        if (ps[0] == '/')
            aicp_buf_puts(&full, ps);
        else
            aicp_buf_printf(&full, "%s/%s", p->dir ? p->dir : r->pb->dir, ps);
        rc = aicp_yaml_load_file(&doc, full.data, r->pb->map, err);
        aicp_buf_free(&full);
        json_decref(path);
        if (rc != 0)
            return rc;
        if (json_is_object(doc))
            json_object_update(r->play_vars, doc);
        else if (!json_is_null(doc)) {
            json_decref(doc);
            return aicp_err_set(err, AICP_EINVAL, "%s: vars file must hold a mapping", ps);
        }
        json_decref(doc);
    }
    return 0;
}

/* serial: an int, "30%", or a list of those; returns batch size number k. */
static size_t batch_size(const json_t *serial, size_t k, size_t total)
{
    const json_t *v = serial;
    if (json_is_array(serial)) {
        size_t n = json_array_size(serial);
        if (n == 0)
            return total;
        v = json_array_get(serial, k < n ? k : n - 1);
    }
    long s = 0;
    if (json_is_integer(v)) {
        s = (long)json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *str = json_string_value(v);
        s = strtol(str, NULL, 10);
        if (strchr(str, '%'))
            s = (long)(total * (size_t)s / 100);
        if (s < 1)
            s = 1;
    }
    if (s <= 0 || (size_t)s > total)
        return total;
    return (size_t)s;
}

static int run_play(struct run *r, const struct aicp_play *p, struct aicp_err *err)
{
    int rc = 0;
    json_t *matched = NULL, *limited = NULL;
    r->play = p;
    r->play_ended = 0;
    json_decref(r->play_vars);
    r->play_vars = json_deep_copy(p->vars);
    update_from(r->play_vars, r->opts->extra_vars);
    if ((rc = load_vars_files(r, p, err)) != 0)
        return rc;
    update_from(r->play_vars, r->opts->extra_vars);

    const char *pattern = p->hosts ? p->hosts : "";
    json_t *rp = NULL;
    if (aicp_tmpl_is_template(pattern)) {
        if ((rc = aicp_tmpl_render_str(&rp, pattern, r->play_vars, err)) != 0)
            return rc;
        pattern = json_string_value(rp) ? json_string_value(rp) : "";
    }
    rc = aicp_inventory_match(&matched, r->inv, pattern, err);
    if (rc == 0 && r->opts->limit) {
        rc = aicp_inventory_match(&limited, r->inv, r->opts->limit, err);
        if (rc == 0) {
            for (size_t i = json_array_size(matched); i-- > 0;) {
                int keep = 0;
                size_t k;
                json_t *x;
                json_array_foreach(limited, k, x) {
                    if (json_equal(x, json_array_get(matched, i)))
                        keep = 1;
                }
                if (!keep)
                    json_array_remove(matched, i);
            }
        }
    }
    if (rc != 0)
        goto out;
    /* Ansible's implicit localhost answers a play that names it. */
    if (json_array_size(matched) == 0 &&
        (strcmp(pattern, "localhost") == 0 || strcmp(pattern, "127.0.0.1") == 0))
        json_array_append_new(matched, json_string("localhost"));

    const char *pname = p->name ? p->name : pattern;
    /* As Ansible, the batches are cut from every matched host: one that
     * failed or was unreachable in an earlier play counts in its batch but
     * runs nothing. */
    json_t *batchable = json_array();
    size_t i;
    json_t *name;
    json_array_foreach(matched, i, name) {
        struct host *h = find_host(r, json_string_value(name));
        if (h) {
            json_array_append(batchable, name);
            h->seen = 1;
        }
    }
    if (json_array_size(batchable) == 0) {
        aicp_output_play(r->out, pname, 0);
        aicp_output_no_hosts(r->out);
    }
    size_t total = json_array_size(batchable), done = 0;
    for (size_t batch = 0; done < total && !r->play_ended && !r->stopped; batch++) {
        size_t bs = batch_size(p->serial, batch, total);
        if (bs > total - done)
            bs = total - done;
        aicp_output_play(r->out, pname, 0); /* each batch, as ansible-playbook prints it */
        json_decref(r->play_hosts);
        r->play_hosts = json_array();
        for (size_t k = 0; k < r->nhosts; k++) {
            struct host *h = &r->hosts[k];
            h->in_play = h->in_batch = h->ended = h->batch_failed = 0;
            h->down_before = h->failed || h->unreachable;
            json_object_clear(h->notified);
        }
        for (size_t k = done; k < done + bs; k++) {
            struct host *h = find_host(r, json_string_value(json_array_get(batchable, k)));
            h->in_batch = 1;
            if (h->down_before)
                continue;
            h->in_play = 1;
            json_array_append_new(r->play_hosts, json_string(h->name));
        }
        done += bs;
        int gf = p->gather_facts;
        if (gf)
            gather_facts(r);
        run_list(r, &p->pre_tasks, NULL, "TASK");
        flush_handlers(r);
        run_list(r, &p->roles, NULL, "TASK");
        run_list(r, &p->tasks, NULL, "TASK");
        flush_handlers(r);
        run_list(r, &p->post_tasks, NULL, "TASK");
        flush_handlers(r);
        /* A batch whose every host failed or became unreachable ends the
         * playbook (serial or not), as ansible-playbook does. */
        size_t newly_down = 0;
        for (size_t k = 0; k < r->nhosts; k++) {
            const struct host *h = &r->hosts[k];
            newly_down += h->in_batch && !h->down_before && (h->failed || h->unreachable);
        }
        if (newly_down == bs)
            r->stopped = 1;
    }
    json_decref(batchable);
out:
    json_decref(rp);
    json_decref(matched);
    json_decref(limited);
    return rc;
}

static int setup_hosts(struct run *r, struct aicp_err *err)
{
    size_t n = aicp_inventory_host_count(r->inv);
    int need_localhost = !aicp_inventory_has_host(r->inv, "localhost");
    r->hosts = calloc(n + 1, sizeof(*r->hosts));
    if (r->hosts == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    for (size_t i = 0; i < n + (size_t)need_localhost; i++) {
        struct host *h = &r->hosts[r->nhosts];
        const char *name = i < n ? aicp_inventory_host_name(r->inv, i) : "localhost";
        h->name = aicp_strdup(name);
        h->facts = json_object();
        h->set_vars = json_object();
        h->notified = json_object();
        if (i < n) {
            int rc = aicp_inventory_host_vars(&h->inv_vars, r->inv, name, err);
            if (rc != 0)
                return rc;
        } else {
            /* Ansible's implicit localhost: not in `all`, local connection. */
            h->inv_vars = json_pack("{s:s, s:s, s:s}", "inventory_hostname", "localhost",
                                    "inventory_hostname_short", "localhost", "ansible_connection",
                                    "local");
        }
        r->nhosts++;
        host_refresh_view(r, h);
    }
    return 0;
}

/* --syntax-check and --list-hosts, as ansible-playbook prints them. */
static int list_only(struct run *r, const char *playbook, struct aicp_err *err)
{
    printf("\nplaybook: %s\n", playbook);
    for (size_t i = 0; r->opts->list_hosts && i < r->pb->nplays; i++) {
        const struct aicp_play *p = r->pb->plays[i];
        json_t *vars = json_deep_copy(p->vars), *pat = NULL, *hosts = NULL, *limited = NULL;
        if (json_is_object(r->opts->extra_vars))
            json_object_update(vars, r->opts->extra_vars);
        int rc = aicp_tmpl_render_str(&pat, p->hosts ? p->hosts : "", vars, err);
        const char *pattern = json_string_value(pat) ? json_string_value(pat) : "";
        if (rc == 0)
            rc = aicp_inventory_match(&hosts, r->inv, pattern, err);
        if (rc == 0 && r->opts->limit)
            rc = aicp_inventory_match(&limited, r->inv, r->opts->limit, err);
        if (rc == 0) {
            char *tags = NULL;
            aicp_tmpl_to_string(&tags, p->tags);
            printf("\n  play #%zu (%s): %s\tTAGS: %s\n    pattern: ['%s']\n", i + 1, pattern,
                   p->name ? p->name : pattern, tags ? tags : "[]", pattern);
            free(tags);
            json_t *shown = json_array();
            size_t k;
            json_t *h;
            json_array_foreach(hosts, k, h) {
                int keep = limited == NULL;
                size_t m;
                json_t *x;
                json_array_foreach(limited, m, x) {
                    keep |= json_equal(x, h);
                }
                if (keep)
                    json_array_append(shown, h);
            }
            printf("    hosts (%zu):\n", json_array_size(shown));
            json_array_foreach(shown, k, h) {
                printf("      %s\n", json_string_value(h));
            }
            json_decref(shown);
        }
        json_decref(vars);
        json_decref(pat);
        json_decref(hosts);
        json_decref(limited);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int aicp_run_playbook(int *exit_status, const char *playbook, const struct aicp_run_opts *opts,
                      struct aicp_err *err)
{
    struct run r = {.opts = opts};
    char why[4200];
    int rc;
    *exit_status = 1;
    aicp_hostconn_policy(&r.hostkeys, opts->accept_new_host_keys, why, sizeof why);
    r.hostvars = json_object();
    if ((rc = aicp_srcmap_new(&r.invmap)) != 0)
        goto out;
    aicp_srcmap_set_vault(r.invmap, opts->vault, opts->secrets);
    if ((rc = aicp_inventory_new(&r.inv, r.invmap)) != 0)
        goto out;
    for (size_t i = 0; i < opts->ninventories; i++)
        if ((rc = aicp_inventory_load(r.inv, opts->inventories[i], err)) != 0)
            goto out;
    if ((rc = aicp_playbook_load_vaulted(&r.pb, playbook, opts->vault, opts->secrets, err)) != 0)
        goto out;
    if ((rc = aicp_inventory_add_vars_dir(r.inv, r.pb->dir, err)) != 0)
        goto out;
    if ((rc = aicp_precheck_playbook(r.pb, r.inv, opts->extra_vars, err)) != 0)
        goto out;
    if (opts->syntax_check || opts->list_hosts) {
        rc = list_only(&r, playbook, err);
        *exit_status = rc == 0 ? 0 : 1;
        goto out;
    }
    if ((rc = setup_hosts(&r, err)) != 0)
        goto out;
    if ((rc = aicp_output_new(&r.out, stdout, opts->verbose, opts->diff)) != 0)
        goto out;
    struct aicp_kube_config kcli = {.kubeconfig = opts->kubeconfig, .context = opts->kube_context};
    if ((rc = aicp_http_new(&r.http, NULL, err)) != 0 ||
        (rc = aicp_kube_pool_new(&r.kube, r.http, &kcli)) != 0 ||
        (rc = aicp_ontap_pool_new(&r.ontap, r.http)) != 0)
        goto out;
    aicp_run_id(r.run_id, sizeof r.run_id);
    aicp_output_set_secrets(r.out, opts->secrets);
    if (!r.hostkeys.checking)
        fprintf(stderr, "[WARNING]: SSH host key checking is off (%s): any host answering to a "
                        "host's address is trusted\n", why);
    for (size_t i = 0; i < r.pb->nplays && !r.stopped; i++) {
        if ((rc = run_play(&r, r.pb->plays[i], err)) != 0)
            goto out;
    }
    json_t *names = json_array();
    struct aicp_stats *stats = calloc(r.nhosts ? r.nhosts : 1, sizeof(*stats));
    int failed = 0;
    size_t k = 0;
    for (size_t i = 0; i < r.nhosts && stats; i++) {
        if (!r.hosts[i].seen)
            continue;
        json_array_append_new(names, json_string(r.hosts[i].name));
        r.hosts[i].st.round_trips = aicp_conn_round_trips(r.hosts[i].conn);
        stats[k++] = r.hosts[i].st;
        if (r.hosts[i].st.failed || r.hosts[i].st.unreachable)
            failed = 1;
    }
    if (stats)
        aicp_output_recap(r.out, names, stats);
    free(stats);
    json_decref(names);
    *exit_status = failed ? 1 : r.any_changed ? 2 : 0;
    if (opts->json_path && (rc = aicp_output_write_json(r.out, opts->json_path, err)) != 0) {
        *exit_status = 1;
        rc = 0;
        fprintf(stderr, "aicp: %s\n", err->msg);
    }
out:
    for (size_t i = 0; i < r.nhosts; i++) {
        struct host *h = &r.hosts[i];
        aicp_conn_close(h->conn);
        aicp_conn_close(h->local);
        free(h->name);
        json_decref(h->inv_vars);
        json_decref(h->facts);
        json_decref(h->set_vars);
        json_decref(h->view);
        json_decref(h->notified);
    }
    free(r.hosts);
    json_decref(r.hostvars);
    json_decref(r.play_vars);
    json_decref(r.play_hosts);
    aicp_output_free(r.out);
    aicp_kube_pool_free(r.kube);
    aicp_ontap_pool_free(r.ontap);
    aicp_http_free(r.http);
    aicp_playbook_free(r.pb);
    aicp_inventory_free(r.inv);
    aicp_srcmap_free(r.invmap);
    return rc;
}
