/* The Kubernetes API client: kubeconfig, discovery, server-side apply,
 * get/list/delete, waits and pod logs, over the shared HTTPS client.
 *
 * One struct aicp_kube is one cluster as one user (a kubeconfig context).
 * It is shared by a run's worker threads: discovery is done once per run
 * (one round of requests: /api, /apis and the group versions that are
 * asked about, cached) so CRDs such as trident.netapp.io/v1
 * TridentBackendConfig need no code per kind.
 *
 * Retries: 429 waits at least Retry-After, 5xx and connection errors back
 * off (both in the HTTPS client); a 409 on a write is re-read and retried a
 * bounded number of times (5); any other 4xx fails with the API's own
 * message (Status.message). Errors name the object as kind/namespace/name.
 */
#ifndef AICP_KUBE_H
#define AICP_KUBE_H

#include <stddef.h>
#include <jansson.h>

struct aicp_err;
struct aicp_http;
struct aicp_kube;

/* Where the cluster is described. Pointers are borrowed. */
struct aicp_kube_config {
    const char *kubeconfig; /* a file; NULL: $KUBECONFIG (its first file), else ~/.kube/config */
    const char *context;    /* NULL: the kubeconfig's current-context */
};

/* Loads the kubeconfig (server, certificate-authority(-data),
 * client-certificate/key(-data), token, tokenFile, namespace,
 * insecure-skip-tls-verify: honoured only when the kubeconfig says so,
 * with a warning through the HTTPS client) and makes a client. Nothing is
 * sent yet. http is borrowed and must outlive *out. Errors: AICP_EINVAL
 * naming the kubeconfig file and what is wrong (no such context, no
 * server, unreadable file). Credentials are kept in memory only and wiped
 * by aicp_kube_free. */
int aicp_kube_new(struct aicp_kube **out, struct aicp_http *http,
                  const struct aicp_kube_config *cfg, struct aicp_err *err);
void aicp_kube_free(struct aicp_kube *k);

/* The server URL ("https://127.0.0.1:6443") and the context's default
 * namespace ("default" when the context names none). Borrowed. */
const char *aicp_kube_server(const struct aicp_kube *k);
const char *aicp_kube_default_namespace(const struct aicp_kube *k);

/* What discovery says about a kind. */
struct aicp_kube_resource {
    char group[128];   /* "" for the core group */
    char version[32];  /* "v1" */
    char kind[64];     /* "StorageClass" */
    char plural[64];   /* "storageclasses" */
    int namespaced;
    int has_status;    /* a status subresource exists */
};

/* Resolves apiVersion ("v1", "storage.k8s.io/v1") and kind. AICP_ENOTFOUND
 * when the server has no such kind ("the server has no kind
 * TridentBackendConfig in trident.netapp.io/v1: is the CRD installed?"). */
int aicp_kube_resolve(struct aicp_kube *k, const char *api_version, const char *kind,
                      struct aicp_kube_resource *out, struct aicp_err *err);

/* One object. namespace is ignored for cluster-scoped kinds and defaults
 * to the context's namespace for namespaced ones when NULL. */
struct aicp_kube_ref {
    const char *api_version;
    const char *kind;
    const char *namespace;
    const char *name;
};

/* Fills a ref from a manifest's apiVersion, kind, metadata.namespace and
 * metadata.name (borrowed from manifest). AICP_EINVAL when one of
 * apiVersion, kind, metadata.name is missing. */
int aicp_kube_ref_of(struct aicp_kube_ref *ref, const json_t *manifest, struct aicp_err *err);

/* GET. *obj is a new reference, or NULL (and 0 returned) when the object
 * does not exist. */
int aicp_kube_get(struct aicp_kube *k, const struct aicp_kube_ref *ref, json_t **obj,
                  struct aicp_err *err);

/* LIST of a kind, in one namespace (NULL: all namespaces, or
 * cluster-scoped), with an optional label selector ("app=x"). *items is a
 * new JSON array of the objects. */
int aicp_kube_list(struct aicp_kube *k, const char *api_version, const char *kind,
                   const char *namespace, const char *label_selector, json_t **items,
                   struct aicp_err *err);

enum aicp_kube_flags {
    AICP_KUBE_DRY_RUN = 1u << 0, /* ?dryRun=All: the server validates and defaults, stores nothing */
    AICP_KUBE_FORCE = 1u << 1,   /* server-side apply with force=true (take over fields) */
};

/* Server-side apply: PATCH application/apply-patch+yaml (the manifest as
 * JSON, which is YAML), fieldManager=aicp. Creates or updates. *result (may
 * be NULL) is the object the server returned, a new reference. An SSA
 * conflict (409 with field conflicts) is not retried: it fails naming the
 * fields and their manager, unless AICP_KUBE_FORCE. Other 409s are retried
 * (re-read, re-apply) up to 5 times. 422 fails with the API's message. */
int aicp_kube_apply(struct aicp_kube *k, const json_t *manifest, unsigned flags, json_t **result,
                    struct aicp_err *err);

/* aicp_kube_apply, telling field conflicts apart. When another field
 * manager owns fields the manifest sets to other values (and
 * AICP_KUBE_FORCE is not given), it fails with AICP_EREMOTE naming the
 * object, each field, its manager and how to take them over, and
 * *conflicts (may be NULL) is a new array of {"field": ".data.x",
 * "manager": "kubectl-patch", "operation": "Update"|"Apply"}; otherwise
 * *conflicts is NULL. Conflicts only with aicp's own earlier writes
 * (managers named aicp*, e.g. a merge patch of "aicp" recorded as an
 * Update) are no one else's: the apply is sent again with force. */
int aicp_kube_apply_report(struct aicp_kube *k, const json_t *manifest, unsigned flags,
                           json_t **result, json_t **conflicts, struct aicp_err *err);

/* The field conflicts of a 409 Status from server-side apply (causes of
 * reason FieldManagerConflict), as aicp_kube_apply_report gives them; NULL
 * when status is no such answer. New reference. */
json_t *aicp_kube_conflicts_of(const json_t *status);
/* 1 when every conflict's manager is aicp's own (its name starts "aicp"). */
int aicp_kube_conflicts_own(const json_t *conflicts);
/* 1 when a drift path ("metadata.annotations[a.b/c]") and a conflict's
 * field (".metadata.annotations.a.b/c") are the same field or one holds
 * the other. */
int aicp_kube_path_overlaps(const char *drift_path, const char *api_field);

/* PATCH with a JSON merge patch (application/merge-patch+json), for
 * fields aicp does not own: e.g. clearing the default-class annotation of
 * another tool's StorageClass. A patch that carries
 * metadata.resourceVersion is refused (409) when someone wrote in between:
 * the object is read again and the patch sent with the new version, at
 * most 5 times, so that a decision made on what was read is never applied
 * to something else. *result may be NULL. */
int aicp_kube_merge_patch(struct aicp_kube *k, const struct aicp_kube_ref *ref, const json_t *patch,
                          unsigned flags, json_t **result, struct aicp_err *err);

/* Read-modify-write with PUT, for changes that must build on the current
 * object (no lost update): GETs the object, calls mutate on it (return 0,
 * or an AICP_E* code with err set), PUTs it with the resourceVersion just
 * read; a 409 (someone wrote in between) starts over from a fresh GET, at
 * most 5 times. AICP_ENOTFOUND when the object does not exist. *result
 * (may be NULL) is the server's answer, a new reference. */
int aicp_kube_update(struct aicp_kube *k, const struct aicp_kube_ref *ref,
                     int (*mutate)(json_t *obj, void *ud, struct aicp_err *err), void *ud,
                     unsigned flags, json_t **result, struct aicp_err *err);

/* DELETE with propagationPolicy (NULL: "Background"; "Foreground",
 * "Orphan"). 0 when the object was already gone (*existed = 0; existed may
 * be NULL). With wait_s > 0, polls until the object is gone or the time is
 * up (AICP_ETIMEOUT). */
int aicp_kube_delete(struct aicp_kube *k, const struct aicp_kube_ref *ref,
                     const char *propagation, unsigned flags, double wait_s, int *existed,
                     struct aicp_err *err);

/* What to wait for on one object. Either a condition (type, status: "True"
 * by default) in status.conditions, or a field (dotted path, "status.phase")
 * equal to value; both when both are set. fail_* (optional): a condition
 * or field value that means it will never get there (a Job's Failed
 * condition): AICP_EFAILED at once, naming it and its message. */
struct aicp_kube_wait {
    const char *condition;        /* "Complete", "Ready", or NULL */
    const char *condition_status; /* NULL: "True" */
    const char *field;            /* "status.phase", or NULL */
    const char *value;            /* "Bound" */
    const char *fail_condition;   /* "Failed", or NULL */
    const char *fail_field;       /* "status.lastOperationStatus" */
    const char *fail_value;       /* "Failed" */
    double timeout_s;             /* 0: 300 */
    double interval_s;            /* 0: 1, growing to 5 */
};

/* Polls until w is met. *obj (may be NULL) is the last object read, a new
 * reference. AICP_ETIMEOUT says what was last seen ("status.phase is
 * Pending after 300 s"); AICP_ENOTFOUND when the object disappears. */
int aicp_kube_wait(struct aicp_kube *k, const struct aicp_kube_ref *ref,
                   const struct aicp_kube_wait *w, json_t **obj, struct aicp_err *err);


/* Evicts a pod the way `kubectl drain` does: POST of a policy/v1 Eviction
 * to pods/NAME/eviction, so that PodDisruptionBudgets are honoured (with
 * AICP_KUBE_DRY_RUN: ?dryRun=All). *status (may be NULL) is the answer's
 * HTTP status (0 when none came): 201 evicted; 404 the pod does not exist
 * (AICP_ENOTFOUND); 429 a disruption budget refuses it now (AICP_EREMOTE,
 * with the API's message: "Cannot evict pod as it would violate the pod's
 * disruption budget."). A refusal is not retried here: waiting it out is
 * the caller's (it knows its deadline). */
int aicp_kube_evict(struct aicp_kube *k, const char *namespace, const char *pod, unsigned flags,
                    long *status, struct aicp_err *err);

/* A dotted path into an object: "status.phase", "metadata.annotations.x"
 * (an annotation key with dots: "metadata.annotations[storageclass.kubernetes.io/is-default-class]").
 * Borrowed; NULL when absent. */
const json_t *aicp_kube_field(const json_t *obj, const char *path);

/* A pod's log (container NULL: the only one), whole. *text is malloc'd. */
int aicp_kube_logs(struct aicp_kube *k, const char *namespace, const char *pod,
                   const char *container, char **text, struct aicp_err *err);
/* The same, only its last tail_lines lines (tailLines; 0: whole). */
int aicp_kube_logs_tail(struct aicp_kube *k, const char *namespace, const char *pod,
                        const char *container, long tail_lines, char **text,
                        struct aicp_err *err);

/* Drift of live against desired, on the fields desired declares only (so a
 * field the server defaulted never counts). Objects are compared key by
 * key; lists of objects that all have a "name" are matched by name (as
 * server-side apply merges containers, env, ports); lists of scalars must
 * be equal as a whole; other lists must have the same length and order,
 * each element compared on its declared fields (so a server-filled
 * default inside an unnamed element is not drift), and are reported whole. Status and server-owned metadata (uid, resourceVersion,
 * generation, creationTimestamp, managedFields) are never compared.
 * *fields is a new array of {"path": "spec.x[name].y", "want": ..,
 * "have": .. (absent when missing)}; empty when in sync. */
int aicp_kube_drift(const json_t *desired, const json_t *live, json_t **fields);

/* Clients shared by a run, one per (kubeconfig, context): modules ask the
 * pool, so one run talks to a cluster through one client and one discovery
 * cache. The defaults come from the command line (--kubeconfig,
 * --context) and win over what a module's arguments or a site file say. */
struct aicp_kube_pool;

int aicp_kube_pool_new(struct aicp_kube_pool **out, struct aicp_http *http,
                       const struct aicp_kube_config *cli);
void aicp_kube_pool_free(struct aicp_kube_pool *p);
/* *out is borrowed from the pool. kubeconfig/context as a module or site
 * file names them (NULL: the defaults). Thread-safe. */
int aicp_kube_pool_get(struct aicp_kube_pool *p, const char *kubeconfig, const char *context,
                       struct aicp_kube **out, struct aicp_err *err);

#endif
