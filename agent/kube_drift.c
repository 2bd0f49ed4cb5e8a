/* Field paths into Kubernetes objects and drift on declared fields
 * (agent/kube.h): pure functions of JSON, no I/O, so that modules, the
 * site engine and their tests share one notion of "what differs". */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kube.h"
#include "util.h"

static const char *str_of(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* One step of a field path: a key of a mapping, or in a list an index
 * ("0") or the name of the element whose "name" is key (as drift paths
 * write them: "spec.containers[app].image"). */
static const json_t *step(const json_t *v, const char *key, size_t n)
{
    size_t i, idx = 0;
    const json_t *e;
    int digits = n > 0;

    if (json_is_object(v)) {
        char buf[256];
        if (n >= sizeof buf)
            return NULL;
        memcpy(buf, key, n);
        buf[n] = '\0';
        return json_object_get(v, buf);
    }
    if (!json_is_array(v))
        return NULL;
    for (i = 0; i < n && digits; i++) {
        if (key[i] < '0' || key[i] > '9')
            digits = 0;
        else
            idx = idx * 10 + (size_t)(key[i] - '0');
    }
    if (digits && n < 10)
        return json_array_get(v, idx);
    json_array_foreach(v, i, e)
    {
        const char *nm = str_of(e, "name");
        if (nm != NULL && strlen(nm) == n && strncmp(nm, key, n) == 0)
            return e;
    }
    return NULL;
}

const json_t *aicp_kube_field(const json_t *obj, const char *path)
{
    const json_t *v = obj;
    const char *p = path;

    if (obj == NULL || path == NULL)
        return NULL;
    while (*p != '\0' && v != NULL) {
        const char *end;
        if (*p == '.') {
            p++;
            continue;
        }
        if (*p == '[') {
            if ((end = strchr(p + 1, ']')) == NULL)
                return NULL;
            v = step(v, p + 1, (size_t)(end - p - 1));
            p = end + 1;
            continue;
        }
        end = p + strcspn(p, ".[");
        v = step(v, p, (size_t)(end - p));
        p = end;
    }
    return v;
}

/* ---- drift -------------------------------------------------------------- */

/* Metadata the server writes: never declared by a site, never drift. */
static const char *const server_metadata[] = {"uid",
                                              "resourceVersion",
                                              "generation",
                                              "creationTimestamp",
                                              "managedFields",
                                              "selfLink",
                                              "deletionTimestamp",
                                              "deletionGracePeriodSeconds",
                                              NULL};

static int is_server_metadata(const char *key)
{
    size_t i;

    for (i = 0; server_metadata[i] != NULL; i++)
        if (strcmp(server_metadata[i], key) == 0)
            return 1;
    return 0;
}

/* 1 when every element is a mapping with a non-empty string "name": such
 * lists are merged by name by server-side apply (containers, env, ports,
 * volumes), so they are compared by name too. */
static int named_list(const json_t *a)
{
    const json_t *e;
    size_t i;

    if (!json_is_array(a) || json_array_size(a) == 0)
        return 0;
    json_array_foreach(a, i, e)
    {
        const char *n = str_of(e, "name");
        if (!json_is_object(e) || n == NULL || n[0] == '\0')
            return 0;
    }
    return 1;
}

static const json_t *by_name(const json_t *list, const char *name)
{
    const json_t *e;
    size_t i;

    json_array_foreach(list, i, e)
    {
        const char *n = str_of(e, "name");
        if (n != NULL && strcmp(n, name) == 0)
            return e;
    }
    return NULL;
}

/* 1 when have agrees with want on every field that want declares. Numbers
 * compare by value (1 and 1.0 agree); a string never equals a number
 * ("1" is not 1) and strings compare exactly ("10Ti" is not "10995Gi"). */
static int same_declared(const json_t *want, const json_t *have)
{
    const char *key;
    const json_t *v, *e;
    size_t i;

    if (json_is_null(want))
        return have == NULL || json_is_null(have);
    if (have == NULL)
        return 0;
    if (json_is_object(want)) {
        if (!json_is_object(have))
            return 0;
        json_object_foreach((json_t *)want, key, v)
        {
            if (!same_declared(v, json_object_get(have, key)))
                return 0;
        }
        return 1;
    }
    if (json_is_array(want)) {
        if (!json_is_array(have))
            return 0;
        if (named_list(want)) {
            json_array_foreach(want, i, e)
            {
                if (!same_declared(e, by_name(have, str_of(e, "name"))))
                    return 0;
            }
            return 1;
        }
        /* Atomic: same length and order; elements on declared fields, so
         * that a server default inside an element does not count. */
        if (json_array_size(want) != json_array_size(have))
            return 0;
        json_array_foreach(want, i, e)
        {
            if (!same_declared(e, json_array_get(have, i)))
                return 0;
        }
        return 1;
    }
    if (json_is_number(want) && json_is_number(have))
        return json_number_value(want) == json_number_value(have);
    return json_equal(want, have);
}

/* path + ".key", or "[key]" when the key holds a '.', '/' or a bracket
 * (annotation and label keys), as aicp_kube_field reads them back. */
static char *child_path(const char *path, const char *key, int bracket)
{
    struct aicp_buf b = AICP_BUF_INIT;
    int rc;

    if (!bracket)
        bracket = strpbrk(key, "./[]") != NULL;
    if (bracket)
        rc = aicp_buf_printf(&b, "%s[%s]", path, key);
    else
        rc = aicp_buf_printf(&b, "%s%s%s", path, path[0] != '\0' ? "." : "", key);
    if (rc != 0) {
        aicp_buf_free(&b);
        return NULL;
    }
    return aicp_buf_steal(&b);
}

static int add_drift(json_t *out, const char *path, const json_t *want, const json_t *have)
{
    json_t *d = json_pack("{s:s, s:O}", "path", path, "want", want);

    if (d == NULL)
        return AICP_ENOMEM;
    if (have != NULL && json_object_set(d, "have", (json_t *)have) != 0) {
        json_decref(d);
        return AICP_ENOMEM;
    }
    return json_array_append_new(out, d) == 0 ? 0 : AICP_ENOMEM;
}

static int drift_rec(const json_t *want, const json_t *have, const char *path, int depth,
                     json_t *out)
{
    const char *key;
    const json_t *v, *e;
    size_t i;
    int rc = 0;

    if (json_is_object(want) && json_is_object(have)) {
        json_object_foreach((json_t *)want, key, v)
        {
            const json_t *h = json_object_get(have, key);
            char *cp;
            /* The object's identity and its status are not declared state. */
            if (depth == 0 && (strcmp(key, "status") == 0 || strcmp(key, "apiVersion") == 0 ||
                               strcmp(key, "kind") == 0))
                continue;
            if (depth == 1 && strcmp(path, "metadata") == 0 && is_server_metadata(key))
                continue;
            if ((cp = child_path(path, key, 0)) == NULL)
                return AICP_ENOMEM;
            if (h == NULL)
                rc = json_is_null(v) ? 0 : add_drift(out, cp, v, NULL);
            else
                rc = drift_rec(v, h, cp, depth + 1, out);
            free(cp);
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    if (named_list(want) && json_is_array(have)) {
        json_array_foreach(want, i, e)
        {
            const char *n = str_of(e, "name");
            const json_t *h = by_name(have, n);
            char *cp = child_path(path, n, 1);
            if (cp == NULL)
                return AICP_ENOMEM;
            rc = h == NULL ? add_drift(out, cp, e, NULL) : drift_rec(e, h, cp, depth + 1, out);
            free(cp);
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    if (!same_declared(want, have))
        return add_drift(out, path, want, have);
    return 0;
}

int aicp_kube_drift(const json_t *desired, const json_t *live, json_t **fields)
{
    json_t *out = json_array();
    int rc;

    *fields = NULL;
    if (out == NULL)
        return AICP_ENOMEM;
    if (live == NULL || json_is_null(live))
        rc = add_drift(out, "", desired, NULL);
    else
        rc = drift_rec(desired, live, "", 0, out);
    if (rc != 0) {
        json_decref(out);
        return rc;
    }
    *fields = out;
    return 0;
}

/* ---- server-side apply conflicts ----------------------------------------- */

/* The manager a conflict cause names: its message reads
 * `conflict with "NAME"` (an Apply), `conflict with "NAME" using
 * GROUP/VERSION [at TIME]` (an Update), with ` with subresource "status"`
 * after the name when a subresource wrote it. */
static json_t *conflict_of(const json_t *cause)
{
    const char *msg = str_of(cause, "message"), *field = str_of(cause, "field");
    const char *p, *q;
    json_t *c;

    if (msg == NULL || (p = strstr(msg, "conflict with \"")) == NULL)
        return NULL;
    p += strlen("conflict with \"");
    if ((q = strchr(p, '"')) == NULL)
        return NULL;
    c = json_pack("{s:s%, s:s, s:s}", "manager", p, (size_t)(q - p), "operation",
                  strstr(q, " using ") != NULL ? "Update" : "Apply", "field",
                  field != NULL ? field : "");
    return c;
}

json_t *aicp_kube_conflicts_of(const json_t *status)
{
    const json_t *causes = json_object_get(json_object_get(status, "details"), "causes");
    const json_t *cause;
    json_t *out;
    size_t i;

    if (json_integer_value(json_object_get(status, "code")) != 409 || json_array_size(causes) == 0)
        return NULL;
    if ((out = json_array()) == NULL)
        return NULL;
    json_array_foreach(causes, i, cause)
    {
        /* StatusCause's type is serialized as "reason". */
        const char *t = str_of(cause, "reason");
        json_t *c;
        if (t == NULL)
            t = str_of(cause, "type");
        if (t == NULL || strcmp(t, "FieldManagerConflict") != 0 || (c = conflict_of(cause)) == NULL)
            continue;
        json_array_append_new(out, c);
    }
    if (json_array_size(out) == 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}

int aicp_kube_conflicts_own(const json_t *conflicts)
{
    const json_t *c;
    size_t i;

    if (json_array_size(conflicts) == 0)
        return 0;
    json_array_foreach(conflicts, i, c)
    {
        const char *m = str_of(c, "manager");
        if (m == NULL || strncmp(m, "aicp", 4) != 0)
            return 0;
    }
    return 1;
}

/* A path in one spelling for both kinds: drift's ("metadata.annotations[a.b/c]",
 * "spec.containers[app].image") and the API's conflict fields
 * (".metadata.annotations.a.b/c", ".spec.containers[name=\"app\"].image")
 * become "metadata.annotations.a.b/c" and "spec.containers.app.image". */
static char *canonical_path(const char *p)
{
    struct aicp_buf b = AICP_BUF_INIT;

    if (*p == '.')
        p++;
    while (*p != '\0') {
        const char *end;
        if (*p != '[') {
            if (aicp_buf_append(&b, p, 1) != 0)
                goto oom;
            p++;
            continue;
        }
        if ((end = strchr(p, ']')) == NULL)
            end = p + strlen(p);
        {
            /* [k="v"] (the API's key of a list element): the value only. */
            const char *s = p + 1, *eq = memchr(s, '=', (size_t)(end - s));
            size_t n;
            if (eq != NULL)
                s = eq + 1;
            n = (size_t)(end - s);
            if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
                s++;
                n -= 2;
            }
            if ((b.len > 0 && aicp_buf_append(&b, ".", 1) != 0) || aicp_buf_append(&b, s, n) != 0)
                goto oom;
        }
        p = *end == ']' ? end + 1 : end;
    }
    if (b.data == NULL && aicp_buf_puts(&b, "") != 0)
        goto oom;
    return aicp_buf_steal(&b);
oom:
    aicp_buf_free(&b);
    return NULL;
}

int aicp_kube_path_overlaps(const char *drift_path, const char *api_field)
{
    char *a = canonical_path(drift_path), *b = canonical_path(api_field);
    size_t na, nb, n;
    int r = 0;

    if (a != NULL && b != NULL) {
        na = strlen(a);
        nb = strlen(b);
        n = na < nb ? na : nb;
        /* Equal, or one lies under the other. */
        r = strncmp(a, b, n) == 0 && (na == nb || (na > nb ? a[n] : b[n]) == '.' || n == 0);
    }
    free(a);
    free(b);
    return r;
}
