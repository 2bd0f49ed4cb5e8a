/* Opening a host's connection from its variables (see hostconn.c). */
#ifndef AICP_HOSTCONN_H
#define AICP_HOSTCONN_H

#include <jansson.h>

struct aicp_conn;
struct aicp_err;

/* How a run checks SSH host keys. Strict by default; accept_new is
 * --accept-new-host-keys (unknown keys are recorded, changed ones refused). */
struct aicp_hostkey_policy {
    int checking;   /* 0: any key is accepted (Ansible's host_key_checking = False) */
    int accept_new;
};

/* The policy for a run: checking is off only when ANSIBLE_HOST_KEY_CHECKING
 * is false, or else when the ansible.cfg Ansible would read (ANSIBLE_CONFIG,
 * ./ansible.cfg, ~/.ansible.cfg, /etc/ansible/ansible.cfg) says
 * host_key_checking = False; why then names which, for the warning. */
void aicp_hostconn_policy(struct aicp_hostkey_policy *pol, int accept_new, char *why, size_t cap);

/* Opens *out for the host called name with the connection variables in
 * vars (a host's ansible_host_key_checking overrides pol->checking). pol
 * may be NULL (strict). Errors as aicp_conn_open (AICP_EUNREACHABLE,
 * AICP_EHOSTKEY...). */
int aicp_hostconn_open(struct aicp_conn **out, const char *name, const json_t *vars,
                       const struct aicp_hostkey_policy *pol, struct aicp_err *err);

#endif
