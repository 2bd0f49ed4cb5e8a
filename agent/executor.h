/* The executor: runs a playbook's plays on the inventory's hosts with the
 * linear strategy (each task on all of a play's hosts, in parallel on a
 * bounded worker pool, then the next task), blocks, loops, handlers,
 * registers, facts, check and diff modes, and the recap. */
#ifndef AICP_EXECUTOR_H
#define AICP_EXECUTOR_H

#include <stddef.h>
#include <jansson.h>

struct aicp_vault;
struct aicp_secrets;

struct aicp_err;

struct aicp_run_opts {
    const char *const *inventories; /* -i sources */
    size_t ninventories;
    json_t *extra_vars;             /* -e, an object; borrowed; may be NULL */
    int check;
    int diff;
    int verbose;
    int forks;                      /* default 20 */
    const char *limit;              /* --limit pattern or NULL */
    json_t *tags;                   /* --tags: array of strings or NULL */
    json_t *skip_tags;              /* --skip-tags: array or NULL */
    const char *json_path;          /* --json FILE or NULL */
    int syntax_check;               /* --syntax-check: validate, run nothing */
    int list_hosts;                 /* --list-hosts: print each play's hosts, run nothing */
    const struct aicp_vault *vault; /* opens vaulted files and !vault values; may be NULL */
    struct aicp_secrets *secrets;   /* values masked in all output; borrowed; may be NULL */
    int accept_new_host_keys;       /* unknown host keys are accepted and recorded */
    const char *kubeconfig;         /* --kubeconfig / --context: win over module arguments */
    const char *kube_context;
};

/* Loads the inventory and the playbook (validating everything before any
 * host is touched), then runs it. Returns 0 when the run happened, with
 * *exit_status 0 (nothing changed), 2 (something changed) or 1 (a failure
 * or an unreachable host); or a negative code before running (invalid input:
 * AICP_EINVAL/AICP_EUNDEF, I/O). */
int aicp_run_playbook(int *exit_status, const char *playbook, const struct aicp_run_opts *opts,
                      struct aicp_err *err);

#endif
