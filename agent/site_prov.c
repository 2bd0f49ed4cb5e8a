/* Who last changed what a site declares, for drift's reports (docs/site.md
 * "Provenance"): the stamp aicp leaves on what it creates or changes (the
 * ONTAP modules' comment " [aicp site=NAME run=ID]", the Kubernetes
 * annotation aicp.io/provenance), read back from a module's result or the
 * live objects, and, for a Kubernetes field changed behind aicp's back, the
 * field manager that owns it now (the object's managedFields). Read-only. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kube.h"
#include "ontap_stamp.h"
#include "site.h"
#include "util.h"

int aicp_site_provenance_of(char *buf, size_t cap, const char *text)
{
    char by[AICP_STAMP_MAX];
    if (text == NULL || cap == 0)
        return -1;
    /* The ONTAP modules' comment stamp (or the whole-comment form from
     * before it); else the Kubernetes annotation, which is its content. */
    aicp_stamp_split(text, by, sizeof(by));
    const char *p = by[0] != '\0' ? by : strncmp(text, "site=", 5) == 0 ? text : NULL;
    if (p == NULL || strstr(p, " run=") == NULL)
        return -1;
    snprintf(buf, cap, "%s", p);
    return 0;
}

char *aicp_site_changed_by(const json_t *result, const json_t *current)
{
    char buf[512];
    size_t i;
    const json_t *o;
    const char *by = json_string_value(json_object_get(result, "last_changed_by"));
    if (by == NULL)
        by = json_string_value(json_object_get(current, "last_changed_by"));
    if (by != NULL && aicp_site_provenance_of(buf, sizeof(buf), by) == 0)
        return aicp_strdup(buf);
    /* The ONTAP modules' current state: the record's comment itself. */
    static const char *const records[] = {"record", "snapshot", NULL};
    for (const char *const *rk = records; *rk; rk++) {
        const json_t *rec = json_object_get(current, *rk);
        by = json_string_value(json_object_get(rec, "comment"));
        if (by != NULL && aicp_site_provenance_of(buf, sizeof(buf), by) == 0)
            return aicp_strdup(buf);
    }
    json_array_foreach(json_object_get(current, "objects"), i, o)
    {
        const json_t *ann = aicp_kube_field(json_object_get(o, "live"), "metadata.annotations");
        const char *p = json_string_value(json_object_get(ann, "aicp.io/provenance"));
        if (p != NULL && aicp_site_provenance_of(buf, sizeof(buf), p) == 0)
            return aicp_strdup(buf);
    }
    return NULL;
}

/* Splits a drift path ("metadata.annotations[a.b/c]", "spec.containers[app].image")
 * into its next step; *next is where the one after starts. 0 at the end. */
static size_t path_step(const char *p, const char **seg, const char **next)
{
    size_t n;
    if (*p == '.')
        p++;
    if (*p == '[') {
        const char *close = strchr(p, ']');
        if (close == NULL)
            return 0;
        *seg = p + 1;
        *next = close + 1;
        return (size_t)(close - p - 1);
    }
    n = strcspn(p, ".[");
    *seg = p;
    *next = p + n;
    return n;
}

/* 1 when a managedFields fieldsV1 set holds the drift path: "f:KEY" for a
 * mapping key, "k:{...}" with that "name" for a list element. */
static int fields_v1_has(const json_t *set, const char *path)
{
    const char *seg = NULL, *next = NULL;
    size_t n = path_step(path, &seg, &next);
    if (n == 0)
        return 1;
    const char *k;
    json_t *sub;
    json_object_foreach((json_t *)set, k, sub)
    {
        if (strncmp(k, "f:", 2) == 0 && strlen(k + 2) == n && strncmp(k + 2, seg, n) == 0)
            return fields_v1_has(sub, next);
        if (strncmp(k, "k:", 2) == 0) {
            json_t *key = json_loads(k + 2, 0, NULL);
            const char *nm = json_string_value(json_object_get(key, "name"));
            int hit = nm && strlen(nm) == n && strncmp(nm, seg, n) == 0;
            json_decref(key);
            if (hit)
                return fields_v1_has(sub, next);
        }
    }
    return 0;
}

void aicp_site_field_managers(json_t *fields, const json_t *current, struct aicp_kube_pool *pool)
{
    struct aicp_kube *k = NULL;
    struct aicp_err err = {0};
    size_t i, j;
    const json_t *o;
    json_t *f;
    if (aicp_kube_pool_get(pool, NULL, NULL, &k, &err) != 0)
        return;
    json_array_foreach(json_object_get(current, "objects"), i, o)
    {
        const char *ref = json_string_value(json_object_get(o, "ref"));
        const json_t *d = json_object_get(o, "desired");
        json_t *live = NULL;
        if (ref == NULL || json_array_size(json_object_get(o, "drift")) == 0)
            continue;
        struct aicp_kube_ref kr = {
            .api_version = json_string_value(json_object_get(d, "apiVersion")),
            .kind = json_string_value(json_object_get(d, "kind")),
            .namespace = json_string_value(aicp_kube_field(d, "metadata.namespace")),
            .name = json_string_value(aicp_kube_field(d, "metadata.name")),
        };
        if (kr.api_version == NULL || kr.kind == NULL || kr.name == NULL ||
            aicp_kube_get(k, &kr, &live, &err) != 0 || live == NULL)
            continue;
        const json_t *mf = aicp_kube_field(live, "metadata.managedFields");
        json_array_foreach(fields, j, f)
        {
            const char *obj = json_string_value(json_object_get(f, "object"));
            const char *path = json_string_value(json_object_get(f, "path"));
            size_t m;
            const json_t *e;
            if (obj == NULL || strcmp(obj, ref) != 0 || path == NULL || *path == '\0')
                continue;
            json_array_foreach(mf, m, e)
            {
                const char *mgr = json_string_value(json_object_get(e, "manager"));
                if (mgr && strcmp(mgr, "aicp") != 0 &&
                    fields_v1_has(json_object_get(e, "fieldsV1"), path)) {
                    json_object_set_new(f, "manager", json_string(mgr));
                    break;
                }
            }
        }
        json_decref(live);
    }
}
