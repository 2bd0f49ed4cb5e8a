/* Unit tests for fact parsing (agent/facts.c) and tag selection
 * (agent/tags.c): the executor's pure parts. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "err.h"
#include "facts.h"
#include "tags.h"

static const char dgx_output[] =
    "hostname=dgx01\n"
    "nodename=dgx01.lab\n"
    "fqdn=dgx01.lab.example\n"
    "system=Linux\n"
    "kernel=5.15.0-91-generic\n"
    "architecture=x86_64\n"
    "user_id=root\n"
    "home=/root\n"
    "vcpus=80\n"
    "os_id=ubuntu\n"
    "os_version=20.04\n"
    "os_codename=focal\n"
    "os_like=debian\n"
    "memtotal_kb=527958016\n"
    "memfree_kb=500000000\n"
    "swaptotal_kb=0\n"
    "cores=20\n"
    "gpu=0, Tesla V100-SXM2-32GB, 535.129.03, 32768, [N/A], Enabled\n"
    "gpu=1, Tesla V100-SXM2-32GB, 535.129.03, 32768, [N/A], Enabled\n";

static void test_facts_dgx(void **state)
{
    (void)state;
    json_t *f = NULL;
    struct aicp_err err = {0};
    assert_int_equal(aicp_facts_parse(&f, dgx_output, &err), 0);
    assert_string_equal(json_string_value(json_object_get(f, "hostname")), "dgx01");
    assert_string_equal(json_string_value(json_object_get(f, "distribution")), "Ubuntu");
    assert_string_equal(json_string_value(json_object_get(f, "os_family")), "Debian");
    assert_string_equal(json_string_value(json_object_get(f, "distribution_major_version")), "20");
    assert_string_equal(json_string_value(json_object_get(f, "distribution_release")), "focal");
    assert_int_equal(json_integer_value(json_object_get(f, "processor_vcpus")), 80);
    assert_int_equal(json_integer_value(json_object_get(f, "memtotal_mb")), 515584);
    assert_int_equal(json_integer_value(json_object_get(f, "swaptotal_mb")), 0);
    assert_int_equal(json_integer_value(json_object_get(f, "memfree_mb")), 488281);
    assert_int_equal(json_integer_value(json_object_get(f, "gpu_count")), 2);
    json_t *g1 = json_array_get(json_object_get(f, "gpus"), 1);
    assert_int_equal(json_integer_value(json_object_get(g1, "index")), 1);
    assert_string_equal(json_string_value(json_object_get(g1, "name")), "Tesla V100-SXM2-32GB");
    assert_int_equal(json_integer_value(json_object_get(g1, "memory_total_mib")), 32768);
    assert_string_equal(json_string_value(json_object_get(g1, "persistence_mode")), "Enabled");
    assert_string_equal(json_string_value(json_object_get(f, "nvidia_driver_version")), "535.129.03");
    assert_string_equal(json_string_value(json_object_get(json_object_get(f, "env"), "HOME")), "/root");
    json_decref(f);
}

static void test_facts_no_gpu(void **state)
{
    (void)state;
    json_t *f = NULL;
    assert_int_equal(aicp_facts_parse(&f, "hostname=n1\nos_id=debian\nos_version=12\n", NULL), 0);
    assert_int_equal(json_integer_value(json_object_get(f, "gpu_count")), 0);
    assert_true(json_is_null(json_object_get(f, "nvidia_driver_version")));
    assert_int_equal(json_array_size(json_object_get(f, "gpus")), 0);
    assert_string_equal(json_string_value(json_object_get(f, "distribution")), "Debian");
    json_decref(f);
}

static void test_facts_bad_gpu_line(void **state)
{
    (void)state;
    json_t *f = NULL;
    struct aicp_err err = {0};
    assert_int_equal(aicp_facts_parse(&f, "gpu=garbage\n", &err), AICP_EREMOTE);
    assert_null(f);
    assert_non_null(strstr(err.msg, "nvidia-smi"));
}

static json_t *tags(const char *a, const char *b)
{
    json_t *t = json_array();
    if (a)
        json_array_append_new(t, json_string(a));
    if (b)
        json_array_append_new(t, json_string(b));
    return t;
}

static void test_tags(void **state)
{
    (void)state;
    json_t *none = tags(NULL, NULL), *web = tags("web", NULL), *always = tags("always", NULL),
           *never = tags("never", "debug"), *only_web = tags("web", NULL),
           *only_debug = tags("debug", NULL), *skip_web = tags("web", NULL),
           *tagged = tags("tagged", NULL), *untagged = tags("untagged", NULL),
           *skip_always = tags("always", NULL);
    /* No options: everything but never. */
    assert_true(aicp_tags_selected(none, NULL, NULL));
    assert_true(aicp_tags_selected(web, NULL, NULL));
    assert_false(aicp_tags_selected(never, NULL, NULL));
    /* --tags web */
    assert_true(aicp_tags_selected(web, only_web, NULL));
    assert_false(aicp_tags_selected(none, only_web, NULL));
    assert_true(aicp_tags_selected(always, only_web, NULL));
    /* never runs when one of its other tags is asked for */
    assert_true(aicp_tags_selected(never, only_debug, NULL));
    /* --skip-tags web */
    assert_false(aicp_tags_selected(web, NULL, skip_web));
    assert_true(aicp_tags_selected(none, NULL, skip_web));
    assert_false(aicp_tags_selected(always, NULL, skip_always));
    /* tagged / untagged */
    assert_true(aicp_tags_selected(web, tagged, NULL));
    assert_false(aicp_tags_selected(none, tagged, NULL));
    assert_true(aicp_tags_selected(none, untagged, NULL));
    assert_false(aicp_tags_selected(web, untagged, NULL));
    json_t *all[] = {none, web, always, never, only_web, only_debug, skip_web, tagged, untagged, skip_always};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        json_decref(all[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_facts_dgx),
        cmocka_unit_test(test_facts_no_gpu),
        cmocka_unit_test(test_facts_bad_gpu_line),
        cmocka_unit_test(test_tags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
