/* The SSH byte channel under agent/conn.c: one libssh session per host
 * (connect, host key check against known_hosts, key or agent auth, ProxyJump
 * and ProxyCommand) and commands on channels of that session, read and
 * written as plain byte streams with timeouts. It knows nothing of the
 * framing protocol that conn.c speaks over the channel. Also parses the SSH
 * options that inventories put in ansible_ssh_common_args.
 *
 * A session and its channels are used by one thread at a time; sessions
 * share no mutable state.
 */
#ifndef AICP_SSH_H
#define AICP_SSH_H

#include <stddef.h>

struct aicp_err;
struct aicp_conn_opts;

struct aicp_ssh;      /* a connected, authenticated session */
struct aicp_ssh_chan; /* one command running on a channel of a session */

/* Connects to opts->host:opts->port (through the proxy, if any), checks the
 * host key, authenticates. Uses name, host, port, user, key_file,
 * known_hosts, strict_host_key, accept_new_host_key, proxy_jump,
 * proxy_command and connect_timeout from opts. A proxy's stderr goes to a
 * private temp file (removed before return) whose last lines end the
 * message when the connection fails. Errors: AICP_EUNREACHABLE,
 * AICP_EHOSTKEY (the message says how to accept the key, a jump host's
 * too), AICP_EAUTH. */
int aicp_ssh_connect(struct aicp_ssh **out, const struct aicp_conn_opts *opts,
                     struct aicp_err *err);
/* Disconnects; closes nothing else (free channels first). NULL is fine. */
void aicp_ssh_free(struct aicp_ssh *s);

/* Runs command (through the login user's shell, as sshd does) on a new
 * channel of s. The channel borrows s: free it before s. */
int aicp_ssh_chan_open(struct aicp_ssh_chan **out, struct aicp_ssh *s, const char *command,
                       struct aicp_err *err);
/* Writes all of data to the command's stdin. AICP_EUNREACHABLE when the
 * channel or session is gone. */
int aicp_ssh_chan_write(struct aicp_ssh_chan *ch, const void *data, size_t len,
                        struct aicp_err *err);
/* Waits up to timeout_ms (-1: forever) for output and returns the number of
 * bytes read (> 0) with *is_stderr telling which stream they came from, 0
 * when the time ran out, AICP_EUNREACHABLE at end of output (the command
 * exited) or on a transport error. */
int aicp_ssh_chan_read(struct aicp_ssh_chan *ch, void *buf, size_t len, int timeout_ms,
                       int *is_stderr, struct aicp_err *err);
/* Closes the channel (the remote command gets EOF). NULL is fine. */
void aicp_ssh_chan_free(struct aicp_ssh_chan *ch);

/* The ProxyCommand that implements ProxyJump opts->proxy_jump,
 * "[user@]host[:port]" or a comma-separated list of hops (the last one
 * nearest the target): "ssh OPTIONS -W %h:%p [-l user] [-p port] host",
 * each earlier hop reached through a nested -o ProxyCommand of the same
 * form. OPTIONS make every hop's ssh check host keys and log in as aicp
 * does: BatchMode, ConnectTimeout, StrictHostKeyChecking (yes, accept-new
 * or no from strict_host_key/accept_new_host_key), UserKnownHostsFile
 * (known_hosts) and -i (key_file) when given. With stderr_path, the ssh
 * runs under exec with its stderr (and every hop's) sent to that file.
 * *out is malloc'ed. AICP_EINVAL for an empty or malformed jump, or paths
 * holding '%' or '"'. */
int aicp_ssh_jump_command(char **out, const struct aicp_conn_opts *opts, const char *stderr_path,
                          struct aicp_err *err);

/* Finds -o ProxyCommand=..., -o ProxyJump=... and -J HOST in an
 * ansible_ssh_common_args / ansible_ssh_extra_args string (shell-quoted, as
 * Ansible passes it to ssh) and returns their values, malloc'ed, or NULL
 * when absent or "none". Other options are ignored. AICP_EINVAL for an
 * unterminated quote or an option missing its value. */
int aicp_ssh_parse_common_args(const char *args, char **proxy_jump, char **proxy_command,
                               struct aicp_err *err);

#endif
