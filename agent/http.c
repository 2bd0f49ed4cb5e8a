/* The shared HTTPS client (agent/http.h) on libcurl. Each attempt is a
 * fresh easy handle configured from the target's options, so nothing of one
 * target's credentials can leak into another's request; connections and DNS
 * answers are still reused through a curl share object that the per-run
 * client owns (curl only reuses a connection whose TLS settings match).
 * libcurl is told to ignore everything the environment could add behind the
 * caller's back: proxies, ~/.netrc, redirects. Credentials are sent as an
 * Authorization header that this file builds and wipes, rather than through
 * CURLOPT_USERPWD, so curl keeps no copy it would free unwiped and never
 * replays them to another host.
 */
#include "config.h"

#include "http.h"

#include "err.h"
#include "util.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEF_CONNECT_TIMEOUT_MS 10000L
#define DEF_TIMEOUT_MS 60000L
#define DEF_MAX_ATTEMPTS 4
#define DEF_BACKOFF_INITIAL 0.5
#define DEF_BACKOFF_MAX 30.0
#define DEF_RETRY_AFTER_MAX 60.0
#define DEF_MAX_BODY ((size_t)16 * 1024 * 1024)
#define EXCERPT_MAX 200

struct aicp_http {
    struct aicp_http_hooks hooks;
    pthread_mutex_t lock; /* guards warned */
    char **warned;        /* endpoints warned about (insecure) */
    size_t nwarned;
    CURLSH *share;
    pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
    int curl_inited;
};

/* What one attempt collects while curl runs. */
struct sink {
    struct aicp_buf body;
    size_t max;
    int too_big;
};

static void default_warn(void *ud, const char *msg)
{
    (void)ud;
    fprintf(stderr, "%s\n", msg);
}

static void default_sleep(void *ud, double seconds)
{
    struct timespec ts;

    (void)ud;
    if (!(seconds > 0))
        return;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void share_lock(CURL *c, curl_lock_data data, curl_lock_access access, void *ud)
{
    struct aicp_http *h = ud;

    (void)c;
    (void)access;
    if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
        pthread_mutex_lock(&h->share_locks[data]);
}

static void share_unlock(CURL *c, curl_lock_data data, void *ud)
{
    struct aicp_http *h = ud;

    (void)c;
    if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
        pthread_mutex_unlock(&h->share_locks[data]);
}

int aicp_http_new(struct aicp_http **out, const struct aicp_http_hooks *hooks, struct aicp_err *err)
{
    struct aicp_http *h;
    int i;

    *out = NULL;
    h = calloc(1, sizeof *h);
    if (h == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "http client: out of memory");
    if (hooks != NULL)
        h->hooks = *hooks;
    if (h->hooks.warn == NULL)
        h->hooks.warn = default_warn;
    if (h->hooks.sleep == NULL)
        h->hooks.sleep = default_sleep;
    pthread_mutex_init(&h->lock, NULL);
    for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&h->share_locks[i], NULL);
    /* Thread-safe since curl 7.84; done here so that no worker thread's
     * first curl_easy_init does it implicitly. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        aicp_http_free(h);
        return aicp_err_set(err, AICP_EIO, "http client: libcurl initialisation failed");
    }
    h->curl_inited = 1;
    h->share = curl_share_init();
    if (h->share == NULL) {
        aicp_http_free(h);
        return aicp_err_set(err, AICP_ENOMEM, "http client: out of memory");
    }
    curl_share_setopt(h->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(h->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(h->share, CURLSHOPT_USERDATA, h);
    curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    *out = h;
    return 0;
}

void aicp_http_free(struct aicp_http *h)
{
    size_t k;
    int i;

    if (h == NULL)
        return;
    if (h->share != NULL)
        curl_share_cleanup(h->share);
    for (k = 0; k < h->nwarned; k++)
        free(h->warned[k]);
    free(h->warned);
    for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&h->share_locks[i]);
    pthread_mutex_destroy(&h->lock);
    if (h->curl_inited)
        curl_global_cleanup();
    free(h);
}

void aicp_http_resp_free(struct aicp_http_resp *resp)
{
    if (resp == NULL)
        return;
    /* Bodies may carry secrets (a token request's answer): wipe. */
    if (resp->body != NULL)
        OPENSSL_cleanse(resp->body, resp->body_len);
    free(resp->body);
    free(resp->content_type);
    free(resp->location);
    free(resp->retry_after);
    json_decref(resp->json);
    memset(resp, 0, sizeof *resp);
}

int aicp_http_method_idempotent(const char *method)
{
    static const char *const safe[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"};
    size_t i;

    for (i = 0; method != NULL && i < sizeof safe / sizeof safe[0]; i++)
        if (strcmp(method, safe[i]) == 0)
            return 1;
    return 0;
}

/* Parses url with curl's own parser, so that what we print and what curl
 * connects to cannot disagree. NULL when it does not parse. */
static CURLU *parse_url(const char *url)
{
    CURLU *u = curl_url();

    if (u == NULL)
        return NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
        curl_url_cleanup(u);
        return NULL;
    }
    return u;
}

char *aicp_http_redact_url(const char *url)
{
    CURLU *u = url != NULL ? parse_url(url) : NULL;
    char *s = NULL, *out;

    if (u == NULL)
        return aicp_strdup("<bad URL>");
    curl_url_set(u, CURLUPART_USER, NULL, 0);
    curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
    curl_url_set(u, CURLUPART_OPTIONS, NULL, 0);
    if (curl_url_get(u, CURLUPART_URL, &s, 0) != CURLUE_OK)
        s = NULL;
    out = aicp_strdup(s != NULL ? s : "<bad URL>");
    curl_free(s);
    curl_url_cleanup(u);
    return out;
}

/* "https://host:port" for the warn-once set; NULL for non-https URLs. */
static char *endpoint_of(const char *url)
{
    CURLU *u = parse_url(url);
    char *scheme = NULL, *host = NULL, *port = NULL, *out = NULL;
    struct aicp_buf b = AICP_BUF_INIT;

    if (u == NULL)
        return NULL;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        strcmp(scheme, "https") == 0 && curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
        aicp_buf_printf(&b, "%s://%s:%s", scheme, host, port) == 0)
        out = aicp_buf_steal(&b);
    aicp_buf_free(&b);
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return out;
}

/* Warns once per endpoint per client that certificates are not checked. */
static int warn_insecure(struct aicp_http *h, const char *url, const char *why)
{
    char *ep = endpoint_of(url);
    char msg[512];
    size_t i;
    int seen = 0, rc = 0;

    if (ep == NULL)
        return 0;
    snprintf(msg, sizeof msg,
             "[WARNING]: TLS certificate verification is disabled for %s "
             "(%s): the connection can be intercepted",
             ep, why != NULL ? why : "validate_certs: false");
    pthread_mutex_lock(&h->lock);
    for (i = 0; i < h->nwarned && !seen; i++)
        seen = strcmp(h->warned[i], ep) == 0;
    if (!seen) {
        char **n = realloc(h->warned, (h->nwarned + 1) * sizeof *n);
        if (n == NULL) {
            rc = AICP_ENOMEM;
        } else {
            h->warned = n;
            h->warned[h->nwarned++] = ep;
            ep = NULL;
        }
    }
    pthread_mutex_unlock(&h->lock);
    /* Outside the lock: the hook may be slow (a terminal) or re-enter. */
    if (!seen && rc == 0)
        h->hooks.warn(h->hooks.warn_ud, msg);
    free(ep);
    return rc;
}

static size_t write_cb(char *data, size_t size, size_t n, void *ud)
{
    struct sink *s = ud;
    size_t len = size * n;

    if (s->body.len + len > s->max) {
        s->too_big = 1;
        return 0; /* makes curl fail with CURLE_WRITE_ERROR */
    }
    if (aicp_buf_append(&s->body, data, len) != 0)
        return 0;
    return len;
}

/* 1 when headers already hold "name:" (case-insensitive). */
static int has_header(const char *const *headers, const char *name)
{
    size_t n = strlen(name);

    for (; headers != NULL && *headers != NULL; headers++)
        if (strncasecmp(*headers, name, n) == 0 && (*headers)[n] == ':')
            return 1;
    return 0;
}

static int valid_method(const char *m)
{
    size_t i;

    if (m == NULL || m[0] == '\0' || strlen(m) > 16)
        return 0;
    for (i = 0; m[i] != '\0'; i++)
        if (!isupper((unsigned char)m[i]))
            return 0;
    return 1;
}

/* Appends a header line that may hold a secret; the temporary copy is
 * wiped (curl_slist_append copies it into the list, which is wiped too). */
static int append_secret_header(struct curl_slist **list, const char *prefix,
                                const unsigned char *val, size_t len, int base64)
{
    struct aicp_buf b = AICP_BUF_INIT;
    struct curl_slist *n;
    int rc = 0;

    if (aicp_buf_puts(&b, prefix) != 0) {
        rc = AICP_ENOMEM;
        goto out;
    }
    if (base64) {
        size_t need = 4 * ((len + 2) / 3) + 1;
        unsigned char *enc = malloc(need);
        int elen;

        if (enc == NULL) {
            rc = AICP_ENOMEM;
            goto out;
        }
        elen = EVP_EncodeBlock(enc, val, (int)len);
        if (aicp_buf_append(&b, enc, (size_t)elen) != 0)
            rc = AICP_ENOMEM;
        OPENSSL_cleanse(enc, need);
        free(enc);
        if (rc != 0)
            goto out;
    } else if (aicp_buf_append(&b, val, len) != 0) {
        rc = AICP_ENOMEM;
        goto out;
    }
    n = curl_slist_append(*list, b.data);
    if (n == NULL) {
        rc = AICP_ENOMEM;
        goto out;
    }
    *list = n;
out:
    aicp_buf_free_secret(&b);
    return rc;
}

/* Frees a header list after wiping every line: it holds Authorization. */
static void free_headers(struct curl_slist *list)
{
    struct curl_slist *p;

    for (p = list; p != NULL; p = p->next)
        if (p->data != NULL)
            OPENSSL_cleanse(p->data, strlen(p->data));
    curl_slist_free_all(list);
}

/* Appends a fixed header line; 0 or AICP_ENOMEM. */
static int append_header(struct curl_slist **list, const char *line)
{
    struct curl_slist *n = curl_slist_append(*list, line);

    if (n == NULL)
        return AICP_ENOMEM;
    *list = n;
    return 0;
}

static int build_headers(struct curl_slist **out, const struct aicp_http_opts *o,
                         const struct aicp_http_req *req, int has_body, struct aicp_err *err,
                         const char *what)
{
    struct curl_slist *list = NULL;
    struct aicp_buf up = AICP_BUF_INIT;
    const char *const *hp;
    int rc = 0;

    if (o->bearer_token != NULL && o->password != NULL) {
        rc = aicp_err_set(err, AICP_EINVAL,
                          "%s: give either a bearer token or a user and password, not both", what);
        goto out;
    }
    for (hp = req->headers; hp != NULL && *hp != NULL && rc == 0; hp++) {
        if (strchr(*hp, '\n') != NULL || strchr(*hp, '\r') != NULL) {
            rc = aicp_err_set(err, AICP_EINVAL, "%s: a request header contains a line break", what);
            goto out;
        }
        rc = append_header(&list, *hp);
    }
    if (rc == 0 && has_body && !has_header(req->headers, "Content-Type"))
        rc = append_header(&list, "Content-Type: application/json");
    if (rc == 0 && req->parse_json && !has_header(req->headers, "Accept"))
        rc = append_header(&list, "Accept: application/json");
    /* No 100-continue round trip: our bodies are small. */
    if (rc == 0)
        rc = append_header(&list, "Expect:");
    if (rc == 0 && o->bearer_token != NULL) {
        rc = append_secret_header(&list, "Authorization: Bearer ",
                                  (const unsigned char *)o->bearer_token, strlen(o->bearer_token),
                                  0);
    } else if (rc == 0 && (o->username != NULL || o->password != NULL)) {
        rc = aicp_buf_printf(&up, "%s:%s", o->username ? o->username : "",
                             o->password ? o->password : "");
        if (rc == 0)
            rc = append_secret_header(&list, "Authorization: Basic ",
                                      (const unsigned char *)up.data, up.len, 1);
    }
    if (rc != 0)
        rc = aicp_err_set(err, AICP_ENOMEM, "%s: out of memory", what);
out:
    aicp_buf_free_secret(&up);
    if (rc != 0) {
        free_headers(list);
        list = NULL;
    }
    *out = list;
    return rc;
}

/* Configures one attempt's easy handle. */
static int setup_easy(CURL *c, struct aicp_http *h, const struct aicp_http_opts *o,
                      const struct aicp_http_req *req, struct curl_slist *headers,
                      struct curl_slist *resolve, const char *body, size_t body_len, int has_body,
                      struct sink *sink, char *errbuf)
{
    CURLcode r = CURLE_OK;
    struct curl_blob blob;

#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (r == CURLE_OK)                                                                         \
            r = curl_easy_setopt(c, opt, val);                                                     \
    } while (0)
    SET(CURLOPT_URL, req->url);
    SET(CURLOPT_ERRORBUFFER, errbuf);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_NETRC, (long)CURL_NETRC_IGNORED);
    SET(CURLOPT_PROXY, o->proxy != NULL ? o->proxy : "");
    SET(CURLOPT_NOPROXY, o->proxy != NULL ? "" : "*");
    SET(CURLOPT_USERAGENT, "aicp/" PACKAGE_VERSION);
    SET(CURLOPT_CONNECTTIMEOUT_MS,
        o->connect_timeout_ms > 0 ? o->connect_timeout_ms : DEF_CONNECT_TIMEOUT_MS);
    SET(CURLOPT_TIMEOUT_MS, o->timeout_ms > 0 ? o->timeout_ms : DEF_TIMEOUT_MS);
    SET(CURLOPT_SHARE, h->share);
    SET(CURLOPT_HTTPHEADER, headers);
    SET(CURLOPT_WRITEFUNCTION, write_cb);
    SET(CURLOPT_WRITEDATA, sink);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)sink->max);
    SET(CURLOPT_ACCEPT_ENCODING, "");
    if (resolve != NULL)
        SET(CURLOPT_RESOLVE, resolve);
    SET(CURLOPT_SSL_VERIFYPEER, o->insecure ? 0L : 1L);
    SET(CURLOPT_SSL_VERIFYHOST, o->insecure ? 0L : 2L);
    if (o->ca_pem != NULL || o->ca_file != NULL) {
        /* The configured CA replaces the system store, not adds to it. */
        SET(CURLOPT_CAPATH, (char *)NULL);
        if (o->ca_pem != NULL) {
            blob = (struct curl_blob){(void *)o->ca_pem, o->ca_pem_len, CURL_BLOB_COPY};
            SET(CURLOPT_CAINFO_BLOB, &blob);
        } else {
            SET(CURLOPT_CAINFO, o->ca_file);
        }
    }
    if (o->cert_pem != NULL) {
        blob = (struct curl_blob){(void *)o->cert_pem, o->cert_pem_len, CURL_BLOB_COPY};
        SET(CURLOPT_SSLCERT_BLOB, &blob);
        SET(CURLOPT_SSLCERTTYPE, "PEM");
    } else if (o->cert_file != NULL) {
        SET(CURLOPT_SSLCERT, o->cert_file);
    }
    if (o->key_pem != NULL) {
        blob = (struct curl_blob){(void *)o->key_pem, o->key_pem_len, CURL_BLOB_COPY};
        SET(CURLOPT_SSLKEY_BLOB, &blob);
        SET(CURLOPT_SSLKEYTYPE, "PEM");
    } else if (o->key_file != NULL) {
        SET(CURLOPT_SSLKEY, o->key_file);
    }
    if (strcmp(req->method, "GET") == 0 && !has_body) {
        SET(CURLOPT_HTTPGET, 1L);
    } else if (strcmp(req->method, "HEAD") == 0 && !has_body) {
        SET(CURLOPT_NOBODY, 1L);
    } else {
        if (has_body || strcmp(req->method, "POST") == 0) {
            SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
            SET(CURLOPT_POSTFIELDS, body != NULL ? body : "");
        }
        if (strcmp(req->method, "POST") != 0)
            SET(CURLOPT_CUSTOMREQUEST, req->method);
    }
#undef SET
    return r == CURLE_OK ? 0 : -1;
}

static char *dup_header(CURL *c, const char *name)
{
    struct curl_header *hd = NULL;

    if (curl_easy_header(c, name, 0, CURLH_HEADER, -1, &hd) != CURLHE_OK || hd == NULL)
        return NULL;
    return aicp_strdup(hd->value);
}

/* Seconds a Retry-After value asks for (delta-seconds or an HTTP date),
 * or -1 when absent or unreadable. */
static double retry_after_seconds(const char *v)
{
    char *end;
    double d;
    time_t t;

    if (v == NULL)
        return -1;
    while (*v == ' ' || *v == '\t')
        v++;
    if (isdigit((unsigned char)*v)) {
        errno = 0;
        d = strtod(v, &end);
        while (*end == ' ' || *end == '\t')
            end++;
        return (errno == 0 && *end == '\0' && isfinite(d)) ? d : -1;
    }
    t = curl_getdate(v, NULL);
    if (t == (time_t)-1)
        return -1;
    d = difftime(t, time(NULL));
    return d > 0 ? d : 0;
}

static int retryable_status(long status)
{
    return status == 429 || status == 502 || status == 503 || status == 504;
}

/* Errors where the request cannot have reached the server: safe to retry
 * whatever the method. */
static int never_sent(CURLcode r)
{
    return r == CURLE_COULDNT_CONNECT || r == CURLE_COULDNT_RESOLVE_HOST ||
           r == CURLE_COULDNT_RESOLVE_PROXY;
}

/* Errors after which an idempotent request may be sent again. */
static int transient(CURLcode r)
{
    return never_sent(r) || r == CURLE_SEND_ERROR || r == CURLE_RECV_ERROR ||
           r == CURLE_GOT_NOTHING || r == CURLE_PARTIAL_FILE || r == CURLE_OPERATION_TIMEDOUT ||
           r == CURLE_HTTP2 || r == CURLE_HTTP2_STREAM;
}

/* Appends a printable excerpt of a response body for an error message. */
static void excerpt(char *dst, size_t cap, const char *body, size_t len)
{
    size_t i, j = 0;
    int space = 0;

    for (i = 0; i < len && j + 4 < cap; i++) {
        unsigned char ch = (unsigned char)body[i];
        if (isspace(ch)) {
            space = j > 0;
            continue;
        }
        if (space)
            dst[j++] = ' ';
        space = 0;
        dst[j++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
        if (j >= EXCERPT_MAX) {
            i++;
            break;
        }
    }
    if (i < len && j + 4 <= cap) {
        memcpy(dst + j, "...", 3);
        j += 3;
    }
    dst[j] = '\0';
}

/* Turns a failed transfer into an error naming what to do about it. */
static int curl_error(CURLcode r, const char *errbuf, const struct sink *sink, const char *what,
                      const struct aicp_http_opts *o, struct aicp_err *err)
{
    const char *why = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(r);

    switch (r) {
    case CURLE_PEER_FAILED_VERIFICATION:
        return aicp_err_set(err, AICP_EHOSTKEY,
                            "%s: the server's TLS certificate was not trusted (%s); "
                            "give the CA that signed it with ca_file%s, or set "
                            "validate_certs: false to skip verification (insecure)",
                            what, why,
                            strstr(why, "name") != NULL
                                ? " and use the host name the certificate was issued for"
                                : "");
    case CURLE_SSL_CACERT_BADFILE:
        return aicp_err_set(err, AICP_EIO, "%s: cannot use ca_file %s: %s", what,
                            o->ca_file != NULL ? o->ca_file : "(in-memory CA)", why);
    case CURLE_SSL_CERTPROBLEM:
        return aicp_err_set(err, AICP_EIO, "%s: cannot use the client certificate: %s", what, why);
    case CURLE_OPERATION_TIMEDOUT:
        return aicp_err_set(err, AICP_ETIMEOUT, "%s: %s", what, why);
    case CURLE_WRITE_ERROR:
    case CURLE_FILESIZE_EXCEEDED:
        if (sink->too_big || r == CURLE_FILESIZE_EXCEEDED)
            return aicp_err_set(err, AICP_EREMOTE,
                                "%s: the response body exceeds the limit of %zu bytes", what,
                                sink->max);
        return aicp_err_set(err, AICP_ENOMEM, "%s: out of memory reading the response", what);
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return aicp_err_set(err, AICP_EINVAL, "%s: %s", what, why);
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
        return aicp_err_set(err, AICP_EUNREACHABLE, "%s: %s", what, why);
    default:
        return aicp_err_set(err, AICP_EREMOTE, "%s: %s", what, why);
    }
}

static int status_error(const struct aicp_http_resp *resp, const char *what, struct aicp_err *err)
{
    char ex[EXCERPT_MAX + 8];
    int code = AICP_EREMOTE;

    if (resp->status == 401 || resp->status == 403)
        code = AICP_EAUTH;
    else if (resp->status == 404)
        code = AICP_ENOTFOUND;
    excerpt(ex, sizeof ex, resp->body != NULL ? resp->body : "", resp->body_len);
    return aicp_err_set(err, code, "%s: HTTP %ld%s%s", what, resp->status,
                        ex[0] != '\0' ? ": " : "", ex);
}

/* One attempt: fills resp (status, body, headers) or returns the curl
 * error in *cr with its text in errbuf. */
static int attempt(struct aicp_http *h, const struct aicp_http_opts *o,
                   const struct aicp_http_req *req, struct curl_slist *headers,
                   struct curl_slist *resolve, const char *body, size_t body_len, int has_body,
                   struct aicp_http_resp *resp, CURLcode *cr, struct sink *sink, char *errbuf,
                   const char *what, struct aicp_err *err)
{
    CURL *c = curl_easy_init();
    char *ct = NULL;
    int rc = 0;

    *cr = CURLE_OK;
    errbuf[0] = '\0';
    if (c == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "%s: out of memory", what);
    if (setup_easy(c, h, o, req, headers, resolve, body, body_len, has_body, sink, errbuf) != 0) {
        rc = aicp_err_set(err, AICP_EINVAL,
                          "%s: libcurl refused an option (is it older than 7.85?)", what);
        goto out;
    }
    *cr = curl_easy_perform(c);
    if (*cr != CURLE_OK)
        goto out;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct != NULL &&
        (resp->content_type = aicp_strdup(ct)) == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "%s: out of memory", what);
        goto out;
    }
    resp->location = dup_header(c, "Location");
    resp->retry_after = dup_header(c, "Retry-After");
    resp->body_len = sink->body.len;
    resp->body = sink->body.len > 0 ? aicp_buf_steal(&sink->body) : NULL;
out:
    curl_easy_cleanup(c);
    return rc;
}

static int parse_body_json(struct aicp_http_resp *resp, const char *what, struct aicp_err *err)
{
    json_error_t je;

    if (resp->body == NULL)
        return aicp_err_set(err, AICP_EREMOTE, "%s: expected a JSON response, got an empty body",
                            what);
    resp->json = json_loadb(resp->body, resp->body_len, JSON_DECODE_ANY, &je);
    if (resp->json == NULL)
        return aicp_err_set(err, AICP_EREMOTE,
                            "%s: the response is not valid JSON: line %d column %d: %s", what,
                            je.line, je.column, je.text);
    return 0;
}

int aicp_http_request(struct aicp_http *h, const struct aicp_http_opts *opts,
                      const struct aicp_http_req *req, struct aicp_http_resp *resp,
                      struct aicp_err *err)
{
    static const struct aicp_http_opts zero;
    const struct aicp_http_opts *o = opts != NULL ? opts : &zero;
    struct curl_slist *headers = NULL, *resolve = NULL, *n;
    struct sink sink = {AICP_BUF_INIT, 0, 0};
    char errbuf[CURL_ERROR_SIZE];
    char *url = NULL, *what = NULL, *body = NULL;
    size_t body_len = 0;
    int has_body, max_attempts, may_retry, attempts = 0, rc = 0;
    double delay = 0, backoff, cap_after;
    const char *const *rp;
    CURLcode cr = CURLE_OK;
    struct aicp_buf wb = AICP_BUF_INIT;

    memset(resp, 0, sizeof *resp);
    if (req == NULL || req->url == NULL || !valid_method(req->method))
        return aicp_err_set(err, AICP_EINVAL, "http request: %s",
                            req == NULL || req->url == NULL ? "no URL" : "invalid method");
    url = aicp_http_redact_url(req->url);
    if (url == NULL || aicp_buf_printf(&wb, "%s %s", req->method, url) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "http request: out of memory");
        goto out;
    }
    what = aicp_buf_steal(&wb);
    if (strcmp(url, "<bad URL>") == 0) {
        rc = aicp_err_set(err, AICP_EINVAL, "%s: the URL does not parse", what);
        goto out;
    }
    if (req->json != NULL) {
        if ((body = json_dumps(req->json, JSON_COMPACT | JSON_ENCODE_ANY)) == NULL) {
            rc = aicp_err_set(err, AICP_EINVAL, "%s: cannot encode the JSON body", what);
            goto out;
        }
        body_len = strlen(body);
    }
    has_body = req->json != NULL || req->body != NULL;
    if ((rc = build_headers(&headers, o, req, has_body, err, what)) != 0)
        goto out;
    for (rp = o->resolve; rp != NULL && *rp != NULL; rp++) {
        if ((n = curl_slist_append(resolve, *rp)) == NULL) {
            rc = aicp_err_set(err, AICP_ENOMEM, "%s: out of memory", what);
            goto out;
        }
        resolve = n;
    }
    if (o->insecure && (rc = warn_insecure(h, req->url, o->insecure_why)) != 0) {
        rc = aicp_err_set(err, rc, "%s: out of memory", what);
        goto out;
    }
    max_attempts = o->max_attempts > 0 ? o->max_attempts : DEF_MAX_ATTEMPTS;
    may_retry = req->retry_unsafe || aicp_http_method_idempotent(req->method);
    backoff = o->backoff_initial_s > 0 ? o->backoff_initial_s : DEF_BACKOFF_INITIAL;
    cap_after = o->retry_after_max_s > 0 ? o->retry_after_max_s : DEF_RETRY_AFTER_MAX;
    sink.max = o->max_body > 0 ? o->max_body : DEF_MAX_BODY;
    for (;;) {
        double ra;
        int again;

        aicp_http_resp_free(resp);
        aicp_buf_free_secret(&sink.body);
        sink.too_big = 0;
        resp->attempts = ++attempts;
        rc = attempt(h, o, req, headers, resolve, req->json != NULL ? body : req->body,
                     req->json != NULL ? body_len : req->body_len, has_body, resp, &cr, &sink,
                     errbuf, what, err);
        if (rc != 0)
            goto out;
        if (cr != CURLE_OK)
            again = never_sent(cr) || (may_retry && transient(cr));
        else
            again = may_retry && retryable_status(resp->status);
        if (!again || resp->attempts >= max_attempts)
            break;
        delay = backoff;
        ra = cr == CURLE_OK ? retry_after_seconds(resp->retry_after) : -1;
        if (ra >= 0)
            delay = ra < cap_after ? ra : cap_after;
        backoff *= 2;
        if (backoff > (o->backoff_max_s > 0 ? o->backoff_max_s : DEF_BACKOFF_MAX))
            backoff = o->backoff_max_s > 0 ? o->backoff_max_s : DEF_BACKOFF_MAX;
        h->hooks.sleep(h->hooks.sleep_ud, delay);
    }
    if (cr != CURLE_OK) {
        resp->status = 0;
        rc = curl_error(cr, errbuf, &sink, what, o, err);
    } else if (resp->status >= 400) {
        if (req->parse_json && resp->body != NULL)
            resp->json = json_loadb(resp->body, resp->body_len, JSON_DECODE_ANY, NULL);
        rc = status_error(resp, what, err);
    } else if (req->parse_json && strcmp(req->method, "HEAD") != 0 && resp->status != 204) {
        rc = parse_body_json(resp, what, err);
    }
    if (rc != 0 && attempts > 1 && err != NULL) {
        char msg[sizeof err->msg];

        snprintf(msg, sizeof msg, "%s", err->msg);
        aicp_err_set(err, rc, "%s (after %d attempts)", msg, attempts);
    }
out:
    aicp_buf_free_secret(&sink.body);
    free_headers(headers);
    curl_slist_free_all(resolve);
    if (body != NULL)
        aicp_free_secret(body);
    free(url);
    free(what);
    return rc;
}
