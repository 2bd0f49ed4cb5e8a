/* Connections to managed hosts (agent/conn.h): a long-lived POSIX shell per
 * host, over one SSH channel (agent/ssh.c) or over a socket to a local
 * /bin/sh, that runs scripts framed by a per-connection random nonce. Each
 * exec is one write (script and stdin as quoted heredocs, then a command
 * that runs the script in a subshell with its output in files) and one read
 * (a marker line with the exit status and the output sizes, then exactly
 * that many bytes). The protocol is described in docs/internals.md; keep
 * the two in step.
 */
#include "config.h"

#include "conn.h"

#include "err.h"
#include "ssh.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>

extern char **environ;

/* Exit status the get script uses for a missing file. */
#define GET_MISSING 44
/* Stderr of the shell itself (not of scripts) is kept for messages only. */
#define SHELL_ERR_MAX 4096

struct shell {
    int open;
    struct aicp_ssh_chan *chan; /* SSH transport */
    pid_t pid;                  /* local transport: /bin/sh (or sudo) */
    int fd;                     /* socket: the shell's stdin and stdout */
    int fd_err;                 /* pipe: the shell's stderr */
    struct aicp_buf in;         /* stdout bytes read but not consumed */
    struct aicp_buf errbuf;     /* the shell's own stderr, capped */
    char *home;                 /* $HOME of the shell's user, learnt at start */
};

struct aicp_conn {
    char *name;
    int local;
    int command_timeout;
    int connect_timeout;
    struct aicp_ssh *ssh;
    struct shell plain;
    struct shell become;
    int become_is_plain;    /* login user is already the become user */
    char *become_user;
    char *login;            /* the user the connection logs in as */
    /* Other become users' shells, parked while another user is current
     * (aicp_conn_set_become_user swaps them in and out). */
    struct become_slot *slots;
    size_t nslots;
    char *become_password;  /* wiped once sent */
    int become_failed;      /* code of a failed become, repeated on later use */
    char become_msg[sizeof(((struct aicp_err *)0)->msg)];
    int dead;               /* transport failed: every exec fails at once */
    char dead_msg[sizeof(((struct aicp_err *)0)->msg)];
    char nonce[33];
    unsigned long round_trips;
    /* Batched reads (aicp_conn_record_start/_run): scripts recorded while
     * recording, then their replies, each handed out once to an identical
     * exec and all dropped at the first exec that is not one of them. */
    int recording;
    struct recorded *rec;
    size_t nrec;
    char *prelude;              /* aicp_conn_set_prelude: run before every script */
};

struct become_slot {
    char *user;
    struct shell sh;
    int is_plain;
    int failed;
    char msg[sizeof(((struct aicp_err *)0)->msg)];
};

struct recorded {
    char *script;
    char *in;
    size_t in_len;
    int become;
    char *become_user;          /* with become: whose shell */
    int done;                   /* res holds the reply */
    struct aicp_exec_result res;
};

static int nomem(struct aicp_err *err)
{
    return aicp_err_set(err, AICP_ENOMEM, "out of memory");
}

/* ---- transports: write all, read some ---------------------------------- */

static int deadline_ms(double deadline)
{
    if (deadline <= 0)
        return -1;
    double left = deadline - aicp_now();
    return left <= 0 ? 0 : (int)(left * 1000) + 1;
}

static int local_write(struct aicp_conn *c, struct shell *sh, const char *p, size_t len,
                       double deadline, struct aicp_err *err)
{
    while (len > 0) {
        struct pollfd pfd = {.fd = sh->fd, .events = POLLOUT};
        int n = poll(&pfd, 1, deadline_ms(deadline));
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            return aicp_err_set(err, AICP_ETIMEOUT, "sending to the shell on %s timed out",
                                c->name);
        ssize_t w = send(sh->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (w < 0)
            return aicp_err_set(err, AICP_EUNREACHABLE, "the shell on %s is gone: %s", c->name,
                                strerror(errno));
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static int shell_write(struct aicp_conn *c, struct shell *sh, const void *data, size_t len,
                       double deadline, struct aicp_err *err)
{
    if (c->local)
        return local_write(c, sh, data, len, deadline, err);
    return aicp_ssh_chan_write(sh->chan, data, len, err);
}

static int keep_stderr(struct shell *sh, const char *p, size_t n)
{
    if (sh->errbuf.len + n > SHELL_ERR_MAX)
        n = SHELL_ERR_MAX > sh->errbuf.len ? SHELL_ERR_MAX - sh->errbuf.len : 0;
    return n ? aicp_buf_append(&sh->errbuf, p, n) : 0;
}

/* Reads whatever arrives before the deadline into sh->in / sh->errbuf.
 * 0: got something; 1: time ran out; <0: the shell is gone. */
static int shell_read(struct aicp_conn *c, struct shell *sh, double deadline,
                      struct aicp_err *err)
{
    char buf[65536];

    if (!c->local) {
        int is_err = 0;
        int n = aicp_ssh_chan_read(sh->chan, buf, sizeof buf, deadline_ms(deadline), &is_err, err);
        if (n < 0)
            return n;
        if (n == 0)
            return 1;
        if (is_err)
            return keep_stderr(sh, buf, (size_t)n) ? nomem(err) : 0;
        return aicp_buf_append(&sh->in, buf, (size_t)n) ? nomem(err) : 0;
    }
    for (;;) {
        struct pollfd pfd[2] = {{.fd = sh->fd, .events = POLLIN},
                                {.fd = sh->fd_err, .events = POLLIN}};
        int n = poll(pfd, sh->fd_err >= 0 ? 2 : 1, deadline_ms(deadline));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return aicp_err_set(err, AICP_EIO, "poll: %s", strerror(errno));
        if (n == 0)
            return 1;
        if (sh->fd_err >= 0 && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t r = read(sh->fd_err, buf, sizeof buf);
            if (r > 0)
                return keep_stderr(sh, buf, (size_t)r) ? nomem(err) : 0;
            if (r == 0 || errno != EINTR) {
                close(sh->fd_err);
                sh->fd_err = -1;
            }
            continue;
        }
        if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = read(sh->fd, buf, sizeof buf);
            if (r > 0)
                return aicp_buf_append(&sh->in, buf, (size_t)r) ? nomem(err) : 0;
            if (r < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            /* Collect what the shell said on its way out. */
            while (sh->fd_err >= 0) {
                struct pollfd pe = {.fd = sh->fd_err, .events = POLLIN};
                if (poll(&pe, 1, 200) <= 0)
                    break;
                ssize_t e = read(sh->fd_err, buf, sizeof buf);
                if (e <= 0)
                    break;
                if (keep_stderr(sh, buf, (size_t)e))
                    break;
            }
            return aicp_err_set(err, AICP_EUNREACHABLE, "the shell on %s exited", c->name);
        }
    }
}

/* The shell's own stderr, trimmed to one readable piece, for messages. */
static const char *shell_said(struct shell *sh)
{
    char *s = sh->errbuf.data;
    if (s == NULL)
        return "";
    while (sh->errbuf.len > 0 && strchr(" \t\r\n", s[sh->errbuf.len - 1]))
        s[--sh->errbuf.len] = '\0';
    while (*s && strchr(" \t\r\n", *s))
        s++;
    /* One line for messages: "sudo: x\nsudo: y" -> "sudo: x; sudo: y". */
    for (char *p = s; (p = strchr(p, '\n')) != NULL;) {
        size_t rest = strlen(p + 1);
        if (sh->errbuf.len + 2 > sh->errbuf.cap) {
            *p++ = ' ';
            continue;
        }
        memmove(p + 2, p + 1, rest + 1);
        p[0] = ';';
        p[1] = ' ';
        sh->errbuf.len++;
        p += 2;
    }
    return s;
}

static int spawn_local(struct aicp_conn *c, struct shell *sh, const char *command,
                       struct aicp_err *err)
{
    int sv[2] = {-1, -1};
    int ep[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, def;
    char *argv[] = {(char *)"/bin/sh", (char *)"-c", (char *)command, NULL};
    char *argv_plain[] = {(char *)"/bin/sh", NULL};
    int rc = 0;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 || pipe2(ep, O_CLOEXEC) != 0) {
        rc = aicp_err_set(err, AICP_EIO, "cannot start a local shell: %s", strerror(errno));
        goto fail;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 1);
    posix_spawn_file_actions_adddup2(&fa, ep[1], 2);
    posix_spawnattr_init(&at);
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGTERM);
    sigaddset(&def, SIGHUP);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &def);
    /* Its own process group, so that a timed-out command can be killed
     * together with everything it started. */
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETPGROUP);
    int e = posix_spawn(&sh->pid, "/bin/sh", &fa, &at, command ? argv : argv_plain, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (e != 0) {
        rc = aicp_err_set(err, AICP_EIO, "cannot start /bin/sh for %s: %s", c->name, strerror(e));
        goto fail;
    }
    close(sv[1]);
    close(ep[1]);
    sh->fd = sv[0];
    sh->fd_err = ep[0];
    sh->open = 1;
    return 0;
fail:
    for (int i = 0; i < 2; i++) {
        if (sv[i] >= 0)
            close(sv[i]);
        if (ep[i] >= 0)
            close(ep[i]);
    }
    return rc;
}

static int wait_child(pid_t pid, double seconds)
{
    double end = aicp_now() + seconds;
    for (;;) {
        pid_t r = waitpid(pid, NULL, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            return 1;
        if (aicp_now() >= end)
            return 0;
        usleep(5000);
    }
}

static void shell_close(struct aicp_conn *c, struct shell *sh)
{
    if (sh->open) {
        if (c->local) {
            /* EOF on its stdin makes the shell exit and run its EXIT trap
             * (which removes the temp dir); a dead one is killed. */
            shutdown(sh->fd, SHUT_WR);
            if (c->dead)
                kill(-sh->pid, SIGTERM);
            if (!wait_child(sh->pid, c->dead ? 1.0 : 3.0)) {
                kill(-sh->pid, SIGKILL);
                kill(sh->pid, SIGKILL);
                wait_child(sh->pid, 5.0);
            }
            close(sh->fd);
            if (sh->fd_err >= 0)
                close(sh->fd_err);
        } else {
            aicp_ssh_chan_free(sh->chan);
        }
    }
    /* Output read ahead (a cat of a key file) and sudo's chatter. */
    aicp_buf_free_secret(&sh->in);
    aicp_buf_free_secret(&sh->errbuf);
    free(sh->home);
    memset(sh, 0, sizeof *sh);
    sh->fd = sh->fd_err = -1;
}

/* ---- framing ------------------------------------------------------------ */

static int base64_append(struct aicp_buf *b, const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char line[80];
    size_t col = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        line[col++] = tab[(v >> 18) & 63];
        line[col++] = tab[(v >> 12) & 63];
        line[col++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        line[col++] = i + 2 < n ? tab[v & 63] : '=';
        if (col >= 76 || i + 3 >= n) {
            line[col++] = '\n';
            if (aicp_buf_append(b, line, col) != 0)
                return AICP_ENOMEM;
            col = 0;
        }
    }
    return 0;
}

static int build_request(struct aicp_conn *c, struct aicp_buf *b, const char *script,
                         const void *in, size_t in_len, struct aicp_err *err)
{
    char delim[64];
    size_t sl = strlen(script);
    int rc = 0;

    snprintf(delim, sizeof delim, "AICP_EOF_%s", c->nonce);
    if (aicp_has_line(script, delim))
        return aicp_err_set(err, AICP_EINVAL, "script for %s contains the framing line %s",
                            c->name, delim);
    /* Every process started here is paid on every exec, so the script is
     * sourced straight from a here-document on fd 3 and its stdout streams
     * back as it is: one subshell per exec, and `cat` only for stderr. */
    if (in_len > 0) {
        rc |= aicp_buf_printf(b, "base64 -d >\"$D/i\" <<'%s'\n", delim);
        rc |= base64_append(b, in, in_len);
        rc |= aicp_buf_printf(b, "%s\n", delim);
    }
    /* The shell itself runs under umask 077 (shell_init), so "$D/i" and
     * "$D/e", which hold stdin (file contents, secrets) and stderr, are
     * 0600 from creation; the script gets the login umask back. */
    rc |= aicp_buf_printf(b,
                          "(umask \"$_aicp_um\"; cd ~ 2>/dev/null; . /dev/fd/3) 3<<'%s' <%s "
                          "2>\"$D/e\"\n",
                          delim, in_len > 0 ? "\"$D/i\"" : "/dev/null");
    rc |= aicp_buf_append(b, script, sl);
    if (sl > 0 && script[sl - 1] != '\n')
        rc |= aicp_buf_puts(b, "\n");
    rc |= aicp_buf_printf(b, "%s\n", delim);
    rc |= aicp_buf_printf(b,
                          "printf '\\nAICP_%s_E %%d\\n' \"$?\"; %s[ -s \"$D/e\" ] && cat \"$D/e\" "
                          "&& : >\"$D/e\"; printf '\\nAICP_%s_Z\\n'\n",
                          c->nonce, in_len > 0 ? ": >\"$D/i\"; " : "", c->nonce);
    return rc ? nomem(err) : 0;
}

static void mark_dead(struct aicp_conn *c, const struct aicp_err *err)
{
    c->dead = 1;
    snprintf(c->dead_msg, sizeof c->dead_msg, "%s", err && err->msg[0] ? err->msg : "?");
}

/* Finds a reply in sh->in: stdout, then "\nAICP_<nonce>_E R\n", stderr,
 * then "\nAICP_<nonce>_Z\n". Returns 1 with the exit status, the lengths of
 * stdout (*o, at offset 0) and stderr (*e, at *eoff) and the reply's total
 * length (*body); 0 when more input is needed; -1 when it is garbled. */
static int find_marker(struct aicp_conn *c, struct shell *sh, long *r, size_t *o, size_t *e,
                       size_t *eoff, size_t *body)
{
    char etag[64], ztag[64];
    size_t el = (size_t)snprintf(etag, sizeof etag, "\nAICP_%s_E ", c->nonce);
    size_t zl = (size_t)snprintf(ztag, sizeof ztag, "\nAICP_%s_Z\n", c->nonce);
    const char *d = sh->in.data;
    size_t n = sh->in.len;
    if (d == NULL)
        return 0;
    const char *em = memmem(d, n, etag, el);
    if (em == NULL)
        return 0;
    const char *nl = memchr(em + el, '\n', n - (size_t)(em + el - d));
    if (nl == NULL)
        return 0;
    char num[32];
    size_t nlen = (size_t)(nl - (em + el));
    if (nlen == 0 || nlen >= sizeof num)
        return -1;
    memcpy(num, em + el, nlen);
    num[nlen] = '\0';
    char *end = NULL;
    *r = strtol(num, &end, 10);
    if (*end != '\0')
        return -1;
    const char *es = nl + 1;
    const char *zm = memmem(es, n - (size_t)(es - d), ztag + 1, zl - 1);
    if (zm == NULL)
        return 0;
    *o = (size_t)(em - d);
    *eoff = (size_t)(es - d);
    /* The stderr part ends with the newline that starts the Z tag. */
    if (zm == es) {
        *e = 0;
    } else {
        if (zm[-1] != '\n')
            return -1;
        *e = (size_t)(zm - 1 - es);
    }
    *body = (size_t)(zm + zl - 1 - d);
    return 1;
}

static void consume(struct aicp_buf *b, size_t n)
{
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

/* Reads one reply. Fills res when given. */
static int read_reply(struct aicp_conn *c, struct shell *sh, double deadline, int timeout_s,
                      struct aicp_exec_result *res, long *status, struct aicp_err *err)
{
    long r = 0;
    size_t o = 0, e = 0, eoff = 0, body = 0;
    int rc;

    for (;;) {
        int found = find_marker(c, sh, &r, &o, &e, &eoff, &body);
        if (found < 0)
            return aicp_err_set(err, AICP_EREMOTE, "garbled reply from the shell on %s", c->name);
        if (found > 0)
            break;
        rc = shell_read(c, sh, deadline, err);
        if (rc == 1)
            return aicp_err_set(err, AICP_ETIMEOUT, "command on %s timed out after %d s", c->name,
                                timeout_s);
        if (rc < 0) {
            const char *said = shell_said(sh);
            char why[sizeof err->msg];
            if (rc != AICP_EUNREACHABLE)
                return rc;
            snprintf(why, sizeof why, "%s", err->msg);
            return aicp_err_set(err, AICP_EUNREACHABLE, "connection to %s lost (%s)%s%s", c->name,
                                why, said[0] ? ": " : "", said);
        }
    }
    if (res != NULL) {
        res->out = malloc(o + 1);
        res->err = malloc(e + 1);
        if (res->out == NULL || res->err == NULL) {
            aicp_exec_result_clear(res);
            return nomem(err);
        }
        memcpy(res->out, sh->in.data, o);
        res->out[o] = '\0';
        res->out_len = o;
        memcpy(res->err, sh->in.data + eoff, e);
        res->err[e] = '\0';
        res->err_len = e;
        res->rc = (int)r;
    }
    *status = r;
    consume(&sh->in, body);
    return 0;
}

/* Makes the shell's private temp dir and cleanup traps; then waits for it. */
static int shell_init(struct aicp_conn *c, struct shell *sh, double deadline,
                      struct aicp_err *err)
{
    struct aicp_buf b = AICP_BUF_INIT;
    long status = 0;
    int rc;

    rc = aicp_buf_printf(&b,
                         "_aicp_um=$(umask); umask 077\n"
                         "D=$(mktemp -d \"${TMPDIR:-/tmp}/.aicp-XXXXXXXX\") || D=\n"
                         "if [ -n \"$D\" ]; then export AICP_TMP=\"$D\"; "
                         "trap 'rm -rf \"$D\"' EXIT; trap 'exit 129' HUP; trap 'exit 130' INT; "
                         "trap 'exit 143' TERM; trap 'exit 141' PIPE; r=0; else r=1; fi\n"
                         "printf '%%s\\nAICP_%s_E %%d\\n\\nAICP_%s_Z\\n' \"$HOME\" \"$r\"\n",
                         c->nonce, c->nonce);
    if (rc != 0) {
        rc = nomem(err);
        goto out;
    }
    if ((rc = shell_write(c, sh, b.data, b.len, deadline, err)) != 0)
        goto out;
    struct aicp_exec_result res = {0};
    rc = read_reply(c, sh, deadline, c->connect_timeout, &res, &status, err);
    if (rc == 0) {
        free(sh->home);
        sh->home = res.out;
        res.out = NULL;
    }
    aicp_exec_result_clear(&res);
    if (rc == AICP_ETIMEOUT)
        rc = aicp_err_set(err, AICP_EUNREACHABLE, "the shell on %s did not answer within %d s",
                          c->name, c->connect_timeout);
    if (rc == 0 && status != 0)
        rc = aicp_err_set(err, AICP_EREMOTE, "cannot create a private temp directory on %s: %s",
                          c->name, shell_said(sh));
out:
    aicp_buf_free(&b);
    return rc;
}

static int shell_start(struct aicp_conn *c, struct shell *sh, const char *command,
                       struct aicp_err *err)
{
    if (c->local)
        return spawn_local(c, sh, command, err);
    int rc = aicp_ssh_chan_open(&sh->chan, c->ssh, command ? command : "/bin/sh", err);
    if (rc == 0)
        sh->open = 1;
    return rc;
}

/* ---- become ------------------------------------------------------------- */

static int become_fail(struct aicp_conn *c, int code, struct aicp_err *err, const char *detail)
{
    aicp_err_set(err, code, "become failed on host %s: sudo to %s: %s", c->name, c->become_user,
                 detail);
    c->become_failed = code;
    snprintf(c->become_msg, sizeof c->become_msg, "%s", err->msg);
    return code;
}

/* Starts the sudo shell. sudo prints a per-connection prompt on stderr when
 * it wants the password, and the shell prints a ready line when it runs, so
 * the password is only ever sent to sudo, never to the shell. */
static int become_start(struct aicp_conn *c, struct aicp_err *err)
{
    struct shell *sh = &c->become;
    struct aicp_buf cmd = AICP_BUF_INIT;
    char ready[64];
    char prompt[64];
    int tries = 0;
    double deadline = aicp_now() + (c->connect_timeout > 0 ? c->connect_timeout : 10) + 20;
    int rc = 0;

    if (c->become_failed) {
        aicp_err_set(err, c->become_failed, "%s", c->become_msg);
        return c->become_failed;
    }
    snprintf(ready, sizeof ready, "AICP_READY_%s\n", c->nonce);
    snprintf(prompt, sizeof prompt, "AICP_PW_%s:", c->nonce);
    rc |= aicp_buf_puts(&cmd, c->become_password ? "sudo -H -S -p " : "sudo -n -H -p ");
    rc |= aicp_buf_shquote(&cmd, prompt);
    rc |= aicp_buf_puts(&cmd, " -u ");
    rc |= aicp_buf_shquote(&cmd, c->become_user);
    rc |= aicp_buf_printf(&cmd, " /bin/sh -c 'echo AICP_READY_%s; exec /bin/sh'", c->nonce);
    if (rc != 0) {
        rc = nomem(err);
        goto out;
    }
    if ((rc = shell_start(c, sh, cmd.data, err)) != 0)
        goto out;
    for (;;) {
        char *p = sh->in.data ? strstr(sh->in.data, ready) : NULL;
        if (p != NULL) {
            consume(&sh->in, (size_t)(p - sh->in.data) + strlen(ready));
            break;
        }
        p = sh->errbuf.data ? strstr(sh->errbuf.data, prompt) : NULL;
        if (p != NULL) {
            size_t off = (size_t)(p - sh->errbuf.data) + strlen(prompt);
            consume(&sh->errbuf, off);
            if (c->become_password == NULL || tries++ > 0) {
                rc = become_fail(c, AICP_EAUTH, err,
                                 c->become_password ? "incorrect password"
                                                    : "a password is required");
                goto out;
            }
            size_t pl = strlen(c->become_password);
            char *line = malloc(pl + 2);
            if (line == NULL) {
                rc = nomem(err);
                goto out;
            }
            memcpy(line, c->become_password, pl);
            line[pl] = '\n';
            line[pl + 1] = '\0';
            rc = shell_write(c, sh, line, pl + 1, deadline, err);
            aicp_free_secret(line);
            if (rc != 0)
                goto out;
            continue;
        }
        rc = shell_read(c, sh, deadline, err);
        if (rc == 1) {
            rc = become_fail(c, AICP_ETIMEOUT, err,
                             "no answer from sudo (does it want a terminal?)");
            goto out;
        }
        if (rc < 0) {
            char why[sizeof err->msg];
            const char *said = shell_said(sh);
            snprintf(why, sizeof why, "%s", said[0] ? said : err->msg);
            rc = become_fail(c, AICP_EAUTH, err, why);
            goto out;
        }
    }
    aicp_buf_free_secret(&sh->errbuf);
    rc = shell_init(c, sh, deadline, err);
out:
    /* The password is kept (in memory only, wiped at close) for sudo to
     * another become user later in the run. */
    if (rc != 0)
        shell_close(c, sh);
    aicp_buf_free(&cmd);
    return rc;
}

/* ---- public API --------------------------------------------------------- */

int aicp_conn_open(struct aicp_conn **out, const struct aicp_conn_opts *opts, struct aicp_err *err)
{
    struct aicp_conn *c = NULL;
    unsigned char rnd[16];
    const char *name = opts->name ? opts->name : (opts->host ? opts->host : "localhost");
    char *login = NULL;
    int rc = 0;

    *out = NULL;
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return nomem(err);
    c->plain.fd = c->plain.fd_err = c->become.fd = c->become.fd_err = -1;
    c->local = opts->local;
    c->command_timeout = opts->command_timeout;
    c->connect_timeout = opts->connect_timeout > 0 ? opts->connect_timeout : 10;
    c->name = aicp_strdup(name);
    c->become_user = aicp_strdup(opts->become_user && opts->become_user[0] ? opts->become_user
                                                                            : "root");
    if (c->name == NULL || c->become_user == NULL) {
        rc = nomem(err);
        goto out;
    }
    if (opts->become_password != NULL &&
        (c->become_password = aicp_strdup(opts->become_password)) == NULL) {
        rc = nomem(err);
        goto out;
    }
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        rc = aicp_err_set(err, AICP_EIO, "getrandom: %s", strerror(errno));
        goto out;
    }
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(c->nonce + 2 * i, 3, "%02x", rnd[i]);

    if (!c->local && opts->user && opts->user[0]) {
        login = aicp_strdup(opts->user);
    } else {
        struct passwd pw, *pp = NULL;
        char pwbuf[4096];
        if (getpwuid_r(geteuid(), &pw, pwbuf, sizeof pwbuf, &pp) == 0 && pp != NULL)
            login = aicp_strdup(pp->pw_name);
    }
    c->become_is_plain = login != NULL && strcmp(login, c->become_user) == 0;
    c->login = login;
    login = NULL;

    if (!c->local && (rc = aicp_ssh_connect(&c->ssh, opts, err)) != 0)
        goto out;
    if ((rc = shell_start(c, &c->plain, NULL, err)) != 0)
        goto out;
    if ((rc = shell_init(c, &c->plain, aicp_now() + c->connect_timeout, err)) != 0)
        goto out;
    *out = c;
    c = NULL;
out:
    free(login);
    aicp_conn_close(c);
    return rc;
}

/* ---- batched reads ------------------------------------------------------ */

int aicp_conn_set_become_user(struct aicp_conn *c, const char *user);

static void recorded_clear(struct aicp_conn *c)
{
    for (size_t i = 0; i < c->nrec; i++) {
        /* Scripts carry module arguments in plaintext (a line, a
         * password hash, an environment prelude). */
        aicp_free_secret(c->rec[i].script);
        free(c->rec[i].become_user);
        if (c->rec[i].in) {
            OPENSSL_cleanse(c->rec[i].in, c->rec[i].in_len);
            free(c->rec[i].in);
        }
        aicp_exec_result_clear(&c->rec[i].res);
    }
    free(c->rec);
    c->rec = NULL;
    c->nrec = 0;
}

static int record(struct aicp_conn *c, const char *script, const void *in, size_t in_len,
                  int become, struct aicp_err *err)
{
    struct recorded *r = realloc(c->rec, (c->nrec + 1) * sizeof(*r));
    if (r == NULL)
        return nomem(err);
    c->rec = r;
    r = &c->rec[c->nrec];
    memset(r, 0, sizeof(*r));
    r->script = aicp_strdup(script);
    r->in = in_len ? malloc(in_len) : NULL;
    r->become_user = become ? aicp_strdup(c->become_user) : NULL;
    if (r->script == NULL || (in_len && r->in == NULL) || (become && r->become_user == NULL)) {
        aicp_free_secret(r->script);
        free(r->in);
        free(r->become_user);
        return nomem(err);
    }
    if (in_len)
        memcpy(r->in, in, in_len);
    r->in_len = in_len;
    r->become = become;
    c->nrec++;
    return aicp_err_set(err, AICP_ERECORDED, "recorded for a batched read on %s", c->name);
}

/* Hands out the reply of an identical recorded exec, once. */
static int replay(struct aicp_conn *c, const char *script, const void *in, size_t in_len,
                  int become, struct aicp_exec_result *res)
{
    for (size_t i = 0; i < c->nrec; i++) {
        struct recorded *r = &c->rec[i];
        if (!r->done || r->become != become || r->in_len != in_len ||
            (become && strcmp(r->become_user, c->become_user) != 0) ||
            strcmp(r->script, script) != 0 || (in_len && memcmp(r->in, in, in_len) != 0))
            continue;
        *res = r->res;
        memset(&r->res, 0, sizeof(r->res));
        r->done = 0;
        return 1;
    }
    return 0;
}

int aicp_conn_record_start(struct aicp_conn *c)
{
    recorded_clear(c);
    c->recording = 1;
    return 0;
}

static struct shell *shell_for(struct aicp_conn *c, int become, struct aicp_err *err, int *rc)
{
    *rc = 0;
    if (!become || c->become_is_plain)
        return &c->plain;
    if (!c->become.open && (*rc = become_start(c, err)) != 0)
        return NULL;
    return &c->become;
}

/* Whether two recorded execs go to the same shell (and so in one write). */
static int same_shell(const struct recorded *a, const struct recorded *b)
{
    return a->become == b->become && (!a->become || strcmp(a->become_user, b->become_user) == 0);
}

int aicp_conn_record_run(struct aicp_conn *c, struct aicp_err *err)
{
    struct aicp_buf req = AICP_BUF_INIT;
    double deadline = c->command_timeout > 0 ? aicp_now() + c->command_timeout : 0;
    int rc = 0;
    c->recording = 0;
    if (c->dead)
        return aicp_err_set(err, AICP_EUNREACHABLE, "connection to %s is closed after an earlier "
                            "failure (%s)", c->name, c->dead_msg);
    /* Runs of recorded execs for the same shell go out in one write, and
     * their replies come back in order: one round trip per run. */
    for (size_t i = 0; i < c->nrec && rc == 0;) {
        size_t j = i;
        if (c->rec[i].become && (rc = aicp_conn_set_become_user(c, c->rec[i].become_user)) != 0) {
            rc = nomem(err);
            break;
        }
        struct shell *sh = shell_for(c, c->rec[i].become, err, &rc);
        if (sh == NULL)
            break;
        req.len = 0;
        while (j < c->nrec && rc == 0 && same_shell(&c->rec[i], &c->rec[j])) {
            rc = build_request(c, &req, c->rec[j].script, c->rec[j].in, c->rec[j].in_len, err);
            j++;
        }
        if (rc == 0)
            rc = shell_write(c, sh, req.data, req.len, deadline, err);
        for (size_t k = i; k < j && rc == 0; k++) {
            long status = 0;
            rc = read_reply(c, sh, deadline, c->command_timeout, &c->rec[k].res, &status, err);
            c->rec[k].done = rc == 0;
        }
        c->round_trips++;
        i = j;
    }
    if (rc == AICP_EUNREACHABLE || rc == AICP_ETIMEOUT || rc == AICP_EREMOTE)
        mark_dead(c, err);
    aicp_buf_free_secret(&req);
    if (rc != 0)
        recorded_clear(c);
    return rc;
}

void aicp_conn_close(struct aicp_conn *c)
{
    if (c == NULL)
        return;
    recorded_clear(c);
    aicp_free_secret(c->prelude);
    for (size_t i = 0; i < c->nslots; i++) {
        shell_close(c, &c->slots[i].sh);
        free(c->slots[i].user);
    }
    free(c->slots);
    free(c->login);
    shell_close(c, &c->become);
    shell_close(c, &c->plain);
    aicp_ssh_free(c->ssh);
    aicp_free_secret(c->become_password);
    free(c->become_user);
    free(c->name);
    free(c);
}

const char *aicp_conn_home(struct aicp_conn *c, int become, struct aicp_err *err)
{
    int rc = 0;
    struct shell *sh = shell_for(c, become, err, &rc);
    return sh ? sh->home : NULL;
}

int aicp_conn_set_become_user(struct aicp_conn *c, const char *user)
{
    if (user == NULL || *user == '\0')
        user = "root";
    if (strcmp(user, c->become_user) == 0)
        return 0;
    struct become_slot *slots = realloc(c->slots, (c->nslots + 1) * sizeof(*slots));
    if (slots == NULL)
        return AICP_ENOMEM;
    c->slots = slots;
    char *name = aicp_strdup(user);
    if (name == NULL)
        return AICP_ENOMEM;
    /* Park the current user's shell... */
    struct become_slot *park = &c->slots[c->nslots++];
    park->user = c->become_user;
    park->sh = c->become;
    park->is_plain = c->become_is_plain;
    park->failed = c->become_failed;
    memcpy(park->msg, c->become_msg, sizeof(park->msg));
    /* ...and take the wanted one's, or start fresh. */
    memset(&c->become, 0, sizeof(c->become));
    c->become.fd = c->become.fd_err = -1;
    c->become_user = name;
    c->become_is_plain = c->login != NULL && strcmp(c->login, name) == 0;
    c->become_failed = 0;
    c->become_msg[0] = '\0';
    for (size_t i = 0; i + 1 < c->nslots; i++) {
        if (strcmp(c->slots[i].user, name) != 0)
            continue;
        c->become = c->slots[i].sh;
        c->become_is_plain = c->slots[i].is_plain;
        c->become_failed = c->slots[i].failed;
        memcpy(c->become_msg, c->slots[i].msg, sizeof(c->become_msg));
        free(c->slots[i].user);
        c->slots[i] = c->slots[--c->nslots];
        break;
    }
    return 0;
}

int aicp_conn_set_prelude(struct aicp_conn *c, const char *prelude)
{
    char *p = prelude && *prelude ? aicp_strdup(prelude) : NULL;
    if (prelude && *prelude && p == NULL)
        return AICP_ENOMEM;
    /* The task's environment: it may hold tokens and passwords. */
    aicp_free_secret(c->prelude);
    c->prelude = p;
    return 0;
}

static int exec_script(struct aicp_conn *c, const char *script, const void *stdin_data,
                       size_t stdin_len, int become, struct aicp_exec_result *res,
                       struct aicp_err *err);

int aicp_conn_exec(struct aicp_conn *c, const char *script, const void *stdin_data, size_t stdin_len,
                   int become, struct aicp_exec_result *res, struct aicp_err *err)
{
    if (c->prelude == NULL)
        return exec_script(c, script, stdin_data, stdin_len, become, res, err);
    /* The prelude is part of the script, so a batched read recorded under
     * one environment is never handed to a task with another. */
    struct aicp_buf full = AICP_BUF_INIT;
    memset(res, 0, sizeof *res);
    if (aicp_buf_printf(&full, "%s\n%s", c->prelude, script) != 0)
        return nomem(err);
    int rc = exec_script(c, full.data, stdin_data, stdin_len, become, res, err);
    aicp_buf_free_secret(&full);
    return rc;
}

static int exec_script(struct aicp_conn *c, const char *script, const void *stdin_data,
                       size_t stdin_len, int become, struct aicp_exec_result *res,
                       struct aicp_err *err)
{
    struct aicp_buf req = AICP_BUF_INIT;
    struct shell *sh = &c->plain;
    double deadline = c->command_timeout > 0 ? aicp_now() + c->command_timeout : 0;
    long status = 0;
    int rc;

    memset(res, 0, sizeof *res);
    if (c->dead)
        return aicp_err_set(err, AICP_EUNREACHABLE, "connection to %s is closed after an earlier "
                            "failure (%s)", c->name, c->dead_msg);
    if (c->recording)
        return record(c, script, stdin_data, stdin_len, become, err);
    if (replay(c, script, stdin_data, stdin_len, become, res))
        return 0;
    /* Anything else may change the host: what was read ahead is stale. */
    recorded_clear(c);
    if (become && !c->become_is_plain) {
        sh = &c->become;
        if (!sh->open && (rc = become_start(c, err)) != 0) {
            if (rc == AICP_EUNREACHABLE)
                mark_dead(c, err);
            return rc;
        }
    }
    if ((rc = build_request(c, &req, script, stdin_data, stdin_len, err)) != 0)
        goto out;
    if ((rc = shell_write(c, sh, req.data, req.len, deadline, err)) != 0)
        goto out;
    rc = read_reply(c, sh, deadline, c->command_timeout, res, &status, err);
    c->round_trips++;
out:
    if (rc == AICP_EUNREACHABLE || rc == AICP_ETIMEOUT || rc == AICP_EREMOTE)
        mark_dead(c, err);
    /* The request can hold secrets passed as stdin. */
    aicp_buf_free_secret(&req);
    return rc;
}

void aicp_exec_result_clear(struct aicp_exec_result *res)
{
    if (res == NULL)
        return;
    /* Command output may carry secrets (a cat of a key file). */
    if (res->out != NULL)
        OPENSSL_cleanse(res->out, res->out_len);
    if (res->err != NULL)
        OPENSSL_cleanse(res->err, res->err_len);
    free(res->out);
    free(res->err);
    memset(res, 0, sizeof *res);
}

/* First line of a script's stderr, for messages. */
static void first_line(char *dst, size_t cap, const struct aicp_exec_result *res)
{
    const char *s = res->err ? res->err : "";
    size_t n = strcspn(s, "\n");
    snprintf(dst, cap, "%.*s", (int)n, s);
}

int aicp_conn_put(struct aicp_conn *c, const char *path, const void *data, size_t len, int mode,
                  const char *owner, const char *group, int become, struct aicp_err *err)
{
    struct aicp_buf s = AICP_BUF_INIT;
    struct aicp_exec_result res = {0};
    char why[512];
    int rc = 0;

    rc |= aicp_buf_puts(&s, "p=");
    rc |= aicp_buf_shquote(&s, path);
    rc |= aicp_buf_puts(&s,
                        "\ncase $p in */*) d=${p%/*}; [ -n \"$d\" ] || d=/ ;; *) d=. ;; esac\n"
                        "if [ ! -d \"$d\" ]; then echo \"directory $d does not exist\" >&2; "
                        "exit 3; fi\n"
                        "t=$(mktemp \"$d/.aicp-tmp.XXXXXX\") || exit 4\n"
                        "k() {\n"
                        /* Named ACL entries of the file being replaced stay
                         * (the chmod below still sets the mode bits). */
                        "  if [ -e \"$p\" ] && command -v getfacl >/dev/null 2>&1; then "
                        "getfacl -p -- \"$p\" 2>/dev/null | setfacl --set-file=- -- \"$t\" "
                        "2>/dev/null; fi\n");
    if (mode >= 0) {
        rc |= aicp_buf_printf(&s, "  chmod %04o \"$t\" || return 1\n", (unsigned)mode & 07777u);
    } else {
        rc |= aicp_buf_puts(&s, "  if [ -e \"$p\" ]; then chmod \"$(stat -L -c %a \"$p\")\" \"$t\" "
                                "|| return 1; else chmod \"$(printf %o $((0666 & ~$(umask))))\" "
                                "\"$t\" || return 1; fi\n");
    }
    /* Keep an existing file's owner, as a rewrite in place would. */
    rc |= aicp_buf_puts(&s, "  if [ -e \"$p\" ]; then chown \"$(stat -L -c %u:%g \"$p\")\" "
                            "\"$t\" 2>/dev/null; fi\n");
    if (owner != NULL && owner[0]) {
        rc |= aicp_buf_puts(&s, "  chown ");
        rc |= aicp_buf_shquote(&s, owner);
        rc |= aicp_buf_puts(&s, " \"$t\" || return 1\n");
    }
    if (group != NULL && group[0]) {
        rc |= aicp_buf_puts(&s, "  chgrp ");
        rc |= aicp_buf_shquote(&s, group);
        rc |= aicp_buf_puts(&s, " \"$t\" || return 1\n");
    }
    /* fd 3 is opened before the chmod so a read-only mode cannot stop the
     * write; `sync FILE` is an fsync of that file (coreutils >= 8.24). */
    rc |= aicp_buf_puts(&s, "  cat >&3\n}\n"
                            "if k 3>\"$t\" && { sync \"$t\" 2>/dev/null || :; } && "
                            "mv -f \"$t\" \"$p\"; then sync \"$d\" 2>/dev/null; exit 0; fi\n"
                            "rm -f \"$t\"; exit 5\n");
    if (rc != 0) {
        rc = nomem(err);
        goto out;
    }
    if ((rc = aicp_conn_exec(c, s.data, data, len, become, &res, err)) != 0)
        goto out;
    if (res.rc != 0) {
        first_line(why, sizeof why, &res);
        rc = aicp_err_set(err, AICP_EREMOTE, "cannot write %s on %s: %s", path, c->name,
                          why[0] ? why : "failed");
    }
out:
    aicp_exec_result_clear(&res);
    aicp_buf_free(&s);
    return rc;
}

int aicp_conn_get(struct aicp_conn *c, const char *path, char **data, size_t *len, int become,
                  struct aicp_err *err)
{
    struct aicp_buf s = AICP_BUF_INIT;
    struct aicp_exec_result res = {0};
    char why[512];
    int rc = 0;

    *data = NULL;
    *len = 0;
    rc |= aicp_buf_puts(&s, "p=");
    rc |= aicp_buf_shquote(&s, path);
    rc |= aicp_buf_printf(&s, "\n[ -e \"$p\" ] || exit %d\nexec cat -- \"$p\"\n", GET_MISSING);
    if (rc != 0) {
        rc = nomem(err);
        goto out;
    }
    if ((rc = aicp_conn_exec(c, s.data, NULL, 0, become, &res, err)) != 0)
        goto out;
    if (res.rc == GET_MISSING) {
        rc = aicp_err_set(err, AICP_ENOTFOUND, "%s not found on %s", path, c->name);
    } else if (res.rc != 0) {
        first_line(why, sizeof why, &res);
        rc = aicp_err_set(err, AICP_EREMOTE, "cannot read %s on %s: %s", path, c->name,
                          why[0] ? why : "failed");
    } else {
        *data = res.out;
        *len = res.out_len;
        res.out = NULL;
    }
out:
    aicp_exec_result_clear(&res);
    aicp_buf_free(&s);
    return rc;
}

unsigned long aicp_conn_round_trips(const struct aicp_conn *c)
{
    return c ? c->round_trips : 0;
}
