/* The ontap_clone module: a FlexClone, a writable copy of a parent volume
 * (optionally as of one of its Snapshot copies) that costs no space until
 * it diverges: TR-4798's workspaces and experiments. Arguments as the
 * netapp.ontap collection's na_ontap_volume_clone names them. A volume of
 * the clone's name that is not a FlexClone of the parent is never taken
 * over: that fails, naming both. split starts a clone split (the clone
 * becomes an independent volume); once split it is no longer a FlexClone,
 * which split: true accepts. Deleting unmounts and takes the clone offline
 * first, as ONTAP requires. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "module.h"
#include "ontap.h"
#include "ontap_stamp.h"
#include "ontaputil.h"
#include "util.h"

#define CLONE_API "/api/storage/volumes"
#define CLONE_FIELDS                                                                               \
    "uuid,name,svm.name,state,nas.path,nas.uid,nas.gid,comment,clone.is_flexclone,"               \
    "clone.parent_volume.name,clone.parent_snapshot.name,clone.parent_svm.name,"                   \
    "clone.split_initiated"

static const struct aicp_arg_spec clone_args[] = {
    AICP_OU_CONN_ARGS,
    {.name = "name", .type = AICP_ARG_STR, .required = 1, .help = "The clone's name."},
    {.name = "vserver",
     .type = AICP_ARG_STR,
     .required = 1,
     .aliases = "svm",
     .help = "The SVM of the clone."},
    {.name = "parent_volume",
     .type = AICP_ARG_STR,
     .help = "The volume it is a clone of (needed with state: present)."},
    {.name = "parent_snapshot",
     .type = AICP_ARG_STR,
     .help = "The parent's Snapshot copy to clone (default: a new one ONTAP takes)."},
    {.name = "parent_vserver",
     .type = AICP_ARG_STR,
     .help = "The parent's SVM when it is not vserver."},
    {.name = "junction_path",
     .type = AICP_ARG_STR,
     .help = "Where the clone is mounted in the SVM's namespace."},
    {.name = "split",
     .type = AICP_ARG_BOOL,
     .help = "Start a clone split: the clone becomes an independent volume. Once split it is "
             "no longer a FlexClone, which split: true accepts."},
    {.name = "uid", .type = AICP_ARG_INT, .help = "Owner (user id) of the clone's root."},
    {.name = "gid", .type = AICP_ARG_INT, .help = "Group id of the clone's root."},
    {.name = "comment",
     .type = AICP_ARG_STR,
     .help = "Comment. Compared without aicp's provenance stamp (\" [aicp ...]\"). Without "
             "provenance it is written as given; when absent, a new clone gets the run's "
             "stamp."},
    {.name = "provenance",
     .type = AICP_ARG_STR,
     .help = "Who changes the clone (\"site=NAME run=ID\"): written after the comment as "
             "\" [aicp site=NAME run=ID]\" on create and with every other change; never a "
             "change on its own."},
    {.name = "state",
     .type = AICP_ARG_STR,
     .def = "present",
     .choices = "present|absent",
     .help = "Whether the clone exists. absent unmounts it and takes it offline first."},
    {.name = "time_out",
     .type = AICP_ARG_INT,
     .def = "180",
     .help = "Seconds to wait for ONTAP's job of a change."},
    {.name = NULL},
};

/* The value at a dotted path of o (borrowed), or NULL. */
static const json_t *jpath(const json_t *o, const char *path)
{
    char key[128];
    const char *p = path;
    while (o != NULL && *p != '\0') {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof(key))
            return NULL;
        memcpy(key, p, n);
        key[n] = '\0';
        o = json_is_object(o) ? json_object_get(o, key) : NULL;
        p = dot ? dot + 1 : p + n;
    }
    return o;
}

static const char *jstr(const json_t *o, const char *path)
{
    return json_string_value(jpath(o, path));
}

static int is_absent(const struct aicp_args *args)
{
    const char *st = aicp_args_str(args, "state");
    return st != NULL && strcmp(st, "absent") == 0;
}

static void set_results(struct aicp_ctx *ctx, const json_t *rec)
{
    if (ctx->result == NULL)
        return;
    json_object_set_new(ctx->result, "volume", rec ? json_deep_copy(rec) : json_null());
    json_t *u = json_object_get(rec, "uuid");
    json_object_set_new(ctx->result, "uuid", u ? json_incref(u) : json_null());
    aicp_stamp_report(ctx->result, json_string_value(json_object_get(rec, "comment")));
}

static int read_clone(struct aicp_ontap *o, const struct aicp_args *args, json_t **rec,
                      struct aicp_err *err)
{
    struct aicp_buf q = AICP_BUF_INIT;
    int rc;
    if (aicp_ontap_qadd(&q, "name", aicp_args_str(args, "name")) != 0 ||
        aicp_ontap_qadd(&q, "svm.name", aicp_args_str(args, "vserver")) != 0) {
        aicp_buf_free(&q);
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    rc = aicp_ontap_get_one(o, CLONE_API, q.data, CLONE_FIELDS, "volume", rec, err);
    aicp_buf_free(&q);
    return rc;
}

/* current: {"record": {...}|null, "stamp": "[aicp ...]" or ""} */
static int clone_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                       struct aicp_err *err)
{
    struct aicp_ontap *o = NULL;
    json_t *rec = NULL;
    char stamp[AICP_STAMP_MAX];
    int rc;

    *current = NULL;
    if (!is_absent(args) && aicp_args_str(args, "parent_volume") == NULL)
        return aicp_err_set(err, AICP_EINVAL, "clone %s: parent_volume is needed with state: "
                                              "present",
                            aicp_args_str(args, "name"));
    if ((rc = aicp_ou_client(ctx, args, &o, err)) != 0 ||
        (rc = read_clone(o, args, &rec, err)) != 0)
        return rc;
    aicp_stamp_make(ctx, args, stamp, sizeof(stamp));
    set_results(ctx, rec);
    *current = json_pack("{s:o?, s:s}", "record", rec, "stamp", stamp);
    if (*current == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    return 0;
}

static int create_plan(const json_t *current, const struct aicp_args *args, json_t *after,
                       json_t **plan)
{
    const char *ps = aicp_args_str(args, "parent_snapshot");
    const char *pv = aicp_args_str(args, "parent_vserver");
    const char *jp = aicp_args_str(args, "junction_path");
    json_t *clone = json_pack("{s:b, s:{s:s}}", "is_flexclone", 1, "parent_volume", "name",
                              aicp_args_str(args, "parent_volume"));
    json_t *body = json_pack("{s:s, s:{s:s}}", "name", aicp_args_str(args, "name"), "svm", "name",
                             aicp_args_str(args, "vserver"));
    json_t *nas = json_object();
    const char *comment = aicp_args_str(args, "comment");

    if (ps != NULL)
        json_object_set_new(clone, "parent_snapshot", json_pack("{s:s}", "name", ps));
    if (pv != NULL)
        json_object_set_new(clone, "parent_svm", json_pack("{s:s}", "name", pv));
    if (jp != NULL)
        json_object_set_new(nas, "path", json_string(jp));
    if (aicp_args_get(args, "uid") != NULL)
        json_object_set_new(nas, "uid", json_integer(aicp_args_int(args, "uid", 0)));
    if (aicp_args_get(args, "gid") != NULL)
        json_object_set_new(nas, "gid", json_integer(aicp_args_int(args, "gid", 0)));
    json_object_set_new(body, "clone", clone);
    if (json_object_size(nas) > 0)
        json_object_set(body, "nas", nas);
    {
        json_t *c = aicp_stamp_join(comment, comment ? strlen(comment) : 0,
                                    json_string_value(json_object_get(current, "stamp")));
        if (c != NULL && json_string_length(c) > 0)
            json_object_set_new(body, "comment", c);
        else
            json_decref(c);
    }
    json_decref(nas);

    json_object_set_new(after, "state", json_string("present"));
    json_object_set_new(after, "clone.parent_volume.name",
                        json_string(aicp_args_str(args, "parent_volume")));
    if (ps != NULL)
        json_object_set_new(after, "clone.parent_snapshot.name", json_string(ps));
    if (jp != NULL)
        json_object_set_new(after, "nas.path", json_string(jp));
    if (aicp_args_bool(args, "split", 0))
        json_object_set_new(after, "clone.split_initiated", json_true());
    *plan = json_pack("{s:s, s:o, s:b}", "action", "create", "body", body, "split",
                      aicp_args_bool(args, "split", 0));
    return *plan == NULL ? AICP_ENOMEM : 0;
}

/* Whether rec is the clone the task describes; else a message why not. */
static int same_clone(const json_t *rec, const struct aicp_args *args, struct aicp_err *err)
{
    const char *name = aicp_args_str(args, "name");
    const char *parent = aicp_args_str(args, "parent_volume");
    const char *ps = aicp_args_str(args, "parent_snapshot");
    const char *pv = aicp_args_str(args, "parent_vserver");
    const char *have_parent = jstr(rec, "clone.parent_volume.name");
    const char *have_ps = jstr(rec, "clone.parent_snapshot.name");
    const char *have_pv = jstr(rec, "clone.parent_svm.name");

    if (!json_is_true(jpath(rec, "clone.is_flexclone"))) {
        /* A split clone is an independent volume: what split: true asked. */
        if (aicp_args_bool(args, "split", 0))
            return 0;
        return aicp_err_set(err, AICP_EFAILED, "volume %s exists and is not a FlexClone of %s",
                            name, parent);
    }
    if (have_parent != NULL && strcmp(have_parent, parent) != 0)
        return aicp_err_set(err, AICP_EFAILED,
                            "volume %s exists and is a FlexClone of %s, not of %s", name,
                            have_parent, parent);
    if (ps != NULL && have_ps != NULL && strcmp(ps, have_ps) != 0)
        return aicp_err_set(err, AICP_EFAILED,
                            "FlexClone %s was cloned from Snapshot copy %s of %s, not %s; a clone "
                            "cannot be re-based (delete it and clone again)",
                            name, have_ps, parent, ps);
    if (pv != NULL && have_pv != NULL && strcmp(pv, have_pv) != 0)
        return aicp_err_set(err, AICP_EFAILED,
                            "FlexClone %s has its parent in SVM %s, not %s", name, have_pv, pv);
    return 0;
}

static int clone_diff(const json_t *current, const struct aicp_args *args,
                      struct aicp_change **change, struct aicp_err *err)
{
    struct aicp_change *c = NULL;
    const json_t *rec = json_object_get(current, "record");
    const char *name = aicp_args_str(args, "name");
    json_t *before = json_object(), *after = json_object(), *body = NULL, *plan = NULL;
    int rc;

    *change = NULL;
    if (before == NULL || after == NULL || aicp_change_new(&c) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (is_absent(args)) {
        if (!json_is_object(rec))
            goto done;
        if (!json_is_true(jpath(rec, "clone.is_flexclone")) &&
            !json_is_true(jpath(rec, "clone.split_initiated"))) {
            rc = aicp_err_set(err, AICP_EFAILED,
                              "volume %s is not a FlexClone; ontap_clone does not delete it "
                              "(ontap_volume does)",
                              name);
            goto out;
        }
        json_object_set_new(before, "state", json_string("present"));
        json_object_set_new(after, "state", json_string("absent"));
        plan = json_pack("{s:s, s:O, s:O?, s:O?}", "action", "delete", "uuid",
                         json_object_get(rec, "uuid"), "path", jpath(rec, "nas.path"), "online",
                         json_object_get(rec, "state"));
    } else if (!json_is_object(rec)) {
        if (create_plan(current, args, after, &plan) != 0) {
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
        json_object_set_new(before, "state", json_string("absent"));
    } else {
        if ((rc = same_clone(rec, args, err)) != 0)
            goto out;
        body = json_object();
        const char *jp = aicp_args_str(args, "junction_path");
        const char *have_jp = jstr(rec, "nas.path");
        if (jp != NULL && json_is_object(json_object_get(rec, "nas")) &&
            strcmp(jp, have_jp ? have_jp : "") != 0) {
            json_object_set_new(body, "nas", json_pack("{s:s}", "path", jp));
            json_object_set_new(before, "nas.path", json_string(have_jp ? have_jp : ""));
            json_object_set_new(after, "nas.path", json_string(jp));
        }
        static const char *const ids[] = {"uid", "gid"};
        for (int i = 0; i < 2; i++) {
            char p[16];
            snprintf(p, sizeof(p), "nas.%s", ids[i]);
            const json_t *h = jpath(rec, p);
            long long w = aicp_args_int(args, ids[i], -1);
            if (aicp_args_get(args, ids[i]) == NULL || !json_is_integer(h) ||
                json_integer_value(h) == w)
                continue;
            json_t *nas = json_object_get(body, "nas");
            if (nas == NULL) {
                nas = json_object();
                json_object_set_new(body, "nas", nas);
            }
            json_object_set_new(nas, ids[i], json_integer(w));
            json_object_set(before, p, (json_t *)h);
            json_object_set_new(after, p, json_integer(w));
        }
        int split = aicp_args_bool(args, "split", 0) &&
                    json_is_true(jpath(rec, "clone.is_flexclone")) &&
                    !json_is_true(jpath(rec, "clone.split_initiated"));
        if (split) {
            json_object_set_new(before, "clone.split_initiated", json_false());
            json_object_set_new(after, "clone.split_initiated", json_true());
        }
        /* The comment: the user's part is compared, aicp's stamp never;
         * the stamp is renewed with any change the clone gets. */
        const char *cm = aicp_args_str(args, "comment");
        const char *have_cm = jstr(rec, "comment");
        /* Without provenance a change is not stamped (as before it
         * existed): the run's stamp goes only on what aicp creates. */
        const char *stamp = aicp_args_str(args, "provenance") != NULL
                                ? json_string_value(json_object_get(current, "stamp"))
                                : "";
        size_t hlen = aicp_stamp_split(have_cm, NULL, 0);
        int differs = cm != NULL &&
                      (strlen(cm) != hlen || strncmp(cm, have_cm ? have_cm : "", hlen) != 0);
        if (differs) {
            json_object_set_new(before, "comment", json_stringn(have_cm ? have_cm : "", hlen));
            json_object_set_new(after, "comment", json_string(cm));
        }
        if (differs || ((json_object_size(body) > 0 || split) && stamp != NULL && stamp[0]))
            json_object_set_new(body, "comment",
                                cm != NULL ? aicp_stamp_join(cm, strlen(cm), stamp)
                                           : aicp_stamp_join(have_cm, hlen, stamp));
        if (json_object_size(body) == 0 && !split)
            goto done;
        plan = json_pack("{s:s, s:O, s:O, s:b}", "action", "modify", "uuid",
                         json_object_get(rec, "uuid"), "body", body, "split", split);
    }
    if (plan == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "clone %s: the record has no uuid", name);
        goto out;
    }
    c->needed = 1;
    c->plan = plan;
    c->before = before;
    c->after = after;
    before = after = NULL;
done:
    *change = c;
    c = NULL;
    rc = 0;
out:
    json_decref(before);
    json_decref(after);
    json_decref(body);
    aicp_change_free(c);
    return rc;
}

/* A job that vanished is left to the verify re-check, which reads the
 * clone and decides from its state. */
static int call(struct aicp_ontap *o, const char *method, const char *path, const json_t *body,
                double tmo, struct aicp_err *err)
{
    int rc = aicp_ontap_call(o, method, path, NULL, body, tmo, NULL, err);
    if (rc == AICP_ENOTFOUND && strcmp(method, "DELETE") != 0) {
        aicp_err_clear(err);
        return 0;
    }
    return rc;
}

static int clone_apply(struct aicp_ctx *ctx, const struct aicp_change *change,
                       struct aicp_err *err)
{
    const struct aicp_args *args = change->args;
    const json_t *plan = change->plan;
    const char *action = json_string_value(json_object_get(plan, "action"));
    const char *name = aicp_args_str(args, "name");
    double tmo = (double)aicp_args_int(args, "time_out", 180);
    struct aicp_ontap *o = NULL;
    struct aicp_buf path = AICP_BUF_INIT;
    json_t *rec = NULL, *body = NULL;
    int rc;

    if (!change->needed || action == NULL)
        return 0;
    if ((rc = aicp_ou_client(ctx, args, &o, err)) != 0)
        goto out;
    if (strcmp(action, "create") == 0) {
        if ((rc = call(o, "POST", CLONE_API, json_object_get(plan, "body"), tmo, err)) != 0 ||
            (rc = read_clone(o, args, &rec, err)) != 0)
            goto out;
        if (rec == NULL) {
            rc = aicp_err_set(err, AICP_EREMOTE, "not in SVM %s after the change",
                              aicp_args_str(args, "vserver"));
            goto out;
        }
    }
    const char *uuid = json_string_value(json_object_get(rec ? rec : plan, "uuid"));
    if (uuid == NULL || aicp_buf_printf(&path, CLONE_API "/%s", uuid) != 0) {
        rc = aicp_err_set(err, AICP_EREMOTE, "no uuid for the clone");
        goto out;
    }
    if (strcmp(action, "delete") == 0) {
        const char *jp = json_string_value(json_object_get(plan, "path"));
        const char *st = json_string_value(json_object_get(plan, "online"));
        if (jp != NULL && *jp != '\0') {
            body = json_pack("{s:{s:s}}", "nas", "path", "");
            if ((rc = call(o, "PATCH", path.data, body, tmo, err)) != 0)
                goto out;
        }
        if (st == NULL || !aicp_ontap_enum_eq(st, "offline")) {
            json_decref(body);
            body = json_pack("{s:s}", "state", "offline");
            if ((rc = call(o, "PATCH", path.data, body, tmo, err)) != 0)
                goto out;
        }
        rc = aicp_ontap_call(o, "DELETE", path.data, NULL, NULL, tmo, NULL, err);
        if (rc == AICP_ENOTFOUND) {
            aicp_err_clear(err);
            if ((rc = read_clone(o, args, &rec, err)) == 0 && rec != NULL)
                rc = aicp_err_set(err, AICP_EREMOTE,
                                  "the delete job vanished and the clone is still there");
        }
        if (rc == 0)
            set_results(ctx, NULL);
        goto out;
    }
    const json_t *b = json_object_get(plan, "body");
    if (strcmp(action, "modify") == 0 && json_object_size(b) > 0 &&
        (rc = call(o, "PATCH", path.data, b, tmo, err)) != 0)
        goto out;
    if (json_is_true(json_object_get(plan, "split"))) {
        body = json_pack("{s:{s:b}}", "clone", "split_initiated", 1);
        if ((rc = call(o, "PATCH", path.data, body, tmo, err)) != 0)
            goto out;
    }
    json_decref(rec);
    rec = NULL;
    if ((rc = read_clone(o, args, &rec, err)) != 0)
        goto out;
    set_results(ctx, rec);
out:
    if (rc != 0)
        aicp_err_prefix(err, "clone %s", name);
    aicp_buf_free(&path);
    json_decref(rec);
    json_decref(body);
    return rc;
}

static const struct aicp_module_ops clone_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = clone_check,
    .diff = clone_diff,
    .apply = clone_apply,
};

const struct aicp_module aicp_mod_ontap_clone = {
    .name = "ontap_clone",
    .summary = "ONTAP FlexClone of a volume (optionally of a Snapshot copy); split on request",
    .args = clone_args,
    .flags = AICP_MOD_NEEDS_ONTAP,
    .ops = &clone_ops,
};
