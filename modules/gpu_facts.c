/* The gpu_facts module: gathers what a playbook needs to know about a
 * host's NVIDIA GPUs into ansible_facts (gpus, gpu_count,
 * nvidia_driver_version), so that templates and `when:` conditions can use
 * them after the task. It asks nvidia-smi's documented CSV query
 * (--query-gpu, --format=csv,noheader,nounits) and, when nvidia-smi cannot
 * talk to a driver, the kernel's /proc/driver/nvidia/version. A host
 * without GPUs or without a driver is a fact, not a failure: 0 GPUs and a
 * null driver version. */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "err.h"
#include "module.h"
#include "sysutil.h"
#include "util.h"

static const struct aicp_arg_spec gpu_facts_args[] = {
    {.name = NULL},
};

#define GPU_QUERY "index,name,memory.total,mig.mode.current,persistence_mode,uuid,driver_version"

/* nvidia-smi's stdout goes last (nothing in it can pass for a tag); the
 * kernel's version line is read only when nvidia-smi fails. */
static const char gpu_script[] =
    "LC_ALL=C; export LC_ALL\n"
    "if command -v nvidia-smi >/dev/null 2>&1; then\n"
    "  o=$(nvidia-smi --query-gpu=" GPU_QUERY " --format=csv,noheader,nounits 2>/dev/null); r=$?\n"
    "else o=; r=127; fi\n"
    "k=\n"
    "if [ \"$r\" != 0 ] && [ -r /proc/driver/nvidia/version ]; then\n"
    "  k=$(sed -n 's/.*Kernel Module[^0-9]*\\([0-9][0-9.]*\\).*/\\1/p' /proc/driver/nvidia/version"
    " | head -n 1)\n"
    "fi\n"
    "echo '" AICP_SYS_TAG "kernel='\"$k\"\n"
    "echo '" AICP_SYS_TAG "smi='\"$r\"\n"
    "printf '%s\\n' \"$o\"\n";

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

/* nvidia-smi writes "[N/A]" (or "N/A") for what a GPU does not support. */
static json_t *na_or_string(const char *v)
{
    if (v == NULL || *v == '\0' || strcmp(v, "[N/A]") == 0 || strcmp(v, "N/A") == 0 ||
        strcmp(v, "[Not Supported]") == 0)
        return json_null();
    return json_string(v);
}

/* One line "index, name, memory, mig, persistence, uuid, driver" into a
 * GPU fact; the driver version goes to *driver. Names hold no commas. */
static json_t *parse_gpu(const char *line, size_t len, char **driver)
{
    char *f[7] = {0};
    size_t n = 0;
    const char *p = line, *end = line + len;
    while (n < 7) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        if (c == NULL || n == 6)
            c = end;
        f[n++] = cell(p, (size_t)(c - p));
        if (c == end)
            break;
        p = c + 1;
    }
    json_t *g = NULL;
    if (n == 7 && f[0] != NULL && isdigit((unsigned char)f[0][0])) {
        char *e = NULL;
        long long mem = strtoll(f[2], &e, 10);
        g = json_pack("{s:I, s:s, s:o, s:o, s:o, s:o}", "index",
                      (json_int_t)strtoll(f[0], NULL, 10), "name", f[1], "memory_mib",
                      (e != f[2] && *e == '\0') ? json_integer(mem) : json_null(), "mig_mode",
                      na_or_string(f[3]), "persistence_mode", na_or_string(f[4]), "uuid",
                      na_or_string(f[5]));
        /* The same keys as gather_facts' GPU entries too, so that either
         * source of ansible_facts.gpus reads the same. */
        if (g != NULL) {
            json_object_set(g, "memory_total_mib", json_object_get(g, "memory_mib"));
            json_object_set_new(g, "driver_version", na_or_string(f[6]));
        }
        if (g != NULL && *driver == NULL && f[6][0] != '\0') {
            *driver = f[6];
            f[6] = NULL;
        }
    }
    for (size_t i = 0; i < n; i++)
        free(f[i]);
    return g;
}

static int gpu_facts_check(struct aicp_ctx *ctx, const struct aicp_args *args, json_t **current,
                           struct aicp_err *err)
{
    (void)args;
    struct aicp_exec_result res;
    memset(&res, 0, sizeof(res));
    char *driver = NULL;
    json_t *gpus = json_array(), *facts = NULL;
    int rc;

    if ((rc = aicp_sys_exec(ctx, gpu_script, &res, err)) != 0)
        goto out;
    size_t slen = 0;
    if (res.rc != 0 || aicp_sys_field(res.out, "smi", &slen) == NULL) {
        rc = aicp_sys_fail(err, &res, "failed to query the GPUs of %s", ctx->host);
        goto out;
    }
    if (aicp_sys_field_int(res.out, "smi", -1) == 0) {
        size_t olen = 0;
        const char *o = aicp_sys_section(res.out, "smi", 1, &olen);
        const char *line, *oend = o + olen;
        size_t len;
        while (aicp_sys_next_line(&o, oend, &line, &len)) {
            json_t *g = parse_gpu(line, len, &driver);
            if (g != NULL)
                json_array_append_new(gpus, g);
        }
    } else {
        size_t klen = 0;
        const char *k = aicp_sys_field(res.out, "kernel", &klen);
        aicp_sys_rtrim(k ? k : "", &klen);
        if (k != NULL && klen > 0)
            driver = aicp_strndup(k, klen);
    }
    facts =
        json_pack("{s:O, s:I, s:o}", "gpus", gpus, "gpu_count", (json_int_t)json_array_size(gpus),
                  "nvidia_driver_version", driver ? json_string(driver) : json_null());
    if (facts == NULL) {
        rc = AICP_ENOMEM;
        goto out;
    }
    aicp_sys_result(ctx, "ansible_facts", json_incref(facts));
    *current = facts;
    facts = NULL;
out:
    json_decref(facts);
    json_decref(gpus);
    free(driver);
    aicp_exec_result_clear(&res);
    return rc;
}

static const struct aicp_module_ops gpu_facts_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = gpu_facts_check,
    .diff = aicp_module_diff_none,
    .apply = aicp_module_apply_none,
};

const struct aicp_module aicp_mod_gpu_facts = {
    .name = "gpu_facts",
    .summary = "Gather NVIDIA GPU facts (nvidia-smi, kernel driver version)",
    .args = gpu_facts_args,
    .flags = AICP_MOD_NEEDS_SSH,
    .ops = &gpu_facts_ops,
};
