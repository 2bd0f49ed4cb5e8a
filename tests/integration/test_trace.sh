#!/bin/sh
# `aicp trace`: a training run's lineage from the live systems, against the
# fake Kubernetes API server (Trident's CRDs and controller stand-in) and
# the fake ONTAP server. A small site (applied with `aicp apply`) makes what
# the training-run playbook leaves behind: a dataset volume ds_r1 with the
# snapshot baseline-r1, a results volume res_r1 with model-r1-pre/post, a
# FlexClone ds_r1_ws of the baseline, PVCs importing the three, and Job
# train-r1 labelled aicp.io/run-id=r1 and annotated with its snapshots.
#   trace r1 (text and --json) names the dataset snapshot, its volume, the
#   clone, the PVCs and their PVs: exit 0; the same by --job;
#   run r2's Job names a snapshot that does not exist: exit 2 naming it;
#   run r3 has a snapshot but no Job: exit 2, the scan still shows it;
#   run r9 has nothing: exit 2 naming the missing Job;
#   --job of a Job that does not exist: exit 2; an unreachable API: exit 1;
#   usage errors: 64; the ONTAP password (the canary) appears nowhere.
. "$top_srcdir/tests/integration/lib.sh"

[ -x "$AICP" ] || skip "no aicp binary at $AICP"
[ -f "$top_srcdir/tests/fakes/ontap_server.py" ] || skip "no fake ONTAP server"
"$AICP" trace --help >/dev/null 2>&1 || skip "this aicp has no trace command"

kube_fake_up --crds trident --controller
ontap_fake_up
T=$ODIR
cp "$KCFG" "$T/kubeconfig"
unset KUBECONFIG

cat >"$T/trace.site.yml" <<'EOF'
site: trace-lab
ontap:
  lab:
    management_lif: "{{ ontap_hostname }}"
    username: admin
    password: "{{ ontap_password }}"
    ca_file: "{{ ontap_ca_file }}"
volumes:
  - {name: ds_r1, vserver: ontapai_nfs, size: 2GB, aggregate_name: aggr1,
     junction_path: /ds_r1}
  - {name: res_r1, vserver: ontapai_nfs, size: 1GB, aggregate_name: aggr1,
     junction_path: /res_r1}
snapshots:
  - {snapshot: baseline-r1, volume: ds_r1, vserver: ontapai_nfs,
     comment: "aicp run r1: dataset baseline"}
  - {snapshot: model-r1-pre, volume: res_r1, vserver: ontapai_nfs,
     comment: "aicp run r1: results before training"}
  - {snapshot: model-r1-post, volume: res_r1, vserver: ontapai_nfs,
     comment: "aicp run r1: results after training"}
  - {snapshot: baseline-r3, volume: ds_r1, vserver: ontapai_nfs,
     comment: "aicp run r3: dataset baseline"}
clones:
  - {name: ds_r1_ws, vserver: ontapai_nfs, parent_volume: ds_r1,
     parent_snapshot: baseline-r1, junction_path: /ds_r1_ws}
trident:
  backends:
    - {name: lab-nas, driver: ontap-nas, ontap: lab, svm: ontapai_nfs, data_lif: 192.168.11.11}
namespaces: [trident, ml]
storage_classes:
  - {name: lab-nas, backend_type: ontap-nas, backend: lab-nas, reclaim_policy: Retain}
pvcs:
  - {name: dataset, namespace: ml, size: 2Gi, access_modes: [ReadOnlyMany],
     storage_class: lab-nas,
     import: {volume: ds_r1, backend: lab-nas, no_rename: true, not_managed: true}}
  - {name: workspace, namespace: ml, size: 2Gi, access_modes: [ReadWriteMany],
     storage_class: lab-nas, import: {volume: ds_r1_ws, backend: lab-nas, no_rename: true}}
  - {name: results, namespace: ml, size: 1Gi, access_modes: [ReadWriteMany],
     storage_class: lab-nas, import: {volume: res_r1, backend: lab-nas, no_rename: true}}
jobs:
  - name: train-r1
    namespace: ml
    image: nvcr.io/nvidia/tensorflow:20.12-tf1-py3
    command: [python, train.py]
    labels: {aicp.io/run-id: r1}
    annotations:
      aicp.io/dataset-snapshot: "ontapai_nfs:ds_r1@baseline-r1"
      aicp.io/model-snapshot: "ontapai_nfs:res_r1@model-r1-post"
    volumes:
      - {name: dataset, pvc: dataset, mount_path: /data, read_only: true}
      - {name: workspace, pvc: workspace, mount_path: /ws}
      - {name: results, pvc: results, mount_path: /results}
    depends_on: [pvc/ml/dataset, pvc/ml/workspace, pvc/ml/results]
  - name: train-r2
    namespace: ml
    image: nvcr.io/nvidia/tensorflow:20.12-tf1-py3
    labels: {aicp.io/run-id: r2}
    annotations: {aicp.io/dataset-snapshot: "ontapai_nfs:ds_r1@baseline-r2"}
    volumes: [{name: results, pvc: results, mount_path: /results}]
    depends_on: [pvc/ml/results]
  - {name: unlabelled, namespace: ml, image: busybox}
EOF

# The password comes in a plain -e @FILE: trace registers it as a secret.
V="-e @$OVARS --kubeconfig $T/kubeconfig"
SITE=$T/trace.site.yml

n=0
# run WANT-RC CMD ARGS...: runs aicp; stdout in $OUT, stderr in $ERR.
run() {
    _want=$1
    shift
    n=$((n + 1))
    OUT=$T/out.$n ERR=$T/err.$n
    # shellcheck disable=SC2086
    "$AICP" "$@" >"$OUT" 2>"$ERR"
    _rc=$?
    [ "$_rc" = "$_want" ] || { cat "$OUT" "$ERR" >&2; fail "aicp $* exited $_rc, not $_want"; }
}
expect() { grep -q -F -e "$1" "$OUT" || { cat "$OUT" >&2; fail "the output does not say: $1"; }; }
expect_err() { grep -q -F -e "$1" "$ERR" || { cat "$ERR" >&2; fail "stderr does not say: $1"; }; }

t0=$(date +%s)
# shellcheck disable=SC2086
run 2 apply "$SITE" $V
expect_not_failed() { ! grep -q "FAILED!" "$OUT" || { cat "$OUT" >&2; fail "apply failed"; }; }
expect_not_failed

# ---- run r1, by run id -------------------------------------------------------------
# shellcheck disable=SC2086
run 0 trace "$SITE" r1 $V
expect "run r1"
expect "dataset: ontapai_nfs:ds_r1@baseline-r1 (lab)"
expect "Job ml/train-r1: Complete, created "
expect "PVC ml/dataset -> PV pvc-"
expect "-> ONTAP volume ontapai_nfs:ds_r1 (lab, by importOriginalName)"
expect "PVC ml/workspace -> PV pvc-"
expect "-> ONTAP volume ontapai_nfs:ds_r1_ws (lab, by importOriginalName)"
expect "ONTAP volume ontapai_nfs:ds_r1 (lab), 2 GiB"
expect "used as: pvc ml/dataset, dataset"
expect "snapshot baseline-r1 [baseline], created "
expect "\"aicp run r1: dataset baseline\""
expect "\"aicp run r1: dataset baseline\", by aicp site=trace-lab run="
expect "clone ontapai_nfs:ds_r1_ws (lab), 2 GiB, created "
expect "a FlexClone of ontapai_nfs:ds_r1@baseline-r1"
expect "snapshot model-r1-pre [model-pre]"
expect "snapshot model-r1-post [model-post]"
expect "trace complete"
! grep -q "baseline-r3" "$OUT" || fail "run r1's trace shows run r3's snapshot"

# The same as one JSON document.
# shellcheck disable=SC2086
run 0 trace "$SITE" r1 --json $V
python3 - "$OUT" <<'EOF' || fail "trace --json does not trace run r1"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["run_id"] == "r1" and d["complete"] is True and d["missing"] == [], d
ds = d["dataset"]
assert (ds["cluster"], ds["svm"], ds["volume"], ds["snapshot"]) == \
    ("lab", "ontapai_nfs", "ds_r1", "baseline-r1"), ds
assert ds["create_time"], ds
[job] = d["jobs"]
assert (job["namespace"], job["name"], job["status"]) == ("ml", "train-r1", "Complete"), job
assert job["created"] and job["completion_time"], job
assert job["dataset_snapshot"] == "ontapai_nfs:ds_r1@baseline-r1", job
pvcs = {p["name"]: p for p in job["pvcs"]}
assert sorted(pvcs) == ["dataset", "results", "workspace"], pvcs
for name, vol in (("dataset", "ds_r1"), ("workspace", "ds_r1_ws"), ("results", "res_r1")):
    p = pvcs[name]
    assert p["phase"] == "Bound" and p["pv"].startswith("pvc-"), p
    assert p["volume"] == {"cluster": "lab", "svm": "ontapai_nfs", "name": vol}, p
vols = {v["name"]: v for v in d["volumes"]}
assert sorted(vols) == ["ds_r1", "ds_r1_ws", "res_r1"], vols
ds_vol = vols["ds_r1"]
assert ds_vol["size"] == 2 * 1024 ** 3 and ds_vol["uuid"], ds_vol
assert "dataset" in ds_vol["roles"] and "pvc ml/dataset" in ds_vol["roles"], ds_vol
[snap] = ds_vol["snapshots"]
assert snap["name"] == "baseline-r1" and snap["role"] == "baseline", snap
assert snap["comment"].startswith("aicp run r1: dataset baseline [aicp site=trace-lab run=") and snap["create_time"], snap
[clone] = snap["clones"]
assert (clone["svm"], clone["name"]) == ("ontapai_nfs", "ds_r1_ws") and clone["created"], clone
assert vols["ds_r1_ws"]["clone_of"] == \
    {"svm": "ontapai_nfs", "volume": "ds_r1", "snapshot": "baseline-r1"}, vols["ds_r1_ws"]
res = sorted(s["name"] for s in vols["res_r1"]["snapshots"])
assert res == ["model-r1-post", "model-r1-pre"], res
assert "model" in vols["res_r1"]["roles"], vols["res_r1"]
EOF

# ---- by --job ---------------------------------------------------------------------
# shellcheck disable=SC2086
run 0 trace "$SITE" --job train-r1 --namespace ml $V
expect "run r1"
expect "dataset: ontapai_nfs:ds_r1@baseline-r1 (lab)"
expect "clone ontapai_nfs:ds_r1_ws (lab)"
expect "trace complete"
# shellcheck disable=SC2086
run 0 trace "$SITE" --job train-r1 -n ml --json $V
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["run_id"] == "r1" and d["complete"], d
assert d["dataset"]["snapshot"] == "baseline-r1" and d["dataset"]["volume"] == "ds_r1", d
' "$OUT" || fail "trace --job --json does not find run r1"

# ---- what is missing -----------------------------------------------------------------
# r2: the Job names a snapshot nobody took.
# shellcheck disable=SC2086
run 2 trace "$SITE" r2 $V
expect "Job ml/train-r2: Complete"
expect "missing: snapshot baseline-r2 (the dataset named by Job ml/train-r2) does not exist on ontapai_nfs:ds_r1 (lab)"
expect "dataset: not found"
# r3: a baseline snapshot, no Job (deleted): the scan still shows the storage.
# shellcheck disable=SC2086
run 2 trace "$SITE" r3 --json $V
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["complete"] is False and d["jobs"] == [], d
assert any("no Job labelled aicp.io/run-id=r3" in m for m in d["missing"]), d["missing"]
assert d["dataset"]["volume"] == "ds_r1" and d["dataset"]["snapshot"] == "baseline-r3", d
[v] = d["volumes"]
assert [s["name"] for s in v["snapshots"]] == ["baseline-r3"], v
' "$OUT" || fail "trace of run r3 (no Job) is wrong"
# r9: nothing at all.
# shellcheck disable=SC2086
run 2 trace "$SITE" r9 $V
expect "no Job"
expect "missing: no Job labelled aicp.io/run-id=r9"
expect "missing: no snapshot of run r9"
expect "trace incomplete: 2 missing"
# A Job that does not exist, and one without the label.
# shellcheck disable=SC2086
run 2 trace "$SITE" --job gone -n ml $V
expect "missing: Job ml/gone does not exist"
# shellcheck disable=SC2086
run 2 trace "$SITE" --job unlabelled -n ml $V
expect "missing: Job ml/unlabelled has no label aicp.io/run-id"
expect "missing: Job ml/unlabelled has no annotation aicp.io/dataset-snapshot"

# ---- errors and usage -------------------------------------------------------------------
sed "s|server: \"https://127.0.0.1:$KPORT\"|server: \"https://127.0.0.1:1\"|" "$T/kubeconfig" \
    >"$T/kubeconfig.down"
grep -q "127.0.0.1:1\"" "$T/kubeconfig.down" || fail "could not make an unreachable kubeconfig"
run 1 trace "$SITE" r1 -e "@$OVARS" --kubeconfig "$T/kubeconfig.down"
expect_err "aicp trace: "
# shellcheck disable=SC2086
run 1 trace "$SITE" r1 $V -e ontap_hostname=127.0.0.1:1
expect_err "ONTAP cluster lab"
run 64 trace "$SITE"
run 64 trace "$SITE" 'bad id!' $V
run 64 trace "$SITE" r1 --job train-r1 $V
run 64 trace "$SITE" r1 --bogus

# ---- the secrets never showed -------------------------------------------------------------
for f in "$T"/out.* "$T"/err.*; do
    ! grep -q -F -e "$CANARY" "$f" || fail "the canary is in $f"
done
echo "test_trace: $(($(date +%s) - t0)) s"
exit 0
