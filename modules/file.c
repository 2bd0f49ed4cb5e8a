/* The file module: makes a path a file (attributes only), a directory
 * (created with parents, optionally recursive attributes), a symlink, a
 * hard link, touches it, or removes it, with Ansible's file semantics and
 * messages. check() reads the path (and the link source) in one round
 * trip; diff() decides and writes the whole change as one sh script that
 * apply() runs in one more. touch changes every time, as in Ansible, so
 * its plan carries "no_verify": true for the executor. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fileutil.h"
#include "module.h"
#include "util.h"

static const struct aicp_arg_spec file_args[] = {
    {.name = "path",
     .type = AICP_ARG_PATH,
     .required = 1,
     .aliases = "dest|name",
     .help = "Path to the file being managed."},
    {.name = "state",
     .type = AICP_ARG_STR,
     .choices = "absent|directory|file|hard|link|touch",
     .help = "file: only attributes of an existing file; directory: created with parents; link "
             "/ hard: symbolic or hard link to src; touch: create or update times; absent: "
             "removed recursively. Default: the current state, or file."},
    {.name = "mode",
     .type = AICP_ARG_MODE,
     .help = "Permissions: octal ('0644') or symbolic ('u=rw,g=r,o=r')."},
    {.name = "owner", .type = AICP_ARG_STR, .help = "Name (or uid) of the owning user."},
    {.name = "group", .type = AICP_ARG_STR, .help = "Name (or gid) of the owning group."},
    {.name = "src",
     .type = AICP_ARG_PATH,
     .help = "Path of the file to link to (state link or hard). Relative symlink sources are "
             "relative to the link's directory."},
    {.name = "recurse",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Set mode/owner/group recursively (state=directory)."},
    {.name = "force",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Create links even when the source is missing or the path is a file."},
    {.name = "follow",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .help = "Follow symlinks at path for state file and directory."},
    {.name = "access_time",
     .type = AICP_ARG_STR,
     .help = "Accepted for compatibility ('preserve' or 'now'); times are not managed."},
    {.name = "modification_time",
     .type = AICP_ARG_STR,
     .help = "Accepted for compatibility ('preserve' or 'now'); times are not managed."},
    {.name = "unsafe_writes",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Accepted for compatibility; has no effect."},
    {.name = NULL},
};

static const char *prev_state(const json_t *p)
{
    if (!json_is_true(json_object_get(p, "exists")))
        return "absent";
    const char *t = json_string_value(json_object_get(p, "type"));
    if (t == NULL)
        return "file";
    if (strcmp(t, "file") == 0)
        return json_integer_value(json_object_get(p, "nlink")) > 1 ? "hard" : "file";
    return t;
}

/* The link source as the host resolves it: relative to the link's dir. */
static char *link_src_path(const char *path, const char *src)
{
    if (src[0] == '/')
        return aicp_strdup(src);
    char *dir = aicp_fu_dirname(path);
    struct aicp_buf b = AICP_BUF_INIT;
    if (dir == NULL || aicp_buf_printf(&b, "%s/%s", dir, src) != 0) {
        free(dir);
        aicp_buf_free(&b);
        return NULL;
    }
    free(dir);
    return aicp_buf_steal(&b);
}

/* The result key that names the path: Ansible's file module returns
 * "dest" for touch, link and hard, "path" otherwise. */
static const char *result_key(const char *state)
{
    return strcmp(state, "touch") == 0 || strcmp(state, "link") == 0 ||
                   strcmp(state, "hard") == 0
               ? "dest"
               : "path";
}

static int file_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                      struct aicp_err *err)
{
    const char *path = aicp_fu_str(args, "path");
    const char *src = aicp_fu_str(args, "src");
    const char *state = aicp_fu_str(args, "state");
    struct aicp_buf b = AICP_BUF_INIT;
    json_t *cur = NULL;
    char *srcp = NULL;
    int rc;
    *current = NULL;
    if (path == NULL)
        return aicp_err_set(err, AICP_EINVAL, "file: path is required");
    rc = aicp_fu_sh_stat(&b, "p", path, 0);
    rc = rc ? rc : aicp_fu_sh_stat(&b, "f", NULL, 1);
    if (src && state && (strcmp(state, "link") == 0 || strcmp(state, "hard") == 0)) {
        srcp = strcmp(state, "link") == 0 ? link_src_path(path, src) : aicp_strdup(src);
        rc = rc ? rc : (srcp ? aicp_fu_sh_stat(&b, "s", srcp, 1) : AICP_ENOMEM);
    }
    if (rc == 0 && state && strcmp(state, "directory") == 0 && aicp_fu_bool(args, "recurse", 0)) {
        /* Count what under the directory differs from the wanted attributes. */
        const char *owner = aicp_fu_str(args, "owner"), *group = aicp_fu_str(args, "group");
        int mode = -1;
        const json_t *mv = aicp_fu_get(args, "mode");
        if (aicp_fu_mode_parse(&mode, mv, 0755, 1, NULL) != 0 ||
            (json_is_string(mv) &&
             strspn(json_string_value(mv), "01234567") != strlen(json_string_value(mv))))
            mode = -1; /* symbolic modes are applied to the top only */
        rc = aicp_buf_puts(&b, "_c=$(find \"$_p\" -mindepth 1 \\( -false");
        if (owner && *owner) {
            rc = rc ? rc : aicp_buf_puts(&b, " -o ! -user ");
            rc = rc ? rc : aicp_buf_shquote(&b, owner);
        }
        if (group && *group) {
            rc = rc ? rc : aicp_buf_puts(&b, " -o ! -group ");
            rc = rc ? rc : aicp_buf_shquote(&b, group);
        }
        if (mode >= 0)
            rc = rc ? rc : aicp_buf_printf(&b, " -o \\( ! -type l ! -perm %04o \\)", mode);
        rc = rc ? rc
                : aicp_buf_puts(&b, " \\) -print 2>/dev/null | wc -l)\n"
                                    "printf 'r V count %s\\n' $_c\n");
    }
    free(srcp);
    if (rc != 0) {
        aicp_buf_free(&b);
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    rc = aicp_fu_check_run(ctx, b.data, &cur, err);
    aicp_buf_free(&b);
    if (rc != 0)
        return rc;
    /* Ansible reports the path's state after the task; the re-check after
     * a change (verify) overwrites these with the new state, and touch,
     * which has no re-check, reads it in apply. A link stands for its
     * target for state=file/directory/touch (follow); for state=link it is
     * the link itself, as lstat sees it (0777, the length of its target).
     * Ansible calls the path "dest" for touch, link and hard. */
    const json_t *p = json_object_get(cur, "p");
    const char *ps = prev_state(p);
    const char *want = state ? state : ps;
    int is_link = strcmp(want, "link") == 0;
    const json_t *shown = strcmp(ps, "link") == 0 && !is_link &&
                                  json_is_true(json_object_get(json_object_get(cur, "f"), "exists"))
                              ? json_object_get(cur, "f")
                              : p;
    aicp_fu_result_stat(ctx->result, result_key(want), path, shown);
    if (ctx->result && strcmp(ps, "link") == 0) {
        json_object_set_new(ctx->result, "state", json_string("link"));
        json_object_set(ctx->result, "src", json_object_get(p, "lnk_source"));
    }
    *current = cur;
    return 0;
}

static int attrs_script(struct aicp_buf *b, const char *path, int mode, const json_t *after,
                        int recurse, int nofollow)
{
    return aicp_fu_sh_attrs(b, path, mode, json_string_value(json_object_get(after, "owner")),
                            json_string_value(json_object_get(after, "group")), recurse, nofollow);
}

static int file_diff(const json_t *current, const struct aicp_args *args,
                     struct aicp_change **change, struct aicp_err *err)
{
    const char *path = aicp_fu_str(args, "path");
    const char *state = aicp_fu_str(args, "state");
    const char *src = aicp_fu_str(args, "src");
    int force = aicp_fu_bool(args, "force", 0), follow = aicp_fu_bool(args, "follow", 1);
    int recurse = aicp_fu_bool(args, "recurse", 0);
    const json_t *p = json_object_get(current, "p"), *f = json_object_get(current, "f");
    const json_t *s = json_object_get(current, "s");
    const char *ps = prev_state(p);
    struct aicp_change *c = NULL;
    struct aicp_buf sh = AICP_BUF_INIT;
    int rc = aicp_fu_change_new(&c, err), mode = -1, n = 0;
    if (rc != 0)
        return rc;
    if (path == NULL) {
        rc = aicp_err_set(err, AICP_EINVAL, "file: path is required");
        goto out;
    }
    if (state == NULL) {
        /* Ansible keeps what is there; a new path becomes a file (a
         * directory with recurse). */
        if (strcmp(ps, "absent") == 0)
            state = recurse ? "directory" : "file";
        else if (strcmp(ps, "directory") == 0 || strcmp(ps, "link") == 0 || strcmp(ps, "hard") == 0)
            state = ps;
        else
            state = "file";
    }
    json_object_set_new(c->before, "path", json_string(path));
    json_object_set_new(c->after, "path", json_string(path));
    json_object_set_new(c->before, "state", json_string(ps));
    json_object_set_new(c->after, "state", json_string(state));
    /* With follow, a link to a file or directory stands for its target. */
    const json_t *eff = p;
    const char *es = ps;
    if (strcmp(ps, "link") == 0 && follow && json_is_true(json_object_get(f, "exists")) &&
        (strcmp(state, "file") == 0 || strcmp(state, "directory") == 0 ||
         strcmp(state, "touch") == 0)) {
        eff = f;
        es = prev_state(f);
        json_object_set_new(c->before, "state", json_string(es));
    }
    if (strcmp(state, "absent") == 0) {
        if (strcmp(ps, "absent") != 0) {
            c->needed = 1;
            rc = aicp_buf_puts(&sh, "rm -rf -- ");
            rc = rc ? rc : aicp_buf_shquote(&sh, path);
            rc = rc ? rc : aicp_buf_puts(&sh, " || exit 1\n");
        }
    } else if (strcmp(state, "file") == 0) {
        if (strcmp(es, "absent") == 0) {
            rc = aicp_err_set(err, AICP_EFAILED, "file (%s) is absent, cannot continue", path);
            goto out;
        }
        if (strcmp(es, "file") != 0 && strcmp(es, "hard") != 0) {
            rc = aicp_err_set(err, AICP_EFAILED, "file (%s) is %s, cannot continue", path, es);
            goto out;
        }
        json_object_set_new(c->after, "state", json_string(es));
        if ((n = aicp_fu_attrs_diff(eff, args, aicp_fu_get(args, "mode"), 0, c->before, c->after,
                                    &mode, err)) < 0) {
            rc = n;
            goto out;
        }
        c->needed = n > 0;
        rc = attrs_script(&sh, path, mode, c->after, 0, 0);
    } else if (strcmp(state, "directory") == 0) {
        if (strcmp(es, "absent") == 0) {
            c->needed = 1;
            rc = aicp_buf_puts(&sh, "mkdir -p -- ");
            rc = rc ? rc : aicp_buf_shquote(&sh, path);
            rc = rc ? rc : aicp_buf_puts(&sh, " || exit 1\n");
        } else if (strcmp(es, "directory") != 0) {
            rc = aicp_err_set(err, AICP_EFAILED, "%s already exists as a %s", path, es);
            goto out;
        }
        if ((n = aicp_fu_attrs_diff(eff, args, aicp_fu_get(args, "mode"), 1, c->before, c->after,
                                    &mode, err)) < 0) {
            rc = n;
            goto out;
        }
        const char *cnt =
            json_string_value(json_object_get(json_object_get(current, "r"), "count"));
        int sub = recurse && cnt && strtol(cnt, NULL, 10) > 0;
        if (sub) {
            json_object_set_new(c->before, "recurse", json_string(cnt));
            json_object_set_new(c->after, "recurse", json_string("0"));
            /* The recursive pass needs the full wanted mode, not only a change. */
            if (mode < 0)
                aicp_fu_mode_parse(&mode, aicp_fu_get(args, "mode"),
                                   (int)json_integer_value(json_object_get(eff, "mode_int")), 1,
                                   NULL);
            json_object_set_new(c->after, "owner", json_string(aicp_fu_str(args, "owner")));
            json_object_set_new(c->after, "group", json_string(aicp_fu_str(args, "group")));
        }
        c->needed |= n > 0 || sub;
        rc = rc ? rc : attrs_script(&sh, path, mode, c->after, sub, 0);
    } else if (strcmp(state, "touch") == 0) {
        if (strcmp(es, "absent") != 0 && strcmp(es, "file") != 0 && strcmp(es, "hard") != 0 &&
            strcmp(es, "directory") != 0 && strcmp(es, "link") != 0) {
            rc = aicp_err_set(err, AICP_EFAILED, "%s already exists as a %s", path, es);
            goto out;
        }
        /* Ansible's touch reports a change every time. */
        c->needed = 1;
        json_object_set_new(c->plan, "no_verify", json_true());
        if ((n = aicp_fu_attrs_diff(eff, args, aicp_fu_get(args, "mode"),
                                    strcmp(es, "directory") == 0, c->before, c->after, &mode,
                                    err)) < 0) {
            rc = n;
            goto out;
        }
        rc = aicp_buf_puts(&sh, "touch -- ");
        rc = rc ? rc : aicp_buf_shquote(&sh, path);
        rc = rc ? rc : aicp_buf_puts(&sh, " || exit 1\n");
        rc = rc ? rc : attrs_script(&sh, path, mode, c->after, 0, 0);
        /* No verify for touch: the same script reads the result state. */
        rc = rc ? rc : aicp_fu_sh_stat(&sh, "p", path, 0);
        json_object_set_new(c->plan, "touch", json_string(path));
    } else if (strcmp(state, "link") == 0) {
        const char *cur_target = json_string_value(json_object_get(p, "lnk_source"));
        if (src == NULL) {
            if (strcmp(ps, "link") != 0 || cur_target == NULL) {
                rc = aicp_err_set(err, AICP_EFAILED, "src is required for creating new symlinks");
                goto out;
            }
            src = cur_target;
        }
        int same = strcmp(ps, "link") == 0 && cur_target && strcmp(cur_target, src) == 0;
        if (!same) {
            if ((strcmp(ps, "file") == 0 || strcmp(ps, "hard") == 0) && !force) {
                rc = aicp_err_set(err, AICP_EFAILED,
                                  "refusing to convert from %s to symlink for %s", ps, path);
                goto out;
            }
            if (strcmp(ps, "directory") == 0 && !force) {
                rc = aicp_err_set(err, AICP_EFAILED,
                                  "refusing to convert from directory to symlink for %s", path);
                goto out;
            }
            if (s && !json_is_true(json_object_get(s, "exists")) && !force) {
                rc = aicp_err_set(err, AICP_EFAILED,
                                  "src file does not exist, use \"force=yes\" if you really want "
                                  "to create the link: %s",
                                  src);
                goto out;
            }
            c->needed = 1;
            if (cur_target)
                json_object_set_new(c->before, "src", json_string(cur_target));
            json_object_set_new(c->after, "src", json_string(src));
            if (strcmp(ps, "directory") == 0) {
                /* Only an empty directory is replaced, as Ansible does. */
                rc = aicp_buf_puts(&sh, "rmdir -- ");
                rc = rc ? rc : aicp_buf_shquote(&sh, path);
                rc = rc ? rc : aicp_buf_puts(&sh, " || exit 1\n");
            }
            rc = rc ? rc : aicp_buf_puts(&sh, "ln -sfn -- ");
            rc = rc ? rc : aicp_buf_shquote(&sh, src);
            rc = rc ? rc : aicp_buf_puts(&sh, " ");
            rc = rc ? rc : aicp_buf_shquote(&sh, path);
            rc = rc ? rc : aicp_buf_puts(&sh, " || exit 1\n");
        }
        /* A symlink's own mode means nothing on Linux: owner/group only,
         * compared with the link itself (a new link is ours until chown). */
        if ((n = aicp_fu_attrs_diff(same ? p : json_object_get(current, "none"), args, NULL, 0,
                                    c->before, c->after, &mode, err)) < 0) {
            rc = n;
            goto out;
        }
        c->needed |= n > 0;
        rc = rc ? rc : attrs_script(&sh, path, -1, c->after, 0, 1);
        json_object_set_new(c->plan, "result", json_pack("{s:s}", "src", src));
    } else if (strcmp(state, "hard") == 0) {
        if (src == NULL) {
            rc = aicp_err_set(err, AICP_EFAILED, "src is required for creating new hardlinks");
            goto out;
        }
        if (!json_is_true(json_object_get(s, "exists"))) {
            rc = aicp_err_set(err, AICP_EFAILED, "src does not exist: %s", src);
            goto out;
        }
        int same = json_is_true(json_object_get(p, "exists")) &&
                   json_integer_value(json_object_get(p, "ino")) ==
                       json_integer_value(json_object_get(s, "ino")) &&
                   json_integer_value(json_object_get(p, "dev")) ==
                       json_integer_value(json_object_get(s, "dev"));
        if (!same) {
            if (strcmp(ps, "absent") != 0 && !force) {
                rc = aicp_err_set(err, AICP_EFAILED, "Cannot link, %s exists at destination",
                                  strcmp(ps, "hard") == 0 ? "different hard link" : ps);
                goto out;
            }
            c->needed = 1;
            if (strcmp(ps, "directory") == 0) {
                rc = aicp_buf_puts(&sh, "rmdir -- ");
                rc = rc ? rc : aicp_buf_shquote(&sh, path);
                rc = rc ? rc : aicp_buf_puts(&sh, " || exit 1\n");
            }
            rc = rc ? rc : aicp_buf_puts(&sh, "ln -f -- ");
            rc = rc ? rc : aicp_buf_shquote(&sh, src);
            rc = rc ? rc : aicp_buf_puts(&sh, " ");
            rc = rc ? rc : aicp_buf_shquote(&sh, path);
            rc = rc ? rc : aicp_buf_puts(&sh, " || exit 1\n");
        }
        /* The link is the source file: its attributes are the source's. */
        if ((n = aicp_fu_attrs_diff(s, args, aicp_fu_get(args, "mode"), 0, c->before, c->after,
                                    &mode, err)) < 0) {
            rc = n;
            goto out;
        }
        c->needed |= n > 0;
        rc = rc ? rc : attrs_script(&sh, path, mode, c->after, 0, 0);
        json_object_set_new(c->plan, "result", json_pack("{s:s}", "src", src));
    }
    if (rc != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (c->needed)
        json_object_set_new(c->plan, "script", json_string(sh.data ? sh.data : ":"));
    /* The diff shows what Ansible's does: the path, the state when it
     * changes, and attributes changed on a path that was already there. */
    if (json_equal(json_object_get(c->before, "state"), json_object_get(c->after, "state"))) {
        json_object_del(c->before, "state");
        json_object_del(c->after, "state");
    } else if (strcmp(ps, "absent") == 0) {
        static const char *const attrs[] = {"mode", "owner", "group", "src"};
        for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
            json_object_del(c->before, attrs[i]);
            json_object_del(c->after, attrs[i]);
        }
    }
out:
    aicp_buf_free(&sh);
    if (rc != 0) {
        aicp_change_free(c);
        c = NULL;
    }
    *change = c;
    return rc;
}

/* touch: runs the plan's script, whose last records are the path's stat
 * after it, and reports that (Ansible: state file, its mode, owner...). */
static int touch_apply(struct aicp_ctx *ctx, const char *path, const char *script,
                       struct aicp_err *err)
{
    struct aicp_exec_result res = {0};
    json_t *st = NULL;
    int rc = aicp_fu_exec(ctx, script, NULL, 0, &res, err);
    if (rc != 0)
        goto out;
    if (res.rc != 0) {
        size_t n = res.err ? strlen(res.err) : 0;
        while (n && (res.err[n - 1] == '\n' || res.err[n - 1] == ' '))
            res.err[--n] = '\0';
        rc = aicp_err_set(err, AICP_EFAILED, "the change failed (rc %d): %s", res.rc,
                          n ? res.err : "");
        goto out;
    }
    if ((rc = aicp_fu_parse(&st, res.out ? res.out : "", res.out_len, err)) != 0)
        goto out;
    if (ctx->result && aicp_fu_result_stat(ctx->result, "dest", path, json_object_get(st, "p")) != 0)
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
out:
    json_decref(st);
    aicp_exec_result_clear(&res);
    return rc;
}

static int file_apply(struct aicp_ctx *ctx, const struct aicp_change *change, struct aicp_err *err)
{
    const char *touched = json_string_value(json_object_get(change->plan, "touch"));
    const char *script = json_string_value(json_object_get(change->plan, "script"));
    int rc = touched && script ? touch_apply(ctx, touched, script, err)
                               : aicp_fu_content_apply(ctx, change, err);
    if (rc != 0)
        aicp_err_prefix(err, "%s", json_string_value(json_object_get(change->after, "path")));
    return rc;
}

static const struct aicp_module_ops file_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = file_check,
    .diff = file_diff,
    .apply = file_apply,
};

const struct aicp_module aicp_mod_file = {
    .name = "file",
    .summary = "Manage files and file properties",
    .args = file_args,
    .flags = AICP_MOD_NEEDS_SSH,
    .ops = &file_ops,
};
