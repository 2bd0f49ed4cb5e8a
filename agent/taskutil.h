/* Pure helpers of the executor for one task (see taskutil.c). */
#ifndef AICP_TASKUTIL_H
#define AICP_TASKUTIL_H

#include <jansson.h>

struct aicp_args;
struct aicp_change;
struct aicp_conn;
struct aicp_ctx;
struct aicp_err;
struct aicp_module;

/* What {{ omit }} renders to; arguments equal to it are dropped. */
#define AICP_OMIT_TOKEN "__omit_place_holder__aicp"

/* A keyword's boolean as Ansible reads it ("yes", "false", 1, lists...). */
int aicp_task_bool(const json_t *v);

/* Removes every value equal to AICP_OMIT_TOKEN, at any depth. */
void aicp_task_strip_omitted(json_t *v);

/* All conditions hold (a string, a boolean, or a list of them). */
int aicp_task_conditions(int *out, const json_t *conds, const json_t *vars, struct aicp_err *err);

/* A unified diff of before and after as JSON, or NULL when equal or both
 * absent. malloc'ed. */
char *aicp_task_diff_text(const json_t *before, const json_t *after);

/* What --diff shows of a change: its own text, else a diff of before and
 * after; of a secret's only that it changes. NULL when nothing; malloc'ed. */
char *aicp_task_change_diff(const struct aicp_change *change, int secret);

/* Copies the keys of src, when it is an object, into dst. */
void aicp_task_update_from(json_t *dst, const json_t *src);

/* Makes a needed change through the module (change->args must be set) and
 * copies its plan's "result" keys into result. *wrote: the apply failed
 * after writing something (its plan says "wrote", e.g. a wait that timed
 * out after the write). */
int aicp_task_apply(const struct aicp_module *mod, struct aicp_ctx *ctx,
                    struct aicp_change *change, json_t *result, int *wrote, struct aicp_err *err);

/* After a successful apply: unless the module or the change's plan says
 * not to ("no_verify"), reads the state again (check, diff); a difference
 * left is an error, "not idempotent". */
int aicp_task_verify(const struct aicp_module *mod, struct aicp_ctx *ctx,
                     const struct aicp_args *args, const struct aicp_change *change,
                     struct aicp_err *err);

/* The items of {"__with_together": lists} (zipped, padded with null) or
 * {"__with_nested": lists} (crossed); NULL when not a list of lists. New
 * reference. */
json_t *aicp_task_combine_lists(const json_t *spec);

/* The items of a rendered loop: a list as it is; {"__with_items": X}
 * flattened one level (Ansible's items lookup; a non-list X is one item);
 * {"__with_dict": D} as {key, value} items; {"__with_together"} and
 * {"__with_nested"} combined. NULL when that is not a list of items. New
 * reference. */
json_t *aicp_task_loop_items(const json_t *rendered);

/* Ansible's debug and fail actions read their raw arguments: a RAW
 * argument with a default that the task gives as null stays null (debug
 * `msg: "{{ none }}"` prints null), where validation dropped it. */
void aicp_task_keep_explicit_nulls(struct aicp_args *args, const json_t *rendered);

/* Fills the keys Ansible's command module returns when the command does
 * not run (check mode, or creates/removes said no) from the change's plan
 * ("cmd"): rc, stdout/stderr and their _lines, start/end/delta, msg. */
void aicp_task_unrun_command_keys(json_t *result, const json_t *plan, int check);

/* A copy of a result without "failed" and "skipped", as Ansible's
 * callbacks show it. New reference. */
json_t *aicp_task_shown_result(const json_t *result);

/* A leading ~ in the managed host's path arguments becomes the remote
 * user's home (the become user's with become). */
int aicp_task_expand_home(struct aicp_args *args, struct aicp_conn *conn, int become,
                          struct aicp_err *err);

/* environment layers (layers[0], the task's, wins; the last is the play's),
 * rendered with vars, as `export K='v'` lines; *out NULL when n is 0. The
 * values may be secrets: free *out with aicp_free_secret. */
int aicp_task_env_prelude(char **out, const json_t *const *layers, size_t n, const json_t *vars,
                          struct aicp_err *err);

#endif
