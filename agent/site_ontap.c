/* The ONTAP side of a site file (docs/site.md): the export_policies,
 * volumes, snapshots, clones and snapmirror sections become calls of the
 * ontap_* modules with their cluster's connection arguments, their
 * dependencies join the Kubernetes graph (an ONTAP volume before the PVC
 * that imports it, a SnapMirror break before the import of its
 * destination), and `aicp drift` gets its cross-layer pass: for each PVC
 * bound to a Trident volume, the ONTAP volume behind it is read and
 * compared with what the site and the claim say, so that a volume
 * resized, re-exported, taken offline, deleted or given another snapshot
 * policy behind Trident's back is reported with both names. The pass only
 * reads. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kube.h"
#include "module.h"
#include "ontap.h"
#include "site.h"
#include "taskutil.h"
#include "util.h"

static const char *str_of(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* The first of these keys that holds a string. */
static const char *str_any(const json_t *o, const char *const *keys)
{
    for (; *keys; keys++) {
        const char *v = str_of(o, *keys);
        if (v != NULL && *v)
            return v;
    }
    return NULL;
}

static const char *const svm_keys[] = {"vserver", "svm", NULL};

static const char *svm_of(const json_t *args)
{
    return str_any(args, svm_keys);
}

static int has_arg(const struct aicp_module *mod, const char *k)
{
    size_t kl = strlen(k);
    for (const struct aicp_arg_spec *a = mod->args; a && a->name; a++) {
        if (strcmp(a->name, k) == 0)
            return 1;
        for (const char *p = a->aliases; p && *p;) {
            const char *bar = strchr(p, '|');
            size_t n = bar ? (size_t)(bar - p) : strlen(p);
            if (n == kl && strncmp(p, k, n) == 0)
                return 1;
            p = bar ? bar + 1 : NULL;
        }
    }
    return 0;
}

/* An argument the entry set under its name or one of its aliases. */
static int entry_sets(const json_t *args, const struct aicp_module *mod, const char *k)
{
    if (json_object_get(args, k) != NULL)
        return 1;
    for (const struct aicp_arg_spec *a = mod->args; a && a->name; a++) {
        if (strcmp(a->name, k) != 0)
            continue;
        for (const char *p = a->aliases; p && *p;) {
            const char *bar = strchr(p, '|');
            size_t n = bar ? (size_t)(bar - p) : strlen(p);
            char alias[64];
            if (n < sizeof(alias)) {
                memcpy(alias, p, n);
                alias[n] = '\0';
                if (json_object_get(args, alias) != NULL)
                    return 1;
            }
            p = bar ? bar + 1 : NULL;
        }
    }
    return 0;
}

int aicp_site_ontap_module(const char *module)
{
    return module != NULL && strncmp(module, "ontap_", 6) == 0;
}

void aicp_site_ontap_conn(json_t *args, const json_t *cluster, const struct aicp_module *mod)
{
    /* site key -> module argument (the netapp.ontap collection's names) */
    static const char *const map[][2] = {
        {"management_lif", "hostname"},
        {"username", "username"},
        {"password", "password"},
        {"ca_file", "ca_file"},
        {"validate_certs", "validate_certs"},
        {"https", "https"},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        json_t *v = json_object_get(cluster, map[i][0]);
        if (v != NULL && has_arg(mod, map[i][1]) && !entry_sets(args, mod, map[i][1]))
            json_object_set(args, map[i][1], v);
    }
}

/* ---- SnapMirror endpoints -------------------------------------------------- */

/* An endpoint of a relationship as "svm" and "volume": from
 * SIDE_path "svm:vol", SIDE_endpoint {path} / SIDE {path} or "svm:vol",
 * or SIDE_vserver + SIDE_volume. Written into the buffers; 0 when found. */
static int endpoint(const json_t *args, const char *side, char *svm, size_t svm_cap, char *vol,
                    size_t vol_cap)
{
    char k[64];
    const char *path = NULL;
    snprintf(k, sizeof(k), "%s_path", side);
    path = str_of(args, k);
    if (path == NULL) {
        snprintf(k, sizeof(k), "%s_endpoint", side);
        path = str_of(json_object_get(args, k), "path");
    }
    if (path == NULL)
        path = str_of(args, side);
    if (path == NULL)
        path = str_of(json_object_get(args, side), "path");
    if (path != NULL) {
        const char *colon = strchr(path, ':');
        if (colon == NULL)
            return -1;
        snprintf(svm, svm_cap, "%.*s", (int)(colon - path), path);
        snprintf(vol, vol_cap, "%s", colon + 1);
        return *svm && *vol ? 0 : -1;
    }
    snprintf(k, sizeof(k), "%s_vserver", side);
    const char *s = str_of(args, k);
    snprintf(k, sizeof(k), "%s_volume", side);
    const char *v = str_of(args, k);
    if (s == NULL || v == NULL)
        return -1;
    snprintf(svm, svm_cap, "%s", s);
    snprintf(vol, vol_cap, "%s", v);
    return 0;
}

/* ---- names --------------------------------------------------------------- */

int aicp_site_ontap_names(struct aicp_site_res *r, const json_t *args)
{
    static const char *const snap_keys[] = {"snapshot", "name", NULL};
    static const char *const name_keys[] = {"name", NULL};
    const char *m = r->mod->name;
    const char *svm = svm_of(args), *name = NULL, *vol = NULL;
    char ssvm[256], svol[256], dsvm[256], dvol[256];
    struct aicp_buf id = AICP_BUF_INIT, label = AICP_BUF_INIT, nm = AICP_BUF_INIT;
    int rc = 0;
    if (strcmp(m, "ontap_snapmirror") == 0) {
        if (endpoint(args, "destination", dsvm, sizeof(dsvm), dvol, sizeof(dvol)) != 0)
            return AICP_EINVAL;
        aicp_buf_printf(&nm, "%s:%s", dsvm, dvol);
        aicp_buf_printf(&id, "%s/%s:%s", m, dsvm, dvol);
        if (endpoint(args, "source", ssvm, sizeof(ssvm), svol, sizeof(svol)) == 0)
            aicp_buf_printf(&label, "%s %s:%s -> %s:%s", m, ssvm, svol, dsvm, dvol);
        else
            aicp_buf_printf(&label, "%s %s:%s", m, dsvm, dvol);
    } else {
        if (strcmp(m, "ontap_snapshot") == 0) {
            name = str_any(args, snap_keys);
            vol = str_of(args, "volume");
        } else {
            name = str_any(args, name_keys);
        }
        if (name == NULL)
            return AICP_EINVAL;
        aicp_buf_puts(&nm, name);
        aicp_buf_printf(&id, "%s/", m);
        aicp_buf_printf(&label, "%s ", m);
        if (svm) {
            aicp_buf_printf(&id, "%s/", svm);
            aicp_buf_printf(&label, "%s/", svm);
        }
        if (vol) {
            aicp_buf_printf(&id, "%s/", vol);
            aicp_buf_printf(&label, "%s/", vol);
        }
        aicp_buf_puts(&id, name);
        aicp_buf_puts(&label, name);
    }
    r->name = aicp_buf_steal(&nm);
    r->id = aicp_buf_steal(&id);
    r->label = aicp_buf_steal(&label);
    if (r->name == NULL || r->id == NULL || r->label == NULL)
        rc = AICP_ENOMEM;
    aicp_buf_free(&nm);
    aicp_buf_free(&id);
    aicp_buf_free(&label);
    return rc;
}

/* ---- dependencies ------------------------------------------------------------ */

static int add_dep(struct aicp_site *s, size_t from, size_t to, struct aicp_err *err)
{
    struct aicp_site_res *r = &s->res[from];
    if (from == to)
        return 0;
    for (size_t i = 0; i < r->ndeps; i++)
        if (r->deps[i] == to)
            return 0;
    size_t *d = realloc(r->deps, (r->ndeps + 1) * sizeof(*d));
    if (d == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    d[r->ndeps++] = to;
    r->deps = d;
    return 0;
}

static int is_mod(const struct aicp_site_res *r, const char *m)
{
    return strcmp(r->mod->name, m) == 0;
}

/* Same value, or one side does not say. */
static int same_or_unknown(const char *a, const char *b)
{
    return a == NULL || b == NULL || strcmp(a, b) == 0;
}

/* A volume (or clone) resource called name on svm of cluster. */
static int is_volume(const struct aicp_site_res *r, const char *name, const char *svm,
                     const char *cluster)
{
    return (is_mod(r, "ontap_volume") || is_mod(r, "ontap_clone")) && name &&
           strcmp(r->name, name) == 0 && same_or_unknown(svm, svm_of(r->args)) &&
           same_or_unknown(cluster, r->ontap);
}

static int dep_on_volume(struct aicp_site *s, size_t from, const char *name, const char *svm,
                         struct aicp_err *err)
{
    int rc;
    for (size_t j = 0; name && j < s->nres; j++)
        if (is_volume(&s->res[j], name, svm, s->res[from].ontap) &&
            (rc = add_dep(s, from, j, err)) != 0)
            return rc;
    return 0;
}

static long backend_of(const struct aicp_site *s, const char *name)
{
    for (size_t j = 0; name && j < s->nres; j++)
        if (is_mod(&s->res[j], "trident_backend") && strcmp(s->res[j].name, name) == 0)
            return (long)j;
    return -1;
}

/* The PVCs importing volume `name` of svm on cluster come after `to`. */
static int pvcs_after(struct aicp_site *s, size_t to, const char *name, const char *svm,
                      const char *cluster, struct aicp_err *err)
{
    int rc;
    for (size_t j = 0; name && j < s->nres; j++) {
        const struct aicp_site_res *p = &s->res[j];
        const char *iv = str_of(p->args, "import_volume");
        if (!is_mod(p, "pvc") || iv == NULL || strcmp(iv, name) != 0)
            continue;
        long b = backend_of(s, str_of(p->args, "import_backend"));
        if (b >= 0 && (!same_or_unknown(svm, str_of(s->res[b].args, "svm")) ||
                       !same_or_unknown(cluster, s->res[b].ontap)))
            continue;
        if ((rc = add_dep(s, j, to, err)) != 0)
            return rc;
    }
    return 0;
}

/* state: broken_off, or the collection's relationship_state: broken. */
static int broken_off(const json_t *args)
{
    const char *st = str_of(args, "state"), *rs = str_of(args, "relationship_state");
    return (st && aicp_ontap_enum_eq(st, "broken_off")) || (rs && aicp_ontap_enum_eq(rs, "broken"));
}

int aicp_site_ontap_deps(struct aicp_site *s, struct aicp_err *err)
{
    static const char *const policy_keys[] = {"export_policy", "policy", NULL};
    int rc;
    for (size_t i = 0; i < s->nres; i++) {
        struct aicp_site_res *r = &s->res[i];
        const json_t *a = r->args;
        const char *svm = svm_of(a);
        if (is_mod(r, "ontap_volume") || is_mod(r, "ontap_clone")) {
            /* its export policy first */
            const char *pol = str_any(a, policy_keys);
            for (size_t j = 0; pol && j < s->nres; j++) {
                const struct aicp_site_res *e = &s->res[j];
                if (is_mod(e, "ontap_export_policy") && strcmp(e->name, pol) == 0 &&
                    same_or_unknown(svm, svm_of(e->args)) && same_or_unknown(r->ontap, e->ontap) &&
                    (rc = add_dep(s, i, j, err)) != 0)
                    return rc;
            }
            /* then the PVCs that import it */
            if ((rc = pvcs_after(s, i, r->name, svm, r->ontap, err)) != 0)
                return rc;
        }
        if (is_mod(r, "ontap_clone")) {
            const char *pv = str_of(a, "parent_volume");
            const char *psvm = str_of(a, "parent_vserver");
            const char *ps = str_of(a, "parent_snapshot");
            if (psvm == NULL)
                psvm = svm;
            if ((rc = dep_on_volume(s, i, pv, psvm, err)) != 0)
                return rc;
            for (size_t j = 0; pv && ps && j < s->nres; j++) {
                const struct aicp_site_res *n = &s->res[j];
                const char *nv = str_of(n->args, "volume");
                if (is_mod(n, "ontap_snapshot") && strcmp(n->name, ps) == 0 && nv &&
                    strcmp(nv, pv) == 0 && same_or_unknown(psvm, svm_of(n->args)) &&
                    same_or_unknown(r->ontap, n->ontap) && (rc = add_dep(s, i, j, err)) != 0)
                    return rc;
            }
        } else if (is_mod(r, "ontap_snapshot")) {
            if ((rc = dep_on_volume(s, i, str_of(a, "volume"), svm, err)) != 0)
                return rc;
        } else if (is_mod(r, "ontap_snapmirror")) {
            char ssvm[256], svol[256], dsvm[256], dvol[256];
            if (endpoint(a, "source", ssvm, sizeof(ssvm), svol, sizeof(svol)) == 0) {
                /* The source may sit on another cluster (peered): match by
                 * SVM and name alone. */
                for (size_t j = 0; j < s->nres; j++)
                    if (is_volume(&s->res[j], svol, ssvm, NULL) &&
                        (rc = add_dep(s, i, j, err)) != 0)
                        return rc;
            }
            if (endpoint(a, "destination", dsvm, sizeof(dsvm), dvol, sizeof(dvol)) == 0) {
                if ((rc = dep_on_volume(s, i, dvol, dsvm, err)) != 0)
                    return rc;
                /* Trident imports a DP destination only once it is broken
                 * off (writable). */
                if (broken_off(a) && (rc = pvcs_after(s, i, dvol, dsvm, r->ontap, err)) != 0)
                    return rc;
            }
        }
    }
    return 0;
}

int aicp_site_ontap_config(struct aicp_ontap_config *cfg, const struct aicp_site *s,
                           const char *cluster, struct aicp_err *err)
{
    const json_t *c = cluster ? json_object_get(s->ontap, cluster) : NULL;
    memset(cfg, 0, sizeof(*cfg));
    if (c == NULL)
        return aicp_err_set(err, AICP_EINVAL, "%s: no ONTAP cluster '%s' in the ontap section",
                            s->path, cluster ? cluster : "(none)");
    cfg->hostname = str_of(c, "management_lif");
    cfg->username = str_of(c, "username");
    cfg->password = str_of(c, "password");
    cfg->ca_file = str_of(c, "ca_file");
    const json_t *vc = json_object_get(c, "validate_certs");
    const json_t *https = json_object_get(c, "https");
    cfg->validate_certs = vc == NULL || aicp_task_bool(vc);
    cfg->use_http = https != NULL && !aicp_task_bool(https);
    return 0;
}

/* ---- cross-layer drift -------------------------------------------------------- */

/* The backend a PVC's volume lives on: its import backend, else a
 * backend its StorageClass depends on. -1 when none. */
static long pvc_backend(const struct aicp_site *s, const struct aicp_site_res *p)
{
    long b = backend_of(s, str_of(p->args, "import_backend"));
    if (b >= 0)
        return b;
    for (size_t d = 0; d < p->ndeps; d++) {
        const struct aicp_site_res *sc = &s->res[p->deps[d]];
        if (!is_mod(sc, "storage_class"))
            continue;
        for (size_t e = 0; e < sc->ndeps; e++)
            if (is_mod(&s->res[sc->deps[e]], "trident_backend"))
                return (long)sc->deps[e];
    }
    return -1;
}

static json_t *skip_want(const struct aicp_site_res *p, const char *why)
{
    return json_pack("{s:s, s:s}", "pvc", p->label, "skip", why);
}

int aicp_site_cross_want(json_t **want, const struct aicp_site *s, size_t pvc,
                         const char *internal_name)
{
    static const char *const policy_keys[] = {"export_policy", "policy", NULL};
    const struct aicp_site_res *p = &s->res[pvc];
    const char *vol = NULL, *svm = NULL, *cluster = NULL;
    const char *iv = str_of(p->args, "import_volume");
    *want = NULL;
    /* An import keeps its ONTAP name with no_rename; without it Trident
     * renames the volume, and only the PV's internalName says to what. */
    if (iv != NULL &&
        (aicp_task_bool(json_object_get(p->args, "import_no_rename")) || internal_name == NULL))
        vol = iv;
    else if (internal_name != NULL)
        vol = internal_name;
    if (vol == NULL) {
        *want = skip_want(p, "the PV does not name its ONTAP volume "
                             "(no spec.csi.volumeAttributes.internalName)");
        return *want ? 0 : AICP_ENOMEM;
    }
    long b = pvc_backend(s, p);
    const struct aicp_site_res *br = b >= 0 ? &s->res[b] : NULL;
    if (br) {
        svm = str_of(br->args, "svm");
        cluster = br->ontap;
    }
    if (cluster == NULL && json_object_size(s->ontap) == 1)
        cluster = json_object_iter_key(json_object_iter(s->ontap));
    if (cluster == NULL) {
        *want = skip_want(p, "no ONTAP cluster of the site is known for its backend "
                             "(give the backend ontap: NAME)");
        return *want ? 0 : AICP_ENOMEM;
    }
    json_t *w = json_pack("{s:s, s:s, s:s, s:s?, s:s?}", "pvc", p->label, "volume", vol, "cluster",
                          cluster, "svm", svm, "backend", br ? br->name : NULL);
    if (w == NULL)
        return AICP_ENOMEM;
    long long size = aicp_ontap_size(json_object_get(p->args, "size"));
    if (size > 0)
        json_object_set_new(w, "size", json_integer(size));
    /* The site's own entry for the volume says what it should be. */
    const struct aicp_site_res *v = NULL;
    for (size_t j = 0; j < s->nres && v == NULL; j++)
        if (is_volume(&s->res[j], vol, svm, cluster))
            v = &s->res[j];
    const char *ep = v ? str_any(v->args, policy_keys) : NULL;
    if (ep == NULL && br != NULL) {
        const json_t *defs = json_object_get(br->args, "defaults");
        ep = str_of(defs, "exportPolicy");
        if (ep == NULL)
            ep = str_of(defs, "export_policy");
    }
    if (ep)
        json_object_set_new(w, "export_policy", json_string(ep));
    const char *sp = v ? str_of(v->args, "snapshot_policy") : NULL;
    if (sp == NULL && v == NULL && br != NULL) {
        /* A volume Trident made: its backend's defaults gave it the policy. */
        const json_t *defs = json_object_get(br->args, "defaults");
        sp = str_of(defs, "snapshotPolicy");
        if (sp == NULL)
            sp = str_of(defs, "snapshot_policy");
    }
    if (sp)
        json_object_set_new(w, "snapshot_policy", json_string(sp));
    if (v)
        json_object_set_new(w, "site_volume", json_string(v->id));
    *want = w;
    return 0;
}

static void finding(json_t *acc, const char *what, const char *field, json_t *want, json_t *have)
{
    json_t *f = json_pack("{s:s, s:s, s:o?, s:o?}", "what", what, "field", field, "want", want,
                          "have", have);
    if (f != NULL)
        json_array_append_new(acc, f);
}

static const json_t *path_get(const json_t *o, const char *a, const char *b, const char *c)
{
    const json_t *v = json_object_get(o, a);
    if (b)
        v = json_object_get(v, b);
    if (c)
        v = json_object_get(v, c);
    return v;
}

int aicp_site_cross_compare(json_t *findings, const json_t *want, const json_t *vol)
{
    size_t before = json_array_size(findings);
    if (vol == NULL) {
        finding(findings, "deleted", "", json_string("present"), json_string("absent"));
        return (int)(json_array_size(findings) - before);
    }
    const char *state = str_of(vol, "state");
    if (state && !aicp_ontap_enum_eq(state, "online"))
        finding(findings, "offline", "state", json_string("online"), json_string(state));
    const json_t *ws = json_object_get(want, "size");
    long long have = aicp_ontap_size(json_object_get(vol, "size"));
    if (json_is_integer(ws) && have >= 0 && have != json_integer_value(ws))
        finding(findings, "resized", "size", json_integer(json_integer_value(ws)),
                json_integer(have));
    const char *wp = str_of(want, "export_policy");
    const char *hp = json_string_value(path_get(vol, "nas", "export_policy", "name"));
    if (wp && hp && strcmp(wp, hp) != 0)
        finding(findings, "re-exported", "nas.export_policy.name", json_string(wp),
                json_string(hp));
    const char *wsp = str_of(want, "snapshot_policy");
    const char *hsp = json_string_value(path_get(vol, "snapshot_policy", "name", NULL));
    if (wsp && hsp && !aicp_ontap_enum_eq(wsp, hsp))
        finding(findings, "snapshot-policy", "snapshot_policy.name", json_string(wsp),
                json_string(hsp));
    return (int)(json_array_size(findings) - before);
}

/* A check that could not be made, with why: listed as not checked. */
static int skipped(json_t **entry, const struct aicp_site_res *p, const char *why,
                   struct aicp_err *err)
{
    *entry = json_pack("{s:s, s:s, s:s, s:s, s:[]}", "pvc", p->label, "id", p->id, "status",
                       "skipped", "msg", why, "findings");
    return *entry ? 0 : aicp_err_set(err, AICP_ENOMEM, "out of memory");
}

int aicp_site_cross_check(json_t **entry, const struct aicp_site *s, size_t pvc,
                          struct aicp_kube *k, struct aicp_ontap_pool *pool, struct aicp_err *err)
{
    const struct aicp_site_res *p = &s->res[pvc];
    json_t *claim = NULL, *pv = NULL, *want = NULL, *vol = NULL, *e = NULL, *findings = NULL;
    struct aicp_buf q = AICP_BUF_INIT, vname = AICP_BUF_INIT, why = AICP_BUF_INIT;
    struct aicp_ontap *o = NULL;
    struct aicp_ontap_config cfg;
    int rc;
    *entry = NULL;
    struct aicp_kube_ref ref = {.api_version = "v1",
                                .kind = "PersistentVolumeClaim",
                                .namespace = p->ns ? p->ns : "default",
                                .name = p->name};
    if ((rc = aicp_kube_get(k, &ref, &claim, err)) != 0)
        goto out;
    const char *phase = json_string_value(aicp_kube_field(claim, "status.phase"));
    const char *pvname = json_string_value(aicp_kube_field(claim, "spec.volumeName"));
    /* Not bound: the claim's own drift says why; this pass cannot check it. */
    if (claim == NULL) {
        rc = skipped(entry, p, "the claim does not exist", err);
        goto out;
    }
    if (phase == NULL || strcmp(phase, "Bound") != 0 || pvname == NULL) {
        aicp_buf_printf(&why, "the claim is not bound to a volume (phase %s)",
                        phase ? phase : "unknown");
        rc = skipped(entry, p, why.data ? why.data : "the claim is not bound", err);
        goto out;
    }
    struct aicp_kube_ref pref = {.api_version = "v1", .kind = "PersistentVolume", .name = pvname};
    if ((rc = aicp_kube_get(k, &pref, &pv, err)) != 0)
        goto out;
    if (pv == NULL) {
        aicp_buf_printf(&why, "its PersistentVolume %s does not exist", pvname);
        rc = skipped(entry, p, why.data ? why.data : "no PersistentVolume", err);
        goto out;
    }
    const char *driver = json_string_value(aicp_kube_field(pv, "spec.csi.driver"));
    if (driver == NULL || strcmp(driver, "csi.trident.netapp.io") != 0) {
        aicp_buf_printf(&why, "its PersistentVolume %s is not a Trident volume (%s%s)", pvname,
                        driver ? "CSI driver " : "not CSI", driver ? driver : "");
        rc = skipped(entry, p, why.data ? why.data : "not a Trident volume", err);
        goto out;
    }
    const char *internal =
        json_string_value(aicp_kube_field(pv, "spec.csi.volumeAttributes.internalName"));
    if ((rc = aicp_site_cross_want(&want, s, pvc, internal)) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (json_object_get(want, "skip") != NULL) {
        /* nothing aicp can name: listed as not checked (docs/site.md) */
        rc = skipped(entry, p, str_of(want, "skip"), err);
        goto out;
    }
    const char *cluster = str_of(want, "cluster"), *vn = str_of(want, "volume");
    const char *svm = str_of(want, "svm");
    if ((rc = aicp_site_ontap_config(&cfg, s, cluster, err)) != 0 ||
        (rc = aicp_ontap_pool_get(pool, &cfg, &o, err)) != 0)
        goto out;
    aicp_ontap_qadd(&q, "name", vn);
    if (svm)
        aicp_ontap_qadd(&q, "svm.name", svm);
    if (q.data == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    rc = aicp_ontap_get_one(o, "/api/storage/volumes", q.data,
                            "name,uuid,size,state,svm.name,nas.export_policy.name,"
                            "snapshot_policy.name,comment",
                            "volume", &vol, err);
    if (rc != 0) {
        aicp_err_prefix(err, "%s: ONTAP volume %s%s%s on %s", p->label, svm ? svm : "",
                        svm ? ":" : "", vn, cluster);
        goto out;
    }
    findings = json_array();
    aicp_buf_printf(&vname, "%s%s%s", svm ? svm : "", svm ? ":" : "", vn);
    int n = findings ? aicp_site_cross_compare(findings, want, vol) : 0;
    e = json_pack("{s:s, s:s, s:s, s:s, s:s, s:O}", "pvc", p->label, "id", p->id, "volume",
                  vname.data ? vname.data : vn, "cluster", cluster, "status",
                  n > 0 ? "drifted" : "in_sync", "findings", findings);
    if (e == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (json_object_get(want, "site_volume"))
        json_object_set(e, "site_volume", json_object_get(want, "site_volume"));
    char stamp[512];
    if (aicp_site_provenance_of(stamp, sizeof(stamp), str_of(vol, "comment")) == 0)
        json_object_set_new(e, "last_changed_by", json_string(stamp));
    *entry = e;
    rc = 0;
out:
    json_decref(claim);
    json_decref(pv);
    json_decref(want);
    json_decref(vol);
    json_decref(findings);
    aicp_buf_free(&q);
    aicp_buf_free(&vname);
    aicp_buf_free(&why);
    return rc;
}
