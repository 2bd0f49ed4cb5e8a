/* The ping module: proves that a host is reachable and can run a command,
 * as Ansible's ping. It runs `true` over the host's connection (one round
 * trip on the already-open shell) and answers `pong`. */
#include "config.h"

#include <string.h>

#include "conn.h"
#include "err.h"
#include "module.h"

static const struct aicp_arg_spec ping_args[] = {
    {.name = "data", .type = AICP_ARG_STR, .def = "pong",
     .help = "The value returned in `ping`. `crash` makes the module fail (to test failure "
             "handling)."},
    {.name = NULL},
};

static int ping_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                      struct aicp_err *err)
{
    const char *data = aicp_args_str(args, "data");
    struct aicp_exec_result res = {0};
    int rc;

    *current = json_object();
    if (data == NULL)
        data = "pong";
    if (strcmp(data, "crash") == 0)
        return aicp_err_set(err, AICP_EFAILED, "boom");
    if (ctx->conn == NULL)
        return aicp_err_set(err, AICP_EUNREACHABLE, "%s: no connection to ping",
                            ctx->host ? ctx->host : "host");
    if ((rc = aicp_conn_exec(ctx->conn, "true", NULL, 0, ctx->become, &res, err)) != 0)
        goto out;
    if (res.rc != 0) {
        rc = aicp_err_set(err, AICP_EFAILED, "%s: the remote shell could not run `true` (rc %d)",
                          ctx->host ? ctx->host : "host", res.rc);
        goto out;
    }
    json_object_set_new(ctx->result, "ping", json_string(data));
out:
    aicp_exec_result_clear(&res);
    return rc;
}

static const struct aicp_module_ops ping_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = ping_check,
    .diff = aicp_module_diff_none,
    .apply = aicp_module_apply_none,
};

const struct aicp_module aicp_mod_ping = {
    .name = "ping",
    .summary = "Try to connect to host, verify a usable shell and return pong",
    .args = ping_args,
    .flags = AICP_MOD_NEEDS_SSH,
    .ops = &ping_ops,
};
