/* The k8s module: any Kubernetes objects, from an inline `definition` (an
 * object, a list of them, or YAML text with several documents) or a local
 * `src` file (several `---` documents allowed; `kind: List` expanded),
 * present or absent, optionally waiting for a condition. The kind needs no
 * code: discovery resolves it, CRDs included. Known kinds keep the
 * immutable fields the API enforces (StorageClass, PersistentVolumeClaim,
 * Job, Secret type), so drift there needs `replace`. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kubeutil.h"
#include "template.h"
#include "module.h"
#include "util.h"
#include "yaml.h"

static const struct aicp_arg_spec k8s_args[] = {
    AICP_KU_CONN_ARGS,
    {.name = "definition",
     .type = AICP_ARG_RAW,
     .aliases = "resource_definition",
     .help = "The object(s): a mapping, a list of mappings, or YAML text (several documents "
             "allowed)."},
    {.name = "src",
     .type = AICP_ARG_PATH,
     .local = 1,
     .help = "A YAML file on the jump host with the object(s) (several documents allowed); "
             "relative to the playbook's directory."},
    {.name = "template",
     .type = AICP_ARG_PATH,
     .local = 1,
     .help = "A Jinja2 template on the jump host, rendered with the task's variables, that "
             "yields the object(s) as YAML (several documents allowed); relative to the "
             "playbook's directory."},
    {.name = "state",
     .type = AICP_ARG_STR,
     .def = "present",
     .choices = "present|absent",
     .help = "present: created or updated (server-side apply); absent: deleted."},
    {.name = "namespace",
     .type = AICP_ARG_STR,
     .help = "Namespace of namespaced objects that name none (default: the context's)."},
    {.name = "wait",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "After applying, wait for wait_condition (or, without one, for what the kind "
             "means by ready: Job Complete, PersistentVolumeClaim Bound, Pod Ready, "
             "Deployment Available)."},
    {.name = "wait_condition",
     .type = AICP_ARG_DICT,
     .help = "{type: CONDITION, status: \"True\"}: the status condition to wait for."},
    {.name = "wait_timeout",
     .type = AICP_ARG_INT,
     .def = "120",
     .help = "Seconds to wait (also for deletions to finish)."},
    {.name = "force",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Server-side apply with force: take over fields another manager owns."},
    {.name = "replace",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Delete and re-create an object whose immutable fields changed."},
    {.name = "apply",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .help = "Update existing objects with server-side apply; no: only create missing ones."},
    {.name = NULL},
};

/* What the API server refuses to change, per kind (as storage_class, pvc
 * and k8s_job know them). */
static const char *const k8s_immutable[] = {
    "StorageClass:provisioner",
    "StorageClass:parameters",
    "StorageClass:reclaimPolicy",
    "StorageClass:volumeBindingMode",
    "PersistentVolumeClaim:spec.storageClassName",
    "PersistentVolumeClaim:spec.accessModes",
    "PersistentVolumeClaim:spec.volumeName",
    "PersistentVolumeClaim:spec.volumeMode",
    "Job:spec.template",
    "Job:spec.selector",
    "Job:spec.completions",
    "Secret:type",
    "ConfigMap:immutable",
    NULL,
};

/* Appends the objects of one parsed document: a mapping, a List's items,
 * or each of a list; null (an empty document) adds nothing. */
static int add_doc(json_t *out, json_t *doc, const char *where, struct aicp_err *err)
{
    size_t i;
    json_t *x;
    int rc;
    if (json_is_null(doc))
        return 0;
    if (json_is_array(doc)) {
        json_array_foreach(doc, i, x) {
            if ((rc = add_doc(out, x, where, err)) != 0)
                return rc;
        }
        return 0;
    }
    if (!json_is_object(doc))
        return aicp_err_set(err, AICP_EINVAL, "%s: a Kubernetes object must be a mapping", where);
    const char *kind = json_string_value(json_object_get(doc, "kind"));
    const json_t *items = json_object_get(doc, "items");
    size_t kl = kind ? strlen(kind) : 0;
    if (kl >= 4 && strcmp(kind + kl - 4, "List") == 0 && json_is_array(items))
        return add_doc(out, (json_t *)items, where, err);
    return json_array_append_new(out, json_deep_copy(doc)) == 0
               ? 0
               : aicp_err_set(err, AICP_ENOMEM, "out of memory");
}

/* 1 when line (of len n) is a document marker "---" or "...". */
static int doc_marker(const char *line, size_t n, char c)
{
    return n >= 3 && line[0] == c && line[1] == c && line[2] == c &&
           (n == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r');
}

/* Parses YAML text with any number of documents. Each document is loaded
 * on its own, behind as many blank lines as precede it, so that errors
 * give the line in the whole text. */
static int parse_docs(json_t *out, const char *text, size_t len, const char *name,
                      struct aicp_err *err)
{
    struct aicp_buf doc = AICP_BUF_INIT;
    const char *p = text, *end = text + len;
    int line = 1, rc = 0;

    for (;;) {
        const char *eol = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
        size_t n = p < end ? (eol ? (size_t)(eol - p) : (size_t)(end - p)) : 0;
        int last = p >= end;
        int start = !last && doc_marker(p, n, '-');
        int stop = !last && doc_marker(p, n, '.');
        if (last || start || stop) {
            json_t *v = NULL;
            if (doc.len > 0) {
                if ((rc = aicp_yaml_load_string(&v, doc.data, doc.len, name, NULL, err)) != 0)
                    goto out;
                rc = add_doc(out, v, name, err);
                json_decref(v);
                if (rc != 0)
                    goto out;
            }
            doc.len = 0;
            if (doc.data)
                doc.data[0] = '\0';
            if (last)
                break;
            for (int i = 1; i < line; i++)
                if ((rc = aicp_buf_puts(&doc, "\n")) != 0)
                    goto out;
            /* "--- {kind: X}": what follows the marker is the document. */
            if (start && n > 3 &&
                ((rc = aicp_buf_puts(&doc, "   ")) != 0 ||
                 (rc = aicp_buf_append(&doc, p + 3, n - 3)) != 0))
                goto out;
        } else {
            if (doc.len == 0)
                for (int i = 1; i < line; i++)
                    if ((rc = aicp_buf_puts(&doc, "\n")) != 0)
                        goto out;
            if ((rc = aicp_buf_append(&doc, p, n)) != 0)
                goto out;
        }
        if ((rc = aicp_buf_puts(&doc, "\n")) != 0)
            goto out;
        line++;
        p = eol ? eol + 1 : end;
    }
out:
    if (rc == AICP_ENOMEM)
        aicp_err_set(err, rc, "out of memory");
    aicp_buf_free(&doc);
    return rc;
}

/* A local path: ~ is the operator's home, a relative one starts in the
 * playbook's directory. */
static int local_path(char *buf, size_t cap, const char *src, const char *dir)
{
    const char *home = getenv("HOME");
    int w;
    if (src[0] == '~' && (src[1] == '/' || src[1] == '\0') && home != NULL)
        w = snprintf(buf, cap, "%s%s", home, src + 1);
    else if (src[0] != '/' && dir != NULL && *dir)
        w = snprintf(buf, cap, "%s/%s", dir, src);
    else
        w = snprintf(buf, cap, "%s", src);
    return w < 0 || (size_t)w >= cap ? AICP_EINVAL : 0;
}

static int load_manifests(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **out,
                          struct aicp_err *err)
{
    const json_t *def = aicp_args_get(args, "definition");
    const char *src = aicp_args_str(args, "src");
    const char *tpl = aicp_args_str(args, "template");
    json_t *list = json_array();
    char *text = NULL, *rendered = NULL;
    size_t len = 0;
    char path[4096];
    int rc;

    *out = NULL;
    if (list == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    if (def != NULL && json_is_null(def))
        def = NULL;
    if ((def != NULL) + (src != NULL) + (tpl != NULL) != 1) {
        rc = aicp_err_set(err, AICP_EINVAL,
                          "k8s: give exactly one of definition, src and template");
        goto out;
    }
    if (tpl != NULL) {
        src = tpl;
        if (local_path(path, sizeof(path), tpl, ctx->search_dir) != 0) {
            rc = aicp_err_set(err, AICP_EINVAL, "template: path too long: %s", tpl);
            goto out;
        }
        if ((rc = aicp_read_file(&text, &len, path, err)) != 0)
            goto out;
        if ((rc = aicp_tmpl_render_text(&rendered, text, ctx->vars, err)) != 0) {
            aicp_err_prefix(err, "%s", path);
            goto out;
        }
        if ((rc = parse_docs(list, rendered, strlen(rendered), path, err)) != 0)
            goto out;
    } else if (src != NULL) {
        if (local_path(path, sizeof(path), src, ctx->search_dir) != 0) {
            rc = aicp_err_set(err, AICP_EINVAL, "src: path too long: %s", src);
            goto out;
        }
        if ((rc = aicp_read_file(&text, &len, path, err)) != 0)
            goto out;
        if ((rc = parse_docs(list, text, len, path, err)) != 0)
            goto out;
    } else if (json_is_string(def)) {
        if ((rc = parse_docs(list, json_string_value(def), json_string_length(def), "definition",
                             err)) != 0)
            goto out;
    } else if ((rc = add_doc(list, (json_t *)def, "definition", err)) != 0) {
        goto out;
    }
    if (json_array_size(list) == 0) {
        rc = aicp_err_set(err, AICP_EINVAL, "%s holds no Kubernetes object",
                          src ? path : "definition");
        goto out;
    }
    *out = list;
    list = NULL;
    rc = 0;
out:
    free(text);
    aicp_free_secret(rendered);
    json_decref(list);
    return rc;
}

/* Without wait_condition, what "ready" means for the kind, when every
 * object is of that kind. 0 when there is nothing to wait for. */
static int default_wait(struct aicp_kube_wait *w, const json_t *list)
{
    const char *kind = NULL;
    size_t i;
    json_t *m;
    json_array_foreach(list, i, m) {
        const char *k = json_string_value(json_object_get(m, "kind"));
        if (k == NULL || (kind != NULL && strcmp(kind, k) != 0))
            return 0;
        kind = k;
    }
    if (kind == NULL)
        return 0;
    if (strcmp(kind, "Job") == 0) {
        w->condition = "Complete";
        w->fail_condition = "Failed";
    } else if (strcmp(kind, "PersistentVolumeClaim") == 0) {
        w->field = "status.phase";
        w->value = "Bound";
    } else if (strcmp(kind, "Pod") == 0) {
        w->condition = "Ready";
        w->fail_field = "status.phase";
        w->fail_value = "Failed";
    } else if (strcmp(kind, "Deployment") == 0) {
        w->condition = "Available";
    } else {
        return 0;
    }
    return 1;
}

static int k8s_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                     struct aicp_err *err)
{
    const char *state = aicp_args_str(args, "state");
    const char *ns = aicp_args_str(args, "namespace");
    const json_t *wc = aicp_args_get(args, "wait_condition");
    struct aicp_kube_wait w = {.timeout_s = (double)aicp_args_int(args, "wait_timeout", 120)};
    struct aicp_ku_opts o = {
        .absent = state != NULL && strcmp(state, "absent") == 0,
        .immutable = k8s_immutable,
        .allow_replace = aicp_args_bool(args, "replace", 0),
        .force = aicp_args_bool(args, "force", 0),
        .wait = &w, /* its timeout bounds deletions too */
    };
    json_t *list = NULL;
    size_t i;
    json_t *m;
    int rc;

    *current = NULL;
    if ((rc = load_manifests(ctx, args, &list, err)) != 0)
        return rc;
    json_array_foreach(list, i, m) {
        json_t *md = json_object_get(m, "metadata");
        if (!json_is_object(md)) {
            json_decref(list);
            return aicp_err_set(err, AICP_EINVAL, "object %zu of the definition has no metadata",
                                i + 1);
        }
        if (ns != NULL && json_object_get(md, "namespace") == NULL)
            json_object_set_new(md, "namespace", json_string(ns));
    }
    if (!o.absent && aicp_args_bool(args, "wait", 0)) {
        if (json_is_object(wc)) {
            const json_t *t = json_object_get(wc, "type");
            const json_t *s = json_object_get(wc, "status");
            if (!json_is_string(t)) {
                json_decref(list);
                return aicp_err_set(err, AICP_EINVAL, "wait_condition needs a type");
            }
            w.condition = json_string_value(t);
            w.condition_status = json_is_string(s)  ? json_string_value(s)
                                 : json_is_false(s) ? "False"
                                                    : NULL;
        } else {
            default_wait(&w, list);
        }
    }
    /* Without a condition or field, "wait" would be for nothing but the
     * object's existence, which apply already ensures. */
    struct aicp_kube_wait del = {.timeout_s = w.timeout_s};
    if (w.condition == NULL && w.field == NULL)
        o.wait = o.absent ? &del : NULL;
    if ((rc = aicp_ku_check(ctx, args, list, &o, current, err)) != 0)
        return rc;
    if (!aicp_args_bool(args, "apply", 1)) {
        /* Create-only: an existing object is left as it is. */
        json_array_foreach(json_object_get(*current, "objects"), i, m) {
            json_object_set_new(m, "drift", json_array());
            json_object_set_new(m, "replace", json_false());
        }
    }
    return 0;
}

static const struct aicp_module_ops k8s_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = k8s_check,
    .diff = aicp_ku_diff,
    .apply = aicp_ku_apply,
};

const struct aicp_module aicp_mod_k8s = {
    .name = "k8s",
    .summary = "Any Kubernetes objects (inline, from a file or a template), present or absent",
    .args = k8s_args,
    .flags = AICP_MOD_NEEDS_KUBE,
    .ops = &k8s_ops,
};
