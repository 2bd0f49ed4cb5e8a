/* `aicp lab`: starts, lists and stops a local site of SSH hosts to try
 * playbooks on. Each host is a real OpenSSH sshd on a free loopback port,
 * started in its own mount and UTS namespace where overlay filesystems
 * cover /etc, /var, /opt, /mnt, /srv, /usr, /home and /root: writes land in
 * DIR/hosts/<name>/root, so hosts differ from each other and from the
 * machine. The lab records what it started in DIR/lab.json and writes
 * DIR/inventory.ini and DIR/known_hosts. A hidden `lab exec` subcommand runs
 * a script on a lab host through aicp's own connection code, for tests.
 */
#include "config.h"

#include "lab.h"

#include "conn.h"
#include "err.h"
#include "util.h"

#include <jansson.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define LAB_MAX_NODES 64

/* The directories each host gets its own copy of. */
static const char *const overlay_dirs[] = {"/etc", "/var", "/opt", "/mnt",
                                           "/srv", "/usr", "/home", "/root"};

struct lab_host {
    char name[32];
    int port;
    long pid;
    unsigned long long mntns; /* mount namespace inode: finds the host's processes */
};

struct lab {
    char dir[PATH_MAX];
    char user[64];
    int n;
    struct lab_host hosts[LAB_MAX_NODES];
};

static int lab_usage(void)
{
    fputs("usage: aicp lab up [--nodes N] [--dir DIR]\n"
          "       aicp lab down [--dir DIR] [--purge]\n"
          "       aicp lab status [--dir DIR]\n"
          "       aicp lab stop|start NAME [--dir DIR]\n",
          stderr);
    return 64;
}

/* snprintf that says whether it all fit: 0, or -1 when truncated. */
static int pathf(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int pathf(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static int path_join(char *dst, size_t cap, const char *a, const char *b)
{
    return pathf(dst, cap, "%s/%s", a, b);
}

static int mkdir_p(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    if (pathf(tmp, sizeof tmp, "%s", path) != 0)
        return -1;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, mode) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, mode) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* Runs argv and waits; returns its exit status or -1. */
static int run_wait(char *const argv[])
{
    pid_t pid;
    int st = 0;
    if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0)
        return -1;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int write_text(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    size_t len = strlen(text);
    if (fd < 0)
        return -1;
    while (len > 0) {
        ssize_t w = write(fd, text, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            return -1;
        }
        text += w;
        len -= (size_t)w;
    }
    return close(fd);
}

static int free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int port = -1;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static int port_open(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int ok;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return 0;
    ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

static unsigned long long mntns_of(long pid)
{
    char p[64];
    struct stat st;
    pathf(p, sizeof p, "/proc/%ld/ns/mnt", pid);
    return stat(p, &st) == 0 ? (unsigned long long)st.st_ino : 0;
}

/* ---- lab.json ----------------------------------------------------------- */

static int lab_save(const struct lab *lab)
{
    char path[PATH_MAX];
    json_t *root = json_object();
    json_t *hosts = json_array();
    int rc = -1;

    if (root == NULL || hosts == NULL || path_join(path, sizeof path, lab->dir, "lab.json") != 0)
        goto out;
    json_object_set_new(root, "dir", json_string(lab->dir));
    json_object_set_new(root, "user", json_string(lab->user));
    for (int i = 0; i < lab->n; i++) {
        const struct lab_host *h = &lab->hosts[i];
        json_array_append_new(hosts, json_pack("{s:s, s:i, s:I, s:I}", "name", h->name, "port",
                                               h->port, "pid", (json_int_t)h->pid, "mntns",
                                               (json_int_t)h->mntns));
    }
    json_object_set(root, "hosts", hosts);
    rc = json_dump_file(root, path, JSON_INDENT(2)) == 0 ? 0 : -1;
out:
    json_decref(hosts);
    json_decref(root);
    return rc;
}

static int lab_load(struct lab *lab, const char *dir)
{
    char path[PATH_MAX];
    json_error_t jerr;
    json_t *root;
    json_t *hosts;
    size_t i;
    json_t *h;

    memset(lab, 0, sizeof *lab);
    if (path_join(path, sizeof path, dir, "lab.json") != 0)
        return -1;
    root = json_load_file(path, 0, &jerr);
    if (root == NULL) {
        fprintf(stderr, "aicp: no lab in %s (%s); start one with: aicp lab up --dir %s\n", dir,
                jerr.text, dir);
        return -1;
    }
    pathf(lab->dir, sizeof lab->dir, "%s", json_string_value(json_object_get(root, "dir"))
                                                  ? json_string_value(json_object_get(root, "dir"))
                                                  : dir);
    pathf(lab->user, sizeof lab->user, "%s",
             json_string_value(json_object_get(root, "user")) ? json_string_value(
                                                                    json_object_get(root, "user"))
                                                              : "root");
    hosts = json_object_get(root, "hosts");
    json_array_foreach(hosts, i, h)
    {
        if (lab->n >= LAB_MAX_NODES)
            break;
        struct lab_host *lh = &lab->hosts[lab->n++];
        pathf(lh->name, sizeof lh->name, "%s",
                 json_string_value(json_object_get(h, "name")) ? json_string_value(
                                                                     json_object_get(h, "name"))
                                                               : "?");
        lh->port = (int)json_integer_value(json_object_get(h, "port"));
        lh->pid = (long)json_integer_value(json_object_get(h, "pid"));
        lh->mntns = (unsigned long long)json_integer_value(json_object_get(h, "mntns"));
    }
    json_decref(root);
    return 0;
}

static struct lab_host *lab_find(struct lab *lab, const char *name)
{
    for (int i = 0; i < lab->n; i++) {
        if (strcmp(lab->hosts[i].name, name) == 0)
            return &lab->hosts[i];
    }
    fprintf(stderr, "aicp: no host %s in the lab in %s\n", name, lab->dir);
    return NULL;
}

/* ---- starting and stopping hosts --------------------------------------- */

static const char *host_init_script(void)
{
    static char path[PATH_MAX];
    const char *env = getenv("AICP_LAB_DATA");
    const char *cands[3] = {NULL, AICP_SRCDIR "/tests/lab", AICP_DATADIR "/lab"};

    cands[0] = env && env[0] ? env : NULL;
    for (int i = 0; i < 3; i++) {
        if (cands[i] == NULL)
            continue;
        if (path_join(path, sizeof path, cands[i], "host-init.sh") == 0 && access(path, R_OK) == 0)
            return path;
    }
    return NULL;
}

/* 1 when path is dir or inside it: an overlay there would contain its own
 * upper layer. */
static int path_within(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* In the forked child: private mounts, overlays, hostname, then sshd. Only
 * async-signal-safe-ish work here; failures end the child with 127 and a
 * line in the host's sshd.log. */
static void host_child(const struct lab *lab, const struct lab_host *h, const char *hdir,
                       const char *config)
{
    char up[PATH_MAX], work[PATH_MAX], opts[3 * PATH_MAX + 64], logp[PATH_MAX];
    char *argv[] = {(char *)AICP_SSHD_PATH, (char *)"-D", (char *)"-e", (char *)"-f", (char *)config, NULL};
    struct stat st;
    int fd;

    setsid();
    path_join(logp, sizeof logp, hdir, "sshd.log");
    fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    fd = open("/dev/null", O_RDONLY);
    if (fd >= 0) {
        dup2(fd, 0);
        close(fd);
    }
    if (unshare(CLONE_NEWNS | CLONE_NEWUTS) != 0) {
        fprintf(stderr, "aicp lab: unshare: %s\n", strerror(errno));
        _exit(127);
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        fprintf(stderr, "aicp lab: making / private: %s\n", strerror(errno));
        _exit(127);
    }
    for (size_t i = 0; i < sizeof overlay_dirs / sizeof overlay_dirs[0]; i++) {
        const char *d = overlay_dirs[i];
        if (stat(d, &st) != 0 || !S_ISDIR(st.st_mode) || path_within(lab->dir, d))
            continue;
        pathf(up, sizeof up, "%s/root%s", hdir, d);
        pathf(work, sizeof work, "%s/work%s", hdir, d);
        pathf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s", d, up, work);
        if (mount("overlay", d, "overlay", 0, opts) != 0) {
            fprintf(stderr, "aicp lab: overlay on %s: %s\n", d, strerror(errno));
            _exit(127);
        }
    }
    if (sethostname(h->name, strlen(h->name)) != 0)
        fprintf(stderr, "aicp lab: sethostname: %s\n", strerror(errno));
    if (mkdir("/run/sshd", 0755) != 0 && errno != EEXIST)
        fprintf(stderr, "aicp lab: /run/sshd: %s\n", strerror(errno));
    execv(AICP_SSHD_PATH, argv);
    fprintf(stderr, "aicp lab: cannot run %s: %s\n", AICP_SSHD_PATH, strerror(errno));
    _exit(127);
}

static int host_start(struct lab *lab, struct lab_host *h)
{
    char hdir[PATH_MAX], config[PATH_MAX], logp[PATH_MAX];
    pid_t pid;
    int st;

    pathf(hdir, sizeof hdir, "%s/hosts/%s", lab->dir, h->name);
    path_join(config, sizeof config, hdir, "sshd_config");
    path_join(logp, sizeof logp, hdir, "sshd.log");
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "aicp: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0)
        host_child(lab, h, hdir, config);
    h->pid = pid;
    for (int i = 0; i < 200; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid) {
            char *log = NULL;
            size_t len;
            fprintf(stderr, "aicp: sshd for %s exited at start; %s says:\n", h->name, logp);
            if (aicp_read_file(&log, &len, logp, NULL) == 0)
                fputs(len > 2000 ? log + len - 2000 : log, stderr);
            free(log);
            h->pid = 0;
            return -1;
        }
        if (port_open(h->port)) {
            h->mntns = mntns_of(pid);
            return 0;
        }
        usleep(50000);
    }
    fprintf(stderr, "aicp: sshd for %s does not accept connections on port %d (see %s)\n",
            h->name, h->port, logp);
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    h->pid = 0;
    return -1;
}

/* Every process of a host: those in its mount namespace. sshd forks one
 * process per connection, and the shells under it stay in the namespace. */
/* The host's processes: those in the mount namespace ns (0: only its sshd,
 * for a lab recorded before namespaces were). */
static int host_pids(const struct lab_host *h, unsigned long long ns, long *pids, int cap)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL && n < cap) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end != '\0' || pid <= 0)
            continue;
        if ((ns != 0 && mntns_of(pid) == ns) || (ns == 0 && pid == h->pid))
            pids[n++] = pid;
    }
    closedir(d);
    return n;
}

static int host_running(const struct lab_host *h)
{
    return h->pid > 0 && kill((pid_t)h->pid, 0) == 0 &&
           (h->mntns == 0 || mntns_of(h->pid) == h->mntns);
}

/* 1 when pid has exited: gone, or a zombie nobody has reaped yet. A
 * process that is still exiting has already left its mount namespace
 * (so host_pids no longer sees it) but is not gone. */
static int proc_exited(long pid)
{
    char path[64], buf[512];
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    if ((f = fopen(path, "r")) == NULL)
        return 1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')'); /* the state follows "(comm)" */
    return rp == NULL || rp[1] == '\0' || rp[2] == 'Z' || rp[2] == 'X';
}

static void host_stop(struct lab_host *h)
{
    long pids[1024];
    /* The recorded namespace is the host's only while its sshd is alive in
     * it: once a host has stopped, the kernel may give the same namespace
     * inode to another lab's host (tests run labs side by side), whose
     * processes must not be killed here. */
    unsigned long long ns = 0;
    if (h->pid > 0 && !proc_exited(h->pid)) {
        unsigned long long now = mntns_of(h->pid);
        if (h->mntns == 0 || now == h->mntns)
            ns = h->mntns;
        else
            h->pid = 0; /* the pid is another process's now */
    } else {
        if (h->pid > 0)
            waitpid((pid_t)h->pid, NULL, WNOHANG); /* our own child's zombie */
        h->pid = 0;
    }
    int n = h->pid > 0 || ns != 0 ? host_pids(h, ns, pids, 1024) : 0;

    for (int i = 0; i < n; i++)
        kill((pid_t)pids[i], SIGTERM);
    for (int t = 0; t < 60 && n > 0; t++) {
        usleep(50000);
        n = host_pids(h, ns, pids, 1024);
    }
    for (int i = 0; i < n; i++)
        kill((pid_t)pids[i], SIGKILL);
    for (int t = 0; t < 40 && n > 0; t++) {
        usleep(50000);
        n = host_pids(h, ns, pids, 1024);
    }
    /* Wait until the sshd itself has finished exiting, so that a stopped
     * host really is stopped when this returns. */
    for (int t = 0; t < 100 && h->pid > 0 && !proc_exited(h->pid); t++)
        usleep(20000);
    /* Reap it when it is our own child (lab start then stop in one run). */
    if (h->pid > 0)
        waitpid((pid_t)h->pid, NULL, WNOHANG);
    h->pid = 0;
    h->mntns = 0; /* saved with the lab: a stopped host has no namespace */
}

/* ---- up ----------------------------------------------------------------- */

static int keygen(const char *path)
{
    char *argv[] = {(char *)"ssh-keygen", (char *)"-q", (char *)"-t", (char *)"ed25519",
                    (char *)"-N", (char *)"", (char *)"-C", (char *)"aicp-lab", (char *)"-f",
                    (char *)path, NULL};
    if (access(path, R_OK) == 0)
        return 0;
    if (run_wait(argv) != 0) {
        fprintf(stderr, "aicp: ssh-keygen failed for %s\n", path);
        return -1;
    }
    return 0;
}

static int host_prepare(const struct lab *lab, const struct lab_host *h)
{
    char hdir[PATH_MAX], p[PATH_MAX], key[PATH_MAX];
    struct aicp_buf cfg = AICP_BUF_INIT;
    const char *init = host_init_script();
    int rc = -1;

    pathf(hdir, sizeof hdir, "%s/hosts/%s", lab->dir, h->name);
    for (size_t i = 0; i < sizeof overlay_dirs / sizeof overlay_dirs[0]; i++) {
        pathf(p, sizeof p, "%s/root%s", hdir, overlay_dirs[i]);
        if (mkdir_p(p, 0755) != 0)
            goto fail;
        pathf(p, sizeof p, "%s/work%s", hdir, overlay_dirs[i]);
        if (mkdir_p(p, 0755) != 0)
            goto fail;
    }
    path_join(key, sizeof key, hdir, "ssh_host_ed25519_key");
    if (keygen(key) != 0)
        goto out;
    if (init != NULL) {
        pathf(p, sizeof p, "%s/root", hdir);
        char *argv[] = {(char *)"/bin/sh", (char *)init, (char *)h->name, p, NULL};
        if (run_wait(argv) != 0) {
            fprintf(stderr, "aicp: %s failed for %s\n", init, h->name);
            goto out;
        }
    }
    if (aicp_buf_printf(&cfg,
                        "# Written by aicp lab up for %s.\n"
                        "ListenAddress 127.0.0.1\n"
                        "Port %d\n"
                        "HostKey %s\n"
                        "PidFile %s/sshd.pid\n"
                        "AuthorizedKeysFile %s/keys/authorized_keys\n"
                        "PermitRootLogin prohibit-password\n"
                        "PasswordAuthentication no\n"
                        "KbdInteractiveAuthentication no\n"
                        "UsePAM no\n"
                        "StrictModes no\n"
                        "UseDNS no\n"
                        "PrintMotd no\n"
                        "MaxSessions 10\n"
                        "MaxStartups 100\n"
                        "Subsystem sftp internal-sftp\n"
                        "LogLevel ERROR\n",
                        h->name, h->port, key, hdir, lab->dir) != 0)
        goto out;
    path_join(p, sizeof p, hdir, "sshd_config");
    if (write_text(p, cfg.data, 0644) != 0)
        goto fail;
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "aicp: cannot prepare %s in %s: %s\n", h->name, hdir, strerror(errno));
out:
    aicp_buf_free(&cfg);
    return rc;
}

/* known_hosts and inventory.ini for the running lab. */
static int lab_write_files(const struct lab *lab)
{
    struct aicp_buf kh = AICP_BUF_INIT, inv = AICP_BUF_INIT;
    char p[PATH_MAX];
    int rc = -1;

    aicp_buf_puts(&inv, "# Written by aicp lab up.\n[lab]\n");
    for (int i = 0; i < lab->n; i++) {
        const struct lab_host *h = &lab->hosts[i];
        char *pub = NULL;
        size_t len;
        pathf(p, sizeof p, "%s/hosts/%s/ssh_host_ed25519_key.pub", lab->dir, h->name);
        if (aicp_read_file(&pub, &len, p, NULL) != 0) {
            fprintf(stderr, "aicp: cannot read %s\n", p);
            goto out;
        }
        /* "type base64 comment" -> "type base64" */
        char *sp = strchr(pub, ' ');
        sp = sp ? strchr(sp + 1, ' ') : NULL;
        if (sp)
            *sp = '\0';
        pub[strcspn(pub, "\n")] = '\0';
        aicp_buf_printf(&kh, "[127.0.0.1]:%d %s\n", h->port, pub);
        free(pub);
        aicp_buf_printf(&inv,
                        "%s ansible_host=127.0.0.1 ansible_port=%d ansible_user=%s "
                        "ansible_ssh_private_key_file=%s/keys/id_ed25519\n",
                        h->name, h->port, lab->user, lab->dir);
    }
    aicp_buf_printf(&inv, "\n[kube_master]\n%s\n\n[kube_node]\n", lab->hosts[0].name);
    for (int i = lab->n > 1 ? 1 : 0; i < lab->n; i++)
        aicp_buf_printf(&inv, "%s\n", lab->hosts[i].name);
    if (aicp_buf_printf(&inv, "\n[all:vars]\naicp_known_hosts=%s/known_hosts\n", lab->dir) != 0)
        goto out;
    path_join(p, sizeof p, lab->dir, "known_hosts");
    if (write_text(p, kh.data ? kh.data : "", 0644) != 0)
        goto out;
    path_join(p, sizeof p, lab->dir, "inventory.ini");
    if (write_text(p, inv.data, 0644) != 0)
        goto out;
    rc = 0;
out:
    aicp_buf_free(&kh);
    aicp_buf_free(&inv);
    return rc;
}

static int lab_up(const char *dir_arg, int nodes)
{
    struct lab *lab = calloc(1, sizeof *lab);
    struct lab old;
    char p[PATH_MAX], pub[PATH_MAX];
    struct passwd *pw;
    int rc = 1;

    if (lab == NULL)
        return 1;
    if (geteuid() != 0) {
        fprintf(stderr, "aicp: lab up needs root: each host runs sshd in its own mount namespace "
                        "with overlay filesystems; run it with sudo\n");
        goto out;
    }
    if (access(AICP_SSHD_PATH, X_OK) != 0) {
        fprintf(stderr, "aicp: lab up needs OpenSSH's sshd at %s (apt-get install "
                        "openssh-server)\n",
                AICP_SSHD_PATH);
        goto out;
    }
    if (mkdir_p(dir_arg, 0755) != 0 || realpath(dir_arg, lab->dir) == NULL) {
        fprintf(stderr, "aicp: cannot create %s: %s\n", dir_arg, strerror(errno));
        goto out;
    }
    if (strpbrk(lab->dir, ",: \t\n") != NULL) {
        fprintf(stderr, "aicp: the lab directory %s must not contain commas, colons or spaces "
                        "(overlay mount options)\n",
                lab->dir);
        goto out;
    }
    if (strlen(lab->dir) > 1024) {
        fprintf(stderr, "aicp: the lab directory path is too long\n");
        goto out;
    }
    if (path_join(p, sizeof p, lab->dir, "lab.json") == 0 && access(p, F_OK) == 0) {
        int running = 0;
        if (lab_load(&old, lab->dir) == 0) {
            for (int i = 0; i < old.n; i++)
                running |= host_running(&old.hosts[i]);
        }
        if (running) {
            fprintf(stderr, "aicp: a lab is already running in %s; stop it with: aicp lab down "
                            "--dir %s\n",
                    lab->dir, lab->dir);
            goto out;
        }
    }
    pw = getpwuid(getuid());
    pathf(lab->user, sizeof lab->user, "%s", pw ? pw->pw_name : "root");
    /* Keys readable by every user the hosts may log in as (sshd reads
     * authorized_keys as the user); the private key stays 0600. */
    path_join(p, sizeof p, lab->dir, "keys");
    if (mkdir_p(p, 0755) != 0 || chmod(p, 0755) != 0) {
        fprintf(stderr, "aicp: cannot create %s: %s\n", p, strerror(errno));
        goto out;
    }
    path_join(p, sizeof p, lab->dir, "keys/id_ed25519");
    if (keygen(p) != 0)
        goto out;
    path_join(pub, sizeof pub, lab->dir, "keys/id_ed25519.pub");
    {
        char *k = NULL;
        size_t len;
        path_join(p, sizeof p, lab->dir, "keys/authorized_keys");
        if (aicp_read_file(&k, &len, pub, NULL) != 0 || write_text(p, k, 0644) != 0) {
            free(k);
            fprintf(stderr, "aicp: cannot write %s\n", p);
            goto out;
        }
        free(k);
    }
    for (int i = 0; i < nodes; i++) {
        struct lab_host *h = &lab->hosts[i];
        pathf(h->name, sizeof h->name, "node%02d", i + 1);
        h->port = free_port();
        if (h->port <= 0) {
            fprintf(stderr, "aicp: no free loopback port\n");
            goto fail;
        }
        lab->n = i + 1;
        if (host_prepare(lab, h) != 0 || host_start(lab, h) != 0)
            goto fail;
    }
    if (lab_write_files(lab) != 0 || lab_save(lab) != 0) {
        fprintf(stderr, "aicp: cannot write the lab files in %s\n", lab->dir);
        goto fail;
    }
    for (size_t i = 0; i < sizeof overlay_dirs / sizeof overlay_dirs[0]; i++) {
        if (path_within(lab->dir, overlay_dirs[i]))
            fprintf(stderr, "aicp: note: %s is not isolated because the lab directory is inside "
                            "it; use --dir elsewhere (e.g. /tmp/lab)\n",
                    overlay_dirs[i]);
    }
    printf("lab up: %d host%s in %s\n", lab->n, lab->n == 1 ? "" : "s", lab->dir);
    for (int i = 0; i < lab->n; i++)
        printf("  %s  127.0.0.1:%d  pid %ld\n", lab->hosts[i].name, lab->hosts[i].port,
               lab->hosts[i].pid);
    printf("inventory: %s/inventory.ini\n", lab->dir);
    rc = 0;
    goto out;
fail:
    for (int i = 0; i < lab->n; i++)
        host_stop(&lab->hosts[i]);
out:
    free(lab);
    return rc;
}

/* ---- down, status, stop, start ----------------------------------------- */

static int purge_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        return rmdir(path);
    return unlink(path);
}

static int lab_down(const char *dir, int purge)
{
    struct lab *lab = calloc(1, sizeof *lab);
    char p[PATH_MAX];
    int rc = 1;

    if (lab == NULL)
        goto out;
    /* --purge also clears the trees a plain `lab down` left (it removes
     * lab.json but keeps the hosts' files). */
    if (purge && path_join(p, sizeof p, dir, "lab.json") == 0 && access(p, F_OK) != 0) {
        memset(lab, 0, sizeof *lab);
        pathf(lab->dir, sizeof lab->dir, "%s", dir);
    } else if (lab_load(lab, dir) != 0) {
        goto out;
    }
    for (int i = 0; i < lab->n; i++)
        host_stop(&lab->hosts[i]);
    path_join(p, sizeof p, lab->dir, "lab.json");
    unlink(p);
    if (purge) {
        const char *names[] = {"hosts", "keys", "known_hosts", "inventory.ini"};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            path_join(p, sizeof p, lab->dir, names[i]);
            if (nftw(p, purge_one, 32, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT)
                fprintf(stderr, "aicp: cannot remove %s: %s\n", p, strerror(errno));
        }
        rmdir(lab->dir);
    }
    printf("lab down: %d host%s stopped in %s\n", lab->n, lab->n == 1 ? "" : "s", lab->dir);
    rc = 0;
out:
    free(lab);
    return rc;
}

static int lab_status(const char *dir)
{
    struct lab *lab = calloc(1, sizeof *lab);
    int rc = 1;

    if (lab == NULL || lab_load(lab, dir) != 0)
        goto out;
    printf("%-8s %-16s %-8s %s\n", "HOST", "ADDRESS", "PID", "STATE");
    for (int i = 0; i < lab->n; i++) {
        const struct lab_host *h = &lab->hosts[i];
        char addr[32];
        int up = host_running(h);
        pathf(addr, sizeof addr, "127.0.0.1:%d", h->port);
        printf("%-8s %-16s %-8ld %s\n", h->name, addr, up ? h->pid : 0L,
               up ? (port_open(h->port) ? "running" : "starting") : "stopped");
    }
    rc = 0;
out:
    free(lab);
    return rc;
}

static int lab_stop_start(const char *dir, const char *name, int start)
{
    struct lab *lab = calloc(1, sizeof *lab);
    struct lab_host *h;
    int rc = 1;

    if (lab == NULL || lab_load(lab, dir) != 0 || (h = lab_find(lab, name)) == NULL)
        goto out;
    if (start) {
        if (geteuid() != 0) {
            fprintf(stderr, "aicp: lab start needs root\n");
            goto out;
        }
        if (host_running(h)) {
            printf("%s is already running on port %d\n", h->name, h->port);
            rc = 0;
            goto out;
        }
        host_stop(h); /* leftovers of a half-dead host */
        if (host_start(lab, h) != 0)
            goto out;
        printf("%s started on port %d\n", h->name, h->port);
    } else {
        host_stop(h);
        printf("%s stopped\n", h->name);
    }
    rc = lab_save(lab) == 0 ? 0 : 1;
out:
    free(lab);
    return rc;
}

/* ---- exec (hidden, for tests) ------------------------------------------ */

static int lab_exec(const char *dir, int argc, char **argv)
{
    struct lab *lab = calloc(1, sizeof *lab);
    struct aicp_conn_opts o = {.host = "127.0.0.1", .strict_host_key = 1, .connect_timeout = 10};
    struct aicp_conn *c = NULL;
    struct aicp_exec_result res = {0};
    struct aicp_err err = {0};
    char key[PATH_MAX], kh[PATH_MAX];
    const char *name = NULL, *script = NULL;
    int become = 0, verbose = 0, repeat = 1, rc = 1;
    struct lab_host *h;

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--become") == 0) {
            become = 1;
        } else if (strcmp(a, "-v") == 0) {
            verbose = 1;
        } else if (strcmp(a, "--no-strict") == 0) {
            o.strict_host_key = 0;
        } else if (v && strcmp(a, "--become-user") == 0) {
            o.become_user = v, i++;
        } else if (v && strcmp(a, "--user") == 0) {
            o.user = v, i++;
        } else if (v && strcmp(a, "--known-hosts") == 0) {
            o.known_hosts = v, i++;
        } else if (v && strcmp(a, "--proxy-command") == 0) {
            o.proxy_command = v, i++;
        } else if (v && strcmp(a, "--proxy-jump") == 0) {
            o.proxy_jump = v, i++;
        } else if (v && strcmp(a, "--timeout") == 0) {
            o.command_timeout = (int)strtol(v, NULL, 10), i++;
        } else if (v && strcmp(a, "--repeat") == 0) {
            repeat = (int)strtol(v, NULL, 10), i++;
        } else if (name == NULL) {
            name = a;
        } else if (script == NULL) {
            script = a;
        } else {
            rc = lab_usage();
            goto out;
        }
    }
    if (name == NULL || script == NULL || repeat < 1) {
        fputs("usage: aicp lab exec NAME SCRIPT [--become] [--become-user U] [--user U]\n"
              "       [--known-hosts F] [--no-strict] [--proxy-command C] [--proxy-jump J]\n"
              "       [--timeout S] [--repeat N] [-v]   (become password: "
              "$AICP_LAB_BECOME_PASSWORD)\n",
              stderr);
        rc = 64;
        goto out;
    }
    if (lab == NULL || lab_load(lab, dir) != 0 || (h = lab_find(lab, name)) == NULL)
        goto out;
    path_join(key, sizeof key, lab->dir, "keys/id_ed25519");
    path_join(kh, sizeof kh, lab->dir, "known_hosts");
    o.name = h->name;
    o.port = h->port;
    o.key_file = key;
    if (o.known_hosts == NULL)
        o.known_hosts = kh;
    if (o.user == NULL)
        o.user = lab->user;
    o.become_password = getenv("AICP_LAB_BECOME_PASSWORD");
    if ((rc = aicp_conn_open(&c, &o, &err)) != 0)
        goto fail;
    for (int i = 0; i < repeat; i++) {
        aicp_exec_result_clear(&res);
        if ((rc = aicp_conn_exec(c, script, NULL, 0, become, &res, &err)) != 0)
            goto fail;
        fwrite(res.out, 1, res.out_len, stdout);
        fwrite(res.err, 1, res.err_len, stderr);
    }
    if (verbose)
        fprintf(stderr, "aicp: %s: %lu round trips on one connection\n", h->name,
                aicp_conn_round_trips(c));
    rc = res.rc;
    goto out;
fail:
    fprintf(stderr, "aicp: %s\n", err.msg);
    rc = aicp_err_exit_status(rc);
out:
    aicp_exec_result_clear(&res);
    aicp_conn_close(c);
    free(lab);
    return rc;
}

int aicp_lab_main(int argc, char **argv)
{
    const char *env = getenv("AICP_LAB_DIR");
    const char *dir = env && env[0] ? env : "lab";
    const char *cmd = argc > 1 ? argv[1] : NULL;
    const char *name = NULL;
    char *rest[64];
    int nrest = 0;
    int nodes = 3, purge = 0;

    if (cmd == NULL)
        return lab_usage();
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strncmp(a, "--dir=", 6) == 0) {
            dir = a + 6;
        } else if (strcmp(cmd, "up") == 0 && strcmp(a, "--nodes") == 0 && i + 1 < argc) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end != '\0' || n < 1 || n > LAB_MAX_NODES) {
                fprintf(stderr, "aicp: --nodes wants a number from 1 to %d\n", LAB_MAX_NODES);
                return 64;
            }
            nodes = (int)n;
        } else if (strcmp(cmd, "down") == 0 && strcmp(a, "--purge") == 0) {
            purge = 1;
        } else if (nrest < 64) {
            rest[nrest++] = argv[i];
        } else {
            return lab_usage();
        }
    }
    if (strcmp(cmd, "exec") == 0)
        return lab_exec(dir, nrest, rest);
    if ((strcmp(cmd, "stop") == 0 || strcmp(cmd, "start") == 0) && nrest == 1)
        name = rest[0];
    else if (nrest != 0)
        return lab_usage();
    if (strcmp(cmd, "up") == 0)
        return lab_up(dir, nodes);
    if (strcmp(cmd, "down") == 0)
        return lab_down(dir, purge);
    if (strcmp(cmd, "status") == 0)
        return lab_status(dir);
    if (name != NULL)
        return lab_stop_start(dir, name, strcmp(cmd, "start") == 0);
    return lab_usage();
}
