/* The set_fact module: sets host variables for the rest of the run, as
 * Ansible's set_fact action. It takes any argument names (each one is a
 * fact), so its table lists only `cacheable` and it carries
 * AICP_MOD_ANY_ARGS. The executor merges result.ansible_facts into the
 * host's variables. */
#include "config.h"

#include <ctype.h>
#include <string.h>

#include "err.h"
#include "module.h"

static const struct aicp_arg_spec set_fact_args[] = {
    {.name = "cacheable", .type = AICP_ARG_BOOL, .def = "no",
     .help = "Accepted for compatibility: aicp has no fact cache, facts last for the run."},
    {.name = NULL},
};

/* Python's str.isidentifier for ASCII names. */
static int valid_name(const char *s)
{
    if (!(isalpha((unsigned char)*s) || *s == '_'))
        return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return 0;
    return 1;
}

static int set_fact_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                          struct aicp_err *err)
{
    json_t *facts = json_object();
    const char *k;
    json_t *v;
    int rc = 0;

    *current = json_object();
    if (facts == NULL || *current == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    json_object_foreach(args->v, k, v) {
        if (strcmp(k, "cacheable") == 0)
            continue;
        if (!valid_name(k)) {
            rc = aicp_err_set(err, AICP_EFAILED,
                              "The variable name '%s' is not valid. Variables must start with a "
                              "letter or underscore character, and contain only letters, numbers "
                              "and underscores.",
                              k);
            goto out;
        }
        /* As Ansible (without jinja2 native): k=v strings that spell a
         * boolean become booleans. */
        if (json_is_string(v)) {
            const char *s = json_string_value(v);
            if (strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0) {
                json_object_set_new(facts, k, json_true());
                continue;
            }
            if (strcasecmp(s, "false") == 0 || strcasecmp(s, "no") == 0) {
                json_object_set_new(facts, k, json_false());
                continue;
            }
        }
        json_object_set(facts, k, v);
    }
    if (json_object_size(facts) == 0) {
        rc = aicp_err_set(err, AICP_EFAILED,
                          "No key/value pairs provided, at least one is required for this action "
                          "to succeed");
        goto out;
    }
    json_object_set(ctx->result, "ansible_facts", facts);
    if (aicp_args_bool(args, "cacheable", 0))
        json_object_set_new(ctx->result, "_ansible_facts_cacheable", json_true());
out:
    json_decref(facts);
    return rc;
}

static const struct aicp_module_ops set_fact_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = set_fact_check,
    .diff = aicp_module_diff_none,
    .apply = aicp_module_apply_none,
};

const struct aicp_module aicp_mod_set_fact = {
    .name = "set_fact",
    .summary = "Set host variables and facts",
    .args = set_fact_args,
    .flags = AICP_MOD_ACTION | AICP_MOD_ANY_ARGS,
    .ops = &set_fact_ops,
};
