/* The cluster layer of a site: the kubernetes section's install keys
 * (version, node groups, CIDRs, packages, container runtime, CNI, GPU
 * stack, nodes to remove) and trident.version, turned into what the rest of
 * the site engine already knows how to run. Over SSH, the cluster
 * playbooks (playbooks/k8s-*.yml, built into the binary) run on the site's
 * inventory with the section's settings as their variables; in the API
 * layer, the CNI manifest or chart, the GPU stack (NVIDIA's device plugin
 * DaemonSet or the GPU Operator release), node removals (k8s_node) and the
 * readiness gates (k8s_wait) become ordinary site entries. One description,
 * one engine: `aicp run playbooks/k8s-cluster.yml` and `aicp apply SITE`
 * do the same thing to the nodes. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "executor.h"
#include "site.h"
#include "site_playbooks.h"
#include "util.h"

#define DEFAULT_DEVICE_PLUGIN_IMAGE "nvcr.io/nvidia/k8s-device-plugin:v0.14.5"
#define DEFAULT_OPERATOR_VERSION "v23.9.2"
#define DEFAULT_OPERATOR_REPO "https://helm.ngc.nvidia.com/nvidia"
#define DEFAULT_TRIDENT_REPO "https://netapp.github.io/trident-helm-chart"
#define READY_TIMEOUT 600

static int bad_key(const char **bad, const char *key, struct aicp_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int bad_key(const char **bad, const char *key, struct aicp_err *err, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    *bad = key;
    return aicp_err_set(err, AICP_EINVAL, "%s", msg);
}

/* A list of one section in synth, made on first use. */
static json_t *synth_list(json_t *synth, const char *section)
{
    json_t *l = json_object_get(synth, section);
    if (l == NULL) {
        l = json_array();
        if (l == NULL || json_object_set_new(synth, section, l) != 0)
            return NULL;
    }
    return l;
}

static int synth_add(json_t *synth, const char *section, json_t *entry, struct aicp_err *err)
{
    json_t *l = synth_list(synth, section);
    if (entry == NULL || l == NULL || json_array_append_new(l, entry) != 0)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    return 0;
}

/* A string setting, or a number written where a version was meant. */
static char *scalar_text(const json_t *v)
{
    char num[64];
    if (json_is_string(v))
        return aicp_strdup(json_string_value(v));
    if (json_is_integer(v)) {
        snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
        return aicp_strdup(num);
    }
    if (json_is_real(v)) {
        snprintf(num, sizeof(num), "%g", json_real_value(v));
        return aicp_strdup(num);
    }
    return NULL;
}

/* Only the keys listed: a typo is an error, not a silent default. */
static int only_keys(const json_t *m, const char *what, const char *const *known,
                     const char **bad, struct aicp_err *err)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)m, k, v)
    {
        size_t i = 0;
        while (known[i] && strcmp(known[i], k) != 0)
            i++;
        if (known[i] == NULL)
            return bad_key(bad, what, err, "unknown key '%s' in %s", k, what);
    }
    return 0;
}

/* Inventory group names go into host patterns: letters, digits, - and _. */
static int group_ok(const char *g)
{
    if (g == NULL || *g == '\0')
        return 0;
    for (const char *p = g; *p; p++)
        if (!(((*p | 32) >= 'a' && (*p | 32) <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '-'))
            return 0;
    return 1;
}

/* "v1.29.3" or "1.29.3" -> the digits, or NULL. */
static const char *version_digits(const char *v)
{
    const char *d = v[0] == 'v' ? v + 1 : v;
    int dots = 0;
    if (*d < '0' || *d > '9')
        return NULL;
    for (const char *p = d; *p; p++) {
        if (*p == '.')
            dots++;
        else if (*p < '0' || *p > '9')
            return NULL;
    }
    return dots == 2 ? d : NULL;
}

static int set_str(json_t *vars, const char *var, const json_t *k, const char *key,
                   const char *def, const char **bad, struct aicp_err *err)
{
    const json_t *v = json_object_get(k, key);
    if (v == NULL)
        return def ? json_object_set_new(vars, var, json_string(def)) : 0;
    if (!json_is_string(v))
        return bad_key(bad, key, err, "kubernetes.%s must be a string", key);
    return json_object_set(vars, var, (json_t *)v);
}

static char *path_in(const struct aicp_site *s, const char *p)
{
    struct aicp_buf b = AICP_BUF_INIT;
    if (p[0] == '/')
        return aicp_strdup(p);
    if (p[0] == '~' && p[1] == '/' && getenv("HOME"))
        aicp_buf_printf(&b, "%s%s", getenv("HOME"), p + 1);
    else
        aicp_buf_printf(&b, "%s/%s", s->dir, p);
    return aicp_buf_steal(&b);
}

/* NVIDIA's device plugin as its static manifest deploys it. */
static json_t *device_plugin(const char *image)
{
    return json_pack(
        "{s:s, s:s, s:{s:s, s:s}, s:{s:{s:{s:s}}, s:{s:s}, s:{s:{s:{s:s}}, s:{s:[{s:s, s:s, "
        "s:s}], s:s, s:[{s:s, s:s, s:[{s:s, s:s}], s:{s:b, s:{s:[s]}}, s:[{s:s, s:s}]}], "
        "s:[{s:s, s:{s:s}}]}}}}",
        "apiVersion", "apps/v1", "kind", "DaemonSet", "metadata", "name",
        "nvidia-device-plugin-daemonset", "namespace", "kube-system", "spec", "selector",
        "matchLabels", "name", "nvidia-device-plugin-ds", "updateStrategy", "type",
        "RollingUpdate", "template", "metadata", "labels", "name", "nvidia-device-plugin-ds",
        "spec", "tolerations", "key", "nvidia.com/gpu", "operator", "Exists", "effect",
        "NoSchedule", "priorityClassName", "system-node-critical", "containers", "image", image,
        "name", "nvidia-device-plugin-ctr", "env", "name", "FAIL_ON_INIT_ERROR", "value", "false",
        "securityContext", "allowPrivilegeEscalation", 0, "capabilities", "drop", "ALL",
        "volumeMounts", "name", "device-plugin", "mountPath", "/var/lib/kubelet/device-plugins",
        "volumes", "name", "device-plugin", "hostPath", "path", "/var/lib/kubelet/device-plugins");
}

/* A k8s_wait gate named gate on the objects of one kind (names NULL: all
 * of them in ns), after `after` (an id). */
static json_t *gate(const char *name, const char *kind, const char *ns, const json_t *names,
                    long timeout, const char *after, const char *role)
{
    json_t *g = json_pack("{s:s, s:s, s:s, s:i, s:[s]}", "gate", name, "kind", kind, "namespace",
                          ns, "timeout", (json_int_t)timeout, "depends_on", after);
    if (g && names && json_array_size(names) > 0)
        json_object_set(g, "names", (json_t *)names);
    if (g && role)
        json_object_set_new(g, "aicp_role", json_string(role));
    return g;
}

static int gpu_load(const struct aicp_site *s, const json_t *gpu, json_t *vars, json_t *synth,
                    const char **bad, struct aicp_err *err)
{
    static const char *const known[] = {"stack",
                                        "driver",
                                        "allow_reboot",
                                        "serial",
                                        "device_plugin_image",
                                        "operator_version",
                                        "operator_repo",
                                        "operator_values",
                                        NULL};
    const char *stack = "device-plugin";
    char *driver = NULL;
    int rc;
    (void)s;
    if (gpu != NULL && !json_is_object(gpu))
        return bad_key(bad, "gpu", err, "kubernetes.gpu must be a mapping (stack, driver...)");
    if (gpu != NULL && (rc = only_keys(gpu, "kubernetes.gpu", known, bad, err)) != 0) {
        *bad = "gpu";
        return rc;
    }
    const json_t *st = json_object_get(gpu, "stack");
    if (st != NULL) {
        stack = json_string_value(st);
        if (stack == NULL || (strcmp(stack, "device-plugin") != 0 &&
                              strcmp(stack, "gpu-operator") != 0 && strcmp(stack, "none") != 0))
            return bad_key(bad, "gpu", err,
                           "kubernetes.gpu.stack must be device-plugin, gpu-operator or none");
    }
    const json_t *dv = json_object_get(gpu, "driver");
    if (dv != NULL && (driver = scalar_text(dv)) == NULL)
        return bad_key(bad, "gpu", err,
                       "kubernetes.gpu.driver must be a driver branch (\"535\") or version");
    const json_t *reboot = json_object_get(gpu, "allow_reboot");
    if (reboot != NULL && !json_is_boolean(reboot)) {
        free(driver);
        return bad_key(bad, "gpu", err, "kubernetes.gpu.allow_reboot must be true or false");
    }
    /* How many GPU nodes the GPU play takes at once: N, or "N%". */
    const json_t *serial = json_object_get(gpu, "serial");
    char serial_text[32] = "";
    if (serial != NULL) {
        const char *t = json_string_value(serial);
        char *end = NULL;
        long long n = json_is_integer(serial) ? json_integer_value(serial)
                      : t != NULL             ? strtoll(t, &end, 10)
                                              : 0;
        int pct = t != NULL && end != NULL && end != t && strcmp(end, "%") == 0;
        if (n < 1 || (t != NULL && !pct) || (pct && n > 100)) {
            free(driver);
            return bad_key(bad, "gpu", err,
                           "kubernetes.gpu.serial must be a number of nodes (1 or more) or a "
                           "percentage such as \"25%%\"");
        }
        snprintf(serial_text, sizeof serial_text, "%lld%s", n, pct ? "%" : "");
    }
    json_object_set_new(vars, "k8s_gpu_stack", json_string(stack));
    json_object_set_new(vars, "k8s_gpu_driver", json_string(driver ? driver : ""));
    json_object_set_new(vars, "k8s_gpu_allow_reboot", json_boolean(json_is_true(reboot)));
    json_object_set_new(vars, "k8s_gpu_serial", json_string(serial_text));
    if (strcmp(stack, "device-plugin") == 0) {
        const char *image = json_string_value(json_object_get(gpu, "device_plugin_image"));
        json_t *ds = device_plugin(image ? image : DEFAULT_DEVICE_PLUGIN_IMAGE);
        json_t *names = json_pack("[s]", "nvidia-device-plugin-daemonset");
        if ((rc = synth_add(synth, "manifests", ds, err)) == 0)
            rc = synth_add(synth, "readiness",
                           gate("nvidia-device-plugin", "DaemonSet", "kube-system", names,
                                READY_TIMEOUT, "k8s/kube-system/DaemonSet/nvidia-device-plugin-daemonset",
                                NULL),
                           err);
        json_decref(names);
    } else if (strcmp(stack, "gpu-operator") == 0) {
        const char *ver = json_string_value(json_object_get(gpu, "operator_version"));
        const char *repo = json_string_value(json_object_get(gpu, "operator_repo"));
        const json_t *extra = json_object_get(gpu, "operator_values");
        /* Drivers aicp installs on the nodes are not installed again by
         * the operator's driver and toolkit containers. */
        json_t *values = json_pack("{s:{s:b}, s:{s:b}}", "driver", "enabled", driver == NULL,
                                   "toolkit", "enabled", driver == NULL);
        if (values && json_is_object(extra))
            json_object_update_recursive(values, (json_t *)extra);
        json_t *rel = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:b}", "name", "gpu-operator",
                                "chart", "nvidia/gpu-operator", "repo",
                                repo ? repo : DEFAULT_OPERATOR_REPO, "version",
                                ver ? ver : DEFAULT_OPERATOR_VERSION, "namespace", "gpu-operator",
                                "values", values, "wait", 1);
        rc = synth_add(synth, "helm_releases", rel, err);
    } else {
        rc = 0;
    }
    free(driver);
    return rc;
}

static int cni_load(const struct aicp_site *s, const json_t *cni, json_t *synth, const char **bad,
                    struct aicp_err *err)
{
    static const char *const known[] = {"manifest", "name",   "chart",     "version",
                                        "repo",     "values", "namespace", NULL};
    int rc;
    if (!json_is_object(cni))
        return bad_key(bad, "cni", err, "kubernetes.cni must be a mapping (manifest, or chart)");
    if ((rc = only_keys(cni, "kubernetes.cni", known, bad, err)) != 0) {
        *bad = "cni";
        return rc;
    }
    const char *manifest = json_string_value(json_object_get(cni, "manifest"));
    const char *chart = json_string_value(json_object_get(cni, "chart"));
    if ((manifest == NULL) == (chart == NULL))
        return bad_key(bad, "cni", err,
                       "kubernetes.cni needs a manifest (a file) or a chart, and not both");
    if (manifest != NULL) {
        char *p = path_in(s, manifest);
        json_t *e = p ? json_pack("{s:s}", "src", p) : NULL;
        free(p);
        return synth_add(synth, "manifests", e, err);
    }
    const char *name = json_string_value(json_object_get(cni, "name"));
    const char *slash = strrchr(chart, '/');
    const json_t *ver = json_object_get(cni, "version");
    json_t *e = json_pack("{s:s, s:s, s:s}", "name", name ? name : slash ? slash + 1 : chart,
                          "chart", chart, "namespace",
                          json_string_value(json_object_get(cni, "namespace"))
                              ? json_string_value(json_object_get(cni, "namespace"))
                              : "kube-system");
    if (e && ver)
        json_object_set(e, "version", (json_t *)ver);
    if (e && json_object_get(cni, "repo"))
        json_object_set(e, "repo", json_object_get(cni, "repo"));
    if (e && json_object_get(cni, "values"))
        json_object_set(e, "values", json_object_get(cni, "values"));
    if (e)
        json_object_set_new(e, "create_namespace", json_false());
    return synth_add(synth, "helm_releases", e, err);
}

int aicp_site_cluster_load(struct aicp_site *s, const json_t *k, json_t *synth, const char **bad,
                           struct aicp_err *err)
{
    static const char *const install[] = {"control_plane", "workers",          "gpu_workers",
                                          "pod_network_cidr", "service_cidr",  "packages_version",
                                          "container_runtime", "cni",          "gpu",
                                          "remove_nodes",     NULL};
    static const char *const runtime_keys[] = {"sandbox_image", "systemd_cgroup", NULL};
    const json_t *ver = json_object_get(k, "version");
    json_t *vars = NULL;
    char *pv = NULL;
    int rc;
    *bad = NULL;
    if (ver == NULL) {
        for (size_t i = 0; install[i]; i++)
            if (json_object_get(k, install[i]) != NULL)
                return bad_key(bad, install[i], err,
                               "kubernetes.%s is a cluster install setting: it needs "
                               "kubernetes.version, the version to install",
                               install[i]);
        return 0;
    }
    const char *digits = json_is_string(ver) ? version_digits(json_string_value(ver)) : NULL;
    if (digits == NULL)
        return bad_key(bad, "version", err,
                       "kubernetes.version must be a Kubernetes version such as v1.29.3");
    if ((vars = json_object()) == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    struct aicp_buf b = AICP_BUF_INIT;
    aicp_buf_printf(&b, "v%s", digits);
    json_object_set_new(vars, "k8s_version", json_string(b.data ? b.data : ""));
    aicp_buf_free(&b);
    static const char *const groups[][3] = {
        {"control_plane", "k8s_control_plane_group", "kube_control_plane"},
        {"workers", "k8s_worker_group", "kube_node"},
        {"gpu_workers", "k8s_gpu_group", "gpu_nodes"},
    };
    for (size_t i = 0; i < 3; i++) {
        const json_t *g = json_object_get(k, groups[i][0]);
        if (g != NULL && !group_ok(json_string_value(g))) {
            rc = bad_key(bad, groups[i][0], err,
                         "kubernetes.%s must name an inventory group (letters, digits, - and _)",
                         groups[i][0]);
            goto out;
        }
        json_object_set_new(vars, groups[i][1],
                            json_string(g ? json_string_value(g) : groups[i][2]));
    }
    if ((rc = set_str(vars, "k8s_pod_network_cidr", k, "pod_network_cidr", "10.244.0.0/16", bad,
                      err)) != 0 ||
        (rc = set_str(vars, "k8s_service_cidr", k, "service_cidr", "10.96.0.0/12", bad, err)) != 0)
        goto out;
    /* The Kubernetes package repository numbers 1.29.3 as 1.29.3-1.1. */
    const json_t *pkv = json_object_get(k, "packages_version");
    if (pkv != NULL) {
        if ((pv = scalar_text(pkv)) == NULL) {
            rc = bad_key(bad, "packages_version", err,
                         "kubernetes.packages_version must be a package version such as "
                         "1.29.3-1.1 (\"\" leaves the packages alone)");
            goto out;
        }
    } else if (aicp_buf_printf(&b, "%s-1.1", digits) == 0) {
        pv = aicp_buf_steal(&b);
    }
    json_object_set_new(vars, "k8s_packages_version", json_string(pv ? pv : ""));
    const json_t *cr = json_object_get(k, "container_runtime");
    if (cr != NULL) {
        if (!json_is_object(cr) || only_keys(cr, "container_runtime", runtime_keys, bad, err)) {
            rc = bad_key(bad, "container_runtime", err,
                         "kubernetes.container_runtime takes sandbox_image and systemd_cgroup");
            goto out;
        }
        const json_t *img = json_object_get(cr, "sandbox_image");
        const json_t *sc = json_object_get(cr, "systemd_cgroup");
        if ((img && !json_is_string(img)) || (sc && !json_is_boolean(sc))) {
            rc = bad_key(bad, "container_runtime", err,
                         "container_runtime.sandbox_image is an image, systemd_cgroup a boolean");
            goto out;
        }
        if (img)
            json_object_set(vars, "k8s_sandbox_image", (json_t *)img);
        if (sc)
            json_object_set(vars, "k8s_systemd_cgroup", (json_t *)sc);
    }
    if ((rc = gpu_load(s, json_object_get(k, "gpu"), vars, synth, bad, err)) != 0)
        goto out;
    if (json_object_get(k, "cni") && (rc = cni_load(s, json_object_get(k, "cni"), synth, bad, err)))
        goto out;
    const json_t *rm = json_object_get(k, "remove_nodes");
    if (rm != NULL) {
        size_t i;
        const json_t *n;
        if (!json_is_array(rm)) {
            rc = bad_key(bad, "remove_nodes", err, "kubernetes.remove_nodes must be a list of nodes");
            goto out;
        }
        json_array_foreach(rm, i, n)
        {
            if (!json_is_string(n)) {
                rc = bad_key(bad, "remove_nodes", err,
                             "kubernetes.remove_nodes must be a list of node names");
                goto out;
            }
            if ((rc = synth_add(synth, "nodes",
                                json_pack("{s:O, s:s}", "name", n, "state", "absent"), err)) != 0)
                goto out;
        }
    }
    /* The admin kubeconfig is fetched where the site reads its cluster. */
    if (s->kubeconfig == NULL) {
        const char *home = getenv("HOME");
        aicp_buf_printf(&b, "%s/.kube/aicp-%s.conf", home ? home : ".", s->name);
        s->kubeconfig = aicp_buf_steal(&b);
    }
    json_object_set_new(vars, "k8s_kubeconfig", json_string(s->kubeconfig ? s->kubeconfig : ""));
    s->cluster_vars = vars;
    vars = NULL;
    rc = 0;
out:
    free(pv);
    json_decref(vars);
    return rc;
}

int aicp_site_trident_load(const json_t *t, const char *ns, json_t *synth, const char **bad,
                           struct aicp_err *err)
{
    const json_t *ver = json_object_get(t, "version");
    char *v;
    int rc;
    *bad = NULL;
    if (ver == NULL)
        return 0;
    if ((v = scalar_text(ver)) == NULL)
        return bad_key(bad, "version", err, "trident.version must be a version such as 23.07.1");
    const char *repo = json_string_value(json_object_get(t, "repo"));
    const char *chart = json_string_value(json_object_get(t, "chart"));
    json_t *rel = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "name", "trident-operator", "chart",
                            chart ? chart : "netapp-trident/trident-operator", "repo",
                            repo ? repo : DEFAULT_TRIDENT_REPO, "version", v, "namespace", ns,
                            "wait", 1);
    free(v);
    if (rel && json_object_get(t, "values"))
        json_object_set(rel, "values", json_object_get(t, "values"));
    if ((rc = synth_add(synth, "helm_releases", rel, err)) != 0)
        return rc;
    /* Ready: the operator, the controller it deploys, a node pod on every
     * node. The backends wait for these (aicp_role trident). */
    struct aicp_buf id = AICP_BUF_INIT;
    aicp_buf_printf(&id, "helm_release/%s/trident-operator", ns);
    json_t *deps = json_pack("[s, s]", "trident-operator", "trident-controller");
    json_t *nodes = json_pack("[s]", "trident-node-linux");
    rc = synth_add(synth, "readiness",
                   gate("trident-deployments", "Deployment", ns, deps, READY_TIMEOUT,
                        id.data ? id.data : "", "trident"),
                   err);
    if (rc == 0)
        rc = synth_add(synth, "readiness",
                       gate("trident-node", "DaemonSet", ns, nodes, READY_TIMEOUT,
                            id.data ? id.data : "", "trident"),
                       err);
    json_decref(deps);
    json_decref(nodes);
    aicp_buf_free(&id);
    return rc;
}

int aicp_site_ready_load(json_t *synth, const char *release_id, const char *release,
                         const char *ns, const json_t *ready, const char **bad,
                         struct aicp_err *err)
{
    static const char *const known[] = {"deployments", "statefulsets",   "daemonsets", "url",
                                        "ca_file",     "validate_certs", "timeout",    NULL};
    static const char *const kinds[][2] = {
        {"deployments", "Deployment"}, {"statefulsets", "StatefulSet"}, {"daemonsets", "DaemonSet"}};
    long timeout = READY_TIMEOUT;
    json_t *first = NULL;
    int rc;
    *bad = "ready";
    if (!json_is_object(ready))
        return aicp_err_set(err, AICP_EINVAL,
                            "ready must be a mapping (deployments, statefulsets, daemonsets, url)");
    if ((rc = only_keys(ready, "ready", known, bad, err)) != 0)
        return rc;
    const json_t *to = json_object_get(ready, "timeout");
    if (to != NULL) {
        if (!json_is_integer(to) || json_integer_value(to) < 1)
            return aicp_err_set(err, AICP_EINVAL, "ready.timeout must be a number of seconds");
        timeout = (long)json_integer_value(to);
    }
    for (size_t i = 0; i < 3; i++) {
        const json_t *v = json_object_get(ready, kinds[i][0]);
        if (v == NULL || json_is_false(v))
            continue;
        int all = json_is_true(v) || (json_is_string(v) && strcmp(json_string_value(v), "all") == 0);
        if (!all && !json_is_array(v))
            return aicp_err_set(err, AICP_EINVAL,
                                "ready.%s must be a list of names, or all (every one of the "
                                "release's namespace)",
                                kinds[i][0]);
        struct aicp_buf name = AICP_BUF_INIT;
        aicp_buf_printf(&name, "%s-%s", release, kinds[i][0]);
        json_t *g = gate(name.data ? name.data : "", kinds[i][1], ns, all ? NULL : v, timeout,
                         release_id, NULL);
        aicp_buf_free(&name);
        if (first == NULL)
            first = g;
        if ((rc = synth_add(synth, "readiness", g, err)) != 0)
            return rc;
    }
    const json_t *url = json_object_get(ready, "url");
    if (url != NULL) {
        if (!json_is_string(url))
            return aicp_err_set(err, AICP_EINVAL, "ready.url must be a URL");
        if (first == NULL) {
            struct aicp_buf name = AICP_BUF_INIT;
            aicp_buf_printf(&name, "%s-url", release);
            first = gate(name.data ? name.data : "", "Deployment", ns, NULL, timeout, release_id,
                         NULL);
            aicp_buf_free(&name);
            if ((rc = synth_add(synth, "readiness", first, err)) != 0)
                return rc;
        }
        json_object_set(first, "url", (json_t *)url);
        if (json_object_get(ready, "ca_file"))
            json_object_set(first, "ca_file", json_object_get(ready, "ca_file"));
        if (json_object_get(ready, "validate_certs"))
            json_object_set(first, "validate_certs", json_object_get(ready, "validate_certs"));
    }
    *bad = NULL;
    return 0;
}

/* ---- running the cluster playbooks --------------------------------------- */

int aicp_site_write_private(const char *path, const char *text, struct aicp_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    size_t len = strlen(text), off = 0;
    if (fd < 0)
        return aicp_err_set(err, AICP_EIO, "%s: %s", path, strerror(errno));
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = errno;
            close(fd);
            return aicp_err_set(err, AICP_EIO, "%s: %s", path, strerror(e));
        }
        off += (size_t)n;
    }
    if (close(fd) != 0)
        return aicp_err_set(err, AICP_EIO, "%s: %s", path, strerror(errno));
    return 0;
}

int aicp_site_cluster_run(int *exit_status, const struct aicp_site *s,
                          const struct aicp_site_run_opts *o, int check, struct aicp_err *err)
{
    const char *tmp = getenv("TMPDIR");
    char dir[4096], path[4200];
    const char **inv = NULL;
    size_t ninv = 0;
    int rc, made = 0;
    *exit_status = 1;
    if (o->ninventories > 0) {
        inv = (const char **)o->inventories;
        ninv = o->ninventories;
    } else if (json_array_size(s->inventory) > 0) {
        ninv = json_array_size(s->inventory);
        if ((inv = calloc(ninv, sizeof(*inv))) == NULL)
            return aicp_err_set(err, AICP_ENOMEM, "out of memory");
        for (size_t i = 0; i < ninv; i++)
            inv[i] = json_string_value(json_array_get(s->inventory, i));
    } else {
        return aicp_err_set(err, AICP_EINVAL,
                            "%s: kubernetes.version installs a cluster on the inventory's hosts, "
                            "but the site has no inventory (add inventory: FILE, or give -i)",
                            s->path);
    }
    snprintf(dir, sizeof(dir), "%s/aicp-cluster-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        rc = aicp_err_set(err, AICP_EIO, "cannot make a private directory in %s: %s",
                          tmp && *tmp ? tmp : "/tmp", strerror(errno));
        goto out;
    }
    made = 1;
    for (size_t i = 0; aicp_site_playbooks[i].name; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, aicp_site_playbooks[i].name);
        if ((rc = aicp_site_write_private(path, aicp_site_playbooks[i].text, err)) != 0)
            goto out;
    }
    snprintf(path, sizeof(path), "%s/k8s-cluster.yml", dir);
    struct aicp_run_opts ro = {
        .inventories = inv,
        .ninventories = ninv,
        .extra_vars = s->cluster_vars,
        .check = check,
        .diff = o->diff || o->mode == AICP_SITE_PLAN,
        .verbose = o->verbose,
        .forks = o->forks > 0 ? o->forks : 20,
        .vault = o->vault,
        .secrets = o->secrets,
        .accept_new_host_keys = o->accept_new_host_keys,
    };
    fflush(o->out ? o->out : stdout);
    rc = aicp_run_playbook(exit_status, path, &ro, err);
    fflush(stdout);
out:
    if (made) {
        for (size_t i = 0; aicp_site_playbooks[i].name; i++) {
            snprintf(path, sizeof(path), "%s/%s", dir, aicp_site_playbooks[i].name);
            unlink(path);
        }
        rmdir(dir);
    }
    if (inv != (const char **)o->inventories)
        free(inv);
    return rc;
}
