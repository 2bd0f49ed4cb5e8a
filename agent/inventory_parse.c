/* Inventory sources parsed into the group graph: Ansible's host address
 * grammar (parsing/utils/addresses.py: host:port, [v6]:port, ranges such as
 * dgx[01:16] and [a:c]), the INI plugin (shlex-split host lines,
 * Python-literal values, pending [g:children] and [g:vars] declarations)
 * and the YAML plugin. Both follow ansible-core 2.14's behaviour and error
 * wording, since users compare our results with ansible-inventory; the graph
 * they fill is in inventory.c.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "inventory.h"
#include "inventory_int.h"
#include "secret.h"
#include "util.h"
#include "yaml.h"

/* Range expansion bound: `h[0:99999999]` must not eat the machine. */
#define INV_MAX_EXPANDED 100000

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

int aicp_inventory_valid_ipv6(const char *s)
{
    unsigned char buf[16];
    return strchr(s, ':') != NULL && inet_pton(AF_INET6, s, buf) == 1;
}

int aicp_inventory_valid_ipv4(const char *s)
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
int aicp_inventory_parse_address(const char *addr, int allow_ranges, char **host, long *port)
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
    if (!(aicp_inventory_valid_ipv4(a) || aicp_inventory_valid_ipv6(a) || valid_hostname(a)) ||
        (!allow_ranges && strchr(a, '[') != NULL)) {
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
    if (aicp_inventory_parse_address(pattern, 1, &host, port) == 1)
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
    struct aicp_secrets *secrets; /* where variable values are registered; may be NULL */
    const char *what;             /* the failure in words, for a vaulted file's error */
    const char *why;              /* and more words, or NULL */
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
    st->what = fmt;
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
        if (pg < 0 || g < 0 ||
            (rc = aicp_inventory_group_add_child(st->inv, (size_t)pg, (size_t)g, st->err)) != 0) {
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
        int rc = aicp_inventory_host_add(inv, json_string_value(name), group, port, &h, err);
        if (rc != 0)
            return rc;
        const char *k;
        json_t *v;
        json_object_foreach(vars, k, v) {
            if ((rc = aicp_inventory_set_entity_var(inv, json_string_value(name), k, v, err)) != 0)
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
        st->what = "Error parsing host definition";
        st->why = why;
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
        if (key == NULL || val == NULL || aicp_secrets_add_json(st->secrets, val) != 0 ||
            json_object_set_new(vars, key, val) != 0) {
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

int aicp_inventory_ini_parse(struct aicp_inventory *inv, const char *path, char *text,
                             struct aicp_secrets *secrets, int vaulted, struct aicp_err *err)
{
    struct ini_state st = {.inv = inv, .path = path, .err = err, .secrets = secrets};
    int errline = 0;
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
            if ((rc = aicp_inventory_group_add(inv, groupname, &group, err)) != 0) {
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
            rc = val == NULL || aicp_secrets_add_json(secrets, val) != 0
                     ? oom(err)
                     : aicp_inventory_set_group_var(inv, group, k, val, err);
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
            } else if ((rc = aicp_inventory_group_add_child(inv, group, (size_t)child, err)) != 0 &&
                       rc != AICP_ENOMEM) {
                aicp_err_prefix(err, "%s:%d", path, st.lineno);
            }
        }
    }
    errline = st.lineno;
    for (size_t i = 0; rc == 0 && i < st.npend; i++) {
        struct ini_pending *pd = &st.pend[i];
        if (pd->name == NULL)
            continue;
        errline = pd->line;
        st.what = pd->is_vars ? "a [group:vars] section for an undefined group"
                              : "a [group:children] section names an undefined group";
        if (pd->is_vars)
            rc = aicp_err_set(err, AICP_EINVAL, "%s:%d: Section [%s:vars] not valid for undefined group: %s", path,
                              pd->line, pd->name, pd->name);
        else
            rc = aicp_err_set(err, AICP_EINVAL, "%s:%d: Section [%s:children] includes undefined group: %s", path,
                              pd->line, json_string_value(json_array_get(pd->parents, json_array_size(pd->parents) - 1)),
                              pd->name);
    }
    /* Messages above quote the line, a host or a group name: text a vault
     * was meant to hide. Say where and what only. */
    if (rc != 0 && rc != AICP_ENOMEM && vaulted) {
        const char *what = st.what != NULL ? st.what : "invalid inventory entry";
        size_t n = strlen(what);
        while (n > 0 && (what[n - 1] == ' ' || what[n - 1] == ':'))
            n--; /* "Expected key=value, got: " wants its text, which is not shown */
        if (n >= 5 && memcmp(what + n - 5, ", got", 5) == 0)
            n -= 5;
        rc = aicp_err_set(err, rc, "%s:%d: %.*s%s%s (in vaulted content, not shown)", path, errline,
                          (int)n, what, st.why != NULL ? ": " : "", st.why != NULL ? st.why : "");
    }
    for (size_t i = 0; i < st.npend; i++)
        pending_drop(&st.pend[i]);
    free(st.pend);
    free(groupname);
    (void)save;
    return rc;
}

/* ---- the YAML format (plugins/inventory/yaml.py) ---- */

const char *aicp_inventory_type_name(const json_t *v)
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
    if ((rc = aicp_inventory_group_add(inv, name, &g, err)) != 0) {
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
                                "%s: Invalid \"%s\" entry for \"%s\" group, requires a dictionary, "
                                "found \"%s\" instead.",
                                where, sections[i], name, aicp_inventory_type_name(sec));
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
                if ((rc = aicp_inventory_set_group_var(inv, g, k2, v2, err)) != 0)
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
                if ((rc = aicp_inventory_group_add_child(inv, g, (size_t)child, err)) != 0) {
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
                    return aicp_err_set(
                        err, AICP_EINVAL,
                        "%s: Invalid data from file, expected dictionary for host %s and got: %s",
                        where, k2, aicp_inventory_type_name(v2));
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

int aicp_inventory_yaml_parse(struct aicp_inventory *inv, const char *path, json_t *data,
                              struct aicp_err *err)
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
