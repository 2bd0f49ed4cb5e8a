/* Host patterns: InventoryManager's pattern language (inventory/manager.py)
 * as `hosts:` and --limit use it: names, `all`/`*`, wildcards, `~regex`,
 * unions with `,` or `:`, `:&` intersections, `:!` exclusions and `[i]` /
 * `[a:b]` subscripts, resolved against the group graph in inventory.c.
 */
#include "config.h"

#include <fnmatch.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "inventory.h"
#include "inventory_int.h"
#include "util.h"

/* ---- host patterns (inventory/manager.py) ---- */

/* split_host_pattern: by ',' when present, else by ':' outside [...],
 * unless the whole thing is one host address (e.g. an IPv6 one). */
static int split_pattern(json_t *out, const char *pattern)
{
    char *host = NULL;
    long port;
    if (strchr(pattern, ',') == NULL &&
        aicp_inventory_parse_address(pattern, 1, &host, &port) == 1) {
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
        rc = aicp_inventory_group_all_hosts(inv, g, &hosts) != 0 ? oom(err) : 0;
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

