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

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* A private file (0600, O_EXCL) for the proxy command's stderr. libssh
 * points that stderr at /dev/null, and why a jump failed ("Host key
 * verification failed.") is only ever said there. */
static int proxy_err_open(char *path, size_t cap)
{
    const char *tmp = getenv("TMPDIR");

    if (tmp == NULL || tmp[0] != '/' || strpbrk(tmp, "%\"") != NULL ||
        (size_t)snprintf(path, cap, "%s/.aicp-proxy-XXXXXX", tmp) >= cap)
        snprintf(path, cap, "/tmp/.aicp-proxy-XXXXXX");
    return mkostemp(path, O_CLOEXEC);
}

/* The last few lines the proxy wrote, on one line ("a; b"), in out. When
 * some are about host keys, those: after a refused inner hop, the outer
 * hops add lines about the closed connection that say nothing. */
static void proxy_err_tail(int fd, char *out, size_t cap)
{
    char buf[2048];
    struct stat st;
    off_t off = 0;
    ssize_t n;
    const char *lines[3] = {NULL, NULL, NULL};
    size_t nl = 0;
    int keys_only = 0;

    out[0] = '\0';
    if (fd < 0 || fstat(fd, &st) != 0)
        return;
    if (st.st_size > (off_t)sizeof buf - 1)
        off = st.st_size - (off_t)(sizeof buf - 1);
    n = pread(fd, buf, sizeof buf - 1, off);
    if (n <= 0)
        return;
    buf[n] = '\0';
    /* ssh ends its lines with \r\n; keep the last three non-empty ones
     * (a partial first line, when the file was cut, is dropped). */
    for (char *save = NULL, *p = buf, *l; (l = strtok_r(p, "\r\n", &save)) != NULL; p = NULL) {
        if (off > 0 && l == buf)
            continue;
        if (l[strspn(l, " \t")] == '\0')
            continue;
        int about_keys = strcasestr(l, "host key") != NULL;
        if (keys_only && !about_keys)
            continue;
        if (about_keys && !keys_only) {
            keys_only = 1;
            nl = 0;
        }
        if (nl == 3) {
            lines[0] = lines[1];
            lines[1] = lines[2];
            nl = 2;
        }
        lines[nl++] = l;
    }
    for (size_t i = 0, used = 0; i < nl && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%s", i ? "; " : "", lines[i]);
    explicit_bzero(buf, sizeof buf);
}

/* For a jump host whose key ssh refused: which host (from ssh's "... for
 * HOSTPORT ..." line) and how to accept it, as check_host_key says it for
 * aicp's own hosts. */
static int jump_hostkey_error(struct aicp_err *err, const struct aicp_conn_opts *opts,
                              const char *name, const char *host, unsigned port,
                              const char *said)
{
    const char *kh = opts->known_hosts && opts->known_hosts[0] ? opts->known_hosts
                                                               : "~/.ssh/known_hosts";
    const char *changed = strstr(said, "has changed");
    const char *p = strstr(said, changed ? "Host key for " : "is known for ");
    char hostport[300] = "";
    char jhost[300] = "";
    char jport[16] = "22";

    if (p != NULL) {
        p += strlen(changed ? "Host key for " : "is known for ");
        snprintf(hostport, sizeof hostport, "%.*s", (int)strcspn(p, " ;"), p);
        if (hostport[0] == '[' && strstr(hostport, "]:") != NULL) {
            size_t hl = strcspn(hostport + 1, "]");
            snprintf(jhost, sizeof jhost, "%.*s", (int)hl, hostport + 1);
            snprintf(jport, sizeof jport, "%s", hostport + 1 + hl + 2);
        } else {
            snprintf(jhost, sizeof jhost, "%s", hostport);
        }
    }
    if (hostport[0] == '\0')
        return aicp_err_set(err, AICP_EHOSTKEY,
                            "cannot connect to %s (%s port %u) through ProxyJump %s: a jump "
                            "host's key was refused (%s); verify it and add it to known_hosts "
                            "%s (ssh-keyscan), or run with --accept-new-host-keys",
                            name, host, port, opts->proxy_jump, said, kh);
    if (changed)
        return aicp_err_set(err, AICP_EHOSTKEY,
                            "cannot connect to %s (%s port %u) through ProxyJump %s: HOST KEY "
                            "FOR JUMP HOST %s HAS CHANGED (%s); verify the new key, then remove "
                            "the old entry (ssh-keygen -R '%s' -f %s)",
                            name, host, port, opts->proxy_jump, hostport, said, hostport, kh);
    return aicp_err_set(err, AICP_EHOSTKEY,
                        "cannot connect to %s (%s port %u) through ProxyJump %s: host key for "
                        "jump host %s is not in known_hosts %s (%s); verify it and add it "
                        "(ssh-keyscan -p %s %s >> %s), or run with --accept-new-host-keys",
                        name, host, port, opts->proxy_jump, hostport, kh, said, jport, jhost,
                        kh);
}

/* The command libssh runs for opts' ProxyCommand or ProxyJump, with its
 * stderr sent to stderr_path when given. *out malloc'ed. */
static int proxy_command_for(char **out, const struct aicp_conn_opts *opts,
                             const char *stderr_path, struct aicp_err *err)
{
    struct aicp_buf b = AICP_BUF_INIT;

    *out = NULL;
    if (opts->proxy_command == NULL || opts->proxy_command[0] == '\0')
        return aicp_ssh_jump_command(out, opts, stderr_path, err);
    if (stderr_path == NULL)
        return (*out = aicp_strdup(opts->proxy_command)) != NULL
                   ? 0
                   : aicp_err_set(err, AICP_ENOMEM, "out of memory");
    /* The user's command runs as written, under a shell whose stderr is
     * the file. */
    if (aicp_buf_puts(&b, "exec 2>") != 0 || aicp_buf_shquote(&b, stderr_path) != 0 ||
        aicp_buf_printf(&b, "; %s", opts->proxy_command) != 0) {
        aicp_buf_free(&b);
        return aicp_err_set(err, AICP_ENOMEM, "out of memory");
    }
    *out = aicp_buf_steal(&b);
    return 0;
}

int aicp_ssh_connect(struct aicp_ssh **out, const struct aicp_conn_opts *opts,
                     struct aicp_err *err)
{
    struct aicp_ssh *s = NULL;
    const char *name = opts->name ? opts->name : (opts->host ? opts->host : "?");
    const char *host = opts->host && opts->host[0] ? opts->host : name;
    unsigned int port = opts->port > 0 ? (unsigned int)opts->port : 22;
    long timeout = opts->connect_timeout > 0 ? opts->connect_timeout : 10;
    int has_command = opts->proxy_command && opts->proxy_command[0];
    int has_jump = opts->proxy_jump && opts->proxy_jump[0];
    char *proxy = NULL;
    char *user = NULL;
    char epath[PATH_MAX] = "";
    int efd = -1;
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
    if (has_command || has_jump) {
        /* Without a place for the proxy's stderr the connection still goes
         * ahead; only the message is poorer. */
        efd = proxy_err_open(epath, sizeof epath);
        if ((rc = proxy_command_for(&proxy, opts, efd >= 0 ? epath : NULL, err)) != 0) {
            aicp_err_prefix(err, "%s", name);
            goto out;
        }
        if ((rc = set_opt(s->session, SSH_OPTIONS_PROXYCOMMAND, proxy,
                          has_command ? "ProxyCommand" : "ProxyJump", name, err)) != 0)
            goto out;
    }

    if (ssh_connect(s->session) != SSH_OK) {
        char said[512];
        proxy_err_tail(efd, said, sizeof said);
        if (has_jump && !has_command && strstr(said, "Host key verification failed") != NULL)
            rc = jump_hostkey_error(err, opts, name, host, port, said);
        else if (has_command || has_jump)
            rc = aicp_err_set(err, AICP_EUNREACHABLE,
                              "cannot connect to %s (%s port %u) through %s%s: %s%s%s", name,
                              host, port, has_command ? "its ProxyCommand" : "ProxyJump ",
                              has_command ? "" : opts->proxy_jump, ssh_get_error(s->session),
                              said[0] ? "; the proxy said: " : "", said);
        else
            rc = aicp_err_set(err, AICP_EUNREACHABLE, "cannot connect to %s (%s port %u): %s",
                              name, host, port, ssh_get_error(s->session));
        explicit_bzero(said, sizeof said);
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
    /* The proxy may live on (it carries the session): it keeps writing to
     * an unlinked file nobody can open. */
    if (efd >= 0) {
        unlink(epath);
        close(efd);
    }
    free(proxy);
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
              strchr("._-@:[]", c) != NULL))
            return 0;
    }
    return 1;
}

/* One hop of a ProxyJump list, split in place: user and port may be NULL. */
struct jump_hop {
    char *user;
    char *host;
    char *port;
};

/* Splits "[user@]host[:port]" (or "[v6addr]:port") in spec, in place. */
static int hop_parse(struct jump_hop *h, char *spec)
{
    char *at = strrchr(spec, '@');
    char *colon;

    memset(h, 0, sizeof *h);
    h->host = spec;
    if (at != NULL) {
        *at = '\0';
        h->user = spec;
        h->host = at + 1;
    }
    if (h->host[0] == '[') {
        char *close = strchr(h->host, ']');
        if (close == NULL || (close[1] != '\0' && close[1] != ':'))
            return -1;
        colon = close[1] == ':' ? close + 1 : NULL;
        *close = '\0';
        h->host++;
    } else {
        colon = strchr(h->host, ':');
    }
    if (colon != NULL) {
        *colon = '\0';
        h->port = colon + 1;
    }
    if (h->host[0] == '\0' || strchr(h->host, '[') || strchr(h->host, ']') ||
        (h->user != NULL && h->user[0] == '\0') ||
        (h->port != NULL && (h->port[0] == '\0' || strspn(h->port, "0123456789") != strlen(h->port))))
        return -1;
    return 0;
}

/* The options every hop's ssh gets, so that a jump host is checked and
 * logged into the way aicp checks and logs into its own hosts: the same
 * known_hosts and strictness, the host's key, and never a prompt. */
static int jump_options(struct aicp_buf *b, const struct aicp_conn_opts *opts)
{
    const char *strict = !opts->strict_host_key ? "no"
                         : opts->accept_new_host_key ? "accept-new" : "yes";
    int timeout = opts->connect_timeout > 0 ? opts->connect_timeout : 10;
    int rc = 0;

    rc |= aicp_buf_printf(b, " -o BatchMode=yes -o ConnectTimeout=%d -o StrictHostKeyChecking=%s",
                          timeout, strict);
    if (opts->known_hosts != NULL && opts->known_hosts[0] != '\0') {
        /* ssh splits the value at spaces unless it is double-quoted. */
        struct aicp_buf kv = AICP_BUF_INIT;
        rc |= aicp_buf_printf(&kv, "UserKnownHostsFile=\"%s\"", opts->known_hosts);
        rc |= aicp_buf_puts(b, " -o ");
        rc |= kv.data ? aicp_buf_shquote(b, kv.data) : AICP_ENOMEM;
        aicp_buf_free(&kv);
    }
    if (opts->key_file != NULL && opts->key_file[0] != '\0') {
        rc |= aicp_buf_puts(b, " -i ");
        rc |= aicp_buf_shquote(b, opts->key_file);
    }
    return rc ? AICP_ENOMEM : 0;
}

/* libssh expands %h, %p... in the whole ProxyCommand and knows no escape
 * for a literal '%'; ssh reads '"' as a quote in option values. */
static int jump_path_ok(const char *path)
{
    return path == NULL || strpbrk(path, "%\"") == NULL;
}

int aicp_ssh_jump_command(char **out, const struct aicp_conn_opts *opts, const char *stderr_path,
                          struct aicp_err *err)
{
    const char *proxy_jump = opts->proxy_jump;
    struct aicp_buf b = AICP_BUF_INIT;
    char *inner = NULL;
    char *specs = NULL;
    struct jump_hop *hops = NULL;
    size_t nhops = 0;
    int rc = 0;

    *out = NULL;
    if (proxy_jump == NULL || proxy_jump[0] == '\0')
        return aicp_err_set(err, AICP_EINVAL, "empty ProxyJump");
    if (!jump_path_ok(opts->known_hosts) || !jump_path_ok(opts->key_file) ||
        !jump_path_ok(stderr_path))
        return aicp_err_set(err, AICP_EINVAL,
                            "ProxyJump '%s': the known_hosts or key file path contains %% or \", "
                            "which the jump command cannot carry",
                            proxy_jump);
    for (const char *p = proxy_jump; *p;) {
        size_t n = strcspn(p, ",");
        if (!jump_ok(p, n) || (p[n] == ',' && p[n + 1] == '\0'))
            return aicp_err_set(err, AICP_EINVAL,
                                "invalid ProxyJump '%s': expected [user@]host[:port][,...]",
                                proxy_jump);
        nhops++;
        p += n;
        if (*p == ',')
            p++;
    }
    if ((specs = aicp_strdup(proxy_jump)) == NULL || (hops = calloc(nhops, sizeof *hops)) == NULL) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    nhops = 0;
    for (char *p = specs, *save = NULL, *tok; (tok = strtok_r(p, ",", &save)) != NULL; p = NULL) {
        if (hop_parse(&hops[nhops++], tok) != 0) {
            rc = aicp_err_set(err, AICP_EINVAL,
                              "invalid ProxyJump '%s': expected [user@]host[:port][,...]",
                              proxy_jump);
            goto out;
        }
    }
    /* Not `ssh -J earlier,hops`: ssh would reach those hops with its own
     * defaults, not with these options. Each hop's ssh reaches the next hop
     * through the previous one's command instead, and only the last one
     * says %h:%p (libssh fills in the target; it would also expand a %h
     * meant for an inner ssh, so the inner targets are written out). */
    for (size_t i = 0; i < nhops; i++) {
        const struct jump_hop *h = &hops[i];
        b.len = 0;
        rc |= aicp_buf_puts(&b, i + 1 == nhops && stderr_path != NULL ? "exec ssh" : "ssh");
        rc |= jump_options(&b, opts);
        if (inner != NULL) {
            struct aicp_buf pc = AICP_BUF_INIT;
            rc |= aicp_buf_printf(&pc, "ProxyCommand=%s", inner);
            rc |= aicp_buf_puts(&b, " -o ");
            rc |= pc.data ? aicp_buf_shquote(&b, pc.data) : AICP_ENOMEM;
            aicp_buf_free(&pc);
        }
        if (i + 1 == nhops) {
            rc |= aicp_buf_puts(&b, " -W %h:%p");
        } else {
            const struct jump_hop *next = &hops[i + 1];
            int v6 = strchr(next->host, ':') != NULL;
            struct aicp_buf w = AICP_BUF_INIT;
            rc |= aicp_buf_printf(&w, "%s%s%s:%s", v6 ? "[" : "", next->host, v6 ? "]" : "",
                                  next->port ? next->port : "22");
            rc |= aicp_buf_puts(&b, " -W ");
            rc |= w.data ? aicp_buf_shquote(&b, w.data) : AICP_ENOMEM;
            aicp_buf_free(&w);
        }
        if (h->user != NULL) {
            rc |= aicp_buf_puts(&b, " -l ");
            rc |= aicp_buf_shquote(&b, h->user);
        }
        if (h->port != NULL)
            rc |= aicp_buf_printf(&b, " -p %s", h->port);
        rc |= aicp_buf_puts(&b, " ");
        rc |= aicp_buf_shquote(&b, h->host);
        if (rc != 0)
            break;
        free(inner);
        if ((inner = aicp_strndup(b.data, b.len)) == NULL) {
            rc = AICP_ENOMEM;
            break;
        }
    }
    /* Every hop's ssh inherits this stderr, so what any of them says about
     * a refused host key ends up in one private file for the message. */
    if (rc == 0 && stderr_path != NULL) {
        rc |= aicp_buf_puts(&b, " 2>");
        rc |= aicp_buf_shquote(&b, stderr_path);
    }
    if (rc != 0) {
        rc = aicp_err_set(err, AICP_ENOMEM, "out of memory");
        goto out;
    }
    *out = aicp_buf_steal(&b);
out:
    free(inner);
    free(hops);
    free(specs);
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
