/* The k8s_wait module: a readiness gate. It waits until Kubernetes objects
 * that something else created (a Helm release's Deployments, the Trident
 * operator's controller and node pods, a Job) are ready, and optionally
 * until a URL answers, and fails naming each object that is not ready and
 * why when the time is up. It never changes anything: the waiting happens
 * in check(), diff() never finds a change, so the result is never
 * "changed". Readiness is judged the way `kubectl rollout status` and
 * `kubectl wait` judge it, per kind, from the objects' status as the
 * controllers report it. In check mode (ansible_check_mode in the task's
 * vars) it reads once and reports what is not ready yet as ok with a
 * message instead of waiting or failing: in a check run the resources
 * before it were not really made, so their objects cannot become ready. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "http.h"
#include "kube.h"
#include "kubeutil.h"
#include "module.h"
#include "util.h"

/* The most objects a message lists one by one; the rest are counted. */
#define WAIT_MAX_LISTED 8
/* One URL attempt never takes longer than this, whatever is left. */
#define WAIT_URL_ATTEMPT_MS 30000L
#define WAIT_URL_CONNECT_MS 10000L

static const struct aicp_arg_spec wait_args[] = {
    AICP_KU_CONN_ARGS,
    {.name = "kind",
     .type = AICP_ARG_STR,
     .def = "Deployment",
     .choices = "Deployment|StatefulSet|DaemonSet|Pod|Job",
     .help = "Kind of the objects to wait for (apps/v1, v1 or batch/v1, implied)."},
    {.name = "namespace", .type = AICP_ARG_STR, .required = 1, .help = "Namespace of the objects."},
    {.name = "name", .type = AICP_ARG_STR, .help = "Wait for this one object."},
    {.name = "names", .type = AICP_ARG_LIST, .help = "Wait for each of these objects."},
    {.name = "label_selector",
     .type = AICP_ARG_STR,
     .help = "Wait for every object of the kind whose labels match (\"app=web,tier!=db\"). "
             "Without name, names and label_selector: every object of the kind in the "
             "namespace."},
    {.name = "allow_none",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "With label_selector or neither: succeed at once when no object matches; by "
             "default, wait until at least one exists."},
    {.name = "condition",
     .type = AICP_ARG_STR,
     .help = "A status condition type (\"Progressing\") that must have condition_status, "
             "instead of the kind's own readiness."},
    {.name = "condition_status",
     .type = AICP_ARG_STR,
     .def = "True",
     .choices = "True|False|Unknown",
     .help = "The status the condition must have."},
    {.name = "timeout",
     .type = AICP_ARG_INT,
     .def = "300",
     .help = "Seconds to wait for the objects and then the URL, together."},
    {.name = "interval", .type = AICP_ARG_FLOAT, .def = "2", .help = "Seconds between reads."},
    {.name = "url",
     .type = AICP_ARG_STR,
     .help = "After the objects are ready, GET this URL until it answers status_code "
             "(redirects are not followed)."},
    {.name = "status_code",
     .type = AICP_ARG_LIST,
     .def = "200",
     .help = "The HTTP status (or a list of them) that counts as an answer."},
    {.name = "ca_file",
     .type = AICP_ARG_PATH,
     .local = 1,
     .help = "PEM CA bundle that verifies an https url (default: the system's)."},
    {.name = "validate_certs",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .help = "Verify the https url's certificate and host name."},
    {.name = NULL},
};

/* One kind: where it lives in the API and how it reads as ready. judge()
 * returns 1 when obj is ready, else 0 with the reason appended to why;
 * *fatal = 1 when it will never be ready (a failed Job). */
struct wait_kind {
    const char *kind;
    const char *api_version;
    const char *lower; /* "deployment", as kubectl names it in messages */
    int (*judge)(const json_t *obj, struct aicp_buf *why, int *fatal);
};

static long long num(const json_t *obj, const char *path, long long dflt)
{
    const json_t *v = aicp_kube_field(obj, path);
    return json_is_integer(v) ? (long long)json_integer_value(v) : dflt;
}

static const json_t *condition_of(const json_t *obj, const char *type)
{
    size_t i;
    json_t *c;

    json_array_foreach(aicp_kube_field(obj, "status.conditions"), i, c)
    {
        const char *t = json_string_value(json_object_get(c, "type"));
        if (t != NULL && strcmp(t, type) == 0)
            return c;
    }
    return NULL;
}

static int condition_is(const json_t *obj, const char *type, const char *status)
{
    const char *s = json_string_value(json_object_get(condition_of(obj, type), "status"));
    return s != NULL && strcmp(s, status) == 0;
}

/* Appends "; " between the reasons of one object. */
static void reason(struct aicp_buf *why, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void reason(struct aicp_buf *why, const char *fmt, ...)
{
    va_list ap;

    if (why->len > 0)
        aicp_buf_puts(why, ", ");
    va_start(ap, fmt);
    aicp_buf_vprintf(why, fmt, ap);
    va_end(ap);
}

/* "condition Available is False (MinimumReplicasUnavailable: ...)". */
static void condition_reason(struct aicp_buf *why, const json_t *obj, const char *type)
{
    const json_t *c = condition_of(obj, type);
    const char *s = json_string_value(json_object_get(c, "status"));
    const char *r = json_string_value(json_object_get(c, "reason"));
    const char *m = json_string_value(json_object_get(c, "message"));

    if (c == NULL) {
        reason(why, "no %s condition yet", type);
        return;
    }
    reason(why, "condition %s is %s", type, s ? s : "unset");
    if (r != NULL || m != NULL)
        aicp_buf_printf(why, " (%s%s%s)", r ? r : "", r && m ? ": " : "", m ? m : "");
}

/* A status the controller wrote for an older spec says nothing about the
 * current one (a Helm upgrade just changed it). */
static int stale(const json_t *obj, struct aicp_buf *why)
{
    long long gen = num(obj, "metadata.generation", 0);
    long long seen = num(obj, "status.observedGeneration", -1);

    if (seen >= gen)
        return 0;
    if (seen < 0)
        reason(why, "not yet seen by its controller");
    else
        reason(why, "its controller has seen generation %lld of %lld", seen, gen);
    return 1;
}

/* As `kubectl rollout status deployment`: the new ReplicaSet has every
 * replica, no old one is left, all are available, and Available is True. */
static int judge_deployment(const json_t *obj, struct aicp_buf *why, int *fatal)
{
    long long want = num(obj, "spec.replicas", 1);
    long long have = num(obj, "status.replicas", 0);
    long long updated = num(obj, "status.updatedReplicas", 0);
    long long avail = num(obj, "status.availableReplicas", 0);
    size_t before = why->len;

    (void)fatal;
    if (avail < want)
        reason(why, "%lld/%lld available", avail, want);
    if (updated < want)
        reason(why, "%lld/%lld updated", updated, want);
    else if (have > updated)
        reason(why, "%lld old replicas pending termination", have - updated);
    stale(obj, why);
    if (!condition_is(obj, "Available", "True"))
        condition_reason(why, obj, "Available");
    /* The controller gave up on the rollout: kubectl stops here too, but a
     * gate may see a later Helm retry succeed, so this is only the why. */
    const json_t *p = condition_of(obj, "Progressing");
    const char *pr = json_string_value(json_object_get(p, "reason"));
    if (pr != NULL && strcmp(pr, "ProgressDeadlineExceeded") == 0)
        reason(why, "progress deadline exceeded");
    return why->len == before;
}

static int judge_statefulset(const json_t *obj, struct aicp_buf *why, int *fatal)
{
    long long want = num(obj, "spec.replicas", 1);
    long long ready = num(obj, "status.readyReplicas", 0);
    size_t before = why->len;

    (void)fatal;
    if (ready < want)
        reason(why, "%lld/%lld ready", ready, want);
    /* A rolling update is done when every pod runs the update revision. */
    const char *cur = json_string_value(aicp_kube_field(obj, "status.currentRevision"));
    const char *upd = json_string_value(aicp_kube_field(obj, "status.updateRevision"));
    long long updated = num(obj, "status.updatedReplicas", 0);
    if (cur != NULL && upd != NULL && strcmp(cur, upd) != 0 && updated < want)
        reason(why, "%lld/%lld updated", updated, want);
    stale(obj, why);
    return why->len == before;
}

/* A DaemonSet that no node is eligible for (desired 0) is ready: there is
 * nothing to wait for, as kubectl rollout status says. */
static int judge_daemonset(const json_t *obj, struct aicp_buf *why, int *fatal)
{
    long long want = num(obj, "status.desiredNumberScheduled", 0);
    long long ready = num(obj, "status.numberReady", 0);
    long long updated = num(obj, "status.updatedNumberScheduled", 0);
    size_t before = why->len;

    (void)fatal;
    if (ready < want)
        reason(why, "%lld/%lld ready", ready, want);
    if (updated < want)
        reason(why, "%lld/%lld updated", updated, want);
    stale(obj, why);
    return why->len == before;
}

static int judge_pod(const json_t *obj, struct aicp_buf *why, int *fatal)
{
    const char *phase = json_string_value(aicp_kube_field(obj, "status.phase"));

    if (condition_is(obj, "Ready", "True"))
        return 1;
    if (phase != NULL && (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0)) {
        /* A pod that terminated never becomes Ready again. */
        *fatal = 1;
        reason(why, "phase %s: it has terminated and will never be Ready", phase);
        return 0;
    }
    reason(why, "phase %s", phase ? phase : "unknown");
    condition_reason(why, obj, "Ready");
    return 0;
}

static int judge_job(const json_t *obj, struct aicp_buf *why, int *fatal)
{
    if (condition_is(obj, "Complete", "True"))
        return 1;
    if (condition_is(obj, "Failed", "True")) {
        *fatal = 1;
        condition_reason(why, obj, "Failed");
        return 0;
    }
    reason(why, "not complete (%lld succeeded, %lld active, %lld failed)",
           num(obj, "status.succeeded", 0), num(obj, "status.active", 0),
           num(obj, "status.failed", 0));
    return 0;
}

static const struct wait_kind kinds[] = {
    {"Deployment", "apps/v1", "deployment", judge_deployment},
    {"StatefulSet", "apps/v1", "statefulset", judge_statefulset},
    {"DaemonSet", "apps/v1", "daemonset", judge_daemonset},
    {"Pod", "v1", "pod", judge_pod},
    {"Job", "batch/v1", "job", judge_job},
};

/* What one read found. */
struct wait_round {
    json_t *ready;     /* ["Deployment/ns/name", ...] */
    json_t *not_ready; /* [{"object": "Deployment/ns/name", "reason": "0/1 available"}] */
    char *fatal;       /* "job ns/x: condition Failed is True (...)": stop now */
};

static void round_clear(struct wait_round *r)
{
    json_decref(r->ready);
    json_decref(r->not_ready);
    free(r->fatal);
    memset(r, 0, sizeof(*r));
}

/* The options every read of one call shares. */
struct wait_call {
    struct aicp_kube *k;
    const struct wait_kind *kind;
    const char *ns;
    const json_t *names; /* array of strings, or NULL: list */
    const char *selector;
    int allow_none;
    const char *condition; /* NULL: the kind's own readiness */
    const char *condition_status;
};

static int note(struct wait_round *r, const struct wait_call *c, const char *name, int ready,
                const char *why, int fatal)
{
    char ref[512];

    snprintf(ref, sizeof(ref), "%s/%s/%s", c->kind->kind, c->ns, name);
    if (ready)
        return json_array_append_new(r->ready, json_string(ref)) == 0 ? 0 : AICP_ENOMEM;
    if (json_array_append_new(r->not_ready,
                              json_pack("{s:s, s:s}", "object", ref, "reason", why)) != 0)
        return AICP_ENOMEM;
    if (fatal && r->fatal == NULL) {
        struct aicp_buf b = AICP_BUF_INIT;
        if (aicp_buf_printf(&b, "%s %s/%s: %s", c->kind->lower, c->ns, name, why) != 0)
            return AICP_ENOMEM;
        r->fatal = aicp_buf_steal(&b);
    }
    return 0;
}

static int judge(struct wait_round *r, const struct wait_call *c, const json_t *obj)
{
    const char *name = json_string_value(aicp_kube_field(obj, "metadata.name"));
    struct aicp_buf why = AICP_BUF_INIT;
    int fatal = 0, ready, rc;

    if (c->condition != NULL) {
        ready = condition_is(obj, c->condition, c->condition_status);
        if (!ready)
            condition_reason(&why, obj, c->condition);
    } else {
        ready = c->kind->judge(obj, &why, &fatal);
    }
    rc = note(r, c, name ? name : "?", ready, why.data ? why.data : "", fatal);
    aicp_buf_free(&why);
    return rc;
}

/* Terminated pods in a listing are a Job's finished pods or evicted ones
 * whose replacement is counted on its own; they are not waited for. */
static int skipped_in_listing(const struct wait_call *c, const json_t *obj)
{
    const char *phase = json_string_value(aicp_kube_field(obj, "status.phase"));

    return strcmp(c->kind->kind, "Pod") == 0 && c->condition == NULL && phase != NULL &&
           (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0);
}

/* One read of every object the call waits for. */
static int read_round(struct wait_round *r, const struct wait_call *c, struct aicp_err *err)
{
    json_t *items = NULL;
    size_t i, n = 0;
    json_t *v;
    int rc = 0;

    r->ready = json_array();
    r->not_ready = json_array();
    if (r->ready == NULL || r->not_ready == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (c->names != NULL) {
        json_array_foreach(c->names, i, v)
        {
            const char *name = json_string_value(v);
            struct aicp_kube_ref ref = {.api_version = c->kind->api_version,
                                        .kind = c->kind->kind,
                                        .namespace = c->ns,
                                        .name = name};
            json_t *obj = NULL;
            if ((rc = aicp_kube_get(c->k, &ref, &obj, err)) != 0)
                goto out;
            rc = obj != NULL ? judge(r, c, obj) : note(r, c, name, 0, "not found", 0);
            json_decref(obj);
            if (rc != 0) {
                rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
                goto out;
            }
        }
        goto out;
    }
    if ((rc = aicp_kube_list(c->k, c->kind->api_version, c->kind->kind, c->ns, c->selector, &items,
                             err)) != 0)
        goto out;
    json_array_foreach(items, i, v)
    {
        if (skipped_in_listing(c, v))
            continue;
        n++;
        if (judge(r, c, v) != 0) {
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
    }
    if (n == 0 && !c->allow_none) {
        char what[512];
        if (c->selector != NULL)
            snprintf(what, sizeof(what), "no %s in namespace %s matches %s", c->kind->kind, c->ns,
                     c->selector);
        else
            snprintf(what, sizeof(what), "no %s in namespace %s", c->kind->kind, c->ns);
        if (json_array_append_new(r->not_ready,
                                  json_pack("{s:s, s:s}", "object", "", "reason", what)) != 0)
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
out:
    json_decref(items);
    return rc;
}

/* "deployment airflow/web: 0/1 available; deployment airflow/x: not
 * found", at most WAIT_MAX_LISTED of them. */
static void describe(struct aicp_buf *b, const struct wait_call *c, const json_t *not_ready)
{
    size_t i;
    json_t *e;

    json_array_foreach(not_ready, i, e)
    {
        const char *obj = json_string_value(json_object_get(e, "object"));
        const char *why = json_string_value(json_object_get(e, "reason"));
        if (i == WAIT_MAX_LISTED) {
            aicp_buf_printf(b, "; and %zu more", json_array_size(not_ready) - i);
            break;
        }
        if (i > 0)
            aicp_buf_puts(b, "; ");
        if (obj != NULL && *obj) {
            /* "Deployment/ns/name" -> "deployment ns/name" */
            const char *rest = strchr(obj, '/');
            aicp_buf_printf(b, "%s %s: %s", c->kind->lower, rest ? rest + 1 : obj, why);
        } else {
            aicp_buf_puts(b, why);
        }
    }
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

/* Warnings of the URL's client (validate_certs: false) go into the
 * result, where the executor shows them, not onto stderr mid-output. */
static void warn_to_result(void *ud, const char *msg)
{
    json_t *result = ud;
    json_t *w = json_object_get(result, "warnings");

    if (!json_is_array(w)) {
        w = json_array();
        if (w == NULL || json_object_set_new(result, "warnings", w) != 0)
            return;
    }
    json_array_append_new(w, json_string(msg));
}

static int status_wanted(const json_t *codes, long status)
{
    size_t i;
    json_t *v;

    json_array_foreach(codes, i, v)
    {
        long want = -1;
        if (json_is_integer(v))
            want = (long)json_integer_value(v);
        else if (json_is_string(v))
            want = strtol(json_string_value(v), NULL, 10);
        if (want == status)
            return 1;
    }
    return 0;
}

/* What is left of the time, for one attempt: at least 1 s, at most max. */
static long clamp_ms(long left_ms, long max)
{
    return left_ms < 1000 ? 1000 : left_ms > max ? max : left_ms;
}

/* GETs the URL until it answers one of codes, or until the deadline (one
 * attempt when once). Sets url_status in the result (null while nothing
 * answered). A bad URL or an unreadable ca_file fails at once; a refused
 * connection, a 5xx and an untrusted certificate are retried, since an
 * ingress serves all three while a release comes up. */
static int wait_url(struct aicp_ctx *ctx, const struct aicp_args *args, double deadline,
                    double interval, int once, struct aicp_err *err)
{
    const char *url = aicp_args_str(args, "url");
    const json_t *codes = aicp_args_get(args, "status_code");
    struct aicp_http_hooks hooks = {.warn = warn_to_result, .warn_ud = ctx->result};
    struct aicp_http *h = NULL;
    struct aicp_err last = {0};
    int rc;

    if ((rc = aicp_http_new(&h, &hooks, err)) != 0)
        goto out;
    json_object_set_new(ctx->result, "url_status", json_null());
    for (;;) {
        double left = deadline - aicp_now();
        long ms = left > 0 ? (long)(left * 1000.0) : 0;
        struct aicp_http_opts o = {
            .insecure = !aicp_args_bool(args, "validate_certs", 1),
            .ca_file = aicp_args_str(args, "ca_file"),
            .max_attempts = 1, /* this loop is the retry, on its own interval */
            .timeout_ms = clamp_ms(ms, WAIT_URL_ATTEMPT_MS),
            .connect_timeout_ms = clamp_ms(ms, WAIT_URL_CONNECT_MS),
            .max_body = 1 << 20,
        };
        struct aicp_http_req req = {.method = "GET", .url = url};
        struct aicp_http_resp resp = {0};
        aicp_err_clear(&last);
        rc = aicp_http_request(h, &o, &req, &resp, &last);
        long status = resp.status;
        aicp_http_resp_free(&resp);
        if (status > 0)
            json_object_set_new(ctx->result, "url_status", json_integer(status));
        if (status > 0 && status_wanted(codes, status)) {
            rc = 0;
            goto out;
        }
        if (rc == AICP_EINVAL || rc == AICP_EIO || rc == AICP_ENOMEM) {
            rc = aicp_err_set(err, rc, "k8s_wait: %s", last.msg);
            goto out;
        }
        if (rc == 0) {
            /* a 1xx-3xx that is not wanted: say so as the client would */
            char *shown = aicp_http_redact_url(url);
            aicp_err_set(&last, AICP_EREMOTE, "GET %s: HTTP %ld", shown ? shown : "<url>", status);
            free(shown);
        }
        if (once) {
            /* check mode reports, it does not judge */
            json_object_set_new(ctx->result, "url_error", json_string(last.msg));
            rc = 0;
            goto out;
        }
        left = deadline - aicp_now();
        if (left <= 0) {
            rc = aicp_err_set(err, AICP_ETIMEOUT,
                              "k8s_wait: timed out after %lld s waiting for the url to answer: %s",
                              aicp_args_int(args, "timeout", 300), last.msg);
            goto out;
        }
        sleep_s(interval < left ? interval : left);
    }
out:
    aicp_http_free(h);
    return rc;
}

static const struct wait_kind *kind_named(const char *name)
{
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(kinds[i].kind, name) == 0)
            return &kinds[i];
    return NULL;
}

/* The executor puts the run's check mode into the task's vars. */
static int in_check_mode(const struct aicp_ctx *ctx)
{
    return json_is_true(json_object_get(ctx->vars, "ansible_check_mode"));
}

/* What the arguments say, before anything is read. names may be filled
 * from name (*owned is then a new array to free). */
static int parse_call(struct wait_call *c, const struct aicp_args *args, json_t **owned,
                      struct aicp_err *err)
{
    const char *name = aicp_args_str(args, "name");
    const json_t *names = aicp_args_get(args, "names");
    const char *url = aicp_args_str(args, "url");
    size_t i;
    json_t *v;

    *owned = NULL;
    c->kind = kind_named(aicp_args_str(args, "kind"));
    c->ns = aicp_args_str(args, "namespace");
    c->selector = aicp_args_str(args, "label_selector");
    c->allow_none = aicp_args_bool(args, "allow_none", 0);
    c->condition = aicp_args_str(args, "condition");
    c->condition_status = aicp_args_str(args, "condition_status");
    if (c->kind == NULL)
        return aicp_err_set(err, AICP_EINVAL, "k8s_wait: unsupported kind %s",
                            aicp_args_str(args, "kind"));
    if (c->ns == NULL || *c->ns == '\0')
        return aicp_err_set(err, AICP_EINVAL, "k8s_wait: namespace is required");
    if (c->condition != NULL && *c->condition == '\0')
        c->condition = NULL;
    if (c->selector != NULL && *c->selector == '\0')
        c->selector = NULL;
    if ((name != NULL) + (names != NULL) + (c->selector != NULL) > 1)
        return aicp_err_set(err, AICP_EINVAL,
                            "k8s_wait: name, names and label_selector are mutually exclusive");
    if (aicp_args_int(args, "timeout", 300) < 0)
        return aicp_err_set(err, AICP_EINVAL, "k8s_wait: timeout must not be negative");
    const json_t *iv = aicp_args_get(args, "interval");
    if (!(json_number_value(iv) > 0))
        return aicp_err_set(err, AICP_EINVAL, "k8s_wait: interval must be more than 0 seconds");
    if (url != NULL && !aicp_startswith(url, "https://") && !aicp_startswith(url, "http://"))
        return aicp_err_set(err, AICP_EINVAL, "k8s_wait: url must start with https:// or http://");
    json_array_foreach(aicp_args_get(args, "status_code"), i, v)
    {
        long s = json_is_integer(v) ? (long)json_integer_value(v) : -1;
        if (json_is_string(v)) {
            char *end;
            s = strtol(json_string_value(v), &end, 10);
            if (*end != '\0')
                s = -1;
        }
        if (s < 100 || s > 599)
            return aicp_err_set(err, AICP_EINVAL,
                                "k8s_wait: status_code[%zu] is not an HTTP status (100-599)", i);
    }
    if (name != NULL) {
        if (*name == '\0')
            return aicp_err_set(err, AICP_EINVAL, "k8s_wait: name is empty");
        if ((*owned = json_pack("[s]", name)) == NULL)
            return aicp_err_set(err, AICP_ENOMEM, "out of memory");
        names = *owned;
    }
    json_array_foreach(names, i, v)
    {
        if (!json_is_string(v) || *json_string_value(v) == '\0')
            return aicp_err_set(err, AICP_EINVAL, "k8s_wait: names[%zu] is not a name", i);
    }
    c->names = names;
    return 0;
}

static int wait_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                      struct aicp_err *err)
{
    struct wait_call c = {0};
    struct wait_round r = {0};
    struct aicp_buf b = AICP_BUF_INIT;
    json_t *owned = NULL;
    double start = aicp_now();
    long long timeout = aicp_args_int(args, "timeout", 300);
    double deadline = start + (double)timeout;
    double interval;
    int check = in_check_mode(ctx);
    int rc;

    if ((rc = parse_call(&c, args, &owned, err)) != 0)
        goto out;
    interval = json_number_value(aicp_args_get(args, "interval"));
    if ((rc = aicp_ku_client(ctx, args, &c.k, err)) != 0)
        goto out;
    for (;;) {
        round_clear(&r);
        if ((rc = read_round(&r, &c, err)) != 0)
            goto out;
        if (json_array_size(r.not_ready) == 0)
            break;
        if (check)
            break;
        if (r.fatal != NULL) {
            rc = aicp_err_set(err, AICP_EFAILED, "k8s_wait: %s", r.fatal);
            goto out;
        }
        double left = deadline - aicp_now();
        if (left <= 0) {
            describe(&b, &c, r.not_ready);
            rc = aicp_err_set(err, AICP_ETIMEOUT, "k8s_wait: timed out after %lld s: %s", timeout,
                              b.data ? b.data : "");
            goto out;
        }
        sleep_s(interval < left ? interval : left);
    }
    if (json_array_size(r.not_ready) > 0) {
        /* check mode: what a real run would wait for */
        describe(&b, &c, r.not_ready);
        struct aicp_buf m = AICP_BUF_INIT;
        aicp_buf_printf(&m, "check mode: not ready yet (a real run waits up to %lld s): %s",
                        timeout, b.data ? b.data : "");
        json_object_set_new(ctx->result, "msg", json_string(m.data ? m.data : ""));
        /* shown without -v, as an `aicp plan` reader needs to see it */
        json_object_set_new(ctx->result, "_aicp_show", json_integer(1));
        aicp_buf_free(&m);
        if (aicp_args_str(args, "url") != NULL)
            json_object_set_new(ctx->result, "url_status", json_null());
    } else if (aicp_args_str(args, "url") != NULL &&
               (rc = wait_url(ctx, args, deadline, interval, check, err)) != 0) {
        goto out;
    }
out:
    /* What was read, also when the wait failed: the gate's report. */
    if (r.ready != NULL) {
        json_object_set(ctx->result, "ready", r.ready);
        if (json_array_size(r.not_ready) > 0)
            json_object_set(ctx->result, "not_ready", r.not_ready);
    }
    /* tenths of a second are as much as a poll can tell */
    double elapsed = (double)(long long)((aicp_now() - start) * 10.0) / 10.0;
    json_object_set_new(ctx->result, "elapsed", json_real(elapsed));
    if (rc == 0) {
        *current = json_pack("{s:O}", "ready", r.ready);
        if (*current == NULL)
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    round_clear(&r);
    aicp_buf_free(&b);
    json_decref(owned);
    return rc;
}

static const struct aicp_module_ops wait_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = wait_check,
    .diff = aicp_module_diff_none,
    .apply = aicp_module_apply_none,
};

const struct aicp_module aicp_mod_k8s_wait = {
    .name = "k8s_wait",
    .summary = "Wait until Kubernetes Deployments, StatefulSets, DaemonSets, Pods or Jobs are "
               "ready, and a URL answers",
    .args = wait_args,
    .flags = AICP_MOD_NEEDS_KUBE,
    .ops = &wait_ops,
};
