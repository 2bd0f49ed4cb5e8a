/* Unit tests for the run's secret set and its masking (agent/secret.c). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "secret.h"
#include "util.h"

#define CANARY "AICP-CANARY-7f3e9b2c"

static void t_mask_basic(void **state)
{
    struct aicp_secrets *s = NULL;
    (void)state;
    assert_int_equal(aicp_secrets_new(&s), 0);
    assert_int_equal(aicp_secrets_add(s, CANARY, strlen(CANARY)), 0);
    char *m = aicp_secrets_mask(s, "password=" CANARY " and again " CANARY "!");
    assert_non_null(m);
    assert_string_equal(m, "password=" AICP_SECRET_MASK " and again " AICP_SECRET_MASK "!");
    free(m);
    m = aicp_secrets_mask(s, "nothing here");
    assert_string_equal(m, "nothing here");
    free(m);
    m = aicp_secrets_mask(s, "");
    assert_string_equal(m, "");
    free(m);
    assert_true(aicp_secrets_found(s, "x" CANARY, strlen(CANARY) + 1));
    assert_false(aicp_secrets_found(s, "AICP-CANARY", 11));
    aicp_secrets_free(s);
}

static void t_short_and_duplicates(void **state)
{
    struct aicp_secrets *s = NULL;
    (void)state;
    assert_int_equal(aicp_secrets_new(&s), 0);
    aicp_secrets_add(s, "ab", 2); /* below AICP_SECRET_MIN: not registered */
    aicp_secrets_add(s, "", 0);
    aicp_secrets_add(s, NULL, 0);
    assert_int_equal((int)aicp_secrets_count(s), 0);
    aicp_secrets_add(s, "abc", 3);
    aicp_secrets_add(s, "abc", 3);
    assert_int_equal((int)aicp_secrets_count(s), 1);
    char *m = aicp_secrets_mask(s, "ab abc");
    assert_string_equal(m, "ab " AICP_SECRET_MASK);
    free(m);
    aicp_secrets_free(s);
    /* NULL set: plain copies, nothing found. */
    m = aicp_secrets_mask(NULL, "abc");
    assert_string_equal(m, "abc");
    free(m);
    assert_false(aicp_secrets_found(NULL, "abc", 3));
    assert_int_equal(aicp_secrets_add(NULL, "abc", 3), 0);
}

/* A secret that contains another is masked whole, whatever the order they
 * were registered in; overlapping ones leave no fragment behind. */
static void t_longest_first(void **state)
{
    struct aicp_secrets *s = NULL;
    (void)state;
    assert_int_equal(aicp_secrets_new(&s), 0);
    aicp_secrets_add(s, "pass", 4);
    aicp_secrets_add(s, "password123", 11);
    char *m = aicp_secrets_mask(s, "[password123] [pass]");
    assert_string_equal(m, "[" AICP_SECRET_MASK "] [" AICP_SECRET_MASK "]");
    free(m);
    aicp_secrets_free(s);
}

static void t_mask_buf(void **state)
{
    struct aicp_secrets *s = NULL;
    struct aicp_buf b = AICP_BUF_INIT;
    (void)state;
    assert_int_equal(aicp_secrets_new(&s), 0);
    aicp_secrets_add(s, CANARY, strlen(CANARY));
    aicp_buf_puts(&b, "line 1\ntoken: " CANARY "\n");
    assert_int_equal(aicp_secrets_mask_buf(s, &b), 0);
    assert_string_equal(b.data, "line 1\ntoken: " AICP_SECRET_MASK "\n");
    assert_int_equal((int)b.len, (int)strlen(b.data));
    aicp_buf_free(&b);
    aicp_secrets_free(s);
}

/* Values inside JSON are masked before escaping could hide them, and keys
 * are masked too; registering JSON takes values, never keys. */
static void t_json(void **state)
{
    struct aicp_secrets *s = NULL;
    (void)state;
    assert_int_equal(aicp_secrets_new(&s), 0);
    json_t *vault_doc = json_pack("{s:s, s:i, s:b, s:[s]}", "ontap_password", "p\"w-" CANARY,
                                  "port", 8443, "enabled", 1, "tokens", "tok-" CANARY);
    assert_int_equal(aicp_secrets_add_json(s, vault_doc), 0);
    assert_int_equal((int)aicp_secrets_count(s), 3); /* two strings and 8443 */
    json_t *result = json_pack("{s:s, s:{s:s}, s:[s, i]}", "msg", "pw is p\"w-" CANARY, "nested",
                               "tok-" CANARY, "ontap_password", "list", "fine", 8443);
    json_t *m = aicp_secrets_mask_json(s, result);
    assert_non_null(m);
    char *dump = json_dumps(m, JSON_SORT_KEYS | JSON_COMPACT);
    assert_non_null(dump);
    assert_null(strstr(dump, "CANARY"));
    assert_non_null(strstr(dump, "\"msg\":\"pw is " AICP_SECRET_MASK "\""));
    assert_non_null(strstr(dump, "\"" AICP_SECRET_MASK "\":\"ontap_password\""));
    assert_non_null(strstr(dump, "\"ontap_password\"")); /* a key is not a secret */
    free(dump);
    json_decref(m);
    json_decref(result);
    json_decref(vault_doc);
    aicp_secrets_free(s);
}

/* jansson's frees go through the wiping free once asked; what matters is
 * that JSON keeps working with it (the wipe itself is memory we may no
 * longer read). */
/* A secret cut into pieces too short to mask one by one (`pw | list`), or
 * a multi-line one split into lines: the list that holds the pieces is
 * masked whole; lists whose items hold it, or do not hold it together,
 * are masked item by item. */
static void t_json_pieces(void **state)
{
    struct aicp_secrets *s = NULL;
    (void)state;
    assert_int_equal(aicp_secrets_new(&s), 0);
    assert_int_equal(aicp_secrets_add(s, CANARY, strlen(CANARY)), 0);
    assert_int_equal(aicp_secrets_add(s, "key-line-1\nkey-line-2", 21), 0);
    json_t *chars = json_array();
    for (const char *p = CANARY; *p; p++)
        json_array_append_new(chars, json_stringn(p, 1));
    json_t *v = json_pack("{s:o, s:[s, s, s], s:[s, s], s:[s, i]}", "chars", chars, "lines",
                          "begin", "key-line-1", "key-line-2", "whole", "a " CANARY, "b",
                          "plain", "AICP", 7);
    json_t *m = aicp_secrets_mask_json(s, v);
    assert_non_null(m);
    char *dump = json_dumps(m, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(dump, "{\"chars\":\"" AICP_SECRET_MASK "\",\"lines\":\"" AICP_SECRET_MASK
                              "\",\"plain\":[\"AICP\",7],\"whole\":[\"a " AICP_SECRET_MASK
                              "\",\"b\"]}");
    free(dump);
    json_decref(m);
    json_decref(v);
    aicp_secrets_free(s);
}

static void t_wipe_allocator(void **state)
{
    (void)state;
    aicp_secrets_wipe_json_memory();
    for (int i = 0; i < 1000; i++) {
        json_t *v = json_pack("{s:s, s:[i, s]}", "k", CANARY, "a", i, "x");
        assert_non_null(v);
        json_decref(v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_mask_basic),      cmocka_unit_test(t_short_and_duplicates),
        cmocka_unit_test(t_longest_first),   cmocka_unit_test(t_mask_buf),
        cmocka_unit_test(t_json),            cmocka_unit_test(t_wipe_allocator),
        cmocka_unit_test(t_json_pieces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
