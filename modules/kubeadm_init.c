/* The kubeadm_init module: creates a Kubernetes cluster on its first
 * control-plane node with `kubeadm init`, only when the node has none. The
 * node's own state decides, the files kubeadm init writes and a second
 * init refuses to overwrite (/etc/kubernetes/admin.conf and the
 * kube-apiserver static pod manifest), never a marker of ours. The admin
 * kubeconfig can be fetched to the jump host (0600, written atomically) to
 * serve as the site's kubeconfig. state=absent runs `kubeadm reset -f`,
 * which destroys the cluster, and so only with allow_reset. kubeadm init
 * prints a join command holding a bootstrap token: its output is never
 * returned or quoted (only its stderr on failure). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conn.h"
#include "err.h"
#include "fileutil.h"
#include "module.h"
#include "sysutil.h"
#include "util.h"

#define KUBE_ADMIN_CONF "/etc/kubernetes/admin.conf"
#define KUBE_APISERVER_MANIFEST "/etc/kubernetes/manifests/kube-apiserver.yaml"

static const struct aicp_arg_spec kubeadm_init_args[] = {
    {.name = "pod_network_cidr",
     .type = AICP_ARG_STR,
     .help = "--pod-network-cidr: the pod network's range (e.g. 10.244.0.0/16 for flannel)."},
    {.name = "service_cidr",
     .type = AICP_ARG_STR,
     .help = "--service-cidr: the range of service virtual IPs (kubeadm's default 10.96.0.0/12)."},
    {.name = "kubernetes_version",
     .type = AICP_ARG_STR,
     .help = "--kubernetes-version: the control plane's version (v1.29.3); pin it."},
    {.name = "control_plane_endpoint",
     .type = AICP_ARG_STR,
     .help = "--control-plane-endpoint: a stable address (DNS name or VIP, optional :port) "
             "for all control-plane nodes."},
    {.name = "fetch_kubeconfig",
     .type = AICP_ARG_PATH,
     .local = 1,
     .help = "A path on the jump host to copy /etc/kubernetes/admin.conf to (mode 0600), "
             "kept up to date with the node's copy."},
    {.name = "state",
     .type = AICP_ARG_STR,
     .def = "present",
     .choices = "present|absent",
     .help = "present: a cluster exists on this node (kubeadm init when none); absent: none "
             "(kubeadm reset -f, only with allow_reset)."},
    {.name = "allow_reset",
     .type = AICP_ARG_BOOL,
     .def = "no",
     .help = "Must be true for state=absent to reset an initialised node (it destroys the "
             "cluster)."},
    {.name = NULL},
};

/* The sha1 and mode of the local kubeconfig copy, when there is one. */
static json_t *local_state(const char *path)
{
    json_t *loc = json_pack("{s:s}", "path", path);
    struct stat st;
    char *data = NULL;
    size_t len = 0;
    if (loc && stat(path, &st) == 0 && aicp_read_file(&data, &len, path, NULL) == 0) {
        char sum[41];
        aicp_fu_digest_hex(sum, sizeof(sum), "sha1", data, len);
        json_object_set_new(loc, "checksum", json_string(sum));
        json_object_set_new(loc, "mode", json_integer(st.st_mode & 07777));
        aicp_free_secret(data);
    }
    return loc;
}

static int kubeadm_init_check(struct aicp_ctx *ctx, const struct aicp_args *args,
                              json_t **current, struct aicp_err *err)
{
    const char *fetch = aicp_args_str(args, "fetch_kubeconfig");
    struct aicp_exec_result res;
    memset(&res, 0, sizeof(res));
    struct aicp_buf path = AICP_BUF_INIT;
    int rc;
    *current = NULL;
    /* One round trip: which of kubeadm's files exist, and the admin
     * kubeconfig's sha1 (to keep the jump host's copy current). */
    static const char script[] =
        "LC_ALL=C; export LC_ALL\n"
        "a=0; m=0; k=0\n"
        "[ -f " KUBE_ADMIN_CONF " ] && a=1\n"
        "[ -f " KUBE_APISERVER_MANIFEST " ] && m=1\n"
        "[ -f /etc/kubernetes/kubelet.conf ] && k=1\n"
        "echo \"" AICP_SYS_TAG "admin=$a\"; echo \"" AICP_SYS_TAG "manifest=$m\"\n"
        "echo \"" AICP_SYS_TAG "kubelet=$k\"\n"
        "if [ $a = 1 ]; then\n"
        "  s=$(sha1sum < " KUBE_ADMIN_CONF ") || { echo 'cannot read " KUBE_ADMIN_CONF
        "' >&2; exit 1; }\n"
        "  echo \"" AICP_SYS_TAG "sha1=${s%% *}\"\n"
        "fi\n";
    if ((rc = aicp_sys_exec(ctx, script, &res, err)) != 0)
        goto out;
    if (res.rc != 0 || aicp_sys_field_int(res.out, "admin", -1) < 0) {
        rc = aicp_err_set(err, AICP_EFAILED, "%s: cannot read the node's kubeadm state: %s",
                          ctx->host ? ctx->host : "?", res.err && *res.err ? res.err : "");
        goto out;
    }
    int admin = aicp_sys_field_int(res.out, "admin", 0) == 1;
    int manifest = aicp_sys_field_int(res.out, "manifest", 0) == 1;
    json_t *cur = json_pack("{s:b, s:b, s:b, s:b}", "initialised", admin && manifest, "admin_conf",
                            admin, "apiserver_manifest", manifest, "kubelet_conf",
                            aicp_sys_field_int(res.out, "kubelet", 0) == 1);
    size_t len;
    const char *sha = aicp_sys_field(res.out, "sha1", &len);
    if (cur && sha && len == 40)
        json_object_set_new(cur, "admin_conf_sha1", json_stringn(sha, len));
    if (cur && fetch && *fetch) {
        /* A leading ~ is the jump host user's home, as for copy's src. */
        const char *home = getenv("HOME");
        if (fetch[0] == '~' && (fetch[1] == '/' || fetch[1] == '\0') && home && *home) {
            if (aicp_buf_printf(&path, "%s%s", home, fetch + 1) != 0) {
                json_decref(cur);
                rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
                goto out;
            }
            fetch = path.data;
        }
        json_object_set_new(cur, "local", local_state(fetch));
        aicp_sys_result(ctx, "kubeconfig", json_string(fetch));
    }
    aicp_sys_result(ctx, "initialised", json_boolean(admin && manifest));
    *current = cur;
out:
    aicp_buf_free(&path);
    aicp_exec_result_clear(&res);
    return rc;
}

static int kubeadm_init_diff(const json_t *current, const struct aicp_args *args,
                             struct aicp_change **change, struct aicp_err *err)
{
    int present = strcmp(aicp_args_str(args, "state"), "absent") != 0;
    int init = json_is_true(json_object_get(current, "initialised"));
    int any = init || json_is_true(json_object_get(current, "admin_conf")) ||
              json_is_true(json_object_get(current, "apiserver_manifest")) ||
              json_is_true(json_object_get(current, "kubelet_conf"));
    const json_t *loc = json_object_get(current, "local");
    /* Half a node (a worker, or a failed init): init would refuse, and
     * resetting it is not ours to decide. */
    if (present && !init && any)
        return aicp_err_set(err, AICP_EFAILED,
                            "the node has kubeadm files but no control plane (%s or %s "
                            "missing): it is a member of another cluster or a failed init; "
                            "run kubeadm reset -f on it first",
                            KUBE_ADMIN_CONF, KUBE_APISERVER_MANIFEST);
    if (!present && any && !aicp_args_bool(args, "allow_reset", 0))
        return aicp_err_set(err, AICP_EFAILED,
                            "state=absent would run kubeadm reset -f and destroy the cluster "
                            "on this node: set allow_reset: true to do it");
    int rc = aicp_fu_change_new(change, err);
    if (rc != 0)
        return rc;
    struct aicp_change *c = *change;
    json_object_set_new(c->before, "initialised", json_boolean(init));
    if (present) {
        if (!init)
            json_object_set_new(c->plan, "init", json_true());
        const char *lsum = json_string_value(json_object_get(loc, "checksum"));
        const char *rsum = json_string_value(json_object_get(current, "admin_conf_sha1"));
        if (loc && (!init || lsum == NULL || rsum == NULL || strcmp(lsum, rsum) != 0 ||
                    json_integer_value(json_object_get(loc, "mode")) != 0600)) {
            json_object_set_new(c->plan, "fetch", json_true());
            json_object_set(c->plan, "dest", json_object_get(loc, "path"));
            json_object_set(c->after, "kubeconfig", json_object_get(loc, "path"));
        }
        json_object_set_new(c->after, "initialised", json_true());
    } else {
        if (any)
            json_object_set_new(c->plan, "reset", json_true());
        json_object_set_new(c->after, "initialised", json_false());
    }
    c->needed = json_object_size(c->plan) > 0;
    return 0;
}

/* kubeadm init's stdout holds a bootstrap token: a failure quotes only
 * stderr (where kubeadm writes its errors). */
static int kubeadm_fail(struct aicp_ctx *ctx, const struct aicp_exec_result *res, const char *what,
                        struct aicp_err *err)
{
    size_t len = res->err ? strlen(res->err) : 0;
    if (res->err)
        aicp_sys_rtrim(res->err, &len);
    return aicp_err_set(err, AICP_EFAILED, "%s failed on %s (rc=%d): %.*s", what,
                        ctx->host ? ctx->host : "?", res->rc, (int)len,
                        len ? res->err : "(no message on stderr)");
}

/* Copies admin.conf to dest: a 0600 temp file beside it, fsync, rename. */
static int fetch_admin(struct aicp_ctx *ctx, const char *dest, struct aicp_err *err)
{
    char *data = NULL, *dir = aicp_fu_dirname(dest);
    size_t len = 0;
    struct aicp_buf tmp = AICP_BUF_INIT;
    int fd = -1, rc;
    if (dir == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (access(dir, F_OK) != 0 && mkdir(dir, 0700) != 0) {
        rc = aicp_err_set(err, AICP_EIO, "cannot create %s for the kubeconfig: %s", dir,
                          strerror(errno));
        goto out;
    }
    if ((rc = aicp_conn_get(ctx->conn, KUBE_ADMIN_CONF, &data, &len, ctx->become, err)) != 0)
        goto out;
    if (aicp_buf_printf(&tmp, "%s.aicp-XXXXXX", dest) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    /* mkstemp creates the file 0600: the credentials are never readable
     * by others, not even for a moment. */
    if ((fd = mkstemp(tmp.data)) < 0 || fchmod(fd, 0600) != 0) {
        rc = aicp_err_set(err, AICP_EIO, "%s: %s", tmp.data, strerror(errno));
        goto out;
    }
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = aicp_err_set(err, AICP_EIO, "%s: %s", tmp.data, strerror(errno));
            goto out;
        }
        off += (size_t)n;
    }
    int crc = fsync(fd);
    crc |= close(fd);
    fd = -1;
    if (crc != 0 || rename(tmp.data, dest) != 0) {
        rc = aicp_err_set(err, AICP_EIO, "%s: %s", dest, strerror(errno));
        goto out;
    }
    aicp_buf_free(&tmp);
out:
    if (fd >= 0)
        close(fd);
    if (tmp.data)
        unlink(tmp.data);
    aicp_buf_free(&tmp);
    aicp_free_secret(data);
    free(dir);
    return rc;
}

/* Appends " --flag VALUE" (quoted) when the argument is set. */
static int add_flag(struct aicp_buf *b, const struct aicp_args *args, const char *arg,
                    const char *flag)
{
    const char *v = aicp_args_str(args, arg);
    if (v == NULL || *v == '\0')
        return 0;
    int rc = aicp_buf_printf(b, " %s ", flag);
    return rc ? rc : aicp_buf_shquote(b, v);
}

static int kubeadm_init_apply(struct aicp_ctx *ctx, const struct aicp_change *change,
                              struct aicp_err *err)
{
    const struct aicp_args *args = change->args;
    const json_t *plan = change->plan;
    struct aicp_buf s = AICP_BUF_INIT;
    struct aicp_exec_result res;
    memset(&res, 0, sizeof(res));
    int rc = 0;
    const char *what = NULL;

    if (json_is_true(json_object_get(plan, "init"))) {
        what = "kubeadm init";
        rc = aicp_buf_puts(&s, "kubeadm init");
        rc = rc ? rc : add_flag(&s, args, "pod_network_cidr", "--pod-network-cidr");
        rc = rc ? rc : add_flag(&s, args, "service_cidr", "--service-cidr");
        rc = rc ? rc : add_flag(&s, args, "kubernetes_version", "--kubernetes-version");
        rc = rc ? rc : add_flag(&s, args, "control_plane_endpoint", "--control-plane-endpoint");
        rc = rc ? rc : aicp_buf_puts(&s, " </dev/null\n");
    } else if (json_is_true(json_object_get(plan, "reset"))) {
        what = "kubeadm reset";
        rc = aicp_buf_puts(&s, "kubeadm reset -f </dev/null\n");
    }
    if (rc) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if (what) {
        if ((rc = aicp_sys_exec(ctx, s.data, &res, err)) != 0)
            goto out;
        if (res.rc != 0) {
            rc = kubeadm_fail(ctx, &res, what, err);
            goto out;
        }
        aicp_sys_result(ctx, "initialised", json_boolean(plan && json_object_get(plan, "init")));
    }
    if (json_is_true(json_object_get(plan, "fetch")))
        rc = fetch_admin(ctx, json_string_value(json_object_get(plan, "dest")), err);
out:
    aicp_exec_result_clear(&res);
    aicp_buf_free(&s);
    return rc;
}

static const struct aicp_module_ops kubeadm_init_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = kubeadm_init_check,
    .diff = kubeadm_init_diff,
    .apply = kubeadm_init_apply,
};

const struct aicp_module aicp_mod_kubeadm_init = {
    .name = "kubeadm_init",
    .summary = "Create a Kubernetes cluster with kubeadm init when the node has none",
    .args = kubeadm_init_args,
    .flags = AICP_MOD_NEEDS_SSH,
    .ops = &kubeadm_init_ops,
};
