/* The ontap_snapmirror module: a SnapMirror relationship, found by its
 * destination path, driven to a desired state over the REST API
 * (/api/snapmirror/relationships). The task names the state it wants
 * (snapmirrored, paused, broken_off, absent; or netapp.ontap's
 * state/relationship_state pair) and the module computes the transitions
 * from the state ONTAP reports: create (optionally with the destination
 * volume), initialize, quiesce, break, resume, resync, delete (breaking
 * first, as the collection does; ONTAP releases the source side when it
 * deletes at the destination). Each transition waits until ONTAP reports
 * the state it leads to, so the executor's re-check sees a converged
 * relationship. Lag and health are read and always reported in the
 * result; a relationship that should be snapmirrored or paused and is
 * unhealthy is drift, and so is a snapmirrored one lagging more than
 * max_lag. Apply heals a snapmirrored one with an update transfer (once
 * any running transfer ends) and fails with ONTAP's reason when that does
 * not make it healthy; a paused one is not transferred to (that would undo
 * the pause): its unhealthiness fails the task with the reason. Unlike
 * the collection's `update: true`, nothing is "always changed" unless the
 * task asks for an unconditional transfer. */
#include "config.h"

#include <ctype.h>
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

#define SM_PATH "/api/snapmirror/relationships"
#define SM_FIELDS                                                                                  \
    "uuid,source.path,destination.path,policy.name,state,healthy,lag_time,transfer.state,"       \
    "unhealthy_reason"

static const struct aicp_arg_spec sm_args[] = {
    AICP_OU_CONN_ARGS,
    {.name = "source_endpoint",
     .type = AICP_ARG_DICT,
     .help = "The source: {path: \"svm:volume\", cluster: NAME}."},
    {.name = "destination_endpoint",
     .type = AICP_ARG_DICT,
     .help = "The destination: {path: \"svm:volume\", cluster: NAME}. The relationship is found "
             "by this path."},
    {.name = "source_path", .type = AICP_ARG_STR, .help = "The source as \"svm:volume\"."},
    {.name = "destination_path",
     .type = AICP_ARG_STR,
     .help = "The destination as \"svm:volume\"."},
    {.name = "source_vserver", .type = AICP_ARG_STR, .help = "The source SVM (with source_volume)."},
    {.name = "source_volume", .type = AICP_ARG_STR, .help = "The source volume."},
    {.name = "destination_vserver",
     .type = AICP_ARG_STR,
     .help = "The destination SVM (with destination_volume)."},
    {.name = "destination_volume", .type = AICP_ARG_STR, .help = "The destination volume."},
    {.name = "policy",
     .type = AICP_ARG_STR,
     .help = "SnapMirror policy (e.g. MirrorAllSnapshots); changed in place."},
    {.name = "schedule",
     .type = AICP_ARG_STR,
     .aliases = "transfer_schedule",
     .help = "Transfer schedule (ONTAP 9.11 or later over REST); changed in place."},
    {.name = "max_transfer_rate",
     .type = AICP_ARG_INT,
     .help = "Throttle in KB/s (0: unlimited); changed in place (ONTAP 9.8 or later over "
             "REST)."},
    {.name = "identity_preservation",
     .type = AICP_ARG_STR,
     .choices = "full|exclude_network_config|exclude_network_and_protocol_config",
     .help = "SVM DR identity preservation (ONTAP 9.11 or later), at create."},
    {.name = "create_destination",
     .type = AICP_ARG_DICT,
     .help = "{enabled: true, storage_service: {...}, tiering: {...}}: ONTAP creates the "
             "destination (DP) volume with the relationship (ONTAP 9.7 or later)."},
    {.name = "provenance",
     .type = AICP_ARG_STR,
     .help = "Who creates the relationship (\"site=NAME run=ID\"): the destination volume "
             "that create_destination makes gets the comment \"[aicp site=NAME run=ID]\"."},
    {.name = "initialize",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .help = "With state present: initialize (baseline transfer) a new relationship."},
    {.name = "relationship_state",
     .type = AICP_ARG_STR,
     .def = "active",
     .choices = "active|broken",
     .help = "With state present (netapp.ontap's form): active = snapmirrored, broken = "
             "broken_off."},
    {.name = "state",
     .type = AICP_ARG_STR,
     .def = "present",
     .choices = "present|absent|snapmirrored|paused|broken_off",
     .help = "The relationship's desired state; present follows relationship_state and "
             "initialize."},
    {.name = "update",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Without max_lag: start a transfer on every run when the relationship is "
             "snapmirrored (reported changed). With max_lag it adds nothing: a lag past it is "
             "healed by a transfer anyway."},
    {.name = "max_lag",
     .type = AICP_ARG_STR,
     .help = "Largest acceptable lag (\"PT1H\", \"3600\" seconds): a snapmirrored relationship "
             "lagging more is drift, and apply starts a transfer."},
    {.name = "transferring_time_out",
     .type = AICP_ARG_INT,
     .def = "300",
     .help = "Seconds to wait for each transition (initialize, quiesce...) to finish."},
    {.name = NULL},
};

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static const json_t *jpath(const json_t *o, const char *a, const char *b)
{
    return json_object_get(json_object_get(o, a), b);
}

/* ISO 8601 duration ("PT1H2M3S", "P1DT2H", "PT0.5S") or plain seconds ->
 * seconds; -1 when neither. */
static double duration_s(const char *s)
{
    double total = 0;
    int in_time = 0, any = 0;
    char *end;

    if (s == NULL || *s == '\0')
        return -1;
    if (isdigit((unsigned char)*s)) {
        double v = strtod(s, &end);
        return *end == '\0' ? v : -1;
    }
    if (*s != 'P')
        return -1;
    for (s++; *s != '\0';) {
        if (*s == 'T') {
            in_time = 1;
            s++;
            continue;
        }
        double v = strtod(s, &end);
        if (end == s)
            return -1;
        switch (*end) {
        case 'Y': total += v * 365 * 86400; break;
        case 'W': total += v * 7 * 86400; break;
        case 'D': total += v * 86400; break;
        case 'H': total += v * 3600; break;
        case 'M': total += in_time ? v * 60 : v * 30 * 86400; break;
        case 'S': total += v; break;
        default: return -1;
        }
        any = 1;
        s = end + 1;
    }
    return any ? total : -1;
}

/* "svm:volume" of an endpoint from any of the collection's forms. */
static int endpoint_path(const struct aicp_args *args, const char *side, char *buf, size_t cap)
{
    char k1[64], k2[64], k3[64];
    const char *p, *sv, *vol;

    snprintf(k1, sizeof(k1), "%s_endpoint", side);
    p = jstr(aicp_args_get(args, k1), "path");
    if (p == NULL) {
        snprintf(k1, sizeof(k1), "%s_path", side);
        p = aicp_args_str(args, k1);
    }
    if (p != NULL) {
        snprintf(buf, cap, "%s", p);
        return 0;
    }
    snprintf(k2, sizeof(k2), "%s_vserver", side);
    snprintf(k3, sizeof(k3), "%s_volume", side);
    sv = aicp_args_str(args, k2);
    vol = aicp_args_str(args, k3);
    if (sv == NULL || vol == NULL)
        return -1;
    snprintf(buf, cap, "%s:%s", sv, vol);
    return 0;
}

/* The state the task wants, given the one ONTAP reports (cur). */
static const char *target_state(const struct aicp_args *args, const char *cur)
{
    const char *st = aicp_args_str(args, "state");
    if (st != NULL && strcmp(st, "present") != 0)
        return st;
    if (aicp_ontap_enum_eq(aicp_args_str(args, "relationship_state"), "broken"))
        return "broken_off";
    if (!aicp_args_bool(args, "initialize", 1) &&
        (strcmp(cur, "absent") == 0 || strcmp(cur, "uninitialized") == 0))
        return "uninitialized";
    return "snapmirrored";
}

/* The state name aicp plans from: synchronous relationships' in_sync and
 * friends are the snapmirrored of SnapMirror Sync; an uninitialized
 * relationship with a transfer running is being initialized. */
static const char *plan_state(const json_t *rel)
{
    const char *s, *ts;
    if (rel == NULL)
        return "absent";
    s = jstr(rel, "state");
    ts = json_string_value(jpath(rel, "transfer", "state"));
    if (s == NULL)
        return "unknown";
    if (strcmp(s, "in_sync") == 0 || strcmp(s, "out_of_sync") == 0 ||
        strcmp(s, "synchronizing") == 0)
        return "snapmirrored";
    if (strcmp(s, "uninitialized") == 0 && ts != NULL &&
        (strcmp(ts, "transferring") == 0 || strcmp(ts, "queued") == 0))
        return "initializing";
    return s;
}

/* Appends to actions the transitions from cur to tgt. -1 when there is no
 * way (ONTAP cannot un-initialize a relationship). */
static int plan_path(json_t *actions, const char *cur, const char *tgt, int depth)
{
#define ADD(a) json_array_append_new(actions, json_string(a))
    if (depth > 6)
        return -1;
    if (strcmp(cur, tgt) == 0)
        return 0;
    if (strcmp(cur, "absent") == 0) {
        ADD("create");
        return plan_path(actions, "uninitialized", tgt, depth + 1);
    }
    if (strcmp(cur, "initializing") == 0) {
        ADD("wait");
        return plan_path(actions, "snapmirrored", tgt, depth + 1);
    }
    if (strcmp(cur, "uninitialized") == 0) {
        if (strcmp(tgt, "absent") == 0) {
            ADD("delete");
            return 0;
        }
        ADD("initialize");
        return plan_path(actions, "snapmirrored", tgt, depth + 1);
    }
    if (strcmp(cur, "snapmirrored") == 0) {
        if (strcmp(tgt, "uninitialized") == 0)
            return -1;
        ADD("quiesce");
        return plan_path(actions, "paused", tgt, depth + 1);
    }
    if (strcmp(cur, "paused") == 0) {
        if (strcmp(tgt, "snapmirrored") == 0) {
            ADD("resume");
            return 0;
        }
        if (strcmp(tgt, "uninitialized") == 0)
            return -1;
        ADD("break");
        return plan_path(actions, "broken_off", tgt, depth + 1);
    }
    if (strcmp(cur, "broken_off") == 0) {
        if (strcmp(tgt, "absent") == 0) {
            ADD("delete");
            return 0;
        }
        if (strcmp(tgt, "uninitialized") == 0)
            return -1;
        ADD("resync");
        return plan_path(actions, "snapmirrored", tgt, depth + 1);
    }
    return -1;
#undef ADD
}

static void set_or_del(json_t *o, const char *k, const json_t *v)
{
    if (v != NULL)
        json_object_set(o, k, (json_t *)v);
    else
        json_object_del(o, k);
}

static void set_or_null(json_t *o, const char *k, const json_t *v)
{
    json_object_set(o, k, v != NULL ? (json_t *)v : json_null());
}

/* ONTAP's unhealthy_reason ([{message, code}...], outermost first) as one
 * line, into buf. */
static void reason_text(const json_t *rel, char *buf, size_t cap)
{
    const json_t *r = json_object_get(rel, "unhealthy_reason");
    size_t used = 0, i;
    json_t *e;

    buf[0] = '\0';
    if (json_is_string(r)) {
        snprintf(buf, cap, "%s", json_string_value(r));
        return;
    }
    json_array_foreach(r, i, e) {
        const char *m = json_is_string(e) ? json_string_value(e) : jstr(e, "message");
        const char *code = jstr(e, "code");
        int w;
        if (m == NULL)
            continue;
        w = snprintf(buf + used, cap - used, "%s%s%s%s%s", used ? "; " : "", m,
                     code ? " (" : "", code ? code : "", code ? ")" : "");
        if (w < 0 || (size_t)w >= cap - used)
            break;
        used += (size_t)w;
    }
    if (buf[0] == '\0')
        snprintf(buf, cap, "ONTAP gave no reason");
}

static int is_unhealthy(const json_t *rel)
{
    return rel != NULL && json_is_false(json_object_get(rel, "healthy"));
}

/* 1 when the task sets max_lag and the relationship lags more. */
static int lag_exceeded(const struct aicp_args *args, const json_t *rel)
{
    const char *max_lag = aicp_args_str(args, "max_lag");
    const char *lag = jstr(rel, "lag_time");
    double lim = max_lag ? duration_s(max_lag) : -1;
    return lim >= 0 && lag != NULL && duration_s(lag) > lim;
}

/* Sets the result keys from a relationship record (NULL: none). */
static void set_result(json_t *result, const json_t *rel, const json_t *actions)
{
    if (result == NULL)
        return;
    if (rel != NULL && json_object_get(rel, "state") != NULL)
        json_object_set(result, "state", json_object_get(rel, "state"));
    else
        json_object_set_new(result, "state", json_string(rel ? "unknown" : "absent"));
    json_object_set(result, "relationship", rel ? (json_t *)rel : json_null());
    set_or_del(result, "uuid", json_object_get(rel, "uuid"));
    /* Health and lag are always there (null when ONTAP does not say), so
     * that a drift report and a `register` can rely on them. */
    set_or_null(result, "healthy", json_object_get(rel, "healthy"));
    set_or_null(result, "unhealthy_reason", json_object_get(rel, "unhealthy_reason"));
    set_or_null(result, "lag_time", json_object_get(rel, "lag_time"));
    set_or_del(result, "transfer_state", jpath(rel, "transfer", "state"));
    if (actions != NULL)
        json_object_set(result, "actions", (json_t *)actions);
}

static int sm_fields(const struct aicp_args *args, char *buf, size_t cap)
{
    return snprintf(buf, cap, "%s%s%s%s", SM_FIELDS,
                    aicp_args_get(args, "schedule") ? ",transfer_schedule.name" : "",
                    aicp_args_get(args, "max_transfer_rate") ? ",throttle" : "",
                    aicp_args_get(args, "identity_preservation") ? ",identity_preservation" : "");
}

static int sm_read(struct aicp_ontap *o, const struct aicp_args *args, const char *dest,
                   json_t **rel, struct aicp_err *err)
{
    struct aicp_buf q = AICP_BUF_INIT;
    char fields[256];
    int rc;

    *rel = NULL;
    sm_fields(args, fields, sizeof(fields));
    if (aicp_ontap_qadd(&q, "destination.path", dest) != 0) {
        aicp_buf_free(&q);
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    rc = aicp_ontap_get_one(o, SM_PATH, q.data, fields, "SnapMirror relationship", rel, err);
    aicp_buf_free(&q);
    return rc;
}

/* current: {destination, source, relationship: rec|null, stamp: the
 * comment for a destination volume create_destination makes}. */
static int sm_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                    struct aicp_err *err)
{
    struct aicp_ontap *o = NULL;
    json_t *rel = NULL;
    char dest[512], src[512], stamp[AICP_STAMP_MAX];
    int have_src, rc;

    *current = NULL;
    if (endpoint_path(args, "destination", dest, sizeof(dest)) != 0)
        return aicp_err_set(err, AICP_EINVAL,
                            "ontap_snapmirror: give destination_endpoint.path (\"svm:volume\"), "
                            "destination_path, or destination_vserver and destination_volume");
    have_src = endpoint_path(args, "source", src, sizeof(src)) == 0;
    if (!have_src && !aicp_ontap_enum_eq(aicp_args_str(args, "state"), "absent"))
        return aicp_err_set(err, AICP_EINVAL,
                            "ontap_snapmirror %s: give source_endpoint.path (\"svm:volume\"), "
                            "source_path, or source_vserver and source_volume",
                            dest);
    if ((rc = aicp_ou_client(ctx, args, &o, err)) != 0)
        return rc;
    if (aicp_args_get(args, "schedule") != NULL &&
        (rc = aicp_ontap_require(o, 9, 11, "snapmirror schedule (transfer_schedule)", err)) != 0)
        return rc;
    if (aicp_args_get(args, "identity_preservation") != NULL &&
        (rc = aicp_ontap_require(o, 9, 11, "snapmirror identity_preservation", err)) != 0)
        return rc;
    if (!aicp_ontap_enum_eq(aicp_args_str(args, "state"), "absent")) {
        const json_t *cd = aicp_args_get(args, "create_destination");
        if (json_is_true(json_object_get(cd, "enabled")) &&
            (rc = aicp_ontap_require(o, 9, 7, "snapmirror create_destination", err)) != 0)
            return rc;
        if (aicp_args_get(args, "max_transfer_rate") != NULL &&
            (rc = aicp_ontap_require(o, 9, 8, "snapmirror max_transfer_rate (throttle)", err)) !=
                0)
            return rc;
    }
    aicp_stamp_make(ctx, args, stamp, sizeof(stamp));
    if ((rc = sm_read(o, args, dest, &rel, err)) != 0)
        return rc;
    *current = json_pack("{s:s, s:s?, s:o?, s:s}", "destination", dest, "source",
                         have_src ? src : NULL, "relationship", rel, "stamp", stamp);
    if (*current == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    set_result(ctx->result, rel, NULL);
    return 0;
}

/* The in-place changes (policy, schedule, throttle) into body and
 * before/after, by argument name. */
static void sm_modify(const struct aicp_args *args, const json_t *rel, json_t *body, json_t *before,
                      json_t *after)
{
    const char *pol = aicp_args_str(args, "policy");
    const json_t *hp = jpath(rel, "policy", "name");
    const char *sch = aicp_args_str(args, "schedule");
    const json_t *hs = jpath(rel, "transfer_schedule", "name");
    const json_t *rate = aicp_args_get(args, "max_transfer_rate");
    const json_t *ht = json_object_get(rel, "throttle");

    if (pol != NULL && json_is_string(hp) && strcmp(pol, json_string_value(hp)) != 0) {
        json_object_set(before, "policy", (json_t *)hp);
        json_object_set_new(after, "policy", json_string(pol));
        json_object_set_new(body, "policy", json_pack("{s:s}", "name", pol));
    }
    /* An unset schedule is absent from the record: "" wants none. */
    if (sch != NULL && json_object_get(rel, "uuid") != NULL &&
        strcmp(sch, json_is_string(hs) ? json_string_value(hs) : "") != 0) {
        json_object_set(before, "schedule", hs ? (json_t *)hs : json_null());
        json_object_set_new(after, "schedule", json_string(sch));
        json_object_set_new(body, "transfer_schedule",
                            sch[0] ? json_pack("{s:s}", "name", sch) : json_null());
    }
    if (json_is_integer(rate) && json_is_integer(ht) &&
        json_integer_value(rate) != json_integer_value(ht)) {
        json_object_set(before, "max_transfer_rate", (json_t *)ht);
        json_object_set(after, "max_transfer_rate", (json_t *)rate);
        json_object_set(body, "throttle", (json_t *)rate);
    }
}

static json_t *endpoint_body(const struct aicp_args *args, const char *side, const char *path)
{
    char k[64];
    const char *cl;
    json_t *e = json_pack("{s:s}", "path", path);

    snprintf(k, sizeof(k), "%s_endpoint", side);
    cl = jstr(aicp_args_get(args, k), "cluster");
    if (e != NULL && cl != NULL)
        json_object_set_new(e, "cluster", json_pack("{s:s}", "name", cl));
    return e;
}

static json_t *create_body(const struct aicp_args *args, const char *src, const char *dest)
{
    const json_t *cd = aicp_args_get(args, "create_destination");
    json_t *b = json_object();

    if (b == NULL)
        return NULL;
    json_object_set_new(b, "source", endpoint_body(args, "source", src));
    json_object_set_new(b, "destination", endpoint_body(args, "destination", dest));
    if (json_is_object(cd) && json_is_true(json_object_get(cd, "enabled")))
        json_object_set(b, "create_destination", (json_t *)cd);
    if (aicp_args_str(args, "policy") != NULL)
        json_object_set_new(b, "policy", json_pack("{s:s}", "name", aicp_args_str(args, "policy")));
    if (aicp_args_str(args, "schedule") != NULL && aicp_args_str(args, "schedule")[0] != '\0')
        json_object_set_new(b, "transfer_schedule",
                            json_pack("{s:s}", "name", aicp_args_str(args, "schedule")));
    if (json_is_integer(aicp_args_get(args, "max_transfer_rate")))
        json_object_set(b, "throttle", (json_t *)aicp_args_get(args, "max_transfer_rate"));
    if (aicp_args_str(args, "identity_preservation") != NULL)
        json_object_set_new(b, "identity_preservation",
                            json_string(aicp_args_str(args, "identity_preservation")));
    return b;
}

static int sm_diff(const json_t *current, const struct aicp_args *args,
                   struct aicp_change **change, struct aicp_err *err)
{
    struct aicp_change *c = NULL;
    const json_t *rel = json_object_get(current, "relationship");
    const char *dest = jstr(current, "destination");
    const char *src = jstr(current, "source");
    const char *cur, *tgt;
    json_t *actions = json_array(), *before = json_object(), *after = json_object();
    json_t *modify = json_object(), *create = NULL;
    const char *max_lag = aicp_args_str(args, "max_lag");
    int update = aicp_args_bool(args, "update", 0), no_verify = 0;
    int rc;

    if (json_is_null(rel))
        rel = NULL;
    *change = NULL;
    if (actions == NULL || before == NULL || after == NULL || modify == NULL ||
        aicp_change_new(&c) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    cur = plan_state(rel);
    tgt = target_state(args, cur);
    if (rel != NULL && src != NULL && !aicp_ontap_enum_eq(tgt, "absent")) {
        const char *hs = json_string_value(jpath(rel, "source", "path"));
        if (hs != NULL && strcmp(hs, src) != 0) {
            rc = aicp_err_set(err, AICP_EFAILED,
                              "SnapMirror relationship to %s has source %s, not %s: delete it "
                              "(state: absent) to change its source",
                              dest, hs, src);
            goto out;
        }
    }
    if (strcmp(cur, "absent") == 0 && strcmp(tgt, "absent") != 0 && src == NULL) {
        rc = aicp_err_set(err, AICP_EINVAL, "ontap_snapmirror %s: no source given", dest);
        goto out;
    }
    if (plan_path(actions, cur, tgt, 0) != 0) {
        rc = aicp_err_set(err, AICP_EFAILED,
                          "SnapMirror relationship to %s is %s: aicp knows no way to make it %s",
                          dest, jstr(rel, "state") ? jstr(rel, "state") : cur, tgt);
        goto out;
    }
    if (strcmp(cur, tgt) != 0) {
        json_object_set_new(before, "state", json_string(cur));
        json_object_set_new(after, "state", json_string(tgt));
    }
    if (strcmp(cur, "absent") == 0 && strcmp(tgt, "absent") != 0) {
        create = create_body(args, src, dest);
        json_object_set_new(after, "source", json_string(src));
        json_object_set_new(after, "destination", json_string(dest));
        if (aicp_args_str(args, "policy") != NULL)
            json_object_set_new(after, "policy", json_string(aicp_args_str(args, "policy")));
    } else if (rel != NULL && strcmp(tgt, "absent") != 0) {
        sm_modify(args, rel, modify, before, after);
        if (json_object_size(modify) > 0)
            json_array_insert_new(actions, 0, json_string("modify"));
    }
    if (max_lag != NULL && duration_s(max_lag) < 0) {
        rc = aicp_err_set(err, AICP_EINVAL, "max_lag '%s' is not a duration (\"PT1H\" or seconds)",
                          max_lag);
        goto out;
    }
    /* Health: a relationship that should mirror (snapmirrored or paused)
     * and is unhealthy is drift, with ONTAP's reason. A snapmirrored one
     * is healed by a transfer; a paused one fails (see sm_apply). */
    if (is_unhealthy(rel) &&
        (strcmp(tgt, "snapmirrored") == 0 || strcmp(tgt, "paused") == 0)) {
        char why[512];
        reason_text(rel, why, sizeof(why));
        json_object_set_new(before, "healthy", json_false());
        json_object_set_new(before, "unhealthy_reason", json_string(why));
        json_object_set_new(after, "healthy", json_true());
        /* An unconditional update (below) is the transfer that heals. */
        if (!(strcmp(tgt, "snapmirrored") == 0 && update && max_lag == NULL))
            json_array_append_new(actions,
                                  json_string(strcmp(tgt, "paused") == 0 ? "unhealthy" : "heal"));
    }
    /* Lag: drift only when declared and exceeded on a mirror that should
     * be transferring; apply heals it with a transfer. */
    if (strcmp(tgt, "snapmirrored") == 0 && strcmp(cur, "snapmirrored") == 0) {
        const char *lag = jstr(rel, "lag_time");
        if (lag_exceeded(args, rel)) {
            json_object_set_new(before, "lag_time", json_string(lag));
            json_object_set_new(after, "lag_time", json_sprintf("<= %s", max_lag));
            if (!is_unhealthy(rel))
                json_array_append_new(actions, json_string("heal"));
        } else if (update && max_lag == NULL) {
            /* Asked for unconditionally: an action, not a state. */
            json_object_set_new(before, "transfer", json_string("none"));
            json_object_set_new(after, "transfer", json_string("update"));
            json_array_append_new(actions, json_string("update"));
            no_verify = 1;
        }
    }
    if (json_object_size(after) > 0 || json_array_size(actions) > 0) {
        c->needed = 1;
        c->before = before;
        c->after = after;
        before = after = NULL;
    }
    c->plan = json_pack("{s:O, s:s, s:O?, s:O?, s:O?, s:s, s:b, s:{s:O}, s:O?}", "actions",
                        actions, "destination", dest, "uuid",
                        rel ? json_object_get(rel, "uuid") : NULL, "modify",
                        json_object_size(modify) ? modify : NULL, "create", create, "target", tgt,
                        "no_verify", no_verify, "result", "actions", actions, "stamp",
                        json_object_get(current, "stamp"));
    if (c->plan == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    *change = c;
    c = NULL;
    rc = 0;
out:
    aicp_change_free(c);
    json_decref(actions);
    json_decref(before);
    json_decref(after);
    json_decref(modify);
    json_decref(create);
    return rc;
}

static void sleep_s(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Polls until the relationship satisfies what the action leads to:
 * want_state (NULL: any), gone (deleted), or no transfer running. *rel is
 * the last record read. AICP_ETIMEOUT after timeout seconds. */
static int sm_wait(struct aicp_ontap *o, const struct aicp_args *args, const char *dest,
                   const char *want_state, int gone, int idle, double timeout, json_t **rel,
                   struct aicp_err *err)
{
    double deadline = aicp_now() + timeout, nap = 0.05;
    int rc;

    for (;;) {
        json_decref(*rel);
        *rel = NULL;
        if ((rc = sm_read(o, args, dest, rel, err)) != 0)
            return rc;
        const char *ts = *rel ? json_string_value(jpath(*rel, "transfer", "state")) : NULL;
        int busy = ts != NULL && (strcmp(ts, "transferring") == 0 || strcmp(ts, "queued") == 0);
        if (gone ? *rel == NULL
                 : (*rel != NULL &&
                    (want_state == NULL || strcmp(plan_state(*rel), want_state) == 0) &&
                    (!idle || !busy)))
            return 0;
        if (aicp_now() >= deadline)
            return aicp_err_set(err, AICP_ETIMEOUT,
                                "SnapMirror relationship to %s: still %s after %.0f s "
                                "(transferring_time_out), wanted %s",
                                dest, *rel ? plan_state(*rel) : "absent", timeout,
                                gone ? "absent" : want_state ? want_state : "an idle transfer");
        sleep_s(nap);
        nap = nap * 2 > 1.0 ? 1.0 : nap * 2;
    }
}

/* heal: waits for a running transfer to end; when the relationship is
 * then still unhealthy or lagging past max_lag, starts an update transfer
 * and waits for it; fails with ONTAP's reason when that did not make it
 * healthy. transfer 0 (a paused relationship, action "unhealthy"): no
 * transfer (it would undo the pause), only the failure with the reason. */
static int sm_heal(struct aicp_ontap *o, const struct aicp_args *args, const char *dest,
                   const char *uuid, int transfer, double timeout, json_t **rel,
                   struct aicp_err *err)
{
    char path[512], why[512];
    int rc;

    if ((rc = sm_wait(o, args, dest, NULL, 0, 1, timeout, rel, err)) != 0)
        return rc;
    if (!is_unhealthy(*rel) && !lag_exceeded(args, *rel))
        return 0;
    if (transfer) {
        snprintf(path, sizeof(path), "%s/%s/transfers", SM_PATH, uuid);
        rc = aicp_ontap_call(o, "POST", path, NULL, NULL, timeout, NULL, err);
        if (rc != 0 && rc != AICP_ENOTFOUND) {
            aicp_err_prefix(err, "SnapMirror relationship to %s is %s; the update transfer that "
                                 "should heal it",
                            dest, is_unhealthy(*rel) ? "unhealthy" : "lagging");
            return rc;
        }
        aicp_err_clear(err);
        if ((rc = sm_wait(o, args, dest, NULL, 0, 1, timeout, rel, err)) != 0)
            return rc;
    }
    if (is_unhealthy(*rel)) {
        reason_text(*rel, why, sizeof(why));
        return aicp_err_set(err, AICP_EFAILED,
                            transfer ? "SnapMirror relationship to %s is still unhealthy after an "
                                       "update transfer: %s"
                                     : "SnapMirror relationship to %s is paused and unhealthy: %s "
                                       "(resume it with state: snapmirrored, so that a transfer "
                                       "can heal it)",
                            dest, why);
    }
    if (lag_exceeded(args, *rel))
        return aicp_err_set(err, AICP_EFAILED,
                            "SnapMirror relationship to %s still lags %s after an update "
                            "transfer (max_lag %s)",
                            dest, jstr(*rel, "lag_time"), aicp_args_str(args, "max_lag"));
    return 0;
}

/* After a create with create_destination: the destination volume ONTAP
 * made gets the provenance stamp as its comment, so that a drift report
 * can say who made it. Best effort: the relationship is what the task
 * asked for, so a refusal is a warning, not a failure. */
static void stamp_destination(struct aicp_ctx *ctx, struct aicp_ontap *o,
                              const struct aicp_args *args, const json_t *plan, const char *dest,
                              double timeout)
{
    const char *stamp = jstr(plan, "stamp");
    struct aicp_buf q = AICP_BUF_INIT;
    struct aicp_err e = {0};
    json_t *vol = NULL, *body = NULL;
    char svm[256], path[256];
    const char *colon = strchr(dest, ':');
    int rc;

    if (stamp == NULL || stamp[0] == '\0' || colon == NULL ||
        !json_is_true(json_object_get(aicp_args_get(args, "create_destination"), "enabled")))
        return;
    snprintf(svm, sizeof(svm), "%.*s", (int)(colon - dest), dest);
    if (aicp_ontap_qadd(&q, "name", colon + 1) != 0 || aicp_ontap_qadd(&q, "svm.name", svm) != 0) {
        aicp_buf_free(&q);
        return;
    }
    rc = aicp_ontap_get_one(o, "/api/storage/volumes", q.data, "uuid,comment", "volume", &vol, &e);
    if (rc == 0 && jstr(vol, "uuid") != NULL) {
        snprintf(path, sizeof(path), "/api/storage/volumes/%s", jstr(vol, "uuid"));
        body = json_pack("{s:s}", "comment", stamp);
        rc = aicp_ontap_call(o, "PATCH", path, NULL, body, timeout, NULL, &e);
        if (rc == AICP_ENOTFOUND)
            rc = 0; /* a vanished job: the comment is not worth failing over */
    }
    if (rc != 0 && ctx->result != NULL) {
        json_t *w = json_object_get(ctx->result, "warnings");
        if (!json_is_array(w)) {
            w = json_array();
            json_object_set_new(ctx->result, "warnings", w);
        }
        json_array_append_new(w, json_sprintf("destination volume %s: could not set its "
                                              "provenance comment: %s",
                                              dest, e.msg));
    }
    aicp_buf_free(&q);
    json_decref(vol);
    json_decref(body);
}

static int sm_apply(struct aicp_ctx *ctx, const struct aicp_change *change, struct aicp_err *err)
{
    const struct aicp_args *args = change->args;
    const json_t *plan = change->plan;
    const char *dest = jstr(plan, "destination");
    double timeout = (double)aicp_args_int(args, "transferring_time_out", 300);
    struct aicp_ontap *o = NULL;
    json_t *rel = NULL, *done = json_array();
    char path[512], uuid[128] = "";
    size_t i;
    json_t *a;
    int rc;

    if (done == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    if ((rc = aicp_ou_client(ctx, args, &o, err)) != 0)
        goto out;
    if (jstr(plan, "uuid") != NULL)
        snprintf(uuid, sizeof(uuid), "%s", jstr(plan, "uuid"));
    json_array_foreach(json_object_get(plan, "actions"), i, a) {
        const char *act = json_string_value(a);
        const char *method = "PATCH", *want = NULL;
        json_t *body = NULL;
        int gone = 0, idle = 0;

        if (act == NULL)
            continue;
        snprintf(path, sizeof(path), "%s/%s", SM_PATH, uuid);
        if (strcmp(act, "create") == 0) {
            method = "POST";
            snprintf(path, sizeof(path), "%s", SM_PATH);
            body = json_incref(json_object_get(plan, "create"));
        } else if (strcmp(act, "initialize") == 0 || strcmp(act, "resume") == 0 ||
                   strcmp(act, "resync") == 0) {
            body = json_pack("{s:s}", "state", "snapmirrored");
            want = "snapmirrored";
            idle = 1;
        } else if (strcmp(act, "quiesce") == 0) {
            body = json_pack("{s:s}", "state", "paused");
            want = "paused";
        } else if (strcmp(act, "break") == 0) {
            body = json_pack("{s:s}", "state", "broken_off");
            want = "broken_off";
        } else if (strcmp(act, "modify") == 0) {
            body = json_incref(json_object_get(plan, "modify"));
        } else if (strcmp(act, "delete") == 0) {
            method = "DELETE";
            gone = 1;
        } else if (strcmp(act, "update") == 0) {
            method = "POST";
            snprintf(path, sizeof(path), "%s/%s/transfers", SM_PATH, uuid);
            body = json_object();
            idle = 1;
        } else if (strcmp(act, "wait") == 0) {
            method = NULL;
            want = "snapmirrored";
            idle = 1;
        } else if (strcmp(act, "heal") == 0 || strcmp(act, "unhealthy") == 0) {
            if ((rc = sm_heal(o, args, dest, uuid, strcmp(act, "heal") == 0, timeout, &rel,
                              err)) != 0)
                goto out;
            json_array_append_new(done, json_string(act));
            continue;
        }
        if (method != NULL && strcmp(act, "create") != 0 && uuid[0] == '\0') {
            json_decref(body);
            rc = aicp_err_set(err, AICP_EREMOTE,
                              "SnapMirror relationship to %s: ONTAP gave no uuid", dest);
            goto out;
        }
        rc = method ? aicp_ontap_call(o, method, path, NULL, body, timeout, NULL, err) : 0;
        json_decref(body);
        if (rc != 0 && rc != AICP_ENOTFOUND) {
            aicp_err_prefix(err, "SnapMirror %s of %s", act, dest);
            goto out;
        }
        {
            /* Read back until the transition shows. After a vanished job
             * the re-read alone decides, and quickly. */
            int vanished = rc == AICP_ENOTFOUND;
            char why[512];
            struct aicp_err e2 = {0};
            snprintf(why, sizeof(why), "%.400s", vanished && err ? err->msg : "");
            rc = sm_wait(o, args, dest, want, gone, idle,
                         vanished && timeout > 10 ? 10 : timeout, &rel, &e2);
            if (rc != 0) {
                if (err != NULL)
                    *err = e2;
                if (vanished)
                    aicp_err_prefix(err, "%s; re-read", why);
                aicp_err_prefix(err, "SnapMirror %s of %s", act, dest);
                goto out;
            }
        }
        if (rel != NULL && jstr(rel, "uuid") != NULL)
            snprintf(uuid, sizeof(uuid), "%s", jstr(rel, "uuid"));
        json_array_append_new(done, json_string(act));
        if (strcmp(act, "update") == 0 && is_unhealthy(rel)) {
            char why[512];
            reason_text(rel, why, sizeof(why));
            rc = aicp_err_set(err, AICP_EFAILED,
                              "SnapMirror relationship to %s is unhealthy after an update "
                              "transfer: %s",
                              dest, why);
            goto out;
        }
        if (strcmp(act, "create") == 0)
            stamp_destination(ctx, o, args, plan, dest, timeout);
    }
    rc = 0;
out:
    if (rc == 0 || json_array_size(done) > 0)
        set_result(ctx->result, rel, done);
    json_decref(rel);
    json_decref(done);
    return rc;
}

static const struct aicp_module_ops sm_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = sm_check,
    .diff = sm_diff,
    .apply = sm_apply,
};

const struct aicp_module aicp_mod_ontap_snapmirror = {
    .name = "ontap_snapmirror",
    .summary = "ONTAP SnapMirror relationship: create, initialize, update, quiesce, break, "
               "resync, delete",
    .args = sm_args,
    .flags = AICP_MOD_NEEDS_ONTAP,
    .ops = &sm_ops,
};
