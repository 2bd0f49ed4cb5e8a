/* Site files: a pod's desired state in YAML (docs/site.md), turned into a
 * graph of resources, each one call of a module (namespace, secret,
 * trident_backend, storage_class, pvc, k8s, k8s_job, helm_release, and the
 * ONTAP ones:
 * ontap_export_policy, ontap_volume, ontap_snapshot, ontap_clone,
 * ontap_snapmirror), and the commands that run that graph: `aicp apply`,
 * `aicp plan`, `aicp drift`.
 *
 * agent/site.c loads and validates a site (every value templated against
 * the site's vars, vars files and -e extra vars; every module call's
 * arguments validated; the dependency graph built and checked for cycles)
 * before anything is sent to a cluster (the graph in agent/site_graph.c;
 * --only and --limit in agent/site_select.c). agent/site_run.c runs the graph on
 * a bounded pool of worker threads with the executor's check -> diff ->
 * (apply -> verify) life cycle, prints the results and writes the reports.
 * agent/site_ontap.c maps the ONTAP sections onto their modules, adds their
 * dependencies to the graph and does drift's cross-layer pass (the ONTAP
 * volume behind each Trident PVC). agent/site_prov.c reads who last
 * changed a resource for the drift reports.
 */
#ifndef AICP_SITE_H
#define AICP_SITE_H

#include <stddef.h>
#include <stdio.h>
#include <jansson.h>

#include "yaml.h"

struct aicp_err;
struct aicp_kube;
struct aicp_module;
struct aicp_ontap_config;
struct aicp_ontap_pool;
struct aicp_secrets;
struct aicp_vault;

/* One resource of a site: one module call. */
struct aicp_site_res {
    const char *section;           /* "storage_classes", "trident.backends"... */
    const struct aicp_module *mod; /* the module that makes it */
    char *name;                    /* "ontap-ai-flexvols-retain"; for manifests "Kind/name" */
    char *ns;                      /* its namespace, or NULL (cluster-scoped) */
    char *id;                      /* "storage_class/ontap-ai-flexvols-retain",
                                    * "pvc/default/tensorflow-results" */
    char *label;                   /* what the output shows: "pvc default/tensorflow-results" */
    json_t *args;                  /* the module's arguments, rendered and validated */
    struct aicp_loc loc;           /* the entry in the site file (file owned by the srcmap) */
    size_t *deps;                  /* indexes of the resources it needs first */
    size_t ndeps;
    int secret;  /* a secret argument or value: diffs are hidden */
    char *ontap; /* ONTAP sections and Trident backends: the cluster (a key of
                  * the site's ontap section) it works on, or NULL */
    /* helm_releases' requires_default_storage_class: before the release
     * runs, exactly one StorageClass of the cluster must be the default. */
    int needs_default_sc;
};

struct aicp_site {
    char *name;       /* site: NAME (default: the file name without .yml) */
    char *path;       /* the site file */
    char *dir;        /* its directory: relative paths in the site start here */
    json_t *vars;     /* what templates see: vars < vars_files < extra vars */
    char *kubeconfig; /* kubernetes.kubeconfig (resolved against dir), or NULL */
    char *context;    /* kubernetes.context, or NULL */
    int force_conflicts; /* kubernetes.force_conflicts: server-side apply takes the fields
                          * other managers own (the k8s modules' force) */
    struct aicp_site_res *res;
    size_t nres;
    size_t *order; /* a topological order of res (dependencies first) */
    /* The ontap section, rendered: cluster name -> {management_lif,
     * username, password (secret), ca_file (resolved against dir),
     * validate_certs, https}. An object, maybe empty. */
    json_t *ontap;
    struct aicp_srcmap *map;
    /* inventory: the inventory files (resolved against dir), or NULL. */
    json_t *inventory;
    /* The cluster layer (kubernetes.version and its install keys): the
     * variables of the cluster playbooks, or NULL when the site installs
     * no cluster. agent/site_cluster.c. */
    json_t *cluster_vars;
    /* validation: the benchmarks of `aicp validate`, rendered, or NULL. */
    json_t *validation;
};

/* How a site is read. Everything is borrowed and may be NULL. */
struct aicp_site_load_opts {
    const json_t *extra_vars;       /* -e: an object; wins over everything */
    const struct aicp_vault *vault; /* opens vaulted files and !vault values */
    struct aicp_secrets *secrets;   /* vault plaintext and secret arguments are registered */
    /* Module lookup; NULL: the registry (aicp_module_find). Tests pass
     * their own modules. */
    const struct aicp_module *(*find_module)(const char *name);
};

/* Loads and validates a site file. Errors are AICP_EINVAL/AICP_EUNDEF (exit
 * 65) with "file:line:col: message" (unknown keys, sections not supported
 * yet, bad values, undefined variables, module argument errors, unknown
 * dependencies, cycles "dependency cycle: a -> b -> a"), AICP_EAUTH for a
 * vault no password opens. *out is owned by the caller. */
int aicp_site_load(struct aicp_site **out, const char *path, const struct aicp_site_load_opts *o,
                   struct aicp_err *err);
/* The same from memory (name stands for the file in messages; relative
 * paths start in the current directory). */
int aicp_site_load_string(struct aicp_site **out, const char *text, size_t len, const char *name,
                          const struct aicp_site_load_opts *o, struct aicp_err *err);
void aicp_site_free(struct aicp_site *s);

/* The resource with this id ("storage_class/x"), or also "section/x" and,
 * for namespaced resources, "kind/x" when only one has that name. -1 when
 * none. */
long aicp_site_find(const struct aicp_site *s, const char *id);

/* Which resources a run touches: --only KINDs (site sections such as
 * "storage_classes" or "trident", module names such as "pvc", the groups
 * "ontap" and "kubernetes", and "cross_layer", which selects no resource
 * but drift's cross-layer pass; an array of strings, NULL: all) and --limit GLOBs (fnmatch on a
 * resource's name, ns/name or id; NULL: all). selected[i] is set to 0 or 1. AICP_EUSAGE for an
 * --only word that names no section or module. */
int aicp_site_select(unsigned char *selected, const struct aicp_site *s, const json_t *only,
                     const json_t *limit, struct aicp_err *err);

/* 1 when drift's cross-layer pass is part of a run with this --only: no
 * --only, or one that lists cross_layer (or cross-layer). */
int aicp_site_only_cross(const json_t *only);

/* 1 when the cluster layer (SSH) is part of a run with this --only: no
 * --only, or one that lists cluster. */
int aicp_site_only_cluster(const json_t *only);

/* Splits "a,b" command-line lists into acc (an array; created when NULL). */
json_t *aicp_site_split_list(json_t *acc, const char *s);

/* What a run does. */
enum aicp_site_mode {
    AICP_SITE_APPLY = 0,
    AICP_SITE_PLAN,  /* check + diff */
    AICP_SITE_DRIFT, /* read-only: lists drifted resources and fields */
    AICP_SITE_VALIDATE, /* the validation benchmarks (agent/site_validate.c) */
};

struct aicp_site_run_opts {
    enum aicp_site_mode mode;
    int check; /* apply --check (plan and drift always are) */
    int diff;  /* show diffs (plan always does) */
    int verbose;
    int forks;                    /* worker threads; 0: 10 */
    int allow_replace;            /* --allow-replace */
    int force_conflicts;          /* --force-conflicts: force on every Kubernetes resource */
    const json_t *only;           /* --only, array or NULL */
    const json_t *limit;          /* --limit, array or NULL */
    const char *json_path;        /* --json FILE */
    const char *report_dir;       /* drift and validate --report DIR */
    const char *kubeconfig;       /* --kubeconfig: wins over the site's */
    const char *context;          /* --context: wins over the site's */
    struct aicp_secrets *secrets; /* masked in every output; borrowed */
    FILE *out;                    /* where results go; NULL: stdout */
    /* The cluster layer (SSH): */
    const char *const *inventories; /* -i: win over the site's inventory */
    size_t ninventories;
    const struct aicp_vault *vault; /* for the inventory's vaulted vars */
    int accept_new_host_keys;
    int teardown; /* --state absent: every resource removed, dependents first */
};

/* Runs the site's graph. Returns 0 when it ran, with *exit_status 0
 * (nothing changed / no drift), 2 (changed / would change / drift) or 1 (a
 * failure); negative before running (usage, I/O). */
int aicp_site_run(int *exit_status, struct aicp_site *s, const struct aicp_site_run_opts *o,
                  struct aicp_err *err);

/* ---- agent/site_cluster.c: the cluster layer --------------------------- */

/* What a site file's keys add to the graph: section key ("manifests",
 * "helm_releases", "nodes", "readiness") -> a list of entries written as a
 * user would write them, loaded after the file's own. */

/* The install keys of the rendered kubernetes mapping k (version,
 * control_plane, workers, gpu_workers, pod_network_cidr, service_cidr,
 * packages_version, container_runtime, cni, gpu, remove_nodes): sets
 * s->cluster_vars (NULL when k has no version) and, when the site names no
 * kubeconfig, s->kubeconfig to where the admin kubeconfig is fetched; adds
 * the CNI, GPU stack and node removals to synth. On AICP_EINVAL *bad names
 * the key at fault. */
int aicp_site_cluster_load(struct aicp_site *s, const json_t *k, json_t *synth, const char **bad,
                           struct aicp_err *err);

/* trident.version (rendered mapping t): the Trident operator as a Helm
 * release in namespace ns, with its readiness gate. */
int aicp_site_trident_load(const json_t *t, const char *ns, json_t *synth, const char **bad,
                           struct aicp_err *err);

/* A helm_releases entry's `ready` mapping: k8s_wait gates on the release's
 * Deployments, StatefulSets, DaemonSets and an optional URL, each depending
 * on the release (release_id). */
int aicp_site_ready_load(json_t *synth, const char *release_id, const char *release,
                         const char *ns, const json_t *ready, const char **bad,
                         struct aicp_err *err);

/* Writes text to a new file (O_EXCL, 0600): what the site commands hand to
 * the executor from their private temp directories. */
int aicp_site_write_private(const char *path, const char *text, struct aicp_err *err);

/* Runs the cluster playbooks (node preparation, GPU nodes, kubeadm init and
 * join) on the site's inventory, check mode when check. *exit_status as
 * aicp_run_playbook's. */
int aicp_site_cluster_run(int *exit_status, const struct aicp_site *s,
                          const struct aicp_site_run_opts *o, int check, struct aicp_err *err);

/* ---- agent/site_validate.c: `aicp validate` ------------------------------ */

/* One rendered validation entry (index i): known keys, types, where and
 * benchmark values. On AICP_EINVAL *bad names the key at fault (or NULL). */
int aicp_site_validation_check(const json_t *e, size_t i, const char **bad, struct aicp_err *err);

/* Runs the site's validation entries as `validate` tasks on their nodes
 * (bare) and on the jump host (kubernetes), prints a verdict per node and
 * run, and with o->report_dir writes the report files. *exit_status 0 when
 * every check passed, 1 otherwise. */
int aicp_site_validate_run(int *exit_status, struct aicp_site *s,
                           const struct aicp_site_run_opts *o, struct aicp_err *err);

/* `aicp apply|plan|drift SITE [options]`: argv[0] is the command. Returns
 * the exit status (0, 2, 1, 64 usage, 65 invalid input). */
int aicp_site_main(int argc, char **argv);

/* ---- between agent/site.c, site_run.c and site_ontap.c -------------------- */

/* 1 when the module is one of the ONTAP sections' (ontap_*). */
int aicp_site_ontap_module(const char *module);

/* Fills an ONTAP module call's connection arguments from a cluster of the
 * ontap section: hostname (its management_lif), username, password,
 * ca_file, validate_certs, https; only those the module takes and the
 * entry does not set itself. */
void aicp_site_ontap_conn(json_t *args, const json_t *cluster, const struct aicp_module *mod);

/* Names an ONTAP resource from its validated arguments: r->name (the
 * volume, snapshot, clone or policy name; a SnapMirror's destination
 * "svm:volume"), r->id ("ontap_volume/SVM/NAME",
 * "ontap_snapshot/SVM/VOLUME/NAME", "ontap_snapmirror/SVM:VOLUME") and
 * r->label. AICP_EINVAL (err unset: the caller says where) when the
 * arguments name nothing. */
int aicp_site_ontap_names(struct aicp_site_res *r, const json_t *args);

/* Adds the ONTAP dependencies to the graph: export policy -> volumes and
 * clones using it; volume -> its snapshots, clones and SnapMirror
 * relationships (source or destination); snapshot -> clones made from it;
 * ONTAP volume or clone -> the PVCs importing it; a SnapMirror whose state
 * is broken_off -> the PVCs importing its destination. */
int aicp_site_ontap_deps(struct aicp_site *s, struct aicp_err *err);

/* The client configuration of a cluster of the site (pointers borrowed
 * from s). AICP_EINVAL when the site has no such cluster. */
int aicp_site_ontap_config(struct aicp_ontap_config *cfg, const struct aicp_site *s,
                           const char *cluster, struct aicp_err *err);

/* Cross-layer drift. What the ONTAP volume behind PVC resource `pvc` should
 * look like: *want is a new object {"pvc", "volume", "svm", "cluster",
 * "backend", "size" (bytes, from the PVC's declared size), "export_policy"
 * and "snapshot_policy" (from the site's volume entry when the site
 * declares the volume, else from the backend's defaults.exportPolicy and
 * defaults.snapshotPolicy), or {"pvc", "skip": reason} when no volume can
 * be named. internal_name: the PV's spec.csi.volumeAttributes.internalName
 * (Trident's name of the volume) or NULL. */
int aicp_site_cross_want(json_t **want, const struct aicp_site *s, size_t pvc,
                         const char *internal_name);

/* Appends to findings what differs between want and the ONTAP volume
 * record vol (NULL: the volume is gone): {"what": "deleted" | "offline" |
 * "resized" | "re-exported" | "snapshot-policy", "field", "want", "have"}.
 * Fields the record lacks are not drift. Returns how many it appended. */
int aicp_site_cross_compare(json_t *findings, const json_t *want, const json_t *vol);

/* One PVC's cross-layer check, read-only: reads the claim and its PV from
 * Kubernetes, then the ONTAP volume through the backend's cluster. *entry
 * is a new object {"pvc", "id", "volume", "cluster", "status": "in_sync" |
 * "drifted" | "skipped", "findings": [...], "msg", "last_changed_by"}:
 * "skipped" with the reason in "msg" when the claim is not bound to a
 * Trident volume aicp can name (not checked; every PVC gets an entry);
 * "last_changed_by" ("site=NAME run=ID") when the volume's comment carries
 * aicp's stamp. A negative return (and err) when Kubernetes or ONTAP could
 * not be read. */
int aicp_site_cross_check(json_t **entry, const struct aicp_site *s, size_t pvc,
                          struct aicp_kube *k, struct aicp_ontap_pool *pool, struct aicp_err *err);

/* ---- agent/site_prov.c: who last changed it ---------------------------- */

struct aicp_kube_pool;

/* Who last changed an object through aicp, from its stamp: the ONTAP
 * comment's " [aicp site=NAME run=ID]" ending, a comment "aicp site=NAME
 * run=ID", or the Kubernetes annotation "site=NAME run=ID". Writes
 * "site=NAME run=ID" to buf; -1 when text carries no stamp. */
int aicp_site_provenance_of(char *buf, size_t cap, const char *text);

/* The aicp run that last changed a resource ("site=NAME run=ID", malloc'd,
 * or NULL): the module result's last_changed_by (the ONTAP modules read
 * their comment's stamp), else the comment of an ONTAP module's current
 * record ("record" or "snapshot"), else the aicp.io/provenance annotation
 * of the live objects of a Kubernetes module's check
 * (current.objects[].live). */
char *aicp_site_changed_by(const json_t *result, const json_t *current);

/* Adds "manager" to each drifted field ({object, path, ...} of fields)
 * that a field manager other than aicp owns, from the managedFields of the
 * object read again through pool (a Kubernetes module's results leave them
 * out). Best effort: a field nobody owns (removed) gets none; read errors
 * are ignored. */
void aicp_site_field_managers(json_t *fields, const json_t *current, struct aicp_kube_pool *pool);

#endif
