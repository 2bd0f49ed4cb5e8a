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
