/* The fetch module: copies a file from the host to the jump host, as
 * Ansible's fetch: dest/<inventory_hostname>/<src path> (or dest itself
 * with flat), compared by sha1 so an unchanged file is not transferred,
 * written locally with a temp file, fsync and rename. The local copy is
 * 0600 when the remote file is private to its owner (keys, tokens), else
 * 0644. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conn.h"
#include "err.h"
#include "fileutil.h"
#include "module.h"
#include "util.h"

static const struct aicp_arg_spec fetch_args[] = {
    {.name = "src",
     .type = AICP_ARG_PATH,
     .required = 1,
     .help = "The file on the remote system to fetch (a file, not a directory)."},
    {.name = "dest",
     .type = AICP_ARG_PATH,
     .local = 1,
     .required = 1,
     .help = "A local directory (or, with flat, file) to save the file into."},
    {.name = "flat",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Save to dest itself (dest ending in / gets src's basename) instead of "
             "dest/HOSTNAME/SRC."},
    {.name = "fail_on_missing",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .help = "Fail when the remote file is missing or unreadable."},
    {.name = "validate_checksum",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .help = "Verify the fetched bytes against the remote sha1."},
    {.name = NULL},
};

static char *local_dest(const struct aicp_args *args, const char *host)
{
    const char *src = aicp_fu_str(args, "src"), *dest = aicp_fu_str(args, "dest");
    struct aicp_buf b = AICP_BUF_INIT;
    size_t dl = strlen(dest);
    int rc;
    if (aicp_fu_bool(args, "flat", 0)) {
        rc = aicp_buf_puts(&b, dest);
        if (rc == 0 && dl && dest[dl - 1] == '/')
            rc = aicp_buf_puts(&b, aicp_fu_basename(src));
    } else {
        rc = aicp_buf_printf(&b, "%s%s%s%s%s", dest, dl && dest[dl - 1] == '/' ? "" : "/",
                             host ? host : "localhost", src[0] == '/' ? "" : "/", src);
    }
    if (rc != 0) {
        aicp_buf_free(&b);
        return NULL;
    }
    return aicp_buf_steal(&b);
}

static int fetch_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                       struct aicp_err *err)
{
    const char *src = aicp_fu_str(args, "src");
    struct aicp_buf b = AICP_BUF_INIT;
    json_t *cur = NULL;
    char *dest = NULL, *data = NULL;
    size_t len = 0;
    int rc;
    *current = NULL;
    if (src == NULL || aicp_fu_str(args, "dest") == NULL)
        return aicp_err_set(err, AICP_EFAILED, "src and dest are required");
    rc = aicp_fu_sh_stat(&b, "s", src, 1);
    rc = rc ? rc : aicp_fu_sh_hash(&b, "s", NULL, "sha1");
    if (rc != 0) {
        aicp_buf_free(&b);
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    rc = aicp_fu_check_run(ctx, b.data, &cur, err);
    aicp_buf_free(&b);
    if (rc != 0)
        return rc;
    if ((dest = local_dest(args, ctx->host)) == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    json_t *loc = json_pack("{s:s, s:b}", "path", dest, "exists", access(dest, F_OK) == 0);
    if (json_is_true(json_object_get(loc, "exists")) &&
        aicp_read_file(&data, &len, dest, NULL) == 0) {
        char sum[41];
        aicp_fu_digest_hex(sum, sizeof(sum), "sha1", data, len);
        json_object_set_new(loc, "checksum", json_string(sum));
    }
    json_object_set_new(cur, "local", loc);
    if (ctx->result) {
        json_object_set_new(ctx->result, "dest", json_string(dest));
        json_object_set_new(ctx->result, "file", json_string(src));
        const json_t *rs = json_object_get(json_object_get(cur, "s"), "checksum");
        if (rs) {
            json_object_set(ctx->result, "remote_checksum", (json_t *)rs);
            json_object_set(ctx->result, "checksum", (json_t *)rs);
        }
    }
out:
    free(dest);
    free(data);
    if (rc != 0) {
        json_decref(cur);
        cur = NULL;
    }
    *current = cur;
    return rc;
}

static int fetch_diff(const json_t *current, const struct aicp_args *args,
                      struct aicp_change **change, struct aicp_err *err)
{
    const json_t *s = json_object_get(current, "s"), *loc = json_object_get(current, "local");
    const char *src = aicp_fu_str(args, "src");
    const char *type = json_string_value(json_object_get(s, "type"));
    const char *rsum = json_string_value(json_object_get(s, "checksum"));
    const char *lsum = json_string_value(json_object_get(loc, "checksum"));
    int rc = aicp_fu_change_new(change, err);
    if (rc != 0)
        return rc;
    struct aicp_change *c = *change;
    const char *why = NULL;
    if (!json_is_true(json_object_get(s, "exists")))
        why = "the remote file does not exist, not transferring, ignored";
    else if (type && strcmp(type, "directory") == 0)
        why = "remote file is a directory, fetch cannot work on directories";
    else if (rsum == NULL)
        why = "file is not readable, not transferring, ignored";
    if (why) {
        if (aicp_fu_bool(args, "fail_on_missing", 1) || (type && strcmp(type, "directory") == 0)) {
            aicp_change_free(c);
            *change = NULL;
            return aicp_err_set(err, AICP_EFAILED, "%s: %s", why, src);
        }
        json_object_set_new(c->plan, "result", json_pack("{s:s, s:b}", "msg", why, "file", 0));
        return 0;
    }
    const char *dest = json_string_value(json_object_get(loc, "path"));
    c->needed = lsum == NULL || strcmp(lsum, rsum) != 0;
    json_object_set_new(c->before, "path", json_string(dest));
    json_object_set_new(c->after, "path", json_string(dest));
    json_object_set_new(c->before, "checksum", lsum ? json_string(lsum) : json_null());
    json_object_set_new(c->after, "checksum", json_string(rsum));
    int mode = (int)json_integer_value(json_object_get(s, "mode_int"));
    json_object_set_new(c->plan, "src", json_string(src));
    json_object_set_new(c->plan, "dest", json_string(dest));
    json_object_set_new(c->plan, "checksum", json_string(rsum));
    json_object_set_new(c->plan, "mode", json_integer((mode & 077) == 0 ? 0600 : 0644));
    json_object_set_new(c->plan, "validate",
                        json_boolean(aicp_fu_bool(args, "validate_checksum", 1)));
    return 0;
}

static int mkdirs(const char *path)
{
    char *d = aicp_fu_dirname(path);
    int rc = 0;
    if (d == NULL)
        return AICP_ENOMEM;
    if (strcmp(d, ".") != 0 && strcmp(d, "/") != 0 && access(d, F_OK) != 0) {
        rc = mkdirs(d);
        if (rc == 0 && mkdir(d, 0755) != 0 && errno != EEXIST)
            rc = AICP_EIO;
    }
    free(d);
    return rc;
}

static int fetch_apply(struct aicp_ctx *ctx, const struct aicp_change *change, struct aicp_err *err)
{
    const json_t *plan = change->plan;
    const char *src = json_string_value(json_object_get(plan, "src"));
    const char *dest = json_string_value(json_object_get(plan, "dest"));
    const char *want = json_string_value(json_object_get(plan, "checksum"));
    int mode = (int)json_integer_value(json_object_get(plan, "mode"));
    char *data = NULL;
    size_t len = 0;
    struct aicp_buf tmp = AICP_BUF_INIT;
    int fd = -1, rc;
    if (src == NULL || dest == NULL) {
        rc = aicp_err_set(err, AICP_EINVAL, "fetch: empty plan");
        goto out;
    }
    if ((rc = aicp_conn_get(ctx->conn, src, &data, &len, ctx->become, err)) != 0)
        goto out;
    char sum[41];
    aicp_fu_digest_hex(sum, sizeof(sum), "sha1", data, len);
    if (json_is_true(json_object_get(plan, "validate")) && want && strcmp(sum, want) != 0) {
        rc = aicp_err_set(err, AICP_EFAILED,
                          "checksum mismatch: %s changed while it was fetched (%s, wanted %s)", src,
                          sum, want);
        goto out;
    }
    if (mkdirs(dest) != 0) {
        rc = aicp_err_set(err, AICP_EIO, "cannot create the directory for %s: %s", dest,
                          strerror(errno));
        goto out;
    }
    if (aicp_buf_printf(&tmp, "%s.aicp-XXXXXX", dest) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if ((fd = mkstemp(tmp.data)) < 0) {
        rc = aicp_err_set(err, AICP_EIO, "%s: %s", tmp.data, strerror(errno));
        goto out;
    }
    if (fchmod(fd, (mode_t)mode) != 0) {
        rc = aicp_err_set(err, AICP_EIO, "%s: %s", tmp.data, strerror(errno));
        goto out;
    }
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = aicp_err_set(err, AICP_EIO, "%s: %s", tmp.data, strerror(errno));
            goto out;
        }
        off += (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        fd = -1;
        rc = aicp_err_set(err, AICP_EIO, "%s: %s", tmp.data, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp.data, dest) != 0) {
        rc = aicp_err_set(err, AICP_EIO, "%s: %s", dest, strerror(errno));
        goto out;
    }
    aicp_buf_free(&tmp);
    if (ctx->result) {
        json_object_set_new(ctx->result, "checksum", json_string(sum));
        json_object_set_new(ctx->result, "dest", json_string(dest));
    }
out:
    if (fd >= 0)
        close(fd);
    if (tmp.data)
        unlink(tmp.data);
    aicp_buf_free(&tmp);
    free(data);
    return rc;
}

static const struct aicp_module_ops fetch_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = fetch_check,
    .diff = fetch_diff,
    .apply = fetch_apply,
};

const struct aicp_module aicp_mod_fetch = {
    .name = "fetch",
    .summary = "Fetch files from remote nodes",
    .args = fetch_args,
    .flags = AICP_MOD_NEEDS_SSH,
    .ops = &fetch_ops,
};
