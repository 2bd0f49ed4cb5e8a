/* The assert module: checks that conditions hold, as Ansible's assert
 * action. Each condition is a bare Jinja expression evaluated against the
 * task's variables; the first false one fails the task and is reported. */
#include "config.h"

#include <stdlib.h>

#include "err.h"
#include "module.h"
#include "template.h"
#include "util.h"

static const struct aicp_arg_spec assert_args[] = {
    {.name = "that", .type = AICP_ARG_RAW, .required = 1,
     .help = "A condition or a list of conditions, written as `when:` conditions are."},
    {.name = "fail_msg", .type = AICP_ARG_RAW, .aliases = "msg",
     .help = "The message of a failed assertion (a string or a list of strings)."},
    {.name = "success_msg", .type = AICP_ARG_RAW,
     .help = "The message when every condition holds."},
    {.name = "quiet", .type = AICP_ARG_BOOL, .def = "no",
     .help = "Accepted for compatibility: aicp's output is already terse."},
    {.name = NULL},
};

/* A message value as text for err->msg. */
static int msg_text(char **out, const json_t *msg)
{
    return json_is_string(msg) ? ((*out = aicp_strdup(json_string_value(msg))) ? 0 : AICP_ENOMEM)
                               : aicp_tmpl_to_string(out, msg);
}

static int eval_condition(int *ok, const json_t *cond, const json_t *vars, struct aicp_err *err)
{
    if (json_is_boolean(cond)) {
        *ok = json_is_true(cond);
        return 0;
    }
    if (json_is_string(cond)) {
        struct aicp_err e = {0};
        int rc = aicp_tmpl_eval_bool(ok, json_string_value(cond), vars, &e);
        if (rc == 0)
            return 0;
        return aicp_err_set(err, AICP_EFAILED, "The conditional check '%s' failed. The error was: %s",
                            json_string_value(cond), e.msg);
    }
    if (json_is_integer(cond) || json_is_real(cond)) {
        *ok = json_number_value(cond) != 0;
        return 0;
    }
    return aicp_err_set(err, AICP_EFAILED, "assert's conditions must be strings or booleans");
}

static int assert_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                        struct aicp_err *err)
{
    const json_t *that = aicp_args_get(args, "that");
    json_t *list = NULL;
    char *text = NULL;
    size_t i;
    json_t *cond;
    int rc = 0;

    *current = json_object();
    if (json_is_array(that))
        list = json_incref((json_t *)that);
    else
        list = json_pack("[O]", that ? that : json_null());
    if (list == NULL || *current == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    json_array_foreach(list, i, cond) {
        int ok = 0;
        if ((rc = eval_condition(&ok, cond, ctx->vars, err)) != 0)
            goto out;
        if (ok)
            continue;
        const json_t *fmsg = aicp_args_get(args, "fail_msg");
        json_object_set_new(ctx->result, "evaluated_to", json_false());
        json_object_set(ctx->result, "assertion", cond);
        if (fmsg == NULL || json_is_null(fmsg)) {
            json_object_set_new(ctx->result, "msg", json_string("Assertion failed"));
            rc = aicp_err_set(err, AICP_EFAILED, "Assertion failed");
            goto out;
        }
        json_object_set(ctx->result, "msg", (json_t *)fmsg);
        if (msg_text(&text, fmsg) != 0) {
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
        rc = aicp_err_set(err, AICP_EFAILED, "%s", text);
        goto out;
    }
    const json_t *smsg = aicp_args_get(args, "success_msg");
    if (smsg != NULL && !json_is_null(smsg))
        json_object_set(ctx->result, "msg", (json_t *)smsg);
    else
        json_object_set_new(ctx->result, "msg", json_string("All assertions passed"));
out:
    free(text);
    json_decref(list);
    return rc;
}

static const struct aicp_module_ops assert_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = assert_check,
    .diff = aicp_module_diff_none,
    .apply = aicp_module_apply_none,
};

const struct aicp_module aicp_mod_assert = {
    .name = "assert",
    .summary = "Asserts given expressions are true",
    .args = assert_args,
    .flags = AICP_MOD_ACTION,
    .ops = &assert_ops,
};
