/* The ontap_export_policy module: an NFS export policy of an SVM and its
 * rules (/api/protocols/nfs/export-policies and .../{id}/rules), which
 * Trident backends and NFS mounts depend on. Where the netapp.ontap
 * collection manages one rule per task (na_ontap_export_policy_rule), this
 * module declares the whole set: rules are normalised (clients and enum
 * lists sorted, lower case) and compared as a set, so their order in the
 * task does not matter; rules that differ are modified in place, missing
 * ones created, and rules the task does not declare deleted. Without
 * `rules` the policy's rules are left alone. */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "module.h"
#include "ontap.h"
#include "ontaputil.h"
#include "util.h"

#define EP_API "/api/protocols/nfs/export-policies"
#define EP_RULE_FIELDS "index,clients,protocols,ro_rule,rw_rule,superuser,anonymous_user"

static const struct aicp_arg_spec ep_args[] = {
    AICP_OU_CONN_ARGS,
    {.name = "name", .type = AICP_ARG_STR, .required = 1, .help = "The export policy's name."},
    {.name = "vserver",
     .type = AICP_ARG_STR,
     .required = 1,
     .aliases = "svm",
     .help = "The SVM of the policy."},
    {.name = "rules",
     .type = AICP_ARG_LIST,
     .help = "Every rule of the policy, in the order ONTAP evaluates them (the first that "
             "matches a client wins): each {clients (list or \"a,b\"), protocols (default "
             "[any]), ro_rule (default [sys]), rw_rule (default [sys]), superuser (default "
             "[none]), anonymous_user (default \"65534\", as ONTAP's)}. Rules out of order are "
             "rewritten in place; rules not listed are deleted. Absent: the rules are left "
             "alone."},
    {.name = "state",
     .type = AICP_ARG_STR,
     .def = "present",
     .choices = "present|absent",
     .help = "Whether the policy exists."},
    {.name = "time_out",
     .type = AICP_ARG_INT,
     .def = "180",
     .help = "Seconds to wait for ONTAP's job of a change."},
    {.name = NULL},
};

static const char *const rule_lists[] = {"protocols", "ro_rule", "rw_rule", "superuser"};
static const char *const rule_defaults[] = {"any", "sys", "sys", "none"};

static int is_absent(const struct aicp_args *args)
{
    const char *st = aicp_args_str(args, "state");
    return st != NULL && strcmp(st, "absent") == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A sorted array of strings from a list, a "a,b" string or (clients as
 * ONTAP returns them) a list of {"match": ...}; lower-cased for enums.
 * NULL when v is not one of those. */
static json_t *norm_list(const json_t *v, int lower)
{
    const char *items[64];
    char *owned[64];
    size_t n = 0, i;
    json_t *e, *out = NULL;

    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        while (*s != '\0' && n < 64) {
            size_t len = strcspn(s, ",");
            const char *a = s, *z = s + len;
            while (a < z && isspace((unsigned char)*a))
                a++;
            while (z > a && isspace((unsigned char)z[-1]))
                z--;
            if (z > a && (owned[n] = aicp_strndup(a, (size_t)(z - a))) != NULL) {
                items[n] = owned[n];
                n++;
            }
            s += len;
            if (*s == ',')
                s++;
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, e) {
            const char *s = json_is_object(e) ? json_string_value(json_object_get(e, "match"))
                                              : json_string_value(e);
            if (s == NULL || n >= 64 || (owned[n] = aicp_strdup(s)) == NULL)
                continue;
            items[n] = owned[n];
            n++;
        }
    } else {
        return NULL;
    }
    for (i = 0; i < n && lower; i++)
        for (char *p = owned[i]; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    qsort(items, n, sizeof(items[0]), cmp_str);
    out = json_array();
    for (i = 0; i < n; i++)
        if (i == 0 || strcmp(items[i], items[i - 1]) != 0)
            json_array_append_new(out, json_string(items[i]));
    for (i = 0; i < n; i++)
        free(owned[i]);
    return out;
}

static json_t *anon_str(const json_t *v)
{
    char buf[32];
    if (json_is_string(v))
        return json_incref((json_t *)v);
    if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return json_string(buf);
    }
    return NULL;
}

/* A task's rule, normalised with defaults; or an ONTAP rule (index kept)
 * normalised the same way without them. */
static int norm_rule(const json_t *r, int wanted, size_t n, json_t **out, struct aicp_err *err)
{
    json_t *o = json_object();
    *out = NULL;
    if (!json_is_object(r)) {
        json_decref(o);
        return aicp_err_set(err, AICP_EINVAL, "rules[%zu]: a rule is a mapping", n);
    }
    json_t *c = norm_list(json_object_get(r, "clients"), 0);
    if (c == NULL || json_array_size(c) == 0) {
        json_decref(c);
        json_decref(o);
        if (!wanted)
            return 0;
        return aicp_err_set(err, AICP_EINVAL, "rules[%zu]: clients is required", n);
    }
    json_object_set_new(o, "clients", c);
    for (size_t i = 0; i < 4; i++) {
        const json_t *v = json_object_get(r, rule_lists[i]);
        json_t *l = v ? norm_list(v, 1) : NULL;
        if (l == NULL && wanted) {
            if (v != NULL) {
                json_decref(o);
                return aicp_err_set(err, AICP_EINVAL, "rules[%zu].%s: a list of strings", n,
                                    rule_lists[i]);
            }
            l = json_pack("[s]", rule_defaults[i]);
        }
        if (l != NULL)
            json_object_set_new(o, rule_lists[i], l);
    }
    json_t *a = anon_str(json_object_get(r, "anonymous_user"));
    /* ONTAP's default, so that a rule written without it compares (and
     * shows in a diff) as what the cluster returns. */
    if (a == NULL && wanted)
        a = json_string("65534");
    if (a != NULL)
        json_object_set_new(o, "anonymous_user", a);
    if (wanted) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)r, k, v) {
            if (strcmp(k, "clients") && strcmp(k, "protocols") && strcmp(k, "ro_rule") &&
                strcmp(k, "rw_rule") && strcmp(k, "superuser") && strcmp(k, "anonymous_user")) {
                json_decref(o);
                return aicp_err_set(err, AICP_EINVAL, "rules[%zu]: unknown key '%s'", n, k);
            }
        }
    } else if (json_object_get(r, "index") != NULL) {
        json_object_set(o, "index", json_object_get(r, "index"));
    }
    *out = o;
    return 0;
}

/* Whether an ONTAP rule has what a wanted rule says; fields ONTAP did not
 * return never differ. */
static int rule_match(const json_t *want, const json_t *have)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)want, k, v) {
        json_t *h = json_object_get(have, k);
        if (h != NULL && !json_equal(v, h))
            return 0;
    }
    return 1;
}

/* The rule as ONTAP takes it in a POST or PATCH. */
static json_t *rule_body(const json_t *want)
{
    json_t *b = json_deep_copy(want), *cl = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(want, "clients"), i, c)
        json_array_append_new(cl, json_pack("{s:O}", "match", c));
    json_object_set_new(b, "clients", cl);
    return b;
}

static json_t *without_index(const json_t *rules)
{
    json_t *out = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(rules, i, r) {
        json_t *c = json_deep_copy(r);
        json_object_del(c, "index");
        json_array_append_new(out, c);
    }
    return out;
}

/* ONTAP returns rules in index order; sorted here all the same, since
 * the order is what a policy means. */
static void sort_by_index(json_t *rules)
{
    size_t n = json_array_size(rules);
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0; j--) {
            json_t *a = json_array_get(rules, j - 1), *b = json_array_get(rules, j);
            if (json_integer_value(json_object_get(a, "index")) <=
                json_integer_value(json_object_get(b, "index")))
                break;
            json_incref(a);
            json_array_set(rules, j - 1, b);
            json_array_set_new(rules, j, a);
        }
    }
}

/* The names of the volumes that use the policy, into out. */
static int policy_users(struct aicp_ontap *o, const struct aicp_args *args, json_t *out,
                        struct aicp_err *err)
{
    struct aicp_buf q = AICP_BUF_INIT;
    json_t *vols = NULL, *v;
    size_t i;
    int rc;

    if (aicp_ontap_qadd(&q, "nas.export_policy.name", aicp_args_str(args, "name")) != 0 ||
        aicp_ontap_qadd(&q, "svm.name", aicp_args_str(args, "vserver")) != 0) {
        aicp_buf_free(&q);
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    rc = aicp_ontap_list(o, "/api/storage/volumes", q.data, "name,nas.export_policy.name", &vols,
                         err);
    json_array_foreach(vols, i, v) {
        const char *pn =
            json_string_value(json_object_get(json_object_get(json_object_get(v, "nas"),
                                                              "export_policy"),
                                              "name"));
        /* A cluster that ignores the filter must not name every volume. */
        if (pn != NULL && strcmp(pn, aicp_args_str(args, "name")) == 0 &&
            json_object_get(v, "name") != NULL)
            json_array_append(out, json_object_get(v, "name"));
    }
    json_decref(vols);
    aicp_buf_free(&q);
    return rc;
}

/* current: {"policy": {"id", "name"}|null, "rules": [normalised ONTAP
 * rules, in index order], "users": [volumes using it, read for state:
 * absent]} */
static int ep_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                    struct aicp_err *err)
{
    struct aicp_ontap *o = NULL;
    struct aicp_buf q = AICP_BUF_INIT, path = AICP_BUF_INIT;
    json_t *pol = NULL, *raw = NULL, *rules = json_array(), *users = json_array();
    size_t i;
    json_t *r;
    int rc;

    *current = NULL;
    if (rules == NULL || users == NULL) {
        json_decref(rules);
        json_decref(users);
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    if ((rc = aicp_ou_client(ctx, args, &o, err)) != 0)
        goto out;
    if (aicp_ontap_qadd(&q, "name", aicp_args_str(args, "name")) != 0 ||
        aicp_ontap_qadd(&q, "svm.name", aicp_args_str(args, "vserver")) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = aicp_ontap_get_one(o, EP_API, q.data, "id,name,svm.name", "export policy", &pol,
                                 err)) != 0)
        goto out;
    if (pol != NULL) {
        const json_t *id = json_object_get(pol, "id");
        if (!json_is_integer(id)) {
            rc = aicp_err_set(err, AICP_EREMOTE, "export policy %s: ONTAP returned no id",
                              aicp_args_str(args, "name"));
            goto out;
        }
        aicp_buf_printf(&path, EP_API "/%" JSON_INTEGER_FORMAT "/rules", json_integer_value(id));
        if ((rc = aicp_ontap_list(o, path.data, NULL, EP_RULE_FIELDS, &raw, err)) != 0)
            goto out;
        json_array_foreach(raw, i, r) {
            json_t *n = NULL;
            if ((rc = norm_rule(r, 0, i, &n, err)) != 0)
                goto out;
            if (n != NULL)
                json_array_append_new(rules, n);
        }
        sort_by_index(rules);
        /* ONTAP refuses to delete a policy volumes use (1703957): a
         * --check must say so too, not predict a deletion. */
        if (is_absent(args) && (rc = policy_users(o, args, users, err)) != 0)
            goto out;
    }
    if (ctx->result != NULL) {
        json_object_set_new(ctx->result, "export_policy",
                            pol ? json_pack("{s:O, s:O?, s:o}", "name", json_object_get(pol, "name"),
                                            "id", json_object_get(pol, "id"), "rules",
                                            without_index(rules))
                                : json_null());
    }
    *current = json_pack("{s:o?, s:O, s:O}", "policy", pol, "rules", rules, "users", users);
    pol = NULL;
    if (*current == NULL)
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
out:
    aicp_buf_free(&q);
    aicp_buf_free(&path);
    json_decref(pol);
    json_decref(raw);
    json_decref(rules);
    json_decref(users);
    return rc;
}

/* plan: {"action": "create"|"modify"|"delete", "id", "ops": [{"op":
 * "post"|"patch"|"delete", "index", "body"}]} */
static int ep_diff(const json_t *current, const struct aicp_args *args,
                   struct aicp_change **change, struct aicp_err *err)
{
    struct aicp_change *c = NULL;
    const json_t *pol = json_object_get(current, "policy");
    const json_t *have = json_object_get(current, "rules");
    const json_t *given = aicp_args_get(args, "rules");
    json_t *want = json_array(), *ops = json_array(), *before = json_object(),
           *after = json_object();
    size_t i, j;
    json_t *r;
    int rc;

    *change = NULL;
    if (want == NULL || ops == NULL || before == NULL || after == NULL ||
        aicp_change_new(&c) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (json_array_size(given) > 256 || json_array_size(have) > 256) {
        rc = aicp_err_set(err, AICP_EINVAL, "export policy %s: more than 256 rules",
                          aicp_args_str(args, "name"));
        goto out;
    }
    json_array_foreach(given, i, r) {
        json_t *n = NULL;
        if ((rc = norm_rule(r, 1, i, &n, err)) != 0)
            goto out;
        json_array_append_new(want, n);
    }
    if (is_absent(args)) {
        if (!json_is_object(pol))
            goto done;
        const json_t *users = json_object_get(current, "users");
        if (json_array_size(users) > 0) {
            rc = aicp_err_set(err, AICP_EFAILED,
                              "export policy %s in SVM %s is in use by volume %s%s: give those "
                              "volumes another policy first (ONTAP refuses the delete: 1703957)",
                              aicp_args_str(args, "name"), aicp_args_str(args, "vserver"),
                              json_string_value(json_array_get(users, 0)),
                              json_array_size(users) > 1 ? " and others" : "");
            goto out;
        }
        if (strcmp(aicp_args_str(args, "name"), "default") == 0) {
            rc = aicp_err_set(err, AICP_EFAILED,
                              "export policy default of SVM %s cannot be deleted (ONTAP keeps it)",
                              aicp_args_str(args, "vserver"));
            goto out;
        }
        json_object_set_new(before, "state", json_string("present"));
        json_object_set_new(after, "state", json_string("absent"));
        c->plan = json_pack("{s:s, s:O}", "action", "delete", "id", json_object_get(pol, "id"));
    } else if (!json_is_object(pol)) {
        json_array_foreach(want, i, r)
            json_array_append_new(ops, json_pack("{s:s, s:o}", "op", "post", "body", rule_body(r)));
        json_object_set_new(before, "state", json_string("absent"));
        json_object_set_new(after, "state", json_string("present"));
        if (given != NULL)
            json_object_set(after, "rules", want);
        c->plan = json_pack("{s:s, s:O}", "action", "create", "ops", ops);
    } else {
        if (given == NULL)
            goto done;
        /* ONTAP evaluates rules in index order, so the n-th wanted rule
         * must be the n-th rule: a rule that differs at its position is
         * rewritten in place (which also reorders), rules past the end
         * are appended, surplus ones deleted. */
        size_t nw = json_array_size(want), nh = json_array_size(have);
        for (i = 0; i < nw && i < nh; i++) {
            const json_t *h = json_array_get(have, i);
            if (rule_match(json_array_get(want, i), h))
                continue;
            json_array_append_new(ops, json_pack("{s:s, s:O, s:o}", "op", "patch", "index",
                                                 json_object_get(h, "index"), "body",
                                                 rule_body(json_array_get(want, i))));
        }
        for (i = nh; i < nw; i++)
            json_array_append_new(ops, json_pack("{s:s, s:o}", "op", "post", "body",
                                                 rule_body(json_array_get(want, i))));
        for (j = nh; j > nw; j--)
            json_array_append_new(ops, json_pack("{s:s, s:O}", "op", "delete", "index",
                                                 json_object_get(json_array_get(have, j - 1),
                                                                 "index")));
        if (json_array_size(ops) == 0)
            goto done;
        json_object_set_new(before, "rules", without_index(have));
        json_object_set(after, "rules", want);
        c->plan = json_pack("{s:s, s:O, s:O}", "action", "modify", "id",
                            json_object_get(pol, "id"), "ops", ops);
    }
    if (c->plan == NULL) {
        rc = aicp_err_set(err, AICP_EREMOTE, "export policy %s: ONTAP returned no id or index",
                          aicp_args_str(args, "name"));
        goto out;
    }
    c->needed = 1;
    c->before = before;
    c->after = after;
    before = after = NULL;
done:
    *change = c;
    c = NULL;
    rc = 0;
out:
    json_decref(want);
    json_decref(ops);
    json_decref(before);
    json_decref(after);
    aicp_change_free(c);
    return rc;
}

static int ep_apply(struct aicp_ctx *ctx, const struct aicp_change *change, struct aicp_err *err)
{
    const struct aicp_args *args = change->args;
    const json_t *plan = change->plan;
    const char *action = json_string_value(json_object_get(plan, "action"));
    const char *name = aicp_args_str(args, "name");
    double tmo = (double)aicp_args_int(args, "time_out", 180);
    struct aicp_ontap *o = NULL;
    struct aicp_buf path = AICP_BUF_INIT, q = AICP_BUF_INIT;
    json_t *pol = NULL, *body = NULL;
    json_int_t id = json_integer_value(json_object_get(plan, "id"));
    size_t i;
    json_t *op;
    int rc;

    if (!change->needed || action == NULL)
        return 0;
    if ((rc = aicp_ou_client(ctx, args, &o, err)) != 0)
        goto out;
    if (strcmp(action, "delete") == 0) {
        aicp_buf_printf(&path, EP_API "/%" JSON_INTEGER_FORMAT, id);
        rc = aicp_ontap_call(o, "DELETE", path.data, NULL, NULL, tmo, NULL, err);
        if (rc == AICP_ENOTFOUND) /* the verify re-check decides */
            aicp_err_clear(err), rc = 0;
        if (rc == 0 && ctx->result != NULL)
            json_object_set_new(ctx->result, "export_policy", json_null());
        goto out;
    }
    if (strcmp(action, "create") == 0) {
        body = json_pack("{s:s, s:{s:s}}", "name", name, "svm", "name",
                         aicp_args_str(args, "vserver"));
        rc = aicp_ontap_call(o, "POST", EP_API, NULL, body, tmo, NULL, err);
        if (rc != 0 && rc != AICP_ENOTFOUND)
            goto out;
        aicp_err_clear(err);
        if (aicp_ontap_qadd(&q, "name", name) != 0 ||
            aicp_ontap_qadd(&q, "svm.name", aicp_args_str(args, "vserver")) != 0) {
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
        if ((rc = aicp_ontap_get_one(o, EP_API, q.data, "id,name", "export policy", &pol, err)) !=
            0)
            goto out;
        if (!json_is_integer(json_object_get(pol, "id"))) {
            rc = aicp_err_set(err, AICP_EREMOTE, "not in SVM %s after the change",
                              aicp_args_str(args, "vserver"));
            goto out;
        }
        id = json_integer_value(json_object_get(pol, "id"));
    }
    json_array_foreach(json_object_get(plan, "ops"), i, op) {
        const char *what = json_string_value(json_object_get(op, "op"));
        const json_t *b = json_object_get(op, "body");
        path.len = 0;
        if (strcmp(what, "post") == 0)
            rc = aicp_buf_printf(&path, EP_API "/%" JSON_INTEGER_FORMAT "/rules", id);
        else
            rc = aicp_buf_printf(&path, EP_API "/%" JSON_INTEGER_FORMAT "/rules/%" JSON_INTEGER_FORMAT,
                                 id, json_integer_value(json_object_get(op, "index")));
        if (rc != 0) {
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
        rc = aicp_ontap_call(o, strcmp(what, "post") == 0    ? "POST"
                                : strcmp(what, "patch") == 0 ? "PATCH"
                                                             : "DELETE",
                             path.data, NULL, b, tmo, NULL, err);
        if (rc == AICP_ENOTFOUND) /* a vanished job: the verify re-check decides */
            aicp_err_clear(err), rc = 0;
        if (rc != 0)
            goto out;
    }
out:
    if (rc != 0)
        aicp_err_prefix(err, "export policy %s", name);
    aicp_buf_free(&path);
    aicp_buf_free(&q);
    json_decref(pol);
    json_decref(body);
    return rc;
}

static const struct aicp_module_ops ep_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = ep_check,
    .diff = ep_diff,
    .apply = ep_apply,
};

const struct aicp_module aicp_mod_ontap_export_policy = {
    .name = "ontap_export_policy",
    .summary = "ONTAP NFS export policy and its rules, in the order ONTAP evaluates them",
    .args = ep_args,
    .flags = AICP_MOD_NEEDS_ONTAP,
    .ops = &ep_ops,
};
