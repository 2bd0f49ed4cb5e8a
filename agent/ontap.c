/* The ONTAP REST API client (agent/ontap.h): collection reads with fields=
 * and query filters, single-record lookups, writes with return_timeout and
 * job polling, "temporarily locked" retries, a per-client version cache, a
 * pool of clients per run, and the normalisation of sizes and enum values
 * that modules compare with. Every request goes through the shared HTTPS
 * client (agent/http.h), which verifies TLS (ca_file or the system store),
 * warns once per endpoint when validate_certs is false, and retries
 * 502-504 and connection errors for requests that are safe to repeat;
 * this file adds what is specific to ONTAP. The password lives only in
 * this struct's memory and is wiped when it is freed; no message carries
 * it (URLs never hold credentials: basic auth goes in a header). */
#include "config.h"

#include "ontap.h"

#include "err.h"
#include "http.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RETURN_TIMEOUT_S 30  /* return_timeout on writes: short jobs answer at once */
#define JOB_TIMEOUT_S 600.0  /* a job's total wait, unless the caller says */
#define JOB_POLL_FIRST_S 0.5 /* job polling: 0.5 s, doubling ... */
#define JOB_POLL_MAX_S 5.0   /* ... to 5 s */
#define BUSY_RETRIES 5       /* a "temporarily locked" answer is retried this often */
#define MAX_PAGES 10000      /* _links.next pages followed by one list */

/* ONTAP error codes that mean "busy, try again" (besides any message that
 * says "temporarily locked", which is what the netapp.ontap collection
 * matches on: module_utils/netapp.py retries POST and PATCH whose error
 * message contains it). 2621573: "This Vserver is temporarily locked from
 * changes while recording the configuration baseline" (the code seen in
 * netapp.ontap issue #147, IP MetroCluster). */
static const char *const busy_codes[] = {"2621573", NULL};

struct aicp_ontap {
    struct aicp_http *http;
    struct aicp_http_opts opts; /* points into the fields below */
    char *host;                 /* as configured, for messages and keys */
    char *base;                 /* "https://host[:port]" */
    char *username;
    char *password; /* secret */
    char *cert_file;
    char *key_file;
    char *ca_file;
    aicp_ontap_sleep_fn sleep;
    void *sleep_ud;

    pthread_mutex_t lock; /* guards the version cache */
    int have_version;
    int gen, major, minor;
};

/* ---- small helpers ---------------------------------------------------- */

static void default_sleep(void *ud, double s)
{
    struct timespec ts;

    (void)ud;
    if (!(s > 0))
        return;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static const char *str_of(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* An ONTAP code as text: bodies carry it as a string ("917927"), jobs as
 * a number (2432836). */
static const char *code_text(const json_t *v, char *buf, size_t cap)
{
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
    }
    return NULL;
}

static int ci_contains(const char *hay, const char *needle)
{
    size_t n = strlen(needle);

    for (; hay != NULL && *hay != '\0'; hay++) {
        size_t i;
        for (i = 0; i < n && hay[i] != '\0'; i++)
            if (tolower((unsigned char)hay[i]) != tolower((unsigned char)needle[i]))
                break;
        if (i == n)
            return 1;
    }
    return 0;
}

/* Query characters sent as they are: RFC 3986's unreserved ones, plus ','
 * and '*' (field lists and wildcards read better in logs; the server
 * decodes either form the same). Everything else, '&', '=', '+', '|', '%',
 * space included, is percent-encoded so a value can never add a
 * parameter. */
static int put_escaped(struct aicp_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char enc[3];

    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~' || c == ',' || c == '*') {
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

int aicp_ontap_qadd(struct aicp_buf *b, const char *key, const char *value)
{
    if (key == NULL || key[0] == '\0')
        return AICP_EINVAL;
    if ((b->len > 0 && aicp_buf_puts(b, "&") != 0) || put_escaped(b, key) != 0 ||
        aicp_buf_puts(b, "=") != 0 || put_escaped(b, value != NULL ? value : "") != 0)
        return AICP_ENOMEM;
    return 0;
}

/* An API path: "/api/..." and nothing that could leave it (a query, a
 * fragment, "..", whitespace or control characters). */
static int path_ok(const char *p)
{
    const char *s;

    if (p == NULL || !aicp_startswith(p, "/api/") || strstr(p, "/../") != NULL ||
        strstr(p, "/./") != NULL || strstr(p, "//") != NULL)
        return 0;
    for (s = p; *s != '\0'; s++)
        if ((unsigned char)*s <= ' ' || *s == '?' || *s == '#' || *s == 0x7f || *s == '\\')
            return 0;
    return !(strlen(p) >= 3 && strcmp(p + strlen(p) - 3, "/..") == 0);
}

/* A management LIF as the site file writes it: a name or address,
 * optionally ":port", "[v6]:port" or a bare IPv6 address. */
static int host_ok(const char *h)
{
    const char *s;

    if (h == NULL || h[0] == '\0' || strlen(h) > 255)
        return 0;
    for (s = h; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (!(isalnum(c) || c == '.' || c == '-' || c == '_' || c == ':' || c == '[' || c == ']' ||
              c == '%'))
            return 0;
    }
    return 1;
}

/* ---- requests ---------------------------------------------------------- */

/* 1 when an error body says the cluster is busy and the same request may
 * succeed in a moment. */
static int busy_error(const json_t *body)
{
    const json_t *e = json_object_get(body, "error");
    const char *msg = str_of(e, "message");
    char num[32];
    const char *code = code_text(json_object_get(e, "code"), num, sizeof num);
    size_t i;

    if (msg != NULL && ci_contains(msg, "temporarily locked"))
        return 1;
    for (i = 0; code != NULL && busy_codes[i] != NULL; i++)
        if (strcmp(code, busy_codes[i]) == 0)
            return 1;
    return 0;
}

/* Rewrites a failed request's error as "METHOD PATH: ONTAP error CODE:
 * MESSAGE" when the body is ONTAP's error object: its message says what is
 * wrong far better than an HTTP status. Without one the HTTPS client's
 * message (which names the URL) stays. */
static int api_error(struct aicp_ontap *o, int rc, const struct aicp_http_resp *resp,
                     const char *method, const char *path, struct aicp_err *err)
{
    const json_t *e = json_is_object(resp->json) ? json_object_get(resp->json, "error") : NULL;
    const char *msg = str_of(e, "message"), *target = str_of(e, "target");
    char num[32];
    const char *code = code_text(json_object_get(e, "code"), num, sizeof num);

    if (msg == NULL && code == NULL) {
        if (rc == AICP_EAUTH && err != NULL)
            aicp_err_prefix(err, "ONTAP %s: user %s", o->host,
                            o->username != NULL ? o->username : "(certificate)");
        return rc;
    }
    if (rc == AICP_EAUTH)
        return aicp_err_set(err, rc,
                            "%s %s: ONTAP error %s: %s (ONTAP %s refused user %s: check the "
                            "username and password)",
                            method, path, code != NULL ? code : "?", msg != NULL ? msg : "",
                            o->host, o->username != NULL ? o->username : "(certificate)");
    return aicp_err_set(err, rc, "%s %s: ONTAP error %s: %s%s%s%s", method, path,
                        code != NULL ? code : "?", msg != NULL ? msg : "",
                        target != NULL ? " (target: " : "", target != NULL ? target : "",
                        target != NULL ? ")" : "");
}

/* One API request, with the busy retries: "temporarily locked" answers
 * are sent again after 0.5, 1, 2, 4, 5 s (at most BUSY_RETRIES times).
 * Fills resp; on error, err says "METHOD PATH: ONTAP error ...". */
static int send_req(struct aicp_ontap *o, const char *method, const char *path, const char *query,
                    const json_t *body, struct aicp_http_resp *resp, struct aicp_err *err)
{
    struct aicp_buf url = AICP_BUF_INIT;
    struct aicp_http_req req = {.method = method, .json = body, .parse_json = 1};
    double backoff = JOB_POLL_FIRST_S;
    int tries, rc;

    if (!path_ok(path))
        return aicp_err_set(err, AICP_EINVAL, "ONTAP %s: %s %s: not an API path (/api/...)",
                            o->host, method, path != NULL ? path : "(none)");
    if (aicp_buf_printf(&url, "%s%s%s%s", o->base, path, query != NULL && query[0] ? "?" : "",
                        query != NULL ? query : "") != 0) {
        aicp_buf_free(&url);
        return aicp_err_set(err, AICP_ENOMEM, "ONTAP %s: out of memory", o->host);
    }
    req.url = url.data;
    for (tries = 0;; tries++) {
        aicp_http_resp_free(resp);
        rc = aicp_http_request(o->http, &o->opts, &req, resp, err);
        if (rc == 0 || resp->status < 400 || !busy_error(resp->json) || tries >= BUSY_RETRIES)
            break;
        o->sleep(o->sleep_ud, backoff);
        backoff = backoff * 2 < JOB_POLL_MAX_S ? backoff * 2 : JOB_POLL_MAX_S;
    }
    if (rc != 0) {
        rc = api_error(o, rc, resp, method, path, err);
        if (tries > 0 && busy_error(resp->json) && err != NULL) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            aicp_err_set(err, rc, "%s (still busy after %d attempts)", msg, tries + 1);
        }
    }
    aicp_buf_free(&url);
    return rc;
}

/* query plus "fields=..." (or another extra parameter) into a new buffer. */
static int join_query(struct aicp_buf *q, const char *query, const char *key, const char *value)
{
    if (query != NULL && query[0] != '\0' && aicp_buf_puts(q, query) != 0)
        return AICP_ENOMEM;
    if (value != NULL && value[0] != '\0')
        return aicp_ontap_qadd(q, key, value);
    return 0;
}

/* ---- the client ---------------------------------------------------------- */

void aicp_ontap_set_sleep(struct aicp_ontap *o, aicp_ontap_sleep_fn fn, void *ud)
{
    o->sleep = fn != NULL ? fn : default_sleep;
    o->sleep_ud = fn != NULL ? ud : NULL;
}

static int dup_opt(char **dst, const char *src)
{
    if (src == NULL || src[0] == '\0')
        return 0;
    return (*dst = aicp_strdup(src)) == NULL ? AICP_ENOMEM : 0;
}

int aicp_ontap_new(struct aicp_ontap **out, struct aicp_http *http,
                   const struct aicp_ontap_config *cfg, struct aicp_err *err)
{
    struct aicp_ontap *o;
    struct aicp_buf b = AICP_BUF_INIT;
    const char *h;
    int rc = 0, bare_v6;

    *out = NULL;
    if (http == NULL || cfg == NULL)
        return aicp_err_set(err, AICP_EINVAL, "ONTAP client: no HTTPS client or configuration");
    h = cfg->hostname;
    if (h == NULL || h[0] == '\0')
        return aicp_err_set(err, AICP_EINVAL, "ONTAP client: no hostname (the management LIF)");
    if (strstr(h, "://") != NULL || !host_ok(h))
        return aicp_err_set(err, AICP_EINVAL,
                            "ONTAP client: hostname '%s' must be an address or name, optionally "
                            "with :port (not a URL)",
                            h);
    if ((cfg->cert_file == NULL || cfg->cert_file[0] == '\0') &&
        (cfg->username == NULL || cfg->username[0] == '\0' || cfg->password == NULL))
        return aicp_err_set(err, AICP_EINVAL,
                            "ONTAP %s: no credentials: give username and password, or "
                            "cert_filepath (and key_filepath)",
                            h);
    if ((o = calloc(1, sizeof *o)) == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "ONTAP %s: out of memory", h);
    o->http = http;
    o->sleep = default_sleep;
    pthread_mutex_init(&o->lock, NULL);
    /* A bare IPv6 address has more than one colon and no brackets. */
    bare_v6 = h[0] != '[' && strchr(h, ':') != strrchr(h, ':');
    if (dup_opt(&o->host, h) != 0 ||
        aicp_buf_printf(&b, "%s://%s%s%s", cfg->use_http ? "http" : "https", bare_v6 ? "[" : "", h,
                        bare_v6 ? "]" : "") != 0 ||
        (o->base = aicp_buf_steal(&b)) == NULL || dup_opt(&o->cert_file, cfg->cert_file) != 0 ||
        dup_opt(&o->key_file, cfg->key_file) != 0 || dup_opt(&o->ca_file, cfg->ca_file) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "ONTAP %s: out of memory", h);
        goto out;
    }
    /* Certificate auth wins when both are given: no password is sent. */
    if (o->cert_file == NULL && (dup_opt(&o->username, cfg->username) != 0 ||
                                 (o->password = aicp_strdup(cfg->password)) == NULL)) {
        rc = aicp_err_set(err, AICP_ENOMEM, "ONTAP %s: out of memory", h);
        goto out;
    }
    o->opts.insecure = !cfg->validate_certs && !cfg->use_http;
    o->opts.ca_file = o->ca_file;
    o->opts.cert_file = o->cert_file;
    o->opts.key_file = o->key_file;
    o->opts.username = o->username;
    o->opts.password = o->password;
    /* A write waits return_timeout (30 s) on the server before it answers
     * 202, so an attempt may take that long and more. */
    o->opts.timeout_ms = (RETURN_TIMEOUT_S + 60) * 1000L;
    o->opts.max_attempts = 4;
    o->opts.backoff_initial_s = 0.5;
    o->opts.backoff_max_s = 5;
    *out = o;
    return 0;
out:
    aicp_buf_free(&b);
    aicp_ontap_free(o);
    return rc;
}

void aicp_ontap_free(struct aicp_ontap *o)
{
    if (o == NULL)
        return;
    free(o->host);
    free(o->base);
    free(o->username);
    aicp_free_secret(o->password);
    free(o->cert_file);
    free(o->key_file);
    free(o->ca_file);
    pthread_mutex_destroy(&o->lock);
    free(o);
}

const char *aicp_ontap_host(const struct aicp_ontap *o)
{
    return o->host;
}

/* ---- reads ------------------------------------------------------------- */

int aicp_ontap_get(struct aicp_ontap *o, const char *path, const char *fields, json_t **obj,
                   struct aicp_err *err)
{
    struct aicp_http_resp resp = {0};
    struct aicp_buf q = AICP_BUF_INIT;
    int rc;

    *obj = NULL;
    if (join_query(&q, NULL, "fields", fields) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "ONTAP %s: out of memory", o->host);
        goto out;
    }
    rc = send_req(o, "GET", path, q.data, NULL, &resp, err);
    if (rc == AICP_ENOTFOUND) {
        aicp_err_clear(err);
        rc = 0;
    } else if (rc == 0 && !json_is_object(resp.json)) {
        rc = aicp_err_set(err, AICP_EREMOTE,
                          "GET %s: ONTAP %s answered something other than an "
                          "object",
                          path, o->host);
    } else if (rc == 0) {
        *obj = json_incref(resp.json);
    }
out:
    aicp_http_resp_free(&resp);
    aicp_buf_free(&q);
    return rc;
}

/* The query part of a _links.next href ("/api/x?start.uuid=..&fields=.."),
 * when it stays on the same collection path. */
static const char *next_query(const json_t *body, const char *path)
{
    const char *href = str_of(json_object_get(json_object_get(body, "_links"), "next"), "href");
    const char *qm;
    size_t n = strlen(path);

    if (href == NULL || (qm = strchr(href, '?')) == NULL || (size_t)(qm - href) != n ||
        strncmp(href, path, n) != 0)
        return NULL;
    return qm + 1;
}

int aicp_ontap_list(struct aicp_ontap *o, const char *path, const char *query, const char *fields,
                    json_t **records, struct aicp_err *err)
{
    struct aicp_http_resp resp = {0};
    struct aicp_buf q = AICP_BUF_INIT;
    json_t *all = json_array();
    char *next = NULL;
    int pages, rc = 0;

    *records = NULL;
    if (all == NULL || join_query(&q, query, "fields", fields) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "ONTAP %s: out of memory", o->host);
        goto out;
    }
    for (pages = 0; pages < MAX_PAGES; pages++) {
        const json_t *recs;
        const char *nq;
        rc = send_req(o, "GET", path, next != NULL ? next : q.data, NULL, &resp, err);
        if (rc != 0)
            goto out;
        recs = json_object_get(resp.json, "records");
        if (!json_is_array(recs)) {
            rc = aicp_err_set(err, AICP_EREMOTE, "GET %s: ONTAP %s answered without a records list",
                              path, o->host);
            goto out;
        }
        if (json_array_extend(all, (json_t *)recs) != 0) {
            rc = aicp_err_set(err, AICP_ENOMEM, "ONTAP %s: out of memory", o->host);
            goto out;
        }
        /* Large collections come in pages; ONTAP says where the next
         * starts. */
        nq = next_query(resp.json, path);
        free(next);
        next = NULL;
        if (nq == NULL)
            break;
        if ((next = aicp_strdup(nq)) == NULL) {
            rc = aicp_err_set(err, AICP_ENOMEM, "ONTAP %s: out of memory", o->host);
            goto out;
        }
    }
    *records = all;
    all = NULL;
out:
    free(next);
    json_decref(all);
    aicp_http_resp_free(&resp);
    aicp_buf_free(&q);
    return rc;
}

int aicp_ontap_get_one(struct aicp_ontap *o, const char *path, const char *query,
                       const char *fields, const char *what, json_t **record, struct aicp_err *err)
{
    json_t *recs = NULL;
    size_t n;
    int rc;

    *record = NULL;
    if ((rc = aicp_ontap_list(o, path, query, fields, &recs, err)) != 0)
        return rc;
    n = json_array_size(recs);
    if (n == 1)
        *record = json_incref(json_array_get(recs, 0));
    else if (n > 1)
        rc = aicp_err_set(err, AICP_EINVAL,
                          "%zu %ss match %s on ONTAP %s (GET %s): expected at most one; narrow "
                          "the query (e.g. give the svm)",
                          n, what != NULL ? what : "record", query != NULL ? query : "(no query)",
                          o->host, path);
    json_decref(recs);
    return rc;
}

/* ---- version ------------------------------------------------------------- */

/* "NetApp Release 9.8.0: ..." or "9.8" -> 9, 8, 0. */
static int parse_full(const char *full, int *g, int *ma, int *mi)
{
    const char *s = full;

    while (s != NULL && *s != '\0' && !isdigit((unsigned char)*s))
        s++;
    if (s == NULL || *s == '\0')
        return -1;
    *mi = 0;
    return sscanf(s, "%d.%d.%d", g, ma, mi) >= 2 ? 0 : -1;
}

int aicp_ontap_version(struct aicp_ontap *o, int *generation, int *major, int *minor,
                       struct aicp_err *err)
{
    json_t *c = NULL;
    const json_t *v;
    int g, ma, mi, rc = 0;

    /* Held while reading, so that concurrent first callers cost one
     * request, not one each. */
    pthread_mutex_lock(&o->lock);
    if (o->have_version)
        goto done;
    if ((rc = aicp_ontap_get(o, "/api/cluster", "version", &c, err)) != 0)
        goto out;
    v = json_object_get(c, "version");
    if (json_is_integer(json_object_get(v, "generation")) &&
        json_is_integer(json_object_get(v, "major"))) {
        g = (int)json_integer_value(json_object_get(v, "generation"));
        ma = (int)json_integer_value(json_object_get(v, "major"));
        mi = (int)json_integer_value(json_object_get(v, "minor"));
    } else if (parse_full(str_of(v, "full"), &g, &ma, &mi) != 0) {
        rc = aicp_err_set(err, AICP_EREMOTE,
                          "GET /api/cluster: ONTAP %s did not say its version (version.full, "
                          "version.generation)",
                          o->host);
        goto out;
    }
    o->gen = g;
    o->major = ma;
    o->minor = mi;
    o->have_version = 1;
done:
    if (generation != NULL)
        *generation = o->gen;
    if (major != NULL)
        *major = o->major;
    if (minor != NULL)
        *minor = o->minor;
out:
    pthread_mutex_unlock(&o->lock);
    json_decref(c);
    return rc;
}

int aicp_ontap_require(struct aicp_ontap *o, int generation, int major, const char *what,
                       struct aicp_err *err)
{
    int g, ma, mi, rc;

    if ((rc = aicp_ontap_version(o, &g, &ma, &mi, err)) != 0)
        return rc;
    if (g > generation || (g == generation && ma >= major))
        return 0;
    return aicp_err_set(err, AICP_EINVAL, "ONTAP %d.%d does not support %s (needs %d.%d or later)",
                        g, ma, what != NULL ? what : "this", generation, major);
}

/* ---- writes and jobs ------------------------------------------------------ */

/* A job UUID can go into a path as it is. */
static int uuid_ok(const char *u)
{
    size_t n = 0;

    for (; u != NULL && *u != '\0'; u++, n++)
        if (!(isxdigit((unsigned char)*u) || *u == '-'))
            return 0;
    return n > 0 && n <= 64;
}

/* Polls a job until success (0, *job the finished job), failure
 * (AICP_EREMOTE with ONTAP's message and code), disappearance
 * (AICP_ENOTFOUND) or the timeout (AICP_ETIMEOUT). */
static int wait_job(struct aicp_ontap *o, const char *method, const char *path, const char *uuid,
                    double timeout_s, json_t **job, struct aicp_err *err)
{
    struct aicp_http_resp resp = {0};
    char jpath[128], num[32];
    const char *state = "queued";
    double interval = JOB_POLL_FIRST_S, waited = 0, start = aicp_now();
    int rc;

    *job = NULL;
    snprintf(jpath, sizeof jpath, "/api/cluster/jobs/%s", uuid);
    for (;;) {
        const json_t *j;
        rc = send_req(o, "GET", jpath, "fields=state,message,code,error", NULL, &resp, err);
        if (rc == AICP_ENOTFOUND) {
            rc = aicp_err_set(err, AICP_ENOTFOUND,
                              "%s %s: job %s vanished: re-read the resource (ONTAP %s)", method,
                              path, uuid, o->host);
            goto out;
        }
        if (rc != 0) {
            aicp_err_prefix(err, "%s %s: waiting for job %s", method, path, uuid);
            goto out;
        }
        j = resp.json;
        state = str_of(j, "state");
        if (state == NULL)
            state = "(no state)";
        if (strcmp(state, "success") == 0) {
            *job = json_incref(resp.json);
            goto out;
        }
        if (strcmp(state, "failure") == 0) {
            const json_t *e = json_object_get(j, "error");
            const char *msg = str_of(j, "message"), *code;
            code = code_text(json_object_get(j, "code"), num, sizeof num);
            if (msg == NULL || msg[0] == '\0')
                msg = str_of(e, "message");
            if (code == NULL)
                code = code_text(json_object_get(e, "code"), num, sizeof num);
            rc = aicp_err_set(err, AICP_EREMOTE, "%s %s: job %s failed: ONTAP error %s: %s", method,
                              path, uuid, code != NULL ? code : "?",
                              msg != NULL ? msg : "(no message)");
            goto out;
        }
        /* queued, running, paused: wait, within the caller's budget. The
         * budget counts the sleeps (so tests with an injected sleep are
         * exact) and the wall clock, whichever is further. */
        if (waited >= timeout_s || aicp_now() - start >= timeout_s) {
            rc = aicp_err_set(err, AICP_ETIMEOUT,
                              "%s %s: job %s is still %s after %g s (ONTAP %s); it may still "
                              "finish: re-read the resource",
                              method, path, uuid, state, timeout_s, o->host);
            goto out;
        }
        o->sleep(o->sleep_ud, interval);
        waited += interval;
        interval = interval * 2 < JOB_POLL_MAX_S ? interval * 2 : JOB_POLL_MAX_S;
    }
out:
    aicp_http_resp_free(&resp);
    return rc;
}

int aicp_ontap_call(struct aicp_ontap *o, const char *method, const char *path, const char *query,
                    const json_t *body, double timeout_s, json_t **result, struct aicp_err *err)
{
    struct aicp_http_resp resp = {0};
    struct aicp_buf q = AICP_BUF_INIT;
    json_t *job = NULL;
    const char *uuid;
    char rt[16];
    int rc;

    if (result != NULL)
        *result = NULL;
    if (method == NULL || (strcmp(method, "POST") != 0 && strcmp(method, "PATCH") != 0 &&
                           strcmp(method, "DELETE") != 0))
        return aicp_err_set(err, AICP_EINVAL, "ONTAP %s: %s %s: a call is POST, PATCH or DELETE",
                            o->host, method != NULL ? method : "(none)", path ? path : "");
    if (!(timeout_s > 0))
        timeout_s = JOB_TIMEOUT_S;
    snprintf(rt, sizeof rt, "%d", RETURN_TIMEOUT_S);
    /* A caller's own return_timeout (0: answer 202 at once) wins. */
    if (query != NULL &&
        (aicp_startswith(query, "return_timeout=") || strstr(query, "&return_timeout=") != NULL))
        rt[0] = '\0';
    if (join_query(&q, query, "return_timeout", rt) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "ONTAP %s: out of memory", o->host);
        goto out;
    }
    if ((rc = send_req(o, method, path, q.data, body, &resp, err)) != 0)
        goto out;
    /* 202: the job outlived return_timeout. (A 200/201 means it finished:
     * ONTAP answers a job that failed within return_timeout with an
     * error status.) */
    uuid = str_of(json_object_get(resp.json, "job"), "uuid");
    if (resp.status == 202 && uuid != NULL) {
        if (!uuid_ok(uuid)) {
            rc = aicp_err_set(err, AICP_EREMOTE,
                              "%s %s: ONTAP %s answered a job id that is not "
                              "a UUID",
                              method, path, o->host);
            goto out;
        }
        if ((rc = wait_job(o, method, path, uuid, timeout_s, &job, err)) != 0)
            goto out;
        if (result != NULL) {
            *result = job;
            job = NULL;
        }
    } else if (result != NULL && resp.json != NULL) {
        *result = json_incref(resp.json);
    }
out:
    json_decref(job);
    aicp_http_resp_free(&resp);
    aicp_buf_free(&q);
    return rc;
}

/* ---- the pool ------------------------------------------------------------- */

struct pool_entry {
    char *host;
    char *user; /* "" for certificate auth */
    struct aicp_ontap *o;
};

struct aicp_ontap_pool {
    struct aicp_http *http;
    pthread_mutex_t lock;
    struct pool_entry *e;
    size_t n;
};

int aicp_ontap_pool_new(struct aicp_ontap_pool **out, struct aicp_http *http)
{
    struct aicp_ontap_pool *p = calloc(1, sizeof *p);

    *out = NULL;
    if (p == NULL)
        return AICP_ENOMEM;
    p->http = http;
    pthread_mutex_init(&p->lock, NULL);
    *out = p;
    return 0;
}

void aicp_ontap_pool_free(struct aicp_ontap_pool *p)
{
    size_t i;

    if (p == NULL)
        return;
    for (i = 0; i < p->n; i++) {
        free(p->e[i].host);
        free(p->e[i].user);
        aicp_ontap_free(p->e[i].o);
    }
    free(p->e);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

int aicp_ontap_pool_get(struct aicp_ontap_pool *p, const struct aicp_ontap_config *cfg,
                        struct aicp_ontap **out, struct aicp_err *err)
{
    struct pool_entry *grown;
    const char *user;
    char *h = NULL, *u = NULL;
    size_t i;
    int rc = 0;

    *out = NULL;
    if (p == NULL || cfg == NULL || cfg->hostname == NULL)
        return aicp_err_set(err, AICP_EINVAL, "ONTAP clients: no hostname");
    user = cfg->username != NULL ? cfg->username : "";
    pthread_mutex_lock(&p->lock);
    for (i = 0; i < p->n; i++) {
        if (strcmp(p->e[i].host, cfg->hostname) == 0 && strcmp(p->e[i].user, user) == 0) {
            *out = p->e[i].o;
            goto out;
        }
    }
    if ((h = aicp_strdup(cfg->hostname)) == NULL || (u = aicp_strdup(user)) == NULL ||
        (grown = realloc(p->e, (p->n + 1) * sizeof *grown)) == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "ONTAP clients: out of memory");
        goto out;
    }
    p->e = grown;
    if ((rc = aicp_ontap_new(&p->e[p->n].o, p->http, cfg, err)) != 0)
        goto out;
    p->e[p->n].host = h;
    p->e[p->n].user = u;
    *out = p->e[p->n].o;
    p->n++;
    h = u = NULL;
out:
    pthread_mutex_unlock(&p->lock);
    free(h);
    free(u);
    return rc;
}

/* ---- normalisation -------------------------------------------------------- */

/* Binary multipliers by unit, as netapp.ontap's size_unit reads them
 * (kb = 1024 bytes), so that "100GB" in a site file and the byte count
 * ONTAP returns compare equal. */
static long long unit_mult(const char *u, size_t n)
{
    static const struct {
        const char *name;
        int shift;
    } units[] = {{"", 0},     {"b", 0},   {"bytes", 0}, {"k", 10},  {"kb", 10},  {"ki", 10},
                 {"kib", 10}, {"m", 20},  {"mb", 20},   {"mi", 20}, {"mib", 20}, {"g", 30},
                 {"gb", 30},  {"gi", 30}, {"gib", 30},  {"t", 40},  {"tb", 40},  {"ti", 40},
                 {"tib", 40}, {"p", 50},  {"pb", 50},   {"pi", 50}, {"pib", 50}, {"e", 60},
                 {"eb", 60},  {"ei", 60}, {"eib", 60}};
    char low[8];
    size_t i;

    if (n >= sizeof low)
        return -1;
    for (i = 0; i < n; i++)
        low[i] = (char)tolower((unsigned char)u[i]);
    low[n] = '\0';
    for (i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(low, units[i].name) == 0)
            return 1LL << units[i].shift;
    return -1;
}

static long long size_of_text(const char *s)
{
    long long ip = 0, mult, whole;
    double frac = 0, scale = 0.1;
    int ndig = 0, nfrac = 0;
    const char *u;
    size_t ul;

    while (*s == ' ' || *s == '\t')
        s++;
    for (; isdigit((unsigned char)*s); s++, ndig++) {
        if (ip > (LLONG_MAX - 9) / 10)
            return -1;
        ip = ip * 10 + (*s - '0');
    }
    if (ndig == 0)
        return -1;
    if (*s == '.') {
        for (s++; isdigit((unsigned char)*s); s++, nfrac++) {
            frac += (*s - '0') * scale;
            scale /= 10;
        }
        if (nfrac == 0)
            return -1;
    }
    while (*s == ' ' || *s == '\t')
        s++;
    u = s;
    while (isalpha((unsigned char)*s))
        s++;
    ul = (size_t)(s - u);
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s != '\0' || (mult = unit_mult(u, ul)) < 0)
        return -1;
    if (ip > LLONG_MAX / mult)
        return -1;
    whole = ip * mult;
    if (frac > 0) {
        /* Bytes are whole: "1.5" bytes is not a size; "1.3KB" rounds to
         * the nearest byte. */
        double extra = floor(frac * (double)mult + 0.5);
        if (mult == 1 || (double)(LLONG_MAX - whole) <= extra)
            return -1;
        whole += (long long)extra;
    }
    return whole;
}

long long aicp_ontap_size(const json_t *v)
{
    if (json_is_integer(v))
        return json_integer_value(v) >= 0 ? (long long)json_integer_value(v) : -1;
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!isfinite(d) || d < 0 || d != floor(d) || d >= 9.2e18)
            return -1;
        return (long long)d;
    }
    if (json_is_string(v))
        return size_of_text(json_string_value(v));
    return -1;
}

static int enum_char(int c)
{
    return c == '-' ? '_' : tolower(c);
}

int aicp_ontap_enum_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    for (; *a != '\0' && *b != '\0'; a++, b++)
        if (enum_char((unsigned char)*a) != enum_char((unsigned char)*b))
            return 0;
    return *a == *b;
}
