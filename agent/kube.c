/* The Kubernetes API client (agent/kube.h): discovery cached per client,
 * server-side apply, get/list/delete, read-modify-write updates, waits,
 * pod logs and drift on declared fields. Every request goes through the
 * shared HTTPS client (agent/http.h), which verifies TLS and retries 429
 * (honouring Retry-After), 502-504 and connection errors; this file adds
 * what is specific to the API: Status messages in errors, the 409
 * re-read-and-retry loop, a bounded retry of 500, and a discovery cache so
 * that a run costs one round of discovery requests, not one per object.
 * Loading the kubeconfig, making and freeing clients and the pool of them
 * are in kube_config.c. Credentials from the kubeconfig live only in the
 * client's memory and are wiped when it is freed; no message ever carries
 * them.
 */
#include "config.h"

#include "kube.h"
#include "kube_int.h"

#include "err.h"
#include "http.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FIELD_MANAGER "aicp"
#define CONFLICT_ATTEMPTS 5     /* writes that met a (non-SSA) 409 */
#define SERVER_ERROR_ATTEMPTS 3 /* a plain 500, on top of http.c's 502-504 retries */
#define WAIT_DEFAULT_S 300.0
#define LIST_PAGE 500

/* ---- small helpers ---------------------------------------------------- */

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

/* Percent-encodes everything but RFC 3986's unreserved characters, so that
 * a name or a label selector can never add a path segment or a parameter. */
static int put_escaped(struct aicp_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char enc[3];

    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            if (aicp_buf_append(b, s, 1) != 0)
                return AICP_ENOMEM;
            continue;
        }
        enc[0] = '%';
        enc[1] = hex[c >> 4];
        enc[2] = hex[c & 15];
        if (aicp_buf_append(b, enc, 3) != 0)
            return AICP_ENOMEM;
    }
    return 0;
}

/* A DNS-1123 label: what every namespace name is. */
int aicp_kube_dns_label(const char *s)
{
    size_t i, n = strlen(s);

    if (n == 0 || n > 63)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i > 0 && i < n - 1)))
            return 0;
    }
    return 1;
}

/* An object name must at least be one path segment. The server checks the
 * kind's own rules (DNS-1123 subdomain for most) and answers 422. */
static int path_name(const char *s)
{
    size_t n = strlen(s);

    return n > 0 && n <= 253 && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 &&
           strchr(s, '/') == NULL && strchr(s, '%') == NULL;
}

/* "Kind/ns/name" or "Kind/name" into buf. */
static void obj_label(char *buf, size_t cap, const char *kind, const char *ns, const char *name)
{
    if (ns != NULL)
        snprintf(buf, cap, "%s/%s/%s", kind, ns, name != NULL ? name : "");
    else
        snprintf(buf, cap, "%s/%s", kind, name != NULL ? name : "");
}

/* ---- requests ----------------------------------------------------------- */

/* The HTTPS client words an untrusted certificate for modules that take
 * ca_file and validate_certs; here the trust comes from the kubeconfig,
 * so say what to change there. */
static void tls_hint(const struct aicp_kube *k, struct aicp_err *err)
{
    char msg[sizeof err->msg];
    char *cut;

    if (err == NULL || (cut = strstr(err->msg, "; give the CA")) == NULL)
        return;
    *cut = '\0';
    snprintf(msg, sizeof msg, "%s", err->msg);
    aicp_err_set(err, err->code,
                 "%s; set certificate-authority (or certificate-authority-data) of the cluster of "
                 "context %s in %s to the CA that signed it, or insecure-skip-tls-verify: true "
                 "there to skip verification (insecure)",
                 msg, k->context != NULL ? k->context : "?", k->path != NULL ? k->path : "?");
}

/* One API request. A plain 500 is retried a few times for requests that
 * are safe to repeat (the HTTPS client retries only 502-504): the API
 * server answers 500 for transient etcd trouble. */
static int call(struct aicp_kube *k, const char *method, const char *url, const json_t *body,
                const char *content_type, int retry_unsafe, int parse_json,
                struct aicp_http_resp *resp, struct aicp_err *err)
{
    char ct[128];
    const char *headers[2] = {NULL, NULL};
    struct aicp_http_req req = {.method = method,
                                .url = url,
                                .headers = headers,
                                .json = body,
                                .parse_json = parse_json,
                                .retry_unsafe = retry_unsafe};
    double backoff = 0.5;
    int tries = 0, sent = 0, rc;

    if (content_type != NULL) {
        snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
        headers[0] = ct;
    }
    for (;;) {
        aicp_http_resp_free(resp);
        rc = aicp_http_request(k->http, &k->opts, &req, resp, err);
        tries++;
        sent += resp->attempts > 0 ? resp->attempts : 1;
        resp->attempts = sent; /* all of them, for "gave up after N attempts" */
        if (rc == AICP_EHOSTKEY)
            tls_hint(k, err);
        if (rc == 0 || resp->status != 500 || tries >= SERVER_ERROR_ATTEMPTS ||
            !(retry_unsafe || aicp_http_method_idempotent(method)))
            return rc;
        sleep_s(backoff);
        backoff *= 2;
    }
}

/* Says how often a request was sent before giving up. */
static void err_suffix(struct aicp_err *err, int attempts)
{
    char msg[sizeof err->msg];

    if (err == NULL)
        return;
    snprintf(msg, sizeof msg, "%s", err->msg);
    aicp_err_set(err, err->code, "%s (gave up after %d attempts)", msg, attempts);
}

/* Rewrites a failed request's error as "<label>: <verb>: <message>", with
 * the API's Status message when the body has one (it says what is wrong
 * far better than an HTTP status), else the HTTPS client's message. */
static int api_error(int rc, const struct aicp_http_resp *resp, const char *label, const char *verb,
                     struct aicp_err *err)
{
    const char *msg =
        resp != NULL && json_is_object(resp->json) ? str_of(resp->json, "message") : NULL;
    int retried = resp != NULL && resp->status >= 500 && resp->attempts > 1;

    if (msg != NULL && msg[0] != '\0') {
        if (retried)
            return aicp_err_set(err, rc, "%s: %s: %s (gave up after %d attempts)", label, verb, msg,
                                resp->attempts);
        return aicp_err_set(err, rc, "%s: %s: %s", label, verb, msg);
    }
    if (err != NULL)
        aicp_err_prefix(err, "%s: %s", label, verb);
    if (retried && err != NULL && strstr(err->msg, "attempts") == NULL)
        err_suffix(err, resp->attempts);
    return rc;
}

/* 1 when a 409 is server-side apply's field conflict (not retryable: the
 * other manager's value would win again), as opposed to a stale write. */
static int ssa_conflict(const struct aicp_http_resp *resp)
{
    const json_t *causes;
    const char *reason;

    if (resp->status != 409 || !json_is_object(resp->json))
        return 0;
    reason = str_of(resp->json, "reason");
    causes = json_object_get(json_object_get(resp->json, "details"), "causes");
    /* A stale write (resourceVersion) carries no causes. */
    return reason != NULL && strcmp(reason, "Conflict") == 0 && json_array_size(causes) > 0;
}

/* ---- discovery ---------------------------------------------------------- */

static int fetch_json(struct aicp_kube *k, const char *path, json_t **out, struct aicp_err *err)
{
    struct aicp_http_resp resp = {0};
    struct aicp_buf url = AICP_BUF_INIT;
    int rc;

    *out = NULL;
    if (aicp_buf_printf(&url, "%s%s", k->server, path) != 0) {
        aicp_buf_free(&url);
        return aicp_err_set(err, AICP_ENOMEM, "discovery: out of memory");
    }
    rc = call(k, "GET", url.data, NULL, NULL, 0, 1, &resp, err);
    if (rc != 0) {
        rc = api_error(rc, &resp, "discovery", path, err);
    } else if (!json_is_object(resp.json)) {
        rc = aicp_err_set(err, AICP_EREMOTE, "discovery: %s%s: expected a JSON object", k->server,
                          path);
    } else {
        *out = json_incref(resp.json);
    }
    aicp_http_resp_free(&resp);
    aicp_buf_free(&url);
    return rc;
}

/* Reads /api and /apis: which group versions exist. Resource lists stay
 * unread until a kind in that group version is asked about. Called with
 * the lock held. */
static int discover_index(struct aicp_kube *k, struct aicp_err *err)
{
    json_t *core = NULL, *apis = NULL, *g, *v;
    size_t i, j;
    int rc;

    if ((rc = fetch_json(k, "/api", &core, err)) != 0 ||
        (rc = fetch_json(k, "/apis", &apis, err)) != 0)
        goto out;
    json_array_foreach(json_object_get(core, "versions"), i, v)
    {
        if (json_is_string(v) && json_object_get(k->gvs, json_string_value(v)) == NULL)
            json_object_set_new(k->gvs, json_string_value(v), json_null());
    }
    json_array_foreach(json_object_get(apis, "groups"), i, g)
    {
        json_array_foreach(json_object_get(g, "versions"), j, v)
        {
            const char *gv = str_of(v, "groupVersion");
            if (gv != NULL && json_object_get(k->gvs, gv) == NULL)
                json_object_set_new(k->gvs, gv, json_null());
        }
    }
    k->have_index = 1;
out:
    json_decref(core);
    json_decref(apis);
    return rc;
}

static int fetch_resources(struct aicp_kube *k, const char *gv, json_t **list, struct aicp_err *err)
{
    char path[256];

    if (strchr(gv, '/') == NULL)
        snprintf(path, sizeof path, "/api/%s", gv);
    else
        snprintf(path, sizeof path, "/apis/%s", gv);
    return fetch_json(k, path, list, err);
}

/* Fills out from a group version's APIResourceList; 1 when kind is in it. */
static int find_kind(const json_t *list, const char *gv, const char *kind,
                     struct aicp_kube_resource *out)
{
    const json_t *r, *s;
    const char *slash = strchr(gv, '/');
    size_t i, j;

    json_array_foreach(json_object_get(list, "resources"), i, r)
    {
        const char *name = str_of(r, "name"), *rk = str_of(r, "kind");
        if (name == NULL || rk == NULL || strchr(name, '/') != NULL || strcmp(rk, kind) != 0)
            continue;
        memset(out, 0, sizeof *out);
        if (slash != NULL) {
            snprintf(out->group, sizeof out->group, "%.*s", (int)(slash - gv), gv);
            snprintf(out->version, sizeof out->version, "%s", slash + 1);
        } else {
            snprintf(out->version, sizeof out->version, "%s", gv);
        }
        snprintf(out->kind, sizeof out->kind, "%s", kind);
        snprintf(out->plural, sizeof out->plural, "%s", name);
        out->namespaced = json_is_true(json_object_get(r, "namespaced"));
        json_array_foreach(json_object_get(list, "resources"), j, s)
        {
            const char *sn = str_of(s, "name");
            size_t n = strlen(name);
            if (sn != NULL && strncmp(sn, name, n) == 0 && strcmp(sn + n, "/status") == 0)
                out->has_status = 1;
        }
        return 1;
    }
    return 0;
}

int aicp_kube_resolve(struct aicp_kube *k, const char *api_version, const char *kind,
                      struct aicp_kube_resource *out, struct aicp_err *err)
{
    json_t *list;
    int rc = 0, refreshed = 0;

    memset(out, 0, sizeof *out);
    if (api_version == NULL || kind == NULL || api_version[0] == '\0' || kind[0] == '\0')
        return aicp_err_set(err, AICP_EINVAL, "resolve: apiVersion and kind are required");
    pthread_mutex_lock(&k->lock);
    if (k->discovery_rc != 0) {
        rc = k->discovery_rc;
        if (err != NULL)
            *err = k->discovery_err;
        goto out;
    }
    if (!k->have_index && (rc = discover_index(k, err)) != 0) {
        k->discovery_rc = rc;
        if (err != NULL)
            k->discovery_err = *err;
        else
            aicp_err_set(&k->discovery_err, rc, "discovery failed");
        goto out;
    }
    for (;;) {
        list = json_object_get(k->gvs, api_version);
        if (list == NULL && !refreshed) {
            /* Perhaps a CRD created in this run: read the index again, once. */
            refreshed = 1;
            if ((rc = discover_index(k, err)) != 0)
                goto out;
            continue;
        }
        if (list == NULL) {
            rc = aicp_err_set(err, AICP_ENOTFOUND,
                              "the server has no API group version %s (kind %s): is the CRD "
                              "installed?",
                              api_version, kind);
            goto out;
        }
        if (json_is_null(list)) {
            json_t *fresh = NULL;
            if ((rc = fetch_resources(k, api_version, &fresh, err)) != 0)
                goto out;
            json_object_set_new(k->gvs, api_version, fresh);
            list = fresh;
            refreshed = 1; /* just read: no point in reading it again */
        }
        if (find_kind(list, api_version, kind, out))
            break;
        if (refreshed) {
            rc = aicp_err_set(err, AICP_ENOTFOUND,
                              "the server has no kind %s in %s: is the CRD installed?", kind,
                              api_version);
            goto out;
        }
        /* A cached list that lacks the kind: read it again once. */
        refreshed = 1;
        json_object_set_new(k->gvs, api_version, json_null());
    }
out:
    pthread_mutex_unlock(&k->lock);
    return rc;
}

/* ---- objects ------------------------------------------------------------ */

int aicp_kube_ref_of(struct aicp_kube_ref *ref, const json_t *manifest, struct aicp_err *err)
{
    const json_t *md = json_object_get(manifest, "metadata");

    memset(ref, 0, sizeof *ref);
    if (!json_is_object(manifest))
        return aicp_err_set(err, AICP_EINVAL, "a Kubernetes manifest must be a mapping");
    ref->api_version = str_of(manifest, "apiVersion");
    ref->kind = str_of(manifest, "kind");
    ref->name = str_of(md, "name");
    ref->namespace = str_of(md, "namespace");
    if (ref->api_version == NULL || ref->api_version[0] == '\0')
        return aicp_err_set(err, AICP_EINVAL, "%s/%s: the manifest has no apiVersion",
                            ref->kind ? ref->kind : "?", ref->name ? ref->name : "?");
    if (ref->kind == NULL || ref->kind[0] == '\0')
        return aicp_err_set(err, AICP_EINVAL, "%s: the manifest has no kind",
                            ref->name ? ref->name : "?");
    if (ref->name == NULL || ref->name[0] == '\0')
        return aicp_err_set(err, AICP_EINVAL, "%s: the manifest has no metadata.name", ref->kind);
    return 0;
}

/* Everything a request about one object needs. */
struct target {
    struct aicp_kube_resource res;
    const char *ns; /* NULL for cluster-scoped kinds */
    const char *name;
    char label[512]; /* "Kind/ns/name" */
};

static int target_of(struct aicp_kube *k, const struct aicp_kube_ref *ref, struct target *t,
                     struct aicp_err *err)
{
    int rc;

    memset(t, 0, sizeof *t);
    if (ref == NULL || ref->api_version == NULL || ref->kind == NULL || ref->name == NULL)
        return aicp_err_set(err, AICP_EINVAL, "an object needs apiVersion, kind and name");
    obj_label(t->label, sizeof t->label, ref->kind, ref->namespace, ref->name);
    if ((rc = aicp_kube_resolve(k, ref->api_version, ref->kind, &t->res, err)) != 0) {
        aicp_err_prefix(err, "%s", t->label);
        return rc;
    }
    t->name = ref->name;
    t->ns = t->res.namespaced
                ? (ref->namespace != NULL && ref->namespace[0] != '\0' ? ref->namespace : k->ns)
                : NULL;
    obj_label(t->label, sizeof t->label, ref->kind, t->ns, ref->name);
    if (t->ns != NULL && !aicp_kube_dns_label(t->ns))
        return aicp_err_set(err, AICP_EINVAL,
                            "%s: \"%s\" is not a valid namespace name (lower case letters, "
                            "digits and '-', at most 63)",
                            t->label, t->ns);
    if (!path_name(t->name))
        return aicp_err_set(err, AICP_EINVAL, "%s: \"%s\" is not a valid object name", t->label,
                            t->name);
    return 0;
}

/* SERVER/api/v1[/namespaces/NS]/PLURAL[/NAME][/SUB] */
static int collection_url(struct aicp_kube *k, const struct aicp_kube_resource *r, const char *ns,
                          struct aicp_buf *b)
{
    int rc;

    if (r->group[0] == '\0')
        rc = aicp_buf_printf(b, "%s/api/%s", k->server, r->version);
    else
        rc = aicp_buf_printf(b, "%s/apis/%s/%s", k->server, r->group, r->version);
    if (rc == 0 && ns != NULL)
        rc = aicp_buf_puts(b, "/namespaces/") || put_escaped(b, ns);
    if (rc == 0)
        rc = aicp_buf_printf(b, "/%s", r->plural);
    return rc != 0 ? AICP_ENOMEM : 0;
}

static int object_url(struct aicp_kube *k, const struct target *t, const char *sub,
                      struct aicp_buf *b)
{
    if (collection_url(k, &t->res, t->ns, b) != 0 || aicp_buf_puts(b, "/") != 0 ||
        put_escaped(b, t->name) != 0 || (sub != NULL && aicp_buf_printf(b, "/%s", sub) != 0))
        return AICP_ENOMEM;
    return 0;
}

/* GET of one object: *obj NULL and 0 when it does not exist. */
static int get_target(struct aicp_kube *k, const struct target *t, json_t **obj,
                      struct aicp_err *err)
{
    struct aicp_http_resp resp = {0};
    struct aicp_buf url = AICP_BUF_INIT;
    int rc;

    *obj = NULL;
    if (object_url(k, t, NULL, &url) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "%s: out of memory", t->label);
        goto out;
    }
    rc = call(k, "GET", url.data, NULL, NULL, 0, 1, &resp, err);
    if (rc == AICP_ENOTFOUND) {
        rc = 0;
    } else if (rc != 0) {
        rc = api_error(rc, &resp, t->label, "get", err);
    } else if (!json_is_object(resp.json)) {
        rc = aicp_err_set(err, AICP_EREMOTE, "%s: get: the answer is not an object", t->label);
    } else {
        *obj = json_incref(resp.json);
    }
out:
    aicp_http_resp_free(&resp);
    aicp_buf_free(&url);
    return rc;
}

int aicp_kube_get(struct aicp_kube *k, const struct aicp_kube_ref *ref, json_t **obj,
                  struct aicp_err *err)
{
    struct target t;
    int rc;

    *obj = NULL;
    if ((rc = target_of(k, ref, &t, err)) != 0)
        return rc;
    return get_target(k, &t, obj, err);
}

int aicp_kube_list(struct aicp_kube *k, const char *api_version, const char *kind,
                   const char *namespace, const char *label_selector, json_t **items,
                   struct aicp_err *err)
{
    struct aicp_kube_resource res;
    struct aicp_http_resp resp = {0};
    struct aicp_buf url = AICP_BUF_INIT;
    char label[256];
    char *cont = NULL;
    json_t *all = json_array(), *it;
    const char *ns;
    size_t i;
    int rc;

    *items = NULL;
    if (all == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "list: out of memory");
    if ((rc = aicp_kube_resolve(k, api_version, kind, &res, err)) != 0)
        goto out;
    ns = res.namespaced && namespace != NULL && namespace[0] != '\0' ? namespace : NULL;
    snprintf(label, sizeof label, "%s%s%s", kind, ns != NULL ? " in namespace " : "",
             ns != NULL ? ns : "");
    if (ns != NULL && !aicp_kube_dns_label(ns)) {
        rc = aicp_err_set(err, AICP_EINVAL, "list %s: not a valid namespace name", label);
        goto out;
    }
    do {
        aicp_buf_free(&url);
        if (collection_url(k, &res, ns, &url) != 0 ||
            aicp_buf_printf(&url, "?limit=%d", LIST_PAGE) != 0 ||
            (label_selector != NULL && label_selector[0] != '\0' &&
             (aicp_buf_puts(&url, "&labelSelector=") != 0 ||
              put_escaped(&url, label_selector) != 0)) ||
            (cont != NULL &&
             (aicp_buf_puts(&url, "&continue=") != 0 || put_escaped(&url, cont) != 0))) {
            rc = aicp_err_set(err, AICP_ENOMEM, "list %s: out of memory", label);
            goto out;
        }
        rc = call(k, "GET", url.data, NULL, NULL, 0, 1, &resp, err);
        if (rc != 0) {
            rc = api_error(rc, &resp, label, "list", err);
            goto out;
        }
        json_array_foreach(json_object_get(resp.json, "items"), i, it)
        {
            /* Items of a list carry no kind or apiVersion: add them, so
             * that each one is a complete object for the caller. */
            if (json_object_get(it, "kind") == NULL)
                json_object_set_new(it, "kind", json_string(kind));
            if (json_object_get(it, "apiVersion") == NULL)
                json_object_set_new(it, "apiVersion", json_string(api_version));
            json_array_append(all, it);
        }
        free(cont);
        cont = aicp_strdup(str_of(json_object_get(resp.json, "metadata"), "continue"));
        if (cont != NULL && cont[0] == '\0') {
            free(cont);
            cont = NULL;
        }
    } while (cont != NULL);
    *items = all;
    all = NULL;
out:
    free(cont);
    json_decref(all);
    aicp_http_resp_free(&resp);
    aicp_buf_free(&url);
    return rc;
}

/* ---- writes ------------------------------------------------------------- */

/* Sends one write to t's URL with fieldManager (and force/dryRun from
 * flags). resp is filled even on error. */
static int send_write(struct aicp_kube *k, const struct target *t, const char *method,
                      const json_t *body, const char *content_type, int force, unsigned flags,
                      struct aicp_http_resp *resp, struct aicp_err *err)
{
    struct aicp_buf url = AICP_BUF_INIT;
    int rc;

    if (object_url(k, t, NULL, &url) != 0 ||
        aicp_buf_puts(&url, "?fieldManager=" FIELD_MANAGER) != 0 ||
        (force && aicp_buf_puts(&url, "&force=true") != 0) ||
        ((flags & AICP_KUBE_DRY_RUN) && aicp_buf_puts(&url, "&dryRun=All") != 0)) {
        aicp_buf_free(&url);
        return aicp_err_set(err, AICP_ENOMEM, "%s: out of memory", t->label);
    }
    /* Server-side apply and merge patches give the same result however
     * often they are sent, so the HTTPS client may retry them. */
    rc = call(k, method, url.data, body, content_type, 1, 1, resp, err);
    aicp_buf_free(&url);
    return rc;
}

/* After a stale write (409 that is not an SSA field conflict): reads the
 * object again and, when body pins a resourceVersion, moves it to the
 * live one, so that the next attempt is made against current state. */
static int refresh_version(struct aicp_kube *k, const struct target *t, json_t *body,
                           struct aicp_err *err)
{
    json_t *live = NULL, *md = json_object_get(body, "metadata");
    const char *rv;
    int rc;

    if ((rc = get_target(k, t, &live, err)) != 0)
        return rc;
    rv = str_of(json_object_get(live, "metadata"), "resourceVersion");
    if (json_object_get(md, "resourceVersion") != NULL) {
        if (live == NULL || rv == NULL)
            json_object_del(md, "resourceVersion");
        else
            json_object_set_new(md, "resourceVersion", json_string(rv));
    }
    json_decref(live);
    return 0;
}

/* The failure of an apply that met other managers' fields: each field,
 * who owns it, and the two ways to take it over. */
static int conflict_error(const struct target *t, const char *verb, const json_t *conflicts,
                          struct aicp_err *err)
{
    struct aicp_buf b = AICP_BUF_INIT;
    const json_t *c;
    size_t i, n = json_array_size(conflicts);
    int rc;

    json_array_foreach(conflicts, i, c)
    {
        aicp_buf_printf(&b, "%s%s (owned by field manager \"%s\", %s)", i > 0 ? ", " : "",
                        str_of(c, "field"), str_of(c, "manager"), str_of(c, "operation"));
    }
    rc = aicp_err_set(err, AICP_EREMOTE,
                      "%s: %s: conflict: %s another field manager set to other values: %s; aicp "
                      "takes fields over only when told to: --force-conflicts on the command "
                      "line, or force: true on the resource",
                      t->label, verb, n == 1 ? "a field that" : "fields that",
                      b.data != NULL ? b.data : "?");
    aicp_buf_free(&b);
    return rc;
}

/* A write that re-reads and retries after a stale-write 409, at most
 * CONFLICT_ATTEMPTS times in all. body is owned (may be modified). */
static int write_retrying(struct aicp_kube *k, const struct target *t, const char *verb,
                          json_t *body, const char *content_type, int force, unsigned flags,
                          json_t **result, json_t **conflicts, struct aicp_err *err)
{
    struct aicp_http_resp resp = {0};
    json_t *conf = NULL;
    int attempt, rc = 0, forced_own = 0;

    for (attempt = 1; attempt <= CONFLICT_ATTEMPTS; attempt++) {
        rc = send_write(k, t, "PATCH", body, content_type, force, flags, &resp, err);
        if (rc == 0)
            break;
        if (resp.status == 409 && ssa_conflict(&resp)) {
            json_decref(conf);
            conf = aicp_kube_conflicts_of(resp.json);
            /* aicp's own earlier writes (a demotion sent as a merge patch
             * is an Update of "aicp") are not someone else's fields. */
            if (!force && !forced_own && aicp_kube_conflicts_own(conf)) {
                force = forced_own = 1;
                attempt--;
                continue;
            }
            if (conf != NULL) {
                rc = conflict_error(t, verb, conf, err);
            } else {
                const char *msg = str_of(resp.json, "message");
                rc = aicp_err_set(err, AICP_EREMOTE,
                                  "%s: %s: %s (another field manager owns these fields; "
                                  "--force-conflicts or force: true takes them over)",
                                  t->label, verb, msg != NULL ? msg : "conflict");
            }
            if (conflicts != NULL) {
                *conflicts = conf;
                conf = NULL;
            }
            goto out;
        }
        if (resp.status != 409 || attempt == CONFLICT_ATTEMPTS) {
            rc = api_error(rc, &resp, t->label, verb, err);
            if (resp.status == 409)
                err_suffix(err, attempt);
            goto out;
        }
        if ((rc = refresh_version(k, t, body, err)) != 0)
            goto out;
    }
    if (result != NULL)
        *result = json_is_object(resp.json) ? json_incref(resp.json) : NULL;
out:
    json_decref(conf);
    aicp_http_resp_free(&resp);
    return rc;
}

int aicp_kube_apply_report(struct aicp_kube *k, const json_t *manifest, unsigned flags,
                           json_t **result, json_t **conflicts, struct aicp_err *err)
{
    struct aicp_kube_ref ref;
    struct target t;
    json_t *body = NULL, *md;
    int rc;

    if (result != NULL)
        *result = NULL;
    if (conflicts != NULL)
        *conflicts = NULL;
    if ((rc = aicp_kube_ref_of(&ref, manifest, err)) != 0 ||
        (rc = target_of(k, &ref, &t, err)) != 0)
        return rc;
    /* The body's namespace must agree with the URL's: fill it in for
     * namespaced kinds, drop it for cluster-scoped ones. */
    if ((body = json_deep_copy(manifest)) == NULL ||
        !json_is_object(md = json_object_get(body, "metadata"))) {
        json_decref(body);
        return aicp_err_set(err, AICP_ENOMEM, "%s: out of memory", t.label);
    }
    if (t.ns != NULL)
        json_object_set_new(md, "namespace", json_string(t.ns));
    else
        json_object_del(md, "namespace");
    rc = write_retrying(k, &t, "apply", body, "application/apply-patch+yaml",
                        (flags & AICP_KUBE_FORCE) != 0, flags, result, conflicts, err);
    json_decref(body);
    return rc;
}

int aicp_kube_apply(struct aicp_kube *k, const json_t *manifest, unsigned flags, json_t **result,
                    struct aicp_err *err)
{
    return aicp_kube_apply_report(k, manifest, flags, result, NULL, err);
}

int aicp_kube_merge_patch(struct aicp_kube *k, const struct aicp_kube_ref *ref, const json_t *patch,
                          unsigned flags, json_t **result, struct aicp_err *err)
{
    struct target t;
    json_t *body;
    int rc;

    if (result != NULL)
        *result = NULL;
    if ((rc = target_of(k, ref, &t, err)) != 0)
        return rc;
    if (!json_is_object(patch))
        return aicp_err_set(err, AICP_EINVAL, "%s: patch: a merge patch must be a mapping",
                            t.label);
    if ((body = json_deep_copy(patch)) == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "%s: out of memory", t.label);
    rc = write_retrying(k, &t, "patch", body, "application/merge-patch+json", 0, flags, result,
                        NULL, err);
    json_decref(body);
    return rc;
}

int aicp_kube_update(struct aicp_kube *k, const struct aicp_kube_ref *ref,
                     int (*mutate)(json_t *obj, void *ud, struct aicp_err *err), void *ud,
                     unsigned flags, json_t **result, struct aicp_err *err)
{
    struct aicp_http_resp resp = {0};
    struct aicp_buf url = AICP_BUF_INIT;
    struct target t;
    json_t *obj = NULL;
    int attempt, rc;

    if (result != NULL)
        *result = NULL;
    if ((rc = target_of(k, ref, &t, err)) != 0)
        return rc;
    if (object_url(k, &t, NULL, &url) != 0 ||
        aicp_buf_puts(&url, "?fieldManager=" FIELD_MANAGER) != 0 ||
        ((flags & AICP_KUBE_DRY_RUN) && aicp_buf_puts(&url, "&dryRun=All") != 0)) {
        rc = aicp_err_set(err, AICP_ENOMEM, "%s: out of memory", t.label);
        goto out;
    }
    for (attempt = 1; attempt <= CONFLICT_ATTEMPTS; attempt++) {
        json_decref(obj);
        if ((rc = get_target(k, &t, &obj, err)) != 0)
            goto out;
        if (obj == NULL) {
            rc =
                aicp_err_set(err, AICP_ENOTFOUND, "%s: update: the object does not exist", t.label);
            goto out;
        }
        if ((rc = mutate(obj, ud, err)) != 0) {
            aicp_err_prefix(err, "%s: update", t.label);
            goto out;
        }
        /* PUT carries the resourceVersion just read: the server refuses it
         * (409) when someone wrote in between, and the change is made again
         * on the new state, so no one's update is lost. */
        rc = call(k, "PUT", url.data, obj, NULL, 0, 1, &resp, err);
        if (rc == 0 || resp.status != 409)
            break;
    }
    if (rc != 0) {
        rc = api_error(rc, &resp, t.label, "update", err);
        if (resp.status == 409)
            err_suffix(err, CONFLICT_ATTEMPTS);
    } else if (result != NULL) {
        *result = json_is_object(resp.json) ? json_incref(resp.json) : NULL;
    }
out:
    json_decref(obj);
    aicp_http_resp_free(&resp);
    aicp_buf_free(&url);
    return rc;
}


int aicp_kube_evict(struct aicp_kube *k, const char *namespace, const char *pod, unsigned flags,
                    long *status, struct aicp_err *err)
{
    struct aicp_kube_ref ref = {
        .api_version = "v1", .kind = "Pod", .namespace = namespace, .name = pod};
    struct aicp_http_resp resp = {0};
    struct aicp_buf url = AICP_BUF_INIT;
    struct target t;
    json_t *body = NULL;
    int rc;

    if (status != NULL)
        *status = 0;
    if ((rc = target_of(k, &ref, &t, err)) != 0)
        return rc;
    body = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "policy/v1", "kind", "Eviction",
                     "metadata", "name", t.name, "namespace", t.ns != NULL ? t.ns : "");
    if (body == NULL || object_url(k, &t, "eviction", &url) != 0 ||
        ((flags & AICP_KUBE_DRY_RUN) && aicp_buf_puts(&url, "?dryRun=All") != 0)) {
        rc = aicp_err_set(err, AICP_ENOMEM, "%s: out of memory", t.label);
        goto out;
    }
    /* Not retry_unsafe: a 429 here is a disruption budget, not a busy
     * server, and the caller decides how long to keep asking. */
    rc = call(k, "POST", url.data, body, "application/json", 0, 1, &resp, err);
    if (status != NULL)
        *status = resp.status;
    if (rc != 0)
        rc = api_error(rc, &resp, t.label, "evict", err);
out:
    json_decref(body);
    aicp_http_resp_free(&resp);
    aicp_buf_free(&url);
    return rc;
}

int aicp_kube_delete(struct aicp_kube *k, const struct aicp_kube_ref *ref, const char *propagation,
                     unsigned flags, double wait_s, int *existed, struct aicp_err *err)
{
    struct aicp_http_resp resp = {0};
    struct aicp_buf url = AICP_BUF_INIT;
    struct target t;
    json_t *opts = NULL, *obj = NULL;
    double deadline, interval = 0.2;
    int rc;

    if (existed != NULL)
        *existed = 0;
    if ((rc = target_of(k, ref, &t, err)) != 0)
        return rc;
    if (propagation == NULL)
        propagation = "Background";
    if (strcmp(propagation, "Background") != 0 && strcmp(propagation, "Foreground") != 0 &&
        strcmp(propagation, "Orphan") != 0)
        return aicp_err_set(err, AICP_EINVAL,
                            "%s: delete: propagation policy must be Background, Foreground or "
                            "Orphan, not %s",
                            t.label, propagation);
    opts = json_pack("{s:s, s:s, s:s}", "kind", "DeleteOptions", "apiVersion", "v1",
                     "propagationPolicy", propagation);
    if (opts != NULL && (flags & AICP_KUBE_DRY_RUN))
        json_object_set_new(opts, "dryRun", json_pack("[s]", "All"));
    if (opts == NULL || object_url(k, &t, NULL, &url) != 0 ||
        ((flags & AICP_KUBE_DRY_RUN) && aicp_buf_puts(&url, "?dryRun=All") != 0)) {
        rc = aicp_err_set(err, AICP_ENOMEM, "%s: out of memory", t.label);
        goto out;
    }
    rc = call(k, "DELETE", url.data, opts, NULL, 0, 1, &resp, err);
    if (rc == AICP_ENOTFOUND) {
        rc = 0;
        goto out;
    }
    if (rc != 0) {
        rc = api_error(rc, &resp, t.label, "delete", err);
        goto out;
    }
    if (existed != NULL)
        *existed = 1;
    if (!(wait_s > 0) || (flags & AICP_KUBE_DRY_RUN))
        goto out;
    deadline = aicp_now() + wait_s;
    for (;;) {
        json_decref(obj);
        if ((rc = get_target(k, &t, &obj, err)) != 0 || obj == NULL)
            goto out;
        if (aicp_now() >= deadline) {
            const json_t *md = json_object_get(obj, "metadata");
            char *fin = json_dumps(json_object_get(md, "finalizers"), JSON_COMPACT);
            rc =
                aicp_err_set(err, AICP_ETIMEOUT, "%s: still present %g s after delete%s%s", t.label,
                             wait_s, fin != NULL ? "; finalizers: " : "", fin != NULL ? fin : "");
            free(fin);
            goto out;
        }
        sleep_s(interval);
        interval = interval * 2 < 1.0 ? interval * 2 : 1.0;
    }
out:
    json_decref(obj);
    json_decref(opts);
    aicp_http_resp_free(&resp);
    aicp_buf_free(&url);
    return rc;
}

/* ---- fields and waits --------------------------------------------------- */

/* A scalar as text, for comparing with a wanted value and for messages;
 * NULL for containers and absent fields. */
static const char *scalar_text(const json_t *v, char *buf, size_t cap)
{
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v))
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, cap, "%g", json_real_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, cap, "%s", json_is_true(v) ? "true" : "false");
    else if (json_is_null(v))
        snprintf(buf, cap, "null");
    else
        return NULL;
    return buf;
}

static const json_t *find_condition(const json_t *obj, const char *type)
{
    const json_t *c;
    size_t i;

    json_array_foreach(json_object_get(json_object_get(obj, "status"), "conditions"), i, c)
    {
        const char *t = str_of(c, "type");
        if (t != NULL && strcmp(t, type) == 0)
            return c;
    }
    return NULL;
}

/* 1 when obj meets w; otherwise describes what it shows in seen. */
static int wait_met(const json_t *obj, const struct aicp_kube_wait *w, char *seen, size_t cap)
{
    const char *want = w->condition_status != NULL ? w->condition_status : "True";
    char num[64];

    if (w->condition != NULL) {
        const json_t *c = find_condition(obj, w->condition);
        const char *st = str_of(c, "status");
        if (c == NULL) {
            snprintf(seen, cap, "no condition %s", w->condition);
            return 0;
        }
        if (st == NULL || strcmp(st, want) != 0) {
            snprintf(seen, cap, "condition %s is %s%s%s", w->condition, st ? st : "(no status)",
                     str_of(c, "message") ? ": " : "",
                     str_of(c, "message") ? str_of(c, "message") : "");
            return 0;
        }
    }
    if (w->field != NULL && w->value != NULL) {
        const char *have = scalar_text(aicp_kube_field(obj, w->field), num, sizeof num);
        if (have == NULL || strcmp(have, w->value) != 0) {
            snprintf(seen, cap, "%s is %s", w->field, have != NULL ? have : "absent");
            return 0;
        }
    }
    return 1;
}

/* 1 when obj shows that w will never be met; says why in why. */
static int wait_failed(const json_t *obj, const struct aicp_kube_wait *w, char *why, size_t cap)
{
    char num[64];

    if (w->fail_condition != NULL) {
        const json_t *c = find_condition(obj, w->fail_condition);
        const char *st = str_of(c, "status");
        if (st != NULL && strcmp(st, "True") == 0) {
            const char *reason = str_of(c, "reason"), *msg = str_of(c, "message");
            snprintf(why, cap, "condition %s is True%s%s%s%s", w->fail_condition,
                     reason ? ": " : "", reason ? reason : "", msg ? ": " : "", msg ? msg : "");
            return 1;
        }
    }
    if (w->fail_field != NULL && w->fail_value != NULL) {
        const char *have = scalar_text(aicp_kube_field(obj, w->fail_field), num, sizeof num);
        if (have != NULL && strcmp(have, w->fail_value) == 0) {
            const char *msg = str_of(json_object_get(obj, "status"), "message");
            snprintf(why, cap, "%s is %s%s%s", w->fail_field, have, msg ? ": " : "",
                     msg ? msg : "");
            return 1;
        }
    }
    return 0;
}

int aicp_kube_wait(struct aicp_kube *k, const struct aicp_kube_ref *ref,
                   const struct aicp_kube_wait *w, json_t **obj, struct aicp_err *err)
{
    struct target t;
    json_t *cur = NULL;
    double timeout, interval, max_interval, start, left;
    char seen[512] = "nothing read yet", what[256];
    int rc;

    if (obj != NULL)
        *obj = NULL;
    if ((rc = target_of(k, ref, &t, err)) != 0)
        return rc;
    if (w == NULL || (w->condition == NULL && (w->field == NULL || w->value == NULL)))
        return aicp_err_set(err, AICP_EINVAL, "%s: wait: nothing to wait for", t.label);
    timeout = w->timeout_s > 0 ? w->timeout_s : WAIT_DEFAULT_S;
    interval = w->interval_s > 0 ? w->interval_s : 1.0;
    max_interval = interval * 5;
    if (w->condition != NULL)
        snprintf(what, sizeof what, "condition %s=%s%s%s%s", w->condition,
                 w->condition_status ? w->condition_status : "True",
                 w->field != NULL ? " and " : "", w->field != NULL ? w->field : "",
                 w->field != NULL ? "=" : "");
    else
        snprintf(what, sizeof what, "%s=", w->field);
    if (w->field != NULL && w->value != NULL)
        snprintf(what + strlen(what), sizeof what - strlen(what), "%s", w->value);
    start = aicp_now();
    for (;;) {
        char why[512];
        json_decref(cur);
        if ((rc = get_target(k, &t, &cur, err)) != 0)
            goto out;
        if (cur == NULL) {
            rc = aicp_err_set(err, AICP_ENOTFOUND, "%s: gone while waiting for %s (last seen: %s)",
                              t.label, what, seen);
            goto out;
        }
        if (wait_failed(cur, w, why, sizeof why)) {
            rc = aicp_err_set(err, AICP_EFAILED, "%s: %s (while waiting for %s)", t.label, why,
                              what);
            goto out;
        }
        if (wait_met(cur, w, seen, sizeof seen))
            break;
        left = start + timeout - aicp_now();
        if (left <= 0) {
            rc = aicp_err_set(err, AICP_ETIMEOUT, "%s: %s after %g s (waiting for %s)", t.label,
                              seen, timeout, what);
            goto out;
        }
        sleep_s(interval < left ? interval : left);
        interval = interval * 1.5 < max_interval ? interval * 1.5 : max_interval;
    }
out:
    if (obj != NULL && cur != NULL) {
        *obj = cur;
        cur = NULL;
    }
    json_decref(cur);
    return rc;
}

int aicp_kube_logs(struct aicp_kube *k, const char *namespace, const char *pod,
                   const char *container, char **text, struct aicp_err *err)
{
    return aicp_kube_logs_tail(k, namespace, pod, container, 0, text, err);
}

int aicp_kube_logs_tail(struct aicp_kube *k, const char *namespace, const char *pod,
                        const char *container, long tail_lines, char **text,
                        struct aicp_err *err)
{
    struct aicp_http_resp resp = {0};
    struct aicp_buf url = AICP_BUF_INIT;
    char label[256];
    const char *ns = namespace != NULL && namespace[0] != '\0' ? namespace : k->ns;
    int rc;

    *text = NULL;
    obj_label(label, sizeof label, "Pod", ns, pod);
    if (pod == NULL || !path_name(pod) || !aicp_kube_dns_label(ns))
        return aicp_err_set(err, AICP_EINVAL, "%s: logs: invalid pod or namespace name", label);
    if (aicp_buf_printf(&url, "%s/api/v1/namespaces/", k->server) != 0 ||
        put_escaped(&url, ns) != 0 || aicp_buf_puts(&url, "/pods/") != 0 ||
        put_escaped(&url, pod) != 0 || aicp_buf_puts(&url, "/log") != 0 ||
        (container != NULL &&
         (aicp_buf_puts(&url, "?container=") != 0 || put_escaped(&url, container) != 0)) ||
        (tail_lines > 0 &&
         aicp_buf_printf(&url, "%ctailLines=%ld", container != NULL ? '&' : '?', tail_lines) != 0)) {
        rc = aicp_err_set(err, AICP_ENOMEM, "%s: out of memory", label);
        goto out;
    }
    rc = call(k, "GET", url.data, NULL, NULL, 0, 0, &resp, err);
    if (rc != 0) {
        /* The log endpoint answers errors as a JSON Status too. */
        if (resp.body != NULL)
            resp.json = json_loadb(resp.body, resp.body_len, 0, NULL);
        rc = api_error(rc, &resp, label, "logs", err);
        goto out;
    }
    *text = aicp_strdup(resp.body != NULL ? resp.body : "");
    if (*text == NULL)
        rc = aicp_err_set(err, AICP_ENOMEM, "%s: out of memory", label);
out:
    aicp_http_resp_free(&resp);
    aicp_buf_free(&url);
    return rc;
}
