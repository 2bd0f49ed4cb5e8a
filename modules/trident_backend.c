/* The trident_backend module: a Trident backend declared the Kubernetes
 * way, as a TridentBackendConfig (trident.netapp.io/v1) plus the Secret
 * holding its ONTAP credentials. Both go through kubeutil's life cycle
 * (server-side apply, drift on declared fields); the Secret's values are
 * never shown (kubeutil masks them: its drift and diff say only which key
 * changed). After a
 * change it waits for Trident's verdict (status.lastOperationStatus Success
 * and status.phase Bound; Failed fails at once with status.message) and
 * reports the backend UUID that PVC imports need. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kube.h"
#include "kubeutil.h"
#include "module.h"
#include "util.h"

#define TRIDENT_API "trident.netapp.io/v1"
#define TBC_KIND "TridentBackendConfig"

static const struct aicp_arg_spec tb_args[] = {
    AICP_KU_CONN_ARGS,
    {.name = "name",
     .type = AICP_ARG_STR,
     .required = 1,
     .help = "Name of the TridentBackendConfig."},
    {.name = "namespace",
     .type = AICP_ARG_STR,
     .def = "trident",
     .help = "Namespace Trident runs in."},
    {.name = "driver",
     .type = AICP_ARG_STR,
     .choices = "ontap-nas|ontap-nas-flexgroup",
     .help = "spec.storageDriverName; required with state=present."},
    {.name = "management_lif",
     .type = AICP_ARG_STR,
     .help = "spec.managementLIF: the cluster or SVM management address; required with "
             "state=present."},
    {.name = "data_lif", .type = AICP_ARG_STR, .help = "spec.dataLIF: the NFS data address."},
    {.name = "svm", .type = AICP_ARG_STR, .help = "spec.svm: the storage VM."},
    {.name = "username",
     .type = AICP_ARG_STR,
     .help = "ONTAP user, kept in the credentials Secret (with password)."},
    /* A credential, not a secret that hides the diff: its only place is
     * the Secret's data, whose values kubeutil masks everywhere, so the
     * TridentBackendConfig's changes (data_lif...) can still be shown. */
    {.name = "password",
     .type = AICP_ARG_STR,
     .secret = 1,
     .credential = 1,
     .help = "ONTAP password, kept in the credentials Secret; never shown."},
    {.name = "credentials_secret",
     .type = AICP_ARG_STR,
     .help = "Name of the credentials Secret (default: NAME-credentials). Without username and "
             "password an existing Secret of this name is used and left alone."},
    {.name = "storage_prefix", .type = AICP_ARG_STR, .help = "spec.storagePrefix."},
    {.name = "limit_volume_size",
     .type = AICP_ARG_STR,
     .help = "spec.limitVolumeSize, e.g. 50Ti."},
    {.name = "nfs_mount_options",
     .type = AICP_ARG_STR,
     .help = "spec.nfsMountOptions, e.g. nfsvers=3,hard."},
    {.name = "defaults",
     .type = AICP_ARG_DICT,
     .help = "spec.defaults: volume defaults (spaceReserve, snapshotPolicy, exportPolicy, ...)."},
    {.name = "deletion_policy",
     .type = AICP_ARG_STR,
     .choices = "delete|retain",
     .help = "spec.deletionPolicy: whether deleting the config deletes the Trident backend."},
    {.name = "backend_name",
     .type = AICP_ARG_STR,
     .help = "spec.backendName (default: name)."},
    {.name = "labels", .type = AICP_ARG_DICT, .help = "Labels of both objects."},
    {.name = "annotations", .type = AICP_ARG_DICT, .help = "Annotations of both objects."},
    {.name = "state",
     .type = AICP_ARG_STR,
     .def = "present",
     .choices = "present|absent",
     .help = "present: both objects exist as declared; absent: both are deleted (the Secret "
             "only when aicp manages it)."},
    {.name = "wait",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .help = "After a change, wait until Trident reports Bound and Success."},
    {.name = "wait_timeout",
     .type = AICP_ARG_INT,
     .def = "300",
     .help = "Seconds to wait."},
    {.name = "force",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Server-side apply with force: take over fields another manager owns."},
    {.name = NULL},
};

static char *b64(const char *s)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(s);
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    size_t o = 0;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)s[i] << 16;
        if (i + 1 < n)
            v |= (unsigned char)s[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)s[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

/* The Secret's name, into buf. */
static const char *secret_name(const struct aicp_args *args, char *buf, size_t len)
{
    const char *s = aicp_args_str(args, "credentials_secret");
    if (s != NULL)
        return s;
    snprintf(buf, len, "%s-credentials", aicp_args_str(args, "name"));
    return buf;
}

/* aicp owns the Secret when it is given its content, or when it is the
 * default one (then absent deletes it too). */
static int manages_secret(const struct aicp_args *args)
{
    return aicp_args_str(args, "password") != NULL ||
           aicp_args_str(args, "credentials_secret") == NULL;
}

static int put(json_t *obj, const char *key, const char *value)
{
    return value == NULL ? 0 : json_object_set_new(obj, key, json_string(value));
}

static int build_secret(json_t **out, const struct aicp_args *args, const char *sname,
                        struct aicp_err *err)
{
    json_t *m = aicp_ku_manifest("v1", "Secret", aicp_args_str(args, "namespace"), sname);
    char *u = NULL, *p = NULL;
    int rc = 0;

    if (m == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = aicp_ku_set_meta(m, args, err)) != 0)
        goto out;
    if (aicp_args_str(args, "password") == NULL)
        goto done;
    /* data, not stringData: the server keeps data, so the declared
     * fields compare with what it returns. */
    u = b64(aicp_args_str(args, "username"));
    p = b64(aicp_args_str(args, "password"));
    if (u == NULL || p == NULL ||
        json_object_set_new(m, "type", json_string("Opaque")) != 0 ||
        json_object_set_new(m, "data", json_pack("{s:s, s:s}", "username", u, "password", p)) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
done:
    *out = m;
    m = NULL;
out:
    json_decref(m);
    aicp_free_secret(u);
    aicp_free_secret(p);
    return rc;
}

static int build_tbc(json_t **out, const struct aicp_args *args, const char *sname,
                     struct aicp_err *err)
{
    const char *name = aicp_args_str(args, "name");
    json_t *m = aicp_ku_manifest(TRIDENT_API, TBC_KIND, aicp_args_str(args, "namespace"), name);
    json_t *spec = json_object();
    int rc = 0;

    if (m == NULL || spec == NULL || json_object_set(m, "spec", spec) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = aicp_ku_set_meta(m, args, err)) != 0)
        goto out;
    const char *bname = aicp_args_str(args, "backend_name");
    const json_t *defs = aicp_args_get(args, "defaults");
    if (json_object_set_new(spec, "version", json_integer(1)) != 0 ||
        put(spec, "storageDriverName", aicp_args_str(args, "driver")) != 0 ||
        put(spec, "managementLIF", aicp_args_str(args, "management_lif")) != 0 ||
        put(spec, "dataLIF", aicp_args_str(args, "data_lif")) != 0 ||
        put(spec, "svm", aicp_args_str(args, "svm")) != 0 ||
        put(spec, "backendName", bname ? bname : name) != 0 ||
        put(spec, "storagePrefix", aicp_args_str(args, "storage_prefix")) != 0 ||
        put(spec, "limitVolumeSize", aicp_args_str(args, "limit_volume_size")) != 0 ||
        put(spec, "nfsMountOptions", aicp_args_str(args, "nfs_mount_options")) != 0 ||
        put(spec, "deletionPolicy", aicp_args_str(args, "deletion_policy")) != 0 ||
        (json_is_object(defs) && json_object_size(defs) > 0 &&
         json_object_set_new(spec, "defaults", json_deep_copy(defs)) != 0) ||
        json_object_set_new(spec, "credentials", json_pack("{s:s}", "name", sname)) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    *out = m;
    m = NULL;
out:
    json_decref(m);
    json_decref(spec);
    return rc;
}

static void set_results(json_t *result, const json_t *tbc)
{
    const char *uuid = json_string_value(aicp_kube_field(tbc, "status.backendInfo.backendUUID"));
    const char *phase = json_string_value(aicp_kube_field(tbc, "status.phase"));
    json_object_set_new(result, "backend_uuid", uuid ? json_string(uuid) : json_null());
    json_object_set_new(result, "phase", phase ? json_string(phase) : json_null());
}

static int tb_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                    struct aicp_err *err)
{
    const char *name = aicp_args_str(args, "name");
    int absent = strcmp(aicp_args_str(args, "state"), "absent") == 0;
    json_t *manifests = json_array(), *sec = NULL, *tbc = NULL;
    char sbuf[300];
    const char *sname = secret_name(args, sbuf, sizeof(sbuf));
    int rc;

    if (manifests == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (!absent) {
        if (aicp_args_str(args, "driver") == NULL || aicp_args_str(args, "management_lif") == NULL) {
            rc = aicp_err_set(err, AICP_EINVAL,
                              "trident_backend %s: driver and management_lif are required with "
                              "state=present",
                              name);
            goto out;
        }
        if ((aicp_args_str(args, "username") == NULL) != (aicp_args_str(args, "password") == NULL)) {
            rc = aicp_err_set(err, AICP_EINVAL,
                              "trident_backend %s: username and password go together", name);
            goto out;
        }
        if (aicp_args_str(args, "password") == NULL && aicp_args_str(args, "credentials_secret") == NULL) {
            rc = aicp_err_set(err, AICP_EINVAL,
                              "trident_backend %s: give username and password, or "
                              "credentials_secret naming an existing Secret",
                              name);
            goto out;
        }
    }
    if ((rc = build_tbc(&tbc, args, sname, err)) != 0)
        goto out;
    if (manages_secret(args) && (rc = build_secret(&sec, args, sname, err)) != 0)
        goto out;
    /* The Secret first when creating (Trident reads it as soon as the
     * config appears), the config first when deleting (Trident needs the
     * credentials to remove the backend). */
    if (absent) {
        json_array_append(manifests, tbc);
        if (sec)
            json_array_append(manifests, sec);
    } else {
        if (sec)
            json_array_append(manifests, sec);
        json_array_append(manifests, tbc);
    }
    struct aicp_ku_opts o = {
        .absent = absent,
        .force = aicp_args_bool(args, "force", 0),
    };
    rc = aicp_ku_check(ctx, args, manifests, &o, current, err);
    manifests = NULL;
    if (rc != 0)
        goto out;
    if (absent)
        goto out;
    /* The config's live state: results, and a backend Trident refused
     * (with nothing to change) is a failure every run until it is fixed. */
    const json_t *objs = json_object_get(*current, "objects");
    const json_t *live = json_object_get(json_array_get(objs, json_array_size(objs) - 1), "live");
    if (!json_is_object(live))
        goto out;
    set_results(ctx->result, live);
    int pending = 0;
    for (size_t i = 0; i < json_array_size(objs); i++) {
        const json_t *ob = json_array_get(objs, i);
        if (!json_is_object(json_object_get(ob, "live")) ||
            json_array_size(json_object_get(ob, "drift")) > 0 ||
            json_is_true(json_object_get(ob, "replace")))
            pending = 1;
    }
    const char *los = json_string_value(aicp_kube_field(live, "status.lastOperationStatus"));
    if (!pending && aicp_args_bool(args, "wait", 1) && los && strcmp(los, "Failed") == 0) {
        const char *msg = json_string_value(aicp_kube_field(live, "status.message"));
        rc = aicp_err_set(err, AICP_EFAILED, "TridentBackendConfig %s/%s failed: %s",
                          aicp_args_str(args, "namespace"), name, msg ? msg : "(no message)");
    }
out:
    json_decref(manifests);
    json_decref(sec);
    json_decref(tbc);
    return rc;
}

static int tb_apply(struct aicp_ctx *ctx, const struct aicp_change *change, struct aicp_err *err)
{
    const struct aicp_args *args = change->args;
    struct aicp_kube *k = NULL;
    json_t *obj = NULL;
    int rc = aicp_ku_apply(ctx, change, err);

    if (rc != 0)
        goto out;
    /* The config and its Secret are written: a failed wait below still
     * leaves a change made (the executor reports it changed). */
    json_object_set_new(change->plan, "wrote", json_true());
    if (strcmp(aicp_args_str(args, "state"), "absent") == 0 || !aicp_args_bool(args, "wait", 1))
        goto out;
    if ((rc = aicp_ku_client(ctx, args, &k, err)) != 0)
        goto out;
    struct aicp_kube_ref ref = {
        .api_version = TRIDENT_API,
        .kind = TBC_KIND,
        .namespace = aicp_args_str(args, "namespace"),
        .name = aicp_args_str(args, "name"),
    };
    double t0 = aicp_now(), limit = (double)aicp_args_int(args, "wait_timeout", 300);
    /* Trident's verdict on this version first, then the binding. */
    struct aicp_kube_wait w = {
        .field = "status.lastOperationStatus",
        .value = "Success",
        .fail_field = "status.lastOperationStatus",
        .fail_value = "Failed",
        .timeout_s = limit,
        .interval_s = 0.25, /* Trident answers in well under a second */
    };
    rc = aicp_kube_wait(k, &ref, &w, &obj, err);
    if (rc == 0) {
        json_decref(obj);
        obj = NULL;
        w.field = "status.phase";
        w.value = "Bound";
        w.timeout_s = limit - (aicp_now() - t0);
        if (w.timeout_s < 1)
            w.timeout_s = 1;
        rc = aicp_kube_wait(k, &ref, &w, &obj, err);
    }
    if (rc == AICP_EFAILED) {
        if (obj == NULL)
            aicp_kube_get(k, &ref, &obj, NULL);
        const char *msg = json_string_value(aicp_kube_field(obj, "status.message"));
        if (msg != NULL)
            aicp_err_set(err, AICP_EFAILED, "TridentBackendConfig %s/%s failed: %s", ref.namespace,
                         ref.name, msg);
    }
    if (obj != NULL)
        set_results(ctx->result, obj);
out:
    json_decref(obj);
    return rc;
}

static const struct aicp_module_ops tb_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = tb_check,
    .diff = aicp_ku_diff,
    .apply = tb_apply,
};

const struct aicp_module aicp_mod_trident_backend = {
    .name = "trident_backend",
    .summary = "Manage a Trident backend (TridentBackendConfig and its credentials Secret)",
    .args = tb_args,
    .flags = AICP_MOD_NEEDS_KUBE,
    .ops = &tb_ops,
};
