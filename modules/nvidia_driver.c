/* The nvidia_driver module: keeps the NVIDIA driver of a host at a branch
 * ("535") or an exact version ("535.104.05") through the distribution's
 * package route: the Debian/Ubuntu package nvidia-driver-<branch>
 * installed with apt-get. The check reads the installed package
 * (dpkg-query) and the running driver (nvidia-smi's documented
 * --query-gpu=driver_version CSV, else /proc/driver/nvidia/version). A new
 * driver only runs after a reboot: the result says reboot_required, and
 * with allow_reboot the module reboots the host over SSH and waits for it
 * to come back (a new boot id). Draining and uncordoning a Kubernetes node
 * around that reboot are not this module's business (playbooks/
 * k8s-gpu-nodes.yml runs k8s_node around it for a cluster member). */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "err.h"
#include "module.h"
#include "sysutil.h"
#include "util.h"

static const struct aicp_arg_spec nvd_args[] = {
    {.name = "version",
     .type = AICP_ARG_STR,
     .required = 1,
     .help = "The driver wanted: a branch (\"535\") or an exact version (\"535.104.05\"); the "
             "package installed is nvidia-driver-<branch>."},
    {.name = "allow_reboot",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "After a change, reboot the host over SSH and wait for it to come back; with no, "
             "the task warns that a reboot is pending."},
    {.name = "reboot_timeout",
     .type = AICP_ARG_INT,
     .def = "600",
     .help = "Seconds to wait for the host to come back after the reboot."},
    {.name = NULL},
};

/* "535" or "535.104.05": digits and dots, starting with the branch. */
static int version_ok(const char *v)
{
    if (v == NULL || !isdigit((unsigned char)*v))
        return 0;
    for (const char *p = v; *p; p++)
        if (!isdigit((unsigned char)*p) && *p != '.')
            return 0;
    return v[strlen(v) - 1] != '.';
}

static char *branch_of(const char *v)
{
    return aicp_strndup(v, strcspn(v, "."));
}

/* A package version "535.104.05-0ubuntu1" (maybe with an epoch) or a
 * driver version "535.104.05" matches want: the same branch when want is
 * a branch, the same upstream version when it is exact. */
static int version_matches(const char *have, const char *want)
{
    if (have == NULL || *have == '\0')
        return 0;
    const char *colon = strchr(have, ':');
    if (colon != NULL)
        have = colon + 1;
    size_t n = strlen(want);
    if (strncmp(have, want, n) != 0)
        return 0;
    if (strchr(want, '.') == NULL)
        return have[n] == '.' || have[n] == '\0' || have[n] == '-';
    return have[n] == '\0' || have[n] == '-' || have[n] == '+' || have[n] == '~';
}

static int nvd_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                     struct aicp_err *err)
{
    const char *want = aicp_args_str(args, "version");
    char *branch = NULL;
    struct aicp_buf s = AICP_BUF_INIT;
    struct aicp_exec_result res;
    memset(&res, 0, sizeof(res));
    int rc;

    if (!version_ok(want)) {
        rc = aicp_err_set(err, AICP_EINVAL,
                          "invalid NVIDIA driver version '%s' (want 535 or "
                          "535.104.05)",
                          want ? want : "");
        goto out;
    }
    branch = branch_of(want);
    rc = aicp_buf_printf(&s,
                         "LC_ALL=C; export LC_ALL\n"
                         "p=$(dpkg-query -W -f='${Status} ${Version}' nvidia-driver-%s 2>/dev/null)"
                         "\ncase $p in 'install ok installed '*) p=${p##* } ;; *) p= ;; esac\n"
                         "r=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader "
                         "2>/dev/null | head -n 1) || r=\n"
                         "if [ -z \"$r\" ] && [ -r /proc/driver/nvidia/version ]; then\n"
                         "  r=$(sed -n 's/.*Kernel Module[^0-9]*\\([0-9][0-9.]*\\).*/\\1/p' "
                         "/proc/driver/nvidia/version | head -n 1)\nfi\n"
                         "case $r in [0-9]*) ;; *) r= ;; esac\n"
                         "echo '" AICP_SYS_TAG "package='\"$p\"\n"
                         "echo '" AICP_SYS_TAG "running='\"$r\"\n",
                         branch);
    if (rc || (rc = aicp_sys_exec(ctx, s.data, &res, err)) != 0)
        goto out;
    size_t plen = 0, rlen = 0;
    const char *p = aicp_sys_field(res.out, "package", &plen);
    const char *r = aicp_sys_field(res.out, "running", &rlen);
    if (res.rc != 0 || p == NULL || r == NULL) {
        rc = aicp_sys_fail(err, &res, "failed to read the NVIDIA driver of %s", ctx->host);
        goto out;
    }
    aicp_sys_rtrim(p, &plen);
    aicp_sys_rtrim(r, &rlen);
    *current = json_pack("{s:s, s:o, s:o}", "package", "", "package_version",
                         plen ? json_stringn(p, plen) : json_null(), "running_version",
                         rlen ? json_stringn(r, rlen) : json_null());
    if (*current == NULL) {
        rc = AICP_ENOMEM;
        goto out;
    }
    struct aicp_buf name = AICP_BUF_INIT;
    if (aicp_buf_printf(&name, "nvidia-driver-%s", branch) == 0)
        json_object_set_new(*current, "package", json_string(name.data));
    aicp_buf_free(&name);
    aicp_sys_result(ctx, "driver_version", rlen ? json_stringn(r, rlen) : json_null());
    /* A driver runs only after a reboot: one is needed when the package
     * is not (yet) the wanted one, or is but does not run. Once raised (by
     * apply) the re-check after apply must not lower it. */
    const json_t *pv = json_object_get(*current, "package_version");
    const json_t *rv = json_object_get(*current, "running_version");
    int needed = !version_matches(json_string_value(pv), want) ||
                 !version_matches(json_string_value(rv), want);
    if (ctx->result == NULL || !json_is_true(json_object_get(ctx->result, "reboot_required")))
        aicp_sys_result(ctx, "reboot_required", json_boolean(needed));
out:
    free(branch);
    aicp_exec_result_clear(&res);
    aicp_buf_free(&s);
    return rc;
}

static int nvd_diff(const json_t *current, const struct aicp_args *args,
                    struct aicp_change **change, struct aicp_err *err)
{
    (void)err;
    const char *want = aicp_args_str(args, "version");
    const char *pkgv = json_string_value(json_object_get(current, "package_version"));
    struct aicp_change *c = NULL;
    int rc = aicp_change_new(&c);
    if (rc)
        return rc;
    c->needed = !version_matches(pkgv, want);
    c->before = json_pack("{s:O, s:O}", "package", json_object_get(current, "package"), "version",
                          pkgv ? json_object_get(current, "package_version") : json_null());
    c->after =
        json_pack("{s:O, s:s}", "package", json_object_get(current, "package"), "version", want);
    c->plan = json_pack("{s:O}", "package", json_object_get(current, "package"));
    if (c->before == NULL || c->after == NULL || c->plan == NULL) {
        aicp_change_free(c);
        return AICP_ENOMEM;
    }
    *change = c;
    return 0;
}

/* The host's boot id, or NULL when it cannot be read (yet). */
static char *boot_id(struct aicp_ctx *ctx)
{
    struct aicp_exec_result res;
    memset(&res, 0, sizeof(res));
    struct aicp_err e = {0};
    char *id = NULL;
    if (aicp_sys_exec(ctx, "cat /proc/sys/kernel/random/boot_id", &res, &e) == 0 && res.rc == 0 &&
        res.out != NULL) {
        size_t n = res.out_len;
        aicp_sys_rtrim(res.out, &n);
        if (n > 0)
            id = aicp_strndup(res.out, n);
    }
    aicp_err_clear(&e);
    aicp_exec_result_clear(&res);
    return id;
}

static int nvd_reboot(struct aicp_ctx *ctx, long long timeout, struct aicp_err *err)
{
    struct aicp_exec_result res;
    memset(&res, 0, sizeof(res));
    char *before = boot_id(ctx), *now = NULL;
    int rc;
    /* Detached and delayed, so that this command returns before sshd goes. */
    if ((rc = aicp_sys_exec(ctx, "nohup sh -c 'sleep 2; reboot' >/dev/null 2>&1 &", &res, err)) !=
        0)
        goto out;
    if (res.rc != 0) {
        rc = aicp_sys_fail(err, &res, "failed to reboot %s", ctx->host);
        goto out;
    }
    time_t end = time(NULL) + (time_t)timeout;
    rc = aicp_err_set(err, AICP_EFAILED, "%s did not come back within %lld seconds of the reboot",
                      ctx->host, timeout);
    while (time(NULL) < end) {
        sleep(5);
        free(now);
        now = boot_id(ctx);
        if (now != NULL && (before == NULL || strcmp(now, before) != 0)) {
            aicp_err_clear(err);
            rc = 0;
            break;
        }
    }
out:
    free(before);
    free(now);
    aicp_exec_result_clear(&res);
    return rc;
}

static int nvd_apply(struct aicp_ctx *ctx, const struct aicp_change *change, struct aicp_err *err)
{
    const struct aicp_args *args = change->args;
    const char *want = aicp_args_str(args, "version");
    const char *pkg = json_string_value(json_object_get(change->plan, "package"));
    struct aicp_buf s = AICP_BUF_INIT;
    struct aicp_exec_result res;
    memset(&res, 0, sizeof(res));
    int rc;

    /* An exact version picks the matching package version apt knows. */
    rc = aicp_buf_puts(&s, "LC_ALL=C DEBIAN_FRONTEND=noninteractive; "
                           "export LC_ALL DEBIAN_FRONTEND\npkg=");
    rc = rc ? rc : aicp_buf_shquote(&s, pkg);
    rc = rc ? rc : aicp_buf_puts(&s, "; want=");
    rc = rc ? rc : aicp_buf_shquote(&s, want);
    rc = rc ? rc
            : aicp_buf_puts(
                  &s, "\ncase $want in *.*)\n"
                      "  v=$(apt-cache madison \"$pkg\" | awk -v w=\"$want\" '{ x = $3; "
                      "sub(/^[0-9]+:/, \"\", x) } x == w || index(x, w \"-\") == 1 { print $3;"
                      " exit }')\n"
                      "  [ -n \"$v\" ] || { echo \"no $pkg version $want in the package "
                      "sources\" >&2; exit 100; }\n"
                      "  pkg=\"$pkg=$v\" ;;\nesac\n"
                      "apt-get install -y -q --no-install-recommends \"$pkg\"\n");
    if (rc || (rc = aicp_sys_exec(ctx, s.data, &res, err)) != 0)
        goto out;
    if (res.rc != 0) {
        rc = aicp_sys_fail(err, &res, "installing %s failed", pkg);
        goto out;
    }
    aicp_sys_result(ctx, "reboot_required", json_true());
    if (aicp_args_bool(args, "allow_reboot", 0)) {
        if ((rc = nvd_reboot(ctx, aicp_args_int(args, "reboot_timeout", 600), err)) != 0)
            goto out;
        aicp_sys_result(ctx, "rebooted", json_true());
        aicp_sys_result(ctx, "reboot_required", json_false());
    } else {
        struct aicp_buf w = AICP_BUF_INIT;
        if (aicp_buf_printf(&w,
                            "%s installed: a reboot is pending before the new driver runs "
                            "on %s",
                            pkg, ctx->host) == 0)
            aicp_sys_result(ctx, "warnings", json_pack("[s]", w.data));
        aicp_buf_free(&w);
    }
out:
    aicp_exec_result_clear(&res);
    aicp_buf_free(&s);
    return rc;
}

static const struct aicp_module_ops nvd_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = nvd_check,
    .diff = nvd_diff,
    .apply = nvd_apply,
};

const struct aicp_module aicp_mod_nvidia_driver = {
    .name = "nvidia_driver",
    .summary = "Install an NVIDIA driver branch or version (nvidia-driver-<branch>)",
    .args = nvd_args,
    .flags = AICP_MOD_NEEDS_SSH,
    .ops = &nvd_ops,
};
