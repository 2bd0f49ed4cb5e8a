/* Private to the Kubernetes client's files (kube.c, kube_config.c): the
 * client's state, which kube_config.c fills from the kubeconfig and kube.c
 * uses for every request, and the small helpers both use. Nothing else
 * includes this; the interface for everyone else is kube.h.
 */
#ifndef AICP_KUBE_INT_H
#define AICP_KUBE_INT_H

#include <pthread.h>
#include <stddef.h>
#include <jansson.h>

#include "err.h"
#include "http.h"

struct aicp_kube {
    struct aicp_http *http;
    struct aicp_http_opts opts; /* points into the fields below */
    char *path;                 /* the kubeconfig, for messages */
    char *context;
    char *server; /* no trailing slash */
    char *ns;
    char *proxy;
    char *ca_pem;
    size_t ca_pem_len;
    char *cert_pem;
    size_t cert_pem_len;
    char *key_pem; /* secret */
    size_t key_pem_len;
    char *token; /* secret */
    char *username;
    char *password; /* secret */

    pthread_mutex_t lock; /* guards the discovery cache */
    int have_index;       /* /api and /apis were read */
    /* "v1", "storage.k8s.io/v1" -> its APIResourceList, or null when the
     * group version is known but its resources were not asked about yet. */
    json_t *gvs;
    /* Discovery that failed: every later resolve fails the same way at
     * once, rather than asking a dead server again (with all its retries)
     * for each task of the run. */
    int discovery_rc;
    struct aicp_err discovery_err;
};

/* Static inline so that each file gets its own copy of this one-liner. */
static inline const char *str_of(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* ---- kube.c ---- */

int aicp_kube_dns_label(const char *s);

#endif
