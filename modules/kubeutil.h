/* What the Kubernetes modules share: the connection arguments, and the
 * life cycle of "these objects should exist like this" on top of
 * agent/kube.h.
 *
 * A module's check() builds its desired manifests from its arguments and
 * hands them to aicp_ku_check, which reads each live object, computes the
 * drift on the declared fields (aicp_kube_drift), flags drift in immutable
 * fields as needing replacement, and validates a needed change with a
 * server-side dry run. aicp_ku_diff and aicp_ku_apply are usable as the
 * module's diff and apply ops as they are. */
#ifndef AICP_KUBEUTIL_H
#define AICP_KUBEUTIL_H

#include <jansson.h>

#include "kube.h"
#include "module.h"

/* The annotation every object aicp applies carries: "site=NAME run=ID" of
 * the run that last changed it. Never compared for drift. */
#define AICP_KU_PROVENANCE "aicp.io/provenance"

/* Every Kubernetes module's table starts with these. */
#define AICP_KU_CONN_ARGS                                                                          \
    {.name = "kubeconfig", .type = AICP_ARG_PATH, .local = 1,                                      \
     .help = "Kubeconfig file (default: $KUBECONFIG, else ~/.kube/config). --kubeconfig on the "   \
             "command line wins."},                                                                \
    {.name = "context", .type = AICP_ARG_STR,                                                      \
     .help = "Kubeconfig context (default: its current-context)."}

/* The client for this call, from the run's pool (ctx->kube). AICP_EINVAL
 * when the run has no Kubernetes pool. Borrowed. */
int aicp_ku_client(struct aicp_ctx *ctx, const struct aicp_args *args, struct aicp_kube **k,
                   struct aicp_err *err);

/* How one call's objects are handled. */
struct aicp_ku_opts {
    int absent;                   /* state: absent (delete them) */
    const char *const *immutable; /* dotted field paths (NULL-terminated) that the API
                                   * server refuses to change: drift there needs replace */
    int allow_replace;            /* delete and re-create when an immutable field drifts;
                                   * else the change fails saying replacement is needed */
    int force;                    /* server-side apply with force (take over fields) */
    const char *propagation;      /* delete propagationPolicy; NULL: Background, or
                                   * Foreground when replacing */
    const struct aicp_kube_wait *wait; /* after apply, for every object (may be NULL) */
};

/* Reads the live state of manifests (a JSON array of objects; stolen) and
 * builds *current:
 *   {"objects": [{"ref": "Kind/ns/name", "desired": {...}, "live": {...}|null,
 *                 "drift": [...], "replace": bool}],
 *    "opts": {...the options, for diff and apply...}}
 * With drift (and not absent), a dry-run apply checks that the server would
 * take the change (422 and friends fail here, in check mode too). */
int aicp_ku_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t *manifests,
                  const struct aicp_ku_opts *o, json_t **current, struct aicp_err *err);

/* needed when an object is missing (present), exists (absent) or drifted.
 * before/after hold only the drifted fields, keyed "Kind/ns/name" then by
 * field path, so --diff and `aicp drift` name exactly what differs. A
 * needed replacement that is not allowed fails here, naming the fields:
 * "StorageClass/x: parameters.backendType cannot be changed in place; the
 * object must be replaced (replace: true or --allow-replace)". */
int aicp_ku_diff(const json_t *current, const struct aicp_args *args, struct aicp_change **change,
                 struct aicp_err *err);

/* Applies (server-side apply), replaces (delete with Foreground, wait until
 * gone, apply) or deletes each object that needs it, then waits (opts
 * wait). Adds result keys: "objects" (the server's objects, secrets'
 * data removed). */
int aicp_ku_apply(struct aicp_ctx *ctx, const struct aicp_change *change, struct aicp_err *err);

/* Helpers for building manifests. */
/* {"apiVersion": av, "kind": kind, "metadata": {"name": name[, "namespace": ns]}} */
json_t *aicp_ku_manifest(const char *api_version, const char *kind, const char *ns,
                         const char *name);
/* Copies labels/annotations args (objects of strings) into metadata. */
int aicp_ku_set_meta(json_t *manifest, const struct aicp_args *args, struct aicp_err *err);

#endif
