/* Unit tests for playbook loading: a valid playbook that uses every
 * supported keyword (with imports, includes, roles, blocks and handlers),
 * and invalid ones, each asserting the exact file:line:col and wording of
 * its error. Inputs are under tests/data/playbooks/. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "module.h"
#include "playbook.h"
#include "taskutil.h"

#define DATA AICP_SRCDIR "/tests/data/playbooks/"

static struct aicp_playbook *load_ok(const char *path)
{
    struct aicp_playbook *pb = NULL;
    struct aicp_err err = {0};
    int rc = aicp_playbook_load(&pb, path, &err);
    if (rc != 0)
        fprintf(stderr, "unexpected error: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_non_null(pb);
    return pb;
}

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void test_valid_plays(void **state)
{
    (void)state;
    struct aicp_playbook *pb = load_ok(DATA "valid/site.yml");
    assert_int_equal(pb->nplays, 2);

    /* the imported playbook comes first, with the import's tags */
    struct aicp_play *p0 = pb->plays[0];
    assert_string_equal(p0->hosts, "all");
    assert_null(p0->name);
    assert_int_equal(p0->gather_facts, 0);
    assert_string_equal(jstr(p0->vars, "ansible_connection"), "local");
    assert_string_equal(json_string_value(json_array_get(p0->tags, 0)), "imported");
    assert_int_equal(p0->tasks.n, 1);
    assert_string_equal(p0->tasks.items[0]->action, "ping");
    assert_int_equal(p0->loc.line, 1);
    assert_int_equal(p0->loc.col, 3);
    assert_non_null(strstr(p0->loc.file, "valid/other.yml"));

    struct aicp_play *p = pb->plays[1];
    assert_string_equal(p->name, "Configure the web tier");
    assert_int_equal(p->loc.line, 5);
    assert_int_equal(p->loc.col, 3);
    assert_string_equal(p->hosts, "web,db");
    assert_string_equal(jstr(p->vars, "ansible_user"), "deploy");
    assert_string_equal(jstr(p->vars, "pkg"), "nginx");
    assert_int_equal(json_array_size(json_object_get(p->vars, "ports")), 2);
    assert_int_equal(json_array_size(p->vars_files), 1);
    assert_string_equal(json_string_value(json_array_get(p->vars_files, 0)), "vars/common.yml");
    assert_int_equal(p->become, 1);
    assert_string_equal(p->become_user, "root");
    assert_int_equal(p->gather_facts, 0);
    assert_string_equal(json_string_value(p->serial), "30%");
    assert_int_equal(p->max_fail_percentage, 20);
    assert_int_equal(p->any_errors_fatal, 1);
    assert_int_equal(p->force_handlers, 1);
    assert_int_equal(p->check_mode, 0);
    assert_int_equal(json_array_size(p->tags), 2);
    assert_string_equal(json_string_value(json_array_get(p->tags, 1)), "tier1");
    assert_string_equal(jstr(p->environment, "PATH"), "/usr/local/bin:/usr/bin");
    assert_non_null(strstr(p->dir, "tests/data/playbooks/valid"));
    aicp_playbook_free(pb);
}

static void test_valid_roles_and_handlers(void **state)
{
    (void)state;
    struct aicp_playbook *pb = load_ok(DATA "valid/site.yml");
    struct aicp_play *p = pb->plays[1];

    assert_int_equal(p->roles.n, 2);
    struct aicp_task *r0 = p->roles.items[0], *r1 = p->roles.items[1];
    assert_int_equal(r0->kind, AICP_TASK_BLOCK);
    assert_string_equal(r0->action, "web");
    assert_int_equal(r0->block.n, 1);
    assert_string_equal(r0->block.items[0]->name, "role task");
    assert_non_null(strstr(r0->block.items[0]->loc.file, "roles/web/tasks/main.yml"));
    assert_int_equal(json_integer_value(json_object_get(r0->role_defaults, "web_port")), 80);
    assert_int_equal(json_integer_value(json_object_get(r0->vars, "web_port")), 81);
    assert_string_equal(jstr(r0->vars, "web_conf"), "/etc/web.conf");
    assert_non_null(strstr(r0->role_path, "roles/web"));
    /* role parameters win over the role's vars/main.yml */
    assert_int_equal(json_integer_value(json_object_get(r1->vars, "web_port")), 8080);
    assert_int_equal(json_integer_value(json_object_get(r1->vars, "extra_param")), 1);
    assert_string_equal(json_string_value(json_array_get(r1->tags, 0)), "again");
    assert_string_equal(json_string_value(json_array_get(r1->when, 0)), "pkg == \"nginx\"");

    /* the role's handlers once (though the role is used four times), then the play's */
    assert_int_equal(p->handlers.n, 2);
    assert_string_equal(p->handlers.items[0]->name, "reload web");
    struct aicp_task *h = p->handlers.items[1];
    assert_string_equal(h->name, "restart web");
    assert_string_equal(json_string_value(json_array_get(h->listen, 0)), "web restarts");

    assert_int_equal(p->pre_tasks.n, 1);
    assert_string_equal(jstr(p->pre_tasks.items[0]->args, "msg"), "hello {{ pkg }}");
    assert_int_equal(p->post_tasks.n, 1);
    aicp_playbook_free(pb);
}

static void test_valid_task_keywords(void **state)
{
    (void)state;
    struct aicp_playbook *pb = load_ok(DATA "valid/site.yml");
    struct aicp_play *p = pb->plays[1];
    struct aicp_task *t = p->tasks.items[0];
    char where[256];

    assert_int_equal(t->kind, AICP_TASK_MODULE);
    assert_string_equal(t->mod->name, "copy");
    assert_string_equal(t->action, "ansible.builtin.copy");
    assert_string_equal(jstr(t->args, "dest"), "/etc/a.conf");
    assert_string_equal(jstr(t->args, "mode"), "0644");
    aicp_task_where(t, where, sizeof(where));
    assert_non_null(strstr(where, "valid/site.yml:37:7"));
    assert_string_equal(json_string_value(json_array_get(t->notify, 0)), "restart web");
    assert_string_equal(t->register_as, "copied");
    assert_int_equal(json_array_size(t->when), 2);
    assert_true(json_is_true(json_array_get(t->when, 1)));
    assert_int_equal(json_array_size(t->tags), 2);
    assert_string_equal(json_string_value(json_array_get(t->tags, 1)), "files");
    assert_true(json_is_false(json_array_get(t->changed_when, 0)));
    assert_string_equal(json_string_value(json_array_get(t->failed_when, 0)),
                        "copied.rc is defined and copied.rc != 0");
    assert_string_equal(json_string_value(t->ignore_errors), "{{ lax | default(false) }}");
    assert_int_equal(t->no_log, 1);
    assert_int_equal(t->become, 0);
    assert_string_equal(t->become_user, "www-data");
    assert_int_equal(t->check_mode, 0);
    assert_int_equal(t->diff, 1);
    assert_int_equal(t->run_once, 1);
    assert_int_equal(t->any_errors_fatal, 0);
    assert_int_equal(json_integer_value(json_object_get(t->vars, "x")), 1);
    assert_string_equal(jstr(t->environment, "LANG"), "C");
    assert_string_equal(t->delegate_to, "localhost");
    assert_null(t->loop);

    /* k=v string with `args:` merged under it */
    t = p->tasks.items[1];
    assert_string_equal(jstr(t->args, "content"), "a b");
    assert_string_equal(jstr(t->args, "dest"), "/tmp/x");
    assert_string_equal(jstr(t->args, "mode"), "0600");
    assert_false(json_is_true(json_object_get(t->args, "force")));
    assert_int_equal(t->no_log, -1);
    assert_int_equal(t->become, -1);

    t = p->tasks.items[2];
    assert_string_equal(json_string_value(t->loop), "{{ ports }}");
    assert_string_equal(t->loop_var, "port");
    assert_string_equal(t->index_var, "idx");
    assert_string_equal(json_string_value(t->loop_label), "{{ port }}");

    /* with_items is kept as written; the executor flattens it one level
     * once rendered */
    t = p->tasks.items[3];
    assert_string_equal(t->loop_var, "item");
    assert_string_equal(jstr(t->args, "var"), "item");
    assert_int_equal(json_array_size(json_object_get(t->loop, "__with_items")), 2);
    json_t *items = aicp_task_loop_items(t->loop);
    assert_int_equal(json_array_size(items), 3);
    assert_int_equal(json_integer_value(json_array_get(items, 2)), 3);
    json_decref(items);

    t = p->tasks.items[4];
    assert_int_equal(json_integer_value(json_object_get(json_object_get(t->loop, "__with_dict"), "b")),
                     2);

    t = p->tasks.items[5];
    assert_int_equal(json_array_size(t->loop), 3);
    assert_string_equal(json_string_value(json_array_get(t->loop, 0)), "host01");
    assert_string_equal(json_string_value(json_array_get(t->loop, 2)), "host03");

    t = p->tasks.items[6]; /* with_list does not flatten */
    assert_int_equal(json_array_size(t->loop), 2);

    t = p->tasks.items[7];
    assert_string_equal(t->action, "debug");
    assert_string_equal(jstr(t->args, "msg"), "via-action");
    t = p->tasks.items[8];
    assert_string_equal(jstr(t->args, "msg"), "local");
    assert_string_equal(t->delegate_to, "localhost");
    aicp_playbook_free(pb);
}

/* The items of rendered loops: with_items flattens one level whatever the
 * templates gave, `loop` never flattens. */
static void test_loop_items(void **state)
{
    (void)state;
    struct {
        const char *loop, *items;
    } cases[] = {
        /* with_items: ["{{ pkgs }}", c] with pkgs: [a, b] */
        {"{\"__with_items\": [[\"a\", \"b\"], \"c\"]}", "[\"a\", \"b\", \"c\"]"},
        /* with_items: "{{ [[1,2],3] }}" */
        {"{\"__with_items\": [[1, 2], 3]}", "[1, 2, 3]"},
        /* one level only */
        {"{\"__with_items\": [[1, [2, 3]], 4]}", "[1, [2, 3], 4]"},
        /* a template that gave a string is one item */
        {"{\"__with_items\": \"plain\"}", "[\"plain\"]"},
        {"{\"__with_items\": []}", "[]"},
        /* loop: ["{{ pkgs }}", c] */
        {"[[\"a\", \"b\"], \"c\"]", "[[\"a\", \"b\"], \"c\"]"},
        {"{\"__with_dict\": {\"k\": 1}}", "[{\"key\": \"k\", \"value\": 1}]"},
        {"{\"__with_together\": [[1, 2], [3]]}", "[[1, 3], [2, null]]"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *loop = json_loads(cases[i].loop, 0, NULL);
        json_t *want = json_loads(cases[i].items, 0, NULL);
        json_t *got = aicp_task_loop_items(loop);
        if (!json_equal(got, want)) {
            char *g = got ? json_dumps(got, 0) : NULL;
            fprintf(stderr, "loop %s: got %s, want %s\n", cases[i].loop, g ? g : "NULL",
                    cases[i].items);
            free(g);
        }
        assert_true(json_equal(got, want));
        json_decref(loop);
        json_decref(want);
        json_decref(got);
    }
    /* not a list of items: the executor says so */
    json_t *bad = json_loads("{\"__with_dict\": [1]}", 0, NULL);
    assert_null(aicp_task_loop_items(bad));
    json_decref(bad);
    bad = json_string("a string");
    assert_null(aicp_task_loop_items(bad));
    json_decref(bad);
}

static void test_valid_blocks_and_includes(void **state)
{
    (void)state;
    struct aicp_playbook *pb = load_ok(DATA "valid/site.yml");
    struct aicp_play *p = pb->plays[1];
    struct aicp_task *t = p->tasks.items[9];

    assert_int_equal(t->kind, AICP_TASK_BLOCK);
    assert_string_equal(t->name, "A block");
    assert_int_equal(t->become, 1);
    assert_true(json_is_true(t->ignore_errors));
    assert_int_equal(json_integer_value(json_object_get(t->vars, "y")), 2);
    assert_int_equal(t->block.n, 2);
    assert_int_equal(t->rescue.n, 1);
    assert_int_equal(t->always.n, 1);
    assert_string_equal(jstr(t->block.items[0]->args, "a"), "1");
    assert_string_equal(jstr(t->block.items[0]->args, "b"), "yes");
    assert_string_equal(t->block.items[1]->mod->name, "fail");

    t = p->tasks.items[10]; /* import_tasks: a block holding the file's tasks */
    assert_int_equal(t->kind, AICP_TASK_BLOCK);
    assert_string_equal(json_string_value(json_array_get(t->tags, 0)), "common");
    assert_int_equal(t->block.n, 2);
    assert_string_equal(t->block.items[0]->name, "common task");
    struct aicp_task *nested = t->block.items[1];
    assert_int_equal(nested->kind, AICP_TASK_BLOCK);
    assert_string_equal(nested->block.items[0]->name, "nested task");
    assert_non_null(strstr(nested->block.items[0]->loc.file, "valid/tasks/nested.yml"));
    assert_int_equal(nested->block.items[0]->loc.line, 1);
    assert_int_equal(nested->block.items[0]->loc.col, 3);

    t = p->tasks.items[11]; /* include_tasks with a loop */
    assert_int_equal(t->kind, AICP_TASK_INCLUDE);
    assert_int_equal(json_array_size(t->loop), 2);
    assert_int_equal(t->block.n, 2);
    assert_non_null(strstr(jstr(t->args, "file"), "tasks/common.yml"));

    t = p->tasks.items[12];
    assert_int_equal(t->kind, AICP_TASK_BLOCK);
    assert_int_equal(t->block.n, 2);

    t = p->tasks.items[13];
    assert_int_equal(t->kind, AICP_TASK_BLOCK);
    assert_string_equal(t->action, "web");
    t = p->tasks.items[14];
    assert_string_equal(t->block.items[0]->name, "role task");

    t = p->tasks.items[15];
    assert_int_equal(t->kind, AICP_TASK_META);
    assert_string_equal(t->action, "flush_handlers");
    t = p->tasks.items[16];
    assert_int_equal(t->kind, AICP_TASK_META);
    assert_string_equal(t->action, "noop");
    assert_true(json_is_false(json_array_get(t->when, 0)));

    t = p->tasks.items[17];
    assert_string_equal(t->mod->name, "assert");
    t = p->tasks.items[18];
    assert_string_equal(t->mod->name, "ping");
    assert_int_equal(json_object_size(t->args), 0);
    t = p->tasks.items[19];
    assert_int_equal(json_integer_value(json_object_get(t->args, "z")), 3);
    assert_int_equal(p->tasks.n, 20);
    aicp_playbook_free(pb);
}

struct bad_case {
    const char *file;
    const char *where; /* expected "file:line:col" suffix, or NULL */
    const char *msg;   /* expected text after it */
};

static const struct bad_case bad_cases[] = {
    {"unknown_module.yml", "unknown_module.yml:3:7",
     "couldn't resolve module/action 'copyy'. This often indicates a misspelling, missing "
     "collection, or incorrect module path."},
    {"misspelled_arg.yml", "misspelled_arg.yml:4:7",
     "Unsupported parameters for (debug) module: mgs. Supported parameters include: msg, var, "
     "verbosity."},
    {"missing_required.yml", "missing_required.yml:4:7", "missing required arguments: that"},
    {"unknown_play_key.yml", "unknown_play_key.yml:2:3", "'taks' is not a valid attribute for a Play"},
    {"two_modules.yml", "two_modules.yml:3:7", "conflicting action statements: debug, ping"},
    {"bad_keyword.yml", "bad_keyword.yml:3:7", "'whenn' is not a valid attribute for a Task"},
    {"strategy.yml", "strategy.yml:1:3", "strategy free is not supported"},
    {"import_loop.yml", "import_loop.yml:3:7", "You cannot use loops on 'import_tasks' statements."},
    {"bad_meta.yml", "bad_meta.yml:3:7", "invalid meta action requested: reboot_everything"},
    {"delegate.yml", "delegate.yml:3:7", "delegate_to 'db1' is not supported"},
    {"no_role.yml", "no_role.yml:3:7", "the role 'nosuchrole' was not found"},
    {"not_kv.yml", "not_kv.yml:3:7", "this module requires key=value arguments"},
    {"no_hosts.yml", "no_hosts.yml:1:3", "the field 'hosts' is required but was not set"},
    {"bad_bool.yml", "bad_bool.yml:1:3", "'become' must be a boolean, got 'maybe'"},
    {"not_list.yml", "not_list.yml:1:1", "A playbook must be a list of plays, got a mapping instead"},
    {"bad_type.yml", "bad_type.yml:3:7",
     "argument 'verbosity' is of type str and we were unable to convert to int"},
    {"recursive.yml", NULL, "imports nest deeper than"},
    {"bad_include.yml", "bad_include.yml:3:7", "Could not find or access 'nosuchfile.yml'"},
    {"unclosed_quote.yml", "unclosed_quote.yml:3:7",
     "failed at splitting arguments, either an unbalanced jinja2 block or quotes"},
    {"deep_error.yml", "tasks/bad.yml:3:7", "couldn't resolve module/action 'pingg'"},
    {"empty.yml", "empty.yml:1:1", "Empty playbook, nothing to do"},
    {"seq_overflow.yml", "seq_overflow.yml:3:7",
     "with_sequence: bad range (start=16 count=4444444444444444444 stride=1)"},
    {"seq_wide.yml", "seq_wide.yml:3:7",
     "with_sequence: bad range (start=-9223372036854775807 end=9223372036854775807 stride=1)"},
};

static void test_invalid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *c = &bad_cases[i];
        char path[512], want[1024];
        struct aicp_playbook *pb = NULL;
        struct aicp_err err = {0};
        snprintf(path, sizeof(path), DATA "invalid/%s", c->file);
        int rc = aicp_playbook_load(&pb, path, &err);
        if (rc != AICP_EINVAL || strstr(err.msg, c->msg) == NULL)
            fprintf(stderr, "%s: rc %d: %s\n", c->file, rc, err.msg);
        assert_int_equal(rc, AICP_EINVAL);
        assert_null(pb);
        if (c->where != NULL) {
            snprintf(want, sizeof(want), "%s: %s", c->where, c->msg);
            if (strstr(err.msg, want) == NULL)
                fprintf(stderr, "%s: want '%s'\n got '%s'\n", c->file, want, err.msg);
            assert_non_null(strstr(err.msg, want));
        } else {
            assert_non_null(strstr(err.msg, c->msg));
        }
    }
}

/* YAML syntax errors come from the YAML loader with their position:
 * an unclosed flow sequence and a key indented one column too little. */
static void test_yaml_errors(void **state)
{
    (void)state;
    static const char *const cases[][2] = {{"malformed.yml", "malformed.yml:3:5: "},
                                           {"indent.yml", "indent.yml:6:6: "}};
    for (size_t i = 0; i < 2; i++) {
        char path[512];
        struct aicp_playbook *pb = NULL;
        struct aicp_err err = {0};
        snprintf(path, sizeof(path), DATA "invalid/%s", cases[i][0]);
        assert_int_equal(aicp_playbook_load(&pb, path, &err), AICP_EINVAL);
        assert_null(pb);
        if (strstr(err.msg, cases[i][1]) == NULL)
            fprintf(stderr, "%s: got '%s'\n", cases[i][0], err.msg);
        assert_non_null(strstr(err.msg, cases[i][1]));
    }
}

static void test_missing_file(void **state)
{
    (void)state;
    struct aicp_playbook *pb = NULL;
    struct aicp_err err = {0};
    assert_int_not_equal(aicp_playbook_load(&pb, DATA "nosuch.yml", &err), 0);
    assert_null(pb);
    assert_non_null(strstr(err.msg, "nosuch.yml"));
    aicp_playbook_free(NULL);
}

/* An import_playbook without tags (the common case) loads its plays
 * untagged; it once crashed looking at the absent tags. */
static void test_import_without_tags(void **state)
{
    (void)state;
    struct aicp_playbook *pb = load_ok(DATA "valid/import_plain.yml");
    assert_true(pb->nplays >= 2);
    for (size_t i = 0; i < pb->nplays; i++)
        assert_int_equal(json_array_size(pb->plays[i]->tags), 0);
    aicp_playbook_free(pb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_import_without_tags),
        cmocka_unit_test(test_valid_plays),
        cmocka_unit_test(test_valid_roles_and_handlers),
        cmocka_unit_test(test_valid_task_keywords),
        cmocka_unit_test(test_valid_blocks_and_includes),
        cmocka_unit_test(test_loop_items),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_yaml_errors),
        cmocka_unit_test(test_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
