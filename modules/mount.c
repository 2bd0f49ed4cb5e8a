/* The mount module (ansible.posix.mount): keeps a mount point's entry in
 * fstab (written atomically, other lines untouched, fields escaped as
 * fstab(5) wants: \040 for a space) and its live state: mounted with
 * `mount PATH` after creating the directory, unmounted with `umount`,
 * remounted with `mount -o remount`. The check is one round trip that
 * reads fstab and the host's /proc/self/mounts entry for the path. */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "err.h"
#include "module.h"
#include "sysutil.h"
#include "util.h"

static const struct aicp_arg_spec mount_args[] = {
    {.name = "path",
     .type = AICP_ARG_PATH,
     .required = 1,
     .aliases = "name",
     .help = "Path to the mount point, e.g. /mnt/dataset."},
    {.name = "src",
     .type = AICP_ARG_PATH,
     .help = "Device, NFS export (server:/export) or file to mount; required with state "
             "present or mounted."},
    {.name = "fstype",
     .type = AICP_ARG_STR,
     .help = "Filesystem type (nfs, ext4, xfs, ...); required with state present or mounted."},
    {.name = "opts",
     .type = AICP_ARG_STR,
     .def = "defaults",
     .help = "Mount options, comma-separated, as in fstab's fourth field."},
    {.name = "dump",
     .type = AICP_ARG_STR,
     .def = "0",
     .help = "fstab's fifth field (dump frequency)."},
    {.name = "passno",
     .type = AICP_ARG_STR,
     .def = "0",
     .help = "fstab's sixth field (fsck pass number)."},
    {.name = "state",
     .type = AICP_ARG_STR,
     .required = 1,
     .choices = "mounted|unmounted|present|absent|remounted|absent_from_fstab",
     .help = "mounted: in fstab and mounted (the directory is created); present: in fstab "
             "only; unmounted: not mounted, fstab untouched; absent: removed from fstab, "
             "unmounted and its directory removed; absent_from_fstab: removed from fstab "
             "only; remounted: remount every time."},
    {.name = "fstab",
     .type = AICP_ARG_PATH,
     .def = "/etc/fstab",
     .help = "The fstab file to edit (mount uses it through -T when it is not /etc/fstab)."},
    {.name = "boot",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .help = "Mount at boot; no adds noauto to the options."},
    {.name = NULL},
};

/* Escapes a field as fstab(5) and Ansible do: backslash, space, '&', and
 * tab and newline so that a value can never break a line. */
static char *fstab_escape(const char *v)
{
    struct aicp_buf b = AICP_BUF_INIT;
    int rc = 0;
    for (const char *p = v ? v : ""; rc == 0 && *p; p++) {
        switch (*p) {
        case '\\':
            rc = aicp_buf_puts(&b, "\\134");
            break;
        case ' ':
            rc = aicp_buf_puts(&b, "\\040");
            break;
        case '&':
            rc = aicp_buf_puts(&b, "\\046");
            break;
        case '\t':
            rc = aicp_buf_puts(&b, "\\011");
            break;
        case '\n':
            rc = aicp_buf_puts(&b, "\\012");
            break;
        default:
            rc = aicp_buf_append(&b, p, 1);
            break;
        }
    }
    if (rc) {
        aicp_buf_free(&b);
        return NULL;
    }
    return aicp_buf_steal(&b);
}

/* The path without trailing slashes (but "/" stays "/"), as Ansible. */
static char *clean_path(const char *p)
{
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        n--;
    return aicp_strndup(p, n);
}

/* The desired option string: boot=no means noauto. */
static char *want_opts(const struct aicp_args *args)
{
    const char *opts = aicp_args_str(args, "opts");
    if (opts == NULL || *opts == '\0')
        opts = "defaults";
    if (aicp_args_bool(args, "boot", 1))
        return aicp_strdup(opts);
    size_t n = strlen(opts);
    for (const char *p = opts; p;) {
        if (strncmp(p, "noauto", 6) == 0 && (p[6] == ',' || p[6] == '\0'))
            return aicp_strdup(opts);
        p = strchr(p, ',');
        p = p ? p + 1 : NULL;
    }
    char *out = malloc(n + sizeof(",noauto"));
    if (out) {
        memcpy(out, opts, n);
        memcpy(out + n, ",noauto", sizeof(",noauto"));
    }
    return out;
}

static int mount_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                       struct aicp_err *err)
{
    char *path = clean_path(aicp_args_str(args, "path"));
    char *esc = fstab_escape(path);
    const char *fstab = aicp_args_str(args, "fstab");
    struct aicp_buf s = AICP_BUF_INIT;
    struct aicp_exec_result res;
    memset(&res, 0, sizeof(res));
    int rc;

    if (path == NULL || esc == NULL) {
        rc = AICP_ENOMEM;
        goto out;
    }
    /* /proc/self/mounts escapes the target the way fstab does; the
     * pattern goes through the environment, which awk does not unescape. */
    rc = aicp_buf_puts(&s, "LC_ALL=C; export LC_ALL\np=");
    rc = rc ? rc : aicp_buf_shquote(&s, path);
    rc = rc ? rc : aicp_buf_puts(&s, "\nP=");
    rc = rc ? rc : aicp_buf_shquote(&s, esc);
    rc = rc ? rc
            : aicp_buf_puts(
                  &s, " awk 'BEGIN { p = ENVIRON[\"P\"] } $2 == p { m = $1 \" \" $3 \" \" $4 } "
                      "END { if (m != \"\") print \"" AICP_SYS_TAG "mnt=\" m }' "
                      "/proc/self/mounts\n"
                      "if [ -d \"$p\" ]; then echo '" AICP_SYS_TAG "dir=1'; "
                      "elif [ -e \"$p\" ]; then echo '" AICP_SYS_TAG "dir=2'; fi\nf=");
    rc = rc ? rc : aicp_buf_shquote(&s, fstab);
    rc = rc ? rc
            : aicp_buf_puts(&s, "\nif [ -f \"$f\" ]; then echo '" AICP_SYS_TAG "fstab=1'; "
                                "cat \"$f\" || exit 1; else echo '" AICP_SYS_TAG "fstab=0'; fi\n");
    if (rc)
        goto out;
    if ((rc = aicp_sys_exec(ctx, s.data, &res, err)) != 0)
        goto out;
    size_t len = 0;
    if (res.rc != 0 || aicp_sys_field(res.out, "fstab", &len) == NULL) {
        rc = aicp_sys_fail(err, &res, "failed to read %s", fstab);
        goto out;
    }
    const char *content = aicp_sys_section(res.out, "fstab", 1, &len);
    size_t mlen = 0;
    const char *mnt = aicp_sys_field(res.out, "mnt", &mlen);
    long long dir = aicp_sys_field_int(res.out, "dir", 0);
    json_t *cur = json_pack("{s:b, s:b, s:b, s:s%}", "mounted", mnt != NULL, "exists", dir != 0,
                            "is_dir", dir == 1, "fstab", content, len);
    if (mnt)
        json_object_set_new(cur, "mount", json_stringn(mnt, mlen));
    *current = cur;
    aicp_sys_result(ctx, "name", json_string(path));
    static const char *const keys[] = {"src", "fstype", "dump", "passno", "fstab"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (aicp_args_str(args, keys[i]))
            aicp_sys_result(ctx, keys[i], json_string(aicp_args_str(args, keys[i])));
    char *opts = want_opts(args);
    aicp_sys_result(ctx, "opts", opts ? json_string(opts) : NULL);
    free(opts);
    aicp_sys_result(ctx, "boot", json_boolean(aicp_args_bool(args, "boot", 1)));
out:
    aicp_exec_result_clear(&res);
    aicp_buf_free(&s);
    free(path);
    free(esc);
    return rc;
}

/* One fstab line split into its fields (views into the line). */
struct fstab_entry {
    const char *f[6];
    size_t len[6];
    int n;
};

static int split_fields(const char *line, size_t len, struct fstab_entry *e)
{
    const char *p = line, *end = line + len;
    e->n = 0;
    while (p < end) {
        while (p < end && isspace((unsigned char)*p))
            p++;
        if (p >= end)
            break;
        if (e->n == 6)
            return 7;
        e->f[e->n] = p;
        while (p < end && !isspace((unsigned char)*p))
            p++;
        e->len[e->n] = (size_t)(p - e->f[e->n]);
        e->n++;
    }
    return e->n;
}

static int field_is(const struct fstab_entry *e, int i, const char *v)
{
    if (i >= e->n)
        return strcmp(v, "0") == 0; /* dump and passno default to 0 */
    return e->len[i] == strlen(v) && memcmp(e->f[i], v, e->len[i]) == 0;
}

/* Builds the new fstab (Ansible's set_mount/unset_mount): lines for the
 * mount point are replaced by the desired one when any field differs (or
 * dropped when remove), an entry is appended when there was none; every
 * other line stays as it was. *changed says whether anything differs. */
static int edit_fstab(const char *content, const char *const want[6], int remove,
                      struct aicp_buf *out, int *changed)
{
    const char *p = content ? content : "", *end = p + strlen(p), *line;
    size_t len;
    int rc = 0, found = 0;
    *changed = 0;
    while (rc == 0 && aicp_sys_next_line(&p, end, &line, &len)) {
        struct fstab_entry e;
        const char *t = line;
        while (t < line + len && isspace((unsigned char)*t))
            t++;
        int n = t < line + len && *t != '#' ? split_fields(line, len, &e) : 0;
        int match =
            n >= 4 && n <= 6 && field_is(&e, 1, want[1]) &&
            !(field_is(&e, 1, "none") && field_is(&e, 2, "swap") && !field_is(&e, 0, want[0]));
        if (!match) {
            rc = aicp_buf_printf(out, "%.*s\n", (int)len, line);
            continue;
        }
        found = 1;
        if (remove) {
            *changed = 1;
            continue;
        }
        int same = 1;
        for (int i = 0; i < 6; i++)
            same = same && field_is(&e, i, want[i]);
        if (same) {
            rc = aicp_buf_printf(out, "%.*s\n", (int)len, line);
        } else {
            *changed = 1;
            rc = aicp_buf_printf(out, "%s %s %s %s %s %s\n", want[0], want[1], want[2], want[3],
                                 want[4], want[5]);
        }
    }
    if (rc == 0 && !remove && !found) {
        *changed = 1;
        rc = aicp_buf_printf(out, "%s %s %s %s %s %s\n", want[0], want[1], want[2], want[3],
                             want[4], want[5]);
    }
    return rc;
}

static int mount_diff(const json_t *current, const struct aicp_args *args,
                      struct aicp_change **change, struct aicp_err *err)
{
    const char *state = aicp_args_str(args, "state");
    char *path = clean_path(aicp_args_str(args, "path"));
    char *opts = want_opts(args);
    char *want[6] = {NULL};
    struct aicp_buf out = AICP_BUF_INIT;
    struct aicp_change *c = NULL;
    int rc = 0, changed = 0;
    int mounted = json_is_true(json_object_get(current, "mounted"));
    int exists = json_is_true(json_object_get(current, "exists"));
    int st_mounted = strcmp(state, "mounted") == 0, st_present = strcmp(state, "present") == 0;
    int st_absent = strcmp(state, "absent") == 0;
    int edit = st_mounted || st_present || st_absent || strcmp(state, "absent_from_fstab") == 0;

    if (path == NULL || opts == NULL) {
        rc = AICP_ENOMEM;
        goto out;
    }
    if (st_mounted || st_present) {
        const char *miss_src = aicp_args_str(args, "src") ? "" : "src";
        const char *miss_fs = aicp_args_str(args, "fstype") ? "" : "fstype";
        if (*miss_src || *miss_fs) {
            rc = aicp_err_set(err, AICP_EINVAL,
                              "state is %s but all of the following are missing: %s%s%s", state,
                              miss_src, *miss_src && *miss_fs ? ", " : "", miss_fs);
            goto out;
        }
    }
    const char *raw[6] = {aicp_args_str(args, "src"),    path,
                          aicp_args_str(args, "fstype"), opts,
                          aicp_args_str(args, "dump"),   aicp_args_str(args, "passno")};
    for (int i = 0; i < 6; i++)
        if ((want[i] = fstab_escape(raw[i] ? raw[i] : (i >= 4 ? "0" : ""))) == NULL) {
            rc = AICP_ENOMEM;
            goto out;
        }
    if (edit && (rc = edit_fstab(json_string_value(json_object_get(current, "fstab")),
                                 (const char *const *)want, !(st_mounted || st_present), &out,
                                 &changed)) != 0)
        goto out;
    json_t *plan = json_object();
    if (changed)
        json_object_set_new(plan, "fstab_content", json_stringn(out.data ? out.data : "", out.len));
    if (st_mounted && !exists)
        json_object_set_new(plan, "mkdir", json_true());
    if (st_mounted && !mounted)
        json_object_set_new(plan, "mount", json_true());
    if ((st_mounted && mounted && changed) || strcmp(state, "remounted") == 0)
        json_object_set_new(plan, "remount", json_true());
    if ((strcmp(state, "unmounted") == 0 && mounted) || (st_absent && changed && mounted))
        json_object_set_new(plan, "umount", json_true());
    if (st_absent && changed && exists)
        json_object_set_new(plan, "rmdir", json_true());
    if (strcmp(state, "remounted") == 0)
        json_object_set_new(plan, "no_verify", json_true());
    if ((rc = aicp_change_new(&c)) != 0) {
        json_decref(plan);
        goto out;
    }
    c->plan = plan;
    c->needed = changed || json_object_get(plan, "mount") || json_object_get(plan, "remount") ||
                json_object_get(plan, "umount");
    int in_fstab_after = st_mounted || st_present ? 1 : edit ? 0 : -1;
    c->before = json_pack("{s:s, s:b}", "path", path, "mounted", mounted);
    c->after =
        json_pack("{s:s, s:b}", "path", path, "mounted",
                  json_object_get(plan, "mount") || (mounted && !json_object_get(plan, "umount")));
    if (in_fstab_after >= 0) {
        json_object_set_new(c->before, "fstab",
                            json_boolean(changed ? !in_fstab_after : in_fstab_after));
        json_object_set_new(c->after, "fstab", json_boolean(in_fstab_after));
        if (changed && in_fstab_after)
            json_object_set_new(c->after, "fstab_entry",
                                json_pack("{s:s, s:s, s:s, s:s, s:s}", "src", want[0], "fstype",
                                          want[2], "opts", want[3], "dump", want[4], "passno",
                                          want[5]));
    }
    *change = c;
    c = NULL;
out:
    aicp_change_free(c);
    aicp_buf_free(&out);
    for (int i = 0; i < 6; i++)
        free(want[i]);
    free(path);
    free(opts);
    return rc;
}

/* "mount [-T FSTAB] " with the fstab option only for a non-default file. */
static int mount_cmd(struct aicp_buf *s, const char *fstab, const char *extra)
{
    int rc = aicp_buf_puts(s, "mount ");
    if (rc == 0 && strcmp(fstab, "/etc/fstab") != 0) {
        rc = aicp_buf_puts(s, "-T ");
        rc = rc ? rc : aicp_sys_word(s, fstab);
    }
    return rc ? rc : aicp_buf_puts(s, extra);
}

static int mount_apply(struct aicp_ctx *ctx, const struct aicp_change *change, struct aicp_err *err)
{
    const struct aicp_args *args = change->args;
    const char *fstab = aicp_args_str(args, "fstab");
    const json_t *plan = change->plan;
    const json_t *content = json_object_get(plan, "fstab_content");
    char *path = clean_path(aicp_args_str(args, "path"));
    struct aicp_buf s = AICP_BUF_INIT;
    struct aicp_exec_result res;
    memset(&res, 0, sizeof(res));
    int rc = path ? 0 : AICP_ENOMEM;

    if (rc == 0 && content &&
        (rc = aicp_conn_put(ctx->conn, fstab, json_string_value(content),
                            json_string_length(content), -1, NULL, NULL, ctx->become, err)) != 0)
        goto out;
    /* Each step names itself on failure so the message says which one. */
    rc = rc ? rc : aicp_buf_puts(&s, "LC_ALL=C; export LC_ALL\np=");
    rc = rc ? rc : aicp_buf_shquote(&s, path);
    rc = rc ? rc
            : aicp_buf_puts(&s, "\nfail() { echo '" AICP_SYS_TAG "failed='\"$1\" >&2; "
                                "exit 1; }\n");
    if (rc == 0 && json_is_true(json_object_get(plan, "mkdir")))
        rc = aicp_buf_puts(&s, "mkdir -p -- \"$p\" || fail mkdir\n");
    if (rc == 0 && json_is_true(json_object_get(plan, "mount"))) {
        rc = mount_cmd(&s, fstab, "");
        rc = rc ? rc : aicp_buf_puts(&s, "\"$p\" || fail mount\n");
    }
    if (rc == 0 && json_is_true(json_object_get(plan, "remount"))) {
        /* As Ansible: when -o remount is refused, unmount and mount. */
        rc = mount_cmd(&s, fstab, "-o remount \"$p\" || { umount \"$p\" && ");
        rc = rc ? rc : mount_cmd(&s, fstab, "\"$p\"; } || fail remount\n");
    }
    if (rc == 0 && json_is_true(json_object_get(plan, "umount")))
        rc = aicp_buf_puts(&s, "umount \"$p\" || fail umount\n");
    if (rc == 0 && json_is_true(json_object_get(plan, "rmdir")))
        rc = aicp_buf_puts(&s, "if [ -d \"$p\" ]; then rmdir -- \"$p\" || fail rmdir; fi\n");
    if (rc)
        goto out;
    if ((rc = aicp_sys_exec(ctx, s.data, &res, err)) != 0)
        goto out;
    if (res.rc != 0) {
        const char *what = "mounting";
        char *tag = res.err ? strstr(res.err, AICP_SYS_TAG "failed=") : NULL;
        if (tag) {
            const char *step = tag + sizeof(AICP_SYS_TAG "failed=") - 1;
            what = strncmp(step, "umount", 6) == 0    ? "unmounting"
                   : strncmp(step, "remount", 7) == 0 ? "remounting"
                   : strncmp(step, "rmdir", 5) == 0   ? "rmdir"
                   : strncmp(step, "mkdir", 5) == 0   ? "creating"
                                                      : "mounting";
            *tag = '\0';
            res.err_len = (size_t)(tag - res.err);
        }
        rc = aicp_sys_fail(err, &res, "Error %s %s", what, path);
    }
out:
    aicp_exec_result_clear(&res);
    aicp_buf_free(&s);
    free(path);
    return rc;
}

/* ansible.posix.mount's required_if: state mounted, present or ephemeral
 * needs src and fstype. Checked when the playbook is loaded, so that such a
 * task stops the run before anything has changed. */
static int mount_validate(const struct aicp_args *args, const json_t *given, int static_only,
                          struct aicp_err *err)
{
    const json_t *sv = json_object_get(given, "state");
    (void)args;
    if (!json_is_string(sv) || (static_only && aicp_args_is_template(sv)))
        return 0;
    const char *state = json_string_value(sv);
    if (strcmp(state, "mounted") != 0 && strcmp(state, "present") != 0)
        return 0;
    const char *miss_src = json_object_get(given, "src") ? "" : "src";
    const char *miss_fs = json_object_get(given, "fstype") ? "" : "fstype";
    if (*miss_src == '\0' && *miss_fs == '\0')
        return 0;
    return aicp_err_set(err, AICP_EINVAL,
                        "state is %s but all of the following are missing: %s%s%s", state, miss_src,
                        *miss_src && *miss_fs ? ", " : "", miss_fs);
}

static const struct aicp_module_ops mount_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = mount_check,
    .diff = mount_diff,
    .apply = mount_apply,
};

const struct aicp_module aicp_mod_mount = {
    .name = "mount",
    .summary = "Control mount points and their fstab entries",
    .args = mount_args,
    .flags = AICP_MOD_NEEDS_SSH,
    .ops = &mount_ops,
    .validate = mount_validate,
};
