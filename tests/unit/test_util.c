/* Unit tests for agent/util.c and agent/err.c: the buffer, shell quoting,
 * whole-file reads and the error record. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "err.h"
#include "freewatch.h"
#include "util.h"

#define CANARY "AICP-CANARY-7f3e9b2c"

/* A buffer that held a secret gives no block back to the allocator with
 * the secret in it: not when it grows (the old block), not when it is
 * freed after being emptied for reuse (len 0, bytes still there). */
static void test_buf_wipes_what_it_frees(void **state)
{
    (void)state;
    if (!freewatch_available())
        skip();
    struct aicp_buf b = AICP_BUF_INIT;
    freewatch_start(CANARY);
    assert_int_equal(aicp_buf_puts(&b, "pw=" CANARY), 0);
    for (int i = 0; i < 200; i++) /* grows 64 -> 128 -> ... -> 4096 */
        assert_int_equal(aicp_buf_puts(&b, " and some more text"), 0);
    assert_memory_equal(b.data, "pw=" CANARY " and", 27);
    b.len = 0;
    b.data[0] = '\0';
    aicp_buf_free(&b);
    assert_int_equal(freewatch_stop(), 0);
    /* a whole-file read leaves no copy in the blocks its buffer outgrew
     * (stdio's own buffer, freed inside libc, is out of the watch's sight:
     * aicp_read_file reads unbuffered) */
    char path[] = "/tmp/aicp-test-util-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    for (int i = 0; i < 10000; i++) /* several 64 KiB chunks: the buffer grows */
        assert_int_equal(write(fd, "pw=" CANARY "\n", 24), 24);
    close(fd);
    char *text = NULL;
    size_t len = 0;
    freewatch_start(CANARY);
    assert_int_equal(aicp_read_file(&text, &len, path, NULL), 0);
    assert_int_equal(freewatch_stop(), 0);
    assert_int_equal(len, 240000);
    unlink(path);
    aicp_free_secret(text);
    /* the watch itself works: an unwiped block is counted */
    char *p = strdup("x" CANARY);
    assert_non_null(p);
    freewatch_start(CANARY);
    free(p);
    assert_int_equal(freewatch_stop(), 1);
}

static void test_buf_grows_and_stays_terminated(void **state)
{
    (void)state;
    struct aicp_buf b = AICP_BUF_INIT;
    for (int i = 0; i < 1000; i++)
        assert_int_equal(aicp_buf_printf(&b, "%d,", i % 10), 0);
    assert_int_equal(b.len, 2000);
    assert_int_equal(strlen(b.data), 2000);
    assert_memory_equal(b.data, "0,1,2,", 6);
    assert_int_equal(aicp_buf_append(&b, "x\0y", 3), 0);
    assert_int_equal(b.len, 2003);
    assert_int_equal(b.data[2003], '\0');
    char *s = aicp_buf_steal(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    free(s);
    /* An empty buffer still yields a string. */
    s = aicp_buf_steal(&b);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
}

static void test_shquote(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain", "'plain'"},
        {"", "''"},
        {"it's", "'it'\\''s'"},
        {"$(rm -rf /) `x` \"q\"", "'$(rm -rf /) `x` \"q\"'"},
        {"a\nb", "'a\nb'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct aicp_buf b = AICP_BUF_INIT;
        assert_int_equal(aicp_buf_shquote(&b, cases[i].in), 0);
        assert_string_equal(b.data, cases[i].out);
        aicp_buf_free(&b);
    }
}

static void test_shquote_round_trip_through_sh(void **state)
{
    (void)state;
    const char *nasty = "a'b\"c$d`e\\f g*h";
    struct aicp_buf cmd = AICP_BUF_INIT;
    aicp_buf_puts(&cmd, "printf %s ");
    aicp_buf_shquote(&cmd, nasty);
    FILE *p = popen(cmd.data, "r");
    assert_non_null(p);
    char out[128] = "";
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    assert_string_equal(out, nasty);
    aicp_buf_free(&cmd);
}

static void test_read_file(void **state)
{
    (void)state;
    char path[] = "/tmp/aicp-test-util-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "one\0two", 7), 7);
    close(fd);
    char *data = NULL;
    size_t len = 0;
    struct aicp_err err = {0};
    assert_int_equal(aicp_read_file(&data, &len, path, &err), 0);
    assert_int_equal(len, 7);
    assert_memory_equal(data, "one\0two", 7);
    assert_int_equal(data[7], '\0');
    free(data);
    unlink(path);
    assert_int_equal(aicp_read_file(&data, &len, path, &err), AICP_EIO);
    assert_null(data);
    assert_non_null(strstr(err.msg, path));
}

static void test_err(void **state)
{
    (void)state;
    struct aicp_err err = {0};
    assert_int_equal(aicp_err_set(&err, AICP_EINVAL, "bad %s", "thing"), AICP_EINVAL);
    aicp_err_prefix(&err, "%s:%d:%d", "site.yml", 3, 5);
    assert_string_equal(err.msg, "site.yml:3:5: bad thing");
    assert_int_equal(err.code, AICP_EINVAL);
    /* A long prefix never overflows the record. */
    char big[2000];
    memset(big, 'p', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    aicp_err_prefix(&err, "%s", big);
    assert_true(strlen(err.msg) < sizeof(err.msg));
    assert_int_equal(aicp_err_set(NULL, AICP_EIO, "ignored"), AICP_EIO);
    assert_int_equal(aicp_err_exit_status(AICP_OK), 0);
    assert_int_equal(aicp_err_exit_status(AICP_EINVAL), 65);
    assert_int_equal(aicp_err_exit_status(AICP_EUNDEF), 65);
    assert_int_equal(aicp_err_exit_status(AICP_EUSAGE), 64);
    assert_int_equal(aicp_err_exit_status(AICP_EUNREACHABLE), 1);
    assert_string_equal(aicp_strerror(AICP_EHOSTKEY), "host key verification failed");
}

static void test_startswith_and_secret(void **state)
{
    (void)state;
    assert_true(aicp_startswith("ansible_host", "ansible_"));
    assert_false(aicp_startswith("ansibl", "ansible_"));
    char *s = aicp_strdup("hunter2");
    aicp_free_secret(s);
    aicp_free_secret(NULL);
    struct aicp_buf b = AICP_BUF_INIT;
    aicp_buf_puts(&b, "token");
    aicp_buf_free_secret(&b);
    assert_null(b.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_grows_and_stays_terminated),
        cmocka_unit_test(test_buf_wipes_what_it_frees),
        cmocka_unit_test(test_shquote),
        cmocka_unit_test(test_shquote_round_trip_through_sh),
        cmocka_unit_test(test_read_file),
        cmocka_unit_test(test_err),
        cmocka_unit_test(test_startswith_and_secret),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
