/* The validate module: proves a GPU node the way NetApp TR-4798 proves a
 * pod, by running a training benchmark on it and checking its throughput
 * against the site's expectation (6,530 images/sec for ResNet-50 on the 8
 * V100s of one DGX-1, as a Kubernetes Job or under plain `docker run`).
 *
 * It runs aicp-trainbench (or a container image such as NVIDIA's
 * TensorFlow one with tf_cnn_benchmarks) either on the node over SSH
 * (where: bare) or as a single-node Kubernetes Job pinned to the node, with
 * the dataset PVCs, a results PVC and a memory-backed /dev/shm (where:
 * kubernetes, from the jump host). TR-4798's two-node run is the
 * distributed form of the latter: a worker Deployment pinned to each of
 * worker_nodes (the same image and GPUs, on the host's network, idle for
 * mpirun to reach) and the master Job on node, whose command runs the
 * benchmark across all of them; the expectation is then the whole run's.
 * The measurement is a read-only probe: the module never reports a
 * change; its work happens in check(), and in check mode it only reads the
 * node's GPUs (and dry-runs the Job and any workers) and says the
 * benchmark was not run. The parsing, the expectation and the verdict
 * are agent/throughput.c's. */
#include "config.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "err.h"
#include "fileutil.h"
#include "kube.h"
#include "kubeutil.h"
#include "module.h"
#include "sysutil.h"
#include "throughput.h"
#include "util.h"
#include "validate_run.h"

/* Kubernetes: how often the benchmark's progress is read from its pod's
 * log while the Job runs, and how many of the log's last lines. */
#define KUBE_POLL_S 2.0
#define KUBE_TAIL_N 5

#define TAIL_LINES 20
#define TAIL_BYTES 2000

static const struct aicp_arg_spec validate_args[] = {
    AICP_KU_CONN_ARGS,
    {.name = "where",
     .type = AICP_ARG_STR,
     .def = "bare",
     .choices = "bare|kubernetes",
     .help = "bare: run on the node over SSH; kubernetes: run as a Job pinned to the node, from "
             "the jump host."},
    {.name = "benchmark",
     .type = AICP_ARG_STR,
     .def = "trainbench",
     .choices = "trainbench|container",
     .help = "trainbench: aicp-trainbench; container: an image's own benchmark (docker run when "
             "bare)."},
    {.name = "benchmark_path",
     .type = AICP_ARG_STR,
     .def = "aicp-trainbench",
     .help = "The aicp-trainbench program on the node (or in the image)."},
    {.name = "copy_benchmark",
     .type = AICP_ARG_PATH,
     .local = 1,
     .help = "A local aicp-trainbench to upload to a private temp dir on the node first (bare); "
             "'bundled' is the one installed next to aicp."},
    {.name = "device",
     .type = AICP_ARG_STR,
     .def = "cuda",
     .choices = "cuda|cpu",
     .help =
         "cuda: train on the node's GPUs (they must answer); cpu: the CPU path, no GPU needed."},
    {.name = "model",
     .type = AICP_ARG_STR,
     .def = "resnet50",
     .choices = "resnet50|resnet-tiny",
     .help = "aicp-trainbench --model."},
    {.name = "precision",
     .type = AICP_ARG_STR,
     .choices = "fp16|bf16|fp32",
     .help = "aicp-trainbench --precision (default: the benchmark's)."},
    {.name = "batch_size", .type = AICP_ARG_INT, .help = "aicp-trainbench --batch-size."},
    {.name = "steps", .type = AICP_ARG_INT, .help = "aicp-trainbench --steps (timed steps)."},
    {.name = "warmup", .type = AICP_ARG_INT, .help = "aicp-trainbench --warmup (untimed steps)."},
    {.name = "extra_args",
     .type = AICP_ARG_LIST,
     .help = "More aicp-trainbench options, e.g. [--threads, 16] or [--data, /mnt/dataset1]."},
    {.name = "gpus",
     .type = AICP_ARG_INT,
     .help = "GPUs per node the benchmark uses (default: all the node has)."},
    {.name = "image",
     .type = AICP_ARG_STR,
     .help = "Container image: required for benchmark container, and for trainbench in "
             "Kubernetes (it must contain aicp-trainbench)."},
    {.name = "command",
     .type = AICP_ARG_LIST,
     .help = "benchmark container: the command to run in the image (default: its entrypoint)."},
    {.name = "docker_args",
     .type = AICP_ARG_LIST,
     .help = "benchmark container, bare: more docker run options, e.g. [--shm-size=1g]."},
    {.name = "env", .type = AICP_ARG_DICT, .help = "Environment of the benchmark, NAME: value."},
    {.name = "throughput_regex",
     .type = AICP_ARG_STR,
     .help = "POSIX extended regex whose first group is the images/sec figure (default: "
             "'total images/sec' followed by = or :, any case)."},
    {.name = "expected_images_per_sec",
     .type = AICP_ARG_FLOAT,
     .help = "The images/sec the node must reach."},
    {.name = "expected_per_gpu",
     .type = AICP_ARG_DICT,
     .help = "images/sec per GPU by nvidia-smi model name; the expectation is the sum over the "
             "GPUs used."},
    {.name = "tolerance",
     .type = AICP_ARG_FLOAT,
     .def = "0.05",
     .help = "Pass when measured >= expected * (1 - tolerance)."},
    {.name = "timeout",
     .type = AICP_ARG_INT,
     .def = "3600",
     .help = "Seconds the benchmark may run."},
    {.name = "namespace",
     .type = AICP_ARG_STR,
     .help = "kubernetes: the Job's namespace (default: the context's, else default)."},
    {.name = "node",
     .type = AICP_ARG_STR,
     .help = "kubernetes: the node to run on (nodeSelector kubernetes.io/hostname)."},
    {.name = "job_name",
     .type = AICP_ARG_STR,
     .help = "kubernetes: the Job's name (default: aicp-validate-NODE)."},
    {.name = "dataset_pvcs",
     .type = AICP_ARG_LIST,
     .help = "kubernetes: PVCs mounted read-only at /mnt/dataset1, /mnt/dataset2, ..."},
    {.name = "results_pvc",
     .type = AICP_ARG_STR,
     .help = "kubernetes: PVC mounted at /mnt/results."},
    {.name = "shm_size",
     .type = AICP_ARG_STR,
     .def = "16Gi",
     .help = "kubernetes: size of /dev/shm (an emptyDir in memory)."},
    {.name = "keep_job",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "kubernetes: keep the Job and its pod (and the worker Deployments) after the run "
             "(default: deleted)."},
    {.name = "worker_nodes",
     .type = AICP_ARG_LIST,
     .help = "kubernetes, benchmark container: more nodes for a distributed run, each given a "
             "worker Deployment; the Job on node is the master."},
    {.name = "worker_command",
     .type = AICP_ARG_LIST,
     .help = "kubernetes: what the workers run while the master's command uses them (default: "
             "[sleep, infinity])."},
    {.name = "host_network",
     .type = AICP_ARG_BOOL,
     .help = "kubernetes: run the pods on the nodes' network (default: yes with worker_nodes, "
             "else no)."},
    {.name = NULL},
};

/* What one call works with. */
struct vrun {
    struct aicp_ctx *ctx;
    const struct aicp_args *args;
    int kube, container, cuda, check_mode;
    long long gpus_arg; /* -1: all the node has */
    long long timeout;
    double tolerance;
    const char *regex;
    /* the node, once read */
    char *node;   /* the node's name for messages */
    json_t *gpus; /* [{name, driver_version, memory_mib}] */
    size_t used;  /* GPUs the benchmark uses; 0 on the CPU path */
    char *driver;
    double expected; /* -1: none */
    char what[256];  /* "8x Tesla V100-SXM2-32GB" */
    /* kubernetes, distributed */
    const json_t *workers; /* worker_nodes (borrowed); NULL: the single-node form */
    size_t nnodes;         /* node and the workers */
    json_t *pod_gpus;      /* GPUs each pod asks for: [master, worker 1, ...] */
    int host_network;
};

static void result_set(struct vrun *r, const char *key, json_t *value)
{
    aicp_sys_result(r->ctx, key, value);
}

static void vrun_clear(struct vrun *r)
{
    free(r->node);
    free(r->driver);
    json_decref(r->gpus);
    json_decref(r->pod_gpus);
}

/* The last TAIL_LINES lines of text (at most TAIL_BYTES), borrowed. */
static const char *tail_of(const char *text)
{
    if (text == NULL || *text == '\0')
        return "";
    const char *end = text + strlen(text), *p = end;
    int lines = 0;
    while (p > text && (p[-1] == '\n' || p[-1] == '\r'))
        p--;
    end = p;
    while (p > text && end - p < TAIL_BYTES) {
        if (p[-1] == '\n' && ++lines >= TAIL_LINES)
            break;
        p--;
    }
    return p;
}

static int env_name_ok(const char *s)
{
    if (!(isalpha((unsigned char)*s) || *s == '_'))
        return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return 0;
    return 1;
}

/* A scalar as the string a command line or the API takes. */
static int scalar_text(char *buf, size_t cap, const json_t *v)
{
    if (json_is_string(v))
        snprintf(buf, cap, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, cap, "%.15g", json_real_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, cap, "%s", json_is_true(v) ? "true" : "false");
    else
        return -1;
    return 0;
}

/* worker_nodes: distinct node names, none of them the master's. Only a
 * container's command (mpirun, horovodrun) can use them: aicp-trainbench
 * runs on one node. */
static int check_workers(const struct vrun *r, struct aicp_err *err)
{
    const char *master = aicp_args_str(r->args, "node");
    size_t i, j;
    json_t *e;

    if (!r->kube)
        return aicp_err_set(err, AICP_EINVAL,
                            "worker_nodes is for where: kubernetes (a distributed run as a "
                            "Job and worker Deployments)");
    if (!r->container)
        return aicp_err_set(err, AICP_EINVAL,
                            "worker_nodes needs benchmark: container, whose command (mpirun, "
                            "horovodrun) runs across the nodes; aicp-trainbench runs on one");
    if (master == NULL)
        return aicp_err_set(err, AICP_EINVAL,
                            "worker_nodes needs node: the node of the master Job");
    json_array_foreach(r->workers, i, e)
    {
        const char *w = json_string_value(e);
        if (w == NULL || *w == '\0')
            return aicp_err_set(err, AICP_EINVAL, "worker_nodes[%zu] must be a node name", i);
        if (strcmp(w, master) == 0)
            return aicp_err_set(err, AICP_EINVAL,
                                "worker_nodes: %s is node, the master's (a node is the "
                                "master or a worker, not both)",
                                w);
        for (j = 0; j < i; j++)
            if (strcmp(w, json_string_value(json_array_get(r->workers, j))) == 0)
                return aicp_err_set(err, AICP_EINVAL, "worker_nodes: %s is listed twice", w);
    }
    return 0;
}

/* Argument checks that need no node: they fail in check mode too. */
static int check_args(struct vrun *r, struct aicp_err *err)
{
    const struct aicp_args *a = r->args;
    const json_t *v;
    const char *k;
    json_t *e;
    size_t i;
    int rc;

    r->kube = strcmp(aicp_args_str(a, "where"), "kubernetes") == 0;
    r->container = strcmp(aicp_args_str(a, "benchmark"), "container") == 0;
    r->cuda = strcmp(aicp_args_str(a, "device"), "cuda") == 0;
    r->gpus_arg = aicp_args_get(a, "gpus") ? aicp_args_int(a, "gpus", 0) : -1;
    r->timeout = aicp_args_int(a, "timeout", 3600);
    r->regex = aicp_args_str(a, "throughput_regex");
    v = aicp_args_get(a, "tolerance");
    r->tolerance = v ? json_number_value(v) : 0.05;
    r->expected = -1;
    r->workers = json_array_size(aicp_args_get(a, "worker_nodes")) > 0
                     ? aicp_args_get(a, "worker_nodes")
                     : NULL;
    r->nnodes = 1 + json_array_size(r->workers);
    r->host_network = aicp_args_get(a, "host_network") != NULL
                          ? aicp_args_bool(a, "host_network", 0)
                          : r->workers != NULL;
    if (r->gpus_arg == 0 || r->gpus_arg < -1)
        return aicp_err_set(err, AICP_EINVAL, "gpus must be at least 1 (it is %lld)", r->gpus_arg);
    if (r->timeout <= 0)
        return aicp_err_set(err, AICP_EINVAL, "timeout must be a number of seconds > 0");
    if (!isfinite(r->tolerance) || r->tolerance < 0 || r->tolerance >= 1)
        return aicp_err_set(err, AICP_EINVAL,
                            "tolerance %g is not a fraction in [0, 1) (0.05 means 5%%)",
                            r->tolerance);
    if (aicp_args_get(a, "expected_images_per_sec") && aicp_args_get(a, "expected_per_gpu"))
        return aicp_err_set(err, AICP_EINVAL,
                            "expected_images_per_sec and expected_per_gpu are "
                            "mutually exclusive");
    if (r->container && aicp_args_str(a, "image") == NULL)
        return aicp_err_set(err, AICP_EINVAL, "benchmark: container needs image");
    if (r->kube && aicp_args_str(a, "image") == NULL)
        return aicp_err_set(err, AICP_EINVAL,
                            "where: kubernetes needs image (for trainbench, an "
                            "image that contains %s)",
                            aicp_args_str(a, "benchmark_path"));
    if (r->kube && aicp_args_str(a, "copy_benchmark"))
        return aicp_err_set(err, AICP_EINVAL,
                            "copy_benchmark is for where: bare (in Kubernetes "
                            "the image holds the benchmark)");
    if (r->container && aicp_args_str(a, "copy_benchmark"))
        return aicp_err_set(err, AICP_EINVAL, "copy_benchmark is for benchmark: trainbench");
    if ((v = aicp_args_get(a, "env")) != NULL) {
        char buf[8];
        json_object_foreach((json_t *)v, k, e)
        {
            if (!env_name_ok(k))
                return aicp_err_set(err, AICP_EINVAL, "env: '%s' is not a variable name", k);
            if (scalar_text(buf, sizeof(buf), e) != 0)
                return aicp_err_set(err, AICP_EINVAL, "env: %s must be a string or number", k);
        }
    }
    static const char *const lists[] = {"extra_args",   "command",        "docker_args",
                                        "dataset_pvcs", "worker_command", NULL};
    for (const char *const *l = lists; *l; l++) {
        json_array_foreach(
            aicp_args_get(a, *l), i,
            e) if (!json_is_string(e) &&
                   !json_is_number(e)) return aicp_err_set(err, AICP_EINVAL,
                                                           "%s[%zu] must be a string", *l, i);
    }
    if (r->workers != NULL && (rc = check_workers(r, err)) != 0)
        return rc;
    /* A regex that does not compile fails now, not after an hour's run. */
    struct aicp_tp_parse p;
    rc = aicp_tp_parse(&p, "", r->regex, err);
    aicp_tp_parse_clear(&p);
    if (rc == AICP_ENOTFOUND)
        rc = 0;
    return rc;
}

/* The expectation for the GPUs found, and the result keys about the node. */
static int node_facts(struct vrun *r, struct aicp_err *err)
{
    size_t n = json_array_size(r->gpus);
    int rc;

    if (r->cuda) {
        if (n == 0)
            return aicp_err_set(err, AICP_EFAILED,
                                "%s has no GPU: device cuda needs one (use "
                                "device: cpu for the CPU path)",
                                r->node);
        /* pinned pods: r->gpus holds just the GPUs used, on every node */
        if (r->pod_gpus == NULL && r->gpus_arg > (long long)n)
            return aicp_err_set(err, AICP_EFAILED,
                                "%s has %zu GPUs, fewer than the %lld asked "
                                "for (gpus: %lld)",
                                r->node, n, r->gpus_arg, r->gpus_arg);
        r->used = r->pod_gpus == NULL && r->gpus_arg > 0 ? (size_t)r->gpus_arg : n;
    } else {
        r->used = 0;
    }
    aicp_tp_gpu_label(r->what, sizeof(r->what), r->gpus, r->used);
    if (r->nnodes > 1) {
        size_t l = strlen(r->what);
        snprintf(r->what + l, sizeof(r->what) - l, " on %zu nodes", r->nnodes);
    }
    const char *model = "cpu";
    if (r->used > 0)
        model = json_string_value(json_object_get(json_array_get(r->gpus, 0), "name"));
    result_set(r, "where", json_string(r->kube ? "kubernetes" : "bare"));
    result_set(r, "node", json_string(r->node));
    result_set(r, "gpu_model", json_string(model ? model : "?"));
    result_set(r, "gpu_count", json_integer((json_int_t)(r->cuda ? r->used : 0)));
    result_set(r, "driver_version", r->driver ? json_string(r->driver) : json_null());
    result_set(r, "tolerance", json_real(r->tolerance));
    if ((rc = aicp_tp_expected(&r->expected, aicp_args_get(r->args, "expected_images_per_sec"),
                               aicp_args_get(r->args, "expected_per_gpu"), r->gpus, r->used,
                               err)) != 0) {
        aicp_err_prefix(err, "%s (%s)", r->node, r->what);
        return rc;
    }
    /* The CPU path's table entry is per node, as a GPU's is per GPU. */
    if (r->used == 0 && r->expected > 0 && aicp_args_get(r->args, "expected_per_gpu") != NULL)
        r->expected *= (double)r->nnodes;
    result_set(r, "expected_images_per_sec",
               r->expected >= 0 ? json_real(r->expected) : json_null());
    result_set(r, "lower_bound",
               r->expected >= 0 ? json_real(r->expected * (1 - r->tolerance)) : json_null());
    return 0;
}

/* Parses the benchmark's output, sets the result and judges it. */
static int judge(struct vrun *r, const char *text, const char *where, struct aicp_err *err)
{
    struct aicp_tp_parse p;
    struct aicp_tp_verdict v;
    int rc;

    rc = aicp_tp_parse(&p, text, r->regex, err);
    if (p.progress != NULL)
        result_set(r, "progress", json_incref(p.progress));
    if (rc != 0) {
        const char *t = tail_of(text);
        if (*where)
            aicp_err_prefix(err, "%s (%s): %s", r->node, r->what, where);
        else
            aicp_err_prefix(err, "%s (%s)", r->node, r->what);
        if (*t) {
            struct aicp_buf b = AICP_BUF_INIT;
            if (aicp_buf_printf(&b, "%s; end of the output:\n%s", err->msg, t) == 0)
                snprintf(err->msg, sizeof(err->msg), "%s", b.data);
            aicp_buf_free(&b);
        }
        goto out;
    }
    size_t per = r->used > 0 ? r->used : 1;
    result_set(r, "images_per_sec", json_real(p.images_per_sec));
    result_set(r, "images_per_sec_per_gpu", json_real(p.images_per_sec / (double)per));
    result_set(r, "throughput_line", json_string(p.line));
    if (p.report != NULL) {
        const json_t *sm = json_object_get(p.report, "step_ms");
        if (sm != NULL)
            result_set(r, "step_ms", json_deep_copy(sm));
        result_set(r, "report", json_incref(p.report));
    }
    if ((rc = aicp_tp_judge(&v, r->node, r->what, p.images_per_sec, r->expected, r->tolerance,
                            err)) != 0)
        goto out;
    result_set(r, "passed", json_boolean(v.passed));
    result_set(r, "msg", json_string(v.msg));
    if (!v.passed)
        rc = aicp_err_set(err, AICP_EFAILED, "%s", v.msg);
out:
    aicp_tp_parse_clear(&p);
    return rc;
}

/* ---- bare: over the node's connection ------------------------------------- */

/* nvidia-smi's CSV goes last, so nothing in it can pass for a tag. The
 * script is the same in check mode and out of it, so that a batched read
 * (the executor's read-ahead) answers both. */
static const char probe_cuda[] =
    "LC_ALL=C; export LC_ALL\n"
    "if command -v nvidia-smi >/dev/null 2>&1; then\n"
    "  o=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1);"
    " r=$?\n"
    "else o='nvidia-smi: command not found'; r=127; fi\n"
    "echo '" AICP_SYS_TAG "smi='\"$r\"\n"
    "printf '%s\\n' \"$o\"\n";

static const char probe_cpu[] =
    "LC_ALL=C; export LC_ALL\n"
    "echo '" AICP_SYS_TAG "cpus='\"$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 0)\"\n"
    "echo '" AICP_SYS_TAG "cpu='\"$(sed -n 's/^model name[^:]*: *//p' /proc/cpuinfo 2>/dev/null"
    " | head -n 1)\"\n";

static int bare_probe(struct vrun *r, struct aicp_err *err)
{
    struct aicp_exec_result res;
    int rc;

    if ((rc = aicp_sys_exec(r->ctx, r->cuda ? probe_cuda : probe_cpu, &res, err)) != 0)
        goto out;
    if (!r->cuda) {
        size_t len = 0;
        const char *cpu = aicp_sys_field(res.out, "cpu", &len);
        aicp_sys_rtrim(cpu ? cpu : "", &len);
        result_set(r, "cpu_model", len ? json_stringn(cpu, len) : json_null());
        result_set(r, "cpu_count", json_integer(aicp_sys_field_int(res.out, "cpus", 0)));
        r->gpus = json_array();
        goto out;
    }
    size_t olen = 0;
    const char *o = aicp_sys_section(res.out, "smi", 1, &olen);
    long long smi = aicp_sys_field_int(res.out, "smi", -1);
    char *text = o ? aicp_strndup(o, olen) : aicp_strdup("");
    if (text == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    size_t tl = strlen(text);
    aicp_sys_rtrim(text, &tl);
    text[tl] = '\0';
    if (res.rc != 0 || smi < 0)
        rc = aicp_sys_fail(err, &res, "cannot query the GPUs of %s", r->node);
    else if (smi == 127)
        rc = aicp_err_set(err, AICP_EFAILED,
                          "%s has no nvidia-smi: device cuda needs the NVIDIA "
                          "driver (or use device: cpu)",
                          r->node);
    else if (smi == 6)
        /* "No devices were found": a driver, but no GPU */
        r->gpus = json_array();
    else if (smi != 0)
        rc = aicp_err_set(err, AICP_EFAILED, "nvidia-smi on %s failed (exit %lld): %s", r->node,
                          smi, *text ? text : "no message");
    else
        r->gpus = aicp_tp_gpus_parse(text);
    free(text);
    if (rc == 0 && r->gpus == NULL)
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
    if (rc == 0 && json_array_size(r->gpus) > 0) {
        const char *d =
            json_string_value(json_object_get(json_array_get(r->gpus, 0), "driver_version"));
        r->driver = d ? aicp_strdup(d) : NULL;
    }
out:
    aicp_exec_result_clear(&res);
    return rc;
}

/* The uploaded benchmark: `bundled` is the aicp-trainbench installed with
 * this aicp (same directory, as `make install` and the build tree have
 * them). */
static int local_benchmark(char **out, struct vrun *r, const char *given, struct aicp_err *err)
{
    if (strcmp(given, "bundled") == 0) {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0)
            return aicp_err_set(err, AICP_EIO,
                                "copy_benchmark: bundled: cannot tell where aicp "
                                "is installed (/proc/self/exe)");
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash != NULL)
            *slash = '\0';
        struct aicp_buf b = AICP_BUF_INIT;
        if (aicp_buf_printf(&b, "%s/aicp-trainbench", self) != 0)
            return aicp_err_set(err, AICP_ENOMEM, "out of memory");
        if (access(b.data, R_OK) != 0) {
            int rc = aicp_err_set(err, AICP_ENOTFOUND,
                                  "copy_benchmark: bundled: no "
                                  "aicp-trainbench next to aicp (%s)",
                                  b.data);
            aicp_buf_free(&b);
            return rc;
        }
        *out = aicp_buf_steal(&b);
        return 0;
    }
    return aicp_fu_local_path(out, r->ctx->search_dir, "files", given, err);
}

static int add_word(struct aicp_buf *b, const char *w)
{
    return aicp_sys_word(b, w);
}

static int add_json_word(struct aicp_buf *b, const json_t *v)
{
    char buf[512];
    if (scalar_text(buf, sizeof(buf), v) != 0)
        return 0;
    return aicp_sys_word(b, buf);
}

/* The trainbench options, as words of one command (shell-quoted into b,
 * or appended to the JSON array argv). */
static int trainbench_words(struct aicp_buf *b, json_t *argv, const struct vrun *r,
                            const char *program)
{
    const struct aicp_args *a = r->args;
    static const struct {
        const char *arg, *flag;
    } ints[] = {{"batch_size", "--batch-size"}, {"steps", "--steps"}, {"warmup", "--warmup"}};
    char num[32];
    int rc = 0;

#define WORD(w)                                                                                    \
    do {                                                                                           \
        if (b)                                                                                     \
            rc |= add_word(b, (w));                                                                \
        if (argv)                                                                                  \
            rc |= json_array_append_new(argv, json_string(w));                                     \
    } while (0)
    WORD(program);
    WORD("--device");
    WORD(aicp_args_str(a, "device"));
    WORD("--model");
    WORD(aicp_args_str(a, "model"));
    if (aicp_args_str(a, "precision")) {
        WORD("--precision");
        WORD(aicp_args_str(a, "precision"));
    }
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        if (aicp_args_get(a, ints[i].arg) == NULL)
            continue;
        snprintf(num, sizeof(num), "%lld", aicp_args_int(a, ints[i].arg, 0));
        WORD(ints[i].flag);
        WORD(num);
    }
    size_t i;
    json_t *e;
    json_array_foreach(aicp_args_get(a, "extra_args"), i, e)
    {
        char buf[512];
        if (scalar_text(buf, sizeof(buf), e) == 0)
            WORD(buf);
    }
#undef WORD
    return rc ? AICP_ENOMEM : 0;
}

/* The script that runs the benchmark on the node; the benchmark's own
 * output is its stdout and stderr. Exit status 124: timed out. */
static int bare_script(struct aicp_buf *s, const struct vrun *r, const char *program)
{
    const struct aicp_args *a = r->args;
    const json_t *env = aicp_args_get(a, "env");
    const char *k;
    json_t *v;
    size_t i;
    json_t *e;
    int rc = 0;

    rc |= aicp_buf_puts(s, "LC_ALL=C; export LC_ALL\n");
    json_object_foreach((json_t *)env, k, v)
    {
        char buf[4096];
        scalar_text(buf, sizeof(buf), v);
        rc |= aicp_buf_printf(s, "%s=", k);
        rc |= aicp_buf_shquote(s, buf);
        rc |= aicp_buf_printf(s, "; export %s\n", k);
    }
    if (r->cuda && r->used < json_array_size(r->gpus)) {
        /* the first `gpus` GPUs, as the benchmark sees them */
        rc |= aicp_buf_puts(s, "CUDA_VISIBLE_DEVICES=");
        for (size_t g = 0; g < r->used; g++)
            rc |= aicp_buf_printf(s, "%s%zu", g ? "," : "", g);
        rc |= aicp_buf_puts(s, "; export CUDA_VISIBLE_DEVICES\n");
    }
    rc |= aicp_buf_puts(s, "n=aicp-validate-$$\nset -- ");
    if (r->container) {
        rc |= aicp_buf_puts(s, "docker run --rm --name \"$n\" ");
        if (r->cuda && r->used < json_array_size(r->gpus)) {
            struct aicp_buf dev = AICP_BUF_INIT;
            aicp_buf_puts(&dev, "\"device=");
            for (size_t g = 0; g < r->used; g++)
                aicp_buf_printf(&dev, "%s%zu", g ? "," : "", g);
            aicp_buf_puts(&dev, "\"");
            rc |= add_word(s, "--gpus");
            rc |= dev.data ? add_word(s, dev.data) : AICP_ENOMEM;
            aicp_buf_free(&dev);
        } else if (r->cuda) {
            rc |= aicp_buf_puts(s, "--gpus all ");
        }
        json_object_foreach((json_t *)env, k, v) rc |=
            aicp_buf_printf(s, "-e %s ", k); /* the value comes from the environment */
        json_array_foreach(aicp_args_get(a, "docker_args"), i, e) rc |= add_json_word(s, e);
        rc |= add_word(s, aicp_args_str(a, "image"));
        json_array_foreach(aicp_args_get(a, "command"), i, e) rc |= add_json_word(s, e);
    } else {
        rc |= trainbench_words(s, NULL, r, program);
    }
    rc |= aicp_buf_puts(s, "\n");
    /* coreutils timeout ends it (TERM, then KILL 10 s later); a container
     * is removed by name, as killing `docker run` leaves it running. */
    rc |= aicp_buf_printf(s,
                          "if [ \"$1\" != docker ] && ! command -v \"$1\" >/dev/null 2>&1; then\n"
                          "  echo \"$1: not found\" >&2; r=127\n"
                          "elif command -v timeout >/dev/null 2>&1; then\n"
                          "  timeout -k 10 %lld \"$@\" </dev/null; r=$?\n"
                          "else \"$@\" </dev/null; r=$?; fi\n",
                          r->timeout);
    if (r->container)
        rc |= aicp_buf_puts(s, "[ \"$r\" = 124 ] && docker rm -f \"$n\" >/dev/null 2>&1\n");
    rc |= aicp_buf_puts(s, "exit \"$r\"\n");
    return rc ? AICP_ENOMEM : 0;
}

static int bare_run(struct vrun *r, struct aicp_err *err)
{
    struct aicp_ctx *ctx = r->ctx;
    const struct aicp_args *a = r->args;
    struct aicp_exec_result res;
    struct aicp_buf script = AICP_BUF_INIT, text = AICP_BUF_INIT;
    char *local = NULL, *data = NULL, *tmpdir = NULL, *remote = NULL;
    const char *copy = aicp_args_str(a, "copy_benchmark");
    const char *program = aicp_args_str(a, "benchmark_path");
    size_t len = 0;
    int rc;

    memset(&res, 0, sizeof(res));
    if ((rc = bare_probe(r, err)) != 0 || (rc = node_facts(r, err)) != 0)
        goto out;
    if (copy != NULL && (rc = local_benchmark(&local, r, copy, err)) != 0)
        goto out;
    if (r->check_mode) {
        result_set(r, "msg", json_string("benchmark not run in check mode"));
        goto out;
    }
    if (local != NULL && (rc = aicp_read_file(&data, &len, local, err)) != 0)
        goto out;
    /* The private temp dir holds the upload and the detached run's script
     * and output (validate_run.c). */
    rc = aicp_sys_exec(ctx,
                       "umask 077; mktemp -d \"${AICP_TMP:-${TMPDIR:-/tmp}}/validate."
                       "XXXXXXXX\"\n",
                       &res, err);
    if (rc != 0)
        goto out;
    size_t tl = res.out_len;
    aicp_sys_rtrim(res.out, &tl);
    if (res.rc != 0 || tl == 0) {
        rc = aicp_sys_fail(err, &res, "cannot make a temp directory on %s", r->node);
        goto out;
    }
    tmpdir = aicp_strndup(res.out, tl);
    aicp_exec_result_clear(&res);
    if (tmpdir == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (local != NULL) {
        struct aicp_buf p = AICP_BUF_INIT;
        if (aicp_buf_printf(&p, "%s/aicp-trainbench", tmpdir) != 0) {
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
        remote = aicp_buf_steal(&p);
        if ((rc = aicp_conn_put(ctx->conn, remote, data, len, 0755, NULL, NULL, ctx->become,
                                err)) != 0) {
            aicp_err_prefix(err, "copy_benchmark %s to %s", local, r->node);
            goto out;
        }
        program = remote;
        result_set(r, "benchmark_copied_to", json_string(remote));
    }
    if ((rc = bare_script(&script, r, program)) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = aicp_validate_run(ctx, r->node, tmpdir, script.data, r->timeout, &res, err)) != 0)
        goto out;
    aicp_buf_printf(&text, "%s%s%s", res.out ? res.out : "",
                    res.out_len && res.out[res.out_len - 1] != '\n' ? "\n" : "",
                    res.err ? res.err : "");
    result_set(r, "rc", json_integer(res.rc));
    const char *what =
        r->container ? aicp_args_str(a, "image") : aicp_args_str(a, "benchmark_path");
    if (res.rc == 124) {
        rc = aicp_err_set(err, AICP_ETIMEOUT,
                          "%s (%s): %s did not finish within %lld s "
                          "(timeout)",
                          r->node, r->what, what, r->timeout);
        goto out;
    }
    if (res.rc == 127 && !r->container) {
        rc = aicp_err_set(err, AICP_EFAILED,
                          "%s: %s is not on the PATH (install it, or give "
                          "copy_benchmark)",
                          r->node, what);
        goto out;
    }
    if (res.rc != 0) {
        const char *t = tail_of(text.data);
        rc = aicp_err_set(err, AICP_EFAILED, "%s (%s): %s exited with status %d%s%s", r->node,
                          r->what, what, res.rc, *t ? ":\n" : "", t);
        goto out;
    }
    rc = judge(r, text.data ? text.data : "", "", err);
out:
    if (tmpdir != NULL) {
        /* the upload and the run's files: take them away again */
        struct aicp_exec_result cr;
        struct aicp_err cerr = {0};
        struct aicp_buf c = AICP_BUF_INIT;
        if (aicp_buf_puts(&c, "rm -rf ") == 0 && aicp_buf_shquote(&c, tmpdir) == 0 &&
            aicp_sys_exec(ctx, c.data, &cr, &cerr) == 0)
            aicp_exec_result_clear(&cr);
        aicp_buf_free(&c);
    }
    aicp_exec_result_clear(&res);
    aicp_buf_free(&script);
    aicp_buf_free(&text);
    free(local);
    free(data);
    free(tmpdir);
    free(remote);
    return rc;
}

/* ---- kubernetes: a Job pinned to the node ---------------------------------- */

/* A DNS-1123 label from s: lower case, [a-z0-9-], at most 63 characters,
 * alphanumeric at both ends. */
static void dns_label(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    if (cap > 64)
        cap = 64;
    for (; *s && n + 1 < cap; s++) {
        char c = (char)tolower((unsigned char)*s);
        out[n++] = (isalnum((unsigned char)c)) ? c : '-';
    }
    while (n > 0 && out[n - 1] == '-')
        n--;
    out[n] = '\0';
}

/* The node's GPUs as the device plugin and GPU feature discovery publish
 * them: allocatable nvidia.com/gpu, label nvidia.com/gpu.product. A new
 * array (NULL: out of memory); *driver is the driver version label,
 * borrowed from node, or NULL. */
static json_t *kube_node_gpus(const json_t *node, const char **driver)
{
    const json_t *alloc = aicp_kube_field(node, "status.allocatable[nvidia.com/gpu]");
    const char *product =
        json_string_value(aicp_kube_field(node, "metadata.labels[nvidia.com/gpu.product]"));
    const char *drv = json_string_value(
        aicp_kube_field(node, "metadata.labels[nvidia.com/cuda.driver-version.full]"));
    json_t *gpus = json_array();
    long long n = 0;

    if (json_is_string(alloc))
        n = strtoll(json_string_value(alloc), NULL, 10);
    else if (json_is_integer(alloc))
        n = json_integer_value(alloc);
    for (long long i = 0; gpus != NULL && i < n && i < 1024; i++)
        json_array_append_new(gpus,
                              json_pack("{s:s, s:o}", "name", product ? product : "?",
                                        "driver_version", drv ? json_string(drv) : json_null()));
    *driver = drv;
    return gpus;
}

/* r->gpus and r->driver from the one node of the single-node form. */
static void kube_set_gpus(struct vrun *r, const json_t *node)
{
    const char *drv = NULL;
    json_decref(r->gpus);
    r->gpus = kube_node_gpus(node, &drv);
    free(r->driver);
    r->driver = drv ? aicp_strdup(drv) : NULL;
}

/* The node the Job is pinned to and each worker's: they exist and have
 * the GPUs asked for. r->gpus gets the GPUs the run uses on all of them
 * (so expected_per_gpu sums over every node), r->pod_gpus what each pod
 * asks for, r->node "dgx1+dgx2" for the messages. */
static int kube_nodes_read(struct vrun *r, struct aicp_kube *k, const char *master,
                           struct aicp_err *err)
{
    struct aicp_buf names = AICP_BUF_INIT;
    json_t *node = NULL, *g = NULL;
    int rc = 0;

    if ((r->pod_gpus = json_array()) == NULL)
        goto nomem;
    for (size_t i = 0; i < r->nnodes; i++) {
        const char *n = i == 0 ? master : json_string_value(json_array_get(r->workers, i - 1));
        struct aicp_kube_ref nref = {.api_version = "v1", .kind = "Node", .name = n};
        const char *drv = NULL;
        size_t have, use = 0;

        json_decref(node);
        json_decref(g);
        node = g = NULL;
        if ((rc = aicp_kube_get(k, &nref, &node, err)) != 0)
            goto out;
        if (node == NULL) {
            rc = aicp_err_set(err, AICP_ENOTFOUND, "node %s does not exist in the cluster", n);
            goto out;
        }
        if ((g = kube_node_gpus(node, &drv)) == NULL)
            goto nomem;
        have = json_array_size(g);
        if (r->cuda && have == 0) {
            rc = aicp_err_set(err, AICP_EFAILED,
                              "node %s has no allocatable nvidia.com/gpu: device cuda needs "
                              "GPUs (is the NVIDIA device plugin running?)",
                              n);
            goto out;
        }
        if (r->cuda && r->gpus_arg > (long long)have) {
            rc = aicp_err_set(err, AICP_EFAILED,
                              "node %s has %zu GPUs, fewer than the %lld asked for (gpus: %lld)", n,
                              have, r->gpus_arg, r->gpus_arg);
            goto out;
        }
        if (r->cuda)
            use = r->gpus_arg > 0 ? (size_t)r->gpus_arg : have;
        for (size_t j = 0; j < use; j++)
            if (json_array_append(r->gpus, json_array_get(g, j)) != 0)
                goto nomem;
        if (json_array_append_new(r->pod_gpus, json_integer((json_int_t)use)) != 0 ||
            aicp_buf_printf(&names, "%s%s", i ? "+" : "", n) != 0)
            goto nomem;
        if (i == 0 && drv != NULL && (r->driver = aicp_strdup(drv)) == NULL)
            goto nomem;
    }
    free(r->node);
    r->node = aicp_buf_steal(&names);
    goto out;
nomem:
    rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
out:
    aicp_buf_free(&names);
    json_decref(node);
    json_decref(g);
    return rc;
}

/* The pod the Job and the workers run: the image with cmd (empty: its
 * entrypoint), env, `gpus` GPUs, the seed's mounts, pinned to node (NULL:
 * anywhere), on the node's network with host_network (mpirun and NCCL
 * then reach the other nodes by their names and RDMA devices; the DNS
 * policy keeps the cluster's names resolvable). A new object, or NULL
 * when out of memory. */
static json_t *pod_spec(const struct vrun *r, const char *node, const char *cname, json_t *cmd,
                        size_t gpus, const char *restart)
{
    const struct aicp_args *a = r->args;
    char buf[512];
    json_t *c, *vols = json_array(), *mounts = json_array(), *pod = NULL;
    const char *k;
    json_t *v, *e;
    size_t i;

    c = json_pack("{s:s, s:s}", "name", cname, "image", aicp_args_str(a, "image"));
    if (c == NULL || vols == NULL || mounts == NULL)
        goto out;
    if (json_array_size(cmd) > 0)
        json_object_set(c, "command", cmd);
    if (json_object_size(aicp_args_get(a, "env")) > 0) {
        json_t *env = json_array();
        json_object_foreach((json_t *)aicp_args_get(a, "env"), k, v)
        {
            scalar_text(buf, sizeof(buf), v);
            json_array_append_new(env, json_pack("{s:s, s:s}", "name", k, "value", buf));
        }
        json_object_set_new(c, "env", env);
    }
    if (r->cuda) {
        snprintf(buf, sizeof(buf), "%zu", gpus);
        json_object_set_new(c, "resources",
                            json_pack("{s:{s:s}}", "limits", "nvidia.com/gpu", buf));
    }
    /* The seed's single-node form: the dataset mounted once per PVC (it
     * mounts the same dataset through two interfaces), results, and a
     * /dev/shm larger than the container runtime's 64 MiB. */
    json_array_foreach(aicp_args_get(a, "dataset_pvcs"), i, e)
    {
        char vn[32], path[64];
        snprintf(vn, sizeof(vn), "dataset%zu", i + 1);
        snprintf(path, sizeof(path), "/mnt/dataset%zu", i + 1);
        json_array_append_new(vols,
                              json_pack("{s:s, s:{s:s, s:b}}", "name", vn, "persistentVolumeClaim",
                                        "claimName", json_string_value(e), "readOnly", 1));
        json_array_append_new(
            mounts, json_pack("{s:s, s:s, s:b}", "name", vn, "mountPath", path, "readOnly", 1));
    }
    if (aicp_args_str(a, "results_pvc")) {
        json_array_append_new(vols, json_pack("{s:s, s:{s:s}}", "name", "results",
                                              "persistentVolumeClaim", "claimName",
                                              aicp_args_str(a, "results_pvc")));
        json_array_append_new(
            mounts, json_pack("{s:s, s:s}", "name", "results", "mountPath", "/mnt/results"));
    }
    json_array_append_new(vols,
                          json_pack("{s:s, s:{s:s, s:s}}", "name", "dshm", "emptyDir", "medium",
                                    "Memory", "sizeLimit", aicp_args_str(a, "shm_size")));
    json_array_append_new(mounts, json_pack("{s:s, s:s}", "name", "dshm", "mountPath", "/dev/shm"));
    json_object_set(c, "volumeMounts", mounts);
    pod =
        json_pack("{s:s, s:[O], s:O}", "restartPolicy", restart, "containers", c, "volumes", vols);
    if (pod != NULL && node != NULL)
        json_object_set_new(pod, "nodeSelector",
                            json_pack("{s:s}", "kubernetes.io/hostname", node));
    if (pod != NULL && r->host_network) {
        json_object_set_new(pod, "hostNetwork", json_true());
        json_object_set_new(pod, "dnsPolicy", json_string("ClusterFirstWithHostNet"));
    }
out:
    json_decref(c);
    json_decref(vols);
    json_decref(mounts);
    return pod;
}

static int build_job(json_t **out, struct vrun *r, const char *ns, const char *name,
                     struct aicp_err *err)
{
    const struct aicp_args *a = r->args;
    const char *node = aicp_args_str(a, "node");
    char label[64], buf[512];
    json_t *job = NULL, *pod = NULL, *cmd = json_array(), *e;
    size_t i, gpus = r->used;
    int rc = 0;

    dns_label(label, sizeof(label), node ? node : "any");
    if (cmd == NULL)
        goto nomem;
    if (r->container) {
        json_array_foreach(aicp_args_get(a, "command"), i,
                           e) if (scalar_text(buf, sizeof(buf), e) == 0)
            json_array_append_new(cmd, json_string(buf));
    } else if (trainbench_words(NULL, cmd, r, aicp_args_str(a, "benchmark_path")) != 0) {
        goto nomem;
    }
    if (r->pod_gpus != NULL)
        gpus = (size_t)json_integer_value(json_array_get(r->pod_gpus, 0));
    if ((pod = pod_spec(r, node, "benchmark", cmd, gpus, "Never")) == NULL)
        goto nomem;
    job = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:{s:i, s:I, s:{s:{s:{s:s}}, s:O}}}",
                    "apiVersion", "batch/v1", "kind", "Job", "metadata", "name", name, "namespace",
                    ns, "labels", "aicp.io/validate", label, "spec", "backoffLimit", 0,
                    "activeDeadlineSeconds", (json_int_t)r->timeout, "template", "metadata",
                    "labels", "aicp.io/validate", label, "spec", pod);
    if (job == NULL)
        goto nomem;
    *out = job;
    goto out;
nomem:
    rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
out:
    json_decref(pod);
    json_decref(cmd);
    return rc;
}

/* The Deployment name of the worker on node: JOB-worker-NODE within a
 * label's 63 characters (the name is also its pods' label value). */
static void worker_name(char *out, size_t cap, const char *job, const char *node, size_t idx)
{
    char nl[32];
    dns_label(nl, sizeof(nl), node);
    if (*nl == '\0')
        snprintf(nl, sizeof(nl), "%zu", idx + 1);
    int room = (int)(63 - strlen("-worker-") - strlen(nl));
    snprintf(out, cap, "%.*s-worker-%s", room, job, nl);
}

/* A worker of the distributed run: a Deployment of one pod on node that
 * runs worker_command (default: sleep infinity) in the same image, with
 * the same GPUs, mounts and network as the master, for the master's
 * mpirun to reach (over the image's sshd, or its own launcher). A
 * Deployment, not a bare pod, so that a pod lost before the run is
 * replaced; Recreate, because on the host's network two generations of
 * the pod would contend for its ports and GPUs. */
static int build_worker(json_t **out, const struct vrun *r, const char *ns, const char *name,
                        const char *node, size_t gpus, const char *label, struct aicp_err *err)
{
    const json_t *wc = aicp_args_get(r->args, "worker_command");
    json_t *cmd = json_array(), *pod = NULL, *d = NULL, *e;
    char buf[512];
    size_t i;
    int rc = 0;

    if (cmd == NULL)
        goto nomem;
    if (wc != NULL) {
        json_array_foreach(wc, i, e) if (scalar_text(buf, sizeof(buf), e) == 0)
            json_array_append_new(cmd, json_string(buf));
    } else if (json_array_append_new(cmd, json_string("sleep")) != 0 ||
               json_array_append_new(cmd, json_string("infinity")) != 0) {
        goto nomem;
    }
    if ((pod = pod_spec(r, node, "worker", cmd, gpus, "Always")) == NULL)
        goto nomem;
    d = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s, s:s}}, "
                  "s:{s:i, s:{s:s}, s:{s:{s:s}}, s:{s:{s:{s:s, s:s}}, s:O}}}",
                  "apiVersion", "apps/v1", "kind", "Deployment", "metadata", "name", name,
                  "namespace", ns, "labels", "aicp.io/validate", label, "aicp.io/validate-worker",
                  name, "spec", "replicas", 1, "strategy", "type", "Recreate", "selector",
                  "matchLabels", "aicp.io/validate-worker", name, "template", "metadata", "labels",
                  "aicp.io/validate", label, "aicp.io/validate-worker", name, "spec", pod);
    if (d == NULL)
        goto nomem;
    *out = d;
    goto out;
nomem:
    rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
out:
    json_decref(pod);
    json_decref(cmd);
    return rc;
}

/* The worker Deployments (manifests into *out, names into *names) for
 * the Job `job`. */
static int build_workers(json_t **out, json_t **names, const struct vrun *r, const char *ns,
                         const char *job, struct aicp_err *err)
{
    char label[64], name[128];
    size_t i, j;
    json_t *e;
    int rc = 0;

    dns_label(label, sizeof(label), aicp_args_str(r->args, "node"));
    *out = json_array();
    *names = json_array();
    if (*out == NULL || *names == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    json_array_foreach(r->workers, i, e)
    {
        const char *node = json_string_value(e);
        json_t *d = NULL;
        worker_name(name, sizeof(name), job, node, i);
        /* two node names that differ only where a label cannot */
        for (j = 0; j < json_array_size(*names); j++)
            if (strcmp(name, json_string_value(json_array_get(*names, j))) == 0)
                worker_name(name, sizeof(name), job, "", i);
        size_t gpus = (size_t)json_integer_value(json_array_get(r->pod_gpus, i + 1));
        if ((rc = build_worker(&d, r, ns, name, node, gpus, label, err)) != 0)
            return rc;
        if (json_array_append_new(*out, d) != 0 ||
            json_array_append_new(*names, json_string(name)) != 0)
            return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    return 0;
}

static void deployment_ref(struct aicp_kube_ref *ref, const char *ns, const json_t *names, size_t i)
{
    ref->api_version = "apps/v1";
    ref->kind = "Deployment";
    ref->namespace = ns;
    ref->name = json_string_value(json_array_get(names, i));
}

/* Creates the workers afresh (one left by an earlier run is deleted
 * first: its pod may hold old settings) and waits until each Deployment
 * is Available, within timeout. *created counts those created, which the
 * caller deletes. */
static int workers_up(struct vrun *r, struct aicp_kube *k, const char *ns, const json_t *deps,
                      const json_t *names, size_t *created, struct aicp_err *err)
{
    struct aicp_kube_ref ref;
    size_t i, n = json_array_size(deps);
    int rc;

    for (i = 0; i < n; i++) {
        deployment_ref(&ref, ns, names, i);
        if ((rc = aicp_kube_delete(k, &ref, "Background", 0, 120, NULL, err)) != 0) {
            aicp_err_prefix(err, "removing the earlier worker Deployment %s/%s", ns, ref.name);
            return rc;
        }
    }
    for (i = 0; i < n; i++) {
        if ((rc = aicp_kube_apply(k, json_array_get(deps, i), 0, NULL, err)) != 0)
            return rc;
        (*created)++;
    }
    double deadline = aicp_now() + (double)r->timeout;
    for (i = 0; i < n; i++) {
        json_t *live = NULL;
        double left = deadline - aicp_now();
        struct aicp_kube_wait w = {
            .condition = "Available",
            .timeout_s = left > 0.5 ? left : 0.5,
            .interval_s = 0.5,
        };
        deployment_ref(&ref, ns, names, i);
        rc = aicp_kube_wait(k, &ref, &w, &live, err);
        json_decref(live);
        if (rc != 0) {
            aicp_err_prefix(err, "%s (%s): worker Deployment %s/%s on %s is not Available", r->node,
                            r->what, ns, ref.name,
                            json_string_value(json_array_get(r->workers, i)));
            return rc;
        }
    }
    return 0;
}

static const json_t *true_condition(const json_t *obj, const char *type)
{
    size_t i;
    json_t *c;
    json_array_foreach(aicp_kube_field(obj, "status.conditions"), i, c)
    {
        const char *t = json_string_value(json_object_get(c, "type"));
        const char *s = json_string_value(json_object_get(c, "status"));
        if (t && s && strcmp(t, type) == 0 && strcmp(s, "True") == 0)
            return c;
    }
    return NULL;
}

/* The Job's newest pod, a new reference, or NULL. */
static int job_pod(json_t **pod, struct aicp_kube *k, const char *ns, const char *name,
                   struct aicp_err *err)
{
    struct aicp_buf sel = AICP_BUF_INIT;
    json_t *items = NULL, *best = NULL, *p;
    size_t i;
    int rc;

    *pod = NULL;
    if ((rc = aicp_buf_printf(&sel, "job-name=%s", name)) != 0 ||
        (rc = aicp_kube_list(k, "v1", "Pod", ns, sel.data, &items, err)) != 0)
        goto out;
    json_array_foreach(items, i, p)
    {
        const char *t = json_string_value(aicp_kube_field(p, "metadata.creationTimestamp"));
        const char *bt =
            best ? json_string_value(aicp_kube_field(best, "metadata.creationTimestamp")) : NULL;
        if (best == NULL || strcmp(t ? t : "", bt ? bt : "") >= 0)
            best = p;
    }
    *pod = json_incref(best);
out:
    json_decref(items);
    aicp_buf_free(&sel);
    return rc;
}

/* Shows what is new in the benchmark's log while its Job runs: the last
 * lines of the newest pod's log, without a last line still being written. */
static void kube_progress(struct vrun *r, struct aicp_kube *k, const char *ns, const char *name,
                          struct aicp_vprogress *pg)
{
    struct aicp_err lerr = {0};
    json_t *pod = NULL;
    char *text = NULL;

    if (job_pod(&pod, k, ns, name, &lerr) != 0 || pod == NULL)
        goto out;
    const char *pod_name = json_string_value(aicp_kube_field(pod, "metadata.name"));
    const char *on = json_string_value(aicp_kube_field(pod, "spec.nodeName"));
    const char *phase = json_string_value(aicp_kube_field(pod, "status.phase"));
    if (pod_name == NULL || phase == NULL || strcmp(phase, "Running") != 0)
        goto out;
    if (aicp_kube_logs_tail(k, ns, pod_name, "benchmark", KUBE_TAIL_N, &text, &lerr) != 0)
        goto out;
    char *end = strrchr(text, '\n');
    if (end == NULL)
        goto out;
    end[1] = '\0';
    /* A pinned Job's node is the one asked for; otherwise where it runs. */
    if (aicp_args_str(r->args, "node") != NULL || on == NULL)
        on = r->node;
    aicp_vprogress_show(pg, on, text);
out:
    free(text);
    json_decref(pod);
}

/* Waits up to the timeout for the Job to complete or fail, showing the
 * benchmark's progress every KUBE_POLL_S seconds. As aicp_kube_wait. */
static int kube_wait_job(struct vrun *r, struct aicp_kube *k, const struct aicp_kube_ref *ref,
                         json_t **live, struct aicp_err *err)
{
    struct aicp_vprogress pg = AICP_VPROGRESS_INIT;
    double deadline = aicp_now() + (double)r->timeout;

    for (;;) {
        double left = deadline - aicp_now();
        struct aicp_kube_wait w = {
            .condition = "Complete",
            .fail_condition = "Failed",
            .timeout_s = left < KUBE_POLL_S ? (left > 0.01 ? left : 0.01) : KUBE_POLL_S,
            .interval_s = 0.5,
        };
        json_decref(*live);
        *live = NULL;
        int wrc = aicp_kube_wait(k, ref, &w, live, err);
        if (wrc != AICP_ETIMEOUT || aicp_now() >= deadline)
            return wrc;
        aicp_err_clear(err);
        kube_progress(r, k, ref->namespace, ref->name, &pg);
    }
}

/* Check mode: the server judges what would be created (quota, admission,
 * schema) without creating it; an existing object would be replaced, not
 * patched, so it is not dry-run. */
static int kube_dry_run(struct aicp_kube *k, const json_t *obj, const json_t *live,
                        struct aicp_err *err)
{
    return live != NULL ? 0 : aicp_kube_apply(k, obj, AICP_KUBE_DRY_RUN, NULL, err);
}

static int kube_run(struct vrun *r, struct aicp_err *err)
{
    const struct aicp_args *a = r->args;
    struct aicp_kube *k = NULL;
    json_t *node = NULL, *job = NULL, *live = NULL, *pod = NULL, *deps = NULL, *wnames = NULL;
    char *log = NULL;
    char name[128] = "";
    const char *node_name = aicp_args_str(a, "node");
    const char *ns = aicp_args_str(a, "namespace");
    size_t wcreated = 0, i;
    int rc, created = 0;

    if ((rc = aicp_ku_client(r->ctx, a, &k, err)) != 0)
        goto out;
    if (ns == NULL)
        ns = aicp_kube_default_namespace(k);
    if (aicp_args_str(a, "job_name") != NULL) {
        snprintf(name, sizeof(name), "%s", aicp_args_str(a, "job_name"));
    } else {
        char label[64];
        dns_label(label, sizeof(label) - 14, node_name ? node_name : "");
        snprintf(name, sizeof(name), "aicp-validate%s%s", *label ? "-" : "", label);
    }
    r->node = aicp_strdup(node_name ? node_name : "the cluster");
    r->gpus = json_array();
    if (r->node == NULL || r->gpus == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (node_name != NULL) {
        if ((rc = kube_nodes_read(r, k, node_name, err)) != 0)
            goto out;
    } else if (r->cuda) {
        if (r->gpus_arg < 0) {
            rc = aicp_err_set(err, AICP_EINVAL,
                              "where: kubernetes without node needs gpus (how "
                              "many to ask the scheduler for)");
            goto out;
        }
        /* the model is known once the pod has a node */
        for (long long g = 0; g < r->gpus_arg; g++)
            json_array_append_new(r->gpus, json_pack("{s:s}", "name", "GPU"));
    }
    /* Without a node the GPU model is known only after the run. */
    int defer = node_name == NULL && r->cuda && aicp_args_get(a, "expected_per_gpu") != NULL;
    if (!defer && (rc = node_facts(r, err)) != 0)
        goto out;
    if (defer) {
        r->used = (size_t)r->gpus_arg;
        snprintf(r->what, sizeof(r->what), "%zux GPU", r->used);
    }
    if ((rc = build_job(&job, r, ns, name, err)) != 0)
        goto out;
    if (r->workers != NULL) {
        if ((rc = build_workers(&deps, &wnames, r, ns, name, err)) != 0)
            goto out;
        json_t *all = json_pack("[s]", node_name);
        if (all != NULL)
            json_array_extend(all, (json_t *)r->workers);
        result_set(r, "nodes", all);
        result_set(r, "workers", json_incref(wnames));
    }
    result_set(r, "job", json_string(name));
    result_set(r, "namespace", json_string(ns));
    struct aicp_kube_ref ref = {
        .api_version = "batch/v1", .kind = "Job", .namespace = ns, .name = name};
    if ((rc = aicp_kube_get(k, &ref, &live, err)) != 0)
        goto out;
    if (r->check_mode) {
        for (i = 0; i < json_array_size(deps); i++) {
            struct aicp_kube_ref dref;
            json_t *dl = NULL;
            deployment_ref(&dref, ns, wnames, i);
            rc = aicp_kube_get(k, &dref, &dl, err);
            if (rc == 0)
                rc = kube_dry_run(k, json_array_get(deps, i), dl, err);
            json_decref(dl);
            if (rc != 0)
                goto out;
        }
        if ((rc = kube_dry_run(k, job, live, err)) != 0)
            goto out;
        result_set(r, "msg", json_string("benchmark not run in check mode"));
        goto out;
    }
    if (live != NULL && (rc = aicp_kube_delete(k, &ref, "Background", 0, 120, NULL, err)) != 0) {
        aicp_err_prefix(err, "removing the earlier Job %s/%s", ns, name);
        goto out;
    }
    json_decref(live);
    live = NULL;
    /* The workers first: the master's mpirun needs them up when it starts. */
    if (deps != NULL && (rc = workers_up(r, k, ns, deps, wnames, &wcreated, err)) != 0)
        goto out;
    if ((rc = aicp_kube_apply(k, job, 0, NULL, err)) != 0)
        goto out;
    created = 1;
    int wrc = kube_wait_job(r, k, &ref, &live, err);
    if (wrc == AICP_ETIMEOUT) {
        rc = aicp_err_set(err, AICP_ETIMEOUT,
                          "%s (%s): Job %s/%s did not finish within %lld s "
                          "(timeout)",
                          r->node, r->what, ns, name, r->timeout);
        goto out;
    }
    if (wrc != 0 && wrc != AICP_EFAILED) {
        rc = wrc;
        goto out;
    }
    if ((rc = job_pod(&pod, k, ns, name, err)) != 0)
        goto out;
    const char *pod_name = json_string_value(aicp_kube_field(pod, "metadata.name"));
    const char *ran_on = json_string_value(aicp_kube_field(pod, "spec.nodeName"));
    struct aicp_err lerr = {0};
    if (pod_name != NULL) {
        result_set(r, "pod", json_string(pod_name));
        if (aicp_kube_logs(k, ns, pod_name, "benchmark", &log, &lerr) != 0)
            log = NULL;
    }
    if (node_name == NULL && ran_on != NULL) {
        free(r->node);
        r->node = aicp_strdup(ran_on);
    }
    if (wrc == AICP_EFAILED || true_condition(live, "Failed") != NULL) {
        const json_t *c = true_condition(live, "Failed");
        const char *reason = json_string_value(json_object_get(c, "reason"));
        const char *msg = json_string_value(json_object_get(c, "message"));
        const char *t = tail_of(log);
        rc = aicp_err_set(err, AICP_EFAILED, "%s (%s): Job %s/%s failed (%s%s%s)%s%s", r->node,
                          r->what, ns, name, reason ? reason : "no reason given", msg ? ": " : "",
                          msg ? msg : "", *t ? "; end of the log:\n" : "", t);
        goto out;
    }
    if (pod_name == NULL || log == NULL) {
        rc = aicp_err_set(err, AICP_EFAILED,
                          "%s: Job %s/%s completed but its pod's log cannot "
                          "be read%s%s",
                          r->node, ns, name, lerr.msg[0] ? ": " : "", lerr.msg);
        goto out;
    }
    if (node_name == NULL && r->cuda) {
        /* The node the pod ran on says which GPUs they were. */
        struct aicp_kube_ref nref = {.api_version = "v1", .kind = "Node", .name = ran_on};
        json_decref(node);
        node = NULL;
        if (ran_on != NULL && (rc = aicp_kube_get(k, &nref, &node, err)) != 0)
            goto out;
        const char *product =
            json_string_value(aicp_kube_field(node, "metadata.labels[nvidia.com/gpu.product]"));
        int refresh = 0;
        if (node != NULL && product != NULL) {
            kube_set_gpus(r, node);
            refresh = json_array_size(r->gpus) >= r->used;
        }
        if (defer && !refresh) {
            rc = aicp_err_set(err, AICP_EFAILED,
                              "%s: cannot tell the GPU model of the node the "
                              "pod ran on (no label nvidia.com/gpu.product): give node, or "
                              "expected_images_per_sec instead of expected_per_gpu",
                              r->node);
            goto out;
        }
        if (refresh && (rc = node_facts(r, err)) != 0)
            goto out;
    }
    char where[160];
    snprintf(where, sizeof(where), "pod %s/%s", ns, pod_name);
    rc = judge(r, log, where, err);
out:
    if (!aicp_args_bool(a, "keep_job", 0)) {
        /* Background: the garbage collector takes the pods too (a Job's
         * API default would orphan its pod). Also after a failure: the
         * workers hold their nodes' GPUs for as long as they run. */
        struct aicp_err derr = {0};
        struct aicp_kube_ref dref = {
            .api_version = "batch/v1", .kind = "Job", .namespace = ns, .name = name};
        if (created && aicp_kube_delete(k, &dref, "Background", 0, 0, NULL, &derr) != 0 && rc == 0)
            rc = aicp_err_set(err, derr.code, "%s", derr.msg);
        for (i = 0; i < wcreated; i++) {
            deployment_ref(&dref, ns, wnames, i);
            if (aicp_kube_delete(k, &dref, "Background", 0, 0, NULL, &derr) != 0 && rc == 0)
                rc = aicp_err_set(err, derr.code, "%s", derr.msg);
        }
    }
    free(log);
    json_decref(node);
    json_decref(job);
    json_decref(live);
    json_decref(pod);
    json_decref(deps);
    json_decref(wnames);
    return rc;
}

static int validate_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                          struct aicp_err *err)
{
    struct vrun r;
    int rc;

    memset(&r, 0, sizeof(r));
    r.ctx = ctx;
    r.args = args;
    r.check_mode = json_is_true(json_object_get(ctx->vars, "ansible_check_mode"));
    if ((rc = check_args(&r, err)) != 0)
        goto out;
    if (r.kube) {
        rc = kube_run(&r, err);
    } else {
        r.node = aicp_strdup(ctx->host ? ctx->host : "?");
        rc = bare_run(&r, err);
    }
    if (rc == 0)
        *current = json_object();
out:
    vrun_clear(&r);
    return rc;
}

static const struct aicp_module_ops validate_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = validate_check,
    .diff = aicp_module_diff_none,
    .apply = aicp_module_apply_none,
};

const struct aicp_module aicp_mod_validate = {
    .name = "validate",
    .summary = "Run a GPU training benchmark on a node and check its throughput",
    .args = validate_args,
    .flags = AICP_MOD_NEEDS_SSH,
    .ops = &validate_ops,
};
