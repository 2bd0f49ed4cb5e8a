/* The shell module: runs a command line with /bin/sh (or the executable
 * argument) on the host, read from a here-document rather than given with
 * -c, so that no secret in it shows on a process's argv, with chdir, creates/removes, stdin and
 * the result keys of Ansible's shell module. creates/removes are tested in
 * check() (one round trip); otherwise the run is always a change and never
 * re-checked. */
#include "config.h"

#include "err.h"
#include "fileutil.h"
#include "module.h"

static const struct aicp_arg_spec shell_args[] = {
    {.name = "_raw_params",
     .type = AICP_ARG_STR,
     .help = "The command line, written free-form after the module name."},
    {.name = "cmd", .type = AICP_ARG_STR, .help = "The command line, as an option."},
    {.name = "executable",
     .type = AICP_ARG_PATH,
     .help = "The shell that runs the command (default /bin/sh); it must accept -c and `.`."},
    {.name = "expand_argument_vars",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .help = "Accepted for compatibility; the shell expands what it expands."},
    {.name = "chdir", .type = AICP_ARG_PATH, .help = "Change into this directory first."},
    {.name = "creates",
     .type = AICP_ARG_PATH,
     .help = "A path or glob; when it exists the command is not run."},
    {.name = "removes",
     .type = AICP_ARG_PATH,
     .help = "A path or glob; when it does not exist the command is not run."},
    {.name = "stdin", .type = AICP_ARG_STR, .help = "Data sent to the command's standard input."},
    {.name = "stdin_add_newline",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .help = "Append a newline to stdin."},
    {.name = "strip_empty_ends",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .help = "Strip empty lines from the start and end of stdout/stderr."},
    {.name = NULL},
};

static int shell_diff(const json_t *current, const struct aicp_args *args,
                      struct aicp_change **change, struct aicp_err *err)
{
    return aicp_fu_cmd_diff(current, args, 1, change, err);
}

/* Refused when the playbook loads, as the command module does: a task
 * with only creates=/chdir= and no command line. */
static int shell_validate(const struct aicp_args *args, const json_t *given, int static_only,
                          struct aicp_err *err)
{
    const json_t *raw = aicp_args_get(args, "_raw_params"), *cmd = aicp_args_get(args, "cmd");
    (void)given;
    (void)static_only;
    if ((json_is_string(raw) && json_string_length(raw) > 0) ||
        (json_is_string(cmd) && json_string_length(cmd) > 0))
        return 0;
    return aicp_err_set(err, AICP_EINVAL, "no command given");
}

static const struct aicp_module_ops shell_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = aicp_fu_cmd_check,
    .diff = shell_diff,
    .apply = aicp_fu_cmd_apply,
};

const struct aicp_module aicp_mod_shell = {
    .name = "shell",
    .summary = "Execute shell commands on targets",
    .args = shell_args,
    .flags = AICP_MOD_FREEFORM | AICP_MOD_NO_VERIFY | AICP_MOD_CHECK_SKIPS | AICP_MOD_NEEDS_SSH,
    .ops = &shell_ops,
    .validate = shell_validate,
};
