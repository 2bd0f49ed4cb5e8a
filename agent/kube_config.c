/* Making Kubernetes clients (agent/kube.h): finding and reading the
 * kubeconfig (its context, cluster and user; certificates, keys and tokens
 * inline or from files), building a struct aicp_kube from it, freeing one
 * with its secrets wiped, and the pool that hands a run one client per
 * kubeconfig and context. What a client does with the API is in kube.c.
 */
#include "config.h"

#include "kube.h"
#include "kube_int.h"

#include "err.h"
#include "http.h"
#include "util.h"
#include "yaml.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void free_blob(char *p, size_t len)
{
    if (p == NULL)
        return;
    OPENSSL_cleanse(p, len);
    free(p);
}

/* ---- kubeconfig --------------------------------------------------------- */

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

/* Decodes base64 (whitespace ignored, padding optional) into a new
 * NUL-terminated buffer. AICP_EINVAL when it is not base64. */
static int b64_decode(const char *in, char **out, size_t *out_len)
{
    size_t n = strlen(in), j = 0;
    unsigned acc = 0;
    int bits = 0, pad = 0;
    char *o = malloc(n / 4 * 3 + 4);

    *out = NULL;
    if (o == NULL)
        return AICP_ENOMEM;
    for (; *in != '\0'; in++) {
        unsigned char c = (unsigned char)*in;
        int v;
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (c == '=') {
            pad++;
            continue;
        }
        if (pad > 0 || (v = b64val(c)) < 0) {
            free_blob(o, n / 4 * 3 + 4);
            return AICP_EINVAL;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[j++] = (char)((acc >> bits) & 0xff);
        }
    }
    o[j] = '\0';
    *out = o;
    *out_len = j;
    return 0;
}

/* The kubeconfig to read: the caller's, else $KUBECONFIG's first file that
 * exists (kubectl would merge them all; aicp does not), else
 * ~/.kube/config. */
static int kc_locate(char **out, const char *given, struct aicp_err *err)
{
    const char *env = getenv("KUBECONFIG"), *home = getenv("HOME");
    struct aicp_buf b = AICP_BUF_INIT;

    *out = NULL;
    if (given != NULL) {
        *out = aicp_strdup(given);
    } else if (env != NULL && env[0] != '\0') {
        const char *p = env;
        while (*out == NULL) {
            const char *e = strchr(p, ':');
            size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
            if (n > 0) {
                char *f = aicp_strndup(p, n);
                if (f == NULL)
                    return aicp_err_set(err, AICP_ENOMEM, "kubeconfig: out of memory");
                if (access(f, F_OK) == 0)
                    *out = f;
                else
                    free(f);
            }
            if (e == NULL)
                break;
            p = e + 1;
        }
        if (*out == NULL)
            return aicp_err_set(err, AICP_EINVAL,
                                "KUBECONFIG=%s: none of the files it names exists", env);
        return 0;
    } else {
        if (home == NULL || home[0] == '\0')
            return aicp_err_set(err, AICP_EINVAL,
                                "kubeconfig: no --kubeconfig, no KUBECONFIG and no HOME to find "
                                "~/.kube/config in");
        if (aicp_buf_printf(&b, "%s/.kube/config", home) != 0)
            return aicp_err_set(err, AICP_ENOMEM, "kubeconfig: out of memory");
        *out = aicp_buf_steal(&b);
    }
    if (*out == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "kubeconfig: out of memory");
    return 0;
}

/* A path in the kubeconfig, relative to the kubeconfig's directory as
 * kubectl resolves it; "~/" is the home directory. */
static char *kc_path(const char *kubeconfig, const char *p)
{
    struct aicp_buf b = AICP_BUF_INIT;
    const char *slash = strrchr(kubeconfig, '/');
    const char *home = getenv("HOME");
    int rc;

    if (p[0] == '/')
        return aicp_strdup(p);
    if (p[0] == '~' && p[1] == '/' && home != NULL)
        rc = aicp_buf_printf(&b, "%s/%s", home, p + 2);
    else if (slash != NULL)
        rc = aicp_buf_printf(&b, "%.*s/%s", (int)(slash - kubeconfig), kubeconfig, p);
    else
        rc = aicp_buf_puts(&b, p);
    if (rc != 0) {
        aicp_buf_free(&b);
        return NULL;
    }
    return aicp_buf_steal(&b);
}

/* The member `inner` of the entry called name in a kubeconfig list
 * (clusters, users, contexts). */
static const json_t *kc_find(const json_t *root, const char *list, const char *inner,
                             const char *name)
{
    const json_t *e;
    size_t i;

    json_array_foreach(json_object_get(root, list), i, e)
    {
        const char *n = str_of(e, "name");
        if (n != NULL && strcmp(n, name) == 0) {
            const json_t *v = json_object_get(e, inner);
            /* An entry without its mapping: the entry itself, which has
             * none of the keys looked up, so it reads as empty. */
            return json_is_object(v) ? v : e;
        }
    }
    return NULL;
}

/* "a, b, c": the names in a kubeconfig list, for "no such context". */
static void kc_names(char *buf, size_t cap, const json_t *root, const char *list)
{
    const json_t *e;
    size_t i, j = 0;

    buf[0] = '\0';
    json_array_foreach(json_object_get(root, list), i, e)
    {
        const char *n = str_of(e, "name");
        int w;
        if (n == NULL)
            continue;
        w = snprintf(buf + j, cap - j, "%s%s", j > 0 ? ", " : "", n);
        if (w < 0 || (size_t)w >= cap - j)
            break;
        j += (size_t)w;
    }
    if (buf[0] == '\0')
        snprintf(buf, cap, "none");
}

/* Reads kubeconfig data that is either inline base64 (`key`-data) or a
 * file (`key`), into memory. Absent: *out NULL, 0. */
static int kc_blob(struct aicp_kube *k, const json_t *obj, const char *key, const char *what,
                   char **out, size_t *len, struct aicp_err *err)
{
    char dkey[64];
    const char *data, *file;
    char *p;
    int rc;

    *out = NULL;
    *len = 0;
    snprintf(dkey, sizeof dkey, "%s-data", key);
    data = str_of(obj, dkey);
    file = str_of(obj, key);
    if (data != NULL && data[0] != '\0') {
        rc = b64_decode(data, out, len);
        if (rc == AICP_ENOMEM)
            return aicp_err_set(err, rc, "%s: out of memory", k->path);
        if (rc != 0 || *len == 0)
            return aicp_err_set(err, AICP_EINVAL, "%s: context %s: %s is not valid base64", k->path,
                                k->context, dkey);
        return 0;
    }
    if (file == NULL || file[0] == '\0')
        return 0;
    if ((p = kc_path(k->path, file)) == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "%s: out of memory", k->path);
    rc = aicp_read_file(out, len, p, err);
    if (rc != 0)
        rc = aicp_err_set(err, AICP_EINVAL, "%s: context %s: cannot read the %s %s", k->path,
                          k->context, what, p);
    free(p);
    return rc;
}

static int kc_bool(const json_t *v)
{
    const char *s = json_string_value(v);

    return json_is_true(v) || (s != NULL && strcmp(s, "true") == 0);
}

static int kc_load(struct aicp_kube *k, const char *want_ctx, struct aicp_err *err)
{
    json_t *root = NULL;
    const json_t *ctx, *cluster, *user;
    const char *cname, *uname, *server, *ns, *token, *token_file, *proxy;
    char names[256];
    char *tok = NULL;
    size_t toklen;
    int rc;

    if ((rc = aicp_yaml_load_file(&root, k->path, NULL, err)) != 0) {
        if (rc == AICP_EIO || rc == AICP_ENOTFOUND) {
            aicp_err_prefix(err, "kubeconfig");
            if (err != NULL)
                err->code = AICP_EINVAL;
            rc = AICP_EINVAL;
        }
        goto out;
    }
    if (!json_is_object(root)) {
        rc = aicp_err_set(err, AICP_EINVAL, "%s: not a kubeconfig (expected a mapping)", k->path);
        goto out;
    }
    if (want_ctx == NULL)
        want_ctx = str_of(root, "current-context");
    if (want_ctx == NULL || want_ctx[0] == '\0') {
        rc = aicp_err_set(err, AICP_EINVAL,
                          "%s: no current-context is set and no context was given (--context)",
                          k->path);
        goto out;
    }
    if ((k->context = aicp_strdup(want_ctx)) == NULL)
        goto oom;
    ctx = kc_find(root, "contexts", "context", k->context);
    if (ctx == NULL) {
        kc_names(names, sizeof names, root, "contexts");
        rc = aicp_err_set(err, AICP_EINVAL, "%s: no context named \"%s\" (contexts: %s)", k->path,
                          k->context, names);
        goto out;
    }
    cname = str_of(ctx, "cluster");
    uname = str_of(ctx, "user");
    ns = str_of(ctx, "namespace");
    if (cname == NULL || (cluster = kc_find(root, "clusters", "cluster", cname)) == NULL) {
        rc = aicp_err_set(err, AICP_EINVAL, "%s: context %s: no cluster named \"%s\"", k->path,
                          k->context, cname != NULL ? cname : "(none given)");
        goto out;
    }
    server = str_of(cluster, "server");
    if (server == NULL ||
        !(aicp_startswith(server, "https://") || aicp_startswith(server, "http://"))) {
        rc = aicp_err_set(err, AICP_EINVAL, "%s: cluster %s has no server URL (https://HOST:PORT)",
                          k->path, cname);
        goto out;
    }
    if ((k->server = aicp_strdup(server)) == NULL ||
        (k->ns = aicp_strdup(ns != NULL && ns[0] != '\0' ? ns : "default")) == NULL)
        goto oom;
    while (strlen(k->server) > 8 && k->server[strlen(k->server) - 1] == '/')
        k->server[strlen(k->server) - 1] = '\0';
    if (!aicp_kube_dns_label(k->ns)) {
        rc = aicp_err_set(err, AICP_EINVAL, "%s: context %s: namespace \"%s\" is not a valid name",
                          k->path, k->context, k->ns);
        goto out;
    }
    if (str_of(cluster, "tls-server-name") != NULL) {
        rc = aicp_err_set(err, AICP_EINVAL, "%s: cluster %s: tls-server-name is not supported",
                          k->path, cname);
        goto out;
    }
    if ((rc = kc_blob(k, cluster, "certificate-authority", "certificate authority file", &k->ca_pem,
                      &k->ca_pem_len, err)) != 0)
        goto out;
    k->opts.insecure = kc_bool(json_object_get(cluster, "insecure-skip-tls-verify"));
    k->opts.insecure_why = "insecure-skip-tls-verify: true in the kubeconfig";
    if (k->opts.insecure && k->ca_pem != NULL) {
        /* kubectl refuses this combination too: one of the two is a mistake. */
        rc = aicp_err_set(err, AICP_EINVAL,
                          "%s: cluster %s: certificate-authority and insecure-skip-tls-verify "
                          "cannot both be set",
                          k->path, cname);
        goto out;
    }
    proxy = str_of(cluster, "proxy-url");
    if (proxy != NULL && (k->proxy = aicp_strdup(proxy)) == NULL)
        goto oom;

    if (uname == NULL) {
        user = NULL;
    } else if ((user = kc_find(root, "users", "user", uname)) == NULL) {
        rc = aicp_err_set(err, AICP_EINVAL, "%s: context %s: no user named \"%s\"", k->path,
                          k->context, uname);
        goto out;
    }
    if (user != NULL && json_object_get(user, "exec") != NULL) {
        rc = aicp_err_set(err, AICP_EINVAL,
                          "%s: user %s: exec credential plugins are not supported; use a token, "
                          "tokenFile or client certificate",
                          k->path, uname);
        goto out;
    }
    if (user != NULL && json_object_get(user, "auth-provider") != NULL) {
        rc = aicp_err_set(err, AICP_EINVAL,
                          "%s: user %s: auth-provider plugins are not supported; use a token, "
                          "tokenFile or client certificate",
                          k->path, uname);
        goto out;
    }
    if ((rc = kc_blob(k, user, "client-certificate", "client certificate", &k->cert_pem,
                      &k->cert_pem_len, err)) != 0 ||
        (rc = kc_blob(k, user, "client-key", "client key", &k->key_pem, &k->key_pem_len, err)) != 0)
        goto out;
    if ((k->cert_pem == NULL) != (k->key_pem == NULL)) {
        rc = aicp_err_set(err, AICP_EINVAL,
                          "%s: user %s: a client certificate needs both client-certificate and "
                          "client-key",
                          k->path, uname);
        goto out;
    }
    token = str_of(user, "token");
    token_file = str_of(user, "tokenFile");
    if (token != NULL && token[0] != '\0') {
        if ((k->token = aicp_strdup(token)) == NULL)
            goto oom;
    } else if (token_file != NULL && token_file[0] != '\0') {
        char *p = kc_path(k->path, token_file);
        if (p == NULL)
            goto oom;
        rc = aicp_read_file(&tok, &toklen, p, err);
        if (rc != 0)
            rc = aicp_err_set(err, AICP_EINVAL, "%s: user %s: cannot read tokenFile %s", k->path,
                              uname, p);
        free(p);
        if (rc != 0)
            goto out;
        while (toklen > 0 && (tok[toklen - 1] == '\n' || tok[toklen - 1] == '\r' ||
                              tok[toklen - 1] == ' ' || tok[toklen - 1] == '\t'))
            tok[--toklen] = '\0';
        k->token = tok;
        tok = NULL;
    } else if (str_of(user, "password") != NULL) {
        if ((k->username = aicp_strdup(str_of(user, "username") ? str_of(user, "username") : "")) ==
                NULL ||
            (k->password = aicp_strdup(str_of(user, "password"))) == NULL)
            goto oom;
    }
    if (k->token != NULL && strpbrk(k->token, "\r\n") != NULL) {
        rc = aicp_err_set(err, AICP_EINVAL, "%s: user %s: the token contains a line break", k->path,
                          uname);
        goto out;
    }
    rc = 0;
    goto out;
oom:
    rc = aicp_err_set(err, AICP_ENOMEM, "%s: out of memory", k->path);
out:
    free_blob(tok, tok != NULL ? strlen(tok) : 0);
    json_decref(root);
    return rc;
}

int aicp_kube_new(struct aicp_kube **out, struct aicp_http *http,
                  const struct aicp_kube_config *cfg, struct aicp_err *err)
{
    struct aicp_kube *k;
    int rc;

    *out = NULL;
    if (http == NULL)
        return aicp_err_set(err, AICP_EINVAL, "kubernetes client: no HTTPS client");
    if ((k = calloc(1, sizeof *k)) == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "kubernetes client: out of memory");
    k->http = http;
    pthread_mutex_init(&k->lock, NULL);
    if ((k->gvs = json_object()) == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "kubernetes client: out of memory");
        goto out;
    }
    if ((rc = kc_locate(&k->path, cfg != NULL ? cfg->kubeconfig : NULL, err)) != 0 ||
        (rc = kc_load(k, cfg != NULL ? cfg->context : NULL, err)) != 0)
        goto out;
    k->opts.ca_pem = k->ca_pem;
    k->opts.ca_pem_len = k->ca_pem_len;
    k->opts.cert_pem = k->cert_pem;
    k->opts.cert_pem_len = k->cert_pem_len;
    k->opts.key_pem = k->key_pem;
    k->opts.key_pem_len = k->key_pem_len;
    k->opts.bearer_token = k->token;
    k->opts.username = k->username;
    k->opts.password = k->password;
    k->opts.proxy = k->proxy;
    /* The API server's own limits: priority-and-fairness answers 429 with
     * Retry-After (usually 1 s), which is honoured up to 5 minutes; other
     * transient errors back off 0.5, 1, 2, 4 s. */
    k->opts.max_attempts = 5;
    k->opts.backoff_initial_s = 0.5;
    k->opts.backoff_max_s = 10;
    k->opts.retry_after_max_s = 300;
    k->opts.timeout_ms = 60000;
    *out = k;
    return 0;
out:
    aicp_kube_free(k);
    return rc;
}

void aicp_kube_free(struct aicp_kube *k)
{
    if (k == NULL)
        return;
    free(k->path);
    free(k->context);
    free(k->server);
    free(k->ns);
    free(k->proxy);
    free(k->ca_pem);
    free(k->cert_pem);
    free_blob(k->key_pem, k->key_pem_len);
    aicp_free_secret(k->token);
    free(k->username);
    aicp_free_secret(k->password);
    json_decref(k->gvs);
    pthread_mutex_destroy(&k->lock);
    free(k);
}

const char *aicp_kube_server(const struct aicp_kube *k)
{
    return k->server;
}

const char *aicp_kube_default_namespace(const struct aicp_kube *k)
{
    return k->ns;
}

/* ---- the pool ----------------------------------------------------------- */

struct pool_entry {
    char *kubeconfig; /* the file, as located */
    char *context;    /* "" for the current-context */
    struct aicp_kube *k;
};

struct aicp_kube_pool {
    struct aicp_http *http;
    char *cli_kubeconfig;
    char *cli_context;
    pthread_mutex_t lock;
    struct pool_entry *e;
    size_t n;
};

int aicp_kube_pool_new(struct aicp_kube_pool **out, struct aicp_http *http,
                       const struct aicp_kube_config *cli)
{
    struct aicp_kube_pool *p = calloc(1, sizeof *p);

    *out = NULL;
    if (p == NULL)
        return AICP_ENOMEM;
    p->http = http;
    pthread_mutex_init(&p->lock, NULL);
    if (cli != NULL &&
        ((cli->kubeconfig != NULL && (p->cli_kubeconfig = aicp_strdup(cli->kubeconfig)) == NULL) ||
         (cli->context != NULL && (p->cli_context = aicp_strdup(cli->context)) == NULL))) {
        aicp_kube_pool_free(p);
        return AICP_ENOMEM;
    }
    *out = p;
    return 0;
}

void aicp_kube_pool_free(struct aicp_kube_pool *p)
{
    size_t i;

    if (p == NULL)
        return;
    for (i = 0; i < p->n; i++) {
        free(p->e[i].kubeconfig);
        free(p->e[i].context);
        aicp_kube_free(p->e[i].k);
    }
    free(p->e);
    free(p->cli_kubeconfig);
    free(p->cli_context);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

int aicp_kube_pool_get(struct aicp_kube_pool *p, const char *kubeconfig, const char *context,
                       struct aicp_kube **out, struct aicp_err *err)
{
    struct aicp_kube_config cfg;
    struct pool_entry *grown;
    char *file = NULL, *ctx = NULL;
    size_t i;
    int rc;

    *out = NULL;
    /* The command line wins over a module's or a site file's choice. */
    if (p->cli_kubeconfig != NULL)
        kubeconfig = p->cli_kubeconfig;
    if (p->cli_context != NULL)
        context = p->cli_context;
    if ((rc = kc_locate(&file, kubeconfig, err)) != 0)
        return rc;
    if ((ctx = aicp_strdup(context != NULL ? context : "")) == NULL) {
        free(file);
        return aicp_err_set(err, AICP_ENOMEM, "kubernetes clients: out of memory");
    }
    pthread_mutex_lock(&p->lock);
    for (i = 0; i < p->n; i++) {
        if (strcmp(p->e[i].kubeconfig, file) == 0 && strcmp(p->e[i].context, ctx) == 0) {
            *out = p->e[i].k;
            goto out;
        }
    }
    cfg = (struct aicp_kube_config){.kubeconfig = file, .context = ctx[0] != '\0' ? ctx : NULL};
    if ((grown = realloc(p->e, (p->n + 1) * sizeof *grown)) == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "kubernetes clients: out of memory");
        goto out;
    }
    p->e = grown;
    if ((rc = aicp_kube_new(&p->e[p->n].k, p->http, &cfg, err)) != 0)
        goto out;
    p->e[p->n].kubeconfig = file;
    p->e[p->n].context = ctx;
    *out = p->e[p->n].k;
    p->n++;
    file = ctx = NULL;
out:
    pthread_mutex_unlock(&p->lock);
    free(file);
    free(ctx);
    return rc;
}
