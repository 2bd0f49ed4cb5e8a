/* The engine shared by the whole-file writers (copy, template, lineinfile):
 * one check round trip that reads the target, its parent directory and a
 * remote source; a plan that compares them with the wanted content, mode,
 * owner and group (with a unified diff for --diff); and the apply that
 * makes the backup, writes the file atomically (or to a temporary file
 * that "validate" checks before it is renamed into place) and sets its
 * attributes. The record format and the smaller helpers it builds on are
 * in fileutil.c. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "err.h"
#include "fileutil.h"
#include "module.h"
#include "util.h"

int aicp_fu_content_check(struct aicp_ctx *ctx, const char *dest, const char *dir_base,
                          const char *remote_src, int whole, json_t **out, struct aicp_err *err)
{
    struct aicp_buf b = AICP_BUF_INIT;
    size_t dl = strlen(dest);
    int slash = dl > 1 && dest[dl - 1] == '/';
    int rc = aicp_buf_puts(&b, "_d=");
    rc = rc ? rc : aicp_buf_shquote(&b, dest);
    rc = rc ? rc : aicp_buf_puts(&b, "\n_t=\"$_d\"\n");
    if (dir_base) {
        rc = rc ? rc
                : aicp_buf_printf(&b, "if %s[ -d \"$_d\" ]; then _t=\"${_d%%/}/\"",
                                  slash ? "true || " : "");
        rc = rc ? rc : aicp_buf_shquote(&b, dir_base);
        rc = rc ? rc : aicp_buf_puts(&b, "; fi\n");
    }
    rc = rc ? rc : aicp_buf_puts(&b, "printf 'x V path %s\\n' \"$_t\"\n_p=\"$_t\"\n");
    rc = rc ? rc : aicp_fu_sh_stat(&b, "t", NULL, 0);
    rc = rc ? rc : aicp_fu_sh_hash(&b, "t", NULL, "sha1");
    rc = rc ? rc : aicp_fu_sh_content(&b, "t", NULL, whole ? -1 : AICP_FU_DIFF_MAX);
    rc = rc ? rc : aicp_buf_puts(&b, "_p=$(dirname -- \"$_t\")\n");
    rc = rc ? rc : aicp_fu_sh_stat(&b, "pd", NULL, 1);
    if (remote_src) {
        rc = rc ? rc : aicp_fu_sh_stat(&b, "s", remote_src, 1);
        rc = rc ? rc : aicp_fu_sh_hash(&b, "s", NULL, "sha1");
        /* Ansible's md5sum result; absent where md5 is not allowed (FIPS). */
        rc = rc ? rc : aicp_fu_sh_hash(&b, "s_md5", NULL, "md5");
    }
    if (rc != 0) {
        aicp_buf_free(&b);
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    json_t *cur = NULL;
    rc = aicp_fu_check_run(ctx, b.data, &cur, err);
    aicp_buf_free(&b);
    if (rc != 0)
        return rc;
    const char *path = json_string_value(json_object_get(json_object_get(cur, "x"), "path"));
    json_object_set_new(cur, "path", json_string(path ? path : dest));
    json_object_set_new(cur, "dest_slash", json_boolean(slash));
    json_object_del(cur, "x");
    *out = cur;
    return 0;
}

static int set_str(json_t *o, const char *k, const char *v)
{
    return v ? json_object_set_new(o, k, json_string(v)) : 0;
}

int aicp_fu_content_diff(struct aicp_change **out, const json_t *current, const struct aicp_args *a,
                         const struct aicp_fu_want *w, struct aicp_err *err)
{
    struct aicp_change *c = NULL;
    const json_t *t = json_object_get(current, "t"), *pd = json_object_get(current, "pd");
    const char *path = json_string_value(json_object_get(current, "path"));
    int exists = json_is_true(json_object_get(t, "exists"));
    const char *type = json_string_value(json_object_get(t, "type"));
    int rc = aicp_fu_change_new(&c, err);
    if (rc != 0)
        return rc;
    if (path == NULL)
        path = "?";
    if (exists && type && strcmp(type, "directory") == 0) {
        rc = aicp_err_set(err, AICP_EFAILED, "Destination %s is a directory", path);
        goto out;
    }
    const char *cur_sum = json_string_value(json_object_get(t, "checksum"));
    int content = !exists || (type && strcmp(type, "file") != 0) || cur_sum == NULL ||
                  w->checksum == NULL || strcmp(cur_sum, w->checksum) != 0;
    if (exists && !w->force)
        content = 0;
    json_t *plan = c->plan;
    if (content && !json_is_true(json_object_get(pd, "exists"))) {
        char *dir = aicp_fu_dirname(path);
        if (w->create_dirs) {
            json_object_set_new(plan, "mkdir", json_string(dir ? dir : "."));
        } else {
            rc = aicp_err_set(err, AICP_EFAILED, "Destination directory %s does not exist",
                              dir ? dir : path);
            free(dir);
            goto out;
        }
        free(dir);
    }
    int mode = -1;
    rc = aicp_fu_attrs_diff(t, a, w->mode, 0, c->before, c->after, &mode, err);
    if (rc < 0)
        goto out;
    c->needed = content || rc > 0;
    rc = 0;
    json_object_set_new(c->before, "path", json_string(path));
    json_object_set_new(c->after, "path", json_string(path));
    json_object_set_new(c->before, "state", json_string(exists ? "file" : "absent"));
    json_object_set_new(c->after, "state", json_string("file"));
    set_str(plan, "path", path);
    json_object_set_new(plan, "mode", json_integer(mode));
    if (content && mode < 0 && exists)
        json_object_set(plan, "cur_mode", json_object_get(t, "mode_int"));
    set_str(plan, "owner", aicp_fu_str(a, "owner"));
    set_str(plan, "group", aicp_fu_str(a, "group"));
    set_str(plan, "backup_key", w->backup_key ? w->backup_key : "backup_file");
    json_object_set_new(plan, "content", json_boolean(content));
    if (content) {
        if (cur_sum)
            json_object_set_new(c->before, "checksum", json_string(cur_sum));
        set_str(c->after, "checksum", w->checksum);
        if (w->remote_src)
            set_str(plan, "remote_src", w->remote_src);
        else if (w->local_src)
            set_str(plan, "local_src", w->local_src);
        else if (w->text && aicp_fu_is_text(w->text, w->len))
            json_object_set_new(plan, "text", json_stringn(w->text, w->len));
        else if (w->text) {
            char *b64 = NULL;
            if (aicp_fu_b64(&b64, w->text, w->len) != 0) {
                rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
                goto out;
            }
            json_object_set_new(plan, "text_b64", json_string(b64));
            free(b64);
        }
        if (exists && aicp_fu_bool(a, "backup", 0))
            json_object_set_new(plan, "backup", json_true());
        set_str(plan, "validate", aicp_fu_str(a, "validate"));
        /* The unified diff, when both sides are small text. */
        const char *before = exists ? json_string_value(json_object_get(t, "content")) : "";
        const char *after = w->text && aicp_fu_is_text(w->text, w->len) ? w->text : w->local_text;
        if (before && after && strlen(after) <= (size_t)AICP_FU_DIFF_MAX) {
            char la[4200], lb[4200];
            /* Ansible's headers: no name for a file that is not there yet. */
            if (w->content_labels) {
                snprintf(la, sizeof(la), "before: %s (content)", path);
                snprintf(lb, sizeof(lb), "after: %s (content)", path);
            } else {
                snprintf(la, sizeof(la), exists ? "before: %s" : "before", path);
                snprintf(lb, sizeof(lb), "after: %s", w->label ? w->label : path);
            }
            if (aicp_fu_unified_diff(&c->diff_text, before, after, la, lb) != 0) {
                rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
                goto out;
            }
        }
    }
out:
    if (rc != 0) {
        aicp_change_free(c);
        c = NULL;
    }
    *out = c;
    return rc;
}

static int run_script(struct aicp_ctx *ctx, const char *script, const char *what, char **outp,
                      struct aicp_err *err)
{
    struct aicp_exec_result res;
    int rc = aicp_fu_exec(ctx, script, NULL, 0, &res, err);
    if (rc == 0 && res.rc != 0) {
        size_t n = res.err ? strlen(res.err) : 0;
        while (n && (res.err[n - 1] == '\n' || res.err[n - 1] == ' '))
            res.err[--n] = '\0';
        rc = aicp_err_set(err, AICP_EFAILED, "%s failed (rc %d): %s", what, res.rc,
                          n ? res.err : (res.out ? res.out : ""));
    }
    if (rc == 0 && outp) {
        *outp = res.out;
        res.out = NULL;
    }
    aicp_exec_result_clear(&res);
    return rc;
}

static int merge_result(struct aicp_ctx *ctx, const json_t *plan)
{
    const json_t *r = json_object_get(plan, "result");
    if (ctx->result && json_is_object(r))
        return json_object_update(ctx->result, (json_t *)r) ? AICP_ENOMEM : 0;
    return 0;
}

/* The bytes to write, from the plan. *data malloc'ed. */
static int plan_data(char **data, size_t *len, const json_t *plan, struct aicp_err *err)
{
    const char *s;
    *data = NULL;
    *len = 0;
    if ((s = json_string_value(json_object_get(plan, "text"))) != NULL) {
        *len = json_string_length(json_object_get(plan, "text"));
        *data = aicp_strndup(s, *len);
        return *data ? 0 : aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    if ((s = json_string_value(json_object_get(plan, "text_b64"))) != NULL)
        return aicp_fu_unb64(data, len, s) == 0
                   ? 0
                   : aicp_err_set(err, AICP_EINVAL, "bad content in the plan");
    if ((s = json_string_value(json_object_get(plan, "local_src"))) != NULL)
        return aicp_read_file(data, len, s, err);
    *data = aicp_strdup("");
    return *data ? 0 : aicp_err_set(err, AICP_ENOMEM, "out of memory");
}

/* Shell that copies the remote file src to a fresh mktemp file "$_t" next
 * to path, the way aicp_conn_put writes one: created 0600, given its final
 * mode, owner and ACL while still empty, filled, fsync'ed. The caller
 * renames it into place. Without a mode, an existing file's mode is kept
 * and a new one gets src's, less the umask (as cp does). */
static int remote_copy_sh(struct aicp_buf *b, const char *src, const char *path, int mode,
                          const char *owner, const char *group)
{
    char *dir = aicp_fu_dirname(path);
    int rc = dir ? 0 : AICP_ENOMEM;
    rc = rc ? rc : aicp_buf_puts(b, "_s=");
    rc = rc ? rc : aicp_buf_shquote(b, src);
    rc = rc ? rc : aicp_buf_puts(b, "\n_p=");
    rc = rc ? rc : aicp_buf_shquote(b, path);
    rc = rc ? rc : aicp_buf_puts(b, "\n_t=$(mktemp ");
    rc = rc ? rc : aicp_buf_shquote(b, dir ? dir : ".");
    rc = rc ? rc : aicp_buf_puts(b, "\"/.aicp-tmp.XXXXXX\") || exit 1\n_k() {\n"
                                  "  if [ -e \"$_p\" ] && command -v getfacl >/dev/null 2>&1; then "
                                  "getfacl -p -- \"$_p\" 2>/dev/null | setfacl --set-file=- -- "
                                  "\"$_t\" 2>/dev/null; fi\n");
    if (mode >= 0)
        rc = rc ? rc : aicp_buf_printf(b, "  chmod %04o \"$_t\" || return 1\n", (unsigned)mode);
    else
        rc = rc ? rc : aicp_buf_puts(b, "  chmod \"$(printf %o $((0$(stat -L -c %a -- \"$_s\") & "
                                      "0777 & ~0$(umask))))\" \"$_t\" || return 1\n");
    rc = rc ? rc : aicp_buf_puts(b, "  if [ -e \"$_p\" ]; then chown \"$(stat -L -c %u:%g \"$_p\")\" "
                                  "\"$_t\" 2>/dev/null; fi\n");
    if (owner && *owner) {
        rc = rc ? rc : aicp_buf_puts(b, "  chown ");
        rc = rc ? rc : aicp_buf_shquote(b, owner);
        rc = rc ? rc : aicp_buf_puts(b, " \"$_t\" || return 1\n");
    }
    if (group && *group) {
        rc = rc ? rc : aicp_buf_puts(b, "  chgrp ");
        rc = rc ? rc : aicp_buf_shquote(b, group);
        rc = rc ? rc : aicp_buf_puts(b, " \"$_t\" || return 1\n");
    }
    /* fd 3 is opened before the chmod, so a read-only mode cannot stop
     * the write. */
    rc = rc ? rc : aicp_buf_puts(b, "  cat -- \"$_s\" >&3\n}\n"
                                  "_k 3>\"$_t\" && { sync \"$_t\" 2>/dev/null || :; } || "
                                  "{ rm -f -- \"$_t\"; exit 1; }\n");
    free(dir);
    return rc ? AICP_ENOMEM : 0;
}

int aicp_fu_content_apply(struct aicp_ctx *ctx, const struct aicp_change *c, struct aicp_err *err)
{
    const json_t *plan = c->plan;
    struct aicp_buf b = AICP_BUF_INIT, tref = AICP_BUF_INIT;
    char *out = NULL, *data = NULL, *tmp = NULL;
    size_t len = 0;
    int rc = 0;
    const char *script = json_string_value(json_object_get(plan, "script"));
    if (script != NULL) {
        rc = run_script(ctx, script, "the change", NULL, err);
        goto out;
    }
    const char *path = json_string_value(json_object_get(plan, "path"));
    const char *owner = json_string_value(json_object_get(plan, "owner"));
    const char *group = json_string_value(json_object_get(plan, "group"));
    const char *mkdir = json_string_value(json_object_get(plan, "mkdir"));
    const char *validate = json_string_value(json_object_get(plan, "validate"));
    const char *remote = json_string_value(json_object_get(plan, "remote_src"));
    int mode = (int)json_integer_value(json_object_get(plan, "mode"));
    int content = json_is_true(json_object_get(plan, "content"));
    if (path == NULL) {
        rc = aicp_err_set(err, AICP_EINVAL, "plan without a path");
        goto out;
    }
    if (!content) {
        if ((rc = aicp_fu_sh_attrs(&b, path, mode, owner, group, 0, 0)) != 0 ||
            (rc = run_script(ctx, b.data ? b.data : ":", path, NULL, err)) != 0)
            goto out;
        goto done;
    }
    int put_mode = mode >= 0 ? mode : -1;
    if (put_mode < 0 && json_is_integer(json_object_get(plan, "cur_mode")))
        put_mode = (int)json_integer_value(json_object_get(plan, "cur_mode"));
    /* Step 1 (when needed): parent directories and the backup. */
    if (mkdir) {
        rc = aicp_buf_puts(&b, "mkdir -p -- ");
        rc = rc ? rc : aicp_buf_shquote(&b, mkdir);
        rc = rc ? rc : aicp_buf_puts(&b, " || exit 1\n");
    }
    if (json_is_true(json_object_get(plan, "backup"))) {
        rc = rc ? rc : aicp_buf_puts(&b, "_p=");
        rc = rc ? rc : aicp_buf_shquote(&b, path);
        /* Ansible's backup name: PATH.PID.YYYY-MM-DD@HH:MM:SS~ */
        rc = rc ? rc
                : aicp_buf_puts(&b, "\n_b=\"$_p.$$.$(date +%Y-%m-%d@%H:%M:%S)~\"\n"
                                    "cp -p -- \"$_p\" \"$_b\" || exit 1\n"
                                    "printf '%s' \"$_b\"\n");
    }
    if (rc != 0)
        goto oom;
    if (b.len) {
        if ((rc = run_script(ctx, b.data, path, &out, err)) != 0)
            goto out;
        if (out && *out && ctx->result) {
            const char *key = json_string_value(json_object_get(plan, "backup_key"));
            json_object_set_new(ctx->result, key ? key : "backup_file", json_string(out));
        }
        aicp_buf_free(&b);
    }
    /* Step 2: the content, straight to its place, or to a temp file that
     * validate checks before it is renamed over the destination. tref is
     * that file as a shell word: "$_t", a mktemp name, for a remote source. */
    if (remote) {
        if (remote_copy_sh(&b, remote, path, put_mode, owner, group) != 0 ||
            aicp_buf_puts(&tref, "\"$_t\"") != 0)
            goto oom;
    } else if (validate) {
        struct aicp_buf tb = AICP_BUF_INIT;
        char *dir = aicp_fu_dirname(path);
        if (dir == NULL || aicp_buf_printf(&tb, "%s/.%s.aicp.%ld.tmp", dir, aicp_fu_basename(path),
                                           (long)getpid()) != 0) {
            free(dir);
            aicp_buf_free(&tb);
            goto oom;
        }
        free(dir);
        tmp = aicp_buf_steal(&tb);
        if (aicp_buf_shquote(&tref, tmp) != 0)
            goto oom;
    }
    if (!remote) {
        if ((rc = plan_data(&data, &len, plan, err)) != 0)
            goto out;
        rc = aicp_conn_put(ctx->conn, tmp ? tmp : path, data, len, put_mode, owner, group,
                           ctx->become, err);
        if (rc != 0)
            goto out;
    }
    if (validate) {
        const char *pct = strstr(validate, "%s");
        if (pct == NULL) {
            rc = aicp_err_set(err, AICP_EFAILED, "validate must contain %%s: %s", validate);
            goto out;
        }
        rc = aicp_buf_append(&b, validate, (size_t)(pct - validate));
        rc = rc ? rc : aicp_buf_puts(&b, tref.data);
        rc = rc ? rc : aicp_buf_puts(&b, pct + 2);
        rc = rc ? rc : aicp_buf_puts(&b, " 1>&2 || { _r=$?; rm -f -- ");
        rc = rc ? rc : aicp_buf_puts(&b, tref.data);
        rc = rc ? rc : aicp_buf_puts(&b, "; exit $_r; }\n");
    }
    if (tref.len) {
        rc = rc ? rc : aicp_buf_puts(&b, "mv -f -- ");
        rc = rc ? rc : aicp_buf_puts(&b, tref.data);
        rc = rc ? rc : aicp_buf_puts(&b, " ");
        rc = rc ? rc : aicp_buf_shquote(&b, path);
        rc = rc ? rc : aicp_buf_puts(&b, " || exit 1\n");
        if (remote) {
            /* The rename itself is made durable, as aicp_conn_put does. */
            rc = rc ? rc : aicp_buf_puts(&b, "sync \"${_t%/*}\" 2>/dev/null\nexit 0\n");
        }
        if (rc != 0)
            goto oom;
        if ((rc = run_script(ctx, b.data, validate ? "failed to validate" : path, NULL, err)) != 0)
            goto out;
    }
done:
    rc = merge_result(ctx, plan);
    goto out;
oom:
    rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
out:
    if (rc == 0 && script != NULL)
        rc = merge_result(ctx, plan);
    aicp_buf_free(&b);
    aicp_buf_free(&tref);
    free(out);
    if (data != NULL)
        explicit_bzero(data, len); /* file contents: may be a key or a password file */
    free(data);
    free(tmp);
    return rc;
}
