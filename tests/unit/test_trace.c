/* Unit tests for the pure parts of `aicp trace` (agent/trace.c): which
 * ONTAP volume a live Trident claim and PV stand for, the run id and
 * snapshot-annotation syntax, which snapshots belong to a run, and the
 * human rendering of a trace document. The live reads are covered by
 * tests/integration/test_trace.sh against the fake API servers.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "trace.h"
#include "util.h"

static json_t *parse(const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, 0, &je);
    if (v == NULL)
        fail_msg("bad test JSON: %s", je.text);
    return v;
}

static void test_run_id(void **state)
{
    (void)state;
    assert_true(aicp_trace_run_id_ok("r1"));
    assert_true(aicp_trace_run_id_ok("2026-11-29.resnet_50"));
    assert_true(aicp_trace_run_id_ok("a"));
    assert_false(aicp_trace_run_id_ok(""));
    assert_false(aicp_trace_run_id_ok(NULL));
    assert_false(aicp_trace_run_id_ok("-r1"));
    assert_false(aicp_trace_run_id_ok("r1."));
    assert_false(aicp_trace_run_id_ok("bad id"));
    assert_false(aicp_trace_run_id_ok("r1,r2"));
    assert_false(aicp_trace_run_id_ok("r=1"));
    char long_id[65];
    memset(long_id, 'a', 64);
    long_id[64] = '\0';
    assert_false(aicp_trace_run_id_ok(long_id));
    long_id[63] = '\0';
    assert_true(aicp_trace_run_id_ok(long_id));
}

#define PV_INTERNAL                                                                                \
    "{\"spec\": {\"csi\": {\"driver\": \"csi.trident.netapp.io\", \"volumeAttributes\": "          \
    "{\"internalName\": \"trident_pvc_9f3e\", \"backendUUID\": \"b1\"}}}}"
#define PV_BARE "{\"spec\": {\"csi\": {\"driver\": \"csi.trident.netapp.io\"}}}"

static void test_pvc_volume(void **state)
{
    (void)state;
    const char *how = "unset";
    json_t *plain = parse("{\"metadata\": {\"name\": \"results\"}}");
    json_t *import = parse("{\"metadata\": {\"annotations\": "
                           "{\"trident.netapp.io/importOriginalName\": \"ds_r1\"}}}");
    json_t *norename = parse("{\"metadata\": {\"annotations\": "
                             "{\"trident.netapp.io/importOriginalName\": \"ds_r1\", "
                             "\"trident.netapp.io/importNoRename\": \"true\"}}}");
    json_t *unmanaged = parse("{\"metadata\": {\"annotations\": "
                              "{\"trident.netapp.io/importOriginalName\": \"ds_r1\", "
                              "\"trident.netapp.io/notManaged\": \"true\"}}}");
    json_t *norename_false = parse("{\"metadata\": {\"annotations\": "
                                   "{\"trident.netapp.io/importOriginalName\": \"ds_r1\", "
                                   "\"trident.netapp.io/importNoRename\": \"false\"}}}");
    json_t *pv_int = parse(PV_INTERNAL), *pv_bare = parse(PV_BARE);

    /* Provisioned by Trident: the PV's internalName. */
    assert_string_equal(aicp_trace_pvc_volume(plain, pv_int, &how), "trident_pvc_9f3e");
    assert_string_equal(how, "internalName");
    /* Nothing names it. */
    how = "unset";
    assert_null(aicp_trace_pvc_volume(plain, pv_bare, &how));
    assert_null(how);
    assert_null(aicp_trace_pvc_volume(plain, NULL, NULL));
    /* An import Trident renamed: the PV says to what. */
    assert_string_equal(aicp_trace_pvc_volume(import, pv_int, &how), "trident_pvc_9f3e");
    assert_string_equal(how, "internalName");
    assert_string_equal(aicp_trace_pvc_volume(norename_false, pv_int, &how), "trident_pvc_9f3e");
    /* An import kept under its name (no rename, or not managed). */
    assert_string_equal(aicp_trace_pvc_volume(norename, pv_int, &how), "ds_r1");
    assert_string_equal(how, "importOriginalName");
    assert_string_equal(aicp_trace_pvc_volume(unmanaged, pv_int, &how), "ds_r1");
    /* An import whose PV names nothing: its original name. */
    assert_string_equal(aicp_trace_pvc_volume(import, pv_bare, &how), "ds_r1");
    assert_string_equal(how, "importOriginalName");
    assert_string_equal(aicp_trace_pvc_volume(import, NULL, NULL), "ds_r1");

    json_decref(plain);
    json_decref(import);
    json_decref(norename);
    json_decref(unmanaged);
    json_decref(norename_false);
    json_decref(pv_int);
    json_decref(pv_bare);
}

static void test_snapref(void **state)
{
    (void)state;
    char svm[32], vol[32], snap[32];
    assert_int_equal(aicp_trace_parse_snapref("ontapai_nfs:ds_r1@baseline-r1", svm, sizeof(svm),
                                              vol, sizeof(vol), snap, sizeof(snap)),
                     0);
    assert_string_equal(svm, "ontapai_nfs");
    assert_string_equal(vol, "ds_r1");
    assert_string_equal(snap, "baseline-r1");
    /* The SVM may be left out. */
    assert_int_equal(aicp_trace_parse_snapref("ds_r1@baseline-r1", svm, sizeof(svm), vol,
                                              sizeof(vol), snap, sizeof(snap)),
                     0);
    assert_string_equal(svm, "");
    assert_string_equal(vol, "ds_r1");
    static const char *const bad[] = {
        "",          "ds_r1",     "ds_r1@",    "@snap",
        "svm:@snap", ":v@s",      "svm:v@s@t", "svm:v@s:t",
        "svm:v w@s", "svm:v@s\n", "a/b@s",     "svm:vol@snap-with-a-name-too-long-for-the-buffer",
        NULL,
    };
    for (size_t i = 0; bad[i]; i++) {
        int rc = aicp_trace_parse_snapref(bad[i], svm, sizeof(svm), vol, sizeof(vol), snap,
                                          sizeof(snap));
        if (rc != AICP_EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
    }
    assert_int_equal(
        aicp_trace_parse_snapref(NULL, svm, sizeof(svm), vol, sizeof(vol), snap, sizeof(snap)),
        AICP_EINVAL);
}

static void test_snapshot_role(void **state)
{
    (void)state;
    assert_string_equal(aicp_trace_snapshot_role("r1", "baseline-r1", NULL), "baseline");
    assert_string_equal(aicp_trace_snapshot_role("r1", "model-r1-pre", "x"), "model-pre");
    assert_string_equal(aicp_trace_snapshot_role("r1", "model-r1-post", NULL), "model-post");
    assert_string_equal(aicp_trace_snapshot_role("r1", "nightly.0", "aicp run r1: extra"), "run");
    /* Another run's, or nobody's. */
    assert_null(aicp_trace_snapshot_role("r1", "baseline-r10", NULL));
    assert_null(aicp_trace_snapshot_role("r1", "baseline-r2", "aicp run r2: dataset"));
    assert_null(aicp_trace_snapshot_role("r1", "model-r1", NULL));
    assert_null(aicp_trace_snapshot_role("r1", "nightly.0", "aicp run r10: x"));
    assert_null(aicp_trace_snapshot_role("r1", "x", "aicp run r1 without the colon"));
    assert_null(aicp_trace_snapshot_role(NULL, "baseline-r1", NULL));
    assert_null(aicp_trace_snapshot_role("", "baseline-", NULL));
    assert_null(aicp_trace_snapshot_role("r1", NULL, NULL));
}

static const char DOC[] =
    "{\"run_id\": \"r1\", \"complete\": true, \"missing\": [], \"notes\": [],"
    " \"dataset\": {\"cluster\": \"lab\", \"svm\": \"svm1\", \"volume\": \"ds\","
    "  \"snapshot\": \"baseline-r1\", \"create_time\": \"T1\"},"
    " \"jobs\": [{\"namespace\": \"ml\", \"name\": \"train\", \"status\": \"Complete\","
    "  \"created\": \"T0\", \"completion_time\": \"T2\","
    "  \"dataset_snapshot\": \"svm1:ds@baseline-r1\","
    "  \"pvcs\": [{\"namespace\": \"ml\", \"name\": \"data\", \"pv\": \"pv-1\","
    "              \"via\": \"internalName\","
    "              \"volume\": {\"cluster\": \"lab\", \"svm\": \"svm1\", \"name\": \"ds\"}},"
    "             {\"namespace\": \"ml\", \"name\": \"scratch\", \"pv\": \"pv-2\","
    "              \"note\": \"not a Trident volume (driver hostpath): not traced into ONTAP\"}]}],"
    " \"volumes\": [{\"cluster\": \"lab\", \"svm\": \"svm1\", \"name\": \"ds\","
    "  \"size\": 1610612736, \"created\": \"T-1\", \"roles\": [\"pvc ml/data\", \"dataset\"],"
    "  \"snapshots\": [{\"name\": \"baseline-r1\", \"role\": \"baseline\","
    "    \"create_time\": \"T1\", \"comment\": \"aicp run r1: data\","
    "    \"clones\": [{\"cluster\": \"lab\", \"svm\": \"svm1\", \"name\": \"ds_ws\","
    "                  \"size\": 1610612736, \"created\": \"T3\"}]}]}]}";

static const char WANT[] =
    "run r1\n"
    "|- dataset: svm1:ds@baseline-r1 (lab), snapshot created T1\n"
    "|- Job ml/train: Complete, created T0, finished T2\n"
    "|  dataset snapshot: svm1:ds@baseline-r1\n"
    "|  |- PVC ml/data -> PV pv-1 -> ONTAP volume svm1:ds (lab, by internalName)\n"
    "|  `- PVC ml/scratch -> PV pv-2 (not a Trident volume (driver hostpath): not traced into "
    "ONTAP)\n"
    "`- ONTAP volume svm1:ds (lab), 1.5 GiB, created T-1\n"
    "   used as: pvc ml/data, dataset\n"
    "   `- snapshot baseline-r1 [baseline], created T1, \"aicp run r1: data\"\n"
    "      `- clone svm1:ds_ws (lab), 1.5 GiB, created T3\n"
    "trace complete\n";

static void test_render(void **state)
{
    (void)state;
    json_t *doc = parse(DOC);
    struct aicp_buf b = AICP_BUF_INIT;
    assert_int_equal(aicp_trace_render(&b, doc), 0);
    assert_string_equal(b.data, WANT);
    aicp_buf_free(&b);
    json_decref(doc);
}

static void test_render_missing(void **state)
{
    (void)state;
    json_t *doc = parse("{\"run_id\": \"r9\", \"complete\": false, \"dataset\": null,"
                        " \"jobs\": [], \"volumes\": [],"
                        " \"notes\": [\"no Job: scanned\"],"
                        " \"missing\": [\"no Job labelled aicp.io/run-id=r9\","
                        "               \"no snapshot of run r9\"]}");
    struct aicp_buf b = AICP_BUF_INIT;
    assert_int_equal(aicp_trace_render(&b, doc), 0);
    assert_string_equal(b.data, "run r9\n"
                                "|- dataset: not found\n"
                                "`- no Job\n"
                                "note: no Job: scanned\n"
                                "trace incomplete: 2 missing\n"
                                "  missing: no Job labelled aicp.io/run-id=r9\n"
                                "  missing: no snapshot of run r9\n");
    aicp_buf_free(&b);
    json_decref(doc);

    /* A Job with no run id, no annotation, no claims; a volume of unknown
     * size with no snapshot of the run. */
    doc = parse("{\"complete\": false, \"missing\": [\"x\"],"
                " \"jobs\": [{\"namespace\": \"ml\", \"name\": \"j\", \"status\": \"Running\","
                "            \"created\": \"T0\", \"pvcs\": []}],"
                " \"volumes\": [{\"cluster\": \"c\", \"svm\": \"s\", \"name\": \"v\","
                "              \"roles\": [], \"snapshots\": []}]}");
    assert_int_equal(aicp_trace_render(&b, doc), 0);
    assert_string_equal(b.data, "run (unknown: no aicp.io/run-id label)\n"
                                "|- dataset: not found\n"
                                "|- Job ml/j: Running, created T0\n"
                                "|  dataset snapshot: (no aicp.io/dataset-snapshot)\n"
                                "|  `- mounts no PVC\n"
                                "`- ONTAP volume s:v (c), size unknown, created -\n"
                                "   `- no snapshot of this run\n"
                                "trace incomplete: 1 missing\n"
                                "  missing: x\n");
    aicp_buf_free(&b);
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_id),  cmocka_unit_test(test_pvc_volume),
        cmocka_unit_test(test_snapref), cmocka_unit_test(test_snapshot_role),
        cmocka_unit_test(test_render),  cmocka_unit_test(test_render_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
