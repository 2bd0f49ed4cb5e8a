/* The ontap_snapshot module: a Snapshot copy of an ONTAP volume, over the
 * REST API (/api/storage/volumes/{uuid}/snapshots): create, rename
 * (from_name), change comment / SnapMirror label / expiry time, delete.
 * Arguments are named as netapp.ontap's na_ontap_snapshot names them. It
 * converges: fields the task does not give are left alone, expiry times are
 * compared as instants (ONTAP may write the zone differently), and a
 * rename whose old name is gone while the new one exists is done, not
 * repeated. A rename from a name that does not exist fails, as the
 * collection does: creating a fresh snapshot under the new name would
 * silently lose the point in time the task meant (traceability). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "module.h"
#include "ontap.h"
#include "ontap_stamp.h"
#include "ontaputil.h"
#include "util.h"

#define SNAP_FIELDS "uuid,name,comment,snapmirror_label,expiry_time,create_time"

static const struct aicp_arg_spec snap_args[] = {
    AICP_OU_CONN_ARGS,
    {.name = "snapshot",
     .type = AICP_ARG_STR,
     .required = 1,
     .aliases = "name",
     .help = "The snapshot's name (the new name when renaming)."},
    {.name = "from_name",
     .type = AICP_ARG_STR,
     .help = "Rename the snapshot of this name to `snapshot`. Fails when neither exists, or "
             "when both do."},
    {.name = "volume", .type = AICP_ARG_STR, .required = 1, .help = "The volume it is of."},
    {.name = "vserver",
     .type = AICP_ARG_STR,
     .required = 1,
     .aliases = "svm",
     .help = "The SVM of the volume."},
    {.name = "comment",
     .type = AICP_ARG_STR,
     .help = "Comment (at most 255 characters with the stamp). Compared without aicp's "
             "provenance stamp (\" [aicp ...]\"). Without provenance it is written as given; "
             "when absent, a new snapshot gets the run's stamp."},
    {.name = "provenance",
     .type = AICP_ARG_STR,
     .help = "Who changes the snapshot (\"site=NAME run=ID\"): written after the comment as "
             "\" [aicp site=NAME run=ID]\" on create and with every other change; never a "
             "change on its own."},
    {.name = "snapmirror_label",
     .type = AICP_ARG_STR,
     .help = "SnapMirror label (at most 31 characters; ONTAP 9.7 or later)."},
    {.name = "expiry_time",
     .type = AICP_ARG_STR,
     .help = "When the snapshot expires, ISO 8601 (\"2030-01-31T12:00:00Z\", "
             "\"2030-01-31T13:00:00+01:00\"); compared as an instant."},
    {.name = "state",
     .type = AICP_ARG_STR,
     .def = "present",
     .choices = "present|absent",
     .help = "Whether the snapshot exists."},
    {.name = "wait_timeout",
     .type = AICP_ARG_INT,
     .def = "120",
     .help = "Seconds to wait for ONTAP's job of a change."},
    {.name = NULL},
};

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* "2030-01-31T12:00:00Z", "...+01:00", "...-0500", fractions ignored ->
 * seconds since the epoch. 0 on success, -1 when not that shape. */
static int iso_instant(const char *s, long long *out)
{
    int y, mo, d, h, mi, sec, n = 0;
    struct tm tm;
    long long off = 0;

    if (s == NULL || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6)
        return -1;
    s += n;
    if (*s == '.')
        for (s++; *s >= '0' && *s <= '9'; s++)
            ;
    if (*s == 'Z' || *s == 'z') {
        s++;
    } else if (*s == '+' || *s == '-') {
        int oh = 0, om = 0, m = 0;
        int sign = *s == '-' ? -1 : 1;
        if (sscanf(s + 1, "%2d:%2d%n", &oh, &om, &m) == 2 ||
            sscanf(s + 1, "%2d%2d%n", &oh, &om, &m) == 2) {
            s += 1 + m;
        } else {
            return -1;
        }
        off = sign * (oh * 3600LL + om * 60LL);
    }
    if (*s != '\0')
        return -1;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    *out = (long long)timegm(&tm) - off;
    return 0;
}

static int expiry_same(const char *a, const char *b)
{
    long long x, y;
    if (a == NULL || b == NULL)
        return a == b;
    if (iso_instant(a, &x) == 0 && iso_instant(b, &y) == 0)
        return x == y;
    return strcmp(a, b) == 0;
}

/* One declared field against the record: drift goes into before/after.
 * ONTAP leaves an unset comment, label or expiry time out of the record
 * even when fields= asks for it, so absent here means unset (every field
 * compared is one this module asked for and the cluster supports). */
static void drift_field(const struct aicp_args *args, const char *arg, const json_t *rec,
                        json_t *before, json_t *after, json_t *patch)
{
    const char *want = aicp_args_str(args, arg);
    const json_t *hv = json_object_get(rec, arg);
    const char *have = hv != NULL ? json_string_value(hv) : "";

    size_t hlen = have != NULL ? strlen(have) : 0;

    if (want == NULL)
        return;
    /* A comment is the user's part: aicp's stamp is not compared. */
    if (strcmp(arg, "comment") == 0 && have != NULL)
        hlen = aicp_stamp_split(have, NULL, 0);
    if (strcmp(arg, "expiry_time") == 0
            ? expiry_same(want, have)
            : (have != NULL && strlen(want) == hlen && strncmp(want, have, hlen) == 0))
        return;
    if (strcmp(arg, "comment") == 0 && have != NULL)
        json_object_set_new(before, arg, json_stringn(have, hlen));
    else
        json_object_set(before, arg, hv != NULL ? (json_t *)hv : json_null());
    json_object_set_new(after, arg, json_string(want));
    json_object_set_new(patch, arg, json_string(want));
}

static int snap_lookup(struct aicp_ontap *o, const char *vol_uuid, const char *name,
                       json_t **rec, struct aicp_err *err)
{
    struct aicp_buf q = AICP_BUF_INIT;
    char path[256];
    int rc;

    *rec = NULL;
    snprintf(path, sizeof(path), "/api/storage/volumes/%s/snapshots", vol_uuid);
    if (aicp_ontap_qadd(&q, "name", name) != 0) {
        aicp_buf_free(&q);
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    rc = aicp_ontap_get_one(o, path, q.data, SNAP_FIELDS, "snapshot", rec, err);
    aicp_buf_free(&q);
    return rc;
}

static int vol_lookup(struct aicp_ontap *o, const struct aicp_args *args, json_t **rec,
                      struct aicp_err *err)
{
    struct aicp_buf q = AICP_BUF_INIT;
    int rc;

    *rec = NULL;
    if (aicp_ontap_qadd(&q, "name", aicp_args_str(args, "volume")) != 0 ||
        aicp_ontap_qadd(&q, "svm.name", aicp_args_str(args, "vserver")) != 0) {
        aicp_buf_free(&q);
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    rc = aicp_ontap_get_one(o, "/api/storage/volumes", q.data, "uuid,name", "volume", rec, err);
    aicp_buf_free(&q);
    return rc;
}

/* current: {volume_uuid|null, snapshot: rec|null, from: rec|null,
 * provenance}. A volume that does not exist yet (check mode, created by an
 * earlier task of the same play) is not an error here: the create is
 * predicted, and apply fails if the volume is still missing then. */
static int snap_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                      struct aicp_err *err)
{
    struct aicp_ontap *o = NULL;
    json_t *vol = NULL, *snap = NULL, *from = NULL;
    const char *name = aicp_args_str(args, "snapshot");
    const char *from_name = aicp_args_str(args, "from_name");
    char stamp[AICP_STAMP_MAX];
    int rc;

    *current = NULL;
    if ((rc = aicp_ou_client(ctx, args, &o, err)) != 0)
        goto out;
    if (aicp_args_str(args, "snapmirror_label") != NULL &&
        (rc = aicp_ontap_require(o, 9, 7, "snapshot snapmirror_label", err)) != 0)
        goto out;
    if ((rc = vol_lookup(o, args, &vol, err)) != 0)
        goto out;
    if (vol != NULL) {
        const char *vu = jstr(vol, "uuid");
        if (vu == NULL) {
            rc = aicp_err_set(err, AICP_EREMOTE, "volume %s in SVM %s: ONTAP gave no uuid",
                              aicp_args_str(args, "volume"), aicp_args_str(args, "vserver"));
            goto out;
        }
        if ((rc = snap_lookup(o, vu, name, &snap, err)) != 0)
            goto out;
        if (from_name != NULL && strcmp(from_name, name) != 0 &&
            (rc = snap_lookup(o, vu, from_name, &from, err)) != 0)
            goto out;
    }
    aicp_stamp_make(ctx, args, stamp, sizeof(stamp));
    *current = json_pack("{s:O?, s:O?, s:O?, s:s}", "volume_uuid", json_object_get(vol, "uuid"),
                         "snapshot", snap, "from", from, "stamp", stamp);
    if (*current == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (ctx->result != NULL) {
        if (snap != NULL)
            json_object_set(ctx->result, "snapshot", snap);
        else
            json_object_del(ctx->result, "snapshot");
        aicp_stamp_report(ctx->result, jstr(snap, "comment"));
    }
    rc = 0;
out:
    json_decref(vol);
    json_decref(snap);
    json_decref(from);
    return rc;
}

static int snap_diff(const json_t *current, const struct aicp_args *args,
                     struct aicp_change **change, struct aicp_err *err)
{
    struct aicp_change *c = NULL;
    const json_t *snap = json_object_get(current, "snapshot");
    const json_t *from = json_object_get(current, "from");
    const char *name = aicp_args_str(args, "snapshot");
    const char *from_name = aicp_args_str(args, "from_name");
    const char *vol = aicp_args_str(args, "volume");
    const char *state = aicp_args_str(args, "state");
    json_t *before = json_object(), *after = json_object(), *body = json_object();
    const char *action = NULL, *uuid = NULL;
    int rc;

    *change = NULL;
    if (before == NULL || after == NULL || body == NULL || aicp_change_new(&c) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (state != NULL && strcmp(state, "absent") == 0) {
        if (json_is_object(snap)) {
            action = "delete";
            uuid = jstr(snap, "uuid");
            json_object_set_new(before, "state", json_string("present"));
            json_object_set_new(after, "state", json_string("absent"));
        }
    } else if (json_is_object(snap)) {
        if (json_is_object(from)) {
            rc = aicp_err_set(err, AICP_EFAILED,
                              "cannot rename snapshot %s to %s on volume %s: both exist "
                              "(delete one, or drop from_name)",
                              from_name, name, vol);
            goto out;
        }
        drift_field(args, "comment", snap, before, after, body);
        drift_field(args, "snapmirror_label", snap, before, after, body);
        drift_field(args, "expiry_time", snap, before, after, body);
        if (json_object_size(body) > 0) {
            action = "modify";
            uuid = jstr(snap, "uuid");
        }
    } else if (from_name != NULL && strcmp(from_name, name) != 0) {
        if (!json_is_object(from)) {
            rc = aicp_err_set(err, AICP_EFAILED,
                              "Error renaming snapshot: %s - no snapshot with this name exists "
                              "on volume %s (nor one called %s)",
                              from_name, vol, name);
            goto out;
        }
        action = "rename";
        uuid = jstr(from, "uuid");
        json_object_set_new(before, "name", json_string(from_name));
        json_object_set_new(after, "name", json_string(name));
        json_object_set_new(body, "name", json_string(name));
        drift_field(args, "comment", from, before, after, body);
        drift_field(args, "snapmirror_label", from, before, after, body);
        drift_field(args, "expiry_time", from, before, after, body);
    } else {
        static const char *const keys[] = {"comment", "snapmirror_label", "expiry_time", NULL};
        action = "create";
        json_object_set_new(body, "name", json_string(name));
        for (int i = 0; keys[i] != NULL; i++)
            if (aicp_args_str(args, keys[i]) != NULL)
                json_object_set_new(body, keys[i], json_string(aicp_args_str(args, keys[i])));
        {
            const char *cm = aicp_args_str(args, "comment");
            json_t *cj = aicp_stamp_join(cm, cm ? strlen(cm) : 0, jstr(current, "stamp"));
            if (cj != NULL && json_string_length(cj) > 0)
                json_object_set_new(body, "comment", cj);
            else
                json_decref(cj);
        }
        json_object_set_new(before, "state", json_string("absent"));
        json_object_set_new(after, "state", json_string("present"));
        json_object_update(after, body);
    }
    /* A change renews the stamp, keeping the user's part of the comment
     * (only with provenance: without it a change is not stamped, as before
     * the argument existed). */
    if (action != NULL && (strcmp(action, "modify") == 0 || strcmp(action, "rename") == 0) &&
        aicp_args_str(args, "provenance") != NULL &&
        jstr(current, "stamp") != NULL && jstr(current, "stamp")[0] != '\0') {
        const json_t *rec = strcmp(action, "modify") == 0 ? snap : from;
        const char *cm = json_object_get(body, "comment") != NULL ? jstr(body, "comment")
                                                                   : jstr(rec, "comment");
        size_t len = json_object_get(body, "comment") != NULL ? strlen(cm)
                                                               : aicp_stamp_split(cm, NULL, 0);
        json_object_set_new(body, "comment", aicp_stamp_join(cm, len, jstr(current, "stamp")));
    }
    if (action != NULL) {
        c->needed = 1;
        c->before = before;
        c->after = after;
        before = after = NULL;
        c->plan = json_pack("{s:s, s:O?, s:s?, s:O}", "action", action, "volume_uuid",
                            json_object_get(current, "volume_uuid"), "uuid", uuid, "body", body);
        if (c->plan == NULL) {
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
    }
    *change = c;
    c = NULL;
    rc = 0;
out:
    aicp_change_free(c);
    json_decref(before);
    json_decref(after);
    json_decref(body);
    return rc;
}

/* Whether rec is what the plan wanted: used after a job vanished, when only
 * the resource's state can say whether the change happened. */
static int snap_matches(const json_t *rec, const char *action, const json_t *body)
{
    const char *k;
    json_t *v;

    if (strcmp(action, "delete") == 0)
        return rec == NULL;
    if (rec == NULL)
        return 0;
    json_object_foreach((json_t *)body, k, v) {
        const char *have = json_object_get(rec, k) != NULL ? jstr(rec, k) : "";
        if (strcmp(k, "expiry_time") == 0 ? !expiry_same(json_string_value(v), have)
                                          : (have == NULL || strcmp(have, json_string_value(v)) != 0))
            return 0;
    }
    return 1;
}

static int snap_apply(struct aicp_ctx *ctx, const struct aicp_change *change, struct aicp_err *err)
{
    const struct aicp_args *args = change->args;
    const json_t *plan = change->plan;
    const char *action = jstr(plan, "action");
    const char *vu = jstr(plan, "volume_uuid");
    const char *uuid = jstr(plan, "uuid");
    const json_t *body = json_object_get(plan, "body");
    const char *name = aicp_args_str(args, "snapshot");
    double timeout = (double)aicp_args_int(args, "wait_timeout", 120);
    struct aicp_ontap *o = NULL;
    json_t *vol = NULL, *rec = NULL;
    char path[384];
    int rc;

    if (action == NULL) {
        rc = aicp_err_set(err, AICP_EINVAL, "ontap_snapshot: no action planned");
        goto out;
    }
    if ((rc = aicp_ou_client(ctx, args, &o, err)) != 0)
        goto out;
    if (vu == NULL) {
        /* Planned in check mode before the volume existed: it must exist now. */
        if ((rc = vol_lookup(o, args, &vol, err)) != 0)
            goto out;
        if ((vu = jstr(vol, "uuid")) == NULL) {
            rc = aicp_err_set(err, AICP_EFAILED, "volume %s does not exist in SVM %s",
                              aicp_args_str(args, "volume"), aicp_args_str(args, "vserver"));
            goto out;
        }
    }
    if (strcmp(action, "create") == 0) {
        snprintf(path, sizeof(path), "/api/storage/volumes/%s/snapshots", vu);
        rc = aicp_ontap_call(o, "POST", path, NULL, body, timeout, NULL, err);
    } else if (uuid == NULL) {
        rc = aicp_err_set(err, AICP_EREMOTE, "snapshot %s: ONTAP gave no uuid", name);
        goto out;
    } else {
        snprintf(path, sizeof(path), "/api/storage/volumes/%s/snapshots/%s", vu, uuid);
        rc = aicp_ontap_call(o, strcmp(action, "delete") == 0 ? "DELETE" : "PATCH", path, NULL,
                             strcmp(action, "delete") == 0 ? NULL : body, timeout, NULL, err);
    }
    if (rc != 0 && rc != AICP_ENOTFOUND)
        goto out;
    {
        /* Read back: the result's record, and after a vanished job (or a
         * 404 on a delete) the only word on whether the change happened. */
        struct aicp_err e2 = {0};
        int vanished = rc == AICP_ENOTFOUND;
        char why[512];
        snprintf(why, sizeof(why), "%.400s", vanished && err != NULL ? err->msg : "");
        if ((rc = snap_lookup(o, vu, name, &rec, &e2)) != 0) {
            if (err != NULL)
                *err = e2;
            goto out;
        }
        if (vanished && !snap_matches(rec, action, body)) {
            rc = aicp_err_set(err, AICP_EFAILED,
                              "%s; re-read: snapshot %s on volume %s is not as wanted after the "
                              "%s",
                              why, name, aicp_args_str(args, "volume"), action);
            goto out;
        }
    }
    if (ctx->result != NULL) {
        if (rec != NULL)
            json_object_set(ctx->result, "snapshot", rec);
        else
            json_object_del(ctx->result, "snapshot");
        aicp_stamp_report(ctx->result, jstr(rec, "comment"));
    }
    rc = 0;
out:
    json_decref(vol);
    json_decref(rec);
    return rc;
}

static const struct aicp_module_ops snap_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = snap_check,
    .diff = snap_diff,
    .apply = snap_apply,
};

const struct aicp_module aicp_mod_ontap_snapshot = {
    .name = "ontap_snapshot",
    .summary = "ONTAP Snapshot copy of a volume: create, rename, comment/label/expiry, delete",
    .args = snap_args,
    .flags = AICP_MOD_NEEDS_ONTAP,
    .ops = &snap_ops,
};
