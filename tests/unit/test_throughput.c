/* Unit tests of agent/throughput.c (the validate module's parsing,
 * expectation and verdict) on real benchmark output: aicp-trainbench's
 * human and JSON lines and tf_cnn_benchmarks' log as the TR-4798 seed
 * shows it; and of the validate module's argument checks, which fail
 * before anything runs on a node. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "module.h"
#include "throughput.h"

extern const struct aicp_module aicp_mod_validate;

static const char trainbench_out[] =
    "resnet-tiny on cpu (fp32), batch 32, 3 timed steps after 1 warm-up, 2 threads\n"
    "step time ms: p50 21.04  p90 21.31  p99 21.31; loss 2.3273 -> 2.2605; 0.006 TFLOPS\n"
    "Total images/sec = 1546.78\n"
    "{\"model\":\"resnet-tiny\",\"device\":\"cpu\",\"precision\":\"fp32\",\"batch_size\":32,"
    "\"steps\":3,\"warmup\":1,\"threads\":2,\"lr\":0.0125,\"images_per_sec\":1546.78,"
    "\"images_per_sec_per_gpu\":1546.78,\"step_ms\":{\"p50\":21.0397,\"p90\":21.3078,"
    "\"p99\":21.3078},\"final_loss\":2.26047,\"data\":\"synthetic\"}\n"
    "step 1/4 (warm-up)  loss 2.3273  985.76 images/sec\n"
    "step 4/4  loss 2.2605  1546.78 images/sec\n";

/* tf_cnn_benchmarks as the seed's Job log has it (8 V100s of a DGX-1). */
static const char tf_cnn_log[] =
    "TensorFlow:  1.13\n"
    "Model:       resnet50\n"
    "Batch size:  2048 global\n"
    "             256 per device\n"
    "Num GPUs:    8\n"
    "Step\tImg/sec\ttotal_loss\n"
    "1\timages/sec: 6390.1 +/- 0.0 (jitter = 0.0)\t7.788\n"
    "10\timages/sec: 6527.9 +/- 9.2 (jitter = 21.3)\t7.820\n"
    "100\timages/sec: 6530.3 +/- 2.1 (jitter = 18.7)\t7.673\n"
    "----------------------------------------------------------------\n"
    "total images/sec: 6530.24\n"
    "----------------------------------------------------------------\n";

static void test_trainbench_lines(void **state)
{
    (void)state;
    struct aicp_tp_parse p;
    struct aicp_err err = {0};
    assert_int_equal(aicp_tp_parse(&p, trainbench_out, NULL, &err), 0);
    assert_true(fabs(p.images_per_sec - 1546.78) < 1e-9);
    assert_string_equal(p.line, "Total images/sec = 1546.78");
    assert_non_null(p.report);
    assert_true(
        fabs(json_number_value(json_object_get(json_object_get(p.report, "step_ms"), "p50")) -
             21.0397) < 1e-9);
    assert_int_equal(json_array_size(p.progress), 2);
    assert_string_equal(json_string_value(json_array_get(p.progress, 1)),
                        "step 4/4  loss 2.2605  1546.78 images/sec");
    aicp_tp_parse_clear(&p);
}

static void test_tf_cnn_benchmarks(void **state)
{
    (void)state;
    struct aicp_tp_parse p;
    struct aicp_err err = {0};
    assert_int_equal(aicp_tp_parse(&p, tf_cnn_log, NULL, &err), 0);
    assert_true(fabs(p.images_per_sec - 6530.24) < 1e-9);
    assert_string_equal(p.line, "total images/sec: 6530.24");
    assert_null(p.report);
    /* the per-step lines are progress, not the total */
    assert_int_equal(json_array_size(p.progress), 3);
    aicp_tp_parse_clear(&p);
    /* the seed's other spelling, with CRLF line ends */
    assert_int_equal(aicp_tp_parse(&p, "x\r\ntotal images/sec: 6530.32\r\n", NULL, &err), 0);
    assert_true(fabs(p.images_per_sec - 6530.32) < 1e-9);
    assert_string_equal(p.line, "total images/sec: 6530.32");
    aicp_tp_parse_clear(&p);
}

static void test_no_match(void **state)
{
    (void)state;
    struct aicp_tp_parse p;
    struct aicp_err err = {0};
    assert_int_equal(aicp_tp_parse(&p, "training...\nloss 2.3\n", NULL, &err), AICP_ENOTFOUND);
    assert_non_null(strstr(err.msg, "no throughput line matching"));
    aicp_tp_parse_clear(&p);
    assert_int_equal(aicp_tp_parse(&p, "", NULL, &err), AICP_ENOTFOUND);
    aicp_tp_parse_clear(&p);
    assert_int_equal(aicp_tp_parse(&p, NULL, NULL, &err), AICP_ENOTFOUND);
    aicp_tp_parse_clear(&p);
    /* a user regex that does not match: no silent fallback to the JSON line */
    assert_int_equal(aicp_tp_parse(&p, trainbench_out, "throughput ([0-9.]+)", &err),
                     AICP_ENOTFOUND);
    assert_non_null(strstr(err.msg, "throughput ([0-9.]+)"));
    aicp_tp_parse_clear(&p);
}

static void test_last_match_wins(void **state)
{
    (void)state;
    struct aicp_tp_parse p;
    struct aicp_err err = {0};
    const char *two = "Total images/sec = 100.5\nrerun\nTotal images/sec = 200.25\ntrailer\n";
    assert_int_equal(aicp_tp_parse(&p, two, NULL, &err), 0);
    assert_true(fabs(p.images_per_sec - 200.25) < 1e-9);
    aicp_tp_parse_clear(&p);
    /* no newline at the end */
    assert_int_equal(aicp_tp_parse(&p, "Total images/sec = 7", NULL, &err), 0);
    assert_true(fabs(p.images_per_sec - 7) < 1e-9);
    aicp_tp_parse_clear(&p);
}

static void test_commas_and_case(void **state)
{
    (void)state;
    struct aicp_tp_parse p;
    struct aicp_err err = {0};
    assert_int_equal(aicp_tp_parse(&p, "TOTAL IMAGES/SEC = 6,530.24\n", NULL, &err), 0);
    assert_true(fabs(p.images_per_sec - 6530.24) < 1e-9);
    aicp_tp_parse_clear(&p);
    assert_int_equal(aicp_tp_parse(&p, "Total images/sec=12,345\n", NULL, &err), 0);
    assert_true(fabs(p.images_per_sec - 12345) < 1e-9);
    aicp_tp_parse_clear(&p);
    /* a user regex is taken as written, case and all */
    assert_int_equal(
        aicp_tp_parse(&p, "Throughput: 812.5 img/s\n", "Throughput: ([0-9.]+) img/s", &err), 0);
    assert_true(fabs(p.images_per_sec - 812.5) < 1e-9);
    aicp_tp_parse_clear(&p);
    assert_int_equal(
        aicp_tp_parse(&p, "THROUGHPUT: 812.5 img/s\n", "Throughput: ([0-9.]+) img/s", &err),
        AICP_ENOTFOUND);
    aicp_tp_parse_clear(&p);
}

static void test_bad_figures(void **state)
{
    (void)state;
    struct aicp_tp_parse p;
    struct aicp_err err = {0};
    assert_int_equal(aicp_tp_parse(&p, "total images/sec: nan\n", NULL, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "not a finite number"));
    aicp_tp_parse_clear(&p);
    assert_int_equal(aicp_tp_parse(&p, "Total images/sec = inf\n", NULL, &err), AICP_EINVAL);
    aicp_tp_parse_clear(&p);
    assert_int_equal(aicp_tp_parse(&p, "Total images/sec = -3.5\n", NULL, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "negative"));
    aicp_tp_parse_clear(&p);
    assert_int_equal(aicp_tp_parse(&p, "Total images/sec = 1.2.3\n", NULL, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "not a number"));
    aicp_tp_parse_clear(&p);
    /* a JSON report whose figure is null is not a report */
    assert_int_equal(aicp_tp_parse(&p, "{\"images_per_sec\":null}\n", NULL, &err), AICP_ENOTFOUND);
    aicp_tp_parse_clear(&p);
}

static void test_bad_regex(void **state)
{
    (void)state;
    struct aicp_tp_parse p;
    struct aicp_err err = {0};
    assert_int_equal(aicp_tp_parse(&p, "x", "total ([0-9", &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "not a valid POSIX extended regular expression"));
    aicp_tp_parse_clear(&p);
    assert_int_equal(aicp_tp_parse(&p, "x", "total [0-9]+", &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "no parenthesised group"));
    aicp_tp_parse_clear(&p);
}

static void test_json_only(void **state)
{
    (void)state;
    struct aicp_tp_parse p;
    struct aicp_err err = {0};
    /* aicp-trainbench --json prints only its JSON line */
    const char *line = strchr(trainbench_out, '{');
    assert_int_equal(aicp_tp_parse(&p, line, NULL, &err), 0);
    assert_true(fabs(p.images_per_sec - 1546.78) < 1e-9);
    assert_non_null(p.line);
    assert_non_null(strstr(p.line, "\"images_per_sec\""));
    aicp_tp_parse_clear(&p);
}

static void test_gpus_parse(void **state)
{
    (void)state;
    json_t *g = aicp_tp_gpus_parse("Tesla V100-SXM2-32GB, 535.104.05, 32768 MiB\n"
                                   "Tesla V100-SXM2-32GB, 535.104.05, 32768 MiB\n");
    assert_int_equal(json_array_size(g), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(g, 1), "name")),
                        "Tesla V100-SXM2-32GB");
    assert_string_equal(json_string_value(json_object_get(json_array_get(g, 0), "driver_version")),
                        "535.104.05");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(g, 0), "memory_mib")),
                     32768);
    json_decref(g);
    g = aicp_tp_gpus_parse("No devices were found\n");
    assert_int_equal(json_array_size(g), 0);
    json_decref(g);
    g = aicp_tp_gpus_parse("");
    assert_int_equal(json_array_size(g), 0);
    json_decref(g);
}

static void test_gpu_label(void **state)
{
    (void)state;
    char buf[128];
    json_t *g = json_pack("[{s:s},{s:s},{s:s}]", "name", "A100", "name", "A100", "name", "T4");
    aicp_tp_gpu_label(buf, sizeof(buf), g, 2);
    assert_string_equal(buf, "2x A100");
    aicp_tp_gpu_label(buf, sizeof(buf), g, 3);
    assert_string_equal(buf, "2x A100, 1x T4");
    aicp_tp_gpu_label(buf, sizeof(buf), g, 0);
    assert_string_equal(buf, "cpu");
    json_decref(g);
}

static json_t *dgx1(void)
{
    json_t *g = json_array();
    for (int i = 0; i < 8; i++)
        json_array_append_new(g, json_pack("{s:s}", "name", "Tesla V100-SXM2-32GB"));
    return g;
}

static void test_expected(void **state)
{
    (void)state;
    struct aicp_err err = {0};
    double e = 0;
    json_t *g = dgx1();
    json_t *table = json_pack("{s:i, s:f}", "Tesla V100-SXM2-32GB", 816, "A100-SXM4-80GB", 2500.0);
    json_t *abs = json_real(6530);

    assert_int_equal(aicp_tp_expected(&e, abs, NULL, g, 8, &err), 0);
    assert_true(fabs(e - 6530) < 1e-9);
    assert_int_equal(aicp_tp_expected(&e, NULL, table, g, 8, &err), 0);
    assert_true(fabs(e - 8 * 816) < 1e-9);
    assert_int_equal(aicp_tp_expected(&e, NULL, table, g, 4, &err), 0);
    assert_true(fabs(e - 4 * 816) < 1e-9);
    /* neither: measure only */
    assert_int_equal(aicp_tp_expected(&e, NULL, NULL, g, 8, &err), 0);
    assert_true(e < 0);
    /* both */
    assert_int_equal(aicp_tp_expected(&e, abs, table, g, 8, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "mutually exclusive"));
    /* GPU feature discovery's label and a newer driver's name find the entry */
    json_t *gfd =
        json_pack("[{s:s},{s:s}]", "name", "Tesla-V100-SXM2-32GB", "name", "NVIDIA A100-SXM4-80GB");
    assert_int_equal(aicp_tp_expected(&e, NULL, table, gfd, 2, &err), 0);
    assert_true(fabs(e - (816 + 2500)) < 1e-9);
    json_decref(gfd);
    /* a model that is not in the table */
    json_t *t4 = json_pack("[{s:s}]", "name", "Tesla T4");
    assert_int_equal(aicp_tp_expected(&e, NULL, table, t4, 1, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "no entry for GPU model 'Tesla T4'"));
    assert_non_null(strstr(err.msg, "'Tesla V100-SXM2-32GB'"));
    json_decref(t4);
    /* zero GPUs: the CPU path is looked up as "cpu" */
    json_t *empty = json_array();
    assert_int_equal(aicp_tp_expected(&e, NULL, table, empty, 0, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "'cpu'"));
    json_t *cpu = json_pack("{s:i}", "cpu", 900);
    assert_int_equal(aicp_tp_expected(&e, NULL, cpu, empty, 0, &err), 0);
    assert_true(fabs(e - 900) < 1e-9);
    /* more GPUs asked for than there are */
    assert_int_equal(aicp_tp_expected(&e, NULL, table, empty, 2, &err), AICP_EINVAL);
    /* bad values */
    json_t *zero = json_pack("{s:i}", "Tesla V100-SXM2-32GB", 0);
    assert_int_equal(aicp_tp_expected(&e, NULL, zero, g, 8, &err), AICP_EINVAL);
    json_t *neg = json_real(-1);
    assert_int_equal(aicp_tp_expected(&e, neg, NULL, g, 8, &err), AICP_EINVAL);
    json_t *nan = json_string("fast"); /* jansson has no NaN: a non-number stands for it */
    assert_int_equal(aicp_tp_expected(&e, nan, NULL, g, 8, &err), AICP_EINVAL);
    json_decref(nan);
    json_decref(neg);
    json_decref(zero);
    json_decref(cpu);
    json_decref(empty);
    json_decref(abs);
    json_decref(table);
    json_decref(g);
}

static void test_verdict(void **state)
{
    (void)state;
    struct aicp_err err = {0};
    struct aicp_tp_verdict v;

    assert_int_equal(
        aicp_tp_judge(&v, "dgx01", "8x Tesla V100-SXM2-32GB", 5210.4, 6530, 0.05, &err), 0);
    assert_false(v.passed);
    assert_true(fabs(v.lower - 6203.5) < 1e-9);
    assert_string_equal(v.msg, "dgx01 (8x Tesla V100-SXM2-32GB): 5210.4 images/sec, expected at "
                               "least 6203.5 (6530 -5%)");
    assert_int_equal(
        aicp_tp_judge(&v, "dgx01", "8x Tesla V100-SXM2-32GB", 6530.24, 6530, 0.05, &err), 0);
    assert_true(v.passed);
    assert_non_null(strstr(v.msg, "passed"));
    /* exactly at the bound passes */
    assert_int_equal(aicp_tp_judge(&v, "n", "cpu", 95, 100, 0.05, &err), 0);
    assert_true(v.passed);
    assert_int_equal(aicp_tp_judge(&v, "n", "cpu", 94.99, 100, 0.05, &err), 0);
    assert_false(v.passed);
    /* tolerance 0: the full figure */
    assert_int_equal(aicp_tp_judge(&v, "n", "cpu", 99.9, 100, 0, &err), 0);
    assert_false(v.passed);
    /* no expectation */
    assert_int_equal(aicp_tp_judge(&v, "n", "cpu", 12, -1, 0.05, &err), 0);
    assert_true(v.passed);
    assert_non_null(strstr(v.msg, "no expectation"));
    /* bad inputs */
    assert_int_equal(aicp_tp_judge(&v, "n", "cpu", NAN, 100, 0.05, &err), AICP_EINVAL);
    assert_int_equal(aicp_tp_judge(&v, "n", "cpu", 10, 100, 1.0, &err), AICP_EINVAL);
    assert_int_equal(aicp_tp_judge(&v, "n", "cpu", 10, 100, -0.1, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "tolerance"));
}

/* The module's own argument checks: they fail before any I/O, so a
 * context without a connection is enough. */
static int run_check(const char *yaml_json, struct aicp_err *err)
{
    struct aicp_args args = {0};
    json_t *raw = json_loads(yaml_json, 0, NULL);
    json_t *vars = json_object(), *result = json_object(), *cur = NULL;
    struct aicp_ctx ctx = {.host = "node01", .vars = vars, .result = result};
    int rc = aicp_args_validate(&args, &aicp_mod_validate, raw, 0, err);
    if (rc == 0)
        rc = aicp_mod_validate.ops->check(&ctx, &args, &cur, err);
    json_decref(cur);
    aicp_args_clear(&args);
    json_decref(raw);
    json_decref(vars);
    json_decref(result);
    return rc;
}

static void test_module_args(void **state)
{
    (void)state;
    struct aicp_err err = {0};
    assert_int_equal(
        run_check("{\"expected_images_per_sec\": 1, \"expected_per_gpu\": {\"a\": 1}}", &err),
        AICP_EINVAL);
    assert_non_null(strstr(err.msg, "mutually exclusive"));
    assert_int_equal(run_check("{\"benchmark\": \"container\"}", &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "needs image"));
    assert_int_equal(run_check("{\"where\": \"kubernetes\"}", &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "needs image"));
    assert_int_equal(run_check("{\"tolerance\": 1.5}", &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "tolerance"));
    assert_int_equal(run_check("{\"gpus\": 0}", &err), AICP_EINVAL);
    assert_int_equal(run_check("{\"throughput_regex\": \"([0-9\"}", &err), AICP_EINVAL);
    assert_int_equal(run_check("{\"env\": {\"1X\": \"a\"}}", &err), AICP_EINVAL);
    assert_int_equal(run_check("{\"where\": \"moon\"}", &err), AICP_EINVAL);
    /* valid arguments get as far as the missing connection */
    assert_int_equal(run_check("{\"device\": \"cpu\"}", &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "needs a connection"));
    /* kubernetes without a client says so */
    assert_int_equal(run_check("{\"where\": \"kubernetes\", \"image\": \"x\"}", &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "Kubernetes"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trainbench_lines), cmocka_unit_test(test_tf_cnn_benchmarks),
        cmocka_unit_test(test_no_match),         cmocka_unit_test(test_last_match_wins),
        cmocka_unit_test(test_commas_and_case),  cmocka_unit_test(test_bad_figures),
        cmocka_unit_test(test_bad_regex),        cmocka_unit_test(test_json_only),
        cmocka_unit_test(test_gpus_parse),       cmocka_unit_test(test_gpu_label),
        cmocka_unit_test(test_expected),         cmocka_unit_test(test_verdict),
        cmocka_unit_test(test_module_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
