/* The sysctl module (ansible.posix.sysctl): keeps one "key=value" entry in
 * a sysctl file (/etc/sysctl.conf or a drop-in under /etc/sysctl.d), loads
 * the file with `sysctl -p FILE` when it changed, and with sysctl_set also
 * keeps the live kernel value (`sysctl -n` / `sysctl -w`). The check is one
 * round trip that reads the file and, when needed, the live value; the file
 * is rewritten atomically, keeping every other line as it was. */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h"
#include "err.h"
#include "module.h"
#include "sysutil.h"
#include "util.h"

static const struct aicp_arg_spec sysctl_args[] = {
    {.name = "name",
     .type = AICP_ARG_STR,
     .required = 1,
     .aliases = "key",
     .help = "The dot-separated path (key) of the sysctl variable, e.g. net.ipv4.ip_forward."},
    {.name = "value",
     .type = AICP_ARG_STR,
     .aliases = "val",
     .help = "Desired value of the variable; required with state=present. Booleans "
             "(yes/no/true/false) are written as 1/0."},
    {.name = "state",
     .type = AICP_ARG_STR,
     .def = "present",
     .choices = "present|absent",
     .help = "Whether the entry should be present in or absent from sysctl_file."},
    {.name = "sysctl_file",
     .type = AICP_ARG_PATH,
     .def = "/etc/sysctl.conf",
     .help = "The file to edit; created when missing."},
    {.name = "reload",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .help = "Load sysctl_file with `sysctl -p FILE` after a change."},
    {.name = "sysctl_set",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Also check the live value with `sysctl -n` and set it with `sysctl -w`."},
    {.name = "ignoreerrors",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Ignore unknown keys when reloading (`sysctl -e -p`)."},
    {.name = NULL},
};

/* A key may be dotted or slashed but must not look like an option or hold
 * anything a shell or the file format would interpret. */
static int key_ok(const char *k)
{
    if (k == NULL || *k == '\0' || *k == '-')
        return 0;
    for (const char *p = k; *p; p++)
        if (!isalnum((unsigned char)*p) && strchr("._-/*:@", *p) == NULL)
            return 0;
    return 1;
}

/* Ansible's normalisation: booleans become 1/0, other values are trimmed. */
static char *norm_value(const char *v)
{
    if (v == NULL)
        return NULL;
    static const char *const t[] = {"yes", "on", "true", "y", "t", "1"};
    static const char *const f[] = {"no", "off", "false", "n", "f", "0"};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        if (strcasecmp(v, t[i]) == 0)
            return aicp_strdup("1");
        if (strcasecmp(v, f[i]) == 0)
            return aicp_strdup("0");
    }
    while (isspace((unsigned char)*v))
        v++;
    size_t n = strlen(v);
    while (n > 0 && isspace((unsigned char)v[n - 1]))
        n--;
    return aicp_strndup(v, n);
}

/* Values compare word by word, so "32768\t60999" equals "32768 60999". */
static int values_equal(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return 0;
    for (;;) {
        while (isspace((unsigned char)*a))
            a++;
        while (isspace((unsigned char)*b))
            b++;
        if (*a == '\0' || *b == '\0')
            return *a == *b;
        while (*a && !isspace((unsigned char)*a) && *a == *b) {
            a++;
            b++;
        }
        if ((*a && !isspace((unsigned char)*a)) || (*b && !isspace((unsigned char)*b)))
            return 0;
    }
}

/* Splits an entry line into key and value views; 0 for blank lines,
 * comments and lines without '='. A leading '-' (sysctl.d's "ignore
 * errors" mark) is not part of the key. */
static int parse_entry(const char *line, size_t len, const char **k, size_t *klen, const char **v,
                       size_t *vlen)
{
    while (len > 0 && isspace((unsigned char)*line)) {
        line++;
        len--;
    }
    if (len == 0 || *line == '#' || *line == ';')
        return 0;
    const char *eq = memchr(line, '=', len);
    if (eq == NULL)
        return 0;
    *k = line;
    *klen = (size_t)(eq - line);
    if (*klen > 0 && **k == '-') {
        (*k)++;
        (*klen)--;
    }
    while (*klen > 0 && isspace((unsigned char)(*k)[*klen - 1]))
        (*klen)--;
    *v = eq + 1;
    *vlen = len - (size_t)(eq + 1 - line);
    while (*vlen > 0 && isspace((unsigned char)**v)) {
        (*v)++;
        (*vlen)--;
    }
    while (*vlen > 0 && isspace((unsigned char)(*v)[*vlen - 1]))
        (*vlen)--;
    return 1;
}

static int sysctl_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                        struct aicp_err *err)
{
    const char *name = aicp_args_str(args, "name");
    const char *file = aicp_args_str(args, "sysctl_file");
    const char *state = aicp_args_str(args, "state");
    int want_live = aicp_args_bool(args, "sysctl_set", 0) && strcmp(state, "present") == 0;
    struct aicp_buf s = AICP_BUF_INIT;
    struct aicp_exec_result res;
    memset(&res, 0, sizeof(res));
    int rc;

    if (!key_ok(name)) {
        rc = aicp_err_set(err, AICP_EINVAL, "invalid sysctl key '%s'", name ? name : "");
        goto out;
    }
    rc = aicp_buf_puts(&s, "LC_ALL=C; export LC_ALL\n");
    if (rc == 0 && want_live) {
        rc = aicp_buf_puts(&s, "v=$(sysctl -n ");
        rc = rc ? rc : aicp_buf_shquote(&s, name);
        rc = rc ? rc
                : aicp_buf_puts(&s, " 2>&1); r=$?\nprintf '" AICP_SYS_TAG "live=%s:' \"$r\"\n"
                                    "printf '%s' \"$v\" | tr '\\n' ' '; echo\n");
    }
    rc = rc ? rc : aicp_buf_puts(&s, "f=");
    rc = rc ? rc : aicp_buf_shquote(&s, file);
    rc =
        rc ? rc
           : aicp_buf_puts(&s, "\nif [ -f \"$f\" ]; then echo '" AICP_SYS_TAG "file=1'; "
                               "cat -- \"$f\" || exit 1; else echo '" AICP_SYS_TAG "file=0'; fi\n");
    if (rc)
        goto out;
    if ((rc = aicp_sys_exec(ctx, s.data, &res, err)) != 0)
        goto out;
    size_t flen = 0, clen = 0;
    const char *fflag = aicp_sys_field(res.out, "file", &flen);
    if (res.rc != 0 || fflag == NULL) {
        rc = aicp_sys_fail(err, &res, "failed to read %s", file);
        goto out;
    }
    const char *content = aicp_sys_section(res.out, "file", 1, &clen);
    json_t *cur = json_object();
    json_object_set_new(cur, "exists", json_boolean(flen == 1 && *fflag == '1'));
    json_object_set_new(cur, "content", json_stringn(content, clen));
    if (want_live) {
        size_t llen = 0;
        const char *l = aicp_sys_field(res.out, "live", &llen);
        const char *colon = l ? memchr(l, ':', llen) : NULL;
        long long lrc = aicp_sys_field_int(res.out, "live", 1);
        if (colon == NULL || lrc != 0) {
            size_t mlen = colon ? llen - (size_t)(colon + 1 - l) : 0;
            aicp_sys_rtrim(colon ? colon + 1 : "", &mlen);
            json_decref(cur);
            rc = aicp_err_set(err, AICP_EFAILED, "failed to read the live value of %s: %.*s", name,
                              (int)mlen, colon ? colon + 1 : "");
            goto out;
        }
        json_object_set_new(cur, "live", json_stringn(colon + 1, llen - (size_t)(colon + 1 - l)));
    }
    *current = cur;
out:
    aicp_exec_result_clear(&res);
    aicp_buf_free(&s);
    return rc;
}

static int sysctl_diff(const json_t *current, const struct aicp_args *args,
                       struct aicp_change **change, struct aicp_err *err)
{
    const char *name = aicp_args_str(args, "name");
    const char *state = aicp_args_str(args, "state");
    int present = strcmp(state, "present") == 0;
    const char *content = json_string_value(json_object_get(current, "content"));
    size_t content_len = json_string_length(json_object_get(current, "content"));
    const char *live = json_string_value(json_object_get(current, "live"));
    char *want = norm_value(aicp_args_str(args, "value"));
    char *file_value = NULL;
    struct aicp_buf out = AICP_BUF_INIT;
    struct aicp_change *c = NULL;
    int rc = 0, found = 0, file_changed = 0;

    if (present && (want == NULL || *want == '\0')) {
        rc = aicp_err_set(err, AICP_EINVAL, "value cannot be empty with state=present (sysctl %s)",
                          name);
        goto out;
    }
    /* Rewrite the file: the first entry for the key becomes the desired
     * one, later duplicates go (sysctl would apply the last one), every
     * other line stays byte for byte. */
    const char *p = content ? content : "", *end = p + (content ? content_len : 0);
    const char *line;
    size_t len;
    while (rc == 0 && aicp_sys_next_line(&p, end, &line, &len)) {
        const char *k, *v;
        size_t klen, vlen;
        int has_nl = line + len < end;
        if (parse_entry(line, len, &k, &klen, &v, &vlen) && klen == strlen(name) &&
            memcmp(k, name, klen) == 0) {
            if (!found) {
                file_value = aicp_strndup(v, vlen);
                if (present)
                    rc = aicp_buf_printf(&out, "%s=%s\n", name, want);
            }
            found++;
            continue;
        }
        rc = aicp_buf_append(&out, line, len);
        if (rc == 0 && has_nl)
            rc = aicp_buf_puts(&out, "\n");
        else if (rc == 0 && present && !found && p >= end)
            rc = aicp_buf_puts(&out, "\n"); /* an unterminated last line gets its newline */
    }
    if (rc == 0 && present && !found)
        rc = aicp_buf_printf(&out, "%s=%s\n", name, want);
    if (rc)
        goto out;
    char *file_norm = norm_value(file_value);
    if (present)
        file_changed = !found || found > 1 || !values_equal(file_norm, want);
    else
        file_changed = found > 0;
    free(file_norm);
    int set_live = present && aicp_args_bool(args, "sysctl_set", 0) && !values_equal(live, want);

    if ((rc = aicp_change_new(&c)) != 0)
        goto out;
    c->needed = file_changed || set_live;
    c->before = json_pack("{s:s, s:o}", "name", name, "value",
                          file_value ? json_string(file_value) : json_null());
    c->after =
        json_pack("{s:s, s:o}", "name", name, "value", present ? json_string(want) : json_null());
    if (live) {
        json_object_set_new(c->before, "live", json_string(live));
        json_object_set_new(c->after, "live", json_string(set_live ? want : live));
    }
    c->plan = json_pack("{s:b, s:b, s:s%}", "write", file_changed, "set", set_live, "content",
                        out.data ? out.data : "", out.len);
    if (c->before == NULL || c->after == NULL || c->plan == NULL) {
        rc = AICP_ENOMEM;
        goto out;
    }
    *change = c;
    c = NULL;
out:
    aicp_change_free(c);
    aicp_buf_free(&out);
    free(want);
    free(file_value);
    return rc;
}

static int sysctl_apply(struct aicp_ctx *ctx, const struct aicp_change *change,
                        struct aicp_err *err)
{
    const struct aicp_args *args = change->args;
    const char *name = aicp_args_str(args, "name");
    const char *file = aicp_args_str(args, "sysctl_file");
    const json_t *plan = change->plan;
    int write = json_is_true(json_object_get(plan, "write"));
    int set = json_is_true(json_object_get(plan, "set"));
    const json_t *content = json_object_get(plan, "content");
    struct aicp_buf s = AICP_BUF_INIT;
    struct aicp_exec_result res;
    memset(&res, 0, sizeof(res));
    char *want = norm_value(aicp_args_str(args, "value"));
    int rc = 0;

    if (write &&
        (rc = aicp_conn_put(ctx->conn, file, json_string_value(content),
                            json_string_length(content), -1, NULL, NULL, ctx->become, err)) != 0)
        goto out;
    /* Ansible reloads the file whenever anything changed, then sets the
     * live value; both go in one round trip. */
    rc = aicp_buf_puts(&s, "LC_ALL=C; export LC_ALL\n");
    if (rc == 0 && aicp_args_bool(args, "reload", 1)) {
        rc = aicp_buf_puts(&s, aicp_args_bool(args, "ignoreerrors", 0) ? "sysctl -e -p "
                                                                       : "sysctl -p ");
        rc = rc ? rc : aicp_buf_shquote(&s, file);
        rc = rc ? rc
                : aicp_buf_puts(&s, " >/dev/null || { echo '" AICP_SYS_TAG
                                    "failed=reload' >&2; exit 1; }\n");
    }
    if (rc == 0 && set) {
        struct aicp_buf kv = AICP_BUF_INIT;
        rc = aicp_buf_printf(&kv, "%s=%s", name, want ? want : "");
        rc = rc ? rc : aicp_buf_puts(&s, "sysctl -w ");
        rc = rc ? rc : aicp_buf_shquote(&s, kv.data);
        rc = rc ? rc : aicp_buf_puts(&s, " >/dev/null || exit 1\n");
        aicp_buf_free(&kv);
    }
    if (rc)
        goto out;
    if ((rc = aicp_sys_exec(ctx, s.data, &res, err)) != 0)
        goto out;
    if (res.rc != 0) {
        int reload_failed = res.err && strstr(res.err, AICP_SYS_TAG "failed=reload") != NULL;
        if (res.err && reload_failed) {
            char *tag = strstr(res.err, AICP_SYS_TAG "failed=reload");
            *tag = '\0';
            res.err_len = (size_t)(tag - res.err);
        }
        rc = reload_failed ? aicp_sys_fail(err, &res, "Failed to reload sysctl %s", file)
                           : aicp_sys_fail(err, &res, "setting %s failed", name);
    }
out:
    free(want);
    aicp_exec_result_clear(&res);
    aicp_buf_free(&s);
    return rc;
}

static const struct aicp_module_ops sysctl_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = sysctl_check,
    .diff = sysctl_diff,
    .apply = sysctl_apply,
};

const struct aicp_module aicp_mod_sysctl = {
    .name = "sysctl",
    .summary = "Manage entries in sysctl.conf and the live kernel parameters",
    .args = sysctl_args,
    .flags = AICP_MOD_NEEDS_SSH,
    .ops = &sysctl_ops,
};
