/* The cluster playbooks (playbooks/k8s-*.yml) built into the binary, so
 * that `aicp apply` installs a cluster with the very playbooks `aicp run`
 * runs, without needing them on disk. The table is generated at build time
 * by scripts/embed-playbooks.sh. */
#ifndef AICP_SITE_PLAYBOOKS_H
#define AICP_SITE_PLAYBOOKS_H

struct aicp_embedded_file {
    const char *name; /* "k8s-cluster.yml" */
    const char *text;
};

/* Ends with {NULL, NULL}. */
extern const struct aicp_embedded_file aicp_site_playbooks[];

#endif
