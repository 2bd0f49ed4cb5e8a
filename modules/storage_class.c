/* The storage_class module: a StorageClass, by default for NetApp Trident
 * (provisioner csi.trident.netapp.io, parameters backendType and
 * storagePools), with reclaim policy, binding mode, expansion, mount
 * options and the default-class annotation. With exclusive_default, every
 * other class that claims to be the default is demoted (its annotation set
 * to "false" with a merge patch, as aicp does not own that field there);
 * the demotions are part of check and diff, so plan shows them. The API
 * refuses to change provisioner, parameters, reclaimPolicy and
 * volumeBindingMode: such drift needs `replace` (or --allow-replace). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kubeutil.h"
#include "module.h"
#include "util.h"

#define SC_API "storage.k8s.io/v1"
#define SC_DEFAULT "storageclass.kubernetes.io/is-default-class"
#define SC_DEFAULT_BETA "storageclass.beta.kubernetes.io/is-default-class"

static const struct aicp_arg_spec sc_args[] = {
    AICP_KU_CONN_ARGS,
    {.name = "name", .type = AICP_ARG_STR, .required = 1, .help = "The StorageClass's name."},
    {.name = "provisioner",
     .type = AICP_ARG_STR,
     .def = "csi.trident.netapp.io",
     .help = "The CSI driver that provisions its volumes (immutable)."},
    {.name = "backend_type",
     .type = AICP_ARG_STR,
     .help = "Trident's parameters.backendType: ontap-nas, ontap-nas-flexgroup... (immutable)."},
    {.name = "storage_pools",
     .type = AICP_ARG_STR,
     .help = "Trident's parameters.storagePools, e.g. \"backend:aggr1,aggr2\" (immutable)."},
    {.name = "parameters",
     .type = AICP_ARG_DICT,
     .help = "Further parameters (values as strings; immutable)."},
    {.name = "reclaim_policy",
     .type = AICP_ARG_STR,
     .def = "Delete",
     .choices = "Delete|Retain",
     .help = "What happens to a volume when its claim goes (immutable)."},
    {.name = "volume_binding_mode",
     .type = AICP_ARG_STR,
     .def = "Immediate",
     .choices = "Immediate|WaitForFirstConsumer",
     .help = "When volumes are bound (immutable)."},
    {.name = "allow_volume_expansion", .type = AICP_ARG_BOOL, .help = "Claims may grow."},
    {.name = "mount_options", .type = AICP_ARG_LIST, .help = "NFS mount options of its volumes."},
    {.name = "default",
     .type = AICP_ARG_BOOL,
     .help = "Mark it the default class (annotation " SC_DEFAULT " \"true\"). false: \"false\" "
             "where aicp had set it."},
    {.name = "exclusive_default",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "With default: true, set every other class's default annotation to \"false\"."},
    {.name = "labels", .type = AICP_ARG_DICT, .help = "Labels of the class."},
    {.name = "annotations", .type = AICP_ARG_DICT, .help = "Annotations of the class."},
    {.name = "state",
     .type = AICP_ARG_STR,
     .def = "present",
     .choices = "present|absent",
     .help = "Whether the class exists."},
    {.name = "replace",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Delete and re-create the class when an immutable field changes."},
    {.name = "force",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Server-side apply with force: take over fields another manager owns."},
    {.name = NULL},
};

static const char *const sc_immutable[] = {"provisioner", "parameters", "reclaimPolicy",
                                           "volumeBindingMode", NULL};

/* Parameter values are strings in the API. */
static json_t *param_value(const json_t *v)
{
    char buf[64];
    if (json_is_string(v))
        return json_incref((json_t *)v);
    if (json_is_boolean(v))
        return json_string(json_is_true(v) ? "true" : "false");
    if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return json_string(buf);
    }
    if (json_is_real(v)) {
        snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));
        return json_string(buf);
    }
    return NULL;
}

static int build_spec(json_t *m, const struct aicp_args *args, struct aicp_err *err)
{
    json_t *params = json_object();
    const json_t *extra = aicp_args_get(args, "parameters");
    const char *k;
    json_t *v;
    int rc = 0;

    if (params == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    json_object_foreach((json_t *)extra, k, v) {
        json_t *s = param_value(v);
        if (s == NULL) {
            rc = aicp_err_set(err, AICP_EINVAL, "parameters.%s: the value must be a string", k);
            goto out;
        }
        json_object_set_new(params, k, s);
    }
    if (aicp_args_str(args, "backend_type"))
        json_object_set_new(params, "backendType",
                            json_string(aicp_args_str(args, "backend_type")));
    if (aicp_args_str(args, "storage_pools"))
        json_object_set_new(params, "storagePools",
                            json_string(aicp_args_str(args, "storage_pools")));
    json_object_set_new(m, "provisioner", json_string(aicp_args_str(args, "provisioner")));
    if (json_object_size(params) > 0)
        json_object_set(m, "parameters", params);
    json_object_set_new(m, "reclaimPolicy", json_string(aicp_args_str(args, "reclaim_policy")));
    json_object_set_new(m, "volumeBindingMode",
                        json_string(aicp_args_str(args, "volume_binding_mode")));
    if (aicp_args_get(args, "allow_volume_expansion") != NULL)
        json_object_set_new(m, "allowVolumeExpansion",
                            json_boolean(aicp_args_bool(args, "allow_volume_expansion", 0)));
    const json_t *mo = aicp_args_get(args, "mount_options");
    if (json_is_array(mo) && json_array_size(mo) > 0)
        json_object_set(m, "mountOptions", (json_t *)mo);
out:
    json_decref(params);
    return rc;
}

static void set_annotation(json_t *m, const char *key, const char *value)
{
    json_t *md = json_object_get(m, "metadata");
    json_t *ann = json_object_get(md, "annotations");
    if (!json_is_object(ann)) {
        ann = json_object();
        json_object_set_new(md, "annotations", ann);
    }
    json_object_set_new(ann, key, json_string(value));
}

static const char *annotation(const json_t *obj, const char *key)
{
    return json_string_value(
        json_object_get(json_object_get(json_object_get(obj, "metadata"), "annotations"), key));
}

/* Whether aicp's field manager owns the default annotation of obj: only
 * then may default: false turn it to "false" (another tool's default is
 * not ours to demote unless exclusive_default says so). */
static int aicp_owns_default(const json_t *obj)
{
    const json_t *mf = json_object_get(json_object_get(obj, "metadata"), "managedFields");
    size_t i;
    json_t *f;
    json_array_foreach(mf, i, f) {
        const char *mgr = json_string_value(json_object_get(f, "manager"));
        if (mgr == NULL || strcmp(mgr, "aicp") != 0)
            continue;
        char *dump = json_dumps(json_object_get(f, "fieldsV1"), JSON_COMPACT);
        int owns = dump != NULL && strstr(dump, SC_DEFAULT) != NULL;
        free(dump);
        if (owns)
            return 1;
    }
    return 0;
}

/* The demotions of exclusive_default: one merge_patch entry (see
 * kubeutil.c) per other class whose annotation says "true". */
static int add_demotions(struct aicp_ctx *ctx, const struct aicp_args *args, json_t *current,
                         struct aicp_err *err)
{
    struct aicp_kube *k = NULL;
    json_t *items = NULL;
    const char *name = aicp_args_str(args, "name");
    json_t *objects = json_object_get(current, "objects");
    size_t i;
    json_t *sc;
    int rc;

    if ((rc = aicp_ku_client(ctx, args, &k, err)) != 0)
        return rc;
    if ((rc = aicp_kube_list(k, SC_API, "StorageClass", NULL, NULL, &items, err)) != 0)
        return rc;
    json_array_foreach(items, i, sc) {
        const char *other =
            json_string_value(json_object_get(json_object_get(sc, "metadata"), "name"));
        if (other == NULL || strcmp(other, name) == 0)
            continue;
        json_t *desired = aicp_ku_manifest(SC_API, "StorageClass", NULL, other);
        int claims = 0;
        for (int b = 0; b < 2; b++) {
            const char *key = b ? SC_DEFAULT_BETA : SC_DEFAULT;
            const char *v = annotation(sc, key);
            if (v != NULL && strcmp(v, "true") == 0) {
                set_annotation(desired, key, "false");
                claims = 1;
            }
        }
        json_t *drift = NULL;
        if (!claims || aicp_kube_drift(desired, sc, &drift) != 0) {
            json_decref(desired);
            continue;
        }
        char ref[512];
        snprintf(ref, sizeof(ref), "StorageClass/%s", other);
        json_t *md = json_object_get(sc, "metadata");
        /* The demotion is a decision on what was just read: it carries
         * that resourceVersion, so a write in between makes the server
         * refuse it (409) and the client read and decide again, rather
         * than patch a class someone else just changed. Drift never
         * compares resourceVersion. */
        const char *rv = json_string_value(json_object_get(md, "resourceVersion"));
        if (rv != NULL)
            json_object_set_new(json_object_get(desired, "metadata"), "resourceVersion",
                                json_string(rv));
        if (json_is_object(md))
            json_object_del(md, "managedFields");
        json_array_append_new(objects, json_pack("{s:s, s:o, s:O, s:o, s:b, s:[], s:b}", "ref", ref,
                                                 "desired", desired, "live", sc, "drift", drift,
                                                 "replace", 0, "immutable", "merge_patch", 1));
    }
    json_decref(items);
    return 0;
}

static int sc_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                    struct aicp_err *err)
{
    const char *state = aicp_args_str(args, "state");
    const char *name = aicp_args_str(args, "name");
    struct aicp_ku_opts o = {
        .absent = state != NULL && strcmp(state, "absent") == 0,
        .immutable = sc_immutable,
        .allow_replace = aicp_args_bool(args, "replace", 0),
        .force = aicp_args_bool(args, "force", 0),
    };
    int is_default = aicp_args_bool(args, "default", 0);
    json_t *m = aicp_ku_manifest(SC_API, "StorageClass", NULL, name);
    int rc;

    *current = NULL;
    if (m == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    if (!o.absent) {
        if ((rc = aicp_ku_set_meta(m, args, err)) != 0 || (rc = build_spec(m, args, err)) != 0) {
            json_decref(m);
            return rc;
        }
        if (is_default) {
            set_annotation(m, SC_DEFAULT, "true");
        } else {
            /* Not the default (any more): where aicp made it the default,
             * say "false"; a field aicp stops sending would otherwise go
             * unnoticed by drift on declared fields. */
            struct aicp_kube *k = NULL;
            struct aicp_kube_ref r = {.api_version = SC_API, .kind = "StorageClass", .name = name};
            json_t *live = NULL;
            if ((rc = aicp_ku_client(ctx, args, &k, err)) != 0 ||
                (rc = aicp_kube_get(k, &r, &live, err)) != 0) {
                json_decref(m);
                return rc;
            }
            if (live != NULL && annotation(live, SC_DEFAULT) != NULL && aicp_owns_default(live))
                set_annotation(m, SC_DEFAULT, "false");
            json_decref(live);
        }
    }
    if ((rc = aicp_ku_check(ctx, args, json_pack("[o]", m), &o, current, err)) != 0)
        return rc;
    if (!o.absent && is_default && aicp_args_bool(args, "exclusive_default", 0) &&
        (rc = add_demotions(ctx, args, *current, err)) != 0) {
        json_decref(*current);
        *current = NULL;
        return rc;
    }
    return 0;
}

static const struct aicp_module_ops sc_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = sc_check,
    .diff = aicp_ku_diff,
    .apply = aicp_ku_apply,
};

const struct aicp_module aicp_mod_storage_class = {
    .name = "storage_class",
    .summary = "Kubernetes StorageClass (Trident by default), default class handling",
    .args = sc_args,
    .flags = AICP_MOD_NEEDS_KUBE,
    .ops = &sc_ops,
};
