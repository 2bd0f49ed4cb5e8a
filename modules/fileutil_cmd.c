/* The engine shared by the command and shell modules: check() tests the
 * creates/removes globs in one round trip, diff() turns the free-form text
 * (split as Python's shlex does), argv or shell text into the script to
 * run, and apply() runs it and fills Ansible's result keys (cmd, rc,
 * stdout, stderr, *_lines, start, end, delta, msg). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "err.h"
#include "fileutil.h"
#include "module.h"
#include "util.h"

/* Python's shlex.split (posix mode): quotes and backslashes. */
static int shlex_split(json_t *out, const char *s)
{
    struct aicp_buf w = AICP_BUF_INIT;
    int inword = 0, rc = 0;
    for (const char *p = s; rc == 0; p++) {
        if (*p == '\0' || strchr(" \t\n\r", *p)) {
            if (inword) {
                rc =
                    json_array_append_new(out, json_string(w.data ? w.data : "")) ? AICP_ENOMEM : 0;
                aicp_buf_free(&w);
                inword = 0;
            }
            if (*p == '\0')
                break;
            continue;
        }
        inword = 1;
        if (*p == '\'') {
            const char *e = strchr(p + 1, '\'');
            if (e == NULL) {
                rc = AICP_EINVAL;
                break;
            }
            rc = aicp_buf_append(&w, p + 1, (size_t)(e - p - 1));
            p = e;
        } else if (*p == '"') {
            for (p++; rc == 0 && *p && *p != '"'; p++) {
                if (*p == '\\' && p[1] && strchr("\\\"$`\n", p[1]))
                    p++;
                rc = aicp_buf_append(&w, p, 1);
            }
            if (*p != '"') {
                rc = AICP_EINVAL;
                break;
            }
        } else if (*p == '\\' && p[1]) {
            rc = aicp_buf_append(&w, ++p, 1);
        } else {
            rc = aicp_buf_append(&w, p, 1);
        }
    }
    aicp_buf_free(&w);
    return rc;
}

int aicp_fu_cmd_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                      struct aicp_err *err)
{
    const char *creates = aicp_fu_str(args, "creates"), *removes = aicp_fu_str(args, "removes");
    struct aicp_buf b = AICP_BUF_INIT;
    json_t *cur = NULL;
    int rc = 0;
    *current = NULL;
    const char *raw = aicp_fu_str(args, "_raw_params"), *cmd = aicp_fu_str(args, "cmd");
    const json_t *argv = aicp_fu_get(args, "argv");
    if ((raw == NULL || *raw == '\0') && (cmd == NULL || *cmd == '\0') &&
        json_array_size(argv) == 0) {
        /* Ansible's answer, rc included. */
        if (ctx->result)
            json_object_set_new(ctx->result, "rc", json_integer(256));
        return aicp_err_set(err, AICP_EFAILED, "no command given");
    }
    if (((raw && *raw) || (cmd && *cmd)) && json_array_size(argv)) {
        if (ctx->result)
            json_object_set_new(ctx->result, "rc", json_integer(256));
        return aicp_err_set(err, AICP_EFAILED, "only command or argv can be given, not both");
    }
    if (creates == NULL && removes == NULL) {
        *current = json_object();
        return *current ? 0 : aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    /* Does anything match each glob: "x V creates 1", "x V removes 1". */
    const char *const key[] = {"creates", "removes"}, *const glob[] = {creates, removes};
    for (size_t i = 0; i < 2; i++) {
        if (glob[i] == NULL)
            continue;
        rc = rc ? rc : aicp_buf_puts(&b, "for _f in ");
        rc = rc ? rc : aicp_fu_sh_glob(&b, glob[i]);
        rc = rc ? rc
                : aicp_buf_printf(&b, "; do if [ -e \"$_f\" ] || [ -L \"$_f\" ]; then "
                                      "printf 'x V %s 1\\n'; break; fi; done\n",
                                  key[i]);
    }
    if (rc != 0) {
        aicp_buf_free(&b);
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    rc = aicp_fu_check_run(ctx, b.data, &cur, err);
    aicp_buf_free(&b);
    if (rc != 0)
        return rc;
    const json_t *x = json_object_get(cur, "x");
    struct aicp_buf m = AICP_BUF_INIT, o = AICP_BUF_INIT;
    if (creates && json_object_get(x, "creates")) {
        rc = aicp_buf_printf(&m, "Did not run command since '%s' exists", creates);
        rc = rc ? rc : aicp_buf_printf(&o, "skipped, since %s exists", creates);
        json_object_set_new(cur, "skip", json_true());
    } else if (removes && !json_object_get(x, "removes")) {
        rc = aicp_buf_printf(&m, "Did not run command since '%s' does not exist", removes);
        rc = rc ? rc : aicp_buf_printf(&o, "skipped, since %s does not exist", removes);
        json_object_set_new(cur, "skip", json_true());
    }
    if (rc == 0 && m.data && ctx->result) {
        json_object_set_new(ctx->result, "msg", json_string(m.data));
        json_object_set_new(ctx->result, "stdout", json_string(o.data));
        json_object_set_new(ctx->result, "stdout_lines", json_pack("[s]", o.data));
        json_object_set_new(ctx->result, "stderr", json_string(""));
        json_object_set_new(ctx->result, "stderr_lines", json_array());
        json_object_set_new(ctx->result, "rc", json_integer(0));
    }
    aicp_buf_free(&m);
    aicp_buf_free(&o);
    *current = cur;
    return rc ? aicp_err_set(err, AICP_ENOMEM, "out of memory") : 0;
}

int aicp_fu_cmd_diff(const json_t *current, const struct aicp_args *args, int shell,
                     struct aicp_change **change, struct aicp_err *err)
{
    const char *raw = aicp_fu_str(args, "_raw_params"), *cmd = aicp_fu_str(args, "cmd");
    const json_t *argv = aicp_fu_get(args, "argv");
    const char *chdir = aicp_fu_str(args, "chdir");
    /* command takes executable only to warn that it ignores it, as Ansible. */
    const char *exe = shell ? aicp_fu_str(args, "executable") : NULL;
    const char *in = aicp_fu_str(args, "stdin");
    struct aicp_change *c = NULL;
    struct aicp_buf sh = AICP_BUF_INIT;
    json_t *words = NULL;
    const char *heredoc = NULL, *heredoc_delim = NULL;
    char delim[96];
    int rc;
    *change = NULL;
    if (raw && *raw == '\0')
        raw = NULL;
    if (cmd == NULL)
        cmd = raw;
    if (cmd && argv && json_array_size(argv))
        return aicp_err_set(err, AICP_EFAILED, "only command or argv can be given, not both");
    if ((cmd == NULL || *cmd == '\0') && !(argv && json_array_size(argv)))
        return aicp_err_set(err, AICP_EFAILED, "no command given");
    if ((rc = aicp_fu_change_new(&c, err)) != 0)
        return rc;
    if (chdir) {
        rc = aicp_buf_puts(&sh, "cd -- ");
        rc = rc ? rc : aicp_buf_shquote(&sh, chdir);
        rc = rc ? rc
                : aicp_buf_puts(&sh, " 2>/dev/null || { printf 'Unable to change directory "
                                     "before execution: %s\\n' ");
        rc = rc ? rc : aicp_buf_shquote(&sh, chdir);
        rc = rc ? rc : aicp_buf_puts(&sh, " >&2; exit 1; }\n");
    }
    if (shell) {
        /* Not `sh -c CMD`: the command may hold secrets, and ps shows
         * argv. The shell reads it from a here-document on fd 4, behind a
         * delimiter that is no line of it; $0 is the shell, as with -c. */
        snprintf(delim, sizeof delim, "AICP_SHELL_CMD");
        while (aicp_has_line(cmd, delim) && strlen(delim) + 2 < sizeof delim)
            strcat(delim, "_X");
        const char *shell_path = exe && *exe ? exe : "/bin/sh";
        rc = rc ? rc : aicp_buf_puts(&sh, "exec ");
        rc = rc ? rc : aicp_buf_shquote(&sh, shell_path);
        rc = rc ? rc : aicp_buf_puts(&sh, " -c '. /dev/fd/4' ");
        rc = rc ? rc : aicp_buf_shquote(&sh, shell_path);
        rc = rc ? rc : aicp_buf_printf(&sh, " 4<<'%s'", delim);
        heredoc = cmd;
        heredoc_delim = delim;
        json_object_set_new(c->plan, "cmd", json_string(cmd));
    } else {
        if (argv && json_array_size(argv)) {
            words = json_deep_copy(argv);
        } else {
            words = json_array();
            if (words && shlex_split(words, cmd) != 0) {
                rc = aicp_err_set(err, AICP_EFAILED,
                                  "cannot split the command: unbalanced quotes "
                                  "in '%s'",
                                  cmd);
                goto out;
            }
        }
        if (words == NULL || json_array_size(words) == 0) {
            rc = aicp_err_set(err, AICP_EFAILED, "no command given");
            goto out;
        }
        rc = rc ? rc : aicp_buf_puts(&sh, "exec");
        size_t i;
        json_t *wv;
        json_array_foreach(words, i, wv)
        {
            char num[32];
            const char *ws = json_string_value(wv);
            if (ws == NULL && json_is_integer(wv)) {
                snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(wv));
                ws = num;
            }
            rc = rc ? rc : aicp_buf_puts(&sh, " ");
            rc = rc ? rc : aicp_buf_shquote(&sh, ws ? ws : "");
        }
        json_object_set(c->plan, "cmd", words);
    }
    if (in == NULL)
        rc = rc ? rc : aicp_buf_puts(&sh, " </dev/null");
    rc = rc ? rc : aicp_buf_puts(&sh, "\n");
    if (heredoc != NULL) {
        size_t hl = strlen(heredoc);
        rc = rc ? rc : aicp_buf_append(&sh, heredoc, hl);
        if (hl > 0 && heredoc[hl - 1] != '\n')
            rc = rc ? rc : aicp_buf_puts(&sh, "\n");
        rc = rc ? rc : aicp_buf_printf(&sh, "%s\n", heredoc_delim);
    }
    if (rc != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    json_object_set_new(c->plan, "script", json_string(sh.data));
    if (in) {
        struct aicp_buf ib = AICP_BUF_INIT;
        if (aicp_buf_puts(&ib, in) != 0 ||
            (aicp_fu_bool(args, "stdin_add_newline", 1) && aicp_buf_puts(&ib, "\n") != 0)) {
            aicp_buf_free(&ib);
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
        json_object_set_new(c->plan, "stdin", json_string(ib.data ? ib.data : ""));
        aicp_buf_free(&ib);
    }
    json_object_set_new(c->plan, "strip", json_boolean(aicp_fu_bool(args, "strip_empty_ends", 1)));
    /* creates/removes given: check mode reports the run as a change, not
     * a skip (Ansible's command_shell tests). */
    if (aicp_fu_str(args, "creates") || aicp_fu_str(args, "removes"))
        json_object_set_new(c->plan, "check_mode_changed", json_true());
    c->needed = !json_is_true(json_object_get(current, "skip"));
    /* Nothing for --diff: a command has no before and after. */
    if (!shell && aicp_fu_str(args, "executable")) {
        struct aicp_buf w = AICP_BUF_INIT;
        aicp_buf_printf(&w, "As of Ansible 2.4, the parameter 'executable' is no longer supported "
                            "with the 'command' module. Not using '%s'.",
                        aicp_fu_str(args, "executable"));
        json_object_set_new(c->plan, "result", json_pack("{s:[s]}", "warnings", w.data ? w.data : ""));
        aicp_buf_free(&w);
    }
out:
    json_decref(words);
    aicp_buf_free(&sh);
    if (rc != 0) {
        aicp_change_free(c);
        c = NULL;
    }
    *change = c;
    return rc;
}

static void timestamp(char *out, size_t n, const struct timespec *ts)
{
    struct tm tm;
    char base[32];
    localtime_r(&ts->tv_sec, &tm);
    strftime(base, sizeof(base), "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(out, n, "%s.%06ld", base, ts->tv_nsec / 1000);
}

/* Output as a JSON string; bytes that are not UTF-8 become U+FFFD. */
static json_t *text_value(const char *s, size_t n)
{
    json_t *v = json_stringn(s, n);
    if (v)
        return v;
    struct aicp_buf b = AICP_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80 && c != 0)
            aicp_buf_append(&b, s + i, 1);
        else
            aicp_buf_puts(&b, "\xef\xbf\xbd");
    }
    v = json_string(b.data ? b.data : "");
    aicp_buf_free(&b);
    return v;
}

static json_t *split_out(char *s, size_t *len, int strip)
{
    if (strip) {
        while (*len && (s[*len - 1] == '\n' || s[*len - 1] == '\r'))
            s[--*len] = '\0';
        size_t lead = 0;
        while (lead < *len && (s[lead] == '\n' || s[lead] == '\r'))
            lead++;
        memmove(s, s + lead, *len - lead + 1);
        *len -= lead;
    }
    json_t *lines = json_array();
    for (const char *p = s; lines && *p;) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        size_t m = n && p[n - 1] == '\r' ? n - 1 : n;
        json_array_append_new(lines, text_value(p, m));
        p += n + (e ? 1 : 0);
    }
    return lines;
}

int aicp_fu_cmd_apply(struct aicp_ctx *ctx, const struct aicp_change *change, struct aicp_err *err)
{
    const json_t *plan = change->plan;
    const char *script = json_string_value(json_object_get(plan, "script"));
    const json_t *in = json_object_get(plan, "stdin");
    int strip = !json_is_false(json_object_get(plan, "strip"));
    struct aicp_exec_result res;
    struct timespec t0, t1;
    char s0[64], s1[64], delta[64];
    if (script == NULL)
        return aicp_err_set(err, AICP_EINVAL, "command: nothing to run");
    clock_gettime(CLOCK_REALTIME, &t0);
    int rc = aicp_fu_exec(ctx, script, json_string_value(in), json_string_length(in), &res, err);
    clock_gettime(CLOCK_REALTIME, &t1);
    if (rc != 0)
        return rc;
    long long ns = (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
    if (ns < 0)
        ns = 0;
    timestamp(s0, sizeof(s0), &t0);
    timestamp(s1, sizeof(s1), &t1);
    snprintf(delta, sizeof(delta), "%lld:%02lld:%02lld.%06lld", ns / 3600000000000LL,
             ns / 60000000000LL % 60, ns / 1000000000LL % 60, ns / 1000 % 1000000);
    size_t ol = res.out ? res.out_len : 0, el = res.err ? res.err_len : 0;
    char empty1[1] = "", empty2[1] = "";
    char *out = res.out ? res.out : empty1, *errs = res.err ? res.err : empty2;
    json_t *ol_lines = split_out(out, &ol, strip), *el_lines = split_out(errs, &el, strip);
    json_t *r = ctx->result;
    if (r) {
        json_object_set(r, "cmd", json_object_get(plan, "cmd"));
        json_object_set_new(r, "rc", json_integer(res.rc));
        json_object_set_new(r, "stdout", text_value(out, ol));
        json_object_set_new(r, "stderr", text_value(errs, el));
        json_object_set_new(r, "stdout_lines", ol_lines);
        json_object_set_new(r, "stderr_lines", el_lines);
        json_object_set_new(r, "start", json_string(s0));
        json_object_set_new(r, "end", json_string(s1));
        json_object_set_new(r, "delta", json_string(delta));
        json_object_set_new(r, "msg", json_string(res.rc ? "non-zero return code" : ""));
    } else {
        json_decref(ol_lines);
        json_decref(el_lines);
    }
    if (res.rc != 0) {
        if (strstr(errs, "Unable to change directory before execution"))
            rc = aicp_err_set(err, AICP_EFAILED, "%s", errs);
        else
            rc = aicp_err_set(err, AICP_EFAILED, "non-zero return code");
    }
    aicp_exec_result_clear(&res);
    return rc;
}
