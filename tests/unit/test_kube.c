/* Unit tests for agent/kube.c and agent/kube_config.c. Pure tests (drift, field paths, ref_of,
 * kubeconfig parsing of files written to a temp dir, the client pool) need
 * nothing; live tests run the client against the fake API server
 * tests/fakes/kube_apiserver.py over real TLS, with a throw-away CA and
 * server certificate made by the openssl CLI, and skip (never pass) when
 * python3, openssl or the fake is missing. The bearer token carries the
 * canary AICP-CANARY-7f3e9b2c and is never printed: the suite's scan catches
 * a leak into any output. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "err.h"
#include "http.h"
#include "kube.h"
#include "util.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define CANARY "AICP-CANARY-7f3e9b2c"
#define TOKEN "tok-" CANARY

struct server {
    pid_t pid;
    int in_fd; /* its stdin: closing it stops the server */
    int port;
};

struct fixture {
    int live;        /* the fake is running */
    const char *why; /* why not */
    char dir[64];
    char ca[128], srv_cert[128], srv_key[128], other_ca[128], tokfile[128];
    char kubeconfig[128];
    struct server srv;
    struct aicp_http *http;
    struct aicp_kube *k;
    double slept[16];
    int nslept;
    int said;  /* the skip reason was printed */
    int nwarn; /* warnings an insecure client gave */
    char lastwarn[512];
};

static struct fixture fx;

/* ---- process and file helpers ------------------------------------------- */

static int run_quiet(const char *const argv[])
{
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int st, rc;

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0 || waitpid(pid, &st, 0) < 0)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *srcdir(void)
{
    const char *s = getenv("top_srcdir");

    return s != NULL && s[0] != '\0' ? s : AICP_SRCDIR;
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rm_tree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static char *b64(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(4 * ((n + 2) / 3) + 1);

    assert_non_null(out);
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
    return out;
}

/* ---- pure tests: ref_of, field paths ------------------------------------ */

static void t_ref_of(void **state)
{
    struct aicp_kube_ref ref;
    struct aicp_err err = {0};
    json_t *m;

    (void)state;
    m = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "v1", "kind", "ConfigMap", "metadata",
                  "name", "x", "namespace", "ns1");
    assert_int_equal(aicp_kube_ref_of(&ref, m, &err), 0);
    assert_string_equal(ref.api_version, "v1");
    assert_string_equal(ref.kind, "ConfigMap");
    assert_string_equal(ref.name, "x");
    assert_string_equal(ref.namespace, "ns1");
    json_object_del(json_object_get(m, "metadata"), "namespace");
    assert_int_equal(aicp_kube_ref_of(&ref, m, &err), 0);
    assert_null(ref.namespace);
    json_object_del(json_object_get(m, "metadata"), "name");
    assert_int_equal(aicp_kube_ref_of(&ref, m, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "metadata.name"));
    json_decref(m);
    m = json_pack("{s:s, s:{s:s}}", "kind", "ConfigMap", "metadata", "name", "x");
    assert_int_equal(aicp_kube_ref_of(&ref, m, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "apiVersion"));
    json_decref(m);
    m = json_pack("{s:s, s:{s:s}}", "apiVersion", "v1", "metadata", "name", "x");
    assert_int_equal(aicp_kube_ref_of(&ref, m, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "kind"));
    json_decref(m);
    m = json_string("x");
    assert_int_equal(aicp_kube_ref_of(&ref, m, &err), AICP_EINVAL);
    json_decref(m);
}

static void t_field(void **state)
{
    json_t *o;
    const json_t *v;

    (void)state;
    o = json_loads("{\"status\": {\"phase\": \"Bound\", \"n\": 3},"
                   " \"metadata\": {\"annotations\": {\"storageclass.kubernetes.io/"
                   "is-default-class\": \"true\", \"a.b\": {\"c\": 1}}},"
                   " \"spec\": {\"containers\": [{\"name\": \"app\", \"image\": \"i:1\"},"
                   " {\"name\": \"side.car\", \"image\": \"s\"}], \"modes\": [\"RWX\", \"ROX\"]}}",
                   0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(aicp_kube_field(o, "status.phase")), "Bound");
    assert_int_equal(json_integer_value(aicp_kube_field(o, "status.n")), 3);
    assert_string_equal(
        json_string_value(aicp_kube_field(
            o, "metadata.annotations[storageclass.kubernetes.io/is-default-class]")),
        "true");
    assert_int_equal(json_integer_value(aicp_kube_field(o, "metadata.annotations[a.b].c")), 1);
    assert_string_equal(json_string_value(aicp_kube_field(o, "spec.containers[app].image")), "i:1");
    assert_string_equal(json_string_value(aicp_kube_field(o, "spec.containers[side.car].image")),
                        "s");
    assert_string_equal(json_string_value(aicp_kube_field(o, "spec.containers[1].image")), "s");
    assert_string_equal(json_string_value(aicp_kube_field(o, "spec.modes[0]")), "RWX");
    assert_string_equal(json_string_value(aicp_kube_field(o, "spec.modes.1")), "ROX");
    v = aicp_kube_field(o, "status");
    assert_true(json_is_object(v));
    assert_ptr_equal(aicp_kube_field(o, ""), o);
    assert_null(aicp_kube_field(o, "status.missing"));
    assert_null(aicp_kube_field(o, "status.phase.deeper"));
    assert_null(aicp_kube_field(o, "spec.containers[nope].image"));
    assert_null(aicp_kube_field(o, "spec.modes[7]"));
    assert_null(aicp_kube_field(o, "metadata.annotations[unterminated"));
    assert_null(aicp_kube_field(NULL, "a"));
    assert_null(aicp_kube_field(o, NULL));
    json_decref(o);
}

/* ---- pure tests: drift -------------------------------------------------- */

static json_t *J(const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &je);

    if (v == NULL)
        fail_msg("bad JSON in test: %s: %s", text, je.text);
    return v;
}

/* The drift of desired against live as a compact JSON string. */
static char *drift_of(const char *desired, const char *live)
{
    json_t *d = J(desired), *l = live != NULL ? J(live) : NULL, *fields = NULL;
    char *s;

    assert_int_equal(aicp_kube_drift(d, l, &fields), 0);
    assert_true(json_is_array(fields));
    s = json_dumps(fields, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(d);
    json_decref(l);
    json_decref(fields);
    return s;
}

#define ASSERT_DRIFT(desired, live, want)                                                          \
    do {                                                                                           \
        char *got_ = drift_of(desired, live);                                                      \
        assert_string_equal(got_, want);                                                           \
        free(got_);                                                                                \
    } while (0)

static void t_drift_converged(void **state)
{
    (void)state;
    /* A converged object as the server returns it: defaults, server
     * metadata, status and fields of other managers never count. */
    ASSERT_DRIFT(
        "{\"apiVersion\": \"storage.k8s.io/v1\", \"kind\": \"StorageClass\","
        " \"metadata\": {\"name\": \"fast\", \"annotations\": {\"storageclass.kubernetes.io/"
        "is-default-class\": \"true\"}},"
        " \"provisioner\": \"csi.trident.netapp.io\", \"parameters\": {\"backendType\": "
        "\"ontap-nas\"}, \"allowVolumeExpansion\": true, \"mountOptions\": [\"nfsvers=3\"]}",
        "{\"apiVersion\": \"storage.k8s.io/v1\", \"kind\": \"StorageClass\","
        " \"metadata\": {\"name\": \"fast\", \"uid\": \"u-1\", \"resourceVersion\": \"42\","
        " \"generation\": 1, \"creationTimestamp\": \"2024-01-01T00:00:00Z\", \"managedFields\": "
        "[{\"manager\": \"aicp\"}], \"annotations\": {\"storageclass.kubernetes.io/"
        "is-default-class\": \"true\", \"other\": \"x\"}, \"labels\": {\"l\": \"1\"}},"
        " \"provisioner\": \"csi.trident.netapp.io\", \"parameters\": {\"backendType\": "
        "\"ontap-nas\", \"fsType\": \"nfs\"}, \"allowVolumeExpansion\": true, \"reclaimPolicy\": "
        "\"Delete\", \"volumeBindingMode\": \"Immediate\", \"mountOptions\": [\"nfsvers=3\"]}",
        "[]");
    /* Status and server metadata in desired are ignored too. */
    ASSERT_DRIFT("{\"metadata\": {\"name\": \"a\", \"uid\": \"x\", \"resourceVersion\": \"1\"},"
                 " \"status\": {\"phase\": \"Bound\"}, \"kind\": \"K\", \"apiVersion\": \"v9\"}",
                 "{\"metadata\": {\"name\": \"a\", \"uid\": \"y\", \"resourceVersion\": \"7\"},"
                 " \"status\": {\"phase\": \"Pending\"}, \"kind\": \"K\", \"apiVersion\": \"v1\"}",
                 "[]");
}

static void t_drift_fields(void **state)
{
    (void)state;
    /* A changed nested scalar, a missing annotation with dots in its key. */
    ASSERT_DRIFT("{\"metadata\": {\"annotations\": {\"storageclass.kubernetes.io/"
                 "is-default-class\": \"true\"}}, \"spec\": {\"a\": {\"b\": \"x\"}}}",
                 "{\"metadata\": {\"annotations\": {}}, \"spec\": {\"a\": {\"b\": \"y\"}}}",
                 "[{\"path\":\"metadata.annotations[storageclass.kubernetes.io/"
                 "is-default-class]\",\"want\":\"true\"},"
                 "{\"have\":\"y\",\"path\":\"spec.a.b\",\"want\":\"x\"}]");
    /* The annotations map missing altogether: reported at the map. */
    ASSERT_DRIFT("{\"metadata\": {\"annotations\": {\"k\": \"v\"}}}", "{\"metadata\": {}}",
                 "[{\"path\":\"metadata.annotations\",\"want\":{\"k\":\"v\"}}]");
    /* Types: "1" is not 1, true is not "true"; 1 and 1.0 are the same number. */
    ASSERT_DRIFT("{\"a\": \"1\", \"b\": true, \"c\": 1, \"d\": 2.5}",
                 "{\"a\": 1, \"b\": \"true\", \"c\": 1.0, \"d\": 2.5}",
                 "[{\"have\":1,\"path\":\"a\",\"want\":\"1\"},"
                 "{\"have\":\"true\",\"path\":\"b\",\"want\":true}]");
    /* Quantities compare exactly as written. */
    ASSERT_DRIFT("{\"spec\": {\"resources\": {\"requests\": {\"storage\": \"10Ti\"}}}}",
                 "{\"spec\": {\"resources\": {\"requests\": {\"storage\": \"10Ti\"}}}}", "[]");
    ASSERT_DRIFT("{\"spec\": {\"resources\": {\"requests\": {\"storage\": \"10Ti\"}}}}",
                 "{\"spec\": {\"resources\": {\"requests\": {\"storage\": \"20Ti\"}}}}",
                 "[{\"have\":\"20Ti\",\"path\":\"spec.resources.requests.storage\","
                 "\"want\":\"10Ti\"}]");
    /* A map declared where live has a scalar. */
    ASSERT_DRIFT("{\"a\": {\"b\": 1}}", "{\"a\": \"s\"}",
                 "[{\"have\":\"s\",\"path\":\"a\",\"want\":{\"b\":1}}]");
    /* A null declared: in sync when live has nothing there. */
    ASSERT_DRIFT("{\"a\": null}", "{}", "[]");
    ASSERT_DRIFT("{\"a\": null}", "{\"a\": 3}", "[{\"have\":3,\"path\":\"a\",\"want\":null}]");
    /* Nothing live: everything is drift, reported once. */
    ASSERT_DRIFT("{\"a\": 1}", NULL, "[{\"path\":\"\",\"want\":{\"a\":1}}]");
}

static void t_drift_lists(void **state)
{
    (void)state;
    /* Named lists are matched by name, in any order; live's extra
     * elements and defaulted fields do not count. */
    ASSERT_DRIFT("{\"spec\": {\"containers\": [{\"name\": \"app\", \"image\": \"i:2\","
                 " \"env\": [{\"name\": \"A\", \"value\": \"1\"}]}]}}",
                 "{\"spec\": {\"containers\": [{\"name\": \"sidecar\", \"image\": \"s\"},"
                 " {\"name\": \"app\", \"image\": \"i:1\", \"imagePullPolicy\": \"IfNotPresent\","
                 " \"env\": [{\"name\": \"B\", \"value\": \"x\"}, {\"name\": \"A\", \"value\": "
                 "\"1\"}]}]}}",
                 "[{\"have\":\"i:1\",\"path\":\"spec.containers[app].image\",\"want\":\"i:2\"}]");
    /* A missing named element, and one whose name has a dot. */
    ASSERT_DRIFT("{\"c\": [{\"name\": \"a.b\", \"x\": 1}, {\"name\": \"z\"}]}",
                 "{\"c\": [{\"name\": \"a.b\", \"x\": 2}]}",
                 "[{\"have\":2,\"path\":\"c[a.b].x\",\"want\":1},"
                 "{\"path\":\"c[z]\",\"want\":{\"name\":\"z\"}}]");
    /* Atomic lists: order and length count, reported as the whole list. */
    ASSERT_DRIFT("{\"spec\": {\"accessModes\": [\"ReadOnlyMany\"]}}",
                 "{\"spec\": {\"accessModes\": [\"ReadOnlyMany\"]}}", "[]");
    ASSERT_DRIFT("{\"spec\": {\"accessModes\": [\"ReadOnlyMany\"]}}",
                 "{\"spec\": {\"accessModes\": [\"ReadWriteMany\", \"ReadOnlyMany\"]}}",
                 "[{\"have\":[\"ReadWriteMany\",\"ReadOnlyMany\"],\"path\":\"spec.accessModes\","
                 "\"want\":[\"ReadOnlyMany\"]}]");
    ASSERT_DRIFT("{\"m\": [\"a\", \"b\"]}", "{\"m\": [\"b\", \"a\"]}",
                 "[{\"have\":[\"b\",\"a\"],\"path\":\"m\",\"want\":[\"a\",\"b\"]}]");
    ASSERT_DRIFT("{\"m\": [\"a\"]}", "{}", "[{\"path\":\"m\",\"want\":[\"a\"]}]");
    /* Atomic lists of maps without names: compared element by element on
     * the declared fields (the server defaults protocol: TCP). */
    ASSERT_DRIFT("{\"ports\": [{\"containerPort\": 80}]}",
                 "{\"ports\": [{\"containerPort\": 80, \"protocol\": \"TCP\"}]}", "[]");
    ASSERT_DRIFT("{\"ports\": [{\"containerPort\": 80}]}",
                 "{\"ports\": [{\"containerPort\": 81, \"protocol\": \"TCP\"}]}",
                 "[{\"have\":[{\"containerPort\":81,\"protocol\":\"TCP\"}],\"path\":\"ports\","
                 "\"want\":[{\"containerPort\":80}]}]");
    /* A list declared where live has a map. */
    ASSERT_DRIFT("{\"c\": [{\"name\": \"a\"}]}", "{\"c\": {\"name\": \"a\"}}",
                 "[{\"have\":{\"name\":\"a\"},\"path\":\"c\",\"want\":[{\"name\":\"a\"}]}]");
}

/* ---- pure tests: kubeconfig --------------------------------------------- */

struct kcdir {
    char dir[64];
    char path[128];
};

static void kc_setup(struct kcdir *d)
{
    snprintf(d->dir, sizeof d->dir, "/tmp/aicp-test-kube-XXXXXX");
    assert_non_null(mkdtemp(d->dir));
    snprintf(d->path, sizeof d->path, "%s/config", d->dir);
}

static const char CA_TEXT[] =
    "-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n";

/* A kubeconfig with two contexts; the second's user is described by
 * user_yaml (indented under "user:"). */
static void write_kubeconfig(const char *path, const char *cluster_extra, const char *user_extra,
                             const char *current)
{
    char text[4096];

    snprintf(text, sizeof text,
             "apiVersion: v1\n"
             "kind: Config\n"
             "current-context: %s\n"
             "clusters:\n"
             "- name: c1\n"
             "  cluster:\n"
             "    server: https://127.0.0.1:6443/\n"
             "%s"
             "- name: c2\n"
             "  cluster:\n"
             "    server: https://k2.example:443\n"
             "    insecure-skip-tls-verify: true\n"
             "users:\n"
             "- name: u1\n"
             "  user:\n"
             "%s"
             "- name: u2\n"
             "  user:\n"
             "    token: " TOKEN "\n"
             "contexts:\n"
             "- name: one\n"
             "  context: {cluster: c1, user: u1, namespace: team-a}\n"
             "- name: two\n"
             "  context: {cluster: c2, user: u2}\n",
             current, cluster_extra, user_extra);
    write_file(path, text);
}

static void t_kubeconfig_basic(void **state)
{
    struct kcdir d;
    struct aicp_kube *k = NULL;
    struct aicp_kube_config cfg;
    struct aicp_err err = {0};
    struct aicp_http *http = NULL;
    char *ca64 = b64(CA_TEXT), cluster[1024], ca[256], tok[256];

    (void)state;
    kc_setup(&d);
    assert_int_equal(aicp_http_new(&http, NULL, &err), 0);
    snprintf(cluster, sizeof cluster, "    certificate-authority-data: %s\n", ca64);
    write_kubeconfig(d.path, cluster, "    token: " TOKEN "\n", "one");
    cfg = (struct aicp_kube_config){.kubeconfig = d.path};
    assert_int_equal(aicp_kube_new(&k, http, &cfg, &err), 0);
    assert_string_equal(aicp_kube_server(k), "https://127.0.0.1:6443"); /* no trailing slash */
    assert_string_equal(aicp_kube_default_namespace(k), "team-a");
    aicp_kube_free(k);
    /* A named context; no namespace there means "default". */
    cfg.context = "two";
    assert_int_equal(aicp_kube_new(&k, http, &cfg, &err), 0);
    assert_string_equal(aicp_kube_server(k), "https://k2.example:443");
    assert_string_equal(aicp_kube_default_namespace(k), "default");
    aicp_kube_free(k);
    /* No such context: named, with the ones there are. */
    cfg.context = "three";
    assert_int_equal(aicp_kube_new(&k, http, &cfg, &err), AICP_EINVAL);
    assert_null(k);
    assert_non_null(strstr(err.msg, d.path));
    assert_non_null(strstr(err.msg, "no context named \"three\""));
    assert_non_null(strstr(err.msg, "one, two"));
    /* A relative certificate-authority is relative to the kubeconfig's
     * directory, and a tokenFile too. */
    snprintf(ca, sizeof ca, "%s/ca.pem", d.dir);
    write_file(ca, CA_TEXT);
    snprintf(tok, sizeof tok, "%s/token", d.dir);
    write_file(tok, TOKEN "\n");
    write_kubeconfig(d.path, "    certificate-authority: ca.pem\n", "    tokenFile: token\n",
                     "one");
    cfg.context = NULL;
    assert_int_equal(aicp_kube_new(&k, http, &cfg, &err), 0);
    aicp_kube_free(k);
    unlink(ca);
    assert_int_equal(aicp_kube_new(&k, http, &cfg, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, ca)); /* the resolved path is named */
    assert_non_null(strstr(err.msg, "certificate authority"));
    write_file(ca, CA_TEXT);
    unlink(tok);
    assert_int_equal(aicp_kube_new(&k, http, &cfg, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "tokenFile"));
    assert_null(strstr(err.msg, CANARY));
    /* Client certificate data must come with a key. */
    snprintf(cluster, sizeof cluster, "    client-certificate-data: %s\n", ca64);
    write_kubeconfig(d.path, "", cluster, "one");
    assert_int_equal(aicp_kube_new(&k, http, &cfg, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "client-key"));
    snprintf(cluster, sizeof cluster, "    client-certificate-data: %s\n    client-key-data: %s\n",
             ca64, ca64);
    write_kubeconfig(d.path, "", cluster, "one");
    assert_int_equal(aicp_kube_new(&k, http, &cfg, &err), 0);
    aicp_kube_free(k);
    /* Base64 that is not. */
    write_kubeconfig(d.path, "    certificate-authority-data: '!!notbase64!!'\n", "", "one");
    assert_int_equal(aicp_kube_new(&k, http, &cfg, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "certificate-authority-data is not valid base64"));
    free(ca64);
    aicp_http_free(http);
    rm_tree(d.dir);
}

static void t_kubeconfig_refused(void **state)
{
    struct kcdir d;
    struct aicp_kube *k = NULL;
    struct aicp_kube_config cfg;
    struct aicp_err err = {0};
    struct aicp_http *http = NULL;

    (void)state;
    kc_setup(&d);
    assert_int_equal(aicp_http_new(&http, NULL, &err), 0);
    cfg = (struct aicp_kube_config){.kubeconfig = d.path};
    write_kubeconfig(d.path, "",
                     "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
                     "      command: aws\n",
                     "one");
    assert_int_equal(aicp_kube_new(&k, http, &cfg, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "exec credential plugins are not supported"));
    assert_non_null(strstr(err.msg, "u1"));
    write_kubeconfig(d.path, "", "    auth-provider: {name: gcp}\n", "one");
    assert_int_equal(aicp_kube_new(&k, http, &cfg, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "auth-provider"));
    /* insecure-skip-tls-verify with a CA: one of them is a mistake. */
    write_kubeconfig(d.path,
                     "    insecure-skip-tls-verify: true\n"
                     "    certificate-authority-data: Zm9v\n",
                     "", "one");
    assert_int_equal(aicp_kube_new(&k, http, &cfg, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "insecure-skip-tls-verify"));
    /* No current context, none given. */
    write_kubeconfig(d.path, "", "", "''");
    assert_int_equal(aicp_kube_new(&k, http, &cfg, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "current-context"));
    /* A context naming a cluster that is not there. */
    write_file(d.path, "current-context: x\ncontexts:\n- name: x\n  context: {cluster: nope}\n");
    assert_int_equal(aicp_kube_new(&k, http, &cfg, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "no cluster named \"nope\""));
    /* Not YAML, not a mapping, not there. */
    write_file(d.path, "- just\n- a list\n");
    assert_int_equal(aicp_kube_new(&k, http, &cfg, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "not a kubeconfig"));
    cfg.kubeconfig = "/nonexistent/kubeconfig";
    assert_int_not_equal(aicp_kube_new(&k, http, &cfg, &err), 0);
    assert_non_null(strstr(err.msg, "/nonexistent/kubeconfig"));
    assert_null(k);
    aicp_http_free(http);
    rm_tree(d.dir);
}

static void t_kubeconfig_env_and_pool(void **state)
{
    struct kcdir d;
    struct aicp_kube *k = NULL, *k2 = NULL;
    struct aicp_kube_pool *pool = NULL;
    struct aicp_kube_config cli = {0};
    struct aicp_err err = {0};
    struct aicp_http *http = NULL;
    char env[512], other[160], *old = getenv("KUBECONFIG") ? strdup(getenv("KUBECONFIG")) : NULL;

    (void)state;
    kc_setup(&d);
    assert_int_equal(aicp_http_new(&http, NULL, &err), 0);
    write_kubeconfig(d.path, "", "    token: " TOKEN "\n", "one");
    snprintf(other, sizeof other, "%s/other", d.dir);
    write_file(other, "current-context: o\n"
                      "clusters: [{name: c, cluster: {server: 'https://other.example:6443'}}]\n"
                      "users: [{name: u, user: {}}]\n"
                      "contexts: [{name: o, context: {cluster: c, user: u}}]\n");
    /* KUBECONFIG: the first file of the list that exists. */
    snprintf(env, sizeof env, "%s/missing:%s:%s", d.dir, d.path, other);
    setenv("KUBECONFIG", env, 1);
    assert_int_equal(aicp_kube_new(&k, http, NULL, &err), 0);
    assert_string_equal(aicp_kube_server(k), "https://127.0.0.1:6443");
    aicp_kube_free(k);
    setenv("KUBECONFIG", "/nonexistent/a:/nonexistent/b", 1);
    assert_int_equal(aicp_kube_new(&k, http, NULL, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "KUBECONFIG"));

    /* The pool: one client per (kubeconfig, context), made once. */
    assert_int_equal(aicp_kube_pool_new(&pool, http, &cli), 0);
    assert_int_equal(aicp_kube_pool_get(pool, d.path, NULL, &k, &err), 0);
    assert_int_equal(aicp_kube_pool_get(pool, d.path, NULL, &k2, &err), 0);
    assert_ptr_equal(k, k2);
    assert_int_equal(aicp_kube_pool_get(pool, d.path, "two", &k2, &err), 0);
    assert_ptr_not_equal(k, k2);
    assert_string_equal(aicp_kube_server(k2), "https://k2.example:443");
    assert_int_equal(aicp_kube_pool_get(pool, other, NULL, &k2, &err), 0);
    assert_string_equal(aicp_kube_server(k2), "https://other.example:6443");
    assert_int_equal(aicp_kube_pool_get(pool, d.path, "nope", &k2, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "nope"));
    aicp_kube_pool_free(pool);
    /* The command line wins over a module's kubeconfig and context. */
    cli = (struct aicp_kube_config){.kubeconfig = d.path, .context = "two"};
    assert_int_equal(aicp_kube_pool_new(&pool, http, &cli), 0);
    assert_int_equal(aicp_kube_pool_get(pool, other, "o", &k, &err), 0);
    assert_string_equal(aicp_kube_server(k), "https://k2.example:443");
    aicp_kube_pool_free(pool);

    if (old != NULL)
        setenv("KUBECONFIG", old, 1);
    else
        unsetenv("KUBECONFIG");
    free(old);
    aicp_http_free(http);
    rm_tree(d.dir);
}

/* ---- live tests against tests/fakes/kube_apiserver.py -------------------- */

static void rec_sleep(void *ud, double s)
{
    struct fixture *f = ud;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};

    if (f->nslept < 16)
        f->slept[f->nslept] = s;
    f->nslept++;
    nanosleep(&ts, NULL);
}

static void rec_warn(void *ud, const char *msg)
{
    struct fixture *f = ud;

    snprintf(f->lastwarn, sizeof f->lastwarn, "%s", msg);
    f->nwarn++;
}

static int make_certs(struct fixture *f)
{
    char cakey[128], csr[128], okey[128];
    const char *ca[] = {"openssl",
                        "req",
                        "-x509",
                        "-newkey",
                        "ec",
                        "-pkeyopt",
                        "ec_paramgen_curve:P-256",
                        "-nodes",
                        "-keyout",
                        cakey,
                        "-out",
                        f->ca,
                        "-days",
                        "2",
                        "-subj",
                        "/CN=aicp-kube-test-ca",
                        NULL};
    const char *other[] = {"openssl",
                           "req",
                           "-x509",
                           "-newkey",
                           "ec",
                           "-pkeyopt",
                           "ec_paramgen_curve:P-256",
                           "-nodes",
                           "-keyout",
                           okey,
                           "-out",
                           f->other_ca,
                           "-days",
                           "2",
                           "-subj",
                           "/CN=aicp-other-ca",
                           NULL};
    const char *req[] = {"openssl",
                         "req",
                         "-newkey",
                         "ec",
                         "-pkeyopt",
                         "ec_paramgen_curve:P-256",
                         "-nodes",
                         "-keyout",
                         f->srv_key,
                         "-out",
                         csr,
                         "-subj",
                         "/CN=localhost",
                         "-addext",
                         "subjectAltName=DNS:localhost,IP:127.0.0.1",
                         NULL};
    const char *sign[] = {
        "openssl", "x509", "-req",        "-in", csr,     "-CA", f->ca,
        "-CAkey",  cakey,  "-set_serial", "2",   "-days", "2",   "-copy_extensions",
        "copyall", "-out", f->srv_cert,   NULL};

    snprintf(f->ca, sizeof f->ca, "%s/ca.pem", f->dir);
    snprintf(f->other_ca, sizeof f->other_ca, "%s/other-ca.pem", f->dir);
    snprintf(cakey, sizeof cakey, "%s/ca.key", f->dir);
    snprintf(okey, sizeof okey, "%s/other-ca.key", f->dir);
    snprintf(f->srv_cert, sizeof f->srv_cert, "%s/server.pem", f->dir);
    snprintf(f->srv_key, sizeof f->srv_key, "%s/server.key", f->dir);
    snprintf(csr, sizeof csr, "%s/server.csr", f->dir);
    return run_quiet(ca) == 0 && run_quiet(other) == 0 && run_quiet(req) == 0 &&
                   run_quiet(sign) == 0
               ? 0
               : -1;
}

/* Starts the fake; reads its "PORT n" line. */
static int fake_start(struct fixture *f, const char *script)
{
    const char *argv[] = {"python3", script,     "--cert",       f->srv_cert,
                          "--key",   f->srv_key, "--token-file", f->tokfile,
                          "--crds",  "trident",  "--controller", NULL};
    posix_spawn_file_actions_t fa;
    struct pollfd p;
    int in[2], out[2], rc;
    char buf[64];
    size_t n = 0;

    if (pipe(in) != 0 || pipe(out) != 0)
        return -1;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, in[1]);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    rc = posix_spawnp(&f->srv.pid, "python3", &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    if (rc != 0) {
        close(in[1]);
        close(out[0]);
        f->srv.pid = 0;
        return -1;
    }
    f->srv.in_fd = in[1];
    fcntl(f->srv.in_fd, F_SETFD, FD_CLOEXEC);
    rc = -1;
    p = (struct pollfd){.fd = out[0], .events = POLLIN};
    while (n < sizeof buf - 1 && poll(&p, 1, 20000) == 1) {
        if (read(out[0], buf + n, 1) != 1)
            break;
        if (buf[n] == '\n') {
            buf[n] = '\0';
            if (strncmp(buf, "PORT ", 5) == 0)
                f->srv.port = (int)strtol(buf + 5, NULL, 10);
            rc = f->srv.port > 0 ? 0 : -1;
            break;
        }
        n++;
    }
    close(out[0]);
    return rc;
}

static void fake_stop(struct server *s)
{
    int st, i;

    if (s->pid <= 0)
        return;
    close(s->in_fd);
    for (i = 0; i < 100; i++) {
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            return;
        }
        usleep(50000);
    }
    kill(s->pid, SIGTERM);
    waitpid(s->pid, &st, 0);
    s->pid = 0;
}

/* A kubeconfig for the fake with the given token and CA file name
 * (relative to the kubeconfig's directory). */
static void live_kubeconfig(struct fixture *f, const char *path, const char *token,
                            const char *ca_name)
{
    char text[1024];

    snprintf(text, sizeof text,
             "apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
             "clusters:\n- name: fake\n  cluster:\n    server: https://127.0.0.1:%d\n"
             "    certificate-authority: %s\n"
             "users:\n- name: me\n  user:\n    token: %s\n"
             "contexts:\n- name: fake\n  context: {cluster: fake, user: me}\n",
             f->srv.port, ca_name, token);
    write_file(path, text);
}

static int live_setup(void **state)
{
    struct fixture *f = &fx;
    const char *py[] = {"python3", "-c", "import ssl", NULL};
    const char *ossl[] = {"openssl", "version", NULL};
    struct aicp_http_hooks hooks = {.sleep = rec_sleep, .sleep_ud = f};
    struct aicp_kube_config cfg;
    struct aicp_err err = {0};
    char script[512];

    *state = f;
    signal(SIGPIPE, SIG_IGN);
    snprintf(script, sizeof script, "%s/tests/fakes/kube_apiserver.py", srcdir());
    if (access(script, R_OK) != 0) {
        f->why = "tests/fakes/kube_apiserver.py does not exist yet";
        return 0;
    }
    if (run_quiet(py) != 0 || run_quiet(ossl) != 0) {
        f->why = "python3 (with ssl) or openssl is missing";
        return 0;
    }
    snprintf(f->dir, sizeof f->dir, "/tmp/aicp-test-kube-XXXXXX");
    if (mkdtemp(f->dir) == NULL || make_certs(f) != 0) {
        f->why = "cannot make test certificates";
        return 0;
    }
    snprintf(f->tokfile, sizeof f->tokfile, "%.63s/token", f->dir);
    write_file(f->tokfile, TOKEN "\n");
    if (fake_start(f, script) != 0) {
        f->why = "the fake API server did not start (no PORT line)";
        return 0;
    }
    snprintf(f->kubeconfig, sizeof f->kubeconfig, "%.63s/kubeconfig", f->dir);
    live_kubeconfig(f, f->kubeconfig, TOKEN, "ca.pem");
    cfg = (struct aicp_kube_config){.kubeconfig = f->kubeconfig};
    if (aicp_http_new(&f->http, &hooks, &err) != 0 ||
        aicp_kube_new(&f->k, f->http, &cfg, &err) != 0)
        return -1;
    f->live = 1;
    return 0;
}

static int live_teardown(void **state)
{
    struct fixture *f = *state;

    fake_stop(&f->srv);
    aicp_kube_free(f->k);
    aicp_http_free(f->http);
    if (f->dir[0] != '\0')
        rm_tree(f->dir);
    return 0;
}

#define LIVE(state)                                                                                \
    struct fixture *f = *(state);                                                                  \
    if (!f->live) {                                                                                \
        if (!f->said++)                                                                            \
            fprintf(stderr, "SKIP live kube tests: %s\n", f->why ? f->why : "no fake");            \
        skip();                                                                                    \
        return;                                                                                    \
    }                                                                                              \
    f->nslept = 0

/* A request to the fake's control endpoints (no auth). */
static json_t *ctl(struct fixture *f, const char *method, const char *path, json_t *body)
{
    struct aicp_http_opts o = {.ca_file = f->ca};
    struct aicp_http_resp r = {0};
    struct aicp_err err = {0};
    char url[256];
    struct aicp_http_req req = {
        .method = method, .url = url, .json = body, .parse_json = 1, .retry_unsafe = 0};
    json_t *out;

    snprintf(url, sizeof url, "https://127.0.0.1:%d%s", f->srv.port, path);
    if (aicp_http_request(f->http, &o, &req, &r, &err) != 0)
        fail_msg("%s %s: %s", method, path, err.msg);
    out = json_incref(r.json);
    aicp_http_resp_free(&r);
    json_decref(body);
    return out;
}

/* The fake's request log from index `from` on (new reference). */
static json_t *requests_since(struct fixture *f, size_t from)
{
    json_t *all = ctl(f, "GET", "/_fake/requests", NULL), *out = json_array();
    size_t i;

    for (i = from; i < json_array_size(all); i++)
        json_array_append(out, json_array_get(all, i));
    json_decref(all);
    return out;
}

static size_t nrequests(struct fixture *f)
{
    json_t *all = ctl(f, "GET", "/_fake/requests", NULL);
    size_t n = json_array_size(all);

    json_decref(all);
    return n;
}

static int count(const json_t *log, const char *method, const char *path)
{
    const json_t *r;
    size_t i;
    int n = 0;

    json_array_foreach(log, i, r)
    {
        const char *m = json_string_value(json_object_get(r, "method"));
        const char *p = json_string_value(json_object_get(r, "path"));
        if (m != NULL && p != NULL && strcmp(m, method) == 0 && strcmp(p, path) == 0)
            n++;
    }
    return n;
}

static json_t *cm(const char *name, const char *key, const char *value)
{
    return json_pack("{s:s, s:s, s:{s:s}, s:{s:s}}", "apiVersion", "v1", "kind", "ConfigMap",
                     "metadata", "name", name, "data", key, value);
}

static const char *rv_of(const json_t *o)
{
    return json_string_value(aicp_kube_field(o, "metadata.resourceVersion"));
}

static void t_live_discovery(void **state)
{
    LIVE(state);
    struct aicp_kube *k = NULL;
    struct aicp_kube_config cfg = {.kubeconfig = f->kubeconfig};
    struct aicp_kube_resource r;
    struct aicp_err err = {0};
    size_t from = nrequests(f);
    json_t *log;

    assert_int_equal(aicp_kube_new(&k, f->http, &cfg, &err), 0);
    assert_int_equal(aicp_kube_resolve(k, "v1", "ConfigMap", &r, &err), 0);
    assert_string_equal(r.group, "");
    assert_string_equal(r.version, "v1");
    assert_string_equal(r.plural, "configmaps");
    assert_true(r.namespaced);
    assert_int_equal(aicp_kube_resolve(k, "v1", "Namespace", &r, &err), 0);
    assert_false(r.namespaced);
    assert_int_equal(aicp_kube_resolve(k, "v1", "PersistentVolumeClaim", &r, &err), 0);
    assert_string_equal(r.plural, "persistentvolumeclaims");
    assert_true(r.has_status);
    assert_int_equal(aicp_kube_resolve(k, "storage.k8s.io/v1", "StorageClass", &r, &err), 0);
    assert_string_equal(r.group, "storage.k8s.io");
    assert_string_equal(r.plural, "storageclasses");
    assert_false(r.namespaced);
    assert_int_equal(aicp_kube_resolve(k, "batch/v1", "Job", &r, &err), 0);
    assert_string_equal(r.plural, "jobs");
    assert_int_equal(aicp_kube_resolve(k, "trident.netapp.io/v1", "TridentBackendConfig", &r, &err),
                     0);
    assert_string_equal(r.group, "trident.netapp.io");
    assert_string_equal(r.plural, "tridentbackendconfigs");
    assert_true(r.namespaced);
    assert_true(r.has_status);
    assert_int_equal(aicp_kube_resolve(k, "v1", "ConfigMap", &r, &err), 0);
    /* One round: /api and /apis once, each group version once. */
    log = requests_since(f, from);
    assert_int_equal(count(log, "GET", "/api"), 1);
    assert_int_equal(count(log, "GET", "/apis"), 1);
    assert_int_equal(count(log, "GET", "/api/v1"), 1);
    assert_int_equal(count(log, "GET", "/apis/storage.k8s.io/v1"), 1);
    assert_int_equal(count(log, "GET", "/apis/trident.netapp.io/v1"), 1);
    json_decref(log);
    /* Unknown kinds and groups. */
    assert_int_equal(aicp_kube_resolve(k, "v1", "NoSuchKind", &r, &err), AICP_ENOTFOUND);
    assert_non_null(strstr(err.msg, "no kind NoSuchKind in v1"));
    assert_int_equal(aicp_kube_resolve(k, "nosuch.example.com/v1", "Thing", &r, &err),
                     AICP_ENOTFOUND);
    assert_non_null(strstr(err.msg, "is the CRD installed?"));
    aicp_kube_free(k);
}

struct resolver {
    struct aicp_kube *k;
    int rc;
};

static void *resolve_many(void *ud)
{
    static const char *const kinds[][2] = {{"v1", "ConfigMap"},
                                           {"storage.k8s.io/v1", "StorageClass"},
                                           {"batch/v1", "Job"},
                                           {"trident.netapp.io/v1", "TridentBackendConfig"},
                                           {"v1", "Secret"}};
    struct resolver *r = ud;
    struct aicp_kube_resource res;
    struct aicp_err err = {0};
    size_t i;

    for (i = 0; i < sizeof kinds / sizeof kinds[0] && r->rc == 0; i++)
        r->rc = aicp_kube_resolve(r->k, kinds[i][0], kinds[i][1], &res, &err);
    return NULL;
}

/* Worker threads share one client: discovery is still one round. */
static void t_live_threads(void **state)
{
    LIVE(state);
    struct aicp_kube *k = NULL;
    struct aicp_kube_config cfg = {.kubeconfig = f->kubeconfig};
    struct aicp_err err = {0};
    struct resolver r[8];
    pthread_t th[8];
    size_t from = nrequests(f), i;
    json_t *log;

    assert_int_equal(aicp_kube_new(&k, f->http, &cfg, &err), 0);
    for (i = 0; i < 8; i++) {
        r[i] = (struct resolver){.k = k};
        assert_int_equal(pthread_create(&th[i], NULL, resolve_many, &r[i]), 0);
    }
    for (i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(r[i].rc, 0);
    }
    log = requests_since(f, from);
    assert_int_equal(count(log, "GET", "/api"), 1);
    assert_int_equal(count(log, "GET", "/apis"), 1);
    assert_int_equal(count(log, "GET", "/api/v1"), 1);
    assert_int_equal(count(log, "GET", "/apis/batch/v1"), 1);
    assert_int_equal(count(log, "GET", "/apis/trident.netapp.io/v1"), 1);
    assert_int_equal(json_array_size(log), 6);
    json_decref(log);
    aicp_kube_free(k);
}

static void t_live_cycle(void **state)
{
    LIVE(state);
    struct aicp_kube_ref ref = {.api_version = "v1", .kind = "ConfigMap", .name = "cycle"};
    struct aicp_err err = {0};
    json_t *obj = NULL, *res = NULL, *res2 = NULL, *m = cm("cycle", "a", "1"), *patch, *log,
           *items = NULL, *drift = NULL;
    size_t from;
    char *rv1;
    int existed = -1;

    assert_int_equal(aicp_kube_get(f->k, &ref, &obj, &err), 0);
    assert_null(obj);
    from = nrequests(f);
    assert_int_equal(aicp_kube_apply(f->k, m, 0, &res, &err), 0);
    assert_non_null(res);
    assert_string_equal(json_string_value(aicp_kube_field(res, "data.a")), "1");
    assert_string_equal(json_string_value(aicp_kube_field(res, "metadata.namespace")), "default");
    rv1 = strdup(rv_of(res));
    log = requests_since(f, from);
    assert_int_equal(count(log, "PATCH", "/api/v1/namespaces/default/configmaps/cycle"), 1);
    {
        const json_t *r0 = json_array_get(log, json_array_size(log) - 1);
        char *dump = json_dumps(r0, JSON_COMPACT);
        assert_non_null(strstr(dump, "application/apply-patch+yaml"));
        assert_non_null(strstr(dump, "fieldManager"));
        assert_non_null(strstr(dump, "aicp"));
        assert_null(strstr(dump, CANARY));
        free(dump);
    }
    json_decref(log);
    assert_int_equal(aicp_kube_get(f->k, &ref, &obj, &err), 0);
    assert_non_null(obj);
    assert_int_equal(aicp_kube_drift(m, obj, &drift), 0);
    assert_int_equal(json_array_size(drift), 0);
    json_decref(drift);
    json_decref(obj);
    /* The same apply again: no change, and (as on a real server) the
     * resourceVersion stays. */
    assert_int_equal(aicp_kube_apply(f->k, m, 0, &res2, &err), 0);
    assert_string_equal(rv_of(res2), rv1);
    json_decref(res2);
    /* Merge patch of a field aicp does not apply. */
    patch = json_pack("{s:{s:s}}", "data", "b", "2");
    assert_int_equal(aicp_kube_merge_patch(f->k, &ref, patch, 0, &res2, &err), 0);
    assert_string_equal(json_string_value(aicp_kube_field(res2, "data.b")), "2");
    assert_string_equal(json_string_value(aicp_kube_field(res2, "data.a")), "1");
    json_decref(res2);
    json_decref(patch);
    /* List with a label selector. */
    json_object_set_new(json_object_get(m, "metadata"), "labels",
                        json_pack("{s:s}", "app", "cycle"));
    assert_int_equal(aicp_kube_apply(f->k, m, 0, NULL, &err), 0);
    assert_int_equal(aicp_kube_list(f->k, "v1", "ConfigMap", "default", "app=cycle", &items, &err),
                     0);
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(json_string_value(aicp_kube_field(json_array_get(items, 0), "kind")),
                        "ConfigMap");
    json_decref(items);
    assert_int_equal(aicp_kube_list(f->k, "v1", "ConfigMap", "default", "app=none", &items, &err),
                     0);
    assert_int_equal(json_array_size(items), 0);
    json_decref(items);
    /* Delete, then delete again. */
    assert_int_equal(aicp_kube_delete(f->k, &ref, NULL, 0, 5, &existed, &err), 0);
    assert_int_equal(existed, 1);
    assert_int_equal(aicp_kube_get(f->k, &ref, &obj, &err), 0);
    assert_null(obj);
    assert_int_equal(aicp_kube_delete(f->k, &ref, "Foreground", 0, 0, &existed, &err), 0);
    assert_int_equal(existed, 0);
    assert_int_equal(aicp_kube_delete(f->k, &ref, "Sideways", 0, 0, &existed, &err), AICP_EINVAL);
    free(rv1);
    json_decref(res);
    json_decref(m);
}

static void t_live_dry_run(void **state)
{
    LIVE(state);
    struct aicp_kube_ref ref = {.api_version = "v1", .kind = "ConfigMap", .name = "dry"};
    struct aicp_kube_ref sref = {
        .api_version = "storage.k8s.io/v1", .kind = "StorageClass", .name = "dry-sc"};
    struct aicp_err err = {0};
    json_t *obj = NULL, *res = NULL, *m = cm("dry", "a", "1"), *sc;
    int existed = -1;

    assert_int_equal(aicp_kube_apply(f->k, m, AICP_KUBE_DRY_RUN, &res, &err), 0);
    assert_non_null(res);
    assert_string_equal(json_string_value(aicp_kube_field(res, "data.a")), "1");
    assert_int_equal(aicp_kube_get(f->k, &ref, &obj, &err), 0);
    assert_null(obj);
    json_decref(res);
    /* Cluster-scoped: a namespace in the manifest is not sent. */
    sc = json_pack("{s:s, s:s, s:{s:s, s:s}, s:s}", "apiVersion", "storage.k8s.io/v1", "kind",
                   "StorageClass", "metadata", "name", "dry-sc", "namespace", "default",
                   "provisioner", "csi.trident.netapp.io");
    assert_int_equal(aicp_kube_apply(f->k, sc, AICP_KUBE_DRY_RUN, &res, &err), 0);
    json_decref(res);
    assert_int_equal(aicp_kube_get(f->k, &sref, &obj, &err), 0);
    assert_null(obj);
    /* A dry-run delete of something real leaves it there. */
    assert_int_equal(aicp_kube_apply(f->k, m, 0, NULL, &err), 0);
    assert_int_equal(aicp_kube_delete(f->k, &ref, NULL, AICP_KUBE_DRY_RUN, 2, &existed, &err), 0);
    assert_int_equal(existed, 1);
    assert_int_equal(aicp_kube_get(f->k, &ref, &obj, &err), 0);
    assert_non_null(obj);
    json_decref(obj);
    assert_int_equal(aicp_kube_delete(f->k, &ref, NULL, 0, 2, NULL, &err), 0);
    json_decref(sc);
    json_decref(m);
}

static void t_live_invalid(void **state)
{
    LIVE(state);
    struct aicp_err err = {0};
    json_t *pvc = json_pack("{s:s, s:s, s:{s:s}, s:{s:{s:{s:s}}}}", "apiVersion", "v1", "kind",
                            "PersistentVolumeClaim", "metadata", "name", "bad-pvc", "spec",
                            "resources", "requests", "storage", "1Gi");
    json_t *res = NULL, *m;
    int rc;

    rc = aicp_kube_apply(f->k, pvc, 0, &res, &err);
    assert_int_not_equal(rc, 0);
    assert_null(res);
    assert_true(aicp_startswith(err.msg, "PersistentVolumeClaim/default/bad-pvc: apply: "));
    assert_null(strstr(err.msg, "HTTP 422")); /* the API's message, not the status line */
    assert_non_null(strstr(err.msg, "accessModes"));
    json_decref(pvc);
    /* A name that cannot be a path segment never leaves the client. */
    m = cm("../x", "a", "1");
    assert_int_equal(aicp_kube_apply(f->k, m, 0, NULL, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "not a valid object name"));
    json_decref(m);
    m = cm("x", "a", "1");
    json_object_set_new(json_object_get(m, "metadata"), "namespace", json_string("Bad_NS"));
    assert_int_equal(aicp_kube_apply(f->k, m, 0, NULL, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "namespace"));
    json_decref(m);
    /* A namespace that does not exist: the API's 404 message. */
    m = cm("x", "a", "1");
    json_object_set_new(json_object_get(m, "metadata"), "namespace", json_string("nowhere"));
    assert_int_not_equal(aicp_kube_apply(f->k, m, 0, NULL, &err), 0);
    assert_true(aicp_startswith(err.msg, "ConfigMap/nowhere/x: apply: "));
    assert_non_null(strstr(err.msg, "nowhere"));
    json_decref(m);
}

/* Applies as another field manager, with force, through the API. */
static void apply_as_other(struct fixture *f, const char *name, const char *key, const char *val)
{
    struct aicp_http_opts o = {.ca_file = f->ca, .bearer_token = TOKEN};
    struct aicp_http_resp r = {0};
    struct aicp_err err = {0};
    char url[256];
    const char *hdr[] = {"Content-Type: application/apply-patch+yaml", NULL};
    json_t *m = cm(name, key, val);
    struct aicp_http_req req = {.method = "PATCH", .url = url, .json = m, .headers = hdr};

    snprintf(url, sizeof url,
             "https://127.0.0.1:%d/api/v1/namespaces/default/configmaps/%s"
             "?fieldManager=other&force=true",
             f->srv.port, name);
    if (aicp_http_request(f->http, &o, &req, &r, &err) != 0)
        fail_msg("apply as other: %s", err.msg);
    aicp_http_resp_free(&r);
    json_decref(m);
}

static void t_live_conflict(void **state)
{
    LIVE(state);
    struct aicp_kube_ref ref = {.api_version = "v1", .kind = "ConfigMap", .name = "conf"};
    struct aicp_err err = {0};
    json_t *m = cm("conf", "a", "1"), *obj = NULL, *log;
    size_t from;

    assert_int_equal(aicp_kube_apply(f->k, m, 0, NULL, &err), 0);
    apply_as_other(f, "conf", "a", "2");
    from = nrequests(f);
    assert_int_equal(aicp_kube_apply(f->k, m, 0, NULL, &err), AICP_EREMOTE);
    assert_true(aicp_startswith(err.msg, "ConfigMap/default/conf: apply: "));
    assert_non_null(strstr(err.msg, "conflict"));
    assert_non_null(strstr(err.msg, ".data.a (owned by field manager \"other\", Apply)"));
    assert_non_null(strstr(err.msg, "--force-conflicts"));
    assert_non_null(strstr(err.msg, "force: true"));
    log = requests_since(f, from);
    /* Not retried: the other manager's value would win again. */
    assert_int_equal(count(log, "PATCH", "/api/v1/namespaces/default/configmaps/conf"), 1);
    json_decref(log);
    /* The same in a dry run, with the conflicts for the caller. */
    {
        json_t *conf = NULL;
        assert_int_equal(aicp_kube_apply_report(f->k, m, AICP_KUBE_DRY_RUN, NULL, &conf, &err),
                         AICP_EREMOTE);
        assert_int_equal(json_array_size(conf), 1);
        assert_string_equal(json_string_value(aicp_kube_field(conf, "0.field")), ".data.a");
        assert_string_equal(json_string_value(aicp_kube_field(conf, "0.manager")), "other");
        assert_string_equal(json_string_value(aicp_kube_field(conf, "0.operation")), "Apply");
        json_decref(conf);
    }
    assert_int_equal(aicp_kube_apply(f->k, m, AICP_KUBE_FORCE, &obj, &err), 0);
    assert_string_equal(json_string_value(aicp_kube_field(obj, "data.a")), "1");
    json_decref(obj);
    /* aicp's own merge patch (an Update by "aicp") is no one else's: the
     * next apply that sets the field again takes it back (with force). */
    {
        json_t *patch = json_pack("{s:{s:s}}", "data", "a", "3");
        assert_int_equal(aicp_kube_merge_patch(f->k, &ref, patch, 0, NULL, &err), 0);
        json_decref(patch);
        from = nrequests(f);
        assert_int_equal(aicp_kube_apply(f->k, m, 0, &obj, &err), 0);
        assert_string_equal(json_string_value(aicp_kube_field(obj, "data.a")), "1");
        json_decref(obj);
        log = requests_since(f, from);
        assert_int_equal(count(log, "PATCH", "/api/v1/namespaces/default/configmaps/conf"), 2);
        json_decref(log);
    }
    assert_int_equal(aicp_kube_delete(f->k, &ref, NULL, 0, 2, NULL, &err), 0);
    json_decref(m);
}

/* Conflict answers read as the API server writes them. */
static void t_conflicts_of(void **state)
{
    json_t *st, *c;
    (void)state;

    st = json_loads(
        "{\"kind\": \"Status\", \"code\": 409, \"reason\": \"Conflict\", \"details\": {\"causes\": ["
        "{\"reason\": \"FieldManagerConflict\", \"message\": \"conflict with \\\"kubectl-patch\\\" "
        "using v1\", \"field\": \".data.epochs\"},"
        "{\"reason\": \"FieldManagerConflict\", \"message\": \"conflict with \\\"aicp\\\" using "
        "storage.k8s.io/v1 at 2026-01-01T00:00:00Z\", \"field\": "
        "\".metadata.annotations.storageclass.kubernetes.io/is-default-class\"},"
        "{\"reason\": \"FieldManagerConflict\", \"message\": \"conflict with \\\"helm\\\"\", "
        "\"field\": \".spec.x\"}]}}",
        0, NULL);
    assert_non_null(st);
    c = aicp_kube_conflicts_of(st);
    assert_int_equal(json_array_size(c), 3);
    assert_string_equal(json_string_value(aicp_kube_field(c, "0.manager")), "kubectl-patch");
    assert_string_equal(json_string_value(aicp_kube_field(c, "0.operation")), "Update");
    assert_string_equal(json_string_value(aicp_kube_field(c, "1.manager")), "aicp");
    assert_string_equal(json_string_value(aicp_kube_field(c, "2.manager")), "helm");
    assert_string_equal(json_string_value(aicp_kube_field(c, "2.operation")), "Apply");
    assert_false(aicp_kube_conflicts_own(c));
    json_array_remove(c, 2);
    json_array_remove(c, 0);
    assert_true(aicp_kube_conflicts_own(c));
    json_decref(c);
    /* A stale write (no causes) is no field conflict. */
    json_object_del(json_object_get(st, "details"), "causes");
    assert_null(aicp_kube_conflicts_of(st));
    json_decref(st);

    assert_true(aicp_kube_path_overlaps("data.epochs", ".data.epochs"));
    assert_true(aicp_kube_path_overlaps(
        "metadata.annotations[storageclass.kubernetes.io/is-default-class]",
        ".metadata.annotations.storageclass.kubernetes.io/is-default-class"));
    assert_true(aicp_kube_path_overlaps("spec.containers[app].image",
                                        ".spec.containers[name=\"app\"].image"));
    assert_true(aicp_kube_path_overlaps("spec.containers[app]", ".spec.containers[name=\"app\"].image"));
    assert_false(aicp_kube_path_overlaps("data.epoch", ".data.epochs"));
    assert_false(aicp_kube_path_overlaps("spec.containers[web].image",
                                         ".spec.containers[name=\"app\"].image"));
}

static int add_mine(json_t *obj, void *ud, struct aicp_err *err)
{
    json_t *data = json_object_get(obj, "data");

    (void)err;
    if (!json_is_object(data))
        json_object_set_new(obj, "data", data = json_object());
    json_object_set_new(data, "mine", json_string((const char *)ud));
    return 0;
}

static int refuse(json_t *obj, void *ud, struct aicp_err *err)
{
    (void)obj;
    (void)ud;
    return aicp_err_set(err, AICP_EINVAL, "refused by the test");
}

static void t_live_concurrent(void **state)
{
    LIVE(state);
    struct aicp_kube_ref ref = {.api_version = "v1", .kind = "ConfigMap", .name = "cw"};
    const char *path = "/api/v1/namespaces/default/configmaps/cw";
    struct aicp_err err = {0};
    json_t *m = cm("cw", "a", "0"), *obj = NULL, *log, *patch;
    size_t from;

    assert_int_equal(aicp_kube_apply(f->k, m, 0, NULL, &err), 0);
    /* Someone writes between our GET and our PUT: 409, read again, redo. */
    json_decref(ctl(f, "POST", "/_fake/concurrent_write",
                    json_pack("{s:s, s:{s:{s:s}}, s:i}", "path", path, "patch", "data", "other",
                              "x", "count", 1)));
    from = nrequests(f);
    assert_int_equal(aicp_kube_update(f->k, &ref, add_mine, (void *)"y", 0, &obj, &err), 0);
    json_decref(obj);
    log = requests_since(f, from);
    assert_int_equal(count(log, "PUT", path), 2);
    json_decref(log);
    assert_int_equal(aicp_kube_get(f->k, &ref, &obj, &err), 0);
    /* No lost update: both writers' fields are there. */
    assert_string_equal(json_string_value(aicp_kube_field(obj, "data.other")), "x");
    assert_string_equal(json_string_value(aicp_kube_field(obj, "data.mine")), "y");
    assert_string_equal(json_string_value(aicp_kube_field(obj, "data.a")), "0");
    json_decref(obj);
    /* A writer that never stops (two alternating values, so that every
     * write changes the object): bounded at 5 attempts. */
    json_decref(ctl(f, "POST", "/_fake/concurrent_write",
                    json_pack("{s:s, s:{s:{s:s}}, s:i}", "path", path, "patch", "data", "other",
                              "z1", "count", 10)));
    json_decref(ctl(f, "POST", "/_fake/concurrent_write",
                    json_pack("{s:s, s:{s:{s:s}}, s:i}", "path", path, "patch", "data", "other",
                              "z2", "count", 10)));
    from = nrequests(f);
    assert_int_equal(aicp_kube_update(f->k, &ref, add_mine, (void *)"w", 0, NULL, &err),
                     AICP_EREMOTE);
    assert_true(aicp_startswith(err.msg, "ConfigMap/default/cw: update: "));
    assert_non_null(strstr(err.msg, "(gave up after 5 attempts)"));
    log = requests_since(f, from);
    assert_int_equal(count(log, "PUT", path), 5);
    json_decref(log);
    json_decref(ctl(f, "POST", "/_fake/reset", NULL));
    /* A merge patch pinned to a stale resourceVersion: re-read, retried. */
    patch = json_pack("{s:{s:s}, s:{s:s}}", "metadata", "resourceVersion", "1", "data", "p", "q");
    assert_int_equal(aicp_kube_merge_patch(f->k, &ref, patch, 0, &obj, &err), 0);
    assert_string_equal(json_string_value(aicp_kube_field(obj, "data.p")), "q");
    json_decref(obj);
    json_decref(patch);
    assert_int_equal(aicp_kube_update(f->k, &ref, refuse, NULL, 0, NULL, &err), AICP_EINVAL);
    assert_non_null(strstr(err.msg, "ConfigMap/default/cw: update: refused by the test"));
    assert_int_equal(aicp_kube_delete(f->k, &ref, NULL, 0, 2, NULL, &err), 0);
    ref.name = "gone";
    assert_int_equal(aicp_kube_update(f->k, &ref, add_mine, (void *)"y", 0, NULL, &err),
                     AICP_ENOTFOUND);
    json_decref(m);
}

static void t_live_faults(void **state)
{
    LIVE(state);
    struct aicp_kube_ref ref = {.api_version = "v1", .kind = "ConfigMap", .name = "flt"};
    const char *path = "/api/v1/namespaces/default/configmaps/flt";
    struct aicp_err err = {0};
    json_t *m = cm("flt", "a", "1"), *obj = NULL, *log;
    double t0, dt;
    size_t from;

    assert_int_equal(aicp_kube_apply(f->k, m, 0, NULL, &err), 0);
    /* 429 with Retry-After: 1 waits at least a second, then succeeds. */
    json_decref(ctl(f, "POST", "/_fake/fault",
                    json_pack("{s:s, s:s, s:i, s:i, s:i}", "path_regex",
                              "^/api/v1/namespaces/default/configmaps/flt$", "method", "GET",
                              "status", 429, "retry_after", 1, "count", 1)));
    from = nrequests(f);
    t0 = aicp_now();
    assert_int_equal(aicp_kube_get(f->k, &ref, &obj, &err), 0);
    dt = aicp_now() - t0;
    assert_non_null(obj);
    json_decref(obj);
    assert_true(dt >= 1.0);
    assert_int_equal(f->nslept, 1);
    assert_true(f->slept[0] >= 1.0);
    log = requests_since(f, from);
    assert_int_equal(count(log, "GET", path), 2);
    json_decref(log);
    /* An apply (PATCH) is retried after 429 too: it is idempotent. */
    json_decref(ctl(f, "POST", "/_fake/fault",
                    json_pack("{s:s, s:s, s:i, s:i, s:i}", "path_regex",
                              "^/api/v1/namespaces/default/configmaps/flt$", "method", "PATCH",
                              "status", 429, "retry_after", 1, "count", 1)));
    f->nslept = 0;
    assert_int_equal(aicp_kube_apply(f->k, m, 0, NULL, &err), 0);
    assert_int_equal(f->nslept, 1);
    assert_true(f->slept[0] >= 1.0);
    /* 500 and a dropped connection: retried, with backoff. */
    json_decref(ctl(f, "POST", "/_fake/fault",
                    json_pack("{s:s, s:s, s:i, s:i}", "path_regex",
                              "^/api/v1/namespaces/default/configmaps/flt$", "method", "GET",
                              "status", 500, "count", 1)));
    from = nrequests(f);
    assert_int_equal(aicp_kube_get(f->k, &ref, &obj, &err), 0);
    assert_non_null(obj);
    json_decref(obj);
    log = requests_since(f, from);
    assert_int_equal(count(log, "GET", path), 2);
    json_decref(log);
    json_decref(ctl(f, "POST", "/_fake/fault",
                    json_pack("{s:s, s:s, s:b, s:i}", "path_regex",
                              "^/api/v1/namespaces/default/configmaps/flt$", "method", "GET",
                              "drop", 1, "count", 1)));
    assert_int_equal(aicp_kube_get(f->k, &ref, &obj, &err), 0);
    assert_non_null(obj);
    json_decref(obj);
    /* A 500 that persists: bounded, then the API's message. */
    json_decref(ctl(f, "POST", "/_fake/fault",
                    json_pack("{s:s, s:s, s:i, s:i}", "path_regex",
                              "^/api/v1/namespaces/default/configmaps/flt$", "method", "GET",
                              "status", 500, "count", 10)));
    from = nrequests(f);
    assert_int_not_equal(aicp_kube_get(f->k, &ref, &obj, &err), 0);
    assert_null(obj);
    assert_true(aicp_startswith(err.msg, "ConfigMap/default/flt: get: "));
    assert_non_null(strstr(err.msg, "(gave up after 3 attempts)"));
    log = requests_since(f, from);
    assert_int_equal(count(log, "GET", path), 3);
    json_decref(log);
    json_decref(ctl(f, "POST", "/_fake/reset", NULL));
    assert_int_equal(aicp_kube_delete(f->k, &ref, NULL, 0, 2, NULL, &err), 0);
    json_decref(m);
}

static void t_live_wait(void **state)
{
    LIVE(state);
    struct aicp_kube_ref ref = {
        .api_version = "trident.netapp.io/v1", .kind = "TridentBackendConfig", .name = "tbc-ok"};
    struct aicp_kube_wait w = {.field = "status.phase",
                               .value = "Bound",
                               .fail_field = "status.lastOperationStatus",
                               .fail_value = "Failed",
                               .timeout_s = 10,
                               .interval_s = 0.05};
    struct aicp_err err = {0};
    json_t *secret, *tbc, *obj = NULL, *m;
    double t0;

    secret = json_pack("{s:s, s:s, s:{s:s}, s:{s:s, s:s}}", "apiVersion", "v1", "kind", "Secret",
                       "metadata", "name", "tbc-creds", "stringData", "username", "vsadmin",
                       "password", "not-a-secret");
    assert_int_equal(aicp_kube_apply(f->k, secret, 0, NULL, &err), 0);
    tbc = json_pack("{s:s, s:s, s:{s:s}, s:{s:s, s:s, s:s, s:{s:s}}}", "apiVersion",
                    "trident.netapp.io/v1", "kind", "TridentBackendConfig", "metadata", "name",
                    "tbc-ok", "spec", "version", "1", "storageDriverName", "ontap-nas",
                    "managementLIF", "10.0.0.1", "credentials", "name", "tbc-creds");
    assert_int_equal(aicp_kube_apply(f->k, tbc, 0, NULL, &err), 0);
    assert_int_equal(aicp_kube_wait(f->k, &ref, &w, &obj, &err), 0);
    assert_string_equal(json_string_value(aicp_kube_field(obj, "status.phase")), "Bound");
    assert_non_null(aicp_kube_field(obj, "status.backendInfo.backendUUID"));
    json_decref(obj);
    /* Credentials that do not exist: it fails, and the wait says so at once. */
    json_object_set_new(json_object_get(tbc, "metadata"), "name", json_string("tbc-bad"));
    json_object_set_new(aicp_kube_field(tbc, "spec.credentials")
                            ? (json_t *)aicp_kube_field(tbc, "spec.credentials")
                            : NULL,
                        "name", json_string("missing-creds"));
    assert_int_equal(aicp_kube_apply(f->k, tbc, 0, NULL, &err), 0);
    ref.name = "tbc-bad";
    t0 = aicp_now();
    assert_int_equal(aicp_kube_wait(f->k, &ref, &w, NULL, &err), AICP_EFAILED);
    assert_true(aicp_now() - t0 < 5);
    assert_non_null(strstr(err.msg, "TridentBackendConfig/default/tbc-bad"));
    assert_non_null(strstr(err.msg, "status.lastOperationStatus is Failed"));
    /* A timeout says what it last saw. */
    m = cm("waiter", "a", "1");
    assert_int_equal(aicp_kube_apply(f->k, m, 0, NULL, &err), 0);
    ref = (struct aicp_kube_ref){.api_version = "v1", .kind = "ConfigMap", .name = "waiter"};
    w = (struct aicp_kube_wait){
        .field = "data.a", .value = "2", .timeout_s = 0.3, .interval_s = 0.05};
    assert_int_equal(aicp_kube_wait(f->k, &ref, &w, NULL, &err), AICP_ETIMEOUT);
    assert_non_null(strstr(err.msg, "data.a is 1 after 0.3 s"));
    w = (struct aicp_kube_wait){.condition = "Ready", .timeout_s = 0.2, .interval_s = 0.05};
    assert_int_equal(aicp_kube_wait(f->k, &ref, &w, NULL, &err), AICP_ETIMEOUT);
    assert_non_null(strstr(err.msg, "no condition Ready"));
    w = (struct aicp_kube_wait){
        .field = "data.a", .value = "1", .timeout_s = 1, .interval_s = 0.05};
    assert_int_equal(aicp_kube_wait(f->k, &ref, &w, NULL, &err), 0);
    assert_int_equal(aicp_kube_delete(f->k, &ref, NULL, 0, 2, NULL, &err), 0);
    assert_int_equal(aicp_kube_wait(f->k, &ref, &w, NULL, &err), AICP_ENOTFOUND);
    json_decref(m);
    json_decref(tbc);
    json_decref(secret);
}

static json_t *job(const char *name, const char *env_name, const char *env_value)
{
    return json_pack("{s:s, s:s, s:{s:s}, s:{s:{s:{s:s, s:[{s:s, s:s, s:[s], s:[{s:s, s:s}]}]}}}}",
                     "apiVersion", "batch/v1", "kind", "Job", "metadata", "name", name, "spec",
                     "template", "spec", "restartPolicy", "Never", "containers", "name", "main",
                     "image", "busybox", "command", "true", "env", "name", env_name, "value",
                     env_value);
}

static void t_live_job_logs(void **state)
{
    LIVE(state);
    struct aicp_kube_ref ref = {.api_version = "batch/v1", .kind = "Job", .name = "train"};
    struct aicp_kube_wait w = {
        .condition = "Complete", .fail_condition = "Failed", .timeout_s = 10, .interval_s = 0.05};
    struct aicp_err err = {0};
    json_t *j = job("train", "FAKE_LOG", "epoch 1 done\n"), *pods = NULL;
    const char *pod;
    char *text = NULL;

    assert_int_equal(aicp_kube_apply(f->k, j, 0, NULL, &err), 0);
    assert_int_equal(aicp_kube_wait(f->k, &ref, &w, NULL, &err), 0);
    assert_int_equal(aicp_kube_list(f->k, "v1", "Pod", "default", "job-name=train", &pods, &err),
                     0);
    assert_int_equal(json_array_size(pods), 1);
    pod = json_string_value(aicp_kube_field(json_array_get(pods, 0), "metadata.name"));
    assert_non_null(pod);
    assert_int_equal(aicp_kube_logs(f->k, NULL, pod, NULL, &text, &err), 0);
    assert_string_equal(text, "epoch 1 done\n");
    free(text);
    assert_int_equal(aicp_kube_logs(f->k, "default", pod, "main", &text, &err), 0);
    assert_string_equal(text, "epoch 1 done\n");
    free(text);
    assert_int_not_equal(aicp_kube_logs(f->k, "default", "no-such-pod", NULL, &text, &err), 0);
    assert_null(text);
    assert_true(aicp_startswith(err.msg, "Pod/default/no-such-pod: logs: "));
    json_decref(pods);
    assert_int_equal(aicp_kube_delete(f->k, &ref, "Foreground", 0, 5, NULL, &err), 0);
    json_decref(j);
    /* A failing Job: the wait stops at once with the reason. */
    j = job("train-fail", "FAKE_FAIL", "1");
    ref.name = "train-fail";
    assert_int_equal(aicp_kube_apply(f->k, j, 0, NULL, &err), 0);
    assert_int_equal(aicp_kube_wait(f->k, &ref, &w, NULL, &err), AICP_EFAILED);
    assert_non_null(strstr(err.msg, "Job/default/train-fail: condition Failed is True"));
    assert_non_null(strstr(err.msg, "BackoffLimitExceeded"));
    assert_int_equal(aicp_kube_delete(f->k, &ref, "Background", 0, 5, NULL, &err), 0);
    json_decref(j);
}

/* Discovery that failed is not asked again for every object of the run. */
static void t_live_discovery_remembered(void **state)
{
    LIVE(state);
    struct aicp_kube_resource res;
    struct aicp_kube_config cfg;
    struct aicp_kube *k = NULL;
    struct aicp_err err = {0};
    char path[160], first[sizeof err.msg];
    json_t *log;
    size_t from;

    snprintf(path, sizeof path, "%s/kc-memo", f->dir);
    live_kubeconfig(f, path, TOKEN, "ca.pem");
    cfg = (struct aicp_kube_config){.kubeconfig = path};
    assert_int_equal(aicp_kube_new(&k, f->http, &cfg, &err), 0);
    json_decref(ctl(f, "POST", "/_fake/fault",
                    json_pack("{s:s, s:s, s:i, s:i}", "path_regex", "^/api$", "method", "GET",
                              "status", 500, "count", 100)));
    from = nrequests(f);
    assert_int_not_equal(aicp_kube_resolve(k, "v1", "ConfigMap", &res, &err), 0);
    snprintf(first, sizeof first, "%s", err.msg);
    assert_non_null(strstr(first, "gave up after 3 attempts"));
    memset(&err, 0, sizeof err);
    assert_int_not_equal(aicp_kube_resolve(k, "v1", "Secret", &res, &err), 0);
    assert_string_equal(err.msg, first);
    log = requests_since(f, from);
    assert_int_equal(count(log, "GET", "/api"), 3);
    json_decref(log);
    json_decref(ctl(f, "POST", "/_fake/reset", NULL));
    aicp_kube_free(k);
}

static void t_live_tls_and_auth(void **state)
{
    LIVE(state);
    struct aicp_kube_ref ref = {.api_version = "v1", .kind = "ConfigMap", .name = "x"};
    struct aicp_kube *k = NULL;
    struct aicp_kube_config cfg;
    struct aicp_err err = {0};
    json_t *obj = NULL;
    char path[160];

    /* The server's CA is not the kubeconfig's: refused. */
    snprintf(path, sizeof path, "%s/kc-other-ca", f->dir);
    live_kubeconfig(f, path, TOKEN, "other-ca.pem");
    cfg = (struct aicp_kube_config){.kubeconfig = path};
    assert_int_equal(aicp_kube_new(&k, f->http, &cfg, &err), 0);
    assert_int_equal(aicp_kube_get(k, &ref, &obj, &err), AICP_EHOSTKEY);
    assert_null(obj);
    assert_non_null(strstr(err.msg, "not trusted"));
    /* Said in the kubeconfig's terms, not a module's. */
    assert_non_null(strstr(err.msg, "certificate-authority"));
    assert_non_null(strstr(err.msg, "insecure-skip-tls-verify"));
    assert_non_null(strstr(err.msg, path));
    assert_null(strstr(err.msg, "ca_file"));
    assert_null(strstr(err.msg, "validate_certs"));
    assert_null(strstr(err.msg, CANARY));
    aicp_kube_free(k);
    /* insecure-skip-tls-verify: honoured, with one warning per server. */
    {
        struct aicp_http *h = NULL;
        struct aicp_http_hooks hooks = {.warn = rec_warn, .warn_ud = f};
        char text[512];
        int i;

        snprintf(path, sizeof path, "%s/kc-insecure", f->dir);
        snprintf(text, sizeof text,
                 "current-context: x\n"
                 "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:%d',"
                 " insecure-skip-tls-verify: true}}]\n"
                 "users: [{name: u, user: {tokenFile: token}}]\n"
                 "contexts: [{name: x, context: {cluster: c, user: u}}]\n",
                 f->srv.port);
        write_file(path, text);
        f->nwarn = 0;
        assert_int_equal(aicp_http_new(&h, &hooks, &err), 0);
        cfg = (struct aicp_kube_config){.kubeconfig = path};
        assert_int_equal(aicp_kube_new(&k, h, &cfg, &err), 0);
        for (i = 0; i < 2; i++) {
            assert_int_equal(aicp_kube_get(k, &ref, &obj, &err), 0);
            assert_null(obj);
        }
        assert_int_equal(f->nwarn, 1);
        /* The warning names the kubeconfig's setting, not the modules'. */
        assert_non_null(strstr(f->lastwarn, "insecure-skip-tls-verify: true in the kubeconfig"));
        aicp_kube_free(k);
        aicp_http_free(h);
    }
    /* A wrong token: AICP_EAUTH with the API's message, never the token. */
    snprintf(path, sizeof path, "%s/kc-wrong-token", f->dir);
    live_kubeconfig(f, path, "wrong-" CANARY, "ca.pem");
    cfg = (struct aicp_kube_config){.kubeconfig = path};
    assert_int_equal(aicp_kube_new(&k, f->http, &cfg, &err), 0);
    assert_int_equal(aicp_kube_get(k, &ref, &obj, &err), AICP_EAUTH);
    assert_null(strstr(err.msg, CANARY));
    assert_null(strstr(err.msg, "HTTP 401")); /* the Status message instead */
    assert_non_null(strstr(err.msg, "nauthorized"));
    aicp_kube_free(k);
}

int main(void)
{
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(t_ref_of),
        cmocka_unit_test(t_field),
        cmocka_unit_test(t_drift_converged),
        cmocka_unit_test(t_drift_fields),
        cmocka_unit_test(t_drift_lists),
        cmocka_unit_test(t_conflicts_of),
        cmocka_unit_test(t_kubeconfig_basic),
        cmocka_unit_test(t_kubeconfig_refused),
        cmocka_unit_test(t_kubeconfig_env_and_pool),
    };
    const struct CMUnitTest live[] = {
        cmocka_unit_test(t_live_discovery),    cmocka_unit_test(t_live_threads),
        cmocka_unit_test(t_live_cycle),        cmocka_unit_test(t_live_dry_run),
        cmocka_unit_test(t_live_invalid),      cmocka_unit_test(t_live_conflict),
        cmocka_unit_test(t_live_concurrent),   cmocka_unit_test(t_live_faults),
        cmocka_unit_test(t_live_wait),         cmocka_unit_test(t_live_job_logs),
        cmocka_unit_test(t_live_tls_and_auth), cmocka_unit_test(t_live_discovery_remembered),
    };
    int rc = cmocka_run_group_tests_name("kube_pure", pure, NULL, NULL);

    rc += cmocka_run_group_tests_name("kube_live", live, live_setup, live_teardown);
    return rc;
}
