/* The fail module: fails the task with a message, as Ansible's fail
 * action. Used with `when:` to stop a host on a condition. */
#include "config.h"

#include <stdlib.h>

#include "err.h"
#include "module.h"
#include "template.h"

static const struct aicp_arg_spec fail_args[] = {
    {.name = "msg", .type = AICP_ARG_RAW, .def = "Failed as requested from task",
     .help = "The failure message."},
    {.name = NULL},
};

static int fail_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                      struct aicp_err *err)
{
    const json_t *msg = aicp_args_get(args, "msg");
    char *text = NULL;

    *current = json_object();
    if (json_is_string(msg)) {
        json_object_set(ctx->result, "msg", (json_t *)msg);
        return aicp_err_set(err, AICP_EFAILED, "%s", json_string_value(msg));
    }
    if (msg == NULL || json_is_null(msg) || aicp_tmpl_to_string(&text, msg) != 0) {
        json_object_set_new(ctx->result, "msg", json_string("Failed as requested from task"));
        return aicp_err_set(err, AICP_EFAILED, "Failed as requested from task");
    }
    json_object_set(ctx->result, "msg", (json_t *)msg);
    aicp_err_set(err, AICP_EFAILED, "%s", text);
    free(text);
    return AICP_EFAILED;
}

static const struct aicp_module_ops fail_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = fail_check,
    .diff = aicp_module_diff_none,
    .apply = aicp_module_apply_none,
};

const struct aicp_module aicp_mod_fail = {
    .name = "fail",
    .summary = "Fail with a custom message",
    .args = fail_args,
    .flags = AICP_MOD_ACTION,
    .ops = &fail_ops,
};
