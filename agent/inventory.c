/* The Ansible-compatible inventory: parsing, the group graph, variables and
 * host patterns.
 *
 * Everything here mirrors ansible-core 2.14's behaviour rather than its
 * documentation, because users compare our output with ansible-inventory:
 * the INI plugin (shlex-split host lines, Python-literal values, ranges,
 * pending [g:children] declarations), the YAML plugin, InventoryData's
 * reconcile step (implicit `all` children, `ungrouped`), Group depth and
 * priority, the host_group_vars plugin's file lookup, VariableManager's
 * precedence and InventoryManager's pattern language. Output formatting
 * (--list, --graph, --host) lives in inventory_cli.c.
 */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <pthread.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "inventory.h"
#include "util.h"
#include "yaml.h"

/* Range expansion bound: `h[0:99999999]` must not eat the machine. */
#define INV_MAX_EXPANDED 100000
/* Python's literal_eval nesting we accept before calling it a string. */
#define PYLIT_MAX_DEPTH 64

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
    char *source; /* inventory_file: the first source that named it */
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
    json_t *inv_dirs;  /* directories searched for group_vars/host_vars */
    json_t *play_dirs;
    struct vars_cache *cache;
    const char *cur_source;
};

enum { G_ALL = 0, G_UNGROUPED = 1 };

static int vec_push(struct idxvec *v, size_t x)
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

static int vec_has(const struct idxvec *v, size_t x)
{
    for (size_t i = 0; i < v->n; i++)
        if (v->v[i] == x)
            return 1;
    return 0;
}

static void vec_remove(struct idxvec *v, size_t x)
{
    for (size_t i = 0; i < v->n; i++) {
        if (v->v[i] == x) {
            memmove(&v->v[i], &v->v[i + 1], (v->n - i - 1) * sizeof(size_t));
            v->n--;
            return;
        }
    }
}

static long find_index(const json_t *index, const char *name)
{
    json_t *v = json_object_get(index, name);
    return v != NULL ? (long)json_integer_value(v) : -1;
}

static int oom(struct aicp_err *err)
{
    return aicp_err_set(err, AICP_ENOMEM, "out of memory");
}

/* ---- the group graph (inventory/data.py, group.py, host.py) ---- */

static int group_add(struct aicp_inventory *inv, const char *name, size_t *out, struct aicp_err *err)
{
    long idx = find_index(inv->gindex, name);
    if (idx >= 0) {
        *out = (size_t)idx;
        return 0;
    }
    if (name[0] == '\0')
        return aicp_err_set(err, AICP_EINVAL, "invalid empty group name");
    if (inv->ngroups == inv->gcap) {
        size_t ncap = inv->gcap ? inv->gcap * 2 : 16;
        struct inv_group *ng = realloc(inv->groups, ncap * sizeof(*ng));
        if (ng == NULL)
            return oom(err);
        inv->groups = ng;
        inv->gcap = ncap;
    }
    struct inv_group *g = &inv->groups[inv->ngroups];
    memset(g, 0, sizeof(*g));
    g->priority = 1;
    g->name = aicp_strdup(name);
    g->vars = json_object();
    if (g->name == NULL || g->vars == NULL ||
        json_object_set_new(inv->gindex, name, json_integer((json_int_t)inv->ngroups)) != 0) {
        free(g->name);
        json_decref(g->vars);
        return oom(err);
    }
    *out = inv->ngroups++;
    return 0;
}

/* Ancestors of g (not g itself) as a membership bitmap. */
static int group_ancestors(const struct aicp_inventory *inv, size_t g, unsigned char *mark)
{
    size_t *stack = malloc((inv->ngroups + 1) * sizeof(*stack));
    if (stack == NULL)
        return AICP_ENOMEM;
    memset(mark, 0, inv->ngroups);
    size_t sp = 0;
    stack[sp++] = g;
    while (sp > 0) {
        size_t cur = stack[--sp];
        const struct idxvec *p = &inv->groups[cur].parents;
        for (size_t i = 0; i < p->n; i++) {
            if (!mark[p->v[i]]) {
                mark[p->v[i]] = 1;
                stack[sp++] = p->v[i];
            }
        }
    }
    free(stack);
    return 0;
}

/* Group.get_descendants(include_self, preserve_ordering): level by level,
 * in child order (Ansible walks sets below the first level; we keep the
 * deterministic order that matches it whenever Ansible's is stable). */
static int group_walk(const struct aicp_inventory *inv, size_t g, struct idxvec *out)
{
    unsigned char *seen = calloc(inv->ngroups, 1);
    if (seen == NULL)
        return AICP_ENOMEM;
    int rc = vec_push(out, g);
    seen[g] = 1;
    for (size_t pos = 0; rc == 0 && pos < out->n; pos++) {
        const struct idxvec *c = &inv->groups[out->v[pos]].children;
        for (size_t i = 0; rc == 0 && i < c->n; i++) {
            if (!seen[c->v[i]]) {
                seen[c->v[i]] = 1;
                rc = vec_push(out, c->v[i]);
            }
        }
    }
    free(seen);
    return rc;
}

/* Group.get_hosts(): hosts of the group and its descendants, deduplicated. */
static int group_all_hosts(const struct aicp_inventory *inv, size_t g, struct idxvec *out)
{
    struct idxvec walk = {0};
    unsigned char *seen = calloc(inv->nhosts + 1, 1);
    int rc = seen == NULL ? AICP_ENOMEM : group_walk(inv, g, &walk);
    for (size_t i = 0; rc == 0 && i < walk.n; i++) {
        const struct idxvec *h = &inv->groups[walk.v[i]].hosts;
        for (size_t j = 0; rc == 0 && j < h->n; j++) {
            if (!seen[h->v[j]]) {
                seen[h->v[j]] = 1;
                rc = vec_push(out, h->v[j]);
            }
        }
    }
    free(walk.v);
    free(seen);
    return rc;
}

/* Host.add_group: the group's ancestors first, then the group. */
static int host_add_group(struct aicp_inventory *inv, size_t h, size_t g)
{
    unsigned char *mark = malloc(inv->ngroups + 1);
    if (mark == NULL || group_ancestors(inv, g, mark) != 0) {
        free(mark);
        return AICP_ENOMEM;
    }
    int rc = 0;
    struct inv_host *host = &inv->hosts[h];
    for (size_t i = 0; rc == 0 && i < inv->ngroups; i++)
        if (mark[i] && !vec_has(&host->groups, i))
            rc = vec_push(&host->groups, i);
    if (rc == 0 && !vec_has(&host->groups, g))
        rc = vec_push(&host->groups, g);
    free(mark);
    return rc;
}

static int group_add_host(struct aicp_inventory *inv, size_t g, size_t h)
{
    if (vec_has(&inv->hosts[h].direct, g))
        return 0;
    int rc = vec_push(&inv->groups[g].hosts, h);
    rc = rc ? rc : vec_push(&inv->hosts[h].direct, g);
    return rc != 0 ? rc : host_add_group(inv, h, g);
}

/* Group.add_child_group with its loop check and depth propagation. */
static int group_add_child(struct aicp_inventory *inv, size_t parent, size_t child, struct aicp_err *err)
{
    struct inv_group *gs = inv->groups;
    if (parent == child)
        return aicp_err_set(err, AICP_EINVAL, "can't add group '%s' to itself", gs[parent].name);
    if (vec_has(&gs[parent].children, child))
        return 0;
    unsigned char *mark = malloc(inv->ngroups + 1);
    if (mark == NULL || group_ancestors(inv, parent, mark) != 0) {
        free(mark);
        return oom(err);
    }
    if (mark[child]) {
        free(mark);
        return aicp_err_set(err, AICP_EINVAL,
                            "Adding group '%s' as child to '%s' creates a recursive dependency loop.",
                            gs[child].name, gs[parent].name);
    }
    free(mark);
    if (vec_push(&gs[parent].children, child) != 0)
        return oom(err);
    /* depth = longest path from the top; push it down the DAG */
    if (gs[child].depth < gs[parent].depth + 1) {
        gs[child].depth = gs[parent].depth + 1;
        struct idxvec work = {0};
        int rc = vec_push(&work, child);
        for (size_t pos = 0; rc == 0 && pos < work.n; pos++) {
            size_t cur = work.v[pos];
            for (size_t i = 0; rc == 0 && i < gs[cur].children.n; i++) {
                size_t k = gs[cur].children.v[i];
                if (gs[k].depth < gs[cur].depth + 1) {
                    gs[k].depth = gs[cur].depth + 1;
                    rc = vec_push(&work, k);
                }
            }
        }
        free(work.v);
        if (rc != 0)
            return oom(err);
    }
    if (!vec_has(&gs[child].parents, parent)) {
        if (vec_push(&gs[child].parents, parent) != 0)
            return oom(err);
        struct idxvec hosts = {0};
        int rc = group_all_hosts(inv, child, &hosts);
        for (size_t i = 0; rc == 0 && i < hosts.n; i++)
            rc = host_add_group(inv, hosts.v[i], parent);
        free(hosts.v);
        if (rc != 0)
            return oom(err);
    }
    return 0;
}

static int host_add(struct aicp_inventory *inv, const char *name, long group, long port, size_t *out,
                    struct aicp_err *err)
{
    long idx = find_index(inv->hindex, name);
    if (name[0] == '\0')
        return aicp_err_set(err, AICP_EINVAL, "Invalid empty host name provided");
    if (idx < 0) {
        if (inv->nhosts == inv->hcap) {
            size_t ncap = inv->hcap ? inv->hcap * 2 : 64;
            struct inv_host *nh = realloc(inv->hosts, ncap * sizeof(*nh));
            if (nh == NULL)
                return oom(err);
            inv->hosts = nh;
            inv->hcap = ncap;
        }
        struct inv_host *h = &inv->hosts[inv->nhosts];
        memset(h, 0, sizeof(*h));
        h->name = aicp_strdup(name);
        h->vars = json_object();
        h->source = inv->cur_source != NULL ? aicp_strdup(inv->cur_source) : NULL;
        if (h->name == NULL || h->vars == NULL ||
            json_object_set_new(inv->hindex, name, json_integer((json_int_t)inv->nhosts)) != 0) {
            free(h->name);
            free(h->source);
            json_decref(h->vars);
            return oom(err);
        }
        if (port >= 0 && json_object_set_new(h->vars, "ansible_port", json_integer(port)) != 0)
            return oom(err);
        idx = (long)inv->nhosts++;
    }
    if (group >= 0 && group_add_host(inv, (size_t)group, (size_t)idx) != 0)
        return oom(err);
    *out = (size_t)idx;
    return 0;
}

/* InventoryData.reconcile_inventory. Links it makes to `all` are undone
 * before the next source loads, so that several sources end up as Ansible's
 * single reconcile after all of them. */
static int reconcile(struct aicp_inventory *inv, struct aicp_err *err)
{
    for (size_t g = 1; g < inv->ngroups; g++) {
        if (inv->groups[g].parents.n == 0) {
            int rc = group_add_child(inv, G_ALL, g, err);
            if (rc != 0)
                return rc;
            inv->groups[g].implicit_all = 1;
        }
    }
    for (size_t h = 0; h < inv->nhosts; h++) {
        struct inv_host *host = &inv->hosts[h];
        if (vec_has(&host->groups, G_UNGROUPED)) {
            for (size_t i = 0; i < host->groups.n; i++) {
                if (host->groups.v[i] != G_ALL && host->groups.v[i] != G_UNGROUPED) {
                    vec_remove(&inv->groups[G_UNGROUPED].hosts, h);
                    vec_remove(&host->groups, G_UNGROUPED);
                    vec_remove(&host->direct, G_UNGROUPED);
                    break;
                }
            }
        } else if (host->groups.n == 0 || (host->groups.n == 1 && host->groups.v[0] == G_ALL)) {
            if (group_add_host(inv, G_UNGROUPED, h) != 0)
                return oom(err);
        }
    }
    return 0;
}

static void unreconcile(struct aicp_inventory *inv)
{
    for (size_t g = 1; g < inv->ngroups; g++) {
        if (inv->groups[g].implicit_all) {
            inv->groups[g].implicit_all = 0;
            vec_remove(&inv->groups[G_ALL].children, g);
            vec_remove(&inv->groups[g].parents, G_ALL);
        }
    }
}

/* Group/Host.set_variable; ansible_group_priority sets the priority. */
static int set_group_var(struct aicp_inventory *inv, size_t g, const char *key, json_t *value, struct aicp_err *err)
{
    if (strcmp(key, "ansible_group_priority") == 0) {
        long long p;
        char *end = NULL;
        if (json_is_integer(value)) {
            p = json_integer_value(value);
        } else if (json_is_boolean(value)) {
            p = json_is_true(value);
        } else if (json_is_real(value)) {
            p = (long long)json_real_value(value);
        } else if (json_is_string(value)) {
            errno = 0;
            p = strtoll(json_string_value(value), &end, 10);
            while (end != NULL && (*end == ' ' || *end == '\t'))
                end++;
            if (errno != 0 || end == json_string_value(value) || *end != '\0')
                return aicp_err_set(err, AICP_EINVAL, "invalid ansible_group_priority for group %s",
                                    inv->groups[g].name);
        } else {
            return aicp_err_set(err, AICP_EINVAL, "invalid ansible_group_priority for group %s", inv->groups[g].name);
        }
        inv->groups[g].priority = (long)p;
        return 0;
    }
    if (json_object_set(inv->groups[g].vars, key, value) != 0)
        return oom(err);
    return 0;
}

/* InventoryData.set_variable looks groups up first, as Ansible does. */
static int set_entity_var(struct aicp_inventory *inv, const char *entity, const char *key, json_t *value,
                          struct aicp_err *err)
{
    long g = find_index(inv->gindex, entity);
    if (g >= 0)
        return set_group_var(inv, (size_t)g, key, value, err);
    long h = find_index(inv->hindex, entity);
    if (h < 0)
        return aicp_err_set(err, AICP_EINVAL, "Could not identify group or host named %s", entity);
    if (json_object_set(inv->hosts[h].vars, key, value) != 0)
        return oom(err);
    return 0;
}

/* ---- host addresses and ranges (parsing/utils/addresses.py) ---- */

static int is_word(unsigned char c)
{
    return c == '_' || (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c >= 0x80;
}

/* One `[a:b(:c)]` range of the hostname grammar at s; returns its length. */
static size_t match_alnum_range(const char *s)
{
    size_t i = 1;
    if (s[0] != '[')
        return 0;
    if (((s[1] | 0x20) >= 'a' && (s[1] | 0x20) <= 'z') && s[2] == ':' && ((s[3] | 0x20) >= 'a' && (s[3] | 0x20) <= 'z')) {
        i = 4;
    } else {
        size_t a = strspn(s + 1, "0123456789");
        if (a == 0 || s[1 + a] != ':')
            return 0;
        size_t b = strspn(s + 2 + a, "0123456789");
        if (b == 0)
            return 0;
        i = 2 + a + b;
    }
    if (s[i] == ':') {
        size_t c = strspn(s + i + 1, "0123456789");
        if (c == 0)
            return 0;
        i += 1 + c;
    }
    return s[i] == ']' ? i + 1 : 0;
}

static int valid_hostname(const char *s)
{
    for (;;) {
        size_t r;
        char last;
        if (is_word((unsigned char)*s)) {
            last = *s++;
        } else if ((r = match_alnum_range(s)) > 0) {
            s += r;
            last = ']';
        } else {
            return 0;
        }
        for (;;) {
            if (is_word((unsigned char)*s) || *s == '-') {
                last = *s++;
            } else if ((r = match_alnum_range(s)) > 0) {
                s += r;
                last = ']';
            } else {
                break;
            }
        }
        if (last == '_' || last == '-')
            return 0;
        if (*s == '\0')
            return 1;
        if (*s != '.')
            return 0;
        s++;
    }
}

static int valid_ipv6(const char *s)
{
    unsigned char buf[16];
    return strchr(s, ':') != NULL && inet_pton(AF_INET6, s, buf) == 1;
}

static int valid_ipv4(const char *s)
{
    for (int part = 0; part < 4; part++) {
        size_t n = strspn(s, "0123456789");
        if (n < 1 || n > 3)
            return 0;
        if (n == 3 && !(s[0] == '0' || s[0] == '1' || (s[0] == '2' && (s[1] < '5' || (s[1] == '5' && s[2] <= '5')))))
            return 0;
        s += n;
        if (part < 3 && *s++ != '.')
            return 0;
    }
    return *s == '\0';
}

/* parse_address(allow_ranges): host and port (-1 when none); 0 when the
 * text is not a host address at all. *host is malloc'ed. */
static int parse_address(const char *addr, int allow_ranges, char **host, long *port)
{
    char *a = aicp_strdup(addr);
    if (a == NULL)
        return -1;
    *port = -1;
    size_t n = strlen(a);
    /* bracketed_hostport: [x]:NN */
    if (n > 3 && a[0] == '[') {
        char *close = strrchr(a, ']');
        if (close != NULL && close > a + 1 && close[1] == ':' && close[2] != '\0' &&
            strspn(close + 2, "0123456789") == strlen(close + 2)) {
            *port = strtol(close + 2, NULL, 10);
            *close = '\0';
            memmove(a, a + 1, strlen(a + 1) + 1);
            n = strlen(a);
        }
    }
    /* hostport: ([^:\[\]]|\[[^\]]*\])*:NN */
    {
        size_t i = 0;
        while (i < n) {
            if (a[i] == '[') {
                char *c = strchr(a + i + 1, ']');
                if (c == NULL)
                    break;
                i = (size_t)(c - a) + 1;
            } else if (a[i] == ':' || a[i] == ']') {
                break;
            } else {
                i++;
            }
        }
        if (i < n && a[i] == ':' && a[i + 1] != '\0' && strspn(a + i + 1, "0123456789") == n - i - 1) {
            *port = strtol(a + i + 1, NULL, 10);
            a[i] = '\0';
        }
    }
    if (!(valid_ipv4(a) || valid_ipv6(a) || valid_hostname(a)) || (!allow_ranges && strchr(a, '[') != NULL)) {
        free(a);
        return 0;
    }
    *host = a;
    return 1;
}

static int add_expanded(json_t *out, const char *head, size_t headlen, const char *fill, const char *tail,
                        struct aicp_err *err);

/* expand_hostname_range: the first [x:y(:z)] of pattern, then recursively
 * the rest. Python splits on the first '[' and first ']' (and any '|'). */
static int expand_range(json_t *out, const char *pattern, struct aicp_err *err)
{
    const char *lb = strchr(pattern, '[');
    const char *rb = strchr(pattern, ']');
    if (lb == NULL) {
        if (json_array_size(out) >= INV_MAX_EXPANDED)
            return aicp_err_set(err, AICP_EINVAL, "host range expands to more than %d hosts", INV_MAX_EXPANDED);
        return json_array_append_new(out, json_string(pattern)) == 0 ? 0 : oom(err);
    }
    if (rb == NULL || rb < lb || strchr(pattern, '|') != NULL)
        return aicp_err_set(err, AICP_EINVAL, "invalid host range in '%s'", pattern);
    char inner[128];
    size_t ilen = (size_t)(rb - lb - 1);
    if (ilen >= sizeof(inner))
        return aicp_err_set(err, AICP_EINVAL, "invalid host range in '%s'", pattern);
    memcpy(inner, lb + 1, ilen);
    inner[ilen] = '\0';
    char *b[3] = {inner, NULL, NULL};
    int nb = 1;
    for (char *p = inner; *p; p++) {
        if (*p == ':') {
            if (nb == 3)
                return aicp_err_set(err, AICP_EINVAL, "host range must be begin:end or begin:end:step");
            *p = '\0';
            b[nb++] = p + 1;
        }
    }
    if (nb < 2)
        return aicp_err_set(err, AICP_EINVAL, "host range must be begin:end or begin:end:step");
    const char *beg = b[0][0] ? b[0] : "0";
    const char *end = b[1];
    if (end[0] == '\0')
        return aicp_err_set(err, AICP_EINVAL, "host range must specify end value");
    char *e = NULL;
    long step = 1;
    if (nb == 3) {
        errno = 0;
        step = strtol(b[2], &e, 10);
        if (errno != 0 || *e != '\0' || e == b[2] || step == 0)
            return aicp_err_set(err, AICP_EINVAL, "invalid host range step in '%s'", pattern);
    }
    int width = 0;
    if (beg[0] == '0' && beg[1] != '\0') {
        width = (int)strlen(beg);
        if (strlen(end) != (size_t)width)
            return aicp_err_set(err, AICP_EINVAL, "host range must specify equal-length begin and end formats");
    }
    size_t headlen = (size_t)(lb - pattern);
    char fill[64];
    static const char letters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    const char *pb = strstr(letters, beg), *pe = strstr(letters, end);
    int rc = 0;
    if (pb != NULL && pe != NULL) {
        if (pb > pe)
            return aicp_err_set(err, AICP_EINVAL, "host range must have begin <= end");
        if (step < 0)
            return 0;
        for (long i = pb - letters; rc == 0 && i <= pe - letters; i += step) {
            int z = width > 1 ? width - 1 : 0; /* str.zfill of one letter */
            if (z > 60)
                z = 60;
            memset(fill, '0', (size_t)z);
            fill[z] = letters[i];
            fill[z + 1] = '\0';
            rc = add_expanded(out, pattern, headlen, fill, rb + 1, err);
        }
        return rc;
    }
    errno = 0;
    long lo = strtol(beg, &e, 10);
    if (errno != 0 || *e != '\0' || e == beg)
        return aicp_err_set(err, AICP_EINVAL, "invalid host range begin '%s'", beg);
    long hi = strtol(end, &e, 10);
    if (errno != 0 || *e != '\0' || e == end)
        return aicp_err_set(err, AICP_EINVAL, "invalid host range end '%s'", end);
    if (lo < -1000000000L || lo > 1000000000L || hi < -1000000000L || hi > 1000000000L)
        return aicp_err_set(err, AICP_EINVAL, "host range expands to more than %d hosts", INV_MAX_EXPANDED);
    if ((step > 0 && hi >= lo && (hi - lo) / step >= INV_MAX_EXPANDED) ||
        (step < 0 && hi < lo && (lo - hi) / -step >= INV_MAX_EXPANDED))
        return aicp_err_set(err, AICP_EINVAL, "host range expands to more than %d hosts", INV_MAX_EXPANDED);
    for (long v = lo; rc == 0 && (step > 0 ? v < hi + 1 : v > hi + 1); v += step) {
        snprintf(fill, sizeof(fill), "%0*ld", width > 60 ? 60 : width, v);
        rc = add_expanded(out, pattern, headlen, fill, rb + 1, err);
    }
    return rc;
}

static int add_expanded(json_t *out, const char *head, size_t headlen, const char *fill, const char *tail,
                        struct aicp_err *err)
{
    struct aicp_buf item = AICP_BUF_INIT;
    int rc = aicp_buf_append(&item, head, headlen);
    rc = rc ? rc : aicp_buf_puts(&item, fill);
    rc = rc ? rc : aicp_buf_puts(&item, tail);
    rc = rc ? oom(err) : expand_range(out, item.data, err);
    aicp_buf_free(&item);
    return rc;
}

/* BaseInventoryPlugin._expand_hostpattern: names (a new array) and port. */
static int expand_hostpattern(json_t **names, long *port, const char *pattern, struct aicp_err *err)
{
    char *host = NULL;
    const char *use = pattern;
    *port = -1;
    if (parse_address(pattern, 1, &host, port) == 1)
        use = host;
    else
        *port = -1;
    *names = json_array();
    int rc = *names == NULL ? oom(err) : 0;
    if (rc == 0 && strchr(use, '[') != NULL)
        rc = expand_range(*names, use, err);
    else if (rc == 0 && json_array_append_new(*names, json_string(use)) != 0)
        rc = oom(err);
    free(host);
    if (rc != 0) {
        json_decref(*names);
        *names = NULL;
    }
    return rc;
}
/* ---- the INI format (plugins/inventory/ini.py) ---- */

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* shlex.split(line, comments=True) in POSIX mode. Returns an array of
 * tokens, or NULL with *why set. */
static json_t *shlex_split(const char *line, const char **why)
{
    json_t *toks = json_array();
    struct aicp_buf tok = AICP_BUF_INIT;
    int in_tok = 0;
    const char *p = line;
    *why = NULL;
    if (toks == NULL)
        return NULL;
    for (;;) {
        char c = *p;
        if (c == '\0' || is_space(c) || c == '#') {
            if (in_tok) {
                json_array_append_new(toks, json_stringn(tok.data != NULL ? tok.data : "", tok.len));
                tok.len = 0;
                in_tok = 0;
            }
            if (c == '\0' || c == '#')
                break;
            p++;
        } else if (c == '\'') {
            const char *e = strchr(p + 1, '\'');
            if (e == NULL) {
                *why = "No closing quotation";
                goto fail;
            }
            aicp_buf_append(&tok, p + 1, (size_t)(e - p - 1));
            in_tok = 1;
            p = e + 1;
        } else if (c == '"') {
            p++;
            for (;;) {
                if (*p == '\0') {
                    *why = "No closing quotation";
                    goto fail;
                }
                if (*p == '"')
                    break;
                if (*p == '\\' && (p[1] == '"' || p[1] == '\\')) {
                    aicp_buf_append(&tok, p + 1, 1);
                    p += 2;
                    continue;
                }
                aicp_buf_append(&tok, p, 1);
                p++;
            }
            p++;
            in_tok = 1;
        } else if (c == '\\') {
            if (p[1] == '\0') {
                *why = "No escaped character";
                goto fail;
            }
            aicp_buf_append(&tok, p + 1, 1);
            p += 2;
            in_tok = 1;
        } else {
            aicp_buf_append(&tok, p, 1);
            p++;
            in_tok = 1;
        }
    }
    aicp_buf_free(&tok);
    return toks;
fail:
    aicp_buf_free(&tok);
    json_decref(toks);
    return NULL;
}

struct ini_pending {
    char *name;
    int line;
    int is_vars;   /* else children */
    json_t *parents;
};

struct ini_state {
    struct aicp_inventory *inv;
    const char *path;
    int lineno;
    struct ini_pending *pend;
    size_t npend;
    struct aicp_err *err;
};

static struct ini_pending *pending_find(struct ini_state *st, const char *name)
{
    for (size_t i = 0; i < st->npend; i++)
        if (st->pend[i].name != NULL && strcmp(st->pend[i].name, name) == 0)
            return &st->pend[i];
    return NULL;
}

static void pending_drop(struct ini_pending *p)
{
    free(p->name);
    json_decref(p->parents);
    memset(p, 0, sizeof(*p));
}

static int pending_add(struct ini_state *st, const char *name, int is_vars, const char *parent)
{
    struct ini_pending *np = realloc(st->pend, (st->npend + 1) * sizeof(*np));
    if (np == NULL)
        return AICP_ENOMEM;
    st->pend = np;
    struct ini_pending *p = &st->pend[st->npend++];
    memset(p, 0, sizeof(*p));
    p->name = aicp_strdup(name);
    p->line = st->lineno;
    p->is_vars = is_vars;
    p->parents = json_array();
    if (p->name == NULL || p->parents == NULL ||
        (parent != NULL && json_array_append_new(p->parents, json_string(parent)) != 0))
        return AICP_ENOMEM;
    return 0;
}

static int ini_error(struct ini_state *st, const char *fmt, const char *arg)
{
    return aicp_err_set(st->err, AICP_EINVAL, "%s:%d: %s%.200s%s", st->path, st->lineno, fmt,
                        arg != NULL ? arg : "", "");
}

/* _add_pending_children */
static int ini_add_pending(struct ini_state *st, const char *group)
{
    struct ini_pending *p = pending_find(st, group);
    if (p == NULL)
        return 0;
    json_t *parents = json_incref(p->parents);
    pending_drop(p);
    size_t i;
    json_t *par;
    int rc = 0;
    long g = find_index(st->inv->gindex, group);
    json_array_foreach(parents, i, par) {
        long pg = find_index(st->inv->gindex, json_string_value(par));
        if (pg < 0 || g < 0 || (rc = group_add_child(st->inv, (size_t)pg, (size_t)g, st->err)) != 0) {
            if (rc == 0)
                rc = aicp_err_set(st->err, AICP_EINVAL, "%s is not a known group", json_string_value(par));
            break;
        }
        struct ini_pending *pp = pending_find(st, json_string_value(par));
        if (pp != NULL && !pp->is_vars && (rc = ini_add_pending(st, json_string_value(par))) != 0)
            break;
    }
    json_decref(parents);
    return rc;
}

/* [name] or [name:kind], optionally followed by a comment. */
static int ini_section(const char *line, char **name, char **kind)
{
    *name = *kind = NULL;
    if (line[0] != '[')
        return 0;
    size_t n = strcspn(line + 1, ":] \t\n\r\v\f");
    if (n == 0)
        return 0;
    const char *p = line + 1 + n;
    const char *k = NULL;
    size_t kn = 0;
    if (*p == ':') {
        k = p + 1;
        while (is_word((unsigned char)k[kn]))
            kn++;
        if (kn == 0)
            return 0;
        p = k + kn;
    }
    if (*p != ']')
        return 0;
    p++;
    while (is_space(*p))
        p++;
    if (*p != '\0' && *p != '#')
        return 0;
    *name = aicp_strndup(line + 1, n);
    *kind = aicp_strndup(k != NULL ? k : "hosts", k != NULL ? kn : 5);
    return 1;
}

static int valid_utf8(const char *s, size_t n)
{
    json_t *t = json_stringn(s, n);
    json_decref(t);
    return t != NULL;
}

/* _populate_host_vars: add each host to the group, then set its vars. */
static int populate_hosts(struct aicp_inventory *inv, json_t *names, long group, long port, json_t *vars,
                          struct aicp_err *err)
{
    size_t i;
    json_t *name;
    json_array_foreach(names, i, name) {
        size_t h;
        int rc = host_add(inv, json_string_value(name), group, port, &h, err);
        if (rc != 0)
            return rc;
        const char *k;
        json_t *v;
        json_object_foreach(vars, k, v) {
            if ((rc = set_entity_var(inv, json_string_value(name), k, v, err)) != 0)
                return rc;
        }
    }
    return 0;
}

static int ini_host_line(struct ini_state *st, const char *line, size_t group)
{
    const char *why = NULL;
    json_t *toks = shlex_split(line, &why);
    json_t *names = NULL, *vars = json_object();
    int rc = 0;
    long port = -1;
    if (toks == NULL || vars == NULL) {
        rc = why != NULL ? aicp_err_set(st->err, AICP_EINVAL, "%s:%d: Error parsing host definition '%.200s': %s",
                                        st->path, st->lineno, line, why)
                         : oom(st->err);
        goto out;
    }
    if (json_array_size(toks) == 0)
        goto out;
    const char *pat = json_string_value(json_array_get(toks, 0));
    if ((rc = expand_hostpattern(&names, &port, pat, st->err)) != 0) {
        aicp_err_prefix(st->err, "%s:%d", st->path, st->lineno);
        goto out;
    }
    size_t plen = strlen(pat);
    if (plen > 0 && pat[plen - 1] == ':' && port < 0) {
        rc = ini_error(st, "Invalid host pattern supplied, ending in ':' is not allowed, this character is "
                           "reserved to provide a port: ", pat);
        goto out;
    }
    size_t i;
    json_t *t;
    json_array_foreach(names, i, t) {
        const char *nm = json_string_value(t);
        while (is_space(*nm))
            nm++;
        if (strncmp(nm, "---", 3) == 0 && (nm[3] == '\0' || is_space(nm[3]))) {
            rc = ini_error(st, "Invalid host pattern '---' supplied, '---' is normally a sign this is a YAML file", NULL);
            goto out;
        }
    }
    json_array_foreach(toks, i, t) {
        if (i == 0)
            continue;
        const char *kv = json_string_value(t);
        const char *eq = strchr(kv, '=');
        if (eq == NULL) {
            rc = ini_error(st, "Expected key=value host variable assignment, got: ", kv);
            goto out;
        }
        char *key = aicp_strndup(kv, (size_t)(eq - kv));
        json_t *val = aicp_inventory_py_literal(eq + 1);
        if (key == NULL || val == NULL || json_object_set_new(vars, key, val) != 0) {
            free(key);
            rc = oom(st->err);
            goto out;
        }
        free(key);
    }
    rc = populate_hosts(st->inv, names, (long)group, port, vars, st->err);
    if (rc != 0 && rc != AICP_ENOMEM)
        aicp_err_prefix(st->err, "%s:%d", st->path, st->lineno);
out:
    json_decref(toks);
    json_decref(names);
    json_decref(vars);
    return rc;
}

static void strip(char **s)
{
    while (is_space(**s))
        (*s)++;
    size_t n = strlen(*s);
    while (n > 0 && is_space((*s)[n - 1]))
        (*s)[--n] = '\0';
}

static int ini_parse(struct aicp_inventory *inv, const char *path, char *text, struct aicp_err *err)
{
    struct ini_state st = {.inv = inv, .path = path, .err = err};
    char *groupname = aicp_strdup("ungrouped");
    enum { S_HOSTS, S_CHILDREN, S_VARS } state = S_HOSTS;
    size_t group = G_UNGROUPED;
    int rc = groupname == NULL ? oom(err) : 0;
    char *save = NULL;
    char *p = text;

    while (rc == 0 && p != NULL) {
        char *line = p;
        char *nl = strpbrk(p, "\r\n");
        if (nl != NULL) {
            p = nl + 1 + (nl[0] == '\r' && nl[1] == '\n');
            *nl = '\0';
        } else {
            p = NULL;
        }
        st.lineno++;
        strip(&line);
        if (line[0] == '\0' || line[0] == '#' || line[0] == ';')
            continue;
        if (!valid_utf8(line, strlen(line))) {
            rc = ini_error(&st, "line is not valid UTF-8", NULL);
            break;
        }
        char *name = NULL, *kind = NULL;
        if (ini_section(line, &name, &kind)) {
            free(groupname);
            groupname = name;
            if (strcmp(kind, "hosts") == 0) {
                state = S_HOSTS;
            } else if (strcmp(kind, "children") == 0) {
                state = S_CHILDREN;
            } else if (strcmp(kind, "vars") == 0) {
                state = S_VARS;
            } else {
                rc = aicp_err_set(err, AICP_EINVAL, "%s:%d: Section [%s:%s] has unknown type: %s", path, st.lineno,
                                  name, kind, kind);
                free(kind);
                break;
            }
            free(kind);
            if (find_index(inv->gindex, groupname) < 0) {
                if (state == S_VARS && pending_find(&st, groupname) == NULL &&
                    pending_add(&st, groupname, 1, NULL) != 0) {
                    rc = oom(err);
                    break;
                }
            }
            if ((rc = group_add(inv, groupname, &group, err)) != 0) {
                aicp_err_prefix(err, "%s:%d", path, st.lineno);
                break;
            }
            struct ini_pending *pd = pending_find(&st, groupname);
            if (pd != NULL && state != S_VARS) {
                if (!pd->is_vars)
                    rc = ini_add_pending(&st, groupname);
                else
                    pending_drop(pd);
                if (rc != 0 && rc != AICP_ENOMEM)
                    aicp_err_prefix(err, "%s:%d", path, st.lineno);
            }
            continue;
        }
        if (line[0] == '[' && line[strlen(line) - 1] == ']') {
            rc = aicp_err_set(err, AICP_EINVAL,
                              "%s:%d: Invalid section entry: '%.200s'. Please make sure that there are no spaces in "
                              "the section entry, and that there are no other invalid characters",
                              path, st.lineno, line);
            break;
        }
        if (state == S_HOSTS) {
            rc = ini_host_line(&st, line, group);
        } else if (state == S_VARS) {
            char *eq = strchr(line, '=');
            if (eq == NULL) {
                rc = ini_error(&st, "Expected key=value, got: ", line);
                break;
            }
            *eq = '\0';
            char *k = line, *v = eq + 1;
            strip(&k);
            strip(&v);
            json_t *val = aicp_inventory_py_literal(v);
            rc = val == NULL ? oom(err) : set_group_var(inv, group, k, val, err);
            json_decref(val);
            if (rc != 0 && rc != AICP_ENOMEM)
                aicp_err_prefix(err, "%s:%d", path, st.lineno);
        } else {
            size_t n = strcspn(line, ":] \t\n\r\v\f");
            char *rest = line + n;
            while (is_space(*rest))
                rest++;
            if (n == 0 || (*rest != '\0' && *rest != '#')) {
                rc = ini_error(&st, "Expected group name, got: ", line);
                break;
            }
            line[n] = '\0';
            long child = find_index(inv->gindex, line);
            if (child < 0) {
                struct ini_pending *pd = pending_find(&st, line);
                if (pd == NULL)
                    rc = pending_add(&st, line, 0, groupname);
                else
                    rc = json_array_append_new(pd->parents, json_string(groupname));
                if (rc != 0)
                    rc = oom(err);
            } else if ((rc = group_add_child(inv, group, (size_t)child, err)) != 0 && rc != AICP_ENOMEM) {
                aicp_err_prefix(err, "%s:%d", path, st.lineno);
            }
        }
    }
    for (size_t i = 0; rc == 0 && i < st.npend; i++) {
        struct ini_pending *pd = &st.pend[i];
        if (pd->name == NULL)
            continue;
        if (pd->is_vars)
            rc = aicp_err_set(err, AICP_EINVAL, "%s:%d: Section [%s:vars] not valid for undefined group: %s", path,
                              pd->line, pd->name, pd->name);
        else
            rc = aicp_err_set(err, AICP_EINVAL, "%s:%d: Section [%s:children] includes undefined group: %s", path,
                              pd->line, json_string_value(json_array_get(pd->parents, json_array_size(pd->parents) - 1)),
                              pd->name);
    }
    for (size_t i = 0; i < st.npend; i++)
        pending_drop(&st.pend[i]);
    free(st.pend);
    free(groupname);
    (void)save;
    return rc;
}

/* ---- the YAML format (plugins/inventory/yaml.py) ---- */

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "dict";
    case JSON_ARRAY: return "list";
    case JSON_STRING: return "str";
    case JSON_INTEGER: return "int";
    case JSON_REAL: return "float";
    case JSON_TRUE:
    case JSON_FALSE: return "bool";
    default: return "NoneType";
    }
}

/* "file:line:col: " for a node when the srcmap knows it. */
static void yaml_where(const struct aicp_inventory *inv, const char *path, const json_t *node, char *buf, size_t n)
{
    const struct aicp_loc *loc = aicp_srcmap_get(inv->map, node);
    if (loc != NULL)
        snprintf(buf, n, "%s:%d:%d", loc->file, loc->line, loc->col);
    else
        snprintf(buf, n, "%s", path);
}

static int yaml_group(struct aicp_inventory *inv, const char *path, const char *name, json_t *data, int depth,
                      struct aicp_err *err)
{
    char where[512];
    size_t g;
    int rc;
    if (depth > 256)
        return aicp_err_set(err, AICP_EINVAL, "%s: groups nested too deeply", path);
    if (!json_is_object(data) && !json_is_null(data))
        return 0; /* Ansible warns and skips it */
    if ((rc = group_add(inv, name, &g, err)) != 0) {
        aicp_err_prefix(err, "%s", path);
        return rc;
    }
    if (json_is_null(data))
        return 0;
    static const char *const sections[] = {"vars", "children", "hosts"};
    for (size_t i = 0; i < 3; i++) {
        json_t *sec = json_object_get(data, sections[i]);
        if (json_is_string(sec)) {
            json_t *m = json_object();
            if (m == NULL || json_object_set_new(m, json_string_value(sec), json_null()) != 0 ||
                json_object_set_new(data, sections[i], m) != 0)
                return oom(err);
        } else if (sec != NULL && !json_is_object(sec) && !json_is_null(sec)) {
            yaml_where(inv, path, sec, where, sizeof(where));
            return aicp_err_set(err, AICP_EINVAL,
                                "%s: Invalid \"%s\" entry for \"%s\" group, requires a dictionary, found \"%s\" instead.",
                                where, sections[i], name, type_name(sec));
        }
    }
    const char *key;
    json_t *val;
    json_object_foreach(data, key, val) {
        if (!json_is_object(val))
            continue; /* not a mapping, or empty: Ansible skips it */
        const char *k2;
        json_t *v2;
        if (strcmp(key, "vars") == 0) {
            json_object_foreach(val, k2, v2) {
                if ((rc = set_group_var(inv, g, k2, v2, err)) != 0)
                    return rc;
            }
        } else if (strcmp(key, "children") == 0) {
            json_object_foreach(val, k2, v2) {
                if ((rc = yaml_group(inv, path, k2, v2, depth + 1, err)) != 0)
                    return rc;
                long child = find_index(inv->gindex, k2);
                if (child < 0) {
                    yaml_where(inv, path, v2, where, sizeof(where));
                    return aicp_err_set(err, AICP_EINVAL, "%s: %s is not a known host nor group", where, k2);
                }
                if ((rc = group_add_child(inv, g, (size_t)child, err)) != 0) {
                    aicp_err_prefix(err, "%s", path);
                    return rc;
                }
            }
        } else if (strcmp(key, "hosts") == 0) {
            json_object_foreach(val, k2, v2) {
                json_t *names = NULL;
                long port = -1;
                if (!json_is_object(v2) && !json_is_null(v2)) {
                    yaml_where(inv, path, v2, where, sizeof(where));
                    return aicp_err_set(err, AICP_EINVAL,
                                        "%s: Invalid data from file, expected dictionary for host %s and got: %s",
                                        where, k2, type_name(v2));
                }
                if ((rc = expand_hostpattern(&names, &port, k2, err)) != 0) {
                    aicp_err_prefix(err, "%s", path);
                    return rc;
                }
                json_t *vars = json_is_object(v2) ? json_incref(v2) : json_object();
                rc = vars == NULL ? oom(err) : populate_hosts(inv, names, (long)g, port, vars, err);
                json_decref(vars);
                json_decref(names);
                if (rc != 0)
                    return rc;
            }
        }
    }
    return 0;
}

static int yaml_inventory(struct aicp_inventory *inv, const char *path, json_t *data, struct aicp_err *err)
{
    const char *key;
    json_t *val;
    json_object_foreach(data, key, val) {
        int rc = yaml_group(inv, path, key, val, 0, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- sources ---- */

static int has_ext(const char *name, const char *const *exts)
{
    const char *base = strrchr(name, '/');
    base = base != NULL ? base + 1 : name;
    const char *dot = strrchr(base, '.');
    if (dot == NULL || dot == base)
        return exts == NULL; /* "no extension" */
    for (size_t i = 0; exts != NULL && exts[i] != NULL; i++)
        if (strcmp(dot, exts[i]) == 0)
            return 1;
    return 0;
}

static const char *const yaml_exts[] = {".yml", ".yaml", ".json", NULL};

/* One inventory file: YAML (for .yml/.yaml/.json or no extension) when it
 * is a mapping, else INI, as Ansible's yaml and ini plugins take turns. */
static int load_file(struct aicp_inventory *inv, const char *path, struct aicp_err *err)
{
    char *text = NULL;
    size_t len = 0;
    json_t *doc = NULL;
    struct aicp_err yerr = {0};
    int rc = aicp_read_file(&text, &len, path, err);
    if (rc != 0) {
        aicp_err_set(err, AICP_EINVAL, "%s: cannot read inventory: %s", path, strerror(errno ? errno : EIO));
        return AICP_EINVAL;
    }
    int yaml_ok = has_ext(path, yaml_exts) || has_ext(path, NULL);
    int yaml_syntax = 0;
    if (yaml_ok) {
        int yrc = aicp_yaml_load_string(&doc, text, len, path, inv->map, &yerr);
        if (yrc == AICP_ENOMEM) {
            rc = oom(err);
            goto out;
        }
        yaml_syntax = yrc != 0;
        if (yrc == 0 && json_is_object(doc) && json_object_size(doc) > 0) {
            json_t *plugin = json_object_get(doc, "plugin");
            if (plugin != NULL && !json_is_null(plugin) && !json_is_false(plugin) &&
                !(json_is_string(plugin) && json_string_length(plugin) == 0)) {
                rc = aicp_err_set(err, AICP_EINVAL, "%s: inventory plugin configuration files (plugin: %s) are not "
                                  "supported", path, json_is_string(plugin) ? json_string_value(plugin) : "?");
                goto out;
            }
            rc = yaml_inventory(inv, path, doc, err);
            goto out;
        }
    }
    if (memchr(text, '\0', len) != NULL) {
        rc = aicp_err_set(err, AICP_EINVAL, "%s: inventory contains NUL bytes", path);
        goto out;
    }
    rc = ini_parse(inv, path, text, err);
    if (rc != 0 && yaml_syntax && has_ext(path, yaml_exts) && err != NULL)
        *err = yerr; /* a .yml file: the YAML error is the useful one */
out:
    json_decref(doc);
    free(text);
    return rc;
}

static int is_ignored_entry(const char *name)
{
    static const char *const exts[] = {".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst",
                                       ".orig", ".ini", ".cfg", ".retry", NULL};
    if (name[0] == '.' || strcmp(name, "host_vars") == 0 || strcmp(name, "group_vars") == 0 ||
        strcmp(name, "vars_plugins") == 0)
        return 1;
    size_t n = strlen(name);
    for (size_t i = 0; exts[i] != NULL; i++) {
        size_t e = strlen(exts[i]);
        if (n >= e && strcmp(name + n - e, exts[i]) == 0)
            return 1;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names in dir (without . and ..); *out is a NULL-terminated array. */
static int list_dir(char ***out, const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char **nn = realloc(names, (n + 2) * sizeof(*nn));
        if (nn == NULL) {
            rc = AICP_ENOMEM;
            break;
        }
        names = nn;
        if ((names[n] = aicp_strdup(de->d_name)) == NULL) {
            rc = AICP_ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (names == NULL && rc == 0)
        names = calloc(1, sizeof(*names));
    if (names == NULL)
        return AICP_ENOMEM;
    names[n] = NULL;
    qsort(names, n, sizeof(*names), cmp_str);
    *out = names;
    return rc;
}

static void free_names(char **names)
{
    for (size_t i = 0; names != NULL && names[i] != NULL; i++)
        free(names[i]);
    free(names);
}

static int load_path(struct aicp_inventory *inv, const char *path, int depth, struct aicp_err *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return aicp_err_set(err, AICP_EINVAL, "%s: cannot read inventory: %s", path, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) {
        inv->cur_source = path;
        int rc = load_file(inv, path, err);
        inv->cur_source = NULL;
        return rc;
    }
    if (depth > 16)
        return aicp_err_set(err, AICP_EINVAL, "%s: inventory directories nested too deeply", path);
    char **names = NULL;
    int rc = list_dir(&names, path);
    if (rc != 0) {
        free_names(names);
        return rc == AICP_ENOMEM ? oom(err) : aicp_err_set(err, AICP_EINVAL, "%s: cannot list directory", path);
    }
    for (size_t i = 0; rc == 0 && names[i] != NULL; i++) {
        if (is_ignored_entry(names[i]))
            continue;
        struct aicp_buf full = AICP_BUF_INIT;
        if (aicp_buf_printf(&full, "%s/%s", path, names[i]) != 0)
            rc = oom(err);
        else
            rc = load_path(inv, full.data, depth + 1, err);
        aicp_buf_free(&full);
    }
    free_names(names);
    return rc;
}

/* The host_list plugin: "a,b:2222,c" */
static int load_host_list(struct aicp_inventory *inv, const char *list, struct aicp_err *err)
{
    char *copy = aicp_strdup(list);
    int rc = copy == NULL ? oom(err) : 0;
    char *save = NULL;
    for (char *tok = copy != NULL ? strtok_r(copy, ",", &save) : NULL; rc == 0 && tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        strip(&tok);
        if (*tok == '\0')
            continue;
        char *host = NULL;
        long port = -1;
        size_t h;
        if (parse_address(tok, 0, &host, &port) != 1) {
            free(host);
            host = NULL;
            port = -1;
        }
        const char *name = host != NULL ? host : tok;
        if (find_index(inv->hindex, name) < 0)
            rc = host_add(inv, name, G_UNGROUPED, port, &h, err);
        free(host);
    }
    free(copy);
    return rc;
}

static int add_dir(json_t *dirs, const char *dir)
{
    size_t i;
    json_t *d;
    json_array_foreach(dirs, i, d) {
        if (strcmp(json_string_value(d), dir) == 0)
            return 0;
    }
    return json_array_append_new(dirs, json_string(dir)) == 0 ? 0 : AICP_ENOMEM;
}

int aicp_inventory_load(struct aicp_inventory *inv, const char *source, struct aicp_err *err)
{
    struct stat sb;
    int rc;
    unreconcile(inv);
    if (strchr(source, ',') != NULL && stat(source, &sb) != 0) {
        rc = load_host_list(inv, source, err);
    } else {
        if ((rc = load_path(inv, source, 0, err)) != 0)
            return rc;
        char *dir = NULL;
        if (stat(source, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            dir = aicp_strdup(source);
        } else {
            const char *slash = strrchr(source, '/');
            dir = slash == NULL ? aicp_strdup(".") : slash == source ? aicp_strdup("/")
                                                     : aicp_strndup(source, (size_t)(slash - source));
        }
        rc = dir == NULL || add_dir(inv->inv_dirs, dir) != 0 ? oom(err) : 0;
        free(dir);
    }
    if (rc == 0)
        rc = reconcile(inv, err);
    return rc;
}

int aicp_inventory_add_vars_dir(struct aicp_inventory *inv, const char *dir, struct aicp_err *err)
{
    if (add_dir(inv->play_dirs, dir) != 0)
        return oom(err);
    pthread_mutex_lock(&inv->cache->lock);
    json_object_clear(inv->cache->data);
    pthread_mutex_unlock(&inv->cache->lock);
    return 0;
}

int aicp_inventory_add_host(struct aicp_inventory *inv, const char *host, const char *group, struct aicp_err *err)
{
    size_t h, g = G_ALL;
    int rc;
    unreconcile(inv);
    if (find_index(inv->hindex, host) < 0 && (rc = host_add(inv, host, G_ALL, -1, &h, err)) != 0)
        return rc;
    if (group != NULL && group[0] != '\0') {
        if ((rc = group_add(inv, group, &g, err)) != 0)
            return rc;
        if ((rc = host_add(inv, host, (long)g, -1, &h, err)) != 0)
            return rc;
    }
    return reconcile(inv, err);
}

int aicp_inventory_new(struct aicp_inventory **out, struct aicp_srcmap *map)
{
    struct aicp_inventory *inv = calloc(1, sizeof(*inv));
    size_t g;
    *out = NULL;
    if (inv == NULL)
        return AICP_ENOMEM;
    inv->map = map;
    inv->gindex = json_object();
    inv->hindex = json_object();
    inv->inv_dirs = json_array();
    inv->play_dirs = json_array();
    inv->cache = calloc(1, sizeof(*inv->cache));
    if (inv->gindex == NULL || inv->hindex == NULL || inv->inv_dirs == NULL || inv->play_dirs == NULL ||
        inv->cache == NULL || (inv->cache->data = json_object()) == NULL ||
        pthread_mutex_init(&inv->cache->lock, NULL) != 0) {
        if (inv->cache != NULL)
            json_decref(inv->cache->data);
        free(inv->cache);
        inv->cache = NULL;
        aicp_inventory_free(inv);
        return AICP_ENOMEM;
    }
    if (group_add(inv, "all", &g, NULL) != 0 || group_add(inv, "ungrouped", &g, NULL) != 0 ||
        group_add_child(inv, G_ALL, G_UNGROUPED, NULL) != 0) {
        aicp_inventory_free(inv);
        return AICP_ENOMEM;
    }
    *out = inv;
    return 0;
}

void aicp_inventory_free(struct aicp_inventory *inv)
{
    if (inv == NULL)
        return;
    for (size_t i = 0; i < inv->ngroups; i++) {
        free(inv->groups[i].name);
        json_decref(inv->groups[i].vars);
        free(inv->groups[i].hosts.v);
        free(inv->groups[i].children.v);
        free(inv->groups[i].parents.v);
    }
    for (size_t i = 0; i < inv->nhosts; i++) {
        free(inv->hosts[i].name);
        free(inv->hosts[i].source);
        json_decref(inv->hosts[i].vars);
        free(inv->hosts[i].groups.v);
        free(inv->hosts[i].direct.v);
    }
    free(inv->groups);
    free(inv->hosts);
    json_decref(inv->gindex);
    json_decref(inv->hindex);
    json_decref(inv->inv_dirs);
    json_decref(inv->play_dirs);
    if (inv->cache != NULL) {
        pthread_mutex_destroy(&inv->cache->lock);
        json_decref(inv->cache->data);
        free(inv->cache);
    }
    free(inv);
}

/* ---- group_vars/ and host_vars/ (plugins/vars/host_group_vars.py) ---- */

static int vars_dir_files(json_t *files, const char *dir, int depth)
{
    char **names = NULL;
    if (depth > 16)
        return 0;
    int rc = list_dir(&names, dir);
    if (rc != 0) {
        free_names(names);
        return rc == AICP_ENOMEM ? rc : 0;
    }
    for (size_t i = 0; rc == 0 && names[i] != NULL; i++) {
        const char *nm = names[i];
        size_t n = strlen(nm);
        if (nm[0] == '.' || nm[n - 1] == '~')
            continue;
        struct aicp_buf full = AICP_BUF_INIT;
        struct stat sb;
        if (aicp_buf_printf(&full, "%s/%s", dir, nm) != 0) {
            rc = AICP_ENOMEM;
        } else if (stat(full.data, &sb) == 0) {
            if (S_ISDIR(sb.st_mode) && has_ext(nm, NULL))
                rc = vars_dir_files(files, full.data, depth + 1);
            else if (S_ISREG(sb.st_mode) && (has_ext(nm, NULL) || has_ext(nm, yaml_exts)))
                rc = json_array_append_new(files, json_string(full.data)) == 0 ? 0 : AICP_ENOMEM;
        }
        aicp_buf_free(&full);
    }
    free_names(names);
    return rc;
}

/* Merged vars of entity `name` from dir/subdir: new reference, or NULL in
 * *out when there are none. Caller holds the cache lock. */
static int vars_from_dir(json_t **out, const struct aicp_inventory *inv, const char *dir, const char *subdir,
                         const char *name, struct aicp_err *err)
{
    struct aicp_buf base = AICP_BUF_INIT;
    json_t *files = json_array(), *res = NULL;
    int rc = 0;
    *out = NULL;
    if (name[0] == '/' || files == NULL)
        goto out;
    if (aicp_buf_printf(&base, "%s/%s/%s", dir, subdir, name) != 0) {
        rc = oom(err);
        goto out;
    }
    json_t *cached = json_object_get(inv->cache->data, base.data);
    if (cached != NULL) {
        *out = json_is_null(cached) ? NULL : json_incref(cached);
        goto out;
    }
    static const char *const exts[] = {"", ".yml", ".yaml", ".json"};
    for (size_t i = 0; i < 4; i++) {
        struct aicp_buf cand = AICP_BUF_INIT;
        struct stat sb;
        if (aicp_buf_printf(&cand, "%s%s", base.data, exts[i]) != 0) {
            rc = oom(err);
        } else if (stat(cand.data, &sb) == 0) {
            if (S_ISDIR(sb.st_mode))
                rc = vars_dir_files(files, cand.data, 0);
            else if (json_array_append_new(files, json_string(cand.data)) != 0)
                rc = AICP_ENOMEM;
            aicp_buf_free(&cand);
            break;
        }
        aicp_buf_free(&cand);
    }
    if (rc != 0) {
        rc = oom(err);
        goto out;
    }
    size_t i;
    json_t *f;
    json_array_foreach(files, i, f) {
        json_t *data = NULL;
        if ((rc = aicp_yaml_load_file(&data, json_string_value(f), inv->map, err)) != 0) {
            if (rc != AICP_EINVAL && rc != AICP_ENOMEM)
                rc = aicp_err_set(err, AICP_EINVAL, "%s: cannot read variables file", json_string_value(f));
            goto out;
        }
        if (json_is_null(data) || (json_is_object(data) && json_object_size(data) == 0)) {
            json_decref(data);
            continue;
        }
        if (!json_is_object(data)) {
            rc = aicp_err_set(err, AICP_EINVAL, "%s: expected a mapping of variables, got a '%s'",
                              json_string_value(f), type_name(data));
            json_decref(data);
            goto out;
        }
        if (res == NULL) {
            res = data;
        } else {
            json_object_update(res, data);
            json_decref(data);
        }
    }
    if (json_object_set(inv->cache->data, base.data, res != NULL ? res : json_null()) != 0) {
        rc = oom(err);
        goto out;
    }
    *out = res;
    res = NULL;
out:
    json_decref(res);
    json_decref(files);
    aicp_buf_free(&base);
    return rc;
}

/* Updates dst with the vars of `name` from every directory in dirs. */
static int merge_dirs_vars(json_t *dst, const struct aicp_inventory *inv, const json_t *dirs, const char *subdir,
                           const char *name, struct aicp_err *err)
{
    size_t i;
    json_t *d;
    json_array_foreach(dirs, i, d) {
        json_t *v = NULL;
        int rc = vars_from_dir(&v, inv, json_string_value(d), subdir, name, err);
        if (rc != 0)
            return rc;
        if (v != NULL) {
            json_object_update(dst, v);
            json_decref(v);
        }
    }
    return 0;
}


static int cmp_group(const void *a, const void *b, void *ctx)
{
    const struct aicp_inventory *inv = ctx;
    const struct inv_group *x = &inv->groups[*(const size_t *)a], *y = &inv->groups[*(const size_t *)b];
    if (x->depth != y->depth)
        return x->depth < y->depth ? -1 : 1;
    if (x->priority != y->priority)
        return x->priority < y->priority ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The host's groups but `all`, in sort_groups order. */
static int host_sorted_groups(const struct aicp_inventory *inv, size_t h, struct idxvec *out)
{
    const struct idxvec *g = &inv->hosts[h].groups;
    for (size_t i = 0; i < g->n; i++)
        if (g->v[i] != G_ALL && vec_push(out, g->v[i]) != 0)
            return AICP_ENOMEM;
    qsort_r(out->v, out->n, sizeof(size_t), cmp_group, (void *)inv);
    return 0;
}

/* VariableManager.get_vars for a host, without the magic variables. */
static int host_vars_plain(json_t **out, const struct aicp_inventory *inv, size_t h, struct aicp_err *err)
{
    struct idxvec groups = {0};
    json_t *res = json_deep_copy(inv->groups[G_ALL].vars);
    int rc = res == NULL || host_sorted_groups(inv, h, &groups) != 0 ? oom(err) : 0;
    for (size_t i = 0; rc == 0 && i < groups.n; i++)
        json_object_update(res, inv->groups[groups.v[i]].vars);
    if (rc == 0) {
        pthread_mutex_lock(&inv->cache->lock);
        const json_t *dirsets[2] = {inv->inv_dirs, inv->play_dirs};
        for (int d = 0; rc == 0 && d < 2; d++)
            rc = merge_dirs_vars(res, inv, dirsets[d], "group_vars", "all", err);
        for (int d = 0; rc == 0 && d < 2; d++) {
            size_t j;
            json_t *dir;
            json_array_foreach(dirsets[d], j, dir) {
                for (size_t i = 0; rc == 0 && i < groups.n; i++) {
                    json_t *v = NULL;
                    rc = vars_from_dir(&v, inv, json_string_value(dir), "group_vars", inv->groups[groups.v[i]].name,
                                       err);
                    if (v != NULL)
                        json_object_update(res, v);
                    json_decref(v);
                }
                if (rc != 0)
                    break;
            }
        }
        if (rc == 0)
            json_object_update(res, inv->hosts[h].vars);
        for (int d = 0; rc == 0 && d < 2; d++)
            rc = merge_dirs_vars(res, inv, dirsets[d], "host_vars", inv->hosts[h].name, err);
        pthread_mutex_unlock(&inv->cache->lock);
    }
    free(groups.v);
    if (rc != 0) {
        json_decref(res);
        return rc;
    }
    *out = res;
    return 0;
}

static long host_index(const struct aicp_inventory *inv, const char *host, struct aicp_err *err)
{
    long h = find_index(inv->hindex, host);
    if (h < 0)
        aicp_err_set(err, AICP_ENOTFOUND, "host %s is not in the inventory", host);
    return h;
}

/* ansible-inventory's INTERNAL_VARS, dropped even when a user set them */
static const char *const internal[] = {
    "ansible_diff_mode", "ansible_config_file", "ansible_facts", "ansible_forks", "ansible_inventory_sources",
    "ansible_limit", "ansible_playbook_python", "ansible_run_tags", "ansible_skip_tags", "ansible_verbosity",
    "ansible_version", "inventory_dir", "inventory_file", "inventory_hostname", "inventory_hostname_short",
    "groups", "group_names", "omit", "playbook_dir", NULL};

int aicp_inventory_host_json(json_t **out, const struct aicp_inventory *inv, const char *host, struct aicp_err *err)
{
    *out = NULL;
    long h = host_index(inv, host, err);
    if (h < 0)
        return AICP_ENOTFOUND;
    int rc = host_vars_plain(out, inv, (size_t)h, err);
    for (size_t i = 0; rc == 0 && internal[i] != NULL; i++)
        json_object_del(*out, internal[i]);
    return rc;
}

static int groups_dict(json_t **out, const struct aicp_inventory *inv)
{
    json_t *res = json_object();
    int rc = res == NULL ? AICP_ENOMEM : 0;
    for (size_t g = 0; rc == 0 && g < inv->ngroups; g++) {
        struct idxvec hosts = {0};
        json_t *arr = json_array();
        rc = arr == NULL ? AICP_ENOMEM : group_all_hosts(inv, g, &hosts);
        for (size_t i = 0; rc == 0 && i < hosts.n; i++)
            rc = json_array_append_new(arr, json_string(inv->hosts[hosts.v[i]].name)) ? AICP_ENOMEM : 0;
        if (rc == 0 && json_object_set_new(res, inv->groups[g].name, arr) != 0)
            rc = AICP_ENOMEM;
        else if (rc != 0)
            json_decref(arr);
        free(hosts.v);
    }
    if (rc != 0) {
        json_decref(res);
        return rc;
    }
    *out = res;
    return 0;
}

int aicp_inventory_host_vars(json_t **out, const struct aicp_inventory *inv, const char *host, struct aicp_err *err)
{
    json_t *res = NULL, *names = NULL, *groups = NULL;
    *out = NULL;
    long h = host_index(inv, host, err);
    if (h < 0)
        return AICP_ENOTFOUND;
    int rc = host_vars_plain(&res, inv, (size_t)h, err);
    if (rc != 0)
        return rc;
    const struct inv_host *hp = &inv->hosts[h];
    names = json_array();
    rc = names == NULL || groups_dict(&groups, inv) != 0 ? AICP_ENOMEM : 0;
    for (size_t i = 0; rc == 0 && i < hp->groups.n; i++)
        if (hp->groups.v[i] != G_ALL)
            rc = json_array_append_new(names, json_string(inv->groups[hp->groups.v[i]].name)) ? AICP_ENOMEM : 0;
    if (rc == 0) {
        /* sorted(group names) */
        size_t n = json_array_size(names);
        const char **tmp = calloc(n + 1, sizeof(*tmp));
        json_t *sorted = json_array();
        if (tmp == NULL || sorted == NULL) {
            rc = AICP_ENOMEM;
        } else {
            for (size_t i = 0; i < n; i++)
                tmp[i] = json_string_value(json_array_get(names, i));
            qsort(tmp, n, sizeof(*tmp), cmp_str);
            for (size_t i = 0; rc == 0 && i < n; i++)
                rc = json_array_append_new(sorted, json_string(tmp[i])) ? AICP_ENOMEM : 0;
        }
        free(tmp);
        json_decref(names);
        names = sorted;
    }
    char *shortname = NULL;
    if (rc == 0) {
        shortname = valid_ipv4(hp->name) || valid_ipv6(hp->name) ? aicp_strdup(hp->name)
                                                                  : aicp_strndup(hp->name, strcspn(hp->name, "."));
        char *dir = NULL;
        if (hp->source != NULL) {
            const char *slash = strrchr(hp->source, '/');
            dir = slash == NULL ? aicp_strdup(".") : aicp_strndup(hp->source, (size_t)(slash - hp->source));
        }
        if (shortname == NULL || names == NULL ||
            json_object_set_new(res, "inventory_hostname", json_string(hp->name)) != 0 ||
            json_object_set_new(res, "inventory_hostname_short", json_string(shortname)) != 0 ||
            json_object_set(res, "group_names", names) != 0 || json_object_set(res, "groups", groups) != 0 ||
            json_object_set_new(res, "inventory_file", hp->source ? json_string(hp->source) : json_null()) != 0 ||
            json_object_set_new(res, "inventory_dir", dir ? json_string(dir) : json_null()) != 0)
            rc = AICP_ENOMEM;
        free(dir);
    }
    free(shortname);
    json_decref(names);
    json_decref(groups);
    if (rc != 0) {
        json_decref(res);
        return oom(err);
    }
    *out = res;
    return 0;
}

/* ---- host patterns (inventory/manager.py) ---- */

/* split_host_pattern: by ',' when present, else by ':' outside [...],
 * unless the whole thing is one host address (e.g. an IPv6 one). */
static int split_pattern(json_t *out, const char *pattern)
{
    char *host = NULL;
    long port;
    if (strchr(pattern, ',') == NULL && parse_address(pattern, 1, &host, &port) == 1) {
        free(host);
        char *c = aicp_strdup(pattern);
        char *t = c;
        if (c == NULL)
            return AICP_ENOMEM;
        strip(&t);
        int rc = *t ? json_array_append_new(out, json_string(t)) : 0;
        free(c);
        return rc ? AICP_ENOMEM : 0;
    }
    int by_comma = strchr(pattern, ',') != NULL;
    const char *p = pattern;
    while (*p) {
        const char *st = p;
        if (by_comma) {
            p += strcspn(p, ",");
        } else {
            while (*p && !is_space(*p) && *p != ':' && *p != ']') {
                if (*p == '[') {
                    const char *c = strchr(p, ']');
                    if (c == NULL)
                        break;
                    p = c + 1;
                } else {
                    p++;
                }
            }
        }
        char *tok = aicp_strndup(st, (size_t)(p - st));
        char *t = tok;
        if (tok == NULL)
            return AICP_ENOMEM;
        strip(&t);
        int rc = *t ? json_array_append_new(out, json_string(t)) : 0;
        free(tok);
        if (rc)
            return AICP_ENOMEM;
        if (*p)
            p++;
    }
    return 0;
}

static int name_matches(const char *pat, const regex_t *re, const char *name)
{
    if (re != NULL) {
        regmatch_t m;
        return regexec(re, name, 1, &m, 0) == 0 && m.rm_so == 0;
    }
    return fnmatch(pat, name, FNM_NOESCAPE) == 0;
}

/* _enumerate_matches + _apply_subscript for one pattern (no &/! prefix). */
static int match_one(const struct aicp_inventory *inv, const char *pattern, struct idxvec *out, struct aicp_err *err)
{
    char *expr = aicp_strdup(pattern);
    regex_t re;
    int have_re = 0, rc = 0;
    long idx = 0, start = 0, end = 0;
    int sub = 0; /* 1: [i]  2: [a:b] */
    if (expr == NULL)
        return oom(err);
    size_t n = strlen(expr);
    if (expr[0] != '~' && n > 3 && expr[n - 1] == ']') {
        char *lb = strrchr(expr, '[');
        if (lb != NULL && lb > expr) {
            char *e1 = NULL, *e2 = NULL;
            const char *in = lb + 1;
            if ((in[0] == '-' || (in[0] >= '0' && in[0] <= '9')) && strspn(in + (in[0] == '-'), "0123456789") ==
                                                                        (size_t)(expr + n - 1 - in - (in[0] == '-'))) {
                idx = strtol(in, &e1, 10);
                sub = 1;
            } else if (in[0] >= '0' && in[0] <= '9') {
                start = strtol(in, &e1, 10);
                if (*e1 == ':' || *e1 == '-') {
                    const char *es = e1 + 1;
                    if (strspn(es, "0123456789") == (size_t)(expr + n - 1 - es)) {
                        end = *es == ']' ? -1 : strtol(es, &e2, 10);
                        sub = 2;
                    }
                }
            }
            if (sub)
                *lb = '\0';
        }
    }
    if (expr[0] == '~') {
        if (regcomp(&re, expr + 1, REG_EXTENDED) != 0) {
            rc = aicp_err_set(err, AICP_EINVAL, "Invalid host list pattern: %s", expr);
            goto out;
        }
        have_re = 1;
    }
    struct idxvec found = {0};
    unsigned char *seen = calloc(inv->nhosts + 1, 1);
    int any_group = 0;
    if (seen == NULL) {
        rc = oom(err);
        goto out;
    }
    for (size_t g = 0; rc == 0 && g < inv->ngroups; g++) {
        if (!name_matches(expr, have_re ? &re : NULL, inv->groups[g].name))
            continue;
        any_group = 1;
        struct idxvec hosts = {0};
        rc = group_all_hosts(inv, g, &hosts) != 0 ? oom(err) : 0;
        for (size_t i = 0; rc == 0 && i < hosts.n; i++)
            rc = vec_push(&found, hosts.v[i]) ? oom(err) : 0;
        free(hosts.v);
    }
    if (rc == 0 && (!any_group || expr[0] == '~' || strpbrk(expr, ".?*[") != NULL)) {
        for (size_t h = 0; rc == 0 && h < inv->nhosts; h++)
            if (name_matches(expr, have_re ? &re : NULL, inv->hosts[h].name))
                rc = vec_push(&found, h) ? oom(err) : 0;
    }
    /* results are deduplicated in first-seen order */
    struct idxvec uniq = {0};
    for (size_t i = 0; rc == 0 && i < found.n; i++) {
        if (!seen[found.v[i]]) {
            seen[found.v[i]] = 1;
            rc = vec_push(&uniq, found.v[i]) ? oom(err) : 0;
        }
    }
    free(found.v);
    free(seen);
    long cnt = (long)uniq.n;
    if (rc == 0 && cnt > 0 && sub == 1) {
        long i = idx < 0 ? cnt + idx : idx;
        if (i < 0 || i >= cnt)
            rc = aicp_err_set(err, AICP_EINVAL, "No hosts matched the subscripted pattern '%s'", pattern);
        else
            rc = vec_push(out, uniq.v[i]) ? oom(err) : 0;
    } else if (rc == 0 && cnt > 0 && sub == 2 && end != 0) {
        /* hosts[start:end + 1], Python slice clamping */
        long e = end == -1 ? cnt : end + 1;
        if (e > cnt)
            e = cnt;
        for (long i = start; rc == 0 && i < e; i++)
            rc = vec_push(out, uniq.v[i]) ? oom(err) : 0;
    } else if (rc == 0 && cnt > 0 && sub == 2) {
        if (start >= cnt)
            rc = aicp_err_set(err, AICP_EINVAL, "No hosts matched the subscripted pattern '%s'", pattern);
        else
            rc = vec_push(out, uniq.v[start]) ? oom(err) : 0;
    } else {
        for (size_t i = 0; rc == 0 && i < uniq.n; i++)
            rc = vec_push(out, uniq.v[i]) ? oom(err) : 0;
    }
    free(uniq.v);
out:
    if (have_re)
        regfree(&re);
    free(expr);
    return rc;
}

int aicp_inventory_match(json_t **out, const struct aicp_inventory *inv, const char *pattern, struct aicp_err *err)
{
    json_t *parts = json_array(), *ordered = json_array();
    struct idxvec hosts = {0};
    unsigned char *mark = calloc(inv->nhosts + 1, 1);
    int rc = parts == NULL || ordered == NULL || mark == NULL ? oom(err) : 0;
    *out = NULL;
    if (rc == 0 && split_pattern(parts, pattern) != 0)
        rc = oom(err);
    /* order_patterns: plain ones, then &, then ! */
    for (int pass = 0; rc == 0 && pass < 3; pass++) {
        size_t i;
        json_t *p;
        json_array_foreach(parts, i, p) {
            const char *s = json_string_value(p);
            int kind = s[0] == '&' ? 1 : s[0] == '!' ? 2 : 0;
            if (kind == pass)
                json_array_append(ordered, p);
        }
        if (pass == 0 && json_array_size(ordered) == 0)
            json_array_append_new(ordered, json_string("all"));
    }
    size_t i;
    json_t *p;
    json_array_foreach(ordered, i, p) {
        if (rc != 0)
            break;
        const char *s = json_string_value(p);
        long exact = find_index(inv->hindex, s);
        struct idxvec that = {0};
        if (exact >= 0) {
            rc = vec_push(&hosts, (size_t)exact) ? oom(err) : 0;
            continue;
        }
        int kind = s[0] == '&' ? 1 : s[0] == '!' ? 2 : 0;
        rc = match_one(inv, kind ? s + 1 : s, &that, err);
        if (rc == 0 && kind == 0) {
            memset(mark, 0, inv->nhosts);
            for (size_t k = 0; k < hosts.n; k++)
                mark[hosts.v[k]] = 1;
            for (size_t k = 0; rc == 0 && k < that.n; k++)
                if (!mark[that.v[k]])
                    rc = vec_push(&hosts, that.v[k]) ? oom(err) : 0;
        } else if (rc == 0) {
            memset(mark, 0, inv->nhosts);
            for (size_t k = 0; k < that.n; k++)
                mark[that.v[k]] = 1;
            size_t w = 0;
            for (size_t k = 0; k < hosts.n; k++)
                if ((kind == 1) == (mark[hosts.v[k]] != 0))
                    hosts.v[w++] = hosts.v[k];
            hosts.n = w;
        }
        free(that.v);
    }
    json_t *res = rc == 0 ? json_array() : NULL;
    if (rc == 0 && res == NULL)
        rc = oom(err);
    memset(mark, 0, inv->nhosts + (mark != NULL));
    for (size_t k = 0; rc == 0 && k < hosts.n; k++) {
        if (mark[hosts.v[k]])
            continue; /* deduplicate_list */
        mark[hosts.v[k]] = 1;
        if (json_array_append_new(res, json_string(inv->hosts[hosts.v[k]].name)) != 0)
            rc = oom(err);
    }
    free(hosts.v);
    free(mark);
    json_decref(parts);
    json_decref(ordered);
    if (rc != 0) {
        json_decref(res);
        return rc;
    }
    *out = res;
    return 0;
}

/* ---- accessors ---- */

size_t aicp_inventory_host_count(const struct aicp_inventory *inv)
{
    return inv->nhosts;
}

const char *aicp_inventory_host_name(const struct aicp_inventory *inv, size_t i)
{
    return i < inv->nhosts ? inv->hosts[i].name : NULL;
}

int aicp_inventory_has_host(const struct aicp_inventory *inv, const char *host)
{
    return find_index(inv->hindex, host) >= 0;
}

size_t aicp_inventory_group_count(const struct aicp_inventory *inv)
{
    return inv->ngroups;
}

const char *aicp_inventory_group_name(const struct aicp_inventory *inv, size_t i)
{
    return i < inv->ngroups ? inv->groups[i].name : NULL;
}

long aicp_inventory_group_find(const struct aicp_inventory *inv, const char *name)
{
    return find_index(inv->gindex, name);
}

static json_t *names_of(const struct aicp_inventory *inv, const struct idxvec *v, int groups)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < v->n; i++) {
        const char *nm = groups ? inv->groups[v->v[i]].name : inv->hosts[v->v[i]].name;
        if (json_array_append_new(arr, json_string(nm)) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

json_t *aicp_inventory_group_children(const struct aicp_inventory *inv, size_t i)
{
    static const struct idxvec none = {0};
    return names_of(inv, i < inv->ngroups ? &inv->groups[i].children : &none, 1);
}

json_t *aicp_inventory_group_hosts(const struct aicp_inventory *inv, size_t i)
{
    static const struct idxvec none = {0};
    return names_of(inv, i < inv->ngroups ? &inv->groups[i].hosts : &none, 0);
}

int aicp_inventory_group_vars(json_t **out, const struct aicp_inventory *inv, const char *group, struct aicp_err *err)
{
    long g = find_index(inv->gindex, group);
    *out = NULL;
    if (g < 0)
        return aicp_err_set(err, AICP_ENOTFOUND, "group %s is not in the inventory", group);
    json_t *res = json_deep_copy(inv->groups[g].vars);
    if (res == NULL)
        return oom(err);
    pthread_mutex_lock(&inv->cache->lock);
    int rc = merge_dirs_vars(res, inv, inv->inv_dirs, "group_vars", group, err);
    pthread_mutex_unlock(&inv->cache->lock);
    if (rc == 0 && inv->groups[g].priority != 1 &&
        json_object_set_new(res, "ansible_group_priority", json_integer(inv->groups[g].priority)) != 0)
        rc = oom(err);
    for (size_t i = 0; rc == 0 && internal[i] != NULL; i++)
        json_object_del(res, internal[i]);
    if (rc != 0) {
        json_decref(res);
        return rc;
    }
    *out = res;
    return 0;
}
