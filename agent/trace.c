/* `aicp trace`: "trace every training run back to the exact dataset", from
 * the live systems only. The site file gives the connections (its
 * kubeconfig and context, its ontap section); the run's Job gives the PVCs
 * it mounted and the snapshots it names; Kubernetes maps each PVC to its PV
 * and Trident's PV to its ONTAP volume; ONTAP gives the volumes, the run's
 * snapshots on them and the FlexClones made from those snapshots. Nothing
 * is written anywhere. Whatever cannot be found (a Job deleted by its TTL,
 * a snapshot someone removed, a claim that is gone) is collected in the
 * document's "missing" list and turns the exit status to 2; only an API
 * that cannot be read at all is an error (1). When the Job is gone, the
 * ONTAP volumes of the site's clusters are scanned for the run's snapshot
 * names, so that the storage half of the lineage is still shown.
 */
#include "config.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "http.h"
#include "kube.h"
#include "module.h"
#include "ontap.h"
#include "ontap_stamp.h"
#include "secret.h"
#include "site.h"
#include "trace.h"
#include "util.h"
#include "vault.h"
#include "yaml.h"

#define EXIT_USAGE 64
#define TRIDENT_DRIVER "csi.trident.netapp.io"
/* A scan for a deleted Job's snapshots reads every volume's snapshot list:
 * past this many volumes per cluster it stops and says so. */
#define SCAN_MAX 2000
#define VOLUME_FIELDS                                                                              \
    "name,uuid,size,svm.name,create_time,clone.parent_snapshot.name,clone.parent_volume.name,"     \
    "clone.parent_svm.name"

/* ---- the pure parts ---------------------------------------------------------- */

static int alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int aicp_trace_run_id_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 63 || !alnum(s[0]) || !alnum(s[n - 1]))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
            return 0;
    return 1;
}

static const char *str_of(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* An annotation of a live object (keys hold dots and slashes, so not
 * through aicp_kube_field's dotted paths). */
static const char *annotation(const json_t *obj, const char *key)
{
    return str_of(json_object_get(json_object_get(obj, "metadata"), "annotations"), key);
}

static const char *label(const json_t *obj, const char *key)
{
    return str_of(json_object_get(json_object_get(obj, "metadata"), "labels"), key);
}

/* Equal and both known. */
static int same(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static int is_true(const char *s)
{
    return s && (strcmp(s, "true") == 0 || strcmp(s, "True") == 0);
}

const char *aicp_trace_pvc_volume(const json_t *pvc, const json_t *pv, const char **how)
{
    const char *orig = annotation(pvc, "trident.netapp.io/importOriginalName");
    const char *internal =
        json_string_value(aicp_kube_field(pv, "spec.csi.volumeAttributes.internalName"));
    int kept = is_true(annotation(pvc, "trident.netapp.io/importNoRename")) ||
               is_true(annotation(pvc, "trident.netapp.io/notManaged"));
    if (orig && *orig == '\0')
        orig = NULL;
    if (internal && *internal == '\0')
        internal = NULL;
    const char *name = NULL, *via = NULL;
    if (orig && (kept || internal == NULL)) {
        name = orig;
        via = "importOriginalName";
    } else if (internal) {
        name = internal;
        via = "internalName";
    }
    if (how)
        *how = via;
    return name;
}

static int copy_part(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        return AICP_EINVAL;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

int aicp_trace_parse_snapref(const char *s, char *svm, size_t svm_cap, char *vol, size_t vol_cap,
                             char *snap, size_t snap_cap)
{
    if (s == NULL || svm_cap == 0 || vol_cap == 0 || snap_cap == 0)
        return AICP_EINVAL;
    svm[0] = vol[0] = snap[0] = '\0';
    const char *at = strchr(s, '@');
    if (at == NULL || strchr(at + 1, '@') != NULL || at[1] == '\0')
        return AICP_EINVAL;
    /* SVM names never hold ':', volume names never do either. */
    const char *colon = memchr(s, ':', (size_t)(at - s));
    const char *v = colon ? colon + 1 : s;
    if (v == at || (colon && colon == s) || strchr(at + 1, ':') != NULL)
        return AICP_EINVAL;
    if (colon && copy_part(svm, svm_cap, s, (size_t)(colon - s)) != 0)
        return AICP_EINVAL;
    if (copy_part(vol, vol_cap, v, (size_t)(at - v)) != 0 ||
        copy_part(snap, snap_cap, at + 1, strlen(at + 1)) != 0)
        return AICP_EINVAL;
    for (const char *p = s; *p; p++)
        if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '/')
            return AICP_EINVAL;
    return 0;
}

const char *aicp_trace_snapshot_role(const char *run_id, const char *name, const char *comment)
{
    char want[128];
    if (run_id == NULL || *run_id == '\0' || name == NULL)
        return NULL;
    snprintf(want, sizeof(want), "baseline-%s", run_id);
    if (strcmp(name, want) == 0)
        return "baseline";
    snprintf(want, sizeof(want), "model-%s-pre", run_id);
    if (strcmp(name, want) == 0)
        return "model-pre";
    snprintf(want, sizeof(want), "model-%s-post", run_id);
    if (strcmp(name, want) == 0)
        return "model-post";
    snprintf(want, sizeof(want), "aicp run %s:", run_id);
    if (comment && aicp_startswith(comment, want))
        return "run";
    return NULL;
}

/* "10 GiB", "1.5 TiB", "512 B": ONTAP's binary units. */
static void human_size(char *buf, size_t cap, const json_t *v)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    if (!json_is_integer(v)) {
        snprintf(buf, cap, "size unknown");
        return;
    }
    double d = (double)json_integer_value(v);
    size_t u = 0;
    while (d >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
        d /= 1024.0;
        u++;
    }
    if (d == (double)(long long)d)
        snprintf(buf, cap, "%lld %s", (long long)d, units[u]);
    else
        snprintf(buf, cap, "%.1f %s", d, units[u]);
}

static const char *or_dash(const char *s)
{
    return s && *s ? s : "-";
}

static void render_clone(struct aicp_buf *b, const json_t *c, const char *indent, int last)
{
    char size[32];
    human_size(size, sizeof(size), json_object_get(c, "size"));
    aicp_buf_printf(b, "%s%s clone %s:%s (%s), %s, created %s\n", indent, last ? "`-" : "|-",
                    or_dash(str_of(c, "svm")), or_dash(str_of(c, "name")),
                    or_dash(str_of(c, "cluster")), size, or_dash(str_of(c, "created")));
}

static void render_volume(struct aicp_buf *b, const json_t *v, int last)
{
    char size[32];
    const char *ind = last ? "   " : "|  ";
    human_size(size, sizeof(size), json_object_get(v, "size"));
    aicp_buf_printf(b, "%s ONTAP volume %s:%s (%s), %s, created %s\n", last ? "`-" : "|-",
                    or_dash(str_of(v, "svm")), or_dash(str_of(v, "name")),
                    or_dash(str_of(v, "cluster")), size, or_dash(str_of(v, "created")));
    const json_t *roles = json_object_get(v, "roles");
    if (json_array_size(roles) > 0) {
        aicp_buf_printf(b, "%sused as: ", ind);
        for (size_t i = 0; i < json_array_size(roles); i++)
            aicp_buf_printf(b, "%s%s", i ? ", " : "",
                            or_dash(json_string_value(json_array_get(roles, i))));
        aicp_buf_puts(b, "\n");
    }
    const json_t *co = json_object_get(v, "clone_of");
    if (co)
        aicp_buf_printf(b, "%sa FlexClone of %s:%s@%s\n", ind, or_dash(str_of(co, "svm")),
                        or_dash(str_of(co, "volume")), or_dash(str_of(co, "snapshot")));
    const json_t *snaps = json_object_get(v, "snapshots");
    if (json_array_size(snaps) == 0)
        aicp_buf_printf(b, "%s`- no snapshot of this run\n", ind);
    for (size_t i = 0; i < json_array_size(snaps); i++) {
        const json_t *s = json_array_get(snaps, i);
        int slast = i + 1 == json_array_size(snaps);
        const char *comment = str_of(s, "comment");
        /* The modules' provenance stamp ends the comment: shown apart. */
        char by[AICP_STAMP_MAX];
        size_t clen = aicp_stamp_split(comment, by, sizeof(by));
        aicp_buf_printf(b, "%s%s snapshot %s [%s], created %s", ind, slast ? "`-" : "|-",
                        or_dash(str_of(s, "name")), or_dash(str_of(s, "role")),
                        or_dash(str_of(s, "create_time")));
        if (clen > 0)
            aicp_buf_printf(b, ", \"%.*s\"", (int)clen, comment);
        if (by[0] != '\0')
            aicp_buf_printf(b, ", by aicp %s", by);
        aicp_buf_printf(b, "\n");
        const json_t *clones = json_object_get(s, "clones");
        char cind[64];
        snprintf(cind, sizeof(cind), "%s%s", ind, slast ? "   " : "|  ");
        for (size_t j = 0; j < json_array_size(clones); j++)
            render_clone(b, json_array_get(clones, j), cind, j + 1 == json_array_size(clones));
    }
}

static void render_job(struct aicp_buf *b, const json_t *j, int last)
{
    const char *ind = last ? "   " : "|  ";
    aicp_buf_printf(b, "%s Job %s/%s: %s, created %s", last ? "`-" : "|-",
                    or_dash(str_of(j, "namespace")), or_dash(str_of(j, "name")),
                    or_dash(str_of(j, "status")), or_dash(str_of(j, "created")));
    if (str_of(j, "completion_time"))
        aicp_buf_printf(b, ", finished %s", str_of(j, "completion_time"));
    aicp_buf_puts(b, "\n");
    aicp_buf_printf(b, "%sdataset snapshot: %s\n", ind,
                    str_of(j, "dataset_snapshot") ? str_of(j, "dataset_snapshot")
                                                  : "(no " AICP_TRACE_DATASET ")");
    if (str_of(j, "model_snapshot"))
        aicp_buf_printf(b, "%smodel snapshot: %s\n", ind, str_of(j, "model_snapshot"));
    const json_t *pvcs = json_object_get(j, "pvcs");
    if (json_array_size(pvcs) == 0)
        aicp_buf_printf(b, "%s`- mounts no PVC\n", ind);
    for (size_t i = 0; i < json_array_size(pvcs); i++) {
        const json_t *p = json_array_get(pvcs, i);
        const json_t *v = json_object_get(p, "volume");
        aicp_buf_printf(
            b, "%s%s PVC %s/%s -> PV %s", ind, i + 1 == json_array_size(pvcs) ? "`-" : "|-",
            or_dash(str_of(p, "namespace")), or_dash(str_of(p, "name")), or_dash(str_of(p, "pv")));
        if (v)
            aicp_buf_printf(b, " -> ONTAP volume %s:%s (%s, by %s)", or_dash(str_of(v, "svm")),
                            or_dash(str_of(v, "name")), or_dash(str_of(v, "cluster")),
                            or_dash(str_of(p, "via")));
        else if (str_of(p, "note"))
            aicp_buf_printf(b, " (%s)", str_of(p, "note"));
        aicp_buf_puts(b, "\n");
    }
}

int aicp_trace_render(struct aicp_buf *out, const json_t *doc)
{
    const json_t *jobs = json_object_get(doc, "jobs");
    const json_t *vols = json_object_get(doc, "volumes");
    const json_t *missing = json_object_get(doc, "missing");
    const json_t *notes = json_object_get(doc, "notes");
    const json_t *ds = json_object_get(doc, "dataset");
    const char *run = str_of(doc, "run_id");
    size_t before = out->len;

    aicp_buf_printf(out, "run %s\n", run ? run : "(unknown: no " AICP_TRACE_LABEL " label)");
    if (json_is_object(ds))
        aicp_buf_printf(out, "|- dataset: %s:%s@%s (%s), snapshot created %s\n",
                        or_dash(str_of(ds, "svm")), or_dash(str_of(ds, "volume")),
                        or_dash(str_of(ds, "snapshot")), or_dash(str_of(ds, "cluster")),
                        or_dash(str_of(ds, "create_time")));
    else
        aicp_buf_puts(out, "|- dataset: not found\n");
    size_t nj = json_array_size(jobs), nv = json_array_size(vols);
    if (nj == 0)
        aicp_buf_printf(out, "%s no Job\n", nv ? "|-" : "`-");
    for (size_t i = 0; i < nj; i++)
        render_job(out, json_array_get(jobs, i), i + 1 == nj && nv == 0);
    for (size_t i = 0; i < nv; i++)
        render_volume(out, json_array_get(vols, i), i + 1 == nv);
    for (size_t i = 0; i < json_array_size(notes); i++)
        aicp_buf_printf(out, "note: %s\n", json_string_value(json_array_get(notes, i)));
    if (json_array_size(missing) == 0) {
        aicp_buf_puts(out, "trace complete\n");
    } else {
        aicp_buf_printf(out, "trace incomplete: %zu missing\n", json_array_size(missing));
        for (size_t i = 0; i < json_array_size(missing); i++)
            aicp_buf_printf(out, "  missing: %s\n", json_string_value(json_array_get(missing, i)));
    }
    /* aicp_buf keeps data NULL only when every append failed. */
    return out->data == NULL || out->len == before ? AICP_ENOMEM : 0;
}

/* ---- reading the live systems ------------------------------------------------ */

struct trace {
    const struct aicp_site *site;
    struct aicp_kube *k;
    struct aicp_ontap_pool *pool;
    char *run_id;
    json_t *missing, *notes, *jobs, *volumes;
    json_t *annotated; /* [{what, job, svm, volume, snapshot}] from the Jobs */
};

__attribute__((format(printf, 2, 3))) static void add_missing(struct trace *t, const char *fmt, ...)
{
    struct aicp_buf b = AICP_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    aicp_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (b.data)
        json_array_append_new(t->missing, json_string(b.data));
    aicp_buf_free(&b);
}

static void add_note(struct trace *t, const char *s)
{
    json_array_append_new(t->notes, json_string(s));
}

static int oom(struct aicp_err *err)
{
    return aicp_err_set(err, AICP_ENOMEM, "out of memory");
}

static int ontap_client(struct trace *t, const char *cluster, struct aicp_ontap **o,
                        struct aicp_err *err)
{
    struct aicp_ontap_config cfg;
    int rc = aicp_site_ontap_config(&cfg, t->site, cluster, err);
    if (rc == 0)
        rc = aicp_ontap_pool_get(t->pool, &cfg, o, err);
    return rc;
}

/* The volume entry of the output for an ONTAP record (found or added). */
static json_t *volume_entry(struct trace *t, const char *cluster, const json_t *rec)
{
    const char *svm = json_string_value(aicp_kube_field(rec, "svm.name"));
    const char *name = str_of(rec, "name");
    size_t i;
    json_t *v;
    json_array_foreach(t->volumes, i, v)
    {
        if (same(str_of(v, "cluster"), cluster) && same(str_of(v, "svm"), svm) &&
            same(str_of(v, "name"), name))
            return v;
    }
    v = json_pack("{s:s, s:s?, s:s?, s:s?, s:O?, s:s?, s:[], s:[]}", "cluster", cluster, "svm", svm,
                  "name", name, "uuid", str_of(rec, "uuid"), "size", json_object_get(rec, "size"),
                  "created", str_of(rec, "create_time"), "roles", "snapshots");
    if (v == NULL)
        return NULL;
    const char *psnap = json_string_value(aicp_kube_field(rec, "clone.parent_snapshot.name"));
    const char *pvol = json_string_value(aicp_kube_field(rec, "clone.parent_volume.name"));
    if (psnap && pvol) {
        const char *psvm = json_string_value(aicp_kube_field(rec, "clone.parent_svm.name"));
        json_object_set_new(v, "clone_of",
                            json_pack("{s:s?, s:s, s:s}", "svm", psvm ? psvm : svm, "volume", pvol,
                                      "snapshot", psnap));
    }
    json_array_append_new(t->volumes, v);
    return v;
}

static void add_role(json_t *v, const char *role)
{
    json_t *roles = json_object_get(v, "roles");
    size_t i;
    json_t *r;
    json_array_foreach(roles, i, r)
    {
        if (strcmp(json_string_value(r), role) == 0)
            return;
    }
    json_array_append_new(roles, json_string(role));
}

/* Finds volume name (on svm, when given) on the site's clusters, in the
 * order the site lists them, and adds it to the output with role. *entry
 * NULL (and 0) when no cluster has it. */
static int want_volume(struct trace *t, const char *svm, const char *name, const char *role,
                       json_t **entry, struct aicp_err *err)
{
    const char *cluster;
    json_t *cfg;
    int rc = 0;
    *entry = NULL;
    json_object_foreach((json_t *)t->site->ontap, cluster, cfg)
    {
        struct aicp_ontap *o = NULL;
        struct aicp_buf q = AICP_BUF_INIT;
        json_t *recs = NULL;
        (void)cfg;
        aicp_ontap_qadd(&q, "name", name);
        if (svm && *svm)
            aicp_ontap_qadd(&q, "svm.name", svm);
        if (q.data == NULL)
            return oom(err);
        if ((rc = ontap_client(t, cluster, &o, err)) == 0)
            rc = aicp_ontap_list(o, "/api/storage/volumes", q.data, VOLUME_FIELDS, &recs, err);
        aicp_buf_free(&q);
        if (rc != 0) {
            aicp_err_prefix(err, "ONTAP cluster %s: volume %s%s%s", cluster, svm ? svm : "",
                            svm && *svm ? ":" : "", name);
            return rc;
        }
        /* Without an SVM a name may be on several: each is shown. */
        size_t i;
        json_t *rec;
        json_array_foreach(recs, i, rec)
        {
            json_t *v = volume_entry(t, cluster, rec);
            if (v == NULL) {
                json_decref(recs);
                return oom(err);
            }
            add_role(v, role);
            if (*entry == NULL)
                *entry = v;
        }
        json_decref(recs);
        if (*entry)
            return 0;
    }
    return 0;
}

/* ---- the Job and its claims ---- */

static const char *job_status(const json_t *job, const char **finished)
{
    const json_t *conds = aicp_kube_field(job, "status.conditions");
    size_t i;
    const json_t *c;
    *finished = json_string_value(aicp_kube_field(job, "status.completionTime"));
    json_array_foreach(conds, i, c)
    {
        const char *type = str_of(c, "type"), *st = str_of(c, "status");
        if (type && st && strcmp(st, "True") == 0 &&
            (strcmp(type, "Complete") == 0 || strcmp(type, "Failed") == 0)) {
            if (*finished == NULL)
                *finished = str_of(c, "lastTransitionTime");
            return type;
        }
    }
    if (json_is_true(aicp_kube_field(job, "spec.suspend")))
        return "Suspended";
    if (json_integer_value(aicp_kube_field(job, "status.active")) > 0)
        return "Running";
    return "Pending";
}

/* One claim the Job mounts: claim -> PV -> ONTAP volume. */
static int trace_pvc(struct trace *t, json_t *pvcs, const char *ns, const char *claim,
                     struct aicp_err *err)
{
    json_t *pvc = NULL, *pv = NULL, *e = NULL, *v = NULL;
    char role[512];
    int rc;
    struct aicp_kube_ref ref = {
        .api_version = "v1", .kind = "PersistentVolumeClaim", .namespace = ns, .name = claim};
    e = json_pack("{s:s, s:s}", "namespace", ns, "name", claim);
    if (e == NULL || json_array_append_new(pvcs, e) != 0)
        return oom(err);
    if ((rc = aicp_kube_get(t->k, &ref, &pvc, err)) != 0)
        goto out;
    if (pvc == NULL) {
        json_object_set_new(e, "note", json_string("not found"));
        add_missing(t, "PVC %s/%s (mounted by the Job) does not exist", ns, claim);
        goto out;
    }
    const char *phase = json_string_value(aicp_kube_field(pvc, "status.phase"));
    const char *pvname = json_string_value(aicp_kube_field(pvc, "spec.volumeName"));
    json_object_set_new(e, "phase", json_string(phase ? phase : "Unknown"));
    if (pvname == NULL) {
        json_object_set_new(e, "note", json_string("not bound"));
        add_missing(t, "PVC %s/%s is not bound to a PV (phase %s)", ns, claim, or_dash(phase));
        goto out;
    }
    json_object_set_new(e, "pv", json_string(pvname));
    struct aicp_kube_ref pref = {.api_version = "v1", .kind = "PersistentVolume", .name = pvname};
    if ((rc = aicp_kube_get(t->k, &pref, &pv, err)) != 0)
        goto out;
    if (pv == NULL) {
        json_object_set_new(e, "note", json_string("PV not found"));
        add_missing(t, "PV %s of PVC %s/%s does not exist", pvname, ns, claim);
        goto out;
    }
    const char *driver = json_string_value(aicp_kube_field(pv, "spec.csi.driver"));
    if (driver == NULL || strcmp(driver, TRIDENT_DRIVER) != 0) {
        char note[256];
        snprintf(note, sizeof(note), "not a Trident volume (driver %s): not traced into ONTAP",
                 or_dash(driver));
        json_object_set_new(e, "note", json_string(note));
        goto out;
    }
    const char *how = NULL;
    const char *vname = aicp_trace_pvc_volume(pvc, pv, &how);
    if (vname == NULL) {
        json_object_set_new(e, "note", json_string("the PV does not name its ONTAP volume"));
        add_missing(t,
                    "PV %s of PVC %s/%s does not name its ONTAP volume (no "
                    "spec.csi.volumeAttributes.internalName, no import annotation)",
                    pvname, ns, claim);
        goto out;
    }
    json_object_set_new(e, "via", json_string(how));
    snprintf(role, sizeof(role), "pvc %s/%s", ns, claim);
    if ((rc = want_volume(t, NULL, vname, role, &v, err)) != 0)
        goto out;
    if (v == NULL) {
        json_object_set_new(e, "volume", json_pack("{s:s}", "name", vname));
        add_missing(t, "ONTAP volume %s (behind PVC %s/%s) is on none of the site's clusters",
                    vname, ns, claim);
        goto out;
    }
    json_object_set_new(e, "volume",
                        json_pack("{s:O?, s:O?, s:O?}", "cluster", json_object_get(v, "cluster"),
                                  "svm", json_object_get(v, "svm"), "name",
                                  json_object_get(v, "name")));
out:
    json_decref(pvc);
    json_decref(pv);
    return rc;
}

/* A snapshot annotation of the Job: resolves its volume, remembers the
 * snapshot for the check once snapshots are read. */
static int job_snapref(struct trace *t, const json_t *job, const char *jname, const char *key,
                       const char *what, json_t *je, struct aicp_err *err)
{
    const char *ref = annotation(job, key);
    char svm[256], vol[256], snap[256];
    json_t *v = NULL;
    int rc;
    if (ref == NULL) {
        if (strcmp(what, "dataset") == 0)
            add_missing(t, "Job %s has no annotation %s", jname, key);
        return 0;
    }
    json_object_set_new(je, strcmp(what, "dataset") == 0 ? "dataset_snapshot" : "model_snapshot",
                        json_string(ref));
    if (aicp_trace_parse_snapref(ref, svm, sizeof(svm), vol, sizeof(vol), snap, sizeof(snap)) !=
        0) {
        add_missing(t, "Job %s: annotation %s is '%s', not SVM:VOLUME@SNAPSHOT", jname, key, ref);
        return 0;
    }
    if ((rc = want_volume(t, svm, vol, what, &v, err)) != 0)
        return rc;
    if (v == NULL) {
        add_missing(t, "ONTAP volume %s%s%s (the Job's %s) is on none of the site's clusters", svm,
                    *svm ? ":" : "", vol, what);
        return 0;
    }
    json_t *a =
        json_pack("{s:s, s:s, s:O, s:O?, s:O, s:s, s:s}", "what", what, "job", jname, "cluster",
                  json_object_get(v, "cluster"), "svm", json_object_get(v, "svm"), "volume",
                  json_object_get(v, "name"), "snapshot", snap, "ref", ref);
    if (a == NULL || json_array_append_new(t->annotated, a) != 0)
        return oom(err);
    return 0;
}

static int trace_job(struct trace *t, const json_t *job, struct aicp_err *err)
{
    const char *ns = json_string_value(aicp_kube_field(job, "metadata.namespace"));
    const char *name = json_string_value(aicp_kube_field(job, "metadata.name"));
    const char *finished = NULL, *status = job_status(job, &finished);
    char jname[512];
    int rc;
    if (ns == NULL)
        ns = "default";
    snprintf(jname, sizeof(jname), "%s/%s", ns, or_dash(name));
    json_t *je = json_pack(
        "{s:s, s:s?, s:s?, s:s, s:s?, s:s?, s:s?, s:[]}", "namespace", ns, "name", name, "created",
        json_string_value(aicp_kube_field(job, "metadata.creationTimestamp")), "status", status,
        "start_time", json_string_value(aicp_kube_field(job, "status.startTime")),
        "completion_time", finished, "run_id", label(job, AICP_TRACE_LABEL), "pvcs");
    if (je == NULL || json_array_append_new(t->jobs, je) != 0)
        return oom(err);
    json_t *pvcs = json_object_get(je, "pvcs");
    const json_t *vols = aicp_kube_field(job, "spec.template.spec.volumes");
    size_t i;
    const json_t *vv;
    json_array_foreach(vols, i, vv)
    {
        const char *claim =
            json_string_value(aicp_kube_field(vv, "persistentVolumeClaim.claimName"));
        int dup = 0;
        size_t j;
        const json_t *p;
        json_array_foreach(pvcs, j, p)
        {
            if (same(str_of(p, "name"), claim))
                dup = 1;
        }
        if (claim == NULL || dup)
            continue; /* two mounts of one claim are one claim */
        if ((rc = trace_pvc(t, pvcs, ns, claim, err)) != 0)
            return rc;
    }
    if ((rc = job_snapref(t, job, jname, AICP_TRACE_DATASET, "dataset", je, err)) != 0 ||
        (rc = job_snapref(t, job, jname, AICP_TRACE_MODEL, "model", je, err)) != 0)
        return rc;
    return 0;
}

/* ---- snapshots and clones ---- */

static int annotated_name(const struct trace *t, const json_t *v, const char *snap)
{
    size_t i;
    const json_t *a;
    json_array_foreach(t->annotated, i, a)
    {
        if (json_equal(json_object_get(a, "cluster"), json_object_get(v, "cluster")) &&
            json_equal(json_object_get(a, "svm"), json_object_get(v, "svm")) &&
            json_equal(json_object_get(a, "volume"), json_object_get(v, "name")) &&
            same(str_of(a, "snapshot"), snap))
            return 1;
    }
    return 0;
}

static int snapshot_clones(struct aicp_ontap *o, const json_t *v, json_t *snap,
                           struct aicp_err *err)
{
    struct aicp_buf q = AICP_BUF_INIT;
    json_t *recs = NULL, *clones = json_array();
    size_t i;
    json_t *rec;
    int rc;
    if (clones == NULL || json_object_set_new(snap, "clones", clones) != 0)
        return oom(err);
    aicp_ontap_qadd(&q, "clone.parent_snapshot.name", str_of(snap, "name"));
    aicp_ontap_qadd(&q, "clone.parent_volume.name", str_of(v, "name"));
    if (q.data == NULL)
        return oom(err);
    rc = aicp_ontap_list(o, "/api/storage/volumes", q.data, VOLUME_FIELDS, &recs, err);
    aicp_buf_free(&q);
    if (rc != 0) {
        aicp_err_prefix(err, "ONTAP cluster %s: clones of %s:%s@%s", str_of(v, "cluster"),
                        or_dash(str_of(v, "svm")), or_dash(str_of(v, "name")),
                        or_dash(str_of(snap, "name")));
        return rc;
    }
    json_array_foreach(recs, i, rec)
    {
        const char *psvm = json_string_value(aicp_kube_field(rec, "clone.parent_svm.name"));
        if (psvm && str_of(v, "svm") && strcmp(psvm, str_of(v, "svm")) != 0)
            continue; /* a same-named volume of another SVM */
        json_t *c = json_pack("{s:O, s:s?, s:s?, s:s?, s:O?, s:s?}", "cluster",
                              json_object_get(v, "cluster"), "svm",
                              json_string_value(aicp_kube_field(rec, "svm.name")), "name",
                              str_of(rec, "name"), "uuid", str_of(rec, "uuid"), "size",
                              json_object_get(rec, "size"), "created", str_of(rec, "create_time"));
        if (c == NULL || json_array_append_new(clones, c) != 0) {
            json_decref(recs);
            return oom(err);
        }
    }
    json_decref(recs);
    return 0;
}

/* The run's snapshots on volume v (and those the Job names), with the
 * clones made from each. */
static int volume_snapshots(struct trace *t, json_t *v, struct aicp_err *err)
{
    struct aicp_ontap *o = NULL;
    struct aicp_buf path = AICP_BUF_INIT;
    json_t *recs = NULL, *snaps = json_object_get(v, "snapshots");
    size_t i;
    json_t *rec;
    int rc;
    if (str_of(v, "uuid") == NULL)
        return 0;
    if ((rc = ontap_client(t, str_of(v, "cluster"), &o, err)) != 0)
        return rc;
    if (aicp_buf_printf(&path, "/api/storage/volumes/%s/snapshots", str_of(v, "uuid")) != 0)
        return oom(err);
    rc = aicp_ontap_list(o, path.data, NULL, "name,uuid,create_time,comment", &recs, err);
    aicp_buf_free(&path);
    if (rc != 0) {
        aicp_err_prefix(err, "ONTAP cluster %s: snapshots of %s:%s", str_of(v, "cluster"),
                        or_dash(str_of(v, "svm")), or_dash(str_of(v, "name")));
        return rc;
    }
    json_array_foreach(recs, i, rec)
    {
        const char *name = str_of(rec, "name");
        const char *role = aicp_trace_snapshot_role(t->run_id, name, str_of(rec, "comment"));
        if (name == NULL || (role == NULL && !annotated_name(t, v, name)))
            continue;
        json_t *s =
            json_pack("{s:s, s:s, s:s?, s:s?}", "name", name, "role", role ? role : "annotated",
                      "create_time", str_of(rec, "create_time"), "comment", str_of(rec, "comment"));
        if (s == NULL || json_array_append_new(snaps, s) != 0) {
            rc = oom(err);
            goto out;
        }
        if ((rc = snapshot_clones(o, v, s, err)) != 0)
            goto out;
    }
out:
    json_decref(recs);
    return rc;
}

static const json_t *find_snapshot(const struct trace *t, const json_t *a)
{
    size_t i, j;
    const json_t *v, *s;
    json_array_foreach(t->volumes, i, v)
    {
        if (!json_equal(json_object_get(a, "cluster"), json_object_get(v, "cluster")) ||
            !json_equal(json_object_get(a, "svm"), json_object_get(v, "svm")) ||
            !json_equal(json_object_get(a, "volume"), json_object_get(v, "name")))
            continue;
        json_array_foreach(json_object_get(v, "snapshots"), j, s)
        {
            if (json_equal(json_object_get(s, "name"), json_object_get(a, "snapshot")))
                return s;
        }
    }
    return NULL;
}

/* The Job's snapshots exist? The first dataset one found is the run's
 * dataset; without an annotation, a baseline-RUN snapshot stands in. */
static json_t *check_annotated(struct trace *t)
{
    json_t *ds = NULL;
    size_t i, j;
    const json_t *a, *v, *s;
    json_array_foreach(t->annotated, i, a)
    {
        const json_t *snap = find_snapshot(t, a);
        if (snap == NULL) {
            add_missing(t, "snapshot %s (the %s named by Job %s) does not exist on %s:%s (%s)",
                        str_of(a, "snapshot"), str_of(a, "what"), str_of(a, "job"),
                        str_of(a, "svm"), str_of(a, "volume"), str_of(a, "cluster"));
            continue;
        }
        if (ds == NULL && same(str_of(a, "what"), "dataset"))
            ds = json_pack("{s:O, s:O?, s:O, s:O, s:O?}", "cluster", json_object_get(a, "cluster"),
                           "svm", json_object_get(a, "svm"), "volume", json_object_get(a, "volume"),
                           "snapshot", json_object_get(a, "snapshot"), "create_time",
                           json_object_get(snap, "create_time"));
    }
    if (ds != NULL)
        return ds;
    json_array_foreach(t->volumes, i, v)
    {
        json_array_foreach(json_object_get(v, "snapshots"), j, s)
        {
            if (same(str_of(s, "role"), "baseline"))
                return json_pack(
                    "{s:O, s:O?, s:O, s:O, s:O?}", "cluster", json_object_get(v, "cluster"), "svm",
                    json_object_get(v, "svm"), "volume", json_object_get(v, "name"), "snapshot",
                    json_object_get(s, "name"), "create_time", json_object_get(s, "create_time"));
        }
    }
    return NULL;
}

/* No Job to start from: every volume of every cluster of the site is asked
 * for the run's snapshot names (ONTAP has no cross-volume snapshot query). */
static int scan_volumes(struct trace *t, struct aicp_err *err)
{
    const char *cluster;
    json_t *cfg;
    char names[512];
    snprintf(names, sizeof(names), "baseline-%s|model-%s-pre|model-%s-post", t->run_id, t->run_id,
             t->run_id);
    json_object_foreach((json_t *)t->site->ontap, cluster, cfg)
    {
        struct aicp_ontap *o = NULL;
        json_t *vols = NULL;
        int rc;
        (void)cfg;
        if ((rc = ontap_client(t, cluster, &o, err)) != 0 ||
            (rc = aicp_ontap_list(o, "/api/storage/volumes", NULL, VOLUME_FIELDS, &vols, err)) !=
                0) {
            aicp_err_prefix(err, "ONTAP cluster %s", cluster);
            return rc;
        }
        size_t i;
        json_t *rec;
        json_array_foreach(vols, i, rec)
        {
            struct aicp_buf path = AICP_BUF_INIT, q = AICP_BUF_INIT;
            json_t *snaps = NULL;
            if (i >= SCAN_MAX) {
                char note[256];
                snprintf(note, sizeof(note),
                         "ONTAP cluster %s: only the first %d of %zu volumes were scanned", cluster,
                         SCAN_MAX, json_array_size(vols));
                add_note(t, note);
                break;
            }
            aicp_buf_printf(&path, "/api/storage/volumes/%s/snapshots",
                            or_dash(str_of(rec, "uuid")));
            aicp_ontap_qadd(&q, "name", names);
            if (path.data == NULL || q.data == NULL) {
                aicp_buf_free(&path);
                aicp_buf_free(&q);
                json_decref(vols);
                return oom(err);
            }
            rc = aicp_ontap_list(o, path.data, q.data, "name", &snaps, err);
            aicp_buf_free(&path);
            aicp_buf_free(&q);
            if (rc == 0 && json_array_size(snaps) > 0 && volume_entry(t, cluster, rec) == NULL)
                rc = oom(err);
            json_decref(snaps);
            if (rc != 0) {
                json_decref(vols);
                return rc;
            }
        }
        json_decref(vols);
    }
    return 0;
}

/* Finds the run's Jobs: by name (--job), or by the run-id label. */
static int find_jobs(struct trace *t, const char *job_name, const char *ns, json_t **jobs,
                     struct aicp_err *err)
{
    int rc;
    *jobs = NULL;
    if (job_name) {
        json_t *job = NULL;
        struct aicp_kube_ref ref = {
            .api_version = "batch/v1", .kind = "Job", .namespace = ns, .name = job_name};
        if ((rc = aicp_kube_get(t->k, &ref, &job, err)) != 0)
            return rc;
        *jobs = json_array();
        if (*jobs == NULL) {
            json_decref(job);
            return oom(err);
        }
        if (job == NULL) {
            add_missing(t, "Job %s/%s does not exist", ns ? ns : aicp_kube_default_namespace(t->k),
                        job_name);
            return 0;
        }
        const char *run = label(job, AICP_TRACE_LABEL);
        if (run == NULL)
            add_missing(t, "Job %s/%s has no label %s: the run is not known",
                        ns ? ns : aicp_kube_default_namespace(t->k), job_name, AICP_TRACE_LABEL);
        else if ((t->run_id = aicp_strdup(run)) == NULL) {
            json_decref(job);
            return oom(err);
        }
        json_array_append_new(*jobs, job);
        return 0;
    }
    char sel[256];
    snprintf(sel, sizeof(sel), "%s=%s", AICP_TRACE_LABEL, t->run_id);
    if ((rc = aicp_kube_list(t->k, "batch/v1", "Job", ns, sel, jobs, err)) != 0)
        return rc;
    if (json_array_size(*jobs) == 0)
        add_missing(t, "no Job labelled %s%s%s (deleted, or not this cluster)", sel,
                    ns ? " in namespace " : "", ns ? ns : "");
    return 0;
}

static int trace_run(struct trace *t, const char *job_name, const char *ns, struct aicp_err *err)
{
    json_t *jobs = NULL;
    size_t i;
    json_t *job;
    int rc;
    if ((rc = find_jobs(t, job_name, ns, &jobs, err)) != 0)
        goto out;
    if (json_object_size(t->site->ontap) == 0)
        add_missing(t, "the site has no ontap section: the ONTAP side cannot be traced");
    json_array_foreach(jobs, i, job)
    {
        if ((rc = trace_job(t, job, err)) != 0)
            goto out;
    }
    if (json_array_size(jobs) == 0 && t->run_id && json_object_size(t->site->ontap) > 0) {
        add_note(t, "no Job: the site's ONTAP volumes were scanned for the run's snapshots");
        if ((rc = scan_volumes(t, err)) != 0)
            goto out;
    }
    size_t nsnaps = 0;
    json_array_foreach(t->volumes, i, job)
    {
        if ((rc = volume_snapshots(t, job, err)) != 0)
            goto out;
        nsnaps += json_array_size(json_object_get(job, "snapshots"));
    }
    if (t->run_id && nsnaps == 0 && json_object_size(t->site->ontap) > 0)
        add_missing(t, "no snapshot of run %s (baseline-%s, model-%s-pre, model-%s-post) on %s",
                    t->run_id, t->run_id, t->run_id, t->run_id,
                    json_array_size(t->volumes) ? "the traced volumes" : "any volume");
out:
    json_decref(jobs);
    return rc;
}

/* ---- the command line ---------------------------------------------------------- */

static void usage(FILE *fp)
{
    fputs("usage: aicp trace SITE RUN_ID [--namespace NS] [--json]\n"
          "       aicp trace SITE --job NAME [--namespace NS] [--json]\n"
          "           [--kubeconfig FILE] [--context NAME] [-e KEY=VALUE | -e @FILE]...\n"
          "           [--vault-password-file F | --vault-id [LABEL@]F ... | -J]\n",
          fp);
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("aicp trace: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    usage(stderr);
    return EXIT_USAGE;
}

/* The ONTAP passwords are secrets however they reached the site (a plain
 * -e too): nothing printed may hold them. */
static int register_passwords(struct aicp_secrets *secrets, const json_t *ontap)
{
    const char *name;
    const json_t *c;
    json_object_foreach((json_t *)ontap, name, c)
    {
        const char *pw = str_of(c, "password");
        (void)name;
        if (pw && aicp_secrets_add(secrets, pw, strlen(pw)) != 0)
            return AICP_ENOMEM;
    }
    return 0;
}

/* Prints the document, masked; 0 or AICP_ENOMEM. */
static int print_doc(const json_t *doc, int as_json, const struct aicp_secrets *secrets)
{
    struct aicp_buf b = AICP_BUF_INIT;
    char *text = NULL;
    int rc = 0;
    if (as_json) {
        json_t *masked = aicp_secrets_mask_json(secrets, doc);
        text = masked ? json_dumps(masked, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        json_decref(masked);
        if (text == NULL)
            return AICP_ENOMEM;
        fputs(text, stdout);
        fputc('\n', stdout);
        free(text);
        return 0;
    }
    if ((rc = aicp_trace_render(&b, doc)) == 0 && aicp_secrets_mask_buf(secrets, &b) == 0)
        fputs(b.data, stdout);
    else
        rc = AICP_ENOMEM;
    aicp_buf_free(&b);
    return rc;
}

int aicp_trace_main(int argc, char **argv)
{
    enum { OPT_JSON = 256, OPT_KCFG, OPT_CTX, OPT_VPF, OPT_VID, OPT_JOB };
    static const struct option longopts[] = {
        {"json", no_argument, NULL, OPT_JSON},
        {"job", required_argument, NULL, OPT_JOB},
        {"namespace", required_argument, NULL, 'n'},
        {"kubeconfig", required_argument, NULL, OPT_KCFG},
        {"context", required_argument, NULL, OPT_CTX},
        {"extra-vars", required_argument, NULL, 'e'},
        {"vault-password-file", required_argument, NULL, OPT_VPF},
        {"vault-id", required_argument, NULL, OPT_VID},
        {"ask-vault-pass", no_argument, NULL, 'J'},
        {"ask-vault-password", no_argument, NULL, 'J'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct aicp_err err = {0};
    struct aicp_site_load_opts lo = {0};
    struct trace t = {0};
    const char **extras = calloc((size_t)argc + 1, sizeof(*extras));
    const char **ids = calloc((size_t)argc + 1, sizeof(*ids));
    const char **files = calloc((size_t)argc + 1, sizeof(*files));
    const char *job_name = NULL, *ns = NULL, *kubeconfig = NULL, *context = NULL;
    json_t *extra = json_object(), *doc = NULL, *ds = NULL;
    struct aicp_vault *vault = NULL;
    struct aicp_secrets *secrets = NULL;
    struct aicp_srcmap *emap = NULL;
    struct aicp_site *site = NULL;
    struct aicp_http *http = NULL;
    struct aicp_kube_pool *kpool = NULL;
    int status = EXIT_USAGE, c, rc, ask = 0, as_json = 0;
    size_t nextra = 0, nids = 0, nfiles = 0;

    t.missing = json_array();
    t.notes = json_array();
    t.jobs = json_array();
    t.volumes = json_array();
    t.annotated = json_array();
    if (extras == NULL || ids == NULL || files == NULL || extra == NULL || t.missing == NULL ||
        t.notes == NULL || t.jobs == NULL || t.volumes == NULL || t.annotated == NULL ||
        aicp_vault_new(&vault) != 0 || aicp_secrets_new(&secrets) != 0 ||
        aicp_srcmap_new(&emap) != 0) {
        fputs("aicp: out of memory\n", stderr);
        status = 1;
        goto out;
    }
    optind = 1;
    while ((c = getopt_long(argc, argv, "n:e:hJ", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_JSON:
            as_json = 1;
            break;
        case OPT_JOB:
            job_name = optarg;
            break;
        case 'n':
            ns = optarg;
            break;
        case OPT_KCFG:
            kubeconfig = optarg;
            break;
        case OPT_CTX:
            context = optarg;
            break;
        case 'e':
            extras[nextra++] = optarg;
            break;
        case OPT_VPF:
            files[nfiles++] = optarg;
            break;
        case OPT_VID:
            ids[nids++] = optarg;
            break;
        case 'J':
            ask = 1;
            break;
        case 'h':
            usage(stdout);
            status = 0;
            goto out;
        default:
            status = usage_error("bad option");
            goto out;
        }
    }
    if (job_name ? optind != argc - 1 : optind != argc - 2) {
        status = usage_error(job_name ? "with --job, give only the site file"
                                      : "give a site file and a run id (or --job NAME)");
        goto out;
    }
    if (!job_name && !aicp_trace_run_id_ok(argv[optind + 1])) {
        status = usage_error("'%s' is not a run id (a label value: letters, digits, '-', '_', "
                             "'.', at most 63)",
                             argv[optind + 1]);
        goto out;
    }
    if (job_name && *job_name == '\0') {
        status = usage_error("--job wants a Job's name");
        goto out;
    }
    if ((rc = aicp_vault_add_cli(vault, ids, nids, files, nfiles, ask, &err)) != 0) {
        fprintf(stderr, "aicp: %s\n", err.msg);
        status = aicp_err_exit_status(rc);
        goto out;
    }
    aicp_srcmap_set_vault(emap, vault, secrets);
    for (size_t i = 0; i < nextra; i++) {
        if ((rc = aicp_cli_extra_vars(extra, extras[i], emap, &err)) != 0) {
            aicp_cli_print_error(secrets, "aicp: ", err.msg);
            status = aicp_err_exit_status(rc);
            goto out;
        }
    }
    lo.extra_vars = extra;
    lo.vault = vault;
    lo.secrets = secrets;
    if ((rc = aicp_site_load(&site, argv[optind], &lo, &err)) != 0) {
        aicp_cli_print_error(secrets, "ERROR! ", err.msg);
        status = aicp_err_exit_status(rc);
        goto out;
    }
    if (register_passwords(secrets, site->ontap) != 0) {
        fputs("aicp: out of memory\n", stderr);
        status = 1;
        goto out;
    }
    t.site = site;
    if (!job_name && (t.run_id = aicp_strdup(argv[optind + 1])) == NULL) {
        fputs("aicp: out of memory\n", stderr);
        status = 1;
        goto out;
    }
    struct aicp_kube_config kc = {.kubeconfig = kubeconfig ? kubeconfig : site->kubeconfig,
                                  .context = context ? context : site->context};
    if ((rc = aicp_http_new(&http, NULL, &err)) != 0 ||
        (rc = aicp_kube_pool_new(&kpool, http, &kc)) != 0 ||
        (rc = aicp_ontap_pool_new(&t.pool, http)) != 0 ||
        (rc = aicp_kube_pool_get(kpool, NULL, NULL, &t.k, &err)) != 0 ||
        (rc = trace_run(&t, job_name, ns, &err)) != 0) {
        if (err.msg[0] == '\0')
            aicp_err_set(&err, rc, "%s", aicp_strerror(rc));
        aicp_cli_print_error(secrets, "aicp trace: ", err.msg);
        status = rc == AICP_EINVAL || rc == AICP_EUNDEF ? aicp_err_exit_status(rc) : 1;
        goto out;
    }
    ds = check_annotated(&t);
    doc = json_pack("{s:s?, s:s, s:b, s:o, s:O, s:O, s:O, s:O}", "run_id", t.run_id, "site",
                    site->name, "complete", json_array_size(t.missing) == 0, "dataset",
                    ds ? ds : json_null(), "missing", t.missing, "notes", t.notes, "jobs", t.jobs,
                    "volumes", t.volumes);
    ds = NULL; /* s:o took it */
    if (doc == NULL || print_doc(doc, as_json, secrets) != 0) {
        fputs("aicp: out of memory\n", stderr);
        status = 1;
        goto out;
    }
    status = json_array_size(t.missing) == 0 ? 0 : 2;
out:
    json_decref(doc);
    json_decref(ds);
    json_decref(t.missing);
    json_decref(t.notes);
    json_decref(t.jobs);
    json_decref(t.volumes);
    json_decref(t.annotated);
    free(t.run_id);
    aicp_ontap_pool_free(t.pool);
    aicp_kube_pool_free(kpool);
    aicp_http_free(http);
    aicp_site_free(site);
    free(extras);
    free(ids);
    free(files);
    json_decref(extra);
    aicp_srcmap_free(emap);
    aicp_vault_free(vault);
    aicp_secrets_free(secrets);
    return status;
}
