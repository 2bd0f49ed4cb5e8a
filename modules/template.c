/* The template module: renders a local Jinja2 template (found next to the
 * task, or in templates/) with the task's variables and writes the result
 * like copy with content: sha1 comparison, backup, validate, force and
 * mode/owner/group, with the unified diff of the rendered text. Rendering
 * happens in check() so that diff() stays pure. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fileutil.h"
#include "module.h"
#include "template.h"
#include "util.h"

static const struct aicp_arg_spec template_args[] = {
    {.name = "src",
     .type = AICP_ARG_PATH,
     .local = 1,
     .required = 1,
     .help = "Local Jinja2 template (relative: the task's directory, then templates/)."},
    {.name = "dest",
     .type = AICP_ARG_PATH,
     .required = 1,
     .help = "Remote path to write; an existing directory receives src's basename."},
    {.name = "mode", .type = AICP_ARG_MODE, .help = "Permissions of the file: octal or symbolic."},
    {.name = "owner", .type = AICP_ARG_STR, .help = "Name (or uid) of the owning user."},
    {.name = "group", .type = AICP_ARG_STR, .help = "Name (or gid) of the owning group."},
    {.name = "backup",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Keep a copy of the replaced file as DEST.PID.DATE@TIME~ (backup_file)."},
    {.name = "force",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .help = "Replace a file whose content differs; with no, only a missing file is written."},
    {.name = "validate",
     .type = AICP_ARG_STR,
     .help = "Command run on the new file (as %s) before it replaces dest."},
    {.name = "follow",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Accepted for compatibility; a symlink at dest is replaced by the file."},
    {.name = "newline_sequence",
     .type = AICP_ARG_STR,
     .def = "\\n",
     .choices = "\\n|\\r|\\r\\n",
     .help = "Line ending of the written file."},
    {.name = "trim_blocks",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .help = "Accepted for compatibility; blocks are trimmed as Ansible does by default."},
    {.name = "unsafe_writes",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Accepted for compatibility; writes are always atomic."},
    {.name = NULL},
};

/* Rewrites "\n" line ends as the wanted sequence. */
static int newlines(char **text, const char *seq)
{
    if (seq == NULL || strcmp(seq, "\\n") == 0 || strcmp(seq, "\n") == 0)
        return 0;
    const char *nl = strcmp(seq, "\\r") == 0 || strcmp(seq, "\r") == 0 ? "\r" : "\r\n";
    struct aicp_buf b = AICP_BUF_INIT;
    for (const char *p = *text; *p; p++)
        if ((*p == '\n' ? aicp_buf_puts(&b, nl) : aicp_buf_append(&b, p, 1)) != 0) {
            aicp_buf_free_secret(&b);
            return AICP_ENOMEM;
        }
    aicp_free_secret(*text);
    *text = aicp_buf_steal(&b);
    return 0;
}

static int template_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                          struct aicp_err *err)
{
    const char *src = aicp_fu_str(args, "src"), *dest = aicp_fu_str(args, "dest");
    char *local = NULL, *tsrc = NULL, *text = NULL;
    json_t *cur = NULL;
    int rc;
    *current = NULL;
    if (src == NULL || dest == NULL)
        return aicp_err_set(err, AICP_EFAILED, "src and dest are required");
    if ((rc = aicp_fu_local_path(&local, ctx->search_dir, "templates", src, err)) != 0 ||
        (rc = aicp_read_file(&tsrc, NULL, local, err)) != 0)
        goto out;
    json_t *empty = json_object();
    rc = aicp_tmpl_render_text(&text, tsrc, ctx->vars ? ctx->vars : empty, err);
    json_decref(empty);
    if (rc != 0) {
        aicp_err_prefix(err, "%s", local);
        goto out;
    }
    if (newlines(&text, aicp_fu_str(args, "newline_sequence")) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    rc = aicp_fu_content_check(ctx, dest, aicp_fu_basename(src), NULL, 0, &cur, err);
    if (rc != 0)
        goto out;
    char sum[41], md5[33];
    aicp_fu_digest_hex(sum, sizeof(sum), "sha1", text, strlen(text));
    json_object_set_new(cur, "want",
                        json_pack("{s:s, s:s, s:s}", "text", text, "checksum", sum, "src", local));
    /* Ansible's md5sum, left out where md5 is not allowed (FIPS). */
    if (aicp_fu_digest_hex(md5, sizeof(md5), "md5", text, strlen(text)) == 0)
        json_object_set_new(json_object_get(cur, "want"), "md5sum", json_string(md5));
    if (json_object_get(cur, "want") == NULL) {
        rc = aicp_err_set(err, AICP_EINVAL, "%s: the rendered template is not UTF-8 text", local);
        goto out;
    }
    if (ctx->result) {
        aicp_fu_result_stat(ctx->result, "dest", json_string_value(json_object_get(cur, "path")),
                            json_object_get(cur, "t"));
        json_object_set_new(ctx->result, "src", json_string(local));
        json_object_set_new(ctx->result, "checksum", json_string(sum));
    }
out:
    free(local);
    /* A rendered template often holds secrets (vault values, passwords). */
    aicp_free_secret(tsrc);
    aicp_free_secret(text);
    if (rc != 0) {
        json_decref(cur);
        cur = NULL;
    }
    *current = cur;
    return rc;
}

static int template_diff(const json_t *current, const struct aicp_args *args,
                         struct aicp_change **change, struct aicp_err *err)
{
    const json_t *want = json_object_get(current, "want");
    struct aicp_fu_want w = {0};
    w.text = json_string_value(json_object_get(want, "text"));
    w.len = json_string_length(json_object_get(want, "text"));
    w.checksum = json_string_value(json_object_get(want, "checksum"));
    w.label = json_string_value(json_object_get(want, "src"));
    w.mode = aicp_fu_get(args, "mode");
    w.force = aicp_fu_bool(args, "force", 1);
    w.backup_key = "backup_file";
    w.create_dirs = json_is_true(json_object_get(current, "dest_slash"));
    if (w.text == NULL) {
        *change = NULL;
        return aicp_err_set(err, AICP_EINVAL, "template: no rendered content");
    }
    int rc = aicp_fu_content_diff(change, current, args, &w, err);
    /* New content: Ansible's template module reports its md5sum. */
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

static int template_apply(struct aicp_ctx *ctx, const struct aicp_change *change,
                          struct aicp_err *err)
{
    return aicp_fu_content_apply(ctx, change, err);
}

static const struct aicp_module_ops template_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = template_check,
    .diff = template_diff,
    .apply = template_apply,
};

const struct aicp_module aicp_mod_template = {
    .name = "template",
    .summary = "Template a file out to a target host",
    .args = template_args,
    .flags = AICP_MOD_NEEDS_SSH,
    .ops = &template_ops,
};
