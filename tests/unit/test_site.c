/* Site files without a cluster: parsing, the mapping of entries to module
 * calls (Kubernetes and ONTAP, with the ONTAP cluster's connection
 * arguments), validation errors with file:line:col, unknown keys and
 * sections not supported yet, the dependency graph (order, cycles, the
 * ONTAP -> Kubernetes edges), --only / --limit, and the comparison behind
 * drift's cross-layer pass. The modules are stand-ins with the argument
 * tables of the real ones, so nothing here needs a server. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "module.h"
#include "secret.h"
#include "site.h"

#define CONN                                                                                       \
    {.name = "kubeconfig", .type = AICP_ARG_PATH},                                                 \
    {                                                                                              \
        .name = "context", .type = AICP_ARG_STR                                                    \
    }

static const struct aicp_arg_spec ns_args[] = {
    CONN,
    {.name = "name", .type = AICP_ARG_STR, .required = 1},
    {.name = "labels", .type = AICP_ARG_DICT},
    {.name = "state", .type = AICP_ARG_STR, .def = "present"},
    {0}};
static const struct aicp_arg_spec secret_args[] = {
    CONN,
    {.name = "name", .type = AICP_ARG_STR, .required = 1},
    {.name = "namespace", .type = AICP_ARG_STR},
    {.name = "data", .type = AICP_ARG_DICT, .secret = 1},
    {.name = "string_data", .type = AICP_ARG_DICT, .secret = 1},
    {0}};
static const struct aicp_arg_spec backend_args[] = {
    CONN,
    {.name = "name", .type = AICP_ARG_STR, .required = 1},
    {.name = "namespace", .type = AICP_ARG_STR},
    {.name = "driver",
     .type = AICP_ARG_STR,
     .required = 1,
     .choices = "ontap-nas|ontap-nas-flexgroup"},
    {.name = "management_lif", .type = AICP_ARG_STR, .required = 1},
    {.name = "data_lif", .type = AICP_ARG_STR},
    {.name = "svm", .type = AICP_ARG_STR},
    {.name = "username", .type = AICP_ARG_STR},
    {.name = "password", .type = AICP_ARG_STR, .secret = 1},
    {.name = "credentials_secret", .type = AICP_ARG_STR},
    {.name = "storage_prefix", .type = AICP_ARG_STR},
    {.name = "defaults", .type = AICP_ARG_DICT},
    {.name = "replace", .type = AICP_ARG_BOOL},
    {0}};
static const struct aicp_arg_spec sc_args[] = {
    CONN,
    {.name = "name", .type = AICP_ARG_STR, .required = 1},
    {.name = "backend_type", .type = AICP_ARG_STR},
    {.name = "storage_pools", .type = AICP_ARG_STR},
    {.name = "reclaim_policy", .type = AICP_ARG_STR, .choices = "Retain|Delete"},
    {.name = "default", .type = AICP_ARG_BOOL},
    {.name = "replace", .type = AICP_ARG_BOOL},
    {0}};
static const struct aicp_arg_spec pvc_args[] = {
    CONN,
    {.name = "name", .type = AICP_ARG_STR, .required = 1},
    {.name = "namespace", .type = AICP_ARG_STR},
    {.name = "size", .type = AICP_ARG_STR},
    {.name = "access_modes", .type = AICP_ARG_LIST},
    {.name = "storage_class", .type = AICP_ARG_STR},
    {.name = "import_volume", .type = AICP_ARG_STR},
    {.name = "import_backend", .type = AICP_ARG_STR},
    {.name = "import_no_rename", .type = AICP_ARG_BOOL},
    {.name = "not_managed", .type = AICP_ARG_BOOL},
    {.name = "trident_namespace", .type = AICP_ARG_STR},
    {0}};
static const struct aicp_arg_spec k8s_args[] = {CONN,
                                                {.name = "definition", .type = AICP_ARG_RAW},
                                                {.name = "src", .type = AICP_ARG_PATH},
                                                {.name = "state", .type = AICP_ARG_STR},
                                                {0}};
static const struct aicp_arg_spec job_args[] = {
    CONN,
    {.name = "name", .type = AICP_ARG_STR, .required = 1},
    {.name = "namespace", .type = AICP_ARG_STR},
    {.name = "image", .type = AICP_ARG_STR},
    {.name = "volumes", .type = AICP_ARG_LIST},
    {0}};

#define OCONN                                                                                      \
    {.name = "hostname", .type = AICP_ARG_STR, .required = 1},                                     \
        {.name = "username", .type = AICP_ARG_STR, .aliases = "user"},                             \
        {.name = "password", .type = AICP_ARG_STR, .secret = 1, .credential = 1, .aliases = "pass"},  \
        {.name = "ca_file", .type = AICP_ARG_PATH, .local = 1},                                    \
        {.name = "validate_certs", .type = AICP_ARG_BOOL, .def = "yes"},                           \
    {                                                                                              \
        .name = "https", .type = AICP_ARG_BOOL, .def = "yes"                                       \
    }

static const struct aicp_arg_spec ep_args[] = {
    OCONN,
    {.name = "name", .type = AICP_ARG_STR, .required = 1},
    {.name = "vserver", .type = AICP_ARG_STR, .required = 1, .aliases = "svm"},
    {.name = "rules", .type = AICP_ARG_LIST},
    {0}};
static const struct aicp_arg_spec vol_args[] = {
    OCONN,
    {.name = "name", .type = AICP_ARG_STR, .required = 1},
    {.name = "vserver", .type = AICP_ARG_STR, .required = 1, .aliases = "svm"},
    {.name = "style", .type = AICP_ARG_STR, .choices = "flexvol|flexgroup"},
    {.name = "aggr_list", .type = AICP_ARG_LIST},
    {.name = "aggr_list_multiplier", .type = AICP_ARG_INT},
    {.name = "size", .type = AICP_ARG_STR},
    {.name = "volume_security_style", .type = AICP_ARG_STR},
    {.name = "unix_permissions", .type = AICP_ARG_STR},
    {.name = "comment", .type = AICP_ARG_STR},
    {.name = "is_online", .type = AICP_ARG_BOOL, .def = "yes"},
    {.name = "export_policy", .type = AICP_ARG_STR, .aliases = "policy"},
    {.name = "snapshot_policy", .type = AICP_ARG_STR},
    {.name = "junction_path", .type = AICP_ARG_STR},
    {0}};
static const struct aicp_arg_spec snap_args[] = {
    OCONN,
    {.name = "snapshot", .type = AICP_ARG_STR, .required = 1, .aliases = "name"},
    {.name = "volume", .type = AICP_ARG_STR, .required = 1},
    {.name = "vserver", .type = AICP_ARG_STR, .required = 1, .aliases = "svm"},
    {.name = "comment", .type = AICP_ARG_STR},
    {.name = "snapmirror_label", .type = AICP_ARG_STR},
    {0}};
static const struct aicp_arg_spec clone_args[] = {
    OCONN,
    {.name = "name", .type = AICP_ARG_STR, .required = 1},
    {.name = "vserver", .type = AICP_ARG_STR, .required = 1, .aliases = "svm"},
    {.name = "parent_volume", .type = AICP_ARG_STR},
    {.name = "parent_snapshot", .type = AICP_ARG_STR},
    {.name = "parent_vserver", .type = AICP_ARG_STR},
    {.name = "junction_path", .type = AICP_ARG_STR},
    {0}};
static const struct aicp_arg_spec sm_args[] = {
    OCONN,
    {.name = "source_endpoint", .type = AICP_ARG_DICT},
    {.name = "destination_endpoint", .type = AICP_ARG_DICT},
    {.name = "source_path", .type = AICP_ARG_STR},
    {.name = "destination_path", .type = AICP_ARG_STR},
    {.name = "source_vserver", .type = AICP_ARG_STR},
    {.name = "source_volume", .type = AICP_ARG_STR},
    {.name = "destination_vserver", .type = AICP_ARG_STR},
    {.name = "destination_volume", .type = AICP_ARG_STR},
    {.name = "policy", .type = AICP_ARG_STR},
    {.name = "create_destination", .type = AICP_ARG_DICT},
    {.name = "state",
     .type = AICP_ARG_STR,
     .def = "present",
     .choices = "present|absent|snapmirrored|paused|broken_off"},
    {0}};

/* helm_release's table as modules/helm_release.c has it. */
static const struct aicp_arg_spec helm_args[] = {
    {.name = "name", .type = AICP_ARG_STR, .required = 1, .aliases = "release_name"},
    {.name = "chart_ref", .type = AICP_ARG_STR, .aliases = "chart"},
    {.name = "chart_version", .type = AICP_ARG_STR},
    {.name = "chart_repo_url", .type = AICP_ARG_STR},
    {.name = "release_namespace", .type = AICP_ARG_STR, .required = 1, .aliases = "namespace"},
    {.name = "create_namespace", .type = AICP_ARG_BOOL, .def = "no"},
    {.name = "values", .type = AICP_ARG_DICT},
    {.name = "values_files", .type = AICP_ARG_LIST},
    {.name = "state", .type = AICP_ARG_STR, .def = "present", .choices = "present|absent"},
    {.name = "wait", .type = AICP_ARG_BOOL, .def = "no"},
    {.name = "wait_timeout", .type = AICP_ARG_STR},
    {.name = "atomic", .type = AICP_ARG_BOOL, .def = "no"},
    {.name = "binary_path", .type = AICP_ARG_PATH, .def = "helm"},
    {.name = "kubeconfig", .type = AICP_ARG_PATH, .aliases = "kubeconfig_path"},
    {.name = "context", .type = AICP_ARG_STR, .aliases = "kube_context"},
    {0}};

/* k8s_wait's and k8s_node's tables, the arguments the site gives them. */
static const struct aicp_arg_spec wait_args[] = {
    {.name = "kind", .type = AICP_ARG_STR, .def = "Deployment"},
    {.name = "namespace", .type = AICP_ARG_STR},
    {.name = "name", .type = AICP_ARG_STR},
    {.name = "names", .type = AICP_ARG_LIST},
    {.name = "timeout", .type = AICP_ARG_INT},
    {.name = "url", .type = AICP_ARG_STR},
    {.name = "ca_file", .type = AICP_ARG_PATH},
    {.name = "validate_certs", .type = AICP_ARG_BOOL},
    {.name = "kubeconfig", .type = AICP_ARG_PATH},
    {.name = "context", .type = AICP_ARG_STR},
    {0}};
static const struct aicp_arg_spec node_args[] = {
    {.name = "name", .type = AICP_ARG_STR, .required = 1},
    {.name = "state", .type = AICP_ARG_STR, .def = "present",
     .choices = "present|cordoned|drained|absent"},
    {.name = "kubeconfig", .type = AICP_ARG_PATH},
    {.name = "context", .type = AICP_ARG_STR},
    {0}};

static const struct aicp_module mods[] = {
    {.name = "k8s_wait", .args = wait_args, .flags = AICP_MOD_NEEDS_KUBE},
    {.name = "k8s_node", .args = node_args, .flags = AICP_MOD_NEEDS_KUBE},
    {.name = "ontap_export_policy", .args = ep_args, .flags = AICP_MOD_NEEDS_ONTAP},
    {.name = "ontap_volume", .args = vol_args, .flags = AICP_MOD_NEEDS_ONTAP},
    {.name = "ontap_snapshot", .args = snap_args, .flags = AICP_MOD_NEEDS_ONTAP},
    {.name = "ontap_clone", .args = clone_args, .flags = AICP_MOD_NEEDS_ONTAP},
    {.name = "ontap_snapmirror", .args = sm_args, .flags = AICP_MOD_NEEDS_ONTAP},
    {.name = "namespace", .args = ns_args, .flags = AICP_MOD_NEEDS_KUBE},
    {.name = "secret", .args = secret_args, .flags = AICP_MOD_NEEDS_KUBE},
    {.name = "trident_backend", .args = backend_args, .flags = AICP_MOD_NEEDS_KUBE},
    {.name = "storage_class", .args = sc_args, .flags = AICP_MOD_NEEDS_KUBE},
    {.name = "pvc", .args = pvc_args, .flags = AICP_MOD_NEEDS_KUBE},
    {.name = "k8s", .args = k8s_args, .flags = AICP_MOD_NEEDS_KUBE},
    {.name = "k8s_job", .args = job_args, .flags = AICP_MOD_NEEDS_KUBE},
    {.name = "helm_release", .args = helm_args},
};

static const struct aicp_module *find(const char *name)
{
    for (size_t i = 0; i < sizeof(mods) / sizeof(mods[0]); i++)
        if (strcmp(mods[i].name, name) == 0)
            return &mods[i];
    return NULL;
}

static struct aicp_secrets *secrets;

static int load_ev(struct aicp_site **s, const char *text, json_t *extra, struct aicp_err *err)
{
    struct aicp_site_load_opts o = {.find_module = find, .secrets = secrets, .extra_vars = extra};
    memset(err, 0, sizeof(*err));
    return aicp_site_load_string(s, text, strlen(text), "site.yml", &o, err);
}

static int load(struct aicp_site **s, const char *text, struct aicp_err *err)
{
    json_t *ev = json_pack("{s:s}", "vault_ontap_password", "s3cret-pw");
    int rc = load_ev(s, text, ev, err);
    json_decref(ev);
    return rc;
}

/* Position in the topological order. */
static size_t pos(const struct aicp_site *s, const char *id)
{
    long i = aicp_site_find(s, id);
    assert_true(i >= 0);
    for (size_t k = 0; k < s->nres; k++)
        if (s->order[k] == (size_t)i)
            return k;
    fail();
    return 0;
}

static int depends(const struct aicp_site *s, const char *a, const char *b)
{
    long i = aicp_site_find(s, a), j = aicp_site_find(s, b);
    assert_true(i >= 0 && j >= 0);
    for (size_t d = 0; d < s->res[i].ndeps; d++)
        if (s->res[i].deps[d] == (size_t)j)
            return 1;
    return 0;
}

static const char *POD =
    "site: pod\n"
    "ontap:\n"
    "  aff-a220: {management_lif: 10.61.218.100, username: admin,\n"
    "             password: \"{{ vault_ontap_password }}\"}\n"
    "trident:\n"
    "  backends:\n"
    "    - {name: fg1, driver: ontap-nas-flexgroup, ontap: aff-a220, svm: s, data_lif: 1.1.1.1}\n"
    "    - {name: fg2, driver: ontap-nas-flexgroup, ontap: aff-a220, svm: s}\n"
    "    - {name: fv, driver: ontap-nas, ontap: aff-a220, svm: s}\n"
    "namespaces: [trident, jobs]\n"
    "storage_classes:\n"
    "  - {name: fg1-retain, backend_type: ontap-nas-flexgroup, storage_pools: 'fg1:.*'}\n"
    "  - {name: fg-any, backend_type: ontap-nas-flexgroup}\n"
    "  - {name: fv-retain, backend_type: ontap-nas, reclaim_policy: Retain, default: true}\n"
    "pvcs:\n"
    "  - name: imp\n"
    "    size: 10Ti\n"
    "    access_modes: [ReadOnlyMany]\n"
    "    storage_class: fg1-retain\n"
    "    import: {volume: pb_fg_all, backend: fg2, no_rename: true, not_managed: yes}\n"
    "  - {name: results, namespace: jobs, size: 1Ti, access_modes: ReadWriteMany}\n"
    "jobs:\n"
    "  - name: train\n"
    "    namespace: jobs\n"
    "    image: tf\n"
    "    volumes: [{name: r, persistentVolumeClaim: {claimName: results}}]\n"
    "manifests:\n"
    "  - {apiVersion: v1, kind: ConfigMap, metadata: {name: cfg, namespace: jobs}, data: {a: b}}\n";

static void t_pod(void **state)
{
    (void)state;
    struct aicp_site *s = NULL;
    struct aicp_err err;
    assert_int_equal(load(&s, POD, &err), 0);
    assert_string_equal(s->name, "pod");
    assert_int_equal(s->nres, 12);
    long b = aicp_site_find(s, "trident_backend/trident/fg1");
    assert_true(b >= 0);
    const json_t *a = s->res[b].args;
    /* ontap: brings the cluster's LIF and credentials; the namespace is trident's. */
    assert_string_equal(json_string_value(json_object_get(a, "management_lif")), "10.61.218.100");
    assert_string_equal(json_string_value(json_object_get(a, "password")), "s3cret-pw");
    assert_string_equal(json_string_value(json_object_get(a, "namespace")), "trident");
    assert_null(json_object_get(a, "ontap"));
    assert_true(s->res[b].secret);
    assert_true(aicp_secrets_found(secrets, "x s3cret-pw", 11));
    /* import: {...} becomes the module's import_* arguments. */
    long p = aicp_site_find(s, "pvc/imp");
    assert_true(p >= 0);
    assert_string_equal(s->res[p].id, "pvc/default/imp");
    assert_string_equal(s->res[p].label, "pvc default/imp");
    assert_string_equal(json_string_value(json_object_get(s->res[p].args, "import_volume")),
                        "pb_fg_all");
    assert_true(json_is_true(json_object_get(s->res[p].args, "import_no_rename")));
    assert_true(json_is_true(json_object_get(s->res[p].args, "not_managed")));
    assert_string_equal(json_string_value(json_object_get(s->res[p].args, "trident_namespace")),
                        "trident");
    /* Raw manifests are k8s calls named Kind/name. */
    long m = aicp_site_find(s, "k8s/jobs/ConfigMap/cfg");
    assert_true(m >= 0);
    assert_string_equal(s->res[m].label, "k8s jobs/ConfigMap/cfg");
    assert_non_null(json_object_get(s->res[m].args, "definition"));
    /* Positions: the entry's line. */
    assert_int_equal(s->res[p].loc.line, 16);
    aicp_site_free(s);
}

static void t_graph(void **state)
{
    (void)state;
    struct aicp_site *s = NULL;
    struct aicp_err err;
    assert_int_equal(load(&s, POD, &err), 0);
    /* namespace -> everything in it */
    assert_true(depends(s, "trident_backend/fg1", "namespace/trident"));
    assert_true(depends(s, "pvc/results", "namespace/jobs"));
    assert_true(depends(s, "k8s_job/train", "namespace/jobs"));
    assert_true(depends(s, "k8s/jobs/ConfigMap/cfg", "namespace/jobs"));
    /* storagePools name the backend: only that one */
    assert_true(depends(s, "storage_class/fg1-retain", "trident_backend/fg1"));
    assert_false(depends(s, "storage_class/fg1-retain", "trident_backend/fg2"));
    /* backendType: every backend of that driver */
    assert_true(depends(s, "storage_class/fg-any", "trident_backend/fg1"));
    assert_true(depends(s, "storage_class/fg-any", "trident_backend/fg2"));
    assert_false(depends(s, "storage_class/fg-any", "trident_backend/fv"));
    assert_true(depends(s, "storage_class/fv-retain", "trident_backend/fv"));
    /* PVC -> its class (or the default one), import -> its backend */
    assert_true(depends(s, "pvc/imp", "storage_class/fg1-retain"));
    assert_true(depends(s, "pvc/imp", "trident_backend/fg2"));
    assert_true(depends(s, "pvc/results", "storage_class/fv-retain"));
    /* a job -> the PVCs it mounts */
    assert_true(depends(s, "k8s_job/train", "pvc/results"));
    assert_false(depends(s, "k8s_job/train", "pvc/imp"));
    /* and the order honours all of it */
    assert_true(pos(s, "namespace/trident") < pos(s, "trident_backend/fg1"));
    assert_true(pos(s, "trident_backend/fg2") < pos(s, "storage_class/fg-any"));
    assert_true(pos(s, "storage_class/fg1-retain") < pos(s, "pvc/imp"));
    assert_true(pos(s, "trident_backend/fg2") < pos(s, "pvc/imp"));
    assert_true(pos(s, "pvc/results") < pos(s, "k8s_job/train"));
    aicp_site_free(s);
}

static void t_secret_dep(void **state)
{
    (void)state;
    struct aicp_site *s = NULL;
    struct aicp_err err;
    assert_int_equal(load(&s,
                          "secrets:\n"
                          "  - {name: creds, namespace: trident, string_data: {password: pw-xyz}}\n"
                          "trident:\n"
                          "  backends:\n"
                          "    - {name: b, driver: ontap-nas, management_lif: 1.2.3.4, "
                          "credentials_secret: creds}\n",
                          &err),
                     0);
    assert_true(depends(s, "trident_backend/b", "secret/creds"));
    assert_true(s->res[aicp_site_find(s, "secret/creds")].secret);
    assert_true(aicp_secrets_found(secrets, "pw-xyz", 6));
    aicp_site_free(s);
}

static void t_cycle(void **state)
{
    (void)state;
    struct aicp_site *s = NULL;
    struct aicp_err err;
    int rc = load(&s,
                  "namespaces:\n"
                  "  - {name: a, depends_on: [namespace/b]}\n"
                  "  - {name: b, depends_on: [namespace/c]}\n"
                  "  - {name: c, depends_on: [namespace/a]}\n"
                  "  - {name: d}\n",
                  &err);
    assert_int_equal(rc, AICP_EINVAL);
    assert_null(s);
    assert_non_null(strstr(err.msg, "site.yml:2:"));
    assert_non_null(strstr(
        err.msg, "dependency cycle: namespace/a -> namespace/b -> namespace/c -> namespace/a"));
    rc = load(&s, "namespaces:\n  - {name: a, depends_on: namespace/a}\n", &err);
    assert_int_equal(rc, AICP_EINVAL);
    assert_non_null(strstr(err.msg, "dependency cycle"));
    rc = load(&s, "namespaces:\n  - {name: a, depends_on: [pvc/nope]}\n", &err);
    assert_int_equal(rc, AICP_EINVAL);
    assert_non_null(strstr(err.msg, "site.yml:2:28: depends_on: no resource 'pvc/nope'"));
}

struct bad {
    const char *text;
    int code;
    const char *want;
};

static void t_errors(void **state)
{
    (void)state;
    static const struct bad cases[] = {
        {"site: x\nfrobnicate: yes please\n", AICP_EINVAL,
         "site.yml:2:13: unknown key 'frobnicate' at the top"},
        {"site: x\nvalidation:\n  - {benchmark: resnet50}\n", AICP_EINVAL,
         "site.yml:3:5: a validation entry needs nodes: a host pattern or a list of hosts"},
        {"validation:\n  - {nodes: dgx, expected_images_per_sec: 1, wher: bare}\n", AICP_EINVAL,
         "site.yml:2:52: unknown key 'wher' in a validation entry"},
        {"validation:\n  - {nodes: dgx, expected_images_per_sec: 1, where: moon}\n", AICP_EINVAL,
         "site.yml:2:53: where must be bare, kubernetes or both"},
        {"validation:\n  - {nodes: dgx, benchmark: mnist, min_images_per_sec: 1}\n", AICP_EINVAL,
         "site.yml:2:29: benchmark must be trainbench"},
        {"validation:\n  - {nodes: dgx}\n", AICP_EINVAL,
         "site.yml:2:5: validation entry 1 says no expected throughput"},
        {"validation: {nodes: dgx}\n", AICP_EINVAL,
         "site.yml:1:13: validation must be a list of benchmarks"},
        {"volumes:\n  - {name: v, vserver: s}\n", AICP_EINVAL,
         "site.yml:2:5: missing required arguments: hostname"},
        {"ontap:\n  a: {management_lif: 1.1.1.1}\n  b: {management_lif: 2.2.2.2}\n"
         "volumes:\n  - {name: v, vserver: s}\n",
         AICP_EINVAL, "site.yml:5:5: name the ONTAP cluster with ontap:"},
        {"ontap:\n  a: {management_lif: 1.1.1.1}\nvolumes:\n  - {name: v, vserver: s, ontap: b}\n",
         AICP_EINVAL, "site.yml:4:34: no ONTAP cluster 'b' in the ontap section (it names: a)"},
        {"ontap:\n  a: {management_lif: 1.1.1.1}\nvolumes:\n  - {name: v, vserver: s, sise: 1Ti}\n",
         AICP_EINVAL, "site.yml:4:33: unknown key 'sise' in a volumes entry"},
        {"ontap:\n  a: {management_lif: 1.1.1.1}\nsnapshots:\n  - {volume: v, vserver: s}\n",
         AICP_EINVAL, "site.yml:4:5: "},
        {"ontap:\n  a: {management_lif: 1.1.1.1}\nsnapmirror:\n  - {source_path: \"s:v\"}\n",
         AICP_EINVAL, "site.yml:4:5: snapmirror entry has no name"},
        {"ontap:\n  a: {management_lif: 1.1.1.1}\nvolumes:\n  - {name: v, vserver: s}\n"
         "  - {name: v, svm: s}\n",
         AICP_EINVAL, "ontap_volume/s/v is declared twice"},
        {"ontap:\n  a: {management_lif: 1.1.1.1, ca_file: [x]}\n", AICP_EINVAL,
         "site.yml:2:41: ontap.a.ca_file must be a file name"},
        {"helm_releases:\n  - {name: a, chart: c/a, verison: \"1\"}\n", AICP_EINVAL,
         "site.yml:2:36: unknown key 'verison' in a helm_releases entry"},
        {"helm_releases:\n  - {name: a, chart: c/a, version: \"1\", chart_version: \"2\"}\n",
         AICP_EINVAL, "site.yml:2:36: give version or chart_version, not both"},
        {"helm_releases:\n  - {name: a, chart: c/a, requires_default_storage_class: maybe}\n",
         AICP_EINVAL, "site.yml:2:59: requires_default_storage_class must be true or false"},
        {"helm_releases:\n  - {name: a, chart: c/a, depends_on: [pvc/nope]}\n", AICP_EINVAL,
         "site.yml:2:40: depends_on: no resource 'pvc/nope' in this site"},
        {"helm_releases:\n  - {name: a, chart: c/a, state: gone}\n", AICP_EINVAL, "site.yml:2:5: "},
        {"storage_classes:\n  - {name: a, backend_type: ontap-nas, default: true}\n"
         "  - {name: b, backend_type: ontap-nas, default: true}\n",
         AICP_EINVAL, "site.yml:3:5: storage class 'b' is default: true, and so is 'a'"},
        {"inventory: {a: b}\n", AICP_EINVAL,
         "site.yml:1:12: inventory must be an inventory file or a list of them"},
        {"kubernetes: {version: \"1.18\"}\n", AICP_EINVAL,
         "site.yml:1:23: kubernetes.version must be a Kubernetes version such as v1.29.3"},
        {"kubernetes: {workers: w}\n", AICP_EINVAL,
         "site.yml:1:23: kubernetes.workers is a cluster install setting: it needs "
         "kubernetes.version"},
        {"kubernetes: {version: v1.29.3, workers: \"a:b\"}\n", AICP_EINVAL,
         "site.yml:1:41: kubernetes.workers must name an inventory group"},
        {"kubernetes:\n  version: v1.29.3\n  gpu: {stack: cuda}\n", AICP_EINVAL,
         "site.yml:3:8: kubernetes.gpu.stack must be device-plugin, gpu-operator or none"},
        {"kubernetes:\n  version: v1.29.3\n  gpu: {stak: none}\n", AICP_EINVAL,
         "site.yml:3:8: unknown key 'stak' in kubernetes.gpu"},
        {"kubernetes:\n  version: v1.29.3\n  gpu: {serial: 0}\n", AICP_EINVAL,
         "site.yml:3:8: kubernetes.gpu.serial must be a number of nodes (1 or more) or a "
         "percentage such as \"25%\""},
        {"kubernetes:\n  version: v1.29.3\n  gpu: {serial: \"half\"}\n", AICP_EINVAL,
         "site.yml:3:8: kubernetes.gpu.serial must be a number of nodes"},
        {"kubernetes:\n  version: v1.29.3\n  gpu: {serial: \"150%\"}\n", AICP_EINVAL,
         "site.yml:3:8: kubernetes.gpu.serial must be a number of nodes"},
        {"kubernetes:\n  version: v1.29.3\n  cni: {manifest: a.yml, chart: c/c}\n", AICP_EINVAL,
         "site.yml:3:8: kubernetes.cni needs a manifest (a file) or a chart, and not both"},
        {"kubernetes:\n  version: v1.29.3\n  remove_nodes: dgx4\n", AICP_EINVAL,
         "site.yml:3:17: kubernetes.remove_nodes must be a list"},
        {"helm_releases:\n  - {name: a, chart: c/a, ready: {deploymnts: all}}\n", AICP_EINVAL,
         "site.yml:2:34: unknown key 'deploymnts' in ready"},
        {"helm_releases:\n  - {name: a, chart: c/a, ready: {deployments: some}}\n", AICP_EINVAL,
         "site.yml:2:34: ready.deployments must be a list of names, or all"},
        {"kubernetes: {kubeconfig: k, contxt: c}\n", AICP_EINVAL,
         "site.yml:1:37: unknown key 'contxt' in kubernetes"},
        {"trident: {version: [21]}\n", AICP_EINVAL,
         "site.yml:1:20: trident.version must be a version such as 23.07.1"},
        {"storage_classes:\n  - name: a\n    backend_typ: ontap-nas\n", AICP_EINVAL,
         "site.yml:3:18: unknown key 'backend_typ' in a storage_classes entry"},
        {"storage_classes:\n  - name: a\n    reclaim_policy: Keep\n", AICP_EINVAL,
         "site.yml:2:5: "},
        {"pvcs:\n  - {name: p, size: \"{{ nope }}\"}\n", AICP_EUNDEF, "site.yml:2:"},
        {"pvcs:\n  - {size: 1Gi}\n", AICP_EINVAL, "site.yml:2:5: "},
        {"pvcs: {name: p}\n", AICP_EINVAL, "site.yml:1:7: pvcs must be a list"},
        {"trident:\n  backends:\n    - {name: b, driver: ontap-nas, ontap: nope}\n", AICP_EINVAL,
         "site.yml:3:43: no ONTAP cluster 'nope' in the ontap section"},
        {"ontap:\n  c1: {management_lif: 1.2.3.4, pasword: x}\n", AICP_EINVAL,
         "site.yml:2:42: unknown key 'pasword' in ontap.c1"},
        {"namespaces: [a, a]\n", AICP_EINVAL, "namespace/a is declared twice"},
        {"- a\n- b\n", AICP_EINVAL, "site.yml:1:1: a site file is a mapping"},
        {"", AICP_EINVAL, "the site file is empty"},
        {"site: [\n", AICP_EINVAL, "site.yml:"},
        {"storage_classes:\n  - {name: a, backend: nope}\n", AICP_EINVAL,
         "site.yml:2:24: backend: no trident backend 'nope'"},
        {"pvcs:\n  - {name: p, import: {volume: v, backnd: b}}\n", AICP_EINVAL,
         "site.yml:2:43: unknown key 'backnd' in import"},
        {"vars_files: [does-not-exist.yml]\n", AICP_EINVAL, "site.yml:1:14: cannot read vars file"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct aicp_site *s = NULL;
        struct aicp_err err;
        int rc = load(&s, cases[i].text, &err);
        if (rc != cases[i].code || strstr(err.msg, cases[i].want) == NULL)
            fail_msg("case %zu: rc %d, message '%s', wanted %d '%s'", i, rc, err.msg, cases[i].code,
                     cases[i].want);
        assert_null(s);
    }
}

static void t_vars(void **state)
{
    (void)state;
    struct aicp_site *s = NULL;
    struct aicp_err err;
    const char *text =
        "site: v\n"
        "vars: {cls: fast, size: 1Gi, ns: \"{{ team }}-ns\", team: red}\n"
        "pvcs:\n  - {name: \"p-{{ cls }}\", namespace: \"{{ ns }}\", size: \"{{ size }}\"}\n";
    json_t *ev = json_pack("{s:s}", "size", "5Gi");
    assert_int_equal(load_ev(&s, text, ev, &err), 0);
    json_decref(ev);
    assert_int_equal(s->nres, 1);
    assert_string_equal(s->res[0].name, "p-fast");
    assert_string_equal(s->res[0].ns, "red-ns");
    /* -e wins over vars */
    assert_string_equal(json_string_value(json_object_get(s->res[0].args, "size")), "5Gi");
    aicp_site_free(s);
}

static void t_select(void **state)
{
    (void)state;
    struct aicp_site *s = NULL;
    struct aicp_err err;
    unsigned char sel[32];
    assert_int_equal(load(&s, POD, &err), 0);
    json_t *only = aicp_site_split_list(NULL, "storage_classes, pvc");
    assert_int_equal(aicp_site_select(sel, s, only, NULL, &err), 0);
    size_t n = 0;
    for (size_t i = 0; i < s->nres; i++) {
        n += sel[i];
        const char *m = s->res[i].mod->name;
        assert_int_equal(sel[i], strcmp(m, "storage_class") == 0 || strcmp(m, "pvc") == 0);
    }
    assert_int_equal(n, 5);
    json_t *limit = aicp_site_split_list(NULL, "fg*");
    assert_int_equal(aicp_site_select(sel, s, only, limit, &err), 0);
    for (size_t i = 0; i < s->nres; i++)
        assert_int_equal(sel[i], strncmp(s->res[i].name, "fg", 2) == 0 &&
                                     strcmp(s->res[i].mod->name, "storage_class") == 0);
    json_decref(only);
    /* --only trident is the backends; --limit matches ns/name and ids too */
    only = aicp_site_split_list(NULL, "trident");
    json_decref(limit);
    limit = aicp_site_split_list(NULL, "trident/fv,fg1");
    assert_int_equal(aicp_site_select(sel, s, only, limit, &err), 0);
    assert_int_equal(sel[aicp_site_find(s, "trident_backend/fv")], 1);
    assert_int_equal(sel[aicp_site_find(s, "trident_backend/fg1")], 1);
    assert_int_equal(sel[aicp_site_find(s, "trident_backend/fg2")], 0);
    json_decref(limit);
    limit = aicp_site_split_list(NULL, "pvc/jobs/*");
    assert_int_equal(aicp_site_select(sel, s, NULL, limit, &err), 0);
    for (size_t i = 0; i < s->nres; i++)
        assert_int_equal(sel[i], strcmp(s->res[i].id, "pvc/jobs/results") == 0);
    json_decref(only);
    only = aicp_site_split_list(NULL, "helm_release");
    assert_int_equal(aicp_site_select(sel, s, only, NULL, &err), 0);
    for (size_t i = 0; i < s->nres; i++)
        assert_int_equal(sel[i], 0); /* the pod has no releases */
    json_decref(only);
    only = aicp_site_split_list(NULL, "inventory");
    assert_int_equal(aicp_site_select(sel, s, only, NULL, &err), AICP_EUSAGE);
    assert_non_null(strstr(err.msg, "--only 'inventory'"));
    json_decref(only);
    /* a --limit pattern that matches no resource is a typo, not a clean run */
    json_t *typo = aicp_site_split_list(NULL, "fg*,nomatch");
    assert_int_equal(aicp_site_select(sel, s, NULL, typo, &err), AICP_EUSAGE);
    assert_non_null(strstr(err.msg, "--limit 'nomatch' matches no resource"));
    json_decref(typo);
    /* kubernetes: every section but ONTAP's; cross_layer selects none */
    only = aicp_site_split_list(NULL, "kubernetes");
    assert_int_equal(aicp_site_select(sel, s, only, NULL, &err), 0);
    for (size_t i = 0; i < s->nres; i++)
        assert_int_equal(sel[i], 1);
    assert_false(aicp_site_only_cross(only));
    json_decref(only);
    only = aicp_site_split_list(NULL, "cross-layer");
    assert_int_equal(aicp_site_select(sel, s, only, NULL, &err), 0);
    for (size_t i = 0; i < s->nres; i++)
        assert_int_equal(sel[i], 0);
    assert_true(aicp_site_only_cross(only));
    assert_true(aicp_site_only_cross(NULL));
    json_decref(only);
    json_decref(limit);
    aicp_site_free(s);
}

static const char *STORAGE =
    "site: st\n"
    "ontap:\n"
    "  c1: {management_lif: 10.0.0.1, username: admin, password: \"{{ vault_ontap_password }}\",\n"
    "       ca_file: certs/ca.pem, validate_certs: true, https: yes}\n"
    "trident:\n"
    "  backends:\n"
    "    - {name: fg, driver: ontap-nas-flexgroup, ontap: c1, svm: nfs}\n"
    "    - {name: dr, driver: ontap-nas, ontap: c1, svm: svm_dr}\n"
    "export_policies:\n"
    "  - {name: ai, vserver: nfs, rules: [{clients: [10.1.0.0/16]}]}\n"
    "volumes:\n"
    "  - {name: data, svm: nfs, style: flexgroup, size: 10TB, policy: ai,\n"
    "     snapshot_policy: none}\n"
    "  - {name: other, vserver: nfs, export_policy: default}\n"
    "snapshots:\n"
    "  - {snapshot: base, volume: data, vserver: nfs}\n"
    "  - {name: base, volume: other, vserver: nfs}\n"
    "clones:\n"
    "  - {name: ws, vserver: nfs, parent_volume: data, parent_snapshot: base}\n"
    "snapmirror:\n"
    "  - {source_path: \"nfs:data\", destination_path: \"svm_dr:data_dr\",\n"
    "     create_destination: {enabled: true}, state: broken_off}\n"
    "  - {source_endpoint: {path: \"nfs:other\"}, destination_vserver: svm_dr,\n"
    "     destination_volume: other_dr, state: snapmirrored}\n"
    "storage_classes:\n"
    "  - {name: fg-sc, backend_type: ontap-nas-flexgroup}\n"
    "  - {name: dr-sc, backend_type: ontap-nas}\n"
    "pvcs:\n"
    "  - {name: data, size: 10Ti, storage_class: fg-sc,\n"
    "     import: {volume: data, backend: fg, no_rename: true}}\n"
    "  - {name: ws, size: 10Ti, storage_class: fg-sc, import: {volume: ws, backend: fg}}\n"
    "  - {name: dr, size: 10Ti, storage_class: dr-sc, import: {volume: data_dr, backend: dr}}\n"
    "  - {name: dr2, size: 1Ti, storage_class: dr-sc, import: {volume: other_dr, backend: dr}}\n"
    "  - {name: fresh, size: 1Ti, storage_class: dr-sc}\n";

static const json_t *arg(const struct aicp_site *s, const char *id, const char *k)
{
    long i = aicp_site_find(s, id);
    if (i < 0)
        fail_msg("no %s", id);
    return json_object_get(s->res[i].args, k);
}

/* ONTAP entries become module calls with their cluster's connection. */
static void t_ontap(void **state)
{
    (void)state;
    struct aicp_site *s = NULL;
    struct aicp_err err;
    struct aicp_site_load_opts o = {.find_module = find, .secrets = secrets};
    json_t *ev = json_pack("{s:s}", "vault_ontap_password", "ontap-pw-42");
    o.extra_vars = ev;
    memset(&err, 0, sizeof(err));
    int rc = aicp_site_load_string(&s, STORAGE, strlen(STORAGE), "dir/site.yml", &o, &err);
    json_decref(ev);
    if (rc != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(s->nres, 17);
    long v = aicp_site_find(s, "ontap_volume/nfs/data");
    assert_true(v >= 0);
    assert_string_equal(s->res[v].label, "ontap_volume nfs/data");
    assert_string_equal(s->res[v].name, "data");
    assert_null(s->res[v].ns);
    assert_string_equal(s->res[v].ontap, "c1");
    /* The only cluster's connection: management_lif is hostname, the CA
     * file is relative to the site file. */
    assert_string_equal(json_string_value(arg(s, "volumes/data", "hostname")), "10.0.0.1");
    assert_string_equal(json_string_value(arg(s, "volumes/data", "username")), "admin");
    assert_string_equal(json_string_value(arg(s, "volumes/data", "password")), "ontap-pw-42");
    assert_string_equal(json_string_value(arg(s, "volumes/data", "ca_file")), "dir/certs/ca.pem");
    assert_true(json_is_true(arg(s, "volumes/data", "validate_certs")));
    assert_null(arg(s, "volumes/data", "ontap"));
    /* The password is masked everywhere, but the volume's diffs are not
     * hidden: the password only reaches the cluster. */
    assert_true(aicp_secrets_found(secrets, "ontap-pw-42", 11));
    assert_false(s->res[v].secret);
    /* Snapshots are named by volume, SnapMirror by destination. */
    assert_true(aicp_site_find(s, "ontap_snapshot/nfs/data/base") >= 0);
    assert_true(aicp_site_find(s, "ontap_snapshot/nfs/other/base") >= 0);
    assert_true(aicp_site_find(s, "ontap_snapshot/base") < 0); /* two of them */
    long m = aicp_site_find(s, "ontap_snapmirror/svm_dr:data_dr");
    assert_true(m >= 0);
    assert_string_equal(s->res[m].label, "ontap_snapmirror nfs:data -> svm_dr:data_dr");
    assert_string_equal(s->res[aicp_site_find(s, "snapmirror/svm_dr:other_dr")].label,
                        "ontap_snapmirror nfs:other -> svm_dr:other_dr");
    /* The cluster's settings travel with the site, for the cross-layer pass. */
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(s->ontap, "c1"), "ca_file")),
        "dir/certs/ca.pem");
    long b = aicp_site_find(s, "trident_backend/fg");
    assert_string_equal(s->res[b].ontap, "c1");
    /* --only ontap, volumes */
    unsigned char sel[32];
    json_t *only = aicp_site_split_list(NULL, "ontap");
    assert_int_equal(aicp_site_select(sel, s, only, NULL, &err), 0);
    for (size_t i = 0; i < s->nres; i++)
        assert_int_equal(sel[i], strncmp(s->res[i].mod->name, "ontap_", 6) == 0);
    json_decref(only);
    only = aicp_site_split_list(NULL, "volumes,clone");
    assert_int_equal(aicp_site_select(sel, s, only, NULL, &err), 0);
    for (size_t i = 0; i < s->nres; i++)
        assert_int_equal(sel[i], strcmp(s->res[i].mod->name, "ontap_volume") == 0 ||
                                     strcmp(s->res[i].mod->name, "ontap_clone") == 0);
    json_decref(only);
    aicp_site_free(s);
}

static void t_ontap_graph(void **state)
{
    (void)state;
    struct aicp_site *s = NULL;
    struct aicp_err err;
    assert_int_equal(load(&s, STORAGE, &err), 0);
    /* export policy -> the volumes using it (alias policy too) */
    assert_true(depends(s, "ontap_volume/nfs/data", "ontap_export_policy/nfs/ai"));
    assert_false(depends(s, "ontap_volume/nfs/other", "ontap_export_policy/nfs/ai"));
    /* volume -> its snapshots, clones, relationships */
    assert_true(depends(s, "ontap_snapshot/nfs/data/base", "ontap_volume/nfs/data"));
    assert_false(depends(s, "ontap_snapshot/nfs/data/base", "ontap_volume/nfs/other"));
    assert_true(depends(s, "ontap_snapshot/nfs/other/base", "ontap_volume/nfs/other"));
    assert_true(depends(s, "ontap_clone/nfs/ws", "ontap_volume/nfs/data"));
    assert_true(depends(s, "ontap_clone/nfs/ws", "ontap_snapshot/nfs/data/base"));
    assert_false(depends(s, "ontap_clone/nfs/ws", "ontap_snapshot/nfs/other/base"));
    assert_true(depends(s, "ontap_snapmirror/svm_dr:data_dr", "ontap_volume/nfs/data"));
    assert_true(depends(s, "ontap_snapmirror/svm_dr:other_dr", "ontap_volume/nfs/other"));
    /* ONTAP volume (or clone) -> the PVC that imports it */
    assert_true(depends(s, "pvc/data", "ontap_volume/nfs/data"));
    assert_true(depends(s, "pvc/ws", "ontap_clone/nfs/ws"));
    assert_false(depends(s, "pvc/ws", "ontap_volume/nfs/data"));
    /* a broken-off mirror -> the import of its destination; one that
     * mirrors does not make its destination importable, so no edge */
    assert_true(depends(s, "pvc/dr", "ontap_snapmirror/svm_dr:data_dr"));
    assert_false(depends(s, "pvc/dr2", "ontap_snapmirror/svm_dr:other_dr"));
    assert_false(depends(s, "pvc/fresh", "ontap_snapmirror/svm_dr:data_dr"));
    /* the order follows */
    assert_true(pos(s, "ontap_export_policy/nfs/ai") < pos(s, "ontap_volume/nfs/data"));
    assert_true(pos(s, "ontap_snapshot/nfs/data/base") < pos(s, "ontap_clone/nfs/ws"));
    assert_true(pos(s, "ontap_clone/nfs/ws") < pos(s, "pvc/ws"));
    assert_true(pos(s, "ontap_snapmirror/svm_dr:data_dr") < pos(s, "pvc/dr"));
    aicp_site_free(s);
    /* The same volume name on another SVM is another volume. */
    assert_int_equal(load(&s,
                          "ontap:\n  c: {management_lif: h}\n"
                          "trident:\n  backends:\n"
                          "    - {name: b, driver: ontap-nas, ontap: c, svm: two}\n"
                          "volumes:\n  - {name: v, vserver: one}\n  - {name: v, vserver: two}\n"
                          "pvcs:\n  - {name: p, import: {volume: v, backend: b}}\n",
                          &err),
                     0);
    assert_true(depends(s, "pvc/p", "ontap_volume/two/v"));
    assert_false(depends(s, "pvc/p", "ontap_volume/one/v"));
    aicp_site_free(s);
    /* A cycle through both layers is still found. */
    assert_int_equal(load(&s,
                          "ontap:\n  c: {management_lif: h}\n"
                          "pvcs:\n  - {name: p, import: {volume: v}}\n"
                          "volumes:\n  - {name: v, vserver: one, depends_on: pvc/p}\n",
                          &err),
                     AICP_EINVAL);
    assert_non_null(strstr(err.msg, "dependency cycle"));
}

/* What drift's cross-layer pass compares. */
static void t_cross(void **state)
{
    (void)state;
    struct aicp_site *s = NULL;
    struct aicp_err err;
    json_t *w = NULL;
    assert_int_equal(load(&s, STORAGE, &err), 0);
    /* An import with no_rename: the volume is import.volume; the site
     * declares it, so its export and snapshot policies are wanted. */
    long p = aicp_site_find(s, "pvc/data");
    assert_int_equal(aicp_site_cross_want(&w, s, (size_t)p, "trident_pvc_123"), 0);
    assert_string_equal(json_string_value(json_object_get(w, "volume")), "data");
    assert_string_equal(json_string_value(json_object_get(w, "svm")), "nfs");
    assert_string_equal(json_string_value(json_object_get(w, "cluster")), "c1");
    assert_string_equal(json_string_value(json_object_get(w, "backend")), "fg");
    assert_int_equal(json_integer_value(json_object_get(w, "size")), 10995116277760LL);
    assert_string_equal(json_string_value(json_object_get(w, "export_policy")), "ai");
    assert_string_equal(json_string_value(json_object_get(w, "snapshot_policy")), "none");

    json_t *vol = json_pack("{s:s, s:I, s:s, s:{s:{s:s}}, s:{s:s}}", "name", "data", "size",
                            (json_int_t)10995116277760LL, "state", "online", "nas", "export_policy",
                            "name", "ai", "snapshot_policy", "name", "none");
    json_t *f = json_array();
    assert_int_equal(aicp_site_cross_compare(f, w, vol), 0);
    /* resized, re-exported, offline, another snapshot policy */
    json_object_set_new(vol, "size", json_integer(12094627905536LL));
    json_object_set_new(vol, "state", json_string("offline"));
    json_object_set_new(vol, "nas", json_pack("{s:{s:s}}", "export_policy", "name", "default"));
    json_object_set_new(vol, "snapshot_policy", json_pack("{s:s}", "name", "default"));
    assert_int_equal(aicp_site_cross_compare(f, w, vol), 4);
    const char *whats[] = {"offline", "resized", "re-exported", "snapshot-policy"};
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(f, i), "what")),
                            whats[i]);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(f, 1), "want")),
                     10995116277760LL);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(f, 1), "have")),
                     12094627905536LL);
    /* deleted */
    json_array_clear(f);
    assert_int_equal(aicp_site_cross_compare(f, w, NULL), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(f, 0), "what")),
                        "deleted");
    /* fields ONTAP did not return are no drift; sizes as strings too */
    json_array_clear(f);
    json_t *bare = json_pack("{s:s, s:s}", "name", "data", "size", "10TB");
    assert_int_equal(aicp_site_cross_compare(f, w, bare), 0);
    json_decref(bare);
    json_decref(vol);
    json_decref(f);
    json_decref(w);
    /* Renamed by the import: only the PV's internalName names it. */
    p = aicp_site_find(s, "pvc/ws");
    assert_int_equal(aicp_site_cross_want(&w, s, (size_t)p, "trident_pvc_9"), 0);
    assert_string_equal(json_string_value(json_object_get(w, "volume")), "trident_pvc_9");
    assert_null(json_object_get(w, "snapshot_policy")); /* the site does not declare it */
    json_decref(w);
    assert_int_equal(aicp_site_cross_want(&w, s, (size_t)p, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(w, "volume")), "ws");
    json_decref(w);
    /* A new volume: Trident's name from the PV, the backend through the class. */
    p = aicp_site_find(s, "pvc/fresh");
    assert_int_equal(aicp_site_cross_want(&w, s, (size_t)p, "trident_pvc_77"), 0);
    assert_string_equal(json_string_value(json_object_get(w, "volume")), "trident_pvc_77");
    assert_string_equal(json_string_value(json_object_get(w, "backend")), "dr");
    assert_string_equal(json_string_value(json_object_get(w, "svm")), "svm_dr");
    assert_int_equal(json_integer_value(json_object_get(w, "size")), 1099511627776LL);
    json_decref(w);
    /* ... and without it, nothing to check. */
    assert_int_equal(aicp_site_cross_want(&w, s, (size_t)p, NULL), 0);
    assert_non_null(strstr(json_string_value(json_object_get(w, "skip")), "internalName"));
    json_decref(w);
    aicp_site_free(s);
    /* A volume Trident made, on a backend with volume defaults: its export
     * and snapshot policies are the backend's. */
    assert_int_equal(load(&s,
                          "ontap:\n  c: {management_lif: h}\n"
                          "trident:\n  backends:\n"
                          "    - {name: b, driver: ontap-nas, ontap: c, svm: s1,\n"
                          "       defaults: {exportPolicy: pol, snapshotPolicy: default}}\n"
                          "storage_classes:\n  - {name: sc, backend_type: ontap-nas}\n"
                          "pvcs:\n  - {name: p, size: 1Ti, storage_class: sc}\n",
                          &err),
                     0);
    p = aicp_site_find(s, "pvc/p");
    assert_int_equal(aicp_site_cross_want(&w, s, (size_t)p, "trident_pvc_1"), 0);
    assert_string_equal(json_string_value(json_object_get(w, "backend")), "b");
    assert_string_equal(json_string_value(json_object_get(w, "export_policy")), "pol");
    assert_string_equal(json_string_value(json_object_get(w, "snapshot_policy")), "default");
    f = json_array();
    vol = json_pack("{s:s, s:s, s:{s:{s:s}}, s:{s:s}}", "name", "trident_pvc_1", "state", "online",
                    "nas", "export_policy", "name", "pol", "snapshot_policy", "name", "none");
    assert_int_equal(aicp_site_cross_compare(f, w, vol), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(f, 0), "what")),
                        "snapshot-policy");
    json_decref(vol);
    json_decref(f);
    json_decref(w);
    aicp_site_free(s);
}

/* Who last changed an object through aicp, from its stamp. */
static void t_provenance(void **state)
{
    (void)state;
    char b[128];
    /* the ONTAP modules' stamp ending a comment of the site's own */
    assert_int_equal(aicp_site_provenance_of(b, sizeof(b),
                                             "dataset baseline [aicp site=pod run=20261129T1Z-ab]"),
                     0);
    assert_string_equal(b, "site=pod run=20261129T1Z-ab");
    /* the comment aicp gave what it made before; the Kubernetes annotation */
    assert_int_equal(aicp_site_provenance_of(b, sizeof(b), "aicp site=pod run=R1"), 0);
    assert_string_equal(b, "site=pod run=R1");
    assert_int_equal(aicp_site_provenance_of(b, sizeof(b), "site=pod run=R2"), 0);
    assert_string_equal(b, "site=pod run=R2");
    /* the last stamp wins; none, or a user's text that only looks alike */
    assert_int_equal(
        aicp_site_provenance_of(b, sizeof(b), "x [aicp site=a run=1] y [aicp site=b run=2]"), 0);
    assert_string_equal(b, "site=b run=2");
    assert_int_equal(aicp_site_provenance_of(b, sizeof(b), "dataset baseline"), -1);
    assert_int_equal(aicp_site_provenance_of(b, sizeof(b), "[aicp site=x]"), -1);
    assert_int_equal(aicp_site_provenance_of(b, sizeof(b), NULL), -1);
    assert_int_equal(aicp_site_provenance_of(b, sizeof(b), ""), -1);
}

/* A module call whose arguments the module itself refuses (beyond its
 * table) fails the load, at the entry, before any request; the real
 * k8s_job module. kubernetes.force_conflicts is read. */
static void t_module_check(void **state)
{
    (void)state;
    struct aicp_site *s = NULL;
    struct aicp_err err = {0};
    struct aicp_site_load_opts o = {.secrets = secrets};
    static const char bad[] =
        "site: j\n"
        "jobs:\n"
        "  - {name: train, namespace: ml, image: img,\n"
        "     volumes: [{name: results, persistentVolumeClaim: {claimName: results}}]}\n";
    assert_int_equal(aicp_site_load_string(&s, bad, strlen(bad), "j.yml", &o, &err),
                     AICP_EINVAL);
    assert_null(s);
    assert_non_null(strstr(err.msg, "j.yml:3:"));
    assert_non_null(strstr(err.msg, "volumes[0] needs name, pvc and mount_path"));
    static const char good[] =
        "site: j\n"
        "kubernetes: {force_conflicts: true}\n"
        "jobs:\n"
        "  - {name: train, namespace: ml, image: img,\n"
        "     volumes: [{name: results, pvc: results, mount_path: /results}]}\n";
    assert_int_equal(aicp_site_load_string(&s, good, strlen(good), "j.yml", &o, &err), 0);
    assert_int_equal(s->force_conflicts, 1);
    aicp_site_free(s);
    s = NULL;
    static const char badforce[] = "site: j\nkubernetes: {force_conflicts: [x]}\n";
    assert_int_equal(aicp_site_load_string(&s, badforce, strlen(badforce), "j.yml", &o, &err),
                     AICP_EINVAL);
    assert_non_null(strstr(err.msg, "force_conflicts"));
}

/* The TR-4798 pod shipped in inventory/ loads and has the expected shape. */
static void t_tr4798(void **state)
{
    (void)state;
    struct aicp_site *s = NULL;
    struct aicp_err err = {0};
    json_t *ev = json_pack("{s:s, s:s}", "vault_ontap_password", "pod-pw-123",
                           "vault_airflow_git_ssh_key", "key-material");
    struct aicp_site_load_opts o = {.find_module = find, .secrets = secrets, .extra_vars = ev};
    int rc = aicp_site_load(&s, AICP_SRCDIR "/inventory/ontap-ai-pod.site.yml", &o, &err);
    if (rc != 0)
        fail_msg("%s", err.msg);
    json_decref(ev);
    assert_string_equal(s->name, "ontap-ai-pod");
    static const char *const ids[] = {
        "trident_backend/trident/ontap-ai-flexgroups-iface1",
        "trident_backend/trident/ontap-ai-flexgroups-iface2",
        "trident_backend/trident/ontap-ai-flexvols",
        "storage_class/ontap-ai-flexgroups-retain-iface1",
        "storage_class/ontap-ai-flexgroups-retain-iface2",
        "storage_class/ontap-ai-flexgroups-retain",
        "storage_class/ontap-ai-flexvols-retain",
        "pvc/default/pb-fg-all-iface1",
        "pvc/default/pb-fg-all-iface2",
        "pvc/default/tensorflow-results",
        "namespace/trident",
        "ontap_export_policy/ontapai_nfs/ontap-ai",
        "ontap_volume/ontapai_nfs/pb_fg_all",
        "ontap_snapshot/ontapai_nfs/pb_fg_all/baseline",
        "ontap_clone/ontapai_nfs/pb_fg_all_workspace",
        "ontap_snapmirror/svm_dr:pb_fg_all_dr",
        "namespace/airflow",
        "secret/airflow/airflow-ssh-git-secret",
        "helm_release/kubeflow/kubeflow",
        "helm_release/airflow/airflow",
        "helm_release/trident/trident-operator",
        "k8s_wait/trident/trident-deployments",
        "k8s_wait/trident/trident-node",
        "k8s_wait/kubeflow/kubeflow-deployments",
        "k8s_wait/airflow/airflow-deployments",
        "k8s/kube-system/DaemonSet/nvidia-device-plugin-daemonset",
        "k8s_wait/kube-system/nvidia-device-plugin",
    };
    assert_int_equal(s->nres, sizeof(ids) / sizeof(ids[0]));
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        if (aicp_site_find(s, ids[i]) < 0)
            fail_msg("no %s", ids[i]);
    assert_true(depends(s, "storage_class/ontap-ai-flexgroups-retain-iface2",
                        "trident_backend/ontap-ai-flexgroups-iface2"));
    assert_false(depends(s, "storage_class/ontap-ai-flexgroups-retain-iface2",
                         "trident_backend/ontap-ai-flexgroups-iface1"));
    assert_true(depends(s, "pvc/pb-fg-all-iface1", "trident_backend/ontap-ai-flexgroups-iface1"));
    assert_true(depends(s, "pvc/tensorflow-results", "storage_class/ontap-ai-flexvols-retain"));
    long fv = aicp_site_find(s, "storage_class/ontap-ai-flexvols-retain");
    assert_true(json_is_true(json_object_get(s->res[fv].args, "default")));
    /* the storage before the imports */
    assert_true(depends(s, "pvc/pb-fg-all-iface1", "ontap_volume/pb_fg_all"));
    assert_true(depends(s, "pvc/pb-fg-all-iface2", "ontap_volume/pb_fg_all"));
    assert_false(depends(s, "pvc/tensorflow-results", "ontap_volume/pb_fg_all"));
    assert_true(depends(s, "ontap_volume/pb_fg_all", "ontap_export_policy/ontap-ai"));
    assert_true(depends(s, "ontap_clone/pb_fg_all_workspace", "ontap_snapshot/baseline"));
    assert_true(depends(s, "ontap_snapmirror/svm_dr:pb_fg_all_dr", "ontap_volume/pb_fg_all"));
    /* the management LIF and CA are overridable; the default CA is the
     * system store */
    assert_string_equal(json_string_value(arg(s, "volumes/pb_fg_all", "hostname")),
                        "10.61.218.100");
    assert_null(arg(s, "volumes/pb_fg_all", "ca_file"));
    /* The platform: the cluster on the inventory's groups, Trident's
     * operator ready before its backends, Airflow after its key and class,
     * Kubeflow behind the default-class gate. */
    assert_string_equal(json_string_value(json_object_get(s->cluster_vars, "k8s_gpu_group")),
                        "gpu-nodes");
    assert_non_null(strstr(json_string_value(json_array_get(s->inventory, 0)),
                           "inventory/ontap-ai-pod.ini"));
    assert_true(depends(s, "trident_backend/ontap-ai-flexvols", "k8s_wait/trident-deployments"));
    assert_true(depends(s, "helm_release/airflow", "secret/airflow-ssh-git-secret"));
    assert_true(depends(s, "k8s_wait/airflow-deployments", "helm_release/airflow"));
    long kf = aicp_site_find(s, "helm_release/kubeflow");
    assert_true(s->res[kf].needs_default_sc);
    long af = aicp_site_find(s, "helm_release/airflow");
    const json_t *vals = json_object_get(s->res[af].args, "values");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(vals, "airflow"), "executor")),
        "CeleryExecutor");
    assert_int_equal(
        json_integer_value(json_object_get(
            json_object_get(json_object_get(vals, "dags"), "gitSync"), "syncWait")),
        60);
    assert_true(s->res[aicp_site_find(s, "secret/airflow-ssh-git-secret")].secret);
    aicp_site_free(s);
    ev = json_pack("{s:s, s:s, s:s, s:s}", "vault_ontap_password", "pod-pw-123",
                   "ontap_management_lif", "127.0.0.1:4443", "ontap_ca_file", "/tmp/ca.pem",
                   "vault_airflow_git_ssh_key", "key-material");
    o.extra_vars = ev;
    assert_int_equal(aicp_site_load(&s, AICP_SRCDIR "/inventory/ontap-ai-pod.site.yml", &o, &err),
                     0);
    json_decref(ev);
    assert_string_equal(json_string_value(arg(s, "snapmirror/svm_dr:pb_fg_all_dr", "hostname")),
                        "127.0.0.1:4443");
    assert_string_equal(json_string_value(arg(s, "clones/pb_fg_all_workspace", "ca_file")),
                        "/tmp/ca.pem");
    aicp_site_free(s);
}

/* helm_releases: the site's words become helm_release's arguments; the
 * release waits for its namespace, explicit depends_on and, behind
 * Kubeflow's gate, every StorageClass of the site. */
/* The cluster layer: the install keys become the cluster playbooks'
 * variables; the GPU stack, CNI, node removals, the Trident operator and
 * the releases' readiness gates become resources in the right order. */
static void t_cluster(void **state)
{
    (void)state;
    struct aicp_site *s = NULL;
    struct aicp_err err;
    const char *text = "site: pod\n"
                       "inventory: [pod.ini, extra.yml]\n"
                       "kubernetes:\n"
                       "  kubeconfig: admin.conf\n"
                       "  version: \"1.29.3\"\n"
                       "  workers: dgx\n"
                       "  pod_network_cidr: 10.10.0.0/16\n"
                       "  container_runtime: {systemd_cgroup: false}\n"
                       "  gpu: {driver: 535, allow_reboot: true, serial: \"25%\"}\n"
                       "  cni: {manifest: cni/flannel.yml}\n"
                       "  remove_nodes: [dgx04]\n"
                       "ontap: {c1: {management_lif: 1.2.3.4, username: admin, password: pw}}\n"
                       "trident:\n"
                       "  version: 23.07.1\n"
                       "  backends: [{name: b1, driver: ontap-nas, ontap: c1, svm: s, data_lif: 1.2.3.4}]\n"
                       "helm_releases:\n"
                       "  - name: airflow\n"
                       "    chart: airflow-stable/airflow\n"
                       "    version: 8.0.8\n"
                       "    namespace: airflow\n"
                       "    ready: {deployments: all, url: \"https://web:8080/health\", timeout: 30}\n";
    if (load(&s, text, &err) != 0)
        fail_msg("%s", err.msg);
    /* The variables of the cluster playbooks. */
    const json_t *v = s->cluster_vars;
    assert_non_null(v);
    assert_string_equal(json_string_value(json_object_get(v, "k8s_version")), "v1.29.3");
    assert_string_equal(json_string_value(json_object_get(v, "k8s_packages_version")),
                        "1.29.3-1.1");
    assert_string_equal(json_string_value(json_object_get(v, "k8s_worker_group")), "dgx");
    assert_string_equal(json_string_value(json_object_get(v, "k8s_control_plane_group")),
                        "kube_control_plane");
    assert_string_equal(json_string_value(json_object_get(v, "k8s_gpu_group")), "gpu_nodes");
    assert_string_equal(json_string_value(json_object_get(v, "k8s_pod_network_cidr")),
                        "10.10.0.0/16");
    assert_true(json_is_false(json_object_get(v, "k8s_systemd_cgroup")));
    assert_string_equal(json_string_value(json_object_get(v, "k8s_gpu_driver")), "535");
    assert_true(json_is_true(json_object_get(v, "k8s_gpu_allow_reboot")));
    assert_string_equal(json_string_value(json_object_get(v, "k8s_gpu_serial")), "25%");
    assert_string_equal(json_string_value(json_object_get(v, "k8s_gpu_stack")), "device-plugin");
    /* The admin kubeconfig is fetched where the site reads it. */
    assert_non_null(strstr(json_string_value(json_object_get(v, "k8s_kubeconfig")), "admin.conf"));
    assert_string_equal(json_string_value(json_object_get(v, "k8s_kubeconfig")), s->kubeconfig);
    assert_int_equal(json_array_size(s->inventory), 2);
    assert_non_null(strstr(json_string_value(json_array_get(s->inventory, 0)), "pod.ini"));
    /* What the settings add. */
    assert_true(aicp_site_find(s, "k8s/kube-system/DaemonSet/nvidia-device-plugin-daemonset") >= 0);
    assert_true(aicp_site_find(s, "k8s_wait/kube-system/nvidia-device-plugin") >= 0);
    assert_true(aicp_site_find(s, "k8s_node/dgx04") >= 0);
    long cni = -1;
    for (size_t i = 0; i < s->nres; i++)
        if (strstr(s->res[i].id, "cni/flannel.yml"))
            cni = (long)i;
    assert_true(cni >= 0);
    long node = aicp_site_find(s, "k8s_node/dgx04");
    assert_string_equal(json_string_value(json_object_get(s->res[node].args, "state")), "absent");
    /* The device plugin's gate waits for it; the Trident operator's gates
     * wait for the release and the backend waits for the gates. */
    assert_true(pos(s, "k8s/kube-system/DaemonSet/nvidia-device-plugin-daemonset") <
                pos(s, "k8s_wait/kube-system/nvidia-device-plugin"));
    assert_true(pos(s, "helm_release/trident/trident-operator") <
                pos(s, "k8s_wait/trident/trident-deployments"));
    assert_true(pos(s, "k8s_wait/trident/trident-deployments") <
                pos(s, "trident_backend/trident/b1"));
    assert_true(pos(s, "k8s_wait/trident/trident-node") < pos(s, "trident_backend/trident/b1"));
    long rel = aicp_site_find(s, "helm_release/trident/trident-operator");
    assert_string_equal(json_string_value(json_object_get(s->res[rel].args, "chart_version")),
                        "23.07.1");
    assert_true(json_is_true(json_object_get(s->res[rel].args, "wait")));
    /* airflow's gate: every Deployment of its namespace, then the URL. */
    long g = aicp_site_find(s, "k8s_wait/airflow/airflow-deployments");
    assert_true(g >= 0);
    assert_null(json_object_get(s->res[g].args, "names"));
    assert_string_equal(json_string_value(json_object_get(s->res[g].args, "url")),
                        "https://web:8080/health");
    assert_int_equal(json_integer_value(json_object_get(s->res[g].args, "timeout")), 30);
    assert_true(pos(s, "helm_release/airflow/airflow") < pos(s, "k8s_wait/airflow/airflow-deployments"));
    aicp_site_free(s);

    /* The GPU Operator instead: a release, with the operator's driver off
     * when the nodes get theirs from aicp. */
    assert_int_equal(load(&s,
                          "kubernetes: {version: v1.29.3, gpu: {stack: gpu-operator, driver: "
                          "\"550\"}}\n",
                          &err),
                     0);
    rel = aicp_site_find(s, "helm_release/gpu-operator/gpu-operator");
    assert_true(rel >= 0);
    const json_t *vals = json_object_get(s->res[rel].args, "values");
    assert_true(json_is_false(json_object_get(json_object_get(vals, "driver"), "enabled")));
    assert_true(aicp_site_find(s, "k8s_wait/kube-system/nvidia-device-plugin") < 0);
    /* No kubeconfig in the site: the fetched one is used. */
    assert_non_null(strstr(s->kubeconfig, ".kube/aicp-site.conf"));
    aicp_site_free(s);

    /* The validation entries are kept, rendered, for `aicp validate`. */
    assert_int_equal(load(&s,
                          "vars: {want: 6530}\n"
                          "validation:\n"
                          "  - {nodes: gpu-nodes, benchmark: resnet50, gpus_per_node: 8,\n"
                          "     expected_images_per_sec: \"{{ want }}\", where: both}\n",
                          &err),
                     0);
    assert_int_equal(json_array_size(s->validation), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(s->validation, 0), "where")), "both");
    aicp_site_free(s);

    /* No version: no cluster layer. */
    assert_int_equal(load(&s, "kubernetes: {kubeconfig: k}\n", &err), 0);
    assert_null(s->cluster_vars);
    aicp_site_free(s);
}

static void t_helm(void **state)
{
    (void)state;
    static const char *HELM =
        "kubernetes: {kubeconfig: /k/cfg}\n"
        "vars: {exec: CeleryExecutor}\n"
        "namespaces: [airflow]\n"
        "storage_classes:\n"
        "  - {name: fast, backend_type: ontap-nas, default: true}\n"
        "  - {name: slow, backend_type: ontap-nas}\n"
        "pvcs:\n"
        "  - {name: data, namespace: airflow, size: 1Gi}\n"
        "helm_releases:\n"
        "  - name: airflow\n"
        "    chart: apache-airflow/airflow\n"
        "    repo: https://airflow.apache.org\n"
        "    version: 1.11\n"
        "    namespace: airflow\n"
        "    values: {executor: \"{{ exec }}\", web: {service: {type: NodePort}},\n"
        "             secret: data, claimName: data}\n"
        "    values_files: [vals/a.yaml, /abs/b.yaml]\n"
        "    wait: true\n"
        "    timeout: 600\n"
        "    atomic: true\n"
        "    depends_on: pvc/data\n"
        "  - {name: kubeflow, chart: kf/kubeflow, namespace: kubeflow,\n"
        "     create_namespace: false, requires_default_storage_class: true}\n"
        "  - {name: plain, chart: x/plain}\n";
    struct aicp_site *s = NULL;
    struct aicp_err err;
    struct aicp_site_load_opts o = {.find_module = find, .secrets = secrets};
    memset(&err, 0, sizeof(err));
    assert_int_equal(aicp_site_load_string(&s, HELM, strlen(HELM), "/srv/sites/helm.yml", &o, &err),
                     0);
    long a = aicp_site_find(s, "helm_release/airflow/airflow");
    assert_true(a >= 0);
    assert_int_equal(aicp_site_find(s, "helm_releases/airflow"), a);
    assert_string_equal(s->res[a].label, "helm_release airflow/airflow");
    assert_string_equal(s->res[a].section, "helm_releases");
    const json_t *args = s->res[a].args;
    assert_string_equal(json_string_value(json_object_get(args, "chart")),
                        "apache-airflow/airflow");
    assert_string_equal(json_string_value(json_object_get(args, "chart_version")), "1.11");
    assert_string_equal(json_string_value(json_object_get(args, "chart_repo_url")),
                        "https://airflow.apache.org");
    assert_string_equal(json_string_value(json_object_get(args, "wait_timeout")), "600");
    assert_true(json_is_true(json_object_get(args, "create_namespace")));
    assert_true(json_is_true(json_object_get(args, "atomic")));
    assert_null(json_object_get(args, "version"));
    assert_null(json_object_get(args, "depends_on"));
    assert_null(json_object_get(args, "kubeconfig")); /* the runner fills it */
    const json_t *vals = json_object_get(args, "values");
    assert_string_equal(json_string_value(json_object_get(vals, "executor")), "CeleryExecutor");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_object_get(vals, "web"), "service"), "type")),
                        "NodePort");
    const json_t *files = json_object_get(args, "values_files");
    assert_int_equal(json_array_size(files), 2);
    assert_string_equal(json_string_value(json_array_get(files, 0)), "/srv/sites/vals/a.yaml");
    assert_string_equal(json_string_value(json_array_get(files, 1)), "/abs/b.yaml");
    assert_false(s->res[a].needs_default_sc);
    /* its namespace and depends_on; values are not scanned for refs */
    assert_true(depends(s, "helm_release/airflow/airflow", "namespace/airflow"));
    assert_true(depends(s, "helm_release/airflow/airflow", "pvc/airflow/data"));
    assert_int_equal(s->res[a].ndeps, 2);
    assert_false(depends(s, "helm_release/airflow/airflow", "storage_class/fast"));
    /* Kubeflow's gate: after every StorageClass; no namespace resource */
    long k = aicp_site_find(s, "helm_release/kubeflow/kubeflow");
    assert_true(k >= 0);
    assert_true(s->res[k].needs_default_sc);
    assert_true(json_is_false(json_object_get(s->res[k].args, "create_namespace")));
    assert_true(depends(s, "helm_release/kubeflow", "storage_class/fast"));
    assert_true(depends(s, "helm_release/kubeflow", "storage_class/slow"));
    assert_int_equal(s->res[k].ndeps, 2);
    assert_true(pos(s, "helm_release/kubeflow") > pos(s, "storage_class/slow"));
    /* no namespace: default */
    long p = aicp_site_find(s, "helm_release/default/plain");
    assert_true(p >= 0);
    assert_string_equal(json_string_value(json_object_get(s->res[p].args, "release_namespace")),
                        "default");
    assert_int_equal(s->res[p].ndeps, 0);
    /* --only helm (and helm_releases, releases) selects the releases */
    unsigned char sel[16];
    static const char *const words[] = {"helm", "helm_releases", "releases", "helm_release"};
    for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
        json_t *only = aicp_site_split_list(NULL, words[w]);
        assert_int_equal(aicp_site_select(sel, s, only, NULL, &err), 0);
        for (size_t i = 0; i < s->nres; i++)
            assert_int_equal(sel[i], strcmp(s->res[i].mod->name, "helm_release") == 0);
        json_decref(only);
    }
    aicp_site_free(s);
}

int main(void)
{
    const struct CMUnitTest t[] = {
        cmocka_unit_test(t_pod),         cmocka_unit_test(t_graph),  cmocka_unit_test(t_secret_dep),
        cmocka_unit_test(t_cycle),       cmocka_unit_test(t_errors), cmocka_unit_test(t_vars),
        cmocka_unit_test(t_select),      cmocka_unit_test(t_tr4798), cmocka_unit_test(t_ontap),
        cmocka_unit_test(t_ontap_graph), cmocka_unit_test(t_cross), cmocka_unit_test(t_provenance),
        cmocka_unit_test(t_module_check),  cmocka_unit_test(t_helm), cmocka_unit_test(t_cluster),
    };
    if (aicp_secrets_new(&secrets) != 0)
        return 1;
    int rc = cmocka_run_group_tests(t, NULL, NULL);
    aicp_secrets_free(secrets);
    return rc;
}
