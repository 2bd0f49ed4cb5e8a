/* The helm_release module: one Helm release, installed or upgraded with
 * `helm upgrade --install` from the jump host's helm binary, or
 * uninstalled. The release is unchanged (and helm upgrade is not run) when
 * the deployed chart name and version, the user-supplied values (compared as
 * data, after merging the values files and the inline values the way helm
 * merges -f files) and the status `deployed` already match. Values never go
 * on a command line, where ps shows them: they are written to a 0600 file in
 * a private 0700 directory that is wiped and removed before apply returns.
 * helm is started with posix_spawnp and an argv array, never through a
 * shell; it only relies on helm 3's documented commands and JSON output. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "module.h"
#include "util.h"
#include "yaml.h"

extern char **environ;

#define HELM_MAX_ARGV 40

static const struct aicp_arg_spec helm_args[] = {
    {.name = "name", .type = AICP_ARG_STR, .required = 1, .aliases = "release_name",
     .help = "The release's name."},
    {.name = "chart_ref", .type = AICP_ARG_STR, .aliases = "chart",
     .help = "The chart: `repo/chart`, an `oci://` reference, a local chart directory or "
             "a packaged chart (.tgz) for air-gapped sites. Required with state=present."},
    {.name = "chart_version", .type = AICP_ARG_STR,
     .help = "The chart version to deploy (`--version`). Pin it: without it a deployed "
             "chart of the right name counts as the right version."},
    {.name = "chart_repo_url", .type = AICP_ARG_STR,
     .help = "The chart repository's URL: added (`helm repo add --force-update`) under the "
             "repository name of chart_ref (`NAME/chart`) and updated before an upgrade."},
    {.name = "release_namespace", .type = AICP_ARG_STR, .required = 1, .aliases = "namespace",
     .help = "The release's namespace (`-n`)."},
    {.name = "create_namespace", .type = AICP_ARG_BOOL, .def = "no",
     .help = "Create the namespace if it is missing (`--create-namespace`)."},
    {.name = "values", .type = AICP_ARG_DICT,
     .help = "Inline values; merged over values_files (maps deep-merged, lists replaced)."},
    {.name = "values_files", .type = AICP_ARG_LIST,
     .help = "YAML values files on the jump host, merged in order, later ones winning."},
    {.name = "state", .type = AICP_ARG_STR, .def = "present", .choices = "present|absent",
     .help = "absent uninstalls the release (`helm uninstall`)."},
    {.name = "wait", .type = AICP_ARG_BOOL, .def = "no",
     .help = "Wait until the release's resources are ready (`--wait`)."},
    {.name = "wait_timeout", .type = AICP_ARG_STR,
     .help = "How long helm waits (`--timeout`), a Go duration such as `5m0s`; a bare "
             "number is seconds."},
    {.name = "atomic", .type = AICP_ARG_BOOL, .def = "no",
     .help = "Roll back a failed upgrade (`--atomic`)."},
    {.name = "binary_path", .type = AICP_ARG_PATH, .def = "helm", .local = 1,
     .help = "The helm program; a name without / is looked up in PATH."},
    {.name = "kubeconfig", .type = AICP_ARG_PATH, .local = 1, .aliases = "kubeconfig_path",
     .help = "The kubeconfig helm uses (`--kubeconfig`); helm's default otherwise."},
    {.name = "context", .type = AICP_ARG_STR, .aliases = "kube_context",
     .help = "The kubeconfig context (`--kube-context`)."},
    {.name = NULL},
};

/* One helm command line: borrowed strings, no shell. */
struct helm_argv {
    const char *v[HELM_MAX_ARGV + 1];
    size_t n;
};

static void argv_add(struct helm_argv *a, const char *s)
{
    if (a->n < HELM_MAX_ARGV)
        a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

static void argv_kube(struct helm_argv *a, const struct aicp_args *args)
{
    const char *kc = aicp_args_str(args, "kubeconfig");
    const char *cx = aicp_args_str(args, "context");

    if (kc != NULL && *kc) {
        argv_add(a, "--kubeconfig");
        argv_add(a, kc);
    }
    if (cx != NULL && *cx) {
        argv_add(a, "--kube-context");
        argv_add(a, cx);
    }
}

/* Reads stdout and stderr of the child together, so neither pipe fills. */
static int drain(int ofd, int efd, struct aicp_buf *out, struct aicp_buf *errb)
{
    struct pollfd p[2] = {{.fd = ofd, .events = POLLIN}, {.fd = efd, .events = POLLIN}};
    struct aicp_buf *dst[2] = {out, errb};
    int open_fds = 2;

    while (open_fds > 0) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return AICP_EIO;
        }
        for (int i = 0; i < 2; i++) {
            char chunk[4096];
            if (p[i].fd < 0 || p[i].revents == 0)
                continue;
            ssize_t n = read(p[i].fd, chunk, sizeof(chunk));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                p[i].fd = -1;
                open_fds--;
                continue;
            }
            if (aicp_buf_append(dst[i], chunk, (size_t)n) != 0)
                return AICP_ENOMEM;
        }
    }
    return 0;
}

/* Runs helm with av (av->v[0] is the program). *status is the exit code,
 * or -1 when killed. Failing to start is an error naming the program. */
static int helm_run(const struct helm_argv *av, struct aicp_buf *out, struct aicp_buf *errb,
                    int *status, struct aicp_err *err)
{
    int ofd[2] = {-1, -1}, efd[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    int fa_init = 0, rc = 0, st = 0;
    pid_t pid = -1;

    *status = -1;
    if (pipe(ofd) != 0 || pipe(efd) != 0) {
        rc = aicp_err_set(err, AICP_EIO, "helm: pipe: %s", strerror(errno));
        goto out;
    }
    if (posix_spawn_file_actions_init(&fa) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    fa_init = 1;
    if (posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0) != 0 ||
        posix_spawn_file_actions_adddup2(&fa, ofd[1], STDOUT_FILENO) != 0 ||
        posix_spawn_file_actions_adddup2(&fa, efd[1], STDERR_FILENO) != 0 ||
        posix_spawn_file_actions_addclose(&fa, ofd[0]) != 0 ||
        posix_spawn_file_actions_addclose(&fa, efd[0]) != 0 ||
        posix_spawn_file_actions_addclose(&fa, ofd[1]) != 0 ||
        posix_spawn_file_actions_addclose(&fa, efd[1]) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    int e = posix_spawnp(&pid, av->v[0], &fa, NULL, (char *const *)av->v, environ);
    if (e != 0) {
        pid = -1;
        rc = aicp_err_set(err, AICP_EFAILED, "cannot run %s: %s", av->v[0], strerror(e));
        goto out;
    }
    close(ofd[1]);
    close(efd[1]);
    ofd[1] = efd[1] = -1;
    int drc = drain(ofd[0], efd[0], out, errb);
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR) {
            st = -1;
            break;
        }
    }
    if (drc != 0) {
        rc = aicp_err_set(err, drc, "%s: reading its output failed", av->v[0]);
        goto out;
    }
    *status = (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
out:
    if (fa_init)
        posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < 2; i++) {
        if (ofd[i] >= 0)
            close(ofd[i]);
        if (efd[i] >= 0)
            close(efd[i]);
    }
    return rc;
}

/* helm's message: the first non-empty line of its stderr. */
static void first_line(char *dst, size_t cap, const struct aicp_buf *errb)
{
    const char *s = errb->data ? errb->data : "";
    while (*s == '\n' || *s == '\r' || *s == ' ')
        s++;
    size_t n = strcspn(s, "\r\n");
    if (n == 0) {
        snprintf(dst, cap, "no message on stderr");
        return;
    }
    snprintf(dst, cap, "%.*s", (int)n, s);
}

/* Runs one helm command that must succeed; what (e.g. "helm upgrade")
 * names it in the error, without its arguments. */
static int helm_must(const struct helm_argv *av, const char *what, const char *release,
                     struct aicp_buf *out, struct aicp_err *err)
{
    struct aicp_buf errb = AICP_BUF_INIT;
    int status, rc;
    char line[600];

    if ((rc = helm_run(av, out, &errb, &status, err)) != 0)
        goto out;
    if (status != 0) {
        first_line(line, sizeof(line), &errb);
        rc = aicp_err_set(err, AICP_EFAILED, "%s failed for release %s (exit %d): %s", what,
                          release, status, line);
    }
out:
    aicp_buf_free_secret(&errb);
    return rc;
}

/* Helm's merge of values files: maps merge key by key, recursively; any
 * other value (lists included) replaces the earlier one. dst is modified. */
static int values_merge(json_t *dst, const json_t *src)
{
    const char *k;
    json_t *v;

    json_object_foreach((json_t *)src, k, v) {
        json_t *d = json_object_get(dst, k);
        if (json_is_object(d) && json_is_object(v)) {
            if (values_merge(d, v) != 0)
                return AICP_ENOMEM;
        } else if (json_object_set_new(dst, k, json_deep_copy(v)) != 0) {
            return AICP_ENOMEM;
        }
    }
    return 0;
}

/* The user-supplied values helm will record: values_files in order, then
 * the inline values. New reference in *out. */
static int desired_values(json_t **out, const struct aicp_args *args, struct aicp_err *err)
{
    const json_t *files = aicp_args_get(args, "values_files");
    const json_t *inl = aicp_args_get(args, "values");
    json_t *acc = json_object();
    size_t i;
    json_t *f;
    int rc = 0;

    if (acc == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    json_array_foreach(files, i, f) {
        json_t *doc = NULL;
        const char *path = json_string_value(f);
        if (path == NULL) {
            rc = aicp_err_set(err, AICP_EINVAL, "values_files: entry %zu is not a path", i);
            goto out;
        }
        if ((rc = aicp_yaml_load_file(&doc, path, NULL, err)) != 0) {
            aicp_err_prefix(err, "values file %s", path);
            goto out;
        }
        if (json_is_null(doc)) {
            json_decref(doc);
            continue;
        }
        if (!json_is_object(doc)) {
            json_decref(doc);
            rc = aicp_err_set(err, AICP_EINVAL, "values file %s: not a mapping of values", path);
            goto out;
        }
        rc = values_merge(acc, doc);
        json_decref(doc);
        if (rc != 0) {
            rc = aicp_err_set(err, rc, "out of memory");
            goto out;
        }
    }
    if (json_is_object(inl) && (rc = values_merge(acc, inl)) != 0) {
        rc = aicp_err_set(err, rc, "out of memory");
        goto out;
    }
out:
    if (rc != 0)
        json_decref(acc);
    else
        *out = acc;
    return rc;
}

/* The chart name and version chart_ref stands for, as far as it says:
 * `repo/name`, `oci://host/path/name`, `path/name-1.2.3.tgz`, or a chart
 * directory (whose Chart.yaml says). Version may stay NULL. */
static int desired_chart(json_t *cur, const struct aicp_args *args, struct aicp_err *err)
{
    const char *ref = aicp_args_str(args, "chart_ref");
    const char *ver = aicp_args_str(args, "chart_version");
    char name[512], path[4096];
    struct stat st;

    snprintf(name, sizeof(name), "%s", ref);
    size_t n = strlen(name);
    while (n > 1 && name[n - 1] == '/')
        name[--n] = '\0';
    snprintf(path, sizeof(path), "%s/Chart.yaml", name);
    if (stat(name, &st) == 0 && S_ISDIR(st.st_mode)) {
        json_t *meta = NULL;
        int rc = aicp_yaml_load_file(&meta, path, NULL, err);
        if (rc != 0) {
            aicp_err_prefix(err, "chart %s", ref);
            return rc;
        }
        json_object_set(cur, "want_chart", json_object_get(meta, "name"));
        if (ver == NULL)
            json_object_set(cur, "want_version", json_object_get(meta, "version"));
        json_decref(meta);
    } else {
        const char *base = strrchr(name, '/');
        base = base ? base + 1 : name;
        char b[512];
        snprintf(b, sizeof(b), "%s", base);
        size_t bl = strlen(b);
        int packaged = 0;
        if (bl > 4 && strcmp(b + bl - 4, ".tgz") == 0) {
            b[bl - 4] = '\0';
            packaged = 1;
        } else if (bl > 7 && strcmp(b + bl - 7, ".tar.gz") == 0) {
            b[bl - 7] = '\0';
            packaged = 1;
        }
        if (packaged) {
            /* helm package names files NAME-VERSION.tgz; versions start with a digit. */
            char *dash = b;
            char *last = NULL;
            while ((dash = strchr(dash, '-')) != NULL) {
                if (dash[1] >= '0' && dash[1] <= '9') {
                    last = dash;
                    break;
                }
                dash++;
            }
            if (last != NULL) {
                if (ver == NULL)
                    json_object_set_new(cur, "want_version", json_string(last + 1));
                *last = '\0';
            }
        }
        json_object_set_new(cur, "want_chart", json_string(b));
    }
    if (ver != NULL)
        json_object_set_new(cur, "want_version", json_string(ver));
    return 0;
}

static void argv_release(struct helm_argv *av, const char *bin, const char *cmd,
                         const struct aicp_args *args)
{
    av->n = 0;
    argv_add(av, bin);
    argv_add(av, cmd);
    argv_add(av, aicp_args_str(args, "name"));
    argv_add(av, "-n");
    argv_add(av, aicp_args_str(args, "release_namespace"));
}

/* Reads the release: `helm status -o json` for its status and chart, and
 * `helm get values -o json` for the values the user supplied. */
static int helm_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                      struct aicp_err *err)
{
    const char *bin = aicp_args_str(args, "binary_path");
    const char *rel = aicp_args_str(args, "name");
    int present = strcmp(aicp_args_str(args, "state"), "absent") != 0;
    struct aicp_buf out = AICP_BUF_INIT, errb = AICP_BUF_INIT;
    struct helm_argv av;
    json_t *cur = json_object(), *st = NULL, *vals = NULL;
    json_error_t je;
    int status, rc;
    char line[600];

    if (cur == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    if (present) {
        if (aicp_args_str(args, "chart_ref") == NULL) {
            rc = aicp_err_set(err, AICP_EINVAL,
                              "missing required argument 'chart_ref' (state is present)");
            goto out;
        }
        if ((rc = desired_chart(cur, args, err)) != 0)
            goto out;
        if ((rc = desired_values(&vals, args, err)) != 0)
            goto out;
        json_object_set_new(cur, "want_values", vals);
        vals = NULL;
    }
    argv_release(&av, bin, "status", args);
    argv_add(&av, "-o");
    argv_add(&av, "json");
    argv_kube(&av, args);
    if ((rc = helm_run(&av, &out, &errb, &status, err)) != 0)
        goto out;
    if (status != 0) {
        if (errb.data != NULL && strstr(errb.data, "release: not found") != NULL) {
            json_object_set_new(cur, "state", json_string("absent"));
            goto out;
        }
        first_line(line, sizeof(line), &errb);
        rc = aicp_err_set(err, AICP_EFAILED, "helm status failed for release %s (exit %d): %s",
                          rel, status, line);
        goto out;
    }
    st = json_loadb(out.data ? out.data : "", out.len, 0, &je);
    if (!json_is_object(st)) {
        rc = aicp_err_set(err, AICP_EFAILED, "helm status for release %s: not JSON: %s", rel,
                          je.text);
        goto out;
    }
    const char *s = json_string_value(json_object_get(json_object_get(st, "info"), "status"));
    if (s != NULL && strcmp(s, "uninstalled") == 0) {
        /* `helm uninstall --keep-history` leaves this; it is not installed. */
        json_object_set_new(cur, "state", json_string("absent"));
        goto out;
    }
    json_t *meta = json_object_get(json_object_get(st, "chart"), "metadata");
    json_object_set_new(cur, "state", json_string("present"));
    json_object_set_new(cur, "status", json_string(s ? s : "unknown"));
    json_object_set(cur, "chart", json_object_get(meta, "name"));
    json_object_set(cur, "chart_version", json_object_get(meta, "version"));
    json_object_set(cur, "revision", json_object_get(st, "version"));
    json_object_set(ctx->result, "revision", json_object_get(st, "version"));
    json_object_set(ctx->result, "status", json_object_get(cur, "status"));
    json_object_set(ctx->result, "chart", json_object_get(meta, "name"));
    json_object_set(ctx->result, "chart_version", json_object_get(meta, "version"));
    if (!present)
        goto out;
    aicp_buf_free_secret(&out);
    aicp_buf_free(&errb);
    /* `get values NAME`: the release name comes after the subcommand. */
    av.n = 0;
    argv_add(&av, bin);
    argv_add(&av, "get");
    argv_add(&av, "values");
    argv_add(&av, rel);
    argv_add(&av, "-n");
    argv_add(&av, aicp_args_str(args, "release_namespace"));
    argv_add(&av, "-o");
    argv_add(&av, "json");
    argv_kube(&av, args);
    if ((rc = helm_must(&av, "helm get values", rel, &out, err)) != 0)
        goto out;
    vals = json_loadb(out.data ? out.data : "", out.len, JSON_DECODE_ANY, &je);
    if (vals == NULL || !(json_is_object(vals) || json_is_null(vals))) {
        rc = aicp_err_set(err, AICP_EFAILED, "helm get values for release %s: not a JSON object",
                          rel);
        goto out;
    }
    /* No user-supplied values prints null. */
    json_object_set_new(cur, "values", json_is_null(vals) ? json_object() : json_incref(vals));
out:
    aicp_buf_free_secret(&out);
    aicp_buf_free(&errb);
    json_decref(st);
    json_decref(vals);
    if (rc != 0)
        json_decref(cur);
    else
        *current = cur;
    return rc;
}

/* Top-level keys whose values differ, old values into b, new into a. */
static void values_delta(json_t *b, json_t *a, const json_t *have, const json_t *want)
{
    const char *k;
    json_t *v;

    json_object_foreach((json_t *)have, k, v) {
        json_t *w = json_object_get(want, k);
        if (w == NULL || !json_equal(v, w))
            json_object_set(b, k, v);
    }
    json_object_foreach((json_t *)want, k, v) {
        json_t *h = json_object_get(have, k);
        if (h == NULL || !json_equal(v, h))
            json_object_set(a, k, v);
    }
}

static int helm_diff(const json_t *current, const struct aicp_args *args,
                     struct aicp_change **change, struct aicp_err *err)
{
    struct aicp_change *c = NULL;
    int present = strcmp(aicp_args_str(args, "state"), "absent") != 0;
    int installed = strcmp(json_string_value(json_object_get(current, "state")), "present") == 0;
    int rc;

    if ((rc = aicp_change_new(&c)) != 0)
        return aicp_err_set(err, rc, "out of memory");
    if (!present) {
        if (installed) {
            c->needed = 1;
            c->before = json_pack("{s:s}", "state", "present");
            c->after = json_pack("{s:s}", "state", "absent");
            c->plan = json_pack("{s:s}", "op", "uninstall");
        }
        goto out;
    }
    const json_t *want_chart = json_object_get(current, "want_chart");
    const json_t *want_ver = json_object_get(current, "want_version");
    const json_t *want_vals = json_object_get(current, "want_values");
    c->before = json_object();
    c->after = json_object();
    if (!installed) {
        json_object_set_new(c->before, "state", json_string("absent"));
        json_object_set_new(c->after, "state", json_string("present"));
        json_object_set(c->after, "chart", (json_t *)want_chart);
        if (want_ver != NULL)
            json_object_set(c->after, "chart_version", (json_t *)want_ver);
        json_object_set(c->after, "values", (json_t *)want_vals);
    } else {
        const json_t *have_chart = json_object_get(current, "chart");
        const json_t *have_ver = json_object_get(current, "chart_version");
        const json_t *have_vals = json_object_get(current, "values");
        const char *status = json_string_value(json_object_get(current, "status"));
        if (!json_equal((json_t *)have_chart, (json_t *)want_chart)) {
            json_object_set(c->before, "chart", (json_t *)have_chart);
            json_object_set(c->after, "chart", (json_t *)want_chart);
        }
        if (want_ver != NULL && !json_equal((json_t *)have_ver, (json_t *)want_ver)) {
            json_object_set(c->before, "chart_version", (json_t *)have_ver);
            json_object_set(c->after, "chart_version", (json_t *)want_ver);
        }
        if (!json_equal((json_t *)have_vals, (json_t *)want_vals)) {
            json_t *b = json_object(), *a = json_object();
            values_delta(b, a, have_vals, want_vals);
            json_object_set_new(c->before, "values", b);
            json_object_set_new(c->after, "values", a);
        }
        if (status == NULL || strcmp(status, "deployed") != 0) {
            json_object_set_new(c->before, "status", json_string(status ? status : "unknown"));
            json_object_set_new(c->after, "status", json_string("deployed"));
        }
    }
    if (json_object_size(c->after) == 0) {
        json_decref(c->before);
        json_decref(c->after);
        c->before = c->after = NULL;
        goto out;
    }
    c->needed = 1;
    c->plan = json_pack("{s:s, s:O}", "op", "upgrade", "values", want_vals);
out:
    if (c->needed && c->plan == NULL) {
        aicp_change_free(c);
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    *change = c;
    return 0;
}

/* Writes the values to DIR/values.json, 0600, in a new 0700 directory
 * (mkdtemp). JSON is YAML, so helm reads it as a values file. */
static int values_write(char *dir, size_t dcap, char *file, size_t fcap, size_t *written,
                        const json_t *values, struct aicp_err *err)
{
    const char *tmp = getenv("TMPDIR");
    char *text = NULL;
    int fd = -1, rc = 0;

    *written = 0;
    snprintf(dir, dcap, "%s/aicp-helm-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        rc = aicp_err_set(err, AICP_EIO, "cannot make a private directory for values: %s: %s",
                          dir, strerror(errno));
        dir[0] = '\0';
        goto out;
    }
    snprintf(file, fcap, "%s/values.json", dir);
    fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = aicp_err_set(err, AICP_EIO, "%s: %s", file, strerror(errno));
        goto out;
    }
    text = json_dumps(values, JSON_COMPACT | JSON_SORT_KEYS);
    if (text == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    size_t len = strlen(text), off = 0;
    *written = len; /* a short write still leaves bytes to wipe */
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = aicp_err_set(err, AICP_EIO, "%s: write: %s", file, strerror(errno));
            goto out;
        }
        off += (size_t)n;
    }
out:
    if (fd >= 0)
        close(fd);
    aicp_free_secret(text);
    return rc;
}

/* Overwrites the values file with zeros before removing it and its
 * directory, so that the values do not linger in free blocks of a tmpfs. */
static void values_remove(const char *dir, const char *file, size_t len)
{
    if (dir[0] == '\0')
        return;
    int fd = open(file, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        char zero[4096] = {0};
        size_t off = 0;
        while (off < len) {
            size_t n = len - off < sizeof(zero) ? len - off : sizeof(zero);
            ssize_t w = write(fd, zero, n);
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        fsync(fd);
        close(fd);
    }
    unlink(file);
    rmdir(dir);
}

/* With chart_repo_url: adds the repository under the name chart_ref
 * gives it (`NAME/chart`) and refreshes its index, before an upgrade. */
static int repo_prepare(const struct aicp_args *args, const char *bin, struct aicp_err *err)
{
    const char *url = aicp_args_str(args, "chart_repo_url");
    const char *ref = aicp_args_str(args, "chart_ref");
    const char *rel = aicp_args_str(args, "name");
    struct aicp_buf out = AICP_BUF_INIT;
    struct helm_argv av = {.n = 0};
    char repo[256];
    int rc;

    if (url == NULL || *url == '\0')
        return 0;
    const char *slash = strchr(ref, '/');
    if (slash == NULL || slash == ref || strstr(ref, "://") != NULL || ref[0] == '.' ||
        (size_t)(slash - ref) >= sizeof(repo))
        return aicp_err_set(err, AICP_EINVAL,
                            "chart_repo_url needs chart_ref written REPO/CHART, not '%s'", ref);
    snprintf(repo, sizeof(repo), "%.*s", (int)(slash - ref), ref);
    argv_add(&av, bin);
    argv_add(&av, "repo");
    argv_add(&av, "add");
    argv_add(&av, "--force-update");
    argv_add(&av, repo);
    argv_add(&av, url);
    if ((rc = helm_must(&av, "helm repo add", rel, &out, err)) != 0)
        goto out;
    av.n = 0;
    argv_add(&av, bin);
    argv_add(&av, "repo");
    argv_add(&av, "update");
    argv_add(&av, repo);
    rc = helm_must(&av, "helm repo update", rel, &out, err);
out:
    aicp_buf_free(&out);
    return rc;
}

static int helm_apply(struct aicp_ctx *ctx, const struct aicp_change *change,
                      struct aicp_err *err)
{
    const struct aicp_args *args = change->args;
    const char *bin = aicp_args_str(args, "binary_path");
    const char *rel = aicp_args_str(args, "name");
    const char *op = json_string_value(json_object_get(change->plan, "op"));
    const char *timeout = aicp_args_str(args, "wait_timeout");
    struct aicp_buf out = AICP_BUF_INIT;
    struct helm_argv av;
    char dir[4096] = "", file[4200] = "", tbuf[64];
    size_t written = 0;
    int rc;

    (void)ctx;
    if (timeout != NULL && *timeout && strspn(timeout, "0123456789") == strlen(timeout)) {
        snprintf(tbuf, sizeof(tbuf), "%ss", timeout);
        timeout = tbuf;
    }
    if (op != NULL && strcmp(op, "uninstall") == 0) {
        argv_release(&av, bin, "uninstall", args);
        if (aicp_args_bool(args, "wait", 0))
            argv_add(&av, "--wait");
        if (timeout != NULL && *timeout) {
            argv_add(&av, "--timeout");
            argv_add(&av, timeout);
        }
        argv_kube(&av, args);
        rc = helm_must(&av, "helm uninstall", rel, &out, err);
        goto out;
    }
    if ((rc = repo_prepare(args, bin, err)) != 0)
        goto out;
    if ((rc = values_write(dir, sizeof(dir), file, sizeof(file), &written,
                           json_object_get(change->plan, "values"), err)) != 0)
        goto out;
    av.n = 0;
    argv_add(&av, bin);
    argv_add(&av, "upgrade");
    argv_add(&av, "--install");
    argv_add(&av, rel);
    argv_add(&av, aicp_args_str(args, "chart_ref"));
    if (aicp_args_str(args, "chart_version") != NULL) {
        argv_add(&av, "--version");
        argv_add(&av, aicp_args_str(args, "chart_version"));
    }
    argv_add(&av, "-n");
    argv_add(&av, aicp_args_str(args, "release_namespace"));
    if (aicp_args_bool(args, "create_namespace", 0))
        argv_add(&av, "--create-namespace");
    argv_add(&av, "-f");
    argv_add(&av, file);
    if (aicp_args_bool(args, "wait", 0))
        argv_add(&av, "--wait");
    if (timeout != NULL && *timeout) {
        argv_add(&av, "--timeout");
        argv_add(&av, timeout);
    }
    if (aicp_args_bool(args, "atomic", 0))
        argv_add(&av, "--atomic");
    argv_kube(&av, args);
    rc = helm_must(&av, "helm upgrade", rel, &out, err);
out:
    values_remove(dir, file, written);
    aicp_buf_free_secret(&out);
    return rc;
}

static const struct aicp_module_ops helm_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = helm_check,
    .diff = helm_diff,
    .apply = helm_apply,
};

const struct aicp_module aicp_mod_helm_release = {
    .name = "helm_release",
    .summary = "Install, upgrade or uninstall a Helm release with the jump host's helm",
    .args = helm_args,
    .flags = 0,
    .ops = &helm_ops,
};
