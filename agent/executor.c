/* The executor. A playbook run walks each play's task tree once for all of
 * the play's hosts (Ansible's linear strategy): for every task it fans the
 * hosts out over a bounded pool of worker threads, each worker running
 * check -> diff -> (apply -> verify) for one host on that host's own
 * connection, then joins them and prints the results in inventory order.
 * Blocks narrow the set of hosts as they fail; rescue and always take them
 * back. Variables are layered per task in Ansible's precedence order.
 * This file has the task tree, handlers, facts gathering and the plays and
 * their batches; running one task on one host, and the worker pool, are in
 * executor_task.c. */
#include "config.h"

#include <errno.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "err.h"
#include "executor.h"
#include "executor_int.h"
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
#include "tags.h"
#include "taskutil.h"
#include "template.h"
#include "util.h"
#include "yaml.h"


/* ---- small helpers ------------------------------------------------------ */

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
    aicp_task_update_from(v, h->inv_vars);
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
    aicp_task_update_from(v, h->set_vars);
    json_decref(h->view);
    h->view = v;
    json_object_set(r->hostvars, h->name, v);
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
        } else if (j->total.st == AICP_ST_SKIPPED) {
            aicp_output_loop_skipped(r->out, h->name, j->total.result, j->total.no_log);
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
        aicp_task_update_from(h->facts, facts); /* a facts module (gpu_facts): ansible_facts.<name> */
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
        json_t *vars = first ? aicp_executor_task_vars(r, first, t, sc) : json_incref(r->play_vars);
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
    return aicp_executor_inherit_int(t, sc, offsetof(struct aicp_task, any_errors_fatal), r->play->any_errors_fatal);
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
    aicp_executor_pool_run(r, jobs, n, aicp_executor_run_job);
    size_t hard = 0, unreachable = 0;
    int handled = failure_handled(sc);
    for (size_t i = 0; i < n; i++) {
        record(r, &jobs[i]);
        if (jobs[i].total.st == AICP_ST_FAILED && !jobs[i].total.ignored && !handled)
            hard++;
        if (jobs[i].total.st == AICP_ST_UNREACHABLE)
            unreachable++;
        for (size_t k = 0; k < jobs[i].nitems; k++)
            aicp_executor_outcome_clear(&jobs[i].items[k]);
        free(jobs[i].items);
        aicp_executor_outcome_clear(&jobs[i].total);
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
            vars = aicp_executor_task_vars(r, first, t, sc);
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
    json_t *vars = aicp_executor_task_vars(j->r, j->h, NULL, NULL);
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
        aicp_executor_pool_run(r, jobs, n, gather_job);
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
            aicp_task_update_from(h->facts,
                                      json_object_get(jobs[i].total.result, "ansible_facts"));
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
        aicp_executor_outcome_clear(&jobs[i].total);
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

/* 1 when there is no --limit, or one of its ':'/','-separated patterns
 * is localhost or 127.0.0.1 (the implicit localhost is in no group). */
static int limit_names_localhost(const char *limit)
{
    if (limit == NULL)
        return 1;
    const char *p = limit;
    while (*p) {
        size_t n = strcspn(p, ":,");
        if ((n == 9 && strncmp(p, "localhost", 9) == 0) ||
            (n == 9 && strncmp(p, "127.0.0.1", 9) == 0))
            return 1;
        p += n;
        if (*p)
            p++;
    }
    return 0;
}

static int run_play(struct run *r, const struct aicp_play *p, struct aicp_err *err)
{
    int rc = 0;
    json_t *matched = NULL, *limited = NULL, *serial = NULL;
    r->play = p;
    r->play_ended = 0;
    json_decref(r->play_vars);
    r->play_vars = json_deep_copy(p->vars);
    aicp_task_update_from(r->play_vars, r->opts->extra_vars);
    if ((rc = load_vars_files(r, p, err)) != 0)
        return rc;
    aicp_task_update_from(r->play_vars, r->opts->extra_vars);

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
    /* Ansible's implicit localhost answers a play that names it, unless a
     * --limit leaves it out (the limit must name it too). */
    if (json_array_size(matched) == 0 &&
        (strcmp(pattern, "localhost") == 0 || strcmp(pattern, "127.0.0.1") == 0) &&
        limit_names_localhost(r->opts->limit))
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
    /* serial may be a template over the play's vars and the extra vars
     * ("{{ batch }}"), as in Ansible. */
    if (p->serial != NULL && (rc = aicp_tmpl_render(&serial, p->serial, r->play_vars, err)) != 0) {
        aicp_err_prefix(err, "%s:%d:%d: serial", p->loc.file ? p->loc.file : "?", p->loc.line,
                        p->loc.col);
        json_decref(batchable);
        goto out;
    }
    size_t total = json_array_size(batchable), done = 0;
    for (size_t batch = 0; done < total && !r->play_ended && !r->stopped; batch++) {
        size_t bs = batch_size(serial, batch, total);
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
    json_decref(serial);
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
