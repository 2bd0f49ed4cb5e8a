/* Private to the site loader's own files (site.c, site_graph.c,
 * site_select.c): the table of the sections that are lists of module
 * calls, the loader state that site.c fills and site_graph.c reads, the
 * small helpers they share and the functions one of them calls in another.
 * Nothing else includes this; the interface for everyone else is site.h.
 */
#ifndef AICP_SITE_INT_H
#define AICP_SITE_INT_H

#include <stddef.h>
#include <string.h>
#include <jansson.h>

#include "err.h"
#include "site.h"

/* The sections that are lists of module calls, in the order they load. */
struct section {
    const char *key;    /* as written in the site file ("trident.backends") */
    const char *module; /* "trident_backend" */
    const char *alias;  /* another word --only accepts, or NULL */
    const char *alias2;
    int namespaced; /* its objects live in a namespace */
    int ontap;      /* works on an ONTAP cluster (`ontap: NAME`, default the only one) */
};
extern const struct section aicp_site_sections[];
extern const size_t aicp_site_nsections;

/* What the loader knows about a resource besides its module call. */
struct aux {
    const json_t *entry;      /* the entry as written (positions) */
    const char *provides_ns;  /* a namespace it creates (borrowed from args) */
    const char *backend_hint; /* storage class `backend:` (borrowed from hints) */
    json_t *hints;            /* site-only keys, rendered */
    size_t sec;               /* index into sections */
};

struct loader {
    struct aicp_site *s;
    const struct aicp_site_load_opts *o;
    const struct aicp_module *(*find)(const char *);
    struct aicp_err *err;
    json_t *ontap; /* cluster name -> rendered settings */
    const json_t *ontap_raw;
    const char *trident_ns;
    json_t *trident_ns_v; /* holds trident_ns when the site sets it */
    /* Entries the site's settings add (site_cluster.c): section key -> list;
     * loaded after the file's own, kept alive as long as the loader. */
    json_t *synth;
    const json_t *kube_node; /* the kubernetes mapping: where they are from */
    struct aux *aux;
    size_t cap;
};

/* Static inline so that each file gets its own copy of these one-liners. */
static inline int in_list(const char *k, const char *const *list)
{
    for (; list && *list; list++)
        if (strcmp(*list, k) == 0)
            return 1;
    return 0;
}

static inline const char *str_of(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* ---- site.c: loading ---- */

/* Sets err to "file:line:col: message" at node (or fallback when node has
 * no position, or the site file's path when neither has) and returns code. */
int aicp_site_fail_at(struct loader *L, const json_t *node, const json_t *fallback, int code,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* ---- site_graph.c: the dependency graph ---- */

/* Adds every resource's edges to L->s->res[].deps; refuses two default
 * storage classes and depends_on naming nothing. */
int aicp_site_build_graph(struct loader *L);
/* Fills L->s->order (file order where the edges allow); a cycle is an
 * error naming its path. */
int aicp_site_order_graph(struct loader *L);

#endif
