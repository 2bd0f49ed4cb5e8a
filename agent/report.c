/* Renders a validate/drift run's results (one JSON object, see report.h)
 * as report.json, JUnit XML and one self-contained HTML page, and writes
 * them atomically into a report directory. The input is masked once, up
 * front, so every string that reaches any of the three documents has been
 * through the run's secret set; the renderers then only read the masked
 * copy. Every field is optional and may have any type: each read goes
 * through an accessor that answers "not there" for a wrong type, because a
 * report is most needed exactly when a run went wrong in a way nobody
 * planned for. Output is a pure function of the input (fixed number
 * formats, sorted node tables, no clock), so golden files can pin it. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "report.h"
#include "secret.h"
#include "util.h"

/* An output document; the first failure sticks and later writes are
 * no-ops, so the renderers need no error check per line. */
struct out {
    struct aicp_buf b;
    int rc;
};

struct tally {
    size_t checks, passed, failed, drifted, drift_errors, resources;
    size_t not_checked; /* drift.not_checked: listed, not a failure */
    int drift_checked; /* "drift" is an object */
    int has_resources; /* "drift.resources" is a number */
};

/* ---- reading the report: wrong types read as missing ---- */

static const json_t *get(const json_t *o, const char *key)
{
    return json_is_object(o) ? json_object_get(o, key) : NULL;
}

static const char *get_str(const json_t *o, const char *key)
{
    const json_t *v = get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int get_num(const json_t *o, const char *key, double *d)
{
    const json_t *v = get(o, key);
    if (!json_is_number(v))
        return 0;
    *d = json_number_value(v);
    return 1;
}

static size_t arr_size(const json_t *v)
{
    return json_is_array(v) ? json_array_size(v) : 0;
}

/* A scalar as text: strings as they are, numbers as Python prints them,
 * booleans as true/false; NULL for null, objects and arrays. tmp holds a
 * formatted number. */
static const char *scalar_text(const json_t *v, char *tmp, size_t cap)
{
    struct aicp_buf b = AICP_BUF_INIT;

    if (v == NULL)
        return NULL;
    switch (json_typeof(v)) {
    case JSON_STRING:
        return json_string_value(v);
    case JSON_INTEGER:
        snprintf(tmp, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return tmp;
    case JSON_REAL:
        if (aicp_buf_pyfloat(&b, json_real_value(v), 1) != 0 || b.data == NULL) {
            aicp_buf_free(&b);
            return NULL;
        }
        snprintf(tmp, cap, "%s", b.data);
        aicp_buf_free(&b);
        return tmp;
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    default:
        return NULL;
    }
}

static void tally_report(const json_t *r, struct tally *t)
{
    const json_t *checks = get(r, "checks"), *drift = get(r, "drift");
    double d;

    memset(t, 0, sizeof(*t));
    t->checks = arr_size(checks);
    for (size_t i = 0; i < t->checks; i++)
        if (json_is_true(get(json_array_get(checks, i), "passed")))
            t->passed++;
    t->failed = t->checks - t->passed;
    if (json_is_object(drift)) {
        t->drift_checked = 1;
        t->drifted = arr_size(get(drift, "drifted"));
        t->drift_errors = arr_size(get(drift, "failed"));
        t->not_checked = arr_size(get(drift, "not_checked"));
        if (get_num(drift, "resources", &d) && d >= 0 && d < 1e15) {
            t->has_resources = 1;
            t->resources = (size_t)d;
        }
    }
}

static int verdict_pass(const struct tally *t)
{
    return t->failed == 0 && t->drifted == 0 && t->drift_errors == 0;
}

/* ---- writing ---- */

static void put_len(struct out *o, const char *s, size_t n)
{
    if (o->rc == 0)
        o->rc = aicp_buf_append(&o->b, s, n);
}

static void put(struct out *o, const char *s)
{
    put_len(o, s, strlen(s));
}

static void putf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct out *o, const char *fmt, ...)
{
    va_list ap;

    if (o->rc != 0)
        return;
    va_start(ap, fmt);
    o->rc = aicp_buf_vprintf(&o->b, fmt, ap);
    va_end(ap);
}

/* Escapes for XML and HTML alike. XML 1.0 allows no C0 control other than
 * tab, newline and return (not even as a character reference), nor DEL in
 * HTML, nor U+FFFE/U+FFFF: those become U+FFFD. In attributes the three
 * allowed ones are references, so attribute normalization keeps them. */
static void put_esc(struct out *o, const char *s, int attr)
{
    const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
    const unsigned char *run = p;

    for (; *p; p++) {
        const char *rep = NULL;
        size_t skip = 1;
        unsigned char c = *p;

        if (c == '&')
            rep = "&amp;";
        else if (c == '<')
            rep = "&lt;";
        else if (c == '>')
            rep = "&gt;";
        else if (c == '"')
            rep = "&quot;";
        else if (c == '\'')
            rep = "&#39;";
        else if (c == '\n' || c == '\r' || c == '\t')
            rep = !attr ? NULL : c == '\n' ? "&#10;" : c == '\r' ? "&#13;" : "&#9;";
        else if (c < 0x20 || c == 0x7f)
            rep = "\xef\xbf\xbd";
        else if (c == 0xef && p[1] == 0xbf && (p[2] == 0xbe || p[2] == 0xbf)) {
            rep = "\xef\xbf\xbd";
            skip = 3;
        }
        if (rep == NULL)
            continue;
        put_len(o, (const char *)run, (size_t)(p - run));
        put(o, rep);
        p += skip - 1;
        run = p + 1;
    }
    put_len(o, (const char *)run, (size_t)(p - run));
}

static void put_text(struct out *o, const char *s)
{
    put_esc(o, s, 0);
}

static void put_attr(struct out *o, const char *s)
{
    put_esc(o, s, 1);
}

/* A scalar field escaped as text, or dflt when missing. */
static void put_field(struct out *o, const json_t *obj, const char *key, const char *dflt)
{
    char tmp[64];
    const char *s = scalar_text(get(obj, key), tmp, sizeof(tmp));

    put_text(o, s != NULL ? s : dflt);
}

/* A number with a fixed count of decimals (the same run always prints the
 * same); a string that stands where a number should is shown as it is. */
static void put_fixed(struct out *o, const json_t *obj, const char *key, int decimals,
                      double factor, const char *suffix)
{
    const json_t *v = get(obj, key);

    if (json_is_number(v))
        putf(o, "%.*f%s", decimals, json_number_value(v) * factor, suffix);
    else if (json_is_string(v))
        put_text(o, json_string_value(v));
}

/* ---- JSON: Python's json.dumps(indent=2) layout, shortest floats ---- */

static void json_put_str(struct out *o, const char *s, size_t n)
{
    size_t run = 0;

    put(o, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *rep = NULL;
        char u[8];

        if (c == '"')
            rep = "\\\"";
        else if (c == '\\')
            rep = "\\\\";
        else if (c == '\n')
            rep = "\\n";
        else if (c == '\r')
            rep = "\\r";
        else if (c == '\t')
            rep = "\\t";
        else if (c == '\b')
            rep = "\\b";
        else if (c == '\f')
            rep = "\\f";
        else if (c < 0x20 || c == 0x7f) {
            snprintf(u, sizeof(u), "\\u%04x", c);
            rep = u;
        }
        if (rep == NULL)
            continue;
        put_len(o, s + run, i - run);
        put(o, rep);
        run = i + 1;
    }
    put_len(o, s + run, n - run);
    put(o, "\"");
}

static void json_indent(struct out *o, int indent, int depth)
{
    put(o, "\n");
    for (int i = 0; indent > 0 && i < depth * indent; i++)
        put(o, " ");
}

/* indent < 0: one line, with ", " and ": " between items. */
static void json_put(struct out *o, const json_t *v, int indent, int depth)
{
    const char *k;
    const json_t *x;
    size_t i, n = 0;

    if (depth > 256) { /* deeper than any report; jansson parses 2048 */
        put(o, "null");
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        if (json_object_size(v) == 0) {
            put(o, "{}");
            return;
        }
        put(o, "{");
        json_object_foreach((json_t *)v, k, x)
        {
            if (n++ > 0)
                put(o, indent < 0 ? ", " : ",");
            if (indent >= 0)
                json_indent(o, indent, depth + 1);
            json_put_str(o, k, strlen(k));
            put(o, ": ");
            json_put(o, x, indent, depth + 1);
        }
        if (indent >= 0)
            json_indent(o, indent, depth);
        put(o, "}");
        return;
    case JSON_ARRAY:
        if (json_array_size(v) == 0) {
            put(o, "[]");
            return;
        }
        put(o, "[");
        json_array_foreach(v, i, x)
        {
            if (i > 0)
                put(o, indent < 0 ? ", " : ",");
            if (indent >= 0)
                json_indent(o, indent, depth + 1);
            json_put(o, x, indent, depth + 1);
        }
        if (indent >= 0)
            json_indent(o, indent, depth);
        put(o, "]");
        return;
    case JSON_STRING:
        json_put_str(o, json_string_value(v), json_string_length(v));
        return;
    case JSON_INTEGER:
        putf(o, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return;
    case JSON_REAL:
        if (o->rc == 0)
            o->rc = aicp_buf_pyfloat(&o->b, json_real_value(v), 1);
        return;
    case JSON_TRUE:
        put(o, "true");
        return;
    case JSON_FALSE:
        put(o, "false");
        return;
    default:
        put(o, "null");
        return;
    }
}

/* A value of any type as escaped text: scalars plainly, the rest as
 * one-line JSON (a drifted field's want/have may be a whole object). */
static void put_value(struct out *o, const json_t *v)
{
    char tmp[64];
    const char *s;
    struct out j = {AICP_BUF_INIT, 0};

    if (v == NULL) {
        put(o, "(absent)");
        return;
    }
    if ((s = scalar_text(v, tmp, sizeof(tmp))) != NULL) {
        put_text(o, s);
        return;
    }
    json_put(&j, v, -1, 0);
    if (j.rc != 0 && o->rc == 0)
        o->rc = j.rc;
    put_text(o, j.b.data);
    aicp_buf_free(&j.b);
}

static void render_json(struct out *o, const json_t *r)
{
    json_put(o, r, 2, 0);
    put(o, "\n");
}

/* ---- JUnit XML ---- */

static void suite_name(struct out *o, const char *kind, const char *site)
{
    put(o, "aicp ");
    put_attr(o, kind);
    if (site != NULL) {
        put(o, " ");
        put_attr(o, site);
    }
}

static const char *report_kind(const json_t *r)
{
    const char *k = get_str(r, "kind");
    return k != NULL && k[0] != '\0' ? k : "validate";
}

/* The part of a resource id before the '/' ("storage_class/x"), so that
 * CI tools group drifted resources by kind. */
static void drift_classname(struct out *o, const char *id)
{
    const char *slash = id != NULL ? strchr(id, '/') : NULL;
    char *kind;

    put(o, "drift");
    if (slash == NULL || slash == id)
        return;
    if ((kind = aicp_strndup(id, (size_t)(slash - id))) == NULL) {
        if (o->rc == 0)
            o->rc = AICP_ENOMEM;
        return;
    }
    put(o, ".");
    put_attr(o, kind);
    free(kind);
}

/* The lines that say what a check measured; the body of a <failure> or
 * the <system-out> of a passing check. */
static void check_details(struct out *o, const json_t *c)
{
    static const struct {
        const char *key, *label;
    } rows[] = {
        {"images_per_sec", "images/sec"}, {"expected_images_per_sec", "expected images/sec"},
        {"lower_bound", "lower bound"},   {"tolerance", "tolerance"},
        {"gpu_model", "GPU model"},       {"gpu_count", "GPU count"},
        {"driver_version", "driver"},     {"precision", "precision"},
        {"batch_size", "batch size"},     {"where", "where"},
    };
    const char *msg = get_str(c, "message");

    if (msg != NULL) {
        put_text(o, msg);
        put(o, "\n");
    }
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        if (get(c, rows[i].key) == NULL || json_is_null(get(c, rows[i].key)))
            continue;
        put(o, rows[i].label);
        put(o, ": ");
        if (strcmp(rows[i].key, "tolerance") == 0)
            put_fixed(o, c, "tolerance", 1, 100, "%");
        else if (strcmp(rows[i].key, "images_per_sec") == 0 ||
                 strcmp(rows[i].key, "expected_images_per_sec") == 0 ||
                 strcmp(rows[i].key, "lower_bound") == 0)
            put_fixed(o, c, rows[i].key, 1, 1, "");
        else
            put_value(o, get(c, rows[i].key));
        put(o, "\n");
    }
}

/* Why a check failed, in one line, when the check did not say. */
static void check_failure_message(struct out *o, const json_t *c)
{
    const char *msg = get_str(c, "message");
    double v, lb;

    if (msg != NULL && msg[0] != '\0')
        put_attr(o, msg);
    else if (!json_is_boolean(get(c, "passed")))
        put(o, "no result");
    else if (get_num(c, "images_per_sec", &v) && get_num(c, "lower_bound", &lb) && v < lb)
        putf(o, "%.1f images/sec is below the lower bound %.1f", v, lb);
    else
        put(o, "check failed");
}

static void junit_checks(struct out *o, const json_t *r, const struct tally *t)
{
    const json_t *checks = get(r, "checks");
    double total = 0, d;
    static const char *const props[] = {"site", "run_id", "started", "finished", "aicp_version"};

    for (size_t i = 0; i < t->checks; i++)
        if (get_num(json_array_get(checks, i), "seconds", &d) && d > 0 && d < 1e12)
            total += d;
    put(o, "  <testsuite name=\"");
    suite_name(o, report_kind(r), get_str(r, "site"));
    putf(o, "\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" skipped=\"0\" time=\"%.3f\"", t->checks,
         t->failed, total);
    if (get_str(r, "started") != NULL) {
        put(o, " timestamp=\"");
        put_attr(o, get_str(r, "started"));
        put(o, "\"");
    }
    put(o, ">\n    <properties>\n");
    for (size_t i = 0; i < sizeof(props) / sizeof(props[0]); i++) {
        char tmp[64];
        const char *s = scalar_text(get(r, props[i]), tmp, sizeof(tmp));
        if (s == NULL)
            continue;
        putf(o, "      <property name=\"%s\" value=\"", props[i]);
        put_attr(o, s);
        put(o, "\"/>\n");
    }
    put(o, "    </properties>\n");
    for (size_t i = 0; i < t->checks; i++) {
        const json_t *c = json_array_get(checks, i);
        const char *name = get_str(c, "name");
        char tmp[64];
        const char *node = scalar_text(get(c, "node"), tmp, sizeof(tmp));

        put(o, "    <testcase classname=\"validate");
        if (node != NULL && node[0] != '\0') {
            put(o, ".");
            put_attr(o, node);
        }
        put(o, "\" name=\"");
        if (name != NULL && name[0] != '\0')
            put_attr(o, name);
        else
            putf(o, "check %zu", i + 1);
        put(o, "\"");
        if (get_num(c, "seconds", &d) && d >= 0 && d < 1e12)
            putf(o, " time=\"%.3f\"", d);
        put(o, ">\n");
        if (!json_is_true(get(c, "passed"))) {
            put(o, "      <failure type=\"check\" message=\"");
            check_failure_message(o, c);
            put(o, "\">");
            check_details(o, c);
            put(o, "</failure>\n");
        } else {
            put(o, "      <system-out>");
            check_details(o, c);
            put(o, "</system-out>\n");
        }
        put(o, "    </testcase>\n");
    }
    put(o, "  </testsuite>\n");
}

static void junit_field_line(struct out *o, const json_t *f)
{
    char tmp[64];
    const char *path = scalar_text(get(f, "path"), tmp, sizeof(tmp));

    put_text(o, path != NULL ? path : "(field)");
    put(o, ": want ");
    put_value(o, get(f, "want"));
    put(o, ", have ");
    put_value(o, get(f, "have"));
    const char *mgr = get_str(f, "manager");
    if (mgr != NULL) {
        put(o, " (set by field manager ");
        put_text(o, mgr);
        put(o, ")");
    }
    put(o, "\n");
}

/* "last changed by aicp site=X run=Y": who last changed a drifted
 * resource through aicp, when the run could tell. */
static void put_changed_by(struct out *o, const json_t *d)
{
    const char *by = get_str(d, "last_changed_by");
    if (by == NULL)
        return;
    put(o, "last changed by aicp ");
    put_text(o, by);
}

static void junit_drift(struct out *o, const json_t *r, const struct tally *t)
{
    const json_t *drift = get(r, "drift");
    const json_t *drifted = get(drift, "drifted"), *failed = get(drift, "failed");
    size_t in_sync = 0, tests;

    /* The resources that did not drift are one passing case, so that a CI
     * history shows the drift check ran even when nothing drifted. */
    if (t->has_resources && t->resources > t->drifted + t->drift_errors)
        in_sync = t->resources - t->drifted - t->drift_errors;
    tests = t->drifted + t->drift_errors + t->not_checked + (size_t)t->has_resources;
    put(o, "  <testsuite name=\"");
    suite_name(o, "drift", get_str(r, "site"));
    putf(o,
         "\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\" time=\"0.000\">\n",
         tests, t->drifted, t->drift_errors, t->not_checked);
    for (size_t i = 0; i < t->drifted; i++) {
        const json_t *d = json_array_get(drifted, i), *fields = get(d, "fields");
        const char *id = get_str(d, "id");
        size_t nf = arr_size(fields);

        put(o, "    <testcase classname=\"");
        drift_classname(o, id);
        put(o, "\" name=\"");
        if (id != NULL && id[0] != '\0')
            put_attr(o, id);
        else
            putf(o, "resource %zu", i + 1);
        putf(o, "\">\n      <failure type=\"drift\" message=\"%zu %s", nf,
             nf == 1 ? "field differs" : "fields differ");
        for (size_t j = 0; j < nf; j++) {
            char tmp[64];
            const char *path =
                scalar_text(get(json_array_get(fields, j), "path"), tmp, sizeof(tmp));
            put(o, j == 0 ? ": " : ", ");
            put_attr(o, path != NULL ? path : "(field)");
        }
        put(o, "\">");
        for (size_t j = 0; j < nf; j++)
            junit_field_line(o, json_array_get(fields, j));
        if (get_str(d, "last_changed_by") != NULL) {
            put_changed_by(o, d);
            put(o, "\n");
        }
        put(o, "</failure>\n    </testcase>\n");
    }
    for (size_t i = 0; i < t->drift_errors; i++) {
        const json_t *f = json_array_get(failed, i);
        const char *id = get_str(f, "id"), *msg = get_str(f, "message");

        put(o, "    <testcase classname=\"");
        drift_classname(o, id);
        put(o, "\" name=\"");
        if (id != NULL && id[0] != '\0')
            put_attr(o, id);
        else
            putf(o, "resource %zu", t->drifted + i + 1);
        put(o, "\">\n      <error type=\"drift\" message=\"");
        put_attr(o, msg != NULL ? msg : "could not be checked");
        put(o, "\"/>\n    </testcase>\n");
    }
    const json_t *unchecked = get(drift, "not_checked");
    for (size_t i = 0; i < t->not_checked; i++) {
        const json_t *f = json_array_get(unchecked, i);
        const char *id = get_str(f, "id"), *msg = get_str(f, "message");

        put(o, "    <testcase classname=\"");
        drift_classname(o, id);
        put(o, "\" name=\"");
        if (id != NULL && id[0] != '\0')
            put_attr(o, id);
        else
            putf(o, "not checked %zu", i + 1);
        put(o, "\">\n      <skipped message=\"");
        put_attr(o, msg != NULL ? msg : "not checked");
        put(o, "\"/>\n    </testcase>\n");
    }
    if (t->has_resources)
        putf(o,
             "    <testcase classname=\"drift\" name=\"resources in the desired state\">\n"
             "      <system-out>%zu of %zu resources in the desired state</system-out>\n"
             "    </testcase>\n",
             in_sync, t->resources);
    put(o, "  </testsuite>\n");
}

static void render_junit(struct out *o, const json_t *r, const struct tally *t)
{
    int with_checks = json_is_array(get(r, "checks")) || strcmp(report_kind(r), "drift") != 0;
    size_t tests = 0, failures = 0, errors = 0;
    double total = 0, d;

    if (with_checks) {
        tests += t->checks;
        failures += t->failed;
        for (size_t i = 0; i < t->checks; i++)
            if (get_num(json_array_get(get(r, "checks"), i), "seconds", &d) && d > 0 && d < 1e12)
                total += d;
    }
    if (t->drift_checked) {
        tests += t->drifted + t->drift_errors + t->not_checked + (size_t)t->has_resources;
        failures += t->drifted;
        errors += t->drift_errors;
    }
    put(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"");
    suite_name(o, report_kind(r), get_str(r, "site"));
    putf(o, "\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" time=\"%.3f\">\n", tests, failures,
         errors, total);
    if (with_checks)
        junit_checks(o, r, t);
    if (t->drift_checked)
        junit_drift(o, r, t);
    put(o, "</testsuites>\n");
}

/* ---- HTML ---- */

static const char html_css[] =
    "body{font:14px/1.4 system-ui,-apple-system,\"Segoe UI\",Roboto,Helvetica,Arial,sans-serif;"
    "margin:24px;color:#1f2328;background:#fff}\n"
    "h1{font-size:22px;margin:0 0 8px}h2{font-size:17px;margin:24px 0 8px}\n"
    ".verdict{display:inline-block;padding:2px 12px;border-radius:4px;font-weight:700;"
    "color:#fff}\n"
    ".verdict.pass{background:#2e7d32}.verdict.fail{background:#c62828}\n"
    "dl.summary{display:grid;grid-template-columns:max-content auto max-content auto;"
    "gap:4px 16px;margin:12px 0}\n"
    "dl.summary dt{font-weight:600;color:#57606a}dl.summary dd{margin:0}\n"
    "table{border-collapse:collapse;margin:4px 0;font-size:13px}\n"
    "th,td{border:1px solid #d0d7de;padding:3px 6px;text-align:left;vertical-align:top}\n"
    "th,td{white-space:nowrap}td.name{white-space:normal;min-width:120px}\n"
    "tr.message td{white-space:pre-wrap;border-top:none;color:#57606a}"
    "tr.check td{border-bottom:none}\n"
    ".scroll{overflow-x:auto}\n"
    "th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}\n"
    "td.pass{color:#2e7d32;font-weight:700}td.fail{color:#c62828;font-weight:700}\n"
    ".ok{color:#2e7d32}.bad{color:#c62828}.none{color:#57606a}\n"
    "svg.chart{display:block;max-width:100%;height:auto}\n"
    "svg text{font:12px system-ui,sans-serif;fill:#1f2328}\n"
    "rect.bar.pass,rect.legend.pass{fill:#2e7d32}rect.bar.fail,rect.legend.fail{fill:#c62828}\n"
    "rect.band,rect.legend.band{fill:#90a4ae;fill-opacity:.35}\n"
    "line.expected{stroke:#263238;stroke-width:2}line.grid{stroke:#e1e4e8}\n"
    "line.axis,line.tick{stroke:#57606a}\n"
    "rect.pair.bare,rect.legend.bare{fill:#1565c0}"
    "rect.pair.kubernetes,rect.legend.kubernetes{fill:#6a1b9a}\n"
    "footer{margin-top:32px;color:#57606a;font-size:12px}\n";

static void html_dd(struct out *o, const char *label, const json_t *r, const char *key)
{
    putf(o, "<dt>%s</dt><dd>", label);
    put_field(o, r, key, "\xe2\x80\x94"); /* an em dash for "not given" */
    put(o, "</dd>\n");
}

static void html_summary(struct out *o, const json_t *r, const struct tally *t)
{
    int pass = verdict_pass(t);

    put(o, "<header>\n<h1>aicp ");
    put_text(o, report_kind(r));
    if (get_str(r, "site") != NULL) {
        put(o, " ");
        put_text(o, get_str(r, "site"));
    }
    putf(o, "</h1>\n<p><span id=\"verdict\" class=\"verdict %s\">%s</span></p>\n</header>\n",
         pass ? "pass" : "fail", pass ? "PASS" : "FAIL");
    put(o, "<section id=\"summary\">\n<dl class=\"summary\">\n");
    html_dd(o, "Site", r, "site");
    html_dd(o, "Run id", r, "run_id");
    html_dd(o, "Started", r, "started");
    html_dd(o, "Finished", r, "finished");
    html_dd(o, "aicp version", r, "aicp_version");
    if (t->checks == 0 && !json_is_array(get(r, "checks")))
        put(o, "<dt>Checks</dt><dd id=\"checks-status\" class=\"none\">none run</dd>\n");
    else
        putf(o, "<dt>Checks</dt><dd id=\"checks-status\" class=\"%s\">%zu of %zu passed</dd>\n",
             t->failed == 0 ? "ok" : "bad", t->passed, t->checks);
    put(o, "<dt>Drift</dt><dd id=\"drift-status\" class=\"");
    if (!t->drift_checked)
        put(o, "none\">not checked");
    else if (t->drifted == 0 && t->drift_errors == 0 && t->has_resources)
        putf(o, "ok\">no drift in %zu resource%s", t->resources, t->resources == 1 ? "" : "s");
    else if (t->drifted == 0 && t->drift_errors == 0)
        put(o, "ok\">no drift");
    else {
        putf(o, "bad\">%zu", t->drifted);
        if (t->has_resources)
            putf(o, " of %zu", t->resources);
        putf(o, " resource%s drifted", t->drifted == 1 && !t->has_resources ? "" : "s");
        if (t->drift_errors > 0)
            putf(o, ", %zu could not be checked", t->drift_errors);
    }
    if (t->drift_checked && t->not_checked > 0)
        putf(o, " (%zu not checked)", t->not_checked);
    put(o, "</dd>\n</dl>\n</section>\n");
}

/* An axis from 0 to a round number above the largest value, in 1/2/5
 * steps, computed without libm so every platform draws the same ticks. */
struct scale {
    double max, step;
    int ticks, decimals;
};

static void scale_make(struct scale *sc, double vmax)
{
    double raw, mag = 1, norm;

    if (!(vmax > 1e-6))
        vmax = 1;
    if (vmax > 1e300)
        vmax = 1e300;
    raw = vmax / 5;
    while (mag * 10 <= raw)
        mag *= 10;
    while (mag > raw)
        mag /= 10;
    norm = raw / mag;
    sc->step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
    sc->ticks = 1;
    while (sc->ticks * sc->step < vmax * (1 - 1e-12) && sc->ticks < 100)
        sc->ticks++;
    sc->max = sc->ticks * sc->step;
    sc->decimals = 0;
    for (double s = sc->step; s + 1e-9 < 1 && sc->decimals < 12; s *= 10)
        sc->decimals++;
}

/* Chart geometry, in SVG user units. */
enum {
    CH_W = 960,
    CH_LEFT = 200, /* labels */
    CH_PLOT = 660,
    CH_TOP = 34, /* legend */
    CH_ROW = 30,
};

static double scale_x(const struct scale *sc, double v)
{
    if (!(v > 0))
        v = 0;
    if (v > sc->max)
        v = sc->max;
    return CH_LEFT + CH_PLOT * v / sc->max;
}

static void svg_axis(struct out *o, const struct scale *sc, int top, int bottom, const char *title)
{
    for (int i = 0; i <= sc->ticks; i++) {
        double x = CH_LEFT + (double)CH_PLOT * i / sc->ticks;
        putf(o, "<line class=\"grid\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>\n", x, top, x,
             bottom);
        putf(o, "<line class=\"tick\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>\n", x, bottom,
             x, bottom + 5);
        putf(o, "<text class=\"tick\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.*f</text>\n", x,
             bottom + 18, sc->decimals, sc->step * i);
    }
    putf(o, "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n", CH_LEFT, bottom,
         CH_LEFT + CH_PLOT, bottom);
    putf(o, "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n", CH_LEFT, top,
         CH_LEFT, bottom);
    putf(o, "<text class=\"axis-title\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">",
         CH_LEFT + CH_PLOT / 2, bottom + 36);
    put_text(o, title);
    put(o, "</text>\n");
}

static void svg_legend_item(struct out *o, int x, const char *cls, const char *label)
{
    putf(o,
         "<rect class=\"legend %s\" x=\"%d\" y=\"8\" width=\"14\" height=\"14\"/>"
         "<text x=\"%d\" y=\"19\">%s</text>\n",
         cls, x, x + 20, label);
}

/* The row's label: "node / where", or the check's name without them. */
static void chart_label(struct out *o, const json_t *c, size_t i)
{
    char t1[64], t2[64];
    const char *node = scalar_text(get(c, "node"), t1, sizeof(t1));
    const char *where = scalar_text(get(c, "where"), t2, sizeof(t2));

    if (node != NULL || where != NULL) {
        put_text(o, node != NULL ? node : "?");
        if (where != NULL) {
            put(o, " / ");
            put_text(o, where);
        }
    } else if (get_str(c, "name") != NULL)
        put_text(o, get_str(c, "name"));
    else
        putf(o, "check %zu", i + 1);
}

/* A data-* attribute holding a scalar field, left out when missing. */
static void put_data_attr(struct out *o, const char *attr, const json_t *v)
{
    char tmp[64];
    const char *s = scalar_text(v, tmp, sizeof(tmp));

    if (s == NULL)
        return;
    putf(o, " data-%s=\"", attr);
    put_attr(o, s);
    put(o, "\"");
}

static void html_chart(struct out *o, const json_t *checks, size_t n)
{
    static const char *const keys[] = {"images_per_sec", "expected_images_per_sec", "lower_bound"};
    struct scale sc;
    double vmax = 0, d;
    int bottom = CH_TOP + (int)n * CH_ROW, height = bottom + 48;

    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < 3; k++)
            if (get_num(json_array_get(checks, i), keys[k], &d) && d > vmax)
                vmax = d;
    scale_make(&sc, vmax);
    put(o, "<section id=\"throughput\">\n<h2>Throughput</h2>\n");
    putf(o,
         "<svg id=\"throughput-chart\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" "
         "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" "
         "aria-label=\"images per second of each check against its expected band\">\n",
         CH_W, height, CH_W, height);
    svg_legend_item(o, CH_LEFT, "pass", "passed");
    svg_legend_item(o, CH_LEFT + 100, "fail", "failed");
    svg_legend_item(o, CH_LEFT + 200, "band", "lower bound to expected");
    putf(o,
         "<line class=\"expected\" x1=\"%d\" y1=\"8\" x2=\"%d\" y2=\"22\"/>"
         "<text x=\"%d\" y=\"19\">expected</text>\n",
         CH_LEFT + 390, CH_LEFT + 390, CH_LEFT + 400);
    svg_axis(o, &sc, CH_TOP, bottom, "images/sec");
    for (size_t i = 0; i < n; i++) {
        const json_t *c = json_array_get(checks, i);
        int y = CH_TOP + (int)i * CH_ROW, pass = json_is_true(get(c, "passed"));
        double v = 0, exp = 0, lb = 0;
        int has_v = get_num(c, "images_per_sec", &v),
            has_exp = get_num(c, "expected_images_per_sec", &exp),
            has_lb = get_num(c, "lower_bound", &lb);

        putf(o, "<text class=\"label\" x=\"%d\" y=\"%d\" text-anchor=\"end\">", CH_LEFT - 8,
             y + 19);
        chart_label(o, c, i);
        put(o, "</text>\n");
        if (has_exp && has_lb) {
            double a = scale_x(&sc, lb < exp ? lb : exp), b = scale_x(&sc, lb < exp ? exp : lb);
            putf(o, "<rect class=\"band\" x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\"/>\n", a,
                 y + 2, b - a, CH_ROW - 4);
        }
        putf(o, "<rect class=\"bar %s\" id=\"bar-%zu\"", pass ? "pass" : "fail", i + 1);
        put_data_attr(o, "node", get(c, "node"));
        put_data_attr(o, "where", get(c, "where"));
        if (has_v)
            put_data_attr(o, "value", get(c, "images_per_sec"));
        putf(o, " x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\"><title>", CH_LEFT, y + 7,
             has_v ? scale_x(&sc, v) - CH_LEFT : 0.0, CH_ROW - 14);
        chart_label(o, c, i);
        if (has_v)
            putf(o, ": %.1f images/sec", v);
        else
            put(o, ": no measurement");
        if (has_exp)
            putf(o, ", expected %.1f", exp);
        if (has_lb)
            putf(o, ", lower bound %.1f", lb);
        put(o, "</title></rect>\n");
        if (has_exp) {
            double x = scale_x(&sc, exp);
            putf(o, "<line class=\"expected\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>\n", x,
                 y + 1, x, y + CH_ROW - 1);
        }
        if (has_v)
            putf(o, "<text class=\"value\" x=\"%.1f\" y=\"%d\">%.1f</text>\n", scale_x(&sc, v) + 4,
                 y + 19, v);
    }
    put(o, "</svg>\n</section>\n");
}

/* One row per check, and below it the check's message across the table:
 * the message is what a person reads first on a failure, so it gets the
 * width rather than a narrow last column. */
static void html_checks(struct out *o, const json_t *checks, size_t n)
{
    put(o, "<section id=\"checks\">\n<h2>Checks</h2>\n<div class=\"scroll\">\n"
           "<table id=\"checks-table\">\n"
           "<tr><th>Result</th><th>Check</th><th>Node / where</th><th>GPUs</th>"
           "<th>Driver</th><th>Precision</th><th>Batch</th><th>Images/sec</th>"
           "<th>Expected</th><th>Lower bound</th><th>Time (s)</th></tr>\n");
    for (size_t i = 0; i < n; i++) {
        const json_t *c = json_array_get(checks, i);
        int pass = json_is_true(get(c, "passed"));
        char tmp[64];
        const char *count = scalar_text(get(c, "gpu_count"), tmp, sizeof(tmp));
        const char *model = get_str(c, "gpu_model"), *msg = get_str(c, "message");
        const json_t *tol = get(c, "tolerance");

        putf(o, "<tr class=\"check\"><td class=\"%s\">%s</td><td class=\"name\">",
             pass ? "pass" : "fail",
             pass                                ? "PASS"
             : json_is_boolean(get(c, "passed")) ? "FAIL"
                                                 : "NO RESULT");
        put_field(o, c, "name", "");
        put(o, "</td><td>");
        put_field(o, c, "node", "");
        if (get(c, "where") != NULL && !json_is_null(get(c, "where"))) {
            put(o, " / ");
            put_field(o, c, "where", "");
        }
        put(o, "</td><td>");
        if (count != NULL) {
            put_text(o, count);
            if (model != NULL)
                put(o, " \xc3\x97 "); /* U+00D7 multiplication sign */
        }
        if (model != NULL)
            put_text(o, model);
        put(o, "</td><td>");
        put_field(o, c, "driver_version", "");
        put(o, "</td><td>");
        put_field(o, c, "precision", "");
        put(o, "</td><td class=\"num\">");
        put_field(o, c, "batch_size", "");
        put(o, "</td><td class=\"num\">");
        put_fixed(o, c, "images_per_sec", 1, 1, "");
        put(o, "</td><td class=\"num\">");
        put_fixed(o, c, "expected_images_per_sec", 1, 1, "");
        put(o, "</td><td class=\"num\">");
        put_fixed(o, c, "lower_bound", 1, 1, "");
        if (json_is_number(tol) || json_is_string(tol)) {
            put(o, " (");
            put_fixed(o, c, "tolerance", 1, 100, "%");
            put(o, ")");
        }
        put(o, "</td><td class=\"num\">");
        put_fixed(o, c, "seconds", 1, 1, "");
        put(o, "</td></tr>\n");
        if (msg != NULL && msg[0] != '\0') {
            put(o, "<tr class=\"message\"><td></td><td colspan=\"10\">");
            put_text(o, msg);
            put(o, "</td></tr>\n");
        }
    }
    put(o, "</table>\n</div>\n</section>\n");
}


/* A table of resources and why (drift's errors, what was not checked):
 * head opens it, each of the first n entries of list is a row of class
 * cls with its "id" and "message". */
static void put_id_messages(struct out *o, const char *head, const char *cls,
                            const json_t *list, size_t n)
{
    put(o, head);
    for (size_t i = 0; i < n; i++) {
        const json_t *f = json_array_get(list, i);
        put(o, "<tr class=\"");
        put(o, cls);
        put(o, "\"><td>");
        put_field(o, f, "id", "");
        put(o, "</td><td>");
        put_field(o, f, "message", "");
        put(o, "</td></tr>\n");
    }
    put(o, "</table>\n");
}

static void html_drift(struct out *o, const json_t *r, const struct tally *t)
{
    const json_t *drift = get(r, "drift");
    const json_t *drifted = get(drift, "drifted"), *failed = get(drift, "failed");

    if (t->drifted == 0 && t->drift_errors == 0 && t->not_checked == 0)
        return;
    put(o, "<section id=\"drift\">\n<h2>Drift</h2>\n");
    if (t->drifted > 0) {
        put(o, "<table id=\"drift-table\">\n"
               "<tr><th>Resource</th><th>Field</th><th>Want</th><th>Have</th></tr>\n");
        for (size_t i = 0; i < t->drifted; i++) {
            const json_t *d = json_array_get(drifted, i), *fields = get(d, "fields");
            size_t nf = arr_size(fields);

            for (size_t j = 0; j < (nf > 0 ? nf : 1); j++) {
                const json_t *f = json_array_get(fields, j);
                put(o, "<tr class=\"drifted\"><td>");
                put_field(o, d, "id", "");
                put(o, "</td><td>");
                put_field(o, f, "path", nf > 0 ? "" : "\xe2\x80\x94");
                put(o, "</td><td>");
                if (f != NULL)
                    put_value(o, get(f, "want"));
                put(o, "</td><td>");
                if (f != NULL)
                    put_value(o, get(f, "have"));
                if (get_str(f, "manager") != NULL) {
                    put(o, " (set by field manager ");
                    put_text(o, get_str(f, "manager"));
                    put(o, ")");
                }
                put(o, "</td></tr>\n");
            }
            if (get_str(d, "last_changed_by") != NULL) {
                put(o, "<tr class=\"changed-by\"><td></td><td colspan=\"3\">");
                put_changed_by(o, d);
                put(o, "</td></tr>\n");
            }
        }
        put(o, "</table>\n");
    }
    if (t->drift_errors > 0)
        put_id_messages(o, "<h3>Could not be checked</h3>\n<table id=\"drift-errors\">\n"
                           "<tr><th>Resource</th><th>Error</th></tr>\n",
                        "error", failed, t->drift_errors);
    if (t->not_checked > 0)
        put_id_messages(o, "<h3>Not checked</h3>\n<table id=\"drift-not-checked\">\n"
                           "<tr><th>Resource</th><th>Why</th></tr>\n",
                        "skipped", get(drift, "not_checked"), t->not_checked);
    put(o, "</section>\n");
}

static void html_comparison(struct out *o, const json_t *cmp)
{
    size_t n = arr_size(cmp);
    struct scale sc;
    double vmax = 0, d;
    int bottom, height;

    if (n == 0)
        return;
    put(o, "<section id=\"comparison\">\n<h2>Kubernetes vs bare metal</h2>\n"
           "<table id=\"comparison-table\">\n<tr><th>Node</th><th>Bare metal (images/sec)</th>"
           "<th>Kubernetes (images/sec)</th><th>Overhead</th></tr>\n");
    for (size_t i = 0; i < n; i++) {
        const json_t *c = json_array_get(cmp, i);
        put(o, "<tr><td>");
        put_field(o, c, "node", "");
        put(o, "</td><td class=\"num\">");
        put_fixed(o, c, "bare", 1, 1, "");
        put(o, "</td><td class=\"num\">");
        put_fixed(o, c, "kubernetes", 1, 1, "");
        put(o, "</td><td class=\"num\">");
        put_fixed(o, c, "overhead_pct", 2, 1, "%");
        put(o, "</td></tr>\n");
        if (get_num(c, "bare", &d) && d > vmax)
            vmax = d;
        if (get_num(c, "kubernetes", &d) && d > vmax)
            vmax = d;
    }
    put(o, "</table>\n");
    scale_make(&sc, vmax);
    bottom = CH_TOP + (int)n * CH_ROW * 2;
    height = bottom + 48;
    putf(o,
         "<svg id=\"comparison-chart\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" "
         "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" "
         "aria-label=\"images per second per node, bare metal and Kubernetes\">\n",
         CH_W, height, CH_W, height);
    svg_legend_item(o, CH_LEFT, "bare", "bare metal");
    svg_legend_item(o, CH_LEFT + 120, "kubernetes", "Kubernetes");
    svg_axis(o, &sc, CH_TOP, bottom, "images/sec");
    for (size_t i = 0; i < n; i++) {
        static const char *const sides[] = {"bare", "kubernetes"};
        const json_t *c = json_array_get(cmp, i);
        int y = CH_TOP + (int)i * CH_ROW * 2;

        putf(o, "<text class=\"label\" x=\"%d\" y=\"%d\" text-anchor=\"end\">", CH_LEFT - 8,
             y + CH_ROW + 4);
        put_field(o, c, "node", "?");
        put(o, "</text>\n");
        for (int s = 0; s < 2; s++) {
            int has = get_num(c, sides[s], &d), by = y + 4 + s * (CH_ROW - 2);
            putf(o, "<rect class=\"pair %s\"", sides[s]);
            put_data_attr(o, "node", get(c, "node"));
            if (has)
                put_data_attr(o, "value", get(c, sides[s]));
            putf(o, " x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\"><title>", CH_LEFT, by,
                 has ? scale_x(&sc, d) - CH_LEFT : 0.0, CH_ROW - 8);
            put_field(o, c, "node", "?");
            putf(o, " %s", s == 0 ? "bare metal" : "Kubernetes");
            if (has)
                putf(o, ": %.1f images/sec", d);
            put(o, "</title></rect>\n");
            if (has)
                putf(o, "<text class=\"value\" x=\"%.1f\" y=\"%d\">%.1f</text>\n",
                     scale_x(&sc, d) + 4, by + CH_ROW - 14, d);
        }
    }
    put(o, "</svg>\n</section>\n");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Adds s to the sorted-later set v[*n] unless it is there already. */
static int name_add(const char ***v, size_t *n, size_t *cap, const char *s)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*v)[i], s) == 0)
            return 0;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        const char **nv = realloc(*v, nc * sizeof(*nv));
        if (nv == NULL)
            return AICP_ENOMEM;
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = s;
    return 0;
}

/* Nodes and their software versions, sorted both ways so that the order
 * facts were gathered in does not change the page. */
static void html_nodes(struct out *o, const json_t *nodes)
{
    const char **names = NULL, **keys = NULL, *k, *kk;
    size_t nn = 0, cn = 0, nk = 0, ck = 0;
    const json_t *v, *x;

    if (!json_is_object(nodes) || json_object_size(nodes) == 0)
        return;
    json_object_foreach((json_t *)nodes, k, v)
    {
        if (o->rc == 0)
            o->rc = name_add(&names, &nn, &cn, k);
        if (!json_is_object(v))
            continue;
        json_object_foreach((json_t *)v, kk, x)
        {
            if (o->rc == 0)
                o->rc = name_add(&keys, &nk, &ck, kk);
        }
    }
    if (o->rc != 0)
        goto out;
    qsort(names, nn, sizeof(*names), cmp_str);
    if (nk > 0)
        qsort(keys, nk, sizeof(*keys), cmp_str);
    put(o, "<section id=\"nodes\">\n<h2>Node software</h2>\n<table id=\"nodes-table\">\n<tr>"
           "<th>Node</th>");
    for (size_t j = 0; j < nk; j++) {
        put(o, "<th>");
        put_text(o, keys[j]);
        put(o, "</th>");
    }
    put(o, "</tr>\n");
    for (size_t i = 0; i < nn; i++) {
        const json_t *node = json_object_get(nodes, names[i]);
        put(o, "<tr><td>");
        put_text(o, names[i]);
        put(o, "</td>");
        for (size_t j = 0; j < nk; j++) {
            const json_t *val = get(node, keys[j]);
            put(o, "<td>");
            if (val != NULL && !json_is_null(val))
                put_value(o, val);
            put(o, "</td>");
        }
        put(o, "</tr>\n");
    }
    put(o, "</table>\n</section>\n");
out:
    free(names);
    free(keys);
}

static void render_html(struct out *o, const json_t *r, const struct tally *t)
{
    const json_t *checks = get(r, "checks");
    const char *version = get_str(r, "aicp_version");

    put(o, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
           /* The page stands alone: nothing may be fetched, nothing run. */
           "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
           "style-src 'unsafe-inline'\">\n<title>aicp ");
    put_text(o, report_kind(r));
    if (get_str(r, "site") != NULL) {
        put(o, " ");
        put_text(o, get_str(r, "site"));
    }
    putf(o, ": %s</title>\n<style>\n%s</style>\n</head>\n<body>\n",
         verdict_pass(t) ? "PASS" : "FAIL", html_css);
    html_summary(o, r, t);
    if (t->checks > 0) {
        html_chart(o, checks, t->checks);
        html_checks(o, checks, t->checks);
    }
    html_drift(o, r, t);
    html_comparison(o, get(r, "comparison"));
    html_nodes(o, get(r, "nodes"));
    put(o, "<footer>Written by aicp");
    if (version != NULL) {
        put(o, " ");
        put_text(o, version);
    }
    put(o, ".</footer>\n</body>\n</html>\n");
}

/* ---- entry points ---- */

int aicp_report_render(const json_t *report, const struct aicp_secrets *secrets, char **json,
                       char **junit, char **html, struct aicp_err *err)
{
    struct out oj = {AICP_BUF_INIT, 0}, ox = {AICP_BUF_INIT, 0}, oh = {AICP_BUF_INIT, 0};
    json_t *m = NULL, *summary = NULL;
    struct tally t;
    int rc = 0;

    *json = *junit = *html = NULL;
    if (!json_is_object(report))
        return aicp_err_set(err, AICP_EINVAL, "report: the results are not a JSON object");
    if ((m = aicp_secrets_mask_json(secrets, report)) == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "report: out of memory masking the results");
        goto out;
    }
    tally_report(m, &t);
    summary = json_pack("{s:I, s:I, s:I, s:I, s:I, s:s}", "checks", (json_int_t)t.checks, "passed",
                        (json_int_t)t.passed, "failed", (json_int_t)t.failed, "drifted",
                        (json_int_t)t.drifted, "drift_errors", (json_int_t)t.drift_errors,
                        "verdict", verdict_pass(&t) ? "pass" : "fail");
    /* Deleted first so that the summary always comes last. */
    json_object_del(m, "summary");
    if (summary == NULL || json_object_set_new(m, "summary", summary) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "report: out of memory");
        goto out;
    }
    render_json(&oj, m);
    render_junit(&ox, m, &t);
    render_html(&oh, m, &t);
    rc = oj.rc != 0 ? oj.rc : ox.rc != 0 ? ox.rc : oh.rc;
    if (rc != 0) {
        rc = aicp_err_set(err, rc, "report: out of memory rendering the report");
        goto out;
    }
    *json = aicp_buf_steal(&oj.b);
    *junit = aicp_buf_steal(&ox.b);
    *html = aicp_buf_steal(&oh.b);
out:
    aicp_buf_free(&oj.b);
    aicp_buf_free(&ox.b);
    aicp_buf_free(&oh.b);
    json_decref(m);
    return rc;
}

/* mkdir -p, each missing level 0755. */
static int make_dirs(const char *dir, struct aicp_err *err)
{
    char *p = aicp_strdup(dir);
    struct stat st;
    int rc = 0;

    if (p == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "report: out of memory");
    for (char *s = p + 1; rc == 0; s++) {
        int end = *s == '\0';
        if (*s != '/' && !end)
            continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            rc = aicp_err_set(err, AICP_EIO, "report: cannot create %s: %s", p, strerror(errno));
        if (end)
            break;
        *s = '/';
    }
    if (rc == 0 && (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)))
        rc = aicp_err_set(err, AICP_EIO, "report: %s is not a directory", dir);
    free(p);
    return rc;
}

/* Writes DIR/NAME through a temp file in DIR: a reader (a CI job picking
 * up junit.xml) sees the old file or the whole new one. */
static int write_atomic(const char *dir, const char *name, const char *data, struct aicp_err *err)
{
    struct aicp_buf tmp = AICP_BUF_INIT, final = AICP_BUF_INIT;
    size_t len = strlen(data), done = 0;
    int fd = -1, rc = 0, made = 0;

    if (aicp_buf_printf(&tmp, "%s/.%s.XXXXXX", dir, name) != 0 ||
        aicp_buf_printf(&final, "%s/%s", dir, name) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "report: out of memory");
        goto out;
    }
    if ((fd = mkstemp(tmp.data)) < 0) {
        rc = aicp_err_set(err, AICP_EIO, "report: cannot create a temp file in %s: %s", dir,
                          strerror(errno));
        goto out;
    }
    made = 1;
    while (done < len) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = aicp_err_set(err, AICP_EIO, "report: cannot write %s: %s", tmp.data,
                              strerror(errno));
            goto out;
        }
        done += (size_t)w;
    }
    if (fchmod(fd, 0644) != 0 || fsync(fd) != 0) {
        rc = aicp_err_set(err, AICP_EIO, "report: cannot write %s: %s", tmp.data, strerror(errno));
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = aicp_err_set(err, AICP_EIO, "report: cannot write %s: %s", tmp.data, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp.data, final.data) != 0)
        rc = aicp_err_set(err, AICP_EIO, "report: cannot rename %s to %s: %s", tmp.data, final.data,
                          strerror(errno));
out:
    if (fd >= 0)
        close(fd);
    if (rc != 0 && made)
        unlink(tmp.data);
    aicp_buf_free(&tmp);
    aicp_buf_free(&final);
    return rc;
}

int aicp_report_write(const char *dir, const json_t *report, const struct aicp_secrets *secrets,
                      struct aicp_err *err)
{
    char *json = NULL, *junit = NULL, *html = NULL;
    int rc;

    if (dir == NULL || dir[0] == '\0') {
        rc = aicp_err_set(err, AICP_EUSAGE, "report: no directory given");
        goto out;
    }
    /* Everything is rendered before anything is written, so a failure
     * leaves the directory as it was. */
    if ((rc = aicp_report_render(report, secrets, &json, &junit, &html, err)) != 0)
        goto out;
    if ((rc = make_dirs(dir, err)) != 0)
        goto out;
    if ((rc = write_atomic(dir, "report.json", json, err)) != 0 ||
        (rc = write_atomic(dir, "junit.xml", junit, err)) != 0 ||
        (rc = write_atomic(dir, "report.html", html, err)) != 0)
        goto out;
out:
    free(json);
    free(junit);
    free(html);
    return rc;
}
