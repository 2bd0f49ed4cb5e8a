/* The copy module: puts a file on the host from inline content, a local
 * file on the jump host, or (remote_src) another file on the host, with
 * Ansible's copy semantics: sha1 comparison so an unchanged file is never
 * sent, force=no, backup, validate, mode/owner/group and a dest directory
 * (or trailing '/') receiving the source's basename. The write engine is
 * shared with template and lineinfile (fileutil.c). */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "fileutil.h"
#include "module.h"
#include "util.h"

static const struct aicp_arg_spec copy_args[] = {
    {.name = "src",
     .type = AICP_ARG_PATH,
     .local = 1,
     .help = "Local path of the file to copy (relative: the task's directory, then files/). "
             "With remote_src, a path on the host."},
    {.name = "content", .type = AICP_ARG_STR, .help = "The file's content, instead of src."},
    {.name = "dest",
     .type = AICP_ARG_PATH,
     .required = 1,
     .help = "Remote path to copy to; an existing directory (or a path ending in /) receives "
             "src's basename."},
    {.name = "mode",
     .type = AICP_ARG_MODE,
     .help = "Permissions of the file: octal, symbolic, or 'preserve' (the source's mode)."},
    {.name = "owner", .type = AICP_ARG_STR, .help = "Name (or uid) of the owning user."},
    {.name = "group", .type = AICP_ARG_STR, .help = "Name (or gid) of the owning group."},
    {.name = "backup",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Keep a copy of the replaced file as DEST.PID.DATE@TIME~ (backup_file)."},
    {.name = "force",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .aliases = "thirsty",
     .help = "Replace a file whose content differs; with no, only a missing file is written."},
    {.name = "remote_src",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "src is a file on the managed host."},
    {.name = "validate",
     .type = AICP_ARG_STR,
     .help = "Command run on the new file (as %s) before it replaces dest, e.g. 'visudo -cf %s'."},
    {.name = "directory_mode",
     .type = AICP_ARG_MODE,
     .help = "Accepted for compatibility; created directories get the default mode."},
    {.name = "follow",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Accepted for compatibility; a symlink at dest is replaced by the file."},
    {.name = "local_follow",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .help = "Follow symlinks in the local src."},
    {.name = "checksum",
     .type = AICP_ARG_STR,
     .help = "Expected sha1 of the source; the task fails when it differs."},
    {.name = "decrypt",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .help = "Accepted for compatibility; vault-encrypted sources are not decrypted."},
    {.name = "unsafe_writes",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Accepted for compatibility; writes are always atomic."},
    {.name = NULL},
};

static int copy_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                      struct aicp_err *err)
{
    const char *src = aicp_fu_str(args, "src"), *dest = aicp_fu_str(args, "dest");
    const json_t *content = aicp_fu_get(args, "content");
    int remote = aicp_fu_bool(args, "remote_src", 0);
    char *local = NULL, *data = NULL;
    size_t len = 0;
    json_t *cur = NULL, *want = NULL;
    int rc = 0;
    *current = NULL;
    if (dest == NULL)
        return aicp_err_set(err, AICP_EFAILED, "dest is required");
    if (src && content)
        return aicp_err_set(err, AICP_EFAILED, "parameters are mutually exclusive: content|src");
    if (src == NULL && content == NULL)
        return aicp_err_set(err, AICP_EFAILED, "src (or content) is required");
    size_t dl = strlen(dest);
    if (content && dl && dest[dl - 1] == '/')
        return aicp_err_set(err, AICP_EFAILED, "can not use content with a dir as dest");
    want = json_object();
    if (want == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    if (src && !remote) {
        struct stat st;
        if ((rc = aicp_fu_local_path(&local, ctx->search_dir, "files", src, err)) != 0)
            goto out;
        if (stat(local, &st) != 0) {
            rc = aicp_err_set(err, AICP_EFAILED, "could not find src=%s", local);
            goto out;
        }
        if (S_ISDIR(st.st_mode)) {
            rc = aicp_err_set(err, AICP_EFAILED,
                              "src %s is a directory: copying directories is not supported", local);
            goto out;
        }
        if ((rc = aicp_read_file(&data, &len, local, err)) != 0)
            goto out;
        char mode[8];
        aicp_fu_mode_fmt(mode, (int)(st.st_mode & 07777));
        json_object_set_new(want, "local_src", json_string(local));
        json_object_set_new(want, "src_mode", json_string(mode));
        json_object_set_new(want, "size", json_integer((json_int_t)len));
        if (len <= (size_t)AICP_FU_DIFF_MAX && aicp_fu_is_text(data, len))
            json_object_set_new(want, "text", json_stringn(data, len));
    } else if (content) {
        const char *s = json_string_value(content);
        if (s == NULL) {
            rc = aicp_err_set(err, AICP_EFAILED, "content must be a string");
            goto out;
        }
        len = json_string_length(content);
        data = aicp_strndup(s, len);
        if (data == NULL) {
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
        json_object_set_new(want, "size", json_integer((json_int_t)len));
    }
    if (data) {
        char sum[41], md5[33];
        aicp_fu_digest_hex(sum, sizeof(sum), "sha1", data, len);
        json_object_set_new(want, "checksum", json_string(sum));
        /* Ansible's md5sum, left out where md5 is not allowed (FIPS). */
        if (aicp_fu_digest_hex(md5, sizeof(md5), "md5", data, len) == 0)
            json_object_set_new(want, "md5sum", json_string(md5));
        const char *expect = aicp_fu_str(args, "checksum");
        if (expect && *expect && strcmp(expect, sum) != 0) {
            rc = aicp_err_set(err, AICP_EFAILED,
                              "Copied file does not match the expected checksum. Transfer "
                              "failed.");
            goto out;
        }
    }
    rc = aicp_fu_content_check(ctx, dest, src ? aicp_fu_basename(src) : NULL, remote ? src : NULL,
                               0, &cur, err);
    if (rc != 0)
        goto out;
    json_object_set(cur, "want", want);
    if (ctx->result) {
        const json_t *t = json_object_get(cur, "t");
        aicp_fu_result_stat(ctx->result, "dest", json_string_value(json_object_get(cur, "path")),
                            t);
        if (src)
            json_object_set_new(ctx->result, "src", json_string(local ? local : src));
        /* A remote source is copied every time in Ansible's eyes: its
         * md5sum is always reported; others' only with a change (diff). */
        const json_t *md5 = json_object_get(json_object_get(cur, "s_md5"), "checksum");
        if (remote && md5 != NULL)
            json_object_set(ctx->result, "md5sum", (json_t *)md5);
        const json_t *sum = json_object_get(want, "checksum");
        if (sum == NULL)
            sum = json_object_get(json_object_get(cur, "s"), "checksum");
        if (sum)
            json_object_set(ctx->result, "checksum", (json_t *)sum);
    }
out:
    free(local);
    if (data != NULL)
        explicit_bzero(data, len); /* file contents: may be a key or a password file */
    free(data);
    json_decref(want);
    if (rc != 0) {
        json_decref(cur);
        cur = NULL;
    }
    *current = cur;
    return rc;
}

static int copy_diff(const json_t *current, const struct aicp_args *args,
                     struct aicp_change **change, struct aicp_err *err)
{
    const json_t *want = json_object_get(current, "want");
    const json_t *content = aicp_fu_get(args, "content");
    const json_t *modev = aicp_fu_get(args, "mode");
    int remote = aicp_fu_bool(args, "remote_src", 0);
    const char *src = aicp_fu_str(args, "src");
    struct aicp_fu_want w = {0};
    json_t *pm = NULL;
    *change = NULL;
    if (json_is_string(modev) && strcmp(json_string_value(modev), "preserve") == 0) {
        const char *sm = json_string_value(json_object_get(want, "src_mode"));
        if (sm == NULL && remote)
            sm = json_string_value(json_object_get(json_object_get(current, "s"), "mode"));
        pm = json_string(sm ? sm : "0644");
        modev = pm;
    }
    w.mode = modev;
    w.force = aicp_fu_bool(args, "force", 1);
    w.backup_key = "backup_file";
    w.create_dirs = json_is_true(json_object_get(current, "dest_slash"));
    if (remote) {
        const json_t *s = json_object_get(current, "s");
        const char *st = json_string_value(json_object_get(s, "type"));
        if (!json_is_true(json_object_get(s, "exists"))) {
            json_decref(pm);
            return aicp_err_set(err, AICP_EFAILED, "Source %s not found", src ? src : "");
        }
        if (st && strcmp(st, "file") != 0) {
            json_decref(pm);
            return aicp_err_set(err, AICP_EFAILED,
                                "Source %s is a %s, not a file: copying "
                                "directories is not supported",
                                src, st);
        }
        w.remote_src = src;
        w.checksum = json_string_value(json_object_get(s, "checksum"));
        w.label = src;
    } else if (content) {
        w.text = json_string_value(content);
        w.len = json_string_length(content);
        w.checksum = json_string_value(json_object_get(want, "checksum"));
        w.label = "dynamically generated";
    } else {
        w.local_src = json_string_value(json_object_get(want, "local_src"));
        w.local_text = json_string_value(json_object_get(want, "text"));
        w.checksum = json_string_value(json_object_get(want, "checksum"));
        w.label = w.local_src;
    }
    int rc = aicp_fu_content_diff(change, current, args, &w, err);
    json_decref(pm);
    /* New content: Ansible's copy module reports its md5sum. */
    const json_t *md5 = json_object_get(want, "md5sum");
    if (rc == 0 && md5 != NULL && json_is_true(json_object_get((*change)->plan, "content"))) {
        json_t *r = json_object_get((*change)->plan, "result");
        if (r == NULL && json_object_set_new((*change)->plan, "result", r = json_object()) != 0)
            r = NULL;
        if (r == NULL || json_object_set(r, "md5sum", (json_t *)md5) != 0) {
            aicp_change_free(*change);
            *change = NULL;
            return aicp_err_set(err, AICP_ENOMEM, "out of memory");
        }
    }
    return rc;
}

static int copy_apply(struct aicp_ctx *ctx, const struct aicp_change *change, struct aicp_err *err)
{
    return aicp_fu_content_apply(ctx, change, err);
}

static const struct aicp_module_ops copy_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = copy_check,
    .diff = copy_diff,
    .apply = copy_apply,
};

const struct aicp_module aicp_mod_copy = {
    .name = "copy",
    .summary = "Copy files to remote locations",
    .args = copy_args,
    .flags = AICP_MOD_NEEDS_SSH,
    .ops = &copy_ops,
};
