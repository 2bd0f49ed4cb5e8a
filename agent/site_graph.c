/* The dependency graph of a loaded site: which resources each resource
 * needs made first (its namespace, the Secrets and PVCs its arguments name,
 * a storage class's Trident backends, a PVC's storage class, the Trident
 * install a backend waits on, and the site file's own depends_on), and
 * the order that follows the file while honouring every edge, with a
 * cycle refused as file:line:col and the path around it. site.c calls
 * this once every section has become resources. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "module.h"
#include "site.h"
#include "site_int.h"
#include "taskutil.h"
#include "util.h"

static int add_dep(struct loader *L, size_t from, size_t to)
{
    struct aicp_site_res *r = &L->s->res[from];
    if (from == to)
        return 0;
    for (size_t i = 0; i < r->ndeps; i++)
        if (r->deps[i] == to)
            return 0;
    size_t *d = realloc(r->deps, (r->ndeps + 1) * sizeof(*d));
    if (d == NULL)
        return aicp_err_set(L->err, AICP_ENOMEM, "out of memory");
    d[r->ndeps++] = to;
    r->deps = d;
    return 0;
}

/* Resources of one module with this name (and namespace, when given). */
static int dep_on_named(struct loader *L, size_t from, const char *module, const char *ns,
                        const char *name)
{
    int rc;
    for (size_t i = 0; name && i < L->s->nres; i++) {
        const struct aicp_site_res *o = &L->s->res[i];
        if (strcmp(o->mod->name, module) != 0 || strcmp(o->name, name) != 0)
            continue;
        if (ns != NULL && o->ns != NULL && strcmp(ns, o->ns) != 0)
            continue;
        if ((rc = add_dep(L, from, i)) != 0)
            return rc;
    }
    return 0;
}

/* Keys under which a module's arguments name a Secret or a PVC. */
static const char *const secret_ref_keys[] = {
    "secret", "secrets", "secret_name", "secretName", "credentials", "credentials_secret", NULL};
static const char *const pvc_ref_keys[] = {
    "claimName", "claim_name", "pvc", "pvcs", "persistent_volume_claim", NULL};

static int dep_refs(struct loader *L, size_t from, const char *module, const json_t *v)
{
    size_t i;
    const json_t *x;
    const char *ns = L->s->res[from].ns;
    if (json_is_string(v))
        return dep_on_named(L, from, module, ns, json_string_value(v));
    if (json_is_object(v))
        return dep_on_named(L, from, module, ns, str_of(v, "name"));
    json_array_foreach(v, i, x)
    {
        int rc = dep_refs(L, from, module, x);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int scan_refs(struct loader *L, size_t from, const json_t *v)
{
    const char *k;
    const json_t *x;
    size_t i;
    int rc;
    json_object_foreach((json_t *)v, k, x)
    {
        if (in_list(k, secret_ref_keys) && (rc = dep_refs(L, from, "secret", x)) != 0)
            return rc;
        if (in_list(k, pvc_ref_keys) && (rc = dep_refs(L, from, "pvc", x)) != 0)
            return rc;
        if ((rc = scan_refs(L, from, x)) != 0)
            return rc;
    }
    json_array_foreach(v, i, x)
    {
        if ((rc = scan_refs(L, from, x)) != 0)
            return rc;
    }
    return 0;
}

/* Trident's storagePools: "backend:pool,pool;backend2:.*" (or a list). */
static int dep_pools(struct loader *L, size_t from, const json_t *v, int *named)
{
    size_t i;
    const json_t *x;
    int rc;
    if (json_is_array(v)) {
        json_array_foreach(v, i, x)
        {
            if ((rc = dep_pools(L, from, x, named)) != 0)
                return rc;
        }
        return 0;
    }
    if (!json_is_string(v))
        return 0;
    char *copy = aicp_strdup(json_string_value(v)), *save = NULL;
    if (copy == NULL)
        return aicp_err_set(L->err, AICP_ENOMEM, "out of memory");
    rc = 0;
    for (char *t = strtok_r(copy, ";", &save); t && rc == 0; t = strtok_r(NULL, ";", &save)) {
        char *colon = strchr(t, ':');
        if (colon)
            *colon = '\0';
        while (*t == ' ')
            t++;
        *named = 1;
        rc = dep_on_named(L, from, "trident_backend", NULL, t);
    }
    free(copy);
    return rc;
}

static const char *backend_driver(const json_t *args)
{
    const char *d = str_of(args, "driver");
    return d ? d : str_of(args, "storage_driver_name");
}

static int dep_list(struct loader *L, size_t from, const json_t *deps, const json_t *raw)
{
    size_t i;
    const json_t *d;
    json_array_foreach(deps, i, d)
    {
        const json_t *rd = json_array_get(raw, i);
        if (!json_is_string(d))
            return aicp_site_fail_at(L, rd, raw, AICP_EINVAL,
                                     "depends_on entries are kind/name strings");
        long j = aicp_site_find(L->s, json_string_value(d));
        if (j < 0)
            return aicp_site_fail_at(L, rd, raw, AICP_EINVAL,
                                     "depends_on: no resource '%s' in this site",
                                     json_string_value(d));
        if ((size_t)j == from)
            return aicp_site_fail_at(L, rd, raw, AICP_EINVAL,
                                     "dependency cycle: %s depends on itself", L->s->res[from].id);
        int rc = add_dep(L, from, (size_t)j);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int dep_explicit(struct loader *L, size_t from)
{
    const json_t *deps = json_object_get(L->aux[from].hints, "depends_on");
    const json_t *raw = json_object_get(L->aux[from].entry, "depends_on");
    if (deps == NULL)
        return 0;
    if (json_is_string(deps)) {
        /* One name is a list of one. */
        json_t *one = json_pack("[O]", deps), *rone = json_pack("[O]", raw);
        int rc = one && rone ? dep_list(L, from, one, rone)
                             : aicp_err_set(L->err, AICP_ENOMEM, "out of memory");
        json_decref(one);
        json_decref(rone);
        return rc;
    }
    if (!json_is_array(deps))
        return aicp_site_fail_at(L, raw, L->aux[from].entry, AICP_EINVAL,
                                 "depends_on must be a list of resources (kind/name)");
    return dep_list(L, from, deps, raw);
}

int aicp_site_build_graph(struct loader *L)
{
    struct aicp_site *s = L->s;
    long default_sc = -1;
    int rc;
    for (size_t i = 0; i < s->nres; i++) {
        if (strcmp(s->res[i].mod->name, "storage_class") != 0 ||
            !aicp_task_bool(json_object_get(s->res[i].args, "default")))
            continue;
        /* A cluster has one default class: two would take the annotation
         * from each other on every apply. */
        if (default_sc >= 0)
            return aicp_site_fail_at(
                L, json_object_get(L->aux[i].entry, "default"), L->aux[i].entry, AICP_EINVAL,
                "storage class '%s' is default: true, and so is '%s': a cluster "
                "has one default class",
                s->res[i].name, s->res[default_sc].name);
        default_sc = (long)i;
    }
    for (size_t i = 0; i < s->nres; i++) {
        struct aicp_site_res *r = &s->res[i];
        const char *m = r->mod->name;
        /* The namespace first. */
        for (size_t j = 0; r->ns && j < s->nres; j++)
            if (L->aux[j].provides_ns && strcmp(L->aux[j].provides_ns, r->ns) == 0 &&
                (rc = add_dep(L, i, j)) != 0)
                return rc;
        if (strcmp(m, "storage_class") == 0) {
            int named = 0;
            if (L->aux[i].backend_hint) {
                named = 1;
                if ((rc = dep_on_named(L, i, "trident_backend", NULL, L->aux[i].backend_hint)) != 0)
                    return rc;
                if (r->ndeps == 0)
                    return aicp_site_fail_at(L, json_object_get(L->aux[i].entry, "backend"),
                                             L->aux[i].entry, AICP_EINVAL,
                                             "backend: no trident backend '%s' in this site",
                                             L->aux[i].backend_hint);
            }
            if ((rc = dep_pools(L, i, json_object_get(r->args, "storage_pools"), &named)) != 0)
                return rc;
            if ((rc = dep_pools(L, i, json_object_get(r->args, "additional_storage_pools"),
                                &named)) != 0)
                return rc;
            const char *bt = str_of(r->args, "backend_type");
            for (size_t j = 0; !named && bt && j < s->nres; j++) {
                const char *d = backend_driver(s->res[j].args);
                if (strcmp(s->res[j].mod->name, "trident_backend") == 0 && d &&
                    strcmp(d, bt) == 0 && (rc = add_dep(L, i, j)) != 0)
                    return rc;
            }
        } else if (strcmp(m, "pvc") == 0) {
            const char *sc = str_of(r->args, "storage_class");
            if (sc == NULL)
                sc = str_of(r->args, "storage_class_name");
            if (sc != NULL) {
                if ((rc = dep_on_named(L, i, "storage_class", NULL, sc)) != 0)
                    return rc;
            } else if (default_sc >= 0 && (rc = add_dep(L, i, (size_t)default_sc)) != 0) {
                return rc;
            }
            const char *bk = str_of(json_object_get(r->args, "import"), "backend");
            if (bk == NULL)
                bk = str_of(r->args, "import_backend");
            if (bk != NULL && (rc = dep_on_named(L, i, "trident_backend", NULL, bk)) != 0)
                return rc;
        }
        /* A chart's values are the chart's words: no references to scan.
         * Kubeflow's gate needs the site's storage classes made first. */
        for (size_t j = 0; r->needs_default_sc && j < s->nres; j++)
            if (strcmp(s->res[j].mod->name, "storage_class") == 0 && (rc = add_dep(L, i, j)) != 0)
                return rc;
        /* Backends are made once the Trident the site installs is ready. */
        for (size_t j = 0; strcmp(m, "trident_backend") == 0 && j < s->nres; j++) {
            const char *role = str_of(L->aux[j].hints, "aicp_role");
            if (role && strcmp(role, "trident") == 0 && (rc = add_dep(L, i, j)) != 0)
                return rc;
        }
        if (strcmp(m, "helm_release") != 0 && (rc = scan_refs(L, i, r->args)) != 0)
            return rc;
        if ((rc = dep_explicit(L, i)) != 0)
            return rc;
    }
    return aicp_site_ontap_deps(s, L->err);
}

/* Kahn's algorithm, taking the earliest ready resource first so that the
 * order follows the file. What is left over holds a cycle: walk it. */
int aicp_site_order_graph(struct loader *L)
{
    struct aicp_site *s = L->s;
    size_t n = s->nres, done = 0;
    unsigned char *placed = calloc(n ? n : 1, 1);
    int rc = 0;
    s->order = calloc(n ? n : 1, sizeof(*s->order));
    if (placed == NULL || s->order == NULL) {
        free(placed);
        return aicp_err_set(L->err, AICP_ENOMEM, "out of memory");
    }
    while (done < n) {
        size_t pick = n;
        for (size_t i = 0; i < n && pick == n; i++) {
            if (placed[i])
                continue;
            size_t d = 0;
            while (d < s->res[i].ndeps && placed[s->res[i].deps[d]])
                d++;
            if (d == s->res[i].ndeps)
                pick = i;
        }
        if (pick == n)
            break;
        placed[pick] = 1;
        s->order[done++] = pick;
    }
    if (done < n) {
        /* Every unplaced resource waits on another unplaced one: follow
         * those edges until one repeats. */
        size_t *path = calloc(n + 1, sizeof(*path)), len = 0, cur = 0;
        while (cur < n && placed[cur])
            cur++;
        for (;;) {
            size_t k = 0;
            while (k < len && path[k] != cur)
                k++;
            if (k < len) {
                struct aicp_buf b = AICP_BUF_INIT;
                for (size_t j = k; j < len; j++)
                    aicp_buf_printf(&b, "%s -> ", s->res[path[j]].id);
                aicp_buf_puts(&b, s->res[cur].id);
                rc = aicp_site_fail_at(L, L->aux[cur].entry, NULL, AICP_EINVAL,
                                       "dependency cycle: %s", b.data ? b.data : "?");
                aicp_buf_free(&b);
                break;
            }
            path[len++] = cur;
            size_t next = n;
            for (size_t d = 0; d < s->res[cur].ndeps && next == n; d++)
                if (!placed[s->res[cur].deps[d]])
                    next = s->res[cur].deps[d];
            if (next == n || len > n) {
                rc = aicp_err_set(L->err, AICP_EINVAL, "%s: dependency cycle", s->path);
                break;
            }
            cur = next;
        }
        free(path);
    }
    free(placed);
    return rc;
}
