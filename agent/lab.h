/* `aicp lab`: a local site to try playbooks on. Each lab host is an OpenSSH
 * sshd on a loopback port, running in its own mount and UTS namespace with
 * overlay filesystems on /etc, /var, /opt, /mnt, /srv, /usr, /home and /root,
 * so what a task writes there lands in that host's own tree under the lab
 * directory and the machine itself is untouched. The lab writes an inventory
 * and a known_hosts file for it. See docs/lab.md.
 */
#ifndef AICP_LAB_H
#define AICP_LAB_H

/* argv[0] is "lab"; then
 *   up [--nodes N] [--dir DIR]     (root only)
 *   down [--dir DIR] [--purge]
 *   status [--dir DIR]
 *   stop NAME [--dir DIR] / start NAME [--dir DIR]
 *   exec NAME SCRIPT [options]     (hidden: runs SCRIPT over aicp's own
 *                                   connection; for tests)
 * DIR defaults to $AICP_LAB_DIR, else ./lab. Returns the process exit
 * status (0 ok, 1 failure, 64 usage). */
int aicp_lab_main(int argc, char **argv);

#endif
