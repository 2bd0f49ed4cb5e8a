/* The command module: runs a program on the host without a shell: the free-
 * form text is split as Python's shlex does (or argv is used) and every word
 * is quoted, so $VARS, globs and pipes are not interpreted. creates/removes
 * are tested in check() (one round trip); otherwise the run is always a
 * change and never re-checked. */
#include "config.h"

#include "err.h"
#include "fileutil.h"
#include "module.h"

static const struct aicp_arg_spec command_args[] = {
    {.name = "_raw_params",
     .type = AICP_ARG_STR,
     .help = "The command line, written free-form after the module name."},
    {.name = "cmd", .type = AICP_ARG_STR, .help = "The command line, as an option."},
    {.name = "argv",
     .type = AICP_ARG_LIST,
     .help = "The command as a list of words (no splitting, no quoting issues)."},
    {.name = "expand_argument_vars",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .help = "Accepted for compatibility; words are passed as written."},
    {.name = "chdir", .type = AICP_ARG_PATH, .help = "Change into this directory first."},
    {.name = "executable",
     .type = AICP_ARG_PATH,
     .help = "Not supported by command (use shell): accepted with a warning, and ignored."},
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

static int command_diff(const json_t *current, const struct aicp_args *args,
                        struct aicp_change **change, struct aicp_err *err)
{
    return aicp_fu_cmd_diff(current, args, 0, change, err);
}

/* Ansible's "no command given" and "only command or argv can be given, not
 * both", checked when the playbook is loaded (`command: creates=/x` alone
 * has no command) rather than when the task runs. A value that is still a
 * template may render empty: that is for the run to find. */
static int command_validate(const struct aicp_args *args, const json_t *given, int static_only,
                            struct aicp_err *err)
{
    const json_t *raw = aicp_args_get(args, "_raw_params"), *cmd = aicp_args_get(args, "cmd");
    const json_t *argv = aicp_args_get(args, "argv");
    (void)given;
    int has_cmd = (json_is_string(raw) && json_string_length(raw) > 0) ||
                  (json_is_string(cmd) && json_string_length(cmd) > 0);
    int has_argv = json_array_size(argv) > 0 || (static_only && aicp_args_is_template(argv));
    if (!has_cmd && !has_argv)
        return aicp_err_set(err, AICP_EINVAL, "no command given");
    if (has_cmd && json_array_size(argv) > 0)
        return aicp_err_set(err, AICP_EINVAL, "only command or argv can be given, not both");
    return 0;
}

static const struct aicp_module_ops command_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = aicp_fu_cmd_check,
    .diff = command_diff,
    .apply = aicp_fu_cmd_apply,
};

const struct aicp_module aicp_mod_command = {
    .name = "command",
    .summary = "Execute commands on targets",
    .args = command_args,
    .flags = AICP_MOD_FREEFORM | AICP_MOD_NO_VERIFY | AICP_MOD_CHECK_SKIPS | AICP_MOD_NEEDS_SSH,
    .ops = &command_ops,
    .validate = command_validate,
};
