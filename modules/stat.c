/* The stat module: reads a path's type, mode, owner, size, times, link
 * target and checksum on the host in one round trip and reports them as
 * Ansible's stat module does (result key "stat"). It never changes
 * anything: diff always says nothing is needed. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fileutil.h"
#include "module.h"
#include "util.h"

static const struct aicp_arg_spec stat_args[] = {
    {.name = "path",
     .type = AICP_ARG_PATH,
     .required = 1,
     .aliases = "dest|name",
     .help = "The full path of the file or object to stat."},
    {.name = "follow",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Whether to follow symlinks (report on the link's target)."},
    {.name = "get_checksum",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .help = "Whether to return a checksum of a regular file."},
    {.name = "checksum_algorithm",
     .type = AICP_ARG_STR,
     .def = "sha1",
     .choices = "md5|sha1|sha224|sha256|sha384|sha512",
     .aliases = "checksum|checksum_algo",
     .help = "Algorithm used for the checksum."},
    {.name = "get_mime",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .aliases = "mime|mime_type|mime-type",
     .help = "Report mimetype and charset (through file(1), when the host has it)."},
    {.name = "get_attributes",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .aliases = "attr|attributes",
     .help = "Accepted for compatibility; file attributes are not reported."},
    {.name = NULL},
};

static int stat_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                      struct aicp_err *err)
{
    const char *path = aicp_fu_str(args, "path");
    const char *algo = aicp_fu_str(args, "checksum_algorithm");
    int follow = aicp_fu_bool(args, "follow", 0);
    struct aicp_buf b = AICP_BUF_INIT;
    json_t *cur = NULL, *st = NULL;
    int rc;
    *current = NULL;
    if (path == NULL)
        return aicp_err_set(err, AICP_EINVAL, "stat: path is required");
    rc = aicp_fu_sh_stat(&b, "p", path, follow);
    if (rc == 0 && aicp_fu_bool(args, "get_checksum", 1))
        rc = aicp_fu_sh_hash(&b, "p", NULL, algo ? algo : "sha1");
    /* realpath (Ansible's lnk_source) and the access tests for the user we run as. */
    rc = rc ? rc
            : aicp_buf_puts(&b, "if [ -L \"$_p\" ]; then printf 'p V realpath %s\\n' "
                                "\"$(readlink -f -- \"$_p\")\"; fi\n"
                                "[ -r \"$_p\" ] && printf 'p V readable 1\\n'\n"
                                "[ -w \"$_p\" ] && printf 'p V writeable 1\\n'\n"
                                "[ -x \"$_p\" ] && printf 'p V executable 1\\n'\n:\n");
    /* Ansible reports the MIME type and charset through file(1) when the
     * host has it. */
    if (rc == 0 && aicp_fu_bool(args, "get_mime", 1))
        rc = aicp_buf_puts(&b, "if [ -e \"$_p\" ] && command -v file >/dev/null 2>&1; then "
                               "printf 'p V mime %s\\n' \"$(file -b --mime -- \"$_p\")\"; fi\n:\n");
    if (rc != 0) {
        aicp_buf_free(&b);
        return aicp_err_set(err, AICP_EINVAL, "stat: cannot build the check for %s", path);
    }
    rc = aicp_fu_check_run(ctx, b.data, &cur, err);
    aicp_buf_free(&b);
    if (rc != 0)
        return rc;
    const json_t *p = json_object_get(cur, "p");
    st = json_object();
    if (st == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (!json_is_true(json_object_get(p, "exists"))) {
        json_object_set_new(st, "exists", json_false());
    } else {
        const char *t = json_string_value(json_object_get(p, "type"));
        static const char *const types[][2] = {
            {"isdir", "directory"}, {"isreg", "file"},  {"islnk", "link"},   {"isblk", "block"},
            {"ischr", "char"},      {"isfifo", "fifo"}, {"issock", "socket"}};
        json_object_set_new(st, "exists", json_true());
        json_object_set_new(st, "path", json_string(path));
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            json_object_set_new(st, types[i][0], json_boolean(t && strcmp(t, types[i][1]) == 0));
        static const char *const copy[][2] = {
            {"mode", "mode"},          {"uid", "uid"},           {"gid", "gid"},
            {"size", "size"},          {"mtime", "mtime"},       {"nlink", "nlink"},
            {"atime", "atime"},        {"ctime", "ctime"},
            {"inode", "ino"},          {"dev", "dev"},           {"pw_name", "owner"},
            {"gr_name", "group"},      {"checksum", "checksum"}, {"lnk_target", "lnk_source"},
            {"lnk_source", "realpath"}};
        for (size_t i = 0; i < sizeof(copy) / sizeof(copy[0]); i++) {
            json_t *v = json_object_get(p, copy[i][1]);
            if (v)
                json_object_set(st, copy[i][0], v);
        }
        int m = (int)json_integer_value(json_object_get(p, "mode_int"));
        static const char *const bits[][2] = {{"rusr", "0400"},  {"wusr", "0200"}, {"xusr", "0100"},
                                              {"rgrp", "0040"},  {"wgrp", "0020"}, {"xgrp", "0010"},
                                              {"roth", "0004"},  {"woth", "0002"}, {"xoth", "0001"},
                                              {"isuid", "4000"}, {"isgid", "2000"}};
        for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
            json_object_set_new(st, bits[i][0], json_boolean(m & (int)strtol(bits[i][1], NULL, 8)));
        const char *mime = json_string_value(json_object_get(p, "mime"));
        if (mime != NULL) {
            const char *semi = strchr(mime, ';');
            const char *cs = strstr(mime, "charset=");
            json_object_set_new(st, "mimetype",
                                semi ? json_stringn(mime, (size_t)(semi - mime)) : json_string(mime));
            if (cs)
                json_object_set_new(st, "charset", json_string(cs + strlen("charset=")));
        }
        static const char *const acc[] = {"readable", "writeable", "executable"};
        for (size_t i = 0; i < sizeof(acc) / sizeof(acc[0]); i++)
            json_object_set_new(st, acc[i], json_boolean(json_object_get(p, acc[i]) != NULL));
    }
    if (ctx->result && json_object_set(ctx->result, "stat", st) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    json_object_set(cur, "stat", st);
out:
    json_decref(st);
    if (rc != 0)
        json_decref(cur);
    else
        *current = cur;
    return rc;
}

static const struct aicp_module_ops stat_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = stat_check,
    .diff = aicp_module_diff_none,
    .apply = aicp_module_apply_none,
};

const struct aicp_module aicp_mod_stat = {
    .name = "stat",
    .summary = "Retrieve file or file system status",
    .args = stat_args,
    .flags = AICP_MOD_NEEDS_SSH,
    .ops = &stat_ops,
};
