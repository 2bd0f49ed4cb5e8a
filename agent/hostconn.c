/* Connection options from a host's variables, as Ansible names them:
 * ansible_host, ansible_port, ansible_user, ansible_ssh_private_key_file,
 * ansible_connection, ansible_ssh_common_args/extra_args (ProxyJump and
 * ProxyCommand), ansible_become_password, ansible_host_key_checking,
 * timeouts, and aicp_known_hosts for the known_hosts file. Values may be
 * templates; they are rendered with the host's variables. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "err.h"
#include "hostconn.h"
#include "module.h"
#include "ssh.h"
#include "template.h"
#include "util.h"

static const char *var_str(const json_t *vars, const char *name, char *buf, size_t len)
{
    const json_t *v = json_object_get(vars, name);
    if (v == NULL || json_is_null(v))
        return NULL;
    json_t *rendered = NULL;
    if (json_is_string(v) && aicp_tmpl_is_template(json_string_value(v))) {
        if (aicp_tmpl_render_str(&rendered, json_string_value(v), vars, NULL) != 0)
            return NULL;
        v = rendered;
    }
    char *s = NULL;
    if (json_is_string(v))
        snprintf(buf, len, "%s", json_string_value(v));
    else if (aicp_tmpl_to_string(&s, v) == 0)
        snprintf(buf, len, "%s", s);
    else
        buf[0] = '\0';
    free(s);
    json_decref(rendered);
    return buf;
}

/* host_key_checking in the [defaults] section of an ansible.cfg: 1, 0, or
 * -1 when the file does not say. */
static int cfg_checking(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    int in_defaults = 0, v = -1;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL) {
        char *p = line + strspn(line, " \t");
        p[strcspn(p, "\r\n")] = '\0';
        if (*p == '[') {
            in_defaults = strncmp(p, "[defaults]", 10) == 0;
            continue;
        }
        if (!in_defaults || strncmp(p, "host_key_checking", 17) != 0)
            continue;
        p += 17 + strspn(p + 17, " \t");
        if (*p != '=' && *p != ':')
            continue;
        p++;
        p += strspn(p, " \t");
        p[strcspn(p, " \t;#")] = '\0';
        v = aicp_parse_bool(p);
    }
    fclose(f);
    return v;
}

void aicp_hostconn_policy(struct aicp_hostkey_policy *pol, int accept_new, char *why, size_t cap)
{
    const char *env = getenv("ANSIBLE_HOST_KEY_CHECKING");
    char path[4096];

    pol->checking = 1;
    pol->accept_new = accept_new;
    why[0] = '\0';
    if (env != NULL && *env != '\0') {
        if (aicp_parse_bool(env) == 0) {
            pol->checking = 0;
            snprintf(why, cap, "ANSIBLE_HOST_KEY_CHECKING=%s", env);
        }
        return;
    }
    /* The one ansible.cfg Ansible would read, in its order. */
    const char *cfg = getenv("ANSIBLE_CONFIG");
    const char *home = getenv("HOME");
    const char *cands[4] = {cfg && *cfg ? cfg : NULL, "ansible.cfg", NULL, "/etc/ansible/ansible.cfg"};
    if (home != NULL) {
        snprintf(path, sizeof path, "%s/.ansible.cfg", home);
        cands[2] = path;
    }
    for (int i = 0; i < 4; i++) {
        FILE *f;
        if (cands[i] == NULL || (f = fopen(cands[i], "r")) == NULL)
            continue;
        fclose(f);
        if (cfg_checking(cands[i]) == 0) {
            pol->checking = 0;
            snprintf(why, cap, "host_key_checking = False in %s", cands[i]);
        }
        return;
    }
}

int aicp_hostconn_open(struct aicp_conn **out, const char *name, const json_t *vars,
                       const struct aicp_hostkey_policy *pol, struct aicp_err *err)
{
    char host[256], user[128], key[1024], kh[1024], conn[32], port[16], args[2048], extra[1024],
        bpass[512], buser[128], hkc[16], to[16], cto[16];
    struct aicp_conn_opts o = {0};
    char *jump = NULL, *proxy = NULL;
    int rc;
    o.name = name;
    o.host = var_str(vars, "ansible_host", host, sizeof(host));
    if (o.host == NULL)
        o.host = name;
    const char *p = var_str(vars, "ansible_port", port, sizeof(port));
    o.port = p ? (int)strtol(p, NULL, 10) : 22;
    o.user = var_str(vars, "ansible_user", user, sizeof(user));
    if (o.user == NULL)
        o.user = var_str(vars, "ansible_ssh_user", user, sizeof(user));
    o.key_file = var_str(vars, "ansible_ssh_private_key_file", key, sizeof(key));
    o.known_hosts = var_str(vars, "aicp_known_hosts", kh, sizeof(kh));
    if (o.known_hosts == NULL)
        o.known_hosts = var_str(vars, "ansible_ssh_known_hosts_file", kh, sizeof(kh));
    const char *c = var_str(vars, "ansible_connection", conn, sizeof(conn));
    o.local = c && strcmp(c, "local") == 0;
    o.strict_host_key = pol == NULL || pol->checking;
    o.accept_new_host_key = pol != NULL && pol->accept_new;
    const char *k = var_str(vars, "ansible_host_key_checking", hkc, sizeof(hkc));
    if (k && aicp_parse_bool(k) >= 0)
        o.strict_host_key = aicp_parse_bool(k);
    const char *t = var_str(vars, "ansible_timeout", to, sizeof(to));
    if (t == NULL)
        t = var_str(vars, "ansible_ssh_timeout", to, sizeof(to));
    o.connect_timeout = t ? (int)strtol(t, NULL, 10) : 10;
    const char *ct = var_str(vars, "ansible_command_timeout", cto, sizeof(cto));
    o.command_timeout = ct ? (int)strtol(ct, NULL, 10) : 0;
    o.become_password = var_str(vars, "ansible_become_password", bpass, sizeof(bpass));
    if (o.become_password == NULL)
        o.become_password = var_str(vars, "ansible_become_pass", bpass, sizeof(bpass));
    o.become_user = var_str(vars, "ansible_become_user", buser, sizeof(buser));
    const char *a = var_str(vars, "ansible_ssh_common_args", args, sizeof(args));
    const char *e = var_str(vars, "ansible_ssh_extra_args", extra, sizeof(extra));
    if (!o.local && (a || e)) {
        struct aicp_buf all = AICP_BUF_INIT;
        aicp_buf_printf(&all, "%s %s", a ? a : "", e ? e : "");
        rc = aicp_ssh_parse_common_args(all.data, &jump, &proxy, err);
        aicp_buf_free(&all);
        if (rc != 0)
            goto out;
        o.proxy_jump = jump;
        o.proxy_command = proxy;
    }
    rc = aicp_conn_open(out, &o, err);
out:
    explicit_bzero(bpass, sizeof(bpass));
    free(jump);
    free(proxy);
    return rc;
}
