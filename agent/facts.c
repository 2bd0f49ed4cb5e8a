/* gather_facts: one shell script prints `key=value` lines and nvidia-smi's
 * CSV; this file runs it and turns the answer into Ansible-named facts. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "err.h"
#include "facts.h"
#include "util.h"

static const char gather_script[] =
    "echo \"hostname=$(hostname -s 2>/dev/null || hostname)\"\n"
    "echo \"nodename=$(uname -n)\"\n"
    "echo \"fqdn=$(hostname -f 2>/dev/null || hostname)\"\n"
    "echo \"system=$(uname -s)\"\n"
    "echo \"kernel=$(uname -r)\"\n"
    "echo \"architecture=$(uname -m)\"\n"
    "echo \"user_id=$(id -un)\"\n"
    "echo \"home=$HOME\"\n"
    "echo \"vcpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)\"\n"
    "if [ -r /etc/os-release ]; then . /etc/os-release; "
    "echo \"os_id=$ID\"; echo \"os_version=$VERSION_ID\"; echo \"os_codename=$VERSION_CODENAME\"; "
    "echo \"os_like=$ID_LIKE\"; fi\n"
    "awk '/^MemTotal:/{print \"memtotal_kb=\" $2} /^MemAvailable:/{print \"memfree_kb=\" $2} "
    "/^SwapTotal:/{print \"swaptotal_kb=\" $2}' "
    "/proc/meminfo 2>/dev/null\n"
    "awk -F: '/^core id/{c[$2]=1} END{n=0; for (k in c) n++; print \"cores=\" n}' "
    "/proc/cpuinfo 2>/dev/null\n"
    /* Without a loaded driver nvidia-smi prints its complaint on stdout
     * and exits non-zero: only a successful answer lists GPUs. */
    "if command -v nvidia-smi >/dev/null 2>&1 && g=$(nvidia-smi --query-gpu=index,name,"
    "driver_version,memory.total,mig.mode.current,persistence_mode "
    "--format=csv,noheader,nounits 2>/dev/null); then\n"
    "  printf '%s\\n' \"$g\" | sed 's/^/gpu=/'\n"
    "fi\n";

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

static const char *os_family(const char *id, const char *like)
{
    static const struct {
        const char *id, *family;
    } table[] = {
        {"debian", "Debian"}, {"ubuntu", "Debian"}, {"rhel", "RedHat"},  {"centos", "RedHat"},
        {"rocky", "RedHat"},  {"almalinux", "RedHat"}, {"fedora", "RedHat"}, {"sles", "Suse"},
        {"opensuse-leap", "Suse"}, {"alpine", "Alpine"}, {"arch", "Archlinux"},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (strcmp(id, table[i].id) == 0)
            return table[i].family;
    for (size_t i = 0; like && i < sizeof(table) / sizeof(table[0]); i++)
        if (strstr(like, table[i].id))
            return table[i].family;
    return "";
}

/* The names Ansible uses for distribution: Debian, Ubuntu, CentOS... */
static const char *distribution_name(const char *id)
{
    static const struct {
        const char *id, *name;
    } table[] = {
        {"debian", "Debian"}, {"ubuntu", "Ubuntu"}, {"centos", "CentOS"}, {"rhel", "RedHat"},
        {"rocky", "Rocky"}, {"fedora", "Fedora"}, {"almalinux", "AlmaLinux"}, {"alpine", "Alpine"},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (strcmp(id, table[i].id) == 0)
            return table[i].name;
    return id;
}

static int add_gpu(json_t *gpus, char *csv)
{
    char *field[6] = {0};
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(csv, ",", &save); tok && n < 6; tok = strtok_r(NULL, ",", &save))
        field[n++] = trim(tok);
    if (n < 4)
        return AICP_EINVAL;
    json_t *g = json_pack("{s:I, s:s, s:s, s:I, s:s, s:s}", "index", (json_int_t)strtol(field[0], NULL, 10),
                          "name", field[1], "driver_version", field[2], "memory_total_mib",
                          (json_int_t)strtoll(field[3], NULL, 10), "mig_mode",
                          n > 4 ? field[4] : "[N/A]", "persistence_mode", n > 5 ? field[5] : "[N/A]");
    if (g == NULL)
        return AICP_ENOMEM;
    return json_array_append_new(gpus, g) == 0 ? 0 : AICP_ENOMEM;
}

int aicp_facts_parse(json_t **out, const char *text, struct aicp_err *err)
{
    int rc = 0;
    json_t *f = json_object();
    json_t *gpus = json_array();
    char *copy = aicp_strdup(text ? text : "");
    char os_id[128] = "", os_like[128] = "";
    if (f == NULL || gpus == NULL || copy == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        const char *k = line;
        char *v = trim(eq + 1);
        if (strcmp(k, "gpu") == 0) {
            if (add_gpu(gpus, v) != 0) {
                rc = aicp_err_set(err, AICP_EREMOTE, "unexpected nvidia-smi output: %s", v);
                goto out;
            }
        } else if (strcmp(k, "vcpus") == 0 || strcmp(k, "cores") == 0) {
            json_object_set_new(f, strcmp(k, "vcpus") == 0 ? "processor_vcpus" : "processor_cores",
                                json_integer(strtol(v, NULL, 10)));
        } else if (strcmp(k, "memtotal_kb") == 0 || strcmp(k, "memfree_kb") == 0 ||
                   strcmp(k, "swaptotal_kb") == 0) {
            char name[32];
            snprintf(name, sizeof(name), "%.*smb", (int)(strlen(k) - 2), k);
            json_object_set_new(f, name, json_integer(strtoll(v, NULL, 10) / 1024));
        } else if (strcmp(k, "os_id") == 0) {
            snprintf(os_id, sizeof(os_id), "%s", v);
        } else if (strcmp(k, "os_like") == 0) {
            snprintf(os_like, sizeof(os_like), "%s", v);
        } else if (strcmp(k, "os_version") == 0) {
            json_object_set_new(f, "distribution_version", json_string(v));
            char major[64];
            snprintf(major, sizeof(major), "%s", v);
            major[strcspn(major, ".")] = '\0';
            json_object_set_new(f, "distribution_major_version", json_string(major));
        } else if (strcmp(k, "os_codename") == 0) {
            json_object_set_new(f, "distribution_release", json_string(v));
        } else if (strcmp(k, "home") == 0) {
            json_object_set_new(f, "env", json_pack("{s:s}", "HOME", v));
        } else {
            json_object_set_new(f, k, json_string(v));
        }
    }
    if (os_id[0]) {
        json_object_set_new(f, "distribution", json_string(distribution_name(os_id)));
        json_object_set_new(f, "os_family", json_string(os_family(os_id, os_like)));
    }
    json_object_set_new(f, "gpu_count", json_integer((json_int_t)json_array_size(gpus)));
    json_t *first = json_array_get(gpus, 0);
    json_object_set(f, "nvidia_driver_version",
                    first ? json_object_get(first, "driver_version") : json_null());
    json_object_set(f, "gpus", gpus);
out:
    free(copy);
    json_decref(gpus);
    if (rc != 0) {
        json_decref(f);
        f = NULL;
    }
    *out = f;
    return rc;
}

int aicp_facts_gather(json_t **out, struct aicp_conn *conn, int become, struct aicp_err *err)
{
    struct aicp_exec_result res = {0};
    *out = NULL;
    int rc = aicp_conn_exec(conn, gather_script, NULL, 0, become, &res, err);
    if (rc != 0)
        return rc;
    rc = aicp_facts_parse(out, res.out, err);
    aicp_exec_result_clear(&res);
    return rc;
}
