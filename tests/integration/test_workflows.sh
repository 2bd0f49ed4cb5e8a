#!/bin/sh
# The day-2 data workflows (playbooks/*.yml of docs/workflows.md) end to
# end, as a data scientist runs them (only -e values, the ONTAP password
# from a vaulted file), against the fake ONTAP REST server and the fake
# Kubernetes API server (Trident's CRDs, the controller stand-in):
#   import-dataset: two ReadOnlyMany PVCs of pb_fg_all; again: unchanged;
#     a SnapMirror destination (DP) is refused with the advice to break it,
#     and nothing is made;
#   replicate-dataset: an update transfer, lag reported before and after;
#     with max_lag the second run is unchanged; a paused relationship is
#     refused;
#   training-run: baseline and pre/post model snapshots and the Job carry
#     the run id; the throughput is read from the log; again: unchanged; no
#     run_id: refused;
#   distributed-training: worker up, master Job done, worker gone; again:
#     unchanged; a failing master still removes the worker;
#   workspace-from-dataset: snapshot, FlexClone, PVC import, notebook;
#     again: unchanged;
#   teardown-workspace: refuses a clone of another parent and protected
#     names; removes the workspace and leaves the dataset and its snapshots;
#     again: unchanged.
# Every step runs first with --check, which must predict the real run's
# exit status. The password (the canary) never shows.
. "$top_srcdir/tests/integration/lib.sh"

[ -x "$AICP" ] || skip "no aicp binary at $AICP"
[ -f "$top_srcdir/tests/fakes/ontap_server.py" ] || skip "no fake ONTAP server"
PB=$top_srcdir/playbooks

# Trident's CRDs, and Kubeflow's Notebook kind when the fake can
# pre-install it (its controller stand-in then runs the notebooks' pods);
# the workspace playbooks need the kubeflow_notebook module: without it
# they run without their notebook tasks (below).
KARGS="--crds trident --controller"
if python3 "$top_srcdir/tests/fakes/kube_apiserver.py" --help 2>/dev/null | grep -q kubeflow; then
    KARGS="$KARGS --crds kubeflow"
fi
if "$AICP" modules kubeflow_notebook >/dev/null 2>&1; then NOTEBOOKS=1; else NOTEBOOKS=0; fi
# shellcheck disable=SC2086
kube_fake_up $KARGS
ontap_fake_up
T=$ODIR
SEC=$ODIR/secret-inputs
cp "$KCFG" "$T/kubeconfig"
unset KUBECONFIG

printf 'vault-pass-%s\n' "$$" >"$SEC/vault-pass"
printf 'ontap_password: "pw-%s"\n' "$CANARY" >"$SEC/secrets.yml"
"$AICP" vault encrypt --vault-password-file "$SEC/vault-pass" "$SEC/secrets.yml" >/dev/null 2>&1 ||
    fail "aicp vault encrypt"
V="-i localhost, -e @$SEC/secrets.yml --vault-password-file $SEC/vault-pass"
V="$V --kubeconfig $T/kubeconfig -e ontap_hostname=$OHOST -e ontap_ca_file=$OCA"

# The workspace playbooks as they are, or without the kubeflow_notebook
# tasks while this aicp lacks the module.
if [ "$NOTEBOOKS" = 1 ]; then
    WS=$PB/workspace-from-dataset.yml TD=$PB/teardown-workspace.yml
else
    echo "note: this aicp has no kubeflow_notebook module: the workspace playbooks run" \
        "without their notebook task"
    for f in workspace-from-dataset teardown-workspace; do
        python3 - "$PB/$f.yml" "$T/$f.yml" <<'EOF' || fail "filtering $f.yml"
import re, sys
src = open(sys.argv[1]).read().split("\n")
out, skip = [], False
for line in src:
    if re.match(r"^    - name: ", line):
        skip = False
    if re.match(r"^      kubeflow_notebook:", line) and out and out[-1].startswith("    - name: "):
        out.pop()
        skip = True
    if not skip:
        out.append(line)
open(sys.argv[2], "w").write("\n".join(out))
EOF
    done
    WS=$T/workspace-from-dataset.yml TD=$T/teardown-workspace.yml
fi

n=0
# play FILE [ARGS...]: one aicp run; its output in $OUT, exit status in $RC.
play() {
    n=$((n + 1))
    OUT=$T/out.$n
    _pb=$1
    shift
    # shellcheck disable=SC2086
    "$AICP" run "$_pb" $V "$@" >"$OUT" 2>&1
    RC=$?
}
# step LABEL WANT-RC FILE [ARGS...]: --check, then the real run; both must
# exit WANT-RC. $OUT is the real run's output.
step() {
    _label=$1 _want=$2
    shift 2
    play "$@" --check
    _crc=$RC _cout=$OUT
    play "$@"
    if [ "$RC" != "$_want" ] || [ "$_crc" != "$RC" ]; then
        echo "---- check run (exit $_crc)" >&2
        cat "$_cout" >&2
        echo "---- real run (exit $RC)" >&2
        cat "$OUT" >&2
        fail "$_label: exit $RC (check $_crc), expected $_want"
    fi
    echo "ok   $_label (exit $RC)"
}
# again LABEL FILE [ARGS...]: a --check and a second real run exit 0 and
# change nothing.
again() {
    _label=$1
    shift
    play "$@" --check
    if [ "$RC" != 0 ] || ! grep -q "changed=0 " "$OUT"; then cat "$OUT" >&2; fail "$_label: --check sees changes"; fi
    play "$@"
    if [ "$RC" != 0 ] || ! grep -q "changed=0 " "$OUT"; then cat "$OUT" >&2; fail "$_label: not unchanged"; fi
    echo "ok   $_label: unchanged"
}
expect() { grep -q -F -e "$1" "$OUT" || { cat "$OUT" >&2; fail "the output does not say: $1"; }; }
changed() { grep -q 'changed=[1-9]' "$OUT" || { cat "$OUT" >&2; fail "$1: nothing changed"; }; }

# api ontap|kube METHOD PATH [JSON]: one request to a fake; prints the body.
api() {
    python3 - "$@" "https://$OHOST" "$OCA" "$SEC/users" "$KURL" "$KDIR/ca.pem" \
        "$KDIR/secret-inputs/token" <<'EOF'
import base64, json, ssl, sys, urllib.request, urllib.error
a = sys.argv[1:]
which, method, path = a[0], a[1], a[2]
body = a[3].encode() if len(a) == 10 else None
ourl, oca, users, kurl, kca, tok = a[-6:]
url, ca = (ourl, oca) if which == "ontap" else (kurl, kca)
req = urllib.request.Request(url + path, data=body, method=method)
if which == "ontap":
    cred = open(users).readline().strip()
    req.add_header("Authorization", "Basic " + base64.b64encode(cred.encode()).decode())
else:
    req.add_header("Authorization", "Bearer " + open(tok).read().strip())
if body is not None:
    req.add_header("Content-Type", "application/json")
try:
    with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=ca), timeout=20) as r:
        sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    sys.stdout.write(e.read().decode())
    sys.exit(1)
EOF
}
# field DOTTED.FIELD <JSON: one field ("" when absent); a collection's
# only record (ONTAP's records, Kubernetes' items) stands for it.
field() {
    python3 -c '
import json, sys
v = json.load(sys.stdin)
for coll in ("records", "items"):
    if isinstance(v, dict) and coll in v:
        v = v[coll][0] if len(v[coll]) == 1 else None
for k in sys.argv[1].split("/"):
    if isinstance(v, list) and k.isdigit():
        v = v[int(k)] if int(k) < len(v) else None
    else:
        v = v.get(k) if isinstance(v, dict) else None
print("" if v is None else (v if isinstance(v, str) else json.dumps(v)))' "$1"
}
# vol SVM NAME FIELD: a field of a volume ("" when there is none).
vol() {
    api ontap GET "/api/storage/volumes?name=$2&svm.name=$1&fields=uuid,type,clone,nas.path" | field "$3"
}
# snap SVM VOLUME SNAPSHOT FIELD: a field of a snapshot ("" when none).
snap() {
    _u=$(vol "$1" "$2" uuid)
    [ -n "$_u" ] || fail "no volume $1:$2"
    api ontap GET "/api/storage/volumes/$_u/snapshots?name=$3&fields=name,comment" | field "$4"
}
kobj() { # PATH FIELD (fields separated by /)
    api kube GET "$1" | field "$2"
}

# Kubeflow's Notebook kind, unless the fake pre-installed it (then its
# controller stand-in runs the notebooks' pods too, else nothing would:
# the playbooks do not wait for them then).
NBWAIT=
if [ "$NOTEBOOKS" = 1 ] && ! api kube GET /apis/kubeflow.org/v1 >/dev/null 2>&1; then
    NBWAIT="-e notebook_wait=false"
    api kube POST /apis/apiextensions.k8s.io/v1/customresourcedefinitions '{"apiVersion":
        "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name":
        "notebooks.kubeflow.org"}, "spec": {"group": "kubeflow.org", "scope": "Namespaced",
        "names": {"plural": "notebooks", "singular": "notebook", "kind": "Notebook",
        "listKind": "NotebookList"}, "versions": [{"name": "v1", "served": true, "storage":
        true, "subresources": {"status": {}}, "schema": {"openAPIV3Schema": {"type": "object",
        "x-kubernetes-preserve-unknown-fields": true}}}]}}' >/dev/null ||
        fail "creating the Notebook CRD"
fi

# ---- the site's storage and Trident objects, as the site file makes them
cat >"$T/fixtures.yml" <<'EOF'
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    c: &c
      hostname: "{{ ontap_hostname }}"
      username: admin
      password: "{{ ontap_password }}"
      ca_file: "{{ ontap_ca_file }}"
  tasks:
    - ontap_volume: {<<: *c, name: pb_fg_all, vserver: ontapai_nfs, aggr_list: [aggr1, aggr2],
                     aggr_list_multiplier: 4, size: 10TB, junction_path: /pb_fg_all}
    - ontap_volume: {<<: *c, name: ai_results, vserver: ontapai_nfs, aggregate_name: aggr1,
                     size: 1TB, junction_path: /ai_results}
    - ontap_snapmirror: {<<: *c, source_path: "ontapai_nfs:pb_fg_all",
                         destination_path: "svm_dr:pb_fg_all_dr",
                         create_destination: {enabled: true}, policy: MirrorAllSnapshots,
                         state: snapmirrored}
    - namespace: {name: trident}
    - trident_backend:
        name: "{{ item.name }}"
        driver: "{{ item.driver }}"
        management_lif: "{{ ontap_hostname }}"
        data_lif: "{{ item.lif }}"
        svm: ontapai_nfs
        username: admin
        password: "{{ ontap_password }}"
      loop:
        - {name: ontap-ai-flexgroups-iface1, driver: ontap-nas-flexgroup, lif: 192.168.11.11}
        - {name: ontap-ai-flexgroups-iface2, driver: ontap-nas-flexgroup, lif: 192.168.12.11}
        - {name: ontap-ai-flexvols, driver: ontap-nas, lif: 192.168.11.11}
    - storage_class: {name: "{{ item.name }}", backend_type: "{{ item.type }}",
                      storage_pools: "{{ item.pools }}", reclaim_policy: Retain}
      loop:
        - {name: ontap-ai-flexgroups-retain-iface1, type: ontap-nas-flexgroup,
           pools: "ontap-ai-flexgroups-iface1:.*"}
        - {name: ontap-ai-flexgroups-retain-iface2, type: ontap-nas-flexgroup,
           pools: "ontap-ai-flexgroups-iface2:.*"}
        - {name: ontap-ai-flexvols-retain, type: ontap-nas, pools: "ontap-ai-flexvols:.*"}
    - pvc: {name: tensorflow-results, namespace: default, size: 1Ti,
            access_modes: [ReadWriteMany], storage_class: ontap-ai-flexvols-retain}
EOF
play "$T/fixtures.yml"
[ "$RC" = 2 ] || { cat "$OUT" >&2; fail "the fixtures"; }
echo "ok   fixtures: pb_fg_all, ai_results, the DR mirror, Trident backends and classes"

# ---- import-dataset
step "import-dataset" 2 "$PB/import-dataset.yml"
changed import-dataset
expect "ontapai_nfs:pb_fg_all (10Ti) as pb-fg-all-iface1, pb-fg-all-iface2"
for i in 1 2; do
    p=/api/v1/namespaces/default/persistentvolumeclaims/pb-fg-all-iface$i
    [ "$(kobj $p status/phase)" = Bound ] || fail "pb-fg-all-iface$i is not Bound"
    [ "$(kobj $p spec/accessModes/0)" = ReadOnlyMany ] || fail "pb-fg-all-iface$i is not ReadOnlyMany"
    [ "$(kobj $p spec/storageClassName)" = ontap-ai-flexgroups-retain-iface$i ] ||
        fail "pb-fg-all-iface$i has the wrong class"
    api kube GET $p | grep -q '"trident.netapp.io/importOriginalName": *"pb_fg_all"' ||
        fail "pb-fg-all-iface$i does not import pb_fg_all"
done
again "import-dataset" "$PB/import-dataset.yml"

# A SnapMirror destination is DP: refused, with the way out, nothing made.
[ "$(vol svm_dr pb_fg_all_dr type)" = dp ] || fail "pb_fg_all_dr is not DP"
step "import-dataset refuses a DP volume" 1 "$PB/import-dataset.yml" -e svm=svm_dr -e volume=pb_fg_all_dr
expect "is a data-protection (DP) volume, the destination of SnapMirror relationship ontapai_nfs:pb_fg_all -> svm_dr:pb_fg_all_dr (snapmirrored)"
expect "Break the relationship first"
expect "snapmirror break -destination-path svm_dr:pb_fg_all_dr"
! api kube GET /api/v1/namespaces/default/persistentvolumeclaims/pb-fg-all-dr-iface1 >/dev/null ||
    fail "a PVC of the DP volume was made"
step "import-dataset: a missing volume" 1 "$PB/import-dataset.yml" -e volume=no_such_vol
expect "volume no_such_vol does not exist in SVM ontapai_nfs"

# ---- replicate-dataset
api ontap PATCH /_fake/snapmirror '{"destination": "svm_dr:pb_fg_all_dr", "set": {"lag_seconds": 7200}}' \
    >/dev/null || fail "setting the lag"
play "$PB/replicate-dataset.yml" --check
[ "$RC" = 2 ] || { cat "$OUT" >&2; fail "replicate-dataset --check"; }
expect "lag before: PT2H"
play "$PB/replicate-dataset.yml" -e max_lag=PT1H
[ "$RC" = 2 ] || { cat "$OUT" >&2; fail "replicate-dataset"; }
changed replicate-dataset
expect "lag before: PT2H"
expect "(transferred; healthy: True)"
grep -q 'lag after: PT[0-9]S' "$OUT" || { cat "$OUT" >&2; fail "replicate-dataset: the lag after is not seconds"; }
echo "ok   replicate-dataset: lag PT2H -> $(sed -n 's/.*lag after: \(PT[0-9]*S\).*/\1/p' "$OUT" | head -n 1)"
again "replicate-dataset with max_lag" "$PB/replicate-dataset.yml" -e max_lag=PT1H
step "replicate-dataset without max_lag transfers every time" 2 "$PB/replicate-dataset.yml"
changed "replicate-dataset again"
api ontap PATCH /_fake/snapmirror '{"destination": "svm_dr:pb_fg_all_dr", "set": {"state": "paused"}}' \
    >/dev/null || fail "pausing"
step "replicate-dataset refuses a paused relationship" 1 "$PB/replicate-dataset.yml"
expect "is paused, not snapmirrored"
api ontap PATCH /_fake/snapmirror '{"destination": "svm_dr:pb_fg_all_dr", "set": {"state": "snapmirrored"}}' \
    >/dev/null || fail "resuming"
step "replicate-dataset: no such relationship" 1 "$PB/replicate-dataset.yml" -e destination_path=svm_dr:nothing
expect "no SnapMirror relationship has destination svm_dr:nothing"

# ---- training-run
TR="-e run_id=r1 -e model_volume=ai_results"
printf '{"job_env": {"FAKE_LOG": "step 100 images/sec: 1200.0\\ntotal images/sec: 6,530.24\\n"}}' \
    >"$T/train-env.json"
# shellcheck disable=SC2086
step "training-run" 2 "$PB/training-run.yml" $TR -e "@$T/train-env.json"
changed training-run
expect "throughput: 6530.24 images/sec"
expect "dataset ontapai_nfs:pb_fg_all@baseline-r1"
[ "$(snap ontapai_nfs pb_fg_all baseline-r1 comment)" = "aicp run r1: dataset baseline" ] ||
    fail "no baseline-r1 snapshot of pb_fg_all with the run's comment"
for s in pre post; do
    [ "$(snap ontapai_nfs ai_results model-r1-$s name)" = "model-r1-$s" ] || fail "no model-r1-$s snapshot"
done
[ "$(snap ontapai_nfs ai_results model-r1-post comment)" = "aicp run r1: model after training" ] ||
    fail "model-r1-post has the wrong comment"
J=/apis/batch/v1/namespaces/default/jobs/train-r1
api kube GET $J >"$T/job.json" || fail "no Job train-r1"
python3 - "$T/job.json" <<'EOF' || fail "the Job is not stamped with the run id"
import json, sys
j = json.load(open(sys.argv[1]))
m = j["metadata"]
assert m["labels"]["aicp.io/run-id"] == "r1", m["labels"]
a = m["annotations"]
assert a["aicp.io/dataset-snapshot"] == "ontapai_nfs:pb_fg_all@baseline-r1", a
assert a["aicp.io/model-snapshot-pre"] == "ontapai_nfs:ai_results@model-r1-pre", a
assert a["aicp.io/model-snapshot-post"] == "ontapai_nfs:ai_results@model-r1-post", a
assert a["aicp.io/model-snapshot"] == "ontapai_nfs:ai_results@model-r1-post", a
t = j["spec"]["template"]
assert t["metadata"]["labels"]["aicp.io/run-id"] == "r1"
vols = {v["name"]: v for v in t["spec"]["volumes"]}
assert vols["dshm"]["emptyDir"]["medium"] == "Memory"
assert vols["dataset1"]["persistentVolumeClaim"]["claimName"] == "pb-fg-all-iface1"
assert vols["dataset2"]["persistentVolumeClaim"]["claimName"] == "pb-fg-all-iface2"
c = t["spec"]["containers"][0]
mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
assert mounts["/mnt/results"] == "results" and mounts["/dev/shm"] == "dshm", mounts
assert str(c["resources"]["limits"]["nvidia.com/gpu"]) == "8"
EOF
[ "$(api kube GET '/api/v1/namespaces/default/pods?labelSelector=aicp.io/run-id%3Dr1' |
    field metadata/labels/job-name)" = train-r1 ] || fail "the Job's pod does not carry the run id"
echo "ok   training-run: snapshots, Job and pods carry run id r1"
# shellcheck disable=SC2086
again "training-run" "$PB/training-run.yml" $TR -e "@$T/train-env.json"
expect "throughput: 6530.24 images/sec"
step "training-run without a run id" 1 "$PB/training-run.yml" -e model_volume=ai_results
expect "-e run_id=ID"
step "training-run with a bad run id" 1 "$PB/training-run.yml" -e run_id=Run_1 -e model_volume=ai_results
[ "$(snap ontapai_nfs pb_fg_all baseline-Run_1 name 2>/dev/null)" = "" ] || fail "a snapshot of a refused run"

# ---- distributed-training
DT="-e run_id=d1 -e master_node=dgx1 -e worker_node=dgx2 -e master_ip=10.61.218.152 -e worker_ip=10.61.218.154"
# shellcheck disable=SC2086
step "distributed-training" 2 "$PB/distributed-training.yml" $DT
changed distributed-training
expect "Worker Deployment on the second node"
! api kube GET /apis/apps/v1/namespaces/default/deployments/multi-d1-worker >/dev/null ||
    fail "the worker Deployment is left"
J=/apis/batch/v1/namespaces/default/jobs/multi-d1
[ "$(kobj $J status/succeeded)" = 1 ] || fail "the master Job did not run"
[ "$(kobj $J spec/template/spec/hostNetwork)" = true ] || fail "the master is not on the host network"
api kube GET $J | grep -q '"kubernetes.io/hostname": *"dgx1"' || fail "the master is not pinned to dgx1"
# shellcheck disable=SC2086
again "distributed-training" "$PB/distributed-training.yml" $DT
printf '{"job_env": {"FAKE_FAIL": "1"}}' >"$T/fail-env.json"
DT2="-e run_id=d2 -e master_node=dgx1 -e worker_node=dgx2 -e master_ip=10.61.218.152 -e worker_ip=10.61.218.154"
# shellcheck disable=SC2086
play "$PB/distributed-training.yml" $DT2 -e "@$T/fail-env.json"
[ "$RC" = 1 ] || { cat "$OUT" >&2; fail "a failing master Job: exit $RC, not 1"; }
expect "Worker Deployment removed"
expect "BackoffLimitExceeded"
! api kube GET /apis/apps/v1/namespaces/default/deployments/multi-d2-worker >/dev/null ||
    fail "a failed run left its worker Deployment"
echo "ok   distributed-training: a failed master Job still removes the worker"

# ---- workspace-from-dataset
# shellcheck disable=SC2086
step "workspace-from-dataset" 2 "$WS" $NBWAIT -e workspace=alice
changed workspace-from-dataset
[ "$(snap ontapai_nfs pb_fg_all ws-alice comment)" = "aicp workspace alice: dataset as cloned" ] ||
    fail "no ws-alice snapshot"
[ "$(vol ontapai_nfs pb_fg_all_ws_alice clone/is_flexclone)" = true ] || fail "no FlexClone pb_fg_all_ws_alice"
[ "$(vol ontapai_nfs pb_fg_all_ws_alice clone/parent_volume/name)" = pb_fg_all ] || fail "the clone's parent"
[ "$(vol ontapai_nfs pb_fg_all_ws_alice clone/parent_snapshot/name)" = ws-alice ] || fail "the clone's snapshot"
[ "$(vol ontapai_nfs pb_fg_all_ws_alice nas/path)" = /pb_fg_all_ws_alice ] || fail "the clone's junction"
P=/api/v1/namespaces/default/persistentvolumeclaims/alice-data
[ "$(kobj $P status/phase)" = Bound ] || fail "alice-data is not Bound"
[ "$(kobj $P spec/accessModes/0)" = ReadWriteMany ] || fail "alice-data is not ReadWriteMany"
api kube GET $P | grep -q '"trident.netapp.io/importOriginalName": *"pb_fg_all_ws_alice"' ||
    fail "alice-data does not import the clone"
api kube GET $P | grep -q '"aicp.io/dataset-snapshot": *"ontapai_nfs:pb_fg_all@ws-alice"' ||
    fail "alice-data does not name its snapshot"
NB=/apis/kubeflow.org/v1/namespaces/default/notebooks/alice
if [ "$NOTEBOOKS" = 1 ]; then
    api kube GET $NB >"$T/notebook.json" || fail "no Notebook alice"
    grep -q '"claimName": *"alice-data"' "$T/notebook.json" || fail "the notebook does not mount alice-data"
fi
echo "ok   workspace-from-dataset: ws-alice, FlexClone pb_fg_all_ws_alice, PVC alice-data"
# shellcheck disable=SC2086
again "workspace-from-dataset" "$WS" $NBWAIT -e workspace=alice
# A workspace of the data training run r1 read: its baseline keeps its comment.
# shellcheck disable=SC2086
step "workspace-from-dataset of a run's baseline" 2 "$WS" $NBWAIT -e workspace=carol -e snapshot=baseline-r1
[ "$(vol ontapai_nfs pb_fg_all_ws_carol clone/parent_snapshot/name)" = baseline-r1 ] ||
    fail "carol's clone is not of baseline-r1"
[ "$(snap ontapai_nfs pb_fg_all baseline-r1 comment)" = "aicp run r1: dataset baseline" ] ||
    fail "the baseline's comment changed"
# shellcheck disable=SC2086
again "workspace-from-dataset of a run's baseline" "$WS" $NBWAIT -e workspace=carol -e snapshot=baseline-r1

# ---- teardown-workspace
# A volume of the workspace's clone name whose parent is another volume.
api ontap POST /api/storage/volumes \
    '{"name": "pb_fg_all_ws_bob", "svm": {"name": "ontapai_nfs"}, "clone": {"is_flexclone": true, "parent_volume": {"name": "ai_results"}}}' \
    >/dev/null || fail "making a clone of ai_results"
step "teardown-workspace refuses a clone of another parent" 1 "$TD" -e workspace=bob
expect "refusing to tear down workspace bob: volume ontapai_nfs:pb_fg_all_ws_bob is a FlexClone of ai_results, not of pb_fg_all"
[ "$(vol ontapai_nfs pb_fg_all_ws_bob clone/is_flexclone)" = true ] || fail "the refused clone was deleted"
step "teardown-workspace refuses the dataset itself" 1 "$TD" -e workspace=x -e clone_name=pb_fg_all
expect "refusing to tear down"
step "teardown-workspace refuses a protected PVC" 1 "$TD" -e workspace=x -e pvc_name=pb-fg-all-iface1
[ "$(kobj /api/v1/namespaces/default/persistentvolumeclaims/pb-fg-all-iface1 status/phase)" = Bound ] ||
    fail "a protected PVC went"
step "teardown-workspace" 2 "$TD" -e workspace=alice
changed teardown-workspace
[ "$(vol ontapai_nfs pb_fg_all_ws_alice name)" = "" ] || fail "the clone is still there"
! api kube GET $P >/dev/null || fail "alice-data is still there"
[ "$NOTEBOOKS" = 0 ] || ! api kube GET $NB >/dev/null || fail "the notebook is still there"
[ "$(vol ontapai_nfs pb_fg_all uuid)" != "" ] || fail "the dataset volume went"
for s in ws-alice baseline-r1; do
    [ "$(snap ontapai_nfs pb_fg_all $s name)" = "$s" ] || fail "the dataset's snapshot $s went"
done
echo "ok   teardown-workspace: the dataset and its snapshots are left"
again "teardown-workspace" "$TD" -e workspace=alice
step "teardown-workspace of the baseline's workspace" 2 "$TD" -e workspace=carol
[ "$(vol ontapai_nfs pb_fg_all_ws_carol name)" = "" ] || fail "carol's clone is still there"
[ "$(snap ontapai_nfs pb_fg_all baseline-r1 comment)" = "aicp run r1: dataset baseline" ] ||
    fail "the baseline went or changed"

# The password never shows.
for f in "$T"/out.*; do
    ! grep -q -F -e "$CANARY" "$f" || { cat "$f" >&2; fail "the canary leaked into $f"; }
done
echo "ok   the ONTAP password never shows"
