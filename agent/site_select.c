/* Looking up and picking a loaded site's resources: a kind/name or id as
 * depends_on and the command line write it, and the selection that
 * `--only` (kinds of resource, by section, module or alias) and `--limit`
 * (name, namespace/name or id patterns) make of a site, each word or
 * pattern that picks nothing being a usage error rather than a quiet
 * empty run. */
#include "config.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "module.h"
#include "site.h"
#include "site_int.h"
#include "util.h"

long aicp_site_find(const struct aicp_site *s, const char *id)
{
    long hit = -1;
    int hits = 0;
    for (size_t i = 0; i < s->nres; i++) {
        const struct aicp_site_res *r = &s->res[i];
        if (strcmp(r->id, id) == 0)
            return (long)i;
        const char *slash = strchr(id, '/');
        if (slash == NULL)
            continue;
        size_t kl = (size_t)(slash - id);
        int kind_ok = (strlen(r->mod->name) == kl && strncmp(r->mod->name, id, kl) == 0) ||
                      (strlen(r->section) == kl && strncmp(r->section, id, kl) == 0);
        if (!kind_ok)
            continue;
        const char *rest = slash + 1;
        int name_ok = strcmp(r->name, rest) == 0;
        if (!name_ok && r->ns != NULL) {
            size_t nl = strlen(r->ns);
            name_ok = strncmp(rest, r->ns, nl) == 0 && rest[nl] == '/' &&
                      strcmp(rest + nl + 1, r->name) == 0;
        }
        if (name_ok) {
            hit = (long)i;
            hits++;
        }
    }
    return hits == 1 ? hit : -1;
}

static int only_matches(const struct aicp_site_res *r, const char *w)
{
    for (size_t i = 0; i < aicp_site_nsections; i++) {
        const struct section *S = &aicp_site_sections[i];
        if (strcmp(S->key, r->section) != 0)
            continue;
        size_t ml = strlen(S->module);
        /* "kubernetes": every section that is not ONTAP's. */
        if (!S->ontap && strcmp(w, "kubernetes") == 0)
            return 1;
        return strcmp(w, S->key) == 0 || strcmp(w, S->module) == 0 ||
               (strncmp(w, S->module, ml) == 0 && strcmp(w + ml, "s") == 0) ||
               (S->alias && strcmp(w, S->alias) == 0) || (S->alias2 && strcmp(w, S->alias2) == 0);
    }
    return 0;
}

/* 1 when --only is empty or names a or b (b may be NULL). */
static int only_names(const json_t *only, const char *a, const char *b)
{
    size_t i;
    const json_t *w;
    if (json_array_size(only) == 0)
        return 1;
    json_array_foreach(only, i, w)
    {
        const char *t = json_string_value(w);
        if (t && (strcmp(t, a) == 0 || (b && strcmp(t, b) == 0)))
            return 1;
    }
    return 0;
}

int aicp_site_only_cross(const json_t *only)
{
    return only_names(only, "cross_layer", "cross-layer");
}

int aicp_site_only_cluster(const json_t *only)
{
    return only_names(only, "cluster", NULL);
}

static int only_word_known(const char *w)
{
    if (strcmp(w, "cross_layer") == 0 || strcmp(w, "cross-layer") == 0 ||
        strcmp(w, "cluster") == 0)
        return 1;
    for (size_t i = 0; i < aicp_site_nsections; i++) {
        struct aicp_site_res fake = {.section = aicp_site_sections[i].key};
        if (only_matches(&fake, w))
            return 1;
    }
    return 0;
}

int aicp_site_select(unsigned char *selected, const struct aicp_site *s, const json_t *only,
                     const json_t *limit, struct aicp_err *err)
{
    size_t i, j;
    const json_t *w;
    json_array_foreach(only, j, w)
    {
        if (!json_is_string(w) || !only_word_known(json_string_value(w)))
            return aicp_err_set(err, AICP_EUSAGE,
                                "--only '%s' names no kind of resource (namespaces, secrets, "
                                "export_policies, volumes, snapshots, clones, snapmirror, "
                                "trident, storage_classes, pvcs, manifests, jobs, "
                                "helm_releases, readiness, nodes; cluster, ontap, kubernetes, "
                                "cross_layer; or a module "
                                "name: namespace, secret, ontap_volume..., trident_backend, "
                                "storage_class, pvc, k8s, k8s_job, helm_release)",
                                json_is_string(w) ? json_string_value(w) : "?");
    }
    for (i = 0; i < s->nres; i++) {
        const struct aicp_site_res *r = &s->res[i];
        int ok = json_array_size(only) == 0;
        json_array_foreach(only, j, w)
        {
            if (only_matches(r, json_string_value(w)))
                ok = 1;
        }
        if (ok && json_array_size(limit) > 0) {
            char nsname[512];
            snprintf(nsname, sizeof(nsname), "%s/%s", r->ns ? r->ns : "", r->name);
            ok = 0;
            json_array_foreach(limit, j, w)
            {
                const char *g = json_string_value(w);
                if (g && (fnmatch(g, r->name, 0) == 0 || fnmatch(g, r->id, 0) == 0 ||
                          (r->ns && fnmatch(g, nsname, 0) == 0)))
                    ok = 1;
            }
        }
        selected[i] = (unsigned char)ok;
    }
    /* A pattern that matches nothing is a typo, not a clean run. */
    json_array_foreach(limit, j, w)
    {
        const char *g = json_string_value(w);
        int hit = 0;
        for (i = 0; g && !hit && i < s->nres; i++) {
            const struct aicp_site_res *r = &s->res[i];
            char nsname[512];
            snprintf(nsname, sizeof(nsname), "%s/%s", r->ns ? r->ns : "", r->name);
            hit = fnmatch(g, r->name, 0) == 0 || fnmatch(g, r->id, 0) == 0 ||
                  (r->ns && fnmatch(g, nsname, 0) == 0);
        }
        if (!hit)
            return aicp_err_set(err, AICP_EUSAGE,
                                "--limit '%s' matches no resource of site %s (a name, "
                                "namespace/name or id such as pvc/default/*)",
                                g ? g : "?", s->name ? s->name : "?");
    }
    return 0;
}

json_t *aicp_site_split_list(json_t *acc, const char *s)
{
    if (acc == NULL)
        acc = json_array();
    char *copy = aicp_strdup(s), *save = NULL;
    for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t && acc;
         t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        size_t n = strlen(t);
        while (n > 0 && t[n - 1] == ' ')
            t[--n] = '\0';
        if (*t)
            json_array_append_new(acc, json_string(t));
    }
    free(copy);
    return acc;
}
