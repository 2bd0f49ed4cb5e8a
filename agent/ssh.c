/* The SSH byte channel under agent/conn.c, on libssh: one session per host
 * (connect, strict known_hosts checking, key or agent authentication,
 * ProxyCommand and ProxyJump the way OpenSSH implements it) and commands on
 * channels read with timeouts. Also the parser for the proxy options that
 * inventories put in ansible_ssh_common_args. conn.c owns the protocol; this
 * file only moves bytes.
 */
#include "config.h"

#include "ssh.h"

#include "conn.h"
#include "err.h"
#include "util.h"

#include <libssh/libssh.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct aicp_ssh {
    ssh_session session;
    char *name; /* inventory name, for messages */
};

struct aicp_ssh_chan {
    struct aicp_ssh *ssh;
    ssh_channel channel;
};

/* libssh wants ssh_init() once per process before the first session. */
static pthread_once_t ssh_once = PTHREAD_ONCE_INIT;
static int ssh_init_rc;

static void ssh_init_once(void)
{
    ssh_init_rc = ssh_init();
}

static int set_opt(ssh_session s, enum ssh_options_e opt, const void *val, const char *what,
                   const char *name, struct aicp_err *err)
{
    if (ssh_options_set(s, opt, val) < 0)
        return aicp_err_set(err, AICP_EINVAL, "%s: invalid SSH option %s: %s", name, what,
                            ssh_get_error(s));
    return 0;
}

static int check_host_key(struct aicp_ssh *s, const struct aicp_conn_opts *opts,
                          const char *host, int port, struct aicp_err *err)
{
    ssh_key key = NULL;
    unsigned char *hash = NULL;
    size_t hlen = 0;
    char *fp = NULL;
    char *kh = NULL;
    const char *ktype = "unknown";
    char hostport[300];
    int rc = 0;

    if (ssh_get_server_publickey(s->session, &key) == SSH_OK) {
        ktype = ssh_key_type_to_char(ssh_key_type(key));
        if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) == 0)
            fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
    }
    if (opts->known_hosts != NULL)
        kh = aicp_strdup(opts->known_hosts);
    else if (ssh_options_get(s->session, SSH_OPTIONS_KNOWNHOSTS, &kh) != SSH_OK)
        kh = NULL;
    if (port == 22)
        snprintf(hostport, sizeof hostport, "%s", host);
    else
        snprintf(hostport, sizeof hostport, "[%s]:%d", host, port);

    switch (ssh_session_is_known_server(s->session)) {
    case SSH_KNOWN_HOSTS_OK:
        break;
    case SSH_KNOWN_HOSTS_UNKNOWN:
    case SSH_KNOWN_HOSTS_NOT_FOUND:
        if (!opts->strict_host_key)
            break;
        if (opts->accept_new_host_key) {
            /* StrictHostKeyChecking=accept-new: record it, as ssh does. */
            if (ssh_session_update_known_hosts(s->session) != SSH_OK)
                rc = aicp_err_set(err, AICP_EHOSTKEY, "cannot record the host key of %s in %s: %s",
                                  s->name, kh ? kh : "~/.ssh/known_hosts",
                                  ssh_get_error(s->session));
            else
                fprintf(stderr, "[WARNING]: %s: added %s %s (%s) to known_hosts %s\n", s->name,
                        hostport, ktype, fp ? fp : "?", kh ? kh : "~/.ssh/known_hosts");
            break;
        }
        rc = aicp_err_set(err, AICP_EHOSTKEY,
                          "host key for %s (%s %s %s) is not in known_hosts %s; verify it and "
                          "add it (ssh-keyscan -p %d %s >> %s) or connect once with ssh",
                          s->name, hostport, ktype, fp ? fp : "?",
                          kh ? kh : "~/.ssh/known_hosts", port, host,
                          kh ? kh : "~/.ssh/known_hosts");
        break;
    case SSH_KNOWN_HOSTS_CHANGED:
    case SSH_KNOWN_HOSTS_OTHER:
        if (!opts->strict_host_key) {
            /* host_key_checking = False is Ansible's StrictHostKeyChecking=no:
             * the connection goes ahead, but not silently. */
            fprintf(stderr, "[WARNING]: %s: the host key (%s %s) does not match known_hosts %s; "
                            "connecting anyway because host key checking is off\n",
                    s->name, ktype, fp ? fp : "?", kh ? kh : "~/.ssh/known_hosts");
            break;
        }
        rc = aicp_err_set(err, AICP_EHOSTKEY,
                          "HOST KEY FOR %s (%s) HAS CHANGED: it now offers %s %s, which does not "
                          "match known_hosts %s. Someone could be intercepting the connection, "
                          "or the host was reinstalled; verify the new key, then remove the old "
                          "entry (ssh-keygen -R '%s' -f %s)",
                          s->name, hostport, ktype, fp ? fp : "?",
                          kh ? kh : "~/.ssh/known_hosts", hostport,
                          kh ? kh : "~/.ssh/known_hosts");
        break;
    case SSH_KNOWN_HOSTS_ERROR:
    default:
        rc = aicp_err_set(err, AICP_EHOSTKEY, "cannot check the host key of %s: %s", s->name,
                          ssh_get_error(s->session));
        break;
    }
    ssh_string_free_char(fp);
    ssh_clean_pubkey_hash(&hash);
    ssh_key_free(key);
    if (opts->known_hosts != NULL)
        free(kh);
    else
        ssh_string_free_char(kh);
    return rc;
}

static int authenticate(struct aicp_ssh *s, const struct aicp_conn_opts *opts, const char *user,
                        struct aicp_err *err)
{
    ssh_key key = NULL;
    int rc;
    const char *why = "no key was accepted";

    if (opts->key_file != NULL && opts->key_file[0] != '\0') {
        if (ssh_pki_import_privkey_file(opts->key_file, NULL, NULL, NULL, &key) != SSH_OK) {
            why = "the key file could not be read (missing, or protected by a passphrase: "
                  "load it into ssh-agent instead)";
        } else {
            rc = ssh_userauth_publickey(s->session, NULL, key);
            ssh_key_free(key);
            if (rc == SSH_AUTH_SUCCESS)
                return 0;
            if (rc == SSH_AUTH_ERROR)
                goto transport;
            why = "the server refused the key";
        }
    }
    /* As ssh -i does, fall back to the agent and the default keys. */
    rc = ssh_userauth_publickey_auto(s->session, NULL, NULL);
    if (rc == SSH_AUTH_SUCCESS)
        return 0;
    if (rc == SSH_AUTH_ERROR)
        goto transport;
    if (opts->key_file != NULL && opts->key_file[0] != '\0')
        return aicp_err_set(err, AICP_EAUTH,
                            "authentication as %s to %s failed with key %s: %s; ssh-agent and "
                            "default keys were refused too",
                            user, s->name, opts->key_file, why);
    return aicp_err_set(err, AICP_EAUTH,
                        "authentication as %s to %s failed: ssh-agent and the default keys "
                        "(~/.ssh/id_*) were refused; set ansible_ssh_private_key_file",
                        user, s->name);
transport:
    return aicp_err_set(err, AICP_EUNREACHABLE, "connection to %s failed during authentication: %s",
                        s->name, ssh_get_error(s->session));
}

int aicp_ssh_connect(struct aicp_ssh **out, const struct aicp_conn_opts *opts,
                     struct aicp_err *err)
{
    struct aicp_ssh *s = NULL;
    const char *name = opts->name ? opts->name : (opts->host ? opts->host : "?");
    const char *host = opts->host && opts->host[0] ? opts->host : name;
    unsigned int port = opts->port > 0 ? (unsigned int)opts->port : 22;
    long timeout = opts->connect_timeout > 0 ? opts->connect_timeout : 10;
    char *jump = NULL;
    char *user = NULL;
    int rc = 0;

    *out = NULL;
    pthread_once(&ssh_once, ssh_init_once);
    if (ssh_init_rc != 0)
        return aicp_err_set(err, AICP_EIO, "cannot initialise libssh");

    s = calloc(1, sizeof *s);
    if (s == NULL || (s->name = aicp_strdup(name)) == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    s->session = ssh_new();
    if (s->session == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = set_opt(s->session, SSH_OPTIONS_HOST, host, "host", name, err)) != 0 ||
        (rc = set_opt(s->session, SSH_OPTIONS_PORT, &port, "port", name, err)) != 0 ||
        (rc = set_opt(s->session, SSH_OPTIONS_TIMEOUT, &timeout, "timeout", name, err)) != 0)
        goto out;
    if (opts->user && opts->user[0] &&
        (rc = set_opt(s->session, SSH_OPTIONS_USER, opts->user, "user", name, err)) != 0)
        goto out;
    if (opts->known_hosts && opts->known_hosts[0] &&
        (rc = set_opt(s->session, SSH_OPTIONS_KNOWNHOSTS, opts->known_hosts, "known_hosts", name,
                      err)) != 0)
        goto out;
    if (opts->proxy_command && opts->proxy_command[0]) {
        if ((rc = set_opt(s->session, SSH_OPTIONS_PROXYCOMMAND, opts->proxy_command,
                          "ProxyCommand", name, err)) != 0)
            goto out;
    } else if (opts->proxy_jump && opts->proxy_jump[0]) {
        if ((rc = aicp_ssh_jump_command(&jump, opts->proxy_jump, err)) != 0) {
            aicp_err_prefix(err, "%s", name);
            goto out;
        }
        if ((rc = set_opt(s->session, SSH_OPTIONS_PROXYCOMMAND, jump, "ProxyJump", name, err)) != 0)
            goto out;
    }

    if (ssh_connect(s->session) != SSH_OK) {
        rc = aicp_err_set(err, AICP_EUNREACHABLE, "cannot connect to %s (%s port %u): %s", name,
                          host, port, ssh_get_error(s->session));
        goto out;
    }
    if ((rc = check_host_key(s, opts, host, (int)port, err)) != 0)
        goto out;
    if (ssh_options_get(s->session, SSH_OPTIONS_USER, &user) != SSH_OK)
        user = NULL;
    rc = authenticate(s, opts, user ? user : "?", err);
    ssh_string_free_char(user);
    if (rc != 0)
        goto out;
    *out = s;
    s = NULL;
out:
    free(jump);
    aicp_ssh_free(s);
    return rc;
}

void aicp_ssh_free(struct aicp_ssh *s)
{
    if (s == NULL)
        return;
    if (s->session != NULL) {
        if (ssh_is_connected(s->session))
            ssh_disconnect(s->session);
        ssh_free(s->session);
    }
    free(s->name);
    free(s);
}

int aicp_ssh_chan_open(struct aicp_ssh_chan **out, struct aicp_ssh *s, const char *command,
                       struct aicp_err *err)
{
    struct aicp_ssh_chan *ch = calloc(1, sizeof *ch);
    int rc = 0;

    *out = NULL;
    if (ch == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    ch->ssh = s;
    ch->channel = ssh_channel_new(s->session);
    if (ch->channel == NULL || ssh_channel_open_session(ch->channel) != SSH_OK ||
        ssh_channel_request_exec(ch->channel, command) != SSH_OK) {
        rc = aicp_err_set(err, AICP_EUNREACHABLE, "cannot start a command on %s: %s", s->name,
                          ssh_get_error(s->session));
        aicp_ssh_chan_free(ch);
        return rc;
    }
    *out = ch;
    return 0;
}

int aicp_ssh_chan_write(struct aicp_ssh_chan *ch, const void *data, size_t len,
                        struct aicp_err *err)
{
    const char *p = data;

    while (len > 0) {
        uint32_t n = len > 65536 ? 65536 : (uint32_t)len;
        int w = ssh_channel_write(ch->channel, p, n);
        if (w <= 0)
            return aicp_err_set(err, AICP_EUNREACHABLE, "connection to %s lost while sending: %s",
                                ch->ssh->name, ssh_get_error(ch->ssh->session));
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int aicp_ssh_chan_read(struct aicp_ssh_chan *ch, void *buf, size_t len, int timeout_ms,
                       int *is_stderr, struct aicp_err *err)
{
    double deadline = timeout_ms >= 0 ? aicp_now() + timeout_ms / 1000.0 : 0;
    uint32_t cap = len > 65536 ? 65536 : (uint32_t)len;

    for (;;) {
        /* stdout first, then stderr, without blocking; then wait on stdout.
         * stderr only matters for sudo's prompt and messages, so a slice of
         * 50 ms latency on it is fine, while stdout wakes us at once. */
        for (int e = 0; e <= 1; e++) {
            int n = ssh_channel_poll(ch->channel, e);
            if (n == SSH_ERROR)
                goto lost;
            if (n > 0) {
                n = ssh_channel_read_nonblocking(ch->channel, buf, cap, e);
                if (n == SSH_ERROR)
                    goto lost;
                if (n > 0) {
                    *is_stderr = e;
                    return n;
                }
            }
        }
        if (ssh_channel_is_eof(ch->channel) || ssh_channel_is_closed(ch->channel))
            return aicp_err_set(err, AICP_EUNREACHABLE, "the shell on %s exited",
                                ch->ssh->name);
        int slice = 50;
        if (timeout_ms >= 0) {
            double left = deadline - aicp_now();
            if (left <= 0)
                return 0;
            if (left * 1000 < slice)
                slice = (int)(left * 1000) + 1;
        }
        int n = ssh_channel_poll_timeout(ch->channel, slice, 0);
        if (n == SSH_ERROR)
            goto lost;
    }
lost:
    return aicp_err_set(err, AICP_EUNREACHABLE, "connection to %s lost: %s", ch->ssh->name,
                        ssh_get_error(ch->ssh->session));
}

void aicp_ssh_chan_free(struct aicp_ssh_chan *ch)
{
    if (ch == NULL)
        return;
    if (ch->channel != NULL) {
        if (ssh_channel_is_open(ch->channel)) {
            ssh_channel_send_eof(ch->channel);
            ssh_channel_close(ch->channel);
        }
        ssh_channel_free(ch->channel);
    }
    free(ch);
}

/* Characters allowed in a jump host spec; anything else could be read by
 * the shell that runs the ProxyCommand. */
static int jump_ok(const char *s, size_t n)
{
    if (n == 0 || s[0] == '-')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("._-@:[]%", c) != NULL))
            return 0;
    }
    return 1;
}

int aicp_ssh_jump_command(char **out, const char *proxy_jump, struct aicp_err *err)
{
    struct aicp_buf b = AICP_BUF_INIT;
    const char *hop;
    const char *last;
    char *spec = NULL;
    const char *host;
    char *at;
    char *colon;
    int rc = 0;

    *out = NULL;
    if (proxy_jump == NULL || proxy_jump[0] == '\0')
        return aicp_err_set(err, AICP_EINVAL, "empty ProxyJump");
    last = strrchr(proxy_jump, ',');
    hop = last ? last + 1 : proxy_jump;
    for (const char *p = proxy_jump; *p;) {
        size_t n = strcspn(p, ",");
        if (!jump_ok(p, n))
            return aicp_err_set(err, AICP_EINVAL,
                                "invalid ProxyJump '%s': expected [user@]host[:port][,...]",
                                proxy_jump);
        p += n;
        if (*p == ',')
            p++;
    }
    if ((spec = aicp_strdup(hop)) == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    host = spec;
    at = strrchr(spec, '@');
    if (at != NULL) {
        *at = '\0';
        host = at + 1;
    }
    /* host:port, or [v6addr]:port */
    if (host[0] == '[') {
        char *close = strchr(host, ']');
        colon = close && close[1] == ':' ? close + 1 : NULL;
        if (close) {
            *close = '\0';
            host++;
        }
    } else {
        colon = strchr(host, ':');
    }
    if (colon != NULL)
        *colon = '\0';
    if (host[0] == '\0' || (at != NULL && spec[0] == '\0') ||
        (colon != NULL && (colon[1] == '\0' || strspn(colon + 1, "0123456789") != strlen(colon + 1)))) {
        rc = aicp_err_set(err, AICP_EINVAL,
                          "invalid ProxyJump '%s': expected [user@]host[:port][,...]", proxy_jump);
        goto out;
    }
    rc = aicp_buf_puts(&b, "ssh");
    if (rc == 0 && last != NULL) {
        char *earlier = aicp_strndup(proxy_jump, (size_t)(last - proxy_jump));
        rc = earlier ? aicp_buf_puts(&b, " -J ") : AICP_ENOMEM;
        if (rc == 0)
            rc = aicp_buf_shquote(&b, earlier);
        free(earlier);
    }
    if (rc == 0)
        rc = aicp_buf_puts(&b, " -W %h:%p");
    if (rc == 0 && at != NULL) {
        rc = aicp_buf_puts(&b, " -l ");
        if (rc == 0)
            rc = aicp_buf_shquote(&b, spec);
    }
    if (rc == 0 && colon != NULL)
        rc = aicp_buf_printf(&b, " -p %s", colon + 1);
    if (rc == 0)
        rc = aicp_buf_puts(&b, " ");
    if (rc == 0)
        rc = aicp_buf_shquote(&b, host);
    if (rc != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    *out = aicp_buf_steal(&b);
out:
    free(spec);
    aicp_buf_free(&b);
    return rc;
}

/* Splits a string into words as sh would (quotes and backslashes, no
 * expansions). Returns the number of words or a negative code. */
static int split_words(const char *s, char ***words_out, struct aicp_err *err)
{
    char **words = NULL;
    int n = 0;
    struct aicp_buf w = AICP_BUF_INIT;
    int rc = 0;

    *words_out = NULL;
    for (const char *p = s;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        if (*p == '\0')
            break;
        w.len = 0;
        if (aicp_buf_append(&w, "", 0) != 0)
            goto nomem;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n') {
            if (*p == '\'') {
                const char *e = strchr(p + 1, '\'');
                if (e == NULL)
                    goto unterminated;
                if (aicp_buf_append(&w, p + 1, (size_t)(e - p - 1)) != 0)
                    goto nomem;
                p = e + 1;
            } else if (*p == '"') {
                p++;
                while (*p && *p != '"') {
                    if (*p == '\\' && p[1] && strchr("\"\\$`", p[1]))
                        p++;
                    if (aicp_buf_append(&w, p, 1) != 0)
                        goto nomem;
                    p++;
                }
                if (*p != '"')
                    goto unterminated;
                p++;
            } else {
                if (*p == '\\' && p[1])
                    p++;
                if (aicp_buf_append(&w, p, 1) != 0)
                    goto nomem;
                p++;
            }
        }
        char **nw = realloc(words, (size_t)(n + 2) * sizeof *nw);
        if (nw == NULL)
            goto nomem;
        words = nw;
        if ((words[n] = aicp_strndup(w.data, w.len)) == NULL)
            goto nomem;
        words[++n] = NULL;
    }
    aicp_buf_free(&w);
    *words_out = words;
    return n;
unterminated:
    rc = aicp_err_set(err, AICP_EINVAL, "SSH arguments: unterminated quote in: %s", s);
    goto fail;
nomem:
    rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
fail:
    for (int i = 0; i < n; i++)
        free(words[i]);
    free(words);
    aicp_buf_free(&w);
    return rc;
}

/* Takes "Key=Value" or "Key Value" and, for the keys we know, sets *slot. */
static int take_option(const char *kv, char **proxy_jump, char **proxy_command,
                       struct aicp_err *err)
{
    size_t klen = strcspn(kv, "= \t");
    const char *v = kv + klen;
    char **slot = NULL;

    if (klen == strlen("ProxyCommand") && strncasecmp(kv, "ProxyCommand", klen) == 0)
        slot = proxy_command;
    else if (klen == strlen("ProxyJump") && strncasecmp(kv, "ProxyJump", klen) == 0)
        slot = proxy_jump;
    else
        return 0;
    v += strspn(v, " \t");
    if (*v == '=')
        v++;
    v += strspn(v, " \t");
    if (*v == '\0')
        return aicp_err_set(err, AICP_EINVAL, "SSH arguments: -o %.*s has no value", (int)klen,
                            kv);
    free(*slot);
    *slot = NULL;
    if (strcasecmp(v, "none") == 0)
        return 0;
    if ((*slot = aicp_strdup(v)) == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    return 0;
}

static int take_jump(const char *v, char **proxy_jump, struct aicp_err *err)
{
    free(*proxy_jump);
    *proxy_jump = NULL;
    if (strcasecmp(v, "none") == 0)
        return 0;
    if ((*proxy_jump = aicp_strdup(v)) == NULL)
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    return 0;
}

int aicp_ssh_parse_common_args(const char *args, char **proxy_jump, char **proxy_command,
                               struct aicp_err *err)
{
    char **words = NULL;
    int n;
    int rc = 0;

    *proxy_jump = NULL;
    *proxy_command = NULL;
    if (args == NULL)
        return 0;
    n = split_words(args, &words, err);
    if (n < 0)
        return n;
    for (int i = 0; i < n && rc == 0; i++) {
        const char *w = words[i];
        if (strcmp(w, "-o") == 0 || strcmp(w, "-J") == 0) {
            if (i + 1 >= n) {
                rc = aicp_err_set(err, AICP_EINVAL, "SSH arguments: %s needs a value", w);
                break;
            }
            if (w[1] == 'o') {
                rc = take_option(words[++i], proxy_jump, proxy_command, err);
            } else {
                rc = take_jump(words[++i], proxy_jump, err);
            }
        } else if (aicp_startswith(w, "-o")) {
            rc = take_option(w + 2, proxy_jump, proxy_command, err);
        } else if (aicp_startswith(w, "-J")) {
            rc = take_jump(w + 2, proxy_jump, err);
        }
    }
    for (int i = 0; i < n; i++)
        free(words[i]);
    free(words);
    if (rc != 0) {
        free(*proxy_jump);
        free(*proxy_command);
        *proxy_jump = *proxy_command = NULL;
    }
    return rc;
}
