#!/bin/sh
# A driver change that reboots GPU nodes (playbooks/k8s-gpu-nodes.yml with
# k8s_gpu_allow_reboot), on two lab hosts: nodes that are not cluster
# members yet are only rebooted; members are drained through the API first
# (their pods evicted, DaemonSet pods left), rebooted, then uncordoned, in
# that order, and one node at a time: the second is drained only after the
# first is back. --check predicts it and touches nothing; a second run
# changes nothing.
#
# The lab hosts' `reboot` is a stand-in (this machine must not reboot): it
# records the time and gives the host a new boot id, which is what the
# driver module waits for.
. "$top_srcdir/tests/integration/lib.sh"
need_lab
lab_up 2
kube_fake_up --controller
inv="$LAB/inventory.ini"
PB="$top_srcdir/playbooks/k8s-gpu-nodes.yml"

for h in node01 node02; do
    # The stand-in, only ever inside the lab host's own overlay of /usr.
    lab_ssh $h "grep -q ' /usr overlay ' /proc/mounts && [ \"\$(hostname)\" = $h ]" ||
        fail "$h does not run in the lab's namespace: refusing to touch its reboot"
    lab_ssh $h 'cat > /usr/local/sbin/reboot <<"EOF"
#!/bin/sh
# aicp lab stand-in: a new boot id for this host alone
date +%s.%N >> /var/lib/aicp-lab-reboots
cat /proc/sys/kernel/random/uuid > /var/lib/aicp-lab-boot-id
mount --bind /var/lib/aicp-lab-boot-id /proc/sys/kernel/random/boot_id
EOF
chmod 755 /usr/local/sbin/reboot && rm -f /usr/sbin/reboot &&
cp /usr/local/sbin/reboot /usr/sbin/reboot &&
rm -f /etc/aicp-lab/nvidia-driver-version /var/lib/aicp-lab-reboots &&
mkdir -p /etc/aicp-lab && echo "NVIDIA H100 80GB HBM3|81559|N/A|Enabled" > /etc/aicp-lab/gpus' ||
        fail "installing the stand-in reboot on $h"
    [ "$(lab_ssh $h 'command -v reboot')" = /usr/local/sbin/reboot ] ||
        fail "the stand-in is not the reboot $h runs"
done
reboots() { lab_ssh "$1" 'cat /var/lib/aicp-lab-reboots 2>/dev/null' | grep -c .; }
rebooted_at() { lab_ssh "$1" 'tail -n 1 /var/lib/aicp-lab-reboots'; }

api() { kube_fake_api "$@"; }
field() { kube_fake_field "$@"; }
pods_on() { kube_fake_pods_on "$@"; }
# writes: the fake's log of requests that write (method, path, time).
writes() {
    api GET /_fake/requests | python3 -c '
import json, sys
for r in json.load(sys.stdin):
    if r["method"] not in ("GET", "HEAD") and not r["path"].startswith("/_fake"):
        print(r["method"], r["path"], "%.6f" % r["time"])'
}

n=0
run() { # RC LABEL ARGS...
    want=$1 what=$2
    shift 2
    n=$((n + 1))
    "$AICP" run "$PB" -i "$inv" -e target=lab -e k8s_gpu_stack=none -e k8s_gpu_allow_reboot=true \
        -e "k8s_kubeconfig=$KCFG" --json "$WORK/report.$n.json" "$@" > "$WORK/out.$n" 2>&1
    rc=$?
    [ "$rc" -eq "$want" ] || { cat "$WORK/out.$n"; fail "$what: exit $rc, expected $want"; }
    echo "ok   $what (exit $rc)"
}
# status N TASK HOST: the task's status for the host in report N.
status() {
    python3 - "$WORK/report.$1.json" "$2" "$3" <<'EOF'
import json, sys
rep, name, host = sys.argv[1:4]
for play in json.load(open(rep))["plays"]:
    for t in play["tasks"]:
        if t["name"] == name and host in t["hosts"]:
            print(t["hosts"][host].get("status", "none"))
EOF
}
DRAIN='Drain the node before the driver reboot'
UNCORDON='Uncordon the node after the driver reboot'

for h in node01 node02; do
    api POST /api/v1/nodes "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"$h\"}}" \
        >/dev/null || fail "creating the Node $h"
done
api POST /_fake/reset '{}' >/dev/null || fail "resetting the request log"

# ---- not members yet: rebooted, never drained ---------------------------------
run 2 "a new driver on nodes outside the cluster" -e k8s_gpu_driver=535
for h in node01 node02; do
    [ "$(reboots $h)" -eq 1 ] || fail "first install: $h rebooted $(reboots $h) times, expected 1"
    [ "$(status 1 "$DRAIN" $h)" = skipped ] || fail "$h, not a member, was drained: $(status 1 "$DRAIN" $h)"
done
grep -q '"rebooted": true' "$WORK/report.1.json" || fail "the driver result does not say rebooted"
[ "$(grep -c '^PLAY \[Prepare GPU nodes\]' "$WORK/out.1")" -eq 2 ] ||
    fail "nodes that may reboot did not go one at a time"
[ -z "$(writes)" ] || fail "the API was written for nodes outside the cluster: $(writes)"

# ---- members with pods --------------------------------------------------------
api POST /apis/apps/v1/namespaces/kube-system/daemonsets '{"apiVersion":"apps/v1","kind":"DaemonSet",
    "metadata":{"name":"gpu-agent"},"spec":{"selector":{"matchLabels":{"app":"gpu-agent"}},
    "template":{"metadata":{"labels":{"app":"gpu-agent"}},"spec":{"containers":[{"name":"c","image":"busybox:1"}]}}}}' \
    >/dev/null || fail "creating the DaemonSet"
DSUID=$(field /apis/apps/v1/namespaces/kube-system/daemonsets/gpu-agent metadata.uid)
for h in node01 node02; do
    lab_ssh $h 'mkdir -p /etc/kubernetes && echo "apiVersion: v1" > /etc/kubernetes/kubelet.conf' ||
        fail "making $h a member"
    kube_fake_pod default "train-$h" $h
    kube_fake_pod kube-system "gpu-agent-$h" $h "\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":\"DaemonSet\",\"name\":\"gpu-agent\",\"uid\":\"$DSUID\",\"controller\":true}]"
done
api POST /_fake/reset '{}' >/dev/null || fail "resetting the request log"

run 2 "check mode predicts the drains and the drivers" -e k8s_gpu_driver=550 --check
for h in node01 node02; do
    for t in "$DRAIN" 'NVIDIA driver'; do
        [ "$(status $n "$t" $h)" = changed ] || fail "--check: '$t' on $h is $(status $n "$t" $h), expected changed"
    done
    [ "$(reboots $h)" -eq 1 ] || fail "--check rebooted $h"
    [ "$(pods_on $h)" = "default/train-$h kube-system/gpu-agent-$h" ] || fail "--check evicted pods of $h"
done
[ -z "$(writes)" ] || fail "--check wrote to the API: $(writes)"

run 2 "a new driver on members: drain, reboot, uncordon, a node at a time" -e k8s_gpu_driver=550
for h in node01 node02; do
    [ "$(reboots $h)" -eq 2 ] || fail "driver change: $h rebooted $(reboots $h) times, expected 2"
    [ "$(pods_on $h)" = "kube-system/gpu-agent-$h" ] ||
        fail "after the drain $h has pods $(pods_on $h), expected only the DaemonSet's"
    [ "$(field /api/v1/nodes/$h spec.unschedulable)" != true ] || fail "$h was left cordoned"
    for t in "$DRAIN" 'NVIDIA driver' "$UNCORDON"; do
        [ "$(status $n "$t" $h)" = changed ] || fail "'$t' on $h is $(status $n "$t" $h), expected changed"
    done
done
writes > "$WORK/writes"
python3 - "$WORK/writes" "$(rebooted_at node01)" "$(rebooted_at node02)" <<'EOF' ||
import sys
rows = [l.split() for l in open(sys.argv[1])]
boot = {"node01": float(sys.argv[2]), "node02": float(sys.argv[3])}
for m, p, t in rows:
    assert not p.endswith("/eviction") or "/train-" in p, "a DaemonSet pod was evicted: " + p
seen = {}
for h in ("node01", "node02"):
    evict = [float(t) for m, p, t in rows if p.endswith("/pods/train-%s/eviction" % h)]
    node = [float(t) for m, p, t in rows if p == "/api/v1/nodes/" + h and m == "PATCH"]
    assert len(evict) == 1, "train-%s evicted %d times" % (h, len(evict))
    cordon = [t for t in node if t < evict[0]]
    uncordon = [t for t in node if t > boot[h]]
    assert cordon, h + ": no cordon before the eviction"
    assert evict[0] < boot[h], h + ": the pod was evicted after the reboot"
    assert uncordon, h + ": no uncordon after the reboot"
    seen[h] = (min(cordon), max(uncordon))
first, second = sorted(seen.values())
assert first[1] < second[0], "both nodes were out of service at once: %s" % seen
EOF
    { cat "$WORK/writes"; fail "the drains, reboots and uncordons are out of order"; }

api POST /_fake/reset '{}' >/dev/null || fail "resetting the request log"
run 0 "the same driver again changes nothing" -e k8s_gpu_driver=550
for h in node01 node02; do
    [ "$(reboots $h)" -eq 2 ] || fail "the second run rebooted $h"
    [ "$(status $n "$DRAIN" $h)" = skipped ] || fail "the second run drained $h"
done
[ -z "$(writes)" ] || fail "the second run wrote to the API: $(writes)"

# Without a kubeconfig (the playbook run on its own) members are rebooted
# without a drain, all at once unless told otherwise.
lab_ssh node01 'dpkg -r nvidia-driver-535 >/dev/null' || fail "removing nvidia-driver-535"
"$AICP" run "$PB" -i "$inv" -e target=node01 -e k8s_gpu_stack=none -e k8s_gpu_allow_reboot=true \
    -e k8s_gpu_driver=535 > "$WORK/out.nokc" 2>&1
rc=$?
[ "$rc" -eq 2 ] || { cat "$WORK/out.nokc"; fail "no kubeconfig: exit $rc, expected 2"; }
[ "$(reboots node01)" -eq 3 ] || fail "no kubeconfig: $(reboots node01) reboots, expected 3"
[ -z "$(writes)" ] || fail "no kubeconfig: the API was written: $(writes)"
echo "ok   no kubeconfig: rebooted, not drained"
exit 0
