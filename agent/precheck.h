/* Whole-playbook validation before a run (see precheck.c). */
#ifndef AICP_PRECHECK_H
#define AICP_PRECHECK_H

#include <jansson.h>

struct aicp_err;
struct aicp_inventory;
struct aicp_playbook;

/* AICP_EUNDEF naming the task's file:line:col when a task reads a variable
 * that nothing defines; 0 otherwise. */
int aicp_precheck_playbook(const struct aicp_playbook *pb, const struct aicp_inventory *inv,
                           const json_t *extra_vars, struct aicp_err *err);

#endif
