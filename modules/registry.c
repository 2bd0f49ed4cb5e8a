/* The registry: every module aicp has, in one static table. */
#include "config.h"

#include <string.h>

#include "module.h"
#include "registry.h"

extern const struct aicp_module aicp_mod_command;
extern const struct aicp_module aicp_mod_shell;
extern const struct aicp_module aicp_mod_file;
extern const struct aicp_module aicp_mod_copy;
extern const struct aicp_module aicp_mod_template;
extern const struct aicp_module aicp_mod_lineinfile;
extern const struct aicp_module aicp_mod_stat;
extern const struct aicp_module aicp_mod_sysctl;
extern const struct aicp_module aicp_mod_apt;
extern const struct aicp_module aicp_mod_service;
extern const struct aicp_module aicp_mod_systemd;
extern const struct aicp_module aicp_mod_modprobe;
extern const struct aicp_module aicp_mod_mount;
extern const struct aicp_module aicp_mod_slurp;
extern const struct aicp_module aicp_mod_fetch;
extern const struct aicp_module aicp_mod_debug;
extern const struct aicp_module aicp_mod_set_fact;
extern const struct aicp_module aicp_mod_assert;
extern const struct aicp_module aicp_mod_fail;
extern const struct aicp_module aicp_mod_ping;
extern const struct aicp_module aicp_mod_k8s;
extern const struct aicp_module aicp_mod_namespace;
extern const struct aicp_module aicp_mod_secret;
extern const struct aicp_module aicp_mod_storage_class;
extern const struct aicp_module aicp_mod_pvc;
extern const struct aicp_module aicp_mod_volume_snapshot;
extern const struct aicp_module aicp_mod_kubeflow_notebook;
extern const struct aicp_module aicp_mod_trident_backend;
extern const struct aicp_module aicp_mod_k8s_job;
extern const struct aicp_module aicp_mod_k8s_wait;
extern const struct aicp_module aicp_mod_k8s_node;
extern const struct aicp_module aicp_mod_ontap_volume;
extern const struct aicp_module aicp_mod_ontap_snapshot;
extern const struct aicp_module aicp_mod_ontap_clone;
extern const struct aicp_module aicp_mod_ontap_snapmirror;
extern const struct aicp_module aicp_mod_ontap_export_policy;
extern const struct aicp_module aicp_mod_ontap_info;
extern const struct aicp_module aicp_mod_helm_release;
extern const struct aicp_module aicp_mod_kubeadm_init;
extern const struct aicp_module aicp_mod_kubeadm_join;
extern const struct aicp_module aicp_mod_gpu_facts;
extern const struct aicp_module aicp_mod_nvidia_driver;
extern const struct aicp_module aicp_mod_nvidia_container_toolkit;
extern const struct aicp_module aicp_mod_validate;

static const struct aicp_module *const modules[] = {
    &aicp_mod_command,
    &aicp_mod_shell,
    &aicp_mod_file,
    &aicp_mod_copy,
    &aicp_mod_template,
    &aicp_mod_lineinfile,
    &aicp_mod_stat,
    &aicp_mod_sysctl,
    &aicp_mod_apt,
    &aicp_mod_service,
    &aicp_mod_systemd,
    &aicp_mod_modprobe,
    &aicp_mod_mount,
    &aicp_mod_slurp,
    &aicp_mod_fetch,
    &aicp_mod_debug,
    &aicp_mod_set_fact,
    &aicp_mod_assert,
    &aicp_mod_fail,
    &aicp_mod_ping,
    &aicp_mod_k8s,
    &aicp_mod_namespace,
    &aicp_mod_secret,
    &aicp_mod_storage_class,
    &aicp_mod_pvc,
    &aicp_mod_volume_snapshot,
    &aicp_mod_kubeflow_notebook,
    &aicp_mod_trident_backend,
    &aicp_mod_k8s_job,
    &aicp_mod_k8s_wait,
    &aicp_mod_k8s_node,
    &aicp_mod_ontap_volume,
    &aicp_mod_ontap_snapshot,
    &aicp_mod_ontap_clone,
    &aicp_mod_ontap_snapmirror,
    &aicp_mod_ontap_export_policy,
    &aicp_mod_ontap_info,
    &aicp_mod_helm_release,
    &aicp_mod_kubeadm_init,
    &aicp_mod_kubeadm_join,
    &aicp_mod_gpu_facts,
    &aicp_mod_nvidia_driver,
    &aicp_mod_nvidia_container_toolkit,
    &aicp_mod_validate,
};

const struct aicp_module *aicp_module_find(const char *name)
{
    static const char *const prefixes[] = {"ansible.builtin.", "ansible.legacy.", "ansible.posix.",
                                           "community.general."};
    for (size_t p = 0; p < sizeof(prefixes) / sizeof(prefixes[0]); p++) {
        size_t n = strlen(prefixes[p]);
        if (strncmp(name, prefixes[p], n) == 0) {
            name += n;
            break;
        }
    }
    /* Ansible's newer name for the systemd module. */
    if (strcmp(name, "systemd_service") == 0)
        name = "systemd";
    for (size_t i = 0; i < sizeof(modules) / sizeof(modules[0]); i++)
        if (strcmp(modules[i]->name, name) == 0)
            return modules[i];
    return NULL;
}

size_t aicp_module_count(void)
{
    return sizeof(modules) / sizeof(modules[0]);
}

const struct aicp_module *aicp_module_at(size_t i)
{
    return i < aicp_module_count() ? modules[i] : NULL;
}
