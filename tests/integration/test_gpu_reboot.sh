#!/bin/sh
# A driver change that reboots a GPU node (playbooks/k8s-gpu-nodes.yml with
# k8s_gpu_allow_reboot): a node that is not a cluster member yet is only
# rebooted; a member is drained through the API first (its pods evicted,
# DaemonSet pods left), rebooted, then uncordoned, in that order. --check
# predicts it and touches nothing; a second run changes nothing.
#
# The lab host's `reboot` is a stand-in (this machine must not reboot): it
# records the time and gives the host a new boot id, which is what the
# driver module waits for.
. "$top_srcdir/tests/integration/lib.sh"
need_lab
lab_up 1
kube_fake_up --controller
H=node01
inv="$LAB/inventory.ini"
PB="$top_srcdir/playbooks/k8s-gpu-nodes.yml"

# The stand-in, only ever inside the lab host's own overlay of /usr.
lab_ssh $H 'grep -q " /usr overlay " /proc/mounts && [ "$(hostname)" = node01 ]' ||
    fail "$H does not run in the lab's namespace: refusing to touch its reboot"
lab_ssh $H 'cat > /usr/local/sbin/reboot <<"EOF"
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
    fail "installing the stand-in reboot"
[ "$(lab_ssh $H 'command -v reboot')" = /usr/local/sbin/reboot ] ||
    fail "the stand-in is not the reboot $H runs"
reboots() { lab_ssh $H 'cat /var/lib/aicp-lab-reboots 2>/dev/null' | grep -c .; }

api() { kube_fake_api "$@"; }
field() { # PATH DOTTED.FIELD
    api GET "$1" | python3 -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("" if v is None else (v if isinstance(v, str) else json.dumps(v)))' "$2"
}
pods_on() {
    api GET "/api/v1/pods?fieldSelector=spec.nodeName%3D$1" | python3 -c '
import json, sys
print(" ".join(sorted("%s/%s" % (p["metadata"]["namespace"], p["metadata"]["name"])
                      for p in json.load(sys.stdin)["items"])))'
}
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
    "$AICP" run "$PB" -i "$inv" -e target=$H -e k8s_gpu_stack=none -e k8s_gpu_allow_reboot=true \
        -e "k8s_kubeconfig=$KCFG" --json "$WORK/report.$n.json" "$@" > "$WORK/out.$n" 2>&1
    rc=$?
    [ "$rc" -eq "$want" ] || { cat "$WORK/out.$n"; fail "$what: exit $rc, expected $want"; }
    echo "ok   $what (exit $rc)"
}
# status N TASK: the task's status for the host in report N.
status() {
    python3 - "$WORK/report.$1.json" "$2" <<'EOF'
import json, sys
rep, name = sys.argv[1:3]
for play in json.load(open(rep))["plays"]:
    for t in play["tasks"]:
        if t["name"] == name:
            print(t["hosts"].get("node01", {}).get("status", "none"))
EOF
}

api POST /api/v1/nodes '{"apiVersion":"v1","kind":"Node","metadata":{"name":"node01"}}' >/dev/null ||
    fail "creating the Node"
api POST /_fake/reset '{}' >/dev/null || fail "resetting the request log"

# ---- not a member yet: rebooted, never drained --------------------------------
run 2 "a new driver on a node outside the cluster" -e k8s_gpu_driver=535
[ "$(reboots)" -eq 1 ] || fail "first install: $(reboots) reboots, expected 1"
[ "$(status 1 'Drain the node before the driver reboot')" = skipped ] ||
    fail "a node that is not a member was drained"
grep -q '"rebooted": true' "$WORK/report.1.json" || fail "the driver result does not say rebooted"
[ -z "$(writes)" ] || fail "the API was written for a node outside the cluster: $(writes)"

# ---- a member with pods -------------------------------------------------------
lab_ssh $H 'mkdir -p /etc/kubernetes && echo "apiVersion: v1" > /etc/kubernetes/kubelet.conf' ||
    fail "making $H a member"
api POST /apis/apps/v1/namespaces/kube-system/daemonsets '{"apiVersion":"apps/v1","kind":"DaemonSet",
    "metadata":{"name":"gpu-agent"},"spec":{"selector":{"matchLabels":{"app":"gpu-agent"}},
    "template":{"metadata":{"labels":{"app":"gpu-agent"}},"spec":{"containers":[{"name":"c","image":"busybox:1"}]}}}}' \
    >/dev/null || fail "creating the DaemonSet"
DSUID=$(field /apis/apps/v1/namespaces/kube-system/daemonsets/gpu-agent metadata.uid)
pod() { # NS NAME [EXTRA-METADATA]
    api POST "/api/v1/namespaces/$1/pods" "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",
        \"metadata\":{\"name\":\"$2\"${3:+,$3}},
        \"spec\":{\"nodeName\":\"node01\",\"containers\":[{\"name\":\"c\",\"image\":\"busybox:1\"}]}}" \
        >/dev/null || fail "creating pod $1/$2"
}
pod default train-1
pod kube-system gpu-agent-x1 "\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":\"DaemonSet\",\"name\":\"gpu-agent\",\"uid\":\"$DSUID\",\"controller\":true}]"
api POST /_fake/reset '{}' >/dev/null || fail "resetting the request log"

run 2 "check mode predicts the drain and the driver" -e k8s_gpu_driver=550 --check
for t in 'Drain the node before the driver reboot' 'NVIDIA driver'; do
    [ "$(status $n "$t")" = changed ] || fail "--check: '$t' is $(status $n "$t"), expected changed"
done
[ "$(reboots)" -eq 1 ] || fail "--check rebooted the node"
[ -z "$(writes)" ] || fail "--check wrote to the API: $(writes)"
[ "$(pods_on node01)" = "default/train-1 kube-system/gpu-agent-x1" ] || fail "--check evicted pods"

run 2 "a new driver on a member: drain, reboot, uncordon" -e k8s_gpu_driver=550
[ "$(reboots)" -eq 2 ] || fail "driver change: $(reboots) reboots, expected 2"
[ "$(pods_on node01)" = "kube-system/gpu-agent-x1" ] ||
    fail "after the drain the node has pods $(pods_on node01), expected only the DaemonSet's"
[ "$(field /api/v1/nodes/node01 spec.unschedulable)" != true ] || fail "the node was left cordoned"
rebooted_at=$(lab_ssh $H 'tail -n 1 /var/lib/aicp-lab-reboots')
writes > "$WORK/writes"
python3 - "$WORK/writes" "$rebooted_at" <<'EOF' || { cat "$WORK/writes"; fail "the drain, the reboot and the uncordon are out of order"; }
import sys
rows = [l.split() for l in open(sys.argv[1])]
boot = float(sys.argv[2])
evict = [float(t) for m, p, t in rows if p.endswith("/pods/train-1/eviction")]
node = [float(t) for m, p, t in rows if p == "/api/v1/nodes/node01" and m == "PATCH"]
assert len(evict) == 1, "train-1 evicted %d times" % len(evict)
assert not any(p.endswith("/gpu-agent-x1/eviction") for m, p, t in rows), "a DaemonSet pod was evicted"
cordon = [t for t in node if t < evict[0]]
uncordon = [t for t in node if t > boot]
assert cordon, "no cordon before the eviction"
assert evict[0] < boot, "the pod was evicted after the reboot"
assert uncordon, "no uncordon after the reboot"
EOF
for t in 'Drain the node before the driver reboot' 'NVIDIA driver' 'Uncordon the node after the driver reboot'; do
    [ "$(status $n "$t")" = changed ] || fail "'$t' is $(status $n "$t"), expected changed"
done

api POST /_fake/reset '{}' >/dev/null || fail "resetting the request log"
run 0 "the same driver again changes nothing" -e k8s_gpu_driver=550
[ "$(reboots)" -eq 2 ] || fail "the second run rebooted the node"
[ -z "$(writes)" ] || fail "the second run wrote to the API: $(writes)"
[ "$(status $n 'Drain the node before the driver reboot')" = skipped ] || fail "the second run drained"

# Without a kubeconfig (the playbook run on its own) a member is rebooted
# without a drain, as before.
lab_ssh $H 'dpkg -r nvidia-driver-535 >/dev/null' || fail "removing nvidia-driver-535"
"$AICP" run "$PB" -i "$inv" -e target=$H -e k8s_gpu_stack=none -e k8s_gpu_allow_reboot=true \
    -e k8s_gpu_driver=535 > "$WORK/out.nokc" 2>&1
rc=$?
[ "$rc" -eq 2 ] || { cat "$WORK/out.nokc"; fail "no kubeconfig: exit $rc, expected 2"; }
[ "$(reboots)" -eq 3 ] || fail "no kubeconfig: $(reboots) reboots, expected 3"
[ -z "$(writes)" ] || fail "no kubeconfig: the API was written: $(writes)"
echo "ok   no kubeconfig: rebooted, not drained"
exit 0
