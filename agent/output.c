/* Terminal output in the shape of Ansible's default callback (banners padded
 * with stars to 80 columns, "changed: [host]", "fatal: [host]: FAILED! =>
 * {...}", PLAY RECAP) and the machine-readable JSON report of the whole run. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "output.h"
#include "taskutil.h"
#include "secret.h"
#include "util.h"

struct aicp_output {
    FILE *fp;
    int verbose;
    int diff;
    json_t *report;      /* {plays: [...], stats: {...}} */
    json_t *cur_play;    /* borrowed from report */
    json_t *cur_task;    /* borrowed */
    const struct aicp_secrets *secrets; /* masked in everything written; borrowed */
};

void aicp_output_set_secrets(struct aicp_output *o, const struct aicp_secrets *s)
{
    o->secrets = s;
}

/* Every line leaves through here, with the run's secrets masked. */
__attribute__((format(printf, 3, 4))) static void say(struct aicp_output *o, FILE *fp,
                                                      const char *fmt, ...)
{
    struct aicp_buf b = AICP_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    int rc = aicp_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (rc == 0 && b.data != NULL && aicp_secrets_mask_buf(o->secrets, &b) == 0)
        fwrite(b.data, 1, b.len, fp);
    aicp_buf_free_secret(&b);
}

int aicp_output_new(struct aicp_output **out, FILE *fp, int verbose, int diff)
{
    struct aicp_output *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return AICP_ENOMEM;
    o->fp = fp;
    o->verbose = verbose;
    o->diff = diff;
    o->report = json_pack("{s:[], s:{}}", "plays", "stats");
    if (o->report == NULL) {
        free(o);
        return AICP_ENOMEM;
    }
    *out = o;
    return 0;
}

void aicp_output_free(struct aicp_output *o)
{
    if (o == NULL)
        return;
    json_decref(o->report);
    free(o);
}

static void banner(struct aicp_output *o, const char *msg)
{
    /* Ansible pads to its display width, 79 columns when not on a tty. */
    int stars = 79 - (int)strlen(msg);
    if (stars <= 3)
        stars = 3;
    char line[80];
    memset(line, '*', (size_t)stars < sizeof line ? (size_t)stars : sizeof line - 1);
    line[(size_t)stars < sizeof line ? (size_t)stars : sizeof line - 1] = '\0';
    say(o, o->fp, "\n%s %s\n", msg, line);
}

void aicp_output_play(struct aicp_output *o, const char *name, int check)
{
    struct aicp_buf b = AICP_BUF_INIT;
    aicp_buf_printf(&b, "PLAY [%s]%s", name ? name : "", check ? " [CHECK MODE]" : "");
    banner(o, b.data ? b.data : "PLAY");
    aicp_buf_free(&b);
    json_t *play = json_pack("{s:s, s:[]}", "name", name ? name : "", "tasks");
    if (play) {
        json_array_append_new(json_object_get(o->report, "plays"), play);
        o->cur_play = play;
    }
    o->cur_task = NULL;
    fflush(o->fp);
}

void aicp_output_task(struct aicp_output *o, const char *kind, const char *name, int check)
{
    struct aicp_buf b = AICP_BUF_INIT;
    aicp_buf_printf(&b, "%s [%s]%s", kind, name ? name : "", check ? " [CHECK MODE]" : "");
    banner(o, b.data ? b.data : kind);
    aicp_buf_free(&b);
    o->cur_task = NULL;
    if (o->cur_play == NULL)
        return;
    json_t *task = json_pack("{s:s, s:s, s:{}}", "name", name ? name : "", "kind", kind, "hosts");
    if (task) {
        json_array_append_new(json_object_get(o->cur_play, "tasks"), task);
        o->cur_task = task;
    }
    fflush(o->fp);
}

static const char *status_name(enum aicp_status st)
{
    switch (st) {
    case AICP_ST_OK: return "ok";
    case AICP_ST_CHANGED: return "changed";
    case AICP_ST_FAILED: return "failed";
    case AICP_ST_SKIPPED: return "skipped";
    case AICP_ST_UNREACHABLE: return "unreachable";
    }
    return "unknown";
}

/* Ansible's _dump_results: the result as JSON without internal keys. */
static char *dump_result(const struct aicp_output *o, const json_t *result, int no_log, int indent)
{
    json_t *copy = NULL;
    if (no_log) {
        copy = json_pack("{s:s, s:b}", "censored", AICP_NO_LOG_MSG, "changed",
                         json_is_true(json_object_get(result, "changed")));
    } else {
        copy = aicp_secrets_mask_json(o->secrets, result ? result : json_object());
        json_object_del(copy, "diff");
    }
    char *s = json_dumps(copy, JSON_SORT_KEYS | (indent ? JSON_INDENT(4) : 0));
    json_decref(copy);
    if (s == NULL)
        return aicp_strdup("{}");
    return s;
}

/* A result as the terminal shows it: a loop item without its loop
 * variable (it is in the label), and debug's the way Ansible's callback
 * cleans it (msg alone). verbose_always results are indented. */
static char *dump_shown(const struct aicp_output *o, const json_t *result, int is_item, int no_log, int verbose, int indent)
{
    json_t *r = json_deep_copy(result ? result : json_object());
    const json_t *always = json_object_get(r, "_aicp_show");
    if (is_item) {
        const char *lv = json_string_value(json_object_get(r, "ansible_loop_var"));
        if (lv)
            json_object_del(r, lv);
        json_object_del(r, "ansible_loop_var");
    }
    if (json_integer_value(always) == 1 && json_object_get(r, "msg") && verbose == 0) {
        static const char *const keep[] = {"msg", "exception", "warnings", "deprecations"};
        json_t *clean = json_object();
        for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
            json_t *v = json_object_get(r, keep[i]);
            if (v)
                json_object_set(clean, keep[i], v);
        }
        json_decref(r);
        r = clean;
    } else if (json_integer_value(always) == 1 && verbose == 0) {
        json_object_del(r, "changed");
    }
    json_object_del(r, "_aicp_show");
    char *dump = dump_result(o, r, no_log, indent);
    json_decref(r);
    return dump;
}

void aicp_output_result(struct aicp_output *o, const char *host, enum aicp_status st,
                        const json_t *full, const char *item_label, const char *diff_text,
                        int no_log, int ignored, double seconds)
{
    /* The line shows the result as Ansible's callbacks get it
     * (TaskResult.clean_copy: the status is in the line, so "failed" and
     * "skipped" are left out); the JSON report keeps the whole result, as
     * Ansible's json callback does. */
    json_t *result = aicp_task_shown_result(full);

    if (o->diff && diff_text && *diff_text && !no_log && st != AICP_ST_SKIPPED)
        say(o, o->fp, "%s", diff_text);
    size_t wi;
    json_t *w;
    json_array_foreach(json_object_get(result, "warnings"), wi, w) {
        if (json_is_string(w) && !no_log)
            say(o, stderr, "[WARNING]: %s\n", json_string_value(w));
    }
    char item[512] = "";
    if (item_label)
        snprintf(item, sizeof(item), " => (item=%s)", no_log ? "None" : item_label);
    const json_t *always = json_object_get(result, "_aicp_show");
    char *dump = NULL;
    switch (st) {
    case AICP_ST_OK:
    case AICP_ST_CHANGED:
    case AICP_ST_SKIPPED: {
        const char *word = st == AICP_ST_OK ? "ok" : st == AICP_ST_CHANGED ? "changed" : "skipping";
        say(o, o->fp, "%s: [%s]%s", word, host, item);
        /* debug and assert results are always shown, as Ansible's
         * _ansible_verbose_always; others with -v. */
        if (o->verbose > 0 || always != NULL) {
            dump = dump_shown(o, result, item_label != NULL, no_log, o->verbose, 1);
            say(o, o->fp, " => %s", dump);
        }
        say(o, o->fp, "\n");
        break;
    }
    case AICP_ST_FAILED:
        dump = dump_shown(o, result, item_label != NULL, no_log, o->verbose, always != NULL);
        if (item_label)
            say(o, o->fp, "failed: [%s] (item=%s) => %s\n", host, no_log ? "None" : item_label,
                    dump);
        else
            say(o, o->fp, "fatal: [%s]: FAILED! => %s\n", host, dump);
        if (ignored)
            say(o, o->fp, "...ignoring\n");
        break;
    case AICP_ST_UNREACHABLE:
        dump = dump_result(o, result, no_log, 0);
        say(o, o->fp, "fatal: [%s]: UNREACHABLE! => %s\n", host, dump);
        break;
    }
    free(dump);
    fflush(o->fp);
    json_decref(result);
    result = NULL;

    if (o->cur_task == NULL)
        return;
    json_t *hosts = json_object_get(o->cur_task, "hosts");
    json_t *entry = json_pack("{s:s, s:b, s:f}", "status", status_name(st), "changed",
                              st == AICP_ST_CHANGED, "seconds", seconds);
    if (entry == NULL)
        return;
    if (ignored)
        json_object_set_new(entry, "ignored", json_true());
    if (no_log) {
        json_object_set_new(entry, "censored", json_string(AICP_NO_LOG_MSG));
    } else {
        const json_t *msg = json_object_get(full, "msg");
        if (msg)
            json_object_set(entry, "msg", (json_t *)msg);
        const json_t *diff = json_object_get(full, "diff");
        if (diff)
            json_object_set(entry, "diff", (json_t *)diff);
        else if (diff_text)
            json_object_set_new(entry, "diff", json_string(diff_text));
        /* The whole result, as Ansible's json callback gives it (the
         * report is masked when written): what `aicp validate` reads. */
        json_t *copy = full ? json_deep_copy(full) : NULL;
        if (copy != NULL) {
            const char *k;
            json_t *v;
            void *tmp;
            json_object_del(copy, "diff");
            json_object_foreach_safe(copy, tmp, k, v)
            {
                if (strncmp(k, "_aicp", 5) == 0)
                    json_object_del(copy, k);
            }
            json_object_set_new(entry, "result", copy);
        }
    }
    if (item_label) {
        json_t *items = json_object_get(hosts, host);
        if (!json_is_array(items)) {
            items = json_array();
            json_object_set_new(hosts, host, items);
        }
        json_object_set_new(entry, "item", json_string(no_log ? "None" : item_label));
        json_array_append_new(items, entry);
    } else {
        json_object_set_new(hosts, host, entry);
    }
}

void aicp_output_included(struct aicp_output *o, const char *file, const char *hosts,
                          const char *item)
{
    say(o, o->fp, "included: %s for %s", file ? file : "?", hosts);
    if (item)
        say(o, o->fp, " => (item=%s)", item);
    say(o, o->fp, "\n");
    fflush(o->fp);
}

void aicp_output_loop_skipped(struct aicp_output *o, const char *host, const json_t *full,
                              int no_log)
{
    say(o, o->fp, "skipping: [%s]", host);
    if (o->verbose > 0) {
        json_t *result = aicp_task_shown_result(full);
        json_object_del(result, "results"); /* the items were shown above */
        char *dump = dump_shown(o, result, 0, no_log, o->verbose, 1);
        say(o, o->fp, " => %s", dump);
        free(dump);
        json_decref(result);
    }
    say(o, o->fp, "\n");
    fflush(o->fp);
}

void aicp_output_ignoring(struct aicp_output *o)
{
    say(o, o->fp, "...ignoring\n");
    fflush(o->fp);
}

void aicp_output_no_hosts(struct aicp_output *o)
{
    say(o, o->fp, "skipping: no hosts matched\n");
    fflush(o->fp);
}

void aicp_output_no_more_hosts(struct aicp_output *o)
{
    banner(o, "NO MORE HOSTS LEFT");
}

void aicp_output_recap(struct aicp_output *o, const json_t *hosts, const struct aicp_stats *stats)
{
    banner(o, "PLAY RECAP");
    size_t n = json_array_size(hosts);
    /* Ansible sorts the recap by host name. */
    size_t *order = calloc(n ? n : 1, sizeof(*order));
    if (order == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = 1; i < n; i++) {
        size_t k = order[i], j = i;
        while (j > 0 && strcmp(json_string_value(json_array_get(hosts, order[j - 1])),
                               json_string_value(json_array_get(hosts, k))) > 0) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = k;
    }
    json_t *jstats = json_object_get(o->report, "stats");
    for (size_t i = 0; i < n; i++) {
        const struct aicp_stats *s = &stats[order[i]];
        const char *h = json_string_value(json_array_get(hosts, order[i]));
        char f[7][32];
        snprintf(f[0], sizeof(f[0]), "ok=%-4d", s->ok);
        snprintf(f[1], sizeof(f[1]), "changed=%-4d", s->changed);
        snprintf(f[2], sizeof(f[2]), "unreachable=%-4d", s->unreachable);
        snprintf(f[3], sizeof(f[3]), "failed=%-4d", s->failed);
        snprintf(f[4], sizeof(f[4]), "skipped=%-4d", s->skipped);
        snprintf(f[5], sizeof(f[5]), "rescued=%-4d", s->rescued);
        snprintf(f[6], sizeof(f[6]), "ignored=%-4d", s->ignored);
        say(o, o->fp, "%-26s : %s %s %s %s %s %s %s\n", h, f[0], f[1], f[2], f[3], f[4], f[5],
                f[6]);
        json_object_set_new(jstats, h,
                            json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:i}", "ok", s->ok, "changed",
                                      s->changed, "unreachable", s->unreachable, "failed",
                                      s->failed, "skipped", s->skipped, "rescued", s->rescued,
                                      "ignored", s->ignored));
        json_object_set_new(json_object_get(jstats, h), "round_trips",
                            json_integer((json_int_t)s->round_trips));
    }
    say(o, o->fp, "\n");
    fflush(o->fp);
    free(order);
}

int aicp_output_write_json(struct aicp_output *o, const char *path, struct aicp_err *err)
{
    struct aicp_buf tmp = AICP_BUF_INIT;
    int rc = 0, fd = -1;
    json_t *masked = aicp_secrets_mask_json(o->secrets, o->report);
    char *text = masked ? json_dumps(masked, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(masked);
    if (text == NULL || aicp_buf_printf(&tmp, "%s.XXXXXX", path) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    fd = mkstemp(tmp.data);
    if (fd < 0) {
        rc = aicp_err_set(err, AICP_EIO, "%s: %s", path, strerror(errno));
        goto out;
    }
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t w = write(fd, text + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            rc = aicp_err_set(err, AICP_EIO, "%s: %s", path, strerror(errno));
            goto out;
        }
        done += (size_t)w;
    }
    if (write(fd, "\n", 1) != 1 || fsync(fd) != 0 || close(fd) != 0) {
        fd = -1;
        rc = aicp_err_set(err, AICP_EIO, "%s: %s", path, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp.data, path) != 0)
        rc = aicp_err_set(err, AICP_EIO, "%s: %s", path, strerror(errno));
out:
    if (fd >= 0)
        close(fd);
    if (rc != 0 && tmp.data)
        unlink(tmp.data);
    aicp_buf_free(&tmp);
    free(text);
    return rc;
}
