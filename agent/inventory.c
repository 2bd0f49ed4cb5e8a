/* The Ansible-compatible inventory: the group graph, sources, variables
 * and accessors.
 *
 * Everything here mirrors ansible-core 2.14's behaviour rather than its
 * documentation, because users compare our output with ansible-inventory:
 * InventoryData's reconcile step (implicit `all` children, `ungrouped`),
 * Group depth and priority, directories of sources and the host_list
 * plugin, the host_group_vars plugin's file lookup and VariableManager's
 * precedence. The INI and YAML formats and the host address grammar live in
 * inventory_parse.c, the pattern language in inventory_pattern.c, and
 * output formatting (--list, --graph, --host) in inventory_cli.c.
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

#include <openssl/crypto.h>

#include "err.h"
#include "inventory.h"
#include "inventory_int.h"
#include "secret.h"
#include "util.h"
#include "vault.h"
#include "yaml.h"

/* Python's literal_eval nesting we accept before calling it a string. */
#define PYLIT_MAX_DEPTH 64

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


/* ---- the group graph (inventory/data.py, group.py, host.py) ---- */

int aicp_inventory_group_add(struct aicp_inventory *inv, const char *name, size_t *out,
                             struct aicp_err *err)
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
int aicp_inventory_group_all_hosts(const struct aicp_inventory *inv, size_t g, struct idxvec *out)
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
int aicp_inventory_group_add_child(struct aicp_inventory *inv, size_t parent, size_t child,
                                   struct aicp_err *err)
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
        int rc = aicp_inventory_group_all_hosts(inv, child, &hosts);
        for (size_t i = 0; rc == 0 && i < hosts.n; i++)
            rc = host_add_group(inv, hosts.v[i], parent);
        free(hosts.v);
        if (rc != 0)
            return oom(err);
    }
    return 0;
}

int aicp_inventory_host_add(struct aicp_inventory *inv, const char *name, long group, long port,
                            size_t *out, struct aicp_err *err)
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
            int rc = aicp_inventory_group_add_child(inv, G_ALL, g, err);
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
int aicp_inventory_set_group_var(struct aicp_inventory *inv, size_t g, const char *key,
                                 json_t *value, struct aicp_err *err)
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
int aicp_inventory_set_entity_var(struct aicp_inventory *inv, const char *entity, const char *key,
                                  json_t *value, struct aicp_err *err)
{
    long g = find_index(inv->gindex, entity);
    if (g >= 0)
        return aicp_inventory_set_group_var(inv, (size_t)g, key, value, err);
    long h = find_index(inv->hindex, entity);
    if (h < 0)
        return aicp_err_set(err, AICP_EINVAL, "Could not identify group or host named %s", entity);
    if (json_object_set(inv->hosts[h].vars, key, value) != 0)
        return oom(err);
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
    int vaulted = 0;
    errno = 0;
    int rc = aicp_vault_read_file(&text, &len, &vaulted, aicp_srcmap_vault(inv->map), path, err);
    if (rc == AICP_EAUTH || rc == AICP_ENOMEM || (rc != 0 && vaulted))
        return rc;
    if (rc != 0) {
        aicp_err_set(err, AICP_EINVAL, "%s: cannot read inventory: %s", path, strerror(errno ? errno : EIO));
        return AICP_EINVAL;
    }
    int yaml_ok = has_ext(path, yaml_exts) || has_ext(path, NULL);
    int yaml_syntax = 0;
    if (yaml_ok) {
        int yrc = vaulted ? aicp_yaml_load_secret_string(&doc, text, len, path, inv->map, &yerr)
                          : aicp_yaml_load_string(&doc, text, len, path, inv->map, &yerr);
        if (yrc == AICP_ENOMEM) {
            rc = oom(err);
            goto out;
        }
        if (yrc == AICP_EAUTH) { /* a !vault value that no password opens */
            if (err != NULL)
                *err = yerr;
            rc = yrc;
            goto out;
        }
        yaml_syntax = yrc != 0;
        if (yrc == 0 && json_is_object(doc) && json_object_size(doc) > 0) {
            json_t *plugin = json_object_get(doc, "plugin");
            if (plugin != NULL && !json_is_null(plugin) && !json_is_false(plugin) &&
                !(json_is_string(plugin) && json_string_length(plugin) == 0)) {
                rc = aicp_err_set(err, AICP_EINVAL, "%s: inventory plugin configuration files (plugin: %s) are not "
                                  "supported", path,
                                  vaulted ? "<vaulted>" : json_is_string(plugin) ? json_string_value(plugin) : "?");
                goto out;
            }
            rc = aicp_inventory_yaml_parse(inv, path, doc, err);
            goto out;
        }
    }
    if (memchr(text, '\0', len) != NULL) {
        rc = aicp_err_set(err, AICP_EINVAL, "%s: inventory contains NUL bytes", path);
        goto out;
    }
    /* The values of a vaulted inventory are secrets, as those of a vaulted
     * vars file: the INI parser registers them as it sets them. */
    rc = aicp_inventory_ini_parse(inv, path, text, vaulted ? aicp_srcmap_secrets(inv->map) : NULL,
                                  vaulted, err);
    if (rc != 0 && yaml_syntax && has_ext(path, yaml_exts) && err != NULL)
        *err = yerr; /* a .yml file: the YAML error is the useful one */
out:
    if (rc == 0 && vaulted && json_is_object(doc))
        rc = aicp_secrets_add_json(aicp_srcmap_secrets(inv->map), doc);
    json_decref(doc);
    if (text != NULL)
        OPENSSL_cleanse(text, len);
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
        if (aicp_inventory_parse_address(tok, 0, &host, &port) != 1) {
            free(host);
            host = NULL;
            port = -1;
        }
        const char *name = host != NULL ? host : tok;
        if (find_index(inv->hindex, name) < 0)
            rc = aicp_inventory_host_add(inv, name, G_UNGROUPED, port, &h, err);
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
    if (find_index(inv->hindex, host) < 0 &&
        (rc = aicp_inventory_host_add(inv, host, G_ALL, -1, &h, err)) != 0)
        return rc;
    if (group != NULL && group[0] != '\0') {
        if ((rc = aicp_inventory_group_add(inv, group, &g, err)) != 0)
            return rc;
        if ((rc = aicp_inventory_host_add(inv, host, (long)g, -1, &h, err)) != 0)
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
    if (aicp_inventory_group_add(inv, "all", &g, NULL) != 0 ||
        aicp_inventory_group_add(inv, "ungrouped", &g, NULL) != 0 ||
        aicp_inventory_group_add_child(inv, G_ALL, G_UNGROUPED, NULL) != 0) {
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
            if (rc != AICP_EINVAL && rc != AICP_ENOMEM && rc != AICP_EAUTH)
                rc = aicp_err_set(err, AICP_EINVAL, "%s: cannot read variables file", json_string_value(f));
            goto out;
        }
        if (json_is_null(data) || (json_is_object(data) && json_object_size(data) == 0)) {
            json_decref(data);
            continue;
        }
        if (!json_is_object(data)) {
            rc = aicp_err_set(err, AICP_EINVAL, "%s: expected a mapping of variables, got a '%s'",
                              json_string_value(f), aicp_inventory_type_name(data));
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
        rc = arr == NULL ? AICP_ENOMEM : aicp_inventory_group_all_hosts(inv, g, &hosts);
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
        shortname = aicp_inventory_valid_ipv4(hp->name) || aicp_inventory_valid_ipv6(hp->name)
                        ? aicp_strdup(hp->name)
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
