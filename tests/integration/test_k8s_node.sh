#!/bin/sh
# The k8s_node module against the fake API server (tests/fakes/
# kube_apiserver.py with its controller stand-in), through `aicp run`:
# Nodes with pods bound to them (a plain pod, a DaemonSet pod, a pod with an
# emptyDir volume, a mirror pod), then cordon -> again -> uncordon -> drain
# (exactly the right pods evicted, through the Eviction API, a disruption
# budget's refusal waited out) -> the refusals kubectl drain makes -> delete
# -> delete again -> a missing node. Every step runs first with --check,
# which must predict the same exit status and task statuses, then for real,
# then a --check that must find nothing left to do.
. "$top_srcdir/tests/integration/lib.sh"
set -e

[ -x "$AICP" ] || skip "no aicp binary at $AICP"
kube_fake_up --controller
KUBECONFIG=$KCFG
export KUBECONFIG
printf 'localhost ansible_connection=local\n' >"$KDIR/inventory"

api() { kube_fake_api "$@"; } # METHOD PATH [JSON]

field() { kube_fake_field "$@"; }
pods_on() { kube_fake_pods_on "$@"; }

node() { api POST /api/v1/nodes "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"$1\"}}" >/dev/null ||
    fail "creating node $1"; }

pod() { kube_fake_pod "$@"; } # NS NAME NODE [EXTRA-METADATA-JSON [EXTRA-SPEC-JSON]]

write_play() {
    {
        printf -- '- hosts: localhost\n  gather_facts: false\n  tasks:\n'
        sed 's/^/    /'
    } >"$KDIR/play.yml"
}

# statuses REPORT: "task-status ..." of the --json report, one line.
statuses() {
    python3 - "$1" <<'EOF'
import json, sys
try:
    rep = json.load(open(sys.argv[1]))
except Exception:
    rep = {}
out = []
for play in rep.get("plays", []):
    for task in play.get("tasks", []):
        for h, e in sorted(task.get("hosts", {}).items()):
            out.append(",".join(x["status"] for x in e) if isinstance(e, list) else e["status"])
print(" ".join(out))
EOF
}

run_aicp() { # CHECK|RUN OUT REPORT: prints the exit status
    _x=0
    rm -f "$3"
    if [ "$1" = check ]; then
        "$AICP" run "$KDIR/play.yml" -i "$KDIR/inventory" --json "$3" --check --diff >"$2" 2>&1 || _x=$?
    else
        "$AICP" run "$KDIR/play.yml" -i "$KDIR/inventory" --json "$3" >"$2" 2>&1 || _x=$?
    fi
    echo $_x
}

# step LABEL RC STATUS <<EOF tasks EOF: --check, then the real run, must
# both exit RC with task status STATUS ("changed", "ok", "failed"); then,
# unless RC is 1, a --check must exit 0. $OUT is the real run's output,
# $CHECK_OUT the --check run's, $REPORT the real run's --json report.
step() {
    _label=$1 _want=$2 _st=$3
    write_play
    CHECK_OUT=$KDIR/check.out OUT=$KDIR/run.out REPORT=$KDIR/run.json
    _crc=$(run_aicp check "$CHECK_OUT" "$KDIR/check.json")
    _cst=$(statuses "$KDIR/check.json")
    _rc=$(run_aicp run "$OUT" "$REPORT")
    _rst=$(statuses "$REPORT")
    if [ "$_crc" != "$_want" ] || [ "$_rc" != "$_want" ] || [ "$_cst" != "$_st" ] ||
        [ "$_rst" != "$_st" ]; then
        echo "---- check run (exit $_crc, $_cst)" >&2
        cat "$CHECK_OUT" >&2
        echo "---- real run (exit $_rc, $_rst)" >&2
        cat "$OUT" >&2
        fail "$_label: expected exit $_want and status $_st"
    fi
    if [ "$_want" != 1 ]; then
        _vrc=$(run_aicp check "$KDIR/verify.out" "$KDIR/verify.json")
        [ "$_vrc" = 0 ] || { cat "$KDIR/verify.out" >&2; fail "$_label: a --check after the run still sees changes"; }
    fi
    echo "ok   $_label (exit $_rc, $_rst)"
}

expect() { # FILE TEXT: FILE contains TEXT
    grep -q -F -e "$2" "$1" || { cat "$1" >&2; fail "$(basename "$1") does not say: $2"; }
}

same() { # WHAT GOT WANT
    [ "$2" = "$3" ] || fail "$1: got '$2', expected '$3'"
}

# The module's result, shown by a debug task after it (register: r).
SHOW='- debug: {msg: "unschedulable={{ r.unschedulable }} evicted={{ r.evicted | join(\x27,\x27) }}."}'

# ---- the cluster: two nodes, a DaemonSet, pods of every sort on n1.
node n1
node n2
api POST /apis/apps/v1/namespaces/kube-system/daemonsets '{"apiVersion":"apps/v1","kind":"DaemonSet",
  "metadata":{"name":"gpu-agent"},"spec":{"selector":{"matchLabels":{"app":"gpu-agent"}},
  "template":{"metadata":{"labels":{"app":"gpu-agent"}},"spec":{"containers":[{"name":"c","image":"agent:1"}]}}}}' \
    >/dev/null || fail "creating the DaemonSet"
DSUID=$(field /apis/apps/v1/namespaces/kube-system/daemonsets/gpu-agent metadata.uid)
api POST /api/v1/namespaces '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"ml"}}' >/dev/null
pod default train-0 n1
pod ml web-1 n1 '"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web","uid":"00000000-0000-0000-0000-000000000001","controller":true}]'
pod kube-system gpu-agent-x1 n1 "\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":\"DaemonSet\",\"name\":\"gpu-agent\",\"uid\":\"$DSUID\",\"controller\":true}]"
pod kube-system etcd-n1 n1 '"annotations":{"kubernetes.io/config.mirror":"0123abcd"}'
pod default other n2
same "pods on n1" "$(pods_on n1)" "default/train-0 kube-system/etcd-n1 kube-system/gpu-agent-x1 ml/web-1"

# ---- cordon, again, uncordon
step "cordon" 2 "changed ok" <<EOF
- k8s_node: {name: n1, state: cordoned}
  register: r
$SHOW
EOF
expect "$CHECK_OUT" "unschedulable"
same "spec.unschedulable" "$(field /api/v1/nodes/n1 spec.unschedulable)" "true"
same "pods after cordon" "$(pods_on n1)" "default/train-0 kube-system/etcd-n1 kube-system/gpu-agent-x1 ml/web-1"
expect "$OUT" "unschedulable=True evicted=."
step "cordon again" 0 ok <<EOF
- k8s_node: {name: n1, state: cordoned}
EOF
step "uncordon (present)" 2 changed <<EOF
- k8s_node: {name: n1}
EOF
same "spec.unschedulable after uncordon" "$(field /api/v1/nodes/n1 spec.unschedulable)" ""
step "present again" 0 ok <<EOF
- k8s_node: {name: n1, state: present}
EOF

# ---- what kubectl drain refuses, refused before anything is written
pod ml scratch n1 "" '"volumes":[{"name":"tmp","emptyDir":{}}]'
step "drain refuses emptyDir pods" 1 failed <<EOF
- k8s_node: {name: n1, state: drained}
EOF
expect "$OUT" "cannot delete Pods with local storage (use delete_emptydir_data: true to override): ml/scratch"
same "not cordoned by a refused drain" "$(field /api/v1/nodes/n1 spec.unschedulable)" ""
step "drain refuses DaemonSet pods" 1 failed <<EOF
- k8s_node: {name: n1, state: drained, ignore_daemonsets: false, delete_emptydir_data: true}
EOF
expect "$OUT" "cannot delete DaemonSet-managed Pods (use ignore_daemonsets: true to ignore): kube-system/gpu-agent-x1"

# ---- drain: the plain, ReplicaSet and emptyDir pods go, through the
# Eviction API; a disruption budget refuses web-1 twice first.
api POST /_fake/reset '{}' >/dev/null
write_play <<EOF
- k8s_node: {name: n1, state: drained, delete_emptydir_data: true}
  register: r
$SHOW
EOF
_crc=$(run_aicp check "$KDIR/check.out" "$KDIR/check.json")
same "drain --check exit" "$_crc" 2
same "drain --check status" "$(statuses "$KDIR/check.json")" "changed ok"
expect "$KDIR/check.out" "ml/web-1"
same "--check evicted nothing" "$(pods_on n1)" "default/train-0 kube-system/etcd-n1 kube-system/gpu-agent-x1 ml/scratch ml/web-1"
same "--check did not cordon" "$(field /api/v1/nodes/n1 spec.unschedulable)" ""
api POST /_fake/fault '{"path_regex": "/namespaces/ml/pods/web-1/eviction$", "method": "POST", "status": 429, "count": 2}' >/dev/null
OUT=$KDIR/run.out REPORT=$KDIR/run.json
_rc=$(run_aicp run "$OUT" "$REPORT")
[ "$_rc" = 2 ] || { cat "$OUT" >&2; fail "drain: exit $_rc, expected 2"; }
same "pods left on n1" "$(pods_on n1)" "kube-system/etcd-n1 kube-system/gpu-agent-x1"
same "pod on n2" "$(pods_on n2)" "default/other"
same "cordoned by the drain" "$(field /api/v1/nodes/n1 spec.unschedulable)" "true"
expect "$OUT" "unschedulable=True evicted=default/train-0,ml/scratch,ml/web-1."
api GET /_fake/requests | python3 -c '
import json, sys
reqs = json.load(sys.stdin)
ev = [r for r in reqs if r["method"] == "POST" and r["path"].endswith("/eviction")]
paths = sorted({r["path"] for r in ev})
want = ["/api/v1/namespaces/default/pods/train-0/eviction",
        "/api/v1/namespaces/ml/pods/scratch/eviction", "/api/v1/namespaces/ml/pods/web-1/eviction"]
assert paths == want, paths
n = sum(1 for r in ev if r["path"].endswith("/web-1/eviction"))
assert n == 3, "web-1 was asked %d times, expected 3 (two refusals)" % n
assert [r for r in reqs if r["method"] == "DELETE" and "/pods/" in r["path"]] == [], "a pod was deleted, not evicted"
' || fail "the drain did not go through the Eviction API as expected"
echo "ok   drain (exit 2, evictions retried after 429)"
step "drain again" 0 ok <<EOF
- k8s_node: {name: n1, state: drained, delete_emptydir_data: true}
EOF

# ---- a budget that never gives in: the drain times out, naming the pod
pod default stuck n2
api POST /_fake/fault '{"path_regex": "/pods/stuck/eviction$", "status": 429, "count": 100}' >/dev/null
write_play <<EOF
- k8s_node: {name: n2, state: drained, timeout: 2}
EOF
OUT=$KDIR/run.out REPORT=$KDIR/run.json
_rc=$(run_aicp run "$OUT" "$REPORT")
[ "$_rc" = 1 ] || { cat "$OUT" >&2; fail "drain against a budget: exit $_rc, expected 1"; }
expect "$OUT" "pod default/stuck was not evicted within the timeout"
expect "$OUT" "disruption budget"
api POST /_fake/reset '{}' >/dev/null
echo "ok   a refused eviction times out"

# ---- absent: drained (n2's pods evicted), then deleted; again: unchanged
step "absent" 2 changed <<EOF
- k8s_node: {name: n2, state: absent}
EOF
api GET /api/v1/nodes/n2 >/dev/null 2>&1 && fail "node n2 still exists"
same "n2's pods" "$(pods_on n2)" ""
step "absent again" 0 ok <<EOF
- k8s_node: {name: n2, state: absent}
EOF
# drain: false deletes the node and leaves its pods
step "absent without drain" 2 changed <<EOF
- k8s_node: {name: n1, state: absent, drain: false}
EOF
same "n1's pods stay" "$(pods_on n1)" "kube-system/etcd-n1 kube-system/gpu-agent-x1"

# ---- a node that does not exist
step "missing node, drained" 1 failed <<EOF
- k8s_node: {name: n9, state: drained}
EOF
expect "$OUT" "n9"
step "missing node, cordoned" 1 failed <<EOF
- k8s_node: {name: n9, state: cordoned}
EOF
echo "PASS: k8s_node"
