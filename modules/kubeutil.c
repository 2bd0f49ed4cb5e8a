/* The life cycle every Kubernetes module shares (modules/kubeutil.h): read
 * each desired object, compute its drift on the declared fields, flag drift
 * in immutable fields as a replacement, validate a needed change with a
 * server-side dry run, then apply, replace or delete, and wait.
 *
 * The "current" document aicp_ku_check builds is also the plan: diff and
 * apply read it again, so that what check mode predicts is what apply
 * does. Besides the keys the header names, an object entry may carry
 * "merge_patch": true (a module adds such entries itself, e.g. the
 * StorageClasses that storage_class demotes): its desired document minus
 * apiVersion, kind, name and namespace is sent as a JSON merge patch
 * instead of a server-side apply, for fields that another tool owns.
 * An immutable path may be written "Kind:path" to hold for one kind only,
 * for modules (k8s) whose objects are of several kinds.
 *
 * Secret data never leaves this file: live objects are kept with Secret
 * data and stringData values masked, drift in them says only which key
 * changed, and results carry the masked objects. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kube.h"
#include "kubeutil.h"
#include "module.h"
#include "util.h"

#define KU_MASK "********"
#define KU_LAST_APPLIED "kubectl.kubernetes.io/last-applied-configuration"

/* ---- small helpers ----------------------------------------------------- */

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static int is_secret(const json_t *obj)
{
    const char *kind = json_string_value(json_object_get(obj, "kind"));
    return kind != NULL && strcmp(kind, "Secret") == 0;
}

/* Replaces every value of the object member key by the mask, keeping the
 * keys: a reader learns which entries a Secret has, never what they hold. */
static void mask_values(json_t *obj, const char *key)
{
    json_t *m = json_object_get(obj, key);
    const char *k;
    json_t *v;
    if (!json_is_object(m)) {
        if (m != NULL)
            json_object_set_new(obj, key, json_string(KU_MASK));
        return;
    }
    json_object_foreach(m, k, v) {
        json_object_set_new(m, k, json_string(KU_MASK));
    }
}

/* A copy of an object fit for results and logs: Secret values masked (and
 * kubectl's last-applied annotation, which holds them, dropped), and the
 * managedFields bookkeeping left out. New reference (NULL for NULL). */
static json_t *sanitize(const json_t *obj)
{
    if (obj == NULL || json_is_null(obj))
        return NULL;
    json_t *c = json_deep_copy(obj);
    if (c == NULL)
        return NULL;
    json_t *md = json_object_get(c, "metadata");
    if (json_is_object(md))
        json_object_del(md, "managedFields");
    if (is_secret(c)) {
        mask_values(c, "data");
        mask_values(c, "stringData");
        json_t *ann = json_object_get(md, "annotations");
        if (json_is_object(ann))
            json_object_del(ann, KU_LAST_APPLIED);
    }
    return c;
}

/* "Kind/ns/name", or "Kind/name" for objects without a namespace. */
static json_t *ref_string(const struct aicp_kube_ref *r)
{
    char buf[768];
    if (r->namespace != NULL && *r->namespace)
        snprintf(buf, sizeof(buf), "%s/%s/%s", r->kind, r->namespace, r->name);
    else
        snprintf(buf, sizeof(buf), "%s/%s", r->kind, r->name);
    return json_string(buf);
}

/* 1 when path is field or lies under it ("parameters" covers
 * "parameters.backendType" and "parameters[a.b]"). */
static int path_under(const char *path, const char *field)
{
    size_t n = strlen(field);
    return strncmp(path, field, n) == 0 && (path[n] == '\0' || path[n] == '.' || path[n] == '[');
}

/* Whether a drifted path is immutable for this kind. */
static int immutable_path(const char *const *imm, const char *kind, const char *path)
{
    for (size_t i = 0; imm != NULL && imm[i] != NULL; i++) {
        const char *p = imm[i];
        const char *colon = strchr(p, ':');
        if (colon != NULL && strcspn(p, ".[") > (size_t)(colon - p)) {
            size_t kn = (size_t)(colon - p);
            if (kind == NULL || strlen(kind) != kn || strncmp(kind, p, kn) != 0)
                continue;
            p = colon + 1;
        }
        if (path_under(path, p))
            return 1;
    }
    return 0;
}

/* Secret drift names the key only: its values become the mask. */
static void mask_drift(json_t *drift)
{
    size_t i;
    json_t *d;
    json_array_foreach(drift, i, d) {
        const char *p = json_string_value(json_object_get(d, "path"));
        if (p == NULL || !(path_under(p, "data") || path_under(p, "stringData")))
            continue;
        if (json_object_get(d, "want") != NULL)
            json_object_set_new(d, "want", json_string(KU_MASK));
        if (json_object_get(d, "have") != NULL)
            json_object_set_new(d, "have", json_string(KU_MASK));
    }
}

/* Base64 (standard alphabet, padded): what a Secret's data holds. */
static char *b64_encode(const char *s, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    size_t o = 0;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)(unsigned char)s[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)(unsigned char)s[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)s[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

/* What a Secret manifest looks like once stored: the API server writes
 * stringData into data (base64; stringData wins for a key in both) and
 * keeps no stringData, so drift compares with this, never with the
 * manifest as written. New reference; the manifest itself for other
 * objects. */
static json_t *as_stored(json_t *m)
{
    json_t *sd = json_object_get(m, "stringData"), *c, *data, *v;
    const char *key;

    if (!is_secret(m) || !json_is_object(sd))
        return json_incref(m);
    if ((c = json_deep_copy(m)) == NULL)
        return NULL;
    data = json_object_get(c, "data");
    if (!json_is_object(data)) {
        data = json_object();
        if (data == NULL || json_object_set_new(c, "data", data) != 0) {
            json_decref(c);
            return NULL;
        }
    }
    json_object_foreach(sd, key, v) {
        const char *str = json_string_value(v);
        char *enc = str != NULL ? b64_encode(str, json_string_length(v)) : NULL;
        if (enc == NULL || json_object_set_new(data, key, json_string(enc)) != 0) {
            aicp_free_secret(enc);
            json_decref(c);
            return NULL;
        }
        aicp_free_secret(enc);
    }
    json_object_del(c, "stringData");
    return c;
}

static int ref_of_entry(struct aicp_kube_ref *r, const json_t *entry, struct aicp_err *err)
{
    return aicp_kube_ref_of(r, json_object_get(entry, "desired"), err);
}


/* ---- client and manifests ---------------------------------------------- */

int aicp_ku_client(struct aicp_ctx *ctx, const struct aicp_args *args, struct aicp_kube **k,
                   struct aicp_err *err)
{
    *k = NULL;
    if (ctx == NULL || ctx->kube == NULL)
        return aicp_err_set(err, AICP_EINVAL,
                            "this run has no Kubernetes client (the module needs a kubeconfig)");
    return aicp_kube_pool_get(ctx->kube, aicp_args_str(args, "kubeconfig"),
                              aicp_args_str(args, "context"), k, err);
}

json_t *aicp_ku_manifest(const char *api_version, const char *kind, const char *ns,
                         const char *name)
{
    json_t *md = json_pack("{s:s?}", "name", name);
    if (md != NULL && ns != NULL && *ns)
        json_object_set_new(md, "namespace", json_string(ns));
    return json_pack("{s:s, s:s, s:o}", "apiVersion", api_version, "kind", kind, "metadata", md);
}

/* Label and annotation values are strings in the API; YAML turns `true`
 * and `3` into other types, so they are written back as text. */
static json_t *meta_value(const json_t *v)
{
    char buf[64];
    if (json_is_string(v))
        return json_incref((json_t *)v);
    if (json_is_boolean(v))
        return json_string(json_is_true(v) ? "true" : "false");
    if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return json_string(buf);
    }
    if (json_is_real(v)) {
        snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));
        return json_string(buf);
    }
    return NULL;
}

int aicp_ku_set_meta(json_t *manifest, const struct aicp_args *args, struct aicp_err *err)
{
    static const char *const names[] = {"labels", "annotations"};
    json_t *md = json_object_get(manifest, "metadata");
    if (!json_is_object(md))
        return aicp_err_set(err, AICP_EINVAL, "manifest has no metadata");
    for (size_t i = 0; i < 2; i++) {
        const json_t *src = aicp_args_get(args, names[i]);
        const char *k;
        json_t *v;
        if (src == NULL || json_is_null(src))
            continue;
        if (!json_is_object(src))
            return aicp_err_set(err, AICP_EINVAL, "argument '%s' must be a dict", names[i]);
        if (json_object_size(src) == 0)
            continue;
        json_t *dst = json_object_get(md, names[i]);
        if (!json_is_object(dst)) {
            dst = json_object();
            if (dst == NULL || json_object_set_new(md, names[i], dst) != 0)
                return aicp_err_set(err, AICP_ENOMEM, "out of memory");
        }
        json_object_foreach((json_t *)src, k, v) {
            json_t *s = meta_value(v);
            if (s == NULL)
                return aicp_err_set(err, AICP_EINVAL, "%s.%s: the value must be a string", names[i],
                                    k);
            json_object_set_new(dst, k, s);
        }
    }
    return 0;
}

/* ---- check --------------------------------------------------------------- */

static json_t *opts_json(const struct aicp_ku_opts *o)
{
    json_t *w = json_null();
    if (o->wait != NULL) {
        const struct aicp_kube_wait *x = o->wait;
        w = json_pack("{s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:f, s:f}", "condition",
                      x->condition, "condition_status", x->condition_status, "field", x->field,
                      "value", x->value, "fail_condition", x->fail_condition, "fail_field",
                      x->fail_field, "fail_value", x->fail_value, "timeout_s", x->timeout_s,
                      "interval_s", x->interval_s);
    }
    return json_pack("{s:b, s:b, s:b, s:s?, s:o?}", "absent", o->absent, "allow_replace",
                     o->allow_replace, "force", o->force, "propagation", o->propagation, "wait", w);
}

/* Namespaced objects without a namespace get the context's; cluster-scoped
 * ones lose a namespace they should not have. Also checks the kind exists. */
static int place(struct aicp_kube *k, json_t *m, struct aicp_err *err)
{
    struct aicp_kube_ref r;
    struct aicp_kube_resource res;
    int rc;
    if ((rc = aicp_kube_ref_of(&r, m, err)) != 0)
        return rc;
    if ((rc = aicp_kube_resolve(k, r.api_version, r.kind, &res, err)) != 0)
        return rc;
    json_t *md = json_object_get(m, "metadata");
    if (res.namespaced && (r.namespace == NULL || *r.namespace == '\0')) {
        const char *ns = aicp_kube_default_namespace(k);
        json_object_set_new(md, "namespace", json_string(ns ? ns : "default"));
    } else if (!res.namespaced && r.namespace != NULL) {
        json_object_del(md, "namespace");
    }
    return 0;
}

/* One object's entry of the current document. */
static int check_one(struct aicp_kube *k, json_t *m, const struct aicp_ku_opts *o, json_t **out,
                     struct aicp_err *err)
{
    struct aicp_kube_ref r;
    json_t *live = NULL, *drift = NULL, *imm = NULL, *dry = NULL, *entry = NULL, *conf = NULL;
    json_t *stored = NULL;
    int rc;

    *out = NULL;
    if (!json_is_object(m))
        return aicp_err_set(err, AICP_EINVAL, "a manifest must be an object, not %s",
                            json_is_array(m) ? "a list" : "a scalar");
    /* Nothing of a kind the server does not know exists: absent holds. */
    int unknown_kind = 0;
    if ((rc = place(k, m, err)) != 0) {
        if (rc != AICP_ENOTFOUND || !o->absent)
            goto out;
        unknown_kind = 1;
    }
    if ((rc = aicp_kube_ref_of(&r, m, err)) != 0)
        goto out;
    if (!unknown_kind && (rc = aicp_kube_get(k, &r, &live, err)) != 0)
        goto out;
    /* An object that is being deleted is as good as gone for absent. */
    if (live != NULL && o->absent && aicp_kube_field(live, "metadata.deletionTimestamp") != NULL) {
        json_decref(live);
        live = NULL;
    }
    imm = json_array();
    int replace = 0;
    if (live != NULL && !o->absent) {
        if ((stored = as_stored(m)) == NULL) {
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
        if ((rc = aicp_kube_drift(stored, live, &drift)) != 0) {
            aicp_err_set(err, rc, "%s/%s: cannot compare the live object", r.kind, r.name);
            goto out;
        }
        size_t i;
        json_t *d;
        json_array_foreach(drift, i, d) {
            const char *p = json_string_value(json_object_get(d, "path"));
            if (p != NULL && immutable_path(o->immutable, r.kind, p)) {
                replace = 1;
                json_array_append_new(imm, json_string(p));
            }
        }
    }
    /* A change the server would refuse fails now, in check mode too. A
     * replacement cannot be dry-run (the object still exists), and a
     * missing namespace may come from an earlier task of the same run. */
    int change = !o->absent && (live == NULL || json_array_size(drift) > 0);
    if (change && !replace) {
        unsigned fl = AICP_KUBE_DRY_RUN | (o->force ? AICP_KUBE_FORCE : 0);
        struct aicp_err e2 = {0};
        rc = aicp_kube_apply_report(k, m, fl, &dry, &conf, &e2);
        if (rc == AICP_ENOTFOUND && live == NULL) {
            rc = 0;
        } else if (rc != 0) {
            /* A conflict with another field manager fails here as the
             * apply would, naming the fields, their owners and how to
             * take them over, so that check mode predicts the real run.
             * (Drift checks with force: there, a field someone else took
             * is plain drift.) */
            *err = e2;
            goto out;
        }
    }
    if (is_secret(m))
        mask_drift(drift);
    json_t *shown = sanitize(dry != NULL ? dry : live);
    entry = json_pack("{s:o, s:O, s:o, s:o, s:b, s:o}", "ref", ref_string(&r), "desired", m, "live",
                      live ? sanitize(live) : json_null(), "drift",
                      drift ? json_incref(drift) : json_null(), "replace", replace, "immutable",
                      json_incref(imm));
    if (entry == NULL) {
        json_decref(shown);
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (shown != NULL)
        json_object_set_new(entry, "shown", shown);
    if (conf != NULL)
        json_object_set(entry, "conflicts", conf);
    *out = entry;
    entry = NULL;
    rc = 0;
out:
    json_decref(live);
    json_decref(drift);
    json_decref(imm);
    json_decref(dry);
    json_decref(conf);
    json_decref(stored);
    json_decref(entry);
    return rc;
}

int aicp_ku_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t *manifests,
                  const struct aicp_ku_opts *o, json_t **current, struct aicp_err *err)
{
    struct aicp_kube *k = NULL;
    json_t *objects = json_array(), *shown = json_array(), *cur = NULL;
    size_t i;
    json_t *m;
    int rc;

    *current = NULL;
    if (objects == NULL || shown == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (!json_is_array(manifests)) {
        rc = aicp_err_set(err, AICP_EINVAL, "no manifests to check");
        goto out;
    }
    if ((rc = aicp_ku_client(ctx, args, &k, err)) != 0)
        goto out;
    json_array_foreach(manifests, i, m) {
        json_t *entry = NULL;
        if ((rc = check_one(k, m, o, &entry, err)) != 0)
            goto out;
        json_t *s = json_object_get(entry, "shown");
        if (s != NULL)
            json_array_append(shown, s);
        if (json_object_get(entry, "conflicts") != NULL && ctx->result != NULL) {
            json_t *all = json_object_get(ctx->result, "conflicts");
            if (!json_is_object(all)) {
                all = json_object();
                json_object_set_new(ctx->result, "conflicts", all);
            }
            json_object_set(all, jstr(entry, "ref"), json_object_get(entry, "conflicts"));
        }
        json_array_append_new(objects, entry);
    }
    cur = json_pack("{s:O, s:o}", "objects", objects, "opts", opts_json(o));
    if (cur == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (ctx->result != NULL)
        json_object_set(ctx->result, "objects", shown);
    *current = cur;
    rc = 0;
out:
    json_decref(manifests);
    json_decref(objects);
    json_decref(shown);
    return rc;
}

/* ---- diff ---------------------------------------------------------------- */

/* What an entry needs: 0 nothing, else one of these. */
enum ku_action { KU_NONE, KU_CREATE, KU_UPDATE, KU_REPLACE, KU_DELETE, KU_MERGE };

static enum ku_action action_of(const json_t *entry, int absent)
{
    const json_t *live = json_object_get(entry, "live");
    int exists = live != NULL && !json_is_null(live);
    if (absent)
        return exists ? KU_DELETE : KU_NONE;
    if (!exists)
        return KU_CREATE;
    if (json_array_size(json_object_get(entry, "drift")) == 0)
        return KU_NONE;
    if (json_is_true(json_object_get(entry, "merge_patch")))
        return KU_MERGE;
    return json_is_true(json_object_get(entry, "replace")) ? KU_REPLACE : KU_UPDATE;
}

/* The declared identity of an object, as before of a deletion. */
static json_t *identity(const json_t *desired)
{
    json_t *md = json_object_get(desired, "metadata");
    return json_pack("{s:O?, s:O?, s:O?, s:O?}", "apiVersion",
                     json_object_get(desired, "apiVersion"), "kind",
                     json_object_get(desired, "kind"), "name", json_object_get(md, "name"),
                     "namespace", json_object_get(md, "namespace"));
}

/* Comma-separated immutable paths of an entry, for messages. */
static void imm_list(char *buf, size_t n, const json_t *entry)
{
    size_t i, used = 0;
    json_t *p;
    buf[0] = '\0';
    json_array_foreach(json_object_get(entry, "immutable"), i, p) {
        int w = snprintf(buf + used, n - used, "%s%s", i ? ", " : "", json_string_value(p));
        if (w < 0 || (size_t)w >= n - used)
            break;
        used += (size_t)w;
    }
}

int aicp_ku_diff(const json_t *current, const struct aicp_args *args, struct aicp_change **change,
                 struct aicp_err *err)
{
    struct aicp_change *c = NULL;
    json_t *before = json_object(), *after = json_object(), *replaced = json_array();
    const json_t *opts = json_object_get(current, "opts");
    int absent = json_is_true(json_object_get(opts, "absent"));
    int allow = json_is_true(json_object_get(opts, "allow_replace"));
    size_t i;
    json_t *e;
    int rc;

    (void)args;
    *change = NULL;
    if (before == NULL || after == NULL || replaced == NULL || aicp_change_new(&c) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    json_array_foreach(json_object_get(current, "objects"), i, e) {
        const char *ref = jstr(e, "ref");
        const json_t *desired = json_object_get(e, "desired");
        enum ku_action a = action_of(e, absent);
        if (ref == NULL)
            continue;
        if (a == KU_NONE)
            continue;
        c->needed = 1;
        if (a == KU_DELETE) {
            json_object_set_new(before, ref, identity(desired));
            json_object_set_new(after, ref, json_null());
            continue;
        }
        if (a == KU_CREATE) {
            json_object_set_new(before, ref, json_null());
            json_object_set_new(after, ref, sanitize(desired));
            continue;
        }
        if (a == KU_REPLACE) {
            char fields[512];
            imm_list(fields, sizeof(fields), e);
            if (!allow) {
                rc = aicp_err_set(err, AICP_EFAILED,
                                  "%s: %s cannot be changed in place; the object must be "
                                  "replaced (replace: true or --allow-replace)",
                                  ref, fields);
                goto out;
            }
            json_array_append_new(replaced, json_string(ref));
        }
        json_t *b = json_object(), *af = json_object();
        size_t j;
        json_t *d;
        json_array_foreach(json_object_get(e, "drift"), j, d) {
            const char *p = jstr(d, "path"), *mgr = jstr(d, "manager");
            json_t *have = json_object_get(d, "have");
            json_t *want = json_object_get(d, "want");
            char key[768];
            if (p == NULL)
                continue;
            /* A field another manager owns says whose it is, in --diff,
             * plan and drift alike. */
            if (mgr != NULL)
                snprintf(key, sizeof key, "%s (owned by field manager \"%s\")", p, mgr);
            else
                snprintf(key, sizeof key, "%s", p);
            json_object_set_new(b, key, have ? json_incref(have) : json_null());
            json_object_set_new(af, key, want ? json_incref(want) : json_null());
        }
        json_object_set_new(before, ref, b);
        json_object_set_new(after, ref, af);
    }
    json_t *result = json_object();
    if (json_array_size(replaced) > 0) {
        json_object_set(result, "replaced", replaced);
    }
    c->plan = json_pack("{s:O, s:O?, s:o}", "objects", json_object_get(current, "objects"), "opts",
                        opts, "result", result);
    if (c->plan == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (c->needed) {
        c->before = before;
        c->after = after;
        before = after = NULL;
    }
    *change = c;
    c = NULL;
    rc = 0;
out:
    json_decref(before);
    json_decref(after);
    json_decref(replaced);
    aicp_change_free(c);
    return rc;
}

/* ---- apply --------------------------------------------------------------- */

static void wait_from_json(struct aicp_kube_wait *w, const json_t *j)
{
    memset(w, 0, sizeof(*w));
    w->condition = jstr(j, "condition");
    w->condition_status = jstr(j, "condition_status");
    w->field = jstr(j, "field");
    w->value = jstr(j, "value");
    w->fail_condition = jstr(j, "fail_condition");
    w->fail_field = jstr(j, "fail_field");
    w->fail_value = jstr(j, "fail_value");
    w->timeout_s = json_number_value(json_object_get(j, "timeout_s"));
    w->interval_s = json_number_value(json_object_get(j, "interval_s"));
}

/* The merge patch of a merge_patch entry: its desired document without the
 * identity fields, which a patch must not carry. New reference. */
static json_t *merge_body(const json_t *desired)
{
    json_t *p = json_deep_copy(desired);
    if (p == NULL)
        return NULL;
    json_object_del(p, "apiVersion");
    json_object_del(p, "kind");
    json_t *md = json_object_get(p, "metadata");
    if (json_is_object(md)) {
        json_object_del(md, "name");
        json_object_del(md, "namespace");
        if (json_object_size(md) == 0)
            json_object_del(p, "metadata");
    }
    return p;
}

/* A copy of desired carrying who changed it last (the annotation
 * AICP_KU_PROVENANCE: "site=NAME run=ID"). Only what is applied carries it,
 * never the desired state drift is computed on, so it never drifts. */
static json_t *with_provenance(const json_t *desired, const struct aicp_ctx *ctx)
{
    char prov[256];
    json_t *copy = json_deep_copy(desired), *meta, *ann;

    if (copy == NULL || ctx == NULL || ctx->run_id == NULL)
        return copy;
    snprintf(prov, sizeof prov, "site=%s run=%s", ctx->site ? ctx->site : "-", ctx->run_id);
    meta = json_object_get(copy, "metadata");
    if (!json_is_object(meta))
        return copy;
    ann = json_object_get(meta, "annotations");
    if (!json_is_object(ann)) {
        ann = json_object();
        if (ann == NULL || json_object_set_new(meta, "annotations", ann) != 0)
            return copy;
    }
    json_object_set_new(ann, AICP_KU_PROVENANCE, json_string(prov));
    return copy;
}

static int apply_one(struct aicp_kube *k, const json_t *e, const json_t *opts, int absent,
                     const struct aicp_ctx *ctx, json_t **obj, struct aicp_err *err)
{
    struct aicp_kube_ref r;
    enum ku_action a = action_of(e, absent);
    const json_t *desired = json_object_get(e, "desired");
    unsigned fl = json_is_true(json_object_get(opts, "force")) ? AICP_KUBE_FORCE : 0;
    const char *prop = jstr(opts, "propagation");
    const json_t *wj = json_object_get(opts, "wait");
    double wait_s = json_is_object(wj) ? json_number_value(json_object_get(wj, "timeout_s")) : 0;
    json_t *patch = NULL;
    int rc;

    *obj = NULL;
    if (wait_s <= 0)
        wait_s = 300;
    if ((rc = ref_of_entry(&r, e, err)) != 0)
        return rc;
    switch (a) {
    case KU_NONE: {
        const json_t *live = json_object_get(e, "live");
        *obj = json_is_object(live) ? json_incref((json_t *)live) : NULL;
        return 0;
    }
    case KU_DELETE:
        return aicp_kube_delete(k, &r, prop ? prop : "Background", 0, wait_s, NULL, err);
    case KU_MERGE: {
        /* Stamped like an apply, so the object says who changed it. */
        json_t *m = with_provenance(desired, ctx);
        patch = m != NULL ? merge_body(m) : NULL;
        json_decref(m);
        if (patch == NULL)
            return aicp_err_set(err, AICP_ENOMEM, "out of memory");
        rc = aicp_kube_merge_patch(k, &r, patch, 0, obj, err);
        json_decref(patch);
        return rc;
    }
    case KU_REPLACE:
        /* Foreground: dependents (a Job's pods) are gone before the new
         * object with the same name appears. */
        if (!json_is_true(json_object_get(opts, "allow_replace")))
            return aicp_err_set(err, AICP_EFAILED,
                                "%s must be replaced (replace: true or --allow-replace)",
                                jstr(e, "ref"));
        if ((rc = aicp_kube_delete(k, &r, prop ? prop : "Foreground", 0, wait_s, NULL, err)) != 0)
            return rc;
        __attribute__((fallthrough)); /* and create it again */
    case KU_CREATE:
    case KU_UPDATE: {
        json_t *m = with_provenance(desired, ctx);
        if (m == NULL)
            return aicp_err_set(err, AICP_ENOMEM, "out of memory");
        rc = aicp_kube_apply(k, m, fl, obj, err);
        json_decref(m);
        return rc;
    }
    }
    return 0;
}

int aicp_ku_apply(struct aicp_ctx *ctx, const struct aicp_change *change, struct aicp_err *err)
{
    struct aicp_kube *k = NULL;
    const json_t *plan = change->plan;
    const json_t *opts = json_object_get(plan, "opts");
    int absent = json_is_true(json_object_get(opts, "absent"));
    const json_t *wj = json_object_get(opts, "wait");
    json_t *results = json_array(), *demoted = json_array();
    size_t i;
    json_t *e;
    int rc;

    if (results == NULL || demoted == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = aicp_ku_client(ctx, change->args, &k, err)) != 0)
        goto out;
    json_array_foreach(json_object_get(plan, "objects"), i, e) {
        json_t *obj = NULL;
        if ((rc = apply_one(k, e, opts, absent, ctx, &obj, err)) != 0)
            goto out;
        int merge = json_is_true(json_object_get(e, "merge_patch"));
        if (!absent && !merge && json_is_object(wj)) {
            struct aicp_kube_wait w;
            struct aicp_kube_ref r;
            json_t *last = NULL;
            wait_from_json(&w, wj);
            if ((rc = ref_of_entry(&r, e, err)) != 0 ||
                (rc = aicp_kube_wait(k, &r, &w, &last, err)) != 0) {
                json_decref(obj);
                goto out;
            }
            if (last != NULL) {
                json_decref(obj);
                obj = last;
            }
        }
        if (merge) {
            if (action_of(e, absent) != KU_NONE)
                json_array_append(demoted, json_object_get(e, "ref"));
        } else if (obj != NULL) {
            json_array_append_new(results, sanitize(obj));
        }
        json_decref(obj);
    }
    rc = 0;
out:
    if (ctx->result != NULL && results != NULL) {
        json_object_set(ctx->result, "objects", results);
        if (json_array_size(demoted) > 0)
            json_object_set(ctx->result, "patched", demoted);
        const json_t *rep = json_object_get(json_object_get(plan, "result"), "replaced");
        if (rep != NULL)
            json_object_set(ctx->result, "replaced", (json_t *)rep);
    }
    json_decref(results);
    json_decref(demoted);
    return rc;
}
