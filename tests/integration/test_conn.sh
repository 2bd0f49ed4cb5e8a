#!/bin/sh
# aicp's SSH connection (agent/conn.c over agent/ssh.c) against real sshd
# hosts of a lab, through the hidden `aicp lab exec NAME SCRIPT`: exec and
# exit status, one session for many execs, become with sudo, host key
# checking, ProxyCommand, timeouts and an unreachable host.
set -u
. "$(dirname "$0")/lib.sh"
lab_require
lab_up 2

x() { "$AICP" lab exec --dir "$LAB" "$@"; }

# exec: stdout, stderr and the exit status.
out=$(x node01 'hostname; echo err >&2; exit 3' 2>"$LAB/err")
[ $? = 3 ] || fail "exit status was not 3"
[ "$out" = node01 ] || fail "stdout: $out"
[ "$(cat "$LAB/err")" = err ] || fail "stderr: $(cat "$LAB/err")"

# The script's stderr file in the private temp dir is 0600 from creation
# (the shell runs under umask 077); the script gets the login umask back.
out=$(x node01 'stat -c %a "$AICP_TMP/e"; umask') || fail "stat of the stderr file"
[ "$out" = "$(printf '600\n%s' "$(lab_ssh node01 umask)")" ] || fail "stderr file mode / umask: $out"

# 100 execs: one TCP connection, 100 round trips.
p1=$(lab_port node01)
out=$(x node01 -v --repeat 100 "ss -Htn state established '( dport = :$p1 )' | wc -l" 2>"$LAB/err") ||
    fail "repeat: $(cat "$LAB/err")"
[ "$(echo "$out" | wc -l)" = 100 ] || fail "expected 100 lines"
[ "$(echo "$out" | sort -u)" = 1 ] || fail "connections seen by the host: $(echo "$out" | sort | uniq -c)"
grep -q '100 round trips on one connection' "$LAB/err" || fail "round trips: $(cat "$LAB/err")"

# become: root -> another user via sudo -n.
if lab_ssh node01 'command -v sudo' >/dev/null; then
    [ "$(x node01 --become --become-user nobody 'id -un')" = nobody ] || fail "become nobody"
    # A user whose sudo needs a password (node01 only: /etc is the host's own).
    printf 'alice:pw-%s\n' "$CANARY" | lab_ssh node01 'useradd -m -s /bin/sh alice && chpasswd &&
        echo "alice ALL=(ALL) ALL" > /etc/sudoers.d/alice && chmod 0440 /etc/sudoers.d/alice' ||
        fail "creating alice"
    [ "$(x node01 --user alice 'id -un')" = alice ] || fail "login as alice"
    out=$(AICP_LAB_BECOME_PASSWORD="pw-$CANARY" x node01 --user alice --become 'id -un; echo "$AICP_TMP"') ||
        fail "become with password"
    [ "$(echo "$out" | head -n1)" = root ] || fail "become with password: $out"
    msg=$(AICP_LAB_BECOME_PASSWORD=wrong x node01 --user alice --become 'id -un' 2>&1) &&
        fail "a wrong become password worked"
    echo "$msg" | grep -q 'become failed on host node01: sudo to root: incorrect password' ||
        fail "wrong password message: $msg"
    msg=$(x node01 --user alice --become 'id -un' 2>&1) && fail "become without a password worked"
    echo "$msg" | grep -q 'become failed on host node01: sudo to root: .*password' ||
        fail "missing password message: $msg"
    lab_ssh node02 'id alice' >/dev/null 2>&1 && fail "alice leaked to node02"
else
    echo "note: no sudo on the lab hosts; become tests skipped" >&2
fi

# Unknown host key: refused, with the way to accept it.
: >"$LAB/empty_kh"
msg=$(x node01 --known-hosts "$LAB/empty_kh" true 2>&1) && fail "unknown host key accepted"
echo "$msg" | grep -q "host key for node01 (\[127.0.0.1\]:$p1 ssh-ed25519 SHA256:.*) is not in known_hosts $LAB/empty_kh" ||
    fail "unknown key message: $msg"
echo "$msg" | grep -q "ssh-keyscan -p $p1 127.0.0.1 >> $LAB/empty_kh" || fail "no ssh-keyscan hint: $msg"
[ "$(x node01 --no-strict --known-hosts "$LAB/empty_kh" 'echo ok')" = ok ] ||
    fail "--no-strict refused an unknown key"

# Changed host key: refused when strict; with checking off (Ansible's
# host_key_checking = False) let through, with a warning.
ssh-keygen -q -t ed25519 -N '' -f "$LAB/other" || fail ssh-keygen
echo "[127.0.0.1]:$p1 $(cut -d' ' -f1,2 "$LAB/other.pub")" >"$LAB/changed_kh"
msg=$(x node01 --known-hosts "$LAB/changed_kh" true 2>&1) && fail "changed key accepted"
echo "$msg" | grep -q 'HOST KEY FOR node01 .* HAS CHANGED' || fail "changed key message: $msg"
msg=$(x node01 --no-strict --known-hosts "$LAB/changed_kh" 'echo ok' 2>&1) ||
    fail "changed key refused with checking off: $msg"
echo "$msg" | grep -q 'WARNING.*node01: the host key .* does not match known_hosts' ||
    fail "no warning for a changed key with checking off: $msg"

# ProxyCommand: reach node01 through node02, as a bastion would be used.
p2=$(lab_port node02)
pc="ssh -q -i $KEY -o UserKnownHostsFile=$KH -o BatchMode=yes -p $p2 -W %h:%p root@127.0.0.1"
[ "$(x node01 --proxy-command "$pc" hostname)" = node01 ] || fail "ProxyCommand"

# ProxyJump: node02 as the bastion. Its ssh must check node02 against the
# lab's known_hosts and log in with the lab's key, as aicp does for node01:
# with an empty HOME, ssh's own defaults (~/.ssh) know neither.
mkdir -p "$LAB/home" "$LAB/tmp"
xj() { HOME="$LAB/home" TMPDIR="$LAB/tmp" x "$@"; }
jump="root@127.0.0.1:$p2"
out=$(xj node01 --proxy-jump "$jump" hostname 2>&1) || fail "ProxyJump: $out"
[ "$out" = node01 ] || fail "ProxyJump: $out"
# Two hops (node02, then node02 again from inside it): the earlier hop is
# checked the same way.
out=$(xj node01 --proxy-jump "$jump,$jump" hostname 2>&1) || fail "two-hop ProxyJump: $out"
[ "$out" = node01 ] || fail "two-hop ProxyJump: $out"
# A jump host whose key is unknown: refused, and the message names it and
# says how to accept it (Ansible's ssh says "Host key verification failed.").
grep "^\[127.0.0.1\]:$p1 " "$KH" >"$LAB/only01_kh" || fail "no known_hosts line for node01"
msg=$(xj node01 --known-hosts "$LAB/only01_kh" --proxy-jump "$jump" true 2>&1) &&
    fail "unknown jump host key accepted"
echo "$msg" | grep -q "through ProxyJump $jump: host key for jump host \[127.0.0.1\]:$p2 is not in known_hosts $LAB/only01_kh" ||
    fail "unknown jump host key message: $msg"
echo "$msg" | grep -q "Host key verification failed" || fail "ssh's reason missing: $msg"
echo "$msg" | grep -q "ssh-keyscan -p $p2 127.0.0.1 >> $LAB/only01_kh), or run with --accept-new-host-keys" ||
    fail "no way to accept the jump host key: $msg"
# The proxy's stderr went to a private temp file, removed afterwards.
[ -z "$(ls -A "$LAB/tmp")" ] || fail "proxy stderr files left: $(ls -A "$LAB/tmp")"
# A changed jump host key.
{ cat "$LAB/only01_kh"; echo "[127.0.0.1]:$p2 $(cut -d' ' -f1,2 "$LAB/other.pub")"; } >"$LAB/chg02_kh"
msg=$(xj node01 --known-hosts "$LAB/chg02_kh" --proxy-jump "$jump" true 2>&1) &&
    fail "changed jump host key accepted"
echo "$msg" | grep -q "HOST KEY FOR JUMP HOST \[127.0.0.1\]:$p2 HAS CHANGED.*ssh-keygen -R '\[127.0.0.1\]:$p2' -f $LAB/chg02_kh" ||
    fail "changed jump host key message: $msg"
# Why any proxy failed reaches the message.
msg=$(xj node01 --proxy-command "sh -c 'echo no route to the bastion >&2; exit 1'" true 2>&1) &&
    fail "a failed ProxyCommand connected"
echo "$msg" | grep -q "the proxy said: no route to the bastion" || fail "ProxyCommand message: $msg"
# The same through a playbook (ansible_ssh_common_args, as inventories set
# it): UNREACHABLE with the way out; --accept-new-host-keys records the
# jump host's key in aicp's known_hosts and the run goes through.
cp "$LAB/only01_kh" "$LAB/acc_kh"
sed -n "s|^node01 .*|& aicp_known_hosts=$LAB/acc_kh ansible_ssh_common_args='-o ProxyJump=$jump'|p" \
    "$LAB/inventory.ini" >"$LAB/jump.ini"
printf -- '- hosts: all\n  gather_facts: false\n  tasks:\n    - command: hostname\n' >"$LAB/jump.yml"
out=$(HOME="$LAB/home" "$AICP" run "$LAB/jump.yml" -i "$LAB/jump.ini" 2>&1) && fail "jump run passed: $out"
echo "$out" | grep -q "UNREACHABLE.*jump host \[127.0.0.1\]:$p2 is not in known_hosts.*--accept-new-host-keys" ||
    fail "jump run message: $out"
out=$(HOME="$LAB/home" "$AICP" run "$LAB/jump.yml" -i "$LAB/jump.ini" --accept-new-host-keys 2>&1)
[ $? = 2 ] || fail "jump run with --accept-new-host-keys: $out"
ssh-keygen -F "[127.0.0.1]:$p2" -f "$LAB/acc_kh" >/dev/null || fail "jump host key not recorded"
out=$(HOME="$LAB/home" "$AICP" run "$LAB/jump.yml" -i "$LAB/jump.ini" 2>&1)
[ $? = 2 ] || fail "jump run after accepting: $out"

# Command timeout: reported, quickly.
start=$(date +%s)
msg=$(x node01 --timeout 1 'sleep 20' 2>&1) && fail "timeout not reported"
echo "$msg" | grep -q 'command on node01 timed out after 1 s' || fail "timeout message: $msg"
[ $(($(date +%s) - start)) -lt 10 ] || fail "timeout took too long"

# Unreachable host: a clear message naming it, exit 1.
"$AICP" lab stop node02 --dir "$LAB" >/dev/null || fail "lab stop"
msg=$(x node02 true 2>&1)
[ $? = 1 ] || fail "unreachable exit status"
echo "$msg" | grep -q "cannot connect to node02 (127.0.0.1 port $p2)" || fail "unreachable message: $msg"
echo "PASS"
