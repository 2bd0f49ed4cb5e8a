/* `aicp validate SITE`: the site's validation benchmarks. Each entry of the
 * site's `validation` list names nodes, how to run the benchmark (over SSH
 * on the node, `bare`, as `docker run` would; as a Kubernetes Job pinned to
 * the node; or both) and the throughput expected. `distributed: true`
 * makes the Kubernetes run one benchmark across all the entry's nodes
 * (TR-4798's two-node run): the first node's Job is the master, the
 * others get worker Deployments. The entries become one
 * playbook of `validate` tasks (bare ones on the nodes, Kubernetes ones on
 * the jump host), run by the executor like any other; its JSON report
 * gives each measurement back. Then one verdict line per node and run,
 * the Kubernetes-over-bare overhead where both ran, and with --report the
 * report files (agent/report.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "executor.h"
#include "inventory.h"
#include "report.h"
#include "site.h"
#include "util.h"
#include "yaml.h"

/* Keys a validation entry may have: the site's own, then those passed to
 * the validate module as they are. */
static const char *const site_keys[] = {"name", "nodes", "where", "gpus_per_node",
                                        "min_images_per_sec", "distributed", NULL};
static const char *const module_keys[] = {
    "benchmark",   "model",          "precision",      "batch_size",   "steps",
    "warmup",      "device",         "expected_images_per_sec",        "expected_per_gpu",
    "tolerance",   "timeout",        "throughput_regex", "image",      "command",
    "docker_args", "benchmark_path", "copy_benchmark", "namespace",    "dataset_pvcs",
    "results_pvc", "shm_size",       "keep_job",       "gpus",         "env",
    "extra_args",  "worker_command", "host_network", NULL};

static int in(const char *k, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(list[i], k) == 0)
            return 1;
    return 0;
}

static int fail_key(const char **bad, const char *key, struct aicp_err *err, const char *msg)
{
    *bad = key;
    return aicp_err_set(err, AICP_EINVAL, "%s", msg);
}

int aicp_site_validation_check(const json_t *e, size_t i, const char **bad, struct aicp_err *err)
{
    const char *k;
    json_t *v;
    char msg[300];
    *bad = NULL;
    if (!json_is_object(e))
        return aicp_err_set(err, AICP_EINVAL,
                            "validation entry %zu must be a mapping (nodes, expected_images_per_sec...)",
                            i + 1);
    json_object_foreach((json_t *)e, k, v)
    {
        if (!in(k, site_keys) && !in(k, module_keys)) {
            snprintf(msg, sizeof(msg), "unknown key '%s' in a validation entry", k);
            return fail_key(bad, k, err, msg);
        }
    }
    const json_t *nodes = json_object_get(e, "nodes");
    if (!json_is_string(nodes) && !json_is_array(nodes))
        return fail_key(bad, nodes ? "nodes" : NULL, err,
                        "a validation entry needs nodes: a host pattern or a list of hosts");
    const char *where = json_string_value(json_object_get(e, "where"));
    if (json_object_get(e, "where") &&
        (where == NULL || (strcmp(where, "bare") != 0 && strcmp(where, "kubernetes") != 0 &&
                           strcmp(where, "both") != 0)))
        return fail_key(bad, "where", err, "where must be bare, kubernetes or both");
    const json_t *dist = json_object_get(e, "distributed");
    if (dist != NULL && !json_is_boolean(dist))
        return fail_key(bad, "distributed", err, "distributed must be true or false");
    if (json_is_true(dist) && (where == NULL || strcmp(where, "bare") == 0))
        return fail_key(bad, "distributed", err,
                        "distributed is for where: kubernetes (or both): one Job across the "
                        "nodes");
    const char *bench = json_string_value(json_object_get(e, "benchmark"));
    if (json_object_get(e, "benchmark") &&
        (bench == NULL ||
         (strcmp(bench, "trainbench") != 0 && strcmp(bench, "container") != 0 &&
          strcmp(bench, "resnet50") != 0 && strcmp(bench, "resnet-tiny") != 0)))
        return fail_key(bad, "benchmark", err,
                        "benchmark must be trainbench (or resnet50, resnet-tiny) or container");
    if (!json_object_get(e, "expected_images_per_sec") &&
        !json_object_get(e, "min_images_per_sec") && !json_object_get(e, "expected_per_gpu"))
        return aicp_err_set(err, AICP_EINVAL,
                            "validation entry %zu says no expected throughput "
                            "(expected_images_per_sec, min_images_per_sec or expected_per_gpu)",
                            i + 1);
    return 0;
}

/* ---- the playbook --------------------------------------------------------- */

static const char *entry_name(const json_t *e, size_t i, char *buf, size_t len)
{
    const char *n = json_string_value(json_object_get(e, "name"));
    if (n != NULL)
        return n;
    snprintf(buf, len, "validation-%zu", i + 1);
    return buf;
}

/* The validate module's arguments for entry e. */
static json_t *module_args(const struct aicp_site *s, const json_t *e, const char *where)
{
    json_t *a = json_object();
    const char *k;
    json_t *v;
    if (a == NULL)
        return NULL;
    json_object_foreach((json_t *)e, k, v)
    {
        if (in(k, module_keys))
            json_object_set(a, k, v);
    }
    /* `benchmark: resnet50` (the design's short form) is trainbench. */
    const char *b = json_string_value(json_object_get(e, "benchmark"));
    if (b && (strcmp(b, "resnet50") == 0 || strcmp(b, "resnet-tiny") == 0)) {
        json_object_set_new(a, "benchmark", json_string("trainbench"));
        if (!json_object_get(a, "model"))
            json_object_set_new(a, "model", json_string(b));
    }
    if (json_object_get(e, "gpus_per_node") && !json_object_get(a, "gpus"))
        json_object_set(a, "gpus", json_object_get(e, "gpus_per_node"));
    if (json_object_get(e, "min_images_per_sec") && !json_object_get(a, "expected_images_per_sec"))
        json_object_set(a, "expected_images_per_sec", json_object_get(e, "min_images_per_sec"));
    const char *cp = json_string_value(json_object_get(a, "copy_benchmark"));
    if (cp && cp[0] != '/') {
        struct aicp_buf p = AICP_BUF_INIT;
        aicp_buf_printf(&p, "%s/%s", s->dir, cp);
        json_object_set_new(a, "copy_benchmark", json_string(p.data ? p.data : cp));
        aicp_buf_free(&p);
    }
    /* One entry can run both ways: each run gets its own arguments. */
    static const char *const bare_only[] = {"copy_benchmark", "benchmark_path", "docker_args",
                                            NULL};
    static const char *const k8s_only[] = {"namespace",      "dataset_pvcs", "results_pvc",
                                           "shm_size",       "keep_job",     "worker_command",
                                           "host_network",   NULL};
    const char *const *drop = strcmp(where, "bare") == 0 ? k8s_only : bare_only;
    for (size_t i = 0; drop[i]; i++)
        json_object_del(a, drop[i]);
    const char *bench = json_string_value(json_object_get(a, "benchmark"));
    if (strcmp(where, "bare") == 0 && (bench == NULL || strcmp(bench, "trainbench") == 0))
        json_object_del(a, "image");
    json_object_set_new(a, "where", json_string(where));
    return a;
}

static int runs(const json_t *e, const char *where)
{
    const char *w = json_string_value(json_object_get(e, "where"));
    if (w == NULL)
        w = "bare";
    return strcmp(w, where) == 0 || strcmp(w, "both") == 0;
}

/* Task names carry what the results are matched back with. */
#define TASK_PREFIX "validate "

/* distributed: one task for all of hosts, the first the master's node, the
 * rest worker_nodes; its check's node reads "dgx1+dgx2". */
static int distributed_task(json_t *tasks, const struct aicp_site *s, const json_t *e, size_t i,
                            const char *name, const json_t *hosts, struct aicp_err *err)
{
    struct aicp_buf tname = AICP_BUF_INIT;
    json_t *a = module_args(s, e, "kubernetes"), *workers = json_array(), *h;
    size_t j;
    int rc = 0;

    if (a == NULL || workers == NULL ||
        aicp_buf_printf(&tname, TASK_PREFIX "%zu kubernetes ", i) != 0)
        goto nomem;
    json_array_foreach(hosts, j, h)
    {
        if (j > 0 && json_array_append(workers, h) != 0)
            goto nomem;
        if (aicp_buf_printf(&tname, "%s%s", j ? "+" : "", json_string_value(h)) != 0)
            goto nomem;
    }
    if (aicp_buf_printf(&tname, " %s", name) != 0 ||
        json_object_set(a, "node", json_array_get(hosts, 0)) != 0 ||
        (json_array_size(workers) > 0 && json_object_set(a, "worker_nodes", workers) != 0) ||
        json_array_append_new(tasks, json_pack("{s:s, s:O, s:b}", "name", tname.data, "validate", a,
                                               "ignore_errors", 1)) != 0)
        goto nomem;
    goto out;
nomem:
    rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
out:
    aicp_buf_free(&tname);
    json_decref(a);
    json_decref(workers);
    return rc;
}

static int build_playbook(json_t **out, const struct aicp_site *s, const json_t *entries,
                          const struct aicp_inventory *inv, int *use_local, struct aicp_err *err)
{
    json_t *pb = json_array();
    size_t i;
    json_t *e;
    int rc = 0;
    *use_local = 0;
    json_array_foreach(entries, i, e)
    {
        char nbuf[64];
        const char *name = entry_name(e, i, nbuf, sizeof(nbuf));
        const json_t *nodes = json_object_get(e, "nodes");
        json_t *hosts = NULL;
        if (json_is_array(nodes)) {
            hosts = json_deep_copy(nodes);
        } else if (inv != NULL) {
            if ((rc = aicp_inventory_match(&hosts, inv, json_string_value(nodes), err)) != 0)
                goto out;
        } else {
            hosts = json_pack("[O]", nodes);
        }
        if (json_array_size(hosts) == 0) {
            json_decref(hosts);
            rc = aicp_err_set(err, AICP_EINVAL, "validation %s: nodes '%s' matches no host", name,
                              json_string_value(nodes) ? json_string_value(nodes) : "[]");
            goto out;
        }
        if (runs(e, "bare")) {
            struct aicp_buf pattern = AICP_BUF_INIT, tname = AICP_BUF_INIT;
            size_t j;
            json_t *h;
            json_array_foreach(hosts, j, h)
            {
                aicp_buf_printf(&pattern, "%s%s", j ? "," : "", json_string_value(h));
            }
            aicp_buf_printf(&tname, TASK_PREFIX "%zu bare %s", i, name);
            json_t *play = json_pack(
                "{s:s+, s:s, s:b, s:[{s:s, s:o, s:b}]}", "name", "validate ", name, "hosts",
                pattern.data ? pattern.data : "", "gather_facts", 0, "tasks", "name",
                tname.data ? tname.data : "", "validate", module_args(s, e, "bare"),
                "ignore_errors", 1);
            aicp_buf_free(&pattern);
            aicp_buf_free(&tname);
            if (play == NULL || json_array_append_new(pb, play) != 0) {
                json_decref(hosts);
                rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
                goto out;
            }
        }
        if (runs(e, "kubernetes")) {
            json_t *tasks = json_array();
            size_t j;
            json_t *h;
            *use_local = 1;
            if (json_is_true(json_object_get(e, "distributed"))) {
                if ((rc = distributed_task(tasks, s, e, i, name, hosts, err)) != 0) {
                    json_decref(tasks);
                    json_decref(hosts);
                    goto out;
                }
                json_array_clear(hosts); /* the loop below makes no task per node */
            }
            json_array_foreach(hosts, j, h)
            {
                struct aicp_buf tname = AICP_BUF_INIT;
                json_t *a = module_args(s, e, "kubernetes");
                if (a)
                    json_object_set(a, "node", h);
                aicp_buf_printf(&tname, TASK_PREFIX "%zu kubernetes %s %s", i,
                                json_string_value(h), name);
                json_array_append_new(tasks, json_pack("{s:s, s:o, s:b}", "name",
                                                       tname.data ? tname.data : "", "validate",
                                                       a, "ignore_errors", 1));
                aicp_buf_free(&tname);
            }
            json_t *play = json_pack("{s:s+, s:s, s:s, s:b, s:o}", "name", "validate ", name,
                                     "hosts", "localhost", "connection", "local", "gather_facts",
                                     0, "tasks", tasks);
            if (play == NULL || json_array_append_new(pb, play) != 0) {
                json_decref(hosts);
                rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
                goto out;
            }
        }
        json_decref(hosts);
    }
out:
    if (rc != 0) {
        json_decref(pb);
        pb = NULL;
    }
    *out = pb;
    return rc;
}

/* ---- results ------------------------------------------------------------------ */

static double num(const json_t *v)
{
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* One check from a task's per-host entry of the executor's JSON report. */
static json_t *check_of(const json_t *entries, size_t idx, const char *where, const char *node,
                        const json_t *hentry)
{
    char nbuf[64];
    const json_t *e = json_array_get(entries, idx);
    const char *name = entry_name(e, idx, nbuf, sizeof(nbuf));
    const json_t *res = json_object_get(hentry, "result");
    const char *status = json_string_value(json_object_get(hentry, "status"));
    json_t *c = json_pack("{s:s, s:s, s:s}", "name", name, "node", node, "where", where);
    static const char *const copy[] = {"gpu_model",      "gpu_count",
                                       "driver_version", "precision",
                                       "batch_size",     "images_per_sec",
                                       "images_per_sec_per_gpu",
                                       "expected_images_per_sec",
                                       "lower_bound",    "tolerance",
                                       "step_ms",        "throughput_line",
                                       NULL};
    if (c == NULL)
        return NULL;
    for (size_t i = 0; copy[i]; i++)
        if (json_object_get(res, copy[i]))
            json_object_set(c, copy[i], json_object_get(res, copy[i]));
    if (!json_object_get(c, "precision") && json_object_get(e, "precision"))
        json_object_set(c, "precision", json_object_get(e, "precision"));
    if (!json_object_get(c, "batch_size") && json_object_get(e, "batch_size"))
        json_object_set(c, "batch_size", json_object_get(e, "batch_size"));
    int passed = json_is_true(json_object_get(res, "passed")) && status &&
                 strcmp(status, "failed") != 0 && strcmp(status, "unreachable") != 0;
    json_object_set_new(c, "passed", json_boolean(passed));
    const char *msg = json_string_value(json_object_get(res, "msg"));
    if (msg == NULL)
        msg = json_string_value(json_object_get(hentry, "msg"));
    if (msg == NULL && status && strcmp(status, "unreachable") == 0)
        msg = "the node is unreachable";
    if (msg)
        json_object_set_new(c, "message", json_string(msg));
    if (json_object_get(hentry, "seconds"))
        json_object_set(c, "seconds", json_object_get(hentry, "seconds"));
    return c;
}

/* The checks, in the playbook's order, from the executor's report. */
static json_t *collect(const json_t *entries, const json_t *run)
{
    json_t *checks = json_array();
    size_t p, t;
    const json_t *play, *task;
    json_array_foreach(json_object_get(run, "plays"), p, play)
    {
        json_array_foreach(json_object_get(play, "tasks"), t, task)
        {
            const char *tn = json_string_value(json_object_get(task, "name"));
            char where[16] = "", node[256] = "";
            size_t idx;
            int n = 0;
            if (tn == NULL || strncmp(tn, TASK_PREFIX, strlen(TASK_PREFIX)) != 0)
                continue;
            if (sscanf(tn + strlen(TASK_PREFIX), "%zu %15s %255s%n", &idx, where, node, &n) < 2)
                continue;
            const char *h;
            json_t *he;
            json_object_foreach(json_object_get(task, "hosts"), h, he)
            {
                int k8s = strcmp(where, "kubernetes") == 0;
                json_t *c = check_of(entries, idx, where, k8s ? node : h, he);
                if (c)
                    json_array_append_new(checks, c);
            }
        }
    }
    return checks;
}

/* bare vs kubernetes on the same node and entry. */
static json_t *compare(const json_t *checks)
{
    json_t *out = json_array();
    size_t i, j;
    const json_t *a, *b;
    json_array_foreach(checks, i, a)
    {
        if (strcmp(json_string_value(json_object_get(a, "where")), "bare") != 0)
            continue;
        json_array_foreach(checks, j, b)
        {
            if (strcmp(json_string_value(json_object_get(b, "where")), "kubernetes") != 0 ||
                strcmp(json_string_value(json_object_get(a, "node")),
                       json_string_value(json_object_get(b, "node"))) != 0 ||
                strcmp(json_string_value(json_object_get(a, "name")),
                       json_string_value(json_object_get(b, "name"))) != 0)
                continue;
            double bare = num(json_object_get(a, "images_per_sec"));
            double k8s = num(json_object_get(b, "images_per_sec"));
            if (isnan(bare) || isnan(k8s) || bare <= 0)
                continue;
            json_array_append_new(
                out, json_pack("{s:O, s:O, s:f, s:f, s:f}", "node", json_object_get(a, "node"),
                               "name", json_object_get(a, "name"), "bare", bare, "kubernetes",
                               k8s, "overhead_pct", (bare - k8s) / bare * 100.0));
        }
    }
    return out;
}

static void print_verdicts(FILE *fp, const json_t *checks, const json_t *cmp)
{
    size_t i;
    const json_t *c;
    fputs("\nVALIDATION *********************************************************************\n",
          fp);
    json_array_foreach(checks, i, c)
    {
        int ok = json_is_true(json_object_get(c, "passed"));
        double ips = num(json_object_get(c, "images_per_sec"));
        double low = num(json_object_get(c, "lower_bound"));
        const char *gpu = json_string_value(json_object_get(c, "gpu_model"));
        const json_t *n = json_object_get(c, "gpu_count");
        fprintf(fp, "%-16s %-10s %-14s %s", json_string_value(json_object_get(c, "node")),
                json_string_value(json_object_get(c, "where")),
                json_string_value(json_object_get(c, "name")), ok ? "PASS" : "FAIL");
        if (!isnan(ips))
            fprintf(fp, "  %.2f images/sec", ips);
        if (gpu)
            fprintf(fp, " (%lldx %s)", (long long)json_integer_value(n), gpu);
        if (!isnan(low))
            fprintf(fp, ", expected at least %.2f", low);
        if (!ok && json_string_value(json_object_get(c, "message")))
            fprintf(fp, ": %s", json_string_value(json_object_get(c, "message")));
        fputc('\n', fp);
    }
    json_array_foreach(cmp, i, c)
    {
        fprintf(fp, "%-16s Kubernetes over bare: %.2f vs %.2f images/sec, overhead %.2f%%\n",
                json_string_value(json_object_get(c, "node")),
                num(json_object_get(c, "kubernetes")), num(json_object_get(c, "bare")),
                num(json_object_get(c, "overhead_pct")));
    }
}

static void iso_now(char *buf, size_t len)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int aicp_site_validate_run(int *exit_status, struct aicp_site *s,
                           const struct aicp_site_run_opts *o, struct aicp_err *err)
{
    FILE *fp = o->out ? o->out : stdout;
    struct aicp_inventory *inv = NULL;
    struct aicp_srcmap *map = NULL;
    json_t *pb = NULL, *run = NULL, *checks = NULL, *cmp = NULL, *report = NULL;
    const char **srcs = NULL;
    size_t nsrc = 0;
    char dir[4096] = "", path[4200], started[32], finished[32];
    char run_id[64];
    char *local_src = NULL;
    int rc, use_local = 0;
    *exit_status = 1;
    iso_now(started, sizeof(started));
    aicp_run_id(run_id, sizeof(run_id));
    if (json_array_size(s->validation) == 0) {
        fprintf(fp, "aicp: %s has no validation entries: nothing to run\n", s->path);
        *exit_status = 0;
        return 0;
    }
    /* The hosts: -i, else the site's inventory. */
    size_t ninv = o->ninventories ? o->ninventories : json_array_size(s->inventory);
    srcs = calloc(ninv + 2, sizeof(*srcs));
    if (srcs == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    for (size_t i = 0; i < ninv; i++)
        srcs[nsrc++] = o->ninventories ? o->inventories[i]
                                       : json_string_value(json_array_get(s->inventory, i));
    if (nsrc > 0) {
        if ((rc = aicp_srcmap_new(&map)) != 0 || (rc = aicp_inventory_new(&inv, map)) != 0) {
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < nsrc; i++)
            if ((rc = aicp_inventory_load(inv, srcs[i], err)) != 0)
                goto out;
    }
    if ((rc = build_playbook(&pb, s, s->validation, inv, &use_local, err)) != 0)
        goto out;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/aicp-validate-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        rc = aicp_err_set(err, AICP_EIO, "cannot make a private directory: %s", strerror(errno));
        dir[0] = '\0';
        goto out;
    }
    char *text = json_dumps(pb, JSON_INDENT(2));
    snprintf(path, sizeof(path), "%s/validate.yml", dir);
    rc = text ? aicp_site_write_private(path, text, err)
              : aicp_err_set(err, AICP_ENOMEM, "out of memory");
    free(text);
    if (rc != 0)
        goto out;
    if (use_local) {
        char lpath[4200];
        snprintf(lpath, sizeof(lpath), "%s/local.ini", dir);
        if ((rc = aicp_site_write_private(lpath, "localhost ansible_connection=local\n", err)) != 0)
            goto out;
        if ((local_src = aicp_strdup(lpath)) == NULL) {
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
        srcs[nsrc++] = local_src;
    }
    char jpath[4200];
    snprintf(jpath, sizeof(jpath), "%s/run.json", dir);
    struct aicp_run_opts ro = {
        .inventories = srcs,
        .ninventories = nsrc,
        .verbose = o->verbose,
        .forks = o->forks > 0 ? o->forks : 20,
        .json_path = jpath,
        .vault = o->vault,
        .secrets = o->secrets,
        .accept_new_host_keys = o->accept_new_host_keys,
        .kubeconfig = o->kubeconfig ? o->kubeconfig : s->kubeconfig,
        .kube_context = o->context ? o->context : s->context,
    };
    int st = 1;
    fflush(fp);
    if ((rc = aicp_run_playbook(&st, path, &ro, err)) != 0)
        goto out;
    fflush(stdout);
    if ((rc = aicp_yaml_load_file(&run, jpath, NULL, err)) != 0)
        goto out;
    checks = collect(s->validation, run);
    cmp = compare(checks);
    print_verdicts(fp, checks, cmp);
    size_t npass = 0, i;
    const json_t *c;
    json_array_foreach(checks, i, c)
        npass += json_is_true(json_object_get(c, "passed"));
    iso_now(finished, sizeof(finished));
    fprintf(fp, "\n%s: %zu of %zu checks passed\n", s->name, npass, json_array_size(checks));
    if (o->report_dir != NULL) {
        report = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:O, s:n, s:O}", "kind", "validate",
                           "site", s->name, "run_id", run_id, "started", started, "finished",
                           finished, "aicp_version", PACKAGE_VERSION, "checks", checks, "drift",
                           "comparison", cmp);
        json_t *nodes = json_object();
        json_array_foreach(checks, i, c)
        {
            const char *n = json_string_value(json_object_get(c, "node"));
            if (n && strchr(n, '+') == NULL && json_object_get(c, "driver_version"))
                json_object_set_new(nodes, n,
                                    json_pack("{s:O, s:O?}", "nvidia_driver_version",
                                              json_object_get(c, "driver_version"), "gpu_model",
                                              json_object_get(c, "gpu_model")));
        }
        json_object_set_new(report, "nodes", nodes);
        if ((rc = aicp_report_write(o->report_dir, report, o->secrets, err)) != 0)
            goto out;
        fprintf(fp, "report: %s/report.html, report.json, junit.xml\n", o->report_dir);
    }
    *exit_status = json_array_size(checks) > 0 && npass == json_array_size(checks) ? 0 : 1;
    rc = 0;
out:
    if (dir[0]) {
        static const char *const files[] = {"validate.yml", "local.ini", "run.json"};
        for (size_t k = 0; k < 3; k++) {
            snprintf(path, sizeof(path), "%s/%s", dir, files[k]);
            unlink(path);
        }
        rmdir(dir);
    }
    free(local_src);
    free(srcs);
    json_decref(pb);
    json_decref(run);
    json_decref(checks);
    json_decref(cmp);
    json_decref(report);
    aicp_inventory_free(inv);
    aicp_srcmap_free(map);
    return rc;
}
