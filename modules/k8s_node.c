/* The k8s_node module: a cluster Node taken out of service and back the
 * way `kubectl cordon`, `drain`, `uncordon` and `delete node` do it.
 * present: schedulable (uncordoned); cordoned: spec.unschedulable; drained:
 * cordoned, then every pod bound to the node is evicted through the
 * Eviction API (so PodDisruptionBudgets hold: a refusal, 429, is asked
 * again until the timeout) and waited for until it is gone, except the pods
 * a drain leaves: DaemonSet pods (their controller would put them straight
 * back) and mirror pods (the kubelet's static pods, which the API cannot
 * delete); absent: drained (unless drain: false), then the Node object is
 * deleted. check() reads the node and its pods and refuses, before
 * anything is written, what kubectl drain refuses (DaemonSet pods without
 * ignore_daemonsets, emptyDir pods without delete_emptydir_data), in
 * kubectl's words, so check mode fails where the real run would. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "kube.h"
#include "kubeutil.h"
#include "module.h"
#include "util.h"

#define MIRROR_ANNOTATION "kubernetes.io/config.mirror"
#define EVICT_RETRY_S 1.0 /* kubectl waits 5 s between refused evictions */
#define GONE_POLL_S 0.5

static const struct aicp_arg_spec node_args[] = {
    AICP_KU_CONN_ARGS,
    {.name = "name", .type = AICP_ARG_STR, .required = 1, .help = "The Node's name."},
    {.name = "state",
     .type = AICP_ARG_STR,
     .def = "present",
     .choices = "present|cordoned|drained|absent",
     .help = "present: schedulable (uncordoned); cordoned: unschedulable; drained: cordoned and "
             "its pods evicted; absent: drained, then the Node object deleted."},
    {.name = "drain",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .help = "With state=absent, drain the node before deleting it."},
    {.name = "ignore_daemonsets",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .help = "Leave DaemonSet pods on the node; no: refuse to drain a node that has some."},
    {.name = "delete_emptydir_data",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Evict pods with emptyDir volumes (their data is lost); no: refuse to drain a node "
             "that has some."},
    {.name = "timeout",
     .type = AICP_ARG_INT,
     .def = "300",
     .help = "Seconds the drain may take: refused evictions are retried, then evicted pods "
             "are waited for, until then."},
    {.name = NULL},
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    struct timespec ts;

    if (!(s > 0))
        return;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static const char *str_at(const json_t *obj, const char *path)
{
    return json_string_value(aicp_kube_field(obj, path));
}

/* The pod's controller is a DaemonSet (metav1.GetControllerOf, as kubectl's
 * daemonSetFilter asks). */
static int daemonset_pod(const json_t *pod)
{
    size_t i;
    json_t *r;

    json_array_foreach(aicp_kube_field(pod, "metadata.ownerReferences"), i, r)
    {
        const char *kind = json_string_value(json_object_get(r, "kind"));
        if (json_is_true(json_object_get(r, "controller")) && kind != NULL &&
            strcmp(kind, "DaemonSet") == 0)
            return 1;
    }
    return 0;
}

static int mirror_pod(const json_t *pod)
{
    return json_object_get(json_object_get(aicp_kube_field(pod, "metadata"), "annotations"),
                           MIRROR_ANNOTATION) != NULL;
}

/* A running pod with an emptyDir volume: its data goes with it. A pod that
 * has finished has nothing left to lose (kubectl's localStorageFilter). */
static int emptydir_pod(const json_t *pod)
{
    const char *phase = str_at(pod, "status.phase");
    size_t i;
    json_t *v;

    if (phase != NULL && (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0))
        return 0;
    json_array_foreach(aicp_kube_field(pod, "spec.volumes"), i, v)
    {
        if (json_object_get(v, "emptyDir") != NULL)
            return 1;
    }
    return 0;
}

static int by_string(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "id"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "id"));
    return strcmp(x ? x : "", y ? y : "");
}

/* Sorts an array of {"id": "ns/name", ...} by id, in place. */
static int sort_pods(json_t *arr)
{
    size_t n = json_array_size(arr), i;
    json_t **v;

    if (n < 2)
        return 0;
    if ((v = calloc(n, sizeof(*v))) == NULL)
        return AICP_ENOMEM;
    for (i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(arr, i));
    qsort(v, n, sizeof(*v), by_string);
    json_array_clear(arr);
    for (i = 0; i < n; i++)
        json_array_append_new(arr, v[i]);
    free(v);
    return 0;
}

/* "a/b, c/d" of the ids in arr. */
static int join_ids(struct aicp_buf *b, const json_t *arr)
{
    size_t i;
    json_t *p;

    json_array_foreach(arr, i, p)
    {
        if (aicp_buf_printf(b, "%s%s", i > 0 ? ", " : "",
                            json_string_value(json_object_get(p, "id"))) != 0)
            return AICP_ENOMEM;
    }
    return 0;
}

/* The pods bound to the node, sorted into those a drain evicts and those it
 * leaves; fails as kubectl drain does when it meets pods it may not touch. */
static int node_pods(struct aicp_kube *k, const struct aicp_args *args, json_t *cur,
                     struct aicp_err *err)
{
    const char *name = aicp_args_str(args, "name");
    json_t *items = NULL, *evict = json_array(), *daemon = json_array(), *local = json_array();
    struct aicp_buf why = AICP_BUF_INIT;
    size_t i;
    json_t *pod;
    int rc;

    if (evict == NULL || daemon == NULL || local == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    /* Every namespace, filtered here: the client's list takes a label
     * selector only, and a node's pods carry no common label. */
    if ((rc = aicp_kube_list(k, "v1", "Pod", NULL, NULL, &items, err)) != 0) {
        aicp_err_prefix(err, "k8s_node %s: listing the node's pods", name);
        goto out;
    }
    json_array_foreach(items, i, pod)
    {
        const char *node = str_at(pod, "spec.nodeName");
        const char *ns = str_at(pod, "metadata.namespace");
        const char *pname = str_at(pod, "metadata.name");
        const char *uid = str_at(pod, "metadata.uid");
        char id[512];
        if (node == NULL || strcmp(node, name) != 0 || pname == NULL || mirror_pod(pod))
            continue;
        snprintf(id, sizeof id, "%s/%s", ns ? ns : "", pname);
        json_t *e = json_pack("{s:s, s:s, s:s, s:s}", "id", id, "namespace", ns ? ns : "", "name",
                              pname, "uid", uid ? uid : "");
        if (e == NULL) {
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
        if (daemonset_pod(pod)) {
            json_array_append_new(daemon, e);
            continue;
        }
        if (emptydir_pod(pod))
            json_array_append(local, e);
        json_array_append_new(evict, e);
    }
    if (sort_pods(evict) != 0 || sort_pods(daemon) != 0 || sort_pods(local) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    int refuse_ds = json_array_size(daemon) > 0 && !aicp_args_bool(args, "ignore_daemonsets", 1);
    int refuse_local =
        json_array_size(local) > 0 && !aicp_args_bool(args, "delete_emptydir_data", 0);
    if (refuse_ds || refuse_local) {
        /* kubectl's words, with the module's argument in the hint. */
        int bad = 0;
        if (refuse_ds)
            bad |= aicp_buf_puts(&why, "cannot delete DaemonSet-managed Pods (use "
                                       "ignore_daemonsets: true to ignore): ") ||
                   join_ids(&why, daemon);
        if (refuse_local)
            bad |= aicp_buf_puts(&why, refuse_ds ? "; " : "") ||
                   aicp_buf_puts(&why, "cannot delete Pods with local storage (use "
                                       "delete_emptydir_data: true to override): ") ||
                   join_ids(&why, local);
        if (bad) {
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
        rc = aicp_err_set(err, AICP_EFAILED, "k8s_node %s: cannot drain the node: %s", name,
                          why.data);
        goto out;
    }
    json_object_set(cur, "evict", evict);
    json_object_set(cur, "daemonset_pods", daemon);
out:
    json_decref(items);
    json_decref(evict);
    json_decref(daemon);
    json_decref(local);
    aicp_buf_free(&why);
    return rc;
}

static int wants_drain(const struct aicp_args *args)
{
    const char *state = aicp_args_str(args, "state");
    return strcmp(state, "drained") == 0 ||
           (strcmp(state, "absent") == 0 && aicp_args_bool(args, "drain", 1));
}

/* current: {"exists": bool, "unschedulable": bool, "evict": [pods],
 * "daemonset_pods": [pods]}; a pod is {"id": "ns/name", namespace, name, uid}. */
static int node_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                      struct aicp_err *err)
{
    const char *name = aicp_args_str(args, "name");
    const char *state = aicp_args_str(args, "state");
    struct aicp_kube_ref ref = {.api_version = "v1", .kind = "Node", .name = name};
    struct aicp_kube *k = NULL;
    json_t *node = NULL, *cur = NULL;
    int rc;

    if ((rc = aicp_ku_client(ctx, args, &k, err)) != 0)
        goto out;
    if ((rc = aicp_kube_get(k, &ref, &node, err)) != 0)
        goto out;
    if (node == NULL && strcmp(state, "absent") != 0) {
        rc = aicp_err_set(err, AICP_ENOTFOUND,
                          "k8s_node %s: the cluster has no node %s (state %s needs one)", name,
                          name, state);
        goto out;
    }
    int unsched = json_is_true(aicp_kube_field(node, "spec.unschedulable"));
    cur = json_pack("{s:b, s:b, s:[], s:[]}", "exists", node != NULL, "unschedulable", unsched,
                    "evict", "daemonset_pods");
    if (cur == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (node != NULL && wants_drain(args) && (rc = node_pods(k, args, cur, err)) != 0)
        goto out;
    /* check runs again after apply (verify): what apply evicted stays. */
    json_object_set_new(ctx->result, "unschedulable", json_boolean(unsched));
    if (json_object_get(ctx->result, "evicted") == NULL)
        json_object_set_new(ctx->result, "evicted", json_array());
    *current = cur;
    cur = NULL;
out:
    json_decref(node);
    json_decref(cur);
    return rc;
}

/* ["ns/name", ...] of a list of pods. */
static json_t *pod_ids(const json_t *pods)
{
    json_t *out = json_array();
    size_t i;
    json_t *p;

    json_array_foreach(pods, i, p)
    {
        json_array_append(out, json_object_get(p, "id"));
    }
    return out;
}

/* plan: {"unschedulable": true|false|null (leave it), "evict": [pods],
 * "delete": bool}. before/after: spec.unschedulable, the pods to evict
 * (after: none left), and for absent whether the node exists. */
static int node_diff(const json_t *current, const struct aicp_args *args,
                     struct aicp_change **change, struct aicp_err *err)
{
    const char *state = aicp_args_str(args, "state");
    int exists = json_is_true(json_object_get(current, "exists"));
    int unsched = json_is_true(json_object_get(current, "unschedulable"));
    const json_t *evict = json_object_get(current, "evict");
    int absent = strcmp(state, "absent") == 0;
    int want_unsched = strcmp(state, "present") != 0;
    struct aicp_change *c = NULL;
    json_t *plan = NULL, *before = NULL, *after = NULL;
    int rc = 0;

    if (aicp_change_new(&c) != 0)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    if (!exists) {
        *change = c; /* absent, and already gone */
        return 0;
    }
    int set_unsched = unsched != want_unsched && !(absent && !wants_drain(args));
    plan = json_pack("{s:o, s:O, s:b}", "unschedulable",
                     set_unsched ? json_boolean(want_unsched) : json_null(), "evict", evict,
                     "delete", absent);
    before = json_pack("{s:b}", "spec.unschedulable", unsched);
    after = json_pack("{s:b}", "spec.unschedulable", set_unsched ? want_unsched : unsched);
    if (plan == NULL || before == NULL || after == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (wants_drain(args)) {
        json_object_set_new(before, "pods", pod_ids(evict));
        json_object_set_new(after, "pods", json_array());
    }
    if (absent) {
        json_object_set_new(before, "exists", json_true());
        json_object_set_new(after, "exists", json_false());
    }
    c->needed = set_unsched || json_array_size(evict) > 0 || absent;
    c->plan = plan;
    c->before = before;
    c->after = after;
    plan = before = after = NULL;
    *change = c;
    c = NULL;
out:
    aicp_change_free(c);
    json_decref(plan);
    json_decref(before);
    json_decref(after);
    return rc;
}

/* Evicts one pod, asking again while a disruption budget refuses (429)
 * until the deadline. A pod already gone counts as evicted. */
static int evict_pod(struct aicp_kube *k, const char *node, const json_t *pod, double deadline,
                     struct aicp_err *err)
{
    const char *ns = json_string_value(json_object_get(pod, "namespace"));
    const char *name = json_string_value(json_object_get(pod, "name"));
    const char *id = json_string_value(json_object_get(pod, "id"));

    for (;;) {
        long status = 0;
        int rc = aicp_kube_evict(k, ns, name, 0, &status, err);
        if (rc == 0 || rc == AICP_ENOTFOUND)
            return 0;
        if (status != 429)
            return rc;
        if (now_s() + EVICT_RETRY_S > deadline) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            return aicp_err_set(err, AICP_ETIMEOUT,
                                "k8s_node %s: pod %s was not evicted within the timeout: %s", node,
                                id, msg);
        }
        sleep_s(EVICT_RETRY_S);
    }
}

/* Waits until every evicted pod is gone (or replaced by a new pod of the
 * same name: another uid), as kubectl drain does. */
static int wait_gone(struct aicp_kube *k, const char *node, const json_t *pods, double deadline,
                     double timeout, struct aicp_err *err)
{
    size_t i;
    json_t *p;

    json_array_foreach(pods, i, p)
    {
        struct aicp_kube_ref ref = {
            .api_version = "v1",
            .kind = "Pod",
            .namespace = json_string_value(json_object_get(p, "namespace")),
            .name = json_string_value(json_object_get(p, "name")),
        };
        const char *uid = json_string_value(json_object_get(p, "uid"));
        for (;;) {
            json_t *live = NULL;
            int rc = aicp_kube_get(k, &ref, &live, err);
            if (rc != 0)
                return rc;
            const char *luid = str_at(live, "metadata.uid");
            int gone = live == NULL || luid == NULL || uid == NULL || strcmp(luid, uid) != 0;
            json_decref(live);
            if (gone)
                break;
            if (now_s() + GONE_POLL_S > deadline)
                return aicp_err_set(err, AICP_ETIMEOUT,
                                    "k8s_node %s: pod %s was evicted but still exists after %.0f s",
                                    node, json_string_value(json_object_get(p, "id")), timeout);
            sleep_s(GONE_POLL_S);
        }
    }
    return 0;
}

static int node_apply(struct aicp_ctx *ctx, const struct aicp_change *change, struct aicp_err *err)
{
    const struct aicp_args *args = change->args;
    const char *name = aicp_args_str(args, "name");
    const json_t *plan = change->plan;
    const json_t *set = json_object_get(plan, "unschedulable");
    const json_t *evict = json_object_get(plan, "evict");
    struct aicp_kube_ref ref = {.api_version = "v1", .kind = "Node", .name = name};
    struct aicp_kube *k = NULL;
    json_t *patch = NULL, *done = json_array();
    double timeout = (double)aicp_args_int(args, "timeout", 300);
    double deadline = now_s() + timeout;
    size_t i;
    json_t *p;
    int rc;

    if (done == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    if ((rc = aicp_ku_client(ctx, args, &k, err)) != 0)
        goto out;
    if (json_is_boolean(set)) {
        /* Schedulable again is the field's absence, as kubectl uncordon
         * leaves it (the API omits false). */
        patch = json_pack("{s:{s:O}}", "spec", "unschedulable",
                          json_is_true(set) ? json_true() : json_null());
        if (patch == NULL) {
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
        if ((rc = aicp_kube_merge_patch(k, &ref, patch, 0, NULL, err)) != 0) {
            aicp_err_prefix(err, "k8s_node %s", name);
            goto out;
        }
        json_object_set_new(ctx->result, "unschedulable", json_boolean(json_is_true(set)));
    }
    json_array_foreach(evict, i, p)
    {
        if ((rc = evict_pod(k, name, p, deadline, err)) != 0)
            goto out;
        json_array_append(done, json_object_get(p, "id"));
        json_object_set(ctx->result, "evicted", done);
    }
    if ((rc = wait_gone(k, name, evict, deadline, timeout, err)) != 0)
        goto out;
    if (json_is_true(json_object_get(plan, "delete"))) {
        if ((rc = aicp_kube_delete(k, &ref, NULL, 0, timeout, NULL, err)) != 0) {
            aicp_err_prefix(err, "k8s_node %s", name);
            goto out;
        }
    }
out:
    json_decref(patch);
    json_decref(done);
    return rc;
}

static const struct aicp_module_ops node_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = node_check,
    .diff = node_diff,
    .apply = node_apply,
};

const struct aicp_module aicp_mod_k8s_node = {
    .name = "k8s_node",
    .summary = "Cordon, drain, uncordon or remove a Kubernetes Node",
    .args = node_args,
    .flags = AICP_MOD_NEEDS_KUBE,
    .ops = &node_ops,
};
