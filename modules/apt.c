/* The apt module (ansible.builtin.apt): installs, upgrades and removes
 * Debian packages with apt-get, optionally pinned (`name=1.2-3`, globs
 * allowed), and refreshes the package lists. One check round trip reads
 * every named package's dpkg status (`dpkg-query -W`), the age of the
 * lists, and `apt-cache policy` for the packages whose candidate matters
 * (state=latest, missing or pinned packages); one apply round trip runs
 * apt-get update, install, remove and autoremove as needed. */
#include "config.h"

#include <ctype.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "err.h"
#include "module.h"
#include "sysutil.h"
#include "util.h"

static const struct aicp_arg_spec apt_args[] = {
    {.name = "name",
     .type = AICP_ARG_LIST,
     .aliases = "package|pkg",
     .help = "Package names, each optionally pinned as name=version (a glob such as "
             "name=1.2* picks the newest matching version)."},
    {.name = "state",
     .type = AICP_ARG_STR,
     .def = "present",
     .choices = "present|absent|latest",
     .help = "present installs missing packages (or the pinned version), latest also upgrades "
             "to the candidate version, absent removes them."},
    {.name = "update_cache",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .aliases = "update-cache",
     .help = "Run `apt-get update` first (only when older than cache_valid_time). On its own "
             "it reports changed when the lists were refreshed."},
    {.name = "cache_valid_time",
     .type = AICP_ARG_INT,
     .def = "0",
     .help = "Seconds the package lists stay fresh; update_cache skips a younger cache. 0: "
             "always update."},
    {.name = "install_recommends",
     .type = AICP_ARG_BOOL,
     .aliases = "install-recommends",
     .help = "yes/no force APT::Install-Recommends; unset keeps apt's own setting."},
    {.name = "purge",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "With state=absent, also remove configuration files (`--purge`)."},
    {.name = "autoremove",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Remove dependencies that are no longer needed (`apt-get autoremove`)."},
    {.name = "default_release",
     .type = AICP_ARG_STR,
     .aliases = "default-release",
     .help = "Target release for installs (`-t RELEASE`)."},
    {.name = "allow_downgrade",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .aliases = "allow-downgrade|allow_downgrades|allow-downgrades",
     .help = "Allow a pinned version lower than the installed one (`--allow-downgrades`)."},
    {.name = "allow_unauthenticated",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .aliases = "allow-unauthenticated",
     .help = "Install packages that cannot be authenticated (`--allow-unauthenticated`)."},
    {.name = "force",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Allow downgrades, held packages and removing essential packages."},
    {.name = "dpkg_options",
     .type = AICP_ARG_STR,
     .def = "force-confdef,force-confold",
     .help = "Comma-separated dpkg options, each passed as -o Dpkg::Options::=--OPTION."},
    {.name = "lock_timeout",
     .type = AICP_ARG_INT,
     .def = "60",
     .help = "Seconds to wait for the dpkg lock (DPkg::Lock::Timeout)."},
    {.name = "force_apt_get",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Accepted for compatibility: aicp always uses apt-get."},
    {.name = NULL},
};

#define STAMP "/var/lib/apt/periodic/update-success-stamp"

/* Debian package names (plus an :arch suffix) and versions (plus glob
 * characters): anything else is refused before it reaches a shell. */
static int pkg_ok(const char *s, size_t n, int version)
{
    if (n == 0 || (!version && !isalnum((unsigned char)s[0])))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (isalnum((unsigned char)c) || strchr("+.-:", c))
            continue;
        if (version && strchr("~*?_", c))
            continue;
        return 0;
    }
    return 1;
}

/* Splits "name=version" (version NULL when not pinned); name without any
 * ":arch" is the key in dpkg's and apt-cache's answers. */
struct pkg {
    char *spec; /* as given */
    char *name; /* with :arch when given */
    char *key;  /* without :arch */
    const char *version;
};

static void pkgs_free(struct pkg *p, size_t n)
{
    for (size_t i = 0; p && i < n; i++) {
        free(p[i].spec);
        free(p[i].name);
        free(p[i].key);
    }
    free(p);
}

static int pkgs_parse(struct pkg **out, size_t *count, const struct aicp_args *args,
                      struct aicp_err *err)
{
    const json_t *names = aicp_args_get(args, "name");
    size_t n = json_is_array(names) ? json_array_size(names) : 0;
    struct pkg *p = calloc(n ? n : 1, sizeof(*p));
    if (p == NULL)
        return AICP_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(names, i));
        if (s == NULL) {
            pkgs_free(p, n);
            return aicp_err_set(err, AICP_EINVAL, "argument 'name' must be a list of strings");
        }
        while (isspace((unsigned char)*s))
            s++;
        const char *eq = strchr(s, '=');
        size_t nl = eq ? (size_t)(eq - s) : strlen(s);
        while (nl > 0 && isspace((unsigned char)s[nl - 1]))
            nl--;
        p[i].spec = aicp_strdup(s);
        p[i].name = aicp_strndup(s, nl);
        const char *colon = memchr(s, ':', nl);
        p[i].key = aicp_strndup(s, colon ? (size_t)(colon - s) : nl);
        if (p[i].spec == NULL || p[i].name == NULL || p[i].key == NULL) {
            pkgs_free(p, n);
            return AICP_ENOMEM;
        }
        if (eq)
            p[i].version = p[i].spec + (eq + 1 - s);
        if (!pkg_ok(p[i].name, strlen(p[i].name), 0) ||
            (eq && !pkg_ok(p[i].version, strlen(p[i].version), 1))) {
            pkgs_free(p, n);
            return aicp_err_set(err, AICP_EINVAL, "invalid package name or version '%s'", s);
        }
    }
    *out = p;
    *count = n;
    return 0;
}

/* A version-table line is "[*** ]VERSION PRIORITY"; the source lines
 * under it are "PRIORITY URI ..." or "PRIORITY /var/lib/dpkg/status".
 * Returns 1 with *v set for a version line. */
static int policy_version(const char *line, size_t ll, char **v)
{
    if (ll > 4 && strncmp(line, "*** ", 4) == 0) {
        line += 4;
        ll -= 4;
    }
    const char *sp = memchr(line, ' ', ll);
    if (sp == NULL || sp == line)
        return 0;
    const char *w2 = sp + 1, *e = line + ll;
    if (w2 < e && *w2 == '-')
        w2++;
    if (w2 >= e)
        return 0;
    for (const char *c = w2; c < e; c++)
        if (!isdigit((unsigned char)*c))
            return 0;
    *v = aicp_strndup(line, (size_t)(sp - line));
    return *v ? 1 : AICP_ENOMEM;
}

static int apt_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                     struct aicp_err *err)
{
    const char *state = aicp_args_str(args, "state");
    int latest = strcmp(state, "latest") == 0;
    struct pkg *p = NULL;
    size_t n = 0;
    struct aicp_buf s = AICP_BUF_INIT;
    struct aicp_exec_result res;
    memset(&res, 0, sizeof(res));
    int rc;

    if ((rc = pkgs_parse(&p, &n, args, err)) != 0)
        return rc;
    if (n == 0 && !aicp_args_bool(args, "update_cache", 0) &&
        !aicp_args_bool(args, "autoremove", 0)) {
        rc = aicp_err_set(err, AICP_EINVAL,
                          "one of the following is required: name, update_cache, autoremove");
        goto out;
    }
    rc = aicp_buf_puts(&s, "LC_ALL=C; export LC_ALL\nnl='\n'\nset --");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = aicp_buf_puts(&s, " ");
        rc = rc ? rc : aicp_buf_shquote(&s, p[i].name);
    }
    /* Candidates are needed for latest, and for packages that are not
     * installed (is there one at all?) or pinned (which versions exist). */
    rc = rc ? rc
            : aicp_buf_printf(
                  &s,
                  "\nst=\n[ $# -gt 0 ] && st=$(dpkg-query -W "
                  "-f='${db:Status-Abbrev}|${Package}|${Version}\\n' "
                  "\"$@\" 2>/dev/null)\n"
                  "echo '" AICP_SYS_TAG "dpkg=1'; printf '%%s\\n' \"$st\"\n"
                  "pol=\nfor a in \"$@\"; do k=${a%%%%:*}\n"
                  "  case \"$nl$st\" in *\"$nl\"?[iWt]?\"|$k|\"*) [ %d = 1 ] || continue ;; esac\n"
                  "  pol=\"$pol $a\"\ndone\n",
                  latest);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (p[i].version) {
            rc = aicp_buf_puts(&s, "pol=\"$pol \"");
            rc = rc ? rc : aicp_buf_shquote(&s, p[i].name);
            rc = rc ? rc : aicp_buf_puts(&s, "\n");
        }
    rc = rc ? rc
            : aicp_buf_puts(&s, "if [ -n \"$pol\" ]; then echo '" AICP_SYS_TAG "policy=1'; "
                                "apt-cache policy $pol 2>/dev/null; fi\n"
                                "t1=$(stat -c %Y " STAMP " 2>/dev/null || echo 0)\n"
                                "t2=$(stat -c %Y /var/lib/apt/lists 2>/dev/null || echo 0)\n"
                                "echo \"" AICP_SYS_TAG "stamp=$t1\"; echo \"" AICP_SYS_TAG
                                "lists=$t2\"; echo \"" AICP_SYS_TAG "now=$(date +%s)\"\n");
    if (rc == 0 && aicp_args_bool(args, "autoremove", 0))
        rc = aicp_buf_puts(&s, "r=$(apt-get -s -q autoremove 2>/dev/null | grep -c '^Remv ')\n"
                               "echo \"" AICP_SYS_TAG "autoremove=$r\"\n");
    if (rc)
        goto out;
    if ((rc = aicp_sys_exec(ctx, s.data, &res, err)) != 0)
        goto out;
    if (res.rc != 0 || aicp_sys_field(res.out, "now", &(size_t){0}) == NULL) {
        rc = aicp_sys_fail(err, &res, "failed to read the package state");
        goto out;
    }
    json_t *cur = json_object(), *pkgs = json_object();
    json_object_set_new(cur, "packages", pkgs);
    size_t len = 0;
    const char *sec = aicp_sys_section(res.out, "dpkg", 0, &len);
    const char *q = sec, *end = sec ? sec + len : NULL, *line;
    size_t ll;
    while (sec && aicp_sys_next_line(&q, end, &line, &ll)) {
        /* "ii |name|1.2-3": want, status and error flags, name, version */
        const char *b1 = memchr(line, '|', ll);
        const char *b2 = b1 ? memchr(b1 + 1, '|', ll - (size_t)(b1 + 1 - line)) : NULL;
        if (b2 == NULL || b1 - line < 2)
            continue;
        char *key = aicp_strndup(b1 + 1, (size_t)(b2 - b1 - 1));
        json_object_set_new(pkgs, key,
                            json_pack("{s:s%, s:s%}", "status", line, (size_t)(b1 - line),
                                      "version", b2 + 1, ll - (size_t)(b2 + 1 - line)));
        free(key);
    }
    /* apt-cache policy: "name:" then "  Candidate: v", "  Version table:"
     * and version lines ("     v 500" or " *** v 100"). */
    json_t *pol = json_object(), *entry = NULL;
    json_object_set_new(cur, "policy", pol);
    sec = aicp_sys_section(res.out, "policy", 0, &len);
    q = sec;
    end = sec ? sec + len : NULL;
    int in_table = 0;
    while (sec && aicp_sys_next_line(&q, end, &line, &ll)) {
        if (ll > 1 && !isspace((unsigned char)line[0]) && line[ll - 1] == ':') {
            const char *c = memchr(line, ':', ll);
            char *key = aicp_strndup(line, (size_t)(c - line));
            entry = json_pack("{s:n, s:[]}", "candidate", "versions");
            json_object_set_new(pol, key, entry);
            free(key);
            in_table = 0;
            continue;
        }
        if (entry == NULL)
            continue;
        while (ll > 0 && isspace((unsigned char)*line)) {
            line++;
            ll--;
        }
        if (ll > 11 && strncmp(line, "Candidate: ", 11) == 0) {
            if (strncmp(line + 11, "(none)", 6) != 0)
                json_object_set_new(entry, "candidate", json_stringn(line + 11, ll - 11));
        } else if (strncmp(line, "Version table:", 14) == 0) {
            in_table = 1;
        } else if (in_table) {
            char *v = NULL;
            if (policy_version(line, ll, &v) == 1)
                json_array_append_new(json_object_get(entry, "versions"), json_string(v));
            free(v);
        }
    }
    long long stamp = aicp_sys_field_int(res.out, "stamp", 0);
    long long lists = aicp_sys_field_int(res.out, "lists", 0);
    json_object_set_new(cur, "cache_time", json_integer(stamp > lists ? stamp : lists));
    json_object_set_new(cur, "now", json_integer(aicp_sys_field_int(res.out, "now", 0)));
    json_object_set_new(cur, "autoremove",
                        json_integer(aicp_sys_field_int(res.out, "autoremove", 0)));
    aicp_sys_result(ctx, "cache_updated", json_false());
    aicp_sys_result(ctx, "cache_update_time", json_integer(stamp > lists ? stamp : lists));
    *current = cur;
out:
    pkgs_free(p, n);
    aicp_exec_result_clear(&res);
    aicp_buf_free(&s);
    return rc;
}

/* dpkg's second status letter: installed, or triggers pending/awaited. */
static int status_installed(const char *st)
{
    return st && strlen(st) >= 2 && strchr("iWt", st[1]) != NULL;
}

/* Picks the version to install for a pin from apt-cache's version table
 * (newest first): the pinned one, or the newest that matches a glob. NULL
 * when apt knows no such version. */
static const char *pin_target(const json_t *policy, const char *version)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(policy, "versions"), i,
                       v) if (fnmatch(version, json_string_value(v), 0) ==
                              0) return json_string_value(v);
    return NULL;
}

static int apt_diff(const json_t *current, const struct aicp_args *args,
                    struct aicp_change **change, struct aicp_err *err)
{
    const char *state = aicp_args_str(args, "state");
    int latest = strcmp(state, "latest") == 0, absent = strcmp(state, "absent") == 0;
    int purge = aicp_args_bool(args, "purge", 0);
    const json_t *pkgs = json_object_get(current, "packages");
    const json_t *policy = json_object_get(current, "policy");
    json_t *install = json_array(), *remove = json_array();
    json_t *before = json_object(), *after = json_object();
    struct aicp_change *c = NULL;
    struct pkg *p = NULL;
    size_t n = 0;
    int rc;

    if ((rc = pkgs_parse(&p, &n, args, err)) != 0)
        goto out;
    long long age = json_integer_value(json_object_get(current, "now")) -
                    json_integer_value(json_object_get(current, "cache_time"));
    long long valid = aicp_args_int(args, "cache_valid_time", 0);
    int update = aicp_args_bool(args, "update_cache", 0) && (valid <= 0 || age > valid);
    for (size_t i = 0; i < n; i++) {
        const json_t *d = json_object_get(pkgs, p[i].key);
        const json_t *pol = json_object_get(policy, p[i].key);
        const char *st = json_string_value(json_object_get(d, "status"));
        const char *have = json_string_value(json_object_get(d, "version"));
        const char *cand = json_string_value(json_object_get(pol, "candidate"));
        int installed = status_installed(st);
        json_object_set_new(before, p[i].spec, installed ? json_string(have) : json_null());
        if (absent) {
            int match = installed && (p[i].version == NULL || fnmatch(p[i].version, have, 0) == 0);
            /* purge also clears a removed package's leftover configuration */
            int leftover = purge && st && strlen(st) >= 2 && st[1] == 'c' && p[i].version == NULL;
            if (match || leftover)
                json_array_append_new(remove, json_string(p[i].name));
            json_object_set_new(after, p[i].spec,
                                match || leftover || !installed ? json_null() : json_string(have));
            continue;
        }
        if (latest && p[i].version) {
            rc = aicp_err_set(err, AICP_EINVAL, "version number inconsistent with state=latest: %s",
                              p[i].spec);
            goto out;
        }
        const char *target = NULL; /* NULL: nothing to do */
        if (p[i].version) {
            int have_pin = installed && fnmatch(p[i].version, have, 0) == 0;
            /* The lists about to be refreshed may hold what the old ones
             * lack: then apt-get itself decides. */
            if (!have_pin && (target = pin_target(pol, p[i].version)) == NULL && update)
                target = p[i].version;
            else if (!have_pin && target == NULL) {
                rc = aicp_err_set(err, AICP_EFAILED, "No package matching '%s' is available",
                                  p[i].spec);
                goto out;
            }
        } else if (!installed || (latest && cand && strcmp(cand, have) != 0)) {
            if (cand == NULL && !installed && update) {
                cand = "";
            } else if (cand == NULL && !installed) {
                rc = aicp_err_set(err, AICP_EFAILED, "No package matching '%s' is available",
                                  p[i].name);
                goto out;
            }
            target = cand;
        }
        if (target) {
            struct aicp_buf b = AICP_BUF_INIT;
            if (aicp_buf_printf(&b, "%s%s%s", p[i].name, *target ? "=" : "", target) != 0) {
                rc = AICP_ENOMEM;
                goto out;
            }
            json_array_append_new(install, json_string(b.data));
            aicp_buf_free(&b);
        }
        json_object_set_new(after, p[i].spec,
                            json_string(target && *target ? target
                                        : target          ? "latest"
                                                          : have));
    }
    int autoremove = aicp_args_bool(args, "autoremove", 0);
    int orphans = autoremove && json_integer_value(json_object_get(current, "autoremove")) > 0;
    if ((rc = aicp_change_new(&c)) != 0)
        goto out;
    /* As Ansible: a cache update is a change only when it is all the task
     * does; otherwise it just precedes the package work. */
    int work = json_array_size(install) || json_array_size(remove) || orphans;
    c->needed = work || (update && n == 0);
    if (update)
        json_object_set_new(before, "cache_age", json_integer(age));
    c->before = before;
    c->after = after;
    before = after = NULL;
    c->plan = json_pack("{s:b, s:O, s:O, s:b, s:b}", "update", update, "install", install, "remove",
                        remove, "autoremove", autoremove && (work || orphans), "no_verify",
                        update && n == 0 && !orphans && valid <= 0);
    if (c->plan == NULL) {
        rc = AICP_ENOMEM;
        goto out;
    }
    *change = c;
    c = NULL;
out:
    aicp_change_free(c);
    json_decref(install);
    json_decref(remove);
    json_decref(before);
    json_decref(after);
    pkgs_free(p, n);
    return rc;
}

/* The options every apt-get install/remove gets. */
static int apt_opts(struct aicp_buf *s, const struct aicp_args *args, int installing)
{
    int rc = aicp_buf_printf(s, "-y -q -o DPkg::Lock::Timeout=%lld ",
                             aicp_args_int(args, "lock_timeout", 60));
    const char *dpkg = aicp_args_str(args, "dpkg_options");
    char *copy = aicp_strdup(dpkg ? dpkg : ""), *save = NULL;
    for (char *o = copy ? strtok_r(copy, ",", &save) : NULL; rc == 0 && o;
         o = strtok_r(NULL, ",", &save)) {
        struct aicp_buf w = AICP_BUF_INIT;
        while (*o == ' ' || *o == '-')
            o++;
        if (*o == '\0')
            continue;
        rc = aicp_buf_printf(&w, "Dpkg::Options::=--%s", o);
        rc = rc ? rc : aicp_buf_puts(s, "-o ");
        rc = rc ? rc : aicp_sys_word(s, w.data);
        aicp_buf_free(&w);
    }
    free(copy);
    if (rc == 0 && installing) {
        int rec = aicp_args_bool(args, "install_recommends", -1);
        if (rec == 1)
            rc = aicp_buf_puts(s, "-o APT::Install-Recommends=yes ");
        else if (rec == 0)
            rc = aicp_buf_puts(s, "--no-install-recommends ");
        const char *rel = aicp_args_str(args, "default_release");
        if (rc == 0 && rel && *rel) {
            rc = aicp_buf_puts(s, "-t ");
            rc = rc ? rc : aicp_sys_word(s, rel);
        }
    }
    int force = aicp_args_bool(args, "force", 0);
    if (rc == 0 && (force || aicp_args_bool(args, "allow_downgrade", 0)) && installing)
        rc = aicp_buf_puts(s, "--allow-downgrades ");
    if (rc == 0 && force)
        rc = aicp_buf_puts(s, "--allow-remove-essential --allow-change-held-packages ");
    if (rc == 0 && (force || aicp_args_bool(args, "allow_unauthenticated", 0)))
        rc = aicp_buf_puts(s, "--allow-unauthenticated ");
    return rc;
}

/* Copies text to the result without the script's own tag lines. */
static json_t *untagged(const char *text, size_t len)
{
    struct aicp_buf b = AICP_BUF_INIT;
    const char *p = text ? text : "", *end = p + (text ? len : 0), *line;
    size_t ll;
    while (aicp_sys_next_line(&p, end, &line, &ll))
        if (ll < sizeof(AICP_SYS_TAG) - 1 || strncmp(line, AICP_SYS_TAG, sizeof(AICP_SYS_TAG) - 1))
            aicp_buf_printf(&b, "%.*s\n", (int)ll, line);
    json_t *j = json_stringn(b.data ? b.data : "", b.len);
    aicp_buf_free(&b);
    return j;
}

static int apt_apply(struct aicp_ctx *ctx, const struct aicp_change *change, struct aicp_err *err)
{
    const struct aicp_args *args = change->args;
    const json_t *plan = change->plan;
    const json_t *install = json_object_get(plan, "install");
    const json_t *remove = json_object_get(plan, "remove");
    int purge = aicp_args_bool(args, "purge", 0);
    struct aicp_buf s = AICP_BUF_INIT;
    struct aicp_exec_result res;
    memset(&res, 0, sizeof(res));
    size_t i;
    json_t *v;
    int rc = aicp_buf_puts(&s, "LC_ALL=C; DEBIAN_FRONTEND=noninteractive; "
                               "export LC_ALL DEBIAN_FRONTEND\n"
                               "fail() { echo \"" AICP_SYS_TAG "failed=$1\" >&2; exit 1; }\n");

    if (rc == 0 && json_is_true(json_object_get(plan, "update")))
        /* The stamp is what Debian's own apt hook touches; it makes the
         * cache's age exact even when no list file changed. */
        rc = aicp_buf_printf(&s,
                             "apt-get update -q -o DPkg::Lock::Timeout=%lld || fail update\n"
                             "mkdir -p /var/lib/apt/periodic && touch " STAMP "\n"
                             "echo \"" AICP_SYS_TAG "cachetime=$(stat -c %%Y " STAMP ")\"\n",
                             aicp_args_int(args, "lock_timeout", 60));
    if (rc == 0 && json_array_size(install)) {
        rc = aicp_buf_puts(&s, "apt-get ");
        rc = rc ? rc : apt_opts(&s, args, 1);
        rc = rc ? rc : aicp_buf_puts(&s, "install ");
        json_array_foreach(install, i, v) rc = rc ? rc : aicp_sys_word(&s, json_string_value(v));
        rc = rc ? rc : aicp_buf_puts(&s, "|| fail install\n");
    }
    if (rc == 0 && json_array_size(remove)) {
        rc = aicp_buf_puts(&s, "apt-get ");
        rc = rc ? rc : apt_opts(&s, args, 0);
        rc = rc ? rc : aicp_buf_puts(&s, purge ? "--purge remove " : "remove ");
        json_array_foreach(remove, i, v) rc = rc ? rc : aicp_sys_word(&s, json_string_value(v));
        rc = rc ? rc : aicp_buf_puts(&s, "|| fail remove\n");
    }
    if (rc == 0 && json_is_true(json_object_get(plan, "autoremove"))) {
        rc = aicp_buf_puts(&s, "apt-get ");
        rc = rc ? rc : apt_opts(&s, args, 0);
        rc = rc ? rc
                : aicp_buf_puts(&s, purge ? "--purge autoremove || fail autoremove\n"
                                          : "autoremove || fail autoremove\n");
    }
    if (rc)
        goto out;
    if ((rc = aicp_sys_exec(ctx, s.data, &res, err)) != 0)
        goto out;
    char *tag = res.err ? strstr(res.err, AICP_SYS_TAG "failed=") : NULL;
    char step[16] = "";
    if (tag) {
        size_t sl = strcspn(tag + sizeof(AICP_SYS_TAG "failed=") - 1, "\n");
        snprintf(step, sizeof(step), "%.*s", (int)sl, tag + sizeof(AICP_SYS_TAG "failed=") - 1);
        *tag = '\0';
        res.err_len = (size_t)(tag - res.err);
    }
    aicp_sys_result(ctx, "stdout", untagged(res.out, res.out_len));
    aicp_sys_result(ctx, "stderr", json_stringn(res.err ? res.err : "", res.err ? res.err_len : 0));
    long long t = aicp_sys_field_int(res.out ? res.out : "", "cachetime", -1);
    if (t >= 0) {
        aicp_sys_result(ctx, "cache_updated", json_true());
        aicp_sys_result(ctx, "cache_update_time", json_integer(t));
    }
    if (res.rc != 0) {
        if (strcmp(step, "update") == 0)
            rc = aicp_sys_fail(err, &res, "Failed to update apt cache");
        else
            rc = aicp_sys_fail(err, &res, "'apt-get %s' failed", step[0] ? step : "install");
    }
out:
    aicp_exec_result_clear(&res);
    aicp_buf_free(&s);
    return rc;
}

static const struct aicp_module_ops apt_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = apt_check,
    .diff = apt_diff,
    .apply = apt_apply,
};

const struct aicp_module aicp_mod_apt = {
    .name = "apt",
    .summary = "Manage Debian packages with apt-get",
    .args = apt_args,
    .flags = AICP_MOD_NEEDS_SSH,
    .ops = &apt_ops,
};
