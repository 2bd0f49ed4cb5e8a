/* Throughput parsing, expectations and verdicts for the validate module
 * (agent/throughput.h). A benchmark's output is read line by line with a
 * POSIX extended regex, because the sites that prove a pod run different
 * benchmarks (aicp-trainbench, tf_cnn_benchmarks in a container) whose only
 * common ground is one "total images/sec" line; the expectation is the
 * site's figure for the node, scaled by the GPUs it has when the site
 * gives one per GPU model. */
#include "config.h"

#include "throughput.h"

#include <ctype.h>
#include <math.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "util.h"

void aicp_tp_parse_clear(struct aicp_tp_parse *p)
{
    if (p == NULL)
        return;
    free(p->line);
    json_decref(p->report);
    json_decref(p->progress);
    memset(p, 0, sizeof(*p));
}

/* The figure a capture holds: thousands separators and blanks dropped,
 * then it must be a finite number >= 0 and nothing else. */
static int parse_figure(double *out, const char *s, size_t len, struct aicp_err *err)
{
    char buf[64];
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        if (s[i] == ',' || isspace((unsigned char)s[i]))
            continue;
        if (n + 1 >= sizeof(buf))
            return aicp_err_set(err, AICP_EINVAL, "throughput figure '%.*s' is too long",
                                (int)(len > 40 ? 40 : len), s);
        buf[n++] = s[i];
    }
    buf[n] = '\0';
    char *end = NULL;
    double v = n > 0 ? strtod(buf, &end) : 0;
    if (n == 0 || end == buf || *end != '\0')
        return aicp_err_set(err, AICP_EINVAL, "throughput figure '%.*s' is not a number",
                            (int)(len > 40 ? 40 : len), s);
    if (!isfinite(v))
        return aicp_err_set(err, AICP_EINVAL,
                            "throughput figure '%.*s' is not a finite number (did the training "
                            "diverge?)",
                            (int)(len > 40 ? 40 : len), s);
    if (v < 0)
        return aicp_err_set(err, AICP_EINVAL, "throughput figure '%.*s' is negative",
                            (int)(len > 40 ? 40 : len), s);
    *out = v;
    return 0;
}

/* Whether the line mentions images/sec in any case: a progress line. */
static int mentions_rate(const char *line, size_t len)
{
    static const char needle[] = "images/sec";
    size_t nl = sizeof(needle) - 1;
    for (size_t i = 0; i + nl <= len; i++)
        if (strncasecmp(line + i, needle, nl) == 0)
            return 1;
    return 0;
}

/* aicp-trainbench's report: a JSON object with a number images_per_sec. */
static json_t *report_line(const char *line, size_t len)
{
    size_t i = 0;
    while (i < len && isspace((unsigned char)line[i]))
        i++;
    if (i == len || line[i] != '{')
        return NULL;
    json_t *o = json_loadb(line + i, len - i, 0, NULL);
    if (!json_is_object(o) || !json_is_number(json_object_get(o, "images_per_sec"))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int aicp_tp_parse(struct aicp_tp_parse *out, const char *text, const char *regex,
                  struct aicp_err *err)
{
    regex_t re;
    int compiled = 0, found = 0, rc = 0;
    char *copy = NULL;
    const char *pattern = regex ? regex : AICP_TP_DEFAULT_REGEX;

    memset(out, 0, sizeof(*out));
    out->progress = json_array();
    if (out->progress == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    int cr = regcomp(&re, pattern, REG_EXTENDED | (regex ? 0 : REG_ICASE));
    if (cr != 0) {
        char why[256];
        regerror(cr, &re, why, sizeof(why));
        rc = aicp_err_set(err, AICP_EINVAL,
                          "throughput_regex '%s' is not a valid POSIX extended "
                          "regular expression: %s",
                          pattern, why);
        goto out;
    }
    compiled = 1;
    if (re.re_nsub < 1) {
        rc = aicp_err_set(err, AICP_EINVAL,
                          "throughput_regex '%s' has no parenthesised group around the figure",
                          pattern);
        goto out;
    }
    const char *p = text ? text : "";
    const char *match = NULL;
    size_t match_len = 0;
    regoff_t so = 0, eo = 0;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        const char *line = p;
        p = nl ? nl + 1 : p + len;
        /* Progress lines end in \r on a terminal; a log keeps them. */
        while (len > 0 && line[len - 1] == '\r')
            len--;
        free(copy);
        if ((copy = aicp_strndup(line, len)) == NULL) {
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
        regmatch_t m[2];
        json_t *rep;
        if (regexec(&re, copy, 2, m, 0) == 0 && m[1].rm_so >= 0) {
            match = line;
            match_len = len;
            so = m[1].rm_so;
            eo = m[1].rm_eo;
            found = 1;
        } else if ((rep = report_line(line, len)) != NULL) {
            json_decref(out->report);
            out->report = rep;
        } else if (mentions_rate(line, len)) {
            json_array_append_new(out->progress, json_stringn(line, len));
            if (json_array_size(out->progress) > AICP_TP_PROGRESS_MAX)
                json_array_remove(out->progress, 0);
        }
    }
    if (found) {
        if ((rc = parse_figure(&out->images_per_sec, match + so, (size_t)(eo - so), err)) != 0)
            goto out;
        if ((out->line = aicp_strndup(match, match_len)) == NULL)
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (regex == NULL && out->report != NULL) {
        double v = json_number_value(json_object_get(out->report, "images_per_sec"));
        if (!isfinite(v) || v < 0) {
            rc = aicp_err_set(err, AICP_EINVAL,
                              "the report's images_per_sec is not a finite "
                              "number >= 0");
            goto out;
        }
        out->images_per_sec = v;
        char *line = json_dumps(out->report, JSON_COMPACT | JSON_PRESERVE_ORDER);
        out->line = line ? aicp_strdup(line) : NULL;
        free(line);
        if (out->line == NULL)
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    rc = aicp_err_set(err, AICP_ENOTFOUND,
                      "no throughput line matching /%s/ in the benchmark's "
                      "output",
                      pattern);
out:
    free(copy);
    if (compiled)
        regfree(&re);
    return rc;
}

/* A view of one CSV cell with the blanks around it trimmed. */
static char *cell(const char *s, size_t len)
{
    while (len > 0 && isspace((unsigned char)*s)) {
        s++;
        len--;
    }
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        len--;
    return aicp_strndup(s, len);
}

json_t *aicp_tp_gpus_parse(const char *csv)
{
    json_t *gpus = json_array();
    const char *p = csv ? csv : "";

    while (gpus != NULL && *p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        const char *line = p;
        p = nl ? nl + 1 : p + len;
        /* name, driver_version, memory.total: the name holds no comma
         * (nvidia-smi's CSV would quote nothing anyway) */
        const char *c1 = memchr(line, ',', len);
        const char *c2 = c1 ? memchr(c1 + 1, ',', len - (size_t)(c1 + 1 - line)) : NULL;
        if (c1 == NULL || c2 == NULL)
            continue;
        char *name = cell(line, (size_t)(c1 - line));
        char *drv = cell(c1 + 1, (size_t)(c2 - c1 - 1));
        char *mem = cell(c2 + 1, len - (size_t)(c2 + 1 - line));
        if (name && drv && mem && *name && isdigit((unsigned char)*drv)) {
            char *end = NULL;
            long long mib = strtoll(mem, &end, 10);
            int ok = end != mem && (*end == '\0' || strcmp(end, " MiB") == 0);
            json_array_append_new(gpus,
                                  json_pack("{s:s, s:s, s:o}", "name", name, "driver_version", drv,
                                            "memory_mib", ok ? json_integer(mib) : json_null()));
        }
        free(name);
        free(drv);
        free(mem);
    }
    return gpus;
}

void aicp_tp_gpu_label(char *buf, size_t cap, const json_t *gpus, size_t used)
{
    struct aicp_buf b = AICP_BUF_INIT;
    size_t n = json_array_size(gpus);

    if (cap == 0)
        return;
    if (used > n)
        used = n;
    if (used == 0) {
        snprintf(buf, cap, "cpu");
        return;
    }
    /* runs of the same model, in index order */
    for (size_t i = 0; i < used;) {
        const char *name = json_string_value(json_object_get(json_array_get(gpus, i), "name"));
        size_t j = i + 1;
        while (j < used) {
            const char *o = json_string_value(json_object_get(json_array_get(gpus, j), "name"));
            if (name == NULL || o == NULL || strcmp(name, o) != 0)
                break;
            j++;
        }
        aicp_buf_printf(&b, "%s%zux %s", i ? ", " : "", j - i, name ? name : "?");
        i = j;
    }
    snprintf(buf, cap, "%s", b.data ? b.data : "?");
    aicp_buf_free(&b);
}

/* A model name folded for the table's loose match. */
static void fold_model(char *out, size_t cap, const char *s)
{
    static const char *const prefixes[] = {"nvidia ", "nvidia-", "tesla ", "tesla-", NULL};
    size_t n = 0;
    int again = 1;

    while (again) {
        again = 0;
        for (const char *const *p = prefixes; *p; p++)
            if (strncasecmp(s, *p, strlen(*p)) == 0) {
                s += strlen(*p);
                again = 1;
            }
    }
    for (; *s && n + 1 < cap; s++)
        out[n++] = *s == ' ' || *s == '_' ? '-' : (char)tolower((unsigned char)*s);
    out[n] = '\0';
}

static int table_value(double *out, const json_t *per_gpu, const char *model, struct aicp_err *err)
{
    const json_t *v = json_object_get(per_gpu, model);
    const char *key = model;

    if (v == NULL) {
        char want[256], have[256];
        const char *k;
        const json_t *e;
        fold_model(want, sizeof(want), model);
        json_object_foreach((json_t *)per_gpu, k, e)
        {
            fold_model(have, sizeof(have), k);
            if (strcmp(want, have) == 0) {
                v = e;
                key = k;
                break;
            }
        }
    }
    if (v == NULL) {
        struct aicp_buf keys = AICP_BUF_INIT;
        const char *k;
        const json_t *e;
        json_object_foreach((json_t *)per_gpu, k, e)
            aicp_buf_printf(&keys, "%s'%s'", keys.len ? ", " : "", k);
        int rc = aicp_err_set(err, AICP_EINVAL,
                              "expected_per_gpu has no entry for GPU model '%s' (it has %s)", model,
                              keys.len ? keys.data : "no entries");
        aicp_buf_free(&keys);
        return rc;
    }
    double d = json_is_number(v) ? json_number_value(v) : NAN;
    if (json_is_string(v)) {
        char *end = NULL;
        const char *s = json_string_value(v);
        d = strtod(s, &end);
        if (end == s || *end != '\0')
            d = NAN;
    }
    if (!isfinite(d) || d <= 0)
        return aicp_err_set(err, AICP_EINVAL,
                            "expected_per_gpu['%s'] must be a number of images/sec > 0", key);
    *out = d;
    return 0;
}

int aicp_tp_expected(double *expected, const json_t *absolute, const json_t *per_gpu,
                     const json_t *gpus, size_t used, struct aicp_err *err)
{
    *expected = -1;
    if (absolute != NULL && json_is_null(absolute))
        absolute = NULL;
    if (per_gpu != NULL && json_is_null(per_gpu))
        per_gpu = NULL;
    if (absolute != NULL && per_gpu != NULL)
        return aicp_err_set(err, AICP_EINVAL,
                            "expected_images_per_sec and expected_per_gpu are "
                            "mutually exclusive");
    if (absolute != NULL) {
        double d = json_is_number(absolute) ? json_number_value(absolute) : NAN;
        if (!isfinite(d) || d <= 0)
            return aicp_err_set(err, AICP_EINVAL,
                                "expected_images_per_sec must be a number of images/sec > 0");
        *expected = d;
        return 0;
    }
    if (per_gpu == NULL)
        return 0;
    if (!json_is_object(per_gpu))
        return aicp_err_set(err, AICP_EINVAL,
                            "expected_per_gpu must map GPU models to images/sec per GPU");
    if (used == 0) {
        /* The CPU path: one worker, found under "cpu". */
        return table_value(expected, per_gpu, "cpu", err);
    }
    if (used > json_array_size(gpus))
        return aicp_err_set(err, AICP_EINVAL, "expected_per_gpu: %zu GPUs asked for, %zu found",
                            used, json_array_size(gpus));
    double sum = 0;
    for (size_t i = 0; i < used; i++) {
        const char *name = json_string_value(json_object_get(json_array_get(gpus, i), "name"));
        double d = 0;
        int rc;
        if (name == NULL)
            return aicp_err_set(err, AICP_EINVAL, "GPU %zu has no model name", i);
        if ((rc = table_value(&d, per_gpu, name, err)) != 0)
            return rc;
        sum += d;
    }
    *expected = sum;
    return 0;
}

int aicp_tp_judge(struct aicp_tp_verdict *v, const char *node, const char *what, double measured,
                  double expected, double tolerance, struct aicp_err *err)
{
    memset(v, 0, sizeof(*v));
    v->expected = -1;
    v->lower = -1;
    if (!isfinite(measured) || measured < 0)
        return aicp_err_set(err, AICP_EINVAL,
                            "%s: the measured throughput is not a finite "
                            "number >= 0",
                            node);
    if (!isfinite(tolerance) || tolerance < 0 || tolerance >= 1)
        return aicp_err_set(err, AICP_EINVAL,
                            "tolerance %g is not a fraction in [0, 1) (0.05 means 5%%)", tolerance);
    v->measured = measured;
    v->tolerance = tolerance;
    if (expected < 0 || !isfinite(expected)) {
        v->passed = 1;
        snprintf(v->msg, sizeof(v->msg), "%s (%s): %.1f images/sec (no expectation given)", node,
                 what, measured);
        return 0;
    }
    v->expected = expected;
    v->lower = expected * (1.0 - tolerance);
    v->passed = measured >= v->lower;
    if (v->passed)
        snprintf(v->msg, sizeof(v->msg),
                 "%s (%s): %.1f images/sec, at least %.1f expected (%.15g "
                 "-%.15g%%): passed",
                 node, what, measured, v->lower, expected, tolerance * 100);
    else
        snprintf(v->msg, sizeof(v->msg),
                 "%s (%s): %.1f images/sec, expected at least %.1f (%.15g "
                 "-%.15g%%)",
                 node, what, measured, v->lower, expected, tolerance * 100);
    return 0;
}
