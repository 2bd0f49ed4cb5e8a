/* Unit tests for module arguments (validation, Ansible's coercions,
 * defaults, choices, modes, k=v parsing) and for the action modules debug,
 * set_fact, assert, fail and ping, called through their ops directly. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "module.h"
#include "playbook.h"
#include "registry.h"
#include "util.h"

static const struct aicp_arg_spec t_args[] = {
    {.name = "path", .type = AICP_ARG_PATH, .required = 1, .aliases = "dest|name"},
    {.name = "state", .type = AICP_ARG_STR, .def = "present", .choices = "present|absent"},
    {.name = "mode", .type = AICP_ARG_MODE},
    {.name = "force", .type = AICP_ARG_BOOL, .def = "no"},
    {.name = "count", .type = AICP_ARG_INT, .def = "3"},
    {.name = "ratio", .type = AICP_ARG_FLOAT},
    {.name = "items", .type = AICP_ARG_LIST, .choices = "a|b|c"},
    {.name = "opts", .type = AICP_ARG_DICT},
    {.name = "token", .type = AICP_ARG_STR, .secret = 1, .aliases = "api_key"},
    {.name = "label", .type = AICP_ARG_STR},
    {.name = "names", .type = AICP_ARG_LIST},
    {.name = NULL},
};
static const struct aicp_module t_mod = {.name = "testmod", .args = t_args};

static const struct aicp_arg_spec cmd_args[] = {
    {.name = "_raw_params", .type = AICP_ARG_STR},
    {.name = "chdir", .type = AICP_ARG_PATH},
    {.name = "creates", .type = AICP_ARG_PATH},
    {.name = "cmd", .type = AICP_ARG_STR},
    {.name = NULL},
};
static const struct aicp_module cmd_mod = {.name = "command", .args = cmd_args,
                                           .flags = AICP_MOD_FREEFORM};
static const struct aicp_module ff_mod = {.name = "otherfree", .args = cmd_args,
                                          .flags = AICP_MOD_FREEFORM};

/* Validates JSON text; returns the rc and fills a (cleared by caller). */
static int validate(struct aicp_args *a, const struct aicp_module *mod, const char *json,
                    int static_only, struct aicp_err *err)
{
    json_t *raw = json_loads(json, 0, NULL);
    assert_non_null(raw);
    int rc = aicp_args_validate(a, mod, raw, static_only, err);
    json_decref(raw);
    return rc;
}

static void expect_error(const char *json, const char *msg)
{
    struct aicp_args a = {0};
    struct aicp_err err = {0};
    int rc = validate(&a, &t_mod, json, 0, &err);
    if (rc == 0 || strcmp(err.msg, msg) != 0)
        fprintf(stderr, "%s -> %d '%s'\n", json, rc, err.msg);
    assert_int_equal(rc, AICP_EINVAL);
    assert_string_equal(err.msg, msg);
    assert_null(a.v);
}

static void test_validate_errors(void **state)
{
    (void)state;
    expect_error("{\"path\": \"/x\", \"zzz\": 1, \"bogus\": 2}",
                 "Unsupported parameters for (testmod) module: bogus, zzz. Supported parameters "
                 "include: count, force, items, label, mode, names, opts, path (dest, name), ratio, state, "
                 "token (api_key).");
    expect_error("{\"state\": \"present\"}", "missing required arguments: path");
    expect_error("{\"path\": \"/x\", \"state\": \"gone\"}",
                 "value of state must be one of: present, absent, got: gone");
    expect_error("{\"path\": \"/x\", \"items\": \"a,d\"}",
                 "value of items must be one or more of: a, b, c. Got no match for: d");
    expect_error("{\"path\": \"/x\", \"force\": \"maybe\"}",
                 "argument 'force' is of type str and we were unable to convert to bool: The value "
                 "'maybe' is not a valid boolean. Valid booleans include: 'yes', 'no', 'true', "
                 "'false', 'on', 'off', '1', '0'");
    expect_error("{\"path\": \"/x\", \"count\": \"12x\"}",
                 "argument 'count' is of type str and we were unable to convert to int");
    expect_error("{\"path\": \"/x\", \"opts\": [1]}",
                 "argument 'opts' is of type list and we were unable to convert to dict");
    expect_error("{\"path\": \"/x\", \"mode\": \"u+q\"}", "argument 'mode' is not a valid mode: u+q");
    expect_error("{\"path\": \"/x\", \"_ansible_check_mode\": true}",
                 "invalid parameter specified for action 'testmod': '_ansible_check_mode'");
    expect_error("{\"_raw_params\": \"some words\"}", "this module requires key=value arguments");
    expect_error("[1]", "arguments of module 'testmod' must be a mapping, not list");
}

static void test_validate_coercion(void **state)
{
    (void)state;
    struct aicp_args a = {0};
    struct aicp_err err = {0};
    assert_int_equal(validate(&a, &t_mod,
                              "{\"dest\": 12, \"force\": \"YES\", \"count\": \"42\", \"ratio\": 2,"
                              " \"items\": \"a,b\", \"opts\": \"k=v k2='v 2'\", \"label\": true,"
                              " \"api_key\": 1.5, \"mode\": 420}",
                              0, &err),
                     0);
    assert_string_equal(aicp_args_str(&a, "path"), "12");
    assert_null(aicp_args_get(&a, "dest"));
    assert_true(json_is_true(aicp_args_get(&a, "force")));
    assert_int_equal(aicp_args_int(&a, "count", 0), 42);
    assert_true(json_is_real(aicp_args_get(&a, "ratio")));
    assert_int_equal(json_array_size(aicp_args_get(&a, "items")), 2);
    assert_string_equal(json_string_value(json_array_get(aicp_args_get(&a, "items"), 1)), "b");
    assert_string_equal(json_string_value(json_object_get(aicp_args_get(&a, "opts"), "k2")), "v 2");
    assert_string_equal(aicp_args_str(&a, "label"), "True");
    assert_string_equal(aicp_args_str(&a, "token"), "1.5");
    assert_int_equal(aicp_args_mode(&a, "mode", -1), 0644);
    assert_string_equal(aicp_args_str(&a, "state"), "present"); /* default */
    aicp_args_clear(&a);

    /* defaults are typed; JSON dicts and scalar lists coerce */
    assert_int_equal(validate(&a, &t_mod,
                              "{\"path\": \"/x\", \"opts\": \"{\\\"a\\\": 1}\", \"names\": 5,"
                              " \"force\": \"off\", \"state\": null}",
                              0, &err),
                     0);
    assert_int_equal(json_integer_value(json_object_get(aicp_args_get(&a, "opts"), "a")), 1);
    assert_string_equal(json_string_value(json_array_get(aicp_args_get(&a, "names"), 0)), "5");
    assert_int_equal(aicp_args_bool(&a, "force", 1), 0);
    assert_true(json_is_integer(aicp_args_get(&a, "count")));
    assert_int_equal(aicp_args_int(&a, "count", 0), 3);
    assert_string_equal(aicp_args_str(&a, "state"), "present");
    assert_null(aicp_args_get(&a, "ratio"));
    assert_int_equal(aicp_args_int(&a, "ratio", 7), 7);
    assert_int_equal(aicp_args_mode(&a, "mode", -1), -1);
    aicp_args_clear(&a);
    aicp_args_clear(NULL);
}

static void test_validate_static(void **state)
{
    (void)state;
    struct aicp_args a = {0};
    struct aicp_err err = {0};
    const char *j = "{\"path\": \"/x\", \"count\": \"{{ n }}\", \"state\": \"{{ s }}\","
                    " \"items\": [\"{{ i }}\"]}";
    assert_int_equal(validate(&a, &t_mod, j, 1, &err), 0);
    assert_string_equal(aicp_args_str(&a, "count"), "{{ n }}");
    aicp_args_clear(&a);
    assert_int_equal(validate(&a, &t_mod, j, 0, &err), AICP_EINVAL);
    assert_string_equal(err.msg, "value of state must be one of: present, absent, got: {{ s }}");
}

/* Conditional requirements (the modules' validate hooks) are refused by
 * validation itself, so a playbook breaking them fails when it is loaded;
 * with static_only, values that are still templates are left to the run. */
static void expect_hook(const char *mod, const char *json, int static_only, const char *msg)
{
    struct aicp_args a = {0};
    struct aicp_err err = {0};
    const struct aicp_module *m = aicp_module_find(mod);
    assert_non_null(m);
    int rc = validate(&a, m, json, static_only, &err);
    if (msg == NULL) {
        if (rc != 0)
            fail_msg("%s %s: %s", mod, json, err.msg);
    } else {
        assert_int_equal(rc, AICP_EINVAL);
        assert_string_equal(err.msg, msg);
        assert_null(a.v);
    }
    aicp_args_clear(&a);
}

static void test_validate_hooks(void **state)
{
    (void)state;
    expect_hook("mount", "{\"path\": \"/m\", \"state\": \"mounted\"}", 1,
                "state is mounted but all of the following are missing: src, fstype");
    expect_hook("mount", "{\"path\": \"/m\", \"state\": \"present\", \"src\": \"/dev/x\"}", 0,
                "state is present but all of the following are missing: fstype");
    expect_hook("mount", "{\"path\": \"/m\", \"state\": \"unmounted\"}", 1, NULL);
    expect_hook("mount", "{\"path\": \"/m\", \"state\": \"{{ s }}\"}", 1, NULL);
    expect_hook("mount", "{\"path\": \"/m\", \"state\": \"mounted\", \"src\": \"{{ d }}\", "
                         "\"fstype\": \"ext4\"}", 1, NULL);
    expect_hook("lineinfile", "{\"path\": \"/f\"}", 1, "line is required with state=present");
    expect_hook("lineinfile", "{\"path\": \"/f\", \"regexp\": \"^a\", \"state\": \"present\"}", 0,
                "line is required with state=present");
    expect_hook("lineinfile", "{\"path\": \"/f\", \"line\": \"x\", \"backrefs\": \"yes\"}", 1,
                "regexp is required with backrefs=true");
    expect_hook("lineinfile", "{\"path\": \"/f\", \"state\": \"absent\"}", 1,
                "one of line, search_string, or regexp is required with state=absent");
    expect_hook("lineinfile", "{\"path\": \"/f\", \"line\": \"x\", \"regexp\": \"a\", "
                              "\"search_string\": \"b\"}", 1,
                "parameters are mutually exclusive: regexp|search_string");
    expect_hook("lineinfile", "{\"path\": \"/f\", \"line\": \"x\", \"insertafter\": \"a\", "
                              "\"insertbefore\": \"b\"}", 1,
                "parameters are mutually exclusive: insertbefore|insertafter");
    expect_hook("lineinfile", "{\"path\": \"/f\", \"state\": \"absent\", \"regexp\": \"^a\"}", 1,
                NULL);
    expect_hook("lineinfile", "{\"path\": \"/f\", \"state\": \"{{ s }}\"}", 1, NULL);
    expect_hook("lineinfile", "{\"path\": \"/f\", \"line\": \"c=\\\\1\", \"regexp\": \"^b\", "
                              "\"backrefs\": true}", 0, NULL);
    expect_hook("command", "{\"creates\": \"/x\"}", 1, "no command given");
    expect_hook("command", "{\"_raw_params\": \"\", \"cmd\": \"\"}", 0, "no command given");
    expect_hook("command", "{\"cmd\": \"ls\", \"argv\": [\"ls\"]}", 1,
                "only command or argv can be given, not both");
    expect_hook("command", "{\"argv\": \"{{ words }}\"}", 1, NULL);
    expect_hook("command", "{\"_raw_params\": \"{{ c }}\"}", 1, NULL);
    expect_hook("command", "{\"argv\": [\"true\"], \"creates\": \"/x\"}", 0, NULL);
    expect_hook("command", "{\"cmd\": 5}", 1, NULL); /* coerced to "5" */
}

static void test_validate_freeform_anyargs(void **state)
{
    (void)state;
    struct aicp_args a = {0};
    struct aicp_err err = {0};
    const struct aicp_module *sf = aicp_module_find("set_fact");
    assert_non_null(sf);
    assert_int_equal(validate(&a, sf, "{\"anything\": [1], \"cacheable\": \"yes\"}", 1, &err), 0);
    assert_int_equal(json_array_size(aicp_args_get(&a, "anything")), 1);
    assert_int_equal(aicp_args_bool(&a, "cacheable", 0), 1);
    aicp_args_clear(&a);
    assert_int_equal(validate(&a, &ff_mod, "{\"_raw_params\": \"ls -l\", \"chdir\": \"/\"}", 0, &err),
                     0);
    assert_string_equal(aicp_args_str(&a, "_raw_params"), "ls -l");
    aicp_args_clear(&a);
    assert_int_equal(aicp_arg_is_secret(&t_mod, "token"), 1);
    assert_int_equal(aicp_arg_is_secret(&t_mod, "api_key"), 1);
    assert_int_equal(aicp_arg_is_secret(&t_mod, "path"), 0);
    assert_int_equal(aicp_arg_is_secret(&t_mod, "nope"), 0);
}

static int mode_of(const char *s, int base)
{
    struct aicp_args a = {.v = json_pack("{s:s}", "mode", s)};
    int m = aicp_args_mode(&a, "mode", base);
    aicp_args_clear(&a);
    return m;
}

static void test_modes(void **state)
{
    (void)state;
    assert_int_equal(mode_of("0644", -1), 0644);
    assert_int_equal(mode_of("644", -1), 0644);
    assert_int_equal(mode_of("01777", -1), 01777);
    assert_int_equal(mode_of("u=rw,g=r,o=r", -1), 0644);
    assert_int_equal(mode_of("u=rwx,g=rx,o=", 0777), 0750);
    assert_int_equal(mode_of("u+x", 0644), 0744);
    assert_int_equal(mode_of("a-w", 0666), 0444);
    assert_int_equal(mode_of("+x", 0644), 0755); /* no "who": the umask (022) applies */
    assert_int_equal(mode_of("+w", 0444), 0644);
    assert_int_equal(mode_of("g=u", 0640), 0660);
    assert_int_equal(mode_of("go-rwx", 0755), 0700);
    assert_int_equal(mode_of("u+s,o+t", 0755), 05755);
    assert_int_equal(mode_of("a+X", 0644), 0644);
    assert_int_equal(mode_of("a+X", 0744), 0755);
    assert_int_equal(mode_of("u=rw-x+x", 0), 0700);
    assert_int_equal(mode_of("bogus", 0), -2);
    assert_int_equal(mode_of("u+rw,", 0), 0600);
    assert_int_equal(mode_of("", 0), -2);
    assert_int_equal(mode_of("0888", 0), -2);
    assert_int_equal(mode_of("077777", 0), -2);
    struct aicp_args a = {.v = json_pack("{s:i}", "mode", 0600)};
    assert_int_equal(aicp_args_mode(&a, "mode", -1), 0600);
    assert_int_equal(aicp_args_mode(&a, "other", -1), -1);
    aicp_args_clear(&a);
}

static json_t *kv(const char *s, int freeform, const struct aicp_module *mod)
{
    json_t *out = NULL;
    struct aicp_err err = {0};
    int rc = aicp_args_parse_kv(&out, s, freeform, mod, &err);
    if (rc != 0)
        fprintf(stderr, "%s: %s\n", s, err.msg);
    assert_int_equal(rc, 0);
    return out;
}

static void test_parse_kv(void **state)
{
    (void)state;
    json_t *o = kv("a=1 b=\"two words\" c='x y' d= e=f=g", 0, NULL);
    assert_string_equal(json_string_value(json_object_get(o, "a")), "1");
    assert_string_equal(json_string_value(json_object_get(o, "b")), "two words");
    assert_string_equal(json_string_value(json_object_get(o, "c")), "x y");
    assert_string_equal(json_string_value(json_object_get(o, "d")), "");
    assert_string_equal(json_string_value(json_object_get(o, "e")), "f=g");
    assert_null(json_object_get(o, "_raw_params"));
    json_decref(o);

    /* escapes are decoded in values; jinja blocks stay whole */
    o = kv("msg=a\\nb\\tc\\u00e9 x={{ y | default('a b') }}", 0, NULL);
    assert_string_equal(json_string_value(json_object_get(o, "msg")), "a\nb\tc\xc3\xa9");
    assert_string_equal(json_string_value(json_object_get(o, "x")), "{{ y | default('a b') }}");
    json_decref(o);

    /* Only Python's \x \u \U and one-letter escapes are decoded, as in
     * Ansible: octal ones stay, so that \1 reaches a regexp backref. */
    o = kv("line='c=\\1' r=\\101\\0 h=\\x41\\U0001F600 q=\\\\1 s=\\\"\\a\\z", 0, NULL);
    assert_string_equal(json_string_value(json_object_get(o, "line")), "c=\\1");
    assert_string_equal(json_string_value(json_object_get(o, "r")), "\\101\\0");
    assert_string_equal(json_string_value(json_object_get(o, "h")), "A\xf0\x9f\x98\x80");
    assert_string_equal(json_string_value(json_object_get(o, "q")), "\\1");
    assert_string_equal(json_string_value(json_object_get(o, "s")), "\"\a\\z");
    json_decref(o);

    /* command: only its own options leave the free form; order and spacing kept */
    o = kv("echo \"a  b\" creates=/tmp/x foo=bar  chdir=/tmp 'c d'", 1, &cmd_mod);
    assert_string_equal(json_string_value(json_object_get(o, "_raw_params")),
                        "echo \"a  b\" foo=bar  'c d'");
    assert_string_equal(json_string_value(json_object_get(o, "creates")), "/tmp/x");
    assert_string_equal(json_string_value(json_object_get(o, "chdir")), "/tmp");
    assert_null(json_object_get(o, "foo"));
    json_decref(o);
    o = kv("cmd=ls", 1, &cmd_mod); /* cmd= is not extracted from command's free form */
    assert_string_equal(json_string_value(json_object_get(o, "_raw_params")), "cmd=ls");
    json_decref(o);

    /* other free-form modules: keys of the module's table are extracted */
    o = kv("run this cmd=ls other=1", 1, &ff_mod);
    assert_string_equal(json_string_value(json_object_get(o, "_raw_params")), "run this other=1");
    assert_string_equal(json_string_value(json_object_get(o, "cmd")), "ls");
    json_decref(o);

    /* non-free-form: words go to _raw_params (validation then refuses them) */
    o = kv("hello a\\=b k=v", 0, NULL);
    assert_string_equal(json_string_value(json_object_get(o, "_raw_params")), "hello a=b");
    assert_string_equal(json_string_value(json_object_get(o, "k")), "v");
    json_decref(o);

    /* multi-line free form keeps its newlines */
    o = kv("echo one\necho two", 1, &cmd_mod);
    assert_string_equal(json_string_value(json_object_get(o, "_raw_params")), "echo one\necho two");
    json_decref(o);

    o = kv("", 0, NULL);
    assert_int_equal(json_object_size(o), 0);
    json_decref(o);

    json_t *bad = NULL;
    struct aicp_err err = {0};
    assert_int_equal(aicp_args_parse_kv(&bad, "a=\"open", 0, NULL, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "unbalanced jinja2 block or quotes"));
    assert_null(bad);
    assert_int_equal(aicp_args_parse_kv(&bad, "a={{ x", 0, NULL, &err), AICP_EINVAL);
}

static void test_parse_bool_and_change(void **state)
{
    (void)state;
    static const char *const yes[] = {"yes", "Yes", "TRUE", "on", "1", "y", "t"};
    static const char *const no[] = {"no", "False", "OFF", "0", "n", "f"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        assert_int_equal(aicp_parse_bool(yes[i]), 1);
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        assert_int_equal(aicp_parse_bool(no[i]), 0);
    assert_int_equal(aicp_parse_bool("maybe"), -1);
    assert_int_equal(aicp_parse_bool(""), -1);
    assert_int_equal(aicp_parse_bool(NULL), -1);

    struct aicp_change *c = NULL;
    assert_int_equal(aicp_change_new(&c), 0);
    assert_int_equal(c->needed, 0);
    assert_null(c->before);
    c->before = json_object();
    c->diff_text = strdup("x");
    aicp_change_free(c);
    aicp_change_free(NULL);
}

/* ---- action modules ---------------------------------------------------- */

struct run {
    json_t *result;
    struct aicp_err err;
    int rc;
};

static void run_module(struct run *r, const char *name, const char *args_json, const char *vars_json)
{
    const struct aicp_module *mod = aicp_module_find(name);
    struct aicp_args a = {0};
    json_t *raw = json_loads(args_json, 0, NULL);
    json_t *vars = json_loads(vars_json ? vars_json : "{}", 0, NULL);
    json_t *current = NULL;
    assert_non_null(mod);
    assert_non_null(raw);
    memset(r, 0, sizeof(*r));
    r->result = json_object();
    assert_int_equal(aicp_args_validate(&a, mod, raw, 0, &r->err), 0);
    struct aicp_ctx ctx = {.host = "h1", .vars = vars, .result = r->result};
    r->rc = mod->ops->check(&ctx, &a, &current, &r->err);
    if (r->rc == 0) {
        struct aicp_change *c = NULL;
        assert_int_equal(mod->ops->diff(current, &a, &c, &r->err), 0);
        assert_int_equal(c->needed, 0);
        aicp_change_free(c);
    }
    json_decref(current);
    aicp_args_clear(&a);
    json_decref(raw);
    json_decref(vars);
}

static void test_debug(void **state)
{
    (void)state;
    struct run r;
    run_module(&r, "debug", "{}", NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(json_string_value(json_object_get(r.result, "msg")), "Hello world!");
    json_decref(r.result);

    run_module(&r, "debug", "{\"msg\": [1, 2]}", NULL);
    assert_int_equal(json_array_size(json_object_get(r.result, "msg")), 2);
    json_decref(r.result);

    run_module(&r, "debug", "{\"var\": \"pkg\"}", "{\"pkg\": {\"name\": \"nginx\"}}");
    assert_int_equal(r.rc, 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(r.result, "pkg"), "name")),
                        "nginx");
    assert_null(json_object_get(r.result, "msg"));
    json_decref(r.result);

    run_module(&r, "debug", "{\"var\": \"nope\"}", "{}");
    assert_int_equal(r.rc, 0);
    assert_string_equal(json_string_value(json_object_get(r.result, "nope")),
                        "VARIABLE IS NOT DEFINED!");
    json_decref(r.result);

    run_module(&r, "debug", "{\"msg\": \"hi\", \"verbosity\": 2}", "{\"ansible_verbosity\": 1}");
    assert_int_equal(r.rc, 0);
    assert_true(json_is_true(json_object_get(r.result, "skipped")));
    assert_null(json_object_get(r.result, "msg"));
    json_decref(r.result);
}

static void test_set_fact(void **state)
{
    (void)state;
    struct run r;
    run_module(&r, "set_fact", "{\"a\": \"1\", \"b\": \"yes\", \"c\": \"False\", \"d\": [1]}", NULL);
    assert_int_equal(r.rc, 0);
    json_t *f = json_object_get(r.result, "ansible_facts");
    assert_string_equal(json_string_value(json_object_get(f, "a")), "1");
    assert_true(json_is_true(json_object_get(f, "b")));
    assert_true(json_is_false(json_object_get(f, "c")));
    assert_int_equal(json_array_size(json_object_get(f, "d")), 1);
    assert_null(json_object_get(f, "cacheable"));
    json_decref(r.result);

    run_module(&r, "set_fact", "{\"bad-name\": 1}", NULL);
    assert_int_equal(r.rc, AICP_EFAILED);
    assert_non_null(strstr(r.err.msg, "The variable name 'bad-name' is not valid"));
    json_decref(r.result);

    run_module(&r, "set_fact", "{\"cacheable\": true}", NULL);
    assert_int_equal(r.rc, AICP_EFAILED);
    assert_string_equal(r.err.msg, "No key/value pairs provided, at least one is required for this "
                                   "action to succeed");
    json_decref(r.result);
}

static void test_assert(void **state)
{
    (void)state;
    struct run r;
    const char *vars = "{\"yes_var\": true, \"no_var\": false}";
    run_module(&r, "assert", "{\"that\": [\"yes_var\", true]}", vars);
    assert_int_equal(r.rc, 0);
    assert_string_equal(json_string_value(json_object_get(r.result, "msg")), "All assertions passed");
    json_decref(r.result);

    run_module(&r, "assert", "{\"that\": \"yes_var\", \"success_msg\": \"fine\"}", vars);
    assert_int_equal(r.rc, 0);
    assert_string_equal(json_string_value(json_object_get(r.result, "msg")), "fine");
    json_decref(r.result);

    run_module(&r, "assert", "{\"that\": [\"yes_var\", \"no_var\"]}", vars);
    assert_int_equal(r.rc, AICP_EFAILED);
    assert_string_equal(r.err.msg, "Assertion failed");
    assert_string_equal(json_string_value(json_object_get(r.result, "assertion")), "no_var");
    assert_true(json_is_false(json_object_get(r.result, "evaluated_to")));
    json_decref(r.result);

    run_module(&r, "assert", "{\"that\": \"no_var\", \"msg\": \"custom failure\"}", vars);
    assert_int_equal(r.rc, AICP_EFAILED);
    assert_string_equal(r.err.msg, "custom failure");
    json_decref(r.result);

    run_module(&r, "assert", "{\"that\": \"undefined_thing\"}", vars);
    assert_int_equal(r.rc, AICP_EFAILED);
    assert_non_null(strstr(r.err.msg, "The conditional check 'undefined_thing' failed"));
    json_decref(r.result);
}

static void test_fail_and_ping(void **state)
{
    (void)state;
    struct run r;
    run_module(&r, "fail", "{}", NULL);
    assert_int_equal(r.rc, AICP_EFAILED);
    assert_string_equal(r.err.msg, "Failed as requested from task");
    json_decref(r.result);

    run_module(&r, "fail", "{\"msg\": \"stop here\"}", NULL);
    assert_int_equal(r.rc, AICP_EFAILED);
    assert_string_equal(r.err.msg, "stop here");
    assert_string_equal(json_string_value(json_object_get(r.result, "msg")), "stop here");
    json_decref(r.result);

    const struct aicp_module *ping = aicp_module_find("ansible.builtin.ping");
    assert_non_null(ping);
    assert_true(ping->flags & AICP_MOD_NEEDS_SSH);
    run_module(&r, "ping", "{\"data\": \"crash\"}", NULL);
    assert_int_equal(r.rc, AICP_EFAILED);
    assert_string_equal(r.err.msg, "boom");
    json_decref(r.result);

    run_module(&r, "ping", "{}", NULL); /* no connection */
    assert_int_equal(r.rc, AICP_EUNREACHABLE);
    json_decref(r.result);
}

/* Loads a docs page's ```yaml task list as the tasks of a play: it must
 * pass the playbook loader's validation. */
static void check_example(const char *page, const char *doc)
{
    const char *start = strstr(doc, "```yaml\n");
    assert_non_null(start);
    start += strlen("```yaml\n");
    const char *end = strstr(start, "```");
    assert_non_null(end);
    char dir[] = "/tmp/aicp-doc-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/play.yml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("- hosts: all\n  tasks:\n", f);
    for (const char *p = start; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        fprintf(f, "    %.*s\n", (int)n, p);
        p += n + 1;
    }
    fclose(f);
    struct aicp_playbook *pb = NULL;
    struct aicp_err err = {0};
    int rc = aicp_playbook_load(&pb, path, &err);
    if (rc != 0)
        fail_msg("%s: example does not load: %s", page, err.msg);
    assert_true(pb->plays[0]->tasks.n > 0);
    aicp_playbook_free(pb);
    unlink(path);
    rmdir(dir);
}

/* Every argument of the action modules has a row in its docs page, and the
 * page has an example. */
static void test_docs(void **state)
{
    (void)state;
    static const char *const mods[] = {"debug", "set_fact", "assert", "fail", "ping"};
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
        check_example(path, doc);
        free(doc);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_errors),
        cmocka_unit_test(test_validate_coercion),
        cmocka_unit_test(test_validate_static),
        cmocka_unit_test(test_validate_hooks),
        cmocka_unit_test(test_validate_freeform_anyargs),
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_parse_kv),
        cmocka_unit_test(test_parse_bool_and_change),
        cmocka_unit_test(test_debug),
        cmocka_unit_test(test_set_fact),
        cmocka_unit_test(test_assert),
        cmocka_unit_test(test_fail_and_ping),
        cmocka_unit_test(test_docs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
