/* Unit tests for the Kubernetes modules' shared life cycle
 * (modules/kubeutil.c) where it needs no API server: the diff of a
 * checked "current" document (drift, creations, deletions, replacements,
 * merge patches, Secret masking), the manifest helpers, and the parts of
 * the k8s, namespace, secret and storage_class modules that run before a
 * client is asked for (argument checks, multi-document YAML). */
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
#include "kubeutil.h"
#include "module.h"
#include "util.h"

extern const struct aicp_module aicp_mod_k8s;
extern const struct aicp_module aicp_mod_namespace;
extern const struct aicp_module aicp_mod_secret;
extern const struct aicp_module aicp_mod_storage_class;

#define CANARY "AICP-CANARY-7f3e9b2c"

static json_t *load(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    if (v == NULL)
        fail_msg("bad test JSON: %s: %s", e.text, text);
    return v;
}

static char *dump(const json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

static void diff_of(const char *current, struct aicp_change **c, int want_rc, struct aicp_err *err)
{
    json_t *cur = load(current);
    int rc = aicp_ku_diff(cur, NULL, c, err);
    assert_int_equal(rc, want_rc);
    json_decref(cur);
}

#define SC_DESIRED                                                                                 \
    "{\"apiVersion\":\"storage.k8s.io/v1\",\"kind\":\"StorageClass\","                             \
    "\"metadata\":{\"name\":\"gold\"},\"provisioner\":\"csi.trident.netapp.io\","                  \
    "\"parameters\":{\"backendType\":\"ontap-nas\"}}"

static void test_diff_unchanged(void **state)
{
    (void)state;
    struct aicp_change *c = NULL;
    struct aicp_err err = {0};
    diff_of("{\"objects\":[{\"ref\":\"StorageClass/gold\",\"desired\":" SC_DESIRED
            ",\"live\":" SC_DESIRED ",\"drift\":[],\"replace\":false}],"
            "\"opts\":{\"absent\":false}}",
            &c, 0, &err);
    assert_int_equal(c->needed, 0);
    assert_null(c->before);
    assert_null(c->after);
    aicp_change_free(c);
}

static void test_diff_create_and_update(void **state)
{
    (void)state;
    struct aicp_change *c = NULL;
    struct aicp_err err = {0};
    diff_of("{\"objects\":["
            "{\"ref\":\"StorageClass/gold\",\"desired\":" SC_DESIRED
            ",\"live\":null,\"drift\":null,\"replace\":false},"
            "{\"ref\":\"Namespace/ml\",\"desired\":{\"apiVersion\":\"v1\",\"kind\":\"Namespace\","
            "\"metadata\":{\"name\":\"ml\",\"labels\":{\"a\":\"2\"}}},"
            "\"live\":{\"kind\":\"Namespace\"},\"drift\":[{\"path\":\"metadata.labels.a\","
            "\"want\":\"2\",\"have\":\"1\"},{\"path\":\"metadata.labels.b\",\"want\":\"x\"}],"
            "\"replace\":false}],\"opts\":{\"absent\":false}}",
            &c, 0, &err);
    assert_int_equal(c->needed, 1);
    char *b = dump(c->before), *a = dump(c->after);
    assert_string_equal(
        b, "{\"Namespace/ml\":{\"metadata.labels.a\":\"1\",\"metadata.labels.b\":null},"
           "\"StorageClass/gold\":null}");
    assert_non_null(
        strstr(a, "\"Namespace/ml\":{\"metadata.labels.a\":\"2\",\"metadata.labels.b\":\"x\"}"));
    assert_non_null(strstr(a, "\"StorageClass/gold\":{\"apiVersion\":\"storage.k8s.io/v1\""));
    free(b);
    free(a);
    /* The plan carries what apply needs. */
    assert_int_equal(json_array_size(json_object_get(c->plan, "objects")), 2);
    aicp_change_free(c);
}

static void test_diff_absent(void **state)
{
    (void)state;
    struct aicp_change *c = NULL;
    struct aicp_err err = {0};
    diff_of("{\"objects\":[{\"ref\":\"Secret/ns/s\",\"desired\":{\"apiVersion\":\"v1\","
            "\"kind\":\"Secret\",\"metadata\":{\"name\":\"s\",\"namespace\":\"ns\"}},"
            "\"live\":{\"kind\":\"Secret\"},\"drift\":null,\"replace\":false}],"
            "\"opts\":{\"absent\":true}}",
            &c, 0, &err);
    assert_int_equal(c->needed, 1);
    char *b = dump(c->before), *a = dump(c->after);
    assert_string_equal(b, "{\"Secret/ns/s\":{\"apiVersion\":\"v1\",\"kind\":\"Secret\","
                           "\"name\":\"s\",\"namespace\":\"ns\"}}");
    assert_string_equal(a, "{\"Secret/ns/s\":null}");
    free(b);
    free(a);
    aicp_change_free(c);
    /* Gone already: nothing to do. */
    diff_of("{\"objects\":[{\"ref\":\"Secret/ns/s\",\"desired\":{},\"live\":null}],"
            "\"opts\":{\"absent\":true}}",
            &c, 0, &err);
    assert_int_equal(c->needed, 0);
    aicp_change_free(c);
}

static void test_diff_replace(void **state)
{
    (void)state;
    struct aicp_change *c = NULL;
    struct aicp_err err = {0};
#define REPLACE_CUR(allow)                                                                         \
    "{\"objects\":[{\"ref\":\"StorageClass/gold\",\"desired\":" SC_DESIRED                         \
    ",\"live\":{\"kind\":\"StorageClass\"},\"drift\":[{\"path\":"                                  \
    "\"parameters.backendType\",\"want\":\"ontap-nas\",\"have\":\"ontap-san\"}],"                  \
    "\"replace\":true,\"immutable\":[\"parameters.backendType\"]}],"                               \
    "\"opts\":{\"absent\":false,\"allow_replace\":" allow "}}"
    diff_of(REPLACE_CUR("false"), &c, AICP_EFAILED, &err);
    assert_null(c);
    assert_string_equal(err.msg, "StorageClass/gold: parameters.backendType cannot be changed in "
                                 "place; the object must be replaced (replace: true or "
                                 "--allow-replace)");
    diff_of(REPLACE_CUR("true"), &c, 0, &err);
    assert_int_equal(c->needed, 1);
    char *r = dump(json_object_get(json_object_get(c->plan, "result"), "replaced"));
    assert_string_equal(r, "[\"StorageClass/gold\"]");
    free(r);
    aicp_change_free(c);
}

static void test_diff_secret_masked(void **state)
{
    (void)state;
    struct aicp_change *c = NULL;
    struct aicp_err err = {0};
    diff_of("{\"objects\":[{\"ref\":\"Secret/default/s\",\"desired\":{\"apiVersion\":\"v1\","
            "\"kind\":\"Secret\",\"metadata\":{\"name\":\"s\",\"namespace\":\"default\"},"
            "\"data\":{\"password\":\"" CANARY "\"},\"stringData\":{\"x\":\"" CANARY "\"}},"
            "\"live\":null,\"drift\":null}],\"opts\":{\"absent\":false}}",
            &c, 0, &err);
    char *a = dump(c->after);
    assert_null(strstr(a, CANARY));
    assert_non_null(strstr(a, "\"data\":{\"password\":\"********\"}"));
    free(a);
    aicp_change_free(c);
}

static void test_diff_merge_patch(void **state)
{
    (void)state;
    struct aicp_change *c = NULL;
    struct aicp_err err = {0};
    diff_of(
        "{\"objects\":[{\"ref\":\"StorageClass/old\",\"merge_patch\":true,\"desired\":{},"
        "\"live\":{\"kind\":\"StorageClass\"},\"drift\":[{\"path\":\"metadata.annotations["
        "storageclass.kubernetes.io/is-default-class]\",\"want\":\"false\",\"have\":\"true\"}]}],"
        "\"opts\":{\"absent\":false}}",
        &c, 0, &err);
    assert_int_equal(c->needed, 1);
    char *b = dump(c->before);
    assert_string_equal(b, "{\"StorageClass/old\":{\"metadata.annotations[storageclass.kubernetes."
                           "io/is-default-class]\":\"true\"}}");
    free(b);
    aicp_change_free(c);
}

static void test_manifest_and_meta(void **state)
{
    (void)state;
    struct aicp_err err = {0};
    struct aicp_args args = {0};
    json_t *m = aicp_ku_manifest("v1", "Secret", "ns", "s");
    char *s = dump(m);
    assert_string_equal(s,
                        "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"s\","
                        "\"namespace\":\"ns\"}}");
    free(s);
    json_t *raw = load("{\"name\":\"x\",\"labels\":{\"a\":1,\"b\":true,\"c\":\"z\"},"
                       "\"annotations\":{}}");
    assert_int_equal(aicp_args_validate(&args, &aicp_mod_namespace, raw, 0, &err), 0);
    assert_int_equal(aicp_ku_set_meta(m, &args, &err), 0);
    s = dump(json_object_get(m, "metadata"));
    assert_string_equal(s, "{\"labels\":{\"a\":\"1\",\"b\":\"true\",\"c\":\"z\"},\"name\":\"s\","
                           "\"namespace\":\"ns\"}");
    free(s);
    aicp_args_clear(&args);
    json_decref(raw);
    json_decref(m);
    json_t *cl = aicp_ku_manifest("v1", "Namespace", NULL, "n");
    assert_null(json_object_get(json_object_get(cl, "metadata"), "namespace"));
    json_decref(cl);
}

/* A module's check up to the point where it asks for a client (the ctx
 * has none): returns the rc and leaves the message in err. */
static int check_upto_client(const struct aicp_module *mod, const char *raw_json, const char *dir,
                             struct aicp_err *err)
{
    struct aicp_args args = {0};
    json_t *raw = load(raw_json);
    json_t *result = json_object();
    json_t *cur = NULL;
    struct aicp_ctx ctx = {.host = "localhost", .search_dir = dir, .result = result};
    int rc = aicp_args_validate(&args, mod, raw, 0, err);
    if (rc == 0)
        rc = mod->ops->check(&ctx, &args, &cur, err);
    assert_null(cur);
    aicp_args_clear(&args);
    json_decref(raw);
    json_decref(result);
    return rc;
}

static void test_modules_need_client(void **state)
{
    (void)state;
    struct aicp_err err = {0};
    assert_int_equal(check_upto_client(&aicp_mod_namespace, "{\"name\":\"ml\"}", ".", &err),
                     AICP_EINVAL);
    assert_non_null(strstr(err.msg, "no Kubernetes client"));
    assert_int_equal(check_upto_client(&aicp_mod_secret,
                                       "{\"name\":\"s\",\"string_data\":{\"p\":\"" CANARY "\"}}",
                                       ".", &err),
                     AICP_EINVAL);
    assert_non_null(strstr(err.msg, "no Kubernetes client"));
    assert_int_equal(check_upto_client(&aicp_mod_storage_class,
                                       "{\"name\":\"gold\",\"default\":true}", ".", &err),
                     AICP_EINVAL);
    /* Values must be strings (or scalars); never echoed. */
    assert_int_equal(check_upto_client(&aicp_mod_secret,
                                       "{\"name\":\"s\",\"data\":{\"p\":[\"" CANARY "\"]}}", ".",
                                       &err),
                     AICP_EINVAL);
    assert_string_equal(err.msg, "data.p: the value must be a base64 string");
    assert_int_equal(check_upto_client(&aicp_mod_storage_class,
                                       "{\"name\":\"g\",\"parameters\":{\"x\":{\"y\":1}}}", ".",
                                       &err),
                     AICP_EINVAL);
    assert_string_equal(err.msg, "parameters.x: the value must be a string");
    assert_int_equal(check_upto_client(&aicp_mod_namespace,
                                       "{\"name\":\"n\",\"labels\":{\"x\":[1]}}", ".", &err),
                     AICP_EINVAL);
    assert_string_equal(err.msg, "labels.x: the value must be a string");
}

static void test_k8s_definitions(void **state)
{
    (void)state;
    struct aicp_err err = {0};
    /* None, or more than one, of definition, src and template. */
    assert_int_equal(check_upto_client(&aicp_mod_k8s, "{}", ".", &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "exactly one of definition, src and template"));
    /* A mapping, a list, a List kind, YAML text: parsed, then a client is asked for. */
    const char *ok[] = {
        "{\"definition\":{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":"
        "\"a\"}}}",
        "{\"definition\":[{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":"
        "\"a\"}}]}",
        "{\"definition\":{\"kind\":\"List\",\"items\":[{\"apiVersion\":\"v1\",\"kind\":"
        "\"Namespace\","
        "\"metadata\":{\"name\":\"a\"}}]}}",
        "{\"definition\":\"apiVersion: v1\\nkind: Namespace\\nmetadata: {name: a}\\n---\\n"
        "--- {apiVersion: v1, kind: Namespace, metadata: {name: b}}\\n...\\n\"}",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_int_equal(check_upto_client(&aicp_mod_k8s, ok[i], ".", &err), AICP_EINVAL);
        assert_non_null(strstr(err.msg, "no Kubernetes client"));
    }
    assert_int_equal(
        check_upto_client(&aicp_mod_k8s, "{\"definition\":\"---\\n# nothing\\n\"}", ".", &err),
        AICP_EINVAL);
    assert_string_equal(err.msg, "definition holds no Kubernetes object");
    assert_int_equal(check_upto_client(&aicp_mod_k8s, "{\"definition\":[1]}", ".", &err),
                     AICP_EINVAL);
    assert_string_equal(err.msg, "definition: a Kubernetes object must be a mapping");
}

static void test_k8s_src_line_numbers(void **state)
{
    (void)state;
    struct aicp_err err = {0};
    char dir[] = "/tmp/aicp-kubeutil-XXXXXX";
    char path[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/m.yml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\n"
          "kind: Namespace\nmetadata: {name: [b\n",
          f);
    fclose(f);
    /* Relative to the task's directory. */
    assert_int_equal(check_upto_client(&aicp_mod_k8s, "{\"src\":\"m.yml\"}", dir, &err),
                     AICP_EINVAL);
    /* The unclosed flow sequence opens on line 7 of the whole file. */
    if (strncmp(err.msg, path, strlen(path)) != 0 || strstr(err.msg, "line 7, column 18") == NULL)
        fail_msg("error does not name line 7 of the second document: %s", err.msg);
    assert_int_equal(check_upto_client(&aicp_mod_k8s, "{\"src\":\"nope.yml\"}", dir, &err),
                     AICP_EIO);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diff_unchanged),     cmocka_unit_test(test_diff_create_and_update),
        cmocka_unit_test(test_diff_absent),        cmocka_unit_test(test_diff_replace),
        cmocka_unit_test(test_diff_secret_masked), cmocka_unit_test(test_diff_merge_patch),
        cmocka_unit_test(test_manifest_and_meta),  cmocka_unit_test(test_modules_need_client),
        cmocka_unit_test(test_k8s_definitions),    cmocka_unit_test(test_k8s_src_line_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
