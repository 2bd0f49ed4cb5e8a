/* Loading a site file: the YAML is read with positions (vaulted files and
 * !vault values open with the run's vault), its vars, vars files and the
 * command line's extra vars become the variables every value is templated
 * against, each entry of each section becomes one module call whose
 * arguments are validated against the module's table, and the dependencies
 * between the calls become a graph that must have no cycle. All of this
 * happens before any request reaches a cluster, so that a bad site is exit
 * 65 with file:line:col and nothing half-done. The schema is docs/site.md. */
#include "config.h"

#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kubeutil.h"
#include "module.h"
#include "registry.h"
#include "secret.h"
#include "site.h"
#include "site_int.h"
#include "taskutil.h"
#include "template.h"
#include "util.h"
#include "yaml.h"

/* The sections that are lists of module calls, in the order they load. */
const struct section aicp_site_sections[] = {
    {"namespaces", "namespace", "namespace", NULL, 0, 0},
    {"secrets", "secret", "secret", NULL, 1, 0},
    /* The storage comes first in the file order: Kubernetes imports it. */
    {"export_policies", "ontap_export_policy", "export_policy", "ontap", 0, 1},
    {"volumes", "ontap_volume", "volume", "ontap", 0, 1},
    {"snapshots", "ontap_snapshot", "snapshot", "ontap", 0, 1},
    {"clones", "ontap_clone", "clone", "ontap", 0, 1},
    {"snapmirror", "ontap_snapmirror", "snapmirrors", "ontap", 0, 1},
    {"trident.backends", "trident_backend", "trident", "backends", 1, 0},
    {"storage_classes", "storage_class", "storageclasses", "sc", 0, 0},
    {"pvcs", "pvc", "persistentvolumeclaims", NULL, 1, 0},
    {"manifests", "k8s", "manifest", NULL, 1, 0},
    {"jobs", "k8s_job", "job", NULL, 1, 0},
    {"helm_releases", "helm_release", "helm", "releases", 1, 0},
    {"readiness", "k8s_wait", "ready", "wait", 1, 0},
    {"nodes", "k8s_node", "node", NULL, 0, 0},
};
const size_t aicp_site_nsections = sizeof(aicp_site_sections) / sizeof(aicp_site_sections[0]);

/* Top-level keys that later versions act on: refused, never ignored. */
static const struct {
    const char *key;
    const char *what;
} later_keys[] = {
    {"", ""},
};

/* ---- errors with positions ----------------------------------------------- */

static const struct aicp_loc *loc_of(const struct loader *L, const json_t *node,
                                     const json_t *fallback)
{
    const struct aicp_loc *l = node ? aicp_srcmap_get(L->s->map, node) : NULL;
    if (l == NULL && fallback != NULL)
        l = aicp_srcmap_get(L->s->map, fallback);
    return l;
}

int aicp_site_fail_at(struct loader *L, const json_t *node, const json_t *fallback, int code,
                      const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const struct aicp_loc *l = loc_of(L, node, fallback);
    if (l != NULL)
        return aicp_err_set(L->err, code, "%s:%d:%d: %s", l->file, l->line, l->col, msg);
    return aicp_err_set(L->err, code, "%s: %s", L->s->path, msg);
}

/* Puts the entry's position in front of an error made elsewhere. */
static void prefix_at(struct loader *L, const json_t *node, const json_t *fallback)
{
    const struct aicp_loc *l = loc_of(L, node, fallback);
    if (l != NULL)
        aicp_err_prefix(L->err, "%s:%d:%d", l->file, l->line, l->col);
    else
        aicp_err_prefix(L->err, "%s", L->s->path);
}

/* ---- small helpers ---------------------------------------------------------- */

/* The module's argument (by name or alias), or NULL. */
static const struct aicp_arg_spec *mod_arg(const struct aicp_module *mod, const char *k)
{
    size_t kl = strlen(k);
    for (const struct aicp_arg_spec *a = mod->args; a && a->name; a++) {
        if (strcmp(a->name, k) == 0)
            return a;
        for (const char *p = a->aliases; p && *p;) {
            const char *bar = strchr(p, '|');
            size_t n = bar ? (size_t)(bar - p) : strlen(p);
            if (n == kl && strncmp(p, k, n) == 0)
                return a;
            p = bar ? bar + 1 : NULL;
        }
    }
    return NULL;
}

/* `import: {volume: x, not_managed: true}` is the module's import_volume
 * and not_managed when the module has no `import` argument of its own but
 * one per sub-key: KEY_SUB, else SUB itself. The argument's name goes to
 * name (NULL: the sub-key maps to none). */
static const char *flat_name(const struct aicp_module *mod, const char *k, const char *sub,
                             char *name, size_t size)
{
    snprintf(name, size, "%s_%s", k, sub);
    if (mod_arg(mod, name) != NULL)
        return name;
    if (mod_arg(mod, sub) != NULL)
        return sub;
    return NULL;
}

static int flattens(const struct aicp_module *mod, const char *k, const json_t *v)
{
    const char *sub;
    const json_t *x;
    char name[256];
    if (!json_is_object(v) || json_object_size(v) == 0 || mod_arg(mod, k) != NULL)
        return 0;
    json_object_foreach((json_t *)v, sub, x)
    {
        if (flat_name(mod, k, sub, name, sizeof(name)) == NULL)
            return 0;
    }
    return 1;
}

/* `import: {volum: x}`: when some of a mapping's keys map to arguments,
 * the one that does not is the mistake to name. */
static int check_flat_keys(struct loader *L, const struct aicp_module *mod, const char *k,
                           const json_t *v)
{
    const char *sub, *bad = NULL;
    const json_t *x, *badv = NULL;
    char name[256];
    int good = 0;
    json_object_foreach((json_t *)v, sub, x)
    {
        if (flat_name(mod, k, sub, name, sizeof(name)) != NULL) {
            good = 1;
        } else if (bad == NULL) {
            bad = sub;
            badv = x;
        }
    }
    if (!good || bad == NULL)
        return 0;
    return aicp_site_fail_at(L, badv, v, AICP_EINVAL,
                             "unknown key '%s' in %s (the %s module has no "
                             "argument %s_%s or %s)",
                             bad, k, mod->name, k, bad, bad);
}

static int holds_secret(const struct aicp_secrets *secrets, const json_t *v)
{
    const char *k;
    json_t *x;
    size_t i;
    if (secrets == NULL)
        return 0;
    if (json_is_string(v))
        return aicp_secrets_found(secrets, json_string_value(v), json_string_length(v));
    json_object_foreach((json_t *)v, k, x)
    {
        if (holds_secret(secrets, x))
            return 1;
    }
    json_array_foreach(v, i, x)
    {
        if (holds_secret(secrets, x))
            return 1;
    }
    return 0;
}

static int render(struct loader *L, json_t **out, const json_t *node, const json_t *fallback)
{
    int rc = aicp_tmpl_render(out, node, L->s->vars, L->err);
    if (rc != 0)
        prefix_at(L, node, fallback);
    return rc;
}

/* Relative paths in a site start at the site file's directory. */
static char *site_path(const struct aicp_site *s, const char *p)
{
    struct aicp_buf b = AICP_BUF_INIT;
    const char *home = getenv("HOME");
    if (p[0] == '~' && (p[1] == '/' || p[1] == '\0') && home != NULL) {
        if (aicp_buf_printf(&b, "%s%s", home, p + 1) != 0)
            return NULL;
        return aicp_buf_steal(&b);
    }
    if (p[0] == '/' || s->dir == NULL || strcmp(s->dir, ".") == 0)
        return aicp_strdup(p);
    if (aicp_buf_printf(&b, "%s/%s", s->dir, p) != 0)
        return NULL;
    return aicp_buf_steal(&b);
}

/* ---- vars --------------------------------------------------------------- */

static int load_vars(struct loader *L, const json_t *doc)
{
    const json_t *vars = json_object_get(doc, "vars");
    const json_t *files = json_object_get(doc, "vars_files");
    json_t *acc = json_object();
    int rc = 0;
    if (acc == NULL)
        return aicp_err_set(L->err, AICP_ENOMEM, "out of memory");
    L->s->vars = acc;
    if (vars != NULL && !json_is_null(vars)) {
        if (!json_is_object(vars))
            return aicp_site_fail_at(L, vars, doc, AICP_EINVAL, "vars must be a mapping");
        json_object_update(acc, (json_t *)vars);
    }
    /* Extra vars win over everything; they may name the vars files. */
    if (json_is_object(L->o->extra_vars))
        json_object_update(acc, (json_t *)L->o->extra_vars);
    if (files != NULL && !json_is_null(files)) {
        size_t i;
        const json_t *f;
        if (!json_is_array(files) && !json_is_string(files))
            return aicp_site_fail_at(L, files, doc, AICP_EINVAL,
                                     "vars_files must be a list of files");
        json_t *list =
            json_is_array(files) ? json_incref((json_t *)files) : json_pack("[O]", files);
        json_array_foreach(list, i, f)
        {
            json_t *name = NULL, *v = NULL;
            char *path = NULL;
            if (!json_is_string(f)) {
                rc = aicp_site_fail_at(L, f, files, AICP_EINVAL,
                                       "vars_files entries must be file names");
                break;
            }
            if ((rc = render(L, &name, f, files)) != 0)
                break;
            if (!json_is_string(name) ||
                (path = site_path(L->s, json_string_value(name))) == NULL) {
                json_decref(name);
                rc = aicp_site_fail_at(L, f, files, AICP_EINVAL,
                                       "vars_files entries must be file names");
                break;
            }
            rc = aicp_yaml_load_file(&v, path, L->s->map, L->err);
            if (rc == AICP_EIO) {
                aicp_err_clear(L->err);
                rc = aicp_site_fail_at(L, f, files, AICP_EINVAL, "cannot read vars file %s", path);
            } else if (rc == 0 && !json_is_object(v) && !json_is_null(v)) {
                rc = aicp_site_fail_at(L, f, files, AICP_EINVAL, "vars file %s must hold a mapping",
                                       path);
            } else if (rc == 0 && json_is_object(v)) {
                json_object_update(acc, v);
            }
            json_decref(v);
            json_decref(name);
            free(path);
            if (rc != 0)
                break;
        }
        json_decref(list);
        if (rc != 0)
            return rc;
        if (json_is_object(L->o->extra_vars))
            json_object_update(acc, (json_t *)L->o->extra_vars);
    }
    return 0;
}

/* ---- the settings sections ------------------------------------------------ */

static int check_keys(struct loader *L, const json_t *obj, const char *what,
                      const char *const *known, const char *const *later, const char *later_why)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        if (in_list(k, known))
            continue;
        if (in_list(k, later))
            return aicp_site_fail_at(
                L, v, obj, AICP_EINVAL,
                "%s.%s is not supported yet (%s come with a later version of aicp); "
                "remove it from the site file",
                what, k, later_why);
        return aicp_site_fail_at(L, v, obj, AICP_EINVAL, "unknown key '%s' in %s", k, what);
    }
    return 0;
}

static int load_kubernetes(struct loader *L, const json_t *doc)
{
    static const char *const known[] = {"kubeconfig",       "context",
                                        "version",          "control_plane",
                                        "workers",          "gpu_workers",
                                        "pod_network_cidr", "service_cidr",
                                        "packages_version", "container_runtime",
                                        "cni",              "gpu",
                                        "remove_nodes",     "force_conflicts",
                                        NULL};
    static const char *const later[] = {NULL};
    const json_t *k = json_object_get(doc, "kubernetes");
    json_t *r = NULL;
    int rc;
    if (k == NULL || json_is_null(k))
        return 0;
    if (!json_is_object(k))
        return aicp_site_fail_at(L, k, doc, AICP_EINVAL, "kubernetes must be a mapping");
    if ((rc = check_keys(L, k, "kubernetes", known, later, "cluster installation and nodes")) != 0)
        return rc;
    if ((rc = render(L, &r, k, doc)) != 0)
        return rc;
    const json_t *cfg = json_object_get(r, "kubeconfig"), *ctx = json_object_get(r, "context");
    const json_t *force = json_object_get(r, "force_conflicts");
    if (force && !json_is_boolean(force) && !json_is_string(force)) {
        rc = aicp_site_fail_at(L, json_object_get(k, "force_conflicts"), k, AICP_EINVAL,
                               "kubernetes.force_conflicts is true or false");
    } else if ((cfg && !json_is_string(cfg)) || (ctx && !json_is_string(ctx))) {
        rc = aicp_site_fail_at(
            L, json_object_get(k, cfg && !json_is_string(cfg) ? "kubeconfig" : "context"), k,
            AICP_EINVAL, "kubernetes.kubeconfig and kubernetes.context are strings");
    } else {
        if (cfg)
            L->s->kubeconfig = site_path(L->s, json_string_value(cfg));
        if (ctx)
            L->s->context = aicp_strdup(json_string_value(ctx));
        L->s->force_conflicts = force != NULL && aicp_task_bool(force);
        const char *bad = NULL;
        L->kube_node = k;
        if ((rc = aicp_site_cluster_load(L->s, r, L->synth, &bad, L->err)) != 0 && bad != NULL)
            prefix_at(L, json_object_get(k, bad), k);
    }
    json_decref(r);
    return rc;
}

static int load_ontap(struct loader *L, const json_t *doc)
{
    static const char *const known[] = {"management_lif", "username", "password", "ca_file",
                                        "validate_certs", "https",    NULL};
    const json_t *o = json_object_get(doc, "ontap");
    const char *name;
    json_t *c;
    int rc;
    L->ontap_raw = o;
    if (o == NULL || json_is_null(o))
        return 0;
    if (!json_is_object(o))
        return aicp_site_fail_at(L, o, doc, AICP_EINVAL,
                                 "ontap must be a mapping of cluster names to settings");
    json_object_foreach((json_t *)o, name, c)
    {
        char what[300];
        json_t *r = NULL;
        snprintf(what, sizeof(what), "ontap.%s", name);
        if (!json_is_object(c))
            return aicp_site_fail_at(L, c, o, AICP_EINVAL,
                                     "%s must be a mapping (management_lif, username, "
                                     "password)",
                                     what);
        if ((rc = check_keys(L, c, what, known, NULL, NULL)) != 0)
            return rc;
        if (json_object_get(c, "management_lif") == NULL)
            return aicp_site_fail_at(L, c, o, AICP_EINVAL, "%s has no management_lif", what);
        if ((rc = render(L, &r, c, o)) != 0)
            return rc;
        /* The password is secret wherever it goes, even if no backend uses it. */
        aicp_secrets_add_json(L->o->secrets, json_object_get(r, "password"));
        const json_t *ca = json_object_get(r, "ca_file");
        if (ca != NULL && !json_is_string(ca)) {
            json_decref(r);
            return aicp_site_fail_at(L, json_object_get(c, "ca_file"), c, AICP_EINVAL,
                                     "%s.ca_file must be a file name", what);
        }
        if (ca != NULL && json_string_length(ca) == 0) {
            /* "{{ ontap_ca_file | default('') }}": the system store. */
            json_object_del(r, "ca_file");
            ca = NULL;
        }
        if (ca != NULL) {
            /* Relative to the site file, as every path of a site is. */
            char *p = site_path(L->s, json_string_value(ca));
            if (p == NULL) {
                json_decref(r);
                return aicp_err_set(L->err, AICP_ENOMEM, "out of memory");
            }
            json_object_set_new(r, "ca_file", json_string(p));
            free(p);
        }
        if (!json_is_string(json_object_get(r, "management_lif"))) {
            json_decref(r);
            return aicp_site_fail_at(L, json_object_get(c, "management_lif"), c, AICP_EINVAL,
                                     "%s.management_lif must be an address or name", what);
        }
        json_object_set_new(L->ontap, name, r);
    }
    return 0;
}

/* ---- entries ------------------------------------------------------------- */

/* Keys that steer the site and are not module arguments. */
static const char *const common_site_keys[] = {"depends_on", NULL};
static const char *const backend_site_keys[] = {"ontap", NULL};
static const char *const sc_site_keys[] = {"backend", NULL};
static const char *const helm_site_keys[] = {"version", "repo", "timeout",
                                             "requires_default_storage_class", "ready", NULL};
/* gate: a readiness gate's name; aicp_role: what the site engine made it
 * for ("trident": Trident's backends wait for it). */
static const char *const wait_site_keys[] = {"gate", "aicp_role", NULL};

static const char *const *site_keys_of(size_t sec)
{
    if (strcmp(aicp_site_sections[sec].module, "trident_backend") == 0 ||
        aicp_site_sections[sec].ontap)
        return backend_site_keys;
    if (strcmp(aicp_site_sections[sec].module, "storage_class") == 0)
        return sc_site_keys;
    if (strcmp(aicp_site_sections[sec].module, "helm_release") == 0)
        return helm_site_keys;
    if (strcmp(aicp_site_sections[sec].module, "k8s_wait") == 0)
        return wait_site_keys;
    return NULL;
}

static int is_site_key(size_t sec, const char *k, const struct aicp_module *mod)
{
    const char *const *own = site_keys_of(sec);
    return in_list(k, common_site_keys) || (in_list(k, own) && mod_arg(mod, k) == NULL);
}

static int grow(struct loader *L)
{
    if (L->s->nres < L->cap)
        return 0;
    size_t cap = L->cap ? L->cap * 2 : 16;
    struct aicp_site_res *r = realloc(L->s->res, cap * sizeof(*r));
    if (r == NULL)
        return aicp_err_set(L->err, AICP_ENOMEM, "out of memory");
    L->s->res = r;
    struct aux *a = realloc(L->aux, cap * sizeof(*a));
    if (a == NULL)
        return aicp_err_set(L->err, AICP_ENOMEM, "out of memory");
    L->aux = a;
    L->cap = cap;
    return 0;
}

/* A backend's `ontap: CLUSTER` brings the cluster's management LIF and
 * credentials, unless the backend sets them itself. An entry of an ONTAP
 * section (ontap_default) gets the connection arguments of its cluster,
 * by default the site's only one. */
static int expand_ontap(struct loader *L, struct aicp_site_res *r, json_t *args,
                        const json_t *hints, const json_t *entry, const struct aicp_module *mod,
                        int ontap_default)
{
    const json_t *cl = json_object_get(hints, "ontap");
    const json_t *raw = json_object_get(entry, "ontap");
    if (cl == NULL && ontap_default) {
        size_t n = json_object_size(L->ontap);
        if (n == 0)
            return 0; /* the entry gives hostname & co. itself */
        if (n > 1)
            return aicp_site_fail_at(
                L, entry, NULL, AICP_EINVAL,
                "name the ONTAP cluster with ontap: (the ontap section has %zu)", n);
        void *it = json_object_iter(L->ontap);
        const char *only = json_object_iter_key(it);
        r->ontap = aicp_strdup(only);
        if (r->ontap == NULL)
            return aicp_err_set(L->err, AICP_ENOMEM, "out of memory");
        aicp_site_ontap_conn(args, json_object_iter_value(it), mod);
        return 0;
    }
    if (cl == NULL)
        return 0;
    if (!json_is_string(cl))
        return aicp_site_fail_at(L, raw, entry, AICP_EINVAL,
                                 "ontap must name a cluster of the ontap section");
    const json_t *c = json_object_get(L->ontap, json_string_value(cl));
    if (c == NULL) {
        struct aicp_buf names = AICP_BUF_INIT;
        const char *k;
        json_t *v;
        json_object_foreach(L->ontap, k, v)
        {
            aicp_buf_printf(&names, "%s%s", names.len ? ", " : "", k);
        }
        int rc = aicp_site_fail_at(L, raw, entry, AICP_EINVAL,
                                   "no ONTAP cluster '%s' in the ontap section%s%s%s",
                                   json_string_value(cl), names.len ? " (it names: " : "",
                                   names.len ? names.data : "", names.len ? ")" : "");
        aicp_buf_free(&names);
        return rc;
    }
    r->ontap = aicp_strdup(json_string_value(cl));
    if (r->ontap == NULL)
        return aicp_err_set(L->err, AICP_ENOMEM, "out of memory");
    if (ontap_default) {
        aicp_site_ontap_conn(args, c, mod);
        return 0;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)c, k, v)
    {
        if (json_object_get(args, k) == NULL && mod_arg(mod, k) != NULL)
            json_object_set(args, k, v);
    }
    return 0;
}

/* Turns a raw manifest into the k8s module's call. */
static int is_raw_manifest(const json_t *e)
{
    return json_object_get(e, "apiVersion") != NULL || json_object_get(e, "kind") != NULL;
}

static const char *manifest_arg(const struct aicp_module *mod)
{
    return mod_arg(mod, "definition")            ? "definition"
           : mod_arg(mod, "resource_definition") ? "resource_definition"
                                                 : "definition";
}

static int res_names(struct loader *L, struct aicp_site_res *r, struct aux *x, const json_t *args)
{
    const struct section *sec = &aicp_site_sections[x->sec];
    const char *name = str_of(args, "name");
    const char *ns = str_of(args, "namespace");
    if (strcmp(sec->module, "helm_release") == 0)
        ns = str_of(args, "release_namespace");
    if (strcmp(sec->module, "k8s_wait") == 0 && str_of(x->hints, "gate") != NULL)
        name = str_of(x->hints, "gate");
    struct aicp_buf id = AICP_BUF_INIT, label = AICP_BUF_INIT, nm = AICP_BUF_INIT;
    if (sec->ontap) {
        int rc = aicp_site_ontap_names(r, args);
        if (rc == AICP_ENOMEM)
            return aicp_err_set(L->err, rc, "out of memory");
        if (rc != 0)
            return aicp_site_fail_at(L, x->entry, NULL, AICP_EINVAL, "%s entry has no name",
                                     sec->key);
        goto dup;
    }
    if (strcmp(sec->module, "k8s") == 0) {
        const json_t *def = json_object_get(args, manifest_arg(r->mod));
        const json_t *md = json_object_get(def, "metadata");
        const char *kind = str_of(def, "kind");
        if (str_of(md, "name") != NULL) {
            aicp_buf_printf(&nm, "%s/%s", kind ? kind : "object", str_of(md, "name"));
            if (str_of(md, "namespace"))
                ns = str_of(md, "namespace");
            if (kind && strcmp(kind, "Namespace") == 0)
                x->provides_ns = str_of(md, "name");
        } else if (name != NULL) {
            aicp_buf_puts(&nm, name);
        } else if (str_of(args, "src") != NULL) {
            aicp_buf_puts(&nm, str_of(args, "src"));
        }
        name = nm.data;
    }
    if (name == NULL || *name == '\0') {
        aicp_buf_free(&nm);
        return aicp_site_fail_at(L, x->entry, NULL, AICP_EINVAL, "%s entry has no name", sec->key);
    }
    if (strcmp(sec->module, "namespace") == 0)
        x->provides_ns = str_of(args, "name");
    if (sec->namespaced && ns == NULL && strcmp(sec->module, "k8s") != 0)
        ns = "default";
    r->name = aicp_strdup(name);
    r->ns = ns ? aicp_strdup(ns) : NULL;
    if (ns)
        aicp_buf_printf(&id, "%s/%s/%s", sec->module, ns, name);
    else
        aicp_buf_printf(&id, "%s/%s", sec->module, name);
    aicp_buf_printf(&label, "%s %s%s%s", sec->module, ns ? ns : "", ns ? "/" : "", name);
    r->id = aicp_buf_steal(&id);
    r->label = aicp_buf_steal(&label);
    aicp_buf_free(&nm);
    if (r->name == NULL || (ns && r->ns == NULL))
        return aicp_err_set(L->err, AICP_ENOMEM, "out of memory");
dup:
    for (size_t i = 0; i + 1 < L->s->nres; i++)
        if (strcmp(L->s->res[i].id, r->id) == 0)
            return aicp_site_fail_at(L, x->entry, NULL, AICP_EINVAL,
                                     "%s is declared twice (first at line %d)", r->id,
                                     L->s->res[i].loc.line);
    return 0;
}

/* A helm_releases entry in the helm_release module's words: the site's
 * short keys become its arguments, the namespace is created unless the
 * entry says otherwise, values files start at the site file's directory,
 * and requires_default_storage_class is the runner's pre-check. */
static int helm_args(struct loader *L, struct aicp_site_res *r, json_t *args, json_t *hints,
                     const json_t *e)
{
    static const char *const renames[][2] = {
        {"version", "chart_version"}, {"repo", "chart_repo_url"}, {"timeout", "wait_timeout"}};
    for (size_t i = 0; i < sizeof(renames) / sizeof(renames[0]); i++) {
        json_t *v = json_object_get(hints, renames[i][0]);
        if (v == NULL)
            continue;
        if (json_object_get(args, renames[i][1]) != NULL)
            return aicp_site_fail_at(L, json_object_get(e, renames[i][0]), e, AICP_EINVAL,
                                     "give %s or %s, not both", renames[i][0], renames[i][1]);
        /* 1.2 in YAML is a number; a chart version or timeout is a string. */
        if (json_is_number(v)) {
            char num[64];
            if (json_is_integer(v))
                snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
            else
                snprintf(num, sizeof(num), "%g", json_real_value(v));
            json_object_set_new(args, renames[i][1], json_string(num));
        } else {
            json_object_set(args, renames[i][1], v);
        }
        json_object_del(hints, renames[i][0]);
    }
    const json_t *gate = json_object_get(hints, "requires_default_storage_class");
    if (gate != NULL && !json_is_boolean(gate))
        return aicp_site_fail_at(L, json_object_get(e, "requires_default_storage_class"), e,
                                 AICP_EINVAL,
                                 "requires_default_storage_class must be true or false");
    r->needs_default_sc = json_is_true(gate);
    if (json_object_get(args, "release_namespace") == NULL &&
        json_object_get(args, "namespace") == NULL)
        json_object_set_new(args, "release_namespace", json_string("default"));
    if (json_object_get(args, "create_namespace") == NULL)
        json_object_set_new(args, "create_namespace", json_true());
    const json_t *ready = json_object_get(hints, "ready");
    if (ready != NULL) {
        const char *ns = str_of(args, "release_namespace");
        const char *name = str_of(args, "name");
        const char *bad = NULL;
        struct aicp_buf id = AICP_BUF_INIT;
        if (ns == NULL)
            ns = str_of(args, "namespace");
        aicp_buf_printf(&id, "helm_release/%s/%s", ns ? ns : "default", name ? name : "");
        int rc = aicp_site_ready_load(L->synth, id.data ? id.data : "", name ? name : "release",
                                      ns ? ns : "default", ready, &bad, L->err);
        aicp_buf_free(&id);
        if (rc != 0) {
            prefix_at(L, json_object_get(e, "ready"), e);
            return rc;
        }
    }
    json_t *files = json_object_get(args, "values_files");
    if (json_is_string(files)) {
        json_object_set_new(args, "values_files", json_pack("[O]", files));
        files = json_object_get(args, "values_files");
    }
    size_t i;
    json_t *f;
    json_array_foreach(files, i, f)
    {
        if (!json_is_string(f))
            return aicp_site_fail_at(L, json_object_get(e, "values_files"), e, AICP_EINVAL,
                                     "values_files must be a list of file names");
        char *p = site_path(L->s, json_string_value(f));
        if (p == NULL || json_array_set_new(files, i, json_string(p)) != 0) {
            free(p);
            return aicp_err_set(L->err, AICP_ENOMEM, "out of memory");
        }
        free(p);
    }
    return 0;
}

/* What a Kubernetes module checks beyond its argument table (a Job's
 * volumes, a PVC's size and import), checked now rather than against the
 * cluster: the module's check runs with no Kubernetes client, so it stops
 * where it would first ask the cluster; an argument error (AICP_EINVAL)
 * before that point is the site's. Anything else needs the cluster and is
 * left to the run. */
static int dry_check(struct loader *L, const struct aicp_module *mod, const struct aicp_args *a)
{
    json_t *scratch = json_object(), *current = NULL;
    struct aicp_err e = {0}, noclient = {0};
    struct aicp_kube *k = NULL;
    int rc = 0;
    if (!(mod->flags & AICP_MOD_NEEDS_KUBE) || mod->ops == NULL || mod->ops->check == NULL)
        goto out;
    if (scratch == NULL) {
        rc = aicp_err_set(L->err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    struct aicp_ctx ctx = {
        .host = L->s->name,
        .vars = L->s->vars,
        .search_dir = L->s->dir,
        .result = scratch,
    };
    /* How the check says it reached the cluster: not an argument error. */
    (void)aicp_ku_client(&ctx, a, &k, &noclient);
    if (mod->ops->check(&ctx, a, &current, &e) == AICP_EINVAL && strcmp(e.msg, noclient.msg) != 0)
        rc = aicp_err_set(L->err, AICP_EINVAL, "%s", e.msg);
out:
    json_decref(current);
    json_decref(scratch);
    return rc;
}

static int load_entry(struct loader *L, size_t sec, const json_t *e, const json_t *list)
{
    const struct section *S = &aicp_site_sections[sec];
    const struct aicp_module *mod = L->find(S->module);
    json_t *rendered = NULL, *args = NULL, *hints = NULL, *own = NULL;
    struct aicp_args valid = {0};
    int rc;
    if (mod == NULL)
        return aicp_site_fail_at(L, e, list, AICP_EINVAL,
                                 "%s needs the module '%s', which this aicp lacks", S->key,
                                 S->module);
    if (json_is_string(e) && strcmp(S->module, "namespace") == 0)
        e = own = json_pack("{s:O}", "name", e);
    if (!json_is_object(e)) {
        json_decref(own);
        return aicp_site_fail_at(L, e, list, AICP_EINVAL, "%s entries must be mappings", S->key);
    }
    if ((rc = grow(L)) != 0)
        goto out;
    struct aicp_site_res *r = &L->s->res[L->s->nres];
    struct aux *x = &L->aux[L->s->nres];
    memset(r, 0, sizeof(*r));
    memset(x, 0, sizeof(*x));
    L->s->nres++;
    r->section = S->key;
    r->mod = mod;
    x->entry = own ? list : e;
    x->sec = sec;
    const struct aicp_loc *l = loc_of(L, e, list);
    if (l != NULL)
        r->loc = *l;
    else
        r->loc.file = L->s->path;
    int raw = strcmp(S->module, "k8s") == 0 && is_raw_manifest(e);
    /* Unknown keys, before rendering: the positions are the written ones. */
    const char *k;
    json_t *v;
    if (!raw && !(mod->flags & AICP_MOD_ANY_ARGS)) {
        json_object_foreach((json_t *)e, k, v)
        {
            if (is_site_key(sec, k, mod) || mod_arg(mod, k) != NULL || flattens(mod, k, v))
                continue;
            if ((rc = check_flat_keys(L, mod, k, v)) != 0)
                goto out;
            rc = aicp_site_fail_at(
                L, v, e, AICP_EINVAL,
                "unknown key '%s' in a %s entry (the %s module has no such argument: "
                "aicp modules %s lists them)",
                k, S->key, mod->name, mod->name);
            goto out;
        }
    }
    if ((rc = render(L, &rendered, e, list)) != 0)
        goto out;
    if (!json_is_object(rendered)) {
        rc = aicp_site_fail_at(L, e, list, AICP_EINVAL, "%s entries must be mappings", S->key);
        goto out;
    }
    args = json_object();
    hints = json_object();
    if (args == NULL || hints == NULL) {
        rc = aicp_err_set(L->err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (raw) {
        json_t *def = json_deep_copy(rendered);
        json_t *deps = json_object_get(def, "depends_on");
        if (deps)
            json_object_set(hints, "depends_on", deps);
        json_object_del(def, "depends_on");
        json_object_set_new(args, manifest_arg(mod), def);
    } else {
        json_object_foreach(rendered, k, v)
        {
            if (is_site_key(sec, k, mod)) {
                json_object_set(hints, k, v);
            } else if (mod_arg(mod, k) == NULL && flattens(mod, k, v)) {
                const char *sub;
                json_t *sv;
                json_object_foreach(v, sub, sv)
                {
                    char name[256];
                    json_object_set(args, flat_name(mod, k, sub, name, sizeof(name)), sv);
                }
            } else {
                json_object_set(args, k, v);
            }
        }
    }
    if (strcmp(S->module, "trident_backend") == 0) {
        if (json_object_get(args, "namespace") == NULL && mod_arg(mod, "namespace") != NULL)
            json_object_set_new(args, "namespace", json_string(L->trident_ns));
        if ((rc = expand_ontap(L, r, args, hints, e, mod, 0)) != 0)
            goto out;
    } else if (S->ontap && (rc = expand_ontap(L, r, args, hints, e, mod, 1)) != 0) {
        goto out;
    }
    if (strcmp(S->module, "helm_release") == 0 && (rc = helm_args(L, r, args, hints, e)) != 0)
        goto out;
    /* Imports look the backend up where the site's Trident lives. */
    if (strcmp(S->module, "pvc") == 0 && json_object_get(args, "trident_namespace") == NULL &&
        mod_arg(mod, "trident_namespace") != NULL && json_object_get(args, "import_volume") != NULL)
        json_object_set_new(args, "trident_namespace", json_string(L->trident_ns));
    x->hints = hints;
    hints = NULL;
    x->backend_hint = str_of(x->hints, "backend");
    if (json_object_get(x->hints, "backend") && x->backend_hint == NULL) {
        rc = aicp_site_fail_at(L, json_object_get(e, "backend"), e, AICP_EINVAL,
                               "backend must name a backend");
        goto out;
    }
    r->args = args;
    args = NULL;
    /* Validate the module call as the module will see it at run time. */
    if ((rc = aicp_args_validate(&valid, mod, r->args, 0, L->err)) != 0 ||
        (rc = dry_check(L, mod, &valid)) != 0) {
        prefix_at(L, e, list);
        goto out;
    }
    /* As the executor does: secrets are registered for masking; a
     * credential (an API password) does not hide the resource's diff. */
    int secret = 0;
    json_object_foreach(valid.v, k, v)
    {
        int credential = aicp_arg_is_credential(mod, k);
        if (aicp_arg_is_secret(mod, k) || credential) {
            aicp_secrets_add_json(L->o->secrets, v);
            secret |= !credential;
        } else {
            secret |= holds_secret(L->o->secrets, v);
        }
    }
    r->secret = secret;
    rc = res_names(L, r, x, valid.v);
    if (rc == 0 && x->provides_ns != NULL) {
        /* Borrowed from args: keep a string that lives as long as r. */
        x->provides_ns = r->name;
        if (strcmp(S->module, "k8s") == 0) {
            const char *slash = strchr(r->name, '/');
            x->provides_ns = slash ? slash + 1 : r->name;
        }
    }
out:
    aicp_args_clear(&valid);
    json_decref(rendered);
    json_decref(args);
    json_decref(hints);
    json_decref(own);
    return rc;
}

static const json_t *section_node(const json_t *doc, const char *key)
{
    if (strcmp(key, "trident.backends") == 0)
        return json_object_get(json_object_get(doc, "trident"), "backends");
    return json_object_get(doc, key);
}

static int load_trident(struct loader *L, const json_t *doc)
{
    static const char *const known[] = {"namespace", "backends", "version", "chart",
                                        "repo",      "values",   NULL};
    static const char *const later[] = {NULL};
    const json_t *t = json_object_get(doc, "trident");
    int rc;
    L->trident_ns = "trident";
    if (t == NULL || json_is_null(t))
        return 0;
    if (!json_is_object(t))
        return aicp_site_fail_at(L, t, doc, AICP_EINVAL,
                                 "trident must be a mapping (namespace, backends)");
    if ((rc = check_keys(L, t, "trident", known, later, "Trident installation and upgrades")) != 0)
        return rc;
    const json_t *ns = json_object_get(t, "namespace");
    if (ns != NULL) {
        json_t *r = NULL;
        if ((rc = render(L, &r, ns, t)) != 0)
            return rc;
        if (!json_is_string(r) || json_string_length(r) == 0) {
            json_decref(r);
            return aicp_site_fail_at(L, ns, t, AICP_EINVAL,
                                     "trident.namespace must be a namespace name");
        }
        L->trident_ns_v = r;
        L->trident_ns = json_string_value(r);
    }
    if (json_object_get(t, "version") != NULL) {
        json_t *r = NULL;
        const char *bad = NULL;
        if ((rc = render(L, &r, t, doc)) != 0)
            return rc;
        rc = aicp_site_trident_load(r, L->trident_ns, L->synth, &bad, L->err);
        json_decref(r);
        if (rc != 0) {
            prefix_at(L, bad ? json_object_get(t, bad) : t, t);
            return rc;
        }
        if (L->kube_node == NULL)
            L->kube_node = t;
    }
    return 0;
}

static int load_sections(struct loader *L, const json_t *doc)
{
    int rc;
    for (size_t sec = 0; sec < aicp_site_nsections; sec++) {
        const json_t *list = section_node(doc, aicp_site_sections[sec].key);
        size_t i;
        const json_t *e;
        if (list == NULL || json_is_null(list))
            continue;
        if (!json_is_array(list))
            return aicp_site_fail_at(L, list, doc, AICP_EINVAL, "%s must be a list",
                                     aicp_site_sections[sec].key);
        json_array_foreach(list, i, e)
        {
            if ((rc = load_entry(L, sec, e, list)) != 0)
                return rc;
        }
    }
    /* What the settings add, in section order (helm_releases' gates were
     * added while their releases loaded). */
    for (size_t sec = 0; sec < aicp_site_nsections; sec++) {
        const json_t *list = json_object_get(L->synth, aicp_site_sections[sec].key);
        size_t i;
        const json_t *e;
        json_array_foreach(list, i, e)
        {
            if ((rc = load_entry(L, sec, e, L->kube_node ? L->kube_node : doc)) != 0)
                return rc;
        }
    }
    return 0;
}


/* ---- loading ------------------------------------------------------------ */

static int check_top(struct loader *L, const json_t *doc)
{
    static const char *const known[] = {"site",
                                        "vars",
                                        "vars_files",
                                        "kubernetes",
                                        "ontap",
                                        "trident",
                                        "namespaces",
                                        "secrets",
                                        "storage_classes",
                                        "pvcs",
                                        "manifests",
                                        "jobs",
                                        "export_policies",
                                        "volumes",
                                        "snapshots",
                                        "clones",
                                        "snapmirror",
                                        "helm_releases",
                                        "inventory",
                                        "validation",
                                        "readiness",
                                        "nodes",
                                        NULL};
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)doc, k, v)
    {
        if (in_list(k, known))
            continue;
        for (size_t i = 0; i < sizeof(later_keys) / sizeof(later_keys[0]); i++)
            if (strcmp(later_keys[i].key, k) == 0)
                return aicp_site_fail_at(
                    L, v, doc, AICP_EINVAL,
                    "'%s' is not supported yet (%s come with a later version of aicp); "
                    "remove it from the site file",
                    k, later_keys[i].what);
        return aicp_site_fail_at(L, v, doc, AICP_EINVAL,
                                 "unknown key '%s' at the top of the site file", k);
    }
    return 0;
}

/* inventory: a file or a list of them, for the cluster layer's hosts. */
static int load_inventory(struct loader *L, const json_t *doc)
{
    const json_t *raw = json_object_get(doc, "inventory");
    json_t *r = NULL;
    size_t i;
    json_t *v;
    int rc;
    if (raw == NULL || json_is_null(raw))
        return 0;
    if ((rc = render(L, &r, raw, doc)) != 0)
        return rc;
    if (json_is_string(r)) {
        json_t *one = json_pack("[o]", r);
        r = one;
    }
    L->s->inventory = json_array();
    json_array_foreach(r, i, v)
    {
        char *p = json_is_string(v) && json_string_length(v) ? site_path(L->s, json_string_value(v))
                                                             : NULL;
        if (p == NULL) {
            json_decref(r);
            return aicp_site_fail_at(L, raw, doc, AICP_EINVAL,
                                     "inventory must be an inventory file or a list of them");
        }
        json_array_append_new(L->s->inventory, json_string(p));
        free(p);
    }
    if (!json_is_array(r) || L->s->inventory == NULL) {
        json_decref(r);
        return aicp_site_fail_at(L, raw, doc, AICP_EINVAL,
                                 "inventory must be an inventory file or a list of them");
    }
    json_decref(r);
    return 0;
}

/* validation: the benchmarks `aicp validate` runs (agent/site_validate.c
 * checks each entry's keys). */
static int load_validation(struct loader *L, const json_t *doc)
{
    const json_t *raw = json_object_get(doc, "validation");
    json_t *r = NULL;
    size_t i;
    json_t *e;
    int rc;
    if (raw == NULL || json_is_null(raw))
        return 0;
    if (!json_is_array(raw))
        return aicp_site_fail_at(L, raw, doc, AICP_EINVAL,
                                 "validation must be a list of benchmarks");
    if ((rc = render(L, &r, raw, doc)) != 0)
        return rc;
    json_array_foreach(r, i, e)
    {
        const char *bad = NULL;
        if ((rc = aicp_site_validation_check(e, i, &bad, L->err)) != 0) {
            const json_t *re = json_array_get(raw, i);
            prefix_at(L, bad && json_object_get(re, bad) ? json_object_get(re, bad) : re, raw);
            json_decref(r);
            return rc;
        }
    }
    L->s->validation = r;
    return 0;
}

static int load_doc(struct loader *L, const json_t *doc)
{
    struct aicp_site *s = L->s;
    int rc;
    if (json_is_null(doc))
        return aicp_err_set(L->err, AICP_EINVAL, "%s: the site file is empty", s->path);
    if (!json_is_object(doc))
        return aicp_site_fail_at(L, doc, NULL, AICP_EINVAL,
                                 "a site file is a mapping (site, kubernetes, "
                                 "trident, storage_classes, pvcs...)");
    if ((rc = check_top(L, doc)) != 0)
        return rc;
    const json_t *name = json_object_get(doc, "site");
    if (name != NULL) {
        if (!json_is_string(name) || json_string_length(name) == 0)
            return aicp_site_fail_at(L, name, doc, AICP_EINVAL, "site must be the site's name");
        s->name = aicp_strdup(json_string_value(name));
    } else {
        char *copy = aicp_strdup(s->path);
        char *base = copy ? basename(copy) : NULL;
        char *dot = base ? strstr(base, ".yml") : NULL;
        if (dot == NULL && base)
            dot = strstr(base, ".yaml");
        if (dot)
            *dot = '\0';
        if (dot && dot - base > 5 && strcmp(dot - 5, ".site") == 0)
            dot[-5] = '\0';
        s->name = aicp_strdup(base ? base : "site");
        free(copy);
    }
    if ((rc = load_vars(L, doc)) != 0 || (rc = load_inventory(L, doc)) != 0 ||
        (rc = load_validation(L, doc)) != 0 || (rc = load_kubernetes(L, doc)) != 0 ||
        (rc = load_ontap(L, doc)) != 0 || (rc = load_trident(L, doc)) != 0 ||
        (rc = load_sections(L, doc)) != 0 || (rc = aicp_site_build_graph(L)) != 0 ||
        (rc = aicp_site_order_graph(L)) != 0)
        return rc;
    return 0;
}

static int load_common(struct aicp_site **out, const char *path, const char *text, size_t len,
                       const struct aicp_site_load_opts *o, struct aicp_err *err)
{
    static const struct aicp_site_load_opts none = {0};
    struct loader L = {.o = o ? o : &none, .err = err};
    json_t *doc = NULL;
    int rc;
    *out = NULL;
    L.find = L.o->find_module ? L.o->find_module : aicp_module_find;
    L.s = calloc(1, sizeof(*L.s));
    L.ontap = json_object();
    L.synth = json_object();
    if (L.s == NULL || L.ontap == NULL || L.synth == NULL || aicp_srcmap_new(&L.s->map) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    aicp_srcmap_set_vault(L.s->map, L.o->vault, L.o->secrets);
    L.s->path = aicp_strdup(path);
    char *copy = aicp_strdup(path);
    L.s->dir = copy ? aicp_strdup(dirname(copy)) : NULL;
    free(copy);
    if (L.s->path == NULL || L.s->dir == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (text == NULL) {
        rc = aicp_yaml_load_file(&doc, path, L.s->map, err);
        if (rc == AICP_EIO)
            rc = AICP_EINVAL; /* a missing site file is bad input */
    } else {
        rc = aicp_yaml_load_string(&doc, text, len, path, L.s->map, err);
    }
    if (rc != 0)
        goto out;
    rc = load_doc(&L, doc);
out:
    for (size_t i = 0; L.s && i < L.s->nres; i++)
        json_decref(L.aux[i].hints);
    free(L.aux);
    if (L.s != NULL)
        L.s->ontap = json_incref(L.ontap);
    json_decref(L.ontap);
    json_decref(L.trident_ns_v);
    json_decref(L.synth);
    json_decref(doc);
    if (rc != 0) {
        aicp_site_free(L.s);
        return rc;
    }
    *out = L.s;
    return 0;
}

int aicp_site_load(struct aicp_site **out, const char *path, const struct aicp_site_load_opts *o,
                   struct aicp_err *err)
{
    return load_common(out, path, NULL, 0, o, err);
}

int aicp_site_load_string(struct aicp_site **out, const char *text, size_t len, const char *name,
                          const struct aicp_site_load_opts *o, struct aicp_err *err)
{
    return load_common(out, name ? name : "site.yml", text ? text : "", text ? len : 0, o, err);
}

void aicp_site_free(struct aicp_site *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nres; i++) {
        struct aicp_site_res *r = &s->res[i];
        free(r->name);
        free(r->ns);
        free(r->id);
        free(r->label);
        json_decref(r->args);
        free(r->deps);
        free(r->ontap);
    }
    free(s->res);
    free(s->order);
    free(s->name);
    free(s->path);
    free(s->dir);
    free(s->kubeconfig);
    free(s->context);
    json_decref(s->vars);
    json_decref(s->ontap);
    json_decref(s->inventory);
    json_decref(s->cluster_vars);
    json_decref(s->validation);
    aicp_srcmap_free(s->map);
    free(s);
}
