/* The kubeflow_notebook module: one Kubeflow Notebook server
 * (kubeflow.org/v1 Notebook) as Kubeflow's "New notebook" form creates it,
 * for TR-4798's promise that a data scientist gets a Jupyter workspace on
 * ONTAP storage with the data sets mounted. The form's choices become
 * arguments: image, CPU and memory, GPUs, a workspace volume at
 * /home/jovyan (a new claim <name>-workspace that the module keeps, or an
 * existing claim), data volumes, and /dev/shm in memory.
 *
 * The objects (the workspace claim, then the Notebook) go through
 * kubeutil's life cycle: server-side apply, drift on the declared fields
 * only, a dry run in check mode. After a change apply() waits until the
 * notebook's pod (<name>-0, made by its StatefulSet) is Ready and runs the
 * image asked for, so that an image change is only done once the new
 * server answers. state=absent deletes the Notebook (and its StatefulSet
 * and pod with it); the workspace claim holds the user's work and goes
 * only with delete_workspace: true. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "kube.h"
#include "kubeutil.h"
#include "module.h"
#include "util.h"

#define NB_API "kubeflow.org/v1"
#define NB_KIND "Notebook"
#define NB_HOME "/home/jovyan"
#define NB_GPU "nvidia.com/gpu"
#define WS_SUFFIX "-workspace"
#define WS_SIZE "10Gi"
#define MAX_DATA_VOLUMES 64

static const struct aicp_arg_spec nb_args[] = {
    AICP_KU_CONN_ARGS,
    {.name = "name", .type = AICP_ARG_STR, .required = 1, .help = "Name of the notebook server."},
    {.name = "namespace",
     .type = AICP_ARG_STR,
     .required = 1,
     .help = "The user's namespace (a Kubeflow profile's namespace)."},
    {.name = "image",
     .type = AICP_ARG_STR,
     .def = "kubeflownotebookswg/jupyter-scipy:v1.8.0",
     .help = "Container image of the notebook server."},
    {.name = "cpu", .type = AICP_ARG_STR, .def = "0.5", .help = "CPU request, e.g. 0.5 or 4."},
    {.name = "memory", .type = AICP_ARG_STR, .def = "1Gi", .help = "Memory request, e.g. 8Gi."},
    {.name = "cpu_limit", .type = AICP_ARG_STR, .help = "CPU limit (default: equal to cpu)."},
    {.name = "memory_limit",
     .type = AICP_ARG_STR,
     .help = "Memory limit (default: equal to memory)."},
    {.name = "gpus",
     .type = AICP_ARG_INT,
     .def = "0",
     .help = "GPUs: the nvidia.com/gpu limit; 0 means none."},
    {.name = "workspace_volume",
     .type = AICP_ARG_DICT,
     .help = "Mounted at /home/jovyan: {new: {size, storage_class, access_modes}} makes the "
             "claim <name>-workspace (default: size 10Gi, the cluster's default class, "
             "ReadWriteOnce), or {existing: CLAIM} mounts a claim that exists."},
    {.name = "data_volumes",
     .type = AICP_ARG_LIST,
     .help = "Claims to mount: a list of {pvc, mount_path} (mount_path default: "
             "/home/jovyan/data-vol-N, N counting from 1)."},
    {.name = "shm",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .help = "Mount /dev/shm as a memory emptyDir (PyTorch data loaders need more than the "
             "64 MiB default)."},
    {.name = "service_account",
     .type = AICP_ARG_STR,
     .def = "default-editor",
     .help = "The pod's service account (Kubeflow profiles make default-editor)."},
    {.name = "labels", .type = AICP_ARG_DICT, .help = "Labels of the Notebook."},
    {.name = "annotations", .type = AICP_ARG_DICT, .help = "Annotations of the Notebook."},
    {.name = "state",
     .type = AICP_ARG_STR,
     .def = "present",
     .choices = "present|absent",
     .help = "present: the notebook server exists as declared; absent: it is deleted."},
    {.name = "delete_workspace",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "With state=absent, delete the claim <name>-workspace too (the user's files go "
             "with it). An existing claim named by workspace_volume is never deleted."},
    {.name = "wait",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .help = "After a change, wait until the pod <name>-0 is Ready with the image asked for."},
    {.name = "wait_timeout",
     .type = AICP_ARG_INT,
     .def = "300",
     .help = "Seconds to wait for the pod."},
    {.name = NULL},
};

/* The workspace claim's fields the API server refuses to change. */
static const char *const nb_immutable[] = {"PersistentVolumeClaim:spec.storageClassName",
                                           "PersistentVolumeClaim:spec.accessModes", NULL};

static const char *str_at(const json_t *obj, const char *path)
{
    return json_string_value(aicp_kube_field(obj, path));
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    struct timespec ts;

    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- arguments ----------------------------------------------------------- */

/* What the workspace_volume argument says. */
struct nb_workspace {
    char claim[320];            /* the claim mounted at /home/jovyan */
    int create;                 /* 1: the module keeps <name>-workspace */
    const char *size;           /* of a new one */
    const char *storage_class;  /* NULL: the default class */
    const json_t *access_modes; /* NULL: [ReadWriteOnce] */
};

static int parse_workspace(struct nb_workspace *ws, const struct aicp_args *args,
                           struct aicp_err *err)
{
    const char *name = aicp_args_str(args, "name");
    const json_t *v = aicp_args_get(args, "workspace_volume");
    const json_t *nw = json_object_get(v, "new"), *ex = json_object_get(v, "existing");
    const char *k;
    json_t *x;

    memset(ws, 0, sizeof(*ws));
    ws->size = WS_SIZE;
    snprintf(ws->claim, sizeof ws->claim, "%s%s", name, WS_SUFFIX);
    ws->create = 1;
    if (v == NULL || json_is_null(v))
        return 0;
    json_object_foreach((json_t *)v, k, x)
    {
        if (strcmp(k, "new") != 0 && strcmp(k, "existing") != 0)
            return aicp_err_set(err, AICP_EINVAL,
                                "kubeflow_notebook %s: workspace_volume.%s is unknown: give "
                                "{new: {size, storage_class}} or {existing: CLAIM}",
                                name, k);
    }
    if ((nw != NULL) == (ex != NULL))
        return aicp_err_set(err, AICP_EINVAL,
                            "kubeflow_notebook %s: workspace_volume needs exactly one of new "
                            "and existing",
                            name);
    if (ex != NULL) {
        if (!json_is_string(ex) || json_string_length(ex) == 0)
            return aicp_err_set(err, AICP_EINVAL,
                                "kubeflow_notebook %s: workspace_volume.existing must name a "
                                "claim",
                                name);
        snprintf(ws->claim, sizeof ws->claim, "%s", json_string_value(ex));
        ws->create = 0;
        return 0;
    }
    if (json_is_null(nw))
        return 0;
    if (!json_is_object(nw))
        return aicp_err_set(err, AICP_EINVAL,
                            "kubeflow_notebook %s: workspace_volume.new must be a dict "
                            "({size, storage_class, access_modes})",
                            name);
    json_object_foreach((json_t *)nw, k, x)
    {
        if (strcmp(k, "size") == 0 && json_is_string(x))
            ws->size = json_string_value(x);
        else if (strcmp(k, "storage_class") == 0 && json_is_string(x))
            ws->storage_class = json_string_value(x);
        else if (strcmp(k, "access_modes") == 0 && json_is_array(x))
            ws->access_modes = x;
        else
            return aicp_err_set(err, AICP_EINVAL,
                                "kubeflow_notebook %s: workspace_volume.new.%s is unknown or "
                                "not a %s",
                                name, k, strcmp(k, "access_modes") == 0 ? "list" : "string");
    }
    return 0;
}

/* ---- manifests ----------------------------------------------------------- */

static json_t *workspace_claim(const struct aicp_args *args, const struct nb_workspace *ws)
{
    json_t *m = aicp_ku_manifest("v1", "PersistentVolumeClaim", aicp_args_str(args, "namespace"),
                                 ws->claim);
    json_t *modes = ws->access_modes != NULL && json_array_size(ws->access_modes) > 0
                        ? json_deep_copy(ws->access_modes)
                        : json_pack("[s]", "ReadWriteOnce");
    json_t *spec = json_pack("{s:o, s:{s:{s:s}}}", "accessModes", modes, "resources", "requests",
                             "storage", ws->size);
    if (m == NULL || spec == NULL || json_object_set_new(m, "spec", spec) != 0) {
        json_decref(m);
        return NULL;
    }
    if (ws->storage_class != NULL)
        json_object_set_new(spec, "storageClassName", json_string(ws->storage_class));
    return m;
}

/* Appends a volume and its mount. */
static int add_volume(json_t *volumes, json_t *mounts, const char *vol, json_t *source,
                      const char *path)
{
    int rc = 0;
    if (source == NULL)
        return AICP_ENOMEM;
    rc |= json_array_append_new(volumes, json_pack("{s:s}", "name", vol));
    json_object_update(json_array_get(volumes, json_array_size(volumes) - 1), source);
    rc |= json_array_append_new(mounts, json_pack("{s:s, s:s}", "mountPath", path, "name", vol));
    json_decref(source);
    return rc == 0 ? 0 : AICP_ENOMEM;
}

static json_t *claim_source(const char *claim)
{
    return json_pack("{s:{s:s}}", "persistentVolumeClaim", "claimName", claim);
}

/* The data volumes, into volumes and mounts; mount paths must not clash. */
static int add_data_volumes(json_t *volumes, json_t *mounts, const struct aicp_args *args,
                            struct aicp_err *err)
{
    const char *name = aicp_args_str(args, "name");
    const json_t *list = aicp_args_get(args, "data_volumes");
    size_t i;
    json_t *dv;

    if (json_array_size(list) > MAX_DATA_VOLUMES)
        return aicp_err_set(err, AICP_EINVAL, "kubeflow_notebook %s: more than %d data_volumes",
                            name, MAX_DATA_VOLUMES);
    json_array_foreach(list, i, dv)
    {
        char vol[32], def[64];
        const char *claim = json_string_value(json_object_get(dv, "pvc"));
        const json_t *mp = json_object_get(dv, "mount_path");
        const char *path = json_string_value(mp);
        const char *k;
        json_t *x;

        if (!json_is_object(dv) || claim == NULL || *claim == '\0')
            return aicp_err_set(err, AICP_EINVAL,
                                "kubeflow_notebook %s: data_volumes[%zu] must be a dict with "
                                "pvc (a claim name) and an optional mount_path",
                                name, i);
        json_object_foreach((json_t *)dv, k, x)
        {
            if (strcmp(k, "pvc") != 0 && strcmp(k, "mount_path") != 0)
                return aicp_err_set(err, AICP_EINVAL,
                                    "kubeflow_notebook %s: data_volumes[%zu].%s is unknown "
                                    "(pvc, mount_path)",
                                    name, i, k);
        }
        snprintf(vol, sizeof vol, "data-vol-%zu", i + 1);
        snprintf(def, sizeof def, NB_HOME "/%s", vol);
        if (mp != NULL && !json_is_null(mp) && (path == NULL || path[0] != '/'))
            return aicp_err_set(err, AICP_EINVAL,
                                "kubeflow_notebook %s: data_volumes[%zu].mount_path must be an "
                                "absolute path",
                                name, i);
        if (path == NULL)
            path = def;
        size_t j;
        json_t *m;
        json_array_foreach(mounts, j, m)
        {
            const char *have = json_string_value(json_object_get(m, "mountPath"));
            if (have != NULL && strcmp(have, path) == 0)
                return aicp_err_set(err, AICP_EINVAL,
                                    "kubeflow_notebook %s: data_volumes[%zu] (claim %s) is "
                                    "mounted at %s, where another volume already is",
                                    name, i, claim, path);
        }
        if (add_volume(volumes, mounts, vol, claim_source(claim), path) != 0)
            return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    return 0;
}

/* requests, and limits equal to them unless given; GPUs are limits only. */
static json_t *resources(const struct aicp_args *args)
{
    const char *cpu = aicp_args_str(args, "cpu"), *mem = aicp_args_str(args, "memory");
    const char *cl = aicp_args_str(args, "cpu_limit"), *ml = aicp_args_str(args, "memory_limit");
    json_t *r = json_pack("{s:{s:s, s:s}, s:{s:s, s:s}}", "requests", "cpu", cpu, "memory", mem,
                          "limits", "cpu", cl ? cl : cpu, "memory", ml ? ml : mem);
    long long gpus = aicp_args_int(args, "gpus", 0);
    if (r != NULL && gpus > 0) {
        char n[32];
        snprintf(n, sizeof n, "%lld", gpus);
        json_object_set_new(json_object_get(r, "limits"), NB_GPU, json_string(n));
    }
    return r;
}

static int notebook_manifest(json_t **out, const struct aicp_args *args,
                             const struct nb_workspace *ws, struct aicp_err *err)
{
    const char *name = aicp_args_str(args, "name");
    json_t *m = aicp_ku_manifest(NB_API, NB_KIND, aicp_args_str(args, "namespace"), name);
    json_t *volumes = json_array(), *mounts = json_array();
    int rc;

    *out = NULL;
    if (m == NULL || volumes == NULL || mounts == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (aicp_args_int(args, "gpus", 0) < 0) {
        rc = aicp_err_set(err, AICP_EINVAL, "kubeflow_notebook %s: gpus must be 0 or more", name);
        goto out;
    }
    /* Kubeflow's form labels the Notebook app=NAME and marks it a
     * Jupyter server; the task's own labels and annotations come on top. */
    json_t *md = json_object_get(m, "metadata");
    json_object_set_new(md, "labels", json_pack("{s:s}", "app", name));
    json_object_set_new(md, "annotations",
                        json_pack("{s:s}", "notebooks.kubeflow.org/server-type", "jupyter"));
    if ((rc = aicp_ku_set_meta(m, args, err)) != 0)
        goto out;
    if (add_volume(volumes, mounts, "workspace", claim_source(ws->claim), NB_HOME) != 0 ||
        (aicp_args_bool(args, "shm", 1) &&
         add_volume(volumes, mounts, "dshm", json_pack("{s:{s:s}}", "emptyDir", "medium", "Memory"),
                    "/dev/shm") != 0)) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = add_data_volumes(volumes, mounts, args, err)) != 0)
        goto out;
    json_t *spec = json_pack("{s:{s:{s:s, s:[{s:s, s:s, s:s, s:o, s:O}], s:O}}}", "template",
                             "spec", "serviceAccountName", aicp_args_str(args, "service_account"),
                             "containers", "name", name, "image", aicp_args_str(args, "image"),
                             "imagePullPolicy", "IfNotPresent", "resources", resources(args),
                             "volumeMounts", mounts, "volumes", volumes);
    if (spec == NULL || json_object_set_new(m, "spec", spec) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    *out = m;
    m = NULL;
    rc = 0;
out:
    json_decref(m);
    json_decref(volumes);
    json_decref(mounts);
    return rc;
}

/* ---- check ----------------------------------------------------------------- */

static void set_results(json_t *result, const struct aicp_args *args, const struct nb_workspace *ws,
                        const json_t *nb, const json_t *pod)
{
    char url[600];
    const json_t *rr = aicp_kube_field(nb, "status.readyReplicas");
    json_int_t ready = json_is_integer(rr) ? json_integer_value(rr) : 0;

    snprintf(url, sizeof url, "/notebook/%s/%s/", aicp_args_str(args, "namespace"),
             aicp_args_str(args, "name"));
    json_object_set_new(result, "ready_replicas", json_integer(ready));
    json_object_set_new(result, "ready", json_boolean(ready >= 1));
    json_object_set_new(result, "workspace_claim", json_string(ws->claim));
    json_object_set_new(result, "url_path", json_string(url));
    if (pod != NULL) {
        const char *phase = str_at(pod, "status.phase");
        json_object_set_new(result, "pod", json_string(str_at(pod, "metadata.name")));
        json_object_set_new(result, "phase", phase ? json_string(phase) : json_null());
    }
}

/* A workspace claim whose class or access modes differ can only be
 * deleted and made again, taking the user's files: never done here. */
static int refuse_replace(const json_t *current, const char *name, struct aicp_err *err)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(current, "objects"), i, e)
    {
        if (!json_is_true(json_object_get(e, "replace")))
            continue;
        const json_t *imm = json_object_get(e, "immutable");
        return aicp_err_set(err, AICP_EFAILED,
                            "kubeflow_notebook %s: %s: %s cannot change on an existing "
                            "workspace claim, and re-creating it would delete the user's files "
                            "(move them and delete the claim first, or mount it with "
                            "workspace_volume.existing)",
                            name, json_string_value(json_object_get(e, "ref")),
                            json_string_value(json_array_get(imm, 0)));
    }
    return 0;
}

static int nb_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                    struct aicp_err *err)
{
    struct nb_workspace ws;
    json_t *manifests = json_array(), *m = NULL;
    int absent = strcmp(aicp_args_str(args, "state"), "absent") == 0;
    const char *name = aicp_args_str(args, "name");
    const char *ns = aicp_args_str(args, "namespace");
    int rc;

    *current = NULL;
    if (manifests == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = parse_workspace(&ws, args, err)) != 0)
        goto out;
    if (absent) {
        if (json_array_append_new(manifests, aicp_ku_manifest(NB_API, NB_KIND, ns, name)) != 0)
            rc = AICP_ENOMEM;
        /* Only the claim this module makes: never one it was given. */
        if (aicp_args_bool(args, "delete_workspace", 0)) {
            char claim[320];
            snprintf(claim, sizeof claim, "%s%s", name, WS_SUFFIX);
            if (json_array_append_new(
                    manifests, aicp_ku_manifest("v1", "PersistentVolumeClaim", ns, claim)) != 0)
                rc = AICP_ENOMEM;
        }
        if (rc != 0) {
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
    } else {
        if (ws.create && json_array_append_new(manifests, workspace_claim(args, &ws)) != 0) {
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
        if ((rc = notebook_manifest(&m, args, &ws, err)) != 0)
            goto out;
        json_array_append_new(manifests, m);
        m = NULL;
    }
    struct aicp_ku_opts o = {
        .absent = absent,
        .immutable = nb_immutable,
        /* Foreground: the Notebook is gone once its pod is. */
        .propagation = absent ? "Foreground" : NULL,
    };
    json_t *list = manifests;
    manifests = NULL;
    if ((rc = aicp_ku_check(ctx, args, list, &o, current, err)) != 0)
        goto out;
    if ((rc = refuse_replace(*current, name, err)) != 0)
        goto out;
    if (!absent) {
        const json_t *objs = json_object_get(*current, "objects");
        const json_t *nb = json_object_get(json_array_get(objs, json_array_size(objs) - 1), "live");
        /* A notebook still to be made is reported not ready. */
        set_results(ctx->result, args, &ws, json_is_object(nb) ? nb : NULL, NULL);
    }
out:
    if (rc != 0 && *current != NULL) {
        json_decref(*current);
        *current = NULL;
    }
    json_decref(manifests);
    json_decref(m);
    return rc;
}

/* ---- apply ----------------------------------------------------------------- */

static int condition_true(const json_t *obj, const char *type)
{
    size_t i;
    json_t *c;
    json_array_foreach(aicp_kube_field(obj, "status.conditions"), i, c)
    {
        const char *t = json_string_value(json_object_get(c, "type"));
        const char *s = json_string_value(json_object_get(c, "status"));
        if (t != NULL && strcmp(t, type) == 0)
            return s != NULL && strcmp(s, "True") == 0;
    }
    return 0;
}

/* The image the pod's notebook container runs (the container named as
 * the notebook, else the first). */
static const char *pod_image(const json_t *pod, const char *name)
{
    size_t i;
    json_t *c;
    json_array_foreach(aicp_kube_field(pod, "spec.containers"), i, c)
    {
        const char *n = json_string_value(json_object_get(c, "name"));
        if (n != NULL && strcmp(n, name) == 0)
            return json_string_value(json_object_get(c, "image"));
    }
    return json_string_value(
        json_object_get(json_array_get(aicp_kube_field(pod, "spec.containers"), 0), "image"));
}

/* What keeps the pod from Ready, for the timeout message: its phase and
 * Ready condition, and the claims it mounts that are not Bound. */
static void describe_wait(struct aicp_kube *k, const char *ns, const json_t *pod,
                          const json_t *desired_nb, char *buf, size_t n)
{
    size_t used = 0, i;
    json_t *v;
    int w;

    if (pod == NULL) {
        w = snprintf(buf, n, "the pod does not exist (is the notebook controller running?)");
    } else {
        const char *msg = NULL;
        json_array_foreach(aicp_kube_field(pod, "status.conditions"), i, v)
        {
            const char *t = json_string_value(json_object_get(v, "type"));
            if (t != NULL && strcmp(t, "Ready") == 0)
                msg = json_string_value(json_object_get(v, "message"));
        }
        w = snprintf(buf, n, "the pod is %s%s%s",
                     str_at(pod, "status.phase") ? str_at(pod, "status.phase") : "without a phase",
                     msg ? ", not Ready: " : "", msg ? msg : "");
    }
    if (w < 0 || (size_t)w >= n)
        return;
    used = (size_t)w;
    json_array_foreach(aicp_kube_field(desired_nb, "spec.template.spec.volumes"), i, v)
    {
        const char *claim = str_at(v, "persistentVolumeClaim.claimName");
        struct aicp_kube_ref ref = {"v1", "PersistentVolumeClaim", ns, claim};
        json_t *pvc = NULL;
        struct aicp_err e2 = {0};
        if (claim == NULL || aicp_kube_get(k, &ref, &pvc, &e2) != 0)
            continue;
        const char *phase = str_at(pvc, "status.phase");
        if (pvc == NULL || phase == NULL || strcmp(phase, "Bound") != 0) {
            w = snprintf(buf + used, n - used, "; claim %s %s", claim,
                         pvc == NULL ? "does not exist"
                         : phase     ? phase
                                     : "has no phase");
            if (w < 0 || (size_t)w >= n - used) {
                json_decref(pvc);
                return;
            }
            used += (size_t)w;
        }
        json_decref(pvc);
    }
}

/* Polls until <name>-0 is Ready and runs the image of the Notebook just
 * applied (right after an image change the old pod is still Ready). */
static int wait_ready(struct aicp_ctx *ctx, const struct aicp_change *change, struct aicp_kube *k,
                      struct aicp_err *err)
{
    const struct aicp_args *args = change->args;
    const char *name = aicp_args_str(args, "name"), *ns = aicp_args_str(args, "namespace");
    const char *image = aicp_args_str(args, "image");
    double timeout = (double)aicp_args_int(args, "wait_timeout", 300);
    double deadline = now_s() + timeout, interval = 0.25;
    char pod_name[300];
    json_t *pod = NULL, *nb = NULL;
    struct nb_workspace ws;
    int rc;

    snprintf(pod_name, sizeof pod_name, "%s-0", name);
    struct aicp_kube_ref pref = {"v1", "Pod", ns, pod_name};
    struct aicp_kube_ref nref = {NB_API, NB_KIND, ns, name};
    if ((rc = parse_workspace(&ws, args, err)) != 0)
        goto out;
    for (;;) {
        json_decref(pod);
        pod = NULL;
        if ((rc = aicp_kube_get(k, &pref, &pod, err)) != 0)
            goto out;
        const char *img = pod ? pod_image(pod, name) : NULL;
        if (pod != NULL && condition_true(pod, "Ready") && img != NULL && strcmp(img, image) == 0)
            break;
        if (now_s() >= deadline) {
            char why[700];
            const json_t *objs = json_object_get(change->plan, "objects");
            const json_t *desired =
                json_object_get(json_array_get(objs, json_array_size(objs) - 1), "desired");
            describe_wait(k, ns, pod, desired, why, sizeof why);
            rc = aicp_err_set(err, AICP_ETIMEOUT,
                              "Notebook %s/%s: pod %s is not Ready with image %s after %.0f s: %s",
                              ns, name, pod_name, image, timeout, why);
            goto out;
        }
        sleep_s(interval);
        if (interval < 2)
            interval *= 1.5;
    }
    /* The notebook controller copies the pod's state a moment later. */
    for (;;) {
        json_decref(nb);
        nb = NULL;
        if ((rc = aicp_kube_get(k, &nref, &nb, err)) != 0)
            goto out;
        const json_t *rr = aicp_kube_field(nb, "status.readyReplicas");
        if (nb == NULL || (json_is_integer(rr) && json_integer_value(rr) >= 1) ||
            now_s() >= deadline)
            break;
        sleep_s(0.2);
    }
    set_results(ctx->result, args, &ws, nb, pod);
    json_object_set_new(ctx->result, "ready", json_true());
out:
    json_decref(pod);
    json_decref(nb);
    return rc;
}

static int nb_apply(struct aicp_ctx *ctx, const struct aicp_change *change, struct aicp_err *err)
{
    const struct aicp_args *args = change->args;
    struct aicp_kube *k = NULL;
    int rc;

    if ((rc = aicp_ku_apply(ctx, change, err)) != 0)
        goto out;
    if (strcmp(aicp_args_str(args, "state"), "absent") == 0 || !aicp_args_bool(args, "wait", 1))
        goto out;
    if ((rc = aicp_ku_client(ctx, args, &k, err)) != 0)
        goto out;
    rc = wait_ready(ctx, change, k, err);
out:
    return rc;
}

static const struct aicp_module_ops nb_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = nb_check,
    .diff = aicp_ku_diff,
    .apply = nb_apply,
};

const struct aicp_module aicp_mod_kubeflow_notebook = {
    .name = "kubeflow_notebook",
    .summary = "Manage a Kubeflow Notebook server with its workspace and data volumes",
    .args = nb_args,
    .flags = AICP_MOD_NEEDS_KUBE,
    .ops = &nb_ops,
};
