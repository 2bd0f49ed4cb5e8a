/* The slurp module: reads a whole remote file in one round trip and
 * returns it base64-encoded (content, encoding, source), as Ansible's
 * slurp does. Read-only: diff never asks for a change. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fileutil.h"
#include "module.h"
#include "util.h"

static const struct aicp_arg_spec slurp_args[] = {
    {.name = "src",
     .type = AICP_ARG_PATH,
     .required = 1,
     .aliases = "path",
     .help = "The file on the remote system to fetch. This must be a file, not a directory."},
    {.name = NULL},
};

static int slurp_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                       struct aicp_err *err)
{
    const char *src = aicp_fu_str(args, "src");
    struct aicp_buf b = AICP_BUF_INIT;
    json_t *cur = NULL;
    char *b64 = NULL;
    int rc;
    *current = NULL;
    if (src == NULL)
        return aicp_err_set(err, AICP_EINVAL, "slurp: src is required");
    rc = aicp_fu_sh_stat(&b, "p", src, 1);
    rc = rc ? rc : aicp_fu_sh_content(&b, "p", NULL, -1);
    if (rc != 0) {
        aicp_buf_free(&b);
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    rc = aicp_fu_check_run(ctx, b.data, &cur, err);
    aicp_buf_free(&b);
    if (rc != 0)
        return rc;
    const json_t *p = json_object_get(cur, "p");
    const char *type = json_string_value(json_object_get(p, "type"));
    const json_t *text = json_object_get(p, "content");
    const char *enc = json_string_value(json_object_get(p, "content_b64"));
    if (!json_is_true(json_object_get(p, "exists"))) {
        rc = aicp_err_set(err, AICP_EFAILED, "file not found: %s", src);
    } else if (type && strcmp(type, "directory") == 0) {
        rc = aicp_err_set(err, AICP_EFAILED, "source is a directory and must be a file: %s", src);
    } else if (text == NULL && enc == NULL) {
        rc = aicp_err_set(err, AICP_EFAILED, "file is not readable: %s", src);
    } else if (text) {
        rc = aicp_fu_b64(&b64, json_string_value(text), json_string_length(text));
        if (rc != 0)
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        enc = b64;
    }
    if (rc == 0 && ctx->result) {
        json_object_set_new(ctx->result, "content", json_string(enc));
        json_object_set_new(ctx->result, "encoding", json_string("base64"));
        json_object_set_new(ctx->result, "source", json_string(src));
    }
    free(b64);
    if (rc != 0) {
        json_decref(cur);
        return rc;
    }
    /* The content is in the result; current only needs to say it exists. */
    json_object_del((json_t *)p, "content");
    json_object_del((json_t *)p, "content_b64");
    *current = cur;
    return 0;
}

static const struct aicp_module_ops slurp_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = slurp_check,
    .diff = aicp_module_diff_none,
    .apply = aicp_module_apply_none,
};

const struct aicp_module aicp_mod_slurp = {
    .name = "slurp",
    .summary = "Slurps a file from remote nodes",
    .args = slurp_args,
    .flags = AICP_MOD_NEEDS_SSH,
    .ops = &slurp_ops,
};
