/* Opening a host's connection from its variables (see hostconn.c). */
#ifndef AICP_HOSTCONN_H
#define AICP_HOSTCONN_H

#include <jansson.h>

struct aicp_conn;
struct aicp_err;

/* Opens *out for the host called name with the connection variables in
 * vars. Errors as aicp_conn_open (AICP_EUNREACHABLE, AICP_EHOSTKEY...). */
int aicp_hostconn_open(struct aicp_conn **out, const char *name, const json_t *vars,
                       struct aicp_err *err);

#endif
