/* The lineinfile module: ensures one line is present in (or, with
 * state=absent, every matching line is gone from) a text file on the host,
 * with Ansible's semantics and messages: regexp/search_string replace the
 * last (or first, with firstmatch) matching line, insertafter/insertbefore
 * (a regexp, EOF or BOF) place a new line, backrefs expand \1 from the
 * regexp and leave the file alone when nothing matches. Python regexps are
 * translated to POSIX extended ones (\d, \s, \w...). check() reads the
 * whole file in one round trip; the write goes through the shared engine
 * (fileutil.c) with backup and validate. */
#include "config.h"

#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fileutil.h"
#include "module.h"
#include "util.h"

static const struct aicp_arg_spec lineinfile_args[] = {
    {.name = "path",
     .type = AICP_ARG_PATH,
     .required = 1,
     .aliases = "dest|destfile|name",
     .help = "The file to modify."},
    {.name = "line",
     .type = AICP_ARG_STR,
     .aliases = "value",
     .help = "The line to insert or replace (required with state=present)."},
    {.name = "regexp",
     .type = AICP_ARG_STR,
     .aliases = "regex",
     .help = "Regular expression (Python syntax, translated to POSIX ERE) selecting the line to "
             "replace, or the lines to remove."},
    {.name = "search_string",
     .type = AICP_ARG_STR,
     .help = "Literal string selecting the line to replace or remove."},
    {.name = "state",
     .type = AICP_ARG_STR,
     .def = "present",
     .choices = "absent|present",
     .help = "Whether the line should be there or not."},
    {.name = "insertafter",
     .type = AICP_ARG_STR,
     .help = "Insert after the last line matching this regexp, or EOF (default)."},
    {.name = "insertbefore",
     .type = AICP_ARG_STR,
     .help = "Insert before the last line matching this regexp, or BOF."},
    {.name = "create",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Create the file when it does not exist."},
    {.name = "backup",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Keep a copy of the file as PATH.PID.DATE@TIME~ (result key backup)."},
    {.name = "backrefs",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Expand \\1, \\g<1> in line from the regexp's match; change nothing when nothing "
             "matches."},
    {.name = "firstmatch",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Use the first matching line instead of the last."},
    {.name = "mode", .type = AICP_ARG_MODE, .help = "Permissions of the file."},
    {.name = "owner", .type = AICP_ARG_STR, .help = "Name (or uid) of the owning user."},
    {.name = "group", .type = AICP_ARG_STR, .help = "Name (or gid) of the owning group."},
    {.name = "validate",
     .type = AICP_ARG_STR,
     .help = "Command run on the new file (as %s) before it replaces the file."},
    {.name = "unsafe_writes",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Accepted for compatibility; writes are always atomic."},
    {.name = NULL},
};

/* Python regexp -> POSIX ERE for the escapes people write. */
static int translate_re(struct aicp_buf *o, const char *re)
{
    int rc = 0, br = 0;
    for (const char *p = re; rc == 0 && *p; p++) {
        if (*p == '[' && !br) {
            br = 1;
            rc = aicp_buf_puts(o, "[");
            if (p[1] == '^') {
                rc = rc ? rc : aicp_buf_puts(o, "^");
                p++;
            }
            if (p[1] == ']') {
                rc = rc ? rc : aicp_buf_puts(o, "]");
                p++;
            }
            continue;
        }
        if (*p == ']' && br) {
            br = 0;
            rc = aicp_buf_puts(o, "]");
            continue;
        }
        if (*p != '\\' || p[1] == '\0') {
            rc = aicp_buf_append(o, p, 1);
            continue;
        }
        char e = *++p;
        const char *in = NULL, *out = NULL;
        switch (e) {
        case 'd':
            in = "0-9";
            out = "[0-9]";
            break;
        case 'D':
            out = "[^0-9]";
            break;
        case 's':
            in = "[:space:]";
            out = "[[:space:]]";
            break;
        case 'S':
            out = "[^[:space:]]";
            break;
        case 'w':
            in = "[:alnum:]_";
            out = "[[:alnum:]_]";
            break;
        case 'W':
            out = "[^[:alnum:]_]";
            break;
        case 't':
            in = out = "\t";
            break;
        default:
            break;
        }
        if (br) {
            if (in)
                rc = aicp_buf_puts(o, in);
            else if (e == '\\')
                rc = aicp_buf_puts(o, "\\");
            else
                rc = aicp_buf_append(o, &e, 1);
        } else if (out) {
            rc = aicp_buf_puts(o, out);
        } else {
            char two[2] = {'\\', e};
            rc = aicp_buf_append(o, two, 2);
        }
    }
    return rc;
}

static int compile_re(regex_t *re, const char *src, const char *what, struct aicp_err *err)
{
    struct aicp_buf b = AICP_BUF_INIT;
    if (translate_re(&b, src) != 0) {
        aicp_buf_free(&b);
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    int r = regcomp(re, b.data ? b.data : "", REG_EXTENDED);
    aicp_buf_free(&b);
    if (r != 0) {
        char m[256];
        regerror(r, re, m, sizeof(m));
        return aicp_err_set(err, AICP_EFAILED, "%s '%s' is not a valid regular expression: %s",
                            what, src, m);
    }
    return 0;
}

struct lines {
    char **v; /* each with its line end, as Python's readlines() */
    size_t n, cap;
};

static int lines_insert(struct lines *l, size_t at, const char *s, size_t len)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **v = realloc(l->v, cap * sizeof(*v));
        if (v == NULL)
            return AICP_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    char *d = aicp_strndup(s, len);
    if (d == NULL)
        return AICP_ENOMEM;
    memmove(l->v + at + 1, l->v + at, (l->n - at) * sizeof(*l->v));
    l->v[at] = d;
    l->n++;
    return 0;
}

/* The lines are the file's content, which may be a secret (a password in
 * a config file): wiped before they are freed. */
static void lines_free(struct lines *l)
{
    for (size_t i = 0; i < l->n; i++)
        aicp_free_secret(l->v[i]);
    free(l->v);
}

static size_t stripped_len(const char *s, const char *chars)
{
    size_t n = strlen(s);
    while (n && strchr(chars, s[n - 1]))
        n--;
    return n;
}

/* line == cur.rstrip('\r\n') */
static int same_line(const char *cur, const char *line)
{
    size_t n = stripped_len(cur, "\r\n");
    return n == strlen(line) && strncmp(cur, line, n) == 0;
}

static int line_search(const regex_t *re, const char *cur, regmatch_t *m, size_t nm)
{
    /* Python's $ matches before a final newline: search without it. */
    size_t n = stripped_len(cur, "\n");
    char *s = aicp_strndup(cur, n);
    int ok = s && regexec(re, s, nm, m, 0) == 0;
    aicp_free_secret(s);
    return ok;
}

/* Python's match.expand(): \1..\99, \g<N>, \n, \t, \\. */
static int expand(struct aicp_buf *o, const char *tmpl, const char *subject, const regmatch_t *m,
                  size_t nm)
{
    int rc = 0;
    for (const char *p = tmpl; rc == 0 && *p; p++) {
        if (*p != '\\' || p[1] == '\0') {
            rc = aicp_buf_append(o, p, 1);
            continue;
        }
        p++;
        long g = -1;
        if (*p >= '0' && *p <= '9') {
            g = *p - '0';
            if (p[1] >= '0' && p[1] <= '9' && g * 10 + (p[1] - '0') < (long)nm)
                g = g * 10 + (*++p - '0');
        } else if (*p == 'g' && p[1] == '<') {
            char *e = NULL;
            g = strtol(p + 2, &e, 10);
            if (e == p + 2 || *e != '>')
                return AICP_EINVAL;
            p = e;
        } else {
            char c = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p == 'r' ? '\r' : *p;
            if (!strchr("ntr\\", *p))
                rc = aicp_buf_puts(o, "\\");
            rc = rc ? rc : aicp_buf_append(o, &c, 1);
            continue;
        }
        if (g < 0 || (size_t)g >= nm)
            return AICP_EINVAL;
        if (m[g].rm_so >= 0)
            rc = aicp_buf_append(o, subject + m[g].rm_so, (size_t)(m[g].rm_eo - m[g].rm_so));
    }
    return rc;
}

#define NMATCH 100

/* Ansible's present(): edits l, says what happened in *msg ("" = nothing). */
static int do_present(struct lines *l, const struct aicp_args *a, const char **msg,
                      struct aicp_err *err)
{
    const char *line = aicp_fu_str(a, "line"), *regexp = aicp_fu_str(a, "regexp");
    const char *ss = aicp_fu_str(a, "search_string");
    const char *ia = aicp_fu_str(a, "insertafter"), *ib = aicp_fu_str(a, "insertbefore");
    int backrefs = aicp_fu_bool(a, "backrefs", 0), first = aicp_fu_bool(a, "firstmatch", 0);
    regex_t re_m, re_i;
    int have_m = 0, have_i = 0, rc = 0, matched = 0, exact = 0;
    long idx0 = -1, idx1 = -1;
    regmatch_t m[NMATCH];
    struct aicp_buf nl = AICP_BUF_INIT;
    *msg = "";
    if (ia == NULL && ib == NULL)
        ia = "EOF";
    if (regexp) {
        if ((rc = compile_re(&re_m, regexp, "regexp", err)) != 0)
            goto out;
        have_m = 1;
    }
    const char *ins = ia && strcmp(ia, "BOF") && strcmp(ia, "EOF") ? ia
                      : ib && strcmp(ib, "BOF")                    ? ib
                                                                   : NULL;
    if (ins) {
        if ((rc = compile_re(&re_i, ins, ia == ins ? "insertafter" : "insertbefore", err)) != 0)
            goto out;
        have_i = 1;
    }
    if (have_m) {
        for (size_t i = 0; i < l->n; i++) {
            regmatch_t mm[NMATCH];
            if (line_search(&re_m, l->v[i], mm, NMATCH)) {
                idx0 = (long)i;
                memcpy(m, mm, sizeof(m));
                matched = 1;
                if (first)
                    break;
            }
        }
    }
    if (ss) {
        for (size_t i = 0; i < l->n; i++) {
            if (strstr(l->v[i], ss)) {
                idx0 = (long)i;
                matched = 1;
                if (first)
                    break;
            }
        }
    }
    if (!matched) {
        for (size_t i = 0; i < l->n; i++) {
            if (same_line(l->v[i], line)) {
                idx0 = (long)i;
                exact = 1;
            } else if (have_i && line_search(&re_i, l->v[i], NULL, 0)) {
                if (ia == ins) {
                    idx1 = (long)i + 1;
                    if (first)
                        break;
                } else {
                    idx1 = (long)i;
                    if (first)
                        break;
                }
            }
        }
    }
    (void)exact;
    if (idx0 != -1) {
        if (backrefs && matched && have_m) {
            size_t n = stripped_len(l->v[idx0], "\n");
            char *subj = aicp_strndup(l->v[idx0], n);
            regmatch_t mm[NMATCH];
            if (subj == NULL || regexec(&re_m, subj, NMATCH, mm, 0) != 0 ||
                expand(&nl, line, subj, mm, NMATCH) != 0) {
                aicp_free_secret(subj);
                rc = aicp_err_set(err, AICP_EFAILED, "invalid group reference in line '%s'", line);
                goto out;
            }
            aicp_free_secret(subj);
        } else if (aicp_buf_puts(&nl, line) != 0) {
            goto oom;
        }
        if ((nl.len == 0 || nl.data[nl.len - 1] != '\n') && aicp_buf_puts(&nl, "\n") != 0)
            goto oom;
        if (strcmp(l->v[idx0], nl.data) != 0) {
            char *d = aicp_buf_steal(&nl);
            aicp_free_secret(l->v[idx0]);
            l->v[idx0] = d;
            *msg = "line replaced";
        }
    } else if (backrefs) {
        /* Nothing matched: the line can't be built without the groups. */
    } else if ((ib && strcmp(ib, "BOF") == 0) || (ia && strcmp(ia, "BOF") == 0)) {
        if (aicp_buf_printf(&nl, "%s\n", line) != 0 || lines_insert(l, 0, nl.data, nl.len) != 0)
            goto oom;
        *msg = "line added";
    } else if ((ia && strcmp(ia, "EOF") == 0) || idx1 == -1) {
        if (l->n && !strchr("\n\r", l->v[l->n - 1][strlen(l->v[l->n - 1]) - 1]) &&
            lines_insert(l, l->n, "\n", 1) != 0)
            goto oom;
        if (aicp_buf_printf(&nl, "%s\n", line) != 0 || lines_insert(l, l->n, nl.data, nl.len) != 0)
            goto oom;
        *msg = "line added";
    } else if (ia && ia == ins && idx1 != -1) {
        if ((size_t)idx1 == l->n) {
            if (!same_line(l->v[idx1 - 1], line)) {
                if (aicp_buf_printf(&nl, "%s\n", line) != 0 ||
                    lines_insert(l, l->n, nl.data, nl.len) != 0)
                    goto oom;
                *msg = "line added";
            }
        } else if (!same_line(l->v[idx1], line)) {
            if (aicp_buf_printf(&nl, "%s\n", line) != 0 ||
                lines_insert(l, (size_t)idx1, nl.data, nl.len) != 0)
                goto oom;
            *msg = "line added";
        }
    } else {
        if (aicp_buf_printf(&nl, "%s\n", line) != 0 ||
            lines_insert(l, (size_t)idx1, nl.data, nl.len) != 0)
            goto oom;
        *msg = "line added";
    }
    goto out;
oom:
    rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
out:
    aicp_buf_free_secret(&nl);
    if (have_m)
        regfree(&re_m);
    if (have_i)
        regfree(&re_i);
    return rc;
}

/* Ansible's absent(): drops matching lines, *found = how many. */
static int do_absent(struct lines *l, const struct aicp_args *a, size_t *found,
                     struct aicp_err *err)
{
    const char *line = aicp_fu_str(a, "line"), *regexp = aicp_fu_str(a, "regexp");
    const char *ss = aicp_fu_str(a, "search_string");
    regex_t re;
    int rc;
    *found = 0;
    if (regexp && (rc = compile_re(&re, regexp, "regexp", err)) != 0)
        return rc;
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++) {
        int hit = regexp ? line_search(&re, l->v[i], NULL, 0)
                  : ss   ? strstr(l->v[i], ss) != NULL
                         : same_line(l->v[i], line);
        if (hit) {
            aicp_free_secret(l->v[i]);
            (*found)++;
        } else {
            l->v[k++] = l->v[i];
        }
    }
    l->n = k;
    if (regexp)
        regfree(&re);
    return 0;
}

static int lineinfile_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                            struct aicp_err *err)
{
    const char *path = aicp_fu_str(args, "path");
    if (path == NULL)
        return aicp_err_set(err, AICP_EINVAL, "lineinfile: path is required");
    /* Ansible reports msg and backup even when nothing changed; apply
     * overwrites them, and the re-check after it must not. */
    int rc = aicp_fu_content_check(ctx, path, NULL, NULL, 1, current, err);
    if (rc != 0 || ctx->result == NULL)
        return rc;
    const char *state = aicp_fu_str(args, "state");
    int exists = json_is_true(json_object_get(json_object_get(*current, "t"), "exists"));
    const char *msg = state && strcmp(state, "absent") == 0 && !exists ? "file not present" : "";
    if (json_object_get(ctx->result, "msg") == NULL)
        json_object_set_new(ctx->result, "msg", json_string(msg));
    if (json_object_get(ctx->result, "backup") == NULL)
        json_object_set_new(ctx->result, "backup", json_string(""));
    return 0;
}

static int lineinfile_diff(const json_t *current, const struct aicp_args *args,
                           struct aicp_change **change, struct aicp_err *err)
{
    const char *path = aicp_fu_str(args, "path"), *state = aicp_fu_str(args, "state");
    const char *line = aicp_fu_str(args, "line"), *regexp = aicp_fu_str(args, "regexp");
    const char *ss = aicp_fu_str(args, "search_string");
    const json_t *t = json_object_get(current, "t");
    int exists = json_is_true(json_object_get(t, "exists"));
    const char *type = json_string_value(json_object_get(t, "type"));
    const char *text = json_string_value(json_object_get(t, "content"));
    int present = state == NULL || strcmp(state, "absent") != 0;
    struct lines l = {0};
    struct aicp_buf nt = AICP_BUF_INIT;
    const char *msg = "";
    char msgbuf[64];
    size_t found = 0;
    int rc = 0;
    *change = NULL;
    if (regexp && ss)
        return aicp_err_set(err, AICP_EFAILED,
                            "parameters are mutually exclusive: regexp|search_string");
    if (aicp_fu_get(args, "insertafter") && aicp_fu_get(args, "insertbefore"))
        return aicp_err_set(err, AICP_EFAILED,
                            "parameters are mutually exclusive: insertbefore|insertafter");
    if (present && aicp_fu_bool(args, "backrefs", 0) && ss)
        return aicp_err_set(err, AICP_EFAILED,
                            "parameters are mutually exclusive: backrefs|search_string");
    if (exists && type && strcmp(type, "directory") == 0)
        return aicp_err_set(err, AICP_EFAILED, "Path %s is a directory !", path);
    if (present) {
        if (aicp_fu_bool(args, "backrefs", 0) && regexp == NULL)
            return aicp_err_set(err, AICP_EFAILED, "regexp is required with backrefs=true");
        if (line == NULL)
            return aicp_err_set(err, AICP_EFAILED, "line is required with state=present");
        if (!exists && !aicp_fu_bool(args, "create", 0))
            return aicp_err_set(err, AICP_EFAILED, "Destination %s does not exist !", path);
    } else if (regexp == NULL && ss == NULL && line == NULL) {
        return aicp_err_set(err, AICP_EFAILED,
                            "one of line, search_string, or regexp is required with "
                            "state=absent");
    }
    if (!present && !exists) {
        if ((rc = aicp_fu_change_new(change, err)) == 0)
            json_object_set_new((*change)->plan, "result",
                                json_pack("{s:s}", "msg", "file not present"));
        return rc;
    }
    if (exists && text == NULL)
        return aicp_err_set(err, AICP_EFAILED, "%s is not a text file", path);
    for (const char *p = exists ? text : ""; *p;) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) + 1 : strlen(p);
        if (lines_insert(&l, l.n, p, n) != 0)
            goto oom;
        p += n;
    }
    if (present) {
        if ((rc = do_present(&l, args, &msg, err)) != 0)
            goto out;
    } else {
        if ((rc = do_absent(&l, args, &found, err)) != 0)
            goto out;
        if (found) {
            snprintf(msgbuf, sizeof(msgbuf), "%zu line(s) removed", found);
            msg = msgbuf;
        }
    }
    for (size_t i = 0; i < l.n; i++)
        if (aicp_buf_puts(&nt, l.v[i]) != 0)
            goto oom;
    int changed = *msg != '\0';
    if (!exists && !changed) {
        /* backrefs with nothing to match: the file is not created. */
        rc = aicp_fu_change_new(change, err);
        goto out;
    }
    char sum[41];
    aicp_fu_digest_hex(sum, sizeof(sum), "sha1", nt.data ? nt.data : "", nt.len);
    struct aicp_fu_want w = {
        .text = nt.data ? nt.data : "",
        .len = nt.len,
        .checksum = sum,
        .label = path,
        .content_labels = 1,
        .mode = aicp_fu_get(args, "mode"),
        .backup_key = "backup",
        .force = 1,
        .create_dirs = 1,
    };
    if ((rc = aicp_fu_content_diff(change, current, args, &w, err)) != 0)
        goto out;
    struct aicp_change *c = *change;
    int attrs = json_object_get(c->after, "mode") || json_object_get(c->after, "owner") ||
                json_object_get(c->after, "group");
    char full[128];
    snprintf(full, sizeof(full), "%s%s%s", msg, attrs && changed ? " and " : "",
             attrs ? "ownership, perms or SE linux context changed" : "");
    json_t *res = json_pack("{s:s}", "msg", full);
    if (!present)
        json_object_set_new(res, "found", json_integer((json_int_t)found));
    /* Ansible's warnings for an empty pattern, word for word. */
    if ((regexp && *regexp == '\0') || (ss && *ss == '\0'))
        json_object_set_new(
            res, "warnings",
            json_pack("[s]", regexp ? "The regular expression is an empty string, which will match "
                                      "every line in the file. This may have unintended "
                                      "consequences, such as replacing the last line in the file "
                                      "rather than appending. If this is desired, use '^' to "
                                      "match every line in the file and avoid this warning."
                                    : "The search string is an empty string, which will match "
                                      "every line in the file. This may have unintended "
                                      "consequences, such as replacing the last line in the file "
                                      "rather than appending."));
    json_object_set_new(c->plan, "result", res);
    /* A line holding a newline never equals one line of the file, so, as
     * in Ansible, it is added on every run: no re-check can pass. */
    if (present && line && strchr(line, '\n'))
        json_object_set_new(c->plan, "no_verify", json_true());
    goto out;
oom:
    rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
out:
    lines_free(&l);
    aicp_buf_free_secret(&nt);
    return rc;
}

static int lineinfile_apply(struct aicp_ctx *ctx, const struct aicp_change *change,
                            struct aicp_err *err)
{
    return aicp_fu_content_apply(ctx, change, err);
}

/* The rules of Ansible's lineinfile that the table cannot say, checked when
 * the playbook is loaded: its mutually_exclusive pairs (among the arguments
 * given, as Ansible counts them) and main()'s requirements per state. A
 * state or backrefs that is still a template is judged at run time (diff
 * repeats these checks). */
static int lineinfile_validate(const struct aicp_args *args, const json_t *given, int static_only,
                               struct aicp_err *err)
{
    static const char *const exclusive[][2] = {{"insertbefore", "insertafter"},
                                               {"regexp", "search_string"},
                                               {"backrefs", "search_string"}};
    for (size_t i = 0; i < sizeof(exclusive) / sizeof(exclusive[0]); i++)
        if (json_object_get(given, exclusive[i][0]) && json_object_get(given, exclusive[i][1]))
            return aicp_err_set(err, AICP_EINVAL, "parameters are mutually exclusive: %s|%s",
                                exclusive[i][0], exclusive[i][1]);
    const json_t *state = aicp_args_get(args, "state"), *backrefs = aicp_args_get(args, "backrefs");
    if (!json_is_string(state) || (static_only && aicp_args_is_template(state)))
        return 0;
    int has_line = json_object_get(given, "line") != NULL;
    int has_re = json_object_get(given, "regexp") != NULL;
    if (strcmp(json_string_value(state), "present") == 0) {
        if (json_is_true(backrefs) && !has_re)
            return aicp_err_set(err, AICP_EINVAL, "regexp is required with backrefs=true");
        if (!has_line)
            return aicp_err_set(err, AICP_EINVAL, "line is required with state=present");
    } else if (!has_line && !has_re && json_object_get(given, "search_string") == NULL) {
        return aicp_err_set(err, AICP_EINVAL,
                            "one of line, search_string, or regexp is required with state=absent");
    }
    return 0;
}

static const struct aicp_module_ops lineinfile_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = lineinfile_check,
    .diff = lineinfile_diff,
    .apply = lineinfile_apply,
};

const struct aicp_module aicp_mod_lineinfile = {
    .name = "lineinfile",
    .summary = "Manage lines in text files",
    .args = lineinfile_args,
    .flags = AICP_MOD_NEEDS_SSH,
    .ops = &lineinfile_ops,
    .validate = lineinfile_validate,
};
