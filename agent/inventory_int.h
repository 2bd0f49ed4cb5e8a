/* Private to the inventory's own files (inventory.c, inventory_parse.c,
 * inventory_pattern.c): the in-memory group graph that they all read and
 * fill, a few one-line helpers they share, and the functions one of them
 * calls in another. Nothing outside agent/inventory*.c includes this; the
 * interface for everyone else is inventory.h.
 */
#ifndef AICP_INVENTORY_INT_H
#define AICP_INVENTORY_INT_H

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "err.h"
#include "inventory.h"

struct aicp_secrets;

struct idxvec {
    size_t *v;
    size_t n, cap;
};

struct inv_group {
    char *name;
    json_t *vars;
    long priority;
    int depth;
    int implicit_all; /* made a child of `all` by reconcile */
    struct idxvec hosts, children, parents;
};

struct inv_host {
    char *name;
    json_t *vars;
    char *source;         /* inventory_file: the first source that named it */
    struct idxvec groups; /* every group it is in, ancestors included */
    struct idxvec direct; /* groups that list it themselves: O(1)-ish membership for big groups */
};

/* Loaded group_vars/host_vars data, filled on demand by const queries. */
struct vars_cache {
    pthread_mutex_t lock;
    json_t *data; /* base path -> merged object, or null when nothing */
};

struct aicp_inventory {
    struct aicp_srcmap *map;
    struct inv_group *groups;
    size_t ngroups, gcap;
    struct inv_host *hosts;
    size_t nhosts, hcap;
    json_t *gindex; /* name -> index */
    json_t *hindex;
    json_t *inv_dirs; /* directories searched for group_vars/host_vars */
    json_t *play_dirs;
    struct vars_cache *cache;
    const char *cur_source;
};

enum { G_ALL = 0, G_UNGROUPED = 1 };

/* Static inline so that each file gets its own copy of these one-liners. */
static inline int vec_push(struct idxvec *v, size_t x)
{
    if (v->n == v->cap) {
        size_t ncap = v->cap ? v->cap * 2 : 4;
        size_t *nv = realloc(v->v, ncap * sizeof(*nv));
        if (nv == NULL)
            return AICP_ENOMEM;
        v->v = nv;
        v->cap = ncap;
    }
    v->v[v->n++] = x;
    return 0;
}

static inline long find_index(const json_t *index, const char *name)
{
    json_t *v = json_object_get(index, name);
    return v != NULL ? (long)json_integer_value(v) : -1;
}

static inline int oom(struct aicp_err *err)
{
    return aicp_err_set(err, AICP_ENOMEM, "out of memory");
}

static inline int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static inline void strip(char **s)
{
    while (is_space(**s))
        (*s)++;
    size_t n = strlen(*s);
    while (n > 0 && is_space((*s)[n - 1]))
        (*s)[--n] = '\0';
}
/* ---- inventory.c: the group graph ---- */

int aicp_inventory_group_add(struct aicp_inventory *inv, const char *name, size_t *out,
                             struct aicp_err *err);
int aicp_inventory_group_all_hosts(const struct aicp_inventory *inv, size_t g, struct idxvec *out);
int aicp_inventory_group_add_child(struct aicp_inventory *inv, size_t parent, size_t child,
                                   struct aicp_err *err);
int aicp_inventory_host_add(struct aicp_inventory *inv, const char *name, long group, long port,
                            size_t *out, struct aicp_err *err);
int aicp_inventory_set_group_var(struct aicp_inventory *inv, size_t g, const char *key,
                                 json_t *value, struct aicp_err *err);
int aicp_inventory_set_entity_var(struct aicp_inventory *inv, const char *entity, const char *key,
                                  json_t *value, struct aicp_err *err);

/* ---- inventory_parse.c: host addresses, the INI and YAML formats ---- */

int aicp_inventory_valid_ipv6(const char *s);
int aicp_inventory_valid_ipv4(const char *s);
int aicp_inventory_parse_address(const char *addr, int allow_ranges, char **host, long *port);
/* Parses INI text (modified in place). Every variable value is registered
 * in secrets (may be NULL). With vaulted, the text came out of a vault and
 * no error message quotes any of it (path:line and what is wrong only). */
int aicp_inventory_ini_parse(struct aicp_inventory *inv, const char *path, char *text,
                             struct aicp_secrets *secrets, int vaulted, struct aicp_err *err);
const char *aicp_inventory_type_name(const json_t *v);
int aicp_inventory_yaml_parse(struct aicp_inventory *inv, const char *path, json_t *data,
                              struct aicp_err *err);

#endif
