/* The pvc module: one PersistentVolumeClaim, new or imported from an
 * existing ONTAP volume through Trident's import annotations. check() reads
 * the claim (and, for an import, the TridentBackendConfig whose
 * status.backendInfo.backendUUID names the backend the volume lives on) and
 * leaves the life cycle to kubeutil: server-side apply, drift on the
 * declared fields, and replacement when a field the API server refuses to
 * change (class, access modes, volume mode) is changed. A size may only
 * grow: a smaller one fails before anything is sent, since the API server
 * would refuse it and a volume cannot shrink anyway. apply() waits for
 * status.phase Bound and reports the phase and the bound volume. */
#include "config.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kube.h"
#include "kubeutil.h"
#include "module.h"
#include "util.h"

#define TRIDENT_API "trident.netapp.io/v1"
#define TBC_KIND "TridentBackendConfig"
#define SIZE_PATH "spec.resources.requests.storage"

static const struct aicp_arg_spec pvc_args[] = {
    AICP_KU_CONN_ARGS,
    {.name = "name", .type = AICP_ARG_STR, .required = 1, .help = "Name of the claim."},
    {.name = "namespace",
     .type = AICP_ARG_STR,
     .help = "Namespace of the claim (default: the kubeconfig context's namespace)."},
    {.name = "size",
     .type = AICP_ARG_STR,
     .help = "Requested storage (spec.resources.requests.storage), e.g. 10Ti; required with "
             "state=present. It may only grow."},
    {.name = "access_modes",
     .type = AICP_ARG_LIST,
     .def = "ReadWriteOnce",
     .help = "Access modes: ReadWriteOnce, ReadWriteMany, ReadOnlyMany (immutable)."},
    {.name = "storage_class",
     .type = AICP_ARG_STR,
     .help = "StorageClass name (spec.storageClassName, immutable); default: the cluster's "
             "default class."},
    {.name = "volume_mode",
     .type = AICP_ARG_STR,
     .choices = "Filesystem|Block",
     .help = "spec.volumeMode (immutable)."},
    {.name = "labels", .type = AICP_ARG_DICT, .help = "Labels of the claim."},
    {.name = "annotations", .type = AICP_ARG_DICT, .help = "Annotations of the claim."},
    {.name = "state",
     .type = AICP_ARG_STR,
     .def = "present",
     .choices = "present|absent",
     .help = "present: the claim exists as declared; absent: it is deleted."},
    {.name = "wait",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .help = "After a change, wait until status.phase is Bound."},
    {.name = "wait_timeout",
     .type = AICP_ARG_INT,
     .def = "300",
     .help = "Seconds to wait for Bound."},
    {.name = "replace",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Allow deleting and re-creating the claim when an immutable field changes (the "
             "data of a dynamically provisioned volume is lost)."},
    {.name = "force",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Server-side apply with force: take over fields another manager owns."},
    {.name = "import_volume",
     .type = AICP_ARG_STR,
     .help = "Import this existing ONTAP volume (annotation "
             "trident.netapp.io/importOriginalName); needs import_backend."},
    {.name = "import_backend",
     .type = AICP_ARG_STR,
     .help = "TridentBackendConfig (in trident_namespace) whose status.backendInfo.backendUUID "
             "becomes the annotation trident.netapp.io/importBackendUUID."},
    {.name = "trident_namespace",
     .type = AICP_ARG_STR,
     .def = "trident",
     .help = "Namespace of the TridentBackendConfig named by import_backend."},
    {.name = "not_managed",
     .type = AICP_ARG_BOOL,
     .help = "Annotation trident.netapp.io/notManaged: Trident leaves the imported volume "
             "alone when the claim is deleted."},
    {.name = "import_no_rename",
     .type = AICP_ARG_BOOL,
     .help = "Annotation trident.netapp.io/importNoRename: keep the ONTAP volume's name."},
    {.name = NULL},
};

static const char *const pvc_immutable[] = {"spec.storageClassName", "spec.accessModes",
                                             "spec.volumeMode", NULL};

/* A Kubernetes quantity ("10Ti", "500Gi", "1.5T", "100M", "1e3") in bytes;
 * -1 when it is not one. Doubles are exact enough to order sizes. */
static double quantity_bytes(const char *s)
{
    static const struct {
        const char *suffix;
        double mult;
    } units[] = {
        {"Ki", 1024.0},  {"Mi", 1048576.0}, {"Gi", 1073741824.0}, {"Ti", 1099511627776.0},
        {"Pi", 1125899906842624.0}, {"Ei", 1152921504606846976.0},
        {"n", 1e-9}, {"u", 1e-6}, {"m", 1e-3}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9},
        {"T", 1e12}, {"P", 1e15}, {"E", 1e18}, {"", 1.0},
    };
    char *end;

    if (s == NULL || !(isdigit((unsigned char)*s) || *s == '.') || strpbrk(s, "xX") != NULL)
        return -1;
    double v = strtod(s, &end);
    if (end == s || !isfinite(v) || v < 0)
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(end, units[i].suffix) == 0)
            return v * units[i].mult;
    return -1;
}

/* The backend UUID of a TridentBackendConfig, which must be Bound. */
static int backend_uuid(struct aicp_kube *k, const char *ns, const char *name, char **uuid,
                        struct aicp_err *err)
{
    struct aicp_kube_ref ref = {
        .api_version = TRIDENT_API, .kind = TBC_KIND, .namespace = ns, .name = name};
    json_t *tbc = NULL;
    int rc;

    *uuid = NULL;
    if ((rc = aicp_kube_get(k, &ref, &tbc, err)) != 0)
        goto out;
    if (tbc == NULL) {
        rc = aicp_err_set(err, AICP_EFAILED,
                          "import_backend: TridentBackendConfig %s/%s does not exist, so the "
                          "backend UUID of the volume to import is unknown",
                          ns, name);
        goto out;
    }
    const char *phase = json_string_value(aicp_kube_field(tbc, "status.phase"));
    const char *id = json_string_value(aicp_kube_field(tbc, "status.backendInfo.backendUUID"));
    if (phase == NULL || strcmp(phase, "Bound") != 0) {
        const char *msg = json_string_value(aicp_kube_field(tbc, "status.message"));
        rc = aicp_err_set(err, AICP_EFAILED,
                          "import_backend: TridentBackendConfig %s/%s is not Bound yet (phase: "
                          "%s%s%s), so it has no backend UUID to import from",
                          ns, name, phase ? phase : "none", msg && *msg ? "; " : "",
                          msg ? msg : "");
        goto out;
    }
    if (id == NULL || *id == '\0') {
        rc = aicp_err_set(err, AICP_EFAILED,
                          "import_backend: TridentBackendConfig %s/%s is Bound but reports no "
                          "status.backendInfo.backendUUID",
                          ns, name);
        goto out;
    }
    if ((*uuid = aicp_strdup(id)) == NULL)
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
out:
    json_decref(tbc);
    return rc;
}

static int set_annotation(json_t *m, const char *key, const char *value)
{
    json_t *meta = json_object_get(m, "metadata");
    json_t *ann = json_object_get(meta, "annotations");
    if (ann == NULL) {
        ann = json_object();
        if (ann == NULL || json_object_set_new(meta, "annotations", ann) != 0)
            return AICP_ENOMEM;
    }
    return json_object_set_new(ann, key, json_string(value)) == 0 ? 0 : AICP_ENOMEM;
}

/* The desired claim. uuid: the resolved import backend, or NULL. */
static int build_manifest(json_t **out, const struct aicp_args *args, const char *uuid,
                          struct aicp_err *err)
{
    json_t *m = aicp_ku_manifest("v1", "PersistentVolumeClaim", aicp_args_str(args, "namespace"),
                                 aicp_args_str(args, "name"));
    json_t *spec = json_object();
    json_t *modes = NULL;
    int rc = 0;

    if (m == NULL || spec == NULL || json_object_set(m, "spec", spec) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = aicp_ku_set_meta(m, args, err)) != 0)
        goto out;
    const json_t *am = aicp_args_get(args, "access_modes");
    modes = json_is_array(am) && json_array_size(am) > 0 ? json_deep_copy(am)
                                                          : json_pack("[s]", "ReadWriteOnce");
    json_object_set(spec, "accessModes", modes);
    json_object_set_new(spec, "resources",
                        json_pack("{s:{s:s}}", "requests", "storage", aicp_args_str(args, "size")));
    if (aicp_args_str(args, "storage_class"))
        json_object_set_new(spec, "storageClassName",
                            json_string(aicp_args_str(args, "storage_class")));
    if (aicp_args_str(args, "volume_mode"))
        json_object_set_new(spec, "volumeMode", json_string(aicp_args_str(args, "volume_mode")));
    rc = 0;
    if (aicp_args_str(args, "import_volume"))
        rc |= set_annotation(m, "trident.netapp.io/importOriginalName",
                             aicp_args_str(args, "import_volume"));
    if (uuid)
        rc |= set_annotation(m, "trident.netapp.io/importBackendUUID", uuid);
    if (aicp_args_get(args, "not_managed"))
        rc |= set_annotation(m, "trident.netapp.io/notManaged",
                             aicp_args_bool(args, "not_managed", 0) ? "true" : "false");
    if (aicp_args_get(args, "import_no_rename"))
        rc |= set_annotation(m, "trident.netapp.io/importNoRename",
                             aicp_args_bool(args, "import_no_rename", 0) ? "true" : "false");
    if (rc != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    *out = m;
    m = NULL;
out:
    json_decref(m);
    json_decref(spec);
    json_decref(modes);
    return rc;
}

/* The results every run reports: the claim's phase and bound volume. */
static void set_results(json_t *result, const json_t *live)
{
    const char *phase = json_string_value(aicp_kube_field(live, "status.phase"));
    const char *vol = json_string_value(aicp_kube_field(live, "spec.volumeName"));
    json_object_set_new(result, "phase", phase ? json_string(phase) : json_null());
    json_object_set_new(result, "volume_name", vol ? json_string(vol) : json_null());
}

/* Drops a size drift that is only a different spelling of the same
 * quantity ("1024Gi" against the server's canonical "1Ti"). */
static void drop_equal_size_drift(json_t *current)
{
    json_t *obj = json_array_get(json_object_get(current, "objects"), 0);
    json_t *drift = json_object_get(obj, "drift");
    for (size_t i = json_array_size(drift); i-- > 0;) {
        json_t *d = json_array_get(drift, i);
        const char *path = json_string_value(json_object_get(d, "path"));
        if (path == NULL || strcmp(path, SIZE_PATH) != 0)
            continue;
        double want = quantity_bytes(json_string_value(json_object_get(d, "want")));
        double have = quantity_bytes(json_string_value(json_object_get(d, "have")));
        if (want >= 0 && have >= 0 && want == have)
            json_array_remove(drift, i);
    }
}

static int pvc_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                     struct aicp_err *err)
{
    struct aicp_kube *k = NULL;
    json_t *m = NULL, *live = NULL;
    char *uuid = NULL;
    int absent = strcmp(aicp_args_str(args, "state"), "absent") == 0;
    const char *name = aicp_args_str(args, "name");
    int rc;

    if (!absent) {
        const char *size = aicp_args_str(args, "size");
        if (size == NULL) {
            rc = aicp_err_set(err, AICP_EINVAL, "pvc %s: size is required with state=present",
                              name);
            goto out;
        }
        if (quantity_bytes(size) < 0) {
            rc = aicp_err_set(err, AICP_EINVAL,
                              "pvc %s: size '%s' is not a Kubernetes quantity (e.g. 10Ti, 500Gi)",
                              name, size);
            goto out;
        }
        if ((aicp_args_str(args, "import_volume") == NULL) !=
            (aicp_args_str(args, "import_backend") == NULL)) {
            rc = aicp_err_set(err, AICP_EINVAL,
                              "pvc %s: import_volume and import_backend go together: Trident "
                              "needs both the volume's name and its backend",
                              name);
            goto out;
        }
    }
    if ((rc = aicp_ku_client(ctx, args, &k, err)) != 0)
        goto out;
    if (!absent && aicp_args_str(args, "import_backend") &&
        (rc = backend_uuid(k, aicp_args_str(args, "trident_namespace"),
                           aicp_args_str(args, "import_backend"), &uuid, err)) != 0)
        goto out;
    if (absent) {
        m = aicp_ku_manifest("v1", "PersistentVolumeClaim", aicp_args_str(args, "namespace"),
                             name);
        if (m == NULL) {
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
    } else if ((rc = build_manifest(&m, args, uuid, err)) != 0) {
        goto out;
    }
    if (!absent) {
        /* A shrink would fail in the dry run with the server's words;
         * say plainly why it can never work. */
        struct aicp_kube_ref ref;
        if ((rc = aicp_kube_ref_of(&ref, m, err)) != 0 || (rc = aicp_kube_get(k, &ref, &live, err)) != 0)
            goto out;
        const char *have = json_string_value(aicp_kube_field(live, SIZE_PATH));
        const char *want = aicp_args_str(args, "size");
        if (have && quantity_bytes(have) >= 0 && quantity_bytes(want) < quantity_bytes(have)) {
            rc = aicp_err_set(err, AICP_EFAILED,
                              "PersistentVolumeClaim %s/%s: size %s is smaller than the current "
                              "%s: volumes cannot shrink",
                              json_string_value(aicp_kube_field(live, "metadata.namespace")),
                              name, want, have);
            goto out;
        }
    }
    struct aicp_ku_opts o = {
        .absent = absent,
        .immutable = pvc_immutable,
        .allow_replace = aicp_args_bool(args, "replace", 0),
        .force = aicp_args_bool(args, "force", 0),
    };
    json_t *manifests = json_pack("[o]", m);
    m = NULL;
    if (manifests == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = aicp_ku_check(ctx, args, manifests, &o, current, err)) != 0)
        goto out;
    drop_equal_size_drift(*current);
    const json_t *obj = json_array_get(json_object_get(*current, "objects"), 0);
    const json_t *now = json_object_get(obj, "live");
    if (!absent && json_is_object(now))
        set_results(ctx->result, now);
out:
    json_decref(m);
    json_decref(live);
    free(uuid);
    return rc;
}

static int pvc_apply(struct aicp_ctx *ctx, const struct aicp_change *change, struct aicp_err *err)
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
        .api_version = "v1",
        .kind = "PersistentVolumeClaim",
        .namespace = aicp_args_str(args, "namespace"),
        .name = aicp_args_str(args, "name"),
    };
    struct aicp_kube_wait w = {
        .field = "status.phase",
        .value = "Bound",
        .fail_field = "status.phase",
        .fail_value = "Lost",
        .timeout_s = (double)aicp_args_int(args, "wait_timeout", 300),
        .interval_s = 0.25, /* controllers answer in well under a second */
    };
    rc = aicp_kube_wait(k, &ref, &w, &obj, err);
    if (obj != NULL)
        set_results(ctx->result, obj);
out:
    json_decref(obj);
    return rc;
}

static const struct aicp_module_ops pvc_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = pvc_check,
    .diff = aicp_ku_diff,
    .apply = pvc_apply,
};

const struct aicp_module aicp_mod_pvc = {
    .name = "pvc",
    .summary = "Manage a PersistentVolumeClaim, new or imported from an ONTAP volume by Trident",
    .args = pvc_args,
    .flags = AICP_MOD_NEEDS_KUBE,
    .ops = &pvc_ops,
};
