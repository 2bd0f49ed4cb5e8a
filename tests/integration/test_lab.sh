#!/bin/sh
# aicp lab: hosts are real sshd processes with their own /etc (overlayfs),
# listed by lab status, stoppable one by one, and all gone after lab down.
set -u
. "$(dirname "$0")/lib.sh"
lab_require
lab_up 3

[ -f "$LAB/inventory.ini" ] || fail "no inventory.ini"
grep -q '^\[kube_master\]' "$LAB/inventory.ini" || fail "no kube_master group"
grep -q "^aicp_known_hosts=$LAB/known_hosts" "$LAB/inventory.ini" || fail "no aicp_known_hosts"
[ "$(grep -c '^\[127.0.0.1\]:[0-9]* ssh-ed25519 ' "$KH")" = 3 ] || fail "known_hosts: $(cat "$KH")"

# Each host is a separate machine as far as /etc and hostname go.
out=$(lab_ssh node01 'hostname; echo lab-test > /etc/aicp-lab-test; cat /etc/aicp-lab-test') ||
    fail "ssh to node01"
[ "$out" = "node01
lab-test" ] || fail "node01 said: $out"
[ ! -e /etc/aicp-lab-test ] || fail "a write to /etc on node01 reached the machine"
lab_ssh node02 'test ! -e /etc/aicp-lab-test' || fail "a write to /etc on node01 reached node02"
[ "$(lab_ssh node02 hostname)" = node02 ] || fail "node02 hostname"
[ -f "$LAB/hosts/node01/root/etc/aicp-lab-test" ] || fail "the write is not in node01's tree"
# host-init.sh ran.
[ "$(lab_ssh node03 cat /etc/hostname)" = node03 ] || fail "host-init.sh did not run"

# status lists every host as running.
st=$("$AICP" lab status --dir "$LAB") || fail "lab status"
[ "$(echo "$st" | grep -c ' running$')" = 3 ] || fail "status: $st"

# stop and start one host: same port, state kept.
pid2=$(lab_pid node02)
"$AICP" lab stop node02 --dir "$LAB" >/dev/null || fail "lab stop"
alive "$pid2" && fail "sshd $pid2 still runs after lab stop"
"$AICP" lab status --dir "$LAB" | grep -q '^node02 .* stopped$' || fail "node02 not stopped"
lab_ssh node02 true 2>/dev/null && fail "node02 still answers"
lab_ssh node01 true || fail "node01 went down with node02"
lab_ssh node01 'echo kept > /etc/aicp-kept'
"$AICP" lab stop node01 --dir "$LAB" >/dev/null || fail "lab stop node01"
"$AICP" lab start node01 --dir "$LAB" >/dev/null || fail "lab start node01"
"$AICP" lab start node02 --dir "$LAB" >/dev/null || fail "lab start node02"
[ "$(lab_ssh node01 cat /etc/aicp-kept)" = kept ] || fail "node01 lost its /etc after restart"
lab_ssh node02 true || fail "node02 did not come back"

# An open session is part of the host: lab down must end it too.
lab_ssh node03 'sleep 300' 2>/dev/null &
sleep 1
pids=""
for h in node01 node02 node03; do pids="$pids $(lab_pid "$h")"; done
"$AICP" lab down --dir "$LAB" >/dev/null || fail "lab down"
[ ! -f "$LAB/lab.json" ] || fail "lab.json left behind"
for p in $pids; do
    alive "$p" && fail "sshd $p still runs after lab down"
done
[ -z "$(ps -eo args | grep "sshd.*$LAB" | grep -v grep)" ] || fail "sshd processes left: $(ps -eo pid,args | grep "$LAB" | grep -v grep)"
wait
"$AICP" lab status --dir "$LAB" >/dev/null 2>&1 && fail "status after down should fail"

# Not root: a clear refusal.
if command -v setpriv >/dev/null 2>&1; then
    msg=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$AICP" lab up --dir /tmp/aicp-lab-nonroot-$$ 2>&1) &&
        fail "lab up as non-root succeeded"
    echo "$msg" | grep -q 'needs root' || fail "non-root message: $msg"
fi
echo "PASS"
