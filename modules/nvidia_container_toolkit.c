/* The nvidia_container_toolkit module: makes containerd run containers
 * through the NVIDIA container runtime, as `nvidia-ctk runtime configure
 * --runtime=containerd` does: /etc/containerd/config.toml (version 2
 * layout) gets the [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]
 * table with its options.BinaryName, and with `default: true` the CRI
 * plugin's default_runtime_name becomes "nvidia". The file is edited as
 * text: only those two tables and that one key are touched, every other
 * line stays as it was, so no TOML parser is needed. containerd is
 * restarted (systemctl restart) after a change. */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "err.h"
#include "module.h"
#include "sysutil.h"
#include "util.h"

static const struct aicp_arg_spec nct_args[] = {
    {.name = "state",
     .type = AICP_ARG_STR,
     .def = "present",
     .choices = "present|absent",
     .help = "present adds the nvidia runtime to containerd; absent removes it (and makes runc "
             "the default again when nvidia was)."},
    {.name = "default",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Make nvidia containerd's default runtime (default_runtime_name = \"nvidia\"); with "
             "no, a default of nvidia goes back to runc."},
    {.name = "runtime_binary",
     .type = AICP_ARG_PATH,
     .def = "/usr/bin/nvidia-container-runtime",
     .help = "The runtime's BinaryName."},
    {.name = "config_path",
     .type = AICP_ARG_PATH,
     .def = "/etc/containerd/config.toml",
     .help = "containerd's configuration file; created (version = 2) when missing."},
    {.name = "restart",
     .type = AICP_ARG_BOOL,
     .def = "yes",
     .help = "Restart containerd (`systemctl restart containerd`) after a change."},
    {.name = NULL},
};

#define CRI "[plugins.\"io.containerd.grpc.v1.cri\".containerd]"
#define NV_HDR "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.nvidia]"
#define NV_PREFIX "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.nvidia."

/* A table header line: its text without surrounding blanks, or NULL. */
static int header_of(const char *line, size_t len, const char **h, size_t *hlen)
{
    while (len > 0 && isspace((unsigned char)*line)) {
        line++;
        len--;
    }
    while (len > 0 && isspace((unsigned char)line[len - 1]))
        len--;
    if (len < 2 || line[0] != '[')
        return 0;
    *h = line;
    *hlen = len;
    return 1;
}

static int is(const char *h, size_t hlen, const char *want)
{
    return hlen == strlen(want) && memcmp(h, want, hlen) == 0;
}

/* The key of a "key = value" line (blanks trimmed), or 0. */
static int key_is(const char *line, size_t len, const char *key)
{
    while (len > 0 && isspace((unsigned char)*line)) {
        line++;
        len--;
    }
    size_t k = strlen(key);
    if (len <= k || memcmp(line, key, k) != 0)
        return 0;
    for (size_t i = k; i < len; i++) {
        if (line[i] == '=')
            return 1;
        if (!isspace((unsigned char)line[i]))
            return 0;
    }
    return 0;
}

static int nvidia_block(struct aicp_buf *b, const char *binary)
{
    int rc = aicp_buf_puts(b, NV_HDR "\n"
                                     "  privileged_without_host_devices = false\n"
                                     "  runtime_engine = \"\"\n"
                                     "  runtime_root = \"\"\n"
                                     "  runtime_type = \"io.containerd.runc.v2\"\n\n" NV_PREFIX
                                     "options]\n  BinaryName = ");
    rc = rc ? rc : aicp_buf_printf(b, "\"%s\"\n", binary);
    return rc;
}

/* Rewrites content: the nvidia tables are replaced in place by the
 * canonical ones (or removed, or appended when missing) and the CRI
 * table's default_runtime_name is set to want_default (NULL: leave it). */
static int rewrite(struct aicp_buf *out, const char *content, size_t clen, int present,
                   const char *want_default, const char *binary, char **cur_default)
{
    const char *p = content, *end = content + clen, *line;
    size_t len;
    int in_nv = 0, in_cri = 0, nv_done = 0, cri_seen = 0, def_done = 0, rc = 0;

    while (rc == 0 && aicp_sys_next_line(&p, end, &line, &len)) {
        const char *h;
        size_t hlen;
        if (header_of(line, len, &h, &hlen)) {
            if (in_cri && !def_done && want_default != NULL) {
                rc = aicp_buf_printf(out, "  default_runtime_name = \"%s\"\n", want_default);
                def_done = 1;
            }
            in_cri = is(h, hlen, CRI);
            cri_seen |= in_cri;
            int nv = is(h, hlen, NV_HDR) ||
                     (hlen > strlen(NV_PREFIX) && memcmp(h, NV_PREFIX, strlen(NV_PREFIX)) == 0);
            if (nv) {
                if (!in_nv && !nv_done && present) {
                    rc = rc ? rc : nvidia_block(out, binary);
                    nv_done = 1;
                }
                in_nv = 1;
                continue;
            }
            if (in_nv && present)
                rc = rc ? rc : aicp_buf_puts(out, "\n"); /* one blank line before the next table */
            in_nv = 0;
        } else if (in_nv) {
            continue; /* the old body (and its blank lines) is replaced */
        } else if (in_cri && key_is(line, len, "default_runtime_name")) {
            const char *q1 = memchr(line, '"', len);
            const char *q2 = q1 ? memchr(q1 + 1, '"', (size_t)(line + len - q1 - 1)) : NULL;
            if (*cur_default == NULL && q1 && q2)
                *cur_default = aicp_strndup(q1 + 1, (size_t)(q2 - q1 - 1));
            if (want_default != NULL) {
                if (!def_done)
                    rc = aicp_buf_printf(out, "  default_runtime_name = \"%s\"\n", want_default);
                def_done = 1;
                continue;
            }
        }
        rc = rc ? rc : aicp_buf_append(out, line, len);
        rc = rc ? rc : aicp_buf_puts(out, "\n");
    }
    if (rc == 0 && in_cri && !def_done && want_default != NULL) {
        rc = aicp_buf_printf(out, "  default_runtime_name = \"%s\"\n", want_default);
        def_done = 1;
    }
    if (rc == 0 && !cri_seen && want_default != NULL && strcmp(want_default, "runc") != 0) {
        if (out->len > 0 && !(out->len >= 2 && memcmp(out->data + out->len - 2, "\n\n", 2) == 0))
            rc = aicp_buf_puts(out, "\n");
        rc =
            rc ? rc : aicp_buf_printf(out, CRI "\n  default_runtime_name = \"%s\"\n", want_default);
    }
    if (rc == 0 && present && !nv_done) {
        if (out->len > 0 && !(out->len >= 2 && memcmp(out->data + out->len - 2, "\n\n", 2) == 0))
            rc = aicp_buf_puts(out, "\n");
        rc = rc ? rc : nvidia_block(out, binary);
    }
    return rc;
}

static int nct_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                     struct aicp_err *err)
{
    const char *file = aicp_args_str(args, "config_path");
    struct aicp_buf s = AICP_BUF_INIT;
    struct aicp_exec_result res;
    memset(&res, 0, sizeof(res));
    int rc = aicp_buf_puts(&s, "f=");
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
    *current = json_pack("{s:b, s:s%}", "exists", flen == 1 && *fflag == '1', "content",
                         content ? content : "", content ? clen : (size_t)0);
    if (*current == NULL)
        rc = AICP_ENOMEM;
out:
    aicp_exec_result_clear(&res);
    aicp_buf_free(&s);
    return rc;
}

static int nct_diff(const json_t *current, const struct aicp_args *args,
                    struct aicp_change **change, struct aicp_err *err)
{
    (void)err;
    int present = strcmp(aicp_args_str(args, "state"), "present") == 0;
    int exists = json_is_true(json_object_get(current, "exists"));
    const json_t *cj = json_object_get(current, "content");
    const char *content = json_string_value(cj);
    size_t clen = json_string_length(cj);
    struct aicp_buf out = AICP_BUF_INIT, scan = AICP_BUF_INIT;
    struct aicp_change *c = NULL;
    char *cur_default = NULL;
    int rc;

    /* A first pass only learns the current default runtime. */
    if ((rc = rewrite(&scan, content, clen, 1, NULL, "", &cur_default)) != 0)
        goto out;
    const char *want_default = NULL;
    int is_nv_default = cur_default != NULL && strcmp(cur_default, "nvidia") == 0;
    if (present && aicp_args_bool(args, "default", 0))
        want_default = "nvidia";
    else if (is_nv_default)
        want_default = "runc";
    if (!exists && present)
        rc = aicp_buf_puts(&out, "version = 2\n\n");
    char *ignored = NULL;
    rc = rc ? rc
            : rewrite(&out, content, clen, present, want_default,
                      aicp_args_str(args, "runtime_binary"), &ignored);
    free(ignored);
    if (rc)
        goto out;
    if ((rc = aicp_change_new(&c)) != 0)
        goto out;
    const char *now = out.data ? out.data : "";
    c->needed = (exists || present) && (out.len != clen || memcmp(now, content, clen) != 0);
    c->before = json_pack("{s:s%}", "content", content, clen);
    c->after = json_pack("{s:s%}", "content", now, out.len);
    c->plan = json_pack("{s:s%}", "content", now, out.len);
    if (c->before == NULL || c->after == NULL || c->plan == NULL) {
        rc = AICP_ENOMEM;
        goto out;
    }
    *change = c;
    c = NULL;
out:
    aicp_change_free(c);
    aicp_buf_free(&out);
    aicp_buf_free(&scan);
    free(cur_default);
    return rc;
}

static int nct_apply(struct aicp_ctx *ctx, const struct aicp_change *change, struct aicp_err *err)
{
    const struct aicp_args *args = change->args;
    const char *file = aicp_args_str(args, "config_path");
    const json_t *content = json_object_get(change->plan, "content");
    struct aicp_buf s = AICP_BUF_INIT;
    struct aicp_exec_result res;
    memset(&res, 0, sizeof(res));
    int rc = aicp_buf_puts(&s, "d=$(dirname -- ");
    rc = rc ? rc : aicp_buf_shquote(&s, file);
    rc = rc ? rc : aicp_buf_puts(&s, ") && mkdir -p -- \"$d\"\n");
    if (rc || (rc = aicp_sys_exec(ctx, s.data, &res, err)) != 0)
        goto out;
    if (res.rc != 0) {
        rc = aicp_sys_fail(err, &res, "failed to create the directory of %s", file);
        goto out;
    }
    aicp_exec_result_clear(&res);
    if ((rc = aicp_conn_put(ctx->conn, file, json_string_value(content),
                            json_string_length(content), -1, NULL, NULL, ctx->become, err)) != 0)
        goto out;
    if (aicp_args_bool(args, "restart", 1)) {
        if ((rc = aicp_sys_exec(ctx, "systemctl restart containerd", &res, err)) != 0)
            goto out;
        if (res.rc != 0)
            rc = aicp_sys_fail(err, &res, "restarting containerd failed");
    }
out:
    aicp_exec_result_clear(&res);
    aicp_buf_free(&s);
    return rc;
}

static const struct aicp_module_ops nct_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = nct_check,
    .diff = nct_diff,
    .apply = nct_apply,
};

const struct aicp_module aicp_mod_nvidia_container_toolkit = {
    .name = "nvidia_container_toolkit",
    .summary = "Configure containerd's nvidia runtime (NVIDIA Container Toolkit)",
    .args = nct_args,
    .flags = AICP_MOD_NEEDS_SSH,
    .ops = &nct_ops,
};
