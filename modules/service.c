/* The service module (ansible.builtin.service) for hosts run by systemd:
 * the same check, diff and apply as the systemd module (systemd.c), reached
 * through that module's descriptor, with service's own argument table.
 * Arguments that only make sense for SysV init or BSD rc (pattern,
 * runlevel, arguments, sleep) are accepted for playbook compatibility. */
#include "config.h"

#include "module.h"

extern const struct aicp_module aicp_mod_systemd;

static const struct aicp_arg_spec service_args[] = {
    {.name = "name",
     .type = AICP_ARG_STR,
     .required = 1,
     .help = "Name of the service (a systemd unit; .service is implied)."},
    {.name = "state",
     .type = AICP_ARG_STR,
     .choices = "started|stopped|restarted|reloaded",
     .help = "started/stopped act only when needed; restarted and reloaded always act."},
    {.name = "enabled",
     .type = AICP_ARG_BOOL,
     .help = "Whether the service starts on boot. At least one of state and enabled is required."},
    {.name = "arguments",
     .type = AICP_ARG_STR,
     .def = "",
     .aliases = "args",
     .help = "Additional arguments for init scripts; ignored under systemd (as in Ansible)."},
    {.name = "pattern",
     .type = AICP_ARG_STR,
     .help = "Process pattern for init systems without status; ignored under systemd."},
    {.name = "runlevel",
     .type = AICP_ARG_STR,
     .def = "default",
     .help = "OpenRC runlevel; ignored under systemd."},
    {.name = "sleep",
     .type = AICP_ARG_INT,
     .help = "Seconds to sleep between stop and start of a restart; ignored under systemd."},
    {.name = "use",
     .type = AICP_ARG_STR,
     .def = "auto",
     .help = "Service manager to use; auto and systemd both mean systemctl, the only one "
             "supported."},
    {.name = NULL},
};

static int service_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                         struct aicp_err *err)
{
    return aicp_mod_systemd.ops->check(ctx, args, current, err);
}

static int service_diff(const json_t *current, const struct aicp_args *args,
                        struct aicp_change **change, struct aicp_err *err)
{
    return aicp_mod_systemd.ops->diff(current, args, change, err);
}

static int service_apply(struct aicp_ctx *ctx, const struct aicp_change *change,
                         struct aicp_err *err)
{
    return aicp_mod_systemd.ops->apply(ctx, change, err);
}

static const struct aicp_module_ops service_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = service_check,
    .diff = service_diff,
    .apply = service_apply,
};

const struct aicp_module aicp_mod_service = {
    .name = "service",
    .summary = "Manage services (through systemctl)",
    .args = service_args,
    .flags = AICP_MOD_NEEDS_SSH,
    .ops = &service_ops,
};
