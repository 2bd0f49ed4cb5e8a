/* The ontap_volume module: an ONTAP FlexVol or FlexGroup volume over the
 * REST API (/api/storage/volumes), with the netapp.ontap collection's
 * argument names (na_ontap_volume) so its tasks port over. Unlike that
 * module it always converges: values are normalised before they are
 * compared (sizes to bytes, enums by aicp_ontap_enum_eq, permissions as
 * modes), a field the cluster did not return is never drift, a resize only
 * happens past resize_threshold, and a smaller size fails unless
 * allow_shrink says so. Deleting unmounts and takes the volume offline
 * first, as ONTAP requires, and refuses while FlexClones depend on it. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
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

#define VOL_API "/api/storage/volumes"
#define VOL_FIELDS                                                                                 \
    "uuid,name,svm.name,style,size,state,type,aggregates.name,nas.path,nas.export_policy.name,"   \
    "nas.security_style,nas.unix_permissions,snapshot_policy.name,space.snapshot.reserve_percent," \
    "space.size,guarantee.type,tiering.policy,comment,clone.is_flexclone,clone.parent_volume.name"

static const struct aicp_arg_spec vol_args[] = {
    AICP_OU_CONN_ARGS,
    {.name = "name", .type = AICP_ARG_STR, .required = 1, .help = "The volume's name."},
    {.name = "vserver",
     .type = AICP_ARG_STR,
     .required = 1,
     .aliases = "svm",
     .help = "The SVM that holds the volume."},
    {.name = "style",
     .type = AICP_ARG_STR,
     .choices = "flexvol|flexgroup",
     .help = "FlexVol or FlexGroup (default: flexgroup when aggr_list is given, else flexvol). "
             "Cannot be changed once the volume exists."},
    {.name = "aggregate_name",
     .type = AICP_ARG_STR,
     .help = "The aggregate of a FlexVol (used on create only; aicp does not move volumes)."},
    {.name = "aggr_list",
     .type = AICP_ARG_LIST,
     .help = "The aggregates of a FlexGroup's constituents (create only)."},
    {.name = "aggr_list_multiplier",
     .type = AICP_ARG_INT,
     .help = "Constituents per aggregate of aggr_list (ONTAP's constituents_per_aggregate)."},
    {.name = "size",
     .type = AICP_ARG_STR,
     .help = "The size: a number in size_unit, or with its unit (\"10TB\", \"10Ti\"; binary, as "
             "the collection reads them). Needed to create."},
    {.name = "size_unit",
     .type = AICP_ARG_STR,
     .def = "gb",
     .choices = "bytes|b|kb|mb|gb|tb|pb|eb|zb|yb",
     .help = "The unit of a size given as a bare number (powers of 1024)."},
    {.name = "sizing_method",
     .type = AICP_ARG_STR,
     .choices = "add_new_resources|use_existing_resources",
     .help = "How a FlexGroup grows (ONTAP 9.8 or later)."},
    {.name = "resize_threshold",
     .type = AICP_ARG_FLOAT,
     .def = "0",
     .help = "Percent: grow only when the wanted size exceeds the current one by more than "
             "this (0: any growth)."},
    {.name = "allow_shrink",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Shrink a volume that is larger than size (else that fails)."},
    {.name = "junction_path",
     .type = AICP_ARG_STR,
     .help = "Where the volume is mounted in the SVM's namespace (\"\": unmounted)."},
    {.name = "export_policy",
     .type = AICP_ARG_STR,
     .aliases = "policy",
     .help = "The NFS export policy of the volume."},
    {.name = "snapshot_policy", .type = AICP_ARG_STR, .help = "The Snapshot policy."},
    {.name = "percent_snapshot_space",
     .type = AICP_ARG_INT,
     .help = "Snapshot reserve, in percent of the volume."},
    {.name = "volume_security_style",
     .type = AICP_ARG_STR,
     .help = "Security style of the volume's root."},
    {.name = "unix_permissions",
     .type = AICP_ARG_STR,
     .help = "Permissions of the volume's root: octal (\"0755\", \"755\") or symbolic "
             "(\"---rwxr-xr-x\")."},
    {.name = "space_guarantee",
     .type = AICP_ARG_STR,
     .help = "Space guarantee (\"none\": thin provisioned)."},
    {.name = "tiering_policy",
     .type = AICP_ARG_STR,
     .help = "FabricPool tiering policy."},
    {.name = "comment",
     .type = AICP_ARG_STR,
     .help = "Comment. Compared without aicp's provenance stamp (\" [aicp ...]\"). Without "
             "provenance it is written as given; when absent, a new volume gets the run's "
             "stamp."},
    {.name = "provenance",
     .type = AICP_ARG_STR,
     .help = "Who changes the volume (\"site=NAME run=ID\"): written after the comment as "
             "\" [aicp site=NAME run=ID]\" on create and with every other change; never a "
             "change on its own."},
    {.name = "is_online",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .help = "Whether the volume is online."},
    {.name = "type",
     .type = AICP_ARG_STR,
     .help = "Read-write or data-protection (a SnapMirror destination); create only."},
    {.name = "state",
     .type = AICP_ARG_STR,
     .def = "present",
     .choices = "present|absent",
     .help = "Whether the volume exists. absent unmounts it and takes it offline first."},
    {.name = "time_out",
     .type = AICP_ARG_INT,
     .def = "180",
     .help = "Seconds to wait for ONTAP's job of a change."},
    {.name = NULL},
};

/* Enum arguments and their values in ONTAP's spelling: a task may write
 * them in any case and with '-' for '_' (so no arg-table choices), but
 * what is sent is the spelling here, as ONTAP rejects any other (262186). */
static const struct {
    const char *arg;
    const char *values[6];
} vol_enums[] = {
    {"volume_security_style", {"mixed", "ntfs", "unified", "unix", NULL}},
    {"space_guarantee", {"none", "volume", NULL}},
    {"tiering_policy", {"snapshot_only", "auto", "backup", "none", "all", NULL}},
    {"type", {"rw", "dp", NULL}},
};

/* ONTAP's spelling of the value v of the enum argument arg (v itself
 * when arg is no enum or v none of its values). Borrowed. */
static const char *canonical_enum(const char *arg, const char *v)
{
    for (size_t i = 0; v != NULL && i < sizeof(vol_enums) / sizeof(vol_enums[0]); i++) {
        if (strcmp(vol_enums[i].arg, arg) != 0)
            continue;
        for (size_t k = 0; vol_enums[i].values[k] != NULL; k++)
            if (aicp_ontap_enum_eq(v, vol_enums[i].values[k]))
                return vol_enums[i].values[k];
    }
    return v;
}

static int check_enums(const struct aicp_args *args, struct aicp_err *err)
{
    for (size_t i = 0; i < sizeof(vol_enums) / sizeof(vol_enums[0]); i++) {
        const char *v = aicp_args_str(args, vol_enums[i].arg);
        int ok = v == NULL;
        char list[128] = "";
        size_t used = 0;
        for (size_t k = 0; vol_enums[i].values[k] != NULL; k++) {
            ok = ok || aicp_ontap_enum_eq(v, vol_enums[i].values[k]);
            int w = snprintf(list + used, sizeof(list) - used, "%s%s", k ? ", " : "",
                             vol_enums[i].values[k]);
            if (w > 0 && (size_t)w < sizeof(list) - used)
                used += (size_t)w;
        }
        if (!ok)
            return aicp_err_set(err, AICP_EINVAL, "value of %s must be one of: %s, got: %s",
                                vol_enums[i].arg, list, v);
    }
    return 0;
}

/* Which argument sets which field of the record, and how its values are
 * compared. */
enum vol_kind { VK_STR, VK_ENUM, VK_INT, VK_PERM, VK_ONLINE };

struct vol_field {
    const char *arg;
    const char *path;
    enum vol_kind kind;
};

static const struct vol_field vol_fields[] = {
    {"junction_path", "nas.path", VK_STR},
    {"export_policy", "nas.export_policy.name", VK_STR},
    {"snapshot_policy", "snapshot_policy.name", VK_STR},
    {"percent_snapshot_space", "space.snapshot.reserve_percent", VK_INT},
    {"volume_security_style", "nas.security_style", VK_ENUM},
    {"unix_permissions", "nas.unix_permissions", VK_PERM},
    {"space_guarantee", "guarantee.type", VK_ENUM},
    {"tiering_policy", "tiering.policy", VK_ENUM},
    {"is_online", "state", VK_ONLINE},
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

static const char *jstr_of(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* Sets v (stolen) at a dotted path of o, creating the objects between. */
static void jset(json_t *o, const char *path, json_t *v)
{
    char key[128];
    const char *dot;
    while ((dot = strchr(path, '.')) != NULL) {
        size_t n = (size_t)(dot - path);
        if (n >= sizeof(key))
            break;
        memcpy(key, path, n);
        key[n] = '\0';
        json_t *child = json_object_get(o, key);
        if (!json_is_object(child)) {
            child = json_object();
            json_object_set_new(o, key, child);
        }
        o = child;
        path = dot + 1;
    }
    json_object_set_new(o, path, v);
}

/* The record's fields as "a.b": value, for the after of a create. */
static void flatten(const json_t *o, const char *prefix, json_t *out)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        char path[256];
        snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", k);
        if (json_is_object(v))
            flatten(v, path, out);
        else
            json_object_set(out, path, v);
    }
}

/* A mode from what a task writes ("0755", "755", "---rwxr-xr-x") or what
 * ONTAP returns (the integer 755, whose digits are octal); -1 if none. */
static int perm_mode(const json_t *v)
{
    char buf[32];
    const char *s;
    if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        s = buf;
    } else if ((s = json_string_value(v)) == NULL) {
        return -1;
    }
    size_t n = strlen(s);
    if (n > 0 && strspn(s, "01234567") == n && n <= 5)
        return (int)strtol(s, NULL, 8) & 07777;
    if (n >= 9 && strspn(s, "-rwxsStT") == n) {
        const char *r = s + n - 9;
        int m = 0;
        for (int i = 0; i < 9; i++) {
            char c = r[i], want = "rwxrwxrwx"[i];
            if (c == want || (want == 'x' && (c == 's' || c == 't')))
                m |= 1 << (8 - i);
            else if (c != '-' && !(want == 'x' && (c == 'S' || c == 'T')))
                return -1;
        }
        return m;
    }
    return -1;
}

/* ONTAP's form of a mode: the integer whose decimal digits are the octal
 * ones (0755 -> 755). */
static json_t *perm_json(int mode)
{
    char buf[16];
    snprintf(buf, sizeof(buf), "%o", (unsigned)mode);
    return json_integer(strtoll(buf, NULL, 10));
}

static const char *const unit_names[] = {"b", "kb", "mb", "gb", "tb", "pb", "eb", "zb", "yb"};

/* The wanted size in bytes: a bare number is in size_unit, anything else
 * carries its own unit. 0 with *bytes = -1 when no size was given. */
static int wanted_size(const struct aicp_args *args, long long *bytes, struct aicp_err *err)
{
    const char *s = aicp_args_str(args, "size");
    const char *unit = aicp_args_str(args, "size_unit");
    *bytes = -1;
    if (s == NULL)
        return 0;
    char *end = NULL;
    double d = strtod(s, &end);
    if (end != s && *end == '\0') {
        int pow = 3;
        if (unit != NULL && strcmp(unit, "bytes") != 0)
            for (int i = 0; i < 9; i++)
                if (strcmp(unit, unit_names[i]) == 0)
                    pow = i;
        if (unit != NULL && strcmp(unit, "bytes") == 0)
            pow = 0;
        for (int i = 0; i < pow; i++)
            d *= 1024.0;
        if (d < 0 || d > 9.2e18)
            return aicp_err_set(err, AICP_EINVAL, "size %s %s is out of range", s, unit);
        *bytes = (long long)d;
        return 0;
    }
    json_t *js = json_string(s);
    *bytes = aicp_ontap_size(js);
    json_decref(js);
    if (*bytes < 0)
        return aicp_err_set(err, AICP_EINVAL,
                            "size '%s' is not a size (a number in size_unit, or e.g. 10TB, 10Ti)",
                            s);
    return 0;
}

/* "10.0 GiB" for messages. */
static void human(char *buf, size_t n, long long b)
{
    static const char *const u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double d = (double)b;
    int i = 0;
    while (d >= 1024.0 && i < 6) {
        d /= 1024.0;
        i++;
    }
    snprintf(buf, n, "%.4g %s (%lld bytes)", d, u[i], b);
}

static int is_absent(const struct aicp_args *args)
{
    const char *st = aicp_args_str(args, "state");
    return st != NULL && strcmp(st, "absent") == 0;
}

/* The style the task asks for, or NULL when it leaves it to the record. */
static const char *wanted_style(const struct aicp_args *args)
{
    const char *style = aicp_args_str(args, "style");
    if (style != NULL)
        return style;
    return json_array_size(aicp_args_get(args, "aggr_list")) > 0 ? "flexgroup" : NULL;
}

static void set_results(struct aicp_ctx *ctx, const json_t *rec)
{
    if (ctx->result == NULL)
        return;
    json_object_set_new(ctx->result, "volume", rec ? json_deep_copy(rec) : json_null());
    json_object_set_new(ctx->result, "uuid", json_incref(json_object_get(rec, "uuid")));
    if (json_object_get(ctx->result, "uuid") == NULL)
        json_object_set_new(ctx->result, "uuid", json_null());
    aicp_stamp_report(ctx->result, json_string_value(json_object_get(rec, "comment")));
}

static int read_volume(struct aicp_ontap *o, const struct aicp_args *args, json_t **rec,
                       struct aicp_err *err)
{
    struct aicp_buf q = AICP_BUF_INIT;
    int rc;
    if (aicp_ontap_qadd(&q, "name", aicp_args_str(args, "name")) != 0 ||
        aicp_ontap_qadd(&q, "svm.name", aicp_args_str(args, "vserver")) != 0) {
        aicp_buf_free(&q);
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    rc = aicp_ontap_get_one(o, VOL_API, q.data, VOL_FIELDS, "volume", rec, err);
    aicp_buf_free(&q);
    return rc;
}

/* The SnapMirror relationships the volume is an end of, as sentences for
 * the message that refuses to delete it: ONTAP refuses to delete a
 * destination (917947) only after aicp would have unmounted it and taken
 * it offline, and deleting a source breaks its mirror's next transfer. */
static int mirrors_of(struct aicp_ontap *o, const struct aicp_args *args, json_t *out,
                      struct aicp_err *err)
{
    static const char *const ends[] = {"destination", "source"};
    char path[512];
    int rc = 0;

    snprintf(path, sizeof(path), "%s:%s", aicp_args_str(args, "vserver"),
             aicp_args_str(args, "name"));
    for (size_t e = 0; e < 2 && rc == 0; e++) {
        struct aicp_buf q = AICP_BUF_INIT;
        char key[32];
        json_t *recs = NULL, *r;
        size_t i;
        snprintf(key, sizeof(key), "%s.path", ends[e]);
        if (aicp_ontap_qadd(&q, key, path) != 0) {
            aicp_buf_free(&q);
            return aicp_err_set(err, AICP_ENOMEM, "out of memory");
        }
        rc = aicp_ontap_list(o, "/api/snapmirror/relationships", q.data,
                             "uuid,source.path,destination.path,state", &recs, err);
        aicp_buf_free(&q);
        json_array_foreach(recs, i, r) {
            const char *sp = json_string_value(jpath(r, "source.path"));
            const char *dp = json_string_value(jpath(r, "destination.path"));
            const char *mine = e == 0 ? dp : sp;
            /* A cluster that ignores the filter must not name others. */
            if (mine == NULL || strcmp(mine, path) != 0)
                continue;
            json_array_append_new(out, json_sprintf("the %s of SnapMirror relationship %s -> %s (%s)",
                                                    ends[e], sp ? sp : "?", dp ? dp : "?",
                                                    jstr_of(r, "state") ? jstr_of(r, "state")
                                                                        : "state unknown"));
        }
        json_decref(recs);
    }
    return rc;
}

/* current: {"record": {...}|null, "children": [names of FlexClones of it],
 * "stamp": "[aicp ...]" or "", "mirrors": [relationships it is an end of,
 * read for state: absent]} */
static int vol_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                     struct aicp_err *err)
{
    struct aicp_ontap *o = NULL;
    json_t *rec = NULL, *kids = NULL, *names = json_array(), *mirrors = json_array();
    struct aicp_buf q = AICP_BUF_INIT;
    char stamp[AICP_STAMP_MAX];
    long long bytes;
    int rc;

    *current = NULL;
    if (names == NULL || mirrors == NULL) {
        json_decref(names);
        json_decref(mirrors);
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    if ((rc = check_enums(args, err)) != 0 || (rc = wanted_size(args, &bytes, err)) != 0 ||
        (rc = aicp_ou_client(ctx, args, &o, err)) != 0)
        goto out;
    if (aicp_args_str(args, "sizing_method") != NULL && !is_absent(args) &&
        (rc = aicp_ontap_require(o, 9, 8, "sizing_method", err)) != 0)
        goto out;
    if ((rc = read_volume(o, args, &rec, err)) != 0)
        goto out;
    if (rec != NULL && is_absent(args)) {
        /* Clones pin their parent: deleting it must fail before anything
         * is unmounted. */
        if (aicp_ontap_qadd(&q, "clone.parent_volume.name", aicp_args_str(args, "name")) != 0 ||
            aicp_ontap_qadd(&q, "svm.name", aicp_args_str(args, "vserver")) != 0) {
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
        if ((rc = aicp_ontap_list(o, VOL_API, q.data, "name,clone.parent_volume.name", &kids,
                                  err)) != 0)
            goto out;
        size_t i;
        json_t *k;
        json_array_foreach(kids, i, k) {
            const char *pn = json_string_value(jpath(k, "clone.parent_volume.name"));
            const char *kn = json_string_value(json_object_get(k, "name"));
            /* A fake or old cluster that ignores the filter must not make
             * every volume a child. */
            if (kn != NULL && (pn == NULL || strcmp(pn, aicp_args_str(args, "name")) == 0))
                json_array_append_new(names, json_string(kn));
        }
    }
    if (rec != NULL && is_absent(args) && (rc = mirrors_of(o, args, mirrors, err)) != 0)
        goto out;
    aicp_stamp_make(ctx, args, stamp, sizeof(stamp));
    set_results(ctx, rec);
    *current = json_pack("{s:o?, s:O, s:s, s:O}", "record", rec, "children", names, "stamp", stamp,
                         "mirrors", mirrors);
    rec = NULL;
    if (*current == NULL)
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
out:
    aicp_buf_free(&q);
    json_decref(rec);
    json_decref(kids);
    json_decref(names);
    json_decref(mirrors);
    return rc;
}

/* The POST body of a new volume. */
static int create_body(const struct aicp_args *args, const json_t *current, json_t **out,
                       struct aicp_err *err)
{
    json_t *b = json_object();
    const char *name = aicp_args_str(args, "name");
    const char *style = wanted_style(args);
    const json_t *aggrs = aicp_args_get(args, "aggr_list");
    const char *aggr = aicp_args_str(args, "aggregate_name");
    long long bytes;
    size_t i;
    json_t *a;
    int rc;

    *out = NULL;
    if (b == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    if ((rc = wanted_size(args, &bytes, err)) != 0)
        goto out;
    if (bytes < 0) {
        rc = aicp_err_set(err, AICP_EINVAL, "volume %s: size is needed to create it", name);
        goto out;
    }
    if (aggr == NULL && json_array_size(aggrs) == 0) {
        rc = aicp_err_set(err, AICP_EINVAL,
                          "volume %s: aggregate_name or aggr_list is needed to create it", name);
        goto out;
    }
    if (style != NULL && strcmp(style, "flexvol") == 0 && json_array_size(aggrs) > 0) {
        rc = aicp_err_set(err, AICP_EINVAL,
                          "volume %s: aggr_list makes a FlexGroup, but style is flexvol", name);
        goto out;
    }
    json_object_set_new(b, "name", json_string(name));
    jset(b, "svm.name", json_string(aicp_args_str(args, "vserver")));
    json_t *list = json_array();
    if (json_array_size(aggrs) > 0) {
        json_array_foreach(aggrs, i, a)
            json_array_append_new(list, json_pack("{s:O}", "name", a));
    } else {
        json_array_append_new(list, json_pack("{s:s}", "name", aggr));
    }
    json_object_set_new(b, "aggregates", list);
    if (aicp_args_get(args, "aggr_list_multiplier") != NULL)
        json_object_set_new(b, "constituents_per_aggregate",
                            json_integer(aicp_args_int(args, "aggr_list_multiplier", 1)));
    if (style != NULL)
        json_object_set_new(b, "style", json_string(style));
    json_object_set_new(b, "size", json_integer(bytes));
    if (aicp_args_str(args, "type") != NULL)
        json_object_set_new(b, "type",
                            json_string(canonical_enum("type", aicp_args_str(args, "type"))));
    for (i = 0; i < sizeof(vol_fields) / sizeof(vol_fields[0]); i++) {
        const struct vol_field *f = &vol_fields[i];
        const json_t *v = aicp_args_get(args, f->arg);
        if (v == NULL || json_is_null(v))
            continue;
        if (f->kind == VK_ONLINE) {
            if (!aicp_args_bool(args, f->arg, 1))
                jset(b, f->path, json_string("offline"));
        } else if (f->kind == VK_PERM) {
            int m = perm_mode(v);
            if (m < 0) {
                rc = aicp_err_set(err, AICP_EINVAL, "unix_permissions '%s' is not a mode",
                                  json_string_value(v));
                goto out;
            }
            jset(b, f->path, perm_json(m));
        } else if (f->kind == VK_INT) {
            jset(b, f->path, json_integer(aicp_args_int(args, f->arg, 0)));
        } else if (f->kind == VK_ENUM) {
            jset(b, f->path, json_string(canonical_enum(f->arg, json_string_value(v))));
        } else {
            jset(b, f->path, json_incref((json_t *)v));
        }
    }
    {
        const char *cm = aicp_args_str(args, "comment");
        json_t *c = aicp_stamp_join(cm, cm ? strlen(cm) : 0, jstr_of(current, "stamp"));
        if (c != NULL && json_string_length(c) > 0)
            json_object_set_new(b, "comment", c);
        else
            json_decref(c);
    }
    if (!aicp_args_bool(args, "is_online", 1) && json_is_string(jpath(b, "nas.path")) &&
        json_string_length(jpath(b, "nas.path")) > 0) {
        rc = aicp_err_set(err, AICP_EINVAL,
                          "volume %s: an offline volume cannot be mounted: give junction_path: "
                          "\"\" or is_online: true",
                          name);
        goto out;
    }
    *out = b;
    b = NULL;
    rc = 0;
out:
    json_decref(b);
    return rc;
}

/* Whether have (from the record) equals the wanted argument v. */
static int field_equal(const struct vol_field *f, const struct aicp_args *args, const json_t *v,
                       const json_t *have)
{
    switch (f->kind) {
    case VK_ENUM:
        return json_is_string(have) && aicp_ontap_enum_eq(json_string_value(have),
                                                          json_string_value(v));
    case VK_INT:
        return json_is_integer(have) &&
               json_integer_value(have) == aicp_args_int(args, f->arg, -1);
    case VK_PERM:
        return perm_mode(have) == perm_mode(v);
    case VK_ONLINE:
        return aicp_ontap_enum_eq(json_string_value(have),
                                  aicp_args_bool(args, f->arg, 1) ? "online" : "offline");
    case VK_STR:
    default:
        return json_is_string(have) && strcmp(json_string_value(have), json_string_value(v)) == 0;
    }
}

/* The PATCH of an existing volume: drifted fields into body (ONTAP's
 * form), before/after (dotted paths). */
static int modify_plan(const json_t *rec, const struct aicp_args *args, const char *stamp,
                       json_t *body, json_t *before, json_t *after, struct aicp_err *err)
{
    const char *name = aicp_args_str(args, "name");
    const char *style = wanted_style(args);
    const char *have_style = json_string_value(json_object_get(rec, "style"));
    const char *type = aicp_args_str(args, "type");
    const char *have_type = json_string_value(json_object_get(rec, "type"));
    long long want, have;
    int rc;

    if (style != NULL && have_style != NULL && !aicp_ontap_enum_eq(style, have_style))
        return aicp_err_set(err, AICP_EFAILED,
                            "volume %s is a %s; its style cannot be changed to %s", name,
                            have_style, style);
    if (type != NULL && have_type != NULL && !aicp_ontap_enum_eq(type, have_type))
        return aicp_err_set(err, AICP_EFAILED,
                            "volume %s is of type %s; its type cannot be changed to %s here "
                            "(a SnapMirror break makes a DP volume RW)",
                            name, have_type, type);
    if ((rc = wanted_size(args, &want, err)) != 0)
        return rc;
    const json_t *hs = json_object_get(rec, "size");
    if (hs == NULL)
        hs = jpath(rec, "space.size");
    have = hs ? aicp_ontap_size(hs) : -1;
    if (want >= 0 && have >= 0 && want != have) {
        char hw[64], hh[64];
        human(hw, sizeof(hw), want);
        human(hh, sizeof(hh), have);
        if (want < have && !aicp_args_bool(args, "allow_shrink", 0))
            return aicp_err_set(err, AICP_EFAILED,
                                "volume %s is %s; the wanted %s is smaller, and volumes are not "
                                "shrunk unless allow_shrink: true",
                                name, hh, hw);
        const json_t *thr = aicp_args_get(args, "resize_threshold");
        double pct = json_is_number(thr) ? json_number_value(thr) : 0.0;
        if (want < have || (double)(want - have) * 100.0 > pct * (double)have) {
            json_object_set_new(body, "size", json_integer(want));
            json_object_set_new(before, "size", json_integer(have));
            json_object_set_new(after, "size", json_integer(want));
        }
    }
    for (size_t i = 0; i < sizeof(vol_fields) / sizeof(vol_fields[0]); i++) {
        const struct vol_field *f = &vol_fields[i];
        const json_t *v = aicp_args_get(args, f->arg);
        const json_t *h = jpath(rec, f->path);
        json_t *nv;
        if (v == NULL || json_is_null(v))
            continue;
        /* An unmounted volume has no path; ONTAP may leave it out. */
        if (h == NULL && f->kind == VK_STR && strcmp(f->path, "nas.path") == 0 &&
            json_is_object(json_object_get(rec, "nas")))
            h = json_string("");
        else if (h == NULL)
            continue; /* not returned: never drift */
        else
            json_incref((json_t *)h);
        if (field_equal(f, args, v, h)) {
            json_decref((json_t *)h);
            continue;
        }
        if (f->kind == VK_PERM) {
            int m = perm_mode(v);
            if (m < 0) {
                json_decref((json_t *)h);
                return aicp_err_set(err, AICP_EINVAL, "unix_permissions '%s' is not a mode",
                                    json_string_value(v));
            }
            nv = perm_json(m);
        } else if (f->kind == VK_ONLINE) {
            nv = json_string(aicp_args_bool(args, f->arg, 1) ? "online" : "offline");
        } else if (f->kind == VK_INT) {
            nv = json_integer(aicp_args_int(args, f->arg, 0));
        } else if (f->kind == VK_ENUM) {
            nv = json_string(canonical_enum(f->arg, json_string_value(v)));
        } else {
            nv = json_incref((json_t *)v);
        }
        jset(body, f->path, json_incref(nv));
        json_object_set_new(before, f->path, (json_t *)h);
        json_object_set_new(after, f->path, nv);
    }
    /* ONTAP takes only an unmounted volume offline: unmount it in the same
     * change, as state: absent does, unless the task mounts it. */
    if (!aicp_args_bool(args, "is_online", 1)) {
        const char *jp = aicp_args_str(args, "junction_path");
        const json_t *hp = jpath(rec, "nas.path");
        if (jp != NULL && jp[0] != '\0')
            return aicp_err_set(err, AICP_EINVAL,
                                "volume %s: an offline volume cannot be mounted: give "
                                "junction_path: \"\" or is_online: true",
                                name);
        if (jp == NULL && json_is_string(hp) && json_string_length(hp) > 0) {
            jset(body, "nas.path", json_string(""));
            json_object_set(before, "nas.path", (json_t *)hp);
            json_object_set_new(after, "nas.path", json_string(""));
        }
    }
    /* The comment: the user's part is compared, aicp's stamp never; the
     * stamp is renewed with any change the volume gets. */
    {
        const char *cm = aicp_args_str(args, "comment");
        const char *hc = json_string_value(json_object_get(rec, "comment"));
        size_t hlen = aicp_stamp_split(hc, NULL, 0);
        int differs = cm != NULL && (strlen(cm) != hlen || strncmp(cm, hc ? hc : "", hlen) != 0);
        if (differs) {
            json_object_set_new(before, "comment", json_stringn(hc ? hc : "", hlen));
            json_object_set_new(after, "comment", json_string(cm));
        }
        if (differs || json_object_size(body) > 0) {
            json_t *c = cm != NULL ? aicp_stamp_join(cm, strlen(cm), stamp)
                                   : aicp_stamp_join(hc, hlen, stamp);
            if (differs || (stamp != NULL && stamp[0] != '\0'))
                json_object_set_new(body, "comment", c);
            else
                json_decref(c);
        }
    }
    return 0;
}

/* plan: {"action": "create"|"modify"|"delete", "uuid", "body", ...} */
static int vol_diff(const json_t *current, const struct aicp_args *args,
                    struct aicp_change **change, struct aicp_err *err)
{
    struct aicp_change *c = NULL;
    const json_t *rec = json_object_get(current, "record");
    const char *name = aicp_args_str(args, "name");
    json_t *before = json_object(), *after = json_object(), *body = NULL;
    int rc;

    *change = NULL;
    if (before == NULL || after == NULL || aicp_change_new(&c) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (is_absent(args)) {
        if (!json_is_object(rec))
            goto done;
        const json_t *kids = json_object_get(current, "children");
        if (json_array_size(kids) > 0) {
            struct aicp_buf l = AICP_BUF_INIT;
            size_t i;
            json_t *k;
            json_array_foreach(kids, i, k)
                aicp_buf_printf(&l, "%s%s", i ? ", " : "", json_string_value(k));
            rc = aicp_err_set(err, AICP_EFAILED,
                              "volume %s has FlexClone children (%s): delete or split them "
                              "before deleting it",
                              name, l.data ? l.data : "");
            aicp_buf_free(&l);
            goto out;
        }
        const json_t *mir = json_object_get(current, "mirrors");
        if (json_array_size(mir) > 0) {
            rc = aicp_err_set(err, AICP_EFAILED,
                              "volume %s is %s: delete the relationship first (ontap_snapmirror "
                              "state: absent); nothing was changed",
                              name, json_string_value(json_array_get(mir, 0)));
            goto out;
        }
        c->needed = 1;
        json_object_set_new(before, "state", json_string("present"));
        json_object_set_new(after, "state", json_string("absent"));
        c->plan = json_pack("{s:s, s:O, s:O?, s:O?}", "action", "delete", "uuid",
                            json_object_get(rec, "uuid"), "path", jpath(rec, "nas.path"), "online",
                            json_object_get(rec, "state"));
    } else if (!json_is_object(rec)) {
        if ((rc = create_body(args, current, &body, err)) != 0)
            goto out;
        c->needed = 1;
        json_object_set_new(before, "state", json_string("absent"));
        json_object_set_new(after, "state", json_string("present"));
        flatten(body, "", after);
        c->plan = json_pack("{s:s, s:O}", "action", "create", "body", body);
    } else {
        body = json_object();
        /* Without provenance a change is stamped as before it existed:
         * not at all (the run's stamp goes only on what aicp creates). */
        if ((rc = modify_plan(rec, args,
                              aicp_args_str(args, "provenance") ? jstr_of(current, "stamp") : "",
                              body, before, after, err)) != 0)
            goto out;
        if (json_object_size(body) == 0)
            goto done;
        c->needed = 1;
        c->plan = json_pack("{s:s, s:O, s:O, s:O?}", "action", "modify", "uuid",
                            json_object_get(rec, "uuid"), "body", body, "was",
                            json_object_get(rec, "state"));
    }
    if (c->plan == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "volume %s: the record has no uuid", name);
        goto out;
    }
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

/* One call. A job that vanished (the cluster purged it, or it was lost)
 * is not an error here: its message is kept in vanished (the first one
 * only) and the re-read after the change decides from the volume's
 * state. */
static int call(struct aicp_ontap *o, const char *method, const char *path, const char *query,
                const json_t *body, double tmo, char *vanished, size_t vcap, struct aicp_err *err)
{
    int rc = aicp_ontap_call(o, method, path, query, body, tmo, NULL, err);
    if (rc == AICP_ENOTFOUND && strcmp(method, "DELETE") != 0) {
        if (vanished[0] == '\0')
            snprintf(vanished, vcap, "%.500s", err != NULL ? err->msg : "a job vanished");
        aicp_err_clear(err);
        return 0;
    }
    return rc;
}

static void nap(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* What still differs between rec and the task ("" when nothing), into
 * buf: the fields a fresh plan would change. */
static void still_differs(const json_t *rec, const struct aicp_args *args, char *buf, size_t cap)
{
    json_t *body = json_object(), *before = json_object(), *after = json_object();
    struct aicp_err e = {0};
    size_t used = 0;
    const char *k;
    json_t *v;

    buf[0] = '\0';
    if (modify_plan(rec, args, "", body, before, after, &e) != 0) {
        snprintf(buf, cap, "%.400s", e.msg);
    } else {
        json_object_foreach(after, k, v) {
            int w = snprintf(buf + used, cap - used, "%s%s", used ? ", " : "", k);
            if (w < 0 || (size_t)w >= cap - used)
                break;
            used += (size_t)w;
        }
    }
    json_decref(body);
    json_decref(before);
    json_decref(after);
}

/* Waits between re-reads after a vanished job: the change may still be
 * landing (about 5 s in all). */
static const double reread_waits[] = {0.25, 0.5, 1.0, 1.25, 2.0};
#define REREAD_N (sizeof(reread_waits) / sizeof(reread_waits[0]))

/* The re-read after a change: one read; after a vanished job, reads with
 * a short bounded backoff until the volume is as the task wants (gone
 * when want_gone), and if it never is, an error that names the job and
 * says what the last read found. *rec: the last record (NULL: none). */
static int reread(struct aicp_ontap *o, const struct aicp_args *args, const char *vanished,
                  int want_gone, json_t **rec, struct aicp_err *err)
{
    char differs[512] = "";
    double waited = 0;
    int rc;

    for (size_t i = 0;; i++) {
        json_decref(*rec);
        *rec = NULL;
        if ((rc = read_volume(o, args, rec, err)) != 0)
            return rc;
        if (vanished[0] == '\0')
            return 0;
        if (want_gone ? *rec == NULL : *rec != NULL) {
            if (want_gone)
                return 0;
            still_differs(*rec, args, differs, sizeof(differs));
            if (differs[0] == '\0')
                return 0;
        }
        if (i >= REREAD_N)
            break;
        nap(reread_waits[i]);
        waited += reread_waits[i];
    }
    if (want_gone)
        return aicp_err_set(err, AICP_EREMOTE,
                            "%s; re-read for %.1f s: the volume is still there", vanished, waited);
    if (*rec == NULL)
        return aicp_err_set(err, AICP_EREMOTE, "%s; re-read for %.1f s: the volume is not in SVM %s",
                            vanished, waited, aicp_args_str(args, "vserver"));
    return aicp_err_set(err, AICP_EREMOTE,
                        "%s; re-read for %.1f s: the volume is there but still differs in: %s",
                        vanished, waited, differs);
}

static int vol_apply(struct aicp_ctx *ctx, const struct aicp_change *change, struct aicp_err *err)
{
    const struct aicp_args *args = change->args;
    const json_t *plan = change->plan;
    const char *action = json_string_value(json_object_get(plan, "action"));
    const char *uuid = json_string_value(json_object_get(plan, "uuid"));
    const char *name = aicp_args_str(args, "name");
    double tmo = (double)aicp_args_int(args, "time_out", 180);
    struct aicp_ontap *o = NULL;
    struct aicp_buf path = AICP_BUF_INIT, q = AICP_BUF_INIT;
    json_t *rec = NULL, *body = NULL;
    char vanished[600] = "";
    int rc;

    if (!change->needed || action == NULL)
        return 0;
    if ((rc = aicp_ou_client(ctx, args, &o, err)) != 0)
        goto out;
    if (uuid != NULL && aicp_buf_printf(&path, VOL_API "/%s", uuid) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (strcmp(action, "create") == 0) {
        rc = call(o, "POST", VOL_API, NULL, json_object_get(plan, "body"), tmo, vanished, sizeof(vanished), err);
    } else if (strcmp(action, "delete") == 0) {
        /* ONTAP deletes only an unmounted, offline volume. */
        const char *jp = json_string_value(json_object_get(plan, "path"));
        const char *st = json_string_value(json_object_get(plan, "online"));
        if (jp != NULL && *jp != '\0') {
            body = json_pack("{s:{s:s}}", "nas", "path", "");
            if ((rc = call(o, "PATCH", path.data, NULL, body, tmo, vanished, sizeof(vanished), err)) != 0)
                goto out;
        }
        if (st == NULL || !aicp_ontap_enum_eq(st, "offline")) {
            json_decref(body);
            body = json_pack("{s:s}", "state", "offline");
            if ((rc = call(o, "PATCH", path.data, NULL, body, tmo, vanished, sizeof(vanished), err)) != 0)
                goto out;
        }
        rc = aicp_ontap_call(o, "DELETE", path.data, NULL, NULL, tmo, NULL, err);
        if (rc == AICP_ENOTFOUND) {
            /* The job vanished: gone is what was asked; anything else fails. */
            snprintf(vanished, sizeof(vanished), "%.500s", err != NULL ? err->msg : "a job vanished");
            aicp_err_clear(err);
            rc = reread(o, args, vanished, 1, &rec, err);
        }
        if (rc == 0)
            set_results(ctx, NULL);
        goto out;
    } else {
        /* An offline volume takes few changes: bring it online first, and
         * take it offline last. */
        const json_t *b = json_object_get(plan, "body");
        const char *want_state = json_string_value(json_object_get(b, "state"));
        const char *sm = aicp_args_str(args, "sizing_method");
        body = json_deep_copy(b);
        if (sm != NULL && json_object_get(body, "size") != NULL &&
            aicp_ontap_qadd(&q, "sizing_method", sm) != 0) {
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
        if (want_state != NULL && json_object_size(body) > 1) {
            json_t *st = json_pack("{s:s}", "state", want_state);
            json_object_del(body, "state");
            if (strcmp(want_state, "online") == 0) {
                rc = call(o, "PATCH", path.data, NULL, st, tmo, vanished, sizeof(vanished), err);
                if (rc == 0)
                    rc = call(o, "PATCH", path.data, q.data, body, tmo, vanished, sizeof(vanished), err);
            } else {
                rc = call(o, "PATCH", path.data, q.data, body, tmo, vanished, sizeof(vanished), err);
                if (rc == 0)
                    rc = call(o, "PATCH", path.data, NULL, st, tmo, vanished, sizeof(vanished), err);
            }
            json_decref(st);
        } else {
            rc = call(o, "PATCH", path.data, q.data, body, tmo, vanished, sizeof(vanished), err);
        }
    }
    if (rc != 0)
        goto out;
    if ((rc = reread(o, args, vanished, 0, &rec, err)) != 0)
        goto out;
    if (rec == NULL) {
        rc = aicp_err_set(err, AICP_EREMOTE, "not in SVM %s after the change",
                          aicp_args_str(args, "vserver"));
        goto out;
    }
    set_results(ctx, rec);
out:
    if (rc != 0)
        aicp_err_prefix(err, "volume %s", name);
    aicp_buf_free(&path);
    aicp_buf_free(&q);
    json_decref(rec);
    json_decref(body);
    return rc;
}

static const struct aicp_module_ops vol_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = vol_check,
    .diff = vol_diff,
    .apply = vol_apply,
};

const struct aicp_module aicp_mod_ontap_volume = {
    .name = "ontap_volume",
    .summary = "ONTAP FlexVol or FlexGroup volume: size, junction, policies, online state",
    .args = vol_args,
    .flags = AICP_MOD_NEEDS_ONTAP,
    .ops = &vol_ops,
};
