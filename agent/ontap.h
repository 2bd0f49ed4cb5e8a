/* The ONTAP REST API client, over the shared HTTPS client (agent/http.h).
 *
 * One struct aicp_ontap is one cluster as one user. It is shared by a run's
 * worker threads. The cluster's version is read once (GET /api/cluster) on
 * first use and cached.
 *
 * Conventions of the API it hides:
 *   - collections answer {"records": [...], "num_records": n}; a lookup by
 *     name is a collection GET with query filters and fields=;
 *   - POST/PATCH/DELETE may answer 202 with {"job": {"uuid": ...}}: the job
 *     is polled at /api/cluster/jobs/{uuid} with bounded backoff until its
 *     state is success or failure; a job that vanished (404) is reported as
 *     AICP_ENOTFOUND so the caller re-reads the resource and decides from
 *     its state (never assumes success);
 *   - an error body {"error": {"message", "code", "target"}} is shown as
 *     ONTAP wrote it: "POST /api/storage/volumes: ONTAP error 917927: <message>";
 *   - "temporarily locked" / busy errors (codes listed in ontap.c) are
 *     retried a bounded number of times (5) with backoff.
 */
#ifndef AICP_ONTAP_H
#define AICP_ONTAP_H

#include <stddef.h>
#include <jansson.h>

struct aicp_err;
struct aicp_http;
struct aicp_ontap;

/* How to reach a cluster. Pointers are borrowed for aicp_ontap_new, which
 * copies them (the password into memory it wipes). */
struct aicp_ontap_config {
    const char *hostname;  /* management LIF: "10.61.218.100", "cluster1:8443" */
    const char *username;
    const char *password;  /* secret */
    const char *cert_file; /* client certificate auth instead of a password */
    const char *key_file;
    const char *ca_file;   /* CA for the cluster's certificate; NULL: system store */
    int validate_certs;    /* 1 unless the site/module says false (a warning then) */
    int use_http;          /* plain http (tests only; refused unless asked) */
};

int aicp_ontap_new(struct aicp_ontap **out, struct aicp_http *http,
                   const struct aicp_ontap_config *cfg, struct aicp_err *err);
/* Wipes the credentials. NULL is fine. */
void aicp_ontap_free(struct aicp_ontap *o);

/* "10.61.218.100" as configured: for messages and keys. Borrowed. */
const char *aicp_ontap_host(const struct aicp_ontap *o);

/* The cluster's version as {generation, major, minor} (9.8.0 -> 9, 8, 0),
 * read once. */
int aicp_ontap_version(struct aicp_ontap *o, int *generation, int *major, int *minor,
                       struct aicp_err *err);
/* 0 when the cluster is at least gen.major; else AICP_EINVAL with
 * "ONTAP 9.7 does not support <what> (needs 9.8 or later)". */
int aicp_ontap_require(struct aicp_ontap *o, int generation, int major, const char *what,
                       struct aicp_err *err);

/* A query: "name=vol1&svm.name=svm1". Values are URL-escaped by the
 * caller with aicp_ontap_qadd, which appends "key=value" (escaped) to b. */
struct aicp_buf;
int aicp_ontap_qadd(struct aicp_buf *b, const char *key, const char *value);

/* GET a collection: path ("/api/storage/volumes"), query (may be NULL),
 * fields ("name,uuid,size,space.*" or NULL). *records is a new array. */
int aicp_ontap_list(struct aicp_ontap *o, const char *path, const char *query,
                    const char *fields, json_t **records, struct aicp_err *err);

/* GET one record by query: *record is NULL (and 0 returned) when there is
 * none; more than one is AICP_EINVAL naming the query ("2 volumes match
 * name=vol1: give svm"). what names the kind for messages ("volume"). */
int aicp_ontap_get_one(struct aicp_ontap *o, const char *path, const char *query,
                       const char *fields, const char *what, json_t **record,
                       struct aicp_err *err);

/* GET a path that is one object (/api/cluster, /api/storage/volumes/UUID).
 * *obj NULL and 0 when 404. */
int aicp_ontap_get(struct aicp_ontap *o, const char *path, const char *fields, json_t **obj,
                   struct aicp_err *err);

/* POST/PATCH/DELETE with return_timeout=30 (so short jobs answer at once;
 * a query that carries its own return_timeout keeps it),
 * then the job, if any, is waited for (timeout_s, 0: 600). *result (may be
 * NULL) is the response body (POST: the created record when ONTAP returns
 * it with return_records=true) or the finished job. Errors: the ONTAP
 * message verbatim; AICP_ETIMEOUT when the job is still running; a job
 * that failed: AICP_EREMOTE with its message and code; a vanished job:
 * AICP_ENOTFOUND ("job UUID vanished: re-read the resource"). */
int aicp_ontap_call(struct aicp_ontap *o, const char *method, const char *path,
                    const char *query, const json_t *body, double timeout_s, json_t **result,
                    struct aicp_err *err);

/* How the client waits between job polls and busy retries. Default:
 * nanosleep. Tests install one that records (and shortens) the waits; the
 * HTTPS client's own retries use its hooks. fn NULL: the default. */
typedef void (*aicp_ontap_sleep_fn)(void *ud, double seconds);
void aicp_ontap_set_sleep(struct aicp_ontap *o, aicp_ontap_sleep_fn fn, void *ud);

/* Clients shared by a run, one per (hostname, username). The site engine
 * and modules ask the pool; credentials are copied in once. Thread-safe. */
struct aicp_ontap_pool;

int aicp_ontap_pool_new(struct aicp_ontap_pool **out, struct aicp_http *http);
void aicp_ontap_pool_free(struct aicp_ontap_pool *p);
/* *out borrowed from the pool. A second config for the same hostname and
 * username reuses the first client. */
int aicp_ontap_pool_get(struct aicp_ontap_pool *p, const struct aicp_ontap_config *cfg,
                        struct aicp_ontap **out, struct aicp_err *err);

/* ---- normalisation: what ONTAP returns vs what a site writes ---------- */

/* "100GB", "1.5TB", "10Ti", "1073741824", 1073741824 -> bytes. ONTAP's
 * units are binary (KB = 1024, as the netapp.ontap collection reads them);
 * "Ki/Mi/Gi/Ti/Pi" too. -1 when not a size. */
long long aicp_ontap_size(const json_t *v);
/* Enum values compared the way ONTAP treats them: case-insensitive, '-'
 * and '_' equal. */
int aicp_ontap_enum_eq(const char *a, const char *b);

#endif
