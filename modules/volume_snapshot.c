/* The volume_snapshot module: one CSI VolumeSnapshot
 * (snapshot.storage.k8s.io/v1) of a PersistentVolumeClaim, the way a data
 * scientist versions a data set or a model checkpoint on Trident (TR-4798's
 * day-2 workflow: snapshot, then clone or restore from it). The snapshot is
 * kept with kubeutil's life cycle (server-side apply, drift on the declared
 * fields, a dry run in check mode). What a snapshot is of cannot change: it
 * was taken of one claim at one moment, so a different pvc for an existing
 * snapshot fails before anything is sent, unless replace deletes it and
 * takes a new one. apply() waits until status.readyToUse and reports the
 * restore size and the bound VolumeSnapshotContent. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kube.h"
#include "kubeutil.h"
#include "module.h"
#include "util.h"

#define SNAP_API "snapshot.storage.k8s.io/v1"
#define SNAP_KIND "VolumeSnapshot"
#define SOURCE_PATH "spec.source.persistentVolumeClaimName"

static const struct aicp_arg_spec vs_args[] = {
    AICP_KU_CONN_ARGS,
    {.name = "name", .type = AICP_ARG_STR, .required = 1, .help = "Name of the VolumeSnapshot."},
    {.name = "namespace",
     .type = AICP_ARG_STR,
     .help = "Namespace of the snapshot and its claim (default: the kubeconfig context's "
             "namespace)."},
    {.name = "pvc",
     .type = AICP_ARG_STR,
     .help = "The claim to snapshot (spec.source.persistentVolumeClaimName); required with "
             "state=present. It cannot change for an existing snapshot."},
    {.name = "snapshot_class",
     .type = AICP_ARG_STR,
     .help = "VolumeSnapshotClass (spec.volumeSnapshotClassName), e.g. Trident's "
             "csi-snapclass; default: the cluster's default class for the claim's driver. It "
             "cannot change for an existing snapshot."},
    {.name = "labels", .type = AICP_ARG_DICT, .help = "Labels of the snapshot."},
    {.name = "annotations", .type = AICP_ARG_DICT, .help = "Annotations of the snapshot."},
    {.name = "state",
     .type = AICP_ARG_STR,
     .def = "present",
     .choices = "present|absent",
     .help = "present: the snapshot exists; absent: it is deleted (with its content, when "
             "the class's deletionPolicy is Delete)."},
    {.name = "wait",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .help = "After a change, wait until status.readyToUse is true."},
    {.name = "wait_timeout",
     .type = AICP_ARG_INT,
     .def = "300",
     .help = "Seconds to wait for readyToUse."},
    {.name = "replace",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Allow deleting the snapshot and taking a new one when pvc or snapshot_class "
             "changes (the old point in time is lost)."},
    {.name = NULL},
};

static const char *const vs_immutable[] = {"spec.source", "spec.volumeSnapshotClassName", NULL};

static const char *str_at(const json_t *obj, const char *path)
{
    return json_string_value(aicp_kube_field(obj, path));
}

/* The results every run reports, from the live snapshot (NULL: none). */
static void set_results(json_t *result, const json_t *live)
{
    const json_t *ready = aicp_kube_field(live, "status.readyToUse");
    const char *size = str_at(live, "status.restoreSize");
    const char *content = str_at(live, "status.boundVolumeSnapshotContentName");
    const char *when = str_at(live, "status.creationTime");
    const char *cls = str_at(live, "spec.volumeSnapshotClassName");

    json_object_set_new(result, "ready_to_use", json_boolean(json_is_true(ready)));
    json_object_set_new(result, "restore_size", size ? json_string(size) : json_null());
    json_object_set_new(result, "content_name", content ? json_string(content) : json_null());
    json_object_set_new(result, "creation_time", when ? json_string(when) : json_null());
    json_object_set_new(result, "snapshot_class", cls ? json_string(cls) : json_null());
}

static int build_manifest(json_t **out, const struct aicp_args *args, struct aicp_err *err)
{
    json_t *m = aicp_ku_manifest(SNAP_API, SNAP_KIND, aicp_args_str(args, "namespace"),
                                 aicp_args_str(args, "name"));
    int rc;

    *out = NULL;
    if (m == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = aicp_ku_set_meta(m, args, err)) != 0)
        goto out;
    json_t *spec =
        json_pack("{s:{s:s}}", "source", "persistentVolumeClaimName", aicp_args_str(args, "pvc"));
    if (spec == NULL || json_object_set_new(m, "spec", spec) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    const char *cls = aicp_args_str(args, "snapshot_class");
    if (cls != NULL &&
        json_object_set_new(spec, "volumeSnapshotClassName", json_string(cls)) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    *out = m;
    m = NULL;
    rc = 0;
out:
    json_decref(m);
    return rc;
}

/* A snapshot is a point in time of one claim: another claim (or class)
 * means another snapshot, never an update of this one. */
static int check_repoint(struct aicp_kube *k, const json_t *m, const struct aicp_args *args,
                         json_t **live, struct aicp_err *err)
{
    struct aicp_kube_ref ref;
    int rc;

    *live = NULL;
    if ((rc = aicp_kube_ref_of(&ref, m, err)) != 0 || (rc = aicp_kube_get(k, &ref, live, err)) != 0)
        return rc;
    if (*live == NULL || aicp_args_bool(args, "replace", 0))
        return 0;
    const char *ns = str_at(*live, "metadata.namespace");
    const char *have = str_at(*live, SOURCE_PATH);
    const char *want = aicp_args_str(args, "pvc");
    if (have == NULL || strcmp(have, want) != 0)
        return aicp_err_set(err, AICP_EFAILED,
                            "VolumeSnapshot %s/%s was taken of PVC '%s': a snapshot cannot be "
                            "re-pointed to PVC '%s' (replace: true deletes it and takes a new "
                            "one, losing the old point in time)",
                            ns ? ns : "", ref.name, have ? have : "(none)", want);
    const char *hcls = str_at(*live, "spec.volumeSnapshotClassName");
    const char *wcls = aicp_args_str(args, "snapshot_class");
    if (wcls != NULL && (hcls == NULL || strcmp(hcls, wcls) != 0))
        return aicp_err_set(err, AICP_EFAILED,
                            "VolumeSnapshot %s/%s was taken with class '%s': a snapshot that "
                            "exists cannot move to class '%s' (replace: true deletes it and "
                            "takes a new one)",
                            ns ? ns : "", ref.name, hcls ? hcls : "(none)", wcls);
    return 0;
}

static int vs_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                    struct aicp_err *err)
{
    struct aicp_kube *k = NULL;
    json_t *m = NULL, *live = NULL;
    int absent = strcmp(aicp_args_str(args, "state"), "absent") == 0;
    const char *name = aicp_args_str(args, "name");
    int rc;

    *current = NULL;
    if (!absent && aicp_args_str(args, "pvc") == NULL) {
        rc = aicp_err_set(err, AICP_EINVAL,
                          "volume_snapshot %s: pvc (the claim to snapshot) is required with "
                          "state=present",
                          name);
        goto out;
    }
    if ((rc = aicp_ku_client(ctx, args, &k, err)) != 0)
        goto out;
    if (absent)
        m = aicp_ku_manifest(SNAP_API, SNAP_KIND, aicp_args_str(args, "namespace"), name);
    else if ((rc = build_manifest(&m, args, err)) != 0)
        goto out;
    if (m == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    /* The namespace a ref names may be NULL (the context's): kube.c
     * resolves it on GET as on apply. */
    if (!absent && (rc = check_repoint(k, m, args, &live, err)) != 0)
        goto out;
    struct aicp_ku_opts o = {
        .absent = absent,
        .immutable = vs_immutable,
        .allow_replace = aicp_args_bool(args, "replace", 0),
    };
    json_t *manifests = json_pack("[o]", m);
    m = NULL;
    if (manifests == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = aicp_ku_check(ctx, args, manifests, &o, current, err)) != 0)
        goto out;
    const json_t *obj = json_array_get(json_object_get(*current, "objects"), 0);
    const json_t *now = json_object_get(obj, "live");
    if (!absent) /* a snapshot still to be taken is reported not ready */
        set_results(ctx->result, json_is_object(now) ? now : NULL);
out:
    json_decref(m);
    json_decref(live);
    return rc;
}

static int vs_apply(struct aicp_ctx *ctx, const struct aicp_change *change, struct aicp_err *err)
{
    const struct aicp_args *args = change->args;
    struct aicp_kube *k = NULL;
    json_t *obj = NULL;
    int rc;

    if ((rc = aicp_ku_apply(ctx, change, err)) != 0)
        goto out;
    if (strcmp(aicp_args_str(args, "state"), "absent") == 0 || !aicp_args_bool(args, "wait", 1))
        goto out;
    if ((rc = aicp_ku_client(ctx, args, &k, err)) != 0)
        goto out;
    struct aicp_kube_ref ref = {
        .api_version = SNAP_API,
        .kind = SNAP_KIND,
        .namespace = aicp_args_str(args, "namespace"),
        .name = aicp_args_str(args, "name"),
    };
    struct aicp_kube_wait w = {
        .field = "status.readyToUse",
        .value = "true",
        .timeout_s = (double)aicp_args_int(args, "wait_timeout", 300),
        .interval_s = 0.25, /* the snapshot controller answers in well under a second */
    };
    rc = aicp_kube_wait(k, &ref, &w, &obj, err);
    if (rc == AICP_ETIMEOUT && obj != NULL) {
        /* The controller says why in status.error (an unbound claim, a
         * missing class): that is the part worth reading. */
        const char *why = str_at(obj, "status.error.message");
        if (why != NULL) {
            char msg[sizeof(err->msg)];
            /* Truncation only shortens the message. */
            if (snprintf(msg, sizeof msg, "%s; the snapshot controller says: %s", err->msg, why) >
                0)
                aicp_err_set(err, rc, "%s", msg);
        }
    }
    if (obj != NULL)
        set_results(ctx->result, obj);
out:
    json_decref(obj);
    return rc;
}

static const struct aicp_module_ops vs_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = vs_check,
    .diff = aicp_ku_diff,
    .apply = vs_apply,
};

const struct aicp_module aicp_mod_volume_snapshot = {
    .name = "volume_snapshot",
    .summary = "Take and keep a CSI VolumeSnapshot of a PersistentVolumeClaim",
    .args = vs_args,
    .flags = AICP_MOD_NEEDS_KUBE,
    .ops = &vs_ops,
};
