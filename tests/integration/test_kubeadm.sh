#!/bin/sh
# Kubernetes over SSH with kubeadm (playbooks/k8s-cluster.yml, the
# kubeadm_init and kubeadm_join modules) on three lab hosts: node01 the
# control plane, node02 and node03 workers. kubeadm and kubelet are the lab
# stand-ins (tests/lab/bin), which keep the node's state in /etc/kubernetes
# as the real ones do, log each call to /var/lib/aicp-lab/kubeadm.calls, and
# share the cluster's tokens and members through a directory under /tmp
# (not overlaid: every lab host sees it).
. "$top_srcdir/tests/integration/lib.sh"
need_lab
lab_up 3
PB=$top_srcdir/playbooks/k8s-cluster.yml
CL=$LAB/cluster
mkdir -p "$CL"
for h in node01 node02 node03; do
    # CPU-only nodes: no NVIDIA tools at all (the nvidia-smi stand-in
    # would answer as a GPU node without a loaded driver).
    lab_ssh $h "mkdir -p /etc/aicp-lab && echo '$CL' > /etc/aicp-lab/cluster-dir &&
        rm -f /usr/local/sbin/nvidia-smi" ||
        fail "cannot set up $h"
done
INV=$WORK/k8s.ini
{ cat "$LAB/inventory.ini"; printf '\n[kube_control_plane]\nnode01\n'; } > "$INV"
KC=$WORK/kube/admin.conf
SKIP=

run() { # run NAME ARGS...: the playbook's output in $WORK/NAME.out, exit status in $rc
    _n=$1
    shift
    "$AICP" run "$PB" -i "$INV" -e "k8s_kubeconfig=$KC" $SKIP "$@" > "$WORK/$_n.out" 2>&1
    rc=$?
}
# status NAME TASK HOST: the first status word (ok, changed, skipping...)
# printed for HOST under TASK in run NAME's output.
status() {
    awk -v t="TASK [$2]" -v h="[$3]" '
        index($0, "TASK [") == 1 { in_t = index($0, t) == 1; next }
        in_t && index($0, h) { s = $1; sub(/:$/, "", s); print s; exit }' "$WORK/$1.out"
}
calls() { # calls HOST WORD: how often kubeadm WORD ran on HOST
    lab_ssh "$1" "cat /var/lib/aicp-lab/kubeadm.calls 2>/dev/null" | grep -c "^$2"
}
INIT_T='Create the cluster when this node has none'
JOIN_T='Join the cluster unless already a member'

# aicp run exits 2 when something changed, 0 when nothing did.

# Check mode on an empty lab: says what would change, touches nothing.
run check0 --check
[ $rc -eq 2 ] || { cat "$WORK/check0.out"; fail "check mode on an empty lab exits $rc, not 2 (changes)"; }
[ "$(status check0 "$INIT_T" node01)" = changed ] || { cat "$WORK/check0.out"; fail "check mode: init not predicted"; }
for h in node02 node03; do
    [ "$(status check0 "$JOIN_T" $h)" = changed ] || { cat "$WORK/check0.out"; fail "check mode: join of $h not predicted"; }
done
for h in node01 node02 node03; do
    lab_ssh $h "test ! -e /etc/kubernetes && test ! -s /var/lib/aicp-lab/kubeadm.calls" ||
        fail "check mode changed $h"
done
[ ! -e "$KC" ] || fail "check mode fetched the kubeconfig"
echo "ok   check mode on an empty lab predicts init and joins, changes nothing"

# First run: init on node01 only, joins on the workers, admin.conf fetched 0600.
run first -v
[ $rc -eq 2 ] || { cat "$WORK/first.out"; fail "first run exits $rc, not 2 (changed)"; }
[ "$(status first "$INIT_T" node01)" = changed ] || fail "first run: no init"
for h in node02 node03; do
    [ "$(status first "$JOIN_T" $h)" = changed ] || { cat "$WORK/first.out"; fail "first run: $h did not join"; }
done
[ "$(calls node01 init)" = 1 ] || fail "node01: kubeadm init ran $(calls node01 init) times"
for h in node02 node03; do
    [ "$(calls $h init)" = 0 ] || fail "$h ran kubeadm init"
    [ "$(calls $h join)" = 1 ] || fail "$h: kubeadm join ran $(calls $h join) times"
    lab_ssh $h "test -f /etc/kubernetes/kubelet.conf" || fail "$h has no kubelet.conf"
done
[ "$(calls node01 'token create')" = 2 ] || fail "not one token per joining worker"
grep -q '^node02 worker$' "$CL/node01:6443/nodes" && grep -q '^node03 worker$' "$CL/node01:6443/nodes" ||
    fail "the cluster does not list both workers: $(cat "$CL/node01:6443/nodes")"
[ -f "$KC" ] || fail "admin.conf was not fetched to $KC"
[ "$(stat -c %a "$KC")" = 600 ] || fail "the fetched kubeconfig is mode $(stat -c %a "$KC"), not 600"
grep -q 'server: https://node01:6443' "$KC" || fail "the fetched kubeconfig does not point at node01"
lab_ssh node01 "cat /etc/kubernetes/admin.conf" | cmp -s - "$KC" || fail "the fetched kubeconfig differs from node01's"
ls "$WORK/kube" | grep -q aicp- && fail "a temp file was left beside the kubeconfig"
echo "ok   first run: init on node01, node02 and node03 join, admin.conf fetched 0600"

# Second run: nothing to do anywhere, no init, join or token.
run second
[ $rc -eq 0 ] || { cat "$WORK/second.out"; fail "second run exits $rc"; }
[ "$(status second "$INIT_T" node01)" = ok ] || { cat "$WORK/second.out"; fail "second run: init not ok"; }
for h in node02 node03; do
    [ "$(status second "$JOIN_T" $h)" = ok ] || { cat "$WORK/second.out"; fail "second run: $h join not ok"; }
    [ "$(calls $h join)" = 1 ] || fail "second run joined $h again"
done
[ "$(calls node01 init)" = 1 ] || fail "second run ran kubeadm init again"
[ "$(calls node01 'token create')" = 2 ] || fail "second run made a token nobody needed"
run check1 --check
[ $rc -eq 0 ] && [ "$(status check1 "$INIT_T" node01)" = ok ] &&
    [ "$(status check1 "$JOIN_T" node02)" = ok ] || { cat "$WORK/check1.out"; fail "check mode on the cluster predicts a change"; }
echo "ok   second run and check mode: unchanged, no kubeadm init/join/token"

# A node that left (reset): only it joins again.
lab_ssh node03 "kubeadm reset -f" >/dev/null || fail "kubeadm reset on node03"
run third
[ $rc -eq 2 ] || { cat "$WORK/third.out"; fail "third run exits $rc, not 2"; }
[ "$(status third "$JOIN_T" node03)" = changed ] || { cat "$WORK/third.out"; fail "node03 did not join again"; }
[ "$(status third "$JOIN_T" node02)" = ok ] || fail "node02 changed on the third run"
[ "$(calls node03 join)" = 2 ] && [ "$(calls node02 join)" = 1 ] && [ "$(calls node01 init)" = 1 ] ||
    fail "the third run ran more than node03's join"
[ "$(calls node01 'token create')" = 3 ] || fail "not exactly one new token for node03"
echo "ok   a reset worker, and only it, joins again"

# No bootstrap token in any output, even with -v.
for t in $(cat "$CL/node01:6443/tokens"); do
    grep -l -F "${t#*.}" "$WORK"/*.out && fail "a bootstrap token appears in the output"
done
echo "ok   no bootstrap token in the output"

# The stand-in refuses a second init as kubeadm does; the module never tries.
out=$(lab_ssh node01 "kubeadm init" 2>&1) && fail "a second kubeadm init succeeded"
echo "$out" | grep -qF '[ERROR FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml]: /etc/kubernetes/manifests/kube-apiserver.yaml already exists' ||
    fail "second init: $out"
[ "$(lab_ssh node01 'kubelet --version')" = "Kubernetes v1.29.3" ] || fail "kubelet --version"

# state=absent needs allow_reset; with it, kubeadm reset -f.
cat > "$WORK/reset.yml" <<YEOF
- hosts: node01
  gather_facts: false
  tasks:
    - kubeadm_init:
        state: absent
        allow_reset: "{{ allow | default(false) }}"
YEOF
"$AICP" run "$WORK/reset.yml" -i "$INV" > "$WORK/reset0.out" 2>&1 && fail "state=absent without allow_reset succeeded"
grep -q 'allow_reset' "$WORK/reset0.out" || { cat "$WORK/reset0.out"; fail "no allow_reset hint"; }
lab_ssh node01 "test -f /etc/kubernetes/admin.conf" || fail "reset without allow_reset"
"$AICP" run "$WORK/reset.yml" -i "$INV" -e allow=true > "$WORK/reset1.out" 2>&1
[ $? -eq 2 ] || { cat "$WORK/reset1.out"; fail "state=absent"; }
lab_ssh node01 "test ! -e /etc/kubernetes/admin.conf && test ! -e /etc/kubernetes/manifests/kube-apiserver.yaml" ||
    fail "state=absent left the control plane"
"$AICP" run "$WORK/reset.yml" -i "$INV" -e allow=true > "$WORK/reset2.out" 2>&1 || fail "state=absent again"
grep -q 'changed=0' "$WORK/reset2.out" || { cat "$WORK/reset2.out"; fail "state=absent is not idempotent"; }
echo "ok   state=absent resets only with allow_reset, then is unchanged"

# A failed join fails the task with kubeadm's message, never the token.
lab_ssh node03 "kubeadm reset -f" >/dev/null || fail "kubeadm reset on node03"
cat > "$WORK/badjoin.yml" <<YEOF
- hosts: node03
  gather_facts: false
  tasks:
    - kubeadm_join:
        api_server: "node01:6443"
        token: abcdef.0123456789abcdef
        ca_cert_hash: "sha256:$(printf '%064d' 0)"
YEOF
"$AICP" run "$WORK/badjoin.yml" -i "$INV" -v > "$WORK/badjoin.out" 2>&1 && fail "a join to no cluster succeeded"
grep -q 'kubeadm join node01:6443 failed on node03' "$WORK/badjoin.out" || { cat "$WORK/badjoin.out"; fail "no kubeadm message"; }
grep -q '0123456789abcdef' "$WORK/badjoin.out" && fail "the token's secret part is in the output"
lab_ssh node03 "ls /tmp | grep -q '^tmp\.' && ls -d /tmp/tmp.*/join.yaml" 2>/dev/null && fail "the join configuration was left behind"
echo "ok   a failed join quotes kubeadm, not the token"
