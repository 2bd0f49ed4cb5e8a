/* The HTTPS client every API module (Kubernetes, ONTAP REST) calls through:
 * one libcurl request with TLS verified by default, in-memory credentials,
 * bounded response bodies, optional JSON parsing, and retries with backoff
 * on 429/502/503/504 and connection errors for requests that are safe to
 * repeat. Errors name the method, the URL (userinfo stripped) and the
 * reason, and never carry a credential.
 *
 * Two objects: a struct aicp_http per run (hangs off the run's context and
 * is shared by every worker thread) holds what must be shared: the hooks,
 * the set of endpoints already warned about for validate_certs: false, and
 * the connection cache. A struct aicp_http_opts per target (one kubeconfig
 * user/cluster, one ONTAP cluster) says how to reach and authenticate to it;
 * it is borrowed for the duration of each call. */
#ifndef AICP_HTTP_H
#define AICP_HTTP_H

#include <stddef.h>
#include <jansson.h>

struct aicp_err;
struct aicp_http;

/* Called with a complete one-line message (no trailing newline), e.g. the
 * validate_certs: false warning. Default: the line and "\n" to stderr. */
typedef void (*aicp_http_warn_fn)(void *ud, const char *msg);
/* Sleeps between attempts. Default: nanosleep. Tests record instead. */
typedef void (*aicp_http_sleep_fn)(void *ud, double seconds);

struct aicp_http_hooks {
    aicp_http_warn_fn warn;
    void *warn_ud;
    aicp_http_sleep_fn sleep;
    void *sleep_ud;
};

/* How to reach one target. Every pointer is borrowed and may be NULL; a
 * zeroed struct means: verify against the system CA store, no auth, the
 * default limits below. Secrets (marked) stay the caller's: the client
 * copies them only into buffers it wipes, never onto an argv, a file or a
 * message; free them with aicp_free_secret. */
struct aicp_http_opts {
    /* validate_certs: false. Off only when asked; warns once per
     * scheme://host:port per aicp_http. */
    int insecure;
    /* What asked for it, for the warning (e.g. "insecure-skip-tls-verify
     * in the kubeconfig"); NULL: "validate_certs: false". */
    const char *insecure_why;
    const char *ca_file; /* PEM bundle path replacing the system store */
    const void *ca_pem;  /* or in-memory PEM (certificate-authority-data) */
    size_t ca_pem_len;
    /* Client certificate for mutual TLS: in-memory PEM (kubeconfig
     * client-certificate-data / client-key-data) or file paths. */
    const void *cert_pem;
    size_t cert_pem_len;
    const void *key_pem; /* secret */
    size_t key_pem_len;
    const char *cert_file;
    const char *key_file;
    const char *bearer_token; /* secret: "Authorization: Bearer ..." */
    const char *username;     /* basic auth, with password */
    const char *password;     /* secret */
    /* Proxy URL. NULL: no proxy at all, whatever http(s)_proxy says. */
    const char *proxy;
    /* "HOST:PORT:ADDRESS" entries (curl's --resolve), NULL-terminated:
     * connect HOST to ADDRESS while verifying the certificate for HOST. */
    const char *const *resolve;
    long connect_timeout_ms;  /* 0: 10 s */
    long timeout_ms;          /* whole attempt; 0: 60 s */
    int max_attempts;         /* 0: 4; 1 means no retries */
    double backoff_initial_s; /* 0: 0.5 s, doubling per retry */
    double backoff_max_s;     /* 0: 30 s */
    double retry_after_max_s; /* cap on a server's Retry-After; 0: 60 s */
    size_t max_body;          /* response body limit; 0: 16 MiB */
};

struct aicp_http_req {
    const char *method; /* "GET", "POST", "PATCH", ... */
    const char *url;
    const char *const *headers; /* "Name: value" entries, NULL-terminated */
    const json_t *json;         /* body as JSON (Content-Type defaults to
                                   application/json) */
    const void *body;           /* or a raw body, when json is NULL */
    size_t body_len;
    int parse_json; /* parse the response into resp->json */
    /* Retry POST/PATCH too: the caller knows the request is idempotent
     * (e.g. a server-side apply PATCH). GET, HEAD, PUT, DELETE and OPTIONS
     * always may be retried. */
    int retry_unsafe;
};

struct aicp_http_resp {
    long status; /* 0 when no response arrived */
    char *body;  /* NUL-terminated; NULL when empty */
    size_t body_len;
    char *content_type; /* NULL when absent */
    char *location;
    char *retry_after;
    json_t *json; /* new reference; with parse_json */
    int attempts; /* requests sent, retries included */
};

/* Creates the per-run client. hooks may be NULL (stderr, nanosleep); it is
 * copied. */
int aicp_http_new(struct aicp_http **out, const struct aicp_http_hooks *hooks,
                  struct aicp_err *err);
/* NULL is fine. */
void aicp_http_free(struct aicp_http *h);

/* Sends req to the target that opts describes, retrying as the header
 * comment says, and fills resp (zero it first; free with
 * aicp_http_resp_free, also after an error). Returns 0 for a 1xx-3xx
 * answer (redirects are returned, never followed: Location says where).
 * For 4xx/5xx it still fills resp (status, body, json when parse_json and
 * the body parses) and returns AICP_EAUTH (401, 403), AICP_ENOTFOUND (404)
 * or AICP_EREMOTE, with "METHOD URL: HTTP 404: <body excerpt>". Other
 * failures: AICP_EHOSTKEY (certificate not trusted / wrong host name),
 * AICP_EUNREACHABLE, AICP_ETIMEOUT, AICP_EREMOTE (body too large, JSON that
 * does not parse), AICP_EINVAL (bad method, URL or options), AICP_EIO
 * (unreadable ca_file or client cert). Thread-safe for one h. */
int aicp_http_request(struct aicp_http *h, const struct aicp_http_opts *opts,
                      const struct aicp_http_req *req, struct aicp_http_resp *resp,
                      struct aicp_err *err);

/* Releases what resp holds and zeroes it. NULL is fine. */
void aicp_http_resp_free(struct aicp_http_resp *resp);

/* Writes url without userinfo ("https://u:p@h/x" -> "https://h/x") into a
 * new string for messages; a URL that does not parse becomes "<bad URL>".
 * NULL only on allocation failure. */
char *aicp_http_redact_url(const char *url);

/* 1 for methods that are safe to send twice (GET HEAD PUT DELETE OPTIONS). */
int aicp_http_method_idempotent(const char *method);

#endif
