/* The debug module: prints a message or a variable's value during a run,
 * as Ansible's debug action. It runs in the executor (no connection) and
 * only fills the task's result; it never changes anything. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "module.h"
#include "template.h"

static const struct aicp_arg_spec debug_args[] = {
    {.name = "msg", .type = AICP_ARG_RAW, .def = "Hello world!",
     .help = "The message to print. Any value: a string, list or mapping is shown as it is."},
    {.name = "var", .type = AICP_ARG_RAW,
     .help = "A variable name or expression (no braces) whose value is shown under its own "
             "name. Mutually exclusive with msg."},
    {.name = "verbosity", .type = AICP_ARG_INT, .def = "0",
     .help = "Show only when the run's verbosity (-v count) is at least this; else skipped."},
    {.name = NULL},
};

/* The run's verbosity, which the executor exposes as ansible_verbosity. */
static long long run_verbosity(const json_t *vars)
{
    const json_t *v = json_object_get(vars, "ansible_verbosity");
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

static int debug_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                       struct aicp_err *err)
{
    const json_t *var = aicp_args_get(args, "var");
    long long verbosity = aicp_args_int(args, "verbosity", 0);
    json_t *value = NULL;
    int rc = 0;

    *current = json_object();
    if (*current == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    if (verbosity > run_verbosity(ctx->vars)) {
        json_object_set_new(ctx->result, "skipped", json_true());
        json_object_set_new(ctx->result, "skipped_reason",
                            json_string("Verbosity threshold not met."));
        return 0;
    }
    if (var == NULL || json_is_null(var)) {
        json_object_set(ctx->result, "msg", json_object_get(args->v, "msg"));
        goto out;
    }
    if (json_is_string(var)) {
        struct aicp_err e = {0};
        const char *expr = json_string_value(var);
        int r = aicp_tmpl_is_template(expr) ? aicp_tmpl_render_str(&value, expr, ctx->vars, &e)
                                            : aicp_tmpl_eval(&value, expr, ctx->vars, &e);
        if (r == AICP_ENOMEM) {
            rc = aicp_err_set(err, r, "out of memory");
            goto out;
        }
        if (r != 0) {
            json_decref(value);
            value = json_string("VARIABLE IS NOT DEFINED!");
        }
        json_object_set_new(ctx->result, expr, value);
        goto out;
    }
    /* a list or mapping given as var is shown under its Python type name */
    value = json_incref((json_t *)var);
    json_object_set_new(ctx->result,
                        json_is_array(var) ? "<class 'list'>"
                        : json_is_object(var) ? "<class 'dict'>" : "<class 'str'>",
                        value);
out:
    return rc;
}

static const struct aicp_module_ops debug_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = debug_check,
    .diff = aicp_module_diff_none,
    .apply = aicp_module_apply_none,
};

const struct aicp_module aicp_mod_debug = {
    .name = "debug",
    .summary = "Print statements during execution",
    .args = debug_args,
    .flags = AICP_MOD_ACTION,
    .ops = &debug_ops,
};
