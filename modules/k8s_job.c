/* The k8s_job module: runs a batch/v1 Job (a training run, a data copy)
 * and reports how it went. The Job is declared from convenience arguments
 * (image, command, env, GPU resources, PVC volumes) or a raw spec and goes
 * through kubeutil's life cycle; a Job that exists with the same declared
 * spec is unchanged, finished or not, so a playbook re-run does not re-run
 * the training. A Job's spec cannot be changed in place (its pod template
 * is immutable and a finished Job would not run again anyway): a changed
 * spec needs replace, which deletes the old Job with its pods and creates
 * the new one. After a change it waits for Complete or Failed and collects
 * the logs of the Job's pods (label job-name=NAME) into the result; a
 * failed Job fails the task with its reason and the tail of the log. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kube.h"
#include "kubeutil.h"
#include "module.h"
#include "util.h"

#define LOG_TAIL_LINES 20
#define LOG_TAIL_BYTES 2000

static const struct aicp_arg_spec job_args[] = {
    AICP_KU_CONN_ARGS,
    {.name = "name", .type = AICP_ARG_STR, .required = 1, .help = "Name of the Job."},
    {.name = "namespace",
     .type = AICP_ARG_STR,
     .help = "Namespace of the Job (default: the kubeconfig context's namespace)."},
    {.name = "image",
     .type = AICP_ARG_STR,
     .help = "Container image; required unless spec is given."},
    {.name = "command", .type = AICP_ARG_LIST, .help = "The container's command (entrypoint)."},
    {.name = "args", .type = AICP_ARG_LIST, .help = "The container's arguments."},
    {.name = "env", .type = AICP_ARG_DICT, .help = "Environment variables, NAME: value."},
    {.name = "resources",
     .type = AICP_ARG_DICT,
     .help = "The container's resources: {limits: {nvidia.com/gpu: 8}, requests: {...}}."},
    {.name = "volumes",
     .type = AICP_ARG_LIST,
     .help = "PVCs to mount: a list of {name, pvc, mount_path, read_only}."},
    {.name = "node_selector", .type = AICP_ARG_DICT, .help = "The pod's nodeSelector."},
    {.name = "backoff_limit",
     .type = AICP_ARG_INT,
     .def = "0",
     .help = "spec.backoffLimit: retries before the Job counts as failed."},
    {.name = "restart_policy",
     .type = AICP_ARG_STR,
     .def = "Never",
     .choices = "Never|OnFailure",
     .help = "The pod's restartPolicy."},
    {.name = "spec",
     .type = AICP_ARG_DICT,
     .help = "A whole Job spec (batch/v1 JobSpec) instead of the convenience arguments."},
    {.name = "labels", .type = AICP_ARG_DICT, .help = "Labels of the Job."},
    {.name = "annotations", .type = AICP_ARG_DICT, .help = "Annotations of the Job."},
    {.name = "state",
     .type = AICP_ARG_STR,
     .def = "present",
     .choices = "present|absent",
     .help = "present: the Job exists as declared; absent: it is deleted with its pods."},
    {.name = "wait",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .help = "After creating the Job, wait until it is Complete or Failed."},
    {.name = "wait_timeout",
     .type = AICP_ARG_INT,
     .def = "3600",
     .help = "Seconds to wait for the Job to finish."},
    {.name = "replace",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "When the declared spec differs from the existing Job's, delete the Job (and its "
             "pods) and create it again; without it such a change fails."},
    {.name = "collect_logs",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .help = "Put the logs of the Job's pods into the result (logs)."},
    {.name = "force",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Server-side apply with force: take over fields another manager owns."},
    {.name = NULL},
};

/* The whole spec: a Job's template and selector are immutable, and a Job
 * whose other settings changed would not run again either. */
static const char *const job_immutable[] = {"spec", NULL};

static const char *const convenience[] = {"image",         "command",        "args",
                                          "env",           "resources",      "volumes",
                                          "node_selector", NULL};

/* A scalar as the string the API would keep (quantities, env values). */
static json_t *as_string(const json_t *v)
{
    char buf[64];

    if (json_is_string(v))
        return json_string(json_string_value(v));
    if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
        return json_string(buf);
    }
    if (json_is_real(v)) {
        snprintf(buf, sizeof(buf), "%.15g", json_real_value(v));
        return json_string(buf);
    }
    if (json_is_boolean(v))
        return json_string(json_is_true(v) ? "true" : "false");
    return json_string("");
}

/* resources: {limits: {nvidia.com/gpu: 8}} -> quantities as strings, as
 * the server returns them, so the drift compares like with like. */
static json_t *build_resources(const json_t *res)
{
    json_t *out = json_object();
    const char *k, *q;
    json_t *v, *qv;

    json_object_foreach((json_t *)res, k, v) {
        if (!json_is_object(v)) {
            json_object_set_new(out, k, json_deep_copy(v));
            continue;
        }
        json_t *m = json_object();
        json_object_foreach(v, q, qv)
            json_object_set_new(m, q, as_string(qv));
        json_object_set_new(out, k, m);
    }
    return out;
}

static int build_pod_spec(json_t *pod, const struct aicp_args *args, struct aicp_err *err)
{
    const char *name = aicp_args_str(args, "name");
    /* The container is named after the Job, as kubectl create job does;
     * a container name is a DNS label, without dots. */
    char cname[64];
    snprintf(cname, sizeof(cname), "%s", name);
    for (char *p = cname; *p; p++)
        if (*p == '.')
            *p = '-';
    json_t *c = json_pack("{s:s, s:s}", "name", cname, "image", aicp_args_str(args, "image"));
    json_t *vols = NULL, *mounts = NULL;
    int rc = 0;

    if (c == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    const json_t *v;
    if ((v = aicp_args_get(args, "command")) && json_array_size(v) > 0)
        json_object_set_new(c, "command", json_deep_copy(v));
    if ((v = aicp_args_get(args, "args")) && json_array_size(v) > 0)
        json_object_set_new(c, "args", json_deep_copy(v));
    if ((v = aicp_args_get(args, "env")) && json_object_size(v) > 0) {
        json_t *env = json_array();
        const char *k;
        json_t *ev;
        json_object_foreach((json_t *)v, k, ev)
            json_array_append_new(env, json_pack("{s:s, s:o}", "name", k, "value", as_string(ev)));
        json_object_set_new(c, "env", env);
    }
    if ((v = aicp_args_get(args, "resources")) && json_object_size(v) > 0)
        json_object_set_new(c, "resources", build_resources(v));
    if ((v = aicp_args_get(args, "volumes")) && json_array_size(v) > 0) {
        vols = json_array();
        mounts = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            const char *vn = json_string_value(json_object_get(e, "name"));
            const char *claim = json_string_value(json_object_get(e, "pvc"));
            const char *path = json_string_value(json_object_get(e, "mount_path"));
            int ro = json_is_true(json_object_get(e, "read_only"));
            if (!json_is_object(e) || vn == NULL || claim == NULL || path == NULL) {
                rc = aicp_err_set(err, AICP_EINVAL,
                                  "k8s_job %s: volumes[%zu] needs name, pvc and mount_path", name,
                                  i);
                goto out;
            }
            json_t *pvc = json_pack("{s:s}", "claimName", claim);
            json_t *mount = json_pack("{s:s, s:s}", "name", vn, "mountPath", path);
            if (ro) {
                json_object_set_new(pvc, "readOnly", json_true());
                json_object_set_new(mount, "readOnly", json_true());
            }
            json_array_append_new(vols, json_pack("{s:s, s:o}", "name", vn,
                                                  "persistentVolumeClaim", pvc));
            json_array_append_new(mounts, mount);
        }
        json_object_set(c, "volumeMounts", mounts);
        json_object_set(pod, "volumes", vols);
    }
    json_object_set_new(pod, "restartPolicy", json_string(aicp_args_str(args, "restart_policy")));
    if ((v = aicp_args_get(args, "node_selector")) && json_object_size(v) > 0) {
        json_t *ns = json_object();
        const char *k;
        json_t *nv;
        json_object_foreach((json_t *)v, k, nv)
            json_object_set_new(ns, k, as_string(nv));
        json_object_set_new(pod, "nodeSelector", ns);
    }
    json_object_set_new(pod, "containers", json_pack("[O]", c));
out:
    json_decref(c);
    json_decref(vols);
    json_decref(mounts);
    return rc;
}

static int build_manifest(json_t **out, const struct aicp_args *args, struct aicp_err *err)
{
    const char *name = aicp_args_str(args, "name");
    json_t *m = aicp_ku_manifest("batch/v1", "Job", aicp_args_str(args, "namespace"), name);
    json_t *spec = NULL;
    int rc = 0;

    if (m == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = aicp_ku_set_meta(m, args, err)) != 0)
        goto out;
    const json_t *raw = aicp_args_get(args, "spec");
    if (raw != NULL) {
        for (const char *const *c = convenience; *c; c++)
            if (aicp_args_get(args, *c) != NULL) {
                rc = aicp_err_set(err, AICP_EINVAL,
                                  "k8s_job %s: spec and %s are mutually exclusive: a raw spec "
                                  "holds the whole Job spec",
                                  name, *c);
                goto out;
            }
        spec = json_deep_copy(raw);
    } else {
        if (aicp_args_str(args, "image") == NULL) {
            rc = aicp_err_set(err, AICP_EINVAL,
                              "k8s_job %s: image is required with state=present (or give spec)",
                              name);
            goto out;
        }
        json_t *pod = json_object();
        spec = json_pack("{s:I, s:{s:o}}", "backoffLimit",
                         (json_int_t)aicp_args_int(args, "backoff_limit", 0), "template", "spec",
                         pod);
        if (spec == NULL || (rc = build_pod_spec(pod, args, err)) != 0)
            goto out;
    }
    if (spec == NULL || json_object_set(m, "spec", spec) != 0) {
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

/* The condition of this type that is True, or NULL. */
static const json_t *true_condition(const json_t *job, const char *type)
{
    const json_t *conds = aicp_kube_field(job, "status.conditions");
    size_t i;
    json_t *c;

    json_array_foreach(conds, i, c) {
        const char *t = json_string_value(json_object_get(c, "type"));
        const char *s = json_string_value(json_object_get(c, "status"));
        if (t && s && strcmp(t, type) == 0 && strcmp(s, "True") == 0)
            return c;
    }
    return NULL;
}

static int by_creation(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    const char *tx = json_string_value(aicp_kube_field(x, "metadata.creationTimestamp"));
    const char *ty = json_string_value(aicp_kube_field(y, "metadata.creationTimestamp"));
    int c = strcmp(tx ? tx : "", ty ? ty : "");
    if (c != 0)
        return c;
    const char *nx = json_string_value(aicp_kube_field(x, "metadata.name"));
    const char *ny = json_string_value(aicp_kube_field(y, "metadata.name"));
    return strcmp(nx ? nx : "", ny ? ny : "");
}

/* Sets pods, logs, succeeded and failed in the result from the Job and
 * its pods (oldest first; with several pods each log gets a header). A
 * log that cannot be read is said so in the text, not a failure: the
 * Job's outcome is what the task reports. */
static int collect(struct aicp_kube *k, const struct aicp_args *args, const json_t *job,
                   json_t *result, struct aicp_err *err)
{
    const char *ns = json_string_value(aicp_kube_field(job, "metadata.namespace"));
    const char *name = aicp_args_str(args, "name");
    json_t *items = NULL, *pods = json_array();
    json_t **v = NULL;
    struct aicp_buf logs = AICP_BUF_INIT, sel = AICP_BUF_INIT;
    int rc;

    json_t *s = json_object_get(json_object_get(job, "status"), "succeeded");
    json_t *f = json_object_get(json_object_get(job, "status"), "failed");
    json_object_set_new(result, "succeeded", json_integer(json_integer_value(s)));
    json_object_set_new(result, "failed", json_integer(json_integer_value(f)));
    if ((rc = aicp_buf_printf(&sel, "job-name=%s", name)) != 0 ||
        (rc = aicp_kube_list(k, "v1", "Pod", ns, sel.data, &items, err)) != 0)
        goto out;
    size_t n = json_array_size(items);
    if (n > 0 && (v = calloc(n, sizeof(*v))) == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = json_array_get(items, i);
    if (n > 1)
        qsort(v, n, sizeof(*v), by_creation);
    for (size_t i = 0; i < n; i++) {
        const char *pod = json_string_value(aicp_kube_field(v[i], "metadata.name"));
        const char *phase = json_string_value(aicp_kube_field(v[i], "status.phase"));
        const json_t *c0 = json_array_get(aicp_kube_field(v[i], "spec.containers"), 0);
        const char *cname = json_string_value(json_object_get(c0, "name"));
        if (pod == NULL)
            continue;
        json_array_append_new(pods, json_pack("{s:s, s:s?}", "name", pod, "phase", phase));
        if (!aicp_args_bool(args, "collect_logs", 1))
            continue;
        char *text = NULL;
        struct aicp_err lerr = {0};
        if (n > 1)
            aicp_buf_printf(&logs, "==> pod %s <==\n", pod);
        if (aicp_kube_logs(k, ns, pod, cname, &text, &lerr) == 0) {
            aicp_buf_puts(&logs, text);
            if (logs.len > 0 && logs.data[logs.len - 1] != '\n')
                aicp_buf_puts(&logs, "\n");
        } else {
            aicp_buf_printf(&logs, "(no log from pod %s: %s)\n", pod, lerr.msg);
        }
        free(text);
    }
    json_object_set(result, "pods", pods);
    if (aicp_args_bool(args, "collect_logs", 1))
        json_object_set_new(result, "logs", json_string(logs.data ? logs.data : ""));
out:
    free(v);
    json_decref(items);
    json_decref(pods);
    aicp_buf_free(&logs);
    aicp_buf_free(&sel);
    return rc;
}

/* "Job ns/x failed (Reason: message); last lines of the log: ..." */
static int failed_error(const json_t *job, const json_t *result, struct aicp_err *err)
{
    const json_t *c = true_condition(job, "Failed");
    const char *reason = json_string_value(json_object_get(c, "reason"));
    const char *msg = json_string_value(json_object_get(c, "message"));
    const char *logs = json_string_value(json_object_get(result, "logs"));
    const char *tail = NULL;

    if (logs != NULL && *logs) {
        /* the last LOG_TAIL_LINES lines, at most LOG_TAIL_BYTES */
        const char *end = logs + strlen(logs), *p = end;
        int lines = 0;
        if (p[-1] == '\n')
            p--;
        while (p > logs && end - p < LOG_TAIL_BYTES) {
            if (p[-1] == '\n' && ++lines >= LOG_TAIL_LINES)
                break;
            p--;
        }
        tail = p;
    }
    return aicp_err_set(err, AICP_EFAILED, "Job %s/%s failed (%s%s%s)%s%s",
                        json_string_value(aicp_kube_field(job, "metadata.namespace")),
                        json_string_value(aicp_kube_field(job, "metadata.name")),
                        reason ? reason : "no reason given", msg ? ": " : "", msg ? msg : "",
                        tail && *tail ? "; end of the log:\n" : "", tail ? tail : "");
}

static int job_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                     struct aicp_err *err)
{
    struct aicp_kube *k = NULL;
    json_t *m = NULL;
    int absent = strcmp(aicp_args_str(args, "state"), "absent") == 0;
    int rc;

    if (absent)
        m = aicp_ku_manifest("batch/v1", "Job", aicp_args_str(args, "namespace"),
                             aicp_args_str(args, "name"));
    else if ((rc = build_manifest(&m, args, err)) != 0)
        goto out;
    if (m == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = aicp_ku_client(ctx, args, &k, err)) != 0)
        goto out;
    struct aicp_ku_opts o = {
        .absent = absent,
        .immutable = job_immutable,
        .allow_replace = aicp_args_bool(args, "replace", 0),
        .force = aicp_args_bool(args, "force", 0),
        /* a Job's pods go with it (the API's default for Jobs orphans them) */
        .propagation = "Foreground",
    };
    json_t *manifests = json_array();
    if (manifests == NULL || json_array_append_new(manifests, m) != 0) {
        m = NULL;
        json_decref(manifests);
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    m = NULL;
    rc = aicp_ku_check(ctx, args, manifests, &o, current, err);
    if (rc != 0 || absent)
        goto out;
    /* An existing Job that stays as it is: report how it went. A failed
     * one fails the task again, as the run that made it did. */
    const json_t *obj = json_array_get(json_object_get(*current, "objects"), 0);
    const json_t *live = json_object_get(obj, "live");
    if (!json_is_object(live) || json_array_size(json_object_get(obj, "drift")) > 0 ||
        json_is_true(json_object_get(obj, "replace")))
        goto out;
    int done = true_condition(live, "Complete") != NULL;
    int failed = true_condition(live, "Failed") != NULL;
    if (!done && !failed) {
        json_object_set_new(ctx->result, "succeeded", json_integer(json_integer_value(
                                                          aicp_kube_field(live, "status.succeeded"))));
        json_object_set_new(ctx->result, "failed", json_integer(json_integer_value(
                                                       aicp_kube_field(live, "status.failed"))));
        goto out;
    }
    if ((rc = collect(k, args, live, ctx->result, err)) != 0)
        goto out;
    if (failed && aicp_args_bool(args, "wait", 1))
        rc = failed_error(live, ctx->result, err);
out:
    json_decref(m);
    return rc;
}

static int job_apply(struct aicp_ctx *ctx, const struct aicp_change *change, struct aicp_err *err)
{
    const struct aicp_args *args = change->args;
    struct aicp_kube *k = NULL;
    json_t *job = NULL;
    int rc;

    if ((rc = aicp_ku_apply(ctx, change, err)) != 0)
        goto out;
    if (strcmp(aicp_args_str(args, "state"), "absent") == 0 || !aicp_args_bool(args, "wait", 1))
        goto out;
    if ((rc = aicp_ku_client(ctx, args, &k, err)) != 0)
        goto out;
    struct aicp_kube_ref ref = {
        .api_version = "batch/v1",
        .kind = "Job",
        .namespace = aicp_args_str(args, "namespace"),
        .name = aicp_args_str(args, "name"),
    };
    struct aicp_kube_wait w = {
        .condition = "Complete",
        .fail_condition = "Failed",
        .timeout_s = (double)aicp_args_int(args, "wait_timeout", 3600),
        .interval_s = 0.5, /* short Jobs finish in seconds; the poll backs off to 5x */
    };
    rc = aicp_kube_wait(k, &ref, &w, &job, err);
    if (rc != 0 && rc != AICP_EFAILED)
        goto out;
    if (job == NULL || (rc == AICP_EFAILED && true_condition(job, "Failed") == NULL)) {
        /* the last object read is the one to report on */
        json_decref(job);
        job = NULL;
        struct aicp_err gerr = {0};
        if (aicp_kube_get(k, &ref, &job, &gerr) != 0 || job == NULL)
            goto out;
    }
    int wait_rc = rc;
    if ((rc = collect(k, args, job, ctx->result, err)) != 0)
        goto out;
    if (wait_rc == AICP_EFAILED)
        rc = failed_error(job, ctx->result, err);
out:
    json_decref(job);
    return rc;
}

static const struct aicp_module_ops job_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = job_check,
    .diff = aicp_ku_diff,
    .apply = job_apply,
};

const struct aicp_module aicp_mod_k8s_job = {
    .name = "k8s_job",
    .summary = "Run a Kubernetes Job, wait for it and collect its logs",
    .args = job_args,
    .flags = AICP_MOD_NEEDS_KUBE,
    .ops = &job_ops,
};
