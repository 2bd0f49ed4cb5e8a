/* Unit tests for the YAML loader: PyYAML-compatible scalar typing, source
 * positions, anchors and merge keys, tags and error reporting. */
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
#include "secret.h"
#include "util.h"
#include "vault.h"
#include "yaml.h"

#define VAULT_DATA AICP_SRCDIR "/tests/data/vault/"
#define CANARY "AICP-CANARY-7f3e9b2c"

static json_t *load(const char *text, struct aicp_srcmap *map)
{
    struct aicp_err err = {0};
    json_t *v = NULL;
    int rc = aicp_yaml_load_string(&v, text, strlen(text), "t.yml", map, &err);
    if (rc != 0)
        fail_msg("load failed: %s", err.msg);
    return v;
}

static void assert_type(json_t *doc, const char *key, json_type type)
{
    json_t *v = json_object_get(doc, key);
    if (v == NULL || json_typeof(v) != type)
        fail_msg("key %s: wrong type %d", key, v ? (int)json_typeof(v) : -1);
}

static void test_scalar_typing(void **state)
{
    (void)state;
    json_t *d = load("a: yes\nb: Off\nc: TRUE\nd: y\ne: ~\nf: null\ng:\nh: 0x1F\ni: 017\nj: 1_000\n"
                     "k: 1:30\nl: 08\nm: 0o17\nn: 1.5\no: 1e3\np: 1.0e+3\nq: .inf\nr: '12'\ns: \"true\"\n"
                     "t: -.5\nu: 0b101\nv: 2001-12-14\nw: 12345678901234567890123\n", NULL);
    assert_true(json_is_true(json_object_get(d, "a")));
    assert_true(json_is_false(json_object_get(d, "b")));
    assert_true(json_is_true(json_object_get(d, "c")));
    assert_string_equal(json_string_value(json_object_get(d, "d")), "y");
    assert_true(json_is_null(json_object_get(d, "e")));
    assert_true(json_is_null(json_object_get(d, "f")));
    assert_true(json_is_null(json_object_get(d, "g")));
    assert_int_equal(json_integer_value(json_object_get(d, "h")), 31);
    assert_int_equal(json_integer_value(json_object_get(d, "i")), 15);
    assert_int_equal(json_integer_value(json_object_get(d, "j")), 1000);
    assert_int_equal(json_integer_value(json_object_get(d, "k")), 90);
    assert_string_equal(json_string_value(json_object_get(d, "l")), "08");
    /* PyYAML (YAML 1.1) knows neither 0o nor exponent-only floats */
    assert_string_equal(json_string_value(json_object_get(d, "m")), "0o17");
    assert_true(json_real_value(json_object_get(d, "n")) == 1.5);
    assert_string_equal(json_string_value(json_object_get(d, "o")), "1e3");
    assert_true(json_real_value(json_object_get(d, "p")) == 1000.0);
    assert_string_equal(json_string_value(json_object_get(d, "q")), ".inf");
    assert_string_equal(json_string_value(json_object_get(d, "r")), "12");
    assert_string_equal(json_string_value(json_object_get(d, "s")), "true");
    assert_string_equal(json_string_value(json_object_get(d, "t")), "-.5");
    assert_int_equal(json_integer_value(json_object_get(d, "u")), 5);
    assert_string_equal(json_string_value(json_object_get(d, "v")), "2001-12-14");
    assert_type(d, "w", JSON_REAL);
    json_decref(d);
}

static void test_keys_and_order(void **state)
{
    (void)state;
    json_t *d = load("z: 1\n1: a\ntrue: b\nnull: c\na: 2\nz: 3\n", NULL);
    const char *want[] = {"z", "1", "true", "null", "a"};
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach(d, k, v) {
        assert_true(i < 5);
        assert_string_equal(k, want[i]);
        i++;
    }
    assert_int_equal(json_integer_value(json_object_get(d, "z")), 3); /* later key wins */
    json_decref(d);
}

static void test_positions_and_tags(void **state)
{
    (void)state;
    struct aicp_srcmap *map = NULL;
    assert_int_equal(aicp_srcmap_new(&map), 0);
    json_t *d = load("top:\n  list:\n    - first\n    - !unsafe '{{ x }}'\n", map);
    json_t *top = json_object_get(d, "top");
    const struct aicp_loc *loc = aicp_srcmap_get(map, top);
    assert_non_null(loc);
    assert_string_equal(loc->file, "t.yml");
    assert_int_equal(loc->line, 2);
    assert_int_equal(loc->col, 3);
    json_t *list = json_object_get(top, "list");
    loc = aicp_srcmap_get(map, json_array_get(list, 1));
    assert_non_null(loc);
    assert_int_equal(loc->line, 4);
    assert_int_equal(loc->col, 7);
    assert_true(aicp_srcmap_unsafe(map, json_array_get(list, 1)));
    assert_false(aicp_srcmap_unsafe(map, json_array_get(list, 0)));
    json_t *mine = json_object();
    assert_int_equal(aicp_srcmap_put(map, mine, "other.yml", 7, 9), 0);
    loc = aicp_srcmap_get(map, mine);
    assert_string_equal(loc->file, "other.yml");
    assert_int_equal(loc->line, 7);
    assert_null(aicp_srcmap_get(map, json_true()));
    json_decref(mine);
    json_decref(d);
    aicp_srcmap_free(map);
}

static void test_anchors_and_merge(void **state)
{
    (void)state;
    json_t *d = load("base: &b {a: 1, b: 2}\nextra: &e {b: 3, c: 4}\n"
                     "one: {<<: *b, b: 9}\nlist: {<<: [*b, *e], d: 5}\nalias: *b\n'<<': quoted\n", NULL);
    json_t *one = json_object_get(d, "one");
    assert_int_equal(json_integer_value(json_object_get(one, "a")), 1);
    assert_int_equal(json_integer_value(json_object_get(one, "b")), 9);
    json_t *list = json_object_get(d, "list");
    assert_int_equal(json_integer_value(json_object_get(list, "b")), 2); /* first map wins */
    assert_int_equal(json_integer_value(json_object_get(list, "c")), 4);
    assert_int_equal(json_integer_value(json_object_get(list, "d")), 5);
    assert_true(json_equal(json_object_get(d, "alias"), json_object_get(d, "base")));
    assert_string_equal(json_string_value(json_object_get(d, "<<")), "quoted");
    json_decref(d);
}

static void expect_error(const char *text, const char *needle)
{
    struct aicp_err err = {0};
    json_t *v = NULL;
    int rc = aicp_yaml_load_string(&v, text, strlen(text), "bad.yml", NULL, &err);
    assert_int_equal(rc, AICP_EINVAL);
    assert_null(v);
    if (strstr(err.msg, needle) == NULL)
        fail_msg("error '%s' lacks '%s'", err.msg, needle);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("a: b: c\n", "bad.yml:1:5:");
    expect_error("a: [1, 2\n", "bad.yml:2:");
    expect_error("a: *nope\n", "undefined alias");
    expect_error("a: !custom x\n", "could not determine a constructor");
    expect_error("? [1]\n: x\n", "unhashable key");
    expect_error("a: {<<: 3}\n", "merging");
    expect_error("a: \"\\xff\xff\"\n", "bad.yml:1:");
    /* billion laughs */
    expect_error("a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                 "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                 "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
                 "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n",
                 "too many alias expansions");
    struct aicp_err err = {0};
    json_t *v = NULL;
    assert_int_equal(aicp_yaml_load_file(&v, "/nonexistent/x.yml", NULL, &err) != 0, 1);
}

static void test_documents(void **state)
{
    (void)state;
    json_t *d = load("", NULL);
    assert_true(json_is_null(d));
    d = load("--- 1\n--- [unclosed\n", NULL);
    assert_int_equal(json_integer_value(d), 1);
    json_decref(d);
    d = load("{\"json\": [1, 2.5, \"x\", null, true]}", NULL);
    assert_int_equal(json_array_size(json_object_get(d, "json")), 5);
    json_decref(d);
}

/* Vaulted files and !vault values are decrypted with the map's vault, and
 * what they held is registered as secret; without a password they are an
 * error naming the place, with nothing of the plaintext in it. */
static void test_vault_values(void **state)
{
    struct aicp_srcmap *map = NULL;
    struct aicp_vault *vault = NULL;
    struct aicp_secrets *secrets = NULL;
    struct aicp_err err = {0};
    json_t *d = NULL;
    char *want = NULL;
    size_t wlen = 0;
    (void)state;

    assert_int_equal(aicp_srcmap_new(&map), 0);
    assert_int_equal(aicp_yaml_load_file(&d, VAULT_DATA "inline.yml", map, &err), AICP_EAUTH);
    assert_non_null(strstr(err.msg, "inline.yml:2:"));
    assert_null(strstr(err.msg, CANARY));
    assert_int_equal(aicp_yaml_load_file(&d, VAULT_DATA "v11.yml", map, &err), AICP_EAUTH);
    assert_non_null(strstr(err.msg, "v11.yml"));

    assert_int_equal(aicp_vault_new(&vault), 0);
    assert_int_equal(aicp_secrets_new(&secrets), 0);
    assert_int_equal(aicp_vault_add_source(vault, NULL, VAULT_DATA "password.txt", &err), 0);
    aicp_srcmap_set_vault(map, vault, secrets);
    assert_int_equal(aicp_yaml_load_file(&d, VAULT_DATA "inline.yml", map, &err), 0);
    assert_int_equal(aicp_read_file(&want, &wlen, VAULT_DATA "inline-plain.txt", &err), 0);
    const char *got = json_string_value(json_object_get(d, "ontap_password"));
    assert_non_null(got);
    assert_memory_equal(got, want, wlen);
    assert_true(aicp_secrets_found(secrets, got, strlen(got)));
    const char *cluster = json_string_value(json_object_get(d, "cluster"));
    assert_false(aicp_secrets_found(secrets, cluster, strlen(cluster))); /* not vaulted */
    assert_non_null(aicp_srcmap_get(map, json_object_get(d, "ontap_password")));
    json_decref(d);
    aicp_free_secret(want);

    size_t before = aicp_secrets_count(secrets);
    assert_int_equal(aicp_yaml_load_file(&d, VAULT_DATA "v11.yml", map, &err), 0);
    assert_true(json_is_object(d));
    assert_true(aicp_secrets_count(secrets) > before);
    const char *k;
    json_t *x;
    json_object_foreach(d, k, x) {
        if (json_is_string(x) && json_string_length(x) >= AICP_SECRET_MIN)
            assert_true(aicp_secrets_found(secrets, json_string_value(x), json_string_length(x)));
    }
    json_decref(d);
    aicp_secrets_free(secrets);
    aicp_vault_free(vault);
    aicp_srcmap_free(map);
}

/* Text that came out of a vault is never quoted by an error, whatever the
 * error: alias and tag names, libyaml's own problems. */
static void expect_secret_error(const char *text, const char *needle)
{
    struct aicp_err err = {0};
    json_t *v = NULL;
    int rc = aicp_yaml_load_secret_string(&v, text, strlen(text), "bad.yml", NULL, &err);
    assert_int_equal(rc, AICP_EINVAL);
    assert_null(v);
    if (strstr(err.msg, needle) == NULL)
        fail_msg("error lacks '%s'", needle);
    assert_null(strstr(err.msg, "CANARY"));
}

static void test_vaulted_errors(void **state)
{
    (void)state;
    expect_secret_error("pw: *" CANARY "-alias\n", "bad.yml:1:5: found undefined alias");
    expect_secret_error("pw: !" CANARY " x\n", "bad.yml:1:5: could not determine a constructor");
    expect_secret_error("a: &" CANARY " [x]\nb: [*" CANARY ",*" CANARY ",*" CANARY "]\n"
                        "? *" CANARY "\n: x\n", "bad.yml:3:3: while constructing a mapping");
    expect_secret_error("pw: [" CANARY "\n", "bad.yml:2:");
    expect_secret_error("pw: \"" CANARY "\n", "bad.yml:");

    /* a whole vaulted file, as a vars file is loaded */
    struct aicp_vault *vault = NULL;
    struct aicp_secrets *secrets = NULL;
    struct aicp_srcmap *map = NULL;
    struct aicp_err err = {0};
    char *vt = NULL, path[64];
    size_t vtlen = 0;
    json_t *d = NULL;
    static const char plain[] = "pw: *" CANARY "-alias\n";
    assert_int_equal(aicp_vault_new(&vault), 0);
    assert_int_equal(aicp_secrets_new(&secrets), 0);
    assert_int_equal(aicp_srcmap_new(&map), 0);
    assert_int_equal(aicp_vault_add_source(vault, NULL, VAULT_DATA "password.txt", &err), 0);
    aicp_srcmap_set_vault(map, vault, secrets);
    assert_int_equal(aicp_vault_encrypt(&vt, &vtlen, vault, NULL, plain, strlen(plain), &err), 0);
    snprintf(path, sizeof(path), "/tmp/aicp-test-yaml-%ld.yml", (long)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(vt, 1, vtlen, f), vtlen);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(aicp_yaml_load_file(&d, path, map, &err), AICP_EINVAL);
    unlink(path);
    assert_non_null(strstr(err.msg, ":1:5: found undefined alias"));
    assert_null(strstr(err.msg, "CANARY"));
    free(vt);
    aicp_srcmap_free(map);
    aicp_secrets_free(secrets);
    aicp_vault_free(vault);
}

/* Loading text that came out of a vault gives no heap block back with the
 * secret in it: libyaml's input buffers, the scalar events, the tokens
 * left when parsing stops at an error. (jansson's blocks are wiped by the
 * allocator main() installs; the test installs it too.) */
static void test_vaulted_memory_wiped(void **state)
{
    (void)state;
    if (!freewatch_available())
        skip();
    static const char ok[] = "pw: " CANARY "\nlist: [x, " CANARY "]\n" CANARY ": k\n";
    static const char bad[] = "pw: *" CANARY "\nlater: [" CANARY ", " CANARY "\n";
    struct aicp_err err = {0};
    json_t *v = NULL;
    aicp_secrets_wipe_json_memory();

    freewatch_start(CANARY);
    assert_int_equal(aicp_yaml_load_secret_string(&v, ok, strlen(ok), "ok.yml", NULL, &err), 0);
    json_decref(v);
    v = NULL;
    assert_int_equal(aicp_yaml_load_secret_string(&v, bad, strlen(bad), "bad.yml", NULL, &err),
                     AICP_EINVAL);
    assert_int_equal(freewatch_stop(), 0);

    /* the same loads of text not from a vault skip the wiping: the watch
     * sees libyaml's blocks, so the test above is not vacuous */
    freewatch_start(CANARY);
    assert_int_equal(aicp_yaml_load_string(&v, ok, strlen(ok), "ok.yml", NULL, &err), 0);
    json_decref(v);
    v = NULL;
    assert_int_equal(aicp_yaml_load_string(&v, bad, strlen(bad), "bad.yml", NULL, &err), AICP_EINVAL);
    assert_true(freewatch_stop() > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalar_typing),    cmocka_unit_test(test_keys_and_order),
        cmocka_unit_test(test_positions_and_tags), cmocka_unit_test(test_vault_values),
        cmocka_unit_test(test_anchors_and_merge),
        cmocka_unit_test(test_errors),           cmocka_unit_test(test_documents),
        cmocka_unit_test(test_vaulted_errors),   cmocka_unit_test(test_vaulted_memory_wiped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
