/* `aicp trace SITE RUN_ID` and `aicp trace SITE --job NAME`: the lineage of
 * a training run, read live from Kubernetes and ONTAP (docs/trace.md). A
 * run is tied together by the conventions of the training-run playbook: the
 * Job carries the label aicp.io/run-id and the annotations
 * aicp.io/dataset-snapshot ("svm:volume@baseline-RUN") and
 * aicp.io/model-snapshot; ONTAP snapshots are named baseline-RUN,
 * model-RUN-pre and model-RUN-post, with comments "aicp run RUN: ...";
 * FlexClones name their parent snapshot. The trace walks Job -> PVCs -> PVs
 * -> ONTAP volumes -> the run's snapshots -> the clones made from them, and
 * says what is missing instead of failing.
 *
 * The pure parts (the PVC-to-volume mapping, the annotation syntax, which
 * snapshots belong to a run, the rendering) are exported for the unit
 * tests in tests/unit/test_trace.c.
 */
#ifndef AICP_TRACE_H
#define AICP_TRACE_H

#include <stddef.h>
#include <jansson.h>

struct aicp_buf;

#define AICP_TRACE_LABEL "aicp.io/run-id"
#define AICP_TRACE_DATASET "aicp.io/dataset-snapshot"
#define AICP_TRACE_MODEL "aicp.io/model-snapshot"

/* 1 when s can be a run id: a Kubernetes label value that is not empty (at
 * most 63 characters, [A-Za-z0-9] at both ends, [-_.A-Za-z0-9] between). */
int aicp_trace_run_id_ok(const char *s);

/* The ONTAP volume behind a live Trident claim and its PV, by the rule of
 * drift's cross-layer pass (aicp_site_cross_want) applied to what the
 * cluster says rather than to the site file: an import that Trident did not
 * rename (annotation trident.netapp.io/importNoRename or notManaged "true")
 * keeps its original name (trident.netapp.io/importOriginalName); otherwise
 * the PV's spec.csi.volumeAttributes.internalName; an import whose PV names
 * no internalName, its original name. Borrowed from pvc or pv; NULL when
 * neither says. *how (may be NULL) is "importOriginalName" or
 * "internalName". */
const char *aicp_trace_pvc_volume(const json_t *pvc, const json_t *pv, const char **how);

/* Splits an aicp.io/dataset-snapshot or model-snapshot annotation, "svm:volume@snapshot" (the
 * "svm:" part optional: *svm is then ""). 0, or AICP_EINVAL when the value
 * does not have that shape or a part does not fit. */
int aicp_trace_parse_snapref(const char *s, char *svm, size_t svm_cap, char *vol, size_t vol_cap,
                             char *snap, size_t snap_cap);

/* What a snapshot is to run run_id: "baseline" (baseline-RUN), "model-pre",
 * "model-post" (model-RUN-pre/-post), "run" (another name whose comment
 * starts with "aicp run RUN:"), or NULL when it is not the run's. comment
 * may be NULL. */
const char *aicp_trace_snapshot_role(const char *run_id, const char *name, const char *comment);

/* Appends the human form of a trace document (what aicp_trace_main builds:
 * run_id, complete, missing, notes, jobs, volumes, dataset) to out: a
 * tree, the run's dataset first, what is missing last. */
int aicp_trace_render(struct aicp_buf *out, const json_t *doc);

/* `aicp trace SITE RUN_ID [options]` or `aicp trace SITE --job NAME
 * [--namespace NS] [options]`; argv[0] is "trace". Returns the exit status:
 * 0 the trace is complete, 2 something is missing (named), 1 an API could
 * not be read, 64 usage, 65 an invalid site file. */
int aicp_trace_main(int argc, char **argv);

#endif
