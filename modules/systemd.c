/* The systemd module (ansible.builtin.systemd_service): starts, stops,
 * restarts and reloads units, enables, disables and masks them, and runs
 * daemon-reload, all through systemctl. The check is one round trip
 * (`systemctl show -p ...` and `systemctl is-enabled`); the apply is one
 * script that runs the needed systemctl verbs in Ansible's order. The
 * service module (service.c) runs on these same ops with its own argument
 * table, which is why every argument is read as optional here. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "err.h"
#include "module.h"
#include "sysutil.h"
#include "util.h"

static const struct aicp_arg_spec systemd_args[] = {
    {.name = "name",
     .type = AICP_ARG_STR,
     .aliases = "service|unit",
     .help = "Unit name, e.g. docker or kubelet.service (.service is implied)."},
    {.name = "state",
     .type = AICP_ARG_STR,
     .choices = "started|stopped|restarted|reloaded",
     .help = "started/stopped change the unit only when needed; restarted and reloaded always "
             "act (reloaded starts a stopped unit)."},
    {.name = "enabled",
     .type = AICP_ARG_BOOL,
     .help = "Whether the unit starts on boot (`systemctl enable`/`disable`)."},
    {.name = "masked",
     .type = AICP_ARG_BOOL,
     .help = "Whether the unit is masked (`systemctl mask`/`unmask`)."},
    {.name = "daemon_reload",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .aliases = "daemon-reload",
     .help = "Run `systemctl daemon-reload` before anything else, when a unit file changed "
             "since the last reload (systemd's NeedDaemonReload)."},
    {.name = "force",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Pass --force to enable/disable/mask (override existing symlinks)."},
    {.name = "no_block",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Do not wait for start/stop jobs to finish (--no-block)."},
    {.name = "scope",
     .type = AICP_ARG_STR,
     .def = "system",
     .choices = "system|user|global",
     .help = "systemd instance to talk to; only system is supported."},
    {.name = NULL},
};

/* The properties reported as the result's status. */
static const char *const status_props[] = {
    "Id",
    "Names",
    "Description",
    "LoadState",
    "ActiveState",
    "SubState",
    "UnitFileState",
    "MainPID",
    "ExecMainPID",
    "FragmentPath",
    "Result",
    "NeedDaemonReload",
    "ActiveEnterTimestamp",
};

/* Unit names go into argv: refuse what systemctl would read as an option
 * and anything outside systemd's unit-name alphabet. */
static int unit_ok(const char *u)
{
    if (u == NULL || *u == '\0' || *u == '-' || strlen(u) > 256)
        return 0;
    for (const char *p = u; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr(":-_.\\@", *p)))
            return 0;
    return 1;
}

static int validate(const struct aicp_args *args, struct aicp_err *err)
{
    const char *name = aicp_args_str(args, "name");
    int is_service = args->mod && strcmp(args->mod->name, "service") == 0;
    const char *scope = aicp_args_str(args, "scope");
    const char *use = aicp_args_str(args, "use");
    if (use && strcmp(use, "auto") != 0 && strcmp(use, "systemd") != 0)
        return aicp_err_set(err, AICP_EINVAL, "use=%s is not supported (only systemd)", use);
    if (scope && strcmp(scope, "system") != 0)
        return aicp_err_set(err, AICP_EINVAL, "scope=%s is not supported (only scope=system)",
                            scope);
    static const char *const need_name[] = {"state", "enabled", "masked"};
    for (size_t i = 0; i < 3; i++)
        if (aicp_args_get(args, need_name[i]) && name == NULL)
            return aicp_err_set(err, AICP_EINVAL, "missing parameter(s) required by '%s': name",
                                need_name[i]);
    if (is_service && name == NULL)
        return aicp_err_set(err, AICP_EINVAL, "missing required arguments: name");
    if (is_service && !aicp_args_get(args, "state") && !aicp_args_get(args, "enabled"))
        return aicp_err_set(err, AICP_EINVAL, "one of the following is required: state, enabled");
    if (!is_service && !aicp_args_get(args, "state") && !aicp_args_get(args, "enabled") &&
        !aicp_args_get(args, "masked") && !aicp_args_bool(args, "daemon_reload", 0))
        return aicp_err_set(err, AICP_EINVAL,
                            "one of the following is required: state, enabled, masked, "
                            "daemon_reload");
    if (name && !unit_ok(name))
        return aicp_err_set(err, AICP_EINVAL, "invalid unit name '%s'", name);
    return 0;
}

static int systemd_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                         struct aicp_err *err)
{
    const char *name = aicp_args_str(args, "name");
    struct aicp_buf s = AICP_BUF_INIT;
    struct aicp_exec_result res;
    memset(&res, 0, sizeof(res));
    int rc;

    if ((rc = validate(args, err)) != 0)
        return rc;
    rc = aicp_buf_puts(&s, "LC_ALL=C; export LC_ALL\n");
    if (rc == 0 && name) {
        rc = aicp_buf_puts(&s, "u=");
        rc = rc ? rc : aicp_buf_shquote(&s, name);
        rc = rc ? rc : aicp_buf_puts(&s, "\necho '" AICP_SYS_TAG "show=1'\nsystemctl show");
        for (size_t i = 0; rc == 0 && i < sizeof(status_props) / sizeof(status_props[0]); i++)
            rc = aicp_buf_printf(&s, " -p %s", status_props[i]);
        rc = rc ? rc
                : aicp_buf_puts(&s, " \"$u\" 2>&1; r=$?\n"
                                    "echo \"" AICP_SYS_TAG "showrc=$r\"\n"
                                    "e=$(systemctl is-enabled \"$u\" 2>/dev/null); r=$?\n"
                                    "printf '" AICP_SYS_TAG "enabled=%s:%s\\n' \"$r\" "
                                    "\"$(printf '%s' \"$e\" | head -n 1)\"\n");
    } else if (rc == 0) {
        /* daemon_reload alone: is any loaded unit stale? */
        rc = aicp_buf_puts(&s, "n=$(systemctl show -p NeedDaemonReload '*' 2>/dev/null | "
                               "grep -c '=yes$')\necho \"" AICP_SYS_TAG "stale=$n\"\n");
    }
    if (rc)
        goto out;
    if ((rc = aicp_sys_exec(ctx, s.data, &res, err)) != 0)
        goto out;
    json_t *cur = json_object();
    if (name == NULL) {
        json_object_set_new(cur, "need_reload",
                            json_boolean(aicp_sys_field_int(res.out, "stale", 0) > 0));
        *current = cur;
        goto out;
    }
    if (aicp_sys_field_int(res.out, "showrc", 1) != 0) {
        json_decref(cur);
        rc = aicp_sys_fail(err, &res, "failed to read the state of %s", name);
        goto out;
    }
    size_t len = 0;
    const char *show = aicp_sys_section(res.out, "show", 0, &len);
    const char *p = show, *end = show + len, *line;
    size_t ll;
    json_t *status = json_object();
    while (aicp_sys_next_line(&p, end, &line, &ll)) {
        const char *eq = memchr(line, '=', ll);
        if (eq == NULL)
            continue;
        char *k = aicp_strndup(line, (size_t)(eq - line));
        if (k)
            json_object_set_new(status, k, json_stringn(eq + 1, ll - (size_t)(eq + 1 - line)));
        free(k);
    }
    const char *load = json_string_value(json_object_get(status, "LoadState"));
    const char *active = json_string_value(json_object_get(status, "ActiveState"));
    const char *nr = json_string_value(json_object_get(status, "NeedDaemonReload"));
    size_t elen = 0;
    const char *e = aicp_sys_field(res.out, "enabled", &elen);
    const char *colon = e ? memchr(e, ':', elen) : NULL;
    json_object_set_new(cur, "found", json_boolean(load && strcmp(load, "not-found") != 0));
    json_object_set_new(cur, "masked", json_boolean(load && strcmp(load, "masked") == 0));
    json_object_set_new(cur, "active", json_string(active ? active : "unknown"));
    json_object_set_new(cur, "need_reload", json_boolean(nr && strcmp(nr, "yes") == 0));
    json_object_set_new(cur, "enabled_rc", json_integer(aicp_sys_field_int(res.out, "enabled", 1)));
    json_object_set_new(cur, "enabled_state",
                        colon ? json_stringn(colon + 1, elen - (size_t)(colon + 1 - e))
                              : json_string(""));
    json_object_set_new(cur, "status", status);
    aicp_sys_result(ctx, "name", json_string(name));
    aicp_sys_result(ctx, "status", json_deep_copy(status));
    if (aicp_args_get(args, "state"))
        aicp_sys_result(ctx, "state", json_string(aicp_args_str(args, "state")));
    if (aicp_args_get(args, "enabled"))
        aicp_sys_result(ctx, "enabled", json_boolean(aicp_args_bool(args, "enabled", 0)));
    *current = cur;
out:
    aicp_exec_result_clear(&res);
    aicp_buf_free(&s);
    return rc;
}

static int is_running(const char *active)
{
    return strcmp(active, "active") == 0 || strcmp(active, "activating") == 0 ||
           strcmp(active, "reloading") == 0;
}

/* Enabled as Ansible reads `systemctl is-enabled`: exit 0 means enabled,
 * except for indirect and alias units. */
static int is_enabled(const json_t *cur)
{
    const char *st = json_string_value(json_object_get(cur, "enabled_state"));
    if (json_integer_value(json_object_get(cur, "enabled_rc")) != 0)
        return 0;
    return !(st && (strcmp(st, "indirect") == 0 || strcmp(st, "alias") == 0));
}

static int systemd_diff(const json_t *current, const struct aicp_args *args,
                        struct aicp_change **change, struct aicp_err *err)
{
    const char *name = aicp_args_str(args, "name");
    const char *state = aicp_args_str(args, "state");
    int want_enabled = aicp_args_bool(args, "enabled", -1);
    int want_masked = aicp_args_bool(args, "masked", -1);
    json_t *actions = json_array();
    struct aicp_change *c = NULL;
    int rc, no_verify = 0;

    if ((rc = validate(args, err)) != 0)
        goto out;
    if (aicp_args_bool(args, "daemon_reload", 0) &&
        json_is_true(json_object_get(current, "need_reload")))
        json_array_append_new(actions, json_string("daemon-reload"));
    if ((rc = aicp_change_new(&c)) != 0)
        goto out;
    if (name == NULL) {
        c->before = json_pack("{s:b}", "need_daemon_reload", json_array_size(actions) > 0);
        c->after = json_pack("{s:b}", "need_daemon_reload", 0);
        goto done;
    }
    int found = json_is_true(json_object_get(current, "found"));
    int masked = json_is_true(json_object_get(current, "masked"));
    const char *active = json_string_value(json_object_get(current, "active"));
    const char *enabled_state = json_string_value(json_object_get(current, "enabled_state"));
    int enabled = is_enabled(current);
    int running = active && is_running(active);

    if (want_masked >= 0 && want_masked != masked) {
        json_array_append_new(actions, json_string(want_masked ? "mask" : "unmask"));
        masked = want_masked;
        found = found || !masked;
    }
    if ((want_enabled >= 0 || state) && !found && !masked) {
        rc = aicp_err_set(err, AICP_EFAILED, "Could not find the requested service %s: host", name);
        goto out;
    }
    /* Static, generated and transient units have no install config:
     * systemctl cannot enable or disable them, so there is nothing to do. */
    int fixed = enabled_state &&
                (strcmp(enabled_state, "static") == 0 || strcmp(enabled_state, "generated") == 0 ||
                 strcmp(enabled_state, "transient") == 0);
    if (want_enabled >= 0 && want_enabled != enabled && !fixed)
        json_array_append_new(actions, json_string(want_enabled ? "enable" : "disable"));
    const char *verb = NULL;
    if (state && strcmp(state, "started") == 0 && !running)
        verb = "start";
    else if (state && strcmp(state, "stopped") == 0 &&
             (running || (active && strcmp(active, "deactivating") == 0)))
        verb = "stop";
    else if (state && (strcmp(state, "restarted") == 0 || strcmp(state, "reloaded") == 0)) {
        verb = !running ? "start" : strcmp(state, "restarted") == 0 ? "restart" : "reload";
        no_verify = 1; /* they act every time, as in Ansible */
    }
    if (verb)
        json_array_append_new(actions, json_string(verb));
    c->before =
        json_pack("{s:s, s:s, s:b, s:b}", "name", name, "state", running ? "started" : "stopped",
                  "enabled", enabled, "masked", json_is_true(json_object_get(current, "masked")));
    c->after = json_pack("{s:s, s:s, s:b, s:b}", "name", name, "state",
                         verb == NULL                ? (running ? "started" : "stopped")
                         : strcmp(verb, "stop") == 0 ? "stopped"
                                                     : "started",
                         "enabled", want_enabled >= 0 && !fixed ? want_enabled : enabled, "masked",
                         masked);
done:
    c->needed = json_array_size(actions) > 0;
    c->plan = json_pack("{s:O, s:b}", "actions", actions, "no_verify", no_verify);
    if (c->plan == NULL) {
        rc = AICP_ENOMEM;
        goto out;
    }
    *change = c;
    c = NULL;
out:
    aicp_change_free(c);
    json_decref(actions);
    return rc;
}

static int systemd_apply(struct aicp_ctx *ctx, const struct aicp_change *change,
                         struct aicp_err *err)
{
    const struct aicp_args *args = change->args;
    const char *name = aicp_args_str(args, "name");
    const json_t *actions = json_object_get(change->plan, "actions");
    struct aicp_buf s = AICP_BUF_INIT;
    struct aicp_exec_result res;
    memset(&res, 0, sizeof(res));
    int rc = aicp_buf_puts(&s, "LC_ALL=C; export LC_ALL\n");
    size_t i;
    json_t *a;

    json_array_foreach(actions, i, a)
    {
        const char *verb = json_string_value(a);
        int is_job = strcmp(verb, "start") == 0 || strcmp(verb, "stop") == 0 ||
                     strcmp(verb, "restart") == 0 || strcmp(verb, "reload") == 0;
        int is_file = strcmp(verb, "enable") == 0 || strcmp(verb, "disable") == 0 ||
                      strcmp(verb, "mask") == 0 || strcmp(verb, "unmask") == 0;
        rc = rc ? rc : aicp_buf_printf(&s, "systemctl %s", verb);
        if (rc == 0 && is_job && aicp_args_bool(args, "no_block", 0))
            rc = aicp_buf_puts(&s, " --no-block");
        if (rc == 0 && is_file && aicp_args_bool(args, "force", 0))
            rc = aicp_buf_puts(&s, " --force");
        if (rc == 0 && strcmp(verb, "daemon-reload") != 0) {
            rc = aicp_buf_puts(&s, " ");
            rc = rc ? rc : aicp_buf_shquote(&s, name);
        }
        rc = rc ? rc
                : aicp_buf_printf(
                      &s, " || { r=$?; echo '" AICP_SYS_TAG "failed=%s' >&2; exit $r; }\n", verb);
    }
    if (rc)
        goto out;
    if ((rc = aicp_sys_exec(ctx, s.data, &res, err)) != 0)
        goto out;
    if (res.rc != 0) {
        char verb[32] = "run";
        char *tag = res.err ? strstr(res.err, AICP_SYS_TAG "failed=") : NULL;
        if (tag) {
            size_t n = strcspn(tag + sizeof(AICP_SYS_TAG "failed=") - 1, "\n");
            if (n >= sizeof(verb))
                n = sizeof(verb) - 1;
            memcpy(verb, tag + sizeof(AICP_SYS_TAG "failed=") - 1, n);
            verb[n] = '\0';
            *tag = '\0';
            res.err_len = (size_t)(tag - res.err);
        }
        if (strcmp(verb, "daemon-reload") == 0)
            rc = aicp_sys_fail(err, &res, "failure %d during daemon-reload", res.rc);
        else
            rc = aicp_sys_fail(err, &res, "Unable to %s service %s", verb, name);
    }
out:
    aicp_exec_result_clear(&res);
    aicp_buf_free(&s);
    return rc;
}

static const struct aicp_module_ops systemd_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = systemd_check,
    .diff = systemd_diff,
    .apply = systemd_apply,
};

const struct aicp_module aicp_mod_systemd = {
    .name = "systemd",
    .summary = "Manage systemd units: state, enablement, masking, daemon-reload",
    .args = systemd_args,
    .flags = AICP_MOD_NEEDS_SSH,
    .ops = &systemd_ops,
};
