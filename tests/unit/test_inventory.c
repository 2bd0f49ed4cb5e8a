/* Unit tests for the inventory: INI and YAML parsing, ranges, children,
 * variable precedence, group_vars/host_vars, patterns, magic variables,
 * errors, and the golden --list files in tests/data/inventory/. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <ftw.h>
#include <unistd.h>
#include <cmocka.h>

#include "err.h"
#include "inventory.h"
#include "secret.h"
#include "util.h"
#include "vault.h"
#include "yaml.h"

#define CANARY "AICP-CANARY-7f3e9b2c"
#define VAULT_PW AICP_SRCDIR "/tests/data/vault/password.txt"

static char tmpdir[64];

static void write_file(const char *rel, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
    /* create parent directories */
    for (char *p = path + strlen(tmpdir) + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static struct aicp_inventory *load_text(const char *name, const char *text)
{
    struct aicp_inventory *inv = NULL;
    struct aicp_err err = {0};
    char path[256];
    write_file(name, text);
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    assert_int_equal(aicp_inventory_new(&inv, NULL), 0);
    if (aicp_inventory_load(inv, path, &err) != 0)
        fail_msg("load %s: %s", name, err.msg);
    return inv;
}

static void expect_load_error(const char *name, const char *text, const char *needle)
{
    struct aicp_inventory *inv = NULL;
    struct aicp_err err = {0};
    char path[256];
    write_file(name, text);
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    assert_int_equal(aicp_inventory_new(&inv, NULL), 0);
    assert_int_equal(aicp_inventory_load(inv, path, &err), AICP_EINVAL);
    if (strstr(err.msg, needle) == NULL)
        fail_msg("error '%s' lacks '%s'", err.msg, needle);
    aicp_inventory_free(inv);
}

static json_t *hvars(struct aicp_inventory *inv, const char *host)
{
    json_t *v = NULL;
    struct aicp_err err = {0};
    if (aicp_inventory_host_vars(&v, inv, host, &err) != 0)
        fail_msg("host vars %s: %s", host, err.msg);
    return v;
}

static void assert_match(struct aicp_inventory *inv, const char *pattern, const char *want)
{
    json_t *m = NULL;
    struct aicp_err err = {0};
    if (aicp_inventory_match(&m, inv, pattern, &err) != 0)
        fail_msg("match %s: %s", pattern, err.msg);
    char *got = json_dumps(m, JSON_COMPACT);
    if (strcmp(got, want) != 0)
        fail_msg("pattern %s: got %s want %s", pattern, got, want);
    free(got);
    json_decref(m);
}

static void test_ini_basics(void **state)
{
    (void)state;
    struct aicp_inventory *inv = load_text("basic.ini", "top1\n"
                                                        "[web]\n"
                                                        "web[01:03] ansible_host=10.0.0.1 x='1' y=\"a b\" z=[1,2]\n"
                                                        "db1:2222 # comment\n"
                                                        "[db]\ndb1 a=1\n; comment\n"
                                                        "[dc:children]\nweb\ndb\n"
                                                        "[all:vars]\nv='quoted' # c\nb=True\n"
                                                        "[web:vars]\nv=2\nansible_group_priority=5\n");
    assert_int_equal(aicp_inventory_host_count(inv), 5);
    assert_string_equal(aicp_inventory_host_name(inv, 0), "top1");
    assert_string_equal(aicp_inventory_host_name(inv, 1), "web01");
    assert_true(aicp_inventory_has_host(inv, "db1"));
    json_t *v = hvars(inv, "web02");
    assert_int_equal(json_integer_value(json_object_get(v, "x")), 1); /* shlex drops the quotes */
    assert_string_equal(json_string_value(json_object_get(v, "y")), "a b");
    assert_int_equal(json_array_size(json_object_get(v, "z")), 2);
    assert_int_equal(json_integer_value(json_object_get(v, "v")), 2);
    assert_true(json_is_true(json_object_get(v, "b")));
    assert_null(json_object_get(v, "ansible_group_priority"));
    assert_string_equal(json_string_value(json_object_get(v, "inventory_hostname")), "web02");
    json_t *gn = json_object_get(v, "group_names");
    assert_int_equal(json_array_size(gn), 2);
    assert_string_equal(json_string_value(json_array_get(gn, 0)), "dc");
    assert_string_equal(json_string_value(json_array_get(gn, 1)), "web");
    json_t *groups = json_object_get(v, "groups");
    assert_int_equal(json_array_size(json_object_get(groups, "all")), 5);
    assert_int_equal(json_array_size(json_object_get(groups, "ungrouped")), 1);
    json_decref(v);
    v = hvars(inv, "db1");
    assert_int_equal(json_integer_value(json_object_get(v, "ansible_port")), 2222);
    json_decref(v);
    v = hvars(inv, "top1");
    assert_string_equal(json_string_value(json_object_get(v, "v")), "quoted");
    assert_string_equal(json_string_value(json_array_get(json_object_get(v, "group_names"), 0)), "ungrouped");
    json_decref(v);
    assert_int_equal(aicp_inventory_group_find(inv, "dc") >= 0, 1);
    json_t *kids = aicp_inventory_group_children(inv, (size_t)aicp_inventory_group_find(inv, "dc"));
    assert_int_equal(json_array_size(kids), 2);
    json_decref(kids);
    aicp_inventory_free(inv);
}

static void test_ranges(void **state)
{
    (void)state;
    struct aicp_inventory *inv = load_text("ranges.ini", "[a]\nn[1:10:4]\nx[a:c]-[01:02].lab\n[::1]:22\n"
                                                         "host.example.com:8022\n");
    const char *want[] = {"n1", "n5", "n9", "xa-01.lab", "xa-02.lab", "xb-01.lab", "xb-02.lab",
                          "xc-01.lab", "xc-02.lab", "::1", "host.example.com"};
    assert_int_equal(aicp_inventory_host_count(inv), 11);
    for (size_t i = 0; i < 11; i++)
        assert_string_equal(aicp_inventory_host_name(inv, i), want[i]);
    json_t *v = hvars(inv, "host.example.com");
    assert_int_equal(json_integer_value(json_object_get(v, "ansible_port")), 8022);
    assert_string_equal(json_string_value(json_object_get(v, "inventory_hostname_short")), "host");
    json_decref(v);
    aicp_inventory_free(inv);
}

static void test_yaml_inventory(void **state)
{
    (void)state;
    struct aicp_inventory *inv = load_text("inv.yml", "all:\n  vars: {level: all, a: 1}\n  hosts:\n    j1:\n"
                                                      "  children:\n    kube:\n      hosts:\n        k[1:2]: {level: host}\n"
                                                      "      vars: {level: kube, ansible_group_priority: 3}\n"
                                                      "    prod:\n      children: {kube: , other: {hosts: {o1: }}}\n"
                                                      "      vars: {level: prod, b: 2}\n");
    json_t *v = hvars(inv, "k1");
    assert_string_equal(json_string_value(json_object_get(v, "level")), "host");
    assert_int_equal(json_integer_value(json_object_get(v, "b")), 2);
    json_decref(v);
    v = hvars(inv, "o1");
    assert_string_equal(json_string_value(json_object_get(v, "level")), "prod");
    json_decref(v);
    assert_match(inv, "all", "[\"j1\",\"k1\",\"k2\",\"o1\"]");
    assert_match(inv, "ungrouped", "[\"j1\"]");
    aicp_inventory_free(inv);
}

static void test_precedence_dirs(void **state)
{
    (void)state;
    write_file("pd/inv/hosts", "[gpu]\ndgx1 lvl=inline\ndgx2\n[compute:children]\ngpu\n"
                               "[compute:vars]\nlvl=inv_compute\nonly_inv=1\n");
    write_file("pd/inv/group_vars/all.yml", "lvl: gv_all\nall_only: 1\n");
    write_file("pd/inv/group_vars/compute/a.yml", "lvl: gv_compute\n");
    write_file("pd/inv/group_vars/gpu.yaml", "lvl: gv_gpu\n");
    write_file("pd/inv/host_vars/dgx1", "hv: inventory\n");
    write_file("pd/play/group_vars/gpu.json", "{\"lvl\": \"play_gpu\"}\n");
    write_file("pd/play/host_vars/dgx1.yml", "hv: playbook\n");
    struct aicp_inventory *inv = NULL;
    struct aicp_err err = {0};
    char path[256];
    assert_int_equal(aicp_inventory_new(&inv, NULL), 0);
    snprintf(path, sizeof(path), "%s/pd/inv", tmpdir);
    assert_int_equal(aicp_inventory_load(inv, path, &err), 0);
    json_t *v = hvars(inv, "dgx2");
    assert_string_equal(json_string_value(json_object_get(v, "lvl")), "gv_gpu");
    assert_int_equal(json_integer_value(json_object_get(v, "all_only")), 1);
    assert_int_equal(json_integer_value(json_object_get(v, "only_inv")), 1);
    json_decref(v);
    v = hvars(inv, "dgx1");
    assert_string_equal(json_string_value(json_object_get(v, "lvl")), "inline");
    assert_string_equal(json_string_value(json_object_get(v, "hv")), "inventory");
    json_decref(v);
    snprintf(path, sizeof(path), "%s/pd/play", tmpdir);
    assert_int_equal(aicp_inventory_add_vars_dir(inv, path, &err), 0);
    v = hvars(inv, "dgx2");
    assert_string_equal(json_string_value(json_object_get(v, "lvl")), "play_gpu");
    json_decref(v);
    v = hvars(inv, "dgx1");
    assert_string_equal(json_string_value(json_object_get(v, "hv")), "playbook");
    json_decref(v);
    aicp_inventory_free(inv);
}

static void test_priority(void **state)
{
    (void)state;
    struct aicp_inventory *inv = load_text("prio.ini", "[a]\nh\n[b]\nh\n[a:vars]\nx=a\nansible_group_priority=10\n"
                                                       "[b:vars]\nx=b\n");
    json_t *v = hvars(inv, "h");
    assert_string_equal(json_string_value(json_object_get(v, "x")), "a");
    json_decref(v);
    aicp_inventory_free(inv);
}

static void test_patterns(void **state)
{
    (void)state;
    struct aicp_inventory *inv = load_text("pat.ini", "[web]\nw1\nw2\nw3\n[db]\nd1\nw2\n[prod:children]\nweb\n");
    assert_match(inv, "all", "[\"d1\",\"w2\",\"w1\",\"w3\"]"); /* Ansible order */
    assert_match(inv, "*", "[\"d1\",\"w2\",\"w1\",\"w3\"]");
    assert_match(inv, "web:&db", "[\"w2\"]");
    assert_match(inv, "web:!db", "[\"w1\",\"w3\"]");
    assert_match(inv, "db,w1", "[\"d1\",\"w2\",\"w1\"]");
    assert_match(inv, "w*", "[\"w1\",\"w2\",\"w3\"]");
    assert_match(inv, "~w[12]", "[\"w1\",\"w2\"]");
    assert_match(inv, "web[0]", "[\"w1\"]");
    assert_match(inv, "web[-1]", "[\"w3\"]");
    assert_match(inv, "web[0:1]", "[\"w1\",\"w2\"]");
    assert_match(inv, "web[1:]", "[\"w2\",\"w3\"]");
    assert_match(inv, "prod", "[\"w1\",\"w2\",\"w3\"]");
    assert_match(inv, "nothing", "[]");
    assert_match(inv, "!db", "[\"w1\",\"w3\"]");
    json_t *m = NULL;
    struct aicp_err err = {0};
    assert_int_equal(aicp_inventory_match(&m, inv, "web[7]", &err), AICP_EINVAL);
    aicp_inventory_free(inv);
}

static void test_add_host_and_list(void **state)
{
    (void)state;
    struct aicp_inventory *inv = load_text("add.ini", "[web]\nw1\n");
    struct aicp_err err = {0};
    assert_int_equal(aicp_inventory_add_host(inv, "new1", "fresh", &err), 0);
    assert_match(inv, "fresh", "[\"new1\"]");
    json_t *list = NULL;
    assert_int_equal(aicp_inventory_list_json(&list, inv, &err), 0);
    assert_non_null(json_object_get(list, "fresh"));
    assert_non_null(json_object_get(json_object_get(list, "_meta"), "hostvars"));
    json_decref(list);
    char *graph = NULL;
    assert_int_equal(aicp_inventory_graph(&graph, inv, "all", 0, &err), 0);
    assert_string_equal(graph, "@all:\n  |--@ungrouped:\n  |--@web:\n  |  |--w1\n  |--@fresh:\n  |  |--new1\n");
    free(graph);
    assert_int_equal(aicp_inventory_graph(&graph, inv, "nope", 0, &err), AICP_EUSAGE);
    aicp_inventory_free(inv);
}

static void test_errors(void **state)
{
    (void)state;
    expect_load_error("e1.ini", "[web]\nh1\n[web:oops]\n", "e1.ini:3: Section [web:oops] has unknown type");
    expect_load_error("e2.ini", "[a:children]\nmissing\n", "e2.ini:2: Section [a:children] includes undefined group");
    expect_load_error("e3.ini", "[nov:vars]\nx=1\n", "e3.ini:1: Section [nov:vars] not valid");
    expect_load_error("e4.ini", "[g]\nh1 novalue\n", "e4.ini:2: Expected key=value");
    expect_load_error("e5.ini", "[g]\nh1 x=\"open\n", "e5.ini:2:");
    expect_load_error("e6.ini", "[bad group]\n", "e6.ini:1: Invalid section entry");
    expect_load_error("e7.ini", "[a:children]\nb\n[b:children]\na\n", "recursive dependency loop");
    expect_load_error("e8.ini", "h[0:9999999]\n", "e8.ini:1:");
    expect_load_error("e9.yml", "all:\n  hosts: [a, b]\n", "Invalid \"hosts\" entry");
    expect_load_error("e10.yml", "all: [\n", "e10.yml:2:");
    struct aicp_inventory *inv = NULL;
    struct aicp_err err = {0};
    assert_int_equal(aicp_inventory_new(&inv, NULL), 0);
    assert_int_equal(aicp_inventory_load(inv, "/nonexistent/inventory.ini", &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "/nonexistent/inventory.ini"));
    aicp_inventory_free(inv);
}

/* Writes plain, encrypted with the test password, as tmpdir/name. */
static void write_vaulted(const struct aicp_vault *v, const char *name, const char *plain)
{
    struct aicp_err err = {0};
    char *vt = NULL;
    size_t vtlen = 0;
    assert_int_equal(aicp_vault_encrypt(&vt, &vtlen, v, NULL, plain, strlen(plain), &err), 0);
    write_file(name, vt);
    free(vt);
}

/* A vaulted INI inventory: every value is a secret, as in a vaulted YAML
 * one, and no error quotes any of its text. */
static void test_vaulted_ini(void **state)
{
    (void)state;
    struct aicp_vault *v = NULL;
    struct aicp_secrets *secrets = NULL;
    struct aicp_srcmap *map = NULL;
    struct aicp_inventory *inv = NULL;
    struct aicp_err err = {0};
    json_t *hv = NULL;
    char path[256];

    assert_int_equal(aicp_vault_new(&v), 0);
    assert_int_equal(aicp_vault_add_source(v, NULL, VAULT_PW, &err), 0);
    assert_int_equal(aicp_secrets_new(&secrets), 0);
    assert_int_equal(aicp_srcmap_new(&map), 0);
    aicp_srcmap_set_vault(map, v, secrets);

    write_vaulted(v, "vini",
                  "db1 db_password=" CANARY "-ini ansible_port=2222\n"
                  "[dbs]\ndb1\n[dbs:vars]\ngroup_token=" CANARY "-group\n");
    snprintf(path, sizeof(path), "%s/vini", tmpdir);
    assert_int_equal(aicp_inventory_new(&inv, map), 0);
    if (aicp_inventory_load(inv, path, &err) != 0)
        fail_msg("load vini: %s", err.msg);
    assert_int_equal(aicp_inventory_host_vars(&hv, inv, "db1", &err), 0);
    const char *pw = json_string_value(json_object_get(hv, "db_password"));
    assert_non_null(pw);
    assert_true(aicp_secrets_found(secrets, pw, strlen(pw)));
    const char *tok = json_string_value(json_object_get(hv, "group_token"));
    assert_non_null(tok);
    assert_true(aicp_secrets_found(secrets, tok, strlen(tok)));
    assert_true(aicp_secrets_found(secrets, "2222", 4)); /* numbers too, as text */
    assert_false(aicp_secrets_found(secrets, "db1", 3)); /* names are not values */
    json_decref(hv);
    aicp_inventory_free(inv);

    /* the same text not vaulted registers nothing */
    size_t before = aicp_secrets_count(secrets);
    write_file("pini", "db2 other_password=" CANARY "-plain\n");
    snprintf(path, sizeof(path), "%s/pini", tmpdir);
    assert_int_equal(aicp_inventory_new(&inv, map), 0);
    assert_int_equal(aicp_inventory_load(inv, path, &err), 0);
    assert_int_equal(aicp_secrets_count(secrets), before);
    aicp_inventory_free(inv);

    /* errors: the place and what, never the text */
    static const char *const bad[][2] = {
        {"db1 x=\"" CANARY "\n", "vbad1:1: Error parsing host definition: No closing quotation"},
        {"[g]\n" CANARY "-host novalue\n", "vbad2:2: Expected key=value host variable assignment"},
        {"[g:vars]\n" CANARY "\n", "vbad3:2: Expected key=value"},
        {"[" CANARY " x]\n", "vbad4:1: invalid inventory entry"},
        {"[" CANARY ":children]\nmissing\n", "vbad5:2: a [group:children] section names"},
        {"pw: *" CANARY "\n", "vbad6:1:"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char name[16];
        snprintf(name, sizeof(name), "vbad%zu", i + 1);
        write_vaulted(v, name, bad[i][0]);
        snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
        assert_int_equal(aicp_inventory_new(&inv, map), 0);
        memset(&err, 0, sizeof(err));
        assert_int_not_equal(aicp_inventory_load(inv, path, &err), 0);
        if (strstr(err.msg, bad[i][1]) == NULL)
            fail_msg("case %zu: error lacks '%s'", i + 1, bad[i][1]);
        assert_null(strstr(err.msg, "CANARY"));
        aicp_inventory_free(inv);
    }
    /* a .yml one: the YAML error, without the text either */
    write_vaulted(v, "vbad.yml", "all:\n  hosts: *" CANARY "\n");
    snprintf(path, sizeof(path), "%s/vbad.yml", tmpdir);
    assert_int_equal(aicp_inventory_new(&inv, map), 0);
    assert_int_equal(aicp_inventory_load(inv, path, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "vbad.yml:2:10: found undefined alias"));
    assert_null(strstr(err.msg, "CANARY"));
    aicp_inventory_free(inv);

    aicp_srcmap_free(map);
    aicp_secrets_free(secrets);
    aicp_vault_free(v);
}

static void test_py_literal(void **state)
{
    (void)state;
    struct {
        const char *in, *json;
    } cases[] = {
        {"1", "1"},           {"-2", "-2"},         {"0x1f", "31"},         {"010", "\"010\""},
        {"1.5", "1.5"},       {"'a'", "\"a\""},     {"\"a\\nb\"", "\"a\\nb\""}, {"True", "true"},
        {"None", "null"},     {"[1, 'x']", "[1,\"x\"]"}, {"(1,)", "[1]"},   {"{'a': 1}", "{\"a\":1}"},
        {"yes", "\"yes\""},   {"1 # c", "1"},       {"a b", "\"a b\""},     {"1_000", "1000"},
        {"'a' 'b'", "\"ab\""}, {"--1", "\"--1\""},  {"[1,", "\"[1,\""},     {"{1: 2}", "{\"1\":2}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *v = aicp_inventory_py_literal(cases[i].in);
        char *got = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (strcmp(got, cases[i].json) != 0)
            fail_msg("literal %s: got %s want %s", cases[i].in, got, cases[i].json);
        free(got);
        json_decref(v);
    }
}

/* Golden files: tests/data/inventory/X and X.expected.json side by side. */
static void test_golden(void **state)
{
    (void)state;
    static const char *const names[] = {"deepops.ini", "ranges.ini", "cluster.yml", "vars_dir", "hostlist_like.ini"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char src[512], exp[600];
        snprintf(src, sizeof(src), "%s/tests/data/inventory/%s", AICP_SRCDIR, names[i]);
        snprintf(exp, sizeof(exp), "%s.expected.json", src);
        struct aicp_inventory *inv = NULL;
        struct aicp_err err = {0};
        json_error_t jerr;
        json_t *want = json_load_file(exp, 0, &jerr), *got = NULL;
        assert_non_null(want);
        assert_int_equal(aicp_inventory_new(&inv, NULL), 0);
        if (aicp_inventory_load(inv, src, &err) != 0)
            fail_msg("%s: %s", names[i], err.msg);
        assert_int_equal(aicp_inventory_list_json(&got, inv, &err), 0);
        if (!json_equal(want, got)) {
            char *g = json_dumps(got, JSON_SORT_KEYS | JSON_INDENT(2));
            fail_msg("%s: --list differs from %s:\n%s", names[i], exp, g);
        }
        json_decref(want);
        json_decref(got);
        aicp_inventory_free(inv);
    }
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/aicp-inv-test-XXXXXX");
    return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    (void)state;
    return nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ini_basics),   cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_yaml_inventory), cmocka_unit_test(test_precedence_dirs),
        cmocka_unit_test(test_priority),     cmocka_unit_test(test_patterns),
        cmocka_unit_test(test_add_host_and_list), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_py_literal),   cmocka_unit_test(test_golden),
        cmocka_unit_test(test_vaulted_ini),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
