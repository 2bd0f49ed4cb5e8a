/* The namespace module: a Kubernetes Namespace with labels and
 * annotations, present or absent. Everything else is the shared life
 * cycle of modules/kubeutil.h; deleting waits until the namespace (and
 * what was in it) is gone, so that a second delete reports unchanged. */
#include "config.h"

#include <string.h>

#include "err.h"
#include "kubeutil.h"
#include "module.h"

static const struct aicp_arg_spec namespace_args[] = {
    AICP_KU_CONN_ARGS,
    {.name = "name", .type = AICP_ARG_STR, .required = 1, .help = "The namespace's name."},
    {.name = "labels",
     .type = AICP_ARG_DICT,
     .help = "Labels the namespace has (others are kept)."},
    {.name = "annotations",
     .type = AICP_ARG_DICT,
     .help = "Annotations the namespace has (others are kept)."},
    {.name = "state",
     .type = AICP_ARG_STR,
     .def = "present",
     .choices = "present|absent",
     .help = "absent deletes the namespace and everything in it."},
    {.name = "force",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Server-side apply with force: take over fields another manager owns."},
    {.name = "wait_timeout",
     .type = AICP_ARG_INT,
     .def = "300",
     .help = "Seconds to wait for a deleted namespace to be gone."},
    {.name = NULL},
};

static int namespace_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                           struct aicp_err *err)
{
    const char *state = aicp_args_str(args, "state");
    struct aicp_kube_wait w = {.timeout_s = (double)aicp_args_int(args, "wait_timeout", 300)};
    struct aicp_ku_opts o = {.absent = state != NULL && strcmp(state, "absent") == 0,
                             .force = aicp_args_bool(args, "force", 0)};
    json_t *m = aicp_ku_manifest("v1", "Namespace", NULL, aicp_args_str(args, "name"));
    int rc;

    if (m == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    if (!o.absent && (rc = aicp_ku_set_meta(m, args, err)) != 0) {
        json_decref(m);
        return rc;
    }
    /* Only the delete timeout: a namespace has nothing to become ready. */
    if (o.absent)
        o.wait = &w;
    return aicp_ku_check(ctx, args, json_pack("[o]", m), &o, current, err);
}

static const struct aicp_module_ops namespace_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = namespace_check,
    .diff = aicp_ku_diff,
    .apply = aicp_ku_apply,
};

const struct aicp_module aicp_mod_namespace = {
    .name = "namespace",
    .summary = "Kubernetes Namespace with labels and annotations",
    .args = namespace_args,
    .flags = AICP_MOD_NEEDS_KUBE,
    .ops = &namespace_ops,
};
