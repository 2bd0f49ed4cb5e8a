/* The pure logic of the validate module (modules/validate.c): finding a
 * training benchmark's throughput in its output, working out what the site
 * expects of a node (an absolute figure, or a per-GPU-model table times the
 * GPUs used), and judging the one against the other within a tolerance.
 * Nothing here does I/O, so the unit tests drive it with the seed's real
 * log lines. */
#ifndef AICP_THROUGHPUT_H
#define AICP_THROUGHPUT_H

#include <stddef.h>

#include <jansson.h>

struct aicp_err;

/* The default throughput pattern, matched case-insensitively: both
 * aicp-trainbench's "Total images/sec = 1197.97" and tf_cnn_benchmarks'
 * "total images/sec: 6530.24". The number is subexpression 1; "nan" and
 * "inf" are captured too, so that a diverged run is said so, not "no
 * line found". */
#define AICP_TP_DEFAULT_REGEX                                                                      \
    "total images/sec[[:space:]]*[:=][[:space:]]*(nan|[-+]?inf[a-z]*|[-+]?[0-9.,]*[0-9][0-9.,]*)"

/* At most this many progress lines are kept (the last ones). */
#define AICP_TP_PROGRESS_MAX 20

/* What a benchmark's output says. */
struct aicp_tp_parse {
    double images_per_sec; /* the last matching line's figure */
    char *line;            /* that line, without its newline; malloc'd */
    json_t *report;        /* aicp-trainbench's JSON line (the last one), or NULL */
    json_t *progress;      /* other lines that mention images/sec (the last
                            * AICP_TP_PROGRESS_MAX), as strings; never NULL after
                            * a successful parse */
};

/* Scans text line by line for regex (a POSIX extended regular expression
 * whose first parenthesised subexpression is the figure; NULL: the default,
 * case-insensitive). Several matches: the last one wins (a log that holds
 * more than one run reports the latest). The figure may hold thousands
 * separators ("6,530.24"). With the default regex and no matching line,
 * the JSON line's images_per_sec is used (aicp-trainbench --json).
 * Errors: AICP_EINVAL for a regex that does not compile or has no
 * subexpression, or a figure that is not a finite number >= 0 ("nan");
 * AICP_ENOTFOUND when nothing matches. Clear out with aicp_tp_parse_clear
 * (also after an error). */
int aicp_tp_parse(struct aicp_tp_parse *out, const char *text, const char *regex,
                  struct aicp_err *err);
void aicp_tp_parse_clear(struct aicp_tp_parse *p);

/* Parses nvidia-smi --query-gpu=name,driver_version,memory.total
 * --format=csv,noheader into a new array of {"name", "driver_version",
 * "memory_mib" (integer or null)}; lines that are not GPUs ("No devices
 * were found") are skipped. */
json_t *aicp_tp_gpus_parse(const char *csv);

/* "8x Tesla V100-SXM2-32GB" for the first `used` GPUs of gpus, "1x A, 2x
 * B" when they differ, "cpu" when used is 0. */
void aicp_tp_gpu_label(char *buf, size_t cap, const json_t *gpus, size_t used);

/* The expected images/sec of a node: absolute (a number, or NULL) or the
 * sum over the first `used` GPUs of per_gpu[model] (an object of numbers,
 * or NULL). The table's keys match nvidia-smi's names exactly, else
 * ignoring case, a leading "NVIDIA " or "Tesla ", and '-' versus ' ' (so
 * GPU feature discovery's "Tesla-V100-SXM2-32GB" label finds "Tesla
 * V100-SXM2-32GB"). With used 0 (the CPU path) the table's key is "cpu".
 * *expected is -1 when neither is given. AICP_EINVAL: both given, a value
 * that is not a number > 0, no GPUs to multiply by, or a model that is not
 * in the table (the message names the model and the table's keys). */
int aicp_tp_expected(double *expected, const json_t *absolute, const json_t *per_gpu,
                     const json_t *gpus, size_t used, struct aicp_err *err);

/* A measurement judged against an expectation. */
struct aicp_tp_verdict {
    double measured;
    double expected; /* -1: none given */
    double lower;    /* expected * (1 - tolerance); -1 when none */
    double tolerance;
    int passed;    /* measured >= lower, or no expectation */
    char msg[512]; /* "dgx01 (8x Tesla V100-SXM2-32GB): 5210.4 images/sec, expected at
                    * least 6203.5 (6530 -5%)" */
};

/* Fills v for node (the inventory name) and what (aicp_tp_gpu_label).
 * AICP_EINVAL when measured is not finite or negative, or tolerance is not
 * in [0, 1). A failed verdict is not an error: v->passed is 0. */
int aicp_tp_judge(struct aicp_tp_verdict *v, const char *node, const char *what, double measured,
                  double expected, double tolerance, struct aicp_err *err);

#endif
