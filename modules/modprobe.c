/* The modprobe module (community.general.modprobe): loads and unloads
 * kernel modules with modprobe and, with persistent, keeps them loaded
 * across boots through /etc/modules-load.d/NAME.conf and their parameters
 * through /etc/modprobe.d/NAME.conf. Whether a module is loaded is read
 * from lsmod's first column (builtin modules count as loaded); the check
 * is one round trip that also reads both configuration files. */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "err.h"
#include "module.h"
#include "sysutil.h"
#include "util.h"

static const struct aicp_arg_spec modprobe_args[] = {
    {.name = "name",
     .type = AICP_ARG_STR,
     .required = 1,
     .help = "Name of the kernel module (dashes and underscores are the same)."},
    {.name = "state",
     .type = AICP_ARG_STR,
     .def = "present",
     .choices = "present|absent",
     .help = "Whether the module should be loaded (present) or unloaded (absent)."},
    {.name = "params",
     .type = AICP_ARG_STR,
     .def = "",
     .help = "Module parameters (\"a=1 b=2\") used when loading, and written to "
             "/etc/modprobe.d/NAME.conf with persistent=present."},
    {.name = "persistent",
     .type = AICP_ARG_STR,
     .def = "disabled",
     .choices = "disabled|absent|present",
     .help = "present: load at boot (/etc/modules-load.d/NAME.conf, plus an options line in "
             "/etc/modprobe.d/NAME.conf when params are set); absent: remove those entries; "
             "disabled: leave boot configuration alone."},
    {.name = NULL},
};

#define LOAD_DIR "/etc/modules-load.d/"
#define OPTS_DIR "/etc/modprobe.d/"

static int name_ok(const char *n)
{
    if (n == NULL || *n == '\0' || *n == '-' || strlen(n) > 64)
        return 0;
    for (const char *p = n; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
            return 0;
    return 1;
}

/* The kernel's spelling: lsmod lists names with '_' for '-'. */
static char *kname(const char *n)
{
    char *k = aicp_strdup(n);
    for (char *p = k; p && *p; p++)
        if (*p == '-')
            *p = '_';
    return k;
}

/* Collapses runs of whitespace so that "a=1  b=2" equals "a=1 b=2". */
static char *squeeze(const char *s, size_t len)
{
    struct aicp_buf b = AICP_BUF_INIT;
    int space = 0;
    for (size_t i = 0; i < len; i++) {
        if (isspace((unsigned char)s[i])) {
            space = b.len > 0;
            continue;
        }
        if (space && aicp_buf_puts(&b, " ") != 0)
            break;
        space = 0;
        if (aicp_buf_append(&b, &s[i], 1) != 0)
            break;
    }
    return aicp_buf_steal(&b);
}

static int modprobe_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                          struct aicp_err *err)
{
    const char *name = aicp_args_str(args, "name");
    const char *persistent = aicp_args_str(args, "persistent");
    struct aicp_buf s = AICP_BUF_INIT;
    struct aicp_exec_result res;
    memset(&res, 0, sizeof(res));
    char *k = NULL;
    int rc;

    if (!name_ok(name))
        return aicp_err_set(err, AICP_EINVAL, "invalid module name '%s'", name ? name : "");
    if ((k = kname(name)) == NULL)
        return AICP_ENOMEM;
    rc = aicp_buf_puts(&s, "LC_ALL=C; export LC_ALL\nn=");
    rc = rc ? rc : aicp_buf_shquote(&s, k);
    rc = rc ? rc
            : aicp_buf_puts(
                  &s, "\nl=$(lsmod) || { echo 'lsmod failed' >&2; exit 1; }\n"
                      "printf '%s\\n' \"$l\" | awk -v n=\"$n\" 'NR > 1 && $1 == n { f = 1 } "
                      "END { print \"" AICP_SYS_TAG "loaded=\" (f ? 1 : 0) }'\n"
                      "b=0; f=/lib/modules/$(uname -r)/modules.builtin\n"
                      "if [ -f \"$f\" ] && tr - _ <\"$f\" | grep -q \"/$n\\.ko$\"; then b=1; fi\n"
                      "echo \"" AICP_SYS_TAG "builtin=$b\"\n");
    if (rc == 0 && strcmp(persistent, "disabled") != 0) {
        rc = aicp_buf_puts(&s, "f=" LOAD_DIR);
        rc = rc ? rc : aicp_buf_shquote(&s, name);
        rc = rc ? rc
                : aicp_buf_puts(&s, ".conf\nif [ -f \"$f\" ]; then echo '" AICP_SYS_TAG
                                    "load=1'; cat \"$f\"; echo; else echo '" AICP_SYS_TAG
                                    "load=0'; fi\nf=" OPTS_DIR);
        rc = rc ? rc : aicp_buf_shquote(&s, name);
        rc =
            rc ? rc
               : aicp_buf_puts(&s, ".conf\nif [ -f \"$f\" ]; then echo '" AICP_SYS_TAG
                                   "opts=1'; cat \"$f\"; else echo '" AICP_SYS_TAG "opts=0'; fi\n");
    }
    if (rc)
        goto out;
    if ((rc = aicp_sys_exec(ctx, s.data, &res, err)) != 0)
        goto out;
    if (res.rc != 0 || aicp_sys_field_int(res.out, "loaded", -1) < 0) {
        rc = aicp_sys_fail(err, &res, "failed to read the loaded modules");
        goto out;
    }
    json_t *cur = json_pack("{s:b, s:b}", "loaded", aicp_sys_field_int(res.out, "loaded", 0) == 1,
                            "builtin", aicp_sys_field_int(res.out, "builtin", 0) == 1);
    size_t len;
    const char *t;
    if (aicp_sys_field_int(res.out, "load", 0) == 1 &&
        (t = aicp_sys_section(res.out, "load", 0, &len)) != NULL)
        json_object_set_new(cur, "load_conf", json_stringn(t, len));
    if (aicp_sys_field_int(res.out, "opts", 0) == 1 &&
        (t = aicp_sys_section(res.out, "opts", 1, &len)) != NULL)
        json_object_set_new(cur, "options_conf", json_stringn(t, len));
    aicp_sys_result(ctx, "name", json_string(name));
    aicp_sys_result(ctx, "params", json_string(aicp_args_str(args, "params")));
    aicp_sys_result(ctx, "state", json_string(aicp_args_str(args, "state")));
    *current = cur;
out:
    free(k);
    aicp_exec_result_clear(&res);
    aicp_buf_free(&s);
    return rc;
}

/* Rewrites conf without the lines that match (keep=0), reporting whether
 * one matched. A load line matches when it is the module's name; an
 * options line when it is "options NAME ..." (params==NULL) or exactly
 * "options NAME PARAMS". */
static int filter_lines(const char *conf, const char *k, const char *params, int options,
                        struct aicp_buf *out, int *matched)
{
    const char *p = conf ? conf : "", *end = p + strlen(p), *line;
    size_t len;
    int rc = 0;
    *matched = 0;
    while (rc == 0 && aicp_sys_next_line(&p, end, &line, &len)) {
        char *sq = squeeze(line, len);
        char *kl = sq ? kname(sq) : NULL;
        if (kl == NULL) {
            free(sq);
            return AICP_ENOMEM;
        }
        int m = 0;
        size_t kn = strlen(k);
        if (!options)
            m = strcmp(kl, k) == 0;
        else if (strncmp(kl, "options ", 8) == 0 && strncmp(kl + 8, k, kn) == 0 &&
                 (kl[8 + kn] == ' ' || kl[8 + kn] == '\0'))
            m = params == NULL || strcmp(sq + 8 + kn + (sq[8 + kn] == ' '), params) == 0;
        *matched |= m;
        if (!m && *sq)
            rc = aicp_buf_printf(out, "%.*s\n", (int)len, line);
        free(sq);
        free(kl);
    }
    return rc;
}

static int modprobe_diff(const json_t *current, const struct aicp_args *args,
                         struct aicp_change **change, struct aicp_err *err)
{
    const char *name = aicp_args_str(args, "name");
    const char *state = aicp_args_str(args, "state");
    const char *persistent = aicp_args_str(args, "persistent");
    char *params = NULL, *k = kname(name);
    const char *load_conf = json_string_value(json_object_get(current, "load_conf"));
    const char *opts_conf = json_string_value(json_object_get(current, "options_conf"));
    int loaded = json_is_true(json_object_get(current, "loaded")) ||
                 json_is_true(json_object_get(current, "builtin"));
    struct aicp_buf lb = AICP_BUF_INIT, ob = AICP_BUF_INIT;
    struct aicp_change *c = NULL;
    json_t *plan = json_object();
    int rc = 0, m;
    (void)err;

    const char *praw = aicp_args_str(args, "params");
    if (k == NULL || (params = squeeze(praw ? praw : "", strlen(praw ? praw : ""))) == NULL) {
        rc = AICP_ENOMEM;
        goto out;
    }
    int present = strcmp(state, "present") == 0;
    if (present && !loaded)
        json_object_set_new(plan, "load", json_true());
    if (!present && json_is_true(json_object_get(current, "loaded")))
        json_object_set_new(plan, "unload", json_true());
    if (strcmp(persistent, "present") == 0) {
        if ((rc = filter_lines(load_conf, k, NULL, 0, &lb, &m)) != 0)
            goto out;
        if (!m) {
            /* Ansible writes the file with just the module's name. */
            json_object_set_new(plan, "load_conf", json_pack("{s:s+}", "content", name, "\n"));
        }
        if (*params) {
            if ((rc = filter_lines(opts_conf, k, params, 1, &ob, &m)) != 0)
                goto out;
            if (!m)
                json_object_set_new(
                    plan, "options_conf",
                    json_pack("{s:s++++}", "content", "options ", name, " ", params, "\n"));
        }
    } else if (strcmp(persistent, "absent") == 0) {
        if ((rc = filter_lines(load_conf, k, NULL, 0, &lb, &m)) != 0)
            goto out;
        if (m)
            json_object_set_new(plan, "load_conf",
                                json_pack("{s:s}", "content", lb.data ? lb.data : ""));
        if ((rc = filter_lines(opts_conf, k, NULL, 1, &ob, &m)) != 0)
            goto out;
        if (m)
            json_object_set_new(plan, "options_conf",
                                json_pack("{s:s}", "content", ob.data ? ob.data : ""));
    }
    if ((rc = aicp_change_new(&c)) != 0)
        goto out;
    c->needed = json_object_size(plan) > 0;
    c->before = json_pack("{s:s, s:b}", "name", name, "loaded", loaded);
    c->after = json_pack("{s:s, s:b}", "name", name, "loaded",
                         present ? 1 : loaded && !json_object_get(plan, "unload"));
    if (json_object_get(plan, "load_conf"))
        json_object_set_new(c->after, "modules_load_d", json_string(persistent));
    if (json_object_get(plan, "options_conf"))
        json_object_set_new(c->after, "modprobe_d", json_string(persistent));
    c->plan = plan;
    plan = NULL;
    *change = c;
    c = NULL;
out:
    json_decref(plan);
    aicp_change_free(c);
    aicp_buf_free(&lb);
    aicp_buf_free(&ob);
    free(params);
    free(k);
    return rc;
}

/* A configuration file the plan rewrites: non-empty content is written
 * after the script ran (which creates the directory); an empty one is
 * removed by the script. */
static int conf_step(struct aicp_ctx *ctx, const char *dir, const char *name, const json_t *conf,
                     struct aicp_buf *script, struct aicp_err *err)
{
    const char *content = json_string_value(json_object_get(conf, "content"));
    struct aicp_buf path = AICP_BUF_INIT;
    int rc = aicp_buf_printf(&path, "%s%s.conf", dir, name);
    if (rc == 0 && script) {
        rc = aicp_buf_puts(script, content && *content ? "mkdir -p " : "rm -f ");
        rc = rc ? rc : aicp_buf_shquote(script, content && *content ? dir : path.data);
        rc = rc ? rc : aicp_buf_puts(script, " || exit 1\n");
    } else if (rc == 0 && content && *content) {
        rc = aicp_conn_put(ctx->conn, path.data, content, strlen(content), -1, NULL, NULL,
                           ctx->become, err);
    }
    aicp_buf_free(&path);
    return rc;
}

static int modprobe_apply(struct aicp_ctx *ctx, const struct aicp_change *change,
                          struct aicp_err *err)
{
    const struct aicp_args *args = change->args;
    const char *name = aicp_args_str(args, "name");
    const json_t *plan = change->plan;
    struct aicp_buf s = AICP_BUF_INIT;
    struct aicp_exec_result res;
    memset(&res, 0, sizeof(res));
    const json_t *conf;
    int rc = aicp_buf_puts(&s, "LC_ALL=C; export LC_ALL\n");

    /* Ansible loads or unloads first, then edits the boot configuration:
     * one script for modprobe, mkdir and rm, then the atomic writes. */
    if (rc == 0 && json_is_true(json_object_get(plan, "load"))) {
        const char *params = aicp_args_str(args, "params");
        rc = aicp_buf_puts(&s, "modprobe ");
        rc = rc ? rc : aicp_sys_word(&s, name);
        /* Parameters are separate words, each quoted: no shell expansion. */
        char *copy = aicp_strdup(params ? params : "");
        char *save = NULL;
        for (char *w = copy ? strtok_r(copy, " \t\n", &save) : NULL; rc == 0 && w;
             w = strtok_r(NULL, " \t\n", &save))
            rc = aicp_sys_word(&s, w);
        free(copy);
        rc = rc ? rc : aicp_buf_puts(&s, "|| exit 1\n");
    }
    if (rc == 0 && json_is_true(json_object_get(plan, "unload"))) {
        rc = aicp_buf_puts(&s, "modprobe -r ");
        rc = rc ? rc : aicp_sys_word(&s, name);
        rc = rc ? rc : aicp_buf_puts(&s, "|| exit 1\n");
    }
    if (rc == 0 && (conf = json_object_get(plan, "load_conf")) != NULL)
        rc = conf_step(ctx, LOAD_DIR, name, conf, &s, err);
    if (rc == 0 && (conf = json_object_get(plan, "options_conf")) != NULL)
        rc = conf_step(ctx, OPTS_DIR, name, conf, &s, err);
    if (rc)
        goto out;
    if ((rc = aicp_sys_exec(ctx, s.data, &res, err)) != 0)
        goto out;
    if (res.rc != 0) {
        rc = aicp_sys_fail(
            err, &res, "%s %s failed",
            json_is_true(json_object_get(plan, "unload")) ? "modprobe -r" : "modprobe", name);
        goto out;
    }
    if ((conf = json_object_get(plan, "load_conf")) != NULL &&
        (rc = conf_step(ctx, LOAD_DIR, name, conf, NULL, err)) != 0)
        goto out;
    if ((conf = json_object_get(plan, "options_conf")) != NULL)
        rc = conf_step(ctx, OPTS_DIR, name, conf, NULL, err);
out:
    aicp_exec_result_clear(&res);
    aicp_buf_free(&s);
    return rc;
}

static const struct aicp_module_ops modprobe_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = modprobe_check,
    .diff = modprobe_diff,
    .apply = modprobe_apply,
};

const struct aicp_module aicp_mod_modprobe = {
    .name = "modprobe",
    .summary = "Load or unload kernel modules, at once and at boot",
    .args = modprobe_args,
    .flags = AICP_MOD_NEEDS_SSH,
    .ops = &modprobe_ops,
};
