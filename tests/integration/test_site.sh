#!/bin/sh
# `aicp plan|apply|drift` on the TR-4798 site (inventory/ontap-ai-pod.site.yml)
# against the fake Kubernetes API server (tests/fakes/kube_apiserver.py with
# Trident's CRDs and its controller stand-in), from an empty cluster:
#   plan 2, apply 2, apply again 0, drift 0;
#   the default-class annotation removed behind aicp's back (kubectl when
#   installed, else a merge patch): drift 2 naming the StorageClass and the
#   field, drift --report writes drift.json, drift.txt and the report files
#   (report.json, junit.xml, report.html), apply repairs it
#   (2), drift 0;
#   the same annotation CHANGED by another field manager (kubectl annotate
#   --overwrite): drift 2 naming the field, both values and the manager,
#   apply without force fails saying how to take it over;
#   a field taken by another field manager (server-side apply, forced):
#   drift 2 names that manager and the aicp run that last changed the
#   object (its aicp.io/provenance annotation, in the output, drift.txt,
#   drift.json and report.json); plan fails on the conflict, plan
#   --force-conflicts (or kubernetes.force_conflicts in the site) would
#   take the field back, apply --force-conflicts does and re-stamps the
#   object with its own run;
#   an immutable field (reclaim_policy) changed: plan says the class must be
#   replaced, apply fails without --allow-replace and succeeds with it; plan
#   --allow-replace says "must be replaced (delete and create)" and apply
#   --allow-replace says "replaced";
#   --only and --limit narrow a run, a --limit that matches nothing is exit
#   64 naming it (plan, apply, drift); a bad site file is exit 65 with
#   file:line:col, and so is a module call whose arguments the module
#   refuses (a Job's volumes in the wrong shape) before any request; the
#   ONTAP password (from a vaulted vars file) and the token never appear in
#   any output or report.
# The site's storage (ONTAP) sections and drift's cross-layer pass need the
# fake ONTAP server too: every run here is `--only kubernetes`, and
# test_site_ontap.sh runs the whole pod against both fakes.
. "$top_srcdir/tests/integration/lib.sh"

[ -x "$AICP" ] || skip "no aicp binary at $AICP"
"$AICP" plan --help >/dev/null 2>&1 || skip "this aicp has no 'plan' command"
SITE=$top_srcdir/inventory/ontap-ai-pod.site.yml

kube_fake_up --crds trident --controller
T=$KDIR
SEC=$KDIR/secret-inputs
URL=$KURL
PORT=$KPORT
[ "$KCFG" = "$T/kubeconfig" ] || cp "$KCFG" "$T/kubeconfig"
# The site must come from --kubeconfig, not the environment.
unset KUBECONFIG

# The ONTAP password: the canary, in a vaulted vars file.
PW="$CANARY-ontap"
printf 'vault-pass-%s\n' "$$" >"$SEC/vault-pass"
printf 'vault_ontap_password: "%s"\nvault_airflow_git_ssh_key: "key-%s"\n' "$PW" "$CANARY" >"$SEC/secrets.yml"
"$AICP" vault encrypt --vault-password-file "$SEC/vault-pass" "$SEC/secrets.yml" >/dev/null 2>&1 ||
    fail "aicp vault encrypt"
grep -q '^\$ANSIBLE_VAULT' "$SEC/secrets.yml" || fail "the vars file is not vaulted"
V="-e @$SEC/secrets.yml --vault-password-file $SEC/vault-pass --kubeconfig $T/kubeconfig"

n=0
ONLY="--only namespaces,trident,storage_classes,pvcs"
# site CMD WANT-RC [ARGS...]: runs aicp CMD on $SITE ($ONLY); output in $OUT.
site() {
    _cmd=$1 _want=$2
    shift 2
    n=$((n + 1))
    OUT=$T/out.$n
    # shellcheck disable=SC2086
    "$AICP" "$_cmd" "$SITE" $V $ONLY "$@" >"$OUT" 2>&1
    _rc=$?
    [ "$_rc" = "$_want" ] || { cat "$OUT" >&2; fail "aicp $_cmd $* exited $_rc, not $_want"; }
}
expect() { grep -q -F -e "$1" "$OUT" || { cat "$OUT" >&2; fail "the output does not say: $1"; }; }
expect_not() { ! grep -q -F -e "$1" "$OUT" || { cat "$OUT" >&2; fail "the output says: $1"; }; }

api() { # METHOD PATH [JSON merge patch]
    python3 - "$URL" "$T/ca.pem" "$SEC/token" "$@" <<'EOF'
import ssl, sys, urllib.request, urllib.error
url, ca, tokfile, method, path = sys.argv[1:6]
body = sys.argv[6].encode() if len(sys.argv) > 6 else None
req = urllib.request.Request(url + path, data=body, method=method)
req.add_header("Authorization", "Bearer " + open(tokfile).read().strip())
if body is not None:
    req.add_header("Content-Type", "application/merge-patch+json")
try:
    with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=ca), timeout=20) as r:
        sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    sys.stdout.write(e.read().decode())
    sys.exit(1)
EOF
}

# ssa PATH MANAGER JSON: a forced server-side apply by another field manager.
ssa() {
    python3 - "$URL" "$T/ca.pem" "$SEC/token" "$@" <<'EOF'
import ssl, sys, urllib.request
url, ca, tokfile, path, manager, body = sys.argv[1:7]
req = urllib.request.Request(url + path + "?fieldManager=" + manager + "&force=true",
                             data=body.encode(), method="PATCH")
req.add_header("Authorization", "Bearer " + open(tokfile).read().strip())
req.add_header("Content-Type", "application/apply-patch+yaml")
urllib.request.urlopen(req, context=ssl.create_default_context(cafile=ca), timeout=20).read()
EOF
}
# prov PATH: the object's aicp.io/provenance annotation.
prov() {
    api GET "$1" | python3 -c '
import json, sys
print(json.load(sys.stdin)["metadata"].get("annotations", {}).get("aicp.io/provenance", ""))'
}

SC=/apis/storage.k8s.io/v1/storageclasses
TBC=/apis/trident.netapp.io/v1/namespaces/trident/tridentbackendconfigs
ANN=storageclass.kubernetes.io/is-default-class

# ---- from empty --------------------------------------------------------
t0=$(date +%s)
site plan 2
expect "TASK [storage_class ontap-ai-flexvols-retain]"
expect "TASK [pvc default/pb-fg-all-iface1]"
api GET "$SC/ontap-ai-flexvols-retain" >/dev/null 2>&1 && fail "plan created a StorageClass"

site apply 2 --json "$T/apply.json"
expect "PLAY RECAP"
expect_not "FAILED!"
for s in ontap-ai-flexgroups-retain-iface1 ontap-ai-flexgroups-retain-iface2 \
    ontap-ai-flexgroups-retain ontap-ai-flexvols-retain; do
    api GET "$SC/$s" >/dev/null || fail "apply did not create StorageClass $s"
done
api GET "$SC/ontap-ai-flexvols-retain" | grep -q "\"$ANN\": *\"true\"" ||
    fail "ontap-ai-flexvols-retain is not the default class"
for p in pb-fg-all-iface1 pb-fg-all-iface2 tensorflow-results; do
    api GET "/api/v1/namespaces/default/persistentvolumeclaims/$p" >/dev/null ||
        fail "apply did not create PVC $p"
done
for b in ontap-ai-flexgroups-iface1 ontap-ai-flexgroups-iface2 ontap-ai-flexvols; do
    api GET "/apis/trident.netapp.io/v1/namespaces/trident/tridentbackendconfigs/$b" >/dev/null ||
        fail "apply did not create backend $b"
done
api GET /api/v1/namespaces/default/persistentvolumeclaims/pb-fg-all-iface2 |
    grep -q '"trident.netapp.io/importOriginalName": *"pb_fg_all"' || fail "pb-fg-all-iface2 is not an import of pb_fg_all"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["plays"][0]["tasks"], r' \
    "$T/apply.json" || fail "the --json report has no tasks"

site apply 0
expect "ok=12"
site drift 0
expect "DRIFT: 0 resources drifted"

# ---- drift behind aicp's back -------------------------------------------
if command -v kubectl >/dev/null 2>&1; then
    kubectl --kubeconfig "$T/kubeconfig" annotate storageclass ontap-ai-flexvols-retain \
        "$ANN-" >"$T/kubectl.out" 2>&1 || { cat "$T/kubectl.out" >&2; fail "kubectl annotate"; }
else
    api PATCH "$SC/ontap-ai-flexvols-retain" "{\"metadata\":{\"annotations\":{\"$ANN\":null}}}" \
        >/dev/null || fail "removing the annotation"
fi
api GET "$SC/ontap-ai-flexvols-retain" | grep -q "$ANN" && fail "the annotation is still there"
site drift 2 --report "$T/report"
expect "StorageClass/ontap-ai-flexvols-retain"
expect "$ANN"
expect "DRIFT: 1 resource drifted"
[ -f "$T/report/drift.json" ] && [ -f "$T/report/drift.txt" ] || fail "drift --report wrote no report"
python3 - "$T/report" <<'EOF' || fail "drift --report's report.json/junit.xml/report.html disagree"
import json, sys
d = sys.argv[1]
r = json.load(open(d + "/report.json"))
assert r["kind"] == "drift" and r["summary"]["drifted"] == 1 and r["summary"]["verdict"] == "fail", r
assert r["drift"]["drifted"][0]["id"] == "storage_class/ontap-ai-flexvols-retain", r["drift"]
j = open(d + "/junit.xml").read()
assert "storage_class/ontap-ai-flexvols-retain" in j and "<failure" in j, j
assert "storage_class/ontap-ai-flexvols-retain" in open(d + "/report.html").read()
EOF
python3 - "$T/report/drift.json" "$ANN" <<'EOF' || fail "drift.json does not name the drift"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["drifted"] is True and r["resources_drifted"] == 1, r
d = [x for x in r["resources"] if x["status"] == "drifted"]
assert len(d) == 1 and d[0]["id"] == "storage_class/ontap-ai-flexvols-retain", d
assert any(sys.argv[2] in f["path"] for f in d[0]["fields"]), d
EOF
grep -q "ontap-ai-flexvols-retain" "$T/report/drift.txt" || fail "drift.txt does not name the class"
site apply 2 --only storage_classes
expect "changed: [ontap-ai-pod]"
api GET "$SC/ontap-ai-flexvols-retain" | grep -q "\"$ANN\": *\"true\"" || fail "apply did not repair"
site drift 0

# ---- a declared field CHANGED behind aicp's back ---------------------------
# `kubectl annotate ... =false --overwrite` makes kubectl-annotate the owner
# of the field: the dry run of drift meets a conflict, which is drift too
# (exit 2, naming the field, both values and the manager), and apply
# without force refuses, saying how to take the field over.
if command -v kubectl >/dev/null 2>&1; then
    kubectl --kubeconfig "$T/kubeconfig" annotate storageclass ontap-ai-flexvols-retain \
        "$ANN=false" --overwrite >"$T/kubectl.out" 2>&1 || { cat "$T/kubectl.out" >&2; fail "kubectl annotate"; }
    MGR=kubectl-annotate
else
    api PATCH "$SC/ontap-ai-flexvols-retain?fieldManager=kubectl-annotate" \
        "{\"metadata\":{\"annotations\":{\"$ANN\":\"false\"}}}" >/dev/null || fail "changing the annotation"
    MGR=kubectl-annotate
fi
site drift 2 --report "$T/report2"
expect "DRIFT: 1 resource drifted"
expect "StorageClass/ontap-ai-flexvols-retain: metadata.annotations[$ANN]: want \"true\", have \"false\" (set by field manager $MGR)"
expect_not "not checked"
python3 - "$T/report2/drift.json" <<'EOF' || fail "drift.json does not report the changed field"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["resources_drifted"] == 1 and r["failed"] == 0, r
EOF
site apply 1 --only storage_classes
expect "StorageClass/ontap-ai-flexvols-retain: apply: conflict"
expect "(owned by field manager \\\"$MGR\\\", Update)"
expect "--force-conflicts"
api GET "$SC/ontap-ai-flexvols-retain" | grep -q "\"$ANN\": *\"false\"" || fail "apply without force changed the field"
# The other manager puts its value back: shared, no conflict, in sync.
api PATCH "$SC/ontap-ai-flexvols-retain?fieldManager=$MGR" "{\"metadata\":{\"annotations\":{\"$ANN\":\"true\"}}}" \
    >/dev/null || fail "restoring the annotation"
site drift 0

# ---- another field manager, provenance, --force-conflicts -----------------
p1=$(prov "$TBC/ontap-ai-flexvols")
case $p1 in site=ontap-ai-pod\ run=?*) ;; *) fail "the backend carries no provenance: '$p1'" ;; esac
ssa "$TBC/ontap-ai-flexvols" other-tool '{"apiVersion": "trident.netapp.io/v1",
    "kind": "TridentBackendConfig", "metadata": {"name": "ontap-ai-flexvols",
    "namespace": "trident"}, "spec": {"dataLIF": "192.168.11.99"}}' || fail "the other manager's apply"
site drift 2 --report "$T/report-mgr"
# (the backend's fields show; only its credentials Secret's values are hidden)
expect 'spec.dataLIF: want "192.168.11.11", have "192.168.11.99" (set by field manager other-tool)'
expect "last changed by aicp $p1"
grep -q -F "last changed by aicp $p1" "$T/report-mgr/drift.txt" || fail "drift.txt: no provenance"
python3 - "$T/report-mgr" "$p1" <<'EOF' || fail "drift.json/report.json do not say who changed it"
import json, sys
d = json.load(open(sys.argv[1] + "/drift.json"))
x = [r for r in d["resources"] if r["status"] == "drifted"]
assert len(x) == 1 and x[0]["last_changed_by"] == sys.argv[2], x
assert [f.get("manager") for f in x[0]["fields"]] == ["other-tool"], x
assert d["site"] == "ontap-ai-pod" and d["run_id"], d
r = json.load(open(sys.argv[1] + "/report.json"))
assert r["drift"]["drifted"][0]["last_changed_by"] == sys.argv[2], r["drift"]
assert "other-tool" in open(sys.argv[1] + "/junit.xml").read()
assert "last changed by aicp " + sys.argv[2] in open(sys.argv[1] + "/report.html").read()
EOF
site plan 1
expect "other-tool"
site plan 2 --force-conflicts
expect "TASK [trident_backend trident/ontap-ai-flexvols]"
# the same from the site file
python3 -c '
import sys
t = sys.stdin.read()
assert t.count("\nkubernetes:\n") == 1
sys.stdout.write(t.replace("\nkubernetes:\n", "\nkubernetes:\n  force_conflicts: true\n"))' \
    <"$SITE" >"$T/force.site.yml" || fail "making the forcing site"
SITE0=$SITE
SITE=$T/force.site.yml
site plan 2
SITE=$SITE0
site drift 64 --force-conflicts
site apply 2 --force-conflicts
api GET "$TBC/ontap-ai-flexvols" | grep -q '"dataLIF": *"192.168.11.11"' ||
    fail "apply --force-conflicts did not take the field back"
p2=$(prov "$TBC/ontap-ai-flexvols")
case $p2 in site=ontap-ai-pod\ run=?*) ;; *) fail "the backend lost its provenance: '$p2'" ;; esac
[ "$p2" != "$p1" ] || fail "apply did not re-stamp the backend with its run ($p2)"
site drift 0

# ---- --only / --limit -----------------------------------------------------
ONLY=
site plan 0 --only pvcs --limit 'pb-fg-all-*'
expect "TASK [pvc default/pb-fg-all-iface1]"
expect_not "tensorflow-results"
expect_not "TASK [storage_class"
expect_not "TASK [ontap_"
site plan 64 --only inventory
# a --limit that matches nothing is a typo, not a clean run
site drift 64 --limit nomatch
expect "--limit 'nomatch' matches no resource"
site plan 64 --limit 'pb-fg-all-*,nomatch'
expect "--limit 'nomatch'"
site apply 64 --limit nomatch
ONLY="--only namespaces,trident,storage_classes,pvcs"

# ---- an immutable field --------------------------------------------------
python3 -c '
import sys
t = sys.stdin.read()
old = "  - name: ontap-ai-flexvols-retain\n    backend_type: ontap-nas\n    reclaim_policy: Retain"
assert old in t
sys.stdout.write(t.replace(old, old.replace("Retain", "Delete")))' <"$SITE" >"$T/changed.site.yml" ||
    fail "making the changed site"
SITE=$T/changed.site.yml
site plan 2
expect "replacement needed:"
expect "reclaimPolicy: want \"Delete\", have \"Retain\""
site apply 1
expect "--allow-replace"
# What needs the class is skipped; the independent resources are not.
expect "skipped: dependency storage_class/ontap-ai-flexvols-retain failed"
expect "ok=10 "
api GET "$SC/ontap-ai-flexvols-retain" | grep -q '"reclaimPolicy": *"Retain"' ||
    fail "apply without --allow-replace changed the class"
site plan 2 --allow-replace
expect "must be replaced (delete and create): StorageClass/ontap-ai-flexvols-retain"
site apply 2 --allow-replace
expect "replaced (deleted and created): StorageClass/ontap-ai-flexvols-retain"
api GET "$SC/ontap-ai-flexvols-retain" | grep -q '"reclaimPolicy": *"Delete"' ||
    fail "apply --allow-replace did not replace the class"
site drift 0

# ---- bad input ----------------------------------------------------------------
printf 'site: bad\nstorage_classes:\n  - name: x\n    backend_typ: ontap-nas\n' >"$T/bad.site.yml"
SITE=$T/bad.site.yml
site plan 65
expect "bad.site.yml:4:18: unknown key 'backend_typ'"
printf 'site: bad\ninventry: hosts.ini\n' >"$T/bad.site.yml"
site apply 65
expect "bad.site.yml:2:11: unknown key 'inventry' at the top of the site file"
# A Job's volumes as a pod spec writes them, not as the module takes them:
# refused when the site is read, before any request.
cat >"$T/bad.site.yml" <<'EOF'
site: bad
jobs:
  - {name: train, namespace: ml, image: "nvcr.io/nvidia/tensorflow:20.12-tf1-py3",
     command: [python, train.py],
     volumes: [{name: results, persistentVolumeClaim: {claimName: results}}]}
EOF
ONLY=
site plan 65
expect "bad.site.yml:3:"
expect "volumes[0] needs name, pvc and mount_path"
expect_not "TASK ["
# the jobs example of docs/site.md loads (and plans)
python3 - "$top_srcdir/docs/site.md" >"$T/job.site.yml" <<'EOF' || fail "no jobs example in docs/site.md"
import sys
t = open(sys.argv[1]).read()
i = t.index("\njobs:\n")
j = t.index("\nhelm_releases:\n", i)
sys.stdout.write("site: job\n" + t[i + 1:j + 1])
EOF
SITE=$T/job.site.yml
site plan 2
expect "TASK [k8s_job ml/train]"

# ---- the secrets never showed -----------------------------------------------
for f in "$T"/out.* "$T/apply.json" "$T"/report/*; do
    ! grep -q -F -e "$CANARY" "$f" || fail "the canary is in $f"
done
echo "test_site: $(( $(date +%s) - t0 )) s"
exit 0
