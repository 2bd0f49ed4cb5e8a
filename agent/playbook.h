/* Playbooks: plays and tasks parsed from YAML, validated before anything runs.
 *
 * Loading resolves import_playbook, import_tasks, include_tasks (static
 * path; a loop is kept on the include), roles (tasks/handlers/defaults/vars
 * main.yml) and blocks; finds each task's module in the registry; splits
 * `k=v` argument strings; and validates arguments against the module's table
 * (unknown module or argument, missing required one -> AICP_EINVAL naming
 * file:line:col). Tags, when and become of blocks and roles are kept on the
 * block (the executor inherits them at run time).
 *
 * Representations: import_tasks and include_tasks without a loop become a
 * BLOCK (action "import_tasks"/"include_tasks", args {"file": resolved
 * path}, body in block) carrying the import's when/tags/vars; include_tasks
 * with a loop is an INCLUDE of the same shape. A role (play `roles:`,
 * import_role, include_role) is a BLOCK whose action is the role name,
 * body roles/NAME/tasks/main.yml, vars vars/main.yml overlaid by the role's
 * parameters, role_defaults defaults/main.yml and role_path roles/NAME; its
 * handlers are appended (once per play) to the play's handlers. with_items
 * is stored as {"__with_items": X}, which the executor flattens one level
 * after rendering (as Ansible's items lookup); with_sequence is computed at
 * load time; with_list is a plain loop.
 */
#ifndef AICP_PLAYBOOK_H
#define AICP_PLAYBOOK_H

#include <stddef.h>
#include <jansson.h>

#include "yaml.h"

struct aicp_err;
struct aicp_module;

enum aicp_task_kind {
    AICP_TASK_MODULE = 1,   /* a module call */
    AICP_TASK_BLOCK,        /* block/rescue/always */
    AICP_TASK_INCLUDE,      /* include_tasks with a loop: body holds the parsed file */
    AICP_TASK_META,         /* meta: flush_handlers | noop | end_play | end_host | clear_host_errors */
};

struct aicp_task_list {
    struct aicp_task **items;
    size_t n;
};

struct aicp_task {
    enum aicp_task_kind kind;
    char *name;                 /* NULL when unnamed (the output then shows the action) */
    struct aicp_loc loc;        /* where the task starts */
    const struct aicp_module *mod;
    char *action;               /* module name as written ("ansible.builtin.copy") or meta verb */
    json_t *args;               /* raw arguments object, rendered at run time */
    json_t *when;               /* NULL or array of conditions (strings or booleans) */
    json_t *loop;               /* NULL, array, or template string; with_dict X is stored
                                 * as {"__with_dict": X} (items become {key, value}) */
    char *loop_var;             /* "item" unless loop_control.loop_var */
    char *index_var;            /* loop_control.index_var or NULL */
    json_t *loop_label;         /* loop_control.label or NULL */
    char *register_as;
    json_t *notify;             /* array of handler names/topics, or NULL */
    json_t *listen;             /* handlers: array of topics, or NULL */
    json_t *tags;               /* array of strings (own tags only), never NULL */
    json_t *changed_when;       /* NULL or array of conditions */
    json_t *failed_when;        /* NULL or array of conditions */
    json_t *ignore_errors;      /* NULL, bool or template string */
    int no_log;                 /* -1 inherit, 0/1 */
    int become;                 /* -1 inherit, 0/1 */
    char *become_user;          /* NULL inherit */
    int check_mode;             /* -1 inherit, 0/1 */
    int diff;                   /* -1 inherit, 0/1 */
    int run_once;
    int any_errors_fatal;       /* -1 inherit */
    json_t *vars;               /* task or block vars, or NULL */
    json_t *environment;        /* object or NULL */
    struct aicp_task_list block, rescue, always; /* AICP_TASK_BLOCK; INCLUDE uses block */
    json_t *role_defaults;      /* a role's block: defaults/main.yml (lowest precedence), or NULL */
    char *role_path;            /* a role's block: the role's directory (roles/NAME), or NULL */
    char *delegate_to;          /* NULL, or "localhost"/"127.0.0.1" (delegate_to, local_action):
                                 * the task runs on the jump host */
};

struct aicp_play {
    char *name;                 /* NULL: the hosts pattern is shown */
    struct aicp_loc loc;
    char *hosts;                /* pattern; a YAML list is joined with ',' */
    json_t *vars;               /* object, never NULL */
    json_t *vars_files;         /* array of path strings (templated), never NULL */
    int become;                 /* 0/1 */
    char *become_user;
    int gather_facts;           /* default 1 */
    json_t *serial;             /* NULL, int, "30%", or array of those */
    int max_fail_percentage;    /* -1 unset */
    int any_errors_fatal;
    int force_handlers;
    int check_mode;             /* -1 unset */
    json_t *tags;               /* array, never NULL */
    json_t *environment;
    struct aicp_task_list pre_tasks, roles, tasks, post_tasks, handlers; /* roles: one BLOCK per role */
    char *dir;                  /* directory of the file the play came from */
};

struct aicp_playbook {
    char *path;
    char *dir;
    struct aicp_play **plays;
    size_t nplays;
    struct aicp_srcmap *map;    /* positions of every loaded node */
    json_t *docs;               /* the loaded YAML trees, kept alive for map */
};

/* Loads and validates a playbook. */
int aicp_playbook_load(struct aicp_playbook **out, const char *path, struct aicp_err *err);
/* The same, opening vaulted files and !vault values with vault (vars_files
 * read later too) and registering their plaintext in secrets. */
struct aicp_vault;
struct aicp_secrets;
int aicp_playbook_load_vaulted(struct aicp_playbook **out, const char *path,
                               const struct aicp_vault *vault, struct aicp_secrets *secrets,
                               struct aicp_err *err);
void aicp_playbook_free(struct aicp_playbook *pb);

/* "file:line:col" of a task, in a static buffer of the caller. */
void aicp_task_where(const struct aicp_task *t, char *buf, size_t len);

#endif
