/* Unit tests for the system modules (sysctl, systemd, service, modprobe,
 * mount, apt) and modules/sysutil.c. They run over a local connection
 * with the lab's stand-ins (tests/lab/bin) first in PATH and their state
 * in a throw-away directory (AICP_LAB_STATE_DIR), so nothing here touches
 * the machine's kernel, services, mounts or packages: sysctl and fstab
 * edits go to files in that directory, apt runs against small fake
 * dpkg-query/apt-cache/apt-get scripts written there. Each module goes
 * through the executor's cycle: check -> diff -> apply -> verify, with the
 * check-mode prediction compared to what apply then does. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conn.h"
#include "err.h"
#include "module.h"
#include "registry.h"
#include "sysutil.h"
#include "util.h"

static struct aicp_conn *conn;
static char dir[256];
static char last_err[1200];

/* Fakes for apt: a package database (name status version lines) and a
 * repository (name followed by its versions, newest first). */
static const char fake_dpkg_query[] =
    "#!/bin/sh\n"
    "# fake dpkg-query -W -f=FMT NAMES: FMT is ignored, the module's is assumed\n"
    "shift 2; rc=0\n"
    "for n; do l=$(awk -v n=\"$n\" '$1 == n' \"$FAKE_APT/db\")\n"
    "  if [ -z \"$l\" ]; then echo \"dpkg-query: no packages found matching $n\" >&2; rc=1; "
    "continue; fi\n"
    "  set -- $l; printf '%s |%s|%s\\n' \"$2\" \"$1\" \"$3\"; done\n"
    "exit $rc\n";
static const char fake_apt_cache[] =
    "#!/bin/sh\n"
    "[ \"$1\" = policy ] || exit 100; shift\n"
    "for n; do l=$(awk -v n=\"$n\" '$1 == n' \"$FAKE_APT/repo\"); [ -n \"$l\" ] || continue\n"
    "  set -- $l; echo \"$1:\"; shift\n"
    "  echo \"  Installed: (none)\"; echo \"  Candidate: $1\"; echo \"  Version table:\"\n"
    "  for v; do echo \"     $v 500\"; echo \"        500 file:/srv/repo ./ Packages\"; done\n"
    "done\n";
static const char fake_apt_get[] =
    "#!/bin/sh\n"
    "echo \"apt-get $*\" >>\"$FAKE_APT/log\"\n"
    "verb=; purge=0; pkgs=\n"
    "for a; do case $a in -o|-t) skip=1 ;; --purge) purge=1 ;; -*) ;;\n"
    "  *) if [ \"${skip:-0}\" = 1 ]; then skip=0; elif [ -z \"$verb\" ]; then verb=$a; "
    "else pkgs=\"$pkgs $a\"; fi ;; esac; done\n"
    "case $verb in\n"
    "update) echo 'Hit:1 file:/srv/repo ./ InRelease'; exit 0 ;;\n"
    "autoremove) exit 0 ;;\n"
    "install) for p in $pkgs; do n=${p%%=*}; v=${p#*=}\n"
    "    [ \"$v\" = \"$p\" ] && v=$(awk -v n=\"$n\" '$1 == n { print $2 }' \"$FAKE_APT/repo\")\n"
    "    awk -v n=\"$n\" -v v=\"$v\" '$1 == n { print $2 }' \"$FAKE_APT/repo\" | grep -q . || "
    "{ echo \"E: Unable to locate package $n\" >&2; exit 100; }\n"
    "    awk -v n=\"$n\" '$1 != n' \"$FAKE_APT/db\" >\"$FAKE_APT/db.new\"; echo \"$n ii $v\" "
    ">>\"$FAKE_APT/db.new\"\n"
    "    mv \"$FAKE_APT/db.new\" \"$FAKE_APT/db\"; echo \"Setting up $n ($v) ...\"; done ;;\n"
    "remove) for n in $pkgs; do v=$(awk -v n=\"$n\" '$1 == n { print $3 }' \"$FAKE_APT/db\")\n"
    "    awk -v n=\"$n\" '$1 != n' \"$FAKE_APT/db\" >\"$FAKE_APT/db.new\"\n"
    "    [ $purge = 1 ] || echo \"$n rc $v\" >>\"$FAKE_APT/db.new\"; mv \"$FAKE_APT/db.new\" "
    "\"$FAKE_APT/db\"\n"
    "    echo \"Removing $n ($v) ...\"; done ;;\n"
    "*) echo \"E: Invalid operation $verb\" >&2; exit 100 ;;\n"
    "esac\n";

static void write_file(const char *path, const char *text, int mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(path, (mode_t)mode);
}

static char *path_in(const char *rel)
{
    struct aicp_buf b = AICP_BUF_INIT;
    aicp_buf_printf(&b, "%s/%s", dir, rel);
    return aicp_buf_steal(&b);
}

static char *slurp(const char *rel)
{
    char *p = path_in(rel), *data = NULL;
    size_t len;
    struct aicp_err err = {0};
    if (aicp_read_file(&data, &len, p, &err) != 0)
        data = NULL;
    free(p);
    return data;
}

static int setup(void **state)
{
    (void)state;
    struct aicp_conn_opts o = {.name = "local", .local = 1, .command_timeout = 30};
    struct aicp_err err = {0};
    struct aicp_buf b = AICP_BUF_INIT;
    snprintf(dir, sizeof(dir), "/tmp/aicp-modsys-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    static const char *const sub[] = {"state", "units", "bin", "apt"};
    for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
        char *p = path_in(sub[i]);
        mkdir(p, 0755);
        free(p);
    }
    char *p;
    write_file(p = path_in("bin/dpkg-query"), fake_dpkg_query, 0755), free(p);
    write_file(p = path_in("bin/apt-cache"), fake_apt_cache, 0755), free(p);
    write_file(p = path_in("bin/apt-get"), fake_apt_get, 0755), free(p);
    write_file(p = path_in("apt/db"), "", 0644), free(p);
    write_file(p = path_in("apt/repo"),
               "nfs-common 1:2.6.2-4\n"
               "aicp-lab-tool 2.0-1 1.5-1 1.0-1\n",
               0644),
        free(p);
    write_file(p = path_in("state/units"), "nginx\nkubelet\nsystemd-journald static\n", 0644),
        free(p);
    /* The local shell inherits the environment: stand-ins and fakes first. */
    aicp_buf_printf(&b, "%s/tests/lab/bin:%s/bin:%s", AICP_SRCDIR, dir, getenv("PATH"));
    setenv("PATH", b.data, 1);
    aicp_buf_free(&b);
    setenv("AICP_LAB_STATE_DIR", p = path_in("state"), 1), free(p);
    setenv("AICP_LAB_UNIT_PATH", p = path_in("units"), 1), free(p);
    setenv("FAKE_APT", p = path_in("apt"), 1), free(p);
    if (aicp_conn_open(&conn, &o, &err) != 0) {
        fprintf(stderr, "aicp_conn_open: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    struct aicp_buf b = AICP_BUF_INIT;
    struct aicp_exec_result res;
    struct aicp_err err = {0};
    aicp_buf_puts(&b, "rm -rf -- ");
    aicp_buf_shquote(&b, dir);
    if (aicp_conn_exec(conn, b.data, NULL, 0, 0, &res, &err) == 0)
        aicp_exec_result_clear(&res);
    aicp_buf_free(&b);
    aicp_conn_close(conn);
    return 0;
}

/* "%D" in a template becomes the test directory. */
static char *subst(const char *fmt)
{
    struct aicp_buf b = AICP_BUF_INIT;
    for (const char *p = fmt; *p; p++) {
        if (p[0] == '%' && p[1] == 'D') {
            aicp_buf_puts(&b, dir);
            p++;
        } else {
            aicp_buf_append(&b, p, 1);
        }
    }
    return aicp_buf_steal(&b);
}

struct run {
    int changed;
    int predicted;
    unsigned long check_trips; /* exec round trips the check took */
    json_t *result;
    json_t *before, *after, *plan;
};

static void run_clear(struct run *r)
{
    json_decref(r->result);
    json_decref(r->before);
    json_decref(r->after);
    json_decref(r->plan);
    memset(r, 0, sizeof(*r));
}

/* The executor's cycle; check_only stops after diff. Returns 0 or the
 * failing step's code (message in last_err). A verify that still finds a
 * difference fails the test. */
static int run_module(struct run *r, const char *name, const char *args_fmt, int check_only)
{
    const struct aicp_module *mod = aicp_module_find(name);
    struct aicp_args a = {0};
    struct aicp_err err = {0};
    json_t *cur = NULL;
    struct aicp_change *c = NULL;
    char *args_json = subst(args_fmt);
    json_error_t je;
    json_t *raw = json_loads(args_json, 0, &je);
    int rc;
    memset(r, 0, sizeof(*r));
    last_err[0] = '\0';
    assert_non_null(mod);
    assert_non_null(raw);
    if ((rc = aicp_args_validate(&a, mod, raw, 0, &err)) != 0) {
        snprintf(last_err, sizeof(last_err), "%s", err.msg);
        goto out;
    }
    struct aicp_ctx ctx = {.conn = conn, .host = "testhost", .result = json_object()};
    r->result = ctx.result;
    unsigned long trips = aicp_conn_round_trips(conn);
    if ((rc = mod->ops->check(&ctx, &a, &cur, &err)) != 0) {
        snprintf(last_err, sizeof(last_err), "%s", err.msg);
        goto out;
    }
    r->check_trips = aicp_conn_round_trips(conn) - trips;
    if ((rc = mod->ops->diff(cur, &a, &c, &err)) != 0) {
        snprintf(last_err, sizeof(last_err), "%s", err.msg);
        goto out;
    }
    r->predicted = c->needed;
    r->before = json_incref(c->before);
    r->after = json_incref(c->after);
    r->plan = json_incref(c->plan);
    if (check_only || !c->needed)
        goto out;
    c->args = &a;
    if ((rc = mod->ops->apply(&ctx, c, &err)) != 0) {
        snprintf(last_err, sizeof(last_err), "%s", err.msg);
        goto out;
    }
    r->changed = 1;
    if (!json_is_true(json_object_get(c->plan, "no_verify"))) {
        json_t *cur2 = NULL;
        struct aicp_change *again = NULL;
        json_t *scratch = json_object();
        ctx.result = scratch;
        rc = mod->ops->check(&ctx, &a, &cur2, &err);
        if (rc == 0)
            rc = mod->ops->diff(cur2, &a, &again, &err);
        if (rc == 0 && again->needed)
            fail_msg("not idempotent: %s %s still differs after apply", name, args_json);
        if (rc != 0)
            snprintf(last_err, sizeof(last_err), "verify: %s", err.msg);
        aicp_change_free(again);
        json_decref(cur2);
        json_decref(scratch);
    }
out:
    aicp_change_free(c);
    json_decref(cur);
    json_decref(raw);
    aicp_args_clear(&a);
    free(args_json);
    return rc;
}

/* Check mode first, then the real run: both must agree with expect, and
 * the check must cost one round trip. */
static void cycle(const char *name, const char *args, int expect)
{
    struct run r;
    int rc = run_module(&r, name, args, 1);
    if (rc != 0)
        fail_msg("%s %s (check mode): %s", name, args, last_err);
    if (r.predicted != expect)
        fail_msg("%s %s: check mode predicted changed=%d, expected %d", name, args, r.predicted,
                 expect);
    assert_int_equal(r.check_trips, 1);
    run_clear(&r);
    rc = run_module(&r, name, args, 0);
    if (rc != 0)
        fail_msg("%s %s: %s", name, args, last_err);
    if (r.changed != expect)
        fail_msg("%s %s: changed=%d, expected %d", name, args, r.changed, expect);
    run_clear(&r);
}

static void expect_fail(const char *name, const char *args, const char *msg_part)
{
    struct run r;
    int rc = run_module(&r, name, args, 0);
    if (rc == 0)
        fail_msg("%s %s: expected a failure containing '%s'", name, args, msg_part);
    if (strstr(last_err, msg_part) == NULL)
        fail_msg("%s %s: message '%s' lacks '%s'", name, args, last_err, msg_part);
    run_clear(&r);
}

/* Runs a command through the stand-ins and returns its trimmed stdout. */
static char *sh_out(const char *script)
{
    struct aicp_exec_result res;
    struct aicp_err err = {0};
    assert_int_equal(aicp_conn_exec(conn, script, NULL, 0, 0, &res, &err), 0);
    size_t n = res.out_len;
    aicp_sys_rtrim(res.out, &n);
    char *s = aicp_strndup(res.out, n);
    aicp_exec_result_clear(&res);
    return s;
}

static void assert_sh(const char *script, const char *want)
{
    char *got = sh_out(script);
    if (strcmp(got, want) != 0)
        fail_msg("`%s` printed '%s', expected '%s'", script, got, want);
    free(got);
}

/* ---- sysutil ------------------------------------------------------------ */

static void test_sysutil_fields(void **state)
{
    (void)state;
    const char *out = "x\n@@AICP:a=12\n@@AICP:sec=1\nline1\nline2\n@@AICP:b=x:y\n"
                      "@@AICP:file=1\n@@AICP:c=not a tag\n";
    size_t len = 0;
    const char *v = aicp_sys_field(out, "b", &len);
    assert_non_null(v);
    assert_int_equal(len, 3);
    assert_memory_equal(v, "x:y", 3);
    assert_int_equal(aicp_sys_field_int(out, "a", -1), 12);
    assert_int_equal(aicp_sys_field_int(out, "zz", -1), -1);
    v = aicp_sys_section(out, "sec", 0, &len);
    assert_int_equal(len, strlen("line1\nline2\n"));
    assert_memory_equal(v, "line1\nline2\n", len);
    v = aicp_sys_section(out, "file", 1, &len);
    assert_string_equal(v, "@@AICP:c=not a tag\n");
    struct aicp_exec_result res = {.rc = 2, .err = (char *)"boom\n", .err_len = 5};
    struct aicp_err err = {0};
    assert_int_equal(aicp_sys_fail(&err, &res, "doing %s", "x"), AICP_EFAILED);
    assert_string_equal(err.msg, "doing x: boom");
    struct aicp_ctx ctx = {0};
    assert_int_equal(aicp_sys_exec(&ctx, "true", &res, &err), AICP_EINVAL);
}

/* ---- sysctl ------------------------------------------------------------- */

static void test_sysctl_cycle(void **state)
{
    (void)state;
    char *p = path_in("sysctl.conf");
    write_file(p, "# kept comment\nvm.swappiness = 60\nkernel.panic=0", 0640);
    free(p);
    const char *set = "{\"name\": \"vm.swappiness\", \"value\": \"10\", \"sysctl_set\": true, "
                      "\"sysctl_file\": \"%D/sysctl.conf\"}";
    cycle("sysctl", set, 1);
    char *f = slurp("sysctl.conf");
    assert_string_equal(f, "# kept comment\nvm.swappiness=10\nkernel.panic=0");
    free(f);
    assert_sh("sysctl -n vm.swappiness", "10");
    cycle("sysctl", set, 0);
    /* the file's mode survives the rewrite */
    struct stat st;
    p = path_in("sysctl.conf");
    assert_int_equal(stat(p, &st), 0);
    free(p);
    assert_int_equal(st.st_mode & 0777, 0640);
    /* a new key is appended; the unterminated last line gets its newline */
    const char *fwd = "{\"name\": \"net.ipv4.ip_forward\", \"value\": \"yes\", "
                      "\"sysctl_file\": \"%D/sysctl.conf\"}";
    cycle("sysctl", fwd, 1);
    f = slurp("sysctl.conf");
    assert_string_equal(f, "# kept comment\nvm.swappiness=10\nkernel.panic=0\n"
                           "net.ipv4.ip_forward=1\n");
    free(f);
    assert_sh("sysctl -n net.ipv4.ip_forward", "1"); /* reload loaded the file */
    cycle("sysctl", fwd, 0);
    /* different value -> changed; live drift alone -> changed with sysctl_set */
    cycle("sysctl",
          "{\"name\": \"vm.swappiness\", \"value\": \"20\", \"sysctl_set\": true, "
          "\"sysctl_file\": \"%D/sysctl.conf\"}",
          1);
    free(sh_out("sysctl -w vm.swappiness=33"));
    cycle("sysctl",
          "{\"name\": \"vm.swappiness\", \"value\": \"20\", \"sysctl_set\": true, "
          "\"reload\": false, \"sysctl_file\": \"%D/sysctl.conf\"}",
          1);
    assert_sh("sysctl -n vm.swappiness", "20");
    /* without sysctl_set, only the file counts */
    free(sh_out("sysctl -w vm.swappiness=33"));
    cycle("sysctl",
          "{\"name\": \"vm.swappiness\", \"value\": \"20\", "
          "\"sysctl_file\": \"%D/sysctl.conf\"}",
          0);
    /* whitespace inside values does not matter */
    cycle("sysctl",
          "{\"name\": \"net.ipv4.ip_local_port_range\", \"value\": \"32768 60999\", "
          "\"sysctl_set\": true, \"sysctl_file\": \"%D/ports.conf\"}",
          1);
    cycle("sysctl",
          "{\"name\": \"net.ipv4.ip_local_port_range\", \"value\": \"32768   60999\","
          " \"sysctl_set\": true, \"sysctl_file\": \"%D/ports.conf\"}",
          0);
    /* remove -> changed, remove again -> unchanged */
    const char *rm = "{\"name\": \"vm.swappiness\", \"state\": \"absent\", "
                     "\"sysctl_file\": \"%D/sysctl.conf\"}";
    cycle("sysctl", rm, 1);
    f = slurp("sysctl.conf");
    assert_string_equal(f, "# kept comment\nkernel.panic=0\nnet.ipv4.ip_forward=1\n");
    free(f);
    cycle("sysctl", rm, 0);
}

static void test_sysctl_errors(void **state)
{
    (void)state;
    /* duplicates of the key collapse into one entry */
    char *p = path_in("dup.conf");
    write_file(p, "vm.max_map_count=1\n; other\nvm.max_map_count = 262144\n", 0644);
    free(p);
    cycle("sysctl",
          "{\"name\": \"vm.max_map_count\", \"value\": \"262144\", "
          "\"sysctl_file\": \"%D/dup.conf\"}",
          1);
    char *f = slurp("dup.conf");
    assert_string_equal(f, "vm.max_map_count=262144\n; other\n");
    free(f);
    expect_fail("sysctl", "{\"name\": \"vm.swappiness\", \"sysctl_file\": \"%D/x.conf\"}",
                "value cannot be empty");
    expect_fail("sysctl", "{\"name\": \"-a\", \"value\": \"1\", \"sysctl_file\": \"%D/x.conf\"}",
                "invalid sysctl key");
    expect_fail("sysctl",
                "{\"name\": \"foo.bar\", \"value\": \"1\", \"sysctl_set\": true, "
                "\"sysctl_file\": \"%D/x.conf\"}",
                "cannot stat /proc/sys/foo/bar");
    /* an unknown key in the file: the reload fails with sysctl's message */
    expect_fail("sysctl",
                "{\"name\": \"foo.baz\", \"value\": \"1\", "
                "\"sysctl_file\": \"%D/y.conf\"}",
                "Failed to reload sysctl");
    /* ... unless ignoreerrors */
    cycle("sysctl",
          "{\"name\": \"foo.qux\", \"value\": \"1\", \"ignoreerrors\": true, "
          "\"sysctl_file\": \"%D/z.conf\"}",
          1);
}

/* ---- systemd / service -------------------------------------------------- */

static void test_systemd_cycle(void **state)
{
    (void)state;
    const char *up = "{\"name\": \"nginx\", \"state\": \"started\", \"enabled\": true}";
    cycle("systemd", up, 1);
    assert_sh("systemctl is-active nginx; systemctl is-enabled nginx", "active\nenabled");
    cycle("systemd", up, 0);
    struct run r;
    assert_int_equal(run_module(&r, "systemd", up, 0), 0);
    assert_string_equal(json_string_value(json_object_get(r.result, "name")), "nginx");
    assert_string_equal(json_string_value(json_object_get(r.result, "state")), "started");
    assert_true(json_is_true(json_object_get(r.result, "enabled")));
    const json_t *st = json_object_get(r.result, "status");
    assert_string_equal(json_string_value(json_object_get(st, "ActiveState")), "active");
    assert_string_equal(json_string_value(json_object_get(st, "UnitFileState")), "enabled");
    run_clear(&r);
    const char *down = "{\"name\": \"nginx.service\", \"state\": \"stopped\", \"enabled\": false}";
    cycle("systemd", down, 1);
    assert_sh("systemctl is-active nginx; systemctl is-enabled nginx", "inactive\ndisabled");
    cycle("systemd", down, 0);
    /* restarted and reloaded act every time; reloaded starts a stopped unit */
    cycle("systemd", "{\"name\": \"nginx\", \"state\": \"reloaded\"}", 1);
    assert_sh("systemctl is-active nginx", "active");
    cycle("systemd", "{\"name\": \"nginx\", \"state\": \"restarted\"}", 1);
    cycle("systemd", "{\"name\": \"nginx\", \"state\": \"restarted\"}", 1);
    /* masking */
    const char *mask = "{\"name\": \"kubelet\", \"masked\": true}";
    cycle("systemd", mask, 1);
    cycle("systemd", mask, 0);
    expect_fail("systemd", "{\"name\": \"kubelet\", \"state\": \"started\"}",
                "Unable to start service kubelet");
    cycle("systemd", "{\"name\": \"kubelet\", \"masked\": false, \"state\": \"started\"}", 1);
    assert_sh("systemctl is-active kubelet", "active");
    /* static units cannot be enabled or disabled: nothing to do */
    cycle("systemd", "{\"name\": \"systemd-journald\", \"enabled\": false}", 0);
}

static void test_systemd_errors_and_reload(void **state)
{
    (void)state;
    expect_fail("systemd", "{\"name\": \"nosuch\", \"state\": \"started\"}",
                "Could not find the requested service nosuch: host");
    expect_fail("systemd", "{\"state\": \"started\"}", "missing parameter(s) required by 'state'");
    expect_fail("systemd", "{\"name\": \"nginx\"}", "one of the following is required");
    expect_fail("systemd", "{\"name\": \"-x\", \"state\": \"started\"}", "invalid unit name");
    /* daemon_reload: needed when a unit file is newer than the last reload */
    assert_sh("systemctl daemon-reload", "");
    cycle("systemd", "{\"daemon_reload\": true}", 0);
    char *p = path_in("units/web.service");
    write_file(p, "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n", 0644);
    free(p);
    cycle("systemd", "{\"daemon_reload\": true}", 1);
    cycle("systemd", "{\"daemon_reload\": true}", 0);
    p = path_in("units/web.service");
    write_file(p, "[Service]\nExecStart=/bin/false\n[Install]\nWantedBy=multi-user.target\n", 0644);
    free(p);
    cycle("systemd", "{\"name\": \"web\", \"daemon_reload\": true, \"state\": \"started\"}", 1);
    assert_sh("systemctl show -p NeedDaemonReload --value web; systemctl is-active web",
              "no\nactive");
    cycle("systemd", "{\"name\": \"web\", \"daemon_reload\": true, \"state\": \"started\"}", 0);
}

static void test_service_cycle(void **state)
{
    (void)state;
    const char *up = "{\"name\": \"kubelet\", \"state\": \"started\", \"enabled\": \"yes\"}";
    free(sh_out("systemctl unmask kubelet; systemctl stop kubelet"));
    cycle("service", up, 1);
    cycle("service", up, 0);
    cycle("service", "{\"name\": \"kubelet\", \"enabled\": false}", 1);
    cycle("service", "{\"name\": \"kubelet\", \"state\": \"stopped\"}", 1);
    cycle("service", "{\"name\": \"kubelet\", \"state\": \"stopped\"}", 0);
    assert_sh("systemctl is-active kubelet; systemctl is-enabled kubelet", "inactive\ndisabled");
    expect_fail("service", "{\"name\": \"kubelet\"}",
                "one of the following is required: state, enabled");
    expect_fail("service", "{\"name\": \"kubelet\", \"state\": \"started\", \"use\": \"sysvinit\"}",
                "not supported");
    /* service rejects systemd-only arguments */
    struct run r;
    assert_int_not_equal(run_module(&r, "service", "{\"name\": \"x\", \"masked\": true}", 0), 0);
    run_clear(&r);
}

/* ---- modprobe ----------------------------------------------------------- */

static void test_modprobe_cycle(void **state)
{
    (void)state;
    const char *load = "{\"name\": \"br_netfilter\"}";
    cycle("modprobe", load, 1);
    assert_sh("lsmod | awk '$1 == \"br_netfilter\" { print $1 }'", "br_netfilter");
    cycle("modprobe", load, 0);
    /* dashes and underscores name the same module */
    cycle("modprobe", "{\"name\": \"br-netfilter\"}", 0);
    cycle("modprobe", "{\"name\": \"dummy\", \"params\": \"numdummies=2\"}", 1);
    assert_sh("awk '$1 == \"dummy\" { print $2 }' \"$AICP_LAB_STATE_DIR/modules\"", "numdummies=2");
    const char *unload = "{\"name\": \"br_netfilter\", \"state\": \"absent\"}";
    cycle("modprobe", unload, 1);
    cycle("modprobe", unload, 0);
    expect_fail("modprobe", "{\"name\": \"nosuchmodule\"}", "not found");
    expect_fail("modprobe", "{\"name\": \"a;b\"}", "invalid module name");
    struct run r;
    assert_int_equal(run_module(&r, "modprobe", load, 1), 0);
    assert_string_equal(json_string_value(json_object_get(r.result, "name")), "br_netfilter");
    run_clear(&r);
}

/* persistent writes under /etc: its diff is tested on hand-made state. */
static void test_modprobe_persistent_diff(void **state)
{
    (void)state;
    const struct aicp_module *mod = aicp_module_find("modprobe");
    struct aicp_args a = {0};
    struct aicp_err err = {0};
    struct aicp_change *c = NULL;
    json_t *raw = json_pack("{s:s, s:s, s:s}", "name", "ip_vs", "params", "conn_tab_bits=12",
                            "persistent", "present");
    assert_int_equal(aicp_args_validate(&a, mod, raw, 0, &err), 0);
    json_t *cur = json_pack("{s:b, s:b}", "loaded", 1, "builtin", 0);
    assert_int_equal(mod->ops->diff(cur, &a, &c, &err), 0);
    assert_true(c->needed);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(c->plan, "load_conf"), "content")),
        "ip_vs\n");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(c->plan, "options_conf"), "content")),
        "options ip_vs conn_tab_bits=12\n");
    assert_null(json_object_get(c->plan, "load"));
    aicp_change_free(c);
    json_decref(cur);
    /* already configured (spacing differs) -> nothing to do */
    cur = json_pack("{s:b, s:b, s:s, s:s}", "loaded", 1, "builtin", 0, "load_conf",
                    "# boot\nip_vs\n", "options_conf", "options  ip_vs   conn_tab_bits=12\n");
    assert_int_equal(mod->ops->diff(cur, &a, &c, &err), 0);
    assert_false(c->needed);
    aicp_change_free(c);
    json_decref(cur);
    aicp_args_clear(&a);
    json_decref(raw);
    /* persistent=absent removes only the module's lines */
    raw = json_pack("{s:s, s:s, s:s}", "name", "ip-vs", "state", "absent", "persistent", "absent");
    assert_int_equal(aicp_args_validate(&a, mod, raw, 0, &err), 0);
    cur = json_pack("{s:b, s:b, s:s, s:s}", "loaded", 0, "builtin", 0, "load_conf",
                    "# boot\nip_vs\nnf_conntrack\n", "options_conf", "options ip_vs x=1\n");
    assert_int_equal(mod->ops->diff(cur, &a, &c, &err), 0);
    assert_true(c->needed);
    assert_null(json_object_get(c->plan, "unload"));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(c->plan, "load_conf"), "content")),
        "# boot\nnf_conntrack\n");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(c->plan, "options_conf"), "content")),
        "");
    aicp_change_free(c);
    json_decref(cur);
    /* builtin modules count as loaded but cannot be unloaded */
    cur = json_pack("{s:b, s:b}", "loaded", 0, "builtin", 1);
    json_decref(raw);
    aicp_args_clear(&a);
    raw = json_pack("{s:s}", "name", "overlay");
    assert_int_equal(aicp_args_validate(&a, mod, raw, 0, &err), 0);
    assert_int_equal(mod->ops->diff(cur, &a, &c, &err), 0);
    assert_false(c->needed);
    aicp_change_free(c);
    json_decref(cur);
    aicp_args_clear(&a);
    json_decref(raw);
}

/* ---- mount -------------------------------------------------------------- */

static void test_mount_fstab_cycle(void **state)
{
    (void)state;
    char *p = path_in("fstab");
    write_file(p, "# /etc/fstab\nUUID=abc / ext4 errors=remount-ro 0 1\n", 0644);
    free(p);
    const char *nfs = "{\"path\": \"%D/no such/data/\", \"src\": \"10.0.0.5:/vol data\", "
                      "\"fstype\": \"nfs\", \"opts\": \"rw,hard\", \"state\": \"present\", "
                      "\"fstab\": \"%D/fstab\"}";
    cycle("mount", nfs, 1);
    char *f = slurp("fstab");
    char *want = subst("# /etc/fstab\nUUID=abc / ext4 errors=remount-ro 0 1\n"
                       "10.0.0.5:/vol\\040data %D/no\\040such/data nfs rw,hard 0 0\n");
    assert_string_equal(f, want);
    free(f);
    free(want);
    cycle("mount", nfs, 0);
    /* different options -> the entry is rewritten in place */
    const char *ro = "{\"path\": \"%D/no such/data\", \"src\": \"10.0.0.5:/vol data\", "
                     "\"fstype\": \"nfs\", \"opts\": \"ro\", \"boot\": false, \"dump\": 1, "
                     "\"state\": \"present\", \"fstab\": \"%D/fstab\"}";
    cycle("mount", ro, 1);
    f = slurp("fstab");
    want = subst("# /etc/fstab\nUUID=abc / ext4 errors=remount-ro 0 1\n"
                 "10.0.0.5:/vol\\040data %D/no\\040such/data nfs ro,noauto 1 0\n");
    assert_string_equal(f, want);
    free(f);
    free(want);
    cycle("mount", ro, 0);
    struct run r;
    assert_int_equal(run_module(&r, "mount", ro, 1), 0);
    assert_string_equal(json_string_value(json_object_get(r.result, "opts")), "ro,noauto");
    run_clear(&r);
    /* absent: the entry goes; nothing is mounted and the path does not exist */
    const char *gone = "{\"path\": \"%D/no such/data\", \"state\": \"absent\", "
                       "\"fstab\": \"%D/fstab\"}";
    cycle("mount", gone, 1);
    f = slurp("fstab");
    assert_string_equal(f, "# /etc/fstab\nUUID=abc / ext4 errors=remount-ro 0 1\n");
    free(f);
    cycle("mount", gone, 0);
    /* unmounted on something not mounted: nothing to do */
    cycle("mount",
          "{\"path\": \"%D/nothing\", \"state\": \"unmounted\", "
          "\"fstab\": \"%D/fstab\"}",
          0);
    expect_fail("mount", "{\"path\": \"%D/x\", \"state\": \"present\", \"fstab\": \"%D/fstab\"}",
                "state is present but all of the following are missing: src, fstype");
    /* a new fstab is created */
    cycle("mount",
          "{\"path\": \"/srv/a\", \"src\": \"tmpfs\", \"fstype\": \"tmpfs\", "
          "\"state\": \"present\", \"fstab\": \"%D/new-fstab\"}",
          1);
    f = slurp("new-fstab");
    assert_string_equal(f, "tmpfs /srv/a tmpfs defaults 0 0\n");
    free(f);
}

/* mounted/unmounted/remounted plans, on hand-made state (no real mounts). */
static void test_mount_live_diff(void **state)
{
    (void)state;
    const struct aicp_module *mod = aicp_module_find("mount");
    struct aicp_args a = {0};
    struct aicp_err err = {0};
    struct aicp_change *c = NULL;
    json_t *raw = json_pack("{s:s, s:s, s:s, s:s}", "path", "/mnt/d", "src", "srv:/e", "fstype",
                            "nfs", "state", "mounted");
    assert_int_equal(aicp_args_validate(&a, mod, raw, 0, &err), 0);
    /* not in fstab, not mounted, no directory: write, mkdir, mount */
    json_t *cur = json_pack("{s:b, s:b, s:s}", "mounted", 0, "exists", 0, "fstab", "");
    assert_int_equal(mod->ops->diff(cur, &a, &c, &err), 0);
    assert_true(c->needed);
    assert_string_equal(json_string_value(json_object_get(c->plan, "fstab_content")),
                        "srv:/e /mnt/d nfs defaults 0 0\n");
    assert_true(json_is_true(json_object_get(c->plan, "mkdir")));
    assert_true(json_is_true(json_object_get(c->plan, "mount")));
    assert_null(json_object_get(c->plan, "remount"));
    aicp_change_free(c);
    json_decref(cur);
    /* in fstab with other options and mounted: rewrite and remount */
    cur = json_pack("{s:b, s:b, s:s}", "mounted", 1, "exists", 1, "fstab",
                    "srv:/e /mnt/d nfs ro 0 0\n");
    assert_int_equal(mod->ops->diff(cur, &a, &c, &err), 0);
    assert_true(json_is_true(json_object_get(c->plan, "remount")));
    assert_null(json_object_get(c->plan, "mount"));
    aicp_change_free(c);
    json_decref(cur);
    /* converged */
    cur = json_pack("{s:b, s:b, s:s}", "mounted", 1, "exists", 1, "fstab",
                    "srv:/e  /mnt/d\tnfs defaults\n");
    assert_int_equal(mod->ops->diff(cur, &a, &c, &err), 0);
    assert_false(c->needed);
    aicp_change_free(c);
    aicp_args_clear(&a);
    json_decref(raw);
    /* absent while mounted: unmount and remove the directory */
    raw = json_pack("{s:s, s:s}", "path", "/mnt/d", "state", "absent");
    assert_int_equal(aicp_args_validate(&a, mod, raw, 0, &err), 0);
    assert_int_equal(mod->ops->diff(cur, &a, &c, &err), 0);
    assert_true(json_is_true(json_object_get(c->plan, "umount")));
    assert_true(json_is_true(json_object_get(c->plan, "rmdir")));
    assert_string_equal(json_string_value(json_object_get(c->plan, "fstab_content")), "");
    aicp_change_free(c);
    aicp_args_clear(&a);
    json_decref(raw);
    /* remounted always acts and is not verified */
    raw = json_pack("{s:s, s:s}", "path", "/mnt/d", "state", "remounted");
    assert_int_equal(aicp_args_validate(&a, mod, raw, 0, &err), 0);
    assert_int_equal(mod->ops->diff(cur, &a, &c, &err), 0);
    assert_true(c->needed);
    assert_true(json_is_true(json_object_get(c->plan, "no_verify")));
    assert_null(json_object_get(c->plan, "fstab_content"));
    aicp_change_free(c);
    aicp_args_clear(&a);
    json_decref(raw);
    json_decref(cur);
}

/* ---- apt (against the fakes) -------------------------------------------- */

static void test_apt_cycle(void **state)
{
    (void)state;
    const char *inst = "{\"name\": [\"nfs-common\", \"aicp-lab-tool=1.0-1\"], "
                       "\"install_recommends\": false}";
    cycle("apt", inst, 1);
    assert_sh("cat \"$FAKE_APT/db\" | sort", "aicp-lab-tool ii 1.0-1\nnfs-common ii 1:2.6.2-4");
    assert_sh("tail -n 1 \"$FAKE_APT/log\" | grep -c -- '--no-install-recommends'; "
              "tail -n 1 \"$FAKE_APT/log\" | grep -c -- '-o Dpkg::Options::=--force-confold'; "
              "tail -n 1 \"$FAKE_APT/log\" | grep -o ' install .*'",
              "1\n1\n install nfs-common=1:2.6.2-4 aicp-lab-tool=1.0-1");
    cycle("apt", inst, 0);
    /* a pin glob picks the newest match; present keeps what matches */
    cycle("apt", "{\"name\": \"aicp-lab-tool=1.*\"}", 0);
    cycle("apt", "{\"name\": \"aicp-lab-tool=1.5*\"}", 1);
    assert_sh("awk '$1 == \"aicp-lab-tool\" { print $3 }' \"$FAKE_APT/db\"", "1.5-1");
    /* latest upgrades to the candidate */
    const char *latest = "{\"name\": \"aicp-lab-tool\", \"state\": \"latest\"}";
    cycle("apt", latest, 1);
    assert_sh("awk '$1 == \"aicp-lab-tool\" { print $3 }' \"$FAKE_APT/db\"", "2.0-1");
    cycle("apt", latest, 0);
    struct run r;
    assert_int_equal(run_module(&r, "apt", "{\"name\": \"aicp-lab-tool=1.0-1\"}", 0), 0);
    assert_true(r.changed);
    assert_non_null(strstr(json_string_value(json_object_get(r.result, "stdout")),
                           "Setting up aicp-lab-tool (1.0-1)"));
    assert_true(json_is_false(json_object_get(r.result, "cache_updated")));
    run_clear(&r);
    /* absent removes; purge also clears leftover configuration */
    const char *rm = "{\"name\": \"aicp-lab-tool\", \"state\": \"absent\"}";
    cycle("apt", rm, 1);
    assert_sh("awk '$1 == \"aicp-lab-tool\" { print $2 }' \"$FAKE_APT/db\"", "rc");
    cycle("apt", rm, 0);
    cycle("apt", "{\"name\": \"aicp-lab-tool\", \"state\": \"absent\", \"purge\": true}", 1);
    cycle("apt", "{\"name\": \"aicp-lab-tool\", \"state\": \"absent\", \"purge\": true}", 0);
    assert_sh("grep -c aicp-lab-tool \"$FAKE_APT/db\"", "0");
    /* update_cache alone always changes (no verify); a package task with it
     * does not change when the packages are in place */
    assert_int_equal(run_module(&r, "apt", "{\"update_cache\": true}", 0), 0);
    assert_true(r.changed);
    assert_true(json_is_true(json_object_get(r.plan, "no_verify")));
    assert_true(json_is_true(json_object_get(r.result, "cache_updated")));
    assert_true(json_integer_value(json_object_get(r.result, "cache_update_time")) > 0);
    run_clear(&r);
    cycle("apt", "{\"name\": \"nfs-common\", \"update_cache\": true}", 0);
    /* errors */
    expect_fail("apt", "{\"name\": \"nosuch\"}", "No package matching 'nosuch' is available");
    expect_fail("apt", "{\"name\": \"aicp-lab-tool=9.9\"}",
                "No package matching 'aicp-lab-tool=9.9' is available");
    expect_fail("apt", "{\"name\": \"aicp-lab-tool=1.0-1\", \"state\": \"latest\"}",
                "version number inconsistent with state=latest");
    expect_fail("apt", "{\"name\": \"foo;rm\"}", "invalid package name");
    expect_fail("apt", "{\"state\": \"present\"}", "one of the following is required");
}

static void test_apt_cache_valid_time(void **state)
{
    (void)state;
    const struct aicp_module *mod = aicp_module_find("apt");
    struct aicp_args a = {0};
    struct aicp_err err = {0};
    struct aicp_change *c = NULL;
    json_t *raw = json_pack("{s:b, s:i}", "update_cache", 1, "cache_valid_time", 3600);
    assert_int_equal(aicp_args_validate(&a, mod, raw, 0, &err), 0);
    json_t *cur =
        json_pack("{s:{}, s:{}, s:i, s:i}", "packages", "policy", "cache_time", 1000, "now", 2000);
    assert_int_equal(mod->ops->diff(cur, &a, &c, &err), 0);
    assert_false(c->needed); /* 1000 s old, valid for 3600 */
    aicp_change_free(c);
    json_object_set_new(cur, "now", json_integer(10000));
    assert_int_equal(mod->ops->diff(cur, &a, &c, &err), 0);
    assert_true(c->needed);
    assert_true(json_is_true(json_object_get(c->plan, "update")));
    assert_false(json_is_true(json_object_get(c->plan, "no_verify")));
    aicp_change_free(c);
    aicp_args_clear(&a);
    json_decref(raw);
    /* a package the stale lists lack may come with the update: apt-get decides */
    raw = json_pack("{s:b, s:[s, s]}", "update_cache", 1, "name", "newpkg", "pinned=2.0");
    assert_int_equal(aicp_args_validate(&a, mod, raw, 0, &err), 0);
    assert_int_equal(mod->ops->diff(cur, &a, &c, &err), 0);
    assert_true(c->needed);
    const json_t *install = json_object_get(c->plan, "install");
    assert_int_equal(json_array_size(install), 2);
    assert_string_equal(json_string_value(json_array_get(install, 0)), "newpkg");
    assert_string_equal(json_string_value(json_array_get(install, 1)), "pinned=2.0");
    aicp_change_free(c);
    json_decref(cur);
    aicp_args_clear(&a);
    json_decref(raw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sysutil_fields),
        cmocka_unit_test(test_sysctl_cycle),
        cmocka_unit_test(test_sysctl_errors),
        cmocka_unit_test(test_systemd_cycle),
        cmocka_unit_test(test_systemd_errors_and_reload),
        cmocka_unit_test(test_service_cycle),
        cmocka_unit_test(test_modprobe_cycle),
        cmocka_unit_test(test_modprobe_persistent_diff),
        cmocka_unit_test(test_mount_fstab_cycle),
        cmocka_unit_test(test_mount_live_diff),
        cmocka_unit_test(test_apt_cycle),
        cmocka_unit_test(test_apt_cache_valid_time),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
