/* What a run prints and records: Ansible-style lines per task and host, the
 * PLAY RECAP, and the JSON report (--json FILE). Results are masked here,
 * in one place: no_log results are censored and secret values never leave. */
#ifndef AICP_OUTPUT_H
#define AICP_OUTPUT_H

#include <stdio.h>
#include <jansson.h>

struct aicp_err;
struct aicp_secrets;

enum aicp_status {
    AICP_ST_OK = 0,
    AICP_ST_CHANGED,
    AICP_ST_FAILED,
    AICP_ST_SKIPPED,
    AICP_ST_UNREACHABLE,
};

struct aicp_stats {
    int ok, changed, unreachable, failed, skipped, rescued, ignored;
    unsigned long round_trips; /* execs sent to the host (JSON report only) */
};

struct aicp_output;

/* out: where lines go (stdout). verbose: -v count. */
int aicp_output_new(struct aicp_output **out, FILE *fp, int verbose, int diff);
void aicp_output_free(struct aicp_output *o);
/* Every value in s is masked in all the output writes from now on: lines,
 * warnings, diffs and the JSON report. s is borrowed. */
void aicp_output_set_secrets(struct aicp_output *o, const struct aicp_secrets *s);

void aicp_output_play(struct aicp_output *o, const char *name, int check);
/* kind: "TASK" or "RUNNING HANDLER". */
void aicp_output_task(struct aicp_output *o, const char *kind, const char *name, int check);
/* One host's result of the current task. result is the Ansible-shaped result
 * (changed, msg, rc, stdout, ...); item_label non-NULL for loop items.
 * diff_text is printed with --diff (or is NULL). ignored: failure ignored. */
void aicp_output_result(struct aicp_output *o, const char *host, enum aicp_status st,
                        const json_t *result, const char *item_label, const char *diff_text,
                        int no_log, int ignored, double seconds);
/* "included: FILE for HOSTS => (item=X)" (item may be NULL). */
void aicp_output_included(struct aicp_output *o, const char *file, const char *hosts,
                          const char *item);
/* "...ignoring" after a failed loop whose failure is ignored. */
void aicp_output_ignoring(struct aicp_output *o);
/* The "skipping: [host]" line Ansible prints after a loop whose items
 * were all skipped (with -v, the loop's result); the report is untouched. */
void aicp_output_loop_skipped(struct aicp_output *o, const char *host, const json_t *full,
                              int no_log);
/* A play whose pattern matched no host; a play stopped by max_fail_percentage. */
void aicp_output_no_hosts(struct aicp_output *o);
void aicp_output_no_more_hosts(struct aicp_output *o);
/* hosts: array of host names; stats: parallel array. */
void aicp_output_recap(struct aicp_output *o, const json_t *hosts, const struct aicp_stats *stats);
/* Writes the report as JSON to path (atomically, 0600). */
int aicp_output_write_json(struct aicp_output *o, const char *path, struct aicp_err *err);

/* The string Ansible shows in place of a no_log result. */
#define AICP_NO_LOG_MSG "the output has been hidden due to the fact that 'no_log: true' was specified for this result"

#endif
