#!/bin/sh
# The day-2 data modules against the fake API server (tests/fakes/
# kube_apiserver.py with Kubeflow's and the CSI snapshotter's CRDs and its
# controller stand-in), through `aicp run`: kubeflow_notebook (create ->
# again -> new image -> what the Notebook holds -> its pod Ready -> absent
# -> absent again; a new workspace claim and an existing one; a wait that
# times out saying why) and volume_snapshot (create -> again -> absent ->
# absent again; readyToUse waited for; re-pointing refused, replace; an
# unbound claim). Every changing step runs first with --check, which must
# predict the same exit status and task statuses, and is followed by a
# --check that must find nothing left to do.
. "$top_srcdir/tests/integration/lib.sh"
# `tasks | step ...` runs step in a subshell, where fail only ends the
# subshell: -e ends the script on the pipeline's status too.
set -e

[ -x "$AICP" ] || skip "no aicp binary at $AICP"
kube_fake_up --crds trident,kubeflow,snapshot --controller
KT=$KDIR
SEC=$KDIR/secret-inputs
KUBECONFIG=$KCFG
export KUBECONFIG
printf 'localhost ansible_connection=local\n' >"$KT/inventory"

api() { kube_fake_api "$@"; } # METHOD PATH [JSON]

# check PATH PYTHON-EXPR: GETs PATH and fails unless EXPR (over o, the
# object) is true.
check() {
    api GET "$1" >"$KT/obj.json" || fail "GET $1: $(cat "$KT/obj.json")"
    python3 - "$KT/obj.json" "$2" <<'EOF' || fail "$1: not ($2)"
import json, sys
o = json.load(open(sys.argv[1]))
if not eval("(" + sys.argv[2].strip() + ")", {"o": o}):
    sys.stderr.write(json.dumps(o, indent=1)[:3000] + "\n")
    sys.exit(1)
EOF
}

gone() { # PATH: the object does not exist
    if api GET "$1" >/dev/null; then fail "$1 still exists"; fi
}

expect_out() {
    grep -q -F -e "$1" "$OUT" || { cat "$OUT" >&2; fail "the output does not say: $1"; }
}

play() { # the tasks on stdin become $KT/play.yml
    {
        printf -- '- hosts: localhost\n  gather_facts: false\n  tasks:\n'
        sed 's/^/    /'
    } >"$KT/play.yml"
}

same_statuses() { # A.json B.json
    python3 - "$1" "$2" <<'EOF'
import json, sys
def statuses(path):
    try:
        rep = json.load(open(path))
    except Exception:
        return []
    out = []
    for p in rep.get("plays", []):
        for n, t in enumerate(p.get("tasks", [])):
            for h, e in sorted(t.get("hosts", {}).items()):
                out.append((n, h, [x["status"] for x in e] if isinstance(e, list) else e["status"]))
    return out
a, b = statuses(sys.argv[1]), statuses(sys.argv[2])
if a != b:
    sys.stderr.write("--check statuses: %s\nreal statuses:    %s\n" % (a, b))
    sys.exit(1)
EOF
}

run_aicp() { # check|run OUTFILE REPORT: prints the exit status
    _x=0
    rm -f "$3"
    if [ "$1" = check ]; then
        "$AICP" run "$KT/play.yml" -i "$KT/inventory" --json "$3" --check >"$2" 2>&1 || _x=$?
    else
        "$AICP" run "$KT/play.yml" -i "$KT/inventory" --json "$3" >"$2" 2>&1 || _x=$?
    fi
    echo $_x
}

step() { # LABEL RC <<EOF tasks EOF: --check, the real run, then a --check finding nothing
    play
    _crc=$(run_aicp check "$KT/check.out" "$KT/check.json")
    OUT=$KT/run.out
    _rc=$(run_aicp run "$OUT" "$KT/run.json")
    if [ "$_rc" != "$2" ] || [ "$_crc" != "$_rc" ] || ! same_statuses "$KT/check.json" "$KT/run.json"; then
        echo "---- check run (exit $_crc)" >&2
        cat "$KT/check.out" >&2
        echo "---- real run (exit $_rc)" >&2
        cat "$OUT" >&2
        fail "$1: exit $_rc (check $_crc), expected $2 with the same statuses"
    fi
    if [ "$2" != 1 ]; then
        _vrc=$(run_aicp check "$KT/verify.out" "$KT/verify.json")
        [ "$_vrc" = 0 ] || { cat "$KT/verify.out" >&2; fail "$1: a --check after the run still sees changes"; }
    fi
    echo "ok   $1 (exit $_rc)"
}

run_once() { # RC <<EOF tasks EOF
    play
    OUT=$KT/run.out
    _rc=$(run_aicp run "$OUT" "$KT/run.json")
    [ "$_rc" = "$1" ] || { cat "$OUT" >&2; fail "exit $_rc, expected $1"; }
}

# A profile namespace, a default class, Trident's snapshot class, and data
# claims that the controller binds.
api POST /api/v1/namespaces '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"alice"}}' >/dev/null
api POST /apis/storage.k8s.io/v1/storageclasses '{"apiVersion":"storage.k8s.io/v1","kind":"StorageClass",
  "metadata":{"name":"ontap-ai-flexvols","annotations":{"storageclass.kubernetes.io/is-default-class":"true"}},
  "provisioner":"csi.trident.netapp.io","allowVolumeExpansion":true}' >/dev/null
api POST /apis/snapshot.storage.k8s.io/v1/volumesnapshotclasses '{"apiVersion":"snapshot.storage.k8s.io/v1",
  "kind":"VolumeSnapshotClass","metadata":{"name":"csi-snapclass"},"driver":"csi.trident.netapp.io",
  "deletionPolicy":"Delete"}' >/dev/null
for c in imagenet:10Ti checkpoints:1Ti shared-ws:50Gi; do
    api POST /api/v1/namespaces/alice/persistentvolumeclaims "{\"apiVersion\":\"v1\",
      \"kind\":\"PersistentVolumeClaim\",\"metadata\":{\"name\":\"${c%%:*}\"},\"spec\":{
      \"accessModes\":[\"ReadWriteMany\"],\"resources\":{\"requests\":{\"storage\":\"${c#*:}\"}}}}" >/dev/null
done
NB=/apis/kubeflow.org/v1/namespaces/alice/notebooks
PODS=/api/v1/namespaces/alice/pods
PVCS=/api/v1/namespaces/alice/persistentvolumeclaims

# ---- kubeflow_notebook -------------------------------------------------------
nb() { # IMAGE
    cat <<EOF
- kubeflow_notebook:
    name: resnet
    namespace: alice
    image: $1
    cpu: "4"
    memory: 16Gi
    gpus: 1
    data_volumes:
      - pvc: imagenet
      - {pvc: checkpoints, mount_path: /mnt/checkpoints}
    labels: {team: vision}
    wait_timeout: 30
  register: n
- assert: {that: ["n.ready or ansible_check_mode", "n.workspace_claim == 'resnet-workspace'", "n.url_path == '/notebook/alice/resnet/'"]}
EOF
}
IMG1=kubeflownotebookswg/jupyter-pytorch-cuda-full:v1.8.0
IMG2=kubeflownotebookswg/jupyter-pytorch-cuda-full:v1.9.0
nb $IMG1 | step "kubeflow_notebook create" 2
nb $IMG1 | step "kubeflow_notebook again" 0
nb $IMG2 | step "kubeflow_notebook new image" 2
check $NB/resnet '
  o["spec"]["template"]["spec"]["containers"][0]["image"] == "'$IMG2'" and
  o["spec"]["template"]["spec"]["containers"][0]["resources"] == {
      "requests": {"cpu": "4", "memory": "16Gi"},
      "limits": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"}} and
  {m["mountPath"]: m["name"] for m in o["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]} == {
      "/home/jovyan": "workspace", "/dev/shm": "dshm",
      "/home/jovyan/data-vol-1": "data-vol-1", "/mnt/checkpoints": "data-vol-2"} and
  {v["name"]: v.get("persistentVolumeClaim", v.get("emptyDir")) for v in o["spec"]["template"]["spec"]["volumes"]} == {
      "workspace": {"claimName": "resnet-workspace"}, "dshm": {"medium": "Memory"},
      "data-vol-1": {"claimName": "imagenet"}, "data-vol-2": {"claimName": "checkpoints"}} and
  o["metadata"]["labels"] == {"app": "resnet", "team": "vision"} and
  o["metadata"]["annotations"]["notebooks.kubeflow.org/server-type"] == "jupyter" and
  "aicp.io/provenance" in o["metadata"]["annotations"] and
  o["status"]["readyReplicas"] == 1'
# The pod was waited for: Ready, and already the new image's.
check $PODS/resnet-0 '
  o["spec"]["containers"][0]["image"] == "'$IMG2'" and o["status"]["phase"] == "Running" and
  {c["type"]: c["status"] for c in o["status"]["conditions"]}["Ready"] == "True" and
  {c["type"]: c["status"] for c in o["status"]["conditions"]}["ContainersReady"] == "True"'
check $PVCS/resnet-workspace '
  o["spec"]["resources"]["requests"]["storage"] == "10Gi" and
  o["spec"]["accessModes"] == ["ReadWriteOnce"] and
  o["spec"]["storageClassName"] == "ontap-ai-flexvols" and o["status"]["phase"] == "Bound"'
echo "ok   kubeflow_notebook: the Notebook's spec and its Ready pod"

# A GPU-less notebook without /dev/shm, on an existing claim; its own
# workspace is never made.
step "kubeflow_notebook existing workspace" 2 <<'EOF'
- kubeflow_notebook:
    name: explore
    namespace: alice
    workspace_volume: {existing: shared-ws}
    shm: false
    memory: 2Gi
    memory_limit: 4Gi
EOF
check $NB/explore '
  o["spec"]["template"]["spec"]["volumes"] == [{"name": "workspace", "persistentVolumeClaim": {"claimName": "shared-ws"}}] and
  "nvidia.com/gpu" not in o["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] and
  o["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] == "4Gi" and
  o["spec"]["template"]["spec"]["containers"][0]["image"] == "kubeflownotebookswg/jupyter-scipy:v1.8.0"'
gone $PVCS/explore-workspace
# A new workspace with its own size and class.
api POST /apis/storage.k8s.io/v1/storageclasses '{"apiVersion":"storage.k8s.io/v1","kind":"StorageClass",
  "metadata":{"name":"ontap-ai-flexgroups"},"provisioner":"csi.trident.netapp.io"}' >/dev/null
step "kubeflow_notebook new workspace" 2 <<'EOF'
- kubeflow_notebook:
    name: big
    namespace: alice
    workspace_volume: {new: {size: 200Gi, storage_class: ontap-ai-flexgroups}}
EOF
check $PVCS/big-workspace 'o["spec"]["storageClassName"] == "ontap-ai-flexgroups" and
  o["spec"]["resources"]["requests"]["storage"] == "200Gi"'
# Another class for it would mean a new claim, and the user's files gone.
run_once 1 <<'EOF'
- kubeflow_notebook:
    name: big
    namespace: alice
    workspace_volume: {new: {size: 200Gi, storage_class: ontap-ai-flexvols}}
EOF
expect_out "would delete the user's files"

# absent: the Notebook, its StatefulSet and pod go; the workspace stays.
step "kubeflow_notebook absent" 2 <<'EOF'
- kubeflow_notebook: {name: resnet, namespace: alice, state: absent}
EOF
gone $NB/resnet
gone $PODS/resnet-0
gone /apis/apps/v1/namespaces/alice/statefulsets/resnet
check $PVCS/resnet-workspace 'o["status"]["phase"] == "Bound"'
step "kubeflow_notebook absent again" 0 <<'EOF'
- kubeflow_notebook: {name: resnet, namespace: alice, state: absent}
EOF
step "kubeflow_notebook absent, workspace too" 2 <<'EOF'
- kubeflow_notebook: {name: resnet, namespace: alice, state: absent, delete_workspace: true}
EOF
gone $PVCS/resnet-workspace
# An existing claim is never deleted.
step "kubeflow_notebook absent, existing workspace" 2 <<'EOF'
- kubeflow_notebook: {name: explore, namespace: alice, state: absent, delete_workspace: true}
EOF
check $PVCS/shared-ws 'o["status"]["phase"] == "Bound"'

# A data volume whose claim does not exist: the pod never starts, and the
# timeout says which claim.
run_once 1 <<'EOF'
- kubeflow_notebook:
    name: broken
    namespace: alice
    data_volumes: [{pvc: no-such-claim}]
    wait_timeout: 2
EOF
expect_out "claim no-such-claim does not exist"
echo "ok   kubeflow_notebook: a pod that cannot start times out, saying why"

# ---- volume_snapshot ---------------------------------------------------------
snap() { # PVC [extra]
    cat <<EOF
- volume_snapshot:
    name: imagenet-v1
    namespace: alice
    pvc: $1
    snapshot_class: csi-snapclass
    labels: {dataset: imagenet}
    wait_timeout: 20
    $2
  register: s
- assert: {that: ["ansible_check_mode or (s.ready_to_use and s.content_name and s.restore_size == '$3')"]}
EOF
}
VS=/apis/snapshot.storage.k8s.io/v1/namespaces/alice/volumesnapshots
VSC=/apis/snapshot.storage.k8s.io/v1/volumesnapshotcontents
snap imagenet "" 10Ti | step "volume_snapshot create" 2
snap imagenet "" 10Ti | step "volume_snapshot again" 0
check $VS/imagenet-v1 'o["status"]["readyToUse"] is True and o["status"]["restoreSize"] == "10Ti"
  and o["spec"]["source"] == {"persistentVolumeClaimName": "imagenet"}
  and o["metadata"]["labels"]["dataset"] == "imagenet"'
CONTENT=$(api GET $VS/imagenet-v1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["boundVolumeSnapshotContentName"])')
check $VSC/$CONTENT 'o["spec"]["volumeSnapshotRef"]["name"] == "imagenet-v1" and
  o["status"]["readyToUse"] is True and o["status"]["restoreSize"] == 10 * 2**40'
echo "ok   volume_snapshot: ready to use, bound to $CONTENT"
# The source cannot be re-pointed, in check mode too...
snap checkpoints "" 1Ti | step "volume_snapshot re-pointed" 1
expect_out "a snapshot cannot be re-pointed"
# ...unless replaced: a new snapshot of the other claim.
snap checkpoints "replace: true" 1Ti | step "volume_snapshot replaced" 2
check $VS/imagenet-v1 'o["spec"]["source"]["persistentVolumeClaimName"] == "checkpoints" and
  o["status"]["boundVolumeSnapshotContentName"] != "'"$CONTENT"'"'
gone $VSC/$CONTENT
step "volume_snapshot absent" 2 <<'EOF'
- volume_snapshot: {name: imagenet-v1, namespace: alice, state: absent}
EOF
gone $VS/imagenet-v1
step "volume_snapshot absent again" 0 <<'EOF'
- volume_snapshot: {name: imagenet-v1, namespace: alice, state: absent}
EOF
# A claim that does not exist: the wait says what the controller says.
run_once 1 <<'EOF'
- volume_snapshot: {name: early, namespace: alice, pvc: pending-claim, wait_timeout: 2}
EOF
expect_out "not found"
echo "ok   volume_snapshot: a missing claim times out, saying why"
exit 0
