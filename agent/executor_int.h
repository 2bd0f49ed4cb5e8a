/* Private to the executor's own files (executor.c, executor_task.c): the
 * run, host, scope and job state they pass around, and the functions one of
 * them calls in the other. Nothing else includes this; the interface for
 * everyone else is executor.h.
 */
#ifndef AICP_EXECUTOR_INT_H
#define AICP_EXECUTOR_INT_H

#include <stddef.h>
#include <jansson.h>

#include "err.h"
#include "executor.h"
#include "hostconn.h"
#include "output.h"
#include "playbook.h"

struct aicp_conn;
struct aicp_inventory;
struct aicp_srcmap;
struct aicp_http;
struct aicp_kube_pool;
struct aicp_ontap_pool;


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

/* ---- executor_task.c: one task on one host, and the worker pool ---- */

void aicp_executor_outcome_clear(struct outcome *o);
/* The int keyword at offset off of t, else of its enclosing blocks
 * (innermost first), else dflt; a keyword not set is negative. */
int aicp_executor_inherit_int(const struct aicp_task *t, const struct scope *sc, size_t off,
                              int dflt);
/* The variables task t (NULL: none) sees on host h; a new reference. */
json_t *aicp_executor_task_vars(const struct run *r, const struct host *h,
                                const struct aicp_task *t, const struct scope *sc);
/* Runs j's task on j's host and fills j->items and j->total. */
void aicp_executor_run_job(struct job *j);
/* Runs fn on each of the n jobs on up to opts->forks (default 20) threads;
 * returns when all are done. */
void aicp_executor_pool_run(struct run *r, struct job *jobs, size_t n, void (*fn)(struct job *));

#endif
