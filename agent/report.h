/* The report of a validate or drift run, written for the two readers it
 * has: a person (one self-contained HTML page with a chart) and a CI system
 * (JUnit XML, and the JSON itself for anything else). The caller assembles
 * the run's results as one JSON object; this file only renders and writes
 * it, so the documents cannot disagree with each other.
 *
 * Schema of `report` (docs/reports.md says the same). Every field may be
 * missing or of another type: what is there is rendered, the rest is left
 * out, and nothing makes rendering fail except a report that is not an
 * object at all.
 *
 *   {"kind": "validate" | "drift",
 *    "site": NAME, "run_id": ID, "started": ISO8601, "finished": ISO8601,
 *    "aicp_version": "0.1.0",
 *    "checks": [ {"name": "resnet50 bare dgx01", "node": "dgx01",
 *                 "where": "bare" | "kubernetes",
 *                 "gpu_model": "Tesla V100-SXM2-32GB", "gpu_count": 8,
 *                 "driver_version": "535.104.05", "precision": "fp16",
 *                 "batch_size": 256, "images_per_sec": 6530.2,
 *                 "expected_images_per_sec": 6530, "lower_bound": 6203.5,
 *                 "tolerance": 0.05, "passed": true, "message": "...",
 *                 "seconds": 312.4}, ... ],
 *    "drift": null | {"resources": N,
 *                     "drifted": [ {"id": "storage_class/x",
 *                                   "fields": [ {"path": "reclaimPolicy",
 *                                                "want": "Retain",
 *                                                "have": "Delete"} ]} ],
 *                     "failed": [ {"id": ..., "message": ...} ],
 *                     "not_checked": [ {"id": ..., "message": why} ]},
 *                  (a drifted entry may carry "last_changed_by": "site=X run=Y"
 *                   and a field "manager", the Kubernetes field manager;
 *                   not_checked entries are junit <skipped>, not failures)
 *    "nodes": {"dgx01": {"nvidia_driver_version": ..., "kubelet_version": ...,
 *                        "kernel": ...}},          (any keys)
 *    "comparison": [ {"node": "dgx01", "bare": 6550.1, "kubernetes": 6530.2,
 *                     "overhead_pct": 0.30} ] }
 *
 * A check passes only when its "passed" is JSON true. report.json is the
 * input (masked) with "summary": {"checks", "passed", "failed", "drifted",
 * "drift_errors", "verdict": "pass" | "fail"} added (replacing any there).
 *
 * Rendering is deterministic: the same report gives the same bytes (no
 * clock is read; numbers have fixed formats), so golden files can pin it. */
#ifndef AICP_REPORT_H
#define AICP_REPORT_H

#include <jansson.h>

struct aicp_err;
struct aicp_secrets;

/* report: the run's results as JSON (schema above). Writes DIR/report.json,
 * DIR/junit.xml and DIR/report.html, each through a temp file in DIR and a
 * rename (never half-written); DIR is made (0755) if missing. Every string
 * is masked with secrets (agent/secret.h aicp_secrets_mask) before it is
 * written. secrets may be NULL. Returns 0, AICP_EINVAL (report is not an
 * object), AICP_ENOMEM or AICP_EIO (naming the path). */
int aicp_report_write(const char *dir, const json_t *report, const struct aicp_secrets *secrets,
                      struct aicp_err *err);

/* The same three documents as strings (for tests): *json, *junit, *html
 * malloc'd, owned by the caller; all NULL on failure. */
int aicp_report_render(const json_t *report, const struct aicp_secrets *secrets, char **json,
                       char **junit, char **html, struct aicp_err *err);

#endif
