/* The kubeadm_join module: makes the host a member of a kubeadm cluster
 * with `kubeadm join`, only when it is not one yet: the node's state
 * decides (/etc/kubernetes/kubelet.conf, which join writes and a second
 * join refuses to overwrite). The bootstrap token comes from the control
 * plane (`kubeadm token create --print-join-command`, registered by an
 * earlier task with no_log) either as that whole join command or as
 * api_server/token/ca_cert_hash. The token and certificate key are secret:
 * they reach kubeadm in a JoinConfiguration file written 0600 in a private
 * temp dir (removed after), never on a command line, and kubeadm's output
 * is not returned. */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "err.h"
#include "fileutil.h"
#include "module.h"
#include "sysutil.h"
#include "util.h"

#define KUBE_KUBELET_CONF "/etc/kubernetes/kubelet.conf"

static const struct aicp_arg_spec kubeadm_join_args[] = {
    {.name = "join_command",
     .type = AICP_ARG_STR,
     .secret = 1,
     .help = "The output of `kubeadm token create --print-join-command` on a control-plane "
             "node (\"kubeadm join HOST:6443 --token T --discovery-token-ca-cert-hash H\"); "
             "instead of api_server, token and ca_cert_hash."},
    {.name = "api_server",
     .type = AICP_ARG_STR,
     .help = "The API server endpoint to join, HOST:PORT (the control plane's 6443)."},
    {.name = "token",
     .type = AICP_ARG_STR,
     .secret = 1,
     .help = "A bootstrap token (abcdef.0123456789abcdef) valid on the control plane."},
    {.name = "ca_cert_hash",
     .type = AICP_ARG_STR,
     .help = "sha256:HEX of the cluster CA's public key, which pins the API server."},
    {.name = "role",
     .type = AICP_ARG_STR,
     .def = "worker",
     .choices = "worker|control-plane",
     .help = "Join as a worker, or as another control-plane node (with certificate_key)."},
    {.name = "certificate_key",
     .type = AICP_ARG_STR,
     .secret = 1,
     .help = "For role=control-plane: the key of the certificates uploaded with "
             "`kubeadm init phase upload-certs --upload-certs`."},
    {.name = NULL},
};

static int kubeadm_join_check(struct aicp_ctx *ctx, const struct aicp_args *args,
                              json_t **current, struct aicp_err *err)
{
    struct aicp_exec_result res;
    memset(&res, 0, sizeof(res));
    (void)args;
    *current = NULL;
    static const char script[] = "if [ -f " KUBE_KUBELET_CONF " ]; then echo '" AICP_SYS_TAG
                                 "member=1'; else echo '" AICP_SYS_TAG "member=0'; fi\n";
    int rc = aicp_sys_exec(ctx, script, &res, err);
    if (rc == 0 && (res.rc != 0 || aicp_sys_field_int(res.out, "member", -1) < 0))
        rc = aicp_sys_fail(err, &res, "%s: cannot read the node's kubeadm state",
                           ctx->host ? ctx->host : "?");
    if (rc == 0) {
        int member = aicp_sys_field_int(res.out, "member", 0) == 1;
        *current = json_pack("{s:b}", "member", member);
        aicp_sys_result(ctx, "member", json_boolean(member));
    }
    aicp_exec_result_clear(&res);
    return rc;
}

static int kubeadm_join_diff(const json_t *current, const struct aicp_args *args,
                             struct aicp_change **change, struct aicp_err *err)
{
    int member = json_is_true(json_object_get(current, "member"));
    int rc = aicp_fu_change_new(change, err);
    if (rc != 0)
        return rc;
    struct aicp_change *c = *change;
    c->needed = !member;
    json_object_set_new(c->before, "member", json_boolean(member));
    json_object_set_new(c->after, "member", json_true());
    json_object_set_new(c->after, "role", json_string(aicp_args_str(args, "role")));
    return 0;
}

static int token_ok(const char *t)
{
    size_t n = t ? strlen(t) : 0;
    if (n != 23 || t[6] != '.')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (i != 6 && !islower((unsigned char)t[i]) && !isdigit((unsigned char)t[i]))
            return 0;
    return 1;
}

static int hash_ok(const char *h)
{
    if (h == NULL || strncmp(h, "sha256:", 7) != 0 || strlen(h) != 71)
        return 0;
    for (const char *p = h + 7; *p; p++)
        if (!isxdigit((unsigned char)*p))
            return 0;
    return 1;
}

/* Endpoints are host[:port] with no characters YAML or a shell cares about. */
static int endpoint_ok(const char *e)
{
    if (e == NULL || *e == '\0' || strlen(e) > 253)
        return 0;
    for (const char *p = e; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr(".-:[]_", *p))
            return 0;
    return 1;
}

/* Splits a join command into its words (in place) and picks the endpoint,
 * token, hash and certificate key. Messages never quote the command. */
static int parse_join(char *cmd, const char **ep, const char **tok, const char **hash,
                      const char **ckey, int *cp, struct aicp_err *err)
{
    char *save = NULL, *w, *words[32];
    int n = 0;
    for (w = strtok_r(cmd, " \t\r\n\\", &save); w && n < 32; w = strtok_r(NULL, " \t\r\n\\", &save))
        words[n++] = w;
    if (n < 2 || strcmp(words[0], "kubeadm") != 0 || strcmp(words[1], "join") != 0)
        return aicp_err_set(err, AICP_EINVAL,
                            "join_command is not a `kubeadm join ...` command line (the output "
                            "of kubeadm token create --print-join-command)");
    for (int i = 2; i < n; i++) {
        const char **slot = NULL;
        if (strcmp(words[i], "--token") == 0)
            slot = tok;
        else if (strcmp(words[i], "--discovery-token-ca-cert-hash") == 0)
            slot = hash;
        else if (strcmp(words[i], "--certificate-key") == 0)
            slot = ckey;
        else if (strcmp(words[i], "--control-plane") == 0)
            *cp = 1;
        else if (words[i][0] != '-')
            *ep = words[i];
        else
            return aicp_err_set(err, AICP_EINVAL, "join_command: unsupported option %.40s",
                                words[i]);
        if (slot) {
            if (i + 1 >= n)
                return aicp_err_set(err, AICP_EINVAL, "join_command: %s needs a value",
                                    words[i]);
            *slot = words[++i];
        }
    }
    return 0;
}

/* The JoinConfiguration kubeadm reads the secrets from. */
static int join_config(struct aicp_buf *y, const char *ep, const char *tok, const char *hash,
                       const char *ckey, int cp)
{
    int rc = aicp_buf_printf(y,
                             "apiVersion: kubeadm.k8s.io/v1beta3\n"
                             "kind: JoinConfiguration\n"
                             "discovery:\n"
                             "  bootstrapToken:\n"
                             "    apiServerEndpoint: \"%s\"\n"
                             "    token: \"%s\"\n"
                             "    caCertHashes:\n"
                             "    - \"%s\"\n",
                             ep, tok, hash);
    if (rc == 0 && cp) {
        rc = aicp_buf_puts(y, "controlPlane:\n");
        if (rc == 0 && ckey && *ckey)
            rc = aicp_buf_printf(y, "  certificateKey: \"%s\"\n", ckey);
    }
    return rc;
}

static int kubeadm_join_apply(struct aicp_ctx *ctx, const struct aicp_change *change,
                              struct aicp_err *err)
{
    const struct aicp_args *args = change->args;
    const char *jc = aicp_args_str(args, "join_command");
    const char *ep = aicp_args_str(args, "api_server");
    const char *tok = aicp_args_str(args, "token");
    const char *hash = aicp_args_str(args, "ca_cert_hash");
    const char *ckey = aicp_args_str(args, "certificate_key");
    int cp = strcmp(aicp_args_str(args, "role"), "control-plane") == 0;
    char *cmd = NULL;
    struct aicp_buf y = AICP_BUF_INIT;
    struct aicp_exec_result res;
    memset(&res, 0, sizeof(res));
    int rc = 0;

    if (jc && *jc) {
        if ((cmd = aicp_strdup(jc)) == NULL) {
            rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
            goto out;
        }
        int jcp = 0;
        if ((rc = parse_join(cmd, &ep, &tok, &hash, &ckey, &jcp, err)) != 0)
            goto out;
        cp |= jcp;
    }
    if (ep == NULL || tok == NULL || hash == NULL || !*ep || !*tok || !*hash) {
        rc = aicp_err_set(err, AICP_EINVAL,
                          "%s is not a cluster member and nothing to join with: give "
                          "join_command, or api_server, token and ca_cert_hash",
                          ctx->host ? ctx->host : "?");
        goto out;
    }
    if (!endpoint_ok(ep) || !token_ok(tok) || !hash_ok(hash) ||
        (ckey && *ckey && strspn(ckey, "0123456789abcdef") != strlen(ckey))) {
        rc = aicp_err_set(err, AICP_EINVAL,
                          "malformed join parameters: api_server must be HOST:PORT, the token "
                          "[a-z0-9]{6}.[a-z0-9]{16}, ca_cert_hash sha256:HEX, certificate_key "
                          "hex");
        goto out;
    }
    if (cp && (ckey == NULL || *ckey == '\0')) {
        rc = aicp_err_set(err, AICP_EINVAL,
                          "role=control-plane needs certificate_key (kubeadm init phase "
                          "upload-certs --upload-certs prints it)");
        goto out;
    }
    if ((rc = join_config(&y, ep, tok, hash, ckey, cp)) != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    /* The configuration arrives on stdin and goes to a file only root
     * can read, removed whatever kubeadm does. */
    static const char script[] =
        "umask 077\n"
        "d=$(mktemp -d) || exit 1\n"
        "cat > \"$d/join.yaml\" || { rm -rf \"$d\"; exit 1; }\n"
        "kubeadm join --config \"$d/join.yaml\" </dev/null\n"
        "rc=$?\n"
        "rm -rf \"$d\"\n"
        "exit $rc\n";
    if (ctx->conn == NULL) {
        rc = aicp_err_set(err, AICP_EINVAL, "%s: kubeadm_join needs a connection to the host",
                          ctx->host ? ctx->host : "?");
        goto out;
    }
    if ((rc = aicp_conn_exec(ctx->conn, script, y.data, y.len, ctx->become, &res, err)) != 0)
        goto out;
    if (res.rc != 0) {
        size_t len = res.err ? strlen(res.err) : 0;
        if (res.err)
            aicp_sys_rtrim(res.err, &len);
        rc = aicp_err_set(err, AICP_EFAILED, "kubeadm join %s failed on %s (rc=%d): %.*s", ep,
                          ctx->host ? ctx->host : "?", res.rc, (int)len,
                          len ? res.err : "(no message on stderr)");
        goto out;
    }
    aicp_sys_result(ctx, "member", json_true());
    aicp_sys_result(ctx, "api_server", json_string(ep));
out:
    aicp_exec_result_clear(&res);
    aicp_buf_free_secret(&y);
    aicp_free_secret(cmd);
    return rc;
}

static const struct aicp_module_ops kubeadm_join_ops = {
    .version = AICP_MODULE_OPS_VERSION,
    .check = kubeadm_join_check,
    .diff = kubeadm_join_diff,
    .apply = kubeadm_join_apply,
};

const struct aicp_module aicp_mod_kubeadm_join = {
    .name = "kubeadm_join",
    .summary = "Join a node to a kubeadm cluster when it is not a member",
    .args = kubeadm_join_args,
    .flags = AICP_MOD_NEEDS_SSH,
    .ops = &kubeadm_join_ops,
};
