/* Unit tests for agent/conn.c over the local transport (a real /bin/sh on a
 * socket, the same protocol as over SSH), and for the SSH argument parsing
 * in agent/ssh.c. No mocks: every exec really runs. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "conn.h"
#include "err.h"
#include "ssh.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>

struct fixture {
    struct aicp_conn *c;
    char dir[64];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    struct aicp_conn_opts o = {.name = "testhost", .local = 1, .command_timeout = 20};
    struct aicp_err err = {0};

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/aicp-test-conn-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    if (aicp_conn_open(&f->c, &o, &err) != 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    struct aicp_buf cmd = AICP_BUF_INIT;
    struct aicp_exec_result r;
    struct aicp_err err;

    /* Remove the scratch dir with the connection itself. */
    aicp_buf_puts(&cmd, "rm -rf ");
    aicp_buf_shquote(&cmd, f->dir);
    if (aicp_conn_exec(f->c, cmd.data, NULL, 0, 0, &r, &err) == 0)
        aicp_exec_result_clear(&r);
    aicp_buf_free(&cmd);
    aicp_conn_close(f->c);
    free(f);
    return 0;
}

static void test_exec_rc_out_err(void **state)
{
    struct fixture *f = *state;
    struct aicp_exec_result r;
    struct aicp_err err = {0};

    assert_int_equal(aicp_conn_exec(f->c, "echo hello; echo oops >&2; exit 3", NULL, 0, 0, &r,
                                    &err),
                     0);
    assert_int_equal(r.rc, 3);
    assert_string_equal(r.out, "hello\n");
    assert_int_equal(r.out_len, 6);
    assert_string_equal(r.err, "oops\n");
    aicp_exec_result_clear(&r);

    /* No trailing newline, empty output, and the working dir is $HOME. */
    assert_int_equal(aicp_conn_exec(f->c, "printf %s \"$PWD\"", NULL, 0, 0, &r, &err), 0);
    assert_int_equal(r.rc, 0);
    const char *home = getenv("HOME");
    if (home != NULL && access(home, X_OK) == 0) {
        char real[4096];
        assert_non_null(realpath(home, real));
        assert_string_equal(r.out, real);
    }
    aicp_exec_result_clear(&r);

    /* Signals show as 128+N. */
    assert_int_equal(aicp_conn_exec(f->c, "sh -c 'kill -9 $$'", NULL, 0, 0, &r, &err), 0);
    assert_int_equal(r.rc, 137);
    aicp_exec_result_clear(&r);
}

static void test_private_tmp(void **state)
{
    struct fixture *f = *state;
    struct aicp_exec_result r;
    struct aicp_err err = {0};

    assert_int_equal(aicp_conn_exec(f->c, "stat -c %a \"$AICP_TMP\"", NULL, 0, 0, &r, &err), 0);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.out, "700\n");
    aicp_exec_result_clear(&r);
}

/* The files holding a script's stdin (file contents, secrets) and stderr
 * are 0600 from creation, whatever the login umask, while the script
 * itself still runs under that umask. */
static void test_private_files(void **state)
{
    struct aicp_conn_opts o = {.name = "testhost", .local = 1, .command_timeout = 20};
    struct aicp_conn *c = NULL;
    struct aicp_exec_result r;
    struct aicp_err err = {0};
    mode_t old = umask(022);

    (void)state;
    assert_int_equal(aicp_conn_open(&c, &o, &err), 0);
    umask(old);
    assert_int_equal(aicp_conn_exec(c,
                                    "stat -c %a \"$AICP_TMP/i\" \"$AICP_TMP/e\"; umask; "
                                    ": >\"$AICP_TMP/new\"; stat -c %a \"$AICP_TMP/new\"; cat",
                                    "s3cret\n", 7, 0, &r, &err),
                     0);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.out, "600\n600\n0022\n644\ns3cret\n");
    aicp_exec_result_clear(&r);
    aicp_conn_close(c);
}

static void test_binary_stdin(void **state)
{
    struct fixture *f = *state;
    struct aicp_exec_result r;
    struct aicp_err err = {0};
    size_t n = 1024 * 1024 + 7;
    unsigned char *in = malloc(n);

    assert_non_null(in);
    for (size_t i = 0; i < n; i++)
        in[i] = (unsigned char)((i * 7 + i / 256) & 0xff);
    for (int i = 0; i < 256; i++)
        in[i] = (unsigned char)i;
    assert_int_equal(aicp_conn_exec(f->c, "cat", in, n, 0, &r, &err), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.out_len, n);
    assert_memory_equal(r.out, in, n);
    aicp_exec_result_clear(&r);

    /* Small sizes around the base64 padding. */
    for (size_t k = 1; k <= 5; k++) {
        assert_int_equal(aicp_conn_exec(f->c, "od -An -tx1 | tr -d ' \\n'", in, k, 0, &r, &err),
                         0);
        assert_int_equal(r.out_len, 2 * k);
        aicp_exec_result_clear(&r);
    }
    free(in);
}

static void test_syntax_error_is_contained(void **state)
{
    struct fixture *f = *state;
    struct aicp_exec_result r;
    struct aicp_err err = {0};

    assert_int_equal(aicp_conn_exec(f->c, "if then fi (((", NULL, 0, 0, &r, &err), 0);
    assert_int_not_equal(r.rc, 0);
    assert_true(r.err_len > 0);
    aicp_exec_result_clear(&r);

    /* exit, cd and variables stay inside the exec. */
    assert_int_equal(aicp_conn_exec(f->c, "X=1; cd /; exit 0", NULL, 0, 0, &r, &err), 0);
    aicp_exec_result_clear(&r);
    assert_int_equal(aicp_conn_exec(f->c, "echo \"${X:-unset}\"", NULL, 0, 0, &r, &err), 0);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.out, "unset\n");
    aicp_exec_result_clear(&r);
}

static void test_heredoc_like_script(void **state)
{
    struct fixture *f = *state;
    struct aicp_exec_result r;
    struct aicp_err err = {0};
    const char *script = "cat <<'EOF'\n"
                         "AICP_EOF_\n"
                         "AICP_EOF_00000000000000000000000000000000\n"
                         "$HOME `x` \\\n"
                         "EOF\n"
                         "cat <<EOF2\n"
                         "AICP_0 1 2 3\n"
                         "EOF2\n";

    assert_int_equal(aicp_conn_exec(f->c, script, NULL, 0, 0, &r, &err), 0);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.out, "AICP_EOF_\nAICP_EOF_00000000000000000000000000000000\n"
                               "$HOME `x` \\\nAICP_0 1 2 3\n");
    aicp_exec_result_clear(&r);
}

static void test_put_get(void **state)
{
    struct fixture *f = *state;
    struct aicp_err err = {0};
    char path[128];
    char *data = NULL;
    size_t len = 0;
    struct stat st;
    const char payload[] = "line one\n\0binary\xff\n";

    snprintf(path, sizeof path, "%s/a file", f->dir);
    assert_int_equal(aicp_conn_put(f->c, path, payload, sizeof payload - 1, 0640, NULL, NULL, 0,
                                   &err),
                     0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(aicp_conn_get(f->c, path, &data, &len, 0, &err), 0);
    assert_int_equal(len, sizeof payload - 1);
    assert_memory_equal(data, payload, len);
    free(data);

    /* mode < 0 keeps the existing mode; the temp file is gone. */
    assert_int_equal(aicp_conn_put(f->c, path, "new\n", 4, -1, NULL, NULL, 0, &err), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(aicp_conn_get(f->c, path, &data, &len, 0, &err), 0);
    assert_string_equal(data, "new\n");
    free(data);

    /* A read-only mode still gets its data written. */
    snprintf(path, sizeof path, "%s/ro", f->dir);
    assert_int_equal(aicp_conn_put(f->c, path, "x", 1, 0400, NULL, NULL, 0, &err), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0400);
    assert_int_equal(st.st_size, 1);

    /* A new file with mode < 0 gets 0666 & ~umask. */
    snprintf(path, sizeof path, "%s/new", f->dir);
    assert_int_equal(aicp_conn_put(f->c, path, "", 0, -1, NULL, NULL, 0, &err), 0);
    mode_t um = umask(0);
    umask(um);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0666 & ~um);
    assert_int_equal(st.st_size, 0);

    DIR *d = opendir(f->dir);
    struct dirent *e;
    int files = 0;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        assert_null(strstr(e->d_name, ".aicp-tmp"));
        files++;
    }
    closedir(d);
    assert_int_equal(files, 5); /* . .. "a file" ro new */

    /* A missing directory is an error naming the path and host. */
    snprintf(path, sizeof path, "%s/nodir/x", f->dir);
    assert_int_equal(aicp_conn_put(f->c, path, "x", 1, 0644, NULL, NULL, 0, &err), AICP_EREMOTE);
    assert_non_null(strstr(err.msg, "testhost"));
    assert_non_null(strstr(err.msg, "does not exist"));
}

static void test_get_missing(void **state)
{
    struct fixture *f = *state;
    struct aicp_err err = {0};
    char path[128];
    char *data = (char *)"x";
    size_t len = 1;

    snprintf(path, sizeof path, "%s/missing", f->dir);
    assert_int_equal(aicp_conn_get(f->c, path, &data, &len, 0, &err), AICP_ENOTFOUND);
    assert_null(data);
    assert_non_null(strstr(err.msg, "missing"));
    /* A directory is not "not found". */
    assert_int_equal(aicp_conn_get(f->c, f->dir, &data, &len, 0, &err), AICP_EREMOTE);
}

static void test_round_trips(void **state)
{
    struct fixture *f = *state;
    struct aicp_exec_result r;
    struct aicp_err err = {0};
    unsigned long before = aicp_conn_round_trips(f->c);

    for (int i = 0; i < 50; i++) {
        assert_int_equal(aicp_conn_exec(f->c, "echo $$", NULL, 0, 0, &r, &err), 0);
        aicp_exec_result_clear(&r);
    }
    assert_int_equal(aicp_conn_round_trips(f->c) - before, 50);
}

static void test_batched_reads(void **state)
{
    struct fixture *f = *state;
    struct aicp_exec_result r;
    struct aicp_err err = {0};
    const char *scripts[] = {"echo one", "echo two >&2; exit 3", "cat", "echo one"};
    unsigned long before = aicp_conn_round_trips(f->c);

    assert_int_equal(aicp_conn_record_start(f->c), 0);
    for (int i = 0; i < 4; i++) {
        const char *in = i == 2 ? "data\n" : NULL;
        assert_int_equal(aicp_conn_exec(f->c, scripts[i], in, in ? 5 : 0, 0, &r, &err),
                         AICP_ERECORDED);
    }
    assert_int_equal(aicp_conn_round_trips(f->c) - before, 0);
    assert_int_equal(aicp_conn_record_run(f->c, &err), 0);
    assert_int_equal(aicp_conn_round_trips(f->c) - before, 1);

    /* Identical execs get the recorded replies, each once, in any order. */
    assert_int_equal(aicp_conn_exec(f->c, "cat", "data\n", 5, 0, &r, &err), 0);
    assert_string_equal(r.out, "data\n");
    aicp_exec_result_clear(&r);
    assert_int_equal(aicp_conn_exec(f->c, "echo two >&2; exit 3", NULL, 0, 0, &r, &err), 0);
    assert_int_equal(r.rc, 3);
    assert_string_equal(r.err, "two\n");
    aicp_exec_result_clear(&r);
    assert_int_equal(aicp_conn_exec(f->c, "echo one", NULL, 0, 0, &r, &err), 0);
    assert_string_equal(r.out, "one\n");
    aicp_exec_result_clear(&r);
    assert_int_equal(aicp_conn_round_trips(f->c) - before, 1);

    /* Any other exec goes to the host and drops what is left (the second
     * "echo one"): it may have changed what was read. */
    assert_int_equal(aicp_conn_exec(f->c, "true", NULL, 0, 0, &r, &err), 0);
    aicp_exec_result_clear(&r);
    assert_int_equal(aicp_conn_exec(f->c, "echo one", NULL, 0, 0, &r, &err), 0);
    aicp_exec_result_clear(&r);
    assert_int_equal(aicp_conn_round_trips(f->c) - before, 3);

    /* A reply with different stdin is not handed out. */
    assert_int_equal(aicp_conn_record_start(f->c), 0);
    assert_int_equal(aicp_conn_exec(f->c, "cat", "a", 1, 0, &r, &err), AICP_ERECORDED);
    assert_int_equal(aicp_conn_record_run(f->c, &err), 0);
    assert_int_equal(aicp_conn_exec(f->c, "cat", "b", 1, 0, &r, &err), 0);
    assert_string_equal(r.out, "b");
    aicp_exec_result_clear(&r);
    assert_int_equal(aicp_conn_round_trips(f->c) - before, 5);
}

static void test_become_same_user(void **state)
{
    struct fixture *f = *state;
    struct aicp_exec_result r;
    struct aicp_err err = {0};

    if (geteuid() != 0)
        skip();
    /* root -> root reuses the plain shell: no sudo needed. */
    assert_int_equal(aicp_conn_exec(f->c, "id -u", NULL, 0, 1, &r, &err), 0);
    assert_string_equal(r.out, "0\n");
    aicp_exec_result_clear(&r);
}

static void test_timeout(void **state)
{
    struct aicp_conn_opts o = {.name = "slowhost", .local = 1, .command_timeout = 1};
    struct aicp_conn *c = NULL;
    struct aicp_exec_result r;
    struct aicp_err err = {0};
    double t0;

    (void)state;
    assert_int_equal(aicp_conn_open(&c, &o, &err), 0);
    t0 = aicp_now();
    assert_int_equal(aicp_conn_exec(c, "sleep 30", NULL, 0, 0, &r, &err), AICP_ETIMEOUT);
    assert_true(aicp_now() - t0 < 5);
    assert_non_null(strstr(err.msg, "slowhost"));
    /* The connection is dead now. */
    assert_int_equal(aicp_conn_exec(c, "true", NULL, 0, 0, &r, &err), AICP_EUNREACHABLE);
    t0 = aicp_now();
    aicp_conn_close(c);
    assert_true(aicp_now() - t0 < 5);
}

static void test_shell_dies(void **state)
{
    struct aicp_conn_opts o = {.name = "dyinghost", .local = 1};
    struct aicp_conn *c = NULL;
    struct aicp_exec_result r;
    struct aicp_err err = {0};

    (void)state;
    assert_int_equal(aicp_conn_open(&c, &o, &err), 0);
    /* Kill the connection's shell: in the script's subshell $$ is still
     * the pid of the shell itself. */
    assert_int_equal(aicp_conn_exec(c, "kill -9 $$", NULL, 0, 0, &r, &err), AICP_EUNREACHABLE);
    assert_non_null(strstr(err.msg, "dyinghost"));
    aicp_conn_close(c);
}

static void test_foreign_delimiter_runs(void **state)
{
    struct fixture *f = *state;
    struct aicp_exec_result r;
    struct aicp_err err = {0};
    struct aicp_buf s = AICP_BUF_INIT;
    const char *line = "AICP_EOF_ffffffffffffffffffffffffffffffff";

    /* Scripts cannot learn the per-connection nonce; a line that is the
     * delimiter of some other connection is just text. */
    assert_int_equal(aicp_buf_printf(&s, "cat <<'X'\n%s\nX\n", line), 0);
    assert_int_equal(aicp_conn_exec(f->c, s.data, NULL, 0, 0, &r, &err), 0);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, line));
    aicp_exec_result_clear(&r);
    aicp_buf_free(&s);
}

static void test_parse_common_args(void **state)
{
    char *j = NULL, *p = NULL;
    struct aicp_err err = {0};

    (void)state;
    assert_int_equal(aicp_ssh_parse_common_args("-o ProxyCommand=\"ssh -W %h:%p -q user@bastion\"",
                                                &j, &p, &err),
                     0);
    assert_null(j);
    assert_string_equal(p, "ssh -W %h:%p -q user@bastion");
    free(p);

    assert_int_equal(aicp_ssh_parse_common_args("-o StrictHostKeyChecking=no -o ProxyJump=u@b:2222",
                                                &j, &p, &err),
                     0);
    assert_string_equal(j, "u@b:2222");
    assert_null(p);
    free(j);

    assert_int_equal(aicp_ssh_parse_common_args("-J bastion", &j, &p, &err), 0);
    assert_string_equal(j, "bastion");
    free(j);

    assert_int_equal(aicp_ssh_parse_common_args("-Jbastion2 -C", &j, &p, &err), 0);
    assert_string_equal(j, "bastion2");
    free(j);

    assert_int_equal(aicp_ssh_parse_common_args("-o 'ProxyCommand ssh -W %h:%p gw'", &j, &p, &err),
                     0);
    assert_string_equal(p, "ssh -W %h:%p gw");
    free(p);

    assert_int_equal(aicp_ssh_parse_common_args("-oproxyjump=gw", &j, &p, &err), 0);
    assert_string_equal(j, "gw");
    free(j);

    assert_int_equal(aicp_ssh_parse_common_args("-o ProxyCommand=none", &j, &p, &err), 0);
    assert_null(p);
    assert_int_equal(aicp_ssh_parse_common_args("", &j, &p, &err), 0);
    assert_null(j);
    assert_null(p);
    assert_int_equal(aicp_ssh_parse_common_args(NULL, &j, &p, &err), 0);

    assert_int_equal(aicp_ssh_parse_common_args("-o ProxyCommand=\"ssh -W", &j, &p, &err),
                     AICP_EINVAL);
    assert_non_null(strstr(err.msg, "unterminated"));
    assert_int_equal(aicp_ssh_parse_common_args("-C -o", &j, &p, &err), AICP_EINVAL);
    assert_int_equal(aicp_ssh_parse_common_args("-o ProxyJump=", &j, &p, &err), AICP_EINVAL);
    assert_null(j);
    assert_null(p);
}

static void test_jump_command(void **state)
{
    char *cmd = NULL;
    struct aicp_err err = {0};
    struct aicp_conn_opts o = {.strict_host_key = 1};

    (void)state;
    /* No known_hosts or key given: ssh's defaults, but never a prompt. */
    o.proxy_jump = "bastion";
    assert_int_equal(aicp_ssh_jump_command(&cmd, &o, NULL, &err), 0);
    assert_string_equal(cmd, "ssh -o BatchMode=yes -o ConnectTimeout=10 "
                             "-o StrictHostKeyChecking=yes -W %h:%p 'bastion'");
    free(cmd);
    /* The jump host is checked against aicp's known_hosts with aicp's key,
     * and its ssh's stderr goes to the private file. */
    o.proxy_jump = "ops@gw.example.com:2222";
    o.known_hosts = "/lab/known hosts";
    o.key_file = "/lab/keys/id";
    o.connect_timeout = 7;
    assert_int_equal(aicp_ssh_jump_command(&cmd, &o, "/tmp/.aicp-proxy-x", &err), 0);
    assert_string_equal(cmd, "exec ssh -o BatchMode=yes -o ConnectTimeout=7 "
                             "-o StrictHostKeyChecking=yes "
                             "-o 'UserKnownHostsFile=\"/lab/known hosts\"' -i '/lab/keys/id' "
                             "-W %h:%p -l 'ops' -p 2222 'gw.example.com' 2>'/tmp/.aicp-proxy-x'");
    free(cmd);
    o.accept_new_host_key = 1;
    o.known_hosts = NULL;
    o.key_file = NULL;
    o.connect_timeout = 0;
    o.proxy_jump = "[::1]:22";
    assert_int_equal(aicp_ssh_jump_command(&cmd, &o, NULL, &err), 0);
    assert_string_equal(cmd, "ssh -o BatchMode=yes -o ConnectTimeout=10 "
                             "-o StrictHostKeyChecking=accept-new -W %h:%p -p 22 '::1'");
    free(cmd);
    /* Earlier hops get the same options: each is reached through the
     * previous one's command, not through `ssh -J`. */
    o.strict_host_key = 0;
    o.proxy_jump = "a,b@c:2200";
    assert_int_equal(aicp_ssh_jump_command(&cmd, &o, NULL, &err), 0);
    assert_string_equal(cmd, "ssh -o BatchMode=yes -o ConnectTimeout=10 "
                             "-o StrictHostKeyChecking=no "
                             "-o 'ProxyCommand=ssh -o BatchMode=yes -o ConnectTimeout=10 "
                             "-o StrictHostKeyChecking=no -W '\\''c:2200'\\'' '\\''a'\\''' "
                             "-W %h:%p -l 'b' -p 2200 'c'");
    free(cmd);
    o.proxy_jump = "gw;rm -rf /";
    assert_int_equal(aicp_ssh_jump_command(&cmd, &o, NULL, &err), AICP_EINVAL);
    o.proxy_jump = "-oProxyCommand=x";
    assert_int_equal(aicp_ssh_jump_command(&cmd, &o, NULL, &err), AICP_EINVAL);
    o.proxy_jump = "gw:port";
    assert_int_equal(aicp_ssh_jump_command(&cmd, &o, NULL, &err), AICP_EINVAL);
    o.proxy_jump = "gw,";
    assert_int_equal(aicp_ssh_jump_command(&cmd, &o, NULL, &err), AICP_EINVAL);
    o.proxy_jump = "gw%eth0";
    assert_int_equal(aicp_ssh_jump_command(&cmd, &o, NULL, &err), AICP_EINVAL);
    o.proxy_jump = "";
    assert_int_equal(aicp_ssh_jump_command(&cmd, &o, NULL, &err), AICP_EINVAL);
    /* libssh would expand a % in a path; ssh would end a value at a ". */
    o.proxy_jump = "gw";
    o.known_hosts = "/x/%d/kh";
    assert_int_equal(aicp_ssh_jump_command(&cmd, &o, NULL, &err), AICP_EINVAL);
    assert_null(cmd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exec_rc_out_err, setup, teardown),
        cmocka_unit_test_setup_teardown(test_private_tmp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_stdin, setup, teardown),
        cmocka_unit_test(test_private_files),
        cmocka_unit_test_setup_teardown(test_syntax_error_is_contained, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heredoc_like_script, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batched_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_become_same_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_delimiter_runs, setup, teardown),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_shell_dies),
        cmocka_unit_test(test_parse_common_args),
        cmocka_unit_test(test_jump_command),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
