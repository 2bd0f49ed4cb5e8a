/* Unit tests for the file modules (file, copy, template, lineinfile, stat,
 * slurp, fetch, command, shell) and their helpers in modules/fileutil.c.
 * Every module runs over a local connection in a throw-away directory
 * through the executor's cycle: check -> diff -> apply -> verify (check +
 * diff must then say nothing is needed), and check mode's prediction
 * (diff's needed) must equal what apply does. */
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
#include "fileutil.h"
#include "module.h"
#include "registry.h"
#include "util.h"

static struct aicp_conn *conn;
static char dir[256];
static char last_err[1200];

static int setup(void **state)
{
    (void)state;
    struct aicp_conn_opts o = {.name = "local", .local = 1};
    struct aicp_err err = {0};
    snprintf(dir, sizeof(dir), "/tmp/aicp-modfiles-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
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
    json_t *result;
    char *diff_text;
    json_t *before, *after;
};

static void run_clear(struct run *r)
{
    json_decref(r->result);
    json_decref(r->before);
    json_decref(r->after);
    free(r->diff_text);
    memset(r, 0, sizeof(*r));
}

/* The executor's cycle. check_only stops after diff (check mode).
 * Returns 0 or the failing step's code (message in last_err). */
static int run_module(struct run *r, const char *name, const char *args_fmt, int check_only)
{
    const struct aicp_module *mod = aicp_module_find(name);
    struct aicp_args a = {0};
    struct aicp_err err = {0};
    json_t *cur = NULL, *vars = json_pack("{s:s, s:i}", "who", "world", "n", 3);
    struct aicp_change *c = NULL;
    char *args_json = subst(args_fmt);
    json_error_t je;
    json_t *raw = json_loads(args_json, 0, &je);
    char search[300];
    int rc;
    memset(r, 0, sizeof(*r));
    last_err[0] = '\0';
    assert_non_null(mod);
    assert_non_null(raw);
    snprintf(search, sizeof(search), "%s/play", dir);
    rc = aicp_args_validate(&a, mod, raw, 0, &err);
    if (rc != 0) {
        snprintf(last_err, sizeof(last_err), "%s", err.msg);
        goto out;
    }
    struct aicp_ctx ctx = {.conn = conn,
                           .host = "testhost",
                           .vars = vars,
                           .search_dir = search,
                           .result = json_object()};
    r->result = ctx.result;
    if ((rc = mod->ops->check(&ctx, &a, &cur, &err)) != 0 ||
        (rc = mod->ops->diff(cur, &a, &c, &err)) != 0) {
        snprintf(last_err, sizeof(last_err), "%s", err.msg);
        goto out;
    }
    r->predicted = c->needed;
    r->before = json_incref(c->before);
    r->after = json_incref(c->after);
    r->diff_text = c->diff_text ? strdup(c->diff_text) : NULL;
    if (check_only || !c->needed) {
        r->changed = check_only ? 0 : c->needed;
        goto out;
    }
    c->args = &a;
    if ((rc = mod->ops->apply(&ctx, c, &err)) != 0) {
        snprintf(last_err, sizeof(last_err), "%s", err.msg);
        goto out;
    }
    r->changed = 1;
    if (!(mod->flags & AICP_MOD_NO_VERIFY) &&
        !json_is_true(json_object_get(c->plan, "no_verify"))) {
        json_decref(cur);
        cur = NULL;
        aicp_change_free(c);
        c = NULL;
        if ((rc = mod->ops->check(&ctx, &a, &cur, &err)) != 0 ||
            (rc = mod->ops->diff(cur, &a, &c, &err)) != 0) {
            snprintf(last_err, sizeof(last_err), "verify: %s", err.msg);
            goto out;
        }
        if (c->needed) {
            char *d = json_dumps(c->after, 0);
            snprintf(last_err, sizeof(last_err), "not idempotent: %s", d ? d : "");
            free(d);
            rc = AICP_EFAILED;
        }
    }
out:
    json_decref(cur);
    aicp_change_free(c);
    aicp_args_clear(&a);
    json_decref(raw);
    json_decref(vars);
    free(args_json);
    return rc;
}

/* Runs in check mode, then for real, and checks the prediction. */
static int run_both(struct run *r, const char *name, const char *args)
{
    struct run p;
    memset(r, 0, sizeof(*r));
    int rc = run_module(&p, name, args, 1);
    int predicted = p.predicted;
    run_clear(&p);
    if (rc != 0)
        return rc;
    rc = run_module(r, name, args, 0);
    if (rc == 0)
        assert_int_equal(predicted, r->changed);
    return rc;
}

#define OK(r, name, args)                                                                          \
    do {                                                                                           \
        int rc_ = run_both(r, name, args);                                                         \
        if (rc_ != 0)                                                                              \
            fail_msg("%s %s: %s", name, args, last_err);                                           \
    } while (0)

static void sh(const char *fmt)
{
    char *s = subst(fmt);
    struct aicp_exec_result res;
    struct aicp_err err = {0};
    assert_int_equal(aicp_conn_exec(conn, s, NULL, 0, 0, &res, &err), 0);
    if (res.rc != 0)
        fail_msg("%s: %s", s, res.err);
    aicp_exec_result_clear(&res);
    free(s);
}

static char *slurp_local(const char *fmt)
{
    char *p = subst(fmt), *data = NULL;
    size_t len;
    if (aicp_read_file(&data, &len, p, NULL) != 0)
        data = NULL;
    free(p);
    return data;
}

static void put_local(const char *fmt, const char *text)
{
    char *p = subst(fmt);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    free(p);
}

static int local_umask(void)
{
    mode_t m = umask(0);
    umask(m);
    return (int)m;
}

static int local_mode(const char *fmt)
{
    char *p = subst(fmt);
    struct stat st;
    int m = lstat(p, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
    free(p);
    return m;
}

/* ---- helpers ---- */

static void test_mode_parse(void **state)
{
    (void)state;
    int m;
    json_t *v;
    v = json_string("0644");
    assert_int_equal(aicp_fu_mode_parse(&m, v, -1, 0, NULL), 0);
    assert_int_equal(m, 0644);
    json_decref(v);
    v = json_string("755");
    assert_int_equal(aicp_fu_mode_parse(&m, v, -1, 0, NULL), 0);
    assert_int_equal(m, 0755);
    json_decref(v);
    v = json_integer(420); /* YAML 0644 */
    assert_int_equal(aicp_fu_mode_parse(&m, v, -1, 0, NULL), 0);
    assert_int_equal(m, 0644);
    json_decref(v);
    v = json_integer(644); /* plain 644 is decimal, as in Ansible: 01204 */
    assert_int_equal(aicp_fu_mode_parse(&m, v, -1, 0, NULL), 0);
    assert_int_equal(m, 01204);
    json_decref(v);
    v = json_string("u+rwx,g-w,o=r");
    assert_int_equal(aicp_fu_mode_parse(&m, v, 0664, 0, NULL), 0);
    assert_int_equal(m, 0744);
    json_decref(v);
    v = json_string("a+X");
    assert_int_equal(aicp_fu_mode_parse(&m, v, 0600, 1, NULL), 0);
    assert_int_equal(m, 0711);
    assert_int_equal(aicp_fu_mode_parse(&m, v, 0600, 0, NULL), 0);
    assert_int_equal(m, 0600);
    json_decref(v);
    v = json_string("u=rw,g=r,o=");
    assert_int_equal(aicp_fu_mode_parse(&m, v, 0777, 0, NULL), 0);
    assert_int_equal(m, 0640);
    json_decref(v);
    v = json_string("g+s");
    assert_int_equal(aicp_fu_mode_parse(&m, v, 0755, 1, NULL), 0);
    assert_int_equal(m, 02755);
    json_decref(v);
    struct aicp_err err = {0};
    v = json_string("rwxr-xr-x");
    assert_int_equal(aicp_fu_mode_parse(&m, v, 0644, 0, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "rwxr-xr-x"));
    json_decref(v);
    assert_int_equal(aicp_fu_mode_parse(&m, NULL, 0644, 0, NULL), 0);
    assert_int_equal(m, -1);
}

static void test_unified_diff(void **state)
{
    (void)state;
    char *d = NULL;
    assert_int_equal(aicp_fu_unified_diff(&d, "a\nb\nc\n", "a\nb\nc\n", "x", "y"), 0);
    assert_string_equal(d, "");
    free(d);
    assert_int_equal(aicp_fu_unified_diff(&d, "1\n2\n3\n4\n5\n6\n7\n8\n9\n",
                                          "1\n2\n3\n4\nfive\n6\n7\n8\n9\n", "before: f",
                                          "after: f"),
                     0);
    assert_string_equal(d, "--- before: f\n+++ after: f\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n"
                           " 6\n 7\n 8\n");
    free(d);
    assert_int_equal(aicp_fu_unified_diff(&d, "", "new\n", "a", "b"), 0);
    assert_string_equal(d, "--- a\n+++ b\n@@ -0,0 +1 @@\n+new\n"); /* as difflib writes it */
    free(d);
    assert_int_equal(aicp_fu_unified_diff(&d, "x\ny", "x\ny\n", "a", "b"), 0);
    assert_string_equal(
        d, "--- a\n+++ b\n@@ -1,2 +1,2 @@\n x\n-y\n\\ No newline at end of file\n+y\n");
    free(d);
    /* Two changes far apart make two hunks. */
    assert_int_equal(aicp_fu_unified_diff(&d, "a\n1\n2\n3\n4\n5\n6\n7\n8\nb\n",
                                          "A\n1\n2\n3\n4\n5\n6\n7\n8\nB\n", "a", "b"),
                     0);
    assert_string_equal(d, "--- a\n+++ b\n@@ -1,4 +1,4 @@\n-a\n+A\n 1\n 2\n 3\n"
                           "@@ -7,4 +7,4 @@\n 6\n 7\n 8\n-b\n+B\n");
    free(d);
}

static void test_parse_records(void **state)
{
    (void)state;
    const char out[] = "p S 81a4 0 0 5 1700000000 1 42 2049 root root\np C 5\nhello\n"
                       "p H abc\nq S -\nx V path /a b\n";
    json_t *j = NULL;
    assert_int_equal(aicp_fu_parse(&j, out, sizeof(out) - 1, NULL), 0);
    const json_t *p = json_object_get(j, "p");
    assert_true(json_is_true(json_object_get(p, "exists")));
    assert_string_equal(json_string_value(json_object_get(p, "type")), "file");
    assert_string_equal(json_string_value(json_object_get(p, "mode")), "0644");
    assert_string_equal(json_string_value(json_object_get(p, "content")), "hello");
    assert_string_equal(json_string_value(json_object_get(p, "checksum")), "abc");
    assert_true(json_is_false(json_object_get(json_object_get(j, "q"), "exists")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "x"), "path")),
                        "/a b");
    json_decref(j);
    char *b = NULL, *back = NULL;
    size_t n;
    assert_int_equal(aicp_fu_b64(&b, "hello\n", 6), 0);
    assert_string_equal(b, "aGVsbG8K");
    assert_int_equal(aicp_fu_unb64(&back, &n, b), 0);
    assert_int_equal(n, 6);
    assert_memory_equal(back, "hello\n", 6);
    free(b);
    free(back);
}

/* ---- file ---- */

static void test_file_directory(void **state)
{
    (void)state;
    struct run r;
    OK(&r, "file", "{\"path\": \"%D/d/sub\", \"state\": \"directory\", \"mode\": \"0750\"}");
    assert_true(r.changed);
    assert_string_equal(json_string_value(json_object_get(r.result, "state")), "directory");
    assert_string_equal(json_string_value(json_object_get(r.result, "mode")), "0750");
    assert_string_equal(json_string_value(json_object_get(r.before, "state")), "absent");
    run_clear(&r);
    assert_int_equal(local_mode("%D/d/sub"), 0750);
    OK(&r, "file", "{\"path\": \"%D/d/sub\", \"state\": \"directory\", \"mode\": \"0750\"}");
    assert_false(r.changed);
    run_clear(&r);
    /* mode only */
    OK(&r, "file", "{\"path\": \"%D/d/sub\", \"state\": \"directory\", \"mode\": \"u=rwx,go=rx\"}");
    assert_true(r.changed);
    assert_string_equal(json_string_value(json_object_get(r.before, "mode")), "0750");
    assert_string_equal(json_string_value(json_object_get(r.after, "mode")), "0755");
    run_clear(&r);
    assert_int_equal(local_mode("%D/d/sub"), 0755);
    /* recursive owner/mode */
    sh("touch %D/d/sub/f1 && chmod 0600 %D/d/sub/f1");
    OK(&r, "file",
       "{\"path\": \"%D/d\", \"state\": \"directory\", \"recurse\": true, "
       "\"mode\": \"0755\", \"owner\": \"root\", \"group\": \"root\"}");
    assert_true(r.changed);
    run_clear(&r);
    assert_int_equal(local_mode("%D/d/sub/f1"), 0755);
    OK(&r, "file",
       "{\"path\": \"%D/d\", \"state\": \"directory\", \"recurse\": true, "
       "\"mode\": \"0755\", \"owner\": \"root\", \"group\": \"root\"}");
    assert_false(r.changed);
    run_clear(&r);
    /* a file in the way */
    assert_int_not_equal(
        run_both(&r, "file", "{\"path\": \"%D/d/sub/f1\", \"state\": \"directory\"}"), 0);
    assert_non_null(strstr(last_err, "already exists as a file"));
    run_clear(&r);
    OK(&r, "file", "{\"path\": \"%D/d\", \"state\": \"absent\"}");
    assert_true(r.changed);
    assert_string_equal(json_string_value(json_object_get(r.after, "state")), "absent");
    run_clear(&r);
    assert_int_equal(local_mode("%D/d"), -1);
    OK(&r, "file", "{\"path\": \"%D/d\", \"state\": \"absent\"}");
    assert_false(r.changed);
    assert_string_equal(json_string_value(json_object_get(r.result, "state")), "absent");
    run_clear(&r);
}

static void test_file_file_touch(void **state)
{
    (void)state;
    struct run r;
    assert_int_not_equal(run_both(&r, "file", "{\"path\": \"%D/nofile\", \"state\": \"file\"}"), 0);
    char *want = subst("file (%D/nofile) is absent, cannot continue");
    assert_string_equal(last_err, want);
    free(want);
    run_clear(&r);
    /* touch creates, and changes every time (no verify) */
    OK(&r, "file", "{\"path\": \"%D/t\", \"state\": \"touch\", \"mode\": \"0600\"}");
    assert_true(r.changed);
    /* Ansible's result: the file as the touch left it, under "dest". */
    assert_string_equal(json_string_value(json_object_get(r.result, "state")), "file");
    assert_string_equal(json_string_value(json_object_get(r.result, "mode")), "0600");
    assert_int_equal(json_integer_value(json_object_get(r.result, "size")), 0);
    assert_non_null(json_object_get(r.result, "uid"));
    assert_non_null(json_object_get(r.result, "owner"));
    assert_non_null(json_object_get(r.result, "dest"));
    assert_null(json_object_get(r.result, "path"));
    run_clear(&r);
    assert_int_equal(local_mode("%D/t"), 0600);
    OK(&r, "file", "{\"path\": \"%D/t\", \"state\": \"touch\", \"mode\": \"0600\"}");
    assert_true(r.changed);
    run_clear(&r);
    /* state=file: attributes only */
    OK(&r, "file",
       "{\"path\": \"%D/t\", \"state\": \"file\", \"mode\": \"0640\", \"owner\": \"root\"}");
    assert_true(r.changed);
    run_clear(&r);
    assert_int_equal(local_mode("%D/t"), 0640);
    OK(&r, "file",
       "{\"path\": \"%D/t\", \"mode\": \"0640\", \"owner\": \"0\", \"group\": \"root\"}");
    assert_false(r.changed);
    assert_string_equal(json_string_value(json_object_get(r.result, "state")), "file");
    assert_string_equal(json_string_value(json_object_get(r.result, "owner")), "root");
    assert_int_equal(json_integer_value(json_object_get(r.result, "uid")), 0);
    assert_int_equal(json_integer_value(json_object_get(r.result, "size")), 0);
    run_clear(&r);
    /* YAML int mode 420 == 0644 */
    OK(&r, "file", "{\"path\": \"%D/t\", \"mode\": 420}");
    assert_true(r.changed);
    run_clear(&r);
    assert_int_equal(local_mode("%D/t"), 0644);
    assert_int_not_equal(
        run_both(&r, "file", "{\"path\": \"%D/t\", \"owner\": \"no-such-user-x\"}"), 0);
    run_clear(&r);
}

static void test_file_links(void **state)
{
    (void)state;
    struct run r;
    sh("echo data > %D/target");
    OK(&r, "file", "{\"path\": \"%D/lnk\", \"src\": \"target\", \"state\": \"link\"}");
    assert_true(r.changed);
    run_clear(&r);
    assert_int_equal(local_mode("%D/lnk") >= 0, 1);
    OK(&r, "file", "{\"path\": \"%D/lnk\", \"src\": \"target\", \"state\": \"link\"}");
    assert_false(r.changed);
    assert_string_equal(json_string_value(json_object_get(r.result, "state")), "link");
    assert_string_equal(json_string_value(json_object_get(r.result, "src")), "target");
    /* The link itself, as lstat sees it (Ansible): not the target's. */
    assert_string_equal(json_string_value(json_object_get(r.result, "mode")), "0777");
    assert_int_equal(json_integer_value(json_object_get(r.result, "size")), strlen("target"));
    assert_non_null(json_object_get(r.result, "dest"));
    run_clear(&r);
    /* retarget */
    sh("echo other > %D/target2");
    OK(&r, "file", "{\"path\": \"%D/lnk\", \"src\": \"%D/target2\", \"state\": \"link\"}");
    assert_true(r.changed);
    run_clear(&r);
    /* missing source without force */
    assert_int_not_equal(
        run_both(&r, "file", "{\"path\": \"%D/lnk2\", \"src\": \"nope\", \"state\": \"link\"}"), 0);
    assert_non_null(strstr(last_err, "src file does not exist"));
    run_clear(&r);
    OK(&r, "file",
       "{\"path\": \"%D/lnk2\", \"src\": \"nope\", \"state\": \"link\", \"force\": true}");
    assert_true(r.changed);
    run_clear(&r);
    /* a file is not turned into a link without force */
    assert_int_not_equal(
        run_both(&r, "file",
                 "{\"path\": \"%D/target2\", \"src\": \"target\", \"state\": \"link\"}"),
        0);
    assert_non_null(strstr(last_err, "refusing to convert from file to symlink"));
    run_clear(&r);
    /* hard links */
    OK(&r, "file", "{\"path\": \"%D/hl\", \"src\": \"%D/target\", \"state\": \"hard\"}");
    assert_true(r.changed);
    run_clear(&r);
    OK(&r, "file", "{\"path\": \"%D/hl\", \"src\": \"%D/target\", \"state\": \"hard\"}");
    assert_false(r.changed);
    assert_string_equal(json_string_value(json_object_get(r.result, "state")), "hard");
    run_clear(&r);
    OK(&r, "file", "{\"path\": \"%D/lnk\", \"state\": \"absent\"}");
    assert_true(r.changed);
    assert_string_equal(json_string_value(json_object_get(r.result, "state")), "absent");
    assert_null(json_object_get(r.result, "mode")); /* gone: no attributes */
    assert_null(json_object_get(r.result, "size"));
    run_clear(&r);
    assert_int_equal(local_mode("%D/target2"), 0644); /* the target stays */
}

/* ---- copy / template ---- */

static void test_copy_content(void **state)
{
    (void)state;
    struct run r;
    OK(&r, "copy", "{\"content\": \"hello\\n\", \"dest\": \"%D/c.txt\", \"mode\": \"0640\"}");
    assert_true(r.changed);
    assert_string_equal(json_string_value(json_object_get(r.result, "checksum")),
                        "f572d396fae9206628714fb2ce00f72e94f2258f");
    assert_string_equal(json_string_value(json_object_get(r.result, "md5sum")),
                        "b1946ac92492d2347c6235b4d2611184");
    assert_string_equal(json_string_value(json_object_get(r.result, "mode")), "0640");
    assert_int_equal(json_integer_value(json_object_get(r.result, "size")), 6);
    assert_non_null(r.diff_text);
    assert_non_null(strstr(r.diff_text, "+hello\n"));
    run_clear(&r);
    char *s = slurp_local("%D/c.txt");
    assert_string_equal(s, "hello\n");
    free(s);
    assert_int_equal(local_mode("%D/c.txt"), 0640);
    OK(&r, "copy", "{\"content\": \"hello\\n\", \"dest\": \"%D/c.txt\", \"mode\": \"0640\"}");
    assert_false(r.changed);
    run_clear(&r);
    /* different content, with a backup */
    OK(&r, "copy", "{\"content\": \"bye\\n\", \"dest\": \"%D/c.txt\", \"backup\": true}");
    assert_true(r.changed);
    assert_non_null(strstr(r.diff_text, "-hello\n+bye\n"));
    const char *bk = json_string_value(json_object_get(r.result, "backup_file"));
    assert_non_null(bk);
    char *bdata = NULL;
    assert_int_equal(aicp_read_file(&bdata, NULL, bk, NULL), 0);
    assert_string_equal(bdata, "hello\n");
    free(bdata);
    run_clear(&r);
    assert_int_equal(local_mode("%D/c.txt"), 0640); /* mode kept */
    /* mode only */
    OK(&r, "copy", "{\"content\": \"bye\\n\", \"dest\": \"%D/c.txt\", \"mode\": \"0600\"}");
    assert_true(r.changed);
    assert_null(r.diff_text);
    run_clear(&r);
    assert_int_equal(local_mode("%D/c.txt"), 0600);
    /* force=no leaves an existing file alone */
    OK(&r, "copy", "{\"content\": \"other\\n\", \"dest\": \"%D/c.txt\", \"force\": false}");
    assert_false(r.changed);
    run_clear(&r);
    /* content with a directory dest fails as Ansible */
    assert_int_not_equal(run_both(&r, "copy", "{\"content\": \"x\", \"dest\": \"%D/dir/\"}"), 0);
    assert_string_equal(last_err, "can not use content with a dir as dest");
    run_clear(&r);
    /* a file in a missing directory fails */
    assert_int_not_equal(run_both(&r, "copy", "{\"content\": \"x\", \"dest\": \"%D/nodir/x\"}"), 0);
    assert_non_null(strstr(last_err, "does not exist"));
    run_clear(&r);
    /* validate */
    assert_int_not_equal(run_both(&r, "copy",
                                  "{\"content\": \"bad\\n\", \"dest\": \"%D/c.txt\", "
                                  "\"validate\": \"grep -q good %s\"}"),
                         0);
    assert_non_null(strstr(last_err, "failed to validate"));
    run_clear(&r);
    s = slurp_local("%D/c.txt");
    assert_string_equal(s, "bye\n");
    free(s);
    OK(&r, "copy",
       "{\"content\": \"good\\n\", \"dest\": \"%D/c.txt\", "
       "\"validate\": \"grep -q good %s\"}");
    assert_true(r.changed);
    run_clear(&r);
    assert_int_equal(local_mode("%D/c.txt"), 0600);
}

static void test_copy_src(void **state)
{
    (void)state;
    struct run r;
    sh("mkdir -p %D/play/files %D/out");
    put_local("%D/play/files/app.conf", "a=1\nb=2\n");
    OK(&r, "copy", "{\"src\": \"app.conf\", \"dest\": \"%D/out\"}");
    assert_true(r.changed);
    char *want = subst("%D/out/app.conf");
    assert_string_equal(json_string_value(json_object_get(r.result, "dest")), want);
    free(want);
    run_clear(&r);
    char *s = slurp_local("%D/out/app.conf");
    assert_string_equal(s, "a=1\nb=2\n");
    free(s);
    OK(&r, "copy", "{\"src\": \"app.conf\", \"dest\": \"%D/out/\"}");
    assert_false(r.changed);
    run_clear(&r);
    put_local("%D/play/files/app.conf", "a=1\nb=3\n");
    OK(&r, "copy", "{\"src\": \"app.conf\", \"dest\": \"%D/out/app.conf\", \"owner\": \"root\"}");
    assert_true(r.changed);
    assert_non_null(strstr(r.diff_text, "-b=2\n+b=3\n"));
    run_clear(&r);
    /* dest ending with / creates the directory */
    OK(&r, "copy", "{\"src\": \"app.conf\", \"dest\": \"%D/new/dir/\"}");
    assert_true(r.changed);
    run_clear(&r);
    s = slurp_local("%D/new/dir/app.conf");
    assert_string_equal(s, "a=1\nb=3\n");
    free(s);
    /* remote_src */
    OK(&r, "copy",
       "{\"src\": \"%D/out/app.conf\", \"remote_src\": true, \"dest\": \"%D/rs.conf\", \"mode\": "
       "\"0444\"}");
    assert_true(r.changed);
    assert_string_equal(json_string_value(json_object_get(r.result, "md5sum")),
                        "e22c8b0669dfe6251ed48e9f5860da5c");
    want = subst("%D/out/app.conf");
    assert_string_equal(json_string_value(json_object_get(r.result, "src")), want);
    free(want);
    run_clear(&r);
    assert_int_equal(local_mode("%D/rs.conf"), 0444);
    /* No mode: a new file gets the source's, less the umask, as cp does;
     * the temp file is a mktemp one, removed when a later step fails. */
    sh("chmod 0640 %D/out/app.conf");
    OK(&r, "copy", "{\"src\": \"%D/out/app.conf\", \"remote_src\": true, \"dest\": \"%D/rs2\"}");
    run_clear(&r);
    assert_int_equal(local_mode("%D/rs2"), 0640 & ~local_umask());
    assert_int_not_equal(run_both(&r, "copy",
                                  "{\"src\": \"%D/out/app.conf\", \"remote_src\": true, "
                                  "\"dest\": \"%D/rs3\", \"owner\": \"no-such-user-x\"}"),
                         0);
    run_clear(&r);
    sh("! ls -A %D | grep -q '^\\.' && [ ! -e %D/rs3 ]");
    OK(&r, "copy",
       "{\"src\": \"%D/out/app.conf\", \"remote_src\": true, \"dest\": \"%D/rs.conf\", \"mode\": "
       "\"0444\"}");
    assert_false(r.changed);
    run_clear(&r);
    assert_int_not_equal(run_both(&r, "copy", "{\"src\": \"missing.conf\", \"dest\": \"%D/out/\"}"),
                         0);
    assert_non_null(strstr(last_err, "missing.conf"));
    run_clear(&r);
}

static void test_template(void **state)
{
    (void)state;
    struct run r;
    sh("mkdir -p %D/play/templates");
    put_local("%D/play/templates/motd.j2", "plain text template\n");
    OK(&r, "template", "{\"src\": \"motd.j2\", \"dest\": \"%D/motd\", \"mode\": \"0644\"}");
    assert_true(r.changed);
    run_clear(&r);
    char *s = slurp_local("%D/motd");
    assert_string_equal(s, "plain text template\n");
    free(s);
    OK(&r, "template", "{\"src\": \"motd.j2\", \"dest\": \"%D/motd\", \"mode\": \"0644\"}");
    assert_false(r.changed);
    run_clear(&r);
    put_local("%D/play/templates/motd.j2", "changed\n");
    OK(&r, "template", "{\"src\": \"motd.j2\", \"dest\": \"%D/motd\"}");
    assert_true(r.changed);
    run_clear(&r);
}

/* ---- lineinfile ---- */

static void li(const char *args, int changed, const char *msg, const char *content)
{
    struct run r;
    OK(&r, "lineinfile", args);
    if (r.changed != changed)
        fail_msg("%s: changed=%d, wanted %d", args, r.changed, changed);
    if (msg)
        assert_string_equal(json_string_value(json_object_get(r.result, "msg")), msg);
    run_clear(&r);
    if (content) {
        char *s = slurp_local("%D/li.txt");
        assert_non_null(s);
        assert_string_equal(s, content);
        free(s);
    }
}

static void test_lineinfile(void **state)
{
    (void)state;
    struct run r;
    assert_int_not_equal(run_both(&r, "lineinfile", "{\"path\": \"%D/li.txt\", \"line\": \"x\"}"),
                         0);
    char *want = subst("Destination %D/li.txt does not exist !");
    assert_string_equal(last_err, want);
    free(want);
    run_clear(&r);
    li("{\"path\": \"%D/li.txt\", \"line\": \"first\", \"create\": true}", 1, "line added",
       "first\n");
    li("{\"path\": \"%D/li.txt\", \"line\": \"first\"}", 0, NULL, "first\n");
    li("{\"path\": \"%D/li.txt\", \"line\": \"New line at the beginning\", \"insertbefore\": "
       "\"BOF\"}",
       1, "line added", "New line at the beginning\nfirst\n");
    li("{\"path\": \"%D/li.txt\", \"line\": \"New line at the beginning\", \"insertbefore\": "
       "\"BOF\"}",
       0, NULL, NULL);
    li("{\"path\": \"%D/li.txt\", \"line\": \"after first\", \"insertafter\": \"^fir\"}", 1,
       "line added", "New line at the beginning\nfirst\nafter first\n");
    li("{\"path\": \"%D/li.txt\", \"line\": \"after first\", \"insertafter\": \"^fir\"}", 0, NULL,
       NULL);
    li("{\"path\": \"%D/li.txt\", \"line\": \"before first\", \"insertbefore\": \"^first$\"}", 1,
       "line added", "New line at the beginning\nbefore first\nfirst\nafter first\n");
    li("{\"path\": \"%D/li.txt\", \"line\": \"before first\", \"insertbefore\": \"^first$\"}", 0,
       NULL, NULL);
    /* regexp replace (last match) */
    li("{\"path\": \"%D/li.txt\", \"regexp\": \"^a\\\\w+ first$\", \"line\": \"replaced\"}", 1,
       "line replaced", "New line at the beginning\nbefore first\nfirst\nreplaced\n");
    li("{\"path\": \"%D/li.txt\", \"regexp\": \"^a\\\\w+ first$\", \"line\": \"replaced\"}", 0,
       NULL, NULL);
    /* firstmatch */
    put_local("%D/li.txt", "k=1\nk=2\n");
    li("{\"path\": \"%D/li.txt\", \"regexp\": \"^k=\", \"line\": \"k=9\", \"firstmatch\": true}", 1,
       "line replaced", "k=9\nk=2\n");
    li("{\"path\": \"%D/li.txt\", \"regexp\": \"^k=\\\\d$\", \"line\": \"k=8\"}", 1,
       "line replaced", "k=9\nk=8\n");
    /* backrefs */
    put_local("%D/li.txt", "PermitRootLogin yes\nPort 22\n");
    li("{\"path\": \"%D/li.txt\", \"regexp\": \"^Port (\\\\d+)$\", \"line\": \"Port \\\\1 # was "
       "\\\\g<1>\", "
       "\"backrefs\": true}",
       1, "line replaced", "PermitRootLogin yes\nPort 22 # was 22\n");
    li("{\"path\": \"%D/li.txt\", \"regexp\": \"^NoSuch (.*)$\", \"line\": \"x \\\\1\", "
       "\"backrefs\": true}",
       0, "", "PermitRootLogin yes\nPort 22 # was 22\n");
    /* search_string */
    li("{\"path\": \"%D/li.txt\", \"search_string\": \"RootLogin\", \"line\": \"PermitRootLogin "
       "no\"}",
       1, "line replaced", "PermitRootLogin no\nPort 22 # was 22\n");
    /* a file without a final newline gets one before the new line */
    put_local("%D/li.txt", "a\nb");
    li("{\"path\": \"%D/li.txt\", \"line\": \"c\"}", 1, "line added", "a\nb\nc\n");
    /* insertafter that matches nothing appends */
    li("{\"path\": \"%D/li.txt\", \"line\": \"d\", \"insertafter\": \"^zzz\"}", 1, "line added",
       "a\nb\nc\nd\n");
    /* absent */
    put_local("%D/li.txt", "x1\ny\nx2\n");
    li("{\"path\": \"%D/li.txt\", \"regexp\": \"^x\", \"state\": \"absent\"}", 1,
       "2 line(s) removed", "y\n");
    li("{\"path\": \"%D/li.txt\", \"regexp\": \"^x\", \"state\": \"absent\"}", 0, NULL, "y\n");
    li("{\"path\": \"%D/li.txt\", \"line\": \"y\", \"state\": \"absent\"}", 1, "1 line(s) removed",
       "");
    li("{\"path\": \"%D/nothere\", \"line\": \"y\", \"state\": \"absent\"}", 0, "file not present",
       NULL);
    /* mode only, and content plus mode */
    li("{\"path\": \"%D/li.txt\", \"line\": \"m\", \"mode\": \"0600\"}", 1,
       "line added and ownership, perms or SE linux context changed", "m\n");
    assert_int_equal(local_mode("%D/li.txt"), 0600);
    li("{\"path\": \"%D/li.txt\", \"line\": \"m\", \"mode\": \"0644\"}", 1,
       "ownership, perms or SE linux context changed", "m\n");
    /* backup */
    OK(&r, "lineinfile", "{\"path\": \"%D/li.txt\", \"line\": \"n\", \"backup\": true}");
    assert_true(r.changed);
    const char *bk = json_string_value(json_object_get(r.result, "backup"));
    assert_non_null(bk);
    assert_non_null(strstr(bk, "li.txt."));
    assert_non_null(r.diff_text);
    assert_non_null(strstr(r.diff_text, "+n\n"));
    run_clear(&r);
    /* errors */
    assert_int_not_equal(
        run_both(&r, "lineinfile",
                 "{\"path\": \"%D/li.txt\", \"regexp\": \"x\", \"backrefs\": true}"),
        0);
    run_clear(&r);
    assert_int_not_equal(
        run_both(&r, "lineinfile", "{\"path\": \"%D/li.txt\", \"state\": \"absent\"}"), 0);
    assert_string_equal(last_err,
                        "one of line, search_string, or regexp is required with state=absent");
    run_clear(&r);
    assert_int_not_equal(run_both(&r, "lineinfile", "{\"path\": \"%D\", \"line\": \"x\"}"), 0);
    assert_non_null(strstr(last_err, "is a directory !"));
    run_clear(&r);
    /* create in a missing directory */
    li("{\"path\": \"%D/newdir/li2.txt\", \"line\": \"z\", \"create\": true}", 1, "line added",
       NULL);
    char *s = slurp_local("%D/newdir/li2.txt");
    assert_string_equal(s, "z\n");
    free(s);
}

/* ---- stat / slurp / fetch ---- */

static void test_stat(void **state)
{
    (void)state;
    struct run r;
    sh("printf 'abc' > %D/st && chmod 0640 %D/st && ln -sf st %D/stl");
    OK(&r, "stat", "{\"path\": \"%D/st\"}");
    assert_false(r.changed);
    const json_t *st = json_object_get(r.result, "stat");
    assert_true(json_is_true(json_object_get(st, "exists")));
    assert_true(json_is_true(json_object_get(st, "isreg")));
    assert_false(json_is_true(json_object_get(st, "isdir")));
    assert_string_equal(json_string_value(json_object_get(st, "mode")), "0640");
    assert_int_equal(json_integer_value(json_object_get(st, "size")), 3);
    assert_string_equal(json_string_value(json_object_get(st, "pw_name")), "root");
    assert_string_equal(json_string_value(json_object_get(st, "checksum")),
                        "a9993e364706816aba3e25717850c26c9cd0d89d");
    assert_true(json_is_true(json_object_get(st, "rusr")));
    assert_false(json_is_true(json_object_get(st, "roth")));
    run_clear(&r);
    OK(&r, "stat", "{\"path\": \"%D/stl\"}");
    st = json_object_get(r.result, "stat");
    assert_true(json_is_true(json_object_get(st, "islnk")));
    assert_string_equal(json_string_value(json_object_get(st, "lnk_target")), "st");
    run_clear(&r);
    OK(&r, "stat", "{\"path\": \"%D/stl\", \"follow\": true, \"checksum_algorithm\": \"sha256\"}");
    st = json_object_get(r.result, "stat");
    assert_true(json_is_true(json_object_get(st, "isreg")));
    assert_string_equal(json_string_value(json_object_get(st, "checksum")),
                        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    run_clear(&r);
    OK(&r, "stat", "{\"path\": \"%D/none\"}");
    st = json_object_get(r.result, "stat");
    assert_true(json_is_false(json_object_get(st, "exists")));
    run_clear(&r);
}

static void test_slurp_fetch(void **state)
{
    (void)state;
    struct run r;
    sh("printf 'hello\\n' > %D/sl && chmod 0600 %D/sl");
    OK(&r, "slurp", "{\"src\": \"%D/sl\"}");
    assert_false(r.changed);
    assert_string_equal(json_string_value(json_object_get(r.result, "content")), "aGVsbG8K");
    assert_string_equal(json_string_value(json_object_get(r.result, "encoding")), "base64");
    run_clear(&r);
    assert_int_not_equal(run_both(&r, "slurp", "{\"src\": \"%D/none\"}"), 0);
    assert_non_null(strstr(last_err, "file not found"));
    run_clear(&r);
    /* fetch: dest/<host>/<path> */
    OK(&r, "fetch", "{\"src\": \"%D/sl\", \"dest\": \"%D/fetched\"}");
    assert_true(r.changed);
    run_clear(&r);
    char *s = slurp_local("%D/fetched/testhost%D/sl");
    assert_string_equal(s, "hello\n");
    free(s);
    assert_int_equal(local_mode("%D/fetched/testhost%D/sl"), 0600);
    OK(&r, "fetch", "{\"src\": \"%D/sl\", \"dest\": \"%D/fetched\"}");
    assert_false(r.changed);
    run_clear(&r);
    sh("printf 'changed\\n' > %D/sl");
    OK(&r, "fetch", "{\"src\": \"%D/sl\", \"dest\": \"%D/flat/\", \"flat\": true}");
    assert_true(r.changed);
    run_clear(&r);
    s = slurp_local("%D/flat/sl");
    assert_string_equal(s, "changed\n");
    free(s);
    assert_int_not_equal(run_both(&r, "fetch", "{\"src\": \"%D/none\", \"dest\": \"%D/f2\"}"), 0);
    run_clear(&r);
    OK(&r, "fetch", "{\"src\": \"%D/none\", \"dest\": \"%D/f2\", \"fail_on_missing\": false}");
    assert_false(r.changed);
    run_clear(&r);
}

/* ---- command / shell ---- */

static void test_command(void **state)
{
    (void)state;
    struct run r;
    OK(&r, "command", "{\"_raw_params\": \"echo $TEST 'a  b' \\\"c d\\\"\"}");
    assert_true(r.changed);
    assert_string_equal(json_string_value(json_object_get(r.result, "stdout")), "$TEST a  b c d");
    assert_int_equal(json_integer_value(json_object_get(r.result, "rc")), 0);
    assert_int_equal(json_array_size(json_object_get(r.result, "cmd")), 4);
    assert_non_null(json_object_get(r.result, "delta"));
    run_clear(&r);
    OK(&r, "command", "{\"argv\": [\"printf\", \"%s|\", \"x y\", \"z\"]}");
    assert_string_equal(json_string_value(json_object_get(r.result, "stdout")), "x y|z|");
    run_clear(&r);
    OK(&r, "command", "{\"cmd\": \"cat\", \"stdin\": \"in put\"}");
    assert_string_equal(json_string_value(json_object_get(r.result, "stdout")), "in put");
    run_clear(&r);
    OK(&r, "command", "{\"cmd\": \"pwd\", \"chdir\": \"/tmp\"}");
    assert_string_equal(json_string_value(json_object_get(r.result, "stdout")), "/tmp");
    run_clear(&r);
    /* failure */
    assert_int_equal(run_both(&r, "command", "{\"_raw_params\": \"false\"}"), AICP_EFAILED);
    assert_string_equal(last_err, "non-zero return code");
    assert_int_equal(json_integer_value(json_object_get(r.result, "rc")), 1);
    assert_string_equal(json_string_value(json_object_get(r.result, "msg")),
                        "non-zero return code");
    run_clear(&r);
    assert_int_not_equal(
        run_both(&r, "command", "{\"_raw_params\": \"echo\", \"argv\": [\"echo\"]}"), 0);
    assert_string_equal(last_err, "only command or argv can be given, not both");
    run_clear(&r);
    assert_int_not_equal(run_both(&r, "command", "{\"chdir\": \"/tmp\"}"), 0);
    assert_string_equal(last_err, "no command given");
    run_clear(&r);
    assert_int_not_equal(run_both(&r, "command", "{\"cmd\": \"true\", \"chdir\": \"%D/none\"}"), 0);
    assert_non_null(strstr(last_err, "Unable to change directory"));
    run_clear(&r);
    /* creates / removes */
    OK(&r, "command", "{\"cmd\": \"touch %D/made\", \"creates\": \"%D/made\"}");
    assert_true(r.changed);
    run_clear(&r);
    OK(&r, "command", "{\"cmd\": \"touch %D/made\", \"creates\": \"%D/ma*\"}");
    assert_false(r.changed);
    char *want = subst("skipped, since %D/ma* exists");
    assert_string_equal(json_string_value(json_object_get(r.result, "stdout")), want);
    free(want);
    run_clear(&r);
    OK(&r, "command", "{\"cmd\": \"rm %D/made\", \"removes\": \"%D/made\"}");
    assert_true(r.changed);
    run_clear(&r);
    OK(&r, "command", "{\"cmd\": \"rm %D/made\", \"removes\": \"%D/made\"}");
    assert_false(r.changed);
    run_clear(&r);
}

static void test_shell(void **state)
{
    (void)state;
    struct run r;
    OK(&r, "shell", "{\"_raw_params\": \"echo one; echo two | tr a-z A-Z; echo err >&2\"}");
    assert_true(r.changed);
    assert_string_equal(json_string_value(json_object_get(r.result, "stdout")), "one\nTWO");
    assert_string_equal(json_string_value(json_object_get(r.result, "stderr")), "err");
    assert_int_equal(json_array_size(json_object_get(r.result, "stdout_lines")), 2);
    assert_true(json_is_string(json_object_get(r.result, "cmd")));
    run_clear(&r);
    OK(&r, "shell", "{\"cmd\": \"cat <<EOF\\nOne\\n  Two\\nEOF\\n\"}");
    assert_string_equal(json_string_value(json_object_get(r.result, "stdout")), "One\n  Two");
    run_clear(&r);
    OK(&r, "shell", "{\"cmd\": \"echo $0\", \"executable\": \"/bin/sh\"}");
    assert_string_equal(json_string_value(json_object_get(r.result, "stdout")), "/bin/sh");
    run_clear(&r);
    assert_int_equal(run_both(&r, "shell", "{\"cmd\": \"exit 3\"}"), AICP_EFAILED);
    assert_int_equal(json_integer_value(json_object_get(r.result, "rc")), 3);
    run_clear(&r);
}

static void test_docs(void **state)
{
    (void)state;
    static const char *const mods[] = {"command",    "shell", "file",  "copy", "template",
                                       "lineinfile", "stat",  "slurp", "fetch"};
    for (size_t i = 0; i < sizeof(mods) / sizeof(mods[0]); i++) {
        const struct aicp_module *m = aicp_module_find(mods[i]);
        char path[512], *doc = NULL;
        snprintf(path, sizeof(path), "%s/docs/modules/%s.md", AICP_SRCDIR, mods[i]);
        assert_int_equal(aicp_read_file(&doc, NULL, path, NULL), 0);
        for (const struct aicp_arg_spec *a = m->args; a->name; a++) {
            char want[128];
            snprintf(want, sizeof(want), "| %s |", a->name);
            if (strstr(doc, want) == NULL)
                fail_msg("%s: argument %s is not documented", path, a->name);
        }
        assert_non_null(strstr(doc, "```yaml"));
        free(doc);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mode_parse),
        cmocka_unit_test(test_unified_diff),
        cmocka_unit_test(test_parse_records),
        cmocka_unit_test(test_file_directory),
        cmocka_unit_test(test_file_file_touch),
        cmocka_unit_test(test_file_links),
        cmocka_unit_test(test_copy_content),
        cmocka_unit_test(test_copy_src),
        cmocka_unit_test(test_template),
        cmocka_unit_test(test_lineinfile),
        cmocka_unit_test(test_stat),
        cmocka_unit_test(test_slurp_fetch),
        cmocka_unit_test(test_command),
        cmocka_unit_test(test_shell),
        cmocka_unit_test(test_docs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
