/* Connections to managed hosts: one per host per run, reused by every task.
 *
 * A connection is a long-lived POSIX shell on the host (over one libssh
 * session, or a local /bin/sh for ansible_connection=local) that runs
 * scripts framed by a per-connection nonce: each exec is one write and one
 * read on an already-open channel, with no new connection, channel or remote
 * interpreter per task. A second shell under sudo is opened on first use
 * for become. Scripts run in a subshell with a private 0700 temp directory
 * in $AICP_TMP; stdin bytes are delivered to the script's standard input.
 */
#ifndef AICP_CONN_H
#define AICP_CONN_H

#include <stddef.h>

struct aicp_err;

struct aicp_conn_opts {
    const char *name;          /* inventory_hostname, for messages */
    const char *host;          /* ansible_host (default: name) */
    int port;                  /* ansible_port (default 22) */
    const char *user;          /* ansible_user (default: current user) */
    const char *key_file;      /* ansible_ssh_private_key_file (optional; agent and default keys otherwise) */
    const char *known_hosts;   /* known_hosts file (default ~/.ssh/known_hosts) */
    int strict_host_key;       /* 1 (default): unknown or changed keys fail */
    int accept_new_host_key;   /* an unknown key is accepted and recorded; a changed one still fails */
    const char *proxy_jump;    /* [user@]host[:port] from -o ProxyJump / -J */
    const char *proxy_command; /* from -o ProxyCommand */
    int local;                 /* ansible_connection=local */
    int connect_timeout;       /* seconds (default 10) */
    int command_timeout;       /* seconds per exec (default 0: none) */
    const char *become_user;   /* default root */
    const char *become_password; /* secret: sent on sudo's stdin, never argv */
};

struct aicp_exec_result {
    int rc;          /* exit status of the script; 128+N for signal N */
    char *out;       /* stdout, NUL-terminated */
    size_t out_len;
    char *err;       /* stderr, NUL-terminated */
    size_t err_len;
};

struct aicp_conn;

/* Connects and starts the remote shell. Failures: AICP_EUNREACHABLE
 * (network, timeout), AICP_EHOSTKEY (message says how to accept the key),
 * AICP_EAUTH. */
int aicp_conn_open(struct aicp_conn **out, const struct aicp_conn_opts *opts, struct aicp_err *err);
void aicp_conn_close(struct aicp_conn *c);

/* Runs a POSIX sh script. become=1 runs it in the sudo shell. stdin_data may
 * be NULL. A non-zero script exit status is not an error: it is in res->rc.
 * Errors are transport failures only (AICP_EUNREACHABLE, AICP_ETIMEOUT;
 * both leave the connection dead: later execs fail at once), plus
 * AICP_EAUTH when become=1 and sudo refuses ("become failed on host X:
 * sudo to USER: ..."; the plain shell stays usable) and AICP_EINVAL when the
 * script contains the connection's framing line.
 * Clear res with aicp_exec_result_clear. */
int aicp_conn_exec(struct aicp_conn *c, const char *script, const void *stdin_data, size_t stdin_len,
                   int become, struct aicp_exec_result *res, struct aicp_err *err);
void aicp_exec_result_clear(struct aicp_exec_result *res);

/* Atomically replaces path with data: a temp file in the same directory
 * created 0600, chmod'ed to mode (and chown'ed when owner/group are
 * given, NULL otherwise) before the data is written, fsync'ed, renamed over
 * path. mode < 0 keeps the existing file's mode (0644 for new files, minus
 * umask as Ansible). */
int aicp_conn_put(struct aicp_conn *c, const char *path, const void *data, size_t len, int mode,
                  const char *owner, const char *group, int become, struct aicp_err *err);

/* Reads a remote file. *data malloc'ed (NUL-terminated). Missing file:
 * AICP_ENOTFOUND. */
int aicp_conn_get(struct aicp_conn *c, const char *path, char **data, size_t *len, int become,
                  struct aicp_err *err);

/* The home directory of the user scripts run as (the become user's with
 * become, starting that shell if needed), as the shell's $HOME says; NULL
 * when it cannot be known. Borrowed. */
const char *aicp_conn_home(struct aicp_conn *c, int become, struct aicp_err *err);

/* The user later execs with become=1 run as (default: opts->become_user,
 * else root). Each user's sudo shell is started once and kept. */
int aicp_conn_set_become_user(struct aicp_conn *c, const char *user);

/* Shell text run before every script of later execs (the task's
 * `environment` as export lines), until replaced; NULL or "" removes it. */
int aicp_conn_set_prelude(struct aicp_conn *c, const char *prelude);

/* Batched reads. After aicp_conn_record_start, aicp_conn_exec only records
 * each script and returns AICP_ERECORDED; aicp_conn_record_run then sends
 * every recorded script in one write per shell and reads all the replies
 * (one round trip). Each reply is later handed, once, to an exec of the
 * identical script, stdin and become flag; the first exec (or put/get) that
 * is not one of them drops them all, since it may change the host. The
 * executor uses this to read the state of a run of tasks together. */
int aicp_conn_record_start(struct aicp_conn *c);
int aicp_conn_record_run(struct aicp_conn *c, struct aicp_err *err);

/* Number of exec round trips so far (for tests and benchmarks). */
unsigned long aicp_conn_round_trips(const struct aicp_conn *c);

#endif
